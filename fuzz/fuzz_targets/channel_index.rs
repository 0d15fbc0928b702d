//! `channel::parse_index` on a per-device `index.json`. Invariants: what parses
//! encodes to bytes that parse back to the same document, and encoding is stable (the bytes a
//! `.sig` signs do not change on a second round).
#![no_main]

use attendant_fuzz::{assert_error_text, assert_roundtrip};
use attendant_proto::channel::{encode_index, parse_index};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_index(data) {
        Ok(doc) => {
            let written = encode_index(&doc);
            let again = parse_index(&written);
            if let Ok(reparsed) = &again {
                assert_eq!(encode_index(reparsed), written, "encoding is not stable");
            }
            assert_roundtrip("index.json", &doc, &written, again);
        }
        Err(error) => assert_error_text(&error),
    }
});
