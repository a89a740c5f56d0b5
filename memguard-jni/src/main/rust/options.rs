//! Builder settings from Java: `(key, value)` pairs, one arm per setting.
//!
//! `io.memguard.MemGuard.Builder` sends each setting set in code as its key (the Rust builder's
//! method name) and its value as text: fractions as `Double.toString`, byte counts and counts as
//! integers, durations in nanoseconds, booleans as `true`/`false`. Ranges are the core's to
//! check ([`memguard::watch::Builder::config`]), so errors name the setting exactly as the Rust
//! and Python APIs do. A new core setting is one arm here and one method on the Java builder.

use std::time::Duration;

use memguard::watch::Builder;
use memguard::Error;

fn bad(setting: &'static str, value: &str, reason: &str) -> Error {
    Error::invalid_config(setting, value.to_owned(), reason.to_owned())
}

fn fraction(setting: &'static str, value: &str) -> Result<f64, Error> {
    value.parse().map_err(|_| bad(setting, value, "must be a number"))
}

fn count(setting: &'static str, value: &str) -> Result<u64, Error> {
    value.parse().map_err(|_| bad(setting, value, "must be a non-negative integer"))
}

fn nanos(setting: &'static str, value: &str) -> Result<Duration, Error> {
    value.parse().map(Duration::from_nanos).map_err(|_| bad(setting, value, "must be a non-negative duration"))
}

fn flag(setting: &'static str, value: &str) -> Result<bool, Error> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(bad(setting, value, "must be true or false")),
    }
}

/// Two values in one (`"a,b"`): `sample_interval` (min, max), `horizon` (warn, critical) and
/// `malloc_trim` (on, interval).
fn pair<'v>(setting: &'static str, value: &'v str) -> Result<(&'v str, &'v str), Error> {
    value.split_once(',').ok_or_else(|| bad(setting, value, "expects two values"))
}

/// Apply one setting to `b`.
///
/// # Errors
/// [`Error::InvalidConfig`] for an unknown key or a value that does not parse.
pub(crate) fn apply(b: Builder, key: &str, value: &str) -> Result<Builder, Error> {
    Ok(match key {
        "warn" => b.warn(fraction("warn", value)?),
        "critical" => b.critical(fraction("critical", value)?),
        "hysteresis" => b.hysteresis(fraction("hysteresis", value)?),
        "soft_limit" => b.soft_limit(fraction("soft_limit", value)?),
        "limit_override" => b.limit_override(count("limit_override", value)?),
        "event_hold" => b.event_hold(nanos("event_hold", value)?),
        "sample_interval" => {
            let (min, max) = pair("sample_interval", value)?;
            b.sample_interval(nanos("sample_interval_min", min)?, nanos("sample_interval_max", max)?)
        }
        "horizon" => {
            let (warn, critical) = pair("horizon", value)?;
            b.horizon(nanos("horizon_warn", warn)?, nanos("horizon_critical", critical)?)
        }
        "max_alloc_rate" => b.max_alloc_rate(count("max_alloc_rate", value)?),
        "eviction_threshold" => b.eviction_threshold(count("eviction_threshold", value)?),
        "psi" => b.psi(flag("psi", value)?),
        "cgroup_events" => b.cgroup_events(flag("cgroup_events", value)?),
        "debounce" => b.debounce(nanos("debounce", value)?),
        "shed_interval" => b.shed_interval(nanos("shed_interval", value)?),
        "malloc_trim" => {
            let (on, interval) = pair("malloc_trim", value)?;
            b.malloc_trim(flag("malloc_trim", on)?, nanos("trim_interval", interval)?)
        }
        "redetect_interval" => b.redetect_interval(nanos("redetect_interval", value)?),
        "queue_capacity" => {
            let n = count("queue_capacity", value)?;
            b.queue_capacity(usize::try_from(n).unwrap_or(usize::MAX))
        }
        "root" => b.root(value),
        "pid" => {
            let n = count("pid", value)?;
            b.pid(u32::try_from(n).map_err(|_| bad("pid", value, "must be a process id"))?)
        }
        _ => return Err(bad("builder", key, "unknown setting")),
    })
}

/// The configuration in force as JSON (what `MemGuard.config()` returns).
pub(crate) fn config_json(c: &memguard::watch::Config) -> String {
    let th = c.thresholds();
    let (lo, hi) = c.sample_interval();
    let (horizon_warn, horizon_critical) = c.horizon();
    let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    serde_json::json!({
        "warn": th.warn(),
        "critical": th.critical(),
        "hysteresis": th.hysteresis(),
        "soft_limit": c.soft_limit(),
        "limit_override": c.limit_override().map(|o| o.bytes),
        "limit_override_source": c.limit_override().map(|o| o.source.as_str()),
        "event_hold_ns": ns(c.event_hold()),
        "horizon_warn_ns": ns(horizon_warn),
        "horizon_critical_ns": ns(horizon_critical),
        "sample_interval_min_ns": ns(lo),
        "sample_interval_max_ns": ns(hi),
        "max_alloc_rate": c.max_alloc_rate(),
        "eviction_threshold": c.eviction_threshold(),
        "psi": c.psi(),
        "cgroup_events": c.cgroup_events(),
        "debounce_ns": ns(c.debounce()),
        "shed_interval_ns": ns(c.shed_interval()),
        "malloc_trim": c.malloc_trim(),
        "trim_interval_ns": ns(c.trim_interval()),
        "redetect_interval_ns": ns(c.redetect_interval()),
        "queue_capacity": c.queue_capacity(),
        "root": c.root().map(|r| r.to_string_lossy().into_owned()),
        "pid": c.pid(),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_applies_and_errors_name_the_setting() {
        let mut b = Builder::new();
        for (k, v) in [
            ("warn", "0.7"),
            ("critical", "0.95"),
            ("hysteresis", "0.02"),
            ("soft_limit", "0.6"),
            ("limit_override", "1073741824"),
            ("event_hold", "1500000000"),
            ("horizon", "500000000,200000000"),
            ("sample_interval", "2000000,300000000000"),
            ("max_alloc_rate", "1073741824"),
            ("eviction_threshold", "209715200"),
            ("psi", "false"),
            ("cgroup_events", "false"),
            ("debounce", "250000000"),
            ("shed_interval", "2000000000"),
            ("malloc_trim", "false,3600000000000"),
            ("redetect_interval", "30000000000"),
            ("queue_capacity", "64"),
            ("root", "/host"),
            ("pid", "42"),
        ] {
            b = apply(b, k, v).unwrap_or_else(|e| panic!("{k}: {e}"));
        }
        let c = b.config().expect("valid");
        let json: serde_json::Value = serde_json::from_str(&config_json(&c)).expect("json");
        assert_eq!(json["warn"], 0.7);
        assert_eq!(json["sample_interval_max_ns"], 300_000_000_000u64);
        assert_eq!(json["trim_interval_ns"], 3_600_000_000_000u64);
        assert_eq!(json["malloc_trim"], false);
        assert_eq!(json["pid"], 42);
        assert_eq!(json["horizon_warn_ns"], 500_000_000u64);
        assert_eq!(json["horizon_critical_ns"], 200_000_000u64);
        let err =
            apply(Builder::new(), "horizon", "1000000000,2000000000").and_then(|b| b.config()).expect_err("order");
        assert!(matches!(err, Error::InvalidConfig { setting: "horizon_critical", .. }), "{err}");
        let err = apply(Builder::new(), "horizon", "11000000000,0").and_then(|b| b.config()).expect_err("range");
        assert!(matches!(err, Error::InvalidConfig { setting: "horizon_warn", .. }), "{err}");
        let err = apply(Builder::new(), "warn", "lots").expect_err("garbage");
        assert!(matches!(err, Error::InvalidConfig { setting: "warn", .. }), "{err}");
        let err = apply(Builder::new(), "nope", "1").expect_err("unknown");
        assert!(err.to_string().contains("nope"), "{err}");
        let err = apply(Builder::new(), "event_hold", "-1").expect_err("negative");
        assert!(matches!(err, Error::InvalidConfig { setting: "event_hold", .. }), "{err}");
        let err = apply(Builder::new(), "redetect_interval", "0").and_then(|b| b.config()).expect_err("range");
        assert!(matches!(err, Error::InvalidConfig { setting: "redetect_interval", env_var: None, .. }), "{err}");
    }
}
