//! `vrrpd watch`: one line per VRRP packet seen at XDP, the tcpdump replacement. Formatting and
//! per-source bookkeeping are here, pure; the kernel side is in `capture`.

use std::{collections::HashMap, net::IpAddr};

use serde::Serialize;
use vrrp_common::Verdict;

use crate::{
    packet::{Advert, DecodeError, Packet},
    record::WireAdvert,
};

/// What `watch` prints for one packet (and, with `--json`, serializes as one line).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct WatchLine {
    /// Kernel arrival stamp, CLOCK_MONOTONIC seconds.
    pub time: f64,
    pub ifname: String,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// `ok`, or why the XDP program or the decoder finds it wrong.
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
    pub fn line(&mut self, w: &WireAdvert, ifname: &str, now_ns: u64) -> WatchLine {
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

        match w.verdict {
            Verdict::Ok => {}
            Verdict::BadTtl => line.status = format!("bad-ttl({})", w.ttl),
            Verdict::BadVersion => line.status = String::from("bad-version"),
            Verdict::BadType => line.status = String::from("bad-type"),
            Verdict::BadLength => line.status = String::from("bad-length"),
        }
        match Packet::new_checked(&w.vrrp[..], w.family) {
            Ok(p) => {
                let a = Advert::from_packet(&p, w.family);
                line.version = Some(a.version.number());
                line.vrid = Some(a.vrid);
                line.priority = Some(a.priority);
                line.interval = Some(f64::from(a.interval_cs) / 100.0);
                line.auth = Some(a.auth.name());
                line.count = Some(p.count());
                line.addresses = a.addresses;
                if line.status == "ok"
                    && let Err(e) = p.verify_checksum(w.src, w.dst)
                {
                    line.status = status_of(&e);
                }
            }
            Err(e) => {
                if line.status == "ok" {
                    line.status = status_of(&e);
                }
                line.vrid = w.vrrp.get(1).copied();
            }
        }
        if w.truncated {
            line.status.push_str(",truncated");
        }
        line
    }
}

fn status_of(e: &DecodeError) -> String {
    match e {
        DecodeError::Truncated { .. } => "truncated",
        DecodeError::BadVersion(_) => "bad-version",
        DecodeError::BadType(_) => "bad-type",
        DecodeError::BadVrid => "bad-vrid",
        DecodeError::V2OverIpv6 => "v2-over-ipv6",
        DecodeError::CountMismatch { .. } => "bad-length",
        DecodeError::BadChecksum { .. } => "bad-checksum",
        DecodeError::ZeroInterval => "zero-interval",
        DecodeError::BadTtl(_) => "bad-ttl",
        DecodeError::BadIpHeader(_) | DecodeError::NotVrrp(_) => "bad-ip",
    }
    .to_owned()
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

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::packet::{Auth, ChecksumMode, Family, Version};

    fn wire(ktime_ns: u64, vrrp: Vec<u8>) -> WireAdvert {
        WireAdvert {
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
        assert_eq!(w.line(&wire(1, bytes), "eth0", 2).status, "bad-checksum");
        let mut rec = wire(3, seed_advert());
        rec.verdict = Verdict::BadTtl;
        rec.ttl = 64;
        let line = w.line(&rec, "eth0", 4);
        assert_eq!(line.status, "bad-ttl(64)");
        assert!(
            line.to_string().ends_with("ttl 64 first !bad-ttl(64)")
                || line.to_string().contains("!bad-ttl(64)")
        );
    }

    #[test]
    fn garbage_does_not_panic() {
        let mut w = Watcher::default();
        let line = w.line(&wire(1, vec![0xff; 3]), "eth0", 2);
        assert_eq!(line.status, "truncated");
    }
}
