//! Pure codecs, zero-copy where bytes come from outside: VRRPv2/v3 messages (`vrrp`), the IP
//! layer around them (`ip`), whole frames for pcap, GARP / NA and test input (`frame`), and
//! the XDP program's ring records (`record`). No sockets, no clocks.

pub mod frame;
pub mod ip;
pub mod record;
pub mod vrrp;
