//! `usign::PublicKey::parse` on a key file (`/etc/opkg/keys/<fingerprint>`, or one a server
//! hands out). Invariants: the written key file is within the size limit and parses back to the
//! same key.
#![no_main]

use attendant_fuzz::{assert_error_text, assert_roundtrip};
use attendant_proto::usign::{MAX_FILE_LEN, PublicKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match PublicKey::parse(data) {
        Ok(key) => {
            let file = key.to_file();
            assert!(
                file.len() <= MAX_FILE_LEN,
                "written key file too long: {file:?}"
            );
            let again = PublicKey::parse(file.as_bytes());
            assert_roundtrip("usign public key", &key, file.as_bytes(), again);
        }
        Err(error) => assert_error_text(&error),
    }
});
