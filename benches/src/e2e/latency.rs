//! Kernel notification → `on_event` callback latency, per source.
//!
//! Each measurement runs in its own leaf cgroup with the process moved into it and a guard
//! built so that only the source under test can wake the reactor. The callback (on memguard's
//! dispatcher thread, the product's path) takes `CLOCK_MONOTONIC` first thing and sends it,
//! with the event, to the measuring thread. Two figures per event:
//!
//! * **trigger → callback**: from a timestamp taken right before the harness's own allocation
//!   that crosses the boundary to the callback. An upper bound: it includes the page faults up to
//!   the crossing (the boundary sits `distance` above usage; the allocation is `crossing` bytes).
//! * **wake → callback**: from [`Event::monotonic_ns`] (the reactor's return from `epoll_wait`)
//!   to the callback: memguard's own share (reading the source, sampling, level, dispatch).
//!
//! | source | how the boundary is crossed |
//! |---|---|
//! | v1 usage threshold | usage is parked `distance` below the guard's warning threshold (a v1 `cgroup.event_control` eventfd), then `crossing` bytes are touched (up) and released (down) |
//! | v2 `memory.events` | usage is parked `distance` below `memory.high`, then `crossing` bytes are touched: the kernel counts a `high` event |
//! | PSI | a stall is generated until the trigger fires (v2: allocating past a `memory.high` just above usage, so the kernel throttles the allocating thread; v1: writing a file through a small memory limit, so reclaim waits on writeback). The kernel decides when the trigger fires (stall threshold within its window, evaluated periodically), so only wake → callback is memguard's; stall start → callback is reported for information |

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use memguard::monotonic_ns;
use memguard::watch::{Direction, Event, EventKind, Stall};
use memguard::MemGuard;
use serde::Serialize;

use super::arena::{Arena, Ballast};
use super::cgroup::{BenchCgroup, Version, Workspace};
use super::stats::Summary;
use super::{bail, Error, Result, MIB};

/// What to measure and how hard.
#[derive(Debug, Clone)]
pub struct Options {
    /// Repetitions for the cgroup sources (v1 threshold, v2 `memory.events`).
    pub iterations: usize,
    /// Repetitions for PSI (each needs a quiet PSI window first: seconds).
    pub psi_iterations: usize,
    /// Bytes touched to cross a boundary.
    pub crossing: u64,
    /// How far below the boundary usage is parked before crossing.
    pub distance: u64,
    /// Pause before each crossing (memguard debounces `high` events for 100 ms; the kernel
    /// rate-limits `memory.events` notifications to one per 20 ms).
    pub gap: Duration,
    /// Directory for the v1 PSI stall generator's scratch file (a real disk, not tmpfs).
    pub scratch_dir: PathBuf,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            iterations: 200,
            psi_iterations: 30,
            crossing: 3 * MIB,
            distance: MIB,
            gap: Duration::from_millis(150),
            scratch_dir: std::env::temp_dir(),
        }
    }
}

/// The figures for one source.
#[derive(Debug, Clone, Serialize)]
pub struct SourceResult {
    /// Short name (`v1-threshold-up`, `v2-memory-events-high`, `psi`).
    pub source: String,
    /// What was measured, in one sentence.
    pub description: String,
    /// The guard's armed sources during the measurement (`name: detail`).
    pub armed: Vec<String>,
    /// Repetitions asked for.
    pub requested: usize,
    /// Repetitions with a callback.
    pub measured: usize,
    /// Repetitions whose callback did not come within the timeout.
    pub missed: usize,
    /// Trigger (the harness's crossing allocation) → callback.
    pub trigger_to_callback: Option<Summary>,
    /// The reactor's wake-up ([`Event::monotonic_ns`]) → callback.
    pub wake_to_callback: Option<Summary>,
    /// PSI only: start of the stall generator → callback (includes the kernel's own accounting).
    pub stall_start_to_callback: Option<Summary>,
    /// How long the crossing allocation (or release) itself took, trigger to its end: for
    /// reading trigger → callback (the crossing happens `distance` into it).
    pub crossing_duration: Option<Summary>,
    /// memguard's share, step by step ([`memguard::watch::EventTiming`]): wake → sources read →
    /// sample taken and level updated → handed to the callbacks' thread → callback.
    pub breakdown: Breakdown,
    /// Anything worth knowing about this run.
    pub notes: Vec<String>,
}

/// wake → callback, step by step (µs summaries; `None` where no event had that step).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Breakdown {
    /// Reading the ready sources (eventfd counters, `memory.events`, PSI).
    pub read: Option<Summary>,
    /// The sample (usage and `memory.stat`), the level and the growth estimate.
    pub sample: Option<Summary>,
    /// Publishing: events, snapshot, pull queue, up to the hand-over.
    pub publish: Option<Summary>,
    /// The hand-over: queued → the callback runs on the dispatcher thread.
    pub hand_over: Option<Summary>,
}

impl SourceResult {
    fn new(source: &str, description: &str, armed: Vec<String>, requested: usize) -> SourceResult {
        SourceResult {
            source: source.to_owned(),
            description: description.to_owned(),
            armed,
            requested,
            measured: 0,
            missed: 0,
            trigger_to_callback: None,
            wake_to_callback: None,
            stall_start_to_callback: None,
            crossing_duration: None,
            breakdown: Breakdown::default(),
            notes: Vec::new(),
        }
    }
}

/// One callback invocation: when it ran and what it got.
#[derive(Debug)]
struct Delivery {
    callback_ns: u64,
    event: Event,
}

/// Receives every event delivered to an `on_event` callback.
struct Collector {
    rx: mpsc::Receiver<Delivery>,
}

impl Collector {
    fn attach(guard: &MemGuard) -> Collector {
        let (tx, rx) = mpsc::channel();
        guard
            .on_event(move |event| {
                let callback_ns = monotonic_ns();
                let _ = tx.send(Delivery { callback_ns, event: event.clone() });
            })
            .detach();
        Collector { rx }
    }

    /// Discard everything delivered so far.
    fn drain(&self) {
        while self.rx.try_recv().is_ok() {}
    }

    /// The first delivery matching `pred` within `timeout` (others are discarded).
    fn wait(&self, timeout: Duration, pred: impl Fn(&Event) -> bool) -> Option<Delivery> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.rx.recv_timeout(left) {
                Ok(d) if pred(&d.event) => return Some(d),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }
}

/// Latency samples of one series.
#[derive(Debug, Default)]
struct Series {
    trigger: Vec<u64>,
    wake: Vec<u64>,
    crossing: Vec<u64>,
    missed: usize,
    /// read, sample, publish, hand-over.
    steps: [Vec<u64>; 4],
}

impl Series {
    fn record(&mut self, start_ns: u64, d: &Delivery) {
        self.trigger.push(d.callback_ns.saturating_sub(start_ns));
        self.wake.push(d.callback_ns.saturating_sub(d.event.monotonic_ns));
        let t = d.event.timing;
        if t.read_ns > 0 && t.queued_ns > 0 {
            let sampled = if t.sampled_ns > 0 { t.sampled_ns } else { t.read_ns };
            self.steps[0].push(t.read_ns.saturating_sub(d.event.monotonic_ns));
            self.steps[1].push(sampled.saturating_sub(t.read_ns));
            self.steps[2].push(t.queued_ns.saturating_sub(sampled));
            self.steps[3].push(d.callback_ns.saturating_sub(t.queued_ns));
        }
    }

    fn finish(self, r: &mut SourceResult) {
        r.measured = self.wake.len();
        r.missed = self.missed;
        r.trigger_to_callback = Summary::of(&self.trigger);
        r.wake_to_callback = Summary::of(&self.wake);
        r.crossing_duration = Summary::of(&self.crossing);
        let [read, sample, publish, hand_over] = self.steps;
        r.breakdown = Breakdown {
            read: Summary::of(&read),
            sample: Summary::of(&sample),
            publish: Summary::of(&publish),
            hand_over: Summary::of(&hand_over),
        };
    }
}

/// The guard's armed sources as `name: detail`.
fn armed(guard: &MemGuard) -> Vec<String> {
    guard
        .sources()
        .into_iter()
        .filter(|s| s.armed)
        .map(|s| format!("{}: {}", s.name, s.detail.unwrap_or_default()))
        .collect()
}

/// The guard must watch this leaf (its limit is the effective one).
fn check_watched(guard: &MemGuard, cg: &BenchCgroup) -> Result<()> {
    let limits = guard.limits();
    let want = cg.dir().display().to_string();
    match &limits.limit_dir {
        Some(dir) if *dir == want => Ok(()),
        other => bail!("the guard watches {other:?}, not the bench cgroup {want}: a tighter limit above it?"),
    }
}

fn usize_of(bytes: u64) -> Result<usize> {
    usize::try_from(bytes).map_err(|_| Error(format!("{bytes} bytes overflow usize")))
}

/// cgroup v1 usage threshold (`cgroup.event_control` eventfd on `memory.usage_in_bytes`), up
/// and down. The guard's warning threshold (0.5 of a 256 MiB limit) is the boundary.
///
/// # Errors
/// Not v1, the cgroup or guard cannot be set up, or no threshold source armed.
pub fn v1_threshold(ws: &Workspace, o: &Options) -> Result<Vec<SourceResult>> {
    const LIMIT: u64 = 256 * MIB;
    if ws.hierarchy.version != Version::V1 {
        bail!("v1 usage thresholds need cgroup v1");
    }
    let mut cg = ws.leaf("v1-threshold", LIMIT)?;
    cg.enter()?;
    let guard = MemGuard::builder().warn(0.5).critical(0.9).psi(false).start()?;
    check_watched(&guard, &cg)?;
    let armed = armed(&guard);
    let threshold = guard
        .sources()
        .into_iter()
        .find(|s| s.name == "v1-threshold-warn" && s.armed)
        .and_then(|s| s.detail?.rsplit(' ').next()?.parse::<u64>().ok())
        .ok_or_else(|| Error(format!("v1-threshold-warn is not armed: {:#?}", guard.sources())))?;
    let collector = Collector::attach(&guard);
    let mut ballast = Ballast::new(LIMIT)?;
    let crossing = usize_of(o.crossing)?;
    let (mut up, mut down) = (Series::default(), Series::default());
    let mut wrong_direction = 0;
    let is_threshold = |e: &Event, after: u64| {
        matches!(e.kind, EventKind::Threshold { threshold_bytes, .. } if threshold_bytes == threshold)
            && e.monotonic_ns >= after
    };
    for _ in 0..o.iterations {
        ballast.park(&cg, threshold - o.distance, 64 << 10)?;
        std::thread::sleep(o.gap);
        collector.drain();
        let t0 = monotonic_ns();
        ballast.cross(crossing);
        up.crossing.push(monotonic_ns() - t0);
        match collector.wait(Duration::from_secs(2), |e| is_threshold(e, t0)) {
            Some(d) => {
                wrong_direction +=
                    usize::from(!matches!(d.event.kind, EventKind::Threshold { direction: Direction::Up, .. }));
                up.record(t0, &d);
            }
            None => up.missed += 1,
        }
        std::thread::sleep(o.gap);
        collector.drain();
        let t1 = monotonic_ns();
        ballast.uncross(crossing)?;
        down.crossing.push(monotonic_ns() - t1);
        match collector.wait(Duration::from_secs(2), |e| is_threshold(e, t1)) {
            Some(d) => {
                wrong_direction +=
                    usize::from(!matches!(d.event.kind, EventKind::Threshold { direction: Direction::Down, .. }));
                down.record(t1, &d);
            }
            None => down.missed += 1,
        }
    }
    drop(guard);
    cg.leave()?;
    let mb = o.crossing as f64 / MIB as f64;
    let dist = o.distance as f64 / MIB as f64;
    let mut r_up = SourceResult::new(
        "v1-threshold-up",
        &format!(
            "v1 usage threshold at {threshold} bytes, crossed upward by touching {mb} MiB starting {dist} MiB below it"
        ),
        armed.clone(),
        o.iterations,
    );
    let mut r_down = SourceResult::new(
        "v1-threshold-down",
        &format!("the same threshold crossed downward by releasing those {mb} MiB (MADV_DONTNEED)"),
        armed,
        o.iterations,
    );
    up.finish(&mut r_up);
    down.finish(&mut r_down);
    if wrong_direction > 0 {
        r_up.notes.push(format!("{wrong_direction} event(s) reported the other direction (sampled after the fact)"));
    }
    Ok(vec![r_up, r_down])
}

/// cgroup v2 `memory.events` `high`: usage parked just under `memory.high`, then crossed.
///
/// # Errors
/// Not v2, the cgroup or guard cannot be set up, or `memory.events` is not armed.
pub fn v2_high(ws: &Workspace, o: &Options) -> Result<Vec<SourceResult>> {
    const LIMIT: u64 = 256 * MIB;
    const HIGH: u64 = 128 * MIB;
    if ws.hierarchy.version != Version::V2 {
        bail!("memory.events needs cgroup v2");
    }
    let mut cg = ws.leaf("v2-high", LIMIT)?;
    cg.set_high(Some(HIGH))?;
    cg.enter()?;
    let guard = MemGuard::builder().psi(false).start()?;
    check_watched(&guard, &cg)?;
    let armed = armed(&guard);
    if !armed.iter().any(|a| a.starts_with("v2-memory-events:")) {
        bail!("v2-memory-events is not armed: {:#?}", guard.sources());
    }
    let collector = Collector::attach(&guard);
    let mut ballast = Ballast::new(LIMIT)?;
    let crossing = usize_of(o.crossing)?;
    let mut series = Series::default();
    // memguard emits at most one High per 100 ms (debounce): keep crossings further apart.
    let gap = o.gap.max(Duration::from_millis(150));
    for _ in 0..o.iterations {
        ballast.park(&cg, HIGH - o.distance, 64 << 10)?;
        std::thread::sleep(gap);
        collector.drain();
        let t0 = monotonic_ns();
        ballast.cross(crossing);
        series.crossing.push(monotonic_ns() - t0);
        let high = |e: &Event| matches!(e.kind, EventKind::High { .. }) && e.monotonic_ns >= t0;
        match collector.wait(Duration::from_secs(2), high) {
            Some(d) => series.record(t0, &d),
            None => series.missed += 1,
        }
        ballast.uncross(crossing)?;
    }
    drop(guard);
    cg.leave()?;
    let mut r = SourceResult::new(
        "v2-memory-events-high",
        &format!(
            "memory.events `high` (POLLPRI): memory.high {} MiB, crossed by touching {} MiB starting {} MiB below it",
            HIGH / MIB,
            o.crossing as f64 / MIB as f64,
            o.distance as f64 / MIB as f64
        ),
        armed,
        o.iterations,
    );
    series.finish(&mut r);
    Ok(vec![r])
}

/// A thread that makes the kernel account memory stall until stopped.
struct StallGenerator {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<std::result::Result<(), String>>>,
    scratch: Option<PathBuf>,
}

impl StallGenerator {
    /// v2: `memory.high` is set 1 MiB above usage and the thread allocates past it in 256 KiB
    /// steps: the kernel reclaims (nothing reclaimable: anonymous memory, no swap) and throttles
    /// the thread, which is accounted as memory stall.
    fn throttle(cg: &BenchCgroup) -> Result<StallGenerator> {
        cg.set_high(Some(cg.usage()? + MIB))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("e2e-stall".into())
            .spawn(move || {
                let mut arena = Arena::new(256 << 20).map_err(|e| format!("mmap: {e}"))?;
                let mut at = 0;
                while !flag.load(Ordering::Acquire) && at < arena.len() {
                    arena.touch(at..at + (256 << 10));
                    at += 256 << 10;
                }
                Ok(())
            })
            .map_err(|e| Error(format!("spawn: {e}")))?;
        Ok(StallGenerator { stop, thread: Some(thread), scratch: None })
    }

    /// v1: write a scratch file (wrapping at 256 MiB) through the cgroup's small limit: reclaim
    /// of the cgroup's dirty page cache waits on writeback, accounted as memory stall.
    fn writeback(dir: &std::path::Path) -> Result<StallGenerator> {
        let path = dir.join(format!("memguard-e2e-{}.scratch", std::process::id()));
        let mut file = File::create(&path).map_err(|e| Error(format!("{}: {e}", path.display())))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("e2e-stall".into())
            .spawn(move || {
                let chunk = vec![0x5a_u8; 1 << 20];
                let mut written = 0u64;
                while !flag.load(Ordering::Acquire) {
                    file.write_all(&chunk).map_err(|e| format!("write: {e}"))?;
                    written += chunk.len() as u64;
                    if written >= 256 * MIB {
                        file.seek(SeekFrom::Start(0)).map_err(|e| format!("seek: {e}"))?;
                        written = 0;
                    }
                }
                Ok(())
            })
            .map_err(|e| Error(format!("spawn: {e}")))?;
        Ok(StallGenerator { stop, thread: Some(thread), scratch: Some(path) })
    }

    /// Stop and join the thread (after lifting `memory.high` on v2, so a throttled thread
    /// finishes its current penalty and stops).
    fn stop(mut self, cg: &BenchCgroup) -> Result<()> {
        if cg.version() == Version::V2 {
            cg.set_high(None)?;
        }
        self.join()
    }

    fn join(&mut self) -> Result<()> {
        self.stop.store(true, Ordering::Release);
        let outcome = match self.thread.take().map(JoinHandle::join) {
            Some(Ok(Err(e))) => Err(Error(format!("stall generator: {e}"))),
            Some(Err(_)) => Err(Error("stall generator panicked".into())),
            _ => Ok(()),
        };
        if let Some(p) = self.scratch.take() {
            let _ = std::fs::remove_file(p);
        }
        outcome
    }
}

impl Drop for StallGenerator {
    fn drop(&mut self) {
        let _ = self.join();
    }
}

/// The PSI window of an armed trigger detail (`... "some 200000 2000000"`).
fn psi_window(detail: &str) -> Option<Duration> {
    let us = detail.trim_end_matches('"').rsplit(' ').next()?.parse().ok()?;
    Some(Duration::from_micros(us))
}

/// A PSI trigger: a stall is generated until the guard's trigger fires, `o.psi_iterations`
/// times, each after a quiet window (a trigger fires at most once per window).
///
/// # Errors
/// The cgroup or guard cannot be set up, or no PSI trigger armed.
pub fn psi(ws: &Workspace, o: &Options) -> Result<Vec<SourceResult>> {
    let version = ws.hierarchy.version;
    // v1: a small limit, so written page cache is reclaimed (and waited on) at once.
    let limit = if version == Version::V1 { 32 * MIB } else { 256 * MIB };
    let mut cg = ws.leaf("psi", limit)?;
    cg.enter()?;
    let guard = MemGuard::builder().cgroup_events(false).start()?;
    check_watched(&guard, &cg)?;
    let armed = armed(&guard);
    let windows: Vec<Duration> = armed.iter().filter(|a| a.starts_with("psi-")).filter_map(|a| psi_window(a)).collect();
    let Some(window) = windows.iter().copied().max() else {
        bail!("no PSI trigger armed: {:#?}", guard.sources());
    };
    let collector = Collector::attach(&guard);
    let mut series = Series::default();
    let (mut some, mut full) = (0, 0);
    for _ in 0..o.psi_iterations {
        std::thread::sleep(window + Duration::from_millis(500));
        collector.drain();
        let t0 = monotonic_ns();
        let stall = match version {
            Version::V2 => StallGenerator::throttle(&cg)?,
            Version::V1 => StallGenerator::writeback(&o.scratch_dir)?,
        };
        let fired = |e: &Event| matches!(e.kind, EventKind::Psi { .. }) && e.monotonic_ns >= t0;
        let got = collector.wait(window * 3 + Duration::from_secs(5), fired);
        stall.stop(&cg)?;
        match got {
            Some(d) => {
                match d.event.kind {
                    EventKind::Psi { stall: Stall::Full, .. } => full += 1,
                    _ => some += 1,
                }
                series.record(t0, &d);
            }
            None => series.missed += 1,
        }
    }
    drop(guard);
    cg.leave()?;
    let how = match version {
        Version::V2 => "a thread allocating past a memory.high set 1 MiB above usage (kernel throttling)",
        Version::V1 => "a thread writing a file through a 32 MiB limit (reclaim waits on writeback)",
    };
    let mut r = SourceResult::new(
        "psi",
        &format!("PSI trigger (window {} ms), stall generated by {how}", window.as_millis()),
        armed,
        o.psi_iterations,
    );
    let stall_start = std::mem::take(&mut series.trigger);
    series.finish(&mut r);
    r.stall_start_to_callback = Summary::of(&stall_start);
    r.notes.push(format!("first event per repetition: {some} `some`, {full} `full`"));
    r.notes.push(
        "stall start -> callback includes the kernel's accounting (the trigger's stall threshold must \
         accumulate within its window) and its evaluation period: not memguard's latency"
            .into(),
    );
    if version == Version::V1 {
        r.notes.push("v1: the trigger is on the unified tree's root memory.pressure, i.e. system-wide".into());
    }
    Ok(vec![r])
}
