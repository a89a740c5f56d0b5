//! # memguard
//!
//! An embeddable, in-process memory guard for services running in containers. It finds the
//! container's *real* memory limit — the lowest cgroup limit up the hierarchy, on cgroup v1,
//! v2 and hybrid hosts, nested and namespaced, or an operator's override — and compares it with
//! the right number: the memory the kernel's reclaim cannot free (usage minus clean page cache),
//! the figure the OOM killer effectively acts on.
//!
//! Layers, each using only those below it:
//!
//! * detection — [`Detector`] finds [`Limits`] and [`Usage`];
//! * the watcher — [`MemGuard`]: kernel notifications, the pressure [`Level`], [`Event`]s, the
//!   soft-limit [`Budget`], shedding, Prometheus metrics; configured by a [`Builder`] or the
//!   `MEMGUARD_*` variables ([`watch::builder`]);
//! * reporting — [`Status`] composes detection, the configuration (limit override, thresholds)
//!   and the sources the watcher would arm; [`render`] prints it, [`Snapshot`]s and [`Event`]s
//!   as text or JSON for the `memguard` CLI and the bindings.
//!
//! ```
//! let status = memguard::Status::from_env()?;
//! println!("{} limit={:?} unreclaimable={:?}", status.limits.cgroup.as_str(),
//!          status.limits.limit_bytes, status.limit_unreclaimable_bytes);
//! # Ok::<(), memguard::Error>(())
//! ```
//!
//! Detection reads through a root prefix (`MEMGUARD_ROOT`, [`Detector::with_root`]), so it is
//! tested on fixture trees; problems with single cgroup files become documented fallbacks
//! listed in [`Limits::notes`] (and flags such as [`Limits::limit_unknown`]), never panics.
//!
//! # Metrics
//!
//! [`GuardHandle::prometheus`] (and `memguard status --prometheus`, [`render::status_prometheus`])
//! renders the Prometheus text exposition format 0.0.4 (`Content-Type`:
//! [`PROMETHEUS_CONTENT_TYPE`]) for a service's own `/metrics` endpoint.
//!
//! Every family has `# HELP` and `# TYPE` lines; names carry the `memguard_` prefix and base
//! units (bytes, seconds); counters end in `_total`. A gauge whose value is unknown (`None`,
//! or not a finite number) is left out rather than printed as `NaN`; a family with no sample is
//! left out entirely. Label values are escaped per the format (`\\`, `\"`, `\n`).
//!
//! | metric | type | labels | meaning |
//! |---|---|---|---|
//! | `memguard_build_info` | gauge | `version` | always 1; the memguard version |
//! | `memguard_cgroup_info` | gauge | `version` (`v1`, `v2`, `none`) | always 1; the hierarchy carrying the memory controller |
//! | `memguard_limit_bytes` | gauge | | the effective hard limit (absent when there is none) |
//! | `memguard_usage_bytes` | gauge | | memory usage of the cgroup that sets the limit |
//! | `memguard_working_set_bytes` | gauge | | its working set (usage − inactive file cache) |
//! | `memguard_seconds_to_limit` | gauge | | predicted time to the limit at the current steady growth (absent while memory does not grow steadily) |
//! | `memguard_unreclaimable_bytes` | gauge | | the pressure measure: memory reclaim cannot free (usage − clean page cache); the levels use it |
//! | `memguard_soft_limit_bytes` | gauge | | the budget's soft limit |
//! | `memguard_level` | gauge | | the pressure level: 0 normal, 1 warning, 2 critical |
//! | `memguard_level_info` | gauge | `level` | 1 for the current level, 0 for the two others (all three always present) |
//! | `memguard_seconds_in_level_total` | counter | `level` | seconds spent in each level |
//! | `memguard_events_total` | counter | `kind` | kernel events seen, by kind |
//! | `memguard_reservations_total` | counter | `result` (`granted`, `refused`, `forced`) | budget requests |
//! | `memguard_budget_outstanding_bytes` | gauge | | bytes held by live reservations |
//! | `memguard_budget_available_bytes` | gauge | | the largest request the budget would grant now |
//! | `memguard_sub_budget_cap_bytes` | gauge | `budget` | each sub-budget's cap |
//! | `memguard_sub_budget_outstanding_bytes` | gauge | `budget` | bytes held by each sub-budget's reservations |
//! | `memguard_sub_budget_reservations_total` | counter | `budget`, `result` | each sub-budget's requests |
//! | `memguard_shed_runs_total` | counter | | shed runs |
//! | `memguard_shed_skipped_total` | counter | | shed calls skipped because one was running |
//! | `memguard_shed_freed_bytes_total` | counter | `shedder` | bytes freed by each shedder, as it reported |
//! | `memguard_shed_calls_total` | counter | `shedder` | times each shedder was asked |
//! | `memguard_shed_panics_total` | counter | `shedder` | times each shedder panicked |
//! | `memguard_malloc_trims_total` | counter | | `malloc_trim` calls |
//! | `memguard_psi_some_avg10` | gauge | | PSI memory `some` avg10 as a ratio 0–1 (the kernel prints a percentage) |
//! | `memguard_psi_full_avg10` | gauge | | PSI memory `full` avg10 as a ratio 0–1 |
//! | `memguard_callback_events_dropped_total` | counter | | events not delivered to callbacks because a callback blocked and the queue was full |
//! | `memguard_watcher_panics_total` | counter | | internal errors caught on memguard's threads (recovered) |
//! | `memguard_watcher_failed` | gauge | | 1 once the watcher gave up after repeated internal errors: nothing is watched any more |
//! | `memguard_sample_errors_total` | counter | | samples that could not read the cgroup's files although the cgroup exists (retried; the sampler is reported not armed meanwhile) |
//! | `memguard_source_armed` | gauge | `source` | 1 when the event source is armed, 0 when not (`memguard status` says why) |
#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod budget;
mod cgroup;
mod detect;
mod error;
mod fsroot;
mod level;
mod limits;
mod metrics;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod parse;
#[cfg(not(feature = "fuzzing"))]
mod parse;
/// What the cargo-fuzz targets of `fuzz/` drive beyond the parsers: the watcher's own readers
/// and the growth estimator. Not part of the public API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzz_api {
    pub use crate::watch::rate::RateEstimator;
    pub use crate::watch::sources::memory_events::parse_counters;
}
mod qos;
mod ratelimit;
pub mod render;
mod shed;
mod status;
mod sync;
mod sys;
pub mod watch;
/// For memguard's own bindings (a thread of theirs waiting for the core's callbacks): the
/// doorbell (a pipe) the dispatcher uses. Not part of the stable API.
#[doc(hidden)]
pub mod bindings {
    pub use crate::sys::doorbell::{doorbell, Bell, Doorbell};
}

pub use budget::{Budget, BudgetExceeded, BudgetStats, Reservation, SubBudget, SubBudgetStats};
pub use detect::Detector;
pub use error::{Error, Result};
pub use fsroot::ROOT_ENV;
pub use level::{Level, LevelChange, Thresholds};
pub use limits::{CgroupVersion, LimitApplied, LimitOverride, Limits, OverrideSource, Usage, UsageSource};
pub use metrics::CONTENT_TYPE as PROMETHEUS_CONTENT_TYPE;
pub use qos::QosClass;
pub use shed::{ShedReport, ShedStats, ShedStep, ShedderStats, TrimOutcome};
pub use status::Status;
pub use watch::{
    Builder, Config, Direction, Event, EventKind, EventTiming, GuardHandle, KernelCounters, LimitSource, MemGuard,
    PressureWatch, PsiAverages, PsiScope, Snapshot, SourceStatus, Stall, Subscription, V1Pressure,
};

/// `CLOCK_MONOTONIC` in nanoseconds: the clock of [`Event::monotonic_ns`] and
/// [`Snapshot::monotonic_ns`] (the same clock as Python's `time.monotonic_ns()` and Java's
/// `System.nanoTime()` on Linux), to measure how long after the kernel's notification a
/// callback runs.
pub fn monotonic_ns() -> u64 {
    sys::monotonic_ns()
}

/// memguard's version (the crate version).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The README's Rust examples are compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
