//! `version_detail`: what a build is made of, as ordered `key=value` pairs
//! (`openwrt=24.10.5,recipe=3,tag=Q4`), system-image's field of the same name.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::excerpt::{MAX_VALUE_CHARS, excerpt};

/// Most pairs in one `version_detail`.
pub const MAX_PAIRS: usize = 32;

/// Longest key or value, in bytes.
pub const MAX_PART_LEN: usize = 64;

/// Why a `version_detail` text or pair was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VersionDetailError {
    /// More than [`MAX_PAIRS`] pairs.
    #[error("version_detail has {count} pairs, more than the limit of {max}")]
    TooMany {
        /// Pairs found.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A pair is not `key=value` with a valid key and value.
    #[error(
        "version_detail pair `{pair}` is not `key=value` (key: lowercase letters, digits and \
         `._-`; value: printable ASCII without `,` or `=`; each at most 64 bytes)"
    )]
    BadPair {
        /// The pair, shortened.
        pair: String,
    },
    /// A key occurs twice.
    #[error("version_detail has the key `{key}` twice")]
    DuplicateKey {
        /// The key.
        key: String,
    },
}

/// Ordered `key=value` pairs; the text form joins them with `,`. Keys are unique.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct VersionDetail {
    pairs: Vec<(String, String)>,
}

impl VersionDetail {
    /// No pairs (the text form is empty).
    pub fn new() -> Self {
        Self::default()
    }

    /// Parse `k=v,k=v`; the empty text has no pairs.
    pub fn parse(text: &str) -> Result<Self, VersionDetailError> {
        let mut detail = Self::new();
        if text.is_empty() {
            return Ok(detail);
        }
        let count = text.split(',').count();
        if count > MAX_PAIRS {
            return Err(VersionDetailError::TooMany {
                count,
                max: MAX_PAIRS,
            });
        }
        for pair in text.split(',') {
            let bad = || VersionDetailError::BadPair {
                pair: excerpt(pair, MAX_VALUE_CHARS),
            };
            let (key, value) = pair.split_once('=').ok_or_else(bad)?;
            detail.push(key, value)?;
        }
        Ok(detail)
    }

    /// Append `key=value`.
    pub fn push(&mut self, key: &str, value: &str) -> Result<(), VersionDetailError> {
        let key_ok = !key.is_empty()
            && key.len() <= MAX_PART_LEN
            && key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
        let value_ok = value.len() <= MAX_PART_LEN
            && value
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b',' && b != b'=');
        if !key_ok || !value_ok {
            return Err(VersionDetailError::BadPair {
                pair: excerpt(&format!("{key}={value}"), MAX_VALUE_CHARS),
            });
        }
        if self.get(key).is_some() {
            return Err(VersionDetailError::DuplicateKey {
                key: key.to_owned(),
            });
        }
        if self.pairs.len() >= MAX_PAIRS {
            return Err(VersionDetailError::TooMany {
                count: self.pairs.len() + 1,
                max: MAX_PAIRS,
            });
        }
        self.pairs.push((key.to_owned(), value.to_owned()));
        Ok(())
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The pairs in order.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// True when there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

impl fmt::Display for VersionDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, (key, value)) in self.pairs.iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            write!(f, "{key}={value}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for VersionDetail {
    type Err = VersionDetailError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl Serialize for VersionDetail {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for VersionDetail {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_text() {
        let detail = VersionDetail::parse("openwrt=24.10.5,recipe=3,tag=Q4").unwrap();
        assert_eq!(
            detail.pairs().collect::<Vec<_>>(),
            [("openwrt", "24.10.5"), ("recipe", "3"), ("tag", "Q4")]
        );
        assert_eq!(detail.get("tag"), Some("Q4"));
        assert_eq!(detail.to_string(), "openwrt=24.10.5,recipe=3,tag=Q4");
        assert_eq!(VersionDetail::parse("").unwrap(), VersionDetail::new());
        assert_eq!(VersionDetail::parse("a=").unwrap().to_string(), "a=");
    }

    #[test]
    fn rejects_bad_pairs() {
        for bad in [
            "a", "=b", "a=b=c", "a=b,", ",a=b", "A=b", "a=b c", "a=b,a=c",
        ] {
            assert!(VersionDetail::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            VersionDetail::parse("tag=Q4,tag=Q5")
                .unwrap_err()
                .to_string(),
            "version_detail has the key `tag` twice"
        );
        let mut detail = VersionDetail::new();
        assert!(matches!(
            detail.push("tag", "a,b"),
            Err(VersionDetailError::BadPair { .. })
        ));
        let many = (0..33)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(
            VersionDetail::parse(&many).unwrap_err(),
            VersionDetailError::TooMany { count: 33, max: 32 }
        );
    }
}
