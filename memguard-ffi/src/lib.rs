//! C ABI for memguard.
//!
//! Skeleton only: the C binding (cdylib + staticlib, cbindgen header, C tests) is built by its own
//! issue. Until then this crate only checks that the core builds as a dependency of a binding.
#![forbid(unsafe_code)]

pub use memguard::VERSION;
