//! The HTTP API: [`app`] builds the router; one module per endpoint group.
//!
//! | module | paths |
//! | --- | --- |
//! | `build` | `POST /api/v1/build`, `GET/HEAD /api/v1/build/{request_hash}` |
//! | `json` | `/json/v1/...`, `/api/v1/revision/...`, `/api/v1/latest`, `/api/v1/overview`, `/overview` |
//! | `files` | `/store/{path}`, `/keys/{fingerprint}` |
//! | `stats` | `/api/v1/stats`, `/api/v1/stats/summary` |
//!
//! Every request gets an id (`X-Request-Id`, taken from the request if it sends a sane one) and
//! a tracing span; a 5xx is logged once here with its cause and answered with the id.

mod build;
mod error;
mod files;
mod json;
mod stats;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

pub use error::{ApiError, InternalCause};

use crate::state::AppState;

/// Request id header, read and written.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The whole API.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(build::routes())
        .merge(json::routes())
        .merge(files::routes())
        .merge(stats::routes())
        .fallback(fallback)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Unknown paths: `//x` is repaired with a 301 to `/x` (ASU does the same), anything else 404.
async fn fallback(uri: Uri) -> Response {
    let path = uri.path();
    if path.starts_with("//") {
        let mut fixed = format!("/{}", path.trim_start_matches('/'));
        if let Some(query) = uri.query() {
            fixed.push('?');
            fixed.push_str(query);
        }
        return json::moved_permanently(&fixed);
    }
    ApiError::NotFound.into_response()
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Span per request, request id, one log line per 5xx with its cause.
async fn observe(State(_state): State<AppState>, request: Request, next: Next) -> Response {
    let header = HeaderName::from_static(REQUEST_ID_HEADER);
    let id = request
        .headers()
        .get(&header)
        .and_then(|value| value.to_str().ok())
        .filter(|value| {
            !value.is_empty()
                && value.len() <= 64
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        .map_or_else(
            || format!("{:x}", NEXT_ID.fetch_add(1, Ordering::Relaxed)),
            str::to_owned,
        );
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(
            || request.uri().path().to_owned(),
            |path| path.as_str().to_owned(),
        );
    let span = tracing::info_span!("request", method = %request.method(), route = %route, id = %id);
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    if let Some(cause) = response.extensions_mut().remove::<InternalCause>() {
        span.in_scope(|| tracing::error!(%status, cause = %cause.cause, "request failed"));
        let body = serde_json::json!({
            "detail": format!("{} (request id `{id}`)", cause.public),
            "status": status.as_u16(),
        });
        let (mut parts, _) = response.into_parts();
        parts.headers.remove(axum::http::header::CONTENT_LENGTH);
        response = Response::from_parts(parts, axum::body::Body::from(body.to_string()));
    } else {
        span.in_scope(|| {
            tracing::debug!(%status, elapsed_us = started.elapsed().as_micros(), "request done");
        });
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(header, value);
    }
    response
}
