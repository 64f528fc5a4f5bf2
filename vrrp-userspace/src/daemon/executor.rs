//! The one seam where the router's outputs touch the world, in the order it gave them.

use std::{
    net::IpAddr,
    sync::{Arc, atomic::Ordering},
};

use tracing::{debug, error, info, warn};
use vrrp_common::WatchKey;

use super::{Daemon, instances::packets};
use crate::{
    config,
    protocol::{
        event::InstanceKey,
        fsm::State,
        router::{Effect, Output},
    },
    sys::{
        advert_thread::Slot,
        netlink::{Added, NetError, Removed},
        scripts::{Notified, RunAs, fifo_line, notify_commands},
    },
    time::Instant,
    wire::vrrp::Family,
};

pub(super) fn watch_key(k: InstanceKey) -> WatchKey {
    let family = match k.family {
        Family::V4 => vrrp_common::AF_INET,
        Family::V6 => vrrp_common::AF_INET6,
    };
    WatchKey::new(k.ifindex, family, k.vrid)
}

impl Daemon {
    pub(super) async fn execute(&mut self, now: Instant, outputs: Vec<Output>) {
        for output in outputs {
            match output {
                Output::Instance { name, effect } => self.effect(&name, effect, now).await,
                Output::Group {
                    name,
                    state,
                    priority,
                } => {
                    let Some(cfg) = self.config.sync_groups.iter().find(|g| g.name == name) else {
                        continue;
                    };
                    let commands = self.run_as(notify_commands(
                        &cfg.notify,
                        Notified::Group,
                        &name,
                        state,
                        priority,
                    ));
                    self.group_notifier(&name).send(commands);
                    self.fifo(&fifo_line(Notified::Group, &name, state, priority));
                }
                Output::Drop {
                    instance,
                    source,
                    cause,
                } => {
                    self.observe.note_drop(&source, cause.reason(), now);
                    debug!(
                        "({}) dropped an advert from {} (VRID {}): {cause}",
                        instance.as_deref().unwrap_or("-"),
                        source.src,
                        source.vrid
                    );
                }
                Output::Mismatch {
                    instance,
                    source,
                    cause,
                } => {
                    self.observe.note_mismatch(&source, cause.reason());
                    debug!(
                        "({instance}) acted on an advert from {} (VRID {}) although {cause}",
                        source.src, source.vrid
                    );
                }
                Output::Watch(key) => {
                    if let Err(e) = self.io.datapath.watch(watch_key(key)) {
                        error!(
                            "cannot watch VRID {} on ifindex {}: {e}",
                            key.vrid, key.ifindex
                        );
                    }
                }
                Output::Unwatch(key) => {
                    if let Err(e) = self.io.datapath.unwatch(&watch_key(key)) {
                        warn!(
                            "cannot unwatch VRID {} on ifindex {}: {e}",
                            key.vrid, key.ifindex
                        );
                    }
                }
                Output::Update(name) => self.renew_resources(&name),
                Output::Retire(name) => {
                    self.io.adverts.set(&name, None);
                    let vmac = self
                        .io
                        .instances
                        .get(&name)
                        .and_then(|r| r.spec.cfg.vmac.clone());
                    if let Some(mut r) = self.io.instances.remove(&name) {
                        // Its notify_stop runs to the end in the background.
                        tokio::spawn(async move {
                            r.notifier.finish(std::time::Duration::from_secs(5)).await;
                        });
                    }
                    info!(
                        "({name}) stopped: gone from the plan (a reload, or its interface re-created)"
                    );
                    // Its VMAC goes with it, unless another instance (or itself, renamed)
                    // still has it.
                    if let Some(vmac) = vmac
                        && !self
                            .router
                            .iter()
                            .any(|(_, v)| v.spec.cfg.vmac.as_ref() == Some(&vmac))
                    {
                        self.io.drop_vmac(&vmac).await;
                    }
                }
            }
        }
    }

    async fn effect(&mut self, name: &str, effect: Effect, now: Instant) {
        match effect {
            Effect::SendAdvert { priority } => self.send_advert(name, priority, now),
            Effect::StartAdverts {
                priority,
                first,
                interval,
            } => self.start_adverts(name, priority, first, interval),
            Effect::StopAdverts => self.io.adverts.set(name, None),
            Effect::AddVips => self.apply_vips(name, None, true).await,
            Effect::RemoveVips => self.apply_vips(name, None, false).await,
            Effect::RemoveVipsOf(vips) => self.apply_vips(name, Some(vips), false).await,
            Effect::Announce { repeat } => self.announce(name, repeat),
            Effect::Transition { from, to, priority } => {
                info!(
                    from = from.keepalived_name(),
                    priority,
                    "({name}) Entering {} STATE",
                    to.keepalived_name()
                );
                let commands = self.resources(name).map(|r| {
                    notify_commands(&r.spec.cfg.notify, Notified::Instance, name, to, priority)
                });
                if let Some(commands) = commands {
                    let commands = self.run_as(commands);
                    if let Some(r) = self.resources(name) {
                        r.notifier.send(commands);
                    }
                }
                self.fifo(&fifo_line(Notified::Instance, name, to, priority));
            }
            Effect::Priority { from, to } => {
                info!("({name}) Changing effective priority from {from} to {to}");
            }
            Effect::Tracking { failed: true } => {
                info!("({name}) a tracked script or interface failed: FAULT");
            }
            Effect::Tracking { failed: false } => info!("({name}) tracking recovered"),
            Effect::HeardLowerPriority { priority } => {
                // keepalived's send_event_notify: the script as given (no arguments) and a FIFO
                // line, at most once per answer (answers are limited to one per quarter
                // interval, so a flood of lower adverts cannot fork a script per packet).
                let script = self
                    .resources(name)
                    .and_then(|r| r.spec.cfg.notify.master_rx_lower_pri.clone());
                if let Some(s) = script {
                    let commands = self.run_as(vec![(s.command, s.user)]);
                    if let Some(r) = self.resources(name) {
                        r.notifier.send(commands);
                    }
                }
                self.fifo(&format!(
                    "INSTANCE \"{name}\" MASTER_RX_LOWER_PRI {priority}\n"
                ));
            }
        }
    }

    /// One advert now, from the main loop (becoming master, answering, a new priority).
    fn send_advert(&mut self, name: &str, priority: u8, now: Instant) {
        let Some(r) = self.resources(name) else {
            return;
        };
        let (spec, dsts, stats, tx) = (
            r.spec.clone(),
            r.dsts.clone(),
            Arc::clone(&r.stats),
            r.tx_ifindex,
        );
        let Some(sock) = self.io.sockets.get(&(tx, spec.cfg.family)) else {
            return;
        };
        for (dst, bytes) in packets(&spec, &dsts, priority) {
            match sock.get_ref().0.send(dst, &bytes) {
                Ok(()) => {
                    stats.sent.fetch_add(1, Ordering::Relaxed);
                    if priority == 0 {
                        stats.sent_priority_zero.fetch_add(1, Ordering::Relaxed);
                    }
                }
                // EPERM from a raw socket: netfilter dropped the packet on output. Counted for
                // `diagnose` (which names the rule) rather than logged every advert.
                Err(NetError::Socket { source, .. })
                    if source.raw_os_error() == Some(libc::EPERM) =>
                {
                    if stats.refused.fetch_add(1, Ordering::Relaxed) == 0 {
                        warn!(
                            "({name}) the kernel refuses our adverts (EPERM): a firewall drops them on output; see `vrrpd diagnose`"
                        );
                    }
                    stats
                        .refused_last_ns
                        .store(now.as_nanos(), Ordering::Relaxed);
                }
                Err(e) => warn!("({name}) {e}"),
            }
        }
    }

    /// Hands the instance's periodic adverts to the advert thread.
    fn start_adverts(
        &mut self,
        name: &str,
        priority: u8,
        first: Instant,
        interval: std::time::Duration,
    ) {
        let Some(r) = self.resources(name) else {
            return;
        };
        let (spec, dsts, stats, tx) = (
            r.spec.clone(),
            r.dsts.clone(),
            Arc::clone(&r.stats),
            r.tx_ifindex,
        );
        let Some(sock) = self.io.sockets.get(&(tx, spec.cfg.family)) else {
            return;
        };
        let socket = match sock.get_ref().0.tx_clone() {
            Ok(s) => s,
            Err(e) => {
                error!(
                    "({name}) cannot hand the advert socket to the advert thread: {e}; no periodic adverts"
                );
                return;
            }
        };
        let packets = packets(&spec, &dsts, priority)
            .into_iter()
            .map(|(d, bytes)| (sock.get_ref().0.dst_addr(d), bytes))
            .collect();
        self.io.adverts.set(
            name,
            Some(Slot {
                name: name.to_owned(),
                socket: Arc::new(socket),
                packets,
                interval,
                next: first,
                stats,
            }),
        );
    }

    /// Adds (MASTER) or removes the instance's VIPs (`only` these, or all of them with
    /// `virtual_ipaddress_excluded`), each on its own `dev` or the instance's interface. A
    /// failure is logged, not fatal: the other addresses still go.
    async fn apply_vips(&mut self, name: &str, only: Option<Vec<config::Vip>>, add: bool) {
        let Some((cfg, link)) = self
            .resources(name)
            .map(|r| (r.spec.cfg.clone(), r.link.clone()))
        else {
            return;
        };
        let whole = only.is_none();
        let vips: Vec<config::Vip> =
            only.unwrap_or_else(|| cfg.vips.iter().chain(&cfg.excluded_vips).cloned().collect());
        let what = if add { "add" } else { "remove" };
        // Routes go before the VIPs (one may name a VIP as its src) and come after them.
        if whole && !add {
            self.apply_rules(name, &cfg, false).await;
            self.apply_routes(name, &cfg.virtual_routes, false).await;
        }
        for v in vips {
            let on = match self.io.vip_link(&link, &v).await {
                Ok(l) => l,
                Err(e) => {
                    error!("({name}) cannot {what} VIP {}: {e}", v.addr);
                    continue;
                }
            };
            if !add && self.held_by_another_master(name, &v, &on.name) {
                info!(
                    "({name}) VIP {}/{} stays on {}: another instance holds it as MASTER",
                    v.addr, v.prefix, on.name
                );
                continue;
            }
            // RFC 5798's Accept_Mode false: the VIP answers ARP, but what is addressed to
            // it is dropped while this router holds it (never for the owner).
            if !cfg.accept && cfg.priority != crate::protocol::fsm::PRIORITY_OWNER {
                self.no_accept(name, v.addr, add).await;
            }
            let foreign = if add {
                self.io
                    .netlink
                    .add_vip(&on, &v)
                    .await
                    .map(|a| a == Added::Foreign)
            } else {
                self.io
                    .netlink
                    .del_vip(&on, &v)
                    .await
                    .map(|r| r == Removed::Foreign)
            };
            match foreign {
                Ok(true) => warn!(
                    "({name}) VIP {}/{} on {} was not added by vrrpd (by hand, or by another program): left as it is",
                    v.addr, v.prefix, on.name
                ),
                Ok(false) => {}
                Err(e) => error!("({name}) cannot {what} VIP {}/{}: {e}", v.addr, v.prefix),
            }
        }
        if whole && add {
            self.apply_routes(name, &cfg.virtual_routes, true).await;
            self.apply_rules(name, &cfg, true).await;
        }
    }

    /// Drops (or stops dropping) traffic to `addr` in table inet vrrpd, made on first use.
    async fn no_accept(&mut self, name: &str, addr: IpAddr, refuse: bool) {
        use crate::sys::nft;
        if refuse && !self.io.nft_ready {
            match nft::create().await {
                Ok(()) => self.io.nft_ready = true,
                Err(e) => {
                    error!(
                        "({name}) no_accept: cannot make table inet vrrpd: {e}; traffic to {addr} is accepted"
                    );
                    return;
                }
            }
        }
        if !self.io.nft_ready {
            return;
        }
        let done = if refuse {
            nft::refuse(addr).await
        } else {
            nft::allow(addr).await
        };
        if let Err(e) = done {
            error!("({name}) no_accept {addr}: {e}");
        }
    }

    /// Adds (MASTER) or removes an instance's `virtual_routes`, marked protocol keepalived
    /// (18) so that only vrrpd's own are ever removed.
    async fn apply_routes(&mut self, name: &str, routes: &[config::VirtualRoute], add: bool) {
        for r in routes {
            let oif = match &r.dev {
                Some(dev) => match self.io.netlink.link(dev).await {
                    Ok(l) => Some(l.index),
                    Err(e) => {
                        error!("({name}) virtual route {}/{}: {e}", r.dest, r.prefix);
                        continue;
                    }
                },
                None => None,
            };
            let done = if add {
                self.io.netlink.add_route(r, oif).await
            } else {
                self.io.netlink.del_route(r, oif).await
            };
            if let Err(e) = done {
                error!(
                    "({name}) cannot {} virtual route {}/{}: {e}",
                    if add { "add" } else { "remove" },
                    r.dest,
                    r.prefix
                );
            }
        }
    }

    /// Adds (MASTER) or removes an instance's `virtual_rules`, marked protocol keepalived.
    async fn apply_rules(&mut self, name: &str, cfg: &config::Instance, add: bool) {
        for r in &cfg.virtual_rules {
            let done = if add {
                self.io.netlink.add_rule(r, r.is_v6(cfg.family)).await
            } else {
                self.io.netlink.del_rule(r, r.is_v6(cfg.family)).await
            };
            if let Err(e) = done {
                error!(
                    "({name}) cannot {} virtual rule: {e}",
                    if add { "add" } else { "remove" }
                );
            }
        }
    }

    /// Whether an instance other than `name` is MASTER with `vip` on `dev` (two instances that
    /// list one address: the one leaving must not take it from the other).
    fn held_by_another_master(&self, name: &str, vip: &config::Vip, dev: &str) -> bool {
        self.router.iter().any(|(other, v)| {
            other != name
                && v.fsm.state() == State::Master
                && v.spec.cfg.vips.iter().any(|o| {
                    o.addr == vip.addr
                        && o.prefix == vip.prefix
                        && o.dev.as_deref().unwrap_or(&v.spec.cfg.interface) == dev
                })
        })
    }

    /// `repeat` gratuitous ARPs / NAs for every VIP, spaced by vrrp_garp_interval.
    fn announce(&mut self, name: &str, repeat: u32) {
        let Some((cfg, link)) = self
            .resources(name)
            .map(|r| (r.spec.cfg.clone(), r.link.clone()))
        else {
            return;
        };
        let Some(announcer) = self.io.announcers.get(&link.index).cloned() else {
            return;
        };
        let addrs: Vec<IpAddr> = cfg.vips.iter().map(|v| v.addr).collect();
        let spacing = if addrs.first().is_some_and(IpAddr::is_ipv6) {
            cfg.garp.gna_interval
        } else {
            cfg.garp.interval
        };
        let (ifindex, name) = (link.index, name.to_owned());
        tokio::spawn(async move {
            for round in 0..repeat.max(1) {
                if round > 0 && !spacing.is_zero() {
                    tokio::time::sleep(spacing).await;
                }
                for a in &addrs {
                    if let Err(e) = announcer.announce(*a, ifindex) {
                        warn!("({name}) {e}");
                        return;
                    }
                }
            }
        });
    }

    /// Who each notify script runs as: its own user, else keepalived's default script user.
    fn run_as(&self, commands: Vec<(String, Option<config::RunUser>)>) -> Vec<(String, RunAs)> {
        commands
            .into_iter()
            .filter_map(|(c, user)| {
                let run_as = RunAs::resolve(user.as_ref(), &self.config.global);
                if run_as.is_none() {
                    warn!("notify script {c} is not run: its user cannot be used");
                }
                let run_as = run_as?;
                // keepalived checks notify scripts as it checks vrrp_scripts.
                if self.config.global.enable_script_security
                    && run_as.uid.is_none()
                    && let Some(why) = crate::sys::scripts::insecure_script(&c)
                {
                    error!("notify script {c} refused by enable_script_security: {why}");
                    return None;
                }
                Some((c, run_as))
            })
            .collect()
    }

    /// Writes a line to keepalived's notify_fifo / vrrp_notify_fifo, if configured and read.
    fn fifo(&self, line: &str) {
        for (path, _) in [
            &self.config.global.notify_fifo,
            &self.config.global.vrrp_notify_fifo,
        ]
        .into_iter()
        .flatten()
        {
            match crate::sys::files::write_fifo(std::path::Path::new(path), line) {
                Ok(()) => {}
                Err(e @ crate::sys::files::FifoError::NotAFifo { .. }) => {
                    error!("notify_fifo: {e}")
                }
                // No reader yet: keepalived's FIFO readers come and go.
                Err(e) => debug!("notify_fifo: {e}"),
            }
        }
    }
}
