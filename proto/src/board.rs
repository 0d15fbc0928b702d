//! Device facts: `ubus call system board`, the release files, `/tmp/sysinfo`, `/etc/board.json`
//! and `/proc/mounts`.
//!
//! [`SystemBoard`] is the JSON reply of procd's `system board` method (procd `system.c`,
//! <https://github.com/openwrt/procd/blob/master/system.c>). The agent does not need ubus to get it: [`DeviceFacts::from_files`]
//! assembles the same shape from the files procd reads, the way procd does:
//!
//! - `board_name` and `model` from `/tmp/sysinfo/board_name` and `/tmp/sysinfo/model`
//!   (first line, trimmed; [`parse_board_name`], [`parse_model`]);
//! - `release` from `/usr/lib/os-release` ([`OsRelease`]: `NAME` → `distribution`, `VERSION` →
//!   `version`, `BUILD_ID` → `revision`, `VERSION_CODENAME` → `codename`, `OPENWRT_BOARD` →
//!   `target`, `OPENWRT_RELEASE` → `description`, `OPENWRT_BUILD_DATE` → `builddate`,
//!   `FIRMWARE_URL` → `firmware_url`), or when that file is missing from `/etc/openwrt_release`
//!   ([`OpenwrtRelease`]: the `DISTRIB_*` keys, as procd did before 2024-06);
//! - `rootfs_type` from `/proc/mounts` with procd's rule ([`rootfs_type_from_mounts`]): the type
//!   of `/`, or of `/rom` when `/` is an overlay. procd answers `initramfs` when it booted from
//!   RAM; that comes from procd's own state, not from a file, so the caller passes it in;
//! - `kernel`, `hostname` and `system` come from `uname` and `/proc/cpuinfo`, which the caller
//!   reads.
//!
//! Beyond procd's shape, [`DeviceFacts`] carries the device's `compat_version` from
//! `/etc/board.json` (`system.compat_version`, default `1.0`, the value sysupgrade's `fwtool.sh`
//! compares; see [`crate::fwtool`]) and whether the router booted through EFI.
//!
//! [`profile_from_board_name`] turns a board name into an ASU `profile`, and
//! [`sysupgrade_image_type`] guesses the image type owut asks for.
//!
//! Both release files are shell assignments (`KEY="value"`); their parser handles double quotes
//! (with `\"`, `\\`, `\$` and `` \` `` escapes), single quotes, backslash escapes outside quotes,
//! comments and blank lines. It never expands `$VAR`: the files are read as data.
//!
//! # Why one file
//!
//! About 740 lines before the tests (over 1000 with them). Every parser here feeds one value,
//! [`DeviceFacts`], and shares [`BoardError`]; the two release-file parsers share the shell
//! quoting rules. Splitting per file format would scatter procd's one rule of which file wins
//! over several modules, so they stay together.

use serde::{Deserialize, Serialize};

use crate::excerpt::{MAX_VALUE_CHARS, excerpt};
use crate::json;
use crate::upstream::ImageType;
use crate::wire::{
    BOARD_JSON_PATH, OPENWRT_RELEASE_PATH, OS_RELEASE_PATH, PROC_MOUNTS_PATH,
    SYSINFO_BOARD_NAME_PATH, SYSINFO_MODEL_PATH,
};

/// Largest release file (`os-release`, `openwrt_release`) accepted, in bytes.
pub const MAX_RELEASE_FILE_SIZE: usize = 16 * 1024;

/// Most assignments accepted in one release file.
pub const MAX_RELEASE_KEYS: usize = 256;

/// Largest `/tmp/sysinfo` file accepted, in bytes.
pub const MAX_SYSINFO_SIZE: usize = 4096;

/// Longest `board_name` or `model` accepted, in bytes.
pub const MAX_SYSINFO_VALUE_LEN: usize = 256;

/// Largest `/etc/board.json` accepted, in bytes.
pub const MAX_BOARD_JSON_SIZE: usize = 1024 * 1024;

/// Largest `ubus call system board` reply accepted, in bytes.
pub const MAX_SYSTEM_BOARD_SIZE: usize = 64 * 1024;

/// Largest `/proc/mounts` accepted, in bytes.
pub const MAX_MOUNTS_SIZE: usize = 1024 * 1024;

/// The `compat_version` of a device whose `board.json` names none (sysupgrade's default).
pub const DEFAULT_COMPAT_VERSION: &str = "1.0";

/// What [`SystemBoard::parse`] names in its errors.
const SYSTEM_BOARD_SOURCE: &str = "ubus call system board";

/// The reply of `ubus call system board`. Keys procd leaves out are `None`; unknown keys are
/// ignored.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SystemBoard {
    /// `uname -r` (`6.6.86`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    /// `uname -n`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The CPU, from `/proc/cpuinfo` (`Qualcomm Atheros QCA956X ver 1 rev 0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// The human-readable model (`TP-Link Archer C7 v5`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The board name sysupgrade and ASU identify the device by (`tplink,archer-c7-v5`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub board_name: Option<String>,
    /// The root filesystem type (`squashfs`, `ext4`, `initramfs`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs_type: Option<String>,
    /// The running release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<Release>,
}

/// The `release` object of [`SystemBoard`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// `OpenWrt`.
    pub distribution: String,
    /// The release version (`24.10.1`, `SNAPSHOT`); parse it with [`crate::version::Version`].
    pub version: String,
    /// The build revision (`r28597-0425664679`).
    pub revision: String,
    /// The release code name, when the build sets one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codename: Option<String>,
    /// `<target>/<subtarget>` (`ath79/generic`).
    pub target: String,
    /// `OpenWrt 24.10.1 r28597-0425664679`.
    pub description: String,
    /// Build time in epoch seconds, as a string (procd since 2024-07).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builddate: Option<String>,
    /// Where the build's firmware lives (procd since 2025-01).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware_url: Option<String>,
}

impl SystemBoard {
    /// Parses the JSON reply of `ubus call system board`.
    pub fn parse(json: &[u8]) -> Result<SystemBoard, BoardError> {
        crate::json::decode(
            json,
            MAX_SYSTEM_BOARD_SIZE,
            |size| BoardError::TooLarge {
                file: SYSTEM_BOARD_SOURCE,
                size,
                max: MAX_SYSTEM_BOARD_SIZE,
            },
            |source| BoardError::Json {
                file: SYSTEM_BOARD_SOURCE,
                source,
            },
        )
    }

    /// The ASU `profile` for this board ([`profile_from_board_name`]).
    pub fn profile(&self) -> Option<String> {
        self.board_name.as_deref().map(profile_from_board_name)
    }

    /// The `<target>/<subtarget>` of the running release.
    pub fn target(&self) -> Option<&str> {
        self.release.as_ref().map(|release| release.target.as_str())
    }
}

/// Everything the agent knows about the device: procd's [`SystemBoard`] plus the facts
/// sysupgrade and image selection need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceFacts {
    /// The `ubus call system board` shape.
    pub board: SystemBoard,
    /// The device's `compat_version` (`1.0` unless `board.json` says otherwise).
    pub compat_version: String,
    /// Whether the router booted through EFI (`/sys/firmware/efi` exists).
    pub efi: bool,
}

/// The raw inputs of [`DeviceFacts::from_files`]; `None` means the file does not exist.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeviceFiles<'a> {
    /// Bytes of `/tmp/sysinfo/board_name`.
    pub board_name: Option<&'a [u8]>,
    /// Bytes of `/tmp/sysinfo/model`.
    pub model: Option<&'a [u8]>,
    /// Bytes of `/usr/lib/os-release`.
    pub os_release: Option<&'a [u8]>,
    /// Bytes of `/etc/openwrt_release`.
    pub openwrt_release: Option<&'a [u8]>,
    /// Bytes of `/etc/board.json`.
    pub board_json: Option<&'a [u8]>,
    /// The root filesystem type: [`rootfs_type_from_mounts`], or `initramfs`.
    pub rootfs_type: Option<&'a str>,
    /// `uname -r`.
    pub kernel: Option<&'a str>,
    /// `uname -n`.
    pub hostname: Option<&'a str>,
    /// The CPU string from `/proc/cpuinfo`.
    pub system: Option<&'a str>,
    /// Whether `/sys/firmware/efi` exists.
    pub efi: bool,
}

impl DeviceFacts {
    /// Assembles the facts from the router's files, the way procd assembles `system board`.
    pub fn from_files(files: &DeviceFiles<'_>) -> Result<DeviceFacts, BoardError> {
        let release = match (files.os_release, files.openwrt_release) {
            (Some(bytes), _) => Some(OsRelease::parse(bytes)?.release()?),
            (None, Some(bytes)) => Some(OpenwrtRelease::parse(bytes)?.release()?),
            (None, None) => None,
        };
        let compat_version = match files.board_json {
            Some(bytes) => BoardJson::parse(bytes)?.compat_version,
            None => DEFAULT_COMPAT_VERSION.to_owned(),
        };
        Ok(DeviceFacts {
            board: SystemBoard {
                kernel: files.kernel.map(str::to_owned),
                hostname: files.hostname.map(str::to_owned),
                system: files.system.map(str::to_owned),
                model: files.model.map(parse_model).transpose()?,
                board_name: files.board_name.map(parse_board_name).transpose()?,
                rootfs_type: files.rootfs_type.map(str::to_owned),
                release,
            },
            compat_version,
            efi: files.efi,
        })
    }

    /// The sysupgrade image type to ask for ([`sysupgrade_image_type`]), if the target is known.
    pub fn image_type(&self) -> Option<ImageType> {
        self.board
            .target()
            .map(|target| sysupgrade_image_type(target, self.efi))
    }
}

/// `/usr/lib/os-release`: shell assignments, every key kept in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsRelease {
    variables: Vec<(String, String)>,
}

impl OsRelease {
    /// Parses the bytes of `/usr/lib/os-release`.
    pub fn parse(bytes: &[u8]) -> Result<OsRelease, BoardError> {
        Ok(OsRelease {
            variables: parse_assignments(bytes, OS_RELEASE_PATH)?,
        })
    }

    /// The value of `key` (the last assignment wins, as in a shell).
    pub fn get(&self, key: &str) -> Option<&str> {
        lookup(&self.variables, key)
    }

    /// Every assignment, in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.variables
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str()))
    }

    /// The `release` object procd builds from this file.
    pub fn release(&self) -> Result<Release, BoardError> {
        let required = |key| required_value(&self.variables, OS_RELEASE_PATH, key);
        Ok(Release {
            distribution: required("NAME")?,
            version: required("VERSION")?,
            revision: required("BUILD_ID")?,
            codename: self.get("VERSION_CODENAME").map(str::to_owned),
            target: required("OPENWRT_BOARD")?,
            description: required("OPENWRT_RELEASE")?,
            builddate: self.get("OPENWRT_BUILD_DATE").map(str::to_owned),
            firmware_url: self.get("FIRMWARE_URL").map(str::to_owned),
        })
    }
}

/// `/etc/openwrt_release`: shell assignments of `DISTRIB_*` keys, every key kept in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenwrtRelease {
    variables: Vec<(String, String)>,
}

impl OpenwrtRelease {
    /// Parses the bytes of `/etc/openwrt_release`.
    pub fn parse(bytes: &[u8]) -> Result<OpenwrtRelease, BoardError> {
        Ok(OpenwrtRelease {
            variables: parse_assignments(bytes, OPENWRT_RELEASE_PATH)?,
        })
    }

    /// The value of `key` (the last assignment wins, as in a shell).
    pub fn get(&self, key: &str) -> Option<&str> {
        lookup(&self.variables, key)
    }

    /// Every assignment, in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.variables
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str()))
    }

    /// The `release` object procd built from this file before 2024-06 (no `builddate`,
    /// no `firmware_url`).
    pub fn release(&self) -> Result<Release, BoardError> {
        let required = |key| required_value(&self.variables, OPENWRT_RELEASE_PATH, key);
        Ok(Release {
            distribution: required("DISTRIB_ID")?,
            version: required("DISTRIB_RELEASE")?,
            revision: required("DISTRIB_REVISION")?,
            codename: self.get("DISTRIB_CODENAME").map(str::to_owned),
            target: required("DISTRIB_TARGET")?,
            description: required("DISTRIB_DESCRIPTION")?,
            builddate: None,
            firmware_url: None,
        })
    }
}

/// What this crate reads from `/etc/board.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardJson {
    /// `model.id` (the board name at first boot).
    pub model_id: Option<String>,
    /// `model.name`.
    pub model_name: Option<String>,
    /// `system.compat_version`, or [`DEFAULT_COMPAT_VERSION`].
    pub compat_version: String,
}

impl BoardJson {
    /// Parses the bytes of `/etc/board.json`; other keys (`network`, `led`, ...) are ignored.
    pub fn parse(bytes: &[u8]) -> Result<BoardJson, BoardError> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(default)]
            model: Option<RawModel>,
            #[serde(default)]
            system: Option<RawSystem>,
        }
        #[derive(Deserialize)]
        struct RawModel {
            id: Option<String>,
            name: Option<String>,
        }
        #[derive(Deserialize)]
        struct RawSystem {
            compat_version: Option<String>,
        }
        let raw: Raw = json::decode(
            bytes,
            MAX_BOARD_JSON_SIZE,
            |size| BoardError::TooLarge {
                file: BOARD_JSON_PATH,
                size,
                max: MAX_BOARD_JSON_SIZE,
            },
            |source| BoardError::Json {
                file: BOARD_JSON_PATH,
                source,
            },
        )?;
        let compat_version = raw
            .system
            .and_then(|system| system.compat_version)
            .unwrap_or_else(|| DEFAULT_COMPAT_VERSION.to_owned());
        let (model_id, model_name) = raw
            .model
            .map(|model| (model.id, model.name))
            .unwrap_or_default();
        Ok(BoardJson {
            model_id,
            model_name,
            compat_version,
        })
    }
}

/// Reads `/tmp/sysinfo/board_name`: the first line, trimmed; one word.
pub fn parse_board_name(bytes: &[u8]) -> Result<String, BoardError> {
    let value = sysinfo_value(bytes, SYSINFO_BOARD_NAME_PATH)?;
    if let Some(character) = value.chars().find(|c| c.is_whitespace()) {
        return Err(BoardError::InvalidValue {
            file: SYSINFO_BOARD_NAME_PATH,
            value: excerpt(&value, MAX_VALUE_CHARS),
            character,
        });
    }
    Ok(value)
}

/// Reads `/tmp/sysinfo/model`: the first line, trimmed.
pub fn parse_model(bytes: &[u8]) -> Result<String, BoardError> {
    sysinfo_value(bytes, SYSINFO_MODEL_PATH)
}

/// procd's `rootfs_type` rule on the bytes of `/proc/mounts`: the filesystem type of the first
/// mount on `/`; when that is `overlay`, the type of the first mount on `/rom` instead.
/// `Ok(None)` when no such mount exists (procd then leaves `rootfs_type` out).
pub fn rootfs_type_from_mounts(mounts: &[u8]) -> Result<Option<String>, BoardError> {
    if mounts.len() > MAX_MOUNTS_SIZE {
        return Err(BoardError::TooLarge {
            file: PROC_MOUNTS_PATH,
            size: mounts.len(),
            max: MAX_MOUNTS_SIZE,
        });
    }
    // The kernel separates the fields with one space and escapes spaces inside them (`\040`),
    // but procd splits on runs of blanks, so a hand-written or doubled blank is read the same
    // way here. A line that names fewer than three fields has no type to report: refused rather
    // than read as an empty type. Blanks are ASCII's white space as Unicode counts it (vertical
    // tab included, which `u8::is_ascii_whitespace` leaves out), so a type is never white space.
    let mut root = None;
    let mut rom = None;
    for (index, line) in mounts.split(|byte| *byte == b'\n').enumerate() {
        let line_number = index.saturating_add(1);
        let mut fields = line
            .split(|byte| matches!(byte, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r'))
            .filter(|field| !field.is_empty());
        let Some(_device) = fields.next() else {
            continue;
        };
        let (Some(point), Some(fstype)) = (fields.next(), fields.next()) else {
            return Err(BoardError::ShortMountsLine {
                file: PROC_MOUNTS_PATH,
                line: line_number,
                content: excerpt(&String::from_utf8_lossy(line), MAX_VALUE_CHARS),
            });
        };
        let slot = match point {
            b"/" => &mut root,
            b"/rom" => &mut rom,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some((line_number, fstype));
        }
    }
    let found = match root {
        Some((_, b"overlay")) => match rom {
            Some((_, b"overlay")) | None => None,
            found => found,
        },
        found => found,
    };
    let Some((line, fstype)) = found else {
        return Ok(None);
    };
    let fstype = std::str::from_utf8(fstype).map_err(|_| BoardError::NotUtf8 {
        file: PROC_MOUNTS_PATH,
        line,
    })?;
    // Filesystem types are short kernel names (`squashfs`, `ext4`, `fuse.sshfs`).
    if let Some(character) = fstype.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(BoardError::InvalidValue {
            file: PROC_MOUNTS_PATH,
            value: excerpt(fstype, MAX_VALUE_CHARS),
            character,
        });
    }
    Ok(Some(fstype.to_owned()))
}

/// Turns a board name into an ASU `profile`: every `,` becomes `_`
/// (`tplink,archer-c7-v5` → `tplink_archer-c7-v5`).
///
/// ASU replaces every comma on receipt (<https://github.com/openwrt/asu>, the build request's
/// `profile` validation); owut replaces only the first.
/// OpenWrt board names carry one comma (`vendor,device`), so both give the same profile; for a
/// name with several, this follows the server, which has the last word.
pub fn profile_from_board_name(board_name: &str) -> String {
    // The server applies the same rule to the profile a request names, so both ends agree.
    crate::api::hash::sanitize_profile(board_name)
}

/// The target families whose images are whole-disk `combined` images (owut's list). A target
/// matches when its name (before the `/`) starts with one of them, so OpenWrt's `loongarch64`
/// counts as owut's `loongarch`.
pub const COMBINED_IMAGE_TARGETS: [&str; 3] = ["armsr", "loongarch", "x86"];

/// owut's guess of the image type for `target` (`x86/64`): `combined` on
/// [`COMBINED_IMAGE_TARGETS`], `combined-efi` there when the router booted through EFI, and
/// `sysupgrade` everywhere else (EFI does not change that: other targets have no EFI variant).
pub fn sysupgrade_image_type(target: &str, efi: bool) -> ImageType {
    let family = target.split('/').next().unwrap_or(target);
    let combined = COMBINED_IMAGE_TARGETS
        .iter()
        .any(|prefix| family.starts_with(prefix));
    match (combined, efi) {
        (true, true) => ImageType::CombinedEfi,
        (true, false) => ImageType::Combined,
        (false, _) => ImageType::Sysupgrade,
    }
}

/// Errors reading device facts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BoardError {
    /// The input is larger than its limit.
    #[error("`{file}` is {size} bytes, more than the limit of {max} bytes")]
    TooLarge {
        /// The router path (or command) of the input.
        file: &'static str,
        /// Size of the input.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A line that must be text is not UTF-8.
    #[error("line {line} of `{file}` is not valid UTF-8")]
    NotUtf8 {
        /// The router path of the file.
        file: &'static str,
        /// 1-based line number.
        line: usize,
    },
    /// A release file line is not `KEY=value`.
    #[error("line {line} of `{file}` is not a `KEY=value` assignment: `{content}`")]
    MalformedLine {
        /// The router path of the file.
        file: &'static str,
        /// 1-based line number.
        line: usize,
        /// The line (truncated).
        content: String,
    },
    /// A quote or a trailing backslash is not closed on its line.
    #[error("line {line} of `{file}` has an unterminated quote or escape")]
    UnterminatedQuote {
        /// The router path of the file.
        file: &'static str,
        /// 1-based line number.
        line: usize,
    },
    /// Unquoted text follows a value after whitespace (`KEY=a b`).
    #[error("line {line} of `{file}` has text after the value: `{content}`")]
    TrailingText {
        /// The router path of the file.
        file: &'static str,
        /// 1-based line number.
        line: usize,
        /// The extra text (truncated).
        content: String,
    },
    /// More assignments than [`MAX_RELEASE_KEYS`].
    #[error("`{file}` has more than {max} assignments")]
    TooManyKeys {
        /// The router path of the file.
        file: &'static str,
        /// The limit.
        max: usize,
    },
    /// A release file lacks a key procd's `release` object needs.
    #[error("`{file}` has no `{key}`")]
    MissingKey {
        /// The router path of the file.
        file: &'static str,
        /// The missing key.
        key: &'static str,
    },
    /// A `/tmp/sysinfo` file is empty.
    #[error("`{file}` is empty")]
    EmptyValue {
        /// The router path of the file.
        file: &'static str,
    },
    /// A `/tmp/sysinfo` value is too long or contains a character it may not.
    #[error("`{file}` holds `{value}`, which contains the character {character:?}")]
    InvalidValue {
        /// The router path of the file.
        file: &'static str,
        /// The value (truncated).
        value: String,
        /// The offending character.
        character: char,
    },
    /// A `/tmp/sysinfo` value is longer than [`MAX_SYSINFO_VALUE_LEN`].
    #[error("`{file}` holds a value of {length} bytes, more than the limit of {max} bytes")]
    ValueTooLong {
        /// The router path of the file.
        file: &'static str,
        /// Its length.
        length: usize,
        /// The limit.
        max: usize,
    },
    /// A `/proc/mounts` line has fewer than three fields (device, mount point, type).
    #[error(
        "line {line} of `{file}` has no filesystem type: `{content}`; expected `device \
         mount-point type options 0 0`"
    )]
    ShortMountsLine {
        /// The router path of the file.
        file: &'static str,
        /// 1-based line number.
        line: usize,
        /// The line (truncated).
        content: String,
    },
    /// JSON input does not have the expected shape.
    #[error("`{file}` is not the expected JSON: {source}")]
    Json {
        /// The router path (or command) of the input.
        file: &'static str,
        /// What serde_json reported (with line and column).
        #[source]
        source: serde_json::Error,
    },
}

fn lookup<'a>(variables: &'a [(String, String)], key: &str) -> Option<&'a str> {
    variables
        .iter()
        .rev()
        .find(|(name, _)| name == key)
        .map(|(_, value)| value.as_str())
}

/// The value of `key` in `file`, which the `release` object cannot do without.
fn required_value(
    variables: &[(String, String)],
    file: &'static str,
    key: &'static str,
) -> Result<String, BoardError> {
    lookup(variables, key)
        .map(str::to_owned)
        .ok_or(BoardError::MissingKey { file, key })
}

fn sysinfo_value(bytes: &[u8], file: &'static str) -> Result<String, BoardError> {
    if bytes.len() > MAX_SYSINFO_SIZE {
        return Err(BoardError::TooLarge {
            file,
            size: bytes.len(),
            max: MAX_SYSINFO_SIZE,
        });
    }
    let first = bytes
        .split(|byte| *byte == b'\n')
        .next()
        .unwrap_or_default();
    let text = std::str::from_utf8(first)
        .map_err(|_| BoardError::NotUtf8 { file, line: 1 })?
        .trim();
    if text.is_empty() {
        return Err(BoardError::EmptyValue { file });
    }
    if text.len() > MAX_SYSINFO_VALUE_LEN {
        return Err(BoardError::ValueTooLong {
            file,
            length: text.len(),
            max: MAX_SYSINFO_VALUE_LEN,
        });
    }
    if let Some(character) = text.chars().find(|c| c.is_control()) {
        return Err(BoardError::InvalidValue {
            file,
            value: excerpt(text, MAX_VALUE_CHARS),
            character,
        });
    }
    Ok(text.to_owned())
}

/// Parses shell assignments (`KEY=value`, `KEY="value"`, `KEY='value'`), one per line.
fn parse_assignments(
    bytes: &[u8],
    file: &'static str,
) -> Result<Vec<(String, String)>, BoardError> {
    if bytes.len() > MAX_RELEASE_FILE_SIZE {
        return Err(BoardError::TooLarge {
            file,
            size: bytes.len(),
            max: MAX_RELEASE_FILE_SIZE,
        });
    }
    let mut variables = Vec::new();
    for (index, raw) in bytes.split(|byte| *byte == b'\n').enumerate() {
        let line = index.saturating_add(1);
        let text = std::str::from_utf8(raw).map_err(|_| BoardError::NotUtf8 { file, line })?;
        let text = text.trim_start();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let malformed = || BoardError::MalformedLine {
            file,
            line,
            content: excerpt(text, MAX_VALUE_CHARS),
        };
        let (key, value) = text.split_once('=').ok_or_else(malformed)?;
        if !is_shell_name(key) {
            return Err(malformed());
        }
        if variables.len() >= MAX_RELEASE_KEYS {
            return Err(BoardError::TooManyKeys {
                file,
                max: MAX_RELEASE_KEYS,
            });
        }
        variables.push((key.to_owned(), shell_value(value, file, line)?));
    }
    Ok(variables)
}

fn is_shell_name(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Unquotes one shell word; text after unquoted whitespace may only be a `#` comment.
fn shell_value(word: &str, file: &'static str, line: usize) -> Result<String, BoardError> {
    let unterminated = BoardError::UnterminatedQuote { file, line };
    let mut value = String::new();
    let mut chars = word.char_indices();
    while let Some((position, c)) = chars.next() {
        match c {
            '\'' => loop {
                match chars.next() {
                    Some((_, '\'')) => break,
                    Some((_, inner)) => value.push(inner),
                    None => return Err(unterminated),
                }
            },
            '"' => loop {
                match chars.next() {
                    Some((_, '"')) => break,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, escaped @ ('"' | '\\' | '$' | '`'))) => value.push(escaped),
                        Some((_, other)) => {
                            value.push('\\');
                            value.push(other);
                        }
                        None => return Err(unterminated),
                    },
                    Some((_, inner)) => value.push(inner),
                    None => return Err(unterminated),
                }
            },
            '\\' => match chars.next() {
                Some((_, escaped)) => value.push(escaped),
                None => return Err(unterminated),
            },
            c if c.is_whitespace() => {
                let rest = word.get(position..).unwrap_or_default().trim_start();
                if rest.is_empty() || rest.starts_with('#') {
                    break;
                }
                return Err(BoardError::TrailingText {
                    file,
                    line,
                    content: excerpt(rest, MAX_VALUE_CHARS),
                });
            }
            c => value.push(c),
        }
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const OS_RELEASE_24_10: &[u8] = include_bytes!("../testdata/board/ath79-24.10/os-release");
    const OPENWRT_RELEASE_24_10: &[u8] =
        include_bytes!("../testdata/board/ath79-24.10/openwrt_release");
    const BOARD_JSON_24_10: &[u8] = include_bytes!("../testdata/board/ath79-24.10/board.json");
    const SYSTEM_BOARD_24_10: &[u8] =
        include_bytes!("../testdata/board/ath79-24.10/system-board.json");
    const MOUNTS_24_10: &[u8] = include_bytes!("../testdata/board/ath79-24.10/mounts");
    const OS_RELEASE_25_12: &[u8] = include_bytes!("../testdata/board/x86-64-25.12/os-release");
    const OPENWRT_RELEASE_25_12: &[u8] =
        include_bytes!("../testdata/board/x86-64-25.12/openwrt_release");
    const BOARD_JSON_25_12: &[u8] = include_bytes!("../testdata/board/x86-64-25.12/board.json");
    const SYSTEM_BOARD_25_12: &[u8] =
        include_bytes!("../testdata/board/x86-64-25.12/system-board.json");
    const MOUNTS_25_12: &[u8] = include_bytes!("../testdata/board/x86-64-25.12/mounts");

    fn facts(
        os_release: Option<&'static [u8]>,
        openwrt_release: &'static [u8],
        board_json: &'static [u8],
        board_name: &'static [u8],
        model: &'static [u8],
        rootfs_type: Option<&str>,
        efi: bool,
    ) -> DeviceFacts {
        DeviceFacts::from_files(&DeviceFiles {
            board_name: Some(board_name),
            model: Some(model),
            os_release,
            openwrt_release: Some(openwrt_release),
            board_json: Some(board_json),
            rootfs_type,
            kernel: None,
            hostname: None,
            system: None,
            efi,
        })
        .unwrap()
    }

    #[test]
    fn assembles_ath79_facts_like_procd() {
        let rootfs = rootfs_type_from_mounts(MOUNTS_24_10).unwrap();
        let expected = SystemBoard::parse(SYSTEM_BOARD_24_10).unwrap();
        let mut facts = facts(
            Some(OS_RELEASE_24_10),
            OPENWRT_RELEASE_24_10,
            BOARD_JSON_24_10,
            b"tplink,archer-c7-v5\n",
            b"TP-Link Archer C7 v5\n",
            rootfs.as_deref(),
            false,
        );
        facts.board.kernel = expected.kernel.clone();
        facts.board.hostname = expected.hostname.clone();
        facts.board.system = expected.system.clone();
        assert_eq!(facts.board, expected);
        assert_eq!(facts.compat_version, "2.0");
        assert_eq!(
            facts.board.profile().as_deref(),
            Some("tplink_archer-c7-v5")
        );
        assert_eq!(facts.image_type(), Some(ImageType::Sysupgrade));
    }

    #[test]
    fn assembles_x86_efi_facts_like_procd() {
        let rootfs = rootfs_type_from_mounts(MOUNTS_25_12).unwrap();
        assert_eq!(rootfs.as_deref(), Some("ext4"));
        let expected = SystemBoard::parse(SYSTEM_BOARD_25_12).unwrap();
        let mut facts = facts(
            Some(OS_RELEASE_25_12),
            OPENWRT_RELEASE_25_12,
            BOARD_JSON_25_12,
            b"qemu-standard-pc-q35-ich9-2009\n",
            b"QEMU Standard PC (Q35 + ICH9, 2009)\n",
            rootfs.as_deref(),
            true,
        );
        facts.board.kernel = expected.kernel.clone();
        facts.board.hostname = expected.hostname.clone();
        facts.board.system = expected.system.clone();
        assert_eq!(facts.board, expected);
        assert_eq!(facts.compat_version, DEFAULT_COMPAT_VERSION);
        assert_eq!(facts.image_type(), Some(ImageType::CombinedEfi));
        let release = facts.board.release.unwrap();
        assert_eq!(release.builddate.as_deref(), Some("1764156000"));
        assert!(release.firmware_url.is_some());
    }

    #[test]
    fn falls_back_to_openwrt_release() {
        let facts = facts(
            None,
            OPENWRT_RELEASE_24_10,
            BOARD_JSON_24_10,
            b"tplink,archer-c7-v5",
            b"TP-Link Archer C7 v5",
            Some("squashfs"),
            false,
        );
        let release = facts.board.release.unwrap();
        let from_os_release = OsRelease::parse(OS_RELEASE_24_10)
            .unwrap()
            .release()
            .unwrap();
        assert_eq!(release.version, from_os_release.version);
        assert_eq!(release.revision, from_os_release.revision);
        assert_eq!(release.target, from_os_release.target);
        assert_eq!(release.description, from_os_release.description);
        assert_eq!(release.builddate, None);
    }

    #[test]
    fn system_board_round_trips() {
        for json in [SYSTEM_BOARD_24_10, SYSTEM_BOARD_25_12] {
            let board = SystemBoard::parse(json).unwrap();
            let again = serde_json::to_vec(&board).unwrap();
            assert_eq!(SystemBoard::parse(&again).unwrap(), board);
        }
    }

    #[test]
    fn system_board_every_prefix_fails() {
        // Every cut before the closing brace is refused; only trailing whitespace may go.
        let end = SYSTEM_BOARD_24_10.trim_ascii_end().len();
        for cut in 0..end {
            assert!(SystemBoard::parse(SYSTEM_BOARD_24_10.get(..cut).unwrap()).is_err());
        }
        assert!(SystemBoard::parse(SYSTEM_BOARD_24_10.get(..end).unwrap()).is_ok());
    }

    #[test]
    fn system_board_without_release_version_fails() {
        let error = SystemBoard::parse(br#"{"release": {"distribution": "OpenWrt"}}"#).unwrap_err();
        assert!(matches!(
            error,
            BoardError::Json {
                file: "ubus call system board",
                ..
            }
        ));
        assert!(error.to_string().starts_with(
            "`ubus call system board` is not the expected JSON: missing field `version`"
        ));
    }

    #[test]
    fn shell_quoting() {
        let parsed = OsRelease::parse(
            b"# comment\n\nA=plain\nB=\"dou ble\"\nC='sin gle'\nD=\"q\\\"uote\\\\ \\$x \\n\"\nE=es\\ caped\nF=\"a\"'b'c\nG=\nH=x # trailing comment\n  I=\"indented\"\n",
        )
        .unwrap();
        let expected = [
            ("A", "plain"),
            ("B", "dou ble"),
            ("C", "sin gle"),
            ("D", "q\"uote\\ $x \\n"),
            ("E", "es caped"),
            ("F", "abc"),
            ("G", ""),
            ("H", "x"),
            ("I", "indented"),
        ];
        assert_eq!(parsed.iter().collect::<Vec<_>>(), expected);
    }

    #[test]
    fn last_assignment_wins_and_unknown_keys_are_kept() {
        let parsed = OsRelease::parse(b"X=1\nX=2\nOPENWRT_FUTURE=\"yes\"\n").unwrap();
        assert_eq!(parsed.get("X"), Some("2"));
        assert_eq!(parsed.get("OPENWRT_FUTURE"), Some("yes"));
    }

    #[test]
    fn rejects_unterminated_quote() {
        let error = OsRelease::parse(b"NAME=\"OpenWrt\nVERSION=1\n").unwrap_err();
        assert!(matches!(
            error,
            BoardError::UnterminatedQuote { line: 1, .. }
        ));
        assert_eq!(
            error.to_string(),
            "line 1 of `/usr/lib/os-release` has an unterminated quote or escape"
        );
    }

    #[test]
    fn rejects_unquoted_space() {
        let error = OpenwrtRelease::parse(b"DISTRIB_DESCRIPTION=OpenWrt 24.10.1\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "line 1 of `/etc/openwrt_release` has text after the value: `24.10.1`"
        );
    }

    #[test]
    fn rejects_line_without_assignment() {
        let error = OsRelease::parse(b"export NAME\n").unwrap_err();
        assert!(matches!(error, BoardError::MalformedLine { line: 1, .. }));
    }

    #[test]
    fn release_needs_build_id() {
        let error = OsRelease::parse(b"NAME=OpenWrt\nVERSION=1\n")
            .unwrap()
            .release()
            .unwrap_err();
        assert_eq!(error.to_string(), "`/usr/lib/os-release` has no `BUILD_ID`");
    }

    #[test]
    fn sysinfo_is_trimmed() {
        assert_eq!(
            parse_board_name(b"  glinet,gl-mt6000 \n").unwrap(),
            "glinet,gl-mt6000"
        );
        assert_eq!(
            parse_model(b"GL.iNet GL-MT6000\nextra\n").unwrap(),
            "GL.iNet GL-MT6000"
        );
        assert!(matches!(
            parse_board_name(b"\n"),
            Err(BoardError::EmptyValue {
                file: SYSINFO_BOARD_NAME_PATH
            })
        ));
        assert!(matches!(
            parse_board_name(b"a b"),
            Err(BoardError::InvalidValue { character: ' ', .. })
        ));
    }

    #[test]
    fn board_json_defaults_compat_version() {
        let board = BoardJson::parse(br#"{"model": {"id": "x", "name": "X"}}"#).unwrap();
        assert_eq!(board.compat_version, "1.0");
        assert_eq!(board.model_id.as_deref(), Some("x"));
        let board = BoardJson::parse(BOARD_JSON_24_10).unwrap();
        assert_eq!(board.compat_version, "2.0");
        assert_eq!(board.model_id.as_deref(), Some("tplink,archer-c7-v5"));
        assert!(matches!(
            BoardJson::parse(b"42"),
            Err(BoardError::Json {
                file: BOARD_JSON_PATH,
                ..
            })
        ));
    }

    #[test]
    fn rootfs_type_follows_procd() {
        assert_eq!(
            rootfs_type_from_mounts(MOUNTS_24_10).unwrap().as_deref(),
            Some("squashfs")
        );
        assert_eq!(
            rootfs_type_from_mounts(b"/dev/root / ext4 rw 0 0\n")
                .unwrap()
                .as_deref(),
            Some("ext4")
        );
        // `/` is an overlay but there is no `/rom`: procd reports nothing.
        assert_eq!(
            rootfs_type_from_mounts(b"overlayfs:/overlay / overlay rw 0 0\n").unwrap(),
            None
        );
        assert_eq!(rootfs_type_from_mounts(b"").unwrap(), None);
    }

    /// Found by the issue 20 campaign after the fix above: a vertical tab is white space to
    /// Unicode but not to `u8::is_ascii_whitespace`, so it stayed inside a type; a type is a
    /// word of printable ASCII.
    #[test]
    fn issue_20_a_mounts_type_is_a_word_of_printable_ascii() {
        assert_eq!(
            rootfs_type_from_mounts(b"/dev/root /\x0bext4 rw 0 0\n")
                .unwrap()
                .as_deref(),
            Some("ext4")
        );
        assert_eq!(
            rootfs_type_from_mounts(b"/dev/root / ext\x0b4\n")
                .unwrap()
                .as_deref(),
            Some("ext")
        );
        let error = rootfs_type_from_mounts(b"/dev/root / ext\x004 rw 0 0\n").unwrap_err();
        assert!(
            matches!(
                error,
                BoardError::InvalidValue {
                    character: '\0',
                    ..
                }
            ),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "`/proc/mounts` holds `ext\\04`, which contains the character '\\0'"
        );
        assert!(rootfs_type_from_mounts(b"r / t\xc3\xa9 rw\n").is_err());
    }

    /// Issue 20 (<https://github.com/attendant-openwrt/attendant/issues/20>), a fuzz finding:
    /// fields were split on single spaces, so `" / "` gave an empty filesystem type.
    #[test]
    fn issue_20_mounts_fields_split_on_blank_runs_and_are_never_empty() {
        for mounts in [&b" / "[..], b"/ \n", b"\t/\t\n", b"/dev/root   /\n"] {
            assert!(
                matches!(
                    rootfs_type_from_mounts(mounts),
                    Err(BoardError::ShortMountsLine { line: 1, .. })
                ),
                "{mounts:?}: {:?}",
                rootfs_type_from_mounts(mounts)
            );
        }
        assert_eq!(
            rootfs_type_from_mounts(b"/dev/root  /\t ext4 rw 0 0\n")
                .unwrap()
                .as_deref(),
            Some("ext4")
        );
        assert_eq!(
            rootfs_type_from_mounts(b"\n\n/dev/root /rom squashfs ro 0 0\n  \n o / overlay rw\n")
                .unwrap()
                .as_deref(),
            Some("squashfs")
        );
        assert_eq!(
            rootfs_type_from_mounts(b"proc /proc proc rw 0 0\n/dev/root /\n")
                .unwrap_err()
                .to_string(),
            "line 2 of `/proc/mounts` has no filesystem type: `/dev/root /`; expected `device \
             mount-point type options 0 0`"
        );
    }

    #[test]
    fn profiles_and_image_types() {
        assert_eq!(
            profile_from_board_name("tplink,archer-c7-v5"),
            "tplink_archer-c7-v5"
        );
        assert_eq!(profile_from_board_name("a,b,c"), "a_b_c");
        assert_eq!(
            sysupgrade_image_type("x86/64", true),
            ImageType::CombinedEfi
        );
        assert_eq!(sysupgrade_image_type("x86/64", false), ImageType::Combined);
        assert_eq!(
            sysupgrade_image_type("armsr/armv8", false),
            ImageType::Combined
        );
        assert_eq!(
            sysupgrade_image_type("loongarch64/generic", false),
            ImageType::Combined
        );
        assert_eq!(
            sysupgrade_image_type("loongarch/generic", true),
            ImageType::CombinedEfi
        );
        assert_eq!(
            sysupgrade_image_type("ath79/generic", true),
            ImageType::Sysupgrade
        );
        assert_eq!(ImageType::CombinedEfi.to_string(), "combined-efi");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
            let _ = OsRelease::parse(&bytes);
            let _ = OpenwrtRelease::parse(&bytes);
            let _ = SystemBoard::parse(&bytes);
            let _ = BoardJson::parse(&bytes);
            let _ = parse_board_name(&bytes);
            let _ = parse_model(&bytes);
            let _ = rootfs_type_from_mounts(&bytes);
        }

        #[test]
        fn shell_like_lines_never_panic(lines in proptest::collection::vec("[A-Z_]{1,6}=[a-z \"'\\\\#$]{0,12}", 0..10)) {
            let _ = OsRelease::parse(lines.join("\n").as_bytes());
        }
    }
}
