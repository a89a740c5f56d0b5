//! JNI library for memguard's Java package.
//!
//! Skeleton only: the JNI cdylib and the Maven package are built by their own issue.
#![forbid(unsafe_code)]

pub use memguard::VERSION;
