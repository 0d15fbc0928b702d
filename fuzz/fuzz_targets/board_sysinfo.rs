//! `board::parse_board_name`, `board::parse_model` (`/tmp/sysinfo/*`) and
//! `board::rootfs_type_from_mounts` (`/proc/mounts`) on the same input. Invariants: a board name
//! is a non-empty word within `MAX_SYSINFO_VALUE_LEN`; whatever is a board name is also a model,
//! the same string; a root filesystem type is a non-empty word.
#![no_main]

use attendant_fuzz::{assert_error_text, fail};
use attendant_proto::board::{
    MAX_SYSINFO_VALUE_LEN, parse_board_name, parse_model, profile_from_board_name,
    rootfs_type_from_mounts,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let model = parse_model(data);
    match parse_board_name(data) {
        Ok(name) => {
            assert!(
                !name.is_empty() && name.len() <= MAX_SYSINFO_VALUE_LEN,
                "{name:?}"
            );
            assert!(!name.contains(char::is_whitespace), "{name:?}");
            match &model {
                Ok(model) => assert_eq!(model, &name),
                Err(error) => fail(&format!("a board name is not a model: {error}")),
            }
            let _ = profile_from_board_name(&name);
        }
        Err(error) => assert_error_text(&error),
    }
    if let Err(error) = &model {
        assert_error_text(error);
    }
    match rootfs_type_from_mounts(data) {
        Ok(Some(kind)) => {
            assert!(
                !kind.is_empty() && !kind.contains(char::is_whitespace),
                "{kind:?}"
            );
        }
        Ok(None) => {}
        Err(error) => assert_error_text(&error),
    }
});
