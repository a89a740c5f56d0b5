//! Soak: a guard running for a long time while memory oscillates between `Normal` and
//! `Critical` every few seconds, with callbacks, a shedder and reservations from several
//! threads. What must stay flat and exact:
//!
//! * the process's footprint — RSS (beyond the memory the harness itself holds), open fds and
//!   threads — measured at the same point of a cycle at the start and at the end;
//! * the budget: once every reservation is released and a few samples have passed,
//!   `outstanding()` and `settling()` are exactly 0;
//! * events: every event the guard counted (`events_total`) reached the `on_event` callback
//!   (none dropped), and on cgroup v2 the `high`/`max` increments the events carried add up to
//!   the kernel's own counters in `memory.events` since the guard started.
//!
//! [`run`] reports; `memguard-e2e soak --check` turns a listed problem into a non-zero exit.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use memguard::watch::EventKind;
use memguard::{Level, MemGuard};
use serde::Serialize;

use super::arena::Ballast;
use super::cgroup::{Version, Workspace};
use super::{Result, MIB};

/// How the soak runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long, warm-up included.
    pub duration: Duration,
    /// The cgroup's memory limit.
    pub limit: u64,
    /// Threads reserving from the budget.
    pub threads: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { duration: Duration::from_secs(120), limit: 128 * MIB, threads: 3 }
    }
}

/// The process's footprint at one moment.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct Footprint {
    /// Seconds since the soak started.
    pub at_seconds: f64,
    /// `VmRSS`.
    pub rss_bytes: u64,
    /// Entries of `/proc/self/fd`.
    pub fds: usize,
    /// Entries of `/proc/self/task`.
    pub threads: usize,
    /// Bytes the harness itself holds then (ballast and the reservation threads' cache).
    pub held_bytes: u64,
}

/// What a soak measured.
#[derive(Debug, Clone, Serialize, Default)]
pub struct SoakResult {
    /// `v1` or `v2`.
    pub cgroup: String,
    pub seconds: f64,
    /// Normal → Critical → Normal cycles completed.
    pub cycles: u64,
    /// After the warm-up (two cycles).
    pub start: Footprint,
    /// At the same point of the last cycle.
    pub end: Footprint,
    /// RSS growth beyond what the harness holds: `end.rss - start.rss - (end.held - start.held)`.
    pub rss_growth_bytes: i64,
    /// Level changes seen by `on_level`, and how many rose to Critical.
    pub level_changes: u64,
    pub critical_entries: u64,
    /// Events received by `on_event`, per kind.
    pub events_received: BTreeMap<String, u64>,
    /// The guard's own count per kind (`Snapshot::events_total`).
    pub events_total: BTreeMap<String, u64>,
    pub callback_events_dropped: u64,
    /// v2: `high` and `max` increments carried by the events vs the kernel's counters since the
    /// guard started.
    pub kernel_high_delta: Option<(u64, u64)>,
    pub kernel_max_delta: Option<(u64, u64)>,
    pub reservations_granted: u64,
    pub reservations_refused: u64,
    pub shed_runs: u64,
    pub shed_freed_bytes: u64,
    /// After every reservation was released and samples passed: must both be 0.
    pub outstanding_after: u64,
    pub settling_after: u64,
    pub watcher_panics: u64,
    /// Everything that is not as it must be (empty: the soak passed).
    pub problems: Vec<String>,
}

/// The reservation threads' cache: what they allocated under a reservation and kept.
#[derive(Default)]
struct Cache {
    entries: Mutex<Vec<Vec<u8>>>,
    bytes: AtomicU64,
}

impl Cache {
    const CAP: u64 = 16 * MIB;

    fn insert(&self, v: Vec<u8>) {
        let mut e = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if self.bytes.load(Relaxed) + v.len() as u64 <= Self::CAP {
            self.bytes.fetch_add(v.len() as u64, Relaxed);
            e.push(v);
        }
    }

    /// Drop entries until `target` bytes are freed (or the cache is empty).
    fn shed(&self, target: u64) -> u64 {
        let mut e = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let mut freed = 0;
        while freed < target {
            let Some(v) = e.pop() else { break };
            freed += v.len() as u64;
        }
        self.bytes.fetch_sub(freed, Relaxed);
        freed
    }
}

/// Run the soak in a fresh leaf cgroup of `ws`.
pub fn run(ws: &Workspace, o: &Options) -> Result<SoakResult> {
    let mut cg = ws.leaf("soak", o.limit)?;
    cg.enter()?;
    let started = Instant::now();
    let version = ws.hierarchy.version;
    let kernel_at_start = kernel_counters(&cg.dir().join("memory.events"));
    let guard = MemGuard::builder().start()?;
    let mut r = SoakResult { cgroup: version.as_str().to_owned(), ..SoakResult::default() };

    let received: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let deltas: Arc<[AtomicU64; 2]> = Arc::default(); // high, max
    let levels = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]); // changes, critical entries
    let cache = Arc::new(Cache::default());
    let _events = {
        let (received, deltas) = (Arc::clone(&received), Arc::clone(&deltas));
        guard.on_event(move |e| {
            *received.lock().unwrap_or_else(PoisonError::into_inner).entry(e.kind.name().to_owned()).or_default() += 1;
            match e.kind {
                EventKind::High { delta, .. } => deltas[0].fetch_add(delta, Relaxed),
                EventKind::Max { delta, .. } => deltas[1].fetch_add(delta, Relaxed),
                _ => 0,
            };
        })
    };
    let _levels = {
        let levels = Arc::clone(&levels);
        guard.on_level(move |change, _| {
            levels[0].fetch_add(1, Relaxed);
            if change.to == Level::Critical {
                levels[1].fetch_add(1, Relaxed);
            }
        })
    };
    let _shedder = {
        let cache = Arc::clone(&cache);
        guard.register_shedder("soak-cache", 0, move |target| cache.shed(target))
    };

    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]); // granted, refused
    let workers: Vec<_> = (0..o.threads)
        .map(|i| {
            let (handle, stop, counts, cache) =
                (guard.handle(), Arc::clone(&stop), Arc::clone(&counts), Arc::clone(&cache));
            std::thread::spawn(move || {
                let sizes = [4 << 10, 64 << 10, 1 << 20];
                let mut n = i;
                while !stop.load(Relaxed) {
                    n = n.wrapping_mul(31).wrapping_add(7);
                    let size = sizes[n % sizes.len()];
                    match handle.try_reserve(size as u64) {
                        Ok(reservation) => {
                            counts[0].fetch_add(1, Relaxed);
                            let v = vec![1u8; size]; // touches every page
                            drop(reservation); // the bytes are in usage now
                            cache.insert(v);
                        }
                        Err(_) => {
                            counts[1].fetch_add(1, Relaxed);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        })
        .collect();

    // Memory oscillates: up to 93% of the limit (Critical), hold, down to 45% (Normal), hold.
    let mut ballast = Ballast::new(o.limit)?;
    let footprint = |ballast_bytes: u64| Footprint {
        at_seconds: started.elapsed().as_secs_f64(),
        rss_bytes: rss(),
        fds: count_dir("/proc/self/fd"),
        threads: count_dir("/proc/self/task"),
        held_bytes: ballast_bytes + cache.bytes.load(Relaxed),
    };
    let (high, low) = (o.limit / 100 * 93, o.limit / 100 * 45);
    let mut low_point = Footprint::default();
    while started.elapsed() < o.duration {
        ballast.park(&cg, high, MIB)?;
        std::thread::sleep(Duration::from_millis(1000));
        ballast.park(&cg, low, MIB)?;
        std::thread::sleep(Duration::from_millis(1200));
        r.cycles += 1;
        low_point = footprint(ballast.len() as u64);
        if r.cycles == 2 {
            r.start = low_point;
        }
    }
    r.end = low_point;
    stop.store(true, Relaxed);
    for w in workers {
        let _ = w.join();
    }
    drop(ballast);
    cache.shed(u64::MAX);
    // Released reservations settle after a usage sample that began after them (at most two;
    // the sampler runs at least every 50 ms while they do).
    std::thread::sleep(Duration::from_millis(500));
    let snap = guard.snapshot();
    r.seconds = started.elapsed().as_secs_f64();
    r.rss_growth_bytes =
        signed(r.end.rss_bytes) - signed(r.start.rss_bytes) - (signed(r.end.held_bytes) - signed(r.start.held_bytes));
    r.level_changes = levels[0].load(Relaxed);
    r.critical_entries = levels[1].load(Relaxed);
    r.events_received = received.lock().unwrap_or_else(PoisonError::into_inner).clone();
    r.events_total = snap.events_total.iter().filter(|(_, n)| **n > 0).map(|(k, n)| ((*k).to_owned(), *n)).collect();
    r.callback_events_dropped = snap.callback_events_dropped;
    r.reservations_granted = counts[0].load(Relaxed);
    r.reservations_refused = counts[1].load(Relaxed);
    r.shed_runs = snap.shed.as_ref().map_or(0, |s| s.runs);
    r.shed_freed_bytes = snap.shed.as_ref().map_or(0, |s| s.freed_bytes_total);
    r.outstanding_after = guard.budget().outstanding();
    r.settling_after = guard.budget().settling();
    r.watcher_panics = snap.watcher_panics;
    if version == Version::V2 {
        let now = kernel_counters(&cg.dir().join("memory.events"));
        let delta = |k: &str| now.get(k).copied().unwrap_or(0) - kernel_at_start.get(k).copied().unwrap_or(0);
        r.kernel_high_delta = Some((deltas[0].load(Relaxed), delta("high")));
        r.kernel_max_delta = Some((deltas[1].load(Relaxed), delta("max")));
    }
    drop(guard);
    judge(&mut r);
    cg.leave()?;
    Ok(r)
}

fn judge(r: &mut SoakResult) {
    let mut p = Vec::new();
    if r.cycles < 3 {
        p.push(format!("only {} cycles: too short to compare start and end", r.cycles));
    }
    if r.start.fds != r.end.fds {
        p.push(format!("open fds changed: {} → {}", r.start.fds, r.end.fds));
    }
    if r.start.threads != r.end.threads {
        p.push(format!("threads changed: {} → {}", r.start.threads, r.end.threads));
    }
    if r.rss_growth_bytes > (4 * MIB) as i64 {
        p.push(format!("RSS grew by {} KiB beyond the harness's own memory", r.rss_growth_bytes >> 10));
    }
    if r.outstanding_after != 0 || r.settling_after != 0 {
        p.push(format!("budget not back to 0: outstanding {}, settling {}", r.outstanding_after, r.settling_after));
    }
    if r.callback_events_dropped != 0 {
        p.push(format!("{} events dropped before the callback", r.callback_events_dropped));
    }
    if r.events_received != r.events_total {
        p.push(format!("events received {:?} differ from the guard's counts {:?}", r.events_received, r.events_total));
    }
    for (what, d) in [("high", r.kernel_high_delta), ("max", r.kernel_max_delta)] {
        if let Some((seen, kernel)) = d {
            if seen != kernel {
                p.push(format!("{what}: events carried {seen} increments, the kernel counted {kernel}"));
            }
        }
    }
    if r.critical_entries < r.cycles.saturating_sub(1) {
        p.push(format!("Critical reached {} times in {} cycles", r.critical_entries, r.cycles));
    }
    if r.watcher_panics != 0 {
        p.push(format!("{} panics on memguard's threads", r.watcher_panics));
    }
    r.problems = p;
}

fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("VmRSS:")?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb << 10)
}

fn count_dir(path: &str) -> usize {
    std::fs::read_dir(path).map(|d| d.count()).unwrap_or(0)
}

fn kernel_counters(path: &std::path::Path) -> BTreeMap<String, u64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_owned(), v.trim().parse().ok()?))
        })
        .collect()
}
