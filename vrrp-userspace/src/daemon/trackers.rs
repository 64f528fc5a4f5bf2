//! The trackers: a runner per vrrp_script in use and a poller of the tracked interfaces. Both
//! turn what they see into `TrackEvent`s on the main loop's channel; the router does the
//! arithmetic.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use tokio::{sync::mpsc, task::JoinHandle};
use tracing::{error, warn};

use crate::{
    config::{Config, Script, TrackFile, TrackProcess},
    protocol::{router::Plan, track::TrackEvent},
    sys::{
        netlink::{LinkChanges, Netlink},
        scripts::{self, RunAs},
        track_file, track_process,
    },
};

/// Who runs a script and under which rules: from the global section, not the script's own
/// block, and part of what a reload compares (a new `script_user` restarts the runners).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Runs {
    /// (uid, gid) as resolved (None: not run at all; (None, None): root).
    who: Option<(Option<u32>, Option<u32>)>,
    secure: bool,
}

impl Runs {
    fn of(script: &Script, config: &Config) -> (Self, Option<RunAs>) {
        let run_as = RunAs::resolve(script.user.as_ref(), &config.global);
        (
            Self {
                who: run_as.as_ref().map(|r| (r.uid, r.gid)),
                secure: config.global.enable_script_security,
            },
            run_as,
        )
    }
}

#[derive(Default)]
pub(super) struct Trackers {
    /// vrrp_script name -> its runner, the config it runs with, and as whom.
    scripts: BTreeMap<String, (JoinHandle<()>, Script, Runs)>,
    /// vrrp_track_process name -> its counter and the config it counts with.
    processes: BTreeMap<String, (JoinHandle<()>, TrackProcess)>,
    /// track_file name -> its watcher and the config it watches with.
    files: BTreeMap<String, (JoinHandle<()>, TrackFile)>,
    /// The first sync is the start (keepalived's init_file differs there).
    started: bool,
    link_poller: Option<JoinHandle<()>>,
}

impl Trackers {
    /// Runs exactly the scripts `plan` uses and polls exactly its tracked interfaces. A script
    /// whose config is unchanged keeps its runner (and so its rise/fall state).
    /// `init_files`: this is the start or a reload, where keepalived writes `init_file`s (not
    /// a re-resolution of the running config).
    pub fn sync(
        &mut self,
        plan: &Plan,
        config: &Config,
        netlink: &Netlink,
        tx: &mpsc::Sender<TrackEvent>,
        init_files: bool,
    ) {
        let wanted = plan.scripts_in_use();
        let mut runs: BTreeMap<String, (Runs, Option<RunAs>)> = wanted
            .iter()
            .filter_map(|n| Some((n.clone(), Runs::of(plan.scripts.get(n)?, config))))
            .collect();
        let stale: Vec<String> = self
            .scripts
            .iter()
            .filter(|(name, (_, cfg, how))| {
                !wanted.contains(*name)
                    || plan
                        .scripts
                        .get(*name)
                        .is_none_or(|new| !same_script(new, cfg))
                    || runs.get(*name).is_none_or(|(now, _)| now != how)
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in stale {
            if let Some((h, ..)) = self.scripts.remove(&name) {
                h.abort();
            }
        }
        for name in wanted {
            if self.scripts.contains_key(&name) {
                continue;
            }
            let (Some(script), Some((how, run_as))) =
                (plan.scripts.get(&name).cloned(), runs.remove(&name))
            else {
                continue;
            };
            // keepalived refuses such scripts under enable_script_security; so does vrrpd, and
            // the track_script then counts as failed, never as run.
            if config.global.enable_script_security
                && let Some(why) = scripts::insecure_script(&script.command)
            {
                error!("VRRP_Script({name}) refused by enable_script_security: {why}");
                let _ = tx.try_send(TrackEvent::Script {
                    name: name.clone(),
                    ok: false,
                });
                self.scripts
                    .insert(name, (tokio::spawn(async {}), script, how));
                continue;
            }
            let Some(run_as) = run_as else {
                error!("VRRP_Script({name}) is not run: its user cannot be used");
                let _ = tx.try_send(TrackEvent::Script {
                    name: name.clone(),
                    ok: false,
                });
                self.scripts
                    .insert(name, (tokio::spawn(async {}), script, how));
                continue;
            };
            let handle = scripts::spawn_script(script.clone(), run_as, tx.clone());
            self.scripts.insert(name, (handle, script, how));
        }
        self.sync_files(plan, tx, init_files);
        self.sync_processes(plan, tx);
        let resolved: BTreeMap<String, u32> = plan
            .instances
            .iter()
            .map(|s| (s.cfg.interface.clone(), s.ifindex))
            .collect();
        self.poll_links(&plan.links, resolved, netlink, tx);
    }

    /// Counts exactly the vrrp_track_processes `plan` uses; one whose config is unchanged keeps
    /// its counter (and so its state).
    fn sync_processes(&mut self, plan: &Plan, tx: &mpsc::Sender<TrackEvent>) {
        let wanted = plan.processes_in_use();
        self.processes.retain(|name, (h, cfg)| {
            let keep = wanted.contains(name)
                && plan.processes.get(name).is_some_and(|new| {
                    let mut old = cfg.clone();
                    old.loc.clone_from(&new.loc);
                    old == *new
                });
            if !keep {
                h.abort();
            }
            keep
        });
        for name in wanted {
            if self.processes.contains_key(&name) {
                continue;
            }
            if let Some(p) = plan.processes.get(&name) {
                let h = track_process::spawn(p.clone(), tx.clone());
                self.processes.insert(name, (h, p.clone()));
            }
        }
    }

    /// Watches exactly the track_files `plan` uses; one whose config is unchanged keeps its
    /// watcher. A file's number goes to the router at once and then at each change.
    fn sync_files(&mut self, plan: &Plan, tx: &mpsc::Sender<TrackEvent>, init_files: bool) {
        let wanted = plan.files_in_use();
        let at_start = !self.started;
        self.started = true;
        let stale: Vec<String> = self
            .files
            .iter()
            .filter(|(name, (_, cfg))| {
                !wanted.contains(*name)
                    || plan.files.get(*name).is_none_or(|new| {
                        let mut old = cfg.clone();
                        old.loc.clone_from(&new.loc);
                        old != *new
                    })
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in stale {
            if let Some((h, _)) = self.files.remove(&name) {
                h.abort();
            }
        }
        for name in wanted {
            let Some(file) = plan.files.get(&name) else {
                continue;
            };
            if init_files {
                track_file::init(file, at_start);
            }
            if self.files.contains_key(&name) {
                continue;
            }
            match track_file::spawn(file, tx.clone()) {
                Ok(h) => {
                    self.files.insert(name, (h, file.clone()));
                }
                Err(e) => error!(
                    "track_file {name}: cannot watch {}: {e}; it bears on nothing (keepalived drops it too)",
                    file.path.display()
                ),
            }
        }
    }

    /// Watches the tracked interfaces for up/down (kernel link notifications, polling where they
    /// cannot be had), and the interfaces VRRP runs on for a new ifindex (`resolved`: what the
    /// plan was resolved against).
    fn poll_links(
        &mut self,
        tracked: &BTreeMap<String, bool>,
        mut resolved: BTreeMap<String, u32>,
        netlink: &Netlink,
        tx: &mpsc::Sender<TrackEvent>,
    ) {
        if let Some(p) = self.link_poller.take() {
            p.abort();
        }
        let links: BTreeSet<String> = tracked.keys().chain(resolved.keys()).cloned().collect();
        let (netlink, tx, mut known) = (netlink.clone(), tx.clone(), tracked.clone());
        self.link_poller = Some(tokio::spawn(async move {
            // The kernel says when a link changes; polling (5 times a second) only where the
            // subscription cannot be had. Subscribed before the first look, so that a change
            // between the plan and now is not missed.
            let mut changes = match LinkChanges::subscribe() {
                Ok(c) => Some(c),
                Err(e) => {
                    warn!("link notifications unavailable ({e}): polling the links instead");
                    None
                }
            };
            loop {
                for l in &links {
                    let now = netlink.link(l).await.ok();
                    // Re-created first: the instances move to the new interface before they
                    // hear that it is up, so that none comes up on the old one.
                    if let (Some(link), Some(was)) = (&now, resolved.get(l))
                        && link.index != *was
                    {
                        resolved.insert(l.clone(), link.index);
                        let ev = TrackEvent::Recreated { ifname: l.clone() };
                        if tx.send(ev).await.is_err() {
                            return;
                        }
                    }
                    let up = now.is_some_and(|x| x.up);
                    if let Some(was) = known.get_mut(l)
                        && *was != up
                    {
                        *was = up;
                        let ev = TrackEvent::Link {
                            ifname: l.clone(),
                            up,
                        };
                        if tx.send(ev).await.is_err() {
                            return;
                        }
                    }
                }
                match &mut changes {
                    Some(c) => {
                        if !c.changed().await {
                            warn!("link notifications ended: polling the links instead");
                            changes = None;
                        }
                    }
                    None => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        }));
    }
}

/// Whether a script runs the same (file positions do not count).
fn same_script(a: &Script, b: &Script) -> bool {
    let mut b = b.clone();
    b.loc.clone_from(&a.loc);
    *a == b
}
