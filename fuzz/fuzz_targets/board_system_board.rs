//! `board::SystemBoard::parse` on the reply of `ubus call system board`. Invariants: `profile`
//! and `target` never panic, and the reply written back as JSON parses to the same value.
#![no_main]

use attendant_fuzz::{assert_error_text, assert_roundtrip, fail};
use attendant_proto::board::SystemBoard;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match SystemBoard::parse(data) {
        Ok(board) => {
            let _ = board.profile();
            assert_eq!(
                board.target(),
                board
                    .release
                    .as_ref()
                    .map(|release| release.target.as_str())
            );
            match serde_json::to_vec(&board) {
                Ok(json) => {
                    assert_roundtrip("system board", &board, &json, SystemBoard::parse(&json))
                }
                Err(error) => fail(&format!("a parsed system board cannot be written: {error}")),
            }
        }
        Err(error) => assert_error_text(&error),
    }
});
