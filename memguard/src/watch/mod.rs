//! The event-driven watcher: [`MemGuard`] arms every kernel notification source the kernel and
//! permissions allow (`memory.events`, PSI triggers, cgroup v1 eventfds; each listed in
//! [`GuardHandle::sources`] as armed or not, with the reason), waits on them in one epoll set
//! on a reactor thread, samples usage on an adaptive interval, turns both into a
//! [`Level`](crate::Level) and [`Event`]s, and delivers them to callbacks on a dispatcher thread
//! and to a pull queue. [`builder`] documents every setting and its `MEMGUARD_*` variable.

pub mod builder;
mod dispatch;
mod event;
mod guard;
pub(crate) mod rate;
mod reactor;
pub(crate) mod registry;
#[cfg(all(test, shuttle))]
mod registry_model_check;
mod sample_requests;
pub(crate) mod sampler;
mod shedding;
mod snapshot;
mod source_status;
pub(crate) mod sources;
#[cfg(test)]
mod tests;

pub use builder::{Builder, Config};
pub use event::{Direction, Event, EventKind, EventTiming, PsiScope, Stall, V1Pressure};
pub use guard::{GuardHandle, MemGuard, Subscription};
pub use snapshot::{KernelCounters, LimitSource, PsiAverages, Snapshot};
pub use source_status::SourceStatus;
pub use sources::pressure_watch::PressureWatch;
