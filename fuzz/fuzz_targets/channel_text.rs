//! The text forms inside channel metadata: `channel::VersionDetail::parse` and
//! `timestamp::Timestamp::parse` (input split at the first NUL: version_detail, then date).
//! Invariants: each prints back to exactly its input, and the field rules accept every channel
//! name and device the parsers would put in an error message without panicking.
#![no_main]

use attendant_fuzz::{assert_error_text, split_once};
use attendant_proto::channel::{VersionDetail, field};
use attendant_proto::timestamp::Timestamp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (detail, date) = split_once(data);
    if let Ok(text) = std::str::from_utf8(detail) {
        match VersionDetail::parse(text) {
            Ok(parsed) => assert_eq!(parsed.to_string(), text, "version_detail round trip"),
            Err(error) => assert_error_text(&error),
        }
        for rule in [
            field::channel_name(text),
            field::device_name(text),
            field::url_path(text),
            field::server_url(text),
        ] {
            if let Err(sentence) = rule {
                assert_error_text(&sentence);
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(date) {
        match Timestamp::parse(text) {
            Ok(time) => assert_eq!(time.to_string(), text, "timestamp round trip"),
            Err(error) => assert_error_text(&error),
        }
    }
});
