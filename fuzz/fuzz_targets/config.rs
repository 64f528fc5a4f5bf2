//! The keepalived.conf lexer and parser on arbitrary text: no panic, no hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vrrp::config::{LoadOptions, load_str};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = load_str(&text, "fuzz.conf", &LoadOptions { config_id: "lb01".to_owned() });
});
