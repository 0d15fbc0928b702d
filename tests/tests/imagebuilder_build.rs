//! A successful fixture ImageBuilder build: its outputs parse with `attendant-proto` exactly as
//! the server will parse them, and every checksum agrees with `sha256sums`.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail the test by panicking"
)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use attendant_e2e::harness::{MakeOutput, run_make, unpack_imagebuilder};
use attendant_e2e::mirror::{DEFAULT_SEED, shared_fixture};
use attendant_proto::api::imagebuilder::{parse_make_info, parse_manifest};
use attendant_proto::fwtool::{BlockKind, Metadata, read_blocks};
use attendant_proto::upstream::{Profiles, SourceDateEpoch, parse_profiles};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

fn imagebuilder(version: &str, target: &str) -> (TempDir, PathBuf) {
    let mirror = shared_fixture(DEFAULT_SEED).unwrap();
    let dir = TempDir::new().unwrap();
    let top = unpack_imagebuilder(&mirror, version, target, dir.path()).unwrap();
    (dir, top)
}

fn make_ok(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> MakeOutput {
    let output = run_make(dir, args, env).unwrap();
    assert_eq!(output.status, 0, "{output}");
    output
}

fn upstream_profiles(version: &str, target: &str) -> Profiles {
    let mirror = shared_fixture(DEFAULT_SEED).unwrap();
    parse_profiles(&fs::read(mirror.target_dir(version, target).join("profiles.json")).unwrap())
        .unwrap()
}

/// `sha256sums` as name → hash.
fn sums(dir: &Path) -> BTreeMap<String, String> {
    fs::read_to_string(dir.join("sha256sums"))
        .unwrap()
        .lines()
        .map(|line| {
            let (hash, name) = line.split_once(" *").unwrap();
            (name.to_owned(), hash.to_owned())
        })
        .collect()
}

fn sha256(path: &Path) -> String {
    hex::encode(Sha256::digest(fs::read(path).unwrap()))
}

fn metadata(path: &Path) -> Metadata {
    let bytes = fs::read(path).unwrap();
    let blocks = read_blocks(&bytes).unwrap();
    let block = blocks
        .iter()
        .find(|b| b.kind() == BlockKind::Metadata)
        .unwrap();
    Metadata::parse(block.data()).unwrap()
}

#[test]
fn make_info_parses_with_proto_and_matches_upstream() {
    for (version, target) in [
        ("24.10.4", "ath79/generic"),
        ("25.12.1", "x86/64"),
        ("SNAPSHOT", "mediatek/filogic"),
    ] {
        let (_dir, ib) = imagebuilder(version, target);
        let output = make_ok(&ib, &["info"], &[]);
        let info = parse_make_info(&output.stdout).unwrap();
        let upstream = upstream_profiles(version, target);
        assert_eq!(info.current_target.as_deref(), Some(target));
        assert_eq!(info.current_revision, upstream.version_code);
        assert_eq!(info.default_packages, upstream.default_packages);
        let ids: Vec<&str> = info.profiles.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(
            ids,
            upstream
                .profiles
                .keys()
                .map(String::as_str)
                .collect::<Vec<_>>()
        );
        for profile in &info.profiles {
            let expected = &upstream.profiles[&profile.id];
            assert_eq!(profile.packages, expected.device_packages, "{}", profile.id);
            let devices = profile.supported_devices.clone().unwrap_or_default();
            assert_eq!(devices, expected.supported_devices, "{}", profile.id);
            assert!(!profile.title.is_empty());
        }
    }
}

#[test]
fn opkg_build_outputs_parse_and_match_sha256sums() {
    let (dir, ib) = imagebuilder("24.10.4", "ath79/generic");
    let files = dir.path().join("files");
    fs::create_dir_all(files.join("etc/uci-defaults")).unwrap();
    fs::write(
        files.join("etc/uci-defaults/99-asu-defaults"),
        "uci set system.@system[0].hostname=fixture\n",
    )
    .unwrap();
    let bin = dir.path().join("out");
    let packages = "PACKAGES=tmux -ppp -ppp-mod-pppoe luci-app-attendedsysupgrade";
    let manifest = make_ok(
        &ib,
        &[
            "manifest",
            "PROFILE=tplink_archer-c7-v5",
            packages,
            "STRIP_ABI=1",
        ],
        &[],
    );
    let stripped = parse_manifest(&manifest.stdout).unwrap();
    assert!(
        stripped.contains_key("tmux") && stripped.contains_key("libubox"),
        "{manifest}"
    );
    assert!(
        !stripped.contains_key("ppp") && !stripped.contains_key("libubox20240329"),
        "{manifest}"
    );

    let args = [
        "image",
        "PROFILE=tplink_archer-c7-v5",
        packages,
        "EXTRA_IMAGE_NAME=0123456789ab",
        &format!("BIN_DIR={}", bin.display()),
        &format!("FILES={}", files.display()),
    ];
    let output = make_ok(&ib, &args, &[]);
    assert!(
        output
            .stdout
            .contains("Building images for ath79 - TP-Link Archer C7 v5\n"),
        "{output}"
    );

    let profiles = parse_profiles(&fs::read(bin.join("profiles.json")).unwrap()).unwrap();
    let upstream = upstream_profiles("24.10.4", "ath79/generic");
    assert_eq!(profiles.version_code, upstream.version_code);
    assert_eq!(profiles.target, "ath79/generic");
    assert_eq!(profiles.arch_packages, "mips_24kc");
    assert!(
        profiles.linux_kernel.is_none(),
        "24.10 profiles.json has no linux_kernel"
    );
    let profile = &profiles.profiles["tplink_archer-c7-v5"];
    assert_eq!(
        profile.image_prefix,
        "openwrt-24.10.4-0123456789ab-ath79-generic-tplink_archer-c7-v5"
    );
    assert_eq!(profile.supported_devices, ["tplink,archer-c7-v5"]);

    let sums = sums(&bin);
    assert_eq!(profile.images.len(), 3);
    for image in &profile.images {
        let path = bin.join(&image.name);
        assert_eq!(sha256(&path), image.sha256, "{}", image.name);
        assert_eq!(sums[&image.name], image.sha256, "{}", image.name);
    }
    for name in [
        "profiles.json",
        "openwrt-24.10.4-0123456789ab-ath79-generic-tplink_archer-c7-v5.manifest",
    ] {
        assert_eq!(sums[name], sha256(&bin.join(name)), "{name}");
    }

    let manifest_file =
        fs::read_to_string(bin.join(format!("{}.manifest", profile.image_prefix))).unwrap();
    let manifest = parse_manifest(&manifest_file).unwrap();
    assert!(manifest.contains_key("libubox20240329") && manifest.contains_key("tmux"));
    assert_eq!(manifest.len(), stripped.len());

    let sysupgrade = bin.join(format!("{}-squashfs-sysupgrade.bin", profile.image_prefix));
    let meta = metadata(&sysupgrade);
    assert_eq!(
        meta.supported_devices.as_deref(),
        Some(&["tplink,archer-c7-v5".to_owned()][..])
    );
    assert_eq!(meta.compat_version.as_deref(), Some("1.0"));
    assert!(meta.new_supported_devices.is_none());
    let version = meta.version.unwrap();
    assert_eq!(version.version.as_deref(), Some("24.10.4"));
    assert_eq!(
        version.revision.as_deref(),
        Some(profiles.version_code.as_str())
    );
    assert_eq!(version.target.as_deref(), Some("ath79/generic"));
    let bytes = fs::read(&sysupgrade).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains("/etc/uci-defaults/99-asu-defaults"),
        "FILES are listed in the image"
    );
    assert!(
        text.contains("hostname=fixture"),
        "FILES contents are embedded in the image"
    );
    let kernel = bin.join(format!("{}-initramfs-kernel.bin", profile.image_prefix));
    assert!(
        read_blocks(&fs::read(kernel).unwrap()).unwrap().is_empty(),
        "kernel images carry no metadata"
    );
}

#[test]
fn compat_version_2_profile_lists_new_supported_devices() {
    let mirror = shared_fixture(DEFAULT_SEED).unwrap();
    let dir = mirror.target_dir("24.10.5", "ath79/generic");
    let meta = metadata(
        &dir.join("openwrt-24.10.5-ath79-generic-ubnt_unifiac-lite-squashfs-sysupgrade.bin"),
    );
    assert_eq!(meta.compat_version.as_deref(), Some("2.0"));
    assert_eq!(
        meta.new_supported_devices.as_deref(),
        Some(&["ubnt,unifiac-lite".to_owned()][..])
    );
    let devices = meta.supported_devices.unwrap();
    assert_eq!(devices.len(), 1);
    assert!(
        devices[0]
            .starts_with("ubnt,unifiac-lite - Image version mismatch: image 2.0, device 1.0."),
        "{devices:?}"
    );
}

#[test]
fn apk_build_writes_itb_images_and_linux_kernel() {
    let (dir, ib) = imagebuilder("25.12.1", "mediatek/filogic");
    let bin = dir.path().join("out");
    let args = [
        "image",
        "PROFILE=bananapi_bpi-r4",
        "PACKAGES=owut",
        &format!("BIN_DIR={}", bin.display()),
    ];
    make_ok(&ib, &args, &[]);
    let profiles = parse_profiles(&fs::read(bin.join("profiles.json")).unwrap()).unwrap();
    let kernel = profiles
        .linux_kernel
        .clone()
        .expect("25.12 profiles.json has linux_kernel");
    let mirror = shared_fixture(DEFAULT_SEED).unwrap();
    let kmods = mirror
        .target_dir("25.12.1", "mediatek/filogic")
        .join("kmods")
        .join(kernel.kmods_dir());
    assert!(kmods.join("index.json").is_file(), "{}", kmods.display());
    let profile = &profiles.profiles["bananapi_bpi-r4"];
    let sysupgrade = profile
        .images
        .iter()
        .find(|i| i.image_type.as_str() == "sysupgrade")
        .unwrap();
    assert!(
        sysupgrade.name.ends_with("-squashfs-sysupgrade.itb"),
        "{}",
        sysupgrade.name
    );
    assert_eq!(
        metadata(&bin.join(&sysupgrade.name))
            .supported_devices
            .unwrap(),
        ["bananapi,bpi-r4"]
    );
    let sdcard = profile
        .images
        .iter()
        .find(|i| i.image_type.as_str() == "sdcard")
        .unwrap();
    let bytes = fs::read(bin.join(&sdcard.name)).unwrap();
    assert_eq!(
        bytes.get(..2),
        Some(&[0x1f, 0x8b][..]),
        "`.img.gz` images are gzip streams"
    );
    let manifest =
        fs::read_to_string(bin.join(format!("{}.manifest", profile.image_prefix))).unwrap();
    assert!(
        manifest.lines().all(|l| !l.contains(" - ")),
        "apk manifests are `name version`"
    );
    let parsed = parse_manifest(&manifest).unwrap();
    assert!(parsed.contains_key("owut") && parsed.contains_key("apk-mbedtls"));
}

#[test]
fn snapshot_names_omit_the_version_and_rootfs_filesystem_selects_images() {
    let (dir, ib) = imagebuilder("SNAPSHOT", "x86/64");
    let bin = dir.path().join("out");
    let args = [
        "image",
        "PROFILE=generic",
        "EXTRA_IMAGE_NAME=feedbeef0000",
        "ROOTFS_FILESYSTEM=ext4",
        &format!("BIN_DIR={}", bin.display()),
    ];
    make_ok(&ib, &args, &[]);
    let profiles = parse_profiles(&fs::read(bin.join("profiles.json")).unwrap()).unwrap();
    let profile = &profiles.profiles["generic"];
    assert_eq!(profile.image_prefix, "openwrt-feedbeef0000-x86-64-generic");
    let mut names: Vec<&str> = profile.images.iter().map(|i| i.name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "openwrt-feedbeef0000-x86-64-generic-ext4-combined-efi.img.gz",
            "openwrt-feedbeef0000-x86-64-generic-ext4-combined.img.gz",
            "openwrt-feedbeef0000-x86-64-generic-ext4-rootfs.img.gz",
        ]
    );
    assert!(profile.images.iter().all(|i| i.filesystem == "ext4"));
}

#[test]
fn branch_snapshot_names_carry_the_revision() {
    let upstream = upstream_profiles("24.10-SNAPSHOT", "x86/64");
    let prefix = &upstream.profiles["generic"].image_prefix;
    assert_eq!(
        prefix,
        &format!(
            "openwrt-24.10-snapshot-{}-x86-64-generic",
            upstream.version_code
        )
    );
}

#[test]
fn builds_are_reproducible_and_honour_source_date_epoch_and_partsize() {
    let (dir, ib) = imagebuilder("24.10.5", "x86/64");
    let build = |name: &str, extra: &[&str], env: &[(&str, &str)]| {
        let bin = dir.path().join(name);
        let mut args = vec![
            "image".to_owned(),
            "PROFILE=generic".to_owned(),
            format!("BIN_DIR={}", bin.display()),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        make_ok(&ib, &args, env);
        fs::read(bin.join("sha256sums")).unwrap()
    };
    let first = build("a", &[], &[]);
    let second = build("b", &[], &[]);
    assert_eq!(first, second, "the same inputs give the same bytes");
    let epoch = build("c", &[], &[("SOURCE_DATE_EPOCH", "1700000000")]);
    assert_ne!(first, epoch);
    let profiles = parse_profiles(&fs::read(dir.path().join("c/profiles.json")).unwrap()).unwrap();
    assert_eq!(
        profiles.source_date_epoch,
        SourceDateEpoch::Seconds(1_700_000_000)
    );
    let resized = build("d", &["ROOTFS_PARTSIZE=512"], &[]);
    assert_ne!(first, resized);
    let image = fs::read(
        dir.path()
            .join("d/openwrt-24.10.5-x86-64-generic-ext4-rootfs.img.gz"),
    )
    .unwrap();
    assert_eq!(image.get(..2), Some(&[0x1f, 0x8b][..]));
}
