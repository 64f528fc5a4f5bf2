//! Files the daemon writes where others can look (the class of keepalived's
//! CVE-2018-19044/19045/19046): never through a symlink someone planted, never truncating a
//! file it did not create.

use std::{
    fs::{self, OpenOptions},
    io::{self, Write as _},
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _},
    path::Path,
};

/// Replaces `path` with `contents`: written to a fresh file beside it (O_EXCL, O_NOFOLLOW,
/// `mode`), then renamed over it, so that a symlink or a file planted at `path` is replaced
/// and its target left alone. Creates the directory (0755) when it is missing.
pub fn replace(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)?;
    }
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    // A name no one can guess ahead (so cannot plant), created exclusively; retried on the
    // rare collision.
    let mut attempt = 0u32;
    let (tmp, mut f) = loop {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let tmp = dir.join(format!(
            ".{}.{}.{nanos:08x}{attempt}.tmp",
            name.to_string_lossy(),
            std::process::id()
        ));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
        {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 8 => attempt += 1,
            Err(e) => return Err(e),
        }
    };
    let written = f.write_all(contents).and_then(|()| f.sync_data());
    drop(f);
    if let Err(e) = written.and_then(|()| fs::rename(&tmp, path)) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}

/// Opens `path` to write a stream into (`capture -w`), as tcpdump's `-w` does, but safely:
/// a new file is created 0600; an existing one is truncated only when it is a regular file
/// of ours with no other name (a symlink is refused with ELOOP, never followed; someone
/// else's file, a hard link or a device is refused and left as it was).
pub fn create_output(path: &Path) -> io::Result<fs::File> {
    use std::os::unix::fs::MetadataExt as _;
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a symlink is there: refused, never followed",
                )
            } else {
                e
            }
        })?;
    let meta = f.metadata()?;
    let why = if !meta.file_type().is_file() {
        Some("not a regular file")
    } else if meta.uid() != nix::unistd::geteuid().as_raw() {
        Some("someone else's file")
    } else if meta.nlink() > 1 {
        Some("a file with other names (a hard link)")
    } else {
        None
    };
    if let Some(why) = why {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{why}: refused, left as it was"),
        ));
    }
    f.set_len(0)?;
    Ok(f)
}

/// Why a line did not reach a notify FIFO.
#[derive(Debug, thiserror::Error)]
pub enum FifoError {
    /// Something else is at the path (a regular file, a symlink, a directory): it is left
    /// untouched, never written over (keepalived refuses it too).
    #[error("{path} is not a FIFO ({what}): not written")]
    NotAFifo { path: String, what: &'static str },
    /// No reader has the FIFO open (ENXIO), or another I/O error.
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
}

/// Creates the FIFO at `path` (mode 0600, as keepalived does) unless something is there.
pub fn ensure_fifo(path: &Path) -> Result<(), FifoError> {
    match fs::symlink_metadata(path) {
        Ok(_) => check_fifo(
            path,
            &fs::symlink_metadata(path).map_err(|e| io_err(path, e))?,
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600))
                .map_err(|e| io_err(path, io::Error::from(e)))
        }
        Err(e) => Err(io_err(path, e)),
    }
}

/// Writes one line to the FIFO at `path` without blocking (a FIFO without a reader is
/// skipped) and without ever following a symlink or writing into anything but a FIFO.
pub fn write_fifo(path: &Path, line: &str) -> Result<(), FifoError> {
    use std::os::unix::fs::FileTypeExt as _;
    let mut f = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                FifoError::NotAFifo {
                    path: path.display().to_string(),
                    what: "a symlink",
                }
            } else {
                io_err(path, e)
            }
        })?;
    // Opened for writing, but nothing written yet: check what it is first.
    let meta = f.metadata().map_err(|e| io_err(path, e))?;
    if !meta.file_type().is_fifo() {
        return check_fifo(path, &meta);
    }
    f.write_all(line.as_bytes()).map_err(|e| io_err(path, e))
}

fn check_fifo(path: &Path, meta: &fs::Metadata) -> Result<(), FifoError> {
    use std::os::unix::fs::FileTypeExt as _;
    let t = meta.file_type();
    let what = if t.is_fifo() {
        return Ok(());
    } else if t.is_symlink() {
        "a symlink"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_file() {
        "a regular file"
    } else {
        "not a FIFO"
    };
    Err(FifoError::NotAFifo {
        path: path.display().to_string(),
        what,
    })
}

fn io_err(path: &Path, source: io::Error) -> FifoError {
    FifoError::Io {
        path: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_planted_symlink_is_replaced_not_followed() {
        let dir = std::env::temp_dir().join(format!("vrrpd-files-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("dir");
        let target = dir.join("victim");
        fs::write(&target, "precious").expect("victim");
        let link = dir.join("keepalived.json");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        replace(&link, b"[]", 0o644).expect("replace");
        assert_eq!(fs::read_to_string(&target).expect("victim"), "precious");
        assert_eq!(fs::read_to_string(&link).expect("file"), "[]");
        assert!(
            !fs::symlink_metadata(&link)
                .expect("meta")
                .file_type()
                .is_symlink()
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn capture_output_never_follows_a_symlink_nor_truncates_a_hard_link() {
        let dir = std::env::temp_dir().join(format!("vrrpd-out-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("dir");
        let victim = dir.join("victim");
        fs::write(&victim, "precious").expect("victim");
        let link = dir.join("link.pcap");
        std::os::unix::fs::symlink(&victim, &link).expect("symlink");
        assert!(create_output(&link).is_err());
        let hard = dir.join("hard.pcap");
        fs::hard_link(&victim, &hard).expect("hard link");
        assert!(create_output(&hard).is_err());
        assert_eq!(fs::read_to_string(&victim).expect("victim"), "precious");
        let mine = dir.join("mine.pcap");
        fs::write(&mine, "an old capture").expect("old");
        let mut f = create_output(&mine).expect("our own file is reused");
        f.write_all(b"new").expect("write");
        assert_eq!(fs::read_to_string(&mine).expect("read"), "new");
        let fresh = dir.join("fresh.pcap");
        drop(create_output(&fresh).expect("new file"));
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            fs::metadata(&fresh).expect("meta").permissions().mode() & 0o777,
            0o600
        );
        let _ = fs::remove_dir_all(&dir);
    }

    /// A regular file or a symlink planted at a notify_fifo path is never written; a missing
    /// one is created as a FIFO; a FIFO without a reader does not block; one with a reader
    /// gets the line.
    #[test]
    fn notify_fifos_are_written_only_when_they_are_fifos() {
        let dir = std::env::temp_dir().join(format!("vrrpd-fifo-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("file");
        fs::write(&file, "precious\n").expect("write");
        assert!(matches!(
            write_fifo(&file, "INSTANCE \"VI_1\" MASTER 150\n"),
            Err(FifoError::NotAFifo {
                what: "a regular file",
                ..
            })
        ));
        assert!(matches!(
            ensure_fifo(&file),
            Err(FifoError::NotAFifo { .. })
        ));
        let link = dir.join("link");
        std::os::unix::fs::symlink(&file, &link).expect("symlink");
        assert!(matches!(
            write_fifo(&link, "x\n"),
            Err(FifoError::NotAFifo {
                what: "a symlink",
                ..
            })
        ));
        assert_eq!(fs::read_to_string(&file).expect("read"), "precious\n");
        let fifo = dir.join("fifo");
        ensure_fifo(&fifo).expect("mkfifo");
        ensure_fifo(&fifo).expect("a FIFO already there is fine");
        // No reader: ENXIO at once, not a hang.
        assert!(matches!(
            write_fifo(&fifo, "x\n"),
            Err(FifoError::Io { .. })
        ));
        let reader = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .expect("reader");
        write_fifo(&fifo, "INSTANCE \"VI_1\" MASTER 150\n").expect("written");
        let mut got = String::new();
        io::Read::read_to_string(&mut &reader, &mut got).ok();
        assert_eq!(got, "INSTANCE \"VI_1\" MASTER 150\n");
        let _ = fs::remove_dir_all(&dir);
    }
}
