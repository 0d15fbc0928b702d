//! One place where errors become HTTP responses: handlers never pick a status code.
//!
//! 4xx bodies are ASU's (<https://github.com/openwrt/asu/blob/main/asu/routers/api.py>): `{"detail": ..., "status": ...}`, with a list
//! `detail` for 422 schema errors and `title` on 404/529. A 5xx carries a generic message; the
//! cause travels in a response extension to the request middleware, which logs it once and
//! adds the request id to the body.

use std::sync::Arc;

use attendant_proto::api::{ErrorBody, ValidationErrors};
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::build::BuildError;
use crate::channels::apply::ChannelError;
use crate::channels::ops::OpError;
use crate::channels::reports::ReportError;
use crate::metadata::MetadataError;
use crate::worker::intake::IntakeError;

/// An error answered by the HTTP API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// A build API error.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// Upstream metadata for a JSON endpoint is unavailable.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// The request body is larger than the limit.
    #[error("request body is larger than the limit of {limit} bytes")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body could not be read from the connection.
    #[error("cannot read the request body")]
    BodyRead,
    /// Nothing here (`{"detail": "Not Found"}`), like FastAPI's default.
    #[error("Not Found")]
    NotFound,
    /// A file under `/store/` is missing (`{"detail": "Not found"}`, ASU's text).
    #[error("Not found")]
    FileNotFound,
    /// Method not allowed on this path.
    #[error("Method Not Allowed")]
    MethodNotAllowed,
    /// A status answered with a plain detail (upstream revision lookups).
    #[error("{detail}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The `detail` text.
        detail: String,
    },
    /// No usable `Authorization: Bearer` header on an admin route (401).
    #[error("this route needs `Authorization: Bearer <token>` with an admin token")]
    Unauthorized,
    /// A bearer token that no `admin_tokens` entry names (403).
    #[error("the bearer token is not an admin token of this server")]
    Forbidden,
    /// An admin request body that is not the expected JSON object (422).
    #[error("the request body is not the expected JSON object: {0}")]
    AdminBody(String),
    /// A channel operation refused or failed.
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// An outcome report refused or failed.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// A remote worker's request refused or failed.
    #[error(transparent)]
    Worker(#[from] IntakeError),
    /// Anything else: a 500 whose cause is logged, not shown.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The cause of a 5xx, attached to the response for the logging middleware.
#[derive(Debug, Clone)]
pub struct InternalCause {
    /// What the client is told.
    pub public: &'static str,
    /// What is logged.
    pub cause: Arc<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Build(BuildError::Invalid(errors)) => validation(&errors),
            Self::Build(BuildError::BadRequest(reason)) => {
                error_body(&ErrorBody::bad_request(&reason))
            }
            Self::Build(error @ BuildError::UnsupportedPackages(_)) => {
                detail(StatusCode::UNPROCESSABLE_ENTITY, &error.to_string())
            }
            Self::Build(BuildError::Overloaded { queue_length }) => {
                error_body(&ErrorBody::overloaded(queue_length))
            }
            Self::Build(BuildError::NotFound) => error_body(&ErrorBody::not_found()),
            Self::Build(error @ BuildError::EmbeddedFile { .. }) => {
                detail(StatusCode::UNPROCESSABLE_ENTITY, &error.to_string())
            }
            Self::Build(BuildError::Upstream(error)) | Self::Metadata(error) => {
                let status = if error.is_retryable() {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::BAD_GATEWAY
                };
                internal(
                    status,
                    "upstream metadata is unavailable, try again later",
                    &error,
                )
            }
            Self::Build(BuildError::Store(error)) => internal(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal server error",
                &error,
            ),
            error @ Self::BodyTooLarge { .. } => {
                detail(StatusCode::PAYLOAD_TOO_LARGE, &error.to_string())
            }
            error @ Self::BodyRead => detail(StatusCode::BAD_REQUEST, &error.to_string()),
            Self::NotFound => plain_detail(StatusCode::NOT_FOUND, "Not Found"),
            Self::FileNotFound => plain_detail(StatusCode::NOT_FOUND, "Not found"),
            Self::MethodNotAllowed => {
                let mut response =
                    plain_detail(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
                response
            }
            Self::Status {
                status,
                detail: text,
            } => detail(
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
                &text,
            ),
            error @ Self::Unauthorized => {
                let mut response = detail(StatusCode::UNAUTHORIZED, &error.to_string());
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                response
            }
            error @ Self::Forbidden => detail(StatusCode::FORBIDDEN, &error.to_string()),
            error @ Self::AdminBody(_) => {
                detail(StatusCode::UNPROCESSABLE_ENTITY, &error.to_string())
            }
            Self::Channel(error) => channel(&error),
            Self::Report(error) => report(&error),
            Self::Worker(error) => worker(&error),
            Self::Internal(cause) => internal(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal server error",
                &std::io::Error::other(cause),
            ),
        }
    }
}

/// A channel refusal: 404 for a missing channel, device or build, 409 for a broken rule, with
/// the rule in `detail` and the way out in `hint`; server failures are 5xx as everywhere.
fn channel(error: &ChannelError) -> Response {
    if !error.is_refusal() {
        let status = match error {
            ChannelError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        return internal(status, "internal server error", error);
    }
    let status = match error {
        ChannelError::Refused(
            OpError::NoChannel { .. } | OpError::NoDevice { .. } | OpError::NoBuild { .. },
        ) => StatusCode::NOT_FOUND,
        _ => StatusCode::CONFLICT,
    };
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    let body = AdminErrorBody {
        detail: &text,
        hint: error.hint(),
        status: status.as_u16(),
    };
    (status, Json(body)).into_response()
}

/// An outcome report: 400 naming the field of a malformed one, 404 for reports switched off or
/// a build this server does not have, 5xx when the server failed (the router retries later).
fn report(error: &ReportError) -> Response {
    match error {
        ReportError::Malformed(cause) => detail(StatusCode::BAD_REQUEST, &cause.to_string()),
        ReportError::Disabled | ReportError::UnknownBuild { .. } => {
            detail(StatusCode::NOT_FOUND, &error.to_string())
        }
        ReportError::Random => internal(
            StatusCode::SERVICE_UNAVAILABLE,
            "internal server error",
            error,
        ),
        ReportError::Store(_) => internal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal server error",
            error,
        ),
    }
}

/// A remote worker's refusal: 401 without an active worker's token, 409 when the attempt lost
/// its lease (the worker stops), 4xx naming the rule an upload broke, 5xx when the server failed.
fn worker(error: &IntakeError) -> Response {
    let status = match error {
        IntakeError::Unauthorized => {
            let mut response = detail(StatusCode::UNAUTHORIZED, &error.to_string());
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
        IntakeError::LeaseLost { .. }
        | IntakeError::Undeclared { .. }
        | IntakeError::Incomplete { .. } => StatusCode::CONFLICT,
        IntakeError::Wait { .. } => StatusCode::BAD_REQUEST,
        IntakeError::Range { too_long: true, .. } => StatusCode::PAYLOAD_TOO_LARGE,
        IntakeError::Range { .. } => StatusCode::BAD_REQUEST,
        IntakeError::Declaration(_) | IntakeError::Mismatch(_) => StatusCode::UNPROCESSABLE_ENTITY,
        IntakeError::UnknownFile { .. } => StatusCode::NOT_FOUND,
        IntakeError::Offset { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
        IntakeError::Store(_) | IntakeError::Io { .. } => {
            return internal(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal server error",
                error,
            );
        }
    };
    detail(status, &error.to_string())
}

/// `{"detail": text, "hint": way out, "status": code}` of a refused admin request.
#[derive(Debug, Serialize)]
struct AdminErrorBody<'a> {
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<String>,
    status: u16,
}

fn validation(errors: &ValidationErrors) -> Response {
    (StatusCode::UNPROCESSABLE_ENTITY, Json(errors)).into_response()
}

fn error_body(body: &ErrorBody) -> Response {
    let status = StatusCode::from_u16(body.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(body)).into_response()
}

/// `{"detail": text, "status": code}`: ASU's shape for a string `detail` (its
/// `validation_failure`), also used for our 413, 422 package and 5xx bodies.
///
/// Not [`ErrorBody`]: that type writes `status` first, the order of ASU's 404 and 529 bodies,
/// while these bodies have always gone out `detail` first; the field order here is the wire's.
#[derive(Debug, Serialize)]
pub(crate) struct DetailBody<'a> {
    /// What went wrong.
    pub(crate) detail: &'a str,
    /// The HTTP status.
    pub(crate) status: u16,
}

/// `{"detail": text}`: FastAPI's body for routing errors (unknown path, wrong method).
#[derive(Debug, Serialize)]
struct PlainDetailBody<'a> {
    detail: &'a str,
}

fn detail(status: StatusCode, text: &str) -> Response {
    let body = DetailBody {
        detail: text,
        status: status.as_u16(),
    };
    (status, Json(body)).into_response()
}

fn plain_detail(status: StatusCode, text: &str) -> Response {
    (status, Json(PlainDetailBody { detail: text })).into_response()
}

fn internal(status: StatusCode, public: &'static str, cause: &dyn std::error::Error) -> Response {
    let mut response = detail(status, public);
    let mut chain = cause.to_string();
    let mut source = cause.source();
    while let Some(next) = source {
        chain.push_str(": ");
        chain.push_str(&next.to_string());
        source = next.source();
    }
    response.extensions_mut().insert(InternalCause {
        public,
        cause: Arc::new(chain),
    });
    response
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    async fn body_text(response: Response) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    /// The wire bytes, field order included.
    #[tokio::test]
    async fn detail_bodies_keep_their_wire_order() {
        let response = ApiError::BodyTooLarge { limit: 1000 }.into_response();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            body_text(response).await,
            r#"{"detail":"request body is larger than the limit of 1000 bytes","status":413}"#
        );

        let response = ApiError::MethodNotAllowed.into_response();
        assert_eq!(response.headers()[header::ALLOW], "GET, HEAD");
        assert_eq!(
            body_text(response).await,
            r#"{"detail":"Method Not Allowed"}"#
        );
    }

    /// A 5xx says only the generic text; the cause rides along for the logging middleware.
    #[tokio::test]
    async fn internal_keeps_the_cause_out_of_the_body() {
        let mut response = ApiError::Internal("disk on fire".to_owned()).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let cause = response.extensions_mut().remove::<InternalCause>().unwrap();
        assert_eq!(cause.public, "internal server error");
        assert_eq!(cause.cause.as_str(), "disk on fire");
        assert_eq!(
            body_text(response).await,
            r#"{"detail":"internal server error","status":500}"#
        );
    }
}
