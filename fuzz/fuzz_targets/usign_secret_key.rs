//! `usign::SecretKey::parse` on a secret key file. Invariants: the written file parses back to
//! a key that writes the same file, has the same public key, and a signature it makes verifies
//! with that public key.
#![no_main]

use attendant_fuzz::{assert_error_text, fail};
use attendant_proto::usign::SecretKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match SecretKey::parse(data) {
        Ok(key) => {
            let file = key.to_file();
            match SecretKey::parse(file.as_bytes()) {
                Ok(again) => {
                    assert_eq!(
                        again.to_file(),
                        file,
                        "secret key file changes when rewritten"
                    );
                    assert_eq!(again.fingerprint(), key.fingerprint());
                    assert_eq!(again.public_key(), key.public_key());
                }
                Err(error) => fail(&format!(
                    "usign secret key: the written form does not parse again: {error}\n{file}"
                )),
            }
            let public = key.public_key();
            assert_eq!(public.fingerprint(), key.fingerprint());
            let signature = key.sign(data);
            if let Err(error) = public.verify(data, &signature) {
                fail(&format!(
                    "a signature by a parsed secret key does not verify: {error}"
                ));
            }
        }
        Err(error) => assert_error_text(&error),
    }
});
