//! The VRRP state machine of RFC 5798 section 6 (and RFC 3768 section 6 for v2), as a pure
//! function: `step(&mut Instance, Event, now) -> Vec<Action>`. No sockets, no clocks: time is
//! an [`Instant`] in CLOCK_MONOTONIC nanoseconds, the same clock the XDP program stamps
//! adverts with, so a kernel arrival stamp and a timer deadline compare directly. The one
//! timer of this machine, Master_Down_Timer, is a deadline the caller reads with
//! [`Instance::next_deadline`] and turns into `Event::Timer`. The master's Adver_Timer is not
//! kept here: the periodic adverts are a cadence that the machine starts and stops with
//! explicit actions ([`Action::StartAdverts`], [`Action::StopAdverts`]) and that the advert
//! thread keeps, on absolute deadlines, whatever the rest of the daemon is doing.
//!
//! Where the RFC leaves a choice, vrrpd does what keepalived does (so that a mixed pair
//! behaves like a keepalived pair):
//! - `state MASTER` in the config: become master at startup without waiting
//!   Master_Down_Interval (keepalived's `vrrp_init_state` sets a 1 us master-down timer);
//!   RFC 5798 6.4.1 starts every non-owner as backup.
//! - A master that receives a lower-priority advert answers at once with its own advert
//!   ("forcing new election") instead of silently discarding it (RFC 5798 6.4.3), so that the
//!   other side steps down within one packet.
//! - Leaving MASTER for FAULT sends a priority-0 advert, as keepalived does on leave_master.
//! - `preempt_delay`: a backup that would preempt a lower-priority master waits this long
//!   after first seeing it (keepalived: "after startup or seeing a lower priority master").
//! - v2 adverts whose interval differs from ours are dropped (RFC 3768 7.1 says MUST; v3
//!   learns the master's interval instead, RFC 5798 6.4.2).

use std::{net::IpAddr, time::Duration};

use serde::{Deserialize, Serialize};

use super::drop::DropReason;
use crate::{
    time::{Instant, centis, nanos},
    wire::vrrp::{Advert, Auth, Version},
};

/// The states of RFC 5798 6.4, and keepalived's FAULT. Serialized as keepalived names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum State {
    #[serde(rename = "INIT")]
    Initialize,
    #[serde(rename = "BACKUP")]
    Backup,
    #[serde(rename = "MASTER")]
    Master,
    /// keepalived's FAULT: a tracked interface is down or a weight-0 script fails.
    #[serde(rename = "FAULT")]
    Fault,
}

impl State {
    pub const ALL: [Self; 4] = [Self::Initialize, Self::Backup, Self::Master, Self::Fault];

    /// As keepalived logs it: `Entering MASTER STATE`.
    pub const fn keepalived_name(self) -> &'static str {
        match self {
            Self::Initialize => "INIT",
            Self::Backup => "BACKUP",
            Self::Master => "MASTER",
            Self::Fault => "FAULT",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.keepalived_name())
    }
}

/// The owner of the virtual addresses (RFC 5798 5.2.4).
pub const PRIORITY_OWNER: u8 = 255;
/// A master that stops (RFC 5798 5.2.4).
pub const PRIORITY_STOP: u8 = 0;

/// What an instance is configured with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    pub version: Version,
    pub vrid: u8,
    /// Configured priority, 1..=255.
    pub priority: u8,
    /// Advertisement_Interval in centiseconds (v2: a multiple of 100).
    pub advert_interval_cs: u16,
    pub preempt: bool,
    pub preempt_delay: Duration,
    /// keepalived's `state MASTER`: take over at startup (see the module doc).
    pub start_as_master: bool,
    /// Our primary address on the interface, for the tie-break of RFC 5798 6.4.3.
    pub primary: IpAddr,
    /// The virtual addresses, to check what masters advertise (RFC 5798 7.1).
    pub addresses: Vec<IpAddr>,
    /// The unicast peers (empty: multicast). With peers, the config names every router that
    /// may advertise, the owner among them.
    pub peers: Vec<IpAddr>,
    /// Drop an advert whose address list differs from ours (keepalived's strict mode). Off,
    /// it is acted on and reported: RFC 5798 7.1 makes the check a MAY and asks for a log, and
    /// a pair half-way through a rolling change of its VIPs must not elect two masters.
    pub strict_addresses: bool,
    /// Adverts missed before the master is down (keepalived's `down_timer_adverts`; RFC
    /// 5798's 3).
    pub down_timer_adverts: u32,
    /// v2 authentication we send and require.
    pub auth: Auth,
}

/// Inputs of the state machine.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Startup,
    Shutdown,
    /// A received advert that passed decoding (checksum, version, type, length); `arrived` is
    /// its kernel stamp.
    Advert {
        src: IpAddr,
        advert: Advert,
        arrived: Instant,
    },
    /// A deadline from `next_deadline` passed.
    Timer,
    /// The effective priority changed (tracking): 1..=254, or 255 for the owner.
    Priority(u8),
    /// Something this instance tracks failed (true) or recovered (false).
    Fault(bool),
    /// Another member of this instance's vrrp_sync_group entered this state: follow it
    /// (keepalived moves a sync group's members together).
    Sync(State),
    /// The operator's maintenance (`vrrpd set INSTANCE maintenance on|off`): held, a master
    /// gives up with priority 0 (the backups take over after Skew_Time) and the instance
    /// stays BACKUP, whatever it hears and whatever its priority, until released.
    Hold(bool),
}

/// Effects, executed by the daemon at one seam.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send one advert now with this priority (0 when stopping).
    SendAdvert { priority: u8 },
    /// From `first` on, send an advert with `priority` every `interval` (RFC 5798 6.4.3's
    /// Adver_Timer), on absolute deadlines; replaces any cadence before it.
    StartAdverts {
        priority: u8,
        first: Instant,
        interval: Duration,
    },
    /// No more periodic adverts (before a priority-0 advert, so none follows it).
    StopAdverts,
    /// Add the virtual addresses.
    AddVips,
    /// Remove the virtual addresses.
    RemoveVips,
    /// Gratuitous ARP (IPv4) / unsolicited NA (IPv6) for every virtual address.
    Announce,
    /// A master re-asserted itself over a lower-priority master (keepalived's
    /// `garp_lower_prio_repeat` burst: the neighbours' caches may point at the other one).
    Reassert,
    /// As master, an advert with a lower priority (not 0) arrived.
    HeardLower,
    /// The state changed: log keepalived's line, run notify scripts.
    Transition { from: State, to: State },
    /// An advert was dropped; the reason is counted (RFC 6527's error counters).
    Drop(RxError),
    /// An advert was acted on although it disagrees with our config (another address list):
    /// counted and reported, not dropped.
    Mismatch(RxError),
}

/// Why a received advert that decoded is not acted on (RFC 5798 7.1's checks that need our
/// configuration). Counted as [`DropReason`]s; the fields are for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum RxError {
    #[error("VRID {0} is not ours")]
    WrongVrid(u8),
    #[error("version {0:?} where we run the other one")]
    VersionMismatch(Version),
    #[error("authentication type {theirs} where ours is {ours}")]
    AuthTypeMismatch { ours: u8, theirs: u8 },
    #[error("authentication data mismatch")]
    AuthMismatch,
    #[error(
        "advert interval {theirs_cs} cs where ours is {ours_cs} cs (VRRPv2 requires equal intervals)"
    )]
    IntervalMismatch { ours_cs: u16, theirs_cs: u16 },
    #[error("the advertised addresses differ from ours")]
    AddressListMismatch,
    #[error(
        "an advert with priority 255 from a router that does not own the addresses, while we do"
    )]
    OwnerConflict,
    /// A real owner's VIPs are its own addresses, so it sends from one of them (IPv4: its
    /// primary address; IPv6: its link-local). The owner is checked against the addresses
    /// *our* config lists (and its unicast peers), never against those the advert lists, which
    /// a forger chooses. Claiming 255 from elsewhere is a misconfiguration or a forgery, and
    /// would take the VIP from every router on the segment.
    #[error(
        "priority 255 from an address that is neither one of our virtual addresses nor a unicast peer"
    )]
    FalseOwner,
    /// The source is an address this router holds (a virtual address of an instance it is
    /// master for): no other router can send from it. Acted on, a forgery from the VIP's own
    /// address would make the master give it up.
    #[error("the source is a virtual address we hold as master: forged")]
    SpoofedSource,
    /// `check_unicast_src`: the source is not one of the instance's unicast peers.
    #[error("the source is not one of our unicast_peer addresses (check_unicast_src)")]
    NotAPeer,
}

impl RxError {
    pub const fn reason(self) -> DropReason {
        match self {
            Self::WrongVrid(_) => DropReason::UnknownVrid,
            Self::VersionMismatch(_) => DropReason::VersionMismatch,
            Self::AuthTypeMismatch { .. } => DropReason::AuthTypeMismatch,
            Self::AuthMismatch => DropReason::AuthMismatch,
            Self::IntervalMismatch { .. } => DropReason::IntervalMismatch,
            Self::AddressListMismatch => DropReason::AddressListMismatch,
            Self::OwnerConflict => DropReason::OwnerConflict,
            Self::FalseOwner => DropReason::FalseOwner,
            Self::SpoofedSource => DropReason::SpoofedSource,
            Self::NotAPeer => DropReason::NotAPeer,
        }
    }
}

/// The master's periodic adverts as this machine last started them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cadence {
    first: Instant,
    interval: Duration,
}

impl Cadence {
    /// The last periodic send strictly before `now`, if any was due yet. One due at `now`
    /// itself may not have left yet: it does not count.
    fn last_before(self, now: Instant) -> Option<Instant> {
        if now <= self.first {
            return None;
        }
        let step = nanos(self.interval).max(1);
        let k = (now.0 - self.first.0 - 1) / step;
        Some(Instant(self.first.0 + k * step))
    }
}

/// One virtual router on one interface and family.
#[derive(Clone, Debug)]
pub struct Instance {
    pub params: Params,
    state: State,
    priority: u8,
    master_adver_interval_cs: u16,
    master_down_deadline: Option<Instant>,
    /// While master: the periodic adverts, and the last advert sent outside them.
    cadence: Option<Cadence>,
    last_sent: Option<Instant>,
    /// While master: an answer to a priority-0 advert that waits for the flood gap (see
    /// `answer_stop`).
    answer_due: Option<Instant>,
    /// When a lower-priority master was first seen (preempt_delay).
    lower_master_since: Option<Instant>,
    faulted: bool,
    /// Held in BACKUP by the operator (`Event::Hold`).
    held: bool,
    /// The master we last heard: address, priority, interval, when.
    pub master: Option<(IpAddr, u8, u16, Instant)>,
    pub since: Instant,
}

impl Instance {
    pub fn new(params: Params) -> Self {
        let priority = params.priority;
        let interval = params.advert_interval_cs;
        Self {
            params,
            state: State::Initialize,
            priority,
            master_adver_interval_cs: interval,
            master_down_deadline: None,
            cadence: None,
            last_sent: None,
            answer_due: None,
            lower_master_since: None,
            faulted: false,
            held: false,
            master: None,
            since: Instant(0),
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// The effective priority (base plus tracking).
    pub fn priority(&self) -> u8 {
        self.priority
    }

    pub fn master_adver_interval(&self) -> Duration {
        centis(self.master_adver_interval_cs)
    }

    /// Skew_Time: RFC 5798 6.1 (v3, in units of Master_Adver_Interval) and RFC 3768 6.1 (v2,
    /// seconds).
    pub fn skew_time(&self) -> Duration {
        let p = u64::from(256 - u16::from(self.priority));
        match self.params.version {
            Version::V3 => Duration::from_nanos(
                p * u64::from(self.master_adver_interval_cs) * 10_000_000 / 256,
            ),
            Version::V2 => Duration::from_nanos(p * 1_000_000_000 / 256),
        }
    }

    /// Master_Down_Interval: 3 x Master_Adver_Interval + Skew_Time (v2: the configured
    /// Advertisement_Interval).
    pub fn master_down_interval(&self) -> Duration {
        let interval = match self.params.version {
            Version::V3 => self.master_adver_interval_cs,
            Version::V2 => self.params.advert_interval_cs,
        };
        centis(interval) * self.params.down_timer_adverts.max(1) + self.skew_time()
    }

    /// The earliest pending deadline (a backup's Master_Down_Timer, a master's deferred
    /// answer to priority 0); the caller sends `Event::Timer` when it passes.
    pub fn next_deadline(&self) -> Option<Instant> {
        match self.state {
            State::Master => self.answer_due,
            // Held: its Master_Down_Timer never makes it master, so nothing is due.
            State::Backup if self.held => None,
            _ => self.master_down_deadline,
        }
    }

    pub fn master_down_deadline(&self) -> Option<Instant> {
        self.master_down_deadline
    }

    /// While master: when the periodic adverts started (or last moved) and their interval.
    pub fn cadence(&self) -> Option<(Instant, Duration)> {
        self.cadence.map(|c| (c.first, c.interval))
    }

    fn advert_interval(&self) -> Duration {
        centis(self.params.advert_interval_cs)
    }

    fn change_state(&mut self, to: State, now: Instant, actions: &mut Vec<Action>) {
        let from = self.state;
        if from == to {
            return;
        }
        self.state = to;
        self.since = now;
        self.lower_master_since = None;
        actions.push(Action::Transition { from, to });
    }

    /// An advert now, and the periodic ones from one interval later (RFC 5798 6.4.3: "reset the
    /// Adver_Timer to Advertisement_Interval" after every advert sent).
    fn send_now(&mut self, priority: u8, now: Instant, actions: &mut Vec<Action>) {
        let interval = self.advert_interval();
        let first = now.plus(interval);
        actions.push(Action::SendAdvert { priority });
        actions.push(Action::StartAdverts {
            priority,
            first,
            interval,
        });
        self.last_sent = Some(now);
        self.answer_due = None;
        self.cadence = Some(Cadence { first, interval });
    }

    /// RFC 5798 6.4.1 / 6.4.2 "transition to Master": send, announce, start the Adver_Timer.
    fn become_master(&mut self, now: Instant, actions: &mut Vec<Action>) {
        self.master_down_deadline = None;
        self.master = None;
        actions.push(Action::AddVips);
        self.send_now(self.priority, now, actions);
        actions.push(Action::Announce);
        self.change_state(State::Master, now, actions);
    }

    /// Stops the periodic adverts, if any run.
    fn stop_adverts(&mut self, actions: &mut Vec<Action>) {
        if self.cadence.take().is_some() {
            actions.push(Action::StopAdverts);
        }
        self.last_sent = None;
        self.answer_due = None;
    }

    fn become_backup(&mut self, now: Instant, actions: &mut Vec<Action>) {
        let was_master = self.state == State::Master;
        self.stop_adverts(actions);
        self.master_down_deadline = Some(now.plus(self.master_down_interval()));
        if was_master {
            actions.push(Action::RemoveVips);
        }
        self.change_state(State::Backup, now, actions);
    }

    fn become_fault(&mut self, now: Instant, actions: &mut Vec<Action>) {
        self.stand_down(State::Fault, now, actions);
    }

    /// Leaves the election for `to` (FAULT, or INIT on shutdown): a master stops its periodic
    /// adverts, says priority 0 and gives up its addresses (RFC 5798 6.4.3), then every timer
    /// stops.
    fn stand_down(&mut self, to: State, now: Instant, actions: &mut Vec<Action>) {
        self.stop_adverts(actions);
        if self.state == State::Master {
            actions.push(Action::SendAdvert {
                priority: PRIORITY_STOP,
            });
            actions.push(Action::RemoveVips);
        }
        self.master_down_deadline = None;
        self.change_state(to, now, actions);
    }

    /// RFC 5798 7.1's checks that need our configuration. `Ok` means act on it.
    pub fn validate(&self, advert: &Advert) -> Result<(), RxError> {
        let p = &self.params;
        if advert.vrid != p.vrid {
            return Err(RxError::WrongVrid(advert.vrid));
        }
        if advert.version != p.version {
            return Err(RxError::VersionMismatch(advert.version));
        }
        if p.version == Version::V2 {
            let (ours, theirs) = (p.auth.type_code(), advert.auth.type_code());
            if ours != theirs {
                return Err(RxError::AuthTypeMismatch { ours, theirs });
            }
            if p.auth != advert.auth {
                return Err(RxError::AuthMismatch);
            }
            if advert.interval_cs != p.advert_interval_cs {
                return Err(RxError::IntervalMismatch {
                    ours_cs: p.advert_interval_cs,
                    theirs_cs: advert.interval_cs,
                });
            }
        }
        if advert.priority == PRIORITY_OWNER && self.params.priority == PRIORITY_OWNER {
            return Err(RxError::OwnerConflict);
        }
        if p.strict_addresses && self.address_mismatch(advert) {
            return Err(RxError::AddressListMismatch);
        }
        Ok(())
    }

    /// The checks on who sent it: an address we hold, a false owner.
    fn check_source(&self, src: IpAddr, advert: &Advert) -> Result<(), RxError> {
        let p = &self.params;
        if self.state == State::Master && p.addresses.contains(&src) {
            return Err(RxError::SpoofedSource);
        }
        if advert.priority == PRIORITY_OWNER
            && !p.addresses.contains(&src)
            && !p.peers.contains(&src)
        {
            return Err(RxError::FalseOwner);
        }
        Ok(())
    }

    /// RFC 5798 7.1's MAY: the advertised addresses are not ours (an owner's always count).
    fn address_mismatch(&self, advert: &Advert) -> bool {
        advert.priority != PRIORITY_OWNER
            && !same_addresses(&advert.addresses, &self.params.addresses)
    }

    /// Feeds one event; returns the effects in the order they must happen.
    pub fn step(&mut self, event: Event, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        match event {
            Event::Startup => self.startup(now, &mut actions),
            Event::Shutdown => self.shutdown(now, &mut actions),
            Event::Timer => self.timer(now, &mut actions),
            Event::Advert {
                src,
                advert,
                arrived,
            } => match self
                .validate(&advert)
                .and_then(|()| self.check_source(src, &advert))
            {
                Ok(()) => {
                    if self.address_mismatch(&advert) {
                        actions.push(Action::Mismatch(RxError::AddressListMismatch));
                    }
                    self.advert(src, &advert, arrived, now, &mut actions);
                }
                Err(e) => {
                    actions.push(Action::Drop(e));
                    // The backups do not hold the VIP: they took a forged priority 0 from it
                    // as their master leaving, and take over after Skew_Time unless answered.
                    if e == RxError::SpoofedSource && advert.priority == PRIORITY_STOP {
                        self.answer_stop(now, &mut actions);
                    }
                }
            },
            Event::Priority(p) => self.set_priority(p, now, &mut actions),
            Event::Fault(on) => self.fault(on, now, &mut actions),
            Event::Sync(to) => self.sync(to, now, &mut actions),
            Event::Hold(on) => self.hold(on, now, &mut actions),
        }
        actions
    }

    fn hold(&mut self, on: bool, now: Instant, actions: &mut Vec<Action>) {
        if on == self.held {
            return;
        }
        self.held = on;
        match (on, self.state) {
            // As a master that stops (RFC 5798 6.4.3), but into BACKUP: the backup with the
            // highest priority takes over after its Skew_Time.
            (true, State::Master) => {
                self.stand_down(State::Backup, now, actions);
                self.master_down_deadline = Some(now.plus(self.master_down_interval()));
            }
            // Released: a backup as after start, master again if no one better is heard.
            (false, State::Backup) => {
                self.master_down_deadline = Some(now.plus(self.master_down_interval()));
            }
            _ => {}
        }
    }

    /// Whether the operator holds this instance in BACKUP.
    pub fn held(&self) -> bool {
        self.held
    }

    fn sync(&mut self, to: State, now: Instant, actions: &mut Vec<Action>) {
        match (to, self.state) {
            (State::Master, State::Backup) if !self.faulted && !self.held => {
                self.become_master(now, actions);
            }
            (State::Backup, State::Master) => self.become_backup(now, actions),
            (State::Backup, State::Fault) if !self.faulted => self.become_backup(now, actions),
            (State::Fault, State::Backup | State::Master) => self.become_fault(now, actions),
            _ => {}
        }
    }

    /// RFC 5798 6.4.1.
    fn startup(&mut self, now: Instant, actions: &mut Vec<Action>) {
        if self.state != State::Initialize {
            return;
        }
        self.since = now;
        if self.faulted {
            self.become_fault(now, actions);
        } else if self.priority == PRIORITY_OWNER && !self.held {
            self.become_master(now, actions);
        } else {
            self.master_adver_interval_cs = self.params.advert_interval_cs;
            self.become_backup(now, actions);
            if self.params.start_as_master {
                // keepalived: "timeout from the backup state very quickly".
                self.master_down_deadline = Some(now);
            }
        }
    }

    /// RFC 5798 6.4.2 / 6.4.3 "Shutdown event".
    fn shutdown(&mut self, now: Instant, actions: &mut Vec<Action>) {
        self.stand_down(State::Initialize, now, actions);
    }

    fn timer(&mut self, now: Instant, actions: &mut Vec<Action>) {
        // RFC 5798 6.4.2: Master_Down_Timer fires. (6.4.3's Adver_Timer is the advert
        // thread's: see the module doc.)
        if self.state == State::Backup
            && !self.held
            && self.master_down_deadline.is_some_and(|d| d <= now)
        {
            self.become_master(now, actions);
        }
        if self.state == State::Master && self.answer_due.is_some_and(|d| d <= now) {
            self.send_now(self.priority, now, actions);
        }
    }

    fn advert(
        &mut self,
        src: IpAddr,
        advert: &Advert,
        arrived: Instant,
        now: Instant,
        actions: &mut Vec<Action>,
    ) {
        let theirs = advert.priority;
        match self.state {
            State::Backup => {
                if theirs == PRIORITY_STOP {
                    // RFC 5798 6.4.2: the master is leaving; take over after Skew_Time.
                    self.master_down_deadline = Some(arrived.plus(self.skew_time()));
                    return;
                }
                let lower = theirs < self.priority;
                let delay_holds = lower && self.params.preempt && self.preempt_delay_holds(arrived);
                if !self.params.preempt || !lower || delay_holds {
                    if self.params.version == Version::V3 {
                        self.master_adver_interval_cs = advert.interval_cs.max(1);
                    }
                    self.master = Some((src, theirs, advert.interval_cs, arrived));
                    // Measured from the kernel's arrival stamp, not from when we got to it.
                    self.master_down_deadline = Some(arrived.plus(self.master_down_interval()));
                    if !lower {
                        self.lower_master_since = None;
                    }
                }
                // else: preempt a lower-priority master by letting the timer run out.
            }
            State::Master => {
                if theirs == PRIORITY_STOP {
                    // RFC 5798 6.4.3: another router left; assert ourselves now.
                    self.answer_stop(now, actions);
                    return;
                }
                if theirs > self.priority || (theirs == self.priority && src > self.params.primary)
                {
                    if self.params.version == Version::V3 {
                        self.master_adver_interval_cs = advert.interval_cs.max(1);
                    }
                    self.master = Some((src, theirs, advert.interval_cs, arrived));
                    self.become_backup(arrived.max(self.since), actions);
                    self.master_down_deadline = Some(arrived.plus(self.master_down_interval()));
                } else {
                    // keepalived's MASTER_RX_LOWER_PRI event: every lower advert, answered or
                    // not (the router limits the script it runs).
                    actions.push(Action::HeardLower);
                    if self.answer_lower(now, actions) {
                        // keepalived: "received lower priority advert, forcing new election",
                        // and the garp_lower_prio burst.
                        actions.push(Action::Reassert);
                    }
                }
            }
            State::Initialize | State::Fault => {}
        }
    }

    /// When we last sent an advert, periodic or not.
    fn last_advert(&self, now: Instant) -> Option<Instant> {
        [
            self.last_sent,
            self.cadence.and_then(|c| c.last_before(now)),
        ]
        .into_iter()
        .flatten()
        .max()
    }

    /// A master's answer to a lower-priority advert. At most one per quarter interval:
    /// otherwise a flood of such adverts, forged or from a confused peer, would make us send
    /// one advert per packet received. The other side heard us less than a quarter interval
    /// ago and yields to that advert, so an answer skipped changes nothing for it. Whether an
    /// advert left.
    fn answer_lower(&mut self, now: Instant, actions: &mut Vec<Action>) -> bool {
        let interval = self.advert_interval();
        if self
            .last_advert(now)
            .is_some_and(|t| now.since(t) < interval / 4)
        {
            return false;
        }
        self.send_now(self.priority, now, actions);
        true
    }

    /// A master's answer to a priority-0 advert, which every backup heard too and answers with
    /// Skew_Time (RFC 5798 6.4.2): unanswered, the backup with the highest priority takes over
    /// after its Skew_Time, 1/128 of the interval for priority 254. So one is never skipped,
    /// only deferred: sent now, or, within `stop_answer_gap` of the last advert (a flood),
    /// when the gap ends, which answers every priority 0 that arrived meanwhile with one
    /// advert and still leaves before the shortest Skew_Time.
    fn answer_stop(&mut self, now: Instant, actions: &mut Vec<Action>) {
        let gap = self.stop_answer_gap();
        match self.last_advert(now) {
            Some(t) if now.since(t) < gap => {
                let due = t.plus(gap);
                self.answer_due = Some(self.answer_due.map_or(due, |d| d.min(due)));
            }
            _ => self.send_now(self.priority, now, actions),
        }
    }

    /// Half the shortest Skew_Time (priority 254), and not under 1 ms: the fastest a flood of
    /// priority 0 makes us send.
    fn stop_answer_gap(&self) -> Duration {
        (self.advert_interval() / 256).max(Duration::from_millis(1))
    }

    /// preempt_delay: while it runs, a lower-priority master is accepted as if it were higher.
    fn preempt_delay_holds(&mut self, arrived: Instant) -> bool {
        if self.params.preempt_delay.is_zero() {
            return false;
        }
        let first = *self.lower_master_since.get_or_insert(arrived);
        arrived.since(first) < self.params.preempt_delay
    }

    fn set_priority(&mut self, p: u8, now: Instant, actions: &mut Vec<Action>) {
        let p = p.max(1);
        if p == self.priority {
            return;
        }
        self.priority = p;
        // A master advertises its new priority at once, so that a backup that now outranks
        // it (or that it now outranks) decides at the next advert, not a whole interval later.
        if self.state == State::Master {
            self.send_now(p, now, actions);
        }
    }

    fn fault(&mut self, on: bool, now: Instant, actions: &mut Vec<Action>) {
        self.faulted = on;
        match (on, self.state) {
            (true, State::Backup | State::Master) => self.become_fault(now, actions),
            (false, State::Fault) => {
                self.master_adver_interval_cs = self.params.advert_interval_cs;
                self.become_backup(now, actions);
            }
            _ => {}
        }
    }

    /// A reload changed this running instance's configuration (keepalived keeps the state of
    /// an instance across a reload): the new parameters apply from now. A master whose advert
    /// changes (addresses, interval, authentication, version) sends the new one at once and
    /// its cadence carries it from then on (as it does when `readvertise`, for a master whose
    /// cadence was stopped). A new base priority is the caller's to apply, as
    /// `Event::Priority`, because tracking decides the effective one.
    pub fn reconfigure(&mut self, params: Params, readvertise: bool, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        let advert_changed = readvertise
            || params.version != self.params.version
            || params.advert_interval_cs != self.params.advert_interval_cs
            || !same_addresses(&params.addresses, &self.params.addresses)
            || params.auth != self.params.auth
            || params.primary != self.params.primary
            // New unicast peers: they hear a master at once, not at its next transition.
            || params.peers != self.params.peers;
        self.params = params;
        if self.state == State::Master && advert_changed {
            self.send_now(self.priority, now, &mut actions);
        }
        actions
    }

    /// A backup whose Master_Down_Timer ran out waits until `until` instead (its sync group is
    /// not ready to follow it to master).
    pub fn postpone(&mut self, until: Instant) {
        if self.state == State::Backup {
            self.master_down_deadline = Some(until);
        }
    }

    /// Whether a tracked failure holds this instance in FAULT.
    pub fn faulted(&self) -> bool {
        self.faulted
    }
}

fn same_addresses(a: &[IpAddr], b: &[IpAddr]) -> bool {
    let mut a: Vec<&IpAddr> = a.iter().collect();
    let mut b: Vec<&IpAddr> = b.iter().collect();
    a.sort();
    b.sort();
    a == b
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    fn params(version: Version, priority: u8) -> Params {
        Params {
            version,
            vrid: 50,
            priority,
            advert_interval_cs: 100,
            preempt: true,
            preempt_delay: Duration::ZERO,
            start_as_master: false,
            primary: ip(6),
            addresses: vec![ip(3)],
            peers: Vec::new(),
            strict_addresses: true,
            down_timer_adverts: 3,
            auth: if version == Version::V2 {
                Auth::pass("1111")
            } else {
                Auth::None
            },
        }
    }

    #[test]
    fn a_held_master_gives_up_with_priority_zero_and_stays_backup() {
        let mut m = Instance::new(params(Version::V3, 200));
        m.step(Event::Startup, Instant(0));
        m.step(Event::Timer, Instant(4 * S));
        assert_eq!(m.state(), State::Master);
        let a = m.step(Event::Hold(true), Instant(5 * S));
        assert_eq!(
            a,
            [
                Action::StopAdverts,
                Action::SendAdvert { priority: 0 },
                Action::RemoveVips,
                Action::Transition {
                    from: State::Master,
                    to: State::Backup
                },
            ]
        );
        // No master is heard, and still nothing is due: it never takes over while held.
        assert_eq!(m.next_deadline(), None);
        assert!(m.step(Event::Timer, Instant(60 * S)).is_empty());
        // A lower master is followed without preempting it.
        rx(&mut m, 7, 100, 61 * S);
        assert!(m.step(Event::Timer, Instant(70 * S)).is_empty());
        assert_eq!(m.state(), State::Backup);
        // Released: master again once the Master_Down_Timer runs out (preempting the lower).
        m.step(Event::Hold(false), Instant(71 * S));
        let due = m.next_deadline().expect("a deadline once released");
        assert!(due > Instant(71 * S));
        m.step(Event::Timer, due);
        assert_eq!(m.state(), State::Master);
    }

    #[test]
    fn a_held_owner_starts_as_backup() {
        let mut o = Instance::new(params(Version::V3, PRIORITY_OWNER));
        o.step(Event::Hold(true), Instant(0));
        let a = o.step(Event::Startup, Instant(0));
        assert!(!a.contains(&Action::AddVips), "{a:?}");
        assert_eq!(o.state(), State::Backup);
        assert!(o.step(Event::Sync(State::Master), Instant(S)).is_empty());
        assert_eq!(o.state(), State::Backup);
    }

    fn advert(version: Version, priority: u8, interval_cs: u16) -> Advert {
        Advert {
            version,
            vrid: 50,
            priority,
            interval_cs,
            addresses: vec![ip(3)],
            auth: if version == Version::V2 {
                Auth::pass("1111")
            } else {
                Auth::None
            },
        }
    }

    fn rx(i: &mut Instance, from: u8, priority: u8, at: u64) -> Vec<Action> {
        let a = advert(i.params.version, priority, i.params.advert_interval_cs);
        i.step(
            Event::Advert {
                src: ip(from),
                advert: a,
                arrived: Instant(at),
            },
            Instant(at),
        )
    }

    fn backup(version: Version, priority: u8) -> Instance {
        let mut i = Instance::new(params(version, priority));
        i.step(Event::Startup, Instant(0));
        assert_eq!(i.state(), State::Backup);
        i
    }

    /// RFC 5798 6.1 / RFC 3768 6.1: Skew_Time and Master_Down_Interval.
    #[test]
    fn timers_rfc5798_6_1_and_rfc3768_6_1() {
        let v3 = Instance::new(params(Version::V3, 100));
        assert_eq!(v3.skew_time(), Duration::from_micros(609_375));
        assert_eq!(v3.master_down_interval(), Duration::from_micros(3_609_375));
        let mut p = params(Version::V3, 200);
        p.advert_interval_cs = 1; // advert_int 0.01
        let fast = Instance::new(p);
        assert_eq!(
            fast.master_down_interval(),
            Duration::from_nanos(30_000_000 + 2_187_500)
        );
        let v2 = Instance::new(params(Version::V2, 100));
        assert_eq!(v2.master_down_interval(), Duration::from_micros(3_609_375));
    }

    /// RFC 5798 6.4.1: the owner (255) becomes master at once; others become backup.
    #[test]
    fn startup_rfc5798_6_4_1() {
        let mut owner = Instance::new(params(Version::V3, 255));
        let a = owner.step(Event::Startup, Instant(5));
        assert_eq!(owner.state(), State::Master);
        assert_eq!(
            a,
            vec![
                Action::AddVips,
                Action::SendAdvert { priority: 255 },
                Action::StartAdverts {
                    priority: 255,
                    first: Instant(5 + S),
                    interval: Duration::from_secs(1)
                },
                Action::Announce,
                Action::Transition {
                    from: State::Initialize,
                    to: State::Master
                }
            ]
        );
        assert_eq!(
            owner.cadence(),
            Some((Instant(5 + S), Duration::from_secs(1)))
        );
        assert_eq!(
            owner.next_deadline(),
            None,
            "a master has no timer of its own"
        );

        let b = backup(Version::V3, 100);
        assert_eq!(b.next_deadline(), Some(Instant(3_609_375_000)));
    }

    /// A reload that changes a master's unicast peers re-advertises at once (the new peers
    /// hear it now, and the cadence restarts with them), without a transition; a backup's
    /// new peers change nothing it sends.
    #[test]
    fn new_unicast_peers_hear_a_master_at_once() {
        let mut m = Instance::new(params(Version::V3, 255));
        m.step(Event::Startup, Instant(0));
        let p = Params {
            peers: vec![ip(9), ip(10)],
            ..params(Version::V3, 255)
        };
        let a = m.reconfigure(p.clone(), false, Instant(2 * S));
        assert_eq!(
            a.first(),
            Some(&Action::SendAdvert { priority: 255 }),
            "{a:?}"
        );
        assert!(!a.iter().any(|x| matches!(x, Action::Transition { .. })));
        assert!(
            m.reconfigure(p, false, Instant(3 * S)).is_empty(),
            "unchanged"
        );
        let mut b = backup(Version::V3, 100);
        let p = Params {
            peers: vec![ip(9)],
            ..params(Version::V3, 100)
        };
        assert!(b.reconfigure(p, false, Instant(S)).is_empty());
    }

    /// keepalived's `state MASTER`: master at the first timer, without Master_Down_Interval.
    #[test]
    fn start_as_master_follows_keepalived() {
        let mut p = params(Version::V2, 150);
        p.start_as_master = true;
        let mut i = Instance::new(p);
        i.step(Event::Startup, Instant(0));
        assert_eq!(i.next_deadline(), Some(Instant(0)));
        let a = i.step(Event::Timer, Instant(1));
        assert_eq!(i.state(), State::Master);
        assert!(a.contains(&Action::SendAdvert { priority: 150 }));
    }

    /// RFC 5798 6.4.2: an advert from a higher-priority master re-arms Master_Down_Timer,
    /// measured from the kernel's arrival stamp.
    #[test]
    fn backup_rearms_from_arrival_stamp_rfc5798_6_4_2() {
        let mut b = backup(Version::V3, 100);
        rx(&mut b, 5, 150, 2 * S);
        assert_eq!(b.next_deadline(), Some(Instant(2 * S + 3_609_375_000)));
        // Processed late (now = 3 s), the deadline still counts from arrival (2 s).
        let a = advert(Version::V3, 150, 100);
        b.step(
            Event::Advert {
                src: ip(5),
                advert: a,
                arrived: Instant(2 * S),
            },
            Instant(3 * S),
        );
        assert_eq!(b.next_deadline(), Some(Instant(2 * S + 3_609_375_000)));
        assert_eq!(b.master.map(|m| m.0), Some(ip(5)));
    }

    /// RFC 5798 6.4.2: Master_Down_Timer fires -> master.
    #[test]
    fn backup_takes_over_at_master_down_rfc5798_6_4_2() {
        let mut b = backup(Version::V3, 100);
        rx(&mut b, 5, 150, S);
        let deadline = b.next_deadline().expect("armed");
        assert!(b.step(Event::Timer, Instant(deadline.0 - 1)).is_empty());
        let a = b.step(Event::Timer, deadline);
        assert_eq!(b.state(), State::Master);
        assert_eq!(a[0], Action::AddVips);
        assert!(a.contains(&Action::Announce));
    }

    /// RFC 5798 6.4.2: priority 0 from the master -> take over after Skew_Time.
    #[test]
    fn priority_zero_means_skew_time_rfc5798_6_4_2() {
        let mut b = backup(Version::V3, 100);
        rx(&mut b, 5, 0, 10 * S);
        assert_eq!(b.next_deadline(), Some(Instant(10 * S + 609_375_000)));
    }

    /// RFC 5798 6.4.2: with preemption, a lower-priority master is ignored and replaced.
    #[test]
    fn preempt_rfc5798_6_4_2() {
        let mut b = backup(Version::V3, 150);
        let before = b.next_deadline();
        rx(&mut b, 5, 100, S);
        assert_eq!(
            b.next_deadline(),
            before,
            "a lower priority advert must not re-arm the timer"
        );
    }

    /// RFC 5798 6.4.2: without preemption, any master's adverts are accepted.
    #[test]
    fn nopreempt_rfc5798_6_4_2() {
        let mut p = params(Version::V3, 150);
        p.preempt = false;
        let mut b = Instance::new(p);
        b.step(Event::Startup, Instant(0));
        rx(&mut b, 5, 100, S);
        let mdi = u64::try_from(b.master_down_interval().as_nanos()).expect("fits");
        assert_eq!(
            b.next_deadline(),
            Some(Instant(S + mdi)),
            "the lower master's advert re-arms the timer"
        );
    }

    /// keepalived's preempt_delay: a lower master is accepted for that long, then preempted.
    #[test]
    fn preempt_delay_follows_keepalived() {
        let mut p = params(Version::V3, 150);
        p.preempt_delay = Duration::from_secs(5);
        let mut b = Instance::new(p);
        b.step(Event::Startup, Instant(0));
        for t in 1..=4 {
            rx(&mut b, 5, 100, t * S);
        }
        let mdi = b.master_down_interval().as_nanos() as u64;
        assert_eq!(b.next_deadline(), Some(Instant(4 * S + mdi)));
        rx(&mut b, 5, 100, 6 * S);
        assert_eq!(
            b.next_deadline(),
            Some(Instant(4 * S + mdi)),
            "after the delay the lower master is ignored"
        );
    }

    /// RFC 5798 6.4.3: a higher-priority advert makes the master a backup.
    #[test]
    fn master_yields_to_higher_rfc5798_6_4_3() {
        let mut m = Instance::new(params(Version::V3, 255));
        m.params.priority = 100;
        m.step(Event::Startup, Instant(0));
        m.set_priority_for_test(100);
        let a = rx(&mut m, 5, 150, S);
        assert_eq!(m.state(), State::Backup);
        assert_eq!(
            a,
            vec![
                Action::StopAdverts,
                Action::RemoveVips,
                Action::Transition {
                    from: State::Master,
                    to: State::Backup
                }
            ]
        );
    }

    /// RFC 5798 6.4.3: equal priority, the higher primary address wins.
    #[test]
    fn tie_break_on_address_rfc5798_6_4_3() {
        let mut m = Instance::new(params(Version::V3, 255));
        m.step(Event::Startup, Instant(0));
        m.set_priority_for_test(100);
        rx(&mut m, 5, 100, S); // 10.0.0.5 < our 10.0.0.6: we stay
        assert_eq!(m.state(), State::Master);
        rx(&mut m, 7, 100, 2 * S); // 10.0.0.7 > 10.0.0.6: we yield
        assert_eq!(m.state(), State::Backup);
    }

    /// keepalived: a master answers a lower-priority advert at once.
    #[test]
    fn master_answers_lower_priority_like_keepalived() {
        let mut m = Instance::new(params(Version::V3, 255));
        m.step(Event::Startup, Instant(0));
        m.set_priority_for_test(150);
        let a = rx(&mut m, 5, 100, S);
        assert_eq!(
            a,
            vec![
                Action::HeardLower,
                Action::SendAdvert { priority: 150 },
                Action::StartAdverts {
                    priority: 150,
                    first: Instant(2 * S),
                    interval: Duration::from_secs(1)
                },
                Action::Reassert,
            ],
            "the MASTER_RX_LOWER_PRI event, then answered at once with the garp_lower_prio burst; the periodic adverts follow one interval later"
        );
        assert_eq!(m.state(), State::Master);
    }

    /// A flood of lower-priority adverts is answered at most once per quarter interval, not
    /// once per packet; each answer that leaves comes with the garp_lower_prio burst.
    #[test]
    fn a_flood_of_lower_adverts_is_not_amplified() {
        let mut m = Instance::new(params(Version::V3, 255));
        m.step(Event::Startup, Instant(0));
        m.set_priority_for_test(150);
        let (mut sent, mut reasserts, mut heard) = (0, 0, 0);
        // 1000 adverts, 1 ms apart: one second, one advert interval.
        for k in 0..1000u64 {
            let a = rx(&mut m, 5, 100, S + k * 1_000_000);
            sent += a
                .iter()
                .filter(|a| matches!(a, Action::SendAdvert { .. }))
                .count();
            reasserts += a.iter().filter(|a| **a == Action::Reassert).count();
            heard += a.iter().filter(|a| **a == Action::HeardLower).count();
        }
        assert_eq!(
            heard, 1000,
            "every lower advert is an event (the router limits scripts)"
        );
        assert!(
            (3..=5).contains(&sent),
            "{sent} answers to 1000 adverts in one interval"
        );
        assert_eq!(reasserts, sent, "one burst per answer that left");
        assert_eq!(m.state(), State::Master);
    }

    /// RFC 5798 6.4.2: a backup that hears priority 0 takes over after its Skew_Time (1/128 of
    /// the interval at priority 254). A priority 0 that arrives just after one of our adverts
    /// (a forgery timed to follow it) is still answered, within half that Skew_Time.
    #[test]
    fn every_priority_zero_is_answered_within_the_shortest_skew_time() {
        let mut m = Instance::new(params(Version::V3, 255));
        m.step(Event::Startup, Instant(0));
        m.set_priority_for_test(150);
        let backup_254 = {
            let mut b = Instance::new(params(Version::V3, 254));
            b.master_adver_interval_cs = 100;
            b.skew_time()
        };
        // 1 ms after the periodic advert at 1 s.
        let at = S + 1_000_000;
        let a = rx(&mut m, 5, PRIORITY_STOP, at);
        let answered_at = if a.contains(&Action::SendAdvert { priority: 150 }) {
            at
        } else {
            let due = m.next_deadline().expect("an answer is due");
            let a = m.step(Event::Timer, due);
            assert!(a.contains(&Action::SendAdvert { priority: 150 }), "{a:?}");
            due.0
        };
        assert!(
            Duration::from_nanos(answered_at - at) < backup_254,
            "answered {} us after the priority 0; Skew_Time at 254 is {backup_254:?}",
            (answered_at - at) / 1000
        );
        assert_eq!(m.next_deadline(), None, "nothing more due");
    }

    /// A flood of priority 0 is answered at most once per gap (interval / 256), and every one
    /// of them by an advert within the gap.
    #[test]
    fn a_flood_of_priority_zero_is_answered_in_bounded_batches() {
        let mut m = Instance::new(params(Version::V3, 255));
        m.step(Event::Startup, Instant(0));
        m.set_priority_for_test(150);
        let gap = m.stop_answer_gap();
        let mut sends = Vec::new();
        let mut unanswered_since: Option<u64> = None;
        let mut worst = 0;
        // 10,000 priority-0 adverts, 100 us apart: one interval.
        for k in 0..10_000u64 {
            let at = S + k * 100_000;
            while let Some(d) = m.next_deadline().filter(|d| d.0 <= at) {
                if m.step(Event::Timer, d)
                    .contains(&Action::SendAdvert { priority: 150 })
                {
                    sends.push(d.0);
                    if let Some(t) = unanswered_since.take() {
                        worst = worst.max(d.0 - t);
                    }
                }
            }
            if rx(&mut m, 5, PRIORITY_STOP, at).contains(&Action::SendAdvert { priority: 150 }) {
                sends.push(at);
                unanswered_since = None;
            } else {
                unanswered_since.get_or_insert(at);
            }
        }
        assert!(
            sends.len() <= 260,
            "{} adverts for 10,000 priority 0 in one interval",
            sends.len()
        );
        assert!(sends.len() >= 200, "{} answers", sends.len());
        assert!(
            Duration::from_nanos(worst) <= gap,
            "a priority 0 waited {worst} ns for its answer (gap {gap:?})"
        );
        assert_eq!(m.state(), State::Master);
    }

    /// Priority 255 is accepted only from an address our config says may own the VIPs (one of
    /// them, or a unicast peer), whatever the advert lists.
    #[test]
    fn priority_255_from_a_non_owner_is_dropped() {
        let mut b = Instance::new(params(Version::V3, 100));
        b.step(Event::Startup, Instant(0));
        let a = rx(&mut b, 10, PRIORITY_OWNER, S);
        assert_eq!(a, vec![Action::Drop(RxError::FalseOwner)]);
        // Listing its own address does not make it the owner.
        let forged = Advert {
            addresses: vec![ip(3), ip(10)],
            ..advert(Version::V3, PRIORITY_OWNER, 100)
        };
        let a = b.step(
            Event::Advert {
                src: ip(10),
                advert: forged,
                arrived: Instant(S + 1),
            },
            Instant(S + 1),
        );
        assert_eq!(a, vec![Action::Drop(RxError::FalseOwner)]);
        // From the VIP itself (ip(3)): the owner; accepted as master.
        let a = rx(&mut b, 3, PRIORITY_OWNER, 2 * S);
        assert!(a.is_empty(), "{a:?}");
        assert_eq!(b.master.map(|m| m.1), Some(PRIORITY_OWNER));
        // A unicast peer may be the owner.
        let mut u = Instance::new(Params {
            peers: vec![ip(9)],
            ..params(Version::V3, 100)
        });
        u.step(Event::Startup, Instant(0));
        assert!(rx(&mut u, 9, PRIORITY_OWNER, S).is_empty());
    }

    /// A master holds its VIPs: an advert from one of them is forged, whatever its priority,
    /// and must not make it give them up.
    #[test]
    fn a_master_refuses_adverts_from_the_vip_it_holds() {
        let mut m = Instance::new(params(Version::V3, 150));
        m.step(Event::Startup, Instant(0));
        m.step(Event::Timer, Instant(4 * S));
        assert_eq!(m.state(), State::Master);
        for p in [PRIORITY_OWNER, 200] {
            let a = rx(&mut m, 3, p, 5 * S);
            assert_eq!(
                a,
                vec![Action::Drop(RxError::SpoofedSource)],
                "priority {p}"
            );
        }
        assert_eq!(m.state(), State::Master);
        // The backups took a priority 0 from it for their master leaving: it is answered.
        let a = rx(&mut m, 3, PRIORITY_STOP, 6 * S);
        assert_eq!(a[0], Action::Drop(RxError::SpoofedSource));
        assert!(a.contains(&Action::SendAdvert { priority: 150 }), "{a:?}");
        assert_eq!(m.state(), State::Master);
    }

    /// RFC 5798 6.4.3: the Adver_Timer is a cadence started on becoming master, one interval
    /// on, that the advert thread keeps on absolute deadlines; a timer at the master sends
    /// nothing itself and does not move it.
    #[test]
    fn master_adverts_keep_cadence_rfc5798_6_4_3() {
        let mut m = Instance::new(params(Version::V3, 255));
        m.step(Event::Startup, Instant(0));
        assert_eq!(m.cadence(), Some((Instant(S), Duration::from_secs(1))));
        let a = m.step(Event::Timer, Instant(S + 300_000_000)); // woke 0.3 s late
        assert_eq!(a, vec![]);
        assert_eq!(
            m.cadence(),
            Some((Instant(S), Duration::from_secs(1))),
            "the cadence keeps its original phase"
        );
    }

    /// RFC 5798 6.4.3 Shutdown: priority 0, then the addresses go.
    #[test]
    fn shutdown_sends_priority_zero_rfc5798_6_4_3() {
        let mut m = Instance::new(params(Version::V3, 255));
        m.step(Event::Startup, Instant(0));
        let a = m.step(Event::Shutdown, Instant(S));
        assert_eq!(
            a,
            vec![
                Action::StopAdverts,
                Action::SendAdvert { priority: 0 },
                Action::RemoveVips,
                Action::Transition {
                    from: State::Master,
                    to: State::Initialize
                }
            ]
        );
        assert_eq!(m.next_deadline(), None);
    }

    /// RFC 5798 6.4.2: a v3 backup learns Master_Adver_Interval from the master.
    #[test]
    fn v3_backup_learns_interval_rfc5798_6_4_2() {
        let mut b = backup(Version::V3, 100);
        let a = advert(Version::V3, 150, 10);
        b.step(
            Event::Advert {
                src: ip(5),
                advert: a,
                arrived: Instant(S),
            },
            Instant(S),
        );
        assert_eq!(b.master_adver_interval(), Duration::from_millis(100));
        assert_eq!(
            b.next_deadline(),
            Some(Instant(S + 300_000_000 + 60_937_500))
        );
    }

    /// RFC 3768 7.1 (v2 interval must match), RFC 5798 7.1 (VRID, addresses), auth.
    #[test]
    fn receive_validation_rfc5798_7_1() {
        let b = backup(Version::V2, 100);
        let ok = advert(Version::V2, 150, 100);
        assert_eq!(b.validate(&ok), Ok(()));
        assert_eq!(
            b.validate(&Advert {
                vrid: 51,
                ..ok.clone()
            }),
            Err(RxError::WrongVrid(51))
        );
        assert_eq!(
            b.validate(&Advert {
                version: Version::V3,
                ..ok.clone()
            }),
            Err(RxError::VersionMismatch(Version::V3))
        );
        assert_eq!(
            b.validate(&Advert {
                auth: Auth::pass("2222"),
                ..ok.clone()
            }),
            Err(RxError::AuthMismatch)
        );
        assert_eq!(
            b.validate(&Advert {
                auth: Auth::None,
                ..ok.clone()
            }),
            Err(RxError::AuthTypeMismatch { ours: 1, theirs: 0 })
        );
        assert_eq!(
            b.validate(&Advert {
                interval_cs: 200,
                ..ok.clone()
            }),
            Err(RxError::IntervalMismatch {
                ours_cs: 100,
                theirs_cs: 200
            })
        );
        assert_eq!(
            b.validate(&Advert {
                addresses: vec![ip(4)],
                ..ok.clone()
            }),
            Err(RxError::AddressListMismatch)
        );
        assert_eq!(
            b.validate(&Advert {
                addresses: vec![ip(4)],
                priority: 255,
                ..ok.clone()
            }),
            Ok(())
        );
        let owner = Instance::new(params(Version::V2, 255));
        assert_eq!(
            owner.validate(&Advert {
                priority: 255,
                ..ok
            }),
            Err(RxError::OwnerConflict)
        );
    }

    /// A dropped advert changes nothing but is reported.
    #[test]
    fn dropped_advert_is_reported_not_acted_on() {
        let mut b = backup(Version::V2, 100);
        let before = b.next_deadline();
        let a = Advert {
            auth: Auth::pass("nope"),
            ..advert(Version::V2, 150, 100)
        };
        let out = b.step(
            Event::Advert {
                src: ip(5),
                advert: a,
                arrived: Instant(S),
            },
            Instant(S),
        );
        assert_eq!(out, vec![Action::Drop(RxError::AuthMismatch)]);
        assert_eq!(b.next_deadline(), before);
    }

    /// keepalived's FAULT: leaving master sends priority 0; recovery goes through backup.
    #[test]
    fn fault_and_recovery_follow_keepalived() {
        let mut m = Instance::new(params(Version::V3, 255));
        m.step(Event::Startup, Instant(0));
        let a = m.step(Event::Fault(true), Instant(S));
        assert_eq!(
            a[..3],
            [
                Action::StopAdverts,
                Action::SendAdvert { priority: 0 },
                Action::RemoveVips
            ]
        );
        assert_eq!((m.state(), m.next_deadline()), (State::Fault, None));
        m.step(Event::Fault(false), Instant(2 * S));
        assert_eq!(m.state(), State::Backup);
    }

    /// Tracking: a master advertises a changed priority at once.
    #[test]
    fn priority_change_is_advertised_at_once() {
        let mut m = Instance::new(params(Version::V3, 255));
        m.step(Event::Startup, Instant(0));
        m.set_priority_for_test(150);
        assert_eq!(
            m.step(Event::Priority(100), Instant(S)),
            vec![
                Action::SendAdvert { priority: 100 },
                Action::StartAdverts {
                    priority: 100,
                    first: Instant(2 * S),
                    interval: Duration::from_secs(1)
                }
            ]
        );
        assert_eq!(m.priority(), 100);
    }

    impl Instance {
        /// Starts as owner (to reach MASTER in one step), then drops to `p`.
        fn set_priority_for_test(&mut self, p: u8) {
            self.priority = p;
            self.params.priority = p;
        }
    }
}
