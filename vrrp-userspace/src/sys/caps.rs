//! Which Linux capabilities this process has, read from /proc/self/status, so that a missing
//! one is named in one sentence instead of surfacing as EPERM from the first map creation; and
//! dropping the ones the running daemon no longer needs.

use std::{
    cell::Cell,
    fmt,
    sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
};

use thiserror::Error;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cap {
    Kill,
    SetGid,
    SetUid,
    NetAdmin,
    NetRaw,
    IpcLock,
    SysAdmin,
    SysNice,
    Perfmon,
    Bpf,
}

impl Cap {
    const fn bit(self) -> u32 {
        match self {
            Self::Kill => 5,
            Self::SetGid => 6,
            Self::SetUid => 7,
            Self::NetAdmin => 12,
            Self::NetRaw => 13,
            Self::IpcLock => 14,
            Self::SysAdmin => 21,
            Self::SysNice => 23,
            Self::Perfmon => 38,
            Self::Bpf => 39,
        }
    }
    pub const fn name(self) -> &'static str {
        match self {
            Self::Kill => "CAP_KILL",
            Self::SetGid => "CAP_SETGID",
            Self::SetUid => "CAP_SETUID",
            Self::NetAdmin => "CAP_NET_ADMIN",
            Self::NetRaw => "CAP_NET_RAW",
            Self::IpcLock => "CAP_IPC_LOCK",
            Self::SysAdmin => "CAP_SYS_ADMIN",
            Self::SysNice => "CAP_SYS_NICE",
            Self::Perfmon => "CAP_PERFMON",
            Self::Bpf => "CAP_BPF",
        }
    }
    const fn capability(self) -> caps::Capability {
        match self {
            Self::Kill => caps::Capability::CAP_KILL,
            Self::SetGid => caps::Capability::CAP_SETGID,
            Self::SetUid => caps::Capability::CAP_SETUID,
            Self::NetAdmin => caps::Capability::CAP_NET_ADMIN,
            Self::NetRaw => caps::Capability::CAP_NET_RAW,
            Self::IpcLock => caps::Capability::CAP_IPC_LOCK,
            Self::SysAdmin => caps::Capability::CAP_SYS_ADMIN,
            Self::SysNice => caps::Capability::CAP_SYS_NICE,
            Self::Perfmon => caps::Capability::CAP_PERFMON,
            Self::Bpf => caps::Capability::CAP_BPF,
        }
    }
    /// CAP_SYS_ADMIN implies CAP_BPF and CAP_PERFMON (and was their only form before 5.8).
    const fn covered_by_sys_admin(self) -> bool {
        matches!(self, Self::Bpf | Self::Perfmon)
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub struct MissingCaps(pub Vec<Cap>);

impl fmt::Display for MissingCaps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|c| c.name()).collect();
        write!(
            f,
            "missing capabilit{} {}: run as root, or grant {} (e.g. `setcap cap_bpf,cap_perfmon,cap_net_admin,cap_net_raw+ep vrrpd`, or AmbientCapabilities= in the systemd unit)",
            if names.len() == 1 { "y" } else { "ies" },
            names.join(", "),
            names.join(", ")
        )
    }
}

/// The effective capability set, from the `CapEff:` line of /proc/self/status.
pub fn effective() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_cap_eff(&status)
}

fn parse_cap_eff(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(line.trim(), 16).ok()
}

pub fn has(set: u64, cap: Cap) -> bool {
    set & (1 << cap.bit()) != 0
        || (cap.covered_by_sys_admin() && set & (1 << Cap::SysAdmin.bit()) != 0)
}

/// Fails with the list of `needed` capabilities this process lacks. When /proc cannot be read
/// it does not guess: the kernel's own EPERM will speak.
pub fn require(needed: &[Cap]) -> Result<(), MissingCaps> {
    let Some(set) = effective() else {
        return Ok(());
    };
    let missing: Vec<Cap> = needed.iter().copied().filter(|c| !has(set, *c)).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(MissingCaps(missing))
    }
}

/// What the daemon keeps once its programs are loaded, its sockets bound and its control
/// socket listening:
/// - CAP_NET_ADMIN: virtual addresses (rtnetlink), XDP and sockets for interfaces a reload adds;
/// - CAP_NET_RAW: raw VRRP, packet (gratuitous ARP) and ICMP (ping) sockets;
/// - CAP_SYS_NICE: the real-time advert sender;
/// - CAP_IPC_LOCK: memory is locked (sender.rs); without it every later mapping, a thread's
///   stack or the main stack growing, would count against RLIMIT_MEMLOCK and fail;
/// - CAP_SETUID, CAP_SETGID, CAP_KILL: scripts as `script_user`, and stopping them on timeout.
///
/// Dropped: CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN (the maps and programs are open fds, which
/// need none on kernels since 6.5), and everything else root has.
pub const RUNTIME: &[Cap] = &[
    Cap::NetAdmin,
    Cap::NetRaw,
    Cap::SysNice,
    Cap::IpcLock,
    Cap::SetUid,
    Cap::SetGid,
    Cap::Kill,
];

/// Capabilities belong to threads. The set to keep, and a generation that each runtime thread
/// compares with the one it applied (`apply_pending`, run by the runtime as threads start and
/// wake), so that every thread ends up with the same reduced set.
static TARGET: AtomicU64 = AtomicU64::new(u64::MAX);
/// What a script the config runs may get back on exec (see [`Confinement`]).
static BOUNDED: AtomicBool = AtomicBool::new(false);
static NO_NEW_PRIVS: AtomicBool = AtomicBool::new(false);

/// What the config's scripts allow the process to give up for good, beyond its own sets.
/// Neither can be undone, so a reload that needs more is refused ([`Confinement::allows`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Confinement {
    /// The bounding set trimmed to `RUNTIME`: allowed when no script runs as root (a root
    /// script gets the bounding set back on exec, as keepalived's do, and needs it).
    pub bounding_trimmed: bool,
    /// PR_SET_NO_NEW_PRIVS: allowed when the config runs no script at all (a check script run
    /// as a user may rely on a setuid or file-capability program, `ping` for one).
    pub no_new_privs: bool,
}

impl Confinement {
    /// From what the scripts run as: `None` for no script, else whether any runs as root.
    pub const fn for_scripts(any_as_root: Option<bool>) -> Self {
        match any_as_root {
            None => Self {
                bounding_trimmed: true,
                no_new_privs: true,
            },
            Some(false) => Self {
                bounding_trimmed: true,
                no_new_privs: false,
            },
            Some(true) => Self {
                bounding_trimmed: false,
                no_new_privs: false,
            },
        }
    }

    /// Whether a process confined as `self` can run what `needed` describes.
    pub const fn allows(self, needed: Self) -> bool {
        (needed.bounding_trimmed || !self.bounding_trimmed)
            && (needed.no_new_privs || !self.no_new_privs)
    }
}
static GENERATION: AtomicU32 = AtomicU32::new(0);
thread_local! {
    static APPLIED: Cell<u32> = const { Cell::new(0) };
}

/// Reduces this thread's (and, through `apply_pending`, every runtime thread's) effective and
/// permitted sets to `keep`, minus what it does not have, and confines them as `confine`
/// says. Returns the capabilities kept.
pub fn drop_all_but(
    keep: &[Cap],
    confine: Confinement,
) -> Result<Vec<Cap>, caps::errors::CapsError> {
    BOUNDED.store(confine.bounding_trimmed, Ordering::SeqCst);
    NO_NEW_PRIVS.store(confine.no_new_privs, Ordering::SeqCst);
    let have = effective().unwrap_or(0);
    let kept: Vec<Cap> = keep
        .iter()
        .copied()
        .filter(|c| have & (1 << c.bit()) != 0)
        .collect();
    let mask = kept.iter().fold(0u64, |m, c| m | (1 << c.bit()));
    TARGET.store(mask, Ordering::SeqCst);
    let generation = GENERATION.fetch_add(1, Ordering::SeqCst) + 1;
    apply(mask)?;
    APPLIED.with(|a| a.set(generation));
    Ok(kept)
}

/// For the runtime's thread hooks: applies the latest `drop_all_but` to this thread.
pub fn apply_pending() {
    let generation = GENERATION.load(Ordering::SeqCst);
    if generation == 0 || APPLIED.with(Cell::get) == generation {
        return;
    }
    if apply(TARGET.load(Ordering::SeqCst)).is_ok() {
        APPLIED.with(|a| a.set(generation));
    }
}

fn apply(mask: u64) -> Result<(), caps::errors::CapsError> {
    let set: caps::CapsHashSet = ALL
        .iter()
        .filter(|c| mask & (1 << c.bit()) != 0)
        .map(|c| c.capability())
        .collect();
    // The bounding set is per thread and inherited by what the thread execs; dropping from it
    // needs CAP_SETPCAP, so it goes first, while this thread still has it.
    if BOUNDED.load(Ordering::SeqCst) {
        let bounding = caps::read(None, caps::CapSet::Bounding)?;
        for cap in bounding.difference(&set) {
            caps::drop(None, caps::CapSet::Bounding, *cap)?;
        }
    }
    if NO_NEW_PRIVS.load(Ordering::SeqCst) {
        nix::sys::prctl::set_no_new_privs()
            .map_err(|e| caps::errors::CapsError::from(format!("PR_SET_NO_NEW_PRIVS: {e}")))?;
    }
    // Effective first: it must stay within permitted at every step.
    caps::set(None, caps::CapSet::Effective, &set)?;
    caps::set(None, caps::CapSet::Permitted, &set)?;
    caps::set(None, caps::CapSet::Inheritable, &caps::CapsHashSet::new())
}

const ALL: [Cap; 10] = [
    Cap::Kill,
    Cap::SetGid,
    Cap::SetUid,
    Cap::NetAdmin,
    Cap::NetRaw,
    Cap::IpcLock,
    Cap::SysAdmin,
    Cap::SysNice,
    Cap::Perfmon,
    Cap::Bpf,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks() {
        let set = parse_cap_eff("Name:\tx\nCapEff:\t000001c000001000\n").expect("parses");
        assert!(has(set, Cap::NetAdmin));
        assert!(has(set, Cap::Bpf));
        assert!(has(set, Cap::Perfmon));
        assert!(!has(set, Cap::NetRaw));
    }

    #[test]
    fn sys_admin_covers_bpf() {
        let set = 1u64 << 21;
        assert!(has(set, Cap::Bpf));
        assert!(!has(set, Cap::NetAdmin));
    }

    #[test]
    fn message_names_each_missing_cap() {
        let m = MissingCaps(vec![Cap::Bpf, Cap::Perfmon]).to_string();
        assert!(
            m.starts_with("missing capabilities CAP_BPF, CAP_PERFMON:"),
            "{m}"
        );
    }
}
