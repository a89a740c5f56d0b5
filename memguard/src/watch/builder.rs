//! [`Builder`]: configuration of a [`MemGuard`], from code and from `MEMGUARD_*`
//! environment variables.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::level::Thresholds;

use super::sampler::SamplerConfig;
use super::sources::SourceConfig;
use super::MemGuard;

/// Environment variables read by [`Builder::from_env`].
///
/// | variable | meaning | default |
/// |---|---|---|
/// | `MEMGUARD_WARN` | warning threshold, fraction of the limit | 0.80 |
/// | `MEMGUARD_CRITICAL` | critical threshold, fraction of the limit | 0.90 |
/// | `MEMGUARD_SOFT_LIMIT` | budget soft limit, fraction of the limit | 0.85 |
/// | `MEMGUARD_EVICTION_THRESHOLD` | node eviction threshold, bytes | 104857600 (100 MiB) |
/// | `MEMGUARD_MAX_RATE` | allocation rate the sampler guards against, bytes/s | 2147483648 |
/// | `MEMGUARD_PSI` | `0` disables PSI triggers | 1 |
/// | `MEMGUARD_ROOT` | read `/proc` and `/sys/fs/cgroup` under this prefix | `/` |
pub const ENV_VARS: &[&str] = &[
    "MEMGUARD_WARN",
    "MEMGUARD_CRITICAL",
    "MEMGUARD_SOFT_LIMIT",
    "MEMGUARD_EVICTION_THRESHOLD",
    "MEMGUARD_MAX_RATE",
    "MEMGUARD_PSI",
    "MEMGUARD_ROOT",
];

/// Resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Level thresholds.
    pub thresholds: Thresholds,
    /// How long a kernel-event floor holds.
    pub event_hold: Duration,
    /// Budget soft limit as a fraction of the effective limit.
    pub soft_limit: f64,
    /// Root prefix for detection.
    pub root: Option<PathBuf>,
    /// Guard another process's cgroup.
    pub pid: Option<u32>,
    /// Sampler tuning.
    pub sampler: SamplerConfig,
    /// Which sources to arm.
    pub sources: SourceConfig,
    /// Node eviction threshold (bytes): without a cgroup limit, `MemTotal - this` is the limit.
    pub eviction_threshold: u64,
    /// How often to re-run detection (moves, new limits above).
    pub redetect_interval: Duration,
    /// Capacity of the pull queue (`next_event`); the oldest events are dropped when full.
    pub queue_capacity: usize,
    /// Minimum time between two shedding runs (default 1 s; escalating to Critical always sheds).
    pub shed_interval: Duration,
    /// Return freed heap to the OS after shedding (`malloc_trim(0)` on glibc; default on).
    pub malloc_trim: bool,
    /// Minimum time between two `malloc_trim` calls (default 10 ms; also never more than a fifth of the time, see [`Trimmer`](crate::shed::Trimmer)).
    pub trim_interval: Duration,
    /// Test hook: the reactor panics on its next N wake-ups.
    #[cfg(test)]
    pub(crate) inject_panics: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            thresholds: Thresholds::default(),
            event_hold: Duration::from_secs(2),
            soft_limit: 0.85,
            root: None,
            pid: None,
            sampler: SamplerConfig::default(),
            sources: SourceConfig::default(),
            eviction_threshold: 100 << 20,
            redetect_interval: Duration::from_secs(10),
            queue_capacity: 1024,
            shed_interval: Duration::from_secs(1),
            malloc_trim: true,
            trim_interval: crate::shed::Trimmer::DEFAULT_MIN_INTERVAL,
            #[cfg(test)]
            inject_panics: 0,
        }
    }
}

/// Builds a [`MemGuard`].
///
/// ```no_run
/// let guard = memguard::MemGuard::builder().warn(0.75).critical(0.9).start()?;
/// let _sub = guard.on_level(|change, snap| eprintln!("{} -> {} at {} bytes", change.from, change.to, snap.unreclaimable_bytes));
/// # Ok::<(), memguard::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Builder {
    cfg: Config,
    warn: Option<f64>,
    critical: Option<f64>,
    hysteresis: Option<f64>,
}

fn env_parse<T: std::str::FromStr>(name: &str) -> Result<Option<T>> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => {
            v.trim().parse().map(Some).map_err(|_| Error::InvalidConfig(format!("{name}={v:?} is not a valid value")))
        }
        _ => Ok(None),
    }
}

impl Builder {
    /// Defaults (see [`Config`]).
    pub fn new() -> Self {
        Builder::default()
    }

    /// Defaults overridden by the `MEMGUARD_*` environment variables ([`ENV_VARS`]).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the variable that does not parse.
    pub fn from_env() -> Result<Self> {
        let mut b = Builder::new();
        b.warn = env_parse("MEMGUARD_WARN")?;
        b.critical = env_parse("MEMGUARD_CRITICAL")?;
        if let Some(s) = env_parse("MEMGUARD_SOFT_LIMIT")? {
            b.cfg.soft_limit = s;
        }
        if let Some(e) = env_parse("MEMGUARD_EVICTION_THRESHOLD")? {
            b.cfg.eviction_threshold = e;
        }
        if let Some(r) = env_parse("MEMGUARD_MAX_RATE")? {
            b.cfg.sampler.max_rate = r;
        }
        if let Some(p) = env_parse::<u8>("MEMGUARD_PSI")? {
            b.cfg.sources.psi = p != 0;
        }
        if let Some(root) = std::env::var_os(crate::ROOT_ENV).filter(|v| !v.is_empty()) {
            b.cfg.root = Some(root.into());
        }
        Ok(b)
    }

    /// Warning threshold, fraction of the limit (default 0.80).
    pub fn warn(mut self, fraction: f64) -> Self {
        self.warn = Some(fraction);
        self
    }

    /// Critical threshold, fraction of the limit (default 0.90).
    pub fn critical(mut self, fraction: f64) -> Self {
        self.critical = Some(fraction);
        self
    }

    /// Hysteresis band on the way down (default 0.05).
    pub fn hysteresis(mut self, fraction: f64) -> Self {
        self.hysteresis = Some(fraction);
        self
    }

    /// How long a kernel event's level floor holds (default 2 s).
    pub fn event_hold(mut self, hold: Duration) -> Self {
        self.cfg.event_hold = hold;
        self
    }

    /// Budget soft limit, fraction of the limit (default 0.85).
    pub fn soft_limit(mut self, fraction: f64) -> Self {
        self.cfg.soft_limit = fraction;
        self
    }

    /// Read `/proc` and `/sys/fs/cgroup` under `root`.
    pub fn root(mut self, root: impl Into<PathBuf>) -> Self {
        self.cfg.root = Some(root.into());
        self
    }

    /// Guard the cgroup of process `pid` instead of this process's (a sidecar, a supervisor).
    pub fn pid(mut self, pid: u32) -> Self {
        self.cfg.pid = Some(pid);
        self
    }

    /// Fastest allocation rate the sampler must keep up with (default 2 GiB/s).
    pub fn max_alloc_rate(mut self, bytes_per_sec: u64) -> Self {
        self.cfg.sampler.max_rate = bytes_per_sec;
        self
    }

    /// Sampling interval bounds (default 5 ms .. 1 s).
    pub fn sample_interval(mut self, min: Duration, max: Duration) -> Self {
        self.cfg.sampler.min_interval = min;
        self.cfg.sampler.max_interval = max;
        self
    }

    /// Node eviction threshold in bytes (default 100 MiB, the kubelet's `evictionHard`).
    pub fn eviction_threshold(mut self, bytes: u64) -> Self {
        self.cfg.eviction_threshold = bytes;
        self
    }

    /// Arm PSI triggers (default on).
    pub fn psi(mut self, on: bool) -> Self {
        self.cfg.sources.psi = on;
        self
    }

    /// Arm cgroup notifications: `memory.events`, v1 eventfds (default on). Off leaves the
    /// sampler (and PSI) — what a container with a read-only cgroupfs gets anyway.
    pub fn cgroup_events(mut self, on: bool) -> Self {
        self.cfg.sources.cgroup_events = on;
        self
    }

    /// Minimum time between two `High` / `Max` events (default 100 ms).
    pub fn debounce(mut self, d: Duration) -> Self {
        self.cfg.sources.debounce = d;
        self
    }

    /// Minimum time between two shedding runs (default 1 s). Shedding runs on entering
    /// Warning and again on entering Critical; flapping in and out of Warning sheds at most
    /// once per interval.
    pub fn shed_interval(mut self, d: Duration) -> Self {
        self.cfg.shed_interval = d;
        self
    }

    /// After shedding freed memory, return freed heap to the OS with `malloc_trim(0)` (glibc;
    /// a no-op elsewhere), at most once per `min_interval` (default: on, 10 ms; and never more than a fifth of the time).
    pub fn malloc_trim(mut self, on: bool, min_interval: Duration) -> Self {
        self.cfg.malloc_trim = on;
        self.cfg.trim_interval = min_interval;
        self
    }

    /// How often detection re-runs to notice moves and new limits (default 10 s).
    pub fn redetect_interval(mut self, d: Duration) -> Self {
        self.cfg.redetect_interval = d;
        self
    }

    /// The resolved configuration.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for thresholds, soft limit or intervals out of range.
    pub fn config(&self) -> Result<Config> {
        let mut cfg = self.cfg.clone();
        let d = Thresholds::default();
        cfg.thresholds = Thresholds::new(
            self.warn.unwrap_or(d.warn()),
            self.critical.unwrap_or(d.critical()),
            self.hysteresis.unwrap_or(d.hysteresis()),
        )?;
        if !(cfg.soft_limit > 0.0 && cfg.soft_limit <= 1.0) {
            return Err(Error::InvalidConfig(format!("soft limit must be in (0, 1], got {}", cfg.soft_limit)));
        }
        if cfg.sampler.min_interval.is_zero() || cfg.sampler.min_interval > cfg.sampler.max_interval {
            return Err(Error::InvalidConfig("sample interval bounds must satisfy 0 < min <= max".into()));
        }
        if cfg.sampler.max_rate == 0 {
            return Err(Error::InvalidConfig("max allocation rate must be positive".into()));
        }
        Ok(cfg)
    }

    /// Detect, arm every available source and start the watcher and dispatcher threads.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`]; detection errors ([`Error::ProcUnavailable`]); failure to
    /// create epoll/eventfd or spawn threads ([`Error::Io`]).
    pub fn start(&self) -> Result<MemGuard> {
        MemGuard::start_with(self.config()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_values_are_errors() {
        assert!(Builder::new().warn(0.95).critical(0.9).config().is_err());
        assert!(Builder::new().soft_limit(0.0).config().is_err());
        assert!(Builder::new().sample_interval(Duration::ZERO, Duration::from_secs(1)).config().is_err());
        let c = Builder::new().warn(0.7).critical(0.8).config().expect("valid");
        assert_eq!((c.thresholds.warn(), c.thresholds.critical()), (0.7, 0.8));
    }
}
