//! The admin API under `/api/v1/admin/`: every channel operation of the CLI, JSON in and out,
//! through the same [`crate::channels::apply::apply`] (so the same rules, retries, audit log and
//! publication).
//!
//! Authentication: `Authorization: Bearer <token>`, where the SHA-256 of the token is one of
//! the configuration's `admin_tokens` (compared in constant time, every configured token
//! examined). No or malformed header: 401; a token nobody configured: 403. The token's name is
//! the actor in the audit log.
//!
//! | method | path | body / query | answer |
//! | --- | --- | --- | --- |
//! | GET | `channels` | | the tree: channels with devices and builds |
//! | GET | `channels/images` | `?channel=&device=` | the device entry (builds, images): each build's `reports`, `downloads` per build and image |
//! | GET | `audit` | `?after=ID&limit=N` (default 0, 100; at most 1000) | audit entries, oldest first |
//! | POST | `channels/create` | `{name, auto?, versionbase?, fullcount?, like?}` | [`Applied`] |
//! | POST | `channels/remove`, `channels/hide`, `channels/show` | `{name}` | [`Applied`] |
//! | POST | `channels/rename` | `{old, new}` | [`Applied`] |
//! | POST | `channels/alias` | `{alias, target}` | [`Applied`] |
//! | POST | `channels/redirect` | `{name, target, device?}` | [`Applied`] |
//! | POST | `channels/device/add`, `channels/device/remove` | `{name, device}` | [`Applied`] |
//! | POST | `channels/build` | `{name, device, version, add?, remove?, defaults?, rootfs_size_mb?, minversion?, description?}` | [`Applied`] |
//! | POST | `channels/import` | the image bytes; `?name=&device=&version=&filename=&minversion=&description=&dry_run=` | [`Applied`] |
//! | POST | `channels/phase` | `{name, device, build, percent}` | [`Applied`] |
//! | POST | `channels/tag` | `{name, device, build, tag}` | [`Applied`] |
//! | POST | `channels/copy` | `{name, device, build, target_channel}` | [`Applied`] |
//! | POST | `channels/remove-build` | `{name, device, build}` | [`Applied`] |
//! | POST | `channels/rollout` | `{name, halt_failure_rate?, halt_min_reports?, advance?, min_successes?, soak?}` | [`Applied`] |
//! | POST | `settle` | `{}` | builds that became ready or failed, and those still waiting |
//!
//! Every POST body may carry `"dry_run": true`: the answer shows the change and nothing is
//! committed. Refusals answer 404 (no such channel, device or build) or 409 (a rule), with
//! `{"detail", "hint"?, "status"}`. Builds are not waited for: `settle` (or `serve`'s schedule)
//! takes finished images into the pool. An imported image is uploaded as the request body (at
//! most [`MAX_UPLOAD_BYTES`], streamed to a file under `<channels.dir>/.uploads/`, deleted once
//! it is in the pool) and checked like `channel build --file`.

use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::channels::apply::{Applied, apply, existing_channel};
use crate::channels::builds::{self, BuildOrder};
use crate::channels::cache::TreeError;
use crate::channels::downloads;
use crate::channels::model::{DeviceId, Recipe};
use crate::channels::ops::{self, CreateOptions, OpError, RolloutUpdate};
use crate::channels::reports;
use crate::http::build::LimitedBody;
use crate::http::error::ApiError;
use crate::state::{AppState, now};
use crate::store::channel_store::{AuditRecord, MAX_AUDIT_PAGE};

/// Longest `Authorization` header read, in bytes.
const MAX_AUTHORIZATION_LEN: usize = 1024;

/// Largest image accepted by `channels/import`, in bytes.
const MAX_UPLOAD_BYTES: u64 = 1 << 30;

/// The admin routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/channels", get(tree))
        .route("/api/v1/admin/channels/images", get(images))
        .route("/api/v1/admin/audit", get(audit))
        .route("/api/v1/admin/channels/create", post(create))
        .route("/api/v1/admin/channels/remove", post(remove))
        .route("/api/v1/admin/channels/hide", post(hide))
        .route("/api/v1/admin/channels/show", post(show))
        .route("/api/v1/admin/channels/rename", post(rename))
        .route("/api/v1/admin/channels/alias", post(alias))
        .route("/api/v1/admin/channels/redirect", post(redirect))
        .route("/api/v1/admin/channels/device/add", post(device_add))
        .route("/api/v1/admin/channels/device/remove", post(device_remove))
        .route("/api/v1/admin/channels/build", post(build))
        .route("/api/v1/admin/channels/import", post(import))
        .route("/api/v1/admin/channels/phase", post(phase))
        .route("/api/v1/admin/channels/tag", post(tag))
        .route("/api/v1/admin/channels/copy", post(copy))
        .route("/api/v1/admin/channels/remove-build", post(remove_build))
        .route("/api/v1/admin/channels/rollout", post(rollout))
        .route("/api/v1/admin/settle", post(settle))
}

/// The authenticated caller: the name of the admin token presented.
pub(crate) struct Admin(String);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::Unauthorized);
        };
        let token = value
            .to_str()
            .ok()
            .filter(|text| text.len() <= MAX_AUTHORIZATION_LEN)
            .and_then(|text| text.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or(ApiError::Unauthorized)?;
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found: Option<&str> = None;
        // Every configured token is compared, each in constant time, so the answer's timing
        // tells nothing about which bytes matched.
        for configured in &state.config.admin_tokens {
            let mut expected = [0u8; 32];
            if hex::decode_to_slice(&configured.sha256, &mut expected).is_err() {
                continue;
            }
            let difference = expected
                .iter()
                .zip(presented.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if difference == 0 && found.is_none() {
                found = Some(&configured.name);
            }
        }
        match found {
            Some(name) => Ok(Self(name.to_owned())),
            None => Err(ApiError::Forbidden),
        }
    }
}

/// A JSON body of an admin request; a body that is not the expected object is a 422 naming
/// what serde found wrong.
pub(crate) struct AdminJson<T>(T);

impl<T: DeserializeOwned> axum::extract::FromRequest<AppState> for AdminJson<T> {
    type Rejection = ApiError;

    async fn from_request(
        request: axum::extract::Request,
        state: &AppState,
    ) -> Result<Self, ApiError> {
        let body = LimitedBody::from_request(request, state).await?;
        serde_json::from_slice(&body.0)
            .map(Self)
            .map_err(|error| ApiError::AdminBody(error.to_string()))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    #[serde(default)]
    auto: bool,
    versionbase: Option<u64>,
    fullcount: Option<u32>,
    like: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NameBody {
    name: String,
    #[serde(default)]
    dry_run: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RenameBody {
    old: String,
    new: String,
    #[serde(default)]
    dry_run: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AliasBody {
    alias: String,
    target: String,
    #[serde(default)]
    dry_run: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RedirectBody {
    name: String,
    target: String,
    device: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceBody {
    name: String,
    device: String,
    #[serde(default)]
    dry_run: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BuildBody {
    name: String,
    device: String,
    version: String,
    #[serde(default)]
    add: Vec<String>,
    #[serde(default)]
    remove: Vec<String>,
    defaults: Option<String>,
    rootfs_size_mb: Option<u32>,
    minversion: Option<u64>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    dry_run: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportQuery {
    name: String,
    device: String,
    version: String,
    filename: String,
    minversion: Option<u64>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    dry_run: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PhaseBody {
    name: String,
    device: String,
    build: u64,
    percent: u64,
    #[serde(default)]
    dry_run: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TagBody {
    name: String,
    device: String,
    build: u64,
    tag: String,
    #[serde(default)]
    dry_run: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CopyBody {
    name: String,
    device: String,
    build: u64,
    target_channel: String,
    #[serde(default)]
    dry_run: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BuildNumberBody {
    name: String,
    device: String,
    build: u64,
    #[serde(default)]
    dry_run: bool,
}

/// `channels/rollout`: an absent field leaves the setting as it is; `null` for
/// `halt_failure_rate` or `advance` turns that part off; `soak` is a duration such as `"1d"`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RolloutBody {
    name: String,
    #[serde(default, deserialize_with = "present")]
    halt_failure_rate: Option<Option<f64>>,
    halt_min_reports: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    advance: Option<Option<Vec<u64>>>,
    min_successes: Option<u64>,
    soak: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

/// A field that is present (`Some`, its value possibly `null`), as opposed to absent (`None`
/// through `default`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImagesQuery {
    channel: String,
    device: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    #[serde(default)]
    after: i64,
    limit: Option<u32>,
}

type Answer = Result<Json<Applied>, ApiError>;

/// The tree as JSON (a list of [`crate::channels::model::Channel`]), encoded once per change
/// ([`crate::channels::cache::TreeCache`]).
async fn tree(State(state): State<AppState>, _: Admin) -> Result<Response, ApiError> {
    let body = state
        .channel_cache
        .tree
        .encoded(state.store.channels())
        .await
        .map_err(|error| match error {
            TreeError::Store(error) => channel_error(error),
            TreeError::Encode(error) => ApiError::Internal(error.to_string()),
        })?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}

async fn images(
    State(state): State<AppState>,
    _: Admin,
    Query(query): Query<ImagesQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let channel = existing_channel(&state, &query.channel)
        .await
        .map_err(channel_error)?;
    let device = channel.devices.get(&query.device).ok_or_else(|| {
        channel_error(OpError::NoDevice {
            channel: query.channel.clone(),
            device: query.device.clone(),
        })
    })?;
    let counts = reports::counts(&state, &query.channel, &query.device)
        .await
        .map_err(channel_error)?;
    let mut value = reports::device_with_reports(device, &counts);
    downloads::add_downloads(&state, device, &mut value)
        .await
        .map_err(channel_error)?;
    Ok(Json(value))
}

async fn audit(
    State(state): State<AppState>,
    _: Admin,
    Query(query): Query<AuditQuery>,
) -> Result<Json<Vec<AuditRecord>>, ApiError> {
    let limit = query.limit.unwrap_or(100).min(MAX_AUDIT_PAGE);
    let log = state
        .store
        .channels()
        .audit_log(query.after, limit)
        .await
        .map_err(channel_error)?;
    Ok(Json(log))
}

async fn create(
    State(state): State<AppState>,
    Admin(actor): Admin,
    AdminJson(body): AdminJson<CreateBody>,
) -> Answer {
    let options = CreateOptions {
        auto: body.auto,
        versionbase: body.versionbase,
        fullcount: body.fullcount,
        like: body.like,
    };
    run(&state, &actor, body.dry_run, |tree| {
        ops::create(tree, &body.name, &options)
    })
    .await
}

async fn remove(
    State(state): State<AppState>,
    Admin(actor): Admin,
    AdminJson(body): AdminJson<NameBody>,
) -> Answer {
    run(&state, &actor, body.dry_run, |tree| {
        ops::remove(tree, &body.name)
    })
    .await
}

async fn hide(
    State(state): State<AppState>,
    Admin(actor): Admin,
    AdminJson(body): AdminJson<NameBody>,
) -> Answer {
    run(&state, &actor, body.dry_run, |tree| {
        ops::set_hidden(tree, &body.name, true)
    })
    .await
}

async fn show(
    State(state): State<AppState>,
    Admin(actor): Admin,
    AdminJson(body): AdminJson<NameBody>,
) -> Answer {
    run(&state, &actor, body.dry_run, |tree| {
        ops::set_hidden(tree, &body.name, false)
    })
    .await
}

async fn rename(
    State(state): State<AppState>,
    Admin(actor): Admin,
    AdminJson(body): AdminJson<RenameBody>,
) -> Answer {
    run(&state, &actor, body.dry_run, |tree| {
        ops::rename(tree, &body.old, &body.new)
    })
    .await
}

async fn alias(
    State(state): State<AppState>,
    Admin(actor): Admin,
    AdminJson(body): AdminJson<AliasBody>,
) -> Answer {
    run(&state, &actor, body.dry_run, |tree| {
        ops::alias(tree, &body.alias, &body.target, now())
    })
    .await
}

async fn redirect(
    State(state): State<AppState>,
    Admin(actor): Admin,
    AdminJson(body): AdminJson<RedirectBody>,
) -> Answer {
    let device = match &body.device {
        Some(text) => Some(text.parse::<DeviceId>().map_err(|error| {
            channel_error(builds::BuildsError::UnknownDevice {
                device: text.clone(),
                reason: error.to_string(),
            })
        })?),
        None => None,
    };
    run(&state, &actor, body.dry_run, |tree| {
        ops::redirect(tree, &body.name, &body.target, device.as_ref())
    })
    .await
}

async fn device_add(
    State(state): State<AppState>,
    Admin(actor): Admin,
    AdminJson(body): AdminJson<DeviceBody>,
) -> Answer {
    let device = builds::resolve_device(&state, &body.device)
        .await
        .map_err(channel_error)?;
    run(&state, &actor, body.dry_run, |tree| {
        ops::device_add(tree, &body.name, &device)
    })
    .await
}

async fn device_remove(
    State(state): State<AppState>,
    Admin(actor): Admin,
    AdminJson(body): AdminJson<DeviceBody>,
) -> Answer {
    run(&state, &actor, body.dry_run, |tree| {
        ops::device_remove(tree, &body.name, &body.device)
    })
    .await
}

async fn build(
    State(state): State<AppState>,
    Admin(actor): Admin,
    AdminJson(body): AdminJson<BuildBody>,
) -> Answer {
    let order = BuildOrder {
        version: body.version,
        recipe: Recipe {
            add: body.add,
            remove: body.remove,
            defaults: body.defaults,
            rootfs_size_mb: body.rootfs_size_mb,
        },
        minversion: body.minversion,
        description: body.description,
    };
    builds::build(
        &state,
        &actor,
        &body.name,
        &body.device,
        &order,
        body.dry_run,
    )
    .await
    .map(Json)
    .map_err(channel_error)
}

async fn import(
    State(state): State<AppState>,
    Admin(actor): Admin,
    Query(query): Query<ImportQuery>,
    body: axum::body::Body,
) -> Answer {
    let uploads = state.config.channels_path().join(".uploads");
    let file = uploads.join(format!("upload-{}", crate::artifacts::nonce()));
    let received = receive(body, &uploads, &file).await;
    let outcome = match received {
        Ok(()) => {
            let order = builds::ImportOrder {
                file: file.clone(),
                version: query.version,
                minversion: query.minversion,
                description: query.description,
                name: Some(query.filename.clone()),
                origin: Some(format!("upload by {actor}: {}", query.filename)),
            };
            let key = state.signing_key.clone();
            builds::import(
                &state,
                key.as_deref(),
                &actor,
                &query.name,
                &query.device,
                &order,
                query.dry_run,
            )
            .await
            .map(Json)
            .map_err(channel_error)
        }
        Err(error) => Err(error),
    };
    if let Err(error) = tokio::fs::remove_file(&file).await
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %file.display(), error = %error, "cannot delete an upload");
    }
    outcome
}

/// Streams an upload to `file`, at most [`MAX_UPLOAD_BYTES`].
async fn receive(
    body: axum::body::Body,
    dir: &std::path::Path,
    file: &std::path::Path,
) -> Result<(), ApiError> {
    use futures_util::StreamExt as _;
    use tokio::io::AsyncWriteExt as _;
    let internal = |error: std::io::Error| {
        ApiError::Internal(format!(
            "cannot store an upload in `{}`: {error}",
            dir.display()
        ))
    };
    tokio::fs::create_dir_all(dir).await.map_err(internal)?;
    let mut out = tokio::fs::File::create(file).await.map_err(internal)?;
    let mut stream = body.into_data_stream();
    let mut total: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| ApiError::BodyRead)?;
        total = total.saturating_add(chunk.len() as u64);
        if total > MAX_UPLOAD_BYTES {
            return Err(ApiError::BodyTooLarge {
                limit: usize::try_from(MAX_UPLOAD_BYTES).unwrap_or(usize::MAX),
            });
        }
        out.write_all(&chunk).await.map_err(internal)?;
    }
    out.sync_all().await.map_err(internal)?;
    Ok(())
}

async fn phase(
    State(state): State<AppState>,
    Admin(actor): Admin,
    AdminJson(body): AdminJson<PhaseBody>,
) -> Answer {
    run(&state, &actor, body.dry_run, |tree| {
        ops::phase(tree, &body.name, &body.device, body.build, body.percent)
    })
    .await
}

async fn tag(
    State(state): State<AppState>,
    Admin(actor): Admin,
    AdminJson(body): AdminJson<TagBody>,
) -> Answer {
    run(&state, &actor, body.dry_run, |tree| {
        ops::tag(tree, &body.name, &body.device, body.build, &body.tag, now())
    })
    .await
}

async fn copy(
    State(state): State<AppState>,
    Admin(actor): Admin,
    AdminJson(body): AdminJson<CopyBody>,
) -> Answer {
    run(&state, &actor, body.dry_run, |tree| {
        ops::copy(
            tree,
            &body.name,
            &body.device,
            body.build,
            &body.target_channel,
            now(),
        )
    })
    .await
}

async fn remove_build(
    State(state): State<AppState>,
    Admin(actor): Admin,
    AdminJson(body): AdminJson<BuildNumberBody>,
) -> Answer {
    run(&state, &actor, body.dry_run, |tree| {
        ops::remove_build(tree, &body.name, &body.device, body.build)
    })
    .await
}

async fn rollout(
    State(state): State<AppState>,
    Admin(actor): Admin,
    AdminJson(body): AdminJson<RolloutBody>,
) -> Answer {
    let soak_seconds = match &body.soak {
        Some(text) => Some(
            humantime::parse_duration(text)
                .map_err(|error| {
                    let text: String = text.chars().take(64).collect();
                    ApiError::AdminBody(format!("`soak` `{text}` is not a duration: {error}"))
                })?
                .as_secs(),
        ),
        None => None,
    };
    let update = RolloutUpdate {
        halt_failure_rate: body.halt_failure_rate,
        halt_min_reports: body.halt_min_reports,
        advance_steps: body.advance,
        min_successes: body.min_successes,
        soak_seconds,
    };
    run(&state, &actor, body.dry_run, |tree| {
        ops::set_rollout(tree, &body.name, &update)
    })
    .await
}

async fn settle(
    State(state): State<AppState>,
    Admin(actor): Admin,
) -> Result<Json<serde_json::Value>, ApiError> {
    let key = state.signing_key.clone();
    let report = builds::settle(&state, key.as_deref(), &actor)
        .await
        .map_err(channel_error)?;
    let waiting: Vec<serde_json::Value> = report
        .waiting
        .iter()
        .map(|waiting| {
            serde_json::json!({
                "build": waiting.build,
                "stage": waiting.stage.as_str(),
                "queue_position": waiting.queue_position,
            })
        })
        .collect();
    let failed: Vec<serde_json::Value> = report
        .failed
        .iter()
        .map(|(build, reason)| serde_json::json!({"build": build, "reason": reason}))
        .collect();
    Ok(Json(serde_json::json!({
        "ready": report.ready,
        "failed": failed,
        "waiting": waiting,
    })))
}

async fn run(
    state: &AppState,
    actor: &str,
    dry_run: bool,
    operation: impl Fn(&ops::Tree) -> Result<ops::Change, OpError>,
) -> Answer {
    apply(state, actor, dry_run, operation)
        .await
        .map(Json)
        .map_err(channel_error)
}

fn channel_error(error: impl Into<crate::channels::apply::ChannelError>) -> ApiError {
    ApiError::Channel(error.into())
}
