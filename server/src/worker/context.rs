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

impl WorkerContext {
    /// What the build steps need of this context.
    pub(crate) fn toolbox(&self) -> super::Toolbox<'_> {
        super::Toolbox {
            config: &self.config,
            imagebuilders: &self.imagebuilders,
            builds_started: &self.builds_started,
        }
    }

    /// The images' signer.
    pub(crate) fn signer(&self) -> super::Signer {
        super::Signer {
            key: self.signing_key.clone(),
            trailer: self.signature_trailer.clone(),
        }
    }

    /// What recording an outcome needs of this context.
    pub(crate) fn recorder(&self) -> super::Recorder<'_> {
        super::Recorder {
            store: &self.store,
            config: &self.config,
            metrics: &self.metrics,
        }
    }
}

impl std::fmt::Debug for WorkerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerContext").finish_non_exhaustive()
    }
}
