//! `vrrp_track_process`: how many processes match, and so whether the tracker is up. A
//! process's death is seen when it happens (each matching process is held by a pidfd, which
//! becomes readable at its exit), a new one at the next look at /proc (every second). pidfds
//! work in any network namespace; the kernel's process connector, keepalived's source, does
//! not.

use std::{
    collections::HashMap,
    os::fd::OwnedFd,
    time::{Duration, Instant},
};

use rustix::process::{Pid, PidfdFlags, pidfd_open};
use tokio::{io::unix::AsyncFd, sync::mpsc, task::JoinHandle};
use tracing::info;

use crate::{
    config::{ParamMatch, TrackProcess},
    protocol::track::TrackEvent,
};

/// How often /proc is read for processes that started.
const RESCAN: Duration = Duration::from_secs(1);

/// Whether a process (its `comm` and its argv) is one `p` counts.
pub fn matches(p: &TrackProcess, comm: &str, argv: &[String]) -> bool {
    let by_path = p.full_command || p.process.contains('/');
    let named = if by_path {
        argv.first().is_some_and(|a| *a == p.process)
    } else {
        // The kernel keeps 15 characters of the name.
        let want: String = p.process.chars().take(15).collect();
        comm == want
    };
    if !named {
        return false;
    }
    if p.params.is_empty() {
        return true;
    }
    let args = argv.get(1..).unwrap_or_default();
    match p.param_match {
        ParamMatch::Exact => args == p.params.as_slice(),
        ParamMatch::Initial => args.starts_with(&p.params),
        ParamMatch::Partial => args
            .windows(p.params.len())
            .any(|w| w == p.params.as_slice()),
    }
}

/// The pids of the processes `p` counts now.
fn scan(p: &TrackProcess) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let argv: Vec<String> = cmdline
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            // A kernel thread has no argv: never one of ours.
            !argv.is_empty() && matches(p, comm.trim_end_matches('\n'), &argv)
        })
        .collect()
}

/// Counts `p`'s processes from now on, sending `TrackEvent::Process` at the first count and at
/// every change of up/down (after `fork_delay` / `terminate_delay`).
pub fn spawn(p: TrackProcess, tx: mpsc::Sender<TrackEvent>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut held: HashMap<i32, AsyncFd<OwnedFd>> = HashMap::new();
        let mut reported: Option<bool> = None;
        // A change not yet reported: to what, and since when.
        let mut pending: Option<(bool, Instant)> = None;
        let mut next_scan = Instant::now();
        loop {
            if Instant::now() >= next_scan {
                let now = scan(&p);
                // One that exec'd into another program (its pidfd stays quiet) no longer counts.
                held.retain(|pid, _| now.contains(pid));
                for pid in now {
                    if held.contains_key(&pid) {
                        continue;
                    }
                    let Some(raw) = Pid::from_raw(pid) else {
                        continue;
                    };
                    if let Ok(fd) = pidfd_open(raw, PidfdFlags::NONBLOCK) {
                        #[expect(
                            deprecated,
                            reason = "AsyncFd::register is unsafe; the AsyncFd owns the pidfd it registers"
                        )]
                        if let Ok(fd) = AsyncFd::new(fd) {
                            held.insert(pid, fd);
                        }
                    }
                }
                next_scan = Instant::now() + RESCAN;
            }
            let count = u32::try_from(held.len()).unwrap_or(u32::MAX);
            let up = count >= p.quorum && (p.quorum_max == 0 || count <= p.quorum_max);
            let mut wait = next_scan.saturating_duration_since(Instant::now());
            if reported == Some(up) {
                pending = None;
            } else {
                let delay = match reported {
                    None => Duration::ZERO,
                    Some(_) if up => p.fork_delay,
                    Some(_) => p.terminate_delay,
                };
                let since = match pending {
                    Some((to, since)) if to == up => since,
                    _ => Instant::now(),
                };
                pending = Some((up, since));
                let left = delay.saturating_sub(since.elapsed());
                if left.is_zero() {
                    info!(
                        "VRRP_Track_Process({}): {count} running, {}",
                        p.name,
                        if up { "up" } else { "down" }
                    );
                    reported = Some(up);
                    pending = None;
                    let ev = TrackEvent::Process {
                        name: p.name.clone(),
                        ok: up,
                    };
                    if tx.send(ev).await.is_err() {
                        return;
                    }
                } else {
                    wait = wait.min(left);
                }
            }
            // The first process to exit, or the time to look again.
            let exited = if held.is_empty() {
                tokio::time::sleep(wait).await;
                None
            } else {
                let exits = held.iter().map(|(pid, fd)| {
                    Box::pin(async move {
                        let _ = fd.readable().await;
                        *pid
                    })
                });
                tokio::select! {
                    (pid, _, _) = futures::future::select_all(exits) => Some(pid),
                    () = tokio::time::sleep(wait) => None,
                }
            };
            if let Some(pid) = exited {
                held.remove(&pid);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker(process: &str, params: &[&str], m: ParamMatch, full: bool) -> TrackProcess {
        TrackProcess {
            name: "t".into(),
            loc: crate::config::Loc {
                file: std::sync::Arc::new(std::path::PathBuf::new()),
                line: 0,
            },
            process: process.into(),
            params: params.iter().map(|s| (*s).to_owned()).collect(),
            param_match: m,
            full_command: full,
            weight: 0,
            reverse: false,
            quorum: 1,
            quorum_max: 0,
            fork_delay: Duration::ZERO,
            terminate_delay: Duration::ZERO,
        }
    }

    fn argv(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn processes_match_as_keepalived_matches_them() {
        let nginx = tracker("nginx", &[], ParamMatch::Exact, false);
        assert!(matches(&nginx, "nginx", &argv(&["nginx: master process"])));
        assert!(!matches(&nginx, "nginx-debug", &argv(&["nginx-debug"])));
        let long = tracker("a-very-long-process-name", &[], ParamMatch::Exact, false);
        assert!(
            matches(&long, "a-very-long-pro", &argv(&["x"])),
            "15 characters"
        );
        let path = tracker("/usr/sbin/haproxy", &[], ParamMatch::Exact, false);
        assert!(matches(
            &path,
            "haproxy",
            &argv(&["/usr/sbin/haproxy", "-f", "x"])
        ));
        assert!(!matches(&path, "haproxy", &argv(&["haproxy"])));
        let exact = tracker("sleep", &["100"], ParamMatch::Exact, false);
        assert!(matches(&exact, "sleep", &argv(&["sleep", "100"])));
        assert!(!matches(&exact, "sleep", &argv(&["sleep", "100", "x"])));
        let initial = tracker("sleep", &["100"], ParamMatch::Initial, false);
        assert!(matches(&initial, "sleep", &argv(&["sleep", "100", "x"])));
        let partial = tracker("sleep", &["b", "c"], ParamMatch::Partial, false);
        assert!(matches(
            &partial,
            "sleep",
            &argv(&["sleep", "a", "b", "c", "d"])
        ));
        assert!(!matches(&partial, "sleep", &argv(&["sleep", "c", "b"])));
    }
}
