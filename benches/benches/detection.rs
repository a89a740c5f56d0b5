//! Full detection cost: `Detector::detect` (limits only) and `Status::gather` (limits plus
//! usage at the process's cgroup and at the limiting cgroup, and the sources the watcher would
//! arm, as `memguard status` reports), on this machine's real kernel.
//!
//! Target (issue #2): under 200 µs in process. Run: `cargo bench -p memguard-benches --bench detection`.

use criterion::{criterion_group, criterion_main, Criterion};

fn detection(c: &mut Criterion) {
    let detector = memguard::Detector::new();
    let config = memguard::watch::Config::default();
    c.bench_function("detect (limits)", |b| b.iter(|| detector.detect().expect("detect")));
    c.bench_function("status (limits + usage + sources)", |b| {
        b.iter(|| memguard::Status::gather(&detector, &config, false).expect("status"))
    });
}

criterion_group!(benches, detection);
criterion_main!(benches);
