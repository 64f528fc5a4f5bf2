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

/// Ring buffer size in bytes (a power of two, a multiple of the page size) as the object
/// declares it, for the captures (`vrrpd watch`, `capture`). A record is 592 bytes with the
/// ring's header, so this holds about 1800 adverts. The daemon sizes its ring to its config at
/// load instead (`ring_bytes_for` in the userspace crate): the ring's pages are resident.
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
    /// VRRP packets of this host the kernel freed as dropped (skb:kfree_skb), reported.
    pub const KERNEL_DROPS: u32 = 15;
    /// Such drops that did not fit into the drop ring.
    pub const KERNEL_DROPS_LOST: u32 = 16;
    /// Records not emitted because their source exceeded its rate (`RATE_*`): a flood from one
    /// address cannot fill the ring and starve the elections of the real master's adverts.
    pub const RATE_LIMITED: u32 = 17;
    pub const COUNT: u32 = 18;

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
        "kernel_drops",
        "kernel_drops_lost",
        "rate_limited",
    ];
}

/// Per-source budget of records (GCRA): one every `RATE_INTERVAL_NS` on average, with bursts of
/// `RATE_BURST`. 400 a second is four times the fastest legal sender (VRRPv3 at advert_int
/// 0.01) with room for its immediate answers.
pub const RATE_INTERVAL_NS: u64 = 2_500_000;
pub const RATE_BURST: u64 = 100;
/// Sources tracked for the budget (an LRU map: spoofed floods evict old entries, never grow it).
pub const RATE_SOURCES: u32 = 4096;

/// Key of the rate map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RateKey {
    pub ifindex: u32,
    pub family: u16,
    pub vrid: u8,
    pub _pad: u8,
    pub src: [u8; 16],
}

/// Drop ring size in bytes: about 1100 drop records, 1 s of a firewall eating adverts from 100
/// routers at advert_int 0.01.
pub const DROP_RING_BYTES: u32 = 1 << 16;

/// Where the `skb:kfree_skb` program finds what it reads, in bytes. The kernel's layouts
/// differ between versions and aya has no CO-RE for Rust programs, so userspace learns them
/// at load time (the tracepoint's record from tracefs, the structs from BTF) and writes them
/// into this read-only global before the program is verified.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DropProbe {
    /// Inode of the network namespace whose drops are reported; `DropProbe::UNSET` turns the
    /// program into a no-op (the tracepoint is global: every namespace's drops pass by).
    pub netns_inum: u32,
    /// Offsets in the tracepoint record.
    pub tp_skbaddr: u32,
    pub tp_protocol: u32,
    pub tp_reason: u32,
    /// struct sk_buff: dev, sk, head, network_header.
    pub skb_dev: u32,
    pub skb_sk: u32,
    pub skb_head: u32,
    pub skb_network_header: u32,
    /// struct net_device: nd_net.net, ifindex.
    pub dev_net: u32,
    pub dev_ifindex: u32,
    /// struct sock: __sk_common.skc_net.net.
    pub sk_net: u32,
    /// struct net: ns.inum.
    pub net_inum: u32,
    /// The number of SOCKET_FILTER on this kernel: not reported. vrrpd's own socket filters
    /// free every copy they refuse, by design, and would fill the ring.
    pub benign_reason: u32,
}

impl DropProbe {
    pub const UNSET: u32 = u32::MAX;
    /// Not zero, so the global lands in .rodata, where the loader can patch it.
    pub const DISABLED: Self = Self {
        netns_inum: Self::UNSET,
        tp_skbaddr: Self::UNSET,
        tp_protocol: Self::UNSET,
        tp_reason: Self::UNSET,
        skb_dev: Self::UNSET,
        skb_sk: Self::UNSET,
        skb_head: Self::UNSET,
        skb_network_header: Self::UNSET,
        dev_net: Self::UNSET,
        dev_ifindex: Self::UNSET,
        sk_net: Self::UNSET,
        net_inum: Self::UNSET,
        benign_reason: Self::UNSET,
    };
}

/// One VRRP packet of this host that the kernel dropped, with its drop reason.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct DropRecord {
    /// `bpf_ktime_get_ns()` at the drop.
    pub ktime_ns: u64,
    /// The skb's device; 0 when it had none yet (a locally sent packet dropped on output).
    pub ifindex: u32,
    /// `enum skb_drop_reason` as a number; its name comes from the tracepoint's format.
    pub reason: u32,
    pub family: u16,
    pub vrid: u8,
    pub ttl: u8,
    pub _pad: [u8; 4],
    pub src: [u8; 16],
    pub dst: [u8; 16],
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: as below.
    unsafe impl aya::Pod for super::RateKey {}
    // SAFETY: as below.
    unsafe impl aya::Pod for super::DropProbe {}
    // SAFETY: as below.
    unsafe impl aya::Pod for super::DropRecord {}
    // SAFETY: plain-old-data: `repr(C)`, integers and byte arrays only, every bit pattern valid,
    // padding explicit.
    unsafe impl aya::Pod for super::AdvertRecord {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::WatchKey {}
}

const _: () = assert!(core::mem::size_of::<AdvertRecord>() == 72 + VRRP_CAPTURE_LEN);
const _: () = assert!(core::mem::size_of::<WatchKey>() == 8);
const _: () = assert!(core::mem::size_of::<DropRecord>() == 56);
const _: () = assert!(core::mem::size_of::<RateKey>() == 24);
const _: () = assert!(core::mem::size_of::<DropProbe>() == 52);
