//! `uci::Config::parse` on a UCI file (`/etc/config/*`, which users and LuCI edit). Invariants:
//! `Display` is `to_text`, and `to_text` (what `uci export` writes) parses back to the same
//! configuration.
#![no_main]

use attendant_fuzz::{assert_error_text, assert_roundtrip};
use attendant_proto::uci::{Config, MAX_FILE_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Config::parse(data) {
        Ok(config) => {
            let text = config.to_text();
            assert_eq!(config.to_string(), text);
            if text.len() <= MAX_FILE_LEN {
                let again = Config::parse(text.as_bytes());
                assert_roundtrip("uci file", &config, text.as_bytes(), again);
            }
        }
        Err(error) => assert_error_text(&error),
    }
});
