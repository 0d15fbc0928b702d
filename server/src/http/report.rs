//! `GET /api/v1/report` (the salt routers hash their machine-id with) and `POST /api/v1/report`
//! (one router's outcome report); the rules are [`crate::channels::reports`]'.
//!
//! Answers: `GET` 200 `{"salt": "..."}`; `POST` 202 `{"status": "accepted"}` (also for a report
//! that replaced the router's earlier one, or that the build's cap kept out), 400 naming the
//! field of a malformed report, 404 for a channel, device or build this server does not have,
//! 413 above [`MAX_REPORT_LEN`] bytes. With `channels.reports = false` both answer 404.

use attendant_proto::channel::MAX_REPORT_LEN;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::channels::reports;
use crate::http::error::ApiError;
use crate::state::AppState;

/// The report routes (`attendant_proto::channel::REPORT_API_PATH`, spelt out as every route is
/// so that `tests/e2e/openapi.rs` finds it).
pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/report", get(salt).post(report))
}

async fn salt(State(state): State<AppState>) -> Result<Response, ApiError> {
    let salt = reports::salt(&state).await?;
    Ok(Json(salt).into_response())
}

async fn report(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let body = axum::body::to_bytes(request.into_body(), MAX_REPORT_LEN)
        .await
        .map_err(|error| {
            let is_limit = std::error::Error::source(&error)
                .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
            if is_limit {
                ApiError::BodyTooLarge {
                    limit: MAX_REPORT_LEN,
                }
            } else {
                ApiError::BodyRead
            }
        })?;
    reports::receive(&state, &body).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"status": "accepted"})),
    )
        .into_response())
}
