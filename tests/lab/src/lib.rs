//! The seed's lab (README.md, "The two commands") out of network namespaces, for the integration
//! tests and `cargo xtask lab`.
//!
//! ```text
//!            switch namespace: br0 (front 10.0.0.0/24)   br1 (back 172.16.1.0/24)
//!                               |    |    |                |    |    |    |
//!   client 10.0.0.10 (eth0) ----+    |    |                |    |    |    +---- web02 172.16.1.8 (eth1)
//!   lb01   10.0.0.5  (eth0) ---------+    |                |    |    +--------- web01 172.16.1.7 (eth1)
//!   lb02   10.0.0.6  (eth0) --------------+                |    +-------------- lb02  172.16.1.6 (eth1)
//!                                                          +------------------- lb01  172.16.1.5 (eth1)
//! ```
//!
//! Every namespace name carries a per-run prefix (`vl<pid><letter>-`); `Drop` kills the
//! processes the lab started (by pid, nothing else) and deletes the namespaces, also when a
//! test panics. Namespaces left by a run that was killed outright are removed by the next run
//! once their creator's pid is gone. No namespace has a route off the machine.

pub mod firewalls;
pub mod observer;

use std::{
    fs, io,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    thread,
    time::{Duration, Instant},
};

/// Root-only tests call this first. Without root they skip with one loud line; with
/// `VRRPD_REQUIRE_ROOT=1` (set by `.ci/run`) a skip is a failure.
pub fn require_root(test: &str) -> bool {
    if nix_is_root() {
        return true;
    }
    let msg = format!(
        "SKIPPED {test}: needs root (network namespaces, XDP); run as root or via `cargo xtask test`"
    );
    assert!(
        !std::env::var("VRRPD_REQUIRE_ROOT").is_ok_and(|v| v == "1"),
        "{msg}, and VRRPD_REQUIRE_ROOT=1 forbids skipping"
    );
    eprintln!("\n*** {msg} ***\n");
    false
}

fn nix_is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// The fixtures directory (tests/fixtures).
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// A host of the seed's lab.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host {
    Lb01,
    Lb02,
    Web01,
    Web02,
    Client,
}

impl Host {
    pub const ALL: [Self; 5] = [
        Self::Lb01,
        Self::Lb02,
        Self::Web01,
        Self::Web02,
        Self::Client,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Self::Lb01 => "lb01",
            Self::Lb02 => "lb02",
            Self::Web01 => "web01",
            Self::Web02 => "web02",
            Self::Client => "client",
        }
    }

    /// (interface, address/prefix) pairs, as in the README's table of the lab.
    pub const fn interfaces(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::Lb01 => &[("eth0", "10.0.0.5/24"), ("eth1", "172.16.1.5/24")],
            Self::Lb02 => &[("eth0", "10.0.0.6/24"), ("eth1", "172.16.1.6/24")],
            Self::Web01 => &[("eth1", "172.16.1.7/24")],
            Self::Web02 => &[("eth1", "172.16.1.8/24")],
            Self::Client => &[("eth0", "10.0.0.10/24")],
        }
    }

    /// IPv6 addresses on the front segment, for v3 IPv6 instances.
    pub const fn front_v6(self) -> Option<&'static str> {
        match self {
            Self::Lb01 => Some("fd00:10::5/64"),
            Self::Lb02 => Some("fd00:10::6/64"),
            Self::Client => Some("fd00:10::10/64"),
            Self::Web01 | Self::Web02 => None,
        }
    }
}

static LAB_COUNTER: AtomicU32 = AtomicU32::new(0);
/// Labs of one test binary run side by side (cargo's test threads), except a lab built with
/// `seed_alone`: a test that holds a timing bound at advert_int 0.01 (36 ms to master down)
/// runs with no other lab being built or torn down beside it. Namespace teardown and BPF
/// loads keep the kernel busy for tens of ms, and on 2 cores that defers the veth's softirq
/// (ksoftirqd is not real-time) past the bound: a flap the test would blame on vrrpd.
static TURNS: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// A lab's place among the labs of its process.
enum Turn {
    Shared(
        #[expect(dead_code, reason = "held, never read")] std::sync::RwLockReadGuard<'static, ()>,
    ),
    Alone(
        #[expect(dead_code, reason = "held, never read")] std::sync::RwLockWriteGuard<'static, ()>,
    ),
    Persistent,
}
const PREFIX_HEAD: &str = "vl";

/// The seed's lab. See the module documentation.
pub struct Lab {
    prefix: String,
    dir: PathBuf,
    namespaces: Vec<String>,
    /// A lab for `cargo xtask lab`: outlives this process, removed by `teardown`.
    keep: bool,
    /// Dropped after the namespaces are gone (fields drop after `Drop::drop`).
    _turn: Turn,
}

impl Lab {
    /// Builds all five hosts and the switch. Panics with the failing command on error (after
    /// removing what it built).
    pub fn seed() -> Self {
        let turn = TURNS
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Self::seed_in(Turn::Shared(turn))
    }

    /// As `seed`, with no other lab of this process alive beside it (see `TURNS`).
    pub fn seed_alone() -> Self {
        let turn = TURNS
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Self::seed_in(Turn::Alone(turn))
    }

    fn seed_in(turn: Turn) -> Self {
        remove_stale_namespaces();
        let n = LAB_COUNTER.fetch_add(1, Ordering::Relaxed);
        let letter = char::from(b'a' + u8::try_from(n % 26).unwrap_or(0));
        let prefix = format!("{PREFIX_HEAD}{}{letter}", std::process::id());
        let dir = std::env::temp_dir().join(format!("vrrpd-lab-{prefix}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let mut lab = Self {
            prefix,
            dir,
            namespaces: Vec::new(),
            keep: false,
            _turn: turn,
        };
        lab.build();
        lab
    }

    /// A lab that stays up after this process exits (`cargo xtask lab`), named `prefix`.
    /// An earlier lab of that name is torn down first.
    pub fn persistent(prefix: &str) -> Self {
        if let Some(old) = Self::existing(prefix) {
            old.teardown();
        }
        let dir = std::env::temp_dir().join(format!("vrrpd-lab-{prefix}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let mut lab = Self {
            prefix: prefix.to_owned(),
            dir,
            namespaces: Vec::new(),
            keep: true,
            _turn: Turn::Persistent,
        };
        lab.build();
        lab
    }

    /// The persistent lab named `prefix`, if its namespaces exist.
    pub fn existing(prefix: &str) -> Option<Self> {
        let all = ["sw"].into_iter().chain(Host::ALL.iter().map(|h| h.name()));
        let namespaces: Vec<String> = all
            .map(|h| format!("{prefix}-{h}"))
            .filter(|n| Path::new("/run/netns").join(n).exists())
            .collect();
        if namespaces.is_empty() {
            return None;
        }
        let dir = std::env::temp_dir().join(format!("vrrpd-lab-{prefix}"));
        Some(Self {
            prefix: prefix.to_owned(),
            dir,
            namespaces,
            keep: true,
            _turn: Turn::Persistent,
        })
    }

    /// Stops every process inside the lab's namespaces (`ip netns pids`: only the lab's own),
    /// then deletes the namespaces and the directory.
    pub fn teardown(mut self) {
        self.kill_all("TERM");
        // Let daemons send their priority-0 adverts and exit, then make sure.
        thread::sleep(Duration::from_millis(500));
        self.keep = false;
    }

    /// The pids of every process inside `host`'s namespace (`ip netns pids`).
    pub fn pids(&self, host: Host) -> Vec<u32> {
        Command::new("ip")
            .args(["netns", "pids", &self.ns(host)])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Signals every process inside the lab's namespaces (`ip netns pids`).
    fn kill_all(&self, signal: &str) {
        for ns in &self.namespaces {
            let out = Command::new("ip").args(["netns", "pids", ns]).output();
            let pids = out
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            for pid in pids.split_whitespace() {
                let _ = Command::new("kill")
                    .args([&format!("-{signal}"), pid])
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }

    fn build(&mut self) {
        let sw = self.ns_name("sw");
        self.add_ns(&sw);
        for br in ["br0", "br1"] {
            ip(&["-n", &sw, "link", "add", br, "type", "bridge"]);
            // Without a querier a snooping bridge would age out group members; the lab wants a
            // plain hub for multicast, as most LB segments are.
            ip(&[
                "-n",
                &sw,
                "link",
                "set",
                br,
                "type",
                "bridge",
                "mcast_snooping",
                "0",
            ]);
            ip(&["-n", &sw, "link", "set", br, "up"]);
        }
        for host in Host::ALL {
            let ns = self.ns(host);
            self.add_ns(&ns);
            sysctl(&ns, "net.ipv6.conf.all.accept_dad", "0");
            sysctl(&ns, "net.ipv6.conf.default.accept_dad", "0");
            for (ifname, addr) in host.interfaces() {
                let peer = format!("{}-{}", host.name(), &ifname[3..]);
                ip(&[
                    "link", "add", ifname, "netns", &ns, "type", "veth", "peer", "name", &peer,
                    "netns", &sw,
                ]);
                let bridge = if *ifname == "eth0" { "br0" } else { "br1" };
                ip(&["-n", &sw, "link", "set", &peer, "master", bridge, "up"]);
                ip(&["-n", &ns, "addr", "add", addr, "dev", ifname]);
                if *ifname == "eth0"
                    && let Some(v6) = host.front_v6()
                {
                    ip(&["-n", &ns, "addr", "add", v6, "dev", ifname, "nodad"]);
                }
                ip(&["-n", &ns, "link", "set", ifname, "up"]);
            }
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
    }

    fn add_ns(&mut self, name: &str) {
        ip(&["netns", "add", name]);
        self.namespaces.push(name.to_owned());
    }

    fn ns_name(&self, host: &str) -> String {
        format!("{}-{host}", self.prefix)
    }

    /// The namespace of `host`.
    pub fn ns(&self, host: Host) -> String {
        self.ns_name(host.name())
    }

    /// The switch namespace (bridges br0 front and br1 back, ports `<host>-<n>`).
    pub fn switch_ns(&self) -> String {
        self.ns_name("sw")
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A scratch directory that lives as long as the lab.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `content` to a file in the lab's directory and returns its path.
    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let path = self.dir.join(name);
        fs::write(&path, content).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        path
    }

    /// Runs a command in `host`'s namespace to completion.
    pub fn try_exec(&self, host: Host, args: &[&str]) -> io::Result<Output> {
        self.try_exec_ns(&self.ns(host), args)
    }

    pub fn try_exec_ns(&self, ns: &str, args: &[&str]) -> io::Result<Output> {
        Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .stdin(Stdio::null())
            .output()
    }

    /// Runs a command in `host`'s namespace; panics with its stderr if it fails.
    pub fn exec(&self, host: Host, args: &[&str]) -> String {
        self.exec_ns(&self.ns(host), args)
    }

    pub fn exec_ns(&self, ns: &str, args: &[&str]) -> String {
        let out = self
            .try_exec_ns(ns, args)
            .unwrap_or_else(|e| panic!("running {args:?} in {ns}: {e}"));
        assert!(
            out.status.success(),
            "{args:?} in {ns} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts a long-running process in `host`'s namespace, through `ip netns exec` (as
    /// OpenStack runs keepalived), with stdout and stderr going to files named after `label`.
    pub fn spawn(&self, host: Host, label: &str, args: &[&str]) -> Proc {
        self.spawn_ns(&self.ns(host), label, args)
    }

    pub fn spawn_ns(&self, ns: &str, label: &str, args: &[&str]) -> Proc {
        self.spawn_ns_env(ns, label, args, &[])
    }

    fn spawn_ns_env(&self, ns: &str, label: &str, args: &[&str], env: &[(&str, String)]) -> Proc {
        self.spawn_ns_in(ns, label, args, env, None)
    }

    /// As `spawn`, started inside the cgroup whose `cgroup.procs` is `procs` (it enters the
    /// cgroup before it execs, so that a real-time thread is created there, not moved there).
    pub fn spawn_in_cgroup(&self, host: Host, label: &str, args: &[&str], procs: &Path) -> Proc {
        self.spawn_ns_in(&self.ns(host), label, args, &[], Some(procs))
    }

    fn spawn_ns_in(
        &self,
        ns: &str,
        label: &str,
        args: &[&str],
        env: &[(&str, String)],
        cgroup: Option<&Path>,
    ) -> Proc {
        let stdout = self.dir.join(format!("{label}.out"));
        let stderr = self.dir.join(format!("{label}.err"));
        let open = |p: &Path| {
            fs::File::create(p).unwrap_or_else(|e| panic!("creating {}: {e}", p.display()))
        };
        let mut cmd = if let Some(procs) = cgroup {
            let mut c = Command::new("sh");
            c.args(["-c", "echo $$ > \"$0\" && exec \"$@\""])
                .arg(procs)
                .args(["ip", "netns", "exec", ns]);
            c
        } else {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]);
            c
        };
        let child = cmd
            .args(args)
            .stdin(Stdio::null())
            .stdout(open(&stdout))
            .stderr(open(&stderr))
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {args:?} in {ns}: {e}"));
        Proc {
            label: label.to_owned(),
            child: Some(child),
            stdout,
            stderr,
        }
    }

    /// Real keepalived (VRRP only) on `host` with `config`, pid files in the lab directory so
    /// that two of them on one machine do not collide.
    pub fn keepalived(&self, host: Host, config: &str) -> Proc {
        self.keepalived_in(host, config, None)
    }

    /// keepalived started inside a cgroup (its `cgroup.procs`), or not.
    pub fn keepalived_in(&self, host: Host, config: &str, cgroup: Option<&Path>) -> Proc {
        let name = host.name();
        let conf = self.write(&format!("keepalived-{name}.conf"), config);
        let pid = |kind: &str| {
            self.dir
                .join(format!("keepalived-{name}-{kind}.pid"))
                .display()
                .to_string()
        };
        let conf = conf.display().to_string();
        let (main_pid, vrrp_pid, checkers_pid) = (pid("main"), pid("vrrp"), pid("checkers"));
        self.spawn_ns_in(
            &self.ns(host),
            &format!("keepalived-{name}"),
            &[
                "keepalived",
                "--dont-fork",
                "--log-console",
                "--log-detail",
                "--vrrp",
                "--use-file",
                &conf,
                "--pid",
                &main_pid,
                "--vrrp_pid",
                &vrrp_pid,
                "--checkers_pid",
                &checkers_pid,
            ],
            // The seed's scripts call systemctl and ps: the lab's, as for vrrpd.
            &[(
                "PATH",
                format!(
                    "{}:{}",
                    self.shims(host).display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )],
            cgroup,
        )
    }

    /// nftables on `host` drops VRRP at `hook` ("input" or "output"), in table `inet lab`:
    /// the seed's chapter-5 firewall, with nftables.
    pub fn nft_drop_vrrp(&self, host: Host, hook: &str) {
        let chain = format!("{{ type filter hook {hook} priority 0 ; }}");
        self.exec(host, &["nft", "add", "table", "inet", "lab"]);
        self.exec(host, &["nft", "add", "chain", "inet", "lab", hook, &chain]);
        self.exec(
            host,
            &[
                "nft", "add", "rule", "inet", "lab", hook, "ip", "protocol", "vrrp", "counter",
                "drop",
            ],
        );
    }

    /// The switch drops VRRP that enters from `host`'s front port (table `bridge lab`): the
    /// network loses its adverts. `heal_switch` removes it.
    pub fn switch_drops_vrrp_from(&self, host: Host) {
        let sw = self.switch_ns();
        let port = format!("{}-0", host.name());
        self.exec_ns(&sw, &["nft", "add", "table", "bridge", "lab"]);
        self.exec_ns(
            &sw,
            &[
                "nft",
                "add",
                "chain",
                "bridge",
                "lab",
                "forward_vrrp",
                "{ type filter hook forward priority 0 ; }",
            ],
        );
        self.exec_ns(
            &sw,
            &[
                "nft",
                "add",
                "rule",
                "bridge",
                "lab",
                "forward_vrrp",
                "iifname",
                &port,
                "ip",
                "protocol",
                "vrrp",
                "drop",
            ],
        );
    }

    pub fn heal_switch(&self) {
        self.exec_ns(
            &self.switch_ns(),
            &["nft", "delete", "table", "bridge", "lab"],
        );
    }

    /// The addresses on `host`'s `ifname`, via `ip -j` (JSON, not text).
    pub fn addresses(&self, host: Host, ifname: &str) -> Vec<String> {
        let Ok(out) = self.try_exec(host, &["ip", "-j", "addr", "show", "dev", ifname]) else {
            return Vec::new();
        };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
            return Vec::new();
        };
        v.as_array()
            .into_iter()
            .flatten()
            .flat_map(|link| link["addr_info"].as_array().cloned().unwrap_or_default())
            .filter_map(|a| a["local"].as_str().map(str::to_owned))
            .collect()
    }

    /// Whether `host` holds `addr` on any interface (a VMAC's included).
    pub fn holds(&self, host: Host, addr: &str) -> bool {
        let Ok(out) = self.try_exec(host, &["ip", "-j", "addr", "show"]) else {
            return false;
        };
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .into_iter()
            .flatten()
            .flat_map(|link| link["addr_info"].as_array().cloned().unwrap_or_default())
            .any(|a| a["local"].as_str() == Some(addr))
    }

    /// The XDP program ids attached to `host`'s interfaces, via `ip -j link`.
    pub fn xdp_programs(&self, host: Host) -> Vec<u64> {
        let Ok(out) = self.try_exec(host, &["ip", "-j", "link", "show"]) else {
            return Vec::new();
        };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
            return Vec::new();
        };
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["xdp"]["prog"]["id"].as_u64())
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        // Anything still running inside the lab's namespaces was started by this lab.
        self.kill_all("KILL");
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
        if std::env::var_os("VRRPD_KEEP_LAB_LOGS").is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("ip {args:?}: {e}"));
    assert!(
        out.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

fn sysctl(ns: &str, key: &str, value: &str) {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "sh",
            "-c",
            &format!("echo {value} > {path}"),
        ])
        .output()
        .unwrap_or_else(|e| panic!("sysctl {key} in {ns}: {e}"));
    assert!(
        out.status.success(),
        "sysctl {key}={value} in {ns}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Deletes namespaces named `vl<pid><letter>-*` whose creating process is gone.
fn remove_stale_namespaces() {
    let Ok(entries) = fs::read_dir("/run/netns") else {
        return;
    };
    for e in entries.filter_map(Result::ok) {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(PREFIX_HEAD) else {
            continue;
        };
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let after = &rest[digits.len()..];
        let well_formed = !digits.is_empty()
            && after.len() > 2
            && after.as_bytes()[0].is_ascii_lowercase()
            && after.as_bytes()[1] == b'-';
        if well_formed && !Path::new("/proc").join(&digits).exists() {
            let _ = Command::new("ip")
                .args(["netns", "del", &name])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A process the lab started. Dropping it kills it (SIGKILL, by its own pid) and reaps it.
pub struct Proc {
    label: String,
    child: Option<Child>,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// Sends `signal` (e.g. "TERM", "KILL", "STOP", "CONT", "HUP") to this process only.
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().to_string();
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status();
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Waits up to `timeout` for it to exit; returns its exit code (None: still running or
    /// killed by a signal).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stdout(&self) -> String {
        fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// stdout and stderr, for assertion messages.
    pub fn logs(&self) -> String {
        format!(
            "--- {} stdout ---\n{}\n--- {} stderr ---\n{}",
            self.label,
            self.stdout(),
            self.label,
            self.stderr()
        )
    }

    /// Lets it run on after this handle (and this process) is gone; returns its pid.
    pub fn detach(mut self) -> u32 {
        let pid = self.pid();
        // Forgetting the Child neither kills nor reaps it; init adopts it when we exit.
        if let Some(child) = self.child.take() {
            std::mem::forget(child);
        }
        pid
    }

    /// Kills it now (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A ready nginx config for `host`: the seed's chapter 7. web01/web02 serve their host name
/// (www.conf, with the lab's directory for /code); lb01/lb02 proxy to them (proxy.conf).
impl Lab {
    pub fn nginx(&self, host: Host) -> Proc {
        let name = host.name();
        let dir = self.dir.display().to_string();
        let seed = |f: &str| {
            fs::read_to_string(fixtures().join("seed").join(f))
                .unwrap_or_else(|e| panic!("seed {f}: {e}"))
        };
        let site = match host {
            Host::Web01 | Host::Web02 => {
                let code = self.dir.join(format!("code-{name}"));
                fs::create_dir_all(&code).unwrap_or_else(|e| panic!("{}: {e}", code.display()));
                // The seed writes index.html but names www.html as the index: serve both.
                for f in ["index.html", "www.html"] {
                    fs::write(code.join(f), format!("{name}\n"))
                        .unwrap_or_else(|e| panic!("{f}: {e}"));
                }
                seed("ch7-web-www.conf").replace("/code", &code.display().to_string())
            }
            Host::Lb01 | Host::Lb02 => {
                fs::write(
                    self.dir.join("proxy_params"),
                    "proxy_set_header Host $http_host;\nproxy_set_header X-Real-IP $remote_addr;\nproxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\nproxy_set_header X-Forwarded-Proto $scheme;\n",
                )
                .unwrap_or_else(|e| panic!("proxy_params: {e}"));
                seed("ch7-proxy.conf").replace(
                    "include proxy_params;",
                    &format!("include {dir}/proxy_params;"),
                )
            }
            Host::Client => panic!("the client runs no nginx"),
        };
        let tmp = |k: &str| format!("{k}_temp_path {dir}/nginx-{name}-{k};");
        let conf = format!(
            "master_process off;\npid {dir}/nginx-{name}.pid;\nerror_log {dir}/nginx-{name}.error.log;\nevents {{}}\nhttp {{\n  access_log off;\n  {}\n  {}\n  {}\n  {}\n  {}\n{site}\n}}\n",
            tmp("client_body"),
            tmp("proxy"),
            tmp("fastcgi"),
            tmp("uwsgi"),
            tmp("scgi")
        );
        let path = self.write(&format!("nginx-{name}.conf"), &conf);
        let path = path.display().to_string();
        self.spawn(
            host,
            &format!("nginx-{name}"),
            &["nginx", "-c", &path, "-g", "daemon off;"],
        )
    }

    /// `vrrpd run` on `host` with `config`; `bin` is the test's CARGO_BIN_EXE_vrrpd. Its
    /// scripts find the host's `systemctl` and `ps` shims first on PATH.
    pub fn vrrpd(&self, bin: &str, host: Host, config: &str) -> Proc {
        self.vrrpd_with(bin, host, config, &[])
    }

    /// `vrrpd run` with extra arguments (e.g. `--metrics 127.0.0.1:9650`).
    pub fn vrrpd_with(&self, bin: &str, host: Host, config: &str, extra: &[&str]) -> Proc {
        self.vrrpd_in(bin, host, config, extra, None)
    }

    /// `vrrpd run` started inside a cgroup (its `cgroup.procs`), or not.
    pub fn vrrpd_in(
        &self,
        bin: &str,
        host: Host,
        config: &str,
        extra: &[&str],
        cgroup: Option<&Path>,
    ) -> Proc {
        let name = host.name();
        let conf = self
            .write(&format!("vrrpd-{name}.conf"), config)
            .display()
            .to_string();
        let pid = self
            .dir
            .join(format!("vrrpd-{name}.pid"))
            .display()
            .to_string();
        let path = format!(
            "{}:{}",
            self.shims(host).display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let control = self.control_socket(host).display().to_string();
        let dump = self
            .dir
            .join(format!("vrrpd-{name}.data"))
            .display()
            .to_string();
        let dump_dir = self.dump_dir(host).display().to_string();
        let mut args = vec![
            bin,
            "run",
            "-f",
            &conf,
            "-p",
            &pid,
            "--config-id",
            name,
            "--control",
            &control,
            "--dump-file",
            &dump,
            "--dump-dir",
            &dump_dir,
        ];
        args.extend_from_slice(extra);
        self.spawn_ns_in(
            &self.ns(host),
            &format!("vrrpd-{name}"),
            &args,
            &[("PATH", path)],
            cgroup,
        )
    }

    /// `vrrpd ARGS -s SOCKET` against `host`'s daemon (status, diagnose, ...), as a client
    /// outside the namespaces runs it; `bin` is the test's CARGO_BIN_EXE_vrrpd.
    pub fn ask(&self, bin: &str, host: Host, args: &[&str]) -> Output {
        Command::new(bin)
            .args(args)
            .arg("-s")
            .arg(self.control_socket(host))
            .output()
            .unwrap_or_else(|e| panic!("running {bin} {args:?}: {e}"))
    }

    /// Where `host`'s vrrpd writes keepalived's files (keepalived.data, .stats, .json).
    pub fn dump_dir(&self, host: Host) -> PathBuf {
        self.dir.join(format!("dump-{}", host.name()))
    }

    /// `vrrpd ARGS --json` against `host`'s daemon, read as `T` (the daemon's own typed
    /// answer: `Status`, `Diagnosis`); Err says what came back instead.
    pub fn ask_json<T: serde::de::DeserializeOwned>(
        &self,
        bin: &str,
        host: Host,
        args: &[&str],
    ) -> Result<T, String> {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.ask(bin, host, &all);
        serde_json::from_slice(&out.stdout).map_err(|e| {
            format!(
                "{}: vrrpd {args:?}: {e}: {}",
                host.name(),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    /// The control socket of `host`'s vrrpd (for `vrrpd status -s`).
    pub fn control_socket(&self, host: Host) -> PathBuf {
        self.dir.join(format!("vrrpd-{}.sock", host.name()))
    }

    /// The seed's scripts call `systemctl start nginx`, `systemctl stop keepalived` and count
    /// `ps -C nginx`. The lab's hosts share one PID namespace and no systemd runs there, so each
    /// host gets a directory with a small `systemctl` that starts and stops the lab's own nginx
    /// and vrrpd of that host, and a `ps -C NAME` that lists only that host's processes.
    pub fn shims(&self, host: Host) -> PathBuf {
        let name = host.name();
        let dir = self.dir.display().to_string();
        let bin = self.dir.join(format!("bin-{name}"));
        fs::create_dir_all(&bin).unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
        let own = "own() { for p in $(ip netns pids \"$(ip netns identify $$)\"); do [ \"$(cat /proc/$p/comm 2>/dev/null)\" = \"$1\" ] && echo $p; done; }";
        let systemctl = format!(
            r#"#!/bin/bash
# The lab's systemctl on {name}: start|stop|restart|status of the lab's nginx and vrrpd.
{own}
action=$1; unit=${{2%.service}}
case "$unit" in
  nginx)
    case "$action" in
      start) [ -n "$(own nginx)" ] && exit 0; exec nginx -c {dir}/nginx-{name}.conf -g 'daemon on;' ;;
      stop) for p in $(own nginx); do kill $p; done ;;
      restart) "$0" stop nginx; sleep 0.2; exec "$0" start nginx ;;
      status) [ -n "$(own nginx)" ] ;;
      *) echo "lab systemctl: $action nginx is not supported" >&2; exit 1 ;;
    esac ;;
  keepalived|vrrpd)
    case "$action" in
      stop) for f in {dir}/vrrpd-{name}.pid {dir}/keepalived-{name}-main.pid; do [ -f $f ] && kill -TERM "$(cat $f)"; done; exit 0 ;;
      status) for f in {dir}/vrrpd-{name}.pid {dir}/keepalived-{name}-main.pid; do [ -f $f ] && kill -0 "$(cat $f)" && exit 0; done; exit 1 ;;
      *) echo "lab systemctl: $action $unit is not supported" >&2; exit 1 ;;
    esac ;;
  *) echo "lab systemctl: unknown unit $unit" >&2; exit 1 ;;
esac
"#
        );
        let ps = format!(
            r#"#!/bin/bash
# The lab's ps on {name}: `ps -C NAME [--no-header]` lists only this host's processes.
{own}
if [ "$1" = "-C" ]; then
  [ "$3" = "--no-header" ] || echo "    PID TTY          TIME CMD"
  found=1
  for p in $(own "$2"); do echo "$p ?        00:00:00 $2"; found=0; done
  exit $found
fi
exec /bin/ps "$@"
"#
        );
        for (file, text) in [("systemctl", systemctl), ("ps", ps)] {
            let path = bin.join(file);
            fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let mode = <fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755);
            fs::set_permissions(&path, mode)
                .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
        }
        bin
    }

    /// An HTTP GET from the client; the body, or None.
    pub fn curl(&self, url: &str) -> Option<String> {
        let out = self
            .try_exec(Host::Client, &["curl", "-s", "-f", "-m", "2", url])
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// A packet socket on `host`'s `ifname` that sends whole Ethernet frames as they are
    /// (hostile-input tests: any TTL, checksum or length).
    pub fn injector(&self, host: Host, ifname: &str) -> Injector {
        let ns = self.ns(host);
        let ifname = ifname.to_owned();
        self.in_ns(host, move || {
            use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};
            let fd = socket(
                AddressFamily::Packet,
                SockType::Raw,
                SockFlag::SOCK_CLOEXEC,
                None,
            )
            .unwrap_or_else(|e| panic!("packet socket: {e}"));
            let addr = nix::ifaddrs::getifaddrs()
                .expect("getifaddrs")
                .filter(|i| i.interface_name == ifname)
                .find_map(|i| i.address.and_then(|a| a.as_link_addr().copied()))
                .unwrap_or_else(|| panic!("no link address for {ifname} in {ns}"));
            Injector { fd, addr }
        })
    }

    /// Runs `f` on a thread inside `host`'s network namespace and returns what it returns:
    /// sockets made there (packet, TCP) belong to that namespace for their whole life.
    pub fn in_ns<T: Send + 'static>(
        &self,
        host: Host,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        let ns_path = format!("/run/netns/{}", self.ns(host));
        thread::spawn(move || {
            let file = fs::File::open(&ns_path).unwrap_or_else(|e| panic!("{ns_path}: {e}"));
            nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
                .unwrap_or_else(|e| panic!("setns {ns_path}: {e}"));
            f()
        })
        .join()
        .expect("namespace thread")
    }

    /// A packet socket on `host` that sees every frame there (to time a forgery after a real
    /// advert).
    pub fn sniffer(&self, host: Host) -> Sniffer {
        self.in_ns(host, || {
            use nix::sys::socket::{AddressFamily, SockFlag, SockProtocol, SockType, socket};
            let fd = socket(
                AddressFamily::Packet,
                SockType::Raw,
                SockFlag::SOCK_CLOEXEC,
                SockProtocol::EthAll,
            )
            .unwrap_or_else(|e| panic!("packet socket: {e}"));
            let tv = nix::sys::time::TimeVal::new(0, 100_000);
            nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::ReceiveTimeout, &tv)
                .expect("SO_RCVTIMEO");
            Sniffer { fd }
        })
    }

    /// Starts pinging `target` from `host` every `interval`.
    pub fn prober(&self, host: Host, target: std::net::IpAddr, interval: Duration) -> Prober {
        Prober::start(&self.ns(host), target, interval)
    }
}

/// The seed's chapter-4 keepalived.conf for lb01 or lb02 (VRRPv2, advert_int 1, priorities 150
/// and 100), moved to VRRPv3 at `advert_int` seconds unless that is 1.
pub fn ch4_config(host: Host, advert_int: f64) -> String {
    let file = if host == Host::Lb01 {
        "ch4-lb01.conf"
    } else {
        "ch4-lb02.conf"
    };
    let path = fixtures().join("seed").join(file);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if (advert_int - 1.0).abs() < f64::EPSILON {
        return text;
    }
    text.replace("global_defs {", "global_defs {\n  vrrp_version 3")
        .replace("advert_int 1", &format!("advert_int {advert_int}"))
}

/// User plus system CPU time of `pid` so far, in clock ticks (USER_HZ, 100 a second).
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command's closing parenthesis: utime is the 12th, stime the 13th.
    let rest = stat.rsplit_once(')').map_or("", |r| r.1);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)
}

/// CPU time of every thread of `pid` (ns), from the scheduler's own accounting
/// (`/proc/PID/task/*/schedstat`): exact to the nanosecond, where `cpu_ticks` counts in 10 ms
/// ticks and cannot tell a daemon that idles at 0.05 % from one at 0.2 % in a few seconds.
/// Threads that ended during the measurement are not counted.
pub fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// A cgroup v1 `cpu` group under the machine's root one, for CPU limits; removed on drop,
/// once the processes started in it (by their `Proc`s, dropped first) are gone.
pub struct Cgroup(PathBuf);

impl Cgroup {
    /// `quota_us` of CPU time per `period_us`, and `rt_runtime_us` of real-time runtime (0: a
    /// SCHED_FIFO thread cannot be created in it). None where there is no cgroup v1 `cpu`.
    pub fn cpu_v1(name: &str, period_us: u32, quota_us: u32, rt_runtime_us: u32) -> Option<Self> {
        let root = Path::new("/sys/fs/cgroup/cpu");
        if !root.join("cpu.cfs_quota_us").exists() {
            return None;
        }
        let dir = root.join(name);
        let _ = fs::remove_dir(&dir);
        fs::create_dir(&dir).ok()?;
        let cg = Self(dir);
        let write = |f: &str, v: u32| fs::write(cg.0.join(f), v.to_string());
        write("cpu.cfs_period_us", period_us).ok()?;
        write("cpu.cfs_quota_us", quota_us).ok()?;
        write("cpu.rt_runtime_us", rt_runtime_us).ok()?;
        Some(cg)
    }

    /// Its `cgroup.procs`, for `Lab::vrrpd_in` and friends.
    pub fn procs(&self) -> PathBuf {
        self.0.join("cgroup.procs")
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        for _ in 0..50 {
            if fs::remove_dir(&self.0).is_ok() {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

/// See [`Lab::injector`].
pub struct Injector {
    fd: std::os::fd::OwnedFd,
    addr: nix::sys::socket::LinkAddr,
}

impl Injector {
    /// Sends one frame; false when the kernel refused it (e.g. a full queue during a flood).
    pub fn send(&self, frame: &[u8]) -> bool {
        use std::os::fd::AsRawFd as _;
        nix::sys::socket::sendto(
            self.fd.as_raw_fd(),
            frame,
            &self.addr,
            nix::sys::socket::MsgFlags::empty(),
        )
        .is_ok()
    }
}

/// See [`Lab::sniffer`].
pub struct Sniffer {
    fd: std::os::fd::OwnedFd,
}

impl Sniffer {
    /// Waits for the next IPv4 VRRP packet from `src` that arrives from now on (what queued
    /// before is skipped); false after `timeout`.
    pub fn next_vrrp_from(&self, src: std::net::Ipv4Addr, timeout: Duration) -> bool {
        use std::os::fd::AsRawFd as _;
        let mut buf = [0u8; 2048];
        while nix::sys::socket::recv(
            self.fd.as_raw_fd(),
            &mut buf,
            nix::sys::socket::MsgFlags::MSG_DONTWAIT,
        )
        .is_ok()
        {}
        self.vrrp_from(src, timeout, |_| true)
    }

    /// Whether an IPv4 VRRP packet from `src` with `priority` came since the sniffer was
    /// opened (what queued counts), waiting up to `timeout` for it.
    pub fn saw_priority(&self, src: std::net::Ipv4Addr, priority: u8, timeout: Duration) -> bool {
        self.vrrp_from(src, timeout, |vrrp| vrrp.get(2) == Some(&priority))
    }

    /// The next VRRP packet from `src` whose message (after an option-less IPv4 header)
    /// satisfies `want`, queued or arriving within `timeout`.
    fn vrrp_from(
        &self,
        src: std::net::Ipv4Addr,
        timeout: Duration,
        want: impl Fn(&[u8]) -> bool,
    ) -> bool {
        use std::os::fd::AsRawFd as _;
        let end = Instant::now() + timeout;
        let mut buf = [0u8; 2048];
        while Instant::now() < end {
            let Ok(n) = nix::sys::socket::recv(
                self.fd.as_raw_fd(),
                &mut buf,
                nix::sys::socket::MsgFlags::empty(),
            ) else {
                continue;
            };
            let f = &buf[..n];
            // Ethernet, IPv4 (0x0800), protocol 112, source address.
            if n >= 34
                && f[12..14] == [0x08, 0x00]
                && f[23] == 112
                && f[26..30] == src.octets()
                && want(&f[34..])
            {
                return true;
            }
        }
        false
    }
}

/// What a prober saw.
#[derive(Clone, Debug)]
pub struct ProbeReport {
    pub sent: u64,
    pub received: u64,
    /// The longest time without a reply, between two replies (the outage the client saw).
    pub max_gap: Duration,
}

/// ICMP echo every few milliseconds from inside a namespace (a thread that joined it), for
/// the failover gap a client sees. Replies are matched by sequence number.
pub struct Prober {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<thread::JoinHandle<ProbeReport>>,
}

impl Prober {
    fn start(ns: &str, target: std::net::IpAddr, interval: Duration) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&stop);
        let ns_path = format!("/run/netns/{ns}");
        let thread = thread::spawn(move || {
            let file = fs::File::open(&ns_path).unwrap_or_else(|e| panic!("{ns_path}: {e}"));
            nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
                .unwrap_or_else(|e| panic!("setns {ns_path}: {e}"));
            probe_loop(target, interval, &flag)
        });
        // Let the first probes go out before the caller injects a fault.
        thread::sleep(interval * 20);
        Self {
            stop,
            thread: Some(thread),
        }
    }

    pub fn stop(mut self) -> ProbeReport {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or(ProbeReport {
                sent: 0,
                received: 0,
                max_gap: Duration::MAX,
            })
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn probe_loop(
    target: std::net::IpAddr,
    interval: Duration,
    stop: &std::sync::atomic::AtomicBool,
) -> ProbeReport {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let v6 = target.is_ipv6();
    let (domain, proto, echo) = if v6 {
        (Domain::IPV6, Protocol::ICMPV6, 128u8)
    } else {
        (Domain::IPV4, Protocol::ICMPV4, 8u8)
    };
    let sock = Socket::new(domain, Type::RAW, Some(proto)).expect("raw ICMP socket (root)");
    sock.set_nonblocking(true).expect("nonblocking");
    let dst = SockAddr::from(std::net::SocketAddr::new(target, 0));
    let id: u16 = u16::try_from(std::process::id() & 0xffff).unwrap_or(1);
    let start = Instant::now();
    let mut sent = 0u64;
    let mut replies: Vec<Duration> = Vec::new();
    let mut next = start;
    let mut buf = [0u8; 1500];
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= next {
            let seq = u16::try_from(sent & 0xffff).unwrap_or(0);
            let mut pkt = vec![echo, 0, 0, 0];
            pkt.extend_from_slice(&id.to_be_bytes());
            pkt.extend_from_slice(&seq.to_be_bytes());
            if !v6 {
                let sum = internet_checksum(&pkt);
                pkt[2..4].copy_from_slice(&sum.to_be_bytes());
            }
            let _ = sock.send_to(&pkt, &dst);
            sent += 1;
            next += interval;
        }
        while let Ok(n) = std::io::Read::read(&mut &sock, &mut buf) {
            let bytes = &buf[..n];
            let icmp = if v6 {
                bytes
            } else {
                bytes
                    .get(usize::from(bytes.first().map_or(5, |b| b & 0x0f)) * 4..)
                    .unwrap_or(&[])
            };
            let reply = if v6 { 129 } else { 0 };
            if icmp.len() >= 8 && icmp[0] == reply && icmp[4..6] == id.to_be_bytes() {
                replies.push(start.elapsed());
            }
        }
        thread::sleep(Duration::from_micros(200));
    }
    let max_gap = replies
        .windows(2)
        .map(|w| w[1].checked_sub(w[0]).unwrap())
        .max()
        .unwrap_or(Duration::MAX);
    ProbeReport {
        sent,
        received: u64::try_from(replies.len()).unwrap_or(0),
        max_gap,
    }
}

/// The Internet checksum (RFC 1071) of `b`.
pub fn internet_checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = b
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !u16::try_from(sum).unwrap_or(u16::MAX)
}
