//! `attendant blob`: the build request that `upgrade` would send.
//!
//! Prints the request JSON (pretty) on stdout. JSON `data`: the request object.

use crate::check::Verdict;
use crate::cli::{Outcome, command, plan_options_of, settings, to_data};
use crate::engine::Engine;
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::output::Output;

command! {
    /// Print the build request JSON that `upgrade` would send to the server.
    #[argh(
        subcommand,
        name = "blob",
        example = "attendant blob > request.json",
        note = "The request is printed even when a check fails; the exit code is then 4.",
        error_code(4, "the checks found problems")
    )]
    pub(crate) struct BlobCommand {}
    groups: [common, server, plan]
}

pub(super) fn run(cmd: BlobCommand, out: &mut Output) -> Outcome {
    let settings = settings(&cmd.root, cmd.server.as_deref(), cmd.ca_file.as_deref())?;
    let options = plan_options_of!(cmd, settings)?;
    let engine = Engine::new(&cmd.root, settings);
    let check = engine.check(&options)?;
    if !out.is_json() {
        let text =
            serde_json::to_string_pretty(&check.request).map_err(|error| Error::Document {
                what: "build request",
                message: error.to_string(),
            })?;
        out.data(&text)?;
    }
    for problem in &check.problems {
        out.error(&problem.to_string());
    }
    let status = if check.verdict == Verdict::Blocked {
        ExitStatus::Blocked
    } else {
        ExitStatus::Success
    };
    Ok((status, to_data(&check.request)))
}
