//! SIGHUP: re-read the config, resolve it, and let the router compute what is kept, changed,
//! removed and added (by name and by interface, family and VRID). A config that does not load
//! is refused whole: the running one stays. So is one that loads but has plainly lost its
//! instances (none at all, or an include that read nothing): a reload is a change an operator
//! asked for, and a half-mounted /etc/keepalived is not one.

use tracing::{error, info, warn};

use super::Daemon;
use crate::{config, northbound::status::ReloadOutcome, protocol::router::Input, sys::clock};

fn refused(errors: Vec<String>) -> ReloadOutcome {
    error!(
        "reload refused, keeping the running config: {}",
        errors.join("\n")
    );
    ReloadOutcome::Refused { errors }
}

impl Daemon {
    /// SIGHUP, or `vrrpd reload` (`by` says which), with what it did; systemd hears of it.
    pub(super) async fn reload(&mut self, by: &str) -> ReloadOutcome {
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Reloading]);
        let outcome = self.reload_config(by).await;
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
        outcome
    }

    async fn reload_config(&mut self, by: &str) -> ReloadOutcome {
        info!("{by}: reloading {}", self.opts.config.display());
        let (config, diags) = match config::load_checked(&self.opts.config, &self.opts.load) {
            Ok(c) => c,
            Err(e) => return refused(e.to_string().lines().map(str::to_owned).collect()),
        };
        for d in &diags.0 {
            warn!("{d}");
        }
        let warnings = diags.0.iter().map(ToString::to_string).collect();
        if let Some(why) = incomplete(&config, &diags) {
            return refused(vec![why]);
        }
        if config.global.rt_priority != self.config.global.rt_priority {
            warn!(
                "vrrp_rt_priority changed: the advert thread keeps its priority until vrrpd restarts"
            );
        }
        let ring = super::advert_ring_bytes(&config);
        if ring > self.io.datapath.ring_bytes() {
            // Not a refusal: the ring only has less headroom; what overflows is counted
            // (ring_full) and a flooded interface goes to its socket.
            warn!(
                "the new config sends more adverts than the XDP ring was sized for at start ({} KiB, {} KiB wanted): restart vrrpd to resize it",
                self.io.datapath.ring_bytes() >> 10,
                ring >> 10
            );
        }
        let needed = super::confinement(&config);
        if !self.confined.allows(needed) {
            return refused(vec![format!(
                "its scripts need privileges the start gave up for good ({:?}: the config then ran {}); restart vrrpd to run them",
                self.confined,
                if self.confined.no_new_privs {
                    "no script"
                } else {
                    "no script as root"
                }
            )]);
        }
        let plan = match self.plan(&config, false).await {
            Ok(p) => p,
            Err(e) => return refused(vec![e.to_string()]),
        };
        self.config = config;
        self.observe
            .set_pace(super::shortest_interval(&self.config));
        if self.delayed.take().is_some() {
            info!("reload during vrrp_startup_delay: the instances start now");
        }
        self.trackers
            .sync(&plan, &self.config, &self.io.netlink, &self.track_tx, true);
        self.handle(clock::now(), Input::Configure(plan)).await;
        info!(instances = self.router.len(), "reload done");
        ReloadOutcome::Applied {
            instances: self.router.len(),
            warnings,
        }
    }
}

impl Daemon {
    /// The running config resolved again: after an interface was re-created, and every second
    /// while an instance does not resolve (its interface, or the interface's address, is not
    /// there yet). Instances that resolve as before are left untouched.
    pub(super) async fn replan(&mut self) {
        let config = self.config.clone();
        match self.plan(&config, false).await {
            Ok(plan) => {
                self.trackers
                    .sync(&plan, &self.config, &self.io.netlink, &self.track_tx, false);
                // Still in vrrp_startup_delay: the instances start when it ends, with this
                // plan (resolved against the interfaces as they are now).
                if let Some((at, _)) = self.delayed.take() {
                    self.delayed = Some((at, plan));
                    return;
                }
                self.handle(clock::now(), Input::Configure(plan)).await;
            }
            Err(e) => error!("cannot resolve the config again: {e}"),
        }
    }

    /// Interface `ifname` exists again under a new ifindex: the old one is gone, and with it
    /// the XDP attachment, the sockets' device and any VIP that was on it. Its instances start
    /// again on the new one (an instance keyed to a dead ifindex would become a MASTER that
    /// holds nothing).
    pub(super) async fn relink(&mut self, ifname: &str) {
        let Some(old) = self.io.forget_link(ifname) else {
            return;
        };
        self.forget_flood(old);
        warn!(
            "interface {ifname} was re-created (ifindex {old} is gone): re-attaching XDP, reopening its sockets, starting its instances again"
        );
        self.replan().await;
    }
}

/// Why a config that loads is still not what the operator meant to reload to.
fn incomplete(config: &config::Config, diags: &config::Diagnostics) -> Option<String> {
    if let Some(d) = diags.0.iter().find(|d| d.include_read_nothing) {
        return Some(format!(
            "{d} (an include that reads nothing would drop what it held; fix the path or remove the include)"
        ));
    }
    config
        .instances
        .is_empty()
        .then(|| "the new config has no vrrp_instance (stop vrrpd to run none)".to_owned())
}
