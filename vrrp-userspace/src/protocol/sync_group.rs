//! keepalived's `vrrp_sync_group`: instances that move together. The group owns its
//! membership and decides who follows whom; the router steps the followers' machines with
//! `Event::Sync`.

use super::fsm::State;

/// One sync group: its members by name and the state it last entered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncGroup {
    name: String,
    members: Vec<String>,
    state: State,
}

/// What a member's transition means for its group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Propagation {
    /// The other members, which must follow to the same state.
    pub followers: Vec<String>,
    /// The group entered a new state (its notify scripts run).
    pub entered: Option<State>,
}

impl SyncGroup {
    pub fn new(name: &str, members: &[String]) -> Self {
        Self {
            name: name.to_owned(),
            members: members.to_vec(),
            state: State::Initialize,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn members(&self) -> &[String] {
        &self.members
    }

    pub fn contains(&self, member: &str) -> bool {
        self.members.iter().any(|m| m == member)
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// The same group in a new config: its state carries over, its membership is the new
    /// one's.
    #[must_use]
    pub fn reconfigured(&self, members: &[String]) -> Self {
        Self {
            name: self.name.clone(),
            members: members.to_vec(),
            state: self.state,
        }
    }

    /// `member` went from `from` to `to`. A transition it made on its own (`leading`) takes
    /// the others along; one it made following another member does not propagate again. A
    /// member that starts (leaves INIT) while the group runs already, as one a reload adds,
    /// joins it without moving it: it comes up as backup and its own timer decides.
    pub fn member_entered(
        &mut self,
        member: &str,
        from: State,
        to: State,
        leading: bool,
    ) -> Propagation {
        let mut out = Propagation::default();
        if !self.contains(member) || (from == State::Initialize && self.state != State::Initialize)
        {
            return out;
        }
        if self.state != to {
            self.state = to;
            out.entered = Some(to);
        }
        if leading {
            out.followers = self
                .members
                .iter()
                .filter(|m| m.as_str() != member)
                .cloned()
                .collect();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leading_transition_takes_the_others_along_once() {
        let mut g = SyncGroup::new("VG_1", &["VI_FRONT".into(), "VI_BACK".into()]);
        let p = g.member_entered("VI_BACK", State::Initialize, State::Backup, true);
        assert_eq!(
            p.entered,
            Some(State::Backup),
            "the group starts with its first member"
        );
        let p = g.member_entered("VI_FRONT", State::Initialize, State::Backup, true);
        assert_eq!(
            p,
            Propagation::default(),
            "a member that starts joins the running group"
        );
        let p = g.member_entered("VI_BACK", State::Backup, State::Fault, true);
        assert_eq!(p.followers, vec!["VI_FRONT".to_owned()]);
        assert_eq!(p.entered, Some(State::Fault));
        let p = g.member_entered("VI_FRONT", State::Backup, State::Fault, false);
        assert!(p.followers.is_empty());
        assert_eq!(p.entered, None, "the group is in FAULT already");
        assert_eq!(
            g.member_entered("VI_OTHER", State::Backup, State::Master, true),
            Propagation::default()
        );
        let g2 = g.reconfigured(&["VI_FRONT".into()]);
        assert_eq!((g2.state(), g2.members().len()), (State::Fault, 1));
    }
}
