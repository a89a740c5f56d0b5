//! [`RateEstimator`]: how fast the pressure measure grows, and the time left to the limit at
//! that rate — for warnings that act on *time to the limit*, not only on a fraction of it.
//!
//! # Estimate
//! The estimator keeps the samples of the last [`WINDOW`] (at most [`CAPACITY`]) and takes the
//! **median of the slopes between consecutive samples** among the most recent [`SLOPE_SAMPLES`]
//! (skipping samples closer than [`MIN_PAIR_GAP`] to the previous one kept). One odd sample
//! changes two of those slopes, one up and one down, and barely moves their median — unlike a
//! least-squares line or the slope of the last two samples; and unlike slopes between every
//! pair, consecutive slopes follow a ramp that just started after a long quiet sample.
//!
//! # When growth counts
//! A prediction needs *sustained* growth: the latest samples — at least [`SUSTAIN`] of them,
//! spanning at least [`MIN_SPAN`] — never falling and the last above the first, with a positive
//! median slope. A fall (a
//! handler freed memory; more than [`FALL`] or 2%) restarts the estimate from the new sample,
//! so regrowth is judged afresh. A new prediction also needs the latest sample to have grown: a
//! step followed by a plateau predicts nothing. Growth that stops ends a held prediction within
//! two samples.
//!
//! # How far to extrapolate
//! The time to the limit is predicted only when the way left is at most [`MAX_EXTRAPOLATION`]
//! times the growth actually seen over the samples kept (the last half second, back to the
//! latest fall at most), and that growth is at least a tenth of the limit: a 20 MiB arena
//! seen growing at 2 GB/s says little about the 100 MiB still free, while 80 MiB of steady
//! growth says a lot about the next 100.

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
pub const MIN_PAIR_GAP: Duration = Duration::from_millis(2);
/// The slope is taken over at most this many of the latest samples of the current run.
pub const SLOPE_SAMPLES: usize = 8;
/// A drop larger than this (or than 2% of the measure) is a fall that restarts the estimate.
pub const FALL: u64 = 1 << 20;
/// The way left to the limit may be at most this many times the growth seen in the current run.
pub const MAX_EXTRAPOLATION: u64 = 4;
/// ... and the growth seen must be at least this share of the limit (1/10): a request-sized
/// burst is not a trend, however fast it is allocated.
pub const MIN_SEEN_SHARE: u64 = 10;
/// Beyond the largest single step between two samples, the growth seen must still be at least
/// this share of the limit (1/40): a plateau followed by one jump looks, for a sample, like an
/// enormous rate, but it is a step, not a trend.
pub const MIN_BEYOND_STEP_SHARE: u64 = 40;

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
        match self.samples.back() {
            // A fall: memory was freed. Growth from here is a new story.
            Some(&(_, last)) if measure.saturating_add(FALL.max(last / 50)) < last => self.samples.clear(),
            _ => {}
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
        // The shortest tail of at least SUSTAIN samples spanning at least MIN_SPAN (samples can
        // come 1 ms apart after a kernel notification).
        let min_span = u64::try_from(MIN_SPAN.as_nanos()).unwrap_or(u64::MAX);
        let last_t = self.samples.back().map_or(0, |s| s.0);
        let tail_len = (SUSTAIN..=n).find(|&k| last_t.saturating_sub(self.samples[n - k].0) >= min_span);
        let sustained = rate.is_some_and(|r| r > 0.0)
            && tail_len.is_some_and(|k| {
                let tail: Vec<&(u64, u64)> = self.samples.iter().skip(n - k).collect();
                tail.windows(2).all(|w| w[1].1 >= w[0].1) && tail[k - 1].1 > tail[0].1
            });
        Growth { rate, sustained }
    }

    /// The growth seen since the oldest sample kept (the last [`WINDOW`], back to the latest
    /// fall at most), bytes.
    pub fn run_growth(&self) -> u64 {
        let last = self.samples.back().map_or(0, |s| s.1);
        last.saturating_sub(self.samples.front().map_or(last, |s| s.1))
    }

    /// The time until `limit` at the current sustained growth, from the latest sample; `None`
    /// when growth is not sustained, when the way left is more than [`MAX_EXTRAPOLATION`] times
    /// the growth seen (see the module docs), or without samples.
    pub fn time_to_limit(&self, limit: u64) -> Option<Duration> {
        let g = self.growth();
        let rate = g.rate.filter(|_| g.sustained)?;
        let n = self.samples.len();
        let (_, measure) = *self.samples.back()?;
        // A new prediction needs the latest sample to have grown: after a step to a plateau
        // (a burst, a one-off allocation) the history alone must not predict anything.
        if n < 2 || self.samples[n - 2].1 >= measure {
            return None;
        }
        let seen = self.run_growth();
        if limit.saturating_sub(measure) > seen.saturating_mul(MAX_EXTRAPOLATION)
            || seen < limit / MIN_SEEN_SHARE
            || seen.saturating_sub(self.largest_step()) < limit / MIN_BEYOND_STEP_SHARE
        {
            return None;
        }
        #[allow(clippy::cast_precision_loss)]
        let secs = limit.saturating_sub(measure) as f64 / rate;
        Duration::try_from_secs_f64(secs).ok()
    }

    /// The largest growth between two consecutive samples kept, bytes.
    fn largest_step(&self) -> u64 {
        self.samples.iter().zip(self.samples.iter().skip(1)).map(|(a, b)| b.1.saturating_sub(a.1)).max().unwrap_or(0)
    }

    /// The time until `limit` at the current median rate, whether growth is sustained or not
    /// (`None` when the rate is not positive).
    pub fn time_at_rate(&self, limit: u64) -> Option<Duration> {
        let rate = self.growth().rate.filter(|r| *r > 0.0)?;
        let (_, measure) = *self.samples.back()?;
        #[allow(clippy::cast_precision_loss)]
        let secs = limit.saturating_sub(measure) as f64 / rate;
        Duration::try_from_secs_f64(secs).ok()
    }

    fn median_slope(&self) -> Option<f64> {
        let gap = u64::try_from(MIN_PAIR_GAP.as_nanos()).unwrap_or(0).max(1);
        // The latest samples, each at least MIN_PAIR_GAP after the previous one kept.
        let mut picked: Vec<(u64, u64)> = Vec::with_capacity(SLOPE_SAMPLES);
        for &s in self.samples.iter().skip(self.samples.len().saturating_sub(SLOPE_SAMPLES)) {
            if picked.last().map_or(true, |p| s.0.saturating_sub(p.0) >= gap) {
                picked.push(s);
            }
        }
        let mut slopes: Vec<f64> = picked
            .windows(2)
            .map(|w| {
                #[allow(clippy::cast_precision_loss)]
                let slope = (w[1].1 as f64 - w[0].1 as f64) / ((w[1].0 - w[0].0) as f64 / 1e9);
                slope
            })
            .collect();
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
    fn a_burst_near_the_limit_is_not_a_trend() {
        // 20 MiB allocated in 6 ms at 62% of 256 MiB: 79 MiB would be left, within 4x of the
        // growth seen, but 20 MiB is less than a tenth of the limit.
        let mut e = RateEstimator::new();
        feed(&mut e, &[(0, 159 * MIB), (30, 159 * MIB), (32, 166 * MIB), (34, 172 * MIB), (38, 179 * MIB)]);
        assert_eq!(e.time_to_limit(256 * MIB), None);
    }

    #[test]
    fn a_large_step_then_a_plateau_predicts_nothing() {
        // Node mode can jump from 10% to 85% between two samples (the host's MemAvailable).
        let mut e = RateEstimator::new();
        feed(&mut e, &[(0, 100 * MIB), (5, 850 * MIB), (10, 850 * MIB), (15, 850 * MIB)]);
        assert_eq!(e.time_to_limit(1000 * MIB), None);
    }

    #[test]
    fn a_plateau_then_one_large_step_predicts_nothing() {
        // Found by the C suite: two samples at 10%, then 85% (node mode). The two slopes (zero
        // and huge) average to an enormous rate, but all the growth came in one step.
        let mut e = RateEstimator::new();
        feed(&mut e, &[(0, 100 * MIB), (10, 100 * MIB), (20, 850 * MIB)]);
        assert!(e.growth().sustained);
        assert_eq!(e.time_to_limit(1000 * MIB), None);
        // A little noise before the step changes nothing; a ramp after it is a trend again.
        let mut e = RateEstimator::new();
        feed(&mut e, &[(0, 100 * MIB), (10, 101 * MIB), (20, 850 * MIB)]);
        assert_eq!(e.time_to_limit(1000 * MIB), None);
        feed(&mut e, &[(22, 870 * MIB), (24, 890 * MIB)]);
        assert!(e.time_to_limit(1000 * MIB).is_some());
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
        e.push(80 * MS, 100 * MIB);
        assert!(e.time_to_limit(256 * MIB).is_none(), "a plateau ends it within two samples");
    }

    #[test]
    fn a_short_burst_is_not_extrapolated_far() {
        // 20 MiB seen growing fast, 95 MiB still free: not predicted. 80 MiB seen, 95 free: predicted.
        let mut e = RateEstimator::new();
        feed(&mut e, &[(0, 141 * MIB), (5, 148 * MIB), (10, 155 * MIB), (15, 161 * MIB)]);
        assert!(e.growth().sustained);
        assert_eq!(e.run_growth(), 20 * MIB);
        assert_eq!(e.time_to_limit(256 * MIB), None);
        let mut e = RateEstimator::new();
        feed(&mut e, &(0..9).map(|i| (i * 5, 81 * MIB + i * 10 * MIB)).collect::<Vec<_>>());
        assert!(e.time_to_limit(256 * MIB).is_some());
    }

    #[test]
    fn a_fall_restarts_the_estimate() {
        let mut e = RateEstimator::new();
        feed(&mut e, &(0..6).map(|i| (i * 10, 50 * MIB + i * 20 * MIB)).collect::<Vec<_>>());
        assert!(e.growth().sustained);
        e.push(60 * MS, 20 * MIB); // a handler cleared the cache
        assert_eq!((e.samples.len(), e.run_growth()), (1, 0));
        assert!(!e.growth().sustained);
        feed(&mut e, &[(70, 40 * MIB), (80, 60 * MIB)]);
        assert!(e.growth().sustained, "regrowth is seen afresh");
        assert_eq!(e.run_growth(), 40 * MIB);
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
