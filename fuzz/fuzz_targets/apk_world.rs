//! `apk::parse_world` on `/etc/apk/world`. Invariants: at most `MAX_WORLD_ENTRIES` entries, and
//! writing the entries back one a line (`!` for a conflict, name, constraint) parses to the same
//! entries.
#![no_main]

use attendant_fuzz::{assert_error_text, assert_roundtrip};
use attendant_proto::apk::{MAX_WORLD_ENTRIES, MAX_WORLD_SIZE, parse_world};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_world(data) {
        Ok(entries) => {
            assert!(!entries.is_empty(), "an accepted world file has no entries");
            assert!(entries.len() <= MAX_WORLD_ENTRIES);
            let mut written = String::new();
            for entry in &entries {
                if entry.conflict {
                    written.push('!');
                }
                written.push_str(&entry.name);
                written.push_str(entry.constraint.as_deref().unwrap_or_default());
                written.push('\n');
            }
            if written.len() <= MAX_WORLD_SIZE {
                let again = parse_world(written.as_bytes());
                assert_roundtrip("apk world", &entries, written.as_bytes(), again);
            }
        }
        Err(error) => assert_error_text(&error),
    }
});
