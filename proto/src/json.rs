//! Size-bounded JSON decoding, the one way this crate reads JSON it did not write.
//!
//! Every JSON input (ASU API bodies, downloads.openwrt.org metadata, package indexes, board
//! files, fwtool metadata) has a documented byte limit. [`decode`] checks it before serde sees a
//! byte, so an oversized input costs no parsing, and hands both failures to the caller's own error
//! type: each module keeps its public error enum and its wording.

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
}
