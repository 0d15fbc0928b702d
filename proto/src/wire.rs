//! Router-side wire constants: file paths the agent reads and UCI names it uses.
//!
//! Each name is declared once, here, so the agent, the rpcd bridge, the parsers' error messages and
//! the tests agree on the spelling. The paths and names come from OpenWrt itself (opkg, apk-tools,
//! procd, base-files, rpcd, attendedsysupgrade-common); see `reference/router-side.md` §3.4, §4.3,
//! §4.5, §5 and §7. HTTP header names belong to [`crate::api`].

// Package databases (router-side.md §5.1, §5.2).

/// opkg's database of installed packages (OpenWrt 24.10 and older); parsed by [`crate::opkg`].
pub const OPKG_STATUS_PATH: &str = "/usr/lib/opkg/status";

/// apk-tools' database of installed packages (OpenWrt 25.12 and newer); parsed by [`crate::apk`].
pub const APK_INSTALLED_PATH: &str = "/lib/apk/db/installed";

/// apk-tools' world file: the explicitly requested packages, one dependency per line.
pub const APK_WORLD_PATH: &str = "/etc/apk/world";

/// Directory of apk's per-package metadata (`<pkg>.list`, `.conffiles`, `.conffiles_static`).
pub const APK_PACKAGES_DIR: &str = "/lib/apk/packages";

/// Directory of the PEM keys apk trusts for package indexes.
pub const APK_KEYS_DIR: &str = "/etc/apk/keys";

// Release and board files (router-side.md §5.3, §4.5).

/// The os-release file procd reads for `ubus call system board` `release` (since 2024-06).
pub const OS_RELEASE_PATH: &str = "/usr/lib/os-release";

/// The symlink to [`OS_RELEASE_PATH`] that most tools read.
pub const ETC_OS_RELEASE_PATH: &str = "/etc/os-release";

/// The shell-syntax `DISTRIB_*` release file (procd's source before 2024-06).
pub const OPENWRT_RELEASE_PATH: &str = "/etc/openwrt_release";

/// The board name written at boot by the target's board detection (`tplink,archer-c7-v5`).
pub const SYSINFO_BOARD_NAME_PATH: &str = "/tmp/sysinfo/board_name";

/// The human-readable model written at boot (`TP-Link Archer C7 v5`).
pub const SYSINFO_MODEL_PATH: &str = "/tmp/sysinfo/model";

/// The board description generated at first boot from `board.d`; holds `system.compat_version`.
pub const BOARD_JSON_PATH: &str = "/etc/board.json";

/// The kernel's mount table; procd derives `rootfs_type` from it.
pub const PROC_MOUNTS_PATH: &str = "/proc/mounts";

/// Exists when the router booted through EFI; selects the `combined-efi` image type.
pub const EFI_FIRMWARE_PATH: &str = "/sys/firmware/efi";

/// The device-tree model, procd's fallback for `model`.
pub const DEVICE_TREE_MODEL_PATH: &str = "/proc/device-tree/model";

// Keys and working directories (router-side.md §3.4, §6, §7).

/// Directory of the usign public keys the router trusts, one file per key named after its
/// fingerprint (read by opkg, sysupgrade, `usign -P` and `ucert -P`); see [`crate::usign`].
pub const OPKG_KEYS_DIR: &str = "/etc/opkg/keys";

/// The RAM-backed directory where images are downloaded before flashing.
pub const TMP_DIR: &str = "/tmp";

/// Where rpcd's `rpc-sys upgrade_*` methods and LuCI expect the image (hard-coded in rpcd).
pub const RPCD_FIRMWARE_PATH: &str = "/tmp/firmware.bin";

// UCI (router-side.md §1.4, §3.4, §7.3).

/// The UCI configuration file shared with owut and luci-app-attendedsysupgrade.
pub const UCI_CONFIG_PATH: &str = "/etc/config/attendedsysupgrade";

/// UCI package (file) name of [`UCI_CONFIG_PATH`].
pub const UCI_PACKAGE: &str = "attendedsysupgrade";

/// Section type (and conventional name) of the server settings: `config server 'server'`.
pub const UCI_SECTION_SERVER: &str = "server";

/// Option of the `server` section holding the ASU server URL.
pub const UCI_OPTION_URL: &str = "url";

/// List option of the `server` section with extra ASU servers used to cross-check builds.
pub const UCI_OPTION_REBUILDER: &str = "rebuilder";

/// Section type (and name) of the LuCI client settings: `config client 'client'`.
pub const UCI_SECTION_CLIENT: &str = "client";

/// Option of the `client` section: include installed packages in upgrades (`1`).
pub const UCI_OPTION_UPGRADE_PACKAGES: &str = "upgrade_packages";

/// Option of the `client` section: search for upgrades when the page opens.
pub const UCI_OPTION_AUTO_SEARCH: &str = "auto_search";

/// Option of the `client` section: show advanced settings in LuCI.
pub const UCI_OPTION_ADVANCED_MODE: &str = "advanced_mode";

/// Option of the `client` section: check for upgrades on the LuCI status page.
pub const UCI_OPTION_LOGIN_CHECK_FOR_UPGRADES: &str = "login_check_for_upgrades";

/// Section type (and name) of owut's own defaults: `config owut 'owut'`.
pub const UCI_SECTION_OWUT: &str = "owut";

/// Section type (and name) of Attendant's own settings: `config attendant 'attendant'`.
pub const UCI_SECTION_ATTENDANT: &str = "attendant";

/// UCI package holding the system settings (`system.@system[0].compat_version`).
pub const UCI_PACKAGE_SYSTEM: &str = "system";

/// Option of the first `system` section that sysupgrade compares against an image's
/// `compat_version`.
pub const UCI_OPTION_COMPAT_VERSION: &str = "compat_version";

// Defaults.

/// The server used when UCI names none (owut's and LuCI's default).
pub const DEFAULT_SERVER_URL: &str = "https://sysupgrade.openwrt.org";

/// The upstream download mirror used when the server's overview names none.
pub const DEFAULT_UPSTREAM_URL: &str = "https://downloads.openwrt.org";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn router_paths_are_absolute() {
        for path in [
            OPKG_STATUS_PATH,
            APK_INSTALLED_PATH,
            APK_WORLD_PATH,
            APK_PACKAGES_DIR,
            APK_KEYS_DIR,
            OS_RELEASE_PATH,
            ETC_OS_RELEASE_PATH,
            OPENWRT_RELEASE_PATH,
            SYSINFO_BOARD_NAME_PATH,
            SYSINFO_MODEL_PATH,
            BOARD_JSON_PATH,
            PROC_MOUNTS_PATH,
            EFI_FIRMWARE_PATH,
            DEVICE_TREE_MODEL_PATH,
            OPKG_KEYS_DIR,
            TMP_DIR,
            RPCD_FIRMWARE_PATH,
            UCI_CONFIG_PATH,
        ] {
            assert!(path.starts_with('/'), "{path}");
            assert!(!path.ends_with('/'), "{path}");
        }
    }

    #[test]
    fn uci_file_matches_uci_package() {
        assert_eq!(UCI_CONFIG_PATH, format!("/etc/config/{UCI_PACKAGE}"));
        assert!(RPCD_FIRMWARE_PATH.starts_with(TMP_DIR));
    }
}
