//! `index::parse_index_json` on a feed's `index.json` (v1 or v2). Invariants: the version is at
//! least 1, and the index written back as JSON with its version parses to the same value.
#![no_main]

use attendant_fuzz::{assert_error_text, assert_roundtrip, fail};
use attendant_proto::index::{MAX_INDEX_ENTRIES, parse_index_json};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_index_json(data) {
        Ok(parsed) => {
            assert!(parsed.version >= 1);
            assert_eq!(parsed.has_abi_free_names(), parsed.version >= 2);
            assert!(parsed.index.packages.len() <= MAX_INDEX_ENTRIES);
            let value = serde_json::json!({
                "version": parsed.version,
                "architecture": parsed.index.architecture,
                "packages": parsed.index.packages,
            });
            match serde_json::to_vec(&value) {
                Ok(json) => {
                    assert_roundtrip("index.json", &parsed, &json, parse_index_json(&json));
                }
                Err(error) => fail(&format!("parsed index cannot be written: {error}")),
            }
        }
        Err(error) => assert_error_text(&error),
    }
});
