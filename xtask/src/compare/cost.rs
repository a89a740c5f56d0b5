//! What memguard costs, measured in the same run: event-to-callback latency per source
//! (`memguard-e2e latency`, Rust), the idle CPU of a guard (`memguard-e2e idle`), per language
//! (Rust, C, Python, Java: [`probes`]) the event-to-callback latency in one scenario,
//! `try_reserve` + release and the RSS and threads a guard adds, and the wall time of
//! `memguard status` against `java -XshowSettings:system -version`.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use serde_json::{json, Value};

use crate::runc::cgroup::Kit;

mod probes;

/// Measures everything the cost section shows (the probes are built from `root` into `target`).
pub fn measure(kit: &Kit, root: &Path, target: &Path) -> Value {
    let e2e = target.join("release/memguard-e2e");
    let e2e_out = Command::new(&e2e)
        .args(["all", "--json", "--iterations", "100", "--psi-iterations", "5", "--idle-secs", "20"])
        .output();
    let e2e_json: Value = match e2e_out {
        Ok(o) => serde_json::from_slice(&o.stdout).unwrap_or_else(|e| json!({"error": format!("memguard-e2e: {e}")})),
        Err(e) => json!({"error": format!("{}: {e}", e2e.display())}),
    };
    let probe_load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let probe_load: Vec<&str> = probe_load.split_whitespace().take(3).collect();
    let languages = probes::measure(kit, &probes::Ctx { root, target });
    let cg = kit.cgroup("cost");
    cg.set_limit(256 << 20);
    let memguard = target.join("release/memguard").display().to_string();
    let java = crate::runc::jdk17();
    let status_ms = median_ms(&cg, &[&memguard, "status"]);
    let java_ms = median_ms(&cg, &[&java, "-XshowSettings:system", "-version"]);
    json!({
        "e2e": e2e_json, "languages": languages, "probe_load": probe_load.join(" "),
        "status_ms": status_ms, "java_settings_ms": java_ms,
        "command": "memguard-e2e all --json --iterations 100 --psi-iterations 5 --idle-secs 20",
    })
}

/// Median wall time of 7 runs inside `cg`, ms.
fn median_ms(cg: &crate::runc::cgroup::TestCgroup, argv: &[&str]) -> Option<f64> {
    let mut t: Vec<f64> = Vec::new();
    for _ in 0..7 {
        let start = Instant::now();
        let ok = cg.command(argv[0], &argv[1..]).output().is_ok_and(|o| o.status.success());
        if !ok {
            return None;
        }
        t.push(start.elapsed().as_secs_f64() * 1e3);
    }
    t.sort_by(f64::total_cmp);
    Some(t[t.len() / 2])
}

fn us(v: &Value, k: &str) -> String {
    v[k].as_f64().map_or("–".into(), |x| format!("{x:.0}"))
}

pub fn markdown(s: &mut String, c: &Value) {
    let _ = writeln!(s, "## Cost\n");
    let e2e = &c["e2e"];
    let env = &e2e["environment"];
    let _ = writeln!(
        s,
        "Measured in the same run, natively (cgroup {}, kernel {}, {} CPUs). Latency and idle CPU: `{}` \
         (Rust, in process; see `benches/README.md` for what each figure includes).\n",
        env["cgroup"].as_str().unwrap_or("?"),
        env["kernel"].as_str().unwrap_or("?"),
        env["cpus"],
        c["command"].as_str().unwrap_or("")
    );
    let empty = Vec::new();
    let _ = writeln!(s, "### Event to callback (Rust `on_event`), µs\n");
    let _ = writeln!(s, "| source | n | wake→callback p50 | p99 | max | trigger→callback p50 | p99 | max |");
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
    for l in e2e["latency"].as_array().unwrap_or(&empty) {
        let (w, t) = (&l["wake_to_callback"], &l["trigger_to_callback"]);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            l["source"].as_str().unwrap_or("?"),
            l["measured"],
            us(w, "p50_us"),
            us(w, "p99_us"),
            us(w, "max_us"),
            us(t, "p50_us"),
            us(t, "p99_us"),
            us(t, "max_us")
        );
    }
    let _ = writeln!(s);
    breakdown(s, e2e["latency"].as_array().unwrap_or(&empty));
    if let Some(f) = e2e["failures"].as_array().filter(|f| !f.is_empty()) {
        let _ = writeln!(s, "Not measured by the harness: {}.\n", Value::Array(f.clone()));
    }
    if let Some(languages) = c["languages"].as_array() {
        probes::markdown(s, languages, c["probe_load"].as_str().unwrap_or("?"));
    }
    let _ = writeln!(s, "### Footprint and other costs\n");
    let _ = writeln!(s, "| what | figure |");
    let _ = writeln!(s, "|---|---|");
    if let Some(p) = e2e["idle_cli"]["percent_of_one_core"].as_f64() {
        let _ = writeln!(s, "| idle CPU of `memguard watch` (all its threads) | {p:.3}% of one core |");
    }
    if let Some(p) = e2e["idle"]["percent_of_one_core"].as_f64() {
        let _ = writeln!(s, "| idle CPU of an in-process guard (Rust) | {p:.3}% of one core |");
    }
    // Results from before the per-language probes measured Python alone.
    let py = &c["python"];
    if let Some(ns) = py["try_reserve_release_ns"].as_f64() {
        let _ = writeln!(s, "| Python `try_reserve(4096)` + `release()` | {ns:.0} ns per pair |");
        let _ = writeln!(
            s,
            "| RSS / threads a Python `memguard.Guard()` adds | {:.1} MiB / {} |",
            py["rss_added"].as_f64().unwrap_or(0.0) / f64::from(1 << 20),
            py["threads_added"]
        );
    }
    let ms = |v: &Value| v.as_f64().map_or("failed".into(), |x| format!("{x:.0} ms"));
    let _ = writeln!(s, "| `memguard status` wall time (median of 7) | {} |", ms(&c["status_ms"]));
    let _ = writeln!(
        s,
        "| `java -XshowSettings:system -version` wall time (median of 7) | {} |",
        ms(&c["java_settings_ms"])
    );
    let _ = writeln!(s);
    if c["status_ms"].as_f64().is_some() && env["cgroup"] == "v1" {
        let _ = writeln!(
            s,
            "Where `memguard status`'s time goes on cgroup v1: it arms every source it reports, and each v1 \
             usage threshold (warning, critical and five growth sentinels) is registered through \
             `cgroup.event_control`, whose kernel side waits for an RCU grace period (`synchronize_rcu` under the \
             memory cgroup's thresholds lock) — about 8–16 ms per threshold here (`strace -r`), kernel waiting, not \
             CPU. A guard pays the same once, when it starts.\n"
        );
    }
    let _ = writeln!(
        s,
        "Idle CPU is measured for the Rust guard and the CLI only; `try_reserve` in a tight loop by one thread \
         only (contention: `cargo bench -p memguard-benches --bench budget`, not run by this command).\n"
    );
}

/// memguard's share of wake → callback, step by step (`EventTiming`), per source.
fn breakdown(s: &mut String, latency: &[Value]) {
    if latency.iter().all(|l| l["breakdown"].is_null()) {
        return;
    }
    let _ = writeln!(
        s,
        "Wake → callback step by step (µs, p50 / p99): reading the ready sources, the sample and level update the \
         wake-up triggers, publishing (snapshot, budget, queueing), and the hand-over to the dispatcher thread \
         (through a pipe, so the dispatcher runs on the reactor's CPU as the reactor sleeps: \
         `memguard/src/sys/doorbell.rs`).\n"
    );
    let _ = writeln!(s, "| source | read | sample + level | publish | hand-over |");
    let _ = writeln!(s, "|---|---|---|---|---|");
    for l in latency {
        let b = &l["breakdown"];
        if b.is_null() {
            continue;
        }
        let step = |k: &str| format!("{} / {}", us(&b[k], "p50_us"), us(&b[k], "p99_us"));
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            l["source"].as_str().unwrap_or("?"),
            step("read"),
            step("sample"),
            step("publish"),
            step("hand_over")
        );
    }
    let _ = writeln!(s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breakdown_rows_only_for_sources_that_have_one() {
        let latency = serde_json::json!([
            {"source": "v1-threshold-up", "breakdown": {
                "read": {"p50_us": 9.9, "p99_us": 23.1}, "sample": {"p50_us": 26.0, "p99_us": 55.3},
                "publish": {"p50_us": 3.0, "p99_us": 7.2}, "hand_over": {"p50_us": 22.7, "p99_us": 298.7}}},
            {"source": "psi", "breakdown": null}
        ]);
        let mut s = String::new();
        breakdown(&mut s, latency.as_array().expect("array"));
        assert!(s.contains("| v1-threshold-up | 10 / 23 | 26 / 55 | 3 / 7 | 23 / 299 |"), "{s}");
        assert!(!s.contains("| psi |"), "{s}");
        let mut none = String::new();
        breakdown(&mut none, &[serde_json::json!({"source": "psi"})]);
        assert!(none.is_empty());
    }
}
