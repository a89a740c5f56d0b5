//! Watcher scenarios on the real kernel, identical on cgroup v1 (native) and v2 (VM).
//! Workloads are `memguard alloc` processes placed in throwaway cgroups.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use memguard::watch::{Direction, Event, EventKind};
use memguard::{Level, MemGuard};
use serde_json::Value;

use super::cgroup::{Kit, TestCgroup, Version};
use super::scenarios::wait_until_in;

const MIB: u64 = 1 << 20;
const BIN: &str = env!("CARGO_BIN_EXE_memguard");

fn kill(mut c: Child) {
    let _ = c.kill();
    let _ = c.wait();
}

/// Events until `timeout` or until `stop` returns true for one of them.
fn collect(guard: &MemGuard, timeout: Duration, mut stop: impl FnMut(&Event) -> bool) -> Vec<Event> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if let Some(ev) = guard.next_event(left.min(Duration::from_millis(50))) {
            let done = stop(&ev);
            out.push(ev);
            if done {
                break;
            }
        }
    }
    out
}

/// A process in the guarded cgroup is OOM-killed; the survivor (`memguard watch --json`
/// running in the same cgroup) reports exactly one `OomKill`.
pub fn oom_kill_reported_once(kit: &Kit) {
    let cg = kit.cgroup("oom-kill");
    cg.set_limit(128 * MIB);
    let mut watch = cg.command(BIN, &["watch", "--json"]).stdout(Stdio::piped()).spawn().expect("spawn watch");
    let mut lines = BufReader::new(watch.stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("a first line").expect("read");
    assert!(first.contains("\"started\""), "{first}");
    let hog = cg.command(BIN, &["alloc", "--rate", "4G", "--to", "1G"]).status().expect("run hog");
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&hog), Some(9), "the hog must be OOM-killed: {hog}");
    std::thread::sleep(Duration::from_millis(2500)); // v1 reads the kill counter on its next sample
    let _ = std::process::Command::new("kill").arg("-TERM").arg(watch.id().to_string()).status();
    let status = watch.wait().expect("wait watch");
    assert!(status.success(), "memguard watch must survive and exit cleanly on SIGTERM: {status}");
    let events: Vec<Value> = lines.map_while(Result::ok).filter_map(|l| serde_json::from_str(&l).ok()).collect();
    let kills: Vec<&Value> = events.iter().filter(|e| e["kind"] == "oom_kill").collect();
    assert_eq!(kills.len(), 1, "exactly one OomKill event: {events:#?}");
    assert_eq!(kills[0]["delta"], 1, "{events:#?}");
    assert_eq!(kills[0]["level"], "critical", "{events:#?}");
}

/// What one allocation ramp saw: the working-set fraction at the first Warning (or higher)
/// event, and the achieved rate.
#[derive(Debug, Clone, Copy)]
pub struct RampResult {
    /// Working set / limit at the first event at Warning or above.
    pub first_warning_fraction: f64,
    /// Bytes per second the ramp reached.
    pub rate: f64,
}

/// A ramp at `rate` to 98% of `limit` in a fresh cgroup, watched with no writable file: no PSI
/// triggers, no cgroup notifications (v2 has no usage notification anyway): the adaptive
/// sampler alone must report Warning before 95% of the limit.
pub fn ramp_once(kit: &Kit, limit: u64, rate: &str) -> RampResult {
    let cg = kit.cgroup("ramp");
    cg.set_limit(limit);
    let to = (limit * 98 / 100).to_string();
    let mut child = cg
        .command(BIN, &["alloc", "--rate", rate, "--to", &to, "--after-ms", "400"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn alloc");
    wait_until_in(child.id(), &cg);
    let guard = MemGuard::builder().pid(child.id()).psi(false).cgroup_events(false).start().expect("start guard");
    assert_eq!(guard.limits().limit_bytes, Some(limit), "{:#?}", guard.limits());
    let events = collect(&guard, Duration::from_secs(60), |e| e.level >= Level::Warning);
    let warn = events.iter().find(|e| e.level >= Level::Warning).unwrap_or_else(|| panic!("no Warning: {events:#?}"));
    #[allow(clippy::cast_precision_loss)]
    let fraction = warn.working_set_bytes.unwrap_or(0) as f64 / limit as f64;
    let mut line = String::new();
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let _ = out.read_line(&mut line);
    let report: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
    kill(child);
    RampResult { first_warning_fraction: fraction, rate: report["rate_bytes_per_sec"].as_f64().unwrap_or(0.0) }
}

/// `runs` ramps: every one must be reported at Warning before 95% of `memory.max`.
pub fn ramp_warns_before_95_percent(kit: &Kit, runs: usize, limit: u64) {
    let mut results = Vec::new();
    for _ in 0..runs {
        results.push(ramp_once(kit, limit, "1G"));
    }
    let worst = results.iter().map(|r| r.first_warning_fraction).fold(0.0, f64::max);
    let rates: Vec<f64> = results.iter().map(|r| r.rate / f64::from(1u32 << 20)).collect();
    let min_rate = rates.iter().copied().fold(f64::INFINITY, f64::min);
    println!(
        "ramp: {runs} runs to 98% of {} MiB at 1 GiB/s requested (achieved {min_rate:.0}..{:.0} MiB/s): \
         first Warning at {:.1}% worst, fractions {:?}",
        limit >> 20,
        rates.iter().copied().fold(0.0, f64::max),
        worst * 100.0,
        results.iter().map(|r| (r.first_warning_fraction * 1000.0).round() / 10.0).collect::<Vec<_>>()
    );
    assert!(worst < 0.95, "a ramp was first reported at Warning at {:.1}% of the limit", worst * 100.0);
}

fn thread_cpu_ticks(tid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap_or_default();
    // Fields after the `(comm)`: state is field 3; utime and stime are fields 14 and 15.
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

/// The guarded cgroup is removed under a running watcher: one `CgroupRemoved`, no busy loop
/// (the reactor thread's CPU over the next second), and a prompt, clean close.
pub fn cgroup_removed_under_watcher(kit: &Kit) {
    let cg = kit.cgroup("removed");
    cg.set_limit(256 * MIB);
    let sleeper = cg.spawn("sleep", &["600"]);
    wait_until_in(sleeper.id(), &cg);
    let path = cg.path();
    let guard = MemGuard::builder().pid(sleeper.id()).start().expect("start guard");
    assert_eq!(guard.limits().limit_cgroup.as_deref(), Some(path.as_str()));
    kill(sleeper);
    drop(cg); // rmdir
    let events = collect(&guard, Duration::from_secs(5), |e| matches!(e.kind, EventKind::CgroupRemoved { .. }));
    let removed: Vec<&Event> = events.iter().filter(|e| matches!(e.kind, EventKind::CgroupRemoved { .. })).collect();
    assert_eq!(removed.len(), 1, "{events:#?}");
    assert_eq!(removed[0].kind, EventKind::CgroupRemoved { cgroup: path });
    let tid = guard.reactor_thread_id();
    let before = thread_cpu_ticks(tid);
    std::thread::sleep(Duration::from_secs(1));
    let used = thread_cpu_ticks(tid) - before;
    assert!(used <= 5, "reactor used {used} ticks (1/100 s) in the second after removal: busy loop");
    let more = collect(&guard, Duration::from_millis(300), |_| false);
    assert!(
        !more.iter().any(|e| matches!(e.kind, EventKind::CgroupRemoved { .. })),
        "CgroupRemoved repeated: {more:#?}"
    );
    let t = Instant::now();
    guard.close();
    assert!(t.elapsed() < Duration::from_secs(1), "close took {:?}", t.elapsed());
}

/// v1 usage thresholds fire in both directions: up while a workload grows past the warning
/// threshold, down when it exits.
pub fn v1_threshold_fires_both_ways(kit: &Kit) {
    if kit.version != Version::V1 {
        return;
    }
    let cg = kit.cgroup("threshold");
    cg.set_limit(256 * MIB);
    let keeper = cg.spawn("sleep", &["600"]);
    wait_until_in(keeper.id(), &cg);
    let guard = MemGuard::builder().pid(keeper.id()).psi(false).start().expect("start guard");
    let sources = guard.sources();
    assert!(sources.iter().any(|s| s.name == "v1-threshold-warn" && s.armed), "{sources:#?}");
    let hog = cg.command(BIN, &["alloc", "--rate", "1G", "--to", "220M"]).stdout(Stdio::null()).spawn().expect("alloc");
    let up = collect(&guard, Duration::from_secs(20), |e| {
        matches!(e.kind, EventKind::Threshold { direction: Direction::Up, .. })
    });
    assert!(up.iter().any(|e| matches!(e.kind, EventKind::Threshold { direction: Direction::Up, .. })), "{up:#?}");
    kill(hog);
    let down = collect(&guard, Duration::from_secs(20), |e| {
        matches!(e.kind, EventKind::Threshold { direction: Direction::Down, .. })
    });
    assert!(
        down.iter().any(|e| matches!(e.kind, EventKind::Threshold { direction: Direction::Down, .. })),
        "{down:#?}"
    );
    kill(keeper);
}

fn source<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["sources"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no source {name} in {status:#}"))
}

/// Without `CAP_SYS_RESOURCE`, PSI triggers still arm on the cgroup's pressure file, with a
/// window that is a multiple of 2 s.
pub fn psi_arms_without_cap_sys_resource(kit: &Kit) {
    let cg = kit.cgroup("psi-unpriv");
    cg.set_limit(256 * MIB);
    let out = cg.run(
        "setpriv",
        &["--bounding-set=-sys_resource", "--inh-caps=-sys_resource", BIN, "status", "--probe", "--json"],
    );
    let s: Value = serde_json::from_str(&out).expect("json");
    let some = source(&s, "psi-cgroup-some");
    assert_eq!(some["armed"], true, "{s:#}");
    let detail = some["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(" 2000000\""), "unprivileged triggers need a 2 s window: {detail}");
}

/// A read-only cgroupfs (the usual container mount): detection still works, memory.events
/// (read-only) still arms on v2, writes (PSI triggers, v1 registrations) are reported as not
/// armed with the kernel's reason, and the sampler remains.
pub fn read_only_cgroupfs(kit: &Kit) {
    let cg = kit.cgroup("read-only");
    cg.set_limit(200 * MIB);
    let mount = kit.mount.display().to_string();
    let script = format!("mount -o remount,bind,ro {mount} && exec {BIN} status --probe --json");
    let out = cg.run("unshare", &["--mount", "--propagation", "private", "sh", "-c", &script]);
    let s: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(s["limit_bytes"], 200 * MIB, "{s:#}");
    assert_eq!(source(&s, "sampler")["armed"], true);
    match kit.version {
        Version::V1 => {
            let t = source(&s, "v1-threshold-warn");
            assert_eq!(t["armed"], false, "{s:#}");
            assert!(t["detail"].as_str().unwrap_or_default().contains("Read-only"), "{t}");
        }
        Version::V2 => {
            assert_eq!(source(&s, "v2-memory-events")["armed"], true, "{s:#}");
            let p = source(&s, "psi-cgroup-some");
            assert_eq!(p["armed"], false, "{s:#}");
            assert!(p["detail"].as_str().unwrap_or_default().contains("Read-only"), "{p}");
        }
    }
}

/// `memguard watch` on a cgroup under `memory.high` (v2) shows `High` events and Warning.
pub fn v2_memory_high_events(kit: &Kit) {
    if kit.version != Version::V2 {
        return;
    }
    let cg = kit.cgroup("high-events");
    cg.set_limit(256 * MIB);
    cg.set_high(64 * MIB);
    let keeper = cg.spawn("sleep", &["600"]);
    wait_until_in(keeper.id(), &cg);
    let guard = MemGuard::builder().pid(keeper.id()).start().expect("start guard");
    let hog = cg
        .command(BIN, &["alloc", "--rate", "512M", "--to", "150M", "--hold", "2"])
        .stdout(Stdio::null())
        .spawn()
        .expect("alloc");
    let events = collect(&guard, Duration::from_secs(30), |e| matches!(e.kind, EventKind::High { .. }));
    let high =
        events.iter().find(|e| matches!(e.kind, EventKind::High { .. })).unwrap_or_else(|| panic!("{events:#?}"));
    assert!(high.level >= Level::Warning, "{high:#?}");
    kill(hog);
    kill(keeper);
    drop::<TestCgroup>(cg);
}
