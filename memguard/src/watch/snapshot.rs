//! [`Snapshot`]: the watcher's latest view, readable at any time without a syscall.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::budget::BudgetStats;
use crate::level::Level;
use crate::shed::ShedStats;

/// What the effective limit of a [`Snapshot`] is.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitSource {
    /// The cgroup limit (the pressure measure at the limiting cgroup against it).
    Cgroup,
    /// The operator's override (`MEMGUARD_LIMIT`, `Builder::limit_override`), lower than any
    /// detected limit, against the measure at the watched cgroup.
    Override,
    /// No cgroup limit: the node's eviction point (`MemTotal - eviction threshold`) against
    /// host used memory (`MemTotal - MemAvailable`).
    Node,
}

/// PSI averages (percent of time stalled) and totals (µs) from a `memory.pressure` file.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct PsiAverages {
    /// `some avg10`.
    pub some_avg10: f64,
    /// `some avg60`.
    pub some_avg60: f64,
    /// `some total` (µs).
    pub some_total_us: u64,
    /// `full avg10`.
    pub full_avg10: f64,
    /// `full avg60`.
    pub full_avg60: f64,
    /// `full total` (µs).
    pub full_total_us: u64,
}

impl PsiAverages {
    /// Parse the text of a PSI file; `None` when it has no `some` line.
    pub fn parse(text: &str) -> Option<PsiAverages> {
        let mut out = PsiAverages::default();
        let mut seen = false;
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let which = words.next();
            let (mut a10, mut a60, mut total) = (0.0, 0.0, 0);
            for w in words {
                let Some((k, v)) = w.split_once('=') else { continue };
                match k {
                    "avg10" => a10 = v.parse().unwrap_or(0.0),
                    "avg60" => a60 = v.parse().unwrap_or(0.0),
                    "total" => total = v.parse().unwrap_or(0),
                    _ => {}
                }
            }
            match which {
                Some("some") => {
                    seen = true;
                    (out.some_avg10, out.some_avg60, out.some_total_us) = (a10, a60, total);
                }
                Some("full") => (out.full_avg10, out.full_avg60, out.full_total_us) = (a10, a60, total),
                _ => {}
            }
        }
        seen.then_some(out)
    }
}

/// Kernel event counters of the guarded cgroup (v2 `memory.events`; v1 `memory.oom_control`).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct KernelCounters {
    /// `high`.
    pub high: u64,
    /// `max`.
    pub max: u64,
    /// `oom`.
    pub oom: u64,
    /// `oom_kill`.
    pub oom_kill: u64,
}

/// The watcher's latest view.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    /// Current level.
    pub level: Level,
    /// The effective limit the level is computed against (`None` = nothing known).
    pub limit_bytes: Option<u64>,
    /// What that limit is.
    pub limit_source: LimitSource,
    /// A cgroup limit file could not be read or parsed: the limit used may not be the one the
    /// kernel enforces (see [`Limits::limit_unknown_files`](crate::Limits::limit_unknown_files)).
    pub limit_unknown: bool,
    /// Usage at the limiting cgroup, page cache included (host used memory in node mode).
    pub usage_bytes: u64,
    /// Working set at the limiting cgroup: usage minus inactive page cache, the number the
    /// kubelet evicts on (host used memory in node mode). Reported for parity; levels do not
    /// use it, because active page cache is reclaimable too.
    pub working_set_bytes: u64,
    /// The **pressure measure** the levels, the budget and shedding use: memory the kernel's
    /// reclaim cannot free at the limiting cgroup — usage minus clean page cache (active and
    /// inactive file pages that are neither dirty nor under writeback), so anonymous memory,
    /// shared memory/tmpfs, kernel memory and dirty pages (host used memory in node mode).
    /// With swap, anonymous memory could be swapped: the measure then over-states the risk.
    pub unreclaimable_bytes: u64,
    /// `limit - unreclaimable`: what can still be allocated before the OOM killer acts.
    pub headroom_bytes: Option<u64>,
    /// `unreclaimable / limit`: the fraction the level thresholds apply to.
    pub used_fraction: Option<f64>,
    /// The predicted time to the limit, seconds, at the current *sustained* growth of the
    /// measure (the median slope of the last half second of samples, the last three rising);
    /// `None` when memory does not grow steadily or the way left is more than four times the
    /// growth seen. Under the warning horizon (default 250 ms; `Builder::horizon`) the level is
    /// at least Warning, under the critical horizon (100 ms) Critical.
    pub time_to_limit: Option<f64>,
    /// The growth rate of the measure, bytes per second (median slope of the last half second of
    /// samples; negative when shrinking, `None` with too few samples).
    pub growth_rate: Option<f64>,
    /// Host `MemAvailable`.
    pub host_available_bytes: Option<u64>,
    /// PSI averages of the watched pressure file (refreshed about once a second).
    pub psi: Option<PsiAverages>,
    /// Kernel counters of the guarded cgroup.
    pub kernel_counters: KernelCounters,
    /// Events delivered so far, per [`EventKind::name`](crate::watch::EventKind::name).
    pub events_total: BTreeMap<&'static str, u64>,
    /// Usage samples taken.
    pub samples: u64,
    /// Current sampling interval, milliseconds.
    pub sample_interval_ms: f64,
    /// Seconds spent in Normal, Warning, Critical since the guard started.
    pub seconds_in_level: [f64; 3],
    /// `CLOCK_MONOTONIC` ns of the latest sample.
    pub monotonic_ns: u64,
    /// Budget counters (reservations granted/refused/forced, outstanding bytes). Filled by
    /// [`GuardHandle::snapshot`](crate::watch::GuardHandle::snapshot); `None` in the snapshot
    /// handed to level callbacks.
    pub budget: Option<BudgetStats>,
    /// Shedding counters (bytes freed per shedder, runs, trims). Filled like `budget`.
    pub shed: Option<ShedStats>,
    /// Events not delivered to `on_event`/`on_level` callbacks because the callback queue was
    /// full (a callback that blocks): the oldest are dropped. Shedding and the level never wait
    /// for callbacks.
    pub callback_events_dropped: u64,
    /// Panics caught on memguard's own threads (a bug in memguard: the watcher logs it,
    /// re-detects and re-arms, and keeps running).
    pub watcher_panics: u64,
    /// `Some(reason)` once the watcher gave up (repeated panics): level and usage are no longer
    /// updated and the guard protects nothing. Also reported as an event and a metric.
    pub failed: Option<String>,
}

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot {
            level: Level::Normal,
            limit_bytes: None,
            limit_source: LimitSource::Node,
            limit_unknown: false,
            usage_bytes: 0,
            working_set_bytes: 0,
            unreclaimable_bytes: 0,
            headroom_bytes: None,
            time_to_limit: None,
            growth_rate: None,
            used_fraction: None,
            host_available_bytes: None,
            psi: None,
            kernel_counters: KernelCounters::default(),
            events_total: BTreeMap::new(),
            samples: 0,
            sample_interval_ms: 0.0,
            seconds_in_level: [0.0; 3],
            monotonic_ns: 0,
            budget: None,
            shed: None,
            callback_events_dropped: 0,
            watcher_panics: 0,
            failed: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PsiAverages;

    #[test]
    fn parses_psi_files() {
        let p = PsiAverages::parse(
            "some avg10=1.50 avg60=0.20 avg300=0.00 total=12345\nfull avg10=0.50 avg60=0.10 avg300=0.00 total=678\n",
        )
        .expect("psi");
        assert_eq!((p.some_avg10, p.some_total_us, p.full_avg10, p.full_total_us), (1.5, 12345, 0.5, 678));
        assert_eq!(PsiAverages::parse("garbage"), None);
    }
}
