//! The typed status, made from the router (protocol state), the resources (sends) and the
//! observation (sources, findings), and the answers to the control socket.

use std::sync::atomic::Ordering::Relaxed;

use tracing::warn;

use super::{Daemon, MAX_SUBSCRIBERS};
use crate::{
    northbound::{
        control::{Command, Pending, Reply},
        status::{
            DropProbe, GroupStatus, InstanceCounters, InstanceStatus, Master, Priority,
            SourceStatus, Status,
        },
    },
    protocol::{
        fsm::{PRIORITY_OWNER, State},
        router::{Input, Setting},
    },
    sys::clock,
    time::{Instant, centis},
};

impl Daemon {
    pub(super) async fn answer(&mut self, req: Pending) {
        match req.command {
            Command::Reload => {
                let outcome = self.reload("vrrpd reload").await;
                let _ = req.reply.send(Reply::Reload(outcome));
            }
            Command::Set { instance, setting } => {
                let reply = self.operator_set(instance, setting).await;
                let _ = req.reply.send(reply);
            }
            Command::Status => {
                self.io.refresh_socket_counts();
                let status = self.status(clock::now());
                let _ = req.reply.send(Reply::Status(Box::new(status)));
            }
            Command::Subscribe => {
                let reply = match req.stream {
                    Some(s) if self.subscribers.len() < MAX_SUBSCRIBERS => {
                        self.subscribers.push(s);
                        Reply::Subscribed
                    }
                    Some(_) => Reply::Error(format!("too many subscribers ({MAX_SUBSCRIBERS})")),
                    None => Reply::Error("a subscription needs a stream".to_owned()),
                };
                let _ = req.reply.send(reply);
            }
            // Reading the ruleset runs nft: off the main loop.
            Command::Diagnose => self.diagnose_now(req.reply),
        }
    }

    /// `vrrpd set`: checked, logged, then the router's; the instance as it is after it.
    async fn operator_set(&mut self, instance: String, setting: Setting) -> Reply {
        let Some(v) = self.router.get(&instance) else {
            let names: Vec<&str> = self.router.iter().map(|(n, _)| n).collect();
            return Reply::Error(format!(
                "no vrrp_instance {instance} runs here (they are: {})",
                names.join(", ")
            ));
        };
        match setting {
            Setting::Priority(Some(p)) if !(1..=254).contains(&p) => {
                return Reply::Error(format!(
                    "priority {p}: 1 to 254 (255 is the address owner's, and only its config says so)"
                ));
            }
            Setting::Priority(Some(_)) if v.spec.cfg.priority == PRIORITY_OWNER => {
                return Reply::Error(format!(
                    "{instance} owns its addresses (priority 255): its priority does not change; use maintenance to take it out"
                ));
            }
            Setting::Priority(Some(p)) => warn!(
                "{instance}: priority {p} set by the operator in place of the config's {} (until vrrpd stops; `vrrpd set {instance} priority config` undoes it)",
                v.spec.cfg.priority
            ),
            Setting::Priority(None) => warn!(
                "{instance}: the operator's priority undone: the config's {} again",
                v.spec.cfg.priority
            ),
            Setting::Maintenance(true) => warn!(
                "{instance}: maintenance on (by the operator): gives up mastership with priority 0 and stays BACKUP until `vrrpd set {instance} maintenance off`"
            ),
            Setting::Maintenance(false) => {
                warn!(
                    "{instance}: maintenance off (by the operator): takes part in the election again"
                );
            }
        }
        self.handle(
            clock::now(),
            Input::Set {
                instance: instance.clone(),
                setting,
            },
        )
        .await;
        self.status(clock::now())
            .instances
            .into_iter()
            .find(|i| i.name == instance)
            .map_or_else(
                || Reply::Error(format!("{instance} is gone")),
                |i| Reply::Set(Box::new(i)),
            )
    }

    #[expect(clippy::too_many_lines, reason = "the status, field by field")]
    pub(super) fn status(&self, now: Instant) -> Status {
        let secs = |i: Instant| now.since(i).as_secs_f64();
        let instances = self
            .router
            .iter()
            .map(|(name, v)| {
                let cfg = &v.spec.cfg;
                let state = v.fsm.state();
                let mut counters = InstanceCounters {
                    adverts_received: v.stats.adverts_received,
                    priority_zero_received: v.stats.priority_zero_received,
                    became_master: v.stats.became_master,
                    released_master: v.stats.released_master,
                    dropped: v.stats.dropped,
                    mismatched: v.stats.mismatched,
                    kernel_drops: self.observe.our_kernel_drops(name),
                    ..InstanceCounters::default()
                };
                if let Some(r) = self.io.instances.get(name) {
                    let st = &r.stats;
                    let periodic = st.periodic.load(Relaxed);
                    counters.adverts_sent = st.sent.load(Relaxed);
                    counters.priority_zero_sent = st.sent_priority_zero.load(Relaxed);
                    counters.send_refused = st.refused.load(Relaxed);
                    counters.adverts_late = st.late.load(Relaxed);
                    counters.advert_late_mean_ms = if periodic > 0 {
                        st.late_sum_ns.load(Relaxed) as f64 / periodic as f64 / 1e6
                    } else {
                        0.0
                    };
                }
                let master = match (state, v.fsm.master) {
                    (State::Master, _) => Some(Master {
                        address: v.spec.src,
                        priority: v.fsm.priority(),
                        this_router: true,
                        advert_int_s: None,
                        seen_s_ago: None,
                    }),
                    (_, Some((address, priority, interval_cs, seen))) => Some(Master {
                        address,
                        priority,
                        this_router: false,
                        advert_int_s: Some(centis(interval_cs).as_secs_f64()),
                        seen_s_ago: Some(secs(seen)),
                    }),
                    _ => None,
                };
                InstanceStatus {
                    name: name.to_owned(),
                    interface: cfg.interface.clone(),
                    vrid: cfg.vrid,
                    family: cfg.family,
                    version: cfg.version,
                    state,
                    since_s: secs(v.fsm.since),
                    priority: Priority {
                        base: cfg.priority,
                        effective: v.fsm.priority(),
                        tracking: self.router.tracking(name),
                        operator: v.operator_priority,
                    },
                    source: v.spec.src,
                    vips: cfg
                        .vips
                        .iter()
                        .map(|x| format!("{}/{}", x.addr, x.prefix))
                        .collect(),
                    holds_vips: state == State::Master,
                    maintenance: v.fsm.held(),
                    master,
                    advert_int_s: centis(cfg.advert_int_cs).as_secs_f64(),
                    master_adver_interval_s: v.fsm.master_adver_interval().as_secs_f64(),
                    master_down_interval_s: v.fsm.master_down_interval().as_secs_f64(),
                    group: v.group.map(str::to_owned),
                    counters,
                }
            })
            .collect();
        let groups = self
            .router
            .groups()
            .map(|g| GroupStatus {
                name: g.name().to_owned(),
                state: g.state(),
                members: g.members().to_vec(),
            })
            .collect();
        let mut sources: Vec<SourceStatus> = self
            .observe
            .sources
            .iter()
            .map(|(k, s)| {
                let mj = s.mean_jitter();
                SourceStatus {
                    interface: s.ifname.clone(),
                    source: k.src,
                    vrid: k.vrid,
                    priority: s.priority,
                    last_seen_s: secs(s.last_seen),
                    interval_mean_s: mj.map(|m| m.0),
                    interval_jitter_s: mj.map(|m| m.1),
                    wire: s.wire,
                    socket: self.io.socket_count(k),
                }
            })
            .collect();
        sources.sort_by(|a, b| {
            (&a.interface, a.vrid, a.source).cmp(&(&b.interface, b.vrid, b.source))
        });
        Status {
            pid: std::process::id(),
            uptime_s: secs(self.started),
            instances,
            groups,
            sources,
            findings: self.observe.findings.clone(),
            interfaces: self.io.datapath.attached().to_vec(),
            elections_from_socket: self.flood.interfaces(),
            drop_probe: match self.io.datapath.drop_probe() {
                Ok(()) => DropProbe::Running,
                Err(why) => DropProbe::Unavailable(why.to_owned()),
            },
            xdp: self.io.datapath.counters().unwrap_or_default(),
            capabilities: self.caps_kept.iter().map(|c| (*c).to_owned()).collect(),
            advert_thread: self.io.scheduling.clone(),
            rx_latency: self.rx_latency.summary(),
        }
    }
}
