//! `api::repository::RepositoryUrl::parse` and `AllowList::admit` on repository URLs from build
//! requests. The input is a URL and an allow-list entry separated by a NUL byte. Invariants:
//! a parsed URL prints as text that parses to the same value; an admitted URL lies under the
//! entry; a URL is always under itself.
#![no_main]

use attendant_fuzz::{assert_error_text, assert_roundtrip, split_once};
use attendant_proto::api::{AllowList, RepositoryUrl};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (url, entry) = split_once(data);
    let (Ok(url), Ok(entry)) = (std::str::from_utf8(url), std::str::from_utf8(entry)) else {
        return;
    };
    let parsed = match RepositoryUrl::parse(url) {
        Ok(parsed) => {
            let written = parsed.to_string();
            assert_roundtrip(
                "repository url",
                &parsed,
                written.as_bytes(),
                RepositoryUrl::parse(&written),
            );
            assert!(parsed.is_under(&parsed), "{parsed} not under itself");
            Some(parsed)
        }
        Err(error) => {
            assert_error_text(&error);
            None
        }
    };
    match AllowList::parse(&[entry]) {
        Ok(list) => match list.admit(url) {
            Ok(admitted) => {
                let prefix = RepositoryUrl::parse(entry).map_err(|e| e.to_string());
                assert_eq!(Some(&admitted), parsed.as_ref());
                assert!(
                    prefix.is_ok_and(|prefix| admitted.is_under(&prefix)),
                    "{admitted} admitted but not under {entry:?}"
                );
            }
            Err(error) => assert_error_text(&error),
        },
        Err((_, error)) => assert_error_text(&error),
    }
});
