//! [`RateEstimator`]: how fast the pressure measure grows, and the time left to the limit at
//! that rate — for warnings that act on *time to the limit*, not only on a fraction of it.
//!
//! # Estimate
//! The estimator keeps the samples of the last [`WINDOW`] (at most [`CAPACITY`]) and takes the
//! **Theil–Sen** slope: the median of the slopes between every pair of samples at least
//! [`MIN_PAIR_GAP`] apart. One odd sample moves a median of pairwise slopes very little, unlike
//! a least-squares line or the slope of the last two samples.
//!
//! # When growth counts
//! A prediction needs *sustained* growth: the last [`SUSTAIN`] samples strictly increasing, over
//! at least [`MIN_SPAN`], with a positive median slope. A burst allocated between two samples
//! (a request-sized arena) is one increase, then a plateau or a fall: no prediction, whatever
//! its size. Growth that stops ends the prediction with the next sample that does not grow.

use std::collections::VecDeque;
use std::time::Duration;

/// How far back samples are kept.
pub const WINDOW: Duration = Duration::from_millis(500);
/// The most samples kept.
pub const CAPACITY: usize = 16;
/// The last this many samples must be strictly increasing for growth to count.
pub const SUSTAIN: usize = 3;
/// ... spanning at least this long.
pub const MIN_SPAN: Duration = Duration::from_millis(8);
/// Pairs of samples closer than this are left out of the slope (timing noise dominates).
pub const MIN_PAIR_GAP: Duration = Duration::from_millis(1);

/// Growth of the measure, from samples.
#[derive(Debug, Clone, Default)]
pub struct RateEstimator {
    /// `(monotonic ns, measure bytes)`, oldest first.
    samples: VecDeque<(u64, u64)>,
}

/// What the estimator says now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Growth {
    /// The median slope, bytes per second (negative when shrinking); `None` with too few
    /// samples.
    pub rate: Option<f64>,
    /// The growth is sustained (see the module docs): a prediction may be made.
    pub sustained: bool,
}

impl RateEstimator {
    /// An empty estimator.
    pub fn new() -> Self {
        RateEstimator { samples: VecDeque::with_capacity(CAPACITY) }
    }

    /// Forget everything (the limit or the watched cgroup changed).
    pub fn reset(&mut self) {
        self.samples.clear();
    }

    /// Add a sample taken at `at_ns` (monotonic nanoseconds) of `measure` bytes. Samples must
    /// come in time order; an older one is ignored.
    pub fn push(&mut self, at_ns: u64, measure: u64) {
        if self.samples.back().is_some_and(|(t, _)| at_ns < *t) {
            return;
        }
        let window = u64::try_from(WINDOW.as_nanos()).unwrap_or(u64::MAX);
        while self.samples.front().is_some_and(|(t, _)| at_ns.saturating_sub(*t) > window)
            || self.samples.len() >= CAPACITY
        {
            self.samples.pop_front();
        }
        self.samples.push_back((at_ns, measure));
    }

    /// The growth now.
    pub fn growth(&self) -> Growth {
        let rate = self.median_slope();
        let n = self.samples.len();
        let sustained = n >= SUSTAIN && rate.is_some_and(|r| r > 0.0) && {
            let tail: Vec<&(u64, u64)> = self.samples.iter().skip(n - SUSTAIN).collect();
            let increasing = tail.windows(2).all(|w| w[1].1 > w[0].1);
            let span = tail[SUSTAIN - 1].0.saturating_sub(tail[0].0);
            increasing && span >= u64::try_from(MIN_SPAN.as_nanos()).unwrap_or(u64::MAX)
        };
        Growth { rate, sustained }
    }

    /// Seconds until `limit` at the current sustained growth, from the latest sample; `None`
    /// when growth is not sustained (or there is no sample).
    pub fn time_to_limit(&self, limit: u64) -> Option<Duration> {
        let g = self.growth();
        let rate = g.rate.filter(|_| g.sustained)?;
        let (_, measure) = *self.samples.back()?;
        #[allow(clippy::cast_precision_loss)]
        let secs = limit.saturating_sub(measure) as f64 / rate;
        Duration::try_from_secs_f64(secs).ok()
    }

    fn median_slope(&self) -> Option<f64> {
        let gap = u64::try_from(MIN_PAIR_GAP.as_nanos()).unwrap_or(0);
        let mut slopes: Vec<f64> = Vec::with_capacity(CAPACITY * CAPACITY / 2);
        for (i, a) in self.samples.iter().enumerate() {
            for b in self.samples.iter().skip(i + 1) {
                let dt = b.0.saturating_sub(a.0);
                if dt >= gap && dt > 0 {
                    #[allow(clippy::cast_precision_loss)]
                    slopes.push((b.1 as f64 - a.1 as f64) / (dt as f64 / 1e9));
                }
            }
        }
        if slopes.is_empty() {
            return None;
        }
        slopes.sort_by(f64::total_cmp);
        let mid = slopes.len() / 2;
        Some(if slopes.len() % 2 == 1 { slopes[mid] } else { (slopes[mid - 1] + slopes[mid]) / 2.0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const MS: u64 = 1_000_000;

    fn feed(e: &mut RateEstimator, trace: &[(u64, u64)]) {
        for &(t, m) in trace {
            e.push(t * MS, m);
        }
    }

    #[test]
    fn steady_memory_predicts_nothing() {
        let mut e = RateEstimator::new();
        feed(&mut e, &(0..20).map(|i| (i * 25, 140 * MIB)).collect::<Vec<_>>());
        assert_eq!(e.growth().rate, Some(0.0));
        assert!(!e.growth().sustained);
        assert_eq!(e.time_to_limit(256 * MIB), None);
    }

    #[test]
    fn linear_ramp_is_measured_and_predicted() {
        // 10 MiB per 5 ms sample: 2000 MiB/s.
        let mut e = RateEstimator::new();
        feed(&mut e, &(0..8).map(|i| (i * 5, i * 10 * MIB + 5 * MIB)).collect::<Vec<_>>());
        let g = e.growth();
        let rate = g.rate.expect("rate");
        assert!((rate - 2000.0 * MIB as f64).abs() < 1.0 * MIB as f64, "{rate}");
        assert!(g.sustained);
        let ttl = e.time_to_limit(256 * MIB).expect("prediction");
        // 75 MiB now, 181 MiB to go at 2000 MiB/s: about 90 ms.
        assert!((ttl.as_secs_f64() - 0.0905).abs() < 0.002, "{ttl:?}");
    }

    #[test]
    fn one_noisy_sample_barely_moves_the_rate() {
        let mut clean = RateEstimator::new();
        let mut noisy = RateEstimator::new();
        let trace: Vec<(u64, u64)> = (0..10).map(|i| (i * 10, 100 * MIB + i * MIB)).collect();
        feed(&mut clean, &trace);
        let mut bad = trace.clone();
        bad[5].1 += 40 * MIB; // a single wild reading
        feed(&mut noisy, &bad);
        let (c, n) = (clean.growth().rate.expect("c"), noisy.growth().rate.expect("n"));
        assert!((n - c).abs() / c < 0.25, "clean {c}, noisy {n}");
    }

    #[test]
    fn a_step_is_not_sustained_growth() {
        // A 20 MiB arena allocated between two samples at 55% of 256 MiB, then held, then freed.
        let mut e = RateEstimator::new();
        let mut trace: Vec<(u64, u64)> = (0..6).map(|i| (i * 30, 141 * MIB)).collect();
        trace.extend((6..10).map(|i| (i * 30, 161 * MIB)));
        trace.extend((10..14).map(|i| (i * 30, 141 * MIB)));
        for (t, m) in trace {
            e.push(t * MS, m);
            assert!(e.time_to_limit(256 * MIB).is_none(), "predicted at t={t} ms: {:?}", e.growth());
        }
    }

    #[test]
    fn sawtooth_never_sustains() {
        let mut e = RateEstimator::new();
        for i in 0..100u64 {
            let m = if i % 2 == 0 { 130 * MIB } else { 150 * MIB };
            e.push(i * 20 * MS, m);
            assert!(!e.growth().sustained, "sample {i}");
        }
    }

    #[test]
    fn growth_that_stops_ends_the_prediction() {
        let mut e = RateEstimator::new();
        feed(&mut e, &(0..6).map(|i| (i * 10, 50 * MIB + i * 10 * MIB)).collect::<Vec<_>>());
        assert!(e.time_to_limit(256 * MIB).is_some());
        e.push(70 * MS, 100 * MIB);
        assert!(e.time_to_limit(256 * MIB).is_none(), "a plateau ends it");
    }

    #[test]
    fn out_of_order_and_window() {
        let mut e = RateEstimator::new();
        e.push(100 * MS, MIB);
        e.push(50 * MS, 2 * MIB);
        assert_eq!(e.samples.len(), 1, "older sample ignored");
        for i in 0..40 {
            e.push((200 + i * 100) * MS, MIB);
        }
        assert!(e.samples.len() <= CAPACITY);
        assert!(e.samples.back().unwrap().0 - e.samples.front().unwrap().0 <= 500 * MS);
        e.reset();
        assert_eq!(e.growth(), Growth { rate: None, sustained: false });
    }
}
