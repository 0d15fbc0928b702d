//! `attendant status`: the state of an unfinished upgrade.
//!
//! JSON `data`: the state file's contents ([`State`](crate::state::State)), or `null` when no
//! upgrade is in progress.

use crate::cli::{Outcome, command, to_data};
use crate::exit::ExitStatus;
use crate::output::{Output, sanitize};
use crate::state::StateFile;

command! {
    /// Show the state of an unfinished upgrade (what `upgrade` resumes from).
    #[argh(
        subcommand,
        name = "status",
        example = "attendant status",
        example = "attendant status --clear",
        note = "The state lives in /var/run/attendant/state.json and is lost at reboot."
    )]
    pub(crate) struct StatusCommand {
        /// forget the unfinished upgrade, so the next `upgrade` starts over (default: keep it)
        #[argh(switch)]
        pub(crate) clear: bool,
    }
    groups: [common]
}

pub(super) fn run(cmd: StatusCommand, out: &mut Output) -> Outcome {
    let file = StateFile::new(&cmd.root);
    // `--clear` is the way out of a damaged state file, so it must not need to read one.
    if cmd.clear {
        file.clear().map_err(crate::error::Error::from)?;
        out.note("the unfinished upgrade was forgotten");
    }
    let state = file.load().map_err(crate::error::Error::from)?;
    if !out.is_json() {
        match &state {
            None => out.data("No upgrade in progress")?,
            Some(state) => {
                let text = format!(
                    "Stage:        {:?}\nVersion:      {}\nServer:       {}\nRequest-hash: {}\nImage:        {}\nDownloaded:   {} of {} bytes\nVerified:     {}",
                    state.stage,
                    sanitize(&state.version),
                    sanitize(&state.server),
                    sanitize(&state.request_hash),
                    state
                        .image_path
                        .as_ref()
                        .map_or_else(|| "-".to_owned(), |p| p.display().to_string()),
                    state.downloaded_bytes,
                    state
                        .total_bytes
                        .map_or_else(|| "?".to_owned(), |t| t.to_string()),
                    if state.verified_sha256.is_some() {
                        "yes"
                    } else {
                        "no"
                    },
                );
                out.data(&text)?;
            }
        }
    }
    Ok((ExitStatus::Success, to_data(&state)))
}
