//! `info` and `packages`: the device as the agent reads it, without the network.
//!
//! `packages` answers in `rpc-sys packagelist`'s shape (rpcd's `sys.c`,
//! <https://github.com/openwrt/rpcd/blob/master/sys.c>):
//! `{"packages": {"<name>": "<version>"}}`, top-level packages by default and every installed
//! package with `{"all": true}`, ABI suffixes stripped — so LuCI code written for `rpc-sys` can
//! be pointed at `attendant` unchanged.

use attendant::Engine;
use attendant::config::Settings;
use serde_json::{Value, json};

use crate::context::Context;
use crate::error::BridgeError;
use crate::protocol::Arguments;

/// `info`: `{board_name, model, target, version, revision, rootfs_type, efi, package_manager,
/// server, agent_version}`; `model` is `""` when the device does not say. With a release channel
/// configured or a `channel.json` in the running image, also `channel`: `{configured, name,
/// build, channel_target, phase}` — `name` and `build` from the image's `channel.json`, else the
/// configured channel at build 0; `phase` is `null` here (it needs the channel's metadata;
/// `check` reports it).
pub fn info(context: &Context) -> Result<Value, BridgeError> {
    let settings = Settings::load(&context.root).map_err(attendant::Error::from)?;
    let engine = Engine::new(&context.root, settings);
    let device = engine.device()?;
    let mut reply = json!({
        "board_name": device.board_name,
        "model": device.model.clone().unwrap_or_default(),
        "target": device.target,
        "version": device.version,
        "revision": device.revision,
        "rootfs_type": device.rootfs_type,
        "efi": device.efi,
        "package_manager": device.package_manager.as_str(),
        "server": engine.settings().server,
        "agent_version": env!("CARGO_PKG_VERSION"),
    });
    let configured = engine.settings().channel.clone();
    let stamp = attendant::channel::running_stamp(&context.root).map_err(attendant::Error::from)?;
    if (configured.is_some() || stamp.is_some())
        && let Some(object) = reply.as_object_mut()
    {
        let (name, build, target) = match stamp {
            Some(stamp) => (Some(stamp.channel), stamp.build, stamp.channel_target),
            None => (configured.clone(), 0, None),
        };
        object.insert(
            "channel".to_owned(),
            json!({
                "configured": configured,
                "name": name,
                "build": build,
                "channel_target": target,
                "phase": null,
            }),
        );
    }
    Ok(reply)
}

/// `channels {all}`: the release channels that have this router, verified:
/// `{configured, current: {channel, build}|null, channels: [{name, hidden, alias, redirect,
/// latest: {build, openwrt_version, description, phased_percentage}|null}]}`.
pub fn channels(context: &Context, arguments: &Arguments) -> Result<Value, BridgeError> {
    let all = arguments.bool("all")?.unwrap_or(false);
    let settings = Settings::load(&context.root).map_err(attendant::Error::from)?;
    let engine = Engine::new(&context.root, settings);
    let device = engine.device()?;
    let channels = engine.channels(&device, all)?;
    Ok(serde_json::to_value(&channels).unwrap_or(Value::Null))
}

/// `packages {all}`: `{"packages": {"<name>": "<version>"}}`.
pub fn packages(context: &Context, arguments: &Arguments) -> Result<Value, BridgeError> {
    let all = arguments.bool("all")?.unwrap_or(false);
    let engine = Engine::new(&context.root, Settings::default());
    let device = engine.device()?;
    Ok(json!({ "packages": device.packages.packagelist(all) }))
}
