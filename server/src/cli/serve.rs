//! `attendant-server serve`.

use std::process::ExitCode;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::service::Service;

/// `serve --help`'s examples.
pub(super) const EXAMPLES: &str = "\
Examples:
  attendant-server serve
  attendant-server serve --config /etc/attendant/attendant.toml --listen 0.0.0.0:8000
  attendant-server serve --workers 0    # API only: `attendant-server worker` builds

SIGINT or SIGTERM stops accepting requests and lets requests and builds finish within
`shutdown_timeout` (default: 30s).";

/// Options of `serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on (default: `listen` of the configuration, 127.0.0.1:8000).
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// In-process build workers; 0 runs none (default: `workers`, the CPU count).
    #[arg(long)]
    pub workers: Option<usize>,
}

pub(crate) async fn run(mut config: Config, args: Args) -> anyhow::Result<ExitCode> {
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    let workers = args.workers.unwrap_or(config.workers);
    serve(config, workers).await?;
    Ok(ExitCode::SUCCESS)
}

/// Serves `config` with `workers` in-process build workers until SIGINT/SIGTERM, then drains
/// (what `attendant-server serve` runs).
pub async fn serve(config: Config, workers: usize) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on `{}`", config.listen))?;
    let addr = listener.local_addr()?;
    let service = Service::open(config).await?;
    tracing::info!(%addr, workers, "serving");
    let shutdown = CancellationToken::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        super::shutdown_signal().await;
        tracing::info!("shutting down");
        trigger.cancel();
    });
    service.run(listener, workers, shutdown).await
}
