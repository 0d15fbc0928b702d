//! `upstream::parse_targets` on `.targets.json` from the upstream download server. Invariant: the value
//! written back as JSON (the server republishes it) parses to the same value.
#![no_main]

use attendant_fuzz::{assert_error_text, assert_roundtrip, fail};
use attendant_proto::upstream::parse_targets;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_targets(data) {
        Ok(parsed) => match serde_json::to_vec(&parsed) {
            Ok(json) => assert_roundtrip(".targets.json", &parsed, &json, parse_targets(&json)),
            Err(error) => fail(&format!("parsed .targets.json cannot be written: {error}")),
        },
        Err(error) => assert_error_text(&error),
    }
});
