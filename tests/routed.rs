//! Unicast as deployed: a pair whose peers are a router apart (keepalived's `unicast_peer`
//! across subnets). The seed's back network is split in two, with the lab's switch routing
//! between them: lb01 on 10.1.0.0/24, lb02 on 10.2.0.0/24. Every advert then arrives with TTL
//! 254, which RFC 5798 7.1 forbids on the multicast group and keepalived accepts from a unicast
//! peer; so does vrrpd. One master, failover both ways, and a quiet diagnosis.

use std::time::{Duration, Instant};

use vrrp::{
    northbound::{
        diagnose::FindingKind,
        status::{Diagnosis, Status},
    },
    protocol::{drop::DropReason, fsm::State},
};
use vrrpd_lab::{Host, Lab, require_root, wait_until};

const VRRPD: &str = env!("CARGO_BIN_EXE_vrrpd");
const VIP: &str = "10.9.0.1";

fn config(src: &str, peer: &str, priority: u8) -> String {
    format!(
        "vrrp_instance VI_R {{
    state BACKUP
    interface eth1
    virtual_router_id 60
    priority {priority}
    advert_int 1
    unicast_src_ip {src}
    unicast_peer {{
        {peer}
    }}
    virtual_ipaddress {{
        {VIP}/32
    }}
}}
"
    )
}

/// lb01 and lb02's back interfaces on two subnets, the switch namespace routing between them.
fn route(lab: &Lab) {
    let sw = lab.switch_ns();
    let run = |ns: &str, args: &[&str]| {
        lab.exec_ns(ns, args);
    };
    run(&sw, &["ip", "link", "add", "br2", "type", "bridge"]);
    run(
        &sw,
        &[
            "ip",
            "link",
            "set",
            "br2",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ],
    );
    run(&sw, &["ip", "link", "set", "br2", "up"]);
    run(&sw, &["ip", "link", "set", "lb02-1", "master", "br2"]);
    run(&sw, &["ip", "addr", "add", "10.1.0.1/24", "dev", "br1"]);
    run(&sw, &["ip", "addr", "add", "10.2.0.1/24", "dev", "br2"]);
    run(&sw, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    let lb01 = lab.ns(Host::Lb01);
    let lb02 = lab.ns(Host::Lb02);
    run(&lb01, &["ip", "addr", "add", "10.1.0.2/24", "dev", "eth1"]);
    run(&lb02, &["ip", "addr", "add", "10.2.0.2/24", "dev", "eth1"]);
    run(
        &lb01,
        &["ip", "route", "add", "10.2.0.0/24", "via", "10.1.0.1"],
    );
    run(
        &lb02,
        &["ip", "route", "add", "10.1.0.0/24", "via", "10.2.0.1"],
    );
    // The path works, and it crosses a router: a ping's reply comes back with TTL 63.
    let ping = lab.exec_ns(&lb01, &["ping", "-c", "1", "-W", "2", "10.2.0.2"]);
    assert!(ping.contains("ttl=63"), "{ping}");
}

fn status(lab: &Lab, host: Host) -> Status {
    lab.ask_json(VRRPD, host, &["status"])
        .unwrap_or_else(|e| panic!("{e}"))
}

fn diagnosis(lab: &Lab, host: Host) -> Diagnosis {
    lab.ask_json(VRRPD, host, &["diagnose"])
        .unwrap_or_else(|e| panic!("{e}"))
}

/// For `for_`, the VIP stays on `holder` alone.
fn one_holder(lab: &Lab, holder: Host, other: Host, for_: Duration) {
    let end = Instant::now() + for_;
    while Instant::now() < end {
        assert!(
            lab.holds(holder, VIP) && !lab.holds(other, VIP),
            "{} should hold {VIP} alone",
            holder.name()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_unicast_pair_a_router_apart_holds_one_master() {
    if !require_root("a_unicast_pair_a_router_apart_holds_one_master") {
        return;
    }
    let lab = Lab::seed();
    route(&lab);
    let mut lb01 = lab.vrrpd(VRRPD, Host::Lb01, &config("10.1.0.2", "10.2.0.2", 150));
    let lb02 = lab.vrrpd(VRRPD, Host::Lb02, &config("10.2.0.2", "10.1.0.2", 100));
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)),
        "{}",
        lb01.logs()
    );
    // Past lb02's Master_Down_Interval (3.6 s) several times over: it hears lb01.
    one_holder(&lab, Host::Lb01, Host::Lb02, Duration::from_secs(8));
    let st = status(&lab, Host::Lb02);
    let i = &st.instances[0];
    assert_eq!(i.state, State::Backup, "{}", lb02.logs());
    assert_eq!(
        i.counters.dropped.get(DropReason::BadTtl),
        0,
        "{:?}",
        i.counters
    );
    assert!(i.counters.adverts_received >= 5, "{:?}", i.counters);
    let d = diagnosis(&lab, Host::Lb02);
    assert!(
        !d.findings.iter().any(|f| f.kind == FindingKind::BadTtl),
        "{:?}",
        d.findings
    );

    // Failover to lb02 when lb01 stops, and back when it returns (it preempts).
    lb01.signal("TERM");
    assert!(lb01.wait_exit(Duration::from_secs(10)).is_some());
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb02, VIP)
            && !lab.holds(Host::Lb01, VIP)),
        "{}",
        lb02.logs()
    );
    let lb01 = lab.vrrpd(VRRPD, Host::Lb01, &config("10.1.0.2", "10.2.0.2", 150));
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)
            && !lab.holds(Host::Lb02, VIP)),
        "{}\n{}",
        lb01.logs(),
        lb02.logs()
    );
    one_holder(&lab, Host::Lb01, Host::Lb02, Duration::from_secs(5));
}
