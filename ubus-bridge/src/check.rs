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
//!  "problems": [], "checked_at": 1767225600, "cached": false}
//! ```
//!
//! `installed`/`available` are `""` when unknown; `image` is left out when no image fits.
//! Problems are part of the answer (`verdict: "blocked"`), not an error: the checks ran.
//! Warnings and problems are worded by [`crate::hint`], without the agent's flags. The offer
//! and the checks come from one fetch of `overview.json` (the engine keeps it). With `max_age`
//! a recent stored answer is reused ([`crate::check_cache`]); `checked_at` and `cached` say
//! when the answer was made and whether it was reused.

use std::collections::BTreeMap;
use std::io::Read;

use attendant::check::{MAX_INIT_SCRIPT_LEN, PlanOptions};
use attendant::config::{Settings, split_names};
use attendant::plan::VersionChange;
use attendant::{Check, Engine};
use serde_json::{Value, json};

use crate::check_cache::CheckCache;
use crate::cli::Context;
use crate::error::BridgeError;
use crate::hint;
use crate::jobs::StartOptions;
use crate::protocol::Arguments;

/// `check {version?, add?, remove?, fstype?, rootfs_size?, force?, max_age?}`; `max_age`
/// accepts a stored result that young ([`CheckCache`]).
pub fn check(context: &Context, arguments: &Arguments) -> Result<Value, BridgeError> {
    let max_age = arguments.u32("max_age")?;
    let options = start_options(arguments, false)?;
    let settings = Settings::load(&context.root).map_err(attendant::Error::from)?;
    let cache = CheckCache::new(&context.root, &options, &settings);
    if let Some(reply) = cache.fresh(max_age) {
        return Ok(reply);
    }
    let engine = Engine::new(&context.root, settings);
    let plan = plan_options(&engine, &options)?;
    let client = engine.client()?;
    let overview = engine.overview(&client)?;
    let offered: Vec<String> = overview
        .branches
        .values()
        .filter(|branch| branch.enabled)
        .flat_map(|branch| branch.versions.iter().cloned())
        .collect();
    let check = engine.check(&plan)?;
    Ok(cache.store(check_reply(&check, &offered)))
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
    })
}

/// The agent's plan options: the call's options over the configuration's defaults.
pub fn plan_options(engine: &Engine, options: &StartOptions) -> Result<PlanOptions, BridgeError> {
    let settings = engine.settings();
    let or_config = |given: &[String], config: &[String]| {
        if given.is_empty() {
            config.to_vec()
        } else {
            given.to_vec()
        }
    };
    let mut plan = PlanOptions::default();
    plan.version_to = options.version.clone();
    plan.add = or_config(&options.add, &settings.add);
    plan.remove = or_config(&options.remove, &settings.remove);
    plan.ignored_defaults = settings.ignored_defaults.clone();
    plan.ignored_changes = settings.ignored_changes.clone();
    plan.fstype = options.fstype.clone().or_else(|| settings.fstype.clone());
    plan.rootfs_size = options.rootfs_size.or(settings.rootfs_size);
    plan.force = options.force;
    if let Some(path) = &settings.init_script {
        plan.init_script = Some(read_init_script(&engine.router_path(path))?);
    }
    if plan.force {
        log::warn!("force: downgrades and unchanged builds are allowed");
    }
    Ok(plan)
}

/// The structured `check` answer.
pub fn check_reply(check: &Check, offered: &[String]) -> Value {
    let mut summary: BTreeMap<&str, u64> = [
        "upgrade",
        "downgrade",
        "same",
        "missing",
        "new",
        "indeterminate",
    ]
    .into_iter()
    .map(|name| (name, 0))
    .collect();
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

/// Reads the configured uci-defaults script, at most the agent's [`MAX_INIT_SCRIPT_LEN`].
fn read_init_script(path: &std::path::Path) -> Result<String, BridgeError> {
    let limit = u64::try_from(MAX_INIT_SCRIPT_LEN).unwrap_or(u64::MAX);
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(limit.saturating_add(1)).read_to_end(&mut bytes))
        .map_err(|source| BridgeError::Io {
            action: "read the init script",
            path: path.to_owned(),
            source,
        })?;
    if bytes.len() > MAX_INIT_SCRIPT_LEN {
        return Err(BridgeError::Agent(attendant::Error::Usage(format!(
            "the init script `{}` is larger than {MAX_INIT_SCRIPT_LEN} bytes",
            path.display()
        ))));
    }
    String::from_utf8(bytes).map_err(|_| {
        BridgeError::Agent(attendant::Error::Usage(format!(
            "the init script `{}` is not UTF-8 text",
            path.display()
        )))
    })
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
}
