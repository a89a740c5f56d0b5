#![no_main]
//! What the watcher reads while running (`memory.events`, PSI averages) and the growth estimator
//! fed arbitrary samples: never panic; a predicted time to the limit is finite and non-negative.
use libfuzzer_sys::fuzz_target;
use memguard::fuzz_api::{parse_counters, RateEstimator};
use memguard::watch::PsiAverages;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = parse_counters(&text);
    let _ = PsiAverages::parse(&text);
    // The same bytes as a trace: 12 bytes per sample (time step in µs, measure), a limit first.
    let mut chunks = data.chunks_exact(12);
    let Some(first) = chunks.next() else { return };
    let limit = u64::from_le_bytes(first[..8].try_into().expect("8 bytes"));
    let mut estimator = RateEstimator::new();
    let mut now = 0u64;
    for c in chunks {
        let step_us = u32::from_le_bytes(c[..4].try_into().expect("4 bytes"));
        let measure = u64::from_le_bytes(c[4..].try_into().expect("8 bytes"));
        now = now.saturating_add(u64::from(step_us) * 1000);
        estimator.push(now, measure);
        let growth = estimator.growth();
        if let Some(rate) = growth.rate {
            assert!(!rate.is_nan(), "rate NaN");
        }
        if let Some(t) = estimator.time_to_limit(limit) {
            assert!(t.as_secs_f64().is_finite());
        }
        let _ = estimator.time_at_rate(limit);
    }
});
