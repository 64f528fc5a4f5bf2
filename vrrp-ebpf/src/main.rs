//! vrrpd's XDP program (see DESIGN.md, "The packet path").
//!
//! wire -> here (parse, check, stamp, copy into the ring buffer, count) -> XDP_PASS -> netfilter
//! -> the daemon's raw socket. It never drops and never modifies a frame: every path returns
//! XDP_PASS, so a bug here can cost a record, never a packet.
//!
//! A second program, on the `skb:kfree_skb` tracepoint, reports VRRP packets of this host's
//! network namespace that the kernel drops after XDP (netfilter, rp_filter, a full socket), with
//! the kernel's drop reason. It only reads.
//!
//! A third, a socket filter on the daemon's receive sockets, counts per source the adverts that
//! got past netfilter (the post-firewall half of "wire versus socket") and keeps none of them:
//! counting in the kernel costs no copy and no wakeup, so a flood does not reach userspace.
#![no_std]
#![no_main]

use core::mem::size_of;

use aya_ebpf::{
    bindings::{bpf_hdr_start_off::BPF_HDR_START_NET, xdp_action},
    helpers::{
        bpf_ktime_get_ns, bpf_probe_read_kernel,
        generated::{bpf_skb_load_bytes_relative, bpf_xdp_load_bytes},
    },
    macros::{map, socket_filter, tracepoint, xdp},
    maps::{HashMap, LruHashMap, PerCpuArray, RingBuf},
    programs::{SkBuffContext, TracePointContext, XdpContext},
};
use vrrp_common::{
    AF_INET, AF_INET6, AdvertRecord, DROP_RING_BYTES, DropProbe, DropRecord, IPPROTO_VRRP,
    RATE_BURST, RATE_INTERVAL_NS, RATE_SOURCES, RECORD_FLAG_TRUNCATED, RING_BYTES, RateKey,
    VRRP_CAPTURE_LEN, Verdict, WATCH_MAX, WatchKey, counter,
};

#[map]
static ADVERTS: RingBuf = RingBuf::with_byte_size(RING_BYTES, 0);

#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

/// (ifindex, family, vrid) -> unused value. VRID 0 is the wildcard for a whole interface.
#[map]
static WATCH: HashMap<WatchKey, u32> = HashMap::with_max_entries(WATCH_MAX, 0);

/// Per source: the theoretical arrival time of its next record (GCRA), in ktime ns.
#[map]
static RATE: LruHashMap<RateKey, u64> = LruHashMap::with_max_entries(RATE_SOURCES, 0);

/// Per (ifindex, family, VRID, source): packets that reached a receive socket.
#[map]
static SOCKET_SEEN: LruHashMap<RateKey, u64> = LruHashMap::with_max_entries(RATE_SOURCES, 0);

#[map]
static DROPS: RingBuf = RingBuf::with_byte_size(DROP_RING_BYTES, 0);

/// Written by the loader before verification (see `DropProbe`); read-only here.
#[unsafe(no_mangle)]
static DROP_PROBE: DropProbe = DropProbe::DISABLED;

const ETH_HLEN: usize = 14;
const ETH_TYPE: usize = 12;
const ETH_SRC: usize = 6;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88A8;
const VLAN_HLEN: usize = 4;

mod ipv4 {
    pub const MIN_HLEN: usize = 20;
    pub const TOTAL_LEN: usize = 2;
    pub const TTL: usize = 8;
    pub const PROTO: usize = 9;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
}

mod ipv6 {
    pub const HLEN: usize = 40;
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: usize = 8;
    pub const DST: usize = 24;
}

/// RFC 5798 5.1: the fixed part of every VRRP message.
const VRRP_HLEN: usize = 8;
const VRRP_VER_TYPE: usize = 0;
const VRRP_VRID: usize = 1;
const VRRP_COUNT: usize = 3;
/// RFC 3768 5.3.10: VRRPv2 carries 8 bytes of authentication data after the addresses.
const VRRP_V2_AUTH_LEN: usize = 8;

#[xdp]
pub fn vrrp(ctx: XdpContext) -> u32 {
    try_vrrp(&ctx);
    xdp_action::XDP_PASS
}

/// Does nothing: the baseline `cargo xtask bench` measures `vrrp`'s cost against (never
/// attached by the daemon).
#[xdp]
pub fn pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

#[inline(always)]
fn count(index: u32) {
    if let Some(c) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: a per-CPU slot; nothing else runs on this CPU's copy while we do.
        unsafe { *c += 1 };
    }
}

/// The only way this program reads the frame: a bounds-checked pointer the verifier accepts.
#[inline(always)]
fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Option<*const T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + size_of::<T>() > end {
        return None;
    }
    Some((start + offset) as *const T)
}

#[inline(always)]
fn u8_at(ctx: &XdpContext, offset: usize) -> Option<u8> {
    // SAFETY: ptr_at checked the bounds.
    ptr_at::<u8>(ctx, offset).map(|p| unsafe { *p })
}

#[inline(always)]
fn be16_at(ctx: &XdpContext, offset: usize) -> Option<u16> {
    // SAFETY: ptr_at checked the bounds; the read is unaligned-safe.
    ptr_at::<[u8; 2]>(ctx, offset).map(|p| u16::from_be_bytes(unsafe { *p }))
}

/// Where the network header starts and what it is, after up to two VLAN tags.
struct L2 {
    ethertype: u16,
    l3: usize,
    vlan: u16,
}

#[inline(always)]
fn parse_l2(ctx: &XdpContext) -> Option<L2> {
    let mut ethertype = be16_at(ctx, ETH_TYPE)?;
    let mut l3 = ETH_HLEN;
    let mut vlan = 0u16;
    // Two tags at most (802.1ad outer + 802.1Q inner); unrolled so the verifier sees no loop.
    if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
        count(counter::VLAN);
        vlan = be16_at(ctx, l3)? & 0x0fff;
        ethertype = be16_at(ctx, l3 + 2)?;
        l3 += VLAN_HLEN;
        if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
            ethertype = be16_at(ctx, l3 + 2)?;
            l3 += VLAN_HLEN;
        }
    }
    Some(L2 {
        ethertype,
        l3,
        vlan,
    })
}

/// What the network layer says about a VRRP packet.
struct L3 {
    family: u16,
    ttl: u8,
    vrrp: usize,
    vrrp_len: usize,
    src: usize,
    dst: usize,
    addr_len: usize,
}

#[inline(always)]
fn parse_l3(ctx: &XdpContext, l2: &L2) -> Option<L3> {
    let l3 = l2.l3;
    match l2.ethertype {
        ETH_P_IP => {
            let ver_ihl = u8_at(ctx, l3)?;
            let ihl = usize::from(ver_ihl & 0x0f) * 4;
            if ver_ihl >> 4 != 4
                || ihl < ipv4::MIN_HLEN
                || u8_at(ctx, l3 + ipv4::PROTO)? != IPPROTO_VRRP
            {
                return None;
            }
            let total = usize::from(be16_at(ctx, l3 + ipv4::TOTAL_LEN)?);
            Some(L3 {
                family: AF_INET,
                ttl: u8_at(ctx, l3 + ipv4::TTL)?,
                vrrp: l3 + ihl,
                vrrp_len: total.saturating_sub(ihl),
                src: l3 + ipv4::SRC,
                dst: l3 + ipv4::DST,
                addr_len: 4,
            })
        }
        ETH_P_IPV6 => {
            // VRRP follows the fixed header directly (RFC 5798 5.1.2); adverts carry no
            // extension headers, so a chain is not followed.
            if u8_at(ctx, l3 + ipv6::NEXT_HEADER)? != IPPROTO_VRRP {
                return None;
            }
            Some(L3 {
                family: AF_INET6,
                ttl: u8_at(ctx, l3 + ipv6::HOP_LIMIT)?,
                vrrp: l3 + ipv6::HLEN,
                vrrp_len: usize::from(be16_at(ctx, l3 + ipv6::PAYLOAD_LEN)?),
                src: l3 + ipv6::SRC,
                dst: l3 + ipv6::DST,
                addr_len: 16,
            })
        }
        _ => None,
    }
}

#[inline(always)]
fn is_watched(ifindex: u32, family: u16, vrid: u8) -> bool {
    // SAFETY: map lookups return a reference into the map value, which we do not keep.
    unsafe {
        WATCH.get(&WatchKey::new(ifindex, family, vrid)).is_some()
            || WATCH
                .get(&WatchKey::new(ifindex, family, WatchKey::WILDCARD_VRID))
                .is_some()
    }
}

/// RFC 5798 7.1 / RFC 3768 7.1: the receive checks that need no configuration.
#[inline(always)]
fn verdict(l3: &L3, ver_type: u8, addr_count: u8, frame_room: usize) -> Verdict {
    let version = ver_type >> 4;
    if l3.ttl != 255 {
        return Verdict::BadTtl;
    }
    if version != 2 && version != 3 {
        return Verdict::BadVersion;
    }
    if ver_type & 0x0f != 1 {
        return Verdict::BadType;
    }
    let mut need = VRRP_HLEN + usize::from(addr_count) * l3.addr_len;
    if version == 2 {
        need += VRRP_V2_AUTH_LEN;
    }
    if l3.vrrp_len < need || frame_room < l3.vrrp_len {
        return Verdict::BadLength;
    }
    Verdict::Ok
}

#[inline(always)]
fn try_vrrp(ctx: &XdpContext) -> Option<()> {
    count(counter::FRAMES);
    let Some(l3) = parse_l2(ctx).and_then(|l2| parse_l3(ctx, &l2).map(|l3| (l2, l3))) else {
        count(counter::NOT_VRRP);
        return None;
    };
    let (l2, l3) = l3;
    count(if l3.family == AF_INET {
        counter::VRRP_V4
    } else {
        counter::VRRP_V6
    });

    if l3.vrrp_len < VRRP_HLEN {
        count(counter::TOO_SHORT);
        return None;
    }
    // One bounds check for the first header word (version/type, VRID, priority, count).
    let Some(word) = ptr_at::<[u8; 4]>(ctx, l3.vrrp) else {
        count(counter::TOO_SHORT);
        return None;
    };
    // SAFETY: ptr_at checked the bounds.
    let word = unsafe { *word };
    let (ver_type, vrid, addr_count) = (word[VRRP_VER_TYPE], word[VRRP_VRID], word[VRRP_COUNT]);

    let ifindex = ctx.ingress_ifindex() as u32;
    if !is_watched(ifindex, l3.family, vrid) {
        count(counter::UNWATCHED);
        return None;
    }

    let frame_room = (ctx.data_end() - ctx.data()).saturating_sub(l3.vrrp);
    let verdict = verdict(&l3, ver_type, addr_count, frame_room);
    let bad = match verdict {
        Verdict::Ok => None,
        Verdict::BadTtl => Some(counter::BAD_TTL),
        Verdict::BadVersion => Some(counter::BAD_VERSION),
        Verdict::BadType => Some(counter::BAD_TYPE),
        Verdict::BadLength => Some(counter::BAD_LENGTH),
    };
    if let Some(index) = bad {
        count(index);
    }
    if !within_rate(ctx, &l3, ifindex, vrid) {
        count(counter::RATE_LIMITED);
        return None;
    }
    // Bad packets for a watched VRID are reported too: the daemon counts them per source, which
    // is how a peer with the wrong TTL (a router in the path) gets named.
    emit(ctx, &l2, &l3, ifindex, verdict, frame_room);
    Some(())
}

/// GCRA per (interface, family, VRID, source): true while the source keeps to its budget.
/// Updates race between CPUs; a lost update only lets a few more records through.
#[inline(always)]
fn within_rate(ctx: &XdpContext, l3: &L3, ifindex: u32, vrid: u8) -> bool {
    let mut src = [0u8; 16];
    if l3.addr_len == 4 {
        match ptr_at::<[u8; 4]>(ctx, l3.src) {
            // SAFETY: ptr_at checked the bounds.
            Some(p) => src[..4].copy_from_slice(unsafe { &*p }),
            None => return true,
        }
    } else {
        match ptr_at::<[u8; 16]>(ctx, l3.src) {
            // SAFETY: ptr_at checked the bounds.
            Some(p) => src = unsafe { *p },
            None => return true,
        }
    }
    let key = RateKey {
        ifindex,
        family: l3.family,
        vrid,
        _pad: 0,
        src,
    };
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    let tolerance = RATE_INTERVAL_NS * RATE_BURST;
    // SAFETY: the value is read and written through the map's own pointer, not kept.
    match RATE.get_ptr_mut(&key) {
        Some(tat) => unsafe {
            let t = if *tat < now { now } else { *tat };
            if t - now > tolerance {
                return false;
            }
            *tat = t + RATE_INTERVAL_NS;
            true
        },
        None => {
            let _ = RATE.insert(&key, &(now + RATE_INTERVAL_NS), 0);
            true
        }
    }
}

#[inline(always)]
fn emit(ctx: &XdpContext, l2: &L2, l3: &L3, ifindex: u32, verdict: Verdict, frame_room: usize) {
    let Some(mut entry) = ADVERTS.reserve::<AdvertRecord>(0) else {
        count(counter::RING_FULL);
        return;
    };
    let rec = entry.as_mut_ptr();
    let avail = if l3.vrrp_len < frame_room {
        l3.vrrp_len
    } else {
        frame_room
    };
    let mut flags = 0;
    let mut take = avail;
    if take > VRRP_CAPTURE_LEN {
        take = VRRP_CAPTURE_LEN;
        flags |= RECORD_FLAG_TRUNCATED;
        count(counter::TRUNCATED);
    }
    // SAFETY: `rec` points at a reserved ring-buffer slot of size_of::<AdvertRecord>() bytes;
    // every field written below lies inside it, and reads of the frame go through ptr_at.
    unsafe {
        (*rec).ktime_ns = bpf_ktime_get_ns();
        (*rec).ifindex = ifindex;
        (*rec).verdict = verdict as u32;
        (*rec).family = l3.family;
        (*rec).vlan = l2.vlan;
        (*rec).ttl = l3.ttl;
        (*rec)._pad0 = [0];
        (*rec)._pad1 = [0; 4];
        (*rec).vrrp_len = l3.vrrp_len as u16;
        (*rec).src_mac = match ptr_at::<[u8; 6]>(ctx, ETH_SRC) {
            Some(p) => *p,
            None => [0; 6],
        };
        let mut src = [0u8; 16];
        let mut dst = [0u8; 16];
        if l3.addr_len == 4 {
            if let (Some(s), Some(d)) = (
                ptr_at::<[u8; 4]>(ctx, l3.src),
                ptr_at::<[u8; 4]>(ctx, l3.dst),
            ) {
                let (s, d) = (*s, *d);
                src[..4].copy_from_slice(&s);
                dst[..4].copy_from_slice(&d);
            }
        } else if let (Some(s), Some(d)) = (
            ptr_at::<[u8; 16]>(ctx, l3.src),
            ptr_at::<[u8; 16]>(ctx, l3.dst),
        ) {
            src = *s;
            dst = *d;
        }
        (*rec).src = src;
        (*rec).dst = dst;
        let mut captured = 0u16;
        // The helper copies from the frame even when it is not linear; its length must be a
        // verifier-visible range of 1..=VRRP_CAPTURE_LEN.
        if take > 0 && take <= VRRP_CAPTURE_LEN {
            let ret = bpf_xdp_load_bytes(
                ctx.ctx,
                l3.vrrp as u32,
                core::ptr::addr_of_mut!((*rec).vrrp).cast(),
                take as u32,
            );
            if ret == 0 {
                captured = take as u16;
            } else {
                count(counter::LOAD_FAILED);
            }
        }
        (*rec).captured = captured;
        (*rec).flags = flags;
    }
    entry.submit(0);
    count(counter::EMITTED);
}

#[socket_filter]
pub fn socket_count(ctx: SkBuffContext) -> i64 {
    let skb = ctx.skb.skb;
    // SAFETY: fields of the program's own context, which the verifier lets it read.
    let (ifindex, protocol) = unsafe { ((*skb).ifindex, (*skb).protocol) };
    let mut src = [0u8; 16];
    // Raw IPv6 sockets start at the VRRP header: read the source relative to the network
    // header, which works for both families.
    let (family, ret) = if protocol == u32::from(ETH_P_IP.to_be()) {
        // SAFETY: the helper bounds-checks against the packet and writes at most 4 bytes.
        let r = unsafe {
            bpf_skb_load_bytes_relative(
                skb.cast(),
                ipv4::SRC as u32,
                src.as_mut_ptr().cast(),
                4,
                BPF_HDR_START_NET,
            )
        };
        (AF_INET, r)
    } else if protocol == u32::from(ETH_P_IPV6.to_be()) {
        // SAFETY: as above, 16 bytes.
        let r = unsafe {
            bpf_skb_load_bytes_relative(
                skb.cast(),
                ipv6::SRC as u32,
                src.as_mut_ptr().cast(),
                16,
                BPF_HDR_START_NET,
            )
        };
        (AF_INET6, r)
    } else {
        return 0;
    };
    if ret != 0 {
        return 0;
    }
    // The VRID: after the IPv4 header (its length in the first byte) or the fixed IPv6 one.
    let mut first = [0u8; 1];
    let vrrp_at = if family == AF_INET {
        // SAFETY: one byte into a local buffer; the helper bounds-checks the packet.
        let r = unsafe {
            bpf_skb_load_bytes_relative(
                skb.cast(),
                0,
                first.as_mut_ptr().cast(),
                1,
                BPF_HDR_START_NET,
            )
        };
        if r != 0 {
            return 0;
        }
        u32::from(first[0] & 0x0f) * 4
    } else {
        ipv6::HLEN as u32
    };
    let mut vrid = [0u8; 1];
    // SAFETY: as above.
    let r = unsafe {
        bpf_skb_load_bytes_relative(
            skb.cast(),
            vrrp_at + VRRP_VRID as u32,
            vrid.as_mut_ptr().cast(),
            1,
            BPF_HDR_START_NET,
        )
    };
    if r != 0 {
        return 0;
    }
    let key = RateKey {
        ifindex,
        family,
        vrid: vrid[0],
        _pad: 0,
        src,
    };
    match SOCKET_SEEN.get_ptr_mut(&key) {
        // SAFETY: the map's own value; a race between CPUs may lose a count, no more.
        Some(n) => unsafe { *n += 1 },
        None => {
            let _ = SOCKET_SEEN.insert(&key, &1, 0);
        }
    }
    0
}

#[tracepoint]
pub fn kfree_skb(ctx: TracePointContext) -> u32 {
    let _ = try_kfree_skb(&ctx);
    0
}

/// Reads a kernel value at `base + offset`; a fault (a freed or odd pointer) is an `Err`.
#[inline(always)]
fn kread<T>(base: u64, offset: u32) -> Result<T, i32> {
    // SAFETY: bpf_probe_read_kernel copies through the kernel's fault handler: a bad address
    // yields an error, never a fault.
    unsafe { bpf_probe_read_kernel((base + u64::from(offset)) as *const T) }
}

#[inline(always)]
fn try_kfree_skb(ctx: &TracePointContext) -> Result<(), i32> {
    // SAFETY: a plain read of a global the loader initialised.
    let p = unsafe { core::ptr::read_volatile(&DROP_PROBE) };
    if p.netns_inum == DropProbe::UNSET {
        return Ok(());
    }
    // SAFETY: offsets from the tracepoint's own format file; the helper checks the bounds.
    let protocol: u16 = unsafe { ctx.read_at(p.tp_protocol as usize)? };
    let family = match protocol {
        ETH_P_IP => AF_INET,
        ETH_P_IPV6 => AF_INET6,
        _ => return Ok(()),
    };
    // SAFETY: as above.
    let skb: u64 = unsafe { ctx.read_at(p.tp_skbaddr as usize)? };
    let head: u64 = kread(skb, p.skb_head)?;
    let nh: u16 = kread(skb, p.skb_network_header)?;
    let ip = head + u64::from(nh);
    let (proto, ttl, vrrp, addr_at, addr_len) = if family == AF_INET {
        let ver_ihl: u8 = kread(ip, 0)?;
        let ihl = u64::from(ver_ihl & 0x0f) * 4;
        (
            kread::<u8>(ip, ipv4::PROTO as u32)?,
            kread::<u8>(ip, ipv4::TTL as u32)?,
            ip + ihl,
            ipv4::SRC as u32,
            4u32,
        )
    } else {
        (
            kread::<u8>(ip, ipv6::NEXT_HEADER as u32)?,
            kread::<u8>(ip, ipv6::HOP_LIMIT as u32)?,
            ip + ipv6::HLEN as u64,
            ipv6::SRC as u32,
            16u32,
        )
    };
    if proto != IPPROTO_VRRP {
        return Ok(());
    }
    // Whose drop is it? Received packets have a device; a locally sent one dropped before
    // ip_output() has none yet, but has its socket.
    let dev: u64 = kread(skb, p.skb_dev)?;
    let net: u64 = if dev != 0 {
        kread(dev, p.dev_net)?
    } else {
        let sk: u64 = kread(skb, p.skb_sk)?;
        if sk == 0 {
            return Ok(());
        }
        kread(sk, p.sk_net)?
    };
    if net == 0 || kread::<u32>(net, p.net_inum)? != p.netns_inum {
        return Ok(());
    }
    // SAFETY: as for `protocol`.
    let reason = unsafe { ctx.read_at::<u32>(p.tp_reason as usize) }.unwrap_or(0);
    if reason == p.benign_reason {
        return Ok(());
    }
    count(counter::KERNEL_DROPS);
    let Some(mut entry) = DROPS.reserve::<DropRecord>(0) else {
        count(counter::KERNEL_DROPS_LOST);
        return Ok(());
    };
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    if addr_len == 4 {
        src[..4].copy_from_slice(&kread::<[u8; 4]>(ip, addr_at).unwrap_or([0; 4]));
        dst[..4].copy_from_slice(&kread::<[u8; 4]>(ip, addr_at + 4).unwrap_or([0; 4]));
    } else {
        src = kread::<[u8; 16]>(ip, addr_at).unwrap_or([0; 16]);
        dst = kread::<[u8; 16]>(ip, addr_at + 16).unwrap_or([0; 16]);
    }
    // SAFETY: a helper without arguments.
    let ktime_ns = unsafe { bpf_ktime_get_ns() };
    entry.write(DropRecord {
        ktime_ns,
        ifindex: if dev != 0 {
            kread(dev, p.dev_ifindex).unwrap_or(0)
        } else {
            0
        },
        reason,
        family,
        vrid: kread::<u8>(vrrp, VRRP_VRID as u32).unwrap_or(0),
        ttl,
        _pad: [0; 4],
        src,
        dst,
    });
    entry.submit(0);
    Ok(())
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
