//! `POST /api/v1/build` and `GET|HEAD /api/v1/build/{request_hash}`.

use std::sync::{Arc, LazyLock};

use attendant_proto::api::{HEADER_IMAGEBUILDER_STATUS, HEADER_QUEUE_POSITION, ImagebuilderStatus};
use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use bytes::Bytes;

use crate::build;
use crate::http::error::ApiError;
use crate::http::negotiate::Negotiation;
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
    user_agent: UserAgent,
    negotiation: Negotiation,
    body: LimitedBody,
) -> Result<Response, ApiError> {
    let user_agent = user_agent.0.as_ref().and_then(|value| value.to_str().ok());
    let view = build::submit(&state, &body.0, user_agent).await?;
    Ok(respond(&view, &negotiation))
}

async fn status(
    State(state): State<AppState>,
    Path(request_hash): Path<String>,
    negotiation: Negotiation,
) -> Result<Response, ApiError> {
    let view = build::status(&state, &request_hash).await?;
    Ok(respond(&view, &negotiation))
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// A build response: status, the two ASU headers, the pre-serialised body in the encoding the
/// client accepts (a finished build's: also its validators, and `304` when the client holds
/// it). For `HEAD`, hyper drops the body and keeps the headers.
fn respond(view: &Arc<BuildView>, negotiation: &Negotiation) -> Response {
    let status = StatusCode::from_u16(view.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = negotiation.respond(
        status,
        HeaderValue::from_static("application/json"),
        &view.body,
    );
    let headers = response.headers_mut();
    headers.insert(
        IMAGEBUILDER_STATUS.clone(),
        stage_header(&view.imagebuilder_status),
    );
    headers.insert(
        QUEUE_POSITION.clone(),
        HeaderValue::from(view.queue_position),
    );
    response
}

/// The `User-Agent` header alone: the statistics record it, and copying the whole header map
/// per request only for it costs a cache-hit `POST` an allocation per header.
struct UserAgent(Option<HeaderValue>);

impl<S: Send + Sync> FromRequestParts<S> for UserAgent {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(parts.headers.get(header::USER_AGENT).cloned()))
    }
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
