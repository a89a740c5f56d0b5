//! Latency summaries: nearest-rank percentiles over nanosecond samples, reported in µs.

use serde::Serialize;

/// Percentiles of one series of latency samples, in microseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Number of samples.
    pub n: usize,
    /// Smallest sample.
    pub min_us: f64,
    /// Median (nearest rank).
    pub p50_us: f64,
    /// 90th percentile (nearest rank).
    pub p90_us: f64,
    /// 99th percentile (nearest rank; equals the maximum below 100 samples).
    pub p99_us: f64,
    /// Largest sample.
    pub max_us: f64,
    /// Arithmetic mean.
    pub mean_us: f64,
}

/// The nearest-rank `p`-th percentile (`0 < p <= 100`) of an ascending slice.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() || !(p > 0.0 && p <= 100.0) {
        return None;
    }
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

#[allow(clippy::cast_precision_loss)]
fn us(ns: u64) -> f64 {
    (ns as f64 / 100.0).round() / 10.0
}

impl Summary {
    /// Summarise samples given in nanoseconds; `None` when there are none.
    pub fn of(samples_ns: &[u64]) -> Option<Summary> {
        let mut s = samples_ns.to_vec();
        s.sort_unstable();
        let sum: u128 = s.iter().map(|v| u128::from(*v)).sum();
        let mean = u64::try_from(sum / s.len().max(1) as u128).unwrap_or(u64::MAX);
        Some(Summary {
            n: s.len(),
            min_us: us(*s.first()?),
            p50_us: us(percentile(&s, 50.0)?),
            p90_us: us(percentile(&s, 90.0)?),
            p99_us: us(percentile(&s, 99.0)?),
            max_us: us(*s.last()?),
            mean_us: us(mean),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&[7], 1.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&v, 0.0), None);
    }

    #[test]
    fn summary_in_microseconds() {
        let s = Summary::of(&[3_000, 1_000, 2_000, 1_000_000]).expect("samples");
        assert_eq!((s.n, s.min_us, s.p50_us, s.max_us), (4, 1.0, 2.0, 1000.0));
        assert_eq!(s.p99_us, 1000.0);
        assert!(Summary::of(&[]).is_none());
    }
}
