//! The VRRP decoder, the IP parser and the XDP record decoder on arbitrary bytes: no panic,
//! and whatever decodes re-encodes to something that decodes to the same advert.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use vrrp::{
    protocol::event::RxAdvert,
    wire::{
        ip,
        record::WireRecord,
        vrrp::{self as packet, Advert, ChecksumMode},
    },
};

fuzz_target!(|data: &[u8]| {
    let _ = ip::strip_ethernet(data).and_then(ip::parse_ip);
    if let Ok(w) = WireRecord::decode(data) {
        let _ = RxAdvert::from_wire(&w);
    }
    for (src, dst) in [
        (IpAddr::from([10, 0, 0, 5]), IpAddr::V4(packet::MCAST_V4)),
        ("fe80::5".parse().expect("addr"), IpAddr::V6(packet::MCAST_V6)),
    ] {
        if let Ok((advert, info)) = Advert::parse(data, src, dst) {
            let again = advert.emit(src, dst, info.checksum);
            let (back, _) = Advert::parse(&again, src, dst).expect("our own encoding decodes");
            assert_eq!(back, advert);
            let _ = advert.emit(src, dst, ChecksumMode::MessageOnly);
        }
    }
});
