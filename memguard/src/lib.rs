//! # memguard
//!
//! An embeddable, in-process memory guard for services running in containers. It finds the
//! container's *real* memory limit — the lowest cgroup limit up the hierarchy, on cgroup v1,
//! v2 and hybrid hosts, nested and namespaced — and compares it with the right number: the
//! working set (`usage - inactive_file`), the figure the OOM killer effectively acts on.
//!
//! Layers, each using only those below it:
//!
//! * detection — [`Detector`] finds [`Limits`] and [`Usage`] (parsers in [`parse`], the
//!   hierarchy walk in [`cgroup`]);
//! * the watcher — [`MemGuard`] ([`watch`]): kernel notifications, levels, the soft-limit
//!   [`Budget`], shedding, [`metrics`]; configured by a [`watch::Builder`] or `MEMGUARD_*`
//!   variables;
//! * reporting — [`Status`] composes detection, the configuration (limit override, thresholds)
//!   and the sources the watcher would arm; [`render`] prints it, [`Snapshot`]s and [`Event`]s
//!   as text or JSON for the `memguard` CLI and the bindings.
//!
//! ```
//! let status = memguard::Status::from_env()?;
//! println!("{} limit={:?} working set={:?}", status.limits.cgroup.as_str(),
//!          status.limits.limit_bytes, status.working_set_bytes);
//! # Ok::<(), memguard::Error>(())
//! ```
//!
//! Detection reads through a root prefix ([`FsRoot`], `MEMGUARD_ROOT`), so every parser is
//! tested on fixture trees; problems with single cgroup files become documented fallbacks
//! listed in [`Limits::notes`], never panics.
#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod budget;
pub mod cgroup;
mod detect;
mod error;
mod fsroot;
pub mod level;
mod limits;
pub mod metrics;
pub mod parse;
mod qos;
mod ratelimit;
pub mod render;
pub mod shed;
mod status;
pub mod sys;
pub mod watch;

pub use budget::{Budget, BudgetExceeded, BudgetStats, Reservation, SubBudget};
pub use detect::Detector;
pub use error::{Error, Result};
pub use fsroot::{FsRoot, ROOT_ENV};
pub use level::{Level, LevelChange, LevelTracker, Thresholds};
pub use limits::{CgroupVersion, LimitApplied, LimitOverride, Limits, OverrideSource, Usage, UsageSource};
pub use metrics::{render_prometheus, MetricsInput};
pub use qos::QosClass;
pub use shed::{ShedReport, ShedStats, Shedders};
pub use status::Status;
pub use watch::SourceStatus;
pub use watch::{Event, EventKind, GuardHandle, MemGuard, Snapshot, Subscription};

/// memguard's version (the crate version).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The README's Rust examples are compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
