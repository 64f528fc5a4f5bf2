//! Issue 9: least privilege. Once started, every thread of vrrpd holds only the capabilities
//! it names (caps::RUNTIME); a reload that adds an interface still works with them (XDP, raw
//! sockets, the VIP); the control socket refuses other users even when its file mode would not.

use std::{process::Command, time::Duration};

use vrrp::{northbound::status::Status, protocol::fsm::State};
use vrrpd_lab::{Host, Lab, fixtures, require_root, wait_until};

const VRRPD: &str = env!("CARGO_BIN_EXE_vrrpd");

fn seed(name: &str) -> String {
    std::fs::read_to_string(fixtures().join("seed").join(name)).expect("seed fixture")
}

/// CAP_KILL, CAP_SETGID, CAP_SETUID, CAP_NET_ADMIN, CAP_NET_RAW, CAP_IPC_LOCK, CAP_SYS_NICE.
const KEPT: u64 = (1 << 5) | (1 << 6) | (1 << 7) | (1 << 12) | (1 << 13) | (1 << 14) | (1 << 23);

fn thread_caps(pid: u32) -> Vec<(String, u64, u64)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in dir.flatten() {
        let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
                .unwrap_or(u64::MAX)
        };
        out.push((
            t.file_name().to_string_lossy().into_owned(),
            field("CapEff:"),
            field("CapPrm:"),
        ));
    }
    out
}

/// One field of every thread's /proc status, in hex (CapBnd) or decimal (NoNewPrivs).
fn thread_field(pid: u32, name: &str, radix: u32) -> Vec<u64> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.flatten()
        .map(|t| {
            std::fs::read_to_string(t.path().join("status"))
                .unwrap_or_default()
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| u64::from_str_radix(v.trim(), radix).ok())
                .unwrap_or(u64::MAX)
        })
        .collect()
}

/// Every thread's bounding set within `KEPT` and no_new_privs set (a config without scripts:
/// nothing it execs can gain anything), checked on the threads themselves.
fn fully_confined(pid: u32) -> bool {
    let bnd = thread_field(pid, "CapBnd:", 16);
    let nnp = thread_field(pid, "NoNewPrivs:", 10);
    !bnd.is_empty() && bnd.iter().all(|b| b & !KEPT == 0) && nnp.iter().all(|n| *n == 1)
}

#[test]
fn capabilities_are_dropped_after_start_and_a_reload_still_works() {
    if !require_root("capabilities_are_dropped_after_start_and_a_reload_still_works") {
        return;
    }
    let lab = Lab::seed();
    let conf = seed("ch4-lb01.conf");
    let lb01 = lab.vrrpd(VRRPD, Host::Lb01, &conf);
    assert!(
        wait_until(Duration::from_secs(10), || lab
            .holds(Host::Lb01, "10.0.0.3")),
        "{}",
        lb01.logs()
    );
    assert!(
        wait_until(Duration::from_secs(5), || {
            lb01
            .stderr()
            .contains("capabilities: kept CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_NICE, CAP_IPC_LOCK, CAP_SETUID, CAP_SETGID, CAP_KILL;")
        }),
        "{}",
        lb01.logs()
    );
    // A backup too: its advert thread has nothing to send, and must drop all the same.
    let lb02 = lab.vrrpd(VRRPD, Host::Lb02, &seed("ch4-lb02.conf"));
    // Every thread catches up as it wakes (the daemon wakes the advert thread for it).
    for d in [&lb01, &lb02] {
        let all_dropped = wait_until(Duration::from_secs(5), || {
            let t = thread_caps(d.pid());
            !t.is_empty()
                && t.iter()
                    .all(|(_, eff, prm)| *eff & !KEPT == 0 && *prm & !KEPT == 0)
        });
        assert!(
            all_dropped,
            "{}: threads with more than the kept set: {:x?}",
            d.label(),
            thread_caps(d.pid())
        );
    }

    // A reload that adds an instance on eth1: XDP, sockets and the VIP, without CAP_BPF.
    let more = format!(
        "{conf}\nvrrp_instance VI_2 {{\n  state MASTER\n  interface eth1\n  virtual_router_id 51\n  priority 150\n  advert_int 1\n  virtual_ipaddress {{\n    172.16.1.100\n  }}\n}}\n"
    );
    lab.write("vrrpd-lb01.conf", &more);
    lb01.signal("HUP");
    assert!(
        wait_until(Duration::from_secs(10), || lab
            .holds(Host::Lb01, "172.16.1.100")),
        "the reloaded instance must come up\n{}",
        lb01.logs()
    );
    assert_eq!(
        lab.xdp_programs(Host::Lb01).len(),
        2,
        "XDP on eth0 and eth1"
    );
    let status = lab.ask(VRRPD, Host::Lb01, &["status", "--json"]);
    let v: Status = serde_json::from_slice(&status.stdout).expect("a status");
    let eth1 = v.instances.iter().find(|i| i.interface == "eth1");
    assert_eq!(eth1.map(|i| i.state), Some(State::Master), "{v:?}");
    assert_eq!(v.capabilities.len(), 7, "{v:?}");
    // Read from the threads after the reload, not from a list kept at start.
    let t = thread_caps(lb01.pid());
    assert!(
        t.iter()
            .all(|(_, eff, prm)| *eff & !KEPT == 0 && *prm & !KEPT == 0),
        "after the reload: {t:x?}"
    );
    assert!(
        fully_confined(lb01.pid()),
        "no script: the bounding set is trimmed and no_new_privs set, after the reload too: {:x?} {:?}",
        thread_field(lb01.pid(), "CapBnd:", 16),
        thread_field(lb01.pid(), "NoNewPrivs:", 10)
    );
    assert!(
        !lb01.stderr().contains("counting in the kernel failed"),
        "{}",
        lb01.logs()
    );
}

#[test]
fn the_control_socket_refuses_other_users() {
    if !require_root("the_control_socket_refuses_other_users") {
        return;
    }
    let lab = Lab::seed();
    let lb01 = lab.vrrpd(VRRPD, Host::Lb01, &seed("ch4-lb01.conf"));
    let sock = lab.control_socket(Host::Lb01);
    assert!(
        wait_until(Duration::from_secs(10), || sock.exists()),
        "{}",
        lb01.logs()
    );
    let as_nobody = || {
        Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                VRRPD,
                "status",
                "-s",
            ])
            .arg(&sock)
            .output()
            .expect("setpriv")
    };
    // The file mode (0600) stops it first; the lab's directory must let nobody reach the file.
    let _ = Command::new("chmod").args(["o+x"]).arg(lab.dir()).status();
    let out = as_nobody();
    assert!(!out.status.success(), "nobody may not ask");
    // Even with the mode opened up, the daemon checks the peer's credentials.
    let _ = Command::new("chmod").args(["0666"]).arg(&sock).status();
    let out = as_nobody();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "nobody may not ask even through 0666: {text}"
    );
    assert!(!text.contains("MASTER"), "{text}");
    assert!(
        wait_until(Duration::from_secs(3), || lb01
            .stderr()
            .contains("uid=65534")),
        "the refusal is logged with the uid\n{}",
        lb01.logs()
    );
}

/// A config with a script that runs as root keeps the full bounding set (the script gets it
/// back on exec, as keepalived's do) and no no_new_privs. One without scripts is confined for
/// good, and a reload that would add a root script is refused: the instance keeps its
/// priority and the script never runs.
#[test]
fn the_bounding_set_and_no_new_privs_follow_the_scripts() {
    if !require_root("the_bounding_set_and_no_new_privs_follow_the_scripts") {
        return;
    }
    let lab = Lab::seed();
    let ran = lab.dir().join("root-script-ran");
    let with_script = seed("ch4-lb02.conf").replace(
        "vrrp_instance VI_1 {",
        &format!(
            "vrrp_script mark {{\n  script \"/usr/bin/touch {}\"\n  interval 1\n  weight 10\n}}\n\nvrrp_instance VI_1 {{\n    track_script {{\n      mark\n    }}",
            ran.display()
        ),
    );
    let lb02 = lab.vrrpd(VRRPD, Host::Lb02, &with_script);
    assert!(
        wait_until(Duration::from_secs(10), || ran.exists()),
        "{}",
        lb02.logs()
    );
    let bnd = thread_field(lb02.pid(), "CapBnd:", 16);
    assert!(
        bnd.iter().all(|b| b & (1 << 21) != 0),
        "a root script needs the bounding set (CAP_SYS_ADMIN kept there): {bnd:x?}"
    );
    assert!(
        thread_field(lb02.pid(), "NoNewPrivs:", 10)
            .iter()
            .all(|n| *n == 0)
    );

    let conf = seed("ch4-lb01.conf");
    let lb01 = lab.vrrpd(VRRPD, Host::Lb01, &conf);
    assert!(
        wait_until(Duration::from_secs(10), || fully_confined(lb01.pid())),
        "{:x?} {:?}\n{}",
        thread_field(lb01.pid(), "CapBnd:", 16),
        thread_field(lb01.pid(), "NoNewPrivs:", 10),
        lb01.logs()
    );
    let ran01 = lab.dir().join("root-script-ran-on-lb01");
    let ran_path = ran.display().to_string();
    lab.write(
        "vrrpd-lb01.conf",
        &with_script
            .replace("priority 100", "priority 160")
            .replace(&ran_path, &ran01.display().to_string()),
    );
    lb01.signal("HUP");
    std::thread::sleep(Duration::from_secs(3));
    let v: Status = lab
        .ask_json(VRRPD, Host::Lb01, &["status"])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v.instances[0].priority.base, 150, "{}", lb01.logs());
    assert!(
        !ran01.exists(),
        "the refused config's root script ran on lb01"
    );
}

/// global_defs' `script_user` is part of how a check runs: a reload that sets it restarts the
/// runner under the new user (the script's own block did not change), and one that takes it
/// away brings root back.
#[test]
fn a_reload_that_changes_script_user_runs_the_checks_as_the_new_user() {
    if !require_root("a_reload_that_changes_script_user_runs_the_checks_as_the_new_user") {
        return;
    }
    use std::os::unix::fs::PermissionsExt as _;
    let lab = Lab::seed();
    // Readable and writable by nobody: the script and where it says who ran it.
    let dir = lab.dir().join("whoami");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    // One file per user that ran it: a file root wrote is not nobody's to overwrite.
    let script = dir.join("whoami.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\ntouch {}/ran-as-$(id -u)\n", dir.display()),
    )
    .expect("script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    // nobody must get through the lab's own directory to the script (its parents, /tmp and
    // /, let everyone through already; they are not ours to change).
    let mode = std::fs::metadata(lab.dir()).map_or(0, |m| m.permissions().mode());
    std::fs::set_permissions(lab.dir(), std::fs::Permissions::from_mode(mode | 0o011))
        .expect("chmod");
    let conf = |global: &str| {
        seed("ch4-lb02.conf")
            .replace("router_id lb02", &format!("router_id lb02\n{global}"))
            .replace(
                "vrrp_instance VI_1 {",
                &format!(
                    "vrrp_script whoami {{\n  script \"{}\"\n  interval 1\n}}\n\nvrrp_instance VI_1 {{\n    track_script {{\n      whoami\n    }}",
                    script.display()
                ),
            )
    };
    let ran_as = |uid: &str| dir.join(format!("ran-as-{uid}"));
    let lb02 = lab.vrrpd(VRRPD, Host::Lb02, &conf(""));
    assert!(
        wait_until(Duration::from_secs(10), || ran_as("0").exists()),
        "as root first\n{}",
        lb02.logs()
    );
    let nobody = nix::unistd::User::from_name("nobody")
        .ok()
        .flatten()
        .expect("a nobody user")
        .uid
        .to_string();
    lab.write("vrrpd-lb02.conf", &conf("  script_user nobody"));
    lb02.signal("HUP");
    assert!(
        wait_until(Duration::from_secs(10), || ran_as(&nobody).exists()),
        "script_user nobody did not take effect\n{}",
        lb02.logs()
    );
    // The check kept succeeding through the change: no FAULT.
    std::thread::sleep(Duration::from_secs(2));
    assert!(!lb02.logs().contains("FAULT"), "{}", lb02.logs());
    std::fs::remove_file(ran_as("0")).expect("rm");
    std::fs::remove_file(ran_as(&nobody)).expect("rm");
    lab.write("vrrpd-lb02.conf", &conf(""));
    lb02.signal("HUP");
    assert!(
        wait_until(Duration::from_secs(10), || ran_as("0").exists()),
        "back to root\n{}",
        lb02.logs()
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        !ran_as(&nobody).exists(),
        "the runner as nobody was not stopped"
    );
}
