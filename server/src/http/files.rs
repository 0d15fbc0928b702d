//! `/store/{path}` (built images, with byte ranges) and `/keys/{fingerprint}` (the image
//! signing key).
//!
//! Store responses follow ASU's `/store` static files (<https://github.com/openwrt/asu/blob/main/asu/main.py>): `application/octet-stream`,
//! `Content-Disposition` with the file name, `X-Content-Type-Options: nosniff`, `404
//! {"detail": "Not found"}` for anything missing or outside the store. On top, one byte range
//! (`bytes=a-b`, `a-`, `-n`) is answered with `206`/`416` so interrupted downloads resume;
//! a multi-range request gets the whole file (RFC 9110 allows ignoring `Range`). Only regular
//! files are served, and no symbolic link is followed ([`crate::artifacts::Artifacts::open_file`]).

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use attendant_proto::usign::Fingerprint;

use crate::http::error::ApiError;
use crate::http::pages;
use crate::state::AppState;

/// The file routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/store/{*path}", get(store_file))
        .route("/keys/{fingerprint}", get(public_key))
}

async fn store_file(
    State(state): State<AppState>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(page) = pages::build_page(&state, &path, &headers).await {
        return page;
    }
    let artifacts = state.artifacts.clone();
    let relative = path.clone();
    let file = tokio::task::spawn_blocking(move || artifacts.open_file(&relative))
        .await
        .ok()
        .flatten()
        .ok_or(ApiError::FileNotFound)?;
    let mut file = tokio::fs::File::from_std(file);
    let metadata = file.metadata().await.map_err(|_| ApiError::FileNotFound)?;
    let length = metadata.len();
    let name = path.rsplit('/').next().unwrap_or("download");
    let mut response_headers = HeaderMap::new();
    response_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    response_headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response_headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(disposition) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        response_headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    let range = headers
        .get(header::RANGE)
        .and_then(|value| value.to_str().ok())
        .map(|value| parse_range(value, length));
    let (status, start, count) = match range {
        None | Some(RangeRequest::Ignored) => (StatusCode::OK, 0, length),
        Some(RangeRequest::Unsatisfiable) => {
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{length}")) {
                response_headers.insert(header::CONTENT_RANGE, value);
            }
            return Ok((
                StatusCode::RANGE_NOT_SATISFIABLE,
                response_headers,
                Body::empty(),
            )
                .into_response());
        }
        Some(RangeRequest::Range { start, end }) => {
            if let Ok(value) = HeaderValue::from_str(&format!("bytes {start}-{end}/{length}")) {
                response_headers.insert(header::CONTENT_RANGE, value);
            }
            (
                StatusCode::PARTIAL_CONTENT,
                start,
                end.saturating_sub(start).saturating_add(1),
            )
        }
    };
    response_headers.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    if start > 0 {
        file.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(|error| ApiError::Internal(format!("cannot seek `/store/{path}`: {error}")))?;
    }
    let body = Body::from_stream(ReaderStream::new(file.take(count)));
    Ok((status, response_headers, body).into_response())
}

async fn public_key(
    State(state): State<AppState>,
    Path(fingerprint): Path<String>,
) -> Result<Response, ApiError> {
    let key = state
        .signing_public_key
        .as_ref()
        .filter(|key| Fingerprint::from_hex(&fingerprint).ok() == Some(key.fingerprint()))
        .ok_or(ApiError::NotFound)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        key.to_file(),
    )
        .into_response())
}

/// One parsed `Range` header.
#[derive(Debug, PartialEq, Eq)]
enum RangeRequest {
    /// Serve the whole file (no usable single range).
    Ignored,
    /// No byte of the range exists (416).
    Unsatisfiable,
    /// Inclusive byte range.
    Range { start: u64, end: u64 },
}

fn parse_range(value: &str, length: u64) -> RangeRequest {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeRequest::Ignored;
    };
    if spec.contains(',') {
        return RangeRequest::Ignored;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Ignored;
    };
    let last_byte = match length.checked_sub(1) {
        Some(last_byte) => last_byte,
        None => return RangeRequest::Unsatisfiable,
    };
    if first.is_empty() {
        // Suffix range: the last n bytes.
        return match last.parse::<u64>() {
            Ok(0) => RangeRequest::Unsatisfiable,
            Ok(n) => RangeRequest::Range {
                start: length.saturating_sub(n),
                end: last_byte,
            },
            Err(_) => RangeRequest::Ignored,
        };
    }
    let Ok(start) = first.parse::<u64>() else {
        return RangeRequest::Ignored;
    };
    let end = if last.is_empty() {
        last_byte
    } else {
        match last.parse::<u64>() {
            Ok(end) if end >= start => end.min(last_byte),
            _ => return RangeRequest::Ignored,
        }
    };
    if start > last_byte {
        return RangeRequest::Unsatisfiable;
    }
    RangeRequest::Range { start, end }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_byte_ranges() {
        use RangeRequest::*;
        assert_eq!(parse_range("bytes=0-9", 100), Range { start: 0, end: 9 });
        assert_eq!(parse_range("bytes=90-", 100), Range { start: 90, end: 99 });
        assert_eq!(parse_range("bytes=-10", 100), Range { start: 90, end: 99 });
        assert_eq!(
            parse_range("bytes=50-500", 100),
            Range { start: 50, end: 99 }
        );
        assert_eq!(parse_range("bytes=-500", 100), Range { start: 0, end: 99 });
        assert_eq!(parse_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ignored);
        assert_eq!(parse_range("items=0-1", 100), Ignored);
        assert_eq!(parse_range("bytes=9-3", 100), Ignored);
        assert_eq!(parse_range("bytes=x-3", 100), Ignored);
    }
}
