//! Parsers for what an OpenWrt ImageBuilder prints, as ASU's worker reads it
//! (<https://github.com/openwrt/asu/blob/main/asu/build.py>).
//!
//! - [`parse_make_info`]: `make info` → revision, default packages, profiles.
//! - [`parse_manifest`]: `make manifest` output (`name - version` for opkg, `name version` for
//!   apk) → name → version; [`manifest_entry`] finds a requested name in it, ABI suffix or not,
//!   and [`check_manifest`] compares it with `packages_versions`.
//! - [`scan_package_errors`]: opkg/apk error output of a failed `make manifest` → the missing
//!   and conflicting packages ASU names in `Impossible package selection: ...`.
//! - [`is_size_error`]: whether `make image` failed because the image is too big.
//! - [`BuildFailure`]: why a build failed, with the `500` `detail` texts of ASU's worker.
//!
//! All of them are pure and bounded: they read text the worker captured.
//!
//! The file passes 800 lines because of its tests (about 500 lines are code): every parser is
//! pinned against the texts opkg, apk and make really print, next to the parser.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Bound;

use crate::excerpt::{MAX_LINE_CHARS, excerpt};
use crate::installed::is_abi_versioned_name;

/// Largest `make info` output accepted, in bytes (big targets print a few hundred KiB).
pub const MAX_MAKE_INFO_BYTES: usize = 8 * 1024 * 1024;
/// Largest manifest accepted, in bytes.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;
/// How much of the end of stderr [`scan_package_errors`] and [`is_size_error`] read, in bytes.
pub const MAX_STDERR_SCAN_BYTES: usize = 1024 * 1024;
/// Most package names [`scan_package_errors`] collects per list.
pub const MAX_PACKAGE_ERROR_NAMES: usize = 256;

/// What `make info` says about an ImageBuilder.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImagebuilderInfo {
    /// `Current Target: "ath79/generic"`, when printed.
    pub current_target: Option<String>,
    /// `Current Revision: "r28959-29397011cc"`.
    pub current_revision: String,
    /// `Default Packages: ...`, in printed order.
    pub default_packages: Vec<String>,
    /// The profiles, in printed order.
    pub profiles: Vec<ImagebuilderProfile>,
}

/// One profile block of `make info`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImagebuilderProfile {
    /// Profile id, e.g. `tplink_archer-c7-v5`.
    pub id: String,
    /// Device title, e.g. `TP-Link Archer C7 v5`.
    pub title: String,
    /// `Packages: ...` (may hold removals such as `-ppp`).
    pub packages: Vec<String>,
    /// `SupportedDevices: ...`, when printed.
    pub supported_devices: Option<Vec<String>>,
}

/// The packages named in a failed `make manifest`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PackageErrors {
    /// Packages that do not exist.
    pub missing: BTreeSet<String>,
    /// Packages that conflict with each other.
    pub conflicts: BTreeSet<String>,
}

/// Why ImageBuilder output could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImagebuilderError {
    /// The output exceeds its limit.
    #[error("{what} is {length} bytes, more than the limit of {max}")]
    TooLarge {
        /// Which output.
        what: &'static str,
        /// Its length.
        length: usize,
        /// The limit.
        max: usize,
    },
    /// `make info` printed no `Current Revision:` line.
    #[error("`make info` output has no `Current Revision:` line")]
    MissingRevision,
    /// A manifest line is not `name - version` or `name version`.
    #[error("manifest line {line} is not `name - version` or `name version`: `{text}`")]
    BadManifestLine {
        /// 1-based line number.
        line: usize,
        /// The line, truncated.
        text: String,
    },
}

impl ImagebuilderInfo {
    /// The profile with this id.
    pub fn profile(&self, id: &str) -> Option<&ImagebuilderProfile> {
        self.profiles.iter().find(|p| p.id == id)
    }
}

/// Parses `make info` output.
pub fn parse_make_info(text: &str) -> Result<ImagebuilderInfo, ImagebuilderError> {
    check_size("`make info` output", text, MAX_MAKE_INFO_BYTES)?;
    let mut info = ImagebuilderInfo::default();
    let mut revision = None;
    let mut in_profiles = false;
    for line in text.lines() {
        let indented = line.starts_with(char::is_whitespace);
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        if !indented {
            if let Some(value) = trimmed.strip_prefix("Current Target:") {
                info.current_target = Some(unquote(value).to_owned());
            } else if let Some(value) = trimmed.strip_prefix("Current Revision:") {
                revision = Some(unquote(value).to_owned());
            } else if let Some(value) = trimmed.strip_prefix("Default Packages:") {
                info.default_packages = words(value);
            } else if trimmed == "Available Profiles:" {
                in_profiles = true;
            } else if in_profiles
                && let Some(id) = trimmed.strip_suffix(':')
                && !id.is_empty()
                && !id.contains(char::is_whitespace)
            {
                info.profiles.push(ImagebuilderProfile {
                    id: id.to_owned(),
                    ..ImagebuilderProfile::default()
                });
            }
            continue;
        }
        let Some(profile) = info.profiles.last_mut().filter(|_| in_profiles) else {
            continue;
        };
        if let Some(value) = trimmed.strip_prefix("Packages:") {
            profile.packages = words(value);
        } else if let Some(value) = trimmed.strip_prefix("SupportedDevices:") {
            profile.supported_devices = Some(words(value));
        } else if trimmed.starts_with("hasImageMetadata:") {
            // Only tells whether the profile writes fwtool metadata; nothing to keep.
        } else if profile.title.is_empty() {
            trimmed.clone_into(&mut profile.title);
        }
    }
    info.current_revision = revision.ok_or(ImagebuilderError::MissingRevision)?;
    Ok(info)
}

/// Parses `make manifest` output into name → version. The format is chosen like ASU: if any
/// line contains ` - ` it is opkg (`name - version`), otherwise apk (`name version`).
pub fn parse_manifest(text: &str) -> Result<BTreeMap<String, String>, ImagebuilderError> {
    check_size("manifest", text, MAX_MANIFEST_BYTES)?;
    let separator = if text.contains(" - ") { " - " } else { " " };
    let mut manifest = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let parsed = line.split_once(separator).filter(|(name, version)| {
            !name.is_empty()
                && !version.is_empty()
                && !name.contains(char::is_whitespace)
                && !version.contains(char::is_whitespace)
        });
        let Some((name, version)) = parsed else {
            return Err(ImagebuilderError::BadManifestLine {
                line: index.saturating_add(1),
                text: excerpt(line, MAX_LINE_CHARS),
            });
        };
        manifest.insert(name.to_owned(), version.to_owned());
    }
    Ok(manifest)
}

/// The manifest entry (name as built, version) of the package a request calls `name`.
///
/// Requests, package indexes v2 and rpcd use bare names (`libgcc`); a manifest of an apk
/// ImageBuilder names ABI-versioned libraries with their suffix (`libgcc1`, apk's
/// `list --manifest` cannot strip it), while opkg's `STRIP_ABI=1` manifest has bare names even
/// when a client asked for `libgcc1`. So the lookup is, in order: the exact name; else the one
/// entry that is `name` with an ABI suffix ([`is_abi_versioned_name`]); else, when `name`
/// itself carries an ABI suffix, the entry of its bare name. Two ABI-suffixed entries for one
/// bare name are ambiguous and match neither.
pub fn manifest_entry<'a>(
    manifest: &'a BTreeMap<String, String>,
    name: &str,
) -> Option<(&'a str, &'a str)> {
    if let Some((built, version)) = manifest.get_key_value(name) {
        return Some((built.as_str(), version.as_str()));
    }
    // Every name with `name` as a prefix sorts right after it.
    let mut suffixed = manifest
        .range::<str, _>((Bound::Excluded(name), Bound::Unbounded))
        .take_while(|(built, _)| built.starts_with(name))
        .filter(|(built, _)| is_abi_versioned_name(built, name));
    if let Some((built, version)) = suffixed.next() {
        return suffixed
            .next()
            .is_none()
            .then_some((built.as_str(), version.as_str()));
    }
    name.char_indices()
        .rev()
        .filter_map(|(index, _)| name.get(..index))
        .filter(|base| is_abi_versioned_name(name, base))
        .find_map(|base| manifest.get_key_value(base))
        .map(|(built, version)| (built.as_str(), version.as_str()))
}

/// Checks `packages_versions` against the manifest like ASU: the first package (by name) that
/// is missing or has another version is the error. Names are looked up with
/// [`manifest_entry`], so a pinned `libgcc` is found as the manifest's `libgcc1`.
pub fn check_manifest(
    manifest: &BTreeMap<String, String>,
    packages_versions: &BTreeMap<String, String>,
) -> Result<(), BuildFailure> {
    for (package, requested) in packages_versions {
        match manifest_entry(manifest, package).map(|(_, version)| version) {
            None => {
                return Err(BuildFailure::NotInManifest {
                    package: package.clone(),
                });
            }
            Some(actual) if actual != requested => {
                return Err(BuildFailure::VersionMismatch {
                    package: package.clone(),
                    requested: requested.clone(),
                    actual: actual.to_owned(),
                });
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Finds the missing and conflicting packages in opkg/apk error output.
///
/// Recognised (ASU's cases plus apk's file-overwrite error):
/// - opkg `Cannot install package X.` → missing X;
/// - apk `  X (no such package):` → missing X;
/// - apk `  X:` followed by `    conflicts: Y[...]` → conflicts X and Y;
/// - opkg `check_data_file_clashes: Package X wants to ...` and
///   `... is already provided by package  * Y` → conflicts X and Y;
/// - opkg `* check_conflicts_for: ... X:` / `* check_conflicts_for:    Y *` → conflicts X, Y;
/// - apk `ERROR: X: trying to overwrite <file> owned by Y.` → conflicts X and Y.
///
/// A package both missing and conflicting counts as conflicting (opkg reports conflicts as
/// "Cannot install" too). Only the last [`MAX_STDERR_SCAN_BYTES`] are read.
pub fn scan_package_errors(stderr: &str) -> PackageErrors {
    let text = tail(stderr, MAX_STDERR_SCAN_BYTES);
    let mut missing = BTreeSet::new();
    let mut conflicts = BTreeSet::new();
    let lines: Vec<&str> = text.lines().collect();
    for (index, line) in lines.iter().enumerate() {
        if let Some(rest) = after(line, "Cannot install package ") {
            let run = rest.split(' ').next().unwrap_or("");
            if let Some((name, _)) = run.rsplit_once('.') {
                add(&mut missing, name);
            }
        }
        if let Some((before, _)) = line.split_once(" (no such package)") {
            add(&mut missing, before.rsplit(' ').next().unwrap_or(""));
        }
        if let Some(rest) = after(line, "check_data_file_clashes: Package ")
            && let Some((name, _)) = rest.split_once(" wants to")
        {
            add(&mut conflicts, name);
        }
        if let Some(rest) = after(line, "is already provided by package  * ") {
            add(&mut conflicts, rest.trim_end());
        }
        // opkg prints the package first (`The following packages conflict with X:`), then one
        // message per conflicting package, each a tab and the name (` * check_conflicts_for:
        // \tY * `).
        if let Some(rest) = after(line, "* check_conflicts_for:") {
            let rest = rest.trim();
            let rest = rest.strip_suffix('*').unwrap_or(rest).trim();
            if let Some((_, name)) = rest.split_once("conflict with ") {
                add(&mut conflicts, name.trim_end_matches(':'));
            } else if !rest.contains(char::is_whitespace) {
                add(&mut conflicts, rest);
            }
        }
        if let Some(rest) = after(line, "ERROR: ")
            && let Some((name, tail)) = rest.split_once(": trying to overwrite ")
            && let Some((_, owner)) = tail.rsplit_once(" owned by ")
        {
            add(&mut conflicts, apk_package_name(name));
            add(
                &mut conflicts,
                apk_package_name(owner.trim_end().trim_end_matches('.')),
            );
        }
        // apk groups conflicts: an indented `name:` line, then an indented `conflicts: x[...]`.
        if line.starts_with(' ')
            && let Some(name) = line.trim().strip_suffix(':')
            && !name.contains(':')
            && let Some(next) = lines.get(index.saturating_add(1))
            && next.starts_with(' ')
            && let Some(other) = next.trim_start().strip_prefix("conflicts: ")
        {
            add(&mut conflicts, apk_package_name(name));
            add(
                &mut conflicts,
                apk_package_name(other.split('[').next().unwrap_or("")),
            );
        }
    }
    let mut missing: BTreeSet<String> = missing.difference(&conflicts).cloned().collect();
    truncate_set(&mut missing);
    truncate_set(&mut conflicts);
    PackageErrors { missing, conflicts }
}

/// Whether `make image` failed because the image does not fit (`is too big` or
/// `out of space?` in stderr).
pub fn is_size_error(stderr: &str) -> bool {
    let text = tail(stderr, MAX_STDERR_SCAN_BYTES);
    text.contains("is too big") || text.contains("out of space?")
}

impl PackageErrors {
    /// Whether no package was named.
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.conflicts.is_empty()
    }
}

impl fmt::Display for PackageErrors {
    /// ASU's text: `Impossible package selection`, then `: missing (a, b)` and/or
    /// ` conflicts (c, d)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Impossible package selection")?;
        if !self.is_empty() {
            f.write_str(":")?;
        }
        if !self.missing.is_empty() {
            write!(f, " missing ({})", join(&self.missing))?;
        }
        if !self.conflicts.is_empty() {
            write!(f, " conflicts ({})", join(&self.conflicts))?;
        }
        Ok(())
    }
}

fn join(set: &BTreeSet<String>) -> String {
    set.iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The package name of an apk `name-version-rN` token (`dnsmasq-full-2.91-r1` →
/// `dnsmasq-full`), split as apk-tools' `apk_pkg_parse_name` does: the last `-` followed by a
/// digit before the `-rN` release. Tokens without a `-rN` release are names already
/// (`kmod-8021q`) and come back unchanged.
fn apk_package_name(token: &str) -> &str {
    let Some((rest, release)) = token.rsplit_once("-r") else {
        return token;
    };
    if release.is_empty() || !release.bytes().all(|byte| byte.is_ascii_digit()) {
        return token;
    }
    let bytes = rest.as_bytes();
    for (index, byte) in bytes.iter().enumerate().rev() {
        if *byte == b'-' && bytes.get(index + 1).is_some_and(u8::is_ascii_digit) {
            return rest.get(..index).unwrap_or(token);
        }
    }
    token
}

fn add(set: &mut BTreeSet<String>, name: &str) {
    let name = name.trim();
    if !name.is_empty()
        && !name.contains(char::is_whitespace)
        && set.len() <= MAX_PACKAGE_ERROR_NAMES
    {
        set.insert(name.to_owned());
    }
}

fn truncate_set(set: &mut BTreeSet<String>) {
    while set.len() > MAX_PACKAGE_ERROR_NAMES {
        set.pop_last();
    }
}

fn after<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    line.split_once(marker).map(|(_, rest)| rest)
}

/// The last `max` bytes of `text`, starting at a character boundary.
fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while start < text.len() && !text.is_char_boundary(start) {
        start = start.saturating_add(1);
    }
    text.get(start..).unwrap_or("")
}

fn check_size(what: &'static str, text: &str, max: usize) -> Result<(), ImagebuilderError> {
    if text.len() > max {
        return Err(ImagebuilderError::TooLarge {
            what,
            length: text.len(),
            max,
        });
    }
    Ok(())
}

fn unquote(value: &str) -> &str {
    let value = value.trim();
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

fn words(value: &str) -> Vec<String> {
    value.split_whitespace().map(str::to_owned).collect()
}

/// Why a build failed; `Display` is the message, [`BuildFailure::detail`] the `500` `detail`
/// (`Error: ` + message), both exactly as ASU's worker writes them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildFailure {
    /// The ImageBuilder for the version/target does not exist (yet).
    #[error(
        "Image not found: {image}. If this version was just released, please try again in a few hours as it may take some time to become fully available."
    )]
    ImageNotFound {
        /// The ImageBuilder that was looked for.
        image: String,
    },
    /// Preparing a snapshot ImageBuilder failed.
    #[error("Could not set up ImageBuilder (returncode={returncode})")]
    ImagebuilderSetup {
        /// Exit status of the setup.
        returncode: i32,
    },
    /// The ImageBuilder's revision differs from `version_code`.
    #[error("Received incorrect version {actual} (requested {requested})")]
    IncorrectVersion {
        /// Revision the ImageBuilder reports.
        actual: String,
        /// Revision the request asked for.
        requested: String,
    },
    /// `make manifest` failed; the packages named in its errors.
    #[error("{0}")]
    ImpossiblePackageSelection(PackageErrors),
    /// A `packages_versions` package is not in the manifest.
    #[error("Impossible package selection: {package} not in manifest")]
    NotInManifest {
        /// The package.
        package: String,
    },
    /// A `packages_versions` package has another version in the manifest.
    #[error(
        "Impossible package selection: {package} version not as requested: {requested} vs. {actual}"
    )]
    VersionMismatch {
        /// The package.
        package: String,
        /// Version asked for.
        requested: String,
        /// Version in the manifest.
        actual: String,
    },
    /// The image does not fit the device (`is too big` / `out of space?`).
    #[error("Selected packages exceed device storage")]
    ExceedsStorage,
    /// `make image` failed otherwise.
    #[error("Error while building firmware. See stdout/stderr")]
    BuildFailed,
    /// No `profiles.json` in the output.
    #[error("No JSON file found")]
    NoJsonFile,
    /// The profile is missing from the output `profiles.json`.
    #[error("Profile not found in JSON file")]
    ProfileNotFound,
}

impl BuildFailure {
    /// The `500` `detail`: `Error: <message>`.
    pub fn detail(&self) -> String {
        format!("Error: {self}")
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const MAKE_INFO: &str = r#"Current Target: "ath79/generic"
Current Architecture: "mips"
Current Flavour: "generic"
Default Packages: base-files ca-bundle dropbear firewall4 fstools kmod-gpio-button-hotplug ppp ppp-mod-pppoe uci
Current Revision: "r28959-29397011cc"
Available Profiles:

8dev_carambola2:
    8devices Carambola2
    Packages: kmod-usb-chipidea2
    hasImageMetadata: 1
    SupportedDevices: 8dev,carambola2
tplink_archer-c7-v5:
    TP-Link Archer C7 v5
    Packages: kmod-usb2 kmod-usb-ledtrig-usbport kmod-ath10k-ct ath10k-firmware-qca988x-ct -ppp
    hasImageMetadata: 1
    SupportedDevices: tplink,archer-c7-v5
"#;

    #[test]
    fn parses_make_info_header_and_profiles() {
        let info = parse_make_info(MAKE_INFO).unwrap();
        assert_eq!(info.current_target.as_deref(), Some("ath79/generic"));
        assert_eq!(info.current_revision, "r28959-29397011cc");
        assert_eq!(info.default_packages.len(), 9);
        assert_eq!(info.default_packages[0], "base-files");
        assert_eq!(info.profiles.len(), 2);
        let c7 = info.profile("tplink_archer-c7-v5").unwrap();
        assert_eq!(c7.title, "TP-Link Archer C7 v5");
        assert_eq!(c7.packages.last().unwrap(), "-ppp");
        assert_eq!(
            c7.supported_devices.as_deref(),
            Some(&["tplink,archer-c7-v5".to_owned()][..])
        );
    }

    #[test]
    fn make_info_without_supported_devices_is_fine() {
        let info = parse_make_info(
            "Current Revision: \"r1-a\"\nDefault Packages: \nAvailable Profiles:\n\ngeneric:\n    Generic x86/64\n    Packages: kmod-e1000\n",
        )
        .unwrap();
        assert_eq!(info.current_target, None);
        assert!(info.default_packages.is_empty());
        assert_eq!(info.profiles[0].supported_devices, None);
        assert_eq!(info.profiles[0].title, "Generic x86/64");
    }

    #[test]
    fn rejects_make_info_without_revision() {
        let error = parse_make_info("Current Target: \"x/y\"\n").unwrap_err();
        assert_eq!(error, ImagebuilderError::MissingRevision);
        assert_eq!(
            error.to_string(),
            "`make info` output has no `Current Revision:` line"
        );
    }

    #[test]
    fn parses_opkg_and_apk_manifests() {
        let opkg = parse_manifest("test1 - 1.0\ntest2 - 2.0\n").unwrap();
        assert_eq!(opkg["test1"], "1.0");
        assert_eq!(opkg["test2"], "2.0");
        let apk = parse_manifest("apk-mbedtls 3.0.0_pre20250331-r1\nbase-files 1655~6df0e3d02a\n")
            .unwrap();
        assert_eq!(apk["base-files"], "1655~6df0e3d02a");
    }

    #[test]
    fn rejects_malformed_manifest_line() {
        let error = parse_manifest("test1 - 1.0\nbroken\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "manifest line 2 is not `name - version` or `name version`: `broken`"
        );
    }

    #[test]
    fn check_manifest_reports_first_problem_like_asu() {
        let manifest = parse_manifest("test1 - 1.0\ntest2 - 2.0\n").unwrap();
        let mut wanted = BTreeMap::new();
        wanted.insert("test1".to_owned(), "0.0".to_owned());
        assert_eq!(
            check_manifest(&manifest, &wanted).unwrap_err().detail(),
            "Error: Impossible package selection: test1 version not as requested: 0.0 vs. 1.0"
        );
        wanted.insert("test0".to_owned(), "1".to_owned());
        assert_eq!(
            check_manifest(&manifest, &wanted).unwrap_err(),
            BuildFailure::NotInManifest {
                package: "test0".into()
            }
        );
        let ok: BTreeMap<String, String> = [("test2".to_owned(), "2.0".to_owned())].into();
        assert!(check_manifest(&manifest, &ok).is_ok());
    }

    #[test]
    fn finds_abi_versioned_libraries_under_their_bare_names() {
        let apk = parse_manifest(
            "libgcc1 14.3.0-r4\nlibpython3-3.13 3.13.9-r1\nlibubox20250719 2025.07.19~ab-r1\n\
             nftables-json 1.1.3-r1\npython3 3.13.9-r1\n",
        )
        .unwrap();
        assert_eq!(
            manifest_entry(&apk, "libgcc"),
            Some(("libgcc1", "14.3.0-r4"))
        );
        assert_eq!(
            manifest_entry(&apk, "libpython3"),
            Some(("libpython3-3.13", "3.13.9-r1"))
        );
        assert_eq!(
            manifest_entry(&apk, "libgcc1"),
            Some(("libgcc1", "14.3.0-r4"))
        );
        assert_eq!(
            manifest_entry(&apk, "python3"),
            Some(("python3", "3.13.9-r1"))
        );
        // A provided name is not an ABI suffix, and kernel modules never carry one.
        assert_eq!(manifest_entry(&apk, "nftables"), None);
        assert_eq!(manifest_entry(&apk, "libubox2025"), None);
        // opkg's `STRIP_ABI=1` manifest has bare names; a client may still ask for the ABI name.
        let opkg = parse_manifest("libubox - 2024.03.29~eb9bcb64-r1\nkmod-nf-conntrack - 6.6-r1\n")
            .unwrap();
        assert_eq!(
            manifest_entry(&opkg, "libubox20240329"),
            Some(("libubox", "2024.03.29~eb9bcb64-r1"))
        );
        assert_eq!(manifest_entry(&opkg, "kmod-nf-conntrack6"), None);
    }

    #[test]
    fn two_abi_versions_of_one_library_are_ambiguous() {
        let manifest = parse_manifest("libfoo1 1.0\nlibfoo2 2.0\n").unwrap();
        assert_eq!(manifest_entry(&manifest, "libfoo"), None);
        assert_eq!(
            manifest_entry(&manifest, "libfoo2"),
            Some(("libfoo2", "2.0"))
        );
    }

    #[test]
    fn check_manifest_accepts_a_pinned_library_built_with_its_abi_suffix() {
        let manifest =
            parse_manifest("libgcc1 14.3.0-r4\nlibubox20250719 2025.07.19~ab-r1\n").unwrap();
        let pinned: BTreeMap<String, String> = [
            ("libgcc".to_owned(), "14.3.0-r4".to_owned()),
            ("libubox".to_owned(), "2025.07.19~ab-r1".to_owned()),
        ]
        .into();
        assert_eq!(check_manifest(&manifest, &pinned), Ok(()));
        let stale: BTreeMap<String, String> =
            [("libubox".to_owned(), "2024.03.29~eb9bcb64-r1".to_owned())].into();
        assert_eq!(
            check_manifest(&manifest, &stale).unwrap_err().detail(),
            "Error: Impossible package selection: libubox version not as requested: \
             2024.03.29~eb9bcb64-r1 vs. 2025.07.19~ab-r1"
        );
    }

    #[test]
    fn finds_opkg_missing_package() {
        let errors = scan_package_errors(
            "Collected errors:\n * opkg_install_cmd: Cannot install package luci-app-nonexistent.\n",
        );
        assert_eq!(
            errors.to_string(),
            "Impossible package selection: missing (luci-app-nonexistent)"
        );
    }

    #[test]
    fn finds_opkg_check_conflicts_for() {
        let errors = scan_package_errors(concat!(
            "Collected errors:\n",
            " * check_conflicts_for: The following packages conflict with dnsmasq-full:\n",
            " * check_conflicts_for:         dnsmasq *\n",
            " * opkg_install_cmd: Cannot install package dnsmasq-full.\n",
        ));
        assert_eq!(
            errors.to_string(),
            "Impossible package selection: conflicts (dnsmasq, dnsmasq-full)"
        );
    }

    #[test]
    fn finds_every_package_of_a_tabbed_check_conflicts_for_list() {
        // opkg prints each conflicting package as its own message: a tab, the name.
        let errors = scan_package_errors(concat!(
            "Collected errors:\n",
            " * check_conflicts_for: The following packages conflict with wpad-basic-mbedtls:\n",
            " * check_conflicts_for: \twpad-openssl * \n",
            " * opkg_install_cmd: Cannot install package wpad-basic-mbedtls.\n",
        ));
        assert_eq!(
            errors.to_string(),
            "Impossible package selection: conflicts (wpad-basic-mbedtls, wpad-openssl)"
        );
    }

    #[test]
    fn reports_apk_conflicts_by_package_name_not_name_version() {
        let errors = scan_package_errors(concat!(
            "ERROR: unable to select packages:\n",
            "  dnsmasq-full-2.91-r1:\n",
            "    conflicts: dnsmasq-2.91-r1[dnsmasq]\n",
            "    satisfies: world[dnsmasq-full]\n",
            "  dnsmasq-2.91-r1:\n",
            "    conflicts: dnsmasq-full-2.91-r1[dnsmasq]\n",
            "    satisfies: world[dnsmasq]\n",
        ));
        assert_eq!(
            errors.to_string(),
            "Impossible package selection: conflicts (dnsmasq, dnsmasq-full)"
        );
    }

    #[test]
    fn splits_apk_names_like_apk_tools() {
        assert_eq!(apk_package_name("dnsmasq-full-2.91-r1"), "dnsmasq-full");
        assert_eq!(apk_package_name("kmod-8021q-6.6.86-r1"), "kmod-8021q");
        assert_eq!(
            apk_package_name("libubox20250719-2025.07.19~abc-r1"),
            "libubox20250719"
        );
        assert_eq!(apk_package_name("kmod-8021q"), "kmod-8021q");
        assert_eq!(apk_package_name("nftables-json"), "nftables-json");
        assert_eq!(apk_package_name("-"), "-");
    }

    #[test]
    fn finds_opkg_file_clashes() {
        let errors = scan_package_errors(concat!(
            "Collected errors:\n",
            " * check_data_file_clashes: Package wpad-openssl wants to install file /usr/sbin/hostapd\n",
            "\tBut that file is already provided by package  * wpad-basic-mbedtls\n",
            " * opkg_install_cmd: Cannot install package wpad-basic-mbedtls.\n",
            " * opkg_install_cmd: Cannot install package not-there.\n",
        ));
        assert_eq!(
            errors.to_string(),
            "Impossible package selection: missing (not-there) conflicts (wpad-basic-mbedtls, wpad-openssl)"
        );
    }

    #[test]
    fn finds_apk_missing_and_conflicts() {
        let errors = scan_package_errors(concat!(
            "ERROR: unable to select packages:\n",
            "  tmux-extra (no such package):\n",
            "    required by: world[tmux-extra]\n",
            "  nftables-json:\n",
            "    conflicts: nftables-nojson[nftables=1.1.1-r1]\n",
            "    satisfies: world[nftables-json]\n",
            "  nftables-nojson:\n",
            "    conflicts: nftables-json[nftables=1.1.1-r1]\n",
            "    satisfies: firewall4[nftables]\n",
        ));
        assert_eq!(
            errors.to_string(),
            "Impossible package selection: missing (tmux-extra) conflicts (nftables-json, nftables-nojson)"
        );
    }

    #[test]
    fn finds_apk_overwrite_conflict() {
        let errors = scan_package_errors(
            "ERROR: wpad-openssl-2024.09.15-r1: trying to overwrite usr/sbin/wpad owned by wpad-basic-mbedtls-2024.09.15-r1.\n",
        );
        assert_eq!(
            errors.conflicts,
            ["wpad-basic-mbedtls".to_owned(), "wpad-openssl".to_owned()].into()
        );
    }

    #[test]
    fn unrelated_stderr_names_nothing() {
        let errors =
            scan_package_errors("make[2]: Entering directory '/builder'\nerror: nothing\n");
        assert!(errors.is_empty());
        assert_eq!(errors.to_string(), "Impossible package selection");
    }

    #[test]
    fn detects_size_errors() {
        assert!(is_size_error(
            "WARNING: Image file /builder/x.bin is too big:  8126464 > 7995392\n"
        ));
        assert!(is_size_error("mkfs.jffs2: write failed: out of space?\n"));
        assert!(!is_size_error("all good"));
    }

    proptest! {
        #[test]
        fn parsers_never_panic(text in "\\PC{0,400}") {
            let _ = parse_make_info(&text);
            let _ = parse_manifest(&text);
            let _ = scan_package_errors(&text);
            let _ = is_size_error(&text);
        }

        #[test]
        fn manifest_lookup_never_panics(
            names in proptest::collection::vec("[a-zé0-9.-]{1,12}", 0..8),
            name in "[a-zé0-9.-]{0,14}",
        ) {
            let manifest: BTreeMap<String, String> =
                names.into_iter().map(|n| (n, "1".to_owned())).collect();
            if let Some((built, _)) = manifest_entry(&manifest, &name) {
                prop_assert!(manifest.contains_key(built));
            }
        }

        #[test]
        fn manifest_round_trips(entries in proptest::collection::btree_map("[a-z0-9_+.-]{1,20}", "[a-z0-9_.~+-]{1,20}", 0..20)) {
            let text: String = entries.iter().map(|(n, v)| format!("{n} - {v}\n")).collect();
            prop_assert_eq!(parse_manifest(&text).unwrap(), entries);
        }
    }

    #[test]
    fn bad_manifest_line_is_shown_as_a_safe_excerpt() {
        let long = format!("bad\u{1b}[31m{}", "x".repeat(200));
        let error = parse_manifest(&format!("ok - 1\n{long}\n")).unwrap_err();
        let ImagebuilderError::BadManifestLine { line, text } = error else {
            panic!("expected a bad line, got {error:?}");
        };
        assert_eq!(line, 2);
        assert!(text.starts_with("bad\\u{1b}[31m"), "{text}");
        // The limit counts the line's characters; the one escaped ESC shows as six.
        assert!(
            text.ends_with('…') && text.chars().count() == MAX_LINE_CHARS + 5 + 1,
            "{text}"
        );
    }

    #[test]
    fn build_failure_details_are_asu_exact() {
        let cases = [
            (
                BuildFailure::ImageNotFound {
                    image: "ghcr.io/openwrt/imagebuilder:lantiq-xrx200-v24.10.1".into(),
                },
                "Error: Image not found: ghcr.io/openwrt/imagebuilder:lantiq-xrx200-v24.10.1. If this version was just released, please try again in a few hours as it may take some time to become fully available.",
            ),
            (
                BuildFailure::ImagebuilderSetup { returncode: 2 },
                "Error: Could not set up ImageBuilder (returncode=2)",
            ),
            (
                BuildFailure::IncorrectVersion {
                    actual: "r12647-cb44ab4f5d".into(),
                    requested: "some-bad-version-code".into(),
                },
                "Error: Received incorrect version r12647-cb44ab4f5d (requested some-bad-version-code)",
            ),
            (
                BuildFailure::ImpossiblePackageSelection(PackageErrors {
                    missing: ["a".to_owned(), "b".to_owned()].into(),
                    conflicts: ["c".to_owned(), "d".to_owned()].into(),
                }),
                "Error: Impossible package selection: missing (a, b) conflicts (c, d)",
            ),
            (
                BuildFailure::ImpossiblePackageSelection(PackageErrors::default()),
                "Error: Impossible package selection",
            ),
            (
                BuildFailure::NotInManifest {
                    package: "test3".into(),
                },
                "Error: Impossible package selection: test3 not in manifest",
            ),
            (
                BuildFailure::VersionMismatch {
                    package: "test1".into(),
                    requested: "0.0".into(),
                    actual: "1.0".into(),
                },
                "Error: Impossible package selection: test1 version not as requested: 0.0 vs. 1.0",
            ),
            (
                BuildFailure::ExceedsStorage,
                "Error: Selected packages exceed device storage",
            ),
            (
                BuildFailure::BuildFailed,
                "Error: Error while building firmware. See stdout/stderr",
            ),
            (BuildFailure::NoJsonFile, "Error: No JSON file found"),
            (
                BuildFailure::ProfileNotFound,
                "Error: Profile not found in JSON file",
            ),
        ];
        for (failure, detail) in cases {
            assert_eq!(failure.detail(), detail);
        }
    }
}
