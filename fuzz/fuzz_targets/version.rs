//! `version::Version::parse`, `version::Branch::parse` and the package version comparisons on
//! version strings from servers and package databases. The input is up to three strings
//! separated by NUL bytes. Invariants:
//! - a parsed release version or branch prints as text that parses to the same value, and a
//!   version belongs to its own branch;
//! - `Version`'s order agrees with its equality;
//! - `compare_opkg` and `compare_apk` are total orders on the strings: reflexive,
//!   antisymmetric and transitive.
#![no_main]

use std::cmp::Ordering;

use attendant_fuzz::{assert_error_text, assert_roundtrip, split_once};
use attendant_proto::version::{Branch, Version, compare_apk, compare_opkg};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (a, rest) = split_once(data);
    let (b, c) = split_once(rest);
    let (Ok(a), Ok(b), Ok(c)) = (
        std::str::from_utf8(a),
        std::str::from_utf8(b),
        std::str::from_utf8(c),
    ) else {
        return;
    };
    let versions: Vec<Version> = [a, b, c].into_iter().filter_map(parse).collect();
    for x in &versions {
        for y in &versions {
            assert_eq!(x.cmp(y) == Ordering::Equal, x == y, "{x} vs {y}");
            assert_eq!(x.cmp(y), y.cmp(x).reverse(), "{x} vs {y}");
        }
    }
    match Branch::parse(a) {
        Ok(branch) => {
            let text = branch.to_string();
            assert_roundtrip("branch", &branch, text.as_bytes(), Branch::parse(&text));
        }
        Err(error) => assert_error_text(&error),
    }
    for compare in [compare_opkg, compare_apk] {
        assert_total_order(compare, a, b, c);
    }
});

fn parse(text: &str) -> Option<Version> {
    match Version::parse(text) {
        Ok(version) => {
            let written = version.to_string();
            assert_roundtrip(
                "version",
                &version,
                written.as_bytes(),
                Version::parse(&written),
            );
            assert!(
                version.branch().contains(&version),
                "{version} not in its branch"
            );
            Some(version)
        }
        Err(error) => {
            assert_error_text(&error);
            None
        }
    }
}

fn assert_total_order(compare: fn(&str, &str) -> Ordering, a: &str, b: &str, c: &str) {
    for x in [a, b, c] {
        assert_eq!(compare(x, x), Ordering::Equal, "{x:?} vs itself");
        for y in [a, b, c] {
            assert_eq!(compare(x, y), compare(y, x).reverse(), "{x:?} vs {y:?}");
        }
    }
    for (x, y, z) in [
        (a, b, c),
        (a, c, b),
        (b, a, c),
        (b, c, a),
        (c, a, b),
        (c, b, a),
    ] {
        if compare(x, y) != Ordering::Greater && compare(y, z) != Ordering::Greater {
            assert_ne!(compare(x, z), Ordering::Greater, "{x:?} <= {y:?} <= {z:?}");
        }
    }
}
