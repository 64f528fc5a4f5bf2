//! keepalived.conf, read unchanged, as keepalived 2.2.7 reads it: the lexer (`lex`: comments,
//! definitions, generators, conditionals, includes, braces anywhere), the keyword tables
//! (`keywords`: every keyword keepalived knows, and what vrrpd does with it), the parser into a
//! typed model (`parse`), and the checks keepalived makes once the file is read (`check`), plus
//! those that need the host (`environment`: interfaces, scripts). Every error and warning
//! carries file:line; what vrrpd does not do is warned about once, with what it does instead.

mod check;
pub mod keywords;
mod lex;
mod lvs;
mod parse;

use std::{
    collections::BTreeMap,
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use serde::Serialize;

pub use self::lex::{Node, Token, script_words};
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

/// How bad a diagnostic is, and so how `vrrpd check` exits (keepalived's `-t` codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Loads; said once.
    Warning,
    /// keepalived's SECURITY_ERROR: the config loads, `-t` exits 6.
    Security,
    /// keepalived's FILE_NOT_FOUND / BAD_IF / FATAL when nothing else is wrong: exit 4.
    Fatal,
    /// Does not load: exit 5.
    Error,
    /// A fault keepalived reports and then runs past, where that costs nothing: in a part
    /// vrrpd reads but does not use (LVS, BFD, static routes, e-mail), or a line keepalived
    /// ignores harmlessly (an instance tracking its own interface). keepalived's `-t` exits
    /// 5 on it, so `vrrpd check` does too; `vrrpd run` runs, as keepalived does.
    Ignored,
    /// A keyword without the value it needs: keepalived stops reading there and exits 2
    /// (KEEPALIVED_EXIT_CONFIG), `-t` included.
    MissingValue,
    /// keepalived's escalated include problem (`includew` matching nothing, `includem` of a
    /// missing file): `-t` and a start both exit 6 before anything else is judged.
    NoConfig,
}

impl Severity {
    pub const fn word(self) -> &'static str {
        match self {
            Self::Warning => "warning",
            Self::Security => "security",
            Self::Fatal | Self::Error | Self::NoConfig | Self::MissingValue => "error",
            Self::Ignored => "error (ignored)",
        }
    }
}

/// One problem: `FILE:LINE: error|warning|security: message`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub loc: Loc,
    pub message: String,
    /// An include that read nothing (no file matched, or none could be read) without being
    /// an error: keepalived goes on, and so does a start, but a reload refuses it (a missing
    /// directory must not silently drop the instances it held).
    pub include_read_nothing: bool,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: {}",
            self.loc,
            self.severity.word(),
            self.message
        )
    }
}

/// keepalived's `-t` exit codes (lib/scheduler.h): what `vrrpd check` and `vrrpd run -t` exit
/// with.
pub mod exit {
    pub const OK: u8 = 0;
    /// A missing file, interface or a fatal problem, and nothing else.
    pub const FATAL: u8 = 4;
    /// Any other config error.
    pub const CONFIG: u8 = 5;
    /// A security problem (scripts without enable_script_security), and nothing worse.
    pub const SECURITY: u8 = 6;
    /// An escalated include problem (keepalived's KEEPALIVED_EXIT_NO_CONFIG, which happens to
    /// be the same number as SECURITY).
    pub const NO_CONFIG: u8 = 6;
    /// A keyword without its value: keepalived exits at once with KEEPALIVED_EXIT_CONFIG.
    pub const MISSING_VALUE: u8 = 2;
    /// `vrrpd run` refusing a config (keepalived's KEEPALIVED_EXIT_CONFIG).
    pub const RUN_CONFIG: u8 = 2;
    /// `vrrpd run` with no config to read (KEEPALIVED_EXIT_NO_CONFIG).
    pub const RUN_NO_CONFIG: u8 = 6;
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, severity: Severity, loc: Loc, message: String) {
        self.0.push(Diagnostic {
            severity,
            loc,
            message,
            include_read_nothing: false,
        });
    }
    pub fn error(&mut self, loc: Loc, message: String) {
        self.push(Severity::Error, loc, message);
    }
    pub fn warning(&mut self, loc: Loc, message: String) {
        self.push(Severity::Warning, loc, message);
    }
    /// A warning about an include that read nothing (see `Diagnostic::include_read_nothing`).
    pub fn include_read_nothing(&mut self, loc: Loc, message: String) {
        self.0.push(Diagnostic {
            severity: Severity::Warning,
            loc,
            message,
            include_read_nothing: true,
        });
    }
    /// Errors that keep the config from loading (a security notice does not).
    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| {
            matches!(
                d.severity,
                Severity::Error | Severity::Fatal | Severity::NoConfig | Severity::MissingValue
            )
        })
    }
    /// keepalived's `-t` exit code for these diagnostics: it keeps the least severe of the
    /// errors it met (a security error outranks every other), so a missing interface with its
    /// general error exits 5, not 4.
    pub fn exit_code(&self) -> u8 {
        let has = |s| self.0.iter().any(|d| d.severity == s);
        if has(Severity::MissingValue) {
            exit::MISSING_VALUE
        } else if has(Severity::NoConfig) {
            exit::NO_CONFIG
        } else if has(Severity::Security) {
            exit::SECURITY
        } else if has(Severity::Error) || has(Severity::Ignored) {
            exit::CONFIG
        } else if has(Severity::Fatal) {
            exit::FATAL
        } else {
            exit::OK
        }
    }
}

/// A config that failed to load: every diagnostic, errors and warnings.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.errors().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError(pub Diagnostics);

/// The effective configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Config {
    pub global: Global,
    pub scripts: BTreeMap<String, Script>,
    /// `track_file` blocks (keepalived's old name: `vrrp_track_file`), by name.
    pub track_files: BTreeMap<String, TrackFile>,
    /// `vrrp_track_process` blocks, by name.
    pub track_processes: BTreeMap<String, TrackProcess>,
    /// Shared with the daemon's resolved instances (`Spec`), which hold the same ones.
    pub instances: Vec<std::sync::Arc<Instance>>,
    pub sync_groups: Vec<SyncGroup>,
    /// The keywords the config uses, by what vrrpd does with them (for `vrrpd check --dump`).
    pub keywords: KeywordUse,
    /// The scripts of keepalived's checker (MISC_CHECK misc_path, a real server's notify_up /
    /// notify_down, quorum_up / quorum_down): vrrpd runs none, but keepalived's script
    /// security judges them, so `vrrpd check` does.
    pub checker_scripts: Vec<String>,
}

/// Which keywords a config uses, by disposition (`context/keyword`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct KeywordUse {
    pub acted_on: std::collections::BTreeSet<String>,
    pub warned: std::collections::BTreeSet<String>,
    pub skipped: std::collections::BTreeSet<String>,
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
    /// A master that hears a lower-priority master answers with an advert and a burst of
    /// this many (0: none), and another burst `lower_prio_delay` later (0: none). Unset, an
    /// instance takes the global `vrrp_garp_lower_prio_*`, and those `vrrp_garp_master_*`;
    /// strict mode turns them off. Read them with [`Garp::lower_prio`].
    pub lower_prio_repeat: Option<u32>,
    pub lower_prio_delay: Option<Duration>,
}

impl Garp {
    /// The burst on re-asserting over a lower-priority master: (repeat, delay of the second).
    pub fn lower_prio(&self) -> (u32, Duration) {
        (
            self.lower_prio_repeat.unwrap_or(self.master_repeat),
            self.lower_prio_delay.unwrap_or(self.master_delay),
        )
    }

    /// What an instance starts from: the global settings, with the lower-priority burst
    /// resolved against the global `vrrp_garp_master_*` (keepalived's vrrp_complete_init).
    pub fn for_instance(self) -> Self {
        let (repeat, delay) = self.lower_prio();
        Self {
            lower_prio_repeat: Some(repeat),
            lower_prio_delay: Some(delay),
            ..self
        }
    }
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
            lower_prio_repeat: None,
            lower_prio_delay: None,
        }
    }
}

/// A user to run scripts as, and optionally a group.
pub type RunUser = (String, Option<String>);

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Global {
    pub router_id: Option<String>,
    pub vrrp_version: Version,
    /// keepalived's strict mode: vrrpd checks what keepalived checks in it (and warns that
    /// it applies none of it yet).
    pub vrrp_strict: bool,
    /// `vrrp_rt_priority`: the advert thread's SCHED_FIFO priority (1..=99; vrrpd's default
    /// 50, keepalived's: none unless set).
    pub rt_priority: Option<u8>,
    /// `vrrp_startup_delay`: how long the instances wait after the start (a host whose
    /// network comes up after the daemon).
    pub startup_delay: Option<Duration>,
    pub garp: Garp,
    pub mcast_group4: Ipv4Addr,
    pub mcast_group6: Ipv6Addr,
    pub script_user: Option<RunUser>,
    /// Where script_user is set, for its check against the host.
    pub script_user_loc: Option<Loc>,
    pub enable_script_security: bool,
    /// `notify_fifo PATH [USER [GROUP]]`.
    pub notify_fifo: Option<(String, Option<RunUser>)>,
    pub vrrp_notify_fifo: Option<(String, Option<RunUser>)>,
    pub checksum_as_v2: bool,
    /// `vrrp_check_unicast_src`: every unicast instance checks its sources.
    pub check_unicast_src: bool,
    /// `vrrp_down_timer_adverts`: adverts a backup misses before the master is down (3).
    pub down_timer_adverts: u32,
}

impl Default for Global {
    fn default() -> Self {
        Self {
            router_id: None,
            vrrp_version: Version::V2,
            vrrp_strict: false,
            rt_priority: None,
            startup_delay: None,
            garp: Garp::default(),
            mcast_group4: crate::wire::vrrp::MCAST_V4,
            mcast_group6: crate::wire::vrrp::MCAST_V6,
            script_user: None,
            script_user_loc: None,
            enable_script_security: false,
            notify_fifo: None,
            vrrp_notify_fifo: None,
            checksum_as_v2: false,
            check_unicast_src: false,
            down_timer_adverts: 3,
        }
    }
}

/// `vrrp_script NAME { ... }`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Script {
    pub name: String,
    pub loc: Loc,
    /// The command as keepalived takes it: the first word of the `script` line (quote a
    /// command with arguments), split into argv when it runs.
    pub command: String,
    pub interval: Duration,
    pub timeout: Option<Duration>,
    pub weight: i32,
    /// `weight N reverse`: added while failing instead of while succeeding.
    pub weight_reverse: bool,
    pub rise: u32,
    pub fall: u32,
    pub user: Option<RunUser>,
    pub init_fail: bool,
}

/// `track_file NAME { file PATH; weight N [reverse]; init_file [VALUE] [overwrite] }`: the
/// number in a file, times the weight, added to the priority (keepalived's track_file.c).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TrackFile {
    pub name: String,
    pub loc: Loc,
    pub path: PathBuf,
    /// Default 1, within -254..=254; 0: FAULT while the number is not 0.
    pub weight: i32,
    pub reverse: bool,
    /// `init_file`: the value written at start when the file is missing (or always, with
    /// `overwrite`).
    pub init: Option<InitFile>,
}

/// `vrrp_track_process NAME { process NAME [ARGS...]; ... }`: up while at least `quorum`
/// (and at most `quorum_max`) processes match.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrackProcess {
    pub name: String,
    pub loc: Loc,
    /// The process: its name (/proc/PID/comm, 15 characters), or its path (argv[0]) with
    /// `full_command` or when it holds a '/'.
    pub process: String,
    pub params: Vec<String>,
    pub param_match: ParamMatch,
    pub full_command: bool,
    /// 0 (the default): FAULT while down.
    pub weight: i32,
    pub reverse: bool,
    pub quorum: u32,
    /// 0: no maximum.
    pub quorum_max: u32,
    /// How long a new process must live before it counts, and a gone one stays counted.
    pub fork_delay: Duration,
    pub terminate_delay: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ParamMatch {
    /// The arguments are exactly `params`.
    Exact,
    /// They start with `params`.
    Initial,
    /// `params` appear in them, in order, one after another.
    Partial,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct InitFile {
    pub value: i64,
    pub overwrite: bool,
}

/// One line of `virtual_rules`, as vrrpd applies it: a policy routing rule added (marked
/// protocol keepalived, 18) while the instance is master, removed when it stops being one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VirtualRule {
    pub loc: Loc,
    /// IPv6 (`inet6`, or v6 addresses); None: the instance's family.
    pub v6: Option<bool>,
    pub from: Option<(IpAddr, u8)>,
    pub to: Option<(IpAddr, u8)>,
    pub priority: u32,
    pub action: RuleAction,
    /// `fwmark MARK[/MASK]`.
    pub fwmark: Option<(u32, Option<u32>)>,
    pub iif: Option<String>,
    pub oif: Option<String>,
    pub tos: Option<u8>,
}

impl VirtualRule {
    /// Whether the rule is IPv6, for an instance of `family`.
    #[must_use]
    pub fn is_v6(&self, family: crate::wire::vrrp::Family) -> bool {
        self.v6.unwrap_or(family == crate::wire::vrrp::Family::V6)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum RuleAction {
    Table(u32),
    /// To the rule with this preference.
    Goto(u32),
    Nop,
    Blackhole,
    Unreachable,
    Prohibit,
}

/// One line of `virtual_routes`, as vrrpd applies it: added (marked protocol keepalived, 18)
/// while the instance is master, removed when it stops being one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VirtualRoute {
    pub loc: Loc,
    pub dest: IpAddr,
    pub prefix: u8,
    pub kind: RouteKind,
    pub via: Option<IpAddr>,
    pub dev: Option<String>,
    pub src: Option<IpAddr>,
    pub table: Option<u32>,
    pub metric: Option<u32>,
    pub scope: Option<String>,
    pub onlink: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum RouteKind {
    Unicast,
    Blackhole,
    Unreachable,
    Prohibit,
    Throw,
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

/// A tracked script or interface of an instance or sync group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Tracked {
    pub name: String,
    /// None: the script's own weight (or, for an interface, FAULT when down).
    pub weight: Option<i32>,
    pub reverse: bool,
    pub loc: Loc,
}

/// A notify script: keepalived's first word is the command (quoted when it has arguments),
/// the second and third the user and group it runs as.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NotifyScript {
    pub command: String,
    pub user: Option<RunUser>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Notify {
    pub master: Option<NotifyScript>,
    pub backup: Option<NotifyScript>,
    pub fault: Option<NotifyScript>,
    pub stop: Option<NotifyScript>,
    pub generic: Option<NotifyScript>,
    /// Run as given when a master hears a lower priority (keepalived's
    /// `notify_master_rx_lower_pri`, for clouds where a notify_master elsewhere took the
    /// addresses away).
    pub master_rx_lower_pri: Option<NotifyScript>,
}

impl Notify {
    /// The scripts that are set.
    pub fn scripts(&self) -> impl Iterator<Item = &NotifyScript> {
        [
            &self.master,
            &self.backup,
            &self.fault,
            &self.stop,
            &self.generic,
            &self.master_rx_lower_pri,
        ]
        .into_iter()
        .flatten()
    }
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
    pub unicast_src_ip: Option<IpAddr>,
    pub unicast_peers: Vec<IpAddr>,
    /// `unicast_peer { ADDR min_ttl A max_ttl B }`: the TTL range a peer's adverts must have,
    /// for the peers that give one (keepalived checks a unicast advert's TTL only then).
    pub peer_ttl: Vec<(IpAddr, u8, u8)>,
    /// `down_timer_adverts` (else the global one): Master_Down_Interval is this many
    /// Master_Adver_Intervals plus Skew_Time (RFC 5798: 3).
    pub down_timer_adverts: u32,
    /// keepalived's `check_unicast_src`: unicast adverts only from the peers, and within their
    /// min_ttl / max_ttl.
    pub check_unicast_src: bool,
    /// `unicast_fault_no_peer`: with no unicast peer the instance stays in FAULT instead of
    /// falling back to multicast (keepalived 2.2.7).
    pub unicast_fault_no_peer: bool,
    pub mcast_src_ip: Option<IpAddr>,
    pub track_interfaces: Vec<Tracked>,
    pub track_scripts: Vec<Tracked>,
    pub track_files: Vec<Tracked>,
    pub track_processes: Vec<Tracked>,
    pub notify: Notify,
    pub garp: Garp,
    pub dont_track_primary: bool,
    pub checksum_as_v2: bool,
    /// keepalived's strict mode for this instance (`strict_mode`, else `vrrp_strict`): checked,
    /// not applied yet.
    pub strict: bool,
    /// `unicast_ttl`: the TTL (hop limit) of unicast adverts (255 by default).
    pub unicast_ttl: Option<u8>,
    /// Whether traffic to the VIPs is taken while master (`accept`, the default; `no_accept`,
    /// or strict mode without `accept`: dropped by nftables, RFC 5798's Accept_Mode false).
    pub accept: bool,
    /// `virtual_routes`: the routes that come and go with mastership.
    pub virtual_routes: Vec<VirtualRoute>,
    /// `virtual_rules`: the policy routing rules that come and go with mastership.
    pub virtual_rules: Vec<VirtualRule>,
    /// `use_vmac [NAME]`: the virtual MAC interface (a macvlan on `interface` carrying
    /// 00:00:5e:00:01:VRID) the VIPs go on and the adverts leave from; its name.
    pub vmac: Option<String>,
    /// `vmac_xmit_base`: adverts leave from the base interface, the VIPs stay on the VMAC.
    pub vmac_xmit_base: bool,
    /// `promote_secondaries`: net.ipv4.conf.IF.promote_secondaries is set while the instance
    /// runs, so that removing the interface's primary address keeps the VIPs of its subnet.
    pub promote_secondaries: bool,
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
        for r in &mut c.virtual_routes {
            r.loc = nowhere.clone();
        }
        for r in &mut c.virtual_rules {
            r.loc = nowhere.clone();
        }
        for t in c
            .track_interfaces
            .iter_mut()
            .chain(c.track_scripts.iter_mut())
            .chain(c.track_files.iter_mut())
            .chain(c.track_processes.iter_mut())
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
    pub track_files: Vec<Tracked>,
    pub track_processes: Vec<Tracked>,
    /// keepalived's `sync_group_tracking_weight`: weights of the members' tracking apply
    /// (without it keepalived refuses weighted tracking in a group's members).
    pub tracking_weight: bool,
}

/// Options of loading.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// keepalived's config id for `@id` lines and `${_INSTANCE}` (default: the short host
    /// name).
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
/// only when the diagnostics hold no error. Pure but for reading the files: what depends on
/// the host (interfaces, scripts) is `environment`'s.
pub fn load(path: &Path, opts: &LoadOptions) -> (Config, Diagnostics) {
    let mut diags = Diagnostics::default();
    let mut lexer = lex::Lexer::new(&opts.config_id, &mut diags);
    lexer.read_file(path, 0);
    let tree = lexer.into_tree();
    let config = parse::build(&tree, &mut diags);
    (config, diags)
}

/// The same from text, for tests and fuzzing; `name` stands for the file in messages.
pub fn load_str(text: &str, name: &str, opts: &LoadOptions) -> (Config, Diagnostics) {
    let mut diags = Diagnostics::default();
    let mut lexer = lex::Lexer::new(&opts.config_id, &mut diags);
    lexer.read_str(text, &Arc::new(PathBuf::from(name)), 0);
    let tree = lexer.into_tree();
    let config = parse::build(&tree, &mut diags);
    (config, diags)
}

/// Loads and checks against this host, and fails on any error.
pub fn load_checked(path: &Path, opts: &LoadOptions) -> Result<(Config, Diagnostics), ConfigError> {
    let (config, mut diags) = load(path, opts);
    if !diags.has_errors() {
        environment(&config, &Host, &mut diags);
    }
    if diags.has_errors() {
        Err(ConfigError(diags))
    } else {
        Ok((config, diags))
    }
}

/// What the host says about the names a config uses.
pub trait Environment {
    /// Whether the interface exists here, and is not loopback: None, or why not.
    fn interface_problem(&self, name: &str) -> Option<&'static str>;
    /// A script's program as found here.
    fn program(&self, path: &str) -> Program;
    /// Whether scripts can run as `user` (and `group`) here.
    fn user_exists(&self, user: &str, group: Option<&str>) -> bool;
}

/// A script's program on this host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Program {
    Missing,
    /// A file, but not executable by root.
    NotExecutable,
    /// It can run; `Some(why)` when a non-root user could change it.
    Runnable {
        insecure: Option<String>,
    },
}

/// The host this process runs on (in its network namespace).
pub struct Host;

impl Environment for Host {
    fn interface_problem(&self, name: &str) -> Option<&'static str> {
        match nix::net::if_::if_nametoindex(name) {
            Err(_) => Some("does not exist"),
            Ok(_)
                if std::path::Path::new(&format!("/sys/class/net/{name}/type")).exists()
                    && std::fs::read_to_string(format!("/sys/class/net/{name}/type"))
                        .is_ok_and(|t| t.trim_ascii() == "772") =>
            {
                Some("is a loopback interface")
            }
            Ok(_) => None,
        }
    }

    fn user_exists(&self, user: &str, group: Option<&str>) -> bool {
        nix::unistd::User::from_name(user).ok().flatten().is_some()
            && group.is_none_or(|g| nix::unistd::Group::from_name(g).ok().flatten().is_some())
    }

    fn program(&self, path: &str) -> Program {
        use std::os::unix::fs::PermissionsExt as _;
        let Some(found) = crate::sys::scripts::resolve_program(path) else {
            return Program::Missing;
        };
        match std::fs::metadata(&found) {
            Err(_) => Program::Missing,
            Ok(m) if !m.is_file() || m.permissions().mode() & 0o111 == 0 => Program::NotExecutable,
            Ok(_) => Program::Runnable {
                insecure: crate::sys::scripts::insecure_script(&found.display().to_string()),
            },
        }
    }
}

/// The checks keepalived's `-t` makes against the host: every interface an instance names
/// exists (and is not loopback); every vrrp_script's program exists; and scripts that run as
/// root without `enable_script_security` are a security notice (keepalived exits 6).
pub fn environment(config: &Config, env: &dyn Environment, diags: &mut Diagnostics) {
    check::environment(config, env, diags);
}
