//! What the daemon shows the world: the control socket (`control`) and the typed answers it
//! carries (`status`), Prometheus metrics rendered from the same status (`metrics`), and the
//! diagnosis that turns wire and socket counts into findings (`diagnose`), and the limits both
//! doors share (`doors`).

pub mod control;
pub mod diagnose;
pub mod doors;
pub mod keepalived_files;
pub mod metrics;
pub mod ruleset;
pub mod status;
