//! `upstream::parse_profiles` on `profiles.json` from the upstream download server. Invariant: the value
//! written back as JSON (the server republishes it) parses to the same value.
#![no_main]

use attendant_fuzz::{assert_error_text, assert_roundtrip, fail};
use attendant_proto::upstream::parse_profiles;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_profiles(data) {
        Ok(parsed) => match serde_json::to_vec(&parsed) {
            Ok(json) => assert_roundtrip("profiles.json", &parsed, &json, parse_profiles(&json)),
            Err(error) => fail(&format!("parsed profiles.json cannot be written: {error}")),
        },
        Err(error) => assert_error_text(&error),
    }
});
