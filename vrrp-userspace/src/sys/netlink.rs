//! rtnetlink: links, addresses, VIPs. One connection, its task spawned on the runtime.

use std::{io, net::IpAddr};

use futures::TryStreamExt as _;
use netlink_packet_route::{
    address::{AddressAttribute, AddressMessage, AddressProtocol, AddressScope},
    link::{LinkAttribute, LinkFlags},
};
use thiserror::Error;

use crate::{config::Vip, wire::vrrp::Family};

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
    #[error("route {dest}: {why}")]
    Route { dest: String, why: String },
    #[error("rule {rule}: {why}")]
    Rule { rule: String, why: String },
    #[error("VMAC {ifname}: {why}")]
    Vmac { ifname: String, why: String },
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

/// The IFA_PROTO vrrpd marks the VIPs it adds with (Linux 5.18+): keepalived's own number
/// (RTPROT_KEEPALIVED, 18, which keepalived 2.3.2 and later put on its addresses too), so that
/// either daemon knows the other's leftovers, and neither ever takes an address that an admin
/// or another program configured (those carry 0, or their own).
pub const VIP_PROTO: u8 = 18;

/// An address on an interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Addr {
    pub addr: IpAddr,
    pub prefix: u8,
    pub scope: AddressScope,
    /// IFA_PROTO: who added it (0: not said, e.g. `ip address add` by hand).
    pub proto: u8,
    /// IFA_LABEL (IPv4): the interface's name unless one was given.
    pub label: Option<String>,
    pub message: AddressMessage,
}

impl Addr {
    /// The address `vip` would be on `link`: the same address, prefix and label.
    fn is(&self, vip: &Vip, link: &Link) -> bool {
        let label = match vip.addr {
            IpAddr::V4(_) => Some(vip.label.as_deref().unwrap_or(&link.name)),
            IpAddr::V6(_) => None,
        };
        self.addr == vip.addr
            && self.prefix == vip.prefix
            && (label.is_none() || self.label.as_deref() == label)
    }
}

/// What adding a VIP found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Added {
    /// On the interface now, marked as ours.
    Added,
    /// The same address and prefix were there already, not added by vrrpd: left as they are
    /// (and so never removed by vrrpd either).
    Foreign,
}

/// What removing a VIP found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removed {
    Removed,
    /// Not on the interface (with that prefix and label).
    Absent,
    /// On the interface, but not added by vrrpd: left in place.
    Foreign,
}

/// The kernel's link notifications (RTMGRP_LINK), so that up/down and a re-created interface
/// are seen when they happen, with no polling. A notification only says "look again": the
/// reader re-reads the links it cares about, which also covers an overrun of the socket's
/// buffer (netlink-proto turns ENOBUFS into one more message).
pub struct LinkChanges(
    futures::channel::mpsc::UnboundedReceiver<(
        rtnetlink::packet_core::NetlinkMessage<rtnetlink::packet_route::RouteNetlinkMessage>,
        rtnetlink::sys::SocketAddr,
    )>,
);

impl LinkChanges {
    pub fn subscribe() -> Result<Self, NetError> {
        use rtnetlink::sys::{AsyncSocket as _, SocketAddr};
        let (mut connection, handle, messages) =
            rtnetlink::new_connection().map_err(NetError::Connect)?;
        connection
            .socket_mut()
            .socket_mut()
            .bind(&SocketAddr::new(0, rtnetlink::constants::RTMGRP_LINK))
            .map_err(NetError::Connect)?;
        // No requests go out on this one. Once `self` is dropped the connection ends at the
        // next notification it cannot deliver (netlink-proto notices a closed receiver only
        // when it has something for it).
        drop(handle);
        tokio::spawn(connection);
        Ok(Self(messages))
    }

    /// Waits for the next change (those already queued with it count as one); false once the
    /// subscription has ended.
    pub async fn changed(&mut self) -> bool {
        use futures::StreamExt as _;
        if self.0.next().await.is_none() {
            return false;
        }
        while self.0.try_recv().is_ok() {}
        true
    }
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

    /// Whether `name` is a macvlan, and on which interface (None: no such interface).
    pub async fn macvlan_base(&self, name: &str) -> Option<Option<u32>> {
        use netlink_packet_route::link::{InfoKind, LinkInfo};
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_owned())
            .execute();
        let msg = links.try_next().await.ok().flatten()?;
        let macvlan = msg.attributes.iter().any(|a| {
            matches!(a, LinkAttribute::LinkInfo(info)
                if info.iter().any(|i| matches!(i, LinkInfo::Kind(InfoKind::MacVlan))))
        });
        let base = msg.attributes.iter().find_map(|a| match a {
            LinkAttribute::Link(i) => Some(*i),
            _ => None,
        });
        Some(if macvlan { base } else { None })
    }

    /// Creates the macvlan `name` on `base` (private mode: it hears the wire, not its
    /// siblings) with `mac`, down (`set_up` once its sysctls are set).
    pub async fn add_macvlan(
        &self,
        name: &str,
        base: &Link,
        mac: [u8; 6],
    ) -> Result<Link, NetError> {
        use netlink_packet_route::link::MacVlanMode;
        let msg = rtnetlink::LinkMacVlan::new(name, base.index, MacVlanMode::Private)
            .address(mac.to_vec())
            .build();
        self.handle
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(|source| NetError::Netlink {
                ifname: name.to_owned(),
                op: "create the virtual MAC interface (macvlan)",
                source,
            })?;
        self.link(name).await
    }

    /// The message for a virtual route (see `add_route`).
    fn route_message(
        route: &crate::config::VirtualRoute,
        oif: Option<u32>,
    ) -> Result<netlink_packet_route::route::RouteMessage, String> {
        use netlink_packet_route::route::{RouteProtocol, RouteScope, RouteType};
        let mut b = rtnetlink::RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(route.dest, route.prefix)
            .map_err(|e| e.to_string())?;
        if let Some(via) = route.via {
            b = b.gateway(via).map_err(|e| e.to_string())?;
        }
        if let Some(src) = route.src {
            b = b.pref_source(src).map_err(|e| e.to_string())?;
        }
        if let Some(oif) = oif {
            b = b.output_interface(oif);
        }
        if let Some(t) = route.table {
            b = b.table_id(t);
        }
        if let Some(m) = route.metric {
            b = b.priority(m);
        }
        if route.onlink {
            b = b.onlink();
        }
        b = b.kind(match route.kind {
            crate::config::RouteKind::Unicast => RouteType::Unicast,
            crate::config::RouteKind::Blackhole => RouteType::BlackHole,
            crate::config::RouteKind::Unreachable => RouteType::Unreachable,
            crate::config::RouteKind::Prohibit => RouteType::Prohibit,
            crate::config::RouteKind::Throw => RouteType::Throw,
        });
        let scope = match route.scope.as_deref() {
            Some("host") => Some(RouteScope::Host),
            Some("link") => Some(RouteScope::Link),
            Some("site") => Some(RouteScope::Site),
            Some("nowhere") => Some(RouteScope::NoWhere),
            Some("global" | "universe") => Some(RouteScope::Universe),
            Some(n) => n.parse().ok().map(RouteScope::Other),
            // As ip route: a route without a gateway on an interface is link scope.
            None if route.via.is_none()
                && oif.is_some()
                && route.kind == crate::config::RouteKind::Unicast =>
            {
                Some(RouteScope::Link)
            }
            None => None,
        };
        if let Some(s) = scope {
            b = b.scope(s);
        }
        Ok(b.protocol(RouteProtocol::KeepAlived).build())
    }

    /// Adds a virtual route (marked protocol keepalived, 18); one already there is replaced.
    pub async fn add_route(
        &self,
        route: &crate::config::VirtualRoute,
        oif: Option<u32>,
    ) -> Result<(), NetError> {
        let msg = Self::route_message(route, oif).map_err(|why| route_error(route, why))?;
        self.handle
            .route()
            .add(msg)
            .replace()
            .execute()
            .await
            .map_err(|e| route_error(route, e.to_string()))
    }

    /// Removes a virtual route vrrpd added (gone already is not an error).
    pub async fn del_route(
        &self,
        route: &crate::config::VirtualRoute,
        oif: Option<u32>,
    ) -> Result<(), NetError> {
        let msg = Self::route_message(route, oif).map_err(|why| route_error(route, why))?;
        match self.handle.route().del(msg).execute().await {
            Ok(()) => Ok(()),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ESRCH => Ok(()),
            Err(e) => Err(route_error(route, e.to_string())),
        }
    }

    /// The message for a virtual rule (see `add_rule`).
    fn rule_message(
        rule: &crate::config::VirtualRule,
        v6: bool,
    ) -> netlink_packet_route::rule::RuleMessage {
        use netlink_packet_route::{
            AddressFamily,
            route::RouteProtocol,
            rule::{RuleAction, RuleAttribute, RuleMessage},
        };
        let mut m = RuleMessage::default();
        m.header.family = if v6 {
            AddressFamily::Inet6
        } else {
            AddressFamily::Inet
        };
        if let Some((a, len)) = rule.from {
            m.header.src_len = len;
            m.attributes.push(RuleAttribute::Source(a));
        }
        if let Some((a, len)) = rule.to {
            m.header.dst_len = len;
            m.attributes.push(RuleAttribute::Destination(a));
        }
        m.header.tos = rule.tos.unwrap_or(0);
        m.header.action = match rule.action {
            crate::config::RuleAction::Table(t) => {
                // The kernel reads FRA_TABLE first; the header's byte only matters to old
                // kernels, and tables past 255 put RT_TABLE_COMPAT there.
                m.header.table = u8::try_from(t).unwrap_or(252);
                m.attributes.push(RuleAttribute::Table(t));
                RuleAction::ToTable
            }
            crate::config::RuleAction::Goto(p) => {
                m.attributes.push(RuleAttribute::Goto(p));
                RuleAction::Goto
            }
            crate::config::RuleAction::Nop => RuleAction::Nop,
            crate::config::RuleAction::Blackhole => RuleAction::Blackhole,
            crate::config::RuleAction::Unreachable => RuleAction::Unreachable,
            crate::config::RuleAction::Prohibit => RuleAction::Prohibit,
        };
        m.attributes.push(RuleAttribute::Priority(rule.priority));
        if let Some((mark, mask)) = rule.fwmark {
            m.attributes.push(RuleAttribute::FwMark(mark));
            if let Some(mask) = mask {
                m.attributes.push(RuleAttribute::FwMask(mask));
            }
        }
        if let Some(i) = &rule.iif {
            m.attributes.push(RuleAttribute::Iifname(i.clone()));
        }
        if let Some(o) = &rule.oif {
            m.attributes.push(RuleAttribute::Oifname(o.clone()));
        }
        m.attributes
            .push(RuleAttribute::Protocol(RouteProtocol::KeepAlived));
        m
    }

    /// Adds a virtual rule (marked protocol keepalived, 18); the same rule there already is
    /// not an error.
    pub async fn add_rule(
        &self,
        rule: &crate::config::VirtualRule,
        v6: bool,
    ) -> Result<(), NetError> {
        let mut req = self.handle.rule().add();
        *req.message_mut() = Self::rule_message(rule, v6);
        match req.execute().await {
            Ok(()) => Ok(()),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EEXIST => Ok(()),
            Err(e) => Err(rule_error(rule, e.to_string())),
        }
    }

    /// Removes a virtual rule vrrpd added (gone already is not an error).
    pub async fn del_rule(
        &self,
        rule: &crate::config::VirtualRule,
        v6: bool,
    ) -> Result<(), NetError> {
        let msg = Self::rule_message(rule, v6);
        match self.handle.rule().del(msg).execute().await {
            Ok(()) => Ok(()),
            Err(rtnetlink::Error::NetlinkError(e))
                if e.raw_code() == -libc::ENOENT || e.raw_code() == -libc::ESRCH =>
            {
                Ok(())
            }
            Err(e) => Err(rule_error(rule, e.to_string())),
        }
    }

    /// Brings `link` up.
    pub async fn set_up(&self, link: &Link) -> Result<(), NetError> {
        let msg = rtnetlink::LinkUnspec::new_with_index(link.index)
            .up()
            .build();
        self.handle
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(|source| NetError::Netlink {
                ifname: link.name.clone(),
                op: "set up",
                source,
            })
    }

    /// Deletes the interface `link` (a VMAC vrrpd created).
    pub async fn del_link(&self, link: &Link) -> Result<(), NetError> {
        match self.handle.link().del(link.index).execute().await {
            Ok(()) => Ok(()),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(()),
            Err(source) => Err(NetError::Netlink {
                ifname: link.name.clone(),
                op: "delete the virtual MAC interface",
                source,
            }),
        }
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
            let proto = msg.attributes.iter().find_map(|a| match a {
                AddressAttribute::Protocol(p) => Some(u8::from(*p)),
                _ => None,
            });
            let label = msg.attributes.iter().find_map(|a| match a {
                AddressAttribute::Label(l) => Some(l.clone()),
                _ => None,
            });
            if let Some(addr) = addr {
                out.push(Addr {
                    addr,
                    prefix: msg.header.prefix_len,
                    scope: msg.header.scope,
                    proto: proto.unwrap_or(0),
                    label,
                    message: msg,
                });
            }
        }
        Ok(out)
    }

    /// Adds a VIP, marked as ours; re-adding one of ours is not an error (`replace`). The same
    /// address with the same prefix put there by someone else is left as it is.
    pub async fn add_vip(&self, link: &Link, vip: &Vip) -> Result<Added, NetError> {
        let foreign = self
            .addresses(link)
            .await?
            .iter()
            .any(|a| a.addr == vip.addr && a.prefix == vip.prefix && a.proto != VIP_PROTO);
        if foreign {
            return Ok(Added::Foreign);
        }
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
        msg.attributes
            .push(AddressAttribute::Protocol(AddressProtocol::Other(
                VIP_PROTO,
            )));
        if vip.addr.is_ipv6() {
            // No duplicate address detection for a VIP that moves between routers (keepalived
            // does the same): DAD would hold it "tentative" for a second after a failover.
            msg.attributes.push(AddressAttribute::Flags(
                netlink_packet_route::address::AddressFlags::Nodad,
            ));
        }
        req.execute()
            .await
            .map(|()| Added::Added)
            .map_err(|source| NetError::Netlink {
                ifname: link.name.clone(),
                op: "add VIP",
                source,
            })
    }

    /// Removes the VIP (its address, prefix and label) if `link` holds it and vrrpd added it.
    pub async fn del_vip(&self, link: &Link, vip: &Vip) -> Result<Removed, NetError> {
        let present = self
            .addresses(link)
            .await?
            .into_iter()
            .find(|a| a.is(vip, link));
        let Some(found) = present else {
            return Ok(Removed::Absent);
        };
        if found.proto != VIP_PROTO {
            return Ok(Removed::Foreign);
        }
        match self.handle.address().del(found.message).execute().await {
            Ok(()) => Ok(Removed::Removed),
            // Gone in between (another process, a link flap): the goal is reached.
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EADDRNOTAVAIL => {
                Ok(Removed::Absent)
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

fn route_error(route: &crate::config::VirtualRoute, why: String) -> NetError {
    NetError::Route {
        dest: format!("{}/{}", route.dest, route.prefix),
        why,
    }
}

fn rule_error(rule: &crate::config::VirtualRule, why: String) -> NetError {
    let from = rule
        .from
        .map_or_else(|| "all".to_owned(), |(a, l)| format!("{a}/{l}"));
    NetError::Rule {
        rule: format!("pref {} from {from}", rule.priority),
        why,
    }
}
