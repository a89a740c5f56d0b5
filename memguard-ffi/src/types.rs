//! The plain C structs and enums (snapshot, limits, event, budget figures, settings) and their
//! conversion from the core's types.
//!
//! # Growing a struct (ABI rule)
//! Every struct starts with `uint32_t size`. Fields are only ever **appended**. A struct the
//! caller passes in (`memguard_snapshot`, ...) is filled up to the smaller of the caller's
//! `size` and this library's `sizeof`, and `size` is set to what was filled: a program built
//! against an older header gets the fields it knows, one built against a newer header learns
//! which fields this library filled. A struct the library hands to a callback carries this
//! library's `sizeof` in `size`. A new field is one line in the struct here plus one in its
//! `from_*` conversion; `FIRST_SIZE` never changes.
//!
//! Unknown values: `MEMGUARD_NONE` (`UINT64_MAX`) for a byte count, NaN for a fraction.

use std::mem::size_of;

use memguard::watch::{Direction, EventKind, PsiScope, Stall, V1Pressure};
use memguard::{CgroupVersion, Level, LimitApplied, LimitSource, QosClass};

use crate::boundary::Out;
use crate::errors::Failure;

/// "Unknown" / "none" in a byte-count field of the structs (`UINT64_MAX`).
pub const MEMGUARD_NONE: u64 = u64::MAX;

/// A pressure level. Values never change.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum memguard_level {
    /// Comfortably below the warning threshold.
    MEMGUARD_LEVEL_NORMAL = 0,
    /// Above the warning threshold, or the kernel reports reclaim pressure: shed caches.
    MEMGUARD_LEVEL_WARNING = 1,
    /// Above the critical threshold, or the kernel is at the limit: refuse non-essential work.
    MEMGUARD_LEVEL_CRITICAL = 2,
}

impl From<Level> for memguard_level {
    fn from(l: Level) -> Self {
        match l {
            Level::Normal => memguard_level::MEMGUARD_LEVEL_NORMAL,
            Level::Warning => memguard_level::MEMGUARD_LEVEL_WARNING,
            Level::Critical => memguard_level::MEMGUARD_LEVEL_CRITICAL,
        }
    }
}

/// What an event is (`memguard_event.kind`). Values never change; a kind this version does not
/// know arrives as `MEMGUARD_EVENT_OTHER` (its `json` says what it is).
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum memguard_event_kind {
    /// A kind this version of the library does not know: read `json`.
    MEMGUARD_EVENT_OTHER = 0,
    /// v2 `memory.events` `high` (`count`, `delta`).
    MEMGUARD_EVENT_HIGH = 1,
    /// v2 `memory.events` `max` (`count`, `delta`).
    MEMGUARD_EVENT_MAX = 2,
    /// An OOM condition in the guarded cgroup (`count`, `delta`).
    MEMGUARD_EVENT_OOM = 3,
    /// The OOM killer killed a process of the guarded cgroup (`count`, `delta` processes).
    MEMGUARD_EVENT_OOM_KILL = 4,
    /// A PSI trigger fired (`psi_stall`, `psi_scope`).
    MEMGUARD_EVENT_PSI = 5,
    /// cgroup v1 `memory.pressure_level` (`v1_severity`).
    MEMGUARD_EVENT_VM_PRESSURE = 6,
    /// A cgroup v1 usage threshold fired (`direction`, `threshold_bytes`).
    MEMGUARD_EVENT_THRESHOLD = 7,
    /// The effective limit changed (`old_limit_bytes`, `new_limit_bytes`).
    MEMGUARD_EVENT_LIMIT_CHANGED = 8,
    /// The watched cgroup disappeared (its path is in `json`).
    MEMGUARD_EVENT_CGROUP_REMOVED = 9,
    /// memguard's watcher gave up (a bug; the reason is in `json`).
    MEMGUARD_EVENT_WATCHER_FAILED = 10,
    /// The pressure level changed (`from_level`, `to_level`).
    MEMGUARD_EVENT_LEVEL_CHANGED = 11,
}

/// A sub-field's value (`memguard_event.psi_stall`, ...): 0 when the event has none.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum memguard_event_detail {
    /// Not applicable to this event.
    MEMGUARD_DETAIL_NONE = 0,
    /// `psi_stall`: some tasks stalled.
    MEMGUARD_PSI_SOME = 1,
    /// `psi_stall`: all non-idle tasks stalled.
    MEMGUARD_PSI_FULL = 2,
    /// `psi_scope`: the cgroup's `memory.pressure`.
    MEMGUARD_PSI_CGROUP = 3,
    /// `psi_scope`: the host's `/proc/pressure/memory`.
    MEMGUARD_PSI_SYSTEM = 4,
    /// `v1_severity`: medium.
    MEMGUARD_V1_MEDIUM = 5,
    /// `v1_severity`: critical.
    MEMGUARD_V1_CRITICAL = 6,
    /// `direction`: usage went above the threshold.
    MEMGUARD_DIRECTION_UP = 7,
    /// `direction`: usage went back below it.
    MEMGUARD_DIRECTION_DOWN = 8,
}

/// Which cgroup version governs memory (`memguard_limits.cgroup_version`).
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum memguard_cgroup_version {
    /// No memory cgroup: host memory is the only limit.
    MEMGUARD_CGROUP_NONE = 0,
    /// cgroup v1 memory controller (also on hybrid hosts).
    MEMGUARD_CGROUP_V1 = 1,
    /// cgroup v2 unified hierarchy.
    MEMGUARD_CGROUP_V2 = 2,
}

/// What a limit is (`memguard_limits.limit_applied`, `memguard_snapshot.limit_source`).
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum memguard_limit_kind {
    /// No limit is known (read `limit_maybe_hidden` and `limit_unknown` before "unlimited").
    MEMGUARD_LIMIT_NONE = 0,
    /// The detected cgroup limit.
    MEMGUARD_LIMIT_CGROUP = 1,
    /// The operator's override (`MEMGUARD_LIMIT`, `memguard_config_set_limit_override`).
    MEMGUARD_LIMIT_OVERRIDE = 2,
    /// No cgroup limit: the node's eviction point (snapshot only).
    MEMGUARD_LIMIT_NODE = 3,
}

/// The Kubernetes QoS class `oom_score_adj` implies (`memguard_limits.qos_class`).
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum memguard_qos_class {
    /// No kubelet set `oom_score_adj` (or it is unreadable).
    MEMGUARD_QOS_UNKNOWN = 0,
    /// Guaranteed (-997).
    MEMGUARD_QOS_GUARANTEED = 1,
    /// Burstable (2..999).
    MEMGUARD_QOS_BURSTABLE = 2,
    /// BestEffort (1000).
    MEMGUARD_QOS_BEST_EFFORT = 3,
}

/// The watcher's latest view (`memguard_guard_snapshot()`; handed to `on_level` callbacks).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct memguard_snapshot {
    /// In: `sizeof(memguard_snapshot)` as the caller knows it. Out: the bytes filled.
    pub size: u32,
    /// The current level.
    pub level: memguard_level,
    /// What `limit_bytes` is (`MEMGUARD_LIMIT_CGROUP`, `_OVERRIDE` or `_NODE`).
    pub limit_source: memguard_limit_kind,
    /// A limit file could not be read: the limit used may not be the kernel's.
    pub limit_unknown: bool,
    /// The watcher gave up after repeated internal errors: nothing is watched any more.
    pub failed: bool,
    /// The effective limit the level is computed against (`MEMGUARD_NONE`: nothing known).
    pub limit_bytes: u64,
    /// Usage at the limiting cgroup, page cache included.
    pub usage_bytes: u64,
    /// Working set at the limiting cgroup (usage − inactive file cache; the kubelet's number).
    pub working_set_bytes: u64,
    /// The pressure measure the levels use: memory reclaim cannot free.
    pub unreclaimable_bytes: u64,
    /// `limit − unreclaimable` (`MEMGUARD_NONE` without a limit).
    pub headroom_bytes: u64,
    /// `unreclaimable / limit` (NaN without a limit).
    pub used_fraction: f64,
    /// Host `MemAvailable` (`MEMGUARD_NONE` if unknown).
    pub host_available_bytes: u64,
    /// PSI `some avg10`, percent (NaN without PSI).
    pub psi_some_avg10: f64,
    /// PSI `full avg10`, percent (NaN without PSI).
    pub psi_full_avg10: f64,
    /// Kernel counter `high` of the guarded cgroup.
    pub high_events: u64,
    /// Kernel counter `max`.
    pub max_events: u64,
    /// Kernel counter `oom`.
    pub oom_events: u64,
    /// Kernel counter `oom_kill`.
    pub oom_kill_events: u64,
    /// Usage samples taken.
    pub samples: u64,
    /// The current sampling interval, milliseconds.
    pub sample_interval_ms: f64,
    /// Seconds spent at Normal since the guard started.
    pub seconds_normal: f64,
    /// Seconds spent at Warning.
    pub seconds_warning: f64,
    /// Seconds spent at Critical.
    pub seconds_critical: f64,
    /// `CLOCK_MONOTONIC` nanoseconds of the latest sample.
    pub monotonic_ns: u64,
    /// Events not delivered to callbacks because a callback blocked and the queue was full.
    pub callback_events_dropped: u64,
    /// Internal errors caught (and recovered) on memguard's threads.
    pub watcher_panics: u64,
    /// The predicted time to the limit at the current steady growth, seconds (NaN: memory does
    /// not grow steadily). Under the warning horizon the level is at least Warning.
    pub time_to_limit_s: f64,
    /// The growth rate of the measure, bytes per second (NaN: too few samples).
    pub growth_rate: f64,
}

/// What detection found (`memguard_guard_limits()`). Paths and notes: `memguard_limits_json()`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct memguard_limits {
    /// In: `sizeof(memguard_limits)` as the caller knows it. Out: the bytes filled.
    pub size: u32,
    /// The hierarchy carrying the memory controller.
    pub cgroup_version: memguard_cgroup_version,
    /// What `limit_bytes` is (`MEMGUARD_LIMIT_NONE`, `_CGROUP` or `_OVERRIDE`).
    pub limit_applied: memguard_limit_kind,
    /// The QoS class `oom_score_adj` implies.
    pub qos_class: memguard_qos_class,
    /// A tighter limit may be hidden above the cgroup namespace root.
    pub limit_maybe_hidden: bool,
    /// A limit file exists but could not be read: the limit is unknown.
    pub limit_unknown: bool,
    /// The effective hard limit (`MEMGUARD_NONE`: none known).
    pub limit_bytes: u64,
    /// The lowest limit detection found up the hierarchy (`MEMGUARD_NONE`: none).
    pub detected_limit_bytes: u64,
    /// The operator's override (`MEMGUARD_NONE`: none).
    pub limit_override_bytes: u64,
    /// v2 lowest `memory.high`; v1 lowest soft limit (`MEMGUARD_NONE`: none).
    pub high_bytes: u64,
    /// Swap allowed on top of memory (`MEMGUARD_NONE`: not limited).
    pub swap_limit_bytes: u64,
    /// Host `MemTotal` (`MEMGUARD_NONE` if unknown).
    pub host_total_bytes: u64,
    /// The process's `oom_score_adj` (`INT32_MIN` if unknown).
    pub oom_score_adj: i32,
}

/// An event (`memguard_next_event()`; handed to `on_event` callbacks). Fields that do not apply
/// to `kind` are 0 (`MEMGUARD_DETAIL_NONE`), byte counts `MEMGUARD_NONE`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct memguard_event {
    /// In (`memguard_next_event`): `sizeof(memguard_event)` as the caller knows it. Out: the
    /// bytes filled.
    pub size: u32,
    /// What happened.
    pub kind: memguard_event_kind,
    /// The level after this event.
    pub level: memguard_level,
    /// `MEMGUARD_EVENT_LEVEL_CHANGED`: the level before.
    pub from_level: memguard_level,
    /// `MEMGUARD_EVENT_LEVEL_CHANGED`: the level now.
    pub to_level: memguard_level,
    /// `MEMGUARD_EVENT_PSI`: `MEMGUARD_PSI_SOME` or `MEMGUARD_PSI_FULL`.
    pub psi_stall: memguard_event_detail,
    /// `MEMGUARD_EVENT_PSI`: `MEMGUARD_PSI_CGROUP` or `MEMGUARD_PSI_SYSTEM`.
    pub psi_scope: memguard_event_detail,
    /// `MEMGUARD_EVENT_VM_PRESSURE`: `MEMGUARD_V1_MEDIUM` or `MEMGUARD_V1_CRITICAL`.
    pub v1_severity: memguard_event_detail,
    /// `MEMGUARD_EVENT_THRESHOLD`: `MEMGUARD_DIRECTION_UP` or `MEMGUARD_DIRECTION_DOWN`.
    pub direction: memguard_event_detail,
    /// `CLOCK_MONOTONIC` nanoseconds when the watcher woke for it.
    pub monotonic_ns: u64,
    /// Working set at the limiting cgroup, latest sample (`MEMGUARD_NONE` if unknown).
    pub working_set_bytes: u64,
    /// The pressure measure, latest sample (`MEMGUARD_NONE` if unknown).
    pub unreclaimable_bytes: u64,
    /// The effective limit in force (`MEMGUARD_NONE`: none).
    pub limit_bytes: u64,
    /// `HIGH`, `MAX`, `OOM`, `OOM_KILL`: the kernel counter now.
    pub count: u64,
    /// `HIGH`, `MAX`, `OOM`, `OOM_KILL`: its increase since the previous event of that kind.
    pub delta: u64,
    /// `MEMGUARD_EVENT_THRESHOLD`: the threshold, bytes of usage.
    pub threshold_bytes: u64,
    /// `MEMGUARD_EVENT_LIMIT_CHANGED`: the previous limit (`MEMGUARD_NONE`: none).
    pub old_limit_bytes: u64,
    /// `MEMGUARD_EVENT_LIMIT_CHANGED`: the new limit (`MEMGUARD_NONE`: none).
    pub new_limit_bytes: u64,
    /// The event as one JSON object (the `memguard watch --json` line), NUL-terminated: every
    /// field, including those this struct lacks. In a callback: valid during the call. From
    /// `memguard_next_event`: valid until the string stored in its `json` out-parameter is
    /// freed; NULL when that out-parameter is NULL.
    pub json: *const std::ffi::c_char,
    /// `MEMGUARD_EVENT_LEVEL_CHANGED`: the predicted time to the limit, seconds, when the
    /// change came with one (NaN otherwise).
    pub time_to_limit_s: f64,
}

/// The soft-limit budget's figures (`memguard_guard_budget_stats()`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct memguard_budget_stats {
    /// In: `sizeof(memguard_budget_stats)` as the caller knows it. Out: the bytes filled.
    pub size: u32,
    /// The level the budget judges with (refuses everything non-forced at Critical).
    pub level: memguard_level,
    /// The soft limit in bytes (`MEMGUARD_NONE`: no limit known).
    pub soft_limit_bytes: u64,
    /// The last usage sample (the pressure measure).
    pub usage_bytes: u64,
    /// Bytes held by live reservations.
    pub outstanding_bytes: u64,
    /// Released bytes no sample has reflected yet (still counted).
    pub settling_bytes: u64,
    /// Bytes pre-charged in the threads' stocks (still counted).
    pub stocked_bytes: u64,
    /// The largest request the budget would grant to the calling thread now.
    pub available_bytes: u64,
    /// Requests granted.
    pub granted: u64,
    /// Requests refused.
    pub refused: u64,
    /// Forced reservations.
    pub forced: u64,
}

/// The figures of the calling thread's last budget refusal (`memguard_last_refusal()`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct memguard_refusal {
    /// In: `sizeof(memguard_refusal)` as the caller knows it. Out: the bytes filled.
    pub size: u32,
    /// The level at that moment.
    pub level: memguard_level,
    /// A sub-budget's cap refused (its name is in `memguard_last_error()`), not the soft limit.
    pub sub_budget: bool,
    /// Bytes asked for (for a resize, the growth).
    pub requested: u64,
    /// The most that could have been granted then (0 at Critical).
    pub available: u64,
    /// The limit that refused: the soft limit, or the sub-budget's cap.
    pub soft_limit: u64,
}

/// The configuration a guard runs with (`memguard_guard_settings()`). Durations in
/// milliseconds, fractions of the effective limit.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct memguard_settings {
    /// In: `sizeof(memguard_settings)` as the caller knows it. Out: the bytes filled.
    pub size: u32,
    /// PSI triggers armed.
    pub psi: bool,
    /// `memory.events` / v1 eventfds armed.
    pub cgroup_events: bool,
    /// `malloc_trim` after shedding.
    pub malloc_trim: bool,
    /// Warning threshold.
    pub warn: f64,
    /// Critical threshold.
    pub critical: f64,
    /// Hysteresis band.
    pub hysteresis: f64,
    /// The budget's soft limit.
    pub soft_limit: f64,
    /// The operator's limit (`MEMGUARD_NONE`: none).
    pub limit_override_bytes: u64,
    /// How long a kernel event's level floor holds.
    pub event_hold_ms: u64,
    /// Shortest sampling interval.
    pub sample_min_ms: u64,
    /// Longest sampling interval.
    pub sample_max_ms: u64,
    /// Allocation rate the sampler keeps up with, bytes/s.
    pub max_alloc_rate: u64,
    /// Without a cgroup limit, `MemTotal` minus this is the limit.
    pub eviction_threshold_bytes: u64,
    /// Minimum time between two `High` / `Max` events.
    pub debounce_ms: u64,
    /// Minimum time between two shedding runs.
    pub shed_interval_ms: u64,
    /// Minimum time between two `malloc_trim` calls.
    pub trim_interval_ms: u64,
    /// How often detection re-runs.
    pub redetect_interval_ms: u64,
    /// Events kept for `memguard_next_event`.
    pub queue_capacity: u64,
    /// The process whose cgroup is guarded (0: this one).
    pub pid: u32,
    /// Predictive warning horizon, ms (0: disabled).
    pub horizon_warn_ms: u64,
    /// Predictive critical horizon, ms (0: disabled).
    pub horizon_critical_ms: u64,
}

/// A struct the caller fills in with its `size` first.
pub(crate) trait Sized32: Copy {
    /// The `size` of the first version of the struct: never changes.
    const FIRST_SIZE: u32;
    fn set_size(&mut self, size: u32);
}

macro_rules! sized {
    ($($t:ty),*) => {$(
        impl Sized32 for $t {
            const FIRST_SIZE: u32 = size_of::<$t>() as u32;
            fn set_size(&mut self, size: u32) {
                self.size = size;
            }
        }
    )*};
}
sized!(memguard_snapshot, memguard_limits, memguard_event, memguard_budget_stats, memguard_refusal, memguard_settings);

/// `sizeof(T)` as the `size` of a struct this library hands out.
pub(crate) fn sized<T>() -> u32 {
    u32::try_from(size_of::<T>()).unwrap_or(u32::MAX)
}

/// A caller's struct to fill: checked (non-NULL, `size` at least the first version's) before
/// any work is done, written with [`Filler::write`] only on success.
pub(crate) struct Filler<T: Sized32> {
    out: Out<T>,
    caller_size: u32,
}

impl<T: Sized32> Filler<T> {
    pub(crate) fn new(out: *mut T, what: &str) -> Result<Self, Failure> {
        let out = Out::new(out, what)?;
        // SAFETY: `out` is non-NULL; by the header's contract it points to a struct whose
        // first member is `uint32_t size`, readable.
        let caller_size = unsafe { out.as_ptr().cast::<u32>().read_unaligned() };
        if caller_size < T::FIRST_SIZE {
            return Err(Failure::invalid(format!(
                "{what}->size is {caller_size}: set it to sizeof the struct (at least {})",
                T::FIRST_SIZE
            )));
        }
        Ok(Filler { out, caller_size })
    }

    /// Copy `min(size, sizeof)` bytes of `value` and set `size` to that.
    pub(crate) fn write(self, mut value: T) {
        let n = self.caller_size.min(sized::<T>());
        value.set_size(n);
        // SAFETY: the caller declared `caller_size >= n` writable bytes at `out`; `value` is a
        // plain `repr(C)` struct of at least `n` bytes; the two do not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping((&raw const value).cast::<u8>(), self.out.as_ptr().cast::<u8>(), n as usize);
        }
    }
}

/// Check and fill in one go (see [`Filler`]).
pub(crate) fn fill<T: Sized32>(out: *mut T, what: &str, value: impl FnOnce() -> T) -> Result<(), Failure> {
    let filler = Filler::new(out, what)?;
    filler.write(value());
    Ok(())
}

fn none(v: Option<u64>) -> u64 {
    v.unwrap_or(MEMGUARD_NONE)
}

pub(crate) fn from_snapshot(s: &memguard::Snapshot) -> memguard_snapshot {
    let kind = match s.limit_source {
        LimitSource::Cgroup => memguard_limit_kind::MEMGUARD_LIMIT_CGROUP,
        LimitSource::Override => memguard_limit_kind::MEMGUARD_LIMIT_OVERRIDE,
        _ => memguard_limit_kind::MEMGUARD_LIMIT_NODE,
    };
    memguard_snapshot {
        size: sized::<memguard_snapshot>(),
        level: s.level.into(),
        limit_source: kind,
        limit_unknown: s.limit_unknown,
        failed: s.failed.is_some(),
        limit_bytes: none(s.limit_bytes),
        usage_bytes: s.usage_bytes,
        working_set_bytes: s.working_set_bytes,
        unreclaimable_bytes: s.unreclaimable_bytes,
        headroom_bytes: none(s.headroom_bytes),
        used_fraction: s.used_fraction.unwrap_or(f64::NAN),
        host_available_bytes: none(s.host_available_bytes),
        psi_some_avg10: s.psi.map_or(f64::NAN, |p| p.some_avg10),
        psi_full_avg10: s.psi.map_or(f64::NAN, |p| p.full_avg10),
        high_events: s.kernel_counters.high,
        max_events: s.kernel_counters.max,
        oom_events: s.kernel_counters.oom,
        oom_kill_events: s.kernel_counters.oom_kill,
        samples: s.samples,
        sample_interval_ms: s.sample_interval_ms,
        seconds_normal: s.seconds_in_level[0],
        seconds_warning: s.seconds_in_level[1],
        seconds_critical: s.seconds_in_level[2],
        monotonic_ns: s.monotonic_ns,
        callback_events_dropped: s.callback_events_dropped,
        watcher_panics: s.watcher_panics,
        time_to_limit_s: s.time_to_limit.unwrap_or(f64::NAN),
        growth_rate: s.growth_rate.unwrap_or(f64::NAN),
    }
}

pub(crate) fn from_limits(l: &memguard::Limits) -> memguard_limits {
    let applied = match l.limit_applied {
        LimitApplied::Cgroup => memguard_limit_kind::MEMGUARD_LIMIT_CGROUP,
        LimitApplied::Override => memguard_limit_kind::MEMGUARD_LIMIT_OVERRIDE,
        _ => memguard_limit_kind::MEMGUARD_LIMIT_NONE,
    };
    let version = match l.cgroup {
        CgroupVersion::V1 => memguard_cgroup_version::MEMGUARD_CGROUP_V1,
        CgroupVersion::V2 => memguard_cgroup_version::MEMGUARD_CGROUP_V2,
        CgroupVersion::None => memguard_cgroup_version::MEMGUARD_CGROUP_NONE,
    };
    let qos = match l.qos_class {
        Some(QosClass::Guaranteed) => memguard_qos_class::MEMGUARD_QOS_GUARANTEED,
        Some(QosClass::Burstable) => memguard_qos_class::MEMGUARD_QOS_BURSTABLE,
        Some(QosClass::BestEffort) => memguard_qos_class::MEMGUARD_QOS_BEST_EFFORT,
        None => memguard_qos_class::MEMGUARD_QOS_UNKNOWN,
    };
    memguard_limits {
        size: sized::<memguard_limits>(),
        cgroup_version: version,
        limit_applied: applied,
        qos_class: qos,
        limit_maybe_hidden: l.limit_maybe_hidden,
        limit_unknown: l.limit_unknown,
        limit_bytes: none(l.limit_bytes),
        detected_limit_bytes: none(l.detected_limit_bytes),
        limit_override_bytes: none(l.limit_override_bytes),
        high_bytes: none(l.high_bytes),
        swap_limit_bytes: none(l.swap_limit_bytes),
        host_total_bytes: none(l.host_total_bytes),
        oom_score_adj: l.oom_score_adj.unwrap_or(i32::MIN),
    }
}

/// The C form of `ev`; `json` points to the caller's rendering (or NULL).
pub(crate) fn from_event(ev: &memguard::Event, json: *const std::ffi::c_char) -> memguard_event {
    use memguard_event_detail::*;
    use memguard_event_kind::*;
    let mut out = memguard_event {
        size: sized::<memguard_event>(),
        kind: MEMGUARD_EVENT_OTHER,
        level: ev.level.into(),
        from_level: ev.level.into(),
        to_level: ev.level.into(),
        psi_stall: MEMGUARD_DETAIL_NONE,
        psi_scope: MEMGUARD_DETAIL_NONE,
        v1_severity: MEMGUARD_DETAIL_NONE,
        direction: MEMGUARD_DETAIL_NONE,
        monotonic_ns: ev.monotonic_ns,
        working_set_bytes: none(ev.working_set_bytes),
        unreclaimable_bytes: none(ev.unreclaimable_bytes),
        limit_bytes: none(ev.limit_bytes),
        count: 0,
        delta: 0,
        threshold_bytes: MEMGUARD_NONE,
        old_limit_bytes: MEMGUARD_NONE,
        new_limit_bytes: MEMGUARD_NONE,
        json,
        time_to_limit_s: f64::NAN,
    };
    match &ev.kind {
        EventKind::High { count, delta, .. } => {
            (out.kind, out.count, out.delta) = (MEMGUARD_EVENT_HIGH, *count, *delta)
        }
        EventKind::Max { count, delta, .. } => (out.kind, out.count, out.delta) = (MEMGUARD_EVENT_MAX, *count, *delta),
        EventKind::Oom { count, delta, .. } => (out.kind, out.count, out.delta) = (MEMGUARD_EVENT_OOM, *count, *delta),
        EventKind::OomKill { count, delta, .. } => {
            (out.kind, out.count, out.delta) = (MEMGUARD_EVENT_OOM_KILL, *count, *delta);
        }
        EventKind::Psi { stall, scope, .. } => {
            out.kind = MEMGUARD_EVENT_PSI;
            out.psi_stall = match stall {
                Stall::Some => MEMGUARD_PSI_SOME,
                Stall::Full => MEMGUARD_PSI_FULL,
            };
            out.psi_scope = match scope {
                PsiScope::Cgroup => MEMGUARD_PSI_CGROUP,
                PsiScope::System => MEMGUARD_PSI_SYSTEM,
            };
        }
        EventKind::VmPressure { severity, .. } => {
            out.kind = MEMGUARD_EVENT_VM_PRESSURE;
            out.v1_severity = match severity {
                V1Pressure::Medium => MEMGUARD_V1_MEDIUM,
                _ => MEMGUARD_V1_CRITICAL,
            };
        }
        EventKind::Threshold { direction, threshold_bytes, .. } => {
            out.kind = MEMGUARD_EVENT_THRESHOLD;
            out.threshold_bytes = *threshold_bytes;
            out.direction = match direction {
                Direction::Up => MEMGUARD_DIRECTION_UP,
                Direction::Down => MEMGUARD_DIRECTION_DOWN,
            };
        }
        EventKind::LimitChanged { old, new, .. } => {
            (out.kind, out.old_limit_bytes, out.new_limit_bytes) =
                (MEMGUARD_EVENT_LIMIT_CHANGED, none(*old), none(*new));
        }
        EventKind::CgroupRemoved { .. } => out.kind = MEMGUARD_EVENT_CGROUP_REMOVED,
        EventKind::WatcherFailed { .. } => out.kind = MEMGUARD_EVENT_WATCHER_FAILED,
        EventKind::LevelChanged { from, to, time_to_limit, .. } => {
            (out.kind, out.from_level, out.to_level) = (MEMGUARD_EVENT_LEVEL_CHANGED, (*from).into(), (*to).into());
            out.time_to_limit_s = time_to_limit.unwrap_or(f64::NAN);
        }
        _ => {}
    }
    out
}

pub(crate) fn from_budget(s: &memguard::BudgetStats) -> memguard_budget_stats {
    memguard_budget_stats {
        size: sized::<memguard_budget_stats>(),
        level: s.level.into(),
        soft_limit_bytes: s.soft_limit_bytes,
        usage_bytes: s.usage_bytes,
        outstanding_bytes: s.outstanding_bytes,
        settling_bytes: s.settling_bytes,
        stocked_bytes: s.stocked_bytes,
        available_bytes: s.available_bytes,
        granted: s.granted,
        refused: s.refused,
        forced: s.forced,
    }
}

fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

pub(crate) fn from_config(c: &memguard::Config) -> memguard_settings {
    let th = c.thresholds();
    let (lo, hi) = c.sample_interval();
    memguard_settings {
        size: sized::<memguard_settings>(),
        psi: c.psi(),
        cgroup_events: c.cgroup_events(),
        malloc_trim: c.malloc_trim(),
        warn: th.warn(),
        critical: th.critical(),
        hysteresis: th.hysteresis(),
        soft_limit: c.soft_limit(),
        limit_override_bytes: none(c.limit_override().map(|o| o.bytes)),
        event_hold_ms: ms(c.event_hold()),
        sample_min_ms: ms(lo),
        sample_max_ms: ms(hi),
        max_alloc_rate: c.max_alloc_rate(),
        eviction_threshold_bytes: c.eviction_threshold(),
        debounce_ms: ms(c.debounce()),
        shed_interval_ms: ms(c.shed_interval()),
        trim_interval_ms: ms(c.trim_interval()),
        redetect_interval_ms: ms(c.redetect_interval()),
        queue_capacity: c.queue_capacity() as u64,
        pid: c.pid().unwrap_or(0),
        horizon_warn_ms: ms(c.horizon().0),
        horizon_critical_ms: ms(c.horizon().1),
    }
}
