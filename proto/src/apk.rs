//! apk-tools' package databases (OpenWrt 25.12 and newer): `/lib/apk/db/installed` and
//! `/etc/apk/world`.
//!
//! The installed database is a list of stanzas separated by blank lines; each line is a one-letter
//! key, a colon and a value (<https://wiki.alpinelinux.org/wiki/Apk_spec>, "Installed Database"):
//!
//! ```text
//! P:libubox20240329
//! V:2024.03.29~eb9bcb64-r1
//! A:x86_64
//! D:libc
//! p:libubox=2024.03.29~eb9bcb64-r1
//! g:openwrt:abiversion=20240329
//! F:usr/lib
//! R:libubox.so.20240329
//! ```
//!
//! This module reads `P:` (name), `V:` (version), `g:` (space-separated tags; OpenWrt's
//! `openwrt:abiversion=<abi>` carries the ABI version) and `p:` (provides); every other key
//! (`A:`, `D:`, the `F:`/`R:`/`Z:` file lists, ...) is skipped without decoding, so non-UTF-8 file
//! names do no harm.
//!
//! The world file holds the explicitly requested dependencies, one per line, newline-terminated:
//! a name optionally followed by a constraint that starts with one of `@ ~ < > =`
//! (`luci`, `htop>=3.3`, `foo@custom`); a leading `!` marks a conflict.
//!
//! [`parse`] combines both the way rpcd's `rpc-sys packagelist` does (rpcd `sys.c`, Nov 2024 and
//! later): every `P:`/`V:` pair is installed; a package is top-level when its database name or its
//! ABI-stripped name is a world entry; packages with an `openwrt:abiversion` tag are reported under
//! the stripped name. rpcd fails with `UNKNOWN_ERROR` when the world file is empty or does not end
//! in a newline; [`parse_world`] mirrors that with [`ApkError::EmptyWorld`] and
//! [`ApkError::WorldMissingNewline`]. A world entry that names only a virtual package
//! (`nftables`, provided by `nftables-json`) makes nothing top-level, as in rpcd; the provided
//! names are kept ([`InstalledPackage::provides`]), so
//! [`InstalledPackages::provider`] still finds `nftables`.

use std::collections::BTreeSet;

use crate::excerpt::{MAX_VALUE_CHARS, excerpt, excerpt_bytes};
use crate::installed::{
    InstalledPackage, InstalledPackages, MAX_PACKAGE_NAME_LEN, MAX_PACKAGE_VERSION_LEN,
    MAX_PACKAGES, PackageManager, ValueRule, check_value, strip_abi_suffix,
};
use crate::stanza::{Event, LineTooLong, Reader};
use crate::wire::{APK_INSTALLED_PATH, APK_WORLD_PATH};

/// Largest installed database accepted, in bytes. It lists every installed file; a large x86
/// install stays under 8 MiB.
pub const MAX_INSTALLED_SIZE: usize = 64 * 1024 * 1024;

/// Largest world file accepted, in bytes.
pub const MAX_WORLD_SIZE: usize = 1024 * 1024;

/// Longest line accepted in either file, in bytes.
pub const MAX_LINE_LEN: usize = 64 * 1024;

/// Most world entries accepted.
pub const MAX_WORLD_ENTRIES: usize = MAX_PACKAGES;

/// Longest world constraint accepted (`>=1.2.3-r1`, `@custom`), in bytes.
pub const MAX_CONSTRAINT_LEN: usize = MAX_PACKAGE_VERSION_LEN + 8;

/// The tag prefix OpenWrt uses for a package's ABI version.
pub const ABI_VERSION_TAG: &str = "openwrt:abiversion=";

/// The characters that end a name in a world entry and start its constraint.
pub const CONSTRAINT_START: [char; 5] = ['@', '~', '<', '>', '='];

/// One package of `/lib/apk/db/installed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApkPackage {
    /// `P:` — the database name (`libubox20240329`).
    pub name: String,
    /// `V:` — the version.
    pub version: String,
    /// The value of the `openwrt:abiversion=` tag, if any.
    pub abi_version: Option<String>,
    /// `p:` — what the package provides, as written (`libubox=2024.03.29~eb9bcb64-r1`).
    pub provides: Vec<String>,
    /// 1-based line number of the stanza's first line.
    pub line: usize,
}

/// One entry of `/etc/apk/world`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorldEntry {
    /// The package name (`htop`).
    pub name: String,
    /// The constraint after the name, starting with one of [`CONSTRAINT_START`] (`>=3.3`).
    pub constraint: Option<String>,
    /// Whether the entry is a conflict (`!name`): the package must not be installed.
    pub conflict: bool,
}

/// Parses both files and applies rpcd's `packagelist` rules.
pub fn parse(installed: &[u8], world: &[u8]) -> Result<InstalledPackages, ApkError> {
    let database = parse_installed(installed)?;
    let world = parse_world(world)?;
    let requested: BTreeSet<&str> = world
        .iter()
        .filter(|entry| !entry.conflict)
        .map(|entry| entry.name.as_str())
        .collect();
    let mut packages = InstalledPackages::new(PackageManager::Apk);
    for package in database {
        let name = match &package.abi_version {
            Some(abi_version) => strip_abi_suffix(&package.name, abi_version).to_owned(),
            None => package.name.clone(),
        };
        let top_level =
            requested.contains(package.name.as_str()) || requested.contains(name.as_str());
        // `p:` entries are `name=version` (or a bare virtual name); only the name matters.
        let provides = package
            .provides
            .iter()
            .filter_map(|provided| provided.split(CONSTRAINT_START).next())
            .filter(|provided| !provided.is_empty())
            .map(str::to_owned)
            .collect();
        packages.insert(InstalledPackage {
            name,
            package: package.name,
            version: package.version,
            abi_version: package.abi_version,
            top_level,
            provides,
        });
    }
    Ok(packages)
}

/// Parses `/lib/apk/db/installed` into its packages, in file order.
pub fn parse_installed(installed: &[u8]) -> Result<Vec<ApkPackage>, ApkError> {
    if installed.len() > MAX_INSTALLED_SIZE {
        return Err(ApkError::TooLarge {
            file: APK_INSTALLED_PATH,
            size: installed.len(),
            max: MAX_INSTALLED_SIZE,
        });
    }
    let mut packages = Vec::new();
    let mut stanza = Stanza::default();
    for event in Reader::new(installed, MAX_LINE_LEN) {
        match event.map_err(|error| line_too_long(error, APK_INSTALLED_PATH))? {
            // apk has no continuation lines: one that starts with a space is not `K:value`.
            Event::Field(line) | Event::Continuation(line) | Event::OrphanContinuation(line) => {
                stanza.field(line.text, line.number)?;
            }
            Event::End { start, line } => {
                std::mem::take(&mut stanza).finish(&mut packages, start, line)?;
            }
        }
    }
    Ok(packages)
}

/// Parses `/etc/apk/world` into its entries, in file order.
///
/// Entries are separated by newlines (apk-tools also accepts spaces, so both are). The file must
/// not be empty and must end in a newline: rpcd refuses such a file, and apk never writes one.
pub fn parse_world(world: &[u8]) -> Result<Vec<WorldEntry>, ApkError> {
    if world.len() > MAX_WORLD_SIZE {
        return Err(ApkError::TooLarge {
            file: APK_WORLD_PATH,
            size: world.len(),
            max: MAX_WORLD_SIZE,
        });
    }
    if world.iter().all(u8::is_ascii_whitespace) {
        return Err(ApkError::EmptyWorld);
    }
    if world.last() != Some(&b'\n') {
        return Err(ApkError::WorldMissingNewline { size: world.len() });
    }
    let mut entries = Vec::new();
    for line in Reader::new(world, MAX_LINE_LEN).lines() {
        let line = line.map_err(|error| line_too_long(error, APK_WORLD_PATH))?;
        let line_number = line.number;
        let text = std::str::from_utf8(line.text).map_err(|_| ApkError::NotUtf8 {
            file: APK_WORLD_PATH,
            line: line_number,
        })?;
        for word in text.split_ascii_whitespace() {
            if entries.len() >= MAX_WORLD_ENTRIES {
                return Err(ApkError::TooManyEntries {
                    file: APK_WORLD_PATH,
                    line: line_number,
                    max: MAX_WORLD_ENTRIES,
                });
            }
            entries.push(world_entry(word, line_number)?);
        }
    }
    Ok(entries)
}

/// Errors reading apk's databases.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApkError {
    /// A file is larger than its limit ([`MAX_INSTALLED_SIZE`], [`MAX_WORLD_SIZE`]).
    #[error("`{file}` is {size} bytes, more than the limit of {max} bytes")]
    TooLarge {
        /// The router path of the file.
        file: &'static str,
        /// Size of the input.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A line is longer than [`MAX_LINE_LEN`].
    #[error("line {line} of `{file}` is {length} bytes long, more than the limit of {max} bytes")]
    LineTooLong {
        /// The router path of the file.
        file: &'static str,
        /// 1-based line number.
        line: usize,
        /// Length of the line.
        length: usize,
        /// The limit.
        max: usize,
    },
    /// A line of the installed database is not `<letter>:<value>`.
    #[error("line {line} of `{APK_INSTALLED_PATH}` is not a `K:value` line: `{content}`")]
    MalformedLine {
        /// 1-based line number.
        line: usize,
        /// The line (truncated).
        content: String,
    },
    /// `P:` or `V:` appears twice in one stanza.
    #[error("line {line} of `{APK_INSTALLED_PATH}` repeats `{key}:` within one stanza")]
    DuplicateField {
        /// 1-based line number of the repetition.
        line: usize,
        /// The key letter.
        key: char,
    },
    /// A value this parser reads is not UTF-8.
    #[error("line {line} of `{file}` is not valid UTF-8")]
    NotUtf8 {
        /// The router path of the file.
        file: &'static str,
        /// 1-based line number.
        line: usize,
    },
    /// A name, version, ABI version or constraint breaks a [`ValueRule`].
    #[error("line {line} of `{file}`: {field} `{value}` {rule}")]
    InvalidValue {
        /// The router path of the file.
        file: &'static str,
        /// 1-based line number.
        line: usize,
        /// What the value is (`package name`, `version`, ...).
        field: &'static str,
        /// The value (truncated).
        value: String,
        /// The rule it breaks.
        rule: ValueRule,
    },
    /// A stanza lacks `P:` or `V:`.
    #[error("the stanza at line {line} of `{APK_INSTALLED_PATH}` has no `{key}:` line")]
    MissingField {
        /// 1-based line number where the stanza starts.
        line: usize,
        /// The missing key letter.
        key: char,
    },
    /// More packages or world entries than the limit.
    #[error("`{file}` has more than {max} entries (at line {line})")]
    TooManyEntries {
        /// The router path of the file.
        file: &'static str,
        /// 1-based line number where the limit was passed.
        line: usize,
        /// The limit.
        max: usize,
    },
    /// The world file is empty (rpcd answers `UNKNOWN_ERROR`).
    #[error("`{APK_WORLD_PATH}` is empty, so no package is marked as requested")]
    EmptyWorld,
    /// The world file does not end in a newline (rpcd answers `UNKNOWN_ERROR`).
    #[error(
        "`{APK_WORLD_PATH}` ({size} bytes) does not end in a newline; it may have been cut off"
    )]
    WorldMissingNewline {
        /// Size of the file.
        size: usize,
    },
}

/// The fields of one installed-database stanza.
#[derive(Default)]
struct Stanza {
    name: Option<String>,
    version: Option<String>,
    abi_version: Option<String>,
    provides: Vec<String>,
}

impl Stanza {
    fn field(&mut self, line: &[u8], line_number: usize) -> Result<(), ApkError> {
        let (Some(&key), Some(b':')) = (line.first(), line.get(1)) else {
            return Err(ApkError::MalformedLine {
                line: line_number,
                content: excerpt_bytes(line, MAX_VALUE_CHARS),
            });
        };
        if !key.is_ascii_alphabetic() {
            return Err(ApkError::MalformedLine {
                line: line_number,
                content: excerpt_bytes(line, MAX_VALUE_CHARS),
            });
        }
        let value = line.get(2..).unwrap_or_default();
        match key {
            b'P' => {
                let name =
                    installed_token(value, "package name", MAX_PACKAGE_NAME_LEN, line_number)?;
                set_once(&mut self.name, name, 'P', line_number)
            }
            b'V' => {
                let version =
                    installed_token(value, "version", MAX_PACKAGE_VERSION_LEN, line_number)?;
                set_once(&mut self.version, version, 'V', line_number)
            }
            b'g' => {
                for tag in installed_text(value, line_number)?.split_ascii_whitespace() {
                    if let Some(abi_version) = tag.strip_prefix(ABI_VERSION_TAG) {
                        check(
                            abi_version,
                            APK_INSTALLED_PATH,
                            line_number,
                            "ABI version",
                            MAX_PACKAGE_VERSION_LEN,
                        )?;
                        self.abi_version = Some(abi_version.to_owned());
                    }
                }
                Ok(())
            }
            b'p' => {
                for provided in installed_text(value, line_number)?.split_ascii_whitespace() {
                    check(
                        provided,
                        APK_INSTALLED_PATH,
                        line_number,
                        "provided name",
                        MAX_CONSTRAINT_LEN + MAX_PACKAGE_NAME_LEN,
                    )?;
                    self.provides.push(provided.to_owned());
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Ends the stanza that starts at line `start` and ends at line `end`: adds it to `packages`.
    fn finish(
        self,
        packages: &mut Vec<ApkPackage>,
        start: usize,
        end: usize,
    ) -> Result<(), ApkError> {
        let Some(name) = self.name else {
            return Err(ApkError::MissingField {
                line: start,
                key: 'P',
            });
        };
        let Some(version) = self.version else {
            return Err(ApkError::MissingField {
                line: start,
                key: 'V',
            });
        };
        if packages.len() >= MAX_PACKAGES {
            return Err(ApkError::TooManyEntries {
                file: APK_INSTALLED_PATH,
                line: end,
                max: MAX_PACKAGES,
            });
        }
        packages.push(ApkPackage {
            name,
            version,
            abi_version: self.abi_version.filter(|abi| !abi.is_empty()),
            provides: self.provides,
            line: start,
        });
        Ok(())
    }
}

fn line_too_long(error: LineTooLong, file: &'static str) -> ApkError {
    ApkError::LineTooLong {
        file,
        line: error.line,
        length: error.length,
        max: error.max,
    }
}

fn set_once(
    slot: &mut Option<String>,
    value: String,
    key: char,
    line: usize,
) -> Result<(), ApkError> {
    if slot.is_some() {
        return Err(ApkError::DuplicateField { line, key });
    }
    *slot = Some(value);
    Ok(())
}

fn installed_text(value: &[u8], line: usize) -> Result<&str, ApkError> {
    std::str::from_utf8(value).map_err(|_| ApkError::NotUtf8 {
        file: APK_INSTALLED_PATH,
        line,
    })
}

fn installed_token(
    value: &[u8],
    field: &'static str,
    max: usize,
    line: usize,
) -> Result<String, ApkError> {
    let text = installed_text(value, line)?.trim_matches([' ', '\t']);
    check(text, APK_INSTALLED_PATH, line, field, max)?;
    Ok(text.to_owned())
}

fn check(
    value: &str,
    file: &'static str,
    line: usize,
    field: &'static str,
    max: usize,
) -> Result<(), ApkError> {
    check_value(value, max).map_err(|rule| ApkError::InvalidValue {
        file,
        line,
        field,
        value: excerpt(value, MAX_VALUE_CHARS),
        rule,
    })
}

fn world_entry(word: &str, line: usize) -> Result<WorldEntry, ApkError> {
    let (conflict, rest) = match word.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, word),
    };
    let split = rest.find(CONSTRAINT_START).unwrap_or(rest.len());
    let (name, constraint) = rest.split_at_checked(split).unwrap_or((rest, ""));
    check(
        name,
        APK_WORLD_PATH,
        line,
        "package name",
        MAX_PACKAGE_NAME_LEN,
    )?;
    let constraint = if constraint.is_empty() {
        None
    } else {
        check(
            constraint,
            APK_WORLD_PATH,
            line,
            "constraint",
            MAX_CONSTRAINT_LEN,
        )?;
        Some(constraint.to_owned())
    };
    Ok(WorldEntry {
        name: name.to_owned(),
        constraint,
        conflict,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    const INSTALLED_25_12: &[u8] = include_bytes!("../testdata/apk/installed-25.12-x86-64");
    const WORLD_25_12: &[u8] = include_bytes!("../testdata/apk/world-25.12-x86-64");

    #[test]
    fn fixture_gives_rpcd_top_level_set() {
        let packages = parse(INSTALLED_25_12, WORLD_25_12).unwrap();
        // Written by hand from the fixture: world names that are `P:` names or ABI-stripped `P:`
        // names. `nftables` in world is virtual (provided by `nftables-json`), so it marks
        // nothing; `!dnsmasq-full` is a conflict; `libustream-mbedtls` matches
        // `libustream-mbedtls20201210` through its ABI tag.
        let expected: BTreeSet<&str> = [
            "apk-mbedtls",
            "base-files",
            "busybox",
            "ca-bundle",
            "dnsmasq",
            "dropbear",
            "e2fsprogs",
            "firewall4",
            "fstools",
            "grub2-bios-setup",
            "htop",
            "kmod-button-hotplug",
            "kmod-e1000e",
            "kmod-igc",
            "kmod-nft-offload",
            "libc",
            "libgcc",
            "libustream-mbedtls",
            "logd",
            "luci",
            "luci-app-attendedsysupgrade",
            "mkf2fs",
            "mtd",
            "netifd",
            "odhcp6c",
            "odhcpd-ipv6only",
            "partx-utils",
            "ppp",
            "ppp-mod-pppoe",
            "procd-ujail",
            "uci",
            "uclient-fetch",
            "urandom-seed",
            "urngd",
        ]
        .into();
        let top: BTreeSet<String> = packages.packagelist(false).into_keys().collect();
        let top: BTreeSet<&str> = top.iter().map(String::as_str).collect();
        assert_eq!(top, expected);
    }

    #[test]
    fn fixture_strips_abi_tags() {
        let packages = parse(INSTALLED_25_12, WORLD_25_12).unwrap();
        let all = packages.packagelist(true);
        assert!(all.len() >= 60, "{}", all.len());
        assert!(all.contains_key("libubox"));
        assert!(!all.contains_key("libubox20240329"));
        assert!(!all.contains_key("nftables"));
        let libubox = packages.get("libubox").unwrap();
        assert_eq!(libubox.package, "libubox20240329");
        assert_eq!(libubox.abi_version.as_deref(), Some("20240329"));
        assert!(!packages.get("nftables-json").unwrap().top_level);
        assert_eq!(packages.manager(), PackageManager::Apk);
    }

    #[test]
    fn world_entries_keep_constraints_and_conflicts() {
        let world = parse_world(b"luci\nhtop>=3.3\nfoo@custom bar~1.2\n!dnsmasq-full\n").unwrap();
        let as_tuples: Vec<(&str, Option<&str>, bool)> = world
            .iter()
            .map(|entry| {
                (
                    entry.name.as_str(),
                    entry.constraint.as_deref(),
                    entry.conflict,
                )
            })
            .collect();
        assert_eq!(
            as_tuples,
            [
                ("luci", None, false),
                ("htop", Some(">=3.3"), false),
                ("foo", Some("@custom"), false),
                ("bar", Some("~1.2"), false),
                ("dnsmasq-full", None, true),
            ]
        );
    }

    #[test]
    fn provided_names_are_kept_without_their_versions() {
        let packages = parse(INSTALLED_25_12, WORLD_25_12).unwrap();
        assert_eq!(
            packages.provider("nftables").map(|p| p.name.as_str()),
            Some("nftables-json")
        );
        let libubox = packages.get("libubox").unwrap();
        assert!(
            libubox.provides.iter().any(|p| p == "libubox"),
            "{libubox:?}"
        );
        assert!(packages.provider("nftables-nojson").is_none());
    }

    #[test]
    fn world_may_use_abi_versioned_name() {
        let installed = b"P:libfoo5\nV:1-r1\ng:openwrt:abiversion=5\n";
        let packages = parse(installed, b"libfoo5\n").unwrap();
        let libfoo = packages.get("libfoo").unwrap();
        assert!(libfoo.top_level);
        assert_eq!(libfoo.package, "libfoo5");
    }

    #[test]
    fn rejects_empty_world() {
        let error = parse_world(b"").unwrap_err();
        assert_eq!(error, ApkError::EmptyWorld);
        assert!(error.to_string().starts_with("`/etc/apk/world` is empty"));
        assert_eq!(parse_world(b"\n \n").unwrap_err(), ApkError::EmptyWorld);
    }

    #[test]
    fn rejects_world_without_trailing_newline() {
        let error = parse_world(b"luci\nhtop").unwrap_err();
        assert_eq!(error, ApkError::WorldMissingNewline { size: 9 });
        assert_eq!(
            error.to_string(),
            "`/etc/apk/world` (9 bytes) does not end in a newline; it may have been cut off"
        );
    }

    #[test]
    fn rejects_world_entry_without_name() {
        let error = parse_world(b">=1.0\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "line 1 of `/etc/apk/world`: package name `` is empty"
        );
    }

    #[test]
    fn rejects_stanza_without_version() {
        let error = parse_installed(b"P:a\nV:1\n\nP:b\nA:x86_64\n").unwrap_err();
        assert_eq!(error, ApkError::MissingField { line: 4, key: 'V' });
        assert_eq!(
            error.to_string(),
            "the stanza at line 4 of `/lib/apk/db/installed` has no `V:` line"
        );
    }

    #[test]
    fn rejects_duplicate_name() {
        let error = parse_installed(b"P:a\nV:1\nP:b\n").unwrap_err();
        assert_eq!(error, ApkError::DuplicateField { line: 3, key: 'P' });
    }

    #[test]
    fn rejects_malformed_line() {
        let error = parse_installed(b"P:a\nPackage: a\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "line 2 of `/lib/apk/db/installed` is not a `K:value` line: `Package: a`"
        );
    }

    #[test]
    fn skips_non_utf8_file_names() {
        let packages = parse_installed(b"P:a\nV:1\nF:etc\nR:\xff\xfe\n").unwrap();
        assert_eq!(packages.len(), 1);
    }

    #[test]
    fn accepts_space_after_tag_key() {
        let packages = parse_installed(b"P:libfoo5\nV:1\ng: openwrt:abiversion=5 other\n").unwrap();
        assert_eq!(packages.first().unwrap().abi_version.as_deref(), Some("5"));
    }

    #[test]
    fn rejects_oversized_inputs() {
        let installed = vec![b'\n'; MAX_INSTALLED_SIZE + 1];
        assert!(matches!(
            parse_installed(&installed),
            Err(ApkError::TooLarge {
                file: APK_INSTALLED_PATH,
                ..
            })
        ));
        let world = vec![b'\n'; MAX_WORLD_SIZE + 1];
        assert!(matches!(
            parse_world(&world),
            Err(ApkError::TooLarge {
                file: APK_WORLD_PATH,
                ..
            })
        ));
    }

    #[test]
    fn every_prefix_parses_or_fails_cleanly() {
        let full = parse_installed(INSTALLED_25_12).unwrap().len();
        for cut in 0..INSTALLED_25_12.len() {
            if let Ok(packages) = parse_installed(INSTALLED_25_12.get(..cut).unwrap()) {
                assert!(packages.len() <= full);
            }
        }
        // A world file cut anywhere but after a newline is refused, as rpcd refuses it.
        for cut in 1..WORLD_25_12.len() {
            let prefix = WORLD_25_12.get(..cut).unwrap();
            let result = parse_world(prefix);
            if prefix.last() != Some(&b'\n') {
                assert!(matches!(result, Err(ApkError::WorldMissingNewline { .. })));
            }
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(
            installed in proptest::collection::vec(any::<u8>(), 0..2048),
            world in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let _ = parse(&installed, &world);
            let _ = parse_world(&world);
        }

        #[test]
        fn arbitrary_world_lines_never_panic(lines in proptest::collection::vec("!?[a-z0-9@~<>=.-]{0,10}", 0..20)) {
            let mut text = lines.join("\n");
            text.push('\n');
            let _ = parse_world(text.as_bytes());
        }
    }
}
