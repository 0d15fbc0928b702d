//! Release channels on the wire: `channels.json`, per-device `index.json`, the embedded
//! `/etc/attendant/channel.json`, and the checks a router makes before believing them.
//!
//! The server publishes a static tree under `/channels/`, modelled on Ubuntu's system-image
//! (<https://github.com/xfonelabs/system-image-server>): `channels.json` lists every channel and,
//! per device (`target/subtarget/profile`), the URL path of its `index.json`; an index lists the
//! device's builds in that channel, oldest first. Each file is signed with a detached usign
//! signature `<file>.sig` over its exact bytes, by a signing key that an offline root key
//! delegates with a ucert certificate ([`trust`]).
//!
//! | module | what |
//! | --- | --- |
//! | [`channels`](ChannelsDoc) | `channels.json`: [`ChannelsDoc`], [`encode_channels`], [`parse_channels`] |
//! | [`index`](IndexDoc) | `index.json`: [`IndexDoc`], [`encode_index`], [`parse_index`] |
//! | [`report`](ReportRequest) | outcome reports a router sends after an upgrade: [`ReportRequest`], [`parse_report`], [`machine_token`] |
//! | [`stamp`](ChannelStamp) | `channel.json` in the image: [`ChannelStamp`], [`encode_stamp`], [`parse_stamp`] |
//! | [`Freshness`] | `generated_at`, `expires`, `serial` of every file's `global` |
//! | [`VersionDetail`] | `openwrt=24.10.5,recipe=3,tag=Q4` |
//! | [`field`] | the rules for names, paths, digests and tokens |
//! | [`trust`] | signature chain, freshness and device checks |
//!
//! Differences from system-image, all deliberate: `channels.json` keeps its channel map under
//! `channels` beside a `global` object; every file carries `expires` and `serial`, which routers
//! check (system-image wrote `generated_at` and never checked it); image `type` is always `full`
//! (OpenWrt flashes whole images, there are no deltas); images carry OpenWrt's fields
//! (`openwrt_version`, `version_code`, `target`, `profile`, `recipe`, per file `name`,
//! `image_type`, `filesystem`); signatures are usign, not GPG.
//!
//! Encoding is deterministic (compact JSON, keys in struct order and maps in name order, a final
//! newline), so a re-published unchanged document has the same bytes. Parsing ignores unknown
//! keys, so a newer server's files still read, and enforces every field rule, each failure a
//! [`ChannelFormatError`] naming the file, the field's JSON path, the value and the rule. Every
//! file, list and string has a limit (the `MAX_*` constants).
//!
//! ```
//! use attendant_proto::channel::{ChannelStamp, VersionDetail, encode_stamp, parse_stamp};
//!
//! let stamp = ChannelStamp {
//!     channel: "stable".into(),
//!     channel_target: None,
//!     device: "ath79/generic/tplink_archer-c7-v5".into(),
//!     build: 7,
//!     version_detail: VersionDetail::parse("openwrt=24.10.5,recipe=3").unwrap(),
//!     server: "https://upgrade.example.org".into(),
//! };
//! let bytes = encode_stamp(&stamp);
//! assert!(bytes.starts_with(br#"{"channel":"stable","device":"#));
//! assert_eq!(parse_stamp(&bytes).unwrap(), stamp);
//! ```

mod channels;
mod error;
pub mod field;
mod freshness;
mod index;
mod report;
mod stamp;
pub mod trust;
mod version_detail;

pub use self::channels::{
    ChannelEntry, ChannelsDoc, DeviceEntry, MAX_CHANNELS, MAX_CHANNELS_LEN, MAX_DEVICES,
    encode_channels, parse_channels,
};
pub use self::error::{ChannelFormatError, MetadataFile};
pub use self::freshness::Freshness;
pub use self::index::{
    ImageType, IndexDoc, IndexFile, IndexGlobal, IndexImage, IndexRecipe, MAX_DEFAULTS_SCRIPT_LEN,
    MAX_FILES, MAX_IMAGES, MAX_INDEX_LEN, MAX_PERCENTAGE, MAX_RECIPE_PACKAGES, defaults_digest,
    encode_index, parse_index,
};
pub use self::report::{
    MAX_CAUSE_LEN, MAX_REPORT_LEN, MAX_SALT_LEN, REPORT_API_PATH, ReportRequest, ReportResult,
    ReportSalt, encode_report, encode_salt, machine_token, parse_report, parse_salt,
};
pub use self::stamp::{ChannelStamp, MAX_STAMP_LEN, encode_stamp, parse_stamp};
pub use self::version_detail::{MAX_PAIRS, MAX_PART_LEN, VersionDetail, VersionDetailError};

#[cfg(test)]
mod tests;
