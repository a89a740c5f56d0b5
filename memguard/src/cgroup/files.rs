//! The memory controller's file names, per cgroup version.

use crate::limits::CgroupVersion;

/// Names of the memory controller's files in one cgroup version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryFiles {
    /// Hard limit.
    pub limit: &'static str,
    /// v2 `memory.high`; v1 soft limit.
    pub high: &'static str,
    /// v2 swap-only limit; v1 memory+swap limit.
    pub swap: &'static str,
    /// Current usage.
    pub usage: &'static str,
    /// Peak usage.
    pub peak: &'static str,
    /// Statistics.
    pub stat: &'static str,
}

/// cgroup v1 memory controller files.
pub const V1: MemoryFiles = MemoryFiles {
    limit: "memory.limit_in_bytes",
    high: "memory.soft_limit_in_bytes",
    swap: "memory.memsw.limit_in_bytes",
    usage: "memory.usage_in_bytes",
    peak: "memory.max_usage_in_bytes",
    stat: "memory.stat",
};

/// cgroup v2 memory controller files.
pub const V2: MemoryFiles = MemoryFiles {
    limit: "memory.max",
    high: "memory.high",
    swap: "memory.swap.max",
    usage: "memory.current",
    peak: "memory.peak",
    stat: "memory.stat",
};

impl MemoryFiles {
    /// The files of `version`, or `None` for [`CgroupVersion::None`].
    pub fn of(version: CgroupVersion) -> Option<MemoryFiles> {
        match version {
            CgroupVersion::V1 => Some(V1),
            CgroupVersion::V2 => Some(V2),
            CgroupVersion::None => None,
        }
    }
}
