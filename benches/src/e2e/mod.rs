//! The end-to-end harness behind `memguard-e2e`: real cgroups, a real guard in this process,
//! real kernel notifications.
//!
//! * [`cgroup`] — finds where this process may create memory cgroups (v1 under its own memory
//!   cgroup, v2 under `$MEMGUARD_VM_CGROUP` or its own cgroup's parent), creates a throwaway
//!   leaf per measurement, moves the process in and, on drop, back out and removes it.
//! * [`latency`] — kernel notification → `on_event` callback, per source (v1 usage threshold,
//!   v2 `memory.events` `high`, PSI trigger).
//! * [`idle`] — CPU time of the reactor and dispatcher threads while nothing happens.
//! * [`soak`] — a long run oscillating between Normal and Critical: footprint, budget and
//!   event counts must stay flat and exact.
//! * [`stats`] — percentiles.
//! * [`arena`] — anonymous memory charged and uncharged page by page.
//!
//! A benchmark reports; it asserts nothing about the figures. An error here means a
//! measurement could not be taken at all.

pub mod arena;
pub mod cgroup;
pub mod idle;
pub mod latency;
pub mod soak;
pub mod stats;

use std::fmt;

use serde::Serialize;

/// One mebibyte.
pub const MIB: u64 = 1 << 20;

/// Why a measurement could not be taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<memguard::Error> for Error {
    fn from(e: memguard::Error) -> Self {
        Error(format!("memguard: {e}"))
    }
}

/// Result of the harness.
pub type Result<T> = std::result::Result<T, Error>;

/// `Err(Error)` with a formatted message.
macro_rules! bail {
    ($($t:tt)*) => { return Err($crate::e2e::Error(format!($($t)*))) };
}
pub(crate) use bail;

/// Where the figures were taken.
#[derive(Debug, Clone, Serialize)]
pub struct Environment {
    /// `uname -r`.
    pub kernel: String,
    /// `v1` or `v2`: the memory controller's hierarchy.
    pub cgroup: String,
    /// Inside `cargo xtask vm` (`MEMGUARD_IN_VM=1`): TCG emulation, figures are an upper bound.
    pub in_vm: bool,
    /// CPUs available to this process.
    pub cpus: usize,
    /// The cgroup under which the throwaway cgroups were created.
    pub base_cgroup: String,
    /// memguard's version.
    pub memguard: String,
}

impl Environment {
    /// Describe this machine and the hierarchy in use.
    pub fn describe(h: &cgroup::Hierarchy) -> Environment {
        Environment {
            kernel: kernel_release(),
            cgroup: h.version.as_str().to_owned(),
            in_vm: cgroup::in_vm(),
            cpus: std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            base_cgroup: h.base.display().to_string(),
            memguard: memguard::VERSION.to_owned(),
        }
    }
}

/// The running kernel's release (`uname -r`), from `/proc/sys/kernel/osrelease`.
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map_or_else(|_| "unknown".into(), |s| s.trim().to_owned())
}
