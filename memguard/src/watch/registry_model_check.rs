//! Model checking of the callback registry's removal contract (see [`super::registry`]) under
//! [Shuttle](https://docs.rs/shuttle): every lock and atomic of the registry (through
//! `crate::sync`) is a scheduling point, and Shuttle's PCT and random schedulers explore the
//! interleavings of a dispatching thread with threads that remove callbacks, remove them from
//! inside themselves, or close (clear) the registry.
//!
//! ```sh
//! RUSTFLAGS="--cfg shuttle" cargo test -p memguard --lib watch::registry_model_check --target-dir target/shuttle
//! ```
//!
//! What every explored interleaving must show (the contract the C, Java and Python bindings
//! rely on to free their `user_data` / global references):
//! - once `remove` (or `clear`) returns on another thread, the callback is never called again,
//!   and it has already been dropped, exactly once;
//! - a callback that removes itself is not called again and is dropped exactly once, however
//!   that races with a removal from another thread;
//! - `remove` reports `true` exactly once per callback.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};

use shuttle::thread;

use super::registry::Registry;
use crate::sync::Arc;

/// Schedules explored per test and scheduler.
const ITERATIONS: usize = 2_000;
/// PCT's bug depth.
const DEPTH: usize = 3;

type Cb = dyn Fn() + Send + Sync;

fn check(f: impl Fn() + Send + Sync + 'static) {
    let f = std::sync::Arc::new(f);
    let g = std::sync::Arc::clone(&f);
    shuttle::check_pct(move || g(), ITERATIONS, DEPTH);
    shuttle::check_random(move || f(), ITERATIONS);
}

/// What one callback did: calls, drops, and whether a call began after its removal returned.
#[derive(Default)]
struct Trace {
    calls: AtomicU64,
    drops: AtomicU64,
    /// Set by the remover just after `remove`/`clear` returned.
    removed: AtomicBool,
    called_after_removal: AtomicBool,
}

/// Owned by the callback: counts its drop.
struct DropCounter(Arc<Trace>);

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.drops.fetch_add(1, SeqCst);
    }
}

fn traced(trace: &Arc<Trace>) -> Box<Cb> {
    let owned = DropCounter(Arc::clone(trace));
    Box::new(move || {
        let t = &owned.0;
        if t.removed.load(SeqCst) {
            t.called_after_removal.store(true, SeqCst);
        }
        t.calls.fetch_add(1, SeqCst);
    })
}

/// The dispatcher's loop: call every registered callback, `rounds` times.
fn dispatch(r: &Registry<Cb>, rounds: usize) {
    for _ in 0..rounds {
        for slot in r.snapshot() {
            slot.call(|f| f());
        }
    }
}

/// A removal from another thread while the dispatcher calls: after `remove` returns the
/// callback has been dropped once and is never called again; the other callback is untouched.
#[test]
fn removal_from_another_thread_waits_and_drops_once() {
    check(|| {
        let r: Arc<Registry<Cb>> = Arc::new(Registry::default());
        let (gone, kept) = (Arc::new(Trace::default()), Arc::new(Trace::default()));
        let id = r.add(0, traced(&gone));
        r.add(1, traced(&kept));
        let dispatcher = {
            let r = Arc::clone(&r);
            thread::spawn(move || dispatch(&r, 2))
        };
        let remover = {
            let (r, gone) = (Arc::clone(&r), Arc::clone(&gone));
            thread::spawn(move || {
                assert!(r.remove(id));
                assert_eq!(gone.drops.load(SeqCst), 1, "dropped before remove returned");
                gone.removed.store(true, SeqCst);
            })
        };
        remover.join().expect("remover");
        dispatcher.join().expect("dispatcher");
        assert!(!gone.called_after_removal.load(SeqCst), "called after remove returned");
        assert_eq!(gone.drops.load(SeqCst), 1);
        assert_eq!(kept.calls.load(SeqCst), 2, "the other callback ran every round");
        assert_eq!(kept.drops.load(SeqCst), 0);
        assert!(!r.remove(id), "a second removal finds nothing");
    });
}

/// A callback removes itself during a call while another thread removes it too: exactly one
/// removal succeeds, it is dropped exactly once, and never called after either removal.
#[test]
fn self_removal_racing_another_removal_drops_once() {
    check(|| {
        let r: Arc<Registry<Cb>> = Arc::new(Registry::default());
        let trace = Arc::new(Trace::default());
        let id_cell = Arc::new(AtomicU64::new(0));
        let successes = Arc::new(AtomicU64::new(0));
        let cb: Box<Cb> = {
            let (r, id_cell, successes) = (Arc::clone(&r), Arc::clone(&id_cell), Arc::clone(&successes));
            let inner = traced(&trace);
            Box::new(move || {
                inner();
                if r.remove(id_cell.load(SeqCst)) {
                    successes.fetch_add(1, SeqCst);
                }
            })
        };
        let id = r.add(0, cb);
        id_cell.store(id, SeqCst);
        let dispatcher = {
            let r = Arc::clone(&r);
            thread::spawn(move || dispatch(&r, 2))
        };
        let remover = {
            let (r, successes) = (Arc::clone(&r), Arc::clone(&successes));
            thread::spawn(move || {
                if r.remove(id) {
                    successes.fetch_add(1, SeqCst);
                }
            })
        };
        remover.join().expect("remover");
        dispatcher.join().expect("dispatcher");
        assert_eq!(successes.load(SeqCst), 1, "exactly one removal finds it");
        assert!(trace.calls.load(SeqCst) <= 1, "not called again after removing itself");
        // The registry's closure holds the registry (a cycle through `r`): the slot is dropped,
        // which drops the closure and its trace counter, exactly once.
        assert_eq!(trace.drops.load(SeqCst), 1);
    });
}

/// Closing (clearing) the registry from another thread while the dispatcher calls and a
/// callback is being added: after `clear` returns, every callback registered before it was
/// dropped once and none is called again.
#[test]
fn clear_while_dispatching_drops_each_once() {
    check(|| {
        let r: Arc<Registry<Cb>> = Arc::new(Registry::default());
        let traces: Vec<Arc<Trace>> = (0..2).map(|_| Arc::new(Trace::default())).collect();
        for (i, t) in traces.iter().enumerate() {
            r.add(i64::try_from(i).unwrap_or(0), traced(t));
        }
        let dispatcher = {
            let r = Arc::clone(&r);
            thread::spawn(move || dispatch(&r, 2))
        };
        let closer = {
            let (r, traces) = (Arc::clone(&r), traces.clone());
            thread::spawn(move || {
                r.clear();
                for t in &traces {
                    assert_eq!(t.drops.load(SeqCst), 1, "dropped before clear returned");
                    t.removed.store(true, SeqCst);
                }
            })
        };
        closer.join().expect("closer");
        dispatcher.join().expect("dispatcher");
        for t in &traces {
            assert!(!t.called_after_removal.load(SeqCst), "called after clear returned");
            assert_eq!(t.drops.load(SeqCst), 1);
        }
        assert_eq!(r.len(), 0);
    });
}
