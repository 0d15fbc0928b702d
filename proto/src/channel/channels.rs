//! `channels.json`: every channel, its devices and where each device's index lives.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::{ChannelFormatError, MetadataFile};
use super::field;
use super::freshness::Freshness;
use crate::excerpt::{MAX_VALUE_CHARS, excerpt};

/// Largest `channels.json` read, in bytes (about 2,000 devices in each of a few dozen channels).
pub const MAX_CHANNELS_LEN: usize = 16 << 20;

/// Most channels in one `channels.json`.
pub const MAX_CHANNELS: usize = 1024;

/// Most devices in one channel.
pub const MAX_DEVICES: usize = 8192;

/// `channels.json`. Unlike system-image's, whose top level is the channel map, the map sits
/// under `channels`, so that the freshness fields have a `global` home as in every index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelsDoc {
    /// When it was made, until when it holds, its serial.
    pub global: Freshness,
    /// Channel name → channel.
    pub channels: BTreeMap<String, ChannelEntry>,
}

/// One channel of `channels.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelEntry {
    /// Device (`target/subtarget/profile`) → its index.
    pub devices: BTreeMap<String, DeviceEntry>,
    /// Not offered in lists (redirects and retired channels); still usable by name.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hidden: bool,
    /// The channel this one mirrors (an alias follows its target's builds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// The channel whose indexes this one points at (clients switch to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<String>,
}

/// One device of a channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceEntry {
    /// Absolute URL path of the device's `index.json`.
    pub index: String,
    /// For this device only, the channel whose index it uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<String>,
}

/// The file's bytes: compact JSON, keys in struct and name order, a final newline; the same
/// document always gives the same bytes, which is what its `.sig` signs.
pub fn encode_channels(doc: &ChannelsDoc) -> Vec<u8> {
    encode(doc)
}

/// Read `channels.json`, checking every name, path and reference.
pub fn parse_channels(bytes: &[u8]) -> Result<ChannelsDoc, ChannelFormatError> {
    let file = MetadataFile::Channels;
    let doc: ChannelsDoc = decode(file, bytes, MAX_CHANNELS_LEN)?;
    doc.global.check().map_err(|rule| {
        field_error(
            file,
            "global.expires".into(),
            &doc.global.expires.to_string(),
            rule,
        )
    })?;
    if doc.channels.len() > MAX_CHANNELS {
        return Err(ChannelFormatError::TooMany {
            file,
            field: "channels".into(),
            count: doc.channels.len(),
            max: MAX_CHANNELS,
        });
    }
    for (name, channel) in &doc.channels {
        check(
            file,
            || format!("channels.{name}"),
            name,
            field::channel_name(name),
        )?;
        if channel.devices.len() > MAX_DEVICES {
            return Err(ChannelFormatError::TooMany {
                file,
                field: format!("channels.{name}.devices"),
                count: channel.devices.len(),
                max: MAX_DEVICES,
            });
        }
        if channel.alias.is_some() && channel.redirect.is_some() {
            return Err(field_error(
                file,
                format!("channels.{name}.redirect"),
                channel.redirect.as_deref().unwrap_or_default(),
                "expected an alias or a redirect, not both",
            ));
        }
        for (key, target) in [("alias", &channel.alias), ("redirect", &channel.redirect)] {
            if let Some(target) = target {
                known_channel(&doc, || format!("channels.{name}.{key}"), target)?;
            }
        }
        for (device, entry) in &channel.devices {
            let path = || format!("channels.{name}.devices.{device}");
            check(file, path, device, field::device_name(device))?;
            check(
                file,
                || format!("{}.index", path()),
                &entry.index,
                field::url_path(&entry.index),
            )?;
            if let Some(target) = &entry.redirect {
                known_channel(&doc, || format!("{}.redirect", path()), target)?;
            }
        }
    }
    Ok(doc)
}

fn known_channel(
    doc: &ChannelsDoc,
    path: impl Fn() -> String,
    target: &str,
) -> Result<(), ChannelFormatError> {
    let file = MetadataFile::Channels;
    check(file, &path, target, field::channel_name(target))?;
    if doc.channels.contains_key(target) {
        Ok(())
    } else {
        Err(field_error(
            file,
            path(),
            target,
            "expected the name of a channel in this file",
        ))
    }
}

/// Compact JSON and a newline.
pub(super) fn encode<T: Serialize>(doc: &T) -> Vec<u8> {
    // Serialising these types cannot fail: every map key is a string and every custom
    // serializer (dates, version_detail) writes a string for any value.
    let mut bytes = serde_json::to_vec(doc).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// Size check, then serde.
pub(super) fn decode<T: serde::de::DeserializeOwned>(
    file: MetadataFile,
    bytes: &[u8],
    max: usize,
) -> Result<T, ChannelFormatError> {
    crate::json::decode(
        bytes,
        max,
        |len| ChannelFormatError::TooLarge { file, len, max },
        |error| ChannelFormatError::Json {
            file,
            reason: excerpt(&error.to_string(), 2 * crate::excerpt::MAX_LINE_CHARS),
        },
    )
}

/// Turn a field rule's result into the file's error, building the path only on failure.
pub(super) fn check(
    file: MetadataFile,
    path: impl Fn() -> String,
    value: &str,
    result: Result<(), &'static str>,
) -> Result<(), ChannelFormatError> {
    result.map_err(|rule| field_error(file, path(), value, rule))
}

pub(super) fn field_error(
    file: MetadataFile,
    field: String,
    value: &str,
    rule: &'static str,
) -> ChannelFormatError {
    ChannelFormatError::Field {
        file,
        field,
        value: excerpt(value, MAX_VALUE_CHARS),
        rule,
    }
}
