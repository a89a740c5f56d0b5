//! Pressure levels: [`Level`], the [`Thresholds`] that define them and the [`LevelTracker`]
//! that moves between them.
//!
//! # Rules
//! * The level comes from the working set at the cgroup that sets the effective limit, as a
//!   fraction of that limit: `Warning` at or above `warn` (default 0.80), `Critical` at or
//!   above `critical` (default 0.90).
//! * Hysteresis on the way down: the level drops only once the fraction is `hysteresis`
//!   (default 0.05) below the threshold it crossed, so usage hovering at a threshold does not
//!   flap.
//! * Kernel events raise the level at once, whatever the last sample said: `memory.high`
//!   events and PSI `some` triggers (and v1 `medium` pressure) to at least `Warning`; `max`,
//!   `oom`, `oom_kill`, PSI `full` triggers (and v1 `critical` pressure, v1 OOM) to `Critical`.
//!   Such a floor holds for the *event hold* time (default 2 s) after the last event; then
//!   the usage-based level applies again.
//! * Without a cgroup limit, the node's eviction point stands in for the limit: used memory
//!   (`MemTotal - MemAvailable`) against `MemTotal - eviction threshold` (default 100 MiB, the
//!   kubelet's `evictionHard`).

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, Result};

/// How close the process is to being killed for memory.
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

/// Thresholds as fractions of the effective limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Fraction at which `Warning` starts (default 0.80).
    pub warn: f64,
    /// Fraction at which `Critical` starts (default 0.90).
    pub critical: f64,
    /// How far below a threshold the fraction must fall to leave its level (default 0.05).
    pub hysteresis: f64,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LevelChange {
    /// The level before.
    pub from: Level,
    /// The level now.
    pub to: Level,
}

/// Tracks the current level from usage samples and kernel events (see the module rules).
#[derive(Debug, Clone)]
pub struct LevelTracker {
    thresholds: Thresholds,
    hold: Duration,
    usage_level: Level,
    floor: Option<(Level, Instant)>,
    current: Level,
}

impl LevelTracker {
    /// Start at `Normal`. `hold` is how long a kernel-event floor lasts after the last event.
    pub fn new(thresholds: Thresholds, hold: Duration) -> Self {
        LevelTracker { thresholds, hold, usage_level: Level::Normal, floor: None, current: Level::Normal }
    }

    /// The current level.
    pub fn level(&self) -> Level {
        self.current
    }

    /// The thresholds in use.
    pub fn thresholds(&self) -> Thresholds {
        self.thresholds
    }

    /// Feed a usage sample (working set / limit). Returns the change, if any.
    pub fn observe(&mut self, fraction: f64, now: Instant) -> Option<LevelChange> {
        self.usage_level = self.thresholds.level_for(fraction, self.usage_level);
        self.recompute(now)
    }

    /// A kernel event demands at least `floor` now. Returns the change, if any.
    pub fn raise(&mut self, floor: Level, now: Instant) -> Option<LevelChange> {
        let until = now + self.hold;
        self.floor = match self.floor {
            Some((f, _)) if f > floor => self.floor,
            _ => Some((floor, until)),
        };
        self.recompute(now)
    }

    /// Re-evaluate (for example when a floor's hold time has passed). Returns the change, if any.
    pub fn tick(&mut self, now: Instant) -> Option<LevelChange> {
        self.recompute(now)
    }

    /// When the current floor expires, if one is active.
    pub fn floor_deadline(&self) -> Option<Instant> {
        self.floor.map(|(_, until)| until)
    }

    fn recompute(&mut self, now: Instant) -> Option<LevelChange> {
        if let Some((_, until)) = self.floor {
            if now >= until {
                self.floor = None;
            }
        }
        let floor = self.floor.map_or(Level::Normal, |(f, _)| f);
        let next = self.usage_level.max(floor);
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

    #[test]
    fn kernel_floor_holds_then_expires() {
        let t0 = Instant::now();
        let mut lt = LevelTracker::new(Thresholds::default(), Duration::from_secs(2));
        assert_eq!(lt.observe(0.1, t0), None);
        assert_eq!(lt.raise(Level::Critical, t0), Some(LevelChange { from: Level::Normal, to: Level::Critical }));
        assert_eq!(lt.observe(0.1, t0 + Duration::from_secs(1)), None);
        assert_eq!(lt.raise(Level::Warning, t0 + Duration::from_secs(1)), None, "a lower floor keeps the higher");
        assert_eq!(
            lt.tick(t0 + Duration::from_secs(3)),
            Some(LevelChange { from: Level::Critical, to: Level::Normal })
        );
        assert_eq!(lt.floor_deadline(), None);
    }

    #[test]
    fn usage_above_floor_wins() {
        let t0 = Instant::now();
        let mut lt = LevelTracker::new(Thresholds::default(), Duration::from_secs(2));
        lt.raise(Level::Warning, t0);
        assert_eq!(lt.observe(0.95, t0).map(|c| c.to), Some(Level::Critical));
    }
}
