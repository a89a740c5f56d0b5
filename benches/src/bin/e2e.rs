//! `memguard-e2e`: end-to-end figures of memguard on the running kernel — notification →
//! callback latency per event source, and the watcher's idle CPU cost. Needs root (it creates
//! cgroups and moves itself into them). See `benches/README.md`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use memguard_benches::e2e::cgroup::{Hierarchy, Version, Workspace};
use memguard_benches::e2e::idle::{self, CliIdleResult, IdleResult};
use memguard_benches::e2e::latency::{self, SourceResult};
use memguard_benches::e2e::soak;
use memguard_benches::e2e::stats::Summary;
use memguard_benches::e2e::{Environment, MIB};
use serde::Serialize;

#[derive(Parser, Debug)]
#[command(name = "memguard-e2e", version, about = "memguard end-to-end latency and idle-cost harness (root)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Print one JSON object with every figure on stdout (the tables then go to stderr).
    #[arg(long, global = true)]
    json: bool,
    /// Repetitions for the cgroup sources (v1 threshold, v2 memory.events).
    #[arg(long, global = true, default_value_t = 200)]
    iterations: usize,
    /// Repetitions for PSI (each waits for a quiet PSI window: seconds apiece).
    #[arg(long, global = true, default_value_t = 30)]
    psi_iterations: usize,
    /// MiB touched to cross a boundary.
    #[arg(long, global = true, default_value_t = 3)]
    crossing_mib: u64,
    /// KiB below the boundary where usage is parked before crossing (at most half the crossing).
    #[arg(long, global = true, default_value_t = 1024)]
    distance_kib: u64,
    /// Pause before each crossing, ms.
    #[arg(long, global = true, default_value_t = 150)]
    gap_ms: u64,
    /// Idle measurement, seconds.
    #[arg(long, global = true, default_value_t = 60)]
    idle_secs: u64,
    /// Directory for the v1 PSI stall generator's scratch file (up to 256 MiB; a real disk).
    #[arg(long, global = true)]
    scratch_dir: Option<PathBuf>,
    /// The `memguard` CLI whose `watch` idle cost is measured (default: `memguard` next to
    /// this binary, i.e. `target/release/memguard`).
    #[arg(long, global = true, value_name = "PATH")]
    memguard_bin: Option<PathBuf>,
    /// Soak duration, seconds.
    #[arg(long, global = true, default_value_t = 120)]
    soak_secs: u64,
    /// Soak: exit non-zero when a problem is listed.
    #[arg(long, global = true)]
    check: bool,
}

#[derive(Subcommand, Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    /// Notification → callback latency for every source this kernel offers.
    Latency,
    /// The watcher's CPU use while idle: in process, and the `memguard watch` CLI per thread.
    Idle,
    /// Both.
    All,
    /// A long run oscillating between Normal and Critical (`--soak-secs`): footprint, budget
    /// and event counts must stay flat and exact (`--check` fails on a problem).
    Soak,
}

/// A measurement that could not be taken.
#[derive(Debug, Serialize)]
struct Failure {
    measurement: String,
    error: String,
}

#[derive(Debug, Serialize)]
struct Report {
    environment: Environment,
    latency: Vec<SourceResult>,
    idle: Option<IdleResult>,
    idle_cli: Option<CliIdleResult>,
    soak: Option<soak::SoakResult>,
    failures: Vec<Failure>,
}

fn options(cli: &Cli) -> latency::Options {
    let crossing = cli.crossing_mib.max(1) * MIB;
    latency::Options {
        iterations: cli.iterations,
        psi_iterations: cli.psi_iterations,
        crossing,
        distance: (cli.distance_kib << 10).clamp(4 << 10, crossing / 2),
        gap: Duration::from_millis(cli.gap_ms),
        scratch_dir: cli.scratch_dir.clone().unwrap_or_else(std::env::temp_dir),
    }
}

type Measure = fn(&Workspace, &latency::Options) -> memguard_benches::e2e::Result<Vec<SourceResult>>;

fn measure(ws: &Workspace, cli: &Cli, report: &mut Report) {
    let o = options(cli);
    if matches!(cli.command, Command::Latency | Command::All) {
        let sources: [(&str, Measure); 2] = match ws.hierarchy.version {
            Version::V1 => [("v1-threshold", latency::v1_threshold), ("psi", latency::psi)],
            Version::V2 => [("v2-memory-events-high", latency::v2_high), ("psi", latency::psi)],
        };
        for (name, f) in sources {
            progress(&format!("latency: {name} ..."));
            match f(ws, &o) {
                Ok(rs) => {
                    for r in &rs {
                        if r.measured == 0 {
                            report.failures.push(Failure {
                                measurement: r.source.clone(),
                                error: format!("no callback in {} repetitions", r.requested),
                            });
                        }
                    }
                    report.latency.extend(rs);
                }
                Err(e) => report.failures.push(Failure { measurement: name.into(), error: e.to_string() }),
            }
        }
    }
    if cli.command == Command::Soak {
        progress(&format!("soak: {} s ...", cli.soak_secs));
        let o = soak::Options { duration: Duration::from_secs(cli.soak_secs), ..soak::Options::default() };
        match soak::run(ws, &o) {
            Ok(r) => report.soak = Some(r),
            Err(e) => report.failures.push(Failure { measurement: "soak".into(), error: e.to_string() }),
        }
    }
    if matches!(cli.command, Command::Idle | Command::All) {
        progress(&format!("idle: {} s ...", cli.idle_secs));
        match idle::run(ws, Duration::from_secs(cli.idle_secs)) {
            Ok(r) => report.idle = Some(r),
            Err(e) => report.failures.push(Failure { measurement: "idle".into(), error: e.to_string() }),
        }
        let bin = cli.memguard_bin.clone().unwrap_or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|p| p.parent().map(|d| d.join("memguard")))
                .unwrap_or_else(|| PathBuf::from("memguard"))
        });
        progress(&format!("idle: `{} watch`, {} s ...", bin.display(), cli.idle_secs));
        match idle::cli_watch(ws, Duration::from_secs(cli.idle_secs), &bin) {
            Ok(r) => report.idle_cli = Some(r),
            Err(e) => report.failures.push(Failure { measurement: "idle-cli".into(), error: e.to_string() }),
        }
    }
}

fn progress(what: &str) {
    eprintln!("memguard-e2e: {what}");
}

/// `writeln!` into a `String` (which cannot fail).
macro_rules! outln {
    ($out:expr, $($t:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($out, $($t)*);
    }};
}

fn ms(us: f64) -> String {
    format!("{:.3}", us / 1000.0)
}

fn row(out: &mut String, source: &str, what: &str, s: Option<&Summary>) {
    match s {
        Some(s) => outln!(
            out,
            "{source:<24} {what:<22} {:>5} {:>9} {:>9} {:>9} {:>9}",
            s.n,
            ms(s.p50_us),
            ms(s.p90_us),
            ms(s.p99_us),
            ms(s.max_us)
        ),
        None => outln!(out, "{source:<24} {what:<22} {:>5} {:>9}", 0, "-"),
    }
}

fn table(r: &Report) -> String {
    let mut out = String::new();
    let o = &mut out;
    let e = &r.environment;
    let place = if e.in_vm { "cgroup v2 VM (TCG emulation: figures are an upper bound)" } else { "native" };
    outln!(
        o,
        "memguard-e2e {} — kernel {}, cgroup {}, {place}, {} CPU(s), cgroups under {}",
        e.memguard,
        e.kernel,
        e.cgroup,
        e.cpus,
        e.base_cgroup
    );
    if !r.latency.is_empty() {
        outln!(o, "\nlatency, kernel notification -> on_event callback (ms)");
        outln!(o, "{:<24} {:<22} {:>5} {:>9} {:>9} {:>9} {:>9}", "source", "from", "n", "p50", "p90", "p99", "max");
        for s in &r.latency {
            row(o, &s.source, "trigger->callback", s.trigger_to_callback.as_ref());
            row(o, "", "wake->callback", s.wake_to_callback.as_ref());
            row(o, "", "  read sources", s.breakdown.read.as_ref());
            row(o, "", "  sample + level", s.breakdown.sample.as_ref());
            row(o, "", "  publish", s.breakdown.publish.as_ref());
            row(o, "", "  hand-over", s.breakdown.hand_over.as_ref());
            if s.stall_start_to_callback.is_some() {
                row(o, "", "stall start->callback", s.stall_start_to_callback.as_ref());
            }
            if s.crossing_duration.is_some() {
                row(o, "", "(crossing alloc took)", s.crossing_duration.as_ref());
            }
        }
        for s in &r.latency {
            outln!(o, "\n{}: {}", s.source, s.description);
            outln!(o, "  measured {}/{} (missed {})", s.measured, s.requested, s.missed);
            let names: Vec<&str> = s.armed.iter().filter_map(|a| a.split(':').next()).collect();
            outln!(o, "  armed: {}", names.join(", "));
            for n in &s.notes {
                outln!(o, "  note: {n}");
            }
        }
    }
    if let Some(i) = &r.idle {
        outln!(
            o,
            "\nidle {:.1} s, limit {} MiB, usage {:.1} -> {:.1} MiB:",
            i.seconds,
            i.limit_bytes / MIB,
            i.usage_bytes[0] as f64 / MIB as f64,
            i.usage_bytes[1] as f64 / MIB as f64
        );
        outln!(
            o,
            "  reactor {:.2} ms + dispatcher {:.2} ms CPU = {:.4}% of one core ({:.3}% from /proc ticks)",
            i.reactor_cpu_ms,
            i.dispatcher_cpu_ms,
            i.percent_of_one_core,
            i.percent_of_one_core_ticks
        );
        outln!(
            o,
            "  {} samples ({:.0} us of CPU each; interval {:.0} ms at the end), {} events",
            i.samples,
            i.cpu_per_sample_us,
            i.sample_interval_ms,
            i.events
        );
        let names: Vec<&str> = i.armed.iter().filter_map(|a| a.split(':').next()).collect();
        outln!(o, "  armed: {}", names.join(", "));
    }
    if let Some(c) = &r.idle_cli {
        outln!(
            o,
            "\nidle `{} watch` {:.1} s, limit {} MiB: {:.4}% of one core (per thread, /proc/<pid>/task/*/schedstat; exit {:.1} ms after SIGTERM)",
            c.binary,
            c.seconds,
            c.limit_bytes / MIB,
            c.percent_of_one_core,
            c.exit_after_sigterm_ms
        );
        for t in &c.threads {
            outln!(
                o,
                "  {:<16} tid {:<8} {:>8.3} ms CPU = {:.4}% of one core, {} wake-ups",
                t.name,
                t.tid,
                t.cpu_ms,
                t.percent_of_one_core,
                t.wakeups
            );
        }
    }
    if let Some(s) = &r.soak {
        soak_table(o, s);
    }
    for f in &r.failures {
        outln!(o, "\nNOT MEASURED {}: {}", f.measurement, f.error);
    }
    out
}

fn soak_table(o: &mut String, s: &soak::SoakResult) {
    outln!(o, "\nsoak, cgroup {}: {:.0} s, {} cycles Normal -> Critical -> Normal", s.cgroup, s.seconds, s.cycles);
    outln!(o, "{:<10} {:>9} {:>12} {:>6} {:>8} {:>12}", "", "at (s)", "RSS (KiB)", "fds", "threads", "held (KiB)");
    for (what, f) in [("start", &s.start), ("end", &s.end)] {
        outln!(
            o,
            "{what:<10} {:>9.1} {:>12} {:>6} {:>8} {:>12}",
            f.at_seconds,
            f.rss_bytes >> 10,
            f.fds,
            f.threads,
            f.held_bytes >> 10
        );
    }
    outln!(o, "RSS growth beyond the harness's own memory: {} KiB", s.rss_growth_bytes / 1024);
    outln!(
        o,
        "level changes {} ({} to Critical); shedder runs {} ({} MiB freed)",
        s.level_changes,
        s.critical_entries,
        s.shed_runs,
        s.shed_freed_bytes / MIB
    );
    outln!(
        o,
        "reservations granted {}, refused {}; after release: outstanding {}, settling {}",
        s.reservations_granted,
        s.reservations_refused,
        s.outstanding_after,
        s.settling_after
    );
    outln!(
        o,
        "events received {:?}; guard's counts {:?}; dropped {}",
        s.events_received,
        s.events_total,
        s.callback_events_dropped
    );
    if let (Some(h), Some(m)) = (s.kernel_high_delta, s.kernel_max_delta) {
        outln!(
            o,
            "memory.events since start: high {} carried / {} kernel, max {} carried / {} kernel",
            h.0,
            h.1,
            m.0,
            m.1
        );
    }
    if s.problems.is_empty() {
        outln!(o, "soak: no problem");
    }
    for p in &s.problems {
        outln!(o, "SOAK PROBLEM: {p}");
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let hierarchy = match Hierarchy::discover() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("memguard-e2e: {e}");
            return ExitCode::FAILURE;
        }
    };
    let environment = Environment::describe(&hierarchy);
    let ws = match Workspace::create(hierarchy) {
        Ok(ws) => ws,
        Err(e) => {
            eprintln!("memguard-e2e: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut report =
        Report { environment, latency: Vec::new(), idle: None, idle_cli: None, soak: None, failures: Vec::new() };
    measure(&ws, &cli, &mut report);
    drop(ws);
    if cli.json {
        eprint!("{}", table(&report));
        match serde_json::to_string(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("memguard-e2e: JSON: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print!("{}", table(&report));
    }
    let soak_failed = cli.check && report.soak.as_ref().is_some_and(|s| !s.problems.is_empty());
    if report.failures.is_empty() && !soak_failed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
