//! `/api/v1/worker/...`: the remote worker protocol (`docs/workers.md`), bearer worker tokens.
//! The handlers extract and call `crate::worker::intake`, which holds the rules.

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Deserialize;

use attendant_proto::api::RequestHash;

use crate::http::ApiError;
use crate::http::files::{FileHeaders, send_bytes, send_file};
use crate::imagebuilder::{IbError, UpstreamFile};
use crate::state::AppState;
use crate::store::WorkerRecord;
use crate::worker::intake::{
    self, Heartbeat, IntakeError, MAX_CLAIM_WAIT_SECONDS, MAX_DECLARATION_BYTES,
};

/// Longest `Authorization` header read, in bytes.
const MAX_AUTHORIZATION_LEN: usize = 256;
/// Largest heartbeat body, in bytes.
const MAX_HEARTBEAT_BYTES: usize = 4096;
/// Largest `sha256sums` or `sha256sums.sig` passed on to a worker, in bytes (a real
/// `sha256sums` of a target is tens of KiB).
const MAX_SIGNED_LISTING_BYTES: u64 = 4 << 20;

/// The worker routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/worker/claim", post(claim))
        .route(
            "/api/v1/worker/jobs/{request_hash}/{attempt}/heartbeat",
            post(heartbeat),
        )
        .route(
            "/api/v1/worker/jobs/{request_hash}/{attempt}/result",
            post(declare),
        )
        .route(
            "/api/v1/worker/jobs/{request_hash}/{attempt}/files/{*name}",
            put(put_file),
        )
        .route(
            "/api/v1/worker/jobs/{request_hash}/{attempt}/complete",
            post(complete),
        )
        .route(
            "/api/v1/worker/imagebuilders/{*path}",
            get(imagebuilder_file),
        )
}

/// The authenticated worker.
pub(crate) struct RemoteWorker(WorkerRecord);

impl FromRequestParts<AppState> for RemoteWorker {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .filter(|text| text.len() <= MAX_AUTHORIZATION_LEN)
            .and_then(|text| text.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or(IntakeError::Unauthorized)?;
        Ok(Self(intake::authenticate(state, token).await?))
    }
}

/// Longest `wait` value quoted back in a refusal, in characters.
const MAX_QUOTED_WAIT_CHARS: usize = 20;

/// The claim's query, kept as text so that a malformed `wait` gets the API's JSON refusal
/// rather than axum's plain-text one.
#[derive(Debug, Deserialize)]
struct ClaimQuery {
    wait: Option<String>,
}

impl ClaimQuery {
    /// `wait` in seconds (0 without it); values above the cap are refused by
    /// [`intake::claim`], which names the cap.
    fn wait(raw: Result<Query<Self>, QueryRejection>) -> Result<u64, ApiError> {
        let malformed = |found: String| ApiError::Status {
            status: 400,
            detail: format!(
                "query parameter `wait` must be a whole number of seconds from 0 to {MAX_CLAIM_WAIT_SECONDS}, got `{found}`"
            ),
        };
        let Query(query) = raw.map_err(|rejection| malformed(rejection.body_text()))?;
        match query.wait {
            None => Ok(0),
            Some(text) => text
                .trim()
                .parse::<u64>()
                .map_err(|_| malformed(text.chars().take(MAX_QUOTED_WAIT_CHARS).collect())),
        }
    }
}

/// The job and attempt of a worker route.
#[derive(Debug, Deserialize)]
struct JobPath {
    request_hash: String,
    attempt: u32,
}

impl JobPath {
    fn hash(&self) -> Result<RequestHash, ApiError> {
        self.request_hash
            .parse()
            .map_err(|_| ApiError::Build(crate::build::BuildError::NotFound))
    }
}

#[derive(Debug, Deserialize)]
struct FilePath {
    request_hash: String,
    attempt: u32,
    name: String,
}

async fn claim(
    worker: RemoteWorker,
    state: axum::extract::State<AppState>,
    query: Result<Query<ClaimQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let wait = ClaimQuery::wait(query)?.min(MAX_CLAIM_WAIT_SECONDS.saturating_add(1));
    match intake::claim(&state, &worker.0, wait).await? {
        Some(job) => Ok(Json(job).into_response()),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

async fn heartbeat(
    worker: RemoteWorker,
    state: axum::extract::State<AppState>,
    Path(path): Path<JobPath>,
    body: Body,
) -> Result<Response, ApiError> {
    let _ = worker;
    let bytes = read_capped(body, MAX_HEARTBEAT_BYTES).await?;
    let beat: Heartbeat = if bytes.is_empty() {
        Heartbeat::default()
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|error| IntakeError::Declaration(error.to_string()))?
    };
    let renewed = intake::heartbeat(&state, &path.hash()?, path.attempt, &beat).await?;
    Ok(Json(renewed).into_response())
}

async fn declare(
    worker: RemoteWorker,
    state: axum::extract::State<AppState>,
    Path(path): Path<JobPath>,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_capped(body, MAX_DECLARATION_BYTES).await?;
    let upload = intake::declare(&state, &worker.0, &path.hash()?, path.attempt, &bytes).await?;
    Ok(Json(upload).into_response())
}

async fn put_file(
    worker: RemoteWorker,
    state: axum::extract::State<AppState>,
    Path(path): Path<FilePath>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let _ = worker;
    let hash: RequestHash = path
        .request_hash
        .parse()
        .map_err(|_| ApiError::Build(crate::build::BuildError::NotFound))?;
    let start = content_range_start(&headers, &path.name)?;
    let received = intake::put_file(
        &state,
        &hash,
        path.attempt,
        &path.name,
        start,
        body.into_data_stream(),
    )
    .await?;
    Ok(Json(received).into_response())
}

async fn complete(
    worker: RemoteWorker,
    state: axum::extract::State<AppState>,
    Path(path): Path<JobPath>,
) -> Result<Response, ApiError> {
    intake::complete(&state, &worker.0, &path.hash()?, path.attempt).await?;
    Ok(Json(serde_json::json!({"status": "done"})).into_response())
}

/// `GET /api/v1/worker/imagebuilders/<version_path>/targets/<target>/<subtarget>/<file>`: the
/// upstream's `sha256sums` and `sha256sums.sig` passed on as they are (the worker checks the
/// signature with its own keys), or the ImageBuilder archive from this server's verified cache
/// (downloaded and checked first when missing), with one byte range for resuming.
async fn imagebuilder_file(
    worker: RemoteWorker,
    state: axum::extract::State<AppState>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let _ = worker;
    let file = UpstreamFile::parse(&path).map_err(|_| ApiError::FileNotFound)?;
    let cache = state.imagebuilders.as_ref().ok_or(ApiError::FileNotFound)?;
    let options = FileHeaders {
        content_type: "application/octet-stream",
        attachment: false,
        cache_control: None,
        validators: false,
    };
    if matches!(file.name.as_str(), "sha256sums" | "sha256sums.sig") {
        let bytes = cache
            .upstream_file(&path, MAX_SIGNED_LISTING_BYTES)
            .await
            .map_err(imagebuilder_error)?
            .ok_or(ApiError::FileNotFound)?;
        return Ok(send_bytes(
            &bytes::Bytes::from(bytes),
            None,
            &file.name,
            &headers,
            &options,
        ));
    }
    let lease = cache
        .archive(&file.spec)
        .await
        .map_err(imagebuilder_error)?;
    if lease.archive_name != file.name {
        return Err(ApiError::FileNotFound);
    }
    // Open while the lease pins the entry: an eviction after this point unlinks the file but
    // cannot cut the answer short.
    let opened = std::fs::File::open(&lease.archive).map_err(|_| ApiError::FileNotFound)?;
    send_file(opened, &file.name, &headers, &options).await
}

/// An ImageBuilder the upstream does not have is 404; any other trouble getting it is the
/// upstream's (502), named by the error chain.
fn imagebuilder_error(error: IbError) -> ApiError {
    if matches!(error, IbError::NotFound { .. }) {
        return ApiError::FileNotFound;
    }
    ApiError::Status {
        status: 502,
        detail: crate::imagebuilder::error_chain(&error),
    }
}

/// Where a part starts: `Content-Range: bytes START-END/TOTAL` (RFC 9110 §14.4), or 0 without
/// the header (the body is the whole file).
fn content_range_start(headers: &HeaderMap, name: &str) -> Result<u64, IntakeError> {
    let Some(value) = headers.get(header::CONTENT_RANGE) else {
        return Ok(0);
    };
    let malformed = || IntakeError::Range {
        name: name.to_owned(),
        detail: "`Content-Range` is not `bytes START-END/TOTAL`".to_owned(),
        too_long: false,
    };
    let text = value.to_str().map_err(|_| malformed())?;
    let range = text.strip_prefix("bytes ").ok_or_else(malformed)?;
    let (span, _total) = range.split_once('/').ok_or_else(malformed)?;
    let (start, _end) = span.split_once('-').ok_or_else(malformed)?;
    start.trim().parse().map_err(|_| malformed())
}

async fn read_capped(body: Body, limit: usize) -> Result<bytes::Bytes, ApiError> {
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::BodyTooLarge { limit })
}
