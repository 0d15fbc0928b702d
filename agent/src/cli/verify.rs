//! `attendant verify`: check a downloaded image again.
//!
//! Reads the image and its build record (`<image>.build.json`, written by `download`), then
//! checks the SHA-256, the server's signature, the fwtool trailer, compatibility with this
//! device and the manifest. JSON `data`: the [`Verification`](crate::verify::Verification).

use crate::cli::{Outcome, command, flash_options, image_path, settings, to_data};
use crate::engine::Engine;
use crate::exit::ExitStatus;
use crate::output::Output;

command! {
    /// Verify a downloaded image: SHA-256, signature, board and compat_version, manifest.
    #[argh(
        subcommand,
        name = "verify",
        example = "attendant verify",
        example = "attendant verify --image /tmp/next.bin --no-keep-settings",
        note = "Needs the build record <image>.build.json that `download` writes.",
        error_code(0, "the image passed every check"),
        error_code(6, "verification failed")
    )]
    pub(crate) struct VerifyCommand {}
    groups: [common, server, image, keep]
}

pub(super) fn run(cmd: VerifyCommand, out: &mut Output) -> Outcome {
    let settings = settings(&cmd.root, cmd.server.as_deref(), cmd.ca_file.as_deref())?;
    let flash = flash_options(
        &settings,
        cmd.no_keep_settings,
        cmd.force_flash,
        None,
        false,
    );
    let engine = Engine::new(&cmd.root, settings);
    let path = image_path(&engine, cmd.image.as_deref());
    let device = engine.device()?;
    let saved = engine.load_build(&path)?;
    let verification = engine.verify(&device, &saved, &path, &flash)?;
    if !out.is_json() {
        out.data(&format!(
            "Image:        {}\nSHA-256:      {}\nSignature:    {}\nCompatible:   {}",
            path.display(),
            verification.sha256,
            verification
                .signed_by
                .as_deref()
                .map_or_else(|| "none".to_owned(), |k| format!("signed by `{k}`")),
            verification.compatibility
        ))?;
    }
    Ok((ExitStatus::Success, to_data(&verification)))
}
