//! `cargo xtask lab`: the seed's lab with vrrpd on both load balancers, left running.
//!
//! `lab` (or `lab up`) builds it; `lab status` shows it; `lab failover` stops lb01's vrrpd,
//! shows the VIP on lb02 and the client's curl answering, then brings lb01 back; `lab down`
//! removes it.

use std::{
    fs,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use vrrpd_lab::{Host, Lab, fixtures, wait_until};

const PREFIX: &str = "vrlab";
const VIP: &str = "10.0.0.3";

fn seed(name: &str) -> anyhow::Result<String> {
    let path = fixtures().join("seed").join(name);
    fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

fn holder(lab: &Lab) -> &'static str {
    if lab.holds(Host::Lb01, VIP) && lab.holds(Host::Lb02, VIP) {
        "lb01 AND lb02 (split brain!)"
    } else if lab.holds(Host::Lb01, VIP) {
        "lb01"
    } else if lab.holds(Host::Lb02, VIP) {
        "lb02"
    } else {
        "nobody"
    }
}

fn curl_line(lab: &Lab) -> String {
    match lab.curl(&format!("http://{VIP}/")) {
        Some(body) => format!("client$ curl http://{VIP}/  ->  {}", body.trim()),
        None => format!("client$ curl http://{VIP}/  ->  (no answer)"),
    }
}

pub fn run(args: &[String], vrrpd: &Path) -> anyhow::Result<()> {
    match args.first().map(String::as_str) {
        None | Some("up") => up(vrrpd),
        Some("status") => status(),
        Some("failover") => failover(vrrpd),
        Some("down") => {
            match Lab::existing(PREFIX) {
                Some(lab) => {
                    lab.teardown();
                    let _ = fs::remove_dir_all(
                        std::env::temp_dir().join(format!("vrrpd-lab-{PREFIX}")),
                    );
                    println!("lab removed");
                }
                None => println!("no lab is running"),
            }
            Ok(())
        }
        Some(other) => bail!("unknown lab command {other:?}: up, status, failover, down"),
    }
}

fn start_vrrpd(lab: &Lab, vrrpd: &Path, host: Host) -> anyhow::Result<u32> {
    let conf = seed(&format!("ch7-{}.conf", host.name()))?;
    // Each load balancer's namespace has its own loopback: both can use the same port.
    Ok(lab
        .vrrpd_with(
            &vrrpd.display().to_string(),
            host,
            &conf,
            &["--metrics", "127.0.0.1:9650"],
        )
        .detach())
}

fn up(vrrpd: &Path) -> anyhow::Result<()> {
    let lab = Lab::persistent(PREFIX);
    for h in [Host::Web01, Host::Web02, Host::Lb01, Host::Lb02] {
        lab.nginx(h).detach();
    }
    let p1 = start_vrrpd(&lab, vrrpd, Host::Lb01)?;
    let p2 = start_vrrpd(&lab, vrrpd, Host::Lb02)?;
    if !wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)) {
        bail!("lb01 did not take the VIP; logs in {}", lab.dir().display());
    }
    wait_until(Duration::from_secs(5), || {
        lab.curl(&format!("http://{VIP}/")).is_some()
    });
    println!(
        "The seed's lab is up (namespaces {PREFIX}-*; logs and configs in {}):",
        lab.dir().display()
    );
    println!();
    println!("  host    eth0        eth1         runs");
    println!(
        "  lb01    10.0.0.5    172.16.1.5   vrrpd (pid {p1}, ch7-lb01.conf: MASTER 150), nginx proxy"
    );
    println!(
        "  lb02    10.0.0.6    172.16.1.6   vrrpd (pid {p2}, ch7-lb02.conf: BACKUP 100), nginx proxy"
    );
    println!("  web01               172.16.1.7   nginx");
    println!("  web02               172.16.1.8   nginx");
    println!("  client  10.0.0.10                curl");
    println!();
    println!("VIP {VIP} is on {}", holder(&lab));
    for _ in 0..2 {
        println!("{}", curl_line(&lab));
    }
    println!();
    let dir = lab.dir().display();
    let bin = vrrpd.display();
    println!("Next: cargo xtask lab failover | cargo xtask lab status | cargo xtask lab down");
    println!("Look inside:");
    println!(
        "  {bin} status -s {dir}/vrrpd-lb02.sock          # instances, priorities, master, timers"
    );
    println!("  {bin} watch -s {dir}/vrrpd-lb02.sock           # live per-source view (Ctrl-C)");
    println!("  {bin} diagnose -s {dir}/vrrpd-lb02.sock        # what is wrong, and the fix");
    println!("  ip netns exec {PREFIX}-lb01 curl -s 127.0.0.1:9650/metrics   # Prometheus");
    println!(
        "  {bin} capture -s {dir}/vrrpd-lb02.sock -w /tmp/vrrp.pcap -c 5 && tshark -r /tmp/vrrp.pcap"
    );
    println!("  ip netns exec {PREFIX}-lb01 ip addr show eth0;  less {dir}/vrrpd-lb01.err");
    Ok(())
}

fn status() -> anyhow::Result<()> {
    let Some(lab) = Lab::existing(PREFIX) else {
        println!("no lab is running: cargo xtask lab");
        return Ok(());
    };
    println!("VIP {VIP} is on {}", holder(&lab));
    println!("{}", curl_line(&lab));
    for h in [Host::Lb01, Host::Lb02] {
        let log = fs::read_to_string(lab.dir().join(format!("vrrpd-{}.err", h.name())))
            .unwrap_or_default();
        let last = log
            .lines()
            .rfind(|l| l.contains("Entering"))
            .unwrap_or("(no state yet)");
        println!("{}: {}", h.name(), last.trim());
    }
    Ok(())
}

fn failover(vrrpd: &Path) -> anyhow::Result<()> {
    let Some(lab) = Lab::existing(PREFIX) else {
        bail!("no lab is running: cargo xtask lab")
    };
    println!("VIP {VIP} is on {}; {}", holder(&lab), curl_line(&lab));
    let pid_file = lab.dir().join("vrrpd-lb01.pid");
    let pid = fs::read_to_string(&pid_file)
        .with_context(|| format!("{}: is lb01's vrrpd running?", pid_file.display()))?;
    println!(
        "stopping lb01's vrrpd (pid {}): it sends priority 0 and removes the VIP",
        pid.trim()
    );
    std::process::Command::new("kill")
        .args(["-TERM", pid.trim()])
        .status()?;
    let t = Instant::now();
    if !wait_until(Duration::from_secs(10), || lab.holds(Host::Lb02, VIP)) {
        bail!("lb02 did not take the VIP");
    }
    println!(
        "VIP {VIP} is on {} after {:.2} s",
        holder(&lab),
        t.elapsed().as_secs_f64()
    );
    wait_until(Duration::from_secs(3), || {
        lab.curl(&format!("http://{VIP}/")).is_some()
    });
    println!("{}", curl_line(&lab));
    println!("starting lb01's vrrpd again (state MASTER, priority 150: it preempts)");
    start_vrrpd(&lab, vrrpd, Host::Lb01)?;
    let t = Instant::now();
    if !wait_until(Duration::from_secs(10), || {
        lab.holds(Host::Lb01, VIP) && !lab.holds(Host::Lb02, VIP)
    }) {
        bail!("lb01 did not take the VIP back");
    }
    println!(
        "VIP {VIP} is back on {} after {:.2} s",
        holder(&lab),
        t.elapsed().as_secs_f64()
    );
    wait_until(Duration::from_secs(3), || {
        lab.curl(&format!("http://{VIP}/")).is_some()
    });
    println!("{}", curl_line(&lab));
    Ok(())
}
