//! `api::parse_build_response` on a `200` build body from a server (what the agent reads).
//! Invariant: the body written back as JSON parses to the same value.
#![no_main]

use attendant_fuzz::{assert_error_text, assert_roundtrip, fail};
use attendant_proto::api::parse_build_response;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_build_response(data) {
        Ok(response) => match serde_json::to_vec(&response) {
            Ok(json) => {
                let again = parse_build_response(&json);
                assert_roundtrip("build response", &response, &json, again);
            }
            Err(error) => fail(&format!(
                "a parsed build response cannot be written: {error}"
            )),
        },
        Err(error) => assert_error_text(&error),
    }
});
