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
