//! What a server offers: `overview.json`, `latest.json`, `branches.json` and the revision
//! endpoint (as ASU writes them, <https://github.com/openwrt/asu/blob/main/asu/util.py>).
//!
//! owut reads `upstream_url`, `server.max_custom_rootfs_size_mb`, `server.max_defaults_length`,
//! `branches[*].versions` and `branches[*].package_changes` from [`Overview`]; LuCI reads
//! [`Revision`] for snapshot upgrade checks. Unknown fields are kept in `extra`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::body::{BodyError, decode};
use crate::api::request::{DEFAULT_MAX_CUSTOM_ROOTFS_SIZE_MB, DEFAULT_MAX_DEFAULTS_LENGTH};

/// Largest `overview.json`, `branches.json` or `latest.json` accepted, in bytes.
pub const MAX_OVERVIEW_BYTES: usize = 4 * 1024 * 1024;

/// `GET /json/v1/overview.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Overview {
    /// Newest versions: upcoming (if any), stable, oldstable.
    pub latest: Vec<String>,
    /// Branch name (`24.10`, `SNAPSHOT`) → branch.
    pub branches: BTreeMap<String, Branch>,
    /// The downloads server ImageBuilders and indexes come from.
    pub upstream_url: String,
    /// Server facts and limits (ASU's defaults when a server omits them).
    #[serde(default)]
    pub server: ServerInfo,
    /// Any other field, kept verbatim.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// One branch of `overview.json` (also an entry of `branches.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Branch {
    /// `releases/{version}` or `snapshots`.
    pub path: String,
    /// Whether the branch is offered.
    #[serde(default)]
    pub enabled: bool,
    /// Whether this is a snapshot branch.
    #[serde(default)]
    pub snapshot: bool,
    /// Always `DEPRECATED`; kept for old clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_packages: Option<String>,
    /// Revision where the branch left master (absent for `SNAPSHOT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch_off_rev: Option<u64>,
    /// Package renames, additions and removals up to this branch.
    #[serde(default)]
    pub package_changes: Vec<PackageChange>,
    /// Offered versions, newest first.
    #[serde(default)]
    pub versions: Vec<String>,
    /// Branch name.
    pub name: String,
    /// `target/subtarget` → package architecture, for the newest version.
    #[serde(default)]
    pub targets: BTreeMap<String, String>,
    /// Any other field, kept verbatim.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A package change: `source` + `target` = rename, only `source` = no longer exists (owut
/// removes it), with `mandatory` the change must be applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageChange {
    /// The old package.
    pub source: String,
    /// The new package, for a rename.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The revision (rNNNNN number) from which it applies.
    pub revision: u64,
    /// Whether clients must apply it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mandatory: Option<bool>,
}

/// The `server` object of `overview.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// Server software version.
    #[serde(default)]
    pub version: String,
    /// Operator contact.
    #[serde(default)]
    pub contact: String,
    /// Whether `defaults` scripts are accepted; `None` when the server does not say (older
    /// servers), so a client cannot tell before it asks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_defaults: Option<bool>,
    /// URL prefixes extra repositories must start with (empty: none allowed).
    #[serde(default)]
    pub repository_allow_list: Vec<String>,
    /// Largest `rootfs_size_mb` (default 1024, as ASU).
    #[serde(default = "default_max_custom_rootfs_size_mb")]
    pub max_custom_rootfs_size_mb: u32,
    /// Longest `defaults` in characters (default 20480, as ASU).
    #[serde(default = "default_max_defaults_length")]
    pub max_defaults_length: usize,
    /// Any other field, kept verbatim.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `GET /json/v1/latest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latest {
    /// Upcoming (if any), stable and oldstable version.
    pub latest: Vec<String>,
}

/// `GET /json/v1/branches.json`: the branch objects of `overview.json` as a list.
pub type Branches = Vec<Branch>;

/// `GET /api/v1/revision/{version}/{target}/{subtarget}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    /// The `version_code` of the target's `profiles.json`, e.g. `r28959-29397011cc`.
    pub revision: String,
}

/// Parses `overview.json` (at most [`MAX_OVERVIEW_BYTES`]).
pub fn parse_overview(bytes: &[u8]) -> Result<Overview, BodyError> {
    decode("overview.json", bytes, MAX_OVERVIEW_BYTES)
}

/// Parses `branches.json` (at most [`MAX_OVERVIEW_BYTES`]).
pub fn parse_branches(bytes: &[u8]) -> Result<Branches, BodyError> {
    decode("branches.json", bytes, MAX_OVERVIEW_BYTES)
}

/// Parses `latest.json` (at most [`MAX_OVERVIEW_BYTES`]).
pub fn parse_latest(bytes: &[u8]) -> Result<Latest, BodyError> {
    decode("latest.json", bytes, MAX_OVERVIEW_BYTES)
}

impl Default for ServerInfo {
    fn default() -> Self {
        Self {
            version: String::new(),
            contact: String::new(),
            allow_defaults: None,
            repository_allow_list: Vec::new(),
            max_custom_rootfs_size_mb: default_max_custom_rootfs_size_mb(),
            max_defaults_length: default_max_defaults_length(),
            extra: BTreeMap::new(),
        }
    }
}

impl Overview {
    /// The branch holding `version`, by the versions each branch lists.
    pub fn branch_of(&self, version: &str) -> Option<&Branch> {
        self.branches
            .values()
            .find(|branch| branch.versions.iter().any(|v| v == version))
    }
}

fn default_max_custom_rootfs_size_mb() -> u32 {
    DEFAULT_MAX_CUSTOM_ROOTFS_SIZE_MB
}

fn default_max_defaults_length() -> usize {
    DEFAULT_MAX_DEFAULTS_LENGTH
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn package_change_omits_absent_fields() {
        let rename = PackageChange {
            source: "auc".into(),
            target: Some("owut".into()),
            revision: 26792,
            mandatory: None,
        };
        assert_eq!(
            serde_json::to_value(&rename).unwrap(),
            json!({"source": "auc", "target": "owut", "revision": 26792})
        );
        let removal: PackageChange = serde_json::from_value(
            json!({"source": "kmod-nft-nat6", "revision": 20282, "mandatory": true}),
        )
        .unwrap();
        assert_eq!(removal.target, None);
        assert_eq!(removal.mandatory, Some(true));
    }

    #[test]
    fn snapshot_branch_has_no_branch_off_rev() {
        let branch: Branch = serde_json::from_value(json!({
            "path": "snapshots", "enabled": true, "snapshot": true, "path_packages": "DEPRECATED",
            "package_changes": [], "versions": ["SNAPSHOT"], "name": "SNAPSHOT",
            "targets": {"x86/64": "x86_64"}
        }))
        .unwrap();
        assert_eq!(branch.branch_off_rev, None);
        assert!(
            !serde_json::to_value(&branch)
                .unwrap()
                .as_object()
                .unwrap()
                .contains_key("branch_off_rev")
        );
    }

    #[test]
    fn missing_server_limits_default_to_asu() {
        let overview = parse_overview(
            br#"{"latest": [], "branches": {}, "upstream_url": "https://downloads.openwrt.org"}"#,
        )
        .unwrap();
        assert_eq!(overview.server.max_custom_rootfs_size_mb, 1024);
        assert_eq!(overview.server.max_defaults_length, 20480);
    }

    #[test]
    fn latest_and_revision_round_trip() {
        let latest = Latest {
            latest: vec!["25.12.2".into(), "24.10.6".into()],
        };
        assert_eq!(
            serde_json::to_value(&latest).unwrap(),
            json!({"latest": ["25.12.2", "24.10.6"]})
        );
        let revision: Revision =
            serde_json::from_value(json!({"revision": "r24106-10cc5fcd00"})).unwrap();
        assert_eq!(revision.revision, "r24106-10cc5fcd00");
    }
}
