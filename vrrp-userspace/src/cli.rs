use std::{io::Write as _, process::ExitCode};

use anyhow::Context as _;
use clap::{Args, CommandFactory as _, Parser, Subcommand};
use tokio::signal::unix::{SignalKind, signal};
use vrrp::{
    datapath::{AttachMode, Datapath, ModePreference},
    northbound::{
        control,
        status::{Diagnosis, DropProbe, Status},
    },
    protocol::router::TrackedKind,
    sys::{advert_thread::Scheduling, clock},
    wire::record::WireRecord,
};
use vrrp_common::{AF_INET, AF_INET6, WatchKey};

use crate::{pcap, watch::Watcher};

// Every subcommand's stdout goes through these: a reader that went away (`vrrpd watch | head`)
// ends the command quietly, as it ends any Unix tool, where std's would panic with a backtrace.
macro_rules! println {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            $crate::cli::stdout_failed(&e);
        }
    }};
}
macro_rules! print {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = write!(std::io::stdout(), $($arg)*) {
            $crate::cli::stdout_failed(&e);
        }
    }};
}

/// stdout failed: quietly when its reader is gone, with the error otherwise.
pub fn stdout_failed(e: &std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("vrrpd: cannot write to stdout: {e}");
    std::process::exit(1)
}

/// vrrpd: VRRP (RFC 5798 / RFC 3768) for keepalived users, with an XDP data plane that sees
/// every advert on the wire, before any firewall.
#[derive(Debug, Parser)]
#[command(name = "vrrpd", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log filter (tracing's EnvFilter syntax); RUST_LOG overrides it.
    #[arg(long, global = true, default_value = "info")]
    pub log: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: the VRRP instances of a keepalived.conf. keepalived's daemon flags are
    /// accepted, so that its KEEPALIVED_OPTIONS line works unchanged: -f, -p/-r, -t, -v, -D,
    /// -i and --signum act as keepalived's; those that mean nothing to vrrpd (it never
    /// forks, logs to stderr or the journal, runs VRRP only) are warned about once.
    Run(RunArgs),
    /// The tcpdump replacement. Against the running daemon (no -i): a live table per interface,
    /// VRID and source (last advert, interval mean and jitter, priority, version, auth,
    /// delivered-to-socket ratio, drops) with the current findings; `--adverts` prints every
    /// advert instead. With -i IFACE: standalone, one line per advert seen by its own XDP program.
    Watch(WatchArgs),
    /// The running daemon's instances: state, priorities (base, effective, why), VIPs, master,
    /// timers, counters.
    Status(StatusArgs),
    /// What the running daemon finds wrong, one sentence per problem with the rule that fixes
    /// it: adverts on the wire that netfilter eats, peers that disagree, two masters.
    Diagnose(StatusArgs),
    /// Write what XDP sees to a pcapng file for Wireshark and tshark: kernel time stamps as
    /// wall time, one interface block per interface, the XDP verdict as each packet's comment
    /// (`--format pcap` for the classic format).
    Capture(CaptureArgs),
    /// Parse and validate a keepalived.conf as `keepalived -t` does: every problem as
    /// FILE:LINE: SEVERITY: message, and keepalived's -t exit code (0, 2, 4, 5 or 6).
    Check(CheckArgs),
    /// Re-read the running daemon's config (as SIGHUP) and print the outcome: applied, with
    /// its warnings, or refused with its errors (the running config then stays; exit 2).
    Reload(ControlArgs),
    /// Change one running instance until vrrpd stops (a reload keeps the change, a restart
    /// forgets it; the config file is never written): `vrrpd set VI_1 maintenance on`,
    /// `vrrpd set VI_1 priority 50`, `vrrpd set VI_1 priority config`. Root only; logged.
    Set(SetArgs),
    /// Remove what a vrrpd that died without its stop (kill -9, the OOM killer) left behind:
    /// the config's VIPs (only those vrrpd or keepalived added), virtual routes and rules,
    /// VMACs, and vrrpd's nftables table. The unit's ExecStopPost=; idempotent. Refused while
    /// a daemon answers on the control socket.
    Cleanup(CleanupArgs),
    /// systemd integration. `--as-keepalived`: keepalived.service becomes an alias of
    /// vrrpd.service (a symlink in /etc/systemd/system), so that scripts and runbooks that run
    /// `systemctl stop|restart keepalived` act on vrrpd; `--remove` takes the alias away.
    Install(InstallArgs),
    /// Print a shell completion script: bash, zsh, fish, elvish or powershell.
    Completions { shell: clap_complete::Shell },
    /// For packaging: write the man pages (section 8) into DIR.
    #[command(hide = true)]
    Manpages { dir: std::path::PathBuf },
    /// For `cargo xtask bench`: the XDP program's cost per packet against an empty program
    /// (BPF_PROG_TEST_RUN), as JSON.
    #[command(hide = true)]
    BenchXdp {
        #[arg(long, default_value_t = 1_000_000)]
        repeat: u32,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The config file (keepalived's -f).
    #[arg(
        short = 'f',
        long = "use-file",
        default_value = "/etc/keepalived/keepalived.conf"
    )]
    pub file: std::path::PathBuf,
    /// Write the daemon's pid here (keepalived's -p / --pid; default vrrpd.pid beside the
    /// control socket).
    #[arg(short = 'p', long = "pid")]
    pub pid: Option<std::path::PathBuf>,
    /// keepalived's -r / --vrrp_pid (its VRRP process's pid file): the pid file, when -p is
    /// not given.
    #[arg(short = 'r', long = "vrrp_pid", value_name = "FILE")]
    pub vrrp_pid: Option<std::path::PathBuf>,
    /// keepalived's -v: print the version and exit.
    #[arg(short = 'v', long = "version")]
    pub version: bool,
    /// keepalived's -C / --check (the checkers only): vrrpd has no checkers, so it refuses.
    #[arg(short = 'C', long = "check")]
    pub check_only: bool,
    /// keepalived's -s / --namespace: refused with how to do it (`ip netns exec NAME vrrpd
    /// run ...`).
    #[arg(short = 's', long = "namespace", value_name = "NAME")]
    pub namespace: Option<String>,
    /// keepalived's flags that mean nothing to vrrpd: accepted and warned about once.
    #[command(flatten)]
    pub ignored: IgnoredFlags,
    /// keepalived's -P (--vrrp, "VRRP only"): what vrrpd always is. Given a path, it is taken
    /// as the pid file, so that `-P FILE` works too.
    #[arg(short = 'P', long = "vrrp", num_args = 0..=1, value_name = "PID_FILE")]
    pub vrrp: Option<Option<std::path::PathBuf>>,
    /// keepalived's config id for `@id` lines (default: the short host name).
    #[arg(short = 'i', long = "config-id")]
    pub config_id: Option<String>,
    /// keepalived's -t: test the config and exit (0 fine, 4 a missing file or interface, 5
    /// config errors, 6 a script-security problem), as `vrrpd check` does. keepalived's
    /// optional log file (`-tFILE`, `--config-test=FILE`) is accepted; the result goes to
    /// stderr.
    #[arg(
        short = 't',
        long = "config-test",
        num_args = 0..=1,
        value_name = "LOG_FILE"
    )]
    pub config_test: Option<Option<std::path::PathBuf>>,
    /// Accepted for keepalived compatibility: vrrpd never forks.
    #[arg(short = 'n', long = "dont-fork")]
    pub dont_fork: bool,
    /// Accepted for keepalived compatibility: vrrpd logs to stderr (the journal under systemd).
    #[arg(short = 'l', long = "log-console")]
    pub log_console: bool,
    /// keepalived's --log-detail: debug logging (as --log debug).
    #[arg(short = 'D', long = "log-detail")]
    pub log_detail: bool,
    /// The control socket for `vrrpd status` and `vrrpd diagnose` (default: /run/vrrpd, or
    /// /run/vrrpd/NS in the named network namespace NS).
    #[arg(long = "control", default_value_os_t = control::default_socket())]
    pub control: std::path::PathBuf,
    /// Serve Prometheus metrics on this address, e.g. 127.0.0.1:9650 (path /metrics).
    #[arg(long = "metrics")]
    pub metrics: Option<std::net::SocketAddr>,
    /// What the elections hear: `wire` (XDP, before netfilter: a firewall that eats adverts
    /// cannot make a second master) or `socket` (after netfilter, keepalived's behaviour).
    #[arg(long = "elections", value_enum, default_value_t = vrrp::daemon::Elections::Wire)]
    pub elections: vrrp::daemon::Elections,
    /// Where SIGUSR1 writes vrrpd's status as JSON (beside keepalived.data in --dump-dir).
    #[arg(long = "dump-file", default_value_os_t = vrrp::sys::netns::run_dir().join("vrrpd.data"))]
    pub dump_file: std::path::PathBuf,
    /// Where keepalived's files go: keepalived.data (SIGUSR1), keepalived.stats (SIGUSR2;
    /// SIGRTMAX-1 also clears the counters) and keepalived.json (SIGRTMIN+2). keepalived
    /// writes them to /tmp: `--dump-dir /tmp` for tools that look there (keepalived-exporter).
    #[arg(long = "dump-dir", default_value_os_t = vrrp::sys::netns::run_dir())]
    pub dump_dir: std::path::PathBuf,
    /// keepalived's --signum: print the signal number of a function (STOP, RELOAD, DATA,
    /// STATS, STATS_CLEAR, JSON) and exit.
    #[arg(long = "signum", value_name = "FUNCTION")]
    pub signum: Option<String>,
    /// Send periodic adverts from an ordinary thread instead of a SCHED_FIFO one (for
    /// benchmarks, or hosts where real-time threads are not wanted).
    #[arg(long = "no-realtime")]
    pub no_realtime: bool,
    /// XDP mode: `auto` (native on physical NICs, generic on veth and other virtual devices),
    /// `native` or `generic`.
    #[arg(long = "xdp-mode", value_enum, default_value_t = ModePreference::Auto)]
    pub xdp_mode: ModePreference,
}

/// keepalived's daemon flags that have no meaning for vrrpd (hidden from the help: they are
/// there so that a keepalived command line runs).
#[derive(Debug, Args)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "one field per keepalived flag"
)]
pub struct IgnoredFlags {
    #[arg(short = 'S', long = "log-facility", hide = true)]
    log_facility: Option<String>,
    #[arg(short = 'g', long = "log-file", num_args = 0..=1, hide = true)]
    log_file: Option<Option<String>>,
    #[arg(long = "flush-log-file", hide = true)]
    flush_log_file: bool,
    #[arg(short = 'G', long = "no-syslog", hide = true)]
    no_syslog: bool,
    #[arg(short = 'X', long = "release-vips", hide = true)]
    release_vips: bool,
    #[arg(short = 'V', long = "dont-release-vrrp", hide = true)]
    dont_release_vrrp: bool,
    #[arg(short = 'I', long = "dont-release-ipvs", hide = true)]
    dont_release_ipvs: bool,
    #[arg(short = 'R', long = "dont-respawn", hide = true)]
    dont_respawn: bool,
    #[arg(short = 'd', long = "dump-conf", hide = true)]
    dump_conf: bool,
    #[arg(short = 'c', long = "checkers_pid", hide = true)]
    checkers_pid: Option<String>,
    #[arg(short = 'b', long = "bfd_pid", hide = true)]
    bfd_pid: Option<String>,
    #[arg(short = 'B', long = "no_bfd", hide = true)]
    no_bfd: bool,
    #[arg(long = "all", hide = true)]
    all: bool,
    #[arg(short = 'a', long = "address-monitoring", hide = true)]
    address_monitoring: bool,
    #[arg(short = 'e', long = "all-port-delete", hide = true)]
    all_port_delete: bool,
    #[arg(short = 'm', long = "core-dump", hide = true)]
    core_dump: bool,
    #[arg(short = 'M', long = "core-dump-pattern", num_args = 0..=1, hide = true)]
    core_dump_pattern: Option<Option<String>>,
    #[arg(short = 'x', long = "snmp", hide = true)]
    snmp: bool,
    #[arg(short = 'A', long = "snmp-agent-socket", hide = true)]
    snmp_agent_socket: Option<String>,
    #[arg(short = 'u', long = "umask", hide = true)]
    umask: Option<String>,
    #[arg(long = "perf", num_args = 0..=1, hide = true)]
    perf: Option<Option<String>>,
    #[arg(long = "debug", num_args = 0..=1, hide = true)]
    debug: Option<Option<String>>,
    #[arg(long = "no-mem-check", hide = true)]
    no_mem_check: bool,
}

impl IgnoredFlags {
    /// Each flag given, with why vrrpd does not act on it.
    pub fn given(&self) -> Vec<(&'static str, &'static str)> {
        const LOGS: &str = "vrrpd logs to stderr, which systemd's journal reads with levels";
        const NO_LVS: &str = "vrrpd runs VRRP only (no IPVS, BFD or checkers)";
        [
            (self.log_facility.is_some(), "-S/--log-facility", LOGS),
            (self.log_file.is_some(), "-g/--log-file", LOGS),
            (self.flush_log_file, "--flush-log-file", LOGS),
            (self.no_syslog, "-G/--no-syslog", LOGS),
            (
                self.release_vips,
                "-X/--release-vips",
                "vrrpd always removes its VIPs when it stops",
            ),
            (
                self.dont_release_vrrp,
                "-V/--dont-release-vrrp",
                "vrrpd always removes its VIPs when it stops (a stopped master that kept them would be a second holder)",
            ),
            (self.dont_release_ipvs, "-I/--dont-release-ipvs", NO_LVS),
            (
                self.dont_respawn,
                "-R/--dont-respawn",
                "vrrpd is one process: there is no child to respawn",
            ),
            (
                self.dump_conf,
                "-d/--dump-conf",
                "`vrrpd check --dump` prints the effective config",
            ),
            (self.checkers_pid.is_some(), "-c/--checkers_pid", NO_LVS),
            (self.bfd_pid.is_some(), "-b/--bfd_pid", NO_LVS),
            (self.no_bfd, "-B/--no_bfd", NO_LVS),
            (self.all, "--all", NO_LVS),
            (self.address_monitoring, "-a/--address-monitoring", NO_LVS),
            (self.all_port_delete, "-e/--all-port-delete", NO_LVS),
            (
                self.core_dump || self.core_dump_pattern.is_some(),
                "-m/-M (core dumps)",
                "set core dumps in vrrpd's systemd unit (LimitCORE=)",
            ),
            (
                self.snmp || self.snmp_agent_socket.is_some(),
                "-x/-A (SNMP)",
                "vrrpd has no SNMP agent: its metrics are Prometheus' (--metrics)",
            ),
            (
                self.umask.is_some(),
                "-u/--umask",
                "vrrpd creates every file with its own mode (0600, pid file 0644)",
            ),
            (
                self.perf.is_some() || self.debug.is_some() || self.no_mem_check,
                "--perf/--debug/--no-mem-check",
                "keepalived's own debugging",
            ),
        ]
        .into_iter()
        .filter(|(given, ..)| *given)
        .map(|(_, flag, why)| (flag, why))
        .collect()
    }
}

#[derive(Debug, Args)]
pub struct CaptureArgs {
    /// The file to write.
    #[arg(short = 'w', long = "write")]
    pub write: std::path::PathBuf,
    /// pcapng keeps which interface each advert came in on and the XDP verdict (as the
    /// packet's comment); pcap for tools that read nothing else.
    #[arg(long, value_enum, default_value_t = pcap::Format::Pcapng)]
    pub format: pcap::Format,
    /// Capture on these interfaces standalone (repeatable); without -i, through the running
    /// daemon (whose XDP program holds the interfaces).
    #[arg(short = 'i', long = "interface")]
    pub interfaces: Vec<String>,
    /// The daemon's control socket (without -i).
    #[arg(short = 's', long = "socket", default_value_os_t = control::default_socket())]
    pub socket: std::path::PathBuf,
    /// Only this VRID (default: all).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=255))]
    pub vrid: Option<u8>,
    /// Stop after this many adverts.
    #[arg(short = 'c', long)]
    pub count: Option<u64>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The daemon's control socket.
    #[arg(short = 's', long = "socket", default_value_os_t = control::default_socket())]
    pub socket: std::path::PathBuf,
    /// The answer as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ControlArgs {
    /// The daemon's control socket.
    #[arg(short = 's', long = "socket", default_value_os_t = control::default_socket())]
    pub socket: std::path::PathBuf,
}

#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// The config file (keepalived's -f).
    #[arg(
        short = 'f',
        long = "use-file",
        default_value = "/etc/keepalived/keepalived.conf"
    )]
    pub file: std::path::PathBuf,
    /// keepalived's config id for `@id` lines (default: the short host name).
    #[arg(short = 'i', long = "config-id")]
    pub config_id: Option<String>,
    /// The control socket of the daemon that must not be running.
    #[arg(short = 's', long = "socket", default_value_os_t = control::default_socket())]
    pub socket: std::path::PathBuf,
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Make keepalived.service an alias of vrrpd.service.
    #[arg(long = "as-keepalived", required = true)]
    pub as_keepalived: bool,
    /// Take the alias away again (keepalived's own unit is then seen again).
    #[arg(long)]
    pub remove: bool,
    /// Act on the system under this directory (a chroot, an image being built).
    #[arg(long, default_value = "/")]
    pub root: std::path::PathBuf,
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// The vrrp_instance, by name.
    pub instance: String,
    #[command(subcommand)]
    pub setting: SetCommand,
    /// The daemon's control socket.
    #[arg(short = 's', long = "socket", default_value_os_t = control::default_socket(), global = true)]
    pub socket: std::path::PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum SetCommand {
    /// The base priority (1 to 254) in place of the config's, tracking weights still added;
    /// `config` for the config's again.
    Priority {
        /// 1 to 254, or `config`.
        value: String,
    },
    /// `on`: a master gives up with priority 0 (its backup takes over after Skew_Time) and
    /// the instance stays BACKUP; `off`: it takes part in the election again.
    Maintenance {
        #[arg(value_enum)]
        state: OnOff,
    },
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The config file (keepalived's -f).
    #[arg(
        short = 'f',
        long = "use-file",
        default_value = "/etc/keepalived/keepalived.conf"
    )]
    pub file: std::path::PathBuf,
    /// Print the effective config (after includes and variables) as JSON on stdout; the
    /// diagnostics then go to stderr.
    #[arg(long)]
    pub dump: bool,
    /// keepalived's config id for `@id` lines (default: the short host name).
    #[arg(short = 'i', long = "config-id")]
    pub config_id: Option<String>,
    /// Do not check the config against this host (that its interfaces and scripts exist),
    /// for checking another host's config.
    #[arg(long = "skip-host")]
    pub skip_host: bool,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Watch these interfaces standalone (repeatable), with vrrpd's XDP program attached by
    /// this command; without -i, ask the running daemon.
    #[arg(short = 'i', long = "interface")]
    pub interfaces: Vec<String>,
    /// The daemon's control socket (without -i).
    #[arg(short = 's', long = "socket", default_value_os_t = control::default_socket())]
    pub socket: std::path::PathBuf,
    /// Against the daemon: one line per advert instead of the table.
    #[arg(long)]
    pub adverts: bool,
    /// Only this VRID (default: all).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=255))]
    pub vrid: Option<u8>,
    /// Exit after this many adverts (table: this many refreshes).
    #[arg(short = 'c', long)]
    pub count: Option<u64>,
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn init_logging(cli: &Cli) {
    let level = match &cli.command {
        Command::Run(r) if r.log_detail => "debug",
        _ => cli.log.as_str(),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Under systemd (stderr is the journal's stream): each line starts with its syslog
    // priority, which journald reads (SyslogLevelPrefix=, on by default), so that
    // `journalctl -p warning` shows the findings; the journal stamps lines itself.
    if stderr_is_the_journal() {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(Journal)
            .with_ansi(false)
            .without_time()
            .with_target(false)
            .init();
        return;
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

/// Whether stderr is the journal's stream: JOURNAL_STREAM (`DEV:INODE`, set by systemd) names
/// the very file stderr is (an inherited variable in a shell a service started does not).
fn stderr_is_the_journal() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    std::fs::metadata("/proc/self/fd/2").is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

/// stderr with sd-daemon's `<N>` priority prefix on each line of each event.
struct Journal;

struct JournalLine(u8);

impl std::io::Write for JournalLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // Every line of the event: journald reads each line as a record of its own.
        let prefix = format!("<{}>", self.0);
        let mut out = Vec::with_capacity(buf.len() + prefix.len());
        for line in buf.split_inclusive(|b| *b == b'\n') {
            out.extend_from_slice(prefix.as_bytes());
            out.extend_from_slice(line);
        }
        std::io::stderr().lock().write_all(&out)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// syslog's priorities (sd-daemon.h): err 3, warning 4, info 6, debug 7.
fn syslog_priority(level: tracing::Level) -> u8 {
    match level {
        tracing::Level::ERROR => 3,
        tracing::Level::WARN => 4,
        tracing::Level::INFO => 6,
        tracing::Level::DEBUG | tracing::Level::TRACE => 7,
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Journal {
    type Writer = JournalLine;

    fn make_writer(&'a self) -> Self::Writer {
        JournalLine(6)
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        JournalLine(syslog_priority(*meta.level()))
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(args) => run_daemon(args).await,
        Command::Watch(args) => watch(args).await,
        Command::Capture(args) => capture(args).await,
        Command::Check(args) => Ok(check(&args)),
        Command::Status(args) => status(&args).await,
        Command::Diagnose(args) => diagnose(&args).await,
        Command::Reload(args) => reload(&args).await,
        Command::Set(args) => set(args).await,
        Command::Cleanup(args) => cleanup(&args).await,
        Command::Install(args) => crate::install::install(&args),
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "vrrpd", &mut out);
            print!("{}", String::from_utf8_lossy(&out));
            Ok(ExitCode::SUCCESS)
        }
        Command::Manpages { dir } => crate::install::manpages(&dir),
        Command::BenchXdp { repeat } => bench_xdp(repeat),
    }
}

/// `vrrpd watch --adverts` against the daemon: its adverts, one line each.
async fn watch_daemon_adverts(args: &WatchArgs) -> anyhow::Result<ExitCode> {
    let mut watcher = Watcher::default();
    let mut seen = 0u64;
    let stream = control::subscribe(&args.socket, |s| {
        let w = s.record;
        if args.vrid.is_some_and(|id| w.vrrp.get(1) != Some(&id)) {
            return true;
        }
        let line = watcher.line(&w, &s.ifname, clock::monotonic_ns());
        let ok = if args.json {
            serde_json::to_string(&line)
                .map(|l| println!("{l}"))
                .is_ok()
        } else {
            writeln!(std::io::stdout(), "{line}").is_ok()
        };
        seen += 1;
        ok && args.count.is_none_or(|c| seen < c)
    });
    tokio::select! {
        r = stream => r.with_context(|| not_running(&args.socket))?,
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// `vrrpd watch` against the daemon: the per-source table, refreshed every second; in place
/// on a terminal, as successive blocks otherwise.
async fn watch_table(args: &WatchArgs) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal as _;
    let tty = std::io::stdout().is_terminal() && !args.json;
    let mut refreshes = 0u64;
    loop {
        let d = control::diagnosis(&args.socket)
            .await
            .with_context(|| not_running(&args.socket))?;
        let mut out = String::new();
        if args.json {
            out.push_str(&serde_json::to_string(&d)?);
            out.push('\n');
        } else {
            out.push_str(&crate::watch::table(&d, args.vrid));
        }
        if tty {
            // Clear and home: the view refreshes in place.
            print!("\x1b[2J\x1b[H{out}");
        } else {
            println!("{out}");
        }
        std::io::stdout().flush().ok();
        refreshes += 1;
        if args.count.is_some_and(|c| refreshes >= c) {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        }
    }
}

async fn run_daemon(args: RunArgs) -> anyhow::Result<ExitCode> {
    if let Some(name) = &args.signum {
        return Ok(match vrrp::sys::signals::by_function(name) {
            Some(n) => {
                println!("{n}");
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("Unknown sigfunc {name}");
                ExitCode::FAILURE
            }
        });
    }
    if args.version {
        // keepalived prints its version to stderr.
        eprintln!("vrrpd {}", env!("CARGO_PKG_VERSION"));
        return Ok(ExitCode::SUCCESS);
    }
    if args.check_only {
        eprintln!(
            "vrrpd run: -C/--check runs keepalived's checkers only; vrrpd runs VRRP only (drop -C, or keep keepalived for its checkers)"
        );
        return Ok(ExitCode::FAILURE);
    }
    if let Some(ns) = &args.namespace {
        eprintln!(
            "vrrpd run: -s/--namespace: run it in the namespace instead: ip netns exec {ns} vrrpd run ... (its socket and pid file are then /run/vrrpd/{ns}/)"
        );
        return Ok(ExitCode::FAILURE);
    }
    for (flag, why) in args.ignored.given() {
        tracing::warn!("keepalived's {flag} is accepted and ignored: {why}");
    }
    if args.config_test.is_some() {
        return Ok(check(&CheckArgs {
            file: args.file,
            dump: false,
            config_id: args.config_id,
            skip_host: false,
        }));
    }
    if !args.file.is_file() {
        eprintln!(
            "vrrpd run: cannot read the config file {}",
            args.file.display()
        );
        return Ok(ExitCode::from(vrrp::config::exit::RUN_NO_CONFIG));
    }
    let mut load = vrrp::config::LoadOptions::default();
    if let Some(id) = args.config_id {
        load.config_id = id;
    }
    let pid_file = args
        .pid
        .or(args.vrrp.flatten())
        .or(args.vrrp_pid)
        // Beside the control socket: two daemons with two sockets never share a pid file.
        .unwrap_or_else(|| args.control.with_file_name("vrrpd.pid"));
    let result = vrrp::daemon::run(vrrp::daemon::Options {
        config: args.file.clone(),
        load,
        pid_file: Some(pid_file),
        control: args.control,
        metrics: args.metrics,
        dump_file: args.dump_file,
        dump_dir: args.dump_dir,
        elections: args.elections,
        realtime: !args.no_realtime,
        xdp_mode: args.xdp_mode,
    })
    .await;
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // Each problem at its file:line, before anything was loaded or started; keepalived's
        // exit code for a config it will not run.
        Err(vrrp::daemon::DaemonError::Config(e)) => {
            for d in &e.0.0 {
                eprintln!("{d}");
            }
            eprintln!(
                "vrrpd run: {}: the config has errors, not started",
                args.file.display()
            );
            let no_config =
                e.0.0
                    .iter()
                    .any(|d| d.severity == vrrp::config::Severity::NoConfig);
            Ok(ExitCode::from(if no_config {
                vrrp::config::exit::RUN_NO_CONFIG
            } else {
                vrrp::config::exit::RUN_CONFIG
            }))
        }
        Err(e) => Err(e).with_context(|| format!("vrrpd run -f {}", args.file.display())),
    }
}

/// ns per packet of the XDP program and of an empty one, on frames the program passes
/// untouched (TCP, UDP, ARP) and on a VRRP advert for an unwatched VRID.
fn bench_xdp(repeat: u32) -> anyhow::Result<ExitCode> {
    use std::net::IpAddr;

    use vrrp::wire::frame;
    let mut capture = Datapath::load()?;
    let src: IpAddr = "10.0.0.10".parse()?;
    let dst: IpAddr = "10.0.0.6".parse()?;
    let mac = [2, 0, 0, 0, 0, 1];
    let mut tcp = frame::ip(src, dst, 64, &[0u8; 40]);
    tcp[9] = 6;
    let mut udp = frame::ip(src, dst, 64, &[0u8; 20]);
    udp[9] = 17;
    let mut arp = vec![0xffu8; 6];
    arp.extend_from_slice(&mac);
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.extend_from_slice(&[0u8; 28]);
    let vrrp_msg = [
        0x21, 99, 100, 1, 1, 1, 0, 0, 10, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let frames = [
        ("tcp", frame::ethernet(mac, mac, 0, &tcp)),
        ("udp", frame::ethernet(mac, mac, 0, &udp)),
        ("arp", arp),
        (
            "vrrp_unwatched",
            frame::advert(99, src, "224.0.0.18".parse()?, &vrrp_msg),
        ),
    ];
    let mut out = serde_json::Map::new();
    for (name, f) in &frames {
        let (_, ours) = capture.test_run(f, repeat)?;
        let (_, base) = capture.test_run_baseline(f, repeat)?;
        out.insert(
            (*name).to_owned(),
            serde_json::json!({"vrrp_ns": ours.as_nanos(), "empty_ns": base.as_nanos()}),
        );
    }
    println!("{}", serde_json::Value::Object(out));
    Ok(ExitCode::SUCCESS)
}

/// What to say when the daemon's control socket does not answer.
fn not_running(socket: &std::path::Path) -> String {
    format!("is vrrpd running? (control socket {})", socket.display())
}

async fn status(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let s = control::status(&args.socket)
        .await
        .with_context(|| not_running(&args.socket))?;
    if args.json {
        println!("{}", serde_json::to_string(&s)?);
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", status_text(&s));
    Ok(ExitCode::SUCCESS)
}

/// `vrrpd status` as text: a paragraph per instance, then the daemon.
fn status_text(s: &Status) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for i in &s.instances {
        let p = &i.priority;
        let _ = writeln!(
            out,
            "{} {} vrid {} {} v{}: {}{} for {:.1}s, priority {} (base {}{}), VIPs {}",
            i.name,
            i.interface,
            i.vrid,
            match i.family {
                vrrp::wire::vrrp::Family::V4 => "ipv4",
                vrrp::wire::vrrp::Family::V6 => "ipv6",
            },
            i.version.number(),
            i.state,
            if i.maintenance { " (maintenance)" } else { "" },
            i.since_s,
            p.effective,
            p.base,
            p.operator
                .map(|o| format!(", {o} set by the operator"))
                .unwrap_or_default(),
            i.vips.join(" ")
        );
        let master = match &i.master {
            None => "unknown".to_owned(),
            Some(m) if m.this_router => "this router".to_owned(),
            Some(m) => format!(
                "{} priority {} (heard {:.2}s ago)",
                m.address,
                m.priority,
                m.seen_s_ago.unwrap_or(0.0)
            ),
        };
        let group = i
            .group
            .as_ref()
            .map(|g| format!("; sync group {g}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "    master: {master}; advert_int {}s, Master_Down_Interval {:.3}s{group}",
            i.advert_int_s, i.master_down_interval_s
        );
        for t in &p.tracking {
            let file_state;
            let (kind, ok) = match (t.kind, t.ok) {
                (TrackedKind::Script, Some(true)) => ("script", "succeeded"),
                (TrackedKind::Script, Some(false)) => ("script", "failed"),
                (TrackedKind::Interface, Some(true)) => ("interface", "up"),
                (TrackedKind::Interface, Some(false)) => ("interface", "down"),
                (TrackedKind::Process, Some(true)) => ("process", "running"),
                (TrackedKind::Process, Some(false)) => ("process", "not running (below quorum)"),
                (TrackedKind::Script | TrackedKind::Interface | TrackedKind::Process, None) => {
                    let kind = match t.kind {
                        TrackedKind::Script => "script",
                        TrackedKind::Interface => "interface",
                        _ => "process",
                    };
                    (kind, "no result yet")
                }
                (TrackedKind::File, ok) => {
                    file_state = match (t.value, ok) {
                        (None, _) => "not read yet".to_owned(),
                        (Some(v), Some(false)) => format!("{v} (FAULT)"),
                        (Some(v), _) => v.to_string(),
                    };
                    ("file", file_state.as_str())
                }
            };
            let weight = t
                .weight
                .map_or_else(|| "none".to_owned(), |w| w.to_string());
            let _ = writeln!(out, "    track {kind} {}: {ok} (weight {weight})", t.name);
        }
        let c = &i.counters;
        let dropped = if c.dropped.is_empty() {
            "none".to_owned()
        } else {
            c.dropped
                .iter()
                .map(|(r, n)| format!("{r} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            out,
            "    adverts received {}, sent {} ({} late); became master {}x; dropped: {dropped}",
            c.adverts_received, c.adverts_sent, c.adverts_late, c.became_master
        );
    }
    let thread = match &s.advert_thread {
        Scheduling::Fifo(p) => format!("SCHED_FIFO {p}"),
        Scheduling::Normal(why) => format!("not real-time ({why})"),
    };
    let probe = match &s.drop_probe {
        DropProbe::Running => "skb:kfree_skb".to_owned(),
        DropProbe::Unavailable(why) => format!("unavailable: {why}"),
    };
    let _ = writeln!(
        out,
        "vrrpd pid {}, up {:.0}s; advert thread: {thread}; kernel drop reasons: {probe}; capabilities: {}",
        s.pid,
        s.uptime_s,
        s.capabilities.join(" ")
    );
    let l = &s.rx_latency;
    if l.samples > 0 {
        let _ = writeln!(
            out,
            "adverts from the wire to the election: {} heard, p50 {:.0} us, p99 {:.0} us, max {:.0} us",
            l.samples, l.p50_us, l.p99_us, l.max_us
        );
    }
    out
}

/// `vrrpd cleanup`: only once no daemon answers, then what its config says it may have left.
async fn cleanup(args: &CleanupArgs) -> anyhow::Result<ExitCode> {
    if tokio::time::timeout(
        std::time::Duration::from_secs(2),
        control::status(&args.socket),
    )
    .await
    .is_ok_and(|r| r.is_ok())
    {
        eprintln!(
            "vrrpd cleanup: a vrrpd answers on {}: it removes its own VIPs when it stops (cleanup is for after it died)",
            args.socket.display()
        );
        return Ok(ExitCode::from(2));
    }
    let mut opts = vrrp::config::LoadOptions::default();
    if let Some(id) = &args.config_id {
        opts.config_id.clone_from(id);
    }
    let (config, diags) = vrrp::config::load(&args.file, &opts);
    if diags.errors().count() > 0 {
        for d in diags.errors() {
            eprintln!("{d}");
        }
        eprintln!(
            "vrrpd cleanup: {} cannot be read whole: nothing removed",
            args.file.display()
        );
        return Ok(ExitCode::from(vrrp::config::exit::CONFIG));
    }
    let done = vrrp::daemon::cleanup::cleanup(&config)
        .await
        .context("cleaning up")?;
    let mut removed = 0;
    for item in &done {
        println!("{item}");
        if !matches!(
            item,
            vrrp::daemon::cleanup::Cleaned::NoInterface { .. }
                | vrrp::daemon::cleanup::Cleaned::Foreign { .. }
        ) {
            removed += 1;
        }
    }
    if removed == 0 {
        println!("nothing left behind");
    }
    Ok(ExitCode::SUCCESS)
}

async fn reload(args: &ControlArgs) -> anyhow::Result<ExitCode> {
    use vrrp::northbound::status::ReloadOutcome;
    let outcome = control::reload(&args.socket)
        .await
        .with_context(|| not_running(&args.socket))?;
    Ok(match outcome {
        ReloadOutcome::Applied {
            instances,
            warnings,
        } => {
            println!("reload applied: {instances} instances run");
            for w in warnings {
                println!("{w}");
            }
            ExitCode::SUCCESS
        }
        ReloadOutcome::Refused { errors } => {
            println!("reload refused: the running config stays");
            for e in errors {
                println!("{e}");
            }
            ExitCode::from(vrrp::config::exit::RUN_CONFIG)
        }
    })
}

async fn set(args: SetArgs) -> anyhow::Result<ExitCode> {
    use vrrp::protocol::router::Setting;
    let setting = match args.setting {
        SetCommand::Maintenance { state } => Setting::Maintenance(matches!(state, OnOff::On)),
        SetCommand::Priority { value } if value == "config" => Setting::Priority(None),
        SetCommand::Priority { value } => match value.parse::<u8>() {
            Ok(p) => Setting::Priority(Some(p)),
            Err(_) => {
                eprintln!("vrrpd set: priority {value:?}: 1 to 254, or `config`");
                return Ok(ExitCode::from(2));
            }
        },
    };
    let i = match control::set(&args.socket, &args.instance, setting).await {
        Ok(i) => i,
        Err(control::ControlError::Refused(why)) => {
            eprintln!("vrrpd set: {why}");
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => return Err(e).with_context(|| not_running(&args.socket)),
    };
    println!(
        "{}: {}, priority {}{}",
        i.name,
        i.state,
        i.priority.effective,
        if i.maintenance {
            " (maintenance: stays BACKUP)"
        } else {
            ""
        }
    );
    Ok(ExitCode::SUCCESS)
}

async fn diagnose(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let d: Diagnosis = control::diagnosis(&args.socket)
        .await
        .with_context(|| not_running(&args.socket))?;
    if args.json {
        println!("{}", serde_json::to_string(&d)?);
        return Ok(ExitCode::SUCCESS);
    }
    if d.findings.is_empty() {
        println!("no problem found in the last {} s", d.window_s);
    }
    for f in d.findings {
        println!("{f}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `vrrpd check` and `vrrpd run -t`: keepalived's config test, with its exit codes (0 fine,
/// 4 a missing file or interface, 5 config errors, 6 a script-security problem).
fn check(args: &CheckArgs) -> ExitCode {
    let mut opts = vrrp::config::LoadOptions::default();
    if let Some(id) = &args.config_id {
        opts.config_id.clone_from(id);
    }
    if !args.file.is_file() {
        eprintln!(
            "{}: error: cannot read the config file: {}",
            args.file.display(),
            if args.file.exists() {
                "not a regular file"
            } else {
                "no such file"
            }
        );
        return ExitCode::from(vrrp::config::exit::FATAL);
    }
    let (config, mut diags) = vrrp::config::load(&args.file, &opts);
    if !args.skip_host {
        vrrp::config::environment(&config, &vrrp::config::Host, &mut diags);
    }
    let errors = diags.errors().count();
    let ignored = diags
        .0
        .iter()
        .filter(|d| d.severity == vrrp::config::Severity::Ignored)
        .count();
    let warnings = diags.0.len() - errors - ignored;
    for d in &diags.0 {
        if args.dump {
            eprintln!("{d}");
        } else {
            println!("{d}");
        }
    }
    if args.dump && errors == 0 {
        match serde_json::to_string_pretty(&config) {
            Ok(json) => println!("{json}"),
            Err(e) => eprintln!("vrrpd check: cannot print the config: {e}"),
        }
    }
    eprintln!(
        "{}: {} instance(s), {errors} error(s), {ignored} error(s) that keepalived and vrrpd run past, {warnings} warning(s)",
        args.file.display(),
        config.instances.len()
    );
    ExitCode::from(diags.exit_code())
}

/// Attaches to `interfaces`, then hands every record to `sink` until Ctrl-C, SIGTERM, `count`
/// records, or `sink` failing (stdout closed). Shared by `watch` and `capture`.
async fn capture_loop(
    interfaces: &[String],
    vrid: Option<u8>,
    count: Option<u64>,
    what: &str,
    mut sink: impl FnMut(&WireRecord, &str, u64) -> std::io::Result<()>,
) -> anyhow::Result<u64> {
    let mut capture = Datapath::load().context("cannot start the XDP capture")?;
    let mut attached = Vec::new();
    for ifname in interfaces {
        let a = capture
            .attach(ifname)
            .with_context(|| format!("cannot {what} {ifname}"))?
            .clone();
        for family in [AF_INET, AF_INET6] {
            capture.watch(WatchKey::new(
                a.ifindex,
                family,
                vrid.unwrap_or(WatchKey::WILDCARD_VRID),
            ))?;
        }
        attached.push(format!(
            "{} ({})",
            a.ifname,
            if a.mode == AttachMode::Native {
                "native XDP"
            } else {
                "generic XDP"
            }
        ));
    }
    eprintln!(
        "vrrpd {what}: listening on {}; Ctrl-C to stop",
        attached.join(", ")
    );

    let mut sigint = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut batch = Vec::new();
    let mut bad_records = 0u64;
    let mut seen = 0u64;
    'outer: loop {
        tokio::select! {
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            r = capture.recv(&mut batch, &mut bad_records, false) => { r?; }
        }
        let now = clock::monotonic_ns();
        for w in batch.drain(..) {
            let ifname = capture.ifname(w.ifindex).unwrap_or("?").to_owned();
            if sink(&w, &ifname, now).is_err() {
                break 'outer; // stdout closed (e.g. `| head`): stop quietly.
            }
            seen += 1;
            if count.is_some_and(|c| seen >= c) {
                break 'outer;
            }
        }
    }
    eprintln!(
        "vrrpd {what}: {seen} adverts; xdp counters: {}",
        capture.counters()?
    );
    if bad_records > 0 {
        eprintln!(
            "vrrpd {what}: {bad_records} ring records did not decode (userspace and XDP program disagree)"
        );
    }
    Ok(seen)
}

async fn watch(args: WatchArgs) -> anyhow::Result<ExitCode> {
    if args.interfaces.is_empty() {
        return if args.adverts {
            watch_daemon_adverts(&args).await
        } else {
            watch_table(&args).await
        };
    }
    let mut watcher = Watcher::default();
    let mut out = std::io::BufWriter::new(std::io::stdout());
    let json = args.json;
    capture_loop(
        &args.interfaces,
        args.vrid,
        args.count,
        "watch",
        |w, ifname, now| {
            let line = watcher.line(w, ifname, now);
            if json {
                serde_json::to_writer(&mut out, &line).map_err(std::io::Error::from)?;
                out.write_all(b"\n")?;
            } else {
                writeln!(out, "{line}")?;
            }
            out.flush()
        },
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}

async fn capture(args: CaptureArgs) -> anyhow::Result<ExitCode> {
    let file = vrrp::sys::files::create_output(&args.write)
        .with_context(|| format!("cannot write {}", args.write.display()))?;
    let mut pcap = pcap::Writer::new(std::io::BufWriter::new(file), args.format)
        .with_context(|| format!("writing {}", args.write.display()))?;
    let offset = clock::realtime_offset_ns();
    let mut write = |w: &WireRecord, ifname: &str| -> std::io::Result<()> {
        let (frame, len) = pcap::frame_of(w);
        let wall = u64::try_from(i128::from(w.ktime_ns) + offset).unwrap_or(0);
        pcap.write(ifname, wall, &frame, len, &pcap::comment_of(w))?;
        pcap.flush()
    };
    let seen = if args.interfaces.is_empty() {
        let mut seen = 0u64;
        eprintln!(
            "vrrpd capture: through the daemon at {}; Ctrl-C to stop",
            args.socket.display()
        );
        let stream = control::subscribe(&args.socket, |s| {
            let w = s.record;
            if args.vrid.is_some_and(|id| w.vrrp.get(1) != Some(&id)) {
                return true;
            }
            if write(&w, &s.ifname).is_err() {
                return false;
            }
            seen += 1;
            args.count.is_none_or(|c| seen < c)
        });
        tokio::select! {
            r = stream => r.with_context(|| not_running(&args.socket))?,
            _ = tokio::signal::ctrl_c() => {}
        }
        seen
    } else {
        capture_loop(
            &args.interfaces,
            args.vrid,
            args.count,
            "capture",
            |w, ifname, _| write(w, ifname),
        )
        .await?
    };
    eprintln!(
        "vrrpd capture: {seen} adverts written to {}",
        args.write.display()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory as _, Parser as _};

    use super::{Cli, Command};

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    /// KEEPALIVED_OPTIONS lines as Debian's /etc/default/keepalived and people's units have
    /// them: each starts vrrpd (the meaningless flags warned about, not refused).
    #[test]
    fn keepalived_command_lines_parse() {
        for line in [
            "-D",
            "-D -d -S 0",
            "--vrrp -D",
            "-P -D -n -l",
            "--dont-fork --log-console --log-detail",
            "-D -S 7 -G -X -V -R --all -a -e -x -m",
            "-f /etc/keepalived/keepalived.conf -p /run/keepalived.pid -r /run/vrrp.pid -c /run/checkers.pid",
            "-g/var/log/keepalived.log --flush-log-file -u 0077 -M/tmp/core",
            "-i lb01 --perf --debug --no-mem-check",
        ] {
            let argv = ["vrrpd", "run"].into_iter().chain(line.split_whitespace());
            let parsed = Cli::try_parse_from(argv);
            assert!(
                parsed.is_ok(),
                "{line}: {}",
                parsed.err().map(|e| e.to_string()).unwrap_or_default()
            );
        }
        let Ok(Cli {
            command: Command::Run(r),
            ..
        }) = Cli::try_parse_from(["vrrpd", "run", "-D", "-S", "0", "-V", "-tlog"])
        else {
            panic!("does not parse");
        };
        assert!(r.log_detail && r.config_test.is_some());
        let given: Vec<&str> = r.ignored.given().into_iter().map(|(f, _)| f).collect();
        assert_eq!(given, ["-S/--log-facility", "-V/--dont-release-vrrp"]);
        for (argv, version) in [
            (["vrrpd", "run", "-v"], true),
            (["vrrpd", "run", "-D"], false),
        ] {
            let Ok(Cli {
                command: Command::Run(r),
                ..
            }) = Cli::try_parse_from(argv)
            else {
                panic!("{argv:?} does not parse");
            };
            assert_eq!(r.version, version);
        }
    }
}
