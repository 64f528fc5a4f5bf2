//! An instance's protocol counters (RFC 6527's statistics, by kind): what it received and
//! acted on, what it dropped and why, how often it became master. What it sent is the
//! executor's to count (the kernel decides whether a send succeeds).

use serde::{Deserialize, Serialize};

use super::drop::DropCounts;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceStats {
    /// Adverts that decoded and reached the state machine.
    pub adverts_received: u64,
    /// Of those, priority 0 (a master stepping down).
    pub priority_zero_received: u64,
    pub became_master: u64,
    /// Transitions out of MASTER (keepalived's release_master).
    pub released_master: u64,
    pub dropped: DropCounts,
    /// Adverts acted on although they disagree with our config, by reason (an address list
    /// half-way through a rolling change).
    #[serde(default)]
    pub mismatched: DropCounts,
}
