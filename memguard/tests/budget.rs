//! The soft-limit budget under concurrency: accounting returns to exactly zero, sub-budget caps
//! hold, per-thread stocks refuse early by a bounded amount and never late, levels, usage and
//! settling bytes gate reservations.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use memguard::budget::{Budget, Reservation, STOCK_CAP_BYTES};
use memguard::Level;

const THREADS: usize = 8;
const OPS: usize = 100_000;

/// A tiny deterministic PRNG (xorshift64*), one per thread.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Many threads × many operations (borrowed and owned reservations, sub-budget, forced, resize,
/// release on other threads, usage samples): afterwards `outstanding()` is exactly the live
/// reservations, and once every thread has exited and a sample has come, nothing is left
/// charged — the stocks went back, the settling bytes were cleared.
#[test]
fn concurrent_reserve_drop_resize_returns_to_zero() {
    let budget = Budget::new(1 << 20);
    let sub = budget.sub_budget("cache", 256 << 10);
    let barrier = Barrier::new(THREADS + 1);
    let mut leftovers: Vec<Reservation<'_>> = thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (budget, sub, barrier) = (&budget, &sub, &barrier);
                s.spawn(move || {
                    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (t as u64 + 1));
                    let mut held: Vec<Reservation<'_>> = Vec::new();
                    let mut foreign: Vec<Reservation<'_>> = Vec::new();
                    barrier.wait();
                    for i in 0..OPS {
                        let r = rng.next();
                        // Mostly stock-sized requests, some larger than a stock.
                        let bytes = if r % 16 == 0 { (r >> 4) % (256 << 10) } else { (r >> 4) % 4096 };
                        match r % 8 {
                            0 | 1 => {
                                if let Ok(res) = budget.try_reserve(bytes) {
                                    held.push(res);
                                }
                            }
                            2 => {
                                if let Ok(res) = budget.try_reserve_owned(bytes) {
                                    held.push(res);
                                }
                            }
                            3 => {
                                if let Ok(res) = sub.try_reserve(bytes) {
                                    held.push(res);
                                }
                            }
                            4 => held.push(budget.try_reserve_forced(bytes % 512)),
                            5 => {
                                if let Some(res) = held.last_mut() {
                                    let _ = res.resize((r >> 8) % 8192);
                                }
                            }
                            6 => {
                                if !held.is_empty() {
                                    let idx = (r >> 16) as usize % held.len();
                                    held.swap_remove(idx).release();
                                }
                            }
                            _ => {
                                // Keep some to be dropped by another thread at the end.
                                if let Some(res) = held.pop() {
                                    foreign.push(res);
                                }
                            }
                        }
                        if held.len() > 64 {
                            held.drain(..32);
                        }
                        if i % 1000 == 0 {
                            budget.set_usage(rng.next() % (256 << 10));
                        }
                    }
                    drop(held);
                    foreign
                })
            })
            .collect();
        barrier.wait();
        handles.into_iter().flat_map(|h| h.join().expect("worker")).collect()
    });
    let held: u64 = leftovers.iter().map(Reservation::bytes).sum();
    assert_eq!(budget.outstanding(), held, "outstanding is exactly the sum of live reservations");
    assert_eq!(budget.stocked(), 0, "every worker has exited: no stock left");
    // Drop the leftovers on other threads than the ones that made them.
    let second = leftovers.split_off(leftovers.len() / 2);
    thread::scope(|s| {
        s.spawn(move || drop(leftovers));
        s.spawn(move || drop(second));
    });
    assert_eq!((budget.outstanding(), sub.outstanding(), budget.stocked()), (0, 0, 0));
    budget.set_usage(0);
    assert_eq!(budget.settling(), 0);
    assert_eq!(budget.committed(), 0, "the shared counter is back at zero");
    let stats = budget.stats();
    assert!(stats.granted > 0 && stats.forced > 0 && stats.refused > 0, "{stats:?}");
}

#[test]
fn sub_budget_cap_holds_under_concurrency() {
    const CAP: u64 = 10_000;
    let budget = Budget::new(u64::MAX);
    let sub = budget.sub_budget("batch", CAP);
    let stop = Arc::new(AtomicBool::new(false));
    let observer = {
        let (sub, stop) = (sub.clone(), Arc::clone(&stop));
        thread::spawn(move || {
            let mut max_seen = 0;
            while !stop.load(Ordering::Relaxed) {
                max_seen = max_seen.max(sub.outstanding());
            }
            max_seen
        })
    };
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let sub = sub.clone();
            thread::spawn(move || {
                let mut rng = Rng(t as u64 * 7919 + 1);
                let mut held = Vec::new();
                for _ in 0..OPS / 4 {
                    let r = rng.next();
                    match r % 3 {
                        0 | 1 => {
                            if let Ok(res) = sub.try_reserve(r % 1500) {
                                assert!(sub.outstanding() <= CAP);
                                held.push(res);
                            }
                        }
                        _ => {
                            if let Some(mut res) = held.pop() {
                                let _ = res.resize((r >> 8) % 3000);
                                assert!(sub.outstanding() <= CAP);
                            }
                        }
                    }
                    if held.len() > 8 {
                        drop(held.remove(0));
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    stop.store(true, Ordering::Relaxed);
    let max_seen = observer.join().expect("observer");
    assert!(max_seen <= CAP, "observed {max_seen} > cap {CAP}");
    assert_eq!(sub.outstanding(), 0);
    assert_eq!(budget.outstanding(), 0);
    let st = sub.stats();
    assert!(st.granted > 0 && st.refused > 0, "the cap was exercised: {st:?}");
}

#[test]
fn critical_refuses_normal_grants_forced_always() {
    let budget = Budget::new(1000);
    budget.set_level(Level::Critical);
    let err = budget.try_reserve(1).expect_err("refused at critical");
    assert_eq!(
        (err.requested, err.available, err.soft_limit, err.level, err.scope.as_deref()),
        (1, 0, 1000, Level::Critical, None)
    );
    let forced = budget.try_reserve_forced(2000);
    assert_eq!(budget.outstanding(), 2000);
    budget.set_level(Level::Normal);
    assert!(budget.try_reserve(1).is_err(), "forced bytes over the limit still count");
    drop(forced);
    assert!(budget.try_reserve(1).is_err(), "... until a sample after their release");
    budget.set_usage(0);
    let r = budget.try_reserve(1000).expect("granted again at normal");
    assert_eq!(budget.available(), 0);
    drop(r);
    let s = budget.stats();
    assert_eq!((s.granted, s.refused, s.forced), (1, 3, 1));
}

#[test]
fn usage_outstanding_and_settling_add_up_and_soft_limit_changes_apply() {
    let budget = Budget::new(1000);
    let r = budget.try_reserve(300).expect("reserve");
    budget.set_usage(200);
    assert_eq!(budget.available(), 500, "200 used + 300 reserved");
    budget.set_usage(600);
    assert_eq!(budget.available(), 100);
    let err = budget.try_reserve(101).expect_err("over");
    assert_eq!((err.requested, err.available, err.soft_limit), (101, 100, 1000));
    budget.set_soft_limit(500);
    assert_eq!(budget.available(), 0);
    budget.set_soft_limit(2000);
    assert_eq!(budget.available(), 1100);
    drop(r);
    assert_eq!(budget.available(), 1100, "released, but settling until the next sample");
    budget.set_usage(900); // the sample shows the 300 bytes allocated under the reservation
    assert_eq!(budget.available(), 1100);
    budget.set_usage(0);
    assert_eq!(budget.available(), 2000);
}

#[test]
fn resize_up_refused_when_over_down_always() {
    let budget = Budget::new(100);
    let sub = budget.sub_budget("s", 50);
    let mut r = sub.try_reserve(40).expect("reserve");
    let err = r.resize(51).expect_err("cap");
    assert_eq!((err.scope.as_deref(), err.requested, err.available, err.soft_limit), (Some("s"), 11, 10, 50));
    budget.set_usage(55); // 55 + 40 = 95
    let err = r.resize(50).expect_err("parent");
    assert_eq!((err.scope.as_deref(), err.available), (None, 5));
    assert_eq!((r.bytes(), sub.outstanding(), budget.outstanding()), (40, 40, 40));
    budget.set_level(Level::Critical);
    r.resize(1).expect("shrinking always succeeds");
    assert_eq!((sub.outstanding(), budget.outstanding(), budget.settling()), (1, 1, 39));
    r.release();
    assert_eq!((sub.outstanding(), budget.outstanding(), budget.settling()), (0, 0, 40));
}

/// Stocks make refusals come early by at most 64 KiB per thread holding one, never late:
/// threads reserve small amounts and keep them until refused; the total granted never exceeds
/// the room, and falls short of it by less than the stocks' bound.
#[test]
fn stocks_refuse_early_by_a_bounded_amount_never_late() {
    const SOFT: u64 = 4 << 20;
    const USED: u64 = 1 << 20;
    let budget = Budget::new(SOFT);
    budget.set_usage(USED);
    let barrier = Barrier::new(THREADS);
    let granted: Vec<u64> = thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (budget, barrier) = (&budget, &barrier);
                s.spawn(move || {
                    let mut rng = Rng(t as u64 + 11);
                    let mut held = Vec::new();
                    barrier.wait();
                    loop {
                        let bytes = 1 + rng.next() % 3000;
                        match budget.try_reserve(bytes) {
                            Ok(r) => held.push(r),
                            // Refused: nothing this thread's stock could serve is left either.
                            Err(e) => {
                                assert!(e.available < bytes, "{e}");
                                break;
                            }
                        }
                    }
                    let total: u64 = held.iter().map(Reservation::bytes).sum();
                    barrier.wait(); // every thread refused: the totals are final
                    let outstanding = budget.outstanding();
                    barrier.wait();
                    drop(held);
                    assert!(outstanding >= total);
                    total
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("worker")).collect()
    });
    let total: u64 = granted.iter().sum();
    assert!(USED + total <= SOFT, "never late: {total} granted over {} of room", SOFT - USED);
    let slack = THREADS as u64 * STOCK_CAP_BYTES;
    assert!(USED + total + slack >= SOFT, "early by at most {slack}: only {total} of {} granted", SOFT - USED);
    println!("granted {total} of {} bytes of room with {THREADS} threads (bound: {slack} early)", SOFT - USED);
}

/// While threads hold reservations and stocks, `outstanding()` is exactly the sum of the live
/// reservations (no reservation in flight), and the stocks are visible.
#[test]
fn outstanding_is_exact_while_threads_hold_stocks() {
    let budget = Budget::new(1 << 30);
    let barrier = Barrier::new(THREADS + 1);
    thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (budget, barrier) = (&budget, &barrier);
                s.spawn(move || {
                    let held: Vec<_> =
                        (0..100).map(|i| budget.try_reserve((t * 100 + i) as u64 * 7 % 5000).expect("room")).collect();
                    barrier.wait();
                    barrier.wait(); // the main thread checks here
                    drop(held);
                })
            })
            .collect();
        barrier.wait();
        let expected: u64 = (0..THREADS * 100).map(|k| k as u64 * 7 % 5000).sum();
        assert_eq!(budget.outstanding(), expected);
        assert!(budget.stocked() > 0 && budget.stocked() <= THREADS as u64 * STOCK_CAP_BYTES);
        assert_eq!(budget.committed(), expected + budget.stocked(), "no usage, nothing settling");
        barrier.wait();
        for h in handles {
            h.join().expect("worker");
        }
    });
    assert_eq!((budget.outstanding(), budget.stocked()), (0, 0));
}

#[test]
fn error_is_a_std_error() {
    let budget = Budget::new(10);
    let err: Box<dyn std::error::Error + Send + Sync> = Box::new(budget.try_reserve(11).expect_err("over"));
    let text = err.to_string();
    assert!(text.contains("requested 11") && text.contains("10 available") && text.contains("soft limit 10"), "{text}");
}
