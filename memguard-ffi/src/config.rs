//! `memguard_config`: the core's `Builder` behind an opaque pointer, one setter per setting.
//!
//! Setters never fail on values (only on a NULL config); every value is range-checked by the
//! core when the guard starts (or by `memguard_config_check`), and the error names the setting
//! and, for a value read from a `MEMGUARD_*` variable, the variable and its text. A new core
//! option is one setter here plus one field at the end of `memguard_settings` (`types.rs`).

use std::ffi::c_char;
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use memguard::watch::Builder;

use crate::boundary::{arg, bytes_arg, call, call_or, Out};
use crate::errors::{memguard_result, Failure};

/// A guard's configuration (opaque). Create it with `memguard_config_new` (defaults) or
/// `memguard_config_from_env` (`MEMGUARD_*`), free it with `memguard_config_free`. Not
/// thread-safe: do not use one config from two threads at once.
#[allow(non_camel_case_types)]
pub struct memguard_config {
    pub(crate) builder: Builder,
}

const OK: memguard_result = memguard_result::MEMGUARD_OK;

/// Apply `set` to the config's builder.
fn update(cfg: *mut memguard_config, set: impl FnOnce(Builder) -> Builder) -> memguard_result {
    call(|| {
        if cfg.is_null() {
            return Err(Failure::null("config"));
        }
        // SAFETY: non-NULL; by the header's contract a live config from `memguard_config_new`
        // or `_from_env`, not used by another thread during the call.
        let cfg = unsafe { &mut *cfg };
        cfg.builder = set(std::mem::take(&mut cfg.builder));
        Ok(OK)
    })
}

fn store(out: *mut *mut memguard_config, builder: impl FnOnce() -> Result<Builder, Failure>) -> memguard_result {
    call(|| {
        let out = Out::new(out, "out")?;
        let builder = builder()?;
        out.write(Box::into_raw(Box::new(memguard_config { builder })));
        Ok(OK)
    })
}

/// A configuration with memguard's defaults (the environment is not read).
///
/// # Errors
/// `MEMGUARD_ERR_NULL_ARGUMENT` if `out` is NULL.
#[no_mangle]
pub extern "C" fn memguard_config_new(out: *mut *mut memguard_config) -> memguard_result {
    store(out, || Ok(Builder::new()))
}

/// A configuration from the `MEMGUARD_*` environment variables (defaults for those unset);
/// setters called afterwards win over the environment.
///
/// # Errors
/// `MEMGUARD_ERR_INVALID_CONFIG` naming the variable whose text does not parse
/// (`MEMGUARD_WARN="abc"`); ranges are checked when the guard starts.
#[no_mangle]
pub extern "C" fn memguard_config_from_env(out: *mut *mut memguard_config) -> memguard_result {
    store(out, || Ok(Builder::from_env()?))
}

/// Free a configuration. NULL is a no-op. A guard started from it does not need it any more.
#[no_mangle]
pub extern "C" fn memguard_config_free(cfg: *mut memguard_config) {
    call_or((), || {
        if !cfg.is_null() {
            // SAFETY: from `Box::into_raw` in `store`; the caller gives the pointer up.
            drop(unsafe { Box::from_raw(cfg) });
        }
    });
}

/// Check every value against its documented range without starting a guard.
///
/// # Errors
/// `MEMGUARD_ERR_INVALID_CONFIG` naming the first setting out of range.
#[no_mangle]
pub extern "C" fn memguard_config_check(cfg: *const memguard_config) -> memguard_result {
    call(|| {
        arg(cfg, "config")?.builder.config()?;
        Ok(OK)
    })
}

/// Warning threshold, fraction of the effective limit (default 0.80; `MEMGUARD_WARN`).
#[no_mangle]
pub extern "C" fn memguard_config_set_warn(cfg: *mut memguard_config, fraction: f64) -> memguard_result {
    update(cfg, |b| b.warn(fraction))
}

/// Critical threshold, fraction of the effective limit (default 0.90; `MEMGUARD_CRITICAL`).
#[no_mangle]
pub extern "C" fn memguard_config_set_critical(cfg: *mut memguard_config, fraction: f64) -> memguard_result {
    update(cfg, |b| b.critical(fraction))
}

/// Hysteresis band below a threshold before its level is left (default 0.05;
/// `MEMGUARD_HYSTERESIS`).
#[no_mangle]
pub extern "C" fn memguard_config_set_hysteresis(cfg: *mut memguard_config, fraction: f64) -> memguard_result {
    update(cfg, |b| b.hysteresis(fraction))
}

/// The budget's soft limit, fraction of the effective limit (default 0.85;
/// `MEMGUARD_SOFT_LIMIT`).
#[no_mangle]
pub extern "C" fn memguard_config_set_soft_limit(cfg: *mut memguard_config, fraction: f64) -> memguard_result {
    update(cfg, |b| b.soft_limit(fraction))
}

/// The operator's limit in bytes (at least 1 MiB); the lower of it and the detected limit
/// applies (`MEMGUARD_LIMIT`).
#[no_mangle]
pub extern "C" fn memguard_config_set_limit_override(cfg: *mut memguard_config, bytes: u64) -> memguard_result {
    update(cfg, |b| b.limit_override(bytes))
}

/// How long a kernel event's level floor holds, ms (default 2000; `MEMGUARD_EVENT_HOLD`).
#[no_mangle]
pub extern "C" fn memguard_config_set_event_hold_ms(cfg: *mut memguard_config, ms: u64) -> memguard_result {
    update(cfg, |b| b.event_hold(Duration::from_millis(ms)))
}

/// Predictive warning horizons, ms (default 250 and 100; 0 disables each;
/// `MEMGUARD_HORIZON_WARN`, `MEMGUARD_HORIZON_CRITICAL`): the level rises to Warning / Critical
/// when memory, growing steadily, would reach the limit sooner.
#[no_mangle]
pub extern "C" fn memguard_config_set_horizon_ms(
    cfg: *mut memguard_config,
    warn_ms: u64,
    critical_ms: u64,
) -> memguard_result {
    update(cfg, |b| b.horizon(Duration::from_millis(warn_ms), Duration::from_millis(critical_ms)))
}

/// Sampling interval bounds, ms (default 5 .. 1000; `MEMGUARD_SAMPLE_MIN`, `MEMGUARD_SAMPLE_MAX`).
#[no_mangle]
pub extern "C" fn memguard_config_set_sample_interval_ms(
    cfg: *mut memguard_config,
    min_ms: u64,
    max_ms: u64,
) -> memguard_result {
    update(cfg, |b| b.sample_interval(Duration::from_millis(min_ms), Duration::from_millis(max_ms)))
}

/// Allocation rate the sampler keeps up with, bytes/s (default 2 GiB/s; `MEMGUARD_MAX_RATE`).
#[no_mangle]
pub extern "C" fn memguard_config_set_max_alloc_rate(cfg: *mut memguard_config, bytes_per_sec: u64) -> memguard_result {
    update(cfg, |b| b.max_alloc_rate(bytes_per_sec))
}

/// Without a cgroup limit, `MemTotal` minus this is the limit (default 100 MiB;
/// `MEMGUARD_EVICTION_THRESHOLD`).
#[no_mangle]
pub extern "C" fn memguard_config_set_eviction_threshold(cfg: *mut memguard_config, bytes: u64) -> memguard_result {
    update(cfg, |b| b.eviction_threshold(bytes))
}

/// Arm PSI triggers (default true; `MEMGUARD_PSI`).
#[no_mangle]
pub extern "C" fn memguard_config_set_psi(cfg: *mut memguard_config, on: bool) -> memguard_result {
    update(cfg, |b| b.psi(on))
}

/// Arm `memory.events` and the v1 eventfds (default true; `MEMGUARD_CGROUP_EVENTS`).
#[no_mangle]
pub extern "C" fn memguard_config_set_cgroup_events(cfg: *mut memguard_config, on: bool) -> memguard_result {
    update(cfg, |b| b.cgroup_events(on))
}

/// Minimum time between two `High` / `Max` events, ms (default 100; `MEMGUARD_DEBOUNCE`).
#[no_mangle]
pub extern "C" fn memguard_config_set_debounce_ms(cfg: *mut memguard_config, ms: u64) -> memguard_result {
    update(cfg, |b| b.debounce(Duration::from_millis(ms)))
}

/// Minimum time between two shedding runs, ms (default 1000; `MEMGUARD_SHED_INTERVAL`).
#[no_mangle]
pub extern "C" fn memguard_config_set_shed_interval_ms(cfg: *mut memguard_config, ms: u64) -> memguard_result {
    update(cfg, |b| b.shed_interval(Duration::from_millis(ms)))
}

/// `malloc_trim(0)` after shedding freed memory, at most once per `min_interval_ms` (default
/// true, 10; `MEMGUARD_MALLOC_TRIM`, `MEMGUARD_TRIM_INTERVAL`).
#[no_mangle]
pub extern "C" fn memguard_config_set_malloc_trim(
    cfg: *mut memguard_config,
    on: bool,
    min_interval_ms: u64,
) -> memguard_result {
    update(cfg, |b| b.malloc_trim(on, Duration::from_millis(min_interval_ms)))
}

/// How often detection re-runs, ms (default 10000; `MEMGUARD_REDETECT_INTERVAL`).
#[no_mangle]
pub extern "C" fn memguard_config_set_redetect_interval_ms(cfg: *mut memguard_config, ms: u64) -> memguard_result {
    update(cfg, |b| b.redetect_interval(Duration::from_millis(ms)))
}

/// Events kept for `memguard_next_event`, the oldest dropped beyond (default 1024;
/// `MEMGUARD_QUEUE_CAPACITY`).
#[no_mangle]
pub extern "C" fn memguard_config_set_queue_capacity(cfg: *mut memguard_config, events: u64) -> memguard_result {
    update(cfg, |b| b.queue_capacity(usize::try_from(events).unwrap_or(usize::MAX)))
}

/// Read `/proc` and `/sys/fs/cgroup` under `root` (`MEMGUARD_ROOT`). The string is copied.
///
/// # Errors
/// `MEMGUARD_ERR_NULL_ARGUMENT` if `cfg` or `root` is NULL.
#[no_mangle]
pub extern "C" fn memguard_config_set_root(cfg: *mut memguard_config, root: *const c_char) -> memguard_result {
    call(|| {
        let path = std::path::PathBuf::from(std::ffi::OsStr::from_bytes(bytes_arg(root, "root")?));
        match update(cfg, |b| b.root(path)) {
            OK => Ok(OK),
            _ => Err(Failure::null("config")),
        }
    })
}

/// Guard the cgroup of process `pid` instead of this one (`MEMGUARD_PID`).
#[no_mangle]
pub extern "C" fn memguard_config_set_pid(cfg: *mut memguard_config, pid: u32) -> memguard_result {
    update(cfg, |b| b.pid(pid))
}
