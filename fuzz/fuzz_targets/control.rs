//! The control protocol on arbitrary bytes, both ways: what a client may send the daemon
//! (`parse_request`), and what a daemon may answer or stream to `vrrpd status`, `capture` and
//! `watch` (`Answer`, `StreamRecord`). No panic, no hang; an error is an answer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vrrp::northbound::control::{Answer, Command, Reply, StreamRecord, parse_request};

fuzz_target!(|data: &[u8]| {
    match parse_request(data) {
        Ok(Command::Status | Command::Diagnose | Command::Subscribe | Command::Reload) => {}
        // Checked by the daemon (instance name, priority range) before anything acts on it.
        Ok(Command::Set { .. }) => {}
        Err(answer) => assert!(matches!(answer, Reply::Error(_))),
    }
    let _ = serde_json::from_slice::<Answer>(data);
    let _ = serde_json::from_slice::<StreamRecord>(data);
});
