//! Real host firewalls in a lab host's namespace, with the rulesets they write themselves:
//! firewalld (its nftables backend, on a D-Bus of its own) and ufw (iptables-nft). Their
//! configuration lives in the lab, never in the machine's /etc: firewalld reads a copy given
//! with `--system-config`, and ufw a copy that `ip netns exec` binds over /etc/ufw from
//! /etc/netns/NS/ufw, removed when the handle drops.

use std::{
    fs,
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use crate::{Host, Lab, Proc, wait_until};

/// firewalld running in one host's namespace. Dropping it stops both processes by pid.
pub struct Firewalld {
    ns: String,
    bus: String,
    daemon: Proc,
    _dbus: Proc,
}

impl Firewalld {
    /// `firewall-cmd ARGS` against this firewalld, as root on its host; panics if it fails.
    pub fn cmd(&self, args: &[&str]) -> String {
        tool(
            &self.ns,
            "firewall-cmd",
            args,
            &[("DBUS_SYSTEM_BUS_ADDRESS", &self.bus)],
            || self.daemon.logs(),
        )
    }

    pub fn logs(&self) -> String {
        self.daemon.logs()
    }
}

/// ufw enabled in one host's namespace. Dropping it removes its /etc/netns copy; the rules go
/// with the namespace.
pub struct Ufw {
    ns: String,
    etc: PathBuf,
}

impl Ufw {
    /// `ufw ARGS` in its host; panics if it fails.
    pub fn cmd(&self, args: &[&str]) -> String {
        tool(&self.ns, "ufw", args, &[], String::new)
    }
}

/// Runs a firewall's own tool in namespace `ns`; panics with its output (and `context`, the
/// daemon's log) if it fails.
fn tool(
    ns: &str,
    program: &str,
    args: &[&str],
    env: &[(&str, &str)],
    context: impl FnOnce() -> String,
) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, program])
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program} {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}): {}{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        context()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Drop for Ufw {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.etc);
        // /etc/netns itself only if this lab made it the last user.
        if let Some(parent) = self.etc.parent() {
            let _ = fs::remove_dir(parent);
        }
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    let out = Command::new("cp")
        .args(["-a", "--"])
        .arg(from)
        .arg(to)
        .output()
        .unwrap_or_else(|e| panic!("cp {}: {e}", from.display()));
    assert!(
        out.status.success(),
        "cp -a {} {}: {}",
        from.display(),
        to.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Lab {
    /// Starts firewalld (Debian's, default zone public) in `host`'s namespace, with its own
    /// D-Bus system bus and a copy of /etc/firewalld, and waits until it has written its
    /// ruleset.
    pub fn firewalld(&self, host: Host) -> Firewalld {
        let name = host.name();
        let dir = self.dir().join(format!("firewalld-{name}"));
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let etc = dir.join("etc");
        copy_dir(std::path::Path::new("/etc/firewalld"), &etc);
        let socket = dir.join("bus");
        let bus = format!("unix:path={}", socket.display());
        // A system bus that lets root own firewalld's name; firewalld asks polkit only for
        // callers that are not root.
        let conf = self.write(
            &format!("firewalld-{name}-bus.conf"),
            &format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>{bus}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="root"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"#
            ),
        );
        let ns = self.ns(host);
        let dbus = self.spawn_ns(
            &ns,
            &format!("dbus-{name}"),
            &[
                "dbus-daemon",
                "--nofork",
                "--nopidfile",
                &format!("--config-file={}", conf.display()),
            ],
        );
        assert!(
            wait_until(Duration::from_secs(10), || socket.exists()),
            "dbus-daemon for firewalld on {name} did not start: {}",
            dbus.logs()
        );
        let etc = etc.display().to_string();
        let daemon = self.spawn_ns_env(
            &ns,
            &format!("firewalld-{name}"),
            &[
                "firewalld",
                "--nofork",
                "--nopid",
                "--system-config",
                &etc,
                "--log-target",
                "console",
            ],
            &[("DBUS_SYSTEM_BUS_ADDRESS", bus.clone())],
        );
        let fw = Firewalld {
            ns,
            bus,
            daemon,
            _dbus: dbus,
        };
        let running = wait_until(Duration::from_secs(60), || {
            Command::new("ip")
                .args(["netns", "exec", &fw.ns, "firewall-cmd", "--state"])
                .env("DBUS_SYSTEM_BUS_ADDRESS", &fw.bus)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
        assert!(running, "firewalld on {name} did not start:\n{}", fw.logs());
        fw
    }

    /// Enables ufw (Debian's defaults: deny incoming) in `host`'s namespace, with its own copy
    /// of /etc/ufw.
    pub fn ufw(&self, host: Host) -> Ufw {
        let ns = self.ns(host);
        let etc = PathBuf::from("/etc/netns").join(&ns);
        fs::create_dir_all(&etc).unwrap_or_else(|e| panic!("{}: {e}", etc.display()));
        let ufw = Ufw { ns, etc };
        copy_dir(std::path::Path::new("/etc/ufw"), &ufw.etc.join("ufw"));
        ufw.cmd(&["--force", "enable"]);
        ufw
    }
}
