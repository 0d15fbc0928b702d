//! An extra feed in the fixture ImageBuilder's `repositories.conf` is used as the real
//! ImageBuilder uses it: `opkg update` downloads its `Packages.gz` over HTTP, checks
//! `Packages.sig` against `keys/<fingerprint>` under `option check_signature`, and says so in
//! opkg's own words when either fails (`libopkg/opkg_cmd.c`,
//! <https://git.openwrt.org/?p=project/opkg-lede.git>); the package only that feed has is then
//! missing, as `Cannot install package`.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail the test by panicking"
)]

use std::fs;
use std::path::Path;

use attendant_e2e::MirrorServer;
use attendant_e2e::harness::{MakeOutput, run_make, unpack_imagebuilder};
use attendant_e2e::mirror::{
    COMMUNITY_PACKAGE, COMMUNITY_VERSION, DEFAULT_SEED, MirrorInfo, shared_fixture,
};
use attendant_proto::api::imagebuilder::{parse_manifest, scan_package_errors};
use attendant_proto::usign::PublicKey;
use tempfile::TempDir;

fn manifest(ib: &Path) -> MakeOutput {
    run_make(
        ib,
        &[
            "manifest",
            "PROFILE=generic",
            &format!("PACKAGES={COMMUNITY_PACKAGE}"),
            "STRIP_ABI=1",
        ],
        &[],
    )
    .unwrap()
}

fn use_feed(ib: &Path, pristine: &str, url: &str) {
    fs::write(
        ib.join("repositories.conf"),
        format!("{pristine}src/gz community {url}\n"),
    )
    .unwrap();
}

#[test]
fn an_extra_feed_is_downloaded_and_its_signature_checked_like_opkg_does() {
    let mirror = shared_fixture(DEFAULT_SEED).unwrap();
    let server = MirrorServer::start(&mirror.root).unwrap();
    let dir = TempDir::new().unwrap();
    let ib = unpack_imagebuilder(&mirror, "24.10.5", "x86/64", dir.path()).unwrap();
    let pristine = fs::read_to_string(ib.join("repositories.conf")).unwrap();
    assert!(
        pristine.contains("\noption check_signature\n"),
        "{pristine}"
    );
    let feed = format!(
        "{}/{}",
        server.url(),
        MirrorInfo::community_feed("24.10.5", "x86_64")
    );
    use_feed(&ib, &pristine, &feed);

    // No key for the feed in keys/: opkg drops the list, so the package is unknown.
    let unsigned = manifest(&ib);
    assert_eq!(unsigned.status, 2, "{unsigned}");
    assert!(
        unsigned.stderr.starts_with(&format!(
            "Downloading {feed}/Packages.gz\nUpdated list of available packages in {}\n\
             Downloading {feed}/Packages.sig\nSignature check failed.\nRemove wrong Signature file.\n",
            ib.join("dl/community").display()
        )),
        "{unsigned}"
    );
    assert_eq!(
        scan_package_errors(&unsigned.stderr).to_string(),
        format!("Impossible package selection: missing ({COMMUNITY_PACKAGE})")
    );

    // The feed's key under its fingerprint, as the server writes it: the package installs.
    let key = PublicKey::parse(&fs::read(&mirror.community_public_key).unwrap()).unwrap();
    fs::write(
        ib.join("keys").join(key.fingerprint().to_string()),
        key.to_file(),
    )
    .unwrap();
    let signed = manifest(&ib);
    assert_eq!(signed.status, 0, "{signed}");
    let packages = parse_manifest(&signed.stdout).unwrap();
    assert_eq!(
        packages.get(COMMUNITY_PACKAGE).map(String::as_str),
        Some(COMMUNITY_VERSION),
        "{signed}"
    );
    assert!(
        packages.contains_key("libc"),
        "its dependency from the release feeds"
    );
    assert_eq!(
        server.requests(&format!(
            "/{}/Packages.gz",
            MirrorInfo::community_feed("24.10.5", "x86_64")
        )),
        3,
        "the fixture keeps no lists between its commands: each downloads them again"
    );

    // A feed nobody answers for: opkg's download failure, then the package is missing.
    drop(server);
    let unreachable = manifest(&ib);
    assert_eq!(unreachable.status, 2, "{unreachable}");
    assert!(
        unreachable.stderr.starts_with(&format!(
            "Downloading {feed}/Packages.gz\n\
             *** Failed to download the package list from {feed}/Packages.gz\n\n\
             Collected errors:\n * opkg_download: Failed to download {feed}/Packages.gz, wget returned 4.\n"
        )),
        "{unreachable}"
    );
    assert!(
        unreachable
            .stderr
            .contains(&format!("Cannot install package {COMMUNITY_PACKAGE}.")),
        "{unreachable}"
    );
}
