//! Issue #5 on cgroup v2, inside the VM (`cargo xtask test`): a cache growing toward
//! `memory.max` is shed through a registered shedder and the process is not OOM-killed, where
//! its unguarded twin is.

mod common;

#[test]
#[ignore = "cgroup v2 suite: runs inside the VM (cargo xtask test)"]
fn guarded_worker_survives_where_unguarded_twin_dies() {
    match common::cgroup::Kit::v2() {
        Ok(kit) => common::guarded_worker_survives_where_unguarded_twin_dies(&kit, 128 << 20, "100M"),
        Err(why) => common::unavailable("guarded_worker_survives_where_unguarded_twin_dies", &why),
    }
}

#[test]
#[ignore = "cgroup v2 suite: runs inside the VM (cargo xtask test)"]
fn writes_only_trigger_files() {
    match common::cgroup::Kit::v2() {
        Ok(kit) => common::writes_only_trigger_files(&kit, 128 << 20, "100M"),
        Err(why) => common::unavailable("writes_only_trigger_files", &why),
    }
}

/// Issue #14: the guarded worker as uid 65534 without capabilities on a read-only cgroupfs.
#[test]
#[ignore = "cgroup v2 suite: runs inside the VM (cargo xtask test)"]
fn pod_worker_survives_where_unguarded_twin_dies() {
    match common::cgroup::Kit::v2() {
        Ok(kit) => common::pod_worker_survives_where_unguarded_twin_dies(&kit, 128 << 20, "100M"),
        Err(why) => common::unavailable("pod_worker_survives_where_unguarded_twin_dies", &why),
    }
}
