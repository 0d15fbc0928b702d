//! Metadata endpoints: `/json/v1/...`, `/api/v1/revision/...` and the legacy redirects
//! (ASU's `asu/main.py` and `asu/routers/api.py`, <https://github.com/openwrt/asu>). Data comes from the cached
//! upstream metadata. `overview.json`, `branches.json` and `latest.json` are rendered once per
//! change of that metadata and served as shared bytes (`crate::document`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use attendant_proto::api::{Branch, Latest, Overview, PackageChange, Revision, ServerInfo};
use attendant_proto::upstream::{Targets, Versions};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::build::{branch_of, offered_versions};
use crate::document::{Document, Sources};
use crate::http::error::ApiError;
use crate::http::negotiate::Negotiation;
use crate::state::{AppState, now};
use crate::view::build_at;

/// The metadata routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/latest", get(|| redirect("/json/v1/latest.json")))
        .route(
            "/api/v1/overview",
            get(|| redirect("/json/v1/overview.json")),
        )
        .route("/overview", get(|| redirect("/json/v1/overview.json")))
        .route(
            "/api/v1/revision/{version}/{target}/{subtarget}",
            get(revision),
        )
        .route("/json/v1/latest.json", get(latest))
        .route("/json/v1/overview.json", get(overview))
        .route("/json/v1/branches.json", get(branches))
        .route("/json/v1/{*path}", get(json_path))
}

/// ASU's legacy redirects are `301 Moved Permanently`.
async fn redirect(to: &'static str) -> Response {
    moved_permanently(to)
}

/// A `301` to `location`.
pub(crate) fn moved_permanently(location: &str) -> Response {
    match axum::http::HeaderValue::from_str(location) {
        Ok(value) => (
            axum::http::StatusCode::MOVED_PERMANENTLY,
            [(axum::http::header::LOCATION, value)],
        )
            .into_response(),
        Err(_) => ApiError::NotFound.into_response(),
    }
}

/// How long `overview.json`, `branches.json` and `latest.json` are served as rendered before
/// they are compared with the metadata again. The metadata itself is cached for minutes
/// (`metadata_ttl`), so this adds at most a second to how stale they can be.
const RECHECK: Duration = Duration::from_secs(1);

async fn latest(
    State(state): State<AppState>,
    negotiation: Negotiation,
) -> Result<Response, ApiError> {
    let document = state
        .documents
        .latest
        .get(
            RECHECK,
            || async {
                let versions = state.metadata.versions().await?;
                let mut sources = Sources::default();
                sources.push(Some(&versions));
                Ok::<_, ApiError>((sources, versions))
            },
            |versions| json_document(&latest_of(&state, &versions)),
        )
        .await?;
    Ok(negotiation.respond(StatusCode::OK, json_type(), &document))
}

async fn overview(
    State(state): State<AppState>,
    negotiation: Negotiation,
) -> Result<Response, ApiError> {
    let document = state
        .documents
        .overview
        .get(
            RECHECK,
            || offer(&state),
            |offer| json_document(&overview_of(&state, &offer)),
        )
        .await?;
    Ok(negotiation.respond(StatusCode::OK, json_type(), &document))
}

async fn branches(
    State(state): State<AppState>,
    negotiation: Negotiation,
) -> Result<Response, ApiError> {
    let document = state
        .documents
        .branches
        .get(
            RECHECK,
            || offer(&state),
            |offer| json_document(&branch_list(&state, &offer)),
        )
        .await?;
    Ok(negotiation.respond(StatusCode::OK, json_type(), &document))
}

/// What the metadata documents show: the upstream versions and, per enabled branch (in
/// configuration order), its offered versions (newest first) and the targets of the newest.
struct Offer {
    versions: Arc<Versions>,
    branches: Vec<(String, Vec<String>, Option<Arc<Targets>>)>,
}

/// The current [`Offer`] and the metadata it was read from.
async fn offer(state: &AppState) -> Result<(Sources, Offer), ApiError> {
    let versions = state.metadata.versions().await?;
    let configured = &state.config.branches;
    let offered = offered_versions(&versions, configured);
    let mut sources = Sources::default();
    sources.push(Some(&versions));
    let mut branches = Vec::new();
    for (name, config) in configured.iter().filter(|(_, branch)| branch.enabled) {
        let versions: Vec<String> = offered
            .iter()
            .filter(|version| branch_of(version, configured) == *name)
            .cloned()
            .collect();
        let targets = match versions.first() {
            Some(newest) => {
                let path = config.path.replace("{version}", newest);
                state.metadata.targets(&path).await?
            }
            None => None,
        };
        sources.push(targets.as_ref());
        branches.push((name.clone(), versions, targets));
    }
    Ok((sources, Offer { versions, branches }))
}

/// `latest.json`: the newest release of each enabled branch.
fn latest_of(state: &AppState, versions: &Versions) -> Latest {
    let branches = &state.config.branches;
    let latest = versions
        .latest()
        .into_iter()
        .filter(|version| {
            branches
                .get(&branch_of(version, branches))
                .is_some_and(|branch| branch.enabled)
        })
        .map(str::to_owned)
        .collect();
    Latest { latest }
}

fn overview_of(state: &AppState, offer: &Offer) -> Overview {
    let config = &state.config;
    Overview {
        latest: latest_of(state, &offer.versions).latest,
        branches: branch_list(state, offer)
            .into_iter()
            .map(|branch| (branch.name.clone(), branch))
            .collect(),
        upstream_url: config.upstream_url.clone(),
        server: ServerInfo {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            contact: config.contact.clone(),
            allow_defaults: Some(config.allow_defaults),
            repository_allow_list: config.repository_allow_list.clone(),
            max_custom_rootfs_size_mb: u32::try_from(config.max_custom_rootfs_size_mb)
                .unwrap_or(u32::MAX),
            max_defaults_length: config.max_defaults_length,
            extra: BTreeMap::new(),
        },
        extra: BTreeMap::new(),
    }
}

/// The enabled branches with their offered versions (newest first) and the targets of their
/// newest version.
fn branch_list(state: &AppState, offer: &Offer) -> Vec<Branch> {
    let configured = &state.config.branches;
    offer
        .branches
        .iter()
        .filter_map(|(name, versions, targets)| {
            let config = configured.get(name)?;
            Some(Branch {
                path: config.path.clone(),
                enabled: config.enabled,
                snapshot: config.snapshot,
                path_packages: Some("DEPRECATED".to_owned()),
                branch_off_rev: config.branch_off_rev,
                package_changes: config
                    .package_changes
                    .iter()
                    .filter_map(|change| {
                        Some(PackageChange {
                            source: change.source.clone()?,
                            target: change.target.clone(),
                            revision: change.revision,
                            mandatory: change.mandatory.then_some(true),
                        })
                    })
                    .collect(),
                versions: versions.clone(),
                name: name.clone(),
                targets: targets.as_deref().cloned().unwrap_or_default(),
                extra: BTreeMap::new(),
            })
        })
        .collect()
}

/// A metadata document, last modified now (when it was rendered).
fn json_document<T: serde::Serialize>(value: &T) -> Result<Document, ApiError> {
    Document::json(value, Some(now()))
        .map_err(|error| ApiError::Internal(format!("cannot encode a metadata document: {error}")))
}

fn json_type() -> HeaderValue {
    HeaderValue::from_static("application/json")
}

async fn revision(
    State(state): State<AppState>,
    Path((version, target, subtarget)): Path<(String, String, String)>,
) -> Result<Json<Revision>, ApiError> {
    let branches = &state.config.branches;
    let Some(branch) = branches
        .get(&branch_of(&version, branches))
        .filter(|branch| branch.enabled)
    else {
        return Err(crate::build::BuildError::BadRequest(
            attendant_proto::api::BadRequest::UnsupportedBranch { version },
        )
        .into());
    };
    let path = branch.path.replace("{version}", &version);
    let not_found = || ApiError::Status {
        status: 404,
        detail: format!("Failed to fetch revision for {version}/{target}/{subtarget}"),
    };
    let profiles = state
        .metadata
        .profiles(&path, &format!("{target}/{subtarget}"))
        .await
        .map_err(|_| not_found())?
        .ok_or_else(not_found)?;
    Ok(Json(Revision {
        revision: profiles.version_code.clone(),
    }))
}

/// `/json/v1/<path>/index.json`, `/json/v1/<path>/<arch>-index.json` and
/// `/json/v1/<path>/targets/<target>/<subtarget>/<profile>.json`.
async fn json_path(
    State(state): State<AppState>,
    Path(path): Path<String>,
) -> Result<Response, ApiError> {
    let Some((dir, file)) = path.rsplit_once('/') else {
        return Err(ApiError::NotFound);
    };
    if file == "index.json" {
        let (version_path, target) = split_target(dir).ok_or(ApiError::NotFound)?;
        let index = state
            .metadata
            .target_index(version_path, &target)
            .await?
            .ok_or(ApiError::NotFound)?;
        return Ok(Json(&*index).into_response());
    }
    if let Some(arch) = file.strip_suffix("-index.json") {
        let index = state
            .metadata
            .arch_index(dir, arch)
            .await?
            .ok_or(ApiError::NotFound)?;
        return Ok(Json(&*index).into_response());
    }
    let Some(profile) = file.strip_suffix(".json") else {
        return Err(ApiError::NotFound);
    };
    let (version_path, target) = split_target(dir).ok_or(ApiError::NotFound)?;
    let profiles = state
        .metadata
        .profiles(version_path, &target)
        .await?
        .ok_or(ApiError::NotFound)?;
    let mut flat = profiles.flatten(profile).ok_or(ApiError::NotFound)?;
    flat.build_at = profiles.source_date_epoch.seconds().map(build_at);
    Ok(Json(flat).into_response())
}

/// `releases/24.10.5/targets/x86/64` → (`releases/24.10.5`, `x86/64`).
fn split_target(dir: &str) -> Option<(&str, String)> {
    let (version_path, rest) = dir.rsplit_once("/targets/")?;
    let (target, subtarget) = rest.split_once('/')?;
    if subtarget.contains('/') || target.is_empty() || subtarget.is_empty() {
        return None;
    }
    Some((version_path, format!("{target}/{subtarget}")))
}
