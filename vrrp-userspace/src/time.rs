//! The one time type of the daemon: a point on CLOCK_MONOTONIC in nanoseconds, the clock of the
//! XDP program's `bpf_ktime_get_ns` stamps. A kernel arrival stamp, a timer deadline and the
//! moment an event is handled compare directly. Nothing here reads a clock: the daemon reads
//! it once per event (`sys::clock::now`) and passes the value down, so the protocol and the
//! conformance tests run on virtual time.

use std::time::Duration;

/// A point in time: CLOCK_MONOTONIC nanoseconds.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Instant(pub u64);

impl Instant {
    pub const ZERO: Self = Self(0);

    pub const fn from_nanos(ns: u64) -> Self {
        Self(ns)
    }

    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    #[must_use]
    pub fn plus(self, d: Duration) -> Self {
        Self(self.0.saturating_add(nanos(d)))
    }

    #[must_use]
    pub fn minus(self, d: Duration) -> Self {
        Self(self.0.saturating_sub(nanos(d)))
    }

    /// How long after `earlier` this is; zero when it is not after it.
    pub fn since(self, earlier: Self) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    pub fn as_secs_f64(self) -> f64 {
        Duration::from_nanos(self.0).as_secs_f64()
    }
}

impl std::fmt::Display for Instant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.6}", self.as_secs_f64())
    }
}

/// A duration in nanoseconds, saturating (a u64 of nanoseconds lasts 584 years).
pub fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Centiseconds, VRRP's unit of time (RFC 5798 5.2.7).
pub fn centis(cs: u16) -> Duration {
    Duration::from_millis(u64::from(cs) * 10)
}

/// Delays in microseconds, counted in log-linear buckets (exact below 8 µs, then four per
/// octave: within 25 % of the true value) so that a quantile is read from a fixed, small
/// array however many delays were counted. For the stamp-to-election delay of every advert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Histogram {
    counts: Vec<u64>,
    max_ns: u64,
    sum_ns: u64,
}

/// Buckets: 8 exact microseconds, then 4 per octave from 8 µs to 2^40 µs.
const BUCKETS: usize = 8 + 4 * 37;

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            max_ns: 0,
            sum_ns: 0,
        }
    }
}

fn bucket(us: u64) -> usize {
    if us < 8 {
        return usize::try_from(us).unwrap_or(0);
    }
    let octave = 63 - us.leading_zeros();
    let sub = (us >> (octave - 2)) & 3;
    usize::try_from(8 + u64::from(octave - 3) * 4 + sub).map_or(BUCKETS - 1, |i| i.min(BUCKETS - 1))
}

/// The bucket's upper bound in µs (exclusive).
fn bucket_upper(i: usize) -> u64 {
    let i = u64::try_from(i).unwrap_or(u64::MAX);
    if i < 8 {
        return i + 1;
    }
    let (octave, sub) = ((i - 8) / 4 + 3, (i - 8) % 4);
    (4 + sub + 1) << (octave - 2)
}

impl Histogram {
    pub fn record(&mut self, ns: u64) {
        if let Some(c) = self.counts.get_mut(bucket(ns / 1000)) {
            *c += 1;
        }
        self.max_ns = self.max_ns.max(ns);
        self.sum_ns = self.sum_ns.saturating_add(ns);
    }

    pub fn summary(&self) -> LatencySummary {
        let buckets = self
            .counts
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| (bucket_upper(i), *n))
            .collect();
        LatencySummary::from_buckets(buckets, Some(self.max_ns), self.sum_ns as f64 / 1000.0)
    }
}

/// A `Histogram` as `status` shows it: the count, quantiles (each a bucket's upper bound) and
/// the non-empty buckets, so that two summaries can be subtracted (`since`).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LatencySummary {
    pub samples: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// The largest delay counted: exact in a daemon's summary, its bucket's bound in a
    /// difference of two.
    pub max_us: f64,
    /// Of every delay counted (for the Prometheus histogram's `_sum`).
    pub sum_us: f64,
    /// (upper bound in µs, count), ascending.
    pub buckets: Vec<(u64, u64)>,
}

impl LatencySummary {
    fn from_buckets(buckets: Vec<(u64, u64)>, max_ns: Option<u64>, sum_us: f64) -> Self {
        let samples: u64 = buckets.iter().map(|(_, n)| n).sum();
        let quantile = |q: f64| {
            // The smallest bound below which at least q of the samples fall.
            let want = (q * samples as f64).ceil() as u64;
            let mut seen = 0;
            for (upper, n) in &buckets {
                seen += n;
                if seen >= want.max(1) {
                    return *upper as f64;
                }
            }
            0.0
        };
        let max_us = match (max_ns, buckets.last()) {
            (Some(ns), _) => ns as f64 / 1000.0,
            (None, Some((upper, _))) => *upper as f64,
            (None, None) => 0.0,
        };
        Self {
            samples,
            p50_us: quantile(0.5),
            p99_us: quantile(0.99),
            max_us,
            sum_us,
            buckets,
        }
    }

    /// What was counted after `earlier` (a summary of the same histogram, taken before).
    pub fn since(&self, earlier: &Self) -> Self {
        let buckets = self
            .buckets
            .iter()
            .map(|(upper, n)| {
                let before = earlier
                    .buckets
                    .iter()
                    .find(|(u, _)| u == upper)
                    .map_or(0, |(_, m)| *m);
                (*upper, n.saturating_sub(before))
            })
            .filter(|(_, n)| *n > 0)
            .collect();
        Self::from_buckets(buckets, None, (self.sum_us - earlier.sum_us).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Instant(5);
        assert_eq!(t.plus(Duration::from_nanos(3)), Instant(8));
        assert_eq!(t.minus(Duration::from_nanos(9)), Instant(0));
        assert_eq!(t.since(Instant(9)), Duration::ZERO);
        assert_eq!(
            Instant(u64::MAX).plus(Duration::from_secs(1)),
            Instant(u64::MAX)
        );
        assert_eq!(centis(150), Duration::from_millis(1500));
    }

    #[test]
    fn histogram_buckets_bound_each_delay_within_a_quarter() {
        for us in [
            0u64, 1, 7, 8, 9, 15, 16, 99, 100, 101, 175, 1000, 3700, 1_000_000,
        ] {
            let upper = bucket_upper(bucket(us));
            assert!(upper > us, "{us} µs in a bucket below {upper}");
            assert!(
                us < 8 || upper as f64 <= us as f64 * 1.25 + 1.0,
                "{us} µs: bound {upper}"
            );
        }
        // Contiguous: each bucket starts where the previous one ends.
        for i in 8..BUCKETS - 1 {
            assert_eq!(bucket(bucket_upper(i)), i + 1);
        }
    }

    #[test]
    fn quantiles_and_differences() {
        let mut h = Histogram::default();
        for _ in 0..98 {
            h.record(20_000);
        }
        h.record(150_000);
        h.record(2_000_000);
        let s = h.summary();
        assert_eq!(s.samples, 100);
        assert!(s.p50_us >= 20.0 && s.p50_us <= 25.0, "{s:?}");
        assert!(s.p99_us >= 150.0 && s.p99_us <= 188.0, "{s:?}");
        assert!((s.max_us - 2000.0).abs() < 1e-9);
        for _ in 0..10 {
            h.record(3_000);
        }
        let d = h.summary().since(&s);
        assert_eq!(d.samples, 10);
        assert!(d.p99_us <= 4.0 && d.max_us <= 4.0, "{d:?}");
    }
}
