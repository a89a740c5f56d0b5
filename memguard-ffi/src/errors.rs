//! The one place where Rust errors become C result codes, and the thread-local details.
//!
//! | Rust | `memguard_result` |
//! |---|---|
//! | `Error::InvalidConfig` | `MEMGUARD_ERR_INVALID_CONFIG` |
//! | `Error::Io`, `Error::ThreadSpawn` | `MEMGUARD_ERR_IO` |
//! | `Error::Malformed` | `MEMGUARD_ERR_MALFORMED` |
//! | `Error::ProcUnavailable` | `MEMGUARD_ERR_PROC_UNAVAILABLE` |
//! | any other `Error` (the enum is `#[non_exhaustive]`) | `MEMGUARD_ERR_INTERNAL` |
//! | `BudgetExceeded` | `MEMGUARD_ERR_BUDGET_EXCEEDED` (figures: `memguard_last_refusal`) |
//! | a NULL pointer where one is required | `MEMGUARD_ERR_NULL_ARGUMENT` |
//! | a bad enum value, struct size or string | `MEMGUARD_ERR_INVALID_ARGUMENT` |
//! | a closed guard (or one inherited through `fork()`) | `MEMGUARD_ERR_CLOSED` |
//! | `memguard_guard_free` inside that guard's own callback | `MEMGUARD_ERR_IN_CALLBACK` |
//! | a panic caught at the boundary | `MEMGUARD_ERR_PANIC` |
//!
//! Every failure stores a message in a thread-local (`memguard_last_error`); successes leave it
//! alone, like `errno`.

use std::cell::RefCell;
use std::ffi::{c_char, CString};

use crate::types::{memguard_level, memguard_refusal};

/// What a call returned. The values are part of the ABI: **never changed, never reused**; new
/// codes get new numbers. `memguard_result_str()` names each.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum memguard_result {
    /// Success.
    MEMGUARD_OK = 0,
    /// A required pointer argument was NULL (the message names it).
    MEMGUARD_ERR_NULL_ARGUMENT = 1,
    /// An argument is out of its domain: an unknown enum value, a struct `size` smaller than the
    /// first version of that struct, a string that is not UTF-8.
    MEMGUARD_ERR_INVALID_ARGUMENT = 2,
    /// A configuration value does not parse or is out of range; the message names the setting
    /// and, for a `MEMGUARD_*` variable, the variable and its text.
    MEMGUARD_ERR_INVALID_CONFIG = 3,
    /// A file could not be read, or a thread or descriptor could not be created.
    MEMGUARD_ERR_IO = 4,
    /// A kernel file had content memguard does not understand.
    MEMGUARD_ERR_MALFORMED = 5,
    /// `/proc` (or the configured root's) cannot be read at all.
    MEMGUARD_ERR_PROC_UNAVAILABLE = 6,
    /// The budget refused a reservation; `memguard_last_refusal()` has the figures.
    MEMGUARD_ERR_BUDGET_EXCEEDED = 7,
    /// The guard was closed (`memguard_guard_close`), or was inherited through `fork()`.
    MEMGUARD_ERR_CLOSED = 8,
    /// `memguard_guard_free` was called from inside one of that guard's own callbacks (or
    /// shedders): nothing was freed. Close it there with `memguard_guard_close` and free it
    /// from the thread that owns it.
    MEMGUARD_ERR_IN_CALLBACK = 9,
    /// `memguard_next_event`: no event arrived before the timeout (not an error).
    MEMGUARD_TIMEOUT = 10,
    /// A bug in memguard: a Rust panic was caught at the C boundary (the message says where).
    MEMGUARD_ERR_PANIC = 11,
    /// An error of a kind this version of the C library does not know (see the message).
    MEMGUARD_ERR_INTERNAL = 12,
}

use memguard_result::*;

impl memguard_result {
    /// Every code, for `memguard_result_str` and the tests.
    pub(crate) const ALL: [memguard_result; 13] = [
        MEMGUARD_OK,
        MEMGUARD_ERR_NULL_ARGUMENT,
        MEMGUARD_ERR_INVALID_ARGUMENT,
        MEMGUARD_ERR_INVALID_CONFIG,
        MEMGUARD_ERR_IO,
        MEMGUARD_ERR_MALFORMED,
        MEMGUARD_ERR_PROC_UNAVAILABLE,
        MEMGUARD_ERR_BUDGET_EXCEEDED,
        MEMGUARD_ERR_CLOSED,
        MEMGUARD_ERR_IN_CALLBACK,
        MEMGUARD_TIMEOUT,
        MEMGUARD_ERR_PANIC,
        MEMGUARD_ERR_INTERNAL,
    ];

    /// The constant's name, NUL-terminated.
    pub(crate) fn name(self) -> &'static std::ffi::CStr {
        match self {
            MEMGUARD_OK => c"MEMGUARD_OK",
            MEMGUARD_ERR_NULL_ARGUMENT => c"MEMGUARD_ERR_NULL_ARGUMENT",
            MEMGUARD_ERR_INVALID_ARGUMENT => c"MEMGUARD_ERR_INVALID_ARGUMENT",
            MEMGUARD_ERR_INVALID_CONFIG => c"MEMGUARD_ERR_INVALID_CONFIG",
            MEMGUARD_ERR_IO => c"MEMGUARD_ERR_IO",
            MEMGUARD_ERR_MALFORMED => c"MEMGUARD_ERR_MALFORMED",
            MEMGUARD_ERR_PROC_UNAVAILABLE => c"MEMGUARD_ERR_PROC_UNAVAILABLE",
            MEMGUARD_ERR_BUDGET_EXCEEDED => c"MEMGUARD_ERR_BUDGET_EXCEEDED",
            MEMGUARD_ERR_CLOSED => c"MEMGUARD_ERR_CLOSED",
            MEMGUARD_ERR_IN_CALLBACK => c"MEMGUARD_ERR_IN_CALLBACK",
            MEMGUARD_TIMEOUT => c"MEMGUARD_TIMEOUT",
            MEMGUARD_ERR_PANIC => c"MEMGUARD_ERR_PANIC",
            MEMGUARD_ERR_INTERNAL => c"MEMGUARD_ERR_INTERNAL",
        }
    }
}

/// A failed call: the code to return and the message for `memguard_last_error`.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) code: memguard_result,
    pub(crate) message: String,
    /// The figures of a budget refusal, for `memguard_last_refusal`.
    pub(crate) refusal: Option<memguard_refusal>,
}

impl Failure {
    pub(crate) fn new(code: memguard_result, message: impl Into<String>) -> Self {
        Failure { code, message: message.into(), refusal: None }
    }

    /// A required pointer was NULL.
    pub(crate) fn null(what: &str) -> Self {
        Failure::new(MEMGUARD_ERR_NULL_ARGUMENT, format!("{what} must not be NULL"))
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Failure::new(MEMGUARD_ERR_INVALID_ARGUMENT, message)
    }

    pub(crate) fn closed() -> Self {
        Failure::new(MEMGUARD_ERR_CLOSED, "this memguard guard is closed (or was started by the parent before fork())")
    }
}

impl From<memguard::Error> for Failure {
    fn from(e: memguard::Error) -> Self {
        let code = match &e {
            memguard::Error::InvalidConfig { .. } => MEMGUARD_ERR_INVALID_CONFIG,
            memguard::Error::Io { .. } | memguard::Error::ThreadSpawn { .. } => MEMGUARD_ERR_IO,
            memguard::Error::Malformed { .. } => MEMGUARD_ERR_MALFORMED,
            memguard::Error::ProcUnavailable { .. } => MEMGUARD_ERR_PROC_UNAVAILABLE,
            _ => MEMGUARD_ERR_INTERNAL,
        };
        Failure::new(code, e.to_string())
    }
}

impl From<memguard::BudgetExceeded> for Failure {
    fn from(e: memguard::BudgetExceeded) -> Self {
        let refusal = memguard_refusal {
            size: crate::types::sized::<memguard_refusal>(),
            level: memguard_level::from(e.level),
            requested: e.requested,
            available: e.available,
            soft_limit: e.soft_limit,
            sub_budget: e.scope.is_some(),
        };
        Failure { code: MEMGUARD_ERR_BUDGET_EXCEEDED, message: e.to_string(), refusal: Some(refusal) }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
    static LAST_REFUSAL: RefCell<Option<memguard_refusal>> = const { RefCell::new(None) };
}

/// Store `f`'s message (and refusal) as this thread's last error.
pub(crate) fn record(f: &Failure) {
    let text = CString::new(f.message.replace('\0', "\\0")).unwrap_or_default();
    // `try_with`: a call during thread teardown (a destructor calling memguard) keeps its code.
    let _ = LAST_ERROR.try_with(|e| *e.borrow_mut() = text);
    if let Some(r) = f.refusal {
        let _ = LAST_REFUSAL.try_with(|l| *l.borrow_mut() = Some(r));
    }
}

/// This thread's last error message (empty if none), valid until this thread's next failing
/// call or its exit.
pub(crate) fn last_error() -> *const c_char {
    // The CString's heap buffer stays put until it is replaced (by `record` on this thread).
    LAST_ERROR.try_with(|e| e.borrow().as_ptr()).unwrap_or(c"".as_ptr())
}

/// This thread's last budget refusal.
pub(crate) fn last_refusal() -> Option<memguard_refusal> {
    LAST_REFUSAL.try_with(|l| *l.borrow()).ok().flatten()
}
