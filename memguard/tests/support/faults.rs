//! Runtime faults on the real kernel (issue #14), identical on cgroup v1 (native) and v2 (VM):
//! the limit raised and lowered under a running guard, the guarded process moved to another
//! cgroup. Each must show up as events, re-armed sources, a budget that follows, and a guard
//! that still warns at the new limit. (The cgroup removed under the guard, an fd limit too low
//! and a file that starts failing have their own tests: `watch.rs`, `fixtures.rs`; a thread
//! that cannot be spawned: `thread_limits.rs`.)

use std::process::Stdio;
use std::time::{Duration, Instant};

use memguard::watch::{Event, EventKind};
use memguard::{Level, MemGuard};

use super::cgroup::{Kit, TestCgroup, Version};
use super::scenarios::wait_until_in;
use super::Killed;

const MIB: u64 = 1 << 20;
const BIN: &str = env!("CARGO_BIN_EXE_memguard");

/// Events until one satisfies `stop` (returned) or `timeout`; panics with what was seen.
fn wait_event(guard: &MemGuard, timeout: Duration, what: &str, stop: impl Fn(&Event) -> bool) -> Event {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if let Some(e) = guard.next_event(left.min(Duration::from_millis(50))) {
            if stop(&e) {
                return e;
            }
            seen.push(e.kind);
        }
    }
    panic!("no {what} within {timeout:?}; events seen: {seen:#?}");
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The source the kernel notifies on this version, and the number its detail must carry for
/// `limit` (v1: the usage threshold at the warning fraction; v2: `memory.events` of the dir).
fn armed_detail(guard: &MemGuard, version: Version) -> String {
    let name = match version {
        Version::V1 => "v1-threshold-warn",
        Version::V2 => "v2-memory-events",
    };
    let s = guard.sources().into_iter().find(|s| s.name == name).unwrap_or_else(|| panic!("{name} not listed"));
    assert!(s.armed, "{s:?}");
    s.detail.unwrap_or_default()
}

/// v1: the threshold the kernel watches (the number at the end of the detail).
fn v1_threshold(detail: &str) -> u64 {
    detail.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no threshold in {detail:?}"))
}

/// A workload growing to 110 MiB in `cg` (limited to 128 MiB: past the warning fraction) is
/// reported by `guard` at Warning or above, against that 128 MiB limit.
fn warned_at_128_mib(guard: &MemGuard, cg: &TestCgroup, what: &str) {
    let _hog = Killed(
        cg.command(BIN, &["alloc", "--rate", "256M", "--to", "110M", "--hold", "5"])
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn alloc"),
    );
    let e = wait_event(
        guard,
        Duration::from_secs(15),
        &format!("a level change at {what}"),
        |e| matches!(e.kind, EventKind::LevelChanged { to, .. } if to >= Level::Warning),
    );
    assert_eq!(e.limit_bytes, Some(128 * MIB), "{e:#?}");
}

/// Runtime `memory.limit_in_bytes` / `memory.max` changes under a running guard: raised then
/// lowered, each is a `LimitChanged` event with the old and new limit, the kernel sources are
/// re-armed for the new limit (v1: the usage threshold moves with it), the budget's soft limit
/// follows, and a workload growing toward the lowered limit is still warned about.
pub fn limit_changes_at_runtime(kit: &Kit) {
    let cg = kit.cgroup("limit-change");
    cg.set_limit(256 * MIB);
    let keeper = Killed(cg.spawn("sleep", &["600"]));
    wait_until_in(keeper.0.id(), &cg);
    let guard = MemGuard::builder().pid(keeper.0.id()).start().expect("start guard");
    let soft = guard.config().soft_limit();
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let soft_of = |limit: u64| (limit as f64 * soft) as u64;
    wait_for("the budget's soft limit", Duration::from_secs(5), || guard.budget().soft_limit() == soft_of(256 * MIB));
    let before = armed_detail(&guard, kit.version);

    for (old, new) in [(256 * MIB, 512 * MIB), (512 * MIB, 128 * MIB)] {
        cg.set_limit(new);
        let e = wait_event(&guard, Duration::from_secs(5), "LimitChanged", |e| {
            matches!(e.kind, EventKind::LimitChanged { .. })
        });
        assert!(
            matches!(e.kind, EventKind::LimitChanged { old: Some(o), new: Some(n), .. } if o == old && n == new),
            "{e:#?}"
        );
        assert_eq!(guard.limits().limit_bytes, Some(new));
        wait_for("the budget's soft limit to follow", Duration::from_secs(5), || {
            guard.budget().soft_limit() == soft_of(new)
        });
        let detail = armed_detail(&guard, kit.version);
        if kit.version == Version::V1 {
            // The warning threshold is the same fraction of the new limit.
            let (t0, t1) = (v1_threshold(&before), v1_threshold(&detail));
            #[allow(clippy::cast_precision_loss)]
            let ratio = t1 as f64 / t0 as f64;
            #[allow(clippy::cast_precision_loss)]
            let expected = new as f64 / (256 * MIB) as f64;
            assert!((ratio - expected).abs() < 0.01, "threshold {t0} -> {t1} for a limit 256 MiB -> {new}");
        }
    }
    assert!(guard.sources().iter().all(|s| s.armed || s.detail.is_some()), "{:#?}", guard.sources());
    // Warned at the lowered limit.
    warned_at_128_mib(&guard, &cg, "the lowered limit");
    assert_eq!(guard.snapshot().watcher_panics, 0);
}

/// The guarded process is moved to another cgroup under a running guard: within the
/// re-detection interval the guard watches the new cgroup (its limit in a `LimitChanged`
/// event, its path in `limits()`, sources re-armed there) and warns about memory growing in it.
pub fn moved_to_another_cgroup_under_watcher(kit: &Kit) {
    let from = kit.cgroup("move-from");
    from.set_limit(256 * MIB);
    let to = kit.cgroup("move-to");
    to.set_limit(128 * MIB);
    let keeper = Killed(from.spawn("sleep", &["600"]));
    wait_until_in(keeper.0.id(), &from);
    let guard = MemGuard::builder()
        .pid(keeper.0.id())
        .redetect_interval(Duration::from_millis(200))
        .start()
        .expect("start guard");
    assert_eq!(guard.limits().limit_cgroup.as_deref(), Some(from.path().as_str()));
    to.add_pid(keeper.0.id());
    let e = wait_event(&guard, Duration::from_secs(5), "LimitChanged after the move", |e| {
        matches!(e.kind, EventKind::LimitChanged { .. })
    });
    assert!(
        matches!(e.kind, EventKind::LimitChanged { old: Some(o), new: Some(n), .. } if o == 256 * MIB && n == 128 * MIB),
        "{e:#?}"
    );
    let limits = guard.limits();
    assert_eq!(limits.limit_cgroup.as_deref(), Some(to.path().as_str()), "{limits:#?}");
    let detail = armed_detail(&guard, kit.version);
    assert!(detail.contains(&to.path()), "the kernel source is armed on the new cgroup: {detail}");
    // Memory growing in the new cgroup is what the guard now reports.
    warned_at_128_mib(&guard, &to, "the new cgroup");
    drop(keeper);
    assert_eq!(guard.snapshot().watcher_panics, 0);
}
