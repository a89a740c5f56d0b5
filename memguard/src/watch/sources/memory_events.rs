//! cgroup v2 `memory.events`: counters `low high max oom oom_kill oom_group_kill`. The kernel
//! signals a change with `EPOLLPRI|EPOLLERR` (kernfs); the counters are re-read on each wake
//! and compared with the previous read, so coalesced notifications lose nothing and a spurious
//! wake (nothing changed) produces nothing. A read that fails means the cgroup is gone:
//! the source reports [`Signal::Gone`] and is deregistered (no busy loop on a dead fd).

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use crate::fsroot::FsRoot;
use crate::parse::memory_stat;
use crate::sys::{Ready, PRI};
use crate::watch::snapshot::KernelCounters;
use crate::watch::EventKind;

use super::{Keep, Signal, Source};

/// Counters of one `memory.events` read.
pub fn parse_counters(text: &str) -> KernelCounters {
    let s = memory_stat::parse(text);
    KernelCounters {
        high: s.get("high").unwrap_or(0),
        max: s.get("max").unwrap_or(0),
        oom: s.get("oom").unwrap_or(0),
        oom_kill: s.get("oom_kill").unwrap_or(0),
    }
}

/// The `memory.events` source.
#[derive(Debug)]
pub struct MemoryEvents {
    file: File,
    path: String,
    last: KernelCounters,
    debounce: Duration,
    last_emit: [Option<Instant>; 2],
    pending: [u64; 2],
}

impl MemoryEvents {
    /// Open `<dir>/memory.events` and take the baseline (existing counts are not events).
    ///
    /// # Errors
    /// Why it cannot be armed.
    pub fn open(fs: &FsRoot, dir: &str, debounce: Duration) -> Result<Box<dyn Source>, String> {
        let path = format!("{dir}/memory.events");
        let file = File::open(fs.path(&path)).map_err(|e| format!("{path}: {e}"))?;
        let last = read(&file).map_err(|e| format!("{path}: {e}"))?;
        Ok(Box::new(MemoryEvents { file, path, last, debounce, last_emit: [None; 2], pending: [0; 2] }))
    }

    /// Debounced High/Max: at most one event per `debounce` per kind; `delta` covers everything
    /// since the previous event of that kind.
    fn debounced(&mut self, i: usize, delta: u64, now: Instant) -> Option<u64> {
        self.pending[i] += delta;
        if self.last_emit[i].is_some_and(|t| now.duration_since(t) < self.debounce) {
            return None;
        }
        self.last_emit[i] = Some(now);
        Some(std::mem::take(&mut self.pending[i]))
    }
}

fn read(file: &File) -> std::io::Result<KernelCounters> {
    let mut buf = [0u8; 512];
    let n = file.read_at(&mut buf, 0)?;
    Ok(parse_counters(&String::from_utf8_lossy(&buf[..n])))
}

impl Source for MemoryEvents {
    fn name(&self) -> &'static str {
        "v2-memory-events"
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    fn interest(&self) -> u32 {
        PRI
    }

    fn detail(&self) -> String {
        format!("{} (POLLPRI)", self.path)
    }

    fn ready(&mut self, _ready: Ready, out: &mut Vec<Signal>) -> Keep {
        let now_counters = match read(&self.file) {
            Ok(c) => c,
            Err(e) => {
                tracing::info!(file = %self.path, error = %e, "memory.events unreadable: cgroup removed");
                out.push(Signal::Gone);
                return Keep::No;
            }
        };
        let prev = std::mem::replace(&mut self.last, now_counters);
        let now = Instant::now();
        let c = now_counters;
        if c.high > prev.high {
            out.push(Signal::Floor(crate::Level::Warning));
            if let Some(delta) = self.debounced(0, c.high - prev.high, now) {
                out.push(Signal::Event(EventKind::High { count: c.high, delta }));
            }
        }
        if c.max > prev.max {
            out.push(Signal::Floor(crate::Level::Critical));
            if let Some(delta) = self.debounced(1, c.max - prev.max, now) {
                out.push(Signal::Event(EventKind::Max { count: c.max, delta }));
            }
        }
        if c.oom > prev.oom {
            out.push(Signal::Event(EventKind::Oom { count: c.oom, delta: c.oom - prev.oom }));
        }
        if c.oom_kill > prev.oom_kill {
            out.push(Signal::Event(EventKind::OomKill { count: c.oom_kill, delta: c.oom_kill - prev.oom_kill }));
        }
        out.push(Signal::Resample);
        Keep::Yes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(dir: &std::path::Path, debounce: Duration) -> MemoryEvents {
        let fs = FsRoot::new(dir);
        std::fs::write(dir.join("memory.events"), "low 0\nhigh 5\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n")
            .expect("write");
        let file = File::open(dir.join("memory.events")).expect("open");
        let last = read(&file).expect("read");
        let _ = fs;
        MemoryEvents { file, path: "memory.events".into(), last, debounce, last_emit: [None; 2], pending: [0; 2] }
    }

    const DUMMY: Ready = Ready { token: 0, events: PRI };

    #[test]
    fn counter_deltas_not_wakeups() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut s = source(dir.path(), Duration::ZERO);
        let mut out = Vec::new();
        assert_eq!(s.ready(DUMMY, &mut out), Keep::Yes);
        assert_eq!(out, vec![Signal::Resample], "a spurious wake produces no event");
        std::fs::write(dir.path().join("memory.events"), "high 5\nmax 3\noom 1\noom_kill 2\n").expect("write");
        out.clear();
        s.ready(DUMMY, &mut out);
        assert!(out.contains(&Signal::Event(EventKind::OomKill { count: 2, delta: 2 })), "{out:?}");
        assert!(out.contains(&Signal::Event(EventKind::Max { count: 3, delta: 3 })), "{out:?}");
        assert!(out.contains(&Signal::Event(EventKind::Oom { count: 1, delta: 1 })), "{out:?}");
    }

    #[test]
    fn max_storm_is_debounced_and_deltas_accumulate() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut s = source(dir.path(), Duration::from_secs(3600));
        let mut events = 0;
        for i in 1..=50u64 {
            std::fs::write(dir.path().join("memory.events"), format!("high 5\nmax {i}\n")).expect("write");
            let mut out = Vec::new();
            s.ready(DUMMY, &mut out);
            events += out.iter().filter(|x| matches!(x, Signal::Event(EventKind::Max { .. }))).count();
            assert!(out.contains(&Signal::Floor(crate::Level::Critical)));
        }
        assert_eq!(events, 1, "one Max event per debounce interval");
        assert_eq!(s.pending[1], 49);
    }

    #[test]
    fn unreadable_file_means_gone() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut s = source(dir.path(), Duration::ZERO);
        // A directory fd cannot be read: stands in for the ENODEV of a removed cgroup.
        s.file = File::open(dir.path()).expect("open dir");
        let mut out = Vec::new();
        assert_eq!(s.ready(DUMMY, &mut out), Keep::No);
        assert_eq!(out, vec![Signal::Gone]);
    }
}
