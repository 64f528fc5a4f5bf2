//! VRRPv2 (RFC 3768) and VRRPv3 (RFC 5798) messages over IPv4 and IPv6: zero-copy views for
//! decoding untrusted bytes, an owned [`Advert`] for encoding. Pure: no sockets, no clocks.
//!
//! ```text
//! RFC 5798 5.1 (v3)                          RFC 3768 5.1 (v2)
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version| Type  | Virtual Rtr ID|   Priority    |Count IPvX Addr|
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |(rsvd) |     Max Adver Int     |          Checksum             |  v3
//! |   Auth Type   |   Adver Int   |          Checksum             |  v2
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       IPvX Address(es)                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                  Authentication Data (v2 only, 8 bytes)       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use thiserror::Error;

/// IP protocol / next header number of VRRP.
pub const IPPROTO_VRRP: u8 = 112;
/// RFC 5798 5.1.1.2 / RFC 3768 5.2.2.
pub const MCAST_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// RFC 5798 5.1.2.2.
pub const MCAST_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// RFC 5798 5.1.1.3 / 5.1.2.3: TTL and hop limit of every advert.
pub const TTL: u8 = 255;
/// The only message type (RFC 5798 5.2.2).
pub const TYPE_ADVERTISEMENT: u8 = 1;
/// Length of the fixed header.
pub const HEADER_LEN: usize = 8;
/// Length of v2 authentication data (RFC 3768 5.3.10).
pub const AUTH_DATA_LEN: usize = 8;

mod field {
    use std::ops::Range;
    pub const VER_TYPE: usize = 0;
    pub const VRID: usize = 1;
    pub const PRIORITY: usize = 2;
    pub const COUNT: usize = 3;
    /// v2: auth type; v3: high nibble reserved, low nibble the top of Max Adver Int.
    pub const AUTH_TYPE: usize = 4;
    /// v2: Adver Int in seconds.
    pub const ADVER_INT_V2: usize = 5;
    /// v3: 12-bit Max Adver Int in centiseconds (with the low nibble of byte 4).
    pub const MAX_ADVER_INT_V3: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
    pub const ADDRESSES: usize = 8;
}

/// VRRP protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Version {
    V2,
    V3,
}

impl Version {
    pub const fn number(self) -> u8 {
        match self {
            Self::V2 => 2,
            Self::V3 => 3,
        }
    }
}

/// Address family of an advert, which decides the address size and the checksum's
/// pseudo-header.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub const fn addr_len(self) -> usize {
        match self {
            Self::V4 => 4,
            Self::V6 => 16,
        }
    }
    pub const fn of(addr: &IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => Self::V4,
            IpAddr::V6(_) => Self::V6,
        }
    }
}

/// v2 authentication (RFC 3768 5.3.6). v3 removed it; its byte is reserved there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Auth {
    None,
    /// Simple text password: 8 bytes, zero padded (RFC 3768 5.3.6.1, keepalived `auth_type PASS`).
    Pass([u8; AUTH_DATA_LEN]),
    /// IP Authentication Header (RFC 2338's type 2): named, not implemented.
    Ah,
    /// A type no RFC defines.
    Unknown(u8),
}

impl Auth {
    pub const fn type_code(self) -> u8 {
        match self {
            Self::None => 0,
            Self::Pass(_) => 1,
            Self::Ah => 2,
            Self::Unknown(n) => n,
        }
    }

    /// A `PASS` from a configured password as keepalived stores it: the first 8 bytes, zero
    /// padded (keepalived truncates longer passwords with a warning).
    pub fn pass(password: &str) -> Self {
        let mut data = [0u8; AUTH_DATA_LEN];
        let bytes = password.as_bytes();
        let n = bytes.len().min(AUTH_DATA_LEN);
        data[..n].copy_from_slice(&bytes[..n]);
        Self::Pass(data)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Pass(_) => "pass",
            Self::Ah => "ah",
            Self::Unknown(_) => "unknown",
        }
    }
}

/// How the v3 checksum over IPv4 was (or is to be) computed. RFC 5798 5.2.8 includes the
/// pseudo-header; keepalived and FRR do so by default; RFC 9568 and some routers do not, and
/// keepalived's `v3_checksum_as_v2` selects that form.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum ChecksumMode {
    #[default]
    PseudoHeader,
    /// The VRRP message alone, as v2 does.
    MessageOnly,
}

/// Every way a VRRP message can be wrong. The variants map to RFC 6527's (VRRPv3 MIB) error
/// counters: `vrrpv3RouterChecksumErrors`, `vrrpv3RouterVersionErrors`, `vrrpv3RouterVrIdErrors`,
/// `vrrpv3StatisticsPacketLengthErrors`, ...
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("truncated: {got} bytes, the header needs {needed}")]
    Truncated { needed: usize, got: usize },
    #[error("version {0} is neither 2 nor 3")]
    BadVersion(u8),
    #[error("type {0} is not 1 (ADVERTISEMENT)")]
    BadType(u8),
    #[error("VRID 0 is invalid")]
    BadVrid,
    #[error("VRRPv2 is IPv4 only, got it over IPv6")]
    V2OverIpv6,
    #[error("{count} addresses need {needed} bytes, the message has {got}")]
    CountMismatch {
        count: u8,
        needed: usize,
        got: usize,
    },
    #[error("checksum {got:#06x}, expected {expected:#06x}")]
    BadChecksum { got: u16, expected: u16 },
    #[error("advert interval 0")]
    ZeroInterval,
    #[error("TTL / hop limit {0}, must be 255")]
    BadTtl(u8),
    #[error("IP header: {0}")]
    BadIpHeader(&'static str),
    #[error("not VRRP (protocol {0})")]
    NotVrrp(u8),
}

/// A zero-copy view of a VRRP message. Accessors never panic once [`Packet::new_checked`]
/// succeeded; `new_unchecked` views may be read only through the checked accessors.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Checks that the fixed header is there, the version, the type, the VRID and that the
    /// address count fits the length for `family`. The checksum is checked separately
    /// ([`Packet::verify_checksum`]) because it needs the IP addresses.
    pub fn new_checked(buffer: T, family: Family) -> Result<Self, DecodeError> {
        let p = Self { buffer };
        let b = p.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(DecodeError::Truncated {
                needed: HEADER_LEN,
                got: b.len(),
            });
        }
        let version = match b[field::VER_TYPE] >> 4 {
            2 => Version::V2,
            3 => Version::V3,
            v => return Err(DecodeError::BadVersion(v)),
        };
        let kind = b[field::VER_TYPE] & 0x0f;
        if kind != TYPE_ADVERTISEMENT {
            return Err(DecodeError::BadType(kind));
        }
        if version == Version::V2 && family == Family::V6 {
            return Err(DecodeError::V2OverIpv6);
        }
        if b[field::VRID] == 0 {
            return Err(DecodeError::BadVrid);
        }
        let needed = p.message_len(version, family);
        if b.len() < needed {
            return Err(DecodeError::CountMismatch {
                count: b[field::COUNT],
                needed,
                got: b.len(),
            });
        }
        // An advert interval of 0 would make Master_Down_Interval mere skew (found by fuzzing).
        if p.interval_cs() == 0 {
            return Err(DecodeError::ZeroInterval);
        }
        Ok(p)
    }

    fn message_len(&self, version: Version, family: Family) -> usize {
        let addrs = usize::from(self.buffer.as_ref()[field::COUNT]) * family.addr_len();
        HEADER_LEN
            + addrs
            + if version == Version::V2 {
                AUTH_DATA_LEN
            } else {
                0
            }
    }

    pub fn version(&self) -> Version {
        if self.buffer.as_ref()[field::VER_TYPE] >> 4 == 2 {
            Version::V2
        } else {
            Version::V3
        }
    }
    pub fn vrid(&self) -> u8 {
        self.buffer.as_ref()[field::VRID]
    }
    pub fn priority(&self) -> u8 {
        self.buffer.as_ref()[field::PRIORITY]
    }
    pub fn count(&self) -> u8 {
        self.buffer.as_ref()[field::COUNT]
    }
    pub fn checksum(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[field::CHECKSUM.start], b[field::CHECKSUM.start + 1]])
    }

    /// The advert interval in centiseconds: v3's 12-bit Max Adver Int, or v2's seconds x 100.
    pub fn interval_cs(&self) -> u16 {
        let b = self.buffer.as_ref();
        match self.version() {
            Version::V2 => u16::from(b[field::ADVER_INT_V2]) * 100,
            Version::V3 => {
                let r = field::MAX_ADVER_INT_V3;
                u16::from_be_bytes([b[r.start], b[r.start + 1]]) & 0x0fff
            }
        }
    }

    pub fn auth(&self, family: Family) -> Auth {
        let b = self.buffer.as_ref();
        if self.version() == Version::V3 {
            return Auth::None;
        }
        match b[field::AUTH_TYPE] {
            0 => Auth::None,
            1 => {
                let start = self.message_len(Version::V2, family) - AUTH_DATA_LEN;
                let mut data = [0u8; AUTH_DATA_LEN];
                data.copy_from_slice(&b[start..start + AUTH_DATA_LEN]);
                Auth::Pass(data)
            }
            2 => Auth::Ah,
            n => Auth::Unknown(n),
        }
    }

    pub fn addresses(&self, family: Family) -> impl Iterator<Item = IpAddr> + '_ {
        let b = self.buffer.as_ref();
        let n = usize::from(self.count());
        let len = family.addr_len();
        (0..n).map(move |i| {
            let s = field::ADDRESSES + i * len;
            match family {
                Family::V4 => IpAddr::V4(Ipv4Addr::new(b[s], b[s + 1], b[s + 2], b[s + 3])),
                Family::V6 => {
                    let mut o = [0u8; 16];
                    o.copy_from_slice(&b[s..s + 16]);
                    IpAddr::V6(Ipv6Addr::from(o))
                }
            }
        })
    }

    /// The bytes that belong to the message (the header, addresses and v2 auth), without any
    /// trailing padding the IP length may include.
    pub fn message(&self, family: Family) -> &[u8] {
        &self.buffer.as_ref()[..self.message_len(self.version(), family)]
    }

    /// Verifies the checksum; v3 over IPv4 is accepted in either form and says which one the
    /// sender used (RFC 5798 5.2.8, 7.1).
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> Result<ChecksumMode, DecodeError> {
        let family = Family::of(&src);
        let msg = self.message(family);
        let got = self.checksum();
        let with = |mode| checksum(self.version(), mode, src, dst, msg, true);
        let expected = with(ChecksumMode::PseudoHeader);
        if expected == got {
            return Ok(ChecksumMode::PseudoHeader);
        }
        if self.version() == Version::V3
            && family == Family::V4
            && with(ChecksumMode::MessageOnly) == got
        {
            return Ok(ChecksumMode::MessageOnly);
        }
        Err(DecodeError::BadChecksum { got, expected })
    }
}

/// The Internet checksum (RFC 1071) over the pseudo-header where the version and mode call for
/// it, and the message with its checksum field taken as zero when `skip_field` is set.
fn checksum(
    version: Version,
    mode: ChecksumMode,
    src: IpAddr,
    dst: IpAddr,
    msg: &[u8],
    skip_field: bool,
) -> u16 {
    let mut buf = Vec::with_capacity(40 + msg.len());
    let len = u32::try_from(msg.len()).unwrap_or(u32::MAX);
    if version == Version::V3 && !(mode == ChecksumMode::MessageOnly && src.is_ipv4()) {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                buf.extend_from_slice(&s.octets());
                buf.extend_from_slice(&d.octets());
                buf.extend_from_slice(&[0, IPPROTO_VRRP]);
                buf.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                buf.extend_from_slice(&s.octets());
                buf.extend_from_slice(&d.octets());
                buf.extend_from_slice(&len.to_be_bytes());
                buf.extend_from_slice(&[0, 0, 0, IPPROTO_VRRP]);
            }
            // Mixed families cannot be on one packet; the sum is then simply wrong.
            _ => {}
        }
    }
    buf.extend_from_slice(msg);
    if skip_field && msg.len() >= HEADER_LEN {
        let at = buf.len() - msg.len() + field::CHECKSUM.start;
        buf[at..at + 2].copy_from_slice(&[0, 0]);
    }
    // The pseudo-header has an even length, so the message's bytes keep their alignment.
    super::frame::internet_checksum(&buf)
}

/// A validated VRRP advertisement: what `parse` returns and `emit` writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advert {
    pub version: Version,
    pub vrid: u8,
    pub priority: u8,
    /// Centiseconds (v2 seconds x 100; v2 can only carry whole seconds).
    pub interval_cs: u16,
    pub addresses: Vec<IpAddr>,
    /// Always [`Auth::None`] for v3.
    pub auth: Auth,
}

/// What `Advert::parse` learned beside the advert itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseInfo {
    pub checksum: ChecksumMode,
}

impl Advert {
    /// Decodes and validates a VRRP message received from `src` to `dst` (RFC 5798 7.1 steps
    /// that need no configuration: version, type, length, checksum, VRID; TTL is the IP
    /// layer's and is checked by [`super::ip::parse_ip`]).
    pub fn parse(bytes: &[u8], src: IpAddr, dst: IpAddr) -> Result<(Self, ParseInfo), DecodeError> {
        let family = Family::of(&src);
        let p = Packet::new_checked(bytes, family)?;
        let checksum = p.verify_checksum(src, dst)?;
        Ok((Self::from_packet(&p, family), ParseInfo { checksum }))
    }

    /// The fields of a checked view, trusting its checksum (the caller decided).
    pub fn from_packet<T: AsRef<[u8]>>(p: &Packet<T>, family: Family) -> Self {
        Self {
            version: p.version(),
            vrid: p.vrid(),
            priority: p.priority(),
            interval_cs: p.interval_cs(),
            addresses: p.addresses(family).collect(),
            auth: p.auth(family),
        }
    }

    pub fn family(&self) -> Option<Family> {
        self.addresses.first().map(Family::of)
    }

    /// Encodes the message as it goes on the wire after the IP header, checksum included.
    /// `src`/`dst` are the IP addresses it will carry (they enter the v3 checksum).
    /// Addresses past 255 are not encoded (the count is one byte); a v2 interval is rounded
    /// down to whole seconds, at least 1.
    pub fn emit(&self, src: IpAddr, dst: IpAddr, mode: ChecksumMode) -> Vec<u8> {
        let family = Family::of(&src);
        let addrs: Vec<&IpAddr> = self
            .addresses
            .iter()
            .filter(|a| Family::of(a) == family)
            .take(255)
            .collect();
        let mut out =
            Vec::with_capacity(HEADER_LEN + addrs.len() * family.addr_len() + AUTH_DATA_LEN);
        out.push((self.version.number() << 4) | TYPE_ADVERTISEMENT);
        out.push(self.vrid);
        out.push(self.priority);
        out.push(u8::try_from(addrs.len()).unwrap_or(u8::MAX));
        match self.version {
            Version::V2 => {
                out.push(self.auth.type_code());
                out.push(u8::try_from((self.interval_cs / 100).max(1)).unwrap_or(u8::MAX));
            }
            Version::V3 => out.extend_from_slice(&(self.interval_cs & 0x0fff).to_be_bytes()),
        }
        out.extend_from_slice(&[0, 0]);
        for a in addrs {
            match a {
                IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
                IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
            }
        }
        if self.version == Version::V2 {
            match self.auth {
                Auth::Pass(data) => out.extend_from_slice(&data),
                _ => out.extend_from_slice(&[0; AUTH_DATA_LEN]),
            }
        }
        let sum = checksum(self.version, mode, src, dst, &out, true);
        out[field::CHECKSUM].copy_from_slice(&sum.to_be_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::wire::{
        frame,
        ip::{IpInfo, parse_ip, strip_ethernet},
    };

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    fn frames(text: &str) -> Vec<Vec<u8>> {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| hex(l.trim()))
            .collect()
    }

    /// Decodes a captured keepalived frame and re-encodes it; returns the advert.
    fn roundtrip(frame: &[u8]) -> (Advert, ParseInfo, IpInfo) {
        let ip = strip_ethernet(frame).expect("ethernet");
        let (info, payload) = parse_ip(ip).expect("ip");
        let (advert, pinfo) =
            Advert::parse(payload, info.src, info.dst).expect("keepalived's advert decodes");
        let again = advert.emit(info.src, info.dst, pinfo.checksum);
        assert_eq!(
            again, payload,
            "re-encoding must reproduce keepalived's bytes"
        );
        (advert, pinfo, info)
    }

    const V2_PASS: &str = include_str!("../../../tests/fixtures/keepalived/v2_pass.hex");
    const V3_V4_MULTI: &str = include_str!("../../../tests/fixtures/keepalived/v3_ipv4_multi.hex");
    const V3_V6: &str = include_str!("../../../tests/fixtures/keepalived/v3_ipv6.hex");

    /// RFC 3768 5.1, 5.3.6.1: v2 with simple-text authentication.
    #[test]
    fn keepalived_v2_pass_roundtrips() {
        for f in frames(V2_PASS) {
            let (a, p, ip) = roundtrip(&f);
            assert_eq!(a.version, Version::V2);
            assert_eq!((a.vrid, a.priority, a.interval_cs), (50, 150, 100));
            assert_eq!(a.auth, Auth::pass("1111"));
            assert_eq!(a.addresses, vec![IpAddr::from([10, 0, 0, 3])]);
            assert_eq!(p.checksum, ChecksumMode::PseudoHeader);
            assert_eq!((ip.dst, ip.ttl), (IpAddr::V4(MCAST_V4), 255));
        }
    }

    /// RFC 5798 5.2.7 (centiseconds), 5.2.8 (pseudo-header checksum), several addresses.
    #[test]
    fn keepalived_v3_ipv4_roundtrips() {
        for f in frames(V3_V4_MULTI) {
            let (a, p, _) = roundtrip(&f);
            assert_eq!(
                (a.version, a.vrid, a.priority, a.interval_cs),
                (Version::V3, 51, 200, 10)
            );
            assert_eq!(a.addresses.len(), 3);
            assert_eq!(a.auth, Auth::None);
            assert_eq!(p.checksum, ChecksumMode::PseudoHeader);
        }
    }

    /// RFC 5798 5.1.2: over IPv6, from the link-local address to ff02::12.
    #[test]
    fn keepalived_v3_ipv6_roundtrips() {
        for f in frames(V3_V6) {
            let (a, _, ip) = roundtrip(&f);
            assert_eq!(
                (a.version, a.vrid, a.priority, a.interval_cs),
                (Version::V3, 60, 120, 50)
            );
            assert_eq!(
                a.addresses,
                vec![
                    "fd00:10::3".parse::<IpAddr>().expect("a"),
                    "fd00:10::33".parse().expect("a")
                ]
            );
            assert_eq!(ip.dst, IpAddr::V6(MCAST_V6));
        }
    }

    /// RFC 9568's reading of 5.2.8 (keepalived's `v3_checksum_as_v2`): a v3 IPv4 checksum
    /// without the pseudo-header is accepted, and recognised as such.
    #[test]
    fn v3_message_only_checksum_is_accepted_and_recognised() {
        let f = &frames(V3_V4_MULTI)[0];
        let (info, payload) = parse_ip(strip_ethernet(f).expect("eth")).expect("ip");
        let (a, _) = Advert::parse(payload, info.src, info.dst).expect("parses");
        let message_only = a.emit(info.src, info.dst, ChecksumMode::MessageOnly);
        assert_ne!(message_only, payload);
        let (b, p) = Advert::parse(&message_only, info.src, info.dst).expect("accepted");
        assert_eq!((b, p.checksum), (a, ChecksumMode::MessageOnly));
    }

    fn sample(version: Version) -> (Vec<u8>, IpAddr, IpAddr) {
        let (src, dst) = (IpAddr::from([10, 0, 0, 5]), IpAddr::V4(MCAST_V4));
        let a = Advert {
            version,
            vrid: 50,
            priority: 150,
            interval_cs: 100,
            addresses: vec![IpAddr::from([10, 0, 0, 3])],
            auth: if version == Version::V2 {
                Auth::pass("1111")
            } else {
                Auth::None
            },
        };
        (a.emit(src, dst, ChecksumMode::default()), src, dst)
    }

    fn fix_checksum(bytes: &mut [u8], version: Version, src: IpAddr, dst: IpAddr) {
        let sum = checksum(version, ChecksumMode::PseudoHeader, src, dst, bytes, true);
        bytes[6..8].copy_from_slice(&sum.to_be_bytes());
    }

    #[test]
    fn truncated() {
        let (b, s, d) = sample(Version::V2);
        assert_eq!(
            Advert::parse(&b[..7], s, d),
            Err(DecodeError::Truncated { needed: 8, got: 7 })
        );
    }

    /// RFC 5798 7.1: "MUST verify that the version is 3" (2 accepted for RFC 3768 peers).
    #[test]
    fn bad_version() {
        let (mut b, s, d) = sample(Version::V2);
        b[0] = 0x41;
        assert_eq!(Advert::parse(&b, s, d), Err(DecodeError::BadVersion(4)));
    }

    #[test]
    fn bad_type() {
        let (mut b, s, d) = sample(Version::V3);
        b[0] = 0x32;
        assert_eq!(Advert::parse(&b, s, d), Err(DecodeError::BadType(2)));
    }

    #[test]
    fn vrid_zero() {
        let (mut b, s, d) = sample(Version::V3);
        b[1] = 0;
        fix_checksum(&mut b, Version::V3, s, d);
        assert_eq!(Advert::parse(&b, s, d), Err(DecodeError::BadVrid));
    }

    #[test]
    fn zero_interval() {
        for version in [Version::V2, Version::V3] {
            let (mut b, s, d) = sample(version);
            b[4..6].copy_from_slice(if version == Version::V2 {
                &[1, 0]
            } else {
                &[0, 0]
            });
            fix_checksum(&mut b, version, s, d);
            assert_eq!(
                Advert::parse(&b, s, d),
                Err(DecodeError::ZeroInterval),
                "{version:?}"
            );
        }
    }

    #[test]
    fn v2_over_ipv6() {
        let (b, _, _) = sample(Version::V2);
        let s: IpAddr = "fe80::1".parse().expect("a");
        assert_eq!(
            Advert::parse(&b, s, IpAddr::V6(MCAST_V6)),
            Err(DecodeError::V2OverIpv6)
        );
    }

    /// RFC 5798 7.1: the length must fit the address count.
    #[test]
    fn count_mismatch() {
        let (mut b, s, d) = sample(Version::V3);
        b[3] = 4;
        assert_eq!(
            Advert::parse(&b, s, d),
            Err(DecodeError::CountMismatch {
                count: 4,
                needed: 24,
                got: 12
            })
        );
    }

    /// RFC 5798 7.1: "MUST verify the VRRP checksum".
    #[test]
    fn bad_checksum() {
        let (mut b, s, d) = sample(Version::V2);
        b[7] ^= 1;
        assert!(matches!(
            Advert::parse(&b, s, d),
            Err(DecodeError::BadChecksum { .. })
        ));
        // v2 has no pseudo-header: a different source does not change its sum...
        let (b, _, d) = sample(Version::V2);
        assert!(Advert::parse(&b, IpAddr::from([10, 0, 0, 99]), d).is_ok());
        // ...v3 has one: it does.
        let (b, _, d) = sample(Version::V3);
        assert!(matches!(
            Advert::parse(&b, IpAddr::from([10, 0, 0, 99]), d),
            Err(DecodeError::BadChecksum { .. })
        ));
    }

    /// RFC 5798 7.1: "MUST verify that the IPv4 TTL / IPv6 Hop Limit is 255".
    #[test]
    fn ip_layer_errors() {
        let (b, s, d) = sample(Version::V2);
        let mut pkt = frame::ip(s, d, 64, &b);
        assert_eq!(parse_ip(&pkt), Err(DecodeError::BadTtl(64)));
        pkt[9] = 6;
        pkt[8] = 255;
        assert_eq!(parse_ip(&pkt), Err(DecodeError::NotVrrp(6)));
        assert_eq!(parse_ip(&[]), Err(DecodeError::BadIpHeader("empty")));
        assert_eq!(
            parse_ip(&[0x45, 0, 0]),
            Err(DecodeError::BadIpHeader("IPv4 header length"))
        );
        let ok = frame::ip(s, d, 255, &b);
        assert_eq!(
            parse_ip(&ok[..30]),
            Err(DecodeError::BadIpHeader("IPv4 total length"))
        );
    }

    /// RFC 3768 5.3.6.1: the password fills 8 bytes, zero padded; keepalived truncates longer ones.
    #[test]
    fn pass_auth_is_eight_bytes_zero_padded() {
        assert_eq!(Auth::pass("1111"), Auth::Pass(*b"1111\0\0\0\0"));
        assert_eq!(Auth::pass("0123456789"), Auth::Pass(*b"01234567"));
    }

    /// RFC 5798 5.2.7: Max Adver Int is 12 bits; v2's Adver Int is whole seconds.
    #[test]
    fn interval_encoding() {
        let (s, d) = (IpAddr::from([10, 0, 0, 5]), IpAddr::V4(MCAST_V4));
        let mut a = Advert {
            version: Version::V3,
            vrid: 1,
            priority: 100,
            interval_cs: 4095,
            addresses: vec![],
            auth: Auth::None,
        };
        assert_eq!(
            Advert::parse(&a.emit(s, d, ChecksumMode::default()), s, d)
                .expect("ok")
                .0
                .interval_cs,
            4095
        );
        a.version = Version::V2;
        a.interval_cs = 350;
        assert_eq!(
            Advert::parse(&a.emit(s, d, ChecksumMode::default()), s, d)
                .expect("ok")
                .0
                .interval_cs,
            300
        );
    }

    fn arb_advert() -> impl Strategy<Value = (Advert, IpAddr, IpAddr)> {
        (
            any::<bool>(),
            any::<bool>(),
            1u8..=255,
            any::<u8>(),
            1u16..=4095,
            prop::collection::vec(any::<[u8; 16]>(), 0..20),
            any::<[u8; 8]>(),
            any::<bool>(),
        )
            .prop_map(|(v3, v6, vrid, priority, int, addrs, pw, with_auth)| {
                let v6 = v3 && v6;
                let version = if v3 { Version::V3 } else { Version::V2 };
                let addresses: Vec<IpAddr> = addrs
                    .iter()
                    .map(|a| {
                        if v6 {
                            IpAddr::from(*a)
                        } else {
                            IpAddr::from([a[0], a[1], a[2], a[3]])
                        }
                    })
                    .collect();
                let interval_cs = if v3 { int } else { (int % 255 + 1) * 100 };
                let auth = if !v3 && with_auth {
                    Auth::Pass(pw)
                } else {
                    Auth::None
                };
                let (src, dst) = if v6 {
                    (
                        IpAddr::from([0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5]),
                        IpAddr::V6(MCAST_V6),
                    )
                } else {
                    (IpAddr::from([10, 0, 0, 5]), IpAddr::V4(MCAST_V4))
                };
                (
                    Advert {
                        version,
                        vrid,
                        priority,
                        interval_cs,
                        addresses,
                        auth,
                    },
                    src,
                    dst,
                )
            })
    }

    proptest! {
        /// Every valid advert survives emit -> parse unchanged.
        #[test]
        fn emit_parse_roundtrip((a, src, dst) in arb_advert(), as_v2 in any::<bool>()) {
            let mode = if as_v2 { ChecksumMode::MessageOnly } else { ChecksumMode::PseudoHeader };
            let bytes = a.emit(src, dst, mode);
            let (b, info) = Advert::parse(&bytes, src, dst).expect("own advert parses");
            prop_assert_eq!(&b, &a);
            if a.version == Version::V3 && src.is_ipv4() {
                prop_assert_eq!(info.checksum, mode);
            }
        }

        /// Arbitrary bytes never panic the decoder, the IP parser or the accessors.
        #[test]
        fn decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
            let s = IpAddr::from([10, 0, 0, 5]);
            let _ = Advert::parse(&bytes, s, IpAddr::V4(MCAST_V4));
            let _ = Advert::parse(&bytes, "fe80::1".parse().expect("a"), IpAddr::V6(MCAST_V6));
            let _ = parse_ip(&bytes);
            let _ = strip_ethernet(&bytes);
            if let Ok(p) = Packet::new_checked(&bytes[..], Family::V4) {
                let _ = (p.interval_cs(), p.auth(Family::V4), p.addresses(Family::V4).count());
            }
        }
    }
}
