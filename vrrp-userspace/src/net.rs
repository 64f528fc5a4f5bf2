//! The kernel-facing side of the daemon: rtnetlink (links, VIPs), the raw IPPROTO_VRRP sockets
//! (sending adverts; the post-netfilter receive path kept open for the diagnosis), and
//! gratuitous ARP / unsolicited neighbour advertisements.

use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6},
};

use futures::TryStreamExt as _;
use netlink_packet_route::{
    address::{AddressAttribute, AddressMessage, AddressScope},
    link::{LinkAttribute, LinkFlags},
};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use thiserror::Error;

use crate::{
    config::Vip,
    packet::{Family, IPPROTO_VRRP, TTL},
};

#[derive(Debug, Error)]
pub enum NetError {
    #[error("cannot open a netlink socket: {0}")]
    Connect(#[source] io::Error),
    #[error("interface {ifname} does not exist")]
    NoInterface { ifname: String },
    #[error("interface {ifname}: {op}: {source}")]
    Netlink {
        ifname: String,
        op: &'static str,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("interface {ifname}: {op}: {source}")]
    Socket {
        ifname: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("interface {ifname} has no {family} address to send adverts from{hint}")]
    NoSource {
        ifname: String,
        family: &'static str,
        hint: &'static str,
    },
}

/// What the daemon needs to know about an interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    pub index: u32,
    pub mac: [u8; 6],
    /// Administratively up and with carrier.
    pub up: bool,
}

/// An address on an interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Addr {
    pub addr: IpAddr,
    pub prefix: u8,
    pub scope: AddressScope,
    pub message: AddressMessage,
}

/// One rtnetlink connection, its task spawned on the current runtime.
#[derive(Clone)]
pub struct Netlink {
    handle: rtnetlink::Handle,
}

impl Netlink {
    pub fn connect() -> Result<Self, NetError> {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(NetError::Connect)?;
        tokio::spawn(connection);
        Ok(Self { handle })
    }

    pub async fn link(&self, name: &str) -> Result<Link, NetError> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_owned())
            .execute();
        let msg = match links.try_next().await {
            Ok(Some(m)) => m,
            // ENODEV comes back as an error, not as an empty answer.
            Ok(None) | Err(_) => {
                return Err(NetError::NoInterface {
                    ifname: name.to_owned(),
                });
            }
        };
        let mut mac = [0u8; 6];
        for a in &msg.attributes {
            if let LinkAttribute::Address(bytes) = a
                && bytes.len() == 6
            {
                mac.copy_from_slice(bytes);
            }
        }
        let flags = msg.header.flags;
        Ok(Link {
            name: name.to_owned(),
            index: msg.header.index,
            mac,
            up: flags.contains(LinkFlags::Up) && flags.contains(LinkFlags::LowerUp),
        })
    }

    pub async fn addresses(&self, link: &Link) -> Result<Vec<Addr>, NetError> {
        let err = |source| NetError::Netlink {
            ifname: link.name.clone(),
            op: "list addresses",
            source,
        };
        let mut stream = self
            .handle
            .address()
            .get()
            .set_link_index_filter(link.index)
            .execute();
        let mut out = Vec::new();
        while let Some(msg) = stream.try_next().await.map_err(err)? {
            let addr = msg.attributes.iter().find_map(|a| match a {
                AddressAttribute::Local(ip) => Some(*ip),
                _ => None,
            });
            let addr = addr.or_else(|| {
                msg.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Address(ip) => Some(*ip),
                    _ => None,
                })
            });
            if let Some(addr) = addr {
                out.push(Addr {
                    addr,
                    prefix: msg.header.prefix_len,
                    scope: msg.header.scope,
                    message: msg,
                });
            }
        }
        Ok(out)
    }

    /// Adds a VIP; re-adding one that is there is not an error (`replace`).
    pub async fn add_vip(&self, link: &Link, vip: &Vip) -> Result<(), NetError> {
        let mut req = self
            .handle
            .address()
            .add(link.index, vip.addr, vip.prefix)
            .replace();
        let msg = req.message_mut();
        if let Some(scope) = vip.scope.as_deref() {
            msg.header.scope = match scope {
                "host" => AddressScope::Host,
                "link" => AddressScope::Link,
                "site" => AddressScope::Site,
                "nowhere" => AddressScope::Nowhere,
                _ => AddressScope::Universe,
            };
        }
        if let (Some(label), IpAddr::V4(_)) = (&vip.label, vip.addr) {
            msg.attributes.push(AddressAttribute::Label(label.clone()));
        }
        if let Some(brd) = vip.brd {
            msg.attributes.push(AddressAttribute::Broadcast(brd));
        }
        if vip.addr.is_ipv6() {
            // No duplicate address detection for a VIP that moves between routers (keepalived
            // does the same): DAD would hold it "tentative" for a second after a failover.
            msg.attributes.push(AddressAttribute::Flags(
                netlink_packet_route::address::AddressFlags::Nodad,
            ));
        }
        req.execute().await.map_err(|source| NetError::Netlink {
            ifname: link.name.clone(),
            op: "add VIP",
            source,
        })
    }

    /// Removes `addr` if `link` holds it; returns whether it was there.
    pub async fn del_vip(&self, link: &Link, addr: IpAddr) -> Result<bool, NetError> {
        let present = self
            .addresses(link)
            .await?
            .into_iter()
            .find(|a| a.addr == addr);
        let Some(found) = present else {
            return Ok(false);
        };
        match self.handle.address().del(found.message).execute().await {
            Ok(()) => Ok(true),
            // Gone in between (another process, a link flap): the goal is reached.
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EADDRNOTAVAIL => {
                Ok(false)
            }
            Err(source) => Err(NetError::Netlink {
                ifname: link.name.clone(),
                op: "delete VIP",
                source,
            }),
        }
    }

    /// The address adverts are sent from: the first global IPv4 address that is not a VIP, or
    /// for IPv6 the link-local address (RFC 5798 5.1.2.1).
    pub async fn source_address(
        &self,
        link: &Link,
        family: Family,
        vips: &[IpAddr],
    ) -> Result<IpAddr, NetError> {
        let addrs = self.addresses(link).await?;
        let pick = addrs.iter().map(|a| a.addr).find(|a| match (family, a) {
            (Family::V4, IpAddr::V4(v4)) => !vips.contains(a) && !v4.is_loopback(),
            (Family::V6, IpAddr::V6(v6)) => v6.is_unicast_link_local(),
            _ => false,
        });
        pick.ok_or(NetError::NoSource {
            ifname: link.name.clone(),
            family: if family == Family::V4 {
                "IPv4"
            } else {
                "IPv6 link-local"
            },
            hint: if family == Family::V4 {
                ": give it one, or set unicast_src_ip / mcast_src_ip"
            } else {
                ": is IPv6 enabled on it (net.ipv6.conf.IF.disable_ipv6)?"
            },
        })
    }
}

/// The raw IPPROTO_VRRP sockets of one interface and family. `tx` sends adverts (TTL / hop
/// limit 255, bound to `src` so that the kernel uses it as the source) and receives nothing (a
/// socket filter refuses all input: a raw socket bound to an address would only see packets
/// *to* that address anyway). `rx` is unbound, joined to the VRRP group on the interface (so
/// that real NICs pass it) and receives what netfilter lets through: the post-firewall view.
pub struct VrrpSocket {
    pub socket: Socket,
    tx: Socket,
    pub ifindex: u32,
    pub family: Family,
    pub src: IpAddr,
    ifname: String,
}

impl VrrpSocket {
    pub fn open(link: &Link, family: Family, src: IpAddr, group: IpAddr) -> Result<Self, NetError> {
        let e = |op: &'static str| {
            move |source| NetError::Socket {
                ifname: link.name.clone(),
                op,
                source,
            }
        };
        let domain = if family == Family::V4 {
            Domain::IPV4
        } else {
            Domain::IPV6
        };
        let raw = || {
            Socket::new(
                domain,
                Type::RAW,
                Some(Protocol::from(i32::from(IPPROTO_VRRP))),
            )
        };
        let tx = raw().map_err(e("open raw VRRP socket (needs CAP_NET_RAW)"))?;
        let rx = raw().map_err(e("open raw VRRP socket (needs CAP_NET_RAW)"))?;
        for s in [&tx, &rx] {
            s.bind_device(Some(link.name.as_bytes()))
                .map_err(e("SO_BINDTODEVICE"))?;
            s.set_nonblocking(true).map_err(e("O_NONBLOCK"))?;
        }
        // classic BPF "ret #0": the sending socket keeps no input.
        tx.attach_filter(&[socket2::SockFilter::new(0x06, 0, 0, 0)])
            .map_err(e("SO_ATTACH_FILTER"))?;
        match (family, src, group) {
            (Family::V4, IpAddr::V4(src4), IpAddr::V4(group4)) => {
                tx.set_ttl_v4(u32::from(TTL)).map_err(e("IP_TTL"))?;
                tx.set_multicast_ttl_v4(u32::from(TTL))
                    .map_err(e("IP_MULTICAST_TTL"))?;
                tx.set_multicast_loop_v4(false)
                    .map_err(e("IP_MULTICAST_LOOP"))?;
                // RFC 5798 does not say; keepalived marks adverts CS6 (network control).
                tx.set_tos_v4(0xc0).map_err(e("IP_TOS"))?;
                tx.set_multicast_if_v4(&src4)
                    .map_err(e("IP_MULTICAST_IF"))?;
                tx.bind(&SockAddr::from(SocketAddrV4::new(src4, 0)))
                    .map_err(e("bind to the source address"))?;
                rx.join_multicast_v4_n(
                    &group4,
                    &socket2::InterfaceIndexOrAddress::Index(link.index),
                )
                .map_err(e("join 224.0.0.18"))?;
            }
            (Family::V6, IpAddr::V6(src6), IpAddr::V6(group6)) => {
                tx.set_unicast_hops_v6(u32::from(TTL))
                    .map_err(e("IPV6_UNICAST_HOPS"))?;
                tx.set_multicast_hops_v6(u32::from(TTL))
                    .map_err(e("IPV6_MULTICAST_HOPS"))?;
                tx.set_multicast_loop_v6(false)
                    .map_err(e("IPV6_MULTICAST_LOOP"))?;
                tx.set_multicast_if_v6(link.index)
                    .map_err(e("IPV6_MULTICAST_IF"))?;
                tx.bind(&SockAddr::from(SocketAddrV6::new(src6, 0, 0, link.index)))
                    .map_err(e("bind to the link-local address"))?;
                rx.join_multicast_v6(&group6, link.index)
                    .map_err(e("join ff02::12"))?;
            }
            _ => {
                return Err(NetError::NoSource {
                    ifname: link.name.clone(),
                    family: "matching",
                    hint: "",
                });
            }
        }
        Ok(Self {
            socket: rx,
            tx,
            ifindex: link.index,
            family,
            src,
            ifname: link.name.clone(),
        })
    }

    /// A second handle on the sending socket, for the advert thread (`sender.rs`).
    pub fn tx_clone(&self) -> io::Result<Socket> {
        self.tx.try_clone()
    }

    /// Where `send` would send to `dst`.
    pub fn dst_addr(&self, dst: IpAddr) -> SockAddr {
        SockAddr::from(match dst {
            IpAddr::V4(d) => SocketAddr::V4(SocketAddrV4::new(d, 0)),
            IpAddr::V6(d) => SocketAddr::V6(SocketAddrV6::new(d, 0, 0, self.ifindex)),
        })
    }

    /// Sends one VRRP message (the kernel adds the IP header).
    pub fn send(&self, dst: IpAddr, vrrp: &[u8]) -> Result<(), NetError> {
        let addr = match dst {
            IpAddr::V4(d) => SocketAddr::V4(SocketAddrV4::new(d, 0)),
            IpAddr::V6(d) => SocketAddr::V6(SocketAddrV6::new(d, 0, 0, self.ifindex)),
        };
        self.tx
            .send_to(vrrp, &SockAddr::from(addr))
            .map(|_| ())
            .map_err(|source| NetError::Socket {
                ifname: self.ifname.clone(),
                op: "send advert",
                source,
            })
    }

    /// Reads one packet that reached the socket: its length in `buf` and its source. IPv4
    /// raw sockets deliver the IP header too; IPv6 ones only the VRRP message.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, Option<IpAddr>)> {
        use std::os::fd::AsRawFd as _;
        let (n, from) = nix::sys::socket::recvfrom::<nix::sys::socket::SockaddrStorage>(
            self.socket.as_raw_fd(),
            buf,
        )
        .map_err(io::Error::from)?;
        let src = from.and_then(|a| {
            a.as_sockaddr_in()
                .map(|v4| IpAddr::V4(v4.ip()))
                .or_else(|| a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
        });
        Ok((n, src))
    }
}

/// Gratuitous ARP (IPv4, RFC 5227 "ARP Announcement" as keepalived sends it: a request from
/// and for the VIP, to broadcast) and unsolicited neighbour advertisements (IPv6, RFC 4861
/// 7.2.6, to all-nodes with the override flag).
pub struct Announcer {
    /// AF_PACKET / SOCK_RAW with protocol 0: it can send whole frames and receives nothing,
    /// so a busy link costs it nothing.
    arp: std::os::fd::OwnedFd,
    /// The interface's own link-layer address (from getifaddrs), whose ifindex routes the frame.
    link_addr: nix::sys::socket::LinkAddr,
    na: Option<Socket>,
    mac: [u8; 6],
    ifname: String,
}

impl Announcer {
    pub fn open(link: &Link) -> Result<Self, NetError> {
        use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};
        let e = |op: &'static str| {
            move |errno: nix::errno::Errno| NetError::Socket {
                ifname: link.name.clone(),
                op,
                source: io::Error::from(errno),
            }
        };
        let arp = socket(
            AddressFamily::Packet,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(e(
            "open packet socket for gratuitous ARP (needs CAP_NET_RAW)",
        ))?;
        let link_addr = nix::ifaddrs::getifaddrs()
            .map_err(e("getifaddrs"))?
            .filter(|i| i.interface_name == link.name)
            .find_map(|i| i.address.and_then(|a| a.as_link_addr().copied()))
            .ok_or_else(|| NetError::NoInterface {
                ifname: link.name.clone(),
            })?;
        // IPv6 may be disabled on the link; then there is nothing to announce over it.
        let na = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))
            .ok()
            .and_then(|s| {
                s.bind_device(Some(link.name.as_bytes())).ok()?;
                s.set_multicast_hops_v6(255).ok()?;
                s.set_multicast_if_v6(link.index).ok()?;
                s.set_nonblocking(true).ok()?;
                Some(s)
            });
        Ok(Self {
            arp,
            link_addr,
            na,
            mac: link.mac,
            ifname: link.name.clone(),
        })
    }

    pub fn announce(&self, addr: IpAddr, ifindex: u32) -> Result<(), NetError> {
        match addr {
            IpAddr::V4(a) => {
                use std::os::fd::AsRawFd as _;
                let frame = gratuitous_arp(self.mac, a);
                nix::sys::socket::sendto(
                    self.arp.as_raw_fd(),
                    &frame,
                    &self.link_addr,
                    nix::sys::socket::MsgFlags::empty(),
                )
                .map(|_| ())
                .map_err(|errno| NetError::Socket {
                    ifname: self.ifname.clone(),
                    op: "send gratuitous ARP",
                    source: io::Error::from(errno),
                })
            }
            IpAddr::V6(a) => {
                let Some(sock) = &self.na else { return Ok(()) };
                let all_nodes =
                    SocketAddrV6::new(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1), 0, 0, ifindex);
                sock.send_to(&unsolicited_na(self.mac, a), &SockAddr::from(all_nodes))
                    .map(|_| ())
                    .map_err(|source| NetError::Socket {
                        ifname: self.ifname.clone(),
                        op: "send unsolicited NA",
                        source,
                    })
            }
        }
    }
}

/// An ARP request "who-has VIP tell VIP" from our MAC to broadcast (what keepalived sends).
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

/// An ICMPv6 neighbour advertisement for `target` with the override flag and our MAC as the
/// target link-layer address option; the kernel fills in the checksum.
pub fn unsolicited_na(mac: [u8; 6], target: Ipv6Addr) -> Vec<u8> {
    let mut m = Vec::with_capacity(32);
    m.extend_from_slice(&[136, 0, 0, 0]); // type NA, code, checksum
    m.extend_from_slice(&[0x20, 0, 0, 0]); // Override
    m.extend_from_slice(&target.octets());
    m.extend_from_slice(&[2, 1]); // target link-layer address, 8 bytes
    m.extend_from_slice(&mac);
    m
}

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
        let sum = crate::packet::frame::internet_checksum(&pkt);
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
