//! `attendant-server worker`.

use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::service::Service;
use crate::worker::run_workers;

/// `worker --help`'s examples.
pub(super) const EXAMPLES: &str = "\
Examples:
  attendant-server worker --config /etc/attendant/attendant.toml
  ATTENDANT_DATABASE_URL='postgres://attendant@db.example/attendant?sslmode=verify-full&sslrootcert=/etc/attendant/db-ca.crt' \\
    ATTENDANT_STORE_DIR=/srv/attendant/store attendant-server worker --workers 4

On one host, workers share the SQLite file `database` with `serve`; on other hosts they need
the same PostgreSQL `database_url` and the same `store_dir` (a shared file system).";

/// Options of `worker`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Build workers to run, at least 1 (default: `workers`, the CPU count).
    #[arg(long)]
    pub workers: Option<usize>,
}

pub(crate) async fn run(config: Config, args: Args) -> anyhow::Result<ExitCode> {
    let count = args.workers.unwrap_or(config.workers).max(1);
    let service = Service::open(config).await?;
    let shutdown = CancellationToken::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        super::shutdown_signal().await;
        tracing::info!("shutting down");
        trigger.cancel();
    });
    tracing::info!(workers = count, "worker started");
    run_workers(service.workers, count, shutdown).await;
    Ok(ExitCode::SUCCESS)
}
