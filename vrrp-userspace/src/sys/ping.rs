//! One ICMP echo, for the diagnosis: is a router whose adverts stopped still up?

use std::net::{IpAddr, SocketAddr};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// One ICMP echo to `addr` out of `ifname`; whether a reply came within `wait`.
pub async fn ping(addr: IpAddr, ifname: &str, wait: std::time::Duration) -> bool {
    let (domain, proto, echo, reply) = if addr.is_ipv4() {
        (Domain::IPV4, Protocol::ICMPV4, 8u8, 0u8)
    } else {
        (Domain::IPV6, Protocol::ICMPV6, 128, 129)
    };
    let Ok(sock) = Socket::new(domain, Type::RAW, Some(proto)) else {
        return false;
    };
    if sock.bind_device(Some(ifname.as_bytes())).is_err() || sock.set_nonblocking(true).is_err() {
        return false;
    }
    let id = u16::try_from(std::process::id() & 0xffff).unwrap_or(1) ^ 0x5652;
    let mut pkt = vec![echo, 0, 0, 0];
    pkt.extend_from_slice(&id.to_be_bytes());
    pkt.extend_from_slice(&[0, 1]);
    if addr.is_ipv4() {
        let sum = crate::wire::frame::internet_checksum(&pkt);
        pkt[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    if sock
        .send_to(&pkt, &SockAddr::from(SocketAddr::new(addr, 0)))
        .is_err()
    {
        return false;
    }
    let deadline = tokio::time::Instant::now() + wait;
    let mut buf = [0u8; 1500];
    while tokio::time::Instant::now() < deadline {
        while let Ok(n) = std::io::Read::read(&mut &sock, &mut buf) {
            let b = &buf[..n];
            let icmp = if addr.is_ipv4() {
                b.get(usize::from(b.first().map_or(5, |x| x & 0x0f)) * 4..)
                    .unwrap_or(&[])
            } else {
                b
            };
            if icmp.len() >= 8 && icmp[0] == reply && icmp[4..6] == id.to_be_bytes() {
                return true;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    false
}
