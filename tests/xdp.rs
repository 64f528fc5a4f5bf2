//! The XDP program on crafted frames through BPF_PROG_TEST_RUN (aya's `test_run`): root, but
//! no interfaces. Each test asserts the action (always XDP_PASS), the per-reason counters and
//! the ring-buffer record. The kernel presents test frames as arriving on the loopback device
//! of the current namespace, ifindex 1.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use vrrp::{
    datapath::{Counters, Datapath},
    wire::{
        frame,
        record::WireRecord,
        vrrp::{Advert, Auth, ChecksumMode, Version},
    },
};
use vrrp_common::{AF_INET, AF_INET6, Verdict, WatchKey, counter};
use vrrpd_lab::require_root;

const XDP_PASS: u32 = 2;
const LO: u32 = 1;

fn v4(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

fn seed_advert(version: Version, vrid: u8) -> Advert {
    Advert {
        version,
        vrid,
        priority: 150,
        interval_cs: 100,
        addresses: vec![v4([10, 0, 0, 3])],
        auth: if version == Version::V2 {
            Auth::pass("1111")
        } else {
            Auth::None
        },
    }
}

fn v4_frame(a: &Advert, ttl: u8) -> Vec<u8> {
    v4_frame_from(a, ttl, v4([10, 0, 0, 5]))
}

fn v4_frame_from(a: &Advert, ttl: u8, src: IpAddr) -> Vec<u8> {
    let dst = v4([224, 0, 0, 18]);
    let vrrp = a.emit(src, dst, ChecksumMode::default());
    frame::ethernet(
        frame::virtual_mac(a.vrid, false),
        frame::multicast_mac(dst),
        0,
        &frame::ip(src, dst, ttl, &vrrp),
    )
}

/// A capture watching every VRID on lo, inside a runtime (the ring registers with it).
struct Harness {
    capture: Datapath,
    _rt: tokio::runtime::Runtime,
}

impl Harness {
    fn new(watch_all: bool) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let capture = {
            let _g = rt.enter();
            Datapath::load().expect("load the XDP program (passes the verifier)")
        };
        let mut h = Self { capture, _rt: rt };
        if watch_all {
            for f in [AF_INET, AF_INET6] {
                h.capture
                    .watch(WatchKey::new(LO, f, WatchKey::WILDCARD_VRID))
                    .expect("watch");
            }
        }
        h
    }

    /// Runs the frame once; asserts XDP_PASS; returns the counter deltas and records.
    fn run(&mut self, frame: &[u8]) -> (Counters, Vec<WireRecord>) {
        let before = self.capture.counters().expect("counters");
        let (action, _) = self.capture.test_run(frame, 1).expect("test_run");
        assert_eq!(action, XDP_PASS, "the program must pass every frame");
        let after = self.capture.counters().expect("counters");
        let mut delta = Counters::default();
        for (i, d) in delta.0.iter_mut().enumerate() {
            *d = after.0[i] - before.0[i];
        }
        let mut records = Vec::new();
        let mut bad = 0;
        self.capture.drain(&mut records, &mut bad);
        assert_eq!(bad, 0, "records that do not decode");
        (delta, records)
    }
}

#[test]
fn valid_v2_advert_is_stamped_and_recorded() {
    if !require_root("valid_v2_advert_is_stamped_and_recorded") {
        return;
    }
    let mut h = Harness::new(true);
    let advert = seed_advert(Version::V2, 50);
    let f = v4_frame(&advert, 255);
    let (c, recs) = h.run(&f);
    assert_eq!(
        (
            c.get(counter::FRAMES),
            c.get(counter::VRRP_V4),
            c.get(counter::EMITTED)
        ),
        (1, 1, 1),
        "{c}"
    );
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    assert_eq!(r.verdict, Verdict::Ok);
    assert_eq!(r.ifindex, LO);
    assert_eq!(r.ttl, 255);
    assert_eq!(r.src, v4([10, 0, 0, 5]));
    assert_eq!(r.dst, v4([224, 0, 0, 18]));
    assert_eq!(r.src_mac, frame::virtual_mac(50, false));
    assert!(r.ktime_ns > 0);
    let (decoded, _) =
        Advert::parse(&r.vrrp, r.src, r.dst).expect("the captured bytes are the advert");
    assert_eq!(decoded, advert);
}

#[test]
fn v3_over_ipv6_and_vlan_are_parsed() {
    if !require_root("v3_over_ipv6_and_vlan_are_parsed") {
        return;
    }
    let mut h = Harness::new(true);
    let src: IpAddr = "fe80::5".parse::<Ipv6Addr>().expect("addr").into();
    let dst: IpAddr = vrrp::wire::vrrp::MCAST_V6.into();
    let mut a = seed_advert(Version::V3, 7);
    a.addresses = vec!["fd00:10::3".parse::<Ipv6Addr>().expect("addr").into()];
    let vrrp = a.emit(src, dst, ChecksumMode::default());
    let f = frame::ethernet(
        frame::virtual_mac(7, true),
        frame::multicast_mac(dst),
        0,
        &frame::ip(src, dst, 255, &vrrp),
    );
    let (c, recs) = h.run(&f);
    assert_eq!(c.get(counter::VRRP_V6), 1, "{c}");
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].src, src);
    assert_eq!(Advert::parse(&recs[0].vrrp, src, dst).expect("parses").0, a);

    let v4 = seed_advert(Version::V3, 9);
    let (s4, d4) = (self::v4([10, 0, 0, 5]), self::v4([224, 0, 0, 18]));
    let tagged = frame::ethernet(
        [2, 0, 0, 0, 0, 5],
        frame::multicast_mac(d4),
        100,
        &frame::ip(s4, d4, 255, &v4.emit(s4, d4, ChecksumMode::default())),
    );
    let (c, recs) = h.run(&tagged);
    assert_eq!(
        (c.get(counter::VLAN), c.get(counter::EMITTED)),
        (1, 1),
        "{c}"
    );
    assert_eq!(recs[0].vlan, 100);
}

#[test]
fn bad_packets_are_counted_by_reason_and_still_passed() {
    if !require_root("bad_packets_are_counted_by_reason_and_still_passed") {
        return;
    }
    let mut h = Harness::new(true);
    let a = seed_advert(Version::V2, 50);

    let (c, recs) = h.run(&v4_frame(&a, 64));
    assert_eq!(c.get(counter::BAD_TTL), 1, "{c}");
    assert_eq!(
        (recs.len(), recs[0].verdict, recs[0].ttl),
        (1, Verdict::BadTtl, 64)
    );

    let mut bad_version = v4_frame(&a, 255);
    bad_version[14 + 20] = 0x41;
    let (c, recs) = h.run(&bad_version);
    assert_eq!(
        (c.get(counter::BAD_VERSION), recs[0].verdict),
        (1, Verdict::BadVersion),
        "{c}"
    );

    let mut bad_type = v4_frame(&a, 255);
    bad_type[14 + 20] = 0x22;
    let (c, recs) = h.run(&bad_type);
    assert_eq!(
        (c.get(counter::BAD_TYPE), recs[0].verdict),
        (1, Verdict::BadType),
        "{c}"
    );

    // Count says 5 addresses; the message carries one.
    let mut bad_len = v4_frame(&a, 255);
    bad_len[14 + 20 + 3] = 5;
    let (c, recs) = h.run(&bad_len);
    assert_eq!(
        (c.get(counter::BAD_LENGTH), recs[0].verdict),
        (1, Verdict::BadLength),
        "{c}"
    );

    // Fewer than the 8 header bytes: no record.
    let (s, d) = (v4([10, 0, 0, 5]), v4([224, 0, 0, 18]));
    let short = frame::ethernet(
        [2; 6],
        frame::multicast_mac(d),
        0,
        &frame::ip(s, d, 255, &[0x21, 50, 150]),
    );
    let (c, recs) = h.run(&short);
    assert_eq!((c.get(counter::TOO_SHORT), recs.len()), (1, 0), "{c}");
}

#[test]
fn non_vrrp_and_unwatched_vrids_make_no_record() {
    if !require_root("non_vrrp_and_unwatched_vrids_make_no_record") {
        return;
    }
    let mut h = Harness::new(false);
    h.capture
        .watch(WatchKey::new(LO, AF_INET, 51))
        .expect("watch VRID 51 only");

    let mut udp = frame::ip(v4([10, 0, 0, 10]), v4([10, 0, 0, 6]), 64, &[0u8; 16]);
    udp[9] = 17;
    let (c, recs) = h.run(&frame::ethernet([2; 6], [4; 6], 0, &udp));
    assert_eq!((c.get(counter::NOT_VRRP), recs.len()), (1, 0), "{c}");

    let (c, recs) = h.run(&v4_frame(&seed_advert(Version::V2, 50), 255));
    assert_eq!((c.get(counter::UNWATCHED), recs.len()), (1, 0), "{c}");

    let (c, recs) = h.run(&v4_frame(&seed_advert(Version::V2, 51), 255));
    assert_eq!((c.get(counter::EMITTED), recs.len()), (1, 1), "{c}");
}

#[test]
fn a_full_ring_is_counted_not_fatal() {
    if !require_root("a_full_ring_is_counted_not_fatal") {
        return;
    }
    let h = Harness::new(true);
    // 1 MiB ring, 592 bytes a record: 3000 records overflow it when nobody reads. Each from its
    // own (spoofed) source, so that the per-source budget does not stop them first.
    for i in 0..3000u32 {
        let [_, _, a, b] = i.to_be_bytes();
        let f = v4_frame_from(&seed_advert(Version::V2, 50), 255, v4([10, 1, a, b]));
        let (action, _) = h.capture.test_run(&f, 1).expect("test_run");
        assert_eq!(action, XDP_PASS);
    }
    let c = h.capture.counters().expect("counters");
    assert!(c.get(counter::RING_FULL) > 0, "{c}");
    assert_eq!(
        c.get(counter::EMITTED) + c.get(counter::RING_FULL),
        3000,
        "{c}"
    );
}

/// A flood from one source is cut to its budget (vrrp_common::RATE_*) before the ring: the
/// elections keep getting the real master's adverts.
#[test]
fn one_source_flooding_is_rate_limited() {
    if !require_root("one_source_flooding_is_rate_limited") {
        return;
    }
    let h = Harness::new(true);
    let f = v4_frame(&seed_advert(Version::V2, 50), 255);
    let (action, per_run) = h.capture.test_run(&f, 3000).expect("test_run");
    assert_eq!(action, XDP_PASS);
    let c = h.capture.counters().expect("counters");
    // 3000 runs take well under a millisecond each: the burst and a few more get through.
    let elapsed_budget = (per_run * 3000).as_nanos() as u64 / vrrp_common::RATE_INTERVAL_NS;
    let emitted = c.get(counter::EMITTED);
    assert!(
        emitted >= vrrp_common::RATE_BURST
            && emitted <= vrrp_common::RATE_BURST + 2 + elapsed_budget,
        "{c}"
    );
    assert_eq!(emitted + c.get(counter::RATE_LIMITED), 3000, "{c}");
    assert_eq!(c.get(counter::RING_FULL), 0, "{c}");
    // Another source still gets through at once.
    let other = v4_frame_from(&seed_advert(Version::V2, 50), 255, v4([10, 0, 0, 6]));
    h.capture.test_run(&other, 1).expect("test_run");
    assert_eq!(
        h.capture
            .counters()
            .expect("counters")
            .get(counter::EMITTED),
        emitted + 1
    );
}

#[test]
fn arbitrary_bytes_always_pass() {
    if !require_root("arbitrary_bytes_always_pass") {
        return;
    }
    let mut h = Harness::new(true);
    // A deterministic xorshift stream: frames of every length up to 300 bytes, some with an
    // IPv4/VRRP prefix so that the deeper parsing runs on garbage too.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let valid = v4_frame(&seed_advert(Version::V2, 50), 255);
    for len in 14..300usize {
        let mut f: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()[0]
            })
            .collect();
        if len % 2 == 0 {
            let keep = (len / 3).min(valid.len());
            f[..keep].copy_from_slice(&valid[..keep]);
        }
        h.run(&f);
    }
}
