//! Building whole frames around a VRRP message: for `vrrpd capture`'s pcap output (records
//! carry the VRRP message and addresses, not the frame), for gratuitous ARP / unsolicited NA,
//! and for crafted test input.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::vrrp::{IPPROTO_VRRP, TTL};

/// An IPv4 (no options) or IPv6 header followed by `payload`, protocol VRRP.
pub fn ip(src: IpAddr, dst: IpAddr, ttl: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(40 + payload.len());
    match (src, dst) {
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            out.extend_from_slice(&[0x60, 0, 0, 0]);
            out.extend_from_slice(
                &u16::try_from(payload.len())
                    .unwrap_or(u16::MAX)
                    .to_be_bytes(),
            );
            out.extend_from_slice(&[IPPROTO_VRRP, ttl]);
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
        }
        (s, d) => {
            let octets = |a: IpAddr| match a {
                IpAddr::V4(a) => a.octets(),
                IpAddr::V6(_) => [0; 4],
            };
            let total = u16::try_from(20 + payload.len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&[0x45, 0xc0]); // DSCP CS6, as keepalived sends
            out.extend_from_slice(&total.to_be_bytes());
            out.extend_from_slice(&[0, 0, 0, 0, ttl, IPPROTO_VRRP, 0, 0]);
            out.extend_from_slice(&octets(s));
            out.extend_from_slice(&octets(d));
            let sum = internet_checksum(&out);
            out[10..12].copy_from_slice(&sum.to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

/// The RFC 1071 checksum of `bytes`.
pub fn internet_checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = bytes.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // Folded into 16 bits above.
    !u16::try_from(sum).unwrap_or(u16::MAX)
}

/// The virtual router MAC of RFC 5798 7.3: 00-00-5E-00-01-{VRID} (IPv4), 00-00-5E-00-02-{VRID} (IPv6).
pub const fn virtual_mac(vrid: u8, v6: bool) -> [u8; 6] {
    [0x00, 0x00, 0x5e, 0x00, if v6 { 0x02 } else { 0x01 }, vrid]
}

/// The multicast MAC an IP multicast destination maps to (RFC 1112 6.4, RFC 2464 7).
pub fn multicast_mac(dst: IpAddr) -> [u8; 6] {
    match dst {
        IpAddr::V4(a) => {
            let o = a.octets();
            [0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]]
        }
        IpAddr::V6(a) => {
            let o = a.octets();
            [0x33, 0x33, o[12], o[13], o[14], o[15]]
        }
    }
}

/// An Ethernet frame (with an 802.1Q tag when `vlan` is non-zero) around an IP packet.
pub fn ethernet(src: [u8; 6], dst: [u8; 6], vlan: u16, ip_packet: &[u8]) -> Vec<u8> {
    let ethertype: u16 = if ip_packet.first().is_some_and(|b| b >> 4 == 6) {
        0x86dd
    } else {
        0x0800
    };
    let mut out = Vec::with_capacity(18 + ip_packet.len());
    out.extend_from_slice(&dst);
    out.extend_from_slice(&src);
    if vlan != 0 {
        out.extend_from_slice(&0x8100u16.to_be_bytes());
        out.extend_from_slice(&(vlan & 0x0fff).to_be_bytes());
    }
    out.extend_from_slice(&ethertype.to_be_bytes());
    out.extend_from_slice(ip_packet);
    out
}

/// A complete advert frame as a router would send it: from the virtual MAC to the group.
pub fn advert(vrid: u8, src: IpAddr, dst: IpAddr, vrrp: &[u8]) -> Vec<u8> {
    ethernet(
        virtual_mac(vrid, src.is_ipv6()),
        multicast_mac(dst),
        0,
        &ip(src, dst, TTL, vrrp),
    )
}

/// An ARP request "who-has VIP tell VIP" from our MAC to broadcast (what keepalived sends: RFC
/// 5227's ARP Announcement).
pub fn gratuitous_arp(mac: [u8; 6], vip: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06]); // ARP
    f.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]); // Ethernet/IPv4, request
    f.extend_from_slice(&mac);
    f.extend_from_slice(&vip.octets());
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&vip.octets());
    f
}

/// An ICMPv6 neighbour advertisement for `target` (RFC 4861 7.2.6) with the override flag and
/// our MAC as the target link-layer address option; the kernel fills in the checksum.
pub fn unsolicited_na(mac: [u8; 6], target: Ipv6Addr) -> Vec<u8> {
    let mut m = Vec::with_capacity(32);
    m.extend_from_slice(&[136, 0, 0, 0]); // type NA, code, checksum
    m.extend_from_slice(&[0x20, 0, 0, 0]); // Override
    m.extend_from_slice(&target.octets());
    m.extend_from_slice(&[2, 1]); // target link-layer address, 8 bytes
    m.extend_from_slice(&mac);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gratuitous_arp_layout() {
        let f = gratuitous_arp([2, 0, 0, 0, 0, 5], Ipv4Addr::new(10, 0, 0, 3));
        assert_eq!(f.len(), 42);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[20..22], &[0, 1], "request");
        assert_eq!(
            &f[28..32],
            &[10, 0, 0, 3],
            "sender protocol address is the VIP"
        );
        assert_eq!(
            &f[38..42],
            &[10, 0, 0, 3],
            "target protocol address is the VIP"
        );
    }

    #[test]
    fn unsolicited_na_layout() {
        let m = unsolicited_na([2, 0, 0, 0, 0, 5], "fd00::3".parse().expect("addr"));
        assert_eq!((m[0], m[4]), (136, 0x20));
        assert_eq!(m.len(), 32);
    }
}
