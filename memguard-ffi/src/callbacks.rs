//! Callbacks: `on_level`, `on_event`, shedders, and `memguard_subscription`.
//!
//! The C function and its `user_data` live in a closure registered with the core; the closure
//! owns a [`UserData`] whose `Drop` calls `free_user_data(user_data)`. The core drops a closure
//! exactly once: before `Subscription::unsubscribe` returns when removed from another thread
//! (after a running call returned), right after the call when a callback removes itself, or
//! when the guard closes. So `free_user_data` runs exactly once, after the last call.

use std::ffi::{c_char, c_void, CString};
use std::sync::Arc;

use memguard::Subscription;

use crate::boundary::{arg, call, call_or, str_arg, Out};
use crate::errors::{memguard_result, Failure};
use crate::guard::{memguard_guard, GuardState, InCallback};
use crate::types::{self, memguard_event, memguard_level, memguard_snapshot};

const OK: memguard_result = memguard_result::MEMGUARD_OK;

/// Called with `user_data` when a callback is removed (exactly once; never if registering
/// failed).
#[allow(non_camel_case_types)]
pub type memguard_free_callback = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

/// `on_level` callback: the level moved from `from` to `to`; `snapshot` (valid during the call)
/// is the sample that moved it.
#[allow(non_camel_case_types)]
pub type memguard_level_callback = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        from: memguard_level,
        to: memguard_level,
        snapshot: *const memguard_snapshot,
    ),
>;

/// `on_event` callback: `event` (and the strings it points to) is valid during the call.
#[allow(non_camel_case_types)]
pub type memguard_event_callback = Option<unsafe extern "C" fn(user_data: *mut c_void, event: *const memguard_event)>;

/// Shedder: free about `target_bytes` of cache and return the bytes actually freed.
#[allow(non_camel_case_types)]
pub type memguard_shedder_callback = Option<unsafe extern "C" fn(user_data: *mut c_void, target_bytes: u64) -> u64>;

/// A registered callback (opaque). `memguard_subscription_free` removes the callback and frees
/// the handle; `memguard_subscription_detach` keeps the callback for the guard's life.
#[allow(non_camel_case_types)]
pub struct memguard_subscription {
    sub: Subscription,
}

/// The caller's `user_data` and its destructor, owned by the registered closure.
struct UserData {
    ptr: *mut c_void,
    free: memguard_free_callback,
    state: Arc<GuardState>,
}

// SAFETY: the header's contract: `user_data` is handed to the callback on memguard's threads and
// to `free_user_data` on whichever thread removes the callback; the caller makes whatever it
// points to safe to use there. This library never dereferences it.
unsafe impl Send for UserData {}
// SAFETY: as above; callbacks of one guard never run concurrently, and the pointer itself is
// only copied.
unsafe impl Sync for UserData {}

impl UserData {
    /// The pointer (a method, so that closures capture the whole `UserData`, destructor included).
    fn ptr(&self) -> *mut c_void {
        self.ptr
    }
}

impl Drop for UserData {
    fn drop(&mut self) {
        if let Some(free) = self.free {
            // SAFETY: the caller's destructor for its own pointer, called exactly once (this
            // drop) after the last call of the callback.
            unsafe { free(self.ptr) };
        }
        self.state.callback_dropped();
    }
}

/// Register through `add` (holding the guard's registration lock, so that a registration
/// never races with closing) and return the subscription in `out`.
/// `check` validates the arguments first: on any failure nothing is registered and
/// `free_user_data` is not called.
fn register<P>(
    guard: *const memguard_guard,
    out: *mut *mut memguard_subscription,
    user_data: *mut c_void,
    free_user_data: memguard_free_callback,
    check: impl FnOnce() -> Result<P, Failure>,
    add: impl FnOnce(&memguard_guard, UserData, P) -> Subscription,
) -> memguard_result {
    call(|| {
        let out = Out::new(out, "out")?;
        let g = arg(guard, "guard")?;
        let checked = check()?;
        g.check_open()?;
        let _held = g.state.open_for_registration()?;
        g.state.callback_added();
        let ud = UserData { ptr: user_data, free: free_user_data, state: Arc::clone(&g.state) };
        let sub = add(g, ud, checked);
        out.write(Box::into_raw(Box::new(memguard_subscription { sub })));
        Ok(OK)
    })
}

/// Call `callback(user_data, from, to, snapshot)` on every level change, on memguard's
/// dispatcher thread (never concurrently with another callback of this guard).
/// `free_user_data` (may be NULL) is called exactly once with `user_data` when the callback is
/// removed: by `memguard_subscription_free`, by the guard closing, or right after the running
/// call when the callback removes itself.
///
/// # Errors
/// `MEMGUARD_ERR_NULL_ARGUMENT` (guard, callback, out), `MEMGUARD_ERR_CLOSED`; then
/// `free_user_data` is not called (the caller still owns `user_data`).
#[no_mangle]
pub extern "C" fn memguard_on_level(
    guard: *const memguard_guard,
    callback: memguard_level_callback,
    user_data: *mut c_void,
    free_user_data: memguard_free_callback,
    out: *mut *mut memguard_subscription,
) -> memguard_result {
    let check = || callback.ok_or_else(|| Failure::null("callback"));
    register(guard, out, user_data, free_user_data, check, |g, ud, cb| {
        let id = g.state.id;
        g.guard.on_level(move |change, snap| {
            let s = types::from_snapshot(snap);
            let _in = InCallback::enter(id);
            // SAFETY: the caller's callback with its own `user_data`; `s` lives across the call.
            unsafe { cb(ud.ptr(), change.from.into(), change.to.into(), &s) };
        })
    })
}

/// Call `callback(user_data, event)` on every event (kernel events and level changes), on the
/// dispatcher thread. `event->json` is the event's JSON, valid during the call. Removal and
/// `free_user_data`: as `memguard_on_level`.
///
/// # Errors
/// As `memguard_on_level`.
#[no_mangle]
pub extern "C" fn memguard_on_event(
    guard: *const memguard_guard,
    callback: memguard_event_callback,
    user_data: *mut c_void,
    free_user_data: memguard_free_callback,
    out: *mut *mut memguard_subscription,
) -> memguard_result {
    let check = || callback.ok_or_else(|| Failure::null("callback"));
    register(guard, out, user_data, free_user_data, check, |g, ud, cb| {
        let id = g.state.id;
        g.guard.on_event(move |ev| {
            let json = CString::new(memguard::render::event_json(ev)).unwrap_or_default();
            let e = types::from_event(ev, json.as_ptr());
            let _in = InCallback::enter(id);
            // SAFETY: the caller's callback with its own `user_data`; `e` and `json` live across
            // the call.
            unsafe { cb(ud.ptr(), &e) };
        })
    })
}

/// Register a cache memguard may shrink: under pressure memguard calls `callback(user_data,
/// target_bytes)` on its shedding thread, lowest `priority` first, and the callback frees what
/// it can and returns the bytes freed. `name` (copied) labels its metrics. Removal and
/// `free_user_data`: as `memguard_on_level`.
///
/// # Errors
/// As `memguard_on_level`; `MEMGUARD_ERR_INVALID_ARGUMENT` for a name that is not UTF-8.
#[no_mangle]
pub extern "C" fn memguard_register_shedder(
    guard: *const memguard_guard,
    name: *const c_char,
    priority: i32,
    callback: memguard_shedder_callback,
    user_data: *mut c_void,
    free_user_data: memguard_free_callback,
    out: *mut *mut memguard_subscription,
) -> memguard_result {
    let check = || Ok((str_arg(name, "name")?.to_owned(), callback.ok_or_else(|| Failure::null("callback"))?));
    register(guard, out, user_data, free_user_data, check, |g, ud, (name, cb)| {
        let id = g.state.id;
        g.guard.register_shedder(name, priority, move |target| {
            let _in = InCallback::enter(id);
            // SAFETY: the caller's callback with its own `user_data`.
            unsafe { cb(ud.ptr(), target) }
        })
    })
}

/// Remove the callback and free the handle. NULL is a no-op. From another thread this waits
/// for a running call of the callback to return, and `free_user_data` has run when it returns;
/// from inside the callback itself it does not wait (the callback is not called again and
/// `free_user_data` runs right after it returns). Fine after the guard was freed.
#[no_mangle]
pub extern "C" fn memguard_subscription_free(sub: *mut memguard_subscription) {
    call_or((), || {
        if !sub.is_null() {
            // SAFETY: from `Box::into_raw` in `register`; the caller gives the pointer up.
            let s = unsafe { Box::from_raw(sub) };
            s.sub.unsubscribe();
        }
    });
}

/// Keep the callback registered until the guard closes, and free the handle. NULL is a no-op.
#[no_mangle]
pub extern "C" fn memguard_subscription_detach(sub: *mut memguard_subscription) {
    call_or((), || {
        if !sub.is_null() {
            // SAFETY: from `Box::into_raw` in `register`; the caller gives the pointer up.
            let s = unsafe { Box::from_raw(sub) };
            s.sub.detach();
        }
    });
}
