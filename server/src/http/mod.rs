//! The HTTP API: [`app`] builds the router; one module per endpoint group.
//!
//! | module | paths |
//! | --- | --- |
//! | `build` | `POST /api/v1/build`, `GET/HEAD /api/v1/build/{request_hash}` |
//! | `json` | `/json/v1/...`, `/api/v1/revision/...`, `/api/v1/latest`, `/api/v1/overview`, `/overview` |
//! | `files` | `/store/{path}`, `/keys/{fingerprint}` |
//! | `channels` | `/channels/{path}`: the published channel tree |
//! | `stats` | `/api/v1/stats`, `/api/v1/stats/summary`, ASU's chart and top-list endpoints |
//! | `pages` | HTML: `/` (status), `/stats`, `/store/{request_hash}/` for browsers (`html` renders) |
//! | `openapi` | `/openapi.json`, from the one table of every public route |
//! | `metrics` | `/metrics` (Prometheus); its middleware counts requests and image downloads |
//! | [`cors`] | no paths: `Access-Control-*` on every answer, preflights on every path |
//! | `report` | `GET/POST /api/v1/report`: outcome reports from routers |
//! | `admin` | `/api/v1/admin/...`: channel operations and the audit log, bearer tokens |
//! | `workers` | `/api/v1/worker/...`: remote workers claim, heartbeat, upload; worker tokens |
//!
//! `connections` accepts the connections (header and idle timeouts, the connection cap).
//!
//! Bodies are compressed when the client accepts it (`br`, `gzip`): the build answers and the
//! metadata documents from their stored encodings (`negotiate`, `crate::document`), the other
//! JSON, HTML and statistics answers as they are made, at the fastest level (a large package
//! index costs milliseconds even so). Images and other files are sent as they are: they are
//! compressed already, and a download must keep its length for resuming.
//!
//! Every request gets an id (`X-Request-Id`, taken from the request if it sends a sane one) and
//! a tracing span; a 5xx is logged once here with its cause and answered with the id.

mod admin;
mod build;
mod channels;
pub mod connections;
pub mod cors;
mod error;
mod files;
mod html;
mod json;
mod metrics;
mod negotiate;
mod openapi;
mod pages;
mod report;
mod stats;
mod workers;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use tower_http::CompressionLevel;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::SizeAbove;
use tracing::Instrument;

pub use error::{ApiError, InternalCause};

use crate::document::MIN_COMPRESSED_BYTES;
use crate::http::error::DetailBody;
use crate::state::AppState;

/// Request id header, read and written.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The whole API.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(build::routes())
        .merge(json::routes().layer(compression()))
        .merge(files::routes())
        .merge(channels::routes())
        .merge(stats::routes().layer(compression()))
        .merge(report::routes())
        .merge(admin::routes())
        .merge(workers::routes())
        .merge(metrics::routes())
        .merge(pages::routes().layer(compression()))
        .merge(openapi::routes().layer(compression()))
        .fallback(fallback)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(middleware::from_fn(observe))
        // Outermost, so that every answer (a 5xx rewritten by `observe` too) carries it. The
        // origins were checked when the configuration was loaded.
        .layer(tower::util::option_layer(
            cors::layer(&state.config.cors_allowed_origins).unwrap_or(None),
        ))
        .with_state(state)
}

/// Compression of answers made per request; one that already has a `Content-Encoding` (a
/// stored document's) passes through, and so does one too short to be worth it (the same
/// threshold as for stored documents).
fn compression() -> CompressionLayer<SizeAbove> {
    let threshold = u64::try_from(MIN_COMPRESSED_BYTES).unwrap_or(u64::MAX);
    CompressionLayer::new()
        .quality(CompressionLevel::Fastest)
        .compress_when(SizeAbove::new(threshold))
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
async fn observe(request: Request, next: Next) -> Response {
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
        let text = format!("{} (request id `{id}`)", cause.public);
        let body = DetailBody {
            detail: &text,
            status: status.as_u16(),
        };
        // The new body comes from `Json` so it is serialised the way every other body is; the
        // status and headers stay those of the original response.
        let (_, body) = Json(body).into_response().into_parts();
        let (mut parts, _) = response.into_parts();
        parts.headers.remove(axum::http::header::CONTENT_LENGTH);
        response = Response::from_parts(parts, body);
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

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::routing::get;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    /// The middleware answers a 5xx with the generic text and the request id, in the same
    /// field order as every other string-detail body.
    #[tokio::test]
    async fn internal_error_body_names_the_request_id() {
        let router = Router::new()
            .route(
                "/boom",
                get(|| async { ApiError::Internal("disk on fire".to_owned()) }),
            )
            .layer(middleware::from_fn(observe));
        let request = Request::builder()
            .uri("/boom")
            .header(REQUEST_ID_HEADER, "req-42")
            .body(Body::empty())
            .unwrap();
        let response = router.oneshot(request).await.unwrap();
        assert_eq!(response.status(), 500);
        assert_eq!(response.headers()[REQUEST_ID_HEADER], "req-42");
        assert_eq!(response.headers()["content-type"], "application/json");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            r#"{"detail":"internal server error (request id `req-42`)","status":500}"#
        );
    }
}
