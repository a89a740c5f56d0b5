//! Pressure levels: [`Level`], the [`Thresholds`] that define them and the [`LevelTracker`]
//! that moves between them.
//!
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, Result};

/// How close the process is to being killed for memory.
///
/// # How the level is decided
/// * The level comes from the **pressure measure** at the cgroup that sets the effective limit:
///   the memory reclaim cannot free (usage minus clean page cache; see
///   [`Snapshot::unreclaimable_bytes`](crate::Snapshot::unreclaimable_bytes)) as a fraction of
///   that limit: `Warning` at or above `warn` (default 0.80), `Critical` at or above
///   `critical` (default 0.90).
/// * Hysteresis on the way down: the level drops only once the fraction is `hysteresis`
///   (default 0.05) below the threshold it crossed, so usage hovering at a threshold does not
///   flap.
/// * Kernel events make the watcher sample at once, and may raise the level before the
///   thresholds do: `memory.high` events and PSI `some` triggers (and v1 `medium` pressure) to
///   at least `Warning`; `max`, `oom`, `oom_kill`, PSI `full` triggers (and v1 `critical`
///   pressure, v1 OOM) to `Critical` — **only while the measure confirms**: a floor counts
///   while the fraction is within the hysteresis band below its level's threshold (from 0.75
///   for `Warning`, 0.85 for `Critical` with the defaults). A cgroup filled with page cache
///   hits `memory.max` and stalls in reclaim routinely; that is not a reason to shed.
/// * A floor holds for the *event hold* time (default 2 s) after the last event of its level,
///   and ends earlier as soon as a fresh sample shows the measure below its band, so a handler
///   that freed memory sees the level fall and is told again when memory regrows. Floors of
///   each level are kept apart: a `Warning` floor is not lost under a `Critical` one.
/// * Without a cgroup limit, the node's eviction point stands in for the limit: used memory
///   (`MemTotal - MemAvailable`) against `MemTotal - eviction threshold` (default 100 MiB, the
///   kubelet's `evictionHard`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum Level {
    /// Comfortably below the warning threshold.
    Normal = 0,
    /// Above the warning threshold, or the kernel reports reclaim pressure: shed caches.
    Warning = 1,
    /// Above the critical threshold, or the kernel is at the limit: refuse non-essential work.
    Critical = 2,
}

impl Level {
    /// `"normal"`, `"warning"` or `"critical"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Normal => "normal",
            Level::Warning => "warning",
            Level::Critical => "critical",
        }
    }

    /// The level stored by [`as_u8`](Self::as_u8); unknown values map to `Critical`.
    pub fn from_u8(v: u8) -> Level {
        match v {
            0 => Level::Normal,
            1 => Level::Warning,
            _ => Level::Critical,
        }
    }

    /// Compact form for atomics.
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Thresholds as fractions of the effective limit, validated by [`Thresholds::new`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Thresholds {
    warn: f64,
    critical: f64,
    hysteresis: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds { warn: 0.80, critical: 0.90, hysteresis: 0.05 }
    }
}

impl Thresholds {
    /// Validated thresholds.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] unless `0 < warn < critical <= 1` and `0 <= hysteresis < warn`.
    pub fn new(warn: f64, critical: f64, hysteresis: f64) -> Result<Self> {
        let ok = warn > 0.0 && warn < critical && critical <= 1.0 && (0.0..warn).contains(&hysteresis);
        if !ok {
            return Err(Error::invalid_config(
                "thresholds",
                format!("warn={warn}, critical={critical}, hysteresis={hysteresis}"),
                "must satisfy 0 < warn < critical <= 1 and 0 <= hysteresis < warn",
            ));
        }
        Ok(Thresholds { warn, critical, hysteresis })
    }

    /// Fraction at which `Warning` starts (default 0.80).
    pub fn warn(&self) -> f64 {
        self.warn
    }

    /// Fraction at which `Critical` starts (default 0.90).
    pub fn critical(&self) -> f64 {
        self.critical
    }

    /// How far below a threshold the fraction must fall to leave its level (default 0.05).
    pub fn hysteresis(&self) -> f64 {
        self.hysteresis
    }

    /// The warning and critical thresholds in bytes of `limit`.
    pub fn bytes(&self, limit: u64) -> (u64, u64) {
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let at = |f: f64| (limit as f64 * f) as u64;
        (at(self.warn), at(self.critical))
    }

    /// The level for `fraction` when coming from `current` (applies hysteresis downward).
    pub fn level_for(&self, fraction: f64, current: Level) -> Level {
        let up = if fraction >= self.critical {
            Level::Critical
        } else if fraction >= self.warn {
            Level::Warning
        } else {
            Level::Normal
        };
        if up >= current {
            return up;
        }
        // Going down: only past the hysteresis band of each threshold.
        let mut level = current;
        if level == Level::Critical && fraction < self.critical - self.hysteresis {
            level = Level::Warning;
        }
        if level == Level::Warning && fraction < self.warn - self.hysteresis {
            level = Level::Normal;
        }
        level
    }
}

/// A level change.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LevelChange {
    /// The level before.
    pub from: Level,
    /// The level now.
    pub to: Level,
}

/// Tracks the current level from samples of the pressure measure and from kernel events (see
/// the module rules).
#[derive(Debug, Clone)]
pub struct LevelTracker {
    thresholds: Thresholds,
    hold: Duration,
    usage_level: Level,
    /// The latest sampled fraction, if any.
    fraction: Option<f64>,
    /// Until when a kernel event's floor holds, per level (`[Warning, Critical]`).
    floors: [Option<Instant>; 2],
    /// What the predicted time to the limit demands (see [`predict`](Self::predict)).
    predicted: Level,
    current: Level,
}

impl LevelTracker {
    /// Start at `Normal`. `hold` is how long a kernel-event floor lasts after the last event.
    pub fn new(thresholds: Thresholds, hold: Duration) -> Self {
        LevelTracker {
            thresholds,
            hold,
            usage_level: Level::Normal,
            fraction: None,
            floors: [None; 2],
            predicted: Level::Normal,
            current: Level::Normal,
        }
    }

    /// The current level.
    pub fn level(&self) -> Level {
        self.current
    }

    /// The level the latest sample alone gives (thresholds and hysteresis, no kernel floor).
    pub fn usage_level(&self) -> Level {
        self.usage_level
    }

    /// The thresholds in use.
    pub fn thresholds(&self) -> Thresholds {
        self.thresholds
    }

    /// Feed a sample of the pressure measure (bytes reclaim cannot free / limit). Returns the
    /// change, if any.
    pub fn observe(&mut self, fraction: f64, now: Instant) -> Option<LevelChange> {
        self.usage_level = self.thresholds.level_for(fraction, self.usage_level);
        self.fraction = Some(fraction);
        self.recompute(now)
    }

    /// A kernel event demands at least `floor` for the hold time, provided the measure confirms
    /// it (see [`confirmed`](Self::confirmed)). Floors of different levels are kept apart, so a
    /// `Warning` floor arriving while a `Critical` one holds outlives it if it was set later.
    /// Returns the change, if any.
    pub fn raise(&mut self, floor: Level, now: Instant) -> Option<LevelChange> {
        if let Some(slot) = Self::slot(floor) {
            // `checked_add`: a hold too large for the clock holds "forever" rather than panicking.
            let until = now.checked_add(self.hold).unwrap_or(now + Duration::from_secs(86_400 * 365));
            self.floors[slot] = Some(self.floors[slot].map_or(until, |u| u.max(until)));
        }
        self.recompute(now)
    }

    /// The level the predicted time to the limit demands (`Normal` when growth is not
    /// sustained): it raises the level at once, and stops counting as soon as growth stops —
    /// the fraction's hysteresis then decides alone. Returns the change, if any.
    pub fn predict(&mut self, predicted: Level, now: Instant) -> Option<LevelChange> {
        self.predicted = predicted;
        self.recompute(now)
    }

    /// Re-evaluate (for example when a floor's hold time has passed). Returns the change, if any.
    pub fn tick(&mut self, now: Instant) -> Option<LevelChange> {
        self.recompute(now)
    }

    /// When the next floor expires, if one is active.
    pub fn floor_deadline(&self) -> Option<Instant> {
        self.floors.iter().flatten().min().copied()
    }

    /// The highest level a kernel-event floor may impose at `fraction`: a floor confirms only
    /// while the measure is at or above its level's threshold minus the hysteresis band
    /// (`Warning` from 0.75, `Critical` from 0.85 with the defaults). Page cache that fills a
    /// cgroup makes the kernel report `max`, `high` and PSI stalls while reclaim frees it
    /// without trouble; the measure (which excludes clean page cache) tells such noise from
    /// real pressure.
    pub fn confirmed(&self, fraction: Option<f64>) -> Level {
        let Some(f) = fraction else { return Level::Critical };
        let t = self.thresholds;
        if f >= t.critical - t.hysteresis {
            Level::Critical
        } else if f >= t.warn - t.hysteresis {
            Level::Warning
        } else {
            Level::Normal
        }
    }

    fn slot(level: Level) -> Option<usize> {
        match level {
            Level::Normal => None,
            Level::Warning => Some(0),
            Level::Critical => Some(1),
        }
    }

    /// The floor in force now: the highest unexpired floor, capped by what the latest sample
    /// confirms.
    fn floor(&self) -> Level {
        let held = if self.floors[1].is_some() {
            Level::Critical
        } else if self.floors[0].is_some() {
            Level::Warning
        } else {
            Level::Normal
        };
        held.min(self.confirmed(self.fraction))
    }

    fn recompute(&mut self, now: Instant) -> Option<LevelChange> {
        for f in &mut self.floors {
            if f.is_some_and(|until| now >= until) {
                *f = None;
            }
        }
        let next = self.usage_level.max(self.floor()).max(self.predicted);
        if next == self.current {
            return None;
        }
        let change = LevelChange { from: self.current, to: next };
        self.current = next;
        Some(change)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_validate() {
        assert!(Thresholds::new(0.8, 0.9, 0.05).is_ok());
        assert!(Thresholds::new(0.9, 0.8, 0.05).is_err());
        assert!(Thresholds::new(0.0, 0.8, 0.0).is_err());
        assert!(Thresholds::new(0.5, 1.1, 0.0).is_err());
        assert!(Thresholds::new(0.5, 0.9, 0.6).is_err());
    }

    #[test]
    fn hysteresis_on_the_way_down() {
        let t = Thresholds::default();
        assert_eq!(t.level_for(0.85, Level::Normal), Level::Warning);
        assert_eq!(t.level_for(0.79, Level::Warning), Level::Warning);
        assert_eq!(t.level_for(0.74, Level::Warning), Level::Normal);
        assert_eq!(t.level_for(0.86, Level::Critical), Level::Critical);
        assert_eq!(t.level_for(0.84, Level::Critical), Level::Warning);
        assert_eq!(t.level_for(0.50, Level::Critical), Level::Normal);
        assert_eq!(t.level_for(0.95, Level::Normal), Level::Critical);
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn page_cache_noise_is_not_pressure() {
        // A cgroup full of clean page cache: the measure is low, the kernel reports `max` and
        // PSI stalls anyway. No floor may raise the level.
        let t0 = Instant::now();
        let mut lt = LevelTracker::new(Thresholds::default(), 2 * S);
        assert_eq!(lt.observe(0.05, t0), None);
        assert_eq!(lt.raise(Level::Critical, t0), None);
        assert_eq!(lt.raise(Level::Warning, t0), None);
        assert_eq!(lt.level(), Level::Normal);
    }

    #[test]
    fn confirmed_floor_raises_and_is_capped_by_the_measure() {
        let t0 = Instant::now();
        let mut lt = LevelTracker::new(Thresholds::default(), 2 * S);
        lt.observe(0.78, t0);
        assert_eq!(lt.level(), Level::Normal, "below the warning threshold");
        // A max event at 78%: within the Warning band, not the Critical one.
        assert_eq!(lt.raise(Level::Critical, t0), Some(LevelChange { from: Level::Normal, to: Level::Warning }));
        assert_eq!(lt.observe(0.86, t0), Some(LevelChange { from: Level::Warning, to: Level::Critical }));
        assert_eq!(lt.floor_deadline(), Some(t0 + 2 * S));
        assert_eq!(
            lt.tick(t0 + 3 * S),
            Some(LevelChange { from: Level::Critical, to: Level::Warning }),
            "the floor expired; 0.86 is Warning by usage"
        );
        assert_eq!(lt.floor_deadline(), None);
    }

    #[test]
    fn floor_ends_when_fresh_samples_show_memory_down_and_warns_again_on_regrowth() {
        // The Python worker that clears its cache from on_level: after the clear the level must
        // fall within the hold time, so regrowth produces a second Warning.
        let t0 = Instant::now();
        let mut lt = LevelTracker::new(Thresholds::default(), 2 * S);
        lt.observe(0.81, t0);
        lt.raise(Level::Critical, t0);
        assert_eq!(lt.level(), Level::Warning);
        let t1 = t0 + Duration::from_millis(50);
        assert_eq!(lt.observe(0.20, t1), Some(LevelChange { from: Level::Warning, to: Level::Normal }));
        let t2 = t1 + Duration::from_millis(100);
        assert_eq!(lt.observe(0.60, t2), None);
        assert_eq!(lt.observe(0.80, t2), Some(LevelChange { from: Level::Normal, to: Level::Warning }));
    }

    #[test]
    fn lower_floor_is_not_lost_under_a_higher_one() {
        // warn 0.80, critical 0.82: at 0.78 usage alone says Normal, the measure confirms Critical.
        let th = Thresholds::new(0.80, 0.82, 0.05).expect("valid");
        let t0 = Instant::now();
        let mut lt = LevelTracker::new(th, 2 * S);
        lt.observe(0.78, t0);
        assert_eq!(lt.raise(Level::Critical, t0).map(|c| c.to), Some(Level::Critical));
        assert_eq!(lt.raise(Level::Warning, t0 + Duration::from_millis(1500)), None);
        assert_eq!(lt.tick(t0 + Duration::from_millis(2500)).map(|c| c.to), Some(Level::Warning));
        assert_eq!(lt.tick(t0 + Duration::from_millis(3600)).map(|c| c.to), Some(Level::Normal));
    }

    #[test]
    fn prediction_raises_below_the_thresholds_and_ends_with_growth() {
        let t0 = Instant::now();
        let mut lt = LevelTracker::new(Thresholds::default(), 2 * S);
        lt.observe(0.45, t0);
        assert_eq!(lt.predict(Level::Critical, t0).map(|c| c.to), Some(Level::Critical));
        lt.observe(0.60, t0);
        assert_eq!(lt.level(), Level::Critical, "still predicted");
        assert_eq!(lt.predict(Level::Normal, t0).map(|c| c.to), Some(Level::Normal), "growth stopped at 60%");
        lt.observe(0.85, t0);
        lt.predict(Level::Normal, t0);
        assert_eq!(lt.level(), Level::Warning, "the fraction still counts");
    }

    #[test]
    fn huge_hold_does_not_panic() {
        let t0 = Instant::now();
        let mut lt = LevelTracker::new(Thresholds::default(), Duration::MAX);
        lt.observe(0.86, t0);
        assert_eq!(lt.raise(Level::Critical, t0).map(|c| c.to), Some(Level::Critical));
    }

    #[test]
    fn events_before_any_sample_are_trusted() {
        let mut lt = LevelTracker::new(Thresholds::default(), 2 * S);
        assert_eq!(lt.raise(Level::Warning, Instant::now()).map(|c| c.to), Some(Level::Warning));
    }

    #[test]
    fn usage_above_floor_wins() {
        let t0 = Instant::now();
        let mut lt = LevelTracker::new(Thresholds::default(), Duration::from_secs(2));
        lt.raise(Level::Warning, t0);
        assert_eq!(lt.observe(0.95, t0).map(|c| c.to), Some(Level::Critical));
    }
}
