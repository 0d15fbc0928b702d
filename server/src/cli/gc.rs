//! `attendant-server gc`.

use std::process::ExitCode;

use crate::config::Config;
use crate::service::Service;
use crate::state::now;

/// `gc --help`'s examples.
pub(super) const EXAMPLES: &str = "\
Examples:
  attendant-server gc --config /etc/attendant/attendant.toml
  attendant-server gc --dry-run    # list what would be deleted, with the files

`serve` runs the same pass every `gc_interval` (default: 5m); store directories without a job
are deleted once older than `orphan_grace` (default: 1h).";

/// Options of `gc`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the expired results (with their files) and unreferenced store entries that would
    /// be deleted, and delete nothing (default: delete them).
    #[arg(long)]
    pub dry_run: bool,
}

pub(crate) async fn run(config: Config, args: Args) -> anyhow::Result<ExitCode> {
    let grace = config.orphan_grace;
    let service = Service::open(config).await?;
    let state = &service.state;
    if args.dry_run {
        let collection = crate::gc::plan(&*state.store, &state.artifacts, now(), grace).await?;
        print(&collection.render("would delete"));
        return Ok(ExitCode::SUCCESS);
    }
    let report = crate::gc::collect(&*state.store, &state.artifacts, now(), grace).await?;
    tracing::info!(
        expired_jobs = report.expired_jobs,
        expired_dirs = report.expired_dirs,
        orphans = report.orphans,
        stats_rows = report.stats_rows,
        "store collected"
    );
    Ok(ExitCode::SUCCESS)
}

/// The dry run's listing is the command's output: stdout is data, the logs go to stderr.
fn print(text: &str) {
    use std::io::Write as _;
    // A closed pipe (`gc --dry-run | head`) is not an error.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}
