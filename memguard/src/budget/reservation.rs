//! [`Reservation`]: bytes held from a [`Budget`](super::Budget) until dropped.

use std::fmt;
use std::sync::Arc;

use super::sub::SubShared;
use super::{BudgetExceeded, Shared};

/// Bytes reserved from a [`Budget`](super::Budget) or a [`SubBudget`](super::SubBudget).
///
/// The bytes return to the budget (and to the sub-budget) exactly once: when the reservation
/// is dropped or [`release`](Self::release)d. `Send + Sync`; it may be dropped on any thread.
#[must_use = "dropping a reservation returns its bytes at once"]
pub struct Reservation {
    shared: Arc<Shared>,
    sub: Option<Arc<SubShared>>,
    /// Exactly what this reservation added to `shared` (and `sub`), and will subtract.
    bytes: u64,
}

impl Reservation {
    pub(crate) fn new(shared: Arc<Shared>, sub: Option<Arc<SubShared>>, bytes: u64) -> Self {
        Reservation { shared, sub, bytes }
    }

    /// The bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The sub-budget this reservation belongs to, if any.
    pub fn scope(&self) -> Option<&str> {
        self.sub.as_deref().map(SubShared::name)
    }

    /// Return the bytes now (the same as dropping).
    pub fn release(self) {
        drop(self);
    }

    /// Change the bytes held, for buffers whose size is learned late. Shrinking always
    /// succeeds; growing is checked like a new request for the difference (the sub-budget's
    /// cap, then the parent rule and level — also for a forced reservation).
    ///
    /// # Errors
    /// [`BudgetExceeded`] (with `requested` = the growth) when growing is refused; the
    /// reservation keeps its previous size.
    pub fn resize(&mut self, new_bytes: u64) -> Result<(), BudgetExceeded> {
        if new_bytes <= self.bytes {
            let delta = self.bytes - new_bytes;
            if delta > 0 {
                self.shared.release(delta);
                if let Some(sub) = &self.sub {
                    sub.release(delta);
                }
                self.bytes = new_bytes;
            }
            return Ok(());
        }
        let delta = new_bytes - self.bytes;
        match &self.sub {
            None => self
                .shared
                .reserve(delta)
                .map_err(|r| self.shared.refused(delta, r.available, r.soft_limit, r.level, None))?,
            Some(sub) => sub.reserve_with_parent(&self.shared, delta)?,
        }
        self.shared.count_granted();
        if let Some(sub) = &self.sub {
            sub.count_granted();
        }
        self.bytes = new_bytes;
        Ok(())
    }
}

impl Drop for Reservation {
    #[inline]
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.shared.release(self.bytes);
            if let Some(sub) = &self.sub {
                sub.release(self.bytes);
            }
        }
    }
}

impl fmt::Debug for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation").field("bytes", &self.bytes).field("scope", &self.scope()).finish()
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
        assert_eq!(b.outstanding(), 5);
        r.resize(0).expect("to zero");
        assert_eq!(b.outstanding(), 0);
        drop(r);
        assert_eq!(b.outstanding(), 0);
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
}
