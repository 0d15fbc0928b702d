//! `/channels/{path}`: the published channel tree as static files (`docs/channels.md`).
//!
//! Only regular files under the tree's root are served, reached through plain path parts (none
//! empty or starting with a dot, so temporary files and `..` never match); the links at the top
//! of the tree (`channels.json` → `current/…` → `meta/<serial>/…`) are followed, but only to
//! files inside the root, and pool files are opened without following any link. Every answer
//! carries `ETag` and `Last-Modified`; `HEAD` and one byte `Range` work as on `/store/`. Pool
//! files and indexes are never rewritten under their name (`index.<serial>.json`), so they are
//! cached for a year as `immutable`; `channels.json` and the keys change in place and are
//! cached for a minute. Whole-file downloads of pool images are counted
//! ([`crate::channels::downloads`]).
//!
//! The metadata files are answered from memory ([`crate::channels::cache::PublishedFiles`],
//! whose docs say why that is correct); pool images are streamed from disk.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::channels::cache::{CachedFile, Served};
use crate::channels::downloads;
use crate::http::error::ApiError;
use crate::http::files::{
    FileHeaders, RangeRequest, entity_tag, http_date, parse_range, send_file,
};
use crate::state::AppState;

/// The channel tree route.
pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/channels/{*path}", get(channel_file))
}

async fn channel_file(
    State(state): State<AppState>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let root = state.config.channels_path();
    let served = state
        .channel_cache
        .files
        .serve(&root, &path, validators)
        .await
        .ok_or(ApiError::FileNotFound)?;
    let options = FileHeaders {
        content_type: content_type(&path),
        attachment: false,
        cache_control: Some(cache_control(&path)),
        validators: true,
    };
    let response = match served {
        Served::Cached(file) => send_cached(&file, &headers, &options),
        Served::Disk(file) => {
            let name = path.rsplit('/').next().unwrap_or("file");
            send_file(file, name, &headers, &options).await?
        }
    };
    // Only whole files count (a `HEAD` never gets here, a `Range` answers 206).
    if response.status() == StatusCode::OK {
        downloads::count(&state, &path);
    }
    Ok(response)
}

/// The validators [`send_file`] gives a file on disk, for a file read into memory.
fn validators(length: u64, modified: std::time::SystemTime) -> Option<(HeaderValue, HeaderValue)> {
    Some((
        HeaderValue::from_str(&entity_tag(length, modified)).ok()?,
        HeaderValue::from_str(&http_date(modified)).ok()?,
    ))
}

/// Answers with a file held in memory, with the same headers, `304` and byte range handling
/// as [`send_file`] gives a file on disk.
fn send_cached(file: &CachedFile, headers: &HeaderMap, options: &FileHeaders) -> Response {
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
    if let Some(cache_control) = options.cache_control {
        response_headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(cache_control),
        );
    }
    response_headers.insert(header::ETAG, file.etag.clone());
    response_headers.insert(header::LAST_MODIFIED, file.last_modified.clone());
    let etag = file.etag.as_bytes();
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value.split(',').any(|tag| {
                let tag = tag.trim();
                tag.as_bytes() == etag || tag == "*"
            })
        });
    if matches {
        return (StatusCode::NOT_MODIFIED, response_headers, Body::empty()).into_response();
    }
    let length = u64::try_from(file.body.len()).unwrap_or(u64::MAX);
    let range = headers
        .get(header::RANGE)
        .and_then(|value| value.to_str().ok())
        .map(|value| parse_range(value, length));
    let (status, body) = match range {
        None | Some(RangeRequest::Ignored) => (StatusCode::OK, file.body.clone()),
        Some(RangeRequest::Unsatisfiable) => {
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{length}")) {
                response_headers.insert(header::CONTENT_RANGE, value);
            }
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                response_headers,
                Body::empty(),
            )
                .into_response();
        }
        Some(RangeRequest::Range { start, end }) => {
            if let Ok(value) = HeaderValue::from_str(&format!("bytes {start}-{end}/{length}")) {
                response_headers.insert(header::CONTENT_RANGE, value);
            }
            // `parse_range` keeps `start <= end < length`.
            let start = usize::try_from(start).unwrap_or(usize::MAX);
            let end = usize::try_from(end).unwrap_or(usize::MAX);
            let slice = file
                .body
                .get(start..=end)
                .map(|part| file.body.slice_ref(part))
                .unwrap_or_default();
            (StatusCode::PARTIAL_CONTENT, slice)
        }
    };
    response_headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    (status, response_headers, Body::from(body)).into_response()
}

fn content_type(path: &str) -> &'static str {
    if path.ends_with(".json") {
        "application/json"
    } else if path.ends_with(".sig") || path.ends_with(".pub") {
        "text/plain; charset=utf-8"
    } else {
        "application/octet-stream"
    }
}

fn cache_control(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or(path);
    let immutable = path.starts_with("pool/")
        || (name.starts_with("index.") && (name.ends_with(".json") || name.ends_with(".json.sig")));
    if immutable {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=60"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn immutable_files_are_cached_long_and_the_entry_point_briefly() {
        assert_eq!(
            cache_control("pool/ab/ab12-openwrt.bin"),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(
            cache_control("stable/x86/64/generic/index.12.json.sig"),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(cache_control("channels.json"), "public, max-age=60");
        assert_eq!(cache_control("keys/revoked.ucert"), "public, max-age=60");
        assert_eq!(content_type("channels.json"), "application/json");
        assert_eq!(
            content_type("channels.json.sig"),
            "text/plain; charset=utf-8"
        );
    }
}
