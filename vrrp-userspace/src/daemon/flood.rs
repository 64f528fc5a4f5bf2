//! A flood the per-source budget cannot stop: spoofed adverts from many sources, each within
//! its own budget, fill the ring faster than the daemon reads it, and the real master's
//! adverts are lost with the rest (`ring_full`). The interfaces that carry most of the
//! records then leave the ring: their watch keys are taken out of the XDP map (so that the
//! ring keeps room for the other interfaces' adverts) and their elections hear a raw socket
//! of their own instead, after netfilter, as keepalived does, with a finding saying so. When
//! the socket has been quiet for `CLEAR_AFTER`, the interface returns to the ring.
//!
//! The socket is no wider than the ring: a reader starved of CPU, or a main loop busy with the
//! flood, would lose the master's adverts in the socket buffer or the channel as the ring did.
//! So the reader sorts what it reads: adverts from the sources the elections already know (the
//! interface's masters, its configured peers) take a channel of their own that the flood never
//! fills, and only the rest compete for the flood's.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    net::IpAddr,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use tokio::{io::unix::AsyncFd, sync::mpsc, task::JoinHandle};
use tracing::{info, warn};

use super::{Daemon, instances::SockFd};
use crate::{
    protocol::{
        event::{InstanceKey, RxAdvert},
        router::Input,
    },
    sys::{clock, socket::VrrpSocket},
    time::Instant,
    wire::vrrp::Family,
};

/// How often the ring's overflow counter is read while records arrive.
const CHECK_EVERY: Duration = Duration::from_millis(100);
/// Records read since the last check below which the ring cannot have overflowed: the
/// smallest ring (128 KiB) holds hundreds of the largest records.
const CHECK_RECORDS: u64 = 32;
/// An interface whose share of the records read since the last check is at least 1 / this
/// when the ring overflows is taken off it.
const SHARE: u64 = 4;
/// A socket busier than this (packets a second) is still flooded: four times the fastest
/// legal sender (VRRPv3 at 0.01 s), for 25 routers.
const FLOODED_PPS: u64 = 10_000;
/// Quiet this long, an interface returns to the ring.
const CLEAR_AFTER: Duration = Duration::from_secs(5);
/// The fallback socket's receive buffer: room for a burst while the loop catches up.
const RCVBUF: usize = 4 << 20;
/// Adverts from the known sources waiting for the main loop: their legal rate is a few hundred a
/// second at most, so this never fills unless the loop itself stops.
const TRUSTED_QUEUE: usize = 256;
/// The flood's adverts waiting for the main loop; beyond this they are lost, as a full socket
/// buffer loses them.
const FLOOD_QUEUE: usize = 4096;

/// The sources whose adverts the reader puts ahead of the flood's.
type Trusted = Arc<RwLock<HashSet<IpAddr>>>;

/// One interface whose elections hear a socket.
struct Fallback {
    ifname: String,
    since: Instant,
    /// The last time it was flooded (the ring overflowed with its records, or its socket was
    /// busier than `FLOODED_PPS`).
    busy: Instant,
    readers: Vec<JoinHandle<()>>,
    packets: Arc<AtomicU64>,
    packets_then: u64,
    trusted: Trusted,
}

/// An advert read from a fallback socket, and whether its source was a known one.
pub(super) struct FallbackAdvert {
    rx: RxAdvert,
    trusted: bool,
}

pub(super) struct Flood {
    ring_full: u64,
    checked: Instant,
    /// Records read per ifindex since the last check.
    records: HashMap<u32, u64>,
    fallback: BTreeMap<u32, Fallback>,
    tx: mpsc::Sender<FallbackAdvert>,
    pub rx: mpsc::Receiver<FallbackAdvert>,
    trusted_tx: mpsc::Sender<FallbackAdvert>,
    pub trusted_rx: mpsc::Receiver<FallbackAdvert>,
}

impl Flood {
    pub fn new(now: Instant) -> Self {
        let (tx, rx) = mpsc::channel(FLOOD_QUEUE);
        let (trusted_tx, trusted_rx) = mpsc::channel(TRUSTED_QUEUE);
        Self {
            ring_full: 0,
            checked: now,
            records: HashMap::new(),
            fallback: BTreeMap::new(),
            tx,
            rx,
            trusted_tx,
            trusted_rx,
        }
    }

    /// A record from the ring; whether its interface's elections still hear the ring.
    pub fn note_record(&mut self, ifindex: u32) -> bool {
        *self.records.entry(ifindex).or_default() += 1;
        !self.fallback.contains_key(&ifindex)
    }

    /// Whether adverts read from `ifindex`'s fallback socket count in the elections.
    pub fn hears_socket(&self, ifindex: u32) -> bool {
        self.fallback.contains_key(&ifindex)
    }

    /// The ring's overflows since start, as last read.
    pub fn ring_full(&self) -> u64 {
        self.ring_full
    }

    /// The interfaces whose elections hear their socket, by name.
    pub fn interfaces(&self) -> Vec<String> {
        self.fallback.values().map(|f| f.ifname.clone()).collect()
    }

    /// Whether the ring's overflow counter is worth a read: an interface on its socket is
    /// watched at every check; otherwise only once `CHECK_RECORDS` arrived since the last
    /// read, since an overflow means a ring full of unread records, all read since. So an
    /// idle host (ten adverts a second) makes no syscall for it.
    pub fn check_due(&self, now: Instant) -> bool {
        now.since(self.checked) >= CHECK_EVERY
            && (!self.fallback.is_empty() || self.records.values().sum::<u64>() >= CHECK_RECORDS)
    }

    /// The next advert from a fallback socket that is waiting, the known sources' first; at
    /// most `FLOOD_QUEUE` of them for one drain, since the flood refills its queue as fast as
    /// it is emptied.
    pub fn waiting(&mut self) -> impl Iterator<Item = FallbackAdvert> + '_ {
        let mut flood_left = FLOOD_QUEUE;
        std::iter::from_fn(move || {
            if let Ok(a) = self.trusted_rx.try_recv() {
                return Some(a);
            }
            flood_left = flood_left.checked_sub(1)?;
            self.rx.try_recv().ok()
        })
    }
}

impl Daemon {
    /// Reads the ring's overflow counter: takes the flooded interfaces off the ring, and
    /// brings back those that have been quiet for `CLEAR_AFTER`.
    pub(super) fn check_flood(&mut self, now: Instant) {
        let full = self
            .io
            .datapath
            .counter(vrrp_common::counter::RING_FULL)
            .unwrap_or(self.flood.ring_full);
        let f = &mut self.flood;
        let elapsed = now.since(f.checked).as_secs_f64().max(0.001);
        let records = std::mem::take(&mut f.records);
        f.checked = now;
        if full > f.ring_full {
            let lost = full - f.ring_full;
            let total: u64 = records.values().sum();
            let flooded: Vec<u32> = records
                .iter()
                .filter(|(_, n)| **n * SHARE >= total)
                .map(|(i, _)| *i)
                .collect();
            for ifindex in flooded {
                if let Some(fb) = self.flood.fallback.get_mut(&ifindex) {
                    fb.busy = now;
                } else {
                    self.enter_fallback(ifindex, lost, now);
                }
            }
        }
        self.flood.ring_full = full;
        let ifindexes: Vec<u32> = self.flood.fallback.keys().copied().collect();
        for ifindex in ifindexes {
            self.refresh_trusted(ifindex);
        }
        let mut cleared = Vec::new();
        for (ifindex, fb) in &mut self.flood.fallback {
            let packets = fb.packets.load(Relaxed);
            let pps = (packets - fb.packets_then) as f64 / elapsed;
            fb.packets_then = packets;
            if pps > FLOODED_PPS as f64 {
                fb.busy = now;
            } else if now.since(fb.busy) >= CLEAR_AFTER {
                cleared.push(*ifindex);
            }
        }
        for ifindex in cleared {
            self.leave_fallback(ifindex, now);
        }
    }

    fn enter_fallback(&mut self, ifindex: u32, lost: u64, now: Instant) {
        let Some(ifname) = self.io.datapath.ifname(ifindex).map(str::to_owned) else {
            return;
        };
        let Some(link) = self.io.link(&ifname).cloned() else {
            return;
        };
        let mut keys = Vec::new();
        let mut opened: BTreeMap<Family, VrrpSocket> = BTreeMap::new();
        for (_, v) in self
            .router
            .iter()
            .filter(|(_, v)| v.spec.ifindex == ifindex)
        {
            keys.push(v.spec.key());
            let family = v.spec.cfg.family;
            if opened.contains_key(&family) {
                continue;
            }
            let group = super::instances::group_address(&v.spec.cfg, &self.config.global);
            match VrrpSocket::open(&link, family, v.spec.src, group) {
                Ok(s) => {
                    force_rcvbuf(&s);
                    opened.insert(family, s);
                }
                Err(e) => warn!("{ifname}: the ring overflows, and no socket to fall back to: {e}"),
            }
        }
        if opened.is_empty() {
            return;
        }
        let packets = Arc::new(AtomicU64::new(0));
        let trusted: Trusted = Arc::new(RwLock::new(self.known_sources(ifindex)));
        let readers = opened
            .into_values()
            .filter_map(|s| {
                #[expect(
                    deprecated,
                    reason = "AsyncFd::register is unsafe; the AsyncFd owns the socket it registers"
                )]
                let fd = AsyncFd::new(SockFd(s)).ok()?;
                Some(tokio::spawn(read_fallback(
                    fd,
                    Arc::clone(&packets),
                    Arc::clone(&trusted),
                    [self.flood.trusted_tx.clone(), self.flood.tx.clone()],
                )))
            })
            .collect();
        for k in &keys {
            if let Err(e) = self.io.datapath.unwatch(&super::executor::watch_key(*k)) {
                warn!("{ifname}: cannot take VRID {} off the ring: {e}", k.vrid);
            }
        }
        warn!(
            "{ifname}: the XDP ring overflowed ({lost} adverts lost before vrrpd read them), mostly with {ifname}'s: a flood from many sources. Its elections hear the socket (after netfilter) until it has been quiet for {} s",
            CLEAR_AFTER.as_secs()
        );
        self.flood.fallback.insert(
            ifindex,
            Fallback {
                ifname,
                since: now,
                busy: now,
                readers,
                packets,
                packets_then: 0,
                trusted,
            },
        );
    }

    /// The sources an interface's elections know: the masters they heard last and the peers
    /// the config names.
    fn known_sources(&self, ifindex: u32) -> HashSet<IpAddr> {
        self.router
            .iter()
            .filter(|(_, v)| v.spec.ifindex == ifindex)
            .flat_map(|(_, v)| {
                v.fsm
                    .master
                    .map(|(addr, ..)| addr)
                    .into_iter()
                    .chain(v.spec.cfg.unicast_peers.iter().copied())
            })
            .collect()
    }

    fn refresh_trusted(&self, ifindex: u32) {
        let Some(fb) = self.flood.fallback.get(&ifindex) else {
            return;
        };
        let known = self.known_sources(ifindex);
        let stale = fb.trusted.read().map_or(true, |t| *t != known);
        if stale && let Ok(mut t) = fb.trusted.write() {
            *t = known;
        }
    }

    fn leave_fallback(&mut self, ifindex: u32, now: Instant) {
        let Some(fb) = self.flood.fallback.remove(&ifindex) else {
            return;
        };
        for r in &fb.readers {
            r.abort();
        }
        // The instances there now (a reload may have changed them), not those of the start.
        let keys: Vec<InstanceKey> = self
            .router
            .iter()
            .filter(|(_, v)| v.spec.ifindex == ifindex)
            .map(|(_, v)| v.spec.key())
            .collect();
        for k in &keys {
            if let Err(e) = self.io.datapath.watch(super::executor::watch_key(*k)) {
                warn!(
                    "{}: cannot put VRID {} back on the ring: {e}",
                    fb.ifname, k.vrid
                );
            }
        }
        info!(
            "{}: quiet for {} s: its elections hear the ring again (after {:.0} s on the socket, {} packets read there)",
            fb.ifname,
            CLEAR_AFTER.as_secs(),
            now.since(fb.since).as_secs_f64(),
            fb.packets.load(Relaxed)
        );
    }

    /// An interface is gone (re-created): its fallback, if any, goes with it.
    pub(super) fn forget_flood(&mut self, ifindex: u32) {
        if let Some(fb) = self.flood.fallback.remove(&ifindex) {
            for r in &fb.readers {
                r.abort();
            }
        }
    }

    /// An advert from a fallback socket: observed as the ring would have, then to the router.
    pub(super) async fn on_fallback_advert(&mut self, advert: FallbackAdvert) {
        let FallbackAdvert { rx, trusted } = advert;
        if !self.flood.hears_socket(rx.ifindex) {
            return;
        }
        let (ifindex, key, src) = (rx.ifindex, rx.key(), rx.src);
        let ifname = self
            .io
            .datapath
            .ifname(rx.ifindex)
            .unwrap_or("?")
            .to_owned();
        self.observe.note_wire(&rx, &ifname);
        self.handle(clock::now(), Input::Advert(rx)).await;
        // A new master heard through the flood's queue: the next ones take the known queue.
        // (Only then: the flood's own adverts, which change no master, rebuild nothing.)
        let now_followed = self
            .router
            .by_key(&key)
            .is_some_and(|v| v.fsm.master.is_some_and(|(m, ..)| m == src));
        if !trusted && now_followed {
            self.refresh_trusted(ifindex);
        }
    }
}

/// SO_RCVBUFFORCE (CAP_NET_ADMIN, kept) past net.core.rmem_max: a flood's burst waits in the
/// kernel instead of taking the real master's adverts with it.
fn force_rcvbuf(s: &VrrpSocket) {
    let forced =
        nix::sys::socket::setsockopt(&s.socket, nix::sys::socket::sockopt::RcvBufForce, &RCVBUF);
    if forced.is_err() {
        let _ = s.socket.set_recv_buffer_size(RCVBUF);
    }
}

/// Reads a fallback socket: each advert to the main loop, through the known sources' queue
/// (`queues[0]`) or the flood's (`queues[1]`; a full one loses it, as a full socket buffer
/// would), each packet counted for the flood's end.
async fn read_fallback(
    fd: AsyncFd<SockFd>,
    packets: Arc<AtomicU64>,
    trusted: Trusted,
    queues: [mpsc::Sender<FallbackAdvert>; 2],
) {
    let mut buf = [0u8; 2048];
    let mut budgets = KnownBudgets::default();
    loop {
        let Ok(mut guard) = fd.readable().await else {
            return;
        };
        // A sustained flood never runs dry: after a batch, let the other tasks (the main
        // loop among them, on the same two workers) run before reading on.
        let mut batch = 0;
        loop {
            let sock = &guard.get_inner().0;
            match sock.recv(&mut buf) {
                Ok((n, Some(src))) => {
                    packets.fetch_add(1, Relaxed);
                    let rx = RxAdvert::from_socket(
                        sock.ifindex,
                        sock.family,
                        src,
                        &buf[..n],
                        clock::now(),
                    );
                    // A known source keeps its own queue only at the rate a router sends:
                    // a flood that forges the master's address competes with the rest.
                    let known = trusted.read().is_ok_and(|t| t.contains(&src))
                        && budgets.take(src, std::time::Instant::now());
                    let queue = &queues[usize::from(!known)];
                    let _ = queue.try_send(FallbackAdvert { rx, trusted: known });
                    batch += 1;
                    if batch >= YIELD_EVERY {
                        break;
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
        drop(guard);
        if batch >= YIELD_EVERY {
            tokio::task::yield_now().await;
        }
    }
}

/// Packets read before the reader yields.
const YIELD_EVERY: u32 = 256;
/// What one known source may put in the known queue: a burst, refilled at a rate well above
/// any router's (advert_int 0.01 is 100 a second, plus priority-0 and immediate adverts).
const KNOWN_BURST: f64 = 50.0;
const KNOWN_PER_SECOND: f64 = 250.0;

/// A token bucket per known source (the set is small: masters and unicast peers).
#[derive(Default)]
struct KnownBudgets(HashMap<IpAddr, (f64, std::time::Instant)>);

impl KnownBudgets {
    fn take(&mut self, src: IpAddr, now: std::time::Instant) -> bool {
        if self.0.len() > 4096 {
            self.0.clear();
        }
        let (tokens, last) = self.0.entry(src).or_insert((KNOWN_BURST, now));
        let refill = now.saturating_duration_since(*last).as_secs_f64() * KNOWN_PER_SECOND;
        *tokens = (*tokens + refill).min(KNOWN_BURST);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// A forged flood from the master's own address gets its burst, then only the rate a
    /// router could send at; another known source keeps its own budget.
    #[test]
    fn a_known_source_keeps_the_known_queue_only_at_a_routers_rate() {
        let mut b = KnownBudgets::default();
        let master = IpAddr::from([10, 0, 0, 5]);
        let peer = IpAddr::from([10, 0, 0, 6]);
        let t0 = Instant::now();
        let burst = (0..1000).filter(|_| b.take(master, t0)).count();
        assert_eq!(burst, 50);
        assert!(b.take(peer, t0), "each source has its own bucket");
        // One second later: 250 more at most, whatever was sent.
        let t1 = t0 + Duration::from_secs(1);
        let refilled = (0..1000).filter(|_| b.take(master, t1)).count();
        assert_eq!(refilled, 50, "the bucket holds at most its burst");
        // A router at advert_int 0.01 (one advert every 10 ms) is never refused.
        let mut t = t1 + Duration::from_secs(1);
        for _ in 0..500 {
            t += Duration::from_millis(10);
            assert!(b.take(master, t));
        }
    }
}
