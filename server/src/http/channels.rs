//! `/channels/{path}`: the published channel tree as static files (`docs/channels.md`).
//!
//! Only regular files under the tree's root are served, reached through plain path parts (none
//! empty or starting with a dot, so temporary files and `..` never match); the links at the top
//! of the tree (`channels.json` → `current/…` → `meta/<serial>/…`) are followed, but only to
//! files inside the root. Every answer carries `ETag` and `Last-Modified`; `HEAD` and one byte
//! `Range` work as on `/store/`. Pool files and indexes are never rewritten under their name
//! (`index.<serial>.json`), so they are cached for a year as `immutable`; `channels.json` and
//! the keys change in place and are cached for a minute. Whole-file downloads of pool images are
//! counted ([`crate::channels::downloads`]).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;

use crate::channels::downloads;
use crate::http::error::ApiError;
use crate::http::files::{FileHeaders, send_file};
use crate::state::AppState;

/// Longest path served, in bytes.
const MAX_PATH_LEN: usize = 1024;

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
    let full = resolve(&root, &path).await.ok_or(ApiError::FileNotFound)?;
    let options = FileHeaders {
        content_type: content_type(&path),
        attachment: false,
        cache_control: Some(cache_control(&path)),
        validators: true,
    };
    let file = tokio::fs::File::open(&full)
        .await
        .map_err(|_| ApiError::FileNotFound)?
        .into_std()
        .await;
    let name = path.rsplit('/').next().unwrap_or("file");
    let response = send_file(file, name, &headers, &options).await?;
    // Only whole files count (a `HEAD` never gets here, a `Range` answers 206).
    if response.status() == axum::http::StatusCode::OK {
        downloads::count(&state, &path);
    }
    Ok(response)
}

/// The file behind `relative`, if it is a path of plain names that leads (links followed) to a
/// regular file inside `root`.
async fn resolve(root: &std::path::Path, relative: &str) -> Option<std::path::PathBuf> {
    if relative.is_empty() || relative.len() > MAX_PATH_LEN {
        return None;
    }
    let mut path = root.to_owned();
    for part in relative.split('/') {
        let plain = !part.is_empty()
            && !part.starts_with('.')
            && !part.contains('\\')
            && !part.contains('\0');
        if !plain {
            return None;
        }
        path.push(part);
    }
    let root = tokio::fs::canonicalize(root).await.ok()?;
    let real = tokio::fs::canonicalize(&path).await.ok()?;
    let metadata = tokio::fs::metadata(&real).await.ok()?;
    (real.starts_with(&root) && metadata.is_file()).then_some(real)
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

    #[tokio::test]
    async fn resolves_only_regular_files_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tree");
        std::fs::create_dir_all(root.join("meta/3")).unwrap();
        std::fs::write(root.join("meta/3/channels.json"), "{}").unwrap();
        std::fs::write(dir.path().join("secret"), "x").unwrap();
        std::fs::write(root.join(".channels.json.tmp-1"), "x").unwrap();
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("meta/3", root.join("current")).unwrap();
            std::os::unix::fs::symlink("current/channels.json", root.join("channels.json"))
                .unwrap();
            std::os::unix::fs::symlink("../secret", root.join("escape")).unwrap();
            assert!(resolve(&root, "channels.json").await.is_some());
            assert!(resolve(&root, "escape").await.is_none());
        }
        assert!(resolve(&root, "meta/3/channels.json").await.is_some());
        assert!(resolve(&root, "meta/3").await.is_none(), "a directory");
        assert!(resolve(&root, "../secret").await.is_none());
        assert!(resolve(&root, ".channels.json.tmp-1").await.is_none());
        assert!(resolve(&root, "meta//3/channels.json").await.is_none());
        assert!(resolve(&root, "missing.json").await.is_none());
    }
}
