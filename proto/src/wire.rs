//! Router-side names: the file paths the agent and the rpcd bridge read and write, the UCI names
//! they use and the environment variables they read.
//!
//! Each name is declared once, here, so the agent, the rpcd bridge, the server (where it writes a
//! file into an image), the parsers' error messages and the tests agree on the spelling; a test in
//! `proto/tests/wire_names.rs` fails when a path declared here is spelt out again in another
//! crate's code. The paths and names come from OpenWrt itself: opkg and apk-tools (package
//! databases), procd and base-files (`ubus call system board`, `/tmp/sysinfo`, `/etc/board.json`,
//! uci-defaults), rpcd (exec plugins, `/tmp/firmware.bin`) and attendedsysupgrade-common (the UCI
//! file shared with owut and LuCI); see <https://openwrt.org/docs/guide-user/base-system/uci>,
//! <https://openwrt.org/docs/techref/ubus> and <https://github.com/openwrt/rpcd>. HTTP header names
//! belong to [`crate::api`]; the server's own environment variables to the server's configuration.
//!
//! Paths are absolute, as on the router. The agent and the bridge also run against a copy of a
//! router's file tree (`--root`, tests); [`under_root`] is the one way to find a path there.

use std::path::{Path, PathBuf};

/// Where `absolute` (one of the paths here) lies in the file tree rooted at `root`: `/` for the
/// router itself, a directory holding a router's files in tests and with `--root`.
///
/// ```
/// use std::path::Path;
/// use attendant_proto::wire::{OPKG_STATUS_PATH, under_root};
///
/// assert_eq!(under_root(Path::new("/"), OPKG_STATUS_PATH), Path::new("/usr/lib/opkg/status"));
/// assert_eq!(
///     under_root(Path::new("/tmp/router"), OPKG_STATUS_PATH),
///     Path::new("/tmp/router/usr/lib/opkg/status")
/// );
/// ```
pub fn under_root(root: &Path, absolute: &str) -> PathBuf {
    // `Path::join` with an absolute path replaces the root, which would read the host's files.
    root.join(absolute.trim_start_matches('/'))
}

// Package databases.

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

// Release and board files.

/// The os-release file procd reads for `ubus call system board` `release` (since 2024-06).
pub const OS_RELEASE_PATH: &str = "/usr/lib/os-release";

/// The shell-syntax `DISTRIB_*` release file (procd's source before 2024-06).
pub const OPENWRT_RELEASE_PATH: &str = "/etc/openwrt_release";

/// The board name written at boot by the target's board detection (`tplink,archer-c7-v5`).
pub const SYSINFO_BOARD_NAME_PATH: &str = "/tmp/sysinfo/board_name";

/// The human-readable model written at boot (`TP-Link Archer C7 v5`).
pub const SYSINFO_MODEL_PATH: &str = "/tmp/sysinfo/model";

/// The vendor firmware name some boards write at boot; sysupgrade's OEM rule matches it against
/// an image's `supported_devices` (see [`crate::fwtool`]).
pub const SYSINFO_OEM_NAME_PATH: &str = "/tmp/sysinfo/oem_name";

/// The board description generated at first boot from `board.d`; holds `system.compat_version`.
pub const BOARD_JSON_PATH: &str = "/etc/board.json";

/// The kernel's mount table; procd derives `rootfs_type` from it.
pub const PROC_MOUNTS_PATH: &str = "/proc/mounts";

/// Exists when the router booted through EFI; selects the `combined-efi` image type.
pub const EFI_FIRMWARE_PATH: &str = "/sys/firmware/efi";

/// The device-tree model, procd's fallback for `model`.
pub const DEVICE_TREE_MODEL_PATH: &str = "/proc/device-tree/model";

// Keys, scripts and working directories.

/// Directory of the usign public keys the router trusts, one file per key named after its
/// fingerprint (read by opkg, sysupgrade, `usign -P` and `ucert -P`); see [`crate::usign`].
pub const OPKG_KEYS_DIR: &str = "/etc/opkg/keys";

/// The RAM-backed directory where images are downloaded before flashing.
pub const TMP_DIR: &str = "/tmp";

/// Where rpcd's `rpc-sys upgrade_*` methods and LuCI expect the image (hard-coded in rpcd).
pub const RPCD_FIRMWARE_PATH: &str = "/tmp/firmware.bin";

/// The CA certificates OpenWrt's `ca-bundle` package installs; the agent trusts these for https.
pub const CA_BUNDLE_PATH: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Directory of Attendant's runtime state (RAM-backed on OpenWrt, so it does not survive a
/// reboot, which is also when an unfinished upgrade stops mattering).
pub const STATE_DIR: &str = "/var/run/attendant";

/// The agent's resumable upgrade state, in [`STATE_DIR`].
pub const STATE_PATH: &str = "/var/run/attendant/state.json";

/// The agent's run lock, in [`STATE_DIR`]: one upgrade at a time, whoever started it.
pub const LOCK_PATH: &str = "/var/run/attendant/lock";

// Release channels (see [`crate::channel`]). Everything under `/etc/attendant/` but the stamp is
// kept across sysupgrade by [`KEEP_D_PATH`]; the stamp comes with each image.

/// The channel file embedded in every image built for a channel: where the running firmware
/// stands ([`crate::channel::ChannelStamp`]).
pub const CHANNEL_STAMP_PATH: &str = "/etc/attendant/channel.json";

/// Directory of the pinned root keys (usign public keys) that channel metadata must chain to.
pub const CHANNEL_KEYS_DIR: &str = "/etc/attendant/keys";

/// The highest metadata `serial` seen per channel server, so older (replayed) metadata is refused.
pub const CHANNEL_SERIAL_PATH: &str = "/etc/attendant/serial.json";

/// The system's machine-id where one exists (systemd-style hosts; rare on OpenWrt).
pub const SYSTEM_MACHINE_ID_PATH: &str = "/etc/machine-id";

/// The machine-id the agent generates once when the system has none; seeds the phase of phased
/// rollouts and, salted and hashed, identifies outcome reports.
pub const MACHINE_ID_PATH: &str = "/etc/attendant/machine-id";

/// Outcome reports not yet delivered, retried at boot until the server takes them.
pub const PENDING_REPORTS_PATH: &str = "/etc/attendant/reports.json";

/// sysupgrade's list of files to keep across an upgrade, one path per line
/// (<https://openwrt.org/docs/guide-user/installation/sysupgrade.cli>).
pub const KEEP_D_PATH: &str = "/lib/upgrade/keep.d/attendant";

/// The rpcd exec plugin: a symlink to the agent binary, run by rpcd as `<path> list` and
/// `<path> call <method>`.
pub const RPCD_PLUGIN_PATH: &str = "/usr/libexec/rpcd/attendant";

/// Directory of first-boot scripts, run once by `/etc/init.d/boot` and then deleted.
pub const UCI_DEFAULTS_DIR: &str = "/etc/uci-defaults";

/// File name, in [`UCI_DEFAULTS_DIR`], of the first-boot script a build request's `defaults`
/// becomes (ASU's name, so images built by either server look the same).
pub const ASU_DEFAULTS_NAME: &str = "99-asu-defaults";

/// The same script as the running image's read-only root still holds it after first boot: its
/// presence says the image was built with a `defaults` script.
pub const ROM_ASU_DEFAULTS_PATH: &str = "/rom/etc/uci-defaults/99-asu-defaults";

// UCI.

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

/// The file of [`UCI_PACKAGE_SYSTEM`].
pub const UCI_SYSTEM_CONFIG_PATH: &str = "/etc/config/system";

/// Option of the first `system` section that sysupgrade compares against an image's
/// `compat_version`.
pub const UCI_OPTION_COMPAT_VERSION: &str = "compat_version";

// Environment variables the router binaries read (or, for a hook, set).

/// The router root the rpcd bridge works on (default `/`); tests point it at a directory.
pub const ROOT_ENV: &str = "ATTENDANT_ROOT";

/// Overrides the CA bundle the agent trusts (default [`CA_BUNDLE_PATH`]); `--ca-file` wins.
pub const CA_FILE_ENV: &str = "ATTENDANT_CA_FILE";

/// Set for the `--pre-install` hook: the path of the verified image about to be flashed.
pub const HOOK_IMAGE_ENV: &str = "ATTENDANT_IMAGE";

/// When set and not empty, no colour in terminal output (<https://no-color.org/>).
pub const NO_COLOR_ENV: &str = "NO_COLOR";

/// The proxy for `https://` URLs, first one set wins; lower case first, as curl reads them.
pub const HTTPS_PROXY_ENV: [&str; 4] = ["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"];

/// The proxy for `http://` URLs, first one set wins. curl ignores upper-case `HTTP_PROXY`
/// (a CGI program may have it set from a request header, the "httpoxy" problem), so do we.
pub const HTTP_PROXY_ENV: [&str; 3] = ["http_proxy", "all_proxy", "ALL_PROXY"];

/// Hosts reached without a proxy: a comma-separated list of names, `.domain` suffixes or `*`.
pub const NO_PROXY_ENV: [&str; 2] = ["no_proxy", "NO_PROXY"];

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
            OPENWRT_RELEASE_PATH,
            SYSINFO_BOARD_NAME_PATH,
            SYSINFO_MODEL_PATH,
            BOARD_JSON_PATH,
            PROC_MOUNTS_PATH,
            EFI_FIRMWARE_PATH,
            DEVICE_TREE_MODEL_PATH,
            SYSINFO_OEM_NAME_PATH,
            OPKG_KEYS_DIR,
            TMP_DIR,
            RPCD_FIRMWARE_PATH,
            CA_BUNDLE_PATH,
            STATE_DIR,
            STATE_PATH,
            LOCK_PATH,
            RPCD_PLUGIN_PATH,
            UCI_DEFAULTS_DIR,
            ROM_ASU_DEFAULTS_PATH,
            UCI_CONFIG_PATH,
            UCI_SYSTEM_CONFIG_PATH,
        ] {
            assert!(path.starts_with('/'), "{path}");
            assert!(!path.ends_with('/'), "{path}");
        }
    }

    #[test]
    fn uci_file_matches_uci_package() {
        assert_eq!(UCI_CONFIG_PATH, format!("/etc/config/{UCI_PACKAGE}"));
        assert_eq!(
            UCI_SYSTEM_CONFIG_PATH,
            format!("/etc/config/{UCI_PACKAGE_SYSTEM}")
        );
        assert!(RPCD_FIRMWARE_PATH.starts_with(TMP_DIR));
    }

    #[test]
    fn derived_paths_agree_with_their_parts() {
        assert_eq!(STATE_PATH, format!("{STATE_DIR}/state.json"));
        assert_eq!(LOCK_PATH, format!("{STATE_DIR}/lock"));
        assert_eq!(
            ROM_ASU_DEFAULTS_PATH,
            format!("/rom{UCI_DEFAULTS_DIR}/{ASU_DEFAULTS_NAME}")
        );
        assert!(SYSINFO_OEM_NAME_PATH.starts_with("/tmp/sysinfo/"));
        assert!(RPCD_PLUGIN_PATH.ends_with("/rpcd/attendant"));
    }

    #[test]
    fn under_root_keeps_paths_inside_the_root() {
        assert_eq!(
            under_root(Path::new("/srv/router"), STATE_PATH),
            Path::new("/srv/router/var/run/attendant/state.json")
        );
        assert_eq!(
            under_root(Path::new("root"), "relative/file"),
            Path::new("root/relative/file")
        );
        assert_eq!(under_root(Path::new("r"), "//etc/x"), Path::new("r/etc/x"));
    }

    #[test]
    fn environment_variable_names_are_plain() {
        let names = [ROOT_ENV, CA_FILE_ENV, HOOK_IMAGE_ENV, NO_COLOR_ENV]
            .into_iter()
            .chain(HTTPS_PROXY_ENV)
            .chain(HTTP_PROXY_ENV)
            .chain(NO_PROXY_ENV);
        for name in names {
            assert!(
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                "{name}"
            );
        }
    }
}
