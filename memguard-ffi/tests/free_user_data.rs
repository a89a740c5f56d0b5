//! `free_user_data` runs exactly once, whoever removes the callback: the subscription (from
//! another thread: before `memguard_subscription_free` returns), the guard (a detached callback,
//! a live subscription handle), never again afterwards. The C suite (`tests/c`) checks the same
//! and the rest of the thread contract from C; this runs in `cargo test`.

use std::ffi::{c_void, CString};
use std::sync::atomic::{AtomicU32, Ordering};

use memguard_ffi::callbacks::{memguard_on_event, memguard_subscription_detach, memguard_subscription_free};
use memguard_ffi::config::{memguard_config_free, memguard_config_new, memguard_config_set_root};
use memguard_ffi::guard::{memguard_guard_free, memguard_guard_new};
use memguard_ffi::memguard_result::MEMGUARD_OK;
use memguard_ffi::types::memguard_event;

unsafe extern "C" fn on_event(_user_data: *mut c_void, _event: *const memguard_event) {}

unsafe extern "C" fn count_free(user_data: *mut c_void) {
    // SAFETY: the tests pass a pointer to a live `AtomicU32`.
    unsafe { &*user_data.cast::<AtomicU32>() }.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn free_user_data_runs_exactly_once() {
    // Node mode on a fixture root: no cgroup, host memory from a fixture meminfo.
    let root = std::env::temp_dir().join(format!("memguard-ffi-test-{}", std::process::id()));
    std::fs::create_dir_all(root.join("proc")).expect("mkdir");
    std::fs::write(root.join("proc/meminfo"), "MemTotal: 1000000 kB\nMemAvailable: 900000 kB\n").expect("meminfo");
    let root_c = CString::new(root.to_str().expect("utf-8")).expect("no NUL");
    let mut cfg = std::ptr::null_mut();
    assert_eq!(memguard_config_new(&mut cfg), MEMGUARD_OK);
    assert_eq!(memguard_config_set_root(cfg, root_c.as_ptr()), MEMGUARD_OK);
    let mut guard = std::ptr::null_mut();
    assert_eq!(memguard_guard_new(cfg, &mut guard), MEMGUARD_OK);
    memguard_config_free(cfg);

    let (a, b, c) = (AtomicU32::new(0), AtomicU32::new(0), AtomicU32::new(0));
    let ud = |n: &AtomicU32| std::ptr::from_ref(n).cast_mut().cast::<c_void>();
    let (mut sa, mut sb, mut sc) = (std::ptr::null_mut(), std::ptr::null_mut(), std::ptr::null_mut());
    assert_eq!(memguard_on_event(guard, Some(on_event), ud(&a), Some(count_free), &mut sa), MEMGUARD_OK);
    assert_eq!(memguard_on_event(guard, Some(on_event), ud(&b), Some(count_free), &mut sb), MEMGUARD_OK);
    assert_eq!(memguard_on_event(guard, Some(on_event), ud(&c), Some(count_free), &mut sc), MEMGUARD_OK);

    // Removed from another thread: called before memguard_subscription_free returns.
    let sa_addr = sa as usize;
    std::thread::spawn(move || memguard_subscription_free(sa_addr as *mut _)).join().expect("thread");
    assert_eq!(a.load(Ordering::SeqCst), 1);
    // Detached: called when the guard goes, like the one whose handle is still alive.
    memguard_subscription_detach(sb);
    assert_eq!(b.load(Ordering::SeqCst), 0);
    assert_eq!(memguard_guard_free(guard), MEMGUARD_OK);
    assert_eq!((b.load(Ordering::SeqCst), c.load(Ordering::SeqCst)), (1, 1));
    // The handle outlives the guard: freeing it calls nothing again.
    memguard_subscription_free(sc);
    assert_eq!((a.load(Ordering::SeqCst), b.load(Ordering::SeqCst), c.load(Ordering::SeqCst)), (1, 1, 1));
    let _ = std::fs::remove_dir_all(&root);
}
