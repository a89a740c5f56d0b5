//! Rust reference for the Java `ListenerLatency` (run both with `memguard-jni/jmh/run.sh`): the
//! same scenario — the process in a test cgroup with a 1 GiB limit, a guard with a 128 MiB
//! override and no PSI, 120 MiB written to a tmpfs file then truncated, N times — with the same
//! measure taken in a Rust `on_event` callback on memguard's dispatcher thread: from
//! `Event::monotonic_ns` (the reactor's wake-up) to the callback's first statement. The Java
//! figure adds the binding: the listener feed, the Java listener thread and JSON decoding. A
//! second measure, `rust via a thread`, forwards each event from the callback over a channel to
//! a waiting Rust thread, as the binding's feed does to the Java listener thread: the cost of
//! that one extra thread hop alone, without the JVM.
//! Needs root. `cargo bench -p memguard-jni --bench listener_latency -- [N]`.

use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use memguard::{EventKind, Level};

fn own_cgroup(controller: &str) -> String {
    let text = fs::read_to_string("/proc/self/cgroup").expect("/proc/self/cgroup");
    text.lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (id, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            let hit = if controller == "0::" {
                id == "0" && ctrls.is_empty()
            } else {
                ctrls.split(',').any(|c| c == controller)
            };
            hit.then(|| path.trim_start_matches('/').to_owned())
        })
        .expect("own cgroup")
}

fn wait_level(guard: &memguard::MemGuard, level: Level, equal: bool) {
    let end = Instant::now() + Duration::from_secs(5);
    while (guard.level() == level) != equal && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[allow(clippy::cast_precision_loss)]
fn pct(sorted: &[u64], p: f64) -> f64 {
    let i = ((p * (sorted.len() - 1) as f64).round() as usize).min(sorted.len() - 1);
    sorted[i] as f64 / 1e3
}

fn main() {
    let rounds: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(200);
    let pid = std::process::id().to_string();
    let vm = std::env::var("MEMGUARD_VM_CGROUP").ok().filter(|v| !v.is_empty());
    let (base, home) = match &vm {
        Some(v) => (PathBuf::from(v), Path::new("/sys/fs/cgroup").join(own_cgroup("0::"))),
        None => {
            let b = Path::new("/sys/fs/cgroup/memory").join(own_cgroup("memory"));
            (b.clone(), b)
        }
    };
    let cg = base.join(format!("memguard-bench-latency-rust-{pid}"));
    fs::create_dir_all(&cg).expect("create the test cgroup");
    let limit_file = if vm.is_some() { "memory.max" } else { "memory.limit_in_bytes" };
    fs::write(cg.join(limit_file), (1u64 << 30).to_string()).expect("limit");
    fs::write(cg.join("cgroup.procs"), &pid).expect("enter the test cgroup");

    let latencies = Arc::new(Mutex::new(Vec::with_capacity(4 * rounds)));
    let hopped = Arc::new(Mutex::new(Vec::with_capacity(4 * rounds)));
    let (tx, rx) = crossbeam_channel::bounded::<u64>(1024);
    let sink2 = Arc::clone(&hopped);
    let receiver = std::thread::spawn(move || {
        while let Ok(at) = rx.recv() {
            let now = memguard::monotonic_ns();
            sink2.lock().expect("lock").push(now.saturating_sub(at));
        }
    });
    let file = PathBuf::from(format!("/dev/shm/memguard-latency-rust-{pid}.bin"));
    {
        let guard =
            memguard::watch::Builder::new().limit_override(128 << 20).psi(false).start().expect("start a guard");
        let sink = Arc::clone(&latencies);
        let _sub = guard.on_event(move |e| {
            let now = memguard::monotonic_ns();
            if matches!(e.kind, EventKind::LevelChanged { .. }) {
                sink.lock().expect("lock").push(now.saturating_sub(e.monotonic_ns));
                let _ = tx.try_send(e.monotonic_ns);
            }
        });
        let mut f =
            fs::OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&file).expect("tmpfs");
        let chunk = vec![0u8; 4 << 20];
        for _ in 0..rounds {
            f.seek(SeekFrom::Start(0)).expect("seek");
            for _ in 0..30 {
                f.write_all(&chunk).expect("write"); // 120 MiB: above the critical threshold
            }
            wait_level(&guard, Level::Normal, false);
            f.set_len(0).expect("truncate");
            wait_level(&guard, Level::Normal, true);
        }
        std::thread::sleep(Duration::from_millis(200));
    } // the guard and its callback (the channel's sender) are dropped: the receiver ends
    receiver.join().expect("receiver");
    let _ = fs::remove_file(&file);
    let _ = fs::write(home.join("cgroup.procs"), &pid);
    for _ in 0..50 {
        if fs::remove_dir(&cg).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for (label, samples) in [("rust on_event", &latencies), ("rust via a thread", &hopped)] {
        let mut l = samples.lock().expect("lock").clone();
        l.sort_unstable();
        if l.is_empty() {
            println!("{label}: no level change observed");
            continue;
        }
        println!(
            "{label}: event-to-callback latency over {} level changes: p50 {:.1} us, p90 {:.1} us, p99 {:.1} us, max {:.1} us",
            l.len(),
            pct(&l, 0.50),
            pct(&l, 0.90),
            pct(&l, 0.99),
            l[l.len() - 1] as f64 / 1e3
        );
    }
}
