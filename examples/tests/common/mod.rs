//! The shedding scenario shared by the native cgroup v1 and the VM cgroup v2 suites.
#![allow(dead_code)]

#[path = "../../../memguard/tests/support/cgroup.rs"]
pub mod cgroup;
#[path = "../../../memguard/tests/support/confine.rs"]
pub mod confine;
#[path = "../../../memguard/tests/support/process.rs"]
pub mod process;

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
    worker_survives_where_unguarded_twin_dies(kit, limit, rate, None);
}

/// Issue #14: the same, with the guarded worker run as a pod runs it (uid 65534, no capability,
/// read-only cgroupfs, nothing delegated): what remains armed (`memory.events` on v2, PSI on
/// `/proc/pressure/memory`, the sampler) is enough to shed in time.
pub fn pod_worker_survives_where_unguarded_twin_dies(kit: &Kit, limit: u64, rate: &str) {
    worker_survives_where_unguarded_twin_dies(kit, limit, rate, Some(confine::Confinement::pod()));
}

fn worker_survives_where_unguarded_twin_dies(
    kit: &Kit,
    limit: u64,
    rate: &str,
    confined: Option<confine::Confinement>,
) {
    let total = format!("{}M", 3 * limit / MIB);
    let twin = kit.cgroup("unguarded");
    twin.set_limit(limit);
    let status = twin.command(WORKER, &["--total", &total, "--rate", rate]).status().expect("run unguarded worker");
    assert_eq!(status.signal(), Some(9), "the unguarded worker must be OOM-killed: {status}");
    assert!(oom_kills(&twin, kit.version) >= 1);

    let guarded = kit.cgroup("guarded");
    guarded.set_limit(limit);
    let args = ["--total", &total, "--rate", rate, "--guard"];
    let out = match confined {
        None => guarded.run(WORKER, &args),
        Some(c) => {
            let (program, args) = c.wrap(kit.version, WORKER, &args);
            guarded.run(&program, &args.iter().map(String::as_str).collect::<Vec<_>>())
        }
    };
    let report: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("bad report {out:?}: {e}"));
    let how = confined.map_or_else(|| "guarded worker".to_owned(), |c| format!("guarded worker as {}", c.label()));
    println!("{how}, limit {} MiB: {report}", limit / MIB);
    assert_eq!(oom_kills(&guarded, kit.version), 0, "no OOM kill in the guarded cgroup: {report}");
    assert!(report["shed_runs"].as_u64().unwrap_or(0) >= 1, "the shedder ran: {report}");
    assert!(report["evicted_bytes"].as_u64().unwrap_or(0) > 0, "{report}");
    let requests = 3 * limit / MIB;
    let handled = report["served"].as_u64().unwrap_or(0) + report["rejected"].as_u64().unwrap_or(0);
    assert_eq!(handled, requests, "every request was served or rejected, none crashed the worker: {report}");
}

/// Issue #14, "writes nothing it should not": the guarded worker's whole run (detection, every
/// source armed, level changes up to the limit and back, shedding, reservations, close) under
/// `strace -f`, recording every file opened for writing and every call that changes the file
/// system. The list must be exactly the PSI trigger files (`memory.pressure`,
/// `/proc/pressure/memory`) and v1's `cgroup.event_control` — nothing else, ever.
pub fn writes_only_trigger_files(kit: &Kit, limit: u64, rate: &str) {
    let Some(strace) = ["/usr/bin/strace", "/bin/strace"].into_iter().find(|p| std::path::Path::new(p).is_file())
    else {
        return unavailable("writes_only_trigger_files", "strace is not installed (apt-get install strace)");
    };
    let cg = kit.cgroup("writes");
    cg.set_limit(limit);
    let trace = std::env::temp_dir().join(format!("memguard-writes-{}.strace", std::process::id()));
    let trace_arg = trace.to_string_lossy().into_owned();
    let total = format!("{}M", 3 * limit / MIB);
    // %file: every call taking a path; %desc would add reads. -qq: no attach/exit chatter.
    let out = cg.run(
        strace,
        &[
            "-f",
            "-qq",
            "-e",
            "trace=%file",
            "-e",
            "signal=none",
            "-o",
            &trace_arg,
            WORKER,
            "--total",
            &total,
            "--rate",
            rate,
            "--guard",
        ],
    );
    let text = std::fs::read_to_string(&trace).unwrap_or_else(|e| panic!("{}: {e}", trace.display()));
    let _ = std::fs::remove_file(&trace);
    let report: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("bad report {out:?}: {e}"));
    assert!(report["shed_runs"].as_u64().unwrap_or(0) >= 1, "the run must exercise shedding: {report}");
    let written = written_paths(&text);
    let allowed = |p: &str| {
        p.ends_with("/memory.pressure") || p == "/proc/pressure/memory" || p.ends_with("/cgroup.event_control")
    };
    let bad: Vec<&String> = written.iter().filter(|p| !allowed(p)).collect();
    println!("{:?}: files written during a full guarded run: {written:?}", kit.version);
    assert!(bad.is_empty(), "memguard wrote to (or changed) files it must not touch: {bad:?}");
    match kit.version {
        Version::V1 => assert!(written.iter().any(|p| p.ends_with("/cgroup.event_control")), "{written:?}"),
        Version::V2 => assert!(written.iter().any(|p| p.ends_with("/memory.pressure")), "{written:?}"),
    }
}

/// The paths an strace `-e trace=%file` log shows opened for writing or changed (created,
/// removed, renamed, truncated, re-permissioned), sorted and deduplicated; failed calls count
/// too (an attempt is a write).
fn written_paths(strace: &str) -> Vec<String> {
    const CHANGING: &[&str] = &[
        "creat",
        "truncate",
        "unlink",
        "unlinkat",
        "rename",
        "renameat",
        "renameat2",
        "mkdir",
        "mkdirat",
        "rmdir",
        "link",
        "linkat",
        "symlink",
        "symlinkat",
        "chmod",
        "fchmodat",
        "chown",
        "lchown",
        "fchownat",
        "mknod",
        "mknodat",
        "utimensat",
        "utimes",
        "setxattr",
        "lsetxattr",
        "removexattr",
        "lremovexattr",
    ];
    let mut out: Vec<String> = Vec::new();
    for line in strace.lines() {
        // `<pid> <call>(<args>) = <result>`; the first quoted argument is the path.
        let rest = line.split_once(' ').map_or(line, |(_, r)| r).trim_start();
        let Some((call, args)) = rest.split_once('(') else { continue };
        let Some(path) = args.split('"').nth(1) else { continue };
        let opens_for_write = matches!(call, "open" | "openat" | "openat2")
            && ["O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND"].iter().any(|f| args.contains(f));
        if opens_for_write || CHANGING.contains(&call) {
            out.push(path.to_owned());
        }
    }
    out.sort();
    out.dedup();
    out
}

#[test]
fn strace_lines_are_classified() {
    let log = r#"12 openat(AT_FDCWD, "/etc/ld.so.cache", O_RDONLY|O_CLOEXEC) = 3
12 openat(AT_FDCWD, "/sys/fs/cgroup/memory/x/cgroup.event_control", O_WRONLY|O_CLOEXEC) = 5
13 openat(AT_FDCWD, "/sys/fs/cgroup/unified/memory.pressure", O_RDWR|O_NONBLOCK|O_CLOEXEC) = 6
13 openat(AT_FDCWD, "/tmp/oops", O_WRONLY|O_CREAT|O_TRUNC, 0644) = -1 EACCES (Permission denied)
13 unlink("/tmp/x") = 0
13 statx(AT_FDCWD, "/sys/fs/cgroup", AT_STATX_SYNC_AS_STAT, STATX_ALL, {}) = 0"#;
    assert_eq!(
        written_paths(log),
        [
            "/sys/fs/cgroup/memory/x/cgroup.event_control",
            "/sys/fs/cgroup/unified/memory.pressure",
            "/tmp/oops",
            "/tmp/x"
        ]
    );
}
