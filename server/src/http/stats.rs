//! `/api/v1/stats` and `/api/v1/stats/summary` (ASU's `asu/routers/stats.py`,
//! <https://github.com/openwrt/asu/blob/main/asu/routers/stats.py>).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::build::BuildError;
use crate::http::error::ApiError;
use crate::state::{AppState, now};

/// The statistics routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/stats", get(stats))
        .route("/api/v1/stats/summary", get(summary))
}

async fn stats(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let counts = state.store.counts(now()).await.map_err(BuildError::from)?;
    Ok(Json(json!({"queue_length": counts.queue_length})))
}

async fn summary(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let counts = state.store.counts(now()).await.map_err(BuildError::from)?;
    Ok(Json(json!({
        "queue_length": counts.queue_length,
        "builds_24h": counts.builds_24h,
        "running": counts.running,
    })))
}
