//! The soft-limit budget: reservations (`memguard_reserve` → `memguard_reservation_free`),
//! sub-budgets, and the figures of a refusal.
//!
//! A reservation is a core `Reservation<'static>` (`try_reserve_owned`) in a box: it holds its
//! own reference to the budget, so it may outlive the guard and be freed on any thread.

use std::ffi::c_char;

use memguard::{Reservation, SubBudget};

use crate::boundary::{arg, call, call_or, str_arg, Out};
use crate::errors::{self, memguard_result, Failure};
use crate::guard::memguard_guard;
use crate::types::{memguard_refusal, Filler};

const OK: memguard_result = memguard_result::MEMGUARD_OK;

/// Bytes reserved from a guard's budget (opaque); `memguard_reservation_free` returns them.
/// May outlive its guard; may be freed on any thread.
#[allow(non_camel_case_types)]
pub struct memguard_reservation {
    r: Reservation<'static>,
}

/// A named sub-budget with its own cap inside a guard's budget (opaque).
#[allow(non_camel_case_types)]
pub struct memguard_sub_budget {
    sub: SubBudget,
}

fn store(out: Out<*mut memguard_reservation>, r: Reservation<'static>) {
    out.write(Box::into_raw(Box::new(memguard_reservation { r })));
}

/// Reserve `bytes` from the guard's soft-limit budget before allocating them. Never blocks, no
/// syscall. Granted while usage + outstanding reservations + `bytes` stay under the soft limit
/// and the level is below Critical; 0 bytes is always granted below Critical.
///
/// # Errors
/// `MEMGUARD_ERR_BUDGET_EXCEEDED` (`memguard_last_refusal()` has the figures),
/// `MEMGUARD_ERR_CLOSED`, `MEMGUARD_ERR_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn memguard_reserve(
    guard: *const memguard_guard,
    bytes: u64,
    out: *mut *mut memguard_reservation,
) -> memguard_result {
    call(|| {
        let out = Out::new(out, "out")?;
        let g = arg(guard, "guard")?;
        g.check_open()?;
        store(out, g.budget.try_reserve_owned(bytes)?);
        Ok(OK)
    })
}

/// Reserve `bytes` for essential work: always granted (even at Critical or over the soft limit)
/// and counted against everyone else.
///
/// # Errors
/// `MEMGUARD_ERR_CLOSED`, `MEMGUARD_ERR_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn memguard_reserve_forced(
    guard: *const memguard_guard,
    bytes: u64,
    out: *mut *mut memguard_reservation,
) -> memguard_result {
    call(|| {
        let out = Out::new(out, "out")?;
        let g = arg(guard, "guard")?;
        g.check_open()?;
        store(out, g.budget.try_reserve_forced_owned(bytes));
        Ok(OK)
    })
}

/// The bytes a reservation holds.
#[no_mangle]
pub extern "C" fn memguard_reservation_bytes(r: *const memguard_reservation, out: *mut u64) -> memguard_result {
    call(|| {
        let out = Out::new(out, "out")?;
        out.write(arg(r, "reservation")?.r.bytes());
        Ok(OK)
    })
}

/// Change the bytes held (for buffers whose size is learned late). Shrinking always succeeds;
/// growing is checked like a new request for the difference. Not concurrently with another call
/// on the same reservation.
///
/// # Errors
/// `MEMGUARD_ERR_BUDGET_EXCEEDED` (the reservation keeps its size), `MEMGUARD_ERR_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn memguard_reservation_resize(r: *mut memguard_reservation, new_bytes: u64) -> memguard_result {
    call(|| {
        if r.is_null() {
            return Err(Failure::null("reservation"));
        }
        // SAFETY: non-NULL; by the header's contract a live reservation not used by another
        // thread during the call.
        let r = unsafe { &mut *r };
        r.r.resize(new_bytes)?;
        Ok(OK)
    })
}

/// Return the bytes to the budget and free the reservation. NULL is a no-op. Any thread; also
/// after the guard was freed.
#[no_mangle]
pub extern "C" fn memguard_reservation_free(r: *mut memguard_reservation) {
    call_or((), || {
        if !r.is_null() {
            // SAFETY: from `Box::into_raw` in `store`; the caller gives the pointer up.
            drop(unsafe { Box::from_raw(r) });
        }
    });
}

/// The figures of the calling thread's last budget refusal (`MEMGUARD_ERR_BUDGET_EXCEEDED`).
/// Set `out->size = sizeof *out` first.
///
/// # Errors
/// `MEMGUARD_ERR_INVALID_ARGUMENT` when this thread was never refused.
#[no_mangle]
pub extern "C" fn memguard_last_refusal(out: *mut memguard_refusal) -> memguard_result {
    call(|| {
        let out = Filler::new(out, "out")?;
        out.write(errors::last_refusal().ok_or_else(|| Failure::invalid("no reservation was refused on this thread"))?);
        Ok(OK)
    })
}

/// The sub-budget called `name` (copied) inside the guard's budget, created with `cap_bytes` on
/// first use; the same name always means the same sub-budget (calling again changes its cap).
/// Its reservations count against both its cap and the guard's budget.
///
/// # Errors
/// `MEMGUARD_ERR_NULL_ARGUMENT`, `MEMGUARD_ERR_INVALID_ARGUMENT` (name not UTF-8),
/// `MEMGUARD_ERR_CLOSED`.
#[no_mangle]
pub extern "C" fn memguard_sub_budget_new(
    guard: *const memguard_guard,
    name: *const c_char,
    cap_bytes: u64,
    out: *mut *mut memguard_sub_budget,
) -> memguard_result {
    call(|| {
        let out = Out::new(out, "out")?;
        let g = arg(guard, "guard")?;
        let name = str_arg(name, "name")?;
        g.check_open()?;
        let sub = g.budget.sub_budget(name, cap_bytes);
        out.write(Box::into_raw(Box::new(memguard_sub_budget { sub })));
        Ok(OK)
    })
}

/// Free a sub-budget handle (its reservations stay valid). NULL is a no-op.
#[no_mangle]
pub extern "C" fn memguard_sub_budget_free(sub: *mut memguard_sub_budget) {
    call_or((), || {
        if !sub.is_null() {
            // SAFETY: from `Box::into_raw` in `memguard_sub_budget_new`; the caller gives it up.
            drop(unsafe { Box::from_raw(sub) });
        }
    });
}

/// Change a sub-budget's cap.
#[no_mangle]
pub extern "C" fn memguard_sub_budget_set_cap(sub: *const memguard_sub_budget, cap_bytes: u64) -> memguard_result {
    call(|| {
        arg(sub, "sub_budget")?.sub.set_cap(cap_bytes);
        Ok(OK)
    })
}

/// Reserve `bytes` from a sub-budget: its cap first, then the guard's budget.
///
/// # Errors
/// `MEMGUARD_ERR_BUDGET_EXCEEDED` (the cap or the budget refused; `memguard_last_refusal()`),
/// `MEMGUARD_ERR_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn memguard_sub_budget_reserve(
    sub: *const memguard_sub_budget,
    bytes: u64,
    out: *mut *mut memguard_reservation,
) -> memguard_result {
    call(|| {
        let out = Out::new(out, "out")?;
        store(out, arg(sub, "sub_budget")?.sub.try_reserve_owned(bytes)?);
        Ok(OK)
    })
}
