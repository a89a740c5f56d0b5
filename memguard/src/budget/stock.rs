//! Per-thread stocks: pre-charged bytes each thread keeps per budget, so that small reservations
//! and every release touch no shared cache line with a read-modify-write (see the
//! [module docs](super#per-thread-stocks)).
//!
//! A [`StockCell`] belongs to one (thread, budget) pair. Its owner thread is its only writer
//! of `free`, `released` and `granted` (plain loads and stores, no RMW); other threads read
//! them under the budget's registry lock (`outstanding()`, `stats()`, a usage sample). The
//! sampler is the only writer of `cleared`, under the same lock.
//!
//! The thread-local table maps a budget's unique id to its cell. It holds a [`Weak`] to the
//! budget, used only when the thread exits (to hand the stock back) and to prune entries of
//! dropped budgets; the hot path never touches a reference count.

use crate::sync::atomic::{AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};
use crate::sync::{thread_local, Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::cell::RefCell;

use super::Shared;

/// The most pre-charged, unused bytes a thread keeps per budget: a small request is served
/// from it without touching shared state, and it is topped up to this size from the shared
/// counter in one step. Stocked bytes count against the soft limit, so a budget may refuse up
/// to `STOCK_CAP_BYTES` × (threads that reserved from it) early — never late.
pub const STOCK_CAP_BYTES: u64 = 64 << 10;

/// One thread's stock for one budget.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct StockCell {
    /// Pre-charged bytes not handed out (counted in the budget's `committed`). Owner-written.
    free: AtomicU64,
    /// Bytes this thread released while the epoch had parity 0 / 1, cumulative (wrapping).
    /// Owner-written.
    released: [AtomicU64; 2],
    /// Requests granted on this thread. Owner-written.
    granted: AtomicU64,
    /// `2 * generation + 1` when this thread found the budget under its soft limit at that
    /// generation (0: not checked). Owner-written.
    checked: AtomicU64,
    /// How much of `released[p]` the sampler has already removed from `committed`.
    /// Sampler-written, under the registry lock.
    cleared: [AtomicU64; 2],
}

impl StockCell {
    pub(crate) fn free(&self) -> u64 {
        self.free.load(Relaxed)
    }

    /// Owner only.
    pub(crate) fn set_free(&self, bytes: u64) {
        self.free.store(bytes, Relaxed);
    }

    /// Owner only: one more request granted.
    pub(crate) fn count_granted(&self) {
        self.granted.store(self.granted.load(Relaxed).wrapping_add(1), Relaxed);
    }

    /// Whether this thread found the budget under its soft limit at `generation`.
    pub(crate) fn checked_under(&self, generation: u64) -> bool {
        self.checked.load(Relaxed) == under_mark(generation)
    }

    /// Owner only.
    pub(crate) fn set_checked_under(&self, generation: u64) {
        self.checked.store(under_mark(generation), Relaxed);
    }

    pub(crate) fn granted(&self) -> u64 {
        self.granted.load(Relaxed)
    }

    /// Owner only: `bytes` released while the epoch was `epoch`.
    pub(crate) fn add_released(&self, epoch: u64, bytes: u64) {
        let slot = &self.released[parity(epoch)];
        // Release: the sampler that reads this value (Acquire) also sees what preceded it.
        slot.store(slot.load(Relaxed).wrapping_add(bytes), Release);
    }

    /// Released bytes of parity `p` not yet removed from `committed`.
    pub(crate) fn pending(&self, p: usize) -> u64 {
        self.released[p].load(Acquire).wrapping_sub(self.cleared[p].load(Relaxed))
    }

    /// Sampler (registry lock held): take the released bytes of parity `p` not yet cleared.
    pub(crate) fn take_pending(&self, p: usize) -> u64 {
        let released = self.released[p].load(Acquire);
        let pending = released.wrapping_sub(self.cleared[p].load(Relaxed));
        self.cleared[p].store(released, Relaxed);
        pending
    }
}

fn under_mark(generation: u64) -> u64 {
    generation.wrapping_mul(2) | 1
}

/// The bucket a release at `epoch` goes to.
pub(crate) fn parity(epoch: u64) -> usize {
    usize::from(epoch & 1 == 1)
}

/// The cells of the live threads that used a budget.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    cells: Mutex<Vec<Arc<StockCell>>>,
}

impl Registry {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Vec<Arc<StockCell>>> {
        self.cells.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A thread's entry for one budget. Dropping it (thread exit, or pruning once the budget is
/// gone) hands the stock back to the budget if it still exists.
struct Entry {
    id: u64,
    budget: Weak<Shared>,
    cell: Arc<StockCell>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        // A dropped budget is never resurrected: `upgrade` fails once the last strong
        // reference is gone, and its id is never reused.
        if let Some(shared) = self.budget.upgrade() {
            shared.retire(&self.cell);
        }
    }
}

thread_local! {
    static STOCKS: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
}

/// Run `f` with this thread's stock for `shared` (created on first use), or return `None`
/// when thread-local storage is unavailable (the thread is exiting) or in use (a re-entrant
/// call); the caller then takes the shared path. `f` must not reserve or release.
#[inline]
pub(crate) fn with_cell<R>(shared: &Arc<Shared>, f: impl FnOnce(&StockCell) -> R) -> Option<R> {
    let id = shared.id;
    STOCKS
        .try_with(|stocks| {
            {
                let stocks = stocks.try_borrow().ok()?;
                if let Some(e) = stocks.iter().find(|e| e.id == id) {
                    return Some(f(&e.cell));
                }
            }
            let cell = register(&mut stocks.try_borrow_mut().ok()?, shared);
            // `f` runs outside the mutable borrow, like on the hit path.
            Some(f(&cell))
        })
        .ok()
        .flatten()
}

#[cold]
fn register(stocks: &mut std::cell::RefMut<'_, Vec<Entry>>, shared: &Arc<Shared>) -> Arc<StockCell> {
    // Prune entries of dropped budgets (their cells hold nothing owed to anyone).
    stocks.retain(|e| e.budget.strong_count() > 0);
    let cell = Arc::new(StockCell::default());
    shared.stocks.lock().push(Arc::clone(&cell));
    stocks.push(Entry { id: shared.id, budget: Arc::downgrade(shared), cell: Arc::clone(&cell) });
    cell
}

/// Hand this thread's stock for `shared` back now (as if the thread exited). Returns whether
/// there was one.
pub(crate) fn flush(shared: &Shared) -> bool {
    let entry = STOCKS
        .try_with(|stocks| {
            let mut stocks = stocks.try_borrow_mut().ok()?;
            let i = stocks.iter().position(|e| e.id == shared.id)?;
            Some(stocks.swap_remove(i))
        })
        .ok()
        .flatten();
    // Dropped outside the borrow: `Entry::drop` hands the stock back.
    entry.is_some()
}

/// This thread's free stock for `shared` (0 without one; never creates one).
pub(crate) fn free_here(shared: &Shared) -> u64 {
    STOCKS
        .try_with(|stocks| {
            let stocks = stocks.try_borrow().ok()?;
            stocks.iter().find(|e| e.id == shared.id).map(|e| e.cell.free())
        })
        .ok()
        .flatten()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;
    use std::sync::{mpsc, Arc};
    use std::thread;

    use super::{STOCKS, STOCK_CAP_BYTES as CAP};
    use crate::budget::Budget;

    fn shared_counter(b: &Budget) -> u64 {
        b.shared().committed.load(Relaxed)
    }

    fn entries_here() -> usize {
        STOCKS.with(|s| s.borrow().len())
    }

    #[test]
    fn small_requests_are_served_from_the_stock() {
        thread::spawn(|| {
            let b = Budget::new(1 << 30);
            let first = b.try_reserve(4096).expect("first");
            assert_eq!(shared_counter(&b), 4096 + CAP, "charged once, stock topped up to the cap");
            assert_eq!((b.outstanding(), b.stocked()), (4096, CAP));
            let held: Vec<_> = (0..CAP / 4096).map(|_| b.try_reserve(4096).expect("from the stock")).collect();
            assert_eq!(shared_counter(&b), 4096 + CAP, "no shared write while the stock lasts");
            assert_eq!((b.outstanding(), b.stocked()), (4096 + CAP, 0));
            let next = b.try_reserve(4096).expect("tops up again");
            assert_eq!(shared_counter(&b), 2 * (4096 + CAP));
            assert_eq!((b.outstanding(), b.stocked()), (2 * 4096 + CAP, CAP));
            let big = b.try_reserve(CAP + 1).expect("larger than the cap: exact, using the stock first");
            assert_eq!(shared_counter(&b), 2 * (4096 + CAP) + 1);
            assert_eq!(b.stocked(), 0);
            drop((first, held, next, big));
            assert_eq!((b.outstanding(), b.settling()), (0, 2 * 4096 + 2 * CAP + 1));
            assert_eq!(b.stats().granted, 3 + CAP / 4096);
            b.set_usage(0);
            assert_eq!(shared_counter(&b), 0);
        })
        .join()
        .expect("thread");
    }

    #[test]
    fn the_stock_is_not_served_over_the_limit_or_at_critical() {
        thread::spawn(|| {
            let b = Budget::new(1 << 20);
            let _r0 = b.try_reserve(1).expect("stocks up");
            assert_eq!((shared_counter(&b), b.stocked()), (CAP + 1, CAP));
            b.set_level(crate::Level::Critical);
            assert!(b.try_reserve(1).is_err());
            b.set_level(crate::Level::Normal);
            b.set_usage((1 << 20) - CAP - 1); // usage + shared counter = the soft limit: still fits
            let _r1 = b.try_reserve(1).expect("from the stock, at the limit");
            b.set_usage((1 << 20) - CAP); // one byte over
            let e = b.try_reserve(1).expect_err("over the soft limit");
            assert_eq!(e.available, 0);
            b.set_usage(0);
            assert!(b.try_reserve(1).is_ok(), "under again");
            let charged = shared_counter(&b); // live + settling + stock, no usage
            b.set_soft_limit(charged); // exactly full: still under
            assert!(b.try_reserve(1).is_ok(), "from the stock");
            b.set_soft_limit(charged - 1);
            assert!(b.try_reserve(1).is_err(), "a lower soft limit is seen at once");
            b.set_soft_limit(1 << 20);
            assert!(b.try_reserve(1).is_ok());
            // A forced reservation on another thread takes the budget over its limit.
            let b2 = b.clone();
            let forced = thread::spawn(move || b2.try_reserve_forced_owned(1 << 20)).join().expect("thread");
            assert!(b.try_reserve(1).is_err(), "the forced bytes are seen before serving from the stock");
            drop(forced);
            assert_eq!(b.available(), 0);
        })
        .join()
        .expect("thread");
    }

    #[test]
    fn thread_exit_returns_the_stock_and_its_settling_bytes() {
        let b = Budget::new(1 << 30);
        let b2 = b.clone();
        let (tx, rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let t = thread::spawn(move || {
            drop(b2.try_reserve(4096).expect("reserve"));
            tx.send(()).expect("send");
            go_rx.recv().expect("recv");
        });
        rx.recv().expect("reserved");
        assert_eq!((b.outstanding(), b.settling(), b.stocked()), (0, 4096, CAP));
        assert_eq!(b.stats().granted, 1);
        go_tx.send(()).expect("go");
        t.join().expect("thread");
        assert_eq!((b.outstanding(), b.settling(), b.stocked()), (0, 4096, 0), "the stock is back");
        assert_eq!(shared_counter(&b), 4096, "only the settling bytes remain");
        assert_eq!(b.stats().granted, 1, "the exited thread's grants are kept");
        assert!(b.shared().stocks.lock().is_empty());
        b.set_usage(0);
        assert_eq!(shared_counter(&b), 0);
    }

    #[test]
    fn flush_stock_returns_it_now() {
        thread::spawn(|| {
            let b = Budget::new(1 << 30);
            assert!(!b.flush_stock());
            let r = b.try_reserve(100).expect("reserve");
            assert!(b.flush_stock());
            assert_eq!((b.stocked(), shared_counter(&b)), (0, 100));
            drop(r); // a new entry takes the release
            assert_eq!((b.outstanding(), b.settling()), (0, 100));
            b.set_usage(0);
            assert_eq!(shared_counter(&b), 0);
        })
        .join()
        .expect("thread");
    }

    #[test]
    fn a_dropped_budget_is_neither_leaked_nor_resurrected_by_thread_entries() {
        thread::spawn(|| {
            let a = Budget::new(1 << 30);
            drop(a.try_reserve(10).expect("a"));
            let weak = Arc::downgrade(a.shared());
            let a_id = a.shared().id;
            assert_eq!(entries_here(), 1);
            drop(a);
            assert_eq!(weak.strong_count(), 0, "a thread entry does not keep the budget alive");
            let b = Budget::new(1 << 30);
            assert_ne!(b.shared().id, a_id, "ids are never reused");
            let r = b.try_reserve(10).expect("b");
            assert_eq!(entries_here(), 1, "the dead entry was pruned");
            assert_eq!((b.outstanding(), b.stocked()), (10, CAP), "b starts from nothing");
            assert!(weak.upgrade().is_none());
            drop(r);
        })
        .join()
        .expect("thread");
    }

    #[test]
    fn a_budget_dropped_while_another_thread_holds_its_stock() {
        let b = Budget::new(1 << 30);
        let b2 = b.clone();
        let weak = Arc::downgrade(b.shared());
        let (tx, rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let t = thread::spawn(move || {
            drop(b2.try_reserve(10).expect("reserve"));
            drop(b2);
            tx.send(()).expect("send");
            go_rx.recv().expect("recv");
            // The thread exits with an entry for a dropped budget: nothing to return, no panic.
        });
        rx.recv().expect("reserved");
        drop(b);
        assert_eq!(weak.strong_count(), 0);
        go_tx.send(()).expect("go");
        t.join().expect("thread");
    }

    thread_local! {
        static HELD: std::cell::RefCell<Option<crate::budget::Reservation<'static>>> =
            const { std::cell::RefCell::new(None) };
    }

    #[test]
    fn a_reservation_dropped_by_a_thread_local_destructor_is_returned() {
        let b = Budget::new(1 << 30);
        let b2 = b.clone();
        thread::spawn(move || {
            HELD.with(|_| ()); // registered before the stocks: destroyed after them
            let r = b2.try_reserve_owned(1000).expect("reserve");
            HELD.with(|h| *h.borrow_mut() = Some(r));
        })
        .join()
        .expect("thread");
        assert_eq!((b.outstanding(), b.settling(), b.stocked()), (0, 1000, 0));
        b.set_usage(0);
        assert_eq!(shared_counter(&b), 0);
    }
}
