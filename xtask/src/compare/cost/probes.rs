//! The per-language cost probes, as data: one [`Probe`] per line of [`PROBES`]. Adding a
//! binding is one entry (its build step and one sentence on what its figures include) and one
//! program under `benches/cost/` that follows the protocol below.
//!
//! Every probe runs the same scenario (`benches/src/bin/cost-probe.rs` documents it; its twins
//! are `benches/cost/probe.{py,c}` and `benches/cost/CostProbe.java`): `PROBE SHM_FILE ROUNDS`,
//! inside a fresh test cgroup limited to 1 GiB, prints one JSON line of raw figures:
//! `events` (`[wake_ns, callback_ns]` per level change, `CLOCK_MONOTONIC`), `triggers` (the
//! start of each of its 1 MiB writes and truncations), `reserve_ns` (ns per pair of
//! `try_reserve(4096)` and release, one figure per round), `rss_before`/`rss_after` (bytes)
//! and `threads_before`/`threads_after` around starting a guard with one event callback. The
//! summary ([`summarize`]) is computed here, once for every language.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::runc;
use crate::runc::cgroup::Kit;

/// Rounds each probe runs (120 MiB written and truncated: about 3 level changes each).
pub const ROUNDS: usize = 40;
/// The first rounds, left out of the latency figures: class loading, first calls, the JIT.
pub const WARMUP_ROUNDS: usize = 5;
/// Triggers per round: 120 writes of 1 MiB and one truncation.
const TRIGGERS_PER_ROUND: usize = 121;
/// A probe that has not finished by then is killed (`timeout`): about 5 s is normal.
const PROBE_TIMEOUT_SECS: u32 = 120;

/// Where the probes are built and what they need.
pub struct Ctx<'a> {
    pub root: &'a Path,
    pub target: &'a Path,
}

/// One language's probe.
pub struct Probe {
    pub lang: &'static str,
    /// What its event→callback figures include beyond memguard's own work, for the report.
    pub includes: &'static str,
    /// Builds (or finds) the probe: its command line up to `SHM_FILE ROUNDS`, or why not.
    pub build: fn(&Ctx) -> Result<Vec<String>, String>,
}

/// Every probe, in the report's order.
pub const PROBES: &[Probe] = &[
    Probe {
        lang: "Rust",
        includes: "an `on_event` closure on memguard's dispatcher thread: the reference",
        build: rust,
    },
    Probe {
        lang: "C",
        includes: "an `on_event` function pointer on the dispatcher thread, through the C ABI (the event \
                   converted to `memguard_event`, its JSON built)",
        build: c,
    },
    Probe {
        lang: "Python",
        includes: "the dispatcher thread taking the GIL (held by the main thread between its writes), the \
                   event converted to a dict and to `memguard.Event` by the package's trampoline",
        build: python,
    },
    Probe {
        lang: "Java",
        includes: "the listener feed: the dispatcher hands the event's JSON to the guard's Java listener \
                   thread (a thread hop), which decodes it into an `Event`",
        build: java,
    },
];

fn rust(cx: &Ctx) -> Result<Vec<String>, String> {
    let exe = cx.target.join("release/cost-probe");
    if exe.is_file() {
        Ok(vec![exe.display().to_string()])
    } else {
        Err(format!("{} is not built (cargo build --release -p memguard-benches --bin cost-probe)", exe.display()))
    }
}

fn c(cx: &Ctx) -> Result<Vec<String>, String> {
    let exe = runc::c_program(
        cx.root,
        &cx.root.join("benches/cost/probe.c"),
        &cx.target.join("release"),
        &cx.target.join("compare/cost-probe-c"),
    )?;
    Ok(vec![exe.display().to_string()])
}

fn python(cx: &Ctx) -> Result<Vec<String>, String> {
    let (exe, _) = runc::python_setup(cx.root)?;
    Ok(vec![exe, cx.root.join("benches/cost/probe.py").display().to_string()])
}

fn java(cx: &Ctx) -> Result<Vec<String>, String> {
    let classes = cx.target.join("compare/cost-java");
    let jar = cx.root.join("memguard-jni/target/memguard.jar");
    let javac = Path::new(&runc::jdk17()).with_file_name("javac");
    std::fs::create_dir_all(&classes).map_err(|e| format!("mkdir {}: {e}", classes.display()))?;
    let out = Command::new(&javac)
        .arg("-d")
        .arg(&classes)
        .arg("-cp")
        .arg(&jar)
        .arg(cx.root.join("benches/cost/CostProbe.java"))
        .output()
        .map_err(|e| format!("{}: {e}", javac.display()))?;
    if !out.status.success() {
        return Err(format!("javac CostProbe.java failed: {}", last_lines(&out.stderr)));
    }
    runc::java_command(cx.root, cx.target, &classes, "CostProbe")
}

/// The last lines of a process's output, for an error message.
fn last_lines(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(3)..].join(" / ");
    tail.chars().take(300).collect()
}

/// Builds and runs every probe, each in a fresh cgroup limited to 1 GiB: one JSON object per
/// language, its summary or `error`.
pub fn measure(kit: &Kit, cx: &Ctx) -> Vec<Value> {
    PROBES
        .iter()
        .map(|p| {
            let start = std::time::Instant::now();
            let mut v = (p.build)(cx).and_then(|argv| run(kit, p, &argv)).unwrap_or_else(|e| json!({"error": e}));
            match v["error"].as_str() {
                Some(e) => println!("  cost probe {}: not measured: {e}", p.lang),
                None => println!("  cost probe {}: {:.1} s", p.lang, start.elapsed().as_secs_f64()),
            }
            v["lang"] = json!(p.lang);
            v["includes"] = json!(p.includes);
            v
        })
        .collect()
}

fn run(kit: &Kit, probe: &Probe, argv: &[String]) -> Result<Value, String> {
    let cg = kit.cgroup(&format!("cost-{}", probe.lang.to_lowercase()));
    cg.set_limit(1 << 30);
    let file = format!("/dev/shm/memguard-cost-{}-{}", probe.lang.to_lowercase(), std::process::id());
    let mut args: Vec<String> = vec![PROBE_TIMEOUT_SECS.to_string()];
    args.extend(argv.iter().cloned());
    args.extend([file.clone(), ROUNDS.to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = cg.command("timeout", &args).stdout(Stdio::piped()).stderr(Stdio::piped()).output();
    let _ = std::fs::remove_file(&file);
    let out = out.map_err(|e| format!("timeout {}: {e}", argv[0]))?;
    if !out.status.success() {
        return Err(format!("the probe failed ({}): {}", out.status, last_lines(&out.stderr)));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or("");
    let raw: Value = serde_json::from_str(line).map_err(|e| format!("the probe's output is not JSON: {e}"))?;
    summarize(&raw, WARMUP_ROUNDS)
}

/// Nearest-rank percentile of sorted nanoseconds, in µs.
fn pct_us(sorted: &[u64], p: f64) -> f64 {
    let i = ((p * (sorted.len() - 1) as f64).round() as usize).min(sorted.len() - 1);
    sorted[i] as f64 / 1e3
}

fn spread(mut ns: Vec<u64>) -> Value {
    if ns.is_empty() {
        return Value::Null;
    }
    ns.sort_unstable();
    json!({"p50_us": pct_us(&ns, 0.5), "p99_us": pct_us(&ns, 0.99), "max_us": pct_us(&ns, 1.0)})
}

fn int(raw: &Value, key: &str) -> Result<i64, String> {
    raw[key].as_i64().ok_or_else(|| format!("the probe's output has no `{key}`"))
}

/// The summary of one probe's raw output: level changes after `warmup` rounds, wake→callback
/// and trigger→callback p50/p99/max (µs; the trigger of an event is the probe's last write or
/// truncation that started before the watcher woke), the median `try_reserve`+release pair (ns),
/// the RSS (bytes) and threads the guard added.
///
/// # Errors
/// A missing field, or no level change after the warm-up.
pub fn summarize(raw: &Value, warmup: usize) -> Result<Value, String> {
    let nums = |key: &str| -> Result<Vec<u64>, String> {
        let a = raw[key].as_array().ok_or_else(|| format!("the probe's output has no `{key}`"))?;
        Ok(a.iter().filter_map(Value::as_u64).collect())
    };
    let mut triggers = nums("triggers")?;
    triggers.sort_unstable();
    let from = triggers.get(warmup * TRIGGERS_PER_ROUND).copied().unwrap_or(u64::MAX);
    let events: Vec<(u64, u64)> = raw["events"]
        .as_array()
        .ok_or("the probe's output has no `events`")?
        .iter()
        .filter_map(|e| Some((e[0].as_u64()?, e[1].as_u64()?)))
        .filter(|&(wake, _)| wake >= from)
        .collect();
    if events.is_empty() {
        return Err(format!("no level change after the {warmup} warm-up rounds"));
    }
    let wake: Vec<u64> = events.iter().map(|&(w, c)| c.saturating_sub(w)).collect();
    let trigger: Vec<u64> = events
        .iter()
        .filter_map(|&(w, c)| {
            let i = triggers.partition_point(|&t| t <= w);
            (i > 0).then(|| c.saturating_sub(triggers[i - 1]))
        })
        .collect();
    let mut reserve: Vec<f64> =
        raw["reserve_ns"].as_array().map_or(Vec::new(), |a| a.iter().filter_map(Value::as_f64).collect());
    reserve.sort_by(f64::total_cmp);
    let mut out = json!({
        "n": events.len(),
        "wake_to_callback": spread(wake),
        "trigger_to_callback": spread(trigger),
        "try_reserve_release_ns": reserve.get(reserve.len() / 2),
        "rss_before": int(raw, "rss_before")?,
        "rss_added": int(raw, "rss_after")? - int(raw, "rss_before")?,
        "threads_before": int(raw, "threads_before")?,
        "threads_added": int(raw, "threads_after")? - int(raw, "threads_before")?,
    });
    if let Some(skew) = raw.get("clock_skew_ns") {
        out["clock_skew_ns"] = skew.clone();
    }
    Ok(out)
}

fn cell(v: &Value, key: &str) -> String {
    v[key].as_f64().map_or("–".into(), |x| format!("{x:.0}"))
}

/// The per-language table and what each row's figures include.
pub fn markdown(s: &mut String, languages: &[Value], load: &str) {
    let _ = writeln!(
        s,
        "### Per language, one scenario
"
    );
    let _ = writeln!(
        s,
        "Each language's probe (`benches/src/bin/cost-probe.rs`, `benches/cost/`) runs alone in a fresh cgroup \
         limited to 1 GiB with a guard whose limit override is 128 MiB, PSI off, and one event callback whose \
         first statement reads `CLOCK_MONOTONIC`; it writes 120 MiB to a tmpfs file in 1 MiB writes (the level \
         rises: the kernel's usage thresholds on cgroup v1, else the sampler, wake the watcher) and truncates it \
         (the level falls), {ROUNDS} times; the first {WARMUP_ROUNDS} rounds are left out. *wake→callback*: from the event's `monotonic_ns` \
         (the watcher's wake-up) to the callback; *trigger→callback*: from the start of the probe's last write \
         or truncation before that wake-up. `try_reserve(4096)` + release: ns per pair, median of 5 rounds of \
         5000 (after 3 of warm-up). RSS and threads: `/proc/self` before creating the guard and 200 ms after \
         registering the callback. Load average when the probes started: {load} (the machine may be shared: \
         tails follow its load).\n"
    );
    let _ = writeln!(
        s,
        "| language | n | wake→callback p50 µs | p99 | max | trigger→callback p50 µs | p99 | max | try_reserve+release \
         ns | RSS added | threads added |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|");
    for l in languages {
        let lang = l["lang"].as_str().unwrap_or("?");
        if let Some(why) = l["error"].as_str() {
            let _ = writeln!(s, "| {lang} | not measured: {} | | | | | | | | | |", why.replace('|', "\\|"));
            continue;
        }
        let (w, t) = (&l["wake_to_callback"], &l["trigger_to_callback"]);
        let mib = |v: &Value| v.as_f64().unwrap_or(0.0) / f64::from(1 << 20);
        let _ = writeln!(
            s,
            "| {lang} | {} | {} | {} | {} | {} | {} | {} | {} | {:+.1} MiB (of {:.1}) | {:+} (of {}) |",
            l["n"],
            cell(w, "p50_us"),
            cell(w, "p99_us"),
            cell(w, "max_us"),
            cell(t, "p50_us"),
            cell(t, "p99_us"),
            cell(t, "max_us"),
            cell(l, "try_reserve_release_ns"),
            mib(&l["rss_added"]),
            mib(&l["rss_before"]),
            l["threads_added"].as_i64().unwrap_or(0),
            l["threads_before"]
        );
    }
    let _ = writeln!(s);
    for l in languages {
        let _ = writeln!(s, "* {}: {}.", l["lang"].as_str().unwrap_or("?"), l["includes"].as_str().unwrap_or("?"));
    }
    let _ = writeln!(s);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> Value {
        // Two rounds; the second (kept after one warm-up round) has two level changes: one
        // woken 50 µs after its last write began, one after the truncation.
        let mut triggers: Vec<u64> = (0..TRIGGERS_PER_ROUND as u64).map(|i| 1_000 + i).collect();
        triggers.extend((0..TRIGGERS_PER_ROUND as u64).map(|i| 1_000_000 + i * 1_000));
        json!({
            "events": [[1_500, 1_600], [1_050_000, 1_060_000], [1_200_010, 1_200_030]],
            "triggers": triggers,
            "reserve_ns": [30.0, 10.0, 20.0],
            "rss_before": 1000, "rss_after": 4000, "threads_before": 1, "threads_after": 4,
        })
    }

    #[test]
    fn summary_skips_the_warm_up_and_pairs_each_event_with_its_last_trigger() {
        let s = summarize(&raw(), 1).unwrap();
        assert_eq!(s["n"], 2);
        assert_eq!(s["wake_to_callback"]["p50_us"], 10.0);
        assert_eq!(s["wake_to_callback"]["max_us"], 10.0);
        // The second woke after the truncation at 1_120_000 (its callback 80.03 µs later).
        assert_eq!(s["trigger_to_callback"]["max_us"], 80.03);
        // The first woke during the write started at 1_050_000 (its callback 10 µs later).
        let mut first = raw();
        first["events"].as_array_mut().unwrap().pop();
        assert_eq!(summarize(&first, 1).unwrap()["trigger_to_callback"]["max_us"], 10.0);
        assert_eq!(s["try_reserve_release_ns"], 20.0);
        assert_eq!((s["rss_added"].as_i64(), s["threads_added"].as_i64()), (Some(3000), Some(3)));
    }

    #[test]
    fn summary_without_events_or_fields_is_an_error() {
        let mut r = raw();
        r["events"] = json!([]);
        assert!(summarize(&r, 0).unwrap_err().contains("no level change"));
        let mut r = raw();
        r.as_object_mut().unwrap().remove("rss_before");
        assert!(summarize(&r, 0).unwrap_err().contains("rss_before"));
        assert!(summarize(&json!({}), 0).is_err());
    }

    #[test]
    fn a_language_that_could_not_run_is_a_row_saying_why() {
        let mut ok = summarize(&raw(), 1).unwrap();
        ok["lang"] = json!("Rust");
        ok["includes"] = json!("the reference");
        let missing = json!({"lang": "Java", "includes": "the feed", "error": "no JDK | here"});
        let mut s = String::new();
        markdown(&mut s, &[ok, missing], "0.5 0.4 0.3");
        assert!(s.contains("| Rust | 2 | 10 | 10 | 10 | 80 | 80 | 80 | 20 | +0.0 MiB (of 0.0) | +3 (of 1) |"), "{s}");
        assert!(s.contains("| Java | not measured: no JDK \\| here | | | | | | | | | |"), "{s}");
        assert!(s.contains("* Java: the feed."), "{s}");
    }
}
