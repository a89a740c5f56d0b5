//! The soft-limit budget: [`Budget`], [`Reservation`], [`SubBudget`].
//!
//! A budget lets an application fail gracefully — reject a request, shrink a batch, skip a
//! cache fill — instead of being killed. Before allocating a large or unbounded amount of
//! memory, ask the budget for it:
//!
//! ```
//! use memguard::budget::Budget;
//!
//! let budget = Budget::new(512 << 20); // soft limit: 512 MiB
//! budget.set_usage(100 << 20);         // the watcher feeds the usage samples
//! match budget.try_reserve(64 << 20) {
//!     Ok(reservation) => {
//!         let buffer = vec![0u8; 64 << 20]; // allocate (and touch) while holding it
//!         drop(reservation);                // then release it: the memory is now in use
//!         # drop(buffer);
//!     }
//!     Err(e) => eprintln!("rejecting request: {e}"),
//! }
//! assert_eq!(budget.outstanding(), 0);
//! assert_eq!(budget.settling(), 64 << 20); // counted until a usage sample shows the memory
//! budget.set_usage(164 << 20);              // ... which this one does
//! assert_eq!(budget.settling(), 0);
//! ```
//!
//! # Model
//! The budget knows three inputs, all set by the watcher and stored in atomics:
//! * the **soft limit** (bytes; [`set_soft_limit`](Budget::set_soft_limit)), typically a
//!   fraction of the effective cgroup limit; `u64::MAX` means "no limit known";
//! * the **usage** (bytes; [`set_usage`](Budget::set_usage)): the latest sample of the memory
//!   the guard measures pressure with;
//! * the **level** ([`set_level`](Budget::set_level)).
//!
//! and keeps two numbers itself: **outstanding**, the bytes of the live reservations, and
//! **settling**, the bytes of released reservations that no usage sample has reflected yet.
//! A request for `bytes` is granted while
//!
//! ```text
//! committed + bytes <= soft_limit     where committed = usage + outstanding + settling
//! ```
//!
//! and the level is not [`Critical`](Level::Critical).
//!
//! ## Why a sum
//! A reservation is taken *before* its memory is allocated: the caller reserves, allocates
//! while holding the reservation, then releases it (or keeps it while the memory is
//! short-lived). Until the next usage sample, nothing but the reservation says that memory is
//! coming, so every reserved byte counts on top of the last sample. Example, a 1 GiB limit
//! with the default soft limit of 0.85 (870.4 MiB) and 600 MiB in use; eight callers each ask
//! for 100 MiB before allocating it:
//!
//! ```text
//! 600 + 100 = 700 <= 870.4   granted
//! 700 + 100 = 800 <= 870.4   granted
//! 800 + 100 = 900 >  870.4   refused (available: 70.4 MiB), and so are the five others
//! ```
//!
//! An earlier model counted `max(usage, outstanding)` — "a reserved byte may already be in
//! the usage" — and granted all eight (`max(600, 700..1400) + 100 <= 870.4` fails only once
//! outstanding alone reaches the limit): 1.4 GiB promised out of 270 MiB of room, and the OOM
//! killer for whoever allocates last. The sum never grants more than the room left.
//!
//! ## Settling: counting a reservation once
//! When a reservation is released, its memory is typically allocated and will show in the
//! *next* usage sample, not in the last one. Its bytes therefore stay counted, as
//! **settling**, until a usage sample taken after the release arrives; that sample includes
//! the memory, and the bytes leave settling. So a byte reserved, allocated and kept is counted
//! once at every moment: in outstanding, then in settling, then in usage.
//!
//! The watcher brackets each sample: it starts an epoch (two buckets, selected by the epoch's
//! parity) *before* it reads the kernel's files, and after reading it stores the usage and
//! clears the bucket of the epoch that ended. A release adds to the bucket of the current
//! epoch. A release that happened before the read started is in the ended epoch's bucket and
//! is cleared by that sample; one racing with the read lands in the new bucket and waits for
//! the next sample; a sample never clears bytes released after its read began. (The epoch is
//! read with `SeqCst` on release and advanced with a `SeqCst` read-modify-write before the
//! read; the usage is stored before the cleared bytes leave the committed total, with
//! release/acquire ordering, so a request never sees the old usage without the settling
//! bytes.) A release racing with the epoch change may land in the ended bucket just after it
//! was cleared; that bucket is next cleared by the sample after the next one — late, never
//! early (found and checked by the model-checking tests, `budget/model_check.rs`).
//!
//! A guard's watcher samples at least every 50 ms while reservations are being released (and
//! at its usual pace otherwise), so released bytes settle within about that long: the first
//! release after a sample asks the watcher for the next one within those 50 ms, and a request
//! refused while released bytes are settling asks for one at once (at most one such sample
//! every 2 ms). A service that reserves and releases per request therefore runs out of room
//! only for what it really holds, not for the churn of the last idle sampling interval.
//!
//! [`set_usage`](Budget::set_usage) does both steps at once: for a standalone budget (an
//! application's unit tests, a custom feed), pass a value read *after* the releases it should
//! reflect.
//!
//! ## Held memory is counted twice — release early
//! While a reservation is held *and* its memory is allocated and sampled, the bytes are
//! counted twice (in usage and in outstanding). That is conservative by design: the budget
//! cannot know whether the memory is allocated yet. **Release a reservation once its memory is
//! allocated (touched), or hold it only for short-lived memory** (a request buffer freed when
//! the request ends). Release only after touching the memory: an untouched allocation is not
//! in the usage yet.
//!
//! [`try_reserve_forced`](Budget::try_reserve_forced) is for essential work (the request that
//! frees memory, a health check): it is always granted and counted (outstanding, then
//! settling), and it reduces what others may reserve.
//!
//! # Per-thread stocks
//! Like the kernel's memory-cgroup charge stock, each thread keeps a small stock of
//! pre-charged bytes per budget, at most [`STOCK_CAP_BYTES`] (64 KiB). A request that fits
//! the calling thread's stock is served from it without a read-modify-write of any shared
//! cache line, after checking with plain loads that the level is not `Critical` and that
//! `committed <= soft_limit` (the latter once per *generation*: the generation advances on
//! every change that can bring the total over the limit — a sample, a lower soft limit, a
//! forced reservation going over — so the shared counter's line, written by other threads'
//! top-ups, is not read on every request). A larger request charges the shared counter
//! exactly (using the stock first), and a small one that does not fit tops the stock up to
//! 64 KiB in the same step. Every release, whatever its size, is recorded in the releasing
//! thread's own settling counters, which the sampler reads: it touches no shared line either.
//!
//! Stocked bytes are part of `committed`, so:
//! * a request may be refused up to 64 KiB × (threads holding a stock for this budget) early,
//!   never late — the error's `available` and [`Budget::available`] include the calling
//!   thread's own stock, so they are exact for that thread;
//! * [`outstanding`](Budget::outstanding) subtracts the stocks (and settling) from the shared
//!   counter: it is exact whenever no reservation is in flight;
//! * a thread's stock returns to the shared counter when the thread exits (its settling bytes
//!   move to the shared buckets), or at once with [`Budget::flush_stock`]. If the thread's
//!   storage is already gone (a reservation dropped in another thread-local destructor), the
//!   shared path is used instead.
//!
//! A budget has a unique id that is never reused; a thread's entry for a dropped budget is
//! pruned on that thread's next new entry and never brings the budget back.
//!
//! # Accounting guarantees
//! * `try_reserve` never blocks, never makes a syscall and never allocates on success, except
//!   on a thread's first use of a budget (it registers the thread's stock). In a guard's
//!   budget, the first release after each usage sample and a refusal while released bytes are
//!   settling each wake the guard's watcher (one `eventfd` write, at most once per sample; see
//!   "Settling").
//! * A [`Reservation`] returns its bytes exactly once — when dropped or
//!   [`release`](Reservation::release)d — and only ever moves what it added, so no total can
//!   go negative or leak, whatever the order of drops across threads. (Forgetting a
//!   reservation with [`std::mem::forget`] keeps its bytes outstanding.)
//!
//! # Borrowed and owned reservations
//! [`Budget::try_reserve`] returns a [`Reservation<'_>`](Reservation) that borrows the
//! budget: no reference count is touched, so reserving from many threads does not contend on
//! one. [`Budget::try_reserve_owned`] returns a `Reservation<'static>` holding its own
//! reference (one reference-count increment and decrement), for bindings, spawned tasks and
//! structs that must not borrow — like tokio's `SemaphorePermit` / `OwnedSemaphorePermit`.
//! [`Reservation::into_owned`] converts.
//!
//! # Sub-budgets
//! [`Budget::sub_budget`] gives a named child with its own cap, like Elasticsearch's child
//! circuit breakers: a sub-budget reservation must fit both the child's cap (on its live
//! reservations) and the parent rule above, and returns its bytes to both.
//! [`BudgetExceeded::scope`] tells which refused.
//!
//! # Logging
//! A refused request logs a `tracing` `debug` event (target `memguard::budget`) with the fields
//! `requested`, `available`, `soft_limit`, `level`, `scope` and `suppressed`; at most one per
//! second per budget, `suppressed` counting the refusals not logged since the previous event.

#[cfg(all(test, shuttle))]
mod model_check;
mod reservation;
mod stock;
mod sub;

pub(crate) use crate::ratelimit::LogLimiter;
pub use reservation::Reservation;
pub use stock::STOCK_CAP_BYTES;
pub use sub::SubBudget;

use crate::sync::atomic::{
    AtomicBool, AtomicU64, AtomicU8,
    Ordering::{AcqRel, Acquire, Relaxed, Release, SeqCst},
};
use crate::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::level::Level;
use stock::{parity, StockCell};

/// Keeps a group of atomics on its own cache line(s), so that the read-mostly inputs are not
/// invalidated by writes to the others.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Inputs written by the watcher (once per sample or level change), read by every request.
#[derive(Debug)]
struct Inputs {
    soft_limit: AtomicU64,
    usage: AtomicU64,
    /// Advanced before each usage sample's read; its parity selects the settling bucket.
    epoch: AtomicU64,
    /// Advanced after every change that can bring `usage + committed` over the soft limit (a
    /// sample, a soft-limit change, a forced reservation going over): a thread that found the
    /// budget under its limit at this generation need not look again before serving from its
    /// stock. Exact-path charges never go over the limit and do not advance it.
    generation: AtomicU64,
    level: AtomicU8,
}

#[derive(Debug, Default)]
struct Counters {
    /// Grants not counted in a live thread's stock cell.
    granted: AtomicU64,
    refused: AtomicU64,
    forced: AtomicU64,
}

/// The source of unique budget ids (never reused).
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

#[derive(Debug)]
pub(crate) struct Shared {
    /// Unique, never reused: the key of the thread-local stocks.
    id: u64,
    inputs: Padded<Inputs>,
    /// outstanding + settling + stocks: everything charged, apart from the usage. Written by
    /// exact-path requests, stock top-ups, samples and thread exits.
    committed: Padded<AtomicU64>,
    /// Settling bytes of the shared path (releases without a thread stock, exited threads).
    settling: Padded<[AtomicU64; 2]>,
    counters: Padded<Counters>,
    /// The stocks of the live threads that used this budget.
    stocks: stock::Registry,
    /// Serializes usage samples (begin .. finish).
    sampler: Mutex<()>,
    subs: Mutex<HashMap<String, Arc<sub::SubShared>>>,
    log: LogLimiter,
    /// How the budget asks its watcher for a usage sample (see [`SampleRequests`]).
    requests: Padded<SampleRequests>,
}

/// Released bytes stay counted until a usage sample shows them: a service that reserves and
/// releases quickly (a reservation per request) would otherwise run out of room it never
/// used while the watcher samples at its idle pace. So the budget asks its watcher (a guard's
/// reactor; nobody for a standalone budget) for a sample: *soon* (within the guard's settling
/// interval) on the first release since the last sample began, and *now* when a request is
/// refused while released bytes are settling. Each kind is asked at most once per sample.
struct SampleRequests {
    hook: std::sync::OnceLock<Box<dyn Fn(SampleUrgency) + Send + Sync>>,
    asked_soon: AtomicBool,
    asked_now: AtomicBool,
}

impl Default for SampleRequests {
    fn default() -> Self {
        SampleRequests {
            hook: std::sync::OnceLock::new(),
            asked_soon: AtomicBool::new(false),
            asked_now: AtomicBool::new(false),
        }
    }
}

impl fmt::Debug for SampleRequests {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SampleRequests").field("hooked", &self.hook.get().is_some()).finish_non_exhaustive()
    }
}

/// How soon the budget needs a usage sample (see [`Budget::on_sample_request`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SampleUrgency {
    /// Reservations were released: sample within the settling interval.
    Soon,
    /// A request was refused while released bytes were settling: sample now.
    Now,
}

/// Why a non-forced reservation was refused at a given moment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ParentRefusal {
    available: u64,
    soft_limit: u64,
    level: Level,
}

/// The totals behind `outstanding`, `settling` and the stocks, read under the registry lock.
#[derive(Debug, Clone, Copy)]
struct Totals {
    committed: u64,
    settling: u64,
    stocked: u64,
    granted: u64,
}

impl Totals {
    fn outstanding(&self) -> u64 {
        self.committed.saturating_sub(self.settling.saturating_add(self.stocked))
    }
}

/// A usage sample in progress ([`Budget::begin_usage_sample`]); samples are serialized.
#[derive(Debug)]
pub(crate) struct UsageSample<'a> {
    _serial: MutexGuard<'a, ()>,
    /// The epoch that ended when this sample began.
    epoch: u64,
}

impl Shared {
    fn level(&self) -> Level {
        Level::from_u8(self.inputs.level.load(Relaxed))
    }

    /// Reserve `bytes` under the parent rule: from this thread's stock when it covers them,
    /// otherwise from the shared counter (topping the stock up for small requests).
    #[inline]
    pub(crate) fn reserve(self: &Arc<Self>, bytes: u64) -> Result<(), ParentRefusal> {
        let level = self.level();
        if level == Level::Critical {
            return Err(ParentRefusal { available: 0, soft_limit: self.inputs.soft_limit.load(Relaxed), level });
        }
        let stocked = stock::with_cell(self, |cell| {
            let free = cell.free();
            if bytes <= free && self.under_limit_for(cell) {
                cell.set_free(free - bytes);
            } else {
                let target = if bytes <= STOCK_CAP_BYTES { STOCK_CAP_BYTES } else { 0 };
                cell.set_free(self.charge(bytes, free, target, level)?);
            }
            cell.count_granted();
            Ok(())
        });
        match stocked {
            Some(result) => result,
            None => {
                self.charge(bytes, 0, 0, level)?;
                self.counters.granted.fetch_add(1, Relaxed);
                Ok(())
            }
        }
    }

    /// `usage + committed <= soft_limit`, the condition for serving from a stock. Checked with
    /// plain loads, and only once per generation and thread: the shared counter's line is
    /// written by every stock top-up, and reading it on every request is what made two threads
    /// cost twice one (see the bench); nothing but a change that advances the generation can
    /// bring the total over the limit.
    #[inline]
    fn under_limit_for(&self, cell: &StockCell) -> bool {
        let generation = self.inputs.generation.load(Acquire);
        if cell.checked_under(generation) {
            return true;
        }
        // Loaded after the generation (Acquire): at least as new as the change that advanced it.
        let committed = self.committed.load(Acquire);
        let usage = self.inputs.usage.load(Relaxed);
        let under = usage.checked_add(committed).is_some_and(|c| c <= self.inputs.soft_limit.load(Relaxed));
        if under {
            cell.set_checked_under(generation);
        }
        under
    }

    /// Something that may have brought `usage + committed` over the soft limit happened.
    fn advance_generation(&self) {
        self.inputs.generation.fetch_add(1, Release);
    }

    /// Charge the shared counter for a request of `bytes` of which the caller's stock (`free`
    /// bytes) covers what it can, topping the stock up to `target` bytes after serving when
    /// that fits too. Returns the stock left after serving.
    fn charge(&self, bytes: u64, free: u64, target: u64, level: Level) -> Result<u64, ParentRefusal> {
        let need = bytes.saturating_sub(free);
        let left = free.saturating_sub(bytes);
        let extra = target.saturating_sub(left);
        let committed = &self.committed.0;
        let mut current = committed.load(Acquire);
        loop {
            let usage = self.inputs.usage.load(Relaxed);
            let soft_limit = self.inputs.soft_limit.load(Relaxed);
            let base = usage.checked_add(current);
            let fits = |charge: u64| base.and_then(|b| b.checked_add(charge)).is_some_and(|t| t <= soft_limit);
            let charge = match need.checked_add(extra) {
                Some(with_extra) if fits(with_extra) => with_extra,
                _ if fits(need) => need,
                _ => {
                    let available = match base {
                        Some(b) if b <= soft_limit => (soft_limit - b).saturating_add(free),
                        _ => 0,
                    };
                    return Err(ParentRefusal { available, soft_limit, level });
                }
            };
            if charge == 0 {
                return Ok(left);
            }
            // `usage + current + charge <= soft_limit`: no overflow. Relaxed on success: the
            // counter is the only data; Acquire on failure, like the first load.
            match committed.compare_exchange_weak(current, current + charge, Relaxed, Acquire) {
                Ok(_) => return Ok(left + (charge - need)),
                Err(actual) => current = actual,
            }
        }
    }

    /// Add `bytes` unconditionally (saturating); returns the amount added.
    pub(crate) fn reserve_forced(&self, bytes: u64) -> u64 {
        let before = match self.committed.fetch_update(Relaxed, Relaxed, |c| Some(c.saturating_add(bytes))) {
            Ok(c) | Err(c) => c,
        };
        let after = before.saturating_add(bytes);
        let usage = self.inputs.usage.load(Relaxed);
        if usage.checked_add(after).map_or(true, |c| c > self.inputs.soft_limit.load(Relaxed)) {
            self.advance_generation();
        }
        after - before
    }

    /// Return `bytes` previously reserved: they move to settling (this thread's counters, or
    /// the shared bucket) until a usage sample that began after now.
    #[inline]
    pub(crate) fn release(self: &Arc<Self>, bytes: u64) {
        if bytes == 0 {
            return;
        }
        // SeqCst, paired with the SeqCst increment in `begin_usage_sample`: a release ordered
        // after a sample began sees the new epoch, so that sample never clears it.
        let epoch = self.inputs.epoch.load(SeqCst);
        if stock::with_cell(self, |cell| cell.add_released(epoch, bytes)).is_none() {
            self.settling[parity(epoch)].fetch_add(bytes, Release);
        }
        if !self.requests.asked_soon.load(Relaxed) {
            self.ask_for_sample(SampleUrgency::Soon);
        }
    }

    /// Ask the watcher for a sample (at most once per kind and sample; nothing without a hook).
    fn ask_for_sample(&self, urgency: SampleUrgency) {
        let r = &self.requests;
        let asked = match urgency {
            SampleUrgency::Soon => &r.asked_soon,
            SampleUrgency::Now => &r.asked_now,
        };
        if !asked.swap(true, Relaxed) {
            if let Some(hook) = r.hook.get() {
                hook(urgency);
            }
        }
    }

    /// Subtract `bytes` from `committed` (bytes that were part of it).
    fn uncharge(&self, bytes: u64) {
        if bytes > 0 {
            let result = self.committed.fetch_update(Release, Relaxed, |c| Some(c.saturating_sub(bytes)));
            debug_assert!(result.is_ok_and(|c| c >= bytes), "budget underflow: uncharging {bytes} of {result:?}");
        }
    }

    /// A thread's stock goes back: its free bytes leave `committed`, its settling bytes move
    /// to the shared buckets of the same parity, its grant count to the shared counter.
    pub(crate) fn retire(&self, cell: &Arc<StockCell>) {
        let mut cells = self.stocks.lock();
        cells.retain(|c| !Arc::ptr_eq(c, cell));
        for p in 0..2 {
            let pending = cell.take_pending(p);
            if pending > 0 {
                self.settling[p].fetch_add(pending, Release);
            }
        }
        self.uncharge(cell.free());
        cell.set_free(0);
        self.counters.granted.fetch_add(cell.granted(), Relaxed);
        drop(cells);
    }

    fn begin_usage_sample(&self) -> UsageSample<'_> {
        let serial = self.sampler.lock().unwrap_or_else(PoisonError::into_inner);
        // Releases from now on wait for a later sample: they may ask for one again.
        self.requests.asked_soon.store(false, Relaxed);
        self.requests.asked_now.store(false, Relaxed);
        // SeqCst read-modify-write before the caller reads the kernel's files.
        let epoch = self.inputs.epoch.fetch_add(1, SeqCst);
        UsageSample { _serial: serial, epoch }
    }

    /// Returns whether reservations are being released: bytes were cleared, or some released
    /// since the sample began are waiting for the next one.
    fn finish_usage_sample(&self, sample: UsageSample<'_>, usage: u64) -> bool {
        // The usage first; the cleared bytes leave `committed` after it (Release), so a request
        // that sees the lower `committed` (Acquire) also sees this usage.
        self.inputs.usage.store(usage, Release);
        let p = parity(sample.epoch);
        let cells = self.stocks.lock();
        let mut cleared = self.settling[p].swap(0, AcqRel);
        let mut waiting = self.settling[1 - p].load(Acquire);
        for cell in cells.iter() {
            cleared = cleared.saturating_add(cell.take_pending(p));
            waiting = waiting.saturating_add(cell.pending(1 - p));
        }
        self.uncharge(cleared);
        drop(cells);
        self.advance_generation();
        drop(sample);
        cleared > 0 || waiting > 0
    }

    fn totals(&self) -> Totals {
        let cells = self.stocks.lock();
        let mut t = Totals {
            committed: self.committed.load(Acquire),
            settling: self.settling[0].load(Acquire).saturating_add(self.settling[1].load(Acquire)),
            stocked: 0,
            granted: self.counters.granted.load(Relaxed),
        };
        for cell in cells.iter() {
            t.settling = t.settling.saturating_add(cell.pending(0)).saturating_add(cell.pending(1));
            t.stocked = t.stocked.saturating_add(cell.free());
            t.granted = t.granted.wrapping_add(cell.granted());
        }
        t
    }

    /// The largest request the calling thread would be granted now.
    fn available(self: &Arc<Self>) -> u64 {
        if self.level() == Level::Critical {
            return 0;
        }
        let committed = self.committed.load(Acquire);
        let usage = self.inputs.usage.load(Relaxed);
        match usage.checked_add(committed) {
            Some(c) if c <= self.inputs.soft_limit.load(Relaxed) => {
                (self.inputs.soft_limit.load(Relaxed) - c).saturating_add(stock::free_here(self))
            }
            _ => 0,
        }
    }

    pub(crate) fn count_forced(&self) {
        self.counters.forced.fetch_add(1, Relaxed);
    }

    /// Count a refusal, log it (rate-limited) and build the error.
    pub(crate) fn refused(
        &self,
        requested: u64,
        available: u64,
        limit: u64,
        level: Level,
        scope: Option<&str>,
    ) -> BudgetExceeded {
        self.counters.refused.fetch_add(1, Relaxed);
        // Released bytes may be what is missing: settle them now rather than at the idle pace.
        let settling = self.settling[0].load(Relaxed) > 0 || self.settling[1].load(Relaxed) > 0;
        if settling || self.requests.asked_soon.load(Relaxed) {
            self.ask_for_sample(SampleUrgency::Now);
        }
        if tracing::enabled!(tracing::Level::DEBUG) {
            if let Some(suppressed) = self.log.check() {
                tracing::debug!(
                    requested,
                    available,
                    soft_limit = limit,
                    level = level.as_str(),
                    scope = scope.unwrap_or(""),
                    suppressed,
                    "budget reservation refused"
                );
            }
        }
        BudgetExceeded { requested, available, soft_limit: limit, level, scope: scope.map(str::to_owned) }
    }
}

/// The soft-limit budget (see the [module docs](self) for the model).
///
/// Cheap to clone (an [`Arc`]); all clones share the same state. `Send + Sync`.
#[derive(Clone)]
pub struct Budget {
    shared: Arc<Shared>,
}

impl Budget {
    /// A budget with the given soft limit, usage 0, level `Normal`, nothing outstanding.
    /// `u64::MAX` means "no limit known" (only the level can then refuse).
    pub fn new(soft_limit_bytes: u64) -> Budget {
        Budget {
            shared: Arc::new(Shared {
                id: NEXT_ID.fetch_add(1, Relaxed),
                inputs: Padded(Inputs {
                    soft_limit: AtomicU64::new(soft_limit_bytes),
                    usage: AtomicU64::new(0),
                    epoch: AtomicU64::new(0),
                    generation: AtomicU64::new(0),
                    level: AtomicU8::new(Level::Normal.as_u8()),
                }),
                committed: Padded::default(),
                settling: Padded::default(),
                counters: Padded::default(),
                stocks: stock::Registry::default(),
                sampler: Mutex::new(()),
                subs: Mutex::new(HashMap::new()),
                log: LogLimiter::new(Duration::from_secs(1)),
                requests: Padded::default(),
            }),
        }
    }

    /// Let `hook` ask for usage samples (a guard's watcher; set once, later calls are ignored):
    /// see the module docs' "Settling".
    pub(crate) fn on_sample_request(&self, hook: Box<dyn Fn(SampleUrgency) + Send + Sync>) {
        let _ = self.shared.requests.hook.set(hook);
    }

    /// Record a usage sample (bytes) taken *after* the releases it should reflect: every byte
    /// released before this call leaves settling (see [Settling](self#settling-counting-a-reservation-once)).
    /// For a standalone budget; a guard's budget is fed by its watcher, which brackets its
    /// reads of the kernel's files instead.
    pub fn set_usage(&self, bytes: u64) {
        let sample = self.begin_usage_sample();
        self.finish_usage_sample(sample, bytes);
    }

    /// Start a usage sample: call before reading the usage; releases from now on wait for the
    /// next sample. Samples are serialized (a concurrent `set_usage` waits).
    pub(crate) fn begin_usage_sample(&self) -> UsageSample<'_> {
        self.shared.begin_usage_sample()
    }

    /// Finish a usage sample with the value read since
    /// [`begin_usage_sample`](Self::begin_usage_sample): stores it and clears the bytes
    /// released before the sample began. Returns whether reservations are being released
    /// (bytes were cleared or are waiting for the next sample), i.e. whether a prompt next
    /// sample would let them settle.
    pub(crate) fn finish_usage_sample(&self, sample: UsageSample<'_>, usage_bytes: u64) -> bool {
        self.shared.finish_usage_sample(sample, usage_bytes)
    }

    /// Record the current pressure level. At [`Level::Critical`] every non-forced request is
    /// refused. Called by the watcher on every level change.
    pub fn set_level(&self, level: Level) {
        self.shared.inputs.level.store(level.as_u8(), Relaxed);
    }

    /// Change the soft limit (bytes), for example when the effective limit changes.
    /// Existing reservations are kept even if they now exceed it.
    pub fn set_soft_limit(&self, bytes: u64) {
        if bytes < self.shared.inputs.soft_limit.swap(bytes, Relaxed) {
            self.shared.advance_generation();
        }
    }

    /// The soft limit in bytes.
    pub fn soft_limit(&self) -> u64 {
        self.shared.inputs.soft_limit.load(Relaxed)
    }

    /// The last usage sample in bytes.
    pub fn usage(&self) -> u64 {
        self.shared.inputs.usage.load(Relaxed)
    }

    /// The last level set.
    pub fn level(&self) -> Level {
        self.shared.level()
    }

    /// Bytes held by live reservations (forced ones included): the shared counter minus
    /// settling and the threads' stocks. Exact whenever no reservation is in flight.
    pub fn outstanding(&self) -> u64 {
        self.shared.totals().outstanding()
    }

    /// Bytes of released reservations not yet reflected by a usage sample (still counted).
    pub fn settling(&self) -> u64 {
        self.shared.totals().settling
    }

    /// Bytes pre-charged in the threads' stocks and not handed out (counted against the soft
    /// limit; at most [`STOCK_CAP_BYTES`] per thread).
    pub fn stocked(&self) -> u64 {
        self.shared.totals().stocked
    }

    /// What the rule charges against the soft limit before a request:
    /// `usage + outstanding + settling + stocked`.
    pub fn committed(&self) -> u64 {
        self.usage().saturating_add(self.shared.committed.load(Acquire))
    }

    /// The largest request [`try_reserve`](Self::try_reserve) would grant to the calling
    /// thread right now: `soft_limit - committed` plus this thread's stock, or 0 at
    /// `Critical` or over the soft limit.
    pub fn available(&self) -> u64 {
        self.shared.available()
    }

    /// Hand the calling thread's stock for this budget back to the shared counter now, as its
    /// exit would (its settling bytes keep waiting for their sample). Returns whether it had
    /// one. Useful before a thread goes idle for long.
    pub fn flush_stock(&self) -> bool {
        stock::flush(&self.shared)
    }

    /// Reserve `bytes` if the budget allows it (see the [module docs](self)). Never blocks;
    /// no syscall and no allocation when granted (but on a thread's first use of this budget).
    /// The reservation borrows the budget; see [`try_reserve_owned`](Self::try_reserve_owned).
    ///
    /// # Errors
    /// [`BudgetExceeded`] (with `scope: None`) if `committed + bytes` would exceed the soft
    /// limit or the level is `Critical`.
    #[inline]
    pub fn try_reserve(&self, bytes: u64) -> Result<Reservation<'_>, BudgetExceeded> {
        match self.shared.reserve(bytes) {
            Ok(()) => Ok(Reservation::borrowed(&self.shared, None, bytes)),
            Err(r) => Err(self.shared.refused(bytes, r.available, r.soft_limit, r.level, None)),
        }
    }

    /// Like [`try_reserve`](Self::try_reserve), but the reservation holds its own reference to
    /// the budget (`'static`: for bindings, spawned tasks, long-lived structs).
    ///
    /// # Errors
    /// As [`try_reserve`](Self::try_reserve).
    pub fn try_reserve_owned(&self, bytes: u64) -> Result<Reservation<'static>, BudgetExceeded> {
        self.try_reserve(bytes).map(Reservation::into_owned)
    }

    /// Reserve `bytes` for essential work: always granted (even at `Critical` or over the
    /// limit) and counted as forced. The count saturates at `u64::MAX`;
    /// [`Reservation::bytes`] tells what was actually counted.
    pub fn try_reserve_forced(&self, bytes: u64) -> Reservation<'_> {
        let added = self.shared.reserve_forced(bytes);
        self.shared.count_forced();
        Reservation::borrowed(&self.shared, None, added)
    }

    /// Like [`try_reserve_forced`](Self::try_reserve_forced), holding its own reference.
    pub fn try_reserve_forced_owned(&self, bytes: u64) -> Reservation<'static> {
        self.try_reserve_forced(bytes).into_owned()
    }

    /// The sub-budget called `name`, created with `cap_bytes` on first use. The same name
    /// always returns the same sub-budget; calling again with another cap changes its cap
    /// (like [`SubBudget::set_cap`]).
    pub fn sub_budget(&self, name: &str, cap_bytes: u64) -> SubBudget {
        let mut subs = self.shared.subs.lock().unwrap_or_else(PoisonError::into_inner);
        let sub = match subs.get(name) {
            Some(sub) => {
                sub.set_cap(cap_bytes);
                Arc::clone(sub)
            }
            None => {
                let sub = Arc::new(sub::SubShared::new(name, cap_bytes));
                subs.insert(name.to_owned(), Arc::clone(&sub));
                sub
            }
        };
        SubBudget::new(self.clone(), sub)
    }

    /// Requests refused so far (one atomic load; the watcher's shedding trigger reads it on
    /// every sample).
    pub(crate) fn refused_total(&self) -> u64 {
        self.shared.counters.refused.load(Relaxed)
    }

    /// A snapshot of the inputs and counters (sub-budgets sorted by name).
    pub fn stats(&self) -> BudgetStats {
        let s = &self.shared;
        let mut sub_budgets: Vec<SubBudgetStats> =
            s.subs.lock().unwrap_or_else(PoisonError::into_inner).values().map(|sub| sub.stats()).collect();
        sub_budgets.sort_by(|a, b| a.name.cmp(&b.name));
        let t = s.totals();
        BudgetStats {
            soft_limit_bytes: self.soft_limit(),
            usage_bytes: self.usage(),
            outstanding_bytes: t.outstanding(),
            settling_bytes: t.settling,
            stocked_bytes: t.stocked,
            available_bytes: self.available(),
            level: self.level(),
            granted: t.granted,
            refused: s.counters.refused.load(Relaxed),
            forced: s.counters.forced.load(Relaxed),
            sub_budgets,
        }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

impl fmt::Debug for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.shared.totals();
        f.debug_struct("Budget")
            .field("soft_limit", &self.soft_limit())
            .field("usage", &self.usage())
            .field("outstanding", &t.outstanding())
            .field("settling", &t.settling)
            .field("stocked", &t.stocked)
            .field("level", &self.level())
            .finish_non_exhaustive()
    }
}

/// A refused reservation.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetExceeded {
    /// Bytes asked for (for a [`Reservation::resize`], the growth).
    pub requested: u64,
    /// The most that could have been granted at that moment in the refusing scope to the
    /// requesting thread (0 at `Critical`; for a sub-budget, the smaller of its cap room and
    /// the parent's room).
    pub available: u64,
    /// The limit that refused: the budget's soft limit, or the sub-budget's cap when
    /// [`scope`](Self::scope) is `Some`.
    pub soft_limit: u64,
    /// The level at that moment.
    pub level: Level,
    /// `Some(name)` when the cap of sub-budget `name` refused; `None` when the parent budget
    /// (its soft limit or the level) refused.
    pub scope: Option<String>,
}

impl fmt::Display for BudgetExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.scope {
            Some(name) => write!(
                f,
                "memory budget exceeded in sub-budget {name:?}: requested {} bytes, {} available, cap {} bytes, level {}",
                self.requested, self.available, self.soft_limit, self.level
            ),
            None => write!(
                f,
                "memory budget exceeded: requested {} bytes, {} available, soft limit {} bytes, level {}",
                self.requested, self.available, self.soft_limit, self.level
            ),
        }
    }
}

impl std::error::Error for BudgetExceeded {}

/// A snapshot of a [`Budget`] ([`Budget::stats`]).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetStats {
    /// The soft limit in bytes.
    pub soft_limit_bytes: u64,
    /// The last usage sample in bytes.
    pub usage_bytes: u64,
    /// Bytes held by live reservations.
    pub outstanding_bytes: u64,
    /// Bytes released but not yet reflected by a usage sample (still counted).
    pub settling_bytes: u64,
    /// Bytes pre-charged in the threads' stocks (still counted).
    pub stocked_bytes: u64,
    /// What [`Budget::available`] returned.
    pub available_bytes: u64,
    /// The last level set.
    pub level: Level,
    /// Requests granted (non-forced reservations, sub-budgets' included, and growing resizes).
    pub granted: u64,
    /// Requests refused (sub-budgets' and resizes' included).
    pub refused: u64,
    /// Forced reservations (sub-budgets' included).
    pub forced: u64,
    /// Per sub-budget, sorted by name.
    pub sub_budgets: Vec<SubBudgetStats>,
}

/// A snapshot of one [`SubBudget`].
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubBudgetStats {
    /// The sub-budget's name.
    pub name: String,
    /// Its cap in bytes.
    pub cap_bytes: u64,
    /// Bytes held by its live reservations.
    pub outstanding_bytes: u64,
    /// Its requests granted.
    pub granted: u64,
    /// Its requests refused (by its cap or by the parent).
    pub refused: u64,
    /// Its forced reservations.
    pub forced: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    #[test]
    fn grants_within_the_soft_limit() {
        let b = Budget::new(100);
        let r1 = b.try_reserve(60).expect("first");
        assert_eq!(b.outstanding(), 60);
        assert_eq!(b.available(), 40);
        let err = b.try_reserve(41).expect_err("over");
        assert_eq!(
            err,
            BudgetExceeded { requested: 41, available: 40, soft_limit: 100, level: Level::Normal, scope: None }
        );
        let r2 = b.try_reserve(40).expect("exactly to the limit");
        assert_eq!(b.available(), 0);
        drop(r1);
        r2.release();
        assert_eq!(b.outstanding(), 0);
        let s = b.stats();
        assert_eq!((s.granted, s.refused, s.forced), (2, 1, 0));
    }

    /// Issue #9: 600 MiB used of a 1 GiB limit (soft limit 0.85): eight 100 MiB
    /// reserve-before-allocate requests must not all be granted; exactly two fit.
    #[test]
    fn six_hundred_mib_used_of_one_gib_grants_two_of_eight_100_mib() {
        let soft = (GIB as f64 * 0.85) as u64;
        let b = Budget::new(soft);
        b.set_usage(600 * MIB);
        let results: Vec<_> = (0..8).map(|_| b.try_reserve(100 * MIB)).collect();
        let granted = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(granted, 2, "600 + 100 + 100 = 800 <= 870.4 < 900");
        assert!(results[0].is_ok() && results[1].is_ok());
        for r in &results[2..] {
            let e = r.as_ref().expect_err("refused");
            assert_eq!((e.requested, e.available, e.soft_limit), (100 * MIB, soft - 800 * MIB, soft));
        }
        assert_eq!(b.outstanding(), 200 * MIB);
        assert_eq!(b.available(), soft - 800 * MIB);
    }

    #[test]
    fn released_bytes_settle_until_a_sample_that_began_after_the_release() {
        let b = Budget::new(1000);
        b.set_usage(100);
        let r = b.try_reserve(500).expect("100 + 500 <= 1000");
        assert_eq!(b.available(), 400);
        drop(r); // its memory is allocated and kept: the next sample will show it
        assert_eq!((b.outstanding(), b.settling(), b.committed()), (0, 500, 600));
        assert_eq!(b.available(), 400, "the released bytes are still counted");
        assert!(b.try_reserve(401).is_err());
        b.set_usage(600); // a sample read after the release: it shows the memory
        assert_eq!((b.settling(), b.committed(), b.available()), (0, 600, 400), "counted once");
        b.set_usage(100); // and once the memory is freed, it shows that too
        assert_eq!(b.available(), 900);
    }

    #[test]
    fn a_release_during_a_sample_waits_for_the_next_one() {
        let b = Budget::new(1000);
        let before = b.try_reserve(100).expect("before");
        let during = b.try_reserve(200).expect("during");
        drop(before);
        let sample = b.begin_usage_sample(); // the watcher starts reading the kernel's files
        drop(during); // released while the read is in progress: maybe not in what it reads
        b.finish_usage_sample(sample, 100);
        assert_eq!((b.usage(), b.settling(), b.committed()), (100, 200, 300), "only the earlier release cleared");
        b.set_usage(300);
        assert_eq!((b.settling(), b.committed()), (0, 300));
    }

    #[test]
    fn a_sample_tells_whether_reservations_are_being_released() {
        let b = Budget::new(1000);
        let s = b.begin_usage_sample();
        assert!(!b.finish_usage_sample(s, 0), "nothing released");
        drop(b.try_reserve(10).expect("reserve"));
        let s = b.begin_usage_sample();
        assert!(b.finish_usage_sample(s, 0), "cleared some");
        let s = b.begin_usage_sample();
        drop(b.try_reserve(10).expect("reserve"));
        assert!(b.finish_usage_sample(s, 0), "some wait for the next sample");
        let s = b.begin_usage_sample();
        assert!(b.finish_usage_sample(s, 0), "cleared them");
        let s = b.begin_usage_sample();
        assert!(!b.finish_usage_sample(s, 0), "quiet again");
    }

    #[test]
    fn a_sample_abandoned_before_finishing_clears_nothing() {
        let b = Budget::new(1000);
        drop(b.try_reserve(100).expect("reserve"));
        drop(b.begin_usage_sample()); // the read failed
        assert_eq!(b.settling(), 100);
        drop(b.try_reserve(50).expect("reserve"));
        b.set_usage(0);
        assert_eq!(b.settling(), 100, "the older bytes landed in the bucket now in use: one sample late");
        b.set_usage(0);
        assert_eq!((b.settling(), b.committed()), (0, 0));
    }

    #[test]
    fn a_held_reservation_whose_memory_is_sampled_counts_twice() {
        let b = Budget::new(1000);
        let r = b.try_reserve(300).expect("reserve");
        b.set_usage(300); // allocated while held
        assert_eq!(b.available(), 400, "conservative: usage and outstanding both count it");
        drop(r);
        b.set_usage(300);
        assert_eq!(b.available(), 700);
    }

    #[test]
    fn usage_growth_shrinks_available() {
        let b = Budget::new(100 * MIB);
        assert_eq!(b.available(), 100 * MIB);
        b.set_usage(30 * MIB);
        assert_eq!(b.available(), 70 * MIB);
        let r = b.try_reserve(20 * MIB).expect("fits");
        assert_eq!(b.available(), 50 * MIB);
        let _r2 = b.try_reserve(40 * MIB).expect("fits: 30 + 20 + 40 <= 100");
        assert_eq!(b.outstanding(), 60 * MIB);
        assert_eq!(b.available(), 10 * MIB);
        assert!(b.try_reserve(11 * MIB).is_err());
        b.set_usage(35 * MIB);
        assert_eq!(b.available(), 5 * MIB);
        b.set_usage(200 * MIB);
        assert_eq!(b.available(), 0);
        assert_eq!(b.try_reserve(0).map(|r| r.bytes()).ok(), None, "over the limit even 0 is refused");
        drop(r);
    }

    #[test]
    fn critical_refuses_then_normal_grants() {
        let b = Budget::new(100);
        b.set_level(Level::Critical);
        let err = b.try_reserve(1).expect_err("critical");
        assert_eq!(err.level, Level::Critical);
        assert_eq!(err.available, 0);
        assert_eq!(b.available(), 0);
        let forced = b.try_reserve_forced(500);
        assert_eq!(forced.bytes(), 500);
        assert_eq!(b.outstanding(), 500);
        b.set_level(Level::Normal);
        assert!(b.try_reserve(1).is_err(), "forced bytes count against the limit");
        drop(forced);
        assert!(b.try_reserve(1).is_err(), "and settle once released");
        b.set_usage(0);
        assert!(b.try_reserve(1).is_ok());
        b.set_level(Level::Warning);
        assert!(b.try_reserve(99).is_ok(), "warning does not refuse");
        assert_eq!(b.stats().forced, 1);
    }

    #[test]
    fn soft_limit_changes_apply_to_new_requests_only() {
        let b = Budget::new(1000);
        let r = b.try_reserve(600).expect("reserve");
        b.set_soft_limit(500);
        assert_eq!((b.available(), r.bytes(), b.outstanding()), (0, 600, 600), "kept, nothing more granted");
        assert!(b.try_reserve(0).is_err());
        b.set_soft_limit(2000);
        assert_eq!(b.available(), 1400);
    }

    #[test]
    fn forced_saturates() {
        let b = Budget::new(u64::MAX);
        let a = b.try_reserve_forced(u64::MAX - 10);
        let c = b.try_reserve_forced(100);
        assert_eq!(c.bytes(), 10);
        assert_eq!(b.outstanding(), u64::MAX);
        drop(a);
        drop(c);
        assert_eq!((b.outstanding(), b.settling()), (0, u64::MAX));
        b.set_usage(0);
        assert_eq!((b.settling(), b.committed()), (0, 0));
    }

    #[test]
    fn huge_request_is_refused_not_overflowed() {
        let b = Budget::new(u64::MAX);
        let _r = b.try_reserve(10).expect("small");
        let err = b.try_reserve(u64::MAX).expect_err("overflow");
        assert_eq!(err.available, u64::MAX - 10);
        b.set_usage(u64::MAX);
        assert_eq!(b.try_reserve(1).expect_err("usage at the maximum").available, 0);
    }

    #[test]
    fn display_names_everything() {
        let e = BudgetExceeded { requested: 5, available: 3, soft_limit: 9, level: Level::Warning, scope: None };
        let s = e.to_string();
        assert!(
            s.contains("requested 5") && s.contains("3 available") && s.contains("9 bytes") && s.contains("warning")
        );
        let e = BudgetExceeded { scope: Some("cache".into()), ..e };
        assert!(e.to_string().contains("\"cache\""));
    }

    #[test]
    fn stats_serialize() {
        let b = Budget::new(10);
        let _s = b.sub_budget("x", 5);
        let json = serde_json::to_string(&b.stats()).expect("serialize");
        assert!(json.contains("\"level\":\"normal\"") && json.contains("\"name\":\"x\""), "{json}");
        assert!(json.contains("\"settling_bytes\":0") && json.contains("\"stocked_bytes\":0"), "{json}");
    }

    #[test]
    fn types_are_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<Budget>();
        check::<Reservation<'static>>();
        check::<Reservation<'_>>();
        check::<SubBudget>();
    }
}
