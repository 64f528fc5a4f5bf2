//! `vrrpd diagnose`: turns what the wire showed (XDP, before netfilter) and what reached the
//! VRRP socket (after netfilter) into one sentence per problem, with the rule that fixes it.
//! Pure: the daemon gathers the numbers and the ruleset, this decides what they mean.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// One source over the diagnosis window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourceWindow {
    pub ifname: String,
    pub src: IpAddr,
    pub vrid: u8,
    pub version: u8,
    pub priority: u8,
    pub interval_cs: u16,
    /// Adverts seen by XDP in the window.
    pub wire: u64,
    /// Packets from it that reached the raw socket in the window.
    pub socket: u64,
    /// Drop reasons (vrrpd's own checks) in the window.
    pub dropped: Vec<(String, u64)>,
    /// For `vrrpd watch`: the authentication type it sends, how long ago it was last heard,
    /// the mean and jitter of its advert interval, and totals since vrrpd started.
    #[serde(default)]
    pub auth: String,
    #[serde(default)]
    pub last_seen_s: f64,
    #[serde(default)]
    pub interval_mean_s: Option<f64>,
    #[serde(default)]
    pub interval_jitter_s: Option<f64>,
    #[serde(default)]
    pub wire_total: u64,
    #[serde(default)]
    pub socket_total: u64,
    /// Silent for more than three of its intervals (but heard in the last 10 minutes), and
    /// whether it still answers ping (None: not asked).
    #[serde(default)]
    pub silent: bool,
    #[serde(default)]
    pub answers_ping: Option<bool>,
}

/// One of our instances, as far as the diagnosis needs it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ours {
    pub name: String,
    pub ifname: String,
    pub vrid: u8,
    pub version: u8,
    pub master: bool,
    pub priority: u8,
    pub interval_cs: u16,
    pub src: IpAddr,
    /// Our adverts the kernel refused (EPERM: netfilter on output) in the window.
    #[serde(default)]
    pub send_refused: u64,
    #[serde(default)]
    pub sent: u64,
}

/// A firewall rule or chain policy that drops VRRP, from `nft -j list ruleset`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropRule {
    pub family: String,
    pub table: String,
    pub chain: String,
    /// The chain's hook: "input", "output", "forward", ...
    pub hook: String,
    /// None: the chain's policy.
    pub handle: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: String,
    pub ifname: String,
    pub source: Option<IpAddr>,
    pub vrid: u8,
    /// One sentence: what, where, why.
    pub message: String,
    /// Commands that fix it.
    pub fix: Vec<String>,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        for line in &self.fix {
            write!(f, "\n    {line}")?;
        }
        Ok(())
    }
}

/// Adverts lost between the wire and the socket: at least this many in the window.
const MIN_LOST: u64 = 3;

pub fn findings(
    host: &str,
    window_s: u64,
    sources: &[SourceWindow],
    ours: &[Ours],
    drop_rules: &[DropRule],
    rp_filter: &dyn Fn(&str) -> Option<u8>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for s in sources {
        if ours.iter().any(|o| o.src == s.src) {
            continue;
        }
        let mine = ours
            .iter()
            .find(|o| o.ifname == s.ifname && o.vrid == s.vrid);
        let who = format!(
            "{host} {}: adverts from {} (VRID {})",
            s.ifname, s.src, s.vrid
        );
        // 1. On the wire, not at the socket: something after XDP eats them.
        if s.wire >= MIN_LOST && s.socket * 2 < s.wire {
            let (v4, l4) = if s.src.is_ipv4() {
                ("ipv4", "ip protocol vrrp")
            } else {
                ("ipv6", "meta l4proto vrrp")
            };
            let group = if s.src.is_ipv4() {
                "224.0.0.18"
            } else {
                "ff02::12"
            };
            let iptables = if s.src.is_ipv4() {
                "iptables"
            } else {
                "ip6tables"
            };
            let mut fix = Vec::new();
            let input: Vec<&DropRule> = drop_rules
                .iter()
                .filter(|r| r.hook == "input" || r.hook == "prerouting")
                .collect();
            let cause = if let Some(r) = input.first() {
                let what = r.handle.map_or_else(
                    || format!("the policy of chain {} {} {}", r.family, r.table, r.chain),
                    |h| format!("rule {h} in {} {} {}", r.family, r.table, r.chain),
                );
                fix.push(format!(
                    "nft insert rule {} {} {} {l4} accept",
                    r.family, r.table, r.chain
                ));
                format!("netfilter drops them ({what})")
            } else if rp_filter(&s.ifname) == Some(1) {
                format!(
                    "no firewall rule matches VRRP, but rp_filter on {} is strict (1)",
                    s.ifname
                )
            } else {
                "something in the kernel after XDP drops them (netfilter, rp_filter, the socket)"
                    .to_owned()
            };
            if input.is_empty() {
                fix.push(format!("nft insert rule inet filter input {l4} accept"));
            }
            fix.push(format!(
                "{iptables} -I INPUT -i {} -d {group} -p vrrp -j ACCEPT",
                s.ifname
            ));
            fix.push(format!("firewall-cmd --direct --add-rule {v4} filter INPUT 0 --in-interface {} --destination {group} --protocol vrrp -j ACCEPT", s.ifname));
            if rp_filter(&s.ifname) == Some(1) && input.is_empty() {
                fix.push(format!("sysctl -w net.ipv4.conf.{}.rp_filter=2", s.ifname));
            }
            out.push(Finding {
                kind: "lost-after-xdp".to_owned(),
                ifname: s.ifname.clone(),
                source: Some(s.src),
                vrid: s.vrid,
                message: format!(
                    "{who} reach the wire but {cause}: {} seen by XDP, {} delivered to the VRRP socket in the last {window_s} s. vrrpd's elections follow the wire, so this does not split the brain here; keepalived's would. Allow them:",
                    s.wire, s.socket
                ),
                fix,
            });
        }
        // 2. Peers that disagree with us.
        for (reason, n) in &s.dropped {
            if *n == 0 {
                continue;
            }
            let (kind, what, fix) = match reason.as_str() {
                "AuthMismatch" | "AuthTypeMismatch" => ("auth-mismatch", "carry a different authentication (auth_type / auth_pass)".to_owned(), "set the same authentication { auth_type PASS; auth_pass ... } on both routers".to_owned()),
                "IntervalMismatch" => (
                    "interval-mismatch",
                    format!("say advert_int {} s where ours is {} s (VRRPv2 requires the same)", f64::from(s.interval_cs) / 100.0, mine.map_or(0.0, |m| f64::from(m.interval_cs) / 100.0)),
                    "set the same advert_int on both routers".to_owned(),
                ),
                "VersionMismatch" => ("version-mismatch", format!("are VRRPv{} where ours is v{}", s.version, mine.map_or(0, |m| m.version)), "set the same vrrp_version (global_defs) or version (instance) on both".to_owned()),
                "AddressListMismatch" => ("vip-mismatch", "list other virtual addresses than ours".to_owned(), "make virtual_ipaddress the same on both routers".to_owned()),
                "BadTtl" => ("bad-ttl", "arrive with a TTL other than 255: they crossed a router, which VRRP forbids (RFC 5798 7.1)".to_owned(), "put both routers on the same L2 segment, or use unicast_peer on both".to_owned()),
                "BadChecksum" => ("bad-checksum", "fail the checksum".to_owned(), "if the peer is VRRPv3 over IPv4 without the pseudo-header (RFC 9568), set v3_checksum_as_v2 on this side".to_owned()),
                other => ("dropped", format!("are dropped by vrrpd ({other})"), String::new()),
            };
            out.push(Finding {
                kind: kind.to_owned(),
                ifname: s.ifname.clone(),
                source: Some(s.src),
                vrid: s.vrid,
                message: format!("{who} {what}: {n} ignored in the last {window_s} s."),
                fix: if fix.is_empty() {
                    Vec::new()
                } else {
                    vec![fix]
                },
            });
        }
        // 3. A router whose adverts stopped although it is up: the network loses them. A
        // lower-priority router that went quiet while we are master merely yielded to us.
        let yielded = mine.is_some_and(|m| m.master && s.priority < m.priority);
        if s.silent && s.answers_ping == Some(true) && !yielded {
            out.push(Finding {
                kind: "lost-on-network".to_owned(),
                ifname: s.ifname.clone(),
                source: Some(s.src),
                vrid: s.vrid,
                message: format!(
                    "{who} stopped {:.1} s ago, yet {} answers ping: it is up, and the network between loses its adverts (IGMP snooping without a querier, a VLAN, a switch ACL, cabling). Check the switch; `vrrpd diagnose` on {} says whether it still sends them.",
                    s.last_seen_s, s.src, s.src
                ),
                fix: Vec::new(),
            });
        }
        // 4. Two masters on the wire.
        if let Some(m) = mine
            && m.master
            && s.wire > 0
            && s.dropped.iter().all(|(_, n)| *n == 0)
            && s.priority > 0
            && s.priority < m.priority
        {
            out.push(Finding {
                    kind: "two-masters".to_owned(),
                    ifname: s.ifname.clone(),
                    source: Some(s.src),
                    vrid: s.vrid,
                    message: format!(
                        "{host} {}: two masters for VRID {}: {} ({}, priority {}) and {} (priority {}). The other side does not hear us: look at its firewall (`vrrpd diagnose` there) and at the network between.",
                        s.ifname, s.vrid, m.name, m.src, m.priority, s.src, s.priority
                    ),
                    fix: Vec::new(),
                });
        }
    }
    for o in ours {
        // 5. Our own adverts dropped on output: sendto() fails with EPERM.
        if o.send_refused > 0 {
            let (l4, group, iptables, v4) = if o.src.is_ipv4() {
                ("ip protocol vrrp", "224.0.0.18", "iptables", "ipv4")
            } else {
                ("meta l4proto vrrp", "ff02::12", "ip6tables", "ipv6")
            };
            let output: Vec<&DropRule> = drop_rules
                .iter()
                .filter(|r| r.hook == "output" || r.hook == "postrouting")
                .collect();
            let mut fix = Vec::new();
            let what = if let Some(r) = output.first() {
                fix.push(format!(
                    "nft insert rule {} {} {} {l4} accept",
                    r.family, r.table, r.chain
                ));
                r.handle.map_or_else(
                    || {
                        format!(
                            " (the policy of chain {} {} {})",
                            r.family, r.table, r.chain
                        )
                    },
                    |h| format!(" (rule {h} in {} {} {})", r.family, r.table, r.chain),
                )
            } else {
                fix.push(format!("nft insert rule inet filter output {l4} accept"));
                String::new()
            };
            fix.push(format!(
                "{iptables} -I OUTPUT -o {} -d {group} -p vrrp -j ACCEPT",
                o.ifname
            ));
            fix.push(format!("firewall-cmd --direct --add-rule {v4} filter OUTPUT 0 --out-interface {} --destination {group} --protocol vrrp -j ACCEPT", o.ifname));
            out.push(Finding {
                kind: "dropped-on-output".to_owned(),
                ifname: o.ifname.clone(),
                source: Some(o.src),
                vrid: o.vrid,
                message: format!(
                    "{host} {}: our own adverts ({}, VRID {}) are dropped on output by netfilter{what}: the kernel refused {} sends in the last {window_s} s, so the other routers do not hear us. Allow them:",
                    o.ifname, o.name, o.vrid, o.send_refused
                ),
                fix,
            });
        }
    }
    out
}

/// Rules (and input-chain policies) in `nft -j list ruleset` that drop VRRP.
pub fn vrrp_drop_rules(ruleset: &serde_json::Value) -> Vec<DropRule> {
    let mut out = Vec::new();
    let items = ruleset["nftables"].as_array().cloned().unwrap_or_default();
    let hook_of = |family: &str, table: &str, chain: &str| {
        items
            .iter()
            .filter_map(|i| i.get("chain"))
            .find(|c| c["family"] == family && c["table"] == table && c["name"] == chain)
            .and_then(|c| c["hook"].as_str())
            .unwrap_or("")
            .to_owned()
    };
    for item in &items {
        if let Some(rule) = item.get("rule") {
            let exprs = rule["expr"].as_array().cloned().unwrap_or_default();
            let text = serde_json::Value::Array(exprs.clone()).to_string();
            let matches_vrrp = text.contains("\"vrrp\"")
                || text.contains(":112}")
                || text.contains("\"right\":112");
            let drops = exprs
                .iter()
                .any(|e| e.get("drop").is_some() || e.get("reject").is_some());
            if matches_vrrp && drops {
                let (family, table, chain) = (
                    rule["family"].as_str().unwrap_or("inet"),
                    rule["table"].as_str().unwrap_or_default(),
                    rule["chain"].as_str().unwrap_or_default(),
                );
                out.push(DropRule {
                    family: family.to_owned(),
                    table: table.to_owned(),
                    chain: chain.to_owned(),
                    hook: hook_of(family, table, chain),
                    handle: rule["handle"].as_u64(),
                });
            }
        }
        if let Some(chain) = item.get("chain")
            && (chain["hook"] == "input" || chain["hook"] == "output")
            && chain["policy"] == "drop"
        {
            out.push(DropRule {
                family: chain["family"].as_str().unwrap_or("inet").to_owned(),
                table: chain["table"].as_str().unwrap_or_default().to_owned(),
                chain: chain["name"].as_str().unwrap_or_default().to_owned(),
                hook: chain["hook"].as_str().unwrap_or_default().to_owned(),
                handle: None,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(wire: u64, socket: u64, dropped: Vec<(String, u64)>) -> SourceWindow {
        SourceWindow {
            ifname: "eth0".into(),
            src: "10.0.0.5".parse().expect("a"),
            vrid: 50,
            version: 2,
            priority: 150,
            interval_cs: 100,
            wire,
            socket,
            dropped,
            auth: "pass".into(),
            last_seen_s: 0.5,
            interval_mean_s: Some(1.0),
            interval_jitter_s: Some(0.001),
            wire_total: wire,
            socket_total: socket,
            silent: false,
            answers_ping: None,
        }
    }

    fn ours(master: bool) -> Ours {
        Ours {
            name: "VI_1".into(),
            ifname: "eth0".into(),
            vrid: 50,
            version: 2,
            master,
            priority: 100,
            interval_cs: 100,
            src: "10.0.0.6".parse().expect("a"),
            send_refused: 0,
            sent: 10,
        }
    }

    #[test]
    fn firewall_drop_is_named_with_its_fix() {
        let rules = vec![DropRule {
            family: "inet".into(),
            table: "lab".into(),
            chain: "input".into(),
            hook: "input".into(),
            handle: Some(3),
        }];
        let f = findings(
            "lb02",
            10,
            &[src(10, 0, vec![])],
            &[ours(false)],
            &rules,
            &|_| Some(0),
        );
        assert_eq!(f.len(), 1);
        assert!(f[0].message.starts_with("lb02 eth0: adverts from 10.0.0.5 (VRID 50) reach the wire but netfilter drops them (rule 3 in inet lab input): 10 seen by XDP, 0 delivered"), "{}", f[0]);
        assert_eq!(
            f[0].fix[0],
            "nft insert rule inet lab input ip protocol vrrp accept"
        );
        assert!(f[0].fix.iter().any(|l| l == "firewall-cmd --direct --add-rule ipv4 filter INPUT 0 --in-interface eth0 --destination 224.0.0.18 --protocol vrrp -j ACCEPT"));
    }

    #[test]
    fn delivered_adverts_make_no_finding() {
        assert!(
            findings(
                "lb02",
                10,
                &[src(10, 10, vec![])],
                &[ours(false)],
                &[],
                &|_| Some(0)
            )
            .is_empty()
        );
    }

    #[test]
    fn mismatches_are_named() {
        let f = findings(
            "lb02",
            10,
            &[src(10, 10, vec![("IntervalMismatch".into(), 10)])],
            &[ours(false)],
            &[],
            &|_| None,
        );
        assert_eq!(f[0].kind, "interval-mismatch");
        let f = findings(
            "lb02",
            10,
            &[src(10, 10, vec![("AuthMismatch".into(), 10)])],
            &[ours(false)],
            &[],
            &|_| None,
        );
        assert_eq!(f[0].kind, "auth-mismatch");
    }

    #[test]
    fn our_refused_sends_and_a_silent_master_are_named() {
        let mut o = ours(true);
        o.send_refused = 7;
        let rules = vec![DropRule {
            family: "inet".into(),
            table: "fw".into(),
            chain: "out".into(),
            hook: "output".into(),
            handle: Some(4),
        }];
        let f = findings("lb01", 10, &[], &[o], &rules, &|_| None);
        assert_eq!(f[0].kind, "dropped-on-output");
        assert!(
            f[0].message
                .contains("dropped on output by netfilter (rule 4 in inet fw out)"),
            "{}",
            f[0]
        );
        assert_eq!(
            f[0].fix[0],
            "nft insert rule inet fw out ip protocol vrrp accept"
        );
        let mut quiet = src(0, 0, vec![]);
        quiet.silent = true;
        quiet.answers_ping = Some(true);
        assert_eq!(
            findings("lb02", 10, &[quiet.clone()], &[ours(true)], &[], &|_| None)[0].kind,
            "lost-on-network"
        );
        let mut lower = quiet.clone();
        lower.priority = 50;
        assert!(
            findings("lb02", 10, &[lower], &[ours(true)], &[], &|_| None).is_empty(),
            "a backup that yielded to us is quiet by design"
        );
        quiet.answers_ping = Some(false);
        assert!(
            findings("lb02", 10, &[quiet], &[ours(true)], &[], &|_| None).is_empty(),
            "a dead peer is a failover, not a finding"
        );
    }

    #[test]
    fn parses_nft_json() {
        let v: serde_json::Value = serde_json::from_str(r#"{"nftables":[{"metainfo":{}},{"chain":{"family":"inet","table":"lab","name":"input","handle":1,"type":"filter","hook":"input","prio":0,"policy":"accept"}},{"rule":{"family":"inet","table":"lab","chain":"input","handle":2,"expr":[{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"protocol"}},"right":"vrrp"}},{"counter":{"packets":3,"bytes":120}},{"drop":null}]}}]}"#).expect("json");
        assert_eq!(
            vrrp_drop_rules(&v),
            vec![DropRule {
                family: "inet".into(),
                table: "lab".into(),
                chain: "input".into(),
                hook: "input".into(),
                handle: Some(2)
            }]
        );
    }
}
