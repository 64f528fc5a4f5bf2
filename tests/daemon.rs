//! Issue 5: `vrrpd run` in the seed's lab. Failover and preemption (chapters 4 and 7, with
//! nginx behind the VIP), graceful stop, dual master (chapter 6), interoperability with real
//! keepalived both ways (v2 PASS and v3), IPv6, reload without a transition, and nothing left
//! behind after stop or kill -9.

use std::{fmt::Write as _, net::IpAddr, time::Duration};

use vrrpd_lab::{
    Host, Lab, Proc, fixtures,
    observer::{HolderObserver, holder_stats},
    require_root, wait_until,
};

const VRRPD: &str = env!("CARGO_BIN_EXE_vrrpd");
const VIP: &str = "10.0.0.3";

fn seed(name: &str) -> String {
    std::fs::read_to_string(fixtures().join("seed").join(name)).expect("seed fixture")
}

fn vip() -> IpAddr {
    VIP.parse().expect("vip")
}

/// The instant `cond` became true, polled every 10 ms, or None within `timeout`.
fn time_until(timeout: Duration, cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = std::time::Instant::now();
    wait_until(timeout, cond).then(|| start.elapsed())
}

fn entered(p: &Proc, state: &str) -> usize {
    p.stderr()
        .matches(&format!("(VI_1) Entering {state} STATE"))
        .count()
}

/// Web tier and proxies of chapter 7.
fn web_tier(lab: &Lab) -> Vec<Proc> {
    let procs: Vec<Proc> = [Host::Web01, Host::Web02, Host::Lb01, Host::Lb02]
        .into_iter()
        .map(|h| lab.nginx(h))
        .collect();
    assert!(
        wait_until(Duration::from_secs(10), || lab
            .curl("http://172.16.1.7/")
            .is_some()
            || lab.curl("http://10.0.0.5/").is_some()),
        "nginx did not come up"
    );
    procs
}

/// Chapters 4 and 7: lb01 master; kill -9 of lb01's vrrpd and its link down; the VIP moves to
/// lb02 within Master_Down_Interval (+ margin); curl through the VIP answers before and after;
/// lb01 back, the VIP comes back (preemption).
#[test]
fn failover_and_preemption_chapter4() {
    if !require_root("failover_and_preemption_chapter4") {
        return;
    }
    let lab = Lab::seed();
    let _web = web_tier(&lab);
    let mut lb01 = lab.vrrpd(VRRPD, Host::Lb01, &seed("ch7-lb01.conf"));
    let lb02 = lab.vrrpd(VRRPD, Host::Lb02, &seed("ch7-lb02.conf"));
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)),
        "lb01 never took the VIP\n{}",
        lb01.logs()
    );
    assert!(
        wait_until(Duration::from_secs(5), || entered(&lb02, "BACKUP") >= 1),
        "{}",
        lb02.logs()
    );
    let body = lab
        .curl(&format!("http://{VIP}/"))
        .expect("curl through the VIP before the failover");
    assert!(body.starts_with("web0"), "{body}");
    assert!(!lab.holds(Host::Lb02, VIP));

    // The master dies hard: SIGKILL, and its front link goes down (kill -9 leaves the VIP
    // configured on lb01; the link going down takes it off the wire).
    let probe = lab.prober(Host::Client, vip(), Duration::from_millis(5));
    lb01.kill();
    lab.exec(Host::Lb01, &["ip", "link", "set", "eth0", "down"]);
    // RFC 3768 6.1: Master_Down_Interval = 3 x 1 s + (256 - 100) / 256 s = 3.61 s.
    let took = time_until(Duration::from_secs(10), || lab.holds(Host::Lb02, VIP));
    assert!(
        took.is_some_and(|t| t < Duration::from_millis(3_609 + 1_500)),
        "lb02 took the VIP after {took:?}\n{}",
        lb02.logs()
    );
    assert!(
        wait_until(Duration::from_secs(5), || lab
            .curl(&format!("http://{VIP}/"))
            .is_some()),
        "curl through the VIP after failover"
    );
    let report = probe.stop();
    eprintln!(
        "client gap at v2 advert_int 1 (Master_Down_Interval 3.609 s): {:?} ({} of {} echoes)",
        report.max_gap, report.received, report.sent
    );
    assert!(report.max_gap < Duration::from_secs(6), "{report:?}");

    // lb01 repaired: stale VIP removed at start, then it preempts (state MASTER, 150 > 100).
    lab.exec(Host::Lb01, &["ip", "link", "set", "eth0", "up"]);
    let lb01 = lab.vrrpd(VRRPD, Host::Lb01, &seed("ch7-lb01.conf"));
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)
            && !lab.holds(Host::Lb02, VIP)),
        "no preemption\n{}\n{}",
        lb01.logs(),
        lb02.logs()
    );
    assert!(
        wait_until(Duration::from_secs(5), || lab
            .curl(&format!("http://{VIP}/"))
            .is_some()),
        "curl after preemption"
    );
    assert!(entered(&lb02, "BACKUP") >= 2, "{}", lb02.logs());
}

/// RFC 5798 6.4.3: a master stopped with SIGTERM sends priority 0 and removes its VIP; the
/// backup takes over after Skew_Time (0.61 s at priority 100), well before the 3.61 s
/// Master_Down_Interval it would otherwise wait.
#[test]
fn graceful_stop_hands_over_within_skew_time() {
    if !require_root("graceful_stop_hands_over_within_skew_time") {
        return;
    }
    let lab = Lab::seed();
    let mut lb01 = lab.vrrpd(VRRPD, Host::Lb01, &seed("ch4-lb01.conf"));
    let lb02 = lab.vrrpd(VRRPD, Host::Lb02, &seed("ch4-lb02.conf"));
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)
            && entered(&lb02, "BACKUP") >= 1
            && !lab.holds(Host::Lb02, VIP)),
        "{}",
        lb01.logs()
    );
    std::thread::sleep(Duration::from_millis(1500));
    lb01.signal("TERM");
    let took = time_until(Duration::from_secs(10), || lab.holds(Host::Lb02, VIP));
    let skew = Duration::from_micros(609_375);
    assert!(
        took.is_some_and(|t| t < skew + Duration::from_millis(1500)),
        "took {took:?}\n{}",
        lb02.logs()
    );
    assert!(
        lb01.wait_exit(Duration::from_secs(5))
            .is_some_and(|s| s.success()),
        "{}",
        lb01.logs()
    );
    assert!(
        !lab.holds(Host::Lb01, VIP),
        "a stopped master must not keep its VIP"
    );
    assert!(
        lab.xdp_programs(Host::Lb01).is_empty(),
        "XDP left attached after stop"
    );
}

/// Chapter 6: two instances, each host master of one; both VIPs answer.
#[test]
fn dual_master_chapter6() {
    if !require_root("dual_master_chapter6") {
        return;
    }
    let lab = Lab::seed();
    let lb01 = lab.vrrpd(VRRPD, Host::Lb01, &seed("ch6-lb01.conf"));
    let lb02 = lab.vrrpd(VRRPD, Host::Lb02, &seed("ch6-lb02.conf"));
    let settled = wait_until(Duration::from_secs(10), || {
        lab.holds(Host::Lb01, "10.0.0.3")
            && lab.holds(Host::Lb02, "10.0.0.4")
            && !lab.holds(Host::Lb01, "10.0.0.4")
            && !lab.holds(Host::Lb02, "10.0.0.3")
    });
    assert!(settled, "{}\n{}", lb01.logs(), lb02.logs());
    // Stable for longer than Master_Down_Interval.
    std::thread::sleep(Duration::from_secs(4));
    assert!(lab.holds(Host::Lb01, "10.0.0.3") && lab.holds(Host::Lb02, "10.0.0.4"));
    for vip in ["10.0.0.3", "10.0.0.4"] {
        let ok = lab
            .try_exec(Host::Client, &["ping", "-c", "1", "-W", "1", vip])
            .is_ok_and(|o| o.status.success());
        assert!(ok, "{vip} does not answer");
    }
}

/// v3 variant of the seed's chapter 4, at advert_int 0.1.
fn v3(config: &str) -> String {
    format!(
        "global_defs {{\n  vrrp_version 3\n}}\n{}",
        config.replace("advert_int 1", "advert_int 0.1").replace(
            "    authentication {\n      auth_type PASS\n      auth_pass 1111\n    }\n",
            "",
        )
    )
}

/// Interoperability with the real keepalived, both roles, v2 with PASS and v3: the master
/// holds the VIP and the other side stays backup; when the master stops, the other takes over.
#[test]
fn interoperates_with_keepalived_both_ways() {
    if !require_root("interoperates_with_keepalived_both_ways") {
        return;
    }
    for (label, lb01_conf, lb02_conf) in [
        ("v2 PASS", seed("ch4-lb01.conf"), seed("ch4-lb02.conf")),
        (
            "v3 0.1",
            v3(&seed("ch4-lb01.conf")),
            v3(&seed("ch4-lb02.conf")),
        ),
    ] {
        for vrrpd_is_master in [true, false] {
            let lab = Lab::seed();
            let (master, backup) = if vrrpd_is_master {
                (
                    lab.vrrpd(VRRPD, Host::Lb01, &lb01_conf),
                    lab.keepalived(Host::Lb02, &lb02_conf),
                )
            } else {
                (
                    lab.keepalived(Host::Lb01, &lb01_conf),
                    lab.vrrpd(VRRPD, Host::Lb02, &lb02_conf),
                )
            };
            let case = format!(
                "{label}, vrrpd {}",
                if vrrpd_is_master { "master" } else { "backup" }
            );
            assert!(
                wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)),
                "{case}: lb01 never master\n{}\n{}",
                master.logs(),
                backup.logs()
            );
            // Longer than Master_Down_Interval: the backup hears the master and stays quiet.
            std::thread::sleep(Duration::from_secs(5));
            assert!(
                lab.holds(Host::Lb01, VIP) && !lab.holds(Host::Lb02, VIP),
                "{case}: two masters\n{}\n{}",
                master.logs(),
                backup.logs()
            );
            master.signal("TERM");
            assert!(
                wait_until(Duration::from_secs(10), || lab.holds(Host::Lb02, VIP)),
                "{case}: no takeover\n{}\n{}",
                master.logs(),
                backup.logs()
            );
            assert!(
                wait_until(Duration::from_secs(5), || !lab.holds(Host::Lb01, VIP)),
                "{case}: stopped master kept the VIP"
            );
            drop(master);
        }
    }
}

/// A VRRPv3 IPv6 instance: the VIP answers the client, also after a failover (unsolicited NA).
#[test]
fn ipv6_v3_instance() {
    if !require_root("ipv6_v3_instance") {
        return;
    }
    let conf = |state: &str, prio: u8| {
        format!(
            "global_defs {{\n  vrrp_version 3\n}}\nvrrp_instance VI_1 {{\n  state {state}\n  interface eth0\n  virtual_router_id 60\n  priority {prio}\n  advert_int 0.1\n  native_ipv6\n  virtual_ipaddress {{\n    fd00:10::3/64\n  }}\n}}\n"
        )
    };
    let lab = Lab::seed();
    let mut lb01 = lab.vrrpd(VRRPD, Host::Lb01, &conf("MASTER", 150));
    let lb02 = lab.vrrpd(VRRPD, Host::Lb02, &conf("BACKUP", 100));
    assert!(
        wait_until(Duration::from_secs(10), || lab
            .holds(Host::Lb01, "fd00:10::3")),
        "{}",
        lb01.logs()
    );
    let ping = || {
        lab.try_exec(
            Host::Client,
            &["ping", "-6", "-c", "1", "-W", "1", "fd00:10::3"],
        )
        .is_ok_and(|o| o.status.success())
    };
    assert!(
        wait_until(Duration::from_secs(5), ping),
        "fd00:10::3 does not answer on lb01"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(!lab.holds(Host::Lb02, "fd00:10::3"), "{}", lb02.logs());
    lb01.kill();
    lab.exec(Host::Lb01, &["ip", "link", "set", "eth0", "down"]);
    assert!(
        wait_until(Duration::from_secs(5), || lab
            .holds(Host::Lb02, "fd00:10::3")),
        "{}",
        lb02.logs()
    );
    assert!(
        wait_until(Duration::from_secs(5), ping),
        "fd00:10::3 does not answer after failover"
    );
}

/// SIGHUP with an unchanged config, at advert_int 0.01: no transition on either side and
/// no echo lost by the client (keepalived drops and re-adds its VIPs here).
#[test]
fn reload_with_unchanged_config_causes_no_transition() {
    if !require_root("reload_with_unchanged_config_causes_no_transition") {
        return;
    }
    let fast = |c: String| v3(&c).replace("advert_int 0.1", "advert_int 0.01");
    let lab = Lab::seed_alone();
    let lb01 = lab.vrrpd(VRRPD, Host::Lb01, &fast(seed("ch4-lb01.conf")));
    let lb02 = lab.vrrpd(VRRPD, Host::Lb02, &fast(seed("ch4-lb02.conf")));
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)
            && entered(&lb02, "BACKUP") >= 1
            && !lab.holds(Host::Lb02, VIP)),
        "{}",
        lb01.logs()
    );
    std::thread::sleep(Duration::from_millis(500));
    let before = (
        entered(&lb01, "MASTER"),
        entered(&lb01, "BACKUP"),
        entered(&lb02, "MASTER"),
        entered(&lb02, "BACKUP"),
    );
    let probe = lab.prober(Host::Client, vip(), Duration::from_millis(5));
    for _ in 0..3 {
        lb01.signal("HUP");
        std::thread::sleep(Duration::from_millis(300));
        lb02.signal("HUP");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(wait_until(Duration::from_secs(5), || lb01
        .stderr()
        .matches("reload done")
        .count()
        == 3
        && lb02.stderr().matches("reload done").count() == 3));
    let report = probe.stop();
    let after = (
        entered(&lb01, "MASTER"),
        entered(&lb01, "BACKUP"),
        entered(&lb02, "MASTER"),
        entered(&lb02, "BACKUP"),
    );
    assert_eq!(
        before,
        after,
        "a reload caused a transition\n{}\n{}",
        lb01.logs(),
        lb02.logs()
    );
    // Every echo but the ones in flight when the prober stopped came back.
    assert!(
        report.received + 2 >= report.sent,
        "the client lost echoes during reloads: {report:?}"
    );
    assert!(lab.holds(Host::Lb01, VIP) && !lab.holds(Host::Lb02, VIP));
}

/// The chapter-4 failover at v3 advert_int 0.1: the backup takes over within its
/// Master_Down_Interval (0.3 s + 0.061 s skew) plus a margin, and the client's gap is printed
/// (`cargo test --test daemon -- --nocapture`).
#[test]
fn failover_v3_advert_int_0_1() {
    if !require_root("failover_v3_advert_int_0_1") {
        return;
    }
    let lab = Lab::seed();
    let mut lb01 = lab.vrrpd(VRRPD, Host::Lb01, &v3(&seed("ch4-lb01.conf")));
    let lb02 = lab.vrrpd(VRRPD, Host::Lb02, &v3(&seed("ch4-lb02.conf")));
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)
            && entered(&lb02, "BACKUP") >= 1
            && !lab.holds(Host::Lb02, VIP)),
        "{}",
        lb01.logs()
    );
    std::thread::sleep(Duration::from_secs(1));
    let probe = lab.prober(Host::Client, vip(), Duration::from_millis(2));
    lb01.kill();
    lab.exec(Host::Lb01, &["ip", "link", "set", "eth0", "down"]);
    let took = time_until(Duration::from_secs(5), || lab.holds(Host::Lb02, VIP));
    assert!(
        took.is_some_and(|t| t < Duration::from_millis(361 + 1_000)),
        "took {took:?}\n{}",
        lb02.logs()
    );
    assert!(wait_until(Duration::from_secs(5), || lab
        .try_exec(Host::Client, &["ping", "-c", "1", "-W", "1", VIP])
        .is_ok_and(|o| o.status.success())));
    std::thread::sleep(Duration::from_millis(300));
    let report = probe.stop();
    eprintln!(
        "client gap at v3 advert_int 0.1 (Master_Down_Interval 0.361 s): {:?} ({} of {} echoes)",
        report.max_gap, report.received, report.sent
    );
    assert!(report.max_gap < Duration::from_secs(2), "{report:?}");
}

/// A crash (kill -9) leaves no XDP program attached; the restart removes the stale VIP.
#[test]
fn kill9_leaves_no_program_and_restart_removes_stale_vip() {
    if !require_root("kill9_leaves_no_program_and_restart_removes_stale_vip") {
        return;
    }
    let lab = Lab::seed();
    let mut lb01 = lab.vrrpd(VRRPD, Host::Lb01, &seed("ch4-lb01.conf"));
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)),
        "{}",
        lb01.logs()
    );
    assert_eq!(
        lab.xdp_programs(Host::Lb01).len(),
        1,
        "the program is attached while running"
    );
    lb01.kill();
    assert!(
        wait_until(Duration::from_secs(5), || lab
            .xdp_programs(Host::Lb01)
            .is_empty()),
        "XDP program left attached after kill -9"
    );
    assert!(
        lab.holds(Host::Lb01, VIP),
        "kill -9 cannot clean up: the VIP is stale now"
    );
    // lb02 is master now; lb01 comes back as a backup (lower priority, no preemption).
    let lb02 = lab.vrrpd(
        VRRPD,
        Host::Lb02,
        &seed("ch4-lb02.conf").replace("state BACKUP", "state MASTER"),
    );
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb02, VIP)),
        "{}",
        lb02.logs()
    );
    let backup_conf = seed("ch4-lb01.conf")
        .replace("state MASTER", "state BACKUP")
        .replace("priority 150", "priority 50");
    let lb01 = lab.vrrpd(VRRPD, Host::Lb01, &backup_conf);
    assert!(
        wait_until(Duration::from_secs(5), || lb01
            .stderr()
            .contains("removed stale VIP 10.0.0.3")),
        "{}",
        lb01.logs()
    );
    assert!(!lab.holds(Host::Lb01, VIP));
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        !lab.holds(Host::Lb01, VIP) && lab.holds(Host::Lb02, VIP),
        "{}\n{}",
        lb01.logs(),
        lb02.logs()
    );
}

/// vrrp_sync_group: VI_FRONT (eth0) and VI_BACK (eth1) move together. eth1 down on lb01
/// faults VI_BACK; the group takes VI_FRONT out too, and lb02 holds both VIPs.
#[test]
fn sync_group_members_move_together() {
    if !require_root("sync_group_members_move_together") {
        return;
    }
    let conf = |state: &str, prio: u8| {
        format!(
            "vrrp_sync_group VG_1 {{\n  group {{\n    VI_FRONT\n    VI_BACK\n  }}\n}}\n\
             vrrp_instance VI_FRONT {{\n  state {state}\n  interface eth0\n  virtual_router_id 50\n  priority {prio}\n  advert_int 1\n  virtual_ipaddress {{\n    10.0.0.3\n  }}\n}}\n\
             vrrp_instance VI_BACK {{\n  state {state}\n  interface eth1\n  virtual_router_id 51\n  priority {prio}\n  advert_int 1\n  virtual_ipaddress {{\n    172.16.1.3\n  }}\n}}\n"
        )
    };
    let lab = Lab::seed();
    let lb01 = lab.vrrpd(VRRPD, Host::Lb01, &conf("MASTER", 150));
    let lb02 = lab.vrrpd(VRRPD, Host::Lb02, &conf("BACKUP", 100));
    assert!(
        wait_until(Duration::from_secs(10), || lab
            .holds(Host::Lb01, "10.0.0.3")
            && lab.holds(Host::Lb01, "172.16.1.3")),
        "{}",
        lb01.logs()
    );
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        !lab.holds(Host::Lb02, "10.0.0.3") && !lab.holds(Host::Lb02, "172.16.1.3"),
        "{}",
        lb02.logs()
    );
    lab.exec(Host::Lb01, &["ip", "link", "set", "eth1", "down"]);
    let moved = wait_until(Duration::from_secs(8), || {
        lab.holds(Host::Lb02, "10.0.0.3") && lab.holds(Host::Lb02, "172.16.1.3")
    });
    assert!(moved, "both VIPs on lb02\n{}\n{}", lb01.logs(), lb02.logs());
    assert!(
        !lab.holds(Host::Lb01, "10.0.0.3"),
        "VI_FRONT followed its group out of MASTER\n{}",
        lb01.logs()
    );
    assert!(
        lb01.stderr().contains("(VI_BACK) Entering FAULT STATE")
            && lb01.stderr().contains("(VI_FRONT) Entering FAULT STATE"),
        "{}",
        lb01.logs()
    );
}

/// A sync-group config for the SIGHUP test: VI_FRONT (eth0, 10.0.0.3) with the members given,
/// VI_BACK (eth1, 172.16.1.3) and VI_DB (eth1, 172.16.1.4) where listed.
fn sync_config(state: &str, front_prio: u8, prio: u8, members: &[&str]) -> String {
    let instance = |name: &str, iface: &str, vrid: u8, p: u8, vip: &str| {
        format!(
            "vrrp_instance {name} {{\n  state {state}\n  interface {iface}\n  virtual_router_id {vrid}\n  priority {p}\n  advert_int 1\n  virtual_ipaddress {{\n    {vip}\n  }}\n}}\n"
        )
    };
    let mut c = format!(
        "vrrp_sync_group VG_1 {{\n  group {{\n{}  }}\n}}\n",
        members.iter().fold(String::new(), |mut s, m| {
            let _ = writeln!(s, "    {m}");
            s
        })
    );
    c += &instance("VI_FRONT", "eth0", 50, front_prio, "10.0.0.3");
    if members.contains(&"VI_BACK") {
        c += &instance("VI_BACK", "eth1", 51, prio, "172.16.1.3");
    }
    if members.contains(&"VI_DB") {
        c += &instance("VI_DB", "eth1", 52, prio, "172.16.1.4");
    }
    c
}

/// Issue 14's reproduction and more: SIGHUP that changes (a priority), removes and adds
/// sync-group members on the master, then on the backup, while an observer watches the VIPs.
/// The daemons live through every reload, and each VIP has one holder outside the protocol's
/// windows (a reload that restarts a changed instance, the takeover of a removed one).
#[test]
fn sighup_changes_removes_and_adds_sync_group_members() {
    if !require_root("sighup_changes_removes_and_adds_sync_group_members") {
        return;
    }
    let lab = Lab::seed();
    let ns = [lab.ns(Host::Lb01), lab.ns(Host::Lb02)];
    let front = HolderObserver::start(
        &ns,
        "10.0.0.3".parse().expect("vip"),
        Duration::from_millis(2),
    );
    let db = HolderObserver::start(
        &ns,
        "172.16.1.4".parse().expect("vip"),
        Duration::from_millis(2),
    );
    let both = ["VI_FRONT", "VI_BACK"];
    let mut lb01 = lab.vrrpd(VRRPD, Host::Lb01, &sync_config("MASTER", 150, 150, &both));
    let mut lb02 = lab.vrrpd(VRRPD, Host::Lb02, &sync_config("BACKUP", 100, 100, &both));
    assert!(
        wait_until(Duration::from_secs(10), || lab
            .holds(Host::Lb01, "10.0.0.3")
            && lab.holds(Host::Lb01, "172.16.1.3")
            && lb02.stderr().matches("Entering BACKUP STATE").count() >= 2),
        "{}\n{}",
        lb01.logs(),
        lb02.logs()
    );
    std::thread::sleep(Duration::from_secs(2));
    let from = front.now();
    let mut windows = Vec::new();
    let mut reload = |proc: &Proc, host: Host, config: String, count: usize| {
        let start = front.now();
        lab.write(&format!("vrrpd-{}.conf", host.name()), &config);
        proc.signal("HUP");
        assert!(
            wait_until(Duration::from_secs(5), || proc
                .stderr()
                .matches("reload done")
                .count()
                == count),
            "{}: the reload did not finish\n{}",
            host.name(),
            proc.logs()
        );
        // A changed member restarts (priority 0, then master again); a removed one is taken
        // over by the peer after Skew_Time: 2 s covers both.
        windows.push((start, front.now() + Duration::from_secs(2)));
        std::thread::sleep(Duration::from_secs(4));
    };
    // 1. The reproduction: VI_FRONT's priority changed on the master.
    reload(&lb01, Host::Lb01, sync_config("MASTER", 160, 150, &both), 1);
    assert!(lb01.running(), "lb01 died on the reload\n{}", lb01.logs());
    assert!(lab.holds(Host::Lb01, "10.0.0.3") && !lab.holds(Host::Lb02, "10.0.0.3"));
    assert!(lab.holds(Host::Lb01, "172.16.1.3") && !lab.holds(Host::Lb02, "172.16.1.3"));
    // 2. On the master, VI_BACK leaves (removed) and VI_DB joins the group. lb02 still runs
    //    VI_BACK, whose master went quiet, but its group's VI_FRONT still hears lb01: the group
    //    prefers backup to thrashing (keepalived's rule), so nobody holds 172.16.1.3 until lb02
    //    gets the same change; lb01 holds the new VIP alone.
    let next = ["VI_FRONT", "VI_DB"];
    reload(&lb01, Host::Lb01, sync_config("MASTER", 160, 150, &next), 2);
    assert!(lb01.running(), "{}", lb01.logs());
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        !lab.holds(Host::Lb01, "172.16.1.3") && !lab.holds(Host::Lb02, "172.16.1.3"),
        "{}\n{}",
        lb01.logs(),
        lb02.logs()
    );
    assert!(
        !lb02.stderr().contains("Entering MASTER STATE"),
        "lb02's group thrashes\n{}",
        lb02.logs()
    );
    assert!(lab.holds(Host::Lb01, "172.16.1.4") && !lab.holds(Host::Lb02, "172.16.1.4"));
    // 3. The backup follows: the same change there.
    reload(&lb02, Host::Lb02, sync_config("BACKUP", 100, 100, &next), 1);
    assert!(lb02.running(), "lb02 died on the reload\n{}", lb02.logs());
    assert!(
        !lab.holds(Host::Lb02, "172.16.1.3"),
        "VI_BACK is gone everywhere"
    );
    assert!(lab.holds(Host::Lb01, "10.0.0.3") && lab.holds(Host::Lb01, "172.16.1.4"));
    let end = front.now();
    let (front_tl, _) = front.stop();
    let (db_tl, _) = db.stop();
    let f = holder_stats(&front_tl, from, end, &windows);
    assert_eq!(
        (f.two_outside, f.none_outside),
        (Duration::ZERO, Duration::ZERO),
        "10.0.0.3: {f:?}\n{}\n{}",
        lb01.logs(),
        lb02.logs()
    );
    // 172.16.1.4 exists from the second reload on.
    let d = holder_stats(&db_tl, windows[1].1, end, &windows);
    assert_eq!(
        (d.two_outside, d.none_outside),
        (Duration::ZERO, Duration::ZERO),
        "172.16.1.4: {d:?}\n{}\n{}",
        lb01.logs(),
        lb02.logs()
    );
    for (p, host) in [(&mut lb01, "lb01"), (&mut lb02, "lb02")] {
        assert!(p.running(), "{host} is alive at the end\n{}", p.logs());
    }
}

/// A rolling change of the VIPs, one box at a time as operators do it: lb01 (master) gets a
/// second VIP and a SIGHUP while lb02 still has the old list. lb02 keeps hearing lb01 (the
/// list differs, which RFC 5798 7.1 lets it log and not drop): one master throughout, and
/// lb02's diagnosis names the difference.
#[test]
fn a_rolling_change_of_the_vips_keeps_one_master() {
    if !require_root("a_rolling_change_of_the_vips_keeps_one_master") {
        return;
    }
    let lab = Lab::seed();
    let observer = HolderObserver::start(
        &[lab.ns(Host::Lb01), lab.ns(Host::Lb02)],
        VIP.parse().expect("vip"),
        Duration::from_millis(2),
    );
    let lb01 = lab.vrrpd(VRRPD, Host::Lb01, &seed("ch4-lb01.conf"));
    let lb02 = lab.vrrpd(VRRPD, Host::Lb02, &seed("ch4-lb02.conf"));
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)
            && lb02.stderr().contains("Entering BACKUP STATE")),
        "{}\n{}",
        lb01.logs(),
        lb02.logs()
    );
    std::thread::sleep(Duration::from_secs(2));
    let from = observer.now();
    let changed =
        seed("ch4-lb01.conf").replace("      10.0.0.3\n", "      10.0.0.3\n      10.0.0.30\n");
    assert_ne!(changed, seed("ch4-lb01.conf"));
    lab.write("vrrpd-lb01.conf", &changed);
    lb01.signal("HUP");
    assert!(
        wait_until(Duration::from_secs(5), || lab
            .holds(Host::Lb01, "10.0.0.30")),
        "{}",
        lb01.logs()
    );
    // Past lb02's Master_Down_Interval (3.6 s) twice over.
    let mut finding = false;
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    while std::time::Instant::now() < deadline {
        if let Ok(d) =
            lab.ask_json::<vrrp::northbound::status::Diagnosis>(VRRPD, Host::Lb02, &["diagnose"])
        {
            finding |= d
                .findings
                .iter()
                .any(|f| f.kind == vrrp::northbound::diagnose::FindingKind::VipMismatch);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let (timeline, end) = observer.stop();
    let st = holder_stats(&timeline, from, end, &[]);
    assert_eq!(
        (st.two_total, st.none_total),
        (Duration::ZERO, Duration::ZERO),
        "the VIP moved: {timeline:?}\n{}\n{}",
        lb01.logs(),
        lb02.logs()
    );
    assert!(lab.holds(Host::Lb01, VIP) && !lab.holds(Host::Lb02, VIP));
    assert!(
        !lb02.stderr().contains("Entering MASTER STATE"),
        "{}",
        lb02.logs()
    );
    assert!(finding, "lb02's diagnosis names the different VIP list");
}

/// `ip -j address` of `host`'s eth0 as (address, prefix length).
fn eth0_addresses(lab: &Lab, host: Host) -> Vec<(String, u64)> {
    let out = lab.exec(host, &["ip", "-j", "address", "show", "dev", "eth0"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("ip -j");
    v.as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| Some((a["local"].as_str()?.to_owned(), a["prefixlen"].as_u64()?)))
        .collect()
}

/// An address an admin configured by hand is never vrrpd's to take: 10.0.0.3/24 on lb02's
/// eth0 (the VIP's address, another prefix) survives vrrpd's start as a backup, its time as
/// master (when vrrpd adds 10.0.0.3/32 beside it) and its return to backup (when vrrpd removes
/// only the /32 it added).
#[test]
fn an_address_configured_by_hand_survives_start_and_failover() {
    if !require_root("an_address_configured_by_hand_survives_start_and_failover") {
        return;
    }
    let lab = Lab::seed();
    lab.exec(
        Host::Lb02,
        &["ip", "address", "add", "10.0.0.3/24", "dev", "eth0"],
    );
    let by_hand = (VIP.to_owned(), 24);
    let vip32 = (VIP.to_owned(), 32);
    let mut lb01 = lab.vrrpd(VRRPD, Host::Lb01, &seed("ch4-lb01.conf"));
    let lb02 = lab.vrrpd(VRRPD, Host::Lb02, &seed("ch4-lb02.conf"));
    assert!(
        wait_until(Duration::from_secs(10), || eth0_addresses(&lab, Host::Lb01)
            .contains(&vip32)),
        "{}",
        lb01.logs()
    );
    std::thread::sleep(Duration::from_secs(1));
    let a = eth0_addresses(&lab, Host::Lb02);
    assert!(
        a.contains(&by_hand),
        "the start took it: {a:?}\n{}",
        lb02.logs()
    );
    assert!(!a.contains(&vip32), "{a:?}");
    // lb01 stops: lb02 is master and adds its own /32.
    lb01.signal("TERM");
    assert!(lb01.wait_exit(Duration::from_secs(5)).is_some());
    assert!(
        wait_until(Duration::from_secs(5), || eth0_addresses(&lab, Host::Lb02)
            .contains(&vip32)),
        "{}",
        lb02.logs()
    );
    assert!(eth0_addresses(&lab, Host::Lb02).contains(&by_hand));
    // lb01 back (150 > 100, preempts): lb02 removes the /32 it added, not the /24.
    let lb01 = lab.vrrpd(VRRPD, Host::Lb01, &seed("ch4-lb01.conf"));
    assert!(
        wait_until(Duration::from_secs(10), || !eth0_addresses(
            &lab,
            Host::Lb02
        )
        .contains(&vip32)),
        "{}\n{}",
        lb01.logs(),
        lb02.logs()
    );
    let a = eth0_addresses(&lab, Host::Lb02);
    assert!(
        a.contains(&by_hand),
        "the release took it: {a:?}\n{}",
        lb02.logs()
    );
}

/// A reload to a config that has lost its instances is refused, the running one kept: one with
/// no vrrp_instance at all, and one with an include that reads nothing (here beside a change,
/// a new priority, that must not apply either). A good change then applies.
#[test]
fn reload_to_a_config_that_lost_its_instances_is_refused() {
    if !require_root("reload_to_a_config_that_lost_its_instances_is_refused") {
        return;
    }
    use vrrp::northbound::status::Status;
    let lab = Lab::seed();
    let conf = seed("ch4-lb01.conf");
    let lb01 = lab.vrrpd(VRRPD, Host::Lb01, &conf);
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)),
        "{}",
        lb01.logs()
    );
    let status = || -> Status {
        lab.ask_json(VRRPD, Host::Lb01, &["status"])
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let reload_to = |text: &str| {
        lab.write("vrrpd-lb01.conf", text);
        lb01.signal("HUP");
        std::thread::sleep(Duration::from_millis(1500));
    };
    reload_to("global_defs {\n  router_id lb01\n}\n");
    let st = status();
    assert_eq!(st.instances.len(), 1, "{}", lb01.logs());
    assert!(st.instances[0].holds_vips && lab.holds(Host::Lb01, VIP));
    reload_to(&format!(
        "include /nonexistent-vrrpd-dir/*.conf\n{}",
        conf.replace("priority 150", "priority 160")
    ));
    let st = status();
    assert_eq!(st.instances[0].priority.base, 150, "{}", lb01.logs());
    reload_to(&conf.replace("priority 150", "priority 160"));
    assert!(
        wait_until(Duration::from_secs(3), || status().instances[0]
            .priority
            .base
            == 160),
        "a good reload did not apply\n{}",
        lb01.logs()
    );
    assert!(lab.holds(Host::Lb01, VIP));
}

/// lb01's eth0 is deleted and created again (a VLAN or bond rebuilt, a driver reloaded): once
/// slowly (lb02 takes over meanwhile, lb01 sits in FAULT) and once faster than the link poller
/// looks (no down ever seen). Each time lb01 picks up the new ifindex, XDP runs on it, and it
/// is a master that holds the VIP on the new interface, with lb02 back to BACKUP: never a
/// MASTER whose VIPs and adverts went to an interface that no longer exists.
#[test]
fn a_re_created_interface_is_picked_up_by_its_new_ifindex() {
    if !require_root("a_re_created_interface_is_picked_up_by_its_new_ifindex") {
        return;
    }
    use vrrp::{northbound::status::Status, protocol::fsm::State};
    let lab = Lab::seed();
    let lb01 = lab.vrrpd(VRRPD, Host::Lb01, &seed("ch4-lb01.conf"));
    let lb02 = lab.vrrpd(VRRPD, Host::Lb02, &seed("ch4-lb02.conf"));
    let logs = || format!("{}\n{}", lb01.logs(), lb02.logs());
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)
            && !lab.holds(Host::Lb02, VIP)),
        "{}",
        logs()
    );
    let status = |host: Host| -> Status {
        lab.ask_json(VRRPD, host, &["status"])
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let ns = lab.ns(Host::Lb01);
    let sw = lab.switch_ns();
    let ifindex = || -> u32 {
        let out = lab.exec(Host::Lb01, &["cat", "/sys/class/net/eth0/ifindex"]);
        out.trim().parse().expect("an ifindex")
    };
    let recreate = format!(
        "ip link add eth0 netns {ns} type veth peer name lb01-0 netns {sw} && \
         ip -n {sw} link set lb01-0 master br0 up && \
         ip -n {ns} addr add 10.0.0.5/24 dev eth0 && ip -n {ns} link set eth0 up"
    );
    let settled_on_the_new_interface = |round: &str| {
        let index = ifindex();
        let picked_up = wait_until(Duration::from_secs(15), || {
            let st = status(Host::Lb01);
            let i = &st.instances[0];
            i.state == State::Master
                && i.holds_vips
                && st.interfaces.iter().any(|a| a.ifindex == index)
                && lab.holds(Host::Lb01, VIP)
                && !lab.holds(Host::Lb02, VIP)
                && status(Host::Lb02).instances[0].state == State::Backup
        });
        assert!(
            picked_up,
            "{round}: lb01 did not come back as master on ifindex {index}: {:?}\n{}",
            status(Host::Lb01),
            logs()
        );
        assert!(!lab.xdp_programs(Host::Lb01).is_empty(), "{round}: no XDP");
        assert!(
            lb01.logs().contains("was re-created"),
            "{round}: {}",
            lb01.logs()
        );
    };
    let before = ifindex();
    lab.exec(Host::Lb01, &["ip", "link", "del", "eth0"]);
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb02, VIP)),
        "lb02 did not take over while lb01's eth0 was gone\n{}",
        logs()
    );
    assert!(
        wait_until(Duration::from_secs(3), || status(Host::Lb01).instances[0]
            .state
            == State::Fault),
        "{}",
        logs()
    );
    lab.exec(Host::Lb01, &["sh", "-c", &recreate]);
    assert_ne!(ifindex(), before);
    settled_on_the_new_interface("slowly");
    let before = ifindex();
    lab.exec(
        Host::Lb01,
        &["sh", "-c", &format!("ip link del eth0 && {recreate}")],
    );
    assert_ne!(ifindex(), before);
    settled_on_the_new_interface("at once");
}

/// A unicast pair (lb01 and lb02, each the other's peer): a reload that adds the client as
/// lb01's peer makes the client hear lb01's adverts at once, and one that takes it away
/// stops them; neither reload moves the VIP or makes a transition on either box.
#[test]
fn unicast_peers_are_added_and_removed_on_reload_without_a_transition() {
    if !require_root("unicast_peers_are_added_and_removed_on_reload_without_a_transition") {
        return;
    }
    let lab = Lab::seed();
    let unicast = |host: Host, src: &str, peers: &[&str]| {
        let list: String = peers.iter().map(|p| format!("      {p}\n")).collect();
        seed(&format!("ch4-{}.conf", host.name())).replace(
            "    interface eth0",
            &format!(
                "    interface eth0\n    unicast_src_ip {src}\n    unicast_peer {{\n{list}    }}"
            ),
        )
    };
    let lb01 = lab.vrrpd(
        VRRPD,
        Host::Lb01,
        &unicast(Host::Lb01, "10.0.0.5", &["10.0.0.6"]),
    );
    let lb02 = lab.vrrpd(
        VRRPD,
        Host::Lb02,
        &unicast(Host::Lb02, "10.0.0.6", &["10.0.0.5"]),
    );
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)
            && !lab.holds(Host::Lb02, VIP)),
        "{}",
        lb01.logs()
    );
    // Both up and settled (lb02 a backup that has heard lb01) before counting transitions.
    assert!(
        wait_until(Duration::from_secs(10), || lab
            .ask_json::<vrrp::northbound::status::Status>(VRRPD, Host::Lb02, &["status"])
            .is_ok_and(|s| s.instances[0].master.is_some())),
        "{}",
        lb02.logs()
    );
    std::thread::sleep(Duration::from_secs(2));
    let transitions = |p: &Proc| p.logs().matches("STATE").count();
    let before = (transitions(&lb01), transitions(&lb02));
    let sniffer = lab.sniffer(Host::Client);
    let lb01_addr = std::net::Ipv4Addr::new(10, 0, 0, 5);
    // Unicast to lb02 only: the bridge has learnt lb02's port, the client hears nothing.
    assert!(!sniffer.next_vrrp_from(lb01_addr, Duration::from_millis(2500)));
    lab.write(
        "vrrpd-lb01.conf",
        &unicast(Host::Lb01, "10.0.0.5", &["10.0.0.6", "10.0.0.10"]),
    );
    lb01.signal("HUP");
    assert!(
        sniffer.next_vrrp_from(lb01_addr, Duration::from_millis(1500)),
        "the new peer does not hear the master\n{}",
        lb01.logs()
    );
    lab.write(
        "vrrpd-lb01.conf",
        &unicast(Host::Lb01, "10.0.0.5", &["10.0.0.6"]),
    );
    lb01.signal("HUP");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !sniffer.next_vrrp_from(lb01_addr, Duration::from_millis(2500)),
        "the removed peer still hears the master\n{}",
        lb01.logs()
    );
    assert_eq!(
        (transitions(&lb01), transitions(&lb02)),
        before,
        "a reload of the peers made a transition\n{}\n{}",
        lb01.logs(),
        lb02.logs()
    );
    assert!(lab.holds(Host::Lb01, VIP) && !lab.holds(Host::Lb02, VIP));
}
