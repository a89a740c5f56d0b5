//! Rust reference for the JMH `ReserveBenchmark` (run both with `memguard-jni/jmh/run.sh`): the
//! same reserve + release pair through the Rust API, one thread, on a guard configured from the
//! environment as the benchmark's (`run.sh` sets a node-mode fixture), median of 7 rounds.
//!
//! * `rust-borrowed`: `guard.try_reserve(n)` + drop (the README's figure);
//! * `rust-owned-boxed`: `budget.try_reserve_owned(n)` boxed, then dropped — what the JNI
//!   library does behind `reserve` + `close` (without the JNI transitions and the Java object).

use std::hint::black_box;
use std::time::Instant;

fn median(mut f: impl FnMut(u64) -> f64, bytes: u64) -> (f64, f64, f64) {
    f(bytes);
    let mut r: Vec<f64> = (0..7).map(|_| f(bytes)).collect();
    r.sort_by(f64::total_cmp);
    (r[3], r[0], r[6])
}

fn main() {
    let iters: u64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(2_000_000);
    let guard = memguard::watch::Builder::from_env().and_then(|b| b.start()).expect("start a guard");
    let budget = guard.budget().clone();
    let time = |body: &mut dyn FnMut()| {
        let t0 = Instant::now();
        for _ in 0..iters {
            body();
        }
        #[allow(clippy::cast_precision_loss)]
        let per = t0.elapsed().as_nanos() as f64 / iters as f64;
        per
    };
    for (bytes, name) in [(4096u64, "4KiB-stocked"), (128 << 10, "128KiB-exact")] {
        let borrowed =
            median(|b| time(&mut || drop(black_box(guard.try_reserve(black_box(b)).expect("granted")))), bytes);
        let owned = median(
            |b| time(&mut || drop(black_box(Box::new(budget.try_reserve_owned(black_box(b)).expect("granted"))))),
            bytes,
        );
        for (label, (med, min, max)) in [("rust-borrowed", borrowed), ("rust-owned-boxed", owned)] {
            println!("{label:<18} {name:<13} {med:6.1} ns/op (min {min:.1}, max {max:.1}; {iters} iterations x 7)");
        }
    }
}
