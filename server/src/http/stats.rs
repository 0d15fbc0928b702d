//! The statistics endpoints at ASU's paths with ASU's shapes (`asu/routers/stats.py`,
//! <https://github.com/openwrt/asu/blob/main/asu/routers/stats.py>), and a few of our own:
//!
//! | path | answer |
//! | --- | --- |
//! | `/api/v1/stats` | `{"queue_length": n}` |
//! | `/api/v1/stats/summary` | `{"builds_24h": n, "queue_length": n, "running": n}` |
//! | `/api/v1/builds-per-day` | chart: 30 days of requests, cache hits, failures |
//! | `/api/v1/builds-by-version?branch=` | chart: 26 weeks of builds per branch or version |
//! | `/api/v1/top-packages?branch=&n=30` | `{"packages": [{"name", "count"}], "branch", "days"}` |
//! | `/api/v1/top-targets?n=30`, `top-profiles`, `top-clients` | the same with `targets`, `profiles`, `clients` |
//! | `/api/v1/downloads?request_hash=&n=30` | `{"downloads": [{"request_hash", "image", "count"}]}` |
//! | `/api/v1/build-errors?n=100` | `text/plain`: the most recent failures |
//!
//! `n` is capped (100 for the top lists, 500 for `build-errors`, as ASU); `branch` and
//! `request_hash` are at most [`MAX_QUERY_VALUE_CHARS`] characters; anything else is a 422
//! naming the parameter. The bodies are server-only shapes (no client of ours reads them, so
//! `proto` has no type for them); `stats` and `stats/summary` keep the field order they have
//! always answered with.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::build::BuildError;
use crate::http::error::ApiError;
use crate::state::{AppState, now};
use crate::stats::{self, Chart, MAX_ERRORS, MAX_TOP, NameCount, TopPackages};
use crate::store::{Counts, EventKey, ImageDownloads, StoreError};

/// Longest `branch` or `request_hash` query value.
pub(crate) const MAX_QUERY_VALUE_CHARS: usize = 64;
/// `n` of the top lists when not given (ASU's `top-packages` default).
const DEFAULT_TOP: u32 = 30;
/// `n` of `build-errors` when not given (ASU's default).
const DEFAULT_ERRORS: u32 = 100;

/// The statistics routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/stats", get(stats))
        .route("/api/v1/stats/summary", get(summary))
        .route("/api/v1/builds-per-day", get(builds_per_day))
        .route("/api/v1/builds-by-version", get(builds_by_version))
        .route("/api/v1/top-packages", get(top_packages))
        .route("/api/v1/top-targets", get(top_targets))
        .route("/api/v1/top-profiles", get(top_profiles))
        .route("/api/v1/top-clients", get(top_clients))
        .route("/api/v1/downloads", get(downloads))
        .route("/api/v1/build-errors", get(build_errors))
}

/// The query parameters of every statistics endpoint, as sent; [`Params`] checks them.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawParams {
    branch: Option<String>,
    n: Option<String>,
    /// ASU's name for `n` of `build-errors`.
    n_entries: Option<String>,
    request_hash: Option<String>,
}

/// Checked query parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Params {
    /// `branch`, if given and not empty.
    pub(crate) branch: Option<String>,
    /// `n`, capped.
    pub(crate) n: u32,
    /// `request_hash`, if given.
    pub(crate) request_hash: Option<String>,
}

impl Params {
    /// Checks `raw`; `n` defaults to `default` and is capped at `max`.
    pub(crate) fn check(
        raw: Result<Query<RawParams>, QueryRejection>,
        default: u32,
        max: u32,
    ) -> Result<Self, ApiError> {
        let Query(raw) = raw.map_err(|rejection| invalid(rejection.body_text()))?;
        let n = match raw.n.or(raw.n_entries) {
            None => default,
            Some(text) => text.trim().parse::<u32>().map_err(|_| {
                invalid(format!(
                    "query parameter `n` must be a whole number from 0, got `{}`",
                    text.chars().take(MAX_QUERY_VALUE_CHARS).collect::<String>()
                ))
            })?,
        };
        Ok(Self {
            branch: bounded("branch", raw.branch)?,
            n: n.min(max),
            request_hash: bounded("request_hash", raw.request_hash)?,
        })
    }
}

fn bounded(name: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        Some(value) if value.chars().count() > MAX_QUERY_VALUE_CHARS => Err(invalid(format!(
            "query parameter `{name}` is longer than {MAX_QUERY_VALUE_CHARS} characters"
        ))),
        Some(value) if value.is_empty() => Ok(None),
        value => Ok(value),
    }
}

fn invalid(detail: String) -> ApiError {
    ApiError::Status {
        status: 422,
        detail,
    }
}

fn store_error(error: StoreError) -> ApiError {
    BuildError::from(error).into()
}

async fn builds_per_day(State(state): State<AppState>) -> Result<Json<Chart>, ApiError> {
    let chart = stats::builds_per_day(&*state.store, now())
        .await
        .map_err(store_error)?;
    Ok(Json(chart))
}

async fn builds_by_version(
    State(state): State<AppState>,
    raw: Result<Query<RawParams>, QueryRejection>,
) -> Result<Json<Chart>, ApiError> {
    let params = Params::check(raw, DEFAULT_TOP, MAX_TOP)?;
    let chart = stats::builds_by_version(&*state.store, params.branch.as_deref(), now())
        .await
        .map_err(store_error)?;
    Ok(Json(chart))
}

async fn top_packages(
    State(state): State<AppState>,
    raw: Result<Query<RawParams>, QueryRejection>,
) -> Result<Json<TopPackages>, ApiError> {
    let params = Params::check(raw, DEFAULT_TOP, MAX_TOP)?;
    let top = stats::top_packages(&*state.store, params.branch.as_deref(), params.n, now())
        .await
        .map_err(store_error)?;
    Ok(Json(top))
}

/// `top-targets`, `top-profiles`, `top-clients`: `{"<list>": [...], "days": 30}`.
#[derive(Debug, Serialize)]
struct TopList {
    #[serde(flatten)]
    list: std::collections::BTreeMap<&'static str, Vec<NameCount>>,
    days: i64,
}

async fn top_list(
    state: &AppState,
    raw: Result<Query<RawParams>, QueryRejection>,
    key: EventKey,
    name: &'static str,
) -> Result<Json<TopList>, ApiError> {
    let params = Params::check(raw, DEFAULT_TOP, MAX_TOP)?;
    let top = stats::top(&*state.store, key, params.n, now())
        .await
        .map_err(store_error)?;
    Ok(Json(TopList {
        list: [(name, top)].into_iter().collect(),
        days: stats::DAYS,
    }))
}

async fn top_targets(
    State(state): State<AppState>,
    raw: Result<Query<RawParams>, QueryRejection>,
) -> Result<Json<TopList>, ApiError> {
    top_list(&state, raw, EventKey::Target, "targets").await
}

async fn top_profiles(
    State(state): State<AppState>,
    raw: Result<Query<RawParams>, QueryRejection>,
) -> Result<Json<TopList>, ApiError> {
    top_list(&state, raw, EventKey::Profile, "profiles").await
}

async fn top_clients(
    State(state): State<AppState>,
    raw: Result<Query<RawParams>, QueryRejection>,
) -> Result<Json<TopList>, ApiError> {
    top_list(&state, raw, EventKey::Client, "clients").await
}

/// `GET /api/v1/downloads`.
#[derive(Debug, Serialize)]
struct Downloads {
    downloads: Vec<ImageDownloads>,
}

/// The most downloaded images (of one build with `request_hash`), counts written first.
pub(crate) async fn image_downloads(
    state: &AppState,
    request_hash: Option<&str>,
    n: u32,
) -> Result<Vec<ImageDownloads>, ApiError> {
    // Reading flushes, so a reader sees every download counted so far in this process.
    state
        .downloads
        .flush(&*state.store, now())
        .await
        .map_err(store_error)?;
    state
        .store
        .downloads(request_hash, n)
        .await
        .map_err(store_error)
}

async fn downloads(
    State(state): State<AppState>,
    raw: Result<Query<RawParams>, QueryRejection>,
) -> Result<Json<Downloads>, ApiError> {
    let params = Params::check(raw, DEFAULT_TOP, MAX_TOP)?;
    let rows = image_downloads(&state, params.request_hash.as_deref(), params.n).await?;
    Ok(Json(Downloads { downloads: rows }))
}

async fn build_errors(
    State(state): State<AppState>,
    raw: Result<Query<RawParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let params = Params::check(raw, DEFAULT_ERRORS, MAX_ERRORS)?;
    let text = stats::build_errors(&*state.store, params.n)
        .await
        .map_err(store_error)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        text,
    )
        .into_response())
}

/// `GET /api/v1/stats`: `{"queue_length": n}`.
#[derive(Debug, Serialize)]
struct Stats {
    queue_length: u64,
}

/// `GET /api/v1/stats/summary`.
#[derive(Debug, Serialize)]
struct Summary {
    /// Builds that finished successfully within the last 24 hours.
    builds_24h: u64,
    /// Jobs waiting.
    queue_length: u64,
    /// Jobs being built.
    running: u64,
}

impl From<Counts> for Summary {
    fn from(counts: Counts) -> Self {
        Self {
            builds_24h: counts.builds_24h,
            queue_length: counts.queue_length,
            running: counts.running,
        }
    }
}

async fn stats(State(state): State<AppState>) -> Result<Json<Stats>, ApiError> {
    let counts = state.store.counts(now()).await.map_err(BuildError::from)?;
    Ok(Json(Stats {
        queue_length: counts.queue_length,
    }))
}

async fn summary(State(state): State<AppState>) -> Result<Json<Summary>, ApiError> {
    let counts = state.store.counts(now()).await.map_err(BuildError::from)?;
    Ok(Json(Summary::from(counts)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire bytes, field order included: alphabetical, as they were when these bodies were
    /// built as JSON maps.
    #[test]
    fn bodies_keep_their_wire_order() {
        let counts = Counts {
            queue_length: 3,
            running: 1,
            builds_24h: 42,
        };
        assert_eq!(
            serde_json::to_string(&Summary::from(counts)).unwrap(),
            r#"{"builds_24h":42,"queue_length":3,"running":1}"#
        );
        assert_eq!(
            serde_json::to_string(&Stats { queue_length: 3 }).unwrap(),
            r#"{"queue_length":3}"#
        );
    }
}
