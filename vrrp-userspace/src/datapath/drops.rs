//! The kernel's own account of lost adverts: VRRP packets of this network namespace freed
//! through `kfree_skb_reason()`, with the reason's name.
//!
//! The reason numbers change between kernels (6.18 has 127 of them), so the names come from the
//! tracepoint's format file, read at run time, never from a table compiled in. The program's
//! offsets come from the same file and from BTF (see `btf.rs`).

use std::{
    collections::HashMap, mem::offset_of, net::IpAddr, os::unix::fs::MetadataExt as _, path::Path,
};

use vrrp_common::{AF_INET, DropProbe, DropRecord};

use super::btf::Btf;
use crate::wire::record::{u16_at, u32_at, u64_at};

const TRACEFS: &str = "/sys/kernel/tracing";
const FORMAT: &str = "events/skb/kfree_skb/format";

/// Why the drop probe cannot run here; said once, then vrrpd counts wire against socket only.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    #[error("tracefs is not mounted at {TRACEFS} and mounting it failed ({0})")]
    NoTracefs(nix::Error),
    #[error("cannot read {path}: {source}")]
    Format {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the skb:kfree_skb format has no field {0} (a kernel before 5.17 has no drop reasons)")]
    Field(&'static str),
    #[error("kernel BTF: {0}")]
    Btf(String),
    #[error("cannot find this process's network namespace: {0}")]
    Netns(std::io::Error),
}

/// What the tracepoint's format file says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Format {
    /// Field name -> byte offset in the record.
    pub fields: HashMap<String, u32>,
    /// `enum skb_drop_reason` value -> name, from `__print_symbolic(REC->reason, ...)`.
    pub reasons: HashMap<u32, String>,
}

impl Format {
    pub fn parse(text: &str) -> Self {
        let mut out = Self::default();
        for line in text.lines() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("field:") {
                // field:unsigned short protocol;	offset:32;	size:2;	signed:0;
                let mut parts = rest.split(';');
                let decl = parts.next().unwrap_or_default();
                let name = decl
                    .rsplit(|c: char| c.is_whitespace() || c == '*')
                    .next()
                    .unwrap_or_default();
                let offset = parts
                    .find_map(|p| p.trim().strip_prefix("offset:"))
                    .and_then(|o| o.parse().ok());
                if let Some(offset) = offset
                    && !name.is_empty()
                {
                    out.fields.insert(name.to_owned(), offset);
                }
            } else if let Some(fmt) = line.strip_prefix("print fmt:")
                && let Some(at) = fmt.find("__print_symbolic(REC->reason")
            {
                out.reasons = symbols(&fmt[at..]);
            }
        }
        out
    }

    pub fn reason(&self, value: u32) -> KernelReason {
        self.reasons
            .get(&value)
            .map_or(KernelReason::Unnamed(value), |n| KernelReason::from_name(n))
    }
}

/// A kernel drop reason (`enum skb_drop_reason`), by the name the running kernel gives it. The
/// ones the diagnosis explains are variants; any other keeps its name. Typed from the probe's
/// ring to the finding; serialized as the kernel spells it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KernelReason {
    /// NETFILTER_DROP: a firewall rule or chain policy.
    NetfilterDrop,
    /// IP_RPFILTER: strict reverse-path filtering.
    IpRpfilter,
    /// SOCKET_RCVBUFF: a socket's receive queue was full.
    SocketRcvbuff,
    /// SOCKET_FILTER: a socket filter refused its copy (vrrpd's own, by design).
    SocketFilter,
    /// Any other reason, by its name.
    Named(String),
    /// A number the format file does not name.
    Unnamed(u32),
}

impl KernelReason {
    pub fn from_name(name: &str) -> Self {
        match name {
            "NETFILTER_DROP" => Self::NetfilterDrop,
            "IP_RPFILTER" => Self::IpRpfilter,
            "SOCKET_RCVBUFF" => Self::SocketRcvbuff,
            "SOCKET_FILTER" => Self::SocketFilter,
            other => other
                .strip_prefix("reason ")
                .and_then(|n| n.parse().ok())
                .map_or_else(|| Self::Named(other.to_owned()), Self::Unnamed),
        }
    }

    /// Drop reasons that do not lose an advert: the kernel hands each raw socket its own copy,
    /// and vrrpd's sockets refuse theirs by design (the send socket keeps no input; the
    /// receive socket's counting filter keeps none either). The probe skips this reason in the
    /// kernel.
    pub fn is_benign(&self) -> bool {
        *self == Self::SocketFilter
    }
}

impl std::fmt::Display for KernelReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NetfilterDrop => f.write_str("NETFILTER_DROP"),
            Self::IpRpfilter => f.write_str("IP_RPFILTER"),
            Self::SocketRcvbuff => f.write_str("SOCKET_RCVBUFF"),
            Self::SocketFilter => f.write_str("SOCKET_FILTER"),
            Self::Named(n) => f.write_str(n),
            Self::Unnamed(v) => write!(f, "reason {v}"),
        }
    }
}

impl serde::Serialize for KernelReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for KernelReason {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Ok(Self::from_name(&name))
    }
}

/// Kernel drops counted by reason: few distinct reasons ever occur, so a small ordered map.
pub type KernelDrops = std::collections::BTreeMap<KernelReason, u64>;

/// `{ 2, "NOT_SPECIFIED" }, { 3, "NO_SOCKET" }, ...` up to the closing parenthesis.
fn symbols(text: &str) -> HashMap<u32, String> {
    let mut out = HashMap::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        let pair = &rest[open + 1..open + close];
        if let Some((num, name)) = pair.split_once(',') {
            let num = num.trim();
            let value = num
                .strip_prefix("0x")
                .map_or_else(|| num.parse().ok(), |h| u32::from_str_radix(h, 16).ok());
            if let Some(v) = value {
                out.insert(v, name.trim().trim_matches('"').to_owned());
            }
        }
        rest = &rest[open + close + 1..];
        if rest.trim_start().starts_with(')') {
            break;
        }
    }
    out
}

/// Mounts tracefs where it is missing: `ip netns exec` gives its command a fresh /sys without
/// it, and a fresh boot may not have it either.
fn tracefs() -> Result<&'static Path, Unavailable> {
    for dir in [TRACEFS, "/sys/kernel/debug/tracing"] {
        if Path::new(dir).join("events").is_dir() {
            return Ok(Path::new(dir));
        }
    }
    nix::mount::mount(
        Some("tracefs"),
        TRACEFS,
        Some("tracefs"),
        nix::mount::MsFlags::MS_NOSUID
            | nix::mount::MsFlags::MS_NODEV
            | nix::mount::MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(Unavailable::NoTracefs)?;
    tracing::info!("mounted tracefs at {TRACEFS} (it was missing) for the drop-reason probe");
    Ok(Path::new(TRACEFS))
}

/// Everything the probe needs, for this kernel and this network namespace.
pub fn discover() -> Result<(DropProbe, Format), Unavailable> {
    let dir = tracefs()?;
    let path = dir.join(FORMAT);
    let text = std::fs::read_to_string(&path).map_err(|source| Unavailable::Format {
        path: path.display().to_string(),
        source,
    })?;
    let format = Format::parse(&text);
    let field = |name: &'static str| {
        format
            .fields
            .get(name)
            .copied()
            .ok_or(Unavailable::Field(name))
    };
    let btf = Btf::from_sys_fs().map_err(|e| Unavailable::Btf(e.to_string()))?;
    let off = |s: &str, f: &str| {
        btf.offset_of(s, f)
            .map_err(|e| Unavailable::Btf(e.to_string()))
    };
    let netns = std::fs::metadata("/proc/self/ns/net").map_err(Unavailable::Netns)?;
    let probe = DropProbe {
        netns_inum: u32::try_from(netns.ino()).unwrap_or(DropProbe::UNSET),
        tp_skbaddr: field("skbaddr")?,
        tp_protocol: field("protocol")?,
        tp_reason: field("reason")?,
        skb_dev: off("sk_buff", "dev")?,
        skb_sk: off("sk_buff", "sk")?,
        skb_head: off("sk_buff", "head")?,
        skb_network_header: off("sk_buff", "network_header")?,
        dev_net: off("net_device", "nd_net.net")?,
        dev_ifindex: off("net_device", "ifindex")?,
        sk_net: off("sock", "__sk_common.skc_net.net")?,
        net_inum: off("net", "ns.inum")?,
        benign_reason: format
            .reasons
            .iter()
            .find(|(_, name)| KernelReason::from_name(name).is_benign())
            .map_or(DropProbe::UNSET, |(v, _)| *v),
    };
    Ok((probe, format))
}

/// One decoded drop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drop {
    pub ktime_ns: u64,
    /// 0 for a packet we sent that had no device yet.
    pub ifindex: u32,
    pub reason: u32,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub vrid: u8,
}

impl Drop {
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < size_of::<DropRecord>() {
            return None;
        }
        let mut src = [0u8; 16];
        let mut dst = [0u8; 16];
        let at = |field: usize| &bytes[field..field + 16];
        src.copy_from_slice(at(offset_of!(DropRecord, src)));
        dst.copy_from_slice(at(offset_of!(DropRecord, dst)));
        let r = DropRecord {
            ktime_ns: u64_at(bytes, offset_of!(DropRecord, ktime_ns)),
            ifindex: u32_at(bytes, offset_of!(DropRecord, ifindex)),
            reason: u32_at(bytes, offset_of!(DropRecord, reason)),
            family: u16_at(bytes, offset_of!(DropRecord, family)),
            vrid: bytes[offset_of!(DropRecord, vrid)],
            ttl: bytes[offset_of!(DropRecord, ttl)],
            _pad: [0; 4],
            src,
            dst,
        };
        let addr = |a: [u8; 16]| -> IpAddr {
            if r.family == AF_INET {
                IpAddr::from([a[0], a[1], a[2], a[3]])
            } else {
                IpAddr::from(a)
            }
        };
        Some(Self {
            ktime_ns: r.ktime_ns,
            ifindex: r.ifindex,
            reason: r.reason,
            src: addr(r.src),
            dst: addr(r.dst),
            vrid: r.vrid,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORMAT_6_18: &str = r#"name: kfree_skb
ID: 2310
format:
	field:unsigned short common_type;	offset:0;	size:2;	signed:0;
	field:int common_pid;	offset:4;	size:4;	signed:1;

	field:void * skbaddr;	offset:8;	size:8;	signed:0;
	field:void * location;	offset:16;	size:8;	signed:0;
	field:void * rx_sk;	offset:24;	size:8;	signed:0;
	field:unsigned short protocol;	offset:32;	size:2;	signed:0;
	field:enum skb_drop_reason reason;	offset:36;	size:4;	signed:0;

print fmt: "skbaddr=%p rx_sk=%p protocol=%u location=%pS reason: %s", REC->skbaddr, REC->rx_sk, REC->protocol, REC->location, __print_symbolic(REC->reason, { 2, "NOT_SPECIFIED" }, { 3, "NO_SOCKET" }, { 12, "NETFILTER_DROP" }, { 16, "IP_RPFILTER" }, { 128, "MAX" })
"#;

    #[test]
    fn reads_offsets_and_reason_names_from_the_format() {
        let f = Format::parse(FORMAT_6_18);
        assert_eq!(f.fields.get("skbaddr"), Some(&8));
        assert_eq!(f.fields.get("protocol"), Some(&32));
        assert_eq!(f.fields.get("reason"), Some(&36));
        assert_eq!(f.reason(12), KernelReason::NetfilterDrop);
        assert_eq!(f.reason(16), KernelReason::IpRpfilter);
        assert_eq!(f.reason(2), KernelReason::Named("NOT_SPECIFIED".into()));
        assert_eq!(f.reason(99), KernelReason::Unnamed(99));
        for r in [f.reason(12), f.reason(2), f.reason(99)] {
            let json = serde_json::to_string(&r).expect("serializes");
            assert_eq!(serde_json::from_str::<KernelReason>(&json).ok(), Some(r));
        }
    }

    #[test]
    fn a_kernel_without_reasons_has_no_reason_field() {
        let old = "format:\n\tfield:void * skbaddr;\toffset:8;\tsize:8;\tsigned:0;\n\tfield:unsigned short protocol;\toffset:24;\tsize:2;\tsigned:0;\n\nprint fmt: \"skbaddr=%p protocol=%u\", REC->skbaddr, REC->protocol\n";
        let f = Format::parse(old);
        assert_eq!(f.fields.get("protocol"), Some(&24));
        assert!(!f.fields.contains_key("reason"));
        assert!(f.reasons.is_empty());
    }

    #[test]
    fn garbage_formats_do_not_panic() {
        for text in [
            "",
            "print fmt: __print_symbolic(REC->reason, { x",
            "field:;offset:;",
            "{ 1, }",
        ] {
            let _ = Format::parse(text);
        }
    }

    #[test]
    fn the_running_kernel_names_netfilter_drops() {
        let Ok(text) = std::fs::read_to_string(Path::new(TRACEFS).join(FORMAT)) else {
            eprintln!("SKIP: {TRACEFS} is not mounted here; the daemon tests cover it as root");
            return;
        };
        let f = Format::parse(&text);
        assert!(f.reasons.values().any(|n| n == "NETFILTER_DROP"));
        assert!(f.reasons.values().any(|n| n == "IP_RPFILTER"));
    }

    #[test]
    fn short_records_are_refused() {
        assert_eq!(Drop::decode(&[0; 10]), None);
        let d = Drop::decode(&[0; 56]).expect("a whole record");
        assert_eq!(d.ifindex, 0);
    }
}
