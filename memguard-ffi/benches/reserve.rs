//! Rust reference for `bench/reserve_bench.c` (run both with `memguard-ffi/bench/run.sh`): the same
//! reserve + release pair through the Rust API, one thread, median of 7 rounds.
//!
//! * `rust-borrowed`: `guard.try_reserve(n)` + drop (the README's figure);
//! * `rust-owned`: `budget.try_reserve_owned(n)` + drop (what the C library calls);
//! * `rust-via-c-abi`: `memguard_reserve` + `memguard_reservation_free` called from Rust.

use std::hint::black_box;
use std::time::Instant;

fn median(mut f: impl FnMut(u64) -> f64, bytes: u64) -> (f64, f64, f64) {
    f(bytes);
    let mut r: Vec<f64> = (0..7).map(|_| f(bytes)).collect();
    r.sort_by(f64::total_cmp);
    (r[3], r[0], r[6])
}

fn main() {
    let iters: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(2_000_000);
    let guard = memguard::MemGuard::start().expect("start a guard");
    let budget = guard.budget().clone();
    let mut cguard: *mut memguard_ffi::guard::memguard_guard = std::ptr::null_mut();
    assert_eq!(
        memguard_ffi::guard::memguard_guard_new(std::ptr::null(), &mut cguard),
        memguard_ffi::memguard_result::MEMGUARD_OK
    );
    let time = |body: &mut dyn FnMut()| {
        let t0 = Instant::now();
        for _ in 0..iters {
            body();
        }
        t0.elapsed().as_nanos() as f64 / iters as f64
    };
    for (bytes, name) in [(4096u64, "4KiB-stocked"), (128 << 10, "128KiB-exact")] {
        let borrowed =
            median(|b| time(&mut || drop(black_box(guard.try_reserve(black_box(b)).expect("granted")))), bytes);
        let owned =
            median(|b| time(&mut || drop(black_box(budget.try_reserve_owned(black_box(b)).expect("granted")))), bytes);
        let via_c = median(
            |b| {
                time(&mut || {
                    let mut r = std::ptr::null_mut();
                    let rc = memguard_ffi::budget::memguard_reserve(cguard, black_box(b), &mut r);
                    assert_eq!(rc, memguard_ffi::memguard_result::MEMGUARD_OK);
                    memguard_ffi::budget::memguard_reservation_free(black_box(r));
                })
            },
            bytes,
        );
        for (label, (med, min, max)) in [("rust-borrowed", borrowed), ("rust-owned", owned), ("rust-via-c-abi", via_c)]
        {
            println!("{label:<22} {name:<13} {med:6.1} ns/op (min {min:.1}, max {max:.1}; {iters} iterations x 7)");
        }
    }
    memguard_ffi::guard::memguard_guard_free(cguard);
}
