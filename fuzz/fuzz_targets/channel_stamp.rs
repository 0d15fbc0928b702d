//! `channel::parse_stamp` on `/etc/attendant/channel.json` from a flashed image. Invariants: what parses
//! encodes to bytes that parse back to the same document, and encoding is stable (the bytes a
//! `.sig` signs do not change on a second round).
#![no_main]

use attendant_fuzz::{assert_error_text, assert_roundtrip};
use attendant_proto::channel::{encode_stamp, parse_stamp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_stamp(data) {
        Ok(doc) => {
            let written = encode_stamp(&doc);
            let again = parse_stamp(&written);
            if let Ok(reparsed) = &again {
                assert_eq!(encode_stamp(reparsed), written, "encoding is not stable");
            }
            assert_roundtrip("channel.json", &doc, &written, again);
        }
        Err(error) => assert_error_text(&error),
    }
});
