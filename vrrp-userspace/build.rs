//! Builds the XDP program (vrrp-ebpf) for bpfel-unknown-none with the pinned nightly and
//! bpf-linker, into OUT_DIR/vrrp, which `capture` embeds with include_bytes_aligned!.
//! `cargo xtask setup` installs both; see ../shared/TOOLCHAIN.md for why the nightly is pinned.

use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

/// Same commit as the machine image's "nightly"; bpf-linker is built against its LLVM.
/// Keep in sync with xtask's NIGHTLY.
const NIGHTLY: &str = "nightly-2026-05-20";

fn main() -> anyhow::Result<()> {
    let metadata = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let ebpf = metadata
        .packages
        .iter()
        .find(|p| p.name.as_str() == "vrrp-ebpf")
        .ok_or_else(|| anyhow!("the vrrp-ebpf package is not in the workspace"))?;
    let root = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("no parent for {}", ebpf.manifest_path))?;
    println!("cargo:rerun-if-changed=../vrrp-common/src");
    aya_build::build_ebpf(
        [Package { name: ebpf.name.as_str(), root_dir: root.as_str(), ..Default::default() }],
        Toolchain::Custom(NIGHTLY),
    )
    .context("building the XDP program failed: run `cargo xtask setup` (pinned nightly with rust-src, bpf-linker on PATH)")
}
