//! The owner of every instance: one input in, the effects out.
//!
//! ```text
//!   Input::Configure(Plan)  ─┐                        ┌─> Output::Instance { name, Effect }
//!   Input::Advert(RxAdvert) ─┤                        ├─> Output::Group { name, state }
//!   Input::Timer            ─┼─> Router::handle(now) ─┼─> Output::Drop { source, cause }
//!   Input::Track(..)        ─┤                        ├─> Output::Watch / Unwatch (XDP map)
//!   Input::Shutdown         ─┘                        └─> Output::Retire (free its resources)
//! ```
//!
//! Instances are known by name and by (ifindex, family, VRID), never by position, and sync
//! groups by name: a reload computes what is kept, changed, removed and added from those keys,
//! so nothing can point at an instance that is gone. The router owns the protocol's timers
//! (Master_Down_Timer inside each state machine, the gratuitous-ARP repeats beside it); the
//! periodic adverts are a cadence it starts and stops with effects, kept by the advert thread.
//! Pure: no sockets, no clocks, no logging. The daemon executes the outputs (daemon::executor)
//! and the conformance tests compare them with golden files (tests/conformance).

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    fmt,
    net::IpAddr,
    time::Duration,
};

use super::{
    drop::DropReason,
    event::{InstanceKey, RxAdvert, SourceKey},
    fsm::{self, Action, Event, RxError, State},
    stats::InstanceStats,
    sync_group::SyncGroup,
    track::{TrackEvent, Weighted, effective_priority, file_weighted},
};
use crate::{
    config::{self, InitialState},
    time::Instant,
    wire::vrrp::DecodeError,
};

/// RFC 5798 7.1: TTL 255. keepalived (and so vrrpd) waives it for a unicast instance, whose
/// peers may be routers away; with `check_unicast_src` only its peers are heard, each within
/// its `min_ttl` / `max_ttl`.
fn unicast_refusal(cfg: &config::Instance, src: IpAddr, ttl: u8) -> Option<DropCause> {
    if cfg.unicast_peers.is_empty() {
        return (ttl != crate::wire::vrrp::TTL)
            .then_some(DropCause::Malformed(DecodeError::BadTtl(ttl)));
    }
    if !cfg.check_unicast_src {
        return None;
    }
    if !cfg.unicast_peers.contains(&src) {
        return Some(DropCause::Refused(RxError::NotAPeer));
    }
    cfg.peer_ttl
        .iter()
        .find(|(peer, _, _)| *peer == src)
        .filter(|(_, min, max)| !(*min..=*max).contains(&ttl))
        .map(|_| DropCause::Malformed(DecodeError::BadTtl(ttl)))
}

/// An instance as the daemon resolved it: its config, and where it lives.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    /// Shared: the router, the daemon's resources and each plan hold the same instance, and
    /// a thousand instances should not cost three thousand copies of their config.
    pub cfg: std::sync::Arc<config::Instance>,
    pub ifindex: u32,
    /// The primary address adverts are sent from (RFC 5798 6.4.3's tie-break).
    pub src: IpAddr,
}

impl Spec {
    pub fn key(&self) -> InstanceKey {
        InstanceKey {
            ifindex: self.ifindex,
            family: self.cfg.family,
            vrid: self.cfg.vrid,
        }
    }

    fn params(&self) -> fsm::Params {
        let c = &self.cfg;
        fsm::Params {
            version: c.version,
            vrid: c.vrid,
            priority: c.priority,
            advert_interval_cs: c.advert_int_cs,
            preempt: c.preempt,
            preempt_delay: c.preempt_delay,
            start_as_master: c.state == InitialState::Master,
            primary: self.src,
            addresses: c.vips.iter().map(|v| v.addr).collect(),
            peers: c.unicast_peers.clone(),
            strict_addresses: c.strict,
            down_timer_adverts: c.down_timer_adverts,
            auth: c.wire_auth(),
        }
    }

    /// Whether `other` behaves the same (file positions do not count): a reload leaves such an
    /// instance untouched.
    fn same_behaviour(&self, other: &Self) -> bool {
        self.ifindex == other.ifindex
            && self.src == other.src
            && self.cfg.without_locs() == other.cfg.without_locs()
    }
}

/// A whole configuration, resolved: what `Input::Configure` brings (at start and on reload).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub instances: Vec<Spec>,
    pub groups: Vec<config::SyncGroup>,
    pub scripts: BTreeMap<String, config::Script>,
    pub files: BTreeMap<String, config::TrackFile>,
    pub processes: BTreeMap<String, config::TrackProcess>,
    /// Every tracked interface (see [`tracked_links`]) and whether it is up now.
    pub links: BTreeMap<String, bool>,
}

impl Plan {
    /// The vrrp_scripts some instance or group tracks.
    pub fn scripts_in_use(&self) -> BTreeSet<String> {
        self.in_use(|i| &i.track_scripts, |g| &g.track_scripts, &self.scripts)
    }

    /// The vrrp_track_processes some instance or group tracks.
    pub fn processes_in_use(&self) -> BTreeSet<String> {
        self.in_use(
            |i| &i.track_processes,
            |g| &g.track_processes,
            &self.processes,
        )
    }

    /// The track_files some instance or group tracks.
    pub fn files_in_use(&self) -> BTreeSet<String> {
        self.in_use(|i| &i.track_files, |g| &g.track_files, &self.files)
    }

    /// The names an instance's or a group's tracking list (`of_instance`, `of_group`) holds
    /// that `defined` knows.
    fn in_use<V>(
        &self,
        of_instance: fn(&config::Instance) -> &Vec<config::Tracked>,
        of_group: fn(&config::SyncGroup) -> &Vec<config::Tracked>,
        defined: &BTreeMap<String, V>,
    ) -> BTreeSet<String> {
        self.instances
            .iter()
            .flat_map(|s| of_instance(&s.cfg))
            .chain(self.groups.iter().flat_map(of_group))
            .map(|t| t.name.clone())
            .filter(|n| defined.contains_key(n))
            .collect()
    }
}

/// The interfaces whose state some instance or group of `config` depends on: its own
/// interface (unless dont_track_primary) and every track_interface.
pub fn tracked_links(config: &config::Config) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for i in &config.instances {
        out.extend(i.track_interfaces.iter().map(|t| t.name.clone()));
        if !i.dont_track_primary {
            out.insert(i.interface.clone());
        }
    }
    for g in &config.sync_groups {
        out.extend(g.track_interfaces.iter().map(|t| t.name.clone()));
    }
    out
}

/// One input of the router.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// Run this configuration: the first one at start, a new one on reload.
    Configure(Plan),
    Advert(RxAdvert),
    /// The time came for the deadline that `next_deadline` gave (or later).
    Timer,
    Track(TrackEvent),
    /// SIGTERM: every instance leaves (masters send priority 0 and give up their VIPs).
    Shutdown,
    /// The operator's change to one running instance (`vrrpd set`); it lasts until vrrpd
    /// stops (a reload keeps it), never written to the config.
    Set {
        instance: String,
        setting: Setting,
    },
}

/// What `vrrpd set` changes.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Setting {
    /// The base priority in place of the config's (`None`: the config's again); tracking
    /// weights still apply on top.
    Priority(Option<u8>),
    /// Held in BACKUP (a master gives up with priority 0) until turned off.
    Maintenance(bool),
}

/// What the daemon does for one instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    SendAdvert {
        priority: u8,
    },
    StartAdverts {
        priority: u8,
        first: Instant,
        interval: Duration,
    },
    StopAdverts,
    AddVips,
    RemoveVips,
    /// Remove these VIPs, which a reload took out of the instance's list, where they are.
    RemoveVipsOf(Vec<config::Vip>),
    /// Gratuitous ARPs / unsolicited NAs for every VIP, `repeat` rounds.
    Announce {
        repeat: u32,
    },
    /// keepalived's "Entering STATE", at this effective priority.
    Transition {
        from: State,
        to: State,
        priority: u8,
    },
    /// Tracking changed the effective priority.
    Priority {
        from: u8,
        to: u8,
    },
    /// Something it tracks failed (FAULT) or recovered.
    Tracking {
        failed: bool,
    },
    /// As master, it heard a lower priority and answered (keepalived's
    /// `notify_master_rx_lower_pri` event), at this effective priority.
    HeardLowerPriority {
        priority: u8,
    },
}

/// Why an advert was dropped, with the detail for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropCause {
    /// It did not decode (or the XDP program found it malformed).
    Malformed(DecodeError),
    /// RFC 5798 7.1's checks against our configuration.
    Refused(RxError),
    /// No instance of ours has its interface, family and VRID.
    UnknownVrid,
}

impl DropCause {
    pub const fn reason(self) -> DropReason {
        match self {
            Self::Malformed(e) => e.reason(),
            Self::Refused(e) => e.reason(),
            Self::UnknownVrid => DropReason::UnknownVrid,
        }
    }
}

impl fmt::Display for DropCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(e) => write!(f, "{e}"),
            Self::Refused(e) => write!(f, "{e}"),
            Self::UnknownVrid => f.write_str("no instance has this VRID on this interface"),
        }
    }
}

/// One output of the router, in the order it must be carried out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Instance {
        name: String,
        effect: Effect,
    },
    /// A sync group entered a state (its notify scripts run), led by a member at `priority`.
    Group {
        name: String,
        state: State,
        priority: u8,
    },
    Drop {
        instance: Option<String>,
        source: SourceKey,
        cause: DropCause,
    },
    /// An advert acted on although it disagrees with the instance's config: for the log and
    /// the diagnosis.
    Mismatch {
        instance: String,
        source: SourceKey,
        cause: RxError,
    },
    /// The XDP program is to report (or stop reporting) adverts for this key.
    Watch(InstanceKey),
    Unwatch(InstanceKey),
    /// The instance's config changed in a reload (it keeps running): the daemon renews what
    /// it holds for it from `Router::get`.
    Update(String),
    /// The instance is gone (stopped by a reload, or renamed): release what the daemon holds
    /// for it.
    Retire(String),
}

/// One tracked thing of an instance, as `status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Tracked {
    pub kind: TrackedKind,
    pub name: String,
    /// None: no result yet.
    pub ok: Option<bool>,
    pub weight: Option<i32>,
    /// A tracked file's number (None: not read yet, or not a file).
    #[serde(default)]
    pub value: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrackedKind {
    Script,
    Interface,
    File,
    Process,
}

struct Entry {
    spec: Spec,
    fsm: fsm::Instance,
    faulted: bool,
    /// The second gratuitous-ARP burst after becoming master, and the periodic refresh.
    garp_due: Option<Instant>,
    refresh_due: Option<Instant>,
    /// The second burst after re-asserting over a lower-priority master.
    lower_garp_due: Option<Instant>,
    /// When notify_master_rx_lower_pri's event last went out (at most one a second).
    lower_notified: Option<Instant>,
    stats: InstanceStats,
    /// Its Master_Down_Timer ran out but its sync group held it back (keepalived's
    /// `wantstate` MASTER): it is ready to follow the first member that goes.
    held_back: bool,
}

/// A read-only view of one instance, for `status` and the diagnosis.
pub struct View<'a> {
    pub spec: &'a Spec,
    pub fsm: &'a fsm::Instance,
    pub stats: &'a InstanceStats,
    pub group: Option<&'a str>,
    /// The base priority the operator set in place of the config's.
    pub operator_priority: Option<u8>,
}

/// What the operator set for one instance, by name: it outlives the instance's entry when the
/// instance starts again (its interface re-created, a reload that moved it), so that a held
/// instance is never released by anything but `vrrpd set ... maintenance off`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Operator {
    held: bool,
    priority: Option<u8>,
}

#[derive(Default)]
pub struct Router {
    instances: BTreeMap<String, Entry>,
    operator: BTreeMap<String, Operator>,
    by_key: BTreeMap<InstanceKey, String>,
    groups: BTreeMap<String, SyncGroup>,
    /// Each group's config (tracking), by group name.
    group_cfgs: BTreeMap<String, config::SyncGroup>,
    scripts: BTreeMap<String, config::Script>,
    /// vrrp_script name -> succeeded? (None until its first result.)
    script_ok: BTreeMap<String, Option<bool>>,
    /// Tracked interface -> up?
    links: BTreeMap<String, bool>,
    files: BTreeMap<String, config::TrackFile>,
    /// track_file name -> its number (None until first read).
    file_values: BTreeMap<String, Option<i64>>,
    processes: BTreeMap<String, config::TrackProcess>,
    /// vrrp_track_process name -> up? (None until its first count.)
    process_ok: BTreeMap<String, Option<bool>>,
}

impl Router {
    pub fn new() -> Self {
        Self::default()
    }

    /// Carries out one input at `now`.
    pub fn handle(&mut self, now: Instant, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Configure(plan) => self.configure(now, plan, &mut out),
            Input::Advert(rx) => self.advert(now, rx, &mut out),
            Input::Timer => self.timers(now, &mut out),
            Input::Track(ev) => {
                match ev {
                    TrackEvent::Script { name, ok } => {
                        if let Some(s) = self.script_ok.get_mut(&name) {
                            *s = Some(ok);
                        }
                    }
                    TrackEvent::Link { ifname, up } => {
                        self.links.insert(ifname, up);
                    }
                    TrackEvent::Process { name, ok } => {
                        if let Some(s) = self.process_ok.get_mut(&name) {
                            *s = Some(ok);
                        }
                    }
                    TrackEvent::File { name, value } => {
                        if let Some(v) = self.file_values.get_mut(&name) {
                            *v = Some(value);
                        }
                    }
                    TrackEvent::Recreated { .. } => {}
                }
                for name in self.names() {
                    self.apply_tracking(&name, now, &mut out);
                }
            }
            Input::Set { instance, setting } => self.set(&instance, setting, now, &mut out),
            Input::Shutdown => {
                for name in self.names() {
                    if let Some(e) = self.instances.get_mut(&name) {
                        let actions = e.fsm.step(Event::Shutdown, now);
                        // No sync-group propagation: every member stops anyway.
                        self.run(&name, actions, false, now, &mut out);
                    }
                }
            }
        }
        out
    }

    /// The earliest time `Input::Timer` has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.instances
            .values()
            .flat_map(|e| {
                [
                    e.fsm.next_deadline(),
                    e.garp_due,
                    e.refresh_due,
                    e.lower_garp_due,
                ]
            })
            .flatten()
            .min()
    }

    pub fn len(&self) -> usize {
        self.instances.len()
    }

    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<View<'_>> {
        let e = self.instances.get(name)?;
        Some(View {
            spec: &e.spec,
            fsm: &e.fsm,
            stats: &e.stats,
            group: self.group_of(name).map(SyncGroup::name),
            operator_priority: self.operator_priority(name, e),
        })
    }

    /// The base priority the operator set for `name` in place of its config's; never an
    /// owner's (its priority is its config's: `set` refuses it, and a reload may make one).
    fn operator_priority(&self, name: &str, e: &Entry) -> Option<u8> {
        self.operator
            .get(name)
            .and_then(|op| op.priority)
            .filter(|_| e.spec.cfg.priority != fsm::PRIORITY_OWNER)
    }

    /// The instance an advert for `key` is for.
    pub fn by_key(&self, key: &InstanceKey) -> Option<View<'_>> {
        self.by_key.get(key).and_then(|n| self.get(n))
    }

    /// Every instance, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, View<'_>)> {
        self.instances
            .keys()
            .filter_map(|n| Some((n.as_str(), self.get(n)?)))
    }

    pub fn groups(&self) -> impl Iterator<Item = &SyncGroup> {
        self.groups.values()
    }

    /// What an instance tracks, with the current results, as `status` shows it.
    pub fn tracking(&self, name: &str) -> Vec<Tracked> {
        let Some(e) = self.instances.get(name) else {
            return Vec::new();
        };
        let mut out: Vec<Tracked> = e
            .spec
            .cfg
            .track_scripts
            .iter()
            .map(|t| Tracked {
                kind: TrackedKind::Script,
                name: t.name.clone(),
                ok: self.script_ok.get(&t.name).copied().flatten(),
                weight: t
                    .weight
                    .or_else(|| self.scripts.get(&t.name).map(|s| s.weight)),
                value: None,
            })
            .collect();
        out.extend(e.spec.cfg.track_interfaces.iter().map(|t| Tracked {
            kind: TrackedKind::Interface,
            name: t.name.clone(),
            ok: self.links.get(&t.name).copied(),
            weight: t.weight,
            value: None,
        }));
        out.extend(e.spec.cfg.track_processes.iter().map(|t| {
            Tracked {
                kind: TrackedKind::Process,
                name: t.name.clone(),
                ok: self.process_ok.get(&t.name).copied().flatten(),
                weight: t
                    .weight
                    .or_else(|| self.processes.get(&t.name).map(|p| p.weight)),
                value: None,
            }
        }));
        out.extend(e.spec.cfg.track_files.iter().filter_map(|t| {
            let f = self.files.get(&t.name)?;
            let value = self.file_values.get(&t.name).copied().flatten();
            let weight = t.weight.unwrap_or(f.weight);
            let w = file_weighted(value, weight, t.reverse || f.reverse);
            Some(Tracked {
                kind: TrackedKind::File,
                name: t.name.clone(),
                // Not in FAULT for it.
                ok: w.ok.map(|ok| ok || w.weight != Some(0)),
                weight: Some(weight),
                value,
            })
        }));
        out
    }

    fn names(&self) -> Vec<String> {
        self.instances.keys().cloned().collect()
    }

    fn group_of(&self, member: &str) -> Option<&SyncGroup> {
        self.groups.values().find(|g| g.contains(member))
    }

    /// Runs a new configuration, as keepalived reloads: an instance is the same instance when
    /// its interface, family and VRID are (keepalived's `vrrp_exist`), whatever its name. Such
    /// an instance keeps its state (a master stays master, with no gap); what changed takes
    /// effect in place: VIPs that left the list are removed and the new ones added, a changed
    /// advert goes out at once and the cadence carries it, a new priority is advertised. An
    /// instance whose key is gone stops as on SIGTERM (priority 0, VIPs removed); a new key
    /// starts.
    fn configure(&mut self, now: Instant, plan: Plan, out: &mut Vec<Output>) {
        let new_keys: BTreeSet<InstanceKey> = plan.instances.iter().map(Spec::key).collect();
        // The new groups first: an instance that stops now is no longer a member of the group
        // it leaves, and does not take the members that stay with it.
        self.groups = plan
            .groups
            .iter()
            .map(|g| {
                let group = self.groups.get(&g.name).map_or_else(
                    || SyncGroup::new(&g.name, &g.members),
                    |old| old.reconfigured(&g.members),
                );
                (g.name.clone(), group)
            })
            .collect();
        self.group_cfgs = plan
            .groups
            .iter()
            .map(|g| (g.name.clone(), g.clone()))
            .collect();
        let wanted = plan.scripts_in_use();
        self.script_ok.retain(|n, _| wanted.contains(n));
        for name in &wanted {
            if let Some(s) = plan.scripts.get(name) {
                self.script_ok
                    .entry(name.clone())
                    .or_insert_with(|| super::track::ScriptState::new(s.init_fail).ok);
            }
        }
        let files = plan.files_in_use();
        let processes = plan.processes_in_use();
        self.process_ok.retain(|n, _| processes.contains(n));
        for name in processes {
            self.process_ok.entry(name).or_insert(None);
        }
        self.processes = plan.processes;
        self.scripts = plan.scripts;
        self.file_values.retain(|n, _| files.contains(n));
        for name in files {
            self.file_values.entry(name).or_insert(None);
        }
        self.files = plan.files;
        // Read at resolution: fresher than what the poller last said.
        self.links.extend(plan.links);
        let stopping: Vec<String> = self
            .instances
            .iter()
            .filter(|(_, e)| !new_keys.contains(&e.spec.key()))
            .map(|(name, _)| name.clone())
            .collect();
        for name in &stopping {
            let Some(e) = self.instances.get_mut(name) else {
                continue;
            };
            let actions = e.fsm.step(Event::Shutdown, now);
            // A stop propagates nothing (INIT is not a state a sync group follows).
            self.run(name, actions, false, now, out);
            if let Some(e) = self.instances.remove(name) {
                self.by_key.remove(&e.spec.key());
                out.push(Output::Unwatch(e.spec.key()));
            }
            out.push(Output::Retire(name.clone()));
        }
        // The instances that stay, taken out first so that names may be swapped around.
        let mut staying: BTreeMap<InstanceKey, Entry> = BTreeMap::new();
        for spec in &plan.instances {
            if let Some(name) = self.by_key.get(&spec.key()).cloned()
                && let Some(e) = self.instances.remove(&name)
            {
                if name != spec.cfg.name {
                    // Renamed: what the daemon holds under the old name goes.
                    out.push(Output::Retire(name));
                }
                staying.insert(spec.key(), e);
            }
        }
        let mut added = Vec::new();
        let mut changed = Vec::new();
        let mut pending_holds = Vec::new();
        for spec in plan.instances {
            let key = spec.key();
            let name = spec.cfg.name.clone();
            self.by_key.insert(key, name.clone());
            if let Some(mut e) = staying.remove(&key) {
                if !e.spec.same_behaviour(&spec) || e.spec.cfg.name != name {
                    let renamed = e.spec.cfg.name != name;
                    changed.push((name.clone(), e.spec.clone(), renamed));
                }
                // New positions in the file, or a new config to apply below.
                e.spec = spec;
                self.instances.insert(name, e);
                continue;
            }
            out.push(Output::Watch(key));
            added.push(name.clone());
            self.instances.insert(
                name,
                Entry {
                    fsm: fsm::Instance::new(spec.params()),
                    spec,
                    faulted: false,
                    garp_due: None,
                    refresh_due: None,
                    lower_garp_due: None,
                    lower_notified: None,
                    stats: InstanceStats::default(),
                    held_back: false,
                },
            );
        }
        // The operator's settings follow an instance by name; those of an instance the config
        // no longer has go with it.
        self.operator
            .retain(|name, _| self.instances.contains_key(name));
        for (name, op) in &self.operator {
            if let Some(e) = self.instances.get_mut(name)
                && op.held
                && !e.fsm.held()
            {
                // Before its startup (a new entry) or in whatever state it is: held.
                let actions = e.fsm.step(Event::Hold(true), now);
                e.held_back = false;
                pending_holds.push((name.clone(), actions));
            }
        }
        for (name, actions) in pending_holds {
            self.run(&name, actions, true, now, out);
        }
        for (name, old, renamed) in changed {
            self.reconfigure(&name, &old, renamed, now, out);
        }
        // Tracking first (a new instance may start in FAULT, a new priority is advertised),
        // then the new ones start.
        for name in self.names() {
            self.apply_tracking(&name, now, out);
        }
        for name in added {
            if let Some(e) = self.instances.get_mut(&name) {
                let actions = e.fsm.step(Event::Startup, now);
                self.run(&name, actions, true, now, out);
            }
        }
    }

    /// A running instance's config changed (its `spec` is the new one already): the daemon's
    /// copy is renewed, and a master's VIPs and adverts follow the new config without a gap
    /// (keepalived's `clear_diff_vrrp_vip` and `restore_vrrp_state`).
    /// A renamed master starts its cadence again under its new name (the daemon's advert
    /// thread knows it by name).
    fn reconfigure(
        &mut self,
        name: &str,
        old: &Spec,
        renamed: bool,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let Some(e) = self.instances.get_mut(name) else {
            return;
        };
        let cfg = &e.spec.cfg;
        let master = e.fsm.state() == State::Master;
        // Where the VIPs live and how they are held changed (the VMAC, Accept_Mode, the
        // routes): a master takes everything down as the old config placed it (before the
        // daemon renews its copy of the spec) and puts it up as the new one says.
        let (a, b) = (old.cfg.without_locs(), cfg.without_locs());
        let moved = master
            && (a.vmac != b.vmac
                || a.vmac_xmit_base != b.vmac_xmit_base
                || a.accept != b.accept
                || a.virtual_routes != b.virtual_routes);
        if moved {
            out.push(Output::Instance {
                name: name.to_owned(),
                effect: Effect::RemoveVips,
            });
        }
        out.push(Output::Update(name.to_owned()));
        if moved {
            out.push(Output::Instance {
                name: name.to_owned(),
                effect: Effect::AddVips,
            });
            out.push(Output::Instance {
                name: name.to_owned(),
                effect: Effect::Announce {
                    repeat: cfg.garp.master_repeat,
                },
            });
        } else if master {
            let new: Vec<&config::Vip> = cfg.vips.iter().chain(&cfg.excluded_vips).collect();
            let stale: Vec<config::Vip> = old
                .cfg
                .vips
                .iter()
                .chain(&old.cfg.excluded_vips)
                .filter(|v| !new.iter().any(|n| n.addr == v.addr && n.prefix == v.prefix))
                .cloned()
                .collect();
            if !stale.is_empty() {
                out.push(Output::Instance {
                    name: name.to_owned(),
                    effect: Effect::RemoveVipsOf(stale),
                });
            }
            let added = new.iter().any(|n| {
                !old.cfg
                    .vips
                    .iter()
                    .chain(&old.cfg.excluded_vips)
                    .any(|v| v.same_as(n))
            });
            if added {
                out.push(Output::Instance {
                    name: name.to_owned(),
                    effect: Effect::AddVips,
                });
                out.push(Output::Instance {
                    name: name.to_owned(),
                    effect: Effect::Announce {
                        repeat: cfg.garp.master_repeat,
                    },
                });
            }
        }
        let actions = e.fsm.reconfigure(e.spec.params(), renamed, now);
        self.run(name, actions, true, now, out);
    }

    fn advert(&mut self, now: Instant, rx: RxAdvert, out: &mut Vec<Output>) {
        let source = rx.source();
        let Some(name) = self.by_key.get(&rx.key()).cloned() else {
            out.push(Output::Drop {
                instance: None,
                source,
                cause: DropCause::UnknownVrid,
            });
            return;
        };
        let Some(e) = self.instances.get_mut(&name) else {
            return;
        };
        if rx.src == e.spec.src {
            return; // our own, looped back by a switch or a bridge in hairpin mode
        }
        if rx.body.is_ok()
            && let Some(cause) = unicast_refusal(&e.spec.cfg, rx.src, rx.ttl)
        {
            e.stats.dropped.add(cause.reason());
            out.push(Output::Drop {
                instance: Some(name),
                source,
                cause,
            });
            return;
        }
        let advert = match rx.body {
            Ok(a) => a,
            Err(err) => {
                e.stats.dropped.add(err.reason());
                out.push(Output::Drop {
                    instance: Some(name),
                    source,
                    cause: DropCause::Malformed(err),
                });
                return;
            }
        };
        e.stats.adverts_received += 1;
        if advert.priority == 0 {
            e.stats.priority_zero_received += 1;
        }
        let actions = e.fsm.step(
            Event::Advert {
                src: rx.src,
                advert,
                arrived: rx.arrived,
            },
            now,
        );
        // A master heard again: this member no longer wants to take over.
        if e.fsm
            .master
            .is_some_and(|m| m.3 == rx.arrived && m.0 == rx.src)
        {
            e.held_back = false;
        }
        let mut rest = Vec::with_capacity(actions.len());
        for a in actions {
            match a {
                Action::Drop(err) => {
                    e.stats.dropped.add(err.reason());
                    out.push(Output::Drop {
                        instance: Some(name.clone()),
                        source,
                        cause: DropCause::Refused(err),
                    });
                }
                Action::Mismatch(err) => {
                    e.stats.mismatched.add(err.reason());
                    out.push(Output::Mismatch {
                        instance: name.clone(),
                        source,
                        cause: err,
                    });
                }
                a => rest.push(a),
            }
        }
        self.run(&name, rest, true, now, out);
    }

    fn timers(&mut self, now: Instant, out: &mut Vec<Output>) {
        for name in self.names() {
            let Some(e) = self.instances.get_mut(&name) else {
                continue;
            };
            if e.fsm.next_deadline().is_some_and(|d| d <= now) {
                // Only a backup's deadline is a takeover a sync group may hold back.
                let backup = e.fsm.state() == State::Backup;
                if let Some(wait) = backup.then(|| self.group_holds_back(&name, now)).flatten() {
                    if let Some(e) = self.instances.get_mut(&name) {
                        e.fsm.postpone(now.plus(wait));
                        e.held_back = true;
                    }
                } else if let Some(e) = self.instances.get_mut(&name) {
                    let actions = e.fsm.step(Event::Timer, now);
                    self.run(&name, actions, true, now, out);
                }
            }
            let Some(e) = self.instances.get_mut(&name) else {
                continue;
            };
            let master = e.fsm.state() == State::Master;
            let garp = e.spec.cfg.garp;
            if e.garp_due.is_some_and(|d| d <= now) {
                e.garp_due = None;
                if master {
                    out.push(Output::Instance {
                        name: name.clone(),
                        effect: Effect::Announce {
                            repeat: garp.master_repeat,
                        },
                    });
                }
            }
            if e.lower_garp_due.is_some_and(|d| d <= now) {
                e.lower_garp_due = None;
                let (repeat, _) = garp.lower_prio();
                if master && repeat > 0 {
                    out.push(Output::Instance {
                        name: name.clone(),
                        effect: Effect::Announce { repeat },
                    });
                }
            }
            if e.refresh_due.is_some_and(|d| d <= now) {
                e.refresh_due = master.then(|| now.plus(garp.master_refresh));
                if master {
                    out.push(Output::Instance {
                        name: name.clone(),
                        effect: Effect::Announce {
                            repeat: garp.master_refresh_repeat,
                        },
                    });
                }
            }
        }
    }

    /// keepalived's rule for a sync group that is not master: a member whose Master_Down_Timer
    /// ran out becomes master only if every other member would too (master already, or a backup
    /// whose own timer ran out); otherwise it waits another Master_Down_Interval of the first
    /// member that holds it back. A group prefers backup to thrashing: without this, a member
    /// whose peer stopped advertising (a rolling config change) would take the group to master
    /// and the members that still hear their master would take it straight back, every
    /// Master_Down_Interval. None: go ahead.
    fn group_holds_back(&self, name: &str, now: Instant) -> Option<Duration> {
        let group = self.group_of(name)?;
        if group.state() == State::Master {
            return None;
        }
        group
            .members()
            .iter()
            .filter(|m| m.as_str() != name)
            .filter_map(|m| self.instances.get(m))
            .find(|m| {
                let ready = match m.fsm.state() {
                    State::Master => true,
                    State::Backup => m.held_back || m.fsm.next_deadline().is_some_and(|d| d <= now),
                    State::Initialize | State::Fault => false,
                };
                !ready
            })
            .map(|m| m.fsm.master_down_interval())
    }

    /// What an instance tracks, with the state of each, for `effective_priority`.
    fn weighted(&self, e: &Entry) -> Vec<Weighted> {
        let cfg = &e.spec.cfg;
        let group = self
            .group_of(&cfg.name)
            .and_then(|g| self.group_cfgs.get(g.name()));
        let mut out = Vec::new();
        let scripts = cfg
            .track_scripts
            .iter()
            .chain(group.into_iter().flat_map(|g| g.track_scripts.iter()));
        for t in scripts {
            let Some(s) = self.scripts.get(&t.name) else {
                continue;
            };
            out.push(Weighted {
                weight: Some(t.weight.unwrap_or(s.weight)),
                reverse: t.reverse || s.weight_reverse,
                ok: self.script_ok.get(&t.name).copied().flatten(),
            });
        }
        let processes = cfg
            .track_processes
            .iter()
            .chain(group.into_iter().flat_map(|g| g.track_processes.iter()));
        for t in processes {
            let Some(p) = self.processes.get(&t.name) else {
                continue;
            };
            out.push(Weighted {
                weight: Some(t.weight.unwrap_or(p.weight)),
                reverse: t.reverse || p.reverse,
                ok: self.process_ok.get(&t.name).copied().flatten(),
            });
        }
        let files = cfg
            .track_files
            .iter()
            .chain(group.into_iter().flat_map(|g| g.track_files.iter()));
        for t in files {
            let Some(f) = self.files.get(&t.name) else {
                continue;
            };
            let value = self.file_values.get(&t.name).copied().flatten();
            out.push(file_weighted(
                value,
                t.weight.unwrap_or(f.weight),
                t.reverse || f.reverse,
            ));
        }
        let ifaces = cfg
            .track_interfaces
            .iter()
            .chain(group.into_iter().flat_map(|g| g.track_interfaces.iter()));
        for t in ifaces {
            out.push(Weighted {
                weight: t.weight,
                reverse: t.reverse,
                ok: Some(self.links.get(&t.name).copied().unwrap_or(false)),
            });
        }
        // keepalived's unicast_fault_no_peer: a unicast instance with no peer has nobody to
        // elect with, and must not fall back to multicast.
        if cfg.unicast_fault_no_peer && cfg.unicast_peers.is_empty() {
            out.push(Weighted {
                weight: None,
                reverse: false,
                ok: Some(false),
            });
        }
        if !cfg.dont_track_primary {
            out.push(Weighted {
                weight: None,
                reverse: false,
                ok: Some(self.links.get(&cfg.interface).copied().unwrap_or(true)),
            });
        }
        out
    }

    fn set(&mut self, name: &str, setting: Setting, now: Instant, out: &mut Vec<Output>) {
        let Some(e) = self.instances.get_mut(name) else {
            return;
        };
        let mut op = self.operator.get(name).copied().unwrap_or_default();
        let actions = match setting {
            Setting::Priority(p) => {
                op.priority = p;
                None
            }
            Setting::Maintenance(on) => {
                op.held = on;
                // A held member is not one whose timer ran out: its group must not take it
                // as ready to follow (holding one member holds its sync group's mastership).
                e.held_back = false;
                Some(e.fsm.step(Event::Hold(on), now))
            }
        };
        if op == Operator::default() {
            self.operator.remove(name);
        } else {
            self.operator.insert(name.to_owned(), op);
        }
        match actions {
            Some(actions) => self.run(name, actions, true, now, out),
            None => self.apply_tracking(name, now, out),
        }
    }

    /// Feeds the effective priority and the fault state into the instance's machine.
    fn apply_tracking(&mut self, name: &str, now: Instant, out: &mut Vec<Output>) {
        let Some(e) = self.instances.get(name) else {
            return;
        };
        let base = self
            .operator_priority(name, e)
            .unwrap_or(e.spec.cfg.priority);
        let effective = effective_priority(base, &self.weighted(e));
        let Some(e) = self.instances.get_mut(name) else {
            return;
        };
        let mut actions = Vec::new();
        let mut effects = Vec::new();
        match effective {
            None => {
                if !e.faulted {
                    e.faulted = true;
                    effects.push(Effect::Tracking { failed: true });
                    actions.extend(e.fsm.step(Event::Fault(true), now));
                }
            }
            Some(p) => {
                if e.faulted {
                    e.faulted = false;
                    effects.push(Effect::Tracking { failed: false });
                    actions.extend(e.fsm.step(Event::Fault(false), now));
                }
                if p != e.fsm.priority() {
                    effects.push(Effect::Priority {
                        from: e.fsm.priority(),
                        to: p,
                    });
                    actions.extend(e.fsm.step(Event::Priority(p), now));
                }
            }
        }
        out.extend(effects.into_iter().map(|effect| Output::Instance {
            name: name.to_owned(),
            effect,
        }));
        self.run(name, actions, true, now, out);
    }

    /// Turns one step's actions into outputs, and steps the sync-group members they move, in
    /// order: a member's own actions first, then those of the members that follow it.
    fn run(
        &mut self,
        name: &str,
        actions: Vec<Action>,
        propagate: bool,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let mut queue = VecDeque::from([(name.to_owned(), actions, propagate)]);
        while let Some((name, actions, leading)) = queue.pop_front() {
            for action in actions {
                let Some(e) = self.instances.get_mut(&name) else {
                    break;
                };
                let effect = match action {
                    Action::SendAdvert { priority } => Effect::SendAdvert { priority },
                    Action::StartAdverts {
                        priority,
                        first,
                        interval,
                    } => Effect::StartAdverts {
                        priority,
                        first,
                        interval,
                    },
                    Action::StopAdverts => Effect::StopAdverts,
                    Action::AddVips => Effect::AddVips,
                    Action::RemoveVips => Effect::RemoveVips,
                    Action::Announce => {
                        let garp = e.spec.cfg.garp;
                        if !garp.master_delay.is_zero() {
                            e.garp_due = Some(now.plus(garp.master_delay));
                        }
                        if !garp.master_refresh.is_zero() {
                            e.refresh_due = Some(now.plus(garp.master_refresh));
                        }
                        Effect::Announce {
                            repeat: garp.master_repeat,
                        }
                    }
                    Action::HeardLower => {
                        // keepalived runs the script for every lower advert; one a second
                        // keeps a fast-advertising (or forged) lower master from forking one
                        // per packet.
                        if e.lower_notified
                            .is_none_or(|t| now.since(t) >= Duration::from_secs(1))
                        {
                            e.lower_notified = Some(now);
                            out.push(Output::Instance {
                                name: name.clone(),
                                effect: Effect::HeardLowerPriority {
                                    priority: e.fsm.priority(),
                                },
                            });
                        }
                        continue;
                    }
                    Action::Reassert => {
                        // keepalived sends the burst for this instance and for every member of
                        // its sync group that has one (vrrp.c, vrrp_state_master_rx).
                        let members: Vec<String> = self
                            .group_of(&name)
                            .map(|g| g.members().to_vec())
                            .unwrap_or_else(|| vec![name.clone()]);
                        for m in members {
                            let Some(me) = self.instances.get_mut(&m) else {
                                continue;
                            };
                            let (repeat, delay) = me.spec.cfg.garp.lower_prio();
                            if repeat == 0 || me.fsm.state() != State::Master {
                                continue;
                            }
                            if !delay.is_zero() {
                                me.lower_garp_due = Some(now.plus(delay));
                            }
                            out.push(Output::Instance {
                                name: m,
                                effect: Effect::Announce { repeat },
                            });
                        }
                        continue;
                    }
                    // Only an advert's step drops, and `advert` takes those out first.
                    Action::Drop(_) | Action::Mismatch(_) => continue,
                    Action::Transition { from, to } => {
                        e.held_back = false;
                        if from == State::Master {
                            e.stats.released_master += 1;
                        }
                        if to == State::Master {
                            e.stats.became_master += 1;
                        } else {
                            e.garp_due = None;
                            e.refresh_due = None;
                            e.lower_garp_due = None;
                        }
                        let priority = e.fsm.priority();
                        out.push(Output::Instance {
                            name: name.clone(),
                            effect: Effect::Transition { from, to, priority },
                        });
                        let group = self.groups.values_mut().find(|g| g.contains(&name));
                        if let Some(g) = group {
                            let p = g.member_entered(&name, from, to, leading);
                            if let Some(state) = p.entered {
                                out.push(Output::Group {
                                    name: g.name().to_owned(),
                                    state,
                                    priority,
                                });
                            }
                            for m in p.followers {
                                if let Some(f) = self.instances.get_mut(&m) {
                                    let follow = f.fsm.step(Event::Sync(to), now);
                                    queue.push_back((m, follow, false));
                                }
                            }
                        }
                        continue;
                    }
                };
                out.push(Output::Instance {
                    name: name.clone(),
                    effect,
                });
            }
        }
    }
}
