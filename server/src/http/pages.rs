//! The HTML pages, rendered on the server and usable without JavaScript:
//!
//! | path | page |
//! | --- | --- |
//! | `/` | status: version, configuration summary (no secrets), queue, workers, recent failures |
//! | `/stats?branch=` | statistics with inline SVG charts: builds per day, builds per branch or version, top packages, targets, profiles, clients, downloads |
//! | `/store/<request_hash>/` | a finished build, for clients that accept `text/html`: the request, the ImageBuilder, the manifest, the images with SHA-256 and signatures, and the commands that reproduce it; other clients get the `404` they always got |
//!
//! ASU has `/` and `/stats` too (Jinja templates with Chart.js); the build page is ours.

use std::fmt::Write;

use attendant_proto::api::BuildResponse;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use axum::routing::get;

use crate::build::{self, BuildError};
use crate::http::error::ApiError;
use crate::http::html::{bar_chart, escape, key_values, line_chart, page, table};
use crate::http::stats::{Params, RawParams, image_downloads};
use crate::state::{AppState, now};
use crate::stats::{self, MAX_TOP};
use crate::store::EventKey;
use crate::worker::IMAGEBUILDER_KEY;

/// Recent failures on the status page.
const STATUS_FAILURES: u32 = 20;
/// Rows of each top list on the statistics page.
const PAGE_TOP: u32 = 15;

/// The page routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(status_page))
        .route("/stats", get(stats_page))
}

async fn status_page(State(state): State<AppState>) -> Result<Response, ApiError> {
    let store_error = |error| ApiError::from(BuildError::Store(error));
    let counts = state.store.counts(now()).await.map_err(store_error)?;
    let failures = state
        .store
        .recent_failures(STATUS_FAILURES)
        .await
        .map_err(store_error)?;
    let config = &state.config;
    let mut body = format!(
        "<p>Attendant {}: firmware images built on demand for OpenWrt's attended sysupgrade \
         (owut, auc, LuCI, the firmware selector).</p>\n",
        escape(env!("CARGO_PKG_VERSION"))
    );
    body.push_str("<h2>Queue</h2>\n");
    body.push_str(&key_values([
        ("Jobs waiting", counts.queue_length.to_string()),
        ("Jobs building", counts.running.to_string()),
        ("Builds in the last 24 hours", counts.builds_24h.to_string()),
        (
            "Build workers in this process",
            format!(
                "{} running ({} configured)",
                state.metrics.workers_alive(),
                config.workers
            ),
        ),
    ]));
    let workers = state.store.workers().await.map_err(store_error)?;
    if !workers.is_empty() {
        body.push_str("<h2>Remote workers</h2>\n");
        body.push_str(&table(
            &["Worker", "Last heartbeat (UTC)", "Builds", "State"],
            workers.iter().map(|worker| {
                vec![
                    worker.name.clone(),
                    worker
                        .last_heartbeat
                        .map_or_else(|| "never".to_owned(), stats::timestamp),
                    worker.builds.to_string(),
                    if worker.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    }
                    .to_owned(),
                ]
            }),
        ));
    }
    body.push_str("<h2>Configuration</h2>\n");
    let branches: Vec<&str> = config
        .branches
        .iter()
        .filter(|(_, branch)| branch.enabled)
        .map(|(name, _)| name.as_str())
        .collect();
    let enabled = |on: bool| if on { "yes" } else { "no" }.to_owned();
    body.push_str(&key_values([
        ("Upstream", without_userinfo(&config.upstream_url)),
        ("Contact", config.contact.clone()),
        ("Branches", branches.join(", ")),
        (
            "Database",
            if config.database_url.is_some() {
                "PostgreSQL"
            } else {
                "SQLite"
            }
            .to_owned(),
        ),
        ("Images signed", enabled(config.signing_key.is_some())),
        (
            "First-boot scripts (defaults)",
            enabled(config.allow_defaults),
        ),
        ("Queue limit", config.max_pending_jobs.to_string()),
        (
            "Results kept",
            format!(
                "{} (snapshots {}, with defaults {}, failures {})",
                humantime::format_duration(config.build_ttl),
                humantime::format_duration(config.build_ttl_unversioned),
                humantime::format_duration(config.build_defaults_ttl),
                humantime::format_duration(config.build_failure_ttl)
            ),
        ),
        (
            "Build timeout",
            humantime::format_duration(config.job_timeout).to_string(),
        ),
        (
            "Custom repositories allowed",
            config.repository_allow_list.len().to_string(),
        ),
    ]));
    body.push_str("<h2>Recent failures</h2>\n");
    if failures.is_empty() {
        body.push_str("<p class=\"muted\">None.</p>\n");
    } else {
        body.push_str(&table(
            &["Time (UTC)", "Build", "Error"],
            failures.iter().map(|failure| {
                vec![
                    stats::timestamp(failure.at),
                    format!("{}:{}:{}", failure.version, failure.target, failure.profile),
                    failure.detail.clone().unwrap_or_default(),
                ]
            }),
        ));
        body.push_str("<p><a href=\"/api/v1/build-errors\">All recent failures as text</a></p>\n");
    }
    Ok(page("Attendant image server", &body))
}

async fn stats_page(
    State(state): State<AppState>,
    raw: Result<Query<RawParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let params = Params::check(raw, PAGE_TOP, MAX_TOP)?;
    let branch = params.branch.as_deref();
    let store = &*state.store;
    let store_error = |error| ApiError::from(BuildError::Store(error));
    let now = now();
    let per_day = stats::builds_per_day(store, now)
        .await
        .map_err(store_error)?;
    let by_version = stats::builds_by_version(store, branch, now)
        .await
        .map_err(store_error)?;
    let packages = stats::top_packages(store, branch, params.n, now)
        .await
        .map_err(store_error)?;
    let mut body = String::new();
    body.push_str("<h2>Builds per day</h2>\n");
    body.push_str(&line_chart(
        "Requests, cache hits and failures per day",
        &per_day,
    ));
    let scope = branch.map_or_else(
        || "per branch".to_owned(),
        |branch| format!("per version of {branch}"),
    );
    let _ = writeln!(body, "<h2>Builds per week, {}</h2>", escape(&scope));
    body.push_str(&line_chart(
        &format!("Builds per week, {scope}"),
        &by_version,
    ));
    let _ = writeln!(
        body,
        "<h2>Top packages{}, last {} days</h2>",
        escape(&branch.map(|b| format!(" of {b}")).unwrap_or_default()),
        stats::DAYS
    );
    body.push_str(&bar_chart("Most requested packages", &packages.packages));
    for (title, key) in [
        ("Top targets", EventKey::Target),
        ("Top profiles", EventKey::Profile),
        ("Clients", EventKey::Client),
    ] {
        let rows = stats::top(store, key, params.n, now)
            .await
            .map_err(store_error)?;
        let _ = writeln!(
            body,
            "<h2>{}, last {} days</h2>",
            escape(title),
            stats::DAYS
        );
        body.push_str(&bar_chart(title, &rows));
    }
    body.push_str("<h2>Most downloaded images</h2>\n");
    let downloads = image_downloads(&state, None, params.n).await?;
    body.push_str("<table>\n<tr><th>Image</th><th>Build</th><th>Downloads</th></tr>\n");
    for row in downloads {
        let short: String = row.request_hash.chars().take(12).collect();
        let _ = writeln!(
            body,
            "<tr><td>{}</td><td><a href=\"{}\">{}</a></td><td class=\"num\">{}</td></tr>",
            escape(&row.image),
            escape(&format!("/store/{}/", row.request_hash)),
            escape(&short),
            row.count
        );
    }
    body.push_str("</table>\n");
    body.push_str(
        "<p>The same data as JSON: <a href=\"/api/v1/builds-per-day\">builds-per-day</a>, \
         <a href=\"/api/v1/builds-by-version\">builds-by-version</a>, \
         <a href=\"/api/v1/top-packages\">top-packages</a>, \
         <a href=\"/api/v1/downloads\">downloads</a>.</p>\n",
    );
    Ok(page("Statistics", &body))
}

/// The page of the build at `/store/<path>` when `path` is `<request_hash>/` and the client
/// accepts `text/html`; `None` otherwise, and the file route answers as it always did. (The file
/// route's `{*path}` takes every path under `/store/`, so it asks here first.)
pub(crate) async fn build_page(
    state: &AppState,
    path: &str,
    headers: &HeaderMap,
) -> Option<Result<Response, ApiError>> {
    let request_hash = path.strip_suffix('/').filter(|hash| !hash.contains('/'))?;
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    wants_html.then_some(())?;
    Some(render_build_page(state, request_hash, headers).await)
}

async fn render_build_page(
    state: &AppState,
    request_hash: &str,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let view = match build::status(state, request_hash).await {
        Ok(view) => view,
        Err(BuildError::NotFound) => return Err(ApiError::FileNotFound),
        Err(error) => return Err(error.into()),
    };
    let title = format!("Build {request_hash}");
    if view.status != 200 {
        let body: serde_json::Value = serde_json::from_slice(&view.body).unwrap_or_default();
        let detail = body
            .get("detail")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default();
        let text = format!(
            "<p>This build is not finished: <code>{}</code> ({}).</p>\n",
            escape(view.imagebuilder_status.as_str()),
            escape(detail)
        );
        return Ok(page(&title, &text));
    }
    let result: BuildResponse = serde_json::from_slice(&view.body)
        .map_err(|error| ApiError::Internal(format!("stored result unreadable: {error}")))?;
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("localhost");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .filter(|proto| *proto == "https")
        .unwrap_or("http");
    Ok(page(
        &title,
        &build_body(&result, &format!("{scheme}://{host}")),
    ))
}

/// The build page's body; `base` is the server's URL as the browser reached it.
fn build_body(result: &BuildResponse, base: &str) -> String {
    let hash = result.request_hash.to_string();
    let mut body = String::new();
    body.push_str("<h2>Request</h2>\n");
    if let Some(request) = &result.request {
        let mut rows = vec![
            ("Version", request.version.clone()),
            ("Target", request.target.clone()),
            ("Profile", request.profile.clone()),
            ("Packages", request.packages.join(" ")),
        ];
        if !request.packages_versions.is_empty() {
            let pinned: Vec<String> = request
                .packages_versions
                .iter()
                .map(|(name, version)| format!("{name}={version}"))
                .collect();
            rows.push(("Pinned versions", pinned.join(" ")));
        }
        rows.push((
            "Packages are the complete list",
            if request.diff_packages { "yes" } else { "no" }.to_owned(),
        ));
        if let Some(defaults) = request.defaults.as_deref().filter(|d| !d.is_empty()) {
            rows.push(("First-boot script", format!("{} bytes", defaults.len())));
        }
        if let Some(filesystem) = &request.filesystem {
            rows.push(("Root filesystem", filesystem.to_string()));
        }
        if let Some(size) = request.rootfs_size_mb {
            rows.push(("Root filesystem size (MB)", size.to_string()));
        }
        for (name, url) in &request.repositories {
            rows.push(("Repository", format!("{name} {url}")));
        }
        body.push_str(&key_values(rows));
    }
    body.push_str("<h2>ImageBuilder</h2>\n");
    let mut rows = vec![
        ("Version", result.version_number.clone()),
        ("Revision", result.version_code.clone()),
        ("Target", result.target.clone()),
        ("Profile built", result.id.clone()),
    ];
    if let Some(built) = &result.build_at {
        rows.push(("Built from sources of", built.clone()));
    }
    let imagebuilder = result.extra.get(IMAGEBUILDER_KEY);
    let field = |name: &str| {
        imagebuilder
            .and_then(|value| value.get(name))
            .and_then(|value| value.as_str())
            .map(str::to_owned)
    };
    match (field("archive"), field("sha256")) {
        (Some(archive), Some(sha256)) => {
            rows.push(("Archive", archive));
            rows.push(("Archive SHA-256", sha256));
        }
        _ => rows.push(("Archive", "not recorded for this build".to_owned())),
    }
    body.push_str(&key_values(rows));

    body.push_str("<h2>Images</h2>\n<table>\n<tr><th>Image</th><th>Type</th><th>File system</th><th>SHA-256</th><th>Signature</th></tr>\n");
    for image in &result.images {
        let link = format!("/store/{hash}/{}", image.name);
        let signature = image.signature.as_ref().map_or_else(
            || "<span class=\"muted\">unsigned</span>".to_owned(),
            |name| {
                format!(
                    "<a href=\"{}\">usign</a>",
                    escape(&format!("/store/{hash}/{name}"))
                )
            },
        );
        let _ = writeln!(
            body,
            "<tr><td><a href=\"{}\">{}</a></td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{signature}</td></tr>",
            escape(&link),
            escape(&image.name),
            escape(image.image_type.as_str()),
            escape(&image.filesystem),
            escape(&image.sha256)
        );
    }
    body.push_str("</table>\n");
    if let Some(fingerprint) = &result.signing_key {
        let _ = writeln!(
            body,
            "<p>Signed with usign key <a href=\"{}\"><code>{}</code></a>.</p>",
            escape(&format!("/keys/{fingerprint}")),
            escape(fingerprint)
        );
    }

    body.push_str("<h2>Reproduce</h2>\n<p>Ask this server for the same build:</p>\n");
    if let Some(request) = &result.request {
        let json = serde_json::to_string(request).unwrap_or_default();
        let command = format!(
            "curl -H 'Content-Type: application/json' -d {} {}/api/v1/build",
            shell_quote(&json),
            shell_quote(base)
        );
        let _ = writeln!(body, "<pre>{}</pre>", escape(&command));
    }
    body.push_str("<p>Or run the ImageBuilder named above yourself:</p>\n");
    let make: Vec<String> = result
        .build_cmd
        .iter()
        .map(|arg| shell_quote(arg))
        .collect();
    let _ = writeln!(body, "<pre>{}</pre>", escape(&make.join(" ")));

    let _ = writeln!(
        body,
        "<h2>Manifest ({} packages)</h2>",
        result.manifest.len()
    );
    body.push_str(&table(
        &["Package", "Version"],
        result
            .manifest
            .iter()
            .map(|(name, version)| vec![name.clone(), version.clone()]),
    ));
    body
}

/// `text` as one POSIX shell word: bare when it is made of safe characters, else in single
/// quotes (a `'` inside becomes `'\''`).
fn shell_quote(text: &str) -> String {
    let safe = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=+,@%".contains(&b));
    if safe {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// A URL without its `user:password@` part.
fn without_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_are_quoted() {
        assert_eq!(shell_quote("PROFILE=generic"), "PROFILE=generic");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn upstream_credentials_are_not_shown() {
        assert_eq!(
            without_userinfo("https://user:secret@mirror.example/openwrt"),
            "https://mirror.example/openwrt"
        );
        assert_eq!(without_userinfo("/srv/mirror"), "/srv/mirror");
    }
}
