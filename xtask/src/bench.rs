//! `cargo xtask bench`: measurements in the seed's lab. Only `latency` exists so far; the
//! side-by-side benchmarks against keepalived are issue 10.

use std::{fs, path::Path, time::Duration};

use anyhow::{Context as _, bail};
use vrrpd_lab::{Host, Lab, wait_until};

pub fn run(args: &[String], vrrpd: &Path) -> anyhow::Result<()> {
    if let Some("latency") = args.first().map(String::as_str) {
        latency(
            vrrpd,
            args.get(1).and_then(|n| n.parse().ok()).unwrap_or(1000),
        )
    } else {
        println!(
            "cargo xtask bench latency [N]: XDP-to-userspace latency of N adverts (default 1000)"
        );
        println!(
            "The benchmarks against keepalived (failover gaps, flaps under load, XDP cost, CPU/RSS) are not written yet (issue 10)."
        );
        Ok(())
    }
}

/// keepalived on lb01 sends VRRPv3 adverts every 10 ms; `vrrpd watch` on lb02 reads N of them
/// and reports, per advert, the time from the XDP program's kernel stamp to the moment
/// userspace read the record.
fn latency(vrrpd: &Path, n: usize) -> anyhow::Result<()> {
    let lab = Lab::seed();
    let conf = "global_defs {\n  vrrp_version 3\n}\nvrrp_instance VI_1 {\n  state MASTER\n  interface eth0\n  virtual_router_id 50\n  priority 150\n  advert_int 0.01\n  virtual_ipaddress {\n    10.0.0.3\n  }\n}\n";
    let _keepalived = lab.keepalived(Host::Lb01, conf);
    let count = n.to_string();
    let mut watch = lab.spawn(
        Host::Lb02,
        "watch",
        &[
            &vrrpd.display().to_string(),
            "watch",
            "-i",
            "eth0",
            "--json",
            "-c",
            &count,
        ],
    );
    let limit = Duration::from_secs(30 + u64::try_from(n / 50).unwrap_or(0));
    if !wait_until(limit, || !watch.running()) {
        bail!(
            "watch did not see {n} adverts in {limit:?}:\n{}",
            watch.logs()
        );
    }
    let mut delays: Vec<f64> = watch
        .stdout()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["read_delay_us"].as_f64())
        .collect();
    if delays.len() < n {
        bail!("only {} adverts read:\n{}", delays.len(), watch.logs());
    }
    delays.sort_by(f64::total_cmp);
    let pct = |p: f64| delays[((delays.len() - 1) as f64 * p).round() as usize];
    let report = format!(
        "XDP stamp -> userspace read, {} adverts (keepalived v3 advert_int 0.01 -> vrrpd watch, debug build: {}):\n  p50 {:.1} us   p99 {:.1} us   max {:.1} us\n",
        delays.len(),
        !vrrpd.display().to_string().contains("release"),
        pct(0.5),
        pct(0.99),
        delays[delays.len() - 1]
    );
    print!("{report}");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    fs::create_dir_all(&out).context("target/bench")?;
    fs::write(out.join("latency.txt"), report).context("target/bench/latency.txt")?;
    Ok(())
}
