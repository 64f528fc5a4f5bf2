//! Issues 7 and 8 (first parts): `vrrpd status` against the lab's real state, and
//! `vrrpd diagnose` naming a firewall that eats adverts (the seed's chapter 5).

use std::{process::Command, time::Duration};

use vrrp::{northbound::status::Status, protocol::fsm::State};
use vrrp_common::counter;
use vrrpd_lab::{Host, Lab, fixtures, require_root, wait_until};

const VRRPD: &str = env!("CARGO_BIN_EXE_vrrpd");
const VIP: &str = "10.0.0.3";

fn seed(name: &str) -> String {
    std::fs::read_to_string(fixtures().join("seed").join(name)).expect("seed fixture")
}

fn ask(lab: &Lab, host: Host, command: &str, json: bool) -> String {
    let mut args = vec![command];
    if json {
        args.push("--json");
    }
    let out = lab.ask(VRRPD, host, &args);
    assert!(
        out.status.success(),
        "vrrpd {command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn status_reports_the_lab_s_real_state() {
    if !require_root("status_reports_the_lab_s_real_state") {
        return;
    }
    let lab = Lab::seed();
    let lb01 = lab.vrrpd(VRRPD, Host::Lb01, &seed("ch4-lb01.conf"));
    let lb02 = lab.vrrpd(VRRPD, Host::Lb02, &seed("ch4-lb02.conf"));
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)),
        "{}",
        lb01.logs()
    );
    std::thread::sleep(Duration::from_millis(2500));
    let s1: Status =
        serde_json::from_str(&ask(&lab, Host::Lb01, "status", true)).expect("a status");
    let i = &s1.instances[0];
    assert_eq!(
        (i.name.as_str(), i.state, i.vrid),
        ("VI_1", State::Master, 50)
    );
    assert_eq!((i.priority.base, i.priority.effective), (150, 150));
    assert_eq!(i.vips, ["10.0.0.3/32"]);
    assert!(i.holds_vips);
    assert!(i.counters.adverts_sent >= 2, "{i:?}");
    assert_eq!(
        lab.holds(Host::Lb01, VIP),
        i.holds_vips,
        "status agrees with the addresses on the interface"
    );

    let s2: Status =
        serde_json::from_str(&ask(&lab, Host::Lb02, "status", true)).expect("a status");
    let i = &s2.instances[0];
    assert_eq!(i.state, State::Backup);
    assert_eq!(
        i.master
            .as_ref()
            .map(|m| (m.address.to_string(), m.priority)),
        Some(("10.0.0.5".to_owned(), 150))
    );
    assert!((i.master_down_interval_s - 3.609_375).abs() < 1e-6, "{i:?}");
    assert!(i.counters.adverts_received >= 2);
    assert!(s2.xdp.get(counter::VRRP_V4) >= 2, "{s2:?}");

    let human = ask(&lab, Host::Lb02, "status", false);
    assert!(
        human.starts_with("VI_1 eth0 vrid 50 ipv4 v2: BACKUP for "),
        "{human}"
    );
    assert!(human.contains("master: 10.0.0.5 priority 150"), "{human}");
    // A healthy pair: nothing to report (the socket gets what the wire carries).
    let healthy = ask(&lab, Host::Lb02, "diagnose", false);
    assert!(healthy.starts_with("no problem found"), "{healthy}");
    // SIGUSR1 writes the same state to a file, as keepalived writes /tmp/keepalived.data.
    lb02.signal("USR1");
    let dump = lab.dir().join("vrrpd-lb02.data");
    assert!(
        wait_until(Duration::from_secs(5), || std::fs::read_to_string(&dump)
            .is_ok_and(|t| t.ends_with("}\n"))),
        "{}",
        lb02.logs()
    );
    let v: Status =
        serde_json::from_str(&std::fs::read_to_string(&dump).expect("dump")).expect("a status");
    assert_eq!(v.instances[0].state, State::Backup);
    drop(lb02);
}

/// Chapter 5 with vrrpd: nftables on lb02 drops VRRP on input. XDP still sees lb01's adverts,
/// so lb02 stays backup (one master), and `vrrpd diagnose` names the rule and the fix; applying
/// the fix makes the finding go away.
#[test]
fn diagnose_names_a_firewall_that_eats_adverts() {
    if !require_root("diagnose_names_a_firewall_that_eats_adverts") {
        return;
    }
    let lab = Lab::seed();
    let lb01 = lab.vrrpd(VRRPD, Host::Lb01, &seed("ch4-lb01.conf"));
    let lb02 = lab.vrrpd(VRRPD, Host::Lb02, &seed("ch4-lb02.conf"));
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)),
        "{}",
        lb01.logs()
    );
    lab.nft_drop_vrrp(Host::Lb02, "input");
    // Longer than Master_Down_Interval: keepalived would be a second master by now.
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        lab.holds(Host::Lb01, VIP) && !lab.holds(Host::Lb02, VIP),
        "split brain behind the firewall\n{}",
        lb02.logs()
    );
    let text = ask(&lab, Host::Lb02, "diagnose", false);
    assert!(
        text.contains(
            "eth0: adverts from 10.0.0.5 (VRID 50) reach the wire but netfilter drops them (NETFILTER_DROP, input; rule "
        ) && text.contains(" in inet lab input)"),
        "{text}"
    );
    let fix_line = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("nft insert rule inet lab input"))
        .expect("an nft fix")
        .to_owned();
    assert_eq!(
        fix_line,
        "nft insert rule inet lab input ip protocol vrrp accept"
    );
    // The fix is the owner's (plain nftables here): no iptables or firewall-cmd rule beside it,
    // which would land in another table and leave this one dropping.
    assert!(
        !text.contains("firewall-cmd") && !text.contains("iptables -I"),
        "{text}"
    );
    // Apply the fix it printed; the finding goes away once the window has passed.
    let words: Vec<&str> = fix_line.split_whitespace().collect();
    lab.exec(Host::Lb02, &words);
    let cleared = wait_until(Duration::from_secs(20), || {
        ask(&lab, Host::Lb02, "diagnose", false).starts_with("no problem found")
    });
    assert!(cleared, "{}", ask(&lab, Host::Lb02, "diagnose", false));
    assert!(lab.holds(Host::Lb01, VIP) && !lab.holds(Host::Lb02, VIP));
}

/// Mismatched authentication with keepalived as the peer: vrrpd names it.
#[test]
fn diagnose_names_an_auth_mismatch_with_keepalived() {
    if !require_root("diagnose_names_an_auth_mismatch_with_keepalived") {
        return;
    }
    let lab = Lab::seed();
    let _k = lab.keepalived(
        Host::Lb01,
        &seed("ch4-lb01.conf").replace("auth_pass 1111", "auth_pass 9999"),
    );
    let lb02 = lab.vrrpd(VRRPD, Host::Lb02, &seed("ch4-lb02.conf"));
    assert!(wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)));
    let found = wait_until(Duration::from_secs(10), || {
        ask(&lab, Host::Lb02, "diagnose", false).contains("eth0: adverts from 10.0.0.5 (VRID 50) carry a different authentication (auth_type / auth_pass)")
    });
    assert!(
        found,
        "{}\n{}",
        ask(&lab, Host::Lb02, "diagnose", false),
        lb02.logs()
    );
}

/// `--metrics`: the endpoint scraped and parsed as Prometheus text format.
#[test]
fn metrics_endpoint_is_prometheus_text() {
    if !require_root("metrics_endpoint_is_prometheus_text") {
        return;
    }
    let lab = Lab::seed();
    let lb01 = lab.vrrpd_with(
        VRRPD,
        Host::Lb01,
        &seed("ch4-lb01.conf"),
        &["--metrics", "127.0.0.1:9650"],
    );
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)),
        "{}",
        lb01.logs()
    );
    std::thread::sleep(Duration::from_millis(1500));
    let out = lab.exec(
        Host::Lb01,
        &["curl", "-s", "-f", "http://127.0.0.1:9650/metrics"],
    );
    let mut typed = std::collections::HashSet::new();
    let mut histograms = std::collections::HashSet::new();
    let mut samples = std::collections::HashMap::new();
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut w = rest.split_whitespace();
            let (name, kind) = (w.next().expect("name"), w.next().expect("type"));
            assert!(["gauge", "counter", "histogram"].contains(&kind), "{line}");
            if kind == "histogram" {
                // Its samples are NAME_bucket{le}, NAME_sum and NAME_count.
                for suffix in ["_bucket", "_sum", "_count"] {
                    typed.insert(format!("{name}{suffix}"));
                }
                histograms.insert(name.to_owned());
            } else {
                typed.insert(name.to_owned());
            }
            continue;
        }
        if line.starts_with("# HELP ") || line.is_empty() {
            continue;
        }
        // name{labels} value, with a numeric value and a declared metric name.
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not a sample: {line}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {line}"));
        let name = series.split('{').next().expect("name");
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line}"
        );
        assert!(typed.contains(name), "sample before its TYPE: {line}");
        if let Some(labels) = series.strip_prefix(name) {
            assert!(
                labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                "{line}"
            );
        }
        samples.insert(series.to_owned(), value);
    }
    let id = "vrrp_instance=\"VI_1\",interface=\"eth0\",vrid=\"50\"";
    assert_eq!(
        samples.get(&format!("vrrpd_instance_master{{{id}}}")),
        Some(&1.0),
        "{out}"
    );
    assert_eq!(
        samples.get(&format!("vrrpd_instance_priority{{{id}}}")),
        Some(&150.0)
    );
    assert!(
        samples
            .get(&format!("vrrpd_adverts_sent_total{{{id}}}"))
            .is_some_and(|n| *n >= 1.0)
    );
    assert!(samples.contains_key("vrrpd_xdp_packets_total{counter=\"frames\"}"));
    // The delay histogram is whole with no advert heard yet: the +Inf bucket equals the count.
    assert!(histograms.contains("vrrpd_advert_election_delay_seconds"));
    assert_eq!(
        samples.get("vrrpd_advert_election_delay_seconds_bucket{le=\"+Inf\"}"),
        samples.get("vrrpd_advert_election_delay_seconds_count"),
        "{out}"
    );
    // Gap statistics per source need a peer: see metrics on lb02 below.
    let lb02 = lab.vrrpd_with(
        VRRPD,
        Host::Lb02,
        &seed("ch4-lb02.conf"),
        &["--metrics", "127.0.0.1:9650"],
    );
    let peer =
        "vrrpd_peer_advert_interval_seconds{interface=\"eth0\",vrid=\"50\",source=\"10.0.0.5\"} ";
    let got = wait_until(Duration::from_secs(8), || {
        let out = lab
            .try_exec(Host::Lb02, &["curl", "-s", "http://127.0.0.1:9650/metrics"])
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        out.lines()
            .find_map(|l| l.strip_prefix(peer))
            .and_then(|v| v.parse::<f64>().ok())
            .is_some_and(|v| (0.5..1.5).contains(&v))
    });
    assert!(got, "lb02 reports lb01's advert interval\n{}", lb02.logs());
}

/// The systemd unit passes `systemd-analyze verify` (with ExecStart pointing at this build).
#[test]
fn systemd_unit_verifies() {
    let unit = std::fs::read_to_string(fixtures().join("../../dist/vrrpd.service"))
        .expect("dist/vrrpd.service");
    assert!(
        unit.contains("Type=notify")
            && unit.contains("ExecReload=/bin/kill -HUP $MAINPID")
            && unit.contains("CapabilityBoundingSet=")
    );
    let dir = std::env::temp_dir().join(format!("vrrpd-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("vrrpd.service");
    std::fs::write(&path, unit.replace("/usr/sbin/vrrpd", VRRPD)).expect("unit");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian's systemd package)");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `vrrpd watch` against the running daemon (plain mode: stdout is not a terminal): the
/// peer's row with its fields; `--adverts` streams its adverts; `capture` through the daemon
/// writes a pcap that tshark reads.
#[test]
fn watch_and_capture_work_against_the_daemon() {
    if !require_root("watch_and_capture_work_against_the_daemon") {
        return;
    }
    let lab = Lab::seed();
    let lb01 = lab.vrrpd(VRRPD, Host::Lb01, &seed("ch4-lb01.conf"));
    let _lb02 = lab.vrrpd(VRRPD, Host::Lb02, &seed("ch4-lb02.conf"));
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)),
        "{}",
        lb01.logs()
    );
    std::thread::sleep(Duration::from_millis(3500));
    let sock = lab.control_socket(Host::Lb02).display().to_string();

    let out = Command::new(VRRPD)
        .args(["watch", "-s", &sock, "-c", "2"])
        .output()
        .expect("watch");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = text
        .lines()
        .find(|l| l.contains("10.0.0.5"))
        .unwrap_or_else(|| panic!("no row for lb01:\n{text}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        &cols[..6],
        &["eth0", "50", "10.0.0.5", "2", "150", "pass"],
        "{row}"
    );
    // The interval column: the mean gap between lb01's adverts (advert_int 1 s), e.g. "0.999s".
    let interval: f64 = cols[7]
        .trim_end_matches('s')
        .parse()
        .unwrap_or_else(|_| panic!("interval column: {row}"));
    assert!((0.5..1.5).contains(&interval), "interval ~1 s: {row}");
    assert!(row.contains(" 100% "), "all delivered to the socket: {row}");
    assert_eq!(
        text.matches("findings: none").count(),
        2,
        "two refreshes, nothing wrong:\n{text}"
    );

    let out = Command::new(VRRPD)
        .args(["watch", "-s", &sock, "--adverts", "-c", "2"])
        .output()
        .expect("watch --adverts");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines()
            .filter(|l| l
                .contains(" eth0 10.0.0.5 > 224.0.0.18 VRRPv2 vrid 50 prio 150 int 1s auth pass"))
            .count(),
        2,
        "{text}"
    );

    let file = lab.dir().join("daemon.pcap").display().to_string();
    let out = Command::new(VRRPD)
        .args(["capture", "-w", &file, "-s", &sock, "-c", "2"])
        .output()
        .expect("capture");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = Command::new("tshark")
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
        ])
        .output()
        .expect("tshark");
    assert_eq!(
        String::from_utf8_lossy(&t.stdout)
            .lines()
            .collect::<Vec<_>>(),
        ["10.0.0.5\t50", "10.0.0.5\t50"]
    );
}

/// A client that says nothing and one that sends garbage do not stall the daemon.
#[test]
fn slow_and_garbage_control_clients_do_not_stall_the_daemon() {
    if !require_root("slow_and_garbage_control_clients_do_not_stall_the_daemon") {
        return;
    }
    use std::io::{Read as _, Write as _};
    let lab = Lab::seed();
    let lb01 = lab.vrrpd(VRRPD, Host::Lb01, &seed("ch4-lb01.conf"));
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)),
        "{}",
        lb01.logs()
    );
    let path = lab.control_socket(Host::Lb01);
    let silent: Vec<_> = (0..4)
        .map(|_| std::os::unix::net::UnixStream::connect(&path).expect("connect"))
        .collect();
    let mut garbage = std::os::unix::net::UnixStream::connect(&path).expect("connect");
    garbage
        .write_all(b"\x00\xffnot json at all\n")
        .expect("write");
    let mut answer = String::new();
    garbage.read_to_string(&mut answer).expect("read");
    assert!(answer.contains("\"error\":\"bad request"), "{answer}");
    let start = std::time::Instant::now();
    let status = ask(&lab, Host::Lb01, "status", true);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "status took {:?} with silent clients connected",
        start.elapsed()
    );
    assert!(status.contains("\"state\":\"MASTER\""), "{status}");
    assert!(lab.holds(Host::Lb01, VIP));
    drop(silent);
}

/// keepalived's signals, as operators and exporters send them: SIGUSR2 writes
/// keepalived.stats, SIGRTMIN+2 (SIGJSON) keepalived.json, SIGRTMAX-1 clears the stats; every
/// other signal whose default would end the process leaves the master running with its VIP;
/// SIGQUIT stops it as SIGTERM does. `--signum` prints keepalived's numbers.
#[test]
fn keepalived_signals_write_its_files_and_no_stray_signal_ends_the_master() {
    if !require_root("keepalived_signals_write_its_files_and_no_stray_signal_ends_the_master") {
        return;
    }
    let out = Command::new(VRRPD)
        .args(["run", "--signum", "JSON"])
        .output()
        .expect("vrrpd run --signum");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        (libc::SIGRTMIN() + 2).to_string()
    );

    let lab = Lab::seed();
    let mut lb01 = lab.vrrpd(VRRPD, Host::Lb01, &seed("ch4-lb01.conf"));
    let _lb02 = lab.vrrpd(VRRPD, Host::Lb02, &seed("ch4-lb02.conf"));
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)),
        "{}",
        lb01.logs()
    );
    std::thread::sleep(Duration::from_secs(2));
    let dir = lab.dump_dir(Host::Lb01);
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    let sent = |stats: &str| -> u64 {
        stats
            .lines()
            .skip_while(|l| !l.contains("Advertisements:"))
            .find_map(|l| l.trim().strip_prefix("Sent: ").and_then(|n| n.parse().ok()))
            .unwrap_or(0)
    };

    lb01.signal("USR2");
    assert!(wait_until(Duration::from_secs(5), || read(
        "keepalived.stats"
    )
    .contains("VRRP Instance: VI_1")));
    let before = sent(&read("keepalived.stats"));
    assert!(before >= 2, "{}", read("keepalived.stats"));

    lb01.signal(&(libc::SIGRTMIN() + 2).to_string());
    assert!(wait_until(Duration::from_secs(5), || !read(
        "keepalived.json"
    )
    .is_empty()));
    let json: serde_json::Value =
        serde_json::from_str(&read("keepalived.json")).expect("keepalived.json");
    assert_eq!(json[0]["data"]["iname"], "VI_1");
    assert_eq!(
        json[0]["data"]["state"], 2,
        "MASTER is 2 in keepalived's numbers"
    );
    assert_eq!(json[0]["data"]["vrid"], 50);
    assert!(
        json[0]["stats"]["advert_sent"]
            .as_u64()
            .is_some_and(|n| n >= before)
    );

    lb01.signal("USR1");
    assert!(wait_until(Duration::from_secs(5), || read(
        "keepalived.data"
    )
    .contains(" VRRP Instance = VI_1")));
    assert!(
        read("keepalived.data").contains("   State = MASTER"),
        "{}",
        read("keepalived.data")
    );

    // SIGRTMAX-1: the stats as they were, then counted from zero.
    let _ = std::fs::remove_file(dir.join("keepalived.stats"));
    lb01.signal(&(libc::SIGRTMAX() - 1).to_string());
    assert!(wait_until(Duration::from_secs(5), || !read(
        "keepalived.stats"
    )
    .is_empty()));
    let _ = std::fs::remove_file(dir.join("keepalived.stats"));
    lb01.signal("USR2");
    assert!(wait_until(Duration::from_secs(5), || !read(
        "keepalived.stats"
    )
    .is_empty()));
    assert!(
        sent(&read("keepalived.stats")) < before,
        "{}",
        read("keepalived.stats")
    );

    // Every other signal that would end it by default: it stays master, the VIP stays.
    let mut stray: Vec<String> = [
        "ALRM", "VTALRM", "PROF", "IO", "PWR", "STKFLT", "XCPU", "XFSZ", "PIPE",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    stray.extend((libc::SIGRTMIN()..=libc::SIGRTMAX()).map(|n| n.to_string()));
    for s in &stray {
        lb01.signal(s);
    }
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        lb01.running(),
        "a stray signal ended vrrpd: {}",
        lb01.logs()
    );
    assert!(lab.holds(Host::Lb01, VIP) && !lab.holds(Host::Lb02, VIP));
    let st: Status = serde_json::from_str(&ask(&lab, Host::Lb01, "status", true)).expect("status");
    assert_eq!(st.instances[0].state, State::Master);

    // SIGQUIT: a graceful stop, as SIGTERM.
    lb01.signal("QUIT");
    assert!(
        lb01.wait_exit(Duration::from_secs(10))
            .is_some_and(|s| s.success()),
        "{}",
        lb01.logs()
    );
    assert!(!lab.holds(Host::Lb01, VIP));
    assert!(wait_until(Duration::from_secs(10), || lab.holds(Host::Lb02, VIP)));
}

/// The class of keepalived's CVE-2018-19044/19045/19046: before vrrpd starts, a symlink is
/// planted at every path it writes (the pid file, `--dump-file`, keepalived.data, .stats and
/// .json in `--dump-dir`, the control socket, a notify_fifo, `capture -w`), each pointing at a
/// file of root's. After the start, every signal that writes a file, a transition that writes
/// to the FIFO and a capture, each target is byte for byte and mode for mode as it was; each
/// path holds vrrpd's own file in the symlink's place, except the FIFO and the capture, which
/// are refused with an error naming the path.
#[test]
fn files_are_never_written_through_a_planted_symlink() {
    if !require_root("files_are_never_written_through_a_planted_symlink") {
        return;
    }
    use std::{
        fs,
        os::unix::fs::{FileTypeExt as _, PermissionsExt as _},
        path::PathBuf,
    };
    let lab = Lab::seed();
    let victims = lab.dir().join("victims");
    fs::create_dir_all(&victims).expect("victims");
    let dump_dir = lab.dump_dir(Host::Lb01);
    fs::create_dir_all(&dump_dir).expect("dump dir");
    let fifo = lab.dir().join("notify.fifo");
    let capture = lab.dir().join("capture.pcap");
    let planted: Vec<(PathBuf, PathBuf)> = [
        lab.dir().join("vrrpd-lb01.pid"),
        lab.dir().join("vrrpd-lb01.data"),
        dump_dir.join("keepalived.data"),
        dump_dir.join("keepalived.stats"),
        dump_dir.join("keepalived.json"),
        lab.control_socket(Host::Lb01),
        fifo.clone(),
        capture.clone(),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, path)| {
        let victim = victims.join(format!("victim-{i}"));
        fs::write(&victim, "precious\n").expect("victim");
        fs::set_permissions(&victim, fs::Permissions::from_mode(0o644)).expect("chmod");
        std::os::unix::fs::symlink(&victim, &path).expect("symlink");
        (path, victim)
    })
    .collect();
    let conf = seed("ch4-lb01.conf").replace(
        "router_id lb01",
        &format!("router_id lb01\n  notify_fifo {}", fifo.display()),
    );
    let mut lb01 = lab.vrrpd(VRRPD, Host::Lb01, &conf);
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)),
        "{}",
        lb01.logs()
    );
    let regular = |p: &PathBuf| fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_file());
    for signal in ["USR1", "USR2", &(libc::SIGRTMIN() + 2).to_string()] {
        lb01.signal(signal);
    }
    assert!(
        wait_until(Duration::from_secs(5), || planted[..5]
            .iter()
            .all(|(p, _)| regular(p))),
        "the pid file and the dumps are not vrrpd's own files: {:?}\n{}",
        planted[..5]
            .iter()
            .map(|(p, _)| fs::symlink_metadata(p).map(|m| m.file_type()))
            .collect::<Vec<_>>(),
        lb01.logs()
    );
    let pid = fs::read_to_string(&planted[0].0).expect("pid file");
    assert_eq!(pid.trim(), lb01.pid().to_string());
    // 0644 for the pid file (keepalived's pidfile.c), 0600 for every dump (its fopen_safe).
    let modes: Vec<u32> = planted[..5]
        .iter()
        .map(|(p, _)| fs::metadata(p).map_or(0, |m| m.permissions().mode() & 0o777))
        .collect();
    assert_eq!(modes, [0o644, 0o600, 0o600, 0o600, 0o600]);
    assert!(
        fs::symlink_metadata(&planted[5].0).is_ok_and(|m| m.file_type().is_socket()),
        "the control socket is not in the symlink's place"
    );
    let st: Status = serde_json::from_str(&ask(&lab, Host::Lb01, "status", true)).expect("status");
    assert_eq!(st.instances[0].state, State::Master);
    let out = Command::new(VRRPD)
        .arg("capture")
        .arg("-w")
        .arg(&capture)
        .arg("-s")
        .arg(lab.control_socket(Host::Lb01))
        .args(["-c", "1"])
        .output()
        .expect("capture");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("symlink"), "{err}");
    // The FIFO: refused at start and at the transition, the symlink left where it was.
    assert!(
        fs::symlink_metadata(&fifo).is_ok_and(|m| m.file_type().is_symlink()),
        "the notify_fifo symlink was replaced or removed"
    );
    assert!(
        lb01.logs().contains("is not a FIFO (a symlink)"),
        "{}",
        lb01.logs()
    );
    lb01.signal("TERM");
    assert!(lb01.wait_exit(Duration::from_secs(10)).is_some());
    for (path, victim) in &planted {
        let meta = fs::metadata(victim).expect("victim");
        assert_eq!(
            (
                fs::read_to_string(victim).expect("victim").as_str(),
                meta.permissions().mode() & 0o7777
            ),
            ("precious\n", 0o644),
            "written through the symlink at {}",
            path.display()
        );
    }
}

/// Issue 18's pcapng: `capture` through a daemon whose instances run on eth0 and eth1 writes
/// one interface block per interface, so tshark says which interface each advert came in on,
/// with the XDP verdict as the packet's comment; `--format pcap` still writes classic pcap.
#[test]
fn capture_keeps_each_adverts_interface_and_verdict() {
    if !require_root("capture_keeps_each_adverts_interface_and_verdict") {
        return;
    }
    let lab = Lab::seed();
    let second = |priority: u32| {
        format!(
            "\nvrrp_instance VI_2 {{\n  state BACKUP\n  interface eth1\n  virtual_router_id 60\n  priority {priority}\n  advert_int 1\n  virtual_ipaddress {{\n    172.16.1.3\n  }}\n}}\n"
        )
    };
    let lb01 = lab.vrrpd(VRRPD, Host::Lb01, &(seed("ch4-lb01.conf") + &second(150)));
    let _lb02 = lab.vrrpd(VRRPD, Host::Lb02, &(seed("ch4-lb02.conf") + &second(100)));
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)
            && lab.holds(Host::Lb01, "172.16.1.3")),
        "{}",
        lb01.logs()
    );
    let sock = lab.control_socket(Host::Lb02).display().to_string();
    let file = lab.dir().join("two.pcapng").display().to_string();
    let out = Command::new(VRRPD)
        .args(["capture", "-w", &file, "-s", &sock, "-c", "6"])
        .output()
        .expect("capture");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = Command::new("tshark")
        .args([
            "-r",
            &file,
            "-T",
            "fields",
            "-e",
            "frame.interface_name",
            "-e",
            "ip.src",
            "-e",
            "vrrp.virt_rtr_id",
            "-e",
            "frame.comment",
        ])
        .output()
        .expect("tshark");
    let text = String::from_utf8_lossy(&t.stdout);
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(
        rows.len(),
        6,
        "{text}{}",
        String::from_utf8_lossy(&t.stderr)
    );
    for row in &rows {
        assert!(
            *row == "eth0\t10.0.0.5\t50\txdp verdict: ok"
                || *row == "eth1\t172.16.1.5\t60\txdp verdict: ok",
            "{row:?}\n{text}"
        );
    }
    assert!(rows.iter().any(|r| r.starts_with("eth0")), "{text}");
    assert!(rows.iter().any(|r| r.starts_with("eth1")), "{text}");

    let classic = lab.dir().join("two.pcap").display().to_string();
    let out = Command::new(VRRPD)
        .args([
            "capture", "--format", "pcap", "-w", &classic, "-s", &sock, "-c", "1",
        ])
        .output()
        .expect("capture --format pcap");
    assert!(out.status.success());
    let head = std::fs::read(&classic).expect("pcap");
    assert_eq!(
        &head[..4],
        &[0x4d, 0x3c, 0xb2, 0xa1],
        "classic pcap, nanoseconds"
    );
}

/// Issue 18's runtime control: `vrrpd set VI_1 maintenance on` on the master hands the VIP
/// over as a stop does (priority 0: the backup takes over after its Skew_Time, 0.61 s at
/// priority 100, not the 3.61 s Master_Down_Interval), then holds it BACKUP although its
/// priority is the higher one; `off` lets it preempt again. `priority N` moves mastership by
/// priority, `priority config` undoes it; an unknown instance is refused by name.
#[test]
fn operator_maintenance_and_priority_move_the_vip_and_hold_it() {
    if !require_root("operator_maintenance_and_priority_move_the_vip_and_hold_it") {
        return;
    }
    let lab = Lab::seed();
    let lb01 = lab.vrrpd(VRRPD, Host::Lb01, &seed("ch4-lb01.conf"));
    let lb02 = lab.vrrpd(VRRPD, Host::Lb02, &seed("ch4-lb02.conf"));
    let settled = |holder: Host, other: Host| {
        wait_until(Duration::from_secs(10), || {
            lab.holds(holder, VIP) && !lab.holds(other, VIP)
        })
    };
    assert!(settled(Host::Lb01, Host::Lb02), "{}", lb01.logs());
    std::thread::sleep(Duration::from_millis(1500));
    let set = |args: &[&str]| {
        let mut all = vec!["set", "VI_1"];
        all.extend_from_slice(args);
        lab.ask(VRRPD, Host::Lb01, &all)
    };

    let asked = std::time::Instant::now();
    let out = set(&["maintenance", "on"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("BACKUP"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb02, VIP)),
        "{}",
        lb02.logs()
    );
    let took = asked.elapsed();
    // The protocol's bound is Skew_Time from the priority 0; the slack is the test's
    // polling and the two processes' scheduling, far under the 3.61 s a silent stop costs.
    let skew = Duration::from_micros(609_375);
    assert!(took < skew + Duration::from_millis(1500), "took {took:?}");
    assert!(!lab.holds(Host::Lb01, VIP));
    // Held: priority 150 against lb02's 100, preempt on, and still BACKUP past its
    // Master_Down_Interval.
    std::thread::sleep(Duration::from_secs(5));
    let st = status(&lab, Host::Lb01);
    let i = &st.instances[0];
    assert_eq!((i.state, i.maintenance), (State::Backup, true), "{i:?}");
    assert!(lab.holds(Host::Lb02, VIP) && !lab.holds(Host::Lb01, VIP));
    assert!(
        lb01.logs().contains("maintenance on (by the operator)"),
        "{}",
        lb01.logs()
    );

    assert!(set(&["maintenance", "off"]).status.success());
    assert!(settled(Host::Lb01, Host::Lb02), "{}", lb01.logs());
    assert!(!status(&lab, Host::Lb01).instances[0].maintenance);

    // Priority 50 under lb02's 100: lb02 preempts; the config's 150 again: lb01 does.
    assert!(set(&["priority", "50"]).status.success());
    assert!(settled(Host::Lb02, Host::Lb01), "{}", lb02.logs());
    let p = status(&lab, Host::Lb01).instances[0].priority.clone();
    assert_eq!((p.base, p.effective, p.operator), (150, 50, Some(50)));
    assert!(set(&["priority", "config"]).status.success());
    assert!(settled(Host::Lb01, Host::Lb02), "{}", lb01.logs());

    for bad in [&["priority", "255"][..], &["priority", "x"]] {
        assert!(!set(bad).status.success(), "{bad:?} accepted");
    }
    let out = lab.ask(VRRPD, Host::Lb01, &["set", "VI_9", "maintenance", "on"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("VI_1"), "{err}");
}

/// `vrrpd reload` says what the reload did: applied (with the instance count), or refused
/// with the config's errors and exit 2, the running config staying. And a client whose reader
/// goes away (`vrrpd watch | head`) exits quietly, with no panic.
#[test]
fn control_commands_print_outcomes_and_survive_a_closed_pipe() {
    if !require_root("control_commands_print_outcomes_and_survive_a_closed_pipe") {
        return;
    }
    let lab = Lab::seed();
    let conf = seed("ch4-lb01.conf");
    let lb01 = lab.vrrpd(VRRPD, Host::Lb01, &conf);
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)),
        "{}",
        lb01.logs()
    );
    let out = lab.ask(VRRPD, Host::Lb01, &["reload"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("reload applied: 1 instances"),
        "{text}"
    );
    lab.write(
        "vrrpd-lb01.conf",
        &conf.replace("priority 150", "priority 999"),
    );
    let out = lab.ask(VRRPD, Host::Lb01, &["reload"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("reload refused") && text.contains("vrrpd-lb01.conf:"),
        "{text}"
    );
    assert!(lab.holds(Host::Lb01, VIP), "a refused reload moved the VIP");

    // lb02 hears lb01's adverts: its `watch --adverts` has lines to print.
    let lb02 = lab.vrrpd(VRRPD, Host::Lb02, &seed("ch4-lb02.conf"));
    assert!(
        wait_until(Duration::from_secs(10), || lb02
            .logs()
            .contains("Entering BACKUP")),
        "{}",
        lb02.logs()
    );
    for args in [&["watch", "--adverts"][..], &["watch"]] {
        let mut child = Command::new(VRRPD)
            .args(args)
            .arg("-s")
            .arg(lab.control_socket(Host::Lb02))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("vrrpd watch");
        let mut stdout = child.stdout.take().expect("stdout");
        // The first byte, then the reader goes away (a thread: a read that never returns
        // must not hang the test).
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut first = [0u8; 1];
            let n = std::io::Read::read(&mut stdout, &mut first).unwrap_or(0);
            let _ = tx.send(n);
        });
        let printed = rx.recv_timeout(Duration::from_secs(10)) == Ok(1);
        if !printed {
            let _ = child.kill();
        }
        assert!(printed, "vrrpd {args:?} printed nothing");
        let exited = wait_until(Duration::from_secs(10), || {
            child.try_wait().is_ok_and(|s| s.is_some())
        });
        if !exited {
            let _ = child.kill();
        }
        let out = child.wait_with_output().expect("vrrpd watch");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(exited, "vrrpd {args:?} kept running with no reader");
        assert!(
            out.status.success() && !err.contains("panicked"),
            "vrrpd {args:?}: {:?} {err}",
            out.status
        );
    }
}

fn status(lab: &Lab, host: Host) -> Status {
    serde_json::from_str(&ask(lab, host, "status", true)).expect("a status")
}

/// Issue 18: a daemon started with no paths in the named namespace NS keeps its socket and
/// pid file in /run/vrrpd/NS, and `ip netns exec NS vrrpd status` (no -s) finds it; a daemon
/// in another namespace would not collide with it.
#[test]
fn a_daemon_in_a_named_namespace_is_found_without_flags() {
    if !require_root("a_daemon_in_a_named_namespace_is_found_without_flags") {
        return;
    }
    let lab = Lab::seed();
    let ns = lab.ns(Host::Lb01);
    let dir = std::path::Path::new("/run/vrrpd").join(&ns);
    let conf = lab.write("lb01-defaults.conf", &seed("ch4-lb01.conf"));
    let conf = conf.display().to_string();
    let mut lb01 = lab.spawn(
        Host::Lb01,
        "vrrpd-defaults",
        &[VRRPD, "run", "-f", &conf, "--config-id", "lb01"],
    );
    let up = wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP));
    let pid = std::fs::read_to_string(dir.join("vrrpd.pid")).unwrap_or_default();
    let out = lab
        .try_exec(Host::Lb01, &[VRRPD, "status", "--json"])
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    lb01.signal("TERM");
    let stopped = lb01.wait_exit(Duration::from_secs(10)).is_some();
    let left: Vec<_> = ["vrrpd.sock", "vrrpd.pid"]
        .into_iter()
        .filter(|f| dir.join(f).exists())
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(up, "{}", lb01.logs());
    let st: Status = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(st.instances[0].state, State::Master);
    assert_eq!(
        pid.trim(),
        st.pid.to_string(),
        "the pid file in {}",
        dir.display()
    );
    assert!(stopped, "{}", lb01.logs());
    // The socket and the pid file go with the daemon (the dumps stay, as keepalived's).
    assert!(left.is_empty(), "{left:?} left in {}", dir.display());
}
