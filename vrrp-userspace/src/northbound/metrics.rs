//! Prometheus metrics (`vrrpd run --metrics 127.0.0.1:9650`): the text exposition format,
//! rendered from the same snapshot as `vrrpd status`. A minimal HTTP/1.1 responder: one
//! request per connection, bounded in size and time, so a scraper cannot stall the daemon.

use std::{collections::BTreeMap, fmt::Write as _, net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpListener,
    sync::{mpsc, oneshot},
};
use tracing::{info, warn};

use super::{
    control::{Command, Pending, Reply},
    doors::{self, Gate},
    keepalived_files::{Stats, state_code, state_name},
    status::{InstanceStatus, SourceStatus, Status},
};
use crate::protocol::{fsm::State, router::TrackedKind};

/// Open scrapes at once (see `doors`), and how long a connection may take to send its request.
const MAX_CONNECTIONS: usize = 64;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Serves `/metrics` on `addr`, asking the main loop through `tx` for each scrape.
pub async fn serve(addr: SocketAddr, tx: mpsc::Sender<Pending>) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    info!(%addr, "Prometheus metrics on /metrics");
    let gate = Gate::new("metrics", MAX_CONNECTIONS);
    tokio::spawn(async move {
        let mut failures = 0;
        loop {
            let mut stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    doors::accept_failed("metrics", &e, &mut failures).await;
                    continue;
                }
            };
            let tx = tx.clone();
            gate.admit(|ticket| async move {
                let work = async {
                    let mut buf = [0u8; 2048];
                    let n = tokio::time::timeout(REQUEST_TIMEOUT, stream.read(&mut buf))
                        .await
                        .ok()
                        .and_then(Result::ok)
                        .unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    ticket.engaged();
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
                            Ok(Reply::Status(s)) => ("200 OK", render(&s)),
                            Ok(_) | Err(_) => {
                                ("503 Service Unavailable", String::from("stopping\n"))
                            }
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

/// The exposition text for a status snapshot.
#[expect(
    clippy::too_many_lines,
    reason = "one family after another, in exposition order"
)]
pub fn render(status: &Status) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let instances = &status.instances;
    let id = |i: &InstanceStatus| {
        format!(
            "vrrp_instance=\"{}\",interface=\"{}\",vrid=\"{}\"",
            label(&i.name),
            label(&i.interface),
            i.vrid
        )
    };
    let per = |f: &dyn Fn(&InstanceStatus) -> f64| {
        instances
            .iter()
            .map(|i| (format!("{{{}}}", id(i)), f(i)))
            .collect::<Vec<_>>()
    };
    let count = |n: u64| n as f64;
    family(
        "vrrpd_instance_master",
        "gauge",
        "1 while the instance is MASTER.",
        per(&|i| f64::from(u8::from(i.state == State::Master))),
    );
    let mut states = Vec::new();
    for i in instances {
        for s in State::ALL {
            states.push((
                format!("{{{},state=\"{s}\"}}", id(i)),
                f64::from(u8::from(i.state == s)),
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
        per(&|i| f64::from(i.priority.effective)),
    );
    family(
        "vrrpd_instance_base_priority",
        "gauge",
        "Configured priority.",
        per(&|i| f64::from(i.priority.base)),
    );
    family(
        "vrrpd_instance_state_seconds",
        "gauge",
        "Seconds in the current state.",
        per(&|i| i.since_s),
    );
    family(
        "vrrpd_master_down_interval_seconds",
        "gauge",
        "Master_Down_Interval (RFC 5798 6.1).",
        per(&|i| i.master_down_interval_s),
    );
    family(
        "vrrpd_adverts_received_total",
        "counter",
        "Adverts received and acted on.",
        per(&|i| count(i.counters.adverts_received)),
    );
    family(
        "vrrpd_adverts_sent_total",
        "counter",
        "Adverts sent.",
        per(&|i| count(i.counters.adverts_sent)),
    );
    family(
        "vrrpd_adverts_late_total",
        "counter",
        "Periodic adverts that left more than a quarter interval after their deadline.",
        per(&|i| count(i.counters.adverts_late)),
    );
    family(
        "vrrpd_transitions_to_master_total",
        "counter",
        "Transitions to MASTER.",
        per(&|i| count(i.counters.became_master)),
    );
    let mut dropped = Vec::new();
    for i in instances {
        for (reason, n) in i.counters.dropped.iter() {
            dropped.push((format!("{{{},reason=\"{reason}\"}}", id(i)), count(n)));
        }
    }
    family(
        "vrrpd_adverts_dropped_total",
        "counter",
        "Adverts not acted on, by reason.",
        dropped,
    );
    let mut tracked = Vec::new();
    for i in instances {
        for t in &i.priority.tracking {
            if let Some(ok) = t.ok {
                let kind = match t.kind {
                    TrackedKind::Script => "script",
                    TrackedKind::Interface => "interface",
                    TrackedKind::File => "file",
                    TrackedKind::Process => "process",
                };
                tracked.push((
                    format!("{{{},kind=\"{kind}\",name=\"{}\"}}", id(i), label(&t.name)),
                    f64::from(u8::from(ok)),
                ));
            }
        }
    }
    family(
        "vrrpd_track_up",
        "gauge",
        "1 while a tracked script succeeds, a tracked interface is up, or a tracked file keeps the instance out of FAULT.",
        tracked,
    );
    let sid = |s: &SourceStatus| {
        format!(
            "{{interface=\"{}\",vrid=\"{}\",source=\"{}\"}}",
            label(&s.interface),
            s.vrid,
            s.source
        )
    };
    let per_source = |f: &dyn Fn(&SourceStatus) -> Option<f64>| {
        status
            .sources
            .iter()
            .filter_map(|s| Some((sid(s), f(s)?)))
            .collect::<Vec<_>>()
    };
    family(
        "vrrpd_peer_last_advert_seconds",
        "gauge",
        "Seconds since the last advert from a source (XDP stamp).",
        per_source(&|s| Some(s.last_seen_s)),
    );
    family(
        "vrrpd_peer_advert_interval_seconds",
        "gauge",
        "Mean gap between a source's adverts (last 64).",
        per_source(&|s| s.interval_mean_s),
    );
    family(
        "vrrpd_peer_advert_jitter_seconds",
        "gauge",
        "Standard deviation of those gaps.",
        per_source(&|s| s.interval_jitter_s),
    );
    family(
        "vrrpd_peer_adverts_wire_total",
        "counter",
        "A source's adverts seen by XDP, before netfilter.",
        per_source(&|s| Some(count(s.wire))),
    );
    family(
        "vrrpd_peer_adverts_socket_total",
        "counter",
        "Packets from a source that reached the VRRP socket, after netfilter.",
        per_source(&|s| Some(count(s.socket))),
    );
    family(
        "vrrpd_finding",
        "gauge",
        "1 for each problem `vrrpd diagnose` reports now (kind: lost_after_xdp, dropped_on_output, lost_on_network, auth_mismatch, ...).",
        status
            .findings
            .iter()
            .map(|f| {
                (
                    format!(
                        "{{kind=\"{}\",interface=\"{}\",vrid=\"{}\",source=\"{}\"}}",
                        f.kind,
                        label(&f.ifname),
                        f.vrid,
                        f.source.map(|s| s.to_string()).unwrap_or_default()
                    ),
                    1.0,
                )
            })
            .collect(),
    );
    family(
        "vrrpd_xdp_packets_total",
        "counter",
        "The XDP program's counters, by name.",
        status
            .xdp
            .iter()
            .map(|(k, v)| (format!("{{counter=\"{k}\"}}"), count(v)))
            .collect(),
    );
    family(
        "vrrpd_uptime_seconds",
        "gauge",
        "Seconds since vrrpd started.",
        vec![(String::new(), status.uptime_s)],
    );
    family(
        "vrrpd_build_info",
        "gauge",
        "1, labelled with the version of vrrpd.",
        vec![(
            format!("{{version=\"{}\"}}", env!("CARGO_PKG_VERSION")),
            1.0,
        )],
    );
    // Cumulative, as Prometheus histograms are; `le` is each bucket's upper bound.
    let l = &status.rx_latency;
    let mut seen = 0;
    let mut samples: Vec<(String, f64)> = l
        .buckets
        .iter()
        .map(|(upper, n)| {
            seen += n;
            (
                format!("_bucket{{le=\"{}\"}}", *upper as f64 / 1e6),
                count(seen),
            )
        })
        .collect();
    samples.push(("_bucket{le=\"+Inf\"}".to_owned(), count(l.samples)));
    samples.push(("_sum".to_owned(), l.sum_us / 1e6));
    samples.push(("_count".to_owned(), count(l.samples)));
    family(
        "vrrpd_advert_election_delay_seconds",
        "histogram",
        "From an advert's arrival (the XDP program's kernel stamp) to its step in the election.",
        samples,
    );
    keepalived_exporter(status, &mut family);
    out
}

/// The names and labels of keepalived-exporter (github.com/mehdy/keepalived-exporter), so that
/// dashboards and alerts written for keepalived keep working: `iname`, `intf`, `vrid` and
/// the state's name on the counters, one `keepalived_vrrp_state` series per VIP valued with
/// keepalived's state number. Its counters are keepalived's (vrrp_stats), mapped from ours as
/// for `keepalived.stats`.
#[expect(
    clippy::too_many_lines,
    reason = "one family after another, in keepalived-exporter's order"
)]
fn keepalived_exporter(
    status: &Status,
    family: &mut impl FnMut(&str, &str, &str, Vec<(String, f64)>),
) {
    family(
        "keepalived_up",
        "gauge",
        "1 while the VRRP daemon answers (vrrpd, in keepalived-exporter's name).",
        vec![(String::new(), 1.0)],
    );
    let mut states = Vec::new();
    for i in &status.instances {
        for vip in &i.vips {
            let (address, intf) = vip_parts(vip, &i.interface);
            states.push((
                format!(
                    "{{iname=\"{}\",intf=\"{}\",vrid=\"{}\",ip_address=\"{}\"}}",
                    label(&i.name),
                    label(intf),
                    i.vrid,
                    label(address)
                ),
                f64::from(state_code(i.state)),
            ));
        }
    }
    family(
        "keepalived_vrrp_state",
        "gauge",
        "keepalived's state number: 0 INIT, 1 BACKUP, 2 MASTER, 3 FAULT.",
        states,
    );
    let common = |i: &InstanceStatus| {
        format!(
            "{{iname=\"{}\",intf=\"{}\",vrid=\"{}\",state=\"{}\"}}",
            label(&i.name),
            label(&i.interface),
            i.vrid,
            state_name(i.state)
        )
    };
    type Counter = (&'static str, &'static str, fn(&Stats) -> u64);
    let counters: [Counter; 14] = [
        ("advertisements_received", "Advertisements received", |s| {
            s.advert_rcvd
        }),
        ("advertisements_sent", "Advertisements sent", |s| {
            s.advert_sent
        }),
        ("become_master", "Became master", |s| s.become_master),
        ("release_master", "Released master", |s| s.release_master),
        ("packet_length_errors", "Packet length errors", |s| {
            s.packet_len_err
        }),
        (
            "advertisements_interval_errors",
            "Advertisement interval errors",
            |s| s.advert_interval_err,
        ),
        ("ip_ttl_errors", "TTL errors", |s| s.ip_ttl_err),
        ("invalid_type_received", "Invalid type errors", |s| {
            s.invalid_type_rcvd
        }),
        ("address_list_errors", "Address list errors", |s| {
            s.addr_list_err
        }),
        ("authentication_invalid", "Authentication invalid", |s| {
            s.invalid_authtype
        }),
        ("authentication_mismatch", "Authentication mismatch", |s| {
            s.authtype_mismatch
        }),
        ("authentication_failure", "Authentication failure", |s| {
            s.auth_failure
        }),
        ("priority_zero_received", "Priority zero received", |s| {
            s.pri_zero_rcvd
        }),
        ("priority_zero_sent", "Priority zero sent", |s| {
            s.pri_zero_sent
        }),
    ];
    let stats: Vec<(String, Stats)> = status
        .instances
        .iter()
        .map(|i| (common(i), Stats::of(&i.counters)))
        .collect();
    for (name, help, get) in counters {
        family(
            &format!("keepalived_{name}_total"),
            "counter",
            help,
            stats
                .iter()
                .map(|(labels, s)| (labels.clone(), get(s) as f64))
                .collect(),
        );
    }
    // keepalived's vrrp_script list is global: one series per script name.
    let mut scripts = BTreeMap::new();
    for i in &status.instances {
        for t in &i.priority.tracking {
            if let (TrackedKind::Script, Some(ok)) = (t.kind, t.ok) {
                scripts.insert(t.name.as_str(), ok);
            }
        }
    }
    family(
        "keepalived_script_status",
        "gauge",
        "Tracker script status: 0 BAD, 1 GOOD.",
        scripts
            .iter()
            .map(|(name, ok)| {
                (
                    format!("{{name=\"{}\"}}", label(name)),
                    f64::from(u8::from(*ok)),
                )
            })
            .collect(),
    );
    family(
        "keepalived_script_state",
        "gauge",
        "Tracker script state: 0 idle (vrrpd runs each check to completion, with its timeout).",
        scripts
            .keys()
            .map(|name| (format!("{{name=\"{}\"}}", label(name)), 0.0))
            .collect(),
    );
}

/// A VIP as status shows it (`10.0.0.3/24`, `10.0.0.3/24 dev eth1`): its address and the
/// interface it lives on (the instance's unless it says otherwise).
fn vip_parts<'a>(vip: &'a str, interface: &'a str) -> (&'a str, &'a str) {
    let mut words = vip.split_whitespace();
    let address = words.next().unwrap_or(vip);
    let address = address.split('/').next().unwrap_or(address);
    let mut intf = interface;
    while let Some(w) = words.next() {
        if w == "dev"
            && let Some(d) = words.next()
        {
            intf = d;
        }
    }
    (address, intf)
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::{
        datapath::Counters,
        northbound::status::{DropProbe, InstanceCounters, Priority},
        protocol::{drop::DropReason, router::Tracked},
        sys::advert_thread::Scheduling,
        wire::vrrp::{Family, Version},
    };

    #[test]
    fn renders_help_type_and_samples() {
        let mut counters = InstanceCounters {
            adverts_sent: 4,
            became_master: 1,
            ..InstanceCounters::default()
        };
        counters.dropped.add(DropReason::AuthMismatch);
        counters.dropped.add(DropReason::AuthMismatch);
        let mut xdp = Counters::default();
        xdp.0[vrrp_common::counter::FRAMES as usize] = 10;
        let status = Status {
            pid: 1,
            uptime_s: 3.5,
            instances: vec![InstanceStatus {
                name: "VI_1".into(),
                interface: "eth0".into(),
                vrid: 50,
                family: Family::V4,
                version: Version::V2,
                state: State::Master,
                since_s: 1.0,
                priority: Priority {
                    base: 150,
                    effective: 200,
                    tracking: vec![Tracked {
                        kind: TrackedKind::Script,
                        name: "check_web".into(),
                        ok: Some(true),
                        weight: Some(50),
                        value: None,
                    }],
                    operator: None,
                },
                source: IpAddr::from([10, 0, 0, 5]),
                vips: vec!["10.0.0.3/32".into()],
                holds_vips: true,
                maintenance: false,
                master: None,
                advert_int_s: 1.0,
                master_adver_interval_s: 1.0,
                master_down_interval_s: 3.609_375,
                group: None,
                counters,
            }],
            groups: Vec::new(),
            sources: Vec::new(),
            findings: Vec::new(),
            interfaces: Vec::new(),
            elections_from_socket: Vec::new(),
            drop_probe: DropProbe::Running,
            xdp,
            capabilities: Vec::new(),
            advert_thread: Scheduling::Fifo(50),
            rx_latency: {
                let mut h = crate::time::Histogram::default();
                h.record(30_000);
                h.record(200_000);
                h.summary()
            },
        };
        let text = render(&status);
        assert!(
            text.contains("vrrpd_advert_election_delay_seconds_bucket{le=\"0.000032\"} 1\nvrrpd_advert_election_delay_seconds_bucket{le=\"0.000224\"} 2\nvrrpd_advert_election_delay_seconds_bucket{le=\"+Inf\"} 2\nvrrpd_advert_election_delay_seconds_sum 0.00023\nvrrpd_advert_election_delay_seconds_count 2\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE vrrpd_instance_master gauge\nvrrpd_instance_master{vrrp_instance=\"VI_1\",interface=\"eth0\",vrid=\"50\"} 1\n"), "{text}");
        assert!(text.contains("vrrpd_adverts_dropped_total{vrrp_instance=\"VI_1\",interface=\"eth0\",vrid=\"50\",reason=\"auth_mismatch\"} 2"));
        assert!(text.contains("vrrpd_track_up{vrrp_instance=\"VI_1\",interface=\"eth0\",vrid=\"50\",kind=\"script\",name=\"check_web\"} 1"));
        assert!(text.contains("vrrpd_xdp_packets_total{counter=\"frames\"} 10"));
        // No label Prometheus itself attaches to every target's series.
        assert!(
            !text.contains("{instance=") && !text.contains(",instance="),
            "{text}"
        );
        // keepalived-exporter's names, labels and state numbers.
        assert!(text.contains("keepalived_vrrp_state{iname=\"VI_1\",intf=\"eth0\",vrid=\"50\",ip_address=\"10.0.0.3\"} 2\n"), "{text}");
        assert!(text.contains("keepalived_advertisements_sent_total{iname=\"VI_1\",intf=\"eth0\",vrid=\"50\",state=\"MASTER\"} 4\n"));
        assert!(text.contains("keepalived_authentication_failure_total{iname=\"VI_1\",intf=\"eth0\",vrid=\"50\",state=\"MASTER\"} 2\n"));
        assert!(text.contains("keepalived_script_status{name=\"check_web\"} 1\n"));
        assert_eq!(
            vip_parts("10.0.0.3/24 dev eth1", "eth0"),
            ("10.0.0.3", "eth1")
        );
    }
}
