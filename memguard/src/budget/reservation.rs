//! [`Reservation`]: bytes held from a [`Budget`](super::Budget) until dropped.

use crate::sync::Arc;
use std::fmt;

use super::sub::SubShared;
use super::{BudgetExceeded, Shared};

/// What a reservation returns its bytes to: borrowed (no reference count touched) or owned.
enum Owner<'a> {
    Borrowed(&'a Arc<Shared>, Option<&'a Arc<SubShared>>),
    Owned(Arc<Shared>, Option<Arc<SubShared>>),
}

impl Owner<'_> {
    fn budget(&self) -> &Arc<Shared> {
        match self {
            Owner::Borrowed(b, _) => b,
            Owner::Owned(b, _) => b,
        }
    }

    fn sub(&self) -> Option<&SubShared> {
        match self {
            Owner::Borrowed(_, s) => s.map(|s| &**s),
            Owner::Owned(_, s) => s.as_deref(),
        }
    }
}

/// Bytes reserved from a [`Budget`](super::Budget) or a [`SubBudget`](super::SubBudget).
///
/// The bytes return to the budget (and to the sub-budget) exactly once: when the reservation
/// is dropped or [`release`](Self::release)d; they then count as *settling* until the next
/// usage sample (see the [module docs](super#settling-counting-a-reservation-once)).
///
/// `Reservation<'a>` borrows the budget it came from ([`Budget::try_reserve`](super::Budget::try_reserve)),
/// which costs no reference counting; `Reservation<'static>`
/// ([`Budget::try_reserve_owned`](super::Budget::try_reserve_owned), [`into_owned`](Self::into_owned))
/// holds its own reference. `Send + Sync`; it may be dropped on any thread.
#[must_use = "dropping a reservation returns its bytes at once"]
pub struct Reservation<'a> {
    owner: Owner<'a>,
    /// Exactly what this reservation added to the budget (and sub-budget), and will return.
    bytes: u64,
}

impl<'a> Reservation<'a> {
    pub(crate) fn borrowed(budget: &'a Arc<Shared>, sub: Option<&'a Arc<SubShared>>, bytes: u64) -> Self {
        Reservation { owner: Owner::Borrowed(budget, sub), bytes }
    }

    /// The bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The sub-budget this reservation belongs to, if any.
    pub fn scope(&self) -> Option<&str> {
        self.owner.sub().map(SubShared::name)
    }

    /// Return the bytes now (the same as dropping).
    pub fn release(self) {
        drop(self);
    }

    /// The same reservation holding its own reference to the budget (and sub-budget), so it
    /// may outlive the handle it was reserved from.
    pub fn into_owned(mut self) -> Reservation<'static> {
        let owner = match &self.owner {
            Owner::Borrowed(b, s) => Owner::Owned(Arc::clone(b), s.cloned()),
            Owner::Owned(b, s) => Owner::Owned(Arc::clone(b), s.clone()),
        };
        // `self` is dropped holding nothing.
        let bytes = std::mem::take(&mut self.bytes);
        Reservation { owner, bytes }
    }

    /// Change the bytes held, for buffers whose size is learned late. Shrinking always
    /// succeeds (the difference settles like a release); growing is checked like a new
    /// request for the difference (the sub-budget's cap, then the parent rule and level —
    /// also for a forced reservation).
    ///
    /// # Errors
    /// [`BudgetExceeded`] (with `requested` = the growth) when growing is refused; the
    /// reservation keeps its previous size.
    pub fn resize(&mut self, new_bytes: u64) -> Result<(), BudgetExceeded> {
        let shared = self.owner.budget();
        if new_bytes <= self.bytes {
            let delta = self.bytes - new_bytes;
            if delta > 0 {
                shared.release(delta);
                if let Some(sub) = self.owner.sub() {
                    sub.release(delta);
                }
                self.bytes = new_bytes;
            }
            return Ok(());
        }
        let delta = new_bytes - self.bytes;
        match self.owner.sub() {
            None => {
                shared.reserve(delta).map_err(|r| shared.refused(delta, r.available, r.soft_limit, r.level, None))?;
            }
            Some(sub) => {
                sub.reserve_with_parent(shared, delta)?;
                sub.count_granted();
            }
        }
        self.bytes = new_bytes;
        Ok(())
    }
}

impl Drop for Reservation<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.owner.budget().release(self.bytes);
            if let Some(sub) = self.owner.sub() {
                sub.release(self.bytes);
            }
        }
    }
}

impl fmt::Debug for Reservation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("bytes", &self.bytes)
            .field("scope", &self.scope())
            .field("owned", &matches!(self.owner, Owner::Owned(..)))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use crate::budget::Budget;
    use crate::Level;

    #[test]
    fn resize_up_checked_down_always() {
        let b = Budget::new(100);
        let mut r = b.try_reserve(10).expect("reserve");
        r.resize(60).expect("grow within");
        assert_eq!((r.bytes(), b.outstanding()), (60, 60));
        let err = r.resize(101).expect_err("grow over");
        assert_eq!((err.requested, err.available, err.soft_limit), (41, 40, 100));
        assert_eq!((r.bytes(), b.outstanding()), (60, 60), "unchanged after a refusal");
        b.set_level(Level::Critical);
        assert!(r.resize(61).is_err());
        r.resize(5).expect("shrink at critical");
        assert_eq!((b.outstanding(), b.settling()), (5, 55), "the shrunk bytes settle");
        r.resize(0).expect("to zero");
        assert_eq!((b.outstanding(), b.settling()), (0, 60));
        drop(r);
        assert_eq!(b.outstanding(), 0);
        b.set_usage(0);
        assert_eq!((b.settling(), b.committed()), (0, 0));
    }

    #[test]
    fn forced_reservation_growth_is_checked() {
        let b = Budget::new(100);
        b.set_level(Level::Critical);
        let mut r = b.try_reserve_forced(10);
        assert!(r.resize(20).is_err());
        b.set_level(Level::Normal);
        r.resize(20).expect("normal");
        assert_eq!(b.outstanding(), 20);
    }

    #[test]
    fn owned_reservation_outlives_the_budget_handle() {
        let b = Budget::new(1000);
        let sub = b.sub_budget("s", 500);
        let r = b.try_reserve_owned(100).expect("owned");
        let s = sub.try_reserve(50).expect("borrowed from the sub-budget").into_owned();
        let observer = b.clone();
        drop(b);
        drop(sub);
        assert_eq!((r.bytes(), s.bytes(), s.scope()), (100, 50, Some("s")));
        assert_eq!(observer.outstanding(), 150);
        let moved = std::thread::spawn(move || {
            drop(r);
            s
        })
        .join()
        .expect("thread");
        assert_eq!(observer.outstanding(), 50);
        drop(moved);
        assert_eq!((observer.outstanding(), observer.settling()), (0, 150));
        assert_eq!(observer.sub_budget("s", 500).outstanding(), 0);
    }

    #[test]
    fn into_owned_moves_the_bytes_once() {
        let b = Budget::new(1000);
        let r = b.try_reserve(300).expect("reserve");
        let owned: super::Reservation<'static> = r.into_owned();
        assert_eq!((owned.bytes(), b.outstanding(), b.settling()), (300, 300, 0));
        drop(owned);
        assert_eq!((b.outstanding(), b.settling()), (0, 300));
    }
}
