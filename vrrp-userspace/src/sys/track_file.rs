//! `track_file`: the number in a file, read at start and again whenever the file is written,
//! moved into place or removed: inotify on its directory, as keepalived watches it
//! (trackers/track_file.c), so that a change is seen when it is made, not at a poll.

use std::{
    ffi::OsString,
    io,
    path::{Path, PathBuf},
};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tokio::{io::unix::AsyncFd, sync::mpsc, task::JoinHandle};
use tracing::{info, warn};

use crate::{config::TrackFile, protocol::track::TrackEvent};

/// The inotify instance, as tokio registers it.
struct Watch(Inotify);

impl std::os::fd::AsRawFd for Watch {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsFd as _;
        self.0.as_fd().as_raw_fd()
    }
}

/// Where a file's number comes from: keepalived reads up to 127 bytes and takes them as C's
/// `strtol(buf, NULL, 0)` does (leading blanks, a sign, `0x` hex, a leading `0` octal,
/// anything after the number ignored). A missing, empty or non-numeric file is 0; a number
/// outside the 32-bit range is refused (None: keep the last value).
pub fn value_of(contents: &[u8]) -> Option<i64> {
    let text = String::from_utf8_lossy(&contents[..contents.len().min(127)]);
    let t = text.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (negative, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (radix, digits) = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X"))
        && h.starts_with(|c: char| c.is_ascii_hexdigit())
    {
        (16, h)
    } else if t.starts_with('0') {
        (8, t)
    } else {
        (10, t)
    };
    let end = digits
        .find(|c: char| !c.is_digit(radix))
        .unwrap_or(digits.len());
    let Some(magnitude) = digits
        .get(..end)
        .filter(|d| !d.is_empty())
        .map(|d| i128::from_str_radix(d, radix).ok())
    else {
        return Some(0);
    };
    let v = magnitude?;
    let v = if negative { -v } else { v };
    (i128::from(i32::MIN)..=i128::from(i32::MAX))
        .contains(&v)
        .then(|| i64::try_from(v).ok())
        .flatten()
}

/// Reads `path` now: 0 when it cannot be read.
fn read(path: &Path) -> Option<i64> {
    match std::fs::read(path) {
        Ok(bytes) => value_of(&bytes),
        Err(_) => Some(0),
    }
}

/// keepalived's `init_file`: at start, the value is written when the file is missing, or
/// over a regular file with `overwrite`; on reload only a missing file is written, and never
/// with `overwrite`. Through a new file and a rename, 0600, as keepalived's `fopen_safe`.
pub fn init(file: &TrackFile, at_start: bool) {
    let Some(init) = file.init else {
        return;
    };
    let meta = std::fs::symlink_metadata(&file.path);
    let write = match &meta {
        Err(e) if e.kind() == io::ErrorKind::NotFound => !(init.overwrite && !at_start),
        Ok(m) if init.overwrite && at_start => {
            if !m.file_type().is_file() {
                warn!(
                    "Cannot initialise track file {} - it is not a regular file",
                    file.path.display()
                );
            }
            m.file_type().is_file()
        }
        _ => false,
    };
    if !write {
        return;
    }
    if file
        .path
        .parent()
        .is_some_and(|d| !d.as_os_str().is_empty() && !d.is_dir())
    {
        return;
    }
    if let Err(e) =
        crate::sys::files::replace(&file.path, format!("{}\n", init.value).as_bytes(), 0o600)
    {
        warn!(
            "track_file {}: cannot write {}: {e}",
            file.name,
            file.path.display()
        );
    }
}

/// Starts watching `file`: its number now, then at every change, as `TrackEvent::File`. Err
/// when its directory does not exist (keepalived drops such a tracker: it bears on nothing).
pub fn spawn(file: &TrackFile, tx: mpsc::Sender<TrackEvent>) -> io::Result<JoinHandle<()>> {
    let path = file.path.clone();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name: OsString = path
        .file_name()
        .map(ToOwned::to_owned)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
    inotify.add_watch(
        &dir,
        AddWatchFlags::IN_CLOSE_WRITE
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_MOVED_TO,
    )?;
    #[expect(
        deprecated,
        reason = "AsyncFd::register is unsafe; the AsyncFd owns the inotify instance it registers"
    )]
    let fd = AsyncFd::new(Watch(inotify))?;
    let track = file.name.clone();
    Ok(tokio::spawn(async move {
        let mut last = read(&path).unwrap_or(0);
        info!("track_file {track}: {} holds {last}", path.display());
        if tx
            .send(TrackEvent::File {
                name: track.clone(),
                value: last,
            })
            .await
            .is_err()
        {
            return;
        }
        loop {
            let Ok(mut guard) = fd.readable().await else {
                return;
            };
            let events = match guard.get_inner().0.read_events() {
                Ok(events) => events,
                Err(nix::errno::Errno::EAGAIN) => {
                    guard.clear_ready();
                    continue;
                }
                Err(e) => {
                    warn!("track_file {track}: inotify: {e}");
                    return;
                }
            };
            // The directory's other files make events too: only this file's count, and only
            // the last of them.
            let mut now = None;
            for ev in events {
                if ev.mask.contains(AddWatchFlags::IN_ISDIR) || ev.name.as_ref() != Some(&name) {
                    continue;
                }
                now = Some(
                    if ev
                        .mask
                        .intersects(AddWatchFlags::IN_DELETE | AddWatchFlags::IN_MOVED_FROM)
                    {
                        Some(0)
                    } else {
                        read(&path)
                    },
                );
            }
            let Some(now) = now else {
                continue;
            };
            match now {
                Some(v) if v != last => {
                    last = v;
                    info!("track_file {track}: {} now holds {v}", path.display());
                    if tx
                        .send(TrackEvent::File {
                            name: track.clone(),
                            value: v,
                        })
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Some(_) => {}
                None => {
                    warn!("Invalid number read from {} - ignoring", path.display());
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_read_as_strtol_reads_them() {
        assert_eq!(value_of(b"1\n"), Some(1));
        assert_eq!(value_of(b"  -42 apples"), Some(-42));
        assert_eq!(value_of(b"0x10"), Some(16));
        assert_eq!(value_of(b"010"), Some(8));
        assert_eq!(value_of(b"+7"), Some(7));
        assert_eq!(value_of(b""), Some(0), "empty");
        assert_eq!(value_of(b"up\n"), Some(0), "not a number");
        assert_eq!(value_of(b"99999999999"), None, "out of range: ignored");
        assert_eq!(value_of(b"0"), Some(0));
    }
}
