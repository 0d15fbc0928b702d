//! The agent's commands against a fake router root and a fake upgrade server.

mod util;

use std::process::Command;
use std::time::Duration;

use util::*;

#[test]
fn check_reports_an_upgrade_to_the_newest_release_of_the_branch() {
    let server = upgrade_server(Offer::new(image(&[BOARD], "1.0")));
    let router = Router::new(&server.url);
    let output = router.run(&["check"]);
    assert_exit(&output, 3);
    let out = stdout(&output);
    assert!(
        out.contains("Version-to:   24.10.6 (r28959-29397011cc)"),
        "{out}"
    );
    assert!(out.contains("An upgrade to 24.10.6 is available"), "{out}");
    assert!(out.contains("luci"), "{out}");
}

#[test]
fn check_json_ends_with_one_result_line() {
    let server = upgrade_server(Offer::new(image(&[BOARD], "1.0")));
    let router = Router::new(&server.url);
    let output = router.run(&["check", "--json"]);
    assert_exit(&output, 3);
    let out = stdout(&output);
    let last: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "result");
    assert_eq!(last["command"], "check");
    assert_eq!(last["exit_code"], 3);
    assert_eq!(last["data"]["verdict"], "upgrade_available");
    assert_eq!(last["data"]["profile"], PROFILE);
    assert_eq!(last["data"]["request"]["version"], "24.10.6");
}

#[test]
fn an_unknown_package_is_reported_before_any_build() {
    let server = upgrade_server(Offer::new(image(&[BOARD], "1.0")));
    let router = Router::new(&server.url);
    let output = router.run(&["upgrade", "--add", "no-such-package"]);
    assert_exit(&output, 4);
    assert_stderr_has(
        &output,
        "package `no-such-package` is not in the 24.10.6 index for `ath79/generic`",
    );
    assert!(server.requests().iter().all(|r| r.method != "POST"));
    assert!(router.sysupgrade_calls().is_empty());
}

#[test]
fn a_downgrade_is_refused_without_force() {
    let mut offer = Offer::new(image(&[BOARD], "1.0"));
    offer.index.insert("luci".into(), "24.000.1~aaaaaaa".into());
    let server = upgrade_server(offer);
    let router = Router::new(&server.url);
    let output = router.run(&["check"]);
    assert_exit(&output, 4);
    assert_stderr_has(&output, "package `luci` would go down");
    let forced = router.run(&["check", "--force"]);
    assert_exit(&forced, 3);
}

#[test]
fn blob_prints_the_build_request() {
    let server = upgrade_server(Offer::new(image(&[BOARD], "1.0")));
    let router = Router::new(&server.url);
    let output = router.run(&["blob", "--rev-code", "none"]);
    assert_exit(&output, 0);
    let request: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(request["profile"], PROFILE);
    assert_eq!(request["target"], "ath79/generic");
    assert_eq!(request["version_code"], "");
    assert_eq!(request["diff_packages"], true);
    assert_eq!(request["filesystem"], "squashfs");
    assert_eq!(request["packages_versions"]["luci"], "25.074.50000~b2c3d4e");
}

#[test]
fn list_prints_top_level_packages_in_each_format() {
    let server = upgrade_server(Offer::new(image(&[BOARD], "1.0")));
    let router = Router::new(&server.url);
    let top: Vec<String> = top_level().into_keys().collect();
    let output = router.run(&["list", "--format", "fs-all"]);
    assert_exit(&output, 0);
    assert_eq!(stdout(&output).trim(), top.join(" "));
    let output = router.run(&["list", "--format", "config"]);
    assert_exit(&output, 0);
    assert!(stdout(&output).contains("CONFIG_PACKAGE_luci=y\n"));
    let output = router.run(&["list"]);
    assert_exit(&output, 0);
    let user = stdout(&output);
    let words: Vec<&str> = user.split_whitespace().collect();
    // fs-user: the user's own top-level packages (luci is not a default of the profile), never
    // a default such as base-files; `-name` for a default that is not installed.
    assert!(words.contains(&"luci"), "{user}");
    assert!(!words.contains(&"base-files"), "{user}");
    assert!(
        words
            .iter()
            .all(|w| w.starts_with('-') || top.iter().any(|t| t == w)),
        "{user}"
    );
    let output = router.run(&["list", "--format", "bogus"]);
    assert_exit(&output, 2);
}

#[test]
fn dump_prints_the_facts_as_json() {
    let router = Router::new("http://127.0.0.1:9");
    let output = router.run(&["dump"]);
    assert_exit(&output, 0);
    let dump: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(dump["device"]["board_name"], BOARD);
    assert_eq!(dump["device"]["rootfs_type"], "squashfs");
    assert_eq!(dump["settings"]["require_signature"], true);
    assert_eq!(dump["packages"]["top_level"]["luci"], top_level()["luci"]);
}

#[test]
fn versions_lists_the_offer() {
    let server = upgrade_server(Offer::new(image(&[BOARD], "1.0")));
    let router = Router::new(&server.url);
    let output = router.run(&["versions"]);
    assert_exit(&output, 0);
    assert!(
        stdout(&output).contains("  24.10.6  (latest)"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn branches_without_this_target_are_hidden_and_refused_early() {
    let server = upgrade_server(Offer::new(image(&[BOARD], "1.0")));
    let router = Router::new(&server.url);
    let output = router.run(&["versions"]);
    assert_exit(&output, 0);
    assert!(!stdout(&output).contains("21.02"), "{}", stdout(&output));
    let verbose = router.run(&["versions", "-v"]);
    assert_stderr_has(
        &verbose,
        "hidden: 21.02 (builds no firmware for target `ath79/generic`)",
    );
    let json = router.run(&["versions", "--json"]);
    assert!(
        stdout(&json).contains(r#""hidden":[{"name":"21.02","reason":"builds no firmware for target `ath79/generic`"}]"#),
        "{}",
        stdout(&json)
    );
    let refused = router.run(&["check", "--version-to", "21.02"]);
    assert_exit(&refused, 4);
    assert_stderr_has(
        &refused,
        "branch `21.02` builds no firmware for target `ath79/generic`; branches that do: 24.10, 25.12, SNAPSHOT",
    );
    assert!(
        !server
            .requests()
            .iter()
            .any(|seen| seen.path.contains("21.02")),
        "nothing was asked of the server for the hidden branch"
    );
}

#[test]
fn an_init_script_is_refused_before_building_when_the_server_says_it_takes_none() {
    let server = upgrade_server(Offer::new(image(&[BOARD], "1.0")));
    let router = Router::new(&server.url);
    let script = router.path().join("defaults.sh");
    std::fs::write(&script, "uci set system.@system[0].hostname=lab\n").unwrap();
    // The fixture overview says `"allow_defaults": false`, as sysupgrade.openwrt.org does.
    let refused = router.run(&["check", "--init-script", script.to_str().unwrap()]);
    assert_exit(&refused, 4);
    assert_stderr_has(
        &refused,
        "the server does not accept init scripts (`allow_defaults` is off in its overview.json)",
    );
    assert!(
        !server.requests().iter().any(|seen| seen.method == "POST"),
        "nothing was built"
    );
}

#[test]
fn a_malformed_index_entry_is_skipped_with_a_warning() {
    let server = upgrade_server(Offer::new(image(&[BOARD], "1.0")));
    let router = Router::new(&server.url);
    let output = router.run(&["check"]);
    assert_exit(&output, 3);
    assert_stderr_has(
        &output,
        "packages/mips_24kc-index.json` has entries without a version string, skipped: null",
    );
}

#[test]
fn upgrade_keeps_settings_and_flashes_after_the_test() {
    let server = upgrade_server(Offer::new(image(&[BOARD], "1.0")));
    let router = Router::new(&server.url);
    let output = router.run(&["upgrade"]);
    assert_exit(&output, 0);
    let firmware = router.path().join("tmp/firmware.bin");
    assert_eq!(
        router.sysupgrade_calls(),
        [
            format!("--test {}", firmware.display()),
            firmware.display().to_string()
        ]
    );
    assert!(stdout(&output).contains("the router is rebooting"));
    let status = router.run(&["status", "--json"]);
    let last: serde_json::Value =
        serde_json::from_str(stdout(&status).lines().last().unwrap()).unwrap();
    assert_eq!(last["data"]["stage"], "installing");
    assert_eq!(last["data"]["request_hash"], REQUEST_HASH);
}

#[test]
fn no_keep_settings_passes_n() {
    let server = upgrade_server(Offer::new(image(&[BOARD], "1.0")));
    let router = Router::new(&server.url);
    let output = router.run(&["upgrade", "--no-keep-settings"]);
    assert_exit(&output, 0);
    let firmware = router.path().join("tmp/firmware.bin");
    assert_eq!(
        router.sysupgrade_calls(),
        [
            format!("--test -n {}", firmware.display()),
            format!("-n {}", firmware.display())
        ]
    );
}

#[test]
fn dry_run_stops_after_sysupgrade_test() {
    let server = upgrade_server(Offer::new(image(&[BOARD], "1.0")));
    let router = Router::new(&server.url);
    let output = router.run(&["upgrade", "--dry-run"]);
    assert_exit(&output, 0);
    assert_eq!(router.sysupgrade_calls().len(), 1);
}

#[test]
fn a_download_cut_halfway_resumes_with_a_range_request() {
    let picture = image(&[BOARD], "1.0");
    let mut offer = Offer::new(picture.clone());
    offer.cut_first_download = Some(picture.len() / 2);
    let server = upgrade_server(offer);
    let router = Router::new(&server.url);
    let output = router.run(&["download"]);
    assert_exit(&output, 0);
    assert_eq!(
        std::fs::read(router.path().join("tmp/firmware.bin")).unwrap(),
        picture
    );
    let ranges = server.image_ranges();
    assert_eq!(ranges.len(), 2, "{ranges:?}");
    assert_eq!(ranges[0], None);
    assert!(
        ranges[1].as_deref().unwrap().starts_with("bytes="),
        "{ranges:?}"
    );
    assert!(router.sysupgrade_calls().is_empty());
    let verify = router.run(&["verify"]);
    assert_exit(&verify, 0);
}

#[test]
fn a_stalled_download_breaks_off_after_the_timeout_and_resumes() {
    let picture = image(&[BOARD], "1.0");
    let mut offer = Offer::new(picture.clone());
    // Without a read timeout the agent would wait out the stall and get the whole image in one
    // request; the assertion on the range request then fails.
    offer.stall_first_download = Some((picture.len() / 3, Duration::from_secs(30)));
    let server = upgrade_server(offer);
    let router = Router::new(&server.url);
    router.write(
        "etc/config/attendedsysupgrade",
        format!(
            "config server 'server'\n\toption url '{}'\n\nconfig attendant 'attendant'\n\
             \toption require_signature '1'\n\toption poll_interval '500'\n\toption timeout '1'\n",
            server.url
        )
        .as_bytes(),
    );
    let output = router.run(&["download"]);
    assert_exit(&output, 0);
    assert_stderr_has(
        &output,
        &format!("the download broke off at {} bytes", picture.len() / 3),
    );
    assert_eq!(
        std::fs::read(router.path().join("tmp/firmware.bin")).unwrap(),
        picture
    );
    let ranges = server.image_ranges();
    assert_eq!(
        ranges,
        [None, Some(format!("bytes={}-", picture.len() / 3))],
        "{ranges:?}"
    );
}

fn refused(offer: Offer, expected: &str) -> Router {
    let server = upgrade_server(offer);
    let router = Router::new(&server.url);
    let output = router.run(&["upgrade"]);
    assert_exit(&output, 6);
    assert!(stderr(&output).contains(expected), "{}", stderr(&output));
    assert!(router.sysupgrade_calls().is_empty(), "sysupgrade ran");
    router
}

#[test]
fn a_wrong_sha256_never_reaches_sysupgrade() {
    let mut offer = Offer::new(image(&[BOARD], "1.0"));
    offer.promised_sha256 = Some("0".repeat(64));
    let _ = refused(offer, "but the server promised");
}

#[test]
fn a_corrupted_download_never_reaches_sysupgrade() {
    let good = image(&[BOARD], "1.0");
    let mut offer = Offer::new(good.clone());
    offer.promised_sha256 = Some(sha256(&good));
    offer.image[1000] ^= 0xff;
    let router = refused(offer, "the download is corrupt or was tampered with");
    // Wrong bytes are not kept for a resume: the next run downloads afresh.
    assert!(!router.path().join("tmp/firmware.bin").exists());
}

#[test]
fn status_clear_removes_a_damaged_state_file() {
    let router = Router::new("http://127.0.0.1:9");
    router.write(
        "var/run/attendant/state.json",
        b"{\"format\":1,\"stage\":\"bogus\"",
    );
    assert_exit(&router.run(&["status"]), 1);
    let output = router.run(&["status", "--clear"]);
    assert_exit(&output, 0);
    assert!(!router.path().join("var/run/attendant/state.json").exists());
    assert_exit(&router.run(&["status"]), 0);
}

#[test]
fn a_forged_signature_never_reaches_sysupgrade() {
    let picture = image(&[BOARD], "1.0");
    let mut offer = Offer::new(picture.clone());
    let forger = attendant_proto::usign::SecretKey::generate(
        [6; 32],
        attendant_proto::usign::Fingerprint([0xab; 8]),
        [1; 16],
        None,
    )
    .unwrap();
    offer.signature = Some(forger.sign(&picture).to_file());
    let _ = refused(offer, "does not verify");
}

#[test]
fn a_missing_signature_is_refused_when_required() {
    let mut offer = Offer::new(image(&[BOARD], "1.0"));
    offer.signature = None;
    let _ = refused(
        offer,
        "is not signed, and the configuration requires a signature",
    );
}

#[test]
fn an_image_for_another_board_never_reaches_sysupgrade() {
    let _ = refused(
        Offer::new(image(&["tplink,archer-c6-v2"], "1.0")),
        "device `tplink,archer-c7-v5` not supported by this image",
    );
}

#[test]
fn a_compat_version_major_change_never_reaches_sysupgrade() {
    let _ = refused(
        Offer::new(image(&[BOARD], "2.0")),
        "cannot be installed on this device",
    );
}

#[test]
fn a_failing_sysupgrade_test_stops_the_install() {
    let server = upgrade_server(Offer::new(image(&[BOARD], "1.0")));
    let router = Router::new(&server.url);
    router.sysupgrade(1);
    let output = router.run(&["upgrade"]);
    assert_exit(&output, 6);
    assert_stderr_has(&output, "image check failed");
    assert_eq!(router.sysupgrade_calls().len(), 1);
}

#[test]
fn usage_errors_exit_2() {
    let router = Router::new("http://127.0.0.1:9");
    assert_exit(&router.run(&["check", "--rev-code", "latest"]), 2);
    assert_exit(&router.run(&["check", "--bogus"]), 2);
    assert_exit(&router.run(&["check", "--server", "ftp://x"]), 2);
}

#[test]
fn an_unreachable_server_is_a_server_error() {
    let router = Router::new("http://127.0.0.1:9");
    let output = router.run(&["versions"]);
    assert_exit(&output, 5);
    assert_stderr_has(
        &output,
        "cannot reach `http://127.0.0.1:9/json/v1/overview.json`",
    );
}

#[test]
fn an_interrupted_upgrade_follows_its_build_instead_of_posting_again() {
    let mut offer = Offer::new(image(&[BOARD], "1.0"));
    offer.lose_first_download = true;
    let server = upgrade_server(offer);
    let router = Router::new(&server.url);
    let first = router.run(&["upgrade"]);
    assert_exit(&first, 5);
    let status = router.run(&["status"]);
    assert!(
        stdout(&status).contains(REQUEST_HASH),
        "{}",
        stdout(&status)
    );
    let second = router.run(&["upgrade"]);
    assert_exit(&second, 0);
    assert_stderr_has(&second, &format!("resuming the build `{REQUEST_HASH}`"));
    let posts = server
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(posts, 1);
    assert_eq!(router.sysupgrade_calls().len(), 2);
}

#[test]
fn upgrade_json_prints_progress_events_then_the_result() {
    let server = upgrade_server(Offer::new(image(&[BOARD], "1.0")));
    let router = Router::new(&server.url);
    let output = router.run(&["upgrade", "--json", "--dry-run"]);
    assert_exit(&output, 0);
    let lines: Vec<serde_json::Value> = stdout(&output)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let events: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert!(events.contains(&"build"), "{events:?}");
    assert!(events.contains(&"download"), "{events:?}");
    assert_eq!(events.last(), Some(&"result"));
    // The fetch pipeline's steps, each once and in order.
    let steps: Vec<&str> = lines
        .iter()
        .filter(|l| l["event"] == "step")
        .map(|l| l["step"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["build", "download", "verify"]);
    let result = lines.last().unwrap();
    assert_eq!(result["data"]["rebooting"], false);
    assert_eq!(
        result["data"]["verification"]["signed_by"],
        "abababababababab"
    );
}

/// A server offering 25.12.2 for the fixture's board: the 24.10.6 profiles with 25.12's
/// package manager among the defaults (`apk-mbedtls` for `opkg`) and a 25.12 revision, and an
/// index with every installed package plus `apk-mbedtls`.
#[expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a test fixture: a failure should panic with the value"
)]
fn server_offering_25_12() -> Server {
    let url = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let url_in_handler = url.clone();
    let server = Server::start(move |seen, _| {
        let upstream = url_in_handler.lock().unwrap().clone();
        match (seen.method.as_str(), seen.path.as_str()) {
            ("GET", "/json/v1/overview.json") => {
                let mut overview: serde_json::Value = serde_json::from_slice(include_bytes!(
                    "../../proto/testdata/asu/overview.json"
                ))
                .unwrap();
                overview["upstream_url"] = upstream.into();
                Reply::json(200, &overview)
            }
            ("GET", "/releases/25.12.2/targets/ath79/generic/profiles.json") => {
                let mut profiles: serde_json::Value = serde_json::from_slice(include_bytes!(
                    "../../proto/testdata/upstream/profiles-24.10.6-ath79-generic.json"
                ))
                .unwrap();
                for name in profiles["default_packages"].as_array_mut().unwrap() {
                    if name == "opkg" {
                        *name = "apk-mbedtls".into();
                    }
                }
                profiles["version_code"] = "r32395-1a2b3c4d5e".into();
                profiles["version_number"] = "25.12.2".into();
                Reply::json(200, &profiles)
            }
            ("GET", "/json/v1/releases/25.12.2/packages/mips_24kc-index.json") => {
                let mut index = installed();
                index.insert("apk-mbedtls".into(), "3.0.5-r1".into());
                Reply::json(
                    200,
                    &serde_json::json!({"architecture": "mips_24kc", "packages": index}),
                )
            }
            _ => Reply::json(404, &serde_json::json!({"detail": "Not Found"})),
        }
    });
    *url.lock().unwrap() = server.url.clone();
    server
}

#[test]
fn a_default_reached_through_a_package_rename_is_not_reported_missing() {
    let server = server_offering_25_12();
    let router = Router::new(&server.url);
    let output = router.run(&["check", "--version-to", "25.12", "--json"]);
    assert_exit(&output, 3);
    let out = stdout(&output);
    let result: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let data = &result["data"];
    assert_eq!(data["target"]["version"], "25.12.2");
    let renamed = data["package_changes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["source"] == "opkg" && c["target"] == "apk-mbedtls");
    assert!(renamed, "{data:#}");
    assert!(
        data["request"]["packages_versions"]
            .get("apk-mbedtls")
            .is_some(),
        "{data:#}"
    );
    assert!(
        !data["missing_defaults"]
            .as_array()
            .unwrap()
            .contains(&"apk-mbedtls".into()),
        "{data:#}"
    );
    let warnings: Vec<&str> = data["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert!(
        warnings.iter().all(|w| !w.contains("apk-mbedtls")),
        "{warnings:#?}"
    );
    // The default `nftables` is installed as `nftables-json` (`Provides: nftables`), as on
    // every real 24.10 router: no warning.
    assert!(
        warnings.iter().all(|w| !w.contains("nftables")),
        "{warnings:#?}"
    );
}

#[test]
fn an_added_default_is_not_reported_missing() {
    let server = upgrade_server(Offer::new(image(&[BOARD], "1.0")));
    let router = Router::new(&server.url);
    // The user removed the default `urngd`.
    let status = String::from_utf8_lossy(include_bytes!(
        "../../proto/testdata/opkg/status-24.10-ath79"
    ))
    .into_owned();
    let without: Vec<&str> = status
        .split("\n\n")
        .filter(|stanza| !stanza.starts_with("Package: urngd\n"))
        .collect();
    router.write("usr/lib/opkg/status", without.join("\n\n").as_bytes());
    let before = router.run(&["check"]);
    assert_exit(&before, 3);
    assert_stderr_has(
        &before,
        "warning: default package `urngd` is not installed and will not be in the image\n\nhint: add it with `--add urngd`, or silence this with `--ignored-defaults urngd`",
    );
    let added = router.run(&["check", "--add", "urngd"]);
    assert_exit(&added, 3);
    assert!(
        !stderr(&added).contains("default package `urngd`"),
        "{}",
        stderr(&added)
    );
}

#[test]
fn an_option_before_the_command_is_shown_where_it_goes() {
    let output = Command::new(env!("CARGO_BIN_EXE_attendant"))
        .args(["--root", "/tmp", "check"])
        .output()
        .unwrap();
    assert_exit(&output, 2);
    assert_stderr_has(
        &output,
        "hint: options follow the command: `attendant check --root ...`",
    );
}

#[test]
fn a_web_page_instead_of_a_server_names_what_came() {
    let site = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(site.path().join("json/v1")).unwrap();
    std::fs::write(
        site.path().join("json/v1/overview.json"),
        "<!DOCTYPE html>\n<html><head><title>Router login</title></head></html>\n",
    )
    .unwrap();
    let server = attendant_e2e::MirrorServer::start(site.path()).unwrap();
    let router = Router::new(&server.url());
    let output = router.run(&["check"]);
    assert_exit(&output, 5);
    assert_stderr_has(
        &output,
        "overview.json` is not JSON: an HTML page titled `Router login`",
    );
}

#[test]
fn an_image_path_in_a_missing_directory_is_refused_before_any_build() {
    let server = upgrade_server(Offer::new(image(&[BOARD], "1.0")));
    let router = Router::new(&server.url);
    let output = router.run(&["download", "--image", "/no-such-dir/firmware.bin"]);
    assert_exit(&output, 2);
    assert_stderr_has(&output, "no-such-dir` of the image path does not exist");
    assert!(
        server.requests().iter().all(|r| r.method != "POST"),
        "nothing may be built"
    );
}

#[test]
fn rev_code_none_shows_that_any_revision_is_built() {
    let server = upgrade_server(Offer::new(image(&[BOARD], "1.0")));
    let router = Router::new(&server.url);
    let output = router.run(&["check", "--rev-code", "none"]);
    assert!(
        stdout(&output).contains("Version-to:   24.10.6 (any revision)"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn an_older_revision_of_the_installed_version_is_a_downgrade() {
    let server = upgrade_server(Offer::new(image(&[BOARD], "1.0")));
    let router = Router::new(&server.url);
    // The router runs a newer build of 24.10.6 than the server offers (the server is behind).
    router.write(
        "usr/lib/os-release",
        b"NAME=\"OpenWrt\"\nVERSION=\"24.10.6\"\nID=\"openwrt\"\nBUILD_ID=\"r99999-0123456789\"\n\
          OPENWRT_BOARD=\"ath79/generic\"\nOPENWRT_ARCH=\"mips_24kc\"\n\
          OPENWRT_RELEASE=\"OpenWrt 24.10.6 r99999-0123456789\"\n",
    );
    let output = router.run(&["check"]);
    assert_exit(&output, 4);
    assert_stderr_has(
        &output,
        "is older than the installed r99999-0123456789; the server is behind",
    );
    let forced = router.run(&["check", "--force"]);
    assert_exit(&forced, 3);
    assert_stderr_has(&forced, "the server is behind");
}

#[test]
fn install_after_download_needs_no_server_and_keeps_the_signature() {
    let server = upgrade_server(Offer::new(image(&[BOARD], "1.0")));
    let router = Router::new(&server.url);
    assert_exit(&router.run(&["download"]), 0);
    assert!(router.path().join("tmp/firmware.bin.sig").is_file());
    // The server is gone (a port nothing listens on); the signature kept beside the image
    // still proves it, and `require_signature` is on.
    let offline = router.path().join("etc/config/attendedsysupgrade");
    let config = std::fs::read_to_string(&offline)
        .unwrap()
        .replace(&server.url, "http://127.0.0.1:9");
    std::fs::write(&offline, config).unwrap();
    let before = server.requests().len();
    let output = router.run(&["install", "--json"]);
    assert_exit(&output, 0);
    assert_eq!(router.sysupgrade_calls().len(), 2, "--test, then the flash");
    assert_eq!(server.requests().len(), before);
}

#[test]
fn an_emptied_package_database_blocks_before_any_build() {
    let server = upgrade_server(Offer::new(image(&[BOARD], "1.0")));
    let router = Router::new(&server.url);
    // A full overlay can leave opkg's status file empty; building from it would drop every
    // default package from the image.
    router.write("usr/lib/opkg/status", b"");
    let output = router.run(&["upgrade", "--dry-run"]);
    assert_exit(&output, 4);
    assert_stderr_has(
        &output,
        "the package database (/usr/lib/opkg/status) looks damaged",
    );
    assert!(server.requests().iter().all(|r| r.method != "POST"));
    assert!(router.sysupgrade_calls().is_empty());
}

#[test]
fn a_second_run_waits_for_the_one_holding_the_lock() {
    let server = upgrade_server(Offer::new(image(&[BOARD], "1.0")));
    let router = Router::new(&server.url);
    let lock_path = router.path().join("var/run/attendant/lock");
    std::fs::create_dir_all(lock_path.parent().unwrap()).unwrap();
    let held = std::fs::File::create(&lock_path).unwrap();
    held.lock().unwrap();
    let output = router.run(&["download"]);
    assert_exit(&output, 1);
    assert_stderr_has(
        &output,
        "another attendant run is downloading, verifying or installing",
    );
    assert!(!router.path().join("tmp/firmware.bin").exists());
    drop(held);
    assert_exit(&router.run(&["download"]), 0);
}

#[test]
fn a_build_record_that_cannot_be_written_is_named_and_leaves_no_temporary_file() {
    let server = upgrade_server(Offer::new(image(&[BOARD], "1.0")));
    let router = Router::new(&server.url);
    // A directory where the record goes: the rename over it fails, as a full /tmp would.
    std::fs::create_dir_all(router.path().join("tmp/firmware.bin.build.json/x")).unwrap();
    let output = router.run(&["download"]);
    assert_exit(&output, 1);
    assert_stderr_has(&output, "cannot write `");
    assert_stderr_has(&output, "tmp/firmware.bin.build.json`");
    let leftovers: Vec<String> = std::fs::read_dir(router.path().join("tmp"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
