//! Gratuitous ARP and unsolicited neighbour advertisements for the VIPs of a new master.

use std::{
    io,
    net::{IpAddr, Ipv6Addr, SocketAddrV6},
};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::netlink::{Link, NetError};
use crate::wire::frame::{gratuitous_arp, unsolicited_na};

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
