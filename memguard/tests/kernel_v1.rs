//! Real-kernel suite, native cgroup v1 (the memory controller of this machine).
//!
//! Needs root and a writable v1 memory cgroup; without them each test prints why and returns
//! locally, and fails in CI (`CI=true`). Run by `cargo xtask test` (and by `cargo test`).

mod support;

use support::cgroup::Kit;
use support::{scenarios, unavailable, watch};

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

macro_rules! watch_scenario {
    ($name:ident) => {
        #[test]
        fn $name() {
            if let Some(k) = kit(stringify!($name)) {
                watch::$name(&k);
            }
        }
    };
}

watch_scenario!(oom_kill_reported_once);
watch_scenario!(cgroup_removed_under_watcher);
watch_scenario!(v1_threshold_fires_both_ways);
watch_scenario!(psi_arms_without_cap_sys_resource);
watch_scenario!(read_only_cgroupfs);
watch_scenario!(page_cache_is_not_pressure);
watch_scenario!(override_applies_to_the_watcher);
watch_scenario!(hidden_v1_limit_is_watched);
watch_scenario!(fd_limit_too_low_is_reported_and_recovers);
kernel_scenario!(budget::budget_grants_only_the_room_left);
kernel_scenario!(faults::limit_changes_at_runtime);
kernel_scenario!(faults::moved_to_another_cgroup_under_watcher);

/// Issue #4: a 1 GiB/s ramp with no writable file is reported at Warning before 95% of the
/// limit, in 20 of 20 runs.
#[test]
fn ramp_warns_before_95_percent() {
    if let Some(k) = kit("ramp_warns_before_95_percent") {
        watch::ramp_warns_before_95_percent(&k, 20, 512 * (1 << 20));
    }
}

/// Issue #9: the same ramp with page cache filling the cgroup first and every kernel source
/// armed (the v1 usage thresholds count the cache), in 20 of 20 runs.
#[test]
fn ramp_with_page_cache_warns_before_95_percent() {
    if let Some(k) = kit("ramp_with_page_cache_warns_before_95_percent") {
        watch::ramp_with_page_cache_warns_before_95_percent(&k, 20, 256 * (1 << 20));
    }
}

#[test]
fn jdk_agrees() {
    let Some(k) = kit("jdk_agrees") else { return };
    match scenarios::java_runnable() {
        Ok(()) => println!("{}", scenarios::jdk_agrees(&k)),
        Err(why) => unavailable("jdk_agrees", &why),
    }
}

// systemd's memory pressure protocol (MEMORY_PRESSURE_WATCH / MEMORY_PRESSURE_WRITE).
#[test]
fn systemd_pressure_watch_arms() {
    if let Some(k) = kit(stringify!(systemd_pressure_watch_arms)) {
        support::pressure_watch::systemd_pressure_watch_arms(&k);
    }
}

#[test]
fn systemd_pressure_watch_off_invalid_and_fallback() {
    if let Some(k) = kit(stringify!(systemd_pressure_watch_off_invalid_and_fallback)) {
        support::pressure_watch::systemd_pressure_watch_off_invalid_and_fallback(&k);
    }
}

// Issue #14: unprivileged and read-only, as a pod runs (support/unprivileged.rs).
kernel_scenario!(unprivileged::unprivileged_matrix);

#[test]
fn pod_warns_before_oom_kill() {
    if let Some(k) = kit("pod_warns_before_oom_kill") {
        support::unprivileged::pod_warns_before_oom_kill(&k, "1G");
    }
}
