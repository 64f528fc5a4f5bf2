//! `vrrpd watch`: one line per VRRP packet seen at XDP (the tcpdump replacement), and the
//! per-source table against the daemon. Formatting and per-source bookkeeping, pure; the
//! kernel side is in `vrrp::datapath`. A packet is decoded once, as the daemon does
//! (`RxAdvert::from_wire`), and its fault named by its `DropReason`.

use std::{collections::HashMap, net::IpAddr};

use serde::Serialize;
use vrrp::{
    northbound::status::Diagnosis,
    protocol::event::RxAdvert,
    wire::{
        record::WireRecord,
        vrrp::{Advert, Packet},
    },
};

/// What `watch` prints for one packet (and, with `--json`, serializes as one line).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct WatchLine {
    /// Kernel arrival stamp, CLOCK_MONOTONIC seconds.
    pub time: f64,
    pub ifname: String,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// `ok`, or the drop reason of what the XDP program or the decoder finds wrong (and
    /// `,truncated` when the capture was cut).
    pub status: String,
    pub version: Option<u8>,
    pub vrid: Option<u8>,
    pub priority: Option<u8>,
    /// Advert interval in seconds (v3: centisecond resolution).
    pub interval: Option<f64>,
    pub auth: Option<&'static str>,
    pub count: Option<u8>,
    pub addresses: Vec<IpAddr>,
    pub ttl: u8,
    pub vlan: u16,
    /// Seconds since the previous packet from this source for this VRID on this interface.
    pub since_last: Option<f64>,
    /// Microseconds from the kernel stamp to the moment userspace read the record.
    pub read_delay_us: f64,
}

/// Remembers the previous arrival per (interface, source, VRID).
#[derive(Default)]
pub struct Watcher {
    last: HashMap<(u32, IpAddr, u8), u64>,
}

/// Sources remembered at most; a spoofed flood must not grow this without bound.
const MAX_SOURCES: usize = 4096;

#[expect(clippy::cast_precision_loss, reason = "seconds for display")]
fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

impl Watcher {
    pub fn line(&mut self, w: &WireRecord, ifname: &str, now_ns: u64) -> WatchLine {
        let mut line = WatchLine {
            time: secs(w.ktime_ns),
            ifname: ifname.to_owned(),
            src: w.src,
            dst: w.dst,
            status: String::from("ok"),
            version: None,
            vrid: None,
            priority: None,
            interval: None,
            auth: None,
            count: None,
            addresses: Vec::new(),
            ttl: w.ttl,
            vlan: w.vlan,
            since_last: None,
            read_delay_us: secs(now_ns.saturating_sub(w.ktime_ns)) * 1e6,
        };
        let vrid = w.vrrp.get(1).copied().unwrap_or(0);
        let key = (w.ifindex, w.src, vrid);
        if let Some(prev) = self.last.get(&key) {
            line.since_last = Some(secs(w.ktime_ns.saturating_sub(*prev)));
        }
        if self.last.len() >= MAX_SOURCES && !self.last.contains_key(&key) {
            self.last.clear();
        }
        self.last.insert(key, w.ktime_ns);

        if let Err(e) = RxAdvert::from_wire(w).body {
            e.reason().name().clone_into(&mut line.status);
        }
        // The fields as far as they decode, also when the advert is refused (a bad checksum
        // still shows who sent what).
        if let Ok(p) = Packet::new_checked(&w.vrrp[..], w.family) {
            let a = Advert::from_packet(&p, w.family);
            line.version = Some(a.version.number());
            line.vrid = Some(a.vrid);
            line.priority = Some(a.priority);
            line.interval = Some(f64::from(a.interval_cs) / 100.0);
            line.auth = Some(a.auth.name());
            line.count = Some(p.count());
            line.addresses = a.addresses;
        } else {
            line.vrid = w.vrrp.get(1).copied();
        }
        if w.truncated {
            line.status.push_str(",truncated");
        }
        line
    }
}

impl std::fmt::Display for WatchLine {
    /// `12345.678901 eth0 10.0.0.5 > 224.0.0.18 VRRPv2 vrid 50 prio 150 int 1s auth pass addrs 1 [10.0.0.3] +1.000123s`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.6} {} {} > {}",
            self.time, self.ifname, self.src, self.dst
        )?;
        if let Some(v) = self.version {
            write!(f, " VRRPv{v}")?;
        }
        if let Some(v) = self.vrid {
            write!(f, " vrid {v}")?;
        }
        if let Some(p) = self.priority {
            write!(f, " prio {p}")?;
        }
        if let Some(i) = self.interval {
            write!(f, " int {i}s")?;
        }
        if let Some(a) = self.auth {
            write!(f, " auth {a}")?;
        }
        if let Some(c) = self.count {
            let addrs: Vec<String> = self.addresses.iter().map(ToString::to_string).collect();
            write!(f, " addrs {c} [{}]", addrs.join(" "))?;
        }
        if self.ttl != 255 {
            write!(f, " ttl {}", self.ttl)?;
        }
        if self.vlan != 0 {
            write!(f, " vlan {}", self.vlan)?;
        }
        match self.since_last {
            Some(s) => write!(f, " +{s:.6}s")?,
            None => f.write_str(" first")?,
        }
        if self.status != "ok" {
            write!(f, " !{}", self.status)?;
        }
        Ok(())
    }
}

/// The per-source table of `vrrpd watch` against the daemon.
pub fn table(d: &Diagnosis, vrid: Option<u8>) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<7} {:>4} {:<26} {:>3} {:>4} {:<5} {:>8} {:>20} {:>7} {:>9}  dropped",
        "iface",
        "vrid",
        "source",
        "ver",
        "prio",
        "auth",
        "last",
        "interval (jitter)",
        "wire",
        "delivered"
    );
    let mut sources = d.sources.clone();
    sources.sort_by(|a, b| (&a.ifname, a.vrid, a.src).cmp(&(&b.ifname, b.vrid, b.src)));
    for s in sources
        .iter()
        .filter(|s| vrid.is_none_or(|id| s.vrid == id))
    {
        let interval = match (s.interval_mean_s, s.interval_jitter_s) {
            (Some(m), Some(j)) => format!("{m:.3}s ({:.1}ms)", j * 1e3),
            _ => "-".to_owned(),
        };
        let delivered = if s.wire_total == 0 {
            "-".to_owned()
        } else {
            format!(
                "{:.0}%",
                100.0 * s.socket_total.min(s.wire_total) as f64 / s.wire_total as f64
            )
        };
        let dropped = if s.dropped.is_empty() {
            "-".to_owned()
        } else {
            s.dropped
                .iter()
                .map(|(r, n)| format!("{r}:{n}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let _ = writeln!(
            out,
            "{:<7} {:>4} {:<26} {:>3} {:>4} {:<5} {:>7.2}s {:>20} {:>7} {:>9}  {dropped}",
            s.ifname,
            s.vrid,
            s.src.to_string(),
            s.version,
            s.priority,
            s.auth,
            s.last_seen_s,
            interval,
            s.wire_total,
            delivered
        );
    }
    if d.findings.is_empty() {
        let _ = writeln!(out, "findings: none in the last {} s", d.window_s);
    } else {
        let _ = writeln!(out, "findings:");
        for f in &d.findings {
            let _ = writeln!(out, "  {}", f.message);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use vrrp::wire::vrrp::{Auth, ChecksumMode, Family, Version};
    use vrrp_common::Verdict;

    use super::*;

    fn wire(ktime_ns: u64, vrrp: Vec<u8>) -> WireRecord {
        WireRecord {
            ktime_ns,
            ifindex: 2,
            verdict: Verdict::Ok,
            family: Family::V4,
            vlan: 0,
            ttl: 255,
            src: Ipv4Addr::new(10, 0, 0, 5).into(),
            dst: Ipv4Addr::new(224, 0, 0, 18).into(),
            src_mac: [0; 6],
            vrrp_len: u16::try_from(vrrp.len()).expect("small"),
            vrrp,
            truncated: false,
        }
    }

    fn seed_advert() -> Vec<u8> {
        Advert {
            version: Version::V2,
            vrid: 50,
            priority: 150,
            interval_cs: 100,
            addresses: vec![Ipv4Addr::new(10, 0, 0, 3).into()],
            auth: Auth::pass("1111"),
        }
        .emit(
            Ipv4Addr::new(10, 0, 0, 5).into(),
            Ipv4Addr::new(224, 0, 0, 18).into(),
            ChecksumMode::default(),
        )
    }

    #[test]
    fn prints_fields_and_interval_since_last() {
        let mut w = Watcher::default();
        let first = w.line(&wire(1_000_000_000, seed_advert()), "eth0", 1_000_050_000);
        assert_eq!(first.since_last, None);
        assert!((first.read_delay_us - 50.0).abs() < 1e-6);
        let second = w.line(&wire(2_000_500_000, seed_advert()), "eth0", 2_000_600_000);
        assert_eq!(second.status, "ok");
        assert_eq!(
            second.to_string(),
            "2.000500 eth0 10.0.0.5 > 224.0.0.18 VRRPv2 vrid 50 prio 150 int 1s auth pass addrs 1 [10.0.0.3] +1.000500s"
        );
    }

    #[test]
    fn flags_bad_checksum_and_ttl() {
        let mut w = Watcher::default();
        let mut bytes = seed_advert();
        bytes[6] ^= 0xff;
        assert_eq!(w.line(&wire(1, bytes), "eth0", 2).status, "bad_checksum");
        let mut rec = wire(3, seed_advert());
        rec.verdict = Verdict::BadTtl;
        rec.ttl = 64;
        let line = w.line(&rec, "eth0", 4);
        assert_eq!(line.status, "bad_ttl");
        let text = line.to_string();
        assert!(
            text.contains(" ttl 64 ") && text.ends_with(" !bad_ttl"),
            "{text}"
        );
    }

    #[test]
    fn garbage_does_not_panic() {
        let mut w = Watcher::default();
        let line = w.line(&wire(1, vec![0xff; 3]), "eth0", 2);
        assert_eq!(line.status, "too_short");
    }
}
