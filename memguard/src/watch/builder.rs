//! [`Builder`]: configuration of a [`MemGuard`] (and of `memguard status`), from code and from
//! `MEMGUARD_*` environment variables.
//!
//! # Environment variables
//!
//! Every builder setting has a variable ([`ENV_VARS`] lists them for programs). Values code
//! sets after [`Builder::from_env`] win over the environment. Formats: a *fraction* is a
//! decimal number (`0.8`); a *duration* is a number with a unit — `250ms`, `2s`, `1.5s`, `5m`,
//! `1h` — or a bare number of seconds; *bytes* are a Kubernetes quantity (`536870912`, `512Mi`,
//! `1.5Gi`, `2G`, `129e6`, `128974848000m`: the Kubernetes `resource.Quantity` grammar; fractions
//! round up to a whole byte); a *boolean* is
//! `1`/`0`/`true`/`false`. An empty variable counts as unset. A value that does not parse or
//! is out of range is an [`Error::InvalidConfig`] naming the variable and its text.
//!
//! systemd's `MEMORY_PRESSURE_WATCH` / `MEMORY_PRESSURE_WRITE` are read too
//! ([`Builder::pressure_watch`], [`PressureWatch`]): not `MEMGUARD_*` variables, so not in
//! [`ENV_VARS`]; unparsable values are [`Error::InvalidConfig`] naming them.
//!
//! | variable | setting (builder method) | format | default | range |
//! |---|---|---|---|---|
//! | `MEMGUARD_WARN` | `warn`: Warning threshold, fraction of the effective limit | fraction | 0.80 | above 0, below 1 and below `critical` |
//! | `MEMGUARD_CRITICAL` | `critical`: Critical threshold, fraction of the effective limit | fraction | 0.90 | above `warn`, at most 1 |
//! | `MEMGUARD_HYSTERESIS` | `hysteresis`: band below a threshold before its level is left | fraction | 0.05 | at least 0, below `warn` |
//! | `MEMGUARD_SOFT_LIMIT` | `soft_limit`: the budget's soft limit, fraction of the effective limit | fraction | 0.85 | above 0, at most 1 |
//! | `MEMGUARD_LIMIT` | `limit_override`: the operator's limit; the lower of it and the detected limit applies | bytes | none | at least 1Mi |
//! | `MEMGUARD_EVENT_HOLD` | `event_hold`: how long a kernel event's level floor holds | duration | 2s | 0 to 1 day |
//! | `MEMGUARD_HORIZON_WARN` | `horizon_warn`: Warning when the predicted time to the limit is shorter (0 disables) | duration | 250ms | 0 to 10s |
//! | `MEMGUARD_HORIZON_CRITICAL` | `horizon_critical`: Critical when the predicted time to the limit is shorter (0 disables) | duration | 100ms | 0 to the warning horizon |
//! | `MEMGUARD_SAMPLE_MIN` | `sample_interval` (min): shortest sampling interval | duration | 5ms | 1ms to `MEMGUARD_SAMPLE_MAX` |
//! | `MEMGUARD_SAMPLE_MAX` | `sample_interval` (max): longest sampling interval | duration | 1s | `MEMGUARD_SAMPLE_MIN` to 1 day |
//! | `MEMGUARD_MAX_RATE` | `max_alloc_rate`: allocation rate the sampler keeps up with, bytes/s | bytes | 2Gi | 1Mi to 1Ti |
//! | `MEMGUARD_EVICTION_THRESHOLD` | `eviction_threshold`: without a cgroup limit, `MemTotal` minus this is the limit | bytes | 100Mi | 0 to 1Ti |
//! | `MEMGUARD_PSI` | `psi`: arm PSI triggers | boolean | 1 | |
//! | `MEMGUARD_CGROUP_EVENTS` | `cgroup_events`: arm `memory.events` and the v1 eventfds | boolean | 1 | |
//! | `MEMGUARD_DEBOUNCE` | `debounce`: minimum time between two `High` / `Max` events | duration | 100ms | 0 to 1 day |
//! | `MEMGUARD_SHED_INTERVAL` | `shed_interval`: minimum time between two shedding runs | duration | 1s | 10ms to 1 day |
//! | `MEMGUARD_MALLOC_TRIM` | `malloc_trim` (on): `malloc_trim(0)` after shedding freed memory | boolean | 1 | |
//! | `MEMGUARD_TRIM_INTERVAL` | `malloc_trim` (min_interval): minimum time between two trims | duration | 10ms | 0 to 1 day |
//! | `MEMGUARD_REDETECT_INTERVAL` | `redetect_interval`: how often detection re-runs | duration | 10s | 100ms to 1 day |
//! | `MEMGUARD_QUEUE_CAPACITY` | `queue_capacity`: events kept for `next_event` (oldest dropped) | count | 1024 | 1 to 1048576 |
//! | `MEMGUARD_ROOT` | `root`: read `/proc` and `/sys/fs/cgroup` under this prefix | path | `/` | |
//! | `MEMGUARD_PID` | `pid`: guard the cgroup of this process instead | pid | this process | at least 1 |

use std::path::PathBuf;
use std::time::Duration;

use crate::detect::Detector;
use crate::error::{Error, Result};
use crate::level::Thresholds;
use crate::limits::LimitOverride;
use crate::parse::quantity::parse_bytes;
use crate::parse::setting::{parse_bool, parse_count, parse_duration, parse_fraction};

use super::sampler::SamplerConfig;
use super::sources::pressure_watch::PressureWatch;
use super::sources::SourceConfig;
use super::MemGuard;

/// One `MEMGUARD_*` environment variable (see the [module docs](self) for the table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvVar {
    /// The variable, `MEMGUARD_WARN`.
    pub name: &'static str,
    /// The setting it sets, named as in [`Error::InvalidConfig`]: the [`Builder`] method, or
    /// `sample_interval_min` / `_max` and `malloc_trim` / `trim_interval` for the two arguments
    /// of [`Builder::sample_interval`] and [`Builder::malloc_trim`].
    pub setting: &'static str,
    /// `fraction`, `duration`, `bytes`, `boolean`, `count`, `path` or `pid`.
    pub format: &'static str,
    /// The default, as the variable would spell it.
    pub default: &'static str,
    /// The accepted range (empty when any value of the format is fine).
    pub range: &'static str,
    /// What it does.
    pub meaning: &'static str,
}

const fn var(
    name: &'static str,
    setting: &'static str,
    format: &'static str,
    default: &'static str,
    range: &'static str,
    meaning: &'static str,
) -> EnvVar {
    EnvVar { name, setting, format, default, range, meaning }
}

/// Every environment variable [`Builder::from_env`] reads — every builder setting has one.
pub const ENV_VARS: &[EnvVar] = &[
    var(
        "MEMGUARD_WARN",
        "warn",
        "fraction",
        "0.80",
        "above 0, below 1 and below `critical`",
        "Warning threshold, fraction of the effective limit",
    ),
    var(
        "MEMGUARD_CRITICAL",
        "critical",
        "fraction",
        "0.90",
        "above `warn`, at most 1",
        "Critical threshold, fraction of the effective limit",
    ),
    var(
        "MEMGUARD_HYSTERESIS",
        "hysteresis",
        "fraction",
        "0.05",
        "at least 0, below `warn`",
        "band below a threshold before its level is left",
    ),
    var(
        "MEMGUARD_SOFT_LIMIT",
        "soft_limit",
        "fraction",
        "0.85",
        "above 0, at most 1",
        "the budget's soft limit, fraction of the effective limit",
    ),
    var(
        "MEMGUARD_LIMIT",
        "limit_override",
        "bytes",
        "none",
        "at least 1Mi",
        "the operator's limit; the lower of it and the detected limit applies",
    ),
    var(
        "MEMGUARD_EVENT_HOLD",
        "event_hold",
        "duration",
        "2s",
        "0 to 1 day",
        "how long a kernel event's level floor holds",
    ),
    var(
        "MEMGUARD_HORIZON_WARN",
        "horizon_warn",
        "duration",
        "250ms",
        "0 to 10s",
        "Warning when the predicted time to the limit is shorter (0 disables)",
    ),
    var(
        "MEMGUARD_HORIZON_CRITICAL",
        "horizon_critical",
        "duration",
        "100ms",
        "0 to the warning horizon",
        "Critical when the predicted time to the limit is shorter (0 disables)",
    ),
    var(
        "MEMGUARD_SAMPLE_MIN",
        "sample_interval_min",
        "duration",
        "5ms",
        "1ms to `MEMGUARD_SAMPLE_MAX`",
        "shortest sampling interval",
    ),
    var(
        "MEMGUARD_SAMPLE_MAX",
        "sample_interval_max",
        "duration",
        "1s",
        "`MEMGUARD_SAMPLE_MIN` to 1 day",
        "longest sampling interval",
    ),
    var(
        "MEMGUARD_MAX_RATE",
        "max_alloc_rate",
        "bytes",
        "2Gi",
        "1Mi to 1Ti",
        "allocation rate the sampler keeps up with, bytes/s",
    ),
    var(
        "MEMGUARD_EVICTION_THRESHOLD",
        "eviction_threshold",
        "bytes",
        "100Mi",
        "0 to 1Ti",
        "without a cgroup limit, `MemTotal` minus this is the limit",
    ),
    var("MEMGUARD_PSI", "psi", "boolean", "1", "", "arm PSI triggers"),
    var("MEMGUARD_CGROUP_EVENTS", "cgroup_events", "boolean", "1", "", "arm `memory.events` and the v1 eventfds"),
    var(
        "MEMGUARD_DEBOUNCE",
        "debounce",
        "duration",
        "100ms",
        "0 to 1 day",
        "minimum time between two `High` / `Max` events",
    ),
    var(
        "MEMGUARD_SHED_INTERVAL",
        "shed_interval",
        "duration",
        "1s",
        "10ms to 1 day",
        "minimum time between two shedding runs",
    ),
    var("MEMGUARD_MALLOC_TRIM", "malloc_trim", "boolean", "1", "", "`malloc_trim(0)` after shedding freed memory"),
    var("MEMGUARD_TRIM_INTERVAL", "trim_interval", "duration", "10ms", "0 to 1 day", "minimum time between two trims"),
    var(
        "MEMGUARD_REDETECT_INTERVAL",
        "redetect_interval",
        "duration",
        "10s",
        "100ms to 1 day",
        "how often detection re-runs",
    ),
    var(
        "MEMGUARD_QUEUE_CAPACITY",
        "queue_capacity",
        "count",
        "1024",
        "1 to 1048576",
        "events kept for `next_event` (oldest dropped)",
    ),
    var("MEMGUARD_ROOT", "root", "path", "`/`", "", "read `/proc` and `/sys/fs/cgroup` under this prefix"),
    var("MEMGUARD_PID", "pid", "pid", "this process", "at least 1", "guard the cgroup of this process instead"),
];

/// The longest duration any setting accepts.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);
/// The default warning horizon ([`Builder::horizon`]).
pub const DEFAULT_HORIZON_WARN: Duration = Duration::from_millis(250);
/// The default critical horizon ([`Builder::horizon`]).
pub const DEFAULT_HORIZON_CRITICAL: Duration = Duration::from_millis(100);
/// The longest horizon ([`Builder::horizon`]).
pub const MAX_HORIZON: Duration = Duration::from_secs(10);
/// The shortest [`Builder::redetect_interval`].
pub const MIN_REDETECT_INTERVAL: Duration = Duration::from_millis(100);
/// The shortest sampling interval ([`Builder::sample_interval`]'s `min`).
pub const MIN_SAMPLE_INTERVAL: Duration = Duration::from_millis(1);
/// The shortest [`Builder::shed_interval`].
pub const MIN_SHED_INTERVAL: Duration = Duration::from_millis(10);
/// The smallest limit override, bytes (smaller values are taken for a unit mistake).
pub const MIN_LIMIT_OVERRIDE: u64 = 1 << 20;
/// The largest [`Builder::queue_capacity`].
pub const MAX_QUEUE_CAPACITY: usize = 1 << 20;
const MIB: u64 = 1 << 20;
const TIB: u64 = 1 << 40;

/// The resolved, validated configuration of a guard ([`Builder::config`], [`GuardHandle::config`](crate::GuardHandle::config)).
/// Read-only: change settings on a [`Builder`].
#[derive(Debug, Clone)]
pub struct Config {
    /// Level thresholds.
    pub(crate) thresholds: Thresholds,
    /// How long a kernel-event floor holds.
    pub(crate) event_hold: Duration,
    /// Predictive warning horizons `(warn, critical)`; zero disables each.
    pub(crate) horizon: (Duration, Duration),
    /// Budget soft limit as a fraction of the effective limit.
    pub(crate) soft_limit: f64,
    /// The operator's limit override (see [`Limits::with_override`](crate::Limits::with_override)).
    pub(crate) limit_override: Option<LimitOverride>,
    /// Root prefix for detection.
    pub(crate) root: Option<PathBuf>,
    /// Guard another process's cgroup.
    pub(crate) pid: Option<u32>,
    /// Sampler tuning.
    pub(crate) sampler: SamplerConfig,
    /// Which sources to arm.
    pub(crate) sources: SourceConfig,
    /// Node eviction threshold (bytes): without a cgroup limit, `MemTotal - this` is the limit.
    pub(crate) eviction_threshold: u64,
    /// How often to re-run detection (moves, new limits above).
    pub(crate) redetect_interval: Duration,
    /// Capacity of the pull queue (`next_event`); the oldest events are dropped when full.
    pub(crate) queue_capacity: usize,
    /// Minimum time between two shedding runs (default 1 s; escalating to Critical always sheds).
    pub(crate) shed_interval: Duration,
    /// Return freed heap to the OS after shedding (`malloc_trim(0)` on glibc; default on).
    pub(crate) malloc_trim: bool,
    /// Minimum time between two `malloc_trim` calls (default 10 ms; also never more than a fifth
    /// of the time: the next trim waits at least four times as long as the previous one took).
    pub(crate) trim_interval: Duration,
    /// Test hook: the reactor panics on its next N wake-ups.
    #[cfg(test)]
    pub(crate) inject_panics: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            thresholds: Thresholds::default(),
            event_hold: Duration::from_secs(2),
            horizon: (DEFAULT_HORIZON_WARN, DEFAULT_HORIZON_CRITICAL),
            soft_limit: 0.85,
            limit_override: None,
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

impl Config {
    /// The level thresholds.
    pub fn thresholds(&self) -> Thresholds {
        self.thresholds
    }

    /// How long a kernel event's level floor holds.
    pub fn event_hold(&self) -> Duration {
        self.event_hold
    }

    /// The predictive warning horizons `(warn, critical)`: the level rises to Warning /
    /// Critical when memory, growing steadily, would reach the limit sooner; zero disables each.
    pub fn horizon(&self) -> (Duration, Duration) {
        self.horizon
    }

    /// The budget's soft limit, a fraction of the effective limit.
    pub fn soft_limit(&self) -> f64 {
        self.soft_limit
    }

    /// The operator's limit override, if any.
    pub fn limit_override(&self) -> Option<LimitOverride> {
        self.limit_override
    }

    /// The root prefix detection reads under, if any.
    pub fn root(&self) -> Option<&std::path::Path> {
        self.root.as_deref()
    }

    /// The process whose cgroup is guarded (`None`: this one).
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// The sampling interval bounds `(min, max)`.
    pub fn sample_interval(&self) -> (Duration, Duration) {
        (self.sampler.min_interval, self.sampler.max_interval)
    }

    /// The fastest allocation rate the sampler guards against, bytes per second.
    pub fn max_alloc_rate(&self) -> u64 {
        self.sampler.max_rate
    }

    /// Whether PSI triggers are armed.
    pub fn psi(&self) -> bool {
        self.sources.psi
    }

    /// systemd's memory pressure protocol as configured ([`Builder::pressure_watch`]).
    pub fn pressure_watch(&self) -> &PressureWatch {
        &self.sources.pressure_watch
    }

    /// Whether cgroup notifications (`memory.events`, v1 eventfds) are armed.
    pub fn cgroup_events(&self) -> bool {
        self.sources.cgroup_events
    }

    /// The minimum time between two `High` / `Max` events.
    pub fn debounce(&self) -> Duration {
        self.sources.debounce
    }

    /// The node eviction threshold in bytes (without a cgroup limit, `MemTotal` minus this is
    /// the limit).
    pub fn eviction_threshold(&self) -> u64 {
        self.eviction_threshold
    }

    /// How often detection re-runs.
    pub fn redetect_interval(&self) -> Duration {
        self.redetect_interval
    }

    /// The capacity of the pull queue and of the callback queue.
    pub fn queue_capacity(&self) -> usize {
        self.queue_capacity
    }

    /// The minimum time between two shedding runs under persistent pressure.
    pub fn shed_interval(&self) -> Duration {
        self.shed_interval
    }

    /// Whether freed heap is returned to the OS (`malloc_trim`).
    pub fn malloc_trim(&self) -> bool {
        self.malloc_trim
    }

    /// The minimum time between two `malloc_trim` calls.
    pub fn trim_interval(&self) -> Duration {
        self.trim_interval
    }
    /// A [`Detector`] reading under [`root`](Self::root) for [`pid`](Self::pid) (this process
    /// by default). The limit override is not detection's: apply it with
    /// [`Limits::with_override`](crate::Limits::with_override)`(self.limit_override)`.
    pub fn detector(&self) -> Detector {
        let mut d = Detector::new();
        if let Some(root) = &self.root {
            d = d.with_root(root);
        }
        if let Some(pid) = self.pid {
            d = d.with_pid(pid);
        }
        d
    }
}

/// A setting whose value came from the environment (for error messages).
#[derive(Debug, Clone)]
struct FromEnv {
    setting: &'static str,
    var: &'static str,
    text: String,
}

/// Builds a [`MemGuard`].
///
/// ```no_run
/// let guard = memguard::MemGuard::builder().warn(0.75).critical(0.9).start()?;
/// let _sub = guard.on_level(|change, snap| eprintln!("{} -> {} at {} bytes", change.from, change.to, snap.unreclaimable_bytes));
/// # Ok::<(), memguard::Error>(())
/// ```
///
/// Setters never fail; [`config`](Self::config) (and [`start`](Self::start)) check every value
/// against the documented ranges (see the [module docs](self)).
#[derive(Debug, Clone, Default)]
pub struct Builder {
    cfg: Config,
    warn: Option<f64>,
    critical: Option<f64>,
    hysteresis: Option<f64>,
    from_env: Vec<FromEnv>,
}

impl Builder {
    /// Defaults (see [`Config`]).
    pub fn new() -> Self {
        Builder::default()
    }

    /// Defaults overridden by the `MEMGUARD_*` environment variables ([`ENV_VARS`]).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the variable whose text does not parse (ranges are
    /// checked by [`config`](Self::config), also naming the variable).
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var_os(name))
    }

    /// [`from_env`](Self::from_env) with the variables looked up by `get`.
    pub(crate) fn from_lookup(get: impl Fn(&str) -> Option<std::ffi::OsString>) -> Result<Self> {
        let mut b = Builder::new();
        for v in ENV_VARS {
            let Some(raw) = get(v.name) else { continue };
            let text = raw.to_string_lossy().into_owned();
            if text.trim().is_empty() {
                continue;
            }
            let bad = |reason: String| Error::InvalidConfig {
                setting: v.setting,
                env_var: Some(v.name),
                value: text.clone(),
                reason,
            };
            if raw.to_str().is_none() && v.name != "MEMGUARD_ROOT" {
                return Err(bad("not valid UTF-8".into()));
            }
            let c = &mut b.cfg;
            match v.name {
                "MEMGUARD_WARN" => b.warn = Some(parse_fraction(&text).map_err(bad)?),
                "MEMGUARD_CRITICAL" => b.critical = Some(parse_fraction(&text).map_err(bad)?),
                "MEMGUARD_HYSTERESIS" => b.hysteresis = Some(parse_fraction(&text).map_err(bad)?),
                "MEMGUARD_SOFT_LIMIT" => c.soft_limit = parse_fraction(&text).map_err(bad)?,
                "MEMGUARD_LIMIT" => {
                    c.limit_override = Some(LimitOverride::from_env(parse_bytes(&text).map_err(bad)?));
                }
                "MEMGUARD_EVENT_HOLD" => c.event_hold = parse_duration(&text).map_err(bad)?,
                "MEMGUARD_HORIZON_WARN" => c.horizon.0 = parse_duration(&text).map_err(bad)?,
                "MEMGUARD_HORIZON_CRITICAL" => c.horizon.1 = parse_duration(&text).map_err(bad)?,
                "MEMGUARD_SAMPLE_MIN" => c.sampler.min_interval = parse_duration(&text).map_err(bad)?,
                "MEMGUARD_SAMPLE_MAX" => c.sampler.max_interval = parse_duration(&text).map_err(bad)?,
                "MEMGUARD_MAX_RATE" => c.sampler.max_rate = parse_bytes(&text).map_err(bad)?,
                "MEMGUARD_EVICTION_THRESHOLD" => c.eviction_threshold = parse_bytes(&text).map_err(bad)?,
                "MEMGUARD_PSI" => c.sources.psi = parse_bool(&text).map_err(bad)?,
                "MEMGUARD_CGROUP_EVENTS" => c.sources.cgroup_events = parse_bool(&text).map_err(bad)?,
                "MEMGUARD_DEBOUNCE" => c.sources.debounce = parse_duration(&text).map_err(bad)?,
                "MEMGUARD_SHED_INTERVAL" => c.shed_interval = parse_duration(&text).map_err(bad)?,
                "MEMGUARD_MALLOC_TRIM" => c.malloc_trim = parse_bool(&text).map_err(bad)?,
                "MEMGUARD_TRIM_INTERVAL" => c.trim_interval = parse_duration(&text).map_err(bad)?,
                "MEMGUARD_REDETECT_INTERVAL" => c.redetect_interval = parse_duration(&text).map_err(bad)?,
                "MEMGUARD_QUEUE_CAPACITY" => {
                    let n = parse_count(&text).map_err(bad)?;
                    c.queue_capacity = usize::try_from(n).unwrap_or(usize::MAX);
                }
                "MEMGUARD_ROOT" => c.root = Some(PathBuf::from(raw)),
                "MEMGUARD_PID" => {
                    let n = parse_count(&text).map_err(bad)?;
                    c.pid = Some(u32::try_from(n).unwrap_or(u32::MAX));
                }
                _ => continue,
            }
            b.from_env.push(FromEnv { setting: v.setting, var: v.name, text });
        }
        b.cfg.sources.pressure_watch = PressureWatch::from_lookup(&get)?;
        Ok(b)
    }

    /// Code sets `settings`: forget that the environment did.
    fn set_in_code(&mut self, settings: &[&str]) {
        self.from_env.retain(|e| !settings.contains(&e.setting));
    }

    /// Warning threshold, fraction of the limit (default 0.80; above 0, below 1 and below
    /// `critical`).
    pub fn warn(mut self, fraction: f64) -> Self {
        self.set_in_code(&["warn"]);
        self.warn = Some(fraction);
        self
    }

    /// Critical threshold, fraction of the limit (default 0.90; above `warn`, at most 1).
    pub fn critical(mut self, fraction: f64) -> Self {
        self.set_in_code(&["critical"]);
        self.critical = Some(fraction);
        self
    }

    /// Hysteresis band on the way down (default 0.05; at least 0, below `warn`).
    pub fn hysteresis(mut self, fraction: f64) -> Self {
        self.set_in_code(&["hysteresis"]);
        self.hysteresis = Some(fraction);
        self
    }

    /// How long a kernel event's level floor holds (default 2 s; at most 1 day).
    pub fn event_hold(mut self, hold: Duration) -> Self {
        self.set_in_code(&["event_hold"]);
        self.cfg.event_hold = hold;
        self
    }

    /// Predictive warning (default 250 ms and 100 ms; zero disables each; `warn` at most 10 s,
    /// `critical` at most `warn`): the level rises to Warning when memory, growing steadily,
    /// would reach the limit within `warn`, and to Critical within `critical` — even below the
    /// fraction thresholds. The growth rate is the median slope of the last half second of
    /// samples; growth counts only when the last three samples rise and not all in one step,
    /// and the time left is predicted only when it is at most four times the growth already seen (see
    /// [`Snapshot::time_to_limit`](crate::Snapshot::time_to_limit)).
    pub fn horizon(mut self, warn: Duration, critical: Duration) -> Self {
        self.set_in_code(&["horizon_warn", "horizon_critical"]);
        self.cfg.horizon = (warn, critical);
        self
    }

    /// Budget soft limit, fraction of the limit (default 0.85; above 0, at most 1).
    pub fn soft_limit(mut self, fraction: f64) -> Self {
        self.set_in_code(&["soft_limit"]);
        self.cfg.soft_limit = fraction;
        self
    }

    /// The operator's memory limit in bytes (at least 1 MiB), for when detection cannot see
    /// the real one — a limit hidden above a cgroup namespace, an unreadable limit file — or
    /// to guard against a tighter budget than the cgroup's. The **lowest** of this and the
    /// detected limit applies (see [`Limits::with_override`](crate::Limits::with_override));
    /// `status` reports both and which one applies. `MEMGUARD_LIMIT` sets it from the
    /// environment (a Kubernetes quantity: a Downward-API `resourceFieldRef: limits.memory`
    /// works as is).
    pub fn limit_override(mut self, bytes: u64) -> Self {
        self.set_in_code(&["limit_override"]);
        self.cfg.limit_override = Some(LimitOverride::from_builder(bytes));
        self
    }

    /// Read `/proc` and `/sys/fs/cgroup` under `root`.
    pub fn root(mut self, root: impl Into<PathBuf>) -> Self {
        self.set_in_code(&["root"]);
        self.cfg.root = Some(root.into());
        self
    }

    /// Guard the cgroup of process `pid` instead of this process's (a sidecar, a supervisor).
    pub fn pid(mut self, pid: u32) -> Self {
        self.set_in_code(&["pid"]);
        self.cfg.pid = Some(pid);
        self
    }

    /// Fastest allocation rate the sampler must keep up with (default 2 GiB/s; 1 MiB/s to
    /// 1 TiB/s).
    pub fn max_alloc_rate(mut self, bytes_per_sec: u64) -> Self {
        self.set_in_code(&["max_alloc_rate"]);
        self.cfg.sampler.max_rate = bytes_per_sec;
        self
    }

    /// Sampling interval bounds (default 5 ms .. 1 s; `min` at least 1 ms, `max` at least
    /// `min` and at most 1 day).
    pub fn sample_interval(mut self, min: Duration, max: Duration) -> Self {
        self.set_in_code(&["sample_interval_min", "sample_interval_max"]);
        self.cfg.sampler.min_interval = min;
        self.cfg.sampler.max_interval = max;
        self
    }

    /// Node eviction threshold in bytes (default 100 MiB, the kubelet's `evictionHard`; at
    /// most 1 TiB).
    pub fn eviction_threshold(mut self, bytes: u64) -> Self {
        self.set_in_code(&["eviction_threshold"]);
        self.cfg.eviction_threshold = bytes;
        self
    }

    /// Arm PSI triggers (default on).
    pub fn psi(mut self, on: bool) -> Self {
        self.set_in_code(&["psi"]);
        self.cfg.sources.psi = on;
        self
    }

    /// systemd's memory pressure protocol: watch this file (with this trigger) instead of
    /// memguard's own PSI triggers, or no PSI at all ([`PressureWatch`]). [`from_env`](Self::from_env)
    /// reads it from `MEMORY_PRESSURE_WATCH` / `MEMORY_PRESSURE_WRITE` (what systemd sets for a
    /// unit with `MemoryPressureWatch=`); [`new`](Self::new) leaves it unset. [`psi`](Self::psi)
    /// off wins.
    pub fn pressure_watch(mut self, watch: PressureWatch) -> Self {
        self.cfg.sources.pressure_watch = watch;
        self
    }

    /// Arm cgroup notifications: `memory.events`, v1 eventfds (default on). Off leaves the
    /// sampler (and PSI) — what a container with a read-only cgroupfs gets anyway.
    pub fn cgroup_events(mut self, on: bool) -> Self {
        self.set_in_code(&["cgroup_events"]);
        self.cfg.sources.cgroup_events = on;
        self
    }

    /// Minimum time between two `High` / `Max` events (default 100 ms; at most 1 day).
    pub fn debounce(mut self, d: Duration) -> Self {
        self.set_in_code(&["debounce"]);
        self.cfg.sources.debounce = d;
        self
    }

    /// Minimum time between two shedding runs (default 1 s; 10 ms to 1 day). Shedding runs
    /// on entering Warning and again on entering Critical; flapping in and out of Warning
    /// sheds at most once per interval.
    pub fn shed_interval(mut self, d: Duration) -> Self {
        self.set_in_code(&["shed_interval"]);
        self.cfg.shed_interval = d;
        self
    }

    /// After shedding freed memory, return freed heap to the OS with `malloc_trim(0)` (glibc;
    /// a no-op elsewhere), at most once per `min_interval` (default: on, 10 ms; at most 1 day; and
    /// never more than a fifth of the time).
    pub fn malloc_trim(mut self, on: bool, min_interval: Duration) -> Self {
        self.set_in_code(&["malloc_trim", "trim_interval"]);
        self.cfg.malloc_trim = on;
        self.cfg.trim_interval = min_interval;
        self
    }

    /// How often detection re-runs to notice moves and new limits (default 10 s; 100 ms to
    /// 1 day).
    pub fn redetect_interval(mut self, d: Duration) -> Self {
        self.set_in_code(&["redetect_interval"]);
        self.cfg.redetect_interval = d;
        self
    }

    /// How many events [`next_event`](crate::watch::GuardHandle::next_event) keeps for a
    /// reader (default 1024; 1 to 1 048 576); the oldest are dropped beyond it.
    pub fn queue_capacity(mut self, events: usize) -> Self {
        self.set_in_code(&["queue_capacity"]);
        self.cfg.queue_capacity = events;
        self
    }

    /// `Err(InvalidConfig)` for `setting` unless `ok`, naming its variable when it came from
    /// the environment, else showing `value`.
    fn check(&self, ok: bool, setting: &'static str, value: impl FnOnce() -> String, reason: &str) -> Result<()> {
        if ok {
            return Ok(());
        }
        let (env_var, value) = match self.from_env.iter().find(|e| e.setting == setting) {
            Some(e) => (Some(e.var), e.text.clone()),
            None => (None, value()),
        };
        Err(Error::InvalidConfig { setting, env_var, value, reason: reason.to_owned() })
    }

    fn check_duration(&self, setting: &'static str, d: Duration, min: Duration) -> Result<()> {
        let reason = if min.is_zero() {
            "must be at most 1 day".to_owned()
        } else {
            format!("must be between {min:?} and 1 day")
        };
        self.check((min..=MAX_DURATION).contains(&d), setting, || format!("{d:?}"), &reason)
    }

    /// The resolved configuration, every value checked against its documented range.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the first setting out of range (and its `MEMGUARD_*`
    /// variable when it came from the environment).
    pub fn config(&self) -> Result<Config> {
        let mut cfg = self.cfg.clone();
        let d = Thresholds::default();
        let (warn, critical, hysteresis) = (
            self.warn.unwrap_or(d.warn()),
            self.critical.unwrap_or(d.critical()),
            self.hysteresis.unwrap_or(d.hysteresis()),
        );
        let fmt = |v: f64| move || v.to_string();
        self.check(warn > 0.0 && warn < 1.0, "warn", fmt(warn), "must be above 0 and below 1")?;
        self.check(critical > 0.0 && critical <= 1.0, "critical", fmt(critical), "must be above 0 and at most 1")?;
        if warn >= critical {
            // Blame whichever of the two the caller set (critical when both or neither).
            let setting = if self.critical.is_none() && self.warn.is_some() { "warn" } else { "critical" };
            let (value, reason) = if setting == "warn" {
                (warn, format!("must be below critical ({critical})"))
            } else {
                (critical, format!("must be above warn ({warn})"))
            };
            self.check(false, setting, fmt(value), &reason)?;
        }
        let reason = format!("must be at least 0 and below warn ({warn})");
        self.check(hysteresis >= 0.0 && hysteresis < warn, "hysteresis", fmt(hysteresis), &reason)?;
        cfg.thresholds = Thresholds::new(warn, critical, hysteresis)?;
        let s = cfg.soft_limit;
        self.check(s > 0.0 && s <= 1.0, "soft_limit", fmt(s), "must be above 0 and at most 1")?;
        if let Some(o) = cfg.limit_override {
            let ok = o.bytes >= MIN_LIMIT_OVERRIDE;
            self.check(ok, "limit_override", || o.bytes.to_string(), "must be at least 1Mi (1048576 bytes)")?;
        }
        self.check_duration("event_hold", cfg.event_hold, Duration::ZERO)?;
        let (hw, hc) = cfg.horizon;
        self.check(hw <= MAX_HORIZON, "horizon_warn", || format!("{hw:?}"), "must be at most 10s")?;
        let reason = format!("must be at most the warning horizon ({hw:?}) unless that is disabled");
        self.check(hc <= hw || hw.is_zero() && hc <= MAX_HORIZON, "horizon_critical", || format!("{hc:?}"), &reason)?;
        let sampler = cfg.sampler;
        self.check_duration("sample_interval_min", sampler.min_interval, MIN_SAMPLE_INTERVAL)?;
        self.check_duration("sample_interval_max", sampler.max_interval, MIN_SAMPLE_INTERVAL)?;
        let reason = format!("must not be below the minimum interval ({:?})", sampler.min_interval);
        let max = sampler.max_interval;
        self.check(max >= sampler.min_interval, "sample_interval_max", || format!("{max:?}"), &reason)?;
        let rate = sampler.max_rate;
        let ok = (MIB..=TIB).contains(&rate);
        self.check(ok, "max_alloc_rate", || rate.to_string(), "must be between 1Mi and 1Ti bytes per second")?;
        let e = cfg.eviction_threshold;
        self.check(e <= TIB, "eviction_threshold", || e.to_string(), "must be at most 1Ti bytes")?;
        self.check_duration("debounce", cfg.sources.debounce, Duration::ZERO)?;
        self.check_duration("shed_interval", cfg.shed_interval, MIN_SHED_INTERVAL)?;
        self.check_duration("trim_interval", cfg.trim_interval, Duration::ZERO)?;
        self.check_duration("redetect_interval", cfg.redetect_interval, MIN_REDETECT_INTERVAL)?;
        let q = cfg.queue_capacity;
        let ok = (1..=MAX_QUEUE_CAPACITY).contains(&q);
        self.check(ok, "queue_capacity", || q.to_string(), "must be between 1 and 1048576")?;
        if let Some(pid) = cfg.pid {
            self.check(pid >= 1, "pid", || pid.to_string(), "must be at least 1")?;
        }
        cfg.sources.growth_sentinels = !cfg.horizon.0.is_zero();
        Ok(cfg)
    }

    /// Detect, arm every available source and start the watcher and dispatcher threads.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`]; detection errors ([`Error::ProcUnavailable`]); failure to
    /// create epoll/eventfd ([`Error::Io`]); a thread the operating system refuses
    /// ([`Error::ThreadSpawn`]: the threads already started are joined and every descriptor
    /// closed before it returns).
    pub fn start(&self) -> Result<MemGuard> {
        MemGuard::start_with(self.config()?)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::ffi::OsString;

    use super::*;
    use crate::limits::OverrideSource;

    fn env(vars: &[(&str, &str)]) -> Result<Builder> {
        let map: HashMap<String, OsString> = vars.iter().map(|(k, v)| ((*k).to_owned(), OsString::from(v))).collect();
        Builder::from_lookup(|name| map.get(name).cloned())
    }

    fn env_config(vars: &[(&str, &str)]) -> Result<Config> {
        env(vars)?.config()
    }

    /// The setting, variable and value an invalid configuration names.
    fn names(e: &Error) -> (&'static str, Option<&'static str>, String) {
        match e {
            Error::InvalidConfig { setting, env_var, value, .. } => (setting, *env_var, value.clone()),
            other => panic!("not InvalidConfig: {other:?}"),
        }
    }

    #[test]
    fn defaults_are_valid() {
        let c = Builder::new().config().expect("defaults");
        assert_eq!(c.redetect_interval, Duration::from_secs(10));
        assert_eq!(c.limit_override, None);
        assert!(env_config(&[]).is_ok());
    }

    #[test]
    fn invalid_values_are_errors() {
        assert!(Builder::new().warn(0.95).critical(0.9).config().is_err());
        assert!(Builder::new().soft_limit(0.0).config().is_err());
        assert!(Builder::new().sample_interval(Duration::ZERO, Duration::from_secs(1)).config().is_err());
        let c = Builder::new().warn(0.7).critical(0.8).config().expect("valid");
        assert_eq!((c.thresholds.warn(), c.thresholds.critical()), (0.7, 0.8));
    }

    /// Every setting's range, at both ends: just inside is accepted, just outside is an error
    /// naming the setting.
    #[test]
    fn every_range_is_checked_and_named() {
        let ms = Duration::from_millis;
        let day = MAX_DURATION;
        let over = day + Duration::from_nanos(1);
        let cases: Vec<(&str, Builder, bool)> = vec![
            ("warn", Builder::new().warn(0.0), false),
            ("warn", Builder::new().warn(f64::NAN), false),
            ("warn", Builder::new().warn(0.06), true),
            ("critical", Builder::new().critical(1.01), false),
            ("critical", Builder::new().critical(1.0), true),
            ("critical", Builder::new().critical(0.8), false), // not above warn 0.80
            ("warn", Builder::new().warn(0.9), false),         // not below critical 0.90
            ("hysteresis", Builder::new().hysteresis(-0.01), false),
            ("hysteresis", Builder::new().hysteresis(0.8), false),
            ("hysteresis", Builder::new().hysteresis(0.0), true),
            ("soft_limit", Builder::new().soft_limit(0.0), false),
            ("soft_limit", Builder::new().soft_limit(1.01), false),
            ("soft_limit", Builder::new().soft_limit(f64::INFINITY), false),
            ("soft_limit", Builder::new().soft_limit(1.0), true),
            ("limit_override", Builder::new().limit_override(MIN_LIMIT_OVERRIDE - 1), false),
            ("limit_override", Builder::new().limit_override(MIN_LIMIT_OVERRIDE), true),
            ("limit_override", Builder::new().limit_override(u64::MAX), true),
            ("event_hold", Builder::new().event_hold(over), false),
            ("event_hold", Builder::new().event_hold(Duration::MAX), false),
            ("event_hold", Builder::new().event_hold(Duration::ZERO), true),
            ("sample_interval_min", Builder::new().sample_interval(Duration::from_micros(999), ms(5)), false),
            ("sample_interval_min", Builder::new().sample_interval(ms(1), ms(1)), true),
            ("sample_interval_max", Builder::new().sample_interval(ms(10), ms(5)), false),
            ("sample_interval_max", Builder::new().sample_interval(ms(10), over), false),
            ("sample_interval_max", Builder::new().sample_interval(ms(10), day), true),
            ("max_alloc_rate", Builder::new().max_alloc_rate(0), false),
            ("max_alloc_rate", Builder::new().max_alloc_rate(MIB - 1), false),
            ("max_alloc_rate", Builder::new().max_alloc_rate(TIB + 1), false),
            ("max_alloc_rate", Builder::new().max_alloc_rate(MIB), true),
            ("eviction_threshold", Builder::new().eviction_threshold(TIB + 1), false),
            ("eviction_threshold", Builder::new().eviction_threshold(0), true),
            ("debounce", Builder::new().debounce(over), false),
            ("debounce", Builder::new().debounce(Duration::ZERO), true),
            ("shed_interval", Builder::new().shed_interval(ms(9)), false),
            ("shed_interval", Builder::new().shed_interval(Duration::MAX), false),
            ("shed_interval", Builder::new().shed_interval(ms(10)), true),
            ("trim_interval", Builder::new().malloc_trim(true, over), false),
            ("trim_interval", Builder::new().malloc_trim(false, Duration::ZERO), true),
            ("redetect_interval", Builder::new().redetect_interval(Duration::ZERO), false),
            ("redetect_interval", Builder::new().redetect_interval(ms(99)), false),
            ("redetect_interval", Builder::new().redetect_interval(Duration::MAX), false),
            ("redetect_interval", Builder::new().redetect_interval(ms(100)), true),
            ("redetect_interval", Builder::new().redetect_interval(day), true),
            ("queue_capacity", Builder::new().queue_capacity(0), false),
            ("queue_capacity", Builder::new().queue_capacity(MAX_QUEUE_CAPACITY + 1), false),
            ("queue_capacity", Builder::new().queue_capacity(1), true),
            ("pid", Builder::new().pid(0), false),
            ("pid", Builder::new().pid(1), true),
        ];
        for (setting, b, ok) in cases {
            match b.config() {
                Ok(_) => assert!(ok, "{setting}: accepted {b:?}"),
                Err(e) => {
                    assert!(!ok, "{setting}: refused: {e}");
                    let (named, var, _) = names(&e);
                    assert_eq!((named, var), (setting, None), "{e}");
                    assert!(e.to_string().contains(setting), "{e}");
                }
            }
        }
    }

    /// systemd's variables: parsed as sd-event reads them, errors name the variable.
    #[test]
    fn systemd_memory_pressure_variables() {
        let path = "/sys/fs/cgroup/system.slice/app.service/memory.pressure";
        let c =
            env_config(&[("MEMORY_PRESSURE_WATCH", path), ("MEMORY_PRESSURE_WRITE", "c29tZSAyMDAwMDAgMjAwMDAwMAA=")])
                .expect("valid environment");
        assert_eq!(
            c.pressure_watch(),
            &PressureWatch::Path { path: path.into(), write: Some(b"some 200000 2000000\0".to_vec()) }
        );
        assert_eq!(env_config(&[]).expect("empty").pressure_watch(), &PressureWatch::Unset);
        assert_eq!(
            env_config(&[("MEMORY_PRESSURE_WATCH", "/dev/null")]).expect("off").pressure_watch(),
            &PressureWatch::Disabled
        );
        let err = env(&[("MEMORY_PRESSURE_WATCH", "relative/memory.pressure")]).expect_err("relative");
        assert_eq!(names(&err), ("pressure_watch", Some("MEMORY_PRESSURE_WATCH"), "relative/memory.pressure".into()));
        let err = env(&[("MEMORY_PRESSURE_WATCH", path), ("MEMORY_PRESSURE_WRITE", "%%%")]).expect_err("base64");
        assert_eq!(names(&err), ("pressure_watch", Some("MEMORY_PRESSURE_WRITE"), "%%%".into()));
        // Code wins: `Builder::new()` ignores the environment, `pressure_watch` sets it.
        let b = Builder::new().pressure_watch(PressureWatch::Disabled);
        assert_eq!(b.config().expect("valid").pressure_watch(), &PressureWatch::Disabled);
    }

    /// Every variable of the table parses its documented format, sets its setting, and a bad
    /// text or an out-of-range value is an error naming the variable and its text.
    #[test]
    fn every_variable_sets_its_setting() {
        let c = env_config(&[
            ("MEMGUARD_WARN", "0.7"),
            ("MEMGUARD_CRITICAL", "0.95"),
            ("MEMGUARD_HYSTERESIS", "0.02"),
            ("MEMGUARD_SOFT_LIMIT", "0.6"),
            ("MEMGUARD_LIMIT", "1.5Gi"),
            ("MEMGUARD_EVENT_HOLD", "1.5s"),
            ("MEMGUARD_SAMPLE_MIN", "2ms"),
            ("MEMGUARD_SAMPLE_MAX", "5m"),
            ("MEMGUARD_MAX_RATE", "1Gi"),
            ("MEMGUARD_EVICTION_THRESHOLD", "200Mi"),
            ("MEMGUARD_PSI", "0"),
            ("MEMGUARD_CGROUP_EVENTS", "false"),
            ("MEMGUARD_DEBOUNCE", "250ms"),
            ("MEMGUARD_SHED_INTERVAL", "2"),
            ("MEMGUARD_MALLOC_TRIM", "FALSE"),
            ("MEMGUARD_TRIM_INTERVAL", "1h"),
            ("MEMGUARD_REDETECT_INTERVAL", "30s"),
            ("MEMGUARD_QUEUE_CAPACITY", "64"),
            ("MEMGUARD_ROOT", "/host"),
            ("MEMGUARD_PID", "42"),
        ])
        .expect("valid environment");
        assert_eq!((c.thresholds.warn(), c.thresholds.critical(), c.thresholds.hysteresis()), (0.7, 0.95, 0.02));
        assert_eq!(c.soft_limit, 0.6);
        assert_eq!(c.limit_override, Some(LimitOverride { bytes: 3 << 29, source: OverrideSource::Env }));
        assert_eq!(c.event_hold, Duration::from_millis(1500));
        assert_eq!(
            (c.sampler.min_interval, c.sampler.max_interval),
            (Duration::from_millis(2), Duration::from_secs(300))
        );
        assert_eq!(c.sampler.max_rate, 1 << 30);
        assert_eq!(c.eviction_threshold, 200 << 20);
        assert!(!c.sources.psi && !c.sources.cgroup_events && !c.malloc_trim);
        assert_eq!(c.sources.debounce, Duration::from_millis(250));
        assert_eq!(c.shed_interval, Duration::from_secs(2));
        assert_eq!(c.trim_interval, Duration::from_secs(3600));
        assert_eq!(c.redetect_interval, Duration::from_secs(30));
        assert_eq!(c.queue_capacity, 64);
        assert_eq!(c.root.as_deref(), Some(std::path::Path::new("/host")));
        assert_eq!(c.pid, Some(42));

        // Bad text: refused by from_env, naming the variable and its text.
        let garbage = |var: &EnvVar| match var.format {
            "path" => None,
            _ => Some("garbage"),
        };
        for v in ENV_VARS {
            let Some(text) = garbage(v) else { continue };
            let err = env(&[(v.name, text)]).expect_err(v.name);
            assert_eq!(names(&err), (v.setting, Some(v.name), text.to_owned()), "{err}");
            assert!(err.to_string().contains(&format!("{}=\"garbage\"", v.name)), "{err}");
        }
        // Out of range: refused by config(), naming the variable and its text.
        for (var, text) in [
            ("MEMGUARD_WARN", "1.5"),
            ("MEMGUARD_CRITICAL", "0.5"),
            ("MEMGUARD_HYSTERESIS", "-0.1"),
            ("MEMGUARD_SOFT_LIMIT", "0"),
            ("MEMGUARD_LIMIT", "512"),
            ("MEMGUARD_EVENT_HOLD", "25h"),
            ("MEMGUARD_SAMPLE_MIN", "0"),
            ("MEMGUARD_SAMPLE_MAX", "2ms"),
            ("MEMGUARD_MAX_RATE", "0"),
            ("MEMGUARD_EVICTION_THRESHOLD", "2Ti"),
            ("MEMGUARD_DEBOUNCE", "2000h"),
            ("MEMGUARD_SHED_INTERVAL", "1ms"),
            ("MEMGUARD_TRIM_INTERVAL", "99999h"),
            ("MEMGUARD_REDETECT_INTERVAL", "0"),
            ("MEMGUARD_QUEUE_CAPACITY", "0"),
            ("MEMGUARD_PID", "0"),
        ] {
            let v = ENV_VARS.iter().find(|v| v.name == var).expect("in the table");
            let err = env_config(&[(var, text)]).expect_err(var);
            assert_eq!(names(&err), (v.setting, Some(var), text.to_owned()), "{err}");
            assert!(err.to_string().contains(&format!("{var}={text:?}")), "{err}");
        }
        // Empty counts as unset; code set after from_env wins (and is what an error names).
        assert_eq!(env_config(&[("MEMGUARD_WARN", " ")]).expect("empty").thresholds.warn(), 0.80);
        let b = env(&[("MEMGUARD_REDETECT_INTERVAL", "0")]).expect("parses");
        assert!(b.clone().redetect_interval(Duration::from_secs(1)).config().is_ok());
        let err = b.redetect_interval(Duration::ZERO).config().expect_err("zero");
        assert_eq!(names(&err), ("redetect_interval", None, "0ns".into()));
        let c = env(&[("MEMGUARD_LIMIT", "1Gi")]).expect("parses").limit_override(2 << 30).config().expect("ok");
        assert_eq!(c.limit_override, Some(LimitOverride::from_builder(2 << 30)));
    }

    #[test]
    fn downward_api_and_human_limits() {
        for (text, bytes) in [
            ("536870912", 512u64 << 20),
            ("512Mi", 512 << 20),
            ("1G", 1_000_000_000),
            ("1.5Gi", 3 << 29),
            ("129e6", 129_000_000),
            ("128974848000m", 128_974_848),
        ] {
            let c = env_config(&[("MEMGUARD_LIMIT", text)]).expect(text);
            assert_eq!(c.limit_override.map(|o| o.bytes), Some(bytes), "{text}");
        }
        for text in ["1e3k", "lots", "-1Gi", "1GB", "0"] {
            let err = env(&[("MEMGUARD_LIMIT", text)]).and_then(|b| b.config()).expect_err(text);
            assert!(err.to_string().contains(&format!("MEMGUARD_LIMIT={text:?}")), "{err}");
        }
    }

    /// The module docs' table and the README's list every variable with its default.
    #[test]
    fn env_table_is_documented() {
        let rustdoc = include_str!("builder.rs");
        let readme = include_str!("../../../README.md");
        for v in ENV_VARS {
            let row = rustdoc
                .lines()
                .find(|l| l.starts_with(&format!("//! | `{}` |", v.name)))
                .unwrap_or_else(|| panic!("{} missing from the rustdoc table", v.name));
            for part in [v.format, v.default, v.range, v.meaning] {
                assert!(row.contains(part), "rustdoc row of {} lacks {part:?}: {row}", v.name);
            }
            let row = readme
                .lines()
                .find(|l| l.starts_with(&format!("| `{}` |", v.name)))
                .unwrap_or_else(|| panic!("{} missing from the README's table", v.name));
            for part in [v.default, v.range] {
                assert!(row.contains(part), "README row of {} lacks {part:?}: {row}", v.name);
            }
        }
    }
}
