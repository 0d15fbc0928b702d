//! The router agent end to end (issue 5 "Must show"): the real `attendant` binary, run as a user
//! runs it over SSH, against the real `attendant-server` building with the fixture mirror and
//! ImageBuilders, on a fake router root (`--root`) with a recording `sysupgrade` first on `PATH`.
//!
//! One fixture mirror (served over HTTP, because the agent reads `profiles.json` from the
//! upstream the server's overview names), one signing server, one unsigned server and one that
//! appends ASU-style ucert signature trailers are shared by every test of this binary; each test has its own router root and its own recording proxy
//! in front of the server. The proxy logs every request the agent makes (method, path, `Range`)
//! and injects the faults the refusal tests need: a cut transfer, a flipped byte, a wrong
//! promised SHA-256, a forged signature, a forged or foreign signature trailer, a build for
//! another profile. Tests whose builds would
//! otherwise be shared use distinct package sets, so no fault leaks into another test's cache.
//!
//! Fixture-only facts (revisions, the fixture's package versions, the server key made here) are
//! used throughout: these tests need the fixture mirror and ignore `ATTENDANT_TEST_UPSTREAM`,
//! because a real upstream needs a real ImageBuilder (tests/README.md).
//!
//! One file of about 1,000 lines on purpose: the first half is the tests, the second the
//! harness only they use (the shared servers, the `Router` wrapper around a root and the agent
//! binary, the recording proxy). Each file under `tests/` is its own test binary, and the
//! servers, the fixture mirror and the builds in the result cache are shared per binary, so
//! splitting the tests across files would start every server and redo every build once per file.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "a test harness: a failure should panic with the value"
)]

use std::collections::BTreeMap;
use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use attendant_e2e::catalog::Catalog;
use attendant_e2e::http_request::{self, Request};
use attendant_e2e::mirror::{DEFAULT_SEED, MirrorInfo};
use attendant_e2e::process::{self, assert_exit, last_json, stderr, stdout};
use attendant_e2e::process_dir::ProcessDir;
use attendant_e2e::router::{RouterSpec, write_root};
use attendant_e2e::seed::Seed;
use attendant_e2e::workspace;
use attendant_e2e::{MirrorServer, router::InstalledPackage};
use attendant_proto::api::manifest_entry;
use attendant_proto::usign::{Fingerprint, SecretKey};
use attendant_server::config::Config;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Exit codes of `attendant` (agent/src/exit.rs).
const UPGRADE_AVAILABLE: i32 = 3;
const BLOCKED: i32 = 4;
const VERIFICATION: i32 = 6;

/// The fixture's x86 machine and the packages its user added.
const X86_BOARD: &str = "qemu-standard-pc-q35-ich9-2009";
const ARCHER_BOARD: &str = "tplink,archer-c7-v5";
const USER_PACKAGES: [&str; 3] = ["tmux", "luci-app-sqm", "htop"];

// ---------------------------------------------------------------------------------------------
// Scenarios: 24.10.4 → 24.10.5, 24.10 → 25.12, flags.

#[test]
fn check_reports_the_point_release_and_upgrade_keeps_every_user_package() {
    let router = Router::new(archer_spec("24.10.4", &USER_PACKAGES), Signing::Signed);
    let proxy = router.proxy(Fault::None);

    let check = router.run(&proxy, &["check"]);
    assert_exit(&check, UPGRADE_AVAILABLE);
    let out = stdout(&check);
    let revision = revision("24.10.5");
    assert!(
        out.contains(&format!("Version-to:   24.10.5 ({revision})")),
        "{out}"
    );
    assert!(out.contains("An upgrade to 24.10.5 is available"), "{out}");
    assert!(proxy.posts().is_empty(), "check must not build");

    let upgrade = router.run(&proxy, &["upgrade"]);
    assert_exit(&upgrade, 0);
    assert!(
        stdout(&upgrade).contains("the router is rebooting"),
        "{}",
        stdout(&upgrade)
    );
    let firmware = router.firmware();
    assert_eq!(
        router.sysupgrade_calls(),
        [
            format!("--test {}", firmware.display()),
            firmware.display().to_string()
        ],
        "sysupgrade runs --test first, then flashes keeping the settings"
    );

    let record = router.build_record();
    let response = &record["response"];
    assert_eq!(response["version_number"], "24.10.5");
    assert_eq!(response["version_code"], revision.as_str());
    for name in USER_PACKAGES {
        assert!(
            server_requested(response, name),
            "`{name}` was not in the build request the server recorded: {}",
            response["request"]
        );
        assert!(
            response["manifest"].get(name).is_some(),
            "`{name}` is not in the manifest"
        );
    }
    // The server's signature was checked with the key the router trusts.
    assert_eq!(record["image"]["type"], "sysupgrade");
    let verified = router.run(&proxy, &["verify", "--json"]);
    assert_exit(&verified, 0);
    let result = last_json(&verified);
    assert_eq!(
        result["data"]["signed_by"],
        shared().signed.fingerprint.as_str(),
        "{result}"
    );
    assert_eq!(
        sha256_file(&firmware),
        record["image"]["sha256"].as_str().unwrap()
    );
}

#[test]
fn an_x86_router_upgrades_to_the_point_release_with_a_combined_image() {
    let router = Router::new(x86_spec("24.10.4", &USER_PACKAGES), Signing::Signed);
    let proxy = router.proxy(Fault::None);

    let upgrade = router.run(&proxy, &["upgrade"]);
    assert_exit(&upgrade, 0);
    let firmware = router.firmware();
    assert_eq!(
        router.sysupgrade_calls(),
        [
            format!("--test {}", firmware.display()),
            firmware.display().to_string()
        ]
    );
    let record = router.build_record();
    assert_eq!(record["response"]["version_number"], "24.10.5");
    // x86 flashes the whole disk image; its name says which one.
    let image = record["image"]["name"].as_str().unwrap();
    assert!(
        image.ends_with("-combined.img.gz") || image.ends_with("-combined-efi.img.gz"),
        "{image}"
    );
    for name in USER_PACKAGES {
        assert!(
            record["response"]["manifest"].get(name).is_some(),
            "`{name}` is not in the manifest"
        );
    }
}

#[test]
fn a_major_release_upgrade_moves_from_opkg_to_apk_and_keeps_abi_versioned_libraries() {
    // `libubox` is a library the user installed by hand: opkg calls it `libubox20240329`, the
    // 25.12 apk build `libubox20250719` (an ABI bump), and the request, the index and the
    // agent call it `libubox`. `libgcc` is a top-level default with the same split (`libgcc1`).
    let spec = archer_spec("24.10.5", &["tmux", "libubox"]);
    let router = Router::new(spec, Signing::Signed);
    let proxy = router.proxy(Fault::None);
    let abi_libraries: Vec<String> = router
        .installed
        .iter()
        .filter(|p| p.top_level && p.abi_version.is_some())
        .map(|p| p.name.clone())
        .collect();
    for name in ["libgcc", "libubox", "libustream-mbedtls"] {
        assert!(abi_libraries.iter().any(|l| l == name), "{abi_libraries:?}");
    }

    let to_25 = ["--version-to", "25.12.1"];
    let check = router.run(&proxy, &[&["check"][..], &to_25].concat());
    assert_exit(&check, UPGRADE_AVAILABLE);
    let out = stdout(&check);
    assert!(
        out.contains("renamed:      opkg -> apk-mbedtls"),
        "missing the opkg rename:\n{out}"
    );
    // 24.10 had neither `auc` nor `luci-app-opkg`, so the 25.12 branch's renames of them do
    // not apply to this router.
    assert!(!out.contains("auc ->"), "{out}");
    assert!(!out.contains("luci-app-opkg ->"), "{out}");

    let upgrade = router.run(&proxy, &[&["upgrade"][..], &to_25].concat());
    assert_exit(&upgrade, 0);
    assert_eq!(router.sysupgrade_calls().len(), 2);
    let record = router.build_record();
    let response = &record["response"];
    assert_eq!(response["version_number"], "25.12.1");
    assert_eq!(record["image"]["type"], "sysupgrade");
    let manifest: BTreeMap<String, String> =
        serde_json::from_value(response["manifest"].clone()).unwrap();
    for name in ["apk-mbedtls", "tmux", "libubox", "libgcc"] {
        assert!(server_requested(response, name), "`{name}` not requested");
        assert!(
            manifest_entry(&manifest, name).is_some(),
            "`{name}` not built"
        );
    }
    // The apk build names the libraries with their (new) ABI suffix; the request pinned the
    // bare names at the versions the manifest has.
    let versions = &response["request"]["packages_versions"];
    for (name, built) in [("libubox", "libubox20250719"), ("libgcc", "libgcc1")] {
        assert_eq!(
            versions[name].as_str(),
            manifest.get(built).map(String::as_str),
            "{name}"
        );
    }
    assert!(
        !server_requested(response, "opkg"),
        "`opkg` still requested"
    );
    assert!(manifest_entry(&manifest, "opkg").is_none(), "`opkg` built");
}

#[test]
fn no_keep_settings_passes_n_and_force_flash_passes_capital_f() {
    let router = Router::new(archer_spec("24.10.4", &["tmux"]), Signing::Signed);
    let proxy = router.proxy(Fault::None);
    let firmware = router.firmware();

    let upgrade = router.run(&proxy, &["upgrade", "--no-keep-settings"]);
    assert_exit(&upgrade, 0);
    assert_eq!(
        router.sysupgrade_calls(),
        [
            format!("--test -n {}", firmware.display()),
            format!("-n {}", firmware.display())
        ]
    );

    router.clear_sysupgrade_log();
    let upgrade = router.run(&proxy, &["upgrade", "--force-flash"]);
    assert_exit(&upgrade, 0);
    assert_eq!(
        router.sysupgrade_calls(),
        [
            format!("--test -F {}", firmware.display()),
            format!("-F {}", firmware.display())
        ]
    );
}

#[test]
fn a_package_downgrade_is_refused_without_force_and_built_with_it() {
    let router = Router::new(archer_spec("24.10.4", &["tmux", "nano"]), Signing::Signed);
    router.set_installed_version("tmux", "9.9-r1");
    let proxy = router.proxy(Fault::None);

    let refused = router.run(&proxy, &["upgrade"]);
    assert_exit(&refused, BLOCKED);
    let err = stderr(&refused);
    assert!(
        err.contains("package `tmux` would go down from `9.9-r1` to `3.5a-r1`"),
        "{err}"
    );
    assert!(err.contains("`--force` builds anyway"), "{err}");
    assert!(proxy.posts().is_empty(), "a blocked upgrade must not build");
    assert!(router.sysupgrade_calls().is_empty());

    let forced = router.run(&proxy, &["upgrade", "--force"]);
    assert_exit(&forced, 0);
    assert!(
        stderr(&forced).contains("--force: package `tmux` goes down"),
        "{}",
        stderr(&forced)
    );
    assert_eq!(proxy.posts().len(), 1);
    assert_eq!(router.sysupgrade_calls().len(), 2);
    assert_eq!(
        router.build_record()["response"]["manifest"]["tmux"],
        "3.5a-r1"
    );
}

#[test]
fn an_unknown_package_is_reported_before_anything_is_built() {
    let router = Router::new(x86_spec("24.10.4", &["tmux"]), Signing::Signed);
    let proxy = router.proxy(Fault::None);
    let output = router.run(&proxy, &["upgrade", "--add", "does-not-exist"]);
    assert_exit(&output, BLOCKED);
    let err = stderr(&output);
    assert!(
        err.contains("package `does-not-exist` is not in the 24.10.5 index for `x86/64`"),
        "{err}"
    );
    assert!(err.contains("--remove does-not-exist"), "{err}");
    assert!(
        proxy.posts().is_empty(),
        "the server saw a build request: {:?}",
        proxy.seen()
    );
    assert!(
        proxy.seen().iter().all(|r| !r.path.starts_with("/store/")),
        "nothing may be downloaded"
    );
    assert!(router.sysupgrade_calls().is_empty());
}

#[test]
fn clean_slate_requests_the_provider_of_a_virtual_default() {
    // 24.10's default `nftables` is a virtual package (`nftables-json` provides it): no index
    // lists it; requested, it blocked the check and was then missed in the manifest.
    let router = Router::new(archer_spec("24.10.4", &["tmux"]), Signing::Signed);
    let proxy = router.proxy(Fault::None);
    let output = router.run(&proxy, &["blob", "--clean-slate"]);
    assert_exit(&output, 0);
    let request: Value = serde_json::from_str(&stdout(&output)).unwrap();
    let packages: Vec<&str> = request["packages_versions"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert!(packages.contains(&"firewall4"), "{request}");
    assert!(!packages.contains(&"tmux"), "{request}");
    assert!(!packages.contains(&"nftables"), "{request}");
    assert!(packages.contains(&"nftables-json"), "{request}");
    let output = router.run(&proxy, &["upgrade", "--clean-slate"]);
    assert_exit(&output, 0);
    assert_eq!(proxy.posts().len(), 1);
    assert_eq!(router.sysupgrade_calls().len(), 2);
}

#[test]
fn list_fs_user_names_only_what_the_user_added_to_the_defaults() {
    let router = Router::new(archer_spec("24.10.4", &["tmux", "nano"]), Signing::Signed);
    let proxy = router.proxy(Fault::None);
    let output = router.run(&proxy, &["list"]);
    assert_exit(&output, 0);
    assert_eq!(stdout(&output).trim(), "nano tmux");
    let output = router.run(&proxy, &["list", "--format", "fs-all"]);
    assert_exit(&output, 0);
    let all = stdout(&output);
    assert!(all.split_whitespace().any(|p| p == "base-files"), "{all}");
    assert!(all.split_whitespace().any(|p| p == "tmux"), "{all}");
}

#[test]
fn an_installed_dependency_the_index_lacks_does_not_make_an_upgrade() {
    let router = Router::new(archer_spec("24.10.5", &["tmux"]), Signing::Signed);
    let mut installed = router.installed.clone();
    let mut orphan = installed
        .iter()
        .find(|p| !p.top_level && p.abi_version.is_none())
        .unwrap()
        .clone();
    orphan.package = "libmylocal".to_owned();
    orphan.name = "libmylocal".to_owned();
    installed.push(orphan);
    router.write(
        "usr/lib/opkg/status",
        &attendant_e2e::router::opkg_status(&installed),
    );
    let proxy = router.proxy(Fault::None);
    let output = router.run(&proxy, &["check"]);
    assert_exit(&output, 0);
    assert!(
        stdout(&output).contains("no changes"),
        "{}",
        stdout(&output)
    );
}

// ---------------------------------------------------------------------------------------------
// Refusals that never reach sysupgrade.

/// Runs `upgrade` through `fault` and checks it ends in a verification failure naming `cause`
/// with sysupgrade never run.
fn refused(router: &Router, fault: Fault, cause: &str) -> String {
    let proxy = router.proxy(fault);
    let output = router.run(&proxy, &["upgrade"]);
    assert_exit(&output, VERIFICATION);
    let err = stderr(&output);
    assert!(err.contains(cause), "expected `{cause}` in:\n{err}");
    assert!(
        router.sysupgrade_calls().is_empty(),
        "sysupgrade ran: {:?}",
        router.sysupgrade_calls()
    );
    assert_eq!(proxy.posts().len(), 1, "the image was built once");
    err
}

#[test]
fn a_download_corrupted_in_transit_never_reaches_sysupgrade() {
    let router = Router::new(x86_spec("24.10.4", &["wireguard-tools"]), Signing::Signed);
    let err = refused(
        &router,
        Fault::FlipImageByte(100),
        "the download is corrupt or was tampered with",
    );
    assert!(err.contains("but the server promised"), "{err}");
}

#[test]
fn a_wrong_promised_sha256_never_reaches_sysupgrade() {
    let router = Router::new(x86_spec("24.10.4", &["tcpdump"]), Signing::Signed);
    let err = refused(&router, Fault::WrongSha256, "but the server promised `0000");
    assert!(
        err.contains("the download is corrupt or was tampered with"),
        "{err}"
    );
}

#[test]
fn a_forged_signature_never_reaches_sysupgrade() {
    let router = Router::new(x86_spec("24.10.4", &["zram-swap"]), Signing::Signed);
    refused(&router, Fault::ForgedSignature, "does not verify");
}

#[test]
fn an_unsigned_image_is_refused_when_the_config_requires_signatures() {
    let router = Router::new(x86_spec("24.10.4", &["tmux"]), Signing::Unsigned);
    refused(
        &router,
        Fault::None,
        "is not signed, and the configuration requires a signature",
    );
}

#[test]
fn an_image_with_an_asu_style_ucert_trailer_verifies_and_installs() {
    let router = Router::new(archer_spec("24.10.4", &["nano"]), Signing::Trailer);
    let proxy = router.proxy(Fault::None);
    let upgrade = router.run(&proxy, &["upgrade"]);
    assert_exit(&upgrade, 0);
    let firmware = router.firmware();
    assert_eq!(
        router.sysupgrade_calls(),
        [
            format!("--test {}", firmware.display()),
            firmware.display().to_string()
        ]
    );
    // As ASU reports it: both hashes name the image before its signature block.
    let record = router.build_record();
    let image = &record["image"];
    assert_eq!(image["sha256"], image["sha256_unsigned"]);
    assert_ne!(image["sha256"].as_str().unwrap(), sha256_file(&firmware));
    let verified = router.run(&proxy, &["verify", "--json"]);
    assert_exit(&verified, 0);
    let data = &last_json(&verified)["data"];
    assert_eq!(
        data["signed_by"],
        server(Signing::Trailer).fingerprint.as_str()
    );
    assert_eq!(data["sha256_unsigned"], image["sha256"]);
    assert_eq!(
        data["fwtool_blocks"],
        serde_json::json!(["metadata", "signature"])
    );
}

#[test]
fn a_forged_signature_trailer_never_reaches_sysupgrade() {
    let router = Router::new(archer_spec("24.10.4", &["adblock"]), Signing::Trailer);
    refused(
        &router,
        Fault::ForgedTrailer,
        "does not verify: signature of chain element 1 does not verify",
    );
    assert!(!router.firmware().exists(), "the forged image is deleted");
}

#[test]
fn a_signature_trailer_by_a_foreign_key_never_reaches_sysupgrade() {
    let router = Router::new(archer_spec("24.10.4", &["babeld"]), Signing::Trailer);
    refused(
        &router,
        Fault::ForeignTrailer,
        "is signed by key `f0f0f0f0f0f0f0f0`, which is not trusted",
    );
    assert!(!router.firmware().exists(), "the image is deleted");
}

#[test]
fn a_signature_trailer_with_a_wrong_sha256_unsigned_never_reaches_sysupgrade() {
    let router = Router::new(archer_spec("24.10.4", &["sqm-scripts"]), Signing::Trailer);
    refused(
        &router,
        Fault::WrongSha256Unsigned,
        "without its signature block has SHA-256",
    );
}

#[test]
fn an_image_built_for_another_board_never_reaches_sysupgrade() {
    let spec = RouterSpec::new(
        "24.10.4",
        "ath79/generic",
        "tplink_archer-c7-v5",
        "tplink,archer-c7-v5",
    );
    let router = Router::new(spec, Signing::Signed);
    let err = refused(
        &router,
        Fault::BuildProfile("tplink_archer-c7-v2"),
        "device `tplink,archer-c7-v5` not supported by this image",
    );
    assert!(err.contains("`tplink,archer-c7-v2`"), "{err}");
}

#[test]
fn a_compat_version_major_change_never_reaches_sysupgrade_when_keeping_settings() {
    let mut spec = RouterSpec::new(
        "24.10.4",
        "ath79/generic",
        "ubnt_unifiac-lite",
        "ubnt,unifiac-lite",
    );
    spec.compat_version = Some("1.0".to_owned());
    let router = Router::new(spec, Signing::Signed);
    let err = refused(&router, Fault::None, "cannot be installed on this device");
    assert!(err.contains("compat"), "{err}");
    assert!(err.contains("Partition layout has changed"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Resuming.

#[test]
fn a_download_cut_halfway_resumes_with_a_range_request_and_completes() {
    let router = Router::new(archer_spec("24.10.4", &["curl"]), Signing::Signed);
    let proxy = router.proxy(Fault::CutImageAfter(2000));
    let output = router.run(&proxy, &["download"]);
    assert_exit(&output, 0);
    assert!(
        stderr(&output).contains("the download broke off at 2000 bytes"),
        "{}",
        stderr(&output)
    );
    let images: Vec<Seen> = proxy
        .seen()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.starts_with("/store/") && !r.path.ends_with(".sig"))
        .collect();
    assert_eq!(images.len(), 2, "{images:?}");
    assert_eq!(images[0].range, None);
    assert_eq!(images[1].range.as_deref(), Some("bytes=2000-"));
    let record = router.build_record();
    assert_eq!(
        sha256_file(&router.firmware()),
        record["image"]["sha256"].as_str().unwrap()
    );
    assert!(
        router.sysupgrade_calls().is_empty(),
        "download never flashes"
    );
}

// ---------------------------------------------------------------------------------------------
// Harness: shared fixture, servers, router roots, proxy.

fn x86_spec(version: &str, user: &[&str]) -> RouterSpec {
    let mut spec = RouterSpec::new(version, "x86/64", "generic", X86_BOARD);
    spec.model = "QEMU Standard PC (Q35 + ICH9, 2009)".to_owned();
    spec.user_packages = user.iter().map(|s| (*s).to_owned()).collect();
    spec
}

/// A TP-Link Archer C7 v5 on `version` with the user's `user` packages.
fn archer_spec(version: &str, user: &[&str]) -> RouterSpec {
    let mut spec = RouterSpec::new(
        version,
        "ath79/generic",
        "tplink_archer-c7-v5",
        ARCHER_BOARD,
    );
    spec.model = "TP-Link Archer C7 v5".to_owned();
    spec.user_packages = user.iter().map(|s| (*s).to_owned()).collect();
    spec
}

fn revision(version: &str) -> String {
    Catalog::new(Seed(DEFAULT_SEED))
        .release(version)
        .unwrap()
        .revision
        .clone()
}

/// Whether the build request the server recorded names `package`.
fn server_requested(response: &Value, package: &str) -> bool {
    let request = &response["request"];
    request["packages"]
        .as_array()
        .is_some_and(|list| list.iter().any(|p| p == package))
        || request["packages_versions"].get(package).is_some()
}

/// Everything shared by the tests of this binary.
struct Shared {
    mirror: MirrorInfo,
    agent: PathBuf,
    runtime: tokio::runtime::Runtime,
    _upstream: MirrorServer,
    upstream_url: String,
    signed: Server,
    unsigned: OnceLock<Server>,
    trailer: OnceLock<Server>,
}

/// A running `attendant-server`.
struct Server {
    addr: SocketAddr,
    /// The server's public key file and its fingerprint (signing servers).
    public_key: Option<String>,
    fingerprint: String,
    /// The server's secret key file (signing servers), for the faults that forge with it.
    secret_key: Option<PathBuf>,
    _dir: ProcessDir,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Signing {
    Signed,
    Unsigned,
    /// Signed, with the signature also appended as a ucert trailer (`signature_trailer`).
    Trailer,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let mirror = workspace::fixture(DEFAULT_SEED).expect("generate the fixture mirror");
        let agent = workspace::agent().expect("build the agent");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .unwrap();
        let upstream = MirrorServer::start(&mirror.root).unwrap();
        let upstream_url = upstream.url();
        let signed = start_server(&runtime, &mirror, &upstream_url, Signing::Signed);
        Shared {
            mirror,
            agent,
            runtime,
            _upstream: upstream,
            upstream_url,
            signed,
            unsigned: OnceLock::new(),
            trailer: OnceLock::new(),
        }
    })
}

fn server(signing: Signing) -> &'static Server {
    let shared = shared();
    match signing {
        Signing::Signed => &shared.signed,
        Signing::Unsigned | Signing::Trailer => {
            let cell = if signing == Signing::Unsigned {
                &shared.unsigned
            } else {
                &shared.trailer
            };
            cell.get_or_init(|| {
                start_server(
                    &shared.runtime,
                    &shared.mirror,
                    &shared.upstream_url,
                    signing,
                )
            })
        }
    }
}

fn start_server(
    runtime: &tokio::runtime::Runtime,
    mirror: &MirrorInfo,
    upstream_url: &str,
    signing: Signing,
) -> Server {
    // The server lives in a `static` for the whole test process, so its directory is one that
    // the next run removes (a `TempDir` there is never dropped).
    let dir = ProcessDir::new(match signing {
        Signing::Signed => "agent-upgrade-signed",
        Signing::Unsigned => "agent-upgrade-unsigned",
        Signing::Trailer => "agent-upgrade-trailer",
    })
    .unwrap();
    let mut config = Config::default();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.data_dir = dir.path().join("data");
    config.upstream_url = upstream_url.to_owned();
    config.trusted_keys = vec![mirror.public_key.clone()];
    config.workers = 4;
    config.job_lease = Duration::from_secs(5);
    config.job_timeout = Duration::from_secs(120);
    config.shutdown_timeout = Duration::from_secs(5);
    let (public_key, fingerprint) = match signing {
        Signing::Signed | Signing::Trailer => {
            let secret = dir.path().join("key-build");
            let public = attendant_server::signing::generate_key_pair(&secret, None).unwrap();
            config.signing_key = Some(secret);
            config.signature_trailer = signing == Signing::Trailer;
            (Some(public.to_file()), public.fingerprint().to_string())
        }
        Signing::Unsigned => (None, String::new()),
    };
    let secret_key = config.signing_key.clone();
    let running = runtime
        .block_on(attendant_server::service::spawn(config))
        .expect("start the server");
    let addr = running.addr;
    // The server runs on the shared runtime until the test process exits.
    drop(running);
    Server {
        addr,
        public_key,
        fingerprint,
        secret_key,
        _dir: dir,
    }
}

/// A fake router root with a recording `sysupgrade` in `<root>/bin`.
struct Router {
    dir: tempfile::TempDir,
    server: &'static Server,
    installed: Vec<InstalledPackage>,
}

impl Router {
    fn new(spec: RouterSpec, signing: Signing) -> Self {
        let shared = shared();
        let server = server(signing);
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::new(Seed(shared.mirror.seed));
        let installed = write_root(dir.path(), &catalog, &spec).unwrap();
        let router = Self {
            dir,
            server,
            installed,
        };
        router.write(
            "etc/config/attendedsysupgrade",
            &format!(
                "config server 'server'\n\toption url 'http://{}'\n\n\
                 config attendant 'attendant'\n\toption require_signature '1'\n\
                 \toption poll_interval '500'\n",
                server.addr
            ),
        );
        // The router trusts the signing server's key (and, like every router, the release key).
        if let Some(key) = &server.public_key {
            router.write(&format!("etc/opkg/keys/{}", server.fingerprint), key);
        }
        let release_key = std::fs::read_to_string(&shared.mirror.public_key).unwrap();
        router.write(
            &format!("etc/opkg/keys/{}", shared.mirror.fingerprint),
            &release_key,
        );
        attendant_e2e::sysupgrade::install(router.path(), 0).unwrap();
        router
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, relative: &str, contents: &str) {
        let path = self.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }

    /// Rewrites the opkg database with `name` at `version`.
    fn set_installed_version(&self, name: &str, version: &str) {
        let mut installed = self.installed.clone();
        let package = installed.iter_mut().find(|p| p.name == name).unwrap();
        package.version = version.to_owned();
        self.write(
            "usr/lib/opkg/status",
            &attendant_e2e::router::opkg_status(&installed),
        );
    }

    /// A recording proxy in front of this router's server.
    fn proxy(&self, fault: Fault) -> Proxy {
        Proxy::start(self.server.addr, fault)
    }

    fn firmware(&self) -> PathBuf {
        self.path().join("tmp/firmware.bin")
    }

    /// The build record `download` saves beside the image: the request and the server's response.
    fn build_record(&self) -> Value {
        let bytes = std::fs::read(self.path().join("tmp/firmware.bin.build.json")).unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    fn sysupgrade_calls(&self) -> Vec<String> {
        attendant_e2e::sysupgrade::calls(self.path())
    }

    fn clear_sysupgrade_log(&self) {
        attendant_e2e::sysupgrade::clear(self.path());
    }

    /// Runs `attendant <args> --root <root> --server <proxy>` with the stand-in first on `PATH`.
    fn run(&self, proxy: &Proxy, args: &[&str]) -> Output {
        process::on_root(&shared().agent, self.path())
            .args(args)
            .arg("--root")
            .arg(self.path())
            .arg("--server")
            .arg(&proxy.url)
            .output()
            .unwrap()
    }
}

/// What the proxy does to the traffic.
#[derive(Debug, Clone)]
enum Fault {
    None,
    /// Close the connection after this many body bytes of the first image download.
    CutImageAfter(usize),
    /// Flip the image byte at this offset on every download.
    FlipImageByte(usize),
    /// Build responses promise an all-zero SHA-256.
    WrongSha256,
    /// `.sig` files are replaced by a signature of the same image by an untrusted key.
    ForgedSignature,
    /// The image's ucert trailer is replaced by one whose signature, by the server's own key,
    /// covers other bytes (the file keeps its length and its fwtool CRCs).
    ForgedTrailer,
    /// The image's ucert trailer is replaced by a signature of the same bytes by an untrusted
    /// key.
    ForeignTrailer,
    /// Build responses promise an all-zero `sha256_unsigned`.
    WrongSha256Unsigned,
    /// Build requests are rewritten to this profile.
    BuildProfile(&'static str),
}

/// One request the agent made.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    range: Option<String>,
}

/// A recording HTTP proxy on `127.0.0.1:0`: one request per connection, forwarded to the
/// server with `Connection: close`, the answer read whole and passed back (faults applied).
struct Proxy {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

struct ProxyState {
    upstream: SocketAddr,
    fault: Fault,
    seen: Arc<Mutex<Vec<Seen>>>,
    cut_done: Mutex<bool>,
}

impl Proxy {
    fn start(upstream: SocketAddr, fault: Fault) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = Arc::new(ProxyState {
            upstream,
            fault,
            seen: seen.clone(),
            cut_done: Mutex::new(false),
        });
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let state = state.clone();
                std::thread::spawn(move || {
                    let _ = forward(stream, &state);
                });
            }
        });
        Self { url, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn posts(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path == "/api/v1/build")
            .collect()
    }
}

fn forward(client: TcpStream, state: &ProxyState) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let Some(request) = http_request::read(&mut reader)? else {
        return Ok(());
    };
    state.seen.lock().unwrap().push(Seen {
        method: request.method.clone(),
        path: request.path.clone(),
        range: request.header("range").map(str::to_owned),
    });
    let Request {
        method,
        path,
        headers,
        mut body,
    } = request;

    if let Fault::BuildProfile(profile) = state.fault
        && method == "POST"
    {
        let mut request: Value = serde_json::from_slice(&body).unwrap();
        request["profile"] = profile.into();
        body = serde_json::to_vec(&request).unwrap();
    }
    let mut upstream = TcpStream::connect(state.upstream)?;
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    for (name, value) in &headers {
        if !["connection", "content-length"].contains(&name.to_ascii_lowercase().as_str()) {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    upstream.write_all(head.as_bytes())?;
    upstream.write_all(&body)?;
    let mut answer = Vec::new();
    upstream.read_to_end(&mut answer)?;

    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP response head");
    let head_text = String::from_utf8_lossy(&answer[..split]).into_owned();
    let mut lines = head_text.split("\r\n");
    let status_line = lines.next().unwrap_or_default().to_owned();
    let response_headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let raw_body = answer[split + 4..].to_vec();
    let chunked = response_headers.iter().any(|(name, value)| {
        name.eq_ignore_ascii_case("transfer-encoding") && value.eq_ignore_ascii_case("chunked")
    });
    let mut body = if chunked {
        dechunk(&raw_body)
    } else {
        raw_body
    };

    let is_image = method == "GET" && path.starts_with("/store/") && !path.ends_with(".sig");
    let is_signature = method == "GET" && path.starts_with("/store/") && path.ends_with(".sig");
    let is_build = method == "GET" && path.starts_with("/api/v1/build/");
    let status_ok = status_line.contains(" 200") || status_line.contains(" 206");
    let mut cut = None;
    match &state.fault {
        Fault::CutImageAfter(bytes) if is_image => {
            let mut done = state.cut_done.lock().unwrap();
            if !*done {
                *done = true;
                cut = Some(*bytes);
            }
        }
        Fault::FlipImageByte(offset) if is_image && status_ok => {
            if let Some(byte) = body.get_mut(*offset) {
                *byte ^= 0x5a;
            }
        }
        Fault::WrongSha256 if is_build && status_line.contains(" 200") => {
            let mut response: Value = serde_json::from_slice(&body).unwrap();
            for image in response["images"].as_array_mut().unwrap() {
                image["sha256"] = "0".repeat(64).into();
            }
            body = serde_json::to_vec(&response).unwrap();
        }
        Fault::WrongSha256Unsigned if is_build && status_line.contains(" 200") => {
            let mut response: Value = serde_json::from_slice(&body).unwrap();
            for image in response["images"].as_array_mut().unwrap() {
                image["sha256_unsigned"] = "0".repeat(64).into();
            }
            body = serde_json::to_vec(&response).unwrap();
        }
        Fault::ForgedTrailer | Fault::ForeignTrailer if is_image && status_ok => {
            body = replace_trailer(body, matches!(state.fault, Fault::ForgedTrailer));
        }
        Fault::ForgedSignature if is_signature && status_ok => {
            let image_path = path.trim_end_matches(".sig");
            let image = fetch(state.upstream, image_path)?;
            let forger =
                SecretKey::generate([7; 32], Fingerprint([0xf0; 8]), [3; 16], None).unwrap();
            body = forger.sign(&image).to_file().into_bytes();
        }
        _ => {}
    }

    let mut out = format!("{status_line}\r\n");
    for (name, value) in &response_headers {
        let lower = name.to_ascii_lowercase();
        let dropped =
            ["content-length", "transfer-encoding", "connection"].contains(&lower.as_str());
        // A HEAD answer keeps the length of the body it did not send.
        if !dropped || (method == "HEAD" && lower == "content-length") {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    if method != "HEAD" {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("Connection: close\r\n\r\n");
    let mut client = client;
    client.write_all(out.as_bytes())?;
    if method != "HEAD" {
        let end = cut.map_or(body.len(), |cut| cut.min(body.len()));
        client.write_all(&body[..end])?;
    }
    client.flush()?;
    client.shutdown(std::net::Shutdown::Both)
}

/// `image` with its ucert trailer replaced: `forged` signs other bytes with the trailer
/// server's own key, otherwise an untrusted key signs the real bytes.
fn replace_trailer(image: Vec<u8>, forged: bool) -> Vec<u8> {
    use attendant_proto::fwtool::{self, BlockKind};
    use attendant_proto::ucert::{Chain, Element};
    let len = image.len() as u64;
    let tail = &image[image.len().saturating_sub(fwtool::TAIL_LEN)..];
    let layouts = fwtool::parse_tail(tail, len).unwrap();
    let unsigned_len = fwtool::signed_len(&layouts).expect("a signature block") as usize;
    let mut out = image[..unsigned_len].to_vec();
    let signature = if forged {
        let secret = server(Signing::Trailer).secret_key.as_ref().unwrap();
        let key = SecretKey::parse(&std::fs::read(secret).unwrap()).unwrap();
        let mut other = out.clone();
        other[0] ^= 1;
        key.sign(&other)
    } else {
        let forger = SecretKey::generate([7; 32], Fingerprint([0xf0; 8]), [3; 16], None).unwrap();
        forger.sign(&out)
    };
    let chain = Chain::new(vec![Element::final_signature(&signature)]);
    fwtool::append_block(&mut out, BlockKind::Signature, &chain.to_bytes()).unwrap();
    out
}

/// GETs `path` from the server directly (the forger signs the real image).
fn fetch(upstream: SocketAddr, path: &str) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(upstream)?;
    stream.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {upstream}\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&answer[..split]).to_ascii_lowercase();
    let body = answer[split + 4..].to_vec();
    Ok(if head.contains("transfer-encoding: chunked") {
        dechunk(&body)
    } else {
        body
    })
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let Some(end) = raw.windows(2).position(|w| w == b"\r\n") else {
            return body;
        };
        let size_text = String::from_utf8_lossy(&raw[..end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&raw[end + 2..end + 2 + size]);
        raw = &raw[end + 2 + size + 2..];
    }
}

fn sha256_file(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}
