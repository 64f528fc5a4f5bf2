//! The socket filter on the daemon's receive sockets: counts per source the adverts that got
//! past netfilter (the post-firewall half of "wire versus socket") and keeps none of them, so
//! that counting costs no copy and no wakeup, and a flood does not reach userspace.

use aya_ebpf::{
    bindings::bpf_hdr_start_off::BPF_HDR_START_NET,
    helpers::generated::bpf_skb_load_bytes_relative, macros::socket_filter,
    programs::SkBuffContext,
};
use vrrp_common::{AF_INET, AF_INET6, RateKey};

use crate::{layout::*, maps::SOCKET_SEEN};

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
