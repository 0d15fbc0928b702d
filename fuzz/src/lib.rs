//! Helpers shared by the fuzz targets in `fuzz_targets/`.
//!
//! Each target feeds libFuzzer's bytes to one parser of `attendant-proto` and checks the
//! invariants that must hold for every input: the parser returns instead of panicking, what it
//! returns respects the module's limits, and where the module can also write the format, writing
//! and parsing again gives back the same value. A broken invariant is reported the only way
//! libFuzzer understands, by panicking with a message that names it.

use std::fmt::{Debug, Display};

use attendant_proto::installed::{
    InstalledPackages, MAX_PACKAGE_NAME_LEN, MAX_PACKAGE_VERSION_LEN, MAX_PACKAGES,
    strip_abi_suffix,
};

/// The byte that separates the parts of an input for targets that need more than one buffer
/// (`apk` installed database and world file, version pairs). Chosen because none of the text
/// formats allow it, so a part never contains it by accident in a seed.
pub const PART_SEPARATOR: u8 = 0;

/// Checks that parsing what was written from `original` gives `original` back.
///
/// `what` names the format in the failure message, e.g. `"uci file"`.
pub fn assert_roundtrip<T, E>(what: &str, original: &T, written: &[u8], reparsed: Result<T, E>)
where
    T: PartialEq + Debug,
    E: Display,
{
    match reparsed {
        Ok(value) => assert_eq!(
            &value,
            original,
            "{what}: parsing the written form gives a different value\nwritten: {}",
            String::from_utf8_lossy(written)
        ),
        Err(error) => fail(&format!(
            "{what}: the written form does not parse again: {error}\nwritten: {}",
            String::from_utf8_lossy(written)
        )),
    }
}

/// Checks the rules for error texts that a machine can tell: a message is not empty and does not
/// end with a period (the others, naming the value and the way out, need a reader).
pub fn assert_error_text(error: &impl Display) {
    let text = error.to_string();
    assert!(!text.is_empty(), "empty error text for {text:?}");
    assert!(
        !text.ends_with('.'),
        "error text ends with a period: {text:?}"
    );
}

/// Splits `data` at the first [`PART_SEPARATOR`]: the part before it and the rest (empty when
/// there is no separator).
pub fn split_once(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|byte| *byte == PART_SEPARATOR) {
        Some(at) => {
            let (head, tail) = data.split_at(at);
            (head, tail.get(1..).unwrap_or_default())
        }
        None => (data, &[]),
    }
}

/// Checks what every parsed package database must satisfy, whichever manager it came from:
/// at most [`MAX_PACKAGES`] packages; names and versions single tokens of printable ASCII within
/// their limits; the reported name is the database name with its ABI suffix stripped; and the
/// rpcd `packagelist` view survives a trip through
/// [`InstalledPackages::from_packagelist`] (what the agent does with rpcd's answers).
pub fn assert_installed_consistent(packages: &InstalledPackages) {
    assert!(
        packages.len() <= MAX_PACKAGES,
        "{} packages",
        packages.len()
    );
    for package in packages.iter() {
        assert_token("name", &package.name, MAX_PACKAGE_NAME_LEN);
        assert_token("database name", &package.package, MAX_PACKAGE_NAME_LEN);
        assert_token("version", &package.version, MAX_PACKAGE_VERSION_LEN);
        let expected = match &package.abi_version {
            Some(abi_version) => strip_abi_suffix(&package.package, abi_version),
            None => package.package.as_str(),
        };
        assert_eq!(package.name, expected, "reported name of {package:?}");
        assert_eq!(packages.get(&package.name), Some(package));
    }
    let all = packages.packagelist(true);
    let top_level = packages.packagelist(false);
    assert!(top_level.iter().all(|(name, _)| all.contains_key(name)));
    match InstalledPackages::from_packagelist(packages.manager(), &all, &top_level) {
        Ok(rebuilt) => {
            assert_eq!(rebuilt.packagelist(true), all, "packagelist all=true");
            assert_eq!(
                rebuilt.packagelist(false),
                top_level,
                "packagelist all=false"
            );
        }
        Err(error) => fail(&format!(
            "the packagelist of a parsed database is refused: {error}"
        )),
    }
}

/// Checks that `value` is one token of printable ASCII, non-empty and at most `max` bytes.
pub fn assert_token(what: &str, value: &str, max: usize) {
    assert!(
        !value.is_empty() && value.len() <= max && value.bytes().all(|b| b.is_ascii_graphic()),
        "{what} is not a token of at most {max} printable ASCII bytes: {value:?}"
    );
}

/// Reports a broken invariant.
#[expect(
    clippy::panic,
    reason = "a fuzz target reports a broken invariant to libFuzzer by panicking"
)]
pub fn fail(message: &str) -> ! {
    panic!("{message}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_first_separator() {
        assert_eq!(split_once(b"a\0b\0c"), (&b"a"[..], &b"b\0c"[..]));
        assert_eq!(split_once(b"abc"), (&b"abc"[..], &b""[..]));
        assert_eq!(split_once(b"\0"), (&b""[..], &b""[..]));
    }

    #[test]
    fn roundtrip_accepts_equal_value() {
        assert_roundtrip::<u8, String>("byte", &1, b"1", Ok(1));
    }

    #[test]
    #[should_panic(expected = "byte: parsing the written form gives a different value")]
    fn roundtrip_rejects_different_value() {
        assert_roundtrip::<u8, String>("byte", &1, b"1", Ok(2));
    }

    #[test]
    #[should_panic(expected = "byte: the written form does not parse again: bad")]
    fn roundtrip_rejects_parse_error() {
        assert_roundtrip::<u8, String>("byte", &1, b"1", Err("bad".to_owned()));
    }

    #[test]
    #[should_panic(expected = "error text ends with a period")]
    fn error_text_rejects_final_period() {
        assert_error_text(&"broken.");
    }
}
