//! `board::OsRelease::parse` on `/usr/lib/os-release` (shell assignments). Invariants: `get` returns
//! the last assignment of a key, `release` never panics, and the assignments written back
//! single-quoted (a quote as `'\''`) parse to the same assignments.
#![no_main]

use attendant_fuzz::{assert_error_text, assert_roundtrip};
use attendant_proto::board::{MAX_RELEASE_FILE_SIZE, OsRelease};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parsed = match OsRelease::parse(data) {
        Ok(parsed) => parsed,
        Err(error) => {
            assert_error_text(&error);
            return;
        }
    };
    for (key, _) in parsed.iter() {
        let last = parsed
            .iter()
            .filter(|(k, _)| *k == key)
            .last()
            .map(|(_, v)| v);
        assert_eq!(parsed.get(key), last, "value of {key:?}");
    }
    if let Err(error) = parsed.release() {
        assert_error_text(&error);
    }
    let written: String = parsed
        .iter()
        .map(|(key, value)| format!("{key}='{}'\n", value.replace('\'', "'\\''")))
        .collect();
    if written.len() <= MAX_RELEASE_FILE_SIZE {
        let again = OsRelease::parse(written.as_bytes());
        assert_roundtrip("/usr/lib/os-release", &parsed, written.as_bytes(), again);
    }
});
