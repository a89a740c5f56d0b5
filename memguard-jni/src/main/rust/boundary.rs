//! The one boundary every exported function goes through: a panic never unwinds into the JVM,
//! and every error becomes a Java exception ([`crate::errors`]).

use std::panic::{catch_unwind, AssertUnwindSafe};

use jni::JNIEnv;

use crate::errors::{self, Failure};

/// Run `f`; on `Err` throw the matching Java exception, on a panic throw a `MemGuardException`
/// naming it; either way return `fallback` (which the JVM ignores while an exception is
/// pending).
pub(crate) fn guarded<'local, R>(
    env: &mut JNIEnv<'local>,
    fallback: R,
    f: impl FnOnce(&mut JNIEnv<'local>) -> Result<R, Failure>,
) -> R {
    match catch_unwind(AssertUnwindSafe(|| f(env))) {
        Ok(Ok(value)) => value,
        Ok(Err(failure)) => {
            errors::throw(env, failure);
            fallback
        }
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "<non-string panic payload>".to_owned());
            errors::throw(env, Failure::Panic(message));
            fallback
        }
    }
}
