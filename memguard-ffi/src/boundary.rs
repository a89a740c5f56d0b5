//! The C boundary: every exported function runs its body through [`call`] (or [`call_or`]),
//! which catches panics, and reads its pointer arguments through the checked helpers here.
//!
//! The pointer helpers turn NULL into `MEMGUARD_ERR_NULL_ARGUMENT`; a non-NULL pointer is
//! trusted to be what the header says (a live object of this library, a writable out-parameter,
//! a NUL-terminated string): C cannot tell us otherwise.

use std::any::Any;
use std::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::errors::{self, memguard_result, Failure};

/// Run `body`; a failure or a panic is recorded as this thread's last error and becomes its
/// code. `Ok(code)` returns `code` (`MEMGUARD_OK`, or `MEMGUARD_TIMEOUT`) without touching the
/// last error.
pub(crate) fn call(body: impl FnOnce() -> Result<memguard_result, Failure>) -> memguard_result {
    let failure = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(code)) => return code,
        Ok(Err(f)) => f,
        Err(panic) => panicked(&*panic),
    };
    errors::record(&failure);
    failure.code
}

/// Run `body` for a function that returns no `memguard_result` (`_free`, getters of plain
/// values): a panic is recorded as the last error and `fallback` returned.
pub(crate) fn call_or<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(v) => v,
        Err(panic) => {
            errors::record(&panicked(&*panic));
            fallback
        }
    }
}

fn panicked(panic: &(dyn Any + Send)) -> Failure {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    Failure::new(memguard_result::MEMGUARD_ERR_PANIC, format!("internal error (a bug in memguard): {what}"))
}

/// `&*p`, or `MEMGUARD_ERR_NULL_ARGUMENT` naming `what`.
pub(crate) fn arg<'a, T>(p: *const T, what: &str) -> Result<&'a T, Failure> {
    // SAFETY: NULL is checked by `as_ref`; a non-NULL pointer is, by the header's contract, a
    // live object of this library (or a caller's struct) not freed while the call runs.
    unsafe { p.as_ref() }.ok_or_else(|| Failure::null(what))
}

/// A required out-parameter: checked for NULL up front, written with [`Out::write`] only on
/// success.
pub(crate) struct Out<T>(*mut T);

impl<T> Out<T> {
    pub(crate) fn new(p: *mut T, what: &str) -> Result<Self, Failure> {
        if p.is_null() {
            Err(Failure::null(what))
        } else {
            Ok(Out(p))
        }
    }

    /// The pointer (non-NULL).
    pub(crate) fn as_ptr(&self) -> *mut T {
        self.0
    }

    /// Store the result (the previous content is not read or dropped: it may be garbage).
    pub(crate) fn write(self, value: T) {
        // SAFETY: non-NULL (checked in `new`) and, by the header's contract, writable and
        // aligned for a `T`.
        unsafe { self.0.write(value) }
    }
}

/// A NUL-terminated UTF-8 string argument.
pub(crate) fn str_arg<'a>(p: *const c_char, what: &str) -> Result<&'a str, Failure> {
    let bytes = bytes_arg(p, what)?;
    std::str::from_utf8(bytes).map_err(|_| Failure::invalid(format!("{what} is not valid UTF-8")))
}

/// A NUL-terminated string argument as bytes (paths need not be UTF-8).
pub(crate) fn bytes_arg<'a>(p: *const c_char, what: &str) -> Result<&'a [u8], Failure> {
    if p.is_null() {
        return Err(Failure::null(what));
    }
    // SAFETY: non-NULL, and by the header's contract a NUL-terminated string that stays valid
    // and unchanged during the call.
    Ok(unsafe { CStr::from_ptr(p) }.to_bytes())
}
