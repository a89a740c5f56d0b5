//! Text and JSON renderings of what memguard reports — a [`Status`], the watcher's
//! [`Snapshot`] and [`Event`]s — shared by the `memguard` CLI and the bindings
//! (`python -m memguard`), so every front end prints the same thing.
//!
//! * `*_text`: the human-readable form (`memguard status`, `memguard watch`).
//! * `*_json`: the machine-readable form (`--json`): [`status_json`] is one pretty-printed
//!   object; the watch lines ([`watch_header_json`], [`event_json`], [`snapshot_json`]) are
//!   one compact object per line, each with a `kind`.
//! * [`status_prometheus`]: the Prometheus text format of a one-shot status.
//!
//! Nothing here fails or panics: a value that cannot be encoded (none can today) becomes a
//! JSON object `{"kind": "error", "error": ...}`.

use std::fmt::Write as _;

use serde::Serialize;

use crate::level::Level;
use crate::limits::{CgroupVersion, LimitApplied};
use crate::status::Status;
use crate::watch::{Event, EventKind, Snapshot, SourceStatus};

/// Bytes as a short binary-unit string: `512 B`, `512.0 MiB`, `1.5 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    #[allow(clippy::cast_precision_loss)]
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn opt_bytes(n: Option<u64>) -> String {
    n.map_or_else(|| "unknown".to_owned(), bytes)
}

fn json<T: Serialize + ?Sized>(v: &T, pretty: bool) -> String {
    let encoded = if pretty { serde_json::to_string_pretty(v) } else { serde_json::to_string(v) };
    encoded.unwrap_or_else(|e| serde_json::json!({"kind": "error", "error": format!("cannot encode: {e}")}).to_string())
}

/// The `memguard status --json` object (pretty-printed).
pub fn status_json(s: &Status) -> String {
    json(s, true)
}

/// The one-shot status as Prometheus metrics: limit, usage, working set and the pressure
/// measure at the limiting
/// cgroup, the budget's soft limit and the level this sample gives with the configured
/// thresholds (see [`Status::level`]).
pub fn status_prometheus(s: &Status) -> String {
    let input = crate::metrics::MetricsInput {
        limit_bytes: s.limits.limit_bytes,
        usage_bytes: s.limit_usage_bytes,
        working_set_bytes: s.limit_working_set_bytes,
        unreclaimable_bytes: s.limit_unreclaimable_bytes,
        soft_limit_bytes: s.budget_soft_limit_bytes,
        level: s.level,
        cgroup: s.limits.cgroup.as_str().to_owned(),
        ..crate::metrics::MetricsInput::default()
    };
    crate::metrics::render_prometheus(&input).trim_end().to_owned()
}

/// The limit row of the human report.
fn limit_row(s: &Status) -> String {
    let l = &s.limits;
    let unreadable = l.limit_unknown_files.join(", ");
    match (l.limit_applied, l.limit_bytes) {
        (LimitApplied::Override, Some(b)) => {
            let src = l.limit_override_source.map_or("override", |o| o.as_str());
            format!("{} from {src}", bytes(b))
        }
        (_, Some(b)) if l.limit_unknown => {
            let by = l.limit_cgroup.as_deref().map_or_else(String::new, |c| format!(" set by {c}"));
            format!("unknown — {unreadable} could not be read; at most {}{by}", bytes(b))
        }
        (_, Some(b)) => match &l.limit_cgroup {
            Some(c) => format!("{} set by {c}", bytes(b)),
            None => format!("{} set above the visible cgroup root (v1 hierarchical_memory_limit)", bytes(b)),
        },
        (_, None) if l.limit_unknown => format!("unknown — {unreadable} could not be read (not \"unlimited\")"),
        (_, None) if l.limit_maybe_hidden => {
            "none visible — a limit may be hidden above the cgroup namespace root".into()
        }
        (_, None) => format!("none (host memory {} is the bound)", opt_bytes(l.host_total_bytes)),
    }
}

/// The override row of the human report (when an override is configured).
fn override_row(s: &Status) -> Option<String> {
    let l = &s.limits;
    let b = l.limit_override_bytes?;
    let src = l.limit_override_source.map_or("override", |o| o.as_str());
    let head = format!("{} ({src})", bytes(b));
    let detected = match (l.detected_limit_bytes, &l.limit_cgroup) {
        (Some(d), Some(c)) => format!("the detected {} set by {c}", bytes(d)),
        (Some(d), None) => format!("the detected {}", bytes(d)),
        (None, _) => String::new(),
    };
    let why = match l.limit_applied {
        LimitApplied::Override if !detected.is_empty() => format!("applies, lower than {detected}"),
        LimitApplied::Override if l.limit_unknown => {
            format!("applies: the cgroup limit is unknown ({} could not be read)", l.limit_unknown_files.join(", "))
        }
        LimitApplied::Override if l.limit_maybe_hidden => {
            "applies: no limit is visible, one may be hidden above the cgroup namespace root".into()
        }
        LimitApplied::Override => "applies: no cgroup limit was detected".into(),
        _ if !detected.is_empty() => format!("ignored: {detected} is lower"),
        _ => format!("ignored: not below host memory ({})", opt_bytes(l.host_total_bytes)),
    };
    Some(format!("{head} {why}"))
}

/// The human-readable `memguard status` report. `pid` is the process reported on (`None`:
/// this process).
pub fn status_text(s: &Status, pid: Option<u32>) -> String {
    let l = &s.limits;
    let mut o = String::new();
    let who = pid.map_or_else(|| format!("this process (pid {})", std::process::id()), |p| format!("pid {p}"));
    let _ = writeln!(o, "memguard {} — memory of {who}", s.memguard_version);
    let row = |o: &mut String, k: &str, v: String| {
        let _ = writeln!(o, "  {k:<16}{v}");
    };
    match (l.cgroup, &l.cgroup_path) {
        (CgroupVersion::None, _) | (_, None) => row(&mut o, "cgroup", "none (no memory cgroup)".into()),
        (v, Some(p)) => {
            row(&mut o, "cgroup", format!("{} {p} ({})", v.as_str(), l.cgroup_dir.as_deref().unwrap_or("?")))
        }
    }
    row(&mut o, "limit", limit_row(s));
    if l.limit_applied == LimitApplied::Cgroup && l.limit_maybe_hidden {
        row(&mut o, "", "a tighter limit may be hidden above the cgroup namespace root".into());
    }
    if let Some(ov) = override_row(s) {
        row(&mut o, "override", ov);
    }
    let high_name = if l.cgroup == CgroupVersion::V1 { "soft limit" } else { "memory.high" };
    row(
        &mut o,
        high_name,
        match (l.high_bytes, &l.high_cgroup) {
            (Some(b), Some(c)) => format!("{} set by {c}", bytes(b)),
            _ => "none".into(),
        },
    );
    row(&mut o, "swap limit", l.swap_limit_bytes.map_or_else(|| "none".into(), bytes));
    row(
        &mut o,
        "usage",
        format!(
            "{} (unreclaimable {}, working set {}, peak {})",
            opt_bytes(s.usage_bytes),
            opt_bytes(s.unreclaimable_bytes),
            opt_bytes(s.working_set_bytes),
            opt_bytes(s.peak_bytes)
        ),
    );
    if l.limit_dir.is_some() && l.limit_dir != l.cgroup_dir {
        row(
            &mut o,
            "at limit cgroup",
            format!(
                "{} (unreclaimable {}, working set {})",
                opt_bytes(s.limit_usage_bytes),
                opt_bytes(s.limit_unreclaimable_bytes),
                opt_bytes(s.limit_working_set_bytes)
            ),
        );
    }
    if let (Some(h), Some(f)) = (s.headroom_bytes, s.used_fraction) {
        row(&mut o, "headroom", format!("{} ({:.1}% of the limit cannot be reclaimed)", bytes(h), f * 100.0));
    }
    let level = match (s.warn_bytes, s.critical_bytes, s.budget_soft_limit_bytes) {
        (Some(w), Some(c), Some(b)) => {
            format!("{} (warning at {}, critical at {}; budget soft limit {})", s.level, bytes(w), bytes(c), bytes(b))
        }
        _ => format!("{} (node mode: host memory against its eviction point)", s.level),
    };
    row(&mut o, "level", level);
    row(
        &mut o,
        "host",
        format!("{} total, {} available", opt_bytes(l.host_total_bytes), opt_bytes(s.host_available_bytes)),
    );
    row(
        &mut o,
        "oom_score_adj",
        match (l.oom_score_adj, l.qos_class) {
            (Some(a), Some(q)) => format!("{a} (Kubernetes QoS {})", q.as_str()),
            (Some(a), None) => format!("{a} (not a value the kubelet sets)"),
            (None, _) => "unknown".into(),
        },
    );
    let armed: Vec<&str> = s.sources.iter().filter(|x| x.armed).map(|x| x.name.as_str()).collect();
    row(&mut o, "event sources", if armed.is_empty() { "none armed".into() } else { armed.join(", ") });
    let absent: Vec<String> = s
        .sources
        .iter()
        .filter(|x| !x.armed)
        .map(|x| match &x.detail {
            Some(d) => format!("{} ({d})", x.name),
            None => x.name.clone(),
        })
        .collect();
    if !absent.is_empty() {
        row(&mut o, "not armed", absent.join("; "));
    }
    if !l.notes.is_empty() {
        let _ = writeln!(o, "  notes:");
        for n in &l.notes {
            let _ = writeln!(o, "    - {n}");
        }
    }
    o.trim_end().to_owned()
}

#[allow(clippy::cast_precision_loss)]
fn seconds(monotonic_ns: u64) -> f64 {
    monotonic_ns as f64 / 1e9
}

/// What an event says, in words.
fn event_what(kind: &EventKind) -> String {
    match kind {
        EventKind::LevelChanged { from, to, time_to_limit: None } => format!("level {from} -> {to}"),
        EventKind::LevelChanged { from, to, time_to_limit: Some(t) } => {
            format!("level {from} -> {to} ({:.0} ms to the limit at the current growth)", t * 1000.0)
        }
        EventKind::High { count, delta } => format!("memory.high exceeded (+{delta}, total {count})"),
        EventKind::Max { count, delta } => format!("memory.max hit (+{delta}, total {count})"),
        EventKind::Oom { count, delta } => format!("OOM in cgroup (+{delta}, total {count})"),
        EventKind::OomKill { count, delta } => format!("OOM KILL: {delta} process(es) killed (total {count})"),
        EventKind::Psi { stall, scope } => format!("PSI {stall:?} trigger fired ({scope:?})"),
        EventKind::VmPressure { severity } => format!("v1 memory pressure {severity:?}"),
        EventKind::Threshold { direction, threshold_bytes } => {
            format!("usage crossed {} {direction:?}", bytes(*threshold_bytes))
        }
        EventKind::LimitChanged { old, new } => format!(
            "limit changed {} -> {}",
            old.map_or_else(|| "none".into(), bytes),
            new.map_or_else(|| "none".into(), bytes)
        ),
        EventKind::CgroupRemoved { cgroup } => format!("cgroup {cgroup} removed"),
        EventKind::WatcherFailed { reason } => format!("WATCHER FAILED: {reason}"),
    }
}

/// One `memguard watch` line for an event.
pub fn event_text(ev: &Event) -> String {
    let used = ev.unreclaimable_bytes.map_or_else(|| "?".into(), bytes);
    let ws = ev.working_set_bytes.map_or_else(|| "?".into(), bytes);
    let limit = ev.limit_bytes.map_or_else(|| "none".into(), bytes);
    format!(
        "[{:>14.6}] {:<8} {}  (unreclaimable {used} / limit {limit}, working set {ws})",
        seconds(ev.monotonic_ns),
        ev.level.as_str(),
        event_what(&ev.kind)
    )
}

/// One `memguard watch --json` line for an event: the event's JSON (`kind` = [`EventKind::name`]).
pub fn event_json(ev: &Event) -> String {
    json(ev, false)
}

/// One `memguard watch --snapshot-every` line.
pub fn snapshot_text(s: &Snapshot) -> String {
    format!(
        "[{:>14.6}] {:<8} snapshot: unreclaimable {} ({:.1}%), working set {}, interval {:.1} ms{}",
        seconds(s.monotonic_ns),
        s.level.as_str(),
        bytes(s.unreclaimable_bytes),
        s.used_fraction.unwrap_or(0.0) * 100.0,
        bytes(s.working_set_bytes),
        s.sample_interval_ms,
        s.time_to_limit.map_or_else(String::new, |t| format!(", limit in {:.0} ms at the current growth", t * 1000.0))
    )
}

/// One `memguard watch --json --snapshot-every` line: `{"kind": "snapshot", "snapshot": {...}}`.
pub fn snapshot_json(s: &Snapshot) -> String {
    #[derive(Serialize)]
    struct Line<'a> {
        kind: &'static str,
        snapshot: &'a Snapshot,
    }
    json(&Line { kind: "snapshot", snapshot: s }, false)
}

/// The first lines of `memguard watch`: the level, the limit and every source tried.
pub fn watch_header_text(s: &Snapshot, sources: &[SourceStatus]) -> String {
    let limit = s.limit_bytes.map_or_else(|| "none".into(), bytes);
    let mut o = format!(
        "memguard watch: level {}, unreclaimable {} / limit {limit} ({:?}), working set {}",
        s.level,
        bytes(s.unreclaimable_bytes),
        s.limit_source,
        bytes(s.working_set_bytes)
    );
    for src in sources {
        let mark = if src.armed { "armed  " } else { "absent " };
        let _ = write!(o, "\n  {mark} {:<22} {}", src.name, src.detail.as_deref().unwrap_or_default());
    }
    o
}

/// The first line of `memguard watch --json`: `{"kind": "started", ...}` with the level, the
/// limit, the working set and every source tried.
pub fn watch_header_json(s: &Snapshot, sources: &[SourceStatus]) -> String {
    #[derive(Serialize)]
    struct Started<'a> {
        kind: &'static str,
        monotonic_ns: u64,
        level: Level,
        limit_bytes: Option<u64>,
        unreclaimable_bytes: u64,
        working_set_bytes: u64,
        sources: &'a [SourceStatus],
    }
    json(
        &Started {
            kind: "started",
            monotonic_ns: s.monotonic_ns,
            level: s.level,
            limit_bytes: s.limit_bytes,
            unreclaimable_bytes: s.unreclaimable_bytes,
            working_set_bytes: s.working_set_bytes,
            sources,
        },
        false,
    )
}

/// One of memguard's log records (a `tracing` event) as one line of text: the message, then
/// its other fields as ` key=value`. The bindings forward memguard's logs to their language's
/// logging (Python `logging`, `System.Logger`, the C log callback) with this text.
pub fn log_text(event: &tracing::Event<'_>) -> String {
    let mut fields = LogFields::default();
    event.record(&mut fields);
    fields.message + &fields.rest
}

#[derive(Default)]
struct LogFields {
    message: String,
    rest: String,
}

impl tracing::field::Visit for LogFields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.rest, " {}={}", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.rest, " {}={:?}", field.name(), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::{Direction, PsiScope, Stall};

    #[test]
    fn byte_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(512 << 20), "512.0 MiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
        assert_eq!(bytes(u64::MAX), "16.0 EiB");
    }

    fn event(kind: EventKind) -> Event {
        Event {
            kind,
            monotonic_ns: 1_500_000_000,
            level: Level::Warning,
            working_set_bytes: Some(900 << 20),
            unreclaimable_bytes: Some(800 << 20),
            limit_bytes: Some(1 << 30),
            timing: crate::watch::EventTiming::default(),
        }
    }

    #[test]
    fn events_render_as_text_and_json() {
        let ev = event(EventKind::OomKill { count: 3, delta: 1 });
        assert_eq!(
            event_text(&ev),
            "[      1.500000] warning  OOM KILL: 1 process(es) killed (total 3)  (unreclaimable 800.0 MiB / limit 1.0 GiB, working set 900.0 MiB)"
        );
        let v: serde_json::Value = serde_json::from_str(&event_json(&ev)).expect("json");
        assert_eq!(v["kind"], "oom_kill");
        assert_eq!(v["delta"], 1);
        assert_eq!(v["level"], "warning");
        let ev = event(EventKind::Threshold { direction: Direction::Down, threshold_bytes: 800 << 20 });
        assert!(event_text(&ev).contains("usage crossed 800.0 MiB Down"), "{}", event_text(&ev));
        let ev = event(EventKind::Psi { stall: Stall::Full, scope: PsiScope::System });
        assert!(event_text(&ev).contains("PSI Full trigger fired (System)"));
        assert!(!event_json(&ev).contains('\n'));
    }

    #[test]
    fn snapshot_and_header_lines() {
        let snap = Snapshot {
            limit_bytes: Some(1 << 30),
            working_set_bytes: 1 << 29,
            unreclaimable_bytes: 1 << 28,
            ..Snapshot::default()
        };
        let v: serde_json::Value = serde_json::from_str(&snapshot_json(&snap)).expect("json");
        assert_eq!(v["kind"], "snapshot");
        assert_eq!(v["snapshot"]["limit_bytes"], 1u64 << 30);
        assert!(v["snapshot"].get("events_total").is_some(), "the whole snapshot: {v}");
        let sources = [SourceStatus { name: "sampler".into(), armed: true, detail: Some("adaptive".into()) }];
        let v: serde_json::Value = serde_json::from_str(&watch_header_json(&snap, &sources)).expect("json");
        assert_eq!((v["kind"].as_str(), v["sources"][0]["name"].as_str()), (Some("started"), Some("sampler")));
        let text = watch_header_text(&snap, &sources);
        assert!(text.starts_with("memguard watch: level normal, unreclaimable 256.0 MiB / limit 1.0 GiB"), "{text}");
        assert!(text.contains("armed   sampler"), "{text}");
    }
}
