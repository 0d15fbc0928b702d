//! What `serve` does for channels on its own: run the importer every
//! `channels.import_interval`, and every `channels.publish_interval` settle finished channel
//! builds, halt or advance rollouts by their outcome reports ([`crate::channels::rollout`]),
//! publish what changed in the tree, sign it afresh before it expires, push it to mirrors, and
//! reap metadata no reader needs any more.
//!
//! The same publisher runs after every change committed in this process (it is the
//! [`AppState`]'s publisher), so a CLI command's change is published when the command returns.
//!
//! One publisher at a time across processes and hosts: each round takes the database lock
//! [`PUBLISH_LOCK`] (a lease, so a publisher that dies loses it) and does nothing when another
//! holds it. A round publishes when a channel or device changed since this process last
//! published (the store's revisions say which), when nothing is published yet, or when the
//! published tree expires within `channels.refresh_margin`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use attendant_proto::usign::SecretKey;
use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::channels::apply::Publisher as ApplyPublisher;
use crate::channels::builds::settle;
use crate::channels::keys::{MetadataSigner, REVOCATIONS_FILE};
use crate::channels::mirror;
use crate::channels::ops::Change;
use crate::channels::pool::{Pool, PoolError};
use crate::channels::publish::{
    Changed, POOL, PublishError, PublishOptions, PublishReport, publish, published_expiry, reap,
};
use crate::config::Config;
use crate::imagebuilder::error_chain;
use crate::state::AppState;
use crate::store::{Store, StoreError};

/// The database lock held while publishing.
pub const PUBLISH_LOCK: &str = "channels-publish";

/// How long the publish lock lasts without renewal; longer than any publication takes.
const LOCK_TTL: Duration = Duration::from_secs(600);

/// Why a round failed; the published tree is unchanged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// The channel store failed.
    #[error("the channel store failed")]
    Store(#[from] StoreError),
    /// Publication failed.
    #[error("publication failed")]
    Publish(#[from] PublishError),
    /// The image pool failed.
    #[error("the image pool failed")]
    Pool(#[from] PoolError),
    /// The publishing thread panicked.
    #[error("the publishing thread stopped unexpectedly")]
    Thread,
}

/// The channel side of `serve`.
pub struct Publisher {
    store: Arc<dyn Store>,
    config: Arc<Config>,
    signer: Arc<MetadataSigner>,
    holder: String,
    published: Option<Revisions>,
    last_reap: Option<Instant>,
    last_warning: Option<Instant>,
}

/// How often the delegation's approaching end is logged.
const WARNING_EVERY: Duration = Duration::from_secs(6 * 3600);

/// The store's revisions of the tree that was last published from this process.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Revisions {
    channels: BTreeMap<String, u64>,
    devices: BTreeMap<(String, String), u64>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("holder", &self.holder)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// A publisher signing with `signer` (the lock holder name is unique per process).
    pub fn new(store: Arc<dyn Store>, config: Arc<Config>, signer: Arc<MetadataSigner>) -> Self {
        Self {
            store,
            config,
            signer,
            holder: format!(
                "publish-{}-{}",
                std::process::id(),
                crate::artifacts::nonce()
            ),
            published: None,
            last_reap: None,
            last_warning: None,
        }
    }

    /// One round: publishes if needed (see the module docs); `None` when there was nothing to
    /// do or another process holds the lock.
    pub async fn round(&mut self, now: SystemTime) -> Result<Option<PublishReport>, ScheduleError> {
        let now_ms = unix_millis(now);
        let store = self.store.clone();
        let ttl = i64::try_from(LOCK_TTL.as_millis()).unwrap_or(i64::MAX);
        if !store
            .channels()
            .try_lock(PUBLISH_LOCK, &self.holder, ttl, now_ms)
            .await?
        {
            return Ok(None);
        }
        let result = self.round_locked(now).await;
        if let Err(error) = store.channels().unlock(PUBLISH_LOCK, &self.holder).await {
            tracing::warn!(%error, "cannot release the publish lock; it expires on its own");
        }
        result
    }

    async fn round_locked(
        &mut self,
        now: SystemTime,
    ) -> Result<Option<PublishReport>, ScheduleError> {
        let settings = &self.config.channels;
        let out = self.config.channels_path();
        let snapshot = self.store.channels().snapshot().await?;
        let revisions = Revisions {
            channels: snapshot.revisions.clone(),
            devices: snapshot.device_revisions.clone(),
        };
        let now_seconds = unix_millis(now) / 1000;
        if let Some(warning) = self
            .signer
            .expiry_warning(now_seconds, settings.delegation_warning)
            && self
                .last_warning
                .is_none_or(|last| last.elapsed() >= WARNING_EVERY)
        {
            self.last_warning = Some(Instant::now());
            tracing::warn!(%warning, "channel signing delegation ends soon");
        }
        let expiry = {
            let out = out.clone();
            tokio::task::spawn_blocking(move || published_expiry(&out))
                .await
                .map_err(|_| ScheduleError::Thread)??
        };
        let margin = i64::try_from(settings.refresh_margin().as_secs()).unwrap_or(i64::MAX);
        let expiring = expiry.is_none_or(|(_, expires)| expires - now_seconds <= margin);
        let changed = match &self.published {
            _ if expiring => Changed::Unknown,
            None => Changed::Unknown,
            Some(published) if *published == revisions => {
                self.reap_if_due(now).await;
                return Ok(None);
            }
            Some(published) => Changed::Devices(
                revisions
                    .devices
                    .iter()
                    .filter(|(key, revision)| published.devices.get(*key) != Some(revision))
                    .map(|(key, _)| key.clone())
                    .collect::<BTreeSet<_>>(),
            ),
        };
        let serial = self.store.channels().next_serial().await?;
        let mut options = PublishOptions::new(
            serial,
            now_seconds,
            settings.metadata_expiry,
            settings.refresh_margin(),
        );
        options.not_after = Some(self.signer.expires_at());
        options.keys = vec![(
            self.signer.delegation_file_name(),
            self.signer.delegation().to_vec(),
        )];
        if let Some(revocations) = self.signer.revocations() {
            options
                .keys
                .push((REVOCATIONS_FILE.to_owned(), revocations.to_vec()));
        }
        let tree: Vec<_> = snapshot.channels.into_values().collect();
        let signer = self.signer.clone();
        let target = out.clone();
        let report = tokio::task::spawn_blocking(move || {
            publish(&tree, &changed, &target, &*signer, &options)
        })
        .await
        .map_err(|_| ScheduleError::Thread)??;
        self.published = Some(revisions);
        mirror::push(&settings.mirror_push, &out, report.serial).await;
        crate::streams::ops::refresh_after_publication(&self.config, now_seconds).await;
        for warning in &report.warnings {
            tracing::warn!(%warning, "channel entry left out of the publication");
        }
        self.reap_if_due(now).await;
        Ok(Some(report))
    }

    /// Reaps at most every quarter of the grace period (at least a minute apart).
    async fn reap_if_due(&mut self, now: SystemTime) {
        let grace = self.config.channels.orphan_grace;
        let every = (grace / 4).max(Duration::from_secs(60));
        if self.last_reap.is_some_and(|last| last.elapsed() < every) {
            return;
        }
        self.last_reap = Some(Instant::now());
        let out = self.config.channels_path();
        let reaped = tokio::task::spawn_blocking(move || {
            let report = reap(&out, grace, now)?;
            // The pool keeps what any kept publication references (paths under `pool/`).
            let referenced: HashSet<String> = report
                .referenced_pool
                .iter()
                .filter_map(|path| path.strip_prefix("pool/").map(str::to_owned))
                .collect();
            let pool = Pool::new(out.join(POOL)).reap(&referenced, grace, now)?;
            Ok::<_, ScheduleError>((report.removed.len(), pool.deleted.len()))
        })
        .await;
        match reaped {
            Ok(Ok((0, 0))) => {}
            Ok(Ok((metadata, pool))) => {
                tracing::info!(metadata, pool, "unreferenced channel files reaped");
            }
            Ok(Err(error)) => {
                tracing::warn!(error = %error_chain(&error), "channel reaping failed");
            }
            Err(_) => tracing::warn!("channel reaping stopped unexpectedly"),
        }
    }
}

/// A [`Publisher`] shared by `serve`'s schedule and the operations run in this process
/// ([`crate::channels::apply::Publisher`]: every committed change is published at once).
#[derive(Debug)]
pub struct SharedPublisher {
    publisher: tokio::sync::Mutex<Publisher>,
    image_key: Option<Arc<SecretKey>>,
}

impl SharedPublisher {
    /// Shares `publisher`; `image_key` (the top-level `signing_key`) signs settled builds'
    /// images in the pool.
    pub fn new(publisher: Publisher, image_key: Option<Arc<SecretKey>>) -> Self {
        Self {
            publisher: tokio::sync::Mutex::new(publisher),
            image_key,
        }
    }

    /// One round now.
    pub async fn round(&self) -> Result<Option<PublishReport>, ScheduleError> {
        self.publisher.lock().await.round(SystemTime::now()).await
    }

    /// One round now for `state`'s server: a publication is served from its next request on.
    async fn round_for(&self, state: &AppState) -> Result<Option<PublishReport>, ScheduleError> {
        let report = self.round().await?;
        if report.is_some() {
            let root = state.config.channels_path();
            state.channel_cache.files.refresh(&root).await;
        }
        Ok(report)
    }

    /// Every `channels.publish_interval` until `shutdown`: settles finished channel builds
    /// (their images into the pool), then publishes if needed; errors are logged.
    pub async fn run(self: Arc<Self>, state: AppState, shutdown: CancellationToken) {
        let interval = state.config.channels.publish_interval;
        if interval.is_zero() {
            return;
        }
        let mut last_prune: Option<Instant> = None;
        loop {
            if last_prune.is_none_or(|last| last.elapsed() >= REPORT_PRUNE_EVERY) {
                last_prune = Some(Instant::now());
                let pruned = crate::channels::reports::prune(&state).await;
                if pruned > 0 {
                    tracing::info!(pruned, "outcome reports of removed builds deleted");
                }
            }
            match settle(&state, self.image_key.as_deref(), SETTLE_ACTOR).await {
                Ok(report) => {
                    for (build, reason) in &report.failed {
                        tracing::warn!(channel = %build.channel, device = %build.device, number = build.number, %reason, "channel build failed");
                    }
                }
                Err(error) => {
                    tracing::error!(error = %error_chain(&error), "settling channel builds failed");
                }
            }
            // Soak times end without a report arriving; a halt or advance publishes at once.
            crate::channels::rollout::evaluate_all(&state, crate::state::now()).await;
            match self.round_for(&state).await {
                Ok(Some(report)) => tracing::info!(
                    serial = report.serial,
                    written = report.written.len(),
                    kept = report.kept,
                    "channels published"
                ),
                Ok(None) => {}
                Err(error) => {
                    tracing::error!(error = %error_chain(&error), "channel publication failed");
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }
}

impl ApplyPublisher for SharedPublisher {
    fn publish<'a>(
        &'a self,
        state: &'a AppState,
        _change: &'a Change,
    ) -> BoxFuture<'a, Result<(), Box<dyn std::error::Error + Send + Sync>>> {
        Box::pin(async move {
            self.round_for(state)
                .await
                .map(|_| ())
                .map_err(|error| Box::new(error) as Box<dyn std::error::Error + Send + Sync>)
        })
    }
}

/// Runs the importer every `channels.import_interval` (never when 0) until `shutdown`.
pub async fn run_importer(state: AppState, key: Arc<SecretKey>, shutdown: CancellationToken) {
    let interval = state.config.channels.import_interval;
    if interval.is_zero() || state.config.channels.auto.is_empty() {
        return;
    }
    loop {
        match crate::channels::import::import(&state, Some(&key), &[]).await {
            Ok(report) => {
                for outcome in &report.outcomes {
                    tracing::info!(channel = %outcome.channel, device = %outcome.device, result = ?outcome.result, "import");
                }
            }
            Err(error) => tracing::error!(error = %error_chain(&error), "import failed"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// How often `serve` deletes the outcome reports of builds the tree no longer has (a statement
/// per device, so not every round).
const REPORT_PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Who settles builds in the audit log.
const SETTLE_ACTOR: &str = "serve";

fn unix_millis(at: SystemTime) -> i64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}
