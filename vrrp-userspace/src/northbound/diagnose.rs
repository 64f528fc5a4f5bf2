//! `vrrpd diagnose`: turns what the wire showed (XDP, before netfilter) and what reached the
//! VRRP socket (after netfilter) into one sentence per problem, with the rule that fixes it.
//! Pure: the daemon gathers the numbers and the ruleset (daemon::observe), this decides what
//! they mean. Drop reasons come in as `DropReason` and `KernelReason` values and findings go
//! out with a `FindingKind`: nothing here is matched as text.

use std::{collections::HashMap, net::IpAddr};

use serde::{Deserialize, Serialize};

pub use super::ruleset::DropRule;
use super::ruleset::{Direction, Firewall, Packet, Ruleset};
use crate::{datapath::drops::KernelReason, protocol::drop::DropReason};

/// What a finding is about: its one spelling in logs, metrics (`vrrpd_finding{kind=..}`) and
/// JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// On the wire (XDP), not at the VRRP socket: netfilter, rp_filter, the socket.
    LostAfterXdp,
    /// Our own adverts dropped before they left.
    DroppedOnOutput,
    /// A peer that is up (answers ping) but whose adverts stopped arriving.
    LostOnNetwork,
    AuthMismatch,
    IntervalMismatch,
    VersionMismatch,
    VipMismatch,
    BadTtl,
    BadChecksum,
    /// Dropped by vrrpd for another reason.
    Dropped,
    /// A peer's adverts stall, then come in a burst: it is starved of CPU.
    PeerLate,
    TwoMasters,
    /// Our own adverts leave late.
    AdvertsLate,
    /// The XDP ring overflowed (a flood from many sources): adverts were lost before vrrpd
    /// read them, and the flooded interfaces' elections hear their socket.
    RingFull,
}

impl FindingKind {
    pub const fn name(self) -> &'static str {
        match self {
            Self::LostAfterXdp => "lost_after_xdp",
            Self::DroppedOnOutput => "dropped_on_output",
            Self::LostOnNetwork => "lost_on_network",
            Self::AuthMismatch => "auth_mismatch",
            Self::IntervalMismatch => "interval_mismatch",
            Self::VersionMismatch => "version_mismatch",
            Self::VipMismatch => "vip_mismatch",
            Self::BadTtl => "bad_ttl",
            Self::BadChecksum => "bad_checksum",
            Self::Dropped => "dropped",
            Self::PeerLate => "peer_late",
            Self::TwoMasters => "two_masters",
            Self::AdvertsLate => "adverts_late",
            Self::RingFull => "ring_full",
        }
    }
}

impl std::fmt::Display for FindingKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

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
    /// Drop reasons (vrrpd's own checks) in the window, most first.
    pub dropped: Vec<(DropReason, u64)>,
    /// Adverts acted on in the window although they disagree with our config, by reason.
    #[serde(default)]
    pub mismatched: Vec<(DropReason, u64)>,
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
    /// The kernel's drop reasons for its adverts in the window (skb:kfree_skb), most first.
    #[serde(default)]
    pub kernel_drops: Vec<(KernelReason, u64)>,
    /// Where its adverts go (the group, or this host for unicast).
    #[serde(default)]
    pub dst: Option<IpAddr>,
    /// The longest gap between its adverts in the window (XDP stamps), and how many came
    /// less than a quarter interval after the one before (a burst after a stall).
    #[serde(default)]
    pub gap_max_s: Option<f64>,
    #[serde(default)]
    pub bursts: u64,
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
    /// The kernel's drop reasons for our adverts in the window, most first.
    #[serde(default)]
    pub kernel_drops: Vec<(KernelReason, u64)>,
    /// Periodic adverts in the window that left more than a quarter interval late, of how
    /// many, and the worst lateness.
    #[serde(default)]
    pub late: u64,
    #[serde(default)]
    pub periodic: u64,
    #[serde(default)]
    pub late_max_ms: f64,
}

/// This process and its CPU over the window (starve.rs), for late adverts.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Cpu {
    /// Periods in which the cgroup ran out of quota, and the time it was throttled.
    pub throttled_periods: u64,
    pub throttled_ms: f64,
    /// Time the daemon's threads waited for a CPU.
    pub runq_wait_ms: f64,
    /// None: the advert thread is SCHED_FIFO; Some(why): it is not.
    pub not_realtime: Option<String>,
    pub cgroup_dir: Option<String>,
    pub cgroup_v1: bool,
}

/// What the host's kernel is configured to do with VRRP, gathered by the caller.
#[derive(Clone, Debug, Default)]
pub struct Kernel {
    /// `nft -j list ruleset`, read when adverts are lost in netfilter; None when unread.
    pub ruleset: Option<Ruleset>,
    /// Interface -> net.ipv4.conf.<if>.rp_filter.
    pub rp_filter: HashMap<String, u8>,
    /// (interface, group) memberships from /proc/net/igmp and igmp6; None when unreadable.
    pub groups: Option<Vec<(String, IpAddr)>>,
    pub cpu: Cpu,
    pub ring: Ring,
}

/// The XDP ring over the window.
#[derive(Clone, Debug, Default)]
pub struct Ring {
    /// Records that did not fit (`ring_full`).
    pub lost: u64,
    /// The interfaces whose elections hear their socket until the flood ends.
    pub fallback: Vec<String>,
}

/// The multicast groups each interface has joined, from /proc/net/igmp and /proc/net/igmp6.
pub fn multicast_groups(igmp: &str, igmp6: &str) -> Vec<(String, IpAddr)> {
    let mut out = Vec::new();
    // igmp: "2\teth0      :     2      V3" then "\t\t\t\t120000E0     1 0:00000000\t\t0",
    // the group printed as the raw __be32 in hex.
    let mut dev = String::new();
    for line in igmp.lines().skip(1) {
        if !line.starts_with(char::is_whitespace) {
            dev = line
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .trim_end_matches(':')
                .to_owned();
        } else if let Some(hex) = line.split_whitespace().next()
            && let Ok(raw) = u32::from_str_radix(hex, 16)
        {
            out.push((dev.clone(), IpAddr::from(raw.to_ne_bytes())));
        }
    }
    // igmp6: "2    eth0            ff020000000000000000000000000012     1 00000004 0"
    for line in igmp6.lines() {
        let mut f = line.split_whitespace();
        if let (Some(_), Some(dev), Some(hex)) = (f.next(), f.next(), f.next())
            && hex.len() == 32
            && let Ok(raw) = u128::from_str_radix(hex, 16)
        {
            out.push((dev.to_owned(), IpAddr::from(raw.to_be_bytes())));
        }
    }
    out
}

/// "NETFILTER_DROP 10, IP_RPFILTER 2" or "".
fn reasons_text(r: &[(KernelReason, u64)]) -> String {
    r.iter()
        .map(|(n, c)| format!("{n} {c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub ifname: String,
    pub source: Option<IpAddr>,
    pub vrid: u8,
    /// One sentence: what, where, why.
    pub message: String,
    /// Commands that fix it.
    pub fix: Vec<String>,
    /// The netfilter rule that drops the adverts, when one does.
    #[serde(default)]
    pub rule: Option<DropRule>,
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
    kernel: &Kernel,
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
        // 1. On the wire, not at the socket: something after XDP eats them. Most of the
        // window's adverts missing, or the kernel itself reporting three of them dropped: the
        // window still holds the adverts delivered before the fault, and a rule that drops
        // only some of them (a rate limit) loses adverts all the same.
        let kernel_lost: u64 = s.kernel_drops.iter().map(|(_, n)| n).sum();
        if s.wire >= MIN_LOST && (s.socket * 2 < s.wire || kernel_lost >= MIN_LOST) {
            out.push(lost_after_xdp(&who, window_s, s, kernel));
        }
        // 2. Peers that disagree with us: acted on all the same (a rolling change of the VIPs
        // half done), or dropped.
        for (reason, n) in &s.mismatched {
            if *n > 0 && *reason == DropReason::AddressListMismatch {
                out.push(Finding {
                    kind: FindingKind::VipMismatch,
                    rule: None,
                    ifname: s.ifname.clone(),
                    source: Some(s.src),
                    vrid: s.vrid,
                    message: format!("{who} list other virtual addresses than ours: {n} in the last {window_s} s, still counted in the election (RFC 5798 7.1 makes the check optional, and a pair half-way through a change of its VIPs must not elect two masters; vrrp_strict drops them)."),
                    fix: vec!["make virtual_ipaddress the same on both routers (finish the change on the other one) and reload".to_owned()],
                });
            }
        }
        for (reason, n) in &s.dropped {
            if *n == 0 {
                continue;
            }
            let (kind, what, fix) = match reason {
                DropReason::AuthMismatch | DropReason::AuthTypeMismatch => (FindingKind::AuthMismatch, "carry a different authentication (auth_type / auth_pass)".to_owned(), "set the same authentication { auth_type PASS; auth_pass ... } on both routers".to_owned()),
                DropReason::IntervalMismatch => (
                    FindingKind::IntervalMismatch,
                    format!("say advert_int {} s where ours is {} s (VRRPv2 requires the same)", f64::from(s.interval_cs) / 100.0, mine.map_or(0.0, |m| f64::from(m.interval_cs) / 100.0)),
                    "set the same advert_int on both routers".to_owned(),
                ),
                DropReason::VersionMismatch => (FindingKind::VersionMismatch, format!("are VRRPv{} where ours is v{}", s.version, mine.map_or(0, |m| m.version)), "set the same vrrp_version (global_defs) or version (instance) on both".to_owned()),
                DropReason::AddressListMismatch => (FindingKind::VipMismatch, "list other virtual addresses than ours".to_owned(), "make virtual_ipaddress the same on both routers".to_owned()),
                DropReason::BadTtl => (FindingKind::BadTtl, "arrive with a TTL other than 255: they crossed a router, which VRRP forbids (RFC 5798 7.1)".to_owned(), "put both routers on the same L2 segment, or use unicast_peer on both".to_owned()),
                DropReason::BadChecksum => (FindingKind::BadChecksum, "fail the checksum".to_owned(), "if the peer is VRRPv3 over IPv4 without the pseudo-header (RFC 9568), set v3_checksum_as_v2 on this side".to_owned()),
                // Another virtual router on the same segment: not a disagreement with us.
                DropReason::UnknownVrid => continue,
                other => (FindingKind::Dropped, format!("are dropped by vrrpd ({other})"), String::new()),
            };
            out.push(Finding {
                kind,
                rule: None,
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
                kind: FindingKind::LostOnNetwork,
                rule: None,
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
        // 3b. A peer whose adverts stall and then come in a burst: it is starved of CPU (a
        // network that loses adverts does not deliver them late and bunched).
        let interval = f64::from(s.interval_cs.max(1)) / 100.0;
        if let Some(gap) = s.gap_max_s
            && gap > 1.5 * interval
            && s.bursts > 0
        {
            out.push(Finding {
                kind: FindingKind::PeerLate,
                rule: None,
                ifname: s.ifname.clone(),
                source: Some(s.src),
                vrid: s.vrid,
                message: format!(
                    "{who} arrive late and in bursts: a gap of {:.0} ms at advert_int {:.0} ms, then {} less than a quarter interval apart, in the last {window_s} s. The network does not bunch adverts; the sender is starved of CPU (a throttled cgroup, an overloaded host). `vrrpd diagnose` on {} names the cause if it runs vrrpd.",
                    gap * 1000.0,
                    interval * 1000.0,
                    s.bursts,
                    s.src
                ),
                fix: Vec::new(),
            });
        }
        // 4. Two masters on the wire: a lower priority that keeps advertising (a backup
        // sends nothing) over several of its intervals and still now, not the overlap of a
        // moment (a link that came back: both were masters until the first advert crossed).
        let its_interval = f64::from(s.interval_cs.max(1)) / 100.0;
        // Three of its adverts, or as many as the window holds at a long interval (two at
        // least).
        let persisting = ((window_s as f64 / its_interval) as u64).clamp(2, 3);
        if let Some(m) = mine
            && m.master
            && s.wire >= persisting
            && s.last_seen_s <= 3.0 * its_interval
            && s.dropped.iter().all(|(_, n)| *n == 0)
            && s.priority > 0
            && s.priority < m.priority
        {
            // A cause only where the evidence here shows one.
            let why = if m.send_refused > 0 || !m.kernel_drops.is_empty() {
                "Our own adverts do not leave this host (see the dropped_on_output finding)."
                    .to_owned()
            } else {
                format!(
                    "Ours leave this host ({} sent), so {} does not hear them or does not take them: its firewall, its VRID or authentication, or the network between; `vrrpd diagnose` on {} says which.",
                    m.sent, s.src, s.src
                )
            };
            out.push(Finding {
                kind: FindingKind::TwoMasters,
                rule: None,
                ifname: s.ifname.clone(),
                source: Some(s.src),
                vrid: s.vrid,
                message: format!(
                    "{host} {}: two masters for VRID {}: {} ({}, priority {}) and {} (priority {}), which has kept advertising for {} of its adverts in the last {window_s} s. {why}",
                    s.ifname, s.vrid, m.name, m.src, m.priority, s.src, s.priority, s.wire
                ),
                fix: Vec::new(),
            });
        }
    }
    for o in ours {
        // 5. Our own adverts dropped on output: sendto() fails with EPERM (netfilter), or the
        // kernel reports the drop (a qdisc, tc, a full queue) after a successful send.
        let kernel_dropped: u64 = o.kernel_drops.iter().map(|(_, n)| n).sum();
        if o.send_refused > 0 || kernel_dropped > 0 {
            out.push(dropped_on_output(host, window_s, o, kernel_dropped, kernel));
        }
        // 6. Our own adverts left late: say why this process could not run.
        if o.master && o.late >= 2 {
            out.push(adverts_late(host, window_s, o, &kernel.cpu));
        }
    }
    // 7. The ring overflowed: what XDP saw did not all reach the elections.
    if kernel.ring.lost > 0 || !kernel.ring.fallback.is_empty() {
        out.extend(ring_full(host, window_s, &kernel.ring));
    }
    summarize_floods(host, out)
}

/// Findings listed one by one for this many sources of a kind (per interface and VRID) at
/// most; the rest become one summary. A flood of spoofed sources must not become a flood of
/// findings (each one logged).
const SOURCES_PER_KIND: usize = 5;

fn summarize_floods(host: &str, found: Vec<Finding>) -> Vec<Finding> {
    let mut seen: HashMap<(FindingKind, String, u8), usize> = HashMap::new();
    let mut out = Vec::with_capacity(found.len().min(64));
    for f in found {
        if f.source.is_none() {
            out.push(f);
            continue;
        }
        let n = seen.entry((f.kind, f.ifname.clone(), f.vrid)).or_default();
        *n += 1;
        if *n <= SOURCES_PER_KIND {
            out.push(f);
        }
    }
    let mut more: Vec<_> = seen
        .into_iter()
        .filter(|(_, n)| *n > SOURCES_PER_KIND)
        .collect();
    more.sort();
    for ((kind, ifname, vrid), n) in more {
        out.push(Finding {
            kind,
            rule: None,
            ifname: ifname.clone(),
            source: None,
            vrid,
            message: format!(
                "{host} {ifname}: {} more sources for VRID {vrid} with the same finding ({kind}), not listed one by one: that many routers at once is a flood of spoofed adverts (`vrrpd watch` shows them).",
                n - SOURCES_PER_KIND
            ),
            fix: Vec::new(),
        });
    }
    out
}

fn ring_full(host: &str, window_s: u64, ring: &Ring) -> Vec<Finding> {
    let lost = if ring.lost > 0 {
        format!(
            "the XDP ring overflowed: {} adverts were lost before vrrpd read them in the last {window_s} s",
            ring.lost
        )
    } else {
        "the XDP ring overflowed".to_owned()
    };
    let fix = vec![
        "find the flood's origin: `vrrpd capture -w flood.pcap -i IFNAME` shows the sources and MACs".to_owned(),
        "filter VRRP to the routers of the pair at the switch (an ACL on protocol 112), or use unicast_peer so that only the peers count".to_owned(),
    ];
    if ring.fallback.is_empty() {
        return vec![Finding {
            kind: FindingKind::RingFull,
            rule: None,
            ifname: String::new(),
            source: None,
            vrid: 0,
            message: format!(
                "{host}: {lost}, a flood from many sources (each within its own budget), spread over every interface."
            ),
            fix,
        }];
    }
    ring.fallback
        .iter()
        .map(|ifname| Finding {
            kind: FindingKind::RingFull,
            rule: None,
            ifname: ifname.clone(),
            source: None,
            vrid: 0,
            message: format!(
                "{host} {ifname}: {lost}, most from {ifname}: a flood from many sources, each within its own budget. {ifname}'s elections hear its VRRP socket (after netfilter, as keepalived's do) until it has been quiet for 5 s; the other interfaces keep the ring."
            ),
            fix: fix.clone(),
        })
        .collect()
}

fn family_words(src: IpAddr) -> (&'static str, &'static str, &'static str, &'static str) {
    if src.is_ipv4() {
        ("ipv4", "ip protocol vrrp", "224.0.0.18", "iptables")
    } else {
        ("ipv6", "meta l4proto vrrp", "ff02::12", "ip6tables")
    }
}

/// The group an advert goes to when the window did not record its destination.
fn group(src: IpAddr) -> IpAddr {
    if src.is_ipv4() {
        IpAddr::from([224, 0, 0, 18])
    } else {
        IpAddr::from([0xff02, 0, 0, 0, 0, 0, 0, 0x12])
    }
}

/// The rule as a finding names it: where it is, and the zone when firewalld owns it.
fn rule_text(r: &DropRule) -> String {
    let probably = if r.certain { "" } else { "probably " };
    let verdict = if r.handle.is_some() && r.verdict.starts_with("reject") {
        format!(", {}", r.verdict)
    } else {
        String::new()
    };
    let place = r.handle.map_or_else(
        || format!("the policy of chain {} {} {}", r.family, r.table, r.chain),
        |h| format!("rule {h} in {} {} {}", r.family, r.table, r.chain),
    );
    let owner = match &r.firewall {
        Firewall::Firewalld { zone: Some(z) } => format!(", firewalld zone {z}"),
        Firewall::Firewalld { zone: None } => ", firewalld".to_owned(),
        Firewall::Ufw => ", ufw".to_owned(),
        Firewall::Iptables | Firewall::Nftables => String::new(),
    };
    format!("{probably}{place}{verdict}{owner}")
}

/// The fix for a drop, in the tool of the firewall that owns the rule: a rule added beside it
/// with another tool is either reached too late (firewalld's chain rejects after an
/// iptables-nft ACCEPT) or lost at its next reload.
fn owner_fix(r: &DropRule, p: &Packet) -> Vec<String> {
    let (_, l4, _, iptables) = family_words(p.src);
    let inbound = p.direction == Direction::In;
    let (to, from) = if p.dst.is_multicast() || !inbound {
        (format!("to {}", p.dst), format!("-d {}", p.dst))
    } else {
        (format!("from {}", p.src), format!("-s {}", p.src))
    };
    match &r.firewall {
        Firewall::Firewalld { zone } if inbound => {
            let zone = zone
                .as_ref()
                .map(|z| format!(" --zone={z}"))
                .unwrap_or_default();
            vec![
                format!("firewall-cmd --permanent{zone} --add-protocol=vrrp"),
                "firewall-cmd --reload".to_owned(),
            ]
        }
        Firewall::Ufw => {
            let dir = if inbound { "in" } else { "out" };
            vec![format!("ufw allow {dir} on {} {to} proto vrrp", p.ifname)]
        }
        Firewall::Iptables => {
            let table = if r.table == "filter" {
                String::new()
            } else {
                format!("-t {} ", r.table)
            };
            let io = if inbound { "-i" } else { "-o" };
            vec![format!(
                "{iptables} {table}-I {} {io} {} {from} -p vrrp -j ACCEPT",
                r.base_chain(),
                p.ifname
            )]
        }
        // Outbound, firewalld filters with policies (`filter_OUT_policy_NAME`).
        Firewall::Firewalld { .. }
            if let Some(policy) = r
                .path
                .iter()
                .rev()
                .find_map(|c| c.strip_prefix("filter_OUT_policy_")) =>
        {
            vec![
                format!("firewall-cmd --permanent --policy={policy} --add-protocol=vrrp"),
                "firewall-cmd --reload".to_owned(),
            ]
        }
        Firewall::Nftables | Firewall::Firewalld { .. } => vec![format!(
            "nft insert rule {} {} {} {l4} accept",
            r.family,
            r.table,
            r.base_chain()
        )],
    }
}

/// What the owner's fix does not cover: a sentence for the finding, or nothing.
fn owner_note(r: &DropRule) -> &'static str {
    match r.firewall {
        Firewall::Firewalld { .. } => {
            " An iptables or `firewall-cmd --direct` rule does not help here: it lands in iptables-nft's table, and firewalld's own chain still rejects them after it."
        }
        Firewall::Nftables => " Add the rule to /etc/nftables.conf too, to keep it.",
        Firewall::Ufw | Firewall::Iptables => "",
    }
}

fn lost_after_xdp(who: &str, window_s: u64, s: &SourceWindow, kernel: &Kernel) -> Finding {
    let (_, _, group_text, iptables) = family_words(s.src);
    let packet = Packet {
        direction: Direction::In,
        ifname: s.ifname.clone(),
        src: s.src,
        dst: s.dst.unwrap_or_else(|| group(s.src)),
    };
    let input = kernel.ruleset.as_ref().and_then(|r| r.walk(&packet));
    let reason = s.kernel_drops.first().map(|(r, _)| r);
    let rp_strict = kernel.rp_filter.get(&s.ifname) == Some(&1);
    let unjoined = s.dst.filter(IpAddr::is_multicast).filter(|d| {
        kernel
            .groups
            .as_ref()
            .is_some_and(|g| !g.iter().any(|(i, a)| *i == s.ifname && a == d))
    });
    let mut fix = Vec::new();
    let mut firewall_fix = false;
    let cause = match (reason, &input) {
        (Some(KernelReason::NetfilterDrop) | None, Some(r)) => {
            fix = owner_fix(r, &packet);
            firewall_fix = true;
            match reason {
                Some(name) => format!(
                    "netfilter drops them ({name}, {}; {})",
                    r.hook,
                    rule_text(r)
                ),
                None => format!("netfilter drops them ({})", rule_text(r)),
            }
        }
        (Some(KernelReason::NetfilterDrop), None) => {
            firewall_fix = true;
            let addr = match s.dst {
                Some(d) if !d.is_multicast() => format!("-s {}", s.src),
                _ => format!("-d {group_text}"),
            };
            fix.push(format!(
                "{iptables}-legacy -I INPUT -i {} {addr} -p vrrp -j ACCEPT",
                s.ifname
            ));
            if kernel.ruleset.is_some() {
                "netfilter drops them (NETFILTER_DROP, input), but no rule in nft's ruleset does on their path: look in iptables-legacy's tables (`iptables-legacy -S`), which nft does not show".to_owned()
            } else {
                "netfilter drops them (NETFILTER_DROP, input); nft's ruleset could not be read (`nft -j list ruleset`)".to_owned()
            }
        }
        (Some(KernelReason::IpRpfilter), _) => {
            fix.push(format!("sysctl -w net.ipv4.conf.{}.rp_filter=2", s.ifname));
            fix.push("sysctl -w net.ipv4.conf.all.rp_filter=2".to_owned());
            format!(
                "reverse-path filtering drops them (IP_RPFILTER): net.ipv4.conf.{}.rp_filter is strict and the route back to {} is not through {}",
                s.ifname, s.src, s.ifname
            )
        }
        (Some(KernelReason::SocketRcvbuff), _) => "the VRRP socket's receive queue overflows (SOCKET_RCVBUFF): vrrpd does not read fast enough (a throttled or starved process; see its CPU)".to_owned(),
        (Some(other), _) => format!("the kernel drops them ({other})"),
        (None, None) if unjoined.is_some() => {
            let g = unjoined.map(|g| g.to_string()).unwrap_or_default();
            fix.push(format!("ip maddr show dev {}   # {g} must be listed; restart vrrpd to join it again", s.ifname));
            format!(
                "this host is not a member of {g} on {} (no multicast membership), so the kernel does not deliver them",
                s.ifname
            )
        }
        (None, None) if rp_strict => {
            firewall_fix = true;
            fix.push(format!("sysctl -w net.ipv4.conf.{}.rp_filter=2", s.ifname));
            format!(
                "no firewall rule matches VRRP, but rp_filter on {} is strict (1)",
                s.ifname
            )
        }
        (None, None) => {
            fix.push(format!("{iptables}-legacy -S INPUT   # rules nft does not show"));
            fix.push(format!("nstat -az | grep -i -e drop -e discard   # the kernel's own counters; rp_filter: sysctl net.ipv4.conf.{}.rp_filter", s.ifname));
            "something in the kernel after XDP drops them, and no nftables rule does on their path (iptables-legacy, rp_filter, the socket)"
                .to_owned()
        }
    };
    let kernel_said = if s.kernel_drops.is_empty() {
        String::new()
    } else {
        format!(
            ", the kernel's drop reasons: {}",
            reasons_text(&s.kernel_drops)
        )
    };
    Finding {
        kind: FindingKind::LostAfterXdp,
        rule: input.clone(),
        ifname: s.ifname.clone(),
        source: Some(s.src),
        vrid: s.vrid,
        message: format!(
            "{who} reach the wire but {cause}: {} seen by XDP, {} delivered to the VRRP socket in the last {window_s} s{kernel_said}. vrrpd's elections follow the wire, so this does not split the brain here; keepalived's would.{} {}",
            s.wire,
            s.socket,
            input.as_ref().map_or("", owner_note),
            if firewall_fix {
                "Allow them:"
            } else if fix.is_empty() {
                ""
            } else {
                "Fix:"
            }
        ),
        fix,
    }
}

fn adverts_late(host: &str, window_s: u64, o: &Ours, cpu: &Cpu) -> Finding {
    let quarter_ms = f64::from(o.interval_cs) * 10.0 / 4.0;
    let mut fix = Vec::new();
    let rt = cpu.not_realtime.as_ref().map_or_else(
        || " (the advert thread is SCHED_FIFO but out of real-time runtime, or its cgroup has none)".to_owned(),
        |why| format!(", and the advert thread runs without real-time priority: {why}"),
    );
    let cause = if cpu.throttled_periods > 0 {
        if let Some(dir) = &cpu.cgroup_dir {
            if cpu.cgroup_v1 {
                fix.push(format!("echo 20000 > {dir}/cpu.rt_runtime_us   # real-time runtime for vrrpd's advert thread; then restart vrrpd"));
            }
            fix.push(format!(
                "raise the CPU quota of {dir} (cpu.cfs_quota_us / cpu.max), or run vrrpd outside it"
            ));
        }
        format!(
            "its cgroup ran out of CPU quota {} times and was throttled for {:.0} ms{rt}",
            cpu.throttled_periods, cpu.throttled_ms
        )
    } else if cpu.runq_wait_ms > window_s as f64 * 100.0 {
        fix.push("give vrrpd real-time priority: CAP_SYS_NICE (systemd: AmbientCapabilities=CAP_SYS_NICE)".to_owned());
        format!(
            "its threads waited {:.0} ms for a CPU: the host is overloaded{rt}",
            cpu.runq_wait_ms
        )
    } else {
        "with no sign of CPU throttling or waiting: the process was stopped (SIGSTOP, a paused VM or container)".to_owned()
    };
    Finding {
        kind: FindingKind::AdvertsLate,
        rule: None,
        ifname: o.ifname.clone(),
        source: Some(o.src),
        vrid: o.vrid,
        message: format!(
            "{host} {}: our adverts ({}, VRID {}) leave late: {} of {} more than {quarter_ms:.0} ms after their deadline in the last {window_s} s, the worst {:.0} ms late. The cause: {cause}. Late adverts make the backups take over.",
            o.ifname, o.name, o.vrid, o.late, o.periodic, o.late_max_ms
        ),
        fix,
    }
}

fn dropped_on_output(
    host: &str,
    window_s: u64,
    o: &Ours,
    kernel_dropped: u64,
    kernel: &Kernel,
) -> Finding {
    let (_, _, group_text, iptables) = family_words(o.src);
    let reason = o.kernel_drops.first().map(|(r, _)| r);
    // Ours go to the group; a unicast instance's peers are not in the window, and the walk
    // needs only one destination to find a catch-all.
    let packet = Packet {
        direction: Direction::Out,
        ifname: o.ifname.clone(),
        src: o.src,
        dst: group(o.src),
    };
    let output = kernel.ruleset.as_ref().and_then(|r| r.walk(&packet));
    let mut fix = Vec::new();
    let netfilter = o.send_refused > 0 || reason == Some(&KernelReason::NetfilterDrop);
    let what = if netfilter {
        let named = reason.map(|n| format!("{n}, output")).unwrap_or_default();
        let rule = if let Some(r) = &output {
            fix = owner_fix(r, &packet);
            rule_text(r)
        } else {
            fix.push(format!(
                "{iptables}-legacy -I OUTPUT -o {} -d {group_text} -p vrrp -j ACCEPT   # no nftables rule drops them: look in iptables-legacy",
                o.ifname
            ));
            String::new()
        };
        let detail = [named, rule]
            .into_iter()
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        if detail.is_empty() {
            "by netfilter".to_owned()
        } else {
            format!("by netfilter ({detail})")
        }
    } else {
        format!("by the kernel ({})", reasons_text(&o.kernel_drops))
    };
    let count = if o.send_refused > 0 {
        format!("the kernel refused {} sends", o.send_refused)
    } else {
        format!("the kernel dropped {kernel_dropped} after sending")
    };
    Finding {
        kind: FindingKind::DroppedOnOutput,
        rule: output.clone(),
        ifname: o.ifname.clone(),
        source: Some(o.src),
        vrid: o.vrid,
        message: format!(
            "{host} {}: our own adverts ({}, VRID {}) are dropped on output {what}: {count} in the last {window_s} s, so the other routers do not hear us.{}{}",
            o.ifname,
            o.name,
            o.vrid,
            output.as_ref().map_or("", owner_note),
            if netfilter { " Allow them:" } else { "" }
        ),
        fix,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(wire: u64, socket: u64, dropped: Vec<(DropReason, u64)>) -> SourceWindow {
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
            mismatched: Vec::new(),
            auth: "pass".into(),
            last_seen_s: 0.5,
            interval_mean_s: Some(1.0),
            interval_jitter_s: Some(0.001),
            wire_total: wire,
            socket_total: socket,
            silent: false,
            answers_ping: None,
            kernel_drops: Vec::new(),
            dst: Some("224.0.0.18".parse().expect("a")),
            gap_max_s: None,
            bursts: 0,
        }
    }

    fn nft(json: &str) -> Ruleset {
        Ruleset::from_json(&serde_json::from_str(json).expect("nft json"))
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
            kernel_drops: Vec::new(),
            late: 0,
            periodic: 10,
            late_max_ms: 0.0,
        }
    }

    #[test]
    fn firewall_drop_is_named_with_its_fix() {
        let rules = nft(
            r#"{"nftables":[{"chain":{"family":"inet","table":"lab","name":"input","hook":"input","prio":0,"policy":"accept"}},{"rule":{"family":"inet","table":"lab","chain":"input","handle":3,"expr":[{"match":{"op":"==","left":{"meta":{"key":"l4proto"}},"right":"vrrp"}},{"drop":null}]}}]}"#,
        );
        let f = findings(
            "lb02",
            10,
            &[src(10, 0, vec![])],
            &[ours(false)],
            &Kernel {
                ruleset: Some(rules),
                ..Kernel::default()
            },
        );
        assert_eq!(f.len(), 1);
        assert!(f[0].message.starts_with("lb02 eth0: adverts from 10.0.0.5 (VRID 50) reach the wire but netfilter drops them (rule 3 in inet lab input): 10 seen by XDP, 0 delivered"), "{}", f[0]);
        assert_eq!(
            f[0].fix[0],
            "nft insert rule inet lab input ip protocol vrrp accept"
        );
        assert_eq!(
            f[0].fix.len(),
            1,
            "one fix, for the firewall that owns the rule"
        );
        assert_eq!(f[0].rule.as_ref().map(|r| r.handle), Some(Some(3)));
    }

    fn fixture(name: &str) -> Ruleset {
        let path = format!(
            "{}/../tests/fixtures/firewall/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        nft(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
    }

    #[test]
    fn firewalld_and_ufw_drops_name_their_owner_and_its_fix() {
        let mut s = src(10, 0, vec![]);
        s.kernel_drops = vec![(KernelReason::NetfilterDrop, 10)];
        let k = Kernel {
            ruleset: Some(fixture("firewalld-internal-eth0.json")),
            ..Kernel::default()
        };
        let f = findings("lb02", 10, &[s.clone()], &[ours(false)], &k);
        assert!(
            f[0].message
                .contains("netfilter drops them (NETFILTER_DROP, input; rule "),
            "{}",
            f[0]
        );
        assert!(
            f[0].message.contains(
                " in inet firewalld filter_IN_internal, reject with icmpx admin-prohibited, firewalld zone internal)"
            ),
            "{}",
            f[0]
        );
        assert_eq!(
            f[0].fix,
            [
                "firewall-cmd --permanent --zone=internal --add-protocol=vrrp",
                "firewall-cmd --reload"
            ]
        );
        let k = Kernel {
            ruleset: Some(fixture("ufw.json")),
            ..Kernel::default()
        };
        let f = findings("lb02", 10, &[s], &[ours(false)], &k);
        assert_eq!(
            f[0].rule.as_ref().map(|r| &r.firewall),
            Some(&Firewall::Ufw)
        );
        assert_eq!(f[0].fix, ["ufw allow in on eth0 to 224.0.0.18 proto vrrp"]);
    }

    #[test]
    fn delivered_adverts_make_no_finding() {
        assert!(
            findings(
                "lb02",
                10,
                &[src(10, 10, vec![])],
                &[ours(false)],
                &Kernel::default()
            )
            .is_empty()
        );
    }

    #[test]
    fn mismatches_are_named() {
        let f = findings(
            "lb02",
            10,
            &[src(10, 10, vec![(DropReason::IntervalMismatch, 10)])],
            &[ours(false)],
            &Kernel::default(),
        );
        assert_eq!(f[0].kind, FindingKind::IntervalMismatch);
        let f = findings(
            "lb02",
            10,
            &[src(10, 10, vec![(DropReason::AuthMismatch, 10)])],
            &[ours(false)],
            &Kernel::default(),
        );
        assert_eq!(f[0].kind, FindingKind::AuthMismatch);
    }

    /// Two masters is a finding only when the other keeps advertising (not a moment's
    /// overlap), and its cause is stated only from what this host can see.
    #[test]
    fn two_masters_needs_a_persisting_master_and_evidence_for_its_cause() {
        let mut me = ours(true);
        me.priority = 150;
        let src = |wire, socket, dropped| SourceWindow {
            priority: 100,
            ..src(wire, socket, dropped)
        };
        let overlap = src(1, 1, Vec::new());
        assert!(findings("lb01", 5, &[overlap], &[me.clone()], &Kernel::default()).is_empty());
        let mut gone = src(4, 4, Vec::new());
        gone.last_seen_s = 4.0;
        assert!(
            findings("lb01", 5, &[gone], &[me.clone()], &Kernel::default()).is_empty(),
            "it stopped: it yielded"
        );
        let still = src(4, 4, Vec::new());
        let f = findings(
            "lb01",
            5,
            &[still.clone()],
            &[me.clone()],
            &Kernel::default(),
        );
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].kind, FindingKind::TwoMasters);
        assert!(
            f[0].message.contains("Ours leave this host"),
            "{}",
            f[0].message
        );
        me.send_refused = 3;
        let f = findings("lb01", 5, &[still], &[me], &Kernel::default());
        let two = f
            .iter()
            .find(|f| f.kind == FindingKind::TwoMasters)
            .expect("two masters");
        assert!(
            two.message.contains("do not leave this host"),
            "{}",
            two.message
        );
    }

    /// 2000 spoofed sources with the wrong password: five findings and one summary, not 2000
    /// (each would be logged); a ring that overflowed names the interface that left it.
    #[test]
    fn a_flood_of_sources_is_summarized_and_the_ring_named() {
        let many: Vec<SourceWindow> = (0..2000u32)
            .map(|i| {
                let mut s = src(3, 3, vec![(DropReason::AuthMismatch, 3)]);
                s.src = IpAddr::from((0xc612_0000 + i).to_be_bytes());
                s
            })
            .collect();
        let kernel = Kernel {
            ring: Ring {
                lost: 1500,
                fallback: vec!["eth0".into()],
            },
            ..Kernel::default()
        };
        let f = findings("lb02", 5, &many, &[ours(false)], &kernel);
        let auth: Vec<&Finding> = f
            .iter()
            .filter(|f| f.kind == FindingKind::AuthMismatch)
            .collect();
        assert_eq!(auth.len(), SOURCES_PER_KIND + 1, "{f:#?}");
        let summary = auth.iter().find(|f| f.source.is_none()).expect("a summary");
        assert!(
            summary.message.contains("1995 more sources"),
            "{}",
            summary.message
        );
        let ring: Vec<&Finding> = f
            .iter()
            .filter(|f| f.kind == FindingKind::RingFull)
            .collect();
        assert_eq!(ring.len(), 1);
        assert_eq!(ring[0].ifname, "eth0");
        assert!(ring[0].message.contains("1500 adverts were lost"));
    }

    #[test]
    fn our_refused_sends_and_a_silent_master_are_named() {
        let mut o = ours(true);
        o.send_refused = 7;
        let rules = nft(
            r#"{"nftables":[{"chain":{"family":"inet","table":"fw","name":"out","hook":"output","prio":0,"policy":"accept"}},{"rule":{"family":"inet","table":"fw","chain":"out","handle":4,"expr":[{"match":{"op":"==","left":{"meta":{"key":"l4proto"}},"right":"vrrp"}},{"drop":null}]}}]}"#,
        );
        let f = findings(
            "lb01",
            10,
            &[],
            &[o],
            &Kernel {
                ruleset: Some(rules),
                ..Kernel::default()
            },
        );
        assert_eq!(f[0].kind, FindingKind::DroppedOnOutput);
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
            findings(
                "lb02",
                10,
                &[quiet.clone()],
                &[ours(true)],
                &Kernel::default()
            )[0]
            .kind,
            FindingKind::LostOnNetwork
        );
        let mut lower = quiet.clone();
        lower.priority = 50;
        assert!(
            findings("lb02", 10, &[lower], &[ours(true)], &Kernel::default()).is_empty(),
            "a backup that yielded to us is quiet by design"
        );
        quiet.answers_ping = Some(false);
        assert!(
            findings("lb02", 10, &[quiet], &[ours(true)], &Kernel::default()).is_empty(),
            "a dead peer is a failover, not a finding"
        );
    }

    #[test]
    fn three_drops_the_kernel_reports_are_a_loss_among_many_delivered() {
        let mut s = src(12, 9, vec![]);
        assert!(
            findings("lb02", 1, &[s.clone()], &[ours(false)], &Kernel::default()).is_empty(),
            "three of twelve missing, and no word from the kernel: jitter at a window's edge"
        );
        s.kernel_drops = vec![(KernelReason::NetfilterDrop, 3)];
        let f = findings("lb02", 1, &[s], &[ours(false)], &Kernel::default());
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].kind, FindingKind::LostAfterXdp);
        assert!(
            f[0].message.contains("12 seen by XDP, 9 delivered"),
            "{}",
            f[0]
        );
    }

    #[test]
    fn kernel_reasons_name_the_cause() {
        let mut s = src(10, 0, vec![]);
        s.kernel_drops = vec![(KernelReason::NetfilterDrop, 10)];
        let rules = nft(
            r#"{"nftables":[{"chain":{"family":"inet","table":"filter","name":"input","hook":"input","prio":0,"policy":"accept"}},{"rule":{"family":"inet","table":"filter","chain":"input","handle":5,"expr":[{"match":{"op":"==","left":{"meta":{"key":"l4proto"}},"right":"vrrp"}},{"drop":null}]}}]}"#,
        );
        let k = Kernel {
            ruleset: Some(rules),
            ..Kernel::default()
        };
        let f = findings("lb02", 10, &[s.clone()], &[ours(false)], &k);
        assert!(
            f[0].message.contains(
                "but netfilter drops them (NETFILTER_DROP, input; rule 5 in inet filter input)"
            ),
            "{}",
            f[0]
        );
        assert!(
            f[0].message
                .contains("the kernel's drop reasons: NETFILTER_DROP 10")
        );
        assert!(f[0].message.ends_with("Allow them:"));

        s.kernel_drops = vec![(KernelReason::IpRpfilter, 10)];
        let f = findings("lb02", 10, &[s.clone()], &[ours(false)], &Kernel::default());
        assert!(
            f[0].message
                .contains("reverse-path filtering drops them (IP_RPFILTER)"),
            "{}",
            f[0]
        );
        assert_eq!(f[0].fix[0], "sysctl -w net.ipv4.conf.eth0.rp_filter=2");
        assert!(
            !f[0].fix.iter().any(|l| l.contains("nft")),
            "no firewall fix for rp_filter"
        );

        let mut o = ours(true);
        o.kernel_drops = vec![(KernelReason::Named("QDISC_DROP".into()), 4)];
        let f = findings("lb01", 10, &[], &[o], &Kernel::default());
        assert_eq!(f[0].kind, FindingKind::DroppedOnOutput);
        assert!(
            f[0].message
                .contains("dropped on output by the kernel (QDISC_DROP 4)"),
            "{}",
            f[0]
        );
    }

    #[test]
    fn a_missing_multicast_membership_is_named() {
        let k = Kernel {
            groups: Some(vec![("eth1".into(), "224.0.0.18".parse().expect("a"))]),
            ..Kernel::default()
        };
        let f = findings("lb02", 10, &[src(10, 0, vec![])], &[ours(false)], &k);
        assert!(
            f[0].message
                .contains("not a member of 224.0.0.18 on eth0 (no multicast membership)"),
            "{}",
            f[0]
        );
        let joined = Kernel {
            groups: Some(vec![("eth0".into(), "224.0.0.18".parse().expect("a"))]),
            ..Kernel::default()
        };
        let f = findings("lb02", 10, &[src(10, 0, vec![])], &[ours(false)], &joined);
        assert!(
            f[0].message.contains("something in the kernel after XDP"),
            "{}",
            f[0]
        );
    }

    #[test]
    fn late_adverts_name_the_throttling_cgroup() {
        let mut o = ours(true);
        o.late = 5;
        o.late_max_ms = 900.0;
        let k = Kernel {
            cpu: Cpu {
                throttled_periods: 7,
                throttled_ms: 630.0,
                not_realtime: Some("SCHED_FIFO refused".into()),
                cgroup_dir: Some("/sys/fs/cgroup/cpu/lb".into()),
                cgroup_v1: true,
                ..Cpu::default()
            },
            ..Kernel::default()
        };
        let f = findings("lb01", 8, &[], &[o.clone()], &k);
        assert_eq!(f[0].kind, FindingKind::AdvertsLate);
        assert!(f[0].message.contains("its cgroup ran out of CPU quota 7 times and was throttled for 630 ms, and the advert thread runs without real-time priority"), "{}", f[0]);
        assert!(f[0].fix[0].starts_with("echo 20000 > /sys/fs/cgroup/cpu/lb/cpu.rt_runtime_us"));
        let f = findings("lb01", 8, &[], &[o.clone()], &Kernel::default());
        assert!(f[0].message.contains("the process was stopped"), "{}", f[0]);
        o.master = false;
        assert!(findings("lb01", 8, &[], &[o], &Kernel::default()).is_empty());
    }

    #[test]
    fn a_bursty_peer_is_called_starved() {
        let mut s = src(8, 8, vec![]);
        s.gap_max_s = Some(2.4);
        s.bursts = 2;
        let f = findings("lb02", 8, &[s.clone()], &[ours(false)], &Kernel::default());
        assert_eq!(f[0].kind, FindingKind::PeerLate);
        assert!(
            f[0].message.contains(
                "a gap of 2400 ms at advert_int 1000 ms, then 2 less than a quarter interval apart"
            ),
            "{}",
            f[0]
        );
        s.bursts = 0;
        assert!(findings("lb02", 8, &[s], &[ours(false)], &Kernel::default()).is_empty());
    }

    #[test]
    fn reads_proc_net_igmp() {
        let igmp = "Idx\tDevice    : Count Querier\tGroup    Users Timer\tReporter\n1\tlo        :     1      V3\n\t\t\t\t010000E0     1 0:00000000\t\t0\n2\teth0      :     2      V3\n\t\t\t\t120000E0     1 0:00000000\t\t0\n\t\t\t\t010000E0     1 0:00000000\t\t0\n";
        let igmp6 = "2    eth0            ff020000000000000000000000000012     1 00000004 0\n";
        let g = multicast_groups(igmp, igmp6);
        if cfg!(target_endian = "little") {
            assert!(
                g.contains(&("eth0".into(), "224.0.0.18".parse().expect("a"))),
                "{g:?}"
            );
            assert!(g.contains(&("lo".into(), "224.0.0.1".parse().expect("a"))));
        }
        assert!(g.contains(&("eth0".into(), "ff02::12".parse().expect("a"))));
        assert!(multicast_groups("garbage\n\tzz\n", "1 2 3").is_empty());
    }
}
