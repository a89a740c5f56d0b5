//! Detection scenarios run identically on both real-kernel suites: natively on cgroup v1
//! (`kernel_v1.rs`) and inside the cgroup v2 VM (`kernel_v2.rs`).
//!
//! Each scenario builds real cgroups, puts a real process in them and checks what memguard
//! reports — through the `memguard status --json` binary where the process is memguard itself,
//! and through `Detector::with_pid` for another process.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use memguard::Detector;
use serde_json::Value;

use super::cgroup::{Kit, TestCgroup, Version};

const MIB: u64 = 1 << 20;

fn version_str(kit: &Kit) -> &'static str {
    match kit.version {
        Version::V1 => "v1",
        Version::V2 => "v2",
    }
}

/// `memguard status --json` run inside `cg`.
pub fn status_in(cg: &TestCgroup) -> Value {
    let out = cg.run(env!("CARGO_BIN_EXE_memguard"), &["status", "--json"]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("memguard status --json printed invalid JSON ({e}): {out}"))
}

/// A limit only on the parent; the process's own cgroup has none.
pub fn parent_limit_only(kit: &Kit) {
    let parent = kit.cgroup("parent-only");
    parent.set_limit(256 * MIB);
    let child = parent.child("child");
    let s = status_in(&child);
    assert_eq!(s["cgroup"], version_str(kit), "{s:#}");
    assert_eq!(s["cgroup_path"], child.path().as_str(), "{s:#}");
    assert_eq!(s["limit_bytes"], 256 * MIB, "{s:#}");
    assert_eq!(s["limit_cgroup"], parent.path().as_str(), "{s:#}");
    assert_eq!(s["limit_maybe_hidden"], false, "{s:#}");
}

/// The tightest limit is on an intermediate cgroup.
pub fn tighter_intermediate(kit: &Kit) {
    let top = kit.cgroup("intermediate");
    top.set_limit(512 * MIB);
    let mid = top.child("mid");
    mid.set_limit(128 * MIB);
    let leaf = mid.child("leaf");
    leaf.set_limit(256 * MIB);
    let s = status_in(&leaf);
    assert_eq!(s["limit_bytes"], 128 * MIB, "{s:#}");
    assert_eq!(s["limit_cgroup"], mid.path().as_str(), "{s:#}");
}

/// `memory.high` (v2) or the soft limit (v1) is reported with the cgroup that sets it.
pub fn high_is_reported(kit: &Kit) {
    let parent = kit.cgroup("high");
    parent.set_limit(512 * MIB);
    parent.set_high(300 * MIB);
    let child = parent.child("child");
    let s = status_in(&child);
    assert_eq!(s["high_bytes"], 300 * MIB, "{s:#}");
    assert_eq!(s["high_cgroup"], parent.path().as_str(), "{s:#}");
    assert_eq!(s["limit_bytes"], 512 * MIB, "{s:#}");
}

/// The lowest limit above the test area, read independently of memguard: v1 from
/// `hierarchical_memory_limit`, v2 by reading each ancestor's `memory.max`. `None` when it
/// does not bind (at or above host memory).
fn limit_above_test_area(kit: &Kit) -> Option<u64> {
    let host = std::fs::read_to_string("/proc/meminfo")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())?
        * 1024;
    let lowest = match kit.version {
        Version::V1 => std::fs::read_to_string(kit.base.join("memory.stat"))
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("hierarchical_memory_limit "))
            .and_then(|v| v.trim().parse::<u64>().ok()),
        Version::V2 => kit
            .base
            .ancestors()
            .take_while(|d| d.starts_with(&kit.mount))
            .filter_map(|d| std::fs::read_to_string(d.join("memory.max")).ok())
            .filter_map(|v| v.trim().parse::<u64>().ok())
            .min(),
    };
    lowest.filter(|l| *l < host)
}

/// No limit set by the test: memguard reports whatever binds above the test area (nothing on
/// the machines seen so far), never a made-up value, and nothing hidden.
pub fn no_limit_set(kit: &Kit) {
    let cg = kit.cgroup("no-limit");
    let s = status_in(&cg);
    let expected = limit_above_test_area(kit);
    assert_eq!(s["limit_bytes"].as_u64(), expected, "{s:#}");
    assert_eq!(s["limit_maybe_hidden"], false, "{s:#}");
    assert!(s["host_total_bytes"].as_u64().unwrap_or(0) > 0, "{s:#}");
}

/// A process moved to another cgroup at runtime: detection re-run sees the new place.
pub fn moved_at_runtime(kit: &Kit) {
    let a = kit.cgroup("move-a");
    a.set_limit(100 * MIB);
    let b = kit.cgroup("move-b");
    b.set_limit(200 * MIB);
    let mut sleeper = a.spawn("sleep", &["60"]);
    let pid = sleeper.id();
    wait_until_in(pid, &a);
    let first = Detector::new().with_pid(pid).detect().expect("detect");
    assert_eq!(first.cgroup_path.as_deref(), Some(a.path().as_str()));
    assert_eq!(first.limit_bytes, Some(100 * MIB));
    b.add_pid(pid);
    let second = Detector::new().with_pid(pid).detect().expect("detect");
    assert_eq!(second.cgroup_path.as_deref(), Some(b.path().as_str()));
    assert_eq!(second.limit_bytes, Some(200 * MIB));
    assert_eq!(second.limit_cgroup.as_deref(), Some(b.path().as_str()));
    let _ = sleeper.kill();
    let _ = sleeper.wait();
}

/// The `sh` wrapper joins the cgroup before exec; wait for that (it is quick).
pub fn wait_until_in(pid: u32, cg: &TestCgroup) {
    let want = cg.path();
    for _ in 0..500 {
        let now = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        if now.lines().any(|l| l.ends_with(&format!(":{want}"))) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("process {pid} never joined {want}");
}

/// Usage, working set and the pressure measure are the kernel's, at the process's cgroup and at
/// the limiting one.
pub fn working_set_is_real(kit: &Kit) {
    let parent = kit.cgroup("working-set");
    parent.set_limit(400 * MIB);
    let child = parent.child("worker");
    let mut worker = child
        .command(
            "python3",
            &["-c", "import sys, time\nx = b'x' * (96 << 20)\nprint('ready', flush=True)\ntime.sleep(60)"],
        )
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn python3");
    let mut line = String::new();
    BufReader::new(worker.stdout.take().expect("stdout")).read_line(&mut line).expect("read");
    assert_eq!(line.trim(), "ready");
    let d = Detector::new().with_pid(worker.id());
    let s = memguard::Status::gather(&d, &memguard::watch::Config::default(), false).expect("status");
    let _ = worker.kill();
    let _ = worker.wait();
    let usage = s.usage_bytes.expect("usage");
    let ws = s.working_set_bytes.expect("working set");
    assert!(ws >= 96 * MIB, "working set {ws} < the 96 MiB the worker holds: {s:#?}");
    assert!(ws <= usage && usage <= 400 * MIB, "{s:#?}");
    assert_eq!(s.limits.limit_cgroup.as_deref(), Some(parent.path().as_str()));
    let at_limit = s.limit_working_set_bytes.expect("working set at limit");
    assert!(at_limit >= 96 * MIB, "{s:#?}");
    // 96 MiB of anonymous memory is not reclaimable; the measure is at most the working set's
    // usage and at least what the worker holds.
    let measure = s.limit_unreclaimable_bytes.expect("measure at limit");
    assert!(measure >= 96 * MIB && measure <= s.limit_usage_bytes.expect("usage at limit"), "{s:#?}");
    assert_eq!(s.headroom_bytes, Some(400 * MIB - measure));
}

/// What the JDK's own container detection says (`java -XshowSettings:system -version`),
/// as bytes (`None` = "Unlimited"), or `Err` when java is not runnable here.
fn jdk_limit(cg: &TestCgroup) -> Result<Option<u64>, String> {
    let out = cg
        .command("java", &["-Xmx32m", "-XshowSettings:system", "-version"])
        .output()
        .map_err(|e| format!("java: {e}"))?;
    let text = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    let value = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Memory Limit:"))
        .ok_or_else(|| format!("no `Memory Limit:` line in java's output:\n{text}"))?
        .trim()
        .to_owned();
    if value == "Unlimited" {
        return Ok(None);
    }
    let (num, unit) = value.split_at(value.len() - 1);
    let mult = match unit {
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return Err(format!("unexpected memory limit {value:?}")),
    };
    let n: f64 = num.parse().map_err(|_| format!("unexpected memory limit {value:?}"))?;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(Some((n * f64::from(mult)).round() as u64))
}

/// Side by side with the JDK in the same cgroups. Returns what the JDK said, for the log.
///
/// The JDK must agree where the limit is on the process's own cgroup. For a limit set only on
/// a parent, JDK 17 agrees on v1 (it reads `hierarchical_memory_limit`) but on v2 only from
/// the releases carrying JDK-8322420 (hierarchy walk for cgroup v2); an older JDK reporting
/// "Unlimited" there is the known JDK bug, and memguard's answer is the parent's limit.
pub fn jdk_agrees(kit: &Kit) -> String {
    let own = kit.cgroup("jdk-own");
    own.set_limit(320 * MIB);
    let jdk_own = jdk_limit(&own).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(jdk_own, Some(320 * MIB), "JDK disagrees on a limit set on its own cgroup");
    assert_eq!(status_in(&own)["limit_bytes"], 320 * MIB);

    let parent = kit.cgroup("jdk-parent");
    parent.set_limit(384 * MIB);
    let child = parent.child("child");
    let jdk_parent = jdk_limit(&child).unwrap_or_else(|e| panic!("{e}"));
    let ours = status_in(&child)["limit_bytes"].as_u64();
    assert_eq!(ours, Some(384 * MIB));
    match (kit.version, jdk_parent) {
        (_, Some(v)) => assert_eq!(Some(v), ours, "JDK and memguard disagree on a parent-only limit"),
        (Version::V2, None) => {
            return "JDK reports Unlimited for a parent-only limit on cgroup v2 (JDK-8322420 not in this JDK); \
                    memguard reports the parent's 384 MiB"
                .into()
        }
        (Version::V1, None) => panic!("JDK on cgroup v1 should see the parent limit through hierarchical_memory_limit"),
    }
    format!("JDK agrees: own {jdk_own:?}, parent-only {jdk_parent:?}")
}

/// `Ok` when a `java` launcher runs here.
///
/// # Errors
/// Why not.
pub fn java_runnable() -> Result<(), String> {
    match std::process::Command::new("java").arg("-version").output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!("`java -version` failed: {}", o.status)),
        Err(e) => Err(format!("no java launcher on PATH: {e}")),
    }
}
