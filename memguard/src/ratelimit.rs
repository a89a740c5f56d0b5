//! A lock-free "at most one log line per interval" gate for messages that can repeat in a loop
//! (budget refusals, shedder and callback panics).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Lets one caller per `interval` through and counts the others, so the next message can say
/// how many were suppressed.
#[derive(Debug)]
pub(crate) struct LogLimiter {
    base: Instant,
    interval_ns: u64,
    /// Nanoseconds since `base` before which nothing is logged (0: log the next one).
    next_ns: AtomicU64,
    suppressed: AtomicU64,
}

impl LogLimiter {
    /// A gate letting one message through per `interval`.
    pub(crate) fn new(interval: Duration) -> Self {
        LogLimiter {
            base: Instant::now(),
            interval_ns: u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX),
            next_ns: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` if the caller should log now, `n` being the number of messages suppressed since
    /// the last one logged; `None` (and the suppression counted) otherwise.
    pub(crate) fn check(&self) -> Option<u64> {
        let now = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let next = self.next_ns.load(Relaxed);
        if now >= next
            && self.next_ns.compare_exchange(next, now.saturating_add(self.interval_ns), Relaxed, Relaxed).is_ok()
        {
            Some(self.suppressed.swap(0, Relaxed))
        } else {
            self.suppressed.fetch_add(1, Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_per_interval_and_counts_the_rest() {
        let l = LogLimiter::new(Duration::from_secs(3600));
        assert_eq!(l.check(), Some(0));
        assert_eq!(l.check(), None);
        assert_eq!(l.check(), None);
        // Force the interval to have passed.
        l.next_ns.store(0, Relaxed);
        assert_eq!(l.check(), Some(2));
    }
}
