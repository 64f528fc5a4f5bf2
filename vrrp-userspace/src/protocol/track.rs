//! Tracking arithmetic with keepalived's semantics, pure: a `vrrp_script`'s rise/fall counting
//! ([`ScriptState`]) and the effective priority of an instance from what it tracks
//! ([`effective_priority`]). The runners that produce the results are in `sys::scripts` and
//! `daemon::trackers`.

use super::fsm::PRIORITY_OWNER;

/// What the trackers tell the router.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrackEvent {
    /// A vrrp_script changed between succeeded and failed (after rise / fall).
    Script { name: String, ok: bool },
    /// A tracked interface went up or down.
    Link { ifname: String, up: bool },
    /// A vrrp_track_process went up (its quorum of processes runs) or down.
    Process { name: String, ok: bool },
    /// A tracked file (`track_file`) holds a new number (0 when it is missing or not a number).
    File { name: String, value: i64 },
    /// An interface VRRP runs on exists again under a new ifindex (deleted and created again:
    /// a VLAN or bond rebuilt, a driver reloaded). The daemon re-resolves its instances and
    /// hands the router a new plan; the router's tracking is unchanged by it.
    Recreated { ifname: String },
}

/// A script's rise/fall counting (keepalived: `rise` consecutive successes to be OK, `fall`
/// consecutive failures to be failed). A script starts unknown, contributing no weight either
/// way, until its first result (keepalived: "succeeded", then "Changing effective priority"),
/// or failed with `init_fail`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScriptState {
    /// None: no result yet.
    pub ok: Option<bool>,
    streak: u32,
}

impl ScriptState {
    pub const fn new(init_fail: bool) -> Self {
        Self {
            ok: if init_fail { Some(false) } else { None },
            streak: 0,
        }
    }

    /// Feeds one result; returns the new state when it changed.
    pub fn update(&mut self, success: bool, rise: u32, fall: u32) -> Option<bool> {
        if self.ok == Some(success) {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        // From the unknown start one success is enough (keepalived credits rise - 1).
        let needed = match (self.ok, success) {
            (None, true) => 1,
            (_, true) => rise,
            (_, false) => fall,
        };
        if self.streak >= needed.max(1) {
            self.ok = Some(success);
            self.streak = 0;
            Some(success)
        } else {
            None
        }
    }
}

/// One tracked thing as it bears on an instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Weighted {
    /// None or 0: FAULT while failing / down.
    pub weight: Option<i32>,
    pub reverse: bool,
    /// None: no result yet (counts neither way).
    pub ok: Option<bool>,
}

/// How a tracked file bears on an instance (keepalived's track_file.c): the file's number
/// times the weight, negated by `reverse`, taken within -254..=253, where -254 means FAULT;
/// with weight 0, FAULT while the number is not 0 (while it is 0, with `reverse`). None: not
/// read yet, no bearing.
pub fn file_weighted(value: Option<i64>, weight: i32, reverse: bool) -> Weighted {
    let fault = Weighted {
        weight: Some(0),
        reverse: false,
        ok: Some(false),
    };
    let Some(value) = value else {
        return Weighted {
            weight: Some(0),
            reverse: false,
            ok: None,
        };
    };
    if weight == 0 {
        return if (value != 0) != reverse {
            fault
        } else {
            Weighted {
                weight: Some(0),
                reverse: false,
                ok: Some(true),
            }
        };
    }
    let sign = if reverse { -1 } else { 1 };
    let delta = value
        .saturating_mul(i64::from(weight))
        .saturating_mul(sign)
        .clamp(-254, 253);
    if delta == -254 {
        return fault;
    }
    if delta == 0 {
        return Weighted {
            weight: Some(0),
            reverse: false,
            ok: Some(true),
        };
    }
    // As a weight that applies: a positive one while "up", a negative one while "down".
    Weighted {
        weight: Some(i32::try_from(delta).unwrap_or(0)),
        reverse: false,
        ok: Some(delta > 0),
    }
}

/// The effective priority (keepalived's rules): a positive weight is added while the tracked
/// thing is up, a negative one while it is down; `reverse` turns the adjustment around; a
/// weight of 0 (or an interface without weight) puts the instance in FAULT while down. The
/// result is kept within 1..=254; the address owner (255) is not adjusted. None: FAULT.
pub fn effective_priority(base: u8, tracked: &[Weighted]) -> Option<u8> {
    let mut p = i32::from(base);
    for t in tracked {
        let Some(ok) = t.ok else { continue };
        match t.weight {
            None | Some(0) => {
                if !ok {
                    return None;
                }
            }
            Some(w) => {
                let applies = (w > 0 && ok) || (w < 0 && !ok);
                if applies {
                    p += if t.reverse { -w } else { w };
                }
            }
        }
    }
    if base == PRIORITY_OWNER {
        return Some(base);
    }
    Some(u8::try_from(p.clamp(1, 254)).unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rise_and_fall_count_consecutive_results() {
        let mut s = ScriptState::new(false);
        assert_eq!(s.ok, None, "unknown until the first result");
        assert_eq!(
            s.update(true, 2, 3),
            Some(true),
            "one success decides the unknown start"
        );
        assert_eq!(s.update(false, 2, 3), None);
        assert_eq!(s.update(false, 2, 3), None);
        assert_eq!(
            s.update(true, 2, 3),
            None,
            "a success breaks the failure streak"
        );
        assert_eq!(s.update(false, 2, 3), None);
        assert_eq!(s.update(false, 2, 3), None);
        assert_eq!(s.update(false, 2, 3), Some(false));
        assert_eq!(s.update(true, 2, 3), None);
        assert_eq!(s.update(true, 2, 3), Some(true));
        assert_eq!(
            ScriptState::new(true).ok,
            Some(false),
            "init_fail starts failed"
        );
    }

    #[test]
    fn track_files_follow_keepalived() {
        let p = |value, weight, reverse| {
            effective_priority(100, &[file_weighted(value, weight, reverse)])
        };
        assert_eq!(p(None, 10, false), Some(100), "not read yet");
        assert_eq!(p(Some(3), 10, false), Some(130));
        assert_eq!(p(Some(3), 10, true), Some(70), "reverse");
        assert_eq!(p(Some(-2), 10, false), Some(80));
        assert_eq!(p(Some(0), 10, false), Some(100));
        assert_eq!(
            p(Some(25), 10, false),
            Some(254),
            "253 at most, then clamped"
        );
        assert_eq!(p(Some(-25), 10, false), Some(1), "-250: clamped to 1");
        assert_eq!(p(Some(-26), 10, false), None, "-254 or less: FAULT");
        assert_eq!(p(Some(-26), 10, true), Some(254));
        assert_eq!(p(Some(1), 0, false), None, "weight 0: FAULT while not 0");
        assert_eq!(p(Some(0), 0, false), Some(100));
        assert_eq!(p(Some(0), 0, true), None, "weight 0 reverse: FAULT while 0");
        assert_eq!(p(Some(7), 0, true), Some(100));
        assert_eq!(
            effective_priority(255, &[file_weighted(Some(-3), 10, false)]),
            Some(255),
            "the owner is not adjusted"
        );
        assert_eq!(
            effective_priority(255, &[file_weighted(Some(1), 0, false)]),
            None,
            "but it does go to FAULT"
        );
    }

    #[test]
    fn weights_follow_keepalived() {
        let w = |weight: Option<i32>, reverse: bool, ok: bool| Weighted {
            weight,
            reverse,
            ok: Some(ok),
        };
        assert_eq!(
            effective_priority(
                150,
                &[Weighted {
                    weight: Some(0),
                    reverse: false,
                    ok: None
                }]
            ),
            Some(150),
            "unknown: no weight, no fault"
        );
        // The seed's chapter 8: check_web weight 50 on lb01 (150).
        assert_eq!(
            effective_priority(150, &[w(Some(50), false, true)]),
            Some(200)
        );
        assert_eq!(
            effective_priority(150, &[w(Some(50), false, false)]),
            Some(150)
        );
        assert_eq!(
            effective_priority(100, &[w(Some(-30), false, false)]),
            Some(70)
        );
        assert_eq!(
            effective_priority(100, &[w(Some(-30), false, true)]),
            Some(100)
        );
        assert_eq!(
            effective_priority(100, &[w(Some(20), true, true)]),
            Some(80),
            "reverse"
        );
        assert_eq!(
            effective_priority(100, &[w(Some(0), false, false)]),
            None,
            "weight 0 failing: FAULT"
        );
        assert_eq!(
            effective_priority(100, &[w(None, false, false)]),
            None,
            "interface down, no weight: FAULT"
        );
        assert_eq!(
            effective_priority(250, &[w(Some(50), false, true)]),
            Some(254),
            "clamped below the owner's 255"
        );
        assert_eq!(
            effective_priority(10, &[w(Some(-50), false, false)]),
            Some(1)
        );
        assert_eq!(
            effective_priority(255, &[w(Some(-50), false, false)]),
            Some(255),
            "the owner is not adjusted"
        );
    }
}
