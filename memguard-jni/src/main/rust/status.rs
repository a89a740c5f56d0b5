//! Process-wide natives: the `status` report (rendered by the core, exactly what
//! `memguard status` prints), the version and the names bindings list.

use jni::objects::{JClass, JString};
use jni::sys::{jboolean, jlong, jobjectArray, jstring, JNI_TRUE};
use jni::JNIEnv;

use crate::boundary::guarded;
use crate::errors::Failure;
use crate::guard::{jstr, jstrings, rust_string};

/// `renderStatus(String format, boolean fromEnv)`: `format` is "text", "json" or "prometheus".
#[no_mangle]
pub extern "system" fn Java_io_memguard_NativeLib_renderStatus<'l>(
    mut env: JNIEnv<'l>,
    _c: JClass<'l>,
    format: JString<'l>,
    from_env: jboolean,
) -> jstring {
    guarded(&mut env, std::ptr::null_mut(), |env| {
        let format = rust_string(env, &format)?;
        if !matches!(format.as_str(), "text" | "json" | "prometheus") {
            return Err(Failure::Argument(format!("format must be text, json or prometheus, not {format:?}")));
        }
        let b =
            if from_env == JNI_TRUE { memguard::watch::Builder::from_env()? } else { memguard::watch::Builder::new() };
        let config = b.config()?;
        let status = memguard::Status::gather(&config.detector(), &config, false)?;
        let out = match format.as_str() {
            "json" => memguard::render::status_json(&status),
            "prometheus" => memguard::render::status_prometheus(&status),
            _ => memguard::render::status_text(&status, config.pid()),
        };
        jstr(env, &out)
    })
}

#[no_mangle]
pub extern "system" fn Java_io_memguard_NativeLib_version<'l>(mut env: JNIEnv<'l>, _c: JClass<'l>) -> jstring {
    guarded(&mut env, std::ptr::null_mut(), |env| jstr(env, memguard::VERSION))
}

/// `envVars()`: every `MEMGUARD_*` variable the builder reads.
#[no_mangle]
pub extern "system" fn Java_io_memguard_NativeLib_envVars<'l>(mut env: JNIEnv<'l>, _c: JClass<'l>) -> jobjectArray {
    guarded(&mut env, std::ptr::null_mut(), |env| {
        let names: Vec<&str> = memguard::watch::builder::ENV_VARS.iter().map(|v| v.name).collect();
        jstrings(env, &names)
    })
}

/// `eventKinds()`: every event kind name (`EventKind::NAMES`).
#[no_mangle]
pub extern "system" fn Java_io_memguard_NativeLib_eventKinds<'l>(mut env: JNIEnv<'l>, _c: JClass<'l>) -> jobjectArray {
    guarded(&mut env, std::ptr::null_mut(), |env| jstrings(env, memguard::EventKind::NAMES))
}

/// `monotonicNanos()`: the clock of events and snapshots (`CLOCK_MONOTONIC`, like `System.nanoTime()`).
#[no_mangle]
pub extern "system" fn Java_io_memguard_NativeLib_monotonicNanos<'l>(mut env: JNIEnv<'l>, _c: JClass<'l>) -> jlong {
    guarded(&mut env, 0, |_| Ok(crate::errors::jlong_of(memguard::monotonic_ns())))
}

/// `panicForTest()`: panics inside the boundary (the test checks it arrives as an exception).
#[no_mangle]
pub extern "system" fn Java_io_memguard_NativeLib_panicForTest<'l>(mut env: JNIEnv<'l>, _c: JClass<'l>) {
    guarded(&mut env, (), |_| -> Result<(), Failure> { panic!("deliberate panic for the boundary test") });
}
