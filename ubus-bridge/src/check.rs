//! `check`, and the translation of call arguments into the agent's plan options.
//!
//! `check` runs the agent's pre-build checks ([`attendant::Engine::check`]) and answers with a
//! structured result the LuCI app shows before anything is built:
//!
//! ```json
//! {"verdict": "upgrade_available", "server": "https://sysupgrade.openwrt.org",
//!  "current": {"version": "24.10.4", "revision": "r28427-6df0e3d02a"},
//!  "target": {"version": "24.10.6", "branch": "24.10", "version_code": "r28959-29397011cc"},
//!  "offered": ["24.10.6", "24.10.5"], "profile": "tplink_archer-c7-v5",
//!  "image": {"name": "...", "type": "sysupgrade", "filesystem": "squashfs"},
//!  "packages": [{"name": "luci", "installed": "...", "available": "...", "change": "upgrade", "requested": true}],
//!  "summary": {"upgrade": 1, "downgrade": 0, "same": 40, "missing": 0, "new": 0, "indeterminate": 0},
//!  "renamed": [{"from": "a", "to": "b", "revision": 27000}], "removed": [{"name": "c", "revision": 27000}],
//!  "missing_defaults": ["kmod-usb3"],
//!  "warnings": [{"message": "default package `kmod-usb3` is not installed and will not be in the image",
//!                "hint": {"code": "ignored_defaults", "message": "add the package with `add`, ..."}}],
//!  "problems": [], "checked_at": 1767225600, "cached": false, "channel": null}
//! ```
//!
//! `channel` is null without a release channel; with one, the reply is the channel's offer
//! ([`crate::channel::check_reply`]).
//!
//! `installed`/`available` are `""` when unknown; `image` is left out when no image fits.
//! Problems are part of the answer (`verdict: "blocked"`), not an error: the checks ran.
//! Warnings and problems are worded by [`crate::hint`], without the agent's flags. The offer
//! and the checks come from one fetch of `overview.json` (the engine keeps it). With `max_age`
//! a recent stored answer is reused ([`crate::check_cache`]); `checked_at` and `cached` say
//! when the answer was made and whether it was reused. A failed check is stored and reused the
//! same way; its error object carries `checked_at` and `cached`.

use std::collections::BTreeMap;

use attendant::channel::ChannelRequest;
use attendant::config::{Settings, split_names};
use attendant::options::{PlanArgs, PlanOptions};
use attendant::plan::VersionChange;
use attendant::{Check, Engine};
use serde_json::{Value, json};

use crate::channel::{self, LatestSeen};
use crate::check_cache::CheckCache;
use crate::context::Context;
use crate::error::{self, BridgeError};
use crate::hint;
use crate::jobs::StartOptions;
use crate::protocol::Arguments;

/// `check {version?, add?, remove?, fstype?, rootfs_size?, force?, channel?, percentage?,
/// max_age?}`; `max_age` accepts a stored result that young ([`CheckCache`]), an error reply
/// included. With a channel (the argument or the configured one) the offer is the channel's
/// ([`crate::channel`]); the build-API arguments are then not used.
///
/// Errors found before the server is asked (arguments, configuration, the init script) are
/// returned as such; everything from the engine, failures included, goes through the cache.
/// A failure is stored like an answer because LuCI's Status page asks every 5 s with
/// `max_age`: while the server is down or answers errors, that must not turn into a question
/// to the server every 5 s.
pub fn check(context: &Context, arguments: &Arguments) -> Result<Value, BridgeError> {
    let max_age = arguments.u32("max_age")?;
    let options = start_options(arguments, false)?;
    let settings = Settings::load(&context.root).map_err(attendant::Error::from)?;
    let engine = Engine::new(&context.root, settings);
    let plan = plan_options(&engine, &options)?;
    let cache = CheckCache::new(
        &context.root,
        &options,
        engine.settings(),
        plan.init_script.as_deref(),
    );
    if let Some(reply) = cache.fresh(max_age) {
        return Ok(reply);
    }
    let asked = match channel::request(engine.settings(), &options)? {
        Some(request) => ask_channel(&engine, &request, options.prebuilt),
        None => ask(&engine, &plan),
    };
    let reply = match asked {
        Ok(reply) => reply,
        Err(failure) => error::reply(&failure),
    };
    Ok(cache.store(reply))
}

/// The engine's check and the versions the server offers, as the `check` answer.
fn ask(engine: &Engine, plan: &PlanOptions) -> Result<Value, BridgeError> {
    let client = engine.client()?;
    let overview = engine.overview(&client)?;
    let offered: Vec<String> = overview
        .branches
        .values()
        .filter(|branch| branch.enabled)
        .flat_map(|branch| branch.versions.iter().cloned())
        .collect();
    let check = engine.check(plan)?;
    Ok(check_reply(&check, &offered))
}

/// The channel's offer as the `check` answer, with the route the agent would take to the next
/// build (`prebuilt`: the published image, as `start` with `prebuilt` would); the newest build
/// seen is kept for `info`.
fn ask_channel(
    engine: &Engine,
    request: &ChannelRequest,
    prebuilt: bool,
) -> Result<Value, BridgeError> {
    let device = engine.device()?;
    let plan = engine.channel_plan(&device, request)?;
    if let Some(newest) = plan.index.images.last() {
        LatestSeen::new(engine.root()).record([(plan.name.clone(), newest.version)]);
    }
    let route = engine.channel_route(&plan, &device, prebuilt);
    Ok(channel::check_reply(
        zero_summary(),
        engine,
        &device,
        &plan,
        request,
        &route,
    ))
}

/// The arguments `check` and `start` share; `start` also takes `keep_settings`.
pub fn start_options(arguments: &Arguments, with_keep: bool) -> Result<StartOptions, BridgeError> {
    let rootfs_size = arguments.u32("rootfs_size")?;
    if rootfs_size == Some(0) {
        return Err(BridgeError::InvalidArgument {
            argument: "rootfs_size",
            expected: "a size in MB, at least 1",
            found: "`0`".to_owned(),
        });
    }
    Ok(StartOptions {
        version: arguments.string("version")?.filter(|v| !v.is_empty()),
        add: split_names(
            arguments
                .strings("add")?
                .unwrap_or_default()
                .iter()
                .map(String::as_str),
        ),
        remove: split_names(
            arguments
                .strings("remove")?
                .unwrap_or_default()
                .iter()
                .map(String::as_str),
        ),
        fstype: arguments.string("fstype")?.filter(|f| !f.is_empty()),
        rootfs_size,
        keep_settings: if with_keep {
            arguments.bool("keep_settings")?
        } else {
            None
        },
        force: arguments.bool("force")?.unwrap_or(false),
        channel: channel::channel_argument(arguments)?,
        percentage: channel::percentage_argument(arguments)?,
        prebuilt: arguments.bool("prebuilt")?.unwrap_or(false),
    })
}

/// The agent's plan options: the call's options over the configuration's defaults, merged as
/// the CLI merges its flags ([`PlanOptions::merge`]).
pub fn plan_options(engine: &Engine, options: &StartOptions) -> Result<PlanOptions, BridgeError> {
    let mut args = PlanArgs::default();
    args.version_to = options.version.clone();
    args.add = options.add.clone();
    args.remove = options.remove.clone();
    args.fstype = options.fstype.clone();
    args.rootfs_size = options.rootfs_size;
    args.force = options.force;
    let plan = PlanOptions::merge(engine.settings(), engine.root(), args)?;
    if plan.force {
        log::warn!("force: downgrades and unchanged builds are allowed");
    }
    Ok(plan)
}

/// The structured `check` answer.
pub fn check_reply(check: &Check, offered: &[String]) -> Value {
    let mut summary = zero_summary();
    let packages: Vec<Value> = check
        .packages
        .iter()
        .map(|row| {
            let change = change_name(row.change);
            if let Some(count) = summary.get_mut(change) {
                *count = count.saturating_add(1);
            }
            json!({
                "name": row.name,
                "installed": row.installed.clone().unwrap_or_default(),
                "available": row.available.clone().unwrap_or_default(),
                "change": change,
                "requested": row.requested,
            })
        })
        .collect();
    let renamed: Vec<Value> = check
        .package_changes
        .iter()
        .filter_map(|c| {
            c.target
                .as_ref()
                .map(|to| json!({"from": c.source, "to": to, "revision": c.revision}))
        })
        .collect();
    let removed: Vec<Value> = check
        .package_changes
        .iter()
        .filter(|c| c.target.is_none())
        .map(|c| json!({"name": c.source, "revision": c.revision}))
        .collect();
    let mut reply = json!({
        "verdict": verdict_name(check),
        "server": check.server,
        "current": {"version": check.device.version, "revision": check.device.revision},
        "target": {
            "version": check.target.version,
            "branch": check.target.branch,
            "version_code": check.version_code,
        },
        "offered": offered,
        "profile": check.profile,
        "packages": packages,
        "summary": summary,
        "renamed": renamed,
        "removed": removed,
        "missing_defaults": check.missing_defaults,
        "warnings": hint::findings(&check.warnings),
        "problems": hint::findings(&check.problems),
        "channel": null,
    });
    if let (Some(image), Some(object)) = (&check.image, reply.as_object_mut()) {
        object.insert(
            "image".to_owned(),
            json!({
                "name": image.name,
                "type": image.image_type.as_str(),
                "filesystem": image.filesystem,
            }),
        );
    }
    reply
}

/// The `summary` object with every kind of change at 0.
fn zero_summary() -> BTreeMap<&'static str, u64> {
    [
        "upgrade",
        "downgrade",
        "same",
        "missing",
        "new",
        "indeterminate",
    ]
    .into_iter()
    .map(|name| (name, 0))
    .collect()
}

fn change_name(change: VersionChange) -> &'static str {
    match change {
        VersionChange::Upgrade => "upgrade",
        VersionChange::Same => "same",
        VersionChange::Downgrade => "downgrade",
        VersionChange::Missing => "missing",
        VersionChange::New => "new",
        _ => "indeterminate",
    }
}

fn verdict_name(check: &Check) -> &'static str {
    match check.verdict {
        attendant::Verdict::UpToDate => "up_to_date",
        attendant::Verdict::UpgradeAvailable => "upgrade_available",
        attendant::Verdict::Blocked => "blocked",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::parse_request;

    #[test]
    fn start_options_split_package_lists_and_refuse_a_zero_size() {
        let arguments =
            parse_request(br#"{"add": ["htop, tcpdump"], "keep_settings": false}"#).unwrap();
        let options = start_options(&arguments, true).unwrap();
        assert_eq!(options.add, ["htop", "tcpdump"]);
        assert_eq!(options.keep_settings, Some(false));
        assert_eq!(
            start_options(&arguments, false).unwrap().keep_settings,
            None
        );
        let zero = parse_request(br#"{"rootfs_size": 0}"#).unwrap();
        assert_eq!(
            start_options(&zero, false).unwrap_err().to_string(),
            "argument `rootfs_size` must be a size in MB, at least 1, got `0`"
        );
    }

    /// The CLI's arguments and a call's arguments meaning the same, over one configuration.
    fn plan_both_ways(cli: &[&str], call: &[u8]) -> (PlanOptions, PlanOptions) {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc/config")).unwrap();
        std::fs::write(
            root.path().join("etc/config/attendedsysupgrade"),
            "config server 'server'\n\toption url 'http://127.0.0.1:1'\n\n\
             config attendant 'attendant'\n\tlist add 'iperf3 htop'\n\tlist remove 'ppp'\n\
             \tlist ignored_defaults 'kmod-usb3'\n\tlist ignored_changes 'opkg'\n\
             \toption fstype 'squashfs'\n\toption rootfs_size '256'\n\
             \toption init_script '/etc/attendant-defaults.sh'\n",
        )
        .unwrap();
        std::fs::write(root.path().join("etc/attendant-defaults.sh"), "echo hi\n").unwrap();
        let mut args = vec!["attendant", "check", "--root"];
        let root_text = root.path().display().to_string();
        args.push(&root_text);
        args.extend_from_slice(cli);
        let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        let through_cli = attendant::parse(&args)
            .unwrap()
            .plan_options()
            .unwrap()
            .unwrap();
        let settings = Settings::load(root.path()).unwrap();
        let engine = Engine::new(root.path(), settings);
        let options = start_options(&parse_request(call).unwrap(), true).unwrap();
        let through_bridge = plan_options(&engine, &options).unwrap();
        (through_cli, through_bridge)
    }

    #[test]
    fn the_same_settings_plan_alike_through_the_cli_and_the_bridge() {
        let (cli, bridge) = plan_both_ways(&[], b"{}");
        assert_eq!(cli, bridge);
        assert_eq!(bridge.add, ["iperf3", "htop"]);
        assert_eq!(bridge.ignored_changes, ["opkg"]);
        assert_eq!(bridge.init_script.as_deref(), Some("echo hi\n"));
        assert_eq!(bridge.rootfs_size, Some(256));

        let (cli, bridge) = plan_both_ways(
            &[
                "--version-to",
                "24.10",
                "--add",
                "tcpdump,luci-app-sqm",
                "--remove",
                "luci-app-opkg ppp",
                "--fstype",
                "ext4",
                "--rootfs-size",
                "512",
                "--force",
            ],
            br#"{"version": "24.10", "add": ["tcpdump, luci-app-sqm"], "remove": ["luci-app-opkg", "ppp"],
                 "fstype": "ext4", "rootfs_size": 512, "force": true, "keep_settings": true}"#,
        );
        assert_eq!(cli, bridge);
        assert_eq!(bridge.add, ["tcpdump", "luci-app-sqm"]);
        assert_eq!(bridge.remove, ["luci-app-opkg", "ppp"]);
        assert_eq!(bridge.fstype.as_deref(), Some("ext4"));
        assert!(bridge.force);
    }
}
