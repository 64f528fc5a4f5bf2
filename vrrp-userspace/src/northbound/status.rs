//! The daemon's answers, as types: what the control socket sends and what `status`, `watch`,
//! `diagnose`, the metrics renderer and the tests read. Serialized with serde on one side,
//! deserialized into the same types on the other: no JSON built by hand, no lookups by key.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::diagnose::{DropRule, Finding, SourceWindow};
use crate::{
    datapath::{Attached, Counters, drops::KernelDrops},
    protocol::{drop::DropCounts, fsm::State, router::Tracked},
    sys::advert_thread::Scheduling,
    wire::vrrp::{Family, Version},
};

/// `vrrpd status`: everything about the running daemon.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub pid: u32,
    pub uptime_s: f64,
    pub instances: Vec<InstanceStatus>,
    pub groups: Vec<GroupStatus>,
    /// Every router heard on the wire (XDP), ours excepted.
    pub sources: Vec<SourceStatus>,
    /// The findings of the periodic diagnosis, as `vrrpd diagnose` would print them.
    pub findings: Vec<Finding>,
    pub interfaces: Vec<Attached>,
    /// Interfaces whose elections hear their VRRP socket instead of the ring while a flood
    /// fills it (see the `ring_full` finding).
    #[serde(default)]
    pub elections_from_socket: Vec<String>,
    /// Whether the kernel's drop reasons are read (the skb:kfree_skb probe), or why not.
    pub drop_probe: DropProbe,
    /// The XDP program's counters, summed over CPUs and interfaces.
    pub xdp: Counters,
    /// The capabilities every thread kept after start.
    pub capabilities: Vec<String>,
    pub advert_thread: Scheduling,
    /// From each advert's kernel stamp (XDP) to its step in the election, since start.
    #[serde(default)]
    pub rx_latency: crate::time::LatencySummary,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropProbe {
    /// Attached to skb:kfree_skb.
    Running,
    Unavailable(String),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstanceStatus {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    pub family: Family,
    pub version: Version,
    pub state: State,
    /// Seconds in that state.
    pub since_s: f64,
    pub priority: Priority,
    /// The address adverts are sent from.
    pub source: IpAddr,
    /// As configured: `10.0.0.3/32`.
    pub vips: Vec<String>,
    pub holds_vips: bool,
    /// Held in BACKUP by `vrrpd set INSTANCE maintenance on`.
    #[serde(default)]
    pub maintenance: bool,
    /// Who is master, as far as this instance knows (None: nobody heard yet).
    pub master: Option<Master>,
    pub advert_int_s: f64,
    pub master_adver_interval_s: f64,
    pub master_down_interval_s: f64,
    /// The vrrp_sync_group it belongs to.
    pub group: Option<String>,
    pub counters: InstanceCounters,
}

/// What a reload (SIGHUP or `vrrpd reload`) did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReloadOutcome {
    /// The new config runs; its warnings, each at its file:line.
    Applied {
        instances: usize,
        warnings: Vec<String>,
    },
    /// The running config stays; why, each problem on its own.
    Refused { errors: Vec<String> },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Priority {
    pub base: u8,
    /// Base plus tracking, as advertised.
    pub effective: u8,
    pub tracking: Vec<Tracked>,
    /// The base the operator set (`vrrpd set INSTANCE priority N`) in place of the config's.
    #[serde(default)]
    pub operator: Option<u8>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Master {
    pub address: IpAddr,
    pub priority: u8,
    /// This router is the master.
    pub this_router: bool,
    /// For another master: its advert interval and how long ago it was heard.
    pub advert_int_s: Option<f64>,
    pub seen_s_ago: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InstanceCounters {
    /// Adverts that decoded and reached the state machine.
    pub adverts_received: u64,
    /// Of those, priority 0.
    #[serde(default)]
    pub priority_zero_received: u64,
    /// Adverts sent, periodic and immediate.
    pub adverts_sent: u64,
    /// Of those, priority 0.
    #[serde(default)]
    pub priority_zero_sent: u64,
    /// Periodic adverts that left more than a quarter interval after their deadline.
    pub adverts_late: u64,
    pub advert_late_mean_ms: f64,
    pub became_master: u64,
    /// Transitions out of MASTER.
    #[serde(default)]
    pub released_master: u64,
    pub dropped: DropCounts,
    /// Adverts acted on although they disagree with our config (another VIP list), by reason.
    #[serde(default)]
    pub mismatched: DropCounts,
    /// Sends the kernel refused with EPERM: netfilter dropped our advert on output.
    pub send_refused: u64,
    /// The kernel's drop reasons for our own adverts (on output).
    pub kernel_drops: KernelDrops,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupStatus {
    pub name: String,
    pub state: State,
    pub members: Vec<String>,
}

/// One router heard on the wire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourceStatus {
    pub interface: String,
    pub source: IpAddr,
    pub vrid: u8,
    pub priority: u8,
    pub last_seen_s: f64,
    /// Mean and standard deviation of the gaps between its adverts (kernel stamps).
    pub interval_mean_s: Option<f64>,
    pub interval_jitter_s: Option<f64>,
    /// Adverts seen by XDP (before netfilter), and how many reached the VRRP socket (after).
    pub wire: u64,
    pub socket: u64,
}

/// `vrrpd diagnose` (and `watch`'s table): the findings over the window, with what they were
/// made from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Diagnosis {
    pub window_s: u64,
    pub findings: Vec<Finding>,
    pub sources: Vec<SourceWindow>,
    pub drop_rules: Vec<DropRule>,
}
