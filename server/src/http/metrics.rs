//! `GET /metrics` (Prometheus text format) and [`track`], the middleware that feeds it and
//! counts image downloads.

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::build::BuildError;
use crate::http::error::ApiError;
use crate::metrics::Snapshot;
use crate::state::{AppState, now};
use crate::stats::DOWNLOAD_FLUSH_INTERVAL;

/// How long a measured store size is reported before the store is walked again.
const STORE_BYTES_MAX_AGE: Duration = Duration::from_secs(60);

/// The route label of requests no route matched.
pub(crate) const UNMATCHED: &str = "unmatched";

/// The metrics route.
pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let counts = state.store.counts(now()).await.map_err(BuildError::from)?;
    let store_bytes = match state.metrics.recent_store_bytes(STORE_BYTES_MAX_AGE) {
        Some(bytes) => bytes,
        None => {
            let bytes = state.artifacts.stored_bytes().await;
            state.metrics.set_store_bytes(bytes);
            bytes
        }
    };
    let worker_heartbeats = state
        .store
        .workers()
        .await
        .map_err(BuildError::from)?
        .into_iter()
        .filter_map(|worker| Some((worker.name, worker.last_heartbeat?)))
        .collect();
    let text = state.metrics.render(&Snapshot {
        queue_length: counts.queue_length,
        running: counts.running,
        store_bytes,
        worker_heartbeats,
    });
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
        )],
        text,
    )
        .into_response())
}

/// Counts every answered request by route, method and status with its latency, and every
/// whole-file `GET /store/<hash>/<image>` as a download of that image. Downloads are added up
/// in memory and written when [`DOWNLOAD_FLUSH_INTERVAL`] has passed since the last write (in a
/// spawned task, so the download never waits for the database).
pub(crate) async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str)
        .to_owned();
    let download = (method == Method::GET && route == "/store/{*path}")
        .then(|| store_image(request.uri().path()))
        .flatten();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status();
    state
        .metrics
        .observe_request(method.as_str(), &route, status.as_u16(), started.elapsed());
    if status == StatusCode::OK
        && let Some((request_hash, image)) = download
    {
        let full = state.downloads.count(&request_hash, &image);
        if full || state.downloads.due(DOWNLOAD_FLUSH_INTERVAL) {
            let state = state.clone();
            tokio::spawn(async move {
                if let Err(error) = state.downloads.flush(&*state.store, now()).await {
                    tracing::warn!(error = %error, "cannot write download counts");
                }
            });
        }
    }
    response
}

/// `(request_hash, image)` of a `/store/<64 hex>/<image>` path.
fn store_image(path: &str) -> Option<(String, String)> {
    let (request_hash, image) = path.strip_prefix("/store/")?.split_once('/')?;
    let is_hash = request_hash.len() == 64 && request_hash.bytes().all(|b| b.is_ascii_hexdigit());
    (is_hash && !image.is_empty() && !image.contains('/'))
        .then(|| (request_hash.to_owned(), image.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_images_of_a_build_are_downloads() {
        let hash = "a".repeat(64);
        assert_eq!(
            store_image(&format!("/store/{hash}/x.bin")),
            Some((hash.clone(), "x.bin".to_owned()))
        );
        assert_eq!(store_image(&format!("/store/{hash}/")), None);
        assert_eq!(store_image(&format!("/store/{hash}/a/b")), None);
        assert_eq!(store_image("/store/short/x.bin"), None);
    }
}
