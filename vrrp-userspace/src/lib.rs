//! vrrpd: a VRRP daemon (RFC 5798 / RFC 3768) whose elections are fed by an XDP program that
//! sees adverts on the wire, before any firewall. See DESIGN.md for the architecture.

pub mod capture;
pub mod config;
pub mod fsm;
pub mod caps;
pub mod packet;
pub mod record;
pub mod watch;
