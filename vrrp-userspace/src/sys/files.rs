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
}
