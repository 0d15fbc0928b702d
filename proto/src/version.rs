//! OpenWrt release versions and branches, and opkg/apk package version comparison.
//!
//! # Releases
//!
//! [`Version`] is an OpenWrt release as ASU and downloads.openwrt.org name it (the `versions_list`
//! of <https://downloads.openwrt.org/.versions.json>): `24.10.5`, `24.10.0-rc1`, `24.10-SNAPSHOT`
//! or `SNAPSHOT`.
//! It orders numerically, unlike ASU's string sort (which puts `24.10.10` below `24.10.9`):
//!
//! - within a branch, `X.Y-SNAPSHOT` < `X.Y.0-rc1` < `X.Y.0-rc2` < `X.Y.0` < `X.Y.1` < ...;
//!   the branch snapshot sorts below the branch's releases, as ASU's overview orders them
//!   (`25.12.2 > 25.12.0 > 25.12.0-rc1 > 25.12-SNAPSHOT`). owut instead treats `-SNAPSHOT` as
//!   `.999`, above every release of its branch; callers that want "is this a newer build" for
//!   branch snapshots must compare revisions, not versions;
//! - branches order by their numbers (`23.05` < `24.10` < `25.12`), and `SNAPSHOT` (main) is
//!   greater than everything.
//!
//! Leading zeros are kept for [`Display`](fmt::Display) (`23.05` stays `23.05`) and only break
//! ties between otherwise equal numbers, so `Eq` and `Ord` agree and every parsed version prints
//! back exactly as it was written.
//!
//! # Packages
//!
//! [`compare`] orders two package versions the way the router's package manager does:
//! [`compare_opkg`] is opkg's dpkg-derived `verrevcmp` (epoch `:`, revision after the last `-`,
//! `~` sorting before everything, digit runs compared numerically) and [`compare_apk`] is
//! apk-tools v3's `apk_version_compare` (tokens `1.2.3`, one letter, `_alpha`/`_beta`/`_pre`/`_rc`
//! below the release and `_cvs`/`_svn`/`_git`/`_hg`/`_p` above it, `~hash`, `-rN`). [`change`]
//! adds owut's fourth answer, [`VersionChange::Indeterminate`], for versions that differ only in
//! their commit hash (`2024.03.29~eb9bcb64-r1` vs `2024.03.29~0123abcd-r1`): both package managers
//! order such hashes alphabetically, which says nothing about which commit is newer.
//!
//! The file is longer than the ~500 lines of code a module aims for because it holds both halves
//! of "which version is newer" that `lib.rs` assigns to this module; each half is self-contained
//! (release versions first, package versions after the `Package versions` marker) and could move
//! to a module of its own without changes.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use crate::excerpt::{MAX_VALUE_CHARS, excerpt};
use crate::installed::{MAX_PACKAGE_VERSION_LEN, PackageManager, ValueRule, check_value};

/// Longest release version accepted, in bytes.
pub const MAX_VERSION_LEN: usize = 32;

/// Most digits accepted in one number of a release version (keeps it within `u32`).
pub const MAX_NUMBER_DIGITS: usize = 9;

/// The version and branch name of OpenWrt's main-branch snapshots.
pub const SNAPSHOT: &str = "SNAPSHOT";

/// The suffix of a release branch's snapshot version (`24.10-SNAPSHOT`).
pub const BRANCH_SNAPSHOT_SUFFIX: &str = "-SNAPSHOT";

/// The forms a release version may take, for error messages.
const VERSION_FORMS: &str = "`X.Y.Z`, `X.Y.Z-rcN`, `X.Y-SNAPSHOT` or `SNAPSHOT`";

/// An OpenWrt release version: `24.10.5`, `24.10.0-rc1`, `24.10-SNAPSHOT` or `SNAPSHOT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Version(VersionKind);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum VersionKind {
    Snapshot,
    BranchSnapshot {
        major: Number,
        minor: Number,
    },
    Release {
        major: Number,
        minor: Number,
        patch: Number,
        release_candidate: Option<Number>,
    },
}

/// An OpenWrt branch: `24.10` or `SNAPSHOT` (main).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Branch(BranchKind);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum BranchKind {
    Snapshot,
    Release { major: Number, minor: Number },
}

impl Version {
    /// Parses a release version; see the [module documentation](self) for the forms.
    pub fn parse(text: &str) -> Result<Version, VersionError> {
        check_length(text)?;
        if text == SNAPSHOT {
            return Ok(Version(VersionKind::Snapshot));
        }
        if let Some(branch) = text.strip_suffix(BRANCH_SNAPSHOT_SUFFIX) {
            let (major, minor) = major_minor(branch, text)?;
            return Ok(Version(VersionKind::BranchSnapshot { major, minor }));
        }
        let (numbers, release_candidate) = match text.split_once('-') {
            Some((numbers, suffix)) => {
                let Some(rc) = suffix.strip_prefix("rc") else {
                    return Err(malformed(text));
                };
                (numbers, Some(number(rc, text)?))
            }
            None => (text, None),
        };
        let mut parts = numbers.split('.');
        let (Some(major), Some(minor), Some(patch), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed(text));
        };
        Ok(Version(VersionKind::Release {
            major: number(major, text)?,
            minor: number(minor, text)?,
            patch: number(patch, text)?,
            release_candidate,
        }))
    }

    /// The branch: `24.10.5` → `24.10`, `24.10-SNAPSHOT` → `24.10`, `SNAPSHOT` → `SNAPSHOT`.
    pub fn branch(&self) -> Branch {
        match self.0 {
            VersionKind::Snapshot => Branch(BranchKind::Snapshot),
            VersionKind::BranchSnapshot { major, minor }
            | VersionKind::Release { major, minor, .. } => {
                Branch(BranchKind::Release { major, minor })
            }
        }
    }

    /// Whether this is a snapshot build: `SNAPSHOT` or `X.Y-SNAPSHOT`.
    pub fn is_snapshot(&self) -> bool {
        matches!(
            self.0,
            VersionKind::Snapshot | VersionKind::BranchSnapshot { .. }
        )
    }

    /// Whether this is a release candidate (`24.10.0-rc1`).
    pub fn is_release_candidate(&self) -> bool {
        self.release_candidate().is_some()
    }

    /// The release candidate number (`24.10.0-rc3` → `3`).
    pub fn release_candidate(&self) -> Option<u32> {
        match self.0 {
            VersionKind::Release {
                release_candidate, ..
            } => release_candidate.map(|rc| rc.value),
            _ => None,
        }
    }

    /// Whether this is a final release (neither a snapshot nor a release candidate).
    pub fn is_final_release(&self) -> bool {
        matches!(
            self.0,
            VersionKind::Release {
                release_candidate: None,
                ..
            }
        )
    }

    /// The directory of this version on downloads.openwrt.org, relative to its root:
    /// `releases/24.10.5`, `releases/24.10-SNAPSHOT` or `snapshots`.
    pub fn download_path(&self) -> String {
        match self.0 {
            VersionKind::Snapshot => "snapshots".to_owned(),
            _ => format!("releases/{self}"),
        }
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.branch()
            .cmp(&other.branch())
            .then_with(|| rank_in_branch(self).cmp(&rank_in_branch(other)))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Orders versions of one branch: branch snapshot, then releases by patch, release candidates
/// before the final release.
fn rank_in_branch(version: &Version) -> (u8, Option<Number>, u8, Option<Number>) {
    match version.0 {
        VersionKind::Snapshot | VersionKind::BranchSnapshot { .. } => (0, None, 0, None),
        VersionKind::Release {
            patch,
            release_candidate: Some(rc),
            ..
        } => (1, Some(patch), 0, Some(rc)),
        VersionKind::Release {
            patch,
            release_candidate: None,
            ..
        } => (1, Some(patch), 1, None),
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            VersionKind::Snapshot => f.write_str(SNAPSHOT),
            VersionKind::BranchSnapshot { major, minor } => {
                write!(f, "{major}.{minor}{BRANCH_SNAPSHOT_SUFFIX}")
            }
            VersionKind::Release {
                major,
                minor,
                patch,
                release_candidate,
            } => {
                write!(f, "{major}.{minor}.{patch}")?;
                match release_candidate {
                    Some(rc) => write!(f, "-rc{rc}"),
                    None => Ok(()),
                }
            }
        }
    }
}

impl FromStr for Version {
    type Err = VersionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Version::parse(text)
    }
}

impl serde::Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Version::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Branch {
    /// Parses a branch name: `24.10` or `SNAPSHOT`.
    pub fn parse(text: &str) -> Result<Branch, VersionError> {
        check_length(text)?;
        if text == SNAPSHOT {
            return Ok(Branch(BranchKind::Snapshot));
        }
        let (major, minor) = major_minor(text, text)?;
        Ok(Branch(BranchKind::Release { major, minor }))
    }

    /// Whether this is the main branch (`SNAPSHOT`).
    pub fn is_snapshot(&self) -> bool {
        matches!(self.0, BranchKind::Snapshot)
    }

    /// The branch's snapshot version: `24.10` → `24.10-SNAPSHOT`, `SNAPSHOT` → `SNAPSHOT`.
    pub fn snapshot_version(&self) -> Version {
        match self.0 {
            BranchKind::Snapshot => Version(VersionKind::Snapshot),
            BranchKind::Release { major, minor } => {
                Version(VersionKind::BranchSnapshot { major, minor })
            }
        }
    }

    /// Whether `version` belongs to this branch.
    pub fn contains(&self, version: &Version) -> bool {
        version.branch() == *self
    }
}

impl Ord for Branch {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.0, other.0) {
            (BranchKind::Snapshot, BranchKind::Snapshot) => Ordering::Equal,
            (BranchKind::Snapshot, BranchKind::Release { .. }) => Ordering::Greater,
            (BranchKind::Release { .. }, BranchKind::Snapshot) => Ordering::Less,
            (
                BranchKind::Release { major, minor },
                BranchKind::Release {
                    major: other_major,
                    minor: other_minor,
                },
            ) => (major, minor).cmp(&(other_major, other_minor)),
        }
    }
}

impl PartialOrd for Branch {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Branch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            BranchKind::Snapshot => f.write_str(SNAPSHOT),
            BranchKind::Release { major, minor } => write!(f, "{major}.{minor}"),
        }
    }
}

impl FromStr for Branch {
    type Err = VersionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Branch::parse(text)
    }
}

impl serde::Serialize for Branch {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Branch {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Branch::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Errors parsing a release version, a branch or a package version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VersionError {
    /// The text is empty.
    #[error("the version is empty; expected {VERSION_FORMS}")]
    Empty,
    /// The text is longer than [`MAX_VERSION_LEN`].
    #[error("version `{value}` is {length} bytes long, more than the limit of {max} bytes")]
    TooLong {
        /// The text (truncated).
        value: String,
        /// Its length.
        length: usize,
        /// The limit.
        max: usize,
    },
    /// The text is not one of the release version (or branch) forms.
    #[error("version `{value}` is not an OpenWrt version; expected {VERSION_FORMS}")]
    Malformed {
        /// The text (truncated).
        value: String,
    },
    /// A number has more than [`MAX_NUMBER_DIGITS`] digits.
    #[error("version `{value}` has a number with more than {max} digits")]
    NumberTooLong {
        /// The text (truncated).
        value: String,
        /// The limit.
        max: usize,
    },
    /// A package version breaks a [`ValueRule`].
    #[error("package version `{value}` {rule}")]
    InvalidPackageVersion {
        /// The text (truncated).
        value: String,
        /// The rule it breaks.
        rule: ValueRule,
    },
}

/// One decimal number of a release version, with the number of digits it was written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Number {
    value: u32,
    digits: u8,
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:0width$}",
            self.value,
            width = usize::from(self.digits)
        )
    }
}

fn check_length(text: &str) -> Result<(), VersionError> {
    if text.is_empty() {
        return Err(VersionError::Empty);
    }
    if text.len() > MAX_VERSION_LEN {
        return Err(VersionError::TooLong {
            value: excerpt(text, MAX_VALUE_CHARS),
            length: text.len(),
            max: MAX_VERSION_LEN,
        });
    }
    Ok(())
}

fn malformed(whole: &str) -> VersionError {
    VersionError::Malformed {
        value: excerpt(whole, MAX_VALUE_CHARS),
    }
}

fn major_minor(text: &str, whole: &str) -> Result<(Number, Number), VersionError> {
    let Some((major, minor)) = text.split_once('.') else {
        return Err(malformed(whole));
    };
    Ok((number(major, whole)?, number(minor, whole)?))
}

fn number(text: &str, whole: &str) -> Result<Number, VersionError> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(malformed(whole));
    }
    if text.len() > MAX_NUMBER_DIGITS {
        return Err(VersionError::NumberTooLong {
            value: excerpt(whole, MAX_VALUE_CHARS),
            max: MAX_NUMBER_DIGITS,
        });
    }
    let value = text.parse::<u32>().map_err(|_| malformed(whole))?;
    let digits = u8::try_from(text.len()).map_err(|_| malformed(whole))?;
    Ok(Number { value, digits })
}

// ---------------------------------------------------------------------------------------------
// Package versions.

/// What moving from an installed package version to an available one means (owut's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VersionChange {
    /// The versions compare equal.
    Unchanged,
    /// The available version is newer.
    Upgrade,
    /// The available version is older.
    Downgrade,
    /// The versions differ only in their commit hash (`~<hex>`), whose order means nothing.
    Indeterminate,
}

/// A package version together with the package manager whose rules order it.
///
/// `Ord` and `Eq` follow the package manager ([`compare`]), so two spellings may be equal
/// (`1.0` and `1.00` for opkg). Versions of different package managers order opkg first; such a
/// comparison has no meaning beyond giving a total order.
#[derive(Debug, Clone)]
pub struct PackageVersion {
    manager: PackageManager,
    text: String,
}

impl PackageVersion {
    /// Checks `text` (one printable-ASCII token of at most
    /// [`MAX_PACKAGE_VERSION_LEN`] bytes) and keeps it.
    ///
    /// Versions the package manager itself would call invalid are kept: they still order the way
    /// the package manager orders them.
    pub fn parse(manager: PackageManager, text: &str) -> Result<PackageVersion, VersionError> {
        check_value(text, MAX_PACKAGE_VERSION_LEN).map_err(|rule| {
            VersionError::InvalidPackageVersion {
                value: excerpt(text, MAX_VALUE_CHARS),
                rule,
            }
        })?;
        Ok(PackageVersion {
            manager,
            text: text.to_owned(),
        })
    }

    /// The version as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The package manager whose rules order this version.
    pub fn manager(&self) -> PackageManager {
        self.manager
    }

    /// What replacing this (installed) version with `available` means.
    pub fn change_to(&self, available: &PackageVersion) -> VersionChange {
        change(self.manager, &self.text, &available.text)
    }
}

impl PartialEq for PackageVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for PackageVersion {}

impl Ord for PackageVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.manager
            .cmp(&other.manager)
            .then_with(|| compare(self.manager, &self.text, &other.text))
    }
}

impl PartialOrd for PackageVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for PackageVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Orders two package versions the way `manager` does.
pub fn compare(manager: PackageManager, a: &str, b: &str) -> Ordering {
    match manager {
        PackageManager::Opkg => compare_opkg(a, b),
        PackageManager::Apk => compare_apk(a, b),
    }
}

/// What replacing `installed` with `available` means under `manager`'s rules.
///
/// [`VersionChange::Indeterminate`] when the two differ in their `~<hex>` commit hash (or only one
/// has one) and are equal once the hashes are removed; otherwise the package manager's order.
pub fn change(manager: PackageManager, installed: &str, available: &str) -> VersionChange {
    let (installed_base, installed_hash) = split_commit_hash(installed);
    let (available_base, available_hash) = split_commit_hash(available);
    if installed_hash != available_hash
        && compare(manager, &installed_base, &available_base) == Ordering::Equal
    {
        return VersionChange::Indeterminate;
    }
    match compare(manager, installed, available) {
        Ordering::Less => VersionChange::Upgrade,
        Ordering::Equal => VersionChange::Unchanged,
        Ordering::Greater => VersionChange::Downgrade,
    }
}

/// Splits a `~<hex>` commit hash (ending the version or followed by `-`) out of `version`:
/// `2024.03.29~eb9bcb64-r1` → (`2024.03.29-r1`, `eb9bcb64`). `25.12.0~rc1` has no hash.
fn split_commit_hash(version: &str) -> (String, Option<&str>) {
    for (tilde, _) in version.match_indices('~') {
        let Some(after) = version.get(tilde.saturating_add(1)..) else {
            continue;
        };
        let end = after.find('-').unwrap_or(after.len());
        let Some(hash) = after.get(..end) else {
            continue;
        };
        if !hash.is_empty() && hash.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            let before = version.get(..tilde).unwrap_or_default();
            let rest = after.get(end..).unwrap_or_default();
            return (format!("{before}{rest}"), Some(hash));
        }
    }
    (version.to_owned(), None)
}

/// Orders two versions the way opkg does (`pkg_compare_versions`).
///
/// `[epoch:]upstream[-revision]`: epochs compare numerically (a missing or non-numeric epoch is
/// 0), then the upstream parts and the revisions (after the last `-`) with dpkg's `verrevcmp`.
pub fn compare_opkg(a: &str, b: &str) -> Ordering {
    let (epoch_a, upstream_a, revision_a) = split_opkg(a);
    let (epoch_b, upstream_b, revision_b) = split_opkg(b);
    compare_digits(epoch_a, epoch_b)
        .then_with(|| verrevcmp(upstream_a.as_bytes(), upstream_b.as_bytes()))
        .then_with(|| verrevcmp(revision_a.as_bytes(), revision_b.as_bytes()))
}

fn split_opkg(version: &str) -> (&str, &str, &str) {
    let (epoch, rest) = match version.split_once(':') {
        Some((epoch, rest))
            if !epoch.is_empty() && epoch.bytes().all(|byte| byte.is_ascii_digit()) =>
        {
            (epoch, rest)
        }
        _ => ("0", version),
    };
    match rest.rsplit_once('-') {
        Some((upstream, revision)) => (epoch, upstream, revision),
        None => (epoch, rest, ""),
    }
}

/// dpkg's character order: `~` first, then the end of the string, then letters, then the rest.
fn opkg_order(byte: Option<u8>) -> i32 {
    match byte {
        Some(b'~') => -1,
        None => 0,
        Some(byte) if byte.is_ascii_digit() => 0,
        Some(byte) if byte.is_ascii_alphabetic() => i32::from(byte),
        Some(byte) => i32::from(byte) + 256,
    }
}

fn verrevcmp(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0usize, 0usize);
    let digit_at = |s: &[u8], k: usize| s.get(k).is_some_and(u8::is_ascii_digit);
    while i < a.len() || j < b.len() {
        while a.get(i).is_some_and(|c| !c.is_ascii_digit())
            || b.get(j).is_some_and(|c| !c.is_ascii_digit())
        {
            let (order_a, order_b) = (opkg_order(a.get(i).copied()), opkg_order(b.get(j).copied()));
            if order_a != order_b {
                return order_a.cmp(&order_b);
            }
            i = i.saturating_add(1);
            j = j.saturating_add(1);
        }
        while a.get(i) == Some(&b'0') {
            i = i.saturating_add(1);
        }
        while b.get(j) == Some(&b'0') {
            j = j.saturating_add(1);
        }
        let mut first_difference = Ordering::Equal;
        while digit_at(a, i) && digit_at(b, j) {
            if first_difference == Ordering::Equal {
                first_difference = a.get(i).cmp(&b.get(j));
            }
            i = i.saturating_add(1);
            j = j.saturating_add(1);
        }
        if digit_at(a, i) {
            return Ordering::Greater;
        }
        if digit_at(b, j) {
            return Ordering::Less;
        }
        if first_difference != Ordering::Equal {
            return first_difference;
        }
    }
    Ordering::Equal
}

/// Compares two runs of ASCII digits as numbers of any size.
fn compare_digits(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// apk's token kinds, in the order apk uses to rank a version that ends early or goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Token {
    InitialDigit,
    Digit,
    Letter,
    Suffix,
    SuffixNumber,
    CommitHash,
    Revision,
    End,
    Invalid,
}

/// apk's suffix ranks; [`SUFFIX_NONE`] is the release itself.
const PRE_SUFFIXES: [&[u8]; 4] = [b"alpha", b"beta", b"pre", b"rc"];
const POST_SUFFIXES: [&[u8]; 5] = [b"cvs", b"svn", b"git", b"hg", b"p"];
const SUFFIX_NONE: usize = PRE_SUFFIXES.len() + 1;

struct ApkToken<'a> {
    token: Token,
    suffix: usize,
    value: &'a [u8],
}

impl<'a> ApkToken<'a> {
    fn first(rest: &mut &'a [u8]) -> Self {
        let mut token = ApkToken {
            token: Token::InitialDigit,
            suffix: 0,
            value: &[],
        };
        token.digits(rest);
        token
    }

    fn digits(&mut self, rest: &mut &'a [u8]) {
        let (value, tail) = take_while(rest, |c| c.is_ascii_digit());
        self.value = value;
        *rest = tail;
        if value.is_empty() {
            self.token = Token::Invalid;
        }
    }

    fn next(&mut self, rest: &mut &'a [u8]) {
        let Some(&first) = rest.first() else {
            self.token = Token::End;
            return;
        };
        match first {
            b'a'..=b'z' if self.token <= Token::Digit => {
                let (value, tail) = rest.split_at_checked(1).unwrap_or((&[], &[]));
                self.value = value;
                *rest = tail;
                self.token = Token::Letter;
            }
            b'.' if self.token <= Token::Digit => {
                *rest = rest.get(1..).unwrap_or_default();
                self.token = Token::Digit;
                self.digits(rest);
            }
            b'0'..=b'9' => {
                self.token = match self.token {
                    Token::InitialDigit | Token::Digit => Token::Digit,
                    Token::Suffix => Token::SuffixNumber,
                    _ => {
                        self.token = Token::Invalid;
                        return;
                    }
                };
                self.digits(rest);
            }
            b'_' if self.token <= Token::SuffixNumber => {
                let (value, tail) = take_while(rest.get(1..).unwrap_or_default(), |c| {
                    c.is_ascii_lowercase()
                });
                *rest = tail;
                self.value = value;
                self.suffix = suffix_rank(value);
                self.token = if self.suffix == 0 {
                    Token::Invalid
                } else {
                    Token::Suffix
                };
            }
            b'~' if self.token < Token::CommitHash => {
                let (value, tail) =
                    take_while(rest.get(1..).unwrap_or_default(), |c| c.is_ascii_hexdigit());
                *rest = tail;
                self.value = value;
                self.token = if value.is_empty() {
                    Token::Invalid
                } else {
                    Token::CommitHash
                };
            }
            b'-' if self.token < Token::Revision && rest.starts_with(b"-r") => {
                *rest = rest.get(2..).unwrap_or_default();
                self.token = Token::Revision;
                self.digits(rest);
            }
            _ => self.token = Token::Invalid,
        }
    }

    fn cmp_value(&self, other: &ApkToken<'_>) -> Ordering {
        match self.token {
            Token::Digit
                if self.value.first() == Some(&b'0') || other.value.first() == Some(&b'0') =>
            {
                self.value.cmp(other.value)
            }
            Token::Digit | Token::InitialDigit | Token::SuffixNumber | Token::Revision => {
                compare_digits(
                    std::str::from_utf8(self.value).unwrap_or_default(),
                    std::str::from_utf8(other.value).unwrap_or_default(),
                )
            }
            Token::Suffix => self.suffix.cmp(&other.suffix),
            _ => self.value.cmp(other.value),
        }
    }
}

fn take_while(bytes: &[u8], keep: impl Fn(&u8) -> bool) -> (&[u8], &[u8]) {
    let end = bytes.iter().position(|c| !keep(c)).unwrap_or(bytes.len());
    bytes.split_at_checked(end).unwrap_or((bytes, &[]))
}

/// apk's suffix rank: 1..=4 before the release, [`SUFFIX_NONE`] + 1.. after it, 0 if unknown.
fn suffix_rank(suffix: &[u8]) -> usize {
    if let Some(index) = PRE_SUFFIXES.iter().position(|known| *known == suffix) {
        return index.saturating_add(1);
    }
    if let Some(index) = POST_SUFFIXES.iter().position(|known| *known == suffix) {
        return SUFFIX_NONE.saturating_add(1).saturating_add(index);
    }
    0
}

/// Orders two versions the way apk-tools v3 does (`apk_version_compare`).
///
/// Versions apk calls invalid compare as apk compares them: token by token up to the first
/// invalid one, and two versions that turn invalid at the same token are equal. Numbers of any
/// length compare exactly (apk reads them into 64 bits).
pub fn compare_apk(a: &str, b: &str) -> Ordering {
    let (mut rest_a, mut rest_b) = (a.as_bytes(), b.as_bytes());
    let mut token_a = ApkToken::first(&mut rest_a);
    let mut token_b = ApkToken::first(&mut rest_b);
    while token_a.token == token_b.token && token_a.token < Token::End {
        let order = token_a.cmp_value(&token_b);
        if order != Ordering::Equal {
            return order;
        }
        token_a.next(&mut rest_a);
        token_b.next(&mut rest_b);
    }
    if token_a.token == token_b.token {
        return Ordering::Equal;
    }
    // One version goes on where the other stops: it is newer, unless what follows is a
    // pre-release suffix.
    if token_a.token == Token::Suffix && token_a.suffix < SUFFIX_NONE {
        return Ordering::Less;
    }
    if token_b.token == Token::Suffix && token_b.suffix < SUFFIX_NONE {
        return Ordering::Greater;
    }
    token_b.token.cmp(&token_a.token)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    #[test]
    fn release_versions_round_trip() {
        for text in [
            "24.10.5",
            "24.10.0-rc1",
            "25.12.1",
            "SNAPSHOT",
            "24.10-SNAPSHOT",
            "23.05.0",
            "19.07.10",
            "1.2.3",
        ] {
            assert_eq!(v(text).to_string(), text);
            let json = serde_json::to_string(&v(text)).unwrap();
            assert_eq!(serde_json::from_str::<Version>(&json).unwrap(), v(text));
        }
    }

    #[test]
    fn release_versions_order_numerically() {
        assert!(v("24.10.10") > v("24.10.9"));
        assert!(v("24.10.0-rc1") < v("24.10.0-rc2"));
        assert!(v("24.10.0-rc7") < v("24.10.0"));
        assert!(v("24.10.0") < v("24.10.1-rc1"));
        assert!(v("23.05.5") < v("24.10.0-rc1"));
        assert!(v("24.10.9") < v("SNAPSHOT"));
        assert!(v("25.12-SNAPSHOT") < v("SNAPSHOT"));
    }

    #[test]
    fn branch_snapshot_sorts_below_its_releases_like_asu() {
        let mut versions = [
            v("25.12.0-rc1"),
            v("25.12-SNAPSHOT"),
            v("25.12.2"),
            v("25.12.0"),
            v("24.10.6"),
            v("SNAPSHOT"),
        ];
        versions.sort_by(|a, b| b.cmp(a));
        let sorted: Vec<String> = versions.iter().map(Version::to_string).collect();
        assert_eq!(
            sorted,
            [
                "SNAPSHOT",
                "25.12.2",
                "25.12.0",
                "25.12.0-rc1",
                "25.12-SNAPSHOT",
                "24.10.6"
            ]
        );
    }

    #[test]
    fn leading_zeros_only_break_ties() {
        assert_eq!(v("23.05.0").branch().to_string(), "23.05");
        assert!(v("23.5.0") < v("23.05.0"));
        assert!(v("23.05.0") < v("23.6.0"));
    }

    #[test]
    fn branch_and_flags() {
        assert_eq!(v("24.10.5").branch(), Branch::parse("24.10").unwrap());
        assert_eq!(v("24.10-SNAPSHOT").branch().to_string(), "24.10");
        assert_eq!(v("SNAPSHOT").branch().to_string(), "SNAPSHOT");
        assert!(v("SNAPSHOT").branch().is_snapshot());
        assert!(v("24.10-SNAPSHOT").is_snapshot());
        assert!(!v("24.10.0-rc1").is_snapshot());
        assert!(v("24.10.0-rc1").is_release_candidate());
        assert_eq!(v("24.10.0-rc3").release_candidate(), Some(3));
        assert!(v("24.10.1").is_final_release());
        assert!(Branch::parse("24.10").unwrap() < Branch::parse("SNAPSHOT").unwrap());
        assert!(Branch::parse("23.05").unwrap() < Branch::parse("24.10").unwrap());
        assert_eq!(
            Branch::parse("24.10").unwrap().snapshot_version(),
            v("24.10-SNAPSHOT")
        );
        assert!(Branch::parse("24.10").unwrap().contains(&v("24.10.0-rc1")));
    }

    #[test]
    fn download_paths() {
        assert_eq!(v("24.10.5").download_path(), "releases/24.10.5");
        assert_eq!(
            v("24.10-SNAPSHOT").download_path(),
            "releases/24.10-SNAPSHOT"
        );
        assert_eq!(v("SNAPSHOT").download_path(), "snapshots");
    }

    #[test]
    fn rejects_malformed_versions() {
        for text in [
            "24.10",
            "24",
            "24.10.",
            ".10.1",
            "24.10.1-",
            "24.10.1-beta",
            "24.10.1-rc",
            "snapshot",
            "24.10.1.2",
            "v24.10.1",
            "24.10-snapshot",
            "-SNAPSHOT",
            "24.10.x",
        ] {
            assert!(
                matches!(Version::parse(text), Err(VersionError::Malformed { .. })),
                "{text}"
            );
        }
        assert_eq!(
            Version::parse("24.10").unwrap_err().to_string(),
            "version `24.10` is not an OpenWrt version; expected `X.Y.Z`, `X.Y.Z-rcN`, `X.Y-SNAPSHOT` or `SNAPSHOT`"
        );
        assert_eq!(Version::parse("").unwrap_err(), VersionError::Empty);
        assert!(matches!(
            Version::parse("1.2.1234567890"),
            Err(VersionError::NumberTooLong { .. })
        ));
        assert!(matches!(
            Version::parse(&"1".repeat(40)),
            Err(VersionError::TooLong { length: 40, .. })
        ));
    }

    const OPKG_PAIRS: &[(&str, &str, Ordering)] = &[
        ("1.36.1-r2", "1.36.1-r3", Ordering::Less),
        ("1.36.1-r10", "1.36.1-r9", Ordering::Greater),
        ("2.90-r4", "2.90-r4", Ordering::Equal),
        ("2.90-r4", "2.91-r1", Ordering::Less),
        ("6.6.86-r1", "6.6.119-r1", Ordering::Less),
        ("6.6.86", "6.6.86-r1", Ordering::Less),
        (
            "2024.03.29~eb9bcb64-r1",
            "2024.09.01~0123abcd-r1",
            Ordering::Less,
        ),
        ("2024.03.29~eb9bcb64-r1", "2024.03.29-r1", Ordering::Less),
        ("25.12.0~rc1", "25.12.0", Ordering::Less),
        ("25.12.0~rc1", "25.12.0~rc2", Ordering::Less),
        ("1.0", "1.00", Ordering::Equal),
        ("1:1.0-r1", "2.0-r1", Ordering::Greater),
        ("1.0a", "1.0", Ordering::Greater),
        ("1.0a", "1.0b", Ordering::Less),
        ("1.0+x", "1.0a", Ordering::Greater),
        (
            "25.074.42385~a1ca8c8",
            "25.116.62431~e7f6f1e",
            Ordering::Less,
        ),
        ("1654~0425664679", "1655~0b1a2c3d4e", Ordering::Less),
        ("9.9_p2-r1", "9.9_p1-r1", Ordering::Greater),
        ("", "0", Ordering::Equal),
    ];

    const APK_PAIRS: &[(&str, &str, Ordering)] = &[
        ("1.36.1-r2", "1.36.1-r3", Ordering::Less),
        ("1.36.1-r10", "1.36.1-r9", Ordering::Greater),
        ("2.90-r4", "2.90-r4", Ordering::Equal),
        ("6.6.86", "6.6.86-r1", Ordering::Less),
        ("6.12.57-r1", "6.6.86-r1", Ordering::Greater),
        ("1.2.3_p1-r0", "1.2.3-r0", Ordering::Greater),
        ("1.2.3_p1-r0", "1.2.3_p2-r0", Ordering::Less),
        ("1.2.3_rc1", "1.2.3", Ordering::Less),
        ("1.2.3_alpha", "1.2.3_beta", Ordering::Less),
        ("1.2.3_beta2", "1.2.3_rc1", Ordering::Less),
        ("1.2.3_rc1", "1.2.3_git20250101", Ordering::Less),
        ("1.2.3", "1.2.3.1", Ordering::Less),
        ("1.2.3a", "1.2.3", Ordering::Greater),
        ("1.2.3a", "1.2.3b", Ordering::Less),
        (
            "2024.03.29~eb9bcb64-r1",
            "2024.03.29~eb9bcb64-r2",
            Ordering::Less,
        ),
        (
            "2024.03.29~eb9bcb64-r1",
            "2024.09.01~0123abcd-r1",
            Ordering::Less,
        ),
        // apk ranks a hash above a missing one (unlike opkg, where `~` sorts first).
        ("2024.03.29~eb9bcb64-r1", "2024.03.29-r1", Ordering::Greater),
        ("1.2.3~abc-r1", "1.2.3~def-r1", Ordering::Less),
        ("1.01", "1.1", Ordering::Less),
        ("1.1", "1.10", Ordering::Less),
        ("01", "1", Ordering::Equal),
        (
            "3.0.0_rc5_git20251104~b5a31c0d-r1",
            "3.0.0-r1",
            Ordering::Less,
        ),
        (
            "99999999999999999999999",
            "99999999999999999999998",
            Ordering::Greater,
        ),
        ("abc", "xyz", Ordering::Equal),
    ];

    #[test]
    fn opkg_orders_real_versions() {
        for &(a, b, expected) in OPKG_PAIRS {
            assert_eq!(compare_opkg(a, b), expected, "{a} vs {b}");
            assert_eq!(compare_opkg(b, a), expected.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn apk_orders_real_versions() {
        for &(a, b, expected) in APK_PAIRS {
            assert_eq!(compare_apk(a, b), expected, "{a} vs {b}");
            assert_eq!(compare_apk(b, a), expected.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn hash_only_difference_is_indeterminate() {
        for manager in [PackageManager::Opkg, PackageManager::Apk] {
            assert_eq!(
                change(manager, "1.2.3~abc-r1", "1.2.3~def-r1"),
                VersionChange::Indeterminate
            );
            assert_eq!(
                change(manager, "2024.03.29~eb9bcb64-r1", "2024.03.29~0123abcd-r1"),
                VersionChange::Indeterminate
            );
            assert_eq!(
                change(manager, "2024.03.29~eb9bcb64-r1", "2024.03.29~eb9bcb64-r2"),
                VersionChange::Upgrade
            );
            assert_eq!(
                change(manager, "2024.09.01~0123abcd-r1", "2024.03.29~eb9bcb64-r1"),
                VersionChange::Downgrade
            );
            assert_eq!(
                change(manager, "1.36.1-r2", "1.36.1-r2"),
                VersionChange::Unchanged
            );
        }
        // `~rc1` is a pre-release marker, not a hash.
        assert_eq!(
            change(PackageManager::Opkg, "25.12.0~rc1", "25.12.0"),
            VersionChange::Upgrade
        );
    }

    #[test]
    fn package_version_orders_by_manager() {
        let a = PackageVersion::parse(PackageManager::Opkg, "1.0").unwrap();
        let b = PackageVersion::parse(PackageManager::Opkg, "1.00").unwrap();
        assert_eq!(a, b);
        let c = PackageVersion::parse(PackageManager::Apk, "1.2.3_p1-r0").unwrap();
        let d = PackageVersion::parse(PackageManager::Apk, "1.2.3-r0").unwrap();
        assert!(c > d);
        assert_eq!(d.change_to(&c), VersionChange::Upgrade);
        assert_eq!(c.to_string(), "1.2.3_p1-r0");
        assert_eq!(
            PackageVersion::parse(PackageManager::Apk, "1.0 r1")
                .unwrap_err()
                .to_string(),
            "package version `1.0 r1` contains the character ' '"
        );
    }

    proptest! {
        #[test]
        fn version_parse_never_panics(text in "\\PC{0,40}") {
            let _ = Version::parse(&text);
            let _ = Branch::parse(&text);
        }

        #[test]
        fn parsed_versions_round_trip(
            major in 0u32..100, minor in 0u32..100, patch in 0u32..100, rc in proptest::option::of(1u32..20)
        ) {
            let text = match rc {
                Some(rc) => format!("{major}.{minor:02}.{patch}-rc{rc}"),
                None => format!("{major}.{minor:02}.{patch}"),
            };
            let version = Version::parse(&text).unwrap();
            prop_assert_eq!(version.to_string(), text);
        }

        #[test]
        fn package_comparisons_are_antisymmetric(a in "[0-9a-z._~:+-]{0,16}", b in "[0-9a-z._~:+-]{0,16}") {
            prop_assert_eq!(compare_opkg(&a, &b), compare_opkg(&b, &a).reverse());
            prop_assert_eq!(compare_apk(&a, &b), compare_apk(&b, &a).reverse());
            let _ = change(PackageManager::Opkg, &a, &b);
            let _ = change(PackageManager::Apk, &a, &b);
        }

        #[test]
        fn arbitrary_package_versions_never_panic(a in "\\PC{0,24}", b in "\\PC{0,24}") {
            let _ = compare_opkg(&a, &b);
            let _ = compare_apk(&a, &b);
        }
    }
}
