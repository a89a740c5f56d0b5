//! Closing (or dropping) a guard releases every fd and thread: 100 start/close cycles leave the
//! process with the fds and threads it had. In its own test binary: fd and thread counts are
//! process-wide.

use std::time::Duration;

use memguard::MemGuard;

/// The tests of this binary share the process's fd and thread tables: run them one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[path = "support/process.rs"]
#[allow(dead_code)] // the leak counters only
mod process;

use process::{count, guard_threads};

#[test]
fn start_close_cycles_leak_no_fd_or_thread() {
    let _serial = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let root = tempfile::tempdir().expect("tmp");
    std::fs::create_dir_all(root.path().join("proc")).expect("mkdir");
    std::fs::write(root.path().join("proc/meminfo"), "MemTotal: 1000000 kB\nMemAvailable: 900000 kB\n").expect("write");
    let start = |drop_only: bool| {
        let g = MemGuard::builder()
            .root(root.path())
            .sample_interval(Duration::from_millis(1), Duration::from_millis(5))
            .start()
            .expect("start");
        if !drop_only {
            g.close();
        }
    };
    start(false); // warm up lazily-initialised process state
    let (fds, threads) = (count("/proc/self/fd"), count("/proc/self/task"));
    assert_eq!(guard_threads(), 0, "a closed guard left a thread");
    for i in 0..100 {
        start(i % 2 == 0);
    }
    // Exited threads are reaped by join; give the kernel a moment to update /proc.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(count("/proc/self/fd"), fds, "fds leaked");
    assert_eq!(guard_threads(), 0, "guard threads leaked");
    assert!(
        count("/proc/self/task") <= threads,
        "threads leaked: {} after, {threads} before",
        count("/proc/self/task")
    );
}

#[test]
fn guard_on_this_machine_arms_sources_and_reports_them() {
    // Whatever this machine offers, the guard starts, lists the sampler and every tried source.
    let _serial = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let g = MemGuard::start().expect("start on this machine");
    let sources = g.sources();
    assert!(sources.iter().any(|s| s.name == "sampler" && s.armed), "{sources:#?}");
    assert!(sources.iter().all(|s| s.detail.is_some()), "{sources:#?}");
    assert!(g.snapshot().samples >= 1);
}
