//! Detection on fixture trees: each test builds a miniature `/proc` + `/sys/fs/cgroup` under a
//! temporary root and runs the real detector on it (`Detector::with_root`).
//!
//! The layouts reproduce what the field runs (Kubernetes cgroupfs and systemd drivers, Docker
//! with and without cgroup namespaces, hybrid hosts) and the lines earlier detectors broke on:
//! OpenJDK (colons in systemd scope names, a process moved outside its mount root, the same
//! controller mounted twice, `/..` paths from namespaces), automemlimit (hybrid hosts whose
//! unified tree has no memory controller) and .NET (a process in the v2 root cgroup with no
//! `memory.max`, unlimited v1 sentinels).

use std::fs;
use std::path::Path;

use memguard::watch::{Builder, Config};
use memguard::{CgroupVersion, Detector, Error, LimitApplied, LimitOverride, Limits, OverrideSource, QosClass, Status};

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;
const HOST_KB: u64 = 16 * 1024 * 1024; // a 16 GiB host
const V1_UNLIMITED: &str = "9223372036854771712";

const MOUNT_V1_MEMORY: &str =
    "35 31 0:32 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,memory";
const MOUNT_V1_CPU: &str =
    "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:11 - cgroup cgroup rw,cpu,cpuacct";
const MOUNT_V2: &str = "29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot";
const MOUNT_UNIFIED: &str = "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:5 - cgroup2 cgroup2 rw";

/// A fixture tree under a temporary directory.
struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new() -> Self {
        let t = Tree { dir: tempfile::tempdir().expect("tempdir") };
        t.file(
            "/proc/meminfo",
            &format!("MemTotal:       {HOST_KB} kB\nMemFree: 1000 kB\nMemAvailable:   {} kB\n", HOST_KB / 2),
        );
        t.file("/proc/self/oom_score_adj", "0\n");
        t
    }

    fn file(&self, abs: &str, content: &str) -> &Self {
        let p = self.dir.path().join(abs.trim_start_matches('/'));
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(&p, content).expect("write");
        self
    }

    fn cgroup_file(&self, dir: &str, name: &str, content: &str) -> &Self {
        self.file(&format!("{dir}/{name}"), content)
    }

    fn proc_cgroup(&self, text: &str) -> &Self {
        self.file("/proc/self/cgroup", text)
    }

    fn mountinfo(&self, lines: &[&str]) -> &Self {
        let mut text = String::from("23 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n");
        text.push_str("31 23 0:28 / /sys/fs/cgroup rw,relatime shared:2 - tmpfs tmpfs rw,mode=755\n");
        for l in lines {
            text.push_str(l);
            text.push('\n');
        }
        self.file("/proc/self/mountinfo", &text)
    }

    /// A v1 memory cgroup directory with usage files.
    fn v1_dir(&self, dir: &str, limit: &str) -> &Self {
        self.cgroup_file(dir, "memory.limit_in_bytes", limit);
        self.cgroup_file(dir, "memory.soft_limit_in_bytes", V1_UNLIMITED);
        self.cgroup_file(dir, "memory.usage_in_bytes", &(300 * MIB).to_string());
        self.cgroup_file(dir, "memory.max_usage_in_bytes", &(400 * MIB).to_string());
        self.cgroup_file(
            dir,
            "memory.stat",
            &format!("cache 104857600\ninactive_file 10485760\ntotal_inactive_file {}\nhierarchical_memory_limit {V1_UNLIMITED}\n", 100 * MIB),
        )
    }

    /// A v2 cgroup directory (non-root) with usage files.
    fn v2_dir(&self, dir: &str, max: &str) -> &Self {
        self.cgroup_file(dir, "cgroup.controllers", "cpuset cpu io memory pids\n");
        self.cgroup_file(dir, "cgroup.type", "domain\n");
        self.cgroup_file(dir, "memory.max", max);
        self.cgroup_file(dir, "memory.high", "max\n");
        self.cgroup_file(dir, "memory.swap.max", "max\n");
        self.cgroup_file(dir, "memory.current", &(300 * MIB).to_string());
        self.cgroup_file(dir, "memory.peak", &(500 * MIB).to_string());
        self.cgroup_file(
            dir,
            "memory.stat",
            &format!(
                "anon 1000\nfile 2000\ninactive_file {}\nactive_file {}\nfile_dirty {}\nfile_writeback 0\n",
                50 * MIB,
                30 * MIB,
                10 * MIB
            ),
        )
    }

    /// The v2 root cgroup: no memory.max, memory.current, cgroup.type.
    fn v2_root(&self, dir: &str) -> &Self {
        self.cgroup_file(dir, "cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n");
        self.cgroup_file(dir, "memory.stat", "anon 1\ninactive_file 0\n")
    }

    fn detect(&self) -> Limits {
        Detector::new().with_root(self.dir.path()).detect().expect("detect")
    }

    /// The `memguard status` report with the default configuration.
    fn status(&self) -> Status {
        self.status_with(&Config::default())
    }

    fn status_with(&self, config: &Config) -> Status {
        Status::gather(&Detector::new().with_root(self.dir.path()), config, false).expect("status")
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }
}

fn v1_host_tree(path: &str) -> Tree {
    let t = Tree::new();
    t.proc_cgroup(&format!(
        "12:pids:/\n11:memory:{path}\n4:cpu,cpuacct:/\n1:name=systemd:/init.scope\n0::/init.scope\n"
    ));
    t.mountinfo(&[MOUNT_V1_CPU, MOUNT_V1_MEMORY, MOUNT_UNIFIED]);
    t.cgroup_file("/sys/fs/cgroup/unified", "cgroup.controllers", "");
    t
}

fn assert_note(l: &Limits, needle: &str) {
    assert!(l.notes.iter().any(|n| n.contains(needle)), "no note containing {needle:?} in {:#?}", l.notes);
}

// ---------------------------------------------------------------- cgroup v1 ----

#[test]
fn v1_no_limit_anywhere_is_none_not_hidden() {
    let t = v1_host_tree("/process_api/abc");
    t.v1_dir("/sys/fs/cgroup/memory", V1_UNLIMITED).v1_dir("/sys/fs/cgroup/memory/process_api", V1_UNLIMITED);
    t.v1_dir("/sys/fs/cgroup/memory/process_api/abc", V1_UNLIMITED);
    let l = t.detect();
    assert_eq!(l.cgroup, CgroupVersion::V1);
    assert_eq!(l.cgroup_path.as_deref(), Some("/process_api/abc"));
    assert_eq!(l.limit_bytes, None);
    assert!(!l.limit_maybe_hidden);
    assert!(l.notes.is_empty(), "{:?}", l.notes);
}

#[test]
fn v1_limit_on_own_cgroup() {
    let t = v1_host_tree("/docker/c1");
    t.v1_dir("/sys/fs/cgroup/memory", V1_UNLIMITED).v1_dir("/sys/fs/cgroup/memory/docker", V1_UNLIMITED);
    t.v1_dir("/sys/fs/cgroup/memory/docker/c1", &(512 * MIB).to_string());
    let l = t.detect();
    assert_eq!(l.limit_bytes, Some(512 * MIB));
    assert_eq!(l.limit_cgroup.as_deref(), Some("/docker/c1"));
    assert_eq!(l.limit_dir.as_deref(), Some("/sys/fs/cgroup/memory/docker/c1"));
}

#[test]
fn v1_pod_level_limit_above_container_cgroup() {
    let t = v1_host_tree("/kubepods/burstable/pod1/c1");
    for d in ["", "/kubepods", "/kubepods/burstable", "/kubepods/burstable/pod1/c1"] {
        t.v1_dir(&format!("/sys/fs/cgroup/memory{d}"), V1_UNLIMITED);
    }
    t.v1_dir("/sys/fs/cgroup/memory/kubepods/burstable/pod1", &GIB.to_string());
    let l = t.detect();
    assert_eq!(l.limit_bytes, Some(GIB));
    assert_eq!(l.limit_cgroup.as_deref(), Some("/kubepods/burstable/pod1"));
}

#[test]
fn v1_tightest_intermediate_limit_wins_and_ties_go_to_the_nearest() {
    let t = v1_host_tree("/a/b/c");
    t.v1_dir("/sys/fs/cgroup/memory", V1_UNLIMITED).v1_dir("/sys/fs/cgroup/memory/a", &(2 * GIB).to_string());
    t.v1_dir("/sys/fs/cgroup/memory/a/b", &GIB.to_string())
        .v1_dir("/sys/fs/cgroup/memory/a/b/c", &(3 * GIB).to_string());
    assert_eq!(t.detect().limit_cgroup.as_deref(), Some("/a/b"));
    t.v1_dir("/sys/fs/cgroup/memory/a/b/c", &GIB.to_string());
    assert_eq!(t.detect().limit_cgroup.as_deref(), Some("/a/b/c"));
}

#[test]
fn v1_limit_above_physical_ram_is_no_limit() {
    let t = v1_host_tree("/big");
    t.v1_dir("/sys/fs/cgroup/memory", V1_UNLIMITED).v1_dir("/sys/fs/cgroup/memory/big", &(64 * GIB).to_string());
    let l = t.detect();
    assert_eq!(l.limit_bytes, None);
    assert_note(&l, "not below host memory");
}

#[test]
fn v1_docker_without_cgroupns_mount_root_is_the_container() {
    // Docker (cgroup v1, no cgroupns): the container sees its own cgroup at the mount point.
    let t = Tree::new();
    t.proc_cgroup("11:memory:/docker/0123abcd\n4:cpu,cpuacct:/docker/0123abcd\n1:name=systemd:/docker/0123abcd\n");
    t.mountinfo(&[
        "35 31 0:32 /docker/0123abcd /sys/fs/cgroup/memory ro,nosuid,nodev,noexec,relatime master:14 - cgroup cgroup rw,memory",
    ]);
    t.v1_dir("/sys/fs/cgroup/memory", &(256 * MIB).to_string());
    let l = t.detect();
    assert_eq!(l.cgroup_dir.as_deref(), Some("/sys/fs/cgroup/memory"));
    assert_eq!(l.limit_bytes, Some(256 * MIB));
    assert_eq!(l.limit_cgroup.as_deref(), Some("/docker/0123abcd"));
}

#[test]
fn v1_limit_set_above_namespace_root_is_found_through_hierarchical_memory_limit() {
    // A private cgroup namespace: the process sees itself at `/`; only memory.stat reveals the pod limit.
    let t = Tree::new();
    t.proc_cgroup("11:memory:/\n");
    t.mountinfo(&[MOUNT_V1_MEMORY]);
    t.v1_dir("/sys/fs/cgroup/memory", V1_UNLIMITED);
    t.cgroup_file(
        "/sys/fs/cgroup/memory",
        "memory.stat",
        &format!("total_inactive_file 0\nhierarchical_memory_limit {}\n", 768 * MIB),
    );
    let l = t.detect();
    assert_eq!(l.limit_bytes, Some(768 * MIB));
    assert_eq!(l.limit_cgroup, None);
    assert!(!l.limit_maybe_hidden);
    assert_note(&l, "above the");
}

#[test]
fn v1_namespaced_without_hierarchical_limit_is_maybe_hidden() {
    let t = Tree::new();
    t.proc_cgroup("11:memory:/\n");
    t.mountinfo(&[MOUNT_V1_MEMORY]);
    t.v1_dir("/sys/fs/cgroup/memory", V1_UNLIMITED);
    t.cgroup_file("/sys/fs/cgroup/memory", "memory.stat", "total_inactive_file 0\n");
    let l = t.detect();
    assert_eq!(l.limit_bytes, None);
    assert!(l.limit_maybe_hidden);
}

#[test]
fn v1_systemd_driver_scope_with_colons_in_path() {
    let path =
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod9f1c.slice/cri-containerd:7b3f:e4a1.scope";
    let t = v1_host_tree(path);
    let base = "/sys/fs/cgroup/memory";
    t.v1_dir(base, V1_UNLIMITED);
    t.v1_dir(&format!("{base}/kubepods.slice"), V1_UNLIMITED);
    t.v1_dir(&format!("{base}/kubepods.slice/kubepods-burstable.slice"), V1_UNLIMITED);
    t.v1_dir(
        &format!("{base}/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod9f1c.slice"),
        &(640 * MIB).to_string(),
    );
    t.v1_dir(&format!("{base}{path}"), V1_UNLIMITED);
    let l = t.detect();
    assert_eq!(l.cgroup_path.as_deref(), Some(path));
    assert_eq!(l.limit_bytes, Some(640 * MIB));
    assert_eq!(
        l.limit_cgroup.as_deref(),
        Some("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod9f1c.slice")
    );
}

#[test]
fn v1_memory_comounted_with_other_controllers() {
    let t = Tree::new();
    t.proc_cgroup("5:memory,hugetlb:/job\n4:cpu,cpuacct:/job\n");
    t.mountinfo(&[
        MOUNT_V1_CPU,
        "36 31 0:33 / /sys/fs/cgroup/memory,hugetlb rw,relatime - cgroup cgroup rw,memory,hugetlb",
    ]);
    t.v1_dir("/sys/fs/cgroup/memory,hugetlb", V1_UNLIMITED)
        .v1_dir("/sys/fs/cgroup/memory,hugetlb/job", &GIB.to_string());
    let l = t.detect();
    assert_eq!(l.mount_point.as_deref(), Some("/sys/fs/cgroup/memory,hugetlb"));
    assert_eq!(l.limit_bytes, Some(GIB));
}

#[test]
fn v1_same_controller_mounted_twice_prefers_the_mount_showing_most_ancestors() {
    // A bind mount of the container's own cgroup elsewhere must not cut the walk short.
    let t = v1_host_tree("/pod/c1");
    t.mountinfo(&["50 23 0:32 /pod/c1 /run/agent/memory rw,relatime - cgroup cgroup rw,memory", MOUNT_V1_MEMORY]);
    t.v1_dir("/sys/fs/cgroup/memory", V1_UNLIMITED).v1_dir("/sys/fs/cgroup/memory/pod", &(900 * MIB).to_string());
    t.v1_dir("/sys/fs/cgroup/memory/pod/c1", V1_UNLIMITED);
    t.v1_dir("/run/agent/memory", V1_UNLIMITED);
    let l = t.detect();
    assert_eq!(l.mount_point.as_deref(), Some("/sys/fs/cgroup/memory"));
    assert_eq!(l.limit_cgroup.as_deref(), Some("/pod"));
}

#[test]
fn v1_process_moved_outside_its_mount_root_falls_back_to_the_mount_point() {
    // The mount shows /docker/a, but the process has since been moved to /docker/b.
    let t = Tree::new();
    t.proc_cgroup("11:memory:/docker/b\n");
    t.mountinfo(&["35 31 0:32 /docker/a /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory"]);
    t.v1_dir("/sys/fs/cgroup/memory", &(128 * MIB).to_string());
    let l = t.detect();
    assert_eq!(l.cgroup_path.as_deref(), Some("/docker/b"));
    assert_eq!(l.cgroup_dir.as_deref(), Some("/sys/fs/cgroup/memory"));
    assert_eq!(l.limit_bytes, Some(128 * MIB));
    assert_note(&l, "outside the root /docker/a");
}

#[test]
fn v1_octal_escaped_mount_point() {
    let t = Tree::new();
    t.proc_cgroup("11:memory:/svc\n");
    t.mountinfo(&[r"35 31 0:32 / /sys/fs/cgroup/my\040memory rw,relatime - cgroup cgroup rw,memory"]);
    t.v1_dir("/sys/fs/cgroup/my memory", V1_UNLIMITED).v1_dir("/sys/fs/cgroup/my memory/svc", &(300 * MIB).to_string());
    let l = t.detect();
    assert_eq!(l.limit_dir.as_deref(), Some("/sys/fs/cgroup/my memory/svc"));
}

#[test]
fn v1_swap_allowance_from_memsw() {
    let t = v1_host_tree("/svc");
    t.v1_dir("/sys/fs/cgroup/memory", V1_UNLIMITED).v1_dir("/sys/fs/cgroup/memory/svc", &GIB.to_string());
    t.cgroup_file("/sys/fs/cgroup/memory/svc", "memory.memsw.limit_in_bytes", &(3 * GIB / 2).to_string());
    t.cgroup_file("/sys/fs/cgroup/memory/svc", "memory.soft_limit_in_bytes", &(700 * MIB).to_string());
    let l = t.detect();
    assert_eq!(l.swap_limit_bytes, Some(GIB / 2));
    assert_eq!(l.high_bytes, Some(700 * MIB));
}

#[test]
fn hybrid_host_with_empty_unified_tree_uses_v1() {
    // The machines memguard is developed on: memory on v1, cgroup2 at /sys/fs/cgroup/unified without it.
    let t = v1_host_tree("/process_api/x");
    t.v1_dir("/sys/fs/cgroup/memory", V1_UNLIMITED).v1_dir("/sys/fs/cgroup/memory/process_api", &(2 * GIB).to_string());
    t.v1_dir("/sys/fs/cgroup/memory/process_api/x", V1_UNLIMITED);
    let l = t.detect();
    assert_eq!(l.cgroup, CgroupVersion::V1);
    assert_eq!(l.limit_cgroup.as_deref(), Some("/process_api"));
}

#[test]
fn usage_and_working_set_at_own_and_limiting_cgroup() {
    let t = v1_host_tree("/pod/c1");
    t.v1_dir("/sys/fs/cgroup/memory", V1_UNLIMITED).v1_dir("/sys/fs/cgroup/memory/pod", &GIB.to_string());
    t.v1_dir("/sys/fs/cgroup/memory/pod/c1", V1_UNLIMITED);
    t.cgroup_file("/sys/fs/cgroup/memory/pod", "memory.usage_in_bytes", &(600 * MIB).to_string());
    let s = t.status();
    assert_eq!(s.usage_bytes, Some(300 * MIB));
    assert_eq!(s.working_set_bytes, Some(200 * MIB)); // 300 MiB - total_inactive_file 100 MiB
    assert_eq!(s.peak_bytes, Some(400 * MIB));
    assert_eq!(s.limit_usage_bytes, Some(600 * MIB));
    assert_eq!(s.limit_working_set_bytes, Some(500 * MIB));
    assert_eq!(s.headroom_bytes, Some(GIB - 500 * MIB));
}

// ---------------------------------------------------------------- cgroup v2 ----

fn v2_tree(path: &str) -> Tree {
    let t = Tree::new();
    t.proc_cgroup(&format!("0::{path}\n"));
    t.mountinfo(&[MOUNT_V2]);
    t.v2_root("/sys/fs/cgroup");
    t
}

#[test]
fn v2_systemd_slice_limit() {
    let t = v2_tree("/system.slice/app.service");
    t.v2_dir("/sys/fs/cgroup/system.slice", &(4 * GIB).to_string())
        .v2_dir("/sys/fs/cgroup/system.slice/app.service", "max\n");
    let l = t.detect();
    assert_eq!(l.cgroup, CgroupVersion::V2);
    assert_eq!(l.limit_bytes, Some(4 * GIB));
    assert_eq!(l.limit_cgroup.as_deref(), Some("/system.slice"));
    assert!(!l.limit_maybe_hidden, "{:?}", l.notes);
}

#[test]
fn v2_kubernetes_pod_limit_tighter_than_container_limit() {
    let pod = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podab12.slice";
    let t = v2_tree(&format!("{pod}/cri-containerd-99.scope"));
    t.v2_dir("/sys/fs/cgroup/kubepods.slice", "max\n")
        .v2_dir("/sys/fs/cgroup/kubepods.slice/kubepods-burstable.slice", "max\n");
    t.v2_dir(&format!("/sys/fs/cgroup{pod}"), &(512 * MIB).to_string());
    t.v2_dir(&format!("/sys/fs/cgroup{pod}/cri-containerd-99.scope"), &GIB.to_string());
    let l = t.detect();
    assert_eq!(l.limit_bytes, Some(512 * MIB));
    assert_eq!(l.limit_cgroup.as_deref(), Some(pod));
}

#[test]
fn v2_memory_high_and_swap() {
    let t = v2_tree("/app");
    t.v2_dir("/sys/fs/cgroup/app", &GIB.to_string());
    t.cgroup_file("/sys/fs/cgroup/app", "memory.high", &(800 * MIB).to_string());
    t.cgroup_file("/sys/fs/cgroup/app", "memory.swap.max", "0\n");
    let l = t.detect();
    assert_eq!(l.high_bytes, Some(800 * MIB));
    assert_eq!(l.high_cgroup.as_deref(), Some("/app"));
    assert_eq!(l.swap_limit_bytes, Some(0));
}

#[test]
fn v2_process_in_root_cgroup_has_no_limit_and_host_usage() {
    // .NET read a missing memory.max at the root as an error; it is simply "no limit".
    let t = v2_tree("/");
    let l = t.detect();
    assert_eq!(l.cgroup, CgroupVersion::V2);
    assert_eq!(l.limit_bytes, None);
    assert!(!l.limit_maybe_hidden);
    let s = t.status();
    assert_eq!(s.usage_bytes, Some(HOST_KB / 2 * 1024));
    assert_note(&s.limits, "usage shown is host-wide");
}

#[test]
fn v2_private_namespace_without_visible_limit_is_maybe_hidden_not_unlimited() {
    // `0::/` inside a private cgroup namespace: the mount root is the container's own cgroup.
    let t = Tree::new();
    t.proc_cgroup("0::/\n");
    t.mountinfo(&["29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw"]);
    t.v2_dir("/sys/fs/cgroup", "max\n");
    let l = t.detect();
    assert_eq!(l.limit_bytes, None);
    assert!(l.limit_maybe_hidden);
    assert_note(&l, "cannot be seen");
}

#[test]
fn v2_private_namespace_with_own_limit() {
    let t = Tree::new();
    t.proc_cgroup("0::/\n");
    t.mountinfo(&["29 23 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw"]);
    t.v2_dir("/sys/fs/cgroup", &(256 * MIB).to_string());
    let l = t.detect();
    assert_eq!(l.limit_bytes, Some(256 * MIB));
    assert_eq!(l.limit_cgroup.as_deref(), Some("/"));
    assert!(l.limit_maybe_hidden, "a tighter pod limit could sit above the namespace root");
}

#[test]
fn v2_dotdot_path_outside_namespace_falls_back() {
    // A process whose cgroup is outside the reader's namespace shows `/../..`.
    let t = Tree::new();
    t.proc_cgroup("0::/../../system.slice/other.service\n");
    t.mountinfo(&[MOUNT_V2]);
    t.v2_dir("/sys/fs/cgroup", &(300 * MIB).to_string());
    let l = t.detect();
    assert_eq!(l.cgroup_dir.as_deref(), Some("/sys/fs/cgroup"));
    assert_eq!(l.limit_bytes, Some(300 * MIB));
    assert!(l.limit_maybe_hidden);
    assert_note(&l, "outside the root");
}

#[test]
fn v2_host_with_stray_v1_lines() {
    // A v2 host where a v1 named hierarchy and a stray memory line remain (no v1 memory mount).
    let t = Tree::new();
    t.proc_cgroup("7:memory:/\n1:name=systemd:/user.slice\n0::/user.slice/session-1.scope\n");
    t.mountinfo(&[MOUNT_V2, "40 31 0:40 / /run/systemd/v1 rw - cgroup cgroup rw,name=systemd"]);
    t.v2_dir("/sys/fs/cgroup/user.slice", &(2 * GIB).to_string());
    t.v2_dir("/sys/fs/cgroup/user.slice/session-1.scope", "max\n");
    let l = t.detect();
    assert_eq!(l.cgroup, CgroupVersion::V2);
    assert_eq!(l.limit_cgroup.as_deref(), Some("/user.slice"));
    assert_note(&l, "no v1 memory hierarchy is mounted");
}

#[test]
fn v2_mounted_twice_prefers_the_full_tree() {
    let t = v2_tree("/app/worker");
    t.mountinfo(&["60 23 0:26 /app /mnt/app-cgroup rw - cgroup2 cgroup2 rw", MOUNT_V2]);
    t.v2_dir("/sys/fs/cgroup/app", &GIB.to_string()).v2_dir("/sys/fs/cgroup/app/worker", "max\n");
    t.v2_dir("/mnt/app-cgroup", &GIB.to_string()).v2_dir("/mnt/app-cgroup/worker", "max\n");
    let l = t.detect();
    assert_eq!(l.mount_point.as_deref(), Some("/sys/fs/cgroup"));
    assert!(!l.limit_maybe_hidden);
}

#[test]
fn v2_without_memory_controller_is_none() {
    let t = Tree::new();
    t.proc_cgroup("0::/job\n");
    t.mountinfo(&[MOUNT_V2]);
    t.cgroup_file("/sys/fs/cgroup/job", "cgroup.controllers", "cpu pids\n");
    let l = t.detect();
    assert_eq!(l.cgroup, CgroupVersion::None);
    assert_note(&l, "memory controller is not enabled");
}

#[test]
fn v2_working_set_subtracts_inactive_file() {
    let t = v2_tree("/app");
    t.v2_dir("/sys/fs/cgroup/app", &GIB.to_string());
    let s = t.status();
    assert_eq!(s.usage_bytes, Some(300 * MIB));
    assert_eq!(s.working_set_bytes, Some(250 * MIB), "usage - inactive_file");
    // The pressure measure: usage - clean file cache (50 + 30 MiB on the LRU lists, 10 MiB dirty).
    assert_eq!(s.unreclaimable_bytes, Some(230 * MIB), "usage - (active + inactive - dirty - writeback)");
    assert_eq!(s.peak_bytes, Some(500 * MIB));
    let f = s.used_fraction.expect("fraction");
    assert!((f - 230.0 / 1024.0).abs() < 1e-9, "the level's fraction is the measure's");
    assert_eq!(s.headroom_bytes, Some(GIB - 230 * MIB));
}

// ------------------------------------------------------------- malformed input ----

#[test]
fn malformed_limit_file_is_skipped_with_a_note() {
    let t = v2_tree("/a/b");
    t.v2_dir("/sys/fs/cgroup/a", &GIB.to_string()).v2_dir("/sys/fs/cgroup/a/b", "lots\n");
    let l = t.detect();
    assert_eq!(l.limit_cgroup.as_deref(), Some("/a"));
    assert_note(&l, "malformed");
    assert!(l.limit_unknown, "the own cgroup's limit could be lower than /a's: {l:#?}");
}

// ------------------------------------------------------------ unknown limits ----
// A limit file that exists but cannot be read or parsed makes the limit *unknown*: the JSON
// says so (`limit_unknown`, `limit_unknown_files`), and never `limit_bytes: null` with nothing
// else, which a program would read as "unlimited".

/// Replace a limit file with a directory: it exists, and reading it fails (EISDIR) — an
/// unreadable file that root cannot read either (as EACCES would be for a container user).
fn make_unreadable(t: &Tree, file: &str) {
    let p = t.root().join(file.trim_start_matches('/'));
    let _ = fs::remove_file(&p);
    fs::create_dir_all(&p).expect("mkdir");
}

fn assert_unknown_in_reports(t: &Tree, file: &str) {
    let s = t.status();
    let v = serde_json::to_value(&s).expect("json");
    assert_eq!(v["limit_unknown"], true, "{v}");
    assert_eq!(v["limit_unknown_files"][0], file, "{v}");
    let text = memguard::render::status_text(&s, None);
    let row = text.lines().find(|l| l.trim_start().starts_with("limit ")).expect("limit row");
    assert!(row.contains("unknown") && row.contains(file), "{text}");
    assert!(s.limits.notes.iter().any(|n| n.contains(file)), "the note names the file: {:?}", s.limits.notes);
}

#[test]
fn v2_unparseable_own_limit_is_unknown_not_unlimited() {
    let t = v2_tree("/app");
    t.v2_dir("/sys/fs/cgroup/app", "invalid\n");
    let l = t.detect();
    assert_eq!(l.limit_bytes, None);
    assert!(l.limit_unknown && !l.limit_maybe_hidden, "{l:#?}");
    assert_eq!(l.limit_applied, LimitApplied::None);
    assert_eq!(l.limit_unknown_files, ["/sys/fs/cgroup/app/memory.max"]);
    assert_note(&l, "/sys/fs/cgroup/app/memory.max");
    assert_unknown_in_reports(&t, "/sys/fs/cgroup/app/memory.max");
}

#[test]
fn v2_unreadable_ancestor_limit_is_unknown_with_an_upper_bound() {
    let t = v2_tree("/pod/app");
    t.v2_dir("/sys/fs/cgroup/pod", "max\n").v2_dir("/sys/fs/cgroup/pod/app", &GIB.to_string());
    make_unreadable(&t, "/sys/fs/cgroup/pod/memory.max");
    let l = t.detect();
    assert_eq!(l.limit_bytes, Some(GIB), "the readable limit is an upper bound");
    assert_eq!(l.limit_cgroup.as_deref(), Some("/pod/app"));
    assert!(l.limit_unknown);
    assert_eq!(l.limit_unknown_files, ["/sys/fs/cgroup/pod/memory.max"]);
    assert_unknown_in_reports(&t, "/sys/fs/cgroup/pod/memory.max");
}

#[test]
fn v1_unreadable_own_limit_is_unknown_not_unlimited() {
    let t = v1_host_tree("/app");
    t.v1_dir("/sys/fs/cgroup/memory", V1_UNLIMITED).v1_dir("/sys/fs/cgroup/memory/app", V1_UNLIMITED);
    make_unreadable(&t, "/sys/fs/cgroup/memory/app/memory.limit_in_bytes");
    // Without a readable hierarchical_memory_limit nothing tells the limit.
    t.cgroup_file("/sys/fs/cgroup/memory/app", "memory.stat", "cache 0\ntotal_inactive_file 0\n");
    let l = t.detect();
    assert_eq!(l.limit_bytes, None);
    assert!(l.limit_unknown && !l.limit_maybe_hidden, "{l:#?}");
    assert_unknown_in_reports(&t, "/sys/fs/cgroup/memory/app/memory.limit_in_bytes");
}

#[test]
fn v1_unparseable_ancestor_limit_is_unknown() {
    let t = v1_host_tree("/pod/app");
    t.v1_dir("/sys/fs/cgroup/memory", V1_UNLIMITED).v1_dir("/sys/fs/cgroup/memory/pod", "invalid\n");
    t.v1_dir("/sys/fs/cgroup/memory/pod/app", &(512 * MIB).to_string());
    t.cgroup_file("/sys/fs/cgroup/memory/pod/app", "memory.stat", "cache 0\ntotal_inactive_file 0\n");
    let l = t.detect();
    assert_eq!(l.limit_bytes, Some(512 * MIB));
    assert!(l.limit_unknown);
    assert_unknown_in_reports(&t, "/sys/fs/cgroup/memory/pod/memory.limit_in_bytes");
}

#[test]
fn v1_hierarchical_memory_limit_resolves_an_unreadable_limit_file() {
    // The kernel's own summary covers every level, the unreadable one included.
    let t = v1_host_tree("/pod/app");
    t.v1_dir("/sys/fs/cgroup/memory", V1_UNLIMITED).v1_dir("/sys/fs/cgroup/memory/pod", "invalid\n");
    t.v1_dir("/sys/fs/cgroup/memory/pod/app", &GIB.to_string());
    t.cgroup_file(
        "/sys/fs/cgroup/memory/pod/app",
        "memory.stat",
        &format!("total_inactive_file 0\nhierarchical_memory_limit {}\n", 256 * MIB),
    );
    let l = t.detect();
    assert_eq!(l.limit_bytes, Some(256 * MIB));
    assert!(!l.limit_unknown, "{l:#?}");
    assert_eq!(l.limit_unknown_files, ["/sys/fs/cgroup/memory/pod/memory.limit_in_bytes"]);
    assert_note(&l, "hierarchical_memory_limit (268435456 bytes) gives the limit");
}

// ------------------------------------------------------------ limit override ----

fn with_override(t: &Tree, bytes: u64) -> Status {
    t.status_with(&Builder::new().limit_override(bytes).config().expect("config"))
}

#[test]
fn override_below_the_detected_limit_applies() {
    let t = v2_tree("/app");
    t.v2_dir("/sys/fs/cgroup/app", &GIB.to_string());
    let s = with_override(&t, 512 * MIB);
    let l = &s.limits;
    assert_eq!(l.limit_bytes, Some(512 * MIB));
    assert_eq!(l.limit_applied, LimitApplied::Override);
    assert_eq!(l.detected_limit_bytes, Some(GIB));
    assert_eq!((l.limit_override_bytes, l.limit_override_source), (Some(512 * MIB), Some(OverrideSource::Builder)));
    assert_eq!(l.limit_cgroup.as_deref(), Some("/app"), "usage is still read where the cgroup limit is");
    assert_eq!(s.headroom_bytes, Some(512 * MIB - 230 * MIB));
    assert_eq!(s.budget_soft_limit_bytes, Some((512.0 * MIB as f64 * 0.85) as u64));
    assert_note(l, "applies: it is below the detected limit");
    let v = serde_json::to_value(&s).expect("json");
    assert_eq!(
        (&v["limit_bytes"], &v["limit_applied"], &v["detected_limit_bytes"], &v["limit_override_source"]),
        (
            &serde_json::json!(512 * MIB),
            &serde_json::json!("override"),
            &serde_json::json!(GIB),
            &serde_json::json!("builder")
        )
    );
    let text = memguard::render::status_text(&s, None);
    assert!(text.contains("limit           512.0 MiB from builder"), "{text}");
    assert!(
        text.contains("override        512.0 MiB (builder) applies, lower than the detected 1.0 GiB set by /app"),
        "{text}"
    );
}

#[test]
fn override_above_the_detected_limit_is_ignored() {
    let t = v2_tree("/app");
    t.v2_dir("/sys/fs/cgroup/app", &GIB.to_string());
    for bytes in [2 * GIB, GIB] {
        let s = with_override(&t, bytes);
        let l = &s.limits;
        assert_eq!((l.limit_bytes, l.limit_applied), (Some(GIB), LimitApplied::Cgroup), "override {bytes}");
        assert_eq!(l.limit_override_bytes, Some(bytes));
        assert_note(l, "is not below the detected limit");
        let text = memguard::render::status_text(&s, None);
        assert!(text.contains("limit           1.0 GiB set by /app"), "{text}");
        assert!(text.contains("ignored: the detected 1.0 GiB set by /app is lower"), "{text}");
    }
}

#[test]
fn override_restores_a_limit_hidden_above_the_namespace_root() {
    let t = Tree::new();
    t.proc_cgroup("0::/\n");
    t.mountinfo(&["29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw"]);
    t.v2_dir("/sys/fs/cgroup", "max\n");
    let s = with_override(&t, 768 * MIB);
    let l = &s.limits;
    assert!(l.limit_maybe_hidden, "detection still says a limit may be hidden");
    assert_eq!(
        (l.limit_bytes, l.limit_applied, l.detected_limit_bytes),
        (Some(768 * MIB), LimitApplied::Override, None)
    );
    assert_eq!(s.headroom_bytes, Some(768 * MIB - 230 * MIB), "usage at the process's own cgroup");
    assert_note(l, "one may be hidden above the cgroup namespace root");
    let text = memguard::render::status_text(&s, None);
    assert!(text.contains("limit           768.0 MiB from builder"), "{text}");
    assert!(!text.contains("none visible"), "{text}");
}

#[test]
fn override_gives_a_known_limit_when_the_cgroup_limit_is_unknown() {
    let t = v2_tree("/app");
    t.v2_dir("/sys/fs/cgroup/app", "invalid\n");
    let s = with_override(&t, 512 * MIB);
    assert_eq!((s.limits.limit_bytes, s.limits.limit_applied), (Some(512 * MIB), LimitApplied::Override));
    assert!(s.limits.limit_unknown, "the detection fact stays");
    let text = memguard::render::status_text(&s, None);
    assert!(
        text.contains("applies: the cgroup limit is unknown (/sys/fs/cgroup/app/memory.max could not be read)"),
        "{text}"
    );
}

#[test]
fn override_without_any_cgroup_limit_and_above_host_memory() {
    let t = v2_tree("/app");
    t.v2_dir("/sys/fs/cgroup/app", "max\n");
    let s = with_override(&t, GIB);
    assert_eq!((s.limits.limit_bytes, s.limits.limit_applied), (Some(GIB), LimitApplied::Override));
    // A limit at or above host memory can never bind: ignored, like such a cgroup limit.
    let s = with_override(&t, 32 * GIB);
    assert_eq!((s.limits.limit_bytes, s.limits.limit_applied), (None, LimitApplied::None));
    assert_note(&s.limits, "not below host memory");
}

#[test]
fn with_override_is_idempotent_and_none_restores_the_detected_limit() {
    let t = v2_tree("/app");
    t.v2_dir("/sys/fs/cgroup/app", &GIB.to_string());
    let detected = t.detect();
    let once = detected.clone().with_override(Some(LimitOverride::from_env(512 * MIB)));
    let twice = once.clone().with_override(Some(LimitOverride::from_env(512 * MIB)));
    assert_eq!(once, twice, "re-applying after each re-detection must not stack notes");
    assert_eq!(once.limit_override_source, Some(OverrideSource::Env));
    assert_eq!(twice.with_override(None), detected);
}

#[test]
fn malformed_proc_lines_are_skipped_with_notes() {
    let t = v2_tree("/a");
    t.proc_cgroup("garbage line\n0::/a\n");
    t.file("/proc/self/mountinfo", &format!("this is not a mount\n{MOUNT_V2}\n"));
    t.v2_dir("/sys/fs/cgroup/a", &GIB.to_string());
    let l = t.detect();
    assert_eq!(l.limit_bytes, Some(GIB));
    assert_note(&l, "skipped /proc/self/cgroup line 1");
    assert_note(&l, "skipped /proc/self/mountinfo line 1");
}

#[test]
fn missing_proc_cgroup_means_no_cgroup() {
    let t = Tree::new();
    let l = t.detect();
    assert_eq!(l.cgroup, CgroupVersion::None);
    assert_eq!(l.host_total_bytes, Some(HOST_KB * 1024));
    assert_note(&l, "host memory is the only limit");
    let s = t.status();
    assert_eq!(s.usage_bytes, Some(HOST_KB / 2 * 1024));
}

#[test]
fn missing_proc_is_a_typed_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = Detector::new().with_root(dir.path()).detect().unwrap_err();
    assert!(matches!(err, Error::ProcUnavailable { .. }), "{err:?}");
}

#[test]
fn unknown_pid_is_an_error_but_own_process_is_lenient() {
    let t = Tree::new();
    let err = Detector::new().with_root(t.root()).with_pid(4242).detect().unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

#[test]
fn oom_score_adj_gives_qos_class() {
    let t = Tree::new();
    for (adj, class) in [
        ("-997", Some(QosClass::Guaranteed)),
        ("1000", Some(QosClass::BestEffort)),
        ("937", Some(QosClass::Burstable)),
        ("0", None),
    ] {
        t.file("/proc/self/oom_score_adj", adj);
        let l = t.detect();
        assert_eq!(l.qos_class, class, "{adj}");
    }
    t.file("/proc/self/oom_score_adj", "high");
    assert_note(&t.detect(), "oom_score_adj");
}

#[test]
fn status_json_has_the_documented_fields() {
    let t = v2_tree("/app");
    t.v2_dir("/sys/fs/cgroup/app", &GIB.to_string());
    let s = t.status();
    let v = serde_json::to_value(&s).expect("json");
    for key in [
        "cgroup",
        "cgroup_path",
        "limit_bytes",
        "limit_cgroup",
        "limit_maybe_hidden",
        "limit_applied",
        "detected_limit_bytes",
        "limit_unknown",
        "limit_unknown_files",
        "limit_override_bytes",
        "limit_override_source",
        "level",
        "warn_bytes",
        "critical_bytes",
        "budget_soft_limit_bytes",
        "high_bytes",
        "swap_limit_bytes",
        "usage_bytes",
        "working_set_bytes",
        "host_total_bytes",
        "oom_score_adj",
        "qos_class",
        "sources",
    ] {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
    assert_eq!(v["cgroup"], "v2");
    assert_eq!(v["limit_bytes"], GIB);
    assert_eq!(v["limit_applied"], "cgroup");
    assert_eq!(v["limit_unknown"], false);
    assert_eq!(v["level"], "normal");
}

#[test]
fn status_is_judged_with_the_configuration() {
    // Working set 250 MiB of a 1 GiB limit: 0.244.
    let t = v2_tree("/app");
    t.v2_dir("/sys/fs/cgroup/app", &GIB.to_string());
    assert_eq!(t.status().level, memguard::Level::Normal);
    let cfg = Builder::new().warn(0.2).critical(0.3).soft_limit(0.5).psi(false).config().expect("config");
    let s = t.status_with(&cfg);
    assert_eq!(s.level, memguard::Level::Warning);
    assert_eq!((s.warn_bytes, s.critical_bytes), (Some((GIB as f64 * 0.2) as u64), Some((GIB as f64 * 0.3) as u64)));
    assert_eq!(s.budget_soft_limit_bytes, Some(GIB / 2));
    let psi = s.sources.iter().find(|x| x.name == "psi").expect("psi listed");
    assert!(!psi.armed && psi.detail.as_deref() == Some("disabled by configuration"), "{psi:?}");
    let prom = memguard::render::status_prometheus(&s);
    assert!(prom.contains("\nmemguard_level 1\n"), "{prom}");
    assert!(prom.contains(&format!("\nmemguard_soft_limit_bytes {}\n", GIB / 2)), "{prom}");
    // Node mode: without a limit the level is host memory against MemTotal - eviction threshold.
    let t = v2_tree("/app");
    t.v2_dir("/sys/fs/cgroup/app", "max\n");
    let cfg = Builder::new().eviction_threshold(HOST_KB * 1024 / 2 - (1 << 20)).config().expect("config");
    assert_eq!(t.status_with(&cfg).level, memguard::Level::Critical, "half the host used, eviction at half");
}

// ------------------------------------------------------------ runtime faults ----
// A running guard on a fixture tree whose files start failing: what the kernel cannot be made
// to do on demand (a cgroup file that stops parsing while its directory exists).

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !ok() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

fn sampler(g: &memguard::MemGuard) -> memguard::watch::SourceStatus {
    g.sources().into_iter().find(|s| s.name == "sampler").expect("sampler listed")
}

/// A cgroup file that starts failing to parse under a running guard: the sampler's line says
/// not armed and why, `memguard_sample_errors_total` counts the failures, the failing file is
/// retried at the sampler's longest interval (no busy loop), the guard keeps its last level, and
/// everything recovers when the file reads again.
#[test]
fn cgroup_file_that_starts_failing_is_reported_and_recovers() {
    let t = v2_tree("/app");
    t.v2_dir("/sys/fs/cgroup/app", &GIB.to_string());
    let max_interval = std::time::Duration::from_millis(20);
    let g = Builder::new()
        .root(t.root())
        .psi(false)
        .sample_interval(std::time::Duration::from_millis(1), max_interval)
        .start()
        .expect("start");
    assert!(sampler(&g).armed, "{:?}", sampler(&g));
    t.cgroup_file("/sys/fs/cgroup/app", "memory.current", "garbage\n");
    wait_until("the sampler to report the failure", || !sampler(&g).armed);
    let detail = sampler(&g).detail.unwrap_or_default();
    assert!(detail.contains("reading failed") && detail.contains("memory.current"), "{detail}");
    let errors = |g: &memguard::MemGuard| -> u64 {
        let text = g.prometheus();
        let line = text.lines().find(|l| l.starts_with("memguard_sample_errors_total ")).unwrap_or("");
        line.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no counter in {text}"))
    };
    assert!(g.prometheus().contains("memguard_source_armed{source=\"sampler\"} 0"), "{}", g.prometheus());
    // Retried at the longest interval, not in a loop: over 0.5 s at most ~25 failures (+ slack).
    let before = errors(&g);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let during = errors(&g) - before;
    assert!((5..=40).contains(&during), "{during} failed samples in 0.5 s at a {max_interval:?} retry interval");
    assert_eq!(g.snapshot().failed, None);
    assert_eq!(g.snapshot().watcher_panics, 0);
    t.cgroup_file("/sys/fs/cgroup/app", "memory.current", &(300 * MIB).to_string());
    wait_until("the sampler to recover", || sampler(&g).armed);
    let samples = g.snapshot().samples;
    wait_until("samples to resume", || g.snapshot().samples > samples + 3);
    assert!(g.prometheus().contains("memguard_source_armed{source=\"sampler\"} 1"), "{}", g.prometheus());
    g.close();
}

/// A service that reserves per request and releases when the request is done churns through
/// its room quickly: 16 MiB of reservations per millisecond (1 000 requests of 16 KiB) with
/// memory flat at 30% of a 1 GiB limit. Released bytes wait for a usage sample to settle; the
/// guard must sample soon enough (and at once when a request is refused while bytes are
/// settling) that such a service is not refused for lack of room it never used.
#[test]
fn reservation_churn_with_flat_memory_is_not_refused() {
    let t = v2_tree("/app");
    t.v2_dir("/sys/fs/cgroup/app", &GIB.to_string());
    let g = Builder::new().root(t.root()).psi(false).start().expect("start");
    wait_until("a first sample", || g.snapshot().samples > 0);
    let (mut granted, mut refused) = (0u64, 0u64);
    let end = std::time::Instant::now() + std::time::Duration::from_millis(600);
    while std::time::Instant::now() < end {
        for _ in 0..1000 {
            match g.try_reserve(16 << 10) {
                Ok(r) => {
                    drop(r);
                    granted += 1;
                }
                Err(_) => refused += 1,
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    #[allow(clippy::cast_precision_loss)]
    let share = refused as f64 / (granted + refused) as f64;
    println!("granted {granted}, refused {refused} ({:.2}%), samples {}", share * 100.0, g.snapshot().samples);
    assert!(share < 0.02, "refused {refused} of {} requests with memory flat at 30%", granted + refused);
}
