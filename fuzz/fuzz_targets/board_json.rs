//! `board::BoardJson::parse` on `/etc/board.json`. Invariants: `DeviceFacts::from_files` with
//! only this file takes its `compat_version`, and a missing `compat_version` means `1.0`.
#![no_main]

use attendant_fuzz::{assert_error_text, fail};
use attendant_proto::board::{BoardJson, DeviceFacts, DeviceFiles};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parsed = match BoardJson::parse(data) {
        Ok(parsed) => parsed,
        Err(error) => {
            assert_error_text(&error);
            return;
        }
    };
    let files = DeviceFiles {
        board_json: Some(data),
        ..DeviceFiles::default()
    };
    match DeviceFacts::from_files(&files) {
        Ok(facts) => assert_eq!(facts.compat_version, parsed.compat_version),
        Err(error) => fail(&format!(
            "board.json parses alone but not in the facts: {error}"
        )),
    }
});
