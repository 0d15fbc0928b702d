//! The channel tree as data: channels, their devices, and each device's numbered builds.
//!
//! These types are the one in-memory form of the tree. Operations (`ops`) are functions from a
//! tree to a changed tree, persistence (`store`) saves and loads them, publication (`publish`)
//! renders them into the signed static files routers read. Nothing here does I/O.
//!
//! The model follows Ubuntu's system-image server (channels → devices → numbered images, phased
//! percentage on the latest build, aliases, redirects, `fullcount` expiry;
//! <https://gitlab.com/ubports/infrastructure/system-image-server>) mapped onto OpenWrt: a device
//! is `target/subtarget/profile`, every build is a full image (OpenWrt flashes whole images, so
//! there are no deltas), and a build is either made by the ImageBuilder from the channel's recipe
//! or imported as a prebuilt file.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A channel and its devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channel {
    /// The name, e.g. `stable` or `lab/canary` (may contain `/`).
    pub name: String,
    /// Settings kept by the server, not published.
    pub settings: ChannelSettings,
    /// Hidden channels are published but not listed to routers by default.
    pub hidden: bool,
    /// This channel mirrors the named channel's devices and builds.
    pub alias: Option<String>,
    /// This channel is a hidden shallow copy pointing at the named channel's indexes.
    pub redirect: Option<String>,
    /// The devices, by [`DeviceId`] text (`target/subtarget/profile`).
    pub devices: BTreeMap<String, Device>,
}

/// Server-side settings of a channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelSettings {
    /// `manual` (populated by operators) or `auto` (populated by the importer).
    pub kind: ChannelKind,
    /// The first build number of a device without builds (system-image's `versionbase`).
    pub versionbase: u64,
    /// Builds kept per device; 0 keeps all (system-image's `fullcount`).
    pub fullcount: u32,
    /// Auto-halt and auto-advance of phased builds by their outcome reports (default: off).
    #[serde(default, skip_serializing_if = "Rollout::is_off")]
    pub rollout: Rollout,
}

/// What the server does with a channel's latest builds on its own, from the routers' outcome
/// reports (`channels::rollout` evaluates it).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Rollout {
    /// Halt (phase to 0 %) the latest build when the share of failed upgrades goes above this
    /// (default: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halt_failure_rate: Option<FailureRate>,
    /// Reports needed before a failure rate counts.
    #[serde(default)]
    pub halt_min_reports: u64,
    /// Steps a healthy rollout moves through by itself (default: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advance: Option<Advance>,
}

impl Rollout {
    /// Neither halt nor advance is set.
    pub fn is_off(&self) -> bool {
        self.halt_failure_rate.is_none() && self.advance.is_none()
    }
}

/// A share of failed upgrades, 0 to 1, kept in millionths so that settings compare exactly;
/// written as a number (`0.05`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FailureRate(u32);

/// Millionths in 1.
const RATE_SCALE: f64 = 1_000_000.0;

impl FailureRate {
    /// The rate of a number from 0 to 1; `None` outside (or not a number).
    pub fn new(rate: f64) -> Option<Self> {
        if !(0.0..=1.0).contains(&rate) {
            return None;
        }
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "0 <= rate <= 1, so the product is within 0..=1_000_000"
        )]
        let millionths = (rate * RATE_SCALE).round() as u32;
        Some(Self(millionths))
    }

    /// The rate as a number from 0 to 1.
    pub fn get(self) -> f64 {
        f64::from(self.0) / RATE_SCALE
    }
}

impl Serialize for FailureRate {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.get())
    }
}

impl<'de> Deserialize<'de> for FailureRate {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let rate = f64::deserialize(deserializer)?;
        Self::new(rate).ok_or_else(|| {
            serde::de::Error::custom(format!("failure rate {rate} is not between 0 and 1"))
        })
    }
}

/// Auto-advance: the phased percentages a healthy latest build moves through, each after
/// `min_successes` booted reports and `soak_seconds` at the step before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Advance {
    /// Percentages, rising, 1 to 100.
    pub steps: Vec<u8>,
    /// Booted reports needed at a step before moving on.
    pub min_successes: u64,
    /// Time at a step before moving on, in seconds.
    pub soak_seconds: u64,
}

/// How a channel is populated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    /// By operator commands only.
    Manual,
    /// By the importer, from the generators configured for the channel.
    Auto,
}

/// A device of a channel: `target/subtarget/profile`, e.g. `ath79/generic/tplink_archer-c7-v5`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DeviceId {
    /// OpenWrt target, e.g. `ath79`.
    pub target: String,
    /// Subtarget, e.g. `generic`.
    pub subtarget: String,
    /// Profile id as the ImageBuilder names it, e.g. `tplink_archer-c7-v5`.
    pub profile: String,
}

/// A device's entry in a channel.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Device {
    /// Per-device redirect: this device reads the named channel's index instead.
    pub redirect: Option<String>,
    /// Builds in ascending number order.
    pub builds: Vec<Build>,
    /// The highest build number ever given to this device in this channel (0: none yet), so a
    /// removed or expired build's number is never given again.
    #[serde(default)]
    pub last_build: u64,
}

/// One numbered build of a channel and device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Build {
    /// The build number: monotonic per channel and device, never reused.
    pub number: u64,
    /// Where the build stands; only [`BuildState::Ready`] builds are published.
    pub state: BuildState,
    /// How the images came to be.
    pub source: BuildSource,
    /// The OpenWrt release, e.g. `24.10.5`.
    pub openwrt_version: String,
    /// Its revision, e.g. `r28959-29397011cc`.
    pub version_code: String,
    /// What the channel adds to the stock image.
    pub recipe: Recipe,
    /// Free text for people.
    pub description: String,
    /// `key=value` pairs, published comma-joined (`openwrt=24.10.5,recipe=3,tag=Q4`).
    pub version_detail: Vec<(String, String)>,
    /// The oldest build that may upgrade straight to this one.
    pub minversion: Option<u64>,
    /// Share of devices offered this build while it is the latest: 0 (pulled) to 100.
    pub phased_percentage: u8,
    /// The image files, once built.
    pub images: Vec<ImageFile>,
    /// Creation time, Unix milliseconds.
    pub created_at: i64,
    /// Whether the images embed this build's own `/etc/attendant/channel.json` (built by the
    /// ImageBuilder): a copy under another number or channel is then rebuilt with its own
    /// stamp. `false` for imported images, which are reused as they are.
    #[serde(default)]
    pub embeds_stamp: bool,
}

/// Where a build stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum BuildState {
    /// Waiting for its image job.
    Pending {
        /// The job in the build queue.
        request_hash: String,
    },
    /// Images in the pool; published.
    Ready,
    /// The image job failed; kept so the number is never reused, never published.
    Failed {
        /// Why, as the build reported it.
        reason: String,
    },
}

/// How a build's images came to be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum BuildSource {
    /// Built by the ImageBuilder through the build queue.
    Built {
        /// The job's request hash.
        request_hash: String,
    },
    /// A prebuilt image file, imported as it is.
    Imported {
        /// Where it came from (a path or URL), for people.
        origin: String,
    },
    /// Copied from another build (revert, promotion, tag, alias).
    Copied {
        /// Source channel.
        channel: String,
        /// Source build number.
        build: u64,
    },
}

/// What a channel adds to the stock image of its OpenWrt version.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Recipe {
    /// Packages added to the profile's defaults.
    pub add: Vec<String>,
    /// Packages removed from them (built as `-name`).
    pub remove: Vec<String>,
    /// A first-boot uci-defaults script.
    pub defaults: Option<String>,
    /// Root filesystem size in MB.
    pub rootfs_size_mb: Option<u32>,
}

/// One image file of a build, stored in the content-addressed pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageFile {
    /// The file name as OpenWrt names it, e.g.
    /// `openwrt-24.10.5-ath79-generic-tplink_archer-c7-v5-squashfs-sysupgrade.bin`.
    pub name: String,
    /// `sysupgrade`, `factory`, `combined`, …
    pub image_type: String,
    /// `squashfs`, `ext4`, …
    pub filesystem: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, lowercase hex: the file's pool address.
    pub sha256: String,
}

/// The longest device id accepted, in bytes.
pub const MAX_DEVICE_ID_LEN: usize = 192;

/// Why a string is not a device id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceIdError {
    /// Not three non-empty `/`-separated parts.
    #[error(
        "device `{found}` is not `target/subtarget/profile` (e.g. `ath79/generic/tplink_archer-c7-v5`)"
    )]
    Shape {
        /// The text, truncated.
        found: String,
    },
    /// A part holds a character OpenWrt does not use in target, subtarget or profile names.
    #[error("device `{found}` has a character other than `a-z A-Z 0-9 _ - . ,` in a part")]
    Character {
        /// The text, truncated.
        found: String,
    },
    /// Longer than [`MAX_DEVICE_ID_LEN`].
    #[error("device id is longer than {MAX_DEVICE_ID_LEN} bytes")]
    TooLong,
}

impl DeviceId {
    /// `target/subtarget`, as the build API and ImageBuilder name it.
    pub fn target_path(&self) -> String {
        format!("{}/{}", self.target, self.subtarget)
    }
}

impl std::fmt::Display for DeviceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.target, self.subtarget, self.profile)
    }
}

impl std::str::FromStr for DeviceId {
    type Err = DeviceIdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() > MAX_DEVICE_ID_LEN {
            return Err(DeviceIdError::TooLong);
        }
        let shape = || DeviceIdError::Shape {
            found: text.to_owned(),
        };
        let mut parts = text.split('/');
        let (Some(target), Some(subtarget), Some(profile), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(shape());
        };
        if [target, subtarget, profile]
            .iter()
            .any(|part| part.is_empty())
        {
            return Err(shape());
        }
        let allowed = |part: &str| {
            !part.starts_with('.')
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.,".contains(c))
        };
        if ![target, subtarget, profile]
            .iter()
            .all(|part| allowed(part))
        {
            return Err(DeviceIdError::Character {
                found: text.to_owned(),
            });
        }
        Ok(Self {
            target: target.to_owned(),
            subtarget: subtarget.to_owned(),
            profile: profile.to_owned(),
        })
    }
}

impl Device {
    /// The latest build that was not a failure: the one a router is offered and the only one
    /// that may carry a phased percentage or be tagged.
    pub fn latest(&self) -> Option<&Build> {
        self.builds
            .iter()
            .rev()
            .find(|build| !matches!(build.state, BuildState::Failed { .. }))
    }

    /// The build with this number.
    pub fn build(&self, number: u64) -> Option<&Build> {
        self.builds.iter().find(|build| build.number == number)
    }
}

impl Build {
    /// `version_detail` as published: `key=value` pairs joined with `,`.
    pub fn version_detail_text(&self) -> String {
        self.version_detail
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A manual channel without devices, for tests.
#[cfg(test)]
pub(crate) fn test_channel(name: &str) -> Channel {
    Channel {
        name: name.to_owned(),
        settings: ChannelSettings {
            kind: ChannelKind::Manual,
            versionbase: 1,
            fullcount: 0,
            rollout: Rollout::default(),
        },
        hidden: false,
        alias: None,
        redirect: None,
        devices: BTreeMap::new(),
    }
}

/// A ready imported build with one image, for tests.
#[cfg(test)]
pub(crate) fn test_build(number: u64) -> Build {
    Build {
        number,
        state: BuildState::Ready,
        source: BuildSource::Imported {
            origin: format!("test-{number}.bin"),
        },
        openwrt_version: "24.10.5".to_owned(),
        version_code: "r28959-29397011cc".to_owned(),
        recipe: Recipe::default(),
        description: String::new(),
        version_detail: vec![("openwrt".to_owned(), "24.10.5".to_owned())],
        minversion: None,
        phased_percentage: 100,
        images: vec![ImageFile {
            name: format!("openwrt-{number}-squashfs-sysupgrade.bin"),
            image_type: "sysupgrade".to_owned(),
            filesystem: "squashfs".to_owned(),
            size: 4,
            sha256: format!("{number:064x}"),
        }],
        created_at: 0,
        embeds_stamp: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_id_round_trips() {
        let id: DeviceId = "ath79/generic/tplink_archer-c7-v5".parse().unwrap();
        assert_eq!(id.target_path(), "ath79/generic");
        assert_eq!(id.to_string(), "ath79/generic/tplink_archer-c7-v5");
    }

    #[test]
    fn rejects_malformed_device_ids() {
        for bad in [
            "ath79/generic",
            "a/b/c/d",
            "a//c",
            "/a/b",
            "a/b/../",
            "a/b/c d",
            "a/b/.x",
        ] {
            assert!(bad.parse::<DeviceId>().is_err(), "{bad}");
        }
        assert_eq!(
            "x".repeat(300).parse::<DeviceId>(),
            Err(DeviceIdError::TooLong)
        );
        assert_eq!(
            "a/b".parse::<DeviceId>().unwrap_err().to_string(),
            "device `a/b` is not `target/subtarget/profile` (e.g. `ath79/generic/tplink_archer-c7-v5`)"
        );
    }
}
