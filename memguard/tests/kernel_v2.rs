//! Real-kernel suite, pure cgroup v2, run inside the throwaway VM by `cargo xtask test`
//! (one boot for the whole binary: `cargo xtask vm -- <this test binary> --include-ignored`).
//!
//! The tests are `#[ignore]`d for plain `cargo test` on the host, where cgroup v2 with a memory
//! controller is not available; inside the VM a missing capability fails in CI and is reported
//! as skipped locally.

mod support;

use support::cgroup::Kit;
use support::{scenarios, unavailable, watch};

fn kit(test: &str) -> Option<Kit> {
    Kit::v2().map_err(|why| unavailable(test, &why)).ok()
}

macro_rules! scenario {
    ($name:ident) => {
        #[test]
        #[ignore = "cgroup v2 suite: runs inside the VM (cargo xtask test)"]
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

macro_rules! watch_scenario {
    ($name:ident) => {
        #[test]
        #[ignore = "cgroup v2 suite: runs inside the VM (cargo xtask test)"]
        fn $name() {
            if let Some(k) = kit(stringify!($name)) {
                watch::$name(&k);
            }
        }
    };
}

watch_scenario!(oom_kill_reported_once);
watch_scenario!(cgroup_removed_under_watcher);
watch_scenario!(v2_memory_high_events);
watch_scenario!(psi_arms_without_cap_sys_resource);
watch_scenario!(read_only_cgroupfs);
watch_scenario!(page_cache_is_not_pressure);
watch_scenario!(override_applies_to_the_watcher);
kernel_scenario!(budget::budget_grants_only_the_room_left, #[ignore = "cgroup v2 suite: runs inside the VM (cargo xtask test)"]);
kernel_scenario!(faults::limit_changes_at_runtime, #[ignore = "cgroup v2 suite: runs inside the VM (cargo xtask test)"]);
kernel_scenario!(faults::moved_to_another_cgroup_under_watcher, #[ignore = "cgroup v2 suite: runs inside the VM (cargo xtask test)"]);

/// Issue #4: a 1 GiB/s ramp with no writable file is reported at Warning before 95% of the
/// limit, in 20 of 20 runs.
#[test]
#[ignore = "cgroup v2 suite: runs inside the VM (cargo xtask test)"]
fn ramp_warns_before_95_percent() {
    if let Some(k) = kit("ramp_warns_before_95_percent") {
        watch::ramp_warns_before_95_percent(&k, 20, 256 * (1 << 20));
    }
}

/// Issue #9: the same ramp with page cache filling the cgroup first and every kernel source
/// armed. Fewer runs than natively: reading the cache in under emulation takes seconds.
#[test]
#[ignore = "cgroup v2 suite: runs inside the VM (cargo xtask test)"]
fn ramp_with_page_cache_warns_before_95_percent() {
    if let Some(k) = kit("ramp_with_page_cache_warns_before_95_percent") {
        watch::ramp_with_page_cache_warns_before_95_percent(&k, 5, 256 * (1 << 20));
    }
}

#[test]
#[ignore = "cgroup v2 suite: runs inside the VM (cargo xtask test)"]
fn jdk_agrees() {
    let Some(k) = kit("jdk_agrees") else { return };
    match scenarios::java_runnable() {
        Ok(()) => println!("{}", scenarios::jdk_agrees(&k)),
        Err(why) => unavailable("jdk_agrees", &why),
    }
}

#[test]
#[ignore = "cgroup v2 suite: runs inside the VM (cargo xtask test)"]
fn pure_v2_hierarchy_is_detected() {
    let Some(k) = kit("pure_v2_hierarchy_is_detected") else { return };
    let cg = k.cgroup("pure-v2");
    let s = scenarios::status_in(&cg);
    assert_eq!(s["cgroup"], "v2", "{s:#}");
    assert_eq!(s["mount_point"], "/sys/fs/cgroup", "{s:#}");
}

// systemd's memory pressure protocol (MEMORY_PRESSURE_WATCH / MEMORY_PRESSURE_WRITE).
#[test]
#[ignore = "cgroup v2 suite: runs inside the VM (cargo xtask test)"]
fn systemd_pressure_watch_arms() {
    if let Some(k) = kit(stringify!(systemd_pressure_watch_arms)) {
        support::pressure_watch::systemd_pressure_watch_arms(&k);
    }
}

#[test]
#[ignore = "cgroup v2 suite: runs inside the VM (cargo xtask test)"]
fn systemd_pressure_watch_off_invalid_and_fallback() {
    if let Some(k) = kit(stringify!(systemd_pressure_watch_off_invalid_and_fallback)) {
        support::pressure_watch::systemd_pressure_watch_off_invalid_and_fallback(&k);
    }
}

#[test]
#[ignore = "cgroup v2 suite: runs inside the VM (cargo xtask test)"]
fn systemd_pressure_watch_event_under_pressure() {
    if let Some(k) = kit(stringify!(systemd_pressure_watch_event_under_pressure)) {
        support::pressure_watch::systemd_pressure_watch_event_under_pressure(&k);
    }
}

// Issue #14: unprivileged and read-only, as a pod runs (support/unprivileged.rs).
kernel_scenario!(unprivileged::unprivileged_matrix, #[ignore = "cgroup v2 suite: runs inside the VM (cargo xtask test)"]);

/// Slower than natively: the sampler runs emulated.
#[test]
#[ignore = "cgroup v2 suite: runs inside the VM (cargo xtask test)"]
fn pod_warns_before_oom_kill() {
    if let Some(k) = kit("pod_warns_before_oom_kill") {
        support::unprivileged::pod_warns_before_oom_kill(&k, "256M");
    }
}
