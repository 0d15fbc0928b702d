//! [`AppState`]: everything a request handler or a worker needs, cheap to clone.
//!
//! The state is one `Arc` around [`State`]: axum clones it for every request, once per layer
//! that takes it, and a clone of twenty `Arc`s meant forty atomic operations per layer on
//! counters every core shares, a fifth of the server's samples for a cached GET.

use std::sync::Arc;

use attendant_proto::api::RequestLimits;
use attendant_proto::usign::{PublicKey, SecretKey};

use crate::artifacts::Artifacts;
use crate::channels::ops::Change;
use crate::config::Config;
use crate::document::Rendered;
use crate::known_hashes::KnownHashes;
use crate::metadata::Metadata;
use crate::metrics::Metrics;
use crate::request_memo::RequestMemo;
use crate::stats::{DownloadCounter, EventQueue};
use crate::store::{Store, UnixMillis};
use crate::view::ResultCache;

/// Shared server state: one `Arc`, clone freely; the fields are [`State`]'s.
#[derive(Clone)]
pub struct AppState(Arc<State>);

impl std::ops::Deref for AppState {
    type Target = State;

    fn deref(&self) -> &State {
        &self.0
    }
}

impl From<State> for AppState {
    fn from(state: State) -> Self {
        Self(Arc::new(state))
    }
}

/// What [`AppState`] holds; assembled once at start-up by [`State::new`], then shared.
pub struct State {
    /// The configuration.
    pub config: Arc<Config>,
    /// Request limits derived from the configuration.
    pub limits: Arc<RequestLimits>,
    /// The job store.
    pub store: Arc<dyn Store>,
    /// Upstream metadata.
    pub metadata: Arc<Metadata>,
    /// Built images.
    pub artifacts: Arc<Artifacts>,
    /// Finished results in memory.
    pub results: Arc<ResultCache>,
    /// Which request hashes the store holds, so an unknown one is answered without a query.
    pub known_hashes: Arc<KnownHashes>,
    /// Build request bodies already validated and hashed.
    pub request_memo: Arc<RequestMemo>,
    /// The metadata documents, rendered once per change of the metadata they show.
    pub documents: Arc<MetadataDocuments>,
    /// The public half of the image signing key, served at `/keys/<fingerprint>`.
    pub signing_public_key: Option<Arc<PublicKey>>,
    /// The image signing key itself, for channel images taken into the pool (set by
    /// [`crate::service::Service::open`]).
    pub signing_key: Option<Arc<SecretKey>>,
    /// The certificates of the images' ucert trailer, for remote workers' uploads signed here
    /// (see [`crate::worker::WorkerContext::signature_trailer`]).
    pub signature_trailer: Option<Arc<attendant_proto::ucert::Chain>>,
    /// Wakes in-process workers when a job is enqueued.
    pub wakeup: Arc<tokio::sync::Notify>,
    /// Renders the channel tree after each committed channel change (a no-op until the
    /// publisher is plugged in).
    pub publisher: Arc<dyn Publisher>,
    /// This process's counters, served at `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Image downloads not yet written to the store.
    pub downloads: Arc<DownloadCounter>,
    /// Build request events not yet written to the store.
    pub events: Arc<EventQueue>,
    /// Channel pool file downloads not yet written to the store (keyed by SHA-256 and name).
    pub channel_downloads: Arc<DownloadCounter>,
    /// The published channel files and the admin tree in memory ([`crate::channels::cache`]).
    pub channel_cache: Arc<crate::channels::cache::ChannelCache>,
    /// The verified ImageBuilder cache, handed to remote workers (`None` where no service
    /// opened one).
    pub imagebuilders: Option<Arc<crate::imagebuilder::ImagebuilderCache>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("listen", &self.config.listen)
            .finish_non_exhaustive()
    }
}

impl State {
    /// Assembles the state; `limits` are derived from `config`. Wrap it with
    /// [`AppState::from`] to share it.
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        metadata: Arc<Metadata>,
        artifacts: Artifacts,
        signing_public_key: Option<PublicKey>,
    ) -> Self {
        let mut limits = RequestLimits::new(
            u32::try_from(config.max_custom_rootfs_size_mb).unwrap_or(u32::MAX),
            config.max_defaults_length,
        );
        limits.max_body_bytes = config.limits.max_body_bytes;
        limits.max_packages = config.limits.max_packages;
        limits.max_identifier_length = config.limits.max_string_length;
        limits.max_repositories = config.limits.max_repositories;
        Self {
            config: Arc::new(config),
            limits: Arc::new(limits),
            store,
            metadata,
            artifacts: Arc::new(artifacts),
            results: Arc::new(ResultCache::default()),
            known_hashes: Arc::new(KnownHashes::default()),
            request_memo: Arc::new(RequestMemo::default()),
            documents: Arc::new(MetadataDocuments::default()),
            signing_public_key: signing_public_key.map(Arc::new),
            signing_key: None,
            signature_trailer: None,
            wakeup: Arc::new(tokio::sync::Notify::new()),
            publisher: no_publisher(),
            metrics: Arc::new(Metrics::default()),
            downloads: Arc::new(DownloadCounter::default()),
            events: Arc::new(EventQueue::default()),
            channel_downloads: Arc::new(DownloadCounter::default()),
            channel_cache: Arc::default(),
            imagebuilders: None,
        }
    }
}

/// `overview.json`, `branches.json` and `latest.json`: small, fetched on every LuCI page load and
/// by every selector, and changed only when upstream metadata does.
#[derive(Debug, Default)]
pub struct MetadataDocuments {
    /// `/json/v1/overview.json`.
    pub overview: Rendered,
    /// `/json/v1/branches.json`.
    pub branches: Rendered,
    /// `/json/v1/latest.json`.
    pub latest: Rendered,
}

/// The current time in Unix milliseconds.
pub fn now() -> UnixMillis {
    let elapsed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
}

/// Renders the tree after a committed change. `ch-publish`'s publisher plugs in here; until
/// then [`NoPublisher`] does nothing.
pub trait Publisher: Send + Sync {
    /// Called once after each committed change, with the change.
    fn publish<'a>(
        &'a self,
        state: &'a AppState,
        change: &'a Change,
    ) -> futures_util::future::BoxFuture<'a, Result<(), Box<dyn std::error::Error + Send + Sync>>>;
}

/// The publisher that publishes nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPublisher;

impl Publisher for NoPublisher {
    fn publish<'a>(
        &'a self,
        _state: &'a AppState,
        _change: &'a Change,
    ) -> futures_util::future::BoxFuture<'a, Result<(), Box<dyn std::error::Error + Send + Sync>>>
    {
        Box::pin(async { Ok(()) })
    }
}

/// The publisher of a new [`AppState`].
pub fn no_publisher() -> Arc<dyn Publisher> {
    Arc::new(NoPublisher)
}
