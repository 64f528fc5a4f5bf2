//! Golden conformance tests of the protocol core, without root (holo's model): each directory
//! under tests/conformance/ is a case with a keepalived.conf (`config`, and `config.N` for
//! reloads), a list of input events (`events`) and the outputs expected of them (`expected`).
//! The events go through the same seam the daemon uses, `Router::handle(now, Input)`, on
//! virtual time; adverts are encoded to bytes and decoded back through `RxAdvert::from_wire`,
//! as the daemon decodes what XDP hands it. Timers fire at their deadlines on their own,
//! exactly as the daemon's loop fires them (each shows as a `timer` line).
//!
//! `VRRPD_BLESS=1 cargo test --test conformance` writes `expected` anew from what the code
//! does; review the diff before committing it.
//!
//! The `events` file, one per line (`#` starts a comment; times in seconds):
//! ```text
//! interface eth0 2 10.0.0.6        # name, ifindex, the address adverts are sent from
//! @0 configure config              # Input::Configure with this file of the case
//! @1.5 advert eth0 10.0.0.5 vrid 50 prio 150 [v2|v3] [int 1] [auth 1111|none] [addrs 10.0.0.3,..] [ttl 64] [dst 10.0.0.6] [checksum bad]
//! @2 script check_web ok|fail      # Input::Track(Script)
//! @2 link eth1 down|up             # Input::Track(Link)
//! @9 reload config.2               # Input::Configure with another file
//! @10 shutdown
//! @12 end                          # runs the timers up to this time
//! ```

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    net::IpAddr,
    path::{Path, PathBuf},
};

use vrrp::{
    config::{self, LoadOptions},
    protocol::{
        event::RxAdvert,
        router::{DropCause, Effect, Input, Output, Plan, Router, Setting, Spec, tracked_links},
        track::TrackEvent,
    },
    time::Instant,
    wire::{
        record::WireRecord,
        vrrp::{Advert, Auth, ChecksumMode, Family, MCAST_V4, MCAST_V6, Version},
    },
};
use vrrp_common::Verdict;

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("tests")
        .join("conformance")
}

struct Iface {
    ifindex: u32,
    src: IpAddr,
    up: bool,
}

struct Case {
    dir: PathBuf,
    ifaces: BTreeMap<String, Iface>,
    router: Router,
    now: Instant,
    out: String,
}

#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "event times are small positive seconds"
)]
fn at(secs: &str, line: &str) -> Instant {
    let s: f64 = secs
        .parse()
        .unwrap_or_else(|_| panic!("bad time in {line:?}"));
    Instant((s * 1e9).round() as u64)
}

fn fmt_time(t: Instant) -> String {
    format!("{:.6}", t.as_secs_f64())
}

impl Case {
    fn plan(&self, file: &str) -> Plan {
        let path = self.dir.join(file);
        let (config, diags) = config::load(
            &path,
            &LoadOptions {
                config_id: "conformance".to_owned(),
            },
        );
        assert!(
            !diags.has_errors(),
            "{}: {:?}",
            path.display(),
            diags.0.iter().map(ToString::to_string).collect::<Vec<_>>()
        );
        let instances = config
            .instances
            .iter()
            .map(|cfg| {
                let iface = self
                    .ifaces
                    .get(&cfg.interface)
                    .unwrap_or_else(|| panic!("no `interface {}` line", cfg.interface));
                Spec {
                    cfg: cfg.clone(),
                    ifindex: iface.ifindex,
                    src: cfg.unicast_src_ip.or(cfg.mcast_src_ip).unwrap_or(iface.src),
                }
            })
            .collect();
        let links = tracked_links(&config)
            .into_iter()
            .map(|l| {
                let up = self.ifaces.get(&l).is_none_or(|i| i.up);
                (l, up)
            })
            .collect();
        Plan {
            instances,
            groups: config.sync_groups.clone(),
            scripts: config.scripts.clone(),
            files: config.track_files.clone(),
            processes: config.track_processes.clone(),
            links,
        }
    }

    /// Fires every deadline up to `until`, in order, as the daemon's loop does.
    fn advance(&mut self, until: Instant) {
        while let Some(d) = self.router.next_deadline() {
            if d > until {
                break;
            }
            let t = d.max(self.now);
            self.now = t;
            let outputs = self.router.handle(t, Input::Timer);
            self.record(t, "timer", &outputs);
        }
        self.now = self.now.max(until);
    }

    fn record(&mut self, t: Instant, what: &str, outputs: &[Output]) {
        let _ = writeln!(self.out, "@{} {what}", fmt_time(t));
        for o in outputs {
            let _ = writeln!(self.out, "    {}", show(o));
        }
    }

    fn run(&mut self, line: &str) {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            return;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if words[0] == "interface" {
            assert!(
                words.len() >= 4,
                "interface NAME IFINDEX SRC [down]: {line:?}"
            );
            self.ifaces.insert(
                words[1].to_owned(),
                Iface {
                    ifindex: words[2].parse().expect("ifindex"),
                    src: words[3].parse().expect("address"),
                    up: words.get(4) != Some(&"down"),
                },
            );
            return;
        }
        let time = words[0]
            .strip_prefix('@')
            .unwrap_or_else(|| panic!("an event starts with @TIME: {line:?}"));
        let t = at(time, line);
        assert!(t >= self.now, "events must be in time order: {line:?}");
        self.advance(t);
        self.now = t;
        let input = match words.get(1).copied() {
            Some("configure" | "reload") => Input::Configure(self.plan(words[2])),
            Some("advert") => Input::Advert(self.advert(&words[2..], line)),
            Some("script") => Input::Track(TrackEvent::Script {
                name: words[2].to_owned(),
                ok: words[3] == "ok",
            }),
            Some("link") => Input::Track(TrackEvent::Link {
                ifname: words[2].to_owned(),
                up: words[3] == "up",
            }),
            Some("timer") => Input::Timer,
            Some("shutdown") => Input::Shutdown,
            // `set INSTANCE maintenance on|off`, `set INSTANCE priority N|config`: `vrrpd set`.
            Some("set") => Input::Set {
                instance: words[2].to_owned(),
                setting: match (words[3], words[4]) {
                    ("maintenance", on) => Setting::Maintenance(on == "on"),
                    ("priority", "config") => Setting::Priority(None),
                    ("priority", p) => Setting::Priority(Some(p.parse().expect("priority"))),
                    _ => panic!("set INSTANCE maintenance on|off | priority N|config: {line:?}"),
                },
            },
            Some("end") => return,
            other => panic!("unknown event {other:?} in {line:?}"),
        };
        let outputs = self.router.handle(t, input);
        self.record(t, &words[1..].join(" "), &outputs);
    }

    /// `IFACE SRC vrid N prio P [v2|v3] [int S] [auth PASS|none] [addrs A,B] [ttl T]
    /// [checksum bad]`, encoded as a router would send it and decoded as the daemon does.
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "an advert interval in seconds, 0.01 to 40.95"
    )]
    fn advert(&self, w: &[&str], line: &str) -> RxAdvert {
        let iface = self
            .ifaces
            .get(w[0])
            .unwrap_or_else(|| panic!("no `interface {}` line", w[0]));
        let src: IpAddr = w[1].parse().expect("source address");
        let mut opts: BTreeMap<&str, &str> = BTreeMap::new();
        let mut version = None;
        let mut i = 2;
        while i < w.len() {
            match w[i] {
                "v2" => version = Some(Version::V2),
                "v3" => version = Some(Version::V3),
                key => {
                    let value = w
                        .get(i + 1)
                        .unwrap_or_else(|| panic!("{key} needs a value: {line:?}"));
                    opts.insert(key, value);
                    i += 1;
                }
            }
            i += 1;
        }
        let family = Family::of(&src);
        let version = version.unwrap_or(if family == Family::V6 {
            Version::V3
        } else {
            Version::V2
        });
        let interval: f64 = opts.get("int").map_or(1.0, |s| s.parse().expect("int"));
        let auth = match opts.get("auth").copied() {
            None if version == Version::V2 => Auth::pass("1111"),
            None | Some("none") => Auth::None,
            Some(p) => Auth::pass(p),
        };
        let addresses = opts
            .get("addrs")
            .map(|a| a.split(',').map(|x| x.parse().expect("address")).collect())
            .unwrap_or_default();
        let advert = Advert {
            version,
            vrid: opts.get("vrid").expect("vrid").parse().expect("vrid"),
            priority: opts.get("prio").expect("prio").parse().expect("prio"),
            interval_cs: (interval * 100.0).round() as u16,
            addresses,
            auth,
        };
        let dst: IpAddr = opts.get("dst").map_or(
            match family {
                Family::V4 => IpAddr::V4(MCAST_V4),
                Family::V6 => IpAddr::V6(MCAST_V6),
            },
            |d| d.parse().expect("dst"),
        );
        let mut bytes = advert.emit(src, dst, ChecksumMode::PseudoHeader);
        if opts.get("checksum") == Some(&"bad") {
            bytes[6] ^= 0xff;
        }
        let ttl: u8 = opts.get("ttl").map_or(255, |t| t.parse().expect("ttl"));
        let record = WireRecord {
            ktime_ns: self.now.as_nanos(),
            ifindex: iface.ifindex,
            // As the XDP program judges: TTL 255 on the multicast group only.
            verdict: if ttl == 255 || !dst.is_multicast() {
                Verdict::Ok
            } else {
                Verdict::BadTtl
            },
            family,
            vlan: 0,
            ttl,
            src,
            dst,
            src_mac: [0; 6],
            vrrp_len: u16::try_from(bytes.len()).expect("small"),
            vrrp: bytes,
            truncated: false,
        };
        RxAdvert::from_wire(&record)
    }
}

/// One output as a golden line.
fn show(o: &Output) -> String {
    match o {
        Output::Instance { name, effect } => format!("{name}: {}", effect_text(effect)),
        Output::Group {
            name,
            state,
            priority,
        } => format!("group {name}: {state} (priority {priority})"),
        Output::Mismatch {
            instance,
            source,
            cause,
        } => format!(
            "acted on, though it disagrees: {instance} from {} vrid {}: {} ({cause})",
            source.src,
            source.vrid,
            cause.reason()
        ),
        Output::Drop {
            instance,
            source,
            cause,
        } => format!(
            "drop {} from {} vrid {}: {}{}",
            instance.as_deref().unwrap_or("-"),
            source.src,
            source.vrid,
            cause.reason(),
            match cause {
                DropCause::Malformed(e) => format!(" ({e})"),
                DropCause::Refused(e) => format!(" ({e})"),
                DropCause::UnknownVrid => String::new(),
            }
        ),
        Output::Watch(k) => format!("watch ifindex {} {:?} vrid {}", k.ifindex, k.family, k.vrid),
        Output::Unwatch(k) => {
            format!(
                "unwatch ifindex {} {:?} vrid {}",
                k.ifindex, k.family, k.vrid
            )
        }
        Output::Update(name) => format!("update {name}"),
        Output::Retire(name) => format!("retire {name}"),
    }
}

fn effect_text(e: &Effect) -> String {
    match e {
        Effect::SendAdvert { priority } => format!("send advert priority {priority}"),
        Effect::StartAdverts {
            priority,
            first,
            interval,
        } => format!(
            "start adverts priority {priority} from {} every {:.6}",
            fmt_time(*first),
            interval.as_secs_f64()
        ),
        Effect::StopAdverts => "stop adverts".to_owned(),
        Effect::AddVips => "add VIPs".to_owned(),
        Effect::RemoveVips => "remove VIPs".to_owned(),
        Effect::RemoveVipsOf(v) => format!(
            "remove VIPs {}",
            v.iter()
                .map(|v| format!("{}/{}", v.addr, v.prefix))
                .collect::<Vec<_>>()
                .join(",")
        ),
        Effect::Announce { repeat } => format!("announce x{repeat}"),
        Effect::Transition { from, to, priority } => {
            format!("{from} -> {to} (priority {priority})")
        }
        Effect::Priority { from, to } => format!("effective priority {from} -> {to}"),
        Effect::Tracking { failed: true } => "tracking failed: FAULT".to_owned(),
        Effect::Tracking { failed: false } => "tracking recovered".to_owned(),
        Effect::HeardLowerPriority { priority } => {
            format!("heard a lower priority (ours {priority})")
        }
    }
}

fn run_case(dir: &Path) -> String {
    let events = std::fs::read_to_string(dir.join("events"))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join("events").display()));
    let mut case = Case {
        dir: dir.to_path_buf(),
        ifaces: BTreeMap::new(),
        router: Router::new(),
        now: Instant::ZERO,
        out: String::new(),
    };
    for line in events.lines() {
        case.run(line);
    }
    case.out
}

#[test]
fn conformance_cases_match_their_golden_outputs() {
    let bless = std::env::var_os("VRRPD_BLESS").is_some();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .expect("tests/conformance")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("events").is_file())
        .collect();
    dirs.sort();
    assert!(
        dirs.len() >= 20,
        "{} cases; the issue asks for 20",
        dirs.len()
    );
    let mut failed = Vec::new();
    for dir in &dirs {
        let got = run_case(dir);
        let path = dir.join("expected");
        if bless {
            std::fs::write(&path, &got).expect("write expected");
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        if got != want {
            let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
            let first = got
                .lines()
                .zip(want.lines())
                .position(|(a, b)| a != b)
                .unwrap_or_else(|| got.lines().count().min(want.lines().count()));
            failed.push(format!(
                "{}: differs from line {}:\n  got:  {}\n  want: {}",
                name.unwrap_or_default(),
                first + 1,
                got.lines().nth(first).unwrap_or("<end>"),
                want.lines().nth(first).unwrap_or("<end>")
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} cases differ (VRRPD_BLESS=1 regenerates them):\n{}",
        failed.len(),
        dirs.len(),
        failed.join("\n")
    );
}
