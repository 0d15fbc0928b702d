//! `apk::parse_installed` and `apk::parse` on `/lib/apk/db/installed` and `/etc/apk/world`. The
//! input is the installed database, then a NUL byte, then the world file. Invariants: the
//! database parses on its own whenever the pair parses; every package of the database is
//! reported under its ABI-free name; a package is top-level exactly when the world names it (by database or reported
//! name) without `!`; and `attendant_fuzz::assert_installed_consistent`.
#![no_main]

use std::collections::BTreeSet;

use attendant_fuzz::{assert_error_text, assert_installed_consistent, fail, split_once};
use attendant_proto::apk;
use attendant_proto::installed::{PackageManager, strip_abi_suffix};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (installed, world) = split_once(data);
    let database = apk::parse_installed(installed);
    if let Ok(database) = &database {
        let mut previous = 0;
        for package in database {
            assert!(
                package.line > previous,
                "stanza lines not increasing: {package:?}"
            );
            previous = package.line;
        }
    }
    let packages = match apk::parse(installed, world) {
        Ok(packages) => packages,
        Err(error) => {
            assert_error_text(&error);
            return;
        }
    };
    let Ok(database) = database else {
        fail("apk::parse accepted a database that parse_installed refuses");
    };
    let Ok(world) = apk::parse_world(world) else {
        fail("apk::parse accepted a world file that parse_world refuses");
    };
    assert_eq!(packages.manager(), PackageManager::Apk);
    assert_installed_consistent(&packages);
    let requested: BTreeSet<&str> = world
        .iter()
        .filter(|entry| !entry.conflict)
        .map(|entry| entry.name.as_str())
        .collect();
    for package in &database {
        // Two database names may report as one name; the later stanza wins, as in rpcd.
        let reported = match &package.abi_version {
            Some(abi_version) => strip_abi_suffix(&package.name, abi_version),
            None => package.name.as_str(),
        };
        assert!(
            packages.contains(reported),
            "database package not reported: {package:?}"
        );
    }
    for package in packages.iter() {
        let named = requested.contains(package.name.as_str())
            || requested.contains(package.package.as_str());
        assert_eq!(package.top_level, named, "top-level flag of {package:?}");
    }
});
