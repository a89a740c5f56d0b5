//! [`ShedTrigger`]: when the watcher asks the shedders to run — decided on every sample.
//!
//! A fixed "at most once per interval" rule loses exactly the services memguard is for: a
//! cache that regrows within a second of being shed (a worker appending at a gigabyte per
//! second regrows 200 MiB in 150 ms) is not asked again until it is too late. Shedding is
//! therefore rate-limited by **bytes regrown**, not by wall time:
//!
//! 1. **Level rise**: entering `Warning` or `Critical` (from any lower level) sheds at once.
//! 2. **Crossing back up**: after a run, once the measure has been below the warning
//!    threshold, crossing it upward again sheds at once.
//! 3. **Growth despite shedding**: the measure grew by the regrowth step (default 5% of the
//!    limit) above where it was at the previous run — shedders could not keep up — sheds again.
//! 4. **The budget is refusing**: reservations were refused since the previous run (the
//!    service is turning work away at the soft limit while caches hold memory), and the previous
//!    run met its target (shedders that had nothing left are not asked again on every sample).
//! 5. **Persistent pressure**: still at or above the warning threshold `interval` (default 1 s)
//!    after the previous run, with no growth: sheds again.
//!
//! The trigger decides; the run itself happens on memguard's shedding thread with the latest
//! snapshot, so a request made while a run was in progress is checked against fresh numbers.

use std::time::{Duration, Instant};

use crate::level::Level;

/// Why a shed run was requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShedReason {
    /// The level rose to `Warning` or `Critical`.
    LevelRise,
    /// The measure crossed the warning threshold upward again after a run.
    Regrew,
    /// The measure kept growing by at least the regrowth step since the previous run.
    StillGrowing,
    /// The budget refused reservations since the previous run.
    BudgetRefusing,
    /// Still above the warning threshold one interval after the previous run.
    Persistent,
}

impl ShedReason {
    /// A short stable name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ShedReason::LevelRise => "level_rise",
            ShedReason::Regrew => "regrew",
            ShedReason::StillGrowing => "still_growing",
            ShedReason::BudgetRefusing => "budget_refusing",
            ShedReason::Persistent => "persistent",
        }
    }
}

/// The decision state (see the [module docs](self)). Fed by one thread (the reactor).
#[derive(Debug, Clone)]
pub struct ShedTrigger {
    interval: Duration,
    /// The measure has been below the warning threshold since the previous request.
    below_since_request: bool,
    last: Option<(u64, Instant)>,
    level: Level,
    /// The budget's refusal count at the previous request.
    refusals: u64,
    /// Whether the previous run freed its whole target.
    last_met_target: bool,
}

impl ShedTrigger {
    /// A trigger repeating persistent-pressure runs at most once per `interval`.
    pub fn new(interval: Duration) -> Self {
        ShedTrigger {
            interval,
            below_since_request: true,
            last: None,
            level: Level::Normal,
            refusals: 0,
            last_met_target: true,
        }
    }

    /// Record whether the run just made freed its whole target.
    pub fn ran(&mut self, met_target: bool) {
        self.last_met_target = met_target;
    }

    /// Feed one sample: the `level` after it, the pressure `measure`, the warning threshold
    /// and the regrowth step in bytes, and the budget's total of refused reservations. Returns
    /// the reason to shed now, if any (and records the request).
    pub fn observe(
        &mut self,
        level: Level,
        measure: u64,
        warn: u64,
        step: u64,
        refusals: u64,
        now: Instant,
    ) -> Option<ShedReason> {
        let rose = level > self.level && level >= Level::Warning;
        self.level = level;
        if measure < warn {
            self.below_since_request = true;
        }
        let reason = if rose {
            Some(ShedReason::LevelRise)
        } else if level == Level::Normal || measure < warn {
            None
        } else if self.below_since_request {
            Some(ShedReason::Regrew)
        } else if self.last.is_some_and(|(m, _)| measure >= m.saturating_add(step.max(1))) {
            Some(ShedReason::StillGrowing)
        } else if refusals > self.refusals && self.last_met_target {
            Some(ShedReason::BudgetRefusing)
        } else if self.last.map_or(true, |(_, at)| now.saturating_duration_since(at) >= self.interval) {
            Some(ShedReason::Persistent)
        } else {
            None
        };
        if reason.is_some() {
            self.below_since_request = false;
            self.last = Some((measure, now));
            self.refusals = refusals;
        }
        reason
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const WARN: u64 = 205 * MIB;
    const STEP: u64 = 13 * MIB;

    #[test]
    fn rises_shed_at_once() {
        let t = Instant::now();
        let mut s = ShedTrigger::new(Duration::from_secs(1));
        assert_eq!(s.observe(Level::Normal, 100 * MIB, WARN, STEP, 0, t), None);
        assert_eq!(s.observe(Level::Warning, 206 * MIB, WARN, STEP, 0, t), Some(ShedReason::LevelRise));
        assert_eq!(s.observe(Level::Critical, 231 * MIB, WARN, STEP, 0, t), Some(ShedReason::LevelRise));
        // A kernel-confirmed Warning below the threshold still sheds (the target is the margin).
        let mut s = ShedTrigger::new(Duration::from_secs(1));
        assert_eq!(s.observe(Level::Warning, 195 * MIB, WARN, STEP, 0, t), Some(ShedReason::LevelRise));
    }

    #[test]
    fn regrowth_within_the_interval_sheds_again() {
        // The full-speed Python worker: shed at 205 MiB, down to 20 MiB, regrown past the
        // threshold 150 ms later while the level stayed Warning (a held floor): shed again.
        let t0 = Instant::now();
        let mut s = ShedTrigger::new(Duration::from_secs(1));
        assert_eq!(s.observe(Level::Warning, 206 * MIB, WARN, STEP, 0, t0), Some(ShedReason::LevelRise));
        let t1 = t0 + Duration::from_millis(40);
        assert_eq!(s.observe(Level::Warning, 20 * MIB, WARN, STEP, 0, t1), None);
        let t2 = t1 + Duration::from_millis(150);
        assert_eq!(s.observe(Level::Warning, 207 * MIB, WARN, STEP, 0, t2), Some(ShedReason::Regrew));
        assert_eq!(s.observe(Level::Warning, 208 * MIB, WARN, STEP, 0, t2), None, "once per crossing");
    }

    #[test]
    fn growth_despite_shedding_and_persistent_pressure() {
        let t0 = Instant::now();
        let mut s = ShedTrigger::new(Duration::from_secs(1));
        s.observe(Level::Warning, 206 * MIB, WARN, STEP, 0, t0);
        let t = t0 + Duration::from_millis(10);
        assert_eq!(s.observe(Level::Warning, 210 * MIB, WARN, STEP, 0, t), None);
        assert_eq!(s.observe(Level::Warning, 219 * MIB, WARN, STEP, 0, t), Some(ShedReason::StillGrowing));
        assert_eq!(s.observe(Level::Warning, 220 * MIB, WARN, STEP, 0, t), None);
        let later = t + Duration::from_secs(1);
        assert_eq!(s.observe(Level::Warning, 220 * MIB, WARN, STEP, 0, later), Some(ShedReason::Persistent));
        assert_eq!(s.observe(Level::Warning, 220 * MIB, WARN, STEP, 0, later), None);
    }

    #[test]
    fn refusals_shed_again_unless_shedders_are_exhausted() {
        // The budget stops the worker at the soft limit (85%) after a run that brought it to
        // 80.5%: no growth, no crossing — but requests are being turned away.
        let t0 = Instant::now();
        let mut s = ShedTrigger::new(Duration::from_secs(1));
        assert_eq!(s.observe(Level::Warning, 208 * MIB, WARN, STEP, 0, t0), Some(ShedReason::LevelRise));
        s.ran(true);
        let t = t0 + Duration::from_millis(10);
        assert_eq!(s.observe(Level::Warning, 217 * MIB, WARN, STEP, 0, t), None);
        assert_eq!(s.observe(Level::Warning, 217 * MIB, WARN, STEP, 5, t), Some(ShedReason::BudgetRefusing));
        assert_eq!(s.observe(Level::Warning, 217 * MIB, WARN, STEP, 5, t), None, "no new refusal");
        s.ran(false);
        assert_eq!(s.observe(Level::Warning, 217 * MIB, WARN, STEP, 9, t), None, "shedders had nothing left");
    }

    #[test]
    fn normal_never_sheds() {
        let t = Instant::now();
        let mut s = ShedTrigger::new(Duration::ZERO);
        for m in [10, 300, 10, 300] {
            assert_eq!(s.observe(Level::Normal, m * MIB, WARN, STEP, 0, t), None);
        }
    }

    #[test]
    fn a_second_quiet_sample_changes_nothing() {
        // The reactor does not send a quiet sample (Normal, below the threshold) right after
        // another: whatever came before, observing one changes the state the way observing it
        // twice does.
        let t0 = Instant::now();
        let t = t0 + Duration::from_millis(10);
        let histories: [&[(Level, u64, u64)]; 5] = [
            &[],
            &[(Level::Warning, 206, 0)],
            &[(Level::Critical, 240, 0), (Level::Warning, 210, 3)],
            &[(Level::Warning, 206, 0), (Level::Warning, 100, 0)],
            &[(Level::Normal, 300, 0)],
        ];
        for history in histories {
            let mut s = ShedTrigger::new(Duration::from_secs(1));
            for &(level, m, refused) in history {
                s.observe(level, m * MIB, WARN, STEP, refused, t0);
            }
            assert_eq!(s.observe(Level::Normal, 100 * MIB, WARN, STEP, 0, t), None);
            let once = format!("{s:?}");
            for later in [t, t + Duration::from_secs(5)] {
                assert_eq!(s.observe(Level::Normal, 150 * MIB, WARN, STEP, 7, later), None);
                assert_eq!(format!("{s:?}"), once, "after {history:?}");
            }
        }
    }
}
