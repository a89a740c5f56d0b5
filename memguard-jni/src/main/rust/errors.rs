//! The one place where Rust errors become Java exceptions.
//!
//! | Rust | Java |
//! |---|---|
//! | `Error::InvalidConfig` | `MemGuardConfigException` (an `IllegalArgumentException`): `setting()`, `envVar()`, `value()` |
//! | `Error::Io`, `Error::ProcUnavailable`, `Error::ThreadSpawn` | `MemGuardIOException` (an `UncheckedIOException`): `path()` (empty for a thread), `errno()` |
//! | `Error::Malformed`, anything else, a caught panic | `MemGuardException` (a `RuntimeException`) |
//! | `BudgetExceeded` | `BudgetExceededException`: `requested()`, `available()`, `softLimit()`, `level()`, `scope()` |
//! | a closed guard | `IllegalStateException` |
//! | a `0`/foreign handle, a negative size | `IllegalStateException` / `IllegalArgumentException` |
//!
//! A Java exception already pending (a JNI call failed because Java code threw) is left as is.

use jni::objects::{JObject, JThrowable, JValue};
use jni::JNIEnv;

use crate::vm::{self, class};

/// Why a native call failed.
#[derive(Debug)]
pub(crate) enum Failure {
    Core(memguard::Error),
    Budget(memguard::BudgetExceeded),
    /// The guard was closed.
    Closed,
    /// A handle that is not a live object of the expected kind.
    BadHandle(&'static str),
    /// A bad argument from Java (negative size, unknown format).
    Argument(String),
    Jni(jni::errors::Error),
    Panic(String),
}

impl From<memguard::Error> for Failure {
    fn from(e: memguard::Error) -> Self {
        Failure::Core(e)
    }
}

impl From<memguard::BudgetExceeded> for Failure {
    fn from(e: memguard::BudgetExceeded) -> Self {
        Failure::Budget(e)
    }
}

impl From<jni::errors::Error> for Failure {
    fn from(e: jni::errors::Error) -> Self {
        Failure::Jni(e)
    }
}

/// Saturate a byte count into a `long`.
pub(crate) fn jlong_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Throw the Java exception for `failure` (unless one is already pending).
pub(crate) fn throw(env: &mut JNIEnv<'_>, failure: Failure) {
    if env.exception_check().unwrap_or(true) {
        return; // keep the pending exception: it says what went wrong
    }
    let thrown = build(env, &failure).and_then(|t| env.throw(t));
    if thrown.is_err() && !env.exception_check().unwrap_or(true) {
        // Building the exception failed without leaving one pending: fall back to a plain one.
        let _ = env.throw_new("java/lang/RuntimeException", format!("memguard: {failure:?}"));
    }
}

fn build<'local>(env: &mut JNIEnv<'local>, failure: &Failure) -> jni::errors::Result<JThrowable<'local>> {
    let Some(refs) = vm::refs() else {
        return Err(jni::errors::Error::NullPtr("memguard natives used before JNI_OnLoad"));
    };
    let obj = match failure {
        Failure::Core(e) => {
            let message = env.new_string(e.to_string())?;
            match (e, io_parts(e)) {
                (memguard::Error::InvalidConfig { setting, env_var, value, .. }, _) => {
                    let setting = env.new_string(*setting)?;
                    let var = match env_var {
                        Some(v) => JObject::from(env.new_string(*v)?),
                        None => JObject::null(),
                    };
                    let value = env.new_string(value)?;
                    env.new_object(
                        class(&refs.config_error),
                        "(Ljava/lang/String;Ljava/lang/String;Ljava/lang/String;Ljava/lang/String;)V",
                        &[
                            JValue::Object(&message),
                            JValue::Object(&setting),
                            JValue::Object(&var),
                            JValue::Object(&value),
                        ],
                    )?
                }
                (_, Some((path, errno, proc))) => {
                    let path = env.new_string(path)?;
                    env.new_object(
                        class(&refs.io_error),
                        "(Ljava/lang/String;Ljava/lang/String;IZ)V",
                        &[
                            JValue::Object(&message),
                            JValue::Object(&path),
                            JValue::Int(errno),
                            JValue::Bool(proc.into()),
                        ],
                    )?
                }
                _ => {
                    env.new_object(class(&refs.memguard_error), "(Ljava/lang/String;)V", &[JValue::Object(&message)])?
                }
            }
        }
        Failure::Budget(b) => {
            let message = env.new_string(b.to_string())?;
            let scope = match &b.scope {
                Some(s) => JObject::from(env.new_string(s)?),
                None => JObject::null(),
            };
            env.new_object(
                class(&refs.budget_exceeded),
                "(Ljava/lang/String;JJJILjava/lang/String;)V",
                &[
                    JValue::Object(&message),
                    JValue::Long(jlong_of(b.requested)),
                    JValue::Long(jlong_of(b.available)),
                    JValue::Long(jlong_of(b.soft_limit)),
                    JValue::Int(i32::from(b.level.as_u8())),
                    JValue::Object(&scope),
                ],
            )?
        }
        Failure::Closed => {
            let message = env.new_string("this memguard guard is closed")?;
            env.new_object(class(&refs.illegal_state), "(Ljava/lang/String;)V", &[JValue::Object(&message)])?
        }
        Failure::BadHandle(what) => {
            let message = env.new_string(format!("memguard: not a live {what} handle (closed or freed)"))?;
            env.new_object(class(&refs.illegal_state), "(Ljava/lang/String;)V", &[JValue::Object(&message)])?
        }
        Failure::Argument(why) => {
            let message = env.new_string(why)?;
            env.new_object(class(&refs.illegal_argument), "(Ljava/lang/String;)V", &[JValue::Object(&message)])?
        }
        Failure::Jni(e) => {
            let message = env.new_string(format!("memguard: JNI call failed: {e}"))?;
            env.new_object(class(&refs.memguard_error), "(Ljava/lang/String;)V", &[JValue::Object(&message)])?
        }
        Failure::Panic(what) => {
            let message = env.new_string(format!("memguard: internal error (a Rust panic, caught): {what}"))?;
            env.new_object(class(&refs.memguard_error), "(Ljava/lang/String;)V", &[JValue::Object(&message)])?
        }
    };
    Ok(JThrowable::from(obj))
}

/// The path (empty for a thread), errno and "is /proc" flag of the errors that become a
/// `MemGuardIOException`.
fn io_parts(e: &memguard::Error) -> Option<(String, i32, bool)> {
    let (path, source, proc) = match e {
        memguard::Error::Io { path, source } => (path.to_string_lossy().into_owned(), source, false),
        memguard::Error::ProcUnavailable { path, source } => (path.to_string_lossy().into_owned(), source, true),
        memguard::Error::ThreadSpawn { source, .. } => (String::new(), source, false),
        _ => return None,
    };
    Some((path, source.raw_os_error().unwrap_or(0), proc))
}
