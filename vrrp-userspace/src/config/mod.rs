//! keepalived.conf, read unchanged: the lexer (`lex`) and a typed model of what vrrpd acts on.
//! Every error and warning carries file:line. What keepalived has and vrrpd does not do
//! (LVS, checkers, BFD, SNMP, e-mail) is parsed and skipped with one warning each, so that a
//! full keepalived.conf loads.

mod lex;

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use serde::Serialize;

pub use self::lex::{Node, Token};
use crate::wire::vrrp::{Auth, Family, Version};

/// A place in the config.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Loc {
    pub file: Arc<PathBuf>,
    pub line: u32,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

impl Serialize for Loc {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

/// One problem: `FILE:LINE: error|warning: message`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub loc: Loc,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(f, "{}: {sev}: {}", self.loc, self.message)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn error(&mut self, loc: Loc, message: String) {
        self.0.push(Diagnostic {
            severity: Severity::Error,
            loc,
            message,
        });
    }
    pub fn warning(&mut self, loc: Loc, message: String) {
        self.0.push(Diagnostic {
            severity: Severity::Warning,
            loc,
            message,
        });
    }
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|d| d.severity == Severity::Error)
    }
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| d.severity == Severity::Error)
    }
}

/// A config that failed to load: every diagnostic, errors and warnings.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.errors().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError(pub Diagnostics);

/// The effective configuration.
#[derive(Clone, Debug, PartialEq, Default, Serialize)]
pub struct Config {
    pub global: Global,
    pub scripts: BTreeMap<String, Script>,
    pub instances: Vec<Instance>,
    pub sync_groups: Vec<SyncGroup>,
}

/// keepalived's gratuitous ARP / NA timing (global `vrrp_garp_*`, per-instance `garp_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Garp {
    /// Delay before the second burst after becoming master (keepalived default 5 s).
    pub master_delay: Duration,
    /// Gratuitous ARPs per burst (default 5).
    pub master_repeat: u32,
    /// Periodic refresh while master (0: off).
    pub master_refresh: Duration,
    pub master_refresh_repeat: u32,
    /// Spacing of gratuitous ARPs / NAs within a burst (vrrp_garp_interval / vrrp_gna_interval).
    pub interval: Duration,
    pub gna_interval: Duration,
    /// After a lower-priority advert while master (keepalived's garp_lower_prio_*).
    pub lower_prio_delay: Option<Duration>,
    pub lower_prio_repeat: Option<u32>,
}

impl Default for Garp {
    fn default() -> Self {
        Self {
            master_delay: Duration::from_secs(5),
            master_repeat: 5,
            master_refresh: Duration::ZERO,
            master_refresh_repeat: 1,
            interval: Duration::ZERO,
            gna_interval: Duration::ZERO,
            lower_prio_delay: None,
            lower_prio_repeat: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Global {
    pub router_id: Option<String>,
    pub vrrp_version: Version,
    pub vrrp_strict: bool,
    pub garp: Garp,
    pub mcast_group4: Ipv4Addr,
    pub mcast_group6: Ipv6Addr,
    pub script_user: Option<(String, Option<String>)>,
    pub enable_script_security: bool,
    pub max_auto_priority: Option<i32>,
    /// keepalived's vrrp_rt_priority (SCHED_RR priority of the VRRP process).
    pub vrrp_rt_priority: Option<u32>,
    pub notify_fifo: Option<(String, Option<String>)>,
    pub vrrp_notify_fifo: Option<(String, Option<String>)>,
    pub startup_delay: Duration,
    pub checksum_as_v2: bool,
}

impl Default for Global {
    fn default() -> Self {
        Self {
            router_id: None,
            vrrp_version: Version::V2,
            vrrp_strict: false,
            garp: Garp::default(),
            mcast_group4: crate::wire::vrrp::MCAST_V4,
            mcast_group6: crate::wire::vrrp::MCAST_V6,
            script_user: None,
            enable_script_security: false,
            max_auto_priority: None,
            vrrp_rt_priority: None,
            notify_fifo: None,
            vrrp_notify_fifo: None,
            startup_delay: Duration::ZERO,
            checksum_as_v2: false,
        }
    }
}

/// `vrrp_script NAME { ... }`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Script {
    pub name: String,
    pub loc: Loc,
    /// The command line as written (keepalived splits it itself; so do we, see `track`).
    pub command: String,
    pub interval: Duration,
    pub timeout: Option<Duration>,
    pub weight: i32,
    /// `weight N reverse`: added while failing instead of while succeeding.
    pub weight_reverse: bool,
    pub rise: u32,
    pub fall: u32,
    pub user: Option<(String, Option<String>)>,
    pub init_fail: bool,
}

/// keepalived's `state`: where an instance wants to start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum InitialState {
    Master,
    Backup,
}

/// An address in `virtual_ipaddress` (keepalived's ip-addr syntax).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Vip {
    pub addr: IpAddr,
    pub prefix: u8,
    pub brd: Option<Ipv4Addr>,
    pub dev: Option<String>,
    pub scope: Option<String>,
    pub label: Option<String>,
    pub no_track: bool,
    pub loc: Loc,
}

impl Vip {
    /// The same address with the same settings (file positions do not count).
    pub fn same_as(&self, other: &Self) -> bool {
        Self {
            loc: other.loc.clone(),
            ..self.clone()
        } == *other
    }
}

/// An entry of `virtual_routes`: applied with the VIPs where its fields are ones vrrpd knows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VirtualRoute {
    pub to: String,
    pub via: Option<IpAddr>,
    pub src: Option<IpAddr>,
    pub dev: Option<String>,
    pub metric: Option<u32>,
    pub table: Option<String>,
    pub blackhole: bool,
    pub loc: Loc,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Tracked {
    pub name: String,
    /// None: the script's own weight (or, for an interface, FAULT when down).
    pub weight: Option<i32>,
    pub reverse: bool,
    pub loc: Loc,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Notify {
    pub master: Option<String>,
    pub backup: Option<String>,
    pub fault: Option<String>,
    pub stop: Option<String>,
    pub generic: Option<String>,
    pub master_rx_lower_pri: Option<String>,
}

/// `vrrp_instance NAME { ... }`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Instance {
    pub name: String,
    pub loc: Loc,
    pub state: InitialState,
    pub interface: String,
    pub vrid: u8,
    pub priority: u8,
    pub version: Version,
    pub family: Family,
    /// Centiseconds.
    pub advert_int_cs: u16,
    pub preempt: bool,
    pub preempt_delay: Duration,
    pub auth: Option<String>,
    pub vips: Vec<Vip>,
    pub excluded_vips: Vec<Vip>,
    pub routes: Vec<VirtualRoute>,
    pub unicast_src_ip: Option<IpAddr>,
    pub unicast_peers: Vec<IpAddr>,
    pub mcast_src_ip: Option<IpAddr>,
    pub track_interfaces: Vec<Tracked>,
    pub track_scripts: Vec<Tracked>,
    pub notify: Notify,
    pub garp: Garp,
    /// RFC 5798 accept mode (keepalived: `accept` / `no_accept`; default accept unless strict).
    pub accept: bool,
    pub use_vmac: Option<String>,
    pub native_ipv6: bool,
    pub dont_track_primary: bool,
    pub smtp_alert: bool,
    pub checksum_as_v2: bool,
}

impl Instance {
    /// The same instance with every file position blanked: two configs that differ only in
    /// where things are written compare equal.
    #[must_use]
    pub fn without_locs(&self) -> Self {
        let nowhere = Loc {
            file: Arc::new(PathBuf::new()),
            line: 0,
        };
        let mut c = self.clone();
        c.loc = nowhere.clone();
        for v in c.vips.iter_mut().chain(c.excluded_vips.iter_mut()) {
            v.loc = nowhere.clone();
        }
        for r in &mut c.routes {
            r.loc = nowhere.clone();
        }
        for t in c
            .track_interfaces
            .iter_mut()
            .chain(c.track_scripts.iter_mut())
        {
            t.loc = nowhere.clone();
        }
        c
    }

    /// v2 PASS authentication as it goes on the wire.
    pub fn wire_auth(&self) -> Auth {
        match (&self.auth, self.version) {
            (Some(p), Version::V2) => Auth::pass(p),
            _ => Auth::None,
        }
    }
}

/// `vrrp_sync_group NAME { group { ... } ... }`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SyncGroup {
    pub name: String,
    pub loc: Loc,
    pub members: Vec<String>,
    pub notify: Notify,
    pub track_scripts: Vec<Tracked>,
    pub track_interfaces: Vec<Tracked>,
    pub smtp_alert: bool,
}

/// Options of loading.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// keepalived's config id for `@id` lines (default: the short host name).
    pub config_id: String,
}

impl Default for LoadOptions {
    fn default() -> Self {
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default();
        Self {
            config_id: host.split('.').next().unwrap_or_default().to_owned(),
        }
    }
}

/// Loads `path` (and its includes): the config and every diagnostic. The config is usable
/// only when the diagnostics hold no error.
pub fn load(path: &Path, opts: &LoadOptions) -> (Config, Diagnostics) {
    let mut diags = Diagnostics::default();
    let mut lexer = lex::Lexer::new(&opts.config_id, &mut diags);
    lexer.read_file(path, 0);
    let tree = lexer.into_tree();
    let config = build(&tree, &mut diags);
    (config, diags)
}

/// The same from text, for tests and `--stdin`; `name` stands for the file in messages.
pub fn load_str(text: &str, name: &str, opts: &LoadOptions) -> (Config, Diagnostics) {
    let mut diags = Diagnostics::default();
    let mut lexer = lex::Lexer::new(&opts.config_id, &mut diags);
    lexer.read_str(text, &Arc::new(PathBuf::from(name)), 0);
    let tree = lexer.into_tree();
    let config = build(&tree, &mut diags);
    (config, diags)
}

/// Loads, and fails on any error.
pub fn load_checked(path: &Path, opts: &LoadOptions) -> Result<(Config, Diagnostics), ConfigError> {
    let (config, diags) = load(path, opts);
    if diags.has_errors() {
        Err(ConfigError(diags))
    } else {
        Ok((config, diags))
    }
}

// ---------------------------------------------------------------------------------------
// Keyword tables. keepalived knows hundreds of keywords; these lists name what vrrpd skips
// with a warning instead of calling them unknown (which keepalived, too, rejects).

/// Top-level blocks or statements of keepalived that vrrpd does not do.
const SKIPPED_TOP: &[&str] = &[
    "virtual_server",
    "virtual_server_group",
    "static_ipaddress",
    "static_routes",
    "static_rules",
    "bfd_instance",
    "vrrp_track_process",
    "track_process",
    "vrrp_track_file",
    "track_file",
    "linkbeat_interfaces",
    "garp_group",
    "net_namespace",
    "net_namespace_ipvs",
    "namespace_with_ipsets",
    "instance",
    "use_pid_dir",
    "child_wait_time",
    "smtp_server",
    "ipvs_process_name",
    "vrrp_process_name",
    "checker_process_name",
    "bfd_process_name",
    "no_email_faults",
    "vrrp_notify_priority_changes",
];

/// global_defs keywords vrrpd does not act on.
const SKIPPED_GLOBAL: &[&str] = &[
    "notification_email",
    "notification_email_from",
    "smtp_server",
    "smtp_helo_name",
    "smtp_connect_timeout",
    "smtp_alert",
    "smtp_alert_vrrp",
    "smtp_alert_checker",
    "email_faults",
    "no_email_faults",
    "enable_snmp_vrrp",
    "enable_snmp_keepalived",
    "enable_snmp_checker",
    "enable_snmp_rfc",
    "enable_snmp_rfcv2",
    "enable_snmp_rfcv3",
    "enable_traps",
    "snmp_socket",
    "enable_dbus",
    "dbus_service_name",
    "lvs_timeouts",
    "lvs_flush",
    "lvs_flush_on_stop",
    "lvs_sync_daemon",
    "lvs_netlink_cmd_rcv_bufs",
    "lvs_netlink_cmd_rcv_bufs_force",
    "lvs_netlink_monitor_rcv_bufs",
    "lvs_netlink_monitor_rcv_bufs_force",
    "checker_priority",
    "checker_no_swap",
    "checker_rt_priority",
    "checker_rlimit_rttime",
    "checker_cpu_affinity",
    "checker_process_name",
    "checker_log_all_failures",
    "bfd_priority",
    "bfd_no_swap",
    "bfd_rt_priority",
    "bfd_rlimit_rttime",
    "bfd_cpu_affinity",
    "bfd_process_name",
    "vrrp_priority",
    "vrrp_no_swap",
    "vrrp_rlimit_rttime",
    "vrrp_cpu_affinity",
    "vrrp_process_name",
    "vrrp_iptables",
    "vrrp_ipsets",
    "nftables",
    "nftables_priority",
    "nftables_ifindex",
    "nftables_counters",
    "vrrp_skip_check_adv_addr",
    "vrrp_check_unicast_src",
    "vrrp_lower_prio_no_advert",
    "vrrp_higher_prio_send_advert",
    "vrrp_netlink_cmd_rcv_bufs",
    "vrrp_netlink_cmd_rcv_bufs_force",
    "vrrp_netlink_monitor_rcv_bufs",
    "vrrp_netlink_monitor_rcv_bufs_force",
    "vrrp_rx_bufs_policy",
    "vrrp_rx_bufs_multiplier",
    "dynamic_interfaces",
    "no_checker_emails",
    "instance",
    "net_namespace",
    "namespace_with_ipsets",
    "use_pid_dir",
    "linkbeat_use_polling",
    "disable_local_igmp",
    "vrrp_min_garp",
    "fifo_write_vrrp_states_on_reload",
    "vrrp_owner_ignore_route_tables",
    "random_seed",
    "reload_check_config",
    "reload_time_file",
    "reload_repeat",
    "reload_file",
    "config_save_dir",
    "tmp_config_directory",
    "data_use_instance",
    "umask",
    "process_names",
    "process_name",
    "startup_script",
    "startup_script_timeout",
    "shutdown_script",
    "shutdown_script_timeout",
    "vrrp_track_process_netlink_timer",
    "vrrp_garp_lower_prio_delay",
    "vrrp_garp_lower_prio_repeat",
    "script_user_check",
    "child_wait_time",
    "notify_fifo_script",
    "vrrp_notify_fifo_script",
    "lvs_notify_fifo",
    "lvs_notify_fifo_script",
    "local_name",
    "default_interface",
    "vrrp_version_strict",
    "max_auto_priority",
];

/// vrrp_instance keywords vrrpd does not act on.
const SKIPPED_INSTANCE: &[&str] = &[
    "lvs_sync_daemon_interface",
    "vmac_xmit_base",
    "use_ipvlan",
    "track_process",
    "track_file",
    "track_bfd",
    "kernel_rx_buf_size",
    "debug",
    "skip_check_adv_addr",
    "strict_mode",
    "check_unicast_src",
    "unicast_ttl",
    "unicast_fault_no_peer",
    "virtual_rules",
    "linkbeat_use_polling",
    "notify_priority_changes",
    "garp_extra_if",
    "garp_extra_if_vmac",
    "nftables_counters",
    "no_track_vrrp_instance",
    "track_src_ip",
    "mcast_dst_ip",
    "unicast_peer_ttl",
    "vrrp_skip_check_adv_addr",
];

// ---------------------------------------------------------------------------------------

struct Cx<'a> {
    diags: &'a mut Diagnostics,
}

impl Cx<'_> {
    fn err(&mut self, loc: &Loc, msg: impl Into<String>) {
        self.diags.error(loc.clone(), msg.into());
    }
    fn warn(&mut self, loc: &Loc, msg: impl Into<String>) {
        self.diags.warning(loc.clone(), msg.into());
    }

    /// The single argument of `node`, or an error.
    fn arg<'n>(&mut self, node: &'n Node) -> Option<&'n str> {
        if let Some(t) = node.args.first() {
            Some(&t.text)
        } else {
            self.err(node.loc(), format!("'{}' needs a value", node.name()));
            None
        }
    }

    fn number<T: std::str::FromStr + PartialOrd + fmt::Display>(
        &mut self,
        node: &Node,
        min: T,
        max: T,
    ) -> Option<T> {
        let text = self.arg(node)?;
        match text.parse::<T>() {
            Ok(n) if n >= min && n <= max => Some(n),
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
                    format!("{}: '{text}' is not a number", node.name()),
                );
                None
            }
        }
    }

    fn seconds(&mut self, node: &Node, max: f64) -> Option<Duration> {
        let text = self.arg(node)?;
        match text.parse::<f64>() {
            Ok(s) if s.is_finite() && (0.0..=max).contains(&s) => Some(Duration::from_secs_f64(s)),
            Ok(_) => {
                self.err(
                    node.loc(),
                    format!("{} {text} is outside [0, {max}] seconds", node.name()),
                );
                None
            }
            Err(_) => {
                self.err(
                    node.loc(),
                    format!("{}: '{text}' is not a number of seconds", node.name()),
                );
                None
            }
        }
    }

    /// keepalived's timer range for vrrp_garp_interval and friends: (0, 4294.967295] s.
    fn positive_seconds(&mut self, node: &Node) -> Option<Duration> {
        let text = self.arg(node)?;
        match text.parse::<f64>() {
            Ok(s) if s > 0.0 && s <= 4294.967_295 => Some(Duration::from_secs_f64(s)),
            _ => {
                self.err(
                    node.loc(),
                    format!(
                        "{} '{text}' is outside (0, 4294.967295] seconds",
                        node.name()
                    ),
                );
                None
            }
        }
    }

    fn ip(&mut self, node: &Node, text: &str) -> Option<IpAddr> {
        if let Ok(a) = text.parse::<IpAddr>() {
            Some(a)
        } else {
            self.err(node.loc(), format!("'{text}' is not an IP address"));
            None
        }
    }

    fn block<'n>(&mut self, node: &'n Node) -> &'n [Node] {
        if let Some(b) = &node.block {
            b
        } else {
            self.err(node.loc(), format!("'{}' needs a {{ block }}", node.name()));
            &[]
        }
    }

    fn no_block(&mut self, node: &Node) {
        if node.block.is_some() {
            self.err(
                node.loc(),
                format!("'{}' takes no {{ block }}", node.name()),
            );
        }
    }

    fn skipped(&mut self, node: &Node, what: &str) {
        self.warn(
            node.loc(),
            format!(
                "'{}' is keepalived's {what}, which vrrpd does not do: skipped",
                node.name()
            ),
        );
    }

    fn unknown(&mut self, node: &Node, context: &str) {
        self.err(
            node.loc(),
            format!("unknown keyword '{}' in {context}", node.name()),
        );
    }

    /// `user [group]`.
    fn user(&mut self, node: &Node) -> Option<(String, Option<String>)> {
        let user = self.arg(node)?.to_owned();
        Some((user, node.args.get(1).map(|t| t.text.clone())))
    }

    /// A notify/script command: the rest of the line (quoted or not) as one string.
    fn command(&mut self, node: &Node) -> Option<String> {
        if node.args.is_empty() {
            self.err(node.loc(), format!("'{}' needs a script", node.name()));
            return None;
        }
        Some(
            node.args
                .iter()
                .map(|t| {
                    if t.quoted && node.args.len() > 1 {
                        format!("\"{}\"", t.text)
                    } else {
                        t.text.clone()
                    }
                })
                .collect::<Vec<_>>()
                .join(" "),
        )
    }
}

fn build(tree: &[Node], diags: &mut Diagnostics) -> Config {
    let mut cx = Cx { diags };
    let mut config = Config::default();
    // global_defs first: vrrp_version and friends are defaults for the instances.
    for node in tree.iter().filter(|n| n.name() == "global_defs") {
        global_defs(&mut cx, node, &mut config.global);
    }
    for node in tree {
        match node.name() {
            "global_defs" => {}
            "vrrp_script" => {
                if let Some(s) = script(&mut cx, node) {
                    if config.scripts.contains_key(&s.name) {
                        cx.err(
                            node.loc(),
                            format!("vrrp_script {} is defined twice", s.name),
                        );
                    }
                    config.scripts.insert(s.name.clone(), s);
                }
            }
            "vrrp_instance" => {
                if let Some(i) = instance(&mut cx, node, &config.global) {
                    config.instances.push(i);
                }
            }
            "vrrp_sync_group" => {
                if let Some(g) = sync_group(&mut cx, node) {
                    config.sync_groups.push(g);
                }
            }
            name if SKIPPED_TOP.contains(&name) => cx.skipped(node, "feature"),
            _ => cx.unknown(node, "the top level"),
        }
    }
    check(&mut cx, &config);
    config
}

fn global_defs(cx: &mut Cx<'_>, node: &Node, g: &mut Global) {
    for n in cx.block(node) {
        match n.name() {
            "router_id" => g.router_id = cx.arg(n).map(str::to_owned),
            "vrrp_version" => match cx.number::<u8>(n, 2, 3) {
                Some(2) => g.vrrp_version = Version::V2,
                Some(3) => g.vrrp_version = Version::V3,
                _ => {}
            },
            "vrrp_strict" => g.vrrp_strict = true,
            "vrrp_garp_master_delay" => {
                g.garp.master_delay = Duration::from_secs(cx.number::<u64>(n, 0, 255).unwrap_or(5))
            }
            "vrrp_garp_master_repeat" => g.garp.master_repeat = cx.number(n, 1, 255).unwrap_or(5),
            "vrrp_garp_master_refresh" => {
                g.garp.master_refresh =
                    Duration::from_secs(cx.number::<u64>(n, 0, u64::from(u32::MAX)).unwrap_or(0))
            }
            "vrrp_garp_master_refresh_repeat" => {
                g.garp.master_refresh_repeat = cx.number(n, 1, 255).unwrap_or(1)
            }
            "vrrp_garp_interval" => g.garp.interval = cx.positive_seconds(n).unwrap_or_default(),
            "vrrp_gna_interval" => g.garp.gna_interval = cx.positive_seconds(n).unwrap_or_default(),
            "vrrp_mcast_group4" => {
                if let Some(IpAddr::V4(a)) = cx.arg(n).map(str::to_owned).and_then(|t| cx.ip(n, &t))
                {
                    g.mcast_group4 = a;
                }
            }
            "vrrp_mcast_group6" => {
                if let Some(IpAddr::V6(a)) = cx.arg(n).map(str::to_owned).and_then(|t| cx.ip(n, &t))
                {
                    g.mcast_group6 = a;
                }
            }
            "script_user" => g.script_user = cx.user(n),
            "enable_script_security" => g.enable_script_security = true,
            "vrrp_rt_priority" => g.vrrp_rt_priority = cx.number(n, 1, 99),
            "notify_fifo" => g.notify_fifo = cx.user(n),
            "vrrp_notify_fifo" => g.vrrp_notify_fifo = cx.user(n),
            "vrrp_startup_delay" => g.startup_delay = cx.seconds(n, 3600.0).unwrap_or_default(),
            "v3_checksum_as_v2" => g.checksum_as_v2 = true,
            name if SKIPPED_GLOBAL.contains(&name) => {
                if name == "max_auto_priority" {
                    g.max_auto_priority = n
                        .args
                        .first()
                        .and_then(|t| t.text.parse().ok())
                        .or(Some(-1));
                    cx.warn(n.loc(), "max_auto_priority: vrrpd sends adverts from a real-time thread by default; the value is ignored".to_owned());
                } else {
                    cx.skipped(n, "global setting");
                }
            }
            _ => cx.unknown(n, "global_defs"),
        }
    }
}

fn script(cx: &mut Cx<'_>, node: &Node) -> Option<Script> {
    let name = cx.arg(node)?.to_owned();
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
    for n in cx.block(node) {
        match n.name() {
            "script" => s.command = cx.command(n).unwrap_or_default(),
            "interval" => s.interval = cx.seconds(n, 3600.0).unwrap_or(s.interval),
            "timeout" => s.timeout = cx.seconds(n, 3600.0),
            "weight" => {
                s.weight = cx.number(n, -253, 253).unwrap_or(0);
                s.weight_reverse = n.args.get(1).is_some_and(|t| t.text == "reverse");
            }
            "rise" => s.rise = cx.number(n, 1, u32::MAX).unwrap_or(1),
            "fall" => s.fall = cx.number(n, 1, u32::MAX).unwrap_or(1),
            "user" => s.user = cx.user(n),
            "init_fail" => s.init_fail = true,
            _ => cx.unknown(n, &format!("vrrp_script {}", s.name)),
        }
    }
    if s.command.is_empty() {
        cx.err(node.loc(), format!("vrrp_script {} has no script", s.name));
        return None;
    }
    Some(s)
}

/// keepalived's ip-addr syntax: `ADDR[/PREFIX] [brd X] [dev IF] [scope S] [label L] [no_track] ...`.
fn vip(cx: &mut Cx<'_>, n: &Node) -> Option<Vip> {
    let text = n.name();
    let (addr_text, prefix_text) = text
        .split_once('/')
        .map_or((text, None), |(a, p)| (a, Some(p)));
    let addr = cx.ip(n, addr_text)?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix_text.map(str::parse::<u8>) {
        None => max,
        Some(Ok(p)) if p <= max => p,
        Some(_) => {
            cx.err(n.loc(), format!("'{text}': bad prefix length"));
            return None;
        }
    };
    let mut v = Vip {
        addr,
        prefix,
        brd: None,
        dev: None,
        scope: None,
        label: None,
        no_track: false,
        loc: n.loc().clone(),
    };
    let mut words = n.args.iter().map(|t| t.text.as_str());
    while let Some(w) = words.next() {
        let mut value = |cx: &mut Cx<'_>| {
            let v = words.next().map(str::to_owned);
            if v.is_none() {
                cx.err(n.loc(), format!("'{w}' needs a value"));
            }
            v
        };
        match w {
            "brd" | "broadcast" => {
                v.brd = value(cx).and_then(|b| {
                    if let Ok(a) = b.parse::<Ipv4Addr>() {
                        Some(a)
                    } else {
                        cx.err(n.loc(), format!("brd '{b}' is not an IPv4 address"));
                        None
                    }
                });
            }
            "dev" => v.dev = value(cx),
            "scope" => v.scope = value(cx),
            "label" => v.label = value(cx),
            "no_track" => v.no_track = true,
            "track" | "home" | "-nodad" | "nodad" | "noprefixroute" | "autojoin" => {}
            "preferred_lft" => {
                let _ = value(cx);
            }
            other => cx.err(
                n.loc(),
                format!("unknown virtual_ipaddress option '{other}'"),
            ),
        }
    }
    Some(v)
}

fn route(cx: &mut Cx<'_>, n: &Node) -> Option<VirtualRoute> {
    let mut words: Vec<&str> = std::iter::once(n.name())
        .chain(n.args.iter().map(|t| t.text.as_str()))
        .collect();
    let mut r = VirtualRoute {
        to: String::new(),
        via: None,
        src: None,
        dev: None,
        metric: None,
        table: None,
        blackhole: false,
        loc: n.loc().clone(),
    };
    if words.first() == Some(&"blackhole") {
        r.blackhole = true;
        words.remove(0);
    }
    let mut it = words.into_iter();
    while let Some(w) = it.next() {
        match w {
            "src" => r.src = it.next().and_then(|a| cx.ip(n, a)),
            "via" | "gw" => r.via = it.next().and_then(|a| cx.ip(n, a)),
            "dev" | "oif" => r.dev = it.next().map(str::to_owned),
            "metric" | "preference" => r.metric = it.next().and_then(|m| m.parse().ok()),
            "table" => r.table = it.next().map(str::to_owned),
            "to" => r.to = it.next().unwrap_or_default().to_owned(),
            "no_track" | "onlink" => {}
            other if r.to.is_empty() => r.to = other.to_owned(),
            other => {
                cx.warn(
                    n.loc(),
                    format!("virtual_routes option '{other}' is not applied by vrrpd"),
                );
                let _ = it.next();
            }
        }
    }
    if r.to.is_empty() {
        cx.err(n.loc(), "virtual route without a destination".to_owned());
        return None;
    }
    Some(r)
}

fn tracked(cx: &mut Cx<'_>, block: &[Node], what: &str) -> Vec<Tracked> {
    let mut out = Vec::new();
    for n in block {
        let mut t = Tracked {
            name: n.name().to_owned(),
            weight: None,
            reverse: false,
            loc: n.loc().clone(),
        };
        let mut words = n.args.iter().map(|t| t.text.as_str());
        while let Some(w) = words.next() {
            match w {
                "weight" => match words.next().map(str::parse::<i32>) {
                    Some(Ok(x)) if (-254..=254).contains(&x) => t.weight = Some(x),
                    _ => cx.err(
                        n.loc(),
                        format!("{what} {}: weight needs a number in [-254, 254]", t.name),
                    ),
                },
                "reverse" => t.reverse = true,
                other => cx.err(
                    n.loc(),
                    format!("{what} {}: unknown option '{other}'", t.name),
                ),
            }
        }
        out.push(t);
    }
    out
}

fn notify_keyword(cx: &mut Cx<'_>, n: &Node, notify: &mut Notify) -> bool {
    let slot = match n.name() {
        "notify_master" => &mut notify.master,
        "notify_backup" => &mut notify.backup,
        "notify_fault" => &mut notify.fault,
        "notify_stop" => &mut notify.stop,
        "notify" => &mut notify.generic,
        "notify_master_rx_lower_pri" => &mut notify.master_rx_lower_pri,
        _ => return false,
    };
    *slot = cx.command(n);
    true
}

#[expect(
    clippy::too_many_lines,
    reason = "one arm per keepalived keyword reads best as one table"
)]
fn instance(cx: &mut Cx<'_>, node: &Node, g: &Global) -> Option<Instance> {
    let name = cx.arg(node)?.to_owned();
    let mut state = InitialState::Backup;
    let mut interface = None;
    let mut vrid = None;
    let mut priority = 100u8;
    let mut version = g.vrrp_version;
    let mut advert_int: Option<(f64, Loc)> = None;
    let mut i = Instance {
        name: name.clone(),
        loc: node.loc().clone(),
        state,
        interface: String::new(),
        vrid: 0,
        priority,
        version,
        family: Family::V4,
        advert_int_cs: 100,
        preempt: true,
        preempt_delay: Duration::ZERO,
        auth: None,
        vips: Vec::new(),
        excluded_vips: Vec::new(),
        routes: Vec::new(),
        unicast_src_ip: None,
        unicast_peers: Vec::new(),
        mcast_src_ip: None,
        track_interfaces: Vec::new(),
        track_scripts: Vec::new(),
        notify: Notify::default(),
        garp: g.garp,
        accept: !g.vrrp_strict,
        use_vmac: None,
        native_ipv6: false,
        dont_track_primary: false,
        smtp_alert: false,
        checksum_as_v2: g.checksum_as_v2,
    };
    for n in cx.block(node) {
        if notify_keyword(cx, n, &mut i.notify) {
            continue;
        }
        match n.name() {
            "state" => match cx.arg(n) {
                Some("MASTER") => state = InitialState::Master,
                Some("BACKUP") => state = InitialState::Backup,
                Some(other) => cx.err(n.loc(), format!("({name}) unknown state '{other}': MASTER or BACKUP (upper case, as keepalived requires)")),
                None => {}
            },
            "interface" => interface = cx.arg(n).map(str::to_owned),
            "virtual_router_id" => vrid = cx.number::<u8>(n, 1, 255),
            "priority" => priority = cx.number::<u8>(n, 1, 255).unwrap_or(100),
            "version" => match cx.number::<u8>(n, 2, 3) {
                Some(2) => version = Version::V2,
                Some(3) => version = Version::V3,
                _ => {}
            },
            "advert_int" => {
                if let Some(text) = cx.arg(n) {
                    match text.parse::<f64>() {
                        Ok(s) if s.is_finite() && s > 0.0 => advert_int = Some((s, n.loc().clone())),
                        _ => cx.err(n.loc(), format!("advert_int '{text}' is not a positive number of seconds")),
                    }
                }
            }
            "nopreempt" => i.preempt = false,
            "preempt" => i.preempt = true,
            "preempt_delay" => i.preempt_delay = cx.seconds(n, 1000.0).unwrap_or_default(),
            "authentication" => {
                let mut kind = None;
                for a in cx.block(n) {
                    match a.name() {
                        "auth_type" => kind = cx.arg(a).map(str::to_owned).map(|k| (k, a.loc().clone())),
                        "auth_pass" => {
                            if let Some(p) = cx.arg(a) {
                                if p.len() > 8 {
                                    cx.warn(a.loc(), format!("auth_pass is {} characters: only the first 8 are used (as keepalived does)", p.len()));
                                }
                                i.auth = Some(p.to_owned());
                            }
                        }
                        _ => cx.unknown(a, "authentication"),
                    }
                }
                match kind {
                    Some((k, _)) if k == "PASS" => {}
                    Some((k, loc)) if k == "AH" => {
                        cx.err(&loc, format!("({name}) auth_type AH is not supported by vrrpd (RFC 3768 dropped it; use PASS, or none with VRRPv3)"));
                    }
                    Some((k, loc)) => cx.err(&loc, format!("({name}) unknown auth_type '{k}': PASS or AH")),
                    None => cx.err(n.loc(), format!("({name}) authentication without auth_type")),
                }
                if i.auth.is_none() {
                    cx.err(n.loc(), format!("({name}) authentication without auth_pass"));
                }
            }
            "virtual_ipaddress" => {
                for a in cx.block(n) {
                    if let Some(v) = vip(cx, a) {
                        i.vips.push(v);
                    }
                }
            }
            "virtual_ipaddress_excluded" => {
                for a in cx.block(n) {
                    if let Some(v) = vip(cx, a) {
                        i.excluded_vips.push(v);
                    }
                }
            }
            "virtual_routes" => {
                for a in cx.block(n) {
                    if let Some(r) = route(cx, a) {
                        i.routes.push(r);
                    }
                }
            }
            "unicast_src_ip" => i.unicast_src_ip = cx.arg(n).map(str::to_owned).and_then(|t| cx.ip(n, &t)),
            "mcast_src_ip" => i.mcast_src_ip = cx.arg(n).map(str::to_owned).and_then(|t| cx.ip(n, &t)),
            "unicast_peer" => {
                for a in cx.block(n) {
                    if let Some(ip) = cx.ip(a, a.name()) {
                        i.unicast_peers.push(ip);
                    }
                }
            }
            "track_interface" => {
                let b = cx.block(n);
                i.track_interfaces = tracked(cx, b, "track_interface");
            }
            "track_script" => {
                let b = cx.block(n);
                i.track_scripts = tracked(cx, b, "track_script");
            }
            "garp_master_delay" => i.garp.master_delay = Duration::from_secs(cx.number::<u64>(n, 0, 255).unwrap_or(5)),
            "garp_master_repeat" => i.garp.master_repeat = cx.number(n, 1, 255).unwrap_or(5),
            "garp_master_refresh" => i.garp.master_refresh = Duration::from_secs(cx.number::<u64>(n, 0, u64::from(u32::MAX)).unwrap_or(0)),
            "garp_master_refresh_repeat" => i.garp.master_refresh_repeat = cx.number(n, 1, 255).unwrap_or(1),
            "garp_lower_prio_delay" => i.garp.lower_prio_delay = cx.number::<u64>(n, 0, 255).map(Duration::from_secs),
            "garp_lower_prio_repeat" => i.garp.lower_prio_repeat = cx.number(n, 1, 255),
            "accept" => i.accept = true,
            "no_accept" => i.accept = false,
            "use_vmac" => {
                i.use_vmac = Some(n.args.first().map_or_else(|| format!("vrrp.{}", vrid.unwrap_or(0)), |t| t.text.clone()));
                cx.warn(n.loc(), format!("({name}) use_vmac is not supported by vrrpd yet: the VIPs go on {} itself", interface.as_deref().unwrap_or("the interface")));
            }
            "native_ipv6" => i.native_ipv6 = true,
            "dont_track_primary" => i.dont_track_primary = true,
            "smtp_alert" => {
                i.smtp_alert = true;
                cx.warn(n.loc(), "smtp_alert: vrrpd sends no e-mail; use notify scripts".to_owned());
            }
            "v3_checksum_as_v2" => i.checksum_as_v2 = true,
            other if SKIPPED_INSTANCE.contains(&other) => cx.skipped(n, "instance setting"),
            _ => cx.unknown(n, &format!("vrrp_instance {name}")),
        }
        if !matches!(
            n.name(),
            "authentication"
                | "virtual_ipaddress"
                | "virtual_ipaddress_excluded"
                | "virtual_routes"
                | "unicast_peer"
                | "track_interface"
                | "track_script"
        ) {
            cx.no_block(n);
        }
    }
    let Some(vrid) = vrid else {
        cx.err(
            node.loc(),
            format!("({name}) virtual_router_id is required"),
        );
        return None;
    };
    let Some(interface) = interface else {
        cx.err(node.loc(), format!("({name}) interface is required"));
        return None;
    };
    // advert_int: v2 whole seconds 1..255 (RFC 3768 5.3.7); v3 centiseconds 1..4095 (RFC 5798 5.2.7).
    if let Some((secs, loc)) = advert_int {
        let cs = (secs * 100.0).round();
        match version {
            Version::V2 if secs.fract() != 0.0 => cx.err(&loc, format!("({name}) VRRPv2 advert_int {secs} must be whole seconds (use vrrp_version 3 for sub-second)")),
            Version::V2 if !(1.0..=255.0).contains(&secs) => cx.err(&loc, format!("({name}) VRRPv2 advert_int {secs} is outside [1, 255]")),
            Version::V3 if !(1.0..=4095.0).contains(&cs) => cx.err(&loc, format!("({name}) VRRPv3 advert_int {secs} is outside [0.01, 40.95]")),
            _ => {}
        }
        #[expect(
            clippy::cast_possible_truncation,
            reason = "clamped to 1..=4095 and rounded first"
        )]
        let clamped = cs.clamp(1.0, 4095.0) as i64;
        i.advert_int_cs = u16::try_from(clamped).unwrap_or(100);
    }
    if i.vips.is_empty() {
        cx.warn(
            node.loc(),
            format!("({name}) no virtual_ipaddress: the instance holds no address"),
        );
    }
    let v6 = i.native_ipv6 || i.vips.first().is_some_and(|v| v.addr.is_ipv6());
    i.family = if v6 { Family::V6 } else { Family::V4 };
    for v in &i.vips {
        if Family::of(&v.addr) != i.family {
            cx.err(&v.loc, format!("({name}) {} is not of the instance's address family ({}): keepalived requires one family per instance", v.addr, if v6 { "IPv6" } else { "IPv4" }));
        }
    }
    if v6 && version == Version::V2 {
        cx.err(node.loc(), format!("({name}) IPv6 needs VRRP version 3 (RFC 5798): add `version 3` or global `vrrp_version 3`"));
    }
    if i.auth.is_some() && version == Version::V3 {
        cx.warn(
            node.loc(),
            format!("({name}) VRRPv3 has no authentication (RFC 5798): auth_pass is ignored"),
        );
        i.auth = None;
    }
    if priority == 255 {
        cx.warn(node.loc(), format!("({name}) priority 255 claims address ownership: vrrpd checks at start that {interface} holds the VIPs"));
    }
    // keepalived clears these and counts a config error; so does vrrpd.
    if state == InitialState::Master && !i.preempt {
        cx.err(
            node.loc(),
            format!("({name}) nopreempt does not work with state MASTER: use state BACKUP"),
        );
        state = InitialState::Backup;
    }
    if state == InitialState::Master && !i.preempt_delay.is_zero() {
        cx.err(
            node.loc(),
            format!("({name}) preempt_delay does not work with state MASTER: use state BACKUP"),
        );
        i.preempt_delay = Duration::ZERO;
    }
    let own: Vec<Loc> = i
        .track_interfaces
        .iter()
        .filter(|t| t.name == interface)
        .map(|t| t.loc.clone())
        .collect();
    for loc in own {
        cx.err(&loc, format!("({name}) track_interface {interface} is the instance's own interface, which it tracks anyway"));
    }
    i.track_interfaces.retain(|t| t.name != interface);
    i.state = state;
    i.interface = interface;
    i.vrid = vrid;
    i.priority = priority;
    i.version = version;
    Some(i)
}

fn sync_group(cx: &mut Cx<'_>, node: &Node) -> Option<SyncGroup> {
    let name = cx.arg(node)?.to_owned();
    let mut g = SyncGroup {
        name: name.clone(),
        loc: node.loc().clone(),
        members: Vec::new(),
        notify: Notify::default(),
        track_scripts: Vec::new(),
        track_interfaces: Vec::new(),
        smtp_alert: false,
    };
    for n in cx.block(node) {
        if notify_keyword(cx, n, &mut g.notify) {
            continue;
        }
        match n.name() {
            "group" => g.members = cx.block(n).iter().map(|m| m.name().to_owned()).collect(),
            "track_script" => {
                let b = cx.block(n);
                g.track_scripts = tracked(cx, b, "track_script");
            }
            "track_interface" => {
                let b = cx.block(n);
                g.track_interfaces = tracked(cx, b, "track_interface");
            }
            "smtp_alert" => g.smtp_alert = true,
            "global_tracking"
            | "sync_group_tracking_weight"
            | "notify_priority_changes"
            | "track_process"
            | "track_file"
            | "track_bfd" => cx.skipped(n, "sync group setting"),
            _ => cx.unknown(n, &format!("vrrp_sync_group {name}")),
        }
    }
    if g.members.is_empty() {
        cx.err(
            node.loc(),
            format!("vrrp_sync_group {name} has no group {{ }} of instances"),
        );
    }
    Some(g)
}

/// Checks across blocks, as keepalived makes them.
fn check(cx: &mut Cx<'_>, c: &Config) {
    let mut seen: HashMap<(&str, Family, u8), &Instance> = HashMap::new();
    let mut names: HashMap<&str, &Instance> = HashMap::new();
    for i in &c.instances {
        if let Some(prev) = names.insert(&i.name, i) {
            cx.err(
                &i.loc,
                format!(
                    "vrrp_instance {} is defined twice (first at {})",
                    i.name, prev.loc
                ),
            );
        }
        // RFC 5798 5.2.3: a VRID identifies one virtual router per interface and family.
        if let Some(prev) = seen.insert((&i.interface, i.family, i.vrid), i) {
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
        for t in &i.track_scripts {
            if !c.scripts.contains_key(&t.name) {
                cx.err(
                    &t.loc,
                    format!("({}) track_script {} is not a vrrp_script", i.name, t.name),
                );
            }
        }
    }
    for g in &c.sync_groups {
        for m in &g.members {
            if !names.contains_key(m.as_str()) {
                cx.err(
                    &g.loc,
                    format!("vrrp_sync_group {}: {m} is not a vrrp_instance", g.name),
                );
            }
        }
    }
}
