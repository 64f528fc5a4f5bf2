//! The control socket: a unix socket (mode 0600) with a small versioned JSON protocol. A client
//! sends one line `{"version":1,"command":"status"}` and reads one line back. Each connection
//! is served by its own task with a size and a time limit, so a slow client or garbage cannot
//! stall the daemon; the main loop only answers with a snapshot.

use std::{
    io,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::{
    io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader},
    net::{UnixListener, UnixStream},
    sync::{mpsc, oneshot},
};
use tracing::{debug, warn};

use crate::record::WireAdvert;

pub const PROTOCOL_VERSION: u32 = 1;
pub const DEFAULT_SOCKET: &str = "/run/vrrpd/vrrpd.sock";
const MAX_REQUEST: usize = 4096;
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Error)]
pub enum ControlError {
    #[error("control socket {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "control socket {path}: another vrrpd answers there; stop it or give this one --control PATH"
    )]
    InUse { path: PathBuf },
    #[error("the daemon answered: {0}")]
    Refused(String),
    #[error("cannot read the daemon's answer: {0}")]
    Protocol(#[from] serde_json::Error),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Command {
    Status,
    Diagnose,
    /// Stream every advert the daemon's XDP program sees, one JSON line each, until the
    /// client hangs up (`vrrpd capture` and `vrrpd watch --adverts` against the daemon).
    Subscribe,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    pub version: u32,
    pub command: Command,
}

/// A request waiting for the main loop's answer (a JSON value). A subscription also carries
/// the channel the records go to; the daemon drops records for a subscriber that falls
/// behind rather than wait for it.
pub struct Pending {
    pub command: Command,
    pub reply: oneshot::Sender<serde_json::Value>,
    pub stream: Option<mpsc::Sender<String>>,
}

/// Binds the socket (removing a stale one, refusing when a daemon answers there) and serves
/// it; requests reach the main loop through the returned receiver.
pub async fn serve(
    path: &Path,
) -> Result<(mpsc::Sender<Pending>, mpsc::Receiver<Pending>), ControlError> {
    let io_err = |source| ControlError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err)?;
    }
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(ControlError::InUse {
                path: path.to_path_buf(),
            });
        }
        std::fs::remove_file(path).map_err(io_err)?;
    }
    let listener = UnixListener::bind(path).map_err(io_err)?;
    std::fs::set_permissions(
        path,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600),
    )
    .map_err(io_err)?;
    let (tx, rx) = mpsc::channel(16);
    let requests = tx.clone();
    let me = nix::unistd::geteuid().as_raw();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            // Root, or the daemon's own user; the 0600 mode says the same to the kernel.
            match stream.peer_cred() {
                Ok(c) if c.uid() == 0 || c.uid() == me => {}
                Ok(c) => {
                    warn!(
                        uid = c.uid(),
                        "control socket: refused a client of another user"
                    );
                    continue;
                }
                Err(_) => continue,
            }
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Err(e) = handle(stream, tx).await {
                    debug!("control client: {e}");
                }
            });
        }
    });
    Ok((requests, rx))
}

/// One request line, as a client sent it (any bytes): the command, or the error answer.
pub fn parse_request(raw: &[u8]) -> Result<Command, serde_json::Value> {
    let line = String::from_utf8_lossy(raw);
    match serde_json::from_str::<Request>(line.trim()) {
        Ok(r) if r.version == PROTOCOL_VERSION => Ok(r.command),
        Ok(r) => Err(
            serde_json::json!({"error": format!("protocol version {} is not {PROTOCOL_VERSION}", r.version)}),
        ),
        Err(e) => Err(serde_json::json!({"error": format!("bad request: {e}")})),
    }
}

async fn handle(stream: UnixStream, tx: mpsc::Sender<Pending>) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut raw = Vec::new();
    let mut reader = BufReader::new(read).take(u64::try_from(MAX_REQUEST).unwrap_or(u64::MAX));
    // A client that says nothing (or too much) is cut off; it never reaches the main loop.
    tokio::time::timeout(CLIENT_TIMEOUT, reader.read_until(b'\n', &mut raw))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no request in time"))??;
    let answer = match parse_request(&raw) {
        Ok(Command::Subscribe) => {
            let (reply, rx) = oneshot::channel();
            let (stream_tx, mut stream_rx) = mpsc::channel::<String>(1024);
            if tx
                .send(Pending {
                    command: Command::Subscribe,
                    reply,
                    stream: Some(stream_tx),
                })
                .await
                .is_err()
            {
                return Ok(());
            }
            let ack = rx
                .await
                .unwrap_or_else(|_| serde_json::json!({"error": "the daemon is stopping"}));
            write.write_all(format!("{ack}\n").as_bytes()).await?;
            // Until the client hangs up; no time limit here (the caller's timeout is dropped
            // by `serve` for subscriptions).
            while let Some(line) = stream_rx.recv().await {
                write.write_all(line.as_bytes()).await?;
            }
            return Ok(());
        }
        Ok(command) => {
            let (reply, rx) = oneshot::channel();
            if tx
                .send(Pending {
                    command,
                    reply,
                    stream: None,
                })
                .await
                .is_err()
            {
                return Ok(());
            }
            rx.await
                .unwrap_or_else(|_| serde_json::json!({"error": "the daemon is stopping"}))
        }
        Err(answer) => answer,
    };
    let mut text = answer.to_string();
    text.push('\n');
    tokio::time::timeout(CLIENT_TIMEOUT, write.write_all(text.as_bytes()))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "client does not read"))??;
    write.shutdown().await
}

/// Connects to the daemon at `path` and sends one request line; the answer follows on the
/// returned stream.
async fn request(path: &Path, command: Command) -> Result<UnixStream, ControlError> {
    let io_err = |source| ControlError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut stream = UnixStream::connect(path).await.map_err(io_err)?;
    let mut req = serde_json::to_string(&Request {
        version: PROTOCOL_VERSION,
        command,
    })?;
    req.push('\n');
    stream.write_all(req.as_bytes()).await.map_err(io_err)?;
    Ok(stream)
}

/// Subscribes to the daemon's adverts: the ack, then one JSON record per line to `each` until
/// it returns false or the daemon goes away.
pub async fn subscribe(
    path: &Path,
    mut each: impl FnMut(serde_json::Value) -> bool,
) -> Result<(), ControlError> {
    let io_err = |source| ControlError::Io {
        path: path.to_path_buf(),
        source,
    };
    let stream = request(path, Command::Subscribe).await?;
    let mut lines = BufReader::new(stream).lines();
    let mut first = true;
    while let Some(line) = lines.next_line().await.map_err(io_err)? {
        let v: serde_json::Value = serde_json::from_str(&line)?;
        if first {
            first = false;
            if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
                return Err(ControlError::Refused(e.to_owned()));
            }
            continue;
        }
        if !each(v) {
            break;
        }
    }
    Ok(())
}

/// Asks the daemon at `path`.
pub async fn ask(path: &Path, command: Command) -> Result<serde_json::Value, ControlError> {
    let io_err = |source| ControlError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut stream = request(path, command).await?;
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut text))
        .await
        .map_err(|_| io_err(io::Error::new(io::ErrorKind::TimedOut, "no answer in 5 s")))?
        .map_err(io_err)?;
    let v: serde_json::Value = serde_json::from_str(text.trim())?;
    if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
        return Err(ControlError::Refused(e.to_owned()));
    }
    Ok(v)
}

/// A ring record as it travels over the control socket.
pub fn record_json(w: &WireAdvert, ifname: &str) -> serde_json::Value {
    serde_json::json!({
        "ktime_ns": w.ktime_ns,
        "ifindex": w.ifindex,
        "ifname": ifname,
        "verdict": w.verdict as u32,
        "family": if w.family == crate::packet::Family::V4 { 4 } else { 6 },
        "vlan": w.vlan,
        "ttl": w.ttl,
        "src": w.src,
        "dst": w.dst,
        "src_mac": w.src_mac,
        "vrrp_len": w.vrrp_len,
        "vrrp": w.vrrp,
        "truncated": w.truncated,
    })
}

/// The record back from its JSON form.
pub fn record_from_json(v: &serde_json::Value) -> Option<(WireAdvert, String)> {
    let mac: Vec<u8> = serde_json::from_value(v["src_mac"].clone()).ok()?;
    let mut src_mac = [0u8; 6];
    if mac.len() == 6 {
        src_mac.copy_from_slice(&mac);
    }
    let w = WireAdvert {
        ktime_ns: v["ktime_ns"].as_u64()?,
        ifindex: u32::try_from(v["ifindex"].as_u64()?).ok()?,
        verdict: vrrp_common::Verdict::try_from(u32::try_from(v["verdict"].as_u64()?).ok()?)
            .ok()?,
        family: if v["family"] == 6 {
            crate::packet::Family::V6
        } else {
            crate::packet::Family::V4
        },
        vlan: u16::try_from(v["vlan"].as_u64()?).ok()?,
        ttl: u8::try_from(v["ttl"].as_u64()?).ok()?,
        src: serde_json::from_value(v["src"].clone()).ok()?,
        dst: serde_json::from_value(v["dst"].clone()).ok()?,
        src_mac,
        vrrp_len: u16::try_from(v["vrrp_len"].as_u64()?).ok()?,
        vrrp: serde_json::from_value(v["vrrp"].clone()).ok()?,
        truncated: v["truncated"].as_bool()?,
    };
    Some((w, v["ifname"].as_str().unwrap_or("?").to_owned()))
}
