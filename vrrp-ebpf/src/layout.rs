//! Where things are in the frames the programs read: Ethernet, 802.1Q, IPv4, IPv6 and the
//! fixed VRRP header, as named offsets.

pub const ETH_HLEN: usize = 14;
pub const ETH_TYPE: usize = 12;
pub const ETH_SRC: usize = 6;
pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86DD;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88A8;
pub const VLAN_HLEN: usize = 4;

pub mod ipv4 {
    pub const MIN_HLEN: usize = 20;
    pub const TOTAL_LEN: usize = 2;
    pub const TTL: usize = 8;
    pub const PROTO: usize = 9;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
}

pub mod ipv6 {
    pub const HLEN: usize = 40;
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: usize = 8;
    pub const DST: usize = 24;
}

/// RFC 5798 5.1: the fixed part of every VRRP message.
pub const VRRP_HLEN: usize = 8;
pub const VRRP_VER_TYPE: usize = 0;
pub const VRRP_VRID: usize = 1;
pub const VRRP_COUNT: usize = 3;
/// RFC 3768 5.3.10: VRRPv2 carries 8 bytes of authentication data after the addresses.
pub const VRRP_V2_AUTH_LEN: usize = 8;
