//! `cost-probe`: the Rust probe of `cargo xtask compare`'s per-language cost table. The same
//! scenario as its Python, Java and C twins in `benches/cost/` (see `benches/README.md`):
//!
//! ```text
//! cost-probe SHM_FILE ROUNDS
//! ```
//!
//! Run by xtask inside a test cgroup with a 1 GiB limit. Prints one JSON line of raw figures
//! (xtask summarises them):
//! * RSS and threads before and after starting a guard with one `on_event` callback
//!   (`/proc/self/statm`, `/proc/self/task`);
//! * `try_reserve(4096)` + release, ns per pair: 5 rounds of 5000 after 3 of warm-up, 100 ms
//!   apart;
//! * ROUNDS times, 120 MiB written to SHM_FILE (a tmpfs file: unreclaimable) in 1 MiB writes,
//!   then truncated, against a 128 MiB limit override without PSI: every level change's
//!   (wake, callback) `CLOCK_MONOTONIC` pair and the start of every write and truncation.

use std::fs::{self, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use memguard::{EventKind, Level};
use serde_json::json;

/// Pairs per round: 5000 x 4 KiB = 20 MiB of churn, well within the soft limit's room (released
/// bytes stay counted until the guard's next sample, which a release asks for within 50 ms).
const PAIRS_PER_ROUND: u32 = 5_000;
/// Rounds of `try_reserve` + release: the first 3 warm up (Java's JIT), the last 5 are kept.
const RESERVE_ROUNDS: u32 = 8;

fn rss_bytes() -> u64 {
    let pages: u64 = fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf only reads a constant of the system.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096)
}

fn threads() -> usize {
    fs::read_dir("/proc/self/task").map_or(0, Iterator::count)
}

fn wait_level(guard: &memguard::MemGuard, normal: bool) {
    let end = Instant::now() + Duration::from_secs(5);
    while (guard.level() == Level::Normal) != normal && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [file, rounds] = args.as_slice() else {
        return Err("usage: cost-probe SHM_FILE ROUNDS".into());
    };
    let rounds: usize = rounds.parse().map_err(|e| format!("ROUNDS: {e}"))?;
    let (rss_before, threads_before) = (rss_bytes(), threads());
    let guard = memguard::watch::Builder::new()
        .limit_override(128 << 20)
        .psi(false)
        .start()
        .map_err(|e| format!("start a guard: {e}"))?;
    let events = Arc::new(Mutex::new(Vec::<[u64; 2]>::new()));
    let sink = Arc::clone(&events);
    let _sub = guard.on_event(move |e| {
        let now = memguard::monotonic_ns();
        if matches!(e.kind, EventKind::LevelChanged { .. }) {
            sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push([e.monotonic_ns, now]);
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    let (rss_after, threads_after) = (rss_bytes(), threads());

    let mut reserve_ns = Vec::new();
    for round in 0..RESERVE_ROUNDS {
        std::thread::sleep(Duration::from_millis(100)); // the previous round's bytes settle
        let start = Instant::now();
        for _ in 0..PAIRS_PER_ROUND {
            let r = guard.try_reserve(std::hint::black_box(4096)).map_err(|e| format!("try_reserve refused: {e}"))?;
            drop(std::hint::black_box(r));
        }
        if round >= 3 {
            reserve_ns.push(start.elapsed().as_nanos() as f64 / f64::from(PAIRS_PER_ROUND));
        }
    }

    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(file)
        .map_err(|e| format!("{file}: {e}"))?;
    let chunk = vec![1u8; 1 << 20];
    let mut triggers = Vec::with_capacity(rounds * 121);
    for _ in 0..rounds {
        f.seek(SeekFrom::Start(0)).map_err(|e| format!("seek: {e}"))?;
        for _ in 0..120 {
            triggers.push(memguard::monotonic_ns());
            f.write_all(&chunk).map_err(|e| format!("write: {e}"))?;
        }
        wait_level(&guard, false);
        triggers.push(memguard::monotonic_ns());
        f.set_len(0).map_err(|e| format!("truncate: {e}"))?;
        wait_level(&guard, true);
    }
    std::thread::sleep(Duration::from_millis(200));
    guard.close();
    let _ = fs::remove_file(file);
    let events = events.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let out = json!({
        "events": events, "triggers": triggers, "reserve_ns": reserve_ns,
        "rss_before": rss_before, "rss_after": rss_after,
        "threads_before": threads_before, "threads_after": threads_after,
    });
    println!("{out}");
    Ok(())
}
