//! OpenWrt downloads metadata: `.versions.json`, `.targets.json`, per-target `profiles.json`
//! and `feeds.conf`, as <https://downloads.openwrt.org> publishes them and ASU reads them.
//!
//! - [`parse_versions`] → [`Versions`]: stable/oldstable/upcoming and the version list.
//! - [`parse_targets`] → `target/subtarget` → package architecture.
//! - [`parse_profiles`] → [`Profiles`]: the target metadata and every device profile, unknown
//!   keys kept; [`Profiles::resolve_profile`] maps a requested profile or board name to a
//!   profile id the way ASU does.
//! - [`parse_feeds_conf`] → the feed names of a `feeds.conf`.
//!
//! Every parser takes the downloaded bytes, checks a size limit first and never panics.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::wire_enum::wire_enum;
use crate::excerpt::{MAX_LINE_CHARS, excerpt};
use crate::json;

/// Largest `.versions.json` accepted, in bytes.
pub const MAX_VERSIONS_JSON_BYTES: usize = 1024 * 1024;
/// Largest `.targets.json` accepted, in bytes.
pub const MAX_TARGETS_JSON_BYTES: usize = 1024 * 1024;
/// Largest `profiles.json` accepted, in bytes (ramips/mt7621, the biggest, is a few MiB).
pub const MAX_PROFILES_JSON_BYTES: usize = 32 * 1024 * 1024;
/// Largest `feeds.conf` accepted, in bytes.
pub const MAX_FEEDS_CONF_BYTES: usize = 64 * 1024;

/// `<upstream>/.versions.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Versions {
    /// Current stable release, e.g. `24.10.6`.
    pub stable_version: String,
    /// Previous stable release.
    #[serde(default)]
    pub oldstable_version: String,
    /// Upcoming release candidate, or `""`.
    #[serde(default)]
    pub upcoming_version: String,
    /// Every published version.
    #[serde(default)]
    pub versions_list: Vec<String>,
    /// Alternative image URL template (the firmware selector reads it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url_override: Option<String>,
    /// Any other field, kept verbatim.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `<upstream>/<path>/.targets.json`: `target/subtarget` → package architecture.
pub type Targets = BTreeMap<String, String>;

/// `<upstream>/<path>/targets/<target>/<subtarget>/profiles.json`, also written by an
/// ImageBuilder into its output directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profiles {
    /// Package architecture, e.g. `mips_24kc`.
    pub arch_packages: String,
    /// Default packages of the target.
    #[serde(default)]
    pub default_packages: Vec<String>,
    /// Format version (1).
    #[serde(default)]
    pub metadata_version: u32,
    /// Profile id → profile.
    pub profiles: BTreeMap<String, Profile>,
    /// Reproducible-build timestamp.
    pub source_date_epoch: SourceDateEpoch,
    /// `target/subtarget`.
    pub target: String,
    /// Revision, e.g. `r28959-29397011cc`.
    pub version_code: String,
    /// Version, e.g. `24.10.6` or `SNAPSHOT`.
    pub version_number: String,
    /// Kernel triple (newer releases); names the `kmods/` directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linux_kernel: Option<LinuxKernel>,
    /// Any other field, kept verbatim.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// One device profile of `profiles.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Packages the profile adds (or removes, `-pkg`).
    #[serde(default)]
    pub device_packages: Vec<String>,
    /// Common prefix of the image file names.
    #[serde(default)]
    pub image_prefix: String,
    /// The images upstream built.
    #[serde(default)]
    pub images: Vec<ImageInfo>,
    /// DT compatibles / board names the profile is for.
    #[serde(default)]
    pub supported_devices: Vec<String>,
    /// Device names.
    #[serde(default)]
    pub titles: Vec<Title>,
    /// Any other field, kept verbatim.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// One built image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// Root filesystem: `squashfs`, `ext4`, `initramfs`, ...
    pub filesystem: String,
    /// File name under `bin_dir`.
    pub name: String,
    /// SHA-256 of the file as served (what a router verifies).
    pub sha256: String,
    /// SHA-256 before the signature trailer was attached (what rebuilders compare).
    #[serde(default)]
    pub sha256_unsigned: String,
    /// Image type.
    #[serde(rename = "type")]
    pub image_type: ImageType,
    /// File name under `bin_dir` of the image's usign signature (`<name>.sig`), when the server
    /// signs images; not part of upstream `profiles.json` or ASU's responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// The file's length in bytes as served, when the server states it (Attendant's server
    /// does; upstream `profiles.json` and ASU do not). A router caps the download at it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

wire_enum! {
    /// `images[].type`: what an image is for. A device's sysupgrade image is
    /// [`ImageType::Sysupgrade`] on most targets, [`ImageType::Combined`] (whole disk) on x86,
    /// armsr and loongarch, [`ImageType::CombinedEfi`] there when booted through EFI
    /// ([`crate::board::sysupgrade_image_type`]).
    pub enum ImageType {
        /// `sysupgrade`: most targets.
        Sysupgrade = "sysupgrade",
        /// `factory`: the first install from the vendor firmware.
        Factory = "factory",
        /// `combined`: a whole-disk image (x86, armsr, loongarch booted by BIOS).
        Combined = "combined",
        /// `combined-efi`: a whole-disk image for EFI boot.
        CombinedEfi = "combined-efi",
        /// `sdcard`
        Sdcard = "sdcard",
        /// `kernel`
        Kernel = "kernel",
        /// `rootfs`
        Rootfs = "rootfs",
        /// `nand-sysupgrade`
        NandSysupgrade = "nand-sysupgrade",
        /// `nand-factory`
        NandFactory = "nand-factory",
    }
}

/// One profile of `profiles.json` flattened with its target's metadata, as ASU serves it at
/// `/json/v1/<path>/targets/<target>/<subtarget>/<profile>.json` and as a finished build's
/// response starts ([`crate::api::BuildResponse::from_profile`]). Made by [`Profiles::flatten`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlatProfile {
    /// The profile id.
    pub id: String,
    /// Package architecture, e.g. `mips_24kc`.
    pub arch_packages: String,
    /// Default packages of the target.
    #[serde(default)]
    pub default_packages: Vec<String>,
    /// Packages the profile adds (or removes, `-pkg`).
    #[serde(default)]
    pub device_packages: Vec<String>,
    /// Common prefix of the image file names.
    #[serde(default)]
    pub image_prefix: String,
    /// The images.
    #[serde(default)]
    pub images: Vec<ImageInfo>,
    /// Format version (1).
    #[serde(default)]
    pub metadata_version: u32,
    /// Reproducible-build timestamp.
    pub source_date_epoch: SourceDateEpoch,
    /// `source_date_epoch` formatted as ASU writes it (`2024-04-30T21:45:35.000000Z`); filled
    /// in by the server, which owns the clock formatting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_at: Option<String>,
    /// DT compatibles / board names the profile is for.
    #[serde(default)]
    pub supported_devices: Vec<String>,
    /// `target/subtarget`.
    pub target: String,
    /// Device names.
    #[serde(default)]
    pub titles: Vec<Title>,
    /// Revision, e.g. `r28959-29397011cc`.
    pub version_code: String,
    /// Version, e.g. `24.10.6`.
    pub version_number: String,
    /// Kernel triple (newer releases).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linux_kernel: Option<LinuxKernel>,
    /// Unknown keys of the target and of the profile (the profile's win), kept verbatim.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// The keys [`FlatProfile`] types; an unknown key of the same name is dropped when flattening,
/// so the flattened document never carries a key twice.
const FLAT_PROFILE_KEYS: [&str; 15] = [
    "id",
    "arch_packages",
    "default_packages",
    "device_packages",
    "image_prefix",
    "images",
    "metadata_version",
    "source_date_epoch",
    "build_at",
    "supported_devices",
    "target",
    "titles",
    "version_code",
    "version_number",
    "linux_kernel",
];

/// A device title: `{vendor, model, variant?}` or a plain `{title}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Title {
    /// `{"vendor": "TP-Link", "model": "Archer C7", "variant": "v5"}`.
    Device {
        /// Vendor.
        vendor: String,
        /// Model.
        model: String,
        /// Hardware revision, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        variant: Option<String>,
    },
    /// `{"title": "Generic x86/64"}`.
    Plain {
        /// The whole title.
        title: String,
    },
}

/// `source_date_epoch`: an integer in most files, a string in some.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SourceDateEpoch {
    /// Seconds since the epoch.
    Seconds(i64),
    /// The same as a string, as some ImageBuilders write it.
    Text(String),
}

/// `linux_kernel`: the kernel triple.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinuxKernel {
    /// Kernel version, e.g. `6.6.110`.
    pub version: String,
    /// Package release, e.g. `1`.
    pub release: String,
    /// Module vermagic hash.
    pub vermagic: String,
}

/// How a requested profile was matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProfileMatch {
    /// The request named the profile id.
    Id,
    /// The request named a `supported_devices` entry (commas → underscores).
    SupportedDevice,
    /// Nothing matched, and the target's only profile is `generic` (x86, armsr, ...).
    GenericFallback,
}

/// A profile request resolved to a profile id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedProfile {
    /// The profile id to build.
    pub id: String,
    /// How it was found.
    pub matched: ProfileMatch,
}

/// No profile of the target matches the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("profile `{profile}` is not a profile or supported device of this target")]
pub struct UnsupportedProfile {
    /// The requested profile, sanitised (`,` → `_`).
    pub profile: String,
}

/// Why upstream metadata could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamError {
    /// The file exceeds its limit.
    #[error("{what} is {length} bytes, more than the limit of {max}")]
    TooLarge {
        /// Which file.
        what: &'static str,
        /// Its length.
        length: usize,
        /// The limit.
        max: usize,
    },
    /// The file is not the expected JSON.
    #[error("{what} is not valid: {source}")]
    Json {
        /// Which file.
        what: &'static str,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// The file is not UTF-8.
    #[error("{what} is not UTF-8 text")]
    NotUtf8 {
        /// Which file.
        what: &'static str,
    },
    /// A `feeds.conf` line has fewer than two fields.
    #[error("`feeds.conf` line {line} has no feed name: `{text}`")]
    FeedLine {
        /// 1-based line number.
        line: usize,
        /// The line, truncated.
        text: String,
    },
}

/// Parses `.versions.json`.
pub fn parse_versions(bytes: &[u8]) -> Result<Versions, UpstreamError> {
    decode(".versions.json", bytes, MAX_VERSIONS_JSON_BYTES)
}

/// Parses `.targets.json`.
pub fn parse_targets(bytes: &[u8]) -> Result<Targets, UpstreamError> {
    decode(".targets.json", bytes, MAX_TARGETS_JSON_BYTES)
}

/// Parses a target's `profiles.json`.
pub fn parse_profiles(bytes: &[u8]) -> Result<Profiles, UpstreamError> {
    decode("profiles.json", bytes, MAX_PROFILES_JSON_BYTES)
}

/// The feed names of a `feeds.conf` (second whitespace-separated field of each line; blank
/// lines and `#` comments skipped), e.g. `packages` from
/// `src-git packages https://git.openwrt.org/feed/packages.git^b1635b8`.
pub fn parse_feeds_conf(bytes: &[u8]) -> Result<Vec<String>, UpstreamError> {
    const WHAT: &str = "feeds.conf";
    if bytes.len() > MAX_FEEDS_CONF_BYTES {
        return Err(UpstreamError::TooLarge {
            what: WHAT,
            length: bytes.len(),
            max: MAX_FEEDS_CONF_BYTES,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|_| UpstreamError::NotUtf8 { what: WHAT })?;
    let mut feeds = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        match trimmed.split_whitespace().nth(1) {
            Some(name) => feeds.push(name.to_owned()),
            None => {
                return Err(UpstreamError::FeedLine {
                    line: index.saturating_add(1),
                    text: excerpt(trimmed, MAX_LINE_CHARS),
                });
            }
        }
    }
    Ok(feeds)
}

impl Versions {
    /// `latest.json` order: upcoming (if non-empty), stable, oldstable (if non-empty).
    pub fn latest(&self) -> Vec<&str> {
        [
            self.upcoming_version.as_str(),
            self.stable_version.as_str(),
            self.oldstable_version.as_str(),
        ]
        .into_iter()
        .filter(|v| !v.is_empty())
        .collect()
    }
}

impl Profiles {
    /// The profile `id` flattened with the target's metadata, or `None` if there is no such
    /// profile. This is the one place where a profile and its target are merged.
    pub fn flatten(&self, id: &str) -> Option<FlatProfile> {
        let profile = self.profiles.get(id)?;
        let mut extra = self.extra.clone();
        extra.extend(profile.extra.clone());
        extra.retain(|key, _| !FLAT_PROFILE_KEYS.contains(&key.as_str()));
        Some(FlatProfile {
            id: id.to_owned(),
            arch_packages: self.arch_packages.clone(),
            default_packages: self.default_packages.clone(),
            device_packages: profile.device_packages.clone(),
            image_prefix: profile.image_prefix.clone(),
            images: profile.images.clone(),
            metadata_version: self.metadata_version,
            source_date_epoch: self.source_date_epoch.clone(),
            build_at: None,
            supported_devices: profile.supported_devices.clone(),
            target: self.target.clone(),
            titles: profile.titles.clone(),
            version_code: self.version_code.clone(),
            version_number: self.version_number.clone(),
            linux_kernel: self.linux_kernel.clone(),
            extra,
        })
    }

    /// Resolves a requested profile like ASU's `validate_request`: after `,` → `_`, a profile
    /// id matches first, then any profile whose `supported_devices` entry (with `,` → `_`) is
    /// equal (ids in sorted order, so the answer is deterministic where ASU's depends on file
    /// order); failing both, a target whose only profile is `generic` builds `generic`.
    pub fn resolve_profile(&self, requested: &str) -> Result<ResolvedProfile, UnsupportedProfile> {
        let wanted = crate::api::hash::sanitize_profile(requested);
        if self.profiles.contains_key(&wanted) {
            return Ok(ResolvedProfile {
                id: wanted,
                matched: ProfileMatch::Id,
            });
        }
        let alias = self.profiles.iter().find(|(_, profile)| {
            profile
                .supported_devices
                .iter()
                .any(|device| crate::api::hash::sanitize_profile(device) == wanted)
        });
        if let Some((id, _)) = alias {
            return Ok(ResolvedProfile {
                id: id.clone(),
                matched: ProfileMatch::SupportedDevice,
            });
        }
        if self.profiles.len() == 1 && self.profiles.contains_key("generic") {
            return Ok(ResolvedProfile {
                id: "generic".to_owned(),
                matched: ProfileMatch::GenericFallback,
            });
        }
        Err(UnsupportedProfile { profile: wanted })
    }
}

impl SourceDateEpoch {
    /// The timestamp in seconds, if the text form holds an integer.
    pub fn seconds(&self) -> Option<i64> {
        match self {
            Self::Seconds(seconds) => Some(*seconds),
            Self::Text(text) => text.trim().parse().ok(),
        }
    }
}

impl LinuxKernel {
    /// The `kmods/` directory name: `<version>-<release>-<vermagic>`.
    pub fn kmods_dir(&self) -> String {
        format!("{}-{}-{}", self.version, self.release, self.vermagic)
    }
}

impl fmt::Display for Title {
    /// `TP-Link Archer C7 v5` or the plain title.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Device {
                vendor,
                model,
                variant,
            } => {
                write!(f, "{vendor} {model}")?;
                if let Some(variant) = variant {
                    write!(f, " {variant}")?;
                }
                Ok(())
            }
            Self::Plain { title } => f.write_str(title),
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
    max: usize,
) -> Result<T, UpstreamError> {
    json::decode(
        bytes,
        max,
        |length| UpstreamError::TooLarge { what, length, max },
        |source| UpstreamError::Json { what, source },
    )
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn profiles(value: Value) -> Profiles {
        parse_profiles(value.to_string().as_bytes()).unwrap()
    }

    fn two_profiles() -> Profiles {
        profiles(json!({
            "arch_packages": "mips_24kc", "default_packages": ["base-files"], "metadata_version": 1,
            "profiles": {
                "tplink_archer-c7-v5": {"device_packages": [], "image_prefix": "p", "images": [],
                    "supported_devices": ["tplink,archer-c7-v5"], "titles": [{"vendor": "TP-Link", "model": "Archer C7", "variant": "v5"}]},
                "8dev_carambola2": {"device_packages": [], "image_prefix": "q", "images": [],
                    "supported_devices": ["8dev,carambola2"], "titles": [{"vendor": "8devices", "model": "Carambola2"}]}
            },
            "source_date_epoch": "1714513535", "target": "ath79/generic",
            "version_code": "r1-a", "version_number": "24.10.6"
        }))
    }

    #[test]
    fn flattens_a_profile_with_its_target() {
        let mut p = two_profiles();
        p.extra.insert("target_only".into(), json!(1));
        p.extra.insert("shared".into(), json!("target"));
        let profile = p.profiles.get_mut("8dev_carambola2").unwrap();
        profile.extra.insert("shared".into(), json!("profile"));
        // A profile key that names a typed field must not appear twice in the document.
        profile.extra.insert("id".into(), json!("spoofed"));
        let flat = p.flatten("8dev_carambola2").unwrap();
        assert_eq!(flat.id, "8dev_carambola2");
        assert_eq!(flat.image_prefix, "q");
        assert_eq!(flat.arch_packages, "mips_24kc");
        assert_eq!(flat.target, "ath79/generic");
        assert_eq!(flat.extra.get("shared"), Some(&json!("profile")));
        assert_eq!(flat.extra.get("target_only"), Some(&json!(1)));
        assert!(!flat.extra.contains_key("id"));
        let document = serde_json::to_value(&flat).unwrap();
        assert_eq!(document["id"], "8dev_carambola2");
        assert!(document.get("profiles").is_none());
        assert_eq!(
            serde_json::from_value::<FlatProfile>(document).unwrap(),
            flat
        );
        assert_eq!(p.flatten("nope"), None);
    }

    #[test]
    fn resolves_id_alias_and_board_name() {
        let p = two_profiles();
        assert_eq!(
            p.resolve_profile("tplink_archer-c7-v5").unwrap(),
            ResolvedProfile {
                id: "tplink_archer-c7-v5".into(),
                matched: ProfileMatch::Id
            }
        );
        // A board name with a comma sanitises straight to the id.
        assert_eq!(
            p.resolve_profile("tplink,archer-c7-v5").unwrap().matched,
            ProfileMatch::Id
        );
        assert_eq!(
            p.resolve_profile("8dev,carambola2").unwrap().id,
            "8dev_carambola2"
        );
    }

    #[test]
    fn resolves_supported_device_that_differs_from_id() {
        let p = profiles(json!({
            "arch_packages": "x", "profiles": {"glinet_gl-mt6000": {"supported_devices": ["glinet,gl-mt6000", "glinet,mt6000"]}},
            "source_date_epoch": 1, "target": "mediatek/filogic", "version_code": "r", "version_number": "v"
        }));
        assert_eq!(
            p.resolve_profile("glinet,mt6000").unwrap(),
            ResolvedProfile {
                id: "glinet_gl-mt6000".into(),
                matched: ProfileMatch::SupportedDevice
            }
        );
    }

    #[test]
    fn falls_back_to_lone_generic_profile() {
        let p = profiles(json!({
            "arch_packages": "x86_64", "profiles": {"generic": {"titles": [{"title": "Generic x86/64"}]}},
            "source_date_epoch": 1, "target": "x86/64", "version_code": "r", "version_number": "v"
        }));
        assert_eq!(
            p.resolve_profile("qemu-standard-pc-i440fx-piix-1996")
                .unwrap()
                .matched,
            ProfileMatch::GenericFallback
        );
    }

    #[test]
    fn reports_unsupported_profile_with_asu_text() {
        let error = two_profiles().resolve_profile("foo,bar").unwrap_err();
        assert_eq!(error.profile, "foo_bar");
        assert_eq!(
            error.to_string(),
            "profile `foo_bar` is not a profile or supported device of this target"
        );
        let bad: crate::api::response::BadRequest = error.into();
        assert!(
            bad.to_string()
                .starts_with("Unsupported profile: foo_bar. ")
        );
    }

    #[test]
    fn source_date_epoch_accepts_int_and_string() {
        assert_eq!(
            two_profiles().source_date_epoch.seconds(),
            Some(1_714_513_535)
        );
        assert_eq!(SourceDateEpoch::Seconds(5).seconds(), Some(5));
        assert_eq!(SourceDateEpoch::Text("x".into()).seconds(), None);
    }

    #[test]
    fn titles_display_like_the_firmware_selector() {
        let p = two_profiles();
        assert_eq!(
            p.profiles["tplink_archer-c7-v5"].titles[0].to_string(),
            "TP-Link Archer C7 v5"
        );
        assert_eq!(
            p.profiles["8dev_carambola2"].titles[0].to_string(),
            "8devices Carambola2"
        );
        assert_eq!(
            Title::Plain {
                title: "Generic x86/64".into()
            }
            .to_string(),
            "Generic x86/64"
        );
    }

    #[test]
    fn parses_versions_and_latest_order() {
        let v = parse_versions(br#"{"stable_version": "24.10.6", "oldstable_version": "23.05.5", "upcoming_version": "", "versions_list": ["24.10.6", "23.05.5"]}"#).unwrap();
        assert_eq!(v.latest(), ["24.10.6", "23.05.5"]);
        assert_eq!(v.image_url_override, None);
    }

    #[test]
    fn parses_feeds_conf_names() {
        let feeds = parse_feeds_conf(
            b"src-git packages https://git.openwrt.org/feed/packages.git^b1635b8\n\nsrc-git luci https://git.openwrt.org/project/luci.git^1\n# comment\n",
        )
        .unwrap();
        assert_eq!(feeds, ["packages", "luci"]);
        let error = parse_feeds_conf(b"src-git\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "`feeds.conf` line 1 has no feed name: `src-git`"
        );
    }

    #[test]
    fn rejects_oversized_files() {
        let big = vec![b' '; MAX_FEEDS_CONF_BYTES + 1];
        assert!(matches!(
            parse_feeds_conf(&big),
            Err(UpstreamError::TooLarge { .. })
        ));
    }

    #[test]
    fn kmods_dir_joins_the_triple() {
        let k = LinuxKernel {
            version: "6.6.110".into(),
            release: "1".into(),
            vermagic: "abc".into(),
        };
        assert_eq!(k.kmods_dir(), "6.6.110-1-abc");
    }

    proptest! {
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_versions(&bytes);
            let _ = parse_targets(&bytes);
            let _ = parse_profiles(&bytes);
            let _ = parse_feeds_conf(&bytes);
        }

        #[test]
        fn resolve_never_panics(requested in "\\PC{0,40}") {
            let _ = two_profiles().resolve_profile(&requested);
        }
    }
}
