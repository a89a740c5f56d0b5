//! `memguard watch`: stream events until SIGINT/SIGTERM.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use memguard::watch::{Builder, Event, EventKind};

fn human(ev: &Event) -> String {
    let what = match &ev.kind {
        EventKind::LevelChanged { from, to } => format!("level {from} -> {to}"),
        EventKind::High { count, delta } => format!("memory.high exceeded (+{delta}, total {count})"),
        EventKind::Max { count, delta } => format!("memory.max hit (+{delta}, total {count})"),
        EventKind::Oom { count, delta } => format!("OOM in cgroup (+{delta}, total {count})"),
        EventKind::OomKill { count, delta } => format!("OOM KILL: {delta} process(es) killed (total {count})"),
        EventKind::Psi { stall, scope } => format!("PSI {stall:?} trigger fired ({scope:?})"),
        EventKind::VmPressure { severity } => format!("v1 memory pressure {severity:?}"),
        EventKind::Threshold { direction, threshold_bytes } => {
            format!("usage crossed {} {direction:?}", crate::report::bytes(*threshold_bytes))
        }
        EventKind::LimitChanged { old, new } => format!(
            "limit changed {} -> {}",
            old.map_or("none".into(), crate::report::bytes),
            new.map_or("none".into(), crate::report::bytes)
        ),
        EventKind::CgroupRemoved { cgroup } => format!("cgroup {cgroup} removed"),
        EventKind::WatcherFailed { reason } => format!("WATCHER FAILED: {reason}"),
    };
    let ws = ev.working_set_bytes.map_or_else(|| "?".into(), crate::report::bytes);
    let limit = ev.limit_bytes.map_or_else(|| "none".into(), crate::report::bytes);
    format!(
        "[{:>14.6}] {:<8} {what}  (working set {ws} / limit {limit})",
        ev.monotonic_ns as f64 / 1e9,
        ev.level.as_str()
    )
}

pub fn run(json: bool, pid: Option<u32>, snapshot_every_ms: u64) -> ExitCode {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, Arc::clone(&stop)) {
            eprintln!("memguard: cannot install a signal handler: {e}");
            return ExitCode::FAILURE;
        }
    }
    let mut builder = match Builder::from_env() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("memguard: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(pid) = pid {
        builder = builder.pid(pid);
    }
    let guard = match builder.start() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("memguard: {e}");
            return ExitCode::FAILURE;
        }
    };
    let snap = guard.snapshot();
    if json {
        let header = serde_json::json!({
            "kind": "started",
            "monotonic_ns": snap.monotonic_ns,
            "level": snap.level,
            "limit_bytes": snap.limit_bytes,
            "working_set_bytes": snap.working_set_bytes,
            "sources": guard.sources(),
        });
        println!("{header}");
    } else {
        let limit = snap.limit_bytes.map_or_else(|| "none".into(), crate::report::bytes);
        println!(
            "memguard watch: level {}, working set {} / limit {limit} ({:?})",
            snap.level,
            crate::report::bytes(snap.working_set_bytes),
            snap.limit_source
        );
        for s in guard.sources() {
            let mark = if s.armed { "armed  " } else { "absent " };
            println!("  {mark} {:<22} {}", s.name, s.detail.unwrap_or_default());
        }
    }
    let every = (snapshot_every_ms > 0).then(|| Duration::from_millis(snapshot_every_ms));
    let mut next_snap = every.map(|d| Instant::now() + d);
    while !stop.load(Ordering::Relaxed) {
        if let Some(ev) = guard.next_event(Duration::from_millis(100)) {
            if json {
                match serde_json::to_string(&ev) {
                    Ok(s) => println!("{s}"),
                    Err(e) => eprintln!("memguard: cannot encode event: {e}"),
                }
            } else {
                println!("{}", human(&ev));
            }
        }
        if let (Some(at), Some(every)) = (next_snap, every) {
            if Instant::now() >= at {
                next_snap = Some(at + every);
                let s = guard.snapshot();
                if json {
                    let line = serde_json::json!({"kind": "snapshot", "snapshot": &s});
                    println!("{line}");
                } else {
                    println!(
                        "[{:>14.6}] {:<8} snapshot: working set {} ({:.1}%), interval {:.1} ms",
                        s.monotonic_ns as f64 / 1e9,
                        s.level.as_str(),
                        crate::report::bytes(s.working_set_bytes),
                        s.used_fraction.unwrap_or(0.0) * 100.0,
                        s.sample_interval_ms
                    );
                }
            }
        }
    }
    guard.close();
    ExitCode::SUCCESS
}
