//! `cargo xtask`: what build scripts cannot do. `build` is a thin wrapper around `cargo build`;
//! the XDP object itself is built by vrrp-userspace's build.rs (aya-build).

use std::{
    env,
    ffi::OsString,
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

mod bench;
mod lab;

/// The dated nightly that builds the eBPF crate; same commit as the machine image's "nightly".
/// `rustup update` would move "nightly" to a newer LLVM and break bpf-linker, hence the pin.
/// Keep in sync with vrrp-userspace/build.rs.
const NIGHTLY: &str = "nightly-2026-05-20";
const BPF_LINKER_VERSION: &str = "0.13.0";

/// Debian packages the tests, the lab and the benchmarks use.
const PACKAGES: &[&str] = &[
    "iproute2",
    "keepalived",
    "nftables",
    "iptables",
    "nginx-light",
    "tshark",
    "stress-ng",
    "bpftool",
    "curl",
    "iputils-ping",
    "procps",
    "psmisc",
    "util-linux",
    "iperf3",
    "ethtool",
    "systemd",
    // Real host firewalls for the diagnosis tests (tests/lab/src/firewalls.rs); neither starts
    // on install here (no init running it), and the tests run them inside a lab namespace.
    "firewalld",
    "ufw",
    "dbus-daemon",
    // A real Prometheus server and promtool for tests/prometheus.rs; lintian for the package.
    "prometheus",
    "lintian",
];

#[derive(Parser)]
#[command(name = "cargo xtask", about = "vrrpd developer tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what a fresh machine lacks: the pinned nightly with rust-src, bpf-linker, and
    /// the Debian packages the tests and the lab use. Idempotent; a second run takes seconds.
    Setup,
    /// Build the XDP program and `vrrpd` (debug unless --release).
    Build {
        #[arg(long)]
        release: bool,
    },
    /// Build everything, then run `vrrpd run ARGS` with the arguments after `--` (or another
    /// subcommand when ARGS starts with one: `-- watch -i eth0`).
    BuildAndLoad {
        #[arg(long)]
        release: bool,
        #[arg(last = true)]
        args: Vec<OsString>,
    },
    /// The seed's lab (lb01, lb02, web01, web02, client in network namespaces) with vrrpd on
    /// both load balancers and nginx behind the VIP, left running: `lab [up]`, `lab status`,
    /// `lab failover`, `lab down`.
    Lab {
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Set up, then run the whole test suite. Arguments after `--` go to `cargo test`.
    Test {
        #[arg(last = true)]
        args: Vec<OsString>,
    },
    /// Install the release binary and the systemd unit: /usr/local/sbin/vrrpd and
    /// /etc/systemd/system/vrrpd.service (under --root DIR if given).
    Install {
        #[arg(long, default_value = "/")]
        root: PathBuf,
    },
    /// Build the Debian package (cargo-deb): target/debian/vrrpd_VERSION_ARCH.deb with the
    /// binary, the unit, man pages and completions generated from the clap definitions, the
    /// seed's configs as examples and the Grafana dashboard; then lintian on it.
    Package,
    /// Fuzz a parser of untrusted input (`decode`: VRRP/IP/ring records; `config`:
    /// keepalived.conf; `control`: the control socket's requests and advert stream) for
    /// SECONDS with cargo-fuzz (installed on first use).
    Fuzz {
        #[arg(default_value = "decode")]
        target: String,
        #[arg(default_value_t = 60)]
        seconds: u64,
    },
    /// Benchmarks against keepalived in the same lab: `--quick` (under 15 min) or the full
    /// suite, writing target/bench/report.md and gaps.svg; `latency [N]`; `--chaos [SECS]`;
    /// `fuzz [SECS]`.
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.task {
        Task::Setup => setup(),
        Task::Build { release } => build(release),
        Task::BuildAndLoad { release, args } => {
            build(release)?;
            let bin = workspace_root()
                .join("target")
                .join(if release { "release" } else { "debug" })
                .join("vrrpd");
            // `build-and-load -- ARGS` runs `vrrpd run ARGS` (the design card); a subcommand given
            // first (`-- watch -i eth0`) is passed through as it is.
            const SUBCOMMANDS: &[&str] = &[
                "run",
                "watch",
                "check",
                "status",
                "diagnose",
                "capture",
                "reload",
                "set",
                "cleanup",
                "install",
                "completions",
                "help",
                "--help",
                "-h",
                "--version",
                "-V",
            ];
            let mut argv = args.clone();
            if !argv
                .first()
                .is_some_and(|a| SUBCOMMANDS.iter().any(|s| a == *s))
            {
                argv.insert(0, OsString::from("run"));
            }
            let status = Command::new(&bin)
                .args(&argv)
                .status()
                .with_context(|| format!("running {}", bin.display()))?;
            std::process::exit(status.code().unwrap_or(1));
        }
        Task::Lab { args } => {
            if !is_root() {
                bail!("the lab needs root (network namespaces, XDP)");
            }
            if matches!(
                args.first().map(String::as_str),
                None | Some("up" | "failover")
            ) {
                setup()?;
                build(false)?;
            }
            lab::run(&args, &workspace_root().join("target/debug/vrrpd"))
        }
        Task::Test { args } => test(&args),
        Task::Fuzz { target, seconds } => fuzz(&target, seconds),
        Task::Install { root } => install(&root),
        Task::Package => package().map(|deb| println!("{}", deb.display())),
        Task::Bench { args } => {
            if !is_root() {
                bail!("the benchmarks need root (network namespaces, XDP)");
            }
            setup()?;
            build(true)?;
            bench::run(&args, &workspace_root().join("target/release/vrrpd"))
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn cargo_home() -> PathBuf {
    env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("/root/.cargo"))
}

/// `cargo` with $CARGO_HOME/bin first on PATH: bpf-linker is installed there, and CI's
/// environment or sudo may lack it.
fn cargo() -> Command {
    let bin = cargo_home().join("bin");
    let path = env::var_os("PATH").unwrap_or_default();
    let joined =
        env::join_paths(std::iter::once(bin).chain(env::split_paths(&path))).unwrap_or(path);
    let mut cmd = Command::new("cargo");
    cmd.env("PATH", joined).current_dir(workspace_root());
    cmd
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn is_root() -> bool {
    output(Command::new("id").arg("-u")).is_ok_and(|s| s.trim() == "0")
}

fn setup() -> anyhow::Result<()> {
    let started = Instant::now();
    setup_packages()?;
    setup_nightly()?;
    setup_bpf_linker()?;
    println!(
        "xtask setup: ready in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn setup_packages() -> anyhow::Result<()> {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            !output(Command::new("dpkg-query").args(["-W", "-f=${Status}", p]))
                .is_ok_and(|s| s.contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        println!("xtask setup: Debian packages present");
        return Ok(());
    }
    if !is_root() {
        bail!(
            "missing Debian packages {missing:?}; run `cargo xtask setup` as root (it uses apt-get)"
        );
    }
    println!("xtask setup: installing {missing:?}");
    // Under systemd, Debian's postinst would start firewalld in the machine's own namespace,
    // where its default zone rejects almost everything: masked first, it never starts there.
    if missing.contains(&"firewalld") && Path::new("/run/systemd/system").exists() {
        run(Command::new("systemctl").args(["mask", "firewalld.service"]))?;
    }
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

fn setup_nightly() -> anyhow::Result<()> {
    let installed = output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        NIGHTLY,
    ]));
    if installed
        .as_deref()
        .is_ok_and(|s| s.lines().any(|l| l.starts_with("rust-src")))
    {
        println!("xtask setup: {NIGHTLY} with rust-src present");
        return Ok(());
    }
    println!("xtask setup: installing {NIGHTLY} with rust-src");
    run(Command::new("rustup").args([
        "toolchain",
        "install",
        NIGHTLY,
        "--profile",
        "minimal",
        "--component",
        "rust-src",
    ]))
}

/// bpf-linker is built against the pinned nightly's own libLLVM (no LLVM 22 package exists for
/// this Debian) with an rpath to it; a stamp records what it was built against, so that a new
/// nightly rebuilds it and an unchanged one costs a version check.
fn setup_bpf_linker() -> anyhow::Result<()> {
    let tools = cargo_home().join("vrrpd-tools");
    let sysroot = PathBuf::from(
        output(
            Command::new("rustc")
                .arg(format!("+{NIGHTLY}"))
                .args(["--print", "sysroot"]),
        )?
        .trim(),
    );
    let verbose = output(Command::new("rustc").arg(format!("+{NIGHTLY}")).arg("-vV"))?;
    let llvm_major = verbose
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .and_then(|v| v.split('.').next())
        .context("rustc -vV printed no LLVM version")?
        .to_owned();
    let stamp_text = format!(
        "bpf-linker {BPF_LINKER_VERSION} llvm-{llvm_major} {}\n",
        verbose
            .lines()
            .find(|l| l.starts_with("commit-hash"))
            .unwrap_or("")
    );
    let stamp = tools.join("bpf-linker.stamp");
    let linker = tools.join("bin").join("bpf-linker");
    let link = cargo_home().join("bin").join("bpf-linker");
    let works = output(
        Command::new(&linker)
            .arg("--version")
            .env_clear()
            .env("PATH", "/usr/bin:/bin"),
    )
    .is_ok_and(|v| v.contains(BPF_LINKER_VERSION));
    if works && fs::read_to_string(&stamp).is_ok_and(|s| s == stamp_text) {
        ensure_symlink(&linker, &link)?;
        println!("xtask setup: bpf-linker {BPF_LINKER_VERSION} (LLVM {llvm_major}) present");
        return Ok(());
    }
    let libllvm = fs::read_dir(sysroot.join("lib"))
        .with_context(|| format!("reading {}", sysroot.join("lib").display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with(&format!("libLLVM.so.{llvm_major}.")) && n.contains("-rust-")
            })
        })
        .with_context(|| {
            format!(
                "no libLLVM.so.{llvm_major}.*-rust-* in {}/lib",
                sysroot.display()
            )
        })?;
    let llvm_lib = tools.join("llvm").join("lib");
    fs::create_dir_all(&llvm_lib)?;
    let _ = fs::remove_file(llvm_lib.join("libLLVM.so"));
    std::os::unix::fs::symlink(&libllvm, llvm_lib.join("libLLVM.so"))?;
    println!(
        "xtask setup: building bpf-linker {BPF_LINKER_VERSION} against LLVM {llvm_major} (about a minute)"
    );
    run(Command::new("cargo")
        .args([
            "+stable",
            "install",
            &format!("bpf-linker@{BPF_LINKER_VERSION}"),
            "--locked",
            "--force",
            "--no-default-features",
        ])
        .args(["--features", &format!("llvm-{llvm_major}"), "--root"])
        .arg(&tools)
        .env(
            "RUSTFLAGS",
            format!("-C link-arg=-Wl,-rpath,{}", sysroot.join("lib").display()),
        )
        .env("LLVM_PREFIX", tools.join("llvm")))?;
    output(
        Command::new(&linker)
            .arg("--version")
            .env_clear()
            .env("PATH", "/usr/bin:/bin"),
    )
    .context("the new bpf-linker does not run without cargo's environment")?;
    fs::write(&stamp, stamp_text)?;
    ensure_symlink(&linker, &link)
}

fn ensure_symlink(target: &Path, link: &Path) -> anyhow::Result<()> {
    if fs::read_link(link).is_ok_and(|t| t == target) {
        return Ok(());
    }
    if let Some(dir) = link.parent() {
        fs::create_dir_all(dir)?;
    }
    let _ = fs::remove_file(link);
    std::os::unix::fs::symlink(target, link).with_context(|| format!("linking {}", link.display()))
}

fn build(release: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut cmd = cargo();
    cmd.args(["build", "--package", "vrrp-userspace", "--bins"]);
    if release {
        cmd.arg("--release");
    }
    run(&mut cmd)?;
    println!(
        "xtask build: done in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn test(args: &[OsString]) -> anyhow::Result<()> {
    use std::io::{BufRead as _, Write as _};
    setup()?;
    // tests/package.rs installs the .deb; building it also runs lintian on it.
    let deb = package()?;
    println!("package: {} (lintian clean)", deb.display());
    let mut child = cargo()
        // --no-fail-fast: one flaky binary must not hide what the others would have said.
        .args([
            "test",
            "--no-fail-fast",
            "--workspace",
            "--exclude",
            "vrrp-ebpf",
        ])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("cannot start cargo test")?;
    // Pass cargo's output through, adding up its per-binary "test result:" lines, so that the
    // run ends with one plain total instead of the last (doc-test) binary's "0 passed".
    let (mut passed, mut failed, mut ignored) = (0u64, 0u64, 0u64);
    // The names are repeated at the very end: CI keeps only the tail of a long log.
    let mut failures: Vec<String> = Vec::new();
    let stdout = child.stdout.take().context("cargo test stdout")?;
    let mut out = std::io::stdout().lock();
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line?;
        writeln!(out, "{line}")?;
        if let Some(name) = line
            .strip_prefix("test ")
            .and_then(|rest| rest.strip_suffix(" ... FAILED"))
        {
            failures.push(name.to_owned());
        }
        if let Some(rest) = line.strip_prefix("test result: ") {
            let count = |what: &str| -> u64 {
                rest.split(';')
                    .find_map(|part| {
                        part.trim()
                            .strip_suffix(what)
                            .and_then(|n| n.trim().rsplit(' ').next()?.parse().ok())
                    })
                    .unwrap_or(0)
            };
            passed += count(" passed");
            failed += count(" failed");
            ignored += count(" ignored");
        }
    }
    let status = child.wait()?;
    drop(out);
    // A short fixed-time run of each fuzz target on its committed corpus (VRRPD_FUZZ_SECS,
    // default 15; 0 skips it). `cargo xtask bench fuzz` runs them longer.
    let secs: u64 = std::env::var("VRRPD_FUZZ_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    if secs > 0 && args.is_empty() {
        for target in FUZZ_TARGETS {
            match fuzz(target, secs) {
                Ok(()) => {
                    println!("fuzz {target}: {secs} s, no crash");
                    passed += 1;
                }
                Err(e) => {
                    println!("fuzz {target}: FAILED: {e:#}");
                    failures.push(format!("fuzz {target}"));
                    failed += 1;
                }
            }
        }
    } else {
        ignored += u64::try_from(FUZZ_TARGETS.len()).unwrap_or(0);
        println!("fuzz: skipped (VRRPD_FUZZ_SECS=0 or a filtered run)");
    }
    println!("\ntests: {passed} passed, {failed} failed, {ignored} skipped");
    for name in &failures {
        println!("FAILED: {name}");
    }
    if !status.success() {
        bail!("cargo test failed: {status}");
    }
    if failed > 0 {
        bail!("{failed} failed");
    }
    Ok(())
}

/// The cargo-fuzz targets under fuzz/, each with a corpus in fuzz/corpus/<target>.
pub(crate) const FUZZ_TARGETS: [&str; 3] = ["decode", "config", "control"];

pub(crate) fn fuzz(target: &str, seconds: u64) -> anyhow::Result<()> {
    setup_nightly()?;
    if output(Command::new("cargo").args(["fuzz", "--version"])).is_err() {
        println!("xtask fuzz: installing cargo-fuzz");
        run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    }
    let dir = workspace_root().join("fuzz");
    let corpus = dir.join("corpus").join(target);
    run(cargo()
        .current_dir(&dir)
        .arg(format!("+{NIGHTLY}"))
        .args(["fuzz", "run", target])
        .arg(&corpus)
        .args(["--", &format!("-max_total_time={seconds}")]))
}

const CARGO_DEB_VERSION: &str = "3.8.0";

/// Builds the .deb and checks it with lintian; returns its path.
fn package() -> anyhow::Result<PathBuf> {
    setup_nightly()?;
    setup_bpf_linker()?;
    if !cargo_home().join("bin/cargo-deb").exists() {
        run(cargo().args([
            "install",
            "cargo-deb",
            "--locked",
            "--version",
            CARGO_DEB_VERSION,
        ]))?;
    }
    build(true)?;
    let root = workspace_root();
    let bin = root.join("target/release/vrrpd");
    let dist = root.join("target/dist");
    let _ = fs::remove_dir_all(&dist);
    let man = dist.join("man");
    run(Command::new(&bin).arg("manpages").arg(&man))?;
    for page in fs::read_dir(&man)? {
        // -n: no name or time stamp inside, so the same page gives the same bytes.
        run(Command::new("gzip").args(["-9nf"]).arg(page?.path()))?;
    }
    let completions = dist.join("completions");
    fs::create_dir_all(&completions)?;
    for (shell, file) in [("bash", "vrrpd"), ("zsh", "_vrrpd"), ("fish", "vrrpd.fish")] {
        let out = Command::new(&bin)
            .args(["completions", shell])
            .output()
            .with_context(|| format!("vrrpd completions {shell}"))?;
        if !out.status.success() {
            bail!("vrrpd completions {shell} failed");
        }
        fs::write(completions.join(file), out.stdout)?;
    }
    let debs = root.join("target/debian");
    let _ = fs::remove_dir_all(&debs);
    run(cargo().args(["deb", "-p", "vrrp-userspace", "--no-build"]))?;
    let deb = fs::read_dir(&debs)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .context("cargo deb made no .deb")?;
    // Errors and warnings fail the package; what lintian only suggests is shown.
    run(Command::new("lintian")
        .args(["--fail-on", "error,warning", "--info"])
        .arg(&deb))?;
    Ok(deb)
}

fn install(root: &Path) -> anyhow::Result<()> {
    setup_nightly()?;
    setup_bpf_linker()?;
    build(true)?;
    let bin = root.join("usr/local/sbin");
    let units = root.join("etc/systemd/system");
    fs::create_dir_all(&bin)?;
    fs::create_dir_all(&units)?;
    fs::copy(
        workspace_root().join("target/release/vrrpd"),
        bin.join("vrrpd"),
    )
    .context("installing vrrpd")?;
    // The unit names the package's /usr/sbin/vrrpd; this install is /usr/local's.
    let unit = fs::read_to_string(workspace_root().join("dist/vrrpd.service"))
        .context("reading dist/vrrpd.service")?
        .replace("/usr/sbin/vrrpd", "/usr/local/sbin/vrrpd");
    fs::write(units.join("vrrpd.service"), unit).context("installing the unit")?;
    println!(
        "installed {} and {}",
        bin.join("vrrpd").display(),
        units.join("vrrpd.service").display()
    );
    if root == Path::new("/") && Path::new("/run/systemd/system").exists() {
        run(Command::new("systemctl").arg("daemon-reload"))?;
        println!("next: systemctl disable --now keepalived; systemctl enable --now vrrpd");
    }
    Ok(())
}
