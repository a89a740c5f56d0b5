//! Real-kernel suite, native cgroup v1 (the memory controller of this machine).
//!
//! Needs root and a writable v1 memory cgroup; without them each test prints why and returns
//! locally, and fails in CI (`CI=true`). Run by `cargo xtask test` (and by `cargo test`).

mod support;

use support::cgroup::Kit;
use support::{scenarios, unavailable};

fn kit(test: &str) -> Option<Kit> {
    Kit::v1().map_err(|why| unavailable(test, &why)).ok()
}

macro_rules! scenario {
    ($name:ident) => {
        #[test]
        fn $name() {
            if let Some(k) = kit(stringify!($name)) {
                scenarios::$name(&k);
            }
        }
    };
}

scenario!(parent_limit_only);
scenario!(tighter_intermediate);
scenario!(high_is_reported);
scenario!(no_limit_set);
scenario!(moved_at_runtime);
scenario!(working_set_is_real);

#[test]
fn jdk_agrees() {
    let Some(k) = kit("jdk_agrees") else { return };
    match scenarios::java_runnable() {
        Ok(()) => println!("{}", scenarios::jdk_agrees(&k)),
        Err(why) => unavailable("jdk_agrees", &why),
    }
}
