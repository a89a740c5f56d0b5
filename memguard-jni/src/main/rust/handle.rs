//! Native objects behind Java `long` handles: boxed with a tag naming their kind, checked on
//! every use (null, alignment, tag) and freed exactly once (the Java side owns the handle and
//! frees it once; the tag is cleared on free so a stale handle is refused while the memory has
//! not been reused).

use crate::errors::Failure;

/// A kind of native object with its tag.
pub(crate) trait Kind {
    const TAG: u64;
    const NAME: &'static str;
}

#[repr(C)]
struct Tagged<T> {
    tag: u64,
    value: T,
}

/// Box `value` and hand out its address as a `long`.
pub(crate) fn into_handle<T: Kind>(value: T) -> i64 {
    Box::into_raw(Box::new(Tagged { tag: T::TAG, value })) as i64
}

fn pointer<T: Kind>(handle: i64) -> Result<*mut Tagged<T>, Failure> {
    let ptr = handle as usize as *mut Tagged<T>;
    if ptr.is_null() || (ptr as usize) % std::mem::align_of::<Tagged<T>>() != 0 {
        return Err(Failure::BadHandle(T::NAME));
    }
    Ok(ptr)
}

/// The object behind `handle`.
///
/// # Safety
/// `handle` must come from [`into_handle::<T>`] and not have been [`free`]d: the Java owner
/// guarantees it (it passes a handle only while its wrapper is reachable, and frees once).
pub(crate) unsafe fn get<'a, T: Kind>(handle: i64) -> Result<&'a T, Failure> {
    let ptr = pointer::<T>(handle)?;
    // SAFETY: per this function's contract `ptr` points to a live `Tagged<T>`; the tag check
    // refuses a handle of another kind (or a freed one whose memory was not reused yet).
    let tagged = unsafe { &*ptr };
    if tagged.tag != T::TAG {
        return Err(Failure::BadHandle(T::NAME));
    }
    Ok(&tagged.value)
}

/// Drop the object behind `handle`.
///
/// # Safety
/// As [`get`], and no other thread may use `handle` during or after this call.
pub(crate) unsafe fn free<T: Kind>(handle: i64) -> Result<(), Failure> {
    let ptr = pointer::<T>(handle)?;
    // SAFETY: per this function's contract `ptr` is a live `Tagged<T>` made by `Box::into_raw`
    // and nobody else uses it any more; the tag is checked before the box is reclaimed.
    unsafe {
        if (*ptr).tag != T::TAG {
            return Err(Failure::BadHandle(T::NAME));
        }
        (*ptr).tag = 0;
        drop(Box::from_raw(ptr));
    }
    Ok(())
}
