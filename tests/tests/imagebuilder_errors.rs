//! Every failure of the fixture ImageBuilder prints what the real one prints, and
//! `attendant-proto` reads it the way the server will (as ASU's `build()` does,
//! <https://github.com/openwrt/asu/blob/main/asu/build.py>).

#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail the test by panicking"
)]

use std::path::{Path, PathBuf};

use attendant_e2e::harness::{MakeOutput, run_make, unpack_imagebuilder};
use attendant_e2e::mirror::{DEFAULT_SEED, shared_fixture};
use attendant_proto::api::imagebuilder::{is_size_error, scan_package_errors};
use tempfile::TempDir;

fn imagebuilder(version: &str, target: &str) -> (TempDir, PathBuf) {
    let mirror = shared_fixture(DEFAULT_SEED).unwrap();
    let dir = TempDir::new().unwrap();
    let top = unpack_imagebuilder(&mirror, version, target, dir.path()).unwrap();
    (dir, top)
}

fn make(dir: &Path, args: &[&str]) -> MakeOutput {
    run_make(dir, args, &[]).unwrap()
}

fn assert_fails(output: &MakeOutput) {
    assert_eq!(
        output.status, 2,
        "make must fail with its own status\n{output}"
    );
}

#[test]
fn opkg_missing_package_prints_cannot_install() {
    let (_dir, ib) = imagebuilder("24.10.4", "ath79/generic");
    let output = make(
        &ib,
        &[
            "manifest",
            "PROFILE=tplink_archer-c7-v5",
            "PACKAGES=luci foo",
            "STRIP_ABI=1",
        ],
    );
    assert_fails(&output);
    assert!(
        output
            .stderr
            .starts_with("Collected errors:\n * opkg_install_cmd: Cannot install package foo.\n"),
        "{output}"
    );
    assert!(output.stderr.contains("] Error 255\n"), "{output}");
    assert!(output.stderr.ends_with(": manifest] Error 2\n"), "{output}");
    let errors = scan_package_errors(&output.stderr);
    assert_eq!(
        errors.to_string(),
        "Impossible package selection: missing (foo)"
    );
}

#[test]
fn apk_missing_package_prints_no_such_package() {
    let (_dir, ib) = imagebuilder("25.12.1", "ath79/generic");
    let output = make(
        &ib,
        &[
            "manifest",
            "PROFILE=tplink_archer-c7-v5",
            "PACKAGES=luci foo",
            "STRIP_ABI=1",
        ],
    );
    assert_fails(&output);
    assert!(
        output.stderr.starts_with(
            "ERROR: unable to select packages:\n  foo (no such package):\n    required by: world[foo]\n"
        ),
        "{output}"
    );
    assert_eq!(
        scan_package_errors(&output.stderr).to_string(),
        "Impossible package selection: missing (foo)"
    );
}

#[test]
fn opkg_declared_conflict_prints_check_conflicts_for() {
    let (_dir, ib) = imagebuilder("24.10.4", "ath79/generic");
    // The user's wpad-openssl goes in first; the default wpad-basic-mbedtls then conflicts.
    let output = make(
        &ib,
        &[
            "manifest",
            "PROFILE=tplink_archer-c7-v5",
            "PACKAGES=wpad-openssl",
        ],
    );
    assert_fails(&output);
    assert!(
        output.stderr.starts_with(
            "Collected errors:\n * check_conflicts_for: The following packages conflict with wpad-basic-mbedtls:\n * check_conflicts_for: \twpad-openssl * \n * opkg_install_cmd: Cannot install package wpad-basic-mbedtls.\n"
        ),
        "{output}"
    );
    assert_eq!(
        scan_package_errors(&output.stderr).to_string(),
        "Impossible package selection: conflicts (wpad-basic-mbedtls, wpad-openssl)"
    );
}

#[test]
fn opkg_file_clash_prints_check_data_file_clashes() {
    let (_dir, ib) = imagebuilder("24.10.5", "x86/64");
    let output = make(
        &ib,
        &["manifest", "PROFILE=generic", "PACKAGES=dnsmasq-full"],
    );
    assert_fails(&output);
    assert!(
        output
            .stderr
            .contains(" * check_data_file_clashes: Package dnsmasq wants to install file "),
        "{output}"
    );
    assert!(
        output.stderr.contains("\tBut that file is already provided by package  * dnsmasq-full\n * opkg_install_cmd: Cannot install package dnsmasq.\n"),
        "{output}"
    );
    let errors = scan_package_errors(&output.stderr);
    assert!(
        errors.conflicts.contains("dnsmasq") && errors.conflicts.contains("dnsmasq-full"),
        "{errors:?}"
    );
}

#[test]
fn removing_the_default_variant_resolves_the_clash() {
    let (_dir, ib) = imagebuilder("24.10.5", "x86/64");
    let output = make(
        &ib,
        &[
            "manifest",
            "PROFILE=generic",
            "PACKAGES=-dnsmasq dnsmasq-full",
            "STRIP_ABI=1",
        ],
    );
    assert_eq!(output.status, 0, "{output}");
    assert!(output.stdout.contains("dnsmasq-full - "), "{output}");
    assert!(
        !output.stdout.lines().any(|l| l.starts_with("dnsmasq - ")),
        "{output}"
    );
}

#[test]
fn apk_conflict_prints_conflict_blocks() {
    let (_dir, ib) = imagebuilder("25.12.1", "x86/64");
    let output = make(
        &ib,
        &["manifest", "PROFILE=generic", "PACKAGES=dnsmasq-full"],
    );
    assert_fails(&output);
    let first = output.stderr.lines().take(4).collect::<Vec<_>>();
    assert_eq!(
        first.first().copied(),
        Some("ERROR: unable to select packages:"),
        "{output}"
    );
    assert!(
        first
            .get(1)
            .is_some_and(|l| l.starts_with("  dnsmasq-full-2.91-r1:")),
        "{output}"
    );
    assert!(
        first
            .get(2)
            .is_some_and(|l| l.starts_with("    conflicts: dnsmasq-2.91-r1[dnsmasq]")),
        "{output}"
    );
    assert_eq!(
        first.get(3).copied(),
        Some("    satisfies: world[dnsmasq-full]"),
        "{output}"
    );
    assert_eq!(
        scan_package_errors(&output.stderr).to_string(),
        "Impossible package selection: conflicts (dnsmasq, dnsmasq-full)",
        "{output}"
    );
}

#[test]
fn oversized_selection_prints_is_too_big() {
    let (dir, ib) = imagebuilder("24.10.4", "ath79/generic");
    let bin = dir.path().join("bin");
    let bin_dir = format!("BIN_DIR={}", bin.display());
    let output = make(
        &ib,
        &[
            "image",
            "PROFILE=tplink_tl-wr902ac-v1",
            "PACKAGES=python3-light",
            &bin_dir,
        ],
    );
    assert_fails(&output);
    assert!(
        output.stderr.starts_with("WARNING: Image file "),
        "{output}"
    );
    assert!(
        output
            .stderr
            .contains("-tplink_tl-wr902ac-v1-squashfs-sysupgrade.bin is too big: "),
        "{output}"
    );
    assert!(output.stderr.contains(" > 7536640\n"), "{output}");
    assert!(is_size_error(&output.stderr));
    assert!(!bin.join("profiles.json").exists());
}

#[test]
fn unknown_profile_is_refused_by_make() {
    let (_dir, ib) = imagebuilder("24.10.4", "x86/64");
    for target in ["manifest", "image"] {
        let output = make(&ib, &[target, "PROFILE=tplink_archer-c7-v5"]);
        assert_fails(&output);
        assert_eq!(
            output.stdout,
            "Profile \"tplink_archer-c7-v5\" does not exist!\nUse \"make info\" to get a list of available profile names.\n",
            "{output}"
        );
        assert!(
            output.stderr.contains("_check_profile] Error 1"),
            "{output}"
        );
    }
}

#[test]
fn unknown_rootfs_filesystem_fails_on_new_imagebuilders() {
    let (dir, ib) = imagebuilder("25.12.1", "x86/64");
    let bin_dir = format!("BIN_DIR={}", dir.path().join("bin").display());
    let output = make(
        &ib,
        &[
            "image",
            "PROFILE=generic",
            "ROOTFS_FILESYSTEM=ubifs",
            &bin_dir,
        ],
    );
    assert_fails(&output);
    assert!(
        output.stderr.starts_with(
            "ERROR: ROOTFS_FILESYSTEM \"ubifs\" is not enabled for this target (enabled: ext4 squashfs)\n"
        ),
        "{output}"
    );
}

#[test]
fn rootfs_filesystem_is_ignored_by_24_10_imagebuilders() {
    let (dir, ib) = imagebuilder("24.10.4", "x86/64");
    let bin = dir.path().join("bin");
    let bin_dir = format!("BIN_DIR={}", bin.display());
    let output = make(
        &ib,
        &[
            "image",
            "PROFILE=generic",
            "ROOTFS_FILESYSTEM=ubifs",
            &bin_dir,
        ],
    );
    assert_eq!(output.status, 0, "{output}");
    assert!(
        bin.join("openwrt-24.10.4-x86-64-generic-ext4-combined.img.gz")
            .is_file()
    );
    assert!(
        bin.join("openwrt-24.10.4-x86-64-generic-squashfs-combined.img.gz")
            .is_file()
    );
}

#[test]
fn bad_rootfs_partsize_is_refused() {
    let (dir, ib) = imagebuilder("24.10.4", "x86/64");
    let bin_dir = format!("BIN_DIR={}", dir.path().join("bin").display());
    let output = make(
        &ib,
        &["image", "PROFILE=generic", "ROOTFS_PARTSIZE=big", &bin_dir],
    );
    assert_fails(&output);
    assert!(
        output
            .stderr
            .starts_with("ERROR: ROOTFS_PARTSIZE \"big\" is not a size in MiB\n"),
        "{output}"
    );
}
