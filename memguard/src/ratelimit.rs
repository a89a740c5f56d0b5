//! A tiny rate limiter for log messages that can repeat in a loop.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Allows one event per `interval`; counts the ones suppressed in between.
#[derive(Debug)]
pub struct RateLimit {
    interval: Duration,
    last: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl RateLimit {
    /// One event per `interval`.
    pub const fn new(interval: Duration) -> Self {
        RateLimit { interval, last: Mutex::new(None), suppressed: AtomicU64::new(0) }
    }

    /// `Some(n)` when the caller may log now (`n` = events suppressed since the last one),
    /// `None` when it should stay quiet.
    pub fn check(&self) -> Option<u64> {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_some_and(|t| now.duration_since(t) < self.interval) {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *last = Some(now);
        Some(self.suppressed.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suppresses_within_interval_and_reports_count() {
        let r = RateLimit::new(Duration::from_secs(3600));
        assert_eq!(r.check(), Some(0));
        assert_eq!(r.check(), None);
        assert_eq!(r.check(), None);
        let r2 = RateLimit::new(Duration::ZERO);
        assert_eq!(r2.check(), Some(0));
        assert_eq!(r2.check(), Some(0));
    }
}
