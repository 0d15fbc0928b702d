//! Parses every fixture under `testdata/asu/` and `testdata/upstream/` (see the READMEs there)
//! and checks the values a client or the server relies on, plus serialize → parse round trips.

use attendant_proto::api::imagebuilder::{parse_make_info, scan_package_errors};
use attendant_proto::api::response::ErrorBody;
use attendant_proto::api::{
    BadRequest, ImageType, ImagebuilderStatus, ValidationErrors, diff_packages,
    parse_build_response, parse_error_body, parse_overview, parse_status_body,
};
use attendant_proto::index::{parse_index_json, parse_packages, parse_packages_detailed};
use attendant_proto::upstream::{
    ProfileMatch, SourceDateEpoch, Title, parse_feeds_conf, parse_profiles, parse_targets,
    parse_versions,
};

const BUILD_200: &[u8] =
    include_bytes!("../testdata/asu/build-200-24.10.6-ath79-tplink_archer-c7-v5.json");
const BUILD_202: &[u8] = include_bytes!("../testdata/asu/build-202-queued.json");
const BUILD_500: &[u8] = include_bytes!("../testdata/asu/build-500-missing-package.json");
const OVERVIEW: &[u8] = include_bytes!("../testdata/asu/overview.json");
const BRANCHES: &[u8] = include_bytes!("../testdata/asu/branches.json");
const LATEST: &[u8] = include_bytes!("../testdata/asu/latest.json");
const ERROR_400: &[u8] = include_bytes!("../testdata/asu/error-400-unsupported-profile.json");
const ERROR_404: &[u8] = include_bytes!("../testdata/asu/error-404.json");
const ERROR_422: &[u8] = include_bytes!("../testdata/asu/error-422-packages-string.json");
const MAKE_INFO: &str = include_str!("../testdata/asu/make-info-24.10.6-ath79-generic.txt");

const VERSIONS: &[u8] = include_bytes!("../testdata/upstream/versions.json");
const TARGETS: &[u8] = include_bytes!("../testdata/upstream/targets-24.10.6.json");
const PROFILES_X86: &[u8] = include_bytes!("../testdata/upstream/profiles-24.10.6-x86-64.json");
const PROFILES_ATH79: &[u8] =
    include_bytes!("../testdata/upstream/profiles-24.10.6-ath79-generic.json");
const PACKAGES: &[u8] = include_bytes!("../testdata/upstream/Packages-24.10.6-mips_24kc-base");
const INDEX_V1: &[u8] = include_bytes!("../testdata/upstream/index-v1-snapshot-x86_64-base.json");
const INDEX_V2: &[u8] = include_bytes!("../testdata/upstream/index-v2-25.12.2-x86_64-base.json");
const FEEDS_CONF: &[u8] = include_bytes!("../testdata/upstream/feeds.conf");

#[test]
fn build_200_gives_a_client_everything_to_pick_and_verify_an_image() {
    let response = parse_build_response(BUILD_200).unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.detail, "done");
    assert_eq!(response.imagebuilder_status, Some(ImagebuilderStatus::Done));
    assert_eq!(response.bin_dir, response.request_hash.to_string());
    assert_eq!(response.id, "tplink_archer-c7-v5");
    assert_eq!(response.version_code, "r28959-29397011cc");
    let sysupgrade = response
        .images
        .iter()
        .find(|i| i.image_type == ImageType::Sysupgrade && i.filesystem == "squashfs")
        .unwrap();
    assert!(sysupgrade.name.ends_with("-squashfs-sysupgrade.bin"));
    assert_eq!(sysupgrade.sha256.len(), 64);
    assert_eq!(response.manifest["tmux"], "3.4-r1");
    let request = response.request.as_ref().unwrap();
    assert!(request.diff_packages);
    assert_eq!(request.profile, "tplink,archer-c7-v5");
    assert_eq!(
        response.source_date_epoch.as_ref().unwrap().seconds(),
        Some(1_770_155_135)
    );
    assert_eq!(response.linux_kernel.as_ref().unwrap().version, "6.6.119");
    assert_eq!(
        response.titles,
        [Title::Device {
            vendor: "TP-Link".into(),
            model: "Archer C7".into(),
            variant: Some("v5".into())
        }]
    );
    // The unknown `signature` object is kept and written back.
    assert!(response.extra.contains_key("signature"));
}

#[test]
fn build_200_round_trips_without_losing_fields() {
    let original: serde_json::Value = serde_json::from_slice(BUILD_200).unwrap();
    let response = parse_build_response(BUILD_200).unwrap();
    let written = serde_json::to_value(&response).unwrap();
    assert_eq!(written, original);
}

#[test]
fn build_202_and_500_parse_for_polling_clients() {
    let queued = parse_status_body(BUILD_202).unwrap();
    assert_eq!(queued.status, 202);
    assert_eq!(queued.queue_position, Some(2));
    assert_eq!(queued.imagebuilder_status, Some(ImagebuilderStatus::Queued));
    assert_eq!(
        serde_json::to_value(&queued).unwrap(),
        serde_json::from_slice::<serde_json::Value>(BUILD_202).unwrap()
    );

    let failed = parse_status_body(BUILD_500).unwrap();
    assert_eq!(failed.status, 500);
    assert_eq!(failed.imagebuilder_status, Some(ImagebuilderStatus::Failed));
    let errors = scan_package_errors(failed.stderr.as_deref().unwrap());
    assert_eq!(
        format!("Error: {errors}"),
        failed.detail,
        "the scanner reproduces the detail from the captured stderr"
    );
    assert_eq!(
        serde_json::to_value(&failed).unwrap(),
        serde_json::from_slice::<serde_json::Value>(BUILD_500).unwrap()
    );
}

#[test]
fn overview_branches_and_latest_parse_and_round_trip() {
    let overview = parse_overview(OVERVIEW).unwrap();
    assert_eq!(overview.latest, ["25.12.2", "24.10.6"]);
    assert_eq!(overview.upstream_url, "https://downloads.openwrt.org");
    assert_eq!(overview.server.max_custom_rootfs_size_mb, 1024);
    assert_eq!(overview.server.max_defaults_length, 20480);
    let branch = overview.branch_of("24.10.6").unwrap();
    assert_eq!(branch.name, "24.10");
    assert_eq!(branch.branch_off_rev, Some(27990));
    assert_eq!(overview.branches["SNAPSHOT"].branch_off_rev, None);
    let auc = branch
        .package_changes
        .iter()
        .find(|c| c.source == "auc")
        .unwrap();
    assert_eq!(auc.target.as_deref(), Some("owut"));
    assert_eq!(
        serde_json::to_value(&overview).unwrap(),
        serde_json::from_slice::<serde_json::Value>(OVERVIEW).unwrap()
    );

    let branches = attendant_proto::api::parse_branches(BRANCHES).unwrap();
    assert_eq!(branches.len(), 3);
    let latest = attendant_proto::api::parse_latest(LATEST).unwrap();
    assert_eq!(latest.latest, overview.latest);
}

#[test]
fn error_bodies_match_the_constructors() {
    assert_eq!(parse_error_body(ERROR_404).unwrap(), ErrorBody::not_found());
    assert_eq!(
        parse_error_body(ERROR_400).unwrap(),
        ErrorBody::bad_request(&BadRequest::UnsupportedProfile {
            profile: "foo_bar".into()
        })
    );
    let errors: ValidationErrors = serde_json::from_slice(ERROR_422).unwrap();
    assert_eq!(errors.detail[0].msg, "Input should be a valid list");
    let ours = attendant_proto::api::parse_build_request(
        br#"{"version": "24.10.6", "target": "ath79/generic", "profile": "x", "packages": "luci"}"#,
        &attendant_proto::api::RequestLimits::default(),
    )
    .unwrap_err();
    assert_eq!(ours, errors);
}

#[test]
fn make_info_fixture_feeds_diff_packages() {
    let info = parse_make_info(MAKE_INFO).unwrap();
    assert_eq!(info.current_revision, "r28959-29397011cc");
    let profile = info.profile("tplink_archer-c7-v5").unwrap();
    let defaults: std::collections::BTreeSet<String> = info
        .default_packages
        .iter()
        .chain(&profile.packages)
        .cloned()
        .collect();
    let requested: Vec<String> = info
        .default_packages
        .iter()
        .filter(|p| !p.starts_with("ppp"))
        .chain(&profile.packages)
        .cloned()
        .chain(["luci".to_owned(), "tmux".to_owned()])
        .collect();
    let list = diff_packages(&requested, &defaults);
    assert_eq!(list.get(..2).unwrap(), ["-ppp", "-ppp-mod-pppoe"]);
    assert_eq!(list.last().unwrap(), "tmux");
    let unifi = info.profile("ubnt_unifiac-lite").unwrap();
    assert_eq!(
        unifi.supported_devices.as_deref().unwrap(),
        ["ubnt,unifiac-lite", "ubnt,unifi-ac-lite"]
    );
}

#[test]
fn upstream_versions_and_targets_parse() {
    let versions = parse_versions(VERSIONS).unwrap();
    assert_eq!(versions.latest(), ["25.12.2", "24.10.6"]);
    assert_eq!(versions.versions_list.len(), 8);
    let targets = parse_targets(TARGETS).unwrap();
    assert_eq!(targets["ath79/generic"], "mips_24kc");
    assert_eq!(
        serde_json::to_value(&versions).unwrap(),
        serde_json::from_slice::<serde_json::Value>(VERSIONS).unwrap()
    );
}

#[test]
fn x86_profiles_fall_back_to_generic() {
    let profiles = parse_profiles(PROFILES_X86).unwrap();
    assert_eq!(
        profiles.source_date_epoch,
        SourceDateEpoch::Seconds(1_770_155_135)
    );
    assert_eq!(
        profiles.linux_kernel.as_ref().unwrap().kmods_dir(),
        "6.6.119-1-4a1b2e3c8f7d6e5a4b3c2d1e0f9a8b7c"
    );
    let resolved = profiles.resolve_profile("innotek-gmbh-virtualbox").unwrap();
    assert_eq!(resolved.id, "generic");
    assert_eq!(resolved.matched, ProfileMatch::GenericFallback);
    let generic = &profiles.profiles["generic"];
    assert_eq!(generic.titles[0].to_string(), "Generic x86/64");
    assert!(
        generic
            .images
            .iter()
            .any(|i| i.image_type == ImageType::CombinedEfi)
    );
    assert!(
        generic
            .images
            .iter()
            .any(|i| i.image_type == ImageType::Kernel)
    );
}

#[test]
fn ath79_profiles_resolve_board_names_and_keep_unknown_keys() {
    let profiles = parse_profiles(PROFILES_ATH79).unwrap();
    assert_eq!(profiles.source_date_epoch.seconds(), Some(1_770_155_135));
    assert_eq!(
        profiles.resolve_profile("tplink,archer-c7-v5").unwrap().id,
        "tplink_archer-c7-v5"
    );
    let alias = profiles.resolve_profile("ubnt,unifi-ac-lite").unwrap();
    assert_eq!(alias.id, "ubnt_unifiac-lite");
    assert_eq!(alias.matched, ProfileMatch::SupportedDevice);
    let error = profiles.resolve_profile("tplink,archer-c7-v6").unwrap_err();
    assert_eq!(
        BadRequest::from(error).to_string(),
        "Unsupported profile: tplink_archer-c7-v6. The requested profile was either dropped or never existed. Please check the forums for more information."
    );
    assert!(
        profiles
            .extra
            .contains_key("default_packages_note_for_tests")
    );
    assert_eq!(
        serde_json::to_value(&profiles).unwrap(),
        serde_json::from_slice::<serde_json::Value>(PROFILES_ATH79).unwrap()
    );
}

#[test]
fn opkg_packages_fixture_parses() {
    let index = parse_packages(PACKAGES).unwrap();
    assert_eq!(index.architecture.as_deref(), Some("mips_24kc"));
    assert_eq!(index.packages["libubox"], "2024.03.29~eb9bcb64-r1");
    assert_eq!(index.packages.len(), 4);
    let entries = parse_packages_detailed(PACKAGES).unwrap();
    let dnsmasq = entries.iter().find(|e| e.name == "dnsmasq-full").unwrap();
    assert_eq!(dnsmasq.provides[0].name, "dnsmasq");
    assert_eq!(dnsmasq.conflicts[0].name, "dnsmasq");
    assert_eq!(dnsmasq.depends.last().unwrap().len(), 2);
    assert_eq!(dnsmasq.size, Some(302_117));
}

#[test]
fn index_json_versions_are_detected() {
    let v2 = parse_index_json(INDEX_V2).unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(v2.index.architecture.as_deref(), Some("x86_64"));
    assert_eq!(v2.index.packages["libubox"], "2025.07.23~49056d17-r1");
    let v1 = parse_index_json(INDEX_V1).unwrap();
    assert_eq!(v1.version, 1);
    assert!(v1.index.packages.contains_key("libubox20240329"));
}

#[test]
fn feeds_conf_fixture_lists_feed_names() {
    assert_eq!(
        parse_feeds_conf(FEEDS_CONF).unwrap(),
        ["packages", "luci", "routing", "telephony"]
    );
}

#[test]
fn every_proper_prefix_of_json_fixtures_is_rejected() {
    for (name, bytes) in [
        ("build-200", BUILD_200),
        ("overview", OVERVIEW),
        ("profiles", PROFILES_ATH79),
    ] {
        let trimmed = bytes.trim_ascii_end();
        for end in 0..trimmed.len() {
            let prefix = trimmed.get(..end).unwrap();
            let failed = match name {
                "build-200" => parse_build_response(prefix).is_err(),
                "overview" => parse_overview(prefix).is_err(),
                _ => parse_profiles(prefix).is_err(),
            };
            assert!(failed, "{name}: prefix of {end} bytes was accepted");
        }
    }
}
