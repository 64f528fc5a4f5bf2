//! The `skb:kfree_skb` tracepoint program: reports VRRP packets of this host's network
//! namespace that the kernel drops after XDP (netfilter, rp_filter, a full socket), with the
//! kernel's drop reason. It only reads; where it reads comes from the loader (`DROP_PROBE`).

use aya_ebpf::{
    helpers::{bpf_ktime_get_ns, bpf_probe_read_kernel},
    macros::tracepoint,
    programs::TracePointContext,
};
use vrrp_common::{AF_INET, AF_INET6, DropProbe, DropRecord, IPPROTO_VRRP, counter};

use crate::{
    layout::*,
    maps::{DROP_PROBE, DROPS, count},
};

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
