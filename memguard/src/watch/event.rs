//! What the watcher reports: [`Event`] (kind + context) and [`EventKind`].

use serde::Serialize;

use crate::level::Level;

/// Which PSI stall line fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stall {
    /// Some task stalled on memory (reclaim, refaults): raises the level to at least `Warning`.
    Some,
    /// All non-idle tasks stalled at once: raises the level to `Critical`.
    Full,
}

/// Where a PSI trigger was armed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PsiScope {
    /// The cgroup's `memory.pressure`.
    Cgroup,
    /// The host's `/proc/pressure/memory`.
    System,
}

/// cgroup v1 `memory.pressure_level` severities memguard listens to.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum V1Pressure {
    /// Reclaiming, swapping or evicting caches: raises the level to at least `Warning`.
    Medium,
    /// About to OOM: raises the level to `Critical`.
    Critical,
}

/// Direction of a threshold crossing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Usage went above the threshold.
    Up,
    /// Usage went back below it.
    Down,
}

/// What happened. Kernel counters are reported as snapshots (`count`, the counter's value now)
/// plus `delta` since the previous event of that kind: notifications coalesce, so the number of
/// wake-ups says nothing; the counters are exact.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// v2 `memory.events` `high`: usage went over `memory.high` and the kernel throttled.
    #[non_exhaustive]
    High {
        /// Counter value now.
        count: u64,
        /// Increase since the previous `High` event.
        delta: u64,
    },
    /// v2 `memory.events` `max`: usage hit `memory.max` and direct reclaim ran.
    #[non_exhaustive]
    Max {
        /// Counter value now.
        count: u64,
        /// Increase since the previous `Max` event.
        delta: u64,
    },
    /// An OOM condition in the guarded cgroup (v2 `oom`, v1 `memory.oom_control` notification).
    #[non_exhaustive]
    Oom {
        /// Counter value now (v1: number of notifications seen).
        count: u64,
        /// Increase since the previous `Oom` event.
        delta: u64,
    },
    /// The OOM killer killed a process of the guarded cgroup — often a sibling worker, which
    /// Kubernetes never reports because PID 1 survived.
    #[non_exhaustive]
    OomKill {
        /// Counter value now.
        count: u64,
        /// Processes killed since the previous `OomKill` event.
        delta: u64,
    },
    /// A PSI trigger fired.
    #[non_exhaustive]
    Psi {
        /// Which line.
        stall: Stall,
        /// Which file.
        scope: PsiScope,
    },
    /// cgroup v1 `memory.pressure_level` notification.
    #[non_exhaustive]
    VmPressure {
        /// Severity.
        severity: V1Pressure,
    },
    /// A cgroup v1 usage threshold (`cgroup.event_control` eventfd) fired.
    #[non_exhaustive]
    Threshold {
        /// Crossed upward or downward (judged from the sample taken on the notification).
        direction: Direction,
        /// The threshold, bytes of `memory.usage_in_bytes`.
        threshold_bytes: u64,
    },
    /// The effective limit changed (a limit was written, or the process moved).
    #[non_exhaustive]
    LimitChanged {
        /// Previous limit (`None` = none).
        old: Option<u64>,
        /// New limit.
        new: Option<u64>,
    },
    /// The watched cgroup disappeared; memguard re-detected and re-armed on what remains.
    #[non_exhaustive]
    CgroupRemoved {
        /// The cgroup path that went away.
        cgroup: String,
    },
    /// memguard's watcher gave up after repeated internal errors (a bug: please report it). The
    /// level is no longer updated; [`Snapshot::failed`](crate::Snapshot::failed) says why.
    #[non_exhaustive]
    WatcherFailed {
        /// What went wrong.
        reason: String,
    },
    /// The pressure level changed.
    #[non_exhaustive]
    LevelChanged {
        /// Level before.
        from: Level,
        /// Level now.
        to: Level,
        /// The predicted time to the limit at the current steady growth, seconds, when there is
        /// one (see [`Snapshot::time_to_limit`](crate::Snapshot::time_to_limit)).
        time_to_limit: Option<f64>,
    },
}

impl EventKind {
    /// Every [`name`](Self::name), in declaration order: what bindings list as kinds.
    pub const NAMES: &'static [&'static str] = &[
        "high",
        "max",
        "oom",
        "oom_kill",
        "psi",
        "vm_pressure",
        "threshold",
        "limit_changed",
        "cgroup_removed",
        "watcher_failed",
        "level_changed",
    ];

    /// A short stable name (`"oom_kill"`, `"level_changed"`, ...): the JSON `kind` of the
    /// event, the `kind` label of `memguard_events_total` and the key of
    /// [`Snapshot::events_total`](crate::watch::Snapshot::events_total).
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::High { .. } => "high",
            EventKind::Max { .. } => "max",
            EventKind::Oom { .. } => "oom",
            EventKind::OomKill { .. } => "oom_kill",
            EventKind::Psi { .. } => "psi",
            EventKind::VmPressure { .. } => "vm_pressure",
            EventKind::Threshold { .. } => "threshold",
            EventKind::LimitChanged { .. } => "limit_changed",
            EventKind::CgroupRemoved { .. } => "cgroup_removed",
            EventKind::WatcherFailed { .. } => "watcher_failed",
            EventKind::LevelChanged { .. } => "level_changed",
        }
    }

    /// The level this kernel event demands at least, if any (see [`Level`], *How the level is
    /// decided*: the measure must confirm it).
    pub fn floor(&self) -> Option<Level> {
        match self {
            EventKind::High { .. } | EventKind::Psi { stall: Stall::Some, .. } => Some(Level::Warning),
            EventKind::VmPressure { severity: V1Pressure::Medium } => Some(Level::Warning),
            EventKind::Max { .. }
            | EventKind::Oom { .. }
            | EventKind::OomKill { .. }
            | EventKind::Psi { stall: Stall::Full, .. }
            | EventKind::VmPressure { severity: V1Pressure::Critical } => Some(Level::Critical),
            _ => None,
        }
    }
}

/// An event with its context.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
    /// `CLOCK_MONOTONIC` nanoseconds when the watcher woke for it (comparable across processes).
    pub monotonic_ns: u64,
    /// The level after this event.
    pub level: Level,
    /// Working set at the limiting cgroup (or host used memory), latest sample.
    pub working_set_bytes: Option<u64>,
    /// The pressure measure (memory reclaim cannot free), latest sample; see
    /// [`Snapshot::unreclaimable_bytes`](crate::Snapshot::unreclaimable_bytes).
    pub unreclaimable_bytes: Option<u64>,
    /// The effective limit in force.
    pub limit_bytes: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One name per kind: `name()`, the serialised `kind` and `NAMES` agree.
    #[test]
    fn kind_names_come_from_one_place() {
        let kinds = [
            EventKind::High { count: 1, delta: 1 },
            EventKind::Max { count: 1, delta: 1 },
            EventKind::Oom { count: 1, delta: 1 },
            EventKind::OomKill { count: 1, delta: 1 },
            EventKind::Psi { stall: Stall::Some, scope: PsiScope::Cgroup },
            EventKind::VmPressure { severity: V1Pressure::Medium },
            EventKind::Threshold { direction: Direction::Up, threshold_bytes: 1 },
            EventKind::LimitChanged { old: None, new: Some(1) },
            EventKind::CgroupRemoved { cgroup: "/a".into() },
            EventKind::WatcherFailed { reason: "r".into() },
            EventKind::LevelChanged { from: Level::Normal, to: Level::Warning, time_to_limit: None },
        ];
        let names: Vec<&str> = kinds.iter().map(EventKind::name).collect();
        assert_eq!(names, EventKind::NAMES);
        for k in &kinds {
            let v = serde_json::to_value(k).expect("json");
            assert_eq!(v["kind"], k.name(), "{k:?}");
        }
    }
}
