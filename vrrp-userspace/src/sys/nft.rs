//! The firewall keepalived adds for VIPs that are not accepted (`no_accept`, the default of
//! `vrrp_strict`; RFC 5798 6.4.3: a master that does not own the addresses "MUST NOT accept
//! packets addressed to" them): table `inet vrrpd` with a set per family, and an input chain
//! (priority -1, before the usual filter) that drops what is addressed to a set's member.
//! ARP and neighbour discovery still pass, so the VIP keeps its MAC on the segment.

use std::{io, net::IpAddr};

use tokio::io::AsyncWriteExt as _;

const TABLE: &str = "vrrpd";

/// Runs `nft -f -` with `script`.
async fn nft(script: &str) -> io::Result<()> {
    let mut child = tokio::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes()).await?;
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(5), child.wait_with_output())
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "nft: no answer in 5 s"))??;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "nft: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// The table with its sets and chain (made again from nothing: one left by a crash goes).
pub async fn create() -> io::Result<()> {
    let _ = remove().await;
    nft(&format!(
        "table inet {TABLE} {{
  set vips4 {{ type ipv4_addr; }}
  set vips6 {{ type ipv6_addr; }}
  chain input {{
    type filter hook input priority -1; policy accept;
    ip daddr @vips4 drop
    ip6 daddr @vips6 icmpv6 type {{ nd-neighbor-solicit, nd-neighbor-advert }} accept
    ip6 daddr @vips6 drop
  }}
}}
"
    ))
    .await
}

fn set_of(addr: IpAddr) -> &'static str {
    if addr.is_ipv4() { "vips4" } else { "vips6" }
}

/// Traffic to `addr` is dropped from now on.
pub async fn refuse(addr: IpAddr) -> io::Result<()> {
    nft(&format!(
        "add element inet {TABLE} {} {{ {addr} }}\n",
        set_of(addr)
    ))
    .await
}

/// Traffic to `addr` is no longer dropped (gone already is not an error).
pub async fn allow(addr: IpAddr) -> io::Result<()> {
    match nft(&format!(
        "delete element inet {TABLE} {} {{ {addr} }}\n",
        set_of(addr)
    ))
    .await
    {
        Err(e) if e.to_string().contains("No such file or directory") => Ok(()),
        r => r,
    }
}

/// The whole table, at stop.
pub async fn remove() -> io::Result<()> {
    nft(&format!("delete table inet {TABLE}\n")).await
}
