//! Prometheus metrics: [`render_prometheus`] turns a [`MetricsInput`] into the text exposition
//! format 0.0.4. The metrics are documented in the crate docs (section *Metrics*; a test checks
//! that table against the output).

use std::fmt::Write as _;

use crate::budget::BudgetStats;
use crate::level::Level;
use crate::shed::ShedStats;

/// The HTTP `Content-Type` of the Prometheus text format memguard renders.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Everything [`render_prometheus`] exports; `None` means unknown (the gauge is left out).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsInput {
    /// The effective hard limit in bytes.
    pub limit_bytes: Option<u64>,
    /// Usage of the cgroup that sets the limit, in bytes.
    pub usage_bytes: Option<u64>,
    /// Working set of the cgroup that sets the limit, in bytes.
    pub working_set_bytes: Option<u64>,
    /// The pressure measure (memory reclaim cannot free) at the cgroup that sets the limit.
    pub unreclaimable_bytes: Option<u64>,
    /// The predicted time to the limit, seconds.
    pub seconds_to_limit: Option<f64>,
    /// The budget's soft limit in bytes.
    pub soft_limit_bytes: Option<u64>,
    /// The current level.
    pub level: Level,
    /// Seconds spent in `Normal`, `Warning`, `Critical` (indexed by [`Level::as_u8`]).
    pub seconds_in_level: [f64; 3],
    /// Kernel event counts by kind name (`"high"`, `"oom_kill"`, ...); a kind listed twice is summed.
    pub events: Vec<(String, u64)>,
    /// Budget counters ([`Budget::stats`](crate::budget::Budget::stats)).
    pub budget: Option<BudgetStats>,
    /// Shedding counters ([`Shedders::stats`](crate::shed::Shedders::stats)).
    pub shed: Option<ShedStats>,
    /// PSI memory `some` avg10 **as the kernel prints it, in percent** (0–100); exported as a ratio.
    pub psi_some_avg10: Option<f64>,
    /// PSI memory `full` avg10 in percent (0–100); exported as a ratio.
    pub psi_full_avg10: Option<f64>,
    /// Events dropped from the callback queue (a running guard only).
    pub callback_events_dropped: Option<u64>,
    /// Internal errors caught on memguard's threads (a running guard only).
    pub watcher_panics: Option<u64>,
    /// Whether the watcher gave up (a running guard only).
    pub watcher_failed: Option<bool>,
    /// Samples that failed to read the cgroup's files while the cgroup still existed (a
    /// running guard only).
    pub sample_errors: Option<u64>,
    /// Each event source by name and whether it is armed now (a running guard only; the
    /// reasons are in `sources()` / `memguard status`).
    pub sources_armed: Vec<(String, bool)>,
    /// The `version` label of `memguard_cgroup_info`: `"v1"`, `"v2"` or `"none"`
    /// ([`CgroupVersion::as_str`](crate::CgroupVersion::as_str)); empty leaves the family out.
    pub cgroup: String,
}

impl Default for MetricsInput {
    fn default() -> Self {
        MetricsInput {
            limit_bytes: None,
            usage_bytes: None,
            working_set_bytes: None,
            unreclaimable_bytes: None,
            seconds_to_limit: None,
            soft_limit_bytes: None,
            level: Level::Normal,
            seconds_in_level: [0.0; 3],
            events: Vec::new(),
            budget: None,
            shed: None,
            psi_some_avg10: None,
            psi_full_avg10: None,
            callback_events_dropped: None,
            sample_errors: None,
            sources_armed: Vec::new(),
            watcher_panics: None,
            watcher_failed: None,
            cgroup: String::new(),
        }
    }
}

#[derive(Clone, Copy)]
enum Value {
    Int(u64),
    Float(f64),
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Gauge,
    Counter,
}

struct Sample<'a> {
    labels: Vec<(&'static str, &'a str)>,
    value: Value,
}

fn sample(value: Value) -> Sample<'static> {
    Sample { labels: Vec::new(), value }
}

fn labelled<'a>(labels: Vec<(&'static str, &'a str)>, value: Value) -> Sample<'a> {
    Sample { labels, value }
}

struct Out {
    buf: String,
}

impl Out {
    /// Write one family; nothing if it has no sample.
    fn family(&mut self, name: &str, kind: Kind, help: &str, samples: Vec<Sample<'_>>) {
        let samples: Vec<Sample<'_>> = samples
            .into_iter()
            .filter(|s| match s.value {
                Value::Int(_) => true,
                Value::Float(f) => f.is_finite(),
            })
            .collect();
        if samples.is_empty() {
            return;
        }
        let kind = match kind {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        };
        // Writing to a String cannot fail.
        let _ = writeln!(self.buf, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.buf, "# TYPE {name} {kind}");
        for s in samples {
            self.buf.push_str(name);
            if !s.labels.is_empty() {
                self.buf.push('{');
                for (i, (k, v)) in s.labels.iter().enumerate() {
                    if i > 0 {
                        self.buf.push(',');
                    }
                    let _ = write!(self.buf, "{k}=\"{}\"", escape_label(v));
                }
                self.buf.push('}');
            }
            let _ = match s.value {
                Value::Int(v) => writeln!(self.buf, " {v}"),
                Value::Float(v) => writeln!(self.buf, " {v}"),
            };
        }
    }

    fn gauge_opt(&mut self, name: &str, help: &str, value: Option<Value>) {
        self.family(name, Kind::Gauge, help, value.map(sample).into_iter().collect());
    }
}

/// Escape a label value: backslash, double quote and line feed.
fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Escape HELP text: backslash and line feed.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

const LEVELS: [Level; 3] = [Level::Normal, Level::Warning, Level::Critical];

/// Render `input` in the Prometheus text exposition format 0.0.4 (see the [module docs](self)
/// for the metric names). Never fails; families appear in the order of the module table.
pub fn render_prometheus(input: &MetricsInput) -> String {
    let mut out = Out { buf: String::with_capacity(4096) };
    let int = |v: Option<u64>| v.map(Value::Int);

    out.family(
        "memguard_build_info",
        Kind::Gauge,
        "memguard build information; always 1.",
        vec![labelled(vec![("version", crate::VERSION)], Value::Int(1))],
    );
    if !input.cgroup.is_empty() {
        out.family(
            "memguard_cgroup_info",
            Kind::Gauge,
            "The cgroup hierarchy carrying the memory controller (v1, v2 or none); always 1.",
            vec![labelled(vec![("version", input.cgroup.as_str())], Value::Int(1))],
        );
    }
    out.gauge_opt("memguard_limit_bytes", "The effective hard memory limit in bytes.", int(input.limit_bytes));
    out.gauge_opt(
        "memguard_usage_bytes",
        "Memory usage in bytes of the cgroup that sets the limit.",
        int(input.usage_bytes),
    );
    out.gauge_opt(
        "memguard_working_set_bytes",
        "Working set (usage minus inactive file cache) in bytes of the cgroup that sets the limit.",
        int(input.working_set_bytes),
    );
    out.gauge_opt(
        "memguard_unreclaimable_bytes",
        "Memory reclaim cannot free (usage minus clean page cache) in bytes at the cgroup that sets the limit; the levels use it.",
        int(input.unreclaimable_bytes),
    );
    out.gauge_opt(
        "memguard_seconds_to_limit",
        "Predicted seconds to the limit at the current steady growth of the measure.",
        input.seconds_to_limit.filter(|s| s.is_finite() && *s >= 0.0).map(Value::Float),
    );
    out.gauge_opt("memguard_soft_limit_bytes", "The budget's soft limit in bytes.", int(input.soft_limit_bytes));
    out.gauge_opt(
        "memguard_level",
        "The memory pressure level: 0 normal, 1 warning, 2 critical.",
        Some(Value::Int(u64::from(input.level.as_u8()))),
    );
    out.family(
        "memguard_level_info",
        Kind::Gauge,
        "1 for the current memory pressure level, 0 for the others.",
        LEVELS
            .iter()
            .map(|&l| labelled(vec![("level", l.as_str())], Value::Int(u64::from(l == input.level))))
            .collect(),
    );
    out.family(
        "memguard_seconds_in_level_total",
        Kind::Counter,
        "Seconds spent in each memory pressure level.",
        LEVELS
            .iter()
            .zip(input.seconds_in_level)
            .map(|(&l, s)| labelled(vec![("level", l.as_str())], Value::Float(s.max(0.0))))
            .collect(),
    );

    // Sum kinds listed twice, keeping first-seen order.
    let mut events: Vec<(&str, u64)> = Vec::new();
    for (kind, n) in &input.events {
        match events.iter_mut().find(|(k, _)| *k == kind.as_str()) {
            Some((_, total)) => *total = total.saturating_add(*n),
            None => events.push((kind.as_str(), *n)),
        }
    }
    out.family(
        "memguard_events_total",
        Kind::Counter,
        "Kernel memory events seen, by kind.",
        events.into_iter().map(|(k, n)| labelled(vec![("kind", k)], Value::Int(n))).collect(),
    );

    if let Some(b) = &input.budget {
        out.family(
            "memguard_reservations_total",
            Kind::Counter,
            "Budget reservation requests by result.",
            vec![
                labelled(vec![("result", "granted")], Value::Int(b.granted)),
                labelled(vec![("result", "refused")], Value::Int(b.refused)),
                labelled(vec![("result", "forced")], Value::Int(b.forced)),
            ],
        );
        out.gauge_opt(
            "memguard_budget_outstanding_bytes",
            "Bytes held by live budget reservations.",
            Some(Value::Int(b.outstanding_bytes)),
        );
        out.gauge_opt(
            "memguard_budget_available_bytes",
            "The largest reservation the budget would grant now, in bytes.",
            Some(Value::Int(b.available_bytes)),
        );
        let subs = &b.sub_budgets;
        out.family(
            "memguard_sub_budget_cap_bytes",
            Kind::Gauge,
            "Each sub-budget's cap in bytes.",
            subs.iter().map(|s| labelled(vec![("budget", s.name.as_str())], Value::Int(s.cap_bytes))).collect(),
        );
        out.family(
            "memguard_sub_budget_outstanding_bytes",
            Kind::Gauge,
            "Bytes held by each sub-budget's live reservations.",
            subs.iter().map(|s| labelled(vec![("budget", s.name.as_str())], Value::Int(s.outstanding_bytes))).collect(),
        );
        out.family(
            "memguard_sub_budget_reservations_total",
            Kind::Counter,
            "Each sub-budget's reservation requests by result.",
            subs.iter()
                .flat_map(|s| {
                    [("granted", s.granted), ("refused", s.refused), ("forced", s.forced)].map(|(result, n)| {
                        labelled(vec![("budget", s.name.as_str()), ("result", result)], Value::Int(n))
                    })
                })
                .collect(),
        );
    }

    if let Some(s) = &input.shed {
        out.family("memguard_shed_runs_total", Kind::Counter, "Cache shedding runs.", vec![sample(Value::Int(s.runs))]);
        out.family(
            "memguard_shed_skipped_total",
            Kind::Counter,
            "Shedding requests skipped because a run was in progress.",
            vec![sample(Value::Int(s.skipped_busy))],
        );
        out.family(
            "memguard_shed_freed_bytes_total",
            Kind::Counter,
            "Bytes freed by each shedder, as it reported.",
            s.shedders
                .iter()
                .map(|x| labelled(vec![("shedder", x.name.as_str())], Value::Int(x.freed_bytes)))
                .collect(),
        );
        out.family(
            "memguard_shed_calls_total",
            Kind::Counter,
            "Times each shedder was asked to free memory.",
            s.shedders.iter().map(|x| labelled(vec![("shedder", x.name.as_str())], Value::Int(x.calls))).collect(),
        );
        out.family(
            "memguard_shed_panics_total",
            Kind::Counter,
            "Times each shedder panicked.",
            s.shedders.iter().map(|x| labelled(vec![("shedder", x.name.as_str())], Value::Int(x.panics))).collect(),
        );
        out.family(
            "memguard_malloc_trims_total",
            Kind::Counter,
            "malloc_trim calls made after shedding.",
            vec![sample(Value::Int(s.trims))],
        );
    }

    let ratio = |v: Option<f64>| v.map(|p| Value::Float(p / 100.0));
    out.gauge_opt(
        "memguard_psi_some_avg10",
        "Share of the last 10 s in which some tasks stalled on memory (PSI some avg10), 0 to 1.",
        ratio(input.psi_some_avg10),
    );
    out.gauge_opt(
        "memguard_psi_full_avg10",
        "Share of the last 10 s in which all tasks stalled on memory (PSI full avg10), 0 to 1.",
        ratio(input.psi_full_avg10),
    );
    if let Some(n) = input.callback_events_dropped {
        out.family(
            "memguard_callback_events_dropped_total",
            Kind::Counter,
            "Events not delivered to callbacks because a callback blocked and its queue was full.",
            vec![sample(Value::Int(n))],
        );
    }
    if let Some(n) = input.watcher_panics {
        out.family(
            "memguard_watcher_panics_total",
            Kind::Counter,
            "Internal errors caught on memguard's threads (each recovered by re-detecting and re-arming).",
            vec![sample(Value::Int(n))],
        );
    }
    if let Some(n) = input.sample_errors {
        out.family(
            "memguard_sample_errors_total",
            Kind::Counter,
            "Samples that could not read the cgroup's files although the cgroup exists (retried; the sampler reports not armed meanwhile).",
            vec![sample(Value::Int(n))],
        );
    }
    out.family(
        "memguard_source_armed",
        Kind::Gauge,
        "1 when the event source is armed, 0 when it is not (memguard status says why).",
        input
            .sources_armed
            .iter()
            .map(|(name, armed)| labelled(vec![("source", name.as_str())], Value::Int(u64::from(*armed))))
            .collect(),
    );
    out.gauge_opt(
        "memguard_watcher_failed",
        "1 once memguard's watcher gave up after repeated internal errors: memory is no longer watched.",
        input.watcher_failed.map(|f| Value::Int(u64::from(f))),
    );
    out.buf
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn label_escaping() {
        assert_eq!(escape_label(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label("x\ny"), "x\\ny");
        assert_eq!(escape_help("a\\b\nc"), "a\\\\b\\nc");
    }

    #[test]
    fn unknown_gauges_are_omitted() {
        let text = render_prometheus(&MetricsInput::default());
        assert!(!text.contains("memguard_limit_bytes"));
        assert!(!text.contains("memguard_psi_some_avg10"));
        assert!(!text.contains("memguard_events_total"), "no event kinds: no family");
        assert!(!text.contains("NaN"));
        assert!(text.contains("memguard_level 0\n"));
        assert!(text.contains("memguard_level_info{level=\"normal\"} 1\n"));
        assert!(text.contains("memguard_level_info{level=\"critical\"} 0\n"));
        let nan = MetricsInput {
            psi_some_avg10: Some(f64::NAN),
            seconds_in_level: [f64::NAN, 1.5, -1.0],
            ..Default::default()
        };
        let text = render_prometheus(&nan);
        assert!(!text.contains("NaN") && !text.contains("memguard_psi_some_avg10"), "{text}");
        assert!(text.contains("memguard_seconds_in_level_total{level=\"warning\"} 1.5\n"));
        assert!(text.contains("memguard_seconds_in_level_total{level=\"critical\"} 0\n"));
    }

    #[test]
    fn duplicate_event_kinds_are_summed() {
        let input = MetricsInput {
            events: vec![("high".into(), 2), ("max".into(), 1), ("high".into(), 3)],
            ..Default::default()
        };
        let text = render_prometheus(&input);
        assert!(text.contains("memguard_events_total{kind=\"high\"} 5\n"), "{text}");
        assert_eq!(text.matches("kind=\"high\"").count(), 1);
    }
}
