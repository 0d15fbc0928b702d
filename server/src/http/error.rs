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
use serde_json::json;

use crate::build::BuildError;
use crate::metadata::MetadataError;

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
            Self::Internal(cause) => internal(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal server error",
                &std::io::Error::other(cause),
            ),
        }
    }
}

fn validation(errors: &ValidationErrors) -> Response {
    (StatusCode::UNPROCESSABLE_ENTITY, Json(errors)).into_response()
}

fn error_body(body: &ErrorBody) -> Response {
    let status = StatusCode::from_u16(body.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(body)).into_response()
}

/// `{"detail": text, "status": code}`, ASU's shape for string details.
fn detail(status: StatusCode, text: &str) -> Response {
    (
        status,
        Json(json!({"detail": text, "status": status.as_u16()})),
    )
        .into_response()
}

/// `{"detail": text}`, FastAPI's shape for routing errors.
fn plain_detail(status: StatusCode, text: &str) -> Response {
    (status, Json(json!({"detail": text}))).into_response()
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
