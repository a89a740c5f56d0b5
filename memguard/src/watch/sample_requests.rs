//! Requests from other threads for the reactor's next sample: one atomic set of bits, set by the
//! requester before it signals the reactor's waker and taken by the reactor on that wake.

use std::sync::atomic::{AtomicU8, Ordering};

/// Why another thread wants a sample, and how soon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SampleRequest {
    /// A shed run ended: sample at once, so the next decision sees the memory it freed.
    AfterShed = 1,
    /// Released reservations are settling (see [`crate::budget::SampleUrgency::Soon`]): sample
    /// within the settling interval.
    SettleSoon = 2,
    /// The budget refused while released bytes settle ([`crate::budget::SampleUrgency::Now`]):
    /// sample at once, at most every 2 ms.
    SettleNow = 4,
}

/// The pending requests (see the [module docs](self)).
#[derive(Debug, Default)]
pub(crate) struct SampleRequests(AtomicU8);

/// Requests taken together by [`SampleRequests::take`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Taken(u8);

impl SampleRequests {
    /// Add a request (the caller then signals the reactor's waker).
    pub(crate) fn request(&self, r: SampleRequest) {
        self.0.fetch_or(r as u8, Ordering::Release);
    }

    /// Take every pending request.
    pub(crate) fn take(&self) -> Taken {
        Taken(self.0.swap(0, Ordering::AcqRel))
    }
}

impl Taken {
    /// Whether `r` was requested.
    pub(crate) fn has(self, r: SampleRequest) -> bool {
        self.0 & r as u8 != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_taken_once_each() {
        let q = SampleRequests::default();
        assert_eq!(q.take(), Taken(0));
        q.request(SampleRequest::SettleNow);
        q.request(SampleRequest::AfterShed);
        q.request(SampleRequest::SettleNow);
        let t = q.take();
        assert!(t.has(SampleRequest::AfterShed) && t.has(SampleRequest::SettleNow));
        assert!(!t.has(SampleRequest::SettleSoon));
        assert_eq!(q.take(), Taken(0));
    }
}
