//! `vrrpd cleanup`: what a daemon that died without its stop (`kill -9`, the OOM killer, a
//! panic) leaves on the host, removed from the config alone: each instance's VIPs (only those
//! vrrpd or keepalived added: one configured by hand stays, as at start), its virtual routes
//! and rules, the VMACs it made, and the `inet vrrpd` nftables table. The unit's
//! `ExecStopPost=` runs it after every stop, so a dead master's VIP does not stay on its
//! interface until the next start. Idempotent: what is gone already is not an error.

use std::net::IpAddr;

use crate::{
    config::{Config, Instance, Vip},
    sys::{
        netlink::{Link, NetError, Netlink, Removed},
        nft,
    },
    wire::vrrp::Family,
};

/// What was found and done, item by item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cleaned {
    /// A VIP removed from `ifname`.
    Vip {
        instance: String,
        addr: IpAddr,
        prefix: u8,
        ifname: String,
    },
    /// A VIP on `ifname` that vrrpd did not add (by hand, another program): left in place.
    Foreign {
        instance: String,
        addr: IpAddr,
        prefix: u8,
        ifname: String,
    },
    /// A VMAC (a macvlan vrrpd made on `base`) deleted, its VIPs with it.
    Vmac {
        instance: String,
        ifname: String,
        base: String,
    },
    /// The instance's interface does not exist: nothing of it can be left.
    NoInterface { instance: String, ifname: String },
    /// The `inet vrrpd` table (no_accept / vrrp_strict) deleted.
    Firewall,
}

impl std::fmt::Display for Cleaned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Vip {
                instance,
                addr,
                prefix,
                ifname,
            } => write!(f, "({instance}) removed VIP {addr}/{prefix} from {ifname}"),
            Self::Foreign {
                instance,
                addr,
                prefix,
                ifname,
            } => write!(
                f,
                "({instance}) left {addr}/{prefix} on {ifname}: not added by vrrpd (by hand?)"
            ),
            Self::Vmac {
                instance,
                ifname,
                base,
            } => write!(f, "({instance}) deleted VMAC {ifname} on {base}"),
            Self::NoInterface { instance, ifname } => {
                write!(
                    f,
                    "({instance}) interface {ifname} does not exist: nothing to remove"
                )
            }
            Self::Firewall => f.write_str("deleted nftables table inet vrrpd"),
        }
    }
}

/// Removes what `config`'s instances may have left; one item per thing found.
pub async fn cleanup(config: &Config) -> Result<Vec<Cleaned>, NetError> {
    let netlink = Netlink::connect()?;
    let mut done = Vec::new();
    for cfg in &config.instances {
        let Ok(link) = netlink.link(&cfg.interface).await else {
            done.push(Cleaned::NoInterface {
                instance: cfg.name.clone(),
                ifname: cfg.interface.clone(),
            });
            continue;
        };
        let home = vip_home(&netlink, cfg, &link, &mut done).await?;
        for vip in cfg.vips.iter().chain(&cfg.excluded_vips) {
            let on = match &vip.dev {
                Some(dev) if dev != &home.name => match netlink.link(dev).await {
                    Ok(l) => l,
                    Err(_) => continue,
                },
                _ => home.clone(),
            };
            remove_vip(&netlink, cfg, vip, &on, &mut done).await?;
        }
        for r in &cfg.virtual_routes {
            let oif = match &r.dev {
                Some(dev) => netlink.link(dev).await.ok().map(|l| l.index),
                None => None,
            };
            netlink.del_route(r, oif).await?;
        }
        for r in &cfg.virtual_rules {
            netlink.del_rule(r, r.is_v6(cfg.family)).await?;
        }
    }
    if nft::remove().await.is_ok() {
        done.push(Cleaned::Firewall);
    }
    Ok(done)
}

/// Deletes the instance's VMAC if it is a macvlan on its interface, as vrrpd makes them (the
/// VIPs on it go with it); the VIPs are then looked for on the interface itself.
async fn vip_home(
    netlink: &Netlink,
    cfg: &Instance,
    link: &Link,
    done: &mut Vec<Cleaned>,
) -> Result<Link, NetError> {
    if let Some(name) = &cfg.vmac
        && cfg.family == Family::V4
        && netlink.macvlan_base(name).await == Some(Some(link.index))
        && let Ok(vmac) = netlink.link(name).await
    {
        netlink.del_link(&vmac).await?;
        done.push(Cleaned::Vmac {
            instance: cfg.name.clone(),
            ifname: name.clone(),
            base: link.name.clone(),
        });
    }
    Ok(link.clone())
}

async fn remove_vip(
    netlink: &Netlink,
    cfg: &Instance,
    vip: &Vip,
    on: &Link,
    done: &mut Vec<Cleaned>,
) -> Result<(), NetError> {
    let item = |foreign: bool| {
        let (instance, addr, prefix, ifname) =
            (cfg.name.clone(), vip.addr, vip.prefix, on.name.clone());
        if foreign {
            Cleaned::Foreign {
                instance,
                addr,
                prefix,
                ifname,
            }
        } else {
            Cleaned::Vip {
                instance,
                addr,
                prefix,
                ifname,
            }
        }
    };
    match netlink.del_vip(on, vip).await? {
        Removed::Removed => done.push(item(false)),
        Removed::Foreign => done.push(item(true)),
        Removed::Absent => {}
    }
    Ok(())
}
