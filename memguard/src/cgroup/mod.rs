//! Finding the process's memory cgroup and reading its files.
//!
//! * [`files`] — which file means what, per cgroup version;
//! * [`mod@locate`] — from `/proc/<pid>/cgroup` and `mountinfo` to a directory on this host;
//! * [`walk`] — the chain of ancestors up to the mount root, and the lowest value along it;
//! * [`usage`] — usage and working set of one cgroup.

pub mod files;
pub mod locate;
pub mod usage;
pub mod walk;

pub use files::MemoryFiles;
pub use locate::{locate, Location};
