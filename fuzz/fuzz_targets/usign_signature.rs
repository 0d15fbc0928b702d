//! `usign::Signature::parse` on a `.sig` file (downloaded next to `sha256sums` or a package
//! index). Invariant: the written signature file parses back to the same signature.
#![no_main]

use attendant_fuzz::{assert_error_text, assert_roundtrip};
use attendant_proto::usign::{MAX_FILE_LEN, Signature};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Signature::parse(data) {
        Ok(signature) => {
            let file = signature.to_file();
            assert!(
                file.len() <= MAX_FILE_LEN,
                "written signature file too long: {file:?}"
            );
            let again = Signature::parse(file.as_bytes());
            assert_roundtrip("usign signature", &signature, file.as_bytes(), again);
        }
        Err(error) => assert_error_text(&error),
    }
});
