//! vrrpd: a VRRP daemon (RFC 5798 / RFC 3768) whose elections are fed by an XDP program that
//! sees adverts on the wire, before any firewall. ARCHITECTURE.md at the top of the repository
//! walks through the layers; in short, from the wire up:
//!
//! - [`wire`]: pure codecs (VRRP, IP, frames, the XDP ring record);
//! - [`protocol`]: the state machine, sync groups, tracking arithmetic, drop reasons and the
//!   router that owns every instance: one input in, effects out, time passed in;
//! - [`config`]: keepalived.conf, read unchanged;
//! - [`datapath`]: the eBPF programs' loader, ring buffer, counters and kernel drop reasons;
//! - [`sys`]: netlink, sockets, the advert thread, scripts, capabilities, CPU accounting;
//! - [`daemon`]: the single owner of the I/O, executing the router's effects;
//! - [`northbound`]: the control socket and its typed status, metrics, the diagnosis.

pub mod config;
pub mod daemon;
pub mod datapath;
pub mod northbound;
pub mod protocol;
pub mod sys;
pub mod time;
pub mod wire;
