//! Package indexes of an OpenWrt feed: opkg `Packages` and `index.json` v1/v2, as published under
//! <https://downloads.openwrt.org/releases/> (`packages/<arch>/<feed>/`) and read by the ASU server
//! (<https://github.com/openwrt/asu>) to check a request's packages.
//!
//! - [`parse_packages`]: an opkg `Packages` file (RFC 822-like stanzas separated by blank
//!   lines) → [`PackageIndex`] of ABI-free name → version; the architecture is the first one
//!   that is not `all`.
//! - [`parse_packages_detailed`]: the same file with `Depends`, `Provides`, `Conflicts`,
//!   `Size`, `Installed-Size`, for tools that resolve dependencies.
//! - [`parse_index_json`]: `index.json`, version detected: v2
//!   (`{"version": 2, "architecture", "packages"}`, ABI-free names) or v1 (no `version` key,
//!   names carry their ABI suffix, which cannot be removed without the `Packages` file).
//!
//! Every parser checks a size limit and an entry limit and never panics.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::excerpt::{MAX_LINE_CHARS, excerpt};
use crate::json;
use crate::stanza::{Event, Reader};

/// Largest `Packages` file accepted, in bytes (the biggest feed is a few MiB).
pub const MAX_PACKAGES_BYTES: usize = 64 * 1024 * 1024;
/// Largest `index.json` accepted, in bytes.
pub const MAX_INDEX_JSON_BYTES: usize = 64 * 1024 * 1024;
/// Most packages in one index.
pub const MAX_INDEX_ENTRIES: usize = 100_000;

/// A package index: name → version, plus the feed's architecture.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PackageIndex {
    /// Package architecture, e.g. `mips_24kc`; `None` when every package is `all`.
    #[serde(default)]
    pub architecture: Option<String>,
    /// Package name → version.
    #[serde(default)]
    pub packages: BTreeMap<String, String>,
}

/// `index.json` with its detected format version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexJson {
    /// `1` when the file has no `version` key, else its value.
    pub version: u64,
    /// The index; for v1 the names still carry their ABI suffix.
    pub index: PackageIndex,
}

/// One stanza of an opkg `Packages` file, with the fields a dependency resolver needs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PackageEntry {
    /// Name with the `ABIVersion` suffix removed (`libubox`).
    pub name: String,
    /// Name as written (`libubox20240329`).
    pub package: String,
    /// `Version`.
    pub version: String,
    /// `Architecture`.
    pub architecture: Option<String>,
    /// `ABIVersion`.
    pub abi_version: Option<String>,
    /// `Depends`: a list of alternatives (`a | b`) that must all be satisfied.
    pub depends: Vec<Vec<Relation>>,
    /// `Provides`.
    pub provides: Vec<Relation>,
    /// `Conflicts`.
    pub conflicts: Vec<Relation>,
    /// `Size` (download size, bytes).
    pub size: Option<u64>,
    /// `Installed-Size` (bytes).
    pub installed_size: Option<u64>,
    /// `Filename`.
    pub filename: Option<String>,
    /// `SHA256sum`.
    pub sha256sum: Option<String>,
}

/// A package reference in a relation field: `libc`, `kernel (=6.6.110-1-abc)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Relation {
    /// The package name.
    pub name: String,
    /// The version constraint as written inside the parentheses, e.g. `>= 1.0`.
    pub constraint: Option<String>,
}

/// Why a package index could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
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
    /// More packages than [`MAX_INDEX_ENTRIES`].
    #[error("{what} lists more than {max} packages")]
    TooManyEntries {
        /// Which file.
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// The `Packages` file is not UTF-8.
    #[error("`Packages` is not UTF-8 text")]
    NotUtf8,
    /// A stanza lacks `Package` or `Version`.
    #[error("`Packages` stanza at line {line} has no `{field}` field")]
    MissingField {
        /// 1-based line of the stanza's first line.
        line: usize,
        /// The missing field.
        field: &'static str,
    },
    /// A line is neither `Key: value` nor a continuation.
    #[error("`Packages` line {line} is not `Key: value`: `{text}`")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// The line, truncated.
        text: String,
    },
    /// A `Size`/`Installed-Size` value is not a number.
    #[error("`Packages` line {line}: `{field}` is not a number: `{value}`")]
    BadNumber {
        /// 1-based line number.
        line: usize,
        /// The field.
        field: &'static str,
        /// The value, truncated.
        value: String,
    },
    /// `index.json` is not JSON of the expected shape.
    #[error("`index.json` is not valid: {source}")]
    Json {
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// `index.json` has a `version` that is not a positive integer.
    #[error("`index.json` has version `{found}`, expected 1 or 2")]
    BadVersion {
        /// The value found, truncated.
        found: String,
    },
}

/// Parses an opkg `Packages` file into name → version.
pub fn parse_packages(bytes: &[u8]) -> Result<PackageIndex, IndexError> {
    let entries = parse_packages_detailed(bytes)?;
    let architecture = entries
        .iter()
        .filter_map(|e| e.architecture.as_deref())
        .find(|arch| *arch != "all")
        .map(str::to_owned);
    let packages = entries.into_iter().map(|e| (e.name, e.version)).collect();
    Ok(PackageIndex {
        architecture,
        packages,
    })
}

/// Parses an opkg `Packages` file keeping every stanza and its relations.
pub fn parse_packages_detailed(bytes: &[u8]) -> Result<Vec<PackageEntry>, IndexError> {
    if bytes.len() > MAX_PACKAGES_BYTES {
        return Err(IndexError::TooLarge {
            what: "`Packages`",
            length: bytes.len(),
            max: MAX_PACKAGES_BYTES,
        });
    }
    if std::str::from_utf8(bytes).is_err() {
        return Err(IndexError::NotUtf8);
    }
    let mut entries = Vec::new();
    let mut stanza: Vec<(usize, &str, String)> = Vec::new();
    // `Packages` has no line limit of its own: the file limit bounds every line, so `TooLarge` is
    // the right answer should one ever be longer. A blank line is one that trims to nothing.
    let reader = Reader::new(bytes, MAX_PACKAGES_BYTES).with_blank_rule(trims_to_nothing);
    for event in reader {
        let event = event.map_err(|error| IndexError::TooLarge {
            what: "`Packages`",
            length: error.length,
            max: error.max,
        })?;
        match event {
            Event::Field(line) => {
                let text = utf8_line(line.text)?;
                let Some((key, value)) = text.split_once(':') else {
                    return Err(IndexError::BadLine {
                        line: line.number,
                        text: excerpt(text, MAX_LINE_CHARS),
                    });
                };
                stanza.push((line.number, key.trim(), value.trim().to_owned()));
            }
            // Continuation of the previous field (Description); appended, but not needed.
            Event::Continuation(line) => {
                if let Some((_, _, value)) = stanza.last_mut() {
                    value.push('\n');
                    value.push_str(utf8_line(line.text)?.trim());
                }
            }
            Event::OrphanContinuation(line) => {
                return Err(IndexError::BadLine {
                    line: line.number,
                    text: excerpt(utf8_line(line.text)?, MAX_LINE_CHARS),
                });
            }
            Event::End { start, .. } => {
                push_entry(&mut entries, start, &stanza)?;
                stanza.clear();
            }
        }
    }
    Ok(entries)
}

/// Parses `index.json`, detecting v1 (no `version` key) or v2 (`"version": 2`).
pub fn parse_index_json(bytes: &[u8]) -> Result<IndexJson, IndexError> {
    #[derive(Deserialize)]
    struct Raw {
        #[serde(default)]
        version: Option<Value>,
        #[serde(default)]
        architecture: Option<String>,
        #[serde(default)]
        packages: BTreeMap<String, String>,
    }
    let raw: Raw = json::decode(
        bytes,
        MAX_INDEX_JSON_BYTES,
        |length| IndexError::TooLarge {
            what: "`index.json`",
            length,
            max: MAX_INDEX_JSON_BYTES,
        },
        |source| IndexError::Json { source },
    )?;
    let version = match raw.version {
        None => 1,
        Some(Value::Number(n)) if n.as_u64().is_some_and(|v| v >= 1) => n.as_u64().unwrap_or(1),
        Some(other) => {
            return Err(IndexError::BadVersion {
                found: excerpt(&other.to_string(), MAX_LINE_CHARS),
            });
        }
    };
    if raw.packages.len() > MAX_INDEX_ENTRIES {
        return Err(IndexError::TooManyEntries {
            what: "`index.json`",
            max: MAX_INDEX_ENTRIES,
        });
    }
    Ok(IndexJson {
        version,
        index: PackageIndex {
            architecture: raw.architecture.filter(|a| !a.is_empty()),
            packages: raw.packages,
        },
    })
}

impl IndexJson {
    /// Whether the names are ABI-free (v2 and later).
    pub fn has_abi_free_names(&self) -> bool {
        self.version >= 2
    }
}

fn push_entry(
    entries: &mut Vec<PackageEntry>,
    stanza_line: usize,
    fields: &[(usize, &str, String)],
) -> Result<(), IndexError> {
    if entries.len() >= MAX_INDEX_ENTRIES {
        return Err(IndexError::TooManyEntries {
            what: "`Packages`",
            max: MAX_INDEX_ENTRIES,
        });
    }
    let mut entry = PackageEntry::default();
    let mut has_package = false;
    let mut has_version = false;
    for (line, key, value) in fields {
        match *key {
            "Package" => {
                value.clone_into(&mut entry.package);
                has_package = true;
            }
            "Version" => {
                value.clone_into(&mut entry.version);
                has_version = true;
            }
            "Architecture" => entry.architecture = Some(value.clone()),
            "ABIVersion" => entry.abi_version = Some(value.clone()).filter(|v| !v.is_empty()),
            "Depends" => {
                entry.depends = split_list(value)
                    .map(|group| group.split('|').filter_map(relation).collect::<Vec<_>>())
                    .filter(|group| !group.is_empty())
                    .collect();
            }
            "Provides" => entry.provides = split_list(value).filter_map(relation).collect(),
            "Conflicts" => entry.conflicts = split_list(value).filter_map(relation).collect(),
            "Size" => entry.size = Some(number(*line, "Size", value)?),
            "Installed-Size" => {
                entry.installed_size = Some(number(*line, "Installed-Size", value)?)
            }
            "Filename" => entry.filename = Some(value.clone()),
            "SHA256sum" => entry.sha256sum = Some(value.clone()),
            _ => {}
        }
    }
    if !has_package {
        return Err(IndexError::MissingField {
            line: stanza_line,
            field: "Package",
        });
    }
    if !has_version {
        return Err(IndexError::MissingField {
            line: stanza_line,
            field: "Version",
        });
    }
    entry.name = match &entry.abi_version {
        Some(abi) => entry
            .package
            .strip_suffix(abi.as_str())
            .filter(|n| !n.is_empty())
            .unwrap_or(&entry.package)
            .to_owned(),
        None => entry.package.clone(),
    };
    entries.push(entry);
    Ok(())
}

fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// `name` or `name (constraint)`.
fn relation(text: &str) -> Option<Relation> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    match text.split_once('(') {
        Some((name, rest)) => Some(Relation {
            name: name.trim().to_owned(),
            constraint: Some(rest.trim_end().trim_end_matches(')').trim().to_owned()),
        }),
        None => Some(Relation {
            name: text.to_owned(),
            constraint: None,
        }),
    }
}

fn number(line: usize, field: &'static str, value: &str) -> Result<u64, IndexError> {
    value.parse().map_err(|_| IndexError::BadNumber {
        line,
        field,
        value: excerpt(value, MAX_LINE_CHARS),
    })
}

/// The text of a line, without trailing carriage returns. The whole file was checked to be UTF-8
/// before, and lines split at the ASCII `\n`, so the check here cannot fail.
fn utf8_line(line: &[u8]) -> Result<&str, IndexError> {
    let text = std::str::from_utf8(line).map_err(|_| IndexError::NotUtf8)?;
    Ok(text.trim_end_matches('\r'))
}

/// `Packages`' rule for a blank line: nothing but (Unicode) whitespace.
fn trims_to_nothing(line: &[u8]) -> bool {
    std::str::from_utf8(line).is_ok_and(|text| text.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const PACKAGES: &str = "Package: libubox20240329
Version: 2024.03.29~eb9bcb64-r1
Depends: libc
ABIVersion: 20240329
License: ISC
Section: libs
Architecture: mips_24kc
Installed-Size: 32032
Filename: libubox20240329_2024.03.29~eb9bcb64-r1_mips_24kc.ipk
Size: 32846
SHA256sum: 0f1e
Description:  Basic utility library
 second line

Package: luci-base
Version: 25.019.32040~5de4c4e
Depends: libc, lua, luci-lib-nixio, rpcd (>= 2020), libubox20240329 | libubox-compat, ucode
Provides: luci-base-compat
Conflicts: luci-old
Architecture: all
Installed-Size: 100

Package: tmux
Version: 3.4-r1
Architecture: mips_24kc
";

    #[test]
    fn parses_opkg_packages_and_strips_abi_suffix() {
        let index = parse_packages(PACKAGES.as_bytes()).unwrap();
        assert_eq!(index.architecture.as_deref(), Some("mips_24kc"));
        assert_eq!(index.packages["libubox"], "2024.03.29~eb9bcb64-r1");
        assert_eq!(index.packages["luci-base"], "25.019.32040~5de4c4e");
        assert_eq!(index.packages.len(), 3);
    }

    #[test]
    fn architecture_skips_all() {
        let index = parse_packages(b"Package: a\nVersion: 1\nArchitecture: all\n\nPackage: b\nVersion: 2\nArchitecture: x86_64\n").unwrap();
        assert_eq!(index.architecture.as_deref(), Some("x86_64"));
        let index = parse_packages(b"Package: a\nVersion: 1\nArchitecture: all\n").unwrap();
        assert_eq!(index.architecture, None);
    }

    #[test]
    fn detailed_parse_keeps_relations_and_sizes() {
        let entries = parse_packages_detailed(PACKAGES.as_bytes()).unwrap();
        let libubox = &entries[0];
        assert_eq!(libubox.name, "libubox");
        assert_eq!(libubox.package, "libubox20240329");
        assert_eq!(libubox.size, Some(32846));
        assert_eq!(libubox.installed_size, Some(32032));
        let luci = &entries[1];
        assert_eq!(luci.depends.len(), 6);
        assert_eq!(
            luci.depends[3][0],
            Relation {
                name: "rpcd".into(),
                constraint: Some(">= 2020".into())
            }
        );
        assert_eq!(luci.depends[4].len(), 2);
        assert_eq!(luci.provides[0].name, "luci-base-compat");
        assert_eq!(luci.conflicts[0].name, "luci-old");
    }

    #[test]
    fn rejects_stanza_without_version() {
        let error = parse_packages(b"Package: a\nVersion: 1\n\nPackage: b\nArchitecture: all\n")
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "`Packages` stanza at line 4 has no `Version` field"
        );
    }

    #[test]
    fn rejects_garbage_line_and_bad_size() {
        let error = parse_packages(b"Package: a\nno colon here\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "`Packages` line 2 is not `Key: value`: `no colon here`"
        );
        let error = parse_packages(b"Package: a\nVersion: 1\nSize: big\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "`Packages` line 3: `Size` is not a number: `big`"
        );
    }

    #[test]
    fn garbage_line_is_quoted_at_most_120_characters_with_controls_escaped() {
        let line = format!("\x1b]0;x{}", "y".repeat(200));
        let error = parse_packages(format!("Package: a\n{line}\n").as_bytes()).unwrap_err();
        let IndexError::BadLine { text, .. } = &error else {
            panic!("{error:?}");
        };
        assert!(text.starts_with("\\u{1b}]0;xyyy"), "{text}");
        assert!(text.ends_with('…'), "{text}");
        assert_eq!(text.chars().filter(|&c| c == 'y').count(), 120 - 5);
    }

    #[test]
    fn detects_index_json_versions() {
        let v2 = parse_index_json(br#"{"version": 2, "architecture": "x86_64", "packages": {"libubox": "2024.03.29~eb9bcb64-r1"}}"#).unwrap();
        assert_eq!(v2.version, 2);
        assert!(v2.has_abi_free_names());
        assert_eq!(v2.index.packages["libubox"], "2024.03.29~eb9bcb64-r1");
        let v1 = parse_index_json(br#"{"architecture": "x86_64", "packages": {"libubox20240329": "2024.03.29~eb9bcb64-r1"}}"#).unwrap();
        assert_eq!(v1.version, 1);
        assert!(!v1.has_abi_free_names());
        let error = parse_index_json(br#"{"version": "two", "packages": {}}"#).unwrap_err();
        assert_eq!(
            error.to_string(),
            "`index.json` has version `\"two\"`, expected 1 or 2"
        );
    }

    #[test]
    fn package_index_round_trips_as_asu_json() {
        let index = parse_packages(PACKAGES.as_bytes()).unwrap();
        let text = serde_json::to_string(&index).unwrap();
        assert!(text.starts_with("{\"architecture\":\"mips_24kc\",\"packages\":{"));
        let back = parse_index_json(text.as_bytes()).unwrap();
        assert_eq!(back.index, index);
    }

    #[test]
    fn every_proper_prefix_parses_or_fails_cleanly() {
        for end in 0..PACKAGES.len() {
            if let Some(prefix) = PACKAGES.get(..end) {
                let _ = parse_packages_detailed(prefix.as_bytes());
            }
        }
    }

    proptest! {
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_packages(&bytes);
            let _ = parse_packages_detailed(&bytes);
            let _ = parse_index_json(&bytes);
        }

        #[test]
        fn stanza_text_never_panics(text in "((Package|Version|Depends|Size|ABIVersion|Architecture): [a-z0-9 ,|()<>=.-]{0,20}\n{1,2}){0,8}") {
            let _ = parse_packages_detailed(text.as_bytes());
        }

        #[test]
        fn packages_round_trip(entries in proptest::collection::btree_map("[a-z][a-z0-9+.-]{0,15}", "[0-9][a-z0-9.~+-]{0,10}", 0..20)) {
            let text: String = entries.iter().map(|(n, v)| format!("Package: {n}\nVersion: {v}\nArchitecture: all\n\n")).collect();
            prop_assert_eq!(parse_packages(text.as_bytes()).unwrap().packages, entries);
        }
    }
}
