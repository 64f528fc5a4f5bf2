//! Issue 18, "a Debian package" and "a crash leaves nothing behind": the .deb that `cargo
//! xtask package` built (`cargo xtask test` builds it first) is installed with dpkg into a
//! scratch root; the seed's configs run from it in the lab, the VIP left by a `kill -9` is
//! removed by the packaged unit's own ExecStopPost= line (twice: idempotent), and `vrrpd
//! install --as-keepalived` makes keepalived.service an alias systemd itself resolves to
//! vrrpd.service (`systemctl --root`), so that the seed's `systemctl stop keepalived` stops
//! vrrpd.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

use vrrpd_lab::{Host, Lab, require_root, wait_until};

const VIP: &str = "10.0.0.3";

/// The package `cargo xtask package` left in target/debian.
fn the_deb() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debian");
    fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// dpkg -i into an empty root of its own (its own dpkg database; libc is the host's).
fn install(deb: &Path, root: &Path) {
    let admin = root.join("var/lib/dpkg");
    fs::create_dir_all(admin.join("info")).expect("dpkg dirs");
    fs::create_dir_all(admin.join("updates")).expect("dpkg dirs");
    fs::write(admin.join("status"), "").expect("dpkg status");
    fs::write(admin.join("available"), "").expect("dpkg available");
    let out = run(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args(["--force-depends", "-i"])
        .arg(deb));
    assert!(out.status.success(), "dpkg -i: {}", text(&out));
}

/// The unit's `KEY=` line.
fn unit_line<'a>(unit: &'a str, key: &str) -> &'a str {
    unit.lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in the unit:\n{unit}"))
}

#[test]
fn the_package_installs_runs_the_seed_and_cleans_up_after_kill_9() {
    if !require_root("the_package_installs_runs_the_seed_and_cleans_up_after_kill_9") {
        return;
    }
    let Some(deb) = the_deb() else {
        assert!(
            std::env::var_os("VRRPD_REQUIRE_ROOT").is_none(),
            "no .deb in target/debian: `cargo xtask package` (run by `cargo xtask test`) makes it"
        );
        eprintln!(
            "SKIPPED the_package_installs_runs_the_seed_and_cleans_up_after_kill_9: no .deb in target/debian (run `cargo xtask package`)"
        );
        return;
    };
    let lab = Lab::seed();
    let root = lab.dir().join("root");
    install(&deb, &root);

    // What the package holds: the binary, man pages and completions generated from the
    // command line (one page per subcommand), the unit, the examples and the dashboard.
    let bin = root.join("usr/sbin/vrrpd");
    let version = run(Command::new(&bin).arg("--version"));
    assert!(
        text(&version).contains(env!("CARGO_PKG_VERSION")),
        "{}",
        text(&version)
    );
    let help = text(&run(Command::new(&bin).arg("--help")));
    for sub in ["run", "status", "cleanup", "install", "set", "reload"] {
        assert!(
            root.join(format!("usr/share/man/man8/vrrpd-{sub}.8.gz"))
                .is_file(),
            "no man page for {sub}"
        );
        assert!(help.contains(&format!("  {sub} ")), "{sub} not in --help");
    }
    for f in [
        "usr/share/man/man8/vrrpd.8.gz",
        "usr/share/bash-completion/completions/vrrpd",
        "usr/share/zsh/vendor-completions/_vrrpd",
        "usr/share/fish/vendor_completions.d/vrrpd.fish",
        "usr/share/vrrpd/grafana/vrrpd.json",
        "usr/share/doc/vrrpd/examples/ch4-lb01.conf",
        "usr/share/doc/vrrpd/copyright",
    ] {
        assert!(root.join(f).is_file(), "the package has no /{f}");
    }
    let bash = fs::read_to_string(root.join("usr/share/bash-completion/completions/vrrpd"))
        .expect("bash completion");
    assert!(bash.contains("cleanup") && bash.contains("--as-keepalived"));
    let unit =
        fs::read_to_string(root.join("usr/lib/systemd/system/vrrpd.service")).expect("the unit");
    assert_eq!(
        unit_line(&unit, "ExecStart="),
        "/usr/sbin/vrrpd run -f /etc/keepalived/keepalived.conf --control /run/vrrpd/vrrpd.sock"
    );
    let examples = root.join("usr/share/doc/vrrpd/examples");
    let check = run(Command::new(&bin)
        .args(["check", "--skip-host", "-f"])
        .arg(examples.join("ch4-lb01.conf")));
    assert!(check.status.success(), "{}", text(&check));

    // The seed's chapter 4 from the package: lb01 master, lb02 backup.
    let bin_s = bin.display().to_string();
    let seed = |f: &str| fs::read_to_string(examples.join(f)).expect("packaged example");
    let mut lb01 = lab.vrrpd(&bin_s, Host::Lb01, &seed("ch4-lb01.conf"));
    let lb02 = lab.vrrpd(&bin_s, Host::Lb02, &seed("ch4-lb02.conf"));
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb01, VIP)
            && !lab.holds(Host::Lb02, VIP)),
        "the packaged vrrpd never made lb01 the only master\n{}\n{}",
        lb01.logs(),
        lb02.logs()
    );

    // kill -9: no priority 0, no cleanup; lb02 takes over and lb01 still holds the VIP.
    lb01.signal("KILL");
    assert!(lb01.wait_exit(Duration::from_secs(5)).is_some());
    assert!(
        wait_until(Duration::from_secs(10), || lab.holds(Host::Lb02, VIP)),
        "{}",
        lb02.logs()
    );
    assert!(
        lab.holds(Host::Lb01, VIP),
        "the killed master lost its VIP by itself: nothing left for ExecStopPost to test"
    );
    // The unit's ExecStopPost=, as systemd runs it after the main process died, pointed at
    // this lab's config and socket.
    let post = unit_line(&unit, "ExecStopPost=")
        .replace("/usr/sbin/vrrpd", &bin_s)
        .replace(
            "/etc/keepalived/keepalived.conf",
            &lab.dir().join("vrrpd-lb01.conf").display().to_string(),
        )
        .replace(
            "/run/vrrpd/vrrpd.sock",
            &lab.control_socket(Host::Lb01).display().to_string(),
        );
    let argv: Vec<&str> = post.split_whitespace().collect();
    let first = lab.try_exec(Host::Lb01, &argv).expect("ExecStopPost");
    assert!(first.status.success(), "{post}: {}", text(&first));
    assert!(
        text(&first).contains(&format!("removed VIP {VIP}/")),
        "{}",
        text(&first)
    );
    assert!(!lab.holds(Host::Lb01, VIP), "{}", text(&first));
    assert!(lab.holds(Host::Lb02, VIP));
    let again = lab.try_exec(Host::Lb01, &argv).expect("ExecStopPost");
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        text(&again).contains("nothing left behind"),
        "{}",
        text(&again)
    );

    // Against a live daemon, cleanup refuses (it would pull the VIP from under a master).
    let live = lab
        .try_exec(
            Host::Lb02,
            &[
                &bin_s,
                "cleanup",
                "-f",
                &lab.dir().join("vrrpd-lb02.conf").display().to_string(),
                "-s",
                &lab.control_socket(Host::Lb02).display().to_string(),
            ],
        )
        .expect("cleanup");
    assert_eq!(live.status.code(), Some(2), "{}", text(&live));
    assert!(lab.holds(Host::Lb02, VIP));
}

#[test]
fn the_keepalived_alias_is_resolved_by_systemd_to_vrrpd() {
    if !require_root("the_keepalived_alias_is_resolved_by_systemd_to_vrrpd") {
        return;
    }
    let Some(deb) = the_deb() else {
        assert!(
            std::env::var_os("VRRPD_REQUIRE_ROOT").is_none(),
            "no .deb in target/debian: `cargo xtask package` (run by `cargo xtask test`) makes it"
        );
        eprintln!(
            "SKIPPED the_keepalived_alias_is_resolved_by_systemd_to_vrrpd: no .deb in target/debian (run `cargo xtask package`)"
        );
        return;
    };
    let dir = tempdir("alias");
    let root = dir.join("root");
    install(&deb, &root);
    // keepalived's own unit, as its package puts it there.
    let keepalived = root.join("usr/lib/systemd/system/keepalived.service");
    fs::write(
        &keepalived,
        "[Unit]\nDescription=keepalived\n[Service]\nExecStart=/usr/sbin/keepalived --dont-fork\n[Install]\nWantedBy=multi-user.target\n",
    )
    .expect("keepalived.service");
    let bin = root.join("usr/sbin/vrrpd");
    let root_arg = root.display().to_string();
    let systemctl = |args: &[&str]| {
        text(&run(Command::new("systemctl")
            .arg(format!("--root={root_arg}"))
            .args(args)))
    };
    assert_eq!(
        systemctl(&["is-enabled", "keepalived.service"]).trim(),
        "disabled"
    );

    let out = run(Command::new(&bin)
        .args(["install", "--as-keepalived", "--root"])
        .arg(&root));
    assert!(out.status.success(), "{}", text(&out));
    let alias = root.join("etc/systemd/system/keepalived.service");
    assert_eq!(
        fs::read_link(&alias).expect("the alias is a symlink"),
        Path::new("/usr/lib/systemd/system/vrrpd.service")
    );
    // systemd's own resolution: the name keepalived.service is vrrpd.service now, so
    // `systemctl stop keepalived` (the seed's check_web.sh) stops vrrpd.
    assert_eq!(
        systemctl(&["is-enabled", "keepalived.service"]).trim(),
        "alias"
    );
    let verify = text(&run(Command::new("systemd-analyze").args([
        "verify",
        &format!("--root={root_arg}"),
        "vrrpd.service",
    ])));
    assert!(
        verify.contains("keepalived.service is merged into vrrpd.service"),
        "{verify}"
    );
    for bad in ["Unknown key", "Invalid", "bad-setting", "Failed to parse"] {
        assert!(!verify.contains(bad), "the unit: {verify}");
    }
    // A second install is a no-op; --remove brings keepalived's own unit back.
    let out = run(Command::new(&bin)
        .args(["install", "--as-keepalived", "--root"])
        .arg(&root));
    assert!(
        out.status.success() && text(&out).contains("already"),
        "{}",
        text(&out)
    );
    let out = run(Command::new(&bin)
        .args(["install", "--as-keepalived", "--remove", "--root"])
        .arg(&root));
    assert!(out.status.success(), "{}", text(&out));
    assert!(fs::symlink_metadata(&alias).is_err());
    assert_eq!(
        systemctl(&["is-enabled", "keepalived.service"]).trim(),
        "disabled"
    );
    // An administrator's own keepalived.service in /etc is never replaced.
    fs::write(&alias, "[Service]\nExecStart=/bin/true\n").expect("own unit");
    let out = run(Command::new(&bin)
        .args(["install", "--as-keepalived", "--root"])
        .arg(&root));
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("move it away"), "{}", text(&out));
    assert!(fs::read_to_string(&alias).is_ok_and(|s| s.contains("/bin/true")));
    let _ = fs::remove_dir_all(&dir);
}

fn tempdir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vrrpd-package-{what}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("temp dir");
    dir
}
