//! The shedding scenario shared by the native cgroup v1 and the VM cgroup v2 suites.
#![allow(dead_code)]

#[path = "../../../memguard/tests/support/cgroup.rs"]
pub mod cgroup;

use std::os::unix::process::ExitStatusExt;

use cgroup::{Kit, Version};
use serde_json::Value;

const MIB: u64 = 1 << 20;
const WORKER: &str = env!("CARGO_BIN_EXE_cache-worker");

/// Skip locally, fail in CI.
pub fn unavailable(test: &str, why: &str) {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    assert!(!ci, "{test}: required kernel capability missing in CI: {why}");
    eprintln!("SKIPPED {test}: {why}");
}

fn oom_kills(cg: &cgroup::TestCgroup, version: Version) -> u64 {
    let file = match version {
        Version::V1 => "memory.oom_control",
        Version::V2 => "memory.events",
    };
    std::fs::read_to_string(cg.dir().join(file))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// A worker whose cache grows to three times the limit: the unguarded twin is OOM-killed, the
/// guarded one sheds through its registered shedder (and rejects work through the budget) and
/// finishes.
pub fn guarded_worker_survives_where_unguarded_twin_dies(kit: &Kit, limit: u64, rate: &str) {
    let total = format!("{}M", 3 * limit / MIB);
    let twin = kit.cgroup("unguarded");
    twin.set_limit(limit);
    let status = twin.command(WORKER, &["--total", &total, "--rate", rate]).status().expect("run unguarded worker");
    assert_eq!(status.signal(), Some(9), "the unguarded worker must be OOM-killed: {status}");
    assert!(oom_kills(&twin, kit.version) >= 1);

    let guarded = kit.cgroup("guarded");
    guarded.set_limit(limit);
    let out = guarded.run(WORKER, &["--total", &total, "--rate", rate, "--guard"]);
    let report: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("bad report {out:?}: {e}"));
    println!("guarded worker, limit {} MiB: {report}", limit / MIB);
    assert_eq!(oom_kills(&guarded, kit.version), 0, "no OOM kill in the guarded cgroup: {report}");
    assert!(report["shed_runs"].as_u64().unwrap_or(0) >= 1, "the shedder ran: {report}");
    assert!(report["evicted_bytes"].as_u64().unwrap_or(0) > 0, "{report}");
    let requests = 3 * limit / MIB;
    let handled = report["served"].as_u64().unwrap_or(0) + report["rejected"].as_u64().unwrap_or(0);
    assert_eq!(handled, requests, "every request was served or rejected, none crashed the worker: {report}");
}
