//! `/etc/attendant/channel.json`, embedded in every image built for a channel: where a flashed
//! router stands (the OpenWrt form of system-image's `channel.ini`).

use serde::{Deserialize, Serialize};

use super::channels::{check, decode, encode};
use super::error::{ChannelFormatError, MetadataFile};
use super::field;
use super::version_detail::VersionDetail;

/// Largest `channel.json` read, in bytes.
pub const MAX_STAMP_LEN: usize = 4096;

/// The embedded channel file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelStamp {
    /// The channel the image was built for.
    pub channel: String,
    /// For an alias channel, the channel it mirrors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_target: Option<String>,
    /// `target/subtarget/profile`.
    pub device: String,
    /// The build number in the channel.
    pub build: u64,
    /// What the build is made of.
    pub version_detail: VersionDetail,
    /// The server's base URL, where `/channels/` is found.
    pub server: String,
}

/// The file's bytes: compact JSON, a final newline.
pub fn encode_stamp(stamp: &ChannelStamp) -> Vec<u8> {
    encode(stamp)
}

/// Read the embedded channel file.
pub fn parse_stamp(bytes: &[u8]) -> Result<ChannelStamp, ChannelFormatError> {
    let file = MetadataFile::Stamp;
    let stamp: ChannelStamp = decode(file, bytes, MAX_STAMP_LEN)?;
    check(
        file,
        || "channel".into(),
        &stamp.channel,
        field::channel_name(&stamp.channel),
    )?;
    if let Some(target) = &stamp.channel_target {
        check(
            file,
            || "channel_target".into(),
            target,
            field::channel_name(target),
        )?;
    }
    check(
        file,
        || "device".into(),
        &stamp.device,
        field::device_name(&stamp.device),
    )?;
    check(
        file,
        || "server".into(),
        &stamp.server,
        field::server_url(&stamp.server),
    )?;
    Ok(stamp)
}
