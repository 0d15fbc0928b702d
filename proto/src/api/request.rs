//! The build request (`POST /api/v1/build`) and its validation.
//!
//! [`BuildRequest`] holds every field of ASU's pydantic model (<https://github.com/openwrt/asu/blob/main/asu/build_request.py>) with the same
//! defaults; unknown keys are ignored, as LuCI sends several. Its serde implementation is
//! lenient (for requests echoed back in responses); bodies from clients go through
//! [`crate::api::parse_build_request`], which applies ASU's patterns and our [`RequestLimits`].

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A build request as ASU's API v1 defines it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRequest {
    /// Distribution; only `openwrt` is served. Default `"openwrt"`.
    #[serde(default = "default_distro")]
    pub distro: String,
    /// Requested version, e.g. `24.10.6`, `SNAPSHOT`, `24.10-SNAPSHOT`.
    pub version: String,
    /// Expected revision, e.g. `r28959-29397011cc`; empty for "any". Default `""`.
    #[serde(default)]
    pub version_code: String,
    /// `target/subtarget`, e.g. `ath79/generic`.
    pub target: String,
    /// ImageBuilder profile or a board name / DT compatible (`tplink,archer-c7-v5`).
    pub profile: String,
    /// Extra packages, or the complete list when `diff_packages` is set. Default `[]`.
    #[serde(default)]
    pub packages: Vec<String>,
    /// Package name → expected version; when non-empty its keys replace `packages`. Default `{}`.
    #[serde(default)]
    pub packages_versions: BTreeMap<String, String>,
    /// `true`: `packages` is absolute, every default package not listed is removed.
    #[serde(default)]
    pub diff_packages: bool,
    /// A shell script installed as `/etc/uci-defaults/99-asu-defaults`. Default `null`.
    #[serde(default)]
    pub defaults: Option<String>,
    /// Root filesystem size in MB (`ROOTFS_PARTSIZE`). Default `null`.
    #[serde(default)]
    pub rootfs_size_mb: Option<u32>,
    /// Root filesystem type (`ROOTFS_FILESYSTEM`). Default `null`.
    #[serde(default)]
    pub filesystem: Option<Filesystem>,
    /// Extra package feeds: name → URL. Default `{}`.
    #[serde(default)]
    pub repositories: BTreeMap<String, String>,
    /// Whether `repositories` replace or extend the ImageBuilder's feeds. Default `replace`.
    #[serde(default)]
    pub repositories_mode: RepositoriesMode,
    /// Public keys (usign base64 or PEM) for the extra feeds. Default `[]`.
    #[serde(default)]
    pub repository_keys: Vec<String>,
    /// Client identification, e.g. `owut/2025.01.01`, for statistics. Default `null`.
    #[serde(default)]
    pub client: Option<String>,
}

/// `filesystem`: the values ASU accepts (any other value is a 422 `enum` error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Filesystem {
    /// `squashfs`
    #[serde(rename = "squashfs")]
    Squashfs,
    /// `ext4`
    #[serde(rename = "ext4")]
    Ext4,
    /// `ubifs`
    #[serde(rename = "ubifs")]
    Ubifs,
    /// `erofs`
    #[serde(rename = "erofs")]
    Erofs,
    /// `jffs2`
    #[serde(rename = "jffs2")]
    Jffs2,
    /// `jffs2-nand`
    #[serde(rename = "jffs2-nand")]
    Jffs2Nand,
    /// `targz`
    #[serde(rename = "targz")]
    Targz,
    /// `cpiogz`
    #[serde(rename = "cpiogz")]
    Cpiogz,
}

/// `repositories_mode`: what to do with the ImageBuilder's own feeds.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum RepositoriesMode {
    /// `append`: keep the ImageBuilder's feeds and add `repositories`.
    #[serde(rename = "append")]
    Append,
    /// `replace` (default): use only `repositories`.
    #[default]
    #[serde(rename = "replace")]
    Replace,
}

/// Limits applied while validating a build request.
///
/// The first two come from the server configuration and are published in `overview.json`
/// (`server.max_custom_rootfs_size_mb`, `server.max_defaults_length`); the rest are ours (ASU
/// has none) and bound the memory a single request can make us spend.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestLimits {
    /// Largest `rootfs_size_mb` (ASU default 1024).
    pub max_custom_rootfs_size_mb: u32,
    /// Longest `defaults` script in characters (ASU default 20480).
    pub max_defaults_length: usize,
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
    /// Most entries in `packages`, and in `packages_versions`.
    pub max_packages: usize,
    /// Longest identifier (distro, version, version_code, target, profile, package name or
    /// version, repository name) in characters.
    pub max_identifier_length: usize,
    /// Most entries in `repositories`.
    pub max_repositories: usize,
    /// Longest repository URL in characters.
    pub max_repository_url_length: usize,
    /// Most entries in `repository_keys`.
    pub max_repository_keys: usize,
    /// Longest repository key in characters (a PEM public key is about 180).
    pub max_repository_key_length: usize,
    /// Longest `client` in characters.
    pub max_client_length: usize,
}

/// Default for [`RequestLimits::max_custom_rootfs_size_mb`], as ASU.
pub const DEFAULT_MAX_CUSTOM_ROOTFS_SIZE_MB: u32 = 1024;
/// Default for [`RequestLimits::max_defaults_length`], as ASU.
pub const DEFAULT_MAX_DEFAULTS_LENGTH: usize = 20480;

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            max_custom_rootfs_size_mb: DEFAULT_MAX_CUSTOM_ROOTFS_SIZE_MB,
            max_defaults_length: DEFAULT_MAX_DEFAULTS_LENGTH,
            max_body_bytes: 256 * 1024,
            max_packages: 1000,
            max_identifier_length: 128,
            max_repositories: 16,
            max_repository_url_length: 512,
            max_repository_keys: 16,
            max_repository_key_length: 4096,
            max_client_length: 128,
        }
    }
}

impl RequestLimits {
    /// ASU's two configurable limits with our defaults for the rest; other fields can be
    /// changed afterwards.
    pub fn new(max_custom_rootfs_size_mb: u32, max_defaults_length: usize) -> Self {
        Self {
            max_custom_rootfs_size_mb,
            max_defaults_length,
            ..Self::default()
        }
    }
}

impl Filesystem {
    /// Every value, in ASU's order (the order of the 422 message).
    pub const ALL: [Self; 8] = [
        Self::Squashfs,
        Self::Ext4,
        Self::Ubifs,
        Self::Erofs,
        Self::Jffs2,
        Self::Jffs2Nand,
        Self::Targz,
        Self::Cpiogz,
    ];

    /// The wire string, also the `ROOTFS_FILESYSTEM` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Squashfs => "squashfs",
            Self::Ext4 => "ext4",
            Self::Ubifs => "ubifs",
            Self::Erofs => "erofs",
            Self::Jffs2 => "jffs2",
            Self::Jffs2Nand => "jffs2-nand",
            Self::Targz => "targz",
            Self::Cpiogz => "cpiogz",
        }
    }

    /// The value for a wire string, if it is one.
    pub fn from_wire(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|fs| fs.as_str() == value)
    }
}

impl fmt::Display for Filesystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl RepositoriesMode {
    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Append => "append",
            Self::Replace => "replace",
        }
    }
}

impl fmt::Display for RepositoriesMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl BuildRequest {
    /// A request with the three required fields and every other field at ASU's default.
    pub fn new(
        version: impl Into<String>,
        target: impl Into<String>,
        profile: impl Into<String>,
    ) -> Self {
        Self {
            distro: default_distro(),
            version: version.into(),
            version_code: String::new(),
            target: target.into(),
            profile: profile.into(),
            packages: Vec::new(),
            packages_versions: BTreeMap::new(),
            diff_packages: false,
            defaults: None,
            rootfs_size_mb: None,
            filesystem: None,
            repositories: BTreeMap::new(),
            repositories_mode: RepositoriesMode::Replace,
            repository_keys: Vec::new(),
            client: None,
        }
    }
}

fn default_distro() -> String {
    "openwrt".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filesystem_wire_strings_round_trip() {
        for fs in Filesystem::ALL {
            assert_eq!(Filesystem::from_wire(fs.as_str()), Some(fs));
            assert_eq!(
                serde_json::to_value(fs).unwrap(),
                serde_json::json!(fs.as_str())
            );
        }
        assert_eq!(Filesystem::from_wire("btrfs"), None);
    }

    #[test]
    fn limits_new_keeps_our_defaults_for_the_rest() {
        let limits = RequestLimits::new(2048, 100);
        assert_eq!(limits.max_custom_rootfs_size_mb, 2048);
        assert_eq!(limits.max_defaults_length, 100);
        assert_eq!(limits.max_packages, RequestLimits::default().max_packages);
    }

    #[test]
    fn lenient_deserialize_fills_asu_defaults() {
        let request: BuildRequest = serde_json::from_str(
            r#"{"version": "24.10.6", "target": "x86/64", "profile": "generic"}"#,
        )
        .unwrap();
        assert_eq!(request, BuildRequest::new("24.10.6", "x86/64", "generic"));
        assert_eq!(request.repositories_mode, RepositoriesMode::Replace);
    }
}
