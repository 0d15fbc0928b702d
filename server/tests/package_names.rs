//! Package names between a request and a build, end to end over HTTP against the fixture mirror
//! and ImageBuilders: ABI-versioned libraries on apk releases, and ASU's per-release package
//! fixups (ASU's `apply_package_changes`, <https://github.com/openwrt/asu/blob/main/asu/package_changes.py>).
//!
//! A separate test binary on the end-to-end harness (`e2e/support.rs`), so these tests do not
//! touch the shared `e2e` module list.

#[cfg(test)]
#[path = "e2e/fixture.rs"]
#[expect(
    dead_code,
    reason = "the harness's own module; `free_port` is not used here"
)]
mod fixture;
#[cfg(test)]
#[path = "e2e/support.rs"]
#[expect(
    dead_code,
    reason = "the shared harness has helpers these tests do not use"
)]
mod support;

use std::collections::BTreeMap;

use attendant_e2e::catalog::Catalog;
use attendant_e2e::seed::Seed;
use attendant_proto::api::manifest_entry;
use serde_json::{Value, json};

#[cfg(test)]
use support::Server;

#[cfg(test)]
/// The fixture's version of `base_name` in `version` for `target`.
fn version_of(server: &Server, version: &str, target: &str, base_name: &str) -> String {
    let catalog = Catalog::new(Seed(server.mirror.seed));
    let release = catalog.release(version).unwrap();
    let target = catalog.target(target).unwrap();
    catalog
        .packages(release, target)
        .into_iter()
        .find(|p| p.base_name == base_name)
        .unwrap()
        .version
}

#[cfg(test)]
fn manifest(done: &Value) -> BTreeMap<String, String> {
    serde_json::from_value(done["manifest"].clone()).unwrap()
}

#[cfg(test)]
fn build_packages(done: &Value) -> Vec<String> {
    serde_json::from_value(done["build_cmd_packages"].clone()).unwrap()
}

#[tokio::test]
async fn pinned_abi_versioned_libraries_build_on_an_apk_release() {
    let server = Server::start(|_| {}).await;
    let libgcc = version_of(&server, "25.12.1", "x86/64", "libgcc");
    let libubox = version_of(&server, "25.12.1", "x86/64", "libubox");
    let tmux = version_of(&server, "25.12.1", "x86/64", "tmux");
    // What owut and our agent send for a router with `libgcc` (a default) and a hand-installed
    // `libubox`: bare names, as rpcd and the v2 index report them.
    let (status, done) = server
        .build(
            &json!({"version": "25.12.1", "target": "x86/64", "profile": "generic",
                       "packages_versions": {"libgcc": libgcc, "libubox": libubox, "tmux": tmux}}),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    let manifest = manifest(&done);
    // The apk ImageBuilder's manifest keeps the ABI suffixes.
    assert_eq!(manifest.get("libgcc1"), Some(&libgcc));
    assert_eq!(manifest.get("libubox20250719"), Some(&libubox));
    assert!(!manifest.contains_key("libgcc"));
    assert_eq!(
        manifest_entry(&manifest, "libubox"),
        Some(("libubox20250719", libubox.as_str()))
    );

    // A pin the build does not meet still fails, naming the library as the request did.
    let stale = version_of(&server, "24.10.5", "x86/64", "libubox");
    let (status, failed) = server
        .build(
            &json!({"version": "25.12.1", "target": "x86/64", "profile": "generic",
                       "packages_versions": {"libubox": stale}}),
        )
        .await;
    assert_eq!(status, 500, "{failed}");
    assert_eq!(
        failed["detail"],
        format!(
            "Error: Impossible package selection: libubox version not as requested: {stale} vs. {libubox}"
        )
    );
}

#[tokio::test]
async fn auc_in_a_24_10_request_is_built_as_owut_under_the_request_hash_as_sent() {
    let server = Server::start(|_| {}).await;
    // 24.10 has no `auc`: without the fixup the package check refuses the request (422).
    let with_auc = json!({"version": "24.10.5", "target": "x86/64", "profile": "generic",
                          "packages": ["auc", "tmux"]});
    let (status, done) = server.build(&with_auc).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(build_packages(&done), ["tmux", "owut"]);
    assert!(manifest(&done).contains_key("owut"));
    assert!(!manifest(&done).contains_key("auc"));
    // The request is echoed as sent.
    assert_eq!(done["request"]["packages"], json!(["auc", "tmux"]));

    // The hash covers the request as sent, not the fixed-up build: asking for `owut` directly is
    // another request, although it builds the same packages.
    let with_owut = json!({"version": "24.10.5", "target": "x86/64", "profile": "generic",
                           "packages": ["tmux", "owut"]});
    let (status, direct) = server.build(&with_owut).await;
    assert_eq!(status, 200, "{direct}");
    assert_ne!(direct["request_hash"], done["request_hash"]);
    assert_eq!(manifest(&direct), manifest(&done));
    // The same request again is the same build.
    let (status, _, again) = server.post(&with_auc).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["request_hash"], done["request_hash"]);
    assert_eq!(server.builds_started(), 2);

    // A pinned `auc` is replaced too; its pin is not held against `owut`.
    let tmux = version_of(&server, "24.10.5", "x86/64", "tmux");
    let (status, pinned) = server
        .build(
            &json!({"version": "24.10.5", "target": "x86/64", "profile": "generic",
                       "packages_versions": {"auc": "0.3.2-r2", "tmux": tmux}}),
        )
        .await;
    assert_eq!(status, 200, "{pinned}");
    assert!(build_packages(&pinned).contains(&"owut".to_owned()));
}

#[tokio::test]
async fn a_24_10_mediatek_build_adds_fitblk_and_25_12_does_not() {
    let server = Server::start(|_| {}).await;
    let request = |version: &str| {
        json!({"version": version, "target": "mediatek/filogic", "profile": "openwrt,one",
               "packages": ["tmux"]})
    };
    let (status, done) = server.build(&request("24.10.5")).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(build_packages(&done), ["tmux", "fitblk"]);
    let (status, done) = server.build(&request("25.12.1")).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(build_packages(&done), ["tmux"]);
}

#[tokio::test]
async fn default_packages_that_are_virtual_names_are_accepted() {
    let server = Server::start(|_| {}).await;
    // 25.12's default `nftables` is a name `nftables-json` provides; apk's index.json lists no
    // provides. owut and LuCI send the whole default list, so the server must not refuse it.
    let (status, done) = server
        .build(
            &json!({"version": "25.12.1", "target": "x86/64", "profile": "generic",
                       "packages": ["nftables", "tmux"]}),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    assert!(manifest(&done).contains_key("nftables-json"), "{done}");

    // A name that is neither in the indexes nor a default is still refused before any build.
    let (status, refused) = server
        .build(
            &json!({"version": "25.12.1", "target": "x86/64", "profile": "generic",
                       "packages": ["nftables", "no-such-package"]}),
        )
        .await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(
        refused["detail"], "Unsupported package(s): no-such-package",
        "{refused}"
    );
}
