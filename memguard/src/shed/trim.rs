//! [`Trimmer`]: return freed heap memory to the OS (`malloc_trim`), rate-limited.
//!
//! After caches are shed, glibc's allocator often keeps the freed memory in its arenas, so the
//! working set the kernel sees does not drop. `malloc_trim(0)` releases the free memory at the
//! top of the heap and whole free pages inside the arenas (glibc >= 2.8). It walks every arena
//! under its lock and gives free pages back one range at a time, so its cost grows with what it
//! returns (measured here: 0.07 ms with nothing to return, 28 ms returning 800 MiB of a Python
//! heap — about what unmapping that memory costs anyway). It is rate-limited twice: at most once
//! per minimum interval (default 10 ms), and never more than a fifth of the time (the next
//! trim waits at least four times as long as the previous one took). It runs on memguard's
//! shedding thread after shedders, and on the dispatcher after level callbacks of a rising
//! level (which typically free memory themselves).
//! Other allocators (musl, jemalloc, mimalloc as the global allocator) do not benefit; on
//! targets other than Linux/glibc the call is a no-op reported as
//! [`TrimOutcome::Unsupported`].

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// What a `malloc_trim` request did ([`GuardHandle::malloc_trim`](crate::GuardHandle::malloc_trim)).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrimOutcome {
    /// `malloc_trim` ran; `released` is its return value (whether memory went back to the OS).
    Trimmed {
        /// `true` if some memory was returned to the OS.
        released: bool,
    },
    /// The previous trim was less than the minimum interval ago.
    RateLimited,
    /// Trimming is disabled.
    Disabled,
    /// Not Linux/glibc: there is no `malloc_trim`.
    Unsupported,
}

/// Calls `malloc_trim(0)` at most once per `min_interval`. `Send + Sync`.
#[derive(Debug)]
pub struct Trimmer {
    min_interval: Duration,
    enabled: bool,
    /// When the previous trim started and how long it took.
    last: Mutex<Option<(Instant, Duration)>>,
    trims: AtomicU64,
}

impl Default for Trimmer {
    /// Enabled, at most once per [`DEFAULT_MIN_INTERVAL`](Trimmer::DEFAULT_MIN_INTERVAL).
    fn default() -> Self {
        Trimmer::new(Trimmer::DEFAULT_MIN_INTERVAL, true)
    }
}

impl Trimmer {
    /// The default minimum interval between two trims: 10 ms. The duty-cycle bound
    /// ([`DUTY_FACTOR`](Self::DUTY_FACTOR)) is what limits expensive trims; this bounds cheap
    /// ones (a trim with nothing to return costs about 0.07 ms).
    pub const DEFAULT_MIN_INTERVAL: Duration = Duration::from_millis(10);

    /// The next trim waits at least this many times as long as the previous one took.
    pub const DUTY_FACTOR: u32 = 4;

    /// A trimmer running at most once per `min_interval`, if `enabled`.
    pub fn new(min_interval: Duration, enabled: bool) -> Self {
        Trimmer { min_interval, enabled, last: Mutex::new(None), trims: AtomicU64::new(0) }
    }

    /// A trimmer that never trims.
    #[cfg(test)]
    pub fn disabled() -> Self {
        Trimmer::new(Trimmer::DEFAULT_MIN_INTERVAL, false)
    }

    /// The minimum interval between two trims.
    #[cfg(test)]
    pub fn min_interval(&self) -> Duration {
        self.min_interval
    }

    /// Whether trimming is enabled.
    #[cfg(test)]
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Whether this target has `malloc_trim` (Linux with glibc).
    pub fn is_supported() -> bool {
        cfg!(all(target_os = "linux", target_env = "gnu"))
    }

    /// How many times `malloc_trim` ran.
    pub fn trims(&self) -> u64 {
        self.trims.load(Relaxed)
    }

    /// Trim unless disabled, unsupported, or the previous trim started less than
    /// `min_interval` — or less than [`DUTY_FACTOR`](Self::DUTY_FACTOR) times its own duration
    /// — before `now`. Concurrent callers: one trims, the others get `RateLimited`. Blocks for
    /// as long as `malloc_trim` takes (see the module docs).
    pub fn maybe_trim(&self, now: Instant) -> TrimOutcome {
        if !self.enabled {
            return TrimOutcome::Disabled;
        }
        if !Self::is_supported() {
            return TrimOutcome::Unsupported;
        }
        {
            let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((t, took)) = *last {
                let wait = self.min_interval.max(took.saturating_mul(Self::DUTY_FACTOR));
                if now.saturating_duration_since(t) < wait {
                    return TrimOutcome::RateLimited;
                }
            }
            *last = Some((now, Duration::ZERO));
        }
        let started = Instant::now();
        let released = malloc_trim();
        let took = started.elapsed();
        if let Some((_, d)) = self.last.lock().unwrap_or_else(PoisonError::into_inner).as_mut() {
            *d = took;
        }
        self.trims.fetch_add(1, Relaxed);
        tracing::debug!(released, elapsed_us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX), "malloc_trim");
        TrimOutcome::Trimmed { released }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn malloc_trim() -> bool {
    // SAFETY: `malloc_trim` takes a plain integer, touches only the allocator's own state under
    // the allocator's locks, and is safe to call from any thread at any time.
    unsafe { libc::malloc_trim(0) != 0 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn malloc_trim() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limited_and_disabled() {
        let t0 = Instant::now();
        let t = Trimmer::new(Duration::from_secs(10), true);
        if !Trimmer::is_supported() {
            assert_eq!(t.maybe_trim(t0), TrimOutcome::Unsupported);
            return;
        }
        assert!(matches!(t.maybe_trim(t0), TrimOutcome::Trimmed { .. }));
        assert_eq!(t.maybe_trim(t0 + Duration::from_secs(1)), TrimOutcome::RateLimited);
        assert_eq!(t.maybe_trim(t0 + Duration::from_millis(9_999)), TrimOutcome::RateLimited);
        assert!(matches!(t.maybe_trim(t0 + Duration::from_secs(10)), TrimOutcome::Trimmed { .. }));
        assert_eq!(t.maybe_trim(t0 + Duration::from_secs(15)), TrimOutcome::RateLimited);
        assert_eq!(t.trims(), 2);
        // A `now` earlier than the last trim (clock from another thread) is rate-limited, not a panic.
        assert_eq!(t.maybe_trim(t0), TrimOutcome::RateLimited);

        let d = Trimmer::disabled();
        assert_eq!(d.maybe_trim(t0), TrimOutcome::Disabled);
        assert_eq!(d.trims(), 0);
        let d = Trimmer::default();
        assert!(d.is_enabled());
        assert_eq!(d.min_interval(), Duration::from_millis(10));
    }

    #[test]
    fn a_slow_trim_spaces_the_next_one() {
        if !Trimmer::is_supported() {
            return;
        }
        let t = Trimmer::new(Duration::from_millis(1), true);
        let t0 = Instant::now();
        assert!(matches!(t.maybe_trim(t0), TrimOutcome::Trimmed { .. }));
        // Pretend the trim took 50 ms: the next may start 200 ms later, not 1 ms later.
        t.last.lock().unwrap().as_mut().unwrap().1 = Duration::from_millis(50);
        assert_eq!(t.maybe_trim(t0 + Duration::from_millis(150)), TrimOutcome::RateLimited);
        assert!(matches!(t.maybe_trim(t0 + Duration::from_millis(200)), TrimOutcome::Trimmed { .. }));
    }

    #[test]
    fn trim_releases_a_freed_heap() {
        if !Trimmer::is_supported() {
            return;
        }
        // Many small blocks (below the mmap threshold) freed at once leave free pages in the heap.
        let blocks: Vec<Vec<u8>> = (0..4096).map(|i| vec![i as u8; 16 * 1024]).collect();
        drop(blocks);
        let outcome = Trimmer::new(Duration::ZERO, true).maybe_trim(Instant::now());
        assert!(matches!(outcome, TrimOutcome::Trimmed { .. }), "{outcome:?}");
    }
}
