//! The shedding thread: runs registered shedders (and `malloc_trim`) on a thread of its own,
//! so that neither a slow shedder nor a blocked user callback delays the other, nor the
//! reactor.
//!
//! The reactor hands it every sample through a one-slot mailbox (a newer sample replaces one
//! not yet seen), except a quiet sample right after another quiet one
//! ([`SampleNote::is_quiet`]). This thread owns the [`ShedTrigger`], which decides from those
//! samples when to run (level rises, regrowth past the warning threshold, growth despite shedding,
//! persistent pressure). A run sizes its target from the latest snapshot; afterwards the thread
//! asks the reactor for an immediate sample and ignores samples taken before the run ended, so
//! it never sheds twice on numbers that predate the memory it just freed.

use std::sync::atomic::Ordering;
use std::sync::PoisonError;
use std::time::Instant;

use crossbeam_channel::Receiver;

use crate::level::Level;
use crate::shed::{target_for, ShedTrigger, DEFAULT_MARGIN};

use super::guard::Shared;
use super::sample_requests::SampleRequest;
use super::snapshot::Snapshot;

/// One sample, as the trigger needs it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SampleNote {
    /// The sample count (`Snapshot::samples`).
    pub(crate) sample: u64,
    pub(crate) level: Level,
    /// The pressure measure, bytes.
    pub(crate) measure: u64,
    /// The warning threshold, bytes.
    pub(crate) warn: u64,
    /// The limit, bytes (the regrowth step is a fraction of it).
    pub(crate) limit: u64,
    /// The budget's total of refused reservations.
    pub(crate) refusals: u64,
    /// When the sample was taken.
    pub(crate) at: Instant,
}

impl SampleNote {
    /// Normal and below the warning threshold: the trigger does nothing on such a sample, and
    /// nothing new on a second one in a row (the reactor does not send those).
    pub(crate) fn is_quiet(&self) -> bool {
        self.level == Level::Normal && self.measure < self.warn
    }
}

/// The bytes to ask the shedders for, from a snapshot: enough to bring the pressure measure
/// below the warning threshold's hysteresis band with the default margin, at least the margin
/// (5% of the limit) whenever the level is raised (a kernel event may raise it below the
/// threshold), and — while memory grows steadily — enough to restore the warning `horizon`:
/// after freeing them, the time to the limit at the current rate is the horizon again.
/// 0 at `Normal`.
pub(crate) fn target(snap: &Snapshot, warn: f64, horizon: std::time::Duration) -> u64 {
    let Some(limit) = snap.limit_bytes else { return 0 };
    if snap.level == Level::Normal {
        return 0;
    }
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let floor = (limit as f64 * DEFAULT_MARGIN) as u64;
    let fraction = target_for(snap.unreclaimable_bytes, limit, warn, DEFAULT_MARGIN).max(floor);
    let restore_horizon = match (snap.time_to_limit, snap.growth_rate) {
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        (Some(_), Some(rate)) if rate > 0.0 => {
            let wanted = snap.unreclaimable_bytes as f64 + rate * horizon.as_secs_f64();
            (wanted - limit as f64).max(0.0) as u64
        }
        _ => 0,
    };
    // At a very high rate the horizon cannot be restored at all (250 ms at 5 GB/s is more than
    // most limits): ask for everything there is, never for more than the memory held.
    fraction.max(restore_horizon.min(snap.unreclaimable_bytes))
}

/// The loop, until the reactor drops its sender or the guard closes.
pub(crate) fn run(shared: &Shared, rx: &Receiver<SampleNote>) {
    let mut trigger = ShedTrigger::new(shared.config.shed_interval);
    let mut ignore_up_to = 0u64;
    while let Ok(note) = rx.recv() {
        if shared.closing.load(Ordering::Acquire) {
            break;
        }
        if note.sample <= ignore_up_to {
            continue;
        }
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let step = (note.limit as f64 * DEFAULT_MARGIN) as u64;
        let Some(reason) = trigger.observe(note.level, note.measure, note.warn, step, note.refusals, note.at) else {
            continue;
        };
        if shared.shedders.is_empty() {
            continue;
        }
        let snap = shared.snapshot.read().unwrap_or_else(PoisonError::into_inner).clone();
        let target = target(&snap, shared.config.thresholds.warn(), shared.config.horizon.0);
        if target == 0 {
            continue;
        }
        let started = Instant::now();
        let report = shared.shedders.shed(target);
        trigger.ran(report.met_target());
        let trimmed = if report.freed_bytes > 0 && shared.config.malloc_trim {
            Some(shared.shedders.trimmer().maybe_trim(Instant::now()))
        } else {
            None
        };
        ignore_up_to = shared.snapshot.read().unwrap_or_else(PoisonError::into_inner).samples;
        shared.sample_requests.request(SampleRequest::AfterShed);
        if let Err(e) = shared.waker.signal() {
            tracing::debug!(error = %e, "cannot wake the reactor after shedding");
        }
        tracing::info!(
            reason = reason.as_str(),
            level = snap.level.as_str(),
            target_bytes = target,
            freed_bytes = report.freed_bytes,
            shedders = report.steps.len(),
            since_sample_us = u64::try_from(started.duration_since(note.at).as_micros()).unwrap_or(u64::MAX),
            run_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            trim = ?trimmed,
            "memguard shed caches"
        );
        *shared.last_shed.lock().unwrap_or_else(PoisonError::into_inner) = Some(report);
    }
}

#[cfg(test)]
mod target_tests {
    use super::*;
    use std::time::Duration;

    const MIB: u64 = 1 << 20;

    fn snap(level: Level, measure: u64, rate: Option<f64>) -> Snapshot {
        Snapshot {
            level,
            limit_bytes: Some(256 * MIB),
            unreclaimable_bytes: measure,
            time_to_limit: rate.map(|r| (256 * MIB - measure) as f64 / r),
            growth_rate: rate,
            ..Snapshot::default()
        }
    }

    #[test]
    fn restores_the_horizon_but_never_asks_for_more_than_is_held() {
        let horizon = Duration::from_millis(250);
        assert_eq!(target(&snap(Level::Normal, 250 * MIB, Some(1e9)), 0.8, horizon), 0);
        // 200 MiB held, growing 400 MiB/s: 250 ms more would reach 300 MiB, 44 MiB over.
        let t = target(&snap(Level::Warning, 200 * MIB, Some(400.0 * MIB as f64)), 0.8, horizon);
        assert!((43 * MIB..=45 * MIB).contains(&t), "{t}");
        // 5 GB/s: the horizon would want 1.4 GB back from 200 MiB; ask for the 200 MiB.
        let t = target(&snap(Level::Critical, 200 * MIB, Some(5e9)), 0.8, horizon);
        assert_eq!(t, 200 * MIB);
        // No growth: the fraction's target (below the warning band), at least 5% of the limit.
        let t = target(&snap(Level::Warning, 210 * MIB, None), 0.8, horizon);
        assert!((256 * MIB / 20..210 * MIB).contains(&t), "{t}");
    }
}
