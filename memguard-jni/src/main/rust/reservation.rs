//! Reservations: an owned core [`memguard::Reservation`] boxed behind a `long`, released
//! exactly once (the Java `Reservation` swaps its handle to 0 atomically before calling
//! `release`).

use jni::objects::JClass;
use jni::sys::jlong;
use jni::JNIEnv;

use crate::boundary::guarded;
use crate::errors::Failure;
use crate::guard::guard_of;
use crate::handle::{self, Kind};

/// Held only to be dropped: dropping returns the bytes.
struct Held {
    _reservation: memguard::Reservation<'static>,
}

impl Kind for Held {
    const TAG: u64 = 0x6d67_5f72_6573_7276; // "mg_resrv"
    const NAME: &'static str = "Reservation";
}

fn bytes(n: jlong) -> Result<u64, Failure> {
    u64::try_from(n).map_err(|_| Failure::Argument(format!("bytes must not be negative: {n}")))
}

/// `reserve(long guard, long bytes)`: a reservation handle, or `BudgetExceededException`.
#[no_mangle]
pub extern "system" fn Java_io_memguard_NativeLib_reserve<'l>(
    mut env: JNIEnv<'l>,
    _c: JClass<'l>,
    h: jlong,
    n: jlong,
) -> jlong {
    guarded(&mut env, 0, |_| {
        let g = guard_of(h)?;
        g.check_open()?;
        let r = g.budget.try_reserve_owned(bytes(n)?)?;
        Ok(handle::into_handle(Held { _reservation: r }))
    })
}

/// `tryReserve(long guard, long bytes)`: a reservation handle, or 0 when refused.
#[no_mangle]
pub extern "system" fn Java_io_memguard_NativeLib_tryReserve<'l>(
    mut env: JNIEnv<'l>,
    _c: JClass<'l>,
    h: jlong,
    n: jlong,
) -> jlong {
    guarded(&mut env, 0, |_| {
        let g = guard_of(h)?;
        g.check_open()?;
        Ok(g.budget.try_reserve_owned(bytes(n)?).map_or(0, |r| handle::into_handle(Held { _reservation: r })))
    })
}

/// `reserveForced(long guard, long bytes)`: always granted (essential work), counted.
#[no_mangle]
pub extern "system" fn Java_io_memguard_NativeLib_reserveForced<'l>(
    mut env: JNIEnv<'l>,
    _c: JClass<'l>,
    h: jlong,
    n: jlong,
) -> jlong {
    guarded(&mut env, 0, |_| {
        let g = guard_of(h)?;
        g.check_open()?;
        Ok(handle::into_handle(Held { _reservation: g.budget.try_reserve_forced_owned(bytes(n)?) }))
    })
}

/// `release(long reservation)`: return the bytes and free the handle (called once).
#[no_mangle]
pub extern "system" fn Java_io_memguard_NativeLib_release<'l>(mut env: JNIEnv<'l>, _c: JClass<'l>, r: jlong) {
    guarded(&mut env, (), |_| {
        // SAFETY: the Java `Reservation` hands its handle over exactly once (an atomic swap to
        // 0), so no other thread uses it during or after this call; `free` checks the tag.
        unsafe { handle::free::<Held>(r) }
    });
}
