//! The eBPF data path: loads the programs (XDP, the `skb:kfree_skb` probe, the socket-counting
//! filter), attaches XDP to interfaces through bpf links, and reads what they saw: the ring of
//! adverts, the counters, the kernel's drop reasons (`drops`, with struct offsets from `btf`).
//!
//! The object is built by build.rs (aya-build) and embedded in the binary: there is no path to
//! get wrong at run time. Links are owned by the loaded program, which this struct owns, so the
//! program detaches when the `Datapath` is dropped and, because they are bpf links rather than
//! netlink attachments, also when the process dies without dropping anything (kill -9).

pub mod btf;
pub mod drops;

use std::{collections::HashMap as StdHashMap, io, os::fd::AsRawFd as _};

use aya::{
    Ebpf, EbpfError, EbpfLoader,
    maps::{HashMap, MapData, MapError, PerCpuArray, RingBuf},
    programs::{ProgramError, SocketFilter, TracePoint, Xdp, XdpMode, xdp::XdpLinkId},
};
use thiserror::Error;
use tokio::io::unix::AsyncFd;
use tracing::{debug, info, warn};
use vrrp_common::{WatchKey, counter};

use self::drops::{Drop, Format, KernelReason};
use crate::{sys::caps, wire::record::WireRecord};

/// What ended a wait in `Datapath::recv`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Woke {
    /// Adverts were read.
    Adverts,
    /// The kernel reported drops.
    Drops,
}

/// The XDP object, aligned as aya needs it.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/vrrp"));
const PROGRAM: &str = "vrrp";
const DROP_PROGRAM: &str = "kfree_skb";
const SOCKET_PROGRAM: &str = "socket_count";

#[derive(Debug, Error)]
pub enum DatapathError {
    #[error("{0}")]
    Privileges(#[from] caps::MissingCaps),
    #[error("loading the XDP object: {source}{hint}")]
    Load {
        #[source]
        source: Box<EbpfError>,
        hint: &'static str,
    },
    #[error("the XDP object has no {0}")]
    Missing(&'static str),
    #[error("XDP program: {0}")]
    Program(#[from] Box<ProgramError>),
    #[error("map {name}: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: MapError,
    },
    #[error("interface {ifname}: {source}")]
    Interface {
        ifname: String,
        #[source]
        source: nix::Error,
    },
    #[error("cannot attach XDP to {ifname} (native: {native}; generic: {source})")]
    Attach {
        ifname: String,
        native: Box<ProgramError>,
        #[source]
        source: Box<ProgramError>,
    },
    #[error("cannot attach XDP to {ifname} in {mode} mode: {source}")]
    AttachIn {
        ifname: String,
        mode: &'static str,
        #[source]
        source: Box<ProgramError>,
    },
    #[error("ring buffer: {0}")]
    Ring(#[source] io::Error),
}

/// Which XDP mode to ask for (`vrrpd run --xdp-mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ModePreference {
    /// Native on physical NICs; generic on virtual devices (veth, bridges, bonds, VLANs,
    /// macvlan), where native XDP adds little and, on veth, puts a 256-packet ring in front of
    /// the program that a flood overflows (dropping the real master's adverts with it).
    #[default]
    Auto,
    /// In the driver; an error where the driver has none.
    Native,
    /// Generic (skb) mode everywhere.
    Generic,
}

/// A device without hardware behind it (sysfs puts those under /sys/devices/virtual).
fn is_virtual(ifname: &str) -> bool {
    std::fs::read_link(format!("/sys/class/net/{ifname}"))
        .is_ok_and(|p| p.to_string_lossy().contains("/devices/virtual/"))
}

/// How the program ended up attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AttachMode {
    /// In the driver (veth, most NICs): runs before an skb exists.
    Native,
    /// Generic (skb) mode: the driver has no XDP; same semantics, later in the stack.
    Generic,
}

/// An interface the program runs on.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Attached {
    pub ifname: String,
    pub ifindex: u32,
    pub mode: AttachMode,
}

/// XDP counters summed over CPUs, indexed by `vrrp_common::counter`. Serialized as a map
/// from the counter's name to its value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters(pub [u64; counter::COUNT as usize]);

impl Counters {
    pub fn get(&self, index: u32) -> u64 {
        self.0.get(index as usize).copied().unwrap_or(0)
    }
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        counter::NAMES.iter().copied().zip(self.0.iter().copied())
    }
}

impl serde::Serialize for Counters {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> serde::Deserialize<'de> for Counters {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = std::collections::BTreeMap::<String, u64>::deserialize(d)?;
        let mut out = Self::default();
        for (i, name) in counter::NAMES.iter().enumerate() {
            if let Some(v) = map.get(*name) {
                out.0[i] = *v;
            }
        }
        Ok(out)
    }
}

impl std::fmt::Display for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for (name, value) in self.iter() {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            write!(f, "{name}={value}")?;
        }
        Ok(())
    }
}

pub struct Datapath {
    // Owns the program and so its links; dropped last (fields drop in order).
    ring: AsyncFd<RingBuf<MapData>>,
    counters: PerCpuArray<MapData, u64>,
    watch: HashMap<MapData, WatchKey, u32>,
    /// The drop-reason probe's ring and reason names, or why it does not run.
    drops: Result<(AsyncFd<RingBuf<MapData>>, Format), String>,
    attached: Vec<Attached>,
    /// The bpf link of each attachment, by ifindex, to detach one interface alone.
    links: StdHashMap<u32, XdpLinkId>,
    names: StdHashMap<u32, String>,
    mode: ModePreference,
    /// The advert ring's size, fixed at load.
    ring_bytes: u32,
    ebpf: Ebpf,
}

impl Datapath {
    /// Loads the program and its maps. Needs CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN (or
    /// CAP_SYS_ADMIN); says which are missing instead of failing on the first map.
    /// Must be called inside a tokio runtime (the ring buffer registers with its reactor).
    pub fn load() -> Result<Self, DatapathError> {
        Self::load_inner(None, vrrp_common::RING_BYTES)
    }

    /// The advert ring's size in bytes (set at load; a reload cannot change it).
    pub fn ring_bytes(&self) -> u32 {
        self.ring_bytes
    }

    /// As `load`, and also runs the `skb:kfree_skb` probe, which names the kernel's reason for
    /// every VRRP packet of this network namespace it drops. When the probe cannot run (no
    /// tracefs, no BTF, a kernel without drop reasons), says why once, at warn level, and goes
    /// on: the wire-versus-socket counts still show the loss, without the kernel's reason.
    /// `ring_bytes` sizes the advert ring (a power of two, at least a page): its pages are
    /// mapped twice and resident for the daemon's life, so it is sized to the configured
    /// advert rate (`ring_bytes_for`) rather than to the largest one.
    pub fn load_with_drop_reasons(ring_bytes: u32) -> Result<Self, DatapathError> {
        let probe = drops::discover().map_err(|e| e.to_string());
        let mut capture = Self::load_inner(Some(probe), ring_bytes)?;
        if let Err(why) = &capture.drops {
            warn!(
                "kernel drop reasons unavailable, diagnosing from wire-versus-socket counts alone: {why}"
            );
        } else if let Err(why) = capture.attach_drop_probe() {
            warn!(
                "kernel drop reasons unavailable, diagnosing from wire-versus-socket counts alone: {why}"
            );
            capture.drops = Err(why);
        } else {
            info!("drop-reason probe attached to skb:kfree_skb");
        }
        Ok(capture)
    }

    fn attach_drop_probe(&mut self) -> Result<(), String> {
        let program: &mut TracePoint = self
            .ebpf
            .program_mut(DROP_PROGRAM)
            .ok_or("the object has no kfree_skb program")?
            .try_into()
            .map_err(|e: ProgramError| e.to_string())?;
        program
            .load()
            .map_err(|e| format!("loading the kfree_skb program: {e}"))?;
        program
            .attach("skb", "kfree_skb")
            .map_err(|e| format!("attaching to skb:kfree_skb: {e}"))?;
        Ok(())
    }

    fn load_inner(
        probe: Option<Result<(vrrp_common::DropProbe, Format), String>>,
        ring_bytes: u32,
    ) -> Result<Self, DatapathError> {
        caps::require(&[caps::Cap::Bpf, caps::Cap::Perfmon, caps::Cap::NetAdmin])?;
        raise_memlock();
        let values = match &probe {
            Some(Ok((values, _))) => *values,
            _ => vrrp_common::DropProbe::DISABLED,
        };
        let mut ebpf = EbpfLoader::new()
            .override_global("DROP_PROBE", &values, true)
            .map_max_entries("ADVERTS", ring_bytes)
            .load(OBJECT)
            .map_err(|source| {
            let hint = if is_eperm(&source) {
                "; the kernel refused it (EPERM): run as root or grant CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN"
            } else {
                ""
            };
            DatapathError::Load { source: Box::new(source), hint }
        })?;
        let map = |ebpf: &mut Ebpf, name: &'static str| {
            ebpf.take_map(name).ok_or(DatapathError::Missing(name))
        };
        let ring =
            RingBuf::try_from(map(&mut ebpf, "ADVERTS")?).map_err(|source| DatapathError::Map {
                name: "ADVERTS",
                source,
            })?;
        let counters = PerCpuArray::try_from(map(&mut ebpf, "COUNTERS")?).map_err(|source| {
            DatapathError::Map {
                name: "COUNTERS",
                source,
            }
        })?;
        let watch =
            HashMap::try_from(map(&mut ebpf, "WATCH")?).map_err(|source| DatapathError::Map {
                name: "WATCH",
                source,
            })?;
        let drops = match probe {
            Some(Ok((_, format))) => match map(&mut ebpf, "DROPS").map(RingBuf::try_from) {
                Ok(Ok(ring)) => Ok((ring, format)),
                Ok(Err(e)) => Err(format!("map DROPS: {e}")),
                Err(e) => Err(e.to_string()),
            },
            Some(Err(why)) => Err(why),
            None => Err("not asked for".to_owned()),
        };
        let program: &mut Xdp = ebpf
            .program_mut(PROGRAM)
            .ok_or(DatapathError::Missing("XDP program"))?
            .try_into()
            .map_err(Box::new)?;
        program.load().map_err(Box::new)?;
        // Loaded now, while CAP_BPF is held: sockets that a reload adds are counted after the
        // daemon has dropped it.
        // Not fatal: without it the daemon reads its sockets to count (count_socket fails).
        if let Some(Ok(filter)) = ebpf
            .program_mut(SOCKET_PROGRAM)
            .map(<&mut SocketFilter>::try_from)
            && let Err(e) = filter.load()
        {
            warn!(
                "the socket-counting filter did not load ({e}); the VRRP sockets will be read instead"
            );
        }
        // The safe alternative, `AsyncFd::register`, is `unsafe` (and this crate forbids unsafe
        // code). The deprecation is about an fd closed while still registered; here the
        // AsyncFd owns the RingBuf, which owns the fd, so neither outlives the other.
        #[expect(deprecated, reason = "AsyncFd owns the ring, which owns the fd")]
        let ring = AsyncFd::new(ring).map_err(DatapathError::Ring)?;
        #[expect(deprecated, reason = "AsyncFd owns the ring, which owns the fd")]
        let drops = drops.and_then(|(ring, format)| {
            AsyncFd::new(ring)
                .map(|r| (r, format))
                .map_err(|e| format!("the drop ring cannot be polled: {e}"))
        });
        Ok(Self {
            ring,
            counters,
            watch,
            drops,
            mode: ModePreference::Auto,
            attached: Vec::new(),
            links: StdHashMap::new(),
            names: StdHashMap::new(),
            ring_bytes,
            ebpf,
        })
    }

    /// The mode `attach` asks for from now on.
    pub fn set_mode(&mut self, mode: ModePreference) {
        self.mode = mode;
    }

    /// Attaches to `ifname` in the preferred mode (auto: native on a physical NIC, falling
    /// back to generic when its driver has no XDP; generic on a virtual device).
    pub fn attach(&mut self, ifname: &str) -> Result<&Attached, DatapathError> {
        let generic_first = match self.mode {
            ModePreference::Generic => true,
            ModePreference::Native => false,
            ModePreference::Auto => is_virtual(ifname),
        };
        let may_fall_back = self.mode != ModePreference::Native;
        let ifindex =
            nix::net::if_::if_nametoindex(ifname).map_err(|source| DatapathError::Interface {
                ifname: ifname.to_owned(),
                source,
            })?;
        let program: &mut Xdp = self
            .ebpf
            .program_mut(PROGRAM)
            .ok_or(DatapathError::Missing("XDP program"))?
            .try_into()
            .map_err(Box::new)?;
        // Driver mode explicitly: the kernel's default would fall back to generic silently, and
        // the operator should know which one runs.
        let first = if generic_first {
            program
                .attach_to_if_index(ifindex, XdpMode::Skb)
                .map(|l| (l, AttachMode::Generic))
        } else {
            program
                .attach_to_if_index(ifindex, XdpMode::Driver)
                .map(|l| (l, AttachMode::Native))
        };
        let (link, mode) = match first {
            Ok(m) => m,
            Err(e) if generic_first || !may_fall_back => {
                return Err(DatapathError::AttachIn {
                    ifname: ifname.to_owned(),
                    mode: if generic_first { "generic" } else { "native" },
                    source: Box::new(e),
                });
            }
            Err(native) => {
                warn!(ifname, error = %native, "native XDP refused, falling back to generic (skb) mode");
                let link = program
                    .attach_to_if_index(ifindex, XdpMode::Skb)
                    .map_err(|source| DatapathError::Attach {
                        ifname: ifname.to_owned(),
                        native: Box::new(native),
                        source: Box::new(source),
                    })?;
                (link, AttachMode::Generic)
            }
        };
        info!(ifname, ifindex, ?mode, "XDP attached");
        self.links.insert(ifindex, link);
        self.names.insert(ifindex, ifname.to_owned());
        self.attached.push(Attached {
            ifname: ifname.to_owned(),
            ifindex,
            mode,
        });
        Ok(self.attached.last().expect("just pushed"))
    }

    /// Forgets the attachment to `ifname`: the interface was deleted (the kernel detached the
    /// program with it) or re-created under a new ifindex. Detaching a link whose device is gone
    /// fails harmlessly; the link is released either way.
    pub fn detach(&mut self, ifname: &str) {
        let gone: Vec<u32> = self
            .attached
            .iter()
            .filter(|a| a.ifname == ifname)
            .map(|a| a.ifindex)
            .collect();
        self.attached.retain(|a| a.ifname != ifname);
        for ifindex in gone {
            self.names.remove(&ifindex);
            if let Some(link) = self.links.remove(&ifindex)
                && let Some(Ok(program)) = self.ebpf.program_mut(PROGRAM).map(<&mut Xdp>::try_from)
                && let Err(e) = program.detach(link)
            {
                debug!(ifname, ifindex, "XDP detach: {e}");
            }
        }
    }

    pub fn attached(&self) -> &[Attached] {
        &self.attached
    }

    pub fn ifname(&self, ifindex: u32) -> Option<&str> {
        self.names.get(&ifindex).map(String::as_str)
    }

    /// Asks the program to report `key`'s adverts (`WatchKey::WILDCARD_VRID` for all).
    pub fn watch(&mut self, key: WatchKey) -> Result<(), DatapathError> {
        self.watch
            .insert(key, 1, 0)
            .map_err(|source| DatapathError::Map {
                name: "WATCH",
                source,
            })
    }

    pub fn unwatch(&mut self, key: &WatchKey) -> Result<(), DatapathError> {
        match self.watch.remove(key) {
            Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
            Err(source) => Err(DatapathError::Map {
                name: "WATCH",
                source,
            }),
        }
    }

    /// One counter (`vrrp_common::counter`), summed over CPUs: one map lookup.
    pub fn counter(&self, index: u32) -> Option<u64> {
        self.counters
            .get(&index, 0)
            .ok()
            .map(|per_cpu| per_cpu.iter().sum())
    }

    pub fn counters(&self) -> Result<Counters, DatapathError> {
        let mut out = Counters::default();
        for (i, slot) in out.0.iter_mut().enumerate() {
            let index = u32::try_from(i).unwrap_or(u32::MAX);
            let per_cpu = self
                .counters
                .get(&index, 0)
                .map_err(|source| DatapathError::Map {
                    name: "COUNTERS",
                    source,
                })?;
            *slot = per_cpu.iter().sum();
        }
        Ok(out)
    }

    /// Takes every record waiting in the ring without blocking. Records that do not decode are
    /// counted in `bad` (they would mean the two sides disagree on the layout).
    pub fn drain(&mut self, out: &mut Vec<WireRecord>, bad: &mut u64) {
        let ring = self.ring.get_mut();
        while let Some(item) = ring.next() {
            match WireRecord::decode(&item) {
                Ok(advert) => out.push(advert),
                Err(_) => *bad += 1,
            }
        }
    }

    /// Takes every drop the kernel reported since the last call, with the reason's name.
    /// Nothing when the probe does not run.
    pub fn drain_drops(&mut self, out: &mut Vec<(Drop, KernelReason)>) {
        if let Ok((ring, format)) = &mut self.drops {
            while let Some(item) = ring.get_mut().next() {
                if let Some(d) = Drop::decode(&item) {
                    let name = format.reason(d.reason);
                    out.push((d, name));
                }
            }
        }
    }

    /// Counts, in the kernel, the packets that reach `socket` per source, and keeps none of
    /// them (see `socket_counts`). For sockets whose packets nobody needs to read.
    pub fn count_socket(
        &mut self,
        socket: std::os::fd::BorrowedFd<'_>,
    ) -> Result<(), DatapathError> {
        let program: &mut SocketFilter = self
            .ebpf
            .program_mut(SOCKET_PROGRAM)
            .ok_or(DatapathError::Missing("socket filter"))?
            .try_into()
            .map_err(Box::new)?;
        program.attach(socket).map_err(Box::new)?;
        Ok(())
    }

    /// What `count_socket` counted: (ifindex, source, VRID) -> packets, since start.
    pub fn socket_counts(&self) -> Vec<((u32, std::net::IpAddr, u8), u64)> {
        let Some(map) = self.ebpf.map("SOCKET_SEEN") else {
            return Vec::new();
        };
        let Ok(map) = HashMap::<_, vrrp_common::RateKey, u64>::try_from(map) else {
            return Vec::new();
        };
        map.iter()
            .filter_map(Result::ok)
            .map(|(k, n)| {
                let src = if k.family == vrrp_common::AF_INET {
                    std::net::IpAddr::from([k.src[0], k.src[1], k.src[2], k.src[3]])
                } else {
                    std::net::IpAddr::from(k.src)
                };
                ((k.ifindex, src, k.vrid), n)
            })
            .collect()
    }

    /// Whether the drop-reason probe runs, or why not.
    pub fn drop_probe(&self) -> Result<(), &str> {
        self.drops.as_ref().map(|_| ()).map_err(String::as_str)
    }

    /// Waits until the advert ring has records, then drains it into `out`; with `drops`, or
    /// until the kernel reports a drop (left in its ring for `drain_drops`).
    pub async fn recv(
        &mut self,
        out: &mut Vec<WireRecord>,
        bad: &mut u64,
        drops: bool,
    ) -> Result<Woke, DatapathError> {
        let drops = async {
            match &self.drops {
                Ok((ring, _)) if drops => match ring.readable().await {
                    Ok(mut guard) => guard.clear_ready(),
                    // Not worth ending the daemon for: the samples still drain it.
                    Err(_) => std::future::pending().await,
                },
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            guard = self.ring.readable() => guard.map_err(DatapathError::Ring)?.clear_ready(),
            () = drops => return Ok(Woke::Drops),
        }
        self.drain(out, bad);
        Ok(Woke::Adverts)
    }

    /// Runs the loaded program on `frame` with BPF_PROG_TEST_RUN, `repeat` times, without any
    /// interface (the kernel presents it as arriving on the loopback device of the current
    /// namespace). Returns the XDP action and the kernel's mean time per run. Used by the XDP
    /// unit tests and by `cargo xtask bench` (cost per packet).
    pub fn test_run(
        &self,
        frame: &[u8],
        repeat: u32,
    ) -> Result<(u32, std::time::Duration), DatapathError> {
        self.test_run_program(PROGRAM, frame, repeat)
    }

    /// As `test_run`, for the empty program `pass` (the benchmark's baseline), loading it on
    /// first use.
    pub fn test_run_baseline(
        &mut self,
        frame: &[u8],
        repeat: u32,
    ) -> Result<(u32, std::time::Duration), DatapathError> {
        let program: &mut Xdp = self
            .ebpf
            .program_mut("pass")
            .ok_or(DatapathError::Missing("baseline XDP program"))?
            .try_into()
            .map_err(Box::new)?;
        if program.fd().is_err() {
            program.load().map_err(Box::new)?;
        }
        self.test_run_program("pass", frame, repeat)
    }

    fn test_run_program(
        &self,
        name: &'static str,
        frame: &[u8],
        repeat: u32,
    ) -> Result<(u32, std::time::Duration), DatapathError> {
        use aya::programs::{TestRun as _, TestRunOptions};
        let program: &Xdp = self
            .ebpf
            .program(name)
            .ok_or(DatapathError::Missing("XDP program"))?
            .try_into()
            .map_err(Box::new)?;
        let result = program
            .test_run(TestRunOptions {
                data_in: Some(frame),
                repeat: repeat.max(1),
                ..TestRunOptions::new()
            })
            .map_err(Box::new)?;
        Ok((result.return_value, result.duration))
    }

    /// The ring buffer's file descriptor, for callers that poll it themselves.
    pub fn ring_fd(&self) -> i32 {
        self.ring.get_ref().as_raw_fd()
    }
}

fn is_eperm(e: &EbpfError) -> bool {
    let text = format!("{e:?}");
    text.contains("EPERM")
        || text.contains("PermissionDenied")
        || text.contains("Operation not permitted")
}

/// The advert ring for `adverts_per_second` (what the configured instances send, one master
/// per VRID: an upper bound of what XDP receives): room for 100 ms of them, a whole CPU quota
/// period, since a reader in a throttled cgroup can be off for most of one (under stress-ng it
/// lags a few ms), and at least 128 KiB. Beyond that is a flood, which the flood fallback
/// takes to a socket.
pub fn ring_bytes_for(adverts_per_second: f64) -> u32 {
    const MIN: u32 = 128 << 10;
    const MAX: u32 = 64 << 20;
    let record = (size_of::<vrrp_common::AdvertRecord>() + 8) as f64;
    let want = (adverts_per_second * record * 0.1).min(f64::from(MAX)) as u32;
    want.max(MIN).next_power_of_two().min(MAX)
}

/// Kernels before 5.11 account BPF memory against RLIMIT_MEMLOCK; newer ones use memcg. Raise
/// the limit where we may and go on where we may not (no CAP_SYS_RESOURCE in containers).
fn raise_memlock() {
    use nix::sys::resource::{Resource, setrlimit};
    if let Err(e) = setrlimit(
        Resource::RLIMIT_MEMLOCK,
        libc::RLIM_INFINITY,
        libc::RLIM_INFINITY,
    ) {
        tracing::debug!(error = %e, "cannot raise RLIMIT_MEMLOCK; fine on kernels >= 5.11 (memcg accounting)");
    }
}

#[cfg(test)]
mod tests {
    use super::ring_bytes_for;

    #[test]
    fn the_ring_follows_the_advert_rate_within_its_bounds() {
        // One instance at 1 s, and none: the floor.
        assert_eq!(ring_bytes_for(1.0), 128 << 10);
        assert_eq!(ring_bytes_for(0.0), 128 << 10);
        // 1000 instances at 0.1 s: 10 000 adverts a second, 100 ms of them is 592 000 bytes.
        assert_eq!(ring_bytes_for(10_000.0), 1 << 20);
        // 4000 at 0.1 s.
        assert_eq!(ring_bytes_for(40_000.0), 4 << 20);
        // Absurd rates are capped, and the size is always a power of two the kernel takes.
        assert_eq!(ring_bytes_for(1e12), 64 << 20);
        for rate in [3.0, 777.0, 12_345.0, 99_999.0] {
            let b = ring_bytes_for(rate);
            assert!(b.is_power_of_two() && b.is_multiple_of(4096), "{rate}: {b}");
            assert!(f64::from(b) >= rate * 592.0 * 0.1, "{rate}: {b}");
        }
    }
}
