//! The `JavaVM` and the classes and method ids cached when the library is loaded.

use std::sync::OnceLock;

use jni::objects::{GlobalRef, JClass, JMethodID};
use jni::sys::{jint, JNI_ERR, JNI_VERSION_1_8};
use jni::{JNIEnv, JavaVM};

/// What the natives need from the JVM, cached once in `JNI_OnLoad`.
pub(crate) struct Refs {
    pub(crate) vm: JavaVM,
    pub(crate) budget_exceeded: GlobalRef,
    pub(crate) config_error: GlobalRef,
    pub(crate) io_error: GlobalRef,
    pub(crate) memguard_error: GlobalRef,
    pub(crate) illegal_state: GlobalRef,
    pub(crate) illegal_argument: GlobalRef,
    pub(crate) string: GlobalRef,
    /// `io.memguard.ShedderCall.shed(long) -> long` (catches everything the user's code throws).
    pub(crate) shed_method: JMethodID,
}

static REFS: OnceLock<Refs> = OnceLock::new();

/// The cached references (`None` only if `JNI_OnLoad` failed, which fails the load).
pub(crate) fn refs() -> Option<&'static Refs> {
    REFS.get()
}

/// A cached class reference as a `JClass` (the global reference outlives every use).
pub(crate) fn class(global: &GlobalRef) -> &JClass<'static> {
    <&JClass>::from(global.as_obj())
}

pub(crate) fn on_load(raw: *mut jni::sys::JavaVM) -> jint {
    if raw.is_null() {
        return JNI_ERR;
    }
    // SAFETY: the JVM passes JNI_OnLoad a valid, non-null JavaVM pointer that stays valid for as
    // long as this library is loaded (checked for null above).
    let vm = match unsafe { JavaVM::from_raw(raw) } {
        Ok(vm) => vm,
        Err(_) => return JNI_ERR,
    };
    let Ok(mut env) = vm.get_env() else { return JNI_ERR };
    match load_refs(&mut env) {
        Ok(refs) => {
            // The JVM refuses a second load in the same class loader; a load in another class
            // loader keeps the first one's references (the classes are the same by name).
            let _ = REFS.set(refs);
            crate::logbridge::install();
            JNI_VERSION_1_8
        }
        // A pending NoClassDefFoundError / NoSuchMethodError explains the failure.
        Err(_) => JNI_ERR,
    }
}

fn load_refs(env: &mut JNIEnv<'_>) -> jni::errors::Result<Refs> {
    let mut global = |name: &str| -> jni::errors::Result<GlobalRef> {
        let class = env.find_class(name)?;
        let global = env.new_global_ref(&class)?;
        env.delete_local_ref(class)?;
        Ok(global)
    };
    let budget_exceeded = global("io/memguard/BudgetExceededException")?;
    let config_error = global("io/memguard/MemGuardConfigException")?;
    let io_error = global("io/memguard/MemGuardIOException")?;
    let memguard_error = global("io/memguard/MemGuardException")?;
    let illegal_state = global("java/lang/IllegalStateException")?;
    let illegal_argument = global("java/lang/IllegalArgumentException")?;
    let string = global("java/lang/String")?;
    let shedder_call = global("io/memguard/ShedderCall")?;
    let shed_method = env.get_method_id(class(&shedder_call), "shed", "(J)J")?;
    Ok(Refs {
        vm: env.get_java_vm()?,
        budget_exceeded,
        config_error,
        io_error,
        memguard_error,
        illegal_state,
        illegal_argument,
        string,
        shed_method,
    })
}
