//! Planning an upgrade: which version, which packages, which image — before anything is built.
//!
//! Everything here is a pure function of the device, the server's `overview.json`, the target's
//! `profiles.json` and the package indexes, so each rule is unit-tested without a network. The
//! rules are owut's (<https://github.com/efahl/owut>, `files/owut`) with its gaps filled:
//!
//! - **Version** ([`choose_version`]): snapshots stay on their own branch snapshot; releases move
//!   to the newest release of their branch; `--version-to` takes a version or a branch name
//!   (mapped to the branch's newest release), an `RC` suffix lower-cased; disabled branches are
//!   refused.
//! - **Package changes** ([`apply_package_changes`]): the server's renames and removals at or
//!   below the target revision, except those named in `--ignored-changes`.
//! - **Package list** ([`package_list`]): top-level packages after the changes (or the defaults
//!   with `--clean-slate`), minus `--remove`, plus `--add`.
//! - **Version table** ([`version_table`]): each package's installed and available version:
//!   upgrade, downgrade (blocks without `--force`), same, missing (blocks when requested), or
//!   indeterminate (versions that do not compare).
//! - **Defaults** ([`default_packages`], [`missing_defaults`]): the profile's default set and the
//!   defaults neither installed nor requested — a renamed package counts under its new name —
//!   (a warning unless `--ignored-defaults`).
//! - **Image** ([`choose_image`]): the image of the device's type (`Device::image_type`) and
//!   filesystem from the profile's image list.

use std::collections::{BTreeMap, BTreeSet};

use attendant_proto::api::{Branch, ImageInfo, ImageType, Overview, PackageChange};
use attendant_proto::installed::PackageManager;
use attendant_proto::version;
use serde::Serialize;

use crate::hint::{Hint, HintCode};

/// Why no plan could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// `--version-to` names nothing the server offers.
    #[error("version `{requested}` is not offered by the server; offered: {}", offered.join(", "))]
    UnknownVersion {
        /// The version asked for.
        requested: String,
        /// What the server lists.
        offered: Vec<String>,
    },
    /// The installed version's branch is not on the server.
    #[error("the server offers no branch for the installed version `{installed}`")]
    NoBranch {
        /// The installed version.
        installed: String,
    },
    /// The branch is switched off on the server.
    #[error("branch `{branch}` is disabled on the server")]
    BranchDisabled {
        /// The branch name.
        branch: String,
    },
    /// The branch builds no firmware for this device's target (a branch whose overview entry
    /// lists other targets only, such as an old branch snapshot).
    #[error("branch `{branch}` builds no firmware for target `{target}`; branches that do: {}", if building.is_empty() { "none".to_owned() } else { building.join(", ") })]
    TargetNotBuilt {
        /// The branch name.
        branch: String,
        /// The device's target, e.g. `ath79/generic`.
        target: String,
        /// Branches that build it.
        building: Vec<String>,
    },
    /// The branch has no release.
    #[error("branch `{branch}` lists no version")]
    EmptyBranch {
        /// The branch name.
        branch: String,
    },
    /// No image of a usable type.
    #[error("the profile `{profile}` has no `{fstype}` image of a type this device can install; available: {}", available.join(", "))]
    NoImage {
        /// The profile.
        profile: String,
        /// The filesystem wanted.
        fstype: String,
        /// `type (filesystem)` of every image.
        available: Vec<String>,
    },
}

impl PlanError {
    /// The way out, if there is one.
    pub fn hint(&self) -> Option<Hint> {
        match self {
            Self::UnknownVersion { .. } => Some(Hint::coded(
                HintCode::Versions,
                "`attendant versions` lists what the server offers",
            )),
            Self::NoBranch { .. } => Some(Hint::coded(
                HintCode::VersionTo,
                "choose a version with `--version-to`; `attendant versions` lists them",
            )),
            Self::NoImage { .. } => Some(Hint::coded(
                HintCode::Fstype,
                "choose another filesystem with `--fstype`",
            )),
            Self::TargetNotBuilt { .. } => Some(Hint::coded(
                HintCode::VersionTo,
                "choose one of those branches with `--version-to`; `attendant versions` lists them",
            )),
            Self::BranchDisabled { .. } | Self::EmptyBranch { .. } => None,
        }
    }
}

/// The version an upgrade goes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetVersion {
    /// The version, e.g. `24.10.5` or `SNAPSHOT`.
    pub version: String,
    /// The branch name, e.g. `24.10`.
    pub branch: String,
    /// The branch's `path` with `{version}` filled in (`releases/24.10.5`).
    pub path: String,
}

/// One applied entry of the server's `package_changes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppliedChange {
    /// The old package.
    pub source: String,
    /// The new package; `None` when it was removed.
    pub target: Option<String>,
    /// The revision the change happened at.
    pub revision: u64,
}

/// How a package's available version relates to the installed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionChange {
    /// Newer version available.
    Upgrade,
    /// Same version.
    Same,
    /// Only an older version available.
    Downgrade,
    /// Not in the target's package index.
    Missing,
    /// The versions do not compare.
    Indeterminate,
    /// Not installed; added to the build.
    New,
}

/// One row of the version table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageRow {
    /// Package name.
    pub name: String,
    /// Installed version.
    pub installed: Option<String>,
    /// Version in the target's index.
    pub available: Option<String>,
    /// The relation.
    pub change: VersionChange,
    /// Part of the build request (top-level, added or default).
    pub requested: bool,
}

/// Maps `version` (any case of `rc`) to the server's spelling.
pub fn normalize_version(version: &str) -> String {
    match version.to_ascii_lowercase().find("-rc") {
        Some(at) => {
            let (head, tail) = version.split_at(at);
            format!("{head}{}", tail.to_ascii_lowercase())
        }
        None => version.to_owned(),
    }
}

/// True for `SNAPSHOT` and branch snapshots like `24.10-SNAPSHOT`.
pub fn is_snapshot(version: &str) -> bool {
    version == "SNAPSHOT" || version.ends_with("-SNAPSHOT")
}

/// Whether `branch` builds firmware for `target` (`ath79/generic`): the overview lists the
/// targets of each branch, and owut offers only branches that list the device's target.
pub fn builds_target(branch: &Branch, target: &str) -> bool {
    branch.targets.contains_key(target)
}

/// The newest release of `branch`: its entry in the overview's `latest`, else the first
/// non-snapshot version it lists (ASU lists newest first).
pub fn latest_of(overview: &Overview, branch: &Branch) -> Option<String> {
    overview
        .latest
        .iter()
        .find(|v| branch.versions.contains(v))
        .or_else(|| branch.versions.iter().find(|v| !is_snapshot(v)))
        .or_else(|| branch.versions.first())
        .cloned()
}

/// Chooses the target version for a device of `target` (`ath79/generic`), as owut does
/// (<https://github.com/efahl/owut>): the branch must be enabled and build that target, so a
/// wrong choice fails here and not at the server.
pub fn choose_version(
    overview: &Overview,
    installed: &str,
    version_to: Option<&str>,
    target: &str,
) -> Result<TargetVersion, PlanError> {
    let offered = || -> Vec<String> {
        overview
            .branches
            .values()
            .flat_map(|b| b.versions.iter().cloned())
            .collect()
    };
    let (branch, version) = match version_to {
        Some(requested) => {
            let requested = normalize_version(requested);
            if let Some(branch) = overview
                .branches
                .iter()
                .find(|(key, b)| **key == requested || b.name == requested)
                .map(|(_, b)| b)
            {
                let latest = latest_of(overview, branch).ok_or_else(|| PlanError::EmptyBranch {
                    branch: branch.name.clone(),
                })?;
                (branch, latest)
            } else if let Some(branch) = overview.branch_of(&requested) {
                (branch, requested)
            } else {
                return Err(PlanError::UnknownVersion {
                    requested,
                    offered: offered(),
                });
            }
        }
        None => {
            let branch = overview
                .branch_of(installed)
                .or_else(|| branch_by_prefix(overview, installed))
                .ok_or_else(|| PlanError::NoBranch {
                    installed: installed.to_owned(),
                })?;
            if is_snapshot(installed) {
                (branch, installed.to_owned())
            } else {
                let latest = latest_of(overview, branch).ok_or_else(|| PlanError::EmptyBranch {
                    branch: branch.name.clone(),
                })?;
                (branch, latest)
            }
        }
    };
    if !branch.enabled {
        return Err(PlanError::BranchDisabled {
            branch: branch.name.clone(),
        });
    }
    if !builds_target(branch, target) {
        return Err(PlanError::TargetNotBuilt {
            branch: branch.name.clone(),
            target: target.to_owned(),
            building: overview
                .branches
                .values()
                .filter(|b| b.enabled && builds_target(b, target))
                .map(|b| b.name.clone())
                .collect(),
        });
    }
    Ok(TargetVersion {
        path: branch.path.replace("{version}", &version),
        branch: branch.name.clone(),
        version,
    })
}

/// The branch `24.10` for a release `24.10.3` that the server no longer lists.
fn branch_by_prefix<'a>(overview: &'a Overview, installed: &str) -> Option<&'a Branch> {
    let mut parts = installed.split('.');
    let prefix = format!("{}.{}", parts.next()?, parts.next()?);
    overview.branches.values().find(|b| b.name == prefix)
}

/// The revision number of a `version_code` like `r28959-29397011cc`.
pub fn revision_number(version_code: &str) -> Option<u64> {
    version_code
        .strip_prefix('r')?
        .split('-')
        .next()?
        .parse()
        .ok()
}

/// True for `rNNNN-hexhash` (owut's `--rev-code` rule).
pub fn is_version_code(text: &str) -> bool {
    let Some(rest) = text.strip_prefix('r') else {
        return false;
    };
    let Some((number, hash)) = rest.split_once('-') else {
        return false;
    };
    !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
        && !hash.is_empty()
        && hash.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Applies renames and removals at or below `target_revision` to `packages`, except sources in
/// `ignored`. Returns the new list (order kept, no duplicates) and what was applied.
pub fn apply_package_changes(
    packages: &[String],
    changes: &[PackageChange],
    target_revision: Option<u64>,
    ignored: &[String],
) -> (Vec<String>, Vec<AppliedChange>) {
    let mut out: Vec<String> = Vec::new();
    let mut applied = Vec::new();
    for package in packages {
        let change = changes.iter().find(|c| {
            c.source == *package
                && !ignored.contains(&c.source)
                && target_revision.is_none_or(|target| c.revision <= target)
        });
        let replacement = match change {
            Some(change) => {
                applied.push(AppliedChange {
                    source: change.source.clone(),
                    target: change.target.clone(),
                    revision: change.revision,
                });
                change.target.clone()
            }
            None => Some(package.clone()),
        };
        if let Some(name) = replacement
            && !out.contains(&name)
        {
            out.push(name);
        }
    }
    (out, applied)
}

/// The profile's default package set, as owut computes it: `default_packages` minus the
/// `-name` entries of `device_packages`, plus its other entries.
pub fn default_packages(default: &[String], device: &[String]) -> BTreeSet<String> {
    let mut set: BTreeSet<String> = default.iter().cloned().collect();
    for entry in device {
        match entry.strip_prefix('-') {
            Some(removed) => {
                set.remove(removed);
            }
            None => {
                set.insert(entry.clone());
            }
        }
    }
    set
}

/// The package list for the build request.
pub fn package_list(
    top_level: &[String],
    defaults: &BTreeSet<String>,
    clean_slate: bool,
    remove: &[String],
    add: &[String],
) -> Vec<String> {
    let base: Vec<String> = if clean_slate {
        defaults.iter().cloned().collect()
    } else {
        top_level.to_vec()
    };
    let mut list: Vec<String> = base.into_iter().filter(|p| !remove.contains(p)).collect();
    for package in add {
        if !list.contains(package) {
            list.push(package.clone());
        }
    }
    list
}

/// Defaults that will not be in the image: not `present` (installed, or in the build's package
/// list after the server's renames), minus those ignored on purpose.
pub fn missing_defaults(
    defaults: &BTreeSet<String>,
    present: &dyn Fn(&str) -> bool,
    ignored: &[String],
) -> Vec<String> {
    defaults
        .iter()
        .filter(|name| !present(name) && !ignored.contains(name))
        // The kernel and libc are never listed as installed packages.
        .filter(|name| !matches!(name.as_str(), "kernel" | "libc" | "libgcc"))
        .cloned()
        .collect()
}

/// The version table: one row per installed package and per requested package.
pub fn version_table(
    installed: &BTreeMap<String, String>,
    requested: &[String],
    available: &BTreeMap<String, String>,
    manager: PackageManager,
) -> Vec<PackageRow> {
    let mut names: BTreeSet<&String> = installed.keys().collect();
    names.extend(requested.iter());
    names
        .into_iter()
        .map(|name| {
            let old = installed.get(name);
            let new = available.get(name);
            let change = match (old, new) {
                (_, None) => VersionChange::Missing,
                (None, Some(_)) => VersionChange::New,
                (Some(old), Some(new)) => match version::change(manager, old, new) {
                    version::VersionChange::Upgrade => VersionChange::Upgrade,
                    version::VersionChange::Unchanged => VersionChange::Same,
                    version::VersionChange::Downgrade => VersionChange::Downgrade,
                    _ => VersionChange::Indeterminate,
                },
            };
            PackageRow {
                name: name.clone(),
                installed: old.cloned(),
                available: new.cloned(),
                change,
                requested: requested.contains(name),
            }
        })
        .collect()
}

/// Picks the image to install from a profile's `images`, as owut does: factory images and
/// initramfs kernels are dropped, the filesystem must match, the guessed type wins, and failing
/// that the only remaining type (`sdcard`, `nand-sysupgrade`) is used.
pub fn choose_image<'a>(
    images: &'a [ImageInfo],
    profile: &str,
    fstype: &str,
    guess: &ImageType,
) -> Result<&'a ImageInfo, PlanError> {
    let installable: Vec<&ImageInfo> = images
        .iter()
        .filter(|i| {
            !matches!(
                i.image_type,
                ImageType::Factory | ImageType::NandFactory | ImageType::Kernel
            )
        })
        .filter(|i| i.filesystem != "initramfs")
        .filter(|i| i.filesystem == fstype)
        .collect();
    if let Some(image) = installable.iter().find(|i| i.image_type == *guess) {
        return Ok(image);
    }
    let types: BTreeSet<&str> = installable.iter().map(|i| i.image_type.as_str()).collect();
    if types.len() == 1
        && let Some(image) = installable.first()
    {
        return Ok(image);
    }
    Err(PlanError::NoImage {
        profile: profile.to_owned(),
        fstype: fstype.to_owned(),
        available: images
            .iter()
            .map(|i| format!("{} ({})", i.image_type, i.filesystem))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overview() -> Overview {
        attendant_proto::api::parse_overview(include_bytes!(
            "../../proto/testdata/asu/overview.json"
        ))
        .unwrap()
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn releases_move_to_the_newest_release_of_their_branch() {
        let target = choose_version(&overview(), "24.10.4", None, "x86/64").unwrap();
        assert_eq!(target.version, "24.10.6");
        assert_eq!(target.branch, "24.10");
        assert_eq!(target.path, "releases/24.10.6");
    }

    #[test]
    fn snapshots_stay_on_their_branch_snapshot() {
        let target = choose_version(&overview(), "25.12-SNAPSHOT", None, "x86/64").unwrap();
        assert_eq!(target.version, "25.12-SNAPSHOT");
        assert_eq!(target.branch, "25.12");
    }

    #[test]
    fn version_to_takes_a_branch_name_or_a_version() {
        assert_eq!(
            choose_version(&overview(), "24.10.4", Some("25.12"), "x86/64")
                .unwrap()
                .version,
            "25.12.2"
        );
        assert_eq!(
            choose_version(&overview(), "24.10.4", Some("25.12.0-RC1"), "x86/64")
                .unwrap()
                .version,
            "25.12.0-rc1"
        );
        let error = choose_version(&overview(), "24.10.4", Some("19.07.1"), "x86/64").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("version `19.07.1` is not offered by the server")
        );
    }

    #[test]
    fn an_unlisted_release_finds_its_branch_by_prefix() {
        assert_eq!(
            choose_version(&overview(), "24.10.0", None, "x86/64")
                .unwrap()
                .version,
            "24.10.6"
        );
        assert!(matches!(
            choose_version(&overview(), "18.06.9", None, "x86/64"),
            Err(PlanError::NoBranch { .. })
        ));
    }

    #[test]
    fn branches_that_do_not_build_the_target_are_refused_early() {
        let mut overview = overview();
        overview
            .branches
            .get_mut("24.10")
            .unwrap()
            .targets
            .remove("x86/64");
        let error = choose_version(&overview, "24.10.4", None, "x86/64").unwrap_err();
        assert_eq!(
            error.to_string(),
            "branch `24.10` builds no firmware for target `x86/64`; branches that do: 25.12, SNAPSHOT"
        );
        assert!(error.hint().is_some());
        let error = choose_version(&overview, "25.12.1", Some("24.10"), "x86/64").unwrap_err();
        assert!(matches!(error, PlanError::TargetNotBuilt { .. }), "{error}");
        assert!(choose_version(&overview, "24.10.4", Some("25.12"), "x86/64").is_ok());
        assert!(choose_version(&overview, "24.10.4", None, "ath79/generic").is_ok());
    }

    #[test]
    fn disabled_branches_are_refused() {
        let mut overview = overview();
        for branch in overview.branches.values_mut() {
            branch.enabled = false;
        }
        assert_eq!(
            choose_version(&overview, "24.10.4", None, "x86/64")
                .unwrap_err()
                .to_string(),
            "branch `24.10` is disabled on the server"
        );
    }

    #[test]
    fn package_changes_apply_at_or_below_the_target_revision() {
        let changes = &overview().branches["25.12"].package_changes;
        let packages = strings(&["luci", "opkg", "auc", "kmod-nft-nat6", "owut"]);
        let (list, applied) = apply_package_changes(&packages, changes, Some(28056), &[]);
        assert_eq!(list, strings(&["luci", "apk-mbedtls", "owut"]));
        assert_eq!(applied.len(), 3);
        let (list, _) = apply_package_changes(&packages, changes, Some(27000), &[]);
        assert_eq!(list, strings(&["luci", "opkg", "owut"]));
        let (list, applied) =
            apply_package_changes(&packages, changes, Some(28056), &strings(&["auc"]));
        assert_eq!(list, strings(&["luci", "apk-mbedtls", "auc", "owut"]));
        assert_eq!(applied.len(), 2);
    }

    #[test]
    fn defaults_follow_device_packages() {
        let defaults = default_packages(
            &strings(&["base-files", "ppp", "dnsmasq"]),
            &strings(&["-ppp", "kmod-ath10k"]),
        );
        assert_eq!(
            defaults,
            ["base-files", "dnsmasq", "kmod-ath10k"]
                .map(String::from)
                .into()
        );
        let missing = missing_defaults(
            &defaults,
            &|name| name == "base-files",
            &strings(&["dnsmasq"]),
        );
        assert_eq!(missing, ["kmod-ath10k"]);
    }

    #[test]
    fn package_list_applies_clean_slate_remove_and_add() {
        let defaults: BTreeSet<String> = ["base-files", "dnsmasq"].map(String::from).into();
        let top = strings(&["luci", "htop", "dnsmasq"]);
        assert_eq!(
            package_list(
                &top,
                &defaults,
                false,
                &strings(&["htop"]),
                &strings(&["tcpdump", "luci"])
            ),
            strings(&["luci", "dnsmasq", "tcpdump"])
        );
        assert_eq!(
            package_list(&top, &defaults, true, &[], &strings(&["luci"])),
            strings(&["base-files", "dnsmasq", "luci"])
        );
    }

    #[test]
    fn version_table_classifies_every_package() {
        let installed: BTreeMap<String, String> = [
            ("a", "1.0-r1"),
            ("b", "2.0-r1"),
            ("c", "1.0-r1"),
            ("d", "2024.01.01~abc123-r1"),
            ("e", "1.0"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into();
        let available: BTreeMap<String, String> = [
            ("a", "1.1-r1"),
            ("b", "1.9-r1"),
            ("c", "1.0-r1"),
            ("d", "2024.01.01~def456-r1"),
            ("n", "0.1"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into();
        let rows = version_table(
            &installed,
            &strings(&["a", "e", "n"]),
            &available,
            PackageManager::Opkg,
        );
        let changes: Vec<_> = rows
            .iter()
            .map(|r| (r.name.as_str(), r.change, r.requested))
            .collect();
        assert_eq!(
            changes,
            [
                ("a", VersionChange::Upgrade, true),
                ("b", VersionChange::Downgrade, false),
                ("c", VersionChange::Same, false),
                ("d", VersionChange::Indeterminate, false),
                ("e", VersionChange::Missing, true),
                ("n", VersionChange::New, true),
            ]
        );
    }

    fn image(image_type: &str, filesystem: &str) -> ImageInfo {
        ImageInfo {
            filesystem: filesystem.to_owned(),
            name: format!("openwrt-{filesystem}-{image_type}.bin"),
            sha256: "0".repeat(64),
            sha256_unsigned: String::new(),
            image_type: ImageType::from_wire(image_type),
            signature: None,
            size: None,
        }
    }

    #[test]
    fn image_choice_follows_type_and_filesystem() {
        let x86 = [
            image("combined", "ext4"),
            image("combined-efi", "ext4"),
            image("combined-efi", "squashfs"),
            image("kernel", "initramfs"),
        ];
        let chosen = choose_image(&x86, "generic", "ext4", &ImageType::CombinedEfi).unwrap();
        assert_eq!(chosen.name, "openwrt-ext4-combined-efi.bin");
        let nand = [
            image("factory", "squashfs"),
            image("nand-sysupgrade", "squashfs"),
        ];
        let chosen = choose_image(&nand, "p", "squashfs", &ImageType::Sysupgrade).unwrap();
        assert_eq!(chosen.image_type, ImageType::NandSysupgrade);
        let error = choose_image(&x86, "generic", "ubifs", &ImageType::Combined).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("the profile `generic` has no `ubifs` image"),
            "{error}"
        );
    }

    #[test]
    fn recognises_version_codes_and_revisions() {
        assert!(is_version_code("r28959-29397011cc"));
        assert!(!is_version_code("r28959"));
        assert!(!is_version_code("28959-abc"));
        assert!(!is_version_code("r1-xyz"));
        assert_eq!(revision_number("r28959-29397011cc"), Some(28959));
        assert_eq!(revision_number("bogus"), None);
    }
}
