//! [`Status`]: the one-shot report behind `memguard status` (and the bindings' `status()`).
//!
//! It sits above both detection and the watcher: [`Status::gather`] runs a [`Detector`],
//! applies the configuration's limit override, reads usage, and asks the watcher which event
//! sources it would arm here ([`sources::probe`](crate::watch::sources::probe)), judged with
//! the configuration's thresholds, soft limit and source switches. Detection itself knows
//! nothing of the watcher.

use serde::Serialize;

use crate::detect::Detector;
use crate::error::Result;
use crate::level::Level;
use crate::limits::{CgroupVersion, Limits, Usage, UsageSource};
use crate::watch::Config;

pub use crate::watch::SourceStatus;

/// A full report: [`Limits`] plus current usage, the level one sample gives with the
/// configured thresholds, and the event sources the watcher would arm. Serialises to the
/// `memguard status --json` object (the `Limits` fields at the top level).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    /// memguard's version.
    pub memguard_version: &'static str,
    /// What detection found (with the override applied).
    #[serde(flatten)]
    pub limits: Limits,
    /// Usage of the process's own cgroup.
    pub usage_bytes: Option<u64>,
    /// Working set of the process's own cgroup (usage minus inactive file cache).
    pub working_set_bytes: Option<u64>,
    /// Memory reclaim cannot free in the process's own cgroup (usage minus clean page cache).
    pub unreclaimable_bytes: Option<u64>,
    /// Peak usage of the process's own cgroup.
    pub peak_bytes: Option<u64>,
    /// Usage at the cgroup that sets the detected limit (the process's own without one).
    pub limit_usage_bytes: Option<u64>,
    /// Working set at the cgroup that sets the detected limit (the process's own without one).
    pub limit_working_set_bytes: Option<u64>,
    /// The pressure measure at the cgroup that sets the detected limit (the process's own
    /// without one): memory reclaim cannot free, what the levels compare with the limit.
    pub limit_unreclaimable_bytes: Option<u64>,
    /// `limit_bytes - limit_unreclaimable_bytes` (0 when over): what can still be allocated.
    pub headroom_bytes: Option<u64>,
    /// `limit_unreclaimable_bytes / limit_bytes`: the fraction the thresholds apply to.
    pub used_fraction: Option<f64>,
    /// `MemAvailable` of the host.
    pub host_available_bytes: Option<u64>,
    /// The level this one sample gives with the configured thresholds (no hysteresis, no
    /// kernel events): against the effective limit, or without one against the node's
    /// eviction point (`MemTotal` minus the eviction threshold), as the watcher does.
    pub level: Level,
    /// The warning threshold in bytes of the effective limit.
    pub warn_bytes: Option<u64>,
    /// The critical threshold in bytes of the effective limit.
    pub critical_bytes: Option<u64>,
    /// The soft-limit budget's limit in bytes (`soft_limit` fraction of the effective limit).
    pub budget_soft_limit_bytes: Option<u64>,
    /// Event sources (see [`SourceStatus`]); empty unless [`gather`](Self::gather)ed.
    pub sources: Vec<SourceStatus>,
}

impl Status {
    /// Assemble a report from detection results, judged with `config` (thresholds, soft limit,
    /// eviction threshold). `sources` is left empty (see [`gather`](Self::gather)).
    pub fn new(
        limits: Limits,
        own: Option<Usage>,
        at_limit: Option<Usage>,
        host_available: Option<u64>,
        config: &Config,
    ) -> Self {
        let limit_ws = at_limit.as_ref().map(|u| u.working_set_bytes);
        let measure = at_limit.as_ref().map(|u| u.unreclaimable_bytes);
        let headroom = limits.limit_bytes.zip(measure).map(|(l, m)| l.saturating_sub(m));
        #[allow(clippy::cast_precision_loss)]
        let fraction = |used: u64, limit: u64| (limit > 0).then(|| used as f64 / limit as f64);
        let used_fraction = limits.limit_bytes.zip(measure).and_then(|(l, m)| fraction(m, l));
        let level_fraction = match limits.limit_bytes {
            Some(_) => used_fraction,
            None => limits.host_total_bytes.zip(host_available).and_then(|(total, avail)| {
                fraction(total.saturating_sub(avail), total.saturating_sub(config.eviction_threshold))
            }),
        };
        let level = level_fraction.map_or(Level::Normal, |f| config.thresholds.level_for(f, Level::Normal));
        let thresholds = limits.limit_bytes.map(|l| config.thresholds.bytes(l));
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let soft = limits.limit_bytes.map(|l| (l as f64 * config.soft_limit) as u64);
        Status {
            memguard_version: crate::VERSION,
            usage_bytes: own.as_ref().map(|u| u.usage_bytes),
            working_set_bytes: own.as_ref().map(|u| u.working_set_bytes),
            unreclaimable_bytes: own.as_ref().map(|u| u.unreclaimable_bytes),
            peak_bytes: own.as_ref().and_then(|u| u.peak_bytes),
            limit_usage_bytes: at_limit.as_ref().map(|u| u.usage_bytes),
            limit_working_set_bytes: limit_ws,
            limit_unreclaimable_bytes: measure,
            headroom_bytes: headroom,
            used_fraction,
            host_available_bytes: host_available,
            level,
            warn_bytes: thresholds.map(|t| t.0),
            critical_bytes: thresholds.map(|t| t.1),
            budget_soft_limit_bytes: soft,
            sources: Vec::new(),
            limits,
        }
    }

    /// Everything `memguard status` reports: detection by `detector` with `config`'s limit
    /// override applied ([`Limits::with_override`]), usage at the process's cgroup and at the
    /// limiting cgroup, host memory, the level with `config`'s thresholds, and the event
    /// sources the watcher would arm here with `config` (v1 eventfd registrations are made and
    /// released to find out; PSI trigger files are only checked for writing unless
    /// `probe_psi`, which creates real triggers — accurate, but releasing a trigger costs the
    /// kernel 10-20 ms).
    ///
    /// ```
    /// use memguard::{watch::Builder, Status};
    /// let config = Builder::from_env()?.config()?;
    /// let status = Status::gather(&config.detector(), &config, false)?;
    /// println!("{:?} bytes, level {}", status.limits.limit_bytes, status.level);
    /// # Ok::<(), memguard::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Detector::detect`].
    pub fn gather(detector: &Detector, config: &Config, probe_psi: bool) -> Result<Status> {
        let (limits, meminfo) = detector.detect_with_meminfo()?;
        let mut limits = limits.with_override(config.limit_override);
        let own = detector.usage(&limits).ok();
        // The same cgroup (no detected limit, or the limit on our own cgroup): read it once.
        let at_limit = if limits.limit_dir.is_none() || limits.limit_dir == limits.cgroup_dir {
            own.clone()
        } else {
            detector.limit_usage(&limits).ok()
        };
        if own.as_ref().is_some_and(|u| u.source == UsageSource::Host) && limits.cgroup != CgroupVersion::None {
            limits.notes.push("the cgroup has no usage file; usage shown is host-wide".into());
        }
        let sources = crate::watch::sources::probe(&limits, detector.fs(), config, probe_psi);
        let mut status = Status::new(limits, own, at_limit, meminfo.available_bytes, config);
        status.sources = sources;
        Ok(status)
    }

    /// [`gather`](Self::gather) for this process, configured from the `MEMGUARD_*`
    /// environment ([`Builder::from_env`](crate::watch::Builder::from_env)): what
    /// `memguard status` prints.
    ///
    /// ```
    /// let status = memguard::Status::from_env()?;
    /// if let (Some(limit), Some(ws)) = (status.limits.limit_bytes, status.limit_working_set_bytes) {
    ///     println!("{ws} of {limit} bytes ({})", status.limits.limit_applied.as_str());
    /// }
    /// # Ok::<(), memguard::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) for a `MEMGUARD_*` variable that
    /// does not parse or is out of range; otherwise as [`Detector::detect`].
    pub fn from_env() -> Result<Status> {
        let config = crate::watch::Builder::from_env()?.config()?;
        Status::gather(&config.detector(), &config, false)
    }
}
