//! ABI-versioned library names between the agent's request and the build's manifest.
//!
//! The agent asks for the names rpcd reports (`libgcc`, `libustream-mbedtls`), while a build
//! whose manifest keeps ABI suffixes (every apk build: apk's `list --manifest` cannot strip
//! them) calls the same packages `libgcc1` and `libustream-mbedtls20201210`. The fake server
//! here answers like such a build: every requested package is in the manifest at the requested
//! version, ABI-versioned libraries under their database names.

mod util;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use util::*;

/// The database names of the fixture router's ABI-versioned libraries, by reported name.
#[expect(
    clippy::unwrap_used,
    reason = "a test fixture: a failure should panic with the value"
)]
fn abi_names() -> BTreeMap<String, String> {
    attendant_proto::opkg::parse(include_bytes!(
        "../../proto/testdata/opkg/status-24.10-ath79"
    ))
    .unwrap()
    .iter()
    .filter(|package| package.abi_version.is_some())
    .map(|package| (package.name.clone(), package.package.clone()))
    .collect()
}

/// A server offering 24.10.6 whose build names ABI-versioned libraries with their suffix, and
/// with `lost` left out of the manifest.
#[expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a test fixture: a failure should panic with the value"
)]
fn abi_manifest_server(lost: Option<&'static str>) -> Server {
    let image = image(&[BOARD], "1.0");
    let signature = signing_key().sign(&image).to_file();
    let mut index = installed();
    index.insert("luci".into(), "25.074.50000~b2c3d4e".into());
    let request: Arc<Mutex<serde_json::Value>> = Arc::new(Mutex::new(serde_json::Value::Null));
    let url: Arc<Mutex<String>> = Arc::new(Mutex::new(String::new()));
    let url_for_handler = url.clone();
    let renamed = abi_names();
    let server = Server::start(move |seen, _| {
        let build = format!("/api/v1/build/{REQUEST_HASH}");
        let store = format!("/store/{REQUEST_HASH}/{IMAGE_NAME}");
        match (seen.method.as_str(), seen.path.as_str()) {
            ("GET", "/json/v1/overview.json") => {
                let mut overview: serde_json::Value = serde_json::from_slice(include_bytes!(
                    "../../proto/testdata/asu/overview.json"
                ))
                .unwrap();
                overview["upstream_url"] = url_for_handler.lock().unwrap().clone().into();
                Reply::json(200, &overview)
            }
            ("GET", "/releases/24.10.6/targets/ath79/generic/profiles.json") => Reply::bytes(
                200,
                include_bytes!("../../proto/testdata/upstream/profiles-24.10.6-ath79-generic.json")
                    .to_vec(),
            ),
            ("GET", "/json/v1/releases/24.10.6/packages/mips_24kc-index.json") => Reply::json(
                200,
                &serde_json::json!({"architecture": "mips_24kc", "packages": index}),
            ),
            ("POST", "/api/v1/build") => {
                *request.lock().unwrap() = serde_json::from_slice(&seen.body).unwrap();
                Reply::json(
                    202,
                    &serde_json::json!({"status": 202, "detail": "queued",
                        "request_hash": REQUEST_HASH, "queue_position": 0}),
                )
            }
            ("HEAD", path) if path == build => Reply::bytes(200, Vec::new()),
            ("GET", path) if path == build => {
                let request = request.lock().unwrap().clone();
                let mut response: serde_json::Value = serde_json::from_slice(include_bytes!(
                    "../../proto/testdata/asu/build-200-24.10.6-ath79-tplink_archer-c7-v5.json"
                ))
                .unwrap();
                let sha = sha256(&image);
                response["images"] = serde_json::json!([{"filesystem": "squashfs",
                    "name": IMAGE_NAME, "sha256": sha, "sha256_unsigned": sha,
                    "type": "sysupgrade"}]);
                let mut manifest = serde_json::Map::new();
                for (name, version) in request["packages_versions"].as_object().unwrap() {
                    if Some(name.as_str()) != lost {
                        let built = renamed.get(name).unwrap_or(name);
                        manifest.insert(built.clone(), version.clone());
                    }
                }
                response["manifest"] = manifest.into();
                response["request"] = request;
                Reply::json(200, &response)
            }
            ("GET", path) if path == store => ranged(seen, &image),
            ("GET", path) if path == format!("{store}.sig") => {
                Reply::bytes(200, signature.as_bytes().to_vec())
            }
            _ => Reply::json(404, &serde_json::json!({"detail": "Not Found"})),
        }
    });
    *url.lock().unwrap() = server.url.clone();
    server
}

#[test]
fn upgrade_accepts_libraries_built_under_their_abi_versioned_names() {
    let server = abi_manifest_server(None);
    let router = Router::new(&server.url);
    let output = router.run(&["upgrade"]);
    assert_exit(&output, 0);
    assert_eq!(router.sysupgrade_calls().len(), 2);
    // The request named the libraries as rpcd does; the build as the database does.
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(router.path().join("tmp/firmware.bin.build.json")).unwrap(),
    )
    .unwrap();
    let versions = &record["request"]["packages_versions"];
    assert!(versions.get("libgcc").is_some(), "{versions}");
    assert!(versions.get("libustream-mbedtls").is_some(), "{versions}");
    let manifest = &record["response"]["manifest"];
    assert_eq!(manifest["libgcc1"], versions["libgcc"]);
    assert!(manifest.get("libgcc").is_none(), "{manifest}");
}

#[test]
fn a_library_missing_from_the_build_is_still_refused() {
    let server = abi_manifest_server(Some("libustream-mbedtls"));
    let router = Router::new(&server.url);
    let output = router.run(&["upgrade"]);
    assert_exit(&output, 6);
    assert!(
        stderr(&output).contains("package `libustream-mbedtls` is missing from the image"),
        "{}",
        stderr(&output)
    );
    assert!(router.sysupgrade_calls().is_empty());
}
