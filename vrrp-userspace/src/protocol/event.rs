//! What comes into the protocol: a received advert as one typed value, whichever path it came
//! by, and the identities instances and sources are known by.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use vrrp_common::Verdict;

use crate::{
    time::Instant,
    wire::{
        ip::parse_ip,
        record::WireRecord,
        vrrp::{Advert, DecodeError, Family, MCAST_V6, TTL},
    },
};

/// A virtual router on one interface and family: what an instance is, and what the XDP
/// program's watch map is keyed by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct InstanceKey {
    pub ifindex: u32,
    pub family: Family,
    pub vrid: u8,
}

/// One router's adverts for one virtual router on one interface: the unit of the
/// wire-versus-socket accounting (a router may run several VRIDs on one interface).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SourceKey {
    pub ifindex: u32,
    pub src: IpAddr,
    pub vrid: u8,
}

/// Which view of the network an advert came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Path {
    /// The XDP program, before netfilter: the wire's truth, with the kernel's arrival stamp.
    Wire,
    /// The raw VRRP socket, after netfilter (`--elections socket`, keepalived's view).
    Socket,
}

/// A received VRRP packet, decoded once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RxAdvert {
    pub ifindex: u32,
    pub family: Family,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ttl: u8,
    /// The kernel's arrival stamp (XDP), or when the socket was read.
    pub arrived: Instant,
    /// The VRID byte as received (0 when the packet is too short to carry one): which
    /// instance it is for, even when it does not decode.
    pub vrid: u8,
    pub path: Path,
    /// The advert, or why it is malformed.
    pub body: Result<Advert, DecodeError>,
}

impl RxAdvert {
    pub fn source(&self) -> SourceKey {
        SourceKey {
            ifindex: self.ifindex,
            src: self.src,
            vrid: self.vrid,
        }
    }

    pub fn key(&self) -> InstanceKey {
        InstanceKey {
            ifindex: self.ifindex,
            family: self.family,
            vrid: self.vrid,
        }
    }

    /// What the XDP program saw. Its verdict stands for the checks it made (TTL, version, type,
    /// length); the decoder does the rest (checksum, count, VRID, interval).
    pub fn from_wire(w: &WireRecord) -> Self {
        let decoded = Advert::parse(&w.vrrp, w.src, w.dst).map(|(a, _)| a);
        let body = match (w.verdict, decoded) {
            (Verdict::Ok, d) => d,
            (Verdict::BadTtl, _) => Err(DecodeError::BadTtl(w.ttl)),
            // The decoder names the fault in detail where it finds it.
            (_, Err(e)) => Err(e),
            (Verdict::BadVersion, Ok(_)) => Err(DecodeError::BadVersion(
                w.vrrp.first().map_or(0, |b| b >> 4),
            )),
            (Verdict::BadType, Ok(_)) => {
                Err(DecodeError::BadType(w.vrrp.first().map_or(0, |b| b & 0x0f)))
            }
            (Verdict::BadLength, Ok(a)) => Err(DecodeError::CountMismatch {
                count: u8::try_from(a.addresses.len()).unwrap_or(u8::MAX),
                needed: w.vrrp.len(),
                got: usize::from(w.vrrp_len),
            }),
        };
        Self {
            ifindex: w.ifindex,
            family: w.family,
            src: w.src,
            dst: w.dst,
            ttl: w.ttl,
            arrived: Instant(w.ktime_ns),
            vrid: w.vrrp.get(1).copied().unwrap_or(0),
            path: Path::Wire,
            body,
        }
    }

    /// What a raw VRRP socket read (after netfilter). IPv4 raw sockets deliver the IP header
    /// (TTL and destination checked); IPv6 ones the message only, so the destination is taken
    /// to be the VRRP group and the hop limit 255 (the kernel cannot be asked per packet
    /// without IPV6_RECVHOPLIMIT, which the diagnosis does not need).
    pub fn from_socket(
        ifindex: u32,
        family: Family,
        src: IpAddr,
        bytes: &[u8],
        arrived: Instant,
    ) -> Self {
        let (dst, ttl, vrrp, ip_err) = match family {
            Family::V4 => match parse_ip(bytes) {
                Ok((info, payload)) => (info.dst, info.ttl, payload, None),
                Err(e) => {
                    let ihl = usize::from(bytes.first().map_or(5, |b| b & 0x0f)) * 4;
                    let ttl = bytes.get(8).copied().unwrap_or(0);
                    (src, ttl, bytes.get(ihl..).unwrap_or(&[]), Some(e))
                }
            },
            Family::V6 => (IpAddr::V6(MCAST_V6), TTL, bytes, None),
        };
        let body = match ip_err {
            Some(e) => Err(e),
            None => Advert::parse(vrrp, src, dst).map(|(a, _)| a),
        };
        Self {
            ifindex,
            family,
            src,
            dst,
            ttl,
            arrived,
            vrid: vrrp.get(1).copied().unwrap_or(0),
            path: Path::Socket,
            body,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        protocol::drop::DropReason,
        wire::{
            frame,
            vrrp::{Auth, ChecksumMode, Version},
        },
    };

    fn seed_advert(src: IpAddr, dst: IpAddr) -> Vec<u8> {
        Advert {
            version: Version::V2,
            vrid: 50,
            priority: 150,
            interval_cs: 100,
            addresses: vec![IpAddr::from([10, 0, 0, 3])],
            auth: Auth::pass("1111"),
        }
        .emit(src, dst, ChecksumMode::default())
    }

    fn record(verdict: Verdict, ttl: u8, vrrp: Vec<u8>) -> WireRecord {
        WireRecord {
            ktime_ns: 42,
            ifindex: 2,
            verdict,
            family: Family::V4,
            vlan: 0,
            ttl,
            src: IpAddr::from([10, 0, 0, 5]),
            dst: IpAddr::from([224, 0, 0, 18]),
            src_mac: [0; 6],
            vrrp_len: u16::try_from(vrrp.len()).expect("small"),
            vrrp,
            truncated: false,
        }
    }

    #[test]
    fn a_wire_record_decodes_once_with_its_stamp() {
        let (s, d) = (IpAddr::from([10, 0, 0, 5]), IpAddr::from([224, 0, 0, 18]));
        let rx = RxAdvert::from_wire(&record(Verdict::Ok, 255, seed_advert(s, d)));
        assert_eq!(rx.arrived, Instant(42));
        assert_eq!(rx.vrid, 50);
        assert_eq!(rx.body.as_ref().map(|a| a.priority), Ok(150));
        let bad = RxAdvert::from_wire(&record(Verdict::BadTtl, 64, seed_advert(s, d)));
        assert_eq!(bad.body, Err(DecodeError::BadTtl(64)));
        assert_eq!(bad.vrid, 50, "still known by its VRID");
        let garbage = RxAdvert::from_wire(&record(Verdict::Ok, 255, vec![0x21]));
        assert_eq!(
            garbage.body.map_err(DecodeError::reason),
            Err(DropReason::TooShort)
        );
    }

    #[test]
    fn a_socket_read_parses_the_ip_header() {
        let (s, d) = (IpAddr::from([10, 0, 0, 5]), IpAddr::from([224, 0, 0, 18]));
        let pkt = frame::ip(s, d, 255, &seed_advert(s, d));
        let rx = RxAdvert::from_socket(2, Family::V4, s, &pkt, Instant(7));
        assert_eq!((rx.path, rx.dst, rx.vrid), (Path::Socket, d, 50));
        assert!(rx.body.is_ok());
        let ttl = frame::ip(s, d, 64, &seed_advert(s, d));
        let rx = RxAdvert::from_socket(2, Family::V4, s, &ttl, Instant(7));
        assert_eq!(rx.body, Err(DecodeError::BadTtl(64)));
        assert_eq!((rx.ttl, rx.vrid), (64, 50));
    }
}
