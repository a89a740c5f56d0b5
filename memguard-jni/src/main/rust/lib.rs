//! `libmemguard_jni.so`: the native half of memguard's Java package (`io.memguard`).
//!
//! Thin by design: every decision lives in the `memguard` crate. This library converts values
//! (core types to JSON through their `serde` form, read by `io.memguard.Json` into records),
//! maps errors in one place ([`errors`]), and moves calls across the boundary:
//!
//! * every exported function runs inside [`boundary::guarded`]: a Rust panic is caught and
//!   becomes a Java exception, never an unwind into the JVM; every handle (`long`) is checked
//!   ([`handle`]) before use;
//! * listeners: no Rust thread ever attaches to the JVM for them. The core's `on_event` /
//!   `on_level` callbacks only queue a JSON message ([`listen`]); a Java-owned daemon thread
//!   blocks in `nextListenerMessage` and calls the Java listeners;
//! * shedders must answer synchronously with the bytes they freed, so the core's shedding
//!   thread attaches to the JVM as a daemon for the duration of one call and detaches right
//!   after ([`shedder`]): no native thread stays attached, and the JVM never waits for one at
//!   exit;
//! * `tracing` events of the core are queued and pulled by a Java daemon thread that logs them
//!   through `System.Logger` ([`logbridge`]);
//! * reports (`status`, event lines, snapshots) are rendered by `memguard::render`.
//!
//! Natives are the static methods of `io.memguard.NativeLib`.

mod boundary;
mod errors;
mod guard;
mod handle;
mod listen;
mod logbridge;
mod options;
mod reservation;
mod shedder;
mod status;
mod vm;

pub use memguard::VERSION;

/// Called by the JVM when `System.load` / `System.loadLibrary` loads this library: caches the
/// `JavaVM` and the classes the natives need (with the class loader of the loading class, so it
/// works inside application servers), installs the log bridge.
#[no_mangle]
pub extern "system" fn JNI_OnLoad(vm: *mut jni::sys::JavaVM, _reserved: *mut std::ffi::c_void) -> jni::sys::jint {
    std::panic::catch_unwind(|| vm::on_load(vm)).unwrap_or(jni::sys::JNI_ERR)
}
