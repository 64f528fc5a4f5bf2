//! keepalived's checker config (virtual_server and friends), which vrrpd reads but does not
//! run. keepalived's `-t` still judges it (keepalived/check/check_parser.c, check_data.c:
//! validate_check_config), so a user who runs keepalived's checker beside vrrpd learns of a
//! fault from `vrrpd check` as from `keepalived -t`. Every fault here is `Severity::Ignored`:
//! keepalived runs past it, and vrrpd never uses these blocks.

use std::{collections::BTreeMap, net::IpAddr};

use super::{Loc, Node, parse::Cx};

/// keepalived 2.2.7's lvs_schedulers.
const SCHEDULERS: &[&str] = &[
    "rr", "wrr", "lc", "wlc", "lblc", "sh", "mh", "dh", "fo", "ovf", "lblcr", "sed", "nq", "twos",
];

/// What a `virtual_server_group` holds: address ranges, fwmarks, or both.
#[derive(Clone, Copy, Default)]
pub(super) struct Group {
    addresses: bool,
    fwmarks: bool,
}

/// `virtual_server_group NAME { ADDR[-END] [PORT] | fwmark N ... }`.
pub(super) fn group(cx: &mut Cx<'_>, node: &Node) -> Group {
    let mut g = Group::default();
    for n in node.block.as_deref().unwrap_or_default() {
        if n.name() == "fwmark" {
            match n.args.first().map(|t| t.text.parse::<u32>()) {
                Some(Ok(_)) => g.fwmarks = true,
                _ => cx.ignored(
                    n.loc(),
                    "virtual_server_group: fwmark needs a number (skipped, as keepalived does)",
                ),
            }
            continue;
        }
        // ADDR, ADDR-LAST (the last octet / group of the range) or ADDR/PREFIX, then the port.
        let range = n.name();
        let first = range.split(['-', '/']).next().unwrap_or(range);
        let port = n.args.first().map(|t| t.text.as_str());
        if endpoint(cx, n.loc(), "virtual_server_group entry", Some(first), port).is_some() {
            g.addresses = true;
        }
    }
    g
}

/// An `IP [PORT]` as keepalived's inet_stosockaddr takes it: a port of all zeros is no port;
/// any other must be 1 to 65535.
fn endpoint(
    cx: &mut Cx<'_>,
    loc: &Loc,
    what: &str,
    ip: Option<&str>,
    port: Option<&str>,
) -> Option<(IpAddr, u16)> {
    let Some(ip) = ip else {
        cx.ignored(loc, format!("{what} needs an address"));
        return None;
    };
    let Ok(addr) = ip.parse::<IpAddr>() else {
        cx.ignored(
            loc,
            format!("{what}: '{ip}' is not an IP address (skipped, as keepalived does)"),
        );
        return None;
    };
    let port = match port.filter(|p| !p.chars().all(|c| c == '0')) {
        None => 0,
        Some(p) => match p.parse::<u32>() {
            Ok(n @ 1..=65535) => u16::try_from(n).unwrap_or(0),
            _ => {
                cx.ignored(
                    loc,
                    format!(
                        "{what}: port '{p}' is outside [1, 65535] (skipped, as keepalived does)"
                    ),
                );
                return None;
            }
        },
    };
    Some((addr, port))
}

/// One `virtual_server` block: its header, the values keepalived checks as it reads them,
/// and validate_check_config's checks of the whole.
pub(super) fn virtual_server(cx: &mut Cx<'_>, node: &Node, groups: &BTreeMap<String, Group>) {
    let args: Vec<&str> = node.args.iter().map(|t| t.text.as_str()).collect();
    let loc = node.loc();
    let (by_address, by_fwmark, port) = match args.as_slice() {
        ["group", name, ..] => {
            let g = groups.get(*name).copied().unwrap_or_default();
            (g.addresses, g.fwmarks && !g.addresses, None)
        }
        ["fwmark", mark, ..] => {
            if mark.parse::<u32>().is_err() {
                cx.ignored(loc, format!("virtual_server fwmark '{mark}' must be in [0, 4294967295] (skipped, as keepalived does)"));
                return;
            }
            (false, true, None)
        }
        [ip, rest @ ..] => {
            let Some((_, port)) =
                endpoint(cx, loc, "virtual_server", Some(ip), rest.first().copied())
            else {
                return;
            };
            (true, false, Some(port))
        }
        [] => {
            cx.ignored(
                loc,
                "virtual_server needs an address, 'fwmark N' or 'group NAME'",
            );
            return;
        }
    };
    let mut protocol = false;
    let mut scheduler = false;
    let mut forwarding = false;
    let mut persistent = false;
    let mut real_servers: Vec<(IpAddr, u16, bool)> = Vec::new();
    let mut sorry_without_method = false;
    let mut sorry_method = false;
    for n in node.block.as_deref().unwrap_or_default() {
        let first = n.args.first().map(|t| t.text.as_str());
        match n.name() {
            "lb_algo" | "lvs_sched" => match first {
                Some(s) if SCHEDULERS.contains(&s) => scheduler = true,
                Some(s) => cx.ignored(
                    n.loc(),
                    format!(
                        "{}: unknown scheduler '{s}' ({})",
                        n.name(),
                        SCHEDULERS.join(", ")
                    ),
                ),
                None => cx.ignored(n.loc(), format!("'{}' needs a scheduler", n.name())),
            },
            "lb_kind" | "lvs_method" => forwarding |= method(cx, n),
            "sorry_server_lvs_method" => sorry_method |= method(cx, n),
            "protocol" => match first {
                Some(p)
                    if ["TCP", "UDP", "SCTP"]
                        .iter()
                        .any(|k| k.eq_ignore_ascii_case(p)) =>
                {
                    protocol = true
                }
                Some(p) => cx.ignored(
                    n.loc(),
                    format!("protocol: unknown protocol '{p}' (TCP, UDP, SCTP)"),
                ),
                None => cx.ignored(n.loc(), "'protocol' needs a value"),
            },
            "persistence_timeout" => persistent = true,
            "quorum" => {
                if first
                    .and_then(|q| q.parse::<u32>().ok())
                    .is_none_or(|q| q == 0)
                {
                    cx.ignored(
                        n.loc(),
                        "quorum must be in [1, 4294967295] (keepalived sets 1)",
                    );
                }
            }
            "sorry_server" => {
                let a = n.args.first().map(|t| t.text.as_str());
                let p = n.args.get(1).map(|t| t.text.as_str());
                if endpoint(cx, n.loc(), "sorry_server", a, p).is_some() {
                    sorry_without_method = true;
                }
            }
            "real_server" => {
                let a = n.args.first().map(|t| t.text.as_str());
                let p = n.args.get(1).map(|t| t.text.as_str());
                let Some((addr, port)) = endpoint(cx, n.loc(), "real_server", a, p) else {
                    continue;
                };
                let mut own_method = false;
                for m in n.block.as_deref().unwrap_or_default() {
                    if m.name() == "lvs_method" {
                        own_method |= method(cx, m);
                    }
                }
                if real_servers
                    .iter()
                    .any(|(a, p, _)| *a == addr && *p == port)
                {
                    cx.ignored(
                        n.loc(),
                        format!(
                            "real_server {addr} {port} is given twice: keepalived drops the second"
                        ),
                    );
                    continue;
                }
                real_servers.push((addr, port, own_method));
            }
            _ => {}
        }
        deprecated(cx, n);
        scripts(cx, n);
    }
    let what = format!("virtual_server {}", args.join(" "));
    if real_servers.is_empty() {
        cx.ignored(
            loc,
            format!("{what} has no real servers: keepalived ignores it"),
        );
        return;
    }
    if by_address {
        if !protocol {
            cx.ignored(
                loc,
                format!("{what}: no protocol (keepalived defaults to UDP)"),
            );
        }
        if port == Some(0) && !persistent {
            cx.ignored(loc, format!("{what}: port 0 is only for persistent services (keepalived sets persistence_timeout)"));
        }
    }
    if protocol && by_fwmark {
        cx.ignored(
            loc,
            format!("{what}: a protocol does nothing with a fwmark (keepalived ignores it)"),
        );
    }
    if !scheduler {
        cx.ignored(
            loc,
            format!("{what}: no lb_algo / lvs_sched (keepalived defaults to wlc)"),
        );
    }
    let without =
        real_servers.iter().any(|(_, _, own)| !own) || (sorry_without_method && !sorry_method);
    if !forwarding && without {
        cx.ignored(
            loc,
            format!("{what}: no lb_kind / lvs_method (keepalived defaults to NAT)"),
        );
    }
}

/// `lb_kind` / `lvs_method NAT|DR|TUN [...]`.
fn method(cx: &mut Cx<'_>, n: &Node) -> bool {
    match n.args.first().map(|t| t.text.as_str()) {
        Some("NAT" | "DR" | "TUN") => true,
        Some(other) => {
            cx.ignored(
                n.loc(),
                format!(
                    "{}: unknown forwarding method '{other}' (NAT, DR, TUN)",
                    n.name()
                ),
            );
            false
        }
        None => {
            cx.ignored(n.loc(), format!("'{}' needs NAT, DR or TUN", n.name()));
            false
        }
    }
}

/// The checker's scripts below `n`, as keepalived's script security sees them.
fn scripts(cx: &mut Cx<'_>, n: &Node) {
    if matches!(
        n.name(),
        "misc_path" | "notify_up" | "notify_down" | "quorum_up" | "quorum_down"
    ) {
        let rest = super::parse::after_keyword(n);
        // keepalived splits the (usually quoted) command again: its first word is the program.
        if let Some(program) = super::lex::program(rest).and_then(|c| super::lex::program(&c)) {
            cx.checker_scripts.push(program);
        }
    }
    for child in n.block.as_deref().unwrap_or_default() {
        scripts(cx, child);
    }
}

/// Keywords keepalived reports as deprecated with a config error, anywhere below.
fn deprecated(cx: &mut Cx<'_>, n: &Node) {
    if n.name() == "nb_get_retry" {
        cx.ignored(
            n.loc(),
            "nb_get_retry is deprecated: use 'retry' (keepalived's -t fails on it)",
        );
    }
    for child in n.block.as_deref().unwrap_or_default() {
        deprecated(cx, child);
    }
}

/// `bfd_instance NAME { ... }`: keepalived clamps max_hops to the ttl / hoplimit and counts
/// an error.
pub(super) fn bfd_instance(cx: &mut Cx<'_>, node: &Node) {
    let block = node.block.as_deref().unwrap_or_default();
    let value = |name: &str| {
        block
            .iter()
            .rfind(|n| n.name() == name)
            .and_then(|n| n.args.first())
            .and_then(|t| t.text.parse::<u32>().ok())
    };
    let ttl = value("ttl").or_else(|| value("hoplimit")).unwrap_or(255);
    if let Some(hops) = value("max_hops")
        && hops > ttl
        && let Some(n) = block.iter().rfind(|n| n.name() == "max_hops")
    {
        cx.ignored(n.loc(), format!("bfd_instance: max_hops {hops} exceeds the ttl / hoplimit {ttl} (keepalived lowers it)"));
    }
}
