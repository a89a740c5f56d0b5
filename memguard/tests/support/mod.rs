//! Support for the real-kernel suites (`kernel_v1.rs` natively, `kernel_v2.rs` in the VM):
//! throwaway cgroups that are removed even when a test fails, and the skip/fail policy.
#![allow(dead_code)]

pub mod budget;
pub mod cgroup;
mod ci;
pub mod confine;
pub mod faults;
pub mod files;
pub mod pressure_watch;
pub mod process;
pub mod scenarios;
pub mod unprivileged;
pub mod watch;

pub use ci::unavailable;

/// Registers `support::<module>::<name>(&Kit)` as a test in `kernel_v1.rs` / `kernel_v2.rs`,
/// which each define `kit(test) -> Option<Kit>`: `kernel_scenario!(budget::name)` or
/// `kernel_scenario!(faults::name, #[ignore = "why"])`.
#[macro_export]
macro_rules! kernel_scenario {
    ($module:ident :: $name:ident $(, #[$attr:meta])*) => {
        #[test]
        $(#[$attr])*
        fn $name() {
            if let Some(k) = kit(stringify!($name)) {
                support::$module::$name(&k);
            }
        }
    };
}

/// A child process killed and reaped when dropped (a test's workload, however the test ends).
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The Python interpreter for test workloads: `$MEMGUARD_TEST_PYTHON` (set by `cargo xtask test`
/// for the VM, where pyenv's shim is slow), else `python3`.
pub fn python() -> String {
    std::env::var("MEMGUARD_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}
