//! A latency histogram in the style of HdrHistogram: log-linear buckets with 128 linear
//! sub-buckets per power of two, so every recorded value is kept to within 1 % (exact below
//! 128 ns), in a fixed 30 KiB whatever the range, and histograms of several tasks merge by
//! adding counts.

use std::time::Duration;

/// Bits of linear resolution inside each power of two.
const SUB_BITS: u32 = 7;
const SUB_COUNT: usize = 1 << SUB_BITS;
const HALF: usize = SUB_COUNT / 2;
/// Enough buckets for any `u64` value.
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) * HALF + HALF;

/// Nanosecond values in log-linear buckets.
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    count: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count)
            .field("min", &self.min)
            .field("max", &self.max)
            .finish()
    }
}

/// The bucket of value `v`.
fn index(v: u64) -> usize {
    if v < SUB_COUNT as u64 {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros();
    let shift = msb - (SUB_BITS - 1);
    let sub = (v >> shift) as usize; // in [HALF, SUB_COUNT)
    shift as usize * HALF + sub
}

/// The smallest value of bucket `i`, and its width.
fn bucket_range(i: usize) -> (u64, u64) {
    if i < SUB_COUNT {
        return (i as u64, 1);
    }
    let shift = (i / HALF - 1) as u32;
    let sub = (i - shift as usize * HALF) as u64;
    (sub << shift, 1u64 << shift)
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            count: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    /// Records one value in nanoseconds.
    pub fn record_ns(&mut self, v: u64) {
        self.counts[index(v)] += 1;
        self.count += 1;
        self.sum += u128::from(v);
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    /// Records one duration.
    pub fn record(&mut self, d: Duration) {
        self.record_ns(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The largest value recorded (0 when empty).
    pub fn max_ns(&self) -> u64 {
        self.max
    }

    /// The mean (0 when empty).
    pub fn mean_ns(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }

    /// The value below which `p` percent of the values fall (0 when empty): the value of
    /// rank `ceil(p/100 × count)`, reported as the middle of its bucket and clamped to the
    /// recorded minimum and maximum; the first and last ranks are the exact minimum and
    /// maximum.
    pub fn percentile_ns(&self, p: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((p.clamp(0.0, 100.0) / 100.0) * self.count as f64).ceil() as u64;
        let rank = rank.clamp(1, self.count);
        if rank == 1 {
            return self.min;
        }
        if rank == self.count {
            return self.max;
        }
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (low, width) = bucket_range(i);
                return (low + (width - 1) / 2).clamp(self.min, self.max);
            }
        }
        self.max
    }

    /// A percentile in milliseconds.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        self.percentile_ns(p) as f64 / 1e6
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_cover_every_value() {
        let mut expected_low = 0u64;
        for i in 0..BUCKETS - 1 {
            let (low, width) = bucket_range(i);
            assert_eq!(low, expected_low, "bucket {i}");
            assert_eq!(index(low), i);
            assert_eq!(index(low + width - 1), i);
            expected_low = low + width;
        }
        assert_eq!(index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn relative_error_is_under_one_percent() {
        for v in [1u64, 127] {
            assert_eq!(bucket_range(index(v)), (v, 1));
        }
        for v in [128u64, 129, 1_000, 12_345, 999_999, 5_000_000_000] {
            let (low, width) = bucket_range(index(v));
            assert!(low <= v && v < low + width);
            assert!((width as f64) / (v as f64) < 0.016, "{v}: width {width}");
        }
    }

    #[test]
    fn percentiles_of_one_to_ten_thousand() {
        let mut h = Histogram::new();
        for v in 1..=10_000u64 {
            h.record_ns(v * 1000);
        }
        assert_eq!(h.count(), 10_000);
        for (p, exact) in [
            (50.0, 5_000_000.0),
            (90.0, 9_000_000.0),
            (99.0, 9_900_000.0),
        ] {
            let got = h.percentile_ns(p) as f64;
            assert!((got - exact).abs() / exact < 0.01, "p{p}: {got} vs {exact}");
        }
        assert_eq!(h.percentile_ns(100.0), 10_000_000);
        assert_eq!(h.percentile_ns(0.0), 1000);
        assert_eq!(h.max_ns(), 10_000_000);
        assert!((h.mean_ns() - 5_000_500.0).abs() < 1.0);
    }

    #[test]
    fn small_values_are_exact_and_empty_is_zero() {
        let mut h = Histogram::new();
        assert_eq!(h.percentile_ns(99.0), 0);
        for v in [3, 3, 3, 7] {
            h.record_ns(v);
        }
        assert_eq!(h.percentile_ns(50.0), 3);
        assert_eq!(h.percentile_ns(75.0), 3);
        assert_eq!(h.percentile_ns(76.0), 7);
    }

    #[test]
    fn merge_adds_counts() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        for v in 0..100 {
            a.record_ns(v * 10);
            b.record_ns(10_000 + v);
        }
        a.merge(&b);
        assert_eq!(a.count(), 200);
        assert_eq!(a.max_ns(), 10_099);
        assert!(a.percentile_ns(50.0) < 1000);
        assert!(a.percentile_ns(51.0) >= 10_000);
    }
}
