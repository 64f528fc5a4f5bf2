//! A deterministic simulation of the state machine (RFC 5798 section 6): N routers on a
//! virtual LAN, virtual time, loss, delay and crashes injected by a seeded generator.
//! Invariants are checked after every step; a failing seed prints its trace.
//! No kernel, no root, a few seconds for hundreds of seeds. Each router's periodic adverts
//! are a cadence its machine starts and stops (`StartAdverts` / `StopAdverts`), kept here as
//! the advert thread keeps it: on absolute deadlines.

use std::{collections::BTreeMap, fmt::Write as _, net::IpAddr, time::Duration};

use vrrp::{
    protocol::fsm::{Action, Event, Instance, Params, State},
    time::Instant,
    wire::vrrp::{Advert, Auth, Version},
};

const MS: u64 = 1_000_000;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

struct Router {
    fsm: Instance,
    up: bool,
    /// The advert thread's slot: (priority, next deadline, interval) while master.
    cadence: Option<(u8, u64, u64)>,
}

struct Packet {
    at: u64,
    to: usize,
    src: IpAddr,
    advert: Advert,
}

struct Lan {
    routers: Vec<Router>,
    in_flight: Vec<Packet>,
    now: u64,
    loss_percent: u64,
    max_delay: u64,
    trace: String,
    /// (router, time) of every transition to MASTER.
    masters: Vec<(usize, u64)>,
    /// Last time each router's advert (priority > 0) was delivered to anyone.
    last_sent: BTreeMap<usize, u64>,
}

fn addr(i: usize) -> IpAddr {
    IpAddr::from([10, 0, 0, 10 + u8::try_from(i).expect("small")])
}

fn params(version: Version, interval_cs: u16, priority: u8, preempt: bool, i: usize) -> Params {
    Params {
        version,
        vrid: 50,
        priority,
        advert_interval_cs: interval_cs,
        preempt,
        preempt_delay: Duration::ZERO,
        start_as_master: false,
        primary: addr(i),
        addresses: vec![IpAddr::from([10, 0, 0, 3])],
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

impl Lan {
    fn new(params: Vec<Params>, loss_percent: u64, max_delay: u64) -> Self {
        let routers = params
            .into_iter()
            .map(|p| Router {
                fsm: Instance::new(p),
                up: true,
                cadence: None,
            })
            .collect();
        Self {
            routers,
            in_flight: Vec::new(),
            now: 0,
            loss_percent,
            max_delay,
            trace: String::new(),
            masters: Vec::new(),
            last_sent: BTreeMap::new(),
        }
    }

    fn apply(&mut self, i: usize, actions: Vec<Action>, rng: &mut Rng) {
        for a in actions {
            let _ = writeln!(self.trace, "{:>10.3} r{i} {a:?}", self.now as f64 / 1e9);
            match a {
                Action::StartAdverts {
                    priority,
                    first,
                    interval,
                } => {
                    let interval = u64::try_from(interval.as_nanos()).expect("fits");
                    self.routers[i].cadence = Some((priority, first.0, interval));
                }
                Action::StopAdverts => self.routers[i].cadence = None,
                Action::SendAdvert { priority } => self.send(i, priority, rng),
                Action::Transition {
                    to: State::Master, ..
                } => self.masters.push((i, self.now)),
                _ => {}
            }
        }
    }

    fn send(&mut self, i: usize, priority: u8, rng: &mut Rng) {
        let _ = writeln!(
            self.trace,
            "{:>10.3} r{i} sends priority {priority}",
            self.now as f64 / 1e9
        );
        let p = &self.routers[i].fsm.params;
        let advert = Advert {
            version: p.version,
            vrid: p.vrid,
            priority,
            interval_cs: p.advert_interval_cs,
            addresses: p.addresses.clone(),
            auth: p.auth,
        };
        if priority > 0 {
            self.last_sent.insert(i, self.now);
        }
        for to in 0..self.routers.len() {
            if to != i && !rng.chance(self.loss_percent) {
                let at = self.now
                    + if self.max_delay > 0 {
                        rng.below(self.max_delay)
                    } else {
                        0
                    };
                self.in_flight.push(Packet {
                    at,
                    to,
                    src: addr(i),
                    advert: advert.clone(),
                });
            }
        }
    }

    fn start(&mut self, i: usize, rng: &mut Rng) {
        self.routers[i].up = true;
        let a = self.routers[i].fsm.step(Event::Startup, Instant(self.now));
        self.apply(i, a, rng);
    }

    fn crash(&mut self, i: usize) {
        let _ = writeln!(self.trace, "{:>10.3} r{i} CRASH", self.now as f64 / 1e9);
        let p = self.routers[i].fsm.params.clone();
        self.routers[i] = Router {
            fsm: Instance::new(p),
            up: false,
            cadence: None,
        };
        self.in_flight.retain(|p| p.to != i);
    }

    /// Runs until `until`, one event at a time, in time order.
    fn run_until(&mut self, until: u64, rng: &mut Rng) {
        loop {
            let next_timer = self
                .routers
                .iter()
                .enumerate()
                .filter(|(_, r)| r.up)
                .filter_map(|(i, r)| r.fsm.next_deadline().map(|d| (d.0, i)))
                .min();
            let next_advert = self
                .routers
                .iter()
                .enumerate()
                .filter(|(_, r)| r.up)
                .filter_map(|(i, r)| r.cadence.map(|(_, next, _)| (next, i)))
                .min();
            let next_packet = self
                .in_flight
                .iter()
                .enumerate()
                .map(|(k, p)| (p.at, k))
                .min();
            // Packets first at equal times, then the advert thread, then the machines' timers.
            let candidates = [
                next_packet.map(|(t, k)| (t, 0, k)),
                next_advert.map(|(t, i)| (t, 1, i)),
                next_timer.map(|(t, i)| (t, 2, i)),
            ];
            let Some((t, kind, idx)) = candidates.into_iter().flatten().min() else {
                break;
            };
            if t > until {
                break;
            }
            self.now = t.max(self.now);
            if kind == 1 {
                if let Some((priority, next, interval)) = self.routers[idx].cadence {
                    self.routers[idx].cadence = Some((priority, next + interval, interval));
                    self.send(idx, priority, rng);
                }
                continue;
            }
            if kind == 0 {
                let p = self.in_flight.swap_remove(idx);
                if self.routers[p.to].up {
                    let a = self.routers[p.to].fsm.step(
                        Event::Advert {
                            src: p.src,
                            advert: p.advert,
                            arrived: Instant(p.at),
                        },
                        Instant(self.now),
                    );
                    self.apply(p.to, a, rng);
                }
            } else {
                let a = self.routers[idx].fsm.step(Event::Timer, Instant(self.now));
                self.apply(idx, a, rng);
            }
        }
        self.now = until;
    }

    fn masters_now(&self) -> Vec<usize> {
        (0..self.routers.len())
            .filter(|&i| self.routers[i].up && self.routers[i].fsm.state() == State::Master)
            .collect()
    }

    /// The highest priority among live routers: the master must have it. Ties are not
    /// decided by address in general: a backup accepts an equal-priority master (RFC 5798
    /// 6.4.2); only two masters that meet fall back to the address (6.4.3).
    fn top_priority(&self) -> Option<u8> {
        (0..self.routers.len())
            .filter(|&i| self.routers[i].up)
            .map(|i| self.routers[i].fsm.params.priority)
            .max()
    }
}

fn fail(seed: u64, lan: &Lan, what: &str) -> ! {
    let routers: Vec<String> = lan
        .routers
        .iter()
        .enumerate()
        .map(|(i, r)| {
            format!(
                "r{i}: up={} prio={} {:?} next={:?}",
                r.up,
                r.fsm.priority(),
                r.fsm.state(),
                r.fsm.next_deadline()
            )
        })
        .collect();
    panic!(
        "seed {seed} at {:.3}: {what}\n{}\ntrace:\n{}",
        lan.now as f64 / 1e9,
        routers.join("\n"),
        lan.trace
    );
}

/// After convergence exactly one master, with the highest priority; through crashes and restarts of
/// arbitrary routers, with loss and delay during the chaos and a clean network after it.
#[test]
fn converges_to_one_rightful_master_rfc5798_6() {
    for seed in 1..=300u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let version = if rng.chance(50) {
            Version::V3
        } else {
            Version::V2
        };
        let interval_cs: u16 = if version == Version::V2 {
            100
        } else {
            [1, 5, 10, 100][usize::try_from(rng.below(4)).expect("small")]
        };
        let n = 2 + usize::try_from(rng.below(4)).expect("small");
        let params: Vec<Params> = (0..n)
            .map(|i| {
                let priority = if rng.chance(10) {
                    100
                } else {
                    1 + u8::try_from(rng.below(254)).expect("small")
                };
                params(version, interval_cs, priority, true, i)
            })
            .collect();
        let unit = u64::from(interval_cs) * 10 * MS;
        let mut lan = Lan::new(params, 10, unit / 4);
        for i in 0..n {
            lan.start(i, &mut rng);
        }
        // Chaos: 20 random crashes / restarts with loss and delay.
        for _ in 0..20 {
            let step = unit * (1 + rng.below(10));
            let until = lan.now + step;
            lan.run_until(until, &mut rng);
            let i = usize::try_from(rng.below(u64::try_from(n).expect("small"))).expect("small");
            if lan.routers[i].up {
                lan.crash(i);
            } else {
                lan.start(i, &mut rng);
            }
        }
        for i in 0..n {
            if !lan.routers[i].up {
                lan.start(i, &mut rng);
            }
        }
        // Calm: no loss, no delay; after a few Master_Down_Intervals it must have converged.
        lan.loss_percent = 0;
        lan.max_delay = 0;
        let settle = lan.now + unit * 20;
        lan.run_until(settle, &mut rng);
        // Invariant checked at every further step of the calm period.
        for _ in 0..50 {
            let until = lan.now + unit / 2;
            lan.run_until(until, &mut rng);
            let masters = lan.masters_now();
            if masters.len() != 1 {
                fail(
                    seed,
                    &lan,
                    &format!("{} masters {masters:?} after convergence", masters.len()),
                );
            }
            if Some(lan.routers[masters[0]].fsm.priority()) != lan.top_priority() {
                fail(
                    seed,
                    &lan,
                    &format!(
                        "master r{} does not have the top priority {:?}",
                        masters[0],
                        lan.top_priority()
                    ),
                );
            }
        }
    }
}

/// RFC 5798 6.4.2: a backup takes over exactly Master_Down_Interval after the last advert
/// of a master that died, on a lossless LAN with no delay.
#[test]
fn takeover_exactly_master_down_interval_after_last_advert_rfc5798_6_4_2() {
    for (version, interval_cs) in [
        (Version::V2, 100),
        (Version::V3, 100),
        (Version::V3, 10),
        (Version::V3, 1),
    ] {
        let mut rng = Rng(7);
        let mut lan = Lan::new(
            vec![
                params(version, interval_cs, 150, true, 0),
                params(version, interval_cs, 100, true, 1),
            ],
            0,
            0,
        );
        lan.start(0, &mut rng);
        lan.start(1, &mut rng);
        let unit = u64::from(interval_cs) * 10 * MS;
        lan.run_until(unit * 20, &mut rng);
        assert_eq!(lan.masters_now(), vec![0], "{}", lan.trace);
        let last = *lan.last_sent.get(&0).expect("r0 sent adverts");
        lan.crash(0);
        lan.run_until(lan.now + unit * 10, &mut rng);
        let mdi =
            u64::try_from(lan.routers[1].fsm.master_down_interval().as_nanos()).expect("fits");
        let takeover = lan
            .masters
            .iter()
            .rev()
            .find(|(i, _)| *i == 1)
            .map(|(_, t)| *t)
            .expect("r1 took over");
        assert_eq!(
            takeover,
            last + mdi,
            "{version:?} {interval_cs} cs\n{}",
            lan.trace
        );
    }
}

/// RFC 5798 6.4.2 / 6.4.3: a repaired higher-priority router preempts (the seed's chapter 4:
/// lb01 back, the VIP back); with nopreempt it stays backup.
#[test]
fn preemption_per_config_rfc5798_6_4() {
    for preempt in [true, false] {
        let mut rng = Rng(11);
        let mut lan = Lan::new(
            vec![
                params(Version::V2, 100, 150, preempt, 0),
                params(Version::V2, 100, 100, preempt, 1),
            ],
            0,
            0,
        );
        lan.start(1, &mut rng);
        lan.run_until(10_000 * MS, &mut rng);
        assert_eq!(lan.masters_now(), vec![1]);
        lan.start(0, &mut rng);
        lan.run_until(30_000 * MS, &mut rng);
        let expected = if preempt { vec![0] } else { vec![1] };
        assert_eq!(
            lan.masters_now(),
            expected,
            "preempt={preempt}\n{}",
            lan.trace
        );
    }
}

/// RFC 5798 6.4.3: a master that shuts down sends priority 0 and the backup takes over
/// after Skew_Time, not Master_Down_Interval.
#[test]
fn graceful_shutdown_takes_skew_time_rfc5798_6_4_3() {
    let mut rng = Rng(3);
    let mut lan = Lan::new(
        vec![
            params(Version::V3, 100, 150, true, 0),
            params(Version::V3, 100, 100, true, 1),
        ],
        0,
        0,
    );
    lan.start(0, &mut rng);
    lan.start(1, &mut rng);
    lan.run_until(10_000 * MS, &mut rng);
    let a = lan.routers[0].fsm.step(Event::Shutdown, Instant(lan.now));
    let stop_at = lan.now;
    lan.apply(0, a, &mut rng);
    lan.routers[0].up = false;
    lan.run_until(lan.now + 5_000 * MS, &mut rng);
    let takeover = lan
        .masters
        .iter()
        .rev()
        .find(|(i, _)| *i == 1)
        .map(|(_, t)| *t)
        .expect("took over");
    let skew = u64::try_from(lan.routers[1].fsm.skew_time().as_nanos()).expect("fits");
    assert_eq!(takeover, stop_at + skew, "{}", lan.trace);
}
