//! Fork safety in the core (issue #9): a child that inherits a running guard drops it without
//! joining threads that do not exist, without waking the parent's reactor, and closes its
//! copies of the guard's descriptors; the parent's guard keeps working.
//!
//! Node mode on a fixture root (no cgroup needed): `/proc/meminfo` rewritten to drive levels.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use memguard::{Level, MemGuard};

const TOTAL_KB: u64 = 1_000_000;

fn set_used(dir: &std::path::Path, pct: u64) {
    let avail = TOTAL_KB * (100 - pct) / 100;
    let text = format!("MemTotal:       {TOTAL_KB:>10} kB\nMemAvailable:   {avail:>10} kB\n");
    let f = OpenOptions::new().create(true).write(true).truncate(false).open(dir.join("proc/meminfo")).expect("open");
    f.write_all_at(text.as_bytes(), 0).expect("write");
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(Iterator::count).unwrap_or(0)
}

#[test]
fn forked_child_drops_an_inherited_guard_and_the_parent_keeps_watching() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::create_dir_all(dir.path().join("proc")).expect("mkdir");
    set_used(dir.path(), 10);
    let guard = MemGuard::builder()
        .root(dir.path())
        .eviction_threshold(0)
        .sample_interval(Duration::from_millis(1), Duration::from_millis(10))
        .start()
        .expect("start");
    let before = open_fds();
    let on_level = guard.on_level(|_, _| {});
    // SAFETY: the child only drops the guard (the code under test: atomics and close(2)), reads
    // /proc/self/fd (glibc's malloc is fork-safe) and leaves with _exit, never returning into the
    // test harness; the parent waits for it.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let inherited = open_fds();
        let closed_before = guard.is_closed();
        let t = Instant::now();
        drop(on_level); // must not take the registry lock a parent thread may have held
        drop(guard);
        let took = t.elapsed();
        let after = open_fds();
        let ok = closed_before && took < Duration::from_millis(100) && inherited >= after + 3;
        eprintln!("child: guard closed in child: {closed_before}; drop took {took:?}; fds {inherited} -> {after}");
        // SAFETY: ends the child without running the parent's destructors or the test harness.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child; `status` is a live integer.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "child failed: status {status}");
    // The parent's guard is untouched: its fds are open and it still follows memory.
    assert!(!guard.is_closed());
    assert_eq!(open_fds(), before);
    set_used(dir.path(), 95);
    let deadline = Instant::now() + Duration::from_secs(5);
    while guard.level() != Level::Critical {
        assert!(Instant::now() < deadline, "the parent's guard stopped watching after the fork");
        std::thread::sleep(Duration::from_millis(2));
    }
    drop(on_level);
    guard.close();
}
