//! The published channel formats, until `attendant_proto::channel` provides them: the shapes of
//! `channels.json` and `index.json` as `docs/channels.md` describes them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Largest metadata file parsed, in bytes.
pub(crate) const MAX_METADATA_BYTES: usize = 64 * 1024 * 1024;

/// Freshness fields of every metadata file (`global`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Freshness {
    #[serde(with = "stamp")]
    pub(crate) generated_at: i64,
    #[serde(with = "stamp")]
    pub(crate) expires: i64,
    pub(crate) serial: u64,
}

/// `channels.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ChannelsDoc {
    pub(crate) global: Freshness,
    pub(crate) channels: BTreeMap<String, ChannelEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ChannelEntry {
    pub(crate) devices: BTreeMap<String, DeviceEntry>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) hidden: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) alias: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) redirect: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DeviceEntry {
    pub(crate) index: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) redirect: Option<String>,
}

/// `index.json` of one channel and device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IndexDoc {
    pub(crate) global: IndexGlobal,
    pub(crate) images: Vec<IndexImage>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IndexGlobal {
    #[serde(flatten)]
    pub(crate) freshness: Freshness,
    pub(crate) channel: String,
    pub(crate) device: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IndexImage {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) version: u64,
    pub(crate) description: String,
    pub(crate) version_detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) minversion: Option<u64>,
    #[serde(
        rename = "phased-percentage",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) phased_percentage: Option<u8>,
    pub(crate) openwrt_version: String,
    pub(crate) version_code: String,
    pub(crate) target: String,
    pub(crate) profile: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) recipe: Option<IndexRecipe>,
    pub(crate) files: Vec<IndexFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IndexRecipe {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) add: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) remove: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) defaults_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) rootfs_size_mb: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IndexFile {
    pub(crate) order: u32,
    pub(crate) path: String,
    pub(crate) signature: String,
    pub(crate) checksum: String,
    pub(crate) size: u64,
    pub(crate) name: String,
    pub(crate) image_type: String,
    pub(crate) filesystem: String,
}

pub(crate) fn encode_channels(doc: &ChannelsDoc) -> Vec<u8> {
    encode(doc)
}

pub(crate) fn encode_index(doc: &IndexDoc) -> Vec<u8> {
    encode(doc)
}

pub(crate) fn parse_channels(bytes: &[u8]) -> Result<ChannelsDoc, serde_json::Error> {
    parse(bytes)
}

pub(crate) fn parse_index(bytes: &[u8]) -> Result<IndexDoc, serde_json::Error> {
    parse(bytes)
}

fn encode<T: Serialize>(doc: &T) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(doc).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    if bytes.len() > MAX_METADATA_BYTES {
        return Err(serde::de::Error::custom("the file is too large"));
    }
    serde_json::from_slice(bytes)
}

/// system-image's `%a %b %d %H:%M:%S UTC %Y`.
mod stamp {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;
    use time::format_description::FormatItem;
    use time::macros::format_description;

    const FORMAT: &[FormatItem<'static>] = format_description!(
        "[weekday repr:short] [month repr:short] [day] [hour]:[minute]:[second] UTC [year]"
    );

    pub(super) fn serialize<S: Serializer>(value: &i64, serializer: S) -> Result<S::Ok, S::Error> {
        let at = OffsetDateTime::from_unix_timestamp(*value).map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(&at.format(FORMAT).map_err(serde::ser::Error::custom)?)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
        let text = String::deserialize(deserializer)?;
        time::PrimitiveDateTime::parse(&text, FORMAT)
            .map(|at| at.assume_utc().unix_timestamp())
            .map_err(serde::de::Error::custom)
    }
}
