//! The runtime cases: in a container whose memory limit runc set, memguard finds that limit,
//! its events arrive, a sibling's OOM kill is reported, and the guarded Rust, Python, C and
//! Java workers survive where their unguarded twins are OOM-killed.

use std::time::Duration;

use serde_json::Value;

use super::bundle::{Bundle, Outcome, Spec};
use super::cgroup::TestCgroup;
use super::{container_cgroup, Env, OtherHierarchies, Tally, Verdict};

const MIB: u64 = 1 << 20;

/// A container of the case: the test's top cgroup (runc makes `ctr` in it), the cleanup of
/// the other v1 hierarchies, and the bundle (deleted first).
pub struct Container {
    pub bundle: Bundle,
    _others: OtherHierarchies,
    /// `cgroup_path` memguard must report: the full path, or `/` in a cgroup namespace.
    pub seen_path: String,
}

impl Container {
    /// A container at `parent/name` running `args` (the caller keeps `parent` alive).
    pub fn new(
        env: &Env,
        top: &TestCgroup,
        parent: &TestCgroup,
        name: &str,
        tweak: impl FnOnce(&mut Spec),
    ) -> Container {
        let (cgroups_path, full) = container_cgroup(env, parent, name);
        let mut spec = Spec {
            args: Vec::new(),
            env: Vec::new(),
            cgroups_path,
            memory_limit: None,
            oom_score_adj: None,
            cgroup_ns: false,
            binds: env.binds.clone(),
        };
        tweak(&mut spec);
        let seen_path = if spec.cgroup_ns { "/".to_owned() } else { full };
        let others = OtherHierarchies::new(env, top);
        let bundle = Bundle::new(&spec).unwrap_or_else(|e| panic!("bundle: {e}"));
        Container { bundle, _others: others, seen_path }
    }

    /// Run it; a container that outlives `secs` is a failure.
    pub fn run(&self, secs: u64) -> Outcome {
        self.bundle.run(Duration::from_secs(secs)).unwrap_or_else(|e| panic!("{e}"))
    }
}

fn ns_suffix(cgroup_ns: bool) -> &'static str {
    if cgroup_ns {
        " (private cgroup ns)"
    } else {
        ""
    }
}

/// Every runtime case, with or without a private cgroup namespace.
pub fn all(env: &Env, cgroup_ns: bool, tally: &mut Tally) {
    let v = env.version();
    let ns = ns_suffix(cgroup_ns);
    tally.case(&format!("{v} status finds the runtime's limit{ns}"), || status(env, cgroup_ns));
    tally.case(&format!("{v} events and a sibling's oom_kill{ns}"), || sibling_oom(env, cgroup_ns));
    tally.case(&format!("{v} rust cache-worker: guarded survives, unguarded killed{ns}"), || {
        rust_workers(env, cgroup_ns)
    });
    tally.case(&format!("{v} python cache_worker.py: guarded survives, unguarded killed{ns}"), || {
        python_workers(env, cgroup_ns)
    });
    tally.case(&format!("{v} c cache_worker (C library): guarded survives, unguarded killed{ns}"), || {
        c_workers(env, cgroup_ns)
    });
    tally.case(&format!("{v} java direct-buffer cache service (jar): guarded survives, unguarded killed{ns}"), || {
        java_workers(env, cgroup_ns)
    });
}

fn parse_json(text: &str) -> Result<Value, String> {
    serde_json::from_str(text.trim()).map_err(|e| format!("not JSON ({e}): {text}"))
}

/// `memguard status --json` in a container limited to 192 MiB.
fn status(env: &Env, cgroup_ns: bool) -> Result<Verdict, String> {
    let top = env.kit.cgroup("runc-status");
    let c = Container::new(env, &top, &top, "ctr", |s| {
        s.args = vec![env.memguard.display().to_string(), "status".into(), "--json".into()];
        s.memory_limit = Some(192 * MIB);
        s.cgroup_ns = cgroup_ns;
    });
    let out = c.run(60);
    if out.code != 0 {
        return Err(format!("exit {}: {}", out.code, out.stderr));
    }
    let s = parse_json(&out.stdout)?;
    let armed: Vec<&str> = s["sources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|x| x["armed"] == true)
        .filter_map(|x| x["name"].as_str())
        .collect();
    let check = |ok: bool, what: &str| if ok { Ok(()) } else { Err(format!("{what}: {s:#}")) };
    check(s["cgroup"] == env.version(), "cgroup version")?;
    check(s["limit_bytes"] == 192 * MIB, "limit_bytes is the runtime's 192 MiB")?;
    check(s["limit_applied"] == "cgroup", "limit_applied")?;
    check(s["cgroup_path"] == c.seen_path.as_str(), "cgroup_path")?;
    check(s["limit_cgroup"] == c.seen_path.as_str(), "limit_cgroup is the container's")?;
    check(armed.contains(&"sampler"), "the sampler is armed")?;
    if env.kit.version == super::cgroup::Version::V2 {
        check(armed.contains(&"v2-memory-events"), "memory.events is armed on v2")?;
    }
    Ok(Verdict::Pass(format!(
        "limit 192 MiB at {}, maybe_hidden {}, armed: {} ({:.2} s)",
        s["limit_cgroup"],
        s["limit_maybe_hidden"],
        armed.join(", "),
        out.secs
    )))
}

/// `memguard watch --json` beside `memguard alloc`, which runs into the 128 MiB limit and is
/// OOM-killed: the watcher sees the limit, level changes and the `oom_kill`.
fn sibling_oom(env: &Env, cgroup_ns: bool) -> Result<Verdict, String> {
    let top = env.kit.cgroup("runc-sibling");
    let mg = env.memguard.display().to_string();
    let rate = if env.in_vm { "128M" } else { "512M" };
    let script = format!(
        r#"{mg} watch --json & w=$!
sleep {settle}
{mg} alloc --to 256M --rate {rate} > /dev/null
echo "MEMGUARD_SIBLING_EXIT=$?"
sleep {settle}
kill $w; wait $w"#,
        settle = if env.in_vm { "2" } else { "0.5" },
    );
    let c = Container::new(env, &top, &top, "ctr", |s| {
        s.args = vec!["sh".into(), "-c".into(), script];
        s.memory_limit = Some(128 * MIB);
        s.cgroup_ns = cgroup_ns;
    });
    let out = c.run(120);
    let sibling = out.stdout.lines().find_map(|l| l.strip_prefix("MEMGUARD_SIBLING_EXIT=")).unwrap_or("?").to_owned();
    let events: Vec<Value> = out.stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    let ctx = || format!("sibling exit {sibling}; events {kinds:?}; stderr {}", out.stderr.trim());
    if sibling != "137" {
        return Err(format!("the sibling was not OOM-killed: {}", ctx()));
    }
    let started =
        events.iter().find(|e| e["kind"] == "started").ok_or_else(|| format!("no started line: {}", ctx()))?;
    if started["limit_bytes"] != 128 * MIB {
        return Err(format!("the watcher's limit is not 128 MiB: {started}"));
    }
    let rose: Vec<&str> = events
        .iter()
        .filter(|e| e["kind"] == "level_changed" && e["to"] != "normal")
        .filter_map(|e| e["to"].as_str())
        .collect();
    if rose.is_empty() {
        return Err(format!("no level rise before the kill: {}", ctx()));
    }
    let kills = events.iter().filter(|e| e["kind"] == "oom_kill").count();
    if kills == 0 {
        return Err(format!("no oom_kill event: {}", ctx()));
    }
    Ok(Verdict::Pass(format!(
        "sibling exit 137; watcher saw limit 128 MiB, level -> {}, {kills} oom_kill event(s) ({:.1} s)",
        rose.join(" -> "),
        out.secs
    )))
}

/// The wrapper that runs a worker and then prints its exit status and the container cgroup's
/// `oom_kill` counter (read inside: `runc run` removes the cgroup when the container ends). v1:
/// runc mounts the container's memory cgroup at `/sys/fs/cgroup/memory`; v2 without a cgroup
/// namespace: the whole hierarchy at `/sys/fs/cgroup`, so the file is found by path.
fn worker_script(argv: &[String]) -> Vec<String> {
    let mut v: Vec<String> = vec![
        "sh".into(),
        "-c".into(),
        r#""$@"; echo "MEMGUARD_WORKER_EXIT=$?"
v2=/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup)/memory.events
cat /sys/fs/cgroup/memory/memory.oom_control "$v2" 2>/dev/null | sed -n 's/^oom_kill /MEMGUARD_OOM_KILL=/p'"#
            .into(),
        "sh".into(),
    ];
    v.extend_from_slice(argv);
    v
}

/// One worker run in its own container: (exit status, oom_kill counter, last JSON line).
fn worker_run(
    env: &Env,
    label: &str,
    limit: u64,
    argv: &[String],
    cgroup_ns: bool,
) -> Result<(i32, u64, Value), String> {
    let (code, kills, stdout) = worker_output(env, label, limit, argv, &[], cgroup_ns)?;
    let report =
        stdout.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).next_back().unwrap_or(Value::Null);
    Ok((code, kills, report))
}

/// One worker run in its own container with `vars` in its environment: (exit status,
/// oom_kill counter, its standard output).
fn worker_output(
    env: &Env,
    label: &str,
    limit: u64,
    argv: &[String],
    vars: &[(&str, &str)],
    cgroup_ns: bool,
) -> Result<(i32, u64, String), String> {
    let top = env.kit.cgroup(label);
    let c = Container::new(env, &top, &top, "ctr", |s| {
        s.args = worker_script(argv);
        s.memory_limit = Some(limit);
        s.cgroup_ns = cgroup_ns;
        s.env.extend(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    });
    let out = c.run(if env.in_vm { 300 } else { 90 });
    let field = |k: &str| out.stdout.lines().find_map(|l| l.strip_prefix(k)).map(str::trim).map(str::to_owned);
    let code = field("MEMGUARD_WORKER_EXIT=")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("{label}: no exit line (runc exit {}): {} {}", out.code, out.stdout, out.stderr))?;
    let kills =
        field("MEMGUARD_OOM_KILL=").and_then(|v| v.parse().ok()).ok_or_else(|| format!("{label}: no oom_kill line"))?;
    Ok((code, kills, out.stdout))
}

/// The unguarded twin must be OOM-killed, the guarded worker must finish with no OOM kill.
fn twins(
    env: &Env,
    lang: &str,
    limit: u64,
    unguarded: &[String],
    guarded: &[String],
    cgroup_ns: bool,
) -> Result<Verdict, String> {
    let (code, kills, _) = worker_run(env, &format!("runc-{lang}-unguarded"), limit, unguarded, cgroup_ns)?;
    if code != 137 || kills == 0 {
        return Err(format!("the unguarded {lang} worker must be OOM-killed: exit {code}, oom_kill {kills}"));
    }
    let (gcode, gkills, report) = worker_run(env, &format!("runc-{lang}-guarded"), limit, guarded, cgroup_ns)?;
    if gcode != 0 || gkills != 0 {
        return Err(format!(
            "the guarded {lang} worker must survive: exit {gcode}, oom_kill {gkills}, report {report}"
        ));
    }
    // The Rust and Python workers count shedding runs, the C worker its shedder's calls.
    let shed = report["shed_runs"].as_u64().or_else(|| report["shed_calls"].as_u64()).unwrap_or(0);
    if shed == 0 || report["evicted_bytes"].as_u64().is_some_and(|e| e == 0) {
        return Err(format!("the guarded {lang} worker never shed: {report}"));
    }
    Ok(Verdict::Pass(format!(
        "unguarded exit 137 (oom_kill {kills}); guarded exit 0 (oom_kill 0, shed {shed} time(s), served {}, rejected {})",
        report["served"], report["rejected"]
    )))
}

fn rust_workers(env: &Env, cgroup_ns: bool) -> Result<Verdict, String> {
    let limit = 192 * MIB;
    let total = format!("{}M", 3 * limit / MIB);
    let rate = if env.in_vm { "150M" } else { "300M" };
    let base: Vec<String> =
        [env.worker.display().to_string(), "--total".into(), total, "--rate".into(), rate.into()].into();
    let mut guarded = base.clone();
    guarded.push("--guard".into());
    twins(env, "rust", limit, &base, &guarded, cgroup_ns)
}

fn python_workers(env: &Env, cgroup_ns: bool) -> Result<Verdict, String> {
    let (py, worker) = match &env.python {
        Ok(p) => p.clone(),
        Err(why) => return Ok(Verdict::Skip(why.clone())),
    };
    let limit = 128 * MIB;
    let rate = if env.in_vm { "48" } else { "256" };
    let argv = |mode: &str| -> Vec<String> {
        [py.as_str(), worker.as_str(), "--guard", mode, "--step", "2", "--rate", rate, "--total", "384"]
            .map(str::to_owned)
            .into()
    };
    twins(env, "python", limit, &argv("none"), &argv("shedder"), cgroup_ns)
}

fn c_workers(env: &Env, cgroup_ns: bool) -> Result<Verdict, String> {
    let exe = match &env.c_worker {
        Ok(p) => p.display().to_string(),
        Err(why) => return Ok(Verdict::Skip(why.clone())),
    };
    let limit = 256 * MIB;
    let rate = if env.in_vm { "128" } else { "256" };
    let argv = |mode: &str| -> Vec<String> {
        [exe.as_str(), "--guard", mode, "--total", "768", "--rate", rate].map(str::to_owned).into()
    };
    twins(env, "c", limit, &argv("none"), &argv("shedder"), cgroup_ns)
}

/// The Java package's direct-`ByteBuffer` cache service (`DirectCacheService`, the JUnit kernel
/// test's worker: 4 MiB per request, off the heap) with the jar on the class path: unguarded it
/// is OOM-killed; with memguard (a shedder and the budget) it serves or refuses every request.
fn java_workers(env: &Env, cgroup_ns: bool) -> Result<Verdict, String> {
    let prefix = match &env.java {
        Ok(p) => p.clone(),
        Err(why) => return Ok(Verdict::Skip(why.clone())),
    };
    let limit = 256 * MIB;
    let argv = |mode: &str| -> Vec<String> {
        let mut v = prefix.clone();
        v.extend([mode.to_owned(), "192".to_owned()]);
        v
    };
    let vars = [("MEMGUARD_SHED_INTERVAL", "50ms")];
    let (code, kills, _) = worker_output(env, "runc-java-unguarded", limit, &argv("unguarded"), &vars, cgroup_ns)?;
    if code != 137 || kills == 0 {
        return Err(format!("the unguarded java service must be OOM-killed: exit {code}, oom_kill {kills}"));
    }
    let (gcode, gkills, out) = worker_output(env, "runc-java-guarded", limit, &argv("memguard"), &vars, cgroup_ns)?;
    let survived = out.lines().find(|l| l.starts_with("SURVIVED")).unwrap_or("").to_owned();
    if gcode != 0 || gkills != 0 || survived.is_empty() {
        return Err(format!("the guarded java service must survive: exit {gcode}, oom_kill {gkills}: {out}"));
    }
    let evicted: u64 =
        survived.split_whitespace().find_map(|w| w.strip_prefix("evicted=")).and_then(|v| v.parse().ok()).unwrap_or(0);
    if evicted == 0 {
        return Err(format!("the guarded java service never shed: {survived}"));
    }
    Ok(Verdict::Pass(format!("unguarded exit 137 (oom_kill {kills}); guarded exit 0 (oom_kill 0): {survived}")))
}
