//! [`Status`]: the one-shot report behind `memguard status` (and the bindings' `status()`).

use serde::Serialize;

use crate::limits::{Limits, Usage};

/// One event source and whether it is armed (filled by the watcher; empty until then).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceStatus {
    /// Source name, e.g. `v2-memory-events`.
    pub name: String,
    /// True when armed.
    pub armed: bool,
    /// Why not, or what exactly is armed.
    pub detail: Option<String>,
}

/// A full report: [`Limits`] plus current usage. Serialises to the `memguard status --json`
/// object (the `Limits` fields at the top level).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    /// memguard's version.
    pub memguard_version: &'static str,
    /// What detection found.
    #[serde(flatten)]
    pub limits: Limits,
    /// Usage of the process's own cgroup.
    pub usage_bytes: Option<u64>,
    /// Working set of the process's own cgroup.
    pub working_set_bytes: Option<u64>,
    /// Peak usage of the process's own cgroup.
    pub peak_bytes: Option<u64>,
    /// Usage at the cgroup that sets the limit.
    pub limit_usage_bytes: Option<u64>,
    /// Working set at the cgroup that sets the limit.
    pub limit_working_set_bytes: Option<u64>,
    /// `limit_bytes - limit_working_set_bytes` (0 when over).
    pub headroom_bytes: Option<u64>,
    /// Fraction of the limit in use by the working set at the limiting cgroup.
    pub used_fraction: Option<f64>,
    /// `MemAvailable` of the host.
    pub host_available_bytes: Option<u64>,
    /// Event sources (see [`SourceStatus`]).
    pub sources: Vec<SourceStatus>,
}

impl Status {
    /// Assemble a report.
    pub fn new(limits: Limits, own: Option<Usage>, at_limit: Option<Usage>, host_available: Option<u64>) -> Self {
        let limit_ws = at_limit.as_ref().map(|u| u.working_set_bytes);
        let headroom = limits.limit_bytes.zip(limit_ws).map(|(l, ws)| l.saturating_sub(ws));
        #[allow(clippy::cast_precision_loss)]
        let used_fraction =
            limits.limit_bytes.zip(limit_ws).filter(|(l, _)| *l > 0).map(|(l, ws)| ws as f64 / l as f64);
        Status {
            memguard_version: crate::VERSION,
            usage_bytes: own.as_ref().map(|u| u.usage_bytes),
            working_set_bytes: own.as_ref().map(|u| u.working_set_bytes),
            peak_bytes: own.as_ref().and_then(|u| u.peak_bytes),
            limit_usage_bytes: at_limit.as_ref().map(|u| u.usage_bytes),
            limit_working_set_bytes: limit_ws,
            headroom_bytes: headroom,
            used_fraction,
            host_available_bytes: host_available,
            sources: Vec::new(),
            limits,
        }
    }
}
