//! What detection found: [`Limits`] (mostly static) and [`Usage`] (changes all the time).

use serde::Serialize;

use crate::qos::QosClass;

/// Which cgroup version governs this process's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CgroupVersion {
    /// cgroup v1: the `memory` controller on a v1 hierarchy (also on hybrid hosts).
    #[serde(rename = "v1")]
    V1,
    /// cgroup v2: the unified hierarchy with the `memory` controller enabled.
    #[serde(rename = "v2")]
    V2,
    /// No memory cgroup found: host memory is the only limit.
    #[serde(rename = "none")]
    None,
}

impl CgroupVersion {
    /// `"v1"`, `"v2"` or `"none"`.
    pub fn as_str(self) -> &'static str {
        match self {
            CgroupVersion::V1 => "v1",
            CgroupVersion::V2 => "v2",
            CgroupVersion::None => "none",
        }
    }
}

/// The memory limits that apply to a process, as found by [`Detector::detect`](crate::Detector::detect).
///
/// Paths named `*_cgroup` are cgroup paths as the kernel shows them (relative to the cgroup
/// namespace root, like `/proc/self/cgroup`); paths named `*_dir` are directories on this host.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// The cgroup version governing memory.
    pub cgroup: CgroupVersion,
    /// The process's memory cgroup (from `/proc/<pid>/cgroup`).
    pub cgroup_path: Option<String>,
    /// The directory of that cgroup on this host (or the mount point, in a documented fallback).
    pub cgroup_dir: Option<String>,
    /// Mount point of the memory hierarchy.
    pub mount_point: Option<String>,
    /// The effective hard limit: the lowest of the detected limit
    /// ([`detected_limit_bytes`](Self::detected_limit_bytes)) and the operator's override
    /// ([`limit_override_bytes`](Self::limit_override_bytes)). `None` when neither is known:
    /// before reading that as "unlimited", check [`limit_maybe_hidden`](Self::limit_maybe_hidden)
    /// and [`limit_unknown`](Self::limit_unknown).
    pub limit_bytes: Option<u64>,
    /// What [`limit_bytes`](Self::limit_bytes) is: the detected cgroup limit, the override, or none.
    pub limit_applied: LimitApplied,
    /// The limit detection found: the lowest `memory.max` / `memory.limit_in_bytes` from the
    /// process's cgroup up to the mount root (v1: or `hierarchical_memory_limit`). `None` when
    /// nothing below host memory is set or readable.
    pub detected_limit_bytes: Option<u64>,
    /// The cgroup that sets the detected limit. `None` with a limit set means the limit sits
    /// above the visible cgroup root (v1 `hierarchical_memory_limit`). Usage "at the limit" is
    /// read here (at the process's own cgroup when this is `None`), also when an override applies.
    pub limit_cgroup: Option<String>,
    /// Directory of [`limit_cgroup`](Self::limit_cgroup) on this host.
    pub limit_dir: Option<String>,
    /// True when the walk up the hierarchy stopped below the real root (a cgroup namespace or
    /// a container-private mount) so a tighter limit may exist that memguard cannot see.
    /// Never reported as "unlimited" silently: check this flag before trusting `limit_bytes = None`.
    pub limit_maybe_hidden: bool,
    /// True when a limit file on the walk exists but could not be read or parsed (`EACCES`,
    /// garbage): the detected limit is then unknown — `None`, or only an upper bound set by a
    /// readable ancestor. Never read `limit_bytes = None` as "unlimited" while this is set.
    /// (v1: a readable `hierarchical_memory_limit` resolves it.)
    pub limit_unknown: bool,
    /// The limit files that could not be read or parsed (paths on this host). Kept when v1's
    /// `hierarchical_memory_limit` resolved them (`limit_unknown` is then false).
    pub limit_unknown_files: Vec<String>,
    /// The operator's limit override (`MEMGUARD_LIMIT` or
    /// [`Builder::limit_override`](crate::watch::Builder::limit_override)), applied by
    /// [`with_override`](Self::with_override) when lower than the detected limit.
    pub limit_override_bytes: Option<u64>,
    /// Where the override came from.
    pub limit_override_source: Option<OverrideSource>,
    /// v2: the lowest `memory.high` up the hierarchy (the reclaim throttle point).
    /// v1: the lowest `memory.soft_limit_in_bytes` (reclaim target under host pressure).
    pub high_bytes: Option<u64>,
    /// The cgroup that sets [`high_bytes`](Self::high_bytes).
    pub high_cgroup: Option<String>,
    /// Swap the cgroup may use on top of memory: v2 the lowest `memory.swap.max`; v1 the lowest
    /// `memory.memsw.limit_in_bytes` minus the memory limit. `None` = not limited (or no swap
    /// accounting).
    pub swap_limit_bytes: Option<u64>,
    /// `MemTotal` of the host (`/proc/meminfo`).
    pub host_total_bytes: Option<u64>,
    /// The cgroup `memory.pressure` file (PSI) that reflects this process's memory pressure:
    /// the limiting cgroup's on v2, the process's unified-hierarchy cgroup's on hybrid hosts.
    /// `None` when no such file exists (the system-wide `/proc/pressure/memory` remains).
    pub psi_file: Option<String>,
    /// The process's `oom_score_adj`.
    pub oom_score_adj: Option<i32>,
    /// The Kubernetes QoS class `oom_score_adj` implies (`None` when no kubelet set it).
    pub qos_class: Option<QosClass>,
    /// Fallbacks taken and oddities seen during detection, one sentence each.
    pub notes: Vec<String>,
}

impl Limits {
    /// Limits of a process no memory cgroup governs (host memory only).
    pub fn host_only(host_total_bytes: Option<u64>) -> Limits {
        Limits {
            cgroup: CgroupVersion::None,
            cgroup_path: None,
            cgroup_dir: None,
            mount_point: None,
            limit_bytes: None,
            limit_applied: LimitApplied::None,
            detected_limit_bytes: None,
            limit_cgroup: None,
            limit_dir: None,
            limit_maybe_hidden: false,
            limit_unknown: false,
            limit_unknown_files: Vec::new(),
            limit_override_bytes: None,
            limit_override_source: None,
            high_bytes: None,
            high_cgroup: None,
            swap_limit_bytes: None,
            psi_file: None,
            host_total_bytes,
            oom_score_adj: None,
            qos_class: None,
            notes: Vec::new(),
        }
    }

    /// The limit that bounds this process in practice: the cgroup limit (or the override),
    /// else host memory.
    pub fn effective_bytes(&self) -> Option<u64> {
        self.limit_bytes.or(self.host_total_bytes)
    }

    /// Apply an operator's limit override: the effective [`limit_bytes`](Self::limit_bytes)
    /// becomes the **lowest** of the detected limit and `limit_override`. An override at or
    /// above the detected limit changes nothing (the detected limit applies); an override at or
    /// above host `MemTotal` cannot bind and is ignored, like such a cgroup limit. Without a
    /// detected limit — none set, hidden above a cgroup namespace
    /// ([`limit_maybe_hidden`](Self::limit_maybe_hidden)) or unreadable
    /// ([`limit_unknown`](Self::limit_unknown)) — the override gives the known limit.
    ///
    /// Records the override, its source and which limit applies
    /// ([`limit_applied`](Self::limit_applied)), with a note saying why. Idempotent, and
    /// `None` restores the detected limit: the watcher calls it after every re-detection.
    ///
    /// ```
    /// use memguard::{LimitApplied, LimitOverride, Limits};
    /// let mut detected = Limits::host_only(Some(16 << 30));
    /// detected.detected_limit_bytes = Some(1 << 30);
    /// let l = detected.with_override(Some(LimitOverride::from_env(512 << 20)));
    /// assert_eq!((l.limit_bytes, l.limit_applied), (Some(512 << 20), LimitApplied::Override));
    /// let l = l.with_override(Some(LimitOverride::from_builder(2 << 30)));
    /// assert_eq!((l.limit_bytes, l.limit_applied), (Some(1 << 30), LimitApplied::Cgroup));
    /// ```
    #[must_use]
    pub fn with_override(mut self, limit_override: Option<LimitOverride>) -> Limits {
        self.notes.retain(|n| !n.starts_with(OVERRIDE_NOTE));
        self.limit_override_bytes = limit_override.map(|o| o.bytes);
        self.limit_override_source = limit_override.map(|o| o.source);
        let detected = self.detected_limit_bytes;
        self.limit_bytes = detected;
        self.limit_applied = if detected.is_some() { LimitApplied::Cgroup } else { LimitApplied::None };
        let Some(ov) = limit_override else { return self };
        let (src, b) = (ov.source.as_str(), ov.bytes);
        let note = match (detected, self.host_total_bytes) {
            (Some(d), _) if d <= b => {
                format!("{OVERRIDE_NOTE}{src} = {b} bytes is not below the detected limit ({d} bytes), which applies")
            }
            (None, Some(host)) if b >= host => format!(
                "{OVERRIDE_NOTE}{src} = {b} bytes is not below host memory ({host} bytes); it cannot bind and is ignored"
            ),
            _ => {
                self.limit_bytes = Some(b);
                self.limit_applied = LimitApplied::Override;
                let why = match detected {
                    Some(d) => format!("it is below the detected limit ({d} bytes)"),
                    None if self.limit_unknown => "the cgroup limit could not be read".to_owned(),
                    None if self.limit_maybe_hidden => {
                        "no limit is visible and one may be hidden above the cgroup namespace root".to_owned()
                    }
                    None => "no cgroup limit was detected".to_owned(),
                };
                format!("{OVERRIDE_NOTE}{src} = {b} bytes applies: {why}")
            }
        };
        self.notes.push(note);
        self
    }
}

/// Prefix of the note [`Limits::with_override`] adds (so that it replaces its own note).
const OVERRIDE_NOTE: &str = "limit override ";

/// What [`Limits::limit_bytes`] is.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitApplied {
    /// The detected cgroup limit (`limit_cgroup` sets it, or an ancestor above the visible root).
    Cgroup,
    /// The operator's override ([`Limits::limit_override_bytes`]), lower than any detected limit.
    Override,
    /// No limit is known: host memory bounds the process (see `limit_maybe_hidden` and
    /// `limit_unknown` before reading this as "unlimited").
    None,
}

impl LimitApplied {
    /// `"cgroup"`, `"override"` or `"none"`.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitApplied::Cgroup => "cgroup",
            LimitApplied::Override => "override",
            LimitApplied::None => "none",
        }
    }
}

/// Where a limit override came from.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum OverrideSource {
    /// The `MEMGUARD_LIMIT` environment variable.
    #[serde(rename = "MEMGUARD_LIMIT")]
    Env,
    /// [`Builder::limit_override`](crate::watch::Builder::limit_override) (or a binding's option).
    #[serde(rename = "builder")]
    Builder,
}

impl OverrideSource {
    /// `"MEMGUARD_LIMIT"` or `"builder"`.
    pub fn as_str(self) -> &'static str {
        match self {
            OverrideSource::Env => "MEMGUARD_LIMIT",
            OverrideSource::Builder => "builder",
        }
    }
}

/// An operator's limit: bytes and where they came from (see [`Limits::with_override`]).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LimitOverride {
    /// The limit, bytes.
    pub bytes: u64,
    /// Where it came from.
    pub source: OverrideSource,
}

impl LimitOverride {
    /// An override read from `MEMGUARD_LIMIT`.
    pub fn from_env(bytes: u64) -> Self {
        LimitOverride { bytes, source: OverrideSource::Env }
    }

    /// An override set in code.
    pub fn from_builder(bytes: u64) -> Self {
        LimitOverride { bytes, source: OverrideSource::Builder }
    }
}

/// Where a [`Usage`] was read.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageSource {
    /// A cgroup directory.
    Cgroup(String),
    /// Host-wide `/proc/meminfo` (`MemTotal - MemAvailable`): no memory cgroup accounts us.
    Host,
}

/// Memory use of one cgroup (or the host), read at one instant.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Where it was read.
    pub source: UsageSource,
    /// `memory.current` / `memory.usage_in_bytes` (page cache included).
    pub usage_bytes: u64,
    /// Usage minus inactive file cache: the kubelet's working set (what it evicts on).
    pub working_set_bytes: u64,
    /// Usage minus clean page cache (active and inactive file pages neither dirty nor under
    /// writeback): what reclaim cannot free, the measure memguard's levels use. Equals usage
    /// when `memory.stat` is unreadable.
    pub unreclaimable_bytes: u64,
    /// The inactive file cache subtracted (`total_inactive_file` on v1, `inactive_file` on v2),
    /// `None` when `memory.stat` was unreadable (the working set then equals usage).
    pub inactive_file_bytes: Option<u64>,
    /// `memory.peak` / `memory.max_usage_in_bytes`, when the kernel offers it.
    pub peak_bytes: Option<u64>,
}
