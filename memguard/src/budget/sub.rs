//! [`SubBudget`]: a named child of a [`Budget`] with its own cap.

use crate::sync::atomic::{AtomicU64, Ordering::Relaxed};
use crate::sync::Arc;
use std::fmt;

use super::{Budget, BudgetExceeded, Reservation, Shared, SubBudgetStats};
use crate::level::Level;

#[derive(Debug)]
pub(crate) struct SubShared {
    name: String,
    cap: AtomicU64,
    outstanding: AtomicU64,
    granted: AtomicU64,
    refused: AtomicU64,
    forced: AtomicU64,
}

impl SubShared {
    pub(crate) fn new(name: &str, cap: u64) -> Self {
        SubShared {
            name: name.to_owned(),
            cap: AtomicU64::new(cap),
            outstanding: AtomicU64::new(0),
            granted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            forced: AtomicU64::new(0),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn set_cap(&self, cap: u64) {
        self.cap.store(cap, Relaxed);
    }

    /// Add `bytes` if `outstanding + bytes <= cap`; otherwise `Err(room left under the cap)`.
    fn reserve_own(&self, bytes: u64) -> Result<(), u64> {
        let cap = self.cap.load(Relaxed);
        let mut current = self.outstanding.load(Relaxed);
        loop {
            match current.checked_add(bytes) {
                Some(next) if next <= cap => {
                    match self.outstanding.compare_exchange_weak(current, next, Relaxed, Relaxed) {
                        Ok(_) => return Ok(()),
                        Err(actual) => current = actual,
                    }
                }
                _ => return Err(cap.saturating_sub(current)),
            }
        }
    }

    fn reserve_own_forced(&self, bytes: u64) {
        let mut current = self.outstanding.load(Relaxed);
        loop {
            // `bytes` was already clamped by the parent; saturation here cannot happen unless the
            // parent saturated too, and then the same clamped amount is subtracted later.
            let next = current.saturating_add(bytes);
            match self.outstanding.compare_exchange_weak(current, next, Relaxed, Relaxed) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    pub(crate) fn release(&self, bytes: u64) {
        // Same invariant as the parent: only what was added is subtracted.
        let before = self.outstanding.fetch_sub(bytes, Relaxed);
        debug_assert!(before >= bytes, "sub-budget {:?} underflow: releasing {bytes} of {before}", self.name);
    }

    pub(crate) fn count_granted(&self) {
        self.granted.fetch_add(1, Relaxed);
    }

    /// Reserve `bytes` in this sub-budget and in the parent, or neither. Counts the refusal
    /// (in both) on failure; the parent counts its grant, the caller the sub-budget's.
    pub(crate) fn reserve_with_parent(&self, parent: &Arc<Shared>, bytes: u64) -> Result<(), BudgetExceeded> {
        let refuse = |available: u64, limit: u64, level: Level, scope: Option<&str>| {
            self.refused.fetch_add(1, Relaxed);
            parent.refused(bytes, available, limit, level, scope)
        };
        let level = parent.level();
        if level == Level::Critical {
            return Err(refuse(0, parent.inputs.soft_limit.load(Relaxed), level, None));
        }
        if let Err(room) = self.reserve_own(bytes) {
            let available = room.min(parent.available());
            return Err(refuse(available, self.cap.load(Relaxed), level, Some(&self.name)));
        }
        if let Err(r) = parent.reserve(bytes) {
            self.release(bytes);
            let room = self.cap.load(Relaxed).saturating_sub(self.outstanding.load(Relaxed));
            return Err(refuse(r.available.min(room), r.soft_limit, r.level, None));
        }
        Ok(())
    }

    pub(crate) fn stats(&self) -> SubBudgetStats {
        SubBudgetStats {
            name: self.name.clone(),
            cap_bytes: self.cap.load(Relaxed),
            outstanding_bytes: self.outstanding.load(Relaxed),
            granted: self.granted.load(Relaxed),
            refused: self.refused.load(Relaxed),
            forced: self.forced.load(Relaxed),
        }
    }
}

/// A named child of a [`Budget`] with its own cap ([`Budget::sub_budget`]).
///
/// A reservation from a sub-budget must fit both its cap (`its outstanding + bytes <= cap`,
/// counting its live reservations only: a released byte leaves the cap at once) and the
/// parent's rule (where it settles like any release), and returns its bytes to both. Cheap to
/// clone; `Send + Sync`.
#[derive(Clone)]
pub struct SubBudget {
    parent: Budget,
    sub: Arc<SubShared>,
}

impl SubBudget {
    pub(crate) fn new(parent: Budget, sub: Arc<SubShared>) -> Self {
        SubBudget { parent, sub }
    }

    /// The sub-budget's name.
    pub fn name(&self) -> &str {
        &self.sub.name
    }

    /// The cap in bytes.
    pub fn cap(&self) -> u64 {
        self.sub.cap.load(Relaxed)
    }

    /// Change the cap. Existing reservations are kept even if they now exceed it.
    pub fn set_cap(&self, cap_bytes: u64) {
        self.sub.set_cap(cap_bytes);
    }

    /// Bytes held by this sub-budget's live reservations.
    pub fn outstanding(&self) -> u64 {
        self.sub.outstanding.load(Relaxed)
    }

    /// The largest request [`try_reserve`](Self::try_reserve) would grant right now: the
    /// smaller of the room under the cap and the parent's [`Budget::available`].
    pub fn available(&self) -> u64 {
        self.cap().saturating_sub(self.outstanding()).min(self.parent.available())
    }

    /// The parent budget.
    pub fn parent(&self) -> &Budget {
        &self.parent
    }

    /// Reserve `bytes` within this sub-budget's cap and the parent's rule. Never blocks; no
    /// syscall and no allocation when granted (but on a thread's first use of the parent).
    /// The reservation borrows this sub-budget; see [`try_reserve_owned`](Self::try_reserve_owned).
    ///
    /// # Errors
    /// [`BudgetExceeded`] with `scope: Some(name)` when the cap refused, `scope: None` when the
    /// parent (soft limit or `Critical` level) refused.
    pub fn try_reserve(&self, bytes: u64) -> Result<Reservation<'_>, BudgetExceeded> {
        let shared = self.parent.shared();
        self.sub.reserve_with_parent(shared, bytes)?;
        self.sub.count_granted();
        Ok(Reservation::borrowed(shared, Some(&self.sub), bytes))
    }

    /// Like [`try_reserve`](Self::try_reserve), but the reservation holds its own references
    /// (`'static`).
    ///
    /// # Errors
    /// As [`try_reserve`](Self::try_reserve).
    pub fn try_reserve_owned(&self, bytes: u64) -> Result<Reservation<'static>, BudgetExceeded> {
        self.try_reserve(bytes).map(Reservation::into_owned)
    }

    /// Reserve `bytes` for essential work, ignoring the cap, the soft limit and the level;
    /// counted as forced in both the sub-budget and the parent.
    pub fn try_reserve_forced(&self, bytes: u64) -> Reservation<'_> {
        let shared = self.parent.shared();
        let added = shared.reserve_forced(bytes);
        self.sub.reserve_own_forced(added);
        shared.count_forced();
        self.sub.forced.fetch_add(1, Relaxed);
        Reservation::borrowed(shared, Some(&self.sub), added)
    }

    /// Like [`try_reserve_forced`](Self::try_reserve_forced), holding its own references.
    pub fn try_reserve_forced_owned(&self, bytes: u64) -> Reservation<'static> {
        self.try_reserve_forced(bytes).into_owned()
    }

    /// A snapshot of this sub-budget's counters.
    pub fn stats(&self) -> SubBudgetStats {
        self.sub.stats()
    }
}

impl fmt::Debug for SubBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubBudget")
            .field("name", &self.name())
            .field("cap", &self.cap())
            .field("outstanding", &self.outstanding())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use crate::budget::{Budget, BudgetExceeded};
    use crate::Level;

    #[test]
    fn cap_and_parent_both_apply() {
        let b = Budget::new(100);
        let cache = b.sub_budget("cache", 30);
        let r1 = cache.try_reserve(20).expect("within cap");
        assert_eq!((cache.outstanding(), b.outstanding()), (20, 20));
        let err = cache.try_reserve(11).expect_err("over cap");
        assert_eq!(
            err,
            BudgetExceeded {
                requested: 11,
                available: 10,
                soft_limit: 30,
                level: Level::Normal,
                scope: Some("cache".into())
            }
        );
        b.set_usage(75); // 75 + 20 outstanding: 5 left under the parent's soft limit
        let err = cache.try_reserve(6).expect_err("parent refuses");
        assert_eq!((err.scope.as_deref(), err.available, err.soft_limit), (None, 5, 100));
        assert_eq!((cache.outstanding(), b.outstanding()), (20, 20), "rolled back in both");
        assert_eq!(cache.available(), 5);
        drop(r1);
        assert_eq!((cache.outstanding(), b.outstanding()), (0, 0));
        assert_eq!(cache.available(), 5, "the cap room is back at once; the parent's bytes settle");
        b.set_usage(75);
        assert_eq!(cache.available(), 25);
        let st = cache.stats();
        assert_eq!((st.granted, st.refused), (1, 2));
        assert_eq!((b.stats().granted, b.stats().refused), (1, 2));
    }

    #[test]
    fn owned_sub_budget_reservations() {
        let b = Budget::new(100);
        let r = {
            let s = b.sub_budget("s", 50);
            s.try_reserve_owned(40).expect("owned")
        };
        let f = b.sub_budget("s", 50).try_reserve_forced_owned(30);
        assert_eq!((r.scope(), f.scope()), (Some("s"), Some("s")));
        assert_eq!((b.sub_budget("s", 50).outstanding(), b.outstanding()), (70, 70));
        drop((r, f));
        assert_eq!((b.sub_budget("s", 50).outstanding(), b.outstanding(), b.settling()), (0, 0, 70));
    }

    #[test]
    fn same_name_same_sub_budget_and_cap_changes() {
        let b = Budget::new(1000);
        let a = b.sub_budget("a", 10);
        let _r = a.try_reserve(10).expect("fill");
        let again = b.sub_budget("a", 50);
        assert_eq!(again.outstanding(), 10);
        assert_eq!(a.cap(), 50);
        assert!(a.try_reserve(40).is_ok());
        a.set_cap(5);
        assert!(again.try_reserve(1).is_err());
        assert_eq!(b.stats().sub_budgets.len(), 1);
    }

    #[test]
    fn critical_and_forced() {
        let b = Budget::new(100);
        let s = b.sub_budget("s", 10);
        b.set_level(Level::Critical);
        let err = s.try_reserve(1).expect_err("critical");
        assert_eq!((err.scope, err.level), (None, Level::Critical));
        let f = s.try_reserve_forced(50);
        assert_eq!((s.outstanding(), b.outstanding()), (50, 50));
        let mut g = f;
        g.resize(10).expect("shrink");
        assert_eq!((s.outstanding(), b.outstanding()), (10, 10));
        b.set_level(Level::Normal);
        assert!(g.resize(11).is_err(), "cap");
        drop(g);
        assert_eq!((s.outstanding(), b.outstanding()), (0, 0));
        assert_eq!(s.stats().forced, 1);
    }
}
