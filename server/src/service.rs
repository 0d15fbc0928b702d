//! Start-up glue: from a [`Config`] to a running server (HTTP API, workers, collector).
//!
//! [`Service::open`] builds the pieces in dependency order — store ([`open_store`]:
//! SQLite, or PostgreSQL when `database_url` is set), artifacts, metadata client, ImageBuilder
//! cache, keys — and [`Service::run`] serves until the shutdown token is cancelled (HTTP
//! connections with their timeouts and cap: `http/connections.rs`), then stops accepting
//! connections, lets requests and builds finish within `shutdown_timeout`, and returns. [`spawn`] does both on a background task, for tests
//! and `demo`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use anyhow::Context;
use attendant_proto::ucert::Chain;
use attendant_proto::usign::{Keyring, PublicKey};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::artifacts::Artifacts;
use crate::channels::keys::MetadataSigner;
use crate::channels::schedule::{Publisher, SharedPublisher, run_importer};
use crate::config::{Config, UpstreamLocation};
use crate::http::connections::{self, ConnectionLimits};
use crate::imagebuilder::{CacheConfig, ImagebuilderCache, Upstream};
use crate::metadata::Metadata;
use crate::signing::{load_certificate, load_secret_key};
use crate::state::{AppState, State, now};
use crate::store::{PostgresStore, SqliteStore, Store};
use crate::worker::{WorkerContext, run_workers};

/// The assembled server.
#[derive(Debug, Clone)]
pub struct Service {
    /// HTTP state.
    pub state: AppState,
    /// Worker state.
    pub workers: WorkerContext,
    /// The channel publisher (settle, publish, re-sign, reap), when a signing key is set.
    pub channels: Option<Arc<SharedPublisher>>,
}

/// A server running on a background task.
#[derive(Debug)]
pub struct Running {
    /// The address it listens on.
    pub addr: std::net::SocketAddr,
    /// Cancel to shut it down.
    pub shutdown: CancellationToken,
    /// The serving task.
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
    /// The assembled pieces (store, counters) for inspection.
    pub service: Service,
}

impl Service {
    /// Opens the store and everything else the configuration names.
    pub async fn open(config: Config) -> anyhow::Result<Self> {
        let store = open_store(&config).await?;
        let artifacts = Artifacts::from_config(&config)?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("attendant-server/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot build the HTTP client")?;
        let location = absolute_upstream(config.upstream())?;
        let metadata = Arc::new(Metadata::new(&location, http.clone(), config.metadata_ttl));
        let imagebuilders = Arc::new(imagebuilder_cache(&config, &location, http)?);
        let signing_key = match &config.signing_key {
            Some(path) => Some(Arc::new(load_secret_key(path)?)),
            None => None,
        };
        let signature_trailer = match (&signing_key, config.signature_trailer) {
            (Some(key), true) => Some(Arc::new(match &config.signing_certificate {
                Some(path) => load_certificate(path, key)?,
                None => Chain::default(),
            })),
            _ => None,
        };
        let public_key = signing_key.as_ref().map(|key| key.public_key());
        let mut state = State::new(config, store.clone(), metadata, artifacts, public_key);
        state.signing_key.clone_from(&signing_key);
        state.signature_trailer.clone_from(&signature_trailer);
        state.imagebuilders = Some(imagebuilders.clone());
        // Channel metadata is signed by the delegated metadata key of `[channels]`; without one
        // nothing is published (the tree would be useless to routers that check signatures).
        let channels = MetadataSigner::from_config(&state.config.channels)?.map(|signer| {
            let publisher = Publisher::new(store.clone(), state.config.clone(), Arc::new(signer));
            Arc::new(SharedPublisher::new(publisher, signing_key.clone()))
        });
        if let Some(channels) = &channels {
            state.publisher = channels.clone();
        }
        let workers = WorkerContext {
            config: state.config.clone(),
            store,
            imagebuilders,
            artifacts: state.artifacts.clone(),
            signing_key,
            signature_trailer,
            wakeup: state.wakeup.clone(),
            builds_started: Arc::new(AtomicU64::new(0)),
            metrics: state.metrics.clone(),
        };
        state
            .metrics
            .watch_imagebuilders((*workers.imagebuilders).clone());
        Ok(Self {
            state: AppState::from(state),
            workers,
            channels,
        })
    }

    /// Serves HTTP on `listener` with `workers` in-process workers until `shutdown`.
    pub async fn run(
        self,
        listener: TcpListener,
        workers: usize,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let app = crate::http::app(self.state.clone());
        let worker_task =
            tokio::spawn(run_workers(self.workers.clone(), workers, shutdown.clone()));
        let gc_task = tokio::spawn(collector_loop(self.state.clone(), shutdown.clone()));
        let channels_task = self
            .channels
            .clone()
            .map(|publisher| tokio::spawn(publisher.run(self.state.clone(), shutdown.clone())));
        let import_task = self
            .workers
            .signing_key
            .clone()
            .map(|key| tokio::spawn(run_importer(self.state.clone(), key, shutdown.clone())));
        let limits = ConnectionLimits::of(&self.state.config);
        let deadline = self.state.config.shutdown_timeout;
        connections::serve(listener, app, limits, shutdown, deadline).await;
        gc_task.abort();
        for task in [channels_task, import_task].into_iter().flatten() {
            task.abort();
        }
        // The workers drain within the same deadline on their own.
        let _ = worker_task.await;
        Ok(())
    }
}

/// The ImageBuilder cache of `config`: downloads from `location` (the configured upstream made
/// absolute), verified against the trusted keys. Shared by `serve` and remote workers.
pub(crate) fn imagebuilder_cache(
    config: &Config,
    location: &UpstreamLocation,
    http: reqwest::Client,
) -> anyhow::Result<ImagebuilderCache> {
    let mut keyring = Keyring::new();
    for path in &config.trusted_keys {
        keyring.add(read_trusted_key(path)?);
    }
    let upstream = match location {
        UpstreamLocation::Http(url) => url.parse::<Upstream>()?,
        UpstreamLocation::Directory(path) => Upstream::Directory(path.clone()),
    };
    let mut cache_config = CacheConfig::new(config.imagebuilder_path(), upstream, keyring, http);
    cache_config.disk_budget_bytes = config.imagebuilder_cache_bytes;
    cache_config.download_limit_bytes = config.download_limit_bytes;
    Ok(ImagebuilderCache::new(cache_config))
}

/// Opens the service for `config` and serves it on a background task (listening on
/// `config.listen`; port 0 picks a free port).
pub async fn spawn(config: Config) -> anyhow::Result<Running> {
    let workers = config.workers;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on `{}`", config.listen))?;
    let addr = listener.local_addr()?;
    let service = Service::open(config).await?;
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(service.clone().run(listener, workers, shutdown.clone()));
    Ok(Running {
        addr,
        shutdown,
        task,
        service,
    })
}

/// The job store the configuration names: PostgreSQL when `database_url` is set, else the
/// SQLite file `database` (its directory created if missing).
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    if let Some(url) = &config.database_url {
        let store = PostgresStore::open(url.expose())
            .await
            .context("cannot open the job store named by `database_url`")?;
        return Ok(Arc::new(store));
    }
    let database = config.database_path();
    if let Some(parent) = database.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create `{}`", parent.display()))?;
    }
    let store = SqliteStore::open(&database)
        .await
        .with_context(|| format!("cannot open the database `{}`", database.display()))?;
    Ok(Arc::new(store))
}

/// Runs the store collector every `gc_interval` until shutdown.
async fn collector_loop(state: AppState, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(state.config.gc_interval) => {}
        }
        let now = now();
        state.results.purge(now);
        match crate::gc::collect(
            &*state.store,
            &state.artifacts,
            now,
            state.config.orphan_grace,
        )
        .await
        {
            Ok(report) if report != crate::gc::GcReport::default() => {
                tracing::info!(?report, "store garbage collected");
            }
            Ok(_) => {}
            Err(error) => tracing::error!(error = %error, "store garbage collection failed"),
        }
    }
}

/// A directory upstream made absolute (the ImageBuilder cache wants absolute paths).
pub(crate) fn absolute_upstream(location: UpstreamLocation) -> anyhow::Result<UpstreamLocation> {
    match location {
        UpstreamLocation::Directory(path) => Ok(UpstreamLocation::Directory(absolute(&path)?)),
        http => Ok(http),
    }
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("cannot resolve `{}`", path.display()))
}

/// Reads one of `trusted_keys`: a usign public key file.
pub fn read_trusted_key(path: &std::path::Path) -> anyhow::Result<PublicKey> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read trusted key `{}`", path.display()))?;
    PublicKey::parse(&bytes)
        .with_context(|| format!("trusted key `{}` is not a usign public key", path.display()))
}
