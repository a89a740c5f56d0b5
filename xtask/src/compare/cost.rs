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
    let _ = writeln!(
        s,
        "Idle CPU is measured for the Rust guard and the CLI only; `try_reserve` in a tight loop by one thread \
         only (contention: `cargo bench -p memguard-benches --bench budget`, not run by this command).\n"
    );
}
