//! `attendant report`: send the outcome reports of channel upgrades that wait on the router.
//!
//! Run at boot by the package's init script, in the background. JSON `data`:
//! `{"delivered": [...], "dropped": [...], "waiting": [...]}`, each a report with `channel`,
//! `device`, `from_build`, `to_build`, `result` (`booted`, `rolled-back`,
//! `failed-before-flash`), `cause`, `attempts` and `not_before` (Unix seconds). With
//! `option report '0'` nothing is sent.

use serde_json::json;

use crate::cli::{Outcome, command, settings, to_data};
use crate::engine::Engine;
use crate::exit::ExitStatus;
use crate::output::Output;

command! {
    /// Send the outcome reports of channel upgrades to the server (run at boot).
    #[argh(
        subcommand,
        name = "report",
        example = "attendant report",
        note = "Reports carry the channel, the device, the builds, the result and the machine-id hashed with the server's salt. `option report '0'` in the attendant section turns them off.",
        error_code(0, "every due report was delivered, or none waits"),
        error_code(5, "some reports could not be delivered and wait for the next try")
    )]
    pub(crate) struct ReportCommand {}
    groups: [common, server]
}

pub(super) fn run(cmd: ReportCommand, out: &mut Output) -> Outcome {
    let settings = settings(&cmd.root, cmd.server.as_deref(), cmd.ca_file.as_deref())?;
    if !settings.report {
        out.note("outcome reports are switched off (`option report '0'`)");
        return Ok((ExitStatus::Success, json!({"disabled": true})));
    }
    let engine = Engine::new(&cmd.root, settings);
    let client = engine.client()?;
    let delivery = crate::report::deliver(&client, engine.root()).map_err(crate::Error::from)?;
    if !out.is_json() {
        out.data(&format!(
            "{} delivered, {} dropped, {} waiting",
            delivery.delivered.len(),
            delivery.dropped.len(),
            delivery.waiting.len()
        ))?;
    }
    let status = if delivery.waiting.iter().any(|r| r.attempts > 0) {
        ExitStatus::Server
    } else {
        ExitStatus::Success
    };
    Ok((status, to_data(&delivery)))
}
