//! `channel::parse_channels` on `channels.json` (from a channel server or a mirror). Invariants: what parses
//! encodes to bytes that parse back to the same document, and encoding is stable (the bytes a
//! `.sig` signs do not change on a second round).
#![no_main]

use attendant_fuzz::{assert_error_text, assert_roundtrip};
use attendant_proto::channel::{encode_channels, parse_channels};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_channels(data) {
        Ok(doc) => {
            let written = encode_channels(&doc);
            let again = parse_channels(&written);
            if let Ok(reparsed) = &again {
                assert_eq!(encode_channels(reparsed), written, "encoding is not stable");
            }
            assert_roundtrip("channels.json", &doc, &written, again);
        }
        Err(error) => assert_error_text(&error),
    }
});
