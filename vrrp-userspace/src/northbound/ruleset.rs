//! Which netfilter rule decides an advert's fate: a walk of `nft -j list ruleset` for one VRRP
//! packet, as the kernel would take it, base chain by base chain in hook and priority order,
//! through jumps, gotos, returns, verdict maps and policies.
//!
//! The walk is needed because the rule that drops VRRP seldom names it. firewalld's zones end
//! in a catch-all `reject with icmpx admin-prohibited`, ufw's INPUT chain has policy drop, and
//! a hand-written ruleset often ends in `drop`. A search for "vrrp" in the ruleset finds none of
//! them; following the packet finds each.
//!
//! What the packet is known to be: protocol 112, its addresses and interface, TTL 255 and conntrack
//! state `new` when multicast (nothing ever answers a multicast tuple). What a match needs and
//! the packet does not tell (an iptables-nft `xt` match, a rate limit, a mark) is unknown: the
//! walk follows both branches and keeps the drop reached with the fewest guesses, and says
//! whether it guessed at all. Rules that match another protocol (`tcp dport 22`) are false, as
//! the kernel's implicit protocol dependency makes them.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The firewall that owns a table: its fix is spelled in its own tool, since a rule added
/// beside it with another tool does not survive its reload, or is never reached.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Firewall {
    /// Table `inet firewalld`; the zone whose chains the packet went through.
    Firewalld { zone: Option<String> },
    /// iptables(-nft) tables with ufw's chains.
    Ufw,
    /// A table written by iptables-nft (`ip filter INPUT` and the like).
    Iptables,
    /// A table written with nft.
    Nftables,
}

/// The rule (or chain policy) that drops an advert, from the walk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropRule {
    pub family: String,
    pub table: String,
    pub chain: String,
    /// The hook of the base chain the packet entered: "input", "prerouting", "output", ...
    pub hook: String,
    /// None: the base chain's policy.
    pub handle: Option<u64>,
    /// As nft prints it: "drop", "reject with icmpx admin-prohibited", "policy drop".
    #[serde(default)]
    pub verdict: String,
    /// The chains the packet went through, the base chain first.
    #[serde(default)]
    pub path: Vec<String>,
    #[serde(default = "nftables")]
    pub firewall: Firewall,
    /// false: a match on the way could not be decided for this packet, and the walk guessed.
    #[serde(default)]
    pub certain: bool,
}

const fn nftables() -> Firewall {
    Firewall::Nftables
}

impl DropRule {
    /// The base chain the packet entered, where a rule inserted first is reached first.
    pub fn base_chain(&self) -> &str {
        self.path.first().map_or(&self.chain, String::as_str)
    }
}

impl std::fmt::Display for DropRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (family, table, chain) = (&self.family, &self.table, &self.chain);
        match self.handle {
            None => write!(f, "the policy of chain {family} {table} {chain}")?,
            Some(h) => write!(f, "rule {h} in {family} {table} {chain}")?,
        }
        if !self.verdict.is_empty() && self.handle.is_some() {
            write!(f, " ({})", self.verdict)?;
        }
        if let Firewall::Firewalld { zone: Some(z) } = &self.firewall {
            write!(f, ", firewalld zone {z}")?;
        }
        Ok(())
    }
}

/// Where the packet meets netfilter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// An advert received on `ifname`: netdev ingress, prerouting, input.
    In,
    /// One of ours leaving through `ifname`: output, postrouting.
    Out,
}

/// The advert, as netfilter sees it.
#[derive(Clone, Debug)]
pub struct Packet {
    pub direction: Direction,
    pub ifname: String,
    pub src: IpAddr,
    pub dst: IpAddr,
}

/// `nft -j list ruleset`, reduced to what the walk reads.
#[derive(Clone, Debug, Default)]
pub struct Ruleset {
    chains: Vec<Chain>,
    sets: Vec<NamedSet>,
}

#[derive(Clone, Debug)]
struct Chain {
    family: String,
    table: String,
    name: String,
    base: Option<Base>,
    rules: Vec<Rule>,
}

#[derive(Clone, Debug)]
struct Base {
    hook: String,
    prio: i64,
    policy_drop: bool,
    devices: Vec<String>,
}

#[derive(Clone, Debug)]
struct Rule {
    handle: Option<u64>,
    exprs: Vec<Value>,
}

#[derive(Clone, Debug)]
struct NamedSet {
    family: String,
    table: String,
    name: String,
    elems: Vec<Value>,
}

/// Three-valued: the walk does not know everything about the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tri {
    True,
    False,
    Unknown,
}

impl Tri {
    const fn from(b: bool) -> Self {
        if b { Self::True } else { Self::False }
    }
    const fn not(self) -> Self {
        match self {
            Self::True => Self::False,
            Self::False => Self::True,
            Self::Unknown => Self::Unknown,
        }
    }
    fn or(self, other: Self) -> Self {
        match (self, other) {
            (Self::True, _) | (_, Self::True) => Self::True,
            (Self::Unknown, _) | (_, Self::Unknown) => Self::Unknown,
            _ => Self::False,
        }
    }
}

/// What the packet says about one expression's left side.
#[derive(Clone, Debug)]
enum Known {
    Name(String),
    Proto(u8),
    Addr(IpAddr),
    Num(u64),
    /// Bit flags (conntrack state, status); matches any of them.
    Flags(Vec<&'static str>),
    Bool(bool),
    /// The expression needs another protocol (`tcp dport` on VRRP): the rule cannot match,
    /// whatever the operator.
    Absent,
    Unknown,
}

enum Verdict {
    Accept,
    Drop(String),
    Jump(String),
    Goto(String),
    Return,
    /// Not a verdict (`continue`, a statement), or one that leaves netfilter's decision
    /// elsewhere (`queue`): treated as no decision here.
    Continue,
}

/// Hard limits on the walk: a ruleset with many undecidable matches forks at each.
const MAX_STEPS: usize = 20_000;
const MAX_PATHS: usize = 512;
/// The kernel's jump stack (NFT_JUMP_STACK_SIZE).
const MAX_DEPTH: usize = 16;

impl Ruleset {
    pub fn from_json(v: &Value) -> Self {
        let mut r = Self::default();
        let Some(items) = v.get("nftables").and_then(Value::as_array) else {
            return r;
        };
        let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        for item in items {
            if let Some(c) = item.get("chain") {
                let base = c.get("hook").and_then(Value::as_str).map(|hook| Base {
                    hook: hook.to_owned(),
                    prio: c.get("prio").and_then(Value::as_i64).unwrap_or(0),
                    policy_drop: c.get("policy").and_then(Value::as_str) == Some("drop"),
                    devices: match c.get("dev") {
                        Some(Value::String(d)) => vec![d.clone()],
                        Some(Value::Array(ds)) => ds
                            .iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect(),
                        _ => Vec::new(),
                    },
                });
                r.chains.push(Chain {
                    family: text(c, "family"),
                    table: text(c, "table"),
                    name: text(c, "name"),
                    base,
                    rules: Vec::new(),
                });
            } else if let Some(rule) = item.get("rule") {
                let (family, table, chain) = (
                    text(rule, "family"),
                    text(rule, "table"),
                    text(rule, "chain"),
                );
                if let Some(c) = r
                    .chains
                    .iter_mut()
                    .find(|c| c.family == family && c.table == table && c.name == chain)
                {
                    c.rules.push(Rule {
                        handle: rule.get("handle").and_then(Value::as_u64),
                        exprs: rule
                            .get("expr")
                            .and_then(Value::as_array)
                            .cloned()
                            .unwrap_or_default(),
                    });
                }
            } else if let Some(s) = item.get("set").or_else(|| item.get("map")) {
                r.sets.push(NamedSet {
                    family: text(s, "family"),
                    table: text(s, "table"),
                    name: text(s, "name"),
                    elems: s
                        .get("elem")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                });
            }
        }
        r
    }

    pub fn is_empty(&self) -> bool {
        self.chains.is_empty()
    }

    /// The rule or policy that drops `p`, if the ruleset drops it on some path; None when every
    /// path accepts it.
    pub fn walk(&self, p: &Packet) -> Option<DropRule> {
        let bases = self.bases(p);
        let mut work = vec![Path {
            base: 0,
            stack: Vec::new(),
            guesses: 0,
            seen: Vec::new(),
            entered: false,
            own_guess: false,
        }];
        let mut steps = 0usize;
        let mut paths = 0usize;
        // The drop to name: one whose own match is decided (a catch-all, a policy, a rule
        // on protocol or address) before one that drops on an undecidable match (ufw's
        // `-m conntrack --ctstate INVALID -j DROP`), then the one with the fewest guesses.
        let mut best: Option<((bool, u32), DropRule)> = None;
        let mut outcomes = 0usize;
        while let Some(mut path) = work.pop() {
            paths += 1;
            outcomes += 1;
            if let Some(rule) = self.run(p, &bases, &mut path, &mut work, &mut steps, paths) {
                let rank = (path.own_guess, path.guesses);
                if best.as_ref().is_none_or(|(r, _)| rank < *r) {
                    best = Some((rank, rule));
                }
            }
        }
        best.map(|((_, guesses), mut rule)| {
            rule.certain = guesses == 0 && outcomes == 1;
            rule
        })
    }

    /// Base chains the packet traverses, in the kernel's order.
    fn bases(&self, p: &Packet) -> Vec<usize> {
        let hooks: &[&str] = match p.direction {
            Direction::In => &["ingress", "prerouting", "input"],
            Direction::Out => &["output", "postrouting", "egress"],
        };
        let mut out: Vec<(usize, i64, usize)> = self
            .chains
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let b = c.base.as_ref()?;
                let order = hooks.iter().position(|h| *h == b.hook)?;
                let family_ok = match c.family.as_str() {
                    "inet" => true,
                    "ip" => p.src.is_ipv4(),
                    "ip6" => p.src.is_ipv6(),
                    "netdev" => true,
                    _ => false,
                };
                // Ingress and egress chains (netdev, or inet's ingress) are bound to devices.
                let device_ok = !matches!(b.hook.as_str(), "ingress" | "egress")
                    || b.devices.contains(&p.ifname);
                let family_ok = family_ok && device_ok;
                family_ok.then_some((order, b.prio, i))
            })
            .collect();
        out.sort_by_key(|&(order, prio, i)| (order, prio, i));
        out.into_iter().map(|(_, _, i)| i).collect()
    }

    /// Runs one path to its end: Some(rule) if it is dropped, None if accepted. Undecidable
    /// matches push the other branch onto `work`.
    fn run(
        &self,
        p: &Packet,
        bases: &[usize],
        path: &mut Path,
        work: &mut Vec<Path>,
        steps: &mut usize,
        paths: usize,
    ) -> Option<DropRule> {
        loop {
            let &base = bases.get(path.base)?;
            if !path.entered {
                path.stack = vec![Frame {
                    chain: base,
                    next: 0,
                }];
                path.seen = vec![base];
                path.entered = true;
            }
            let Some(frame) = path.stack.last_mut() else {
                // The base chain (or the chain it went to) ran out: its policy decides.
                if let Some(rule) = self.policy(p, bases, path) {
                    return Some(rule);
                }
                continue;
            };
            let chain = &self.chains[frame.chain];
            let Some(rule) = chain.rules.get(frame.next) else {
                path.stack.pop();
                continue;
            };
            let at = frame.chain;
            frame.next += 1;
            *steps += 1;
            if *steps > MAX_STEPS {
                // A ruleset that fans out past the budget: this path is given up, and what
                // was found so far stands.
                return None;
            }
            let (matched, verdict) = self.eval(p, chain, rule);
            // A rule that decides nothing (a counter, a rate-limited log) need not be
            // guessed at.
            if matches!(verdict, Verdict::Continue) {
                continue;
            }
            match matched {
                Tri::False => continue,
                Tri::Unknown => {
                    path.guesses += 1;
                    if paths + work.len() < MAX_PATHS {
                        // The other branch: the rule does not match, the chain goes on.
                        work.push(path.clone());
                    }
                }
                Tri::True => {}
            }
            match verdict {
                Verdict::Continue => {}
                Verdict::Accept => {
                    path.stack.clear();
                    path.base += 1;
                    path.entered = false;
                }
                Verdict::Drop(verdict) => {
                    let c = &self.chains[at];
                    path.own_guess = matched == Tri::Unknown;
                    return Some(self.drop_rule(p, bases, path, c, rule.handle, verdict));
                }
                Verdict::Return => {
                    path.stack.pop();
                }
                Verdict::Jump(target) => {
                    if let Some(t) = self.find_chain(chain, &target)
                        && path.stack.len() < MAX_DEPTH
                    {
                        path.stack.push(Frame { chain: t, next: 0 });
                        path.seen.push(t);
                    }
                }
                Verdict::Goto(target) => {
                    let Some(t) = self.find_chain(chain, &target) else {
                        continue;
                    };
                    // A goto replaces the frame: the target's end returns to our caller.
                    path.stack.pop();
                    path.stack.push(Frame { chain: t, next: 0 });
                    path.seen.push(t);
                }
            }
        }
    }

    /// The base chain `path.base` is done without a verdict: its policy, then the next one.
    fn policy(&self, p: &Packet, bases: &[usize], path: &mut Path) -> Option<DropRule> {
        let base = *bases.get(path.base)?;
        let c = &self.chains[base];
        if c.base.as_ref().is_some_and(|b| b.policy_drop) {
            return Some(self.drop_rule(p, bases, path, c, None, "policy drop".to_owned()));
        }
        path.base += 1;
        path.entered = false;
        path.stack.clear();
        None
    }

    fn find_chain(&self, from: &Chain, name: &str) -> Option<usize> {
        self.chains
            .iter()
            .position(|c| c.family == from.family && c.table == from.table && c.name == name)
    }

    fn drop_rule(
        &self,
        p: &Packet,
        bases: &[usize],
        path: &Path,
        c: &Chain,
        handle: Option<u64>,
        verdict: String,
    ) -> DropRule {
        let names: Vec<String> = path
            .seen
            .iter()
            .map(|&i| self.chains[i].name.clone())
            .collect();
        let hook = bases
            .get(path.base)
            .and_then(|&b| self.chains[b].base.as_ref())
            .map(|b| b.hook.clone())
            .unwrap_or_default();
        let xt = path.seen.iter().any(|&i| {
            self.chains[i]
                .rules
                .iter()
                .any(|r| r.exprs.iter().any(|e| e.get("xt").is_some()))
        });
        DropRule {
            family: c.family.clone(),
            table: c.table.clone(),
            chain: c.name.clone(),
            hook,
            handle,
            verdict,
            firewall: owner(c, &names, xt, p.direction),
            path: names,
            certain: false,
        }
    }

    /// Whether a rule matches the packet, and its verdict.
    fn eval(&self, p: &Packet, chain: &Chain, rule: &Rule) -> (Tri, Verdict) {
        let mut matched = Tri::True;
        let mut verdict = Verdict::Continue;
        for e in &rule.exprs {
            let Some((key, body)) = e.as_object().and_then(|o| o.iter().next()) else {
                continue;
            };
            match key.as_str() {
                "match" => {
                    let t = self.matches(p, chain, body);
                    if t == Tri::False {
                        return (Tri::False, Verdict::Continue);
                    }
                    if t == Tri::Unknown {
                        matched = Tri::Unknown;
                    }
                }
                // Rate and quota limits, iptables-nft's opaque matches, and connection counts
                // depend on more than this packet.
                "limit" | "quota" | "ct count" | "connlimit" => matched = Tri::Unknown,
                "xt" => {
                    let kind = body.get("type").and_then(Value::as_str).unwrap_or("");
                    let name = body.get("name").and_then(Value::as_str).unwrap_or("");
                    if kind == "target" && name == "REJECT" {
                        verdict = Verdict::Drop("reject".to_owned());
                    } else if kind == "match" {
                        matched = Tri::Unknown;
                    }
                }
                "accept" => verdict = Verdict::Accept,
                "drop" => verdict = Verdict::Drop("drop".to_owned()),
                "reject" => verdict = Verdict::Drop(reject_text(body)),
                "return" => verdict = Verdict::Return,
                "jump" | "goto" => {
                    let target = body
                        .get("target")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned();
                    verdict = if key == "jump" {
                        Verdict::Jump(target)
                    } else {
                        Verdict::Goto(target)
                    };
                }
                "vmap" => {
                    let (t, v) = self.vmap(p, chain, body);
                    match t {
                        Tri::False => return (matched, Verdict::Continue),
                        Tri::Unknown => matched = Tri::Unknown,
                        Tri::True => {}
                    }
                    verdict = v;
                }
                _ => {}
            }
        }
        (matched, verdict)
    }

    fn matches(&self, p: &Packet, chain: &Chain, m: &Value) -> Tri {
        let op = m.get("op").and_then(Value::as_str).unwrap_or("==");
        let left = known(p, m.get("left").unwrap_or(&Value::Null));
        let right = m.get("right").unwrap_or(&Value::Null);
        if matches!(left, Known::Absent) {
            return Tri::False;
        }
        let t = self.compare(&left, right, chain);
        match op {
            "==" | "in" => t,
            "!=" => t.not(),
            _ => Tri::Unknown,
        }
    }

    /// Does the known value equal (or fall in) the right side?
    fn compare(&self, left: &Known, right: &Value, chain: &Chain) -> Tri {
        if matches!(left, Known::Unknown | Known::Absent) {
            return Tri::Unknown;
        }
        match right {
            Value::Array(items) => items
                .iter()
                .fold(Tri::False, |acc, i| acc.or(self.compare(left, i, chain))),
            Value::Object(o) => {
                if let Some(Value::Array(items)) = o.get("set") {
                    return items
                        .iter()
                        .fold(Tri::False, |acc, i| acc.or(self.compare(left, i, chain)));
                }
                if let Some(pre) = o.get("prefix") {
                    let addr = pre
                        .get("addr")
                        .and_then(Value::as_str)
                        .and_then(|a| a.parse().ok());
                    let len = pre.get("len").and_then(Value::as_u64);
                    return match (left, addr, len) {
                        (Known::Addr(a), Some(net), Some(len)) => {
                            Tri::from(in_prefix(*a, net, len))
                        }
                        _ => Tri::Unknown,
                    };
                }
                if let Some(Value::Array(r)) = o.get("range")
                    && let [lo, hi] = r.as_slice()
                {
                    return match left {
                        Known::Addr(a) => {
                            let parse =
                                |v: &Value| v.as_str().and_then(|s| s.parse::<IpAddr>().ok());
                            match (parse(lo), parse(hi)) {
                                (Some(lo), Some(hi)) => Tri::from(lo <= *a && *a <= hi),
                                _ => Tri::Unknown,
                            }
                        }
                        Known::Num(n) => match (lo.as_u64(), hi.as_u64()) {
                            (Some(lo), Some(hi)) => Tri::from(lo <= *n && *n <= hi),
                            _ => Tri::Unknown,
                        },
                        Known::Proto(n) => match (lo.as_u64(), hi.as_u64()) {
                            (Some(lo), Some(hi)) => {
                                Tri::from(lo <= u64::from(*n) && u64::from(*n) <= hi)
                            }
                            _ => Tri::Unknown,
                        },
                        _ => Tri::Unknown,
                    };
                }
                // A set element with options: {"elem": {"val": .., "timeout": ..}}.
                if let Some(val) = o.get("elem").and_then(|e| e.get("val")) {
                    return self.compare(left, val, chain);
                }
                Tri::Unknown
            }
            Value::String(s) if s.starts_with('@') => {
                let name = &s[1..];
                self.sets
                    .iter()
                    .find(|n| n.family == chain.family && n.table == chain.table && n.name == name)
                    .map_or(Tri::Unknown, |set| {
                        set.elems
                            .iter()
                            .fold(Tri::False, |acc, i| acc.or(self.compare(left, i, chain)))
                    })
            }
            Value::String(s) => match left {
                Known::Name(n) => {
                    Tri::from(s.strip_suffix('*').map_or(n == s, |pre| n.starts_with(pre)))
                }
                Known::Proto(p) => proto_number(s).map_or(Tri::Unknown, |x| Tri::from(x == *p)),
                Known::Addr(a) => s
                    .parse::<IpAddr>()
                    .map_or(Tri::Unknown, |x| Tri::from(x == *a)),
                Known::Num(n) => s
                    .parse::<u64>()
                    .map_or(Tri::Unknown, |x| Tri::from(x == *n)),
                Known::Flags(f) => Tri::from(f.contains(&s.as_str())),
                Known::Bool(_) | Known::Unknown | Known::Absent => Tri::Unknown,
            },
            Value::Number(x) => match (left, x.as_u64()) {
                (Known::Proto(p), Some(x)) => Tri::from(x == u64::from(*p)),
                (Known::Num(n), Some(x)) => Tri::from(x == *n),
                _ => Tri::Unknown,
            },
            Value::Bool(b) => match left {
                Known::Bool(k) => Tri::from(k == b),
                _ => Tri::Unknown,
            },
            Value::Null => Tri::Unknown,
        }
    }

    /// `KEY vmap { value : verdict, ... }`: the verdict of the element that matches.
    fn vmap(&self, p: &Packet, chain: &Chain, body: &Value) -> (Tri, Verdict) {
        let left = known(p, body.get("key").unwrap_or(&Value::Null));
        if matches!(left, Known::Absent) {
            return (Tri::False, Verdict::Continue);
        }
        let pairs: Vec<Value> = match body.get("data") {
            Some(Value::Object(o)) => o
                .get("set")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            Some(Value::String(s)) if s.starts_with('@') => self
                .sets
                .iter()
                .find(|n| n.family == chain.family && n.table == chain.table && n.name == s[1..])
                .map(|n| n.elems.clone())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        let mut unknown = false;
        for pair in &pairs {
            let Some([key, verdict]) = pair.as_array().map(Vec::as_slice) else {
                continue;
            };
            match self.compare(&left, key, chain) {
                Tri::True => {
                    let rule = Rule {
                        handle: None,
                        exprs: vec![verdict.clone()],
                    };
                    let (_, v) = self.eval(p, chain, &rule);
                    return (if unknown { Tri::Unknown } else { Tri::True }, v);
                }
                Tri::Unknown => unknown = true,
                Tri::False => {}
            }
        }
        (
            if unknown { Tri::Unknown } else { Tri::False },
            Verdict::Continue,
        )
    }
}

#[derive(Clone, Debug)]
struct Path {
    /// Index into the base chains in order.
    base: usize,
    stack: Vec<Frame>,
    /// Undecidable matches taken one way or the other on this path.
    guesses: u32,
    /// Every chain entered, in order.
    seen: Vec<usize>,
    /// Whether the base chain `base` has been entered.
    entered: bool,
    /// The path ends at a drop whose own match was undecidable.
    own_guess: bool,
}

#[derive(Clone, Copy, Debug)]
struct Frame {
    chain: usize,
    next: usize,
}

fn reject_text(body: &Value) -> String {
    let kind = body.get("type").and_then(Value::as_str);
    let code = body.get("expr").and_then(Value::as_str);
    match (kind, code) {
        (Some(k), Some(c)) => format!("reject with {k} {c}"),
        (Some("tcp reset"), None) => "reject with tcp reset".to_owned(),
        _ => "reject".to_owned(),
    }
}

/// What the packet says about an expression.
fn known(p: &Packet, e: &Value) -> Known {
    let multicast = p.dst.is_multicast();
    let v4 = p.src.is_ipv4();
    if let Some(pl) = e.get("payload") {
        let proto = pl.get("protocol").and_then(Value::as_str).unwrap_or("");
        let field = pl.get("field").and_then(Value::as_str).unwrap_or("");
        return match proto {
            "ip" | "ip6" if (proto == "ip") != v4 => Known::Absent,
            "ip" | "ip6" => match field {
                "saddr" => Known::Addr(p.src),
                "daddr" => Known::Addr(p.dst),
                "protocol" | "nexthdr" => Known::Proto(VRRP),
                "version" => Known::Num(if v4 { 4 } else { 6 }),
                // RFC 5798 5.1.1.3 / 5.1.2.3: multicast adverts go out with TTL 255; unicast
                // ones may have crossed routers.
                "ttl" | "hoplimit" if multicast => Known::Num(255),
                _ => Known::Unknown,
            },
            "tcp" | "udp" | "udplite" | "sctp" | "dccp" | "icmp" | "icmpv6" | "esp" | "ah"
            | "comp" | "gre" | "igmp" => Known::Absent,
            _ => Known::Unknown,
        };
    }
    if let Some(m) = e.get("meta") {
        let key = m.get("key").and_then(Value::as_str).unwrap_or("");
        let (in_if, out_if) = match p.direction {
            Direction::In => (p.ifname.clone(), String::new()),
            Direction::Out => (String::new(), p.ifname.clone()),
        };
        return match key {
            "iifname" | "iif" => Known::Name(in_if),
            "oifname" | "oif" => Known::Name(out_if),
            "l4proto" => Known::Proto(VRRP),
            "nfproto" => Known::Name(if v4 { "ipv4" } else { "ipv6" }.to_owned()),
            "protocol" => Known::Name(if v4 { "ip" } else { "ip6" }.to_owned()),
            "pkttype" if p.direction == Direction::In => {
                Known::Name(if multicast { "multicast" } else { "host" }.to_owned())
            }
            _ => Known::Unknown,
        };
    }
    if let Some(ct) = e.get("ct") {
        let key = ct.get("key").and_then(Value::as_str).unwrap_or("");
        // Nothing answers a multicast tuple, so conntrack never sees it established; a unicast
        // pair's adverts answer each other's.
        return match key {
            "state" if multicast => Known::Flags(vec!["new"]),
            "status" if multicast => Known::Flags(Vec::new()),
            "direction" if multicast => Known::Name("original".to_owned()),
            _ => Known::Unknown,
        };
    }
    if let Some(fib) = e.get("fib") {
        let result = fib.get("result").and_then(Value::as_str).unwrap_or("");
        let flags: Vec<&str> = fib
            .get("flags")
            .and_then(Value::as_array)
            .map(|f| f.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if result == "type" && flags.contains(&"daddr") && flags.len() == 1 {
            return Known::Name(if multicast { "multicast" } else { "local" }.to_owned());
        }
        // Reverse-path checks (`fib saddr . iif oif missing`): a link-local source is always
        // reachable through the interface it came in on.
        if result == "oif"
            && flags.contains(&"saddr")
            && flags.contains(&"iif")
            && matches!(p.src, IpAddr::V6(a) if a.is_unicast_link_local())
        {
            return Known::Bool(true);
        }
        return Known::Unknown;
    }
    Known::Unknown
}

const VRRP: u8 = 112;

/// Protocol names as nft prints them (/etc/protocols).
fn proto_number(name: &str) -> Option<u8> {
    Some(match name {
        "vrrp" | "112" => VRRP,
        "icmp" => 1,
        "igmp" => 2,
        "tcp" => 6,
        "udp" => 17,
        "ipv6" => 41,
        "gre" => 47,
        "esp" => 50,
        "ah" => 51,
        "icmpv6" | "ipv6-icmp" => 58,
        "ospf" => 89,
        "pim" => 103,
        "sctp" => 132,
        "udplite" => 136,
        _ => return name.parse().ok(),
    })
}

fn in_prefix(a: IpAddr, net: IpAddr, len: u64) -> bool {
    match (a, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) if len <= 32 => {
            let mask = u32::MAX
                .checked_shl(32 - u32::try_from(len).unwrap_or(32))
                .unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if len <= 128 => {
            let mask = u128::MAX
                .checked_shl(128 - u32::try_from(len).unwrap_or(128))
                .unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Who wrote the table: firewalld's, ufw's chains, iptables-nft's, or nft's.
fn owner(c: &Chain, path: &[String], xt: bool, direction: Direction) -> Firewall {
    if c.table == "firewalld" {
        let prefix = match direction {
            Direction::In => "filter_IN_",
            Direction::Out => "filter_OUT_",
        };
        let zone = path.iter().rev().find_map(|name| {
            let rest = name.strip_prefix(prefix)?;
            if rest.starts_with("policy_") {
                return None;
            }
            let zone = ["_pre", "_log", "_deny", "_allow", "_post"]
                .iter()
                .find_map(|s| rest.strip_suffix(s))
                .unwrap_or(rest);
            (!zone.is_empty()).then(|| zone.to_owned())
        });
        return Firewall::Firewalld { zone };
    }
    if path
        .iter()
        .any(|n| n.starts_with("ufw-") || n.starts_with("ufw6-"))
    {
        return Firewall::Ufw;
    }
    let iptables_table = matches!(
        c.table.as_str(),
        "filter" | "raw" | "mangle" | "nat" | "security"
    ) && matches!(c.family.as_str(), "ip" | "ip6");
    let iptables_chain = path
        .first()
        .is_some_and(|n| n.chars().all(|ch| ch.is_ascii_uppercase()));
    if xt || (iptables_table && iptables_chain) {
        return Firewall::Iptables;
    }
    Firewall::Nftables
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Ruleset {
        let path = format!(
            "{}/../tests/fixtures/firewall/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        Ruleset::from_json(&serde_json::from_str(&text).expect("nft json"))
    }

    fn advert(ifname: &str, src: &str, dst: &str) -> Packet {
        Packet {
            direction: Direction::In,
            ifname: ifname.to_owned(),
            src: src.parse().expect("src"),
            dst: dst.parse().expect("dst"),
        }
    }

    #[test]
    fn firewalld_default_zone_rejects_vrrp_at_its_catch_all() {
        // As firewalld 1.3 writes it (fixture: `nft -j list ruleset` of a running firewalld).
        let r = fixture("firewalld-public.json");
        let d = r
            .walk(&advert("eth0", "10.0.0.5", "224.0.0.18"))
            .expect("a drop");
        assert_eq!(
            (d.family.as_str(), d.table.as_str(), d.chain.as_str()),
            ("inet", "firewalld", "filter_IN_public")
        );
        assert_eq!(d.verdict, "reject with icmpx admin-prohibited");
        assert_eq!(
            d.firewall,
            Firewall::Firewalld {
                zone: Some("public".into())
            }
        );
        assert!(d.certain, "{d:?}");
        assert_eq!(d.base_chain(), "filter_INPUT");
        // IPv6 adverts from a link-local source: the same zone, past the rpfilter rule.
        let d6 = r
            .walk(&advert("eth0", "fe80::1", "ff02::12"))
            .expect("a drop");
        assert_eq!(d6.chain, "filter_IN_public");
    }

    #[test]
    fn firewalld_names_the_zone_of_the_interface_and_its_fix_accepts() {
        let r = fixture("firewalld-internal-eth0.json");
        let d = r
            .walk(&advert("eth0", "10.0.0.5", "224.0.0.18"))
            .expect("a drop");
        assert_eq!(
            d.firewall,
            Firewall::Firewalld {
                zone: Some("internal".into())
            }
        );
        let other = r
            .walk(&advert("eth1", "10.0.0.5", "224.0.0.18"))
            .expect("a drop");
        assert_eq!(
            other.firewall,
            Firewall::Firewalld {
                zone: Some("public".into())
            }
        );
        // After `firewall-cmd --zone=internal --add-protocol=vrrp`.
        let fixed = fixture("firewalld-internal-eth0-vrrp.json");
        assert_eq!(fixed.walk(&advert("eth0", "10.0.0.5", "224.0.0.18")), None);
        assert!(
            fixed
                .walk(&advert("eth1", "10.0.0.5", "224.0.0.18"))
                .is_some()
        );
    }

    #[test]
    fn ufw_drops_vrrp_by_its_input_policy() {
        let r = fixture("ufw.json");
        let d = r
            .walk(&advert("eth0", "10.0.0.5", "224.0.0.18"))
            .expect("a drop");
        assert_eq!(d.firewall, Firewall::Ufw);
        assert_eq!((d.family.as_str(), d.table.as_str()), ("ip", "filter"));
        // ufw's conntrack and addrtype matches are opaque in nft's JSON: the walk guesses, and
        // says so. Its default deny is the INPUT policy, reached through the jump that ufw
        // calls "skip to policy" for broadcasts; either is ufw's.
        assert!(!d.certain);
        assert!(
            d.chain == "ufw-skip-to-policy-input" || (d.chain == "INPUT" && d.handle.is_none()),
            "{d:?}"
        );
        assert!(!d.path.contains(&"ufw-not-local".to_owned()) || d.chain != "ufw-not-local");
    }

    fn ruleset(rules: &str) -> Ruleset {
        Ruleset::from_json(&serde_json::from_str(rules).expect("json"))
    }

    #[test]
    fn jumps_returns_sets_and_policies() {
        let r = ruleset(
            r#"{"nftables":[
            {"chain":{"family":"inet","table":"t","name":"in","hook":"input","prio":0,"policy":"drop"}},
            {"chain":{"family":"inet","table":"t","name":"sub"}},
            {"rule":{"family":"inet","table":"t","chain":"in","handle":3,"expr":[{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":22}},{"accept":null}]}},
            {"rule":{"family":"inet","table":"t","chain":"in","handle":4,"expr":[{"jump":{"target":"sub"}}]}},
            {"rule":{"family":"inet","table":"t","chain":"sub","handle":5,"expr":[{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"saddr"}},"right":{"prefix":{"addr":"10.9.0.0","len":16}}}},{"accept":null}]}},
            {"rule":{"family":"inet","table":"t","chain":"sub","handle":6,"expr":[{"match":{"op":"!=","left":{"meta":{"key":"iifname"}},"right":"eth*"}},{"drop":null}]}},
            {"rule":{"family":"inet","table":"t","chain":"sub","handle":7,"expr":[{"match":{"op":"==","left":{"meta":{"key":"l4proto"}},"right":{"set":["tcp","vrrp"]}}},{"return":null}]}}
            ]}"#,
        );
        let d = r
            .walk(&advert("eth0", "10.0.0.5", "224.0.0.18"))
            .expect("policy");
        assert_eq!((d.chain.as_str(), d.handle), ("in", None));
        assert_eq!(d.verdict, "policy drop");
        assert!(d.certain);
        assert_eq!(d.path, ["in", "sub"]);
        assert_eq!(d.firewall, Firewall::Nftables);
        let d = r
            .walk(&advert("bond0", "10.0.0.5", "224.0.0.18"))
            .expect("rule 6");
        assert_eq!(d.handle, Some(6));
        assert_eq!(r.walk(&advert("eth0", "10.9.1.1", "224.0.0.18")), None);
    }

    #[test]
    fn an_accept_in_one_base_chain_does_not_stop_the_next() {
        // `firewall-cmd --direct` and `iptables -I INPUT -j ACCEPT` land in iptables-nft's
        // table; firewalld's own chain still rejects afterwards.
        let r = ruleset(
            r#"{"nftables":[
            {"chain":{"family":"ip","table":"filter","name":"INPUT","hook":"input","prio":0,"policy":"accept"}},
            {"rule":{"family":"ip","table":"filter","chain":"INPUT","handle":2,"expr":[{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"protocol"}},"right":"vrrp"}},{"accept":null}]}},
            {"chain":{"family":"inet","table":"firewalld","name":"filter_INPUT","hook":"input","prio":10,"policy":"accept"}},
            {"chain":{"family":"inet","table":"firewalld","name":"filter_IN_dmz"}},
            {"rule":{"family":"inet","table":"firewalld","chain":"filter_INPUT","handle":8,"expr":[{"match":{"op":"==","left":{"ct":{"key":"state"}},"right":{"set":["established","related"]}}},{"accept":null}]}},
            {"rule":{"family":"inet","table":"firewalld","chain":"filter_INPUT","handle":9,"expr":[{"goto":{"target":"filter_IN_dmz"}}]}},
            {"rule":{"family":"inet","table":"firewalld","chain":"filter_IN_dmz","handle":10,"expr":[{"reject":{"type":"icmpx","expr":"admin-prohibited"}}]}}
            ]}"#,
        );
        let d = r
            .walk(&advert("eth0", "10.0.0.5", "224.0.0.18"))
            .expect("firewalld");
        assert_eq!(d.handle, Some(10));
        assert_eq!(
            d.firewall,
            Firewall::Firewalld {
                zone: Some("dmz".into())
            }
        );
        // A unicast pair answers itself: conntrack may call it established.
        let u = r.walk(&advert("eth0", "10.1.0.2", "10.2.0.2"));
        assert!(u.is_some_and(|d| !d.certain));
    }

    #[test]
    fn vmaps_and_named_sets() {
        let r = ruleset(
            r#"{"nftables":[
            {"set":{"family":"inet","table":"t","name":"peers","type":"ipv4_addr","elem":["10.0.0.6"]}},
            {"chain":{"family":"inet","table":"t","name":"in","hook":"input","prio":0,"policy":"accept"}},
            {"rule":{"family":"inet","table":"t","chain":"in","handle":2,"expr":[{"vmap":{"key":{"ct":{"key":"state"}},"data":{"set":[["established",{"accept":null}],["new",{"jump":{"target":"new"}}]]}}}]}},
            {"chain":{"family":"inet","table":"t","name":"new"}},
            {"rule":{"family":"inet","table":"t","chain":"new","handle":4,"expr":[{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"saddr"}},"right":"@peers"}},{"accept":null}]}},
            {"rule":{"family":"inet","table":"t","chain":"new","handle":5,"expr":[{"counter":{"packets":0,"bytes":0}},{"drop":null}]}}
            ]}"#,
        );
        assert_eq!(r.walk(&advert("eth0", "10.0.0.6", "224.0.0.18")), None);
        let d = r
            .walk(&advert("eth0", "10.0.0.5", "224.0.0.18"))
            .expect("drop");
        assert_eq!((d.handle, d.certain), (Some(5), true));
        assert_eq!(d.path, ["in", "new"]);
    }
}
