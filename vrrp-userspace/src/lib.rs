//! vrrpd: a VRRP daemon (RFC 5798 / RFC 3768) whose elections are fed by an XDP program that
//! sees adverts on the wire, before any firewall. See DESIGN.md for the architecture.

pub mod btf;
pub mod caps;
pub mod capture;
pub mod config;
pub mod control;
pub mod daemon;
pub mod diag;
pub mod drops;
pub mod fsm;
pub mod metrics;
pub mod net;
pub mod packet;
pub mod pcap;
pub mod record;
pub mod sender;
pub mod starve;
pub mod track;
pub mod watch;

/// CLOCK_MONOTONIC in nanoseconds: the clock of the XDP program's stamps and of every timer.
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
