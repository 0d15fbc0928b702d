//! Operations on the channel tree: pure functions from a [`Tree`] to a [`Change`] (the channels
//! they touched, as they are afterwards, and a description for people), or an [`OpError`]
//! naming the rule that refused them.
//!
//! Nothing here does I/O, so the CLI's `--dry-run` and the admin API's `dry_run` print a change
//! without committing it, and every rule is unit-tested below. The caller commits the change
//! with [`crate::store::channel_store::ChannelStore::commit`] against the snapshot it was computed from, and
//! runs the operation again on a conflict.
//!
//! The semantics are system-image's (<https://gitlab.com/ubports/infrastructure/system-image-server>,
//! `lib/systemimage/tree.py` and the `copy-image`, `tag-image`, `set-phased-percentage` tools):
//!
//! - an **alias** mirrors its target's devices and builds under the same numbers, and is
//!   re-synced at the end of every operation; a mirrored build whose images embed the build's
//!   stamp is rebuilt with the alias's own stamp ([`Change::rebuilds`]);
//! - a **redirect** channel is a hidden shallow copy of its target's device list (routers read
//!   the target's indexes); a **per-device redirect** sends one device of a channel to
//!   another channel's index;
//! - aliases and redirects are never changed directly (they mirror), and chains are refused;
//! - only the **latest** build of a device may be phased or tagged; tagging and copying give a
//!   new number; copying refuses a build equal to the destination's latest;
//! - `fullcount` expiry removes the oldest builds beyond the count, never the latest and never
//!   a build a newer build's `minversion` still needs as its stepping stone;
//! - build numbers are never reused ([`Device::last_build`]).
//!
//! Beyond system-image: names are checked ([`check_name`]), a rename leaves the old name as a
//! redirect to the new one, and removing a channel that aliases or redirects still point at is
//! refused instead of leaving them dangling.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::model::{
    Advance, Build, BuildSource, BuildState, Channel, ChannelKind, ChannelSettings, Device,
    DeviceId, FailureRate, ImageFile, Recipe, Rollout,
};

/// The whole tree, by channel name.
pub type Tree = BTreeMap<String, Channel>;

/// Longest channel name, in bytes.
pub const MAX_NAME_LEN: usize = 128;

/// Longest tag, in bytes.
pub const MAX_TAG_LEN: usize = 64;

/// Longest description, in bytes.
pub const MAX_DESCRIPTION_LEN: usize = 4096;

/// First path segments a channel name may not take: the published tree keeps its own
/// directories there.
pub const RESERVED_NAMES: &[&str] = &["pool", "keys"];

/// What an operation changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The operation, e.g. `phase`.
    pub operation: &'static str,
    /// What it was applied to, e.g. `stable ath79/generic/tplink_archer-c7-v5 7`.
    pub target: String,
    /// One line per effect, for people.
    pub summary: Vec<String>,
    /// The channels that differ afterwards: name → channel, `None` when removed.
    pub touched: BTreeMap<String, Option<Channel>>,
    /// Builds created in state `Pending` without a job yet: their images must be built (the
    /// stamp embeds their channel and number). [`super::builds`] submits the jobs and fills in
    /// the request hashes before the change is committed.
    pub rebuilds: Vec<BuildRef>,
}

/// One build of one device of one channel.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct BuildRef {
    /// The channel.
    pub channel: String,
    /// The device id.
    pub device: String,
    /// The build number.
    pub number: u64,
}

/// Why an operation was refused: the rule broken, with the names involved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpError {
    /// A channel name breaks the naming rule.
    #[error("channel name `{name}` is not allowed: {rule}")]
    InvalidName {
        /// The name, truncated.
        name: String,
        /// The rule.
        rule: &'static str,
    },
    /// The channel exists already.
    #[error("channel `{name}` exists already")]
    ChannelExists {
        /// The channel.
        name: String,
    },
    /// No such channel.
    #[error("there is no channel `{name}`")]
    NoChannel {
        /// The channel.
        name: String,
    },
    /// The device is not in the channel.
    #[error("channel `{channel}` has no device `{device}`")]
    NoDevice {
        /// The channel.
        channel: String,
        /// The device.
        device: String,
    },
    /// The device is in the channel already.
    #[error("channel `{channel}` has device `{device}` already")]
    DeviceExists {
        /// The channel.
        channel: String,
        /// The device.
        device: String,
    },
    /// No such build.
    #[error("channel `{channel}` device `{device}` has no build {number}")]
    NoBuild {
        /// The channel.
        channel: String,
        /// The device.
        device: String,
        /// The build number.
        number: u64,
    },
    /// The channel mirrors another one and is changed only through it.
    #[error("channel `{channel}` is {kind} `{target}` and mirrors it; change `{target}` instead")]
    Mirrored {
        /// The channel.
        channel: String,
        /// `an alias of` or `a redirect to`.
        kind: &'static str,
        /// What it mirrors.
        target: String,
    },
    /// The device of the channel is a per-device redirect.
    #[error("device `{device}` of channel `{channel}` is a redirect to channel `{target}`")]
    DeviceRedirected {
        /// The channel.
        channel: String,
        /// The device.
        device: String,
        /// Where it points.
        target: String,
    },
    /// Only the latest build may be phased or tagged.
    #[error(
        "build {number} of channel `{channel}` device `{device}` is not the latest (the latest is {latest}); only the latest build may be {action}"
    )]
    NotLatest {
        /// The channel.
        channel: String,
        /// The device.
        device: String,
        /// The build asked for.
        number: u64,
        /// The latest build.
        latest: u64,
        /// `phased` or `tagged`.
        action: &'static str,
    },
    /// A phased percentage above 100.
    #[error("phased percentage {value} is out of range; expected 0 (pulled) to 100 (everyone)")]
    Percentage {
        /// The value given.
        value: u64,
    },
    /// A tag breaks the tag rule.
    #[error("tag `{tag}` is not allowed: {rule}")]
    InvalidTag {
        /// The tag, truncated.
        tag: String,
        /// The rule.
        rule: &'static str,
    },
    /// The build is the destination's latest already (system-image's "already latest").
    #[error(
        "build {number} of channel `{channel}` device `{device}` has the same images as the latest build {latest} of channel `{target}`; nothing to copy"
    )]
    AlreadyLatest {
        /// The source channel.
        channel: String,
        /// The device.
        device: String,
        /// The source build.
        number: u64,
        /// The destination channel.
        target: String,
        /// The destination's latest build.
        latest: u64,
    },
    /// Other channels point at this one.
    #[error("channel `{name}` is still the target of {}", by.iter().map(|b| format!("`{b}`")).collect::<Vec<_>>().join(", "))]
    StillReferenced {
        /// The channel.
        name: String,
        /// The aliases and redirects pointing at it.
        by: Vec<String>,
    },
    /// Removing the build would leave a newer build without a stepping stone.
    #[error(
        "build {number} of channel `{channel}` device `{device}` is the stepping stone to build {needed_by} (its minversion is {minversion})"
    )]
    SteppingStone {
        /// The channel.
        channel: String,
        /// The device.
        device: String,
        /// The build.
        number: u64,
        /// The newer build that needs it.
        needed_by: u64,
        /// That build's minversion.
        minversion: u64,
    },
    /// A channel cannot alias or redirect to itself.
    #[error("channel `{name}` cannot point at itself")]
    SelfReference {
        /// The channel.
        name: String,
    },
    /// An alias or redirect may not point at a channel that is itself a mirror.
    #[error("channel `{target}` is {kind} `{further}`; point at `{further}` directly")]
    Chain {
        /// The channel pointed at.
        target: String,
        /// `an alias of` or `a redirect to`.
        kind: &'static str,
        /// What that one points at.
        further: String,
    },
    /// The build has no images yet, or failed.
    #[error(
        "build {number} of channel `{channel}` device `{device}` is {state}; only ready builds can be copied"
    )]
    NotReady {
        /// The channel.
        channel: String,
        /// The device.
        device: String,
        /// The build.
        number: u64,
        /// `pending` or `failed`.
        state: &'static str,
    },
    /// A `minversion` not below the new build's number.
    #[error("minversion {minversion} must be below the new build's number {number}")]
    Minversion {
        /// The minversion given.
        minversion: u64,
        /// The number the build gets.
        number: u64,
    },
    /// `versionbase` 0.
    #[error("versionbase must be at least 1")]
    Versionbase,
    /// A description longer than [`MAX_DESCRIPTION_LEN`].
    #[error("the description is longer than {MAX_DESCRIPTION_LEN} bytes")]
    DescriptionTooLong,
    /// A failure rate that is not a number from 0 to 1.
    #[error("failure rate {value} is out of range; expected a number from 0 (any failure) to 1")]
    FailureRate {
        /// The value given, as it was written.
        value: String,
    },
    /// Advance steps that are not rising percentages.
    #[error("advance steps `{steps}` are not allowed: {rule}")]
    AdvanceSteps {
        /// The steps given, comma-joined.
        steps: String,
        /// The rule.
        rule: &'static str,
    },
    /// Advance settings without advance steps.
    #[error("channel `{channel}` has no advance steps to go with `min_successes` or `soak`")]
    NoAdvance {
        /// The channel.
        channel: String,
    },
}

impl OpError {
    /// The way out, printed after the error as `hint: ...`; `None` when the message says it all.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::NoChannel { name } => Some(format!(
                "list the channels with `attendant-server channel list`, or create it with `attendant-server channel create {name}`"
            )),
            Self::NoDevice { channel, device } => Some(format!(
                "add it with `attendant-server channel device add {channel} {device}`"
            )),
            Self::DeviceExists { channel, device } => Some(format!(
                "remove it first with `attendant-server channel device remove {channel} {device}`"
            )),
            Self::NotLatest {
                channel, device, ..
            } => Some(format!(
                "see the builds with `attendant-server channel images {channel} {device}`"
            )),
            Self::StillReferenced { by, .. } => Some(format!(
                "remove or re-target {} first",
                by.iter()
                    .map(|b| format!("`{b}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Self::NoAdvance { channel } => Some(format!(
                "give the steps too, e.g. `attendant-server channel rollout {channel} --advance 1,10,50,100`"
            )),
            Self::SteppingStone { needed_by, .. } => Some(format!(
                "remove build {needed_by} first, or pull a bad build with `channel phase ... 0` instead of removing it"
            )),
            _ => None,
        }
    }
}

/// A channel name is `[a-z0-9][a-z0-9._/-]*`, at most [`MAX_NAME_LEN`] bytes, without `..`,
/// `//`, a trailing `/`, or a reserved first segment ([`RESERVED_NAMES`]): it becomes a path of
/// the published tree.
pub fn check_name(name: &str) -> Result<(), OpError> {
    let invalid = |rule| OpError::InvalidName {
        name: name.chars().take(MAX_NAME_LEN).collect(),
        rule,
    };
    if name.is_empty() {
        return Err(invalid("it is empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(invalid("it is longer than 128 bytes"));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit()) {
        return Err(invalid("it must start with `a-z` or `0-9`"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._/-".contains(c))
    {
        return Err(invalid("only `a-z 0-9 . _ / -` are allowed"));
    }
    if name.contains("..") || name.contains("//") || name.contains("/.") || name.ends_with('/') {
        return Err(invalid(
            "no `..`, `//`, segment starting with `.` or trailing `/`",
        ));
    }
    let first = name.split('/').next().unwrap_or(name);
    if RESERVED_NAMES.contains(&first) || name.ends_with(".json") || name.ends_with(".sig") {
        return Err(invalid(
            "`pool`, `keys` and names ending in `.json` or `.sig` are used by the published tree",
        ));
    }
    Ok(())
}

/// Options of [`create`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateOptions {
    /// An `auto` channel (filled by the importer).
    pub auto: bool,
    /// The first build number (default 1, or `like`'s).
    pub versionbase: Option<u64>,
    /// Builds kept per device (default 0 = all, or `like`'s).
    pub fullcount: Option<u32>,
    /// Take devices (without builds) and settings from this channel.
    pub like: Option<String>,
}

/// `channel create NAME [--auto] [--versionbase N] [--fullcount N] [--like BASE]`.
pub fn create(tree: &Tree, name: &str, options: &CreateOptions) -> Result<Change, OpError> {
    check_name(name)?;
    let mut work = Work::new(tree, "create", name.to_owned());
    if tree.contains_key(name) {
        return Err(OpError::ChannelExists {
            name: name.to_owned(),
        });
    }
    let (mut settings, devices) = match &options.like {
        Some(base) => {
            let base = work.channel(base)?;
            let devices: BTreeMap<String, Device> = base
                .devices
                .iter()
                .filter(|(_, device)| device.redirect.is_none())
                .map(|(id, _)| (id.clone(), Device::default()))
                .collect();
            (base.settings.clone(), devices)
        }
        None => (
            ChannelSettings {
                kind: ChannelKind::Manual,
                versionbase: 1,
                fullcount: 0,
                rollout: Rollout::default(),
            },
            BTreeMap::new(),
        ),
    };
    if options.auto {
        settings.kind = ChannelKind::Auto;
    }
    if let Some(versionbase) = options.versionbase {
        if versionbase == 0 {
            return Err(OpError::Versionbase);
        }
        settings.versionbase = versionbase;
    }
    if let Some(fullcount) = options.fullcount {
        settings.fullcount = fullcount;
    }
    work.say(format!(
        "create channel `{name}` ({}, versionbase {}, fullcount {}{})",
        kind_name(settings.kind),
        settings.versionbase,
        settings.fullcount,
        if devices.is_empty() {
            String::new()
        } else {
            format!(", {} devices", devices.len())
        }
    ));
    work.tree.insert(
        name.to_owned(),
        Channel {
            name: name.to_owned(),
            settings,
            hidden: false,
            alias: None,
            redirect: None,
            devices,
        },
    );
    Ok(work.finish())
}

/// `channel remove NAME`: refused while aliases or channel redirects point at it; per-device
/// redirects to it are removed with it.
pub fn remove(tree: &Tree, name: &str) -> Result<Change, OpError> {
    let mut work = Work::new(tree, "remove", name.to_owned());
    work.channel(name)?;
    let by: Vec<String> = tree
        .values()
        .filter(|other| {
            other.name != name
                && (other.alias.as_deref() == Some(name) || other.redirect.as_deref() == Some(name))
        })
        .map(|other| other.name.clone())
        .collect();
    if !by.is_empty() {
        return Err(OpError::StillReferenced {
            name: name.to_owned(),
            by,
        });
    }
    work.tree.remove(name);
    work.say(format!("remove channel `{name}`"));
    for channel in work.tree.values_mut() {
        let before = channel.devices.len();
        channel
            .devices
            .retain(|_, device| device.redirect.as_deref() != Some(name));
        if channel.devices.len() != before {
            work.summary.push(format!(
                "remove {} per-device redirects of `{}` to `{name}`",
                before - channel.devices.len(),
                channel.name
            ));
        }
    }
    Ok(work.finish())
}

/// `channel hide NAME` / `channel show NAME`.
pub fn set_hidden(tree: &Tree, name: &str, hidden: bool) -> Result<Change, OpError> {
    let operation = if hidden { "hide" } else { "show" };
    let mut work = Work::new(tree, operation, name.to_owned());
    let channel = work.channel_mut(name)?;
    channel.hidden = hidden;
    work.say(format!("{operation} channel `{name}`"));
    Ok(work.finish())
}

/// `channel rename OLD NEW`: the channel moves to `NEW` (new builds carry the new name), `OLD`
/// becomes a hidden redirect to it, and aliases and redirects pointing at `OLD` point at `NEW`.
pub fn rename(tree: &Tree, old: &str, new: &str) -> Result<Change, OpError> {
    check_name(new)?;
    let mut work = Work::new(tree, "rename", format!("{old} {new}"));
    let channel = work.channel(old)?.clone();
    if let Some(target) = &channel.redirect {
        return Err(OpError::Mirrored {
            channel: old.to_owned(),
            kind: "a redirect to",
            target: target.clone(),
        });
    }
    if tree.contains_key(new) {
        return Err(OpError::ChannelExists {
            name: new.to_owned(),
        });
    }
    for other in work.tree.values_mut() {
        if other.alias.as_deref() == Some(old) {
            other.alias = Some(new.to_owned());
        }
        if other.redirect.as_deref() == Some(old) {
            other.redirect = Some(new.to_owned());
        }
        for device in other.devices.values_mut() {
            if device.redirect.as_deref() == Some(old) {
                device.redirect = Some(new.to_owned());
            }
        }
    }
    let mut moved = channel.clone();
    moved.name = new.to_owned();
    work.tree.insert(new.to_owned(), moved);
    // A queued build's job embeds a stamp naming `OLD` (and an alias's, `OLD` as its target):
    // it would land under the new name still saying the old one, so it is built afresh.
    let restamped: Vec<String> = work
        .tree
        .values()
        .filter(|other| other.name == new || other.alias.as_deref() == Some(new))
        .map(|other| other.name.clone())
        .collect();
    for name in restamped {
        work.restamp_pending(&name);
    }
    work.tree.insert(
        old.to_owned(),
        Channel {
            name: old.to_owned(),
            settings: channel.settings.clone(),
            hidden: true,
            alias: None,
            redirect: Some(new.to_owned()),
            devices: BTreeMap::new(),
        },
    );
    work.say(format!(
        "rename channel `{old}` to `{new}`; `{old}` becomes a hidden redirect to `{new}`"
    ));
    Ok(work.finish())
}

/// `channel alias ALIAS TARGET`: creates the alias, or re-targets an existing one (its builds
/// are dropped and mirrored afresh from the new target; routers see the switch).
pub fn alias(tree: &Tree, alias: &str, target: &str, now: i64) -> Result<Change, OpError> {
    check_name(alias)?;
    let mut work = Work::new(tree, "alias", format!("{alias} {target}"));
    work.now = now;
    if alias == target {
        return Err(OpError::SelfReference {
            name: alias.to_owned(),
        });
    }
    let target_channel = work.channel(target)?.clone();
    refuse_chain(&target_channel)?;
    match tree.get(alias) {
        Some(existing) if existing.alias.is_none() => {
            return Err(OpError::ChannelExists {
                name: alias.to_owned(),
            });
        }
        Some(existing) => {
            let previous = existing.alias.clone().unwrap_or_default();
            let channel = work.channel_mut(alias)?;
            channel.alias = Some(target.to_owned());
            if previous != target {
                channel.devices.clear();
            }
            work.say(format!(
                "re-target alias `{alias}` from `{previous}` to `{target}`"
            ));
        }
        None => {
            work.tree.insert(
                alias.to_owned(),
                Channel {
                    name: alias.to_owned(),
                    settings: target_channel.settings.clone(),
                    hidden: false,
                    alias: Some(target.to_owned()),
                    redirect: None,
                    devices: BTreeMap::new(),
                },
            );
            work.say(format!("create alias `{alias}` of `{target}`"));
        }
    }
    Ok(work.finish())
}

/// `channel redirect NAME TARGET [--device DEVICE]`: without a device, `NAME` becomes (or
/// is re-targeted as) a hidden shallow copy of `TARGET`; with one, that device of `NAME` reads
/// `TARGET`'s index.
pub fn redirect(
    tree: &Tree,
    name: &str,
    target: &str,
    device: Option<&DeviceId>,
) -> Result<Change, OpError> {
    let subject = match device {
        Some(device) => format!("{name} {target} {device}"),
        None => format!("{name} {target}"),
    };
    let mut work = Work::new(tree, "redirect", subject);
    if name == target {
        return Err(OpError::SelfReference {
            name: name.to_owned(),
        });
    }
    let target_channel = work.channel(target)?.clone();
    if let Some(further) = &target_channel.redirect {
        return Err(OpError::Chain {
            target: target.to_owned(),
            kind: "a redirect to",
            further: further.clone(),
        });
    }
    let Some(device) = device else {
        check_name(name)?;
        match tree.get(name) {
            Some(existing) if existing.redirect.is_none() => {
                return Err(OpError::ChannelExists {
                    name: name.to_owned(),
                });
            }
            Some(_) => {
                let channel = work.channel_mut(name)?;
                channel.redirect = Some(target.to_owned());
                channel.hidden = true;
            }
            None => {
                work.tree.insert(
                    name.to_owned(),
                    Channel {
                        name: name.to_owned(),
                        settings: target_channel.settings.clone(),
                        hidden: true,
                        alias: None,
                        redirect: Some(target.to_owned()),
                        devices: BTreeMap::new(),
                    },
                );
            }
        }
        work.say(format!("redirect channel `{name}` to `{target}` (hidden)"));
        return Ok(work.finish());
    };
    let id = device.to_string();
    let channel = work.channel(name)?;
    refuse_mirror(channel)?;
    let Some(target_device) = target_channel.devices.get(&id) else {
        return Err(OpError::NoDevice {
            channel: target.to_owned(),
            device: id,
        });
    };
    if let Some(further) = &target_device.redirect {
        return Err(OpError::Chain {
            target: format!("{target} {id}"),
            kind: "a redirect to",
            further: further.clone(),
        });
    }
    if let Some(existing) = channel.devices.get(&id)
        && existing.redirect.is_none()
    {
        return Err(OpError::DeviceExists {
            channel: name.to_owned(),
            device: id,
        });
    }
    let channel = work.channel_mut(name)?;
    let entry = channel.devices.entry(id.clone()).or_default();
    entry.redirect = Some(target.to_owned());
    work.say(format!(
        "redirect device `{id}` of channel `{name}` to channel `{target}`"
    ));
    Ok(work.finish())
}

/// `channel device add NAME DEVICE` (the id already checked and its profile resolved).
pub fn device_add(tree: &Tree, name: &str, device: &DeviceId) -> Result<Change, OpError> {
    let id = device.to_string();
    let mut work = Work::new(tree, "device-add", format!("{name} {id}"));
    refuse_mirror(work.channel(name)?)?;
    let channel = work.channel_mut(name)?;
    if channel.devices.contains_key(&id) {
        return Err(OpError::DeviceExists {
            channel: name.to_owned(),
            device: id,
        });
    }
    channel.devices.insert(id.clone(), Device::default());
    work.say(format!("add device `{id}` to channel `{name}`"));
    Ok(work.finish())
}

/// `channel device remove NAME DEVICE`: its builds go with it, and per-device redirects of
/// other channels to it are removed.
pub fn device_remove(tree: &Tree, name: &str, device: &str) -> Result<Change, OpError> {
    let mut work = Work::new(tree, "device-remove", format!("{name} {device}"));
    refuse_mirror(work.channel(name)?)?;
    work.device(name, device)?;
    if let Some(channel) = work.tree.get_mut(name) {
        channel.devices.remove(device);
    }
    work.say(format!("remove device `{device}` from channel `{name}`"));
    for other in work.tree.values_mut() {
        let pointing = other
            .devices
            .get(device)
            .is_some_and(|entry| entry.redirect.as_deref() == Some(name));
        if pointing {
            other.devices.remove(device);
            work.summary.push(format!(
                "remove the redirect of device `{device}` in `{}`",
                other.name
            ));
        }
    }
    Ok(work.finish())
}

/// `channel phase NAME DEVICE BUILD PERCENT`: the latest build only, 0 (pulled) to 100.
pub fn phase(
    tree: &Tree,
    name: &str,
    device: &str,
    number: u64,
    percent: u64,
) -> Result<Change, OpError> {
    let mut work = Work::new(tree, "phase", format!("{name} {device} {number}"));
    let percentage = u8::try_from(percent)
        .ok()
        .filter(|p| *p <= 100)
        .ok_or(OpError::Percentage { value: percent })?;
    work.latest_only(name, device, number, "phased")?;
    let build = work.build_mut(name, device, number)?;
    let previous = build.phased_percentage;
    build.phased_percentage = percentage;
    work.say(format!(
        "phased percentage of `{name}` `{device}` build {number}: {previous} -> {percentage}{}",
        if percentage == 0 { " (pulled)" } else { "" }
    ));
    Ok(work.finish())
}

/// Most advance steps of a channel.
pub const MAX_ADVANCE_STEPS: usize = 16;

/// Reports a failure rate needs when `halt_min_reports` was never given.
pub const DEFAULT_HALT_MIN_REPORTS: u64 = 10;

/// Booted reports per advance step when `min_successes` was never given.
pub const DEFAULT_MIN_SUCCESSES: u64 = 10;

/// Soak time per advance step when `soak` was never given: a day.
pub const DEFAULT_SOAK_SECONDS: u64 = 86_400;

/// What `channel rollout` changes; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RolloutUpdate {
    /// `Some(None)` turns auto-halt off.
    pub halt_failure_rate: Option<Option<f64>>,
    /// Reports needed before the failure rate counts.
    pub halt_min_reports: Option<u64>,
    /// `Some(None)` turns auto-advance off; `Some(Some(steps))` sets the percentages.
    pub advance_steps: Option<Option<Vec<u64>>>,
    /// Booted reports needed per step.
    pub min_successes: Option<u64>,
    /// Seconds at a step before the next.
    pub soak_seconds: Option<u64>,
}

/// `channel rollout NAME [--halt-failure-rate R] [--halt-min-reports N] [--advance STEPS]
/// [--min-successes N] [--soak DURATION]`: the channel's auto-halt and auto-advance settings
/// (`channels::rollout` acts on them).
pub fn set_rollout(tree: &Tree, name: &str, update: &RolloutUpdate) -> Result<Change, OpError> {
    let mut work = Work::new(tree, "rollout", name.to_owned());
    refuse_mirror(work.channel(name)?)?;
    let mut rollout = work.channel(name)?.settings.rollout.clone();
    if let Some(rate) = update.halt_failure_rate {
        rollout.halt_failure_rate = match rate {
            Some(value) => Some(FailureRate::new(value).ok_or_else(|| OpError::FailureRate {
                value: value.to_string(),
            })?),
            None => None,
        };
        if rollout.halt_failure_rate.is_some() && rollout.halt_min_reports == 0 {
            rollout.halt_min_reports = DEFAULT_HALT_MIN_REPORTS;
        }
    }
    if let Some(reports) = update.halt_min_reports {
        rollout.halt_min_reports = reports;
    }
    if let Some(steps) = &update.advance_steps {
        rollout.advance = match steps {
            Some(steps) => Some(Advance {
                steps: check_steps(steps)?,
                min_successes: rollout
                    .advance
                    .as_ref()
                    .map_or(DEFAULT_MIN_SUCCESSES, |a| a.min_successes),
                soak_seconds: rollout
                    .advance
                    .as_ref()
                    .map_or(DEFAULT_SOAK_SECONDS, |a| a.soak_seconds),
            }),
            None => None,
        };
    }
    if update.min_successes.is_some() || update.soak_seconds.is_some() {
        let advance = rollout.advance.as_mut().ok_or_else(|| OpError::NoAdvance {
            channel: name.to_owned(),
        })?;
        if let Some(successes) = update.min_successes {
            advance.min_successes = successes;
        }
        if let Some(seconds) = update.soak_seconds {
            advance.soak_seconds = seconds;
        }
    }
    let halt = rollout.halt_failure_rate.map_or_else(
        || "off".to_owned(),
        |rate| {
            format!(
                "above {} of at least {} reports",
                rate.get(),
                rollout.halt_min_reports
            )
        },
    );
    let advance = rollout.advance.as_ref().map_or_else(
        || "off".to_owned(),
        |advance| {
            let steps: Vec<String> = advance.steps.iter().map(|s| format!("{s}%")).collect();
            format!(
                "{} after {} successes and {}s at each step",
                steps.join(" -> "),
                advance.min_successes,
                advance.soak_seconds
            )
        },
    );
    work.say(format!(
        "rollout of `{name}`: halt {halt}; advance {advance}"
    ));
    work.channel_mut(name)?.settings.rollout = rollout;
    Ok(work.finish())
}

/// Advance steps rise strictly, each 1 to 100, at most [`MAX_ADVANCE_STEPS`].
fn check_steps(steps: &[u64]) -> Result<Vec<u8>, OpError> {
    let invalid = |rule| OpError::AdvanceSteps {
        steps: steps
            .iter()
            .take(MAX_ADVANCE_STEPS + 1)
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(","),
        rule,
    };
    if steps.is_empty() {
        return Err(invalid("there are none"));
    }
    if steps.len() > MAX_ADVANCE_STEPS {
        return Err(invalid("there are more than 16"));
    }
    let percentages: Vec<u8> = steps
        .iter()
        .map(|step| u8::try_from(*step).ok().filter(|p| (1..=100).contains(p)))
        .collect::<Option<_>>()
        .ok_or_else(|| invalid("each step is a percentage from 1 to 100"))?;
    if percentages
        .windows(2)
        .any(|pair| pair.first() >= pair.get(1))
    {
        return Err(invalid("each step must be above the one before"));
    }
    Ok(percentages)
}

/// `channel tag NAME DEVICE BUILD TAG`: the latest build again under a new number, with
/// `tag=TAG` in its `version_detail` (replacing an older tag) and the same phased percentage.
pub fn tag(
    tree: &Tree,
    name: &str,
    device: &str,
    number: u64,
    tag: &str,
    now: i64,
) -> Result<Change, OpError> {
    check_tag(tag)?;
    let mut work = Work::new(tree, "tag", format!("{name} {device} {number} {tag}"));
    work.now = now;
    work.latest_only(name, device, number, "tagged")?;
    let source = work.build(name, device, number)?.clone();
    let mut detail: Vec<(String, String)> = source
        .version_detail
        .iter()
        .filter(|(key, _)| key != "tag")
        .cloned()
        .collect();
    detail.push(("tag".to_owned(), tag.to_owned()));
    let new = Build {
        version_detail: detail,
        source: BuildSource::Copied {
            channel: name.to_owned(),
            build: number,
        },
        ..source
    };
    let assigned = work.push_build(name, device, new)?;
    work.say(format!(
        "tag `{name}` `{device}` build {number} as `{tag}`: new build {assigned}"
    ));
    Ok(work.finish())
}

/// `channel copy NAME DEVICE BUILD TARGET_CHANNEL`: revert (same channel) or promote, under a
/// new number of the destination, offered to everyone.
pub fn copy(
    tree: &Tree,
    name: &str,
    device: &str,
    number: u64,
    target: &str,
    now: i64,
) -> Result<Change, OpError> {
    let mut work = Work::new(tree, "copy", format!("{name} {device} {number} {target}"));
    work.now = now;
    refuse_mirror(work.channel(name)?)?;
    refuse_mirror(work.channel(target)?)?;
    work.writable_device(target, device)?;
    let source = work.build(name, device, number)?.clone();
    match source.state {
        BuildState::Ready => {}
        BuildState::Pending { .. } => return Err(not_ready(name, device, number, "pending")),
        BuildState::Failed { .. } => return Err(not_ready(name, device, number, "failed")),
    }
    if let Some(latest) = work.device(target, device)?.latest()
        && same_content(latest, &source)
    {
        return Err(OpError::AlreadyLatest {
            channel: name.to_owned(),
            device: device.to_owned(),
            number,
            target: target.to_owned(),
            latest: latest.number,
        });
    }
    let new = Build {
        source: BuildSource::Copied {
            channel: name.to_owned(),
            build: number,
        },
        phased_percentage: 100,
        // The source's stepping stone is a number of the source channel.
        minversion: if name == target {
            source.minversion
        } else {
            None
        },
        ..source
    };
    let assigned = work.push_build(target, device, new)?;
    work.say(format!(
        "copy `{name}` `{device}` build {number} to `{target}` as build {assigned}"
    ));
    Ok(work.finish())
}

/// `channel remove-build NAME DEVICE BUILD`: refused when a newer build's `minversion` needs it
/// as the stepping stone.
pub fn remove_build(tree: &Tree, name: &str, device: &str, number: u64) -> Result<Change, OpError> {
    let mut work = Work::new(tree, "remove-build", format!("{name} {device} {number}"));
    refuse_mirror(work.channel(name)?)?;
    work.writable_device(name, device)?;
    work.build(name, device, number)?;
    if let Some((needed_by, minversion)) =
        stepping_stone_need(work.device(name, device)?, number, &BTreeSet::new())
    {
        return Err(OpError::SteppingStone {
            channel: name.to_owned(),
            device: device.to_owned(),
            number,
            needed_by,
            minversion,
        });
    }
    work.device_mut(name, device)?
        .builds
        .retain(|build| build.number != number);
    work.say(format!("remove `{name}` `{device}` build {number}"));
    Ok(work.finish())
}

/// A build to add with [`add_build`]; it gets the device's next number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBuild {
    /// Built or imported, and from where.
    pub source: BuildSource,
    /// `Ready` (imported) or `Pending` (built).
    pub state: BuildState,
    /// OpenWrt release.
    pub openwrt_version: String,
    /// Its revision, when known.
    pub version_code: String,
    /// The recipe.
    pub recipe: Recipe,
    /// Free text.
    pub description: String,
    /// `version_detail` pairs.
    pub version_detail: Vec<(String, String)>,
    /// The oldest build that may upgrade straight to this one.
    pub minversion: Option<u64>,
    /// Images (imported builds).
    pub images: Vec<ImageFile>,
    /// Whether the images embed the build's stamp.
    pub embeds_stamp: bool,
}

/// `channel build ...`: adds a build under the device's next number (see [`next_number`]).
pub fn add_build(
    tree: &Tree,
    name: &str,
    device: &str,
    new: NewBuild,
    now: i64,
) -> Result<Change, OpError> {
    if new.description.len() > MAX_DESCRIPTION_LEN {
        return Err(OpError::DescriptionTooLong);
    }
    let mut work = Work::new(tree, "build", format!("{name} {device}"));
    work.now = now;
    refuse_mirror(work.channel(name)?)?;
    work.writable_device(name, device)?;
    let number = next_number(work.channel(name)?, work.device(name, device)?);
    if let Some(minversion) = new.minversion
        && minversion >= number
    {
        return Err(OpError::Minversion { minversion, number });
    }
    let build = Build {
        number,
        state: new.state,
        source: new.source,
        openwrt_version: new.openwrt_version,
        version_code: new.version_code,
        recipe: new.recipe,
        description: new.description,
        version_detail: new.version_detail,
        minversion: new.minversion,
        phased_percentage: 100,
        images: new.images,
        created_at: now,
        embeds_stamp: new.embeds_stamp,
    };
    let assigned = work.push_build(name, device, build)?;
    work.target = format!("{name} {device} {assigned}");
    work.say(format!("add `{name}` `{device}` build {assigned}"));
    Ok(work.finish())
}

/// How a pending build ended, for [`settle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// Its images are in the pool.
    Ready {
        /// The images.
        images: Vec<ImageFile>,
        /// The revision the ImageBuilder reported.
        version_code: String,
    },
    /// Its job failed.
    Failed {
        /// Why.
        reason: String,
    },
}

/// Records the end of a pending build (called by [`super::builds::settle`]).
pub fn settle(
    tree: &Tree,
    name: &str,
    device: &str,
    number: u64,
    settled: Settled,
) -> Result<Change, OpError> {
    let mut work = Work::new(tree, "settle", format!("{name} {device} {number}"));
    let build = work.build_mut(name, device, number)?;
    match settled {
        Settled::Ready {
            images,
            version_code,
        } => {
            build.images = images;
            if !version_code.is_empty() {
                build.version_code = version_code;
            }
            build.state = BuildState::Ready;
            work.say(format!("`{name}` `{device}` build {number} is ready"));
        }
        Settled::Failed { reason } => {
            build.state = BuildState::Failed {
                reason: reason.clone(),
            };
            work.say(format!(
                "`{name}` `{device}` build {number} failed: {reason}"
            ));
        }
    }
    Ok(work.finish())
}

/// The number the next build of `device` gets: above every number given so far, and at least
/// the channel's `versionbase`.
pub fn next_number(channel: &Channel, device: &Device) -> u64 {
    let highest = device
        .builds
        .iter()
        .map(|build| build.number)
        .max()
        .unwrap_or(0)
        .max(device.last_build);
    highest.saturating_add(1).max(channel.settings.versionbase)
}

/// A tag is 1 to [`MAX_TAG_LEN`] bytes of `A-Z a-z 0-9 . _ -` (it is published inside
/// `version_detail`, whose separators are `,` and `=`).
pub fn check_tag(tag: &str) -> Result<(), OpError> {
    let invalid = |rule| OpError::InvalidTag {
        tag: tag.chars().take(MAX_TAG_LEN).collect(),
        rule,
    };
    if tag.is_empty() {
        return Err(invalid("it is empty"));
    }
    if tag.len() > MAX_TAG_LEN {
        return Err(invalid("it is longer than 64 bytes"));
    }
    if !tag
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return Err(invalid("only `A-Z a-z 0-9 . _ -` are allowed"));
    }
    Ok(())
}

/// Whether two builds would put the same images on a router: the same imported files, or the
/// same version and recipe built (the stamp aside).
fn same_content(a: &Build, b: &Build) -> bool {
    if a.embeds_stamp != b.embeds_stamp {
        return false;
    }
    if a.embeds_stamp {
        return a.openwrt_version == b.openwrt_version
            && a.version_code == b.version_code
            && a.recipe == b.recipe;
    }
    let digests = |build: &Build| -> BTreeSet<String> {
        build
            .images
            .iter()
            .map(|image| image.sha256.clone())
            .collect()
    };
    digests(a) == digests(b)
}

/// The newer build (and its minversion) that would lose its last stepping stone if `number`
/// and the builds in `removed` were gone. A build `M` with `minversion m` needs some build `b`
/// with `m <= b < M` for routers older than `m`: they first upgrade to `b`, then to `M`.
fn stepping_stone_need(
    device: &Device,
    number: u64,
    removed: &BTreeSet<u64>,
) -> Option<(u64, u64)> {
    let kept = |build: &&Build| {
        build.number != number
            && !removed.contains(&build.number)
            && !matches!(build.state, BuildState::Failed { .. })
    };
    device.builds.iter().filter(kept).find_map(|newer| {
        let minversion = newer.minversion?;
        if newer.number <= number || minversion > number {
            return None;
        }
        let another = device
            .builds
            .iter()
            .filter(kept)
            .any(|b| b.number >= minversion && b.number < newer.number);
        (!another).then_some((newer.number, minversion))
    })
}

/// `fullcount` expiry of one device: the oldest builds beyond `fullcount` go, never the latest
/// and never a stepping stone; failed builds older than the oldest kept one go with them.
fn expire(device: &mut Device, fullcount: u32) -> Vec<u64> {
    let Ok(fullcount) = usize::try_from(fullcount) else {
        return Vec::new();
    };
    if fullcount == 0 {
        return Vec::new();
    }
    let latest = device.latest().map(|build| build.number);
    let live: Vec<u64> = device
        .builds
        .iter()
        .filter(|build| !matches!(build.state, BuildState::Failed { .. }))
        .map(|build| build.number)
        .collect();
    let mut excess = live.len().saturating_sub(fullcount);
    let mut removed = BTreeSet::new();
    // Oldest first; after each removal start over, because a build kept as a stepping stone
    // may be free once the newer build that needed it is gone.
    while excess > 0 {
        let Some(number) = live.iter().copied().find(|number| {
            !removed.contains(number)
                && Some(*number) != latest
                && stepping_stone_need(device, *number, &removed).is_none()
        }) else {
            break;
        };
        removed.insert(number);
        excess -= 1;
    }
    let oldest_kept = device
        .builds
        .iter()
        .filter(|build| {
            !removed.contains(&build.number) && !matches!(build.state, BuildState::Failed { .. })
        })
        .map(|build| build.number)
        .min();
    for build in &device.builds {
        if matches!(build.state, BuildState::Failed { .. })
            && oldest_kept.is_some_and(|oldest| build.number < oldest)
        {
            removed.insert(build.number);
        }
    }
    device
        .builds
        .retain(|build| !removed.contains(&build.number));
    removed.into_iter().collect()
}

fn refuse_mirror(channel: &Channel) -> Result<(), OpError> {
    if let Some(target) = &channel.alias {
        return Err(OpError::Mirrored {
            channel: channel.name.clone(),
            kind: "an alias of",
            target: target.clone(),
        });
    }
    if let Some(target) = &channel.redirect {
        return Err(OpError::Mirrored {
            channel: channel.name.clone(),
            kind: "a redirect to",
            target: target.clone(),
        });
    }
    Ok(())
}

fn refuse_chain(target: &Channel) -> Result<(), OpError> {
    match (&target.alias, &target.redirect) {
        (Some(further), _) => Err(OpError::Chain {
            target: target.name.clone(),
            kind: "an alias of",
            further: further.clone(),
        }),
        (None, Some(further)) => Err(OpError::Chain {
            target: target.name.clone(),
            kind: "a redirect to",
            further: further.clone(),
        }),
        (None, None) => Ok(()),
    }
}

fn not_ready(channel: &str, device: &str, number: u64, state: &'static str) -> OpError {
    OpError::NotReady {
        channel: channel.to_owned(),
        device: device.to_owned(),
        number,
        state,
    }
}

fn kind_name(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::Manual => "manual",
        ChannelKind::Auto => "auto",
    }
}

/// A working copy of the tree an operation edits, and what it has said so far.
struct Work<'a> {
    original: &'a Tree,
    tree: Tree,
    operation: &'static str,
    target: String,
    summary: Vec<String>,
    rebuilds: Vec<BuildRef>,
    now: i64,
}

impl<'a> Work<'a> {
    fn new(original: &'a Tree, operation: &'static str, target: String) -> Self {
        Self {
            original,
            tree: original.clone(),
            operation,
            target,
            summary: Vec::new(),
            rebuilds: Vec::new(),
            now: 0,
        }
    }

    fn say(&mut self, line: String) {
        self.summary.push(line);
    }

    fn channel(&self, name: &str) -> Result<&Channel, OpError> {
        self.tree.get(name).ok_or_else(|| OpError::NoChannel {
            name: name.to_owned(),
        })
    }

    fn channel_mut(&mut self, name: &str) -> Result<&mut Channel, OpError> {
        self.tree.get_mut(name).ok_or_else(|| OpError::NoChannel {
            name: name.to_owned(),
        })
    }

    fn device(&self, name: &str, device: &str) -> Result<&Device, OpError> {
        self.channel(name)?
            .devices
            .get(device)
            .ok_or_else(|| OpError::NoDevice {
                channel: name.to_owned(),
                device: device.to_owned(),
            })
    }

    fn device_mut(&mut self, name: &str, device: &str) -> Result<&mut Device, OpError> {
        self.channel_mut(name)?
            .devices
            .get_mut(device)
            .ok_or_else(|| OpError::NoDevice {
                channel: name.to_owned(),
                device: device.to_owned(),
            })
    }

    /// The device, refused when it is a per-device redirect.
    fn writable_device(&self, name: &str, device: &str) -> Result<&Device, OpError> {
        let entry = self.device(name, device)?;
        if let Some(target) = &entry.redirect {
            return Err(OpError::DeviceRedirected {
                channel: name.to_owned(),
                device: device.to_owned(),
                target: target.clone(),
            });
        }
        Ok(entry)
    }

    fn build(&self, name: &str, device: &str, number: u64) -> Result<&Build, OpError> {
        self.device(name, device)?
            .build(number)
            .ok_or_else(|| OpError::NoBuild {
                channel: name.to_owned(),
                device: device.to_owned(),
                number,
            })
    }

    fn build_mut(&mut self, name: &str, device: &str, number: u64) -> Result<&mut Build, OpError> {
        self.device_mut(name, device)?
            .builds
            .iter_mut()
            .find(|build| build.number == number)
            .ok_or_else(|| OpError::NoBuild {
                channel: name.to_owned(),
                device: device.to_owned(),
                number,
            })
    }

    fn latest_only(
        &self,
        name: &str,
        device: &str,
        number: u64,
        action: &'static str,
    ) -> Result<(), OpError> {
        refuse_mirror(self.channel(name)?)?;
        let entry = self.writable_device(name, device)?;
        self.build(name, device, number)?;
        let latest = entry.latest().map_or(0, |build| build.number);
        if latest != number {
            return Err(OpError::NotLatest {
                channel: name.to_owned(),
                device: device.to_owned(),
                number,
                latest,
                action,
            });
        }
        Ok(())
    }

    /// Adds `build` under the device's next number (a build whose images embed the stamp is
    /// rebuilt: pending, listed in `rebuilds`), then expires old builds. Returns the number.
    fn push_build(&mut self, name: &str, device: &str, mut build: Build) -> Result<u64, OpError> {
        let number = next_number(self.channel(name)?, self.device(name, device)?);
        build.number = number;
        build.created_at = self.now;
        if build.embeds_stamp {
            build.state = BuildState::Pending {
                request_hash: String::new(),
            };
            build.images.clear();
            self.rebuilds.push(BuildRef {
                channel: name.to_owned(),
                device: device.to_owned(),
                number,
            });
        }
        let fullcount = self.channel(name)?.settings.fullcount;
        let entry = self.device_mut(name, device)?;
        entry.builds.push(build);
        entry.last_build = number;
        let expired = expire(entry, fullcount);
        if !expired.is_empty() {
            let list: Vec<String> = expired.iter().map(u64::to_string).collect();
            self.summary.push(format!(
                "expire `{name}` `{device}` builds {} (fullcount {fullcount})",
                list.join(", ")
            ));
        }
        Ok(number)
    }

    /// Lists the pending builds of `name` whose images embed the stamp as rebuilds (a new job
    /// with the stamp as it is now); the job submitted before is left to finish unused.
    fn restamp_pending(&mut self, name: &str) {
        let Some(channel) = self.tree.get_mut(name) else {
            return;
        };
        for (id, device) in &mut channel.devices {
            for build in &mut device.builds {
                if build.embeds_stamp && matches!(build.state, BuildState::Pending { .. }) {
                    build.state = BuildState::Pending {
                        request_hash: String::new(),
                    };
                    self.rebuilds.push(BuildRef {
                        channel: name.to_owned(),
                        device: id.clone(),
                        number: build.number,
                    });
                }
            }
        }
    }

    /// Re-syncs every alias and redirect with its target, then returns what differs from the
    /// original tree.
    fn finish(mut self) -> Change {
        let mirrors: Vec<String> = self
            .tree
            .values()
            .filter(|channel| channel.alias.is_some() || channel.redirect.is_some())
            .map(|channel| channel.name.clone())
            .collect();
        for name in mirrors {
            self.sync(&name);
        }
        let names: BTreeSet<&String> = self.tree.keys().chain(self.original.keys()).collect();
        let touched: BTreeMap<String, Option<Channel>> = names
            .into_iter()
            .filter(|name| self.tree.get(*name) != self.original.get(*name))
            .map(|name| (name.clone(), self.tree.get(name).cloned()))
            .collect();
        Change {
            operation: self.operation,
            target: self.target,
            summary: self.summary,
            touched,
            rebuilds: self.rebuilds,
        }
    }

    fn sync(&mut self, name: &str) {
        let Some(channel) = self.tree.get(name) else {
            return;
        };
        if let Some(target) = channel.redirect.clone() {
            let devices: BTreeMap<String, Device> = self
                .tree
                .get(&target)
                .map(|t| {
                    t.devices
                        .keys()
                        .map(|id| (id.clone(), Device::default()))
                        .collect()
                })
                .unwrap_or_default();
            if let Some(channel) = self.tree.get_mut(name) {
                channel.devices = devices;
            }
        } else if let Some(target) = channel.alias.clone() {
            self.sync_alias(name, &target);
        }
    }

    /// Mirrors `target`'s devices and (not failed) builds into the alias `name` under the same
    /// numbers; a new mirrored build whose images embed the stamp is rebuilt.
    fn sync_alias(&mut self, name: &str, target: &str) {
        let Some(target_channel) = self.tree.get(target).cloned() else {
            return;
        };
        let Some(alias) = self.tree.get_mut(name) else {
            return;
        };
        alias
            .devices
            .retain(|id, _| target_channel.devices.contains_key(id));
        let mut rebuilds = Vec::new();
        for (id, source) in &target_channel.devices {
            let entry = alias.devices.entry(id.clone()).or_default();
            entry.redirect.clone_from(&source.redirect);
            entry.last_build = entry.last_build.max(source.last_build);
            let wanted: Vec<&Build> = source
                .builds
                .iter()
                .filter(|build| !matches!(build.state, BuildState::Failed { .. }))
                .collect();
            entry
                .builds
                .retain(|build| wanted.iter().any(|w| w.number == build.number));
            for original in wanted {
                if let Some(mirrored) = entry
                    .builds
                    .iter_mut()
                    .find(|b| b.number == original.number)
                {
                    mirrored.phased_percentage = original.phased_percentage;
                    mirrored.description.clone_from(&original.description);
                    mirrored.minversion = original.minversion;
                    mirrored.version_detail.clone_from(&original.version_detail);
                    if !original.embeds_stamp {
                        mirrored.images.clone_from(&original.images);
                        mirrored.state = original.state.clone();
                    }
                    continue;
                }
                let mut copy = Build {
                    source: BuildSource::Copied {
                        channel: target.to_owned(),
                        build: original.number,
                    },
                    ..original.clone()
                };
                if copy.embeds_stamp {
                    copy.state = BuildState::Pending {
                        request_hash: String::new(),
                    };
                    copy.images.clear();
                    rebuilds.push(BuildRef {
                        channel: name.to_owned(),
                        device: id.clone(),
                        number: original.number,
                    });
                }
                entry.builds.push(copy);
            }
            entry.builds.sort_by_key(|build| build.number);
        }
        self.rebuilds.extend(rebuilds);
    }
}

#[cfg(test)]
mod tests;
