//! `config_get` and `config_set`: the settings in UCI `/etc/config/attendedsysupgrade`.
//!
//! The file is shared with LuCI's attended-sysupgrade app and owut
//! (<https://github.com/openwrt/packages/tree/master/utils/attendedsysupgrade-common>), so the
//! keys keep their sections:
//!
//! | key | UCI option | default |
//! | --- | --- | --- |
//! | `url` | `server.url` | `https://sysupgrade.openwrt.org` |
//! | `rebuilders` | `server.rebuilder` (list) | `[]` |
//! | `upgrade_packages`, `auto_search`, `advanced_mode`, `login_check_for_upgrades` | `client.*` | `true`, `false`, `false`, `false` |
//! | `keep_settings`, `require_signature` | `attendant.*` | `true`, `false` |
//! | `rootfs_size` | `attendant.rootfs_size` (`0` = the server's default) | `0` |
//! | `channel` | `attendant.channel`, the release channel followed (`""` = none: the newest release) | `""` |
//!
//! Reading goes through the agent's [`Settings`], so the bridge shows what the agent will use.
//! `config_set` changes only the keys it is given, in the first section of each type (created,
//! named after its type, when missing), and writes the file the way `uci export` does, to a
//! temporary file in `/etc/config/` that is renamed over the old one. It never runs `uci`; changes
//! staged in a LuCI session for the same file are not merged.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use attendant::atomic::write_atomic;
use attendant::config::{Settings, edit_section};
use attendant_proto::uci::{self, Config};
use attendant_proto::wire;
use serde_json::{Value, json};

use crate::context::Context;
use crate::error::BridgeError;
use crate::protocol::Arguments;

/// The `client` section's boolean options and their defaults (attendedsysupgrade-common's).
const CLIENT_FLAGS: [(&str, bool); 4] = [
    (wire::UCI_OPTION_UPGRADE_PACKAGES, true),
    (wire::UCI_OPTION_AUTO_SEARCH, false),
    (wire::UCI_OPTION_ADVANCED_MODE, false),
    (wire::UCI_OPTION_LOGIN_CHECK_FOR_UPGRADES, false),
];

/// The `attendant` section's release channel option.
const CHANNEL_OPTION: &str = "channel";

/// The `attendant` section's boolean options.
const ATTENDANT_FLAGS: [&str; 2] = ["keep_settings", "require_signature"];

/// `config_get`: every key of the table above.
pub fn get(context: &Context) -> Result<Value, BridgeError> {
    let path = config_path(&context.root);
    let config = read(&path)?;
    view(&config, &path)
}

/// `config_set {url?, rebuilders?, <flags>?, rootfs_size?, channel?}`: changes the given keys
/// and answers like `config_get`. `channel` must be a channel name (`""` removes the option); it
/// is not checked against the server's channels, so a router can be set up before the server
/// publishes its channel.
pub fn set(context: &Context, arguments: &Arguments) -> Result<Value, BridgeError> {
    let url = arguments.string("url")?;
    if let Some(url) = &url {
        check_url("url", url)?;
    }
    let rebuilders = arguments.strings("rebuilders")?;
    for rebuilder in rebuilders.iter().flatten() {
        check_url("rebuilders", rebuilder)?;
    }
    let mut client = Vec::new();
    for (option, _) in CLIENT_FLAGS {
        if let Some(flag) = arguments.bool(option)? {
            client.push((option, flag));
        }
    }
    let mut attendant = Vec::new();
    for option in ATTENDANT_FLAGS {
        if let Some(flag) = arguments.bool(option)? {
            attendant.push((option, flag));
        }
    }
    let rootfs_size = arguments.u32("rootfs_size")?;
    let channel = arguments.string("channel")?;
    if let Some(channel) = channel.as_deref().filter(|c| !c.is_empty()) {
        crate::channel::check_name(channel)?;
    }

    let path = config_path(&context.root);
    let mut config = read(&path)?;
    let uci_error = |source| BridgeError::Uci {
        path: path.clone(),
        source,
    };
    if url.is_some() || rebuilders.is_some() {
        config = edit_section(&config, wire::UCI_SECTION_SERVER, |section| {
            if let Some(url) = &url {
                section.set(wire::UCI_OPTION_URL, url)?;
            }
            if let Some(rebuilders) = &rebuilders {
                section.remove(wire::UCI_OPTION_REBUILDER);
                for rebuilder in rebuilders {
                    section.add_list(wire::UCI_OPTION_REBUILDER, rebuilder)?;
                }
            }
            Ok(())
        })
        .map_err(uci_error)?;
    }
    if !client.is_empty() {
        config = edit_section(&config, wire::UCI_SECTION_CLIENT, |section| {
            client
                .iter()
                .try_for_each(|(option, flag)| section.set(option, flag_text(*flag)))
        })
        .map_err(uci_error)?;
    }
    if !attendant.is_empty() || rootfs_size.is_some() || channel.is_some() {
        config = edit_section(&config, wire::UCI_SECTION_ATTENDANT, |section| {
            for (option, flag) in &attendant {
                section.set(option, flag_text(*flag))?;
            }
            match rootfs_size {
                Some(0) => {
                    section.remove("rootfs_size");
                }
                Some(size) => section.set("rootfs_size", &size.to_string())?,
                None => {}
            }
            match channel.as_deref() {
                Some("") => {
                    section.remove(CHANNEL_OPTION);
                }
                Some(channel) => section.set(CHANNEL_OPTION, channel)?,
                None => {}
            }
            Ok(())
        })
        .map_err(uci_error)?;
    }
    // What the agent would make of the new file, before it replaces the old one.
    let reply = view(&config, &path)?;
    write_config(&path, config.to_text().as_bytes())?;
    Ok(reply)
}

fn view(config: &Config, path: &Path) -> Result<Value, BridgeError> {
    let settings = Settings::from_uci(config, path).map_err(attendant::Error::from)?;
    let client = config.of_type(wire::UCI_SECTION_CLIENT).next();
    let mut reply = json!({
        "url": settings.server,
        "rebuilders": settings.rebuilders,
        "keep_settings": settings.keep_settings,
        "require_signature": settings.require_signature,
        "rootfs_size": settings.rootfs_size.unwrap_or(0),
        "channel": settings.channel.unwrap_or_default(),
    });
    if let Some(object) = reply.as_object_mut() {
        for (option, default) in CLIENT_FLAGS {
            let flag = client
                .and_then(|section| section.flag(option))
                .unwrap_or(default);
            object.insert(option.to_owned(), flag.into());
        }
    }
    Ok(reply)
}

fn check_url(argument: &'static str, url: &str) -> Result<(), BridgeError> {
    if attendant::config::is_server_url(url) {
        return Ok(());
    }
    Err(BridgeError::InvalidArgument {
        argument,
        expected: "an `http://` or `https://` URL without spaces",
        found: format!(
            "`{}`",
            attendant_proto::excerpt::excerpt(url, attendant_proto::excerpt::MAX_VALUE_CHARS)
        ),
    })
}

fn flag_text(flag: bool) -> &'static str {
    if flag { "1" } else { "0" }
}

fn config_path(root: &Path) -> PathBuf {
    wire::under_root(root, wire::UCI_CONFIG_PATH)
}

fn read(path: &Path) -> Result<Config, BridgeError> {
    let mut bytes = Vec::new();
    let limit = u64::try_from(uci::MAX_FILE_LEN).unwrap_or(u64::MAX);
    match File::open(path) {
        Ok(file) => file
            .take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|source| io("read", path, source))?,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Config::new()),
        Err(source) => return Err(io("read", path, source)),
    };
    Config::parse(&bytes).map_err(|source| BridgeError::Uci {
        path: path.to_owned(),
        source,
    })
}

/// Replaces the config file atomically ([`write_atomic`]), creating its directory first.
fn write_config(path: &Path, bytes: &[u8]) -> Result<(), BridgeError> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    fs::create_dir_all(dir).map_err(|source| io("create", dir, source))?;
    write_atomic(path, bytes).map_err(|source| io("write", path, source))
}

fn io(action: &'static str, path: &Path, source: std::io::Error) -> BridgeError {
    BridgeError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_the_first_section_of_a_type_and_keeps_the_rest() {
        let config = Config::parse(
            b"package attendedsysupgrade\nconfig server\n\toption url 'http://a'\nconfig owut 'owut'\n\toption rootfs_size '100'\n",
        )
        .unwrap();
        let edited = edit_section(&config, "server", |s| s.set("url", "http://b")).unwrap();
        assert_eq!(
            edited.to_text(),
            "package 'attendedsysupgrade'\n\nconfig server\n\toption url 'http://b'\n\nconfig owut 'owut'\n\toption rootfs_size '100'\n\n"
        );
        let added = edit_section(&edited, "attendant", |s| s.set("keep_settings", "0")).unwrap();
        assert_eq!(
            added.named("attendant").unwrap().option("keep_settings"),
            Some("0")
        );
    }

    #[test]
    fn refuses_urls_that_are_not_http() {
        assert_eq!(
            check_url("url", "ftp://x").unwrap_err().to_string(),
            "argument `url` must be an `http://` or `https://` URL without spaces, got `ftp://x`"
        );
        assert!(check_url("url", "https://sysupgrade.openwrt.org").is_ok());
        assert!(check_url("url", "http://a b").is_err());
    }
}
