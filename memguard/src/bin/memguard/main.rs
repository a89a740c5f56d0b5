//! `memguard`: report the memory limits and usage of the current container.

mod alloc;
mod report;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// memguard — the real memory limit of this container, and how close the process is to it.
///
/// Finds the effective cgroup memory limit (the lowest up the hierarchy, cgroup v1, v2 or
/// hybrid), the cgroup that sets it, and the working set (usage minus inactive file cache)
/// the OOM killer effectively compares with it.
#[derive(Debug, Parser)]
#[command(name = "memguard", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the limits and usage that apply to this process (or to --pid).
    ///
    /// Exits 0 with a report even outside any container; exits 1 with a one-line error only
    /// when /proc itself (or the process asked for) cannot be read.
    Status {
        /// Print one JSON object instead of the human-readable report.
        #[arg(long)]
        json: bool,
        /// Report on this process instead of memguard itself.
        #[arg(long, value_name = "PID")]
        pid: Option<u32>,
        /// Read /proc and /sys/fs/cgroup under this directory (default: $MEMGUARD_ROOT, else /).
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
        /// Print the Prometheus text format (memguard_* metrics) instead of the report.
        #[arg(long, conflicts_with = "json")]
        prometheus: bool,
        /// Create real PSI triggers to test them (default: only check that the pressure files
        /// open for writing; releasing a trigger costs the kernel 10-20 ms).
        #[arg(long)]
        probe: bool,
    },
    /// Stream level changes and kernel events until SIGINT or SIGTERM.
    ///
    /// Arms every event source available here (listed first), then prints one line per event.
    /// Thresholds and other settings come from the MEMGUARD_* environment variables
    /// (MEMGUARD_WARN, MEMGUARD_CRITICAL, MEMGUARD_EVICTION_THRESHOLD, MEMGUARD_MAX_RATE, MEMGUARD_PSI).
    Watch {
        /// One JSON object per line (with a CLOCK_MONOTONIC timestamp `monotonic_ns`).
        #[arg(long)]
        json: bool,
        /// Guard the cgroup of this process instead of memguard's own.
        #[arg(long, value_name = "PID")]
        pid: Option<u32>,
        /// Also print a snapshot line at this interval (milliseconds), 0 = never.
        #[arg(long, value_name = "MS", default_value_t = 0)]
        snapshot_every: u64,
    },
    /// Allocate and touch memory at a set rate, then hold it — to see memguard (and your
    /// alerts) react in this container before the OOM killer does. Prints one JSON line with
    /// the achieved rate when the target is reached.
    Alloc {
        /// Allocation rate, bytes per second (binary units: 512M, 1G).
        #[arg(long, default_value = "1G")]
        rate: String,
        /// How much to allocate: a size (512M) or a percentage of the effective limit (90%).
        #[arg(long)]
        to: String,
        /// Allocation unit.
        #[arg(long, default_value = "1M")]
        chunk: String,
        /// Wait this many milliseconds before starting.
        #[arg(long, value_name = "MS", default_value_t = 0)]
        after_ms: u64,
        /// Hold the memory this many seconds, then exit (default: until killed).
        #[arg(long, value_name = "SECS")]
        hold: Option<u64>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Watch { json, pid, snapshot_every } => watch::run(json, pid, snapshot_every),
        Command::Alloc { rate, to, chunk, after_ms, hold } => alloc::run(&rate, &to, &chunk, after_ms, hold),
        Command::Status { json, pid, root, probe, prometheus } => {
            let mut detector = memguard::Detector::from_env();
            if let Some(root) = root {
                detector = detector.with_root(root);
            }
            if let Some(pid) = pid {
                detector = detector.with_pid(pid);
            }
            let status = match detector.status_with(probe) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("memguard: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let out = if prometheus {
                report::prometheus(&status)
            } else if json {
                match serde_json::to_string_pretty(&status) {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("memguard: cannot encode the report as JSON: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                report::human(&status, pid)
            };
            println!("{out}");
            ExitCode::SUCCESS
        }
    }
}
