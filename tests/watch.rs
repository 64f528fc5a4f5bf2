//! Issue 2: `vrrpd watch` sees VRRP adverts at XDP, in the seed's lab, with real keepalived as
//! the sender; before netfilter; and prints nothing for non-VRRP traffic.

use std::time::Duration;

use serde_json::Value;
use vrrpd_lab::{Host, Lab, fixtures, require_root, wait_until};

const VRRPD: &str = env!("CARGO_BIN_EXE_vrrpd");

fn seed(name: &str) -> String {
    std::fs::read_to_string(fixtures().join("seed").join(name)).expect("seed fixture")
}

fn json_lines(out: &str) -> Vec<Value> {
    out.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn from(lines: &[Value], src: &str) -> Vec<Value> {
    lines.iter().filter(|l| l["src"] == src).cloned().collect()
}

/// The seed's chapter 4: keepalived on lb01 (MASTER, 150) and lb02 (BACKUP, 100).
fn chapter4(lab: &Lab) -> (vrrpd_lab::Proc, vrrpd_lab::Proc) {
    let lb01 = lab.keepalived(Host::Lb01, &seed("ch4-lb01.conf"));
    let lb02 = lab.keepalived(Host::Lb02, &seed("ch4-lb02.conf"));
    (lb01, lb02)
}

#[test]
fn watch_sees_keepalived_adverts_with_their_fields() {
    if !require_root("watch_sees_keepalived_adverts_with_their_fields") {
        return;
    }
    let lab = Lab::seed();
    let (mut k1, mut k2) = chapter4(&lab);
    // Started through `ip netns exec`, which hides the host's /sys mounts.
    let watch = lab.spawn(
        Host::Lb02,
        "watch",
        &[VRRPD, "watch", "-i", "eth0", "--json"],
    );
    let got = wait_until(Duration::from_secs(15), || {
        from(&json_lines(&watch.stdout()), "10.0.0.5").len() >= 4
    });
    assert!(
        got,
        "no 4 adverts from lb01 within 15 s\n{}\n{}\n{}",
        watch.logs(),
        k1.logs(),
        k2.logs()
    );
    assert!(
        k1.running() && k2.running(),
        "keepalived died:\n{}\n{}",
        k1.logs(),
        k2.logs()
    );

    let lines = from(&json_lines(&watch.stdout()), "10.0.0.5");
    for l in &lines {
        assert_eq!(l["status"], "ok", "{l}");
        assert_eq!(l["ifname"], "eth0");
        assert_eq!(l["dst"], "224.0.0.18");
        assert_eq!(l["version"], 2);
        assert_eq!(l["vrid"], 50);
        assert_eq!(l["priority"], 150);
        assert_eq!(l["interval"], 1.0);
        assert_eq!(l["auth"], "pass");
        assert_eq!(l["count"], 1);
        assert_eq!(l["addresses"], serde_json::json!(["10.0.0.3"]));
        assert_eq!(l["ttl"], 255);
    }
    // The master's cadence is advert_int (RFC 3768 6.4.3); allow for scheduling, not for a
    // missing advert, which would show as ~2 s.
    let gaps: Vec<f64> = lines
        .iter()
        .filter_map(|l| l["since_last"].as_f64())
        .collect();
    assert!(gaps.len() >= 3, "{lines:?}");
    for g in &gaps {
        assert!(
            (0.5..1.5).contains(g),
            "interval since last advert {g} s, expected ~1 s: {gaps:?}"
        );
    }
    // Kernel stamps are monotonic per source.
    let times: Vec<f64> = lines.iter().filter_map(|l| l["time"].as_f64()).collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
}

#[test]
fn watch_sees_adverts_that_nftables_drops() {
    if !require_root("watch_sees_adverts_that_nftables_drops") {
        return;
    }
    let lab = Lab::seed();
    let (_k1, mut k2) = chapter4(&lab);
    // The seed's chapter 5, with nftables instead of firewalld: lb02 drops VRRP on input.
    lab.nft_drop_vrrp(Host::Lb02, "input");

    let watch = lab.spawn(
        Host::Lb02,
        "watch",
        &[VRRPD, "watch", "-i", "eth0", "--json"],
    );
    let got = wait_until(Duration::from_secs(15), || {
        from(&json_lines(&watch.stdout()), "10.0.0.5").len() >= 3
    });
    assert!(
        got,
        "XDP did not see lb01's adverts behind the firewall\n{}",
        watch.logs()
    );

    // The firewall really ate them: its rule counted packets...
    let ruleset = lab.exec(Host::Lb02, &["nft", "-j", "list", "ruleset"]);
    let v: Value = serde_json::from_str(&ruleset).expect("nft -j");
    let dropped = v["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["rule"]["expr"].as_array())
        .flatten()
        .filter_map(|e| e["counter"]["packets"].as_u64())
        .sum::<u64>();
    assert!(
        dropped >= 3,
        "the nft rule dropped {dropped} packets:\n{ruleset}"
    );
    // ...and keepalived on lb02, behind it, became a second master (the seed's split brain).
    let split = wait_until(Duration::from_secs(10), || {
        lab.holds(Host::Lb02, "10.0.0.3")
    });
    assert!(
        split,
        "keepalived on lb02 should have taken the VIP behind its firewall\n{}",
        k2.logs()
    );
    assert!(k2.running());
}

#[test]
fn watch_prints_nothing_for_non_vrrp_traffic() {
    if !require_root("watch_prints_nothing_for_non_vrrp_traffic") {
        return;
    }
    let lab = Lab::seed();
    let mut watch = lab.spawn(
        Host::Lb02,
        "watch",
        &[VRRPD, "watch", "-i", "eth0", "--json"],
    );
    assert!(
        wait_until(Duration::from_secs(10), || watch
            .stderr()
            .contains("listening on")),
        "{}",
        watch.logs()
    );
    lab.exec(
        Host::Client,
        &["ping", "-f", "-c", "2000", "-q", "10.0.0.6"],
    );
    watch.signal("INT");
    assert!(
        watch
            .wait_exit(Duration::from_secs(10))
            .is_some_and(|s| s.success()),
        "{}",
        watch.logs()
    );
    assert!(
        watch.stdout().trim().is_empty(),
        "lines for non-VRRP traffic:\n{}",
        watch.stdout()
    );
    let counters = watch.stderr();
    let not_vrrp: u64 = counters
        .split_whitespace()
        .find_map(|w| w.strip_prefix("not_vrrp="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        not_vrrp >= 2000,
        "XDP counted {not_vrrp} non-VRRP frames for 2000 pings:\n{counters}"
    );
}

#[test]
fn watch_without_privileges_names_the_missing_capability() {
    // Runs unprivileged too: without root every capability is missing anyway.
    let out = std::process::Command::new("setpriv")
        .args([
            "--bounding-set=-bpf,-perfmon,-sys_admin",
            "--inh-caps=-all",
            "--",
            VRRPD,
            "watch",
            "-i",
            "lo",
        ])
        .output()
        .expect("setpriv (util-linux)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("missing capabilit")
            && stderr.contains("CAP_BPF")
            && stderr.contains("CAP_PERFMON"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    assert_eq!(
        stderr.lines().filter(|l| l.contains("error")).count(),
        1,
        "one clear error:\n{stderr}"
    );
}

/// `vrrpd capture`: what XDP saw, as pcap with wall-clock stamps; tshark decodes it as VRRP.
#[test]
fn capture_writes_pcap_that_tshark_decodes() {
    if !require_root("capture_writes_pcap_that_tshark_decodes") {
        return;
    }
    let lab = Lab::seed();
    let (_k1, _k2) = chapter4(&lab);
    let file = lab.dir().join("adverts.pcap").display().to_string();
    let mut cap = lab.spawn(
        Host::Lb02,
        "capture",
        &[
            VRRPD, "capture", "-w", &file, "-i", "eth0", "-c", "3", "--vrid", "50",
        ],
    );
    let done = cap.wait_exit(Duration::from_secs(20));
    assert!(done.is_some_and(|s| s.success()), "{}", cap.logs());
    let out = std::process::Command::new("tshark")
        .args([
            "-r",
            &file,
            "-Y",
            "vrrp",
            "-T",
            "fields",
            "-e",
            "ip.src",
            "-e",
            "vrrp.virt_rtr_id",
            "-e",
            "vrrp.prio",
            "-e",
            "ip.ttl",
            "-e",
            "frame.time_epoch",
        ])
        .output()
        .expect("tshark");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(
        lines.len(),
        3,
        "tshark read:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    for l in &lines {
        assert_eq!(&l[..4], &["10.0.0.5", "50", "150", "255"], "{text}");
        let t: f64 = l[4].parse().expect("epoch");
        assert!(
            (now - t).abs() < 60.0,
            "kernel stamps converted to wall time: {t} vs {now}"
        );
    }
}
