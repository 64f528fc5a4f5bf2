//! `vrrpd run`: the daemon. One task owns every instance and handles one event at a time; the
//! protocol decisions are the router's (`protocol::router`), the I/O is here, split by concern
//! across this module's files as one `Daemon` impl.
//!
//! ```text
//!   XDP ring buffer ─(WireRecord)─> rx: RxAdvert::from_wire ─┐
//!   raw sockets ─> socket tasks ─> counts (kernel or task);  │
//!     with --elections socket: RxAdvert::from_socket ────────┤
//!   timers (router.next_deadline; ring drained first) ───────┤
//!   trackers (vrrp_script runners, link poller) ─────────────┼─> Router::handle(now, Input)
//!   reload (SIGHUP: config -> resolved Plan) ────────────────┤            │
//!   SIGTERM / SIGINT: Input::Shutdown ───────────────────────┘            v
//!                                                         executor: Output by Output
//!     ├─ SendAdvert ──────────────> raw socket (immediate adverts)
//!     ├─ StartAdverts/StopAdverts ─> advert thread (SCHED_FIFO, absolute deadlines)
//!     ├─ AddVips/RemoveVips ──────> rtnetlink
//!     ├─ Announce ────────────────> gratuitous ARP / unsolicited NA (a task per burst)
//!     ├─ Transition / Group ──────> log "Entering X STATE", notify scripts, notify FIFO
//!     ├─ Drop ────────────────────> observation (per-source counts for the diagnosis)
//!     └─ Watch/Unwatch/Retire ────> XDP watch map, per-instance resources
//!
//!   observation: a window of three advert intervals (1 s at least), a quick check each quarter
//!   of it and a full sample when something moved; the diagnosis runs beside the loop (nft, ping)
//!   and its findings come back on a channel. The control socket and the metrics endpoint ask
//!   the loop for a typed `Status` / `Diagnosis`.
//! ```
//!
//! Elections are fed from the ring buffer, the wire's truth before any firewall. Before a
//! timer may declare a master down, the ring is drained, so that a daemon that was
//! descheduled does not fail over while the adverts that prove the master alive wait there.
//! When a flood from many sources overflows the ring, the interfaces that carry it leave the
//! ring for a socket of their own until it ends (`flood`).
//!
//! An interface VRRP runs on that is deleted and created again (a new ifindex) is resolved
//! afresh: XDP, sockets and announcer follow it, and its instances start again there.

pub mod cleanup;
mod executor;
mod flood;
mod instances;
mod observe;
mod reload;
mod rx;
mod status;
mod timers;
mod trackers;

use std::{path::PathBuf, time::Duration};

use thiserror::Error;
use tracing::{debug, info, warn};

use self::{instances::Io, observe::Observation, trackers::Trackers};
use crate::{
    config::{self, Config, ConfigError, LoadOptions},
    datapath::{Datapath, DatapathError, Woke},
    northbound::{
        control::{self, ControlError, Pending},
        diagnose::Finding,
    },
    protocol::{
        event::RxAdvert,
        router::{Input, Plan, Router},
        track::TrackEvent,
    },
    sys::{
        advert_thread::{AdvertThread, Scheduling},
        caps, clock,
        cpu::CpuWatch,
        netlink::{NetError, Netlink},
        signals::{self, Asked, Signals},
    },
    time::Instant,
};

#[derive(Debug, Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Datapath(#[from] DatapathError),
    #[error(transparent)]
    Net(#[from] NetError),
    #[error("signal handler: {0}")]
    Signal(#[source] std::io::Error),
    #[error("pid file {path}: {source}")]
    PidFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Control(ControlError),
    #[error("metrics on {addr}: {source}")]
    Metrics {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("({instance}) {source}")]
    Instance {
        instance: String,
        #[source]
        source: Box<DaemonError>,
    },
}

pub struct Options {
    pub config: PathBuf,
    pub load: LoadOptions,
    pub pid_file: Option<PathBuf>,
    /// The control socket (`vrrpd status`, `vrrpd diagnose`).
    pub control: PathBuf,
    /// Where to serve Prometheus metrics, if anywhere.
    pub metrics: Option<std::net::SocketAddr>,
    /// Where SIGUSR1 writes the state as vrrpd's status JSON.
    pub dump_file: PathBuf,
    /// Where keepalived's files go: keepalived.data (SIGUSR1), keepalived.stats (SIGUSR2,
    /// SIGRTMAX-1) and keepalived.json (SIGRTMIN+2); keepalived writes them to /tmp.
    pub dump_dir: PathBuf,
    /// What the elections hear.
    pub elections: Elections,
    /// Send periodic adverts from a SCHED_FIFO thread where permitted (the default).
    pub realtime: bool,
    /// Which XDP mode to attach in.
    pub xdp_mode: crate::datapath::ModePreference,
}

/// Which adverts count in the elections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Elections {
    /// What XDP sees on the wire, before netfilter: a firewall that eats adverts cannot make
    /// a second master (vrrpd's default).
    #[default]
    Wire,
    /// Only what reaches the VRRP socket after netfilter, as keepalived does: a firewall that
    /// eats adverts makes this router a master too.
    Socket,
}

/// Subscribers to the advert stream at most.
const MAX_SUBSCRIBERS: usize = 16;

struct Daemon {
    opts: Options,
    config: Config,
    router: Router,
    io: Io,
    trackers: Trackers,
    observe: Observation,
    started: Instant,
    /// What `caps::drop_all_but` left, for `status`.
    caps_kept: Vec<&'static str>,
    /// What the start gave up for good (see `caps::Confinement`); a reload that needs more is
    /// refused.
    confined: caps::Confinement,
    control_rx: Option<tokio::sync::mpsc::Receiver<Pending>>,
    subscribers: Vec<tokio::sync::mpsc::Sender<String>>,
    track_tx: tokio::sync::mpsc::Sender<TrackEvent>,
    track_rx: tokio::sync::mpsc::Receiver<TrackEvent>,
    findings_tx: tokio::sync::mpsc::Sender<Vec<Finding>>,
    findings_rx: tokio::sync::mpsc::Receiver<Vec<Finding>>,
    socket_rx: tokio::sync::mpsc::Receiver<RxAdvert>,
    /// What SIGRTMAX-1 cleared of keepalived's stats.
    stats_baseline: crate::northbound::keepalived_files::Baseline,
    /// Instances of the config that did not resolve (their interface or its address is
    /// missing), each reported once; while there are any, the plan is tried again at
    /// `replan_at`.
    unresolved: std::collections::BTreeSet<String>,
    replan_at: Option<Instant>,
    /// `vrrp_startup_delay`: the first plan, and when the instances may start.
    delayed: Option<(Instant, Plan)>,
    /// Interfaces whose elections left the ring for a socket while a flood fills it.
    flood: flood::Flood,
    /// From each advert's kernel stamp to its step in the router.
    rx_latency: crate::time::Histogram,
}

/// keepalived's state files.
#[derive(Clone, Copy)]
enum KeepalivedFile {
    Data,
    Stats,
    Json,
}

/// Runs the daemon until SIGTERM / SIGINT / SIGQUIT.
pub async fn run(opts: Options) -> Result<(), DaemonError> {
    let (config, diags) = config::load_checked(&opts.config, &opts.load)?;
    for d in &diags.0 {
        warn!("{d}");
    }
    // keepalived creates its notify FIFOs; something else already at the path is left alone.
    for (path, _) in [&config.global.notify_fifo, &config.global.vrrp_notify_fifo]
        .into_iter()
        .flatten()
    {
        if let Err(e) = crate::sys::files::ensure_fifo(std::path::Path::new(path)) {
            tracing::error!("notify_fifo: {e}");
        }
    }
    let nofile = crate::northbound::doors::raise_nofile();
    tracing::debug!(nofile, "RLIMIT_NOFILE");
    let mut daemon = Daemon::start(opts, config).await?;
    if let Some(path) = &daemon.opts.pid_file {
        // 0644, as keepalived's: pid files are read by whoever signals the daemon. Through a
        // fresh file and a rename, never through a symlink planted at the path.
        let pid = format!("{}\n", std::process::id());
        crate::sys::files::replace(path, pid.as_bytes(), 0o644).map_err(|source| {
            DaemonError::PidFile {
                path: path.clone(),
                source,
            }
        })?;
    }
    // Everything that needed more is done: programs loaded, sockets bound, tracefs mounted.
    let confine = confinement(&daemon.config);
    match caps::drop_all_but(caps::RUNTIME, confine) {
        Ok(kept) => {
            let names: Vec<&str> = kept.iter().map(|c| c.name()).collect();
            info!(
                "capabilities: kept {}; dropped the rest ({}{})",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                },
                if confine.bounding_trimmed {
                    "the bounding set too: no script runs as root"
                } else {
                    "scripts run as root get the bounding set back on exec, as keepalived's do"
                },
                if confine.no_new_privs {
                    "; no_new_privs: no script at all"
                } else {
                    ""
                }
            );
            daemon.caps_kept = names;
            daemon.confined = confine;
            daemon.io.adverts.poke();
        }
        Err(e) => warn!("cannot drop capabilities, running with all of them: {e}"),
    }
    // systemd's Type=notify: a no-op without NOTIFY_SOCKET.
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    let result = daemon.main_loop().await;
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    daemon.stop().await;
    let _ = std::fs::remove_file(&daemon.opts.control);
    if let Some(path) = &daemon.opts.pid_file {
        // Only ours: another vrrpd may have been started over it since.
        let ours = format!("{}\n", std::process::id());
        if std::fs::read_to_string(path).is_ok_and(|p| p == ours) {
            let _ = std::fs::remove_file(path);
        }
    }
    result
}

/// The shortest advert interval `config` runs, if it runs any instance.
pub(super) fn shortest_interval(config: &Config) -> Option<Duration> {
    config
        .instances
        .iter()
        .map(|i| crate::time::centis(i.advert_int_cs.max(1)))
        .min()
}

/// The advert ring for `config`: sized to the adverts a second its instances put on their
/// links (one master per VRID).
pub(super) fn advert_ring_bytes(config: &Config) -> u32 {
    let per_second = config
        .instances
        .iter()
        .map(|i| 100.0 / f64::from(i.advert_int_cs.max(1)))
        .sum();
    crate::datapath::ring_bytes_for(per_second)
}

impl Daemon {
    async fn start(opts: Options, config: Config) -> Result<Self, DaemonError> {
        let netlink = Netlink::connect()?;
        let ring_bytes = advert_ring_bytes(&config);
        let mut datapath = Datapath::load_with_drop_reasons(ring_bytes)?;
        debug!("advert ring: {} KiB", ring_bytes >> 10);
        datapath.set_mode(opts.xdp_mode);
        let priority = config
            .global
            .rt_priority
            .unwrap_or(crate::sys::advert_thread::RT_PRIORITY);
        let (adverts, scheduling) = AdvertThread::start(opts.realtime.then_some(priority));
        match &scheduling {
            Scheduling::Fifo(p) => {
                info!(
                    "adverts are sent from a SCHED_FIFO thread (priority {p}), on absolute deadlines"
                );
            }
            Scheduling::Normal(why) => warn!("adverts are sent without real-time priority: {why}"),
        }
        let (track_tx, track_rx) = tokio::sync::mpsc::channel(256);
        let (findings_tx, findings_rx) = tokio::sync::mpsc::channel(4);
        let (socket_tx, socket_rx) = tokio::sync::mpsc::channel(1024);
        let socket_tx = (opts.elections == Elections::Socket).then_some(socket_tx);
        if opts.elections == Elections::Socket {
            warn!(
                "--elections socket: adverts count only after netfilter, as in keepalived; a firewall that drops them makes a second master"
            );
        }
        let started = clock::now();
        let mut d = Self {
            io: Io::new(netlink, datapath, adverts, scheduling, socket_tx),
            router: Router::new(),
            trackers: Trackers::default(),
            observe: Observation::new(CpuWatch::open(), started),
            config: Config::default(),
            started,
            caps_kept: Vec::new(),
            confined: caps::Confinement::default(),
            control_rx: None,
            subscribers: Vec::new(),
            track_tx,
            track_rx,
            findings_tx,
            findings_rx,
            socket_rx,
            stats_baseline: crate::northbound::keepalived_files::Baseline::new(),
            unresolved: std::collections::BTreeSet::new(),
            replan_at: None,
            delayed: None,
            flood: flood::Flood::new(started),
            rx_latency: crate::time::Histogram::default(),
            opts,
        };
        // A crash's leftover would drop traffic to VIPs: gone before anything starts.
        let _ = crate::sys::nft::remove().await;
        let plan = d.plan(&config, true).await?;
        d.config = config;
        d.observe.set_pace(shortest_interval(&d.config));
        d.observe.polls_sockets = d.io.datapath.drop_probe().is_err();
        d.trackers
            .sync(&plan, &d.config, &d.io.netlink, &d.track_tx, true);
        let (control_tx, control_rx) = control::serve(&d.opts.control)
            .await
            .map_err(DaemonError::Control)?;
        d.control_rx = Some(control_rx);
        if let Some(addr) = d.opts.metrics {
            crate::northbound::metrics::serve(addr, control_tx)
                .await
                .map_err(|source| DaemonError::Metrics { addr, source })?;
        }
        let now = clock::now();
        if let Some(delay) = d.config.global.startup_delay {
            info!(
                "vrrp_startup_delay: the instances start in {:.3} s",
                delay.as_secs_f64()
            );
            d.delayed = Some((now.plus(delay), plan));
        } else {
            d.handle(now, Input::Configure(plan)).await;
        }
        info!(instances = d.router.len(), "vrrpd started");
        Ok(d)
    }

    /// One input through the router, and its outputs executed in order.
    async fn handle(&mut self, now: Instant, input: Input) {
        let outputs = self.router.handle(now, input);
        self.execute(now, outputs).await;
    }

    async fn main_loop(&mut self) -> Result<(), DaemonError> {
        let signals = Signals::listen().map_err(DaemonError::Signal)?;
        // Every other signal whose default is to end the process: a handler (not SIG_IGN,
        // which the scripts would inherit), so that a stray `kill -ALRM` or a real-time
        // signal from a tool cannot end a master with its VIPs on the interface.
        let _harmless = signals::absorb().map_err(DaemonError::Signal)?;
        let mut batch = Vec::new();
        let mut control = self.control_rx.take();
        loop {
            let now = clock::now();
            self.observe_tick(now);
            if self.delayed.as_ref().is_some_and(|(at, _)| now >= *at)
                && let Some((_, plan)) = self.delayed.take()
            {
                info!("vrrp_startup_delay over: the instances start");
                self.handle(now, Input::Configure(plan)).await;
            }
            if self.replan_at.is_some_and(|at| now >= at) {
                self.replan().await;
            }
            // A new timer each turn: tokio's `Sleep::reset` to a later deadline leaves the
            // entry where it was in the wheel, and the loop would wake at the old deadline to
            // find nothing due (a backup's Master_Down_Timer moves at every advert).
            let sleep = self.sleep_until(now);
            let events = self.observe.wants_events(now, self.io.adverts.sending());
            tokio::select! {
                () = signals.wait() => {
                    for asked in signals.take() {
                        if self.on_signal(asked).await {
                            return Ok(());
                        }
                    }
                }
                Some(ev) = self.track_rx.recv() => match ev {
                    TrackEvent::Recreated { ifname } => self.relink(&ifname).await,
                    ev => {
                        if let TrackEvent::Link { ifname, up } = &ev {
                            info!("interface {ifname} is {}", if *up { "up" } else { "down" });
                        }
                        self.handle(clock::now(), Input::Track(ev)).await;
                    }
                },
                Some(found) = self.findings_rx.recv() => self.observe.update_findings(found),
                Some(rx) = self.socket_rx.recv() => {
                    self.handle(clock::now(), Input::Advert(rx)).await;
                }
                Some(a) = self.flood.trusted_rx.recv() => self.on_fallback_advert(a).await,
                Some(a) = self.flood.rx.recv() => self.on_fallback_advert(a).await,
                Some(req) = async { match control.as_mut() { Some(c) => c.recv().await, None => std::future::pending().await } } => {
                    self.answer(req).await;
                }
                r = self.io.datapath.recv(&mut batch, &mut self.observe.bad_records, events) => match r? {
                    Woke::Adverts => self.on_records(&mut batch).await,
                    Woke::Drops => self.observe.attend(),
                },
                // Once alerted, further late sends need not wake the loop (at 0.01 s on a
                // starved host, a hundred a second) before the check they already asked for.
                () = self.io.adverts.attention().notified(), if events && !self.observe.attended() => self.observe.attend(),
                () = tokio::time::sleep(sleep) => self.on_timer(&mut batch).await,
            }
        }
    }

    /// What a signal asks for; whether it asks the daemon to stop.
    async fn on_signal(&mut self, asked: Asked) -> bool {
        match asked {
            Asked::Term | Asked::Int | Asked::Quit => {
                info!("{}: stopping", asked.name());
                return true;
            }
            Asked::Hup => {
                self.reload(asked.name()).await;
            }
            Asked::Usr1 => self.dump_state(),
            Asked::Usr2 => self.write_keepalived_file(KeepalivedFile::Stats),
            Asked::Json => self.write_keepalived_file(KeepalivedFile::Json),
            Asked::StatsClear => {
                self.write_keepalived_file(KeepalivedFile::Stats);
                self.stats_baseline = self
                    .status(clock::now())
                    .instances
                    .iter()
                    .map(|i| {
                        (
                            i.name.clone(),
                            crate::northbound::keepalived_files::Stats::of(&i.counters),
                        )
                    })
                    .collect();
            }
        }
        false
    }

    /// One of keepalived's files in `--dump-dir`, replaced whole (written to a new file that
    /// no one else can have planted, then renamed over the old one: a symlink there is
    /// replaced, never followed), 0600 as keepalived's `fopen_safe` makes them.
    fn write_keepalived_file(&self, file: KeepalivedFile) {
        use crate::northbound::keepalived_files as ka;
        let status = self.status(clock::now());
        let (name, text) = match file {
            KeepalivedFile::Data => ("keepalived.data", ka::data(&status)),
            KeepalivedFile::Stats => ("keepalived.stats", ka::stats(&status, &self.stats_baseline)),
            KeepalivedFile::Json => ("keepalived.json", ka::json(&status, &self.stats_baseline)),
        };
        let path = self.opts.dump_dir.join(name);
        match crate::sys::files::replace(&path, text.as_bytes(), 0o600) {
            Ok(()) => info!("{} written", path.display()),
            Err(e) => warn!("cannot write {}: {e}", path.display()),
        }
    }

    /// SIGUSR1: the state as JSON where keepalived users look for it.
    fn dump_state(&mut self) {
        self.write_keepalived_file(KeepalivedFile::Data);
        let text = serde_json::to_string_pretty(&self.status(clock::now())).unwrap_or_default();
        match crate::sys::files::replace(&self.opts.dump_file, (text + "\n").as_bytes(), 0o600) {
            Ok(()) => info!(
                "SIGUSR1: state written to {}",
                self.opts.dump_file.display()
            ),
            Err(e) => warn!(
                "SIGUSR1: cannot write {}: {e}",
                self.opts.dump_file.display()
            ),
        }
    }

    /// SIGTERM / SIGINT: masters send priority 0 and remove their VIPs (RFC 5798 6.4.3).
    async fn stop(&mut self) {
        self.handle(clock::now(), Input::Shutdown).await;
        // notify_stop and friends run to the end (bounded), as keepalived's do.
        self.io.finish_notifiers(Duration::from_secs(5)).await;
        self.io.drop_vmacs().await;
        self.io.restore_sysctls();
        if self.io.nft_ready {
            let _ = crate::sys::nft::remove().await;
        }
        info!("vrrpd stopped");
    }
}

/// What the config's scripts (vrrp_scripts, instance and group notifies) let the process give
/// up: everything when there are none, the bounding set when none runs as root.
pub(crate) fn confinement(config: &Config) -> caps::Confinement {
    let users = config.scripts.values().map(|s| s.user.as_ref()).chain(
        config
            .instances
            .iter()
            .flat_map(|i| i.notify.scripts())
            .chain(config.sync_groups.iter().flat_map(|g| g.notify.scripts()))
            .map(|n| n.user.as_ref()),
    );
    let mut any_as_root = None;
    for user in users {
        // A script whose user cannot be used is not run at all.
        let root = crate::sys::scripts::RunAs::resolve(user, &config.global)
            .is_some_and(|r| r.uid.is_none());
        any_as_root = Some(any_as_root.unwrap_or(false) || root);
    }
    caps::Confinement::for_scripts(any_as_root)
}
