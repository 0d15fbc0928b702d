//! `api::imagebuilder::parse_make_info` on an ImageBuilder's `make info` output (the server runs
//! ImageBuilders it downloaded). Invariants: every profile is found by its id, and the revision
//! is set.
#![no_main]

use attendant_fuzz::assert_error_text;
use attendant_proto::api::imagebuilder::parse_make_info;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_make_info(text) {
        Ok(info) => {
            for profile in &info.profiles {
                let found = info.profile(&profile.id);
                assert!(
                    found.is_some_and(|found| found.id == profile.id),
                    "profile {:?} not found by its id",
                    profile.id
                );
            }
        }
        Err(error) => assert_error_text(&error),
    }
});
