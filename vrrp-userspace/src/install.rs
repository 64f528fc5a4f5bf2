//! `vrrpd install --as-keepalived` and `vrrpd manpages`: files vrrpd puts on a host for
//! systemd and for man(1).

use std::{
    fs,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use anyhow::{Context as _, bail};
use clap::CommandFactory as _;

use crate::cli::{Cli, InstallArgs};

/// Where units live, the administrator's first (the order systemd reads them in).
const UNIT_DIRS: &[&str] = &[
    "etc/systemd/system",
    "usr/lib/systemd/system",
    "lib/systemd/system",
];

/// keepalived.service as an alias of vrrpd.service: a symlink in /etc/systemd/system, which
/// systemd reads before the keepalived package's own unit. It is systemd's way to give a unit
/// a second name (an `Alias=` cannot go in a drop-in), and `systemctl stop keepalived` then
/// stops vrrpd: the seed's check scripts fence the right daemon.
pub fn install(args: &InstallArgs) -> anyhow::Result<ExitCode> {
    let alias = args.root.join("etc/systemd/system/keepalived.service");
    let ours =
        |p: &Path| fs::read_link(p).is_ok_and(|t| t.file_name() == Some("vrrpd.service".as_ref()));
    let live = args.root == Path::new("/") && Path::new("/run/systemd/system").is_dir();
    if args.remove {
        if fs::symlink_metadata(&alias).is_err() {
            println!("no keepalived.service alias at {}", alias.display());
            return Ok(ExitCode::SUCCESS);
        }
        if !ours(&alias) {
            bail!(
                "{} is not vrrpd's alias (it does not point to vrrpd.service): left in place",
                alias.display()
            );
        }
        fs::remove_file(&alias).with_context(|| format!("removing {}", alias.display()))?;
        println!("removed {}", alias.display());
        if live {
            daemon_reload()?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let Some(unit) = UNIT_DIRS
        .iter()
        .map(|d| Path::new("/").join(d).join("vrrpd.service"))
        .find(|u| args.root.join(u.strip_prefix("/").unwrap_or(u)).is_file())
    else {
        bail!(
            "no vrrpd.service under {} ({}): install the package (or `cargo xtask install`) first",
            args.root.display(),
            UNIT_DIRS.join(", ")
        );
    };
    if fs::symlink_metadata(&alias).is_ok() {
        if ours(&alias) {
            println!("{} is already vrrpd's alias", alias.display());
            return Ok(ExitCode::SUCCESS);
        }
        bail!(
            "{} exists and is not vrrpd's alias (an administrator's keepalived unit?): move it away first",
            alias.display()
        );
    }
    if live && systemctl(&["is-active", "--quiet", "keepalived.service"]) {
        bail!(
            "keepalived is running: `systemctl disable --now keepalived` first (one VRRP speaker per box, and systemd would lose track of it under the alias)"
        );
    }
    if let Some(dir) = alias.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    symlink(&unit, &alias).with_context(|| format!("creating {}", alias.display()))?;
    println!("{} -> {}", alias.display(), unit.display());
    println!(
        "`systemctl stop|start|restart|status keepalived` now act on vrrpd; `vrrpd install --as-keepalived --remove` undoes it"
    );
    if live {
        daemon_reload()?;
    }
    Ok(ExitCode::SUCCESS)
}

fn systemctl(args: &[&str]) -> bool {
    Command::new("systemctl")
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

fn daemon_reload() -> anyhow::Result<()> {
    if systemctl(&["daemon-reload"]) {
        Ok(())
    } else {
        bail!("systemctl daemon-reload failed")
    }
}

/// vrrpd.8 and one page per subcommand (vrrpd-run.8, ...), from the clap definitions, so
/// they say what the binary does.
pub fn manpages(dir: &Path) -> anyhow::Result<ExitCode> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let cli = Cli::command();
    let mut pages: Vec<(PathBuf, clap::Command)> = vec![(dir.join("vrrpd.8"), cli.clone())];
    for sub in cli.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("vrrpd-{}", sub.get_name());
        let page = sub
            .clone()
            .display_name(&name)
            .bin_name(format!("vrrpd {}", sub.get_name()));
        pages.push((dir.join(format!("{name}.8")), page));
    }
    for (path, cmd) in pages {
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd)
            .section("8")
            .render(&mut out)
            .with_context(|| format!("rendering {}", path.display()))?;
        fs::write(&path, out).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}
