//! Build workers: claim a job, build it with the ImageBuilder, publish the images.
//!
//! One worker runs one job at a time (ASU's model); `serve` starts `workers` of them in-process
//! and `attendant-server worker` runs them alone. Per job (the steps of ASU's `build()`,
//! <https://github.com/openwrt/asu/blob/main/asu/build.py>):
//!
//! 1. [`Store::claim`] leases the job; a heartbeat task renews the
//!    lease and cancels the build if the lease was lost (another worker owns the job now);
//! 2. `container_setup`: the ImageBuilder is acquired from the cache (downloaded, verified,
//!    unpacked once); its repositories file and `keys/` are reset to the unpacked state and the
//!    request's extra `repositories` and `repository_keys` are written into them as ASU does
//!    (`worker/repositories.rs`);
//! 3. `validate_revision`: `make info`; a `version_code` other than the ImageBuilder's is
//!    "Received incorrect version ...";
//! 4. `validate_manifest`: the package list (with `diff_packages`, the removals first), then
//!    `make manifest ... STRIP_ABI=1`; failures name the missing and conflicting packages;
//!    `packages_versions` is checked against the manifest, by bare name (an apk manifest calls
//!    `libgcc` `libgcc1`: `check_manifest` maps the names) and only for the packages the
//!    fixups left in the build (a pinned `auc` built as `owut` on 24.10 is not a failure);
//! 5. `building_image`: `make image ... EXTRA_IMAGE_NAME=<12 hex> BIN_DIR=<private dir>`,
//!    with `FILES`, `ROOTFS_PARTSIZE`, `ROOTFS_FILESYSTEM` when asked;
//! 6. `signing_images` (with a key): `<image>.sig` for every image, hashes recomputed;
//! 7. the output directory moves into the store as `<request_hash>/`, the result is written,
//!    `done`.
//!
//! Failures are classified where they happen: infrastructure trouble (upstream unreachable,
//! mirror 5xx, an ImageBuilder archive whose checksum does not match yet because the mirror is
//! mid-sync, a full disk while downloading, unpacking, building or publishing, `make` missing)
//! puts the job back in the queue, not to be claimed before `retry_backoff` (doubled per
//! attempt) has passed, with the reason in its `last_error`, the log and the status answer's
//! `detail`; it is not cached. Only after `max_attempts` does it fail, cached for
//! [`GAVE_UP_TTL`] only. A build failure (the request's fault) is cached for
//! `build_failure_ttl`. A worker that dies holds its lease until
//! it expires, then the reaper ([`reap`]) re-queues the job and another worker builds it again.
//!
//! ImageBuilders are not made for parallel builds in one tree, so builds in the same unpacked
//! ImageBuilder take an exclusive file lock (`.attendant-build.lock`) for the `make` steps;
//! builds of different ImageBuilders run in parallel.
//!
//! Each attempt builds in a work directory of its own (`worker/attempts.rs`), locked while the
//! attempt lives; `make` runs in a process group of its own that gets `SIGTERM` when the worker
//! dies ([`crate::process`]), and the reaper's pass deletes the directories of dead attempts and
//! kills anything of theirs still running, found by [`ATTEMPT_ENV`] in its environment.
//!
//! This module runs the workers, the heartbeat, the reaper and records outcomes; steps 2–7 are
//! in `worker/steps.rs`, and [`WorkerContext`] in `worker/context.rs`.

mod attempts;
mod context;
pub mod intake;
pub mod remote;
mod repositories;
mod steps;

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use self::attempts::{ATTEMPT_ENV, Swept, sweep};
pub use self::context::WorkerContext;
pub(crate) use self::steps::{
    IMAGEBUILDER_KEY, Outcome, Signer, StageSink, Toolbox, WORKER_KEY, build, publish,
};
use crate::config::Config;
use crate::metrics::{BuildOutcome, Metrics};
use crate::state::now;
use crate::stats;
use crate::store::{Claim, EventOutcome, Failure, JobSpec, Store, StoreError, UnixMillis};
use attendant_proto::api::ImagebuilderStatus;
use futures_util::future::BoxFuture;
use std::sync::Arc;

/// How often an idle worker looks for work when nobody wakes it.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// Longest retry back-off (the first is `retry_backoff`, doubled per attempt).
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How long an infrastructure failure that exhausted its attempts stays cached (short: the
/// next request should try again, not replay an outage).
pub const GAVE_UP_TTL: Duration = Duration::from_secs(60);

/// Runs `count` workers and the lease reaper until `shutdown` is cancelled; in-flight builds
/// get `config.shutdown_timeout` to finish, then are abandoned (their lease expires and the
/// job runs again elsewhere).
pub async fn run_workers(context: WorkerContext, count: usize, shutdown: CancellationToken) {
    let hard_stop = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    let name = local_worker_name();
    for _ in 0..count {
        tasks.spawn(worker_loop(
            context.clone(),
            name.clone(),
            shutdown.clone(),
            hard_stop.clone(),
        ));
    }
    tasks.spawn(reaper_loop(context.clone(), shutdown.clone()));
    shutdown.cancelled().await;
    let drained = tokio::time::timeout(context.config.shutdown_timeout, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("builds still running at the shutdown deadline; their jobs will run again");
        hard_stop.cancel();
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
}

/// Re-queues jobs whose lease expired (their worker died). Returns what it did.
pub async fn reap(context: &WorkerContext) -> Result<crate::store::Reaped, StoreError> {
    let now = now();
    let failure = Failure {
        detail: "Error: the build was abandoned by its workers too many times".to_owned(),
        ..Failure::default()
    };
    let expires = now.saturating_add(millis(context.config.build_failure_ttl));
    let reaped = context
        .store
        .requeue_expired(now, context.config.max_attempts, &failure, expires)
        .await?;
    if reaped.requeued > 0 {
        context.wakeup.notify_waiters();
    }
    Ok(reaped)
}

async fn reaper_loop(context: WorkerContext, shutdown: CancellationToken) {
    let interval = context.config.job_lease / 2;
    loop {
        sweep_dead_attempts(&context).await;
        let uploads = intake::sweep_uploads(&*context.store, context.artifacts.root()).await;
        if uploads > 0 {
            tracing::warn!(
                uploads,
                "discarded remote uploads whose attempt lost its lease"
            );
        }
        match reap(&context).await {
            Ok(reaped) if reaped.requeued > 0 || reaped.failed > 0 => {
                tracing::warn!(
                    requeued = reaped.requeued,
                    failed = reaped.failed,
                    "reaped jobs with expired leases"
                );
            }
            Ok(_) => {}
            Err(error) => tracing::error!(error = %error, "lease reaper failed"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// Deletes dead attempts' work directories (their worker died: kill -9, a crash) and kills
/// what is left of their processes; runs at start-up and with every reaper pass.
async fn sweep_dead_attempts(context: &WorkerContext) {
    let root = context.config.work_path();
    match tokio::task::spawn_blocking(move || sweep(&root)).await {
        Ok(Ok(swept)) if swept != Swept::default() => {
            tracing::warn!(
                directories = swept.directories,
                processes = swept.processes,
                "removed the work of dead build attempts"
            );
        }
        Ok(Ok(_)) => {}
        Ok(Err(error)) => tracing::error!(error = %error, "cannot sweep the work directory"),
        Err(join) => tracing::error!(error = %join, "the work directory sweep failed"),
    }
}

async fn worker_loop(
    context: WorkerContext,
    name: String,
    shutdown: CancellationToken,
    hard_stop: CancellationToken,
) {
    let _alive = context.metrics.worker_alive();
    while !shutdown.is_cancelled() {
        let lease_until = now().saturating_add(millis(context.config.job_lease));
        match context.store.claim(&name, now(), lease_until).await {
            Ok(Some(claim)) => run_claim(&context, &name, claim, &hard_stop).await,
            Ok(None) => {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = context.wakeup.notified() => {}
                    () = tokio::time::sleep(POLL_INTERVAL) => {}
                }
            }
            Err(error) => {
                tracing::error!(worker = %name, error = %error, "cannot claim a job");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(POLL_INTERVAL) => {}
                }
            }
        }
    }
}

/// Runs one claimed job to its end (success, cached failure, retry or lost lease).
pub async fn run_claim(
    context: &WorkerContext,
    worker: &str,
    claim: Claim,
    hard_stop: &CancellationToken,
) {
    let span =
        tracing::info_span!("job", request_hash = %claim.request_hash, attempt = claim.attempt);
    async {
        let started = Instant::now();
        // The heartbeat runs in this task, not a spawned one: if this task dies (aborted, or
        // the process killed), the heartbeat stops too and the lease runs out.
        let outcome = tokio::select! {
            outcome = build_locally(context, worker, &claim) => Some(outcome),
            () = heartbeat(context, &claim) => None,
            () = hard_stop.cancelled() => None,
        };
        let Some(outcome) = outcome else {
            tracing::warn!("build abandoned: lease lost or shutdown deadline");
            return;
        };
        let written = record(
            &context.recorder(),
            &claim,
            worker,
            outcome,
            started.elapsed(),
        )
        .await;
        if let Err(error) = written {
            tracing::error!(error = %error, "cannot record the job's outcome");
        }
    }
    .instrument(span)
    .await;
}

/// Builds a claimed job in this process: the build steps, then signing and publishing here.
async fn build_locally(context: &WorkerContext, worker: &str, claim: &Claim) -> Outcome {
    let stages = StoreStages {
        store: &*context.store,
        claim,
    };
    let built = match build(context.toolbox(), claim, &stages).await {
        Ok(built) => built,
        Err(outcome) => return outcome,
    };
    let signer = context.signer();
    let outcome = async {
        if signer.key.is_some() {
            stages.stage(&ImagebuilderStatus::SigningImages).await?;
        }
        let mut response = built.response.clone();
        response
            .extra
            .insert(WORKER_KEY.to_owned(), serde_json::json!(worker));
        publish(
            &signer,
            &context.artifacts,
            &claim.request_hash,
            &built.bin_dir,
            response,
        )
        .await
    }
    .await;
    built.remove().await;
    match outcome {
        Ok(result) => Outcome::Done(result),
        Err(outcome) => outcome,
    }
}

/// An in-process worker's stages go to the store, fenced by the attempt.
struct StoreStages<'a> {
    store: &'a dyn Store,
    claim: &'a Claim,
}

impl StageSink for StoreStages<'_> {
    fn stage<'a>(&'a self, stage: &'a ImagebuilderStatus) -> BoxFuture<'a, Result<(), Outcome>> {
        Box::pin(async move {
            match self
                .store
                .set_stage(&self.claim.request_hash, self.claim.attempt, stage)
                .await
            {
                Ok(()) => Ok(()),
                Err(StoreError::LeaseLost { .. }) => Err(Outcome::Retry("lease lost".to_owned())),
                Err(error) => Err(Outcome::Retry(format!("cannot record the stage: {error}"))),
            }
        })
    }
}

/// What recording an outcome needs: the same for an in-process worker's build and a remote
/// worker's upload.
pub(crate) struct Recorder<'a> {
    /// The job store.
    pub(crate) store: &'a Arc<dyn Store>,
    /// The configuration (cache lifetimes, attempts, back-off).
    pub(crate) config: &'a Config,
    /// This process's counters.
    pub(crate) metrics: &'a Metrics,
}

/// Records how attempt `claim` of `worker` ended, through the fenced store updates: a result
/// is stored once, a failure cached, infrastructure trouble queued again after its back-off.
pub(crate) async fn record(
    recorder: &Recorder<'_>,
    claim: &Claim,
    worker: &str,
    outcome: Outcome,
    elapsed: Duration,
) -> Result<(), StoreError> {
    let store = recorder.store;
    let config = recorder.config;
    let metrics = recorder.metrics;
    let hash = &claim.request_hash;
    let now = now();
    match outcome {
        Outcome::Done(result) => {
            let ttl = result_ttl(config, &claim.request);
            store
                .finish(
                    hash,
                    claim.attempt,
                    &result,
                    now,
                    now.saturating_add(millis(ttl)),
                )
                .await?;
            tracing::info!(elapsed_ms = elapsed.as_millis(), "build done");
            let mut event = stats::event(&claim.request.request, None, EventOutcome::Success, now);
            event.packages = attendant_proto::api::normalized_packages(&claim.request.request);
            event.duration_ms = i64::try_from(elapsed.as_millis()).ok();
            stats::record(store, event);
            metrics.observe_build(BuildOutcome::Success);
            metrics.observe_worker_build(worker);
        }
        Outcome::Failed(failure) => {
            tracing::info!(detail = %failure.detail, "build failed");
            let expires = now.saturating_add(millis(config.build_failure_ttl));
            store
                .fail(hash, claim.attempt, &failure, now, expires)
                .await?;
            record_failure(recorder, claim, &failure, now);
        }
        Outcome::Retry(reason) if claim.attempt >= config.max_attempts => {
            tracing::warn!(reason = %reason, "giving up after the last attempt");
            let failure = Failure {
                detail: format!("Error: {reason}"),
                ..Failure::default()
            };
            let expires = now.saturating_add(millis(GAVE_UP_TTL));
            store
                .fail(hash, claim.attempt, &failure, now, expires)
                .await?;
            record_failure(recorder, claim, &failure, now);
        }
        Outcome::Retry(reason) => {
            let backoff = backoff(config.retry_backoff, claim.attempt);
            metrics.observe_build(BuildOutcome::Retry);
            tracing::warn!(
                reason = %reason,
                retry_in_ms = backoff.as_millis(),
                attempts_left = config.max_attempts.saturating_sub(claim.attempt),
                "infrastructure failure, the build will be retried"
            );
            store
                .retry(
                    hash,
                    claim.attempt,
                    &reason,
                    now.saturating_add(millis(backoff)),
                )
                .await?;
        }
    }
    Ok(())
}

/// A failure that was stored: in the statistics (anonymised) and this process's metrics.
fn record_failure(recorder: &Recorder<'_>, claim: &Claim, failure: &Failure, now: UnixMillis) {
    let mut event = stats::event(&claim.request.request, None, EventOutcome::Failure, now);
    event.detail = Some(stats::anonymise(&failure.detail));
    stats::record(recorder.store, event);
    recorder.metrics.observe_build(BuildOutcome::Failure);
}

fn backoff(first: Duration, attempt: u32) -> Duration {
    let factor = 1u32
        .checked_shl(attempt.saturating_sub(1))
        .unwrap_or(u32::MAX);
    first.saturating_mul(factor).min(MAX_BACKOFF)
}

/// How long a result is cached, as ASU decides it: defaults → `build_defaults_ttl`,
/// `packages_versions` → `build_ttl`,
/// otherwise `build_ttl_unversioned`.
fn result_ttl(config: &Config, spec: &JobSpec) -> Duration {
    if spec
        .request
        .defaults
        .as_deref()
        .is_some_and(|d| !d.is_empty())
    {
        config.build_defaults_ttl
    } else if !spec.request.packages_versions.is_empty() {
        config.build_ttl
    } else {
        config.build_ttl_unversioned
    }
}

/// Renews the lease every third of its length; returns when the lease was lost.
async fn heartbeat(context: &WorkerContext, claim: &Claim) {
    let every = context.config.job_lease / 3;
    loop {
        tokio::time::sleep(every).await;
        let until = now().saturating_add(millis(context.config.job_lease));
        match context
            .store
            .heartbeat(&claim.request_hash, claim.attempt, until)
            .await
        {
            Ok(()) => {}
            Err(StoreError::LeaseLost { .. }) => return,
            Err(error) => tracing::warn!(error = %error, "heartbeat failed"),
        }
    }
}

/// What `jobs.worker` records for this host's in-process workers: `local:<host>`. Remote
/// workers' names cannot hold a `:` ([`crate::store::is_worker_name`]), so the two never mix.
pub(crate) fn local_worker_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "worker".to_owned());
    format!("local:{host}")
}

pub(crate) fn millis(duration: Duration) -> UnixMillis {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_up_to_the_cap() {
        let first = Config::default().retry_backoff;
        assert_eq!(backoff(first, 1), Duration::from_secs(5));
        assert_eq!(backoff(first, 2), Duration::from_secs(10));
        assert_eq!(backoff(first, 4), Duration::from_secs(40));
        assert_eq!(backoff(first, 30), MAX_BACKOFF);
    }

    #[test]
    fn result_ttl_follows_asu() {
        let config = Config::default();
        let spec = |defaults: Option<&str>, versioned: bool| {
            let mut request =
                attendant_proto::api::BuildRequest::new("24.10.5", "x86/64", "generic");
            request.defaults = defaults.map(str::to_owned);
            if versioned {
                request
                    .packages_versions
                    .insert("tmux".to_owned(), "3".to_owned());
            }
            JobSpec {
                request,
                version_path: "releases/24.10.5".to_owned(),
                target: "x86".to_owned(),
                subtarget: "64".to_owned(),
                packages: Vec::new(),
                files: Vec::new(),
            }
        };
        assert_eq!(
            result_ttl(&config, &spec(Some("x"), true)),
            config.build_defaults_ttl
        );
        assert_eq!(result_ttl(&config, &spec(Some(""), true)), config.build_ttl);
        assert_eq!(
            result_ttl(&config, &spec(None, false)),
            config.build_ttl_unversioned
        );
    }
}
