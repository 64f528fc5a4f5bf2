//! Issue 7: lost adverts diagnosed in the seed's lab, with vrrpd on both load balancers and
//! with keepalived as the peer. For each fault: where the wire allows one master there is
//! one; `vrrpd diagnose` names the cause and prints a fix; the fix, applied, clears the
//! finding. The time from fault to finding is printed (`-- --nocapture`).

use std::time::{Duration, Instant};

use vrrp::northbound::{diagnose::FindingKind, ruleset::Firewall, status::Diagnosis};
use vrrpd_lab::{Host, Lab, Proc, fixtures, require_root, wait_until};

const VRRPD: &str = env!("CARGO_BIN_EXE_vrrpd");
const VIP: &str = "10.0.0.3";

fn seed(name: &str) -> String {
    std::fs::read_to_string(fixtures().join("seed").join(name)).expect("seed fixture")
}

/// The daemon's diagnosis, as its type (`vrrpd diagnose --json`).
fn diagnosis(lab: &Lab, host: Host) -> Option<Diagnosis> {
    lab.ask_json(VRRPD, host, &["diagnose"]).ok()
}

/// `vrrpd diagnose` as an operator reads it: each finding's sentence and its fixes.
fn diagnose(lab: &Lab, host: Host) -> String {
    diagnosis(lab, host).map_or_else(String::new, |d| {
        d.findings
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    })
}

/// Waits for a finding of `kind` whose sentence contains `text`; returns every finding's text
/// (with the fixes) and the time it took.
fn finding(
    lab: &Lab,
    host: Host,
    kind: FindingKind,
    text: &str,
    daemon: &Proc,
) -> (String, Duration) {
    let start = Instant::now();
    let mut last = String::new();
    let found = wait_until(Duration::from_secs(25), || {
        let Some(d) = diagnosis(lab, host) else {
            return false;
        };
        last = d
            .findings
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        d.findings
            .iter()
            .any(|f| f.kind == kind && f.message.contains(text))
    });
    assert!(
        found,
        "no finding {kind} {text:?} on {}:\n{last}\n{}",
        host.name(),
        daemon.logs()
    );
    (last, start.elapsed())
}

/// The fix line of a diagnosis that starts with `prefix`, run as it is printed.
fn apply_fix(lab: &Lab, host: Host, diagnosis: &str, prefix: &str) {
    let line = diagnosis
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no fix {prefix:?} in:\n{diagnosis}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    lab.exec(host, &words);
}

fn cleared(lab: &Lab, host: Host, daemon: &Proc) {
    let ok = wait_until(Duration::from_secs(25), || {
        diagnosis(lab, host).is_some_and(|d| d.findings.is_empty())
    });
    assert!(ok, "{}\n{}", diagnose(lab, host), daemon.logs());
}

/// iptables (iptables-nft) drops VRRP on lb02's input; the master is real keepalived.
#[test]
fn iptables_input_drop_with_keepalived_as_master() {
    if !require_root("iptables_input_drop_with_keepalived_as_master") {
        return;
    }
    let lab = Lab::seed();
    let _k = lab.keepalived(Host::Lb01, &seed("ch4-lb01.conf"));
    let lb02 = lab.vrrpd(VRRPD, Host::Lb02, &seed("ch4-lb02.conf"));
    assert!(wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)));
    lab.exec(
        Host::Lb02,
        &["iptables", "-A", "INPUT", "-p", "vrrp", "-j", "DROP"],
    );
    let (text, took) = finding(
        &lab,
        Host::Lb02,
        FindingKind::LostAfterXdp,
        "eth0: adverts from 10.0.0.5 (VRID 50) reach the wire but netfilter drops them (NETFILTER_DROP, input; rule ",
        &lb02,
    );
    eprintln!("iptables input drop -> finding: {took:?}");
    assert!(text.contains(" in ip filter INPUT)"), "{text}");
    assert!(
        lab.holds(Host::Lb01, VIP) && !lab.holds(Host::Lb02, VIP),
        "one master behind the firewall\n{}",
        lb02.logs()
    );
    assert!(
        lb02.stderr().contains("finding: ")
            || wait_until(Duration::from_secs(10), || lb02
                .stderr()
                .contains("finding: ")),
        "{}",
        lb02.logs()
    );
    apply_fix(&lab, Host::Lb02, &text, "iptables -I INPUT");
    cleared(&lab, Host::Lb02, &lb02);
    assert!(
        wait_until(Duration::from_secs(10), || lb02
            .stderr()
            .contains("cleared: lost_after_xdp on eth0")),
        "{}",
        lb02.logs()
    );
}

/// nftables drops VRRP on lb02's input, vrrpd on both: lb02 stays backup (its elections follow
/// the wire), names the rule with the kernel's reason, and the printed nft fix clears it.
#[test]
fn nftables_input_drop_between_two_vrrpds() {
    if !require_root("nftables_input_drop_between_two_vrrpds") {
        return;
    }
    let lab = Lab::seed();
    let _lb01 = lab.vrrpd(VRRPD, Host::Lb01, &seed("ch4-lb01.conf"));
    let lb02 = lab.vrrpd(VRRPD, Host::Lb02, &seed("ch4-lb02.conf"));
    assert!(wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)));
    lab.nft_drop_vrrp(Host::Lb02, "input");
    let (text, took) = finding(
        &lab,
        Host::Lb02,
        FindingKind::LostAfterXdp,
        "eth0: adverts from 10.0.0.5 (VRID 50) reach the wire but netfilter drops them (NETFILTER_DROP, input; rule ",
        &lb02,
    );
    eprintln!("nftables input drop -> finding: {took:?}");
    assert!(text.contains(" in inet lab input)"), "{text}");
    assert!(
        lab.holds(Host::Lb01, VIP) && !lab.holds(Host::Lb02, VIP),
        "one master behind the firewall\n{}",
        lb02.logs()
    );
    apply_fix(&lab, Host::Lb02, &text, "nft insert rule inet lab input");
    cleared(&lab, Host::Lb02, &lb02);
}

/// firewalld as deployed (the seed's chapter 5): its nftables backend, started for real in
/// lb02's namespace, rejects VRRP at the default zone's catch-all, a rule that does not name
/// VRRP. The finding names the table, chain, zone and verdict; firewalld's own fix, printed
/// and applied as printed, clears it.
#[test]
fn firewalld_zone_rejects_vrrp_and_its_own_fix_clears_it() {
    if !require_root("firewalld_zone_rejects_vrrp_and_its_own_fix_clears_it") {
        return;
    }
    let lab = Lab::seed();
    let _lb01 = lab.vrrpd(VRRPD, Host::Lb01, &seed("ch4-lb01.conf"));
    let lb02 = lab.vrrpd(VRRPD, Host::Lb02, &seed("ch4-lb02.conf"));
    assert!(wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)));
    let fw = lab.firewalld(Host::Lb02);
    let (text, took) = finding(
        &lab,
        Host::Lb02,
        FindingKind::LostAfterXdp,
        "eth0: adverts from 10.0.0.5 (VRID 50) reach the wire but netfilter drops them (NETFILTER_DROP, input; rule ",
        &lb02,
    );
    eprintln!("firewalld zone reject -> finding: {took:?}\n{text}");
    let d = diagnosis(&lab, Host::Lb02).expect("diagnosis");
    let rule = d
        .findings
        .iter()
        .find_map(|f| {
            f.rule
                .clone()
                .filter(|_| f.kind == FindingKind::LostAfterXdp)
        })
        .unwrap_or_else(|| panic!("no rule in the finding:\n{text}"));
    assert_eq!(
        (
            rule.family.as_str(),
            rule.table.as_str(),
            rule.chain.as_str()
        ),
        ("inet", "firewalld", "filter_IN_public"),
        "{text}"
    );
    assert_eq!(rule.verdict, "reject with icmpx admin-prohibited");
    assert_eq!(
        rule.firewall,
        Firewall::Firewalld {
            zone: Some("public".into())
        }
    );
    assert!(
        !text.contains("nft insert rule inet filter") && !text.contains("--direct --add-rule"),
        "only firewalld's own fix: {text}"
    );
    assert!(
        lab.holds(Host::Lb01, VIP) && !lab.holds(Host::Lb02, VIP),
        "one master behind firewalld\n{}",
        lb02.logs()
    );
    let fixes: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("firewall-cmd "))
        .collect();
    assert_eq!(
        fixes,
        [
            "firewall-cmd --permanent --zone=public --add-protocol=vrrp",
            "firewall-cmd --reload"
        ],
        "{text}"
    );
    for line in fixes {
        let words: Vec<&str> = line.split_whitespace().skip(1).collect();
        fw.cmd(&words);
    }
    cleared(&lab, Host::Lb02, &lb02);
}

/// ufw (Debian's defaults, on iptables-nft) drops VRRP on lb02 by its default deny; the
/// finding names ufw and prints a ufw rule, which clears it.
#[test]
fn ufw_default_deny_and_its_own_fix() {
    if !require_root("ufw_default_deny_and_its_own_fix") {
        return;
    }
    let lab = Lab::seed();
    let _lb01 = lab.vrrpd(VRRPD, Host::Lb01, &seed("ch4-lb01.conf"));
    let lb02 = lab.vrrpd(VRRPD, Host::Lb02, &seed("ch4-lb02.conf"));
    assert!(wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)));
    let ufw = lab.ufw(Host::Lb02);
    let (text, _) = finding(
        &lab,
        Host::Lb02,
        FindingKind::LostAfterXdp,
        "eth0: adverts from 10.0.0.5 (VRID 50) reach the wire but netfilter drops them (NETFILTER_DROP, input; probably ",
        &lb02,
    );
    assert!(text.contains(", ufw)"), "{text}");
    let fix = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("ufw "))
        .unwrap_or_else(|| panic!("no ufw fix in:\n{text}"));
    assert_eq!(fix, "ufw allow in on eth0 to 224.0.0.18 proto vrrp");
    let words: Vec<&str> = fix.split_whitespace().skip(1).collect();
    ufw.cmd(&words);
    cleared(&lab, Host::Lb02, &lb02);
}

/// One router, two virtual routers on one interface: the accounting is per (interface, source,
/// VRID), so an input drop is reported once for each VRID, with its own counts.
#[test]
fn two_vrids_from_one_router_are_accounted_apart() {
    if !require_root("two_vrids_from_one_router_are_accounted_apart") {
        return;
    }
    let second = |conf: String, state: &str, prio: u32| {
        format!(
            "{conf}\nvrrp_instance VI_2 {{\n  state {state}\n  interface eth0\n  virtual_router_id 52\n  priority {prio}\n  advert_int 1\n  authentication {{\n    auth_type PASS\n    auth_pass 1111\n  }}\n  virtual_ipaddress {{\n    10.0.0.4\n  }}\n}}\n"
        )
    };
    let lab = Lab::seed();
    let _k = lab.keepalived(Host::Lb01, &second(seed("ch4-lb01.conf"), "MASTER", 150));
    let lb02 = lab.vrrpd(
        VRRPD,
        Host::Lb02,
        &second(seed("ch4-lb02.conf"), "BACKUP", 100),
    );
    assert!(wait_until(Duration::from_secs(10), || lab
        .holds(Host::Lb01, VIP)
        && lab.holds(Host::Lb01, "10.0.0.4")));
    lab.nft_drop_vrrp(Host::Lb02, "input");
    let (text, _) = finding(
        &lab,
        Host::Lb02,
        FindingKind::LostAfterXdp,
        "eth0: adverts from 10.0.0.5 (VRID 52) reach the wire but netfilter drops them",
        &lb02,
    );
    assert!(
        text.contains(
            "eth0: adverts from 10.0.0.5 (VRID 50) reach the wire but netfilter drops them"
        ),
        "{text}"
    );
    assert!(
        !lab.holds(Host::Lb02, VIP) && !lab.holds(Host::Lb02, "10.0.0.4"),
        "{}",
        lb02.logs()
    );
}

/// nftables on lb01 drops our own adverts on output: lb02 no longer hears the master and
/// takes over (the wire carries nothing: two masters are unavoidable); lb01 names the rule.
#[test]
fn own_adverts_dropped_on_output() {
    if !require_root("own_adverts_dropped_on_output") {
        return;
    }
    let lab = Lab::seed();
    let lb01 = lab.vrrpd(VRRPD, Host::Lb01, &seed("ch4-lb01.conf"));
    let lb02 = lab.vrrpd(VRRPD, Host::Lb02, &seed("ch4-lb02.conf"));
    assert!(wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)));
    lab.nft_drop_vrrp(Host::Lb01, "output");
    let (text, took) = finding(
        &lab,
        Host::Lb01,
        FindingKind::DroppedOnOutput,
        "eth0: our own adverts (VI_1, VRID 50) are dropped on output by netfilter (NETFILTER_DROP, output; rule ",
        &lb01,
    );
    eprintln!("output drop -> finding: {took:?}");
    assert!(text.contains(" in inet lab output)"), "{text}");
    apply_fix(&lab, Host::Lb01, &text, "nft insert rule inet lab output");
    cleared(&lab, Host::Lb01, &lb01);
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)
            && !lab.holds(Host::Lb02, VIP)),
        "one master again\n{}",
        lb02.logs()
    );
}

/// The switch drops VRRP from lb01's port: lb02 becomes a second master (nothing on its wire
/// says otherwise); lb02 says lb01 went silent yet answers ping, lb01 sees two masters.
#[test]
fn adverts_lost_on_the_network() {
    if !require_root("adverts_lost_on_the_network") {
        return;
    }
    let lab = Lab::seed();
    let lb01 = lab.vrrpd(VRRPD, Host::Lb01, &seed("ch4-lb01.conf"));
    let lb02 = lab.vrrpd(VRRPD, Host::Lb02, &seed("ch4-lb02.conf"));
    assert!(wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)));
    std::thread::sleep(Duration::from_secs(2));
    lab.switch_drops_vrrp_from(Host::Lb01);
    let (_, took) = finding(
        &lab,
        Host::Lb02,
        FindingKind::LostOnNetwork,
        "eth0: adverts from 10.0.0.5 (VRID 50) stopped ",
        &lb02,
    );
    eprintln!("bridge drop -> finding on lb02: {took:?}");
    let text = diagnose(&lab, Host::Lb02);
    assert!(
        text.contains(
            "yet 10.0.0.5 answers ping: it is up, and the network between loses its adverts"
        ),
        "{text}"
    );
    // lb01 hears lb02's adverts while its own are lost: it raises "two masters" (logged once;
    // in this lab one of lb01's adverts sometimes gets past the bridge rule after a few
    // seconds and ends it, so the log, not the current diagnosis, is checked).
    let raised = wait_until(Duration::from_secs(15), || {
        lb01.stderr().contains("finding: vm eth0: two masters for VRID 50") || lb01.stderr().contains("eth0: two masters for VRID 50: VI_1 (10.0.0.5, priority 150) and 10.0.0.6 (priority 100)")
    });
    assert!(raised, "{}", lb01.logs());
    lab.heal_switch();
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)
            && !lab.holds(Host::Lb02, VIP)),
        "one master again"
    );
    cleared(&lab, Host::Lb02, &lb02);
    cleared(&lab, Host::Lb01, &lb01);
}

/// keepalived with advert_int 2 against vrrpd with 1 (VRRPv2 requires the same): named.
#[test]
fn advert_int_mismatch_with_keepalived() {
    if !require_root("advert_int_mismatch_with_keepalived") {
        return;
    }
    let lab = Lab::seed();
    let _k = lab.keepalived(
        Host::Lb01,
        &seed("ch4-lb01.conf").replace("advert_int 1", "advert_int 2"),
    );
    let lb02 = lab.vrrpd(VRRPD, Host::Lb02, &seed("ch4-lb02.conf"));
    let (_, took) = finding(
        &lab,
        Host::Lb02,
        FindingKind::IntervalMismatch,
        "eth0: adverts from 10.0.0.5 (VRID 50) say advert_int 2 s where ours is 1 s (VRRPv2 requires the same)",
        &lb02,
    );
    eprintln!("advert_int mismatch -> finding: {took:?}");
}

/// `--elections socket` (keepalived's behaviour, for those who want it): elections count only
/// what netfilter lets through. lb02 stays backup while it hears lb01 through its socket, and
/// becomes a second master behind an input drop; `diagnose` still names the rule.
#[test]
fn elections_from_the_socket_behave_like_keepalived() {
    if !require_root("elections_from_the_socket_behave_like_keepalived") {
        return;
    }
    let lab = Lab::seed();
    let lb01 = lab.vrrpd(VRRPD, Host::Lb01, &seed("ch4-lb01.conf"));
    let lb02 = lab.vrrpd_with(
        VRRPD,
        Host::Lb02,
        &seed("ch4-lb02.conf"),
        &["--elections", "socket"],
    );
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)),
        "{}",
        lb01.logs()
    );
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        !lab.holds(Host::Lb02, VIP),
        "lb02 must hear lb01 through its socket\n{}",
        lb02.logs()
    );
    lab.nft_drop_vrrp(Host::Lb02, "input");
    assert!(
        wait_until(Duration::from_secs(8), || lab.holds(Host::Lb02, VIP)),
        "keepalived's behaviour: a second master\n{}",
        lb02.logs()
    );
    let (_, _) = finding(
        &lab,
        Host::Lb02,
        FindingKind::LostAfterXdp,
        "reach the wire but netfilter drops them (NETFILTER_DROP, input; rule ",
        &lb02,
    );
}

/// keepalived with another auth_pass than vrrpd's: named, and the one master (keepalived,
/// priority 150) keeps the VIP; vrrpd ignores the adverts it cannot authenticate and, being a
/// backup that hears nobody valid, becomes a second master: the wire allows no better.
#[test]
fn auth_mismatch_with_keepalived() {
    if !require_root("auth_mismatch_with_keepalived") {
        return;
    }
    let lab = Lab::seed();
    let _k = lab.keepalived(
        Host::Lb01,
        &seed("ch4-lb01.conf").replace("auth_pass 1111", "auth_pass 2222"),
    );
    let lb02 = lab.vrrpd(VRRPD, Host::Lb02, &seed("ch4-lb02.conf"));
    let (text, took) = finding(
        &lab,
        Host::Lb02,
        FindingKind::AuthMismatch,
        "eth0: adverts from 10.0.0.5 (VRID 50) carry a different authentication (auth_type / auth_pass)",
        &lb02,
    );
    eprintln!("auth mismatch -> finding: {took:?}");
    assert!(text.contains("set the same authentication"), "{text}");
}

/// Strict reverse-path filtering on lb02 with the route back to lb01 through eth1: the kernel
/// drops lb01's adverts as IP_RPFILTER. The finding says so and its sysctl fix clears it; lb02
/// stays backup throughout, because its elections follow the wire.
#[test]
fn rp_filter_drop_is_named_by_the_kernel_reason() {
    if !require_root("rp_filter_drop_is_named_by_the_kernel_reason") {
        return;
    }
    let lab = Lab::seed();
    let _lb01 = lab.vrrpd(VRRPD, Host::Lb01, &seed("ch4-lb01.conf"));
    let lb02 = lab.vrrpd(VRRPD, Host::Lb02, &seed("ch4-lb02.conf"));
    assert!(wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)));
    lab.exec(
        Host::Lb02,
        &[
            "ip",
            "route",
            "add",
            "10.0.0.5/32",
            "via",
            "172.16.1.7",
            "dev",
            "eth1",
        ],
    );
    lab.exec(
        Host::Lb02,
        &["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=1"],
    );
    lab.exec(
        Host::Lb02,
        &["sysctl", "-qw", "net.ipv4.conf.eth0.rp_filter=1"],
    );
    let (text, took) = finding(
        &lab,
        Host::Lb02,
        FindingKind::LostAfterXdp,
        "eth0: adverts from 10.0.0.5 (VRID 50) reach the wire but reverse-path filtering drops them (IP_RPFILTER)",
        &lb02,
    );
    eprintln!("rp_filter drop -> finding: {took:?}");
    assert!(
        lab.holds(Host::Lb01, VIP) && !lab.holds(Host::Lb02, VIP),
        "one master behind rp_filter\n{}",
        lb02.logs()
    );
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("sysctl -w"))
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        lab.exec(Host::Lb02, &words);
    }
    cleared(&lab, Host::Lb02, &lb02);
}
