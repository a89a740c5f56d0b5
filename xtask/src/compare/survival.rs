//! The survival campaign: every contender's worker in its own fresh cgroup limited to 256 MiB,
//! at every rate, `runs` times; what the kernel says afterwards (OOM kills, peak usage).

use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::contenders::{Contender, Expect, Tools, CONTENDERS};
use crate::runc::cgroup::{Kit, TestCgroup, Version};

/// The limit every worker runs under.
pub const LIMIT: u64 = 256 << 20;
/// A run that takes longer is killed and counted as not surviving.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// One run's outcome.
#[derive(Debug, Clone)]
pub struct Run {
    pub exit: i32,
    pub oom_kills: u64,
    pub peak: u64,
    pub secs: f64,
    /// The worker's last stdout line (its JSON report, or the Java worker's `SURVIVED ...`).
    pub report: String,
    /// Its stdout has a JVM's fatal error report ([`JVM_CRASH`]).
    pub fatal_error: bool,
}

impl Run {
    pub fn survived(&self) -> bool {
        self.exit == 0 && self.oom_kills == 0
    }

    /// The worker crashed: no OOM kill, and a JVM's fatal error report (`hs_err`) or a crash
    /// signal (SIGILL, SIGABRT, SIGBUS, SIGFPE, SIGSEGV). Not counted as killed: a crash under
    /// emulation says nothing about how the contender handles memory (see `JVM_CRASH`).
    pub fn crashed(&self) -> bool {
        self.oom_kills == 0 && (self.fatal_error || matches!(self.exit, 132 | 134 | 135 | 136 | 139))
    }

    /// `survived`, `crashed` or `died`, for the progress lines.
    pub fn outcome(&self) -> &'static str {
        if self.survived() {
            "survived"
        } else if self.crashed() {
            "CRASHED"
        } else {
            "died"
        }
    }
}

/// What HotSpot prints (on stdout) when the JVM itself crashes.
const JVM_CRASH: &str = "A fatal error has been detected by the Java Runtime Environment";

/// One contender at one rate: its runs, or why it could not run.
pub struct Cell {
    pub contender: &'static Contender,
    pub rate: u64,
    pub runs: Result<Vec<Run>, String>,
}

impl Cell {
    pub fn survivors(&self) -> usize {
        self.runs.as_ref().map_or(0, |r| r.iter().filter(|r| r.survived()).count())
    }

    /// Does the cell contradict the contender's [`Expect`]? `None` when it holds.
    pub fn violation(&self) -> Option<String> {
        let runs = match &self.runs {
            Ok(r) => r,
            Err(why) => return Some(format!("not run: {why}")),
        };
        let (ok, n) = (self.survivors(), runs.len());
        let crashed = runs.iter().filter(|r| r.crashed()).count();
        if crashed > 0 {
            return Some(format!("{crashed}/{n} run(s) crashed (not OOM-killed): the cell measures nothing"));
        }
        match self.contender.expect {
            Expect::Survive if ok < n => Some(format!("survived {ok}/{n}, expected every run")),
            Expect::Die if ok > 0 => Some(format!("survived {ok}/{n}, expected the OOM killer every run")),
            _ => None,
        }
    }

    pub fn to_json(&self) -> Value {
        let runs = match &self.runs {
            Ok(r) => r
                .iter()
                .map(|r| {
                    json!({"exit": r.exit, "oom_kills": r.oom_kills, "peak": r.peak, "secs": r.secs,
                           "survived": r.survived(), "crashed": r.crashed(), "report": r.report})
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        json!({
            "id": self.contender.id, "lang": self.contender.lang, "detection": self.contender.detection,
            "reaction": self.contender.reaction, "rate": self.rate,
            "not_run": self.runs.as_ref().err(), "runs": runs,
        })
    }
}

/// Runs every selected contender at every rate, `runs` times each, interleaved run by run (so a
/// burst of load on this shared machine spreads over all cells instead of spoiling one).
pub fn campaign(kit: &Kit, tools: &Tools, rates: &[u64], runs: u32, select: &dyn Fn(&Contender) -> bool) -> Vec<Cell> {
    let mut cells: Vec<Cell> = Vec::new();
    for c in CONTENDERS.iter().filter(|c| select(c)) {
        for &rate in rates {
            let runs = (c.argv)(tools, rate).map(|_| Vec::new());
            cells.push(Cell { contender: c, rate, runs });
        }
    }
    for i in 0..runs {
        for cell in &mut cells {
            let Ok(argv) = (cell.contender.argv)(tools, cell.rate) else { continue };
            let run = one_run(kit, &argv);
            let line = match &run {
                Ok(r) => format!(
                    "{} exit {} oom_kill {} peak {:.2} of the limit, {:.2} s",
                    r.outcome(),
                    r.exit,
                    r.oom_kills,
                    r.peak as f64 / LIMIT as f64,
                    r.secs
                ),
                Err(e) => format!("harness error: {e}"),
            };
            println!("  run {}/{runs} {} @ {}: {line}", i + 1, cell.contender.id, rate_name(cell.rate));
            match (run, &mut cell.runs) {
                (Ok(r), Ok(v)) => v.push(r),
                (Err(e), slot) => *slot = Err(e),
                (Ok(_), Err(_)) => {}
            }
        }
    }
    cells
}

/// `64 MiB/s`, or `full speed`.
pub fn rate_name(rate: u64) -> String {
    if rate >= super::contenders::FULL_SPEED {
        "full speed".to_owned()
    } else {
        format!("{rate} MiB/s")
    }
}

/// What happened over one run, for the memory-over-time picture: the cgroup's usage every
/// [`TRACE_EVERY`] and the worker's `EVENT ...` lines (`level 0->1`, `shed <bytes>`), each with
/// its seconds since the worker was spawned.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    pub usage: Vec<(f64, u64)>,
    pub events: Vec<(f64, String)>,
}

/// The usage sampling period of a traced run.
const TRACE_EVERY: Duration = Duration::from_millis(2);

/// One worker in a fresh cgroup limited to [`LIMIT`].
fn one_run(kit: &Kit, argv: &[String]) -> Result<Run, String> {
    run_in_cgroup(kit, argv, None)
}

/// [`one_run`] with its [`Trace`] (the worker is asked for its events with `--events`).
pub fn traced_run(kit: &Kit, argv: &[String]) -> Result<(Run, Trace), String> {
    let mut trace = Trace::default();
    let mut argv = argv.to_vec();
    argv.push("--events".into());
    let run = run_in_cgroup(kit, &argv, Some(&mut trace))?;
    Ok((run, trace))
}

fn run_in_cgroup(kit: &Kit, argv: &[String], mut trace: Option<&mut Trace>) -> Result<Run, String> {
    let cg = kit.cgroup("compare");
    cg.set_limit(LIMIT);
    if kit.version == Version::V2 {
        cg.write("memory.swap.max", "0");
    }
    let args: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
    let start = Instant::now();
    let mut child = cg
        .command(&argv[0], &args)
        .stdout(Stdio::piped())
        .stderr(if trace.is_some() { Stdio::piped() } else { Stdio::null() })
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", argv[0]))?;
    // Events are timestamped as they arrive (the worker flushes each line).
    let events = child.stderr.take().map(|err| {
        std::thread::spawn(move || {
            BufReader::new(err)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| l.strip_prefix("EVENT ").map(|e| (start.elapsed().as_secs_f64(), e.to_owned())))
                .collect::<Vec<_>>()
        })
    });
    let usage_file = cg.dir().join(match kit.version {
        Version::V1 => "memory.usage_in_bytes",
        Version::V2 => "memory.current",
    });
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            break Some(st);
        }
        if start.elapsed() > RUN_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        if let Some(t) = trace.as_deref_mut() {
            if let Some(bytes) = std::fs::read_to_string(&usage_file).ok().and_then(|s| s.trim().parse().ok()) {
                t.usage.push((start.elapsed().as_secs_f64(), bytes));
            }
            std::thread::sleep(TRACE_EVERY);
        } else {
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    if let (Some(t), Some(events)) = (trace, events) {
        t.events = events.join().unwrap_or_default();
    }
    let secs = start.elapsed().as_secs_f64();
    let out = reader.join().unwrap_or_default();
    let exit = match status {
        Some(st) => {
            use std::os::unix::process::ExitStatusExt;
            st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0))
        }
        None => 124,
    };
    Ok(Run {
        exit,
        oom_kills: oom_kills(&cg, kit.version),
        peak: peak(&cg, kit.version),
        secs,
        report: out.lines().last().unwrap_or("").chars().take(400).collect(),
        fatal_error: out.contains(JVM_CRASH),
    })
}

fn read(cg: &TestCgroup, file: &str) -> String {
    std::fs::read_to_string(cg.dir().join(file)).unwrap_or_default()
}

fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The kernel's OOM-kill counter of the cgroup.
fn oom_kills(cg: &TestCgroup, v: Version) -> u64 {
    match v {
        Version::V1 => keyed(&read(cg, "memory.oom_control"), "oom_kill"),
        Version::V2 => keyed(&read(cg, "memory.events"), "oom_kill"),
    }
    .unwrap_or(0)
}

/// The cgroup's peak usage (v1 `memory.max_usage_in_bytes`, v2 `memory.peak`).
fn peak(cg: &TestCgroup, v: Version) -> u64 {
    let f = match v {
        Version::V1 => "memory.max_usage_in_bytes",
        Version::V2 => "memory.peak",
    };
    read(cg, f).trim().parse().unwrap_or(0)
}

/// The contenders of the memory-over-time picture: the Python worker under every kind of
/// watchdog (one language, so that only detection differs).
pub const TIMELINE: &[&str] =
    &["py-unguarded", "py-kubelet-like", "py-ray-like", "py-dask-like", "py-memguard-level", "py-memguard-shedder"];

/// One traced run of each [`TIMELINE`] contender `select` keeps, at each rate: the cgroup's
/// usage over time, the worker's level changes and shed points, and how it ended.
pub fn timeline(kit: &Kit, tools: &Tools, rates: &[u64], select: &dyn Fn(&Contender) -> bool) -> Vec<Value> {
    let mut series = Vec::new();
    for &rate in rates {
        for id in TIMELINE {
            let Some(c) = CONTENDERS.iter().find(|c| c.id == *id).filter(|c| select(c)) else { continue };
            let Ok(argv) = (c.argv)(tools, rate) else { continue };
            match traced_run(kit, &argv) {
                Ok((run, trace)) => {
                    println!(
                        "  timeline {id} @ {}: {}, {} usage samples, {} events",
                        rate_name(rate),
                        run.outcome(),
                        trace.usage.len(),
                        trace.events.len()
                    );
                    series.push(json!({
                        "id": id, "rate": rate, "exit": run.exit, "oom_kills": run.oom_kills,
                        "survived": run.survived(), "usage": trace.usage, "events": trace.events,
                    }));
                }
                Err(e) => println!("  timeline {id} @ {}: harness error: {e}", rate_name(rate)),
            }
        }
    }
    series
}

#[cfg(test)]
mod tests {
    use super::Run;

    fn run(exit: i32, oom_kills: u64, fatal_error: bool) -> Run {
        Run { exit, oom_kills, peak: 0, secs: 0.0, report: String::new(), fatal_error }
    }

    #[test]
    fn a_crash_is_neither_a_survival_nor_a_kill() {
        assert_eq!(run(0, 0, false).outcome(), "survived");
        assert_eq!(run(137, 1, false).outcome(), "died");
        assert_eq!(run(134, 0, true).outcome(), "CRASHED"); // HotSpot's hs_err, then abort
        assert_eq!(run(139, 0, false).outcome(), "CRASHED"); // SIGSEGV without an OOM kill
        assert_eq!(run(1, 0, true).outcome(), "CRASHED");
        assert_eq!(run(137, 1, true).outcome(), "died"); // the OOM killer came first
        assert_eq!(run(124, 0, false).outcome(), "died"); // timed out
    }
}
