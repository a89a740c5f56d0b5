//! `memguard_guard`: a running [`MemGuard`] behind an opaque pointer, its lifecycle and getters.
//!
//! Freeing: `memguard_guard_free` closes the guard (the core joins its threads, waiting for a
//! running callback) and then waits until every callback registered through this library has
//! been dropped — its `free_user_data` called — so that when it returns nothing of the guard
//! runs any more. Inside one of the guard's own callbacks that wait could never end:
//! `MEMGUARD_ERR_IN_CALLBACK` is returned instead and nothing happens.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use memguard::{Budget, GuardHandle, MemGuard};

use crate::boundary::{arg, call, call_or, Out};
use crate::config::memguard_config;
use crate::errors::{memguard_result, Failure};
use crate::types::{
    self, fill, memguard_budget_stats, memguard_level, memguard_limits, memguard_settings, memguard_snapshot,
};

const OK: memguard_result = memguard_result::MEMGUARD_OK;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The guard whose callback runs on this thread (0: none).
    static IN_CALLBACK: Cell<u64> = const { Cell::new(0) };
}

/// Marks this thread as running a callback of guard `id` until dropped.
pub(crate) struct InCallback(u64);

impl InCallback {
    pub(crate) fn enter(id: u64) -> Self {
        InCallback(IN_CALLBACK.with(|c| c.replace(id)))
    }
}

impl Drop for InCallback {
    fn drop(&mut self) {
        IN_CALLBACK.with(|c| c.set(self.0));
    }
}

/// What this library tracks per guard, shared with its callbacks.
#[derive(Debug)]
pub(crate) struct GuardState {
    pub(crate) id: u64,
    pid: u32,
    /// Set (under `registration`) before the core closes: no callback is added after it.
    closed: AtomicBool,
    /// Held while registering a callback and while marking the guard closed.
    registration: Mutex<()>,
    /// Callbacks registered through this library and not yet dropped.
    live: Mutex<u64>,
    dropped: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl GuardState {
    /// A callback is being registered: counted live until [`callback_dropped`](Self::callback_dropped).
    pub(crate) fn callback_added(&self) {
        *lock(&self.live) += 1;
    }

    pub(crate) fn callback_dropped(&self) {
        let mut live = lock(&self.live);
        *live = live.saturating_sub(1);
        if *live == 0 {
            self.dropped.notify_all();
        }
    }

    /// Hold the registration lock if the guard is open.
    pub(crate) fn open_for_registration(&self) -> Result<MutexGuard<'_, ()>, Failure> {
        let held = lock(&self.registration);
        if self.closed.load(Ordering::Acquire) {
            return Err(Failure::closed());
        }
        Ok(held)
    }
}

/// A running guard (opaque): `memguard_guard_new`, `memguard_guard_free`. Every function taking
/// a `const memguard_guard *` may be called from any thread, concurrently.
#[allow(non_camel_case_types)]
pub struct memguard_guard {
    pub(crate) guard: MemGuard,
    pub(crate) budget: Budget,
    pub(crate) state: std::sync::Arc<GuardState>,
}

impl memguard_guard {
    /// A handle for the core's calls, or `MEMGUARD_ERR_CLOSED`.
    pub(crate) fn open(&self) -> Result<GuardHandle, Failure> {
        self.check_open()?;
        Ok(self.guard.handle())
    }

    /// `MEMGUARD_ERR_CLOSED` once closed (here, or in a child after `fork()`).
    #[inline]
    pub(crate) fn check_open(&self) -> Result<(), Failure> {
        if self.state.closed.load(Ordering::Acquire) || self.guard.is_closed() {
            Err(Failure::closed())
        } else {
            Ok(())
        }
    }

    fn close(&self) {
        {
            let _held = lock(&self.state.registration);
            self.state.closed.store(true, Ordering::Release);
        }
        self.guard.close();
    }

    /// In the process that started the guard (not a child after `fork()`).
    fn in_owner_process(&self) -> bool {
        std::process::id() == self.state.pid
    }
}

fn start(cfg: *const memguard_config) -> Result<memguard_guard, Failure> {
    let guard = if cfg.is_null() {
        memguard::watch::Builder::from_env()?.start()?
    } else {
        arg(cfg, "config")?.builder.start()?
    };
    Ok(memguard_guard {
        budget: guard.budget().clone(),
        guard,
        state: std::sync::Arc::new(GuardState {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            pid: std::process::id(),
            closed: AtomicBool::new(false),
            registration: Mutex::new(()),
            live: Mutex::new(0),
            dropped: Condvar::new(),
        }),
    })
}

/// Start a guard: detect the limits, arm every kernel source available, start memguard's
/// threads (reactor, dispatcher, shedding). `config` NULL means `memguard_config_from_env`.
/// The config is not kept: free it when you like.
///
/// # Errors
/// `MEMGUARD_ERR_INVALID_CONFIG` (a value out of range; the message names the setting and
/// variable), `MEMGUARD_ERR_PROC_UNAVAILABLE`, `MEMGUARD_ERR_IO`; `*out` is then untouched.
#[no_mangle]
pub extern "C" fn memguard_guard_new(config: *const memguard_config, out: *mut *mut memguard_guard) -> memguard_result {
    call(|| {
        let out = Out::new(out, "out")?;
        let g = start(config)?;
        out.write(Box::into_raw(Box::new(g)));
        Ok(OK)
    })
}

/// Close the guard (if open) and free it. NULL is a no-op.
///
/// Waits for a running callback of this guard to return, and returns once every callback's
/// `free_user_data` has been called. No other call on this guard may be running or start
/// (close it and join your `memguard_next_event` thread first); reservations and
/// subscriptions may outlive it (free them whenever).
///
/// # Errors
/// `MEMGUARD_ERR_IN_CALLBACK` when called from inside one of this guard's own callbacks or
/// shedders: nothing is freed (use `memguard_guard_close` there, free it from its owner).
#[no_mangle]
pub extern "C" fn memguard_guard_free(guard: *mut memguard_guard) -> memguard_result {
    call(|| {
        if guard.is_null() {
            return Ok(OK);
        }
        let id = arg(guard, "guard")?.state.id;
        if IN_CALLBACK.with(Cell::get) == id {
            return Err(Failure::new(
                memguard_result::MEMGUARD_ERR_IN_CALLBACK,
                "memguard_guard_free called from inside this guard's own callback: nothing was freed \
                 (call memguard_guard_close here and free the guard from the thread that owns it)",
            ));
        }
        // SAFETY: from `Box::into_raw` in `memguard_guard_new`; the caller gives the pointer up
        // and no other call on it runs (the header's contract).
        let g = unsafe { Box::from_raw(guard) };
        g.close();
        if g.in_owner_process() {
            // Callbacks are dropped once their running call returned (the core's close cleared
            // them; one that closed the guard itself is dropped when it returns).
            let mut live = lock(&g.state.live);
            while *live > 0 {
                live = g.state.dropped.wait(live).unwrap_or_else(PoisonError::into_inner);
            }
        }
        drop(g);
        Ok(OK)
    })
}

/// Stop memguard's threads and release its file descriptors; the guard stays allocated (free
/// it with `memguard_guard_free`). Idempotent. Callable from any thread, including from inside
/// the guard's own callbacks (the calling callback then finishes normally). Wakes every
/// `memguard_next_event` waiter. Afterwards most calls return `MEMGUARD_ERR_CLOSED`;
/// reservations stay valid.
#[no_mangle]
pub extern "C" fn memguard_guard_close(guard: *const memguard_guard) -> memguard_result {
    call(|| {
        arg(guard, "guard")?.close();
        Ok(OK)
    })
}

/// True once closed, in a child process after `fork()`, and for NULL.
#[no_mangle]
pub extern "C" fn memguard_guard_is_closed(guard: *const memguard_guard) -> bool {
    call_or(true, || arg(guard, "guard").map_or(true, |g| g.check_open().is_err()))
}

/// The current level (one atomic load).
#[no_mangle]
pub extern "C" fn memguard_guard_level(guard: *const memguard_guard, out: *mut memguard_level) -> memguard_result {
    call(|| {
        let out = Out::new(out, "out")?;
        out.write(arg(guard, "guard")?.open()?.level().into());
        Ok(OK)
    })
}

/// The latest snapshot (no syscall). Set `out->size = sizeof *out` first.
#[no_mangle]
pub extern "C" fn memguard_guard_snapshot(
    guard: *const memguard_guard,
    out: *mut memguard_snapshot,
) -> memguard_result {
    call(|| {
        let h = arg(guard, "guard")?.open()?;
        fill(out, "out", || types::from_snapshot(&h.snapshot()))?;
        Ok(OK)
    })
}

/// The limits as last detected. Set `out->size = sizeof *out` first.
#[no_mangle]
pub extern "C" fn memguard_guard_limits(guard: *const memguard_guard, out: *mut memguard_limits) -> memguard_result {
    call(|| {
        let h = arg(guard, "guard")?.open()?;
        fill(out, "out", || types::from_limits(&h.limits()))?;
        Ok(OK)
    })
}

/// The configuration in force. Set `out->size = sizeof *out` first.
#[no_mangle]
pub extern "C" fn memguard_guard_settings(
    guard: *const memguard_guard,
    out: *mut memguard_settings,
) -> memguard_result {
    call(|| {
        let h = arg(guard, "guard")?.open()?;
        fill(out, "out", || types::from_config(h.config()))?;
        Ok(OK)
    })
}

/// The soft-limit budget's figures. Set `out->size = sizeof *out` first.
#[no_mangle]
pub extern "C" fn memguard_guard_budget_stats(
    guard: *const memguard_guard,
    out: *mut memguard_budget_stats,
) -> memguard_result {
    call(|| {
        let g = arg(guard, "guard")?;
        g.check_open()?;
        fill(out, "out", || types::from_budget(&g.budget.stats()))?;
        Ok(OK)
    })
}

/// Events dropped from the `memguard_next_event` queue because nobody read them.
#[no_mangle]
pub extern "C" fn memguard_guard_dropped_events(guard: *const memguard_guard, out: *mut u64) -> memguard_result {
    call(|| {
        let out = Out::new(out, "out")?;
        out.write(arg(guard, "guard")?.open()?.dropped_events());
        Ok(OK)
    })
}

/// The reactor thread's kernel thread id (for CPU accounting).
#[no_mangle]
pub extern "C" fn memguard_guard_reactor_thread_id(guard: *const memguard_guard, out: *mut i32) -> memguard_result {
    call(|| {
        let out = Out::new(out, "out")?;
        out.write(arg(guard, "guard")?.open()?.reactor_thread_id());
        Ok(OK)
    })
}

/// Return freed heap to the OS now (`malloc_trim(0)`, glibc), subject to the minimum interval
/// between trims. `trimmed` (may be NULL) tells whether a trim ran.
#[no_mangle]
pub extern "C" fn memguard_guard_malloc_trim(guard: *const memguard_guard, trimmed: *mut bool) -> memguard_result {
    call(|| {
        let ran = matches!(arg(guard, "guard")?.open()?.malloc_trim(), memguard::TrimOutcome::Trimmed { .. });
        if let Ok(out) = Out::new(trimmed, "trimmed") {
            out.write(ran);
        }
        Ok(OK)
    })
}
