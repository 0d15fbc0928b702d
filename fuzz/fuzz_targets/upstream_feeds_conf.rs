//! `upstream::parse_feeds_conf` on an ImageBuilder's `feeds.conf`. Invariants: every feed name
//! is a non-empty word without whitespace, and `src-git <name> <url>` lines written from the
//! names parse to the same names.
#![no_main]

use attendant_fuzz::{assert_error_text, assert_roundtrip};
use attendant_proto::upstream::{MAX_FEEDS_CONF_BYTES, parse_feeds_conf};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_feeds_conf(data) {
        Ok(feeds) => {
            for feed in &feeds {
                assert!(
                    !feed.is_empty() && !feed.contains(char::is_whitespace),
                    "{feed:?}"
                );
            }
            let written: String = feeds
                .iter()
                .map(|feed| format!("src-git {feed} https://example.invalid/feed.git\n"))
                .collect();
            if written.len() <= MAX_FEEDS_CONF_BYTES {
                let again = parse_feeds_conf(written.as_bytes());
                assert_roundtrip("feeds.conf", &feeds, written.as_bytes(), again);
            }
        }
        Err(error) => assert_error_text(&error),
    }
});
