//! `opkg::parse` on `/usr/lib/opkg/status`. Invariants: see
//! `attendant_fuzz::assert_installed_consistent` (limits, token rules, ABI suffix stripping,
//! and the rpcd `packagelist` view surviving `from_packagelist`).
#![no_main]

use attendant_fuzz::{assert_error_text, assert_installed_consistent};
use attendant_proto::installed::PackageManager;
use attendant_proto::opkg;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match opkg::parse(data) {
        Ok(packages) => {
            assert_eq!(packages.manager(), PackageManager::Opkg);
            assert_installed_consistent(&packages);
        }
        Err(error) => assert_error_text(&error),
    }
});
