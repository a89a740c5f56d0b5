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
//! budget.set_usage(100 << 20);         // the watcher feeds the working set
//! match budget.try_reserve(64 << 20) {
//!     Ok(reservation) => {
//!         // ... do the work; the bytes return to the budget when `reservation` drops.
//!         drop(reservation);
//!     }
//!     Err(e) => eprintln!("rejecting request: {e}"),
//! }
//! assert_eq!(budget.outstanding(), 0);
//! ```
//!
//! # Model
//! The budget knows three numbers, all updated by the watcher and stored in atomics:
//! * the **soft limit** (bytes; [`set_soft_limit`](Budget::set_soft_limit)), typically a
//!   fraction of the effective cgroup limit; `u64::MAX` means "no limit known";
//! * the **usage** (bytes; [`set_usage`](Budget::set_usage)): the latest working-set sample of
//!   the cgroup that sets the limit;
//! * the **level** ([`set_level`](Budget::set_level)).
//!
//! and one it maintains itself, **outstanding**: the sum of the live reservations.
//!
//! Reserved bytes may or may not have been allocated yet, so they may or may not already be
//! part of `usage`. The budget therefore counts memory in use *outside* reservations as
//! `usage - outstanding` (0 if negative) and the memory committed as that plus `outstanding`,
//! i.e. `max(usage, outstanding)`. A request for `bytes` is granted while
//!
//! ```text
//! max(usage, outstanding) + bytes <= soft_limit      and the level is not Critical
//! ```
//!
//! so the budget shrinks as real usage grows, a reservation whose memory has been allocated is
//! not counted twice, and every non-forced request is refused at [`Level::Critical`]. Usage is
//! a sample: between two samples, memory allocated outside reservations is not seen, which is
//! why the soft limit sits below the hard limit.
//!
//! [`try_reserve_forced`](Budget::try_reserve_forced) is for essential work (the request that
//! frees memory, a health check): it is always granted and counted, and it reduces what
//! others may reserve.
//!
//! # Accounting guarantees
//! * `try_reserve` never blocks, never makes a syscall and never allocates on success: a few
//!   atomic loads and a compare-and-swap loop on `outstanding`.
//! * A [`Reservation`] returns its bytes exactly once — when dropped or
//!   [`release`](Reservation::release)d — and only ever subtracts what it added, so
//!   `outstanding` can neither go negative nor leak, whatever the order of drops across
//!   threads. (Forgetting a reservation with [`std::mem::forget`] keeps its bytes reserved.)
//!
//! # Sub-budgets
//! [`Budget::sub_budget`] gives a named child with its own cap, like Elasticsearch's child
//! circuit breakers: a sub-budget reservation must fit both the child's cap and the parent
//! rule above, and returns its bytes to both. [`BudgetExceeded::scope`] tells which refused.
//!
//! # Logging
//! A refused request logs a `tracing` `debug` event (target `memguard::budget`) with the fields
//! `requested`, `available`, `soft_limit`, `level`, `scope` and `suppressed`; at most one per
//! second per budget, `suppressed` counting the refusals not logged since the previous event.

mod reservation;
mod sub;

pub(crate) use crate::ratelimit::LogLimiter;
pub use reservation::Reservation;
pub use sub::SubBudget;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;

use crate::level::Level;

/// Keeps a group of atomics on its own cache line(s), so that the read-mostly inputs are not
/// invalidated by every reservation in another thread.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Inputs written by the watcher, read by every reservation.
#[derive(Debug)]
struct Inputs {
    soft_limit: AtomicU64,
    usage: AtomicU64,
    level: AtomicU8,
}

/// Written by every reservation.
#[derive(Debug, Default)]
struct Hot {
    outstanding: AtomicU64,
    granted: AtomicU64,
}

#[derive(Debug, Default)]
struct Counters {
    refused: AtomicU64,
    forced: AtomicU64,
}

#[derive(Debug)]
pub(crate) struct Shared {
    inputs: Padded<Inputs>,
    hot: Padded<Hot>,
    counters: Padded<Counters>,
    subs: Mutex<HashMap<String, Arc<sub::SubShared>>>,
    log: LogLimiter,
}

/// Why a non-forced reservation was refused at a given moment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ParentRefusal {
    available: u64,
    soft_limit: u64,
    level: Level,
}

impl Shared {
    fn level(&self) -> Level {
        Level::from_u8(self.inputs.level.load(Relaxed))
    }

    /// Add `bytes` to `outstanding` if the parent rule allows it.
    #[inline]
    pub(crate) fn reserve(&self, bytes: u64) -> Result<(), ParentRefusal> {
        let level = self.level();
        let soft_limit = self.inputs.soft_limit.load(Relaxed);
        if level == Level::Critical {
            return Err(ParentRefusal { available: 0, soft_limit, level });
        }
        let usage = self.inputs.usage.load(Relaxed);
        let outstanding = &self.hot.outstanding;
        let mut current = outstanding.load(Relaxed);
        loop {
            let committed = current.max(usage);
            match committed.checked_add(bytes) {
                // `current + bytes <= committed + bytes <= soft_limit`: no overflow.
                Some(total) if total <= soft_limit => {}
                _ => return Err(ParentRefusal { available: soft_limit.saturating_sub(committed), soft_limit, level }),
            }
            // Relaxed is enough: the counter is the only data, and read-modify-writes of one
            // atomic are totally ordered.
            match outstanding.compare_exchange_weak(current, current + bytes, Relaxed, Relaxed) {
                Ok(_) => return Ok(()),
                Err(actual) => current = actual,
            }
        }
    }

    /// Add `bytes` to `outstanding` unconditionally (saturating); returns the amount added.
    pub(crate) fn reserve_forced(&self, bytes: u64) -> u64 {
        let outstanding = &self.hot.outstanding;
        let mut current = outstanding.load(Relaxed);
        loop {
            let next = current.saturating_add(bytes);
            match outstanding.compare_exchange_weak(current, next, Relaxed, Relaxed) {
                Ok(_) => return next - current,
                Err(actual) => current = actual,
            }
        }
    }

    /// Return `bytes` previously added by [`reserve`](Self::reserve) or
    /// [`reserve_forced`](Self::reserve_forced).
    #[inline]
    pub(crate) fn release(&self, bytes: u64) {
        // Every caller subtracts exactly what it added earlier, so `outstanding` (the sum of
        // what live reservations added) is at least `bytes` here: no underflow.
        let before = self.hot.outstanding.fetch_sub(bytes, Relaxed);
        debug_assert!(before >= bytes, "budget underflow: releasing {bytes} of {before} outstanding bytes");
    }

    fn available(&self) -> u64 {
        if self.level() == Level::Critical {
            return 0;
        }
        let committed = self.hot.outstanding.load(Relaxed).max(self.inputs.usage.load(Relaxed));
        self.inputs.soft_limit.load(Relaxed).saturating_sub(committed)
    }

    #[inline]
    pub(crate) fn count_granted(&self) {
        self.hot.granted.fetch_add(1, Relaxed);
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
                inputs: Padded(Inputs {
                    soft_limit: AtomicU64::new(soft_limit_bytes),
                    usage: AtomicU64::new(0),
                    level: AtomicU8::new(Level::Normal.as_u8()),
                }),
                hot: Padded::default(),
                counters: Padded::default(),
                subs: Mutex::new(HashMap::new()),
                log: LogLimiter::new(Duration::from_secs(1)),
            }),
        }
    }

    /// Record the latest working-set sample (bytes) of the cgroup that sets the limit.
    /// Called by the watcher on every usage sample.
    pub fn set_usage(&self, bytes: u64) {
        self.shared.inputs.usage.store(bytes, Relaxed);
    }

    /// Record the current pressure level. At [`Level::Critical`] every non-forced request is
    /// refused. Called by the watcher on every level change.
    pub fn set_level(&self, level: Level) {
        self.shared.inputs.level.store(level.as_u8(), Relaxed);
    }

    /// Change the soft limit (bytes), for example when the effective limit changes.
    /// Existing reservations are kept even if they now exceed it.
    pub fn set_soft_limit(&self, bytes: u64) {
        self.shared.inputs.soft_limit.store(bytes, Relaxed);
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

    /// Bytes held by live reservations (forced ones included).
    pub fn outstanding(&self) -> u64 {
        self.shared.hot.outstanding.load(Relaxed)
    }

    /// The largest request [`try_reserve`](Self::try_reserve) would grant right now:
    /// `soft_limit - max(usage, outstanding)`, or 0 at `Critical` or over the soft limit.
    pub fn available(&self) -> u64 {
        self.shared.available()
    }

    /// Reserve `bytes` if the budget allows it (see the [module docs](self)). Never blocks;
    /// no syscall and no allocation when granted.
    ///
    /// # Errors
    /// [`BudgetExceeded`] (with `scope: None`) if `max(usage, outstanding) + bytes` would exceed
    /// the soft limit or the level is `Critical`.
    #[inline]
    pub fn try_reserve(&self, bytes: u64) -> Result<Reservation, BudgetExceeded> {
        match self.shared.reserve(bytes) {
            Ok(()) => {
                self.shared.count_granted();
                Ok(Reservation::new(Arc::clone(&self.shared), None, bytes))
            }
            Err(r) => Err(self.shared.refused(bytes, r.available, r.soft_limit, r.level, None)),
        }
    }

    /// Reserve `bytes` for essential work: always granted (even at `Critical` or over the
    /// limit) and counted as forced. The count saturates at `u64::MAX`;
    /// [`Reservation::bytes`] tells what was actually counted.
    pub fn try_reserve_forced(&self, bytes: u64) -> Reservation {
        let added = self.shared.reserve_forced(bytes);
        self.shared.count_forced();
        Reservation::new(Arc::clone(&self.shared), None, added)
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

    /// A snapshot of the inputs and counters (sub-budgets sorted by name).
    pub fn stats(&self) -> BudgetStats {
        let s = &self.shared;
        let mut sub_budgets: Vec<SubBudgetStats> =
            s.subs.lock().unwrap_or_else(PoisonError::into_inner).values().map(|sub| sub.stats()).collect();
        sub_budgets.sort_by(|a, b| a.name.cmp(&b.name));
        BudgetStats {
            soft_limit_bytes: self.soft_limit(),
            usage_bytes: self.usage(),
            outstanding_bytes: self.outstanding(),
            available_bytes: self.available(),
            level: self.level(),
            granted: s.hot.granted.load(Relaxed),
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
        f.debug_struct("Budget")
            .field("soft_limit", &self.soft_limit())
            .field("usage", &self.usage())
            .field("outstanding", &self.outstanding())
            .field("level", &self.level())
            .finish_non_exhaustive()
    }
}

/// A refused reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetExceeded {
    /// Bytes asked for (for a [`Reservation::resize`], the growth).
    pub requested: u64,
    /// The most that could have been granted at that moment in the refusing scope (0 at
    /// `Critical`; for a sub-budget, the smaller of its cap room and the parent's room).
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
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetStats {
    /// The soft limit in bytes.
    pub soft_limit_bytes: u64,
    /// The last usage sample in bytes.
    pub usage_bytes: u64,
    /// Bytes held by live reservations.
    pub outstanding_bytes: u64,
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

    #[test]
    fn usage_growth_shrinks_available() {
        let b = Budget::new(100 * MIB);
        assert_eq!(b.available(), 100 * MIB);
        b.set_usage(30 * MIB);
        assert_eq!(b.available(), 70 * MIB);
        // A reservation whose memory is already in usage is not counted twice.
        let r = b.try_reserve(20 * MIB).expect("fits");
        assert_eq!(b.available(), 70 * MIB);
        let _r2 = b.try_reserve(40 * MIB).expect("fits: max(30, 20) + 40 <= 100");
        assert_eq!(b.outstanding(), 60 * MIB);
        assert_eq!(b.available(), 40 * MIB);
        b.set_usage(90 * MIB);
        assert_eq!(b.available(), 10 * MIB);
        assert!(b.try_reserve(11 * MIB).is_err());
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
        assert!(b.try_reserve(1).is_ok());
        b.set_level(Level::Warning);
        assert!(b.try_reserve(100).is_ok(), "warning does not refuse");
        assert_eq!(b.stats().forced, 1);
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
        assert_eq!(b.outstanding(), 0);
    }

    #[test]
    fn huge_request_is_refused_not_overflowed() {
        let b = Budget::new(u64::MAX);
        let _r = b.try_reserve(10).expect("small");
        let err = b.try_reserve(u64::MAX).expect_err("overflow");
        assert_eq!(err.available, u64::MAX - 10);
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
    }

    #[test]
    fn types_are_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<Budget>();
        check::<Reservation>();
        check::<SubBudget>();
    }
}
