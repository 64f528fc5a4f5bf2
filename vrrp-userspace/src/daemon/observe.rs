//! Observation for the diagnosis: what the wire showed of each source (XDP stamps, versions,
//! priorities, gaps), what reached the socket, what vrrpd and the kernel dropped and why, and
//! samples of those totals, so that the diagnosis can speak of a window.
//!
//! The window follows the protocol: three of the shortest configured advert intervals, 1 s at
//! least, so that a fault is named, and a fixed one cleared, within about three adverts. A
//! full sample and diagnosis costs a few hundred microseconds, too much to run every quarter
//! window on an idle host; so a quick check runs at that pace instead (counters the daemon
//! already holds, the kernel's drop ring, the socket counts), and the full diagnosis runs when
//! it sees something move, and at that pace for as long as findings stand. When all is well,
//! a full sample every 5 s.
//! The diagnosis itself runs beside the main loop (it may run nft and ping); its findings come
//! back on a channel and are logged once when they appear and once when they clear.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    net::IpAddr,
    sync::atomic::Ordering::Relaxed,
    time::Duration,
};

use tracing::{debug, info, warn};

use super::Daemon;
use crate::{
    datapath::drops::KernelDrops,
    northbound::{
        diagnose::{self, Cpu, Finding, FindingKind, Kernel, Ours, Ring, SourceWindow},
        ruleset::Ruleset,
        status::Diagnosis,
    },
    protocol::{
        drop::{DropCounts, DropReason},
        event::{RxAdvert, SourceKey},
        fsm::State,
    },
    sys::{
        advert_thread::Scheduling,
        clock,
        cpu::{CpuSample, CpuWatch},
        ping::ping,
    },
    time::{Instant, centis, nanos},
};

/// Sources remembered at most (spoofed floods must not grow this without bound).
const MAX_SOURCES: usize = 4096;
/// Gaps kept per source for the interval's mean and jitter, and for the window's bursts.
const GAPS: usize = 64;
const TIMED_GAPS: usize = 256;
/// A source silent this long is forgotten (and so cannot keep a real new peer out).
const FORGET: Duration = Duration::from_mins(10);
/// Between two full samples while nothing moves.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// The shortest window: at advert_int 0.01 three intervals would hold three adverts of jitter.
const WINDOW_FLOOR: Duration = Duration::from_secs(1);
/// Samples kept at most (a window's worth at a quarter-window pace, and room).
const SAMPLES: usize = 16;
/// The diagnosis pings a silent router to tell a dead one from a lossy network; at most this
/// many a second over every diagnosis (periodic and asked for), so that a flood of spoofed
/// sources cannot turn vrrpd into a ping flooder.
const PINGS_PER_SECOND: usize = 3;

/// What the wire showed of one source.
#[derive(Clone, Debug, Default)]
pub(super) struct SourceStats {
    pub ifname: String,
    pub version: u8,
    pub priority: u8,
    pub interval_cs: u16,
    pub auth: &'static str,
    /// Adverts seen by XDP (the wire, before netfilter).
    pub wire: u64,
    pub last_seen: Instant,
    /// The last gaps between its adverts (ns), for the interval's mean and jitter.
    gaps: VecDeque<u64>,
    /// (arrival, gap) of the last adverts, for the window's longest gap and bursts.
    timed_gaps: VecDeque<(Instant, u64)>,
    /// Why its adverts were not acted on.
    pub dropped: DropCounts,
    /// Where its adverts, acted on, disagree with our config.
    pub mismatched: DropCounts,
    /// The kernel's drop reasons (skb:kfree_skb) for its adverts.
    pub kernel_drops: KernelDrops,
    /// Where its last advert went (the group, or us for unicast).
    pub dst: Option<IpAddr>,
}

impl SourceStats {
    /// Mean and standard deviation of the gaps, in seconds.
    pub fn mean_jitter(&self) -> Option<(f64, f64)> {
        if self.gaps.is_empty() {
            return None;
        }
        let n = self.gaps.len() as f64;
        let mean = self.gaps.iter().map(|g| *g as f64).sum::<f64>() / n;
        let var = self
            .gaps
            .iter()
            .map(|g| (*g as f64 - mean).powi(2))
            .sum::<f64>()
            / n;
        Some((mean / 1e9, var.sqrt() / 1e9))
    }
}

/// What the observation keeps of one of our instances.
#[derive(Clone, Debug, Default)]
struct OursStats {
    /// The kernel's drops of our own adverts (on output).
    kernel_drops: KernelDrops,
    /// The advert thread's worst lateness over the last samples.
    late_max: VecDeque<u64>,
}

/// Totals at one moment.
struct Sample {
    at: Instant,
    sources: HashMap<SourceKey, SourceTotals>,
    ours: HashMap<String, OurTotals>,
    cpu: CpuSample,
    ring_full: u64,
}

struct SourceTotals {
    wire: u64,
    socket: u64,
    dropped: DropCounts,
    mismatched: DropCounts,
    kernel: KernelDrops,
}

struct OurTotals {
    kernel: KernelDrops,
    late: u64,
    periodic: u64,
}

/// What the quick check compares with the last full sample: each grows, or changes, with
/// some finding's cause.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Quiet {
    /// Adverts vrrpd dropped or found at odds with the config (`noted`).
    noted: u64,
    /// Our sends that left late or were refused, over every instance.
    sends: u64,
    ring_full: u64,
    /// Sources gone silent.
    silent: usize,
    /// Adverts seen on the wire that the socket has not seen, over every source.
    unseen: u64,
}

pub(super) struct Observation {
    pub sources: HashMap<SourceKey, SourceStats>,
    ours: BTreeMap<String, OursStats>,
    samples: VecDeque<Sample>,
    next_sample: Instant,
    /// See the module's doc: the window, and the quick check's pace (a quarter of it).
    window: Duration,
    check_every: Duration,
    next_check: Instant,
    /// Drops and mismatches noted since start.
    noted: u64,
    /// The quick check's counters at the last full sample.
    quiet: Quiet,
    /// A periodic diagnosis is running.
    diagnosing: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// A late or refused send, or a kernel drop, since the last check (see `next_wake`).
    attention: bool,
    /// Without the drop probe: the sockets' counts are read at every quick check.
    pub polls_sockets: bool,
    /// When XDP last saw an advert.
    last_heard: Instant,
    started: Instant,
    cpu: CpuWatch,
    /// Findings of the periodic diagnosis: raised once, cleared once.
    pub findings: Vec<Finding>,
    /// Ring records that did not decode (userspace and XDP program disagree on the layout).
    pub bad_records: u64,
    /// Sources one of our instances took for its master, and when last: with the configured
    /// unicast peers, the only addresses the diagnosis may ping.
    masters_seen: HashMap<(IpAddr, u8), Instant>,
    /// When the last pings went out (the budget's window).
    pinged: VecDeque<Instant>,
}

impl Observation {
    pub fn new(cpu: CpuWatch, started: Instant) -> Self {
        Self {
            sources: HashMap::new(),
            ours: BTreeMap::new(),
            samples: VecDeque::new(),
            next_sample: started,
            window: Duration::from_secs(3),
            check_every: Duration::from_millis(750),
            next_check: started,
            noted: 0,
            quiet: Quiet::default(),
            diagnosing: std::sync::Arc::default(),
            attention: false,
            polls_sockets: false,
            last_heard: started,
            started,
            cpu,
            findings: Vec::new(),
            bad_records: 0,
            masters_seen: HashMap::new(),
            pinged: VecDeque::new(),
        }
    }

    /// When the loop must wake for the observation: the next full sample, and the next quick
    /// check only while something calls for it (a late or refused send, a kernel drop,
    /// findings that stand, sockets that must be polled for want of the drop probe). A due
    /// check otherwise runs at the loop's next turn, which on a backup is the next advert: an
    /// idle master is not woken four times a second to find nothing (each wakeup costs a
    /// hundred microseconds of CPU on a virtual machine).
    pub fn next_wake(&self, now: Instant, sending: bool) -> Instant {
        let listen_at = self.last_heard.plus(self.check_every);
        if self.attention || self.polls_sockets || !self.findings.is_empty() {
            self.next_sample.min(self.next_check)
        } else if sending && listen_at > now {
            // Events are not listened to while adverts come (`wants_events`): wake when they
            // would be, so that a master beside an instance that hears slower adverts still
            // has its late sends seen within a check.
            self.next_sample.min(listen_at)
        } else {
            self.next_sample
        }
    }

    /// Something a quick check would see happened: check at its next turn.
    pub fn attend(&mut self) {
        self.attention = true;
    }

    pub fn attended(&self) -> bool {
        self.attention
    }

    /// Whether the loop should be woken by late or refused sends and kernel drops: only while
    /// this router sends adverts (a backup's kernel drops are of adverts it hears, which wake
    /// the loop themselves), and only when adverts do not wake it at least once a check. A
    /// backup that hears its master every 0.1 s checks at those turns, and a wakeup per
    /// kernel event, or the futures that wait for one, would only add to every advert's cost.
    pub fn wants_events(&self, now: Instant, sending: bool) -> bool {
        sending && now.since(self.last_heard) > self.check_every
    }

    pub fn sample_due(&self, now: Instant) -> bool {
        now >= self.next_sample
    }

    pub fn check_due(&self, now: Instant) -> bool {
        now >= self.next_check
    }

    /// Paces the window to `shortest`, the shortest advert interval configured.
    pub fn set_pace(&mut self, shortest: Option<Duration>) {
        self.window = shortest
            .map_or(Duration::from_secs(3), |i| i * 3)
            .max(WINDOW_FLOOR);
        self.check_every = self.window / 4;
        self.next_check = self.next_check.min(self.next_sample);
    }

    /// An advert the XDP program saw.
    pub fn note_wire(&mut self, rx: &RxAdvert, ifname: &str) {
        self.last_heard = self.last_heard.max(rx.arrived);
        let key = rx.source();
        if self.sources.len() >= MAX_SOURCES && !self.sources.contains_key(&key) {
            return;
        }
        let s = self.sources.entry(key).or_default();
        if s.ifname != ifname {
            ifname.clone_into(&mut s.ifname);
        }
        if let Ok(a) = &rx.body {
            s.version = a.version.number();
            s.priority = a.priority;
            s.interval_cs = a.interval_cs;
            s.auth = a.auth.name();
        }
        if s.wire > 0 && rx.arrived > s.last_seen {
            let gap = nanos(rx.arrived.since(s.last_seen));
            s.gaps.push_back(gap);
            if s.gaps.len() > GAPS {
                s.gaps.pop_front();
            }
            s.timed_gaps.push_back((rx.arrived, gap));
            if s.timed_gaps.len() > TIMED_GAPS {
                s.timed_gaps.pop_front();
            }
        }
        s.wire += 1;
        s.last_seen = rx.arrived;
        s.dst = Some(rx.dst);
    }

    /// An advert from `source` that vrrpd did not act on.
    pub fn note_drop(&mut self, source: &SourceKey, reason: DropReason, _now: Instant) {
        self.noted += 1;
        if let Some(s) = self.sources.get_mut(source) {
            s.dropped.add(reason);
        }
    }

    /// An advert from `source` acted on although it disagrees with our config.
    pub fn note_mismatch(&mut self, source: &SourceKey, reason: DropReason) {
        self.noted += 1;
        if let Some(s) = self.sources.get_mut(source) {
            s.mismatched.add(reason);
        }
    }

    /// Logs a finding once when it appears and once when it goes away.
    pub fn update_findings(&mut self, found: Vec<Finding>) {
        let key = |f: &Finding| (f.kind, f.ifname.clone(), f.source, f.vrid);
        for f in &found {
            if !self.findings.iter().any(|o| key(o) == key(f)) {
                warn!(kind = %f.kind, "finding: {}", f.message);
            }
        }
        for o in &self.findings {
            if !found.iter().any(|f| key(f) == key(o)) {
                info!(
                    kind = %o.kind,
                    "cleared: {} on {} (VRID {}{})",
                    o.kind,
                    o.ifname,
                    o.vrid,
                    o.source.map(|s| format!(", {s}")).unwrap_or_default()
                );
            }
        }
        self.findings = found;
    }

    /// The kernel's drops of our own adverts, for `status`.
    pub fn our_kernel_drops(&self, name: &str) -> KernelDrops {
        self.ours
            .get(name)
            .map(|o| o.kernel_drops.clone())
            .unwrap_or_default()
    }

    /// How many of `want` pings may go out now, taken from the budget.
    fn take_pings(&mut self, now: Instant, want: usize) -> usize {
        while self
            .pinged
            .front()
            .is_some_and(|t| now.since(*t) >= Duration::from_secs(1))
        {
            self.pinged.pop_front();
        }
        let n = want.min(PINGS_PER_SECOND.saturating_sub(self.pinged.len()));
        self.pinged.extend(std::iter::repeat_n(now, n));
        n
    }

    /// The sample the window starts at: the newest at least a window old, else the oldest.
    fn base(&self, now: Instant) -> Option<&Sample> {
        self.samples
            .iter()
            .rev()
            .find(|b| now.since(b.at) >= self.window)
            .or_else(|| self.samples.front())
    }
}

/// Counts since `base`, most first; reasons that did not grow are left out.
fn kernel_since(
    now: &KernelDrops,
    base: Option<&KernelDrops>,
) -> Vec<(crate::datapath::drops::KernelReason, u64)> {
    let mut v: Vec<_> = now
        .iter()
        .map(|(r, n)| {
            let before = base.and_then(|b| b.get(r)).copied().unwrap_or(0);
            (r.clone(), n.saturating_sub(before))
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}

impl Daemon {
    /// The observation's turn in the main loop: a full sample when one is due, else a quick
    /// check, and a full sample at once when it finds that something moved.
    pub(super) fn observe_tick(&mut self, now: Instant) {
        if self.observe.sample_due(now) {
            self.sample_and_diagnose(now);
        } else if self.observe.check_due(now) {
            let filed = self.file_kernel_drops();
            // With the kernel's drop reasons, what netfilter or rp_filter eats is filed above;
            // reading every source's socket count (two syscalls each) is for without them.
            if self.observe.polls_sockets {
                self.io.refresh_socket_counts();
            }
            if filed > 0
                || !self.observe.findings.is_empty()
                || self.quiet(now) != self.observe.quiet
            {
                self.sample_and_diagnose(now);
            } else {
                self.observe.next_check = now.plus(self.observe.check_every);
                self.observe.attention = false;
                // A sample (without the diagnosis) at least once a window while all is quiet,
                // so that when something moves the window starts at most a window back: a
                // base 5 s old would hide three lost adverts among fifty delivered ones.
                if self
                    .observe
                    .samples
                    .back()
                    .is_none_or(|b| now.since(b.at) >= self.observe.window)
                {
                    if !self.observe.polls_sockets {
                        self.io.refresh_socket_counts();
                    }
                    self.take_sample(now);
                }
            }
        }
    }

    /// The quick check's counters now (the socket counts as last refreshed).
    fn quiet(&self, now: Instant) -> Quiet {
        let obs = &self.observe;
        let sends = self
            .io
            .instances
            .values()
            .map(|r| r.stats.late.load(Relaxed) + r.stats.refused.load(Relaxed))
            .sum();
        let mut silent = 0;
        let mut unseen = 0;
        // The socket counts are fresh at each check only without the drop-reason probe.
        let by_socket = obs.polls_sockets;
        for (k, s) in &obs.sources {
            if s.priority > 0 && now.since(s.last_seen) > centis(s.interval_cs.max(1)) * 3 {
                silent += 1;
            }
            if by_socket {
                unseen += s.wire.saturating_sub(self.io.socket_count(k));
            }
        }
        Quiet {
            noted: obs.noted,
            sends,
            ring_full: self
                .io
                .datapath
                .counter(vrrp_common::counter::RING_FULL)
                .unwrap_or_else(|| self.flood.ring_full()),
            silent,
            unseen,
        }
    }

    /// File the kernel's drops, take a sample, and run the diagnosis beside the loop.
    pub(super) fn sample_and_diagnose(&mut self, now: Instant) {
        self.file_kernel_drops();
        self.io.refresh_socket_counts();
        self.take_sample(now);
        self.observe.quiet = self.quiet(now);
        self.observe.next_sample = now.plus(SAMPLE_EVERY);
        self.observe.next_check = now.plus(self.observe.check_every);
        self.observe.attention = false;
        if self.opts.elections == super::Elections::Wire {
            self.check_flood(now);
        }
        // One at a time: at a quarter-window pace a diagnosis that waits for nft (3 s at most)
        // would otherwise be joined by the next ones.
        if self.observe.diagnosing.swap(true, Relaxed) {
            return;
        }
        let input = self.diagnose_input(now);
        let tx = self.findings_tx.clone();
        let busy = std::sync::Arc::clone(&self.observe.diagnosing);
        tokio::spawn(async move {
            let d = diagnose_with_kernel(input).await;
            let _ = tx.try_send(d.findings);
            busy.store(false, Relaxed);
        });
    }

    /// The diagnosis for `vrrpd diagnose` and `watch`: the same, answered on `reply`.
    pub(super) fn diagnose_now(
        &mut self,
        reply: tokio::sync::oneshot::Sender<crate::northbound::control::Reply>,
    ) {
        self.file_kernel_drops();
        self.io.refresh_socket_counts();
        let input = self.diagnose_input(clock::now());
        tokio::spawn(async move {
            let d = diagnose_with_kernel(input).await;
            let _ = reply.send(crate::northbound::control::Reply::Diagnosis(Box::new(d)));
        });
    }

    /// Files the kernel's drops (skb:kfree_skb) under the source or instance they belong to;
    /// how many.
    fn file_kernel_drops(&mut self) -> usize {
        let mut drops = Vec::new();
        self.io.datapath.drain_drops(&mut drops);
        drops.retain(|(_, reason)| !reason.is_benign());
        let filed = drops.len();
        if drops.is_empty() {
            return 0;
        }
        // Indexed once per call: a busy host drops thousands of VRRP packets between two
        // samples, and a scan of every instance for each of them stalled the main loop for
        // seconds with 4000 instances.
        let mut ours_by: HashMap<(IpAddr, u8), &str> = HashMap::new();
        for (name, v) in self.router.iter() {
            ours_by.entry((v.spec.src, v.spec.cfg.vrid)).or_insert(name);
        }
        let mut sources_by: HashMap<(IpAddr, u8), SourceKey> = HashMap::new();
        for k in self.observe.sources.keys() {
            sources_by.entry((k.src, k.vrid)).or_insert(*k);
        }
        for (d, reason) in drops {
            debug!(src = %d.src, dst = %d.dst, vrid = d.vrid, ifindex = d.ifindex, %reason, "kernel dropped a VRRP packet");
            let ours = ours_by.get(&(d.src, d.vrid)).map(|n| (*n).to_owned());
            let obs = &mut self.observe;
            let counts = if let Some(name) = ours {
                Some(&mut obs.ours.entry(name).or_default().kernel_drops)
            } else {
                let exact = SourceKey {
                    ifindex: d.ifindex,
                    src: d.src,
                    vrid: d.vrid,
                };
                // A packet dropped before it had a device (ifindex 0): any source of that
                // address and VRID.
                let key = if obs.sources.contains_key(&exact) {
                    Some(exact)
                } else {
                    sources_by.get(&(d.src, d.vrid)).copied()
                };
                key.and_then(|k| obs.sources.get_mut(&k))
                    .map(|s| &mut s.kernel_drops)
            };
            if let Some(c) = counts {
                *c.entry(reason).or_default() += 1;
            }
        }
        filed
    }

    fn take_sample(&mut self, now: Instant) {
        let obs = &mut self.observe;
        obs.sources.retain(|_, s| now.since(s.last_seen) < FORGET);
        let sources = obs
            .sources
            .iter()
            .map(|(k, s)| {
                (
                    *k,
                    SourceTotals {
                        wire: s.wire,
                        socket: self.io.socket_count(k),
                        dropped: s.dropped,
                        mismatched: s.mismatched,
                        kernel: s.kernel_drops.clone(),
                    },
                )
            })
            .collect();
        let mut ours = HashMap::new();
        for name in self.router.iter().map(|(n, _)| n.to_owned()) {
            let o = obs.ours.entry(name.clone()).or_default();
            let (late, periodic, worst) = self.io.instances.get(&name).map_or((0, 0, 0), |r| {
                (
                    r.stats.late.load(Relaxed),
                    r.stats.periodic.load(Relaxed),
                    r.stats.late_max_ns.swap(0, Relaxed),
                )
            });
            o.late_max.push_back(worst);
            while o.late_max.len() > 2 {
                o.late_max.pop_front();
            }
            ours.insert(
                name,
                OurTotals {
                    kernel: o.kernel_drops.clone(),
                    late,
                    periodic,
                },
            );
        }
        obs.ours.retain(|n, _| self.router.get(n).is_some());
        let cpu = obs
            .cpu
            .sample(&[self.io.adverts.tid, nix::unistd::getpid().as_raw()]);
        obs.samples.push_back(Sample {
            at: now,
            sources,
            ours,
            cpu,
            ring_full: self.flood.ring_full(),
        });
        // The newest sample at least a window old is the base; older ones serve no window.
        while obs.samples.len() > SAMPLES
            || obs
                .samples
                .get(1)
                .is_some_and(|b| now.since(b.at) >= obs.window)
        {
            obs.samples.pop_front();
        }
    }

    #[expect(
        clippy::too_many_lines,
        reason = "one window per source and per instance, field by field"
    )]
    fn diagnose_input(&mut self, now: Instant) -> DiagnoseInput {
        let cpu_now = self
            .observe
            .cpu
            .sample(&[self.io.adverts.tid, nix::unistd::getpid().as_raw()]);
        let mut peers = std::collections::HashSet::new();
        for (_, v) in self.router.iter() {
            peers.extend(v.spec.cfg.unicast_peers.iter().copied());
            if let Some((src, ..)) = v.fsm.master {
                self.observe
                    .masters_seen
                    .insert((src, v.spec.cfg.vrid), now);
            }
        }
        self.observe
            .masters_seen
            .retain(|_, at| now.since(*at) < FORGET);
        let obs = &self.observe;
        let base = obs.base(now);
        let since = base.map_or(obs.started, |b| b.at);
        let window_s = now.since(since).as_secs();
        let sources: Vec<SourceWindow> = obs
            .sources
            .iter()
            .map(|(k, s)| {
                let b = base.and_then(|b| b.sources.get(k));
                let socket_total = self.io.socket_count(k);
                let mj = s.mean_jitter();
                let interval = centis(s.interval_cs.max(1));
                let age = now.since(s.last_seen);
                SourceWindow {
                    ifname: s.ifname.clone(),
                    src: k.src,
                    vrid: k.vrid,
                    version: s.version,
                    priority: s.priority,
                    interval_cs: s.interval_cs,
                    wire: s.wire.saturating_sub(b.map_or(0, |b| b.wire)),
                    socket: socket_total.saturating_sub(b.map_or(0, |b| b.socket)),
                    dropped: s.dropped.since(&b.map(|b| b.dropped).unwrap_or_default()),
                    mismatched: s
                        .mismatched
                        .since(&b.map(|b| b.mismatched).unwrap_or_default()),
                    kernel_drops: kernel_since(&s.kernel_drops, b.map(|b| &b.kernel)),
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
                        .filter(|(at, g)| *at >= since && *g < nanos(interval) / 4)
                        .count() as u64,
                    auth: s.auth.to_owned(),
                    last_seen_s: age.as_secs_f64(),
                    interval_mean_s: mj.map(|m| m.0),
                    interval_jitter_s: mj.map(|m| m.1),
                    wire_total: s.wire,
                    socket_total,
                    silent: s.priority > 0 && age > interval * 3 && age < FORGET,
                    answers_ping: None,
                }
            })
            .collect();
        let ping = ping_targets(&sources, |s| {
            peers.contains(&s.src) || obs.masters_seen.contains_key(&(s.src, s.vrid))
        });
        let ours = self
            .router
            .iter()
            .map(|(name, v)| {
                let b = base.and_then(|b| b.ours.get(name));
                let r = self.io.instances.get(name);
                let load = |f: fn(&crate::sys::advert_thread::SlotStats) -> u64| {
                    r.map_or(0, |r| f(&r.stats))
                };
                let refused_last = Instant(load(|s| s.refused_last_ns.load(Relaxed)));
                let o = obs.ours.get(name);
                Ours {
                    name: name.to_owned(),
                    ifname: v.spec.cfg.interface.clone(),
                    vrid: v.spec.cfg.vrid,
                    version: v.spec.cfg.version.number(),
                    master: v.fsm.state() == State::Master,
                    priority: v.fsm.priority(),
                    interval_cs: v.spec.cfg.advert_int_cs,
                    src: v.spec.src,
                    send_refused: if refused_last >= since {
                        load(|s| s.refused.load(Relaxed))
                    } else {
                        0
                    },
                    sent: load(|s| s.sent.load(Relaxed)),
                    kernel_drops: o.map_or_else(Vec::new, |o| {
                        kernel_since(&o.kernel_drops, b.map(|b| &b.kernel))
                    }),
                    late: load(|s| s.late.load(Relaxed)).saturating_sub(b.map_or(0, |b| b.late)),
                    periodic: load(|s| s.periodic.load(Relaxed))
                        .saturating_sub(b.map_or(0, |b| b.periodic)),
                    late_max_ms: o
                        .map_or(0, |o| o.late_max.iter().copied().max().unwrap_or(0))
                        .max(load(|s| s.late_max_ns.load(Relaxed)))
                        as f64
                        / 1e6,
                }
            })
            .collect();
        let cpu0 = base.map(|b| b.cpu).unwrap_or_default();
        let cpu = Cpu {
            throttled_periods: cpu_now.nr_throttled.saturating_sub(cpu0.nr_throttled),
            throttled_ms: cpu_now.throttled_ns.saturating_sub(cpu0.throttled_ns) as f64 / 1e6,
            runq_wait_ms: cpu_now.runq_wait_ns.saturating_sub(cpu0.runq_wait_ns) as f64 / 1e6,
            not_realtime: match &self.io.scheduling {
                Scheduling::Fifo(_) => None,
                Scheduling::Normal(why) => Some(why.clone()),
            },
            cgroup_dir: obs.cpu.cgroup_dir.as_ref().map(|d| d.display().to_string()),
            cgroup_v1: obs.cpu.v1,
        };
        let ring_full = self
            .io
            .datapath
            .counter(vrrp_common::counter::RING_FULL)
            .unwrap_or_else(|| self.flood.ring_full());
        let ring = Ring {
            lost: ring_full.saturating_sub(base.map_or(0, |b| b.ring_full)),
            fallback: self.flood.interfaces(),
        };
        let allowed = self.observe.take_pings(now, ping.len());
        DiagnoseInput {
            window_s: window_s.max(1),
            ring,
            ping: ping.into_iter().take(allowed).collect(),
            sources,
            ours,
            cpu,
        }
    }
}

/// What the diagnosis is made from, gathered by the main loop.
pub(super) struct DiagnoseInput {
    window_s: u64,
    sources: Vec<SourceWindow>,
    /// Which of `sources` to ping (see `ping_targets`), within the budget.
    ping: Vec<usize>,
    ring: Ring,
    ours: Vec<Ours>,
    cpu: Cpu,
}

/// The silent sources worth a ping, most recently silent first: only a router the config
/// names (a unicast peer) or one that an instance of ours took for its master. Any other
/// address is a stranger's, or spoofed, and is never pinged.
fn ping_targets(sources: &[SourceWindow], known: impl Fn(&SourceWindow) -> bool) -> Vec<usize> {
    let mut v: Vec<usize> = (0..sources.len())
        .filter(|&i| sources[i].silent && known(&sources[i]))
        .collect();
    v.sort_by(|&a, &b| sources[a].last_seen_s.total_cmp(&sources[b].last_seen_s));
    v
}

/// Runs the diagnosis, asking the kernel what it needs (ping a silent router, rp_filter,
/// multicast memberships, and the ruleset when something is lost in the kernel).
async fn diagnose_with_kernel(input: DiagnoseInput) -> Diagnosis {
    let DiagnoseInput {
        window_s,
        mut sources,
        ping: targets,
        ring,
        ours,
        cpu,
    } = input;
    // Is a silent router up? Ask it (ICMP echo, 300 ms).
    for i in targets {
        if let Some(s) = sources.get_mut(i) {
            s.answers_ping = Some(ping(s.src, &s.ifname, Duration::from_millis(300)).await);
        }
    }
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    let mut kernel = Kernel {
        cpu,
        ring,
        ..Kernel::default()
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
        kernel.groups = Some(diagnose::multicast_groups(&igmp, &igmp6));
    }
    let mut found = diagnose::findings(&host, window_s, &sources, &ours, &kernel);
    // The ruleset only matters when something is lost in the kernel: run nft only then.
    if found.iter().any(|f| {
        matches!(
            f.kind,
            FindingKind::LostAfterXdp | FindingKind::DroppedOnOutput
        )
    }) {
        let ruleset = tokio::time::timeout(
            Duration::from_secs(3),
            tokio::process::Command::new("nft")
                .args(["-j", "list", "ruleset"])
                .output(),
        )
        .await;
        match ruleset {
            Ok(Ok(out)) if out.status.success() => {
                kernel.ruleset = serde_json::from_slice(&out.stdout)
                    .ok()
                    .map(|v| Ruleset::from_json(&v));
            }
            Ok(Ok(out)) => debug!(
                "nft -j list ruleset: {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Ok(Err(e)) => debug!("nft -j list ruleset: {e}"),
            Err(_) => debug!("nft -j list ruleset: no answer in 3 s"),
        }
        found = diagnose::findings(&host, window_s, &sources, &ours, &kernel);
    }
    let mut drop_rules = Vec::new();
    for r in found.iter().filter_map(|f| f.rule.clone()) {
        if !drop_rules.contains(&r) {
            drop_rules.push(r);
        }
    }
    Diagnosis {
        window_s,
        findings: found,
        sources,
        drop_rules,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn silent(src: [u8; 4], last_seen_s: f64) -> SourceWindow {
        SourceWindow {
            ifname: "eth0".into(),
            src: IpAddr::from(src),
            vrid: 51,
            version: 2,
            priority: 100,
            interval_cs: 100,
            wire: 0,
            socket: 0,
            dropped: Vec::new(),
            mismatched: Vec::new(),
            auth: String::new(),
            last_seen_s,
            interval_mean_s: None,
            interval_jitter_s: None,
            wire_total: 1,
            socket_total: 0,
            silent: true,
            answers_ping: None,
            kernel_drops: Vec::new(),
            dst: None,
            gap_max_s: None,
            bursts: 0,
        }
    }

    #[test]
    fn only_known_routers_are_pinged_most_recently_silent_first() {
        let sources = vec![
            silent([10, 0, 0, 5], 30.0),
            silent([192, 0, 2, 77], 4.0),
            silent([10, 0, 0, 6], 4.0),
            SourceWindow {
                silent: false,
                ..silent([10, 0, 0, 7], 0.1)
            },
        ];
        let known = |s: &SourceWindow| s.src.to_string().starts_with("10.");
        assert_eq!(ping_targets(&sources, known), vec![2, 0]);
    }

    #[test]
    fn the_window_is_three_of_the_shortest_intervals_and_a_second_at_least() {
        let mut obs = Observation::new(CpuWatch::open(), Instant(0));
        for (interval_ms, window_ms) in [(1000, 3000), (100, 1000), (10, 1000), (3000, 9000)] {
            obs.set_pace(Some(Duration::from_millis(interval_ms)));
            assert_eq!(obs.window, Duration::from_millis(window_ms));
            assert_eq!(obs.check_every, Duration::from_millis(window_ms / 4));
        }
        obs.set_pace(None);
        assert_eq!(obs.window, Duration::from_secs(3));
    }

    #[test]
    fn the_window_starts_at_the_newest_sample_a_window_old() {
        let mut obs = Observation::new(CpuWatch::open(), Instant(0));
        obs.set_pace(Some(Duration::from_millis(100)));
        let ms = |n: u64| Instant(n * 1_000_000);
        for at in [0, 250, 500, 750, 1000, 1250] {
            obs.samples.push_back(Sample {
                at: ms(at),
                sources: HashMap::new(),
                ours: HashMap::new(),
                cpu: CpuSample::default(),
                ring_full: 0,
            });
        }
        assert_eq!(obs.base(ms(1300)).map(|b| b.at), Some(ms(250)));
        // Before a window has passed: the oldest there is.
        assert_eq!(obs.base(ms(500)).map(|b| b.at), Some(ms(0)));
    }

    #[test]
    fn the_ping_budget_is_a_few_a_second_over_every_diagnosis() {
        let mut obs = Observation::new(CpuWatch::open(), Instant(0));
        let t = |ms: u64| Instant(ms * 1_000_000);
        assert_eq!(obs.take_pings(t(1000), 10), PINGS_PER_SECOND);
        assert_eq!(obs.take_pings(t(1500), 10), 0, "the same second");
        assert_eq!(obs.take_pings(t(2000), 1), 1, "a second later");
        assert_eq!(obs.take_pings(t(2100), 10), PINGS_PER_SECOND - 1);
    }
}
