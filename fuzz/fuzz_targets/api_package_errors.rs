//! `api::imagebuilder::scan_package_errors` and `is_size_error` on ImageBuilder stderr.
//! Invariants: no name is both missing and conflicting, each set holds at most
//! `MAX_PACKAGE_ERROR_NAMES` non-empty names without whitespace, and the ASU error text starts
//! as ASU's does.
#![no_main]

use attendant_proto::api::imagebuilder::{
    MAX_PACKAGE_ERROR_NAMES, is_size_error, scan_package_errors,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let errors = scan_package_errors(&text);
    assert!(errors.missing.is_disjoint(&errors.conflicts), "{errors:?}");
    for set in [&errors.missing, &errors.conflicts] {
        assert!(set.len() <= MAX_PACKAGE_ERROR_NAMES, "{} names", set.len());
        for name in set {
            assert!(
                !name.is_empty() && !name.contains(char::is_whitespace),
                "{name:?}"
            );
        }
    }
    assert_eq!(
        errors.is_empty(),
        errors.missing.is_empty() && errors.conflicts.is_empty()
    );
    assert!(
        errors
            .to_string()
            .starts_with("Impossible package selection")
    );
    let _ = is_size_error(&text);
});
