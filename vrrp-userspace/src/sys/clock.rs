//! The clock: read here, once per event, and passed down as a value.

use crate::time::Instant;

/// CLOCK_MONOTONIC now: the clock of the XDP program's stamps and of every timer.
pub fn now() -> Instant {
    Instant(monotonic_ns())
}

/// CLOCK_MONOTONIC in nanoseconds.
pub fn monotonic_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_or(0, |t| {
        u64::try_from(t.tv_sec()).unwrap_or(0) * 1_000_000_000
            + u64::try_from(t.tv_nsec()).unwrap_or(0)
    })
}

/// CLOCK_REALTIME minus CLOCK_MONOTONIC, in nanoseconds: turns kernel stamps into wall time.
pub fn realtime_offset_ns() -> i128 {
    let real = nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME).map_or(0, |t| {
        i128::from(t.tv_sec()) * 1_000_000_000 + i128::from(t.tv_nsec())
    });
    real - i128::from(monotonic_ns())
}
