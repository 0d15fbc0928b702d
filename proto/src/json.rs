//! Size-bounded JSON decoding, the one way this crate reads JSON it did not write.
//!
//! Every JSON input (ASU API bodies, downloads.openwrt.org metadata, package indexes, board
//! files, fwtool metadata) has a documented byte limit. [`decode`] checks it before serde sees a
//! byte, so an oversized input costs no parsing, and hands both failures to the caller's own error
//! type: each module keeps its public error enum and its wording.
//!
//! Numbers: serde_json is built with `float_roundtrip`, so a number reads as the nearest `f64`
//! and is written in the shortest form that reads back as that same `f64`. Values this crate
//! keeps without understanding them (the `extra` maps of unknown keys) therefore survive any
//! number of write-and-read trips unchanged. An integer beyond the 64-bit range
//! (`99999999001975207643`) is kept as that nearest `f64`, as RFC 8259 section 6 expects of
//! interoperable JSON; exact digits would need `arbitrary_precision`, which changes every
//! `Value` number into a string-backed one for a case no OpenWrt document has.

use serde::de::DeserializeOwned;

/// Decodes `bytes` as JSON into `T` if it is at most `max` bytes long.
///
/// `too_large` gets the input's length when it exceeds `max`; `invalid` gets serde's error (with
/// line and column) when the input is not the expected JSON.
pub(crate) fn decode<T: DeserializeOwned, E>(
    bytes: &[u8],
    max: usize,
    too_large: impl FnOnce(usize) -> E,
    invalid: impl FnOnce(serde_json::Error) -> E,
) -> Result<T, E> {
    if bytes.len() > max {
        return Err(too_large(bytes.len()));
    }
    serde_json::from_slice(bytes).map_err(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    enum Failure {
        TooLarge(usize),
        Invalid(String),
    }

    fn decode_list(bytes: &[u8], max: usize) -> Result<Vec<u8>, Failure> {
        decode(bytes, max, Failure::TooLarge, |error| {
            Failure::Invalid(error.to_string())
        })
    }

    #[test]
    fn decodes_input_at_the_limit() {
        assert_eq!(decode_list(b"[1,2]", 5), Ok(vec![1, 2]));
    }

    #[test]
    fn rejects_oversized_input_before_parsing() {
        // Not JSON at all, but too large is reported first: serde never runs.
        assert_eq!(decode_list(b"[1,2", 3), Err(Failure::TooLarge(4)));
    }

    #[test]
    fn passes_serde_error_with_position() {
        assert_eq!(
            decode_list(b"[1,\n x]", 64),
            Err(Failure::Invalid(
                "expected value at line 2 column 2".to_owned()
            ))
        );
    }

    /// Issue 20 (<https://github.com/attendant-openwrt/attendant/issues/20>), fuzz findings: a
    /// number kept in an unknown key (a `Value`) changed in its last place when written and read
    /// again, because serde_json's default float parser is not correctly rounded. With
    /// `float_roundtrip` every number reads as the nearest `f64`, which is written in the
    /// shortest form that reads back as itself. An integer beyond `u64` is such a float too, so
    /// `arbitrary_precision` is not needed for the round trip.
    #[test]
    fn issue_20_numbers_in_kept_values_round_trip() {
        use std::collections::BTreeMap;

        use serde_json::Value;

        for input in [
            r#"{"":{"d":99999999001975207643}}"#,
            r#"{"_":[93290129.22222222222]}"#,
            r#"{"a":1.7976931348623157e308,"b":5e-324,"c":-0.0,"d":18446744073709551615}"#,
            r#"{"e":0.30000000000000004,"f":123456789.12345678,"g":-9223372036854775808}"#,
        ] {
            let first: BTreeMap<String, Value> =
                decode(input.as_bytes(), 1024, |_| (), |_| ()).unwrap();
            let written = serde_json::to_vec(&first).unwrap();
            let second: BTreeMap<String, Value> = decode(&written, 1024, |_| (), |_| ()).unwrap();
            assert_eq!(first, second, "{input}");
            assert_eq!(serde_json::to_vec(&second).unwrap(), written, "{input}");
        }
        let big: Value = serde_json::from_str("99999999001975207643").unwrap();
        assert_eq!(big.as_f64(), Some(99_999_999_001_975_207_643.0));
    }
}
