//! Why an advert was not acted on: one enum from the place the reason is found (the XDP
//! program's verdict, the decoder, RFC 5798 7.1's receive checks, the lookup of the virtual
//! router) to every place it is counted and shown (the instance's counters, the per-source
//! accounting, `diagnose`, the metrics, the tests). Counted in fixed arrays, not maps of
//! strings.

use serde::{Deserialize, Serialize};

use crate::wire::vrrp::DecodeError;

/// A reason for not acting on a received VRRP packet. The serialized name (snake_case) is its
/// one spelling everywhere: status JSON, metric labels, `watch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// TTL / hop limit not 255: it crossed a router (RFC 5798 7.1).
    BadTtl,
    /// Version neither 2 nor 3.
    BadVersion,
    /// Type not 1 (ADVERTISEMENT).
    BadType,
    /// Shorter than its address count says.
    BadLength,
    /// Shorter than the fixed header.
    TooShort,
    /// VRID 0.
    BadVrid,
    /// VRRPv2 over IPv6, which RFC 3768 does not define.
    V2OverIpv6,
    BadChecksum,
    /// An advert interval of 0.
    ZeroInterval,
    /// The IP header around it is malformed (socket path).
    BadIpHeader,
    /// Not VRRP at all (socket path).
    NotVrrp,
    /// No instance of ours on this interface, family and VRID.
    UnknownVrid,
    VersionMismatch,
    AuthTypeMismatch,
    AuthMismatch,
    IntervalMismatch,
    AddressListMismatch,
    /// Priority 255 from another router while we own the addresses.
    OwnerConflict,
    /// Priority 255 from an address that is neither one of our virtual addresses nor a
    /// unicast peer.
    FalseOwner,
    /// From a virtual address this router holds as master: forged.
    SpoofedSource,
    /// A unicast advert from an address that is not a unicast_peer (check_unicast_src).
    NotAPeer,
}

impl DropReason {
    pub const COUNT: usize = 21;
    pub const ALL: [Self; Self::COUNT] = [
        Self::BadTtl,
        Self::BadVersion,
        Self::BadType,
        Self::BadLength,
        Self::TooShort,
        Self::BadVrid,
        Self::V2OverIpv6,
        Self::BadChecksum,
        Self::ZeroInterval,
        Self::BadIpHeader,
        Self::NotVrrp,
        Self::UnknownVrid,
        Self::VersionMismatch,
        Self::AuthTypeMismatch,
        Self::AuthMismatch,
        Self::IntervalMismatch,
        Self::AddressListMismatch,
        Self::OwnerConflict,
        Self::FalseOwner,
        Self::SpoofedSource,
        Self::NotAPeer,
    ];

    /// The serialized name, for labels and tables.
    pub const fn name(self) -> &'static str {
        match self {
            Self::BadTtl => "bad_ttl",
            Self::BadVersion => "bad_version",
            Self::BadType => "bad_type",
            Self::BadLength => "bad_length",
            Self::TooShort => "too_short",
            Self::BadVrid => "bad_vrid",
            Self::V2OverIpv6 => "v2_over_ipv6",
            Self::BadChecksum => "bad_checksum",
            Self::ZeroInterval => "zero_interval",
            Self::BadIpHeader => "bad_ip_header",
            Self::NotVrrp => "not_vrrp",
            Self::UnknownVrid => "unknown_vrid",
            Self::VersionMismatch => "version_mismatch",
            Self::AuthTypeMismatch => "auth_type_mismatch",
            Self::AuthMismatch => "auth_mismatch",
            Self::IntervalMismatch => "interval_mismatch",
            Self::AddressListMismatch => "address_list_mismatch",
            Self::OwnerConflict => "owner_conflict",
            Self::FalseOwner => "false_owner",
            Self::SpoofedSource => "spoofed_source",
            Self::NotAPeer => "not_a_peer",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl DecodeError {
    /// The counter a decode error goes to (RFC 6527's error counters, by kind).
    pub const fn reason(self) -> DropReason {
        match self {
            Self::Truncated { .. } => DropReason::TooShort,
            Self::BadVersion(_) => DropReason::BadVersion,
            Self::BadType(_) => DropReason::BadType,
            Self::BadVrid => DropReason::BadVrid,
            Self::V2OverIpv6 => DropReason::V2OverIpv6,
            Self::CountMismatch { .. } => DropReason::BadLength,
            Self::BadChecksum { .. } => DropReason::BadChecksum,
            Self::ZeroInterval => DropReason::ZeroInterval,
            Self::BadTtl(_) => DropReason::BadTtl,
            Self::BadIpHeader(_) => DropReason::BadIpHeader,
            Self::NotVrrp(_) => DropReason::NotVrrp,
        }
    }
}

/// How many adverts were dropped for each reason. A fixed array: no allocation per advert,
/// no growth with what a hostile neighbour sends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropCounts([u64; DropReason::COUNT]);

impl DropCounts {
    pub fn add(&mut self, reason: DropReason) {
        self.0[reason.index()] += 1;
    }

    pub fn get(&self, reason: DropReason) -> u64 {
        self.0[reason.index()]
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }

    /// The reasons counted at least once, with their counts, in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(|r| (*r, self.get(*r)))
            .filter(|(_, n)| *n > 0)
    }

    /// What was counted since `base` (an earlier copy), most first.
    pub fn since(&self, base: &Self) -> Vec<(DropReason, u64)> {
        let mut out: Vec<(DropReason, u64)> = DropReason::ALL
            .iter()
            .map(|r| (*r, self.get(*r).saturating_sub(base.get(*r))))
            .filter(|(_, n)| *n > 0)
            .collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        out
    }
}

/// A map from reason name to count on the wire, with only the reasons that occurred.
impl Serialize for DropCounts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for DropCounts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = std::collections::BTreeMap::<DropReason, u64>::deserialize(d)?;
        let mut out = Self::default();
        for (r, n) in map {
            out.0[r.index()] = n;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_complete_and_in_order() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i, "{r:?}");
            let json = serde_json::to_string(r).expect("serializes");
            assert_eq!(json, format!("\"{}\"", r.name()));
        }
    }

    #[test]
    fn counts_serialize_as_a_map_of_names_and_back() {
        let mut c = DropCounts::default();
        c.add(DropReason::AuthMismatch);
        c.add(DropReason::AuthMismatch);
        c.add(DropReason::BadTtl);
        let json = serde_json::to_string(&c).expect("serializes");
        assert_eq!(json, r#"{"bad_ttl":1,"auth_mismatch":2}"#);
        let back: DropCounts = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, c);
        let base = {
            let mut b = DropCounts::default();
            b.add(DropReason::BadTtl);
            b
        };
        assert_eq!(c.since(&base), vec![(DropReason::AuthMismatch, 2)]);
    }
}
