//! `vrrpd capture`: what XDP saw, as a pcap file Wireshark and tshark read. Records carry the
//! VRRP message, addresses, TTL, VLAN and source MAC, not the frame, so the frame is rebuilt
//! around them (the destination MAC from the multicast mapping; zero for unicast).

use std::io::{self, Write};

use vrrp::wire::{frame, record::WireRecord};

/// pcap with nanosecond time stamps (magic 0xa1b23c4d), Ethernet link type.
pub struct Writer<W: Write> {
    out: W,
}

impl<W: Write> Writer<W> {
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all(&0xa1b2_3c4d_u32.to_le_bytes())?;
        out.write_all(&2u16.to_le_bytes())?;
        out.write_all(&4u16.to_le_bytes())?;
        out.write_all(&0i32.to_le_bytes())?; // thiszone
        out.write_all(&0u32.to_le_bytes())?; // sigfigs
        out.write_all(&65_535u32.to_le_bytes())?; // snaplen
        out.write_all(&1u32.to_le_bytes())?; // LINKTYPE_ETHERNET
        Ok(Self { out })
    }

    /// One packet at `wall_ns` (nanoseconds since the epoch); `orig_len` > the frame's length
    /// marks a truncated capture.
    pub fn write(&mut self, wall_ns: u64, frame: &[u8], orig_len: usize) -> io::Result<()> {
        let secs = u32::try_from(wall_ns / 1_000_000_000).unwrap_or(u32::MAX);
        let nanos = u32::try_from(wall_ns % 1_000_000_000).unwrap_or(0);
        let incl = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        for v in [
            secs,
            nanos,
            incl,
            u32::try_from(orig_len.max(frame.len())).unwrap_or(u32::MAX),
        ] {
            self.out.write_all(&v.to_le_bytes())?;
        }
        self.out.write_all(frame)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
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

    #[test]
    fn header_and_record_layout() {
        let mut buf = Vec::new();
        let mut w = Writer::new(&mut buf).expect("header");
        w.write(1_700_000_000_123_456_789, &[1, 2, 3], 3)
            .expect("record");
        assert_eq!(&buf[..4], &[0x4d, 0x3c, 0xb2, 0xa1]);
        assert_eq!(buf.len(), 24 + 16 + 3);
        assert_eq!(
            u32::from_le_bytes([buf[28], buf[29], buf[30], buf[31]]),
            123_456_789
        );
    }
}
