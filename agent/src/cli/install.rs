//! `attendant install`: verify a downloaded image again, then flash it.
//!
//! JSON `data`: `{"image": "...", "command": ["sysupgrade", ...], "rebooting": bool}`.

use serde_json::json;

use crate::cli::{Outcome, command, flash_options, image_path, settings};
use crate::engine::Engine;
use crate::exit::ExitStatus;
use crate::install::Installed;
use crate::output::Output;

command! {
    /// Verify a downloaded image, run the pre-install hook and `sysupgrade --test`, then flash it and reboot.
    #[argh(
        subcommand,
        name = "install",
        example = "attendant install",
        example = "attendant install --no-keep-settings --pre-install /etc/attendant/pre-install.sh",
        note = "The configuration is kept unless --no-keep-settings is given. The SSH session drops when the router reboots.",
        error_code(0, "sysupgrade started: the router is rebooting (or --dry-run passed)"),
        error_code(6, "verification or sysupgrade --test failed")
    )]
    pub(crate) struct InstallCommand {}
    groups: [common, server, image, keep, hook]
}

pub(super) fn run(cmd: InstallCommand, out: &mut Output) -> Outcome {
    let settings = settings(&cmd.root, cmd.server.as_deref(), cmd.ca_file.as_deref())?;
    let flash = flash_options(
        &settings,
        cmd.no_keep_settings,
        cmd.force_flash,
        cmd.pre_install.clone(),
        cmd.dry_run,
    );
    let engine = Engine::new(&cmd.root, settings);
    let path = image_path(&engine, cmd.image.as_deref());
    let (_, installed) = engine.verify_and_install(&path, &flash, &mut |event| out.event(event))?;
    Ok((ExitStatus::Success, report(&path, &installed, out)?))
}

/// Prints and returns the outcome of an install.
pub(super) fn report(
    path: &std::path::Path,
    installed: &Installed,
    out: &mut Output,
) -> Result<serde_json::Value, std::io::Error> {
    let (command, rebooting) = match installed {
        Installed::Rebooting { command } => (command, true),
        Installed::DryRun { command } => (command, false),
    };
    if !out.is_json() {
        if rebooting {
            out.data("sysupgrade accepted the image; the router is rebooting")?;
        } else {
            out.data(&format!(
                "--dry-run: every check passed; would run `{}`",
                command.join(" ")
            ))?;
        }
    }
    Ok(json!({"image": path, "command": command, "rebooting": rebooting}))
}
