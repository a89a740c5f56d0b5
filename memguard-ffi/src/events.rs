//! The pull API: `memguard_next_event`, for runtimes that prefer their own thread (cgo's
//! goroutines, a Node worker, an event loop) to callbacks on memguard's threads.

use std::ffi::c_char;
use std::time::Duration;

use crate::boundary::{arg, call};
use crate::errors::{memguard_result, Failure};
use crate::guard::memguard_guard;
use crate::strings::OwnedString;
use crate::types::{self, memguard_event, Filler};

/// Wait up to `timeout_ms` milliseconds (`UINT64_MAX`: no limit; 0: do not wait) for the next
/// event and store it in `*out` (set `out->size = sizeof *out` first). Events are queued from
/// the guard's start, up to its queue capacity (the oldest are dropped beyond it). If `json` is
/// not NULL, `*json` receives the event's JSON (free it with `memguard_string_free`) and
/// `out->json` points to it; otherwise `out->json` is NULL. `memguard_guard_close` (from any
/// thread) wakes a waiter at once.
///
/// # Errors
/// `MEMGUARD_TIMEOUT` (no event in time; nothing written), `MEMGUARD_ERR_CLOSED` (closed and
/// nothing left in the queue), `MEMGUARD_ERR_NULL_ARGUMENT`, `MEMGUARD_ERR_INVALID_ARGUMENT`
/// (`out->size` too small; checked before waiting, so no event is lost).
#[no_mangle]
pub extern "C" fn memguard_next_event(
    guard: *const memguard_guard,
    timeout_ms: u64,
    out: *mut memguard_event,
    json: *mut *mut c_char,
) -> memguard_result {
    call(|| {
        let g = arg(guard, "guard")?;
        let filler = Filler::new(out, "out")?;
        // A closed guard still hands out what was queued before it closed.
        let h = g.guard.handle();
        let Some(ev) = h.next_event(Duration::from_millis(timeout_ms)) else {
            return if g.check_open().is_err() {
                Err(Failure::closed())
            } else {
                Ok(memguard_result::MEMGUARD_TIMEOUT)
            };
        };
        if json.is_null() {
            filler.write(types::from_event(&ev, std::ptr::null()));
        } else {
            let text = OwnedString::new(memguard::render::event_json(&ev));
            filler.write(types::from_event(&ev, text.as_ptr()));
            // SAFETY: non-NULL, and by the header's contract a writable `char *`.
            unsafe { json.write(text.into_raw()) };
        }
        Ok(memguard_result::MEMGUARD_OK)
    })
}
