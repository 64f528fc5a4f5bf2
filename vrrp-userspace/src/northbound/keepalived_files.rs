//! keepalived's own state files, for the tools that read them (keepalived-exporter's signal
//! and JSON modes, collectd and munin plugins, people's scripts): SIGUSR1 writes
//! `keepalived.data`, SIGUSR2 `keepalived.stats`, SIGJSON (SIGRTMIN+2) `keepalived.json`, in
//! keepalived 2.2.7's layouts (keepalived/vrrp/vrrp_data.c, vrrp_print.c, vrrp_json.c), from
//! the typed status. The fields vrrpd has no notion of are left out rather than made up.

use std::{collections::BTreeMap, fmt::Write as _};

use serde::Serialize;

use super::status::{InstanceCounters, InstanceStatus, Status};
use crate::{
    protocol::{drop::DropReason, fsm::State},
    wire::vrrp::{Family, Version},
};

/// keepalived's vrrp_stats, as its files name them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub advert_rcvd: u64,
    pub advert_sent: u64,
    pub become_master: u64,
    pub release_master: u64,
    pub packet_len_err: u64,
    pub advert_interval_err: u64,
    pub ip_ttl_err: u64,
    pub invalid_type_rcvd: u64,
    pub addr_list_err: u64,
    pub invalid_authtype: u64,
    pub authtype_mismatch: u64,
    pub auth_failure: u64,
    pub pri_zero_rcvd: u64,
    pub pri_zero_sent: u64,
}

impl Stats {
    pub fn of(c: &InstanceCounters) -> Self {
        let d = |r| c.dropped.get(r);
        Self {
            advert_rcvd: c.adverts_received,
            advert_sent: c.adverts_sent,
            become_master: c.became_master,
            release_master: c.released_master,
            packet_len_err: d(DropReason::BadLength) + d(DropReason::TooShort),
            advert_interval_err: d(DropReason::IntervalMismatch),
            ip_ttl_err: d(DropReason::BadTtl),
            invalid_type_rcvd: d(DropReason::BadType),
            addr_list_err: d(DropReason::AddressListMismatch)
                + c.mismatched.get(DropReason::AddressListMismatch),
            invalid_authtype: 0,
            authtype_mismatch: d(DropReason::AuthTypeMismatch),
            auth_failure: d(DropReason::AuthMismatch),
            pri_zero_rcvd: c.priority_zero_received,
            pri_zero_sent: c.priority_zero_sent,
        }
    }

    /// Counted since `base` (keepalived's SIGRTMAX-1 clears its counters; vrrpd keeps its own
    /// monotonic for the metrics and subtracts what was cleared).
    #[must_use]
    pub fn since(self, base: &Self) -> Self {
        Self {
            advert_rcvd: self.advert_rcvd.saturating_sub(base.advert_rcvd),
            advert_sent: self.advert_sent.saturating_sub(base.advert_sent),
            become_master: self.become_master.saturating_sub(base.become_master),
            release_master: self.release_master.saturating_sub(base.release_master),
            packet_len_err: self.packet_len_err.saturating_sub(base.packet_len_err),
            advert_interval_err: self
                .advert_interval_err
                .saturating_sub(base.advert_interval_err),
            ip_ttl_err: self.ip_ttl_err.saturating_sub(base.ip_ttl_err),
            invalid_type_rcvd: self
                .invalid_type_rcvd
                .saturating_sub(base.invalid_type_rcvd),
            addr_list_err: self.addr_list_err.saturating_sub(base.addr_list_err),
            invalid_authtype: self.invalid_authtype.saturating_sub(base.invalid_authtype),
            authtype_mismatch: self
                .authtype_mismatch
                .saturating_sub(base.authtype_mismatch),
            auth_failure: self.auth_failure.saturating_sub(base.auth_failure),
            pri_zero_rcvd: self.pri_zero_rcvd.saturating_sub(base.pri_zero_rcvd),
            pri_zero_sent: self.pri_zero_sent.saturating_sub(base.pri_zero_sent),
        }
    }
}

/// What SIGRTMAX-1 cleared, per instance.
pub type Baseline = BTreeMap<String, Stats>;

fn stats_of(i: &InstanceStatus, base: &Baseline) -> Stats {
    let now = Stats::of(&i.counters);
    base.get(&i.name).map_or(now, |b| now.since(b))
}

/// keepalived's state numbers (vrrp.h): what keepalived.json and exporters use.
pub const fn state_code(s: State) -> u8 {
    match s {
        State::Initialize => 0,
        State::Backup => 1,
        State::Master => 2,
        State::Fault => 3,
    }
}

pub const fn state_name(s: State) -> &'static str {
    match s {
        State::Initialize => "INIT",
        State::Backup => "BACKUP",
        State::Master => "MASTER",
        State::Fault => "FAULT",
    }
}

/// A VIP as keepalived's format_ipaddress writes it: `10.0.0.3/32 dev eth0 scope global`.
fn vip_line(vip: &str, interface: &str) -> String {
    format!("{vip} dev {interface} scope global")
}

/// `keepalived.data` (SIGUSR1): the VRRP topology part, the lines tools parse.
pub fn data(status: &Status) -> String {
    let mut out = String::from("------< VRRP Topology >------\n");
    for i in &status.instances {
        let _ = writeln!(out, " VRRP Instance = {}", i.name);
        let _ = writeln!(out, "   VRRP Version = {}", i.version.number());
        if let Some(g) = &i.group {
            let _ = writeln!(out, "   Sync group = {g}");
        }
        if i.family == Family::V6 {
            out.push_str("   Using Native IPv6\n");
        }
        let _ = writeln!(out, "   State = {}", state_name(i.state));
        if i.state == State::Backup
            && let Some(m) = &i.master
        {
            let _ = writeln!(out, "   Master router = {}", m.address);
            let _ = writeln!(out, "   Master priority = {}", m.priority);
        }
        let _ = writeln!(out, "   Wantstate = {}", state_name(i.state));
        let _ = writeln!(out, "   Interface = {}", i.interface);
        let _ = writeln!(out, "   Using src_ip = {}", i.source);
        let _ = writeln!(out, "   Virtual Router ID = {}", i.vrid);
        let _ = writeln!(out, "   Priority = {}", i.priority.base);
        let _ = writeln!(out, "   Effective priority = {}", i.priority.effective);
        if i.version == Version::V2 {
            let _ = writeln!(out, "   Advert interval = {} sec", i.advert_int_s.round());
        } else {
            let _ = writeln!(
                out,
                "   Advert interval = {} milli-sec",
                (i.advert_int_s * 1000.0).round()
            );
        }
        let _ = writeln!(out, "   Virtual IP ({}):", i.vips.len());
        for v in &i.vips {
            let _ = writeln!(out, "     {}", vip_line(v, &i.interface));
        }
    }
    out
}

/// `keepalived.stats` (SIGUSR2), line for line as keepalived's vrrp_print_stats.
pub fn stats(status: &Status, base: &Baseline) -> String {
    let mut out = String::new();
    for i in &status.instances {
        let s = stats_of(i, base);
        let _ = write!(
            out,
            "VRRP Instance: {}\n  Advertisements:\n    Received: {}\n    Sent: {}\n  Became master: {}\n  Released master: {}\n  Packet Errors:\n    Length: {}\n    TTL: {}\n    Invalid Type: {}\n    Advertisement Interval: {}\n    Address List: {}\n  Authentication Errors:\n    Invalid Type: {}\n    Type Mismatch: {}\n    Failure: {}\n  Priority Zero:\n    Received: {}\n    Sent: {}\n",
            i.name,
            s.advert_rcvd,
            s.advert_sent,
            s.become_master,
            s.release_master,
            s.packet_len_err,
            s.ip_ttl_err,
            s.invalid_type_rcvd,
            s.advert_interval_err,
            s.addr_list_err,
            s.invalid_authtype,
            s.authtype_mismatch,
            s.auth_failure,
            s.pri_zero_rcvd,
            s.pri_zero_sent,
        );
    }
    out
}

/// keepalived.json's `data` object: the fields vrrpd knows, with keepalived's names.
#[derive(Serialize)]
struct JsonData<'a> {
    iname: &'a str,
    ifp_ifname: &'a str,
    vrid: u8,
    base_priority: u8,
    effective_priority: u8,
    master_priority: u8,
    vipset: bool,
    adver_int: f64,
    master_adver_int: f64,
    state: u8,
    wantstate: u8,
    version: u8,
    vips: Vec<String>,
}

#[derive(Serialize)]
struct JsonEntry<'a> {
    data: JsonData<'a>,
    stats: Stats,
}

/// `keepalived.json` (SIGJSON): an array of `{ "data": {...}, "stats": {...} }`.
pub fn json(status: &Status, base: &Baseline) -> String {
    let entries: Vec<JsonEntry<'_>> = status
        .instances
        .iter()
        .map(|i| JsonEntry {
            data: JsonData {
                iname: &i.name,
                ifp_ifname: &i.interface,
                vrid: i.vrid,
                base_priority: i.priority.base,
                effective_priority: i.priority.effective,
                master_priority: i.master.as_ref().map_or(0, |m| m.priority),
                vipset: i.holds_vips,
                adver_int: i.advert_int_s,
                master_adver_int: i.master_adver_interval_s,
                state: state_code(i.state),
                wantstate: state_code(i.state),
                version: i.version.number(),
                vips: i.vips.iter().map(|v| vip_line(v, &i.interface)).collect(),
            },
            stats: stats_of(i, base),
        })
        .collect();
    serde_json::to_string(&entries).unwrap_or_else(|_| "[]".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_since_a_baseline_and_state_codes() {
        let now = Stats {
            advert_rcvd: 10,
            pri_zero_sent: 1,
            ..Stats::default()
        };
        let base = Stats {
            advert_rcvd: 4,
            pri_zero_sent: 3,
            ..Stats::default()
        };
        let d = now.since(&base);
        assert_eq!((d.advert_rcvd, d.pri_zero_sent), (6, 0));
        assert_eq!(
            [
                State::Initialize,
                State::Backup,
                State::Master,
                State::Fault
            ]
            .map(state_code),
            [0, 1, 2, 3]
        );
    }
}
