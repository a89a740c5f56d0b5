//! Python extension for memguard (`memguard._memguard`).
//!
//! Skeleton only: the PyO3 extension, the pure-Python package and its pytest suite are built by
//! the Python package issue.
#![forbid(unsafe_code)]

pub use memguard::VERSION;
