//! `memguard`: report the memory limits and usage of the current container.

mod alloc;
mod output;
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
    /// Reports the effective limit (the lowest up the cgroup hierarchy, or MEMGUARD_LIMIT when
    /// lower), whether a limit may be hidden or is unknown (a limit file that cannot be read),
    /// usage and working set, the level the configured thresholds give, and the event sources
    /// the watcher would arm. Honours every MEMGUARD_* variable the library reads (listed
    /// below); --root and --pid win over MEMGUARD_ROOT and MEMGUARD_PID.
    ///
    /// Exit status: 0 with a report, even outside any container (and when the reader of
    /// stdout goes away); 1 with a one-line error when /proc itself (or the --pid asked for)
    /// cannot be read; 2 when a MEMGUARD_* variable or an option is invalid.
    #[command(after_long_help = output::env_help())]
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
    /// Thresholds and every other setting come from the MEMGUARD_* variables (listed below).
    /// Idle, it sleeps in the kernel: a signal, an event or the next --snapshot-every line
    /// wakes it. Exit status: 0 after SIGINT/SIGTERM (or when the reader of stdout goes away),
    /// 1 when the guard cannot start, 2 when a MEMGUARD_* variable is invalid.
    #[command(after_long_help = output::env_help())]
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
        Command::Status { json, pid, root, probe, prometheus } => status(json, prometheus, pid, root, probe),
    }
}

/// `memguard status`: configured like the library (`MEMGUARD_*`), `--root` and `--pid` win.
fn status(json: bool, prometheus: bool, pid: Option<u32>, root: Option<PathBuf>, probe: bool) -> ExitCode {
    let config = memguard::watch::Builder::from_env().and_then(|mut b| {
        if let Some(root) = root {
            b = b.root(root);
        }
        if let Some(pid) = pid {
            b = b.pid(pid);
        }
        b.config()
    });
    let status = config.and_then(|c| memguard::Status::gather(&c.detector(), &c, probe).map(|s| (s, c.pid())));
    let (status, pid) = match status {
        Ok(s) => s,
        Err(e) => return output::failed(&e),
    };
    let text = if prometheus {
        memguard::render::status_prometheus(&status)
    } else if json {
        memguard::render::status_json(&status)
    } else {
        memguard::render::status_text(&status, pid)
    };
    output::finish(output::line(&mut std::io::stdout().lock(), &text))
}
