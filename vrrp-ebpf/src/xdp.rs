//! The XDP program: parses Ethernet (up to two VLAN tags), IPv4 or IPv6 and the VRRP header,
//! checks what needs no configuration (TTL, version, type, length), stamps the advert with the
//! kernel clock, copies it into the ring for the watched (interface, family, VRID), counts by
//! reason, and passes the frame. A per-source budget keeps one flooding address from filling
//! the ring. Every path returns XDP_PASS.

use core::mem::size_of;

use aya_ebpf::{
    bindings::xdp_action,
    helpers::{bpf_ktime_get_ns, generated::bpf_xdp_load_bytes},
    macros::xdp,
    programs::XdpContext,
};
use vrrp_common::{
    AF_INET, AF_INET6, AdvertRecord, IPPROTO_VRRP, RATE_BURST, RATE_INTERVAL_NS,
    RECORD_FLAG_TRUNCATED, RateKey, VRRP_CAPTURE_LEN, Verdict, WatchKey, counter,
};

use crate::{
    layout::*,
    maps::{ADVERTS, RATE, WATCH, count},
};

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

/// RFC 5798 7.1 / RFC 3768 7.1: the receive checks that need no configuration. The TTL must
/// be 255 on the multicast group; a unicast advert (keepalived's unicast_peer) may cross
/// routers, and the daemon checks it against the peer's min_ttl / max_ttl, as keepalived does.
#[inline(always)]
fn verdict(l3: &L3, multicast: bool, ver_type: u8, addr_count: u8, frame_room: usize) -> Verdict {
    let version = ver_type >> 4;
    if multicast && l3.ttl != 255 {
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
    // 224.0.0.0/4 or ff00::/8.
    let first = u8_at(ctx, l3.dst)?;
    let multicast = if l3.family == AF_INET {
        first & 0xf0 == 0xe0
    } else {
        first == 0xff
    };
    let verdict = verdict(&l3, multicast, ver_type, addr_count, frame_room);
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
