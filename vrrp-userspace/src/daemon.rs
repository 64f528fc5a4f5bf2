//! `vrrpd run`: the daemon. One task owns every instance and handles one event at a time.
//!
//! ```text
//!   XDP ring buffer ──(WireAdvert, kernel stamp)──┐
//!   timers (fsm deadlines, GARP bursts) ──────────┤
//!   signals TERM/INT (stop), HUP (reload) ────────┼──> main loop ──> fsm::Instance::step
//!                                                 │        │
//!   raw VRRP sockets ──> reader tasks ──> post-   │        └──> actions: send advert (raw socket),
//!   netfilter counts (for `diagnose`)             │             add/remove VIPs (rtnetlink),
//!                                                 │             GARP / NA, log "Entering X STATE"
//! ```
//!
//! Elections are fed from the ring buffer, the wire's truth before any firewall. Before a
//! timer may declare a master down, the ring is drained, so that a daemon that was
//! descheduled does not fail over while the adverts that prove the master alive wait there.

use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
    os::fd::{AsRawFd, RawFd},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use thiserror::Error;
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
};
use tracing::{debug, error, info, warn};
use vrrp_common::{Verdict, WatchKey};

use crate::{
    capture::{Capture, CaptureError},
    config::{self, Config, ConfigError, LoadOptions},
    fsm::{self, Action, Event, Instant, State},
    monotonic_ns,
    net::{Announcer, Link, NetError, Netlink, VrrpSocket},
    packet::{Advert, ChecksumMode, Family},
    record::WireAdvert,
    track::{self, Notifier, RunAs, TrackEvent, Weighted},
};

#[derive(Debug, Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Capture(#[from] CaptureError),
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
    Control(crate::control::ControlError),
    #[error("metrics on {addr}: {source}")]
    Metrics {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "({instance}) priority 255 means owning the virtual addresses, but {interface} does not hold {addr}"
    )]
    NotOwner {
        instance: String,
        interface: String,
        addr: IpAddr,
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
    /// Where SIGUSR1 writes the state (keepalived writes /tmp/keepalived.data).
    pub dump_file: PathBuf,
    /// What the elections hear.
    pub elections: Elections,
    /// Send periodic adverts from a SCHED_FIFO thread where permitted (the default).
    pub realtime: bool,
    /// Which XDP mode to attach in.
    pub xdp_mode: crate::capture::ModePreference,
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

/// What the wire and the socket saw of one source, for `vrrpd diagnose`.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SourceStats {
    pub ifname: String,
    pub vrid: u8,
    pub version: u8,
    pub priority: u8,
    pub interval_cs: u16,
    /// Adverts seen by XDP (the wire, before netfilter).
    pub wire: u64,
    /// Packets that reached the raw socket (after netfilter), filled in at snapshot time.
    pub socket: u64,
    pub last_seen_ns: u64,
    /// The last gaps between its adverts (ns), for the interval's mean and jitter.
    #[serde(skip)]
    pub gaps: VecDeque<u64>,
    /// (arrival, gap) of the last adverts, for the window's longest gap and bursts.
    #[serde(skip)]
    pub timed_gaps: VecDeque<(u64, u64)>,
    pub auth: String,
    /// Why adverts from this source were not acted on, with the last time.
    pub dropped: HashMap<String, (u64, u64)>,
    /// The kernel's drop reasons (skb:kfree_skb) for its adverts, with the last time.
    pub kernel_drops: HashMap<String, (u64, u64)>,
    /// Where its last advert went (the group, or us for unicast).
    pub dst: Option<IpAddr>,
}

/// Counters per instance (RFC 6527's statistics, and vrrpd's own).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Stats {
    pub adverts_received: u64,
    pub adverts_sent: u64,
    pub became_master: u64,
    pub dropped: HashMap<String, u64>,
    /// Sends the kernel refused with EPERM: netfilter dropped our advert on output.
    pub send_refused: u64,
    #[serde(skip)]
    pub send_refused_last_ns: u64,
    /// The kernel's drop reasons for our own adverts (on output), with the last time.
    pub kernel_drops: HashMap<String, (u64, u64)>,
}

struct Inst {
    cfg: config::Instance,
    fsm: fsm::Instance,
    link: Link,
    src: IpAddr,
    /// Where adverts go: the group, or each unicast peer.
    dsts: Vec<IpAddr>,
    group: Option<usize>,
    garp_due: Option<u64>,
    refresh_due: Option<u64>,
    stats: Stats,
    notifier: Notifier,
    faulted: bool,
    /// The advert thread's counters for this instance, and what it was last told: the
    /// priority it sends (None: not master, no slot).
    sender_stats: Arc<crate::sender::SlotStats>,
    sender_priority: Option<u8>,
    /// The main loop sent an advert itself, which moved the cadence: tell the thread.
    sender_moved: bool,
    /// The advert thread's worst lateness over the last samples (the window's worst).
    late_max_samples: VecDeque<u64>,
}

impl Inst {
    fn key(&self) -> (u32, Family, u8) {
        (self.link.index, self.cfg.family, self.cfg.vrid)
    }

    fn next_deadline(&self) -> Option<u64> {
        [
            self.fsm.next_deadline().map(|i| i.0),
            self.garp_due,
            self.refresh_due,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// What this instance advertises at `priority`, and the checksum form it uses.
    fn advert(&self, priority: u8) -> (Advert, ChecksumMode) {
        let advert = Advert {
            version: self.cfg.version,
            vrid: self.cfg.vrid,
            priority,
            interval_cs: self.cfg.advert_int_cs,
            addresses: self.cfg.vips.iter().map(|v| v.addr).collect(),
            auth: self.cfg.wire_auth(),
        };
        let mode = if self.cfg.checksum_as_v2 {
            ChecksumMode::MessageOnly
        } else {
            ChecksumMode::PseudoHeader
        };
        (advert, mode)
    }

    fn drop_reason(&mut self, reason: &str) {
        *self.stats.dropped.entry(reason.to_owned()).or_default() += 1;
    }
}

/// The raw socket, registered with tokio for its reader task.
struct SockFd(VrrpSocket);
impl AsRawFd for SockFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.socket.as_raw_fd()
    }
}

/// Packets that reached the raw sockets, per (ifindex, source): the post-netfilter view.
/// (ifindex, source address, VRID): one router's adverts for one virtual router, the unit of
/// the wire-versus-socket accounting (a router may run several VRIDs on one interface).
pub type SourceKey = (u32, IpAddr, u8);

pub type SocketCounts = Arc<Mutex<HashMap<SourceKey, u64>>>;

/// In `--elections socket` mode, what the socket readers hand to the main loop.
type SocketTx = tokio::sync::mpsc::Sender<WireAdvert>;

struct Daemon {
    opts: Options,
    netlink: Netlink,
    capture: Capture,
    links: HashMap<String, Link>,
    sockets: HashMap<(u32, Family), Arc<AsyncFd<SockFd>>>,
    announcers: HashMap<u32, Arc<Announcer>>,
    instances: Vec<Inst>,
    by_key: HashMap<(u32, Family, u8), usize>,
    groups: Vec<Vec<usize>>,
    socket_counts: SocketCounts,
    /// The socket filter counts (see `refresh_socket_counts`), not a reader task.
    kernel_socket_counts: bool,
    /// What `caps::drop_all_but` left, for `status`.
    caps_kept: Vec<&'static str>,
    /// The periodic adverts (see sender.rs), and how its thread is scheduled.
    sender: crate::sender::Sender,
    scheduling: crate::sender::Scheduling,
    cpu_watch: crate::starve::CpuWatch,
    config: Config,
    track_tx: tokio::sync::mpsc::Sender<TrackEvent>,
    track_rx: tokio::sync::mpsc::Receiver<TrackEvent>,
    /// vrrp_script name -> (its runner, succeeded? None until its first result).
    scripts: HashMap<String, (tokio::task::JoinHandle<()>, Option<bool>)>,
    /// Tracked interface -> up?
    link_state: HashMap<String, bool>,
    link_poller: Option<tokio::task::JoinHandle<()>>,
    group_state: Vec<State>,
    group_notifiers: Vec<Notifier>,
    /// Per (ifindex, source): what the wire showed.
    sources: HashMap<SourceKey, SourceStats>,
    /// (time, wire and socket totals per source) every few seconds: the diagnosis window.
    samples: VecDeque<Sample>,
    control_rx: Option<tokio::sync::mpsc::Receiver<crate::control::Pending>>,
    started_ns: u64,
    subscribers: Vec<tokio::sync::mpsc::Sender<String>>,
    /// Findings of the periodic diagnosis: raised once, cleared once.
    findings: Vec<crate::diag::Finding>,
    findings_tx: tokio::sync::mpsc::Sender<Vec<crate::diag::Finding>>,
    findings_rx: tokio::sync::mpsc::Receiver<Vec<crate::diag::Finding>>,
    socket_adverts_tx: Option<SocketTx>,
    socket_adverts_rx: tokio::sync::mpsc::Receiver<WireAdvert>,
}

/// Totals at one moment; the diagnosis window is "now minus the sample 4 to 9 s old".
struct Sample {
    at: u64,
    /// Per source: wire, socket, vrrpd's drop reasons, the kernel's drop reasons.
    sources: HashMap<SourceKey, (u64, u64, Totals, Totals)>,
    /// Per instance (by its source address and VRID): the kernel's drops of our adverts.
    ours: HashMap<(IpAddr, u8), Totals>,
    /// Per instance name: the advert thread's (late, sent) totals.
    late: HashMap<String, (u64, u64)>,
    cpu: crate::starve::CpuSample,
}

type Totals = HashMap<String, u64>;

fn totals(m: &HashMap<String, (u64, u64)>) -> Totals {
    m.iter().map(|(k, (n, _))| (k.clone(), *n)).collect()
}

/// The instance's counters, the advert thread's included.
fn counters_json(i: &Inst) -> serde_json::Value {
    use std::sync::atomic::Ordering::Relaxed;
    let mut c = serde_json::to_value(&i.stats).unwrap_or_default();
    let st = &i.sender_stats;
    let sent = st.sent.load(Relaxed);
    c["adverts_sent"] = serde_json::json!(i.stats.adverts_sent + sent);
    c["send_refused"] = serde_json::json!(i.stats.send_refused + st.refused.load(Relaxed));
    c["adverts_late"] = serde_json::json!(st.late.load(Relaxed));
    c["advert_late_mean_ms"] = serde_json::json!(if sent > 0 {
        st.late_sum_ns.load(Relaxed) as f64 / sent as f64 / 1e6
    } else {
        0.0
    });
    c
}

/// Counts since `base`, most first; reasons that did not grow are left out.
fn since_base(now: &HashMap<String, (u64, u64)>, base: Option<&Totals>) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = now
        .iter()
        .map(|(r, (n, _))| {
            let before = base.and_then(|b| b.get(r)).copied().unwrap_or(0);
            (r.clone(), n.saturating_sub(before))
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}

/// Sources remembered at most (spoofed floods must not grow this without bound).
const MAX_SOURCES: usize = 4096;
const SAMPLE_EVERY_NS: u64 = 5_000_000_000;

/// Runs the daemon until SIGTERM / SIGINT.
pub async fn run(opts: Options) -> Result<(), DaemonError> {
    let (config, diags) = config::load_checked(&opts.config, &opts.load)?;
    for d in &diags.0 {
        warn!("{d}");
    }
    let mut daemon = Daemon::start(opts, config).await?;
    if let Some(path) = &daemon.opts.pid_file {
        std::fs::write(path, format!("{}\n", std::process::id())).map_err(|source| {
            DaemonError::PidFile {
                path: path.clone(),
                source,
            }
        })?;
    }
    // Everything that needed more is done: programs loaded, sockets bound, tracefs mounted.
    match crate::caps::drop_all_but(crate::caps::RUNTIME) {
        Ok(kept) => {
            let names: Vec<&str> = kept.iter().map(|c| c.name()).collect();
            info!(
                "capabilities: kept {}; dropped the rest (scripts run as root get the bounding set back on exec, as keepalived's do)",
                if names.is_empty() { "none".to_owned() } else { names.join(", ") }
            );
            daemon.caps_kept = names;
            daemon.sender.poke();
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
        let _ = std::fs::remove_file(path);
    }
    result
}

impl Daemon {
    async fn start(opts: Options, config: Config) -> Result<Self, DaemonError> {
        let netlink = Netlink::connect()?;
        let mut capture = Capture::load_with_drop_reasons()?;
        capture.set_mode(opts.xdp_mode);
        let (sender, scheduling) = crate::sender::Sender::start(opts.realtime);
        match &scheduling {
            crate::sender::Scheduling::Fifo(p) => {
                info!("adverts are sent from a SCHED_FIFO thread (priority {p}), on absolute deadlines");
            }
            crate::sender::Scheduling::Normal(why) => warn!("adverts are sent without real-time priority: {why}"),
        }
        let (track_tx, track_rx) = tokio::sync::mpsc::channel(256);
        let (findings_tx, findings_rx) = tokio::sync::mpsc::channel(4);
        let (socket_tx, socket_adverts_rx) = tokio::sync::mpsc::channel(1024);
        let socket_adverts_tx = (opts.elections == Elections::Socket).then_some(socket_tx);
        if opts.elections == Elections::Socket {
            warn!(
                "--elections socket: adverts count only after netfilter, as in keepalived; a firewall that drops them makes a second master"
            );
        }
        let mut d = Self {
            socket_adverts_tx,
            socket_adverts_rx,
            findings: Vec::new(),
            findings_tx,
            findings_rx,
            track_tx,
            track_rx,
            scripts: HashMap::new(),
            link_state: HashMap::new(),
            link_poller: None,
            group_state: Vec::new(),
            group_notifiers: Vec::new(),
            sources: HashMap::new(),
            samples: VecDeque::new(),
            control_rx: None,
            started_ns: monotonic_ns(),
            subscribers: Vec::new(),
            opts,
            netlink,
            capture,
            links: HashMap::new(),
            sockets: HashMap::new(),
            announcers: HashMap::new(),
            instances: Vec::new(),
            by_key: HashMap::new(),
            groups: Vec::new(),
            socket_counts: SocketCounts::default(),
            kernel_socket_counts: false,
            caps_kept: Vec::new(),
            sender,
            scheduling,
            cpu_watch: crate::starve::CpuWatch::open(),
            config: Config::default(),
        };
        let now = monotonic_ns();
        let mut started = Vec::new();
        d.config = config.clone();
        for cfg in &config.instances {
            let inst = d.prepare(cfg.clone()).await?;
            started.push(d.add_instance(inst));
        }
        d.link_groups();
        d.start_trackers().await;
        let (control_tx, control_rx) = crate::control::serve(&d.opts.control)
            .await
            .map_err(DaemonError::Control)?;
        d.control_rx = Some(control_rx);
        if let Some(addr) = d.opts.metrics {
            crate::metrics::serve(addr, control_tx)
                .await
                .map_err(|source| DaemonError::Metrics { addr, source })?;
        }
        for idx in started {
            d.apply_tracking(idx, now).await;
            d.startup(idx, now).await;
        }
        info!(instances = d.instances.len(), "vrrpd started");
        Ok(d)
    }

    /// Starts a runner for every vrrp_script in use and the link poller for tracked
    /// interfaces; keeps the runners of scripts that stay in use (reload).
    async fn start_trackers(&mut self) {
        let mut wanted: Vec<String> = Vec::new();
        for i in &self.instances {
            wanted.extend(i.cfg.track_scripts.iter().map(|t| t.name.clone()));
        }
        for g in &self.config.sync_groups {
            wanted.extend(g.track_scripts.iter().map(|t| t.name.clone()));
        }
        let stale: Vec<String> = self
            .scripts
            .keys()
            .filter(|k| !wanted.contains(k) || !self.config.scripts.contains_key(*k))
            .cloned()
            .collect();
        for name in stale {
            if let Some((h, _)) = self.scripts.remove(&name) {
                h.abort();
            }
        }
        for name in wanted {
            if self.scripts.contains_key(&name) {
                continue;
            }
            let Some(script) = self.config.scripts.get(&name).cloned() else {
                continue;
            };
            // keepalived refuses such scripts under enable_script_security; so does vrrpd, and
            // the track_script then counts as failed (init_fail), never as run.
            if self.config.global.enable_script_security {
                if let Some(why) = track::insecure_script(&script.command) {
                    error!("VRRP_Script({name}) refused by enable_script_security: {why}");
                    self.scripts
                        .insert(name, (tokio::spawn(async {}), Some(false)));
                    continue;
                }
            }
            let run_as = RunAs::resolve(script.user.as_ref(), &self.config.global);
            let ok = track::ScriptState::new(script.init_fail).ok;
            let handle = track::spawn_script(script, run_as, self.track_tx.clone());
            self.scripts.insert(name, (handle, ok));
        }
        let mut links: Vec<String> = Vec::new();
        for i in &self.instances {
            links.extend(i.cfg.track_interfaces.iter().map(|t| t.name.clone()));
            if !i.cfg.dont_track_primary {
                links.push(i.cfg.interface.clone());
            }
        }
        for g in &self.config.sync_groups {
            links.extend(g.track_interfaces.iter().map(|t| t.name.clone()));
        }
        links.sort();
        links.dedup();
        for l in &links {
            if !self.link_state.contains_key(l) {
                let up = self.netlink.link(l).await.is_ok_and(|x| x.up);
                self.link_state.insert(l.clone(), up);
            }
        }
        if let Some(p) = self.link_poller.take() {
            p.abort();
        }
        let (netlink, tx) = (self.netlink.clone(), self.track_tx.clone());
        let mut known = self.link_state.clone();
        self.link_poller = Some(tokio::spawn(async move {
            // Polling rtnetlink 5 times a second: simple, and fast enough next to a
            // Master_Down_Interval; the XDP path sees traffic, not carrier.
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                for l in &links {
                    let up = netlink.link(l).await.is_ok_and(|x| x.up);
                    if known.get(l) != Some(&up) {
                        known.insert(l.clone(), up);
                        if tx
                            .send(TrackEvent::Link {
                                ifname: l.clone(),
                                up,
                            })
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
        }));
    }

    /// What an instance tracks, with its current state.
    fn tracked(&self, idx: usize) -> Vec<Weighted> {
        let inst = &self.instances[idx];
        let mut out = Vec::new();
        let group = inst.group.and_then(|g| {
            self.config.sync_groups.iter().find(|sg| {
                self.groups.get(g).is_some_and(|m| m.contains(&idx))
                    && sg.members.contains(&inst.cfg.name)
            })
        });
        let scripts = inst
            .cfg
            .track_scripts
            .iter()
            .chain(group.into_iter().flat_map(|g| g.track_scripts.iter()));
        for t in scripts {
            let Some(s) = self.config.scripts.get(&t.name) else {
                continue;
            };
            let ok = self.scripts.get(&t.name).and_then(|(_, ok)| *ok);
            out.push(Weighted {
                weight: Some(t.weight.unwrap_or(s.weight)),
                reverse: t.reverse || s.weight_reverse,
                ok,
            });
        }
        let ifaces = inst
            .cfg
            .track_interfaces
            .iter()
            .chain(group.into_iter().flat_map(|g| g.track_interfaces.iter()));
        for t in ifaces {
            out.push(Weighted {
                weight: t.weight,
                reverse: t.reverse,
                ok: Some(self.link_state.get(&t.name).copied().unwrap_or(false)),
            });
        }
        if !inst.cfg.dont_track_primary {
            out.push(Weighted {
                weight: None,
                reverse: false,
                ok: Some(
                    self.link_state
                        .get(&inst.cfg.interface)
                        .copied()
                        .unwrap_or(true),
                ),
            });
        }
        out
    }

    /// Feeds the effective priority and the fault state into the instance's state machine.
    async fn apply_tracking(&mut self, idx: usize, now: u64) {
        let tracked = self.tracked(idx);
        let inst = &mut self.instances[idx];
        let mut actions = Vec::new();
        match track::effective_priority(inst.cfg.priority, &tracked) {
            None => {
                if !inst.faulted {
                    inst.faulted = true;
                    info!(
                        "({}) a tracked script or interface failed: FAULT",
                        inst.cfg.name
                    );
                    actions.extend(inst.fsm.step(Event::Fault(true), Instant(now)));
                }
            }
            Some(p) => {
                if inst.faulted {
                    inst.faulted = false;
                    info!("({}) tracking recovered", inst.cfg.name);
                    actions.extend(inst.fsm.step(Event::Fault(false), Instant(now)));
                }
                if p != inst.fsm.priority() {
                    info!(
                        "({}) Changing effective priority from {} to {p}",
                        inst.cfg.name,
                        inst.fsm.priority()
                    );
                    actions.extend(inst.fsm.step(Event::Priority(p), Instant(now)));
                }
            }
        }
        self.execute(idx, actions, now).await;
    }

    async fn handle_track(&mut self, event: TrackEvent) {
        match event {
            TrackEvent::Script { name, ok } => {
                if let Some(entry) = self.scripts.get_mut(&name) {
                    entry.1 = Some(ok);
                }
            }
            TrackEvent::Link { ifname, up } => {
                info!("interface {ifname} is {}", if up { "up" } else { "down" });
                self.link_state.insert(ifname, up);
            }
        }
        let now = monotonic_ns();
        for idx in 0..self.instances.len() {
            self.apply_tracking(idx, now).await;
        }
    }

    /// Resolves an instance's interface, source address and sockets; removes stale VIPs.
    async fn prepare(&mut self, cfg: config::Instance) -> Result<Inst, DaemonError> {
        let link = self.link(&cfg.interface).await?;
        let vips: Vec<IpAddr> = cfg.vips.iter().map(|v| v.addr).collect();
        let src = match cfg.unicast_src_ip.or(cfg.mcast_src_ip) {
            Some(a) => a,
            None => {
                self.netlink
                    .source_address(&link, cfg.family, &vips)
                    .await?
            }
        };
        if cfg.priority == fsm::PRIORITY_OWNER {
            let held: Vec<IpAddr> = self
                .netlink
                .addresses(&link)
                .await?
                .into_iter()
                .map(|a| a.addr)
                .collect();
            if let Some(missing) = vips.iter().find(|v| !held.contains(v)) {
                return Err(DaemonError::NotOwner {
                    instance: cfg.name.clone(),
                    interface: link.name.clone(),
                    addr: *missing,
                });
            }
        } else {
            // Left behind by a crash (or by keepalived): an address we would hold only as master.
            for v in cfg.vips.iter().chain(&cfg.excluded_vips) {
                let on = self.vip_link(&link, v).await?;
                if self.netlink.del_vip(&on, v.addr).await? {
                    info!(
                        "({}) removed stale VIP {} from {}",
                        cfg.name, v.addr, on.name
                    );
                }
            }
        }
        let group = match cfg.family {
            Family::V4 => IpAddr::V4(self.config_global_group4()),
            Family::V6 => IpAddr::V6(self.config_global_group6()),
        };
        let key = (link.index, cfg.family);
        if !self.sockets.contains_key(&key) {
            let sock = VrrpSocket::open(&link, cfg.family, src, group)?;
            // Elections from the wire need nothing from this socket but how many adverts got
            // past netfilter: the kernel counts them and keeps none, so that a flood costs no
            // copy and no wakeup here. keepalived's mode (--elections socket) reads them.
            let counted_in_kernel = self.socket_adverts_tx.is_none()
                && match self.capture.count_socket(std::os::fd::AsFd::as_fd(&sock.socket)) {
                    Ok(()) => true,
                    Err(e) => {
                        warn!("{}: counting in the kernel failed, reading the socket instead: {e}", link.name);
                        false
                    }
                };
            #[expect(
                deprecated,
                reason = "AsyncFd::register is unsafe; the AsyncFd owns the socket it registers"
            )]
            let fd = AsyncFd::new(SockFd(sock)).map_err(|source| NetError::Socket {
                ifname: link.name.clone(),
                op: "register socket",
                source,
            })?;
            let fd = Arc::new(fd);
            if counted_in_kernel {
                self.kernel_socket_counts = true;
            } else {
                tokio::spawn(count_socket(
                    Arc::clone(&fd),
                    Arc::clone(&self.socket_counts),
                    self.socket_adverts_tx.clone(),
                ));
            }
            self.sockets.insert(key, fd);
        }
        if let std::collections::hash_map::Entry::Vacant(e) = self.announcers.entry(link.index) {
            e.insert(Arc::new(Announcer::open(&link)?));
        }
        self.capture
            .watch(WatchKey::new(link.index, family_code(cfg.family), cfg.vrid))?;
        let dsts = if cfg.unicast_peers.is_empty() {
            vec![group]
        } else {
            cfg.unicast_peers.clone()
        };
        let params = fsm::Params {
            version: cfg.version,
            vrid: cfg.vrid,
            priority: cfg.priority,
            advert_interval_cs: cfg.advert_int_cs,
            preempt: cfg.preempt,
            preempt_delay: cfg.preempt_delay,
            start_as_master: cfg.state == config::InitialState::Master,
            primary: src,
            addresses: vips,
            auth: cfg.wire_auth(),
        };
        let notifier = Notifier::spawn(
            format!("({})", cfg.name),
            RunAs::resolve(None, &self.config.global),
        );
        Ok(Inst {
            fsm: fsm::Instance::new(params),
            cfg,
            link,
            src,
            dsts,
            group: None,
            garp_due: None,
            refresh_due: None,
            stats: Stats::default(),
            notifier,
            faulted: false,
            sender_stats: Arc::default(),
            sender_priority: None,
            sender_moved: false,
            late_max_samples: VecDeque::new(),
        })
    }

    fn config_global_group4(&self) -> std::net::Ipv4Addr {
        self.config.global.mcast_group4
    }
    fn config_global_group6(&self) -> std::net::Ipv6Addr {
        self.config.global.mcast_group6
    }

    async fn link(&mut self, name: &str) -> Result<Link, DaemonError> {
        if let Some(l) = self.links.get(name) {
            return Ok(l.clone());
        }
        let link = self.netlink.link(name).await?;
        self.capture.attach(name)?;
        self.links.insert(name.to_owned(), link.clone());
        Ok(link)
    }

    /// The interface a VIP goes on: its own `dev`, or the instance's.
    async fn vip_link(&mut self, default: &Link, vip: &config::Vip) -> Result<Link, DaemonError> {
        match &vip.dev {
            Some(dev) if dev != &default.name => {
                if let Some(l) = self.links.get(dev) {
                    Ok(l.clone())
                } else {
                    let l = self.netlink.link(dev).await?;
                    self.links.insert(dev.clone(), l.clone());
                    Ok(l)
                }
            }
            _ => Ok(default.clone()),
        }
    }

    fn add_instance(&mut self, inst: Inst) -> usize {
        let idx = self.instances.len();
        self.by_key.insert(inst.key(), idx);
        self.instances.push(inst);
        idx
    }

    fn link_groups(&mut self) {
        self.groups.clear();
        self.group_state = vec![State::Initialize; self.config.sync_groups.len()];
        self.group_notifiers = self
            .config
            .sync_groups
            .iter()
            .map(|g| {
                Notifier::spawn(
                    format!("GROUP({})", g.name),
                    RunAs::resolve(None, &self.config.global),
                )
            })
            .collect();
        for inst in &mut self.instances {
            inst.group = None;
        }
        for g in &self.config.sync_groups {
            let members: Vec<usize> = g
                .members
                .iter()
                .filter_map(|m| self.instances.iter().position(|i| &i.cfg.name == m))
                .collect();
            let gi = self.groups.len();
            for &m in &members {
                self.instances[m].group = Some(gi);
            }
            self.groups.push(members);
        }
    }

    async fn startup(&mut self, idx: usize, now: u64) {
        let actions = self.instances[idx].fsm.step(Event::Startup, Instant(now));
        self.execute(idx, actions, now).await;
    }

    async fn main_loop(&mut self) -> Result<(), DaemonError> {
        let mut sigterm = signal(SignalKind::terminate()).map_err(DaemonError::Signal)?;
        let mut sigint = signal(SignalKind::interrupt()).map_err(DaemonError::Signal)?;
        let mut sighup = signal(SignalKind::hangup()).map_err(DaemonError::Signal)?;
        let mut sigusr1 = signal(SignalKind::user_defined1()).map_err(DaemonError::Signal)?;
        let mut batch = Vec::new();
        let mut bad_records = 0u64;
        let mut control = self.control_rx.take();
        let mut next_sample = monotonic_ns();
        loop {
            let now = monotonic_ns();
            if now >= next_sample {
                self.handle_drops(now);
                self.refresh_socket_counts();
                self.sample(now);
                next_sample = now + SAMPLE_EVERY_NS;
                // The diagnosis runs beside the loop (it may run nft and ping).
                let (window, sources, ours, cpu) = self.diagnose_input();
                let tx = self.findings_tx.clone();
                tokio::spawn(async move {
                    let v = diagnose(window, sources, ours, cpu).await;
                    if let Ok(f) = serde_json::from_value(v["findings"].clone()) {
                        let _ = tx.try_send(f);
                    }
                });
            }
            let next = self
                .instances
                .iter()
                .filter_map(Inst::next_deadline)
                .min()
                .map_or(next_sample, |d| d.min(next_sample));
            let sleep = Duration::from_nanos(next.saturating_sub(now));
            tokio::select! {
                _ = sigterm.recv() => { info!("SIGTERM: stopping"); return Ok(()); }
                _ = sigint.recv() => { info!("SIGINT: stopping"); return Ok(()); }
                _ = sighup.recv() => {
                    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Reloading]);
                    self.reload().await;
                    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
                }
                _ = sigusr1.recv() => {
                    let text = serde_json::to_string_pretty(&self.status_json()).unwrap_or_default();
                    match std::fs::write(&self.opts.dump_file, text + "\n") {
                        Ok(()) => info!("SIGUSR1: state written to {}", self.opts.dump_file.display()),
                        Err(e) => warn!("SIGUSR1: cannot write {}: {e}", self.opts.dump_file.display()),
                    }
                }
                Some(ev) = self.track_rx.recv() => self.handle_track(ev).await,
                Some(found) = self.findings_rx.recv() => self.update_findings(found),
                Some(w) = self.socket_adverts_rx.recv() => {
                    let now = monotonic_ns();
                    self.elect(&w, now).await;
                }
                Some(req) = async { match control.as_mut() { Some(c) => c.recv().await, None => std::future::pending().await } } => {
                    match req.command {
                        crate::control::Command::Status => {
                            self.refresh_socket_counts();
                            let _ = req.reply.send(self.status_json());
                        }
                        crate::control::Command::Subscribe => {
                            if let Some(s) = req.stream {
                                if self.subscribers.len() < 16 {
                                    self.subscribers.push(s);
                                    let _ = req.reply.send(serde_json::json!({"version": crate::control::PROTOCOL_VERSION, "subscribed": true}));
                                } else {
                                    let _ = req.reply.send(serde_json::json!({"error": "too many subscribers (16)"}));
                                }
                            }
                        }
                        // Reading the ruleset runs nft: off the main loop.
                        crate::control::Command::Diagnose => {
                            self.handle_drops(monotonic_ns());
                            self.refresh_socket_counts();
                            let (window, sources, ours, cpu) = self.diagnose_input();
                            tokio::spawn(async move {
                                let _ = req.reply.send(diagnose(window, sources, ours, cpu).await);
                            });
                        }
                    }
                }
                r = self.capture.recv(&mut batch, &mut bad_records) => {
                    r?;
                    self.handle_batch(&mut batch).await;
                }
                () = tokio::time::sleep(sleep) => {
                    // Adverts that arrived while we slept come first: they may prove the
                    // master alive (their kernel stamps say when).
                    self.capture.drain(&mut batch, &mut bad_records);
                    self.handle_batch(&mut batch).await;
                    self.fire_timers().await;
                }
            }
        }
    }

    async fn handle_batch(&mut self, batch: &mut Vec<WireAdvert>) {
        let now = monotonic_ns();
        for w in batch.drain(..) {
            self.handle_wire(&w, now).await;
        }
    }

    async fn handle_wire(&mut self, w: &WireAdvert, now: u64) {
        let vrid = w.vrrp.get(1).copied().unwrap_or(0);
        let key = (w.ifindex, w.src, vrid);
        if self.sources.len() < MAX_SOURCES || self.sources.contains_key(&key) {
            let ifname = self.capture.ifname(w.ifindex).unwrap_or("?").to_owned();
            let s = self.sources.entry(key).or_default();
            s.ifname = ifname;
            s.vrid = vrid;
            s.version = w.vrrp.first().map_or(0, |b| b >> 4);
            s.priority = w.vrrp.get(2).copied().unwrap_or(0);
            if let Ok(p) = crate::packet::Packet::new_checked(&w.vrrp[..], w.family) {
                s.interval_cs = p.interval_cs();
                s.auth = p.auth(w.family).name().to_owned();
            }
            if s.last_seen_ns != 0 && w.ktime_ns > s.last_seen_ns {
                s.gaps.push_back(w.ktime_ns - s.last_seen_ns);
                if s.gaps.len() > 64 {
                    s.gaps.pop_front();
                }
                s.timed_gaps.push_back((w.ktime_ns, w.ktime_ns - s.last_seen_ns));
                if s.timed_gaps.len() > 256 {
                    s.timed_gaps.pop_front();
                }
            }
            s.wire += 1;
            s.last_seen_ns = w.ktime_ns;
            s.dst = Some(w.dst);
        }
        if !self.subscribers.is_empty() {
            let ifname = self.capture.ifname(w.ifindex).unwrap_or("?");
            let line = crate::control::record_json(w, ifname).to_string() + "\n";
            // A subscriber that falls behind loses records; one that left is forgotten.
            self.subscribers.retain(|s| {
                !matches!(
                    s.try_send(line.clone()),
                    Err(tokio::sync::mpsc::error::TrySendError::Closed(_))
                )
            });
        }
        if self.socket_adverts_tx.is_none() {
            self.elect(w, now).await;
        }
    }

    /// Feeds an advert to its instance's state machine.
    async fn elect(&mut self, w: &WireAdvert, now: u64) {
        let vrid = w.vrrp.get(1).copied().unwrap_or(0);
        let Some(&idx) = self.by_key.get(&(w.ifindex, w.family, vrid)) else {
            debug!(ifindex = w.ifindex, src = %w.src, vrid, "advert for no instance of ours");
            return;
        };
        let inst = &mut self.instances[idx];
        if w.src == inst.src {
            return; // our own, looped back by a switch or a bridge in hairpin mode
        }
        if w.verdict != Verdict::Ok {
            inst.drop_reason(&format!("{:?}", w.verdict));
            note_drop(&mut self.sources, w, &format!("{:?}", w.verdict), now);
            debug!(
                "({}) dropped advert from {}: {:?} (TTL {})",
                inst.cfg.name, w.src, w.verdict, w.ttl
            );
            return;
        }
        let (advert, info) = match Advert::parse(&w.vrrp, w.src, w.dst) {
            Ok(a) => a,
            Err(e) => {
                let reason = format!("{e:?}")
                    .split(['(', ' ', '{'])
                    .next()
                    .unwrap_or("decode")
                    .to_owned();
                inst.drop_reason(&reason);
                note_drop(&mut self.sources, w, &reason, now);
                debug!("({}) undecodable advert from {}: {e}", inst.cfg.name, w.src);
                return;
            }
        };
        let _ = info;
        debug!(
            "({}) advert from {} priority {} (TTL {}, stamp {})",
            inst.cfg.name, w.src, advert.priority, w.ttl, w.ktime_ns
        );
        inst.stats.adverts_received += 1;
        let actions = inst.fsm.step(
            Event::Advert {
                src: w.src,
                advert,
                arrived: Instant(w.ktime_ns),
            },
            Instant(now),
        );
        for a in &actions {
            if let Action::Drop(reason) = a {
                let r = format!("{reason:?}")
                    .split(['(', ' ', '{'])
                    .next()
                    .unwrap_or("invalid")
                    .to_owned();
                note_drop(&mut self.sources, w, &r, now);
            }
        }
        self.execute(idx, actions, now).await;
    }

    async fn fire_timers(&mut self) {
        let now = monotonic_ns();
        for idx in 0..self.instances.len() {
            let inst = &mut self.instances[idx];
            if inst.fsm.next_deadline().is_some_and(|d| d.0 <= now) {
                // A master's timer is its advert cadence, which the advert thread keeps.
                let periodic = inst.fsm.state() == State::Master && inst.sender_priority.is_some();
                let mut actions = inst.fsm.step(Event::Timer, Instant(now));
                if periodic {
                    actions.retain(|a| !matches!(a, Action::SendAdvert { .. }));
                }
                self.execute(idx, actions, now).await;
            }
            let inst = &mut self.instances[idx];
            let master = inst.fsm.state() == State::Master;
            if inst.garp_due.is_some_and(|d| d <= now) {
                inst.garp_due = None;
                if master {
                    let repeat = inst.cfg.garp.master_repeat;
                    self.announce(idx, repeat);
                }
            }
            let inst = &mut self.instances[idx];
            if inst.refresh_due.is_some_and(|d| d <= now) {
                let period = inst.cfg.garp.master_refresh;
                inst.refresh_due =
                    master.then(|| now + u64::try_from(period.as_nanos()).unwrap_or(u64::MAX));
                if master {
                    let repeat = inst.cfg.garp.master_refresh_repeat;
                    self.announce(idx, repeat);
                }
            }
        }
    }

    /// Executes the actions of one step, and the sync-group steps they cause, in order.
    async fn execute(&mut self, idx: usize, actions: Vec<Action>, now: u64) {
        let mut queue = VecDeque::from([(idx, actions, true)]);
        let mut touched = vec![idx];
        while let Some((idx, actions, propagate)) = queue.pop_front() {
            if !touched.contains(&idx) {
                touched.push(idx);
            }
            for action in actions {
                if let Action::Transition { to, .. } = action
                    && propagate
                    && let Some(g) = self.instances[idx].group
                {
                    for &m in &self.groups[g] {
                        if m != idx {
                            let follow = self.instances[m].fsm.step(Event::Sync(to), Instant(now));
                            queue.push_back((m, follow, false));
                        }
                    }
                }
                self.act(idx, action, now).await;
            }
        }
        for idx in touched {
            self.sync_sender(idx);
        }
    }

    /// Tells the advert thread what this instance sends now: its adverts from the FSM's next
    /// deadline on while master, nothing otherwise. Only when that changed.
    fn sync_sender(&mut self, idx: usize) {
        let inst = &mut self.instances[idx];
        let want = (inst.fsm.state() == State::Master).then(|| inst.fsm.priority());
        if want == inst.sender_priority && !inst.sender_moved {
            return;
        }
        inst.sender_moved = false;
        inst.sender_priority = want;
        let slot = match (want, inst.fsm.adver_deadline()) {
            (Some(priority), Some(next)) => {
                let Some(sock) = self.sockets.get(&(inst.link.index, inst.cfg.family)) else {
                    return;
                };
                let Ok(socket) = sock.get_ref().0.tx_clone() else {
                    inst.sender_priority = None;
                    return;
                };
                let (advert, mode) = inst.advert(priority);
                let packets = inst
                    .dsts
                    .iter()
                    .map(|d| (sock.get_ref().0.dst_addr(*d), advert.emit(inst.src, *d, mode)))
                    .collect();
                Some(crate::sender::Slot {
                    name: inst.cfg.name.clone(),
                    socket: Arc::new(socket),
                    packets,
                    interval_ns: u64::from(inst.cfg.advert_int_cs) * 10_000_000,
                    next_ns: next.0,
                    stats: Arc::clone(&inst.sender_stats),
                })
            }
            _ => None,
        };
        if slot.is_none() {
            inst.sender_priority = None;
        }
        self.sender.set(&inst.cfg.name, slot);
    }

    async fn act(&mut self, idx: usize, action: Action, now: u64) {
        match action {
            Action::SendAdvert { priority } => self.send_advert(idx, priority),
            Action::AddVips => self.apply_vips(idx, true).await,
            Action::RemoveVips => self.apply_vips(idx, false).await,
            Action::Announce => {
                let inst = &mut self.instances[idx];
                let garp = inst.cfg.garp;
                if !garp.master_delay.is_zero() {
                    inst.garp_due =
                        Some(now + u64::try_from(garp.master_delay.as_nanos()).unwrap_or(u64::MAX));
                }
                if !garp.master_refresh.is_zero() {
                    inst.refresh_due = Some(
                        now + u64::try_from(garp.master_refresh.as_nanos()).unwrap_or(u64::MAX),
                    );
                }
                self.announce(idx, garp.master_repeat);
            }
            Action::Transition { from, to } => {
                let inst = &mut self.instances[idx];
                if to == State::Master {
                    inst.stats.became_master += 1;
                }
                if to != State::Master {
                    inst.garp_due = None;
                    inst.refresh_due = None;
                }
                info!(
                    from = from.keepalived_name(),
                    priority = inst.fsm.priority(),
                    "({}) Entering {} STATE",
                    inst.cfg.name,
                    to.keepalived_name()
                );
                let state = if to == State::Initialize {
                    "STOP"
                } else {
                    to.keepalived_name()
                };
                let priority = inst.fsm.priority();
                inst.notifier.send(track::notify_commands(
                    &inst.cfg.notify,
                    "INSTANCE",
                    &inst.cfg.name,
                    state,
                    priority,
                ));
                self.fifo(&track::fifo_line(
                    "INSTANCE",
                    &self.instances[idx].cfg.name,
                    state,
                    priority,
                ));
                if let Some(g) = self.instances[idx].group
                    && self.group_state.get(g) != Some(&to)
                {
                    if let Some(gs) = self.group_state.get_mut(g) {
                        *gs = to;
                    }
                    let cfg = &self.config.sync_groups[g];
                    self.group_notifiers[g].send(track::notify_commands(
                        &cfg.notify,
                        "GROUP",
                        &cfg.name,
                        state,
                        priority,
                    ));
                    self.fifo(&track::fifo_line("GROUP", &cfg.name, state, priority));
                }
            }
            Action::Drop(reason) => {
                let inst = &mut self.instances[idx];
                inst.drop_reason(
                    format!("{reason:?}")
                        .split(['(', ' ', '{'])
                        .next()
                        .unwrap_or("invalid"),
                );
                debug!("({}) dropped advert: {reason}", inst.cfg.name);
            }
        }
    }

    /// Writes a line to keepalived's notify_fifo / vrrp_notify_fifo, if configured and read.
    fn fifo(&self, line: &str) {
        use std::io::Write as _;
        for (path, _) in [
            &self.config.global.notify_fifo,
            &self.config.global.vrrp_notify_fifo,
        ]
        .into_iter()
        .flatten()
        {
            let open = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags_nonblock()
                .open(path);
            match open {
                Ok(mut f) => {
                    let _ = f.write_all(line.as_bytes());
                }
                Err(e) => debug!("notify fifo {path}: {e}"),
            }
        }
    }

    fn send_advert(&mut self, idx: usize, priority: u8) {
        let inst = &mut self.instances[idx];
        let (advert, mode) = inst.advert(priority);
        let Some(sock) = self.sockets.get(&(inst.link.index, inst.cfg.family)) else {
            return;
        };
        inst.sender_moved = true;
        for dst in &inst.dsts {
            let bytes = advert.emit(inst.src, *dst, mode);
            match sock.get_ref().0.send(*dst, &bytes) {
                Ok(()) => inst.stats.adverts_sent += 1,
                // EPERM from a raw socket: netfilter dropped the packet on output. Counted for
                // `diagnose` (which names the rule) rather than logged every advert.
                Err(NetError::Socket { source, .. })
                    if source.raw_os_error() == Some(libc::EPERM) =>
                {
                    if inst.stats.send_refused == 0 {
                        warn!(
                            "({}) the kernel refuses our adverts (EPERM): a firewall drops them on output; see `vrrpd diagnose`",
                            inst.cfg.name
                        );
                    }
                    inst.stats.send_refused += 1;
                    inst.stats.send_refused_last_ns = monotonic_ns();
                }
                Err(e) => warn!("({}) {e}", inst.cfg.name),
            }
        }
    }

    /// Adds (MASTER) or removes the instance's VIPs, `virtual_ipaddress_excluded` included,
    /// each on its own `dev` or the instance's interface. A failure is logged, not fatal: the
    /// other addresses still go.
    async fn apply_vips(&mut self, idx: usize, add: bool) {
        let inst = &self.instances[idx];
        let (name, link) = (inst.cfg.name.clone(), inst.link.clone());
        let vips: Vec<config::Vip> = inst
            .cfg
            .vips
            .iter()
            .chain(&inst.cfg.excluded_vips)
            .cloned()
            .collect();
        let what = if add { "add" } else { "remove" };
        for v in vips {
            let on = match self.vip_link(&link, &v).await {
                Ok(l) => l,
                Err(e) => {
                    error!("({name}) cannot {what} VIP {}: {e}", v.addr);
                    continue;
                }
            };
            let done = if add {
                self.netlink.add_vip(&on, &v).await
            } else {
                self.netlink.del_vip(&on, v.addr).await.map(|_| ())
            };
            if let Err(e) = done {
                error!("({name}) cannot {what} VIP {}/{}: {e}", v.addr, v.prefix);
            }
        }
    }

    /// `repeat` gratuitous ARPs / NAs for every VIP, spaced by vrrp_garp_interval.
    fn announce(&self, idx: usize, repeat: u32) {
        let inst = &self.instances[idx];
        let Some(announcer) = self.announcers.get(&inst.link.index).cloned() else {
            return;
        };
        let addrs: Vec<IpAddr> = inst.cfg.vips.iter().map(|v| v.addr).collect();
        let (ifindex, name) = (inst.link.index, inst.cfg.name.clone());
        let spacing = if addrs.first().is_some_and(IpAddr::is_ipv6) {
            inst.cfg.garp.gna_interval
        } else {
            inst.cfg.garp.interval
        };
        tokio::spawn(async move {
            for round in 0..repeat.max(1) {
                if round > 0 && !spacing.is_zero() {
                    tokio::time::sleep(spacing).await;
                }
                for a in &addrs {
                    if let Err(e) = announcer.announce(*a, ifindex) {
                        warn!("({name}) {e}");
                        return;
                    }
                }
            }
        });
    }

    /// SIGHUP: re-read the config. Unchanged instances keep their state (no transition, no
    /// gap); changed ones restart; removed ones stop as on SIGTERM; new ones start.
    async fn reload(&mut self) {
        info!("SIGHUP: reloading {}", self.opts.config.display());
        let (config, diags) = match config::load_checked(&self.opts.config, &self.opts.load) {
            Ok(c) => c,
            Err(e) => {
                error!("reload refused, keeping the running config:\n{e}");
                return;
            }
        };
        for d in &diags.0 {
            warn!("{d}");
        }
        let now = monotonic_ns();
        let old = std::mem::take(&mut self.instances);
        self.by_key.clear();
        let mut kept = Vec::new();
        let mut stopping = Vec::new();
        for inst in old {
            match config.instances.iter().find(|c| c.name == inst.cfg.name) {
                Some(c) if same_behaviour(c, &inst.cfg) => kept.push(inst),
                _ => stopping.push(inst),
            }
        }
        for mut inst in stopping {
            let actions = inst.fsm.step(Event::Shutdown, Instant(now));
            let idx = self.add_instance(inst);
            self.execute(idx, actions, now).await;
            let gone = self.instances.pop();
            if let Some(g) = gone {
                self.by_key.remove(&g.key());
                let _ = self.capture.unwatch(&WatchKey::new(
                    g.link.index,
                    family_code(g.cfg.family),
                    g.cfg.vrid,
                ));
                info!("({}) stopped by reload", g.cfg.name);
            }
        }
        let mut fresh = Vec::new();
        for inst in kept {
            self.add_instance(inst);
        }
        self.config = config.clone();
        for c in &config.instances {
            if self.instances.iter().any(|i| i.cfg.name == c.name) {
                continue;
            }
            match self.prepare(c.clone()).await {
                Ok(inst) => fresh.push(self.add_instance(inst)),
                Err(e) => error!("({}) not started: {e}", c.name),
            }
        }
        self.link_groups();
        self.start_trackers().await;
        for idx in fresh {
            self.apply_tracking(idx, now).await;
            self.startup(idx, now).await;
        }
        info!(instances = self.instances.len(), "reload done");
    }

    /// Logs a finding once when it appears and once when it goes away.
    fn update_findings(&mut self, found: Vec<crate::diag::Finding>) {
        let key = |f: &crate::diag::Finding| (f.kind.clone(), f.ifname.clone(), f.source, f.vrid);
        for f in &found {
            if !self.findings.iter().any(|o| key(o) == key(f)) {
                warn!(kind = %f.kind, "finding: {}", f.message);
            }
        }
        for o in &self.findings {
            if !found.iter().any(|f| key(f) == key(o)) {
                info!(kind = %o.kind, "cleared: {} on {} (VRID {}{})", o.kind, o.ifname, o.vrid, o.source.map(|s| format!(", {s}")).unwrap_or_default());
            }
        }
        self.findings = found;
    }

    /// Files the kernel's drops (skb:kfree_skb) under the source or instance they belong to.
    fn handle_drops(&mut self, now: u64) {
        let mut drops = Vec::new();
        self.capture.drain_drops(&mut drops);
        for (d, reason) in drops {
            if crate::drops::is_benign(&reason) {
                continue;
            }
            debug!(src = %d.src, dst = %d.dst, vrid = d.vrid, ifindex = d.ifindex, %reason, "kernel dropped a VRRP packet");
            let bump = |m: &mut HashMap<String, (u64, u64)>| {
                let e = m.entry(reason.clone()).or_default();
                e.0 += 1;
                e.1 = now;
            };
            if let Some(inst) = self
                .instances
                .iter_mut()
                .find(|i| i.src == d.src && i.cfg.vrid == d.vrid)
            {
                bump(&mut inst.stats.kernel_drops);
            } else if let Some(s) = self.sources.get_mut(&(d.ifindex, d.src, d.vrid)) {
                bump(&mut s.kernel_drops);
            } else if let Some(s) = self
                .sources
                .iter_mut()
                .find(|((_, src, vrid), _)| *src == d.src && *vrid == d.vrid)
                .map(|(_, s)| s)
            {
                bump(&mut s.kernel_drops);
            }
        }
    }

    /// Copies the kernel's per-source socket counts into `socket_counts`.
    fn refresh_socket_counts(&mut self) {
        if !self.kernel_socket_counts {
            return;
        }
        let counts = self.capture.socket_counts();
        // Replaced, not merged: the kernel's map is an LRU of 4096 sources, and so is this.
        *self
            .socket_counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = counts.into_iter().collect();
    }

    fn socket_count(&self, key: &SourceKey) -> u64 {
        self.socket_counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .copied()
            .unwrap_or(0)
    }

    /// Keeps the totals per source and instance every few seconds: the diagnosis window.
    fn sample(&mut self, now: u64) {
        // Sources silent for 10 minutes are forgotten, so that a flood of spoofed sources
        // cannot keep a real new peer out of the table for good.
        self.sources
            .retain(|_, s| now.saturating_sub(s.last_seen_ns) < 600_000_000_000);
        let sources = self
            .sources
            .iter()
            .map(|(k, s)| {
                (
                    *k,
                    (
                        s.wire,
                        self.socket_count(k),
                        totals(&s.dropped),
                        totals(&s.kernel_drops),
                    ),
                )
            })
            .collect();
        let ours = self
            .instances
            .iter()
            .map(|i| ((i.src, i.cfg.vrid), totals(&i.stats.kernel_drops)))
            .collect();
        let late = self
            .instances
            .iter()
            .map(|i| {
                let st = &i.sender_stats;
                (
                    i.cfg.name.clone(),
                    (
                        st.late.load(std::sync::atomic::Ordering::Relaxed),
                        st.sent.load(std::sync::atomic::Ordering::Relaxed),
                    ),
                )
            })
            .collect();
        for i in &mut self.instances {
            let worst = i
                .sender_stats
                .late_max_ns
                .swap(0, std::sync::atomic::Ordering::Relaxed);
            i.late_max_samples.push_back(worst);
            while i.late_max_samples.len() > 2 {
                i.late_max_samples.pop_front();
            }
        }
        let cpu = self.cpu_watch.sample(&[self.sender.tid, nix::unistd::getpid().as_raw()]);
        self.samples.push_back(Sample {
            at: now,
            sources,
            ours,
            late,
            cpu,
        });
        while self.samples.len() > 4 {
            self.samples.pop_front();
        }
    }

    fn diagnose_input(
        &mut self,
    ) -> (
        u64,
        Vec<crate::diag::SourceWindow>,
        Vec<crate::diag::Ours>,
        crate::diag::Cpu,
    ) {
        let cpu_now = self
            .cpu_watch
            .sample(&[self.sender.tid, nix::unistd::getpid().as_raw()]);
        let now = monotonic_ns();
        // The newest sample at least 4 s old (a window of 4 to 9 s, so that a fixed problem
        // clears soon), else the oldest one, else everything since start.
        let base = self
            .samples
            .iter()
            .rev()
            .find(|b| now.saturating_sub(b.at) >= 4_000_000_000)
            .or_else(|| self.samples.front());
        let window_s = base.map_or(now.saturating_sub(self.started_ns), |b| now - b.at) / 1_000_000_000;
        let since = base.map_or(self.started_ns, |b| b.at);
        let sources = self
            .sources
            .iter()
            .map(|(k, s)| {
                let b = base.and_then(|b| b.sources.get(k));
                let (w0, s0) = b.map_or((0, 0), |b| (b.0, b.1));
                let mj = mean_jitter(&s.gaps);
                crate::diag::SourceWindow {
                    ifname: s.ifname.clone(),
                    src: k.1,
                    vrid: s.vrid,
                    version: s.version,
                    priority: s.priority,
                    interval_cs: s.interval_cs,
                    wire: s.wire.saturating_sub(w0),
                    socket: self.socket_count(k).saturating_sub(s0),
                    dropped: since_base(&s.dropped, b.map(|b| &b.2)),
                    kernel_drops: since_base(&s.kernel_drops, b.map(|b| &b.3)),
                    dst: s.dst,
                    gap_max_s: s
                        .timed_gaps
                        .iter()
                        .filter(|(at, _)| *at >= since)
                        .map(|(_, g)| *g)
                        .max()
                        .map(|g| g as f64 / 1e9),
                    bursts: s
                        .timed_gaps
                        .iter()
                        .filter(|(at, g)| {
                            *at >= since && *g < u64::from(s.interval_cs.max(1)) * 10_000_000 / 4
                        })
                        .count() as u64,
                    auth: s.auth.clone(),
                    last_seen_s: now.saturating_sub(s.last_seen_ns) as f64 / 1e9,
                    interval_mean_s: mj.map(|m| m.0),
                    interval_jitter_s: mj.map(|m| m.1),
                    wire_total: s.wire,
                    socket_total: self.socket_count(k),
                    silent: {
                        let age = now.saturating_sub(s.last_seen_ns);
                        let interval = u64::from(s.interval_cs.max(1)) * 10_000_000;
                        s.priority > 0 && age > 3 * interval && age < 600_000_000_000
                    },
                    answers_ping: None,
                }
            })
            .collect();
        let ours = self
            .instances
            .iter()
            .map(|i| crate::diag::Ours {
                name: i.cfg.name.clone(),
                ifname: i.link.name.clone(),
                vrid: i.cfg.vrid,
                version: i.cfg.version.number(),
                master: i.fsm.state() == State::Master,
                priority: i.fsm.priority(),
                interval_cs: i.cfg.advert_int_cs,
                src: i.src,
                send_refused: {
                    use std::sync::atomic::Ordering::Relaxed;
                    let st = &i.sender_stats;
                    let last = i.stats.send_refused_last_ns.max(st.refused_last_ns.load(Relaxed));
                    if last >= since {
                        i.stats.send_refused + st.refused.load(Relaxed)
                    } else {
                        0
                    }
                },
                sent: i.stats.adverts_sent
                    + i.sender_stats.sent.load(std::sync::atomic::Ordering::Relaxed),
                kernel_drops: since_base(
                    &i.stats.kernel_drops,
                    base.and_then(|b| b.ours.get(&(i.src, i.cfg.vrid))),
                ),
                late: {
                    let (l0, _) = base.and_then(|b| b.late.get(&i.cfg.name)).copied().unwrap_or((0, 0));
                    i.sender_stats.late.load(std::sync::atomic::Ordering::Relaxed).saturating_sub(l0)
                },
                periodic: {
                    let (_, s0) = base.and_then(|b| b.late.get(&i.cfg.name)).copied().unwrap_or((0, 0));
                    i.sender_stats.sent.load(std::sync::atomic::Ordering::Relaxed).saturating_sub(s0)
                },
                late_max_ms: i
                    .late_max_samples
                    .iter()
                    .copied()
                    .chain([i.sender_stats.late_max_ns.load(std::sync::atomic::Ordering::Relaxed)])
                    .max()
                    .unwrap_or(0) as f64
                    / 1e6,
            })
            .collect();
        let cpu0 = base.map(|b| b.cpu).unwrap_or_default();
        let cpu = crate::diag::Cpu {
            throttled_periods: cpu_now.nr_throttled.saturating_sub(cpu0.nr_throttled),
            throttled_ms: cpu_now.throttled_ns.saturating_sub(cpu0.throttled_ns) as f64 / 1e6,
            runq_wait_ms: cpu_now.runq_wait_ns.saturating_sub(cpu0.runq_wait_ns) as f64 / 1e6,
            not_realtime: match &self.scheduling {
                crate::sender::Scheduling::Fifo(_) => None,
                crate::sender::Scheduling::Normal(why) => Some(why.clone()),
            },
            cgroup_dir: self.cpu_watch.cgroup_dir.as_ref().map(|d| d.display().to_string()),
            cgroup_v1: self.cpu_watch.v1,
        };
        (window_s.max(1), sources, ours, cpu)
    }

    fn status_json(&self) -> serde_json::Value {
        let now = monotonic_ns();
        let secs = |ns: u64| ns as f64 / 1e9;
        let instances: Vec<serde_json::Value> = self
            .instances
            .iter()
            .enumerate()
            .map(|(idx, i)| {
                let tracked: Vec<serde_json::Value> = i
                    .cfg
                    .track_scripts
                    .iter()
                    .map(|t| {
                        let weight = t.weight.or_else(|| self.config.scripts.get(&t.name).map(|s| s.weight));
                        serde_json::json!({"kind": "script", "name": t.name, "ok": self.scripts.get(&t.name).and_then(|(_, ok)| *ok), "weight": weight})
                    })
                    .chain(i.cfg.track_interfaces.iter().map(|t| serde_json::json!({"kind": "interface", "name": t.name, "ok": self.link_state.get(&t.name), "weight": t.weight})))
                    .collect();
                let _ = idx;
                serde_json::json!({
                    "name": i.cfg.name,
                    "interface": i.link.name,
                    "vrid": i.cfg.vrid,
                    "family": if i.cfg.family == Family::V4 { "ipv4" } else { "ipv6" },
                    "version": i.cfg.version.number(),
                    "state": i.fsm.state().keepalived_name(),
                    "since_s": secs(now.saturating_sub(i.fsm.since.0)),
                    "priority": {"base": i.cfg.priority, "effective": i.fsm.priority(), "tracking": tracked},
                    "source": i.src,
                    "vips": i.cfg.vips.iter().map(|v| format!("{}/{}", v.addr, v.prefix)).collect::<Vec<_>>(),
                    "holds_vips": i.fsm.state() == State::Master,
                    "master": match (i.fsm.state(), i.fsm.master) {
                        (State::Master, _) => serde_json::json!({"address": i.src, "priority": i.fsm.priority(), "self": true}),
                        (_, Some((addr, prio, int_cs, seen))) => serde_json::json!({"address": addr, "priority": prio, "advert_int_s": f64::from(int_cs) / 100.0, "seen_s_ago": secs(now.saturating_sub(seen.0)), "self": false}),
                        _ => serde_json::Value::Null,
                    },
                    "advert_int_s": f64::from(i.cfg.advert_int_cs) / 100.0,
                    "master_adver_interval_s": i.fsm.master_adver_interval().as_secs_f64(),
                    "master_down_interval_s": i.fsm.master_down_interval().as_secs_f64(),
                    "counters": counters_json(i),
                })
            })
            .collect();
        let xdp = self
            .capture
            .counters()
            .map(|c| {
                c.iter()
                    .map(|(k, v)| (k.to_owned(), serde_json::json!(v)))
                    .collect::<serde_json::Map<_, _>>()
            })
            .unwrap_or_default();
        let sources: Vec<serde_json::Value> = self
            .sources
            .iter()
            .map(|(k, s)| {
                let mj = mean_jitter(&s.gaps);
                serde_json::json!({
                    "interface": s.ifname, "source": k.1, "vrid": s.vrid, "priority": s.priority,
                    "last_seen_s": secs(now.saturating_sub(s.last_seen_ns)),
                    "interval_mean_s": mj.map(|m| m.0), "interval_jitter_s": mj.map(|m| m.1),
                    "wire": s.wire, "socket": self.socket_count(k),
                })
            })
            .collect();
        serde_json::json!({
            "version": crate::control::PROTOCOL_VERSION,
            "pid": std::process::id(),
            "uptime_s": secs(now.saturating_sub(self.started_ns)),
            "instances": instances,
            "sources": sources,
            "findings": self.findings,
            "interfaces": self.capture.attached(),
            "drop_reasons": match self.capture.drop_probe() {
                Ok(()) => "skb:kfree_skb".to_owned(),
                Err(why) => format!("unavailable: {why}"),
            },
            "xdp": xdp,
            "capabilities": self.caps_kept,
            "advert_thread": self.scheduling,
        })
    }

    /// SIGTERM / SIGINT: masters send priority 0 and remove their VIPs (RFC 5798 6.4.3).
    async fn stop(&mut self) {
        // The advert thread must not send an advert with our old priority after priority 0.
        for inst in &mut self.instances {
            self.sender.set(&inst.cfg.name, None);
            inst.sender_priority = None;
        }
        let now = monotonic_ns();
        for idx in 0..self.instances.len() {
            let actions = self.instances[idx].fsm.step(Event::Shutdown, Instant(now));
            // No sync-group propagation: every member stops anyway.
            for a in actions {
                self.act(idx, a, now).await;
            }
        }
        // notify_stop and friends run to the end (bounded), as keepalived's do.
        for inst in &mut self.instances {
            inst.notifier.finish(Duration::from_secs(5)).await;
        }
        for n in &mut self.group_notifiers {
            n.finish(Duration::from_secs(5)).await;
        }
        info!("vrrpd stopped");
    }
}

fn family_code(f: Family) -> u16 {
    match f {
        Family::V4 => vrrp_common::AF_INET,
        Family::V6 => vrrp_common::AF_INET6,
    }
}

/// Whether two instance configs behave the same (file positions do not count).
fn same_behaviour(a: &config::Instance, b: &config::Instance) -> bool {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.remove("loc");
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let (Ok(mut x), Ok(mut y)) = (serde_json::to_value(a), serde_json::to_value(b)) else {
        return false;
    };
    strip(&mut x);
    strip(&mut y);
    x == y
}

/// Reads what reaches a raw socket (after netfilter) and counts it per source. Reading also
/// keeps the socket's buffer from filling, which would be a drop reason of its own.
async fn count_socket(fd: Arc<AsyncFd<SockFd>>, counts: SocketCounts, forward: Option<SocketTx>) {
    let mut buf = [0u8; 2048];
    loop {
        let Ok(mut guard) = fd.readable().await else {
            return;
        };
        loop {
            match guard.get_inner().0.recv(&mut buf) {
                Ok((n, Some(src))) => {
                    let sock = &guard.get_inner().0;
                    // IPv4 raw sockets deliver the IP header; IPv6 ones start at VRRP.
                    let vrrp_at = if sock.family == Family::V4 {
                        usize::from(buf[0] & 0x0f) * 4
                    } else {
                        0
                    };
                    let key = (sock.ifindex, src, buf[..n].get(vrrp_at + 1).copied().unwrap_or(0));
                    {
                        let mut c = counts
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        if c.len() < 4096 || c.contains_key(&key) {
                            *c.entry(key).or_default() += 1;
                        }
                    }
                    if let Some(tx) = &forward {
                        if let Some(w) = socket_advert(sock, &buf[..n], src) {
                            // Full: the main loop is behind; a lost advert is what a full
                            // socket buffer would have done too.
                            let _ = tx.try_send(w);
                        }
                    }
                }
                Ok((_, None)) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    guard.clear_ready();
                    break;
                }
                Err(_) => return,
            }
        }
    }
}

/// O_NONBLOCK on open, so that a FIFO without a reader does not block the daemon.
trait NonBlock {
    fn custom_flags_nonblock(&mut self) -> &mut Self;
}
impl NonBlock for std::fs::OpenOptions {
    fn custom_flags_nonblock(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::custom_flags(self, libc::O_NONBLOCK)
    }
}

fn note_drop(
    sources: &mut HashMap<SourceKey, SourceStats>,
    w: &WireAdvert,
    reason: &str,
    now: u64,
) {
    let vrid = w.vrrp.get(1).copied().unwrap_or(0);
    if let Some(s) = sources.get_mut(&(w.ifindex, w.src, vrid)) {
        let e = s.dropped.entry(reason.to_owned()).or_default();
        e.0 += 1;
        e.1 = now;
    }
}

async fn diagnose(
    window_s: u64,
    mut sources: Vec<crate::diag::SourceWindow>,
    ours: Vec<crate::diag::Ours>,
    cpu: crate::diag::Cpu,
) -> serde_json::Value {
    // Is a silent router up? Ask it (ICMP echo, 300 ms).
    for s in sources.iter_mut().filter(|s| s.silent) {
        s.answers_ping = Some(crate::net::ping(s.src, &s.ifname, Duration::from_millis(300)).await);
    }
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    let mut kernel = crate::diag::Kernel {
        cpu,
        ..crate::diag::Kernel::default()
    };
    for s in &sources {
        let path = format!("/proc/sys/net/ipv4/conf/{}/rp_filter", s.ifname);
        if let Some(v) = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            kernel.rp_filter.insert(s.ifname.clone(), v);
        }
    }
    if let Ok(igmp) = std::fs::read_to_string("/proc/net/igmp") {
        let igmp6 = std::fs::read_to_string("/proc/net/igmp6").unwrap_or_default();
        kernel.groups = Some(crate::diag::multicast_groups(&igmp, &igmp6));
    }
    let mut found = crate::diag::findings(&host, window_s, &sources, &ours, &kernel);
    // The ruleset only matters when something is lost in the kernel: run nft only then.
    if found
        .iter()
        .any(|f| f.kind == "lost-after-xdp" || f.kind == "dropped-on-output")
    {
        let ruleset = tokio::time::timeout(
            Duration::from_secs(3),
            tokio::process::Command::new("nft")
                .args(["-j", "list", "ruleset"])
                .output(),
        )
        .await;
        match ruleset {
            Ok(Ok(out)) if out.status.success() => {
                kernel.drop_rules = serde_json::from_slice(&out.stdout)
                    .map(|v| crate::diag::vrrp_drop_rules(&v))
                    .unwrap_or_default();
            }
            Ok(Ok(out)) => debug!(
                "nft -j list ruleset: {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Ok(Err(e)) => debug!("nft -j list ruleset: {e}"),
            Err(_) => debug!("nft -j list ruleset: no answer in 3 s"),
        }
        found = crate::diag::findings(&host, window_s, &sources, &ours, &kernel);
    }
    serde_json::json!({
        "version": crate::control::PROTOCOL_VERSION,
        "window_s": window_s,
        "findings": found,
        "sources": sources,
        "drop_rules": kernel.drop_rules,
    })
}

/// Mean and standard deviation of the gaps, in seconds.
fn mean_jitter(gaps: &VecDeque<u64>) -> Option<(f64, f64)> {
    if gaps.is_empty() {
        return None;
    }
    let n = gaps.len() as f64;
    let mean = gaps.iter().map(|g| *g as f64).sum::<f64>() / n;
    let var = gaps.iter().map(|g| (*g as f64 - mean).powi(2)).sum::<f64>() / n;
    Some((mean / 1e9, var.sqrt() / 1e9))
}

/// A packet from the raw socket as a record, for `--elections socket`. No kernel stamp: the
/// read time stands in. IPv4 carries its header (TTL checked); IPv6 gives the message only, so
/// its destination is taken to be the VRRP group.
fn socket_advert(sock: &VrrpSocket, bytes: &[u8], src: IpAddr) -> Option<WireAdvert> {
    let (dst, ttl, vrrp) = match src {
        IpAddr::V4(_) => {
            let (info, payload) = match crate::packet::parse_ip(bytes) {
                Ok(x) => x,
                Err(crate::packet::DecodeError::BadTtl(ttl)) => {
                    return Some(WireAdvert {
                        ktime_ns: monotonic_ns(),
                        ifindex: sock.ifindex,
                        verdict: Verdict::BadTtl,
                        family: Family::V4,
                        vlan: 0,
                        ttl,
                        src,
                        dst: src,
                        src_mac: [0; 6],
                        vrrp_len: 0,
                        vrrp: Vec::new(),
                        truncated: false,
                    });
                }
                Err(_) => return None,
            };
            (info.dst, info.ttl, payload.to_vec())
        }
        IpAddr::V6(_) => (
            IpAddr::V6(crate::packet::MCAST_V6),
            crate::packet::TTL,
            bytes.to_vec(),
        ),
    };
    Some(WireAdvert {
        ktime_ns: monotonic_ns(),
        ifindex: sock.ifindex,
        verdict: Verdict::Ok,
        family: sock.family,
        vlan: 0,
        ttl,
        src,
        dst,
        src_mac: [0; 6],
        vrrp_len: u16::try_from(vrrp.len()).unwrap_or(u16::MAX),
        vrrp,
        truncated: false,
    })
}
