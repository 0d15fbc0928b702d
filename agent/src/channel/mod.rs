//! Release channels on the router: where the running firmware stands, the verified channel
//! metadata, the upgrade paths through a channel's builds and this router's phase in a rollout.
//!
//! A router follows a channel when `option channel` is set in the `attendant` section of
//! `/etc/config/attendedsysupgrade` (or `--channel` is given); without one the agent offers the
//! newest release of its branch from the build API, as before. The operator's side is described
//! in `docs/channels.md` and the checks in `docs/channels-trust.md`; the router's side in
//! `docs/channels-router.md`.
//!
//! | module | what |
//! | --- | --- |
//! | [`metadata`] | fetching `channels.json` and `index.json` and verifying them ([`Metadata`]) |
//! | [`paths`] | upgrade paths, their scores and the phased choice ([`paths::decide`]) |
//! | [`phase`] | the router's phase, CPython-compatible ([`phase::phase`]) |
//! | [`machine`] | the machine-id that seeds the phase |
//! | [`attended`] | the published image or one built for this router, and the script that stamps it |
//! | [`plan`](plan()) | all of it for one channel: a [`ChannelPlan`] |
//!
//! Where the router stands comes from `/etc/attendant/channel.json`, which every image built for
//! a channel carries: its channel and build. Without it (a stock image) the router stands at
//! build 0 of the channel, so the channel's newest build is a full move. A switch to another
//! channel, an alias that now mirrors another channel, or a redirect also start from build 0.

pub mod attended;
pub mod machine;
pub mod metadata;
pub mod paths;
pub mod phase;
mod plan;

use std::path::{Path, PathBuf};

use attendant_proto::channel::trust::TrustError;
use attendant_proto::channel::{ChannelFormatError, ChannelStamp, MAX_STAMP_LEN, parse_stamp};
use attendant_proto::wire;

pub use self::metadata::Metadata;
pub use self::plan::{
    ChannelPlan, ChannelRequest, ChannelSummary, Channels, Current, Latest, MoveReason,
    device_name, image_file, list, plan,
};
use crate::client::ClientError;
use crate::hint::Hint;

/// Why the router could not use a channel.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelError {
    /// No channel was named and none is configured.
    #[error("no channel is configured")]
    NoChannel,
    /// No root key is pinned, so no metadata can be believed.
    #[error("no channel root key is pinned in `{}`", dir.display())]
    NoRootKey {
        /// The keys directory.
        dir: PathBuf,
    },
    /// The server does not publish this file.
    #[error("the server publishes no `{url}`")]
    NotPublished {
        /// The URL.
        url: String,
    },
    /// The file could not be fetched.
    #[error(transparent)]
    Fetch {
        /// The client's error, which names the URL.
        source: ClientError,
    },
    /// A check of the chain of trust, freshness or device refused the file.
    #[error("refusing `{url}`: {source}")]
    Refused {
        /// The file.
        url: String,
        /// The check that failed.
        source: TrustError,
    },
    /// The `.sig` names a signing key the server publishes no delegation for: a key the root
    /// never certified.
    #[error("refusing `{url}`: there is no delegation for the signing key `{fingerprint}`")]
    NoDelegation {
        /// The file.
        url: String,
        /// The key that made its `.sig`.
        fingerprint: String,
    },
    /// The file is signed but does not follow the format.
    #[error("refusing `{url}`: {source}")]
    Format {
        /// The file.
        url: String,
        /// The rule that was broken.
        source: ChannelFormatError,
    },
    /// The channel is not in `channels.json`.
    #[error("channel `{channel}` is not offered by the server; offered: {}", offered_text(.offered))]
    UnknownChannel {
        /// The channel asked for.
        channel: String,
        /// The visible channels that have this device.
        offered: Vec<String>,
    },
    /// The channel has no builds for this device.
    #[error("channel `{channel}` has no builds for `{device}`")]
    NoDevice {
        /// The channel.
        channel: String,
        /// The device.
        device: String,
    },
    /// The build has no published image of this router's type (the prebuilt route was asked
    /// for, or the router has nothing the recipe lacks and the server builds nothing).
    #[error(
        "build {build} of channel `{channel}` has no published `{image_type}` image with a `{filesystem}` root filesystem for this router"
    )]
    NoImage {
        /// The channel.
        channel: String,
        /// The build.
        build: u64,
        /// The image type the router flashes.
        image_type: String,
        /// Its root filesystem.
        filesystem: String,
    },
    /// The index names the recipe's uci-defaults script only by its digest (a server that does
    /// not publish scripts), so no image of the build can be made for this router.
    #[error(
        "build {build} of channel `{channel}` names its uci-defaults script only by its digest, so it cannot be built for this router"
    )]
    NoRecipeScript {
        /// The channel.
        channel: String,
        /// The build.
        build: u64,
    },
    /// The router needs an image of its own (it has packages the published image lacks), but
    /// the server refuses the uci-defaults script that stamps such an image.
    #[error(
        "this router has packages the published image of build {build} of channel `{channel}` lacks ({}), but the server does not accept the uci-defaults script an image built for it needs (`allow_defaults` is off in its overview.json)", extra.join(", ")
    )]
    ScriptsRefused {
        /// The channel.
        channel: String,
        /// The build.
        build: u64,
        /// The packages the published image lacks.
        extra: Vec<String>,
    },
    /// Redirects that go round in a circle or too far.
    #[error("the redirects from channel `{channel}` do not end within {max} steps")]
    RedirectLoop {
        /// The channel asked for.
        channel: String,
        /// The limit.
        max: usize,
    },
    /// The running image's `channel.json` is damaged.
    #[error("`{}` is not valid: {source}", path.display())]
    Stamp {
        /// The file.
        path: PathBuf,
        /// The rule that was broken.
        source: ChannelFormatError,
    },
    /// The serial file or the report file is damaged.
    #[error("`{}` is not valid: {message}", path.display())]
    StateFile {
        /// The file.
        path: PathBuf,
        /// serde's message.
        message: String,
    },
    /// A local file could not be read.
    #[error("cannot read `{}`: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A local file could not be written.
    #[error("cannot write `{}`: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl ChannelError {
    /// Build `build` of `channel` has no published image `device` can flash.
    pub(crate) fn no_image(channel: &str, build: u64, device: &crate::facts::Device) -> Self {
        Self::NoImage {
            channel: channel.to_owned(),
            build,
            image_type: device.image_type().as_str().to_owned(),
            filesystem: device.rootfs_type.clone(),
        }
    }

    /// Whether the metadata was refused (exit code 7, ubus `"code":"metadata"`), rather than
    /// missing or unreachable.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Self::Refused { .. }
                | Self::NoDelegation { .. }
                | Self::Format { .. }
                | Self::NoRootKey { .. }
        )
    }

    /// The named cause of a refusal, for machines: the trust check's code (`expired`,
    /// `serial-rollback`, `revoked`, `bad-signature`, `wrong-device`, ...), `format` or
    /// `no-root-key`.
    pub fn cause(&self) -> Option<&'static str> {
        match self {
            Self::Refused { source, .. } => Some(source.code()),
            Self::NoDelegation { .. } => Some("no-delegation"),
            Self::Format { .. } => Some("format"),
            Self::NoRootKey { .. } => Some("no-root-key"),
            _ => None,
        }
    }

    /// The way out, if there is one.
    pub fn hint(&self) -> Option<Hint> {
        match self {
            Self::NoChannel => Some(Hint::uncoded(
                "`attendant channels` lists the channels; choose one with `--channel NAME` or `uci set attendedsysupgrade.attendant.channel=NAME`",
            )),
            Self::UnknownChannel { .. } => Some(Hint::uncoded(
                "`attendant channels --all` lists every channel for this router",
            )),
            Self::NoRootKey { .. } => Some(Hint::uncoded(
                "install the channel server's root public key there (`attendant-server keys root-init` made it)",
            )),
            Self::Refused {
                source: TrustError::Expired { .. } | TrustError::DelegationExpired { .. },
                ..
            } => Some(Hint::uncoded(
                "check the router's clock (`date`); if it is right, the server has not re-signed its channels",
            )),
            Self::ScriptsRefused { .. } => Some(Hint::uncoded(
                "`--prebuilt` flashes the published image without those packages; or the server's operator sets `allow_defaults = true`",
            )),
            Self::NoRecipeScript { .. } => Some(Hint::uncoded(
                "`--prebuilt` flashes the published image without the packages the recipe lacks",
            )),
            _ => None,
        }
    }
}

fn offered_text(offered: &[String]) -> String {
    if offered.is_empty() {
        "none".to_owned()
    } else {
        offered.join(", ")
    }
}

/// The running firmware's `/etc/attendant/channel.json`, if it has one.
pub fn running_stamp(root: &Path) -> Result<Option<ChannelStamp>, ChannelError> {
    let path = wire::under_root(root, wire::CHANNEL_STAMP_PATH);
    match crate::atomic::read_small(&path, u64::try_from(MAX_STAMP_LEN).unwrap_or(u64::MAX)) {
        Ok(bytes) => parse_stamp(&bytes)
            .map(Some)
            .map_err(|source| ChannelError::Stamp { path, source }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ChannelError::Io { path, source }),
    }
}
