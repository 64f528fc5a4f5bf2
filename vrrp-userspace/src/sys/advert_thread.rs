//! The periodic adverts of every master instance, sent from one dedicated thread that keeps its
//! cadence when the rest of the daemon cannot: SCHED_FIFO where permitted (a CPU-throttled
//! cgroup does not stop a real-time thread that has RT runtime), absolute deadlines on
//! CLOCK_MONOTONIC (so lateness never accumulates), one wakeup per deadline, and memory locked
//! so that a page fault cannot delay a send.
//!
//! The state machines stay in the main loop. Their `StartAdverts` / `StopAdverts` effects are
//! this thread's schedule (`set`): which instances send, what, and from when; the immediate
//! adverts (becoming master, answering priority 0) the main loop sends itself. The thread
//! measures how late each send left (`SlotStats`), which is how `vrrpd diagnose` can say that
//! this host starves vrrpd.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        Arc, Condvar, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use socket2::{SockAddr, Socket};
use tracing::{info, warn};

use crate::time::{Instant, nanos};

/// keepalived's vrrp_rt_priority default when set: the middle of SCHED_FIFO's range.
pub const RT_PRIORITY: u8 = 50;

/// Counters of one instance's sends, shared by this thread (periodic adverts) and the main
/// loop (immediate ones).
#[derive(Debug, Default)]
pub struct SlotStats {
    /// Adverts sent (one per destination).
    pub sent: AtomicU64,
    /// Of those, priority 0 (stepping down).
    pub sent_priority_zero: AtomicU64,
    /// Periodic deadlines served by the thread.
    pub periodic: AtomicU64,
    /// Sends refused with EPERM (netfilter on output).
    pub refused: AtomicU64,
    pub refused_last_ns: AtomicU64,
    /// Sends that left more than a quarter interval after their deadline, and the worst.
    pub late: AtomicU64,
    pub late_max_ns: AtomicU64,
    /// Sum of the lateness of every send (mean = sum / sent).
    pub late_sum_ns: AtomicU64,
}

/// What one master instance sends, and when.
pub struct Slot {
    pub name: String,
    pub socket: Arc<Socket>,
    /// (destination, VRRP message for it): v3's checksum covers the destination.
    pub packets: Vec<(SockAddr, Vec<u8>)>,
    pub interval: Duration,
    /// CLOCK_MONOTONIC ns of the next send.
    pub next: Instant,
    pub stats: Arc<SlotStats>,
}

#[derive(Default)]
struct State {
    slots: HashMap<String, Slot>,
    stop: bool,
}

/// The thread and the main loop share the schedule, and one wakeup: a send that left late
/// or was refused tells the loop at once, so that its observation need not look every
/// fraction of a second while all is well.
struct Shared {
    state: Mutex<State>,
    cv: Condvar,
    attention: Arc<tokio::sync::Notify>,
    /// Slots in the schedule, readable without the lock.
    slots: std::sync::atomic::AtomicUsize,
}

pub struct AdvertThread {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The thread's kernel id, for its schedstat.
    pub tid: i32,
}

/// How the thread ended up scheduled, for the log and `status`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Scheduling {
    Fifo(u8),
    /// Refused: why, and what to grant.
    Normal(String),
}

impl AdvertThread {
    /// Starts the thread; `realtime` asks for SCHED_FIFO at that priority (`RT_PRIORITY`
    /// unless the config's `vrrp_rt_priority` says otherwise).
    pub fn start(realtime: Option<u8>) -> (Self, Scheduling) {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            cv: Condvar::new(),
            attention: Arc::default(),
            slots: std::sync::atomic::AtomicUsize::new(0),
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let inner = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("vrrpd-adverts".to_owned())
            .spawn(move || {
                let sched = if let Some(priority) = realtime {
                    make_realtime(priority)
                } else {
                    Scheduling::Normal("--no-realtime".to_owned())
                };
                let _ = tx.send((sched, nix::unistd::gettid().as_raw()));
                run(&inner);
            })
            .ok();
        let (sched, tid) = rx.recv_timeout(Duration::from_secs(5)).unwrap_or_else(|_| {
            (
                Scheduling::Normal("the sender thread did not start".to_owned()),
                0,
            )
        });
        (
            Self {
                shared,
                thread,
                tid,
            },
            sched,
        )
    }

    /// Makes `slot` (keyed by its instance name) the schedule of that instance, or removes it.
    pub fn set(&self, name: &str, slot: Option<Slot>) {
        let (lock, cv) = (&self.shared.state, &self.shared.cv);
        let mut st = lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match slot {
            Some(s) => {
                st.slots.insert(name.to_owned(), s);
            }
            None => {
                st.slots.remove(name);
            }
        }
        self.shared.slots.store(st.slots.len(), Ordering::Relaxed);
        cv.notify_one();
    }

    /// Whether some instance's periodic adverts are scheduled.
    pub fn sending(&self) -> bool {
        self.shared.slots.load(Ordering::Relaxed) > 0
    }

    /// Woken when a send leaves late or is refused.
    pub fn attention(&self) -> &tokio::sync::Notify {
        &self.shared.attention
    }

    /// Wakes the thread without changing its schedule (it then applies a capability drop,
    /// which a thread with nothing to send would otherwise never see).
    pub fn poke(&self) {
        let (lock, cv) = (&self.shared.state, &self.shared.cv);
        // Under the lock, so that the wakeup cannot fall between the thread's look and its wait.
        let _held = lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cv.notify_one();
    }
}

impl Drop for AdvertThread {
    fn drop(&mut self) {
        {
            let (lock, cv) = (&self.shared.state, &self.shared.cv);
            let mut st = lock
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            st.stop = true;
            cv.notify_one();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn make_realtime(priority: u8) -> Scheduling {
    use thread_priority::{
        RealtimeThreadSchedulePolicy, ThreadPriority, ThreadPriorityValue, ThreadSchedulePolicy,
        set_thread_priority_and_policy, thread_native_id,
    };
    let value = ThreadPriorityValue::try_from(priority).unwrap_or_default();
    match set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Crossplatform(value),
        ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::Fifo),
    ) {
        Ok(()) => {
            // Locked memory: a page swapped out of the send path would be a late advert. Each
            // page is locked when first touched (MCL_ONFAULT), so the resident size stays what
            // the daemon uses. The daemon keeps CAP_IPC_LOCK (caps::RUNTIME): without it, once
            // locked, every later mapping (a thread's stack, the main stack growing) would count
            // against RLIMIT_MEMLOCK and fail. Best effort.
            use nix::sys::mman::MlockAllFlags;
            if let Err(e) = nix::sys::mman::mlockall(
                MlockAllFlags::MCL_CURRENT
                    | MlockAllFlags::MCL_FUTURE
                    | MlockAllFlags::from_bits_retain(libc::MCL_ONFAULT),
            ) {
                info!(
                    "adverts: memory not locked ({e}); grant CAP_IPC_LOCK or a larger RLIMIT_MEMLOCK for that"
                );
            }
            Scheduling::Fifo(priority)
        }
        Err(e) => Scheduling::Normal(format!(
            "SCHED_FIFO refused ({}): grant CAP_SYS_NICE, and real-time runtime to vrrpd's cgroup (cgroup v1: cpu.rt_runtime_us, e.g. 10000; systemd: CPUSchedulingPolicy=fifo), or a CPU-throttled cgroup will delay its adverts",
            match e {
                thread_priority::Error::OS(code) => nix::errno::Errno::from_raw(code).to_string(),
                other => format!("{other:?}"),
            }
        )),
    }
}

fn run(shared: &Shared) {
    let (lock, cv) = (&shared.state, &shared.cv);
    // Timer slack would let a SCHED_OTHER thread wake up to 50 us late (a real-time one has
    // none); one wakeup per advert is no batching worth saving power for.
    let _ = nix::sys::prctl::set_timerslack(1);
    let mut st = lock
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    loop {
        super::caps::apply_pending();
        if st.stop {
            return;
        }
        let now = super::clock::now();
        match st.slots.values().map(|s| s.next).min() {
            None => {
                st = cv
                    .wait(st)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            // One wakeup per advert: the wait ends at the deadline itself (std waits on the
            // futex until an absolute CLOCK_MONOTONIC time), or earlier when `set` changes
            // the schedule.
            Some(next) if next > now => {
                st = cv
                    .wait_timeout(st, next.since(now))
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0;
            }
            Some(_) => {
                for slot in st.slots.values_mut() {
                    if slot.next > now {
                        continue;
                    }
                    if send(slot, now) {
                        shared.attention.notify_one();
                    }
                    slot.next = next_after(slot.next, slot.interval, now);
                }
            }
        }
    }
}

/// The deadline after `sent` (the one just served) at `now`. Absolute cadence: it follows the
/// last deadline, not the send time, so lateness never accumulates; deadlines missed whole
/// (the thread was stopped) are skipped, not sent in a burst.
fn next_after(sent: Instant, interval: Duration, now: Instant) -> Instant {
    let step = nanos(interval).max(1);
    let mut next = sent.0.saturating_add(step);
    if next <= now.0 {
        let behind = (now.0 - next) / step + 1;
        next = next.saturating_add(behind * step);
    }
    Instant(next)
}

/// Sends `slot`'s adverts; whether this send left late or was refused.
fn send(slot: &Slot, now: Instant) -> bool {
    let late = now.since(slot.next);
    let st = &slot.stats;
    st.periodic.fetch_add(1, Ordering::Relaxed);
    st.late_sum_ns.fetch_add(nanos(late), Ordering::Relaxed);
    st.late_max_ns.fetch_max(nanos(late), Ordering::Relaxed);
    let mut amiss = late > slot.interval / 4;
    if amiss {
        st.late.fetch_add(1, Ordering::Relaxed);
    }
    for (dst, bytes) in &slot.packets {
        match slot.socket.send_to(bytes, dst) {
            Ok(_) => {
                st.sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                if st.refused.fetch_add(1, Ordering::Relaxed) == 0 {
                    warn!(
                        "({}) the kernel refuses our adverts (EPERM): a firewall drops them on output; see `vrrpd diagnose`",
                        slot.name
                    );
                }
                st.refused_last_ns.store(now.as_nanos(), Ordering::Relaxed);
                amiss = true;
            }
            Err(e) => warn!(
                "({}) sending an advert to {:?}: {e}",
                slot.name,
                dst.as_socket()
                    .map_or(IpAddr::from([0, 0, 0, 0]), |s| s.ip())
            ),
        }
    }
    amiss
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    /// RFC 5798 6.4.3's Adver_Timer on absolute deadlines: a late wake-up does not push every
    /// later advert back, and a stop of several intervals sends no burst.
    #[test]
    fn the_cadence_keeps_its_phase() {
        let second = Duration::from_secs(1);
        let at = Instant;
        assert_eq!(
            next_after(at(S), second, at(S + 300_000_000)),
            at(2 * S),
            "woke 0.3 s late"
        );
        assert_eq!(next_after(at(S), second, at(S)), at(2 * S));
        assert_eq!(
            next_after(at(S), second, at(4 * S + 1)),
            at(5 * S),
            "stopped for 3 intervals"
        );
        assert_eq!(
            next_after(at(S), Duration::ZERO, at(S)),
            at(S + 1),
            "a zero interval cannot spin"
        );
    }
}
