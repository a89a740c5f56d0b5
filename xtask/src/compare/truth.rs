//! The detection truth table: in each cgroup layout of the real-kernel suites, what limit
//! memguard, JDK 17, Go's `automemlimit` and Python's `psutil` believe the process has.
//!
//! Every probe runs inside the layout's leaf cgroup (in a private cgroup namespace for the
//! `namespace` layout: `unshare --cgroup`). The effective limit of every layout is 256 MiB except
//! `memory.high only` (a throttling point, no hard limit) and `no limit`.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{json, Value};

use crate::runc::cgroup::{Kit, TestCgroup, Version};

const MIB: u64 = 1 << 20;

/// The layouts: name, and what the right answer is.
const LAYOUTS: &[(&str, &str)] = &[
    ("own limit", "256 MiB"),
    ("parent-only limit", "256 MiB"),
    ("tighter intermediate", "256 MiB"),
    ("memory.high only", "no hard limit (throttled at 256 MiB)"),
    ("no limit", "no limit"),
    ("namespace, limit on its root", "256 MiB"),
    ("namespace, limit above its root", "256 MiB"),
];

/// Mounts this kernel's memory hierarchy inside a new cgroup and mount namespace (as container
/// runtimes do), then execs the probe. Absolute paths: the VM's `PATH` starts with busybox,
/// whose `unshare` and `mount` lack the options used here.
fn ns_script(v: Version) -> &'static str {
    match v {
        Version::V1 => {
            "/usr/bin/mount -t tmpfs tmpfs /sys/fs/cgroup && for c in memory cpu cpuacct cpuset pids; do \
             mkdir /sys/fs/cgroup/$c && /usr/bin/mount -t cgroup -o $c $c /sys/fs/cgroup/$c || exit 97; done; \
             exec \"$@\""
        }
        // util-linux refuses to mount cgroup2 where it is already mounted: unmount the host's view first.
        Version::V2 => {
            "/usr/bin/umount -l /sys/fs/cgroup && /usr/bin/mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec \"$@\""
        }
    }
}

/// The rows for this kernel's cgroup version.
pub fn rows(kit: &Kit, target: &Path) -> Value {
    let memguard = target.join("release/memguard").display().to_string();
    let go = target.join("compare/automemlimit-worker").display().to_string();
    let python = crate::runc::python_exe();
    let java = crate::runc::jdk17();
    let mut rows = Vec::new();
    for (layout, truth) in LAYOUTS {
        // The cgroups of a layout, outermost first; the probes run in the last one.
        let top = kit.cgroup("truth");
        let mut chain: Vec<TestCgroup> = Vec::new();
        match *layout {
            "own limit" | "namespace, limit on its root" => top.set_limit(256 * MIB),
            "parent-only limit" | "namespace, limit above its root" => {
                top.set_limit(256 * MIB);
                chain.push(top.child("leaf"));
            }
            "tighter intermediate" => {
                top.set_limit(1024 * MIB);
                let mid = top.child("mid");
                mid.set_limit(256 * MIB);
                let leaf = mid.child("leaf");
                leaf.set_limit(512 * MIB);
                chain.push(mid);
                chain.push(leaf);
            }
            "memory.high only" => top.set_high(256 * MIB),
            _ => {}
        }
        let leaf = chain.last().unwrap_or(&top);
        let ns = layout.starts_with("namespace");
        let run = |argv: &[&str]| -> String {
            let wrap = ["--cgroup", "--mount", "--propagation", "private", "sh", "-c", ns_script(kit.version), "probe"];
            let (prog, args): (&str, Vec<&str>) =
                if ns { ("/usr/bin/unshare", [&wrap[..], argv].concat()) } else { (argv[0], argv[1..].to_vec()) };
            leaf.command(prog, &args)
                .output()
                .map(|o| format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
                .unwrap_or_else(|e| format!("error: {e}"))
        };
        let status_out = run(&[&memguard, "status", "--json"]);
        let status: Value = serde_json::from_str(&status_out).unwrap_or(Value::Null);
        let probe_error = status.is_null().then(|| status_out.chars().take(300).collect::<String>());
        let jdk = run(&[&java, "-XshowSettings:system", "-version"]);
        let jdk_limit = jdk
            .lines()
            .find_map(|l| l.trim().strip_prefix("Memory Limit:").map(|v| v.trim().to_owned()))
            .or_else(|| jdk.lines().find(|l| l.contains("Exception")).map(|l| format!("crashes: {}", l.trim())))
            .unwrap_or_else(|| "none reported".into());
        let heap = run(&[&java, "-XX:+PrintFlagsFinal", "-version"])
            .lines()
            .find(|l| l.contains(" MaxHeapSize "))
            .and_then(|l| l.split_whitespace().nth(3).and_then(|v| v.parse::<u64>().ok()));
        let go_out: Value = serde_json::from_str(run(&[&go, "--print-limit"]).trim()).unwrap_or(Value::Null);
        let psutil =
            run(&[&python, "-c", "import psutil; print(psutil.virtual_memory().total)"]).trim().parse::<u64>().ok();
        rows.push(json!({
            "layout": layout, "truth": truth,
            "memguard_limit": status["limit_bytes"], "memguard_applied": status["limit_applied"],
            "memguard_high": status["high_bytes"], "memguard_level": status["level"],
            "armed": status["sources"].as_array().map(|s| s.iter().filter(|x| x["armed"] == true)
                .filter_map(|x| x["name"].as_str().map(str::to_owned)).collect::<Vec<_>>()),
            "jdk_limit": jdk_limit, "jdk_max_heap": heap,
            "automemlimit": go_out["gomemlimit"], "automemlimit_error": go_out["error"],
            "psutil_total": psutil, "probe_error": probe_error,
        }));
        drop(chain.into_iter().rev().collect::<Vec<_>>());
    }
    json!({"cgroup": match kit.version { Version::V1 => "v1", Version::V2 => "v2" }, "rows": rows})
}

fn mib(v: &Value) -> String {
    match v.as_u64() {
        Some(b) if b >= 1 << 40 => format!("{:.0} GiB (host)", b as f64 / (1u64 << 30) as f64),
        Some(b) if b >= 8 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        Some(b) => format!("{:.0} MiB", b as f64 / MIB as f64),
        None => "none".into(),
    }
}

pub fn markdown(s: &mut String, tables: &Value) {
    let _ = writeln!(s, "## Detection truth table\n");
    let _ = writeln!(
        s,
        "What each tool believes the process's memory limit is, run inside each layout of the real-kernel \
         suites (the probes: `memguard status --json`, `java -XshowSettings:system -version` and the \
         `MaxHeapSize` JDK 17 sizes (`-XX:+PrintFlagsFinal`), `automemlimit`'s computed `GOMEMLIMIT` \
         (`benches/compare/go --print-limit`, ratio 0.9), `psutil.virtual_memory().total`). On cgroup v1 the \
         `memory.high only` layout sets `memory.soft_limit_in_bytes` (v1 has no `memory.high`). The namespace \
         layouts mount the cgroup hierarchies (v1: memory, cpu, cpuacct, cpuset, pids) inside a new cgroup and \
         mount namespace, as container runtimes do; \
         \"limit above its root\" is a Kubernetes pod's limit on the pod cgroup with the container's cgroup as \
         the namespace root.\n"
    );
    let empty = Vec::new();
    for t in tables.as_array().unwrap_or(&empty) {
        let _ = writeln!(s, "### cgroup {}\n", t["cgroup"].as_str().unwrap_or("?"));
        let _ = writeln!(s, "Machine: {}.\n", super::report::machine_line(&t["machine"]));
        let _ = writeln!(s, "| layout | truth | memguard limit | JDK 17 `Memory Limit` | JDK 17 max heap | automemlimit GOMEMLIMIT | psutil total |");
        let _ = writeln!(s, "|---|---|---|---|---|---|---|");
        for r in t["rows"].as_array().unwrap_or(&empty) {
            let mg = match (r["memguard_limit"].as_u64(), r["memguard_high"].as_u64()) {
                (Some(_), _) => mib(&r["memguard_limit"]),
                (None, Some(_)) => format!("none (high {})", mib(&r["memguard_high"])),
                _ => "none".into(),
            };
            let go = if r["automemlimit"].as_u64().is_some_and(|v| v > 0 && v < 1 << 62) {
                mib(&r["automemlimit"])
            } else {
                format!("not set ({})", r["automemlimit_error"].as_str().unwrap_or("no limit found"))
            };
            let _ = writeln!(
                s,
                "| {} | {} | {mg} | {} | {} | {go} | {} |",
                r["layout"].as_str().unwrap_or(""),
                r["truth"].as_str().unwrap_or(""),
                r["jdk_limit"].as_str().unwrap_or(""),
                mib(&r["jdk_max_heap"]),
                mib(&r["psutil_total"]),
            );
        }
        let _ = writeln!(s);
    }
}
