//! This process's descriptors and memguard's threads, as `/proc/self` lists them (for the
//! leak checks of `watch_resources.rs` and `thread_limits.rs`; each includes this file alone).

/// Entries of a `/proc/self` directory (`fd`, `task`); 0 when unreadable.
pub fn count(dir: &str) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

/// Threads of this process named `memguard-*` (the guard names every thread it spawns). The
/// process's total thread count is not a measure: the test harness's threads come and go.
pub fn guard_threads() -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0 };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.starts_with("memguard-"))
        .count()
}
