//! Issue 10: behaviour on busy hosts, as behaviour (never a time threshold tighter than the
//! protocol's). VRRPv3 at advert_int 0.1 in the seed's lab.
//! - A backup stopped (SIGSTOP) for longer than Master_Down_Interval, while the master's
//!   adverts keep arriving, does not become master when it resumes: the ring holds the
//!   adverts it missed, with their kernel stamps, and is drained before any timer fires.
//! - A master in a CPU-throttled cgroup (cgroup v1 cpu, 10 % quota, a busy loop beside it):
//!   without real-time runtime its adverts leave late and `vrrpd diagnose` names the cgroup's
//!   throttling; with real-time runtime granted, its advert thread is SCHED_FIFO and keeps time.

use std::time::Duration;

use vrrp::northbound::{diagnose::FindingKind, status::Diagnosis};
use vrrpd_lab::{
    Cgroup, Host, Lab, ch4_config,
    observer::{HolderObserver, holder_stats},
    require_root, wait_until,
};

const VRRPD: &str = env!("CARGO_BIN_EXE_vrrpd");
const VIP: &str = "10.0.0.3";

fn v3(host: Host) -> String {
    ch4_config(host, 0.1)
}

fn ask(lab: &Lab, host: Host, what: &str) -> String {
    String::from_utf8_lossy(&lab.ask(VRRPD, host, &[what]).stdout).into_owned()
}

/// The findings of `kind` in the daemon's diagnosis, as their sentences and fixes.
fn findings_of(lab: &Lab, host: Host, kind: FindingKind) -> Vec<String> {
    lab.ask_json::<Diagnosis>(VRRPD, host, &["diagnose"])
        .map(|d| {
            d.findings
                .iter()
                .filter(|f| f.kind == kind)
                .map(ToString::to_string)
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_backup_stopped_past_master_down_interval_stays_backup_on_resume() {
    if !require_root("a_backup_stopped_past_master_down_interval_stays_backup_on_resume") {
        return;
    }
    let lab = Lab::seed();
    let observer = HolderObserver::start(
        &[lab.ns(Host::Lb01), lab.ns(Host::Lb02)],
        VIP.parse().expect("vip"),
        Duration::from_millis(2),
    );
    let lb01 = lab.vrrpd(VRRPD, Host::Lb01, &v3(Host::Lb01));
    let lb02 = lab.vrrpd(VRRPD, Host::Lb02, &v3(Host::Lb02));
    assert!(wait_until(Duration::from_secs(10), || lab
        .holds(Host::Lb01, VIP)
        && !lab.holds(Host::Lb02, VIP)));
    std::thread::sleep(Duration::from_secs(1));
    let from = observer.now();
    for _ in 0..3 {
        // Master_Down_Interval here is 0.36 s; stop for 2 s, five times that.
        lb02.signal("STOP");
        std::thread::sleep(Duration::from_secs(2));
        lb02.signal("CONT");
        std::thread::sleep(Duration::from_secs(1));
    }
    let (timeline, end) = observer.stop();
    let st = holder_stats(&timeline, from, end, &[]);
    assert_eq!(
        st.two_total,
        Duration::ZERO,
        "lb02 took the VIP after resuming: {timeline:?}\n{}\n{}",
        lb01.logs(),
        lb02.logs()
    );
    assert!(
        !lb02.stderr().contains("Entering MASTER STATE"),
        "{}",
        lb02.logs()
    );
}

/// Both cases share the set-up: lb01 (master) and a busy loop in one throttled cgroup.
fn throttled_master(rt_runtime_us: u32) -> Option<(String, String, String)> {
    let lab = Lab::seed();
    let name = format!("{}-busy", lab.prefix());
    // 10 % of a CPU in 200 ms periods: two adverts a period, 100 ms apart, so at least one of
    // them falls in the throttled part whatever the phase between the adverts' deadlines and
    // the period (with 100 ms periods, one advert a period could land just after the quota's
    // refill every time and never be late).
    let Some(cg) = Cgroup::cpu_v1(&name, 200_000, 20_000, rt_runtime_us) else {
        eprintln!("SKIP: no cgroup v1 cpu controller at /sys/fs/cgroup/cpu on this machine");
        return None;
    };
    let lb01 = lab.vrrpd_in(VRRPD, Host::Lb01, &v3(Host::Lb01), &[], Some(&cg.procs()));
    let _lb02 = lab.vrrpd(VRRPD, Host::Lb02, &v3(Host::Lb02));
    assert!(
        wait_until(Duration::from_secs(15), || lab.holds(Host::Lb01, VIP)),
        "{}",
        lb01.logs()
    );
    let _burn: Vec<_> = (0..2)
        .map(|i| {
            lab.spawn_in_cgroup(
                Host::Lb01,
                &format!("burn{i}"),
                &["sh", "-c", "while :; do :; done"],
                &cg.procs(),
            )
        })
        .collect();
    let mut late = Vec::new();
    if rt_runtime_us == 0 {
        let _ = wait_until(Duration::from_secs(30), || {
            late = findings_of(&lab, Host::Lb01, FindingKind::AdvertsLate);
            !late.is_empty()
        });
    } else {
        // Give it the same time the other case needs to show the finding.
        std::thread::sleep(Duration::from_secs(12));
        late = findings_of(&lab, Host::Lb01, FindingKind::AdvertsLate);
    }
    let text = late.join("\n");
    let status = ask(&lab, Host::Lb01, "status");
    Some((text, status, lb01.logs()))
}

#[test]
fn a_throttled_master_without_rt_runtime_is_reported_late_with_the_cause() {
    if !require_root("a_throttled_master_without_rt_runtime_is_reported_late_with_the_cause") {
        return;
    }
    let Some((text, _, logs)) = throttled_master(0) else {
        return;
    };
    eprintln!("{text}");
    assert!(
        logs.contains("adverts are sent without real-time priority: SCHED_FIFO refused"),
        "{logs}"
    );
    assert!(!text.is_empty(), "no adverts_late finding\n{logs}");
    assert!(
        text.contains("our adverts (VI_1, VRID 50) leave late"),
        "{text}\n{logs}"
    );
    assert!(
        text.contains("its cgroup ran out of CPU quota"),
        "{text}\n{logs}"
    );
    assert!(
        text.contains("cpu.rt_runtime_us"),
        "the fix names RT runtime: {text}"
    );
}

#[test]
fn a_throttled_master_with_rt_runtime_keeps_time() {
    if !require_root("a_throttled_master_with_rt_runtime_keeps_time") {
        return;
    }
    let Some((text, status, logs)) = throttled_master(20_000) else {
        return;
    };
    assert!(
        logs.contains("adverts are sent from a SCHED_FIFO thread"),
        "{logs}"
    );
    assert!(text.is_empty(), "{text}\n{status}\n{logs}");
}
