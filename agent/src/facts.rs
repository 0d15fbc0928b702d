//! Reading the device facts from the router's files, with `ubus` only as a fallback.
//!
//! Every path is read under a root directory (`/` on the router; `--root DIR` in tests or when
//! preparing an image for another device). The sources are those of `ubus call system board`
//! and `rpc-sys packagelist` (procd's `system.c`, <https://github.com/openwrt/procd>, and rpcd's
//! `sys.c`, <https://github.com/openwrt/rpcd>):
//!
//! | fact | file |
//! | --- | --- |
//! | board name, model | `/tmp/sysinfo/board_name`, `/tmp/sysinfo/model`, `/tmp/sysinfo/oem_name` |
//! | release, target, revision | `/usr/lib/os-release` (`VERSION`, `OPENWRT_BOARD`, `BUILD_ID`, ...) |
//! | root filesystem | `/proc/mounts`: the type of `/`, or of `/rom` when `/` is an overlay |
//! | EFI boot | `/sys/firmware/efi` exists |
//! | compat_version | UCI `system.@system[0].compat_version` (default `1.0`) |
//! | packages | opkg `/usr/lib/opkg/status`, or apk `/lib/apk/db/installed` + `/etc/apk/world` |
//!
//! When the board name or os-release is missing, `ubus call system board` is run (an argument
//! vector, never a shell) and its JSON fills the gaps.

use std::path::{Path, PathBuf};
use std::process::Command;

use attendant_proto::api::ImageType;
use attendant_proto::board::{self, DeviceFacts, DeviceFiles, OsRelease, SystemBoard};
use attendant_proto::fwtool::{CompatVersion, DeviceCompat};
use attendant_proto::installed::{InstalledPackages, PackageManager};
use attendant_proto::uci;
use attendant_proto::{apk, opkg, wire};
use serde::Serialize;

use crate::hint::Hint;

/// Largest small text file read (os-release, sysinfo files, mounts).
pub const MAX_SMALL_FILE_LEN: u64 = 256 * 1024;

/// Largest package database read.
pub const MAX_DATABASE_LEN: u64 = 64 * 1024 * 1024;

/// Where the running image ships a uci-defaults script that an earlier ASU build embedded.
pub const ROM_ASU_DEFAULTS_PATH: &str = wire::ROM_ASU_DEFAULTS_PATH;

/// Everything the planner needs to know about the device.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Device {
    /// `/tmp/sysinfo/board_name`, e.g. `tplink,archer-c7-v5`.
    pub board_name: String,
    /// Human-readable model.
    pub model: Option<String>,
    /// `/tmp/sysinfo/oem_name`.
    pub oem_name: Option<String>,
    /// Distribution, `OpenWrt`.
    pub distribution: String,
    /// Installed release, e.g. `24.10.4` or `SNAPSHOT`.
    pub version: String,
    /// Installed revision, e.g. `r28427-6df0e3d02a`.
    pub revision: String,
    /// `target/subtarget`, e.g. `ath79/generic`.
    pub target: String,
    /// Package architecture, e.g. `mips_24kc`.
    pub arch: Option<String>,
    /// Root filesystem type, e.g. `squashfs`.
    pub rootfs_type: String,
    /// Booted through EFI.
    pub efi: bool,
    /// The device's compat_version.
    pub compat_version: String,
    /// The running image carries an init script from an earlier ASU build.
    pub rom_has_asu_defaults: bool,
    /// `opkg` or `apk`.
    pub package_manager: PackageManager,
    /// Installed packages.
    #[serde(skip)]
    pub packages: InstalledPackages,
}

/// Why the facts could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FactsError {
    /// A file could not be read.
    #[error("cannot read `{path}`: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file is larger than its limit.
    #[error("`{path}` is larger than the limit of {max} bytes")]
    TooLarge {
        /// The path.
        path: PathBuf,
        /// The limit.
        max: u64,
    },
    /// A fact is in neither the files nor `ubus`.
    #[error("cannot find the {what}: `{path}` is missing and `ubus call system board` did not say")]
    Missing {
        /// The fact.
        what: &'static str,
        /// The file it should come from.
        path: PathBuf,
    },
    /// A board or release file is damaged.
    #[error("`{path}`: {source}")]
    Board {
        /// The file (or the root, when several files were combined).
        path: PathBuf,
        /// The parser's error.
        source: board::BoardError,
    },
    /// No package database.
    #[error(
        "no package database under `{root}`: neither `{}` nor `{}` exists",
        wire::OPKG_STATUS_PATH,
        wire::APK_INSTALLED_PATH
    )]
    NoPackageDatabase {
        /// The root.
        root: PathBuf,
    },
    /// The opkg database is damaged.
    #[error("`{path}`: {source}")]
    Opkg {
        /// The path.
        path: PathBuf,
        /// The parser's error.
        source: opkg::OpkgError,
    },
    /// The apk database is damaged.
    #[error("`{path}`: {source}")]
    Apk {
        /// The path.
        path: PathBuf,
        /// The parser's error.
        source: apk::ApkError,
    },
}

impl FactsError {
    /// The way out, if there is one; the package and release parsers in `attendant-proto` speak
    /// no command line, so their findings get their advice here.
    pub fn hint(&self) -> Option<Hint> {
        const STANZAS: &str =
            "stanzas are separated by a blank line; the one before this line may be missing";
        match self {
            Self::Board {
                source: board::BoardError::TrailingText { .. },
                ..
            } => Some(Hint::uncoded("values with spaces must be quoted")),
            Self::Opkg {
                source: opkg::OpkgError::DuplicateField { .. },
                ..
            }
            | Self::Apk {
                source: apk::ApkError::DuplicateField { .. },
                ..
            } => Some(Hint::uncoded(STANZAS)),
            Self::Apk {
                source: apk::ApkError::EmptyWorld,
                ..
            } => Some(Hint::uncoded(
                "apk writes the world file on every `apk add`; `apk fix` rewrites a damaged one",
            )),
            _ => None,
        }
    }
}

impl Device {
    /// Reads the facts of the device whose files are under `root`.
    pub fn read(root: &Path) -> Result<Self, FactsError> {
        let files = Files { root };
        let board_name = files.bytes(wire::SYSINFO_BOARD_NAME_PATH, MAX_SMALL_FILE_LEN)?;
        let model = files.bytes(wire::SYSINFO_MODEL_PATH, MAX_SMALL_FILE_LEN)?;
        let os_release = files.bytes(wire::OS_RELEASE_PATH, MAX_SMALL_FILE_LEN)?;
        let openwrt_release = files.bytes(wire::OPENWRT_RELEASE_PATH, MAX_SMALL_FILE_LEN)?;
        let board_json = files.bytes(wire::BOARD_JSON_PATH, MAX_SMALL_FILE_LEN)?;
        let mounts = files.bytes(wire::PROC_MOUNTS_PATH, MAX_SMALL_FILE_LEN)?;
        let rootfs_type = match mounts {
            Some(bytes) => {
                board::rootfs_type_from_mounts(&bytes).map_err(|source| FactsError::Board {
                    path: files.path(wire::PROC_MOUNTS_PATH),
                    source,
                })?
            }
            None => None,
        };
        let efi = files.path(wire::EFI_FIRMWARE_PATH).is_dir();
        let device_files = DeviceFiles {
            board_name: board_name.as_deref(),
            model: model.as_deref(),
            os_release: os_release.as_deref(),
            openwrt_release: openwrt_release.as_deref(),
            board_json: board_json.as_deref(),
            rootfs_type: rootfs_type.as_deref(),
            efi,
            ..DeviceFiles::default()
        };
        let mut facts =
            DeviceFacts::from_files(&device_files).map_err(|source| FactsError::Board {
                path: root.to_owned(),
                source,
            })?;
        if facts.board.board_name.is_none()
            || facts.board.release.is_none()
            || facts.board.rootfs_type.is_none()
        {
            fill_from_ubus(&mut facts.board);
        }
        let missing = |what: &'static str, path: &str| FactsError::Missing {
            what,
            path: files.path(path),
        };
        let board_name = facts
            .board
            .board_name
            .clone()
            .ok_or_else(|| missing("board name", wire::SYSINFO_BOARD_NAME_PATH))?;
        let release = facts
            .board
            .release
            .clone()
            .ok_or_else(|| missing("release", wire::OS_RELEASE_PATH))?;
        let rootfs_type = facts
            .board
            .rootfs_type
            .clone()
            .ok_or_else(|| missing("root filesystem type", wire::PROC_MOUNTS_PATH))?;
        let packages = read_packages(&files)?;
        let os = os_release
            .as_deref()
            .and_then(|bytes| OsRelease::parse(bytes).ok());
        Ok(Self {
            board_name,
            model: facts.board.model.clone(),
            oem_name: files
                .bytes(wire::SYSINFO_OEM_NAME_PATH, MAX_SMALL_FILE_LEN)?
                .and_then(|bytes| board::parse_model(&bytes).ok())
                .filter(|m| !m.is_empty()),
            distribution: release.distribution,
            version: release.version,
            revision: release.revision,
            target: release.target,
            arch: os
                .as_ref()
                .and_then(|os| os.get("OPENWRT_ARCH"))
                .map(str::to_owned),
            rootfs_type,
            efi,
            compat_version: read_compat_version(&files).unwrap_or(facts.compat_version),
            rom_has_asu_defaults: files.path(ROM_ASU_DEFAULTS_PATH).is_file(),
            package_manager: packages.manager(),
            packages,
        })
    }

    /// The device as sysupgrade's compatibility check sees it.
    pub fn compat(&self) -> DeviceCompat {
        DeviceCompat {
            board_name: self.board_name.clone(),
            oem_name: self.oem_name.clone(),
            compat_version: CompatVersion::parse(&self.compat_version).unwrap_or_default(),
        }
    }

    /// The ASU profile for the board name (`,` → `_`).
    pub fn profile(&self) -> String {
        board::profile_from_board_name(&self.board_name)
    }

    /// The image type owut would ask for.
    pub fn image_type(&self) -> ImageType {
        ImageType::from_wire(board::sysupgrade_image_type(&self.target, self.efi).as_str())
    }
}

/// Fills what the files did not say from `ubus call system board`, when ubus answers.
fn fill_from_ubus(board: &mut SystemBoard) {
    let reply = match ubus_system_board() {
        Ok(reply) => reply,
        Err(reason) => {
            log::debug!("no ubus fallback: {reason}");
            return;
        }
    };
    if board.board_name.is_none() {
        board.board_name = reply.board_name;
    }
    if board.release.is_none() {
        board.release = reply.release;
    }
    if board.rootfs_type.is_none() {
        board.rootfs_type = reply.rootfs_type;
    }
    if board.model.is_none() {
        board.model = reply.model;
    }
}

struct Files<'a> {
    root: &'a Path,
}

impl Files<'_> {
    fn path(&self, absolute: &str) -> PathBuf {
        wire::under_root(self.root, absolute)
    }

    fn bytes(&self, absolute: &str, max: u64) -> Result<Option<Vec<u8>>, FactsError> {
        use std::io::Read;
        let path = self.path(absolute);
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(FactsError::Io { path, source }),
        };
        let mut bytes = Vec::new();
        file.take(max.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|source| FactsError::Io {
                path: path.clone(),
                source,
            })?;
        if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > max {
            return Err(FactsError::TooLarge { path, max });
        }
        Ok(Some(bytes))
    }
}

fn read_packages(files: &Files<'_>) -> Result<InstalledPackages, FactsError> {
    if let Some(installed) = files.bytes(wire::APK_INSTALLED_PATH, MAX_DATABASE_LEN)? {
        let world = files
            .bytes(wire::APK_WORLD_PATH, MAX_DATABASE_LEN)?
            .unwrap_or_default();
        return apk::parse(&installed, &world).map_err(|source| FactsError::Apk {
            path: files.path(wire::APK_INSTALLED_PATH),
            source,
        });
    }
    if let Some(status) = files.bytes(wire::OPKG_STATUS_PATH, MAX_DATABASE_LEN)? {
        return opkg::parse(&status).map_err(|source| FactsError::Opkg {
            path: files.path(wire::OPKG_STATUS_PATH),
            source,
        });
    }
    Err(FactsError::NoPackageDatabase {
        root: files.root.to_owned(),
    })
}

/// `system.@system[0].compat_version` from UCI, the value sysupgrade compares; `None` when unset.
fn read_compat_version(files: &Files<'_>) -> Option<String> {
    let bytes = files
        .bytes(wire::UCI_SYSTEM_CONFIG_PATH, MAX_SMALL_FILE_LEN)
        .ok()??;
    match uci::Config::parse(&bytes) {
        Ok(config) => config
            .of_type(wire::UCI_PACKAGE_SYSTEM)
            .next()
            .and_then(|s| s.option(wire::UCI_OPTION_COMPAT_VERSION))
            .map(str::to_owned),
        Err(error) => {
            log::warn!(
                "cannot read compat_version from {}: {error}",
                wire::UCI_SYSTEM_CONFIG_PATH
            );
            None
        }
    }
}

/// `ubus call system board`, run directly.
fn ubus_system_board() -> Result<SystemBoard, String> {
    let output = Command::new("ubus")
        .args(["call", "system", "board"])
        .output()
        .map_err(|error| format!("cannot run `ubus`: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "`ubus call system board` failed with {}",
            output.status
        ));
    }
    SystemBoard::parse(&output.stdout).map_err(|error| format!("`ubus` answered: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, path: &str, contents: &[u8]) {
        let path = wire::under_root(root, path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }

    #[test]
    fn reads_a_router_root() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        write(
            root,
            wire::SYSINFO_BOARD_NAME_PATH,
            b"tplink,archer-c7-v5\n",
        );
        write(
            root,
            wire::OS_RELEASE_PATH,
            b"NAME=\"OpenWrt\"\nVERSION=\"24.10.4\"\nBUILD_ID=\"r28959-29397011cc\"\n\
              OPENWRT_BOARD=\"ath79/generic\"\nOPENWRT_ARCH=\"mips_24kc\"\n\
              OPENWRT_RELEASE=\"OpenWrt 24.10.4 r28959-29397011cc\"\n",
        );
        write(
            root,
            wire::PROC_MOUNTS_PATH,
            b"/dev/root /rom squashfs ro 0 0\noverlayfs:/overlay / overlay rw 0 0\n",
        );
        write(
            root,
            wire::OPKG_STATUS_PATH,
            include_bytes!("../../proto/testdata/opkg/status-24.10-ath79"),
        );
        write(
            root,
            wire::UCI_SYSTEM_CONFIG_PATH,
            b"config system\n\toption compat_version '1.1'\n",
        );
        let device = Device::read(root).unwrap();
        assert_eq!(device.board_name, "tplink,archer-c7-v5");
        assert_eq!(device.profile(), "tplink_archer-c7-v5");
        assert_eq!(device.version, "24.10.4");
        assert_eq!(device.target, "ath79/generic");
        assert_eq!(device.rootfs_type, "squashfs");
        assert_eq!(device.arch.as_deref(), Some("mips_24kc"));
        assert_eq!(device.compat_version, "1.1");
        assert_eq!(device.image_type(), ImageType::Sysupgrade);
        assert_eq!(device.package_manager, PackageManager::Opkg);
        assert!(device.packages.top_level().count() > 0);
    }

    #[test]
    fn names_the_missing_file() {
        let root = tempfile::tempdir().unwrap();
        let error = Device::read(root.path()).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("cannot find the board name: `"),
            "{error}"
        );
    }

    #[test]
    fn damaged_package_and_release_files_get_the_command_lines_advice() {
        let board = FactsError::Board {
            path: PathBuf::from("/etc/openwrt_release"),
            source: board::OpenwrtRelease::parse(b"DISTRIB_DESCRIPTION=OpenWrt 24.10.1\n")
                .unwrap_err(),
        };
        assert_eq!(
            crate::Error::from(board).cli_text(),
            "`/etc/openwrt_release`: line 1 of `/etc/openwrt_release` has text after the value: \
             `24.10.1`\n\nhint: values with spaces must be quoted"
        );
        let opkg = FactsError::Opkg {
            path: PathBuf::from(wire::OPKG_STATUS_PATH),
            source: opkg::OpkgError::DuplicateField {
                line: 3,
                field: "Package",
            },
        };
        assert_eq!(
            opkg.hint().unwrap().cli,
            "stanzas are separated by a blank line; the one before this line may be missing"
        );
        let apk = FactsError::Apk {
            path: PathBuf::from(wire::APK_INSTALLED_PATH),
            source: apk::ApkError::DuplicateField { line: 4, key: 'P' },
        };
        assert_eq!(apk.hint(), opkg.hint());
        let world = FactsError::Apk {
            path: PathBuf::from(wire::APK_WORLD_PATH),
            source: apk::ApkError::EmptyWorld,
        };
        assert_eq!(
            crate::Error::from(world).cli_text(),
            "`/etc/apk/world`: `/etc/apk/world` is empty, so no package is marked as requested\n\n\
             hint: apk writes the world file on every `apk add`; `apk fix` rewrites a damaged one"
        );
        assert_eq!(
            FactsError::Missing {
                what: "board name",
                path: PathBuf::from("/tmp/sysinfo/board_name"),
            }
            .hint(),
            None
        );
    }
}
