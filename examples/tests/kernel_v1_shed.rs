//! Issue #5 on the native cgroup v1 kernel: a cache growing toward the limit is shed through a
//! registered shedder and the process is not OOM-killed, where its unguarded twin is.

mod common;

#[test]
fn guarded_worker_survives_where_unguarded_twin_dies() {
    match common::cgroup::Kit::v1() {
        Ok(kit) => common::guarded_worker_survives_where_unguarded_twin_dies(&kit, 192 << 20, "300M"),
        Err(why) => common::unavailable("guarded_worker_survives_where_unguarded_twin_dies", &why),
    }
}

#[test]
fn writes_only_trigger_files() {
    match common::cgroup::Kit::v1() {
        Ok(kit) => common::writes_only_trigger_files(&kit, 192 << 20, "300M"),
        Err(why) => common::unavailable("writes_only_trigger_files", &why),
    }
}

/// Issue #14: the guarded worker as uid 65534 without capabilities on a read-only cgroupfs.
#[test]
fn pod_worker_survives_where_unguarded_twin_dies() {
    match common::cgroup::Kit::v1() {
        Ok(kit) => common::pod_worker_survives_where_unguarded_twin_dies(&kit, 192 << 20, "300M"),
        Err(why) => common::unavailable("pod_worker_survives_where_unguarded_twin_dies", &why),
    }
}
