//! Kernel notification sources, each an fd the reactor's epoll waits on.
//!
//! | source | kernel interface |
//! |---|---|
//! | `v2-memory-events` | `memory.events` of the limiting cgroup, `EPOLLPRI`, re-read on each wake |
//! | `psi-cgroup-some` / `psi-cgroup-full` | trigger written to the cgroup's `memory.pressure` |
//! | `psi-system-some` / `psi-system-full` | trigger written to `/proc/pressure/memory` (fallback) |
//! | `v1-threshold-warn` / `v1-threshold-critical` | `cgroup.event_control` + eventfd on `memory.usage_in_bytes` |
//! | `v1-pressure-medium` / `v1-pressure-critical` | eventfd on `memory.pressure_level` |
//! | `v1-oom` | eventfd on `memory.oom_control` |
//!
//! The sampler and the node (`/proc/meminfo`) check are not fds; they are listed too.
//! Arming never fails the guard: a source that cannot be armed is reported with the reason.

pub mod memory_events;
pub mod psi;
pub mod v1;

use std::os::fd::BorrowedFd;

use crate::fsroot::FsRoot;
use crate::level::Level;
use crate::limits::{CgroupVersion, Limits};
use crate::status::SourceStatus;
use crate::sys::Ready;

use super::event::EventKind;

/// What a source tells the reactor.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    /// A kernel event to deliver (its floor is applied by the reactor).
    Event(EventKind),
    /// Raise the level to at least this (without an event of its own).
    Floor(Level),
    /// Take a usage sample now.
    Resample,
    /// A v1 usage threshold fired (the reactor samples and judges the direction).
    ThresholdCrossed(u64),
    /// A v1 growth sentinel fired: sample now (and follow up soon when memory is rising), no event.
    Sentinel(u64),
    /// The watched cgroup is gone: stop this source, re-detect.
    Gone,
}

/// Keep the source registered after a wake-up?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Yes.
    Yes,
    /// No: deregister and drop it (its cgroup is gone).
    No,
}

/// A kernel notification source.
pub trait Source: Send + std::fmt::Debug {
    /// Name shown in `status` (`v2-memory-events`, ...).
    fn name(&self) -> &'static str;
    /// The fd to wait on.
    fn fd(&self) -> BorrowedFd<'_>;
    /// Every descriptor the source holds (for closing them in a forked child).
    fn raw_fds(&self) -> Vec<std::os::fd::RawFd> {
        vec![std::os::fd::AsRawFd::as_raw_fd(&self.fd())]
    }
    /// `EPOLLPRI` or `EPOLLIN`.
    fn interest(&self) -> u32;
    /// What exactly is armed (file, trigger string).
    fn detail(&self) -> String;
    /// Handle a wake-up.
    fn ready(&mut self, ready: Ready, out: &mut Vec<Signal>) -> Keep;
    /// True for sources that notify on usage thresholds (the sampler may relax).
    fn watches_thresholds(&self) -> bool {
        false
    }
}

/// Which sources to try.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SourceConfig {
    /// Try PSI triggers.
    pub psi: bool,
    /// Try cgroup notifications (`memory.events`, v1 eventfds).
    pub cgroup_events: bool,
    /// Minimum time between two `High`/`Max` events (storms at `memory.max` are debounced).
    pub debounce: std::time::Duration,
    /// v1: also arm the growth sentinels ([`GROWTH_SENTINELS`]) for predictive warning.
    pub growth_sentinels: bool,
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig {
            psi: true,
            cgroup_events: true,
            debounce: std::time::Duration::from_millis(100),
            growth_sentinels: true,
        }
    }
}

/// The result of arming: live sources and the status of every source tried.
#[derive(Debug, Default)]
pub struct Armed {
    /// Live sources.
    pub sources: Vec<Box<dyn Source>>,
    /// Every source tried (armed or not, with the reason).
    pub status: Vec<SourceStatus>,
}

impl Armed {
    fn push(&mut self, name: &str, result: Result<Box<dyn Source>, String>) {
        match result {
            Ok(s) => {
                self.status.push(SourceStatus { name: s.name().to_owned(), armed: true, detail: Some(s.detail()) });
                self.sources.push(s);
            }
            Err(why) => self.status.push(SourceStatus { name: name.to_owned(), armed: false, detail: Some(why) }),
        }
    }

    pub(crate) fn note(&mut self, name: &str, armed: bool, detail: String) {
        self.status.push(SourceStatus { name: name.to_owned(), armed, detail: Some(detail) });
    }
}

/// v1 usage thresholds below the warning threshold that only make the watcher sample (no
/// event): crossed in quick succession they show steady growth early, for predictive warning
/// (v2 has no usage notification; its sampler tightens on the growth it sees instead).
pub const GROWTH_SENTINELS: [(f64, &str); 5] = [
    (0.20, "v1-growth-20"),
    (0.30, "v1-growth-30"),
    (0.45, "v1-growth-45"),
    (0.60, "v1-growth-60"),
    (0.70, "v1-growth-70"),
];

/// Arm every source the kernel and permissions allow for `limits`. `threshold_bytes` are the
/// warning and critical thresholds in bytes (for v1 usage thresholds), when a limit exists.
pub fn arm(limits: &Limits, fs: &FsRoot, cfg: &SourceConfig, threshold_bytes: Option<(u64, u64)>) -> Armed {
    arm_with(limits, fs, cfg, threshold_bytes, false)
}

fn arm_with(
    limits: &Limits,
    fs: &FsRoot,
    cfg: &SourceConfig,
    threshold_bytes: Option<(u64, u64)>,
    psi_dry_run: bool,
) -> Armed {
    let mut armed = Armed::default();
    let watched_dir = super::sampler::watch_dir(limits, fs).or_else(|| limits.cgroup_dir.clone());
    if cfg.cgroup_events {
        match (limits.cgroup, &watched_dir) {
            (CgroupVersion::V2, Some(dir)) => {
                armed.push("v2-memory-events", memory_events::MemoryEvents::open(fs, dir, cfg.debounce));
            }
            (CgroupVersion::V1, Some(dir)) => {
                if let (Some((warn, crit)), true) = (threshold_bytes, limits.limit_bytes.is_some()) {
                    let limit_dir = dir;
                    armed
                        .push("v1-threshold-warn", v1::V1Notifier::threshold(fs, limit_dir, warn, "v1-threshold-warn"));
                    armed.push(
                        "v1-threshold-critical",
                        v1::V1Notifier::threshold(fs, limit_dir, crit, "v1-threshold-critical"),
                    );
                } else {
                    armed.note("v1-threshold", false, "no cgroup limit: nothing to set thresholds against".into());
                }
                if let (Some(limit), true) = (limits.limit_bytes, cfg.growth_sentinels) {
                    for (fraction, name) in GROWTH_SENTINELS {
                        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                        let bytes = (limit as f64 * fraction) as u64;
                        armed.push(name, v1::V1Notifier::sentinel(fs, dir, bytes, name));
                    }
                }
                armed.push("v1-pressure-medium", v1::V1Notifier::pressure(fs, dir, crate::watch::V1Pressure::Medium));
                armed.push(
                    "v1-pressure-critical",
                    v1::V1Notifier::pressure(fs, dir, crate::watch::V1Pressure::Critical),
                );
                armed.push("v1-oom", v1::V1Notifier::oom(fs, dir));
            }
            _ => armed.note("cgroup-events", false, "no memory cgroup".into()),
        }
    } else {
        armed.note("cgroup-events", false, "disabled by configuration".into());
    }
    if cfg.psi {
        psi::arm_all(fs, limits.psi_file.as_deref(), &mut armed, psi_dry_run);
    } else {
        armed.note("psi", false, "disabled by configuration".into());
    }
    armed
}

/// True when both v1 usage thresholds (warning and critical) are armed: the kernel then
/// reports every boundary crossing and the sampler may relax.
pub fn kernel_watches_thresholds<'a>(sources: impl Iterator<Item = &'a Box<dyn Source>>) -> bool {
    sources.filter(|s| s.watches_thresholds()).count() >= 2
}

/// What [`arm`] would arm here, without keeping anything armed: arms, records, releases. PSI
/// triggers are only created with `psi_triggers` (releasing one waits for an RCU grace period,
/// 10-20 ms); otherwise their files are checked for writing. Used by `memguard status` and
/// [`Status::gather`](crate::Status::gather).
pub fn probe(
    limits: &Limits,
    fs: &FsRoot,
    cfg: &super::Config,
    psi_triggers: bool,
) -> Vec<crate::status::SourceStatus> {
    let threshold_bytes = limits.limit_bytes.map(|l| cfg.thresholds.bytes(l));
    let armed = arm_with(limits, fs, &cfg.sources, threshold_bytes, !psi_triggers);
    let kernel_thresholds = kernel_watches_thresholds(armed.sources.iter());
    let mut status = armed.status;
    status.push(super::sampler::status(limits, &cfg.sampler, cfg.eviction_threshold, kernel_thresholds));
    status
}
