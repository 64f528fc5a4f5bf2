//! Which Linux capabilities this process has, read from /proc/self/status, so that a missing
//! one is named in one sentence instead of surfacing as EPERM from the first map creation.

use std::fmt;

use thiserror::Error;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cap {
    NetAdmin,
    NetRaw,
    SysAdmin,
    SysNice,
    Perfmon,
    Bpf,
}

impl Cap {
    const fn bit(self) -> u32 {
        match self {
            Self::NetAdmin => 12,
            Self::NetRaw => 13,
            Self::SysAdmin => 21,
            Self::SysNice => 23,
            Self::Perfmon => 38,
            Self::Bpf => 39,
        }
    }
    pub const fn name(self) -> &'static str {
        match self {
            Self::NetAdmin => "CAP_NET_ADMIN",
            Self::NetRaw => "CAP_NET_RAW",
            Self::SysAdmin => "CAP_SYS_ADMIN",
            Self::SysNice => "CAP_SYS_NICE",
            Self::Perfmon => "CAP_PERFMON",
            Self::Bpf => "CAP_BPF",
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
