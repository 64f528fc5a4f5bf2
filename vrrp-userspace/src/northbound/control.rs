//! The control socket: a unix socket (mode 0600) with a small versioned JSON protocol. A client
//! sends one line `{"version":1,"command":"status"}` and reads one [`Reply`] line back (a
//! subscription then streams [`StreamRecord`] lines). Each connection is served by its own
//! task with a size and a time limit, so a slow client or garbage cannot stall the daemon; the
//! main loop only answers with a snapshot. Both ends use the same types.

use std::{
    io,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
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

use super::{
    doors::{self, Gate, Ticket},
    status::{Diagnosis, InstanceStatus, ReloadOutcome, Status},
};
use crate::{protocol::router::Setting, wire::record::WireRecord};

pub const PROTOCOL_VERSION: u32 = 1;
/// The control socket where neither side names one: in /run/vrrpd, or in /run/vrrpd/NS when
/// run in the named network namespace NS (`ip netns exec NS vrrpd status` finds the daemon
/// of NS, and two namespaces' daemons never collide).
pub fn default_socket() -> PathBuf {
    crate::sys::netns::run_dir().join("vrrpd.sock")
}
const MAX_REQUEST: usize = 4096;
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
/// Open connections at once (see `doors`); `vrrpd watch` subscriptions among them at most
/// `MAX_SUBSCRIBERS`, so that watchers cannot hold every slot.
const MAX_CONNECTIONS: usize = 64;
const MAX_SUBSCRIBERS: usize = 16;

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
    #[error("the daemon answered {got} to {asked}")]
    Unexpected {
        asked: &'static str,
        got: &'static str,
    },
    #[error("cannot read the daemon's answer: {0}")]
    Protocol(#[from] serde_json::Error),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Command {
    Status,
    Diagnose,
    /// Stream every advert the daemon's XDP program sees, one JSON line each, until the
    /// client hangs up (`vrrpd capture` and `vrrpd watch --adverts` against the daemon).
    Subscribe,
    /// Re-read the config as SIGHUP does, and answer with the outcome.
    Reload,
    /// Change one running instance until vrrpd stops (`vrrpd set`).
    Set {
        instance: String,
        setting: Setting,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    pub version: u32,
    pub command: Command,
}

/// What the daemon answers, one line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reply {
    Status(Box<Status>),
    Diagnosis(Box<Diagnosis>),
    /// A subscription is accepted; [`StreamRecord`] lines follow.
    Subscribed,
    Reload(ReloadOutcome),
    /// The instance after the change.
    Set(Box<InstanceStatus>),
    Error(String),
}

impl Reply {
    const fn kind(&self) -> &'static str {
        match self {
            Self::Status(_) => "a status",
            Self::Diagnosis(_) => "a diagnosis",
            Self::Subscribed => "a subscription",
            Self::Reload(_) => "a reload's outcome",
            Self::Set(_) => "an instance",
            Self::Error(_) => "an error",
        }
    }
}

/// The answer line: the protocol version and the reply.
#[derive(Debug, Serialize, Deserialize)]
pub struct Answer {
    pub version: u32,
    pub reply: Reply,
}

/// One advert of a subscription's stream: the ring record and the interface's name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamRecord {
    pub ifname: String,
    pub record: WireRecord,
}

/// A request waiting for the main loop's answer. A subscription also carries the channel the
/// records go to; the daemon drops records for a subscriber that falls behind rather than
/// wait for it.
pub struct Pending {
    pub command: Command,
    pub reply: oneshot::Sender<Reply>,
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
    // What is at the path, never through a symlink: a socket is stale unless a daemon
    // answers there; a symlink is replaced by the rename below (its target left alone);
    // anything else is someone's file and stays.
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            use std::os::unix::fs::FileTypeExt as _;
            let t = meta.file_type();
            if t.is_socket() && UnixStream::connect(path).await.is_ok() {
                return Err(ControlError::InUse {
                    path: path.to_path_buf(),
                });
            }
            if !t.is_socket() && !t.is_symlink() {
                return Err(io_err(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "something other than a socket is there: left in place",
                )));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(e)),
    }
    // Bound under a fresh name, made 0600, then renamed into place: the socket is never
    // reachable at `path` with the umask's mode, and nothing planted at `path` is followed.
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    let listener = UnixListener::bind(&tmp).map_err(io_err)?;
    let placed = std::fs::set_permissions(
        &tmp,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600),
    )
    .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err(e));
    }
    let (tx, rx) = mpsc::channel(16);
    let requests = tx.clone();
    let me = nix::unistd::geteuid().as_raw();
    let gate = Gate::new("control socket", MAX_CONNECTIONS);
    let subscribers = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        let mut failures = 0;
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    doors::accept_failed("control socket", &e, &mut failures).await;
                    continue;
                }
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
            let subscribers = Arc::clone(&subscribers);
            gate.admit(|ticket| async move {
                if let Err(e) = handle(stream, tx, &ticket, &subscribers).await {
                    debug!("control client: {e}");
                }
            });
        }
    });
    Ok((requests, rx))
}

/// One request line, as a client sent it (any bytes): the command, or the error to answer.
pub fn parse_request(raw: &[u8]) -> Result<Command, Reply> {
    let line = String::from_utf8_lossy(raw);
    match serde_json::from_str::<Request>(line.trim()) {
        Ok(r) if r.version == PROTOCOL_VERSION => Ok(r.command),
        Ok(r) => Err(Reply::Error(format!(
            "protocol version {} is not {PROTOCOL_VERSION}",
            r.version
        ))),
        Err(e) => Err(Reply::Error(format!("bad request: {e}"))),
    }
}

/// One of at most `MAX_SUBSCRIBERS` subscriptions, for as long as it lives.
struct Subscribed<'a>(&'a AtomicUsize);

impl<'a> Subscribed<'a> {
    fn new(count: &'a AtomicUsize) -> Option<Self> {
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_SUBSCRIBERS).then_some(n + 1)
            })
            .ok()
            .map(|_| Self(count))
    }
}

impl Drop for Subscribed<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn line(reply: Reply) -> String {
    let answer = Answer {
        version: PROTOCOL_VERSION,
        reply,
    };
    let mut text = serde_json::to_string(&answer).unwrap_or_else(|e| {
        format!(r#"{{"version":{PROTOCOL_VERSION},"reply":{{"error":"cannot encode the answer: {e}"}}}}"#)
    });
    text.push('\n');
    text
}

async fn ask_main_loop(
    tx: &mpsc::Sender<Pending>,
    command: Command,
    stream: Option<mpsc::Sender<String>>,
) -> Reply {
    let (reply, rx) = oneshot::channel();
    if tx
        .send(Pending {
            command,
            reply,
            stream,
        })
        .await
        .is_err()
    {
        return Reply::Error("the daemon is stopping".to_owned());
    }
    rx.await
        .unwrap_or_else(|_| Reply::Error("the daemon is stopping".to_owned()))
}

async fn handle(
    stream: UnixStream,
    tx: mpsc::Sender<Pending>,
    ticket: &Ticket,
    subscribers: &AtomicUsize,
) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut raw = Vec::new();
    let mut reader = BufReader::new(read).take(u64::try_from(MAX_REQUEST).unwrap_or(u64::MAX));
    // A client that says nothing (or too much) is cut off; it never reaches the main loop.
    tokio::time::timeout(CLIENT_TIMEOUT, reader.read_until(b'\n', &mut raw))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no request in time"))??;
    ticket.engaged();
    let answer = match parse_request(&raw) {
        Ok(Command::Subscribe) => {
            let Some(_subscribed) = Subscribed::new(subscribers) else {
                let busy = Reply::Error(format!(
                    "{MAX_SUBSCRIBERS} subscribers already: try again when one has gone"
                ));
                write.write_all(line(busy).as_bytes()).await?;
                return write.shutdown().await;
            };
            let (stream_tx, mut stream_rx) = mpsc::channel::<String>(1024);
            let ack = ask_main_loop(&tx, Command::Subscribe, Some(stream_tx)).await;
            let refused = ack != Reply::Subscribed;
            write.write_all(line(ack).as_bytes()).await?;
            if refused {
                return Ok(());
            }
            // Until the client hangs up; no time limit here.
            while let Some(record) = stream_rx.recv().await {
                write.write_all(record.as_bytes()).await?;
            }
            return Ok(());
        }
        Ok(command) => ask_main_loop(&tx, command, None).await,
        Err(answer) => answer,
    };
    tokio::time::timeout(CLIENT_TIMEOUT, write.write_all(line(answer).as_bytes()))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "client does not read"))??;
    write.shutdown().await
}

/// A stream record as one line, for the daemon's subscribers.
pub fn stream_line(ifname: &str, record: &WireRecord) -> String {
    let mut text = serde_json::to_string(&StreamRecord {
        ifname: ifname.to_owned(),
        record: record.clone(),
    })
    .unwrap_or_default();
    text.push('\n');
    text
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

/// Subscribes to the daemon's adverts: one record to `each` until it returns false or the
/// daemon goes away.
pub async fn subscribe(
    path: &Path,
    mut each: impl FnMut(StreamRecord) -> bool,
) -> Result<(), ControlError> {
    let io_err = |source| ControlError::Io {
        path: path.to_path_buf(),
        source,
    };
    let stream = request(path, Command::Subscribe).await?;
    let mut lines = BufReader::new(stream).lines();
    let Some(first) = lines.next_line().await.map_err(io_err)? else {
        return Ok(());
    };
    match serde_json::from_str::<Answer>(&first)?.reply {
        Reply::Subscribed => {}
        Reply::Error(e) => return Err(ControlError::Refused(e)),
        other => {
            return Err(ControlError::Unexpected {
                asked: "subscribe",
                got: other.kind(),
            });
        }
    }
    while let Some(line) = lines.next_line().await.map_err(io_err)? {
        // A line this version cannot read is skipped, not fatal: the stream goes on.
        let Ok(record) = serde_json::from_str::<StreamRecord>(&line) else {
            continue;
        };
        if !each(record) {
            break;
        }
    }
    Ok(())
}

/// Asks the daemon at `path`; the answer within 5 s (a reload's within 60 s: a large config
/// takes longer to apply, and its outcome is the point of asking).
pub async fn ask(path: &Path, command: Command) -> Result<Reply, ControlError> {
    let limit = if command == Command::Reload {
        Duration::from_secs(60)
    } else {
        Duration::from_secs(5)
    };
    let io_err = |source| ControlError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut stream = request(path, command).await?;
    let mut text = String::new();
    tokio::time::timeout(limit, stream.read_to_string(&mut text))
        .await
        .map_err(|_| {
            io_err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer in {} s", limit.as_secs()),
            ))
        })?
        .map_err(io_err)?;
    match serde_json::from_str::<Answer>(text.trim())?.reply {
        Reply::Error(e) => Err(ControlError::Refused(e)),
        reply => Ok(reply),
    }
}

/// The daemon's status.
pub async fn status(path: &Path) -> Result<Status, ControlError> {
    match ask(path, Command::Status).await? {
        Reply::Status(s) => Ok(*s),
        other => Err(ControlError::Unexpected {
            asked: "status",
            got: other.kind(),
        }),
    }
}

/// The daemon's diagnosis.
pub async fn diagnosis(path: &Path) -> Result<Diagnosis, ControlError> {
    match ask(path, Command::Diagnose).await? {
        Reply::Diagnosis(d) => Ok(*d),
        other => Err(ControlError::Unexpected {
            asked: "diagnose",
            got: other.kind(),
        }),
    }
}

/// Re-reads the daemon's config.
pub async fn reload(path: &Path) -> Result<ReloadOutcome, ControlError> {
    match ask(path, Command::Reload).await? {
        Reply::Reload(r) => Ok(r),
        other => Err(ControlError::Unexpected {
            asked: "reload",
            got: other.kind(),
        }),
    }
}

/// Changes one running instance; the instance as it is after the change.
pub async fn set(
    path: &Path,
    instance: &str,
    setting: Setting,
) -> Result<InstanceStatus, ControlError> {
    let command = Command::Set {
        instance: instance.to_owned(),
        setting,
    };
    match ask(path, command).await? {
        Reply::Set(i) => Ok(*i),
        other => Err(ControlError::Unexpected {
            asked: "set",
            got: other.kind(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_garbage_get_typed_answers() {
        assert_eq!(
            parse_request(br#"{"version":1,"command":"status"}"#),
            Ok(Command::Status)
        );
        assert!(matches!(
            parse_request(br#"{"version":9,"command":"status"}"#),
            Err(Reply::Error(e)) if e.contains("protocol version 9")
        ));
        assert!(matches!(
            parse_request(b"\xff\x00garbage"),
            Err(Reply::Error(_))
        ));
        assert_eq!(
            parse_request(
                br#"{"version":1,"command":{"set":{"instance":"VI_1","setting":{"maintenance":true}}}}"#
            ),
            Ok(Command::Set {
                instance: "VI_1".into(),
                setting: Setting::Maintenance(true)
            })
        );
        let text = line(Reply::Error("x".into()));
        let back: Answer = serde_json::from_str(&text).expect("reads back");
        assert_eq!((back.version, back.reply), (1, Reply::Error("x".into())));
    }
}
