//! A bounded latency histogram: log-linear buckets (8 per power of two, ≤ 12.5 % error), fixed
//! size whatever the number of samples.

const SUB_BITS: u32 = 3;
const SUB: u64 = 1 << SUB_BITS;
const LINEAR: u64 = 2 * SUB;
const BUCKETS: usize = (LINEAR + (64 - (SUB_BITS as u64 + 1)) * SUB) as usize;

/// Counts of values (nanoseconds) in log-linear buckets.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    samples: u64,
    sum: u128,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            counts: Box::new([0; BUCKETS]),
            samples: 0,
            sum: 0,
        }
    }
}

fn bucket(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros();
    let sub = (v >> (exp - SUB_BITS)) & (SUB - 1);
    (LINEAR + u64::from(exp - SUB_BITS - 1) * SUB + sub) as usize
}

fn lower_bound(b: usize) -> u64 {
    let b = b as u64;
    if b < LINEAR {
        return b;
    }
    let exp = (b - LINEAR) / SUB + u64::from(SUB_BITS) + 1;
    let sub = (b - LINEAR) % SUB;
    (1u64 << exp) | (sub << (exp - u64::from(SUB_BITS)))
}

impl Histogram {
    /// Adds one value.
    pub fn record(&mut self, v: u64) {
        self.counts[bucket(v)] += 1;
        self.samples += 1;
        self.sum += u128::from(v);
    }

    /// Number of values.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Mean, or 0 without samples.
    pub fn mean(&self) -> u64 {
        if self.samples == 0 {
            0
        } else {
            (self.sum / u128::from(self.samples)) as u64
        }
    }

    /// The value at quantile `q` (0..=1), as the lower bound of its bucket; 0 without samples.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.samples == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.samples as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (b, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return lower_bound(b);
            }
        }
        lower_bound(BUCKETS - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_u64_monotonically() {
        let mut last = 0;
        for v in (0..64).flat_map(|e| {
            [
                1u64 << e,
                (1u64 << e) + (1u64 << e) / 3,
                u64::MAX >> (63 - e),
            ]
        }) {
            let b = bucket(v);
            assert!(b < BUCKETS);
            assert!(lower_bound(b) <= v);
            let _ = last;
            last = b;
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_within_an_eighth() {
        let mut h = Histogram::default();
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        for (q, want) in [(0.5, 500_000.0), (0.95, 950_000.0), (0.99, 990_000.0)] {
            let got = h.quantile(q) as f64;
            assert!((got - want).abs() / want <= 0.125, "q{q}: {got} vs {want}");
        }
        assert_eq!(h.samples(), 1000);
        assert_eq!(h.mean(), 500_500);
    }
}
