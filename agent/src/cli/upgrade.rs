//! `attendant upgrade`: check, build, download, verify and install in one go.
//!
//! Resumable: the state file records the request hash, the partial download and the
//! verification, so running the command again after an interruption continues. JSON `data`:
//! `{"up_to_date": true}`, or `install`'s data plus `"verification"`; with a channel also
//! `"channel"` and `"build"` (the build flashed; a path with several hops flashes its first
//! build, and the next run after the reboot goes on).

use serde_json::json;

use crate::channel::ChannelRequest;
use crate::channel::attended::ChannelRoute;
use crate::cli::download::fetch;
use crate::cli::install::report;
use crate::cli::{
    CommandError, Outcome, channel_request, command, flash_options, image_path_to_write,
    plan_options_of, poll_interval, settings,
};
use crate::engine::{Engine, FlashOptions};
use crate::exit::ExitStatus;
use crate::output::Output;

command! {
    /// Upgrade the firmware: check, build on the server, download, verify, then install and reboot.
    #[argh(
        subcommand,
        name = "upgrade",
        example = "attendant upgrade",
        example = "attendant upgrade --version-to 25.12 --remove luci-app-opkg",
        example = "attendant upgrade --dry-run",
        example = "attendant upgrade --channel stable",
        note = "The configuration is kept unless --no-keep-settings is given. An interrupted upgrade resumes when run again; `attendant status` shows where it stopped.",
        error_code(0, "the router is rebooting into the new firmware, or it is up to date"),
        error_code(4, "blocked by the checks"),
        error_code(5, "server error"),
        error_code(6, "verification or sysupgrade --test failed"),
        error_code(7, "channel metadata refused")
    )]
    pub(crate) struct UpgradeCommand {}
    groups: [common, server, channel, plan, image, poll, keep, hook]
}

pub(super) fn run(cmd: UpgradeCommand, out: &mut Output) -> Outcome {
    let settings = settings(&cmd.root, cmd.server.as_deref(), cmd.ca_file.as_deref())?;
    let request = channel_request(&settings, cmd.channel.as_deref(), cmd.percentage)?;
    let options = plan_options_of!(cmd, settings)?;
    let interval = poll_interval(&settings, cmd.poll_interval)?;
    let flash = flash_options(
        &settings,
        cmd.no_keep_settings,
        cmd.force_flash,
        cmd.pre_install.clone(),
        cmd.dry_run,
    );
    let engine = Engine::new(&cmd.root, settings);
    let path = image_path_to_write(&engine, cmd.image.as_deref())?;
    if let Some(request) = request {
        return upgrade_channel(
            &engine,
            &request,
            cmd.prebuilt,
            &path,
            interval,
            &flash,
            out,
        );
    }
    let check = engine.check(&options)?;
    let Some(verification) = fetch(&engine, &check, &path, interval, &flash, out)? else {
        return Ok((ExitStatus::Success, json!({"up_to_date": true})));
    };
    let installed = engine.install(&path, &flash, &mut |event| out.event(event))?;
    let mut data = report(&path, &installed, out)?;
    if let Some(object) = data.as_object_mut() {
        object.insert(
            "verification".to_owned(),
            crate::cli::to_data(&verification),
        );
    }
    Ok((ExitStatus::Success, data))
}

/// `upgrade` through a release channel: the first build of the winning path, the published
/// image or one built for this router ([`Engine::channel_route`]).
fn upgrade_channel(
    engine: &Engine,
    request: &ChannelRequest,
    prebuilt_only: bool,
    path: &std::path::Path,
    interval: std::time::Duration,
    flash: &FlashOptions,
    out: &mut Output,
) -> Outcome {
    let device = engine.device()?;
    let plan = engine.channel_plan(&device, request)?;
    if plan.older_openwrt() {
        out.warn(&format!(
            "this moves to an older OpenWrt version than the running {}",
            crate::output::sanitize(&plan.running_openwrt)
        ));
    }
    let reporting = engine.settings().report && !flash.dry_run;
    let to_build = plan.next_hop().map(|hop| hop.version);
    // A failure before flashing is an outcome the server counts too.
    let failed = |error: &crate::Error| {
        if let (true, Some(to_build)) = (reporting, to_build) {
            let report = crate::report::failure(
                &plan.name,
                &plan.device,
                plan.current_build,
                to_build,
                &error.to_string(),
            );
            if let Err(error) = crate::report::record(engine.root(), report) {
                log::warn!("cannot record the outcome report: {error}");
            }
        }
    };
    let route = engine
        .channel_route(&plan, &device, prebuilt_only)
        .inspect_err(&failed)?;
    let fetched = match route {
        None => None,
        Some(ChannelRoute::Prebuilt) => {
            crate::prebuilt::fetch(engine, &plan, &device, path, flash, &mut |e| {
                out.event(e);
            })
            .inspect_err(&failed)?
        }
        Some(ChannelRoute::Attended { check, extra }) => {
            out.note(&format!(
                "this router has packages the published image lacks ({}): building build {} \
                 for it",
                crate::output::sanitize(&extra.join(", ")),
                plan.next_hop().map_or(0, |hop| hop.version)
            ));
            let verification =
                fetch(engine, &check, path, interval, flash, out).inspect_err(|error| {
                    if let CommandError::Engine(error) = error {
                        failed(error);
                    }
                })?;
            match (verification, plan.next_hop()) {
                (Some(verification), Some(hop)) => Some((hop.clone(), verification)),
                _ => None,
            }
        }
    };
    let Some((build, verification)) = fetched else {
        out.note("The firmware is up to date in this channel");
        return Ok((ExitStatus::Success, json!({"up_to_date": true})));
    };
    if !flash.dry_run {
        follow_channel(engine, &plan, out)?;
    }
    if reporting {
        // Recorded before flashing: sysupgrade does not come back.
        crate::report::record(
            engine.root(),
            crate::report::PendingReport {
                channel: plan.name.clone(),
                device: plan.device.clone(),
                from_build: plan.current_build,
                to_build: build.version,
                result: None,
                cause: None,
                attempts: 0,
                not_before: 0,
            },
        )
        .map_err(crate::Error::from)?;
    }
    let installed = engine
        .install(path, flash, &mut |event| out.event(event))
        .inspect_err(&failed)?;
    let mut data = report(path, &installed, out)?;
    if let Some(object) = data.as_object_mut() {
        object.insert("channel".to_owned(), json!(plan.name));
        object.insert("build".to_owned(), json!(build.version));
        object.insert(
            "verification".to_owned(),
            crate::cli::to_data(&verification),
        );
    }
    Ok((ExitStatus::Success, data))
}

/// After a switch or a redirect the configured channel becomes the one the router moves to, so
/// the next run plans from there. Written before flashing: sysupgrade keeps the configuration,
/// and a flash that fails leaves a router whose old channel redirects to this one anyway.
fn follow_channel(
    engine: &Engine,
    plan: &crate::channel::ChannelPlan,
    out: &mut Output,
) -> Result<(), crate::Error> {
    if plan.configured.as_deref() == Some(plan.name.as_str()) {
        return Ok(());
    }
    crate::config::set_channel(engine.root(), &plan.name)?;
    out.note(&format!(
        "the configured channel is now {}",
        crate::output::sanitize(&plan.name)
    ));
    Ok(())
}
