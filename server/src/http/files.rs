//! `/store/{path}` (built images, with byte ranges) and `/keys/{fingerprint}` (the image
//! signing key).
//!
//! Store responses follow ASU's `/store` static files (<https://github.com/openwrt/asu/blob/main/asu/main.py>): `application/octet-stream`,
//! `Content-Disposition` with the file name, `X-Content-Type-Options: nosniff`, `404
//! {"detail": "Not found"}` for anything missing or outside the store. On top, one byte range
//! (`bytes=a-b`, `a-`, `-n`) is answered with `206`/`416` so interrupted downloads resume;
//! a multi-range request gets the whole file (RFC 9110 allows ignoring `Range`). With an
//! S3-compatible store the same answers come from ranged GETs on the bucket, or, with
//! `[store] public_url`, a `302 Found` to the file's public URL.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use futures_util::TryStreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use attendant_proto::usign::Fingerprint;

use crate::artifacts::{Located, StoredObject};
use crate::http::error::ApiError;
use crate::http::pages;
use crate::state::AppState;

/// Bytes read from a stored file at a time while sending it.
const FILE_CHUNK: usize = 64 * 1024;

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
    // Local files are opened without following any link, objects are served only when their
    // result's completion marker lists them (see `Artifacts::locate`).
    let located = state
        .artifacts
        .locate(&path)
        .await
        .ok_or(ApiError::FileNotFound)?;
    let name = path.rsplit('/').next().unwrap_or("download");
    match located {
        Located::File(file) => send_file(file, name, &headers, &FileHeaders::download()).await,
        Located::Object(object) => {
            send_object(&object, name, &headers, &FileHeaders::download()).await
        }
        Located::Redirect(url) => {
            let location = HeaderValue::from_str(&url)
                .map_err(|_| ApiError::Internal(format!("unusable public URL `{url}`")))?;
            Ok((StatusCode::FOUND, [(header::LOCATION, location)]).into_response())
        }
    }
}

/// The headers of a served file besides the range and length ones.
#[derive(Debug, Clone)]
pub(crate) struct FileHeaders {
    /// `Content-Type`.
    pub(crate) content_type: &'static str,
    /// `Content-Disposition: attachment` with the file name.
    pub(crate) attachment: bool,
    /// `Cache-Control`, if any.
    pub(crate) cache_control: Option<&'static str>,
    /// `ETag` and `Last-Modified` from the file's metadata, and `304` for a matching
    /// `If-None-Match`.
    pub(crate) validators: bool,
}

impl FileHeaders {
    /// `/store/`'s: ASU's download headers.
    fn download() -> Self {
        Self {
            content_type: "application/octet-stream",
            attachment: true,
            cache_control: None,
            validators: false,
        }
    }
}

/// Answers with the open `file` named `name` (404 unless it is a regular file), honouring one
/// byte range. The caller opens it, so each route decides which links it may follow.
pub(crate) async fn send_file(
    file: std::fs::File,
    name: &str,
    headers: &HeaderMap,
    options: &FileHeaders,
) -> Result<Response, ApiError> {
    let mut file = tokio::fs::File::from_std(file);
    let metadata = file.metadata().await.map_err(|_| ApiError::FileNotFound)?;
    if !metadata.is_file() {
        return Err(ApiError::FileNotFound);
    }
    let length = metadata.len();
    let file_validators = if options.validators {
        metadata
            .modified()
            .ok()
            .and_then(|modified| validators(length, modified))
    } else {
        None
    };
    let (status, response_headers, start, count) =
        match FileAnswer::new(length, file_validators, name, headers, options) {
            FileAnswer::Done(response) => return Ok(response),
            FileAnswer::Send {
                status,
                headers,
                start,
                count,
            } => (status, headers, start, count),
        };
    if start > 0 {
        file.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(|error| ApiError::Internal(format!("cannot seek `{name}`: {error}")))?;
    }
    // Reads of `FILE_CHUNK` bytes: the stream's 4 KiB default holds a loopback download to
    // about 140 MiB/s (docs/benchmarks.md).
    let body = Body::from_stream(ReaderStream::with_capacity(file.take(count), FILE_CHUNK));
    Ok((status, response_headers, body).into_response())
}

/// Answers with an object of the S3-compatible store exactly as [`send_file`] answers a file on
/// disk, a byte range through a ranged GET.
async fn send_object(
    object: &StoredObject,
    name: &str,
    headers: &HeaderMap,
    options: &FileHeaders,
) -> Result<Response, ApiError> {
    match FileAnswer::new(object.size(), None, name, headers, options) {
        FileAnswer::Done(response) => Ok(response),
        FileAnswer::Send {
            status,
            headers,
            start,
            count,
        } => {
            let stream = object
                .stream(start, count)
                .await
                .map_err(|error| ApiError::Internal(format!("cannot read `{name}`: {error}")))?;
            let body = Body::from_stream(stream.map_err(std::io::Error::other));
            Ok((status, headers, body).into_response())
        }
    }
}

/// Answers with a file held in memory (`body`, with its `validators`) exactly as [`send_file`]
/// answers the same file on disk.
pub(crate) fn send_bytes(
    body: &Bytes,
    validators: Option<(HeaderValue, HeaderValue)>,
    name: &str,
    headers: &HeaderMap,
    options: &FileHeaders,
) -> Response {
    let length = u64::try_from(body.len()).unwrap_or(u64::MAX);
    match FileAnswer::new(length, validators, name, headers, options) {
        FileAnswer::Done(response) => response,
        FileAnswer::Send {
            status,
            headers,
            start,
            count,
        } => {
            // `FileAnswer` keeps `start + count <= length`.
            let start = usize::try_from(start).unwrap_or(usize::MAX);
            let end =
                usize::try_from(count).map_or(usize::MAX, |count| start.saturating_add(count));
            let part = body
                .get(start..end)
                .map(|part| body.slice_ref(part))
                .unwrap_or_default();
            (status, headers, Body::from(part)).into_response()
        }
    }
}

/// The part of a file answer that does not depend on where the bytes come from: the headers,
/// `304` for a matching `If-None-Match`, and one byte `Range` (`206`, or `416`).
enum FileAnswer {
    /// A complete answer without body (`304`, `416`).
    Done(Response),
    /// Send `count` bytes from `start`.
    Send {
        status: StatusCode,
        headers: HeaderMap,
        start: u64,
        count: u64,
    },
}

impl FileAnswer {
    fn new(
        length: u64,
        validators: Option<(HeaderValue, HeaderValue)>,
        name: &str,
        request: &HeaderMap,
        options: &FileHeaders,
    ) -> Self {
        let mut response_headers = HeaderMap::new();
        response_headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(options.content_type),
        );
        response_headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        response_headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        if options.attachment
            && let Ok(disposition) =
                HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
        {
            response_headers.insert(header::CONTENT_DISPOSITION, disposition);
        }
        if let Some(cache_control) = options.cache_control {
            response_headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static(cache_control),
            );
        }
        if let Some((etag, last_modified)) = validators {
            let matches = request
                .get(header::IF_NONE_MATCH)
                .and_then(|value| value.to_str().ok())
                .is_some_and(|value| {
                    value.split(',').any(|tag| {
                        let tag = tag.trim();
                        tag.as_bytes() == etag.as_bytes() || tag == "*"
                    })
                });
            response_headers.insert(header::ETAG, etag);
            response_headers.insert(header::LAST_MODIFIED, last_modified);
            if matches {
                return Self::Done(
                    (StatusCode::NOT_MODIFIED, response_headers, Body::empty()).into_response(),
                );
            }
        }
        let range = request
            .get(header::RANGE)
            .and_then(|value| value.to_str().ok())
            .map(|value| parse_range(value, length));
        let (status, start, count) = match range {
            None | Some(RangeRequest::Ignored) => (StatusCode::OK, 0, length),
            Some(RangeRequest::Unsatisfiable) => {
                if let Ok(value) = HeaderValue::from_str(&format!("bytes */{length}")) {
                    response_headers.insert(header::CONTENT_RANGE, value);
                }
                return Self::Done(
                    (
                        StatusCode::RANGE_NOT_SATISFIABLE,
                        response_headers,
                        Body::empty(),
                    )
                        .into_response(),
                );
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
        Self::Send {
            status,
            headers: response_headers,
            start,
            count,
        }
    }
}

/// A file's `ETag` ([`entity_tag`]) and `Last-Modified` as header values: the same whether the
/// file is answered from memory or from disk.
pub(crate) fn validators(
    length: u64,
    modified: std::time::SystemTime,
) -> Option<(HeaderValue, HeaderValue)> {
    Some((
        HeaderValue::from_str(&entity_tag(length, modified)).ok()?,
        HeaderValue::from_str(&http_date(modified)).ok()?,
    ))
}

/// A strong validator from the file's size and modification time: every published file is
/// written whole under a new name or replaced by a rename, so both change with the content.
pub(crate) fn entity_tag(length: u64, modified: std::time::SystemTime) -> String {
    let nanos = modified
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    format!("\"{length:x}-{nanos:x}\"")
}

/// An HTTP date (RFC 9110 `IMF-fixdate`): `Sun, 06 Dec 2026 11:45:00 GMT`, the format of the
/// stored documents' `Last-Modified` ([`crate::document::http_date`]), in whole seconds.
pub(crate) fn http_date(at: std::time::SystemTime) -> String {
    let seconds = match at.duration_since(std::time::UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_secs()).map_or(i64::MIN, |s| -s),
    };
    crate::document::http_date(seconds).unwrap_or_default()
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
pub(crate) enum RangeRequest {
    /// Serve the whole file (no usable single range).
    Ignored,
    /// No byte of the range exists (416).
    Unsatisfiable,
    /// Inclusive byte range.
    Range { start: u64, end: u64 },
}

pub(crate) fn parse_range(value: &str, length: u64) -> RangeRequest {
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
    fn http_dates_are_imf_fixdates() {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_796_557_500);
        assert_eq!(http_date(at), "Sun, 06 Dec 2026 11:45:00 GMT");
    }

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
