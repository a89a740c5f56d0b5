//! The soft-limit budget under concurrency: accounting returns to exactly zero, sub-budget caps
//! hold, levels and usage gate reservations.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use memguard::budget::{Budget, BudgetExceeded, Reservation};
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

#[test]
fn concurrent_reserve_drop_resize_returns_to_zero() {
    let budget = Budget::new(1 << 20);
    let sub = budget.sub_budget("cache", 256 << 10);
    let barrier = Arc::new(Barrier::new(THREADS + 1));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (budget, sub, barrier) = (budget.clone(), sub.clone(), Arc::clone(&barrier));
            thread::spawn(move || {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (t as u64 + 1));
                let mut held: Vec<Reservation> = Vec::new();
                let mut foreign: Vec<Reservation> = Vec::new();
                barrier.wait();
                for i in 0..OPS {
                    let r = rng.next();
                    let bytes = r % 4096;
                    match r % 7 {
                        0 | 1 => {
                            if let Ok(res) = budget.try_reserve(bytes) {
                                held.push(res);
                            }
                        }
                        2 => {
                            if let Ok(res) = sub.try_reserve(bytes) {
                                held.push(res);
                            }
                        }
                        3 => held.push(budget.try_reserve_forced(bytes % 512)),
                        4 => {
                            if let Some(res) = held.last_mut() {
                                let _ = res.resize((r >> 8) % 8192);
                            }
                        }
                        5 => {
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
                    if i % 10_000 == 0 {
                        budget.set_usage(rng.next() % (1 << 20));
                    }
                }
                drop(held);
                foreign
            })
        })
        .collect();
    barrier.wait();
    let mut leftovers = Vec::new();
    for h in handles {
        leftovers.extend(h.join().expect("worker"));
    }
    let held: u64 = leftovers.iter().map(Reservation::bytes).sum();
    assert_eq!(budget.outstanding(), held, "outstanding is exactly the sum of live reservations");
    // Drop the leftovers from other threads than the ones that made them.
    let mid = leftovers.len() / 2;
    let second = leftovers.split_off(mid);
    let a = thread::spawn(move || drop(leftovers));
    let b = thread::spawn(move || drop(second));
    a.join().expect("dropper a");
    b.join().expect("dropper b");
    assert_eq!(budget.outstanding(), 0);
    assert_eq!(sub.outstanding(), 0);
    let stats = budget.stats();
    assert!(stats.granted > 0 && stats.forced > 0, "{stats:?}");
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
        err,
        BudgetExceeded { requested: 1, available: 0, soft_limit: 1000, level: Level::Critical, scope: None }
    );
    let forced = budget.try_reserve_forced(2000);
    assert_eq!(budget.outstanding(), 2000);
    budget.set_level(Level::Normal);
    assert!(budget.try_reserve(1).is_err(), "forced bytes over the limit still count");
    drop(forced);
    let r = budget.try_reserve(1000).expect("granted again at normal");
    assert_eq!(budget.available(), 0);
    drop(r);
    let s = budget.stats();
    assert_eq!((s.granted, s.refused, s.forced), (1, 2, 1));
}

#[test]
fn usage_growth_shrinks_available_and_soft_limit_changes_apply() {
    let budget = Budget::new(1000);
    let r = budget.try_reserve(300).expect("reserve");
    budget.set_usage(200);
    assert_eq!(budget.available(), 700, "usage within the reservation is not counted twice");
    budget.set_usage(600);
    assert_eq!(budget.available(), 400);
    let err = budget.try_reserve(401).expect_err("over");
    assert_eq!((err.requested, err.available, err.soft_limit), (401, 400, 1000));
    budget.set_soft_limit(500);
    assert_eq!(budget.available(), 0);
    budget.set_soft_limit(2000);
    assert_eq!(budget.available(), 1400);
    drop(r);
    assert_eq!(budget.available(), 1400, "usage still 600");
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
    budget.set_usage(95);
    let err = r.resize(50).expect_err("parent");
    assert_eq!((err.scope.as_deref(), err.available), (None, 5));
    assert_eq!((r.bytes(), sub.outstanding(), budget.outstanding()), (40, 40, 40));
    budget.set_level(Level::Critical);
    r.resize(1).expect("shrinking always succeeds");
    assert_eq!((sub.outstanding(), budget.outstanding()), (1, 1));
    r.release();
    assert_eq!((sub.outstanding(), budget.outstanding()), (0, 0));
}

#[test]
fn error_is_a_std_error() {
    let budget = Budget::new(10);
    let err: Box<dyn std::error::Error + Send + Sync> = Box::new(budget.try_reserve(11).expect_err("over"));
    let text = err.to_string();
    assert!(text.contains("requested 11") && text.contains("10 available") && text.contains("soft limit 10"), "{text}");
}
