//! The IP layer around a received VRRP message: addresses, TTL, the payload cut to the IP
//! length. Pure, for untrusted bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::vrrp::{DecodeError, IPPROTO_VRRP, TTL};

/// The IP layer of a received VRRP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpInfo {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ttl: u8,
}

/// Splits an IPv4 or IPv6 packet carrying VRRP into its addresses, TTL and VRRP payload (the
/// payload is cut to the IP length, dropping Ethernet padding). Checks RFC 5798 7.1's TTL.
pub fn parse_ip(bytes: &[u8]) -> Result<(IpInfo, &[u8]), DecodeError> {
    let first = *bytes.first().ok_or(DecodeError::BadIpHeader("empty"))?;
    let (info, payload, proto) = match first >> 4 {
        4 => {
            let ihl = usize::from(first & 0x0f) * 4;
            if ihl < 20 || bytes.len() < ihl {
                return Err(DecodeError::BadIpHeader("IPv4 header length"));
            }
            let total = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
            if total < ihl || total > bytes.len() {
                return Err(DecodeError::BadIpHeader("IPv4 total length"));
            }
            let src = Ipv4Addr::new(bytes[12], bytes[13], bytes[14], bytes[15]);
            let dst = Ipv4Addr::new(bytes[16], bytes[17], bytes[18], bytes[19]);
            (
                IpInfo {
                    src: src.into(),
                    dst: dst.into(),
                    ttl: bytes[8],
                },
                &bytes[ihl..total],
                bytes[9],
            )
        }
        6 => {
            if bytes.len() < 40 {
                return Err(DecodeError::BadIpHeader("IPv6 header length"));
            }
            let plen = usize::from(u16::from_be_bytes([bytes[4], bytes[5]]));
            if 40 + plen > bytes.len() {
                return Err(DecodeError::BadIpHeader("IPv6 payload length"));
            }
            let mut s = [0u8; 16];
            let mut d = [0u8; 16];
            s.copy_from_slice(&bytes[8..24]);
            d.copy_from_slice(&bytes[24..40]);
            let info = IpInfo {
                src: Ipv6Addr::from(s).into(),
                dst: Ipv6Addr::from(d).into(),
                ttl: bytes[7],
            };
            (info, &bytes[40..40 + plen], bytes[6])
        }
        _ => return Err(DecodeError::BadIpHeader("IP version")),
    };
    if proto != IPPROTO_VRRP {
        return Err(DecodeError::NotVrrp(proto));
    }
    // RFC 5798 7.1 on the multicast group; a unicast advert may cross routers (the router
    // checks it against the peer's min_ttl / max_ttl, as keepalived does).
    if info.dst.is_multicast() && info.ttl != TTL {
        return Err(DecodeError::BadTtl(info.ttl));
    }
    Ok((info, payload))
}

/// Strips an Ethernet header (and up to two VLAN tags) from a captured frame.
pub fn strip_ethernet(frame: &[u8]) -> Result<&[u8], DecodeError> {
    let mut off = 12;
    loop {
        let t = frame
            .get(off..off + 2)
            .ok_or(DecodeError::BadIpHeader("short Ethernet frame"))?;
        match u16::from_be_bytes([t[0], t[1]]) {
            0x8100 | 0x88a8 => off += 4,
            0x0800 | 0x86dd => return Ok(&frame[off + 2..]),
            _ => return Err(DecodeError::BadIpHeader("not IP")),
        }
    }
}
