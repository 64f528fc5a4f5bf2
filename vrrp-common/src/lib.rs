//! Layouts shared by the XDP program (`vrrp-ebpf`) and userspace (`vrrp-userspace`).
//!
//! Everything here crosses the kernel boundary, so it holds only integers and byte arrays,
//! `#[repr(C)]` with explicit padding; enums travel as integers and are decoded with `TryFrom`
//! on the userspace side, never transmuted.
#![no_std]

/// IP protocol number of VRRP (RFC 5798 5.1.1.4, RFC 3768 5.2.4).
pub const IPPROTO_VRRP: u8 = 112;
/// Address family codes carried in records and map keys (Linux's values).
pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;

/// How many bytes of the VRRP message (header, addresses, v2 auth data) a record carries.
/// 8 + 31 IPv6 addresses, or 8 + 124 IPv4 addresses + 8 auth: every sane advert fits; a larger
/// one is copied up to this size and flagged `RECORD_FLAG_TRUNCATED`.
pub const VRRP_CAPTURE_LEN: usize = 512;

/// Ring buffer size in bytes (a power of two, a multiple of the page size). A record is 592
/// bytes with the ring's header, so this holds about 1800 adverts: 18 s of a 100-router LAN at
/// advert_int 0.01, long enough for a descheduled reader to catch up.
pub const RING_BYTES: u32 = 1 << 20;

/// Maximum number of (ifindex, family, vrid) entries in the watch map.
pub const WATCH_MAX: u32 = 4096;

/// The verdict of the XDP program on one VRRP packet. Stored as `u32` in [`AdvertRecord`].
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// TTL / hop limit 255, version 2 or 3, type 1, long enough for its address count.
    Ok = 0,
    /// TTL or hop limit is not 255: the packet crossed a router (RFC 5798 7.1).
    BadTtl = 1,
    /// Version is neither 2 nor 3.
    BadVersion = 2,
    /// Type is not 1 (ADVERTISEMENT).
    BadType = 3,
    /// The IP payload is shorter than the VRRP header plus its address count says.
    BadLength = 4,
}

impl TryFrom<u32> for Verdict {
    type Error = u32;
    fn try_from(v: u32) -> Result<Self, u32> {
        Ok(match v {
            0 => Self::Ok,
            1 => Self::BadTtl,
            2 => Self::BadVersion,
            3 => Self::BadType,
            4 => Self::BadLength,
            other => return Err(other),
        })
    }
}

/// Record flag: the VRRP message was longer than [`VRRP_CAPTURE_LEN`] and was cut.
pub const RECORD_FLAG_TRUNCATED: u32 = 1;

/// One VRRP packet seen at XDP, as pushed through the ring buffer.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct AdvertRecord {
    /// `bpf_ktime_get_ns()` at arrival: CLOCK_MONOTONIC, nanoseconds.
    pub ktime_ns: u64,
    /// Ingress interface index.
    pub ifindex: u32,
    /// A [`Verdict`] as an integer.
    pub verdict: u32,
    /// `RECORD_FLAG_*` bits.
    pub flags: u32,
    /// [`AF_INET`] or [`AF_INET6`].
    pub family: u16,
    /// Outermost 802.1Q VLAN id, 0 when untagged.
    pub vlan: u16,
    /// IPv4 TTL or IPv6 hop limit as received.
    pub ttl: u8,
    pub _pad0: [u8; 1],
    /// Length of the VRRP message on the wire (IP payload length).
    pub vrrp_len: u16,
    /// Bytes of it copied into `vrrp`.
    pub captured: u16,
    /// Source MAC address.
    pub src_mac: [u8; 6],
    pub _pad1: [u8; 4],
    /// Source and destination addresses; IPv4 uses the first 4 bytes.
    pub src: [u8; 16],
    pub dst: [u8; 16],
    /// The VRRP message as on the wire.
    pub vrrp: [u8; VRRP_CAPTURE_LEN],
}

/// Key of the watch map: which (interface, family, VRID) the program reports.
/// VRID 0 is not a valid VRID (RFC 5798 5.2.3), so it serves as the wildcard "every VRID on
/// this interface and family", which `vrrpd watch` uses.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WatchKey {
    pub ifindex: u32,
    pub family: u16,
    pub vrid: u8,
    pub _pad: u8,
}

impl WatchKey {
    pub const WILDCARD_VRID: u8 = 0;
    pub const fn new(ifindex: u32, family: u16, vrid: u8) -> Self {
        Self {
            ifindex,
            family,
            vrid,
            _pad: 0,
        }
    }
}

/// Per-CPU counter indexes of the `COUNTERS` array. The names are what `vrrpd` prints.
pub mod counter {
    /// Every frame the program ran on.
    pub const FRAMES: u32 = 0;
    /// Frames that are not VRRP (passed untouched).
    pub const NOT_VRRP: u32 = 1;
    /// VRRP packets over IPv4 / IPv6.
    pub const VRRP_V4: u32 = 2;
    pub const VRRP_V6: u32 = 3;
    /// VRRP packets by verdict.
    pub const BAD_TTL: u32 = 4;
    pub const BAD_VERSION: u32 = 5;
    pub const BAD_TYPE: u32 = 6;
    pub const BAD_LENGTH: u32 = 7;
    /// Too short to hold even the fixed VRRP header.
    pub const TOO_SHORT: u32 = 8;
    /// VRRP for an (interface, family, VRID) nobody watches.
    pub const UNWATCHED: u32 = 9;
    /// Records pushed into the ring buffer.
    pub const EMITTED: u32 = 10;
    /// Records that did not fit into the ring buffer (the reader is behind).
    pub const RING_FULL: u32 = 11;
    /// Records whose VRRP message was cut to `VRRP_CAPTURE_LEN`.
    pub const TRUNCATED: u32 = 12;
    /// Frames carrying one or two 802.1Q / 802.1ad tags.
    pub const VLAN: u32 = 13;
    /// Copying the message out of the frame failed (should not happen).
    pub const LOAD_FAILED: u32 = 14;
    pub const COUNT: u32 = 15;

    /// Names, indexed by counter.
    pub const NAMES: [&str; COUNT as usize] = [
        "frames",
        "not_vrrp",
        "vrrp_ipv4",
        "vrrp_ipv6",
        "bad_ttl",
        "bad_version",
        "bad_type",
        "bad_length",
        "too_short",
        "unwatched",
        "emitted",
        "ring_full",
        "truncated",
        "vlan",
        "load_failed",
    ];
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain-old-data: `repr(C)`, integers and byte arrays only, every bit pattern valid,
    // padding explicit.
    unsafe impl aya::Pod for super::AdvertRecord {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::WatchKey {}
}

const _: () = assert!(core::mem::size_of::<AdvertRecord>() == 72 + VRRP_CAPTURE_LEN);
const _: () = assert!(core::mem::size_of::<WatchKey>() == 8);
