//! The generated downloads tree: signed checksums, metadata that parses with
//! `attendant-proto`, renames between releases, and byte-identical output for a seed.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail the test by panicking"
)]

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use attendant_e2e::catalog::Catalog;
use attendant_e2e::mirror::{DEFAULT_SEED, generate, helper_path, shared_fixture};
use attendant_e2e::seed::Seed;
use attendant_proto::index::{parse_index_json, parse_packages};
use attendant_proto::upstream::{parse_feeds_conf, parse_profiles, parse_targets, parse_versions};
use attendant_proto::usign::{PublicKey, Signature};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

/// Every file below `root` (relative path → SHA-256).
fn tree_hashes(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let relative = path.strip_prefix(root).unwrap().display().to_string();
                out.insert(
                    relative,
                    hex::encode(Sha256::digest(fs::read(&path).unwrap())),
                );
            }
        }
    }
    out
}

#[test]
fn every_sha256sums_is_signed_and_verifies_with_proto_and_signify() {
    let mirror = shared_fixture(DEFAULT_SEED).unwrap();
    let key = PublicKey::parse(&fs::read(&mirror.public_key).unwrap()).unwrap();
    assert_eq!(key.fingerprint().to_string(), mirror.fingerprint);
    for version in &mirror.versions {
        for target in &mirror.targets {
            let dir = mirror.target_dir(version, target);
            let sums = fs::read(dir.join("sha256sums")).unwrap();
            let signature =
                Signature::parse(&fs::read(dir.join("sha256sums.sig")).unwrap()).unwrap();
            key.verify(&sums, &signature).unwrap();
            let mut tampered = sums.clone();
            tampered.push(b'\n');
            assert!(key.verify(&tampered, &signature).is_err());
            let status = Command::new("signify-openbsd")
                .arg("-V")
                .arg("-q")
                .arg("-p")
                .arg(&mirror.public_key)
                .arg("-x")
                .arg(dir.join("sha256sums.sig"))
                .arg("-m")
                .arg(dir.join("sha256sums"))
                .status()
                .unwrap();
            assert!(status.success(), "signify rejects {}", dir.display());
        }
    }
}

#[test]
fn sha256sums_list_the_imagebuilder_and_match_every_file() {
    let mirror = shared_fixture(DEFAULT_SEED).unwrap();
    for (version, target, extension) in [
        ("24.10.4", "ath79/generic", "tar.xz"),
        ("25.12.1", "x86/64", "tar.zst"),
        ("SNAPSHOT", "mediatek/filogic", "tar.zst"),
    ] {
        let dir = mirror.target_dir(version, target);
        let text = fs::read_to_string(dir.join("sha256sums")).unwrap();
        let mut archive = false;
        for line in text.lines() {
            let (hash, name) = line.split_once(" *").unwrap();
            let actual = hex::encode(Sha256::digest(fs::read(dir.join(name)).unwrap()));
            assert_eq!(hash, actual, "{name}");
            archive |= name.starts_with("openwrt-imagebuilder-") && name.ends_with(extension);
        }
        assert!(
            archive,
            "{version} {target}: no ImageBuilder archive in sha256sums"
        );
        assert!(text.contains(" *profiles.json\n"));
    }
}

#[test]
fn upstream_metadata_parses_with_proto() {
    let mirror = shared_fixture(DEFAULT_SEED).unwrap();
    let versions = parse_versions(&fs::read(mirror.root.join(".versions.json")).unwrap()).unwrap();
    assert_eq!(versions.stable_version, "25.12.1");
    assert_eq!(versions.oldstable_version, "24.10.5");
    assert_eq!(versions.versions_list, ["25.12.1", "24.10.5", "24.10.4"]);
    for version in &mirror.versions {
        let release = mirror
            .root
            .join(attendant_e2e::imagebuilder::release_path(version));
        let targets = parse_targets(&fs::read(release.join(".targets.json")).unwrap()).unwrap();
        assert_eq!(targets["ath79/generic"], "mips_24kc");
        assert_eq!(targets["x86/64"], "x86_64");
        for (target, arch) in &targets {
            let dir = mirror.target_dir(version, target);
            let profiles = parse_profiles(&fs::read(dir.join("profiles.json")).unwrap()).unwrap();
            assert_eq!(&profiles.arch_packages, arch);
            assert_eq!(&profiles.version_number, version);
            for (id, profile) in &profiles.profiles {
                for image in &profile.images {
                    assert!(
                        dir.join(&image.name).is_file(),
                        "{version} {id}: {}",
                        image.name
                    );
                }
            }
            let apk = version.starts_with("25.") || version == "SNAPSHOT";
            let core =
                parse_index_json(&fs::read(dir.join("packages/index.json")).unwrap()).unwrap();
            assert_eq!(core.version, if apk { 2 } else { 1 });
            assert_eq!(core.index.architecture.as_deref(), Some(arch.as_str()));
            assert!(core.index.packages.contains_key("base-files"));
            let kmods = match &profiles.linux_kernel {
                Some(kernel) => dir.join("kmods").join(kernel.kmods_dir()),
                None => {
                    assert!(!apk, "{version}: apk releases publish linux_kernel");
                    fs::read_dir(dir.join("kmods"))
                        .unwrap()
                        .next()
                        .unwrap()
                        .unwrap()
                        .path()
                }
            };
            let kmod_index =
                parse_index_json(&fs::read(kmods.join("index.json")).unwrap()).unwrap();
            assert!(
                kmod_index
                    .index
                    .packages
                    .keys()
                    .all(|name| name.starts_with("kmod-"))
            );
            let arch_dir = release.join("packages").join(arch);
            let feeds = parse_feeds_conf(&fs::read(arch_dir.join("feeds.conf")).unwrap()).unwrap();
            assert_eq!(feeds, ["base", "packages", "luci", "routing", "telephony"]);
            let base =
                parse_index_json(&fs::read(arch_dir.join("base/index.json")).unwrap()).unwrap();
            if apk {
                assert!(
                    base.index.packages.contains_key("libubox"),
                    "v2 names are ABI-free"
                );
            } else {
                assert!(
                    base.index.packages.contains_key("libubox20240329"),
                    "v1 names keep the ABI"
                );
                let packages =
                    parse_packages(&fs::read(arch_dir.join("base/Packages")).unwrap()).unwrap();
                assert!(
                    packages.packages.contains_key("libubox"),
                    "`Packages` names lose the ABI"
                );
                assert_eq!(packages.architecture.as_deref(), Some(arch.as_str()));
            }
        }
    }
}

#[test]
fn renamed_and_dropped_packages_differ_between_releases() {
    let mirror = shared_fixture(DEFAULT_SEED).unwrap();
    let names = |version: &str, feed: &str| {
        let path = mirror
            .root
            .join(attendant_e2e::imagebuilder::release_path(version))
            .join("packages/mips_24kc")
            .join(feed)
            .join("index.json");
        let index = parse_index_json(&fs::read(path).unwrap()).unwrap();
        index.index.packages.into_keys().collect::<Vec<_>>()
    };
    let old_base = names("24.10.5", "base");
    let new_base = names("25.12.1", "base");
    // `auc` and `luci-app-opkg` were gone before 24.10 branched (its `package_changes` rename
    // them), so only `opkg` → `apk-mbedtls` and the px5g drop separate the two releases.
    assert!(!old_base.contains(&"auc".to_owned()) && !new_base.contains(&"auc".to_owned()));
    assert!(old_base.contains(&"owut".to_owned()) && new_base.contains(&"owut".to_owned()));
    assert!(old_base.contains(&"opkg".to_owned()) && !new_base.contains(&"opkg".to_owned()));
    assert!(
        old_base.contains(&"px5g-wolfssl".to_owned())
            && !new_base.contains(&"px5g-wolfssl".to_owned())
    );
    for version in ["24.10.5", "25.12.1"] {
        let luci = names(version, "luci");
        assert!(
            luci.contains(&"luci-app-package-manager".to_owned()),
            "{version}"
        );
        assert!(!luci.contains(&"luci-app-opkg".to_owned()), "{version}");
    }
}

#[test]
fn same_seed_gives_identical_bytes() {
    let shared = shared_fixture(DEFAULT_SEED).unwrap();
    let fresh = TempDir::new().unwrap();
    let info = generate(fresh.path(), DEFAULT_SEED, &helper_path().unwrap()).unwrap();
    let (a, b) = (tree_hashes(&shared.root), tree_hashes(&info.root));
    assert_eq!(a.len(), b.len());
    let differing: Vec<&String> = a.keys().filter(|k| a.get(*k) != b.get(*k)).collect();
    assert!(differing.is_empty(), "files differ: {differing:?}");
    assert_eq!(
        fs::read(&shared.public_key).unwrap(),
        fs::read(&info.public_key).unwrap()
    );
}

#[test]
fn another_seed_changes_revisions_but_not_the_structure() {
    let (one, two) = (Catalog::new(Seed(1)), Catalog::new(Seed(2)));
    for (a, b) in one.releases.iter().zip(&two.releases) {
        assert_eq!(a.version, b.version);
        assert_ne!(a.revision, b.revision);
        assert_eq!(a.revision.split('-').next(), b.revision.split('-').next());
    }
}

/// `.overview.json` lists exactly the profiles of every target's `profiles.json`, with the same
/// titles, in the shape the firmware selector reads (`profiles[].{id, target, titles}`).
#[test]
fn every_release_has_the_firmware_selectors_overview() {
    let mirror = shared_fixture(DEFAULT_SEED).unwrap();
    for version in &mirror.versions {
        let release = mirror
            .root
            .join(attendant_e2e::imagebuilder::release_path(version));
        let overview: serde_json::Value =
            serde_json::from_slice(&fs::read(release.join(".overview.json")).unwrap()).unwrap();
        assert_eq!(overview["release"], version.as_str());
        let mut listed = BTreeMap::new();
        for profile in overview["profiles"].as_array().unwrap() {
            let key = format!(
                "{}:{}",
                profile["target"].as_str().unwrap(),
                profile["id"].as_str().unwrap()
            );
            listed.insert(key, profile["titles"].clone());
        }
        let mut expected = BTreeMap::new();
        let targets = parse_targets(&fs::read(release.join(".targets.json")).unwrap()).unwrap();
        for target in targets.keys() {
            let text = fs::read(mirror.target_dir(version, target).join("profiles.json")).unwrap();
            let profiles: serde_json::Value = serde_json::from_slice(&text).unwrap();
            for (id, profile) in profiles["profiles"].as_object().unwrap() {
                expected.insert(format!("{target}:{id}"), profile["titles"].clone());
            }
        }
        assert!(!expected.is_empty());
        assert_eq!(listed, expected, "{version}");
    }
}
