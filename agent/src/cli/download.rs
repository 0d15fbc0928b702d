//! `attendant download`: check, build, download and verify, without installing.
//!
//! The image goes to `--image` (default `/tmp/firmware.bin`) and the build record to
//! `<image>.build.json`, which `verify` and `install` read. JSON `data`:
//! `{"image": "...", "verification": {...}}` (see [`Verification`](crate::verify::Verification)).

use serde_json::json;

use crate::check::Check;
use crate::cli::{
    CommandError, Outcome, command, flash_options, image_path_to_write, plan_options_of,
    poll_interval, settings,
};
use crate::engine::{Engine, FlashOptions};
use crate::exit::ExitStatus;
use crate::output::Output;
use crate::verify::Verification;

command! {
    /// Build the new firmware on the server, download it and verify it, without installing it.
    #[argh(
        subcommand,
        name = "download",
        example = "attendant download",
        example = "attendant download --image /tmp/next.bin --version-to 25.12",
        note = "An interrupted download resumes when the same command runs again.",
        error_code(0, "downloaded and verified, or already up to date"),
        error_code(4, "blocked by the checks"),
        error_code(5, "server error"),
        error_code(6, "verification failed")
    )]
    pub(crate) struct DownloadCommand {}
    groups: [common, server, plan, image, poll, keep]
}

pub(super) fn run(cmd: DownloadCommand, out: &mut Output) -> Outcome {
    let settings = settings(&cmd.root, cmd.server.as_deref(), cmd.ca_file.as_deref())?;
    let options = plan_options_of!(cmd, settings)?;
    let interval = poll_interval(&settings, cmd.poll_interval)?;
    let flash = flash_options(
        &settings,
        cmd.no_keep_settings,
        cmd.force_flash,
        None,
        false,
    );
    let engine = Engine::new(&cmd.root, settings);
    let path = image_path_to_write(&engine, cmd.image.as_deref())?;
    let check = engine.check(&options)?;
    match fetch(&engine, &check, &path, interval, &flash, out)? {
        Some(verification) => Ok((
            ExitStatus::Success,
            json!({"image": path, "verification": verification}),
        )),
        None => Ok((
            ExitStatus::Success,
            json!({"image": null, "up_to_date": true}),
        )),
    }
}

/// The shared part of `download` and `upgrade`: warnings, then [`Engine::fetch`] with its
/// progress shown. `None`: up to date.
pub(super) fn fetch(
    engine: &Engine,
    check: &Check,
    path: &std::path::Path,
    interval: std::time::Duration,
    flash: &FlashOptions,
    out: &mut Output,
) -> Result<Option<Verification>, CommandError> {
    if !out.is_json() {
        super::check::print_summary(check, out)?;
    }
    for warning in &check.warnings {
        out.warn(&warning.to_string());
    }
    let verification = engine.fetch(check, path, interval, flash, &mut |event| out.event(event))?;
    out.end_progress_line();
    Ok(verification)
}
