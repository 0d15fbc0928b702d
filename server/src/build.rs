//! The build API's domain: [`submit`] a request, read a job's [`status`].
//!
//! [`submit`] follows ASU's `api_v1_build_post` and `validate_request`
//! (<https://github.com/openwrt/asu/blob/main/asu/routers/api.py>) with these fixes:
//!
//! 1. parse the body (422 with pydantic's list-shaped `detail`);
//! 2. the 400 checks, in ASU's order: defaults allowed, repository allow-list, distro, branch,
//!    version (one forced reload of `.versions.json` on a miss), target, profile;
//! 3. resolve the profile (id, `supported_devices` alias, `generic` fallback);
//! 4. hash the canonical request *after* resolution, so every alias shares one build and
//!    `bin_dir` equals `request_hash`; ASU's per-release package fixups ([`apply_fixups`])
//!    change the build list, not the request, so they never change the hash;
//! 5. an existing job (queued, running, finished or failed) is returned as it is;
//! 6. otherwise every package of the fixed-up build list is checked against the target, kmods
//!    and architecture indexes (422 `Unsupported package(s): a, b`) before anything is queued, so
//!    `auc` in a 24.10 request is not refused for a package the build replaces with `owut`;
//! 7. 529 when the queue is over `max_pending_jobs`, else enqueue.
//!
//! Steps 1–4 depend only on the body, the configuration and the upstream metadata, so their
//! result is memoised per body ([`crate::request_memo`]): a client re-posting its request goes
//! straight to step 5.
//!
//! Nothing here knows HTTP: errors are [`BuildError`], turned into responses in `http`.

use std::collections::BTreeMap;
use std::sync::Arc;

use attendant_proto::api::{
    AllowList, BadRequest, BuildRequest, CanonicalRequest, RepositoryError, RequestHash,
    ValidationErrors, apply_fixups, normalized_packages, parse_build_request, request_hash,
};
use attendant_proto::excerpt::{MAX_VALUE_CHARS, excerpt};
use attendant_proto::version::Version;
use sha2::{Digest, Sha256};

use crate::metadata::MetadataError;
use crate::request_memo::Admitted;
use crate::state::{AppState, now};
use crate::stats::RequestFacts;
use crate::store::{
    EmbeddedFile, EventOutcome, JobSpec, MAX_EMBEDDED_FILE_BYTES, MAX_EMBEDDED_FILES, NewJob,
    StoreError, Submission,
};
use crate::view::BuildView;

/// Why a build request was not accepted, or a job not found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The body breaks the request model (422, list-shaped `detail`).
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// A 400 validation failure with ASU's exact text.
    #[error(transparent)]
    BadRequest(#[from] BadRequest),
    /// Packages that no index of the target knows (422).
    #[error("Unsupported package(s): {}", .0.join(", "))]
    UnsupportedPackages(Vec<String>),
    /// The queue is full (529).
    #[error("server overload, queue contains too many build requests: {queue_length}")]
    Overloaded {
        /// Jobs waiting.
        queue_length: u64,
    },
    /// No live job has this hash (404).
    #[error("could not find provided request hash")]
    NotFound,
    /// Upstream metadata is unavailable.
    #[error("upstream metadata is unavailable")]
    Upstream(#[from] MetadataError),
    /// The job store failed.
    #[error("the job store failed")]
    Store(#[from] StoreError),
    /// A file to embed in the image is not acceptable (server-side callers only).
    #[error("embedded file `{path}` is refused: {rule}")]
    EmbeddedFile {
        /// Its path, truncated.
        path: String,
        /// The rule broken.
        rule: &'static str,
    },
}

/// Submits a build request body; returns the job's current view. `user_agent` names the client
/// in the statistics when the request does not.
pub async fn submit(
    state: &AppState,
    body: &[u8],
    user_agent: Option<&str>,
) -> Result<Arc<BuildView>, BuildError> {
    submit_job(state, body, user_agent, Vec::new())
        .await
        .map(|(_, view)| view)
}

/// Submits a build request body whose image also carries `files` (a channel build's stamp);
/// returns the request hash and the job's current view. The same checks, de-duplication,
/// queue limit, statistics and workers as every build.
pub async fn submit_job(
    state: &AppState,
    body: &[u8],
    user_agent: Option<&str>,
    files: Vec<EmbeddedFile>,
) -> Result<(RequestHash, Arc<BuildView>), BuildError> {
    let admitted = admit(state, body, user_agent, files).await?;
    let hash = admitted.hash;
    let now = now();
    let facts = admitted.facts_for(user_agent);
    let record = |outcome| state.events.record(&state.store, &facts, outcome, now);
    record(EventOutcome::Request);
    let cached = match state.results.get(&hash, now) {
        Some(view) => Some(view),
        None => state
            .store
            .job(&hash, now)
            .await?
            .map(|job| remember(state, &job)),
    };
    if let Some(view) = cached {
        if view.status == 200 {
            record(EventOutcome::CacheHit);
        }
        return Ok((hash, view));
    }
    check_packages(state, &admitted.spec).await?;
    let new = NewJob {
        request_hash: hash,
        request: admitted.spec.clone(),
    };
    match state
        .store
        .submit(new, state.config.max_pending_jobs, now)
        .await?
    {
        Submission::Created(job) => {
            state.known_hashes.insert(&hash);
            state.wakeup.notify_one();
            Ok((hash, remember(state, &job)))
        }
        Submission::Existing(job) => {
            state.known_hashes.insert(&hash);
            Ok((hash, remember(state, &job)))
        }
        Submission::Overloaded { queue_length } => Err(BuildError::Overloaded { queue_length }),
    }
}

/// Parses, validates and hashes `body`, or finds the result of an earlier identical body in
/// the request memo ([`crate::request_memo`]; requests with `files` are never memoised).
async fn admit(
    state: &AppState,
    body: &[u8],
    user_agent: Option<&str>,
    files: Vec<EmbeddedFile>,
) -> Result<Arc<Admitted>, BuildError> {
    let memoised = files.is_empty();
    if memoised && let Some(admitted) = state.request_memo.get(body, &state.metadata) {
        return Ok(admitted);
    }
    // Read before validation reads the metadata: see the module docs of `request_memo`.
    let generation = state.metadata.generation();
    let request = parse_build_request(body, &state.limits)?;
    let mut spec = validate(state, request).await?;
    check_files(&files)?;
    spec.files = files;
    let admitted = Arc::new(Admitted {
        hash: job_hash(&spec),
        facts: Arc::new(RequestFacts::of(&spec.request, user_agent)),
        spec,
    });
    if memoised {
        state
            .request_memo
            .insert(body, generation, &state.metadata, Arc::clone(&admitted));
    }
    Ok(admitted)
}

/// Domain separation tag of the embedded files appended to the request encoding.
pub const EMBEDDED_FILES_DOMAIN: &str = "attendant-embedded-files-v1";

/// The request hash of a job: [`request_hash`] of the canonical request, or, when the job
/// embeds files, SHA-256 of the canonical encoding followed by [`EMBEDDED_FILES_DOMAIN`], the
/// file count and each path and contents (lengths as big-endian `u64`, as the request encoding
/// does). Requests without files keep the hash ASU clients already hold.
pub fn job_hash(spec: &JobSpec) -> RequestHash {
    let canonical = CanonicalRequest::from_request(&spec.request);
    if spec.files.is_empty() {
        return request_hash(&canonical);
    }
    let mut out = canonical.encode();
    put_bytes(&mut out, EMBEDDED_FILES_DOMAIN.as_bytes());
    let mut files: Vec<&EmbeddedFile> = spec.files.iter().collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    out.extend_from_slice(&(files.len() as u64).to_be_bytes());
    for file in files {
        put_bytes(&mut out, file.path.as_bytes());
        put_bytes(&mut out, file.contents.as_bytes());
    }
    RequestHash(Sha256::digest(&out).into())
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn check_files(files: &[EmbeddedFile]) -> Result<(), BuildError> {
    if files.len() > MAX_EMBEDDED_FILES {
        return Err(BuildError::EmbeddedFile {
            path: String::new(),
            rule: "too many files",
        });
    }
    for file in files {
        let path = file.path.chars().take(256).collect();
        if file.relative_path().is_none() {
            return Err(BuildError::EmbeddedFile {
                path,
                rule: "not an absolute path of plain names",
            });
        }
        if file.contents.len() > MAX_EMBEDDED_FILE_BYTES {
            return Err(BuildError::EmbeddedFile {
                path,
                rule: "larger than 64 KiB",
            });
        }
    }
    Ok(())
}

/// The current view of a job by its hash (the path segment as sent).
pub async fn status(state: &AppState, request_hash: &str) -> Result<Arc<BuildView>, BuildError> {
    let Ok(hash) = request_hash.parse::<RequestHash>() else {
        return Err(BuildError::NotFound);
    };
    let now = now();
    if let Some(view) = state.results.get(&hash, now) {
        return Ok(view);
    }
    if state.known_hashes.certainly_unknown(&state.store, &hash) {
        return Err(BuildError::NotFound);
    }
    let job = state
        .store
        .job(&hash, now)
        .await?
        .ok_or(BuildError::NotFound)?;
    Ok(remember(state, &job))
}

fn remember(state: &AppState, job: &crate::store::Job) -> Arc<BuildView> {
    let view = Arc::new(BuildView::of(job));
    state.results.remember(job, &view);
    view
}

/// ASU's 400 checks in ASU's order, then profile resolution.
async fn validate(state: &AppState, mut request: BuildRequest) -> Result<JobSpec, BuildError> {
    let config = &state.config;
    if request.defaults.as_deref().is_some_and(|d| !d.is_empty()) && !config.allow_defaults {
        return Err(BadRequest::DefaultsNotEnabled.into());
    }
    if !request.repositories.is_empty() {
        // `Config` checked every entry when it was loaded; an entry that still fails admits
        // nothing.
        let allowed = AllowList::parse(&config.repository_allow_list).unwrap_or_default();
        for url in request.repositories.values() {
            match allowed.admit(url) {
                Ok(_) => {}
                // A well-formed URL outside the list gets ASU's exact text, which clients
                // match on; the bypass attempts get the rule they broke.
                Err(RepositoryError::NotAllowed) => {
                    return Err(BadRequest::RepositoryNotAllowed {
                        url: excerpt(url, MAX_VALUE_CHARS),
                    }
                    .into());
                }
                Err(cause) => {
                    return Err(BadRequest::RepositoryRefused {
                        url: excerpt(url, MAX_VALUE_CHARS),
                        cause,
                    }
                    .into());
                }
            }
        }
    }
    if request.distro != "openwrt" {
        return Err(BadRequest::UnsupportedDistro {
            distro: request.distro.clone(),
        }
        .into());
    }
    let branch_name = branch_of(&request.version, &config.branches);
    let Some(branch) = config
        .branches
        .get(&branch_name)
        .filter(|branch| branch.enabled)
    else {
        return Err(BadRequest::UnsupportedBranch {
            version: request.version.clone(),
        }
        .into());
    };
    if !offered(state, &request.version, false).await?
        && !offered(state, &request.version, true).await?
    {
        return Err(BadRequest::UnsupportedVersion {
            version: request.version.clone(),
        }
        .into());
    }
    let version_path = branch.path.replace("{version}", &request.version);
    let unsupported_target = || BadRequest::UnsupportedTarget {
        target: request.target.clone(),
    };
    let targets = state.metadata.targets(&version_path).await?;
    if !targets.is_some_and(|targets| targets.contains_key(&request.target)) {
        return Err(unsupported_target().into());
    }
    let Some((target, subtarget)) = request.target.split_once('/') else {
        return Err(unsupported_target().into());
    };
    let (target, subtarget) = (target.to_owned(), subtarget.to_owned());
    let profiles = state
        .metadata
        .profiles(&version_path, &request.target)
        .await?
        .ok_or_else(unsupported_target)?;
    let resolved = profiles
        .resolve_profile(&request.profile)
        .map_err(BadRequest::from)?;
    request.profile = resolved.id;
    let fixed = apply_fixups(
        &request.version,
        &request.target,
        &request.profile,
        &normalized_packages(&request),
    );
    if !fixed.changes.is_empty() {
        tracing::debug!(changes = ?fixed.changes, "applied package fixups");
    }
    let packages = fixed.packages;
    Ok(JobSpec {
        request,
        version_path,
        target,
        subtarget,
        packages,
        files: Vec::new(),
    })
}

/// Whether `version` is on offer: ASU's list of upcoming + published
/// versions + `SNAPSHOT` + `<branch>-SNAPSHOT`, restricted to enabled branches.
async fn offered(state: &AppState, version: &str, reload: bool) -> Result<bool, MetadataError> {
    let versions = if reload {
        state.metadata.versions_after_miss().await?
    } else {
        state.metadata.versions().await?
    };
    let offered = state.metadata.offered_versions(&versions, |versions| {
        offered_versions(versions, &state.config.branches)
    });
    Ok(offered.iter().any(|offered| offered == version))
}

/// Every version on offer (as ASU's `overview.json` lists them), newest first: upcoming + published +
/// `SNAPSHOT` + `<branch>-SNAPSHOT` of every release branch, restricted to enabled branches.
pub(crate) fn offered_versions(
    versions: &attendant_proto::upstream::Versions,
    branches: &BTreeMap<String, crate::config::BranchConfig>,
) -> Vec<String> {
    let mut all: Vec<String> = Vec::new();
    let mut add = |version: &str| {
        if !version.is_empty() && !all.iter().any(|v| v == version) {
            all.push(version.to_owned());
        }
    };
    add(&versions.upcoming_version);
    for version in &versions.versions_list {
        add(version);
    }
    for (name, branch) in branches {
        if branch.snapshot {
            add(name);
        } else {
            add(&format!("{name}-SNAPSHOT"));
        }
    }
    all.retain(|version| {
        branches
            .get(&branch_of(version, branches))
            .is_some_and(|branch| branch.enabled)
    });
    all.sort_by(|a, b| compare_versions(b, a));
    all
}

/// Orders OpenWrt versions numerically with proto's [`Version`] order (`24.10.10` > `24.10.9` >
/// `24.10.0` > `24.10.0-rc1` > `24.10-SNAPSHOT`; `SNAPSHOT` is newest). Strings that are not
/// OpenWrt versions sort below every version, by text.
pub(crate) fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    match (Version::parse(a), Version::parse(b)) {
        (Ok(a), Ok(b)) => a.cmp(&b),
        (Ok(_), Err(_)) => std::cmp::Ordering::Greater,
        (Err(_), Ok(_)) => std::cmp::Ordering::Less,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

/// The branch a version belongs to (ASU's `get_branch`): the version itself if it names a
/// configured branch, else proto's [`Version::branch`] (`24.10.5` and `24.10-SNAPSHOT` →
/// `24.10`). A string that is not an OpenWrt version keeps ASU's rule (cut at the last `.`), so
/// the 400 names the branch ASU would name.
pub(crate) fn branch_of(
    version: &str,
    branches: &BTreeMap<String, crate::config::BranchConfig>,
) -> String {
    if branches.contains_key(version) {
        return version.to_owned();
    }
    if let Ok(parsed) = Version::parse(version) {
        return parsed.branch().to_string();
    }
    match version.rsplit_once('.') {
        Some((branch, _)) => branch.to_owned(),
        None => version.to_owned(),
    }
}

/// Every requested package (removals `-pkg` aside) must be in the target's indexes or be one of
/// the target's or the profile's default packages. Skipped when the request brings its own
/// repositories (their indexes are not ours to read) or when upstream publishes no index for the
/// target at all.
///
/// The defaults count because they may be virtual names the ImageBuilder resolves through
/// `Provides`: 25.12's `nftables` is provided by `nftables-json`, and apk's `index.json` lists no
/// provides. owut and LuCI send the whole default list, so refusing it would refuse them all.
async fn check_packages(state: &AppState, spec: &JobSpec) -> Result<(), BuildError> {
    if !spec.request.repositories.is_empty() {
        return Ok(());
    }
    let wanted: Vec<&String> = spec
        .packages
        .iter()
        .filter(|name| !name.starts_with('-'))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let profiles = state
        .metadata
        .profiles(&spec.version_path, &spec.request.target)
        .await?;
    let arch = profiles
        .as_ref()
        .map(|profiles| profiles.arch_packages.clone())
        .unwrap_or_default();
    let set = state
        .metadata
        .package_set(&spec.version_path, &spec.request.target, &arch)
        .await?;
    if set.is_empty() {
        return Ok(());
    }
    let is_default = |name: &str| {
        profiles.as_ref().is_some_and(|profiles| {
            profiles.default_packages.iter().any(|d| d == name)
                || profiles
                    .profiles
                    .get(&spec.request.profile)
                    .is_some_and(|profile| profile.device_packages.iter().any(|d| d == name))
        })
    };
    let unknown: Vec<String> = wanted
        .into_iter()
        .filter(|name| !set.contains(name) && !is_default(name))
        .cloned()
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(BuildError::UnsupportedPackages(unknown))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn embedded_files_change_the_hash_only_when_present() {
        let spec = crate::store::test_spec(1);
        let plain = request_hash(&CanonicalRequest::from_request(&spec.request));
        assert_eq!(job_hash(&spec), plain, "ordinary requests keep their hash");
        let stamp = |contents: &str| EmbeddedFile {
            path: "/etc/attendant/channel.json".to_owned(),
            contents: contents.to_owned(),
        };
        let mut first = spec.clone();
        first.files = vec![stamp(r#"{"build":1}"#)];
        let mut second = spec;
        second.files = vec![stamp(r#"{"build":2}"#)];
        assert_ne!(job_hash(&first), plain);
        assert_ne!(job_hash(&first), job_hash(&second));
        assert_eq!(job_hash(&first), job_hash(&first.clone()));
    }

    #[test]
    fn refuses_embedded_files_that_could_escape() {
        for path in ["etc/x", "/etc/../x", "/etc//x", "/", "/etc/./x"] {
            let file = EmbeddedFile {
                path: path.to_owned(),
                contents: String::new(),
            };
            assert!(
                matches!(check_files(&[file]), Err(BuildError::EmbeddedFile { .. })),
                "{path}"
            );
        }
        let big = EmbeddedFile {
            path: "/etc/x".to_owned(),
            contents: "x".repeat(MAX_EMBEDDED_FILE_BYTES + 1),
        };
        assert!(check_files(&[big]).is_err());
    }

    #[test]
    fn derives_branches_like_asu() {
        let branches = Config::default().branches;
        assert_eq!(branch_of("24.10.5", &branches), "24.10");
        assert_eq!(branch_of("25.12.0-rc1", &branches), "25.12");
        assert_eq!(branch_of("24.10-SNAPSHOT", &branches), "24.10");
        assert_eq!(branch_of("SNAPSHOT", &branches), "SNAPSHOT");
        assert_eq!(branch_of("10.10.10", &branches), "10.10");
    }

    #[test]
    fn orders_versions_numerically() {
        let versions = attendant_proto::upstream::parse_versions(
            br#"{"stable_version": "24.10.10", "upcoming_version": "25.12.0-rc1",
                 "versions_list": ["24.10.9", "24.10.10", "23.05.5", "10.03.1"]}"#,
        )
        .unwrap();
        assert_eq!(
            offered_versions(&versions, &Config::default().branches),
            [
                "SNAPSHOT",
                "25.12.0-rc1",
                "25.12-SNAPSHOT",
                "24.10.10",
                "24.10.9",
                "24.10-SNAPSHOT",
                "23.05.5",
                "23.05-SNAPSHOT",
                "22.03-SNAPSHOT",
                "21.02-SNAPSHOT"
            ]
        );
    }
}
