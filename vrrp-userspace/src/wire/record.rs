//! Decoding the XDP program's ring-buffer records ([`vrrp_common::AdvertRecord`]) from bytes,
//! safely: field by field at their `offset_of!` positions, so a short or odd record is an error,
//! not undefined behaviour.

use std::{
    mem::{offset_of, size_of},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use serde::{Deserialize, Serialize};
use thiserror::Error;
use vrrp_common::{
    AF_INET, AF_INET6, AdvertRecord, RECORD_FLAG_TRUNCATED, VRRP_CAPTURE_LEN, Verdict,
};

use super::vrrp::Family;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("ring record of {0} bytes, expected {1}")]
    Size(usize, usize),
    #[error("unknown address family {0}")]
    Family(u16),
    #[error("unknown verdict {0}")]
    Verdict(u32),
}

/// One VRRP packet as the XDP program saw it on the wire. Serialized as it travels to
/// `vrrpd capture` and `vrrpd watch --adverts` over the control socket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireRecord {
    /// Kernel arrival time, CLOCK_MONOTONIC nanoseconds.
    pub ktime_ns: u64,
    pub ifindex: u32,
    #[serde(with = "verdict_code")]
    pub verdict: Verdict,
    pub family: Family,
    pub vlan: u16,
    pub ttl: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_mac: [u8; 6],
    /// Length of the VRRP message on the wire.
    pub vrrp_len: u16,
    /// The bytes of it that were captured (all of it unless `truncated`).
    pub vrrp: Vec<u8>,
    pub truncated: bool,
}

pub(crate) fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_ne_bytes([b[off], b[off + 1]])
}
pub(crate) fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}
pub(crate) fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_ne_bytes(a)
}
fn addr(b: &[u8], off: usize, family: Family) -> IpAddr {
    match family {
        Family::V4 => Ipv4Addr::new(b[off], b[off + 1], b[off + 2], b[off + 3]).into(),
        Family::V6 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(&b[off..off + 16]);
            Ipv6Addr::from(a).into()
        }
    }
}

impl WireRecord {
    pub fn decode(b: &[u8]) -> Result<Self, RecordError> {
        if b.len() < size_of::<AdvertRecord>() {
            return Err(RecordError::Size(b.len(), size_of::<AdvertRecord>()));
        }
        let family = match u16_at(b, offset_of!(AdvertRecord, family)) {
            AF_INET => Family::V4,
            AF_INET6 => Family::V6,
            other => return Err(RecordError::Family(other)),
        };
        let verdict = Verdict::try_from(u32_at(b, offset_of!(AdvertRecord, verdict)))
            .map_err(RecordError::Verdict)?;
        let captured =
            usize::from(u16_at(b, offset_of!(AdvertRecord, captured))).min(VRRP_CAPTURE_LEN);
        let vrrp_off = offset_of!(AdvertRecord, vrrp);
        let mut src_mac = [0u8; 6];
        src_mac.copy_from_slice(
            &b[offset_of!(AdvertRecord, src_mac)..offset_of!(AdvertRecord, src_mac) + 6],
        );
        Ok(Self {
            ktime_ns: u64_at(b, offset_of!(AdvertRecord, ktime_ns)),
            ifindex: u32_at(b, offset_of!(AdvertRecord, ifindex)),
            verdict,
            family,
            vlan: u16_at(b, offset_of!(AdvertRecord, vlan)),
            ttl: b[offset_of!(AdvertRecord, ttl)],
            src: addr(b, offset_of!(AdvertRecord, src), family),
            dst: addr(b, offset_of!(AdvertRecord, dst), family),
            src_mac,
            vrrp_len: u16_at(b, offset_of!(AdvertRecord, vrrp_len)),
            vrrp: b[vrrp_off..vrrp_off + captured].to_vec(),
            truncated: u32_at(b, offset_of!(AdvertRecord, flags)) & RECORD_FLAG_TRUNCATED != 0,
        })
    }
}

/// The verdict as its number (the kernel's encoding), refused when unknown.
mod verdict_code {
    use serde::{Deserialize as _, Deserializer, Serializer};
    use vrrp_common::Verdict;

    #[expect(
        clippy::trivially_copy_pass_by_ref,
        reason = "serde's `with` signature"
    )]
    pub fn serialize<S: Serializer>(v: &Verdict, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(*v as u32)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Verdict, D::Error> {
        let n = u32::deserialize(d)?;
        Verdict::try_from(n).map_err(|n| serde::de::Error::custom(format!("unknown verdict {n}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(family: u16, verdict: u32, captured: u16) -> Vec<u8> {
        let mut b = vec![0u8; size_of::<AdvertRecord>()];
        b[offset_of!(AdvertRecord, ktime_ns)..][..8].copy_from_slice(&123_456_789u64.to_ne_bytes());
        b[offset_of!(AdvertRecord, ifindex)..][..4].copy_from_slice(&7u32.to_ne_bytes());
        b[offset_of!(AdvertRecord, verdict)..][..4].copy_from_slice(&verdict.to_ne_bytes());
        b[offset_of!(AdvertRecord, family)..][..2].copy_from_slice(&family.to_ne_bytes());
        b[offset_of!(AdvertRecord, captured)..][..2].copy_from_slice(&captured.to_ne_bytes());
        b[offset_of!(AdvertRecord, ttl)] = 255;
        b[offset_of!(AdvertRecord, src)..][..4].copy_from_slice(&[10, 0, 0, 5]);
        b[offset_of!(AdvertRecord, vrrp)] = 0x21;
        b
    }

    #[test]
    fn decodes_fields() {
        let w = WireRecord::decode(&record(AF_INET, 0, 20)).expect("decodes");
        assert_eq!(w.ktime_ns, 123_456_789);
        assert_eq!(w.ifindex, 7);
        assert_eq!(w.src, IpAddr::from([10, 0, 0, 5]));
        assert_eq!(w.vrrp.len(), 20);
        assert_eq!(w.vrrp[0], 0x21);
        assert_eq!(w.verdict, Verdict::Ok);
    }

    #[test]
    fn rejects_short_and_unknown() {
        assert!(matches!(
            WireRecord::decode(&[0u8; 10]),
            Err(RecordError::Size(10, _))
        ));
        assert_eq!(
            WireRecord::decode(&record(99, 0, 0)),
            Err(RecordError::Family(99))
        );
        assert_eq!(
            WireRecord::decode(&record(AF_INET, 42, 0)),
            Err(RecordError::Verdict(42))
        );
    }

    #[test]
    fn captured_is_clamped() {
        let w = WireRecord::decode(&record(AF_INET6, 0, u16::MAX)).expect("decodes");
        assert_eq!(w.vrrp.len(), VRRP_CAPTURE_LEN);
    }
}
