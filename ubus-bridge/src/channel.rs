//! Release channels seen from ubus: the call arguments `channel` and `percentage`, the `channel`
//! part of a `check` reply, and the phase `info` shows.
//!
//! The planning itself (verified metadata, where the router stands, scored paths, the phase) is
//! the agent's ([`attendant::channel::plan`] through [`Engine::channel_plan`]); this module only
//! words its [`ChannelPlan`] for LuCI:
//!
//! ```json
//! {"name": "stable", "current_build": 5, "target_build": 6, "openwrt_version": "24.10.5",
//!  "description": "…", "older_openwrt": false,
//!  "newest": {"build": 7, "openwrt_version": "24.10.6", "description": "…"},
//!  "phase": 42, "phased_percentage": 40, "phased_in": false, "next_phase_at": 42,
//!  "prebuilt": false, "extra_packages": ["htop"], "redirect": null,
//!  "paths": [{"builds": [7], "score": 100, "download_bytes": 12345678}]}
//! ```
//!
//! Two builds can matter to a router: the one it would get now, and the newest one, which a
//! phased rollout may not have reached it yet. A script installs the first and a person wants
//! to know when the second comes, so they are reported apart:
//!
//! - `target_build`: the build `start` would end on — the end of the winning path — `null`
//!   when there is nothing to take (up to date, or every newer build phased out or pulled). A
//!   router phased out of the newest build may still be offered an older one (the fallback),
//!   so `phased_in` false does not imply a null `target_build`.
//! - `openwrt_version`, `description`: of `target_build`; without one, of `newest` (the build
//!   the router waits for), so a notice can still name it.
//! - `newest`: the build the phase fields are about — the newest build a path reaches, or,
//!   when no build is newer than the running one, the channel's newest — with its OpenWrt
//!   version and description; `null` when the channel has no build for this device.
//! - `phase`, `phased_percentage`, `phased_in`: the router's place in the rollout of `newest`.
//!   `next_phase_at`: when phased out of a build that is rolling out, the percentage at which
//!   this router's turn comes (its phase); `null` otherwise, and for a pulled build (0 %),
//!   whose turn never comes.
//! - `prebuilt`, `extra_packages`: how the next build of the winning path reaches the router,
//!   decided as the agent decides it ([`Engine::channel_route`]): the published image
//!   (`prebuilt` true) when the router has no package beyond the build's recipe, or with the
//!   `prebuilt` argument; otherwise an image built for it, and `extra_packages` names the
//!   packages the published image lacks. When that cannot be found out (a server that
//!   publishes channel files only has no build API to compare the packages with), `prebuilt`
//!   says whether a published image exists, `extra_packages` is empty and the reply's
//!   `warnings` say why — as the CLI's `check` does. A server that refuses the uci-defaults
//!   script such a build needs gives `prebuilt` false with the packages and a warning:
//!   `start` would fail, and `prebuilt` takes the published image without them.
//! - `redirect`: the channel the router follows after the upgrade when the one asked for
//!   redirects there.
//!
//! `info` has no network, so its `channel.phase` comes from the newest build of the channel
//! that the last `check` or `channels` call verified, kept in
//! `/var/run/attendant/channel-latest.json` (gone after a reboot, like the check cache);
//! `null` until one of them ran.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use attendant::Engine;
use attendant::atomic::write_atomic;
use attendant::channel::attended::ChannelRoute;
use attendant::channel::{ChannelError, ChannelPlan, ChannelRequest, image_file, machine, phase};
use attendant::config::Settings;
use attendant::facts::Device;
use attendant_proto::version::Version;
use serde_json::{Value, json};

use crate::error::BridgeError;
use crate::jobs::{STATE_DIR, StartOptions};
use crate::protocol::Arguments;

/// The file of the newest builds seen, in [`STATE_DIR`].
pub const LATEST_FILE: &str = "channel-latest.json";

/// Largest [`LATEST_FILE`] read.
const MAX_LATEST_FILE_LEN: u64 = 64 * 1024;

/// Most channels remembered in [`LATEST_FILE`]; a router sees a handful.
const MAX_LATEST_ENTRIES: usize = 64;

/// The `channel` argument: a channel name as the channel metadata allows it; `""` or absent is
/// none.
pub fn channel_argument(arguments: &Arguments) -> Result<Option<String>, BridgeError> {
    let Some(name) = arguments.string("channel")?.filter(|name| !name.is_empty()) else {
        return Ok(None);
    };
    check_name(&name)?;
    Ok(Some(name))
}

/// Refuses what is not a channel name, naming the argument `channel`.
pub fn check_name(name: &str) -> Result<(), BridgeError> {
    attendant_proto::channel::field::channel_name(name).map_err(|_| {
        BridgeError::InvalidArgument {
            argument: "channel",
            expected: "a channel name (lowercase letters, digits and `._/-`, starting with a letter or digit, at most 128 bytes)",
            found: format!(
                "`{}`",
                attendant_proto::excerpt::excerpt(name, attendant_proto::excerpt::MAX_VALUE_CHARS)
            ),
        }
    })
}

/// The `percentage` argument: 0 to 100.
pub fn percentage_argument(arguments: &Arguments) -> Result<Option<u8>, BridgeError> {
    let Some(percentage) = arguments.u32("percentage")? else {
        return Ok(None);
    };
    u8::try_from(percentage)
        .ok()
        .filter(|p| *p <= phase::MAX_PHASE)
        .map(Some)
        .ok_or_else(|| BridgeError::InvalidArgument {
            argument: "percentage",
            expected: "a percentage from 0 to 100",
            found: format!("`{percentage}`"),
        })
}

/// The channel a call uses — its `channel` argument, else the configured one — or `None`
/// when no channel is in use (then `percentage` is refused: it means nothing without one).
pub fn request(
    settings: &Settings,
    options: &StartOptions,
) -> Result<Option<ChannelRequest>, BridgeError> {
    let Some(name) = options.channel.clone().or_else(|| settings.channel.clone()) else {
        return match options.percentage {
            Some(percentage) => Err(BridgeError::InvalidArgument {
                argument: "percentage",
                expected: "given only with a channel (the `channel` argument or a configured one)",
                found: format!("`{percentage}`"),
            }),
            None => Ok(None),
        };
    };
    let mut request = ChannelRequest::default();
    request.channel = Some(name);
    request.percentage = options.percentage;
    Ok(Some(request))
}

/// The `check` reply for a channel: the fields of the build-API reply, filled from the plan
/// (no package table: the build's recipe decides the packages; `summary` is the caller's count
/// of no packages), plus `channel`. `route`: the agent's answer to how the next build reaches
/// the router ([`Engine::channel_route`]); a failure becomes a warning.
pub fn check_reply(
    summary: BTreeMap<&'static str, u64>,
    engine: &Engine,
    device: &Device,
    plan: &ChannelPlan,
    request: &ChannelRequest,
    route: &Result<Option<ChannelRoute>, attendant::Error>,
) -> Value {
    let target = plan.target();
    let warnings: Vec<Value> = match route {
        Ok(_) => Vec::new(),
        Err(error) => vec![json!({
            "message": format!("cannot compare this router's packages with the build's recipe: {error}"),
        })],
    };
    let version = target.map_or(device.version.as_str(), |t| t.openwrt_version.as_str());
    let branch = Version::parse(version).map_or_else(|_| String::new(), |v| v.branch().to_string());
    let mut reply = json!({
        "verdict": if target.is_some() { "upgrade_available" } else { "up_to_date" },
        "server": engine.settings().server,
        "current": {"version": device.version, "revision": device.revision},
        "target": {
            "version": version,
            "branch": branch,
            "version_code": target.map_or(device.revision.as_str(), |t| t.version_code.as_str()),
        },
        "offered": [],
        "profile": device.profile(),
        "packages": [],
        "summary": summary,
        "renamed": [],
        "removed": [],
        "missing_defaults": [],
        "warnings": warnings,
        "problems": [],
        "channel": channel_object(engine.root(), device, plan, request, route),
    });
    if let (Some(file), Some(object)) = (
        target.and_then(|t| image_file(t, device)),
        reply.as_object_mut(),
    ) {
        object.insert(
            "image".to_owned(),
            json!({"name": file.name, "type": file.image_type, "filesystem": file.filesystem}),
        );
    }
    reply
}

/// The reply's `channel` object (module docs).
fn channel_object(
    root: &Path,
    device: &Device,
    plan: &ChannelPlan,
    request: &ChannelRequest,
    route: &Result<Option<ChannelRoute>, attendant::Error>,
) -> Value {
    let newest = plan.newest().or(plan.index.images.last());
    let shown = plan.target().or(newest);
    let (phase, percentage, phased_in) = match plan.decision.rollout {
        Some(rollout) => (
            Some(rollout.phase),
            Some(rollout.percentage),
            rollout.phased_in,
        ),
        None => (
            newest.and_then(|image| phase_of(root, &plan.name, image.version, request.percentage)),
            newest.map(|image| {
                image
                    .phased_percentage
                    .unwrap_or(attendant::channel::paths::FULL_ROLLOUT)
            }),
            true,
        ),
    };
    let next_phase_at = match (phased_in, percentage) {
        (false, Some(p)) if p > 0 => phase,
        _ => None,
    };
    let (prebuilt, extra_packages) = match route {
        Ok(Some(ChannelRoute::Attended { extra, .. })) => (false, extra.clone()),
        Ok(Some(ChannelRoute::Prebuilt)) => (true, Vec::new()),
        // The packages were compared; only the build for them is refused, so `start` fails.
        Err(attendant::Error::Channel(ChannelError::ScriptsRefused { extra, .. })) => {
            (false, extra.clone())
        }
        Ok(None) | Err(_) => (
            plan.target()
                .is_some_and(|t| image_file(t, device).is_some()),
            Vec::new(),
        ),
    };
    json!({
        "name": plan.name,
        "current_build": plan.current_build,
        "target_build": plan.target().map(|t| t.version),
        "openwrt_version": shown.map_or("", |i| i.openwrt_version.as_str()),
        "description": shown.map_or("", |i| i.description.as_str()),
        "older_openwrt": plan.older_openwrt(),
        "newest": newest.map(|image| json!({
            "build": image.version,
            "openwrt_version": image.openwrt_version,
            "description": image.description,
        })),
        "phase": phase,
        "phased_percentage": percentage,
        "phased_in": phased_in,
        "next_phase_at": next_phase_at,
        "prebuilt": prebuilt,
        "extra_packages": extra_packages,
        "redirect": plan.redirected_from.as_ref().map(|_| plan.name.clone()),
        "paths": plan.decision.paths,
    })
}

/// The router's phase for `build` of `channel`, or the override; `None` when the machine-id
/// cannot be read or made.
fn phase_of(root: &Path, channel: &str, build: u64, percentage: Option<u8>) -> Option<u8> {
    if let Some(percentage) = percentage {
        return Some(percentage);
    }
    match machine::machine_id(root) {
        Ok(id) => Some(phase::phase(channel, build, &id)),
        Err(error) => {
            log::warn!("no phase: {error}");
            None
        }
    }
}

/// The newest build of each channel seen in verified metadata ([`LATEST_FILE`]).
#[derive(Debug)]
pub struct LatestSeen {
    path: PathBuf,
}

impl LatestSeen {
    /// The file of the router under `root`.
    pub fn new(root: &Path) -> Self {
        Self {
            path: attendant_proto::wire::under_root(root, STATE_DIR).join(LATEST_FILE),
        }
    }

    fn load(&self) -> BTreeMap<String, u64> {
        attendant::atomic::read_small(&self.path, MAX_LATEST_FILE_LEN)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// Remembers `build` as the newest of `channel`. Only a hint for `info`, so a failure to
    /// write is logged, not returned.
    pub fn record(&self, seen: impl IntoIterator<Item = (String, u64)>) {
        let mut latest = self.load();
        let before = latest.clone();
        for (channel, build) in seen {
            latest.insert(channel, build);
        }
        if latest == before {
            return;
        }
        while latest.len() > MAX_LATEST_ENTRIES {
            let Some(first) = latest.keys().next().cloned() else {
                break;
            };
            latest.remove(&first);
        }
        let written = self
            .path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| {
                write_atomic(&self.path, &serde_json::to_vec(&latest).unwrap_or_default())
            });
        if let Err(error) = written {
            log::warn!("cannot write `{}`: {error}", self.path.display());
        }
    }

    /// The router's phase for the newest build of `channel` seen, if one was.
    pub fn phase(&self, root: &Path, channel: &str) -> Option<u8> {
        let build = *self.load().get(channel)?;
        phase_of(root, channel, build, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::parse_request;

    #[test]
    fn arguments_are_checked_and_an_empty_channel_is_none() {
        let none = parse_request(br#"{"channel": ""}"#).unwrap();
        assert_eq!(channel_argument(&none).unwrap(), None);
        let named = parse_request(br#"{"channel": "lab/canary", "percentage": 100}"#).unwrap();
        assert_eq!(
            channel_argument(&named).unwrap().as_deref(),
            Some("lab/canary")
        );
        assert_eq!(percentage_argument(&named).unwrap(), Some(100));
        let bad = parse_request(br#"{"channel": "../etc", "percentage": 101}"#).unwrap();
        assert!(
            channel_argument(&bad)
                .unwrap_err()
                .to_string()
                .starts_with("argument `channel` must be a channel name"),
        );
        assert_eq!(
            percentage_argument(&bad).unwrap_err().to_string(),
            "argument `percentage` must be a percentage from 0 to 100, got `101`"
        );
    }

    #[test]
    fn a_percentage_needs_a_channel() {
        let mut options = StartOptions {
            percentage: Some(5),
            ..StartOptions::default()
        };
        let settings = Settings::default();
        assert!(
            request(&settings, &options)
                .unwrap_err()
                .to_string()
                .contains("only with a channel")
        );
        options.percentage = None;
        assert_eq!(request(&settings, &options).unwrap(), None);
        let mut configured = Settings::default();
        configured.channel = Some("stable".to_owned());
        let request = request(&configured, &options).unwrap().unwrap();
        assert_eq!(request.channel.as_deref(), Some("stable"));
    }

    #[test]
    fn the_newest_builds_seen_give_the_phase() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::write(root.path().join("etc/machine-id"), "0123456789abcdef\n").unwrap();
        let seen = LatestSeen::new(root.path());
        assert_eq!(seen.phase(root.path(), "stable"), None);
        seen.record([("stable".to_owned(), 7)]);
        assert_eq!(
            seen.phase(root.path(), "stable"),
            Some(phase::phase("stable", 7, "0123456789abcdef"))
        );
        assert_eq!(seen.phase(root.path(), "beta"), None);
    }
}
