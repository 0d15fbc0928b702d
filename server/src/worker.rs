//! Build workers: claim a job, build it with the ImageBuilder, publish the images.
//!
//! One worker runs one job at a time (ASU's model); `serve` starts `workers` of them in-process
//! and `attendant-server worker` runs them alone. Per job (the steps of ASU's `build()`,
//! <https://github.com/openwrt/asu/blob/main/asu/build.py>):
//!
//! 1. [`Store::claim`] leases the job; a heartbeat task renews the
//!    lease and cancels the build if the lease was lost (another worker owns the job now);
//! 2. `container_setup`: the ImageBuilder is acquired from the cache (downloaded, verified,
//!    unpacked once);
//! 3. `validate_revision`: `make info`; a `version_code` other than the ImageBuilder's is
//!    "Received incorrect version ...";
//! 4. `validate_manifest`: the package list (with `diff_packages`, the removals first), then
//!    `make manifest ... STRIP_ABI=1`; failures name the missing and conflicting packages;
//!    `packages_versions` is checked against the manifest, by bare name (an apk manifest calls
//!    `libgcc` `libgcc1`: [`check_manifest`] maps the names) and only for the packages the
//!    fixups left in the build (a pinned `auc` built as `owut` on 24.10 is not a failure);
//! 5. `building_image`: `make image ... EXTRA_IMAGE_NAME=<12 hex> BIN_DIR=<private dir>`,
//!    with `FILES`, `ROOTFS_PARTSIZE`, `ROOTFS_FILESYSTEM` when asked;
//! 6. `signing_images` (with a key): `<image>.sig` for every image, hashes recomputed;
//! 7. the output directory moves into the store as `<request_hash>/`, the result is written,
//!    `done`.
//!
//! Failures are classified where they happen: infrastructure trouble (upstream unreachable,
//! mirror 5xx, `make` missing) puts the job back in the queue with back-off and is not cached;
//! a build failure is cached for `build_failure_ttl`. A worker that dies holds its lease until
//! it expires, then the reaper ([`reap`]) re-queues the job and another worker builds it again.
//!
//! ImageBuilders are not made for parallel builds in one tree, so builds in the same unpacked
//! ImageBuilder take an exclusive file lock (`.attendant-build.lock`) for the `make` steps;
//! builds of different ImageBuilders run in parallel.
//!
//! The file is longer than most (about 780 lines of code): the steps above are written top to
//! bottom in the order a job runs, and all of them classify failures into the same `Outcome`
//! with the same `WorkerContext`. A child module for the steps would have to import those from
//! its parent, a module cycle; the steps are small functions instead.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use attendant_proto::api::imagebuilder::{
    check_manifest, is_size_error, parse_make_info, parse_manifest, scan_package_errors,
};
use attendant_proto::api::{
    BuildFailure, BuildResponse, ImageInfo, ImagebuilderInfo, ImagebuilderStatus, diff_packages,
};
use attendant_proto::upstream::{FlatProfile, parse_profiles};
use attendant_proto::usign::SecretKey;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::artifacts::{Artifacts, nonce};
use crate::config::Config;
use crate::imagebuilder::{IbError, IbSpec, ImagebuilderCache, Lease};
use crate::process::{self, Invocation, RunError};
use crate::signing::{sha256_file, sign_image};
use crate::state::now;
use crate::store::{Claim, Failure, JobSpec, Store, StoreError, UnixMillis};
use crate::view::{build_at, iso_time};

/// How often an idle worker looks for work when nobody wakes it.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// First retry back-off; doubled per attempt up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(5);
/// Longest retry back-off.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How long an infrastructure failure that exhausted its attempts stays cached (short: the
/// next request should try again, not replay an outage).
pub const GAVE_UP_TTL: Duration = Duration::from_secs(60);
/// Name of the build lock file inside an unpacked ImageBuilder.
const BUILD_LOCK: &str = ".attendant-build.lock";

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
    /// Woken when a job is enqueued in this process.
    pub wakeup: Arc<Notify>,
    /// Counts `make image` runs (tests and statistics).
    pub builds_started: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for WorkerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerContext").finish_non_exhaustive()
    }
}

/// Runs `count` workers and the lease reaper until `shutdown` is cancelled; in-flight builds
/// get `config.shutdown_timeout` to finish, then are abandoned (their lease expires and the
/// job runs again elsewhere).
pub async fn run_workers(context: WorkerContext, count: usize, shutdown: CancellationToken) {
    let hard_stop = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..count {
        let name = format!("{}-{index}", worker_id_prefix());
        tasks.spawn(worker_loop(
            context.clone(),
            name,
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

async fn worker_loop(
    context: WorkerContext,
    name: String,
    shutdown: CancellationToken,
    hard_stop: CancellationToken,
) {
    while !shutdown.is_cancelled() {
        let lease_until = now().saturating_add(millis(context.config.job_lease));
        match context.store.claim(&name, now(), lease_until).await {
            Ok(Some(claim)) => run_claim(&context, claim, &hard_stop).await,
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
pub async fn run_claim(context: &WorkerContext, claim: Claim, hard_stop: &CancellationToken) {
    let span =
        tracing::info_span!("job", request_hash = %claim.request_hash, attempt = claim.attempt);
    async {
        let started = Instant::now();
        // The heartbeat runs in this task, not a spawned one: if this task dies (aborted, or
        // the process killed), the heartbeat stops too and the lease runs out.
        let outcome = tokio::select! {
            outcome = build(context, &claim) => Some(outcome),
            () = heartbeat(context, &claim) => None,
            () = hard_stop.cancelled() => None,
        };
        let Some(outcome) = outcome else {
            tracing::warn!("build abandoned: lease lost or shutdown deadline");
            return;
        };
        let written = record(context, &claim, outcome, started.elapsed()).await;
        if let Err(error) = written {
            tracing::error!(error = %error, "cannot record the job's outcome");
        }
    }
    .instrument(span)
    .await;
}

/// How a build ended.
#[derive(Debug)]
enum Outcome {
    /// Built; the result JSON.
    Done(String),
    /// Failed for good; cached.
    Failed(Failure),
    /// Infrastructure trouble; try again later.
    Retry(String),
}

async fn record(
    context: &WorkerContext,
    claim: &Claim,
    outcome: Outcome,
    elapsed: Duration,
) -> Result<(), StoreError> {
    let store = &context.store;
    let config = &context.config;
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
        }
        Outcome::Failed(failure) => {
            tracing::info!(detail = %failure.detail, "build failed");
            let expires = now.saturating_add(millis(config.build_failure_ttl));
            store
                .fail(hash, claim.attempt, &failure, now, expires)
                .await?;
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
        }
        Outcome::Retry(reason) => {
            let backoff = backoff(claim.attempt);
            tracing::warn!(reason = %reason, retry_in_s = backoff.as_secs(), "build will be retried");
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

fn backoff(attempt: u32) -> Duration {
    let factor = 1u32
        .checked_shl(attempt.saturating_sub(1))
        .unwrap_or(u32::MAX);
    FIRST_BACKOFF.saturating_mul(factor).min(MAX_BACKOFF)
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

/// A failure with the output of the command that failed.
fn failed(failure: &BuildFailure, stdout: &str, stderr: &str) -> Outcome {
    Outcome::Failed(Failure {
        detail: failure.detail(),
        stdout: stdout.to_owned(),
        stderr: stderr.to_owned(),
    })
}

fn fatal(message: impl std::fmt::Display) -> Outcome {
    Outcome::Failed(Failure {
        detail: format!("Error: {message}"),
        ..Failure::default()
    })
}

async fn build(context: &WorkerContext, claim: &Claim) -> Outcome {
    let spec = &claim.request;
    if !spec.request.repositories.is_empty() {
        return fatal("custom repositories are not supported by this server");
    }
    // `make` runs inside the ImageBuilder, so BIN_DIR and FILES must not be relative to our
    // working directory (the default data dir is `./data`).
    let work = match std::path::absolute(context.config.work_path()) {
        Ok(root) => root.join(format!(
            "{}-{}-{}",
            claim.request_hash,
            claim.attempt,
            nonce()
        )),
        Err(error) => return Outcome::Retry(format!("cannot resolve the work directory: {error}")),
    };
    let outcome = match tokio::fs::create_dir_all(&work).await {
        Ok(()) => build_in(context, claim, spec, &work).await,
        Err(error) => Outcome::Retry(format!(
            "cannot create work directory `{}`: {error}",
            work.display()
        )),
    };
    if let Err(error) = tokio::fs::remove_dir_all(&work).await
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %work.display(), error = %error, "cannot delete work directory");
    }
    outcome
}

async fn stage(
    context: &WorkerContext,
    claim: &Claim,
    stage: ImagebuilderStatus,
) -> Result<(), Outcome> {
    tracing::debug!(stage = %stage, "stage");
    match context
        .store
        .set_stage(&claim.request_hash, claim.attempt, &stage)
        .await
    {
        Ok(()) => Ok(()),
        Err(StoreError::LeaseLost { .. }) => Err(Outcome::Retry("lease lost".to_owned())),
        Err(error) => Err(Outcome::Retry(format!("cannot record the stage: {error}"))),
    }
}

async fn build_in(context: &WorkerContext, claim: &Claim, spec: &JobSpec, work: &Path) -> Outcome {
    match build_steps(context, claim, spec, work).await {
        Ok(result) => Outcome::Done(result),
        Err(outcome) => outcome,
    }
}

async fn build_steps(
    context: &WorkerContext,
    claim: &Claim,
    spec: &JobSpec,
    work: &Path,
) -> Result<String, Outcome> {
    let deadline = Instant::now() + context.config.job_timeout;
    let request = &spec.request;

    stage(context, claim, ImagebuilderStatus::ContainerSetup).await?;
    let lease = acquire_imagebuilder(context, spec).await?;
    let lock = lock_imagebuilder(&lease).await?;

    stage(context, claim, ImagebuilderStatus::ValidateRevision).await?;
    let info = validate_revision(context, &lease, spec, deadline).await?;
    let packages = if request.diff_packages {
        let mut defaults: BTreeSet<String> = info.default_packages.iter().cloned().collect();
        if let Some(profile) = info.profile(&request.profile) {
            defaults.extend(profile.packages.iter().cloned());
        }
        diff_packages(&spec.packages, &defaults)
    } else {
        spec.packages.clone()
    };

    stage(context, claim, ImagebuilderStatus::ValidateManifest).await?;
    let manifest = validate_manifest(context, &lease, spec, &packages, deadline).await?;

    stage(context, claim, ImagebuilderStatus::BuildingImage).await?;
    let command = ImageCommand::new(claim, spec, &packages, &manifest, work);
    if let Some(defaults) = request.defaults.as_deref().filter(|d| !d.is_empty()) {
        write_defaults(&command.files, defaults).await?;
    }
    context
        .builds_started
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let image_out = make(context, &lease, command.args.clone(), deadline).await?;
    if is_size_error(&image_out.stderr) {
        return Err(failed(
            &BuildFailure::ExceedsStorage,
            &image_out.stdout,
            &image_out.stderr,
        ));
    }
    if image_out.status != Some(0) {
        return Err(failed(
            &BuildFailure::BuildFailed,
            &image_out.stdout,
            &image_out.stderr,
        ));
    }
    drop(lock);

    let profile = built_profile(&command.bin_dir, &request.profile, &image_out).await?;
    if context.signing_key.is_some() {
        stage(context, claim, ImagebuilderStatus::SigningImages).await?;
    }
    let images = finish_images(context, &command.bin_dir, profile.images.clone()).await?;
    let response = BuildResponse {
        enqueued_at: Some(iso_time(claim.enqueued_at)),
        request: Some(request.clone()),
        build_cmd: command.shown,
        build_cmd_packages: packages,
        stdout: Some(image_out.stdout),
        stderr: Some(image_out.stderr),
        manifest,
        images,
        signing_key: context
            .signing_key
            .as_ref()
            .map(|key| key.fingerprint().to_string()),
        ..BuildResponse::from_profile(claim.request_hash, profile)
    };
    let body = serde_json::to_string(&response)
        .map_err(|error| fatal(format_args!("cannot encode the result: {error}")))?;
    context
        .artifacts
        .publish(&command.bin_dir, &claim.request_hash)
        .await
        .map_err(|error| Outcome::Retry(error.to_string()))?;
    Ok(body)
}

/// `container_setup`: the ImageBuilder of the job's version and target, from the cache.
async fn acquire_imagebuilder(context: &WorkerContext, spec: &JobSpec) -> Result<Lease, Outcome> {
    let ib_spec = IbSpec::new(
        spec.request.version.clone(),
        spec.version_path.clone(),
        spec.target.clone(),
        spec.subtarget.clone(),
    );
    context
        .imagebuilders
        .acquire(&ib_spec)
        .await
        .map_err(|error| {
            if error.is_retryable() {
                Outcome::Retry(error.to_string())
            } else if matches!(error, IbError::NotFound { .. }) {
                fatal(&error)
            } else {
                fatal(format_args!("cannot set up the ImageBuilder: {error}"))
            }
        })
}

/// `validate_revision`: `make info`, and the request's `version_code` against the
/// ImageBuilder's revision.
async fn validate_revision(
    context: &WorkerContext,
    lease: &Lease,
    spec: &JobSpec,
    deadline: Instant,
) -> Result<ImagebuilderInfo, Outcome> {
    let request = &spec.request;
    let info_out = make(context, lease, vec!["info".to_owned()], deadline).await?;
    if info_out.status != Some(0) {
        let failure = BuildFailure::ImagebuilderSetup {
            returncode: info_out.status.unwrap_or(-1),
        };
        return Err(failed(&failure, &info_out.stdout, &info_out.stderr));
    }
    let info = parse_make_info(&info_out.stdout)
        .map_err(|error| fatal(format_args!("cannot read `make info`: {error}")))?;
    if !request.version_code.is_empty() && request.version_code != info.current_revision {
        let failure = BuildFailure::IncorrectVersion {
            actual: info.current_revision.clone(),
            requested: request.version_code.clone(),
        };
        return Err(failed(&failure, &info_out.stdout, &info_out.stderr));
    }
    Ok(info)
}

/// `validate_manifest`: `make manifest` resolves the package list; the manifest is checked
/// against the pinned versions.
async fn validate_manifest(
    context: &WorkerContext,
    lease: &Lease,
    spec: &JobSpec,
    packages: &[String],
    deadline: Instant,
) -> Result<BTreeMap<String, String>, Outcome> {
    let args = vec![
        "manifest".to_owned(),
        format!("PROFILE={}", spec.request.profile),
        format!("PACKAGES={}", packages.join(" ")),
        "STRIP_ABI=1".to_owned(),
    ];
    let manifest_out = make(context, lease, args, deadline).await?;
    if manifest_out.status != Some(0) {
        let errors = scan_package_errors(&manifest_out.stderr);
        let failure = BuildFailure::ImpossiblePackageSelection(errors);
        return Err(failed(&failure, &manifest_out.stdout, &manifest_out.stderr));
    }
    let manifest = parse_manifest(&manifest_out.stdout)
        .map_err(|error| fatal(format_args!("cannot read the manifest: {error}")))?;
    if let Err(failure) = check_manifest(&manifest, &pinned_and_built(spec)) {
        return Err(failed(&failure, &manifest_out.stdout, &manifest_out.stderr));
    }
    Ok(manifest)
}

/// The `make image` command: what runs, and what the response shows.
struct ImageCommand {
    /// The arguments of `make`.
    args: Vec<String>,
    /// `build_cmd` as ASU shows it: its container paths, not this host's private directories.
    shown: Vec<String>,
    /// Where the images go (`BIN_DIR`).
    bin_dir: PathBuf,
    /// The `FILES` directory (used when the request carries `defaults`).
    files: PathBuf,
}

impl ImageCommand {
    fn new(
        claim: &Claim,
        spec: &JobSpec,
        packages: &[String],
        manifest: &BTreeMap<String, String>,
        work: &Path,
    ) -> Self {
        let request = &spec.request;
        // ASU names the images after the installed packages, so two selections never share
        // a file name in one store directory.
        let names: Vec<&str> = manifest.keys().map(String::as_str).collect();
        let packages_hash = hex::encode(Sha256::digest(names.join(" ").as_bytes()));
        let extra_name = packages_hash.get(..12).unwrap_or(&packages_hash).to_owned();
        let bin_dir = work.join("bin");
        let files = work.join("files");
        let common = [
            format!("PROFILE={}", request.profile),
            format!("PACKAGES={}", packages.join(" ")),
            format!("EXTRA_IMAGE_NAME={extra_name}"),
        ];
        let mut args = vec!["image".to_owned()];
        args.extend(common.iter().cloned());
        args.push(format!("BIN_DIR={}", bin_dir.display()));
        let mut shown = vec!["make".to_owned(), "image".to_owned()];
        shown.extend(common);
        shown.push(format!("BIN_DIR=/builder/{}", claim.request_hash));
        if request.defaults.as_deref().is_some_and(|d| !d.is_empty()) {
            args.push(format!("FILES={}", files.display()));
            shown.push("FILES=/builder/asu-files".to_owned());
        }
        let mut both = |arg: String| {
            args.push(arg.clone());
            shown.push(arg);
        };
        if let Some(size) = request.rootfs_size_mb {
            both(format!("ROOTFS_PARTSIZE={size}"));
        }
        if let Some(filesystem) = request.filesystem {
            both(format!("ROOTFS_FILESYSTEM={filesystem}"));
        }
        Self {
            args,
            shown,
            bin_dir,
            files,
        }
    }
}

/// The built profile from the `profiles.json` that `make image` wrote, flattened.
async fn built_profile(
    bin_dir: &Path,
    profile: &str,
    image_out: &process::Output,
) -> Result<FlatProfile, Outcome> {
    let no_json = || {
        failed(
            &BuildFailure::NoJsonFile,
            &image_out.stdout,
            &image_out.stderr,
        )
    };
    let bytes = tokio::fs::read(bin_dir.join("profiles.json"))
        .await
        .map_err(|_| no_json())?;
    let profiles = parse_profiles(&bytes).map_err(|_| no_json())?;
    let Some(mut flat) = profiles.flatten(profile) else {
        return Err(failed(
            &BuildFailure::ProfileNotFound,
            &image_out.stdout,
            &image_out.stderr,
        ));
    };
    flat.build_at = profiles.source_date_epoch.seconds().map(build_at);
    Ok(flat)
}

/// The `packages_versions` entries the build still asks for: the fixups ([`attendant_proto::api::apply_fixups`])
/// may have removed a pinned package or replaced it with its successor, whose version nobody
/// pinned. ASU checks them anyway and fails the build; we check what we built.
fn pinned_and_built(spec: &JobSpec) -> BTreeMap<String, String> {
    spec.request
        .packages_versions
        .iter()
        .filter(|(name, _)| {
            let name = name.strip_prefix('+').unwrap_or(name);
            spec.packages.iter().any(|package| package == name)
        })
        .map(|(name, version)| (name.clone(), version.clone()))
        .collect()
}

/// Recomputes every image's SHA-256 from the file and, with a key, signs it.
async fn finish_images(
    context: &WorkerContext,
    bin_dir: &Path,
    mut images: Vec<ImageInfo>,
) -> Result<Vec<ImageInfo>, Outcome> {
    let key = context.signing_key.clone();
    let dir = bin_dir.to_owned();
    let finished = tokio::task::spawn_blocking(move || {
        for image in &mut images {
            let name = &image.name;
            // The name comes from the ImageBuilder's profiles.json: it must stay in `bin_dir`.
            if name.is_empty() || name.contains('/') || name.starts_with('.') {
                return Err(format!("image name `{name}` is not a plain file name"));
            }
            let path = dir.join(name);
            let sha256 = match &key {
                Some(key) => {
                    let (sha256, signature) =
                        sign_image(key, &path).map_err(|error| error.to_string())?;
                    image.signature = Some(signature);
                    sha256
                }
                None => sha256_file(&path).map_err(|error| error.to_string())?,
            };
            image.sha256_unsigned.clone_from(&sha256);
            image.sha256 = sha256;
        }
        Ok(images)
    })
    .await;
    match finished {
        Ok(Ok(images)) => Ok(images),
        Ok(Err(message)) => Err(fatal(message)),
        Err(join) => Err(Outcome::Retry(format!("signing task failed: {join}"))),
    }
}

async fn write_defaults(files: &Path, defaults: &str) -> Result<(), Outcome> {
    let dir = files.join("etc/uci-defaults");
    let write = async {
        tokio::fs::create_dir_all(&dir).await?;
        tokio::fs::write(dir.join("99-asu-defaults"), defaults).await
    };
    write
        .await
        .map_err(|error| Outcome::Retry(format!("cannot write the defaults script: {error}")))
}

/// Runs `make <args>` in the ImageBuilder; a timeout is a build failure, a missing `make` an
/// infrastructure one.
async fn make(
    context: &WorkerContext,
    lease: &Lease,
    args: Vec<String>,
    deadline: Instant,
) -> Result<process::Output, Outcome> {
    let remaining = deadline.saturating_duration_since(Instant::now());
    if remaining.is_zero() {
        return Err(fatal(format_args!(
            "the build took longer than {}",
            humantime::format_duration(context.config.job_timeout)
        )));
    }
    let mut invocation = Invocation::new("make", args, lease.dir.clone());
    invocation.timeout = remaining;
    invocation.output_cap = context.config.output_cap_bytes;
    match process::run(invocation).await {
        Ok(output) => Ok(output),
        Err(error @ RunError::Timeout { .. }) => Err(fatal(&error)),
        Err(error) => Err(Outcome::Retry(error.to_string())),
    }
}

/// An exclusive lock on the ImageBuilder tree for the duration of the `make` steps.
async fn lock_imagebuilder(lease: &Lease) -> Result<std::fs::File, Outcome> {
    let path: PathBuf = lease.dir.join(BUILD_LOCK);
    let locked = tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        file.lock()?;
        Ok::<_, std::io::Error>(file)
    })
    .await;
    match locked {
        Ok(Ok(file)) => Ok(file),
        Ok(Err(error)) => Err(Outcome::Retry(format!(
            "cannot lock the ImageBuilder: {error}"
        ))),
        Err(join) => Err(Outcome::Retry(format!(
            "cannot lock the ImageBuilder: {join}"
        ))),
    }
}

fn worker_id_prefix() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "worker".to_owned());
    format!("{host}-{}", std::process::id())
}

fn millis(duration: Duration) -> UnixMillis {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_up_to_the_cap() {
        assert_eq!(backoff(1), Duration::from_secs(5));
        assert_eq!(backoff(2), Duration::from_secs(10));
        assert_eq!(backoff(4), Duration::from_secs(40));
        assert_eq!(backoff(30), MAX_BACKOFF);
    }

    #[test]
    fn pins_of_packages_the_fixups_replaced_are_not_checked() {
        let mut request = attendant_proto::api::BuildRequest::new("24.10.5", "x86/64", "generic");
        request
            .packages_versions
            .insert("auc".to_owned(), "0.3.2-r2".to_owned());
        request
            .packages_versions
            .insert("+tmux".to_owned(), "3.5a-r1".to_owned());
        let spec = JobSpec {
            request,
            version_path: "releases/24.10.5".to_owned(),
            target: "x86".to_owned(),
            subtarget: "64".to_owned(),
            packages: vec!["tmux".to_owned(), "owut".to_owned()],
        };
        let pinned = pinned_and_built(&spec);
        assert_eq!(pinned.keys().collect::<Vec<_>>(), ["+tmux"]);
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
