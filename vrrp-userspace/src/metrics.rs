//! Prometheus metrics (`vrrpd run --metrics 127.0.0.1:9650`): the text exposition format,
//! rendered from the same snapshot as `vrrpd status`. A minimal HTTP/1.1 responder: one
//! request per connection, bounded in size and time, so a scraper cannot stall the daemon.

use std::{fmt::Write as _, net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpListener,
    sync::{mpsc, oneshot},
};
use tracing::{info, warn};

use crate::control::{Command, Pending};

/// Serves `/metrics` on `addr`, asking the main loop through `tx` for each scrape.
pub async fn serve(addr: SocketAddr, tx: mpsc::Sender<Pending>) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    info!(%addr, "Prometheus metrics on /metrics");
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let work = async {
                    let mut buf = [0u8; 2048];
                    let n = stream.read(&mut buf).await.unwrap_or(0);
                    let request = String::from_utf8_lossy(&buf[..n]);
                    let path = request.split_whitespace().nth(1).unwrap_or("/");
                    let (status, body) = if path == "/metrics" {
                        let (reply, rx) = oneshot::channel();
                        if tx
                            .send(Pending {
                                command: Command::Status,
                                reply,
                                stream: None,
                            })
                            .await
                            .is_err()
                        {
                            return;
                        }
                        match rx.await {
                            Ok(v) => ("200 OK", render(&v)),
                            Err(_) => ("503 Service Unavailable", String::from("stopping\n")),
                        }
                    } else {
                        ("404 Not Found", String::from("try /metrics\n"))
                    };
                    let head = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.write_all(body.as_bytes()).await;
                    let _ = stream.shutdown().await;
                };
                if tokio::time::timeout(Duration::from_secs(5), work)
                    .await
                    .is_err()
                {
                    warn!("metrics client too slow");
                }
            });
        }
    });
    Ok(())
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The exposition text for a `status` snapshot.
pub fn render(status: &serde_json::Value) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let instances = status["instances"].as_array().cloned().unwrap_or_default();
    let id = |i: &serde_json::Value| {
        format!(
            "instance=\"{}\",interface=\"{}\",vrid=\"{}\"",
            label(i["name"].as_str().unwrap_or("")),
            label(i["interface"].as_str().unwrap_or("")),
            i["vrid"]
        )
    };
    let per = |f: &dyn Fn(&serde_json::Value) -> f64| {
        instances
            .iter()
            .map(|i| (format!("{{{}}}", id(i)), f(i)))
            .collect::<Vec<_>>()
    };
    let num = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0);
    family(
        "vrrpd_instance_master",
        "gauge",
        "1 while the instance is MASTER.",
        per(&|i| f64::from(u8::from(i["state"] == "MASTER"))),
    );
    let mut states = Vec::new();
    for i in &instances {
        for s in ["INIT", "BACKUP", "MASTER", "FAULT"] {
            states.push((
                format!("{{{},state=\"{s}\"}}", id(i)),
                f64::from(u8::from(i["state"] == s)),
            ));
        }
    }
    family(
        "vrrpd_instance_state",
        "gauge",
        "1 for the instance's current state.",
        states,
    );
    family(
        "vrrpd_instance_priority",
        "gauge",
        "Effective priority (base plus tracking).",
        per(&|i| num(&i["priority"]["effective"])),
    );
    family(
        "vrrpd_instance_base_priority",
        "gauge",
        "Configured priority.",
        per(&|i| num(&i["priority"]["base"])),
    );
    family(
        "vrrpd_instance_state_seconds",
        "gauge",
        "Seconds in the current state.",
        per(&|i| num(&i["since_s"])),
    );
    family(
        "vrrpd_master_down_interval_seconds",
        "gauge",
        "Master_Down_Interval (RFC 5798 6.1).",
        per(&|i| num(&i["master_down_interval_s"])),
    );
    family(
        "vrrpd_adverts_received_total",
        "counter",
        "Adverts received and acted on.",
        per(&|i| num(&i["counters"]["adverts_received"])),
    );
    family(
        "vrrpd_adverts_sent_total",
        "counter",
        "Adverts sent.",
        per(&|i| num(&i["counters"]["adverts_sent"])),
    );
    family(
        "vrrpd_adverts_late_total",
        "counter",
        "Periodic adverts that left more than a quarter interval after their deadline.",
        per(&|i| num(&i["counters"]["adverts_late"])),
    );
    family(
        "vrrpd_transitions_to_master_total",
        "counter",
        "Transitions to MASTER.",
        per(&|i| num(&i["counters"]["became_master"])),
    );
    let mut dropped = Vec::new();
    for i in &instances {
        for (reason, n) in i["counters"]["dropped"].as_object().into_iter().flatten() {
            dropped.push((
                format!("{{{},reason=\"{}\"}}", id(i), label(reason)),
                num(n),
            ));
        }
    }
    family(
        "vrrpd_adverts_dropped_total",
        "counter",
        "Adverts not acted on, by reason.",
        dropped,
    );
    let mut scripts = Vec::new();
    for i in &instances {
        for t in i["priority"]["tracking"].as_array().into_iter().flatten() {
            if let Some(ok) = t["ok"].as_bool() {
                scripts.push((
                    format!(
                        "{{{},kind=\"{}\",name=\"{}\"}}",
                        id(i),
                        label(t["kind"].as_str().unwrap_or("")),
                        label(t["name"].as_str().unwrap_or(""))
                    ),
                    f64::from(u8::from(ok)),
                ));
            }
        }
    }
    family(
        "vrrpd_track_up",
        "gauge",
        "1 while a tracked script succeeds or a tracked interface is up.",
        scripts,
    );
    let sources = status["sources"].as_array().cloned().unwrap_or_default();
    let sid = |s: &serde_json::Value| {
        format!(
            "{{interface=\"{}\",vrid=\"{}\",source=\"{}\"}}",
            label(s["interface"].as_str().unwrap_or("")),
            s["vrid"],
            label(s["source"].as_str().unwrap_or(""))
        )
    };
    let per_source = |field: &str| {
        sources
            .iter()
            .filter(|s| !s[field].is_null())
            .map(|s| (sid(s), num(&s[field])))
            .collect::<Vec<_>>()
    };
    family(
        "vrrpd_peer_last_advert_seconds",
        "gauge",
        "Seconds since the last advert from a source (XDP stamp).",
        per_source("last_seen_s"),
    );
    family(
        "vrrpd_peer_advert_interval_seconds",
        "gauge",
        "Mean gap between a source's adverts (last 64).",
        per_source("interval_mean_s"),
    );
    family(
        "vrrpd_peer_advert_jitter_seconds",
        "gauge",
        "Standard deviation of those gaps.",
        per_source("interval_jitter_s"),
    );
    family(
        "vrrpd_peer_adverts_wire_total",
        "counter",
        "A source's adverts seen by XDP, before netfilter.",
        per_source("wire"),
    );
    family(
        "vrrpd_peer_adverts_socket_total",
        "counter",
        "Packets from a source that reached the VRRP socket, after netfilter.",
        per_source("socket"),
    );
    let findings = status["findings"].as_array().cloned().unwrap_or_default();
    family(
        "vrrpd_finding",
        "gauge",
        "1 for each problem `vrrpd diagnose` reports now (kind: lost-after-xdp, dropped-on-output, lost-on-network, auth-mismatch, ...).",
        findings
            .iter()
            .map(|f| {
                (
                    format!(
                        "{{kind=\"{}\",interface=\"{}\",vrid=\"{}\",source=\"{}\"}}",
                        label(f["kind"].as_str().unwrap_or("")),
                        label(f["ifname"].as_str().unwrap_or("")),
                        f["vrid"],
                        f["source"].as_str().unwrap_or("")
                    ),
                    1.0,
                )
            })
            .collect(),
    );
    let xdp = status["xdp"].as_object().cloned().unwrap_or_default();
    family(
        "vrrpd_xdp_packets_total",
        "counter",
        "The XDP program's counters, by name.",
        xdp.iter()
            .map(|(k, v)| (format!("{{counter=\"{}\"}}", label(k)), num(v)))
            .collect(),
    );
    family(
        "vrrpd_uptime_seconds",
        "gauge",
        "Seconds since vrrpd started.",
        vec![(String::new(), num(&status["uptime_s"]))],
    );
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_help_type_and_samples() {
        let v = serde_json::json!({"uptime_s": 3.5, "xdp": {"frames": 10}, "instances": [{"name": "VI_1", "interface": "eth0", "vrid": 50, "state": "MASTER", "since_s": 1.0, "master_down_interval_s": 3.609375, "priority": {"base": 150, "effective": 200, "tracking": [{"kind": "script", "name": "check_web", "ok": true}]}, "counters": {"adverts_received": 0, "adverts_sent": 4, "became_master": 1, "dropped": {"AuthMismatch": 2}}}]});
        let text = super::render(&v);
        assert!(text.contains("# TYPE vrrpd_instance_master gauge\nvrrpd_instance_master{instance=\"VI_1\",interface=\"eth0\",vrid=\"50\"} 1\n"), "{text}");
        assert!(text.contains("vrrpd_adverts_dropped_total{instance=\"VI_1\",interface=\"eth0\",vrid=\"50\",reason=\"AuthMismatch\"} 2"));
        assert!(text.contains("vrrpd_track_up{instance=\"VI_1\",interface=\"eth0\",vrid=\"50\",kind=\"script\",name=\"check_web\"} 1"));
        assert!(text.contains("vrrpd_xdp_packets_total{counter=\"frames\"} 10"));
    }
}
