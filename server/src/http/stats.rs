//! `/api/v1/stats` and `/api/v1/stats/summary` (ASU's `asu/routers/stats.py`,
//! <https://github.com/openwrt/asu/blob/main/asu/routers/stats.py>).
//!
//! The bodies are server-only shapes (no client of ours reads them, so `proto` has no type for
//! them); their field order is the one these endpoints have always answered with.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::build::BuildError;
use crate::http::error::ApiError;
use crate::state::{AppState, now};
use crate::store::Counts;

/// The statistics routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/stats", get(stats))
        .route("/api/v1/stats/summary", get(summary))
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
