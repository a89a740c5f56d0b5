//! A node-mode fixture: a root with only `/proc/meminfo` and no cgroup, so a guard runs in node
//! mode ("limit" = `MemTotal` − eviction threshold, usage = `MemTotal` − `MemAvailable`);
//! rewriting the file drives real level changes through the real reactor, dispatcher and
//! shedding thread. Shared by the integration tests (`watch_node.rs`) and the unit tests that
//! need crate internals (`src/watch/tests.rs`), which include it by `#[path]`: the including
//! module must have `Builder` (the watcher's builder) in scope.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::Builder;

pub const TOTAL_KB: u64 = 1_000_000;

pub struct Node {
    dir: tempfile::TempDir,
}

impl Node {
    pub fn new(used_pct: u64) -> Node {
        let n = Node { dir: tempfile::tempdir().expect("tmp") };
        std::fs::create_dir_all(n.dir.path().join("proc")).expect("mkdir");
        n.set_used(used_pct);
        n
    }

    /// Rewrite MemAvailable in place (same length, one write) so a concurrent read never sees
    /// a truncated file.
    pub fn set_used(&self, pct: u64) {
        let avail = TOTAL_KB * (100 - pct) / 100;
        let text = format!("MemTotal:       {TOTAL_KB:>10} kB\nMemAvailable:   {avail:>10} kB\n");
        let f = OpenOptions::new().create(true).write(true).truncate(false).open(self.path()).expect("open");
        f.write_all_at(text.as_bytes(), 0).expect("write");
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("proc/meminfo")
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// A builder on this root that samples every 1–10 ms and holds kernel events 50 ms.
    pub fn builder(&self) -> Builder {
        Builder::new()
            .root(self.root())
            .eviction_threshold(0)
            .sample_interval(Duration::from_millis(1), Duration::from_millis(10))
            .event_hold(Duration::from_millis(50))
    }
}

/// Wait until `f` holds, polling every 2 ms; panics naming `what` after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!("timed out waiting for {what}");
}
