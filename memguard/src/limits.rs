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
    /// The effective hard limit: the lowest `memory.max` / `memory.limit_in_bytes` from the
    /// process's cgroup up to the mount root. `None` when nothing below host memory is set.
    pub limit_bytes: Option<u64>,
    /// The cgroup that sets [`limit_bytes`](Self::limit_bytes). `None` with a limit set means
    /// the limit sits above the visible cgroup root (v1 `hierarchical_memory_limit`).
    pub limit_cgroup: Option<String>,
    /// Directory of [`limit_cgroup`](Self::limit_cgroup) on this host.
    pub limit_dir: Option<String>,
    /// True when the walk up the hierarchy stopped below the real root (a cgroup namespace or
    /// a container-private mount) so a tighter limit may exist that memguard cannot see.
    /// Never reported as "unlimited" silently: check this flag before trusting `limit_bytes = None`.
    pub limit_maybe_hidden: bool,
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
            limit_cgroup: None,
            limit_dir: None,
            limit_maybe_hidden: false,
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

    /// The limit that bounds this process in practice: the cgroup limit, else host memory.
    pub fn effective_bytes(&self) -> Option<u64> {
        self.limit_bytes.or(self.host_total_bytes)
    }
}

/// Where a [`Usage`] was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageSource {
    /// A cgroup directory.
    Cgroup(String),
    /// Host-wide `/proc/meminfo` (`MemTotal - MemAvailable`): no memory cgroup accounts us.
    Host,
}

/// Memory use of one cgroup (or the host), read at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Where it was read.
    pub source: UsageSource,
    /// `memory.current` / `memory.usage_in_bytes` (page cache included).
    pub usage_bytes: u64,
    /// Usage minus inactive file cache: what the kernel cannot simply drop, and what the OOM
    /// killer effectively compares with the limit.
    pub working_set_bytes: u64,
    /// The inactive file cache subtracted (`total_inactive_file` on v1, `inactive_file` on v2),
    /// `None` when `memory.stat` was unreadable (the working set then equals usage).
    pub inactive_file_bytes: Option<u64>,
    /// `memory.peak` / `memory.max_usage_in_bytes`, when the kernel offers it.
    pub peak_bytes: Option<u64>,
}
