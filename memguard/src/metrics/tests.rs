// The Prometheus text output checked line by line against the exposition format 0.0.4.

use std::collections::HashSet;

use super::{render_prometheus, MetricsInput};
use crate::budget::Budget;
use crate::shed::{Shedders, Trimmer};
use crate::Level;

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

type Labels = Vec<(String, String)>;

/// Parse `{k="v",...}` at the start of `s`; returns the unescaped labels and the rest.
fn parse_labels(s: &str) -> Result<(Labels, &str), String> {
    let mut labels = Vec::new();
    let mut rest = s.strip_prefix('{').ok_or("expected {")?;
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        let eq = rest.find('=').ok_or("label without =")?;
        let name = &rest[..eq];
        if !valid_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        rest = rest[eq + 1..].strip_prefix('"').ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?}")),
                },
                Some((i, '"')) => break i,
                Some((_, '\n')) => return Err("raw newline in label value".into()),
                Some((_, c)) => value.push(c),
                None => return Err("unterminated label value".into()),
            }
        };
        labels.push((name.to_owned(), value));
        rest = &rest[end + 1..];
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else if !rest.starts_with('}') {
            return Err("expected , or }".into());
        }
    }
}

fn parse_value(v: &str) -> Result<f64, String> {
    match v {
        "NaN" => Ok(f64::NAN),
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => v.parse::<f64>().map_err(|e| format!("bad value {v:?}: {e}")),
    }
}

/// One parsed sample.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: Labels,
    value: f64,
}

/// Check the text format: HELP then TYPE before each family's samples, no duplicate families or
/// series, valid names, labels and values. Returns the samples.
fn check(text: &str) -> Vec<Sample> {
    assert!(text.ends_with('\n'), "output ends with a line feed");
    let mut families = HashSet::new();
    let mut series = HashSet::new();
    let mut current: Option<(String, bool, Option<String>)> = None; // (name, has help, type)
    let mut samples = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let ctx = format!("line {}: {line:?}", n + 1);
        assert!(!line.is_empty(), "{ctx}: empty line");
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, _help) = rest.split_once(' ').expect("HELP name and text");
            assert!(valid_name(name), "{ctx}");
            assert!(families.insert(name.to_owned()), "{ctx}: duplicate family");
            current = Some((name.to_owned(), true, None));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name and kind");
            let cur = current.as_mut().expect("TYPE after HELP");
            assert_eq!(cur.0, name, "{ctx}: TYPE for another family");
            assert!(cur.2.is_none(), "{ctx}: second TYPE");
            assert!(["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind), "{ctx}");
            cur.2 = Some(kind.to_owned());
        } else {
            assert!(!line.starts_with('#'), "{ctx}: unexpected comment");
            let (name_end, _) = line.char_indices().find(|&(_, c)| c == '{' || c == ' ').expect("sample");
            let name = &line[..name_end];
            let (labels, rest) = if line[name_end..].starts_with('{') {
                parse_labels(&line[name_end..]).unwrap_or_else(|e| panic!("{ctx}: {e}"))
            } else {
                (Vec::new(), &line[name_end..])
            };
            let value = rest.strip_prefix(' ').unwrap_or_else(|| panic!("{ctx}: no space before value"));
            assert!(!value.contains(' '), "{ctx}: timestamps are not expected");
            let value = parse_value(value).unwrap_or_else(|e| panic!("{ctx}: {e}"));
            let (fam, has_help, kind) = current.as_ref().unwrap_or_else(|| panic!("{ctx}: sample before HELP"));
            assert!(*has_help && kind.is_some(), "{ctx}: HELP and TYPE must precede samples");
            assert_eq!(fam, name, "{ctx}: sample outside its family");
            assert!(name.starts_with("memguard_"), "{ctx}");
            if kind.as_deref() == Some("counter") {
                assert!(name.ends_with("_total"), "{ctx}: counter without _total");
                assert!(value >= 0.0, "{ctx}: negative counter");
            }
            assert!(!value.is_nan(), "{ctx}: NaN printed");
            let mut key: Vec<_> = labels.clone();
            key.sort();
            assert!(series.insert((name.to_owned(), key)), "{ctx}: duplicate series");
            samples.push(Sample { name: name.to_owned(), labels, value });
        }
    }
    samples
}

fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
    samples.iter().find(|s| {
        s.name == name
            && s.labels.len() == labels.len()
            && labels.iter().all(|(k, v)| s.labels.iter().any(|(k2, v2)| k2 == k && v2 == v))
    })
}

fn full_input() -> MetricsInput {
    let budget = Budget::new(800 << 20);
    budget.set_usage(300 << 20);
    let _held = budget.try_reserve(10 << 20).expect("reserve");
    let _ = budget.try_reserve(1 << 40);
    let _forced = budget.try_reserve_forced(1);
    let sub = budget.sub_budget("image \"thumbs\"\\cache\nv2", 1 << 20);
    let _s = sub.try_reserve(1000).expect("sub");
    let shedders = Shedders::with_trimmer(Trimmer::disabled());
    shedders.register("lru", 0, |w| w / 2);
    shedders.register("quote\"d", 1, |w| w);
    shedders.shed(1000);
    MetricsInput {
        limit_bytes: Some(1 << 30),
        usage_bytes: Some(400 << 20),
        working_set_bytes: Some(300 << 20),
        unreclaimable_bytes: Some(250 << 20),
        seconds_to_limit: Some(0.75),
        soft_limit_bytes: Some(800 << 20),
        level: Level::Warning,
        seconds_in_level: [120.25, 3.5, 0.0],
        events: vec![("high".into(), 4), ("oom_kill".into(), 1)],
        budget: Some(budget.stats()),
        shed: Some(shedders.stats()),
        psi_some_avg10: Some(12.5),
        psi_full_avg10: Some(0.0),
        callback_events_dropped: Some(3),
        watcher_panics: Some(1),
        watcher_failed: Some(false),
        sample_errors: Some(2),
        sources_armed: vec![("sampler".into(), true), ("psi-cgroup-some".into(), false)],
        cgroup: "v2".into(),
    }
}

#[test]
fn full_output_parses_and_has_the_documented_values() {
    let text = render_prometheus(&full_input());
    let samples = check(&text);
    let get = |name: &str, labels: &[(&str, &str)]| {
        find(&samples, name, labels).unwrap_or_else(|| panic!("missing {name} {labels:?} in\n{text}")).value
    };
    assert_eq!(get("memguard_limit_bytes", &[]), (1u64 << 30) as f64);
    assert_eq!(get("memguard_working_set_bytes", &[]), (300u64 << 20) as f64);
    assert_eq!(get("memguard_level", &[]), 1.0);
    assert_eq!(get("memguard_level_info", &[("level", "warning")]), 1.0);
    assert_eq!(get("memguard_level_info", &[("level", "normal")]), 0.0);
    assert_eq!(get("memguard_seconds_in_level_total", &[("level", "normal")]), 120.25);
    assert_eq!(get("memguard_events_total", &[("kind", "oom_kill")]), 1.0);
    assert_eq!(get("memguard_reservations_total", &[("result", "granted")]), 2.0);
    assert_eq!(get("memguard_reservations_total", &[("result", "refused")]), 1.0);
    assert_eq!(get("memguard_reservations_total", &[("result", "forced")]), 1.0);
    assert_eq!(get("memguard_budget_outstanding_bytes", &[]), ((10u64 << 20) + 1 + 1000) as f64);
    let sub = "image \"thumbs\"\\cache\nv2";
    assert_eq!(get("memguard_sub_budget_outstanding_bytes", &[("budget", sub)]), 1000.0, "escaped and unescaped");
    assert_eq!(get("memguard_sub_budget_reservations_total", &[("budget", sub), ("result", "granted")]), 1.0);
    assert_eq!(get("memguard_shed_freed_bytes_total", &[("shedder", "lru")]), 500.0);
    assert_eq!(get("memguard_shed_freed_bytes_total", &[("shedder", "quote\"d")]), 500.0);
    assert_eq!(get("memguard_shed_runs_total", &[]), 1.0);
    assert_eq!(get("memguard_malloc_trims_total", &[]), 0.0);
    assert_eq!(get("memguard_psi_some_avg10", &[]), 0.125);
    assert_eq!(get("memguard_psi_full_avg10", &[]), 0.0);
    assert_eq!(get("memguard_cgroup_info", &[("version", "v2")]), 1.0);
    assert_eq!(get("memguard_sample_errors_total", &[]), 2.0);
    assert_eq!(get("memguard_source_armed", &[("source", "sampler")]), 1.0);
    assert_eq!(get("memguard_source_armed", &[("source", "psi-cgroup-some")]), 0.0);
    assert_eq!(get("memguard_build_info", &[("version", crate::VERSION)]), 1.0);
    assert!(text.contains(r#"budget="image \"thumbs\"\\cache\nv2""#), "raw escaping:\n{text}");
}

#[test]
fn unknown_values_are_omitted_and_output_still_valid() {
    let text = render_prometheus(&MetricsInput::default());
    let samples = check(&text);
    for absent in [
        "memguard_limit_bytes",
        "memguard_usage_bytes",
        "memguard_working_set_bytes",
        "memguard_soft_limit_bytes",
        "memguard_psi_some_avg10",
        "memguard_psi_full_avg10",
        "memguard_reservations_total",
        "memguard_shed_runs_total",
        "memguard_cgroup_info",
        "memguard_sample_errors_total",
        "memguard_source_armed",
    ] {
        assert!(!text.contains(absent), "{absent} present:\n{text}");
    }
    assert!(samples.iter().any(|s| s.name == "memguard_level"));
    let nan =
        MetricsInput { psi_full_avg10: Some(f64::INFINITY), seconds_in_level: [f64::NAN; 3], ..Default::default() };
    let text = render_prometheus(&nan);
    check(&text);
    assert!(!text.contains("memguard_psi_full_avg10"));
}

#[test]
fn every_documented_metric_appears_in_a_full_output() {
    let text = render_prometheus(&full_input());
    let doc = include_str!("../lib.rs");
    let documented: Vec<&str> =
        doc.lines().filter_map(|l| l.strip_prefix("//! | `memguard_")).filter_map(|l| l.split('`').next()).collect();
    assert!(documented.len() >= 20, "{documented:?}");
    for name in &documented {
        assert!(text.contains(&format!("# TYPE memguard_{name} ")), "documented memguard_{name} not rendered");
    }
    let rendered = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
    assert_eq!(rendered, documented.len(), "every rendered family is documented");
}
