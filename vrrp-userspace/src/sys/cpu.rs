//! Why this process could be late: its cgroup's CPU quota throttled it (cpu.stat), or it
//! waited for a CPU (schedstat). Read every few seconds beside the diagnosis; pure parsing
//! here, the daemon keeps the samples.

use std::{
    fs::File,
    io::{Read as _, Seek as _},
    path::{Path, PathBuf},
};

/// Counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuSample {
    /// cgroup cpu.stat: periods in which the cgroup ran out of quota, and the time throttled.
    pub nr_throttled: u64,
    pub throttled_ns: u64,
    /// Time the daemon's threads spent runnable but waiting for a CPU (schedstat, field 2).
    pub runq_wait_ns: u64,
}

/// The cgroup's cpu.stat, opened once at start (before capabilities are dropped and while
/// the cgroup file system is reachable) and re-read through the same descriptor.
pub struct CpuWatch {
    cpu_stat: Option<File>,
    /// Where the cgroup lives, for the fix the finding prints.
    pub cgroup_dir: Option<PathBuf>,
    /// cgroup v1 (cpu.rt_runtime_us exists there) or v2.
    pub v1: bool,
}

impl CpuWatch {
    pub fn open() -> Self {
        let cgroups = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let (rel, v1) = own_cgroup(&cgroups);
        let Some(rel) = rel else {
            return Self {
                cpu_stat: None,
                cgroup_dir: None,
                v1: false,
            };
        };
        ensure_cgroupfs(v1);
        let rel = rel.trim_start_matches('/');
        let candidates: Vec<PathBuf> = if v1 {
            ["cpu", "cpu,cpuacct", "cpuacct,cpu"]
                .iter()
                .map(|c| Path::new("/sys/fs/cgroup").join(c).join(rel))
                .collect()
        } else {
            vec![Path::new("/sys/fs/cgroup").join(rel)]
        };
        for dir in candidates {
            if let Ok(f) = File::open(dir.join("cpu.stat")) {
                return Self {
                    cpu_stat: Some(f),
                    cgroup_dir: Some(dir),
                    v1,
                };
            }
        }
        Self {
            cpu_stat: None,
            cgroup_dir: None,
            v1,
        }
    }

    pub fn sample(&mut self, thread_ids: &[i32]) -> CpuSample {
        let mut s = CpuSample::default();
        if let Some(f) = &mut self.cpu_stat {
            let mut text = String::new();
            if f.rewind().is_ok() && f.read_to_string(&mut text).is_ok() {
                let (n, t) = parse_cpu_stat(&text);
                s.nr_throttled = n;
                s.throttled_ns = t;
            }
        }
        for tid in thread_ids {
            let path = format!("/proc/self/task/{tid}/schedstat");
            if let Ok(text) = std::fs::read_to_string(path) {
                s.runq_wait_ns += parse_schedstat_wait(&text);
            }
        }
        s
    }
}

/// This process's cgroup: the v1 `cpu` hierarchy's path when there is one, else v2's.
fn own_cgroup(text: &str) -> (Option<String>, bool) {
    let mut v2 = None;
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, controllers, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
        if controllers.split(',').any(|c| c == "cpu") {
            return (Some(path.to_owned()), true);
        }
        if controllers.is_empty() {
            v2 = Some(path.to_owned());
        }
    }
    (v2, false)
}

/// `ip netns exec` gives its command a fresh /sys without the cgroup file systems: mount the
/// one we read (this process's mount namespace only).
fn ensure_cgroupfs(v1: bool) {
    use nix::mount::{MsFlags, mount};
    let root = Path::new("/sys/fs/cgroup");
    let empty = std::fs::read_dir(root).map_or(true, |mut d| d.next().is_none());
    if !empty {
        return;
    }
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    if v1 {
        if mount(Some("tmpfs"), root, Some("tmpfs"), flags, None::<&str>).is_ok() {
            let cpu = root.join("cpu");
            let _ = std::fs::create_dir_all(&cpu);
            let _ = mount(Some("cgroup"), &cpu, Some("cgroup"), flags, Some("cpu"));
        }
    } else {
        let _ = mount(Some("cgroup2"), root, Some("cgroup2"), flags, None::<&str>);
    }
}

/// (nr_throttled, throttled time in ns) from v1's `throttled_time` (ns) or v2's
/// `throttled_usec`.
pub fn parse_cpu_stat(text: &str) -> (u64, u64) {
    let mut n = 0;
    let mut t = 0;
    for line in text.lines() {
        let mut f = line.split_whitespace();
        match (f.next(), f.next().and_then(|v| v.parse::<u64>().ok())) {
            (Some("nr_throttled"), Some(v)) => n = v,
            (Some("throttled_time"), Some(v)) => t = v,
            (Some("throttled_usec"), Some(v)) => t = v.saturating_mul(1000),
            _ => {}
        }
    }
    (n, t)
}

/// The second field of /proc/.../schedstat: ns spent waiting on a run queue.
pub fn parse_schedstat_wait(text: &str) -> u64 {
    text.split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_cgroup_versions() {
        assert_eq!(
            parse_cpu_stat("nr_periods 10\nnr_throttled 4\nthrottled_time 123456789\n"),
            (4, 123_456_789)
        );
        assert_eq!(
            parse_cpu_stat("usage_usec 5\nnr_throttled 2\nthrottled_usec 1500\n"),
            (2, 1_500_000)
        );
        assert_eq!(parse_cpu_stat("garbage"), (0, 0));
    }

    #[test]
    fn finds_the_cpu_hierarchy() {
        let v1 = "9:name=systemd:/\n2:cpuacct:/\n1:cpu:/vrrpd-test\n0::/\n";
        assert_eq!(own_cgroup(v1), (Some("/vrrpd-test".to_owned()), true));
        let joined = "4:cpu,cpuacct:/system.slice/vrrpd.service\n0::/\n";
        assert_eq!(
            own_cgroup(joined).0.as_deref(),
            Some("/system.slice/vrrpd.service")
        );
        assert_eq!(
            own_cgroup("0::/system.slice/x.service\n"),
            (Some("/system.slice/x.service".to_owned()), false)
        );
    }

    #[test]
    fn reads_schedstat() {
        assert_eq!(parse_schedstat_wait("100 2500 7\n"), 2500);
        assert_eq!(parse_schedstat_wait(""), 0);
    }
}
