//! The ImageBuilder steps of one job, in the order they run (see the list in [`super`]), and
//! the [`Outcome`] every failure is classified into where it happens.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use attendant_proto::api::imagebuilder::{
    check_manifest, is_size_error, parse_make_info, parse_manifest, scan_package_errors,
};
use attendant_proto::api::{
    AllowList, BuildFailure, BuildResponse, ImageInfo, ImagebuilderInfo, ImagebuilderStatus,
    RequestHash, diff_packages,
};
use attendant_proto::ucert::Chain;
use attendant_proto::upstream::{FlatProfile, parse_profiles};
use attendant_proto::usign::SecretKey;
use futures_util::future::BoxFuture;
use sha2::{Digest, Sha256};

use super::attempts::{ATTEMPT_ENV, AttemptDir};
use super::repositories::{self, Extra};
use crate::artifacts::{ArtifactError, Artifacts, check_output, nonce};
use crate::config::Config;
use crate::imagebuilder::{IbError, IbSpec, ImagebuilderCache, Lease};
use crate::process::{self, Invocation, RunError};
use crate::signing::{
    SigningError, sha256_file, sign_image, sign_image_with_trailer, takes_trailer,
};
use crate::store::{Claim, EmbeddedFile, Failure, JobSpec};
use crate::view::{build_at, iso_time};

/// Name of the build lock file inside an unpacked ImageBuilder.
const BUILD_LOCK: &str = ".attendant-build.lock";

/// How a build ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Built; the result JSON.
    Done(String),
    /// Failed for good; cached.
    Failed(Failure),
    /// Infrastructure trouble; try again later.
    Retry(String),
}

/// A failure with the output of the command that failed.
fn failed(failure: &BuildFailure, stdout: &str, stderr: &str) -> Outcome {
    Outcome::Failed(Failure {
        detail: failure.detail(),
        stdout: stdout.to_owned(),
        stderr: stderr.to_owned(),
    })
}

pub(crate) fn fatal(message: impl std::fmt::Display) -> Outcome {
    Outcome::Failed(Failure {
        detail: format!("Error: {message}"),
        ..Failure::default()
    })
}

/// What the build steps need besides the job: the same for an in-process worker and a remote
/// one, neither of which hands the steps a store.
#[derive(Clone, Copy)]
pub(crate) struct Toolbox<'a> {
    /// The configuration (limits, timeouts, the work directory).
    pub(crate) config: &'a Config,
    /// The ImageBuilder cache.
    pub(crate) imagebuilders: &'a ImagebuilderCache,
    /// Counts `make image` runs.
    pub(crate) builds_started: &'a AtomicU64,
}

/// Where the steps report their stage: the store for an in-process worker, the main server for
/// a remote one. `Err` stops the build (the attempt lost its lease).
pub(crate) trait StageSink: Sync {
    /// Records `stage` for the running attempt.
    fn stage<'a>(&'a self, stage: &'a ImagebuilderStatus) -> BoxFuture<'a, Result<(), Outcome>>;
}

/// The images' signer: the main server's key, which never leaves it.
#[derive(Clone, Default)]
pub(crate) struct Signer {
    /// The image signing key, if any.
    pub(crate) key: Option<Arc<SecretKey>>,
    /// The certificates of the ucert trailer (see [`super::WorkerContext::signature_trailer`]).
    pub(crate) trailer: Option<Arc<Chain>>,
}

/// A built, not yet signed result in its attempt's work directory.
pub(crate) struct Built {
    /// The work directory; [`Built::remove`] deletes it.
    attempt: AttemptDir,
    /// The `BIN_DIR` output, checked to hold only regular files and directories.
    pub(crate) bin_dir: PathBuf,
    /// The answer, with its images' hashes and signatures still to be filled in.
    pub(crate) response: BuildResponse,
}

impl Built {
    /// Deletes the work directory.
    pub(crate) async fn remove(self) {
        self.attempt.remove().await;
    }
}

/// Builds one claimed job in a private work directory; on failure the directory is deleted,
/// on success the caller deletes it with [`Built::remove`] once the output is published.
pub(crate) async fn build(
    tools: Toolbox<'_>,
    claim: &Claim,
    stages: &dyn StageSink,
) -> Result<Built, Outcome> {
    let spec = &claim.request;
    // `make` runs inside the ImageBuilder, so BIN_DIR and FILES must not be relative to our
    // working directory (the default data dir is `./data`).
    let root = match std::path::absolute(tools.config.work_path()) {
        Ok(root) => root,
        Err(error) => {
            return Err(Outcome::Retry(format!(
                "cannot resolve the work directory: {error}"
            )));
        }
    };
    let name = format!("{}-{}-{}", claim.request_hash, claim.attempt, nonce());
    let attempt = match AttemptDir::create(&root, &name) {
        Ok(attempt) => attempt,
        Err(error) => {
            return Err(Outcome::Retry(format!(
                "cannot create a work directory in `{}`: {error}",
                root.display()
            )));
        }
    };
    match build_steps(tools, claim, spec, attempt.path(), stages).await {
        Ok((bin_dir, response)) => Ok(Built {
            attempt,
            bin_dir,
            response,
        }),
        Err(outcome) => {
            attempt.remove().await;
            Err(outcome)
        }
    }
}

/// Signs the images of a built output (recomputing every image's SHA-256 and size from the
/// file), and moves the output into the store as the job's directory; returns the result JSON.
pub(crate) async fn publish(
    signer: &Signer,
    artifacts: &Artifacts,
    request_hash: &RequestHash,
    bin_dir: &Path,
    mut response: BuildResponse,
) -> Result<String, Outcome> {
    response.images = finish_images(signer, bin_dir, std::mem::take(&mut response.images)).await?;
    response.signing_key = signer.key.as_ref().map(|key| key.fingerprint().to_string());
    let body = serde_json::to_string(&response)
        .map_err(|error| fatal(format_args!("cannot encode the result: {error}")))?;
    artifacts
        .publish(bin_dir, request_hash)
        .await
        .map_err(infrastructure)?;
    Ok(body)
}

/// The value of [`ATTEMPT_ENV`] for the attempt building in `work`: the name of its work
/// directory, unique on the host (the nonce tells apart two servers building the same request).
fn attempt_marker(work: &Path) -> String {
    work.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

async fn stage(stages: &dyn StageSink, stage: ImagebuilderStatus) -> Result<(), Outcome> {
    tracing::debug!(stage = %stage, "stage");
    stages.stage(&stage).await
}

/// The result key naming the ImageBuilder archive and its SHA-256.
pub(crate) const IMAGEBUILDER_KEY: &str = "imagebuilder";

/// The result key naming the worker that built it (`local:<host>` or a remote worker's name);
/// like [`IMAGEBUILDER_KEY`], not in ASU's body, and ignored by its clients.
pub(crate) const WORKER_KEY: &str = "worker";

async fn build_steps(
    tools: Toolbox<'_>,
    claim: &Claim,
    spec: &JobSpec,
    work: &Path,
    stages: &dyn StageSink,
) -> Result<(PathBuf, BuildResponse), Outcome> {
    let context = tools;
    let deadline = Instant::now() + context.config.job_timeout;
    let request = &spec.request;
    // The allow-list was checked when the request came in; it may have changed since.
    let allow_list = AllowList::parse(&context.config.repository_allow_list).unwrap_or_default();
    let extra = Extra::from_request(request, &allow_list).map_err(fatal)?;

    stage(stages, ImagebuilderStatus::ContainerSetup).await?;
    let lease = acquire_imagebuilder(context, spec).await?;
    let lock = lock_imagebuilder(&lease).await?;
    prepare_repositories(&lease, extra.clone()).await?;

    stage(stages, ImagebuilderStatus::ValidateRevision).await?;
    let info = validate_revision(context, work, &lease, spec, deadline).await?;
    let packages = if request.diff_packages {
        let mut defaults: BTreeSet<String> = info.default_packages.iter().cloned().collect();
        if let Some(profile) = info.profile(&request.profile) {
            defaults.extend(profile.packages.iter().cloned());
        }
        diff_packages(&spec.packages, &defaults)
    } else {
        spec.packages.clone()
    };

    stage(stages, ImagebuilderStatus::ValidateManifest).await?;
    let manifest = validate_manifest(context, work, &lease, spec, &packages, deadline)
        .await
        .map_err(|outcome| name_unusable(outcome, extra.as_ref()))?;

    stage(stages, ImagebuilderStatus::BuildingImage).await?;
    let command = ImageCommand::new(claim, spec, &packages, &manifest, work);
    if let Some(defaults) = request.defaults.as_deref().filter(|d| !d.is_empty()) {
        write_defaults(&command.files, defaults).await?;
    }
    write_embedded(&command.files, &spec.files).await?;
    context
        .builds_started
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let image_out = make(context, work, &lease, command.args.clone(), deadline).await?;
    if is_size_error(&image_out.stderr) {
        return Err(failed(
            &BuildFailure::ExceedsStorage,
            &image_out.stdout,
            &image_out.stderr,
        ));
    }
    if image_out.status != Some(0) {
        return Err(name_unusable(
            failed(
                &BuildFailure::BuildFailed,
                &image_out.stdout,
                &image_out.stderr,
            ),
            extra.as_ref(),
        ));
    }
    drop(lock);
    // Before anything reads the output by name (profiles.json, the images to sign): a link
    // there could point anywhere.
    if let Err(error) = check_output(&command.bin_dir) {
        return Err(match error {
            ArtifactError::NotRegular { .. } => fatal(&error),
            _ => infrastructure(error),
        });
    }

    let profile = built_profile(&command.bin_dir, &request.profile, &image_out).await?;
    let images = profile.images.clone();
    let mut response = BuildResponse {
        enqueued_at: Some(iso_time(claim.enqueued_at)),
        request: Some(request.clone()),
        build_cmd: command.shown,
        build_cmd_packages: packages,
        stdout: Some(image_out.stdout),
        stderr: Some(image_out.stderr),
        manifest,
        images,
        ..BuildResponse::from_profile(claim.request_hash, profile)
    };
    // Not in ASU's body (clients ignore unknown keys): which ImageBuilder archive built this, so
    // the build's page can say how to reproduce it.
    response.extra.insert(
        IMAGEBUILDER_KEY.to_owned(),
        serde_json::json!({"archive": lease.archive_name, "sha256": lease.archive_sha256}),
    );
    Ok((command.bin_dir, response))
}

/// `container_setup`: the ImageBuilder of the job's version and target, from the cache.
async fn acquire_imagebuilder(context: Toolbox<'_>, spec: &JobSpec) -> Result<Lease, Outcome> {
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
            // The build's `detail` goes to the router's user; the way out (a key to trust, an
            // upstream to fix) is for the operator, so it goes to the log.
            if let Some(hint) = error.hint() {
                tracing::error!(error = %error, hint = %hint, "cannot set up the ImageBuilder");
            }
            if error.is_infrastructure() {
                Outcome::Retry(format!("cannot set up the ImageBuilder: {error}"))
            } else if matches!(error, IbError::NotFound { .. }) {
                fatal(&error)
            } else {
                fatal(format_args!("cannot set up the ImageBuilder: {error}"))
            }
        })
}

/// Resets the ImageBuilder's repositories file and keys, and writes the request's (see
/// `worker/repositories.rs`). Runs under the build lock.
async fn prepare_repositories(lease: &Lease, extra: Option<Extra>) -> Result<(), Outcome> {
    let dir = lease.dir.clone();
    match tokio::task::spawn_blocking(move || repositories::prepare(&dir, extra.as_ref())).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(Outcome::Retry(format!(
            "cannot write the ImageBuilder's repositories: {error}"
        ))),
        Err(join) => Err(Outcome::Retry(format!(
            "cannot write the ImageBuilder's repositories: {join}"
        ))),
    }
}

/// A failed build whose output shows that one of the request's own repositories could not be
/// used: its `detail` names them after ASU's text. Still the request's failure, cached like
/// ASU's: the server cannot mend a feed the request named, and the cache expires after
/// `build_failure_ttl`, so a feed that is back is used by the next request after that.
fn name_unusable(outcome: Outcome, extra: Option<&Extra>) -> Outcome {
    let (mut failure, extra) = match (outcome, extra) {
        (Outcome::Failed(failure), Some(extra)) => (failure, extra),
        (outcome, _) => return outcome,
    };
    let output = format!("{}\n{}", failure.stdout, failure.stderr);
    let unusable = repositories::unusable_repositories(extra, &output);
    if !unusable.is_empty() {
        let named: Vec<String> = unusable
            .iter()
            .map(|(name, url)| format!("`{name}` ({url})"))
            .collect();
        failure.detail = format!(
            "{}; the package list of repository {} could not be downloaded or did not verify",
            failure.detail,
            named.join(", ")
        );
    }
    Outcome::Failed(failure)
}

/// `validate_revision`: `make info`, and the request's `version_code` against the
/// ImageBuilder's revision.
async fn validate_revision(
    context: Toolbox<'_>,
    work: &Path,
    lease: &Lease,
    spec: &JobSpec,
    deadline: Instant,
) -> Result<ImagebuilderInfo, Outcome> {
    let request = &spec.request;
    let info_out = make(context, work, lease, vec!["info".to_owned()], deadline).await?;
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
    context: Toolbox<'_>,
    work: &Path,
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
    let manifest_out = make(context, work, lease, args, deadline).await?;
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
    /// The `FILES` directory (used when the request carries `defaults` or the job embeds files).
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
        if request.defaults.as_deref().is_some_and(|d| !d.is_empty()) || !spec.files.is_empty() {
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

/// Recomputes every image's SHA-256 from the file and, with a key, signs it (with a ucert
/// trailer where `signature_trailer` asks for one and ASU would append one).
async fn finish_images(
    signer: &Signer,
    bin_dir: &Path,
    mut images: Vec<ImageInfo>,
) -> Result<Vec<ImageInfo>, Outcome> {
    let key = signer.key.clone();
    let certificates = signer.trailer.clone();
    let dir = bin_dir.to_owned();
    let finished = tokio::task::spawn_blocking(move || {
        for image in &mut images {
            let name = &image.name;
            // The name comes from the ImageBuilder's profiles.json: it must stay in `bin_dir`.
            if name.is_empty() || name.contains('/') || name.starts_with('.') {
                return Err(fatal(format_args!(
                    "image name `{name}` is not a plain file name"
                )));
            }
            let path = dir.join(name);
            // Reading an image back or writing its signature fails on a full disk, which is
            // no fault of the request.
            let sha256 = match (&key, &certificates) {
                (Some(key), Some(certificates)) if takes_trailer(&image.image_type) => {
                    let (sha256, signature) = sign_image_with_trailer(key, certificates, &path)
                        .map_err(|error| {
                            match error {
                                // The ImageBuilder wrote a broken trailer: building again
                                // writes the same.
                                SigningError::Trailer { .. } => fatal(&error),
                                error => infrastructure(error),
                            }
                        })?;
                    image.signature = Some(signature);
                    sha256
                }
                (Some(key), _) => {
                    let (sha256, signature) = sign_image(key, &path).map_err(infrastructure)?;
                    image.signature = Some(signature);
                    sha256
                }
                (None, _) => sha256_file(&path).map_err(infrastructure)?,
            };
            image.sha256_unsigned.clone_from(&sha256);
            image.sha256 = sha256;
            // Routers cap the download at the stated size (the agent's `download` module).
            let size = std::fs::metadata(&path).map_err(|error| {
                Outcome::Retry(format!(
                    "cannot read the size of `{}`: {error}",
                    path.display()
                ))
            })?;
            image.size = Some(size.len());
        }
        Ok(images)
    })
    .await;
    match finished {
        Ok(result) => result,
        Err(join) => Err(Outcome::Retry(format!("signing task failed: {join}"))),
    }
}

async fn write_defaults(files: &Path, defaults: &str) -> Result<(), Outcome> {
    let dir = attendant_proto::wire::under_root(files, attendant_proto::wire::UCI_DEFAULTS_DIR);
    let write = async {
        tokio::fs::create_dir_all(&dir).await?;
        tokio::fs::write(dir.join(attendant_proto::wire::ASU_DEFAULTS_NAME), defaults).await
    };
    write
        .await
        .map_err(|error| Outcome::Retry(format!("cannot write the defaults script: {error}")))
}

/// Writes the job's embedded files (a channel build's stamp) under `FILES`. A path that could
/// leave the directory fails the build for good: the submit path refuses those, so one here
/// was not written by this server.
async fn write_embedded(files: &Path, embedded: &[EmbeddedFile]) -> Result<(), Outcome> {
    for file in embedded {
        let Some(relative) = file.relative_path() else {
            return Err(fatal(format_args!(
                "embedded file `{}` is not an absolute path of plain names",
                file.path
            )));
        };
        let path = files.join(relative);
        let write = async {
            if let Some(parent) = path.parent() {
                tokio::fs::create_dir_all(parent).await?;
            }
            tokio::fs::write(&path, &file.contents).await
        };
        write.await.map_err(|error| {
            Outcome::Retry(format!(
                "cannot write the embedded file `{}`: {error}",
                path.display()
            ))
        })?;
    }
    Ok(())
}

/// Runs `make <args>` in the ImageBuilder; a timeout is a build failure, a missing `make` an
/// infrastructure one.
async fn make(
    context: Toolbox<'_>,
    work: &Path,
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
    let args_verb = args.first().cloned().unwrap_or_default();
    let mut invocation = Invocation::new("make", args, lease.dir.clone());
    invocation.timeout = remaining;
    invocation.output_cap = context.config.output_cap_bytes;
    invocation.env = vec![(ATTEMPT_ENV.to_owned(), attempt_marker(work))];
    match process::run(invocation).await {
        Ok(output) => match disk_full(&output) {
            Some(message) => Err(Outcome::Retry(format!(
                "`make {}` ran out of disk space: `{message}`",
                args_verb
            ))),
            None => Ok(output),
        },
        Err(error @ RunError::Timeout { .. }) => Err(fatal(&error)),
        Err(error) => Err(Outcome::Retry(error.to_string())),
    }
}

/// What `strerror` says for `ENOSPC` and `EDQUOT` (glibc and musl word them alike): a command
/// that failed with one of these ran out of disk, which is the server's trouble, not a fault of
/// the requested package selection.
const DISK_FULL_MESSAGES: [&str; 2] = ["No space left on device", "Disk quota exceeded"];

/// The disk-full message a failed command printed, if any.
fn disk_full(output: &process::Output) -> Option<&'static str> {
    if output.status == Some(0) {
        return None;
    }
    DISK_FULL_MESSAGES
        .into_iter()
        .find(|message| output.stderr.contains(message))
}

/// A local I/O failure (reading an image back, writing its signature): retried, with its cause
/// (the operating system's error names the full disk).
fn infrastructure(error: impl std::error::Error) -> Outcome {
    Outcome::Retry(crate::imagebuilder::error_chain(&error))
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

#[cfg(test)]
mod tests {
    use super::*;

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
            files: Vec::new(),
        };
        let pinned = pinned_and_built(&spec);
        assert_eq!(pinned.keys().collect::<Vec<_>>(), ["+tmux"]);
    }
}
