//! vrrpd's eBPF programs (ARCHITECTURE.md, "The packet path"), one file each: `xdp`, the
//! `kfree_skb` tracepoint and the `socket_count` filter, over the shared `maps` and `layout`.
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

mod kfree_skb;
mod layout;
mod maps;
mod socket_count;
mod xdp;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
