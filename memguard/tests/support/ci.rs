//! The skip/fail policy of tests that need the kernel (or a capability): in CI (`CI=true`) a
//! missing capability is a failure; on a laptop the test prints why and returns. Its own file
//! so that test binaries that include only part of `support` (`thread_limits.rs`) share it.

/// True when running in CI (`CI=true`): a missing kernel capability is then a failure.
pub(crate) fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Handle a missing capability: panic in CI, print why and return in a local run.
pub fn unavailable(test: &str, why: &str) {
    assert!(!in_ci(), "{test}: required capability missing in CI: {why}");
    eprintln!("SKIPPED {test}: {why}");
}
