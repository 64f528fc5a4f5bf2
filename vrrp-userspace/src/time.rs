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
}
