//! `attendant channels`: the release channels the server offers for this router.
//!
//! JSON `data`: `{"configured": "stable"|null, "current": {"channel", "build"}|null,
//! "channels": [{"name", "hidden", "alias", "redirect", "latest": {"build",
//! "openwrt_version", "description", "phased_percentage"}|null}]}`, by name; only channels that
//! have this device, hidden ones only with `--all`. Every file read was verified first
//! (signature chain, expiry, serial, device); a refusal exits with 7.

use crate::cli::{Outcome, command, settings, to_data};
use crate::engine::Engine;
use crate::exit::ExitStatus;
use crate::output::{Output, sanitize};

command! {
    /// List the release channels that have builds for this router, with their newest build.
    #[argh(
        subcommand,
        name = "channels",
        example = "attendant channels",
        example = "attendant channels --all --json",
        note = "Follow one with `uci set attendedsysupgrade.attendant.channel=NAME; uci commit` or try it with `attendant check --channel NAME`.",
        error_code(5, "server error"),
        error_code(7, "channel metadata refused")
    )]
    pub(crate) struct ChannelsCommand {
        /// list hidden channels too (default: only visible ones)
        #[argh(switch)]
        pub(crate) all: bool,
    }
    groups: [common, server]
}

pub(super) fn run(cmd: ChannelsCommand, out: &mut Output) -> Outcome {
    let settings = settings(&cmd.root, cmd.server.as_deref(), cmd.ca_file.as_deref())?;
    let engine = Engine::new(&cmd.root, settings);
    let device = engine.device()?;
    let channels = engine.channels(&device, cmd.all)?;
    if !out.is_json() {
        if let Some(current) = &channels.current {
            out.data(&format!(
                "Running build {} of channel {}",
                current.build,
                sanitize(&current.channel)
            ))?;
        }
        if channels.channels.is_empty() {
            out.data("No channel has builds for this router")?;
        }
        for channel in &channels.channels {
            let mut line = sanitize(&channel.name);
            if channels.configured.as_deref() == Some(channel.name.as_str()) {
                line.push_str(" (configured)");
            }
            if channel.hidden {
                line.push_str(" (hidden)");
            }
            if let Some(alias) = &channel.alias {
                line.push_str(&format!(" (alias for: {})", sanitize(alias)));
            }
            if let Some(redirect) = &channel.redirect {
                line.push_str(&format!(" (redirects to: {})", sanitize(redirect)));
            }
            if let Some(latest) = &channel.latest {
                line.push_str(&format!(
                    ": build {}, OpenWrt {}",
                    latest.build,
                    sanitize(&latest.openwrt_version)
                ));
                if latest.phased_percentage < 100 {
                    line.push_str(&format!(", phased {}%", latest.phased_percentage));
                }
                if !latest.description.is_empty() {
                    line.push_str(&format!(" — {}", sanitize(&latest.description)));
                }
            }
            out.data(&line)?;
        }
    }
    Ok((ExitStatus::Success, to_data(&channels)))
}
