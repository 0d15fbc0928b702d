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
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;

use crate::channels::cache::Served;
use crate::channels::downloads;
use crate::http::error::ApiError;
use crate::http::files::{FileHeaders, send_bytes, send_file, validators};
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
    let name = path.rsplit('/').next().unwrap_or("file");
    let response = match served {
        Served::Cached(file) => {
            let validators = Some((file.etag.clone(), file.last_modified.clone()));
            send_bytes(&file.body, validators, name, &headers, &options)
        }
        Served::Disk(file) => send_file(file, name, &headers, &options).await?,
    };
    // Only whole files count (a `HEAD` never gets here, a `Range` answers 206).
    if response.status() == StatusCode::OK {
        downloads::count(&state, &path);
    }
    Ok(response)
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
