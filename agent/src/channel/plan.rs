//! One channel, planned: the verified metadata, where the router stands, redirects and aliases,
//! the scored paths and the router's phase ([`plan`]); and the list of channels ([`list`]).

use std::path::Path;

use attendant_proto::channel::{ChannelEntry, ChannelsDoc, IndexDoc, IndexFile, IndexImage};
use attendant_proto::version::Version;
use serde::Serialize;

use super::metadata::Metadata;
use super::paths::{self, Build, Decision};
use super::{ChannelError, machine, phase, running_stamp};
use crate::client::Client;
use crate::facts::Device;

/// Most redirects followed from the channel asked for.
pub(crate) const MAX_REDIRECTS: usize = 8;

/// What the caller asks of a channel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChannelRequest {
    /// The channel (`--channel`); `None`: the configured one.
    pub channel: Option<String>,
    /// Use this phase instead of the router's own (`--percentage`, 0 to 100).
    pub percentage: Option<u8>,
}

/// Why the router starts from build 0: a full move to the channel's newest build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum MoveReason {
    /// The running firmware carries no `channel.json`.
    NoStamp,
    /// The running firmware is from another channel.
    Switch {
        /// Its channel.
        from: String,
    },
    /// The channel is an alias that now mirrors another channel than the running build's.
    AliasRetarget {
        /// The running build's alias target.
        from: Option<String>,
        /// The alias target now.
        to: Option<String>,
    },
}

/// A channel, planned for this router.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ChannelPlan {
    /// The configured channel, if any.
    pub configured: Option<String>,
    /// The channel whose builds are offered: the one asked for, after redirects.
    pub name: String,
    /// The channel the redirects started from, when they were followed.
    pub redirected_from: Option<String>,
    /// The channel an alias mirrors.
    pub alias: Option<String>,
    /// `target/subtarget/profile`.
    pub device: String,
    /// The build the router runs in this channel (0: none).
    pub current_build: u64,
    /// Why the router starts from build 0, when it does.
    pub full_move: Option<MoveReason>,
    /// Paths, scores, winner, rollout.
    #[serde(flatten)]
    pub decision: Decision,
    /// The verified index.
    #[serde(skip)]
    pub index: IndexDoc,
    /// The OpenWrt version the router runs.
    #[serde(skip)]
    pub running_openwrt: String,
}

impl ChannelPlan {
    /// The build the winning path ends at.
    pub fn target(&self) -> Option<&IndexImage> {
        let end = self.decision.winning_path()?.end();
        self.build(end)
    }

    /// The newest build any path reaches.
    pub fn newest(&self) -> Option<&IndexImage> {
        self.build(self.decision.rollout?.build)
    }

    /// The next build to flash on the winning path (the first hop).
    pub fn next_hop(&self) -> Option<&IndexImage> {
        let first = *self.decision.winning_path()?.builds.first()?;
        self.build(first)
    }

    /// A build of the index.
    pub fn build(&self, version: u64) -> Option<&IndexImage> {
        self.index.images.iter().find(|i| i.version == version)
    }

    /// Whether the move lands on an older OpenWrt version than the running one.
    pub fn older_openwrt(&self) -> bool {
        let Some(target) = self.target() else {
            return false;
        };
        match (
            Version::parse(&target.openwrt_version),
            Version::parse(&self.running_openwrt),
        ) {
            (Ok(to), Ok(from)) => to < from,
            _ => false,
        }
    }
}

/// The file of `image` this router flashes: its sysupgrade image type and root filesystem.
pub fn image_file<'a>(image: &'a IndexImage, device: &Device) -> Option<&'a IndexFile> {
    let image_type = device.image_type();
    image.files.iter().find(|file| {
        file.image_type == image_type.as_str()
            && (file.filesystem.is_empty() || file.filesystem == device.rootfs_type)
    })
}

/// Plans `request` for `device`: fetches and verifies the metadata, works out where the router
/// stands, and decides.
/// `root` is where the router's files are, `configured` the configured channel.
pub fn plan(
    client: &Client,
    root: &Path,
    configured: Option<&str>,
    device: &Device,
    request: &ChannelRequest,
) -> Result<ChannelPlan, ChannelError> {
    let configured = configured.map(str::to_owned);
    let requested = request
        .channel
        .clone()
        .or_else(|| configured.clone())
        .ok_or(ChannelError::NoChannel)?;
    let device_name = device_name(device);
    let mut metadata = Metadata::open(client, root)?;
    let channels = metadata.channels()?;
    let (name, entry) = follow_redirects(&channels, &requested, &device_name)?;
    let Some(device_entry) = entry.devices.get(&device_name) else {
        return Err(ChannelError::NoDevice {
            channel: name,
            device: device_name,
        });
    };
    let index = metadata.index(&device_entry.index, &name, &device_name)?;
    let stamp = running_stamp(root)?;
    let (current_build, full_move) = match &stamp {
        None => (0, Some(MoveReason::NoStamp)),
        Some(stamp) if stamp.channel != name => (
            0,
            Some(MoveReason::Switch {
                from: stamp.channel.clone(),
            }),
        ),
        Some(stamp) if stamp.channel_target != entry.alias => (
            0,
            Some(MoveReason::AliasRetarget {
                from: stamp.channel_target.clone(),
                to: entry.alias.clone(),
            }),
        ),
        Some(stamp) => (stamp.build, None),
    };
    let machine_id = match request.percentage {
        Some(_) => String::new(),
        None => machine::machine_id(root)?,
    };
    let builds: Vec<Build> = index
        .images
        .iter()
        .map(|image| Build {
            version: image.version,
            minversion: image.minversion.unwrap_or(0),
            percentage: image.phased_percentage.unwrap_or(paths::FULL_ROLLOUT),
            download_bytes: image_file(image, device).map_or(0, |file| file.size),
        })
        .collect();
    let decision = paths::decide(&builds, current_build, |build| {
        request.percentage.map_or_else(
            || phase::phase(&name, build, &machine_id),
            |p| p.min(phase::MAX_PHASE),
        )
    });
    // Only metadata that passed every check raises the serials remembered.
    metadata.save()?;
    Ok(ChannelPlan {
        configured,
        redirected_from: (name != requested).then_some(requested),
        alias: entry.alias.clone(),
        name,
        device: device_name,
        current_build,
        full_move,
        decision,
        index,
        running_openwrt: device.version.clone(),
    })
}

/// `target/subtarget/profile` of the router.
pub fn device_name(device: &Device) -> String {
    format!("{}/{}", device.target, device.profile())
}

/// The channel a name leads to, after its redirects (the device's own first).
fn follow_redirects<'a>(
    channels: &'a ChannelsDoc,
    requested: &str,
    device: &str,
) -> Result<(String, &'a ChannelEntry), ChannelError> {
    let mut name = requested.to_owned();
    for _ in 0..=MAX_REDIRECTS {
        let Some(entry) = channels.channels.get(&name) else {
            return Err(ChannelError::UnknownChannel {
                channel: requested.to_owned(),
                offered: visible(channels, device, false)
                    .map(|(name, _)| name.clone())
                    .collect(),
            });
        };
        let redirect = entry
            .devices
            .get(device)
            .and_then(|d| d.redirect.as_ref())
            .or(entry.redirect.as_ref());
        match redirect {
            Some(target) => name.clone_from(target),
            None => return Ok((name, entry)),
        }
    }
    Err(ChannelError::RedirectLoop {
        channel: requested.to_owned(),
        max: MAX_REDIRECTS,
    })
}

fn visible<'a>(
    channels: &'a ChannelsDoc,
    device: &'a str,
    all: bool,
) -> impl Iterator<Item = (&'a String, &'a ChannelEntry)> {
    channels
        .channels
        .iter()
        .filter(move |(_, entry)| entry.devices.contains_key(device) && (all || !entry.hidden))
}

/// The channels that have this router, for `attendant channels` and the ubus `channels` method.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Channels {
    /// The configured channel.
    pub configured: Option<String>,
    /// Where the running firmware stands, from its `channel.json`.
    pub current: Option<Current>,
    /// The channels, by name.
    pub channels: Vec<ChannelSummary>,
}

/// The running firmware's channel and build.
#[derive(Debug, Clone, Serialize)]
pub struct Current {
    /// Its channel.
    pub channel: String,
    /// Its build.
    pub build: u64,
}

/// One channel in [`Channels`].
#[derive(Debug, Clone, Serialize)]
pub struct ChannelSummary {
    /// Its name.
    pub name: String,
    /// Whether it is hidden (listed only with `--all`).
    pub hidden: bool,
    /// The channel it mirrors.
    pub alias: Option<String>,
    /// The channel it sends routers to.
    pub redirect: Option<String>,
    /// Its newest build for this router.
    pub latest: Option<Latest>,
}

/// A channel's newest build.
#[derive(Debug, Clone, Serialize)]
pub struct Latest {
    /// The build number.
    pub build: u64,
    /// Its OpenWrt version.
    pub openwrt_version: String,
    /// Its description.
    pub description: String,
    /// Its phased percentage.
    pub phased_percentage: u8,
}

/// Lists the channels that have `device` (hidden ones only with `all`), each with its newest
/// build from its verified index.
pub fn list(
    client: &Client,
    root: &Path,
    configured: Option<&str>,
    device: &Device,
    all: bool,
) -> Result<Channels, ChannelError> {
    let device_name = device_name(device);
    let mut metadata = Metadata::open(client, root)?;
    let doc = metadata.channels()?;
    let mut channels = Vec::new();
    for (name, entry) in visible(&doc, &device_name, all) {
        let redirect = entry
            .devices
            .get(&device_name)
            .and_then(|d| d.redirect.clone())
            .or_else(|| entry.redirect.clone());
        let mut latest = None;
        if let Some(device_entry) = entry.devices.get(&device_name) {
            // A redirecting channel points at its target's index, which names the target.
            let index_channel = redirect.as_deref().unwrap_or(name);
            let index = metadata.index(&device_entry.index, index_channel, &device_name)?;
            latest = index.images.last().map(|image| Latest {
                build: image.version,
                openwrt_version: image.openwrt_version.clone(),
                description: image.description.clone(),
                phased_percentage: image.phased_percentage.unwrap_or(paths::FULL_ROLLOUT),
            });
        }
        channels.push(ChannelSummary {
            name: name.clone(),
            hidden: entry.hidden,
            alias: entry.alias.clone(),
            redirect,
            latest,
        });
    }
    metadata.save()?;
    Ok(Channels {
        configured: configured.map(str::to_owned),
        current: running_stamp(root)?.map(|stamp| Current {
            channel: stamp.channel,
            build: stamp.build,
        }),
        channels,
    })
}
