//! Watcher scenarios on the real kernel, identical on cgroup v1 (native) and v2 (VM).
//! Workloads are `memguard alloc` processes placed in throwaway cgroups.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use memguard::watch::{Direction, Event, EventKind};
use memguard::{Level, MemGuard};
use serde_json::Value;

use super::cgroup::{Kit, TestCgroup, Version};
use super::files::{drop_cached, DiskDir};
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
    // The level is the measure's after the kill (the victim's memory is gone by then): not asserted.
    println!("OomKill reported at level {}", kills[0]["level"]);
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

/// What fills the cgroup before a ramp, and which sources the guard arms.
#[derive(Debug, Clone, Copy)]
pub struct RampSetup<'a> {
    /// Read this file (larger than the limit) inside the cgroup first, so page cache fills it.
    pub cache: Option<&'a std::path::Path>,
    /// Arm the kernel sources (v1 usage thresholds, PSI, `memory.events`); else the sampler alone.
    pub kernel_sources: bool,
}

/// A ramp at `rate` to 98% of `limit` in a fresh cgroup: the level must reach Warning before
/// 95% of the limit. Without kernel sources only the adaptive sampler can see it (v2 has no
/// usage notification anyway); with page cache filling the cgroup first, the v1 usage thresholds
/// (which count the cache) have long fired and cannot see the anonymous ramp below them.
pub fn ramp_once(kit: &Kit, limit: u64, rate: &str, setup: RampSetup<'_>) -> RampResult {
    let cg = kit.cgroup("ramp");
    cg.set_limit(limit);
    if let Some(file) = setup.cache {
        drop_cached(file);
        let read = format!("cat {} > /dev/null", file.display());
        cg.run("sh", &["-c", &read]);
    }
    let to = (limit * 98 / 100).to_string();
    let mut child = cg
        .command(BIN, &["alloc", "--rate", rate, "--to", &to, "--after-ms", "400"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn alloc");
    wait_until_in(child.id(), &cg);
    let guard = MemGuard::builder()
        .pid(child.id())
        .psi(setup.kernel_sources)
        .cgroup_events(setup.kernel_sources)
        .start()
        .expect("start guard");
    assert_eq!(guard.limits().limit_bytes, Some(limit), "{:#?}", guard.limits());
    if setup.cache.is_some() {
        let s = guard.snapshot();
        assert!(
            s.usage_bytes > limit * 8 / 10 && s.unreclaimable_bytes < limit / 4,
            "the cgroup should be full of page cache before the ramp: {s:#?}"
        );
    }
    let events = collect(&guard, Duration::from_secs(60), |e| e.level >= Level::Warning);
    let warn = events.iter().find(|e| e.level >= Level::Warning).unwrap_or_else(|| panic!("no Warning: {events:#?}"));
    #[allow(clippy::cast_precision_loss)]
    let fraction = warn.unreclaimable_bytes.unwrap_or(0) as f64 / limit as f64;
    let mut line = String::new();
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let _ = out.read_line(&mut line);
    let report: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
    kill(child);
    RampResult { first_warning_fraction: fraction, rate: report["rate_bytes_per_sec"].as_f64().unwrap_or(0.0) }
}

/// `runs` ramps: every one must be reported at Warning before 95% of the limit.
pub fn ramp_warns_before_95_percent(kit: &Kit, runs: usize, limit: u64) {
    ramps(kit, runs, limit, RampSetup { cache: None, kernel_sources: false }, "sampler only");
}

/// The same with page cache filling the cgroup first and every kernel source armed (issue #9:
/// the v1 thresholds watch usage, cache included, so the sampler must not relax on them).
pub fn ramp_with_page_cache_warns_before_95_percent(kit: &Kit, runs: usize, limit: u64) {
    let dir = DiskDir::new("ramp-cache", limit * 5 / 4 + (16 << 20)).unwrap_or_else(|e| panic!("{e}"));
    let file = dir.file("cache.dat", limit * 5 / 4);
    ramps(
        kit,
        runs,
        limit,
        RampSetup { cache: Some(&file), kernel_sources: true },
        "page cache first, kernel sources armed",
    );
}

fn ramps(kit: &Kit, runs: usize, limit: u64, setup: RampSetup<'_>, what: &str) {
    let mut results = Vec::new();
    for _ in 0..runs {
        results.push(ramp_once(kit, limit, "1G", setup));
    }
    let worst = results.iter().map(|r| r.first_warning_fraction).fold(0.0, f64::max);
    let rates: Vec<f64> = results.iter().map(|r| r.rate / f64::from(1u32 << 20)).collect();
    let min_rate = rates.iter().copied().fold(f64::INFINITY, f64::min);
    println!(
        "ramp ({what}): {runs} runs to 98% of {} MiB at 1 GiB/s requested (achieved {min_rate:.0}..{:.0} MiB/s): \
         first Warning at {:.1}% worst, fractions {:?}",
        limit >> 20,
        rates.iter().copied().fold(0.0, f64::max),
        worst * 100.0,
        results.iter().map(|r| (r.first_warning_fraction * 1000.0).round() / 10.0).collect::<Vec<_>>()
    );
    assert!(worst < 0.95, "a ramp was first reported at Warning at {:.1}% of the limit", worst * 100.0);
}

/// Issue #9: a service that reads a file larger than its cgroup, again and again, fills the
/// cgroup with page cache; the kernel reclaims it without trouble (v2 reports `max` events and
/// PSI stalls all the same). The level must stay Normal, the budget must keep granting and no
/// shedder may run. Then the same service's anonymous memory grows: it must be warned before
/// 95% of the limit.
pub fn page_cache_is_not_pressure(kit: &Kit) {
    const LIMIT: u64 = 128 * MIB;
    let dir = DiskDir::new("page-cache", 420 * MIB).unwrap_or_else(|e| panic!("{e}"));
    let file = dir.file("data", 400 * MIB);
    drop_cached(&file);
    let cg = kit.cgroup("page-cache");
    cg.set_limit(LIMIT);
    let keeper = cg.spawn("sleep", &["600"]);
    wait_until_in(keeper.id(), &cg);
    let guard = MemGuard::builder().pid(keeper.id()).start().expect("start guard");
    let sheds = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = std::sync::Arc::clone(&sheds);
    let _shedder = guard.register_shedder("must-not-run", 0, move |_| {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        0
    });
    let read = format!("for i in 1 2 3; do cat {} > /dev/null; done", file.display());
    let mut reader = cg.command("sh", &["-c", &read]).spawn().expect("spawn reader");
    let (mut refused, mut granted, mut max_level, mut peak_usage) = (0u64, 0u64, Level::Normal, 0u64);
    let started = Instant::now();
    loop {
        if let Some(status) = reader.try_wait().expect("wait reader") {
            assert!(status.success(), "reader failed: {status}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(300), "the reader took too long");
        // A request-sized reservation every 25 ms: released bytes count until the next sample
        // (the budget's settling), so this must not outpace the sampler by a whole soft limit.
        match guard.try_reserve(4 * MIB) {
            Ok(r) => {
                granted += 1;
                drop(r);
            }
            Err(e) => {
                refused += 1;
                eprintln!("refused while reading: {e}");
            }
        }
        let s = guard.snapshot();
        max_level = max_level.max(s.level);
        peak_usage = peak_usage.max(s.usage_bytes);
        std::thread::sleep(Duration::from_millis(25));
    }
    let s = guard.snapshot();
    let mut events = Vec::new();
    while let Some(e) = guard.next_event(Duration::ZERO) {
        events.push(e);
    }
    let names: std::collections::BTreeMap<&str, usize> = events.iter().fold(Default::default(), |mut m, e| {
        *m.entry(e.kind.name()).or_insert(0) += 1;
        m
    });
    println!(
        "{:?} page cache: 3 x 400 MiB read through a 128 MiB cgroup in {:.1} s; usage peaked at {} MiB, \
         measure now {} MiB; kernel counters {:?}; events {names:?}; budget granted {granted} refused {refused}; \
         shed runs {}",
        kit.version,
        started.elapsed().as_secs_f64(),
        peak_usage >> 20,
        s.unreclaimable_bytes >> 20,
        s.kernel_counters,
        sheds.load(std::sync::atomic::Ordering::SeqCst),
    );
    assert!(peak_usage >= LIMIT * 9 / 10, "the page cache should have filled the cgroup (peak {peak_usage})");
    if kit.version == Version::V2 {
        assert!(s.kernel_counters.max > 0, "the kernel should have hit memory.max: {:?}", s.kernel_counters);
    }
    assert_eq!(max_level, Level::Normal, "page cache is not pressure: {events:#?}");
    assert!(!events.iter().any(|e| matches!(e.kind, EventKind::LevelChanged { .. })), "{events:#?}");
    assert_eq!(refused, 0, "the budget must keep granting");
    assert!(granted > 0);
    assert_eq!(sheds.load(std::sync::atomic::Ordering::SeqCst), 0, "no shedder may run");
    assert!(guard.last_shed().is_none());

    // The same service's anonymous memory grows now (page cache still filling the rest).
    let mut reader = cg.command("sh", &["-c", &read]).spawn().expect("spawn reader");
    let hog = cg
        .command(BIN, &["alloc", "--rate", "256M", "--to", &(LIMIT * 97 / 100).to_string(), "--hold", "30"])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn alloc");
    let events = collect(&guard, Duration::from_secs(60), |e| e.level >= Level::Warning);
    let warn = events.iter().find(|e| e.level >= Level::Warning).unwrap_or_else(|| panic!("no Warning: {events:#?}"));
    #[allow(clippy::cast_precision_loss)]
    let fraction = warn.unreclaimable_bytes.unwrap_or(u64::MAX) as f64 / LIMIT as f64;
    println!(
        "{:?} page cache, then anonymous growth: first Warning at {:.1}% of the limit",
        kit.version,
        fraction * 100.0
    );
    assert!(fraction < 0.95, "warned too late: {warn:#?}");
    kill(hog);
    let _ = reader.kill();
    let _ = reader.wait();
    kill(keeper);
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
    assert!(matches!(&removed[0].kind, EventKind::CgroupRemoved { cgroup, .. } if *cgroup == path), "{removed:#?}");
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
    assert_eq!(kit.version, Version::V1, "a cgroup v1 scenario");
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

/// A cgroup over its `memory.high` (v2) reports `High` events; they raise the level only when
/// the measure confirms them.
pub fn v2_memory_high_events(kit: &Kit) {
    assert_eq!(kit.version, Version::V2, "a cgroup v2 scenario");
    let cg = kit.cgroup("high-events");
    cg.set_limit(256 * MIB);
    cg.set_high(64 * MIB);
    let keeper = cg.spawn("sleep", &["600"]);
    wait_until_in(keeper.id(), &cg);
    // Fraction thresholds only: the point is what a `memory.high` event does to the level.
    let guard =
        MemGuard::builder().pid(keeper.id()).horizon(Duration::ZERO, Duration::ZERO).start().expect("start guard");
    let hog = cg
        .command(BIN, &["alloc", "--rate", "512M", "--to", "150M", "--hold", "2"])
        .stdout(Stdio::null())
        .spawn()
        .expect("alloc");
    let events = collect(&guard, Duration::from_secs(30), |e| matches!(e.kind, EventKind::High { .. }));
    let high =
        events.iter().find(|e| matches!(e.kind, EventKind::High { .. })).unwrap_or_else(|| panic!("{events:#?}"));
    // memory.high (64 MiB) is a quarter of memory.max (256 MiB): the kernel throttles and reclaims
    // there, but the OOM killer is far. The event is reported; it raises the level only when the
    // measure confirms it (issue #9), which it does not at 25% of the limit.
    #[allow(clippy::cast_precision_loss)]
    let fraction = high.unreclaimable_bytes.unwrap_or(0) as f64 / (256 * MIB) as f64;
    assert!(fraction < 0.75 && high.level == Level::Normal, "{high:#?}");
    kill(hog);
    kill(keeper);
    drop::<TestCgroup>(cg);
}

/// Issue #9: a v1 limit set above the visible cgroup root (a private cgroup namespace with the
/// memory hierarchy mounted inside it, as container runtimes do) is found through
/// `hierarchical_memory_limit`, and the watcher must watch it: sample the visible root against
/// that limit and arm the usage thresholds there, not fall back to host memory.
pub fn hidden_v1_limit_is_watched(kit: &Kit) {
    assert_eq!(kit.version, Version::V1, "a cgroup v1 scenario");
    const LIMIT: u64 = 128 * MIB;
    let parent = kit.cgroup("hidden-limit");
    parent.set_limit(LIMIT);
    let child = parent.child("container");
    let script = format!(
        "mount -t tmpfs tmpfs /sys/fs/cgroup && mkdir /sys/fs/cgroup/memory \
         && mount -t cgroup -o memory memory /sys/fs/cgroup/memory || exit 97
         {BIN} watch --json & w=$!
         sleep 0.5
         {BIN} alloc --rate 256M --to {} --hold 1 > /dev/null
         kill -TERM $w; wait $w",
        LIMIT * 97 / 100
    );
    let out = child.run("unshare", &["--cgroup", "--mount", "--propagation", "private", "sh", "-c", &script]);
    let lines: Vec<Value> = out.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let started = lines.first().unwrap_or_else(|| panic!("no output: {out}"));
    assert_eq!(started["kind"], "started", "{out}");
    assert_eq!(started["limit_bytes"], LIMIT, "the limit above the visible root must be watched: {started:#}");
    let armed: Vec<&str> = started["sources"]
        .as_array()
        .map(|a| a.iter().filter(|s| s["armed"] == true).filter_map(|s| s["name"].as_str()).collect())
        .unwrap_or_default();
    assert!(armed.contains(&"v1-threshold-warn"), "usage thresholds armed at the visible root: {armed:?}");
    let warn = lines
        .iter()
        .find(|e| e["kind"] == "level_changed" && e["to"] != "normal")
        .unwrap_or_else(|| panic!("no Warning against the hidden limit: {out}"));
    assert_eq!(warn["limit_bytes"], LIMIT, "{warn:#}");
    #[allow(clippy::cast_precision_loss)]
    let fraction = warn["unreclaimable_bytes"].as_u64().unwrap_or(u64::MAX) as f64 / LIMIT as f64;
    println!("hidden v1 limit: watched {armed:?}; first Warning at {:.1}% of the 128 MiB limit", fraction * 100.0);
    assert!(fraction < 0.95, "{warn:#}");
    drop(child);
}

/// Issue #9: the operator's override (`MEMGUARD_LIMIT` / `Builder::limit_override`, the
/// Kubernetes Downward API's `limits.memory`) applies to the watcher, not only to `status`: the
/// level is judged against the lower of the detected and the overridden limit.
pub fn override_applies_to_the_watcher(kit: &Kit) {
    const LIMIT: u64 = 512 * MIB;
    const OVERRIDE: u64 = 128 * MIB;
    let cg = kit.cgroup("override");
    cg.set_limit(LIMIT);
    let keeper = cg.spawn("sleep", &["600"]);
    wait_until_in(keeper.id(), &cg);
    // Without prediction, so that the first Warning tells which limit the thresholds apply to.
    let guard = MemGuard::builder()
        .pid(keeper.id())
        .limit_override(OVERRIDE)
        .horizon(Duration::ZERO, Duration::ZERO)
        .start()
        .expect("start guard");
    let snap = guard.snapshot();
    assert_eq!(snap.limit_bytes, Some(OVERRIDE), "{snap:#?}");
    assert_eq!(snap.limit_source, memguard::watch::LimitSource::Override);
    assert_eq!(guard.limits().detected_limit_bytes, Some(LIMIT));
    let hog = cg
        .command(BIN, &["alloc", "--rate", "256M", "--to", &(OVERRIDE * 95 / 100).to_string(), "--hold", "30"])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn alloc");
    let events = collect(&guard, Duration::from_secs(60), |e| e.level >= Level::Warning);
    let warn = events.iter().find(|e| e.level >= Level::Warning).unwrap_or_else(|| panic!("no Warning: {events:#?}"));
    assert_eq!(warn.limit_bytes, Some(OVERRIDE), "{warn:#?}");
    #[allow(clippy::cast_precision_loss)]
    let fraction = warn.unreclaimable_bytes.unwrap_or(u64::MAX) as f64 / OVERRIDE as f64;
    println!(
        "override {} MiB under a {} MiB cgroup limit: first Warning at {:.1}%",
        OVERRIDE >> 20,
        LIMIT >> 20,
        fraction * 100.0
    );
    assert!((0.75..0.95).contains(&fraction), "{warn:#?}");
    kill(hog);
    kill(keeper);
}

/// Issue #14, an fd limit too low to arm every source: `memguard watch` under
/// a soft `RLIMIT_NOFILE` of 10 lists every source it could not arm with the reason, the sampler
/// included (its files could not be opened: nothing is measured rather than a wrong 0); once
/// the limit is raised at runtime (`prlimit --pid`), the sampler opens its files on its next
/// attempt and a real allocation to 90% is reported at Critical.
pub fn fd_limit_too_low_is_reported_and_recovers(kit: &Kit) {
    let cg = kit.cgroup("nofile");
    cg.set_limit(128 * MIB);
    let mut watch = cg
        .command("prlimit", &["--nofile=10:1024", BIN, "watch", "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn prlimit memguard watch");
    let mut lines = BufReader::new(watch.stdout.take().expect("stdout")).lines();
    let first: Value = serde_json::from_str(&lines.next().expect("a first line").expect("read")).expect("json");
    let sources = first["sources"].as_array().cloned().unwrap_or_default();
    let sampler = sources.iter().find(|s| s["name"] == "sampler").cloned().unwrap_or_default();
    let stop = |mut w: Child| {
        let _ = std::process::Command::new("kill").arg("-TERM").arg(w.id().to_string()).status();
        let _ = w.wait();
    };
    if sampler["armed"] != false {
        stop(watch);
        panic!("with 10 fds the sampler's files cannot all be opened: {sampler}");
    }
    assert!(sampler["detail"].as_str().unwrap_or("").contains("Too many open files"), "{sampler}");
    let unarmed_with_reason = sources.iter().filter(|s| s["armed"] == false && s["detail"].is_string()).count();
    assert_eq!(unarmed_with_reason, sources.iter().filter(|s| s["armed"] == false).count(), "{sources:#?}");
    let raised = std::process::Command::new("prlimit")
        .args(["--pid", &watch.id().to_string(), "--nofile=1024:"])
        .status()
        .expect("prlimit --pid");
    assert!(raised.success());
    let mut hog = cg
        .command(BIN, &["alloc", "--rate", "256M", "--to", "90%", "--hold", "3"])
        .env("MEMGUARD_LIMIT", (128 * MIB).to_string())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn alloc");
    let started = Instant::now();
    let mut critical = None;
    for line in lines.by_ref() {
        let Ok(line) = line else { break };
        let Ok(e) = serde_json::from_str::<Value>(&line) else { continue };
        if e["kind"] == "level_changed" && e["to"] == "critical" {
            critical = Some(e);
            break;
        }
        if started.elapsed() > Duration::from_secs(10) {
            break;
        }
    }
    let _ = hog.kill();
    let _ = hog.wait();
    stop(watch);
    let e = critical.expect("after the fd limit was raised, the allocation to 90% is reported at Critical");
    println!("recovered: {e}");
}
