//! The guard behind `io.memguard.MemGuard`: a [`MemGuard`] owned by a boxed [`GuardBox`] whose
//! address is the Java handle.
//!
//! Lifetime: `close()` stops memguard's threads, closes its descriptors and drops every
//! callback (and the global references they hold) — but keeps the box, so a call racing with
//! `close()` from another thread finds a closed guard (`IllegalStateException`), never freed
//! memory. The box itself is freed by `free()`, which the Java side calls exactly once, from its
//! `Cleaner`, when the `MemGuard` object is unreachable: no thread can then be inside a native
//! call with this handle (`Reference.reachabilityFence` after every call).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use jni::objects::{JClass, JObjectArray, JString};
use jni::sys::{jboolean, jint, jlong, jobjectArray, jstring, JNI_FALSE, JNI_TRUE};
use jni::JNIEnv;
use memguard::watch::{Builder, GuardHandle, Subscription};
use memguard::{Budget, MemGuard};

use crate::boundary::guarded;
use crate::errors::{jlong_of, Failure};
use crate::handle::{self, Kind};
use crate::{options, vm};

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running (or closed) guard.
pub(crate) struct GuardBox {
    guard: Mutex<Option<MemGuard>>,
    /// Dropped on close: the core's shared state (its wake-up eventfd among others) goes with
    /// the last handle, so `close()` releases every descriptor without waiting for the Cleaner.
    handle: RwLock<Option<GuardHandle>>,
    pub(crate) budget: Budget,
    closed: AtomicBool,
    /// Shedders and the listener feed's callbacks, by id: dropped (removed) on close.
    subs: Mutex<HashMap<u64, Subscription>>,
    next_id: AtomicU64,
}

impl Kind for GuardBox {
    const TAG: u64 = 0x6d67_5f67_7561_7264; // "mg_guard"
    const NAME: &'static str = "MemGuard";
}

impl GuardBox {
    /// A handle to call the core with (a reference-count increment), or `IllegalStateException`
    /// once closed.
    pub(crate) fn open(&self) -> Result<GuardHandle, Failure> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Failure::Closed);
        }
        self.handle.read().unwrap_or_else(PoisonError::into_inner).clone().ok_or(Failure::Closed)
    }

    /// `IllegalStateException` once closed (one atomic load).
    pub(crate) fn check_open(&self) -> Result<(), Failure> {
        if self.closed.load(Ordering::Acquire) {
            Err(Failure::Closed)
        } else {
            Ok(())
        }
    }

    /// Keep `sub` until it is removed or the guard closes; returns its id.
    pub(crate) fn keep(&self, sub: Subscription) -> Result<u64, Failure> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        lock(&self.subs).insert(id, sub);
        if self.closed.load(Ordering::Acquire) {
            // Closed meanwhile: do not keep a callback a closed guard will never drop.
            drop(lock(&self.subs).remove(&id));
            return Err(Failure::Closed);
        }
        Ok(id)
    }

    /// Remove the subscription `id` (waiting for a running call of it, unless called from it).
    pub(crate) fn remove(&self, id: u64) -> bool {
        let sub = lock(&self.subs).remove(&id); // the lock is released before waiting
        sub.is_some_and(Subscription::unsubscribe)
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let subs = std::mem::take(&mut *lock(&self.subs));
        drop(subs);
        let guard = lock(&self.guard).take();
        drop(guard); // joins memguard's threads (not the caller's, when closing from a callback)
        let handle = self.handle.write().unwrap_or_else(PoisonError::into_inner).take();
        drop(handle);
    }
}

impl Drop for GuardBox {
    fn drop(&mut self) {
        self.close();
    }
}

/// The guard behind `handle`.
pub(crate) fn guard_of<'a>(handle: jlong) -> Result<&'a GuardBox, Failure> {
    // SAFETY: the Java `MemGuard` passes its own handle, made by `start` and freed only by its
    // Cleaner once the object is unreachable (so never during this call); `get` checks the tag.
    unsafe { handle::get::<GuardBox>(handle) }
}

/// A Java `String` from Rust text.
pub(crate) fn jstr(env: &mut JNIEnv<'_>, s: &str) -> Result<jstring, Failure> {
    Ok(env.new_string(s)?.into_raw())
}

/// A Rust `String` from a Java one. In a local frame: jni 0.21's `get_string` leaves two local
/// references behind (the classes it checks), which add up in a loop (`-Xcheck:jni` warns).
pub(crate) fn rust_string(env: &mut JNIEnv<'_>, s: &JString<'_>) -> Result<String, Failure> {
    env.with_local_frame(4, |env| -> Result<String, Failure> { Ok(env.get_string(s)?.into()) })
}

/// A Java `String[]` from Rust strings.
pub(crate) fn jstrings(env: &mut JNIEnv<'_>, items: &[&str]) -> Result<jobjectArray, Failure> {
    let refs = vm::refs().ok_or(Failure::BadHandle("JavaVM"))?;
    let len = i32::try_from(items.len()).map_err(|_| Failure::Argument("too many strings".into()))?;
    let array = env.new_object_array(len, vm::class(&refs.string), jni::objects::JObject::null())?;
    for (i, item) in (0..).zip(items) {
        let s = env.new_string(item)?;
        env.set_object_array_element(&array, i, &s)?;
        env.delete_local_ref(s)?;
    }
    Ok(array.into_raw())
}

/// A timeout in nanoseconds from Java (negative counts as zero).
pub(crate) fn timeout(nanos: jlong) -> Duration {
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(0))
}

fn json<T: serde::Serialize>(v: &T) -> Result<String, Failure> {
    serde_json::to_string(v).map_err(|e| Failure::Panic(format!("cannot encode: {e}")))
}

/// `start(String[] keys, String[] values, boolean fromEnv)`: build and start a guard.
#[no_mangle]
pub extern "system" fn Java_io_memguard_NativeLib_start<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    keys: JObjectArray<'l>,
    values: JObjectArray<'l>,
    from_env: jboolean,
) -> jlong {
    guarded(&mut env, 0, |env| {
        let mut b = if from_env == JNI_TRUE { Builder::from_env()? } else { Builder::new() };
        let n = env.get_array_length(&keys)?;
        if env.get_array_length(&values)? != n {
            return Err(Failure::Argument("keys and values differ in length".into()));
        }
        // Each element is a local reference: delete it at once (a frame holds only 16-32).
        let string_at = |env: &mut JNIEnv<'l>, array: &JObjectArray<'l>, i| -> Result<String, Failure> {
            let s = JString::from(env.get_object_array_element(array, i)?);
            let text = rust_string(env, &s)?;
            env.delete_local_ref(s)?;
            Ok(text)
        };
        for i in 0..n {
            let key = string_at(env, &keys, i)?;
            let value = string_at(env, &values, i)?;
            b = options::apply(b, &key, &value)?;
        }
        let guard = b.start()?;
        Ok(handle::into_handle(GuardBox {
            handle: RwLock::new(Some(guard.handle())),
            budget: guard.budget().clone(),
            guard: Mutex::new(Some(guard)),
            closed: AtomicBool::new(false),
            subs: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        }))
    })
}

/// `close(long)`: idempotent; stops the threads, drops every callback. The box stays.
#[no_mangle]
pub extern "system" fn Java_io_memguard_NativeLib_close<'l>(mut env: JNIEnv<'l>, _c: JClass<'l>, h: jlong) {
    guarded(&mut env, (), |_| {
        guard_of(h)?.close();
        Ok(())
    });
}

/// `free(long)`: called once, by the Cleaner, when the Java object is unreachable.
#[no_mangle]
pub extern "system" fn Java_io_memguard_NativeLib_free<'l>(mut env: JNIEnv<'l>, _c: JClass<'l>, h: jlong) {
    guarded(&mut env, (), |_| {
        // SAFETY: the Java side frees each handle once, from its Cleaner, when no thread can use
        // it any more (the owning object is unreachable); `free` checks the tag.
        unsafe { handle::free::<GuardBox>(h) }
    });
}

#[no_mangle]
pub extern "system" fn Java_io_memguard_NativeLib_isClosed<'l>(
    mut env: JNIEnv<'l>,
    _c: JClass<'l>,
    h: jlong,
) -> jboolean {
    guarded(&mut env, JNI_TRUE, |_| {
        Ok(if guard_of(h)?.open().is_ok_and(|h| !h.is_closed()) { JNI_FALSE } else { JNI_TRUE })
    })
}

/// `level(long)`: 0 normal, 1 warning, 2 critical (one atomic load).
#[no_mangle]
pub extern "system" fn Java_io_memguard_NativeLib_level<'l>(mut env: JNIEnv<'l>, _c: JClass<'l>, h: jlong) -> jint {
    guarded(&mut env, 0, |_| Ok(jint::from(guard_of(h)?.open()?.level().as_u8())))
}

#[no_mangle]
pub extern "system" fn Java_io_memguard_NativeLib_snapshot<'l>(
    mut env: JNIEnv<'l>,
    _c: JClass<'l>,
    h: jlong,
) -> jstring {
    guarded(&mut env, std::ptr::null_mut(), |env| {
        let s = json(&guard_of(h)?.open()?.snapshot())?;
        jstr(env, &s)
    })
}

#[no_mangle]
pub extern "system" fn Java_io_memguard_NativeLib_limits<'l>(mut env: JNIEnv<'l>, _c: JClass<'l>, h: jlong) -> jstring {
    guarded(&mut env, std::ptr::null_mut(), |env| {
        let s = json(&guard_of(h)?.open()?.limits())?;
        jstr(env, &s)
    })
}

#[no_mangle]
pub extern "system" fn Java_io_memguard_NativeLib_sources<'l>(
    mut env: JNIEnv<'l>,
    _c: JClass<'l>,
    h: jlong,
) -> jstring {
    guarded(&mut env, std::ptr::null_mut(), |env| {
        let s = json(&guard_of(h)?.open()?.sources())?;
        jstr(env, &s)
    })
}

#[no_mangle]
pub extern "system" fn Java_io_memguard_NativeLib_config<'l>(mut env: JNIEnv<'l>, _c: JClass<'l>, h: jlong) -> jstring {
    guarded(&mut env, std::ptr::null_mut(), |env| {
        let s = options::config_json(guard_of(h)?.open()?.config());
        jstr(env, &s)
    })
}

#[no_mangle]
pub extern "system" fn Java_io_memguard_NativeLib_prometheus<'l>(
    mut env: JNIEnv<'l>,
    _c: JClass<'l>,
    h: jlong,
) -> jstring {
    guarded(&mut env, std::ptr::null_mut(), |env| {
        let s = guard_of(h)?.open()?.prometheus();
        jstr(env, &s)
    })
}

#[no_mangle]
pub extern "system" fn Java_io_memguard_NativeLib_budget<'l>(mut env: JNIEnv<'l>, _c: JClass<'l>, h: jlong) -> jstring {
    guarded(&mut env, std::ptr::null_mut(), |env| {
        let g = guard_of(h)?;
        g.check_open()?;
        let s = json(&g.budget.stats())?;
        jstr(env, &s)
    })
}

/// `lastShed(long)`: the latest shedding run as JSON, or null.
#[no_mangle]
pub extern "system" fn Java_io_memguard_NativeLib_lastShed<'l>(
    mut env: JNIEnv<'l>,
    _c: JClass<'l>,
    h: jlong,
) -> jstring {
    guarded(&mut env, std::ptr::null_mut(), |env| match guard_of(h)?.open()?.last_shed() {
        Some(r) => {
            let s = json(&r)?;
            jstr(env, &s)
        }
        None => Ok(std::ptr::null_mut()),
    })
}

/// `nextEvent(long, long timeoutNanos)`: `{json, text}` of the next event from the pull queue,
/// or null on timeout or once closed. Blocks outside the JVM (no lock held).
#[no_mangle]
pub extern "system" fn Java_io_memguard_NativeLib_nextEvent<'l>(
    mut env: JNIEnv<'l>,
    _c: JClass<'l>,
    h: jlong,
    timeout_ns: jlong,
) -> jobjectArray {
    guarded(&mut env, std::ptr::null_mut(), |env| {
        let handle = guard_of(h)?.open()?; // a clone: close() wakes this wait, then it is dropped
        match handle.next_event(timeout(timeout_ns)) {
            Some(ev) => {
                let (json, text) = (memguard::render::event_json(&ev), memguard::render::event_text(&ev));
                jstrings(env, &[&json, &text])
            }
            None => Ok(std::ptr::null_mut()),
        }
    })
}

#[no_mangle]
pub extern "system" fn Java_io_memguard_NativeLib_droppedEvents<'l>(
    mut env: JNIEnv<'l>,
    _c: JClass<'l>,
    h: jlong,
) -> jlong {
    guarded(&mut env, 0, |_| Ok(jlong_of(guard_of(h)?.open()?.dropped_events())))
}

/// `mallocTrim(long)`: "trimmed", "released", "rate_limited", "disabled" or "unsupported".
#[no_mangle]
pub extern "system" fn Java_io_memguard_NativeLib_mallocTrim<'l>(
    mut env: JNIEnv<'l>,
    _c: JClass<'l>,
    h: jlong,
) -> jstring {
    guarded(&mut env, std::ptr::null_mut(), |env| {
        let outcome = match guard_of(h)?.open()?.malloc_trim() {
            memguard::TrimOutcome::Trimmed { released: true } => "released",
            memguard::TrimOutcome::Trimmed { released: false } => "trimmed",
            memguard::TrimOutcome::RateLimited => "rate_limited",
            memguard::TrimOutcome::Disabled => "disabled",
            _ => "unsupported",
        };
        jstr(env, outcome)
    })
}

/// `render(long, int what, boolean json)`: `memguard watch` lines rendered by the core —
/// what 0: the header (level, limit, sources), 1: the latest snapshot.
#[no_mangle]
pub extern "system" fn Java_io_memguard_NativeLib_render<'l>(
    mut env: JNIEnv<'l>,
    _c: JClass<'l>,
    h: jlong,
    what: jint,
    as_json: jboolean,
) -> jstring {
    guarded(&mut env, std::ptr::null_mut(), |env| {
        let handle = guard_of(h)?.open()?;
        let snap = handle.snapshot();
        let json = as_json == JNI_TRUE;
        let s = match what {
            0 if json => memguard::render::watch_header_json(&snap, &handle.sources()),
            0 => memguard::render::watch_header_text(&snap, &handle.sources()),
            _ if json => memguard::render::snapshot_json(&snap),
            _ => memguard::render::snapshot_text(&snap),
        };
        jstr(env, &s)
    })
}
