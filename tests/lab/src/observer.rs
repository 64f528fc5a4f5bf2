//! An independent observer of who holds a VIP: a thread with one rtnetlink socket in each
//! host's namespace, asking every few milliseconds for the IPv4 addresses there. It shares no
//! code with vrrpd (it speaks netlink itself), so a bug in the daemon cannot hide from it.

use std::{
    fs,
    net::Ipv4Addr,
    os::fd::{AsRawFd as _, OwnedFd},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, recv, sendto, socket,
};

const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const NLMSG_HDRLEN: usize = 16;
const IFADDRMSG_LEN: usize = 8;

/// When the set of holders changed: (time since the observer started, bit i = host i holds it).
pub type Timeline = Vec<(Duration, u8)>;

pub struct HolderObserver {
    start: Instant,
    stop: Arc<AtomicBool>,
    timeline: Arc<Mutex<Timeline>>,
    samples: Arc<Mutex<u64>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl HolderObserver {
    /// Samples `vip` on each namespace (by name, under /run/netns) every `every`.
    pub fn start(namespaces: &[String], vip: Ipv4Addr, every: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let timeline = Arc::new(Mutex::new(Vec::new()));
        let samples = Arc::new(Mutex::new(0));
        let start = Instant::now();
        let (flag, tl, count) = (
            Arc::clone(&stop),
            Arc::clone(&timeline),
            Arc::clone(&samples),
        );
        let names = namespaces.to_vec();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = thread::spawn(move || {
            let socks: Vec<OwnedFd> = names.iter().map(|ns| socket_in(ns)).collect();
            let _ = ready_tx.send(());
            let mut last = u8::MAX;
            let mut next = Instant::now();
            let mut seq = 0u32;
            while !flag.load(Ordering::Relaxed) {
                let mut mask = 0u8;
                for (i, s) in socks.iter().enumerate() {
                    seq = seq.wrapping_add(1);
                    if holds(s, vip, seq) {
                        mask |= 1 << i;
                    }
                }
                if mask != last {
                    tl.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push((start.elapsed(), mask));
                    last = mask;
                }
                *count
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) += 1;
                next += every;
                let now = Instant::now();
                if next > now {
                    thread::sleep(next - now);
                } else {
                    next = now;
                }
            }
        });
        // An observer that cannot see is no observer: a test that relied on it would pass
        // on an empty timeline.
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("the holder observer did not start in {namespaces:?}: {e}"));
        Self {
            start,
            stop,
            timeline,
            samples,
            thread: Some(thread),
        }
    }

    /// Time on the observer's clock (fault windows are recorded with it).
    pub fn now(&self) -> Duration {
        self.start.elapsed()
    }

    pub fn samples(&self) -> u64 {
        *self
            .samples
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stops sampling; returns the timeline and the time it ended.
    pub fn stop(mut self) -> (Timeline, Duration) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let end = self.start.elapsed();
        let tl = std::mem::take(
            &mut *self
                .timeline
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        (tl, end)
    }
}

impl Drop for HolderObserver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A netlink socket that lives in namespace `ns` (a socket keeps the namespace it was made in;
/// this thread moves there for good, which is fine: it is the observer's own thread).
fn socket_in(ns: &str) -> OwnedFd {
    let path = format!("/run/netns/{ns}");
    let file = fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
        .unwrap_or_else(|e| panic!("setns {path}: {e}"));
    socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )
    .unwrap_or_else(|e| panic!("netlink socket in {ns}: {e}"))
}

/// Asks for every IPv4 address and says whether `vip` is among them.
fn holds(sock: &OwnedFd, vip: Ipv4Addr, seq: u32) -> bool {
    let mut req = Vec::with_capacity(NLMSG_HDRLEN + IFADDRMSG_LEN);
    req.extend_from_slice(
        &u32::try_from(NLMSG_HDRLEN + IFADDRMSG_LEN)
            .unwrap_or(24)
            .to_ne_bytes(),
    );
    req.extend_from_slice(&RTM_GETADDR.to_ne_bytes());
    req.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    req.extend_from_slice(&seq.to_ne_bytes());
    req.extend_from_slice(&0u32.to_ne_bytes());
    req.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 0]); // ifaddrmsg: AF_INET, all interfaces
    if sendto(
        sock.as_raw_fd(),
        &req,
        &NetlinkAddr::new(0, 0),
        MsgFlags::empty(),
    )
    .is_err()
    {
        return false;
    }
    let mut buf = vec![0u8; 32 * 1024];
    let mut found = false;
    loop {
        let Ok(n) = recv(sock.as_raw_fd(), &mut buf, MsgFlags::empty()) else {
            return found;
        };
        let (seen, done) = scan(&buf[..n], vip, seq);
        found |= seen;
        if done || n == 0 {
            return found;
        }
    }
}

/// Walks one datagram of netlink messages: (vip seen, dump finished).
fn scan(mut b: &[u8], vip: Ipv4Addr, seq: u32) -> (bool, bool) {
    let mut seen = false;
    while b.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let ty = u16::from_ne_bytes([b[4], b[5]]);
        let msg_seq = u32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
        if len < NLMSG_HDRLEN || len > b.len() {
            return (seen, true);
        }
        if msg_seq == seq {
            if ty == NLMSG_DONE || ty == NLMSG_ERROR {
                return (seen, true);
            }
            if ty == RTM_NEWADDR {
                let mut attrs = &b[(NLMSG_HDRLEN + IFADDRMSG_LEN).min(len)..len];
                while attrs.len() >= 4 {
                    let alen = usize::from(u16::from_ne_bytes([attrs[0], attrs[1]]));
                    let aty = u16::from_ne_bytes([attrs[2], attrs[3]]);
                    if alen < 4 || alen > attrs.len() {
                        break;
                    }
                    if (aty == IFA_LOCAL || aty == IFA_ADDRESS) && attrs[4..alen] == vip.octets() {
                        seen = true;
                    }
                    attrs = &attrs[((alen + 3) & !3).min(attrs.len())..];
                }
            }
        }
        b = &b[((len + 3) & !3).min(b.len())..];
    }
    (seen, false)
}

/// Time with two or more holders and with none, outside `windows` ((start, end) pairs where
/// the protocol allows either), and in total, over [`from`, `end`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HolderStats {
    pub two_outside: Duration,
    pub none_outside: Duration,
    pub two_total: Duration,
    pub none_total: Duration,
    /// The longest stretch of two holders / no holder outside the windows.
    pub worst_two_outside: Duration,
    pub worst_none_outside: Duration,
}

pub fn holder_stats(
    timeline: &[(Duration, u8)],
    from: Duration,
    end: Duration,
    windows: &[(Duration, Duration)],
) -> HolderStats {
    let mut st = HolderStats::default();
    for (i, &(t, mask)) in timeline.iter().enumerate() {
        let until = timeline.get(i + 1).map_or(end, |n| n.0).min(end);
        let t = t.max(from);
        if until <= t {
            continue;
        }
        let holders = mask.count_ones();
        if holders == 1 {
            continue;
        }
        let span = until.saturating_sub(t);
        let covered: Duration = overlap(t, until, windows);
        let outside = span.saturating_sub(covered);
        if holders >= 2 {
            st.two_total += span;
            st.two_outside += outside;
            st.worst_two_outside = st.worst_two_outside.max(outside);
        } else {
            st.none_total += span;
            st.none_outside += outside;
            st.worst_none_outside = st.worst_none_outside.max(outside);
        }
    }
    st
}

/// How much of [a, b] the (possibly overlapping) windows cover.
fn overlap(a: Duration, b: Duration, windows: &[(Duration, Duration)]) -> Duration {
    let mut w: Vec<(Duration, Duration)> = windows
        .iter()
        .map(|&(s, e)| (s.max(a), e.min(b)))
        .filter(|(s, e)| s < e)
        .collect();
    w.sort();
    let mut total = Duration::ZERO;
    let mut cur: Option<(Duration, Duration)> = None;
    for (s, e) in w {
        match cur {
            Some((cs, ce)) if s <= ce => cur = Some((cs, ce.max(e))),
            Some((cs, ce)) => {
                total += ce.saturating_sub(cs);
                cur = Some((s, e));
            }
            None => cur = Some((s, e)),
        }
    }
    if let Some((cs, ce)) = cur {
        total += ce.saturating_sub(cs);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn time_outside_the_windows_is_counted() {
        // one holder, then two from 100 to 300 ms, then none from 300 to 400, then one.
        let tl = vec![(ms(0), 1), (ms(100), 3), (ms(300), 0), (ms(400), 2)];
        let st = holder_stats(&tl, ms(0), ms(1000), &[(ms(150), ms(250))]);
        assert_eq!(st.two_total, ms(200));
        assert_eq!(st.two_outside, ms(100));
        assert_eq!(st.none_total, ms(100));
        assert_eq!(st.none_outside, ms(100));
        let st = holder_stats(
            &tl,
            ms(0),
            ms(1000),
            &[(ms(50), ms(200)), (ms(180), ms(500))],
        );
        assert_eq!(st.two_outside, Duration::ZERO);
        assert_eq!(st.none_outside, Duration::ZERO);
    }

    #[test]
    fn the_start_is_excluded() {
        let tl = vec![(ms(0), 0), (ms(500), 1)];
        let st = holder_stats(&tl, ms(600), ms(1000), &[]);
        assert_eq!(st, HolderStats::default());
    }

    #[test]
    fn netlink_garbage_is_not_a_holder() {
        let vip = Ipv4Addr::new(10, 0, 0, 3);
        assert_eq!(scan(&[], vip, 1), (false, false));
        assert_eq!(scan(&[0xff; 40], vip, 1), (false, true));
    }
}
