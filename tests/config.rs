//! Issue 4: keepalived.conf read unchanged. The seed's configs, a corpus of realistic ones,
//! bad inputs with their exact messages and lines, and a differential test against the real
//! `keepalived -t` (config test mode) over the whole corpus.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use vrrp::config::{self, LoadOptions, Severity};
use vrrpd_lab::{fixtures, require_root};

const VRRPD: &str = env!("CARGO_BIN_EXE_vrrpd");

fn files(dir: &str, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixtures().join(dir))
        .expect("fixture dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

fn opts() -> LoadOptions {
    LoadOptions {
        config_id: "lb01".to_owned(),
    }
}

fn seed_configs() -> Vec<PathBuf> {
    files("seed", "conf")
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().contains("-lb0"))
        })
        .collect()
}

/// Every keepalived.conf of the seed, verbatim, loads with no diagnostic at all.
#[test]
fn seed_configs_load_cleanly() {
    let seeds = seed_configs();
    assert_eq!(seeds.len(), 8, "{seeds:?}");
    for f in seeds {
        let (c, d) = config::load(&f, &opts());
        assert!(d.0.is_empty(), "{}: {:?}", f.display(), d.0);
        assert!(!c.instances.is_empty());
    }
}

/// What the seed's configs mean, field by field.
#[test]
fn seed_chapter8_lb02_model() {
    let (c, d) = config::load(&fixtures().join("seed/ch8-lb02.conf"), &opts());
    assert!(!d.has_errors(), "{d:?}");
    assert_eq!(c.global.router_id.as_deref(), Some("lb02"));
    let i = &c.instances[0];
    assert_eq!(
        (
            i.name.as_str(),
            i.interface.as_str(),
            i.vrid,
            i.priority,
            i.advert_int_cs
        ),
        ("VI_1", "eth0", 50, 100, 100)
    );
    assert_eq!(i.state, config::InitialState::Backup);
    assert_eq!(i.auth.as_deref(), Some("1111"));
    assert_eq!(i.vips.len(), 1);
    assert_eq!(i.vips[0].addr.to_string(), "10.0.0.3");
    assert_eq!(
        i.track_scripts
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>(),
        ["check_web", "check_vip"]
    );
    let s = &c.scripts["check_vip"];
    assert_eq!(
        (s.command.as_str(), s.interval, s.weight),
        ("/server/scripts/check_vip.sh", Duration::from_secs(5), 50)
    );
}

/// The realistic corpus loads without errors; includes, variables and conditionals resolve.
#[test]
fn corpus_loads_without_errors() {
    for f in files("configs/good", "conf") {
        let (_, d) = config::load(&f, &opts());
        assert!(
            !d.has_errors(),
            "{}:\n{}",
            f.display(),
            d.0.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let (c, _) = config::load(&fixtures().join("configs/good/include-vars.conf"), &opts());
    let names: Vec<&str> = c.instances.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["VI_1", "VI_2"]);
    let vi1 = &c.instances[0];
    assert_eq!(
        (vi1.interface.as_str(), vi1.priority, vi1.state),
        ("eth0", 150, config::InitialState::Master)
    );
    assert_eq!(
        vi1.vips
            .iter()
            .map(|v| v.addr.to_string())
            .collect::<Vec<_>>(),
        ["10.0.0.3", "10.0.0.30"]
    );
    assert_eq!(c.global.router_id.as_deref(), Some("lb01"));
    // The same file as host lb02: the @lb02 line applies.
    let (c, _) = config::load(
        &fixtures().join("configs/good/include-vars.conf"),
        &LoadOptions {
            config_id: "lb02".into(),
        },
    );
    assert_eq!(c.instances[0].priority, 100);
}

/// What vrrpd skips is said once per keyword with its line, never an error.
#[test]
fn unsupported_parts_are_warnings_with_lines() {
    let (c, d) = config::load(&fixtures().join("configs/good/lvs-dr.conf"), &opts());
    assert!(!d.has_errors());
    let w: Vec<String> = d.0.iter().map(ToString::to_string).collect();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].ends_with("lvs-dr.conf:17: warning: 'virtual_server' is keepalived's feature, which vrrpd does not do: skipped"), "{w:?}");
    assert_eq!(c.instances.len(), 1);
}

/// Each bad input gives exactly the expected diagnostics (line: severity: message).
#[test]
fn bad_inputs_give_exact_messages_and_lines() {
    for f in files("configs/bad", "conf") {
        let expect_path = f.with_extension("expect");
        let expected =
            std::fs::read_to_string(&expect_path).expect("an .expect file beside each bad config");
        let (_, d) = config::load(&f, &opts());
        let got: Vec<String> =
            d.0.iter()
                .map(|x| {
                    let sev = if x.severity == Severity::Error {
                        "error"
                    } else {
                        "warning"
                    };
                    format!("{}: {sev}: {}", x.loc.line, x.message)
                })
                .collect();
        let want: Vec<&str> = expected.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(got, want, "{}", f.display());
    }
}

/// `vrrpd check`: FILE:LINE: error|warning: message, exit status, --dump as JSON.
#[test]
fn check_command_prints_and_exits() {
    let bad = fixtures().join("configs/bad/unknown-keyword.conf");
    let out = Command::new(VRRPD)
        .args(["check", "-f"])
        .arg(&bad)
        .output()
        .expect("vrrpd check");
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.trim(),
        format!(
            "{}:4: error: unknown keyword 'bogus_keyword' in vrrp_instance VI_1",
            bad.display()
        )
    );

    let good = fixtures().join("seed/ch6-lb01.conf");
    let out = Command::new(VRRPD)
        .args(["check", "--dump", "-f"])
        .arg(&good)
        .output()
        .expect("vrrpd check");
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--dump prints JSON");
    assert_eq!(v["instances"][1]["name"], "VI_2");
    assert_eq!(v["instances"][1]["vips"][0]["addr"], "10.0.0.4");
    assert_eq!(v["instances"][1]["auth"], "2222");
}

/// keepalived -t exit codes (2.2.x): 0 fine, 6 only a script-security notice (both
/// "accepted"); 5 config errors, 2 a fatal one such as a keyword without its parameter.
fn keepalived_accepts(ns: &str, file: &Path) -> (bool, String) {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "timeout",
            "10",
            "keepalived",
            "-t",
            "-l",
            "-f",
        ])
        .arg(file)
        .output()
        .expect("keepalived -t");
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    match out.status.code() {
        Some(0 | 6) => (true, text),
        Some(2 | 5) => (false, text),
        other => panic!("keepalived -t {} exited {other:?}:\n{text}", file.display()),
    }
}

/// The judge: over the seed, the corpus and the bad inputs, vrrpd accepts what keepalived
/// accepts and rejects what it rejects. keepalived runs in a namespace that has eth0 and
/// eth1 (its -t checks interfaces; vrrpd checks them at run time).
#[test]
fn differential_against_keepalived_t() {
    if !require_root("differential_against_keepalived_t") {
        return;
    }
    let ns = format!("vl{}z-kt", std::process::id());
    let ip = |args: &[&str]| {
        assert!(
            Command::new("ip")
                .args(args)
                .status()
                .expect("ip")
                .success(),
            "ip {args:?}"
        )
    };
    ip(&["netns", "add", &ns]);
    struct Guard(String);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }
    let _guard = Guard(ns.clone());
    ip(&[
        "-n", &ns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1",
    ]);

    // The seed's chapter-8 configs name /server/scripts/*.sh, which keepalived -t requires to
    // exist (vrrpd checks scripts at run time, as it does interfaces). Judge both tools on a
    // copy that points at the fixtures' copies of those scripts.
    let tmp = std::env::temp_dir().join(format!("vrrpd-differential-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("temp dir");
    let scripts = fixtures().join("seed").canonicalize().expect("seed dir");
    let mut all: Vec<PathBuf> = seed_configs()
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f)
                .expect("seed")
                .replace("/server/scripts", &scripts.display().to_string());
            let copy = tmp.join(f.file_name().expect("name"));
            std::fs::write(&copy, text).expect("copy");
            copy
        })
        .collect();
    all.extend(files("configs/good", "conf"));
    // Two deliberate exceptions: keepalived hangs on a variable loop (vrrpd reports it), and
    // vrrpd refuses AH authentication, which keepalived supports (issue 4: "AH: a clear
    // 'not supported' error").
    all.extend(
        files("configs/bad", "conf")
            .into_iter()
            .filter(|p| !p.ends_with("variable-loop.conf") && !p.ends_with("ah-auth.conf")),
    );
    let mut disagreements = Vec::new();
    for f in &all {
        let (k_ok, k_text) = keepalived_accepts(&ns, f);
        let (_, d) = config::load(f, &opts());
        let v_ok = !d.has_errors();
        if k_ok != v_ok {
            disagreements.push(format!(
                "{}: keepalived {} / vrrpd {}\nkeepalived said:\n{k_text}\nvrrpd said:\n{}",
                f.display(),
                if k_ok { "accepts" } else { "rejects" },
                if v_ok { "accepts" } else { "rejects" },
                d.0.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(all.len() >= 30, "corpus of {}", all.len());
    assert!(
        disagreements.is_empty(),
        "{} disagreements:\n\n{}",
        disagreements.len(),
        disagreements.join("\n\n")
    );
}
