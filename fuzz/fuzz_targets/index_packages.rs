//! `index::parse_packages_detailed` and `index::parse_packages` on an opkg `Packages` file from
//! a feed. Invariants: both accept and refuse the same files; the name → version map holds every
//! stanza's name with the version of its last stanza, and the architecture of the first stanza
//! that is not `all`.
#![no_main]

use std::collections::BTreeMap;

use attendant_fuzz::{assert_error_text, fail};
use attendant_proto::index::{MAX_INDEX_ENTRIES, parse_packages, parse_packages_detailed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let detailed = parse_packages_detailed(data);
    let index = parse_packages(data);
    let (entries, index) = match (detailed, index) {
        (Ok(entries), Ok(index)) => (entries, index),
        (Err(a), Err(b)) => {
            assert_error_text(&a);
            assert_eq!(
                a.to_string(),
                b.to_string(),
                "the two parsers fail differently"
            );
            return;
        }
        (a, b) => fail(&format!("the two parsers disagree: {a:?} vs {b:?}")),
    };
    assert!(entries.len() <= MAX_INDEX_ENTRIES);
    let expected: BTreeMap<String, String> = entries
        .iter()
        .map(|entry| (entry.name.clone(), entry.version.clone()))
        .collect();
    assert_eq!(index.packages, expected);
    let architecture = entries
        .iter()
        .filter_map(|entry| entry.architecture.as_deref())
        .find(|arch| *arch != "all");
    assert_eq!(index.architecture.as_deref(), architecture);
});
