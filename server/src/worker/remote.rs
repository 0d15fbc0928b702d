//! The remote worker: `attendant-server worker --server URL --token-file F`.
//!
//! It talks only HTTP to the main server (the protocol of `docs/workers.md`): no database, no
//! shared store. It claims a job by long poll, builds it with the same steps as an in-process
//! worker (the parent module's `build`) in its own data directory, with ImageBuilders from its own
//! `[upstream]`, heartbeats the lease (each stage too), and uploads the output: the
//! declaration (the result and each file's size and SHA-256), then the files, resumed from what
//! the server holds after a dropped connection, then `complete`. The main server checks,
//! signs and publishes; the worker holds no signing key. A 409 on any request means the
//! attempt lost its lease: the worker drops the job (another attempt owns it) and claims anew.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use attendant_proto::api::{ImagebuilderStatus, RequestHash};
use futures_util::future::BoxFuture;
use reqwest::StatusCode;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::intake::{
    ClaimedJob, Declaration, DeclaredFile, FailureClass, Heartbeat, MAX_CLAIM_WAIT_SECONDS,
    UploadState,
};
use super::steps::{Built, Outcome, StageSink, Toolbox, build};
use crate::config::Config;
use crate::imagebuilder::ImagebuilderCache;
use crate::store::Claim;

/// How long one claim request waits for a job, in seconds.
pub const CLAIM_WAIT_SECONDS: u64 = 30;
/// Pause after a failed request to the main server before the next one.
pub const RETRY_DELAY: Duration = Duration::from_secs(2);
/// Declaration and upload rounds before an upload is given up (the lease then runs out and
/// the job is built again).
const UPLOAD_ROUNDS: u32 = 5;
/// Largest answer read from the main server, in bytes (a claim carries the job's embedded
/// files, at most 1 MiB).
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;
/// Largest token file, in bytes.
pub const MAX_TOKEN_FILE_BYTES: u64 = 4096;

/// Why a request to the main server failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    /// The token was refused (401): revoked, or never added.
    #[error("the main server refused the worker token (401)")]
    Unauthorized,
    /// The attempt lost its lease (409).
    #[error("the attempt lost its lease")]
    LeaseLost,
    /// Any other refusal.
    #[error("the main server answered {status}: {detail}")]
    Status {
        /// The status.
        status: u16,
        /// The answer's `detail`, or its start.
        detail: String,
    },
    /// The request did not get through.
    #[error("cannot reach the main server")]
    Http(#[from] reqwest::Error),
    /// An answer that is not what the protocol says.
    #[error("the main server's answer is malformed: {0}")]
    Answer(String),
    /// Reading the output failed.
    #[error("cannot read `{}`", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl RemoteError {
    /// Whether the same request may succeed later: it did not get through, or the main server
    /// had trouble of its own (5xx).
    fn is_transient(&self) -> bool {
        match self {
            Self::Http(_) => true,
            Self::Status { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

/// Where a remote worker downloads ImageBuilders from. Either way the worker checks the
/// archive's SHA-256 against the upstream's `sha256sums`, whose signature it checks with its
/// own `trusted_keys`: the main server passes that file on unchanged, so it cannot hand out an
/// ImageBuilder the upstream did not sign.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
#[non_exhaustive]
pub enum ImagebuilderSource {
    /// The worker's own `[upstream]` (or `upstream_url`).
    #[default]
    Upstream,
    /// The main server's verified cache (`GET /api/v1/worker/imagebuilders/...`): one download
    /// from the upstream per ImageBuilder for all workers, and workers that need no route to it.
    Server,
}

/// The main server, as a worker sees it.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    /// A client of the server at `base` (e.g. `https://attendant.example`) with `token`.
    pub fn new(base: &str, token: String) -> Result<Self, RemoteError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("attendant-worker/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .build()?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// The main server's ImageBuilder files, laid out as under the upstream
    /// ([`ImagebuilderSource::Server`]).
    pub fn imagebuilder_upstream(&self) -> String {
        format!("{}/api/v1/worker/imagebuilders", self.base)
    }

    /// An HTTP client that sends the worker token with every request, for ImageBuilder
    /// downloads from the main server.
    pub fn authorized_http(&self) -> Result<reqwest::Client, RemoteError> {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", self.token))
            .map_err(|_| {
            RemoteError::Answer("the worker token is not a valid header value".to_owned())
        })?;
        value.set_sensitive(true);
        let headers =
            reqwest::header::HeaderMap::from_iter([(reqwest::header::AUTHORIZATION, value)]);
        Ok(reqwest::Client::builder()
            .user_agent(concat!("attendant-worker/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .default_headers(headers)
            .build()?)
    }

    fn job_url(&self, request_hash: &RequestHash, attempt: u32, rest: &str) -> String {
        format!(
            "{}/api/v1/worker/jobs/{request_hash}/{attempt}/{rest}",
            self.base
        )
    }

    /// Claims a job, waiting up to `wait` seconds; `None` when none came.
    pub async fn claim(&self, wait: u64) -> Result<Option<ClaimedJob>, RemoteError> {
        let wait = wait.min(MAX_CLAIM_WAIT_SECONDS);
        let response = self
            .http
            .post(format!("{}/api/v1/worker/claim?wait={wait}", self.base))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(wait.saturating_add(30)))
            .send()
            .await?;
        if response.status() == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        let body = answer(response).await?;
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|error| RemoteError::Answer(error.to_string()))
    }

    /// Renews the lease, recording `stage` when given.
    pub async fn heartbeat(
        &self,
        request_hash: &RequestHash,
        attempt: u32,
        stage: Option<&ImagebuilderStatus>,
    ) -> Result<(), RemoteError> {
        let body = Heartbeat {
            stage: stage.map(|stage| stage.as_str().to_owned()),
        };
        let response = self
            .http
            .post(self.job_url(request_hash, attempt, "heartbeat"))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(30))
            .body(serde_json::to_vec(&body).unwrap_or_default())
            .send()
            .await?;
        answer(response).await.map(drop)
    }

    /// Declares how the attempt ended; the answer says what the server holds of each file.
    pub async fn declare(
        &self,
        request_hash: &RequestHash,
        attempt: u32,
        declaration: &Declaration,
    ) -> Result<UploadState, RemoteError> {
        let body = serde_json::to_vec(declaration)
            .map_err(|error| RemoteError::Answer(error.to_string()))?;
        let response = self
            .http
            .post(self.job_url(request_hash, attempt, "result"))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(120))
            .body(body)
            .send()
            .await?;
        let body = answer(response).await?;
        serde_json::from_slice(&body).map_err(|error| RemoteError::Answer(error.to_string()))
    }

    /// Sends `path` from byte `from` on as the declared file `name` of `size` bytes.
    pub async fn put_file(
        &self,
        request_hash: &RequestHash,
        attempt: u32,
        name: &str,
        path: &Path,
        from: u64,
        size: u64,
    ) -> Result<(), RemoteError> {
        use tokio::io::AsyncSeekExt;
        let io = |source| RemoteError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = tokio::fs::File::open(path).await.map_err(io)?;
        file.seek(std::io::SeekFrom::Start(from))
            .await
            .map_err(io)?;
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
        let mut request = self
            .http
            .put(self.job_url(request_hash, attempt, &format!("files/{name}")))
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_LENGTH, size.saturating_sub(from))
            .body(body);
        if size > 0 {
            request = request.header(
                reqwest::header::CONTENT_RANGE,
                format!("bytes {from}-{}/{size}", size.saturating_sub(1)),
            );
        }
        answer(request.send().await?).await.map(drop)
    }

    /// Asks the server to check, sign and publish the uploaded result.
    pub async fn complete(
        &self,
        request_hash: &RequestHash,
        attempt: u32,
    ) -> Result<(), RemoteError> {
        let response = self
            .http
            .post(self.job_url(request_hash, attempt, "complete"))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(600))
            .send()
            .await?;
        answer(response).await.map(drop)
    }
}

/// The body of a successful answer; refusals become their [`RemoteError`].
async fn answer(response: reqwest::Response) -> Result<Vec<u8>, RemoteError> {
    let status = response.status();
    if let Some(length) = response.content_length()
        && length > MAX_ANSWER_BYTES as u64
    {
        return Err(RemoteError::Answer(format!(
            "{length} bytes; expected at most {MAX_ANSWER_BYTES}"
        )));
    }
    let mut body = Vec::new();
    let mut stream = response;
    while let Some(chunk) = stream.chunk().await? {
        if body.len().saturating_add(chunk.len()) > MAX_ANSWER_BYTES {
            return Err(RemoteError::Answer(format!(
                "more than {MAX_ANSWER_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    match status {
        status if status.is_success() => Ok(body),
        StatusCode::UNAUTHORIZED => Err(RemoteError::Unauthorized),
        StatusCode::CONFLICT => Err(RemoteError::LeaseLost),
        status => {
            let detail = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|value| {
                    value
                        .get("detail")
                        .and_then(|d| d.as_str())
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| {
                    String::from_utf8_lossy(body.get(..200).unwrap_or(&body)).into_owned()
                });
            Err(RemoteError::Status {
                status: status.as_u16(),
                detail,
            })
        }
    }
}

/// Reads a worker token file: the token, trimmed; at most [`MAX_TOKEN_FILE_BYTES`].
pub fn read_token(path: &Path) -> anyhow::Result<String> {
    use anyhow::Context;
    let metadata = std::fs::metadata(path)
        .with_context(|| format!("cannot read the token file `{}`", path.display()))?;
    anyhow::ensure!(
        metadata.len() <= MAX_TOKEN_FILE_BYTES,
        "the token file `{}` has {} bytes; expected a token of at most {MAX_TOKEN_FILE_BYTES}",
        path.display(),
        metadata.len()
    );
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the token file `{}`", path.display()))?;
    let token = text.trim().to_owned();
    anyhow::ensure!(
        !token.is_empty(),
        "the token file `{}` is empty\n\nhint: `attendant-server workers add NAME` on the main server prints a token",
        path.display()
    );
    Ok(token)
}

/// What every remote worker task shares.
struct Remote {
    config: Arc<Config>,
    imagebuilders: Arc<ImagebuilderCache>,
    builds_started: AtomicU64,
    client: Client,
}

/// Runs `count` remote workers against `client` until `shutdown`; in-flight builds get
/// `shutdown_timeout`. Fails when the main server refuses the token.
pub async fn run_remote(
    config: Arc<Config>,
    imagebuilders: Arc<ImagebuilderCache>,
    client: Client,
    count: usize,
    shutdown: CancellationToken,
) -> Result<(), RemoteError> {
    let root = config.work_path();
    if let Ok(Ok(swept)) = tokio::task::spawn_blocking(move || super::sweep(&root)).await
        && swept.directories > 0
    {
        tracing::warn!(
            directories = swept.directories,
            "removed the work of dead build attempts"
        );
    }
    let remote = Arc::new(Remote {
        config,
        imagebuilders,
        builds_started: AtomicU64::new(0),
        client,
    });
    let hard_stop = CancellationToken::new();
    let refused = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..count.max(1) {
        tasks.spawn(worker_loop(
            remote.clone(),
            shutdown.clone(),
            hard_stop.clone(),
            refused.clone(),
        ));
    }
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = refused.cancelled() => {
            hard_stop.cancel();
            tasks.abort_all();
            return Err(RemoteError::Unauthorized);
        }
    }
    let drained = tokio::time::timeout(remote.config.shutdown_timeout, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("builds still running at the shutdown deadline; their jobs will run again");
        hard_stop.cancel();
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    Ok(())
}

async fn worker_loop(
    remote: Arc<Remote>,
    shutdown: CancellationToken,
    hard_stop: CancellationToken,
    refused: CancellationToken,
) {
    while !shutdown.is_cancelled() {
        let claimed = tokio::select! {
            () = shutdown.cancelled() => return,
            claimed = remote.client.claim(CLAIM_WAIT_SECONDS) => claimed,
        };
        match claimed {
            Ok(Some(job)) => run_job(&remote, job, &hard_stop).await,
            Ok(None) => {}
            Err(RemoteError::Unauthorized) => {
                tracing::error!("the main server refused the worker token (revoked?)");
                refused.cancel();
                return;
            }
            Err(error) => {
                tracing::warn!(error = %crate::imagebuilder::error_chain(&error), "cannot claim a job");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(RETRY_DELAY) => {}
                }
            }
        }
    }
}

/// Builds and uploads one claimed job, heartbeating until it is done or the lease is lost.
async fn run_job(remote: &Remote, job: ClaimedJob, hard_stop: &CancellationToken) {
    let span = tracing::info_span!("job", request_hash = %job.request_hash, attempt = job.attempt);
    run_claimed(remote, job, hard_stop).instrument(span).await;
}

async fn run_claimed(remote: &Remote, job: ClaimedJob, hard_stop: &CancellationToken) {
    let claim = Claim {
        request_hash: job.request_hash,
        attempt: job.attempt,
        request: job.job,
        enqueued_at: job.enqueued_at,
    };
    let every = Duration::from_secs(job.heartbeat_seconds.max(1));
    let finished = tokio::select! {
        result = build_and_upload(remote, &claim) => Some(result),
        () = heartbeat(&remote.client, &claim, every) => None,
        () = hard_stop.cancelled() => None,
    };
    match finished {
        Some(Ok(())) => {
            tracing::info!(request_hash = %claim.request_hash, attempt = claim.attempt, "job handed back")
        }
        Some(Err(RemoteError::LeaseLost)) | None => {
            tracing::warn!(request_hash = %claim.request_hash, attempt = claim.attempt, "job abandoned: lease lost or shutdown deadline");
        }
        Some(Err(error)) => {
            tracing::error!(request_hash = %claim.request_hash, attempt = claim.attempt, error = %crate::imagebuilder::error_chain(&error), "cannot hand the job back; its lease will run out");
        }
    }
}

async fn build_and_upload(remote: &Remote, claim: &Claim) -> Result<(), RemoteError> {
    let tools = Toolbox {
        config: &remote.config,
        imagebuilders: &remote.imagebuilders,
        builds_started: &remote.builds_started,
    };
    let stages = RemoteStages {
        client: &remote.client,
        claim,
    };
    match build(tools, claim, &stages).await {
        Ok(built) => {
            let uploaded = upload(&remote.client, claim, &built).await;
            built.remove().await;
            uploaded
        }
        Err(outcome) => {
            let declaration = match outcome {
                Outcome::Failed(failure) => Declaration::Failure {
                    class: FailureClass::Build,
                    detail: failure.detail,
                    stdout: failure.stdout,
                    stderr: failure.stderr,
                },
                Outcome::Retry(reason) | Outcome::Done(reason) => Declaration::Failure {
                    class: FailureClass::Infrastructure,
                    detail: reason,
                    stdout: String::new(),
                    stderr: String::new(),
                },
            };
            remote
                .client
                .declare(&claim.request_hash, claim.attempt, &declaration)
                .await
                .map(drop)
        }
    }
}

/// Declares the output and sends what the server does not hold yet, then completes.
async fn upload(client: &Client, claim: &Claim, built: &Built) -> Result<(), RemoteError> {
    let dir = built.bin_dir.clone();
    let files = tokio::task::spawn_blocking(move || declared_files(&dir))
        .await
        .map_err(|join| RemoteError::Answer(join.to_string()))??;
    let declaration = Declaration::Success {
        result: Box::new(built.response.clone()),
        files,
    };
    let hash = &claim.request_hash;
    let mut last = None;
    for _ in 0..UPLOAD_ROUNDS {
        let held = match client.declare(hash, claim.attempt, &declaration).await {
            Ok(held) => held,
            // A partition or a restart of the main server must not throw a finished build
            // away while the lease may still hold: declare again after a pause. Once the lease
            // was taken over, the main server refuses (409) and the job is dropped.
            Err(error) if error.is_transient() => {
                tracing::warn!(error = %crate::imagebuilder::error_chain(&error), "cannot hand the result back; trying again");
                last = Some(error);
                tokio::time::sleep(RETRY_DELAY).await;
                continue;
            }
            Err(error) => return Err(error),
        };
        let mut sent = true;
        for file in held.files.iter().filter(|file| file.received < file.size) {
            let path = built.bin_dir.join(&file.name);
            match client
                .put_file(
                    hash,
                    claim.attempt,
                    &file.name,
                    &path,
                    file.received,
                    file.size,
                )
                .await
            {
                Ok(()) => {}
                Err(error @ (RemoteError::LeaseLost | RemoteError::Unauthorized)) => {
                    return Err(error);
                }
                Err(error) => {
                    // Declaring again tells how much arrived; the next round resumes there.
                    tracing::warn!(file = %file.name, error = %crate::imagebuilder::error_chain(&error), "upload interrupted");
                    last = Some(error);
                    sent = false;
                    break;
                }
            }
        }
        if sent {
            return client.complete(hash, claim.attempt).await;
        }
        tokio::time::sleep(RETRY_DELAY).await;
    }
    Err(last.unwrap_or(RemoteError::Answer("the upload did not finish".to_owned())))
}

/// Every file under `dir` (the checked build output: regular files and directories only) with
/// its size and SHA-256.
fn declared_files(dir: &Path) -> Result<Vec<DeclaredFile>, RemoteError> {
    let mut files = Vec::new();
    let mut pending = vec![(dir.to_owned(), String::new())];
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| RemoteError::Io { path, source }
    };
    while let Some((current, prefix)) = pending.pop() {
        for entry in std::fs::read_dir(&current).map_err(io(&current))? {
            let entry = entry.map_err(io(&current))?;
            let path = entry.path();
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            let kind = entry.file_type().map_err(io(&path))?;
            if kind.is_dir() {
                pending.push((path, format!("{name}/")));
                continue;
            }
            let size = entry.metadata().map_err(io(&path))?.len();
            let sha256 = crate::signing::sha256_file(&path).map_err(|error| RemoteError::Io {
                path: path.clone(),
                source: std::io::Error::other(error),
            })?;
            files.push(DeclaredFile { name, size, sha256 });
        }
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

/// Renews the lease every `every`; returns when it was lost.
async fn heartbeat(client: &Client, claim: &Claim, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        match client
            .heartbeat(&claim.request_hash, claim.attempt, None)
            .await
        {
            Ok(()) => {}
            Err(RemoteError::LeaseLost | RemoteError::Unauthorized) => return,
            Err(error) => {
                tracing::warn!(error = %crate::imagebuilder::error_chain(&error), "heartbeat failed")
            }
        }
    }
}

/// A remote worker's stages go to the main server with a heartbeat.
struct RemoteStages<'a> {
    client: &'a Client,
    claim: &'a Claim,
}

impl StageSink for RemoteStages<'_> {
    fn stage<'a>(&'a self, stage: &'a ImagebuilderStatus) -> BoxFuture<'a, Result<(), Outcome>> {
        Box::pin(async move {
            match self
                .client
                .heartbeat(&self.claim.request_hash, self.claim.attempt, Some(stage))
                .await
            {
                Ok(()) => Ok(()),
                Err(RemoteError::LeaseLost | RemoteError::Unauthorized) => {
                    Err(Outcome::Retry("lease lost".to_owned()))
                }
                // The heartbeat loop keeps trying; a passing network fault stops no build.
                Err(error) => {
                    tracing::warn!(error = %crate::imagebuilder::error_chain(&error), "cannot report the stage");
                    Ok(())
                }
            }
        })
    }
}
