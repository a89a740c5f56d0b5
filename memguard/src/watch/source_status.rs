//! [`SourceStatus`]: one kernel event source and whether it is armed.

use serde::Serialize;

/// One event source and whether it is armed (as [`MemGuard::sources`] and `memguard status`
/// list them).
///
/// [`MemGuard::sources`]: crate::watch::GuardHandle::sources
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceStatus {
    /// Source name, e.g. `v2-memory-events`.
    pub name: String,
    /// True when armed.
    pub armed: bool,
    /// Why not, or what exactly is armed.
    pub detail: Option<String>,
}
