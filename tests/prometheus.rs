//! Issue 18, "metrics as Prometheus users expect": a real Prometheus server (Debian's package)
//! in the lab's client namespace scrapes both load balancers' vrrpd every second; its HTTP API
//! shows lb01 as master, then lb02 once lb01 stops, in vrrpd's own names and in
//! keepalived-exporter's. `promtool check metrics` passes on what each daemon serves, and no
//! series carries a label Prometheus had to rename (`exported_instance`).

use std::{
    fs,
    io::Write as _,
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::Value;
use vrrpd_lab::{Host, Lab, fixtures, require_root, wait_until};

const VRRPD: &str = env!("CARGO_BIN_EXE_vrrpd");
const VIP: &str = "10.0.0.3";
const LB01: &str = "10.0.0.5:9650";
const LB02: &str = "10.0.0.6:9650";

fn seed(name: &str) -> String {
    fs::read_to_string(fixtures().join("seed").join(name)).expect("seed fixture")
}

/// An instant query through Prometheus's HTTP API, from the client namespace: each result's
/// labels and value.
fn results(lab: &Lab, promql: &str) -> Vec<(Value, f64)> {
    let Ok(out) = lab.try_exec(
        Host::Client,
        &[
            "curl",
            "-s",
            "-f",
            "-m",
            "2",
            "-G",
            "http://127.0.0.1:9090/api/v1/query",
            "--data-urlencode",
            &format!("query={promql}"),
        ],
    ) else {
        return Vec::new();
    };
    let Ok(body) = serde_json::from_slice::<Value>(&out.stdout) else {
        return Vec::new();
    };
    body["data"]["result"]
        .as_array()
        .map(|results| {
            results
                .iter()
                .filter_map(|r| Some((r["metric"].clone(), r["value"][1].as_str()?.parse().ok()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// Each result's `instance` label (the scraped target) and value.
fn query(lab: &Lab, promql: &str) -> Vec<(String, f64)> {
    results(lab, promql)
        .into_iter()
        .filter_map(|(m, v)| Some((m["instance"].as_str()?.to_owned(), v)))
        .collect()
}

/// Whether Prometheus accepts `promql` (its API answers "success").
fn valid(lab: &Lab, promql: &str) -> bool {
    lab.try_exec(
        Host::Client,
        &[
            "curl",
            "-s",
            "-m",
            "2",
            "-G",
            "http://127.0.0.1:9090/api/v1/query",
            "--data-urlencode",
            &format!("query={promql}"),
        ],
    )
    .ok()
    .and_then(|out| serde_json::from_slice::<Value>(&out.stdout).ok())
    .is_some_and(|v| v["status"] == "success")
}

/// The value `promql` has for `target`, if Prometheus has one.
fn value_for(lab: &Lab, promql: &str, target: &str) -> Option<f64> {
    query(lab, promql)
        .into_iter()
        .find_map(|(t, v)| (t == target).then_some(v))
}

fn promtool_check(body: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package, installed by `cargo xtask setup`)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn prometheus_scrapes_both_daemons_and_sees_the_failover() {
    if !require_root("prometheus_scrapes_both_daemons_and_sees_the_failover") {
        return;
    }
    let lab = Lab::seed();
    let mut lb01 = lab.vrrpd_with(
        VRRPD,
        Host::Lb01,
        &seed("ch4-lb01.conf"),
        &["--metrics", LB01],
    );
    let lb02 = lab.vrrpd_with(
        VRRPD,
        Host::Lb02,
        &seed("ch4-lb02.conf"),
        &["--metrics", LB02],
    );
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)
            && !lab.holds(Host::Lb02, VIP)),
        "lb01 never became the only master\n{}",
        lb01.logs()
    );

    let mut families = Vec::new();
    for target in [LB01, LB02] {
        let body = lab
            .curl(&format!("http://{target}/metrics"))
            .unwrap_or_else(|| panic!("no metrics from {target}"));
        let (clean, said) = promtool_check(&body);
        assert!(clean, "promtool check metrics on {target}: {said}\n{body}");
        assert!(
            said.trim().is_empty(),
            "promtool has remarks on {target}: {said}"
        );
        families.extend(
            body.lines()
                .filter_map(|l| l.strip_prefix("# TYPE "))
                .filter_map(|l| l.split_whitespace().next())
                .map(str::to_owned),
        );
    }

    let config = lab.write(
        "prometheus.yml",
        &format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: vrrpd\n    static_configs:\n      - targets: ['{LB01}', '{LB02}']\n"
        ),
    );
    let storage = lab.dir().join("prometheus-data");
    let config_arg = format!("--config.file={}", config.display());
    let storage_arg = format!("--storage.tsdb.path={}", storage.display());
    let prometheus = lab.spawn(
        Host::Client,
        "prometheus",
        &[
            "prometheus",
            &config_arg,
            &storage_arg,
            "--web.listen-address=127.0.0.1:9090",
        ],
    );
    assert!(
        wait_until(Duration::from_secs(30), || {
            value_for(&lab, "vrrpd_instance_master", LB01) == Some(1.0)
                && value_for(&lab, "vrrpd_instance_master", LB02) == Some(0.0)
        }),
        "Prometheus never showed lb01 as master: {:?}\n{}",
        query(&lab, "vrrpd_instance_master"),
        prometheus.logs()
    );
    // keepalived-exporter's names: MASTER is 2, BACKUP 1, one series per VIP.
    assert_eq!(
        value_for(
            &lab,
            "keepalived_vrrp_state{iname=\"VI_1\",ip_address=\"10.0.0.3\"}",
            LB01
        ),
        Some(2.0)
    );
    assert_eq!(
        value_for(
            &lab,
            "keepalived_vrrp_state{iname=\"VI_1\",ip_address=\"10.0.0.3\"}",
            LB02
        ),
        Some(1.0)
    );
    // Nothing clashed with the `instance` label Prometheus attaches.
    assert!(
        query(&lab, "{exported_instance!=\"\"}").is_empty(),
        "{:?}",
        query(&lab, "{exported_instance!=\"\"}")
    );
    assert!(
        query(&lab, "vrrpd_instance_master{vrrp_instance=\"VI_1\"}").len() == 2,
        "{:?}",
        query(&lab, "vrrpd_instance_master")
    );

    // The shipped dashboard: every query is valid PromQL for this server and names only
    // families the daemons serve, and its core panels show data.
    let dashboard: Value = serde_json::from_str(
        &fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/grafana/vrrpd.json"),
        )
        .expect("dist/grafana/vrrpd.json"),
    )
    .expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10, "{} panels", panels.len());
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or("?");
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            let promql = expr
                .replace("$vrrp_instance", ".*")
                .replace("$instance", ".*")
                .replace("$__rate_interval", "1m");
            assert!(
                valid(&lab, &promql),
                "panel {title:?}: Prometheus refuses {promql}"
            );
            for name in promql
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("vrrpd_"))
            {
                assert!(
                    families.iter().any(|f| f == name),
                    "panel {title:?} uses {name}, which vrrpd does not serve"
                );
            }
        }
    }
    // The split-brain panel's query: one master for VRID 50 across both routers.
    let masters = results(
        &lab,
        "sum by (interface, vrid) (vrrpd_instance_master{instance=~\".*\"})",
    );
    assert_eq!(masters.len(), 1, "{masters:?}");
    assert_eq!(masters[0].0["vrid"], "50");
    assert!((masters[0].1 - 1.0).abs() < f64::EPSILON, "{masters:?}");

    // lb01 stops (priority 0, VIP removed): Prometheus sees its target go down and lb02 take
    // over, in both sets of names.
    lb01.signal("TERM");
    assert!(lb01.wait_exit(Duration::from_secs(10)).is_some());
    assert!(
        wait_until(Duration::from_secs(20), || {
            value_for(&lab, "up", LB01) == Some(0.0)
                && value_for(&lab, "vrrpd_instance_master", LB02) == Some(1.0)
                && value_for(&lab, "keepalived_vrrp_state", LB02) == Some(2.0)
        }),
        "Prometheus never saw the failover: up {:?}, master {:?}\n{}",
        query(&lab, "up"),
        query(&lab, "vrrpd_instance_master"),
        lb02.logs()
    );
    assert!(lab.holds(Host::Lb02, VIP));
    // A transition counted where an alert on keepalived-exporter's counter looks for it.
    assert!(
        value_for(
            &lab,
            "sum by (instance) (keepalived_become_master_total)",
            LB02
        )
        .is_some_and(|n| n >= 1.0),
        "{:?}",
        query(&lab, "keepalived_become_master_total")
    );
}
