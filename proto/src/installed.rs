//! The router's installed packages, in the shape `ubus call rpc-sys packagelist` reports them.
//!
//! rpcd's `packagelist` method (`rpcd` `sys.c`) answers `{"packages": {name: version}}`: with
//! `{"all": true}` every installed package, with `{"all": false}` only the top-level
//! (user-requested) ones. Both the opkg parser ([`crate::opkg`]) and the apk parser
//! ([`crate::apk`]) produce an [`InstalledPackages`], so callers never care which package manager
//! the router runs; [`InstalledPackages::packagelist`] gives back exactly rpcd's map.
//!
//! Names are reported the way rpcd reports them: a library whose database name carries its ABI
//! version (`libubox20240329`, ABI version `20240329`) is listed under its base name (`libubox`).
//! rpcd strips the suffix only when the ABI version is non-empty, shorter than the name and the
//! name ends with it; [`strip_abi_suffix`] implements exactly that rule.
//!
//! When `ubus` is reachable the agent may instead take rpcd's two answers as they are and build the
//! same value with [`InstalledPackages::from_packagelist`].
//!
//! Going the other way, from a bare name to the ABI-versioned name a package database, an apk
//! manifest or a package index spells, follows OpenWrt's `FormatABISuffix` (`include/feeds.mk`):
//! [`is_abi_versioned_name`] decides whether `libgcc1` is `libgcc` with its ABI suffix. Every
//! comparison of requested names with built names goes through it, on the server and on the
//! router alike.

use std::collections::BTreeMap;
use std::fmt;

use crate::excerpt::{MAX_VALUE_CHARS, excerpt};

/// Most packages one database may list; a real router has a few hundred to a few thousand.
pub const MAX_PACKAGES: usize = 20_000;

/// Longest package name accepted, in bytes (rpcd itself keeps 127).
pub const MAX_PACKAGE_NAME_LEN: usize = 255;

/// Longest package version or ABI version accepted, in bytes (rpcd itself keeps 127).
pub const MAX_PACKAGE_VERSION_LEN: usize = 255;

/// The package manager a router runs: opkg up to OpenWrt 24.10, apk from 25.12 on.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum PackageManager {
    /// opkg with `/usr/lib/opkg/status` (OpenWrt 24.10 and older).
    Opkg,
    /// apk-tools v3 with `/lib/apk/db/installed` and `/etc/apk/world` (OpenWrt 25.12 and newer).
    Apk,
}

impl PackageManager {
    /// The lowercase name: `opkg` or `apk`.
    pub fn as_str(self) -> &'static str {
        match self {
            PackageManager::Opkg => "opkg",
            PackageManager::Apk => "apk",
        }
    }
}

impl fmt::Display for PackageManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledPackage {
    /// The name rpcd reports: the database name with its ABI suffix stripped (`libubox`).
    pub name: String,
    /// The name as the package database spells it (`libubox20240329`); equal to `name` for
    /// packages without an ABI version.
    pub package: String,
    /// The installed version, verbatim (`2024.03.29~eb9bcb64-r1`).
    pub version: String,
    /// The ABI version (`ABIVersion:` for opkg, `openwrt:abiversion=` tag for apk), if known.
    pub abi_version: Option<String>,
    /// Whether the package was requested by the user or the image (opkg: not
    /// `Auto-Installed: yes`; apk: named in `/etc/apk/world`), as opposed to pulled in as a
    /// dependency.
    pub top_level: bool,
    /// The names the package provides, without versions (opkg `Provides:`, apk `p:`):
    /// `nftables-json` provides `nftables`, which is how the image's default `nftables` is
    /// installed. Empty when unknown (rpcd's `packagelist` does not report them).
    pub provides: Vec<String>,
}

/// Every installed package of a router, keyed by the name rpcd reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledPackages {
    manager: PackageManager,
    packages: BTreeMap<String, InstalledPackage>,
}

impl InstalledPackages {
    /// An empty set for `manager`.
    pub fn new(manager: PackageManager) -> Self {
        InstalledPackages {
            manager,
            packages: BTreeMap::new(),
        }
    }

    /// Adds `package` under its reported name and returns the entry it replaced, if any.
    ///
    /// rpcd emits duplicate names as duplicate JSON keys, which every JSON reader resolves to
    /// the last one; replacing mirrors that.
    pub fn insert(&mut self, package: InstalledPackage) -> Option<InstalledPackage> {
        self.packages.insert(package.name.clone(), package)
    }

    /// Builds the set from rpcd's two answers: `all` from `packagelist {"all": true}` and
    /// `top_level` from `packagelist {"all": false}`.
    ///
    /// A name that appears only in `top_level` is added as installed (the two calls are not
    /// atomic, so a package installed in between may show up in one list only). ABI versions are
    /// unknown on this path, so `package` equals `name` and `abi_version` is `None`.
    pub fn from_packagelist(
        manager: PackageManager,
        all: &BTreeMap<String, String>,
        top_level: &BTreeMap<String, String>,
    ) -> Result<Self, InstalledError> {
        let mut packages = InstalledPackages::new(manager);
        let entries = all
            .iter()
            .map(|(name, version)| (name, version, top_level.contains_key(name)))
            .chain(
                top_level
                    .iter()
                    .filter(|(name, _)| !all.contains_key(*name))
                    .map(|(name, version)| (name, version, true)),
            );
        for (name, version, is_top_level) in entries {
            if packages.len() >= MAX_PACKAGES {
                return Err(InstalledError::TooManyPackages { max: MAX_PACKAGES });
            }
            check_value(name, MAX_PACKAGE_NAME_LEN).map_err(|rule| {
                InstalledError::InvalidName {
                    name: excerpt(name, MAX_VALUE_CHARS),
                    rule,
                }
            })?;
            check_value(version, MAX_PACKAGE_VERSION_LEN).map_err(|rule| {
                InstalledError::InvalidVersion {
                    name: name.clone(),
                    version: excerpt(version, MAX_VALUE_CHARS),
                    rule,
                }
            })?;
            packages.insert(InstalledPackage {
                name: name.clone(),
                package: name.clone(),
                version: version.clone(),
                abi_version: None,
                top_level: is_top_level,
                provides: Vec::new(),
            });
        }
        Ok(packages)
    }

    /// The package manager the set was read from.
    pub fn manager(&self) -> PackageManager {
        self.manager
    }

    /// The package reported as `name` (ABI suffix stripped).
    pub fn get(&self, name: &str) -> Option<&InstalledPackage> {
        self.packages.get(name)
    }

    /// Whether a package is reported as `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.packages.contains_key(name)
    }

    /// The package that satisfies `name`: the one reported as `name`, else the first (by
    /// reported name) that provides it. opkg and apk satisfy a dependency the same way, so a
    /// router whose image asked for `nftables` has it through `nftables-json`, although no
    /// package is reported as `nftables`.
    pub fn provider(&self, name: &str) -> Option<&InstalledPackage> {
        self.packages.get(name).or_else(|| {
            self.packages
                .values()
                .find(|package| package.provides.iter().any(|provided| provided == name))
        })
    }

    /// Every installed package, ordered by reported name.
    pub fn iter(&self) -> impl Iterator<Item = &InstalledPackage> {
        self.packages.values()
    }

    /// The top-level packages, ordered by reported name.
    pub fn top_level(&self) -> impl Iterator<Item = &InstalledPackage> {
        self.packages.values().filter(|package| package.top_level)
    }

    /// Number of installed packages.
    pub fn len(&self) -> usize {
        self.packages.len()
    }

    /// Whether no package is installed.
    pub fn is_empty(&self) -> bool {
        self.packages.is_empty()
    }

    /// The `packages` map of `ubus call rpc-sys packagelist '{"all": <all>}'`: reported name to
    /// version, every installed package when `all`, only the top-level ones otherwise.
    pub fn packagelist(&self, all: bool) -> BTreeMap<String, String> {
        self.packages
            .values()
            .filter(|package| all || package.top_level)
            .map(|package| (package.name.clone(), package.version.clone()))
            .collect()
    }
}

/// Strips `abi_version` from the end of `name` the way rpcd does.
///
/// The suffix goes only when `abi_version` is non-empty, strictly shorter than `name`, and `name`
/// ends with it: `libubox20240329` with `20240329` gives `libubox`; `libfoo` with `20240329`, or a
/// name that *is* its ABI version, is left alone.
pub fn strip_abi_suffix<'a>(name: &'a str, abi_version: &str) -> &'a str {
    if abi_version.is_empty() || abi_version.len() >= name.len() {
        return name;
    }
    name.strip_suffix(abi_version).unwrap_or(name)
}

/// Whether `published` is `base` with an OpenWrt ABI suffix, e.g. `libgcc1` for `libgcc` or
/// `libpython3-3.11` for `libpython3`.
///
/// OpenWrt names an ABI-versioned package `base + FormatABISuffix(base, ABI_VERSION)`
/// (`include/feeds.mk`): kernel modules (`kmod-*`) never carry a suffix; otherwise the suffix is
/// the ABI version, preceded by `-` when `base` ends in a digit. ABI versions are version
/// numbers: they start with a digit and hold letters, digits and `.` (`20240329`, `3`,
/// `5.7.6.e624513f`), plus `_`, `+` or `~` at most. Names that only look alike are kept apart:
/// `nftables-json` is not `nftables`, `python3-light` is not `python3`, and `libpython33.11`
/// is not `libpython3` (its suffix lacks the `-`).
pub fn is_abi_versioned_name(published: &str, base: &str) -> bool {
    if base.is_empty() || base.starts_with("kmod-") {
        return false;
    }
    let Some(suffix) = published.strip_prefix(base) else {
        return false;
    };
    let abi_version = if base.ends_with(|c: char| c.is_ascii_digit()) {
        match suffix.strip_prefix('-') {
            Some(abi_version) => abi_version,
            None => return false,
        }
    } else {
        suffix
    };
    abi_version.starts_with(|c: char| c.is_ascii_digit())
        && abi_version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '~'))
}

/// Errors building an [`InstalledPackages`] from rpcd's answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InstalledError {
    /// More packages than [`MAX_PACKAGES`].
    #[error("the package list has more than {max} packages")]
    TooManyPackages {
        /// The limit.
        max: usize,
    },
    /// A package name breaks a [`ValueRule`].
    #[error("package name `{name}` {rule}")]
    InvalidName {
        /// The offending name (truncated).
        name: String,
        /// The rule it breaks.
        rule: ValueRule,
    },
    /// A package version breaks a [`ValueRule`].
    #[error("version `{version}` of package `{name}` {rule}")]
    InvalidVersion {
        /// The package.
        name: String,
        /// The offending version (truncated).
        version: String,
        /// The rule it breaks.
        rule: ValueRule,
    },
}

/// The rule a package name, version or ABI version broke.
///
/// Such values are single tokens: non-empty, bounded in length, and made of printable ASCII
/// characters other than space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValueRule {
    /// The value is empty.
    Empty,
    /// The value is longer than `max` bytes.
    TooLong {
        /// The limit in bytes.
        max: usize,
    },
    /// The value contains a character outside printable ASCII, or a space.
    Character {
        /// The first offending character.
        character: char,
    },
}

impl fmt::Display for ValueRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueRule::Empty => f.write_str("is empty"),
            ValueRule::TooLong { max } => write!(f, "is longer than {max} bytes"),
            ValueRule::Character { character } => {
                write!(f, "contains the character {character:?}")
            }
        }
    }
}

/// Checks that `value` is one token of printable ASCII, at most `max` bytes long.
pub(crate) fn check_value(value: &str, max: usize) -> Result<(), ValueRule> {
    if value.is_empty() {
        return Err(ValueRule::Empty);
    }
    if value.len() > max {
        return Err(ValueRule::TooLong { max });
    }
    match value.chars().find(|c| !c.is_ascii_graphic()) {
        Some(character) => Err(ValueRule::Character { character }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(name: &str, version: &str, top_level: bool) -> InstalledPackage {
        InstalledPackage {
            name: name.to_owned(),
            package: name.to_owned(),
            version: version.to_owned(),
            abi_version: None,
            top_level,
            provides: Vec::new(),
        }
    }

    #[test]
    fn recognises_abi_suffixes_the_way_openwrt_forms_them() {
        assert!(is_abi_versioned_name("libgcc1", "libgcc"));
        assert!(is_abi_versioned_name("libubox20240329", "libubox"));
        assert!(is_abi_versioned_name(
            "libwolfssl5.7.6.e624513f",
            "libwolfssl"
        ));
        // A base name ending in a digit takes a `-` before its ABI version.
        assert!(is_abi_versioned_name("libpython3-3.11", "libpython3"));
        assert!(is_abi_versioned_name("libjson-c5", "libjson-c"));
    }

    #[test]
    fn keeps_names_that_only_look_abi_versioned_apart() {
        assert!(!is_abi_versioned_name("libgcc", "libgcc"));
        assert!(!is_abi_versioned_name("nftables-json", "nftables"));
        assert!(!is_abi_versioned_name("python3-light", "python3"));
        assert!(!is_abi_versioned_name("libevent2-core7", "libevent2"));
        assert!(!is_abi_versioned_name("libpython33.11", "libpython3"));
        assert!(!is_abi_versioned_name(
            "kmod-nf-conntrack6",
            "kmod-nf-conntrack"
        ));
        assert!(!is_abi_versioned_name("libfoo1 x", "libfoo"));
        assert!(!is_abi_versioned_name("libfoo1", ""));
        assert!(!is_abi_versioned_name("libgcc1", "libgcc1-extra"));
    }

    #[test]
    fn a_provided_name_is_found_through_its_provider() {
        let mut packages = InstalledPackages::new(PackageManager::Opkg);
        let mut nftables = package("nftables-json", "1.1.1-r1", true);
        nftables.provides = vec!["nftables".to_owned()];
        packages.insert(nftables);
        assert!(packages.contains("nftables-json"));
        assert!(!packages.contains("nftables"));
        assert_eq!(
            packages.provider("nftables").map(|p| p.name.as_str()),
            Some("nftables-json")
        );
        assert!(packages.get("nftables").is_none());
        assert!(packages.provider("nftables-nojson").is_none());
        assert!(!packages.packagelist(true).contains_key("nftables"));
    }

    #[test]
    fn strips_abi_suffix_only_when_name_ends_with_it() {
        assert_eq!(strip_abi_suffix("libubox20240329", "20240329"), "libubox");
        assert_eq!(strip_abi_suffix("libopenssl3", "3"), "libopenssl");
        assert_eq!(strip_abi_suffix("libfoo", "20240329"), "libfoo");
        assert_eq!(strip_abi_suffix("libfoo1", "2"), "libfoo1");
        assert_eq!(strip_abi_suffix("libfoo1", ""), "libfoo1");
    }

    #[test]
    fn keeps_name_that_equals_its_abi_version() {
        // rpcd requires the ABI version to be strictly shorter than the name.
        assert_eq!(strip_abi_suffix("1", "1"), "1");
        assert_eq!(strip_abi_suffix("20240329", "20240329"), "20240329");
    }

    #[test]
    fn packagelist_all_and_top_level() {
        let mut packages = InstalledPackages::new(PackageManager::Opkg);
        packages.insert(package("luci", "25.1", true));
        packages.insert(package("libc", "1.2.5-r4", false));
        assert_eq!(packages.packagelist(true).len(), 2);
        let top = packages.packagelist(false);
        assert_eq!(top.len(), 1);
        assert_eq!(top.get("luci").map(String::as_str), Some("25.1"));
    }

    #[test]
    fn from_packagelist_marks_top_level_and_adds_missing() {
        let all = BTreeMap::from([
            ("luci".to_owned(), "1".to_owned()),
            ("libc".to_owned(), "2".to_owned()),
        ]);
        let top = BTreeMap::from([
            ("luci".to_owned(), "1".to_owned()),
            ("htop".to_owned(), "3".to_owned()),
        ]);
        let packages =
            InstalledPackages::from_packagelist(PackageManager::Apk, &all, &top).unwrap();
        assert_eq!(packages.len(), 3);
        assert!(packages.get("htop").unwrap().top_level);
        assert!(!packages.get("libc").unwrap().top_level);
        assert_eq!(packages.packagelist(false).len(), 2);
    }

    #[test]
    fn rejects_version_with_space_from_packagelist() {
        let all = BTreeMap::from([("luci".to_owned(), "1 2".to_owned())]);
        let error =
            InstalledPackages::from_packagelist(PackageManager::Apk, &all, &BTreeMap::new())
                .unwrap_err();
        assert_eq!(
            error.to_string(),
            "version `1 2` of package `luci` contains the character ' '"
        );
    }

    #[test]
    fn package_manager_serializes_lowercase() {
        assert_eq!(
            serde_json::to_string(&PackageManager::Apk).unwrap(),
            "\"apk\""
        );
        assert_eq!(PackageManager::Opkg.to_string(), "opkg");
    }
}
