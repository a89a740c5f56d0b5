//! Cache shedding: the [`Shedders`] registry, [`target_for`], [`ShedTrigger`] and the
//! allocator [`Trimmer`].
//!
//! Under pressure memguard asks the application's caches to free memory: each cache registers
//! a *shedder* — a closure that receives the number of bytes still needed and returns the
//! number it freed — with a priority. [`Shedders::shed`] asks them **lowest priority first**
//! (ties in registration order) for the *remaining* bytes and stops as soon as the target is
//! met. Afterwards [`Trimmer::maybe_trim`] can return the freed heap to the OS.
//!
//! Applications register shedders through a running guard
//! ([`GuardHandle::register_shedder`](crate::GuardHandle::register_shedder)):
//!
//! ```no_run
//! let guard = memguard::MemGuard::start()?;
//! // Cheap to rebuild: asked first.
//! let _thumbs = guard.register_shedder("thumbnails", 0, |want| want.min(64 << 20));
//! // Expensive: asked last, only for what is still missing.
//! let _sessions = guard.register_shedder("sessions", 10, |_want| 0);
//! # Ok::<(), memguard::Error>(())
//! ```
//!
//! # Guarantees
//! * A shedder is called without any memguard lock held, so it may register or unregister
//!   shedders (itself included). A shedder unregistered during a run is not called afterwards.
//! * A panicking shedder is caught, logged (`warn`, at most once per second) and counted as
//!   having freed 0 bytes; the registry stays usable.
//! * `shed` never runs concurrently with itself: a call while another runs returns at once
//!   with [`ShedReport::skipped_busy`] set.

mod trigger;
mod trim;

pub use trigger::ShedTrigger;
pub use trim::{TrimOutcome, Trimmer};

use std::collections::BTreeMap;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::budget::LogLimiter;
use crate::watch::registry::{Registry, Slot};

/// The default margin for [`target_for`]: 5 % of the limit below the warning threshold.
pub const DEFAULT_MARGIN: f64 = 0.05;

/// Bytes to free to bring `working_set` back below the warning threshold with a margin:
/// `working_set - (warn_fraction - margin_fraction) * limit` when `working_set` is at or above
/// `warn_fraction * limit`, else 0.
///
/// Fractions are clamped to `0..=1` (NaN counts as 0); a `limit` of 0 gives 0.
pub fn target_for(working_set: u64, limit: u64, warn_fraction: f64, margin_fraction: f64) -> u64 {
    if limit == 0 {
        return 0;
    }
    let clamp = |f: f64| if f.is_nan() { 0.0 } else { f.clamp(0.0, 1.0) };
    let warn = clamp(warn_fraction);
    let goal = clamp(warn - clamp(margin_fraction));
    // f64 is exact for byte counts below 2^53 (8 PiB); `as` saturates beyond.
    let threshold = (limit as f64 * warn) as u64;
    if working_set < threshold {
        return 0;
    }
    working_set.saturating_sub((limit as f64 * goal) as u64)
}

type ShedFn = dyn Fn(u64) -> u64 + Send + Sync;

/// One registered shedder.
pub(crate) struct Entry {
    name: String,
    priority: i32,
    f: Box<ShedFn>,
}

#[derive(Debug, Default)]
struct PerShedder {
    freed: u64,
    calls: u64,
    panics: u64,
}

#[derive(Debug, Default)]
struct StatsAcc {
    runs: u64,
    skipped_busy: u64,
    freed: u64,
    per_shedder: BTreeMap<String, PerShedder>,
}

/// One shedder's part in a [`ShedReport`].
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShedStep {
    /// The shedder's name.
    pub name: String,
    /// Its priority.
    pub priority: i32,
    /// The bytes it was asked to free (what remained of the target).
    pub asked_bytes: u64,
    /// The bytes it reported freeing (0 if it panicked).
    pub freed_bytes: u64,
    /// Whether it panicked.
    pub panicked: bool,
}

/// What one shedding run did ([`GuardHandle::last_shed`](crate::GuardHandle::last_shed)).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShedReport {
    /// The bytes asked for.
    pub target_bytes: u64,
    /// The bytes the shedders reported freeing in total (may exceed the target).
    pub freed_bytes: u64,
    /// The shedders called, in order.
    pub steps: Vec<ShedStep>,
    /// Another `shed` was running: nothing was done.
    pub skipped_busy: bool,
    /// Time spent calling shedders.
    pub elapsed: Duration,
}

impl ShedReport {
    fn empty(target_bytes: u64, skipped_busy: bool) -> Self {
        ShedReport { target_bytes, freed_bytes: 0, steps: Vec::new(), skipped_busy, elapsed: Duration::ZERO }
    }

    /// Whether the shedders freed at least the target.
    pub fn met_target(&self) -> bool {
        self.freed_bytes >= self.target_bytes
    }
}

/// Cumulative shedding counters ([`Snapshot::shed`](crate::Snapshot::shed)).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShedStats {
    /// `shed` calls that ran (target > 0, not skipped).
    pub runs: u64,
    /// `shed` calls skipped because another was running.
    pub skipped_busy: u64,
    /// Bytes freed by all shedders, as they reported.
    pub freed_bytes_total: u64,
    /// `malloc_trim` calls made (after shedding, after rising-level callbacks, on request).
    pub trims: u64,
    /// Per shedder name (sorted; kept after unregistering).
    pub shedders: Vec<ShedderStats>,
}

/// Cumulative counters of the shedders registered under one name.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShedderStats {
    /// The shedder's name.
    pub name: String,
    /// Bytes it reported freeing.
    pub freed_bytes: u64,
    /// Times it was called.
    pub calls: u64,
    /// Times it panicked.
    pub panics: u64,
}

/// The registry of shedders (see the [module docs](self)). `Send + Sync`; share it in an
/// [`Arc`] or a `static`.
pub struct Shedders {
    registry: Registry<Entry>,
    busy: AtomicBool,
    stats: Mutex<StatsAcc>,
    trimmer: Trimmer,
    panic_log: LogLimiter,
}

impl Default for Shedders {
    fn default() -> Self {
        Shedders::new()
    }
}

/// Clears the busy flag however `shed` exits.
struct BusyGuard<'a>(&'a AtomicBool);

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Shedders {
    /// An empty registry with the default [`Trimmer`] (enabled, at most every 10 s).
    pub fn new() -> Self {
        Shedders::with_trimmer(Trimmer::default())
    }

    /// An empty registry with the given trimmer.
    pub fn with_trimmer(trimmer: Trimmer) -> Self {
        Shedders {
            registry: Registry::default(),
            busy: AtomicBool::new(false),
            stats: Mutex::new(StatsAcc::default()),
            trimmer,
            panic_log: LogLimiter::new(Duration::from_secs(1)),
        }
    }

    /// The allocator trimmer; call [`Trimmer::maybe_trim`] after a shed run that freed memory.
    pub fn trimmer(&self) -> &Trimmer {
        &self.trimmer
    }

    /// Register a shedder. `f(target)` should try to free `target` bytes and return the bytes
    /// it freed. Lower `priority` is asked first; equal priorities in registration order.
    /// Returns an id for [`unregister`](Self::unregister).
    pub(crate) fn register(
        &self,
        name: impl Into<String>,
        priority: i32,
        f: impl Fn(u64) -> u64 + Send + Sync + 'static,
    ) -> u64 {
        let entry = Entry { name: name.into(), priority, f: Box::new(f) };
        self.registry.add(i64::from(priority), Box::new(entry))
    }

    /// Remove a shedder; `false` if it was not registered. From another thread this waits for
    /// a running call of that shedder to return; from inside the shedder itself it does not
    /// wait, and the shedder is not called again.
    pub(crate) fn unregister(&self, id: u64) -> bool {
        self.registry.remove(id)
    }

    /// Remove every shedder (when the guard closes).
    pub(crate) fn clear(&self) {
        self.registry.clear();
    }

    /// The number of registered shedders.
    pub fn len(&self) -> usize {
        self.registry.len()
    }

    /// Whether no shedder is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ask the shedders, lowest priority first, to free `target_bytes`, each for what is still
    /// missing, until the target is met. A target of 0 does nothing. Returns at once with
    /// [`ShedReport::skipped_busy`] if another `shed` is running. Runs the shedders on the
    /// calling thread.
    pub fn shed(&self, target_bytes: u64) -> ShedReport {
        if target_bytes == 0 {
            return ShedReport::empty(0, false);
        }
        if self.busy.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            self.stats.lock().unwrap_or_else(PoisonError::into_inner).skipped_busy += 1;
            tracing::debug!(target_bytes, "shed skipped: another run is in progress");
            return ShedReport::empty(target_bytes, true);
        }
        let _guard = BusyGuard(&self.busy);
        let snapshot = self.registry.snapshot();

        let started = Instant::now();
        let mut freed = 0u64;
        let mut steps = Vec::new();
        for slot in &snapshot {
            if freed >= target_bytes {
                break;
            }
            let asked = target_bytes - freed;
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                slot.call(|entry| (entry.name.clone(), entry.priority, (entry.f)(asked)))
            }));
            let (name, priority, got, panicked) = match outcome {
                Ok(Some((name, priority, got))) => (name, priority, got, false),
                Ok(None) => continue, // unregistered meanwhile
                Err(payload) => {
                    let name = self.log_panic(slot, asked, payload.as_ref());
                    (name, 0, 0, true)
                }
            };
            freed = freed.saturating_add(got);
            steps.push(ShedStep { name, priority, asked_bytes: asked, freed_bytes: got, panicked });
        }
        let elapsed = started.elapsed();

        {
            let mut stats = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
            stats.runs += 1;
            stats.freed = stats.freed.saturating_add(freed);
            for step in &steps {
                let s = stats.per_shedder.entry(step.name.clone()).or_default();
                s.calls += 1;
                s.freed = s.freed.saturating_add(step.freed_bytes);
                s.panics += u64::from(step.panicked);
            }
        }
        tracing::debug!(
            target_bytes,
            freed_bytes = freed,
            shedders_called = steps.len(),
            elapsed_us = elapsed.as_micros() as u64,
            "shed run"
        );
        ShedReport { target_bytes, freed_bytes: freed, steps, skipped_busy: false, elapsed }
    }

    /// Log a shedder's panic (rate-limited); returns its name.
    fn log_panic(&self, slot: &Slot<Entry>, asked: u64, payload: &(dyn std::any::Any + Send)) -> String {
        // The slot's lock was released by the unwind; a removed shedder has no name left.
        let name = slot.call(|e| e.name.clone()).unwrap_or_else(|| "<unregistered>".to_owned());
        if let Some(suppressed) = self.panic_log.check() {
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("<non-string panic payload>");
            tracing::warn!(shedder = %name, asked_bytes = asked, panic = message, suppressed, "shedder panicked");
        }
        name
    }

    /// Cumulative counters.
    pub fn stats(&self) -> ShedStats {
        let stats = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
        ShedStats {
            runs: stats.runs,
            skipped_busy: stats.skipped_busy,
            freed_bytes_total: stats.freed,
            trims: self.trimmer.trims(),
            shedders: stats
                .per_shedder
                .iter()
                .map(|(name, s)| ShedderStats {
                    name: name.clone(),
                    freed_bytes: s.freed,
                    calls: s.calls,
                    panics: s.panics,
                })
                .collect(),
        }
    }
}

impl fmt::Debug for Shedders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shedders")
            .field("shedders", &self.registry.len())
            .field("trimmer", &self.trimmer)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod unit_tests {
    use super::*;
    use std::sync::atomic::AtomicU64;
    use std::sync::Arc;

    #[test]
    fn target_arithmetic() {
        const GIB: u64 = 1 << 30;
        // 0.85 of the limit, back to 0.75.
        let ws = (GIB as f64 * 0.85) as u64;
        assert_eq!(target_for(ws, GIB, 0.80, DEFAULT_MARGIN), ws - (GIB as f64 * 0.75) as u64);
        assert_eq!(target_for(ws, GIB, 0.80, 0.0), ws - (GIB as f64 * 0.80) as u64);
        assert_eq!(target_for(GIB / 2, GIB, 0.80, DEFAULT_MARGIN), 0, "under the threshold");
        assert_eq!(target_for((GIB as f64 * 0.79) as u64, GIB, 0.80, DEFAULT_MARGIN), 0, "inside the margin");
        assert_eq!(target_for(800, 1000, 0.80, 0.05), 50, "exactly at the threshold");
        assert_eq!(target_for(2000, 1000, 0.80, 0.05), 1250, "over the limit");
        assert_eq!(target_for(100, 0, 0.8, 0.05), 0);
        assert_eq!(target_for(100, 1000, f64::NAN, 0.05), 100, "NaN warn: threshold 0, goal 0");
        assert_eq!(target_for(900, 1000, 0.8, 2.0), 900, "margin clamped: goal 0");
        assert_eq!(target_for(900, 1000, 1.5, 0.0), 0, "warn clamped to 1");
        assert_eq!(target_for(u64::MAX, u64::MAX, 0.8, 0.05), u64::MAX - (u64::MAX as f64 * 0.75) as u64);
    }

    #[test]
    fn registration_order_breaks_ties() {
        let s = Shedders::new();
        let order = Arc::new(Mutex::new(Vec::new()));
        for (name, prio) in [("b", 5), ("a", 1), ("c", 5), ("z", -3)] {
            let order = Arc::clone(&order);
            s.register(name, prio, move |_| {
                order.lock().unwrap().push(name);
                0
            });
        }
        let report = s.shed(10);
        assert_eq!(*order.lock().unwrap(), ["z", "a", "b", "c"]);
        assert_eq!(report.freed_bytes, 0);
        assert!(!report.met_target());
        assert_eq!(s.len(), 4);
    }

    #[test]
    fn zero_target_does_nothing() {
        let s = Shedders::new();
        let calls = Arc::new(AtomicU64::new(0));
        let c = Arc::clone(&calls);
        s.register("x", 0, move |_| c.fetch_add(1, Ordering::Relaxed));
        assert!(s.shed(0).steps.is_empty());
        assert_eq!(calls.load(Ordering::Relaxed), 0);
        assert_eq!(s.stats().runs, 0);
    }
}
