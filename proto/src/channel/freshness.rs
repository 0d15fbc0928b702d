//! The freshness fields of every metadata file's `global` object.

use serde::{Deserialize, Serialize};

/// When a metadata file was made, until when a router may believe it, and its publication serial.
///
/// System-image wrote `generated_at` but no client ever checked it, so a replayed old index was
/// indistinguishable from a fresh one. Here a router refuses a file once `expires` has passed and
/// refuses a `serial` lower than one it has already seen
/// ([`check_freshness`](super::trust::check_freshness)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Freshness {
    /// When the file was generated, Unix seconds; written as `Sun Dec 06 11:45:00 UTC 2026`.
    #[serde(with = "utc_text")]
    pub generated_at: i64,
    /// When the file stops being valid, Unix seconds; same text form.
    #[serde(with = "utc_text")]
    pub expires: i64,
    /// Grows with every publication of the tree.
    pub serial: u64,
}

impl Freshness {
    /// `expires` must lie after `generated_at`.
    pub(super) fn check(&self) -> Result<(), &'static str> {
        if self.expires > self.generated_at {
            Ok(())
        } else {
            Err("expected `expires` after `generated_at`")
        }
    }
}

/// Unix seconds as system-image's UTC date text. Writing clamps to the years the text can spell
/// (1970 to 9999), which no real publication leaves; reading accepts only the exact text.
mod utc_text {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::timestamp::{MAX_UNIX, MIN_UNIX, Timestamp};

    pub(super) fn serialize<S: Serializer>(unix: &i64, serializer: S) -> Result<S::Ok, S::Error> {
        let time = Timestamp::from_unix((*unix).clamp(MIN_UNIX, MAX_UNIX))
            .map_err(serde::ser::Error::custom)?;
        serializer.collect_str(&time)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Timestamp::parse(&text)
            .map(Timestamp::unix)
            .map_err(serde::de::Error::custom)
    }
}
