//! The reactor: one thread, one epoll set over every armed source plus a waker eventfd; the
//! epoll timeout is the sampler's next deadline. No sleeping loop: between samples the thread
//! is blocked in `epoll_wait`.
//!
//! # Internal errors
//! Each wake-up is handled under `catch_unwind`. A panic (a bug in memguard) is logged and
//! counted ([`Snapshot::watcher_panics`]); the reactor then re-detects, re-arms every source
//! and carries on. After [`MAX_PANICS`] panics within [`PANIC_WINDOW`] it gives up: the guard
//! is marked failed ([`Snapshot::failed`], a [`EventKind::WatcherFailed`] event, the
//! `memguard_watcher_failed` metric) instead of looking alive while protecting nothing.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::detect::Detector;
use crate::error::{Error, Result};
use crate::level::{Level, LevelTracker};
use crate::limits::Limits;
use crate::sys::{monotonic_ns, Epoll, Ready};

use super::dispatch::{DispatchTx, Msg};
use super::event::{Direction, Event, EventKind, EventTiming};
use super::guard::{push_dropping_oldest, Shared};
use super::sample_requests::SampleRequest;
use super::sampler::{next_interval, Probe, Sample};
use super::shedding::SampleNote;
use super::snapshot::{KernelCounters, PsiAverages, Snapshot};
use super::sources::{self, Keep, Signal, Source};

const WAKER: u64 = u64::MAX;
const PSI_READ_INTERVAL: Duration = Duration::from_secs(1);
/// The longest sampling interval while budget reservations are being released (their bytes
/// count until a sample shows their memory; see `budget`): at most 20 extra samples a second
/// while the application releases, none while it does not.
const BUDGET_SETTLE_INTERVAL: Duration = Duration::from_millis(50);
/// The shortest gap between samples the budget asks for at once (a refusal while released
/// bytes settle): under sustained refusals the reactor samples at most this often.
const SETTLE_NOW_GAP: Duration = Duration::from_millis(2);
/// The follow-up sample after a v1 usage threshold fired upward below the measure's threshold.
/// Long enough to count as a separate point for the growth rate (`rate::MIN_PAIR_GAP`).
const FOLLOW_UP: Duration = Duration::from_millis(2);
/// Panics within [`PANIC_WINDOW`] after which the watcher gives up.
pub(crate) const MAX_PANICS: usize = 5;
/// See [`MAX_PANICS`].
pub(crate) const PANIC_WINDOW: Duration = Duration::from_secs(60);

pub(crate) struct Reactor {
    shared: Arc<Shared>,
    epoll: Epoll,
    detector: Detector,
    limits: Limits,
    probe: Probe,
    sources: Vec<Option<Box<dyn Source>>>,
    tracker: LevelTracker,
    dispatch: DispatchTx,
    shed: Sender<SampleNote>,
    shed_rx: Receiver<SampleNote>,
    last: Option<Sample>,
    /// Growth of the measure (predictive warning).
    growth: super::rate::RateEstimator,
    /// The predicted time to the limit after the latest sample.
    time_to_limit: Option<Duration>,
    /// The level the prediction demanded after the latest sample.
    predicted_level: Level,
    /// A sample was taken since the last publish (the shedding thread hears of it).
    sampled: bool,
    /// The latest sample the shedding thread heard of was quiet ([`SampleNote::is_quiet`]).
    shed_heard_quiet: bool,
    /// The steps of the current wake-up, for its events.
    timing: EventTiming,
    v1_oom_kill: Option<u64>,
    counters: KernelCounters,
    psi_file: Option<File>,
    psi: Option<PsiAverages>,
    next_sample: Instant,
    next_redetect: Instant,
    next_psi_read: Instant,
    interval: Duration,
    samples: u64,
    /// When the latest successful sample began.
    sampled_at: Instant,
    events_total: BTreeMap<&'static str, u64>,
    level_since: Instant,
    time_in_level: [Duration; 3],
    read_errors: crate::ratelimit::LogLimiter,
    /// Why the latest sample failed while the cgroup still existed (an unreadable or
    /// malformed file); `None` once a sample succeeds again. Shown on the sampler's line.
    sample_failure: Option<String>,
    panics: Vec<Instant>,
    #[cfg(test)]
    inject_panics: u32,
}

/// The sampling interval that growth at `rate` (bytes/s, as seen) allows: enough samples
/// ([`SUSTAIN`](super::rate::SUSTAIN)) before the time left reaches the warning `horizon`, so
/// that sustained growth is recognised in time. Not tighter than the minimum interval; no
/// constraint when memory does not grow (the caller keeps the smaller interval).
fn tighten_for_growth(
    cfg: &super::sampler::SamplerConfig,
    horizon: Duration,
    limit: u64,
    measure: u64,
    rate: f64,
) -> Duration {
    const MIN_RATE: f64 = (1u64 << 20) as f64; // below 1 MiB/s the usual interval is fine
    if horizon.is_zero() || rate < MIN_RATE {
        return cfg.max_interval;
    }
    #[allow(clippy::cast_precision_loss)]
    let left = limit.saturating_sub(measure) as f64 / rate - horizon.as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    let per_sample = left / super::rate::SUSTAIN as f64;
    Duration::try_from_secs_f64(per_sample.max(0.0))
        .unwrap_or(cfg.max_interval)
        .clamp(cfg.min_interval, cfg.max_interval)
}

fn at_or_far(now: Instant, d: Duration) -> Instant {
    now.checked_add(d).unwrap_or_else(|| now + Duration::from_secs(86_400))
}

impl Reactor {
    /// Detect and arm (on the caller's thread, so errors surface from `start`).
    pub(crate) fn new(
        shared: Arc<Shared>,
        dispatch: DispatchTx,
        shed: Sender<SampleNote>,
        shed_rx: Receiver<SampleNote>,
    ) -> Result<Reactor> {
        let cfg = &shared.config;
        let detector = cfg.detector();
        let limits = detector.detect()?.with_override(cfg.limit_override);
        let epoll = Epoll::new().map_err(|source| Error::Io { path: "epoll".into(), source })?;
        epoll
            .add(std::os::fd::AsFd::as_fd(&shared.waker), WAKER, crate::sys::IN)
            .map_err(|source| Error::Io { path: "epoll".into(), source })?;
        let now = Instant::now();
        let mut r = Reactor {
            probe: Probe::open(&limits, detector.fs(), cfg.eviction_threshold),
            tracker: LevelTracker::new(cfg.thresholds, cfg.event_hold),
            next_redetect: at_or_far(now, cfg.redetect_interval),
            shared: Arc::clone(&shared),
            epoll,
            detector,
            limits,
            sources: Vec::new(),
            dispatch,
            shed,
            shed_rx,
            last: None,
            growth: super::rate::RateEstimator::new(),
            time_to_limit: None,
            predicted_level: Level::Normal,
            sampled: false,
            shed_heard_quiet: false,
            timing: EventTiming::default(),
            v1_oom_kill: None,
            counters: KernelCounters::default(),
            psi_file: None,
            psi: None,
            next_sample: now,
            next_psi_read: now,
            interval: cfg.sampler.min_interval,
            samples: 0,
            sampled_at: now,
            events_total: BTreeMap::new(),
            level_since: now,
            time_in_level: [Duration::ZERO; 3],
            read_errors: crate::ratelimit::LogLimiter::new(Duration::from_secs(10)),
            sample_failure: None,
            panics: Vec::new(),
            #[cfg(test)]
            inject_panics: cfg.inject_panics,
        };
        r.arm();
        // The first sample: level and snapshot are meaningful as soon as start() returns.
        let mut pending = Vec::new();
        r.sample(&mut pending);
        r.publish(pending, monotonic_ns());
        Ok(r)
    }

    fn threshold_bytes(&self) -> Option<(u64, u64)> {
        self.limits.limit_bytes.map(|limit| self.tracker.thresholds().bytes(limit))
    }

    /// Every descriptor the reactor holds, and the waker's.
    fn raw_fds(&self) -> Vec<RawFd> {
        let mut fds = vec![self.epoll.raw(), self.shared.waker.raw()];
        fds.extend(self.dispatch.raw_fds());
        fds.extend(self.sources.iter().flatten().flat_map(|s| s.raw_fds()));
        fds.extend(self.probe.raw_fds());
        fds.extend(self.psi_file.iter().map(AsRawFd::as_raw_fd));
        fds
    }

    /// Before closing descriptors: list only those that stay open (see [`crate::sys::ForkFds`]).
    fn unlist_closing_fds(&self) {
        self.shared.fds.set(&[self.epoll.raw(), self.shared.waker.raw()]);
    }

    /// (Re-)open the probe for the current limits.
    fn reopen_probe(&mut self) {
        self.unlist_closing_fds();
        self.probe = Probe::open(&self.limits, self.detector.fs(), self.shared.config.eviction_threshold);
        self.shared.fds.set(&self.raw_fds());
    }

    /// (Re-)arm every source for the current limits.
    fn arm(&mut self) {
        self.unlist_closing_fds();
        for s in self.sources.drain(..).flatten() {
            let _ = self.epoll.delete(s.fd());
        }
        let cfg = self.shared.config.sources.clone();
        let armed = sources::arm(&self.limits, self.detector.fs(), &cfg, self.threshold_bytes());
        let mut status = armed.status;
        for (i, s) in armed.sources.into_iter().enumerate() {
            match self.epoll.add(s.fd(), i as u64, s.interest()) {
                Ok(()) => self.sources.push(Some(s)),
                Err(e) => {
                    if let Some(st) = status.iter_mut().find(|st| st.name == s.name()) {
                        st.armed = false;
                        st.detail = Some(format!("epoll: {e}"));
                    }
                    self.sources.push(None);
                }
            }
        }
        status.push(self.sampler_status());
        self.psi_file = self.limits.psi_file.as_ref().and_then(|p| File::open(self.detector.fs().path(p)).ok());
        self.shared.fds.set(&self.raw_fds());
        *self.shared.sources.write().unwrap_or_else(PoisonError::into_inner) = status;
        *self.shared.limits.write().unwrap_or_else(PoisonError::into_inner) = self.limits.clone();
        self.v1_oom_kill = None;
        self.growth.reset();
        self.time_to_limit = None;
        self.predicted_level = Level::Normal;
    }

    /// The sampler's line in `sources()`: not armed, with the reason, while its files cannot
    /// be opened (see [`Probe::open_error`]).
    fn sampler_status(&self) -> crate::status::SourceStatus {
        let mut st = super::sampler::status(
            &self.limits,
            &self.shared.config.sampler,
            self.shared.config.eviction_threshold,
            self.kernel_watches_thresholds(),
        );
        if let Some(e) = self.probe.open_error() {
            st.armed = false;
            st.detail = Some(format!("cannot open {e}; retried before each sample"));
        } else if let Some(e) = &self.sample_failure {
            st.armed = false;
            st.detail = Some(format!(
                "reading failed: {e}; retried every {:?} (levels hold their last value meanwhile)",
                self.shared.config.sampler.max_interval
            ));
        }
        st
    }

    /// Replace the sampler's line in `sources()` with [`Self::sampler_status`], logging a
    /// change of state (rare: a file that starts or stops failing).
    fn publish_sampler_status(&self) {
        let st = self.sampler_status();
        let mut sources = self.shared.sources.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = sources.iter_mut().find(|s| s.name == "sampler") {
            if old.armed != st.armed {
                tracing::info!(armed = st.armed, detail = ?st.detail, "memguard sampler files");
            }
            *old = st;
        }
    }

    /// A probe that could not open its files tries again (a raised `RLIMIT_NOFILE`, a fixed
    /// permission); the sampler's line in `sources()` follows.
    fn retry_probe(&mut self) {
        if self.probe.open_error().is_none() {
            return;
        }
        self.reopen_probe();
        self.publish_sampler_status();
    }

    fn kernel_watches_thresholds(&self) -> bool {
        sources::kernel_watches_thresholds(self.sources.iter().flatten())
    }

    /// The loop, until closed (or failed).
    pub(crate) fn run(mut self) {
        self.shared.reactor_tid.store(crate::sys::thread_id(), Ordering::Relaxed);
        let mut ready = Vec::new();
        let mut signals = Vec::new();
        loop {
            let now = Instant::now();
            let mut deadline = self.next_sample.min(self.next_redetect);
            if let Some(d) = self.tracker.floor_deadline() {
                deadline = deadline.min(d);
            }
            if let Err(e) = self.epoll.wait(&mut ready, Some(deadline.saturating_duration_since(now))) {
                self.fail(&format!("epoll_wait failed: {e}"));
                break;
            }
            if self.shared.closing.load(Ordering::Acquire) {
                break;
            }
            let woke = monotonic_ns();
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                signals.clear();
                self.timing = EventTiming::default();
                for r in &ready {
                    self.on_ready(*r, &mut signals);
                }
                self.timing.read_ns = monotonic_ns();
                self.step(&signals, woke);
            }));
            if let Err(payload) = outcome {
                if !self.recover(payload.as_ref()) {
                    break;
                }
            }
        }
        self.unlist_closing_fds();
        tracing::debug!("memguard reactor stopped");
    }

    /// After a panic: log, count, re-detect and re-arm. Returns false when giving up.
    fn recover(&mut self, payload: &(dyn std::any::Any + Send)) -> bool {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "<non-string panic payload>".to_owned());
        self.shared.watcher_panics.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        self.panics.retain(|t| now.duration_since(*t) < PANIC_WINDOW);
        self.panics.push(now);
        if self.panics.len() >= MAX_PANICS {
            self.fail(&format!(
                "{} internal errors within {} s, the last: {message}",
                self.panics.len(),
                PANIC_WINDOW.as_secs()
            ));
            return false;
        }
        tracing::error!(panic = %message, "memguard watcher hit an internal error; re-detecting and re-arming");
        let rearmed = catch_unwind(AssertUnwindSafe(|| {
            let mut pending = Vec::new();
            self.redetect_now(&mut pending, true);
            self.publish(pending, monotonic_ns());
        }));
        if rearmed.is_err() {
            self.fail(&format!("re-arming after an internal error failed; the error: {message}"));
            return false;
        }
        true
    }

    /// Give up: mark the guard failed, tell the callbacks and the pull queue.
    fn fail(&mut self, reason: &str) {
        tracing::error!(reason, "memguard watcher failed: the guard no longer watches memory");
        let _ = self.shared.failed.set(reason.to_owned());
        let event =
            self.event(EventKind::WatcherFailed { reason: reason.to_owned() }, self.tracker.level(), monotonic_ns());
        self.shared.push_pull(event.clone());
        let snap = Arc::new(self.snapshot(self.tracker.level(), Instant::now()));
        self.deliver(event, snap);
    }

    fn on_ready(&mut self, r: Ready, signals: &mut Vec<Signal>) {
        if r.token == WAKER {
            let _ = self.shared.waker.drain();
            let asked = self.shared.sample_requests.take();
            if asked.has(SampleRequest::AfterShed) {
                signals.push(Signal::Resample);
            }
            let now = Instant::now();
            if asked.has(SampleRequest::SettleSoon) {
                self.next_sample = self.next_sample.min(now + BUDGET_SETTLE_INTERVAL);
            }
            if asked.has(SampleRequest::SettleNow) {
                self.next_sample = self.next_sample.min((self.sampled_at + SETTLE_NOW_GAP).max(now));
            }
            return;
        }
        let Ok(i) = usize::try_from(r.token) else { return };
        let Some(Some(source)) = self.sources.get_mut(i) else { return };
        if source.ready(r, signals) == Keep::No {
            if let Some(s) = self.sources[i].take() {
                let _ = self.epoll.delete(s.fd());
                self.shared.fds.set(&self.raw_fds()); // before `s` drops and closes its fds
                drop(s);
            }
        }
    }

    /// Handle the signals of one wake-up (and the timers).
    fn step(&mut self, signals: &[Signal], woke: u64) {
        #[cfg(test)]
        if self.inject_panics > 0 {
            self.inject_panics -= 1;
            panic!("injected reactor panic");
        }
        let now = Instant::now();
        let mut pending: Vec<EventKind> = Vec::new();
        let mut resample = now >= self.next_sample;
        let mut gone = false;
        let mut crossed = Vec::new();
        let mut sentinels = Vec::new();
        for s in signals {
            match s {
                Signal::Event(kind) => {
                    if let Some(f) = kind.floor() {
                        self.tracker.raise(f, now);
                    }
                    resample = true;
                    pending.push(kind.clone());
                }
                Signal::Floor(level) => {
                    self.tracker.raise(*level, now);
                }
                Signal::Resample => resample = true,
                Signal::ThresholdCrossed(bytes) => {
                    crossed.push(*bytes);
                    resample = true;
                }
                Signal::Sentinel(bytes) => {
                    sentinels.push(*bytes);
                    resample = true;
                }
                Signal::Gone => gone = true,
            }
        }
        if resample && !gone {
            gone = !self.sample(&mut pending);
            if let Some(s) = self.last {
                for bytes in crossed {
                    let direction = if s.usage >= bytes { Direction::Up } else { Direction::Down };
                    if direction == Direction::Up && self.tracker.usage_level() == Level::Normal {
                        // Usage (page cache included) just crossed the warning threshold while
                        // the measure is still below it: memory is growing right now. Look
                        // again soon rather than after the sampler's minimum interval.
                        self.next_sample = self.next_sample.min(at_or_far(Instant::now(), FOLLOW_UP));
                    }
                    pending.push(EventKind::Threshold { direction, threshold_bytes: bytes });
                }
                if sentinels.iter().any(|b| s.usage >= *b) {
                    // Usage rose past a growth sentinel: look again soon, for the growth rate.
                    self.next_sample = self.next_sample.min(at_or_far(Instant::now(), FOLLOW_UP));
                }
                if s.limit_file_changed {
                    self.next_redetect = now;
                }
            }
        }
        if gone {
            // Only a directory that is really gone is a removal; a file that merely failed to
            // read (a permission change) must not repeat CgroupRemoved on every sample.
            let dir = self.limits.limit_dir.as_ref().or(self.limits.cgroup_dir.as_ref());
            if dir.is_some_and(|d| !self.detector.fs().exists(d)) {
                let cgroup =
                    self.limits.limit_cgroup.clone().or_else(|| self.limits.cgroup_path.clone()).unwrap_or_default();
                tracing::info!(cgroup, "memguard: the guarded cgroup was removed; re-detecting");
                self.sample_failure = None;
                pending.push(EventKind::CgroupRemoved { cgroup });
            } else {
                // A file that cannot be read or parsed while its cgroup exists: counted, shown
                // on the sampler's line, retried at the sampler's longest interval.
                self.shared.sample_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.publish_sampler_status();
                if let Some(suppressed) = self.read_errors.check() {
                    tracing::warn!(dir = ?dir, error = ?self.sample_failure, suppressed, "memguard cannot read the guarded cgroup's files");
                }
            }
            self.redetect(&mut pending);
        } else if Instant::now() >= self.next_redetect {
            self.redetect(&mut pending);
        }
        self.publish(pending, woke);
    }

    /// Take a sample, update the level and the budget. Returns false when the cgroup's files
    /// are gone.
    fn sample(&mut self, pending: &mut Vec<EventKind>) -> bool {
        let now = Instant::now();
        // Releases from now on wait for the next sample: this read may not include their memory.
        let shared = Arc::clone(&self.shared);
        let budget_sample = shared.budget.begin_usage_sample();
        self.retry_probe();
        let sample = match self.probe.sample() {
            Ok(s) => s,
            Err(e) => {
                // The caller decides between a removed cgroup and a failing file (and logs).
                if self.probe.open_error().is_none() {
                    self.sample_failure = Some(e.to_string());
                }
                self.next_sample = at_or_far(now, self.shared.config.sampler.max_interval);
                return false;
            }
        };
        if self.sample_failure.take().is_some() {
            self.publish_sampler_status();
        }
        self.samples += 1;
        self.sampled_at = now;
        self.sampled = true;
        if let Some(kills) = sample.v1_oom_kill {
            if let Some(prev) = self.v1_oom_kill {
                if kills > prev {
                    self.tracker.raise(Level::Critical, now);
                    pending.push(EventKind::OomKill { count: kills, delta: kills - prev });
                }
            }
            self.v1_oom_kill = Some(kills);
            self.counters.oom_kill = kills;
        }
        if let Some(limit) = sample.limit.filter(|l| *l > 0) {
            #[allow(clippy::cast_precision_loss)]
            self.tracker.observe(sample.unreclaimable as f64 / limit as f64, now);
            self.predict(limit, sample.unreclaimable, now);
        }
        self.last = Some(sample);
        let cfg = &self.shared.config;
        let budget = &shared.budget;
        let releasing = budget.finish_usage_sample(budget_sample, sample.unreclaimable);
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        budget.set_soft_limit(sample.limit.map_or(u64::MAX, |l| (l as f64 * cfg.soft_limit) as u64));
        self.interval = next_interval(
            &cfg.sampler,
            sample.unreclaimable,
            sample.usage,
            sample.limit,
            &cfg.thresholds,
            self.tracker.level(),
            self.kernel_watches_thresholds(),
        );
        if let (Some(limit), Some(rate)) = (sample.limit, self.growth.growth().rate) {
            self.interval =
                self.interval.min(tighten_for_growth(&cfg.sampler, cfg.horizon.0, limit, sample.unreclaimable, rate));
        }
        if releasing {
            // Released reservations stay counted until a sample shows their memory: while the
            // application releases, sample often enough that they settle promptly.
            self.interval = self.interval.min(BUDGET_SETTLE_INTERVAL);
        }
        self.next_sample = at_or_far(now, self.interval);
        if now >= self.next_psi_read {
            self.next_psi_read = now + PSI_READ_INTERVAL;
            self.psi = self.psi_file.as_ref().and_then(|f| {
                let mut buf = [0u8; 256];
                let n = f.read_at(&mut buf, 0).ok()?;
                PsiAverages::parse(&String::from_utf8_lossy(&buf[..n]))
            });
        }
        self.timing.sampled_ns = monotonic_ns();
        true
    }

    /// Feed the growth estimator and set the level the predicted time to the limit demands.
    fn predict(&mut self, limit: u64, measure: u64, now: Instant) {
        self.growth.push(monotonic_ns(), measure);
        let (warn, critical) = self.shared.config.horizon;
        let fresh = self.growth.time_to_limit(limit);
        // Once predicted, a level holds while the growth stays sustained and the time left at
        // the current rate stays within twice the horizon (no extrapolation rule): a ramp that
        // wobbles must not make the level flap, which would call handlers again and again.
        let held = self.predicted_level > Level::Normal && self.growth.growth().sustained;
        self.time_to_limit = fresh.or_else(|| held.then(|| self.growth.time_at_rate(limit)).flatten());
        let level_for = |t: Duration, factor: u32| {
            if !critical.is_zero() && t < critical.saturating_mul(factor) {
                Level::Critical
            } else if !warn.is_zero() && t < warn.saturating_mul(factor) {
                Level::Warning
            } else {
                Level::Normal
            }
        };
        let mut predicted = fresh.map_or(Level::Normal, |t| level_for(t, 1));
        if held {
            let kept = self.time_to_limit.map_or(Level::Normal, |t| level_for(t, 2)).min(self.predicted_level);
            predicted = predicted.max(kept);
        }
        self.predicted_level = predicted;
        self.tracker.predict(predicted, now);
    }

    fn redetect(&mut self, pending: &mut Vec<EventKind>) {
        self.redetect_now(pending, false);
    }

    /// Re-run detection; re-open and re-arm when something changed (or `force`).
    fn redetect_now(&mut self, pending: &mut Vec<EventKind>, force: bool) {
        self.next_redetect = at_or_far(Instant::now(), self.shared.config.redetect_interval);
        let new = match self.detector.detect() {
            Ok(l) => l.with_override(self.shared.config.limit_override),
            Err(e) => {
                // Typically a guarded `pid` that exited: its cgroup is still worth watching (its
                // other processes, its removal) as long as it exists.
                let dir = self.limits.limit_dir.as_ref().or(self.limits.cgroup_dir.as_ref());
                if !force && dir.is_some_and(|d| self.detector.fs().exists(d)) {
                    if let Some(suppressed) = self.read_errors.check() {
                        tracing::warn!(error = %e, suppressed, "memguard re-detection failed; watching the last detected cgroup");
                    }
                    return;
                }
                tracing::warn!(error = %e, "memguard re-detection failed; watching host memory only");
                Limits::host_only(self.limits.host_total_bytes)
            }
        };
        let moved = new.cgroup_dir != self.limits.cgroup_dir || new.limit_dir != self.limits.limit_dir;
        if new.limit_bytes != self.limits.limit_bytes {
            pending.push(EventKind::LimitChanged { old: self.limits.limit_bytes, new: new.limit_bytes });
        }
        let changed = moved || new.limit_bytes != self.limits.limit_bytes || new.cgroup != self.limits.cgroup;
        self.limits = new;
        if changed || force {
            self.reopen_probe();
            self.arm();
            self.sample(pending);
        }
    }

    fn event(&self, kind: EventKind, level: Level, woke: u64) -> Event {
        Event {
            kind,
            monotonic_ns: woke,
            level,
            working_set_bytes: self.last.map(|s| s.working_set),
            unreclaimable_bytes: self.last.map(|s| s.unreclaimable),
            limit_bytes: self.last.and_then(|s| s.limit),
            timing: self.timing,
        }
    }

    /// Hand an event to the callbacks (dropping the oldest queued one if the dispatcher is
    /// behind: a blocked callback must not grow memory).
    fn deliver(&self, mut event: Event, snap: Arc<Snapshot>) {
        event.timing.queued_ns = monotonic_ns();
        if self.dispatch.send(Msg::Event(event, snap)) {
            let n = self.shared.callback_dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "memguard callback queue full: a callback blocks; oldest events dropped");
            }
        }
    }

    /// Update the snapshot and deliver events (kernel events first, then the level change);
    /// tell the shedding thread about a new sample.
    fn publish(&mut self, mut pending: Vec<EventKind>, woke: u64) {
        let now = Instant::now();
        let before = Level::from_u8(self.shared.level.load(Ordering::Acquire));
        // Expire a kernel-event floor whose hold time has passed (the level below compares).
        self.tracker.tick(now);
        let level = self.tracker.level();
        if level != before {
            let spent = now.duration_since(self.level_since);
            self.time_in_level[before as usize] += spent;
            self.level_since = now;
            let time_to_limit = self.time_to_limit.map(|t| t.as_secs_f64());
            pending.push(EventKind::LevelChanged { from: before, to: level, time_to_limit });
            tracing::info!(from = before.as_str(), to = level.as_str(), "memguard level changed");
        }
        for k in &pending {
            match k {
                EventKind::High { count, .. } => self.counters.high = *count,
                EventKind::Max { count, .. } => self.counters.max = *count,
                EventKind::Oom { count, .. } => self.counters.oom = *count,
                EventKind::OomKill { count, .. } => self.counters.oom_kill = *count,
                _ => {}
            }
            *self.events_total.entry(k.name()).or_insert(0) += 1;
        }
        let snap = Arc::new(self.snapshot(level, now));
        self.shared.budget.set_level(level);
        self.shared.level.store(level.as_u8(), Ordering::Release);
        *self.shared.snapshot.write().unwrap_or_else(PoisonError::into_inner) = Arc::clone(&snap);
        for kind in pending {
            let event = self.event(kind, level, woke);
            self.deliver(event.clone(), Arc::clone(&snap));
            self.shared.push_pull(event);
        }
        if std::mem::take(&mut self.sampled) {
            if let (Some(s), Some(limit)) = (self.last, snap.limit_bytes) {
                let (warn, _) = self.tracker.thresholds().bytes(limit);
                let refusals = self.shared.budget.refused_total();
                let note = SampleNote {
                    sample: self.samples,
                    level,
                    measure: s.unreclaimable,
                    warn,
                    limit,
                    refusals,
                    at: now,
                };
                // The shedding thread is woken only when it may have something to do: a
                // CPU woken for nothing is one the callbacks' thread may wait for (measured:
                // the shedding thread ran first on the reactor's CPU while the dispatcher
                // waited for the other). With no shedder registered it has nothing to run (it
                // hears the first sample after one registers); a quiet sample (Normal, below
                // the warning threshold) after another quiet one tells its trigger nothing new
                // (`ShedTrigger::observe` is then a no-op).
                let quiet = note.is_quiet();
                if self.shared.shedders.is_empty() {
                    self.shed_heard_quiet = false;
                } else if !(quiet && self.shed_heard_quiet) {
                    push_dropping_oldest(&self.shed, &self.shed_rx, note);
                    self.shed_heard_quiet = quiet;
                }
            }
        }
    }

    fn snapshot(&self, level: Level, now: Instant) -> Snapshot {
        let mut seconds = [0.0; 3];
        for (i, d) in self.time_in_level.iter().enumerate() {
            seconds[i] = d.as_secs_f64();
        }
        seconds[level as usize] += now.duration_since(self.level_since).as_secs_f64();
        let s = self.last;
        let limit = s.and_then(|s| s.limit);
        let measure = s.map_or(0, |s| s.unreclaimable);
        #[allow(clippy::cast_precision_loss)]
        Snapshot {
            level,
            limit_bytes: limit,
            limit_source: s.map_or(super::snapshot::LimitSource::Node, |s| s.source),
            limit_unknown: self.limits.limit_unknown,
            time_to_limit: self.time_to_limit.map(|t| t.as_secs_f64()),
            growth_rate: self.growth.growth().rate,
            usage_bytes: s.map_or(0, |s| s.usage),
            working_set_bytes: s.map_or(0, |s| s.working_set),
            unreclaimable_bytes: measure,
            headroom_bytes: limit.map(|l| l.saturating_sub(measure)),
            used_fraction: limit.filter(|l| *l > 0).map(|l| measure as f64 / l as f64),
            host_available_bytes: s.and_then(|s| s.host_available),
            psi: self.psi,
            kernel_counters: self.counters,
            events_total: self.events_total.clone(),
            samples: self.samples,
            sample_interval_ms: self.interval.as_secs_f64() * 1000.0,
            seconds_in_level: seconds,
            monotonic_ns: monotonic_ns(),
            budget: None,
            shed: None,
            callback_events_dropped: 0,
            watcher_panics: 0,
            failed: None,
        }
    }
}
