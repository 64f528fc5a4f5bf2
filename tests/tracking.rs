//! Issue 6: health tracking in the seed's lab (chapter 8), with the seed's check_web.sh and
//! check_vip.sh verbatim. The lab's `systemctl` and `ps` shims (see `Lab::shims`) let them
//! run unchanged: they start and stop the lab's own nginx and vrrpd of their host.

use std::time::Duration;

use vrrpd_lab::{Host, Lab, Proc, fixtures, require_root, wait_until};

const VRRPD: &str = env!("CARGO_BIN_EXE_vrrpd");
const VIP: &str = "10.0.0.3";

fn seed(name: &str) -> String {
    std::fs::read_to_string(fixtures().join("seed").join(name)).expect("seed fixture")
}

/// The seed's config with /server/scripts pointing at the verbatim copies in the fixtures.
fn ch8(host: &str) -> String {
    let scripts = fixtures().join("seed").canonicalize().expect("fixtures");
    seed(&format!("ch8-{host}.conf")).replace("/server/scripts", &scripts.display().to_string())
}

fn nginx_running(lab: &Lab, host: Host) -> bool {
    lab.try_exec(
        host,
        &[
            &lab.shims(host).join("systemctl").display().to_string(),
            "status",
            "nginx",
        ],
    )
    .is_ok_and(|o| o.status.success())
}

fn web_tier(lab: &Lab) -> Vec<Proc> {
    let procs: Vec<Proc> = [Host::Web01, Host::Web02, Host::Lb01, Host::Lb02]
        .into_iter()
        .map(|h| lab.nginx(h))
        .collect();
    assert!(
        wait_until(Duration::from_secs(10), || lab
            .curl("http://10.0.0.5/")
            .is_some()
            && lab.curl("http://10.0.0.6/").is_some()),
        "nginx did not come up"
    );
    procs
}

/// check_web: nginx on lb01 dies, the script starts it again, the VIP stays on lb01.
#[test]
fn check_web_restarts_nginx_and_the_vip_stays() {
    if !require_root("check_web_restarts_nginx_and_the_vip_stays") {
        return;
    }
    let lab = Lab::seed();
    let mut web = web_tier(&lab);
    let lb01 = lab.vrrpd(VRRPD, Host::Lb01, &ch8("lb01"));
    let lb02 = lab.vrrpd(VRRPD, Host::Lb02, &ch8("lb02"));
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)),
        "{}",
        lb01.logs()
    );
    assert!(
        wait_until(Duration::from_secs(8), || lb01
            .stderr()
            .contains("VRRP_Script(check_web) succeeded")),
        "{}",
        lb01.logs()
    );
    // web[2] is lb01's nginx.
    web[2].kill();
    assert!(!nginx_running(&lab, Host::Lb01));
    // interval 5: within two runs the script has started it again.
    let restarted = wait_until(Duration::from_secs(12), || {
        assert!(
            lab.holds(Host::Lb01, VIP) && !lab.holds(Host::Lb02, VIP),
            "the VIP moved\n{}\n{}",
            lb01.logs(),
            lb02.logs()
        );
        nginx_running(&lab, Host::Lb01)
    });
    assert!(
        restarted,
        "check_web did not restart nginx\n{}",
        lb01.logs()
    );
    assert!(wait_until(Duration::from_secs(5), || lab
        .curl(&format!("http://{VIP}/"))
        .is_some()));
    assert!(lab.holds(Host::Lb01, VIP));
}

/// nginx on lb01 cannot start (bad config): check_web stops vrrpd there, the VIP moves to
/// lb02, and the client's curl through the VIP keeps answering.
#[test]
fn nginx_that_cannot_start_makes_check_web_stop_vrrpd() {
    if !require_root("nginx_that_cannot_start_makes_check_web_stop_vrrpd") {
        return;
    }
    let lab = Lab::seed();
    let mut web = web_tier(&lab);
    let mut lb01 = lab.vrrpd(VRRPD, Host::Lb01, &ch8("lb01"));
    let lb02 = lab.vrrpd(VRRPD, Host::Lb02, &ch8("lb02"));
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)),
        "{}",
        lb01.logs()
    );
    std::fs::write(
        lab.dir().join("nginx-lb01.conf"),
        "this is not an nginx config\n",
    )
    .expect("break the config");
    web[2].kill();
    let stopped = lb01.wait_exit(Duration::from_secs(15));
    assert!(
        stopped.is_some_and(|s| s.success()),
        "check_web did not stop vrrpd on lb01\n{}",
        lb01.logs()
    );
    assert!(
        wait_until(Duration::from_secs(5), || lab.holds(Host::Lb02, VIP)
            && !lab.holds(Host::Lb01, VIP)),
        "{}",
        lb02.logs()
    );
    assert!(
        wait_until(Duration::from_secs(5), || lab
            .curl(&format!("http://{VIP}/"))
            .is_some()),
        "curl through the VIP after the switch"
    );
}

/// Weight: the seed's check_web has weight 50 on both sides (lb01 150+50, lb02 100+50+50).
/// check_web failing on the master takes its bonus away (200 -> 150): lb02 (200) preempts.
/// Here check_web is a script that fails while a flag file is missing, so the weight alone acts.
#[test]
fn a_failing_check_lowers_priority_and_the_vip_moves() {
    if !require_root("a_failing_check_lowers_priority_and_the_vip_moves") {
        return;
    }
    let lab = Lab::seed();
    let flag = lab.dir().join("web-ok");
    std::fs::write(&flag, "").expect("flag");
    let check = lab.write(
        "check_web_flag.sh",
        &format!("#!/bin/sh\ntest -f {}\n", flag.display()),
    );
    std::fs::set_permissions(
        &check,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755),
    )
    .expect("chmod");
    let ok = lab.write("ok.sh", "#!/bin/sh\nexit 0\n");
    std::fs::set_permissions(
        &ok,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755),
    )
    .expect("chmod");
    let lb01_conf =
        seed("ch8-lb01.conf").replace("/server/scripts/check_web.sh", &check.display().to_string());
    let lb02_conf = seed("ch8-lb02.conf")
        .replace("/server/scripts/check_web.sh", &ok.display().to_string())
        .replace("/server/scripts/check_vip.sh", &ok.display().to_string());
    let lb01 = lab.vrrpd(VRRPD, Host::Lb01, &lb01_conf);
    let lb02 = lab.vrrpd(VRRPD, Host::Lb02, &lb02_conf);
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)),
        "{}",
        lb01.logs()
    );
    assert!(
        wait_until(Duration::from_secs(10), || lb02
            .stderr()
            .contains("Changing effective priority from 150 to 200")),
        "{}",
        lb02.logs()
    );
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        lab.holds(Host::Lb01, VIP),
        "equal priorities (200): the master stays\n{}\n{}",
        lb01.logs(),
        lb02.logs()
    );
    std::fs::remove_file(&flag).expect("fail check_web");
    assert!(
        wait_until(Duration::from_secs(10), || lb01
            .stderr()
            .contains("VRRP_Script(check_web) failed")),
        "{}",
        lb01.logs()
    );
    assert!(
        lb01.stderr()
            .contains("(VI_1) Changing effective priority from 150 to 200"),
        "{}",
        lb01.logs()
    );
    assert!(
        wait_until(Duration::from_secs(5), || lb01
            .stderr()
            .contains("(VI_1) Changing effective priority from 200 to 150")),
        "{}",
        lb01.logs()
    );
    assert!(
        wait_until(Duration::from_secs(8), || lab.holds(Host::Lb02, VIP)
            && !lab.holds(Host::Lb01, VIP)),
        "the VIP did not move\n{}\n{}",
        lb01.logs(),
        lb02.logs()
    );
}

/// check_vip (the seed's split-brain guard): the network between the two loses lb01's
/// adverts, lb02 becomes a second master; its check_vip sees lb01's nginx answer while it
/// holds the VIP, and stops nginx and vrrpd on lb02. The VIP ends on lb01.
#[test]
fn check_vip_ends_a_split_brain_as_the_seed_says() {
    if !require_root("check_vip_ends_a_split_brain_as_the_seed_says") {
        return;
    }
    let lab = Lab::seed();
    let _web = web_tier(&lab);
    let lb01 = lab.vrrpd(VRRPD, Host::Lb01, &ch8("lb01"));
    let mut lb02 = lab.vrrpd(VRRPD, Host::Lb02, &ch8("lb02"));
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)),
        "{}",
        lb01.logs()
    );
    // The switch drops VRRP from lb01's port: lb02 no longer hears the master.
    lab.switch_drops_vrrp_from(Host::Lb01);
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb02, VIP)),
        "no split brain happened\n{}",
        lb02.logs()
    );
    // check_vip runs every 5 s: it stops nginx and vrrpd on lb02.
    let stopped = lb02.wait_exit(Duration::from_secs(15));
    assert!(
        stopped.is_some(),
        "check_vip did not stop vrrpd on lb02\n{}",
        lb02.logs()
    );
    assert!(wait_until(Duration::from_secs(5), || !lab.holds(Host::Lb02, VIP)));
    assert!(
        !nginx_running(&lab, Host::Lb02),
        "check_vip should have stopped nginx on lb02"
    );
    // lb01 heard lb02's adverts (equal priority 200, higher address) and had yielded; lb02's
    // priority-0 advert on stopping hands the VIP back after Skew_Time.
    assert!(
        wait_until(Duration::from_secs(5), || lab.holds(Host::Lb01, VIP)),
        "{}",
        lb01.logs()
    );
    assert!(wait_until(Duration::from_secs(5), || lab
        .curl(&format!("http://{VIP}/"))
        .is_some()));
}

/// track_interface: eth1 (the back end) down on lb01 puts VI_1 in FAULT and the VIP moves;
/// eth1 back, lb01 preempts again.
#[test]
fn track_interface_down_moves_the_vip() {
    if !require_root("track_interface_down_moves_the_vip") {
        return;
    }
    let lab = Lab::seed();
    let conf = seed("ch7-lb01.conf").replace(
        "    virtual_ipaddress {",
        "    track_interface {\n      eth1\n    }\n    virtual_ipaddress {",
    );
    let lb01 = lab.vrrpd(VRRPD, Host::Lb01, &conf);
    let lb02 = lab.vrrpd(VRRPD, Host::Lb02, &seed("ch7-lb02.conf"));
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)),
        "{}",
        lb01.logs()
    );
    lab.exec(Host::Lb01, &["ip", "link", "set", "eth1", "down"]);
    assert!(
        wait_until(Duration::from_secs(5), || lb01
            .stderr()
            .contains("(VI_1) Entering FAULT STATE")),
        "{}",
        lb01.logs()
    );
    assert!(
        wait_until(Duration::from_secs(5), || lab.holds(Host::Lb02, VIP)
            && !lab.holds(Host::Lb01, VIP)),
        "{}",
        lb02.logs()
    );
    lab.exec(Host::Lb01, &["ip", "link", "set", "eth1", "up"]);
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)
            && !lab.holds(Host::Lb02, VIP)),
        "{}",
        lb01.logs()
    );
}

/// notify / notify_master / notify_stop: keepalived's arguments, in the order of the
/// transitions (BACKUP at start, MASTER, then STOP on SIGTERM).
#[test]
fn notify_scripts_run_in_transition_order_with_keepalived_arguments() {
    if !require_root("notify_scripts_run_in_transition_order_with_keepalived_arguments") {
        return;
    }
    let lab = Lab::seed();
    let out = lab.dir().join("notify.log");
    let script = lab.write(
        "notify.sh",
        &format!("#!/bin/sh\necho \"$*\" >> {}\n", out.display()),
    );
    std::fs::set_permissions(
        &script,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755),
    )
    .expect("chmod");
    let conf = seed("ch4-lb01.conf").replace(
        "    virtual_ipaddress {",
        &format!(
            "    notify {s}\n    notify_master \"{s} master-only\"\n    virtual_ipaddress {{",
            s = script.display()
        ),
    );
    let mut lb01 = lab.vrrpd(VRRPD, Host::Lb01, &conf);
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)),
        "{}",
        lb01.logs()
    );
    lb01.signal("TERM");
    assert!(lb01.wait_exit(Duration::from_secs(5)).is_some());
    let read = || std::fs::read_to_string(&out).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(5), || read().lines().count() >= 4),
        "{}\n{}",
        read(),
        lb01.logs()
    );
    assert_eq!(
        read().lines().collect::<Vec<_>>(),
        [
            "INSTANCE VI_1 BACKUP 150",
            "master-only",
            "INSTANCE VI_1 MASTER 150",
            "INSTANCE VI_1 STOP 150"
        ],
        "{}",
        lb01.logs()
    );
}

/// track_file as keepalived does it: `init_file` writes 0 (0600) at start; `echo 1 >` the
/// drain file lowers lb01 by its weight (-60: 150 to 90) and lb02 takes over, `echo 0 >`
/// gives it back; a weight-0 file puts lb01 in FAULT while it holds a number other than 0,
/// and removing it ends the FAULT. Each change is seen when it is written (inotify), and
/// `status` shows the number.
#[test]
fn track_file_changes_priority_and_weight_0_means_fault() {
    if !require_root("track_file_changes_priority_and_weight_0_means_fault") {
        return;
    }
    use std::os::unix::fs::PermissionsExt as _;

    use vrrp::{
        northbound::status::Status,
        protocol::{fsm::State, router::TrackedKind},
    };
    let lab = Lab::seed();
    let drain = lab.dir().join("lb01.drain");
    let fault = lab.dir().join("lb01.fault");
    let conf = seed("ch4-lb01.conf")
        .replace(
            "vrrp_instance VI_1 {",
            &format!(
                "track_file drain {{\n  file {}\n  weight -60\n  init_file 0\n}}\n\ntrack_file fault {{\n  file {}\n  weight 0\n}}\n\nvrrp_instance VI_1 {{\n    track_file {{\n      drain\n      fault\n    }}",
                drain.display(),
                fault.display()
            ),
        );
    let lb01 = lab.vrrpd(VRRPD, Host::Lb01, &conf);
    let lb02 = lab.vrrpd(VRRPD, Host::Lb02, &seed("ch4-lb02.conf"));
    let logs = || format!("{}\n{}", lb01.logs(), lb02.logs());
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)
            && !lab.holds(Host::Lb02, VIP)),
        "{}",
        logs()
    );
    assert_eq!(std::fs::read_to_string(&drain).expect("init_file"), "0\n");
    assert_eq!(
        std::fs::metadata(&drain)
            .expect("meta")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let status = || -> Status {
        lab.ask_json(VRRPD, Host::Lb01, &["status"])
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let moved_to = |holder: Host, other: Host| {
        wait_until(Duration::from_secs(10), || {
            lab.holds(holder, VIP) && !lab.holds(other, VIP)
        })
    };
    std::fs::write(&drain, "1\n").expect("drain");
    assert!(
        wait_until(Duration::from_secs(3), || status().instances[0]
            .priority
            .effective
            == 90),
        "{:?}\n{}",
        status().instances[0].priority,
        logs()
    );
    let st = status();
    let t = st.instances[0]
        .priority
        .tracking
        .iter()
        .find(|t| t.kind == TrackedKind::File && t.name == "drain")
        .expect("drain in status");
    assert_eq!((t.value, t.weight), (Some(1), Some(-60)));
    assert!(moved_to(Host::Lb02, Host::Lb01), "{}", logs());
    std::fs::write(&drain, "0\n").expect("undrain");
    assert!(moved_to(Host::Lb01, Host::Lb02), "{}", logs());

    std::fs::write(&fault, "1\n").expect("fault");
    assert!(
        wait_until(Duration::from_secs(3), || status().instances[0].state
            == State::Fault),
        "{}",
        logs()
    );
    assert!(moved_to(Host::Lb02, Host::Lb01), "{}", logs());
    std::fs::remove_file(&fault).expect("rm");
    assert!(moved_to(Host::Lb01, Host::Lb02), "{}", logs());
    assert_eq!(status().instances[0].priority.effective, 150);
}

/// vrrp_track_process with weight 0: while lb01's tracked service (a `sleep 31337`, the lab's
/// hosts share one PID namespace, so a name no other host runs) is gone, lb01 is in FAULT and
/// lb02 holds the VIP; the death is seen when it happens (a pidfd), not at a poll, and a
/// restarted service is counted again within a second or two. `status` shows the tracker.
#[test]
fn track_process_follows_the_service() {
    if !require_root("track_process_follows_the_service") {
        return;
    }
    use vrrp::{
        northbound::status::Status,
        protocol::{fsm::State, router::TrackedKind},
    };
    let lab = Lab::seed();
    let conf = seed("ch4-lb01.conf").replace(
        "vrrp_instance VI_1 {",
        "vrrp_track_process svc {\n  process sleep 31337\n  weight 0\n}\n\nvrrp_instance VI_1 {\n    track_process {\n      svc\n    }",
    );
    let mut svc = lab.spawn(Host::Lb01, "svc", &["sleep", "31337"]);
    let lb01 = lab.vrrpd(VRRPD, Host::Lb01, &conf);
    let lb02 = lab.vrrpd(VRRPD, Host::Lb02, &seed("ch4-lb02.conf"));
    let logs = || format!("{}\n{}", lb01.logs(), lb02.logs());
    let alone = |holder: Host, other: Host| lab.holds(holder, VIP) && !lab.holds(other, VIP);
    assert!(
        wait_until(Duration::from_secs(10), || alone(Host::Lb01, Host::Lb02)),
        "{}",
        logs()
    );
    let status = || -> Status {
        lab.ask_json(VRRPD, Host::Lb01, &["status"])
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let st = status();
    let t = st.instances[0]
        .priority
        .tracking
        .iter()
        .find(|t| t.kind == TrackedKind::Process)
        .expect("the tracker in status");
    assert_eq!((t.name.as_str(), t.ok), ("svc", Some(true)));
    let t0 = std::time::Instant::now();
    svc.kill();
    assert!(
        wait_until(Duration::from_secs(3), || status().instances[0].state
            == State::Fault),
        "{}",
        logs()
    );
    let seen = t0.elapsed();
    // Within the second /proc is read at: the pidfd, not the rescan, saw it.
    assert!(
        seen < Duration::from_millis(700),
        "FAULT {seen:?} after the death"
    );
    assert!(
        wait_until(Duration::from_secs(5), || alone(Host::Lb02, Host::Lb01)),
        "{}",
        logs()
    );
    eprintln!("track_process: FAULT {seen:?} after the service died");
    let _svc = lab.spawn(Host::Lb01, "svc", &["sleep", "31337"]);
    assert!(
        wait_until(Duration::from_secs(10), || alone(Host::Lb01, Host::Lb02)),
        "{}",
        logs()
    );
}
