//! The soft-limit budget on the real kernel, identical on cgroup v1 (native) and v2 (VM): a guard
//! watching a cgroup where a `memguard alloc` process holds memory grants reservations only
//! while they fit the room the kernel's own numbers leave.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use memguard::{Level, MemGuard};

use super::cgroup::Kit;
use super::scenarios::wait_until_in;
use super::Killed;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const BIN: &str = env!("CARGO_BIN_EXE_memguard");

/// Issue #9. A process holds 600 MiB in a cgroup limited to 1 GiB; the guard's soft limit is
/// 0.85 of it (870.4 MiB). Eight 100 MiB reservations, taken before allocating: exactly two are
/// granted (600 + 100 + 100 = 800 <= 870.4 < 900), and the six refusals say what is left:
/// `soft limit - usage - 200 MiB`.
pub fn budget_grants_only_the_room_left(kit: &Kit) {
    let cg = kit.cgroup("budget");
    cg.set_limit(GIB);
    let mut alloc = Killed(
        cg.command(BIN, &["alloc", "--rate", "1G", "--to", "600M"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn alloc"),
    );
    wait_until_in(alloc.0.id(), &cg);
    // One JSON line once the 600 MiB are allocated and touched; the process then holds them.
    let mut line = String::new();
    BufReader::new(alloc.0.stdout.take().expect("stdout")).read_line(&mut line).expect("read alloc's report");
    assert!(line.contains("\"allocated_bytes\":629145600"), "alloc did not reach 600 MiB: {line:?}");
    let guard = MemGuard::builder().pid(alloc.0.id()).start().expect("start guard");
    assert_eq!(guard.limits().limit_bytes, Some(GIB), "{:#?}", guard.limits());
    let soft = guard.budget().soft_limit();
    assert_eq!(soft, (GIB as f64 * 0.85) as u64, "default soft limit: 0.85 of the limit");

    // Wait until the guard's snapshot shows the 600 MiB (a sample after they were touched).
    let deadline = Instant::now() + Duration::from_secs(30);
    let usage = loop {
        let b = guard.snapshot().budget.expect("budget stats");
        if b.usage_bytes >= 600 * MIB {
            break b.usage_bytes;
        }
        assert!(Instant::now() < deadline, "the guard never saw 600 MiB: {b:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(usage < 640 * MIB, "600 MiB and a process's overhead, got {} MiB", usage >> 20);
    assert_eq!(guard.level(), Level::Normal);

    let results: Vec<_> = (0..8).map(|_| guard.try_reserve(100 * MIB)).collect();
    let after = guard.budget().usage();
    assert_eq!(after, usage, "the held memory is steady: the usage did not move between samples");
    let granted: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(granted.len(), 2, "exactly two of eight 100 MiB reservations fit: {results:#?}");
    assert!(results[0].is_ok() && results[1].is_ok(), "{results:#?}");
    let room = soft - usage - 200 * MIB;
    for r in &results[2..] {
        let e = r.as_ref().expect_err("refused");
        assert_eq!(
            (e.requested, e.available, e.soft_limit, e.level, e.scope.as_deref()),
            (100 * MIB, room, soft, Level::Normal, None),
            "{e}"
        );
    }
    let stats = guard.snapshot().budget.expect("budget stats");
    assert_eq!((stats.granted, stats.refused, stats.outstanding_bytes), (2, 6, 200 * MIB), "{stats:?}");
    println!(
        "budget: usage {:.1} MiB, soft limit {:.1} MiB: 2 of 8 granted, {:.1} MiB left",
        usage as f64 / MIB as f64,
        soft as f64 / MIB as f64,
        room as f64 / MIB as f64
    );
    drop(results);
}
