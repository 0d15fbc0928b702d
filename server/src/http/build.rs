//! `POST /api/v1/build` and `GET|HEAD /api/v1/build/{request_hash}`.

use std::sync::{Arc, LazyLock};

use attendant_proto::api::{HEADER_IMAGEBUILDER_STATUS, HEADER_QUEUE_POSITION, ImagebuilderStatus};
use axum::Router;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;

use crate::build;
use crate::http::error::ApiError;
use crate::state::AppState;
use crate::view::BuildView;

/// The build routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/build", post(submit)).route(
        "/api/v1/build/{request_hash}",
        get(status).post(method_not_allowed),
    )
}

async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: LimitedBody,
) -> Result<Response, ApiError> {
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok());
    let view = build::submit(&state, &body.0, user_agent).await?;
    Ok(respond(&view))
}

async fn status(
    State(state): State<AppState>,
    Path(request_hash): Path<String>,
) -> Result<Response, ApiError> {
    let view = build::status(&state, &request_hash).await?;
    Ok(respond(&view))
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// A build response: status, the two ASU headers, the pre-serialised body. For `HEAD`, hyper
/// drops the body and keeps the headers.
fn respond(view: &Arc<BuildView>) -> Response {
    let status = StatusCode::from_u16(view.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let stage = stage_header(&view.imagebuilder_status);
    let position = HeaderValue::from(view.queue_position);
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (IMAGEBUILDER_STATUS.clone(), stage),
            (QUEUE_POSITION.clone(), position),
        ],
        view.body.clone(),
    )
        .into_response()
}

/// `X-Imagebuilder-Status`, parsed once (HTTP/1 sends it lower-case; clients compare
/// case-insensitively).
static IMAGEBUILDER_STATUS: LazyLock<HeaderName> =
    LazyLock::new(|| header_name(HEADER_IMAGEBUILDER_STATUS));
/// `X-Queue-Position`, parsed once.
static QUEUE_POSITION: LazyLock<HeaderName> = LazyLock::new(|| header_name(HEADER_QUEUE_POSITION));

/// The `X-Imagebuilder-Status` value of a stage. A stage read back from the store as
/// `Unknown(raw)` may hold bytes a header cannot carry; it is then sent as `init`, the first
/// stage, which every client's progress table knows.
fn stage_header(stage: &ImagebuilderStatus) -> HeaderValue {
    // A `'static` reference, so its wire string is `'static` too, as `from_static` needs.
    const INIT: &ImagebuilderStatus = &ImagebuilderStatus::Init;
    HeaderValue::from_str(stage.as_str())
        .unwrap_or_else(|_| HeaderValue::from_static(INIT.as_str()))
}

fn header_name(name: &str) -> HeaderName {
    // The constants are valid header names; the fallback only keeps this panic-free.
    HeaderName::from_bytes(name.as_bytes()).unwrap_or(header::WARNING)
}

/// The request body, read up to the configured limit (413 naming the limit above it). Any
/// content type is accepted: `curl -d` sends form encoding, ASU parses JSON regardless.
pub(crate) struct LimitedBody(pub(crate) Bytes);

impl FromRequest<AppState> for LimitedBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let limit = state.limits.max_body_bytes;
        let too_large = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok())
            .is_some_and(|length| length > u64::try_from(limit).unwrap_or(u64::MAX));
        if too_large {
            return Err(ApiError::BodyTooLarge { limit });
        }
        match axum::body::to_bytes(request.into_body(), limit).await {
            Ok(bytes) => Ok(Self(bytes)),
            Err(error) => {
                let is_limit = std::error::Error::source(&error)
                    .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
                if is_limit {
                    Err(ApiError::BodyTooLarge { limit })
                } else {
                    Err(ApiError::BodyRead)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_header_falls_back_to_init() {
        assert_eq!(
            stage_header(&ImagebuilderStatus::BuildingImage),
            "building_image"
        );
        let unsendable = ImagebuilderStatus::Unknown("half\nway".to_owned());
        assert_eq!(stage_header(&unsendable), "init");
    }
}
