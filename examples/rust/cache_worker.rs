//! A worker with an in-memory cache that grows with every request — the classic way a service
//! walks into its container's memory limit.
//!
//! ```text
//! cache-worker [--guard | --on-level] [--total 600M] [--rate 100M] [--entry 1M] [--warm 0]
//! ```
//!
//! Without `--guard` it caches every response until the OOM killer ends it (exit 137). With
//! `--guard` it runs a [`memguard::MemGuard`]:
//! * the cache is registered as a shedder: on entering Warning (and again on Critical)
//!   memguard asks it for the bytes needed to get back under the warning threshold, and it
//!   evicts its oldest entries;
//! * every request first reserves its response size from the soft-limit budget; a refusal
//!   (at Critical, or when the budget is spent) rejects the request instead of allocating.
//!
//! With `--on-level` it runs memguard with an `on_level` callback instead (no shedder, no
//! budget): a rising level evicts the oldest half of the cache, and while the level is Warning
//! or above the cache replaces entries instead of growing.
//!
//! It prints one JSON line when done: requests served and rejected, bytes cached and evicted.
//! Run it in a limited cgroup, for example (cgroup v2):
//!
//! ```text
//! mkdir /sys/fs/cgroup/demo && echo 200M > /sys/fs/cgroup/demo/memory.max
//! sh -c 'echo $$ > /sys/fs/cgroup/demo/cgroup.procs; exec cache-worker --total 600M'          # killed
//! sh -c 'echo $$ > /sys/fs/cgroup/demo/cgroup.procs; exec cache-worker --total 600M --guard'  # survives
//! ```

use std::collections::{HashMap, VecDeque};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// An insertion-ordered cache (oldest evicted first).
#[derive(Default)]
struct Cache {
    entries: HashMap<u64, Vec<u8>>,
    order: VecDeque<u64>,
    bytes: u64,
    evicted: u64,
}

impl Cache {
    fn insert(&mut self, key: u64, value: Vec<u8>) {
        self.bytes += value.len() as u64;
        self.entries.insert(key, value);
        self.order.push_back(key);
    }

    /// Evict oldest entries until `target` bytes are freed (or the cache is empty).
    fn evict(&mut self, target: u64) -> u64 {
        let mut freed = 0;
        while freed < target {
            let Some(key) = self.order.pop_front() else { break };
            if let Some(v) = self.entries.remove(&key) {
                freed += v.len() as u64;
            }
        }
        self.bytes -= freed;
        self.evicted += freed;
        freed
    }
}

struct Args {
    guard: bool,
    on_level: bool,
    total: u64,
    rate: u64,
    entry: usize,
    /// The first `warm` bytes are cached without pause (a cache already warm when the service
    /// starts growing); `rate` applies after them.
    warm: u64,
}

fn size(s: &str) -> Result<u64, String> {
    let (n, m) = match s.chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 1 << 10),
        Some('M' | 'm') => (&s[..s.len() - 1], 1 << 20),
        Some('G' | 'g') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    n.parse::<u64>().map(|v| v * m).map_err(|_| format!("not a size: {s:?} (use 512M, 1G, ...)"))
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args { guard: false, on_level: false, total: 600 << 20, rate: 100 << 20, entry: 1 << 20, warm: 0 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--guard" => a.guard = true,
            "--on-level" => (a.guard, a.on_level) = (true, true),
            "--total" => a.total = size(&value()?)?,
            "--rate" => a.rate = size(&value()?)?.max(1),
            "--entry" => a.entry = usize::try_from(size(&value()?)?.max(1)).map_err(|e| e.to_string())?,
            "--warm" => a.warm = size(&value()?)?,
            "-h" | "--help" => {
                return Err(
                    "usage: cache-worker [--guard | --on-level] [--total 600M] [--rate 100M] [--entry 1M] [--warm 0]"
                        .into(),
                )
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let cache = Arc::new(Mutex::new(Cache::default()));
    let guard = if args.guard {
        let guard = match memguard::MemGuard::start() {
            Ok(g) => g,
            Err(e) => {
                eprintln!("cache-worker: cannot start memguard: {e}");
                return ExitCode::FAILURE;
            }
        };
        let c = Arc::clone(&cache);
        // Kept for the guard's whole life (dropping the subscription would unregister it).
        if args.on_level {
            let entry = args.entry as u64;
            guard
                .on_level(move |change, _| {
                    if change.to > change.from {
                        let mut c = c.lock().unwrap_or_else(PoisonError::into_inner);
                        let half = (c.bytes / 2).max(entry);
                        c.evict(half);
                    }
                })
                .detach();
        } else {
            guard
                .register_shedder("response-cache", 0, move |target| {
                    c.lock().unwrap_or_else(PoisonError::into_inner).evict(target)
                })
                .detach();
        }
        Some(guard)
    } else {
        None
    };

    let requests = args.total / args.entry as u64;
    let (mut served, mut rejected) = (0u64, 0u64);
    let start = Instant::now();
    let mut paced_from = start;
    for key in 0..requests {
        if args.on_level && guard.as_ref().is_some_and(|g| g.level() >= memguard::Level::Warning) {
            // Under pressure the cache replaces entries instead of growing.
            cache.lock().unwrap_or_else(PoisonError::into_inner).evict(args.entry as u64);
        }
        // Admission control (the shedder style): reserve the response before building it.
        let reservation = match guard.as_ref().filter(|_| !args.on_level) {
            Some(g) => match g.try_reserve(args.entry as u64) {
                Ok(r) => Some(r),
                Err(_) => {
                    rejected += 1;
                    pace(&mut paced_from, (key + 1) * args.entry as u64, &args);
                    continue;
                }
            },
            None => None,
        };
        let response = vec![(key % 251) as u8 + 1; args.entry]; // touches every page
        cache.lock().unwrap_or_else(PoisonError::into_inner).insert(key, response);
        drop(reservation); // the bytes are now in the cache, hence in the measured usage
        served += 1;
        pace(&mut paced_from, (key + 1) * args.entry as u64, &args);
    }
    let c = cache.lock().unwrap_or_else(PoisonError::into_inner);
    let (shed_runs, level) = guard.as_ref().map_or((0, "none".to_owned()), |g| {
        let s = g.snapshot();
        (s.shed.map_or(0, |x| x.runs), s.level.as_str().to_owned())
    });
    println!(
        "{{\"served\":{served},\"rejected\":{rejected},\"cached_bytes\":{},\"evicted_bytes\":{},\"shed_runs\":{shed_runs},\"level\":\"{level}\",\"seconds\":{:.3}}}",
        c.bytes,
        c.evicted,
        start.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}

/// Keep to `rate` bytes per second once `done` bytes are past the warm part; `paced_from` is
/// when the warm part ended.
fn pace(paced_from: &mut Instant, done: u64, args: &Args) {
    if done <= args.warm {
        *paced_from = Instant::now();
        return;
    }
    #[allow(clippy::cast_precision_loss)]
    let due = Duration::from_secs_f64((done - args.warm) as f64 / args.rate as f64);
    if let Some(wait) = due.checked_sub(paced_from.elapsed()) {
        std::thread::sleep(wait);
    }
}
