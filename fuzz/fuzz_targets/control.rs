//! The control protocol on arbitrary bytes, both ways: what a client may send the daemon
//! (`parse_request`), and what a daemon's advert stream may hand `vrrpd capture` and `watch`
//! (`record_from_json`). No panic, no hang; an error is an answer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vrrp::control::{Command, parse_request, record_from_json};

fuzz_target!(|data: &[u8]| {
    match parse_request(data) {
        Ok(Command::Status | Command::Diagnose | Command::Subscribe) => {}
        Err(answer) => assert!(answer["error"].is_string()),
    }
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = record_from_json(&v);
    }
});
