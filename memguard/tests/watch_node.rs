//! The watcher's machinery, run anywhere: a fixture root with no cgroup puts the guard in node
//! mode, where the "limit" is `MemTotal - eviction threshold` and usage is
//! `MemTotal - MemAvailable` read from the fixture's `/proc/meminfo` — so rewriting that file
//! drives real level changes through the real reactor, dispatcher and pull queue.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use memguard::watch::{EventKind, LimitSource};
use memguard::{Level, MemGuard};

#[path = "support/node.rs"]
mod node;

use memguard::watch::Builder;
use node::{wait_for, Node, TOTAL_KB};

fn start(node: &Node) -> MemGuard {
    node.builder().start().expect("start")
}

#[test]
fn node_mode_levels_follow_usage_with_hysteresis() {
    let node = Node::new(10);
    let guard = start(&node);
    assert_eq!(guard.level(), Level::Normal);
    let snap = guard.snapshot();
    assert_eq!(snap.limit_source, LimitSource::Node);
    assert_eq!(snap.limit_bytes, Some(TOTAL_KB * 1024));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    let _sub = guard.on_level(move |c, snap| s.lock().unwrap().push((c.from, c.to, snap.unreclaimable_bytes)));
    node.set_used(85);
    wait_for("warning", Duration::from_secs(5), || guard.level() == Level::Warning);
    node.set_used(95);
    wait_for("critical", Duration::from_secs(5), || guard.level() == Level::Critical);
    node.set_used(87); // inside the hysteresis band of critical (0.90 - 0.05): stays critical
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(guard.level(), Level::Critical);
    node.set_used(10);
    wait_for("normal", Duration::from_secs(5), || guard.level() == Level::Normal);
    wait_for("callbacks", Duration::from_secs(5), || seen.lock().unwrap().len() == 3);
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.iter().map(|(f, t, _)| (*f, *t)).collect::<Vec<_>>(),
        vec![(Level::Normal, Level::Warning), (Level::Warning, Level::Critical), (Level::Critical, Level::Normal)]
    );
    assert!(seen[1].2 >= TOTAL_KB * 1024 * 95 / 100, "the snapshot travels with the change");
}

#[test]
fn pull_api_delivers_level_changes_in_order() {
    let node = Node::new(10);
    let guard = start(&node);
    node.set_used(95);
    let ev = guard.next_event(Duration::from_secs(5)).expect("event");
    assert!(matches!(ev.kind, EventKind::LevelChanged { from: Level::Normal, to: Level::Critical, .. }), "{ev:?}");
    assert_eq!(ev.level, Level::Critical);
    assert!(ev.monotonic_ns > 0);
    node.set_used(10);
    let ev = guard.next_event(Duration::from_secs(5)).expect("event");
    assert!(matches!(ev.kind, EventKind::LevelChanged { from: Level::Critical, to: Level::Normal, .. }), "{ev:?}");
    guard.close();
    assert!(guard.next_event(Duration::from_millis(10)).is_none());
}

#[test]
fn panicking_callback_is_isolated() {
    let node = Node::new(10);
    let guard = start(&node);
    let calls = Arc::new(AtomicUsize::new(0));
    let _bad = guard.on_event(|_| panic!("callback bug"));
    let c = Arc::clone(&calls);
    let _good = guard.on_event(move |_| {
        c.fetch_add(1, Ordering::SeqCst);
    });
    node.set_used(95);
    wait_for("second callback", Duration::from_secs(5), || calls.load(Ordering::SeqCst) >= 1);
    node.set_used(10);
    wait_for("callbacks after the panic", Duration::from_secs(5), || calls.load(Ordering::SeqCst) >= 2);
    assert!(guard.callback_panics() >= 2);
}

#[test]
fn slow_callback_never_delays_the_reactor() {
    let node = Node::new(10);
    let guard = start(&node);
    let entered = Arc::new(AtomicUsize::new(0));
    let e = Arc::clone(&entered);
    guard
        .on_event(move |_| {
            e.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_secs(2));
        })
        .detach();
    node.set_used(85);
    wait_for("callback entered", Duration::from_secs(5), || entered.load(Ordering::SeqCst) == 1);
    // The dispatcher is stuck for 2 s; the reactor still sees the next change at once.
    node.set_used(95);
    wait_for("critical while the callback sleeps", Duration::from_millis(1500), || guard.level() == Level::Critical);
    assert_eq!(entered.load(Ordering::SeqCst), 1);
}

#[test]
fn callbacks_may_call_back_into_the_guard_and_unsubscribe_themselves() {
    let node = Node::new(10);
    let guard = start(&node);
    let handle = guard.handle();
    let calls = Arc::new(AtomicUsize::new(0));
    let nested = Arc::new(AtomicUsize::new(0));
    let my_sub: Arc<Mutex<Option<memguard::Subscription>>> = Arc::new(Mutex::new(None));
    let (c, n, sub, h) = (Arc::clone(&calls), Arc::clone(&nested), Arc::clone(&my_sub), handle.clone());
    let id = guard.on_level(move |change, _| {
        c.fetch_add(1, Ordering::SeqCst);
        assert_eq!(h.level(), change.to.max(h.level()));
        let _ = h.snapshot();
        let _ = h.sources();
        let n2 = Arc::clone(&n);
        h.on_level(move |_, _| {
            n2.fetch_add(1, Ordering::SeqCst);
        })
        .detach();
        let me = sub.lock().unwrap().take();
        if let Some(s) = me {
            assert!(s.unsubscribe());
        }
    });
    *my_sub.lock().unwrap() = Some(id);
    node.set_used(95);
    wait_for("first callback", Duration::from_secs(5), || calls.load(Ordering::SeqCst) == 1);
    node.set_used(10);
    wait_for("nested subscriber", Duration::from_secs(5), || nested.load(Ordering::SeqCst) == 1);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(calls.load(Ordering::SeqCst), 1, "unsubscribed from inside itself");
}

#[test]
fn close_from_inside_a_callback() {
    let node = Node::new(10);
    let guard = start(&node);
    let h = guard.handle();
    let closed_at = Arc::new(AtomicU64::new(0));
    let c = Arc::clone(&closed_at);
    guard
        .on_level(move |_, _| {
            h.close();
            c.store(1, Ordering::SeqCst);
        })
        .detach();
    node.set_used(95);
    wait_for("close from callback", Duration::from_secs(5), || closed_at.load(Ordering::SeqCst) == 1);
    assert!(guard.is_closed());
    drop(guard); // closing again (drop) is a no-op
}

#[test]
fn invalid_environment_is_a_clear_error() {
    // Not through the process environment (tests run in parallel): the builder validates.
    let err = MemGuard::builder().warn(0.95).critical(0.5).start().unwrap_err();
    assert!(err.to_string().contains("warn"), "{err}");
}

#[test]
fn budget_follows_the_guard_refused_at_critical_granted_after() {
    let node = Node::new(10);
    let guard = start(&node);
    let soft = guard.budget().soft_limit();
    assert_eq!(soft, TOTAL_KB * 1024 * 85 / 100, "soft limit = 0.85 of the (node) limit");
    let r = guard.try_reserve(1 << 20).expect("granted at Normal");
    node.set_used(95);
    wait_for("critical", Duration::from_secs(5), || guard.level() == Level::Critical);
    let err = guard.try_reserve(1 << 20).unwrap_err();
    assert_eq!((err.requested, err.level), (1 << 20, Level::Critical));
    node.set_used(10);
    wait_for("normal", Duration::from_secs(5), || guard.level() == Level::Normal);
    let r2 = guard.try_reserve(1 << 20).expect("granted again after the level dropped");
    drop((r, r2));
    let stats = guard.snapshot().budget.expect("budget stats");
    assert_eq!((stats.granted, stats.refused, stats.outstanding_bytes), (2, 1, 0));
}

#[test]
fn shedders_are_asked_in_priority_order_on_entering_warning() {
    let node = Node::new(10);
    let guard = start(&node);
    let calls = Arc::new(Mutex::new(Vec::new()));
    for (name, prio, frees) in [("late", 10, 1u64 << 40), ("first", -5, 1 << 20), ("second", 0, 2 << 20)] {
        let c = Arc::clone(&calls);
        guard
            .register_shedder(name, prio, move |target| {
                c.lock().unwrap().push((name, target));
                frees
            })
            .detach();
    }
    node.set_used(85);
    wait_for("shedding", Duration::from_secs(5), || guard.last_shed().is_some());
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.iter().map(|(n, _)| *n).collect::<Vec<_>>(), vec!["first", "second", "late"]);
    // Each is asked for what is still missing.
    assert_eq!(calls[1].1, calls[0].1 - (1 << 20));
    assert_eq!(calls[2].1, calls[1].1 - (2 << 20));
    let shed = guard.snapshot().shed.expect("shed stats");
    assert_eq!(shed.runs, 1);
}

#[test]
fn psi_disabled_or_missing_is_listed_with_the_reason() {
    let node = Node::new(10);
    let off = MemGuard::builder().root(node.root()).psi(false).start().expect("start");
    let s = off.sources();
    assert!(
        s.iter().any(|x| x.name == "psi" && !x.armed && x.detail.as_deref() == Some("disabled by configuration")),
        "{s:#?}"
    );
    drop(off);
    let on = MemGuard::builder().root(node.root()).start().expect("start");
    let s = on.sources();
    let system = s.iter().find(|x| x.name == "psi-system").expect("psi-system listed");
    assert!(!system.armed && system.detail.as_deref().unwrap_or("").contains("does not exist"), "{s:#?}");
    assert!(s.iter().any(|x| x.name == "sampler" && x.armed));
}

#[test]
fn close_wakes_a_waiting_next_event() {
    let node = Node::new(10);
    let guard = start(&node);
    let h = guard.handle();
    let waiter = std::thread::spawn(move || {
        let t = Instant::now();
        let ev = h.next_event(Duration::from_secs(30));
        (ev, t.elapsed())
    });
    std::thread::sleep(Duration::from_millis(100));
    guard.close();
    let (ev, waited) = waiter.join().expect("join");
    assert!(ev.is_none());
    assert!(waited < Duration::from_secs(5), "next_event waited {waited:?} after close");
}
