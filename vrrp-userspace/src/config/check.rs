//! The checks keepalived 2.2.7 makes once a block or the whole file is read
//! (keepalived/vrrp/vrrp.c: vrrp_complete_instance, vrrp_complete_init; vrrp_sync.c), and the
//! ones that need the host. What its `-t` refuses, vrrpd refuses, at the line that causes it.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use super::{
    Config, Diagnostics, Environment, InitialState, Instance, Node, Program, Severity,
    parse::{Cx, SeenFacts},
};
use crate::{
    protocol::fsm::PRIORITY_OWNER,
    wire::vrrp::{Family, Version},
};

/// IPv4 and IPv6 addresses that fit in one advert at an MTU of 1500 (keepalived moves the
/// rest to excluded VIPs and counts an error).
const MAX_VIPS_V4: usize = 255;
const MAX_VIPS_V6: usize = 89;

/// The checks of one instance that need its whole block. Returns the instance, or None when
/// it cannot run at all.
pub(super) fn instance(
    cx: &mut Cx<'_>,
    i: &mut Instance,
    node: &Node,
    seen: &SeenFacts,
) -> Option<Instance> {
    let name = i.name.clone();
    let loc = node.loc().clone();
    // One error per fault: a value refused at its line does not also count as missing.
    let Some(vrid) = seen.vrid else {
        if !seen.vrid_given {
            cx.err(&loc, format!("({name}) virtual_router_id is required"));
        }
        return None;
    };
    let Some(interface) = seen.interface.clone() else {
        cx.err(&loc, format!("({name}) interface is required (keepalived 2.2.7 needs one for unicast instances too)"));
        return None;
    };
    i.vrid = vrid;
    i.interface = interface;
    // keepalived clears the authentication in these cases, counts an error and runs; so does
    // vrrpd (the adverts then carry none).
    match (&seen.auth_type, &i.auth) {
        (Some((kind, l)), Some(_)) if kind == "AH" => {
            cx.err(l, format!("({name}) auth_type AH is not supported by vrrpd (RFC 3768 dropped it; use PASS, or none with VRRPv3)"));
        }
        (Some(_), Some(_)) if i.strict => {
            cx.ignored(&loc, format!("({name}) strict mode does not allow authentication: the adverts carry none, as keepalived's"));
            i.auth = None;
        }
        (Some(_), Some(_)) if i.version == Version::V3 => {
            cx.ignored(&loc, format!("({name}) VRRPv3 has no authentication (RFC 5798): the adverts carry none, as keepalived's"));
            i.auth = None;
        }
        (Some((_, l)), None) => {
            cx.ignored(
                l,
                format!(
                    "({name}) authentication without auth_pass: none is used, as keepalived does"
                ),
            );
        }
        // keepalived ignores a password without a type.
        (None, Some(_)) => i.auth = None,
        _ => {}
    }
    if i.strict && (i.state == InitialState::Master) != (i.priority == PRIORITY_OWNER) {
        // keepalived sets the state from the priority, counts an error and runs.
        i.state = if i.priority == PRIORITY_OWNER {
            InitialState::Master
        } else {
            InitialState::Backup
        };
        cx.ignored(&loc, format!("({name}) strict mode: state MASTER must go with priority 255 (the address owner) and only with it: it starts as {:?}, as keepalived's", i.state));
    }
    if i.unicast_fault_no_peer && i.unicast_peers.is_empty() {
        cx.warn(&loc, format!("({name}) unicast_fault_no_peer and no unicast_peer: the instance stays in FAULT until a reload gives it peers, as keepalived's"));
    } else if seen.unicast_keyword && i.unicast_peers.is_empty() {
        cx.err(&loc, format!("({name}) a unicast keyword without any unicast_peer: keepalived falls back to multicast and refuses the config (add the peers, or drop unicast_src_ip)"));
    }
    if seen.unicast_ttl && i.unicast_peers.is_empty() {
        cx.ignored(
            &loc,
            format!("({name}) unicast_ttl without unicast peers: ignored"),
        );
    }
    if seen.mcast_dst && !i.unicast_peers.is_empty() {
        cx.ignored(
            &loc,
            format!("({name}) mcast_dst_ip with unicast peers: ignored"),
        );
    }
    if i.vips.is_empty() {
        // keepalived runs a VRRPv2 IPv4 instance without VIPs (for its notify scripts) and
        // counts a warning that fails -t; it drops a v3, IPv6 or strict one.
        if i.version == Version::V2 && i.family == Family::V4 && !i.strict {
            cx.ignored(&loc, format!("({name}) no virtual_ipaddress: the instance only elects and runs its notify scripts"));
        } else {
            cx.err(&loc, format!("({name}) no virtual_ipaddress: a VRRPv3, IPv6 or strict instance needs at least one VIP"));
        }
    }
    let max = if i.family == Family::V4 {
        MAX_VIPS_V4
    } else {
        MAX_VIPS_V6
    };
    if i.vips.len() > max {
        cx.ignored(&loc, format!("({name}) {} VIPs do not fit in one advert (at most {max} at MTU 1500): the rest are handled as virtual_ipaddress_excluded, as keepalived does", i.vips.len()));
        let rest = i.vips.split_off(max);
        i.excluded_vips.extend(rest);
    }
    if i.priority == PRIORITY_OWNER && !i.preempt {
        cx.ignored(&loc, format!("({name}) nopreempt does not work with priority 255 (the address owner always takes over)"));
        i.preempt = true;
    }
    // keepalived clears these and counts a config error; so does vrrpd.
    if seen.state_given == Some(InitialState::Master) || i.state == InitialState::Master {
        if !i.preempt {
            cx.ignored(
                &loc,
                format!("({name}) nopreempt does not work with state MASTER: use state BACKUP"),
            );
            i.preempt = true;
        }
        if !i.preempt_delay.is_zero() {
            cx.ignored(
                &loc,
                format!("({name}) preempt_delay does not work with state MASTER: use state BACKUP"),
            );
            i.preempt_delay = std::time::Duration::ZERO;
        }
    }
    if !i.preempt_delay.is_zero() && (i.strict || !i.preempt) {
        cx.ignored(
            &loc,
            format!(
                "({name}) preempt_delay does not go with {}: it is not used, as keepalived resets it",
                if i.strict { "strict mode" } else { "nopreempt" }
            ),
        );
        i.preempt_delay = std::time::Duration::ZERO;
    }
    let own: Vec<super::Loc> = i
        .track_interfaces
        .iter()
        .filter(|t| t.name == i.interface)
        .map(|t| t.loc.clone())
        .collect();
    for l in own {
        cx.ignored(&l, format!("({name}) track_interface {} is the instance's own interface, which it tracks anyway", i.interface));
    }
    // keepalived: `use_vmac_addr` (the VIPs on the VMAC) and a VIP's own `use_vmac` exclude
    // each other.
    let block = node.block.as_deref().unwrap_or_default();
    if block.iter().any(|n| n.name() == "use_vmac_addr") {
        for list in block
            .iter()
            .filter(|n| matches!(n.name(), "virtual_ipaddress" | "virtual_ipaddress_excluded"))
        {
            for v in list.block.as_deref().unwrap_or_default() {
                if v.args.iter().any(|t| t.text == "use_vmac") {
                    cx.ignored(
                        v.loc(),
                        format!(
                            "({name}) use_vmac_addr and use_vmac on VIP {} exclude each other",
                            v.name()
                        ),
                    );
                }
            }
        }
    }
    let interface = i.interface.clone();
    i.track_interfaces.retain(|t| t.name != interface);
    Some(i.clone())
}

/// The checks across blocks (vrrp_complete_init and the sync groups).
pub(super) fn config(cx: &mut Cx<'_>, c: &mut Config) {
    // RFC 5798 5.2.3: a VRID names one virtual router per interface and family (and, for
    // unicast, per set of peers: two unicast instances conflict only when they share one).
    let mut seen: BTreeMap<(&str, Family, u8), Vec<&Instance>> = BTreeMap::new();
    for i in &c.instances {
        let others = seen.entry((&i.interface, i.family, i.vrid)).or_default();
        let conflict = others.iter().find(|o| {
            if o.unicast_peers.is_empty() != i.unicast_peers.is_empty() {
                false
            } else if i.unicast_peers.is_empty() {
                true
            } else {
                o.unicast_peers.iter().any(|p| i.unicast_peers.contains(p))
            }
        });
        if let Some(prev) = conflict {
            cx.err(
                &i.loc,
                format!(
                    "{} and {} both use VRID {} with {} on interface {}",
                    prev.name,
                    i.name,
                    i.vrid,
                    if i.family == Family::V4 {
                        "IPv4"
                    } else {
                        "IPv6"
                    },
                    i.interface
                ),
            );
        }
        others.push(i);
    }
    // One address held by two instances: whichever leaves MASTER removes it from under the
    // other. keepalived 2.2.7 loads such a config without a word (later versions check
    // within an instance only), so this warns rather than refuses; the daemon also never
    // removes a VIP that another of its instances holds as master.
    let mut holders: BTreeMap<(IpAddr, &str), &Instance> = BTreeMap::new();
    for i in &c.instances {
        for v in &i.vips {
            let dev = v.dev.as_deref().unwrap_or(&i.interface);
            match holders.get(&(v.addr, dev)) {
                Some(prev) if prev.name != i.name => cx.warn(
                    &v.loc,
                    format!(
                        "({}) VIP {} on {dev} is a VIP of {} too: the instance that leaves MASTER would take it from the other (vrrpd keeps it while either is master)",
                        i.name, v.addr, prev.name
                    ),
                ),
                Some(_) => {}
                None => {
                    holders.insert((v.addr, dev), i);
                }
            }
        }
    }
    let names: BTreeSet<&str> = c.instances.iter().map(|i| i.name.as_str()).collect();
    let mut member_of: BTreeMap<&str, &str> = BTreeMap::new();
    for g in &c.sync_groups {
        let mut members = 0;
        for m in &g.members {
            if !names.contains(m.as_str()) {
                cx.err(
                    &g.loc,
                    format!("vrrp_sync_group {}: {m} is not a vrrp_instance", g.name),
                );
                continue;
            }
            if let Some(other) = member_of.insert(m, &g.name) {
                cx.err(&g.loc, format!("vrrp_sync_group {}: {m} is in sync group {other} already (an instance belongs to one group)", g.name));
                continue;
            }
            members += 1;
        }
        if members == 1 {
            cx.err(&g.loc, format!("vrrp_sync_group {} has only one instance: keepalived refuses it (a group of one moves nothing)", g.name));
        }
        // keepalived tracks an interface once per instance: the group's and the member's own
        // (its interface, unless dont_track_primary, or its track_interface) collide.
        for t in &g.track_interfaces {
            for i in c.instances.iter().filter(|i| g.members.contains(&i.name)) {
                let own = (i.interface == t.name && !i.dont_track_primary)
                    || i.track_interfaces.iter().any(|x| x.name == t.name);
                if own {
                    cx.ignored(&t.loc, format!("({}) track_interface {} is tracked by the instance and by its sync group {}: keep one", i.name, t.name, g.name));
                }
            }
        }
        let owners: Vec<&Instance> = c
            .instances
            .iter()
            .map(AsRef::as_ref)
            .filter(|i| g.members.contains(&i.name))
            .collect();
        if owners.iter().any(|i| i.priority == PRIORITY_OWNER) {
            for t in &g.track_scripts {
                let w = t
                    .weight
                    .or_else(|| c.scripts.get(&t.name).map(|s| s.weight))
                    .unwrap_or(0);
                if w != 0 {
                    cx.err(&t.loc, format!("vrrp_sync_group {}: a weighted track_script with a member of priority 255", g.name));
                }
            }
            for t in &g.track_interfaces {
                if t.weight.is_some_and(|w| w != 0) {
                    cx.err(&t.loc, format!("vrrp_sync_group {}: a weighted track_interface with a member of priority 255", g.name));
                }
            }
        }
    }
    // keepalived (vrrp_complete_instance): a sync-group member without
    // sync_group_tracking_weight, or an address owner, takes no weights. It counts an error
    // and runs: a weighted interface becomes unweighted for a member (FAULT when down) and
    // is dropped for an owner; a weighted script is dropped. vrrpd does the same.
    let scripts = c.scripts.clone();
    let files = c.track_files.clone();
    let processes = c.track_processes.clone();
    let groups = c.sync_groups.clone();
    for i in &mut c.instances {
        // Not shared yet: the config is being checked.
        let i = std::sync::Arc::make_mut(i);
        let group = groups.iter().find(|g| g.members.contains(&i.name));
        let member = group.is_some_and(|g| !g.tracking_weight);
        let why = if member {
            "its sync group has no sync_group_tracking_weight"
        } else if i.priority == PRIORITY_OWNER {
            "priority 255 (the address owner) does not change with tracking"
        } else {
            continue;
        };
        let name = i.name.clone();
        i.track_scripts.retain(|t| {
            let w = t
                .weight
                .or_else(|| scripts.get(&t.name).map(|s| s.weight))
                .unwrap_or(0);
            if w != 0 {
                cx.ignored(&t.loc, format!("({name}) track_script {} with weight {w} is not used: {why} (give it weight 0 to make it a FAULT)", t.name));
            }
            w == 0
        });
        i.track_processes.retain(|t| {
            let w = t
                .weight
                .or_else(|| processes.get(&t.name).map(|p| p.weight))
                .unwrap_or(0);
            if w != 0 {
                cx.ignored(&t.loc, format!("({name}) track_process {} with weight {w} is not used: {why} (give it weight 0 to make it a FAULT)", t.name));
            }
            w == 0
        });
        // keepalived's track_file rule: the default weight 1 becomes 0 (FAULT while the
        // number is not 0), any other weight drops the file.
        i.track_files.retain_mut(|t| {
            let w = t
                .weight
                .or_else(|| files.get(&t.name).map(|f| f.weight))
                .unwrap_or(1);
            match w {
                0 => true,
                1 => {
                    cx.ignored(&t.loc, format!("({name}) track_file {}: its weight is not used ({why}): weight 0, FAULT while the file's number is not 0 (keepalived: specify weight 0)", t.name));
                    t.weight = Some(0);
                    true
                }
                _ => {
                    cx.ignored(&t.loc, format!("({name}) track_file {} with weight {w} is not used: {why}", t.name));
                    false
                }
            }
        });
        i.track_interfaces.retain_mut(|t| {
            let Some(w) = t.weight.filter(|w| *w != 0) else {
                return true;
            };
            if member {
                cx.ignored(&t.loc, format!("({name}) track_interface {} weight {w} is not used: {why}; it puts the instance in FAULT when down", t.name));
                t.weight = None;
                true
            } else {
                cx.ignored(&t.loc, format!("({name}) track_interface {} with weight {w} is not used: {why}", t.name));
                false
            }
        });
    }
}

/// The checks that need the host (keepalived's `-t` makes them too).
pub(super) fn environment(c: &Config, env: &dyn Environment, diags: &mut Diagnostics) {
    let mut interfaces: Vec<(&str, &super::Loc, String)> = Vec::new();
    for i in &c.instances {
        interfaces.push((
            &i.interface,
            &i.loc,
            format!("interface {} of vrrp_instance {}", i.interface, i.name),
        ));
        for v in i.vips.iter().chain(&i.excluded_vips) {
            if let Some(dev) = &v.dev {
                interfaces.push((
                    dev,
                    &v.loc,
                    format!("interface {dev} of VIP {} ({})", v.addr, i.name),
                ));
            }
        }
        for t in &i.track_interfaces {
            interfaces.push((
                &t.name,
                &t.loc,
                format!("tracked interface {} of {}", t.name, i.name),
            ));
        }
    }
    for g in &c.sync_groups {
        for t in &g.track_interfaces {
            interfaces.push((
                &t.name,
                &t.loc,
                format!("tracked interface {} of sync group {}", t.name, g.name),
            ));
        }
    }
    let mut said = BTreeSet::new();
    for (ifname, loc, what) in interfaces {
        if let Some(why) = env.interface_problem(ifname)
            && said.insert((ifname, loc.line))
        {
            diags.error(loc.clone(), format!("{what} {why}"));
        }
    }
    if c.instances.is_empty() {
        return;
    }
    let security = c.global.enable_script_security;
    let mut any_script = false;
    // keepalived's default script user: script_user, else keepalived_script, else root
    // (which enable_script_security forbids). When it cannot be set, every vrrp_script that
    // relies on it is removed (an error) and every such notify script is dropped (a log line).
    let default_user_fails = match (&c.global.script_user, &c.global.script_user_loc) {
        (Some((user, group)), loc) if !env.user_exists(user, group.as_deref()) => {
            if let Some(loc) = loc {
                diags.error(loc.clone(), format!("script_user {user}{}: no such user or group here (keepalived: \"Error setting global script uid/gid\")", group.as_deref().map(|g| format!(" {g}")).unwrap_or_default()));
            }
            true
        }
        (Some(_), _) => false,
        (None, _) => security && !env.user_exists("keepalived_script", None),
    };
    for s in c.scripts.values() {
        let program = super::lex::program(&s.command).unwrap_or_default();
        match &s.user {
            Some((user, group)) if !env.user_exists(user, group.as_deref()) => {
                diags.error(s.loc.clone(), format!("vrrp_script {}: user {user}: no such user or group here (keepalived removes the script)", s.name));
                continue;
            }
            None if default_user_fails => {
                let why = if c.global.script_user.is_some() {
                    "script_user cannot be set"
                } else {
                    "enable_script_security is set, but there is no script_user and no keepalived_script user to run it as (keepalived refuses to run it as root)"
                };
                diags.error(
                    s.loc.clone(),
                    format!(
                        "vrrp_script {}: {why}: keepalived removes the script",
                        s.name
                    ),
                );
                continue;
            }
            _ => {}
        }
        match env.program(&program) {
            Program::Missing => diags.error(
                s.loc.clone(),
                format!("vrrp_script {}: {program} does not exist or cannot be read (keepalived disables the script and refuses the config)", s.name),
            ),
            Program::NotExecutable => diags.warning(
                s.loc.clone(),
                format!("vrrp_script {}: {program} is not executable: it will fail every time", s.name),
            ),
            Program::Runnable { insecure } => {
                any_script = true;
                if security && let Some(why) = insecure {
                    diags.error(s.loc.clone(), format!("vrrp_script {} refused by enable_script_security: {why}", s.name));
                }
            }
        }
    }
    let notifies = c
        .instances
        .iter()
        .map(|i| (&i.notify, &i.loc))
        .chain(c.sync_groups.iter().map(|g| (&g.notify, &g.loc)));
    // keepalived reports the missing default user once a notify script needs it.
    let mut needs_default = false;
    for (n, loc) in notifies {
        for script in n.scripts() {
            let program = super::lex::program(&script.command).unwrap_or_default();
            needs_default |= script.user.is_none();
            let runs = match &script.user {
                Some((user, group)) if !env.user_exists(user, group.as_deref()) => {
                    diags.warning(loc.clone(), format!("notify script {program}: user {user}: no such user or group here: it is not run (as keepalived ignores it)"));
                    false
                }
                None => !default_user_fails,
                Some(_) => true,
            };
            if runs && matches!(env.program(&program), Program::Runnable { .. }) {
                any_script = true;
            }
        }
    }
    if default_user_fails && security && c.global.script_user.is_none() && needs_default {
        diags.error(
            c.instances[0].loc.clone(),
            "enable_script_security is set, but there is no script_user and no keepalived_script user: keepalived refuses to run the notify scripts as root".to_owned(),
        );
    }
    if !default_user_fails
        && c.checker_scripts
            .iter()
            .any(|p| matches!(env.program(p), Program::Runnable { .. }))
    {
        any_script = true;
    }
    if any_script && !security {
        let loc = c.instances[0].loc.clone();
        diags.push(
            Severity::Security,
            loc,
            "scripts run as root, and enable_script_security is not set: keepalived's SECURITY VIOLATION (its -t exits 6). Set enable_script_security in global_defs (vrrpd then refuses scripts a non-root user could change)".to_owned(),
        );
    }
}
