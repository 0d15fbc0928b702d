//! The main server's side of the remote worker protocol (`docs/workers.md`): claims by long
//! poll, heartbeats, and results uploaded as a declaration and then the files.
//!
//! An upload is staged in `<store>/.upload-<request_hash>-<attempt>/`: `declaration.json` (what
//! the worker declared: the result, each file's name, size and SHA-256) and `files/`, the files
//! as they arrive. Names starting with `.` are never served, so a half-finished upload is never
//! visible at `/store/`. [`complete`] checks every file's size and SHA-256 against the
//! declaration, signs the images with this server's key (the key never leaves this server),
//! moves `files/` into the store as the job's directory and marks the job done through the same
//! fenced update as an in-process worker (`record` in the parent module). Every step first renews the lease
//! of the attempt named in the path, so an attempt that lost its lease is refused (409) before
//! anything is written. Staged uploads whose attempt no longer holds the lease are deleted by
//! [`sweep_uploads`] with every reaper pass.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use attendant_proto::api::{BuildResponse, ImagebuilderStatus, RequestHash};
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::steps::{Outcome, Signer, WORKER_KEY, publish};
use super::{POLL_INTERVAL, Recorder, millis, record};
use crate::state::{AppState, now};
use crate::store::{Claim, Failure, JobSpec, JobState, StoreError, WorkerRecord};
use crate::view::iso_time;

/// Longest claim long poll, in seconds.
pub const MAX_CLAIM_WAIT_SECONDS: u64 = 60;
/// Most files in one upload.
pub const MAX_UPLOAD_FILES: usize = 256;
/// Largest file of an upload, in bytes.
pub const MAX_UPLOAD_FILE_BYTES: u64 = 4 * 1024 * 1024 * 1024;
/// Largest upload (all files together), in bytes.
pub const MAX_UPLOAD_BYTES: u64 = 16 * 1024 * 1024 * 1024;
/// Largest declaration body (the result JSON, with the build's capped output), in bytes.
pub const MAX_DECLARATION_BYTES: usize = 16 * 1024 * 1024;
/// Longest file path in an upload, in bytes.
pub const MAX_UPLOAD_NAME_LEN: usize = 255;
/// Deepest file path in an upload (`packages/x.ipk` is two).
const MAX_UPLOAD_DEPTH: usize = 4;
/// Longest failure text (`detail`, `stdout`, `stderr` each) a worker may report, in bytes.
pub const MAX_FAILURE_TEXT_BYTES: usize = 1024 * 1024;

/// Prefix of a staged upload's directory in the store.
const UPLOAD_PREFIX: &str = ".upload-";
/// The declaration inside a staged upload.
const DECLARATION_FILE: &str = "declaration.json";
/// The files' directory inside a staged upload.
const FILES_DIR: &str = "files";

/// Why a remote worker's request was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IntakeError {
    /// No usable bearer token, or one of no worker, or of a revoked one (401).
    #[error("this route needs `Authorization: Bearer <token>` with the token of an active worker")]
    Unauthorized,
    /// The attempt no longer holds the job's lease (409): stop, another attempt owns it.
    #[error("job `{request_hash}` attempt {attempt} no longer holds the lease")]
    LeaseLost {
        /// The job.
        request_hash: RequestHash,
        /// The attempt named in the path.
        attempt: u32,
    },
    /// `wait` is above [`MAX_CLAIM_WAIT_SECONDS`] (400).
    #[error("`wait` is {wait} seconds; expected at most {MAX_CLAIM_WAIT_SECONDS}")]
    Wait {
        /// What was asked.
        wait: u64,
    },
    /// The declaration breaks a rule (422).
    #[error("the declaration is refused: {0}")]
    Declaration(String),
    /// A file was sent before the result was declared (409).
    #[error("no result is declared for job `{request_hash}` attempt {attempt}; post it first")]
    Undeclared {
        /// The job.
        request_hash: RequestHash,
        /// The attempt.
        attempt: u32,
    },
    /// A file the declaration does not name (404).
    #[error("`{name}` is not a file of the declared result")]
    UnknownFile {
        /// The path sent.
        name: String,
    },
    /// A part that does not start where the received bytes end (416).
    #[error(
        "`{name}`: the part starts at byte {start}, but {received} bytes were received; send from byte {received}"
    )]
    Offset {
        /// The file.
        name: String,
        /// Where the part starts.
        start: u64,
        /// What is on the server.
        received: u64,
    },
    /// A file longer than declared, or a malformed `Content-Range` (413 / 400).
    #[error("`{name}`: {detail}")]
    Range {
        /// The file.
        name: String,
        /// What is wrong.
        detail: String,
        /// Whether the body ran past the declared size (413) rather than a malformed header.
        too_long: bool,
    },
    /// `complete` while a file is short (409).
    #[error("`{name}` has {received} of its {size} bytes; send the rest first")]
    Incomplete {
        /// The file.
        name: String,
        /// Bytes received.
        received: u64,
        /// Bytes declared.
        size: u64,
    },
    /// The files are not what was declared (422): the upload is discarded and the job is
    /// queued again.
    #[error(
        "the upload does not match its declaration: {0}; it was discarded and the job queued again"
    )]
    Mismatch(String),
    /// The store failed (500).
    #[error("the job store failed")]
    Store(#[from] StoreError),
    /// A file operation on the staged upload failed (500).
    #[error("cannot {action} `{}`", path.display())]
    Io {
        /// What we were doing.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

/// A job handed to a remote worker: the answer of `POST /api/v1/worker/claim`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClaimedJob {
    /// The job.
    pub request_hash: RequestHash,
    /// The attempt number: the fencing token of every later request.
    pub attempt: u32,
    /// The lease expiry, Unix milliseconds.
    pub lease_until: i64,
    /// How often to heartbeat, in seconds (a third of the lease).
    pub heartbeat_seconds: u64,
    /// When the job was enqueued, Unix milliseconds.
    pub enqueued_at: i64,
    /// What to build.
    pub job: JobSpec,
    /// Where to get the ImageBuilder.
    pub imagebuilder: ImagebuilderSource,
}

/// Where a remote worker gets the ImageBuilder of a job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImagebuilderSource {
    /// `upstream`: the worker's own `[upstream]` (the only source so far).
    pub source: String,
    /// The download path of the version, e.g. `releases/24.10.5`.
    pub version_path: String,
    /// `target/subtarget`.
    pub target: String,
}

/// A heartbeat's body: the stage the build reached, if it changed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Heartbeat {
    /// `imagebuilder_status` to record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaseRenewed {
    /// The new lease expiry, Unix milliseconds.
    pub lease_until: i64,
}

/// How an attempt ended, as the worker declares it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Declaration {
    /// Built: the answer (hashes and signatures are filled in here) and every output file.
    Success {
        /// The build answer as the steps made it.
        result: Box<BuildResponse>,
        /// Every file of the output directory.
        files: Vec<DeclaredFile>,
    },
    /// Failed.
    Failure {
        /// `build` (the request's fault: cached) or `infrastructure` (queued again).
        class: FailureClass,
        /// ASU's `detail`.
        detail: String,
        /// stdout of the failed command.
        #[serde(default)]
        stdout: String,
        /// stderr of the failed command.
        #[serde(default)]
        stderr: String,
    },
}

/// How a failure is classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// The request's fault; cached for `build_failure_ttl`.
    Build,
    /// The worker's trouble; the job is queued again after its back-off.
    Infrastructure,
}

/// One declared file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeclaredFile {
    /// Path below the job's directory: `/`-separated plain names.
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// SHA-256, lowercase hex.
    pub sha256: String,
}

/// What the server holds of a declared upload: each file's received bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadState {
    /// Per declared file, in declaration order.
    pub files: Vec<ReceivedFile>,
}

/// Received bytes of one file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReceivedFile {
    /// The path.
    pub name: String,
    /// Bytes declared.
    pub size: u64,
    /// Bytes received so far (send from here).
    pub received: u64,
}

/// Authenticates a bearer token: the active worker it belongs to, heard from now.
pub async fn authenticate(state: &AppState, token: &str) -> Result<WorkerRecord, IntakeError> {
    let digest = hex::encode(Sha256::digest(token.as_bytes()));
    let worker = state
        .store
        .worker_by_token(&digest)
        .await?
        .filter(|worker| worker.revoked_at.is_none())
        .ok_or(IntakeError::Unauthorized)?;
    let now = now();
    state.store.touch_worker(&worker.name, now).await?;
    Ok(worker)
}

/// Claims a job for `worker`, waiting up to `wait` seconds for one; `None` when none came.
pub async fn claim(
    state: &AppState,
    worker: &WorkerRecord,
    wait: u64,
) -> Result<Option<ClaimedJob>, IntakeError> {
    if wait > MAX_CLAIM_WAIT_SECONDS {
        return Err(IntakeError::Wait { wait });
    }
    let deadline = Instant::now() + Duration::from_secs(wait);
    let lease = state.config.job_lease;
    loop {
        let now = now();
        let lease_until = now.saturating_add(millis(lease));
        if let Some(claim) = state.store.claim(&worker.name, now, lease_until).await? {
            tracing::info!(worker = %worker.name, request_hash = %claim.request_hash, attempt = claim.attempt, "remote worker claimed a job");
            let spec = claim.request;
            return Ok(Some(ClaimedJob {
                request_hash: claim.request_hash,
                attempt: claim.attempt,
                lease_until,
                heartbeat_seconds: (lease / 3).as_secs().max(1),
                enqueued_at: claim.enqueued_at,
                imagebuilder: ImagebuilderSource {
                    source: "upstream".to_owned(),
                    version_path: spec.version_path.clone(),
                    target: format!("{}/{}", spec.target, spec.subtarget),
                },
                job: spec,
            }));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        // Woken by a submission in this process; the poll covers submissions elsewhere and
        // jobs whose back-off ran out.
        tokio::select! {
            () = state.wakeup.notified() => {}
            () = tokio::time::sleep(POLL_INTERVAL.min(left)) => {}
        }
    }
}

/// Renews the lease of `attempt`, recording `heartbeat.stage` when given.
pub async fn heartbeat(
    state: &AppState,
    request_hash: &RequestHash,
    attempt: u32,
    heartbeat: &Heartbeat,
) -> Result<LeaseRenewed, IntakeError> {
    let lease_until = renew(state, request_hash, attempt).await?;
    if let Some(stage) = &heartbeat.stage {
        let stage = ImagebuilderStatus::from_wire(stage);
        fence(
            state.store.set_stage(request_hash, attempt, &stage).await,
            request_hash,
            attempt,
        )?;
    }
    Ok(LeaseRenewed { lease_until })
}

/// Takes a worker's declaration: a failure is recorded at once; a success is staged, and the
/// answer says which bytes of each file the server has (all zero for a new upload; what was
/// received before for the same declaration sent again, so the worker resumes).
pub async fn declare(
    state: &AppState,
    worker: &WorkerRecord,
    request_hash: &RequestHash,
    attempt: u32,
    body: &[u8],
) -> Result<UploadState, IntakeError> {
    let declaration: Declaration = serde_json::from_slice(body)
        .map_err(|error| IntakeError::Declaration(error.to_string()))?;
    renew(state, request_hash, attempt).await?;
    match declaration {
        Declaration::Failure {
            class,
            detail,
            stdout,
            stderr,
        } => {
            for (field, text) in [
                ("detail", &detail),
                ("stdout", &stdout),
                ("stderr", &stderr),
            ] {
                if text.len() > MAX_FAILURE_TEXT_BYTES {
                    return Err(IntakeError::Declaration(format!(
                        "`{field}` is longer than {MAX_FAILURE_TEXT_BYTES} bytes"
                    )));
                }
            }
            let outcome = match class {
                FailureClass::Build => Outcome::Failed(Failure {
                    detail,
                    stdout,
                    stderr,
                }),
                FailureClass::Infrastructure => Outcome::Retry(detail),
            };
            finish(state, worker, request_hash, attempt, outcome).await?;
            discard(&upload_dir(state, request_hash, attempt)).await;
            Ok(UploadState { files: Vec::new() })
        }
        Declaration::Success { ref files, .. } => {
            check_files(files)?;
            let dir = upload_dir(state, request_hash, attempt);
            let same = read_declaration(&dir)
                .await
                .is_some_and(|old| old == declaration);
            if !same {
                discard(&dir).await;
                let files_dir = dir.join(FILES_DIR);
                tokio::fs::create_dir_all(&files_dir)
                    .await
                    .map_err(io_error("create", &files_dir))?;
                let text = serde_json::to_vec(&declaration)
                    .map_err(|error| IntakeError::Declaration(error.to_string()))?;
                let path = dir.join(DECLARATION_FILE);
                crate::atomic::write_atomic(&path, &text, crate::atomic::Existing::Replace, false)
                    .map_err(io_error("write", &path))?;
            }
            upload_state(&dir, files).await
        }
    }
}

/// Appends one part of a declared file: `start` must be where the received bytes end; the
/// file may not grow past its declared size.
pub async fn put_file<S, E>(
    state: &AppState,
    request_hash: &RequestHash,
    attempt: u32,
    name: &str,
    start: u64,
    body: S,
) -> Result<ReceivedFile, IntakeError>
where
    S: Stream<Item = Result<bytes::Bytes, E>> + Unpin,
{
    renew(state, request_hash, attempt).await?;
    let dir = upload_dir(state, request_hash, attempt);
    let Some(Declaration::Success { files, .. }) = read_declaration(&dir).await else {
        return Err(IntakeError::Undeclared {
            request_hash: *request_hash,
            attempt,
        });
    };
    let declared =
        files
            .iter()
            .find(|file| file.name == name)
            .ok_or_else(|| IntakeError::UnknownFile {
                name: name.to_owned(),
            })?;
    let path = dir.join(FILES_DIR).join(name);
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(io_error("create", parent))?;
    }
    let received = file_len(&path).await;
    if start != received {
        return Err(IntakeError::Offset {
            name: name.to_owned(),
            start,
            received,
        });
    }
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .await
        .map_err(io_error("open", &path))?;
    let mut written = received;
    let mut body = body;
    while let Some(chunk) = body.next().await {
        // A dropped connection keeps what arrived: the worker resumes from there.
        let Ok(chunk) = chunk else { break };
        let len = u64::try_from(chunk.len()).unwrap_or(u64::MAX);
        let Some(total) = written
            .checked_add(len)
            .filter(|total| *total <= declared.size)
        else {
            drop(file);
            // Nothing past the declared size is kept; the part is sent again from the start.
            if let Ok(file) = tokio::fs::OpenOptions::new().write(true).open(&path).await {
                let _ = file.set_len(received).await;
            }
            return Err(IntakeError::Range {
                name: name.to_owned(),
                detail: format!(
                    "the part runs past the declared size of {} bytes",
                    declared.size
                ),
                too_long: true,
            });
        };
        file.write_all(&chunk)
            .await
            .map_err(io_error("write", &path))?;
        written = total;
    }
    file.flush().await.map_err(io_error("write", &path))?;
    Ok(ReceivedFile {
        name: name.to_owned(),
        size: declared.size,
        received: written,
    })
}

/// Checks the staged files against the declaration, signs the images, publishes the result and
/// marks the job done. A mismatch discards the upload and queues the job again.
pub async fn complete(
    state: &AppState,
    worker: &WorkerRecord,
    request_hash: &RequestHash,
    attempt: u32,
) -> Result<(), IntakeError> {
    renew(state, request_hash, attempt).await?;
    let dir = upload_dir(state, request_hash, attempt);
    let Some(Declaration::Success { result, files }) = read_declaration(&dir).await else {
        return Err(IntakeError::Undeclared {
            request_hash: *request_hash,
            attempt,
        });
    };
    let files_dir = dir.join(FILES_DIR);
    for file in &files {
        let received = file_len(&files_dir.join(&file.name)).await;
        if received < file.size {
            return Err(IntakeError::Incomplete {
                name: file.name.clone(),
                received,
                size: file.size,
            });
        }
    }
    if let Err(mismatch) = verify(&files_dir, &files).await {
        tracing::warn!(worker = %worker.name, request_hash = %request_hash, attempt, mismatch = %mismatch, "refused an upload");
        discard(&dir).await;
        let reason = format!(
            "the upload of worker `{}` did not match its declaration: {mismatch}",
            worker.name
        );
        finish(state, worker, request_hash, attempt, Outcome::Retry(reason)).await?;
        return Err(IntakeError::Mismatch(mismatch));
    }
    let signer = Signer {
        key: state.signing_key.clone(),
        trailer: state.signature_trailer.clone(),
    };
    if signer.key.is_some() {
        fence(
            state
                .store
                .set_stage(request_hash, attempt, &ImagebuilderStatus::SigningImages)
                .await,
            request_hash,
            attempt,
        )?;
    }
    let job = job_of(state, request_hash, attempt).await?;
    let mut response = *result;
    // What the job is comes from this server's row, never from the worker.
    response.request_hash = *request_hash;
    response.request = Some(job.request.request.clone());
    response.enqueued_at = Some(iso_time(job.enqueued_at));
    response
        .extra
        .insert(WORKER_KEY.to_owned(), serde_json::json!(worker.name));
    let outcome = match publish(
        &signer,
        &state.artifacts,
        request_hash,
        &files_dir,
        response,
    )
    .await
    {
        Ok(result) => Outcome::Done(result),
        Err(outcome) => outcome,
    };
    let refused = match &outcome {
        Outcome::Done(_) => None,
        Outcome::Failed(failure) => Some(failure.detail.clone()),
        Outcome::Retry(reason) => Some(reason.clone()),
    };
    finish(state, worker, request_hash, attempt, outcome).await?;
    discard(&dir).await;
    match refused {
        None => {
            state.store.count_worker_build(&worker.name).await?;
            Ok(())
        }
        // The files matched their declaration but could not be signed or published (an image
        // the result names is missing, a broken trailer): recorded like a local failure.
        Some(reason) => Err(IntakeError::Mismatch(reason)),
    }
}

/// Deletes staged uploads whose attempt no longer holds its job's lease (the job finished, was
/// reclaimed, or is gone); returns how many.
pub async fn sweep_uploads(state_store: &dyn crate::store::Store, store_root: &Path) -> u64 {
    let Ok(mut entries) = tokio::fs::read_dir(store_root).await else {
        return 0;
    };
    let mut removed = 0u64;
    let now = now();
    while let Ok(Some(entry)) = entries.next_entry().await {
        let name = entry.file_name();
        let Some((hash, attempt)) = name.to_str().and_then(parse_upload_name) else {
            continue;
        };
        let live = match state_store.job(&hash, now).await {
            Ok(Some(job)) => job.state == JobState::Running && job.attempt == attempt,
            Ok(None) => false,
            // Unknown: keep it for the next pass.
            Err(_) => true,
        };
        if !live {
            discard(&entry.path()).await;
            removed = removed.saturating_add(1);
        }
    }
    removed
}

async fn job_of(
    state: &AppState,
    request_hash: &RequestHash,
    attempt: u32,
) -> Result<crate::store::Job, IntakeError> {
    state
        .store
        .job(request_hash, now())
        .await?
        .filter(|job| job.state == JobState::Running && job.attempt == attempt)
        .ok_or(IntakeError::LeaseLost {
            request_hash: *request_hash,
            attempt,
        })
}

/// Records `outcome` for the attempt through the fenced store update.
async fn finish(
    state: &AppState,
    worker: &WorkerRecord,
    request_hash: &RequestHash,
    attempt: u32,
    outcome: Outcome,
) -> Result<(), IntakeError> {
    let job = job_of(state, request_hash, attempt).await?;
    let claim = Claim {
        request_hash: *request_hash,
        attempt,
        request: job.request,
        enqueued_at: job.enqueued_at,
    };
    let recorder = Recorder {
        store: &state.store,
        config: &state.config,
        metrics: &state.metrics,
    };
    let elapsed = Duration::ZERO;
    let recorded = record(&recorder, &claim, &worker.name, outcome, elapsed).await;
    fence(recorded, request_hash, attempt)?;
    state.wakeup.notify_waiters();
    Ok(())
}

/// Extends the attempt's lease; [`IntakeError::LeaseLost`] when it no longer holds it.
async fn renew(
    state: &AppState,
    request_hash: &RequestHash,
    attempt: u32,
) -> Result<i64, IntakeError> {
    let lease_until = now().saturating_add(millis(state.config.job_lease));
    fence(
        state
            .store
            .heartbeat(request_hash, attempt, lease_until)
            .await,
        request_hash,
        attempt,
    )?;
    Ok(lease_until)
}

fn fence(
    result: Result<(), StoreError>,
    request_hash: &RequestHash,
    attempt: u32,
) -> Result<(), IntakeError> {
    match result {
        Ok(()) => Ok(()),
        Err(StoreError::LeaseLost { .. }) => Err(IntakeError::LeaseLost {
            request_hash: *request_hash,
            attempt,
        }),
        Err(error) => Err(error.into()),
    }
}

/// The staged upload of one attempt.
fn upload_dir(state: &AppState, request_hash: &RequestHash, attempt: u32) -> PathBuf {
    state
        .artifacts
        .root()
        .join(format!("{UPLOAD_PREFIX}{request_hash}-{attempt}"))
}

fn parse_upload_name(name: &str) -> Option<(RequestHash, u32)> {
    let rest = name.strip_prefix(UPLOAD_PREFIX)?;
    let (hash, attempt) = rest.split_once('-')?;
    Some((hash.parse().ok()?, attempt.parse().ok()?))
}

async fn read_declaration(dir: &Path) -> Option<Declaration> {
    let bytes = tokio::fs::read(dir.join(DECLARATION_FILE)).await.ok()?;
    serde_json::from_slice(&bytes).ok()
}

async fn upload_state(dir: &Path, files: &[DeclaredFile]) -> Result<UploadState, IntakeError> {
    let mut state = UploadState { files: Vec::new() };
    for file in files {
        state.files.push(ReceivedFile {
            name: file.name.clone(),
            size: file.size,
            received: file_len(&dir.join(FILES_DIR).join(&file.name)).await,
        });
    }
    Ok(state)
}

async fn file_len(path: &Path) -> u64 {
    tokio::fs::metadata(path)
        .await
        .map(|metadata| metadata.len())
        .unwrap_or(0)
}

/// The declared files' rules: plain relative paths, unique, within the size limits, hashes as
/// 64 lowercase hex digits.
fn check_files(files: &[DeclaredFile]) -> Result<(), IntakeError> {
    let refuse = |text: String| Err(IntakeError::Declaration(text));
    if files.len() > MAX_UPLOAD_FILES {
        return refuse(format!(
            "{} files; expected at most {MAX_UPLOAD_FILES}",
            files.len()
        ));
    }
    let mut names = BTreeSet::new();
    let mut total = 0u64;
    for file in files {
        if !is_upload_name(&file.name) {
            return refuse(format!(
                "file name `{}` is not a relative path of plain names of at most {MAX_UPLOAD_NAME_LEN} bytes",
                file.name.chars().take(80).collect::<String>()
            ));
        }
        if !names.insert(file.name.as_str()) {
            return refuse(format!("file `{}` is declared twice", file.name));
        }
        if file.size > MAX_UPLOAD_FILE_BYTES {
            return refuse(format!(
                "file `{}` has {} bytes; expected at most {MAX_UPLOAD_FILE_BYTES}",
                file.name, file.size
            ));
        }
        total = total.saturating_add(file.size);
        if file.sha256.len() != 64
            || !file
                .sha256
                .bytes()
                .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
        {
            return refuse(format!(
                "file `{}` has no SHA-256 of 64 lowercase hex digits",
                file.name
            ));
        }
    }
    if total > MAX_UPLOAD_BYTES {
        return refuse(format!(
            "the files have {total} bytes together; expected at most {MAX_UPLOAD_BYTES}"
        ));
    }
    Ok(())
}

/// Whether `name` is a relative path of plain names (none starting with `.`), so it stays in
/// the job's directory and is served.
fn is_upload_name(name: &str) -> bool {
    name.len() <= MAX_UPLOAD_NAME_LEN
        && name.split('/').count() <= MAX_UPLOAD_DEPTH
        && name.split('/').all(|segment| {
            !segment.is_empty() && !segment.starts_with('.') && !segment.contains(['\\', '\0'])
        })
}

/// Every declared file's size and SHA-256 against the staged bytes, and no file beyond them.
async fn verify(files_dir: &Path, files: &[DeclaredFile]) -> Result<(), String> {
    let dir = files_dir.to_owned();
    let files = files.to_vec();
    let checked = tokio::task::spawn_blocking(move || -> Result<(), String> {
        for file in &files {
            let path = dir.join(&file.name);
            let size = std::fs::symlink_metadata(&path)
                .map_err(|error| format!("cannot read `{}`: {error}", file.name))?
                .len();
            if size != file.size {
                return Err(format!(
                    "`{}` has {size} bytes, declared {}",
                    file.name, file.size
                ));
            }
            let sha256 = crate::signing::sha256_file(&path)
                .map_err(|error| format!("cannot read `{}`: {error}", file.name))?;
            if sha256 != file.sha256 {
                return Err(format!(
                    "`{}` has SHA-256 {sha256}, declared {}",
                    file.name, file.sha256
                ));
            }
        }
        Ok(())
    })
    .await;
    checked.unwrap_or_else(|join| Err(format!("the check failed: {join}")))
}

async fn discard(dir: &Path) {
    if let Err(error) = tokio::fs::remove_dir_all(dir).await
        && error.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(path = %dir.display(), error = %error, "cannot delete a staged upload");
    }
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> IntakeError {
    let path = path.to_owned();
    move |source| IntakeError::Io {
        action,
        path,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_names_stay_in_the_job_directory() {
        for good in ["sysupgrade.bin", "packages/x.ipk", "profiles.json"] {
            assert!(is_upload_name(good), "{good}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            ".hidden",
            "a//b",
            "a\\b",
        ] {
            assert!(!is_upload_name(bad), "{bad}");
        }
    }

    #[test]
    fn staged_upload_names_round_trip() {
        let hash = RequestHash([7; 32]);
        let name = format!("{UPLOAD_PREFIX}{hash}-3");
        assert_eq!(parse_upload_name(&name), Some((hash, 3)));
        assert_eq!(parse_upload_name(".incoming-x"), None);
    }

    #[test]
    fn declarations_break_no_rule_silently() {
        let file = |name: &str, size: u64| DeclaredFile {
            name: name.to_owned(),
            size,
            sha256: "0".repeat(64),
        };
        assert!(check_files(&[file("a.bin", 1)]).is_ok());
        assert!(check_files(&[file("a.bin", 1), file("a.bin", 2)]).is_err());
        assert!(check_files(&[file("a.bin", MAX_UPLOAD_FILE_BYTES + 1)]).is_err());
        let mut bad_hash = file("a.bin", 1);
        bad_hash.sha256 = "Z".repeat(64);
        assert!(check_files(&[bad_hash]).is_err());
    }
}
