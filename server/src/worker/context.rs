//! [`WorkerContext`]: everything a build worker needs, cheap to clone.

use std::sync::Arc;

use attendant_proto::ucert::Chain;
use attendant_proto::usign::SecretKey;
use tokio::sync::Notify;

use crate::artifacts::Artifacts;
use crate::config::Config;
use crate::imagebuilder::ImagebuilderCache;
use crate::store::Store;

/// Everything a worker needs.
#[derive(Clone)]
pub struct WorkerContext {
    /// The configuration.
    pub config: Arc<Config>,
    /// The job store.
    pub store: Arc<dyn Store>,
    /// The ImageBuilder cache.
    pub imagebuilders: Arc<ImagebuilderCache>,
    /// Where finished images go.
    pub artifacts: Arc<Artifacts>,
    /// The image signing key, if any.
    pub signing_key: Option<Arc<SecretKey>>,
    /// With `signature_trailer` on: the certificates that go before the signature in each
    /// image's ucert trailer (none when `signing_certificate` is unset); `None`: no trailers.
    pub signature_trailer: Option<Arc<Chain>>,
    /// Woken when a job is enqueued in this process.
    pub wakeup: Arc<Notify>,
    /// Counts `make image` runs (tests and statistics).
    pub builds_started: Arc<std::sync::atomic::AtomicU64>,
    /// This process's counters (builds by outcome, workers alive).
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl std::fmt::Debug for WorkerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerContext").finish_non_exhaustive()
    }
}
