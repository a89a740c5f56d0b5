//! The event-driven watcher: [`MemGuard`] arms every kernel notification source the kernel and
//! permissions allow (see [`sources`]), waits on them in one epoll set on a reactor thread,
//! samples usage on an adaptive interval ([`sampler`]), turns both into a [`Level`](crate::Level)
//! and [`Event`]s, and delivers them to callbacks on a dispatcher thread and to a pull queue.

pub mod builder;
pub mod dispatch;
pub mod event;
pub mod guard;
mod reactor;
pub(crate) mod registry;
pub mod sampler;
mod shedding;
pub mod snapshot;
mod source_status;
pub mod sources;
#[cfg(test)]
mod tests;

pub use builder::{Builder, Config};
pub use event::{Direction, Event, EventKind, PsiScope, Stall, V1Pressure};
pub use guard::{GuardHandle, MemGuard, Subscription};
pub use snapshot::{KernelCounters, LimitSource, PsiAverages, Snapshot};
pub use source_status::SourceStatus;
