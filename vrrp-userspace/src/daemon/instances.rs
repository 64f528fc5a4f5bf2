//! What the daemon holds for its instances outside the router: interfaces, sockets, the
//! announcers, the advert thread, and each instance's resources (its notify queue, its send
//! counters, where its adverts go). Also the resolution of a config into the router's `Plan`:
//! each instance's interface, source address and sockets, with the checks that need the kernel.

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
    os::fd::{AsRawFd, RawFd},
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::io::unix::AsyncFd;
use tracing::{info, warn};

use super::{Daemon, DaemonError};
use crate::{
    config::{self, Config},
    datapath::Datapath,
    protocol::{
        event::{RxAdvert, SourceKey},
        fsm::PRIORITY_OWNER,
        router::{Plan, Spec, tracked_links},
    },
    sys::{
        advert_thread::{AdvertThread, Scheduling, SlotStats},
        announce::Announcer,
        clock,
        netlink::{Link, NetError, Netlink, Removed},
        scripts::Notifier,
        socket::VrrpSocket,
    },
    wire::vrrp::{Advert, ChecksumMode, Family},
};

/// The raw socket, registered with tokio for its reader task.
pub(super) struct SockFd(pub VrrpSocket);
impl AsRawFd for SockFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.socket.as_raw_fd()
    }
}

/// Packets that reached the raw sockets per source: the post-netfilter view.
pub(super) type SocketCounts = Arc<Mutex<HashMap<SourceKey, u64>>>;

/// How often a plan with instances that did not resolve is tried again.
const REPLAN_EVERY: Duration = Duration::from_secs(1);

/// Sources the socket counts remember at most (as the kernel's LRU map).
const MAX_COUNTED: usize = 4096;

/// One instance's resources. They outlive the instance in the router by the outputs of its
/// last step (a reload's stop), which is why they hold their own copy of its spec.
pub(super) struct Resources {
    pub spec: Spec,
    /// Where its VIPs go and its gratuitous ARPs leave from: its interface, or its VMAC.
    pub link: Link,
    /// The interface its adverts leave from (the socket's key): its interface, or its VMAC
    /// (unless `vmac_xmit_base`).
    pub tx_ifindex: u32,
    /// Where its adverts go: the group, or each unicast peer.
    pub dsts: Vec<IpAddr>,
    /// Its sends, periodic (the advert thread) and immediate (the executor).
    pub stats: Arc<SlotStats>,
    pub notifier: Notifier,
}

pub(super) struct Io {
    pub netlink: Netlink,
    pub datapath: Datapath,
    pub adverts: AdvertThread,
    pub scheduling: Scheduling,
    links: HashMap<String, Link>,
    pub sockets: HashMap<(u32, Family), Arc<AsyncFd<SockFd>>>,
    /// Sysctls vrrpd set (promote_secondaries, a VMAC's base's arp_ignore, ...), with the
    /// value each had before, put back at stop.
    pub sysctls: BTreeMap<String, String>,
    /// Whether the nftables table for VIPs that are not accepted is in place.
    pub nft_ready: bool,
    /// The virtual MAC interfaces vrrpd created, by name, with their base's ifindex.
    pub vmacs: BTreeMap<String, (Link, u32)>,
    /// The reader task of each socket that is read in userspace.
    readers: HashMap<(u32, Family), tokio::task::JoinHandle<()>>,
    pub announcers: HashMap<u32, Arc<Announcer>>,
    pub instances: BTreeMap<String, Resources>,
    pub groups: BTreeMap<String, Notifier>,
    pub socket_counts: SocketCounts,
    /// The socket filter counts in the kernel (see `refresh_socket_counts`), not a task.
    kernel_socket_counts: bool,
    /// With `--elections socket`, where the socket readers send what they read.
    socket_tx: Option<tokio::sync::mpsc::Sender<RxAdvert>>,
}

impl Io {
    pub fn new(
        netlink: Netlink,
        datapath: Datapath,
        adverts: AdvertThread,
        scheduling: Scheduling,
        socket_tx: Option<tokio::sync::mpsc::Sender<RxAdvert>>,
    ) -> Self {
        Self {
            netlink,
            datapath,
            adverts,
            scheduling,
            links: HashMap::new(),
            sockets: HashMap::new(),
            readers: HashMap::new(),
            sysctls: BTreeMap::new(),
            nft_ready: false,
            vmacs: BTreeMap::new(),
            announcers: HashMap::new(),
            instances: BTreeMap::new(),
            groups: BTreeMap::new(),
            socket_counts: SocketCounts::default(),
            kernel_socket_counts: false,
            socket_tx,
        }
    }

    /// An interface the daemon runs VRRP on: looked up once, XDP attached.
    async fn vrrp_link(&mut self, name: &str) -> Result<Link, DaemonError> {
        if let Some(l) = self.links.get(name).cloned()
            && self.datapath.attached().iter().any(|a| a.ifname == name)
        {
            // Still the same interface? One deleted (and maybe made again) since is
            // forgotten, so that nothing is resolved against a dead ifindex.
            match self.netlink.link(name).await {
                Ok(now) if now.index == l.index => return Ok(l),
                _ => {
                    self.forget_link(name);
                }
            }
        }
        let link = self.netlink.link(name).await?;
        if !self.datapath.attached().iter().any(|a| a.ifname == name) {
            self.datapath.attach(name)?;
        }
        self.links.insert(name.to_owned(), link.clone());
        Ok(link)
    }

    /// The interface a VIP goes on: its own `dev`, or the instance's.
    pub async fn vip_link(&mut self, default: &Link, vip: &config::Vip) -> Result<Link, NetError> {
        match &vip.dev {
            Some(dev) if dev != &default.name => {
                if let Some(l) = self.links.get(dev) {
                    Ok(l.clone())
                } else {
                    let l = self.netlink.link(dev).await?;
                    self.links.insert(dev.clone(), l.clone());
                    Ok(l)
                }
            }
            _ => Ok(default.clone()),
        }
    }

    /// Forgets everything held for interface `name` (its lookup, its XDP attachment, its
    /// sockets and announcer): it was re-created, and the next resolution starts afresh.
    /// Returns the ifindex it had.
    pub fn forget_link(&mut self, name: &str) -> Option<u32> {
        let old = self.links.remove(name)?.index;
        self.datapath.detach(name);
        self.close_ifindex(old);
        // Its VMACs went with it (the kernel deletes a macvlan with its base).
        let gone: Vec<String> = self
            .vmacs
            .iter()
            .filter(|(_, (_, b))| *b == old)
            .map(|(n, _)| n.clone())
            .collect();
        for name in gone {
            if let Some((link, _)) = self.vmacs.remove(&name) {
                self.links.remove(&name);
                self.close_ifindex(link.index);
            }
        }
        Some(old)
    }

    /// Closes what vrrpd holds on interface `ifindex`: its sockets, their readers, its
    /// announcer.
    fn close_ifindex(&mut self, ifindex: u32) {
        self.sockets.retain(|(i, _), _| *i != ifindex);
        self.readers.retain(|(i, _), h| {
            let keep = *i != ifindex;
            if !keep {
                h.abort();
            }
            keep
        });
        self.announcers.remove(&ifindex);
    }

    /// Where an instance's VIPs go (its VMAC, or its interface) and the ifindex its adverts
    /// leave from.
    pub fn homes(&self, spec: &Spec) -> Option<(Link, u32)> {
        let base = self.link(&spec.cfg.interface)?;
        // IPv4 only (an IPv6 instance's VIPs stay on its interface: see `resolve`).
        let vmac = spec
            .cfg
            .vmac
            .as_ref()
            .filter(|_| spec.cfg.family == Family::V4)
            .and_then(|n| self.vmacs.get(n))
            .filter(|(_, b)| *b == base.index)
            .map(|(l, _)| l);
        Some(match vmac {
            Some(v) if spec.cfg.vmac_xmit_base => (v.clone(), base.index),
            Some(v) => (v.clone(), v.index),
            None => (base.clone(), base.index),
        })
    }

    /// The link an instance was resolved on.
    pub fn link(&self, name: &str) -> Option<&Link> {
        self.links.get(name)
    }

    /// Opens the VRRP socket of an interface and family (once) and the announcer of an
    /// interface (once).
    fn open_sockets(
        &mut self,
        link: &Link,
        family: Family,
        src: IpAddr,
        group: IpAddr,
    ) -> Result<(), DaemonError> {
        let key = (link.index, family);
        if !self.sockets.contains_key(&key) {
            let sock = VrrpSocket::open(link, family, src, group)?;
            // Elections from the wire need nothing from this socket but how many adverts got
            // past netfilter: the kernel counts them and keeps none, so that a flood costs no
            // copy and no wakeup here. keepalived's mode (--elections socket) reads them.
            let counted_in_kernel = self.socket_tx.is_none()
                && match self
                    .datapath
                    .count_socket(std::os::fd::AsFd::as_fd(&sock.socket))
                {
                    Ok(()) => true,
                    Err(e) => {
                        warn!(
                            "{}: counting in the kernel failed, reading the socket instead: {e}",
                            link.name
                        );
                        false
                    }
                };
            #[expect(
                deprecated,
                reason = "AsyncFd::register is unsafe; the AsyncFd owns the socket it registers"
            )]
            let fd = AsyncFd::new(SockFd(sock)).map_err(|source| NetError::Socket {
                ifname: link.name.clone(),
                op: "register socket",
                source,
            })?;
            let fd = Arc::new(fd);
            if counted_in_kernel {
                self.kernel_socket_counts = true;
            } else {
                let reader = tokio::spawn(read_socket(
                    Arc::clone(&fd),
                    Arc::clone(&self.socket_counts),
                    self.socket_tx.clone(),
                    self.base_of(link.index),
                ));
                self.readers.insert(key, reader);
            }
            self.sockets.insert(key, fd);
        }
        if let std::collections::hash_map::Entry::Vacant(e) = self.announcers.entry(link.index) {
            e.insert(Arc::new(Announcer::open(link)?));
        }
        Ok(())
    }

    /// Copies the kernel's per-source socket counts into `socket_counts`.
    pub fn refresh_socket_counts(&self) {
        if !self.kernel_socket_counts {
            return;
        }
        let counts = self.datapath.socket_counts();
        // Replaced, not merged: the kernel's map is an LRU of 4096 sources, and so is this.
        *self
            .socket_counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            counts
                .into_iter()
                .fold(HashMap::new(), |mut m, ((ifindex, src, vrid), n)| {
                    // A VMAC's socket hears what XDP saw on its base: counted under the base.
                    let ifindex = self.base_of(ifindex);
                    *m.entry(SourceKey { ifindex, src, vrid }).or_insert(0) += n;
                    m
                });
    }

    pub fn socket_count(&self, key: &SourceKey) -> u64 {
        self.socket_counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .copied()
            .unwrap_or(0)
    }

    /// Sets a sysctl under /proc/sys/net, remembering the value it had the first time, to be
    /// put back at stop.
    fn set_sysctl(&mut self, path: &str, value: &str) -> std::io::Result<()> {
        let full = format!("/proc/sys/net/{path}");
        let old = std::fs::read_to_string(&full)?;
        std::fs::write(&full, value)?;
        self.sysctls
            .entry(full)
            .or_insert_with(|| old.trim().to_owned());
        Ok(())
    }

    /// keepalived's `promote_secondaries`: set on the interface while vrrpd runs, so that when
    /// its primary address goes, the kernel promotes a VIP of the same subnet instead of
    /// deleting it with the primary.
    fn promote_secondaries(&mut self, ifname: &str) {
        if let Err(e) = self.set_sysctl(&format!("ipv4/conf/{ifname}/promote_secondaries"), "1") {
            warn!("{ifname}: cannot set promote_secondaries: {e}");
        }
    }

    /// Puts back the sysctls vrrpd changed (those of a VMAC it deleted are gone with it).
    pub fn restore_sysctls(&mut self) {
        for (path, old) in std::mem::take(&mut self.sysctls) {
            let _ = std::fs::write(&path, old);
        }
    }

    /// The virtual MAC interface of an instance (RFC 5798 7.3, keepalived's `use_vmac`): a
    /// private macvlan on `base` carrying 00:00:5e:00:01:VRID, up from the start (the VIPs
    /// come and go with mastership, not the interface), with keepalived's sysctls: on the
    /// VMAC arp_ignore 1, accept_local 1, rp_filter 0, promote_secondaries 1 and no IPv6 (so
    /// that a backup's VMAC sends nothing: no NDP, no MLD); on the base arp_ignore 1 and
    /// arp_filter 1 (the base never answers ARP for the VIPs) and arp_announce 2, put back at
    /// stop. One that a
    /// crash left behind is deleted and made again; an interface of that name that is not a
    /// macvlan on `base` is an error.
    pub async fn ensure_vmac(
        &mut self,
        name: &str,
        base: &Link,
        vrid: u8,
    ) -> Result<Link, DaemonError> {
        if let Some((link, b)) = self.vmacs.get(name)
            && *b == base.index
        {
            return Ok(link.clone());
        }
        match self.netlink.macvlan_base(name).await {
            None => {}
            Some(Some(b)) if b == base.index => {
                if let Ok(stale) = self.netlink.link(name).await {
                    info!(
                        "VMAC {name} on {} left behind (a crash?): deleted and made again",
                        base.name
                    );
                    self.netlink.del_link(&stale).await?;
                }
            }
            Some(_) => {
                return Err(DaemonError::Net(NetError::Vmac {
                    ifname: name.to_owned(),
                    why: format!(
                        "an interface of that name exists and is not a macvlan on {}",
                        base.name
                    ),
                }));
            }
        }
        let mac = [0x00, 0x00, 0x5e, 0x00, 0x01, vrid];
        let link = self.netlink.add_macvlan(name, base, mac).await?;
        for (path, value) in [
            (format!("ipv4/conf/{name}/arp_ignore"), "1"),
            (format!("ipv4/conf/{name}/accept_local"), "1"),
            (format!("ipv4/conf/{name}/rp_filter"), "0"),
            (format!("ipv4/conf/{name}/promote_secondaries"), "1"),
            (format!("ipv6/conf/{name}/disable_ipv6"), "1"),
            (format!("ipv4/conf/{}/arp_ignore", base.name), "1"),
            (format!("ipv4/conf/{}/arp_filter", base.name), "1"),
            // Beyond keepalived: the base's own ARP requests (for a client the master answers
            // from the VIP) take the base's address as sender, not the VIP, which would
            // otherwise teach every host the base's MAC for the VIP.
            (format!("ipv4/conf/{}/arp_announce", base.name), "2"),
        ] {
            if let Err(e) = self.set_sysctl(&path, value) {
                warn!(
                    "VMAC {name}: cannot set net.{}: {e}",
                    path.replace('/', ".")
                );
            }
        }
        // The VMAC's own sysctls die with it: only the base's are put back.
        self.sysctls
            .retain(|p, _| !p.contains(&format!("/conf/{name}/")));
        self.clear_all_rp_filter();
        self.netlink.set_up(&link).await?;
        let link = self.netlink.link(name).await?;
        info!(
            "VMAC {name} on {}: {}",
            base.name,
            mac.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":")
        );
        self.vmacs
            .insert(name.to_owned(), (link.clone(), base.index));
        self.links.insert(name.to_owned(), link.clone());
        Ok(link)
    }

    /// keepalived's clear_rp_filter: traffic for a VIP arrives on the VMAC while the route
    /// back leaves from the base, which a strict `all.rp_filter` drops; each interface (and
    /// `default`) keeps at least the filtering `all` gave it, and `all` goes to 0.
    fn clear_all_rp_filter(&mut self) {
        let all = std::fs::read_to_string("/proc/sys/net/ipv4/conf/all/rp_filter")
            .ok()
            .and_then(|v| v.trim().parse::<u8>().ok())
            .unwrap_or(0);
        if all == 0 {
            return;
        }
        let Ok(dir) = std::fs::read_dir("/proc/sys/net/ipv4/conf") else {
            return;
        };
        for entry in dir.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == "all" || self.vmacs.contains_key(&name) {
                continue;
            }
            let path = format!("ipv4/conf/{name}/rp_filter");
            let now = std::fs::read_to_string(format!("/proc/sys/net/{path}"))
                .ok()
                .and_then(|v| v.trim().parse::<u8>().ok())
                .unwrap_or(0);
            if now < all {
                let _ = self.set_sysctl(&path, &all.to_string());
            }
        }
        warn!(
            "NOTICE: setting sysctl net.ipv4.conf.all.rp_filter from {all} to 0 (the VMAC's VIPs are reached through it); each interface keeps {all}"
        );
        let _ = self.set_sysctl("ipv4/conf/all/rp_filter", "0");
    }

    /// Deletes a VMAC vrrpd made, and what it held for it.
    pub async fn drop_vmac(&mut self, name: &str) {
        let Some((link, _)) = self.vmacs.remove(name) else {
            return;
        };
        self.links.remove(name);
        self.close_ifindex(link.index);
        match self.netlink.del_link(&link).await {
            Ok(()) => info!("VMAC {name} deleted"),
            Err(e) => warn!("VMAC {name}: {e}"),
        }
    }

    /// Deletes every VMAC vrrpd made (at stop).
    pub async fn drop_vmacs(&mut self) {
        let names: Vec<String> = self.vmacs.keys().cloned().collect();
        for name in names {
            self.drop_vmac(&name).await;
        }
    }

    /// The base interface's ifindex of the VMAC `ifindex` (or `ifindex` itself).
    fn base_of(&self, ifindex: u32) -> u32 {
        self.vmacs
            .values()
            .find(|(l, _)| l.index == ifindex)
            .map_or(ifindex, |(_, b)| *b)
    }

    /// Lets every queued notify script finish (notify_stop at shutdown), for at most `limit`.
    pub async fn finish_notifiers(&mut self, limit: Duration) {
        for r in self.instances.values_mut() {
            r.notifier.finish(limit).await;
        }
        for n in self.groups.values_mut() {
            n.finish(limit).await;
        }
    }
}

/// The group an instance's adverts go to.
pub(super) fn group_address(cfg: &config::Instance, global: &config::Global) -> IpAddr {
    match cfg.family {
        Family::V4 => IpAddr::V4(global.mcast_group4),
        Family::V6 => IpAddr::V6(global.mcast_group6),
    }
}

/// What an instance advertises at `priority`, encoded for each destination.
pub(super) fn packets(spec: &Spec, dsts: &[IpAddr], priority: u8) -> Vec<(IpAddr, Vec<u8>)> {
    let cfg = &spec.cfg;
    let advert = Advert {
        version: cfg.version,
        vrid: cfg.vrid,
        priority,
        interval_cs: cfg.advert_int_cs,
        addresses: cfg.vips.iter().map(|v| v.addr).collect(),
        auth: cfg.wire_auth(),
    };
    let mode = if cfg.checksum_as_v2 {
        ChecksumMode::MessageOnly
    } else {
        ChecksumMode::PseudoHeader
    };
    dsts.iter()
        .map(|d| (*d, advert.emit(spec.src, *d, mode)))
        .collect()
}

impl Daemon {
    /// Resolves `config` into the router's plan: each instance's interface (XDP attached),
    /// source address and sockets. An instance that is new by name has its stale VIPs removed
    /// first (left by a crash, or by keepalived); one whose resolution fails is reported and
    /// left out, unless `strict` (the start), where it stops the daemon.
    pub(super) async fn plan(
        &mut self,
        config: &Config,
        strict: bool,
    ) -> Result<Plan, DaemonError> {
        let mut plan = Plan {
            groups: config.sync_groups.clone(),
            scripts: config.scripts.clone(),
            files: config.track_files.clone(),
            processes: config.track_processes.clone(),
            ..Plan::default()
        };
        let mut unresolved = std::collections::BTreeSet::new();
        for cfg in &config.instances {
            let fresh = self.router.get(&cfg.name).is_none();
            match self.resolve(cfg, &config.global, fresh).await {
                Ok(spec) => plan.instances.push(spec),
                Err(e) if strict => {
                    return Err(DaemonError::Instance {
                        instance: cfg.name.clone(),
                        source: Box::new(e),
                    });
                }
                Err(e) => {
                    if self.unresolved.contains(&cfg.name) {
                        tracing::debug!("({}) still not started: {e}", cfg.name);
                    } else {
                        tracing::error!(
                            "({}) not started: {e}; tried again every second until it resolves",
                            cfg.name
                        );
                    }
                    unresolved.insert(cfg.name.clone());
                }
            }
        }
        for name in self.unresolved.difference(&unresolved) {
            if config.instances.iter().any(|i| &i.name == name) {
                info!("({name}) resolved: starting");
            }
        }
        self.replan_at = (!unresolved.is_empty()).then(|| clock::now().plus(REPLAN_EVERY));
        self.unresolved = unresolved;
        for l in tracked_links(config) {
            let up = self.io.netlink.link(&l).await.is_ok_and(|x| x.up);
            plan.links.insert(l, up);
        }
        Ok(plan)
    }

    async fn resolve(
        &mut self,
        cfg: &std::sync::Arc<config::Instance>,
        global: &config::Global,
        fresh: bool,
    ) -> Result<Spec, DaemonError> {
        let link = self.io.vrrp_link(&cfg.interface).await?;
        // The VIPs' interface: the VMAC (made now, whatever the state), or the interface.
        let vip_home = match &cfg.vmac {
            Some(name) if cfg.family == Family::V4 => {
                self.io.ensure_vmac(name, &link, cfg.vrid).await?
            }
            Some(name) => {
                if fresh {
                    warn!(
                        "({}) use_vmac {name}: vrrpd makes no IPv6 VMAC yet; the VIPs go on {} and the adverts leave from its own MAC",
                        cfg.name, link.name
                    );
                }
                link.clone()
            }
            None => link.clone(),
        };
        let vips: Vec<IpAddr> = cfg.vips.iter().map(|v| v.addr).collect();
        let src = match cfg.unicast_src_ip.or(cfg.mcast_src_ip) {
            Some(a) => a,
            None => {
                self.io
                    .netlink
                    .source_address(&link, cfg.family, &vips)
                    .await?
            }
        };
        if cfg.priority == PRIORITY_OWNER {
            let held: Vec<IpAddr> = self
                .io
                .netlink
                .addresses(&link)
                .await?
                .into_iter()
                .map(|a| a.addr)
                .collect();
            // keepalived runs priority 255 (also what `state MASTER` without a priority means)
            // as master whether or not the addresses are the interface's own; so does vrrpd.
            if let Some(missing) = vips.iter().find(|v| !held.contains(v)) {
                warn!(
                    "({}) priority 255 (the address owner), but {} does not hold {missing}: it runs as master and adds the VIPs, as keepalived does",
                    cfg.name, link.name
                );
            }
        } else if fresh {
            // Left behind by a crash (or by keepalived): an address we would hold only as master.
            // Only what vrrpd (or keepalived) added: an address configured by hand stays.
            for v in cfg.vips.iter().chain(&cfg.excluded_vips) {
                let on = self.io.vip_link(&vip_home, v).await?;
                match self.io.netlink.del_vip(&on, v).await? {
                    Removed::Removed => info!(
                        "({}) removed stale VIP {}/{} from {}",
                        cfg.name, v.addr, v.prefix, on.name
                    ),
                    Removed::Foreign => warn!(
                        "({}) VIP {}/{} is on {} but was not added by vrrpd (by hand, or by another program): left in place, so this router answers for it also while BACKUP",
                        cfg.name, v.addr, v.prefix, on.name
                    ),
                    Removed::Absent => {}
                }
            }
            // Its routes too (only those marked as vrrpd's / keepalived's).
            for r in &cfg.virtual_routes {
                let oif = match &r.dev {
                    Some(dev) => self.io.netlink.link(dev).await.ok().map(|l| l.index),
                    None => None,
                };
                let _ = self.io.netlink.del_route(r, oif).await;
            }
            for r in &cfg.virtual_rules {
                let _ = self.io.netlink.del_rule(r, r.is_v6(cfg.family)).await;
            }
        }
        if cfg.promote_secondaries {
            self.io.promote_secondaries(&link.name);
        }
        let group = group_address(cfg, global);
        self.io.open_sockets(&link, cfg.family, src, group)?;
        if vip_home.index != link.index {
            // Adverts and gratuitous ARPs from the virtual MAC (adverts from the base with
            // vmac_xmit_base); what the VMAC's socket hears counts under the base.
            self.io.open_sockets(&vip_home, cfg.family, src, group)?;
        }
        if let Some(ttl) = cfg.unicast_ttl.filter(|_| !cfg.unicast_peers.is_empty()) {
            let tx = if vip_home.index != link.index && !cfg.vmac_xmit_base {
                vip_home.index
            } else {
                link.index
            };
            // The socket is the interface's: the instances on it share one unicast TTL.
            if let Some(sock) = self.io.sockets.get(&(tx, cfg.family))
                && let Err(e) = sock.get_ref().0.set_unicast_ttl(ttl)
            {
                warn!("({}) unicast_ttl {ttl}: {e}", cfg.name);
            }
        }
        Ok(Spec {
            cfg: cfg.clone(),
            ifindex: link.index,
            src,
        })
    }

    /// The resources of instance `name`, made on first use.
    pub(super) fn resources(&mut self, name: &str) -> Option<&mut Resources> {
        if !self.io.instances.contains_key(name) {
            let spec = self.router.get(name)?.spec.clone();
            let (link, tx_ifindex) = self.io.homes(&spec)?;
            let dsts = if spec.cfg.unicast_peers.is_empty() {
                vec![group_address(&spec.cfg, &self.config.global)]
            } else {
                spec.cfg.unicast_peers.clone()
            };
            let notifier = Notifier::spawn(format!("({name})"));
            self.io.instances.insert(
                name.to_owned(),
                Resources {
                    spec,
                    link,
                    tx_ifindex,
                    dsts,
                    stats: Arc::default(),
                    notifier,
                },
            );
        }
        self.io.instances.get_mut(name)
    }

    /// A reload changed the instance's config: its copy of the spec and where its adverts go
    /// follow (its notify queue and counters stay).
    pub(super) fn renew_resources(&mut self, name: &str) {
        let Some(spec) = self.router.get(name).map(|v| v.spec.clone()) else {
            return;
        };
        let dsts = if spec.cfg.unicast_peers.is_empty() {
            vec![group_address(&spec.cfg, &self.config.global)]
        } else {
            spec.cfg.unicast_peers.clone()
        };
        let homes = self.io.homes(&spec);
        if let Some(r) = self.io.instances.get_mut(name) {
            if let Some((link, tx_ifindex)) = homes {
                r.link = link;
                r.tx_ifindex = tx_ifindex;
            }
            r.spec = spec;
            r.dsts = dsts;
        }
    }

    /// The notify queue of sync group `name`, made on first use.
    pub(super) fn group_notifier(&mut self, name: &str) -> &Notifier {
        self.io
            .groups
            .entry(name.to_owned())
            .or_insert_with(|| Notifier::spawn(format!("GROUP({name})")))
    }
}

/// Reads what reaches a raw socket (after netfilter) and counts it per source; with
/// `--elections socket` also hands each advert to the main loop. Reading keeps the socket's
/// buffer from filling, which would be a drop reason of its own.
async fn read_socket(
    fd: Arc<AsyncFd<SockFd>>,
    counts: SocketCounts,
    forward: Option<tokio::sync::mpsc::Sender<RxAdvert>>,
    // The interface the elections know the adverts by (a VMAC's base).
    ifindex: u32,
) {
    let mut buf = [0u8; 2048];
    loop {
        let Ok(mut guard) = fd.readable().await else {
            return;
        };
        loop {
            match guard.get_inner().0.recv(&mut buf) {
                Ok((n, Some(src))) => {
                    let sock = &guard.get_inner().0;
                    let rx =
                        RxAdvert::from_socket(ifindex, sock.family, src, &buf[..n], clock::now());
                    {
                        let key = rx.source();
                        let mut c = counts
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        if c.len() < MAX_COUNTED || c.contains_key(&key) {
                            *c.entry(key).or_default() += 1;
                        }
                    }
                    if let Some(tx) = &forward {
                        // Full: the main loop is behind; a lost advert is what a full socket
                        // buffer would have done too.
                        let _ = tx.try_send(rx);
                    }
                }
                Ok((_, None)) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    guard.clear_ready();
                    break;
                }
                Err(_) => return,
            }
        }
    }
}
