//! Issue 9: chaos in the seed's lab. vrrpd on lb01 (priority 150) and lb02 (100), VRRPv3 at
//! advert_int 0.2, while random faults hit them one after another: kill -9 and restart,
//! SIGSTOP/SIGCONT, eth0/eth1 down and up, loss on the switch, SIGHUP reloads that swap the
//! priorities, SIGHUP reloads on both boxes into a sync group with an eth1 instance and back,
//! and keepalived's state signals (USR1, USR2, SIGJSON, SIGRTMAX-1), which must change nothing
//! at all: they get no fault window. Every kind happens at least once (the first faults are
//! a shuffle of all of them). An observer with its own netlink sockets samples every 2 ms who
//! holds the VIP.
//!
//! Invariants: outside each fault and the time the protocol then needs (the fault's span plus
//! GRACE: Master_Down_Interval, a restart, and the preemption back), never two holders and never
//! none; afterwards the preferred master (lb01) holds the VIP alone; stopped cleanly, each
//! master sends priority 0 on the wire as it goes, nobody holds the VIP, no XDP program is
//! left on an interface and no process is left in the namespaces.
//!
//! CI runs 40 s. `VRRPD_CHAOS_SECS=600` (or `cargo xtask bench --chaos`) runs longer;
//! `VRRPD_CHAOS_SEED` replays a run (the seed is printed).

use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use vrrpd_lab::{
    Host, Lab, Proc, ch4_config,
    observer::{HolderObserver, holder_stats},
    require_root, wait_until,
};

const VRRPD: &str = env!("CARGO_BIN_EXE_vrrpd");
const VIP: &str = "10.0.0.3";
const ADVERT_INT: f64 = 0.2;
/// lb02's Master_Down_Interval (RFC 5798 6.1): 3 * 0.2 + (256 - 100) / 256 * 0.2 = 0.72 s, plus
/// a restarted daemon's start (loading XDP, about 0.3 s), the preemption back, and room for a
/// loaded CI machine.
const GRACE: Duration = Duration::from_millis(2500);

fn config(host: Host, priority: u8) -> String {
    let base = if host == Host::Lb01 { 150 } else { 100 };
    ch4_config(host, ADVERT_INT)
        .replace(&format!("priority {base}"), &format!("priority {priority}"))
}

/// `config` with VI_1 in a sync group beside an instance on eth1 (VRID 51, 172.16.1.3).
fn sync_config(host: Host, priority: u8) -> String {
    format!(
        "{}\nvrrp_sync_group G {{\n  group {{\n    VI_1\n    VI_2\n  }}\n}}\n\nvrrp_instance VI_2 {{\n  state BACKUP\n  interface eth1\n  virtual_router_id 51\n  priority {priority}\n  advert_int {ADVERT_INT}\n  virtual_ipaddress {{\n    172.16.1.3/24\n  }}\n}}\n",
        config(host, priority)
    )
}

/// The kinds of fault, by number.
const KINDS: u64 = 7;

/// xorshift64*: reproducible from the printed seed, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.below(hi - lo))
    }
}

#[derive(Default, Debug)]
struct Tally {
    kill: u32,
    stop: u32,
    link: u32,
    loss: u32,
    reload: u32,
    sync_reload: u32,
    signals: u32,
    orphan_xdp: u32,
}

impl Tally {
    fn of(&self, kind: u64) -> u32 {
        match kind {
            0 => self.kill,
            1 => self.stop,
            2 => self.link,
            3 => self.loss,
            4 => self.reload,
            5 => self.sync_reload,
            _ => self.signals,
        }
    }
}

struct Chaos<'a> {
    lab: &'a Lab,
    daemons: [Option<Proc>; 2],
    rng: Rng,
    tally: Tally,
    /// netem is missing from some kernels (CONFIG_NET_SCH_NETEM); nftables' numgen then drops.
    netem: Option<bool>,
}

const HOSTS: [Host; 2] = [Host::Lb01, Host::Lb02];
const PRIORITY: [u8; 2] = [150, 100];

impl Chaos<'_> {
    fn start(&mut self, i: usize) {
        self.daemons[i] = Some(
            self.lab
                .vrrpd(VRRPD, HOSTS[i], &config(HOSTS[i], PRIORITY[i])),
        );
    }

    fn daemon(&self, i: usize) -> &Proc {
        self.daemons[i].as_ref().expect("running")
    }

    /// One fault of `kind` on a random host, from its start to its end; whether it needs a
    /// window (the caller adds the protocol's time).
    fn fault(&mut self, kind: u64) -> (String, bool) {
        let i = usize::try_from(self.rng.below(2)).unwrap_or(0);
        let host = HOSTS[i];
        let what = match kind {
            0 => {
                self.tally.kill += 1;
                if let Some(mut d) = self.daemons[i].take() {
                    d.kill();
                }
                // bpf links die with the process: the interface must be clean at once.
                if !wait_until(Duration::from_secs(1), || {
                    self.lab.xdp_programs(host).is_empty()
                }) {
                    self.tally.orphan_xdp += 1;
                }
                let down = self.rng.millis(200, 1500);
                std::thread::sleep(down);
                self.start(i);
                format!("kill -9 vrrpd on {}, restart after {down:?}", host.name())
            }
            1 => {
                self.tally.stop += 1;
                let d = self.rng.millis(300, 2000);
                self.daemon(i).signal("STOP");
                std::thread::sleep(d);
                self.daemon(i).signal("CONT");
                format!("SIGSTOP vrrpd on {} for {d:?}", host.name())
            }
            2 => {
                self.tally.link += 1;
                let ifname = if self.rng.below(3) == 0 {
                    "eth1"
                } else {
                    "eth0"
                };
                let d = self.rng.millis(300, 1500);
                self.lab.exec(host, &["ip", "link", "set", ifname, "down"]);
                std::thread::sleep(d);
                self.lab.exec(host, &["ip", "link", "set", ifname, "up"]);
                format!("{} {ifname} down for {d:?}", host.name())
            }
            3 => {
                self.tally.loss += 1;
                let port = format!("{}-0", host.name());
                let d = self.rng.millis(1000, 3000);
                let sw = self.lab.switch_ns();
                let how = self.loss_on(&sw, &port);
                std::thread::sleep(d);
                self.heal(&sw, &port);
                format!("{how} towards {} for {d:?}", host.name())
            }
            5 => {
                self.tally.sync_reload += 1;
                // Both boxes, one after the other, as an operator rolls a change out.
                for (j, h) in HOSTS.iter().enumerate() {
                    self.lab.write(
                        &format!("vrrpd-{}.conf", h.name()),
                        &sync_config(*h, PRIORITY[j]),
                    );
                    self.daemon(j).signal("HUP");
                }
                let d = self.rng.millis(1000, 2000);
                std::thread::sleep(d);
                for (j, h) in HOSTS.iter().enumerate() {
                    self.lab.write(
                        &format!("vrrpd-{}.conf", h.name()),
                        &config(*h, PRIORITY[j]),
                    );
                    self.daemon(j).signal("HUP");
                }
                format!("SIGHUP both into sync group G (VI_1, VI_2 on eth1) for {d:?}, then back")
            }
            6 => {
                self.tally.signals += 1;
                for s in [
                    "USR1".to_owned(),
                    "USR2".to_owned(),
                    (libc::SIGRTMIN() + 2).to_string(),
                    (libc::SIGRTMAX() - 1).to_string(),
                ] {
                    self.daemon(i).signal(&s);
                }
                std::thread::sleep(Duration::from_millis(300));
                let alive = self.daemons[i].as_mut().is_some_and(Proc::running);
                assert!(
                    alive,
                    "keepalived's state signals ended vrrpd on {}",
                    host.name()
                );
                return (
                    format!(
                        "USR1, USR2, SIGJSON, SIGRTMAX-1 to {} (no window: nothing may move)",
                        host.name()
                    ),
                    false,
                );
            }
            _ => {
                self.tally.reload += 1;
                // Swap the roles, then swap them back.
                let swapped = if i == 0 { 90 } else { 160 };
                let name = host.name();
                self.lab
                    .write(&format!("vrrpd-{name}.conf"), &config(host, swapped));
                self.daemon(i).signal("HUP");
                let d = self.rng.millis(1000, 2000);
                std::thread::sleep(d);
                self.lab
                    .write(&format!("vrrpd-{name}.conf"), &config(host, PRIORITY[i]));
                self.daemon(i).signal("HUP");
                format!("SIGHUP {name} with priority {swapped} for {d:?}, then back")
            }
        };
        (what, true)
    }

    /// 25 % loss (and 10 ms delay where netem exists) on the switch port towards a host.
    fn loss_on(&mut self, sw: &str, port: &str) -> &'static str {
        if self.netem != Some(false) {
            let ok = self
                .lab
                .try_exec_ns(
                    sw,
                    &[
                        "tc", "qdisc", "add", "dev", port, "root", "netem", "loss", "25%", "delay",
                        "10ms",
                    ],
                )
                .is_ok_and(|o| o.status.success());
            self.netem = Some(ok);
            if ok {
                return "netem loss 25% delay 10ms";
            }
        }
        self.lab
            .exec_ns(sw, &["nft", "add", "table", "bridge", "chaos"]);
        self.lab.exec_ns(
            sw,
            &[
                "nft",
                "add",
                "chain",
                "bridge",
                "chaos",
                "loss",
                "{ type filter hook forward priority 0 ; }",
            ],
        );
        self.lab.exec_ns(
            sw,
            &[
                "nft", "add", "rule", "bridge", "chaos", "loss", "oifname", port, "numgen",
                "random", "mod", "100", "<", "25", "drop",
            ],
        );
        "25% loss (nftables numgen; this kernel has no netem)"
    }

    fn heal(&self, sw: &str, port: &str) {
        if self.netem == Some(true) {
            self.lab
                .exec_ns(sw, &["tc", "qdisc", "del", "dev", port, "root"]);
        } else {
            self.lab
                .exec_ns(sw, &["nft", "delete", "table", "bridge", "chaos"]);
        }
    }
}

#[test]
fn chaos_keeps_one_master() {
    if !require_root("chaos_keeps_one_master") {
        return;
    }
    let secs: u64 = std::env::var("VRRPD_CHAOS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    let seed: u64 = std::env::var("VRRPD_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    eprintln!("chaos: {secs} s, VRRPD_CHAOS_SEED={seed}");
    let lab = Lab::seed();
    let vip: Ipv4Addr = VIP.parse().expect("vip");
    let observer = HolderObserver::start(
        &[lab.ns(Host::Lb01), lab.ns(Host::Lb02)],
        vip,
        Duration::from_millis(2),
    );
    let mut chaos = Chaos {
        lab: &lab,
        daemons: [None, None],
        rng: Rng(seed),
        tally: Tally::default(),
        netem: None,
    };
    chaos.start(0);
    chaos.start(1);
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)
            && !lab.holds(Host::Lb02, VIP)),
        "lb01 first\n{}",
        chaos.daemon(0).logs()
    );
    std::thread::sleep(GRACE);
    let from = observer.now();
    let mut windows = Vec::new();
    let mut log = Vec::new();
    let start = Instant::now();
    // Every kind first, in an order the seed shuffles (Fisher-Yates), then random ones; the
    // run lasts until every kind has happened.
    let mut first: Vec<u64> = (0..KINDS).collect();
    for k in (1..first.len()).rev() {
        let j = usize::try_from(chaos.rng.below(k as u64 + 1)).unwrap_or(0);
        first.swap(k, j);
    }
    let mut first = first.into_iter();
    while start.elapsed() < Duration::from_secs(secs) || first.len() > 0 {
        let kind = first.next().unwrap_or_else(|| chaos.rng.below(KINDS));
        let t0 = observer.now();
        let (what, window) = chaos.fault(kind);
        let t1 = observer.now();
        if window {
            windows.push((t0, t1 + GRACE));
        }
        log.push(format!(
            "{:>8.3}s..{:>8.3}s {what}",
            t0.as_secs_f64(),
            t1.as_secs_f64()
        ));
        // Quiet time beyond the grace: the invariants are checked there.
        std::thread::sleep(GRACE + chaos.rng.millis(500, 1500));
    }
    let settled = wait_until(Duration::from_secs(5), || {
        lab.holds(Host::Lb01, VIP) && !lab.holds(Host::Lb02, VIP)
    });
    let samples = observer.samples();
    let (timeline, end) = observer.stop();
    let st = holder_stats(&timeline, from, end, &windows);
    let faults = log.len();
    eprintln!("{}", log.join("\n"));
    eprintln!(
        "chaos: {faults} faults in {:.0} s ({:?}), {samples} observer samples; two holders {:.3} s in fault windows, {:.3} s outside (worst {:.3} s); no holder {:.3} s in fault windows, {:.3} s outside (worst {:.3} s)",
        end.saturating_sub(from).as_secs_f64(),
        chaos.tally,
        st.two_total.saturating_sub(st.two_outside).as_secs_f64(),
        st.two_outside.as_secs_f64(),
        st.worst_two_outside.as_secs_f64(),
        st.none_total.saturating_sub(st.none_outside).as_secs_f64(),
        st.none_outside.as_secs_f64(),
        st.worst_none_outside.as_secs_f64(),
    );
    let logs = || {
        format!(
            "{}\n{}\ntimeline: {timeline:?}",
            chaos.daemon(0).logs(),
            chaos.daemon(1).logs()
        )
    };
    assert!(
        settled,
        "the preferred master holds the VIP alone after the chaos\n{}",
        logs()
    );
    assert_eq!(
        st.two_outside,
        Duration::ZERO,
        "two holders outside the fault windows\n{}",
        logs()
    );
    assert_eq!(
        st.none_outside,
        Duration::ZERO,
        "no holder outside the fault windows\n{}",
        logs()
    );
    assert_eq!(
        chaos.tally.orphan_xdp, 0,
        "XDP left on an interface after kill -9"
    );
    for kind in 0..KINDS {
        assert!(
            chaos.tally.of(kind) > 0,
            "fault kind {kind} never happened: {:?}",
            chaos.tally
        );
    }
    // 2 ms sampling: a run without samples observed nothing.
    assert!(
        samples > secs * 100,
        "the observer took {samples} samples in {secs} s"
    );

    // Stop cleanly, the master first: priority 0 on the wire as it goes (RFC 5798 6.4.3), then
    // the backup takes over and does the same; VIPs removed, nothing left behind.
    for (i, src) in [(0, [10, 0, 0, 5]), (1, [10, 0, 0, 6])] {
        let sniffer = lab.sniffer(Host::Client);
        let d = chaos.daemons[i].as_mut().expect("running");
        d.signal("TERM");
        let status = d.wait_exit(Duration::from_secs(5));
        assert!(
            status.is_some_and(|s| s.success()),
            "{} exits 0 on SIGTERM\n{}",
            HOSTS[i].name(),
            d.logs()
        );
        assert!(
            sniffer.saw_priority(Ipv4Addr::from(src), 0, Duration::from_secs(1)),
            "{} left as master without priority 0 on the wire\n{}",
            HOSTS[i].name(),
            d.logs()
        );
        if i == 0 {
            assert!(
                wait_until(Duration::from_secs(5), || lab.holds(Host::Lb02, VIP)),
                "lb02 did not take over at lb01's stop"
            );
        }
    }
    for host in HOSTS {
        assert!(!lab.holds(host, VIP), "stale VIP on {}", host.name());
        assert!(
            lab.xdp_programs(host).is_empty(),
            "orphan XDP on {}",
            host.name()
        );
        assert!(
            wait_until(Duration::from_secs(3), || lab.pids(host).is_empty()),
            "processes left in {}: {:?}",
            host.name(),
            lab.pids(host)
        );
    }
}
