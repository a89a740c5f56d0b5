//! [`Registry`]: user callbacks (level and event callbacks, shedders) with the removal contract
//! every binding relies on:
//!
//! * Callbacks of one registry run on one memguard thread, never concurrently with each other.
//! * Removing a callback from **another thread** waits until a running call of it has
//!   returned; once `remove` returns, the callback is never called again and has been dropped
//!   (so a C `free_user_data`, run by the callback's destructor, ran exactly once, before
//!   `remove` returned).
//! * Removing a callback **from inside itself** does not wait (that would deadlock): it is not
//!   called again, and it is dropped on its own thread as soon as the running call returns.
//! * No registry lock is held while a callback runs, so a callback may add or remove
//!   callbacks (itself included), read the guard or close it.

use std::cell::Cell;
use std::sync::atomic::AtomicU64;

use crate::sync::atomic::{AtomicBool, Ordering};
use crate::sync::{thread_local, Arc, Mutex, MutexGuard, PoisonError};

/// Ids are unique across every registry of the process (a subscription names one callback).
/// (A plain std atomic also under Shuttle: uniqueness is not what the model check examines.)
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The id of the callback running on this thread (0: none).
    static RUNNING: Cell<u64> = const { Cell::new(0) };
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One registered callback.
pub(crate) struct Slot<F: ?Sized> {
    id: u64,
    /// Ordering key (shedder priority; 0 for plain callbacks), ties broken by id.
    key: i64,
    /// The callback; `None` once removed. Held locked during a call, which is what makes a
    /// removal from another thread wait for the call to finish.
    f: Mutex<Option<Box<F>>>,
    removed: AtomicBool,
}

impl<F: ?Sized> Slot<F> {
    #[cfg(test)]
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Call `with(f)` unless the callback was removed. Returns `None` if it was.
    pub(crate) fn call<R>(&self, with: impl FnOnce(&F) -> R) -> Option<R> {
        /// Restores [`RUNNING`] however the call ends (a panic included).
        struct Restore(u64);
        impl Drop for Restore {
            fn drop(&mut self) {
                RUNNING.with(|r| r.set(self.0));
            }
        }
        if self.removed.load(Ordering::Acquire) {
            return None;
        }
        let mut guard = lock(&self.f);
        let out = {
            let f = guard.as_deref()?;
            let _restore = Restore(RUNNING.with(|r| r.replace(self.id)));
            with(f)
        };
        if self.removed.load(Ordering::Acquire) {
            // It removed itself during the call: drop it now, on this thread.
            drop(guard.take());
        }
        Some(out)
    }
}

/// Callbacks of one kind, ordered by `(key, id)`.
pub(crate) struct Registry<F: ?Sized> {
    slots: Mutex<Vec<Arc<Slot<F>>>>,
}

impl<F: ?Sized> Default for Registry<F> {
    fn default() -> Self {
        Registry { slots: Mutex::new(Vec::new()) }
    }
}

impl<F: ?Sized> Registry<F> {
    /// Add `f` with ordering key `key`; returns its id.
    pub(crate) fn add(&self, key: i64, f: Box<F>) -> u64 {
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let slot = Arc::new(Slot { id, key, f: Mutex::new(Some(f)), removed: AtomicBool::new(false) });
        let mut slots = lock(&self.slots);
        let at = slots.partition_point(|s| (s.key, s.id) < (key, id));
        slots.insert(at, slot);
        id
    }

    /// Remove callback `id` (see the module docs for the waiting rule). Returns whether it was
    /// registered here.
    pub(crate) fn remove(&self, id: u64) -> bool {
        let slot = {
            let mut slots = lock(&self.slots);
            match slots.iter().position(|s| s.id == id) {
                Some(i) => slots.remove(i),
                None => return false,
            }
        };
        slot.removed.store(true, Ordering::Release);
        if RUNNING.with(Cell::get) != id {
            // Waits for a running call, then drops the callback here.
            let taken = lock(&slot.f).take();
            drop(taken);
        }
        true
    }

    /// The callbacks registered now, in order (the lock is released before any is called).
    pub(crate) fn snapshot(&self) -> Vec<Arc<Slot<F>>> {
        lock(&self.slots).clone()
    }

    /// The number of callbacks registered.
    pub(crate) fn len(&self) -> usize {
        lock(&self.slots).len()
    }

    /// Remove every callback (on close). Each is dropped once its running call (if any, on
    /// another thread) has returned, except one running on this thread, dropped after it returns.
    pub(crate) fn clear(&self) {
        let ids: Vec<u64> = lock(&self.slots).iter().map(|s| s.id).collect();
        for id in ids {
            self.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    type Cb = dyn Fn(u32) + Send + Sync;

    struct OnDrop(Arc<AtomicU64>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn ordered_by_key_then_id() {
        let r: Registry<Cb> = Registry::default();
        let a = r.add(5, Box::new(|_| {}));
        let b = r.add(-1, Box::new(|_| {}));
        let c = r.add(5, Box::new(|_| {}));
        let ids: Vec<u64> = r.snapshot().iter().map(|s| s.id()).collect();
        assert_eq!(ids, vec![b, a, c]);
    }

    #[test]
    fn removal_from_another_thread_waits_for_the_running_call_and_drops_once() {
        let r: Arc<Registry<Cb>> = Arc::new(Registry::default());
        let drops = Arc::new(AtomicU64::new(0));
        let (entered_tx, entered_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Mutex::new(release_rx);
        let guard = OnDrop(Arc::clone(&drops));
        let id = r.add(
            0,
            Box::new(move |_| {
                let _keep = &guard;
                entered_tx.send(()).ok();
                lock(&release_rx).recv().ok();
            }),
        );
        let runner = {
            let r = Arc::clone(&r);
            std::thread::spawn(move || {
                for slot in r.snapshot() {
                    slot.call(|f| f(1));
                }
            })
        };
        entered_rx.recv().expect("callback entered");
        let remover = {
            let r = Arc::clone(&r);
            std::thread::spawn(move || r.remove(id))
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(!remover.is_finished(), "remove must wait for the running call");
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        release_tx.send(()).expect("release");
        assert!(remover.join().expect("remover"));
        assert_eq!(drops.load(Ordering::SeqCst), 1, "dropped exactly once, before remove returned");
        runner.join().expect("runner");
        assert!(r.snapshot().is_empty());
        assert!(!r.remove(id), "a second removal finds nothing");
    }

    #[test]
    fn self_removal_does_not_deadlock_and_drops_after_the_call() {
        let r: Arc<Registry<Cb>> = Arc::new(Registry::default());
        let drops = Arc::new(AtomicU64::new(0));
        let calls = Arc::new(AtomicU64::new(0));
        let id_cell = Arc::new(AtomicU64::new(0));
        let (r2, c2, idc, guard) =
            (Arc::clone(&r), Arc::clone(&calls), Arc::clone(&id_cell), OnDrop(Arc::clone(&drops)));
        let id = r.add(
            0,
            Box::new(move |_| {
                let _keep = &guard;
                c2.fetch_add(1, Ordering::SeqCst);
                assert!(r2.remove(idc.load(Ordering::SeqCst)));
            }),
        );
        id_cell.store(id, Ordering::SeqCst);
        let slots = r.snapshot();
        for s in &slots {
            s.call(|f| f(1));
        }
        assert_eq!(drops.load(Ordering::SeqCst), 1, "dropped as soon as the call returned");
        for s in &slots {
            assert!(s.call(|f| f(2)).is_none(), "never called again");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn clear_drops_everything() {
        let r: Registry<Cb> = Registry::default();
        let drops = Arc::new(AtomicU64::new(0));
        for _ in 0..3 {
            let g = OnDrop(Arc::clone(&drops));
            r.add(
                0,
                Box::new(move |_| {
                    let _keep = &g;
                }),
            );
        }
        r.clear();
        assert_eq!(drops.load(Ordering::SeqCst), 3);
        assert_eq!(r.len(), 0);
    }
}
