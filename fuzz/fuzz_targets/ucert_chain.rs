//! `ucert::Chain::parse` on a ucert file (a channel key delegation, a revocation list, the
//! signature trailer of an ASU image). Invariants: the file is at most `MAX_FILE_LEN`; writing
//! a parsed chain gives back exactly the input (the parser accepts only libubox's canonical
//! framing); verification against an empty keyring fails without panicking.
#![no_main]

use attendant_fuzz::{assert_error_text, fail};
use attendant_proto::ucert::{Chain, MAX_FILE_LEN, Revocations};
use attendant_proto::usign::Keyring;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Chain::parse(data) {
        Ok(chain) => {
            assert!(data.len() <= MAX_FILE_LEN, "accepted {} bytes", data.len());
            if chain.to_bytes() != data {
                fail("ucert chain: writing the parsed chain does not give the input back");
            }
            match chain.verify(&Keyring::new(), &Revocations::new(), 0) {
                Ok(_) => fail("ucert chain: verified without a trusted key"),
                Err(error) => assert_error_text(&error),
            }
            let mut revoked = Revocations::new();
            if let Err(error) = revoked.add_chain(&chain, &Keyring::new(), 0) {
                assert_error_text(&error);
            }
        }
        Err(error) => assert_error_text(&error),
    }
});
