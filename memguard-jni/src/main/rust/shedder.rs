//! Shedders: the core calls them synchronously on its shedding thread with a target and needs
//! the bytes freed back, so that thread attaches to the JVM for the duration of one call.
//!
//! It attaches **as a daemon** (`AttachCurrentThreadAsDaemon`) and detaches right after the
//! call: the JVM never waits for it at exit (a non-daemon attachment would make
//! `DestroyJavaVM` wait for a shedder in flight), and no native thread stays attached between
//! calls (`NativeLib.attachedThreads()` is 0 when no shedder runs). Attaching costs tens of
//! microseconds (`NativeLib.benchAttach`, figures in the README), nothing next to a shedding
//! run, which happens at most once per shed interval. The Java side
//! (`io.memguard.ShedderCall.shed`) catches and logs whatever the user's code throws, so the
//! call returns normally; a pending exception is still cleared here before detaching.

use jni::objects::{GlobalRef, JClass, JObject, JString};
use jni::signature::{Primitive, ReturnType};
use jni::sys::{jboolean, jint, jlong, jvalue, JNI_FALSE, JNI_TRUE};
use jni::JNIEnv;

use crate::boundary::guarded;
use crate::guard::{guard_of, rust_string};
use crate::vm;

/// Call `call.shed(target)` from a memguard thread. 0 when the JVM cannot be entered (it is
/// shutting down) or the call failed.
fn call_java(call: &GlobalRef, target: u64) -> u64 {
    let Some(refs) = vm::refs() else { return 0 };
    let already_attached = refs.vm.get_env().is_ok();
    let freed = {
        let Ok(mut env) = refs.vm.attach_current_thread_as_daemon() else { return 0 };
        let target = jvalue { j: i64::try_from(target).unwrap_or(i64::MAX) };
        // SAFETY: `shed_method` is `ShedderCall.shed(J)J`, looked up in JNI_OnLoad on that class,
        // and `call` is a global reference to a `ShedderCall` (the Java signature of
        // `registerShedder` takes one); the single argument is a long, as the signature says.
        let result = unsafe {
            env.call_method_unchecked(
                call.as_obj(),
                refs.shed_method,
                ReturnType::Primitive(Primitive::Long),
                &[target],
            )
        };
        let freed = result.and_then(|v| v.j()).map_or(0, |v| u64::try_from(v).unwrap_or(0));
        if env.exception_check().unwrap_or(false) {
            let _ = env.exception_clear();
        }
        freed
    }; // the JNIEnv is gone before detaching
    if !already_attached {
        // SAFETY: this thread was attached above by `attach_current_thread_as_daemon` (a
        // thread-local attachment, not a scoped guard) and no JNIEnv of it is used after this.
        unsafe { refs.vm.detach_current_thread() };
    }
    freed
}

/// `registerShedder(long guard, String name, int priority, ShedderCall call)`: returns an id.
#[no_mangle]
pub extern "system" fn Java_io_memguard_NativeLib_registerShedder<'l>(
    mut env: JNIEnv<'l>,
    _c: JClass<'l>,
    h: jlong,
    name: JString<'l>,
    priority: jint,
    call: JObject<'l>,
) -> jlong {
    guarded(&mut env, 0, |env| {
        let g = guard_of(h)?;
        let handle = g.open()?;
        let name = rust_string(env, &name)?;
        let call = env.new_global_ref(call)?;
        // The closure owns the global reference: removing the shedder (or closing the guard)
        // drops it, on the removing thread (attached only for the deletion if it is not).
        let sub = handle.register_shedder(name, priority, move |target| call_java(&call, target));
        let id = g.keep(sub)?;
        Ok(i64::try_from(id).unwrap_or(i64::MAX))
    })
}

/// `unregister(long guard, long id)`: remove a shedder, waiting for a running call of it
/// (unless called from inside it). Returns whether it was registered.
#[no_mangle]
pub extern "system" fn Java_io_memguard_NativeLib_unregister<'l>(
    mut env: JNIEnv<'l>,
    _c: JClass<'l>,
    h: jlong,
    id: jlong,
) -> jboolean {
    guarded(&mut env, JNI_FALSE, |_| {
        let g = guard_of(h)?;
        let removed = u64::try_from(id).is_ok_and(|id| g.remove(id));
        Ok(if removed { JNI_TRUE } else { JNI_FALSE })
    })
}

/// `attachedThreads()`: native threads attached to the JVM by this library right now.
#[no_mangle]
pub extern "system" fn Java_io_memguard_NativeLib_attachedThreads<'l>(mut env: JNIEnv<'l>, _c: JClass<'l>) -> jlong {
    guarded(&mut env, 0, |_| Ok(vm::refs().map_or(0, |r| i64::try_from(r.vm.threads_attached()).unwrap_or(i64::MAX))))
}

/// `benchAttach(int n, boolean daemon)`: on a fresh native thread, attach and detach `n` times
/// (as a daemon for one call, as shedders do, or scoped non-daemon); nanoseconds per cycle.
#[no_mangle]
pub extern "system" fn Java_io_memguard_NativeLib_benchAttach<'l>(
    mut env: JNIEnv<'l>,
    _c: JClass<'l>,
    n: jint,
    daemon: jboolean,
) -> jlong {
    guarded(&mut env, -1, |_| {
        let refs = vm::refs().ok_or(crate::errors::Failure::BadHandle("JavaVM"))?;
        let n = u32::try_from(n).unwrap_or(0).max(1);
        let daemon = daemon == JNI_TRUE;
        let per_cycle = std::thread::spawn(move || {
            let start = std::time::Instant::now();
            for _ in 0..n {
                if daemon {
                    if refs.vm.attach_current_thread_as_daemon().is_err() {
                        return -1;
                    }
                    // SAFETY: attached just above as a thread-local daemon attachment; no JNIEnv
                    // of it is kept.
                    unsafe { refs.vm.detach_current_thread() };
                } else {
                    match refs.vm.attach_current_thread() {
                        Ok(guard) => drop(guard),
                        Err(_) => return -1,
                    }
                }
            }
            i64::try_from(start.elapsed().as_nanos() / u128::from(n)).unwrap_or(i64::MAX)
        })
        .join()
        .unwrap_or(-1);
        Ok(per_cycle)
    })
}
