//! Issue 17: the virtual MAC (RFC 5798 7.3; keepalived's `use_vmac`). Each box makes a
//! macvlan `vrrp.50` carrying 00:00:5e:00:01:32 on eth0; the master's VIP lives there and its
//! adverts and gratuitous ARPs leave from it, so the client's ARP entry for the VIP is the
//! virtual MAC and stays the same across a failover. With real keepalived in both roles.

use std::time::Duration;

use vrrp::{northbound::status::Status, protocol::fsm::State};
use vrrpd_lab::{Host, Lab, Proc, fixtures, require_root, wait_until};

const VRRPD: &str = env!("CARGO_BIN_EXE_vrrpd");
const VIP: &str = "10.0.0.3";
const VMAC: &str = "00:00:5e:00:01:32";

fn seed(name: &str) -> String {
    std::fs::read_to_string(fixtures().join("seed").join(name)).expect("seed fixture")
}

/// The seed's chapter-4 config of `host` with `use_vmac`.
fn vmac_conf(host: Host) -> String {
    seed(&format!("ch4-{}.conf", host.name()))
        .replace("    interface eth0", "    interface eth0\n    use_vmac")
}

/// The MAC address of `ifname` on `host`, None when there is no such interface.
fn mac_of(lab: &Lab, host: Host, ifname: &str) -> Option<String> {
    let out = lab
        .try_exec(host, &["ip", "-j", "link", "show", "dev", ifname])
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v.get(0)?.get("address")?.as_str().map(str::to_owned)
}

/// The client's ARP entry for the VIP, after a ping that makes it.
fn client_sees(lab: &Lab) -> Option<String> {
    let ok = lab
        .try_exec(Host::Client, &["ping", "-c", "1", "-W", "1", VIP])
        .is_ok_and(|o| o.status.success());
    if !ok {
        return None;
    }
    let out = lab
        .try_exec(Host::Client, &["ip", "-j", "neigh", "show", VIP])
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v.get(0)?.get("lladdr")?.as_str().map(str::to_owned)
}

fn status(lab: &Lab, host: Host) -> Status {
    lab.ask_json(VRRPD, host, &["status"])
        .unwrap_or_else(|e| panic!("{e}"))
}

fn holds_alone(lab: &Lab, holder: Host, other: Host) -> bool {
    lab.holds(holder, VIP) && !lab.holds(other, VIP)
}

/// Two vrrpds with use_vmac: vrrp.50 on both (up, the VMAC's address), the VIP on the
/// master's, the client's ARP entry the VMAC before and after a failover; the VMAC goes at
/// stop, and one left by kill -9 is made again at the next start.
#[test]
fn a_vrrpd_pair_with_use_vmac_keeps_the_client_s_arp_entry() {
    if !require_root("a_vrrpd_pair_with_use_vmac_keeps_the_client_s_arp_entry") {
        return;
    }
    let lab = Lab::seed();
    let mut lb01 = lab.vrrpd(VRRPD, Host::Lb01, &vmac_conf(Host::Lb01));
    let lb02 = lab.vrrpd(VRRPD, Host::Lb02, &vmac_conf(Host::Lb02));
    let logs = |a: &Proc, b: &Proc| format!("{}\n{}", a.logs(), b.logs());
    // lb01 (state MASTER) holds the VIP at once; lb02 must be up (its VMAC made) too.
    assert!(
        wait_until(Duration::from_secs(10), || holds_alone(
            &lab,
            Host::Lb01,
            Host::Lb02
        ) && lab
            .ask_json::<Status>(VRRPD, Host::Lb02, &["status"])
            .is_ok()),
        "{}",
        logs(&lb01, &lb02)
    );
    for host in [Host::Lb01, Host::Lb02] {
        assert_eq!(
            mac_of(&lab, host, "vrrp.50").as_deref(),
            Some(VMAC),
            "{}",
            host.name()
        );
    }
    assert!(
        lab.addresses(Host::Lb01, "vrrp.50")
            .iter()
            .any(|a| a == VIP)
    );
    assert!(!lab.addresses(Host::Lb01, "eth0").iter().any(|a| a == VIP));
    assert_eq!(
        client_sees(&lab).as_deref(),
        Some(VMAC),
        "{}",
        logs(&lb01, &lb02)
    );
    // lb01's adverts come from the VMAC that lb02 has too: the kernel hands them to lb02's
    // VMAC, not its eth0, and the diagnosis counts them there (no false "lost after XDP").
    std::thread::sleep(Duration::from_secs(6));
    let d: vrrp::northbound::status::Diagnosis = lab
        .ask_json(VRRPD, Host::Lb02, &["diagnose"])
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(d.findings.is_empty(), "{:?}", d.findings);

    lb01.signal("TERM");
    assert!(lb01.wait_exit(Duration::from_secs(10)).is_some());
    assert_eq!(
        mac_of(&lab, Host::Lb01, "vrrp.50"),
        None,
        "the VMAC outlived vrrpd"
    );
    assert!(
        wait_until(Duration::from_secs(10), || holds_alone(
            &lab,
            Host::Lb02,
            Host::Lb01
        )),
        "{}",
        lb02.logs()
    );
    assert_eq!(
        client_sees(&lab).as_deref(),
        Some(VMAC),
        "the client's ARP entry changed at the failover"
    );

    // kill -9 leaves the VMAC; the next start makes it again.
    let mut again = lab.vrrpd(VRRPD, Host::Lb01, &vmac_conf(Host::Lb01));
    assert!(
        wait_until(Duration::from_secs(10), || holds_alone(
            &lab,
            Host::Lb01,
            Host::Lb02
        )),
        "{}",
        logs(&again, &lb02)
    );
    again.kill();
    assert_eq!(mac_of(&lab, Host::Lb01, "vrrp.50").as_deref(), Some(VMAC));
    let third = lab.vrrpd(VRRPD, Host::Lb01, &vmac_conf(Host::Lb01));
    // The dead daemon's VIP is still on its VMAC until the new one replaces the VMAC: wait
    // for the new daemon itself to say it is master.
    assert!(
        wait_until(Duration::from_secs(10), || {
            third.logs().contains("left behind")
                && lab
                    .ask_json::<Status>(VRRPD, Host::Lb01, &["status"])
                    .is_ok_and(|s| s.instances[0].state == State::Master)
                && holds_alone(&lab, Host::Lb01, Host::Lb02)
        }),
        "{}",
        logs(&third, &lb02)
    );
    assert_eq!(client_sees(&lab).as_deref(), Some(VMAC));
}

/// keepalived with use_vmac as master and vrrpd as backup, then the other way round: one
/// holder, the client on the VMAC, and the failover to the other implementation.
#[test]
fn use_vmac_interoperates_with_keepalived_both_ways() {
    if !require_root("use_vmac_interoperates_with_keepalived_both_ways") {
        return;
    }
    // keepalived master (lb01), vrrpd backup (lb02). keepalived leaves the base's
    // arp_announce alone, so its box's own ARP requests (to answer the client) would teach
    // the client the base's MAC for the VIP: set it as its users do (vrrpd sets it itself).
    let lab = Lab::seed();
    lab.exec(
        Host::Lb01,
        &["sysctl", "-qw", "net.ipv4.conf.eth0.arp_announce=2"],
    );
    let ka = lab.keepalived(Host::Lb01, &vmac_conf(Host::Lb01));
    let lb02 = lab.vrrpd(VRRPD, Host::Lb02, &vmac_conf(Host::Lb02));
    assert!(
        wait_until(Duration::from_secs(10), || holds_alone(
            &lab,
            Host::Lb01,
            Host::Lb02
        )),
        "{}\n{}",
        ka.logs(),
        lb02.logs()
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(holds_alone(&lab, Host::Lb01, Host::Lb02), "{}", lb02.logs());
    let st = status(&lab, Host::Lb02);
    assert_eq!(st.instances[0].state, State::Backup);
    assert_eq!(
        st.instances[0]
            .master
            .as_ref()
            .map(|m| m.address.to_string())
            .as_deref(),
        Some("10.0.0.5")
    );
    assert_eq!(client_sees(&lab).as_deref(), Some(VMAC));
    ka.signal("TERM");
    assert!(
        wait_until(Duration::from_secs(10), || holds_alone(
            &lab,
            Host::Lb02,
            Host::Lb01
        )),
        "{}",
        lb02.logs()
    );
    assert_eq!(client_sees(&lab).as_deref(), Some(VMAC));
    drop((ka, lb02));
    // One lab at a time: a test holding two would wait on itself behind a `seed_alone`.
    drop(lab);

    // vrrpd master (lb01), keepalived backup (lb02).
    let lab = Lab::seed();
    lab.exec(
        Host::Lb02,
        &["sysctl", "-qw", "net.ipv4.conf.eth0.arp_announce=2"],
    );
    let lb01 = lab.vrrpd(VRRPD, Host::Lb01, &vmac_conf(Host::Lb01));
    let ka = lab.keepalived(Host::Lb02, &vmac_conf(Host::Lb02));
    assert!(
        wait_until(Duration::from_secs(10), || holds_alone(
            &lab,
            Host::Lb01,
            Host::Lb02
        )),
        "{}\n{}",
        lb01.logs(),
        ka.logs()
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(holds_alone(&lab, Host::Lb01, Host::Lb02), "{}", ka.logs());
    assert_eq!(client_sees(&lab).as_deref(), Some(VMAC));
    lb01.signal("TERM");
    assert!(
        wait_until(Duration::from_secs(10), || holds_alone(
            &lab,
            Host::Lb02,
            Host::Lb01
        )),
        "{}",
        ka.logs()
    );
    assert_eq!(client_sees(&lab).as_deref(), Some(VMAC));
}
