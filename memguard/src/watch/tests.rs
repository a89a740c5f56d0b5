//! Watcher tests that need crate internals (a small callback queue, injected reactor panics),
//! on a node-mode fixture: a root with only `/proc/meminfo`, rewritten to drive levels.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use super::builder::Builder;
use super::event::EventKind;
use super::guard::MemGuard;
use crate::level::Level;

#[path = "../../tests/support/node.rs"]
mod node;

use node::{wait_for, Node};

#[test]
fn a_stuck_callback_bounds_its_queue_and_never_blocks_the_level_or_shedding() {
    let node = Node::new(10);
    let mut cfg = node.builder().config().expect("config");
    cfg.queue_capacity = 4;
    let guard = MemGuard::start_with(cfg).expect("start");
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let entered = Arc::new(AtomicU64::new(0));
    let e = Arc::clone(&entered);
    let _stuck = guard.on_level(move |_, _| {
        e.fetch_add(1, Ordering::SeqCst);
        let _ = release_rx.lock().expect("rx").recv();
    });
    let sheds = Arc::new(AtomicU64::new(0));
    let s = Arc::clone(&sheds);
    let _shedder = guard.register_shedder("cache", 0, move |want| {
        s.fetch_add(1, Ordering::SeqCst);
        want
    });
    for round in 1..=20u64 {
        node.set_used(95);
        wait_for("critical", Duration::from_secs(5), || guard.level() == Level::Critical);
        wait_for("a shed run while the callback is stuck", Duration::from_secs(5), || {
            sheds.load(Ordering::SeqCst) >= round
        });
        node.set_used(10);
        wait_for("normal", Duration::from_secs(5), || guard.level() == Level::Normal);
    }
    assert_eq!(entered.load(Ordering::SeqCst), 1, "the callback is still stuck in its first call");
    let dropped = guard.snapshot().callback_events_dropped;
    assert!(dropped >= 30, "40 level changes behind a stuck callback with a queue of 4: {dropped} dropped");
    // Unstick it: it then gets the newest events, not everything since.
    drop(release_tx);
    wait_for("the queue drained", Duration::from_secs(5), || entered.load(Ordering::SeqCst) >= 2);
    assert!(entered.load(Ordering::SeqCst) <= 1 + 4 + 1, "at most the queue's capacity was kept");
}

#[test]
fn a_reactor_panic_is_logged_counted_and_recovered() {
    let node = Node::new(10);
    let mut cfg = node.builder().config().expect("config");
    cfg.inject_panics = 1;
    let guard = MemGuard::start_with(cfg).expect("start");
    wait_for("the panic", Duration::from_secs(5), || guard.snapshot().watcher_panics == 1);
    // It re-detected, re-armed and keeps watching.
    node.set_used(95);
    wait_for("critical after recovery", Duration::from_secs(5), || guard.level() == Level::Critical);
    let snap = guard.snapshot();
    assert_eq!((snap.watcher_panics, snap.failed), (1, None));
    assert!(guard.prometheus().contains("memguard_watcher_panics_total 1"), "{}", guard.prometheus());
}

#[test]
fn repeated_reactor_panics_mark_the_guard_failed_visibly() {
    let node = Node::new(10);
    let mut cfg = node.builder().config().expect("config");
    cfg.inject_panics = 1000;
    let guard = MemGuard::start_with(cfg).expect("start");
    let failed = guard.next_event(Duration::from_secs(5)).expect("an event");
    match &failed.kind {
        EventKind::WatcherFailed { reason } => assert!(reason.contains("injected reactor panic"), "{reason}"),
        other => panic!("expected WatcherFailed, got {other:?}"),
    }
    let snap = guard.snapshot();
    assert_eq!(snap.watcher_panics, super::reactor::MAX_PANICS as u64);
    assert!(snap.failed.as_deref().is_some_and(|r| r.contains("internal errors")), "{snap:#?}");
    assert!(guard.prometheus().contains("memguard_watcher_failed 1"), "{}", guard.prometheus());
    // A failed guard still closes cleanly.
    let t = Instant::now();
    guard.close();
    assert!(t.elapsed() < Duration::from_secs(1));
}

#[test]
fn a_shedder_registered_while_the_level_is_raised_is_asked() {
    // The reactor tells the shedding thread nothing while no shedder is registered: one that
    // registers while the guard already sits at Warning must still be asked.
    let node = Node::new(85);
    let guard = MemGuard::start_with(node.builder().config().expect("config")).expect("start");
    wait_for("warning", Duration::from_secs(5), || guard.level() == Level::Warning);
    std::thread::sleep(Duration::from_millis(50));
    let asked = Arc::new(AtomicU64::new(0));
    let a = Arc::clone(&asked);
    let _shedder = guard.register_shedder("late", 0, move |want| {
        a.fetch_add(1, Ordering::SeqCst);
        want
    });
    wait_for("the late shedder asked", Duration::from_secs(5), || asked.load(Ordering::SeqCst) >= 1);
    // Quiet samples (Normal, below the threshold) are not handed on one by one, yet the next
    // rise is seen as one.
    node.set_used(10);
    wait_for("normal", Duration::from_secs(5), || guard.level() == Level::Normal);
    std::thread::sleep(Duration::from_millis(50));
    let before = asked.load(Ordering::SeqCst);
    node.set_used(85);
    wait_for("asked again on the next rise", Duration::from_secs(5), || asked.load(Ordering::SeqCst) > before);
}
