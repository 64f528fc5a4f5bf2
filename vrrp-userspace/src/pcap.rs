//! `vrrpd capture`: what XDP saw, as a pcapng (or pcap) file Wireshark and tshark read. Records carry the
//! VRRP message, addresses, TTL, VLAN and source MAC, not the frame, so the frame is rebuilt
//! around them (the destination MAC from the multicast mapping; zero for unicast).

use std::io::{self, Write};

use vrrp::wire::{frame, record::WireRecord};
use vrrp_common::Verdict;

/// The file formats `capture` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// pcapng: one interface block per interface, the XDP verdict as each packet's comment.
    Pcapng,
    /// Classic pcap (nanosecond stamps), for tools that read nothing else; no interface names.
    Pcap,
}

/// What `capture` writes to: pcapng (interfaces named, verdicts as comments) or classic pcap
/// with nanosecond time stamps (magic 0xa1b23c4d). Ethernet link type in both.
pub struct Writer<W: Write> {
    out: W,
    format: Format,
    /// pcapng's interface ids: the order their interface blocks were written in.
    interfaces: Vec<String>,
}

const LINKTYPE_ETHERNET: u16 = 1;
const SNAPLEN: u32 = 65_535;

/// A pcapng block: type, length, body padded to 32 bits, length again.
fn block(kind: u32, body: &[u8]) -> Vec<u8> {
    let padded = body.len().div_ceil(4) * 4;
    let total = u32::try_from(12 + padded).unwrap_or(u32::MAX);
    let mut b = Vec::with_capacity(12 + padded);
    b.extend_from_slice(&kind.to_le_bytes());
    b.extend_from_slice(&total.to_le_bytes());
    b.extend_from_slice(body);
    b.resize(8 + padded, 0);
    b.extend_from_slice(&total.to_le_bytes());
    b
}

/// A pcapng option (code, length, value padded to 32 bits).
fn option(out: &mut Vec<u8>, code: u16, value: &[u8]) {
    out.extend_from_slice(&code.to_le_bytes());
    out.extend_from_slice(&u16::try_from(value.len()).unwrap_or(u16::MAX).to_le_bytes());
    out.extend_from_slice(value);
    out.resize(out.len().div_ceil(4) * 4, 0);
}

fn end_of_options(out: &mut Vec<u8>) {
    out.extend_from_slice(&[0; 4]);
}

impl<W: Write> Writer<W> {
    pub fn new(mut out: W, format: Format) -> io::Result<Self> {
        match format {
            Format::Pcap => {
                out.write_all(&0xa1b2_3c4d_u32.to_le_bytes())?;
                out.write_all(&2u16.to_le_bytes())?;
                out.write_all(&4u16.to_le_bytes())?;
                out.write_all(&0i32.to_le_bytes())?; // thiszone
                out.write_all(&0u32.to_le_bytes())?; // sigfigs
                out.write_all(&SNAPLEN.to_le_bytes())?;
                out.write_all(&u32::from(LINKTYPE_ETHERNET).to_le_bytes())?;
            }
            Format::Pcapng => {
                // Section header: byte-order magic, version 1.0, section length unknown.
                let mut body = Vec::new();
                body.extend_from_slice(&0x1a2b_3c4d_u32.to_le_bytes());
                body.extend_from_slice(&1u16.to_le_bytes());
                body.extend_from_slice(&0u16.to_le_bytes());
                body.extend_from_slice(&(-1i64).to_le_bytes());
                option(
                    &mut body,
                    4, // shb_userappl
                    format!("vrrpd {} (XDP)", env!("CARGO_PKG_VERSION")).as_bytes(),
                );
                end_of_options(&mut body);
                out.write_all(&block(0x0a0d_0d0a, &body))?;
            }
        }
        Ok(Self {
            out,
            format,
            interfaces: Vec::new(),
        })
    }

    /// The interface id of `ifname`, its interface block written the first time.
    fn interface(&mut self, ifname: &str) -> io::Result<u32> {
        if let Some(i) = self.interfaces.iter().position(|n| n == ifname) {
            return Ok(u32::try_from(i).unwrap_or(u32::MAX));
        }
        let mut body = Vec::new();
        body.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&SNAPLEN.to_le_bytes());
        option(&mut body, 2, ifname.as_bytes()); // if_name
        option(&mut body, 9, &[9]); // if_tsresol: nanoseconds
        end_of_options(&mut body);
        self.out.write_all(&block(1, &body))?;
        self.interfaces.push(ifname.to_owned());
        Ok(u32::try_from(self.interfaces.len() - 1).unwrap_or(u32::MAX))
    }

    /// One packet seen on `ifname` at `wall_ns` (nanoseconds since the epoch), with `comment`
    /// (pcapng only); `orig_len` > the frame's length marks a truncated capture.
    pub fn write(
        &mut self,
        ifname: &str,
        wall_ns: u64,
        frame: &[u8],
        orig_len: usize,
        comment: &str,
    ) -> io::Result<()> {
        let incl = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        let orig = u32::try_from(orig_len.max(frame.len())).unwrap_or(u32::MAX);
        match self.format {
            Format::Pcap => {
                let secs = u32::try_from(wall_ns / 1_000_000_000).unwrap_or(u32::MAX);
                let nanos = u32::try_from(wall_ns % 1_000_000_000).unwrap_or(0);
                for v in [secs, nanos, incl, orig] {
                    self.out.write_all(&v.to_le_bytes())?;
                }
                self.out.write_all(frame)
            }
            Format::Pcapng => {
                let id = self.interface(ifname)?;
                let mut body = Vec::with_capacity(32 + frame.len() + comment.len());
                body.extend_from_slice(&id.to_le_bytes());
                body.extend_from_slice(&u32::try_from(wall_ns >> 32).unwrap_or(0).to_le_bytes());
                body.extend_from_slice(
                    &u32::try_from(wall_ns & 0xffff_ffff)
                        .unwrap_or(0)
                        .to_le_bytes(),
                );
                body.extend_from_slice(&incl.to_le_bytes());
                body.extend_from_slice(&orig.to_le_bytes());
                body.extend_from_slice(frame);
                body.resize(body.len().div_ceil(4) * 4, 0);
                option(&mut body, 1, comment.as_bytes()); // opt_comment
                option(&mut body, 2, &1u32.to_le_bytes()); // epb_flags: inbound
                end_of_options(&mut body);
                self.out.write_all(&block(6, &body))
            }
        }
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// The XDP program's verdict on a record, as the packet's comment.
pub fn comment_of(w: &WireRecord) -> String {
    let verdict = match w.verdict {
        Verdict::Ok => "ok",
        Verdict::BadTtl => "bad_ttl",
        Verdict::BadVersion => "bad_version",
        Verdict::BadType => "bad_type",
        Verdict::BadLength => "bad_length",
    };
    format!("xdp verdict: {verdict}")
}

/// The frame a record stands for, and its length on the wire.
pub fn frame_of(w: &WireRecord) -> (Vec<u8>, usize) {
    let dst_mac = if w.dst.is_multicast() {
        frame::multicast_mac(w.dst)
    } else {
        [0; 6]
    };
    let mut ip = frame::ip(w.src, w.dst, w.ttl, &w.vrrp);
    // The IP length says what was on the wire, also when the capture was cut.
    let missing = usize::from(w.vrrp_len).saturating_sub(w.vrrp.len());
    if w.src.is_ipv4() {
        let total = u16::try_from(ip.len() + missing).unwrap_or(u16::MAX);
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ip[10..12].copy_from_slice(&[0, 0]);
        let sum = frame::internet_checksum(&ip[..20]);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
    } else {
        ip[4..6].copy_from_slice(&w.vrrp_len.to_be_bytes());
    }
    let eth = frame::ethernet(w.src_mac, dst_mac, w.vlan, &ip);
    let len = eth.len() + missing;
    (eth, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }

    #[test]
    fn pcap_header_and_record_layout() {
        let mut buf = Vec::new();
        let mut w = Writer::new(&mut buf, Format::Pcap).expect("header");
        w.write("eth0", 1_700_000_000_123_456_789, &[1, 2, 3], 3, "x")
            .expect("record");
        assert_eq!(&buf[..4], &[0x4d, 0x3c, 0xb2, 0xa1]);
        assert_eq!(buf.len(), 24 + 16 + 3);
        assert_eq!(u32_at(&buf, 28), 123_456_789);
    }

    /// Blocks as pcapng (draft-ietf-opsawg-pcapng) lays them out: each interface's block
    /// once, before its first packet; packets name their interface by id.
    #[test]
    fn pcapng_blocks_name_each_interface_once() {
        let mut buf = Vec::new();
        let mut w = Writer::new(&mut buf, Format::Pcapng).expect("header");
        for ifname in ["eth0", "eth1", "eth0"] {
            w.write(
                ifname,
                1_700_000_000_123_456_789,
                &[9; 5],
                5,
                "xdp verdict: ok",
            )
            .expect("packet");
        }
        let mut blocks = Vec::new();
        let mut at = 0;
        while at < buf.len() {
            let (kind, len) = (u32_at(&buf, at), u32_at(&buf, at + 4) as usize);
            assert_eq!(len % 4, 0);
            assert_eq!(u32_at(&buf, at + len - 4) as usize, len, "trailing length");
            blocks.push((kind, at));
            at += len;
        }
        let kinds: Vec<u32> = blocks.iter().map(|b| b.0).collect();
        assert_eq!(kinds, [0x0a0d_0d0a, 1, 6, 1, 6, 6]);
        let ids: Vec<u32> = blocks
            .iter()
            .filter(|b| b.0 == 6)
            .map(|b| u32_at(&buf, b.1 + 8))
            .collect();
        assert_eq!(ids, [0, 1, 0]);
        let first = blocks[2].1;
        let ts = (u64::from(u32_at(&buf, first + 12)) << 32) | u64::from(u32_at(&buf, first + 16));
        assert_eq!(ts, 1_700_000_000_123_456_789);
        let text = String::from_utf8_lossy(&buf);
        assert!(text.contains("eth1") && text.contains("xdp verdict: ok"));
    }
}
