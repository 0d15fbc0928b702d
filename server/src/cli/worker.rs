//! `attendant-server worker`: build workers without the HTTP API, either sharing the database
//! and store of `serve`, or (`--server`) remote, talking only HTTP to the main server.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, UpstreamLocation};
use crate::service::{Service, absolute_upstream, imagebuilder_cache};
use crate::worker::remote::{Client, ImagebuilderSource, read_token, run_remote};
use crate::worker::run_workers;

/// `worker --help`'s examples.
pub(super) const EXAMPLES: &str = "\
Examples:
  attendant-server worker --config /etc/attendant/attendant.toml
  ATTENDANT_DATABASE_URL='postgres://attendant@db.example/attendant?sslmode=verify-full&sslrootcert=/etc/attendant/db-ca.crt' \\
    ATTENDANT_STORE_DIR=/srv/attendant/store attendant-server worker --workers 4
  attendant-server worker --server https://attendant.example --token-file /etc/attendant/worker.token
  attendant-server worker --server https://attendant.example --token-file worker.token --imagebuilders-from server

On one host, workers share the SQLite file `database` with `serve`; on other hosts they need
the same PostgreSQL `database_url` and the same `store_dir` (a shared file system).

With --server the worker needs neither: it claims jobs from the main server over HTTP with the
token that `attendant-server workers add NAME` printed there, builds in its own `data_dir` with
ImageBuilders from its own `[upstream]` (or, with --imagebuilders-from server, from the main
server's verified cache; the worker still checks them against the upstream's signed
`sha256sums` with its own `trusted_keys`), and uploads the results, which the main server
checks, signs and publishes. Its configuration's database and signing keys are not used.";

/// Options of `worker`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Build workers to run, at least 1 (default: `workers`, the CPU count).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Work for the main server at this URL over HTTP, without database or shared store
    /// (default: none, share the database and store; needs --token-file).
    #[arg(long, requires = "token_file")]
    pub server: Option<String>,
    /// File holding this worker's token from `workers add` on the main server (default: none;
    /// only with --server).
    #[arg(long, requires = "server")]
    pub token_file: Option<PathBuf>,
    /// Where a --server worker downloads ImageBuilders: `upstream` (its own `[upstream]`) or
    /// `server` (the main server's verified cache).
    #[arg(long, value_enum, requires = "server", default_value_t = ImagebuilderSource::Upstream)]
    pub imagebuilders_from: ImagebuilderSource,
}

pub(crate) async fn run(config: Config, args: Args) -> anyhow::Result<ExitCode> {
    let count = args.workers.unwrap_or(config.workers).max(1);
    let shutdown = CancellationToken::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        super::shutdown_signal().await;
        tracing::info!("shutting down");
        trigger.cancel();
    });
    if let (Some(server), Some(token_file)) = (&args.server, &args.token_file) {
        let token = read_token(token_file)?;
        let client = Client::new(server, token).context("cannot build the HTTP client")?;
        let (location, http) = match args.imagebuilders_from {
            ImagebuilderSource::Server => (
                UpstreamLocation::Http(client.imagebuilder_upstream()),
                client
                    .authorized_http()
                    .context("cannot build the HTTP client")?,
            ),
            ImagebuilderSource::Upstream => (
                absolute_upstream(config.upstream())?,
                reqwest::Client::builder()
                    .user_agent(concat!("attendant-server/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .context("cannot build the HTTP client")?,
            ),
        };
        let imagebuilders = Arc::new(imagebuilder_cache(&config, &location, http)?);
        tracing::info!(workers = count, server = %server, "remote worker started");
        run_remote(Arc::new(config), imagebuilders, client, count, shutdown)
            .await
            .with_context(|| format!("the worker stopped working for `{server}`"))?;
        return Ok(ExitCode::SUCCESS);
    }
    let service = Service::open(config).await?;
    tracing::info!(workers = count, "worker started");
    run_workers(service.workers, count, shutdown).await;
    Ok(ExitCode::SUCCESS)
}
