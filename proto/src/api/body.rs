//! Bounded JSON decoding of API bodies, with one error type for all of them.
//!
//! The agent reads what a server sends; every body has a size limit checked before parsing.

use serde::de::DeserializeOwned;

use crate::json;

/// Why an API body could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The body exceeds its limit.
    #[error("{what} is {length} bytes, more than the limit of {max}")]
    TooLarge {
        /// Which body.
        what: &'static str,
        /// Its length.
        length: usize,
        /// The limit.
        max: usize,
    },
    /// The body is not the expected JSON.
    #[error("{what} is not valid: {source}")]
    Json {
        /// Which body.
        what: &'static str,
        /// The JSON error (with line and column).
        #[source]
        source: serde_json::Error,
    },
}

/// Checks the size, then decodes.
pub(crate) fn decode<T: DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
    max: usize,
) -> Result<T, BodyError> {
    json::decode(
        bytes,
        max,
        |length| BodyError::TooLarge { what, length, max },
        |source| BodyError::Json { what, source },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_oversized_body_before_parsing() {
        let error = decode::<serde_json::Value>("build response", b"[1, 2]", 3).unwrap_err();
        assert_eq!(
            error.to_string(),
            "build response is 6 bytes, more than the limit of 3"
        );
    }

    #[test]
    fn names_the_body_in_json_errors() {
        let error = decode::<Vec<u8>>("overview", b"{", 10).unwrap_err();
        assert!(
            error.to_string().starts_with("overview is not valid: "),
            "{error}"
        );
    }
}
