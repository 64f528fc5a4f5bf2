//! The statement tree into the typed model, block by block, with keepalived 2.2.7's value
//! grammar (keepalived/vrrp/vrrp_parser.c and friends): what its `-t` refuses is an error
//! here, at its line; what vrrpd does not do is warned about once (keywords.rs).

use std::{
    collections::{BTreeSet, HashSet},
    net::{IpAddr, Ipv4Addr},
    path::PathBuf,
    time::Duration,
};

use super::{
    Config, Diagnostics, Global, InitFile, InitialState, Instance, Loc, Node, Notify, NotifyScript,
    ParamMatch, RouteKind, RuleAction, RunUser, Script, SyncGroup, TrackFile, TrackProcess,
    Tracked, Vip, VirtualRoute, VirtualRule,
    keywords::{self, Disposition, Keyword},
    lex::script_words,
};
use crate::wire::vrrp::{Family, Version};

/// What the parse has seen so far, for keepalived's "define before use".
#[derive(Default)]
struct Defined {
    scripts: BTreeSet<String>,
    processes: BTreeSet<String>,
    files: BTreeSet<String>,
    bfds: BTreeSet<String>,
}

pub(super) struct Cx<'a> {
    pub diags: &'a mut Diagnostics,
    use_: super::KeywordUse,
    /// (context, keyword) already warned about.
    warned: HashSet<(String, String)>,
    defined: Defined,
    /// Inside a part vrrpd does not use (LVS, BFD, static addresses): its faults are
    /// `Severity::Ignored`.
    skipping: bool,
    /// keepalived's checker scripts, for the script-security check.
    pub checker_scripts: Vec<String>,
}

impl Cx<'_> {
    pub fn err(&mut self, loc: &Loc, msg: impl Into<String>) {
        if self.skipping {
            self.ignored(loc, msg);
        } else {
            self.diags.error(loc.clone(), msg.into());
        }
    }
    /// A missing value (see `Severity::MissingValue`): keepalived stops there, in any block.
    pub fn missing(&mut self, loc: &Loc, msg: impl Into<String>) {
        self.diags
            .push(super::Severity::MissingValue, loc.clone(), msg.into());
    }
    /// A fault keepalived reports and runs past (see `Severity::Ignored`).
    pub fn ignored(&mut self, loc: &Loc, msg: impl Into<String>) {
        self.diags
            .push(super::Severity::Ignored, loc.clone(), msg.into());
    }
    pub fn warn(&mut self, loc: &Loc, msg: impl Into<String>) {
        self.diags.warning(loc.clone(), msg.into());
    }

    /// The keywords of a block, each looked up in its table: unknown and refused ones are
    /// errors, warned and skipped ones are said once, block shapes are checked. Returns the
    /// nodes to act on.
    fn keywords<'n>(
        &mut self,
        context: &str,
        table: &[Keyword],
        nodes: &'n [Node],
    ) -> Vec<&'n Node> {
        let mut out = Vec::new();
        for n in nodes {
            let Some(k) = keywords::find(table, n.name()) else {
                self.err(
                    n.loc(),
                    format!("unknown keyword '{}' in {context}", n.name()),
                );
                continue;
            };
            let label = format!(
                "{}/{}",
                context.split(' ').next().unwrap_or(context),
                k.name
            );
            match (k.block, &n.block) {
                (true, None) => {
                    self.err(n.loc(), format!("'{}' needs a {{ block }}", n.name()));
                    continue;
                }
                (false, Some(_)) => {
                    self.err(n.loc(), format!("'{}' takes no {{ block }}", n.name()));
                    continue;
                }
                _ => {}
            }
            match k.disposition {
                Disposition::Acted => {
                    self.use_.acted_on.insert(label);
                    out.push(n);
                }
                Disposition::Warned(what) => {
                    self.use_.warned.insert(label.clone());
                    if self.warned.insert((context.to_owned(), k.name.to_owned())) {
                        self.warn(n.loc(), format!("'{}' is not acted on: {what}", k.name));
                    }
                    // Still read, so that what keepalived refuses in it is refused here too.
                    out.push(n);
                }
                Disposition::Skipped(what) => {
                    self.use_.skipped.insert(label);
                    self.warn(n.loc(), format!("'{}' skipped: {what}", k.name));
                    out.push(n);
                }
                Disposition::Refused(why) => {
                    self.err(n.loc(), format!("'{}' is refused: {why}", k.name));
                }
            }
        }
        out
    }

    /// The first argument of `node`, or an error.
    fn arg<'n>(&mut self, node: &'n Node) -> Option<&'n str> {
        if let Some(t) = node.args.first() {
            Some(&t.text)
        } else {
            self.missing(node.loc(), format!("'{}' needs a value", node.name()));
            None
        }
    }

    /// keepalived's unsigned reader: base 10, a leading `+` allowed, no sign, no trailing
    /// characters, within [min, max].
    fn unsigned(&mut self, node: &Node, min: u64, max: u64) -> Option<u64> {
        let text = self.arg(node)?.to_owned();
        self.unsigned_text(node, &text, min, max)
    }

    fn unsigned_text(&mut self, node: &Node, text: &str, min: u64, max: u64) -> Option<u64> {
        let digits = text
            .trim_ascii_start()
            .strip_prefix('+')
            .unwrap_or(text.trim_ascii_start());
        match (digits.chars().all(|c| c.is_ascii_digit()) && !digits.is_empty())
            .then(|| digits.parse::<u64>().ok())
            .flatten()
        {
            Some(n) if (min..=max).contains(&n) => Some(n),
            Some(n) => {
                self.err(
                    node.loc(),
                    format!("{} {n} is outside [{min}, {max}]", node.name()),
                );
                None
            }
            None => {
                self.err(
                    node.loc(),
                    format!("{}: '{text}' is not a whole number", node.name()),
                );
                None
            }
        }
    }

    /// keepalived's signed integer reader.
    fn int(&mut self, node: &Node, text: &str, min: i64, max: i64) -> Option<i64> {
        match text.trim_ascii().parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            Ok(n) => {
                self.err(
                    node.loc(),
                    format!("{} {n} is outside [{min}, {max}]", node.name()),
                );
                None
            }
            Err(_) => {
                self.err(
                    node.loc(),
                    format!("{}: '{text}' is not a whole number", node.name()),
                );
                None
            }
        }
    }

    /// keepalived's decimal seconds: non-negative, at most 6 decimals (`.5`, `1.`, `+1` are
    /// fine), within [min, max] seconds.
    fn seconds(&mut self, node: &Node, min: f64, max: f64) -> Option<Duration> {
        let text = self.arg(node)?.to_owned();
        let t = text.trim_ascii_start();
        let t = t.strip_prefix('+').unwrap_or(t);
        let (int, frac) = t.split_once('.').unwrap_or((t, ""));
        let valid = !(int.is_empty() && frac.is_empty())
            && int.chars().all(|c| c.is_ascii_digit())
            && frac.chars().all(|c| c.is_ascii_digit());
        if !valid {
            self.err(
                node.loc(),
                format!("{}: '{text}' is not a number of seconds", node.name()),
            );
            return None;
        }
        if frac.len() > 6 {
            self.err(
                node.loc(),
                format!(
                    "{}: '{text}' has more than 6 decimals (keepalived counts microseconds)",
                    node.name()
                ),
            );
            return None;
        }
        let digits = format!("{int}{frac:0<6}");
        let digits = digits.trim_start_matches('0');
        let micros: u64 = if digits.is_empty() {
            0
        } else if let Ok(m) = digits.parse() {
            m
        } else {
            self.err(
                node.loc(),
                format!("{} {text} is outside [{min}, {max}] seconds", node.name()),
            );
            return None;
        };
        let secs = Duration::from_micros(micros);
        let s = secs.as_secs_f64();
        if s < min || s > max {
            self.err(
                node.loc(),
                format!("{} {text} is outside [{min}, {max}] seconds", node.name()),
            );
            return None;
        }
        Some(secs)
    }

    /// A boolean argument (`true|on|yes`, `false|off|no`); no argument is true.
    fn flag(&mut self, node: &Node) -> Option<bool> {
        match node.args.first().map(|t| t.text.as_str()) {
            None | Some("true" | "on" | "yes") => Some(true),
            Some("false" | "off" | "no") => Some(false),
            Some(other) => {
                self.err(
                    node.loc(),
                    format!(
                        "{}: '{other}' is not true/on/yes or false/off/no",
                        node.name()
                    ),
                );
                None
            }
        }
    }

    /// An address as keepalived's `inet_stosockaddr` reads it: what follows a `/` or `-` is
    /// dropped (`10.0.0.5/24` is 10.0.0.5).
    fn host_address(&mut self, node: &Node, text: &str, what: &str) -> Option<IpAddr> {
        let bare = text.split(['/', '-']).next().unwrap_or(text);
        if let Ok(a) = bare.parse::<IpAddr>() {
            Some(a)
        } else {
            self.err(node.loc(), format!("{what} '{text}' is not an IP address"));
            None
        }
    }

    /// `USER [GROUP]`.
    fn user(&mut self, node: &Node) -> Option<RunUser> {
        let user = self.arg(node)?.to_owned();
        Some((user, node.args.get(1).map(|t| t.text.clone())))
    }

    /// A notify line: keepalived re-reads it with its quoting and escapes; the first word is
    /// the command (quote a command with arguments), the next two the user and group.
    fn notify_script(&mut self, node: &Node) -> Option<NotifyScript> {
        let rest = after_keyword(node);
        let words = match script_words(rest) {
            Ok(w) => w,
            Err(e) => {
                self.err(node.loc(), format!("{}: {e}", node.name()));
                return None;
            }
        };
        let mut words = words.into_iter();
        let Some(command) = words.next().filter(|c| !c.is_empty()) else {
            self.err(node.loc(), format!("'{}' needs a script", node.name()));
            return None;
        };
        let user = words.next().map(|u| (u, words.next()));
        if let Some((u, _)) = &user
            && u.starts_with('/')
        {
            self.warn(
                node.loc(),
                format!("{}: keepalived takes the word after the script ('{u}') as the user to run it as; quote the whole command if it is an argument", node.name()),
            );
        }
        Some(NotifyScript { command, user })
    }
}

pub(super) fn build(tree: &[Node], diags: &mut Diagnostics) -> Config {
    let mut cx = Cx {
        diags,
        use_: super::KeywordUse::default(),
        warned: HashSet::new(),
        defined: Defined::default(),
        skipping: false,
        checker_scripts: Vec::new(),
    };
    let mut config = Config::default();
    let root = cx.keywords("the top level", keywords::ROOT, tree);
    // global_defs first: vrrp_version and friends are defaults for the instances.
    for node in root.iter().filter(|n| n.name() == "global_defs") {
        global_defs(&mut cx, node, &mut config.global);
    }
    // keepalived resolves virtual_server groups after the whole file is read.
    let mut lvs_groups: std::collections::BTreeMap<String, super::lvs::Group> =
        std::collections::BTreeMap::new();
    cx.skipping = true;
    for n in root.iter().filter(|n| n.name() == "virtual_server_group") {
        let g = super::lvs::group(&mut cx, n);
        if let Some(name) = n.args.first() {
            lvs_groups.insert(name.text.clone(), g);
        }
    }
    cx.skipping = false;
    let mut track_groups: BTreeSet<String> = BTreeSet::new();
    let mut instance_names: BTreeSet<String> = BTreeSet::new();
    let mut group_names: BTreeSet<String> = BTreeSet::new();
    for node in root {
        match node.name() {
            "global_defs" => {}
            "vrrp_script" => {
                if let Some(s) = script(&mut cx, node) {
                    if config.scripts.contains_key(&s.name) {
                        cx.warn(
                            node.loc(),
                            format!("vrrp_script {} is defined again: the first definition is used, as keepalived does", s.name),
                        );
                    } else {
                        cx.defined.scripts.insert(s.name.clone());
                        config.scripts.insert(s.name.clone(), s);
                    }
                }
            }
            "vrrp_instance" => {
                let Some(name) = header(&mut cx, node, "vrrp_instance") else {
                    continue;
                };
                if !instance_names.insert(name.clone()) {
                    cx.err(node.loc(), format!("vrrp_instance {name} is defined twice"));
                    continue;
                }
                if let Some(i) = instance(&mut cx, node, &name, &config.global) {
                    config.instances.push(std::sync::Arc::new(i));
                }
            }
            "vrrp_sync_group" => {
                let Some(name) = header(&mut cx, node, "vrrp_sync_group") else {
                    continue;
                };
                if !group_names.insert(name.clone()) {
                    cx.err(
                        node.loc(),
                        format!("vrrp_sync_group {name} is defined twice"),
                    );
                    continue;
                }
                if let Some(g) = sync_group(&mut cx, node, &name) {
                    config.sync_groups.push(g);
                }
            }
            "vrrp_track_process" => {
                if let Some(p) = track_process(&mut cx, node) {
                    if config.track_processes.contains_key(&p.name) {
                        cx.warn(
                            node.loc(),
                            format!("vrrp_track_process {} is defined again: the first definition is used", p.name),
                        );
                    } else {
                        config.track_processes.insert(p.name.clone(), p);
                    }
                }
            }
            "track_file" | "vrrp_track_file" => {
                if let Some(f) = track_file(&mut cx, node) {
                    if config.track_files.contains_key(&f.name) {
                        cx.warn(
                            node.loc(),
                            format!(
                                "track_file {} is defined again: the first definition is used",
                                f.name
                            ),
                        );
                    } else {
                        config.track_files.insert(f.name.clone(), f);
                    }
                }
            }
            "bfd_instance" => {
                if let Some(name) = node.args.first() {
                    cx.defined.bfds.insert(name.text.clone());
                }
                cx.skipping = true;
                checked_block(&mut cx, node, "bfd_instance");
                super::lvs::bfd_instance(&mut cx, node);
                cx.skipping = false;
            }
            "garp_group" | "track_group" => {
                if node.name() == "track_group"
                    && let Some(name) = node.args.first()
                {
                    track_groups.insert(name.text.clone());
                }
                cx.skipping = true;
                checked_block(&mut cx, node, node.name());
                cx.skipping = false;
            }
            "static_ipaddress" | "static_routes" | "static_rules" => {
                // keepalived looks a track_group up when the line is read.
                for n in node.block.as_deref().unwrap_or_default() {
                    let words: Vec<&str> = std::iter::once(n.name())
                        .chain(n.args.iter().map(|t| t.text.as_str()))
                        .collect();
                    let mut named = 0;
                    for pair in words.windows(2) {
                        if pair[0] == "track_group" {
                            named += 1;
                            if named > 1 {
                                cx.ignored(
                                    n.loc(),
                                    format!("track_group {} is a second track_group", pair[1]),
                                );
                            } else if !track_groups.contains(pair[1]) {
                                cx.ignored(n.loc(), format!("track_group {} is not defined (yet): keepalived needs it before the line that names it", pair[1]));
                            }
                        }
                    }
                    let has = |w: &str| words.contains(&w);
                    let without_dev = match node.name() {
                        "static_ipaddress" => !has("dev"),
                        "static_rules" => !has("dev") && !has("iif"),
                        _ => false,
                    };
                    if named > 0 && without_dev {
                        cx.ignored(
                            n.loc(),
                            format!(
                                "a {} line with track_group must name its interface (dev{})",
                                node.name(),
                                if node.name() == "static_rules" {
                                    " or iif"
                                } else {
                                    ""
                                }
                            ),
                        );
                    }
                }
            }
            "virtual_server" | "SSL" | "virtual_server_group" => {
                cx.skipping = true;
                lvs_block(&mut cx, node, node.name());
                if node.name() == "virtual_server" {
                    super::lvs::virtual_server(&mut cx, node, &lvs_groups);
                }
                cx.skipping = false;
            }
            // Value blocks and lines with nothing to look into.
            _ => {}
        }
    }
    config.keywords = std::mem::take(&mut cx.use_);
    config.checker_scripts = std::mem::take(&mut cx.checker_scripts);
    super::check::config(&mut cx, &mut config);
    config
}

/// The line after its keyword, as written (for keepalived's re-split of script lines). A
/// keyword that was quoted or expanded does not start the line as its text: then the words
/// after the first.
pub(super) fn after_keyword(node: &Node) -> &str {
    let raw = node.raw.trim_ascii_start();
    raw.strip_prefix(node.name())
        .or_else(|| raw.split_once([' ', '\t']).map(|(_, r)| r))
        .unwrap_or("")
        .trim_ascii()
}

/// The one name after `vrrp_instance` / `vrrp_sync_group`.
fn header(cx: &mut Cx<'_>, node: &Node, what: &str) -> Option<String> {
    match node.args.as_slice() {
        [name] => Some(name.text.clone()),
        [] => {
            // keepalived takes a `{` on the same line for the name; the rarer name-less line
            // of its own would make it stop (exit 2).
            cx.err(node.loc(), format!("{what} needs a name"));
            None
        }
        _ => {
            cx.err(node.loc(), format!("{what} takes one name"));
            None
        }
    }
}

/// A block whose keywords are only checked for their names (vrrpd does not act on it).
fn checked_block(cx: &mut Cx<'_>, node: &Node, context: &str) {
    if let (Some(table), Some(block)) = (keywords::table(context), &node.block) {
        cx.keywords(context, table, block);
    }
}

/// LVS blocks: keyword names checked all the way down (virtual_server, real_server, the
/// checkers, url / host), values not.
fn lvs_block(cx: &mut Cx<'_>, node: &Node, path: &str) {
    let Some(block) = &node.block else {
        return;
    };
    let Some(names) = keywords::lvs_keywords(path) else {
        return;
    };
    for n in block {
        if !names.contains(&n.name()) {
            cx.err(n.loc(), format!("unknown keyword '{}' in {path}", n.name()));
            continue;
        }
        if n.block.is_some() {
            lvs_block(cx, n, &format!("{path}/{}", n.name()));
        }
    }
}

fn global_defs(cx: &mut Cx<'_>, node: &Node, g: &mut Global) {
    let Some(block) = &node.block else {
        return;
    };
    for n in cx.keywords("global_defs", keywords::GLOBAL_DEFS, block) {
        match n.name() {
            "router_id" => g.router_id = cx.arg(n).map(str::to_owned),
            "vrrp_version" => match cx.unsigned(n, 2, 3) {
                Some(3) => g.vrrp_version = Version::V3,
                Some(_) => g.vrrp_version = Version::V2,
                None => {}
            },
            // keepalived ignores its argument: `vrrp_strict no` still turns it on.
            "vrrp_strict" => g.vrrp_strict = true,
            "vrrp_garp_master_delay" => {
                if let Some(s) = cx.unsigned(n, 0, 4294) {
                    g.garp.master_delay = Duration::from_secs(s);
                }
            }
            "vrrp_garp_master_repeat" => g.garp.master_repeat = repeat(cx, n).unwrap_or(5),
            "vrrp_garp_master_refresh" => {
                if let Some(s) = cx.unsigned(n, 0, u64::from(u32::MAX)) {
                    g.garp.master_refresh = Duration::from_secs(s);
                }
            }
            "vrrp_garp_master_refresh_repeat" => {
                g.garp.master_refresh_repeat = repeat(cx, n).unwrap_or(1);
            }
            "vrrp_garp_interval" => {
                if let Some(s) = cx.seconds(n, 0.000_001, 4294.967_295) {
                    g.garp.interval = s;
                }
            }
            "vrrp_gna_interval" => {
                if let Some(s) = cx.seconds(n, 0.000_001, 4294.967_295) {
                    g.garp.gna_interval = s;
                }
            }
            // keepalived: one gratuitous ARP on becoming master, no second burst, no refresh
            // (each only where it is still at its default).
            "vrrp_min_garp" => {
                if cx.flag(n) == Some(true) {
                    let d = super::Garp::default();
                    if g.garp.master_repeat == d.master_repeat {
                        g.garp.master_repeat = 1;
                    }
                    if g.garp.master_delay == d.master_delay {
                        g.garp.master_delay = Duration::ZERO;
                    }
                }
            }
            "vrrp_mcast_group4" => {
                if let Some(text) = cx.arg(n).map(str::to_owned) {
                    match cx.host_address(n, &text, "vrrp_mcast_group4") {
                        Some(IpAddr::V4(a)) if a.is_multicast() => g.mcast_group4 = a,
                        Some(_) => cx.err(
                            n.loc(),
                            format!("vrrp_mcast_group4 {text} is not an IPv4 multicast address"),
                        ),
                        None => {}
                    }
                }
            }
            "vrrp_mcast_group6" => {
                if let Some(text) = cx.arg(n).map(str::to_owned) {
                    match cx.host_address(n, &text, "vrrp_mcast_group6") {
                        Some(IpAddr::V6(a)) if a.segments()[0] & 0xff0f == 0xff02 => {
                            g.mcast_group6 = a;
                        }
                        Some(_) => cx.err(n.loc(), format!("vrrp_mcast_group6 {text} is not a link-local IPv6 multicast address")),
                        None => {}
                    }
                }
            }
            "script_user" => {
                g.script_user = cx.user(n);
                g.script_user_loc = Some(n.loc().clone());
            }
            "enable_script_security" => g.enable_script_security = true,
            "notify_fifo" | "vrrp_notify_fifo" => {
                let Some(path) = cx.arg(n).map(str::to_owned) else {
                    continue;
                };
                let user = n
                    .args
                    .get(1)
                    .map(|u| (u.text.clone(), n.args.get(2).map(|g| g.text.clone())));
                let slot = if n.name() == "notify_fifo" {
                    &mut g.notify_fifo
                } else {
                    &mut g.vrrp_notify_fifo
                };
                if slot.is_some() {
                    cx.err(n.loc(), format!("{} is given twice", n.name()));
                } else {
                    *slot = Some((path, user));
                }
            }
            "v3_checksum_as_v2" => g.checksum_as_v2 = true,
            "vrrp_check_unicast_src" => g.check_unicast_src = true,
            "vrrp_rt_priority" => {
                if let Some(text) = cx.arg(n).map(str::to_owned) {
                    // keepalived clamps to [1, 99] and counts an error when it must.
                    if let Some(p) = cx.int(n, &text, 1, 99) {
                        g.rt_priority = u8::try_from(p).ok();
                    }
                }
            }
            "vrrp_startup_delay" => {
                g.startup_delay = cx.seconds(n, 0.001, 4294.967_295);
            }
            "vrrp_garp_lower_prio_delay" => {
                if let Some(d) = cx.unsigned(n, 0, 4294) {
                    g.garp.lower_prio_delay = Some(Duration::from_secs(d));
                }
            }
            "vrrp_garp_lower_prio_repeat" => {
                if let Some(r) = cx.unsigned(n, 0, i32::MAX.unsigned_abs().into()) {
                    g.garp.lower_prio_repeat = u32::try_from(r).ok();
                }
            }
            "vrrp_down_timer_adverts" => {
                if let Some(d) = cx.unsigned(n, 1, 100) {
                    g.down_timer_adverts = u32::try_from(d).unwrap_or(3);
                }
            }
            "notify_fifo_script" | "vrrp_notify_fifo_script" => {
                let _ = cx.notify_script(n);
            }
            // Booleans keepalived checks (check_true_false) even where vrrpd does not act.
            "smtp_alert"
            | "smtp_alert_vrrp"
            | "smtp_alert_checker"
            | "checker_log_all_failures"
            | "vrrp_higher_prio_send_advert"
            | "vrrp_lower_prio_no_advert"
            | "vrrp_notify_priority_changes"
            | "vrrp_netlink_cmd_rcv_bufs_force"
            | "vrrp_netlink_monitor_rcv_bufs_force"
            | "process_monitor_rcv_bufs_force"
            | "lvs_netlink_cmd_rcv_bufs_force"
            | "lvs_netlink_monitor_rcv_bufs_force"
            | "no_checker_emails"
            | "rs_init_notifies"
            | "data_use_instance" => {
                let _ = cx.flag(n);
            }
            // The lexer applied it to the includes that follow; its words are checked here.
            "include_check" => {
                for (i, w) in n.args.iter().enumerate() {
                    let bare = w.text.strip_prefix(['+', '-']);
                    if bare.is_none() && i > 0 {
                        cx.err(n.loc(), format!("include_check: '{}' given again without + or -: ignored, as keepalived does", w.text));
                        continue;
                    }
                    let name = bare.unwrap_or(&w.text);
                    if !matches!(name, "read" | "match" | "wildcard_match" | "brace_match") {
                        cx.err(n.loc(), format!("include_check: unknown type '{name}' (read, match, wildcard_match, brace_match)"));
                    }
                }
            }
            _ => {}
        }
    }
}

fn repeat(cx: &mut Cx<'_>, n: &Node) -> Option<u32> {
    match cx.unsigned(n, 0, u64::from(u32::MAX)) {
        Some(0) => {
            cx.err(n.loc(), format!("{} must be at least 1", n.name()));
            None
        }
        Some(r) => u32::try_from(r).ok(),
        None => None,
    }
}

fn script(cx: &mut Cx<'_>, node: &Node) -> Option<Script> {
    let Some(name) = node.args.first().map(|t| t.text.clone()) else {
        cx.missing(node.loc(), "vrrp_script needs a name");
        return None;
    };
    let mut s = Script {
        name,
        loc: node.loc().clone(),
        command: String::new(),
        interval: Duration::from_secs(1),
        timeout: None,
        weight: 0,
        weight_reverse: false,
        rise: 1,
        fall: 1,
        user: None,
        init_fail: false,
    };
    let Some(block) = &node.block else {
        return None;
    };
    let context = format!("vrrp_script {}", s.name);
    for n in cx.keywords(&context, keywords::VRRP_SCRIPT, block) {
        match n.name() {
            "script" => {
                let rest = n.raw.trim_ascii_start()["script".len()..].trim_ascii();
                match script_words(rest) {
                    Ok(words) => {
                        if let Some(first) = words.first() {
                            s.command.clone_from(first);
                        }
                        if words.len() > 1 {
                            cx.warn(
                                n.loc(),
                                format!("({}) script: only the first word is the command, as keepalived takes it; '{}' is ignored (quote the whole command to pass arguments)", s.name, words[1..].join(" ")),
                            );
                        }
                    }
                    Err(e) => cx.err(n.loc(), format!("script: {e}")),
                }
            }
            "interval" | "timeout" => match cx.unsigned(n, 0, 4294) {
                Some(0) => cx.err(n.loc(), format!("{} must be at least 1 second", n.name())),
                Some(secs) => {
                    let d = Duration::from_secs(secs);
                    if n.name() == "interval" {
                        s.interval = d;
                    } else {
                        s.timeout = Some(d);
                    }
                }
                None => {}
            },
            "weight" => {
                let Some(text) = cx.arg(n).map(str::to_owned) else {
                    continue;
                };
                if let Some(w) = cx.int(n, &text, -253, 253) {
                    s.weight = i32::try_from(w).unwrap_or(0);
                }
                match n.args.get(1).map(|t| t.text.as_str()) {
                    None => {}
                    Some("reverse") => s.weight_reverse = true,
                    Some(other) => cx.err(
                        n.loc(),
                        format!("weight: unknown option '{other}' (reverse)"),
                    ),
                }
            }
            "rise" | "fall" => {
                if let Some(v) = cx.unsigned(n, 1, u64::from(i32::MAX.unsigned_abs())) {
                    let v = u32::try_from(v).unwrap_or(1);
                    if n.name() == "rise" {
                        s.rise = v;
                    } else {
                        s.fall = v;
                    }
                }
            }
            "user" => s.user = cx.user(n),
            "init_fail" => s.init_fail = true,
            _ => {}
        }
    }
    if s.command.is_empty() {
        cx.err(node.loc(), format!("vrrp_script {} has no script", s.name));
        return None;
    }
    Some(s)
}

fn track_process(cx: &mut Cx<'_>, node: &Node) -> Option<TrackProcess> {
    let Some(name) = node.args.first().map(|t| t.text.clone()) else {
        cx.err(node.loc(), "vrrp_track_process needs a name");
        return None;
    };
    let block = node.block.as_ref()?;
    let nodes = cx.keywords(
        &format!("vrrp_track_process {name}"),
        keywords::VRRP_TRACK_PROCESS,
        block,
    );
    let mut p = TrackProcess {
        name: name.clone(),
        loc: node.loc().clone(),
        process: String::new(),
        params: Vec::new(),
        param_match: ParamMatch::Exact,
        full_command: false,
        weight: 0,
        reverse: false,
        quorum: 1,
        quorum_max: 0,
        fork_delay: Duration::ZERO,
        terminate_delay: Duration::ZERO,
    };
    for n in nodes {
        match n.name() {
            "process" => {
                let mut words = n.args.iter().map(|t| t.text.clone());
                if let Some(first) = words.next() {
                    p.process = first;
                    p.params = words.collect();
                }
            }
            "weight" => {
                if let Some(text) = cx.arg(n).map(str::to_owned)
                    && let Some(w) = cx.int(n, &text, -254, 254)
                {
                    p.weight = i32::try_from(w).unwrap_or(0);
                    p.reverse = n.args.get(1).is_some_and(|t| t.text == "reverse");
                }
            }
            "quorum" => {
                if let Some(q) = cx.unsigned(n, 1, 65535) {
                    p.quorum = u32::try_from(q).unwrap_or(1);
                }
            }
            "quorum_max" => {
                if let Some(q) = cx.unsigned(n, 0, 65535) {
                    p.quorum_max = u32::try_from(q).unwrap_or(0);
                }
            }
            "delay" => {
                if let Some(d) = cx.seconds(n, 0.000_001, 3600.0) {
                    p.fork_delay = d;
                    p.terminate_delay = d;
                }
            }
            "terminate_delay" => {
                if let Some(d) = cx.seconds(n, 0.000_001, 3600.0) {
                    p.terminate_delay = d;
                }
            }
            "fork_delay" => {
                if let Some(d) = cx.seconds(n, 0.000_001, 3600.0) {
                    p.fork_delay = d;
                }
            }
            "full_command" => p.full_command = true,
            "param_match" => match n.args.first().map(|t| t.text.as_str()) {
                Some("exact") => p.param_match = ParamMatch::Exact,
                Some("initial") => p.param_match = ParamMatch::Initial,
                Some("partial") => p.param_match = ParamMatch::Partial,
                Some(other) => cx.err(
                    n.loc(),
                    format!("param_match '{other}': exact, initial or partial"),
                ),
                None => {}
            },
            _ => {}
        }
    }
    if p.process.is_empty() {
        cx.err(
            node.loc(),
            format!("vrrp_track_process {name}: no process given"),
        );
        return None;
    }
    if p.quorum_max != 0 && p.quorum_max < p.quorum {
        cx.err(
            node.loc(),
            format!(
                "vrrp_track_process {name}: quorum_max {} is below quorum {}",
                p.quorum_max, p.quorum
            ),
        );
        return None;
    }
    cx.defined.processes.insert(name);
    Some(p)
}

fn track_file(cx: &mut Cx<'_>, node: &Node) -> Option<TrackFile> {
    let Some(name) = node.args.first().map(|t| t.text.clone()) else {
        cx.err(node.loc(), format!("{} needs a name", node.name()));
        return None;
    };
    if node.name() == "vrrp_track_file" {
        cx.warn(
            node.loc(),
            "\"vrrp_track_file\" is deprecated, please use \"track_file\" (keepalived says so too)",
        );
    }
    let block = node.block.as_ref()?;
    let nodes = cx.keywords(
        &format!("{} {name}", node.name()),
        keywords::TRACK_FILE,
        block,
    );
    let mut f = TrackFile {
        name: name.clone(),
        loc: node.loc().clone(),
        path: PathBuf::new(),
        weight: 1,
        reverse: false,
        init: None,
    };
    for n in nodes {
        match n.name() {
            "file" => {
                if f.path.as_os_str().is_empty()
                    && let Some(p) = cx.arg(n)
                {
                    f.path = PathBuf::from(p);
                }
            }
            "weight" => {
                if let Some(text) = cx.arg(n).map(str::to_owned)
                    && let Some(w) = cx.int(n, &text, -254, 254)
                {
                    f.weight = i32::try_from(w).unwrap_or(1);
                    f.reverse = n.args.get(1).is_some_and(|t| t.text == "reverse");
                }
            }
            "init_file" => {
                let mut init = InitFile {
                    value: 0,
                    overwrite: false,
                };
                for w in &n.args {
                    if w.text == "overwrite" {
                        init.overwrite = true;
                    } else if let Ok(v) = w.text.parse::<i32>() {
                        init.value = i64::from(v);
                    } else {
                        cx.err(
                            n.loc(),
                            format!("track_file {name}: init_file '{}' is not a number", w.text),
                        );
                    }
                }
                f.init = Some(init);
            }
            _ => {}
        }
    }
    if f.path.as_os_str().is_empty() {
        cx.err(node.loc(), format!("track_file {name}: no file given"));
        return None;
    }
    cx.defined.files.insert(name);
    Some(f)
}

/// keepalived's ip-addr syntax: `ADDR[/PREFIX] [dev IF] [brd X|+|-] [scope S] [label L]
/// [peer X] [home] [-nodad] [mngtmpaddr] [noprefixroute] [autojoin] [no_track]
/// [preferred_lft N|forever] [use_vmac]`, one address per line.
fn vip(cx: &mut Cx<'_>, n: &Node) -> Option<Vip> {
    let text = n.name();
    let (addr_text, prefix_text) = text
        .split_once('/')
        .map_or((text, None), |(a, p)| (a, Some(p)));
    let Ok(addr) = addr_text.parse::<IpAddr>() else {
        cx.err(n.loc(), format!("'{addr_text}' is not an IP address"));
        return None;
    };
    let max: u8 = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix_text {
        None => max,
        Some(p) => match p.parse::<u8>() {
            Ok(p) if p <= max && !p.to_string().is_empty() => p,
            _ => {
                cx.err(
                    n.loc(),
                    format!("'{text}': the prefix length must be 0 to {max}"),
                );
                return None;
            }
        },
    };
    let mut v = Vip {
        addr,
        prefix,
        brd: None,
        dev: None,
        scope: None,
        label: None,
        loc: n.loc().clone(),
    };
    let mut words = n.args.iter().map(|t| t.text.as_str());
    let mut ignored: Vec<&str> = Vec::new();
    while let Some(w) = words.next() {
        let mut value = |cx: &mut Cx<'_>| {
            let v = words.next().map(str::to_owned);
            if v.is_none() {
                cx.err(n.loc(), format!("{text}: '{w}' needs a value"));
            }
            v
        };
        match w {
            "brd" | "broadcast" => {
                let Some(b) = value(cx) else { return None };
                if addr.is_ipv6() {
                    cx.err(n.loc(), format!("{text}: an IPv6 address has no broadcast"));
                    return None;
                }
                match b.as_str() {
                    "+" | "-" if prefix > 30 => {
                        cx.err(
                            n.loc(),
                            format!("{text}: prefix /{prefix} is too long for a broadcast address"),
                        );
                        return None;
                    }
                    "+" => v.brd = broadcast(addr, prefix, true),
                    "-" => v.brd = broadcast(addr, prefix, false),
                    b => match b.parse::<Ipv4Addr>() {
                        Ok(a) => v.brd = Some(a),
                        Err(_) => {
                            cx.err(n.loc(), format!("{text}: brd '{b}' is not an IPv4 address"));
                            return None;
                        }
                    },
                }
            }
            "dev" => {
                let Some(d) = value(cx) else { return None };
                if v.dev.is_some() {
                    cx.err(n.loc(), format!("{text}: dev given twice"));
                    return None;
                }
                v.dev = Some(d);
            }
            "scope" => {
                let Some(s) = value(cx) else { return None };
                if addr.is_ipv6() {
                    cx.err(n.loc(), format!("{text}: an IPv6 address takes no scope"));
                    continue;
                }
                if matches!(
                    s.as_str(),
                    "global" | "nowhere" | "host" | "link" | "site" | "universe"
                ) || s.parse::<u8>().is_ok()
                {
                    v.scope = Some(s);
                } else {
                    cx.err(n.loc(), format!("{text}: unknown scope '{s}'"));
                }
            }
            "label" => {
                let Some(l) = value(cx) else { return None };
                if addr.is_ipv6() {
                    cx.err(n.loc(), format!("{text}: an IPv6 address takes no label"));
                } else if l.len() >= 16 {
                    cx.err(
                        n.loc(),
                        format!("{text}: label '{l}' is longer than 15 characters"),
                    );
                    return None;
                } else {
                    v.label = Some(l);
                }
            }
            "peer" => {
                let Some(p) = value(cx) else { return None };
                if p.parse::<IpAddr>().map(|a| a.is_ipv4()) != Ok(addr.is_ipv4()) {
                    cx.err(
                        n.loc(),
                        format!("{text}: peer '{p}' is not an address of the same family"),
                    );
                    return None;
                }
                ignored.push("peer");
            }
            "preferred_lft" => {
                let Some(p) = value(cx) else { return None };
                if p != "forever" && p.parse::<u32>().is_err() {
                    cx.err(
                        n.loc(),
                        format!("{text}: preferred_lft '{p}' is not a number or forever"),
                    );
                    return None;
                }
                ignored.push("preferred_lft");
            }
            "home" | "-nodad" | "mngtmpaddr" | "noprefixroute" | "autojoin" | "no_track"
            | "use_vmac" => ignored.push(w),
            other => {
                cx.err(
                    n.loc(),
                    format!(
                        "{text}: unknown virtual_ipaddress option '{other}' (one address per line)"
                    ),
                );
                return None;
            }
        }
    }
    if !ignored.is_empty() {
        cx.warn(
            n.loc(),
            format!("{text}: vrrpd does not apply {} (it adds the address with its prefix, dev, brd, scope and label)", ignored.join(", ")),
        );
    }
    Some(v)
}

fn broadcast(addr: IpAddr, prefix: u8, ones: bool) -> Option<Ipv4Addr> {
    let IpAddr::V4(a) = addr else { return None };
    let host = u32::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
    let net = u32::from(a) & !host;
    Some(Ipv4Addr::from(if ones { net | host } else { net }))
}

/// A `track_interface` / `track_script` / `track_file` / `track_process` / `track_bfd` line:
/// `NAME [weight W [reverse|noreverse]]` (track_interface: no `noreverse`).
fn tracked(cx: &mut Cx<'_>, block: &[Node], what: &str, owner: &str) -> Vec<Tracked> {
    let mut out: Vec<Tracked> = Vec::new();
    let (min, max) = if what == "track_interface" || what == "track_script" || what == "track_bfd" {
        (-253, 253)
    } else {
        (-254, 254)
    };
    for n in block {
        let mut t = Tracked {
            name: n.name().to_owned(),
            weight: None,
            reverse: false,
            loc: n.loc().clone(),
        };
        let known = match what {
            "track_script" => Some(&cx.defined.scripts),
            "track_process" => Some(&cx.defined.processes),
            "track_file" => Some(&cx.defined.files),
            "track_bfd" => Some(&cx.defined.bfds),
            _ => None,
        };
        if let Some(set) = known
            && !set.contains(&t.name)
        {
            let defined = match what {
                "track_script" => "vrrp_script",
                "track_process" => "vrrp_track_process",
                "track_file" => "track_file",
                _ => "bfd_instance",
            };
            cx.err(
                n.loc(),
                format!("({owner}) {what} {}: no {defined} of that name is defined before this line (keepalived needs it defined first)", t.name),
            );
            continue;
        }
        if out.iter().any(|o| o.name == t.name) {
            cx.err(
                n.loc(),
                format!("({owner}) {what} {} is listed twice", t.name),
            );
            continue;
        }
        let mut words = n.args.iter().map(|t| t.text.as_str());
        match words.next() {
            None => {}
            Some("weight") => {
                let Some(w) = words.next() else {
                    cx.err(
                        n.loc(),
                        format!("({owner}) {what} {}: weight needs a value", t.name),
                    );
                    continue;
                };
                match w.parse::<i32>() {
                    Ok(x)
                        if (i64::from(x)..=i64::from(x)).contains(&i64::from(x))
                            && (min..=max).contains(&x) =>
                    {
                        t.weight = Some(x);
                    }
                    _ => {
                        cx.err(n.loc(), format!("({owner}) {what} {}: weight '{w}' must be a whole number in [{min}, {max}]", t.name));
                        continue;
                    }
                }
                match words.next() {
                    None => {}
                    Some("reverse") => t.reverse = true,
                    Some("noreverse") if what != "track_interface" => {}
                    Some(other) => {
                        cx.err(
                            n.loc(),
                            format!(
                                "({owner}) {what} {}: unknown weight option '{other}'",
                                t.name
                            ),
                        );
                        continue;
                    }
                }
            }
            Some(other) => {
                cx.err(
                    n.loc(),
                    format!(
                        "({owner}) {what} {}: unknown option '{other}' (weight N [reverse])",
                        t.name
                    ),
                );
                continue;
            }
        }
        out.push(t);
    }
    out
}

/// Sets a notify slot, refusing a second one as keepalived does.
fn notify_keyword(cx: &mut Cx<'_>, n: &Node, notify: &mut Notify) -> bool {
    let slot = match n.name() {
        "notify_master" => &mut notify.master,
        "notify_backup" => &mut notify.backup,
        "notify_fault" => &mut notify.fault,
        "notify_stop" => &mut notify.stop,
        "notify_master_rx_lower_pri" => &mut notify.master_rx_lower_pri,
        "notify" => &mut notify.generic,
        _ => return false,
    };
    if slot.is_some() {
        cx.err(n.loc(), format!("{} is given twice", n.name()));
        return true;
    }
    let script = cx.notify_script(n);
    let slot = match n.name() {
        "notify_master" => &mut notify.master,
        "notify_backup" => &mut notify.backup,
        "notify_fault" => &mut notify.fault,
        "notify_stop" => &mut notify.stop,
        "notify_master_rx_lower_pri" => &mut notify.master_rx_lower_pri,
        _ => &mut notify.generic,
    };
    *slot = script;
    true
}

/// What an instance's block gave, before the checks that need all of it.
#[derive(Default)]
struct Seen {
    state: Option<(InitialState, Loc)>,
    priority: Option<u8>,
    vrid: Option<u8>,
    vrid_given: bool,
    interface: Option<String>,
    version: Option<(Version, Loc)>,
    advert_int: Option<(Duration, Loc)>,
    family: Option<Family>,
    /// Any keyword that makes keepalived treat the instance as unicast.
    unicast_keyword: bool,
    unicast_ttl: bool,
    mcast_dst: bool,
    auth_type: Option<(String, Loc)>,
    strict: Option<bool>,
    accept: Option<bool>,
    lower_prio_repeat: Option<u32>,
    lower_prio_delay: Option<Duration>,
}

#[expect(
    clippy::too_many_lines,
    reason = "one arm per keepalived keyword reads best as one table"
)]
fn instance(cx: &mut Cx<'_>, node: &Node, name: &str, g: &Global) -> Option<Instance> {
    let mut seen = Seen::default();
    let mut i = Instance {
        name: name.to_owned(),
        loc: node.loc().clone(),
        state: InitialState::Backup,
        interface: String::new(),
        vrid: 0,
        priority: 100,
        version: g.vrrp_version,
        family: Family::V4,
        advert_int_cs: 100,
        preempt: true,
        preempt_delay: Duration::ZERO,
        auth: None,
        vips: Vec::new(),
        excluded_vips: Vec::new(),
        unicast_src_ip: None,
        unicast_peers: Vec::new(),
        peer_ttl: Vec::new(),
        mcast_src_ip: None,
        track_interfaces: Vec::new(),
        track_scripts: Vec::new(),
        track_files: Vec::new(),
        track_processes: Vec::new(),
        notify: Notify::default(),
        garp: g.garp.for_instance(),
        dont_track_primary: false,
        checksum_as_v2: g.checksum_as_v2,
        check_unicast_src: g.check_unicast_src,
        unicast_fault_no_peer: false,
        down_timer_adverts: g.down_timer_adverts,
        strict: g.vrrp_strict,
        promote_secondaries: false,
        vmac: None,
        vmac_xmit_base: false,
        virtual_routes: Vec::new(),
        virtual_rules: Vec::new(),
        accept: true,
        unicast_ttl: None,
    };
    let Some(block) = &node.block else {
        return None;
    };
    let context = format!("vrrp_instance {name}");
    let set_family = |cx: &mut Cx<'_>, seen: &mut Seen, n: &Node, f: Family| -> bool {
        match seen.family {
            None => {
                seen.family = Some(f);
                true
            }
            Some(known) if known == f => true,
            Some(known) => {
                cx.err(n.loc(), format!("({name}) '{}' is not of the instance's address family ({}): keepalived requires one family per instance", n.raw, if known == Family::V4 { "IPv4" } else { "IPv6" }));
                false
            }
        }
    };
    for n in cx.keywords(&context, keywords::VRRP_INSTANCE, block) {
        if notify_keyword(cx, n, &mut i.notify) {
            continue;
        }
        match n.name() {
            "state" => match cx.arg(n) {
                Some("MASTER") => seen.state = Some((InitialState::Master, n.loc().clone())),
                Some("BACKUP") => {
                    if seen.state.as_ref().is_some_and(|s| s.0 == InitialState::Master) {
                        cx.err(n.loc(), format!("({name}) state was set to MASTER before: BACKUP is ignored by keepalived"));
                    } else {
                        seen.state = Some((InitialState::Backup, n.loc().clone()));
                    }
                }
                Some(other) => cx.err(n.loc(), format!("({name}) unknown state '{other}': MASTER or BACKUP (upper case, as keepalived requires)")),
                None => {}
            },
            "interface" => {
                if let Some(ifname) = cx.arg(n).map(str::to_owned) {
                    if ifname.len() >= 16 {
                        cx.err(n.loc(), format!("({name}) interface name '{ifname}' is longer than 15 characters"));
                    } else {
                        seen.interface = Some(ifname);
                    }
                }
            }
            "virtual_router_id" => {
                seen.vrid_given = true;
                seen.vrid = cx.unsigned(n, 1, 255).and_then(|v| u8::try_from(v).ok());
            }
            "priority" => {
                if let Some(p) = cx.unsigned(n, 1, 255).and_then(|v| u8::try_from(v).ok()) {
                    seen.priority = Some(p);
                }
            }
            "advert_int" => {
                if let Some(d) = cx.seconds(n, 0.01, 255.0) {
                    seen.advert_int = Some((d, n.loc().clone()));
                }
            }
            "version" => match cx.unsigned(n, 2, 3) {
                Some(v) => {
                    let v = if v == 3 { Version::V3 } else { Version::V2 };
                    let deduced_v6 = seen.family == Some(Family::V6) && v == Version::V2;
                    if seen.version.as_ref().is_some_and(|(x, _)| *x != v) || deduced_v6 {
                        cx.err(n.loc(), format!("({name}) version {} conflicts with the version given or deduced before", v.number()));
                    } else {
                        seen.version = Some((v, n.loc().clone()));
                    }
                }
                None => {}
            },
            "native_ipv6" => {
                if set_family(cx, &mut seen, n, Family::V6) {
                    seen.version = Some((Version::V3, n.loc().clone()));
                }
            }
            "mcast_src_ip" | "unicast_src_ip" => {
                let Some(text) = cx.arg(n).map(str::to_owned) else {
                    continue;
                };
                let Some(a) = cx.host_address(n, &text, n.name()) else {
                    continue;
                };
                if set_family(cx, &mut seen, n, Family::of(&a)) {
                    if n.name() == "unicast_src_ip" {
                        seen.unicast_keyword = true;
                        i.unicast_src_ip = Some(a);
                    } else {
                        i.mcast_src_ip = Some(a);
                    }
                }
            }
            "unicast_peer" => {
                seen.unicast_keyword = true;
                for p in n.block.as_deref().unwrap_or_default() {
                    let Some(a) = cx.host_address(p, p.name(), "unicast_peer") else {
                        continue;
                    };
                    if !set_family(cx, &mut seen, p, Family::of(&a)) {
                        continue;
                    }
                    let mut opts = p.args.iter().map(|t| t.text.as_str());
                    let mut ttl = (0u64, 255u64);
                    let mut ok = true;
                    while let Some(o) = opts.next() {
                        let Some(v) = opts.next() else {
                            cx.err(p.loc(), format!("({name}) unicast_peer {a}: {o} needs a value"));
                            ok = false;
                            break;
                        };
                        let Some(v) = cx.unsigned_text(p, v, 0, 255) else {
                            continue;
                        };
                        match o {
                            "min_ttl" => ttl.0 = v,
                            "max_ttl" => ttl.1 = v,
                            other => {
                                cx.err(p.loc(), format!("({name}) unknown unicast_peer option '{other}' (min_ttl, max_ttl)"));
                                ok = false;
                                break;
                            }
                        }
                    }
                    if ttl.0 > ttl.1 {
                        cx.err(p.loc(), format!("({name}) unicast_peer {a}: min_ttl {} > max_ttl {}: every advert would be discarded", ttl.0, ttl.1));
                        ok = false;
                    }
                    if ok {
                        if p.args.iter().any(|t| t.text == "min_ttl" || t.text == "max_ttl") {
                            i.peer_ttl.push((
                                a,
                                u8::try_from(ttl.0).unwrap_or(0),
                                u8::try_from(ttl.1).unwrap_or(u8::MAX),
                            ));
                        }
                        i.unicast_peers.push(a);
                    }
                }
            }
            "unicast_fault_no_peer" | "check_unicast_src" | "old_unicast_checksum" => {
                if n.name() == "check_unicast_src" {
                    i.check_unicast_src = true;
                }
                if n.name() == "unicast_fault_no_peer" {
                    i.unicast_fault_no_peer = true;
                }
                seen.unicast_keyword = true;
                if n.name() == "old_unicast_checksum"
                    && let Some(m) = n.args.first()
                    && m.text != "never"
                {
                    cx.err(n.loc(), format!("({name}) old_unicast_checksum '{}': only 'never' or nothing", m.text));
                }
            }
            "unicast_ttl" => {
                seen.unicast_ttl = true;
                i.unicast_ttl = cx.unsigned(n, 0, 255).and_then(|t| u8::try_from(t).ok());
            }
            "mcast_dst_ip" => {
                if let Some(text) = cx.arg(n).map(str::to_owned)
                    && let Some(a) = cx.host_address(n, &text, "mcast_dst_ip")
                {
                    seen.mcast_dst = true;
                    let _ = set_family(cx, &mut seen, n, Family::of(&a));
                    if !a.is_multicast() {
                        cx.err(n.loc(), format!("({name}) mcast_dst_ip {a} is not multicast"));
                    }
                }
            }
            "authentication" => {
                for a in cx.keywords(&format!("{context} authentication"), keywords::AUTHENTICATION, n.block.as_deref().unwrap_or_default()) {
                    match a.name() {
                        "auth_type" => match cx.arg(a) {
                            Some(k @ ("PASS" | "AH")) => seen.auth_type = Some((k.to_owned(), a.loc().clone())),
                            Some(k) => cx.err(a.loc(), format!("({name}) unknown auth_type '{k}': PASS or AH")),
                            None => {}
                        },
                        "auth_pass" => {
                            if let Some(p) = cx.arg(a) {
                                if p.len() > 8 {
                                    cx.err(a.loc(), format!("({name}) auth_pass is {} characters: VRRPv2 carries 8 (keepalived truncates it and refuses the config)", p.len()));
                                }
                                i.auth = Some(p.chars().take(8).collect());
                            }
                        }
                        _ => {}
                    }
                }
            }
            "virtual_ipaddress" | "virtual_ipaddress_excluded" => {
                let excluded = n.name() == "virtual_ipaddress_excluded";
                for a in n.block.as_deref().unwrap_or_default() {
                    let Some(v) = vip(cx, a) else { continue };
                    if excluded {
                        i.excluded_vips.push(v);
                    } else if set_family(cx, &mut seen, a, Family::of(&v.addr)) {
                        i.vips.push(v);
                    }
                }
            }
            // What keepalived refuses in them vrrpd runs past (leaving the route out), as it
            // did when it applied none of them.
            "virtual_routes" => {
                cx.skipping = true;
                for r in n.block.as_deref().unwrap_or_default() {
                    if let Some(route) = route(cx, r, name) {
                        i.virtual_routes.push(route);
                    }
                }
                cx.skipping = false;
            }
            "virtual_rules" => {
                cx.skipping = true;
                for r in n.block.as_deref().unwrap_or_default() {
                    if let Some(rule) = rule(cx, r, name) {
                        i.virtual_rules.push(rule);
                    }
                }
                cx.skipping = false;
            }
            "track_interface" => {
                i.track_interfaces = tracked(cx, n.block.as_deref().unwrap_or_default(), "track_interface", name);
            }
            "track_script" => {
                i.track_scripts = tracked(cx, n.block.as_deref().unwrap_or_default(), "track_script", name);
            }
            "track_file" => {
                i.track_files = tracked(cx, n.block.as_deref().unwrap_or_default(), "track_file", name);
            }
            "track_process" => {
                i.track_processes = tracked(cx, n.block.as_deref().unwrap_or_default(), "track_process", name);
            }
            "track_bfd" => {
                let _ = tracked(cx, n.block.as_deref().unwrap_or_default(), n.name(), name);
            }
            "dont_track_primary" => i.dont_track_primary = true,
            "promote_secondaries" => i.promote_secondaries = true,
            "use_vmac" => {
                // Named after the VRID once the block is read.
                let name = n.args.first().map_or_else(String::new, |t| t.text.clone());
                if name.len() > 15 || name.contains('/') || name.contains(char::is_whitespace) {
                    cx.err(n.loc(), format!("({}) use_vmac '{name}': not an interface name (at most 15 characters)", i.name));
                } else {
                    i.vmac = Some(name);
                }
            }
            "vmac_xmit_base" => i.vmac_xmit_base = true,
            "nopreempt" => i.preempt = false,
            "preempt" => i.preempt = true,
            "preempt_delay" => {
                if let Some(d) = cx.seconds(n, 0.0, 1000.0) {
                    i.preempt_delay = d;
                }
            }
            "garp_master_delay" => {
                if let Some(s) = cx.unsigned(n, 0, 4294) {
                    i.garp.master_delay = Duration::from_secs(s);
                }
            }
            "garp_master_repeat" => {
                if let Some(r) = repeat(cx, n) {
                    i.garp.master_repeat = r;
                }
            }
            "garp_master_refresh" => {
                if let Some(s) = cx.unsigned(n, 0, u64::from(u32::MAX)) {
                    i.garp.master_refresh = Duration::from_secs(s);
                }
            }
            "garp_master_refresh_repeat" => {
                if let Some(r) = repeat(cx, n) {
                    i.garp.master_refresh_repeat = r;
                }
            }
            "strict_mode" => seen.strict = cx.flag(n),
            "accept" => seen.accept = Some(true),
            "no_accept" => seen.accept = Some(false),
            "v3_checksum_as_v2" => i.checksum_as_v2 = true,
            "garp_lower_prio_delay" => {
                if let Some(d) = cx.unsigned(n, 0, 4294) {
                    seen.lower_prio_delay = Some(Duration::from_secs(d));
                }
            }
            "garp_lower_prio_repeat" => {
                if let Some(r) = cx.unsigned(n, 0, u64::from(i32::MAX.unsigned_abs())) {
                    seen.lower_prio_repeat = u32::try_from(r).ok();
                }
            }
            "down_timer_adverts" => {
                if let Some(d) = cx.unsigned(n, 1, 100) {
                    i.down_timer_adverts = u32::try_from(d).unwrap_or(3);
                }
            }
            "debug" => {
                let _ = cx.unsigned(n, 0, 4);
            }
            "kernel_rx_buf_size" => {
                if n.args.len() != 1 {
                    cx.err(n.loc(), format!("({name}) kernel_rx_buf_size takes one number"));
                } else {
                    let _ = cx.unsigned(n, 0, u64::MAX);
                }
            }
            "skip_check_adv_addr" | "lower_prio_no_advert" | "higher_prio_send_advert"
            | "smtp_alert" | "notify_priority_changes" => {
                let _ = cx.flag(n);
            }
            "notify_deleted" | "notify_master_rx_lower_pri" => {
                if !n.args.is_empty() {
                    let _ = cx.notify_script(n);
                } else if n.name() == "notify_master_rx_lower_pri" {
                    cx.err(n.loc(), "'notify_master_rx_lower_pri' needs a script");
                }
            }
            _ => {}
        }
    }
    // What keepalived derives once the block is read (vrrp.c's vrrp_complete_instance).
    i.strict = seen.strict.unwrap_or(g.vrrp_strict);
    i.accept = seen.accept.unwrap_or(!i.strict);
    // keepalived: strict mode sends no lower-priority bursts, and resets one asked for.
    for (set, what) in [
        (
            seen.lower_prio_repeat.is_some_and(|r| r != 0),
            "repeat garps",
        ),
        (
            seen.lower_prio_delay.is_some_and(|d| !d.is_zero()),
            "repeat garp delay",
        ),
    ] {
        if i.strict && set {
            cx.ignored(
                node.loc(),
                format!("({name}) Strict mode requires no {what}. resetting"),
            );
        }
    }
    if let Some(r) = seen.lower_prio_repeat {
        i.garp.lower_prio_repeat = Some(r);
    }
    if let Some(d) = seen.lower_prio_delay {
        i.garp.lower_prio_delay = Some(d);
    }
    if i.strict {
        i.garp.lower_prio_repeat = Some(0);
        i.garp.lower_prio_delay = Some(Duration::ZERO);
    }
    i.family = seen.family.unwrap_or(Family::V4);
    i.version = match (i.family, &seen.version) {
        (_, Some((v, _))) => *v,
        (Family::V6, None) => Version::V3,
        (Family::V4, None) => g.vrrp_version,
    };
    if i.family == Family::V6 && i.version == Version::V2 {
        let loc = seen
            .version
            .as_ref()
            .map_or_else(|| node.loc().clone(), |v| v.1.clone());
        if i.strict {
            cx.err(
                &loc,
                format!("({name}) IPv6 needs VRRP version 3 in strict mode"),
            );
        } else {
            cx.warn(&loc, format!("({name}) version 2 over IPv6 is keepalived's own, not a standard: vrrpd runs this instance as VRRPv3 (RFC 5798)"));
        }
        i.version = Version::V3;
    }
    // keepalived: priority from state (MASTER: 255), state from priority (255: MASTER).
    let state = seen.state.as_ref().map(|s| s.0);
    i.priority = seen
        .priority
        .unwrap_or(if state == Some(InitialState::Master) {
            crate::protocol::fsm::PRIORITY_OWNER
        } else {
            100
        });
    i.state = state.unwrap_or(if i.priority == crate::protocol::fsm::PRIORITY_OWNER {
        InitialState::Master
    } else {
        InitialState::Backup
    });
    if let Some((d, loc)) = &seen.advert_int {
        // keepalived's vrrp_complete_instance: out of range is clamped, a finer interval than
        // the version carries is rounded to the nearest; each counts an error and runs.
        let micros = d.as_micros();
        let shown = d.as_secs_f64();
        let cs = match i.version {
            Version::V2 if micros >= 256_000_000 => {
                cx.ignored(loc, format!("({name}) VRRPv2 advert_int {shown} s is out of range (less than 256 s): 255 s is used, as keepalived does"));
                25_500
            }
            Version::V2 if micros % 1_000_000 != 0 => {
                let secs = ((micros + 500_000) / 1_000_000).max(1);
                cx.ignored(loc, format!("({name}) VRRPv2 advert_int {shown} s is not whole seconds: {secs} s is used, as keepalived does (vrrp_version 3 for sub-second adverts)"));
                secs * 100
            }
            Version::V2 => micros / 10_000,
            Version::V3 if micros >= 40_960_000 => {
                cx.ignored(loc, format!("({name}) VRRPv3 advert_int {shown} s is out of range (less than 40.96 s): 40.95 s is used, as keepalived does"));
                4095
            }
            Version::V3 if micros % 10_000 != 0 => {
                let cs = ((micros + 5_000) / 10_000).max(1);
                cx.ignored(loc, format!("({name}) VRRPv3 advert_int {shown} s is not in units of 10 ms: {} s is used, as keepalived does", cs as f64 / 100.0));
                cs
            }
            Version::V3 => micros / 10_000,
        };
        i.advert_int_cs = u16::try_from(cs.max(1)).unwrap_or(100);
    }
    let mut checked = super::check::instance(
        cx,
        &mut i,
        node,
        &SeenFacts {
            vrid: seen.vrid,
            vrid_given: seen.vrid_given,
            interface: seen.interface,
            auth_type: seen.auth_type,
            unicast_keyword: seen.unicast_keyword,
            unicast_ttl: seen.unicast_ttl,
            mcast_dst: seen.mcast_dst,
            state_given: state,
        },
    );
    // keepalived's default VMAC name: vrrp.VRID.
    if let Some(i) = checked.as_mut()
        && i.vmac.as_deref() == Some("")
    {
        i.vmac = Some(format!("vrrp.{}", i.vrid));
    }
    checked
}

/// What the checks of an instance need beside the instance.
pub(super) struct SeenFacts {
    pub vrid: Option<u8>,
    pub vrid_given: bool,
    pub interface: Option<String>,
    pub auth_type: Option<(String, Loc)>,
    pub unicast_keyword: bool,
    pub unicast_ttl: bool,
    pub mcast_dst: bool,
    pub state_given: Option<InitialState>,
}

/// A virtual route line, checked as keepalived checks it; the route vrrpd applies when every
/// word of it is one vrrpd can say to the kernel (dest, type, via, dev, src, table, metric,
/// scope, onlink, no_track), else None with a warning naming the word.
fn route(cx: &mut Cx<'_>, n: &Node, owner: &str) -> Option<VirtualRoute> {
    let words: Vec<&str> = std::iter::once(n.name())
        .chain(n.args.iter().map(|t| t.text.as_str()))
        .collect();
    let with_value = [
        "src",
        "from",
        "via",
        "gw",
        "tos",
        "dsfield",
        "table",
        "protocol",
        "scope",
        "metric",
        "priority",
        "preference",
        "dev",
        "oif",
        "vrf",
        "expires",
        "mtu",
        "hoplimit",
        "advmss",
        "rtt",
        "rttvar",
        "reordering",
        "window",
        "cwnd",
        "ssthresh",
        "realms",
        "rto_min",
        "initcwnd",
        "initrwnd",
        "features",
        "quickack",
        "congctl",
        "pref",
        "ttl-propagate",
        "fastopen_no_cookie",
        "track_group",
        "to",
    ];
    let mut dest = None;
    let mut dev = false;
    let mut no_track = false;
    let mut protocol = None;
    let mut r = VirtualRoute {
        loc: n.loc().clone(),
        dest: IpAddr::from([0, 0, 0, 0]),
        prefix: 0,
        kind: RouteKind::Unicast,
        via: None,
        dev: None,
        src: None,
        table: None,
        metric: None,
        scope: None,
        onlink: false,
    };
    // The first word vrrpd cannot say to the kernel, if any.
    let mut unsupported: Option<&str> = None;
    let mut it = words.iter().copied().peekable();
    while let Some(w) = it.next() {
        match w {
            "no_track" => no_track = true,
            "onlink" => r.onlink = true,
            "add" | "inet" | "inet6" => {}
            "prepend" | "append" | "lock" => {
                unsupported.get_or_insert(w);
            }
            "nexthop" => {
                dev |= words.contains(&"dev");
                unsupported.get_or_insert(w);
                break;
            }
            w if with_value.contains(&w) => {
                let Some(v) = it.next() else {
                    cx.err(
                        n.loc(),
                        format!("({owner}) virtual_routes: '{w}' needs a value"),
                    );
                    return None;
                };
                if w == "gw" {
                    cx.err(n.loc(), format!("({owner}) virtual_routes: 'gw' is deprecated, use 'via' (keepalived's -t fails on it)"));
                }
                match w {
                    "dev" | "oif" => {
                        dev = true;
                        r.dev = Some(v.to_owned());
                    }
                    "protocol" => {
                        protocol = Some(v);
                        if v != "18" && v != "keepalived" {
                            unsupported.get_or_insert(w);
                        }
                    }
                    "to" => dest = Some(v),
                    "via" if !matches!(v, "inet" | "inet6") => match v.parse() {
                        Ok(a) => r.via = Some(a),
                        Err(_) => {
                            unsupported.get_or_insert(w);
                        }
                    },
                    "src" => match v.parse() {
                        Ok(a) => r.src = Some(a),
                        Err(_) => {
                            unsupported.get_or_insert(w);
                        }
                    },
                    "table" => match v {
                        "main" => r.table = Some(254),
                        "local" => r.table = Some(255),
                        "default" => r.table = Some(253),
                        v => match v.parse() {
                            Ok(t) => r.table = Some(t),
                            Err(_) => {
                                unsupported.get_or_insert(w);
                            }
                        },
                    },
                    "metric" | "priority" | "preference" => match v.parse() {
                        Ok(m) => r.metric = Some(m),
                        Err(_) => {
                            unsupported.get_or_insert(w);
                        }
                    },
                    "scope" => r.scope = Some(v.to_owned()),
                    // `via inet6 ADDR`, `mtu lock N`: the value is the next word.
                    "via" | "gw" if matches!(v, "inet" | "inet6") => {
                        unsupported.get_or_insert(w);
                        let _ = it.next();
                    }
                    "mtu" | "advmss" | "rtt" | "rttvar" | "reordering" | "cwnd" | "ssthresh"
                    | "rto_min" | "congctl"
                        if v == "lock" =>
                    {
                        unsupported.get_or_insert(w);
                        let _ = it.next();
                    }
                    _ => {
                        unsupported.get_or_insert(w);
                    }
                }
            }
            "blackhole" if dest.is_none() => r.kind = RouteKind::Blackhole,
            "unreachable" if dest.is_none() => r.kind = RouteKind::Unreachable,
            "prohibit" if dest.is_none() => r.kind = RouteKind::Prohibit,
            "throw" if dest.is_none() => r.kind = RouteKind::Throw,
            "unicast" if dest.is_none() => {}
            "local" | "nat" | "broadcast" | "brd" | "anycast" | "multicast" | "xresolve"
                if dest.is_none() =>
            {
                unsupported.get_or_insert(w);
            }
            other if dest.is_none() => dest = Some(other),
            other => {
                cx.err(
                    n.loc(),
                    format!("({owner}) virtual_routes: unknown route keyword '{other}'"),
                );
                return None;
            }
        }
    }
    let Some(dest) = dest else {
        cx.err(
            n.loc(),
            format!("({owner}) virtual_routes: a route needs a destination"),
        );
        return None;
    };
    let addr = dest.split('/').next().unwrap_or(dest);
    if !matches!(dest, "default" | "any" | "all" | "default6") && addr.parse::<IpAddr>().is_err() {
        cx.err(
            n.loc(),
            format!("({owner}) virtual_routes: '{dest}' is not a destination"),
        );
        return None;
    }
    if !no_track && !dev {
        cx.err(n.loc(), format!("({owner}) virtual_routes: keepalived cannot track a route with no dev (add dev IF, or no_track)"));
    }
    if !no_track && protocol.is_some_and(|p| p != "18" && p != "keepalived") {
        cx.err(n.loc(), format!("({owner}) virtual_routes: a tracked route's protocol must be keepalived (18); add no_track to keep another"));
        return None;
    }
    if let Some(w) = unsupported {
        cx.warn(
            n.loc(),
            format!("({owner}) virtual_routes: vrrpd does not apply a route with '{w}' yet: this route is left out (add it in a notify_master script)"),
        );
        return None;
    }
    let (addr, prefix) = match dest {
        "default" | "any" | "all" => {
            let v6 = r.via.is_some_and(|v| v.is_ipv6()) || r.src.is_some_and(|s| s.is_ipv6());
            let any = if v6 {
                IpAddr::from([0u16; 8])
            } else {
                IpAddr::from([0, 0, 0, 0])
            };
            (any, 0)
        }
        "default6" => (IpAddr::from([0u16; 8]), 0),
        d => {
            let (a, p) = d.split_once('/').map_or((d, None), |(a, p)| (a, Some(p)));
            let a: IpAddr = a.parse().ok()?;
            let max = if a.is_ipv4() { 32 } else { 128 };
            let p = match p {
                None => max,
                Some(p) => match p.parse::<u8>() {
                    Ok(p) if p <= max => p,
                    _ => {
                        cx.err(
                            n.loc(),
                            format!("({owner}) virtual_routes: '{d}': a bad prefix"),
                        );
                        return None;
                    }
                },
            };
            (a, p)
        }
    };
    r.dest = addr;
    r.prefix = prefix;
    Some(r)
}

/// A prefix as ip-rule writes it: `all`, `ADDR`, `ADDR/LEN`.
fn rule_prefix(v: &str) -> Option<Option<(IpAddr, u8)>> {
    if matches!(v, "all" | "any" | "default") {
        return Some(None);
    }
    let (a, p) = v.split_once('/').map_or((v, None), |(a, p)| (a, Some(p)));
    let a: IpAddr = a.parse().ok()?;
    let max = if a.is_ipv4() { 32 } else { 128 };
    let p = match p {
        None => max,
        Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max)?,
    };
    Some(Some((a, p)))
}

/// A routing table by number or by the names ip knows (main, local, default, and
/// /etc/iproute2/rt_tables).
fn table_id(v: &str) -> Option<u32> {
    match v {
        "main" => return Some(254),
        "local" => return Some(255),
        "default" => return Some(253),
        _ => {}
    }
    if let Ok(n) = v.parse() {
        return Some(n);
    }
    ["/etc/iproute2/rt_tables", "/usr/share/iproute2/rt_tables"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .find_map(|text| {
            text.lines().find_map(|l| {
                let mut w = l.split_whitespace();
                let id = w.next()?;
                (w.next()? == v).then(|| id.parse().ok()).flatten()
            })
        })
}

/// A virtual rule line, checked as keepalived checks it; what vrrpd does not apply yet leaves
/// the rule out with a warning, as for routes.
fn rule(cx: &mut Cx<'_>, n: &Node, owner: &str) -> Option<VirtualRule> {
    let words: Vec<&str> = std::iter::once(n.name())
        .chain(n.args.iter().map(|t| t.text.as_str()))
        .collect();
    let mut it = words.iter().copied();
    let mut actions = 0;
    let mut no_track = false;
    let mut protocol = None;
    let mut unsupported: Option<&str> = None;
    let mut family6 = None;
    let mut r = VirtualRule {
        loc: n.loc().clone(),
        v6: None,
        from: None,
        to: None,
        priority: 0,
        action: RuleAction::Nop,
        fwmark: None,
        iif: None,
        oif: None,
        tos: None,
    };
    let mut preference = false;
    while let Some(w) = it.next() {
        match w {
            "inet" => family6 = Some(false),
            "inet6" => family6 = Some(true),
            "type" => {}
            "not" | "l3mdev" => {
                unsupported.get_or_insert(w);
                if w == "l3mdev" {
                    actions += 1;
                }
            }
            "nop" | "blackhole" | "unreachable" | "prohibit" => {
                actions += 1;
                r.action = match w {
                    "nop" => RuleAction::Nop,
                    "blackhole" => RuleAction::Blackhole,
                    "unreachable" => RuleAction::Unreachable,
                    _ => RuleAction::Prohibit,
                };
            }
            "no_track" => no_track = true,
            "from"
            | "to"
            | "tos"
            | "dsfield"
            | "fwmark"
            | "realms"
            | "suppress_prefixlength"
            | "sup_pl"
            | "suppress_ifgroup"
            | "sup_group"
            | "dev"
            | "iif"
            | "oif"
            | "tunnel-id"
            | "uidrange"
            | "protocol"
            | "ipproto"
            | "sport"
            | "dport"
            | "track_group"
            | "table"
            | "lookup"
            | "goto"
            | "preference"
            | "order"
            | "priority" => {
                let Some(v) = it.next() else {
                    cx.err(
                        n.loc(),
                        format!("({owner}) virtual_rules: '{w}' needs a value"),
                    );
                    return None;
                };
                let bad = |cx: &mut Cx<'_>| {
                    cx.err(
                        n.loc(),
                        format!("({owner}) virtual_rules: '{w} {v}': not a value for {w}"),
                    );
                };
                match w {
                    "preference" | "order" | "priority" => {
                        preference = true;
                        match v.parse() {
                            Ok(p) => r.priority = p,
                            Err(_) => bad(cx),
                        }
                    }
                    "table" | "lookup" | "goto" => {
                        actions += 1;
                        if v == "0" {
                            cx.err(
                                n.loc(),
                                format!("({owner}) virtual_rules: table 0 is not a table"),
                            );
                        }
                        if w == "goto" {
                            match v.parse() {
                                Ok(p) => r.action = RuleAction::Goto(p),
                                Err(_) => bad(cx),
                            }
                        } else {
                            match table_id(v) {
                                Some(t) => r.action = RuleAction::Table(t),
                                None => cx.err(
                                    n.loc(),
                                    format!("({owner}) virtual_rules: unknown table '{v}' (a number, main, local, default or a name in /etc/iproute2/rt_tables)"),
                                ),
                            }
                        }
                    }
                    "from" | "to" => match rule_prefix(v) {
                        Some(p) => {
                            if w == "from" {
                                r.from = p;
                            } else {
                                r.to = p;
                            }
                        }
                        None => bad(cx),
                    },
                    "fwmark" => {
                        let num = |t: &str| {
                            t.strip_prefix("0x")
                                .map_or_else(|| t.parse().ok(), |h| u32::from_str_radix(h, 16).ok())
                        };
                        let (m, mask) = v.split_once('/').map_or((v, None), |(m, k)| (m, Some(k)));
                        match (num(m), mask.map(num)) {
                            (Some(m), None) => r.fwmark = Some((m, None)),
                            (Some(m), Some(Some(k))) => r.fwmark = Some((m, Some(k))),
                            _ => bad(cx),
                        }
                    }
                    "iif" | "dev" => r.iif = Some(v.to_owned()),
                    "oif" => r.oif = Some(v.to_owned()),
                    "tos" | "dsfield" => match v
                        .strip_prefix("0x")
                        .map_or_else(|| v.parse().ok(), |h| u8::from_str_radix(h, 16).ok())
                    {
                        Some(t) => r.tos = Some(t),
                        None => bad(cx),
                    },
                    "protocol" => protocol = Some(v),
                    "sport" | "dport" if !v.contains('-') => {
                        cx.err(n.loc(), format!("({owner}) virtual_rules: keepalived 2.2.7 takes {w} only as a range (A-B)"));
                    }
                    _ => {
                        unsupported.get_or_insert(w);
                    }
                }
            }
            other => {
                cx.err(
                    n.loc(),
                    format!("({owner}) virtual_rules: unknown rule option '{other}'"),
                );
                return None;
            }
        }
    }
    if actions == 0 {
        cx.err(n.loc(), format!("({owner}) virtual_rules: a rule needs an action (table, goto, nop, blackhole, unreachable, prohibit)"));
        return None;
    } else if actions > 1 {
        cx.err(
            n.loc(),
            format!("({owner}) virtual_rules: a rule takes one action"),
        );
        return None;
    }
    if !preference {
        cx.err(n.loc(), format!("({owner}) virtual_rules: a rule needs a preference (keepalived would pick one, which is probably not what you want)"));
        return None;
    }
    if !no_track && protocol.is_some_and(|p| p != "18" && p != "keepalived") {
        cx.err(n.loc(), format!("({owner}) virtual_rules: a tracked rule's protocol must be keepalived (18); add no_track to keep another"));
        return None;
    }
    if protocol.is_some_and(|p| p != "18" && p != "keepalived") {
        unsupported.get_or_insert("protocol");
    }
    if let RuleAction::Goto(target) = r.action
        && target <= r.priority
    {
        cx.err(n.loc(), format!("({owner}) virtual_rules: goto {target} from preference {}: the kernel only goes forward (a larger preference)", r.priority));
        return None;
    }
    let v6s = [r.from, r.to]
        .into_iter()
        .flatten()
        .map(|(a, _)| a.is_ipv6());
    let v6 = family6.or_else(|| v6s.clone().next());
    if let Some(v6) = v6
        && [r.from, r.to]
            .into_iter()
            .flatten()
            .any(|(a, _)| a.is_ipv6() != v6)
    {
        cx.err(
            n.loc(),
            format!("({owner}) virtual_rules: the rule mixes IPv4 and IPv6"),
        );
        return None;
    }
    if let Some(w) = unsupported {
        cx.warn(
            n.loc(),
            format!("({owner}) virtual_rules: vrrpd does not apply a rule with '{w}' yet: this rule is left out (add it in a notify_master script)"),
        );
        return None;
    }
    r.v6 = v6;
    Some(r)
}

fn sync_group(cx: &mut Cx<'_>, node: &Node, name: &str) -> Option<SyncGroup> {
    let mut g = SyncGroup {
        name: name.to_owned(),
        loc: node.loc().clone(),
        members: Vec::new(),
        notify: Notify::default(),
        track_scripts: Vec::new(),
        track_interfaces: Vec::new(),
        track_files: Vec::new(),
        track_processes: Vec::new(),
        tracking_weight: false,
    };
    let Some(block) = &node.block else {
        return None;
    };
    let mut group_seen = false;
    for n in cx.keywords(
        &format!("vrrp_sync_group {name}"),
        keywords::VRRP_SYNC_GROUP,
        block,
    ) {
        if notify_keyword(cx, n, &mut g.notify) {
            continue;
        }
        match n.name() {
            "group" => {
                if group_seen {
                    cx.err(
                        n.loc(),
                        format!("vrrp_sync_group {name}: group is given twice"),
                    );
                    continue;
                }
                group_seen = true;
                // keepalived reads every word of the block (one member per line or not).
                for m in n.block.as_deref().unwrap_or_default() {
                    g.members.push(m.name().to_owned());
                    g.members.extend(m.args.iter().map(|t| t.text.clone()));
                }
                if g.members.is_empty() {
                    cx.err(
                        n.loc(),
                        format!("vrrp_sync_group {name} has an empty group"),
                    );
                }
            }
            "track_script" => {
                g.track_scripts = tracked(
                    cx,
                    n.block.as_deref().unwrap_or_default(),
                    "track_script",
                    name,
                );
            }
            "track_interface" => {
                g.track_interfaces = tracked(
                    cx,
                    n.block.as_deref().unwrap_or_default(),
                    "track_interface",
                    name,
                );
            }
            "track_file" => {
                g.track_files = tracked(
                    cx,
                    n.block.as_deref().unwrap_or_default(),
                    "track_file",
                    name,
                );
            }
            "track_process" => {
                g.track_processes = tracked(
                    cx,
                    n.block.as_deref().unwrap_or_default(),
                    "track_process",
                    name,
                );
            }
            "track_bfd" => {
                let _ = tracked(cx, n.block.as_deref().unwrap_or_default(), n.name(), name);
            }
            "sync_group_tracking_weight" => g.tracking_weight = true,
            "smtp_alert" | "notify_priority_changes" => {
                let _ = cx.flag(n);
            }
            _ => {}
        }
    }
    if !group_seen {
        cx.err(
            node.loc(),
            format!("vrrp_sync_group {name} has no group {{ }} of instances"),
        );
    }
    Some(g)
}
