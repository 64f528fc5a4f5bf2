//! Issue 17: keepalived.conf settings that vrrpd parses are in force, each shown where it
//! acts: on the wire, in the kernel's tables, or in the scheduler.

use std::time::{Duration, Instant};

use vrrp::{northbound::status::Status, sys::advert_thread::Scheduling};
use vrrpd_lab::{Host, Lab, ch4_config, fixtures, require_root, wait_until};

const VRRPD: &str = env!("CARGO_BIN_EXE_vrrpd");
const VIP: &str = "10.0.0.3";

fn seed(name: &str) -> String {
    std::fs::read_to_string(fixtures().join("seed").join(name)).expect("seed fixture")
}

fn status(lab: &Lab, host: Host) -> Status {
    lab.ask_json(VRRPD, host, &["status"])
        .unwrap_or_else(|e| panic!("{e}"))
}

/// `down_timer_adverts 10` on lb02 at advert_int 0.1: its Master_Down_Interval is ten
/// intervals plus Skew_Time (1.061 s, not RFC 5798's 0.361 s), and after lb01 dies it waits
/// that long before it takes over.
#[test]
fn down_timer_adverts_stretches_the_master_down_interval() {
    if !require_root("down_timer_adverts_stretches_the_master_down_interval") {
        return;
    }
    let lab = Lab::seed();
    let mut lb01 = lab.vrrpd(VRRPD, Host::Lb01, &ch4_config(Host::Lb01, 0.1));
    let lb02 = lab.vrrpd(
        VRRPD,
        Host::Lb02,
        &ch4_config(Host::Lb02, 0.1).replace(
            "    priority 100",
            "    priority 100\n    down_timer_adverts 10",
        ),
    );
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)
            && !lab.holds(Host::Lb02, VIP)
            && lab
                .ask_json::<Status>(VRRPD, Host::Lb02, &["status"])
                .is_ok_and(|s| s.instances[0].master.is_some())),
        "{}",
        lb02.logs()
    );
    std::thread::sleep(Duration::from_secs(1));
    let mdi = status(&lab, Host::Lb02).instances[0].master_down_interval_s;
    let expected = 10.0 * 0.1 + (256.0 - 100.0) / 256.0 * 0.1;
    assert!((mdi - expected).abs() < 0.001, "{mdi} vs {expected}");
    let t0 = Instant::now();
    lb01.kill();
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb02, VIP)),
        "{}",
        lb02.logs()
    );
    let took = t0.elapsed();
    // No earlier than ten missed adverts (less the last one's age, at most an interval).
    assert!(
        took >= Duration::from_millis(900),
        "lb02 took over after {took:?}, before ten adverts were missed"
    );
}

/// `vrrp_rt_priority 30`: the advert thread runs SCHED_FIFO at 30, as /proc says.
#[test]
fn vrrp_rt_priority_is_the_advert_thread_s_priority() {
    if !require_root("vrrp_rt_priority_is_the_advert_thread_s_priority") {
        return;
    }
    let lab = Lab::seed();
    let conf =
        seed("ch4-lb01.conf").replace("router_id lb01", "router_id lb01\n  vrrp_rt_priority 30");
    let lb01 = lab.vrrpd(VRRPD, Host::Lb01, &conf);
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)),
        "{}",
        lb01.logs()
    );
    assert_eq!(status(&lab, Host::Lb01).advert_thread, Scheduling::Fifo(30));
    // rt_priority is the 40th field of /proc/PID/task/TID/stat (after the command's parens).
    let rt: Vec<(String, u64)> = std::fs::read_dir(format!("/proc/{}/task", lb01.pid()))
        .expect("tasks")
        .filter_map(Result::ok)
        .filter_map(|t| {
            let stat = std::fs::read_to_string(t.path().join("stat")).ok()?;
            let (_, rest) = stat.rsplit_once(')')?;
            let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
            let rt = rest.split_whitespace().nth(37)?.parse().ok()?;
            Some((comm.trim().to_owned(), rt))
        })
        .collect();
    assert!(
        rt.iter()
            .any(|(comm, p)| comm == "vrrpd-adverts" && *p == 30),
        "{rt:?}"
    );
}

/// `promote_secondaries`: set on eth0 while vrrpd runs, so that when the primary address
/// (10.0.0.5/24) is removed, the kernel keeps the VIP of its subnet (10.0.0.3/24) instead of
/// deleting it with the primary; put back at stop.
#[test]
fn promote_secondaries_keeps_the_vip_when_the_primary_goes() {
    if !require_root("promote_secondaries_keeps_the_vip_when_the_primary_goes") {
        return;
    }
    let lab = Lab::seed();
    let sysctl = || {
        lab.exec(
            Host::Lb01,
            &["cat", "/proc/sys/net/ipv4/conf/eth0/promote_secondaries"],
        )
        .trim()
        .to_owned()
    };
    // A new namespace inherits the host's defaults (systemd sets promote_secondaries 1): 0
    // first, so that the test shows vrrpd's doing.
    lab.exec(
        Host::Lb01,
        &["sysctl", "-qw", "net.ipv4.conf.eth0.promote_secondaries=0"],
    );
    let before = sysctl();
    assert_eq!(before, "0");
    let conf = seed("ch4-lb01.conf")
        .replace(
            "    priority 150",
            "    priority 150\n    promote_secondaries",
        )
        .replace("      10.0.0.3\n", "      10.0.0.3/24\n");
    let mut lb01 = lab.vrrpd(VRRPD, Host::Lb01, &conf);
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)),
        "{}",
        lb01.logs()
    );
    assert_eq!(sysctl(), "1");
    lab.exec(
        Host::Lb01,
        &["ip", "addr", "del", "10.0.0.5/24", "dev", "eth0"],
    );
    assert!(
        lab.holds(Host::Lb01, VIP),
        "the VIP went with the primary address: {:?}",
        lab.addresses(Host::Lb01, "eth0")
    );
    lb01.signal("TERM");
    assert!(lb01.wait_exit(Duration::from_secs(10)).is_some());
    assert_eq!(sysctl(), before, "promote_secondaries not put back");
}

/// `vrrp_startup_delay 2`: lb01 (`state MASTER`, which takes over at once) holds nothing for
/// two seconds after it starts, then takes the VIP.
#[test]
fn vrrp_startup_delay_holds_the_instances_back() {
    if !require_root("vrrp_startup_delay_holds_the_instances_back") {
        return;
    }
    let lab = Lab::seed();
    let conf =
        seed("ch4-lb01.conf").replace("router_id lb01", "router_id lb01\n  vrrp_startup_delay 2");
    let t0 = Instant::now();
    let lb01 = lab.vrrpd(VRRPD, Host::Lb01, &conf);
    assert!(
        wait_until(Duration::from_secs(10), || lb01
            .logs()
            .contains("the instances start in 2.000 s")),
        "{}",
        lb01.logs()
    );
    while t0.elapsed() < Duration::from_millis(1500) {
        assert!(
            !lab.holds(Host::Lb01, VIP),
            "the VIP came {:?} after the start\n{}",
            t0.elapsed(),
            lb01.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        wait_until(Duration::from_secs(5), || lab.holds(Host::Lb01, VIP)),
        "{}",
        lb01.logs()
    );
    assert!(t0.elapsed() >= Duration::from_secs(2), "{:?}", t0.elapsed());
}

/// The routes of `host` to `dest`, as `ip -j route show table all` lists them (type, gateway,
/// protocol).
fn routes_to(lab: &Lab, host: Host, dest: &str) -> Vec<(String, String, String)> {
    let out = lab.exec(host, &["ip", "-j", "route", "show", "table", "all", dest]);
    serde_json::from_str::<serde_json::Value>(&out)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or("").to_owned();
            // ip -j leaves the type out for unicast.
            let kind = Some(s("type"))
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| "unicast".to_owned());
            (kind, s("gateway"), s("protocol"))
        })
        .collect()
}

/// `virtual_routes`: the master holds them (marked protocol keepalived), the backup does not;
/// after a failover they follow the VIP, and a route written in a form vrrpd does not apply is
/// warned about by line.
#[test]
fn virtual_routes_follow_mastership() {
    if !require_root("virtual_routes_follow_mastership") {
        return;
    }
    let lab = Lab::seed();
    let routes = "    virtual_routes {\n      192.0.2.0/24 via 10.0.0.1 dev eth0\n      blackhole 198.51.100.0/24\n      203.0.113.0/24 via 10.0.0.1 mtu 1400\n    }\n    virtual_ipaddress {";
    let with_routes = |host: Host| {
        seed(&format!("ch4-{}.conf", host.name())).replace("    virtual_ipaddress {", routes)
    };
    let mut lb01 = lab.vrrpd(VRRPD, Host::Lb01, &with_routes(Host::Lb01));
    let lb02 = lab.vrrpd(VRRPD, Host::Lb02, &with_routes(Host::Lb02));
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)
            && !routes_to(&lab, Host::Lb01, "192.0.2.0/24").is_empty()),
        "{}",
        lb01.logs()
    );
    let unicast = (
        "unicast".to_owned(),
        "10.0.0.1".to_owned(),
        "keepalived".to_owned(),
    );
    assert_eq!(
        routes_to(&lab, Host::Lb01, "192.0.2.0/24"),
        [unicast.clone()]
    );
    assert_eq!(
        routes_to(&lab, Host::Lb01, "198.51.100.0/24"),
        [(
            "blackhole".to_owned(),
            String::new(),
            "keepalived".to_owned()
        )]
    );
    assert!(routes_to(&lab, Host::Lb02, "192.0.2.0/24").is_empty());
    assert!(routes_to(&lab, Host::Lb01, "203.0.113.0/24").is_empty());
    assert!(
        lb01.logs()
            .contains("vrrpd does not apply a route with 'mtu' yet"),
        "{}",
        lb01.logs()
    );
    lb01.signal("TERM");
    assert!(lb01.wait_exit(Duration::from_secs(10)).is_some());
    assert!(
        routes_to(&lab, Host::Lb01, "192.0.2.0/24").is_empty(),
        "left behind at stop"
    );
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb02, VIP)
            && routes_to(&lab, Host::Lb02, "192.0.2.0/24") == [unicast.clone()]),
        "{}",
        lb02.logs()
    );
}

/// `no_accept` (strict mode's default): as master, lb01 answers ARP for the VIP but drops
/// what is addressed to it (table inet vrrpd, the VIP in its set); a reload to `accept` on
/// the running master lets it through without a transition; the table goes at stop; with
/// `accept` from the start there is none.
#[test]
fn no_accept_drops_traffic_to_the_vip_and_accept_takes_it() {
    if !require_root("no_accept_drops_traffic_to_the_vip_and_accept_takes_it") {
        return;
    }
    let lab = Lab::seed();
    let ping = || {
        lab.try_exec(Host::Client, &["ping", "-c", "1", "-W", "1", VIP])
            .is_ok_and(|o| o.status.success())
    };
    let table = || {
        lab.try_exec(Host::Lb01, &["nft", "list", "table", "inet", "vrrpd"])
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let conf = |word: &str| {
        seed("ch4-lb01.conf").replace("    priority 150", &format!("    priority 150\n    {word}"))
    };
    let mut lb01 = lab.vrrpd(VRRPD, Host::Lb01, &conf("no_accept"));
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)
            && table().is_some_and(|t| t.contains(VIP))),
        "{:?}\n{}",
        table(),
        lb01.logs()
    );
    assert!(!ping(), "the VIP answered ping under no_accept");
    let arp = lab.exec(Host::Client, &["ip", "-j", "neigh", "show", VIP]);
    assert!(arp.contains("lladdr"), "no ARP answer for the VIP: {arp}");
    // A reload to `accept` on the running master: the VIP leaves the set, with no transition.
    let transitions = lb01.logs().matches("STATE").count();
    lab.write("vrrpd-lb01.conf", &conf("accept"));
    lb01.signal("HUP");
    assert!(
        wait_until(Duration::from_secs(5), ping),
        "the VIP does not answer after the reload to accept: {:?}\n{}",
        table(),
        lb01.logs()
    );
    assert!(!table().is_some_and(|t| t.contains(VIP)), "{:?}", table());
    assert_eq!(
        lb01.logs().matches("STATE").count(),
        transitions,
        "{}",
        lb01.logs()
    );
    assert!(lab.holds(Host::Lb01, VIP));
    lb01.signal("TERM");
    assert!(lb01.wait_exit(Duration::from_secs(10)).is_some());
    assert_eq!(table(), None, "table inet vrrpd left at stop");

    let lb01 = lab.vrrpd(VRRPD, Host::Lb01, &conf("accept"));
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)),
        "{}",
        lb01.logs()
    );
    assert!(
        wait_until(Duration::from_secs(5), ping),
        "the VIP does not answer under accept"
    );
    assert_eq!(table(), None, "accept alone makes no table");
}

/// `unicast_ttl 64`: lb01's unicast adverts reach lb02 with TTL 64 (one segment: no router
/// takes one off), as `vrrpd watch` on lb02 shows, and lb02 stays lb01's backup (a unicast
/// advert's TTL is not checked).
#[test]
fn unicast_ttl_is_the_ttl_on_the_wire() {
    if !require_root("unicast_ttl_is_the_ttl_on_the_wire") {
        return;
    }
    let lab = Lab::seed();
    let unicast = |host: Host, src: &str, peer: &str, extra: &str| {
        seed(&format!("ch4-{}.conf", host.name())).replace(
            "    interface eth0",
            &format!("    interface eth0\n    unicast_src_ip {src}\n    unicast_peer {{\n      {peer}\n    }}{extra}"),
        )
    };
    let lb01 = lab.vrrpd(
        VRRPD,
        Host::Lb01,
        &unicast(Host::Lb01, "10.0.0.5", "10.0.0.6", "\n    unicast_ttl 64"),
    );
    let lb02 = lab.vrrpd(
        VRRPD,
        Host::Lb02,
        &unicast(Host::Lb02, "10.0.0.6", "10.0.0.5", ""),
    );
    // lb01 (state MASTER) holds the VIP at once; lb02 must be up and listening too.
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)
            && lab
                .ask_json::<Status>(VRRPD, Host::Lb02, &["status"])
                .is_ok()),
        "{}\n{}",
        lb01.logs(),
        lb02.logs()
    );
    let out = std::process::Command::new(VRRPD)
        .args(["watch", "--adverts", "-c", "2", "-s"])
        .arg(lab.control_socket(Host::Lb02))
        .output()
        .expect("watch");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .filter(|l| l.contains("10.0.0.5 > 10.0.0.6"))
            .all(|l| l.contains(" ttl 64")),
        "{text}"
    );
    assert!(
        text.contains("10.0.0.5 > 10.0.0.6"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let st = status(&lab, Host::Lb02);
    assert_eq!(
        st.instances[0].state,
        vrrp::protocol::fsm::State::Backup,
        "{}",
        lb02.logs()
    );
}

/// `notify_master_rx_lower_pri`: lb02 (keepalived) behind a firewall that eats lb01's adverts
/// is a second master at priority 100; lb01 (vrrpd, 150) hears it, answers, and runs the
/// script, as keepalived does, throttled with its answers (not one fork per advert).
#[test]
fn notify_master_rx_lower_pri_runs_when_a_lower_master_is_heard() {
    if !require_root("notify_master_rx_lower_pri_runs_when_a_lower_master_is_heard") {
        return;
    }
    let lab = Lab::seed();
    let out = lab.dir().join("lower.log");
    let conf = seed("ch4-lb01.conf").replace(
        "    priority 150",
        &format!(
            "    priority 150\n    notify_master_rx_lower_pri \"/bin/sh -c 'echo lower >> {}'\"",
            out.display()
        ),
    );
    let lb01 = lab.vrrpd(VRRPD, Host::Lb01, &conf);
    assert!(wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)));
    assert!(!out.exists(), "no lower priority heard yet");
    lab.nft_drop_vrrp(Host::Lb02, "input");
    let _lb02 = lab.keepalived(Host::Lb02, &seed("ch4-lb02.conf"));
    let ran = wait_until(Duration::from_secs(15), || {
        std::fs::read_to_string(&out).is_ok_and(|t| t.lines().count() >= 2)
    });
    assert!(ran, "the script did not run\n{}", lb01.logs());
    let runs = std::fs::read_to_string(&out)
        .unwrap_or_default()
        .lines()
        .count();
    // keepalived's lb02 sends one advert a second, for at most 15 s here.
    assert!(runs <= 16, "{runs} runs: one per lower advert at most");
    assert!(lab.holds(Host::Lb01, VIP));
}

/// Rules with priority `pref` in `host`'s kernel, as (src, table, protocol) from `ip -j rule`.
fn rules_at(lab: &Lab, host: Host, pref: u32) -> Vec<(String, String, String)> {
    let out = lab.exec(host, &["ip", "-j", "rule", "show"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    v.as_array()
        .map(|rules| {
            rules
                .iter()
                .filter(|r| r["priority"].as_u64() == Some(u64::from(pref)))
                .map(|r| {
                    let s = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
                    (s("src"), s("table"), s("protocol"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `virtual_rules`: the master holds them (marked protocol keepalived), the backup does not;
/// a rule with an option vrrpd does not apply is left out with a warning; at stop they go, and
/// the new master adds them.
#[test]
fn virtual_rules_follow_mastership() {
    if !require_root("virtual_rules_follow_mastership") {
        return;
    }
    let lab = Lab::seed();
    let rules = "    virtual_rules {\n      from 192.0.2.0/24 table 100 priority 100\n      to 198.51.100.0/24 fwmark 0x10/0xff lookup main preference 101\n      from all uidrange 1-2 table 5 preference 102\n    }\n    virtual_ipaddress {";
    let with_rules = |host: Host| {
        seed(&format!("ch4-{}.conf", host.name())).replace("    virtual_ipaddress {", rules)
    };
    let mut lb01 = lab.vrrpd(VRRPD, Host::Lb01, &with_rules(Host::Lb01));
    let lb02 = lab.vrrpd(VRRPD, Host::Lb02, &with_rules(Host::Lb02));
    let ours = (
        "192.0.2.0".to_owned(),
        "100".to_owned(),
        "keepalived".to_owned(),
    );
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)
            && rules_at(&lab, Host::Lb01, 100) == [ours.clone()]),
        "{:?}\n{}",
        rules_at(&lab, Host::Lb01, 100),
        lb01.logs()
    );
    assert_eq!(
        rules_at(&lab, Host::Lb01, 101),
        [("all".to_owned(), "main".to_owned(), "keepalived".to_owned())],
        "{}",
        lb01.logs()
    );
    assert!(rules_at(&lab, Host::Lb02, 100).is_empty());
    assert!(rules_at(&lab, Host::Lb01, 102).is_empty());
    assert!(
        lb01.logs()
            .contains("vrrpd does not apply a rule with 'uidrange' yet"),
        "{}",
        lb01.logs()
    );
    lb01.signal("TERM");
    assert!(lb01.wait_exit(Duration::from_secs(10)).is_some());
    assert!(
        rules_at(&lab, Host::Lb01, 100).is_empty(),
        "left behind at stop"
    );
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb02, VIP)
            && rules_at(&lab, Host::Lb02, 100) == [ours.clone()]),
        "{}",
        lb02.logs()
    );
}

/// `unicast_fault_no_peer` with no peer: the instance stays in FAULT (no VIP, no adverts)
/// instead of falling back to multicast; a reload that gives it a peer brings it up.
#[test]
fn unicast_fault_no_peer_holds_fault_until_a_peer_is_given() {
    use vrrp::protocol::fsm::State;
    if !require_root("unicast_fault_no_peer_holds_fault_until_a_peer_is_given") {
        return;
    }
    let lab = Lab::seed();
    let base = seed("ch4-lb01.conf");
    let lonely = base.replace(
        "    priority 150",
        "    priority 150\n    unicast_src_ip 10.0.0.5\n    unicast_fault_no_peer",
    );
    let lb01 = lab.vrrpd(VRRPD, Host::Lb01, &lonely);
    let state = || {
        lab.ask_json::<Status>(VRRPD, Host::Lb01, &["status"])
            .ok()
            .and_then(|s| s.instances.first().map(|i| i.state))
    };
    assert!(
        wait_until(Duration::from_secs(10), || state() == Some(State::Fault)),
        "{:?}\n{}",
        state(),
        lb01.logs()
    );
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(state(), Some(State::Fault), "{}", lb01.logs());
    assert!(!lab.holds(Host::Lb01, VIP));
    assert!(
        lb01.logs()
            .contains("unicast_fault_no_peer and no unicast_peer"),
        "{}",
        lb01.logs()
    );
    let peered = lonely.replace(
        "    unicast_fault_no_peer",
        "    unicast_fault_no_peer\n    unicast_peer {\n      10.0.0.6\n    }",
    );
    lab.write("vrrpd-lb01.conf", &peered);
    lb01.signal("HUP");
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)),
        "{:?}\n{}",
        state(),
        lb01.logs()
    );
}
