//! The protocol, pure: RFC 5798 / RFC 3768's state machine (`fsm`), keepalived's sync groups
//! (`sync_group`) and tracking arithmetic (`track`), the typed inputs and drop reasons
//! (`event`, `drop`), the counters (`stats`), and the owner of every instance (`router`),
//! which turns one input into the effects the daemon executes. No sockets, no clocks: time is
//! passed in, so the conformance tests (tests/conformance) replay recorded inputs on virtual
//! time through the same seam the daemon uses.

pub mod drop;
pub mod event;
pub mod fsm;
pub mod router;
pub mod stats;
pub mod sync_group;
pub mod track;
