//! `attendant-server gc`.

use std::process::ExitCode;

use crate::config::Config;
use crate::service::Service;
use crate::state::now;

/// `gc --help`'s examples.
pub(super) const EXAMPLES: &str = "\
Examples:
  attendant-server gc --config /etc/attendant/attendant.toml

`serve` runs the same pass every `gc_interval` (default: 5m); store directories without a job
are deleted once older than `orphan_grace` (default: 1h).";

/// Options of `gc`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub(crate) async fn run(config: Config, _args: Args) -> anyhow::Result<ExitCode> {
    let grace = config.orphan_grace;
    let service = Service::open(config).await?;
    let state = &service.state;
    let report = crate::gc::collect(&*state.store, &state.artifacts, now(), grace).await?;
    tracing::info!(
        expired_jobs = report.expired_jobs,
        expired_dirs = report.expired_dirs,
        orphans = report.orphans,
        "store collected"
    );
    Ok(ExitCode::SUCCESS)
}
