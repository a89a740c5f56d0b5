//! The detection truth table: in each cgroup layout of the real-kernel suites, what limit
//! memguard, JDK 17, Go's `automemlimit` and Python's `psutil` believe the process has.
//!
//! Every probe runs inside the layout's leaf cgroup (in a private cgroup namespace for the
//! `namespace` layout: `unshare --cgroup`). The effective limit of every layout is 256 MiB except
//! `memory.high only` (a throttling point, no hard limit) and `no limit`.
//!
//! The `moved process` layout is asked of running processes instead ([`moved`]): each tool's
//! probe starts in a cgroup limited to 512 MiB, is moved into one limited to 256 MiB, and
//! answers again after memguard's default re-detection interval.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

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

/// The `moved process` layout's answer: its limit before the move, and after.
const MOVED_TRUTH: &str = "256 MiB after the move (512 MiB before)";
/// The limit of the cgroup the moved probes start in, and of the one they are moved into.
const MOVED_FROM: u64 = 512 * MIB;
const MOVED_TO: u64 = 256 * MIB;
/// How long the probes are given to notice the move: memguard's default `redetect_interval`
/// (10 s) and a margin; the other probes are asked after memguard answered or this passed.
const MOVED_WAIT: Duration = Duration::from_secs(14);
/// A probe that prints nothing for this long (a JVM starting under emulation is slow) is
/// reported as silent.
const PROBE_START: Duration = Duration::from_secs(120);

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
            "memguard_maybe_hidden": status["limit_maybe_hidden"],
            "armed": status["sources"].as_array().map(|s| s.iter().filter(|x| x["armed"] == true)
                .filter_map(|x| x["name"].as_str().map(str::to_owned)).collect::<Vec<_>>()),
            "jdk_limit": jdk_limit, "jdk_max_heap": heap,
            "automemlimit": go_out["gomemlimit"], "automemlimit_error": go_out["error"],
            "psutil_total": psutil, "probe_error": probe_error,
        }));
        drop(chain.into_iter().rev().collect::<Vec<_>>());
    }
    rows.push(moved(kit, target, &memguard, &go, &python, &java));
    json!({"cgroup": match kit.version { Version::V1 => "v1", Version::V2 => "v2" }, "rows": rows})
}

/// A long-running probe: its stdin (a line asks it again), and its stdout lines as they come.
struct Probe {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Probe {
    fn start(cg: &TestCgroup, argv: &[&str]) -> Result<Probe, String> {
        let mut child = cg
            .command(argv[0], &argv[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", argv[0]))?;
        let out = child.stdout.take().ok_or("no stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Ok(Probe { stdin: child.stdin.take(), child, lines })
    }

    /// The next line as JSON, or `Null` after `timeout`.
    fn next(&self, timeout: Duration) -> Value {
        self.lines.recv_timeout(timeout).ok().and_then(|l| serde_json::from_str(&l).ok()).unwrap_or(Value::Null)
    }

    /// Asks again (one line on stdin) and returns the answer.
    fn ask(&mut self) -> Value {
        match self.stdin.as_mut().map(|i| writeln!(i).and_then(|()| i.flush())) {
            Some(Ok(())) => self.next(Duration::from_secs(30)),
            _ => Value::Null,
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The JDK probe (`benches/compare/java/TruthProbe.java`) compiled into `target/compare/`
/// when missing or older than its source: the class directory.
fn java_probe(java: &str, target: &Path) -> Result<PathBuf, String> {
    let src = crate::runc::workspace_root().join("benches/compare/java/TruthProbe.java");
    let dir = target.join("compare/truth-probe");
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if mtime(&dir.join("TruthProbe.class")).is_some_and(|c| mtime(&src).is_some_and(|s| s <= c)) {
        return Ok(dir);
    }
    let javac = Path::new(java).with_file_name("javac");
    let out = Command::new(&javac)
        .args(["--add-exports", "java.base/jdk.internal.platform=ALL-UNNAMED", "-d"])
        .arg(&dir)
        .arg(&src)
        .output()
        .map_err(|e| format!("{}: {e}", javac.display()))?;
    if out.status.success() {
        Ok(dir)
    } else {
        Err(format!("javac TruthProbe.java: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// The `moved process` row: every probe runs as one long-lived process started in a cgroup
/// limited to [`MOVED_FROM`], answers, is moved into one limited to [`MOVED_TO`], and answers
/// again — memguard (`memguard watch --json`, default settings) when it reports a new limit or
/// after [`MOVED_WAIT`], the others when asked after that. Each value is `[before, after]`.
fn moved(kit: &Kit, target: &Path, memguard: &str, go: &str, python: &str, java: &str) -> Value {
    let from = kit.cgroup("truth-from");
    from.set_limit(MOVED_FROM);
    let to = kit.cgroup("truth-to");
    to.set_limit(MOVED_TO);
    let classes = java_probe(java, target).map(|d| d.display().to_string());
    let psutil = "import psutil, sys\nprint(psutil.virtual_memory().total, flush=True)\n\
                  for _ in sys.stdin: print(psutil.virtual_memory().total, flush=True)";
    let jdk_argv: Result<Vec<&str>, String> = classes
        .as_deref()
        .map(|cp| vec![java, "--add-exports", "java.base/jdk.internal.platform=ALL-UNNAMED", "-cp", cp, "TruthProbe"])
        .map_err(Clone::clone);
    let probes: Vec<(&str, Result<Vec<&str>, String>)> = vec![
        ("memguard", Ok(vec![memguard, "watch", "--json"])),
        ("jdk", jdk_argv),
        ("automemlimit", Ok(vec![go, "--print-limit", "--wait"])),
        ("automemlimit_refresh", Ok(vec![go, "--print-limit", "--wait", "--refresh", "1s"])),
        ("psutil", Ok(vec![python, "-c", psutil])),
    ];
    let mut started: Vec<(&str, Result<Probe, String>, Value)> = Vec::new();
    for (name, argv) in probes {
        let probe = argv.and_then(|a| Probe::start(&from, &a));
        let first = probe.as_ref().map_or(Value::Null, |p| p.next(PROBE_START));
        started.push((name, probe, first));
    }
    for (_, p, _) in &started {
        if let Ok(p) = p {
            to.add_pid(p.child.id());
        }
    }
    let moved_at = Instant::now();
    let mut out = json!({"layout": "moved process", "truth": MOVED_TRUTH, "moved": true});
    // memguard first: its answer comes unasked (a `limit_changed` event) once it re-detects.
    let mut memguard_secs = Value::Null;
    let mut memguard_after = Value::Null;
    if let Some((_, Ok(p), first)) = started.iter().find(|(n, _, _)| *n == "memguard") {
        memguard_after = first["limit_bytes"].clone();
        while let Some(left) = MOVED_WAIT.checked_sub(moved_at.elapsed()) {
            let line = p.next(left);
            if line.is_null() {
                break;
            }
            if line["limit_bytes"] != first["limit_bytes"] {
                memguard_after = line["limit_bytes"].clone();
                memguard_secs = json!(moved_at.elapsed().as_secs_f64());
                break;
            }
        }
    }
    if let Some(left) = MOVED_WAIT.checked_sub(moved_at.elapsed()) {
        if memguard_secs.is_null() {
            std::thread::sleep(left);
        }
    }
    for (name, probe, first) in &mut started {
        let after = match (&mut *probe, *name) {
            (Ok(_), "memguard") => memguard_after.clone(),
            (Ok(p), _) => p.ask(),
            (Err(_), _) => Value::Null,
        };
        let pair = |key: &str, a: &Value| json!([first[key], a[key]]);
        match *name {
            "memguard" => {
                out["memguard_limit"] = json!([first["limit_bytes"], after]);
                out["memguard_redetect_secs"] = memguard_secs.clone();
            }
            "jdk" => {
                out["jdk_limit"] = pair("limit", &after);
                out["jdk_max_heap"] = pair("max_heap", &after);
            }
            "automemlimit" => out["automemlimit"] = pair("gomemlimit", &after),
            "automemlimit_refresh" => out["automemlimit_refresh"] = pair("gomemlimit", &after),
            _ => out["psutil_total"] = json!([first, after]),
        }
        if let Err(e) = probe {
            out["probe_error"] = json!(format!("{name}: {e}"));
        }
    }
    drop(started);
    out
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
         the namespace root. \
         \"moved process\": each tool runs as one long-lived process started in a cgroup limited to 512 MiB, \
         is moved (`cgroup.procs`) into one limited to 256 MiB, and answers again (`before → after`): memguard \
         is `memguard watch --json` with its defaults (it re-detects every 10 s, `MEMGUARD_REDETECT_INTERVAL`; \
         the time is from the move to its `limit_changed` event); the JDK is \
         `benches/compare/java/TruthProbe.java` (the container metrics `-XshowSettings:system` prints, and the \
         heap, sized once at start); automemlimit is the Go worker (`--print-limit --wait`), with its default \
         (the limit is read once, at start) and with its `WithRefreshInterval` option; psutil is asked again in \
         the same process. The others are asked after memguard answered (or 14 s passed).\n"
    );
    let empty = Vec::new();
    for t in tables.as_array().unwrap_or(&empty) {
        let _ = writeln!(s, "### cgroup {}\n", t["cgroup"].as_str().unwrap_or("?"));
        let _ = writeln!(s, "Machine: {}.\n", super::report::machine_line(&t["machine"]));
        let _ = writeln!(s, "| layout | truth | memguard limit | JDK 17 `Memory Limit` | JDK 17 max heap | automemlimit GOMEMLIMIT | psutil total |");
        let _ = writeln!(s, "|---|---|---|---|---|---|---|");
        for r in t["rows"].as_array().unwrap_or(&empty) {
            if r["moved"] == true {
                moved_row(s, r);
                continue;
            }
            let mut mg = match (r["memguard_limit"].as_u64(), r["memguard_high"].as_u64()) {
                (Some(_), _) => mib(&r["memguard_limit"]),
                (None, Some(_)) => format!("none (high {})", mib(&r["memguard_high"])),
                _ => "none".into(),
            };
            if r["memguard_maybe_hidden"] == true {
                // The kernel hides cgroups above a namespace's root: memguard cannot read that
                // limit and says so (`MEMGUARD_LIMIT` / the Downward API restores it).
                mg.push_str(", says `limit_maybe_hidden`");
            }
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

/// `before → after` for one tool of the `moved process` row (`[before, after]` in bytes).
fn before_after(pair: &Value) -> String {
    let (b, a) = (&pair[0], &pair[1]);
    if pair.is_null() || (b.is_null() && a.is_null()) {
        return "not measured".into();
    }
    if b == a {
        format!("{} (unchanged)", mib(b))
    } else {
        format!("{} → **{}**", mib(b), mib(a))
    }
}

fn moved_row(s: &mut String, r: &Value) {
    let mut mg = before_after(&r["memguard_limit"]);
    if let Some(secs) = r["memguard_redetect_secs"].as_f64() {
        let _ = write!(mg, " after {secs:.1} s");
    }
    let go = |v: &Value| {
        if v[0].as_u64().is_some_and(|b| b >= 1 << 62) {
            "not set (no limit found)".to_owned()
        } else {
            before_after(v)
        }
    };
    // Values a tool takes once at start: said so when the move left them as they were.
    let once = |v: &Value, what: &str| {
        if v[0] == v[1] && !v[0].is_null() {
            format!("{what} once at start: {}", mib(&v[0]))
        } else {
            before_after(v)
        }
    };
    let _ = writeln!(
        s,
        "| moved process | {} | {mg} | {} | {} | {}; with `WithRefreshInterval(1s)`: {} | {} |",
        r["truth"].as_str().unwrap_or(""),
        before_after(&r["jdk_limit"]),
        once(&r["jdk_max_heap"], "sized"),
        if r["automemlimit"][0].as_u64().is_some_and(|b| b >= 1 << 62) {
            go(&r["automemlimit"])
        } else {
            once(&r["automemlimit"], "read")
        },
        go(&r["automemlimit_refresh"]),
        before_after(&r["psutil_total"]),
    );
}
