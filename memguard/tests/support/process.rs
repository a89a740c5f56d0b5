//! This process's descriptors and memguard's threads, as `/proc/self` lists them (the leak
//! checks of `watch_resources.rs` and `thread_limits.rs`), and programs made runnable by an
//! unprivileged uid (`thread_limits.rs`, `confine.rs`). Self-contained: the standalone test
//! binaries include this file alone.

use std::path::Path;

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

/// [`guard_threads`] once joined threads are gone from `/proc` (a joined thread's task can
/// stay listed for a moment after the join returns): polls for up to a second, then counts.
pub fn guard_threads_once_exited() -> usize {
    for _ in 0..100 {
        if guard_threads() == 0 {
            return 0;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    guard_threads()
}

/// `program` if uid 65534 may run it where it is (every directory above it searchable by
/// others, the file readable and executable by others), else a copy in a world-readable
/// directory under the system's temporary directory (a checkout under a private home, such as
/// `/root`, is not reachable for 65534). Names without a `/` are looked up in `PATH` as usual.
pub fn runnable_by_anyone(program: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = Path::new(program);
    if !path.is_absolute() {
        return program.to_owned();
    }
    let mode = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.permissions().mode());
    let reachable = path.ancestors().skip(1).all(|d| mode(d) & 0o001 != 0) && mode(path) & 0o005 == 0o005;
    if reachable {
        return program.to_owned();
    }
    let dir = std::env::temp_dir().join(format!("memguard-confined-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let copy = dir.join(path.file_name().expect("a file name"));
    if !copy.exists() {
        std::fs::copy(path, &copy).unwrap_or_else(|e| panic!("copy {program}: {e}"));
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    copy.to_string_lossy().into_owned()
}
