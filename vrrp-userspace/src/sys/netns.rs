//! Which named network namespace (`ip netns add NAME`) this process runs in, so that a daemon
//! per namespace (OpenStack runs one keepalived per router namespace) and the clients run
//! there with `ip netns exec NAME` find each other's files without flags.

use std::{
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

/// Where `ip netns` keeps its names.
const NETNS_DIR: &str = "/run/netns";
/// The run-time files' directory outside any named namespace.
const RUN_DIR: &str = "/run/vrrpd";

/// The name `ip netns` gives this process's network namespace, or None in the host's (or in
/// one without a name).
pub fn current_name() -> Option<String> {
    let id = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    let ours = id(Path::new("/proc/self/ns/net"))?;
    // The host's namespace is the host's even where someone gave it a name.
    if id(Path::new("/proc/1/ns/net")) == Some(ours) {
        return None;
    }
    let mut names: Vec<String> = std::fs::read_dir(NETNS_DIR)
        .ok()?
        .flatten()
        .filter(|e| id(&e.path()) == Some(ours))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    // Two names for one namespace: the same one every time.
    names.sort();
    names.into_iter().next()
}

/// /run/vrrpd, or /run/vrrpd/NAME in the named namespace NAME: the control socket, the pid
/// file and the state dumps live there.
pub fn run_dir() -> PathBuf {
    // Asked for every default path of the command line: the /run/netns walk once.
    static NAME: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    run_dir_for(NAME.get_or_init(current_name).as_deref())
}

fn run_dir_for(ns: Option<&str>) -> PathBuf {
    let base = PathBuf::from(RUN_DIR);
    match ns {
        // A name is one path component (`ip netns` refuses '/'); anything else is ignored.
        Some(ns) if !ns.is_empty() && !ns.contains('/') && ns != "." && ns != ".." => base.join(ns),
        _ => base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_gets_its_own_directory_and_odd_names_none() {
        assert_eq!(run_dir_for(None), PathBuf::from("/run/vrrpd"));
        assert_eq!(
            run_dir_for(Some("qrouter-1")),
            PathBuf::from("/run/vrrpd/qrouter-1")
        );
        for odd in ["", "..", "a/b"] {
            assert_eq!(run_dir_for(Some(odd)), PathBuf::from("/run/vrrpd"));
        }
    }
}
