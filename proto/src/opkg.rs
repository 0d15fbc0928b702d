//! opkg's database of installed packages, `/usr/lib/opkg/status` (OpenWrt 24.10 and older).
//!
//! The file is a list of RFC-822-like stanzas separated by blank lines (opkg's
//! `pkg_print_status`): `Field: value` lines, continuation lines starting with a space (the
//! `Conffiles:` entries), for example
//!
//! ```text
//! Package: libubox20240329
//! ABIVersion: 20240329
//! Version: 2024.03.29~eb9bcb64-r1
//! Depends: libc
//! Provides: libubox
//! Status: install ok installed
//! Architecture: mips_24kc
//! Installed-Time: 1744717122
//! Auto-Installed: yes
//! ```
//!
//! [`parse`] turns it into [`InstalledPackages`] with the rules of rpcd's `rpc-sys packagelist`
//! (rpcd `sys.c` since commit `8ef4c25`, <https://github.com/openwrt/rpcd/blob/master/sys.c>):
//!
//! - only stanzas whose `Status:` state (third word) is `installed` count;
//! - a package is top-level unless it says `Auto-Installed: yes` (the `user` status flag is no
//!   longer used for this since openwrt#14428);
//! - the `ABIVersion:` suffix is stripped from the name ([`strip_abi_suffix`]);
//! - the names in `Provides:` are kept ([`InstalledPackages::provider`]), so a default such as
//!   `nftables` can be found installed as `nftables-json` (rpcd does not report them).
//!
//! Where this parser is stricter or looser than rpcd, it says so: fields are collected per stanza,
//! so `ABIVersion:` may come before or after `Package:`; the last stanza counts even without a
//! final blank line; a stanza that is installed but lacks `Package:` or `Version:`, a field given
//! twice in one stanza (usually a missing blank line), and a `Status:` that is not three words are
//! errors where rpcd would silently skip or overwrite. Fields other than the six above are not
//! decoded at all, so non-UTF-8 bytes in, say, a conffile path do no harm.

use crate::excerpt::{MAX_VALUE_CHARS, excerpt, excerpt_bytes};
use crate::installed::{
    InstalledPackage, InstalledPackages, MAX_PACKAGE_NAME_LEN, MAX_PACKAGE_VERSION_LEN,
    MAX_PACKAGES, PackageManager, ValueRule, check_value, strip_abi_suffix,
};
use crate::stanza::{Event, Reader};
use crate::wire::OPKG_STATUS_PATH;

/// Largest status file accepted, in bytes. A router with a thousand packages and their conffiles
/// has well under 2 MiB.
pub const MAX_STATUS_SIZE: usize = 16 * 1024 * 1024;

/// Longest line accepted, in bytes (long `Depends:` lines run to a few hundred).
pub const MAX_LINE_LEN: usize = 64 * 1024;

/// Most installed packages accepted; see [`crate::installed::MAX_PACKAGES`].
pub const MAX_INSTALLED_PACKAGES: usize = MAX_PACKAGES;

/// Parses the bytes of `/usr/lib/opkg/status` into the installed packages.
pub fn parse(status: &[u8]) -> Result<InstalledPackages, OpkgError> {
    if status.len() > MAX_STATUS_SIZE {
        return Err(OpkgError::TooLarge {
            size: status.len(),
            max: MAX_STATUS_SIZE,
        });
    }
    let mut packages = InstalledPackages::new(PackageManager::Opkg);
    let mut stanza = Stanza::default();
    for event in Reader::new(status, MAX_LINE_LEN) {
        let event = event.map_err(|error| OpkgError::LineTooLong {
            line: error.line,
            length: error.length,
            max: error.max,
        })?;
        match event {
            Event::Field(line) => stanza.field(line.text, line.number)?,
            // Continuation lines hold the `Conffiles:` entries, which this parser does not read.
            Event::Continuation(_) => {}
            Event::OrphanContinuation(line) => {
                return Err(OpkgError::OrphanContinuation { line: line.number });
            }
            Event::End { start, line } => {
                std::mem::take(&mut stanza).finish(&mut packages, start, line)?
            }
        }
    }
    Ok(packages)
}

/// Errors reading `/usr/lib/opkg/status`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpkgError {
    /// The file is larger than [`MAX_STATUS_SIZE`].
    #[error("`{OPKG_STATUS_PATH}` is {size} bytes, more than the limit of {max} bytes")]
    TooLarge {
        /// Size of the input.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A line is longer than [`MAX_LINE_LEN`].
    #[error(
        "line {line} of `{OPKG_STATUS_PATH}` is {length} bytes long, more than the limit of {max} bytes"
    )]
    LineTooLong {
        /// 1-based line number.
        line: usize,
        /// Length of the line.
        length: usize,
        /// The limit.
        max: usize,
    },
    /// A line is neither blank, nor a continuation, nor `Field: value`.
    #[error("line {line} of `{OPKG_STATUS_PATH}` is not a `Field: value` line: `{content}`")]
    MalformedLine {
        /// 1-based line number.
        line: usize,
        /// The line (truncated).
        content: String,
    },
    /// A continuation line (starting with a space) opens a stanza.
    #[error("line {line} of `{OPKG_STATUS_PATH}` continues a field, but no field precedes it")]
    OrphanContinuation {
        /// 1-based line number.
        line: usize,
    },
    /// A field opkg writes once per stanza appears twice.
    #[error("line {line} of `{OPKG_STATUS_PATH}` repeats field `{field}` within one stanza")]
    DuplicateField {
        /// 1-based line number of the repetition.
        line: usize,
        /// The field name.
        field: &'static str,
    },
    /// The value of a field this parser reads is not UTF-8.
    #[error("line {line} of `{OPKG_STATUS_PATH}`: the value of `{field}` is not valid UTF-8")]
    NotUtf8 {
        /// 1-based line number.
        line: usize,
        /// The field name.
        field: &'static str,
    },
    /// A package name, version or ABI version breaks a [`ValueRule`].
    #[error("line {line} of `{OPKG_STATUS_PATH}`: `{field}` value `{value}` {rule}")]
    InvalidValue {
        /// 1-based line number.
        line: usize,
        /// The field name.
        field: &'static str,
        /// The value (truncated).
        value: String,
        /// The rule it breaks.
        rule: ValueRule,
    },
    /// `Status:` is not `<want> <flag> <state>`.
    #[error(
        "line {line} of `{OPKG_STATUS_PATH}`: `Status` must be `<want> <flag> <state>`, found `{value}`"
    )]
    InvalidStatus {
        /// 1-based line number.
        line: usize,
        /// The value (truncated).
        value: String,
    },
    /// An installed stanza lacks `Package:` or `Version:`.
    #[error(
        "the installed package in the stanza at line {line} of `{OPKG_STATUS_PATH}` has no `{field}` field"
    )]
    MissingField {
        /// 1-based line number where the stanza starts.
        line: usize,
        /// The missing field.
        field: &'static str,
    },
    /// More installed packages than [`MAX_INSTALLED_PACKAGES`].
    #[error("`{OPKG_STATUS_PATH}` lists more than {max} installed packages (at line {line})")]
    TooManyPackages {
        /// 1-based line number where the limit was passed.
        line: usize,
        /// The limit.
        max: usize,
    },
}

/// The fields of one stanza that matter, collected until the blank line that ends it.
#[derive(Default)]
struct Stanza {
    package: Option<String>,
    version: Option<String>,
    abi_version: Option<String>,
    installed: Option<bool>,
    auto_installed: Option<bool>,
    provides: Option<Vec<String>>,
}

impl Stanza {
    fn field(&mut self, line: &[u8], line_number: usize) -> Result<(), OpkgError> {
        let Some(colon) = line.iter().position(|byte| *byte == b':') else {
            return Err(OpkgError::MalformedLine {
                line: line_number,
                content: excerpt_bytes(line, MAX_VALUE_CHARS),
            });
        };
        let (key, rest) = line.split_at(colon);
        let value = rest.get(1..).unwrap_or_default();
        if key.is_empty() || key.iter().any(|byte| !byte.is_ascii_graphic()) {
            return Err(OpkgError::MalformedLine {
                line: line_number,
                content: excerpt_bytes(line, MAX_VALUE_CHARS),
            });
        }
        match key {
            b"Package" => {
                let value = token(value, "Package", MAX_PACKAGE_NAME_LEN, line_number)?;
                set_once(&mut self.package, value, "Package", line_number)
            }
            b"Version" => {
                let value = token(value, "Version", MAX_PACKAGE_VERSION_LEN, line_number)?;
                set_once(&mut self.version, value, "Version", line_number)
            }
            b"ABIVersion" => {
                let value = token(value, "ABIVersion", MAX_PACKAGE_VERSION_LEN, line_number)?;
                set_once(&mut self.abi_version, value, "ABIVersion", line_number)
            }
            b"Status" => {
                let text = utf8(value, "Status", line_number)?;
                let words: Vec<&str> = text.split_ascii_whitespace().collect();
                let [_want, _flag, state] = words.as_slice() else {
                    return Err(OpkgError::InvalidStatus {
                        line: line_number,
                        value: excerpt(text.trim(), MAX_VALUE_CHARS),
                    });
                };
                set_once(
                    &mut self.installed,
                    *state == "installed",
                    "Status",
                    line_number,
                )
            }
            b"Provides" => {
                // `Provides: a, b (= 1.0)`: the names, without versions.
                let mut names = Vec::new();
                for entry in utf8(value, "Provides", line_number)?.split(',') {
                    if let Some(name) = entry.split_whitespace().next() {
                        names.push(token(
                            name.as_bytes(),
                            "Provides",
                            MAX_PACKAGE_NAME_LEN,
                            line_number,
                        )?);
                    }
                }
                set_once(&mut self.provides, names, "Provides", line_number)
            }
            b"Auto-Installed" => {
                let text = utf8(value, "Auto-Installed", line_number)?;
                set_once(
                    &mut self.auto_installed,
                    text.trim() == "yes",
                    "Auto-Installed",
                    line_number,
                )
            }
            _ => Ok(()),
        }
    }

    /// Ends the stanza that starts at line `start` and ends at line `end`: adds it to `packages`
    /// if installed.
    fn finish(
        self,
        packages: &mut InstalledPackages,
        start: usize,
        end: usize,
    ) -> Result<(), OpkgError> {
        if self.installed != Some(true) {
            return Ok(());
        }
        let Some(package) = self.package else {
            return Err(OpkgError::MissingField {
                line: start,
                field: "Package",
            });
        };
        let Some(version) = self.version else {
            return Err(OpkgError::MissingField {
                line: start,
                field: "Version",
            });
        };
        if packages.len() >= MAX_INSTALLED_PACKAGES {
            return Err(OpkgError::TooManyPackages {
                line: end,
                max: MAX_INSTALLED_PACKAGES,
            });
        }
        let name = match &self.abi_version {
            Some(abi_version) => strip_abi_suffix(&package, abi_version).to_owned(),
            None => package.clone(),
        };
        packages.insert(InstalledPackage {
            name,
            package,
            version,
            abi_version: self.abi_version,
            top_level: self.auto_installed != Some(true),
            provides: self.provides.unwrap_or_default(),
        });
        Ok(())
    }
}

fn set_once<T>(
    slot: &mut Option<T>,
    value: T,
    field: &'static str,
    line: usize,
) -> Result<(), OpkgError> {
    if slot.is_some() {
        return Err(OpkgError::DuplicateField { line, field });
    }
    *slot = Some(value);
    Ok(())
}

fn utf8<'a>(value: &'a [u8], field: &'static str, line: usize) -> Result<&'a str, OpkgError> {
    std::str::from_utf8(value).map_err(|_| OpkgError::NotUtf8 { line, field })
}

fn token(value: &[u8], field: &'static str, max: usize, line: usize) -> Result<String, OpkgError> {
    let text = utf8(value, field, line)?.trim_matches([' ', '\t']);
    check_value(text, max).map_err(|rule| OpkgError::InvalidValue {
        line,
        field,
        value: excerpt(text, MAX_VALUE_CHARS),
        rule,
    })?;
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    const STATUS_24_10: &[u8] = include_bytes!("../testdata/opkg/status-24.10-ath79");

    fn names(list: &std::collections::BTreeMap<String, String>) -> BTreeSet<&str> {
        list.keys().map(String::as_str).collect()
    }

    #[test]
    fn fixture_gives_rpcd_top_level_set() {
        let packages = parse(STATUS_24_10).unwrap();
        // Written by hand from the fixture: installed stanzas without `Auto-Installed: yes`,
        // ABI suffixes stripped. `luci-app-statistics` is `deinstall ... not-installed`.
        let expected: BTreeSet<&str> = [
            "ath10k-firmware-qca988x-ct",
            "base-files",
            "busybox",
            "ca-bundle",
            "dnsmasq",
            "dropbear",
            "firewall4",
            "fstools",
            "htop",
            "kmod-ath10k-ct",
            "kmod-ath9k",
            "kmod-gpio-button-hotplug",
            "kmod-nft-offload",
            "kmod-usb-ledtrig-usbport",
            "kmod-usb2",
            "libc",
            "libgcc",
            "libustream-mbedtls",
            "logd",
            "luci",
            "luci-app-attendedsysupgrade",
            "mtd",
            "netifd",
            "nftables-json",
            "odhcp6c",
            "odhcpd-ipv6only",
            "opkg",
            "ppp",
            "ppp-mod-pppoe",
            "procd-ujail",
            "swconfig",
            "uboot-envtools",
            "uci",
            "uclient-fetch",
            "urandom-seed",
            "urngd",
            "wpad-basic-mbedtls",
        ]
        .into();
        assert_eq!(names(&packages.packagelist(false)), expected);
    }

    #[test]
    fn fixture_lists_every_installed_package_with_abi_stripped() {
        let packages = parse(STATUS_24_10).unwrap();
        let all = packages.packagelist(true);
        assert!(all.len() >= 60, "{}", all.len());
        assert_eq!(
            all.get("libubox").map(String::as_str),
            Some("2024.03.29~eb9bcb64-r1")
        );
        assert!(!all.contains_key("libubox20240329"));
        assert!(!all.contains_key("luci-app-statistics"));
        let libubox = packages.get("libubox").unwrap();
        assert_eq!(libubox.package, "libubox20240329");
        assert_eq!(libubox.abi_version.as_deref(), Some("20240329"));
        assert!(!libubox.top_level);
        assert_eq!(packages.manager(), PackageManager::Opkg);
    }

    #[test]
    fn fixture_keeps_provided_names() {
        let packages = parse(STATUS_24_10).unwrap();
        assert_eq!(
            packages.provider("nftables").map(|p| p.name.as_str()),
            Some("nftables-json")
        );
        let status =
            b"Package: a\nVersion: 1\nProvides: b, c (= 2)\nStatus: install ok installed\n";
        assert_eq!(
            parse(status).unwrap().get("a").unwrap().provides,
            ["b", "c"]
        );
    }

    #[test]
    fn only_installed_state_counts() {
        let status = b"Package: a\nVersion: 1\nStatus: install ok half-installed\n\n\
                       Package: b\nVersion: 1\nStatus: deinstall ok not-installed\n\n\
                       Package: c\nVersion: 1\nStatus: install user installed\n";
        let packages = parse(status).unwrap();
        assert_eq!(names(&packages.packagelist(true)), BTreeSet::from(["c"]));
    }

    #[test]
    fn accepts_abi_version_before_package_and_crlf() {
        let status = b"ABIVersion: 5\r\nPackage: libjson-c5\r\nVersion: 0.17-r1\r\nStatus: install ok installed\r\n";
        let packages = parse(status).unwrap();
        assert_eq!(packages.get("libjson-c").unwrap().version, "0.17-r1");
    }

    #[test]
    fn accepts_empty_file() {
        assert!(parse(b"").unwrap().is_empty());
        assert!(parse(b"\n\n  \n").unwrap().is_empty());
    }

    #[test]
    fn ignores_non_utf8_in_other_fields() {
        let status =
            b"Package: a\nVersion: 1\nStatus: install ok installed\nConffiles:\n /etc/\xff 00\n";
        assert!(parse(status).unwrap().contains("a"));
    }

    #[test]
    fn rejects_missing_version_in_installed_stanza() {
        let status = b"Package: a\nVersion: 1\nStatus: install ok installed\n\nPackage: b\nStatus: install ok installed\n";
        let error = parse(status).unwrap_err();
        assert_eq!(
            error,
            OpkgError::MissingField {
                line: 5,
                field: "Version"
            }
        );
        assert_eq!(
            error.to_string(),
            "the installed package in the stanza at line 5 of `/usr/lib/opkg/status` has no `Version` field"
        );
    }

    #[test]
    fn rejects_duplicate_package_field() {
        let status = b"Package: a\nVersion: 1\nPackage: b\n";
        let error = parse(status).unwrap_err();
        assert_eq!(
            error,
            OpkgError::DuplicateField {
                line: 3,
                field: "Package"
            }
        );
        assert_eq!(
            error.to_string(),
            "line 3 of `/usr/lib/opkg/status` repeats field `Package` within one stanza"
        );
    }

    #[test]
    fn rejects_malformed_line() {
        let error = parse(b"Package: a\ngarbage\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "line 2 of `/usr/lib/opkg/status` is not a `Field: value` line: `garbage`"
        );
    }

    #[test]
    fn rejects_orphan_continuation() {
        let error = parse(b" /etc/config/foo 00\n").unwrap_err();
        assert_eq!(error, OpkgError::OrphanContinuation { line: 1 });
    }

    #[test]
    fn rejects_short_status() {
        let error = parse(b"Package: a\nStatus: installed\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "line 2 of `/usr/lib/opkg/status`: `Status` must be `<want> <flag> <state>`, found `installed`"
        );
    }

    #[test]
    fn rejects_name_with_two_words() {
        let error = parse(b"Package: a b\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "line 1 of `/usr/lib/opkg/status`: `Package` value `a b` contains the character ' '"
        );
    }

    #[test]
    fn rejects_non_utf8_version() {
        let error = parse(b"Package: a\nVersion: \xff\n").unwrap_err();
        assert_eq!(
            error,
            OpkgError::NotUtf8 {
                line: 2,
                field: "Version"
            }
        );
    }

    #[test]
    fn rejects_overlong_line() {
        let mut status = b"Depends: ".to_vec();
        status.resize(MAX_LINE_LEN + 1, b'a');
        assert!(matches!(
            parse(&status),
            Err(OpkgError::LineTooLong { line: 1, .. })
        ));
    }

    #[test]
    fn rejects_oversized_file() {
        let status = vec![b'\n'; MAX_STATUS_SIZE + 1];
        assert!(matches!(parse(&status), Err(OpkgError::TooLarge { .. })));
    }

    #[test]
    fn every_prefix_parses_or_fails_cleanly() {
        // The format has no terminator, so a prefix cut at a stanza boundary is a valid, smaller
        // database; a cut elsewhere may drop a field. Either way: no panic, and never more
        // packages than the whole file.
        let full = parse(STATUS_24_10).unwrap().len();
        for cut in 0..STATUS_24_10.len() {
            let prefix = STATUS_24_10.get(..cut).unwrap();
            if let Ok(packages) = parse(prefix) {
                assert!(packages.len() <= full);
            }
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn arbitrary_stanza_lines_never_panic(
            lines in proptest::collection::vec(
                "(Package|Version|Status|ABIVersion|Auto-Installed|Depends| ) ?:? ?[a-z0-9 ~.-]{0,12}",
                0..40,
            )
        ) {
            let text = lines.join("\n");
            let _ = parse(text.as_bytes());
        }
    }
}
