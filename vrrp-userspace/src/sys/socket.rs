//! The raw IPPROTO_VRRP sockets: sending adverts, and the post-netfilter receive path that the
//! diagnosis counts (or, with `--elections socket`, the elections read).

use std::{
    io,
    net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6},
};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::netlink::{Link, NetError};
use crate::wire::vrrp::{Family, IPPROTO_VRRP, TTL};

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
                // By address: refused (EINVAL) when the source lives on another interface
                // than the one the socket is bound to, as a VMAC's adverts do (from the base's
                // address, out of the VMAC); the bound device decides then.
                match tx.set_multicast_if_v4(&src4) {
                    Err(err) if err.raw_os_error() != Some(libc::EINVAL) => {
                        return Err(e("IP_MULTICAST_IF")(err));
                    }
                    _ => {}
                }
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

    /// keepalived's `unicast_ttl`: the TTL (hop limit) of the adverts sent to unicast peers;
    /// the multicast TTL stays 255.
    pub fn set_unicast_ttl(&self, ttl: u8) -> io::Result<()> {
        match self.family {
            Family::V4 => self.tx.set_ttl_v4(u32::from(ttl)),
            Family::V6 => self.tx.set_unicast_hops_v6(u32::from(ttl)),
        }
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
