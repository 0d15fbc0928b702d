//! `api::imagebuilder::parse_manifest` on `make manifest` output (opkg `name - version` or apk
//! `name version`). Invariants: names and versions are non-empty words, and the manifest
//! written back in opkg form parses to the same map.
#![no_main]

use attendant_fuzz::{assert_error_text, assert_roundtrip};
use attendant_proto::api::imagebuilder::{MAX_MANIFEST_BYTES, parse_manifest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_manifest(text) {
        Ok(manifest) => {
            for (name, version) in &manifest {
                assert!(
                    !name.is_empty() && !name.contains(char::is_whitespace),
                    "{name:?}"
                );
                assert!(
                    !version.is_empty() && !version.contains(char::is_whitespace),
                    "{version:?}"
                );
            }
            let written: String = manifest
                .iter()
                .map(|(name, version)| format!("{name} - {version}\n"))
                .collect();
            if written.len() <= MAX_MANIFEST_BYTES {
                let again = parse_manifest(&written);
                assert_roundtrip("manifest", &manifest, written.as_bytes(), again);
            }
        }
        Err(error) => assert_error_text(&error),
    }
});
