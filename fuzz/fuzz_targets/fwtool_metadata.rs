//! `fwtool::Metadata::parse` on the metadata JSON of an image's fwtool trailer. Invariant: the
//! JSON written by `to_json` (what `append_metadata` embeds) parses back to the same metadata,
//! unknown keys included.
#![no_main]

use attendant_fuzz::{assert_error_text, assert_roundtrip, fail};
use attendant_proto::fwtool::Metadata;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Metadata::parse(data) {
        Ok(metadata) => match metadata.to_json() {
            Ok(json) => {
                assert_roundtrip("fwtool metadata", &metadata, &json, Metadata::parse(&json))
            }
            Err(error) => fail(&format!("parsed metadata cannot be written: {error}")),
        },
        Err(error) => assert_error_text(&error),
    }
});
