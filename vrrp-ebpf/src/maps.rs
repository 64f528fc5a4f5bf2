//! The maps every program shares with userspace (layouts in vrrp-common), and the counters.

use aya_ebpf::{
    macros::map,
    maps::{HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use vrrp_common::{
    DROP_RING_BYTES, DropProbe, RATE_SOURCES, RING_BYTES, RateKey, WATCH_MAX, WatchKey, counter,
};

#[map]
pub static ADVERTS: RingBuf = RingBuf::with_byte_size(RING_BYTES, 0);

#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

/// (ifindex, family, vrid) -> unused value. VRID 0 is the wildcard for a whole interface.
#[map]
pub static WATCH: HashMap<WatchKey, u32> = HashMap::with_max_entries(WATCH_MAX, 0);

/// Per source: the theoretical arrival time of its next record (GCRA), in ktime ns.
#[map]
pub static RATE: LruHashMap<RateKey, u64> = LruHashMap::with_max_entries(RATE_SOURCES, 0);

/// Per (ifindex, family, VRID, source): packets that reached a receive socket.
#[map]
pub static SOCKET_SEEN: LruHashMap<RateKey, u64> = LruHashMap::with_max_entries(RATE_SOURCES, 0);

#[map]
pub static DROPS: RingBuf = RingBuf::with_byte_size(DROP_RING_BYTES, 0);

/// Written by the loader before verification (see `DropProbe`); read-only here.
#[unsafe(no_mangle)]
pub static DROP_PROBE: DropProbe = DropProbe::DISABLED;

#[inline(always)]
pub fn count(index: u32) {
    if let Some(c) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: a per-CPU slot; nothing else runs on this CPU's copy while we do.
        unsafe { *c += 1 };
    }
}
