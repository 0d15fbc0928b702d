//! Upstream metadata (downloads.openwrt.org or a mirror or a local directory), cached in memory.
//!
//! What is read is what ASU reads (`.versions.json`, `.targets.json`, `profiles.json`, package
//! indexes; <https://github.com/openwrt/asu/blob/main/asu/util.py>); the formats are parsed by
//! `attendant_proto::upstream` and `attendant_proto::index`. Unlike ASU, request handling never
//! waits for upstream once a file is cached: `.versions.json` is refreshed after `metadata_ttl`
//! (or on a miss, at most once per [`MIN_FORCED_RELOAD`]), release metadata is kept for
//! [`RELEASE_TTL`] (releases do not change), snapshot metadata for `metadata_ttl` (revisions
//! move daily). Concurrent misses for one file share one download. Each cache holds at most
//! [`MAX_CACHE_ENTRIES`] files and is emptied when it would grow past that.
//!
//! What is derived from the metadata is kept with it: the versions on offer
//! ([`Metadata::offered_versions`]) are computed once per `.versions.json` they come from, and
//! every file stored bumps [`Metadata::generation`], so that a memo of results computed from the
//! metadata (the request memo of `crate::request_memo`) can tell that they may be out of date;
//! [`Metadata::fresh_until`] says until when the files a build request was checked against stay
//! cached.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::Hash;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use attendant_proto::index::{self, PackageIndex};
use attendant_proto::upstream::{self, Profiles, Targets, Versions};
use futures_util::StreamExt;

use crate::config::UpstreamLocation;

/// How long release metadata (immutable upstream) stays cached.
pub const RELEASE_TTL: Duration = Duration::from_secs(24 * 3600);
/// Minimum time between two `.versions.json` reloads forced by requests for unknown versions.
pub const MIN_FORCED_RELOAD: Duration = Duration::from_secs(10);
/// Most files held per cache.
pub const MAX_CACHE_ENTRIES: usize = 4096;
/// Timeout of one metadata download.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(60);

/// Why upstream metadata is unavailable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    /// The mirror could not be reached or broke off.
    #[error("cannot fetch `{url}` from the upstream mirror")]
    Network {
        /// What was fetched.
        url: String,
        /// The client error.
        #[source]
        source: reqwest::Error,
    },
    /// The mirror answered with an error status other than 404.
    #[error("the upstream mirror answered {status} for `{url}`")]
    Status {
        /// What was fetched.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// A local upstream file could not be read.
    #[error("cannot read upstream file `{path}`")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than its limit.
    #[error("upstream file `{what}` is larger than {max} bytes")]
    TooLarge {
        /// What was fetched.
        what: String,
        /// The limit.
        max: usize,
    },
    /// A path component is not a plain name.
    #[error("`{path}` is not a valid upstream path")]
    BadPath {
        /// The path.
        path: String,
    },
    /// A required file is missing.
    #[error("upstream file `{path}` does not exist")]
    Missing {
        /// The path.
        path: String,
    },
    /// A metadata file is malformed.
    #[error("upstream file `{path}` is malformed")]
    Parse {
        /// The path.
        path: String,
        /// The parser's complaint.
        #[source]
        source: upstream::UpstreamError,
    },
    /// A package index is malformed.
    #[error("upstream package index `{path}` is malformed")]
    Index {
        /// The path.
        path: String,
        /// The parser's complaint.
        #[source]
        source: index::IndexError,
    },
}

impl MetadataError {
    /// Whether trying again later may succeed (network trouble, mirror 5xx).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Network { .. } | Self::Io { .. } => true,
            Self::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

/// Every package name a target can install: target packages, kmods and the architecture's
/// feeds. Names are held both without and with their ABI suffix, as clients send either, and
/// with the names opkg feeds declare in `Provides:` (24.10's `luci-app-package-manager`
/// provides `luci-app-opkg`), which opkg installs by their provider.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackageSet {
    names: BTreeSet<String>,
}

impl PackageSet {
    /// Whether `name` is installable.
    pub fn contains(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    /// Number of names.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether the set is empty (upstream publishes no index for the target).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// The metadata client and its caches. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Metadata {
    source: Source,
    snapshot_ttl: Duration,
    versions: RwLock<Option<(Instant, Arc<Versions>)>>,
    versions_fetch: tokio::sync::Mutex<Option<Instant>>,
    targets: Cache<String, Targets>,
    profiles: Cache<(String, String), Profiles>,
    target_indexes: Cache<(String, String), PackageIndex>,
    arch_indexes: Cache<(String, String), BTreeMap<String, String>>,
    package_sets: Cache<(String, String, String), PackageSet>,
    /// Bumped whenever a file is stored in a cache (see [`Metadata::generation`]).
    generation: AtomicU64,
    /// The versions on offer, with the `.versions.json` they were computed from.
    offered: RwLock<Option<Offered>>,
}

/// The versions on offer, and the `.versions.json` they were computed from.
type Offered = (Arc<Versions>, Arc<[String]>);

#[derive(Debug)]
enum Source {
    Http {
        client: reqwest::Client,
        base: String,
    },
    Directory(PathBuf),
}

impl Metadata {
    /// A client for `location`, caching snapshot metadata and `.versions.json` for `ttl`.
    pub fn new(location: &UpstreamLocation, http: reqwest::Client, ttl: Duration) -> Self {
        let source = match location {
            UpstreamLocation::Http(base) => Source::Http {
                client: http,
                base: base.clone(),
            },
            UpstreamLocation::Directory(path) => Source::Directory(path.clone()),
        };
        Self {
            source,
            snapshot_ttl: ttl,
            versions: RwLock::new(None),
            versions_fetch: tokio::sync::Mutex::new(None),
            targets: Cache::default(),
            profiles: Cache::default(),
            target_indexes: Cache::default(),
            arch_indexes: Cache::default(),
            package_sets: Cache::default(),
            generation: AtomicU64::new(0),
            offered: RwLock::new(None),
        }
    }

    /// A number that changes whenever a cached file is stored (fetched for the first time,
    /// again after its TTL, or again after a cache was emptied). Read it *before* computing
    /// something from the metadata: if it is still the same afterwards, no file the computation
    /// read has been replaced since.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The earliest time at which one of the files a build request for `target` of the version
    /// at `path` is validated against (`.versions.json`, `.targets.json`, `profiles.json`)
    /// leaves its cache; `None` when one of them is not cached now. A result computed from them
    /// is what a fresh computation would give until then, unless [`Metadata::generation`]
    /// moved.
    pub fn fresh_until(&self, path: &str, target: &str) -> Option<Instant> {
        let versions = self
            .versions
            .read()
            .ok()?
            .as_ref()
            .map(|(at, _)| expiry(*at, self.snapshot_ttl))?;
        let ttl = self.ttl_for(path);
        let targets = expiry(self.targets.fetched_at(&path.to_owned())?, ttl);
        let profiles = expiry(
            self.profiles
                .fetched_at(&(path.to_owned(), target.to_owned()))?,
            ttl,
        );
        Some(versions.min(targets).min(profiles))
    }

    /// The versions on offer in `versions` as `compute` derives them, computed once per
    /// `.versions.json` (`compute` must depend on nothing else that changes while the process
    /// runs: the configured branches do not).
    pub fn offered_versions(
        &self,
        versions: &Arc<Versions>,
        compute: impl FnOnce(&Versions) -> Vec<String>,
    ) -> Arc<[String]> {
        if let Ok(slot) = self.offered.read()
            && let Some((from, offered)) = slot.as_ref()
            && Arc::ptr_eq(from, versions)
        {
            return Arc::clone(offered);
        }
        let offered: Arc<[String]> = compute(versions).into();
        if let Ok(mut slot) = self.offered.write() {
            *slot = Some((Arc::clone(versions), Arc::clone(&offered)));
        }
        offered
    }

    /// `.versions.json`, cached for the TTL.
    pub async fn versions(&self) -> Result<Arc<Versions>, MetadataError> {
        if let Some(fresh) = self.cached_versions(self.snapshot_ttl) {
            return Ok(fresh);
        }
        self.reload_versions(false).await
    }

    /// `.versions.json` fetched again because a requested version was not in it (ASU reloads
    /// once per miss); rate-limited to one reload per [`MIN_FORCED_RELOAD`].
    pub async fn versions_after_miss(&self) -> Result<Arc<Versions>, MetadataError> {
        self.reload_versions(true).await
    }

    /// `<path>/.targets.json`; `None` if upstream has none (unknown version path).
    pub async fn targets(&self, path: &str) -> Result<Option<Arc<Targets>>, MetadataError> {
        let key = path.to_owned();
        let ttl = self.ttl_for(path);
        self.targets
            .get_or_fetch(key, ttl, &self.generation, || async {
                let file = format!("{path}/.targets.json");
                let Some(bytes) = self.fetch(&file, upstream::MAX_TARGETS_JSON_BYTES).await? else {
                    return Ok(None);
                };
                upstream::parse_targets(&bytes)
                    .map(Some)
                    .map_err(|source| MetadataError::Parse { path: file, source })
            })
            .await
    }

    /// `<path>/targets/<target>/profiles.json`; `None` if upstream has none.
    pub async fn profiles(
        &self,
        path: &str,
        target: &str,
    ) -> Result<Option<Arc<Profiles>>, MetadataError> {
        let ttl = self.ttl_for(path);
        self.profiles
            .get_or_fetch(
                (path.to_owned(), target.to_owned()),
                ttl,
                &self.generation,
                || async {
                    let file = format!("{path}/targets/{target}/profiles.json");
                    let Some(bytes) = self.fetch(&file, upstream::MAX_PROFILES_JSON_BYTES).await?
                    else {
                        return Ok(None);
                    };
                    upstream::parse_profiles(&bytes)
                        .map(Some)
                        .map_err(|source| MetadataError::Parse { path: file, source })
                },
            )
            .await
    }

    /// The target's package index with its kmods merged in (`/json/v1/<path>/index.json`);
    /// `None` if upstream has no index for the target.
    pub async fn target_index(
        &self,
        path: &str,
        target: &str,
    ) -> Result<Option<Arc<PackageIndex>>, MetadataError> {
        let ttl = self.ttl_for(path);
        self.target_indexes
            .get_or_fetch(
                (path.to_owned(), target.to_owned()),
                ttl,
                &self.generation,
                || async {
                    let dir = format!("{path}/targets/{target}/packages");
                    let Some(mut merged) = self.feed_index(&dir).await? else {
                        return Ok(None);
                    };
                    // The kernel triple names the kmods directory: from `profiles.json` where it
                    // has `linux_kernel` (25.12+), else from the `kernel` package's version.
                    let kmods_dir = match self
                        .profiles(path, target)
                        .await?
                        .and_then(|profiles| profiles.linux_kernel.clone())
                    {
                        Some(kernel) => Some(kernel.kmods_dir()),
                        None => merged.packages.get("kernel").and_then(|v| kmods_dir_of(v)),
                    };
                    if let Some(kmods_dir) = kmods_dir {
                        let kmods = format!("{path}/targets/{target}/kmods/{kmods_dir}");
                        if let Some(kmods) = self.feed_index(&kmods).await? {
                            merged.packages.extend(kmods.packages);
                        }
                    }
                    Ok(Some(merged))
                },
            )
            .await
    }

    /// Every package of the architecture's feeds (`/json/v1/<path>/<arch>-index.json`), where
    /// `packages_path` is like `releases/24.10.5/packages`; `None` without a `feeds.conf`.
    pub async fn arch_index(
        &self,
        packages_path: &str,
        arch: &str,
    ) -> Result<Option<Arc<BTreeMap<String, String>>>, MetadataError> {
        let ttl = self.ttl_for(packages_path);
        self.arch_indexes
            .get_or_fetch(
                (packages_path.to_owned(), arch.to_owned()),
                ttl,
                &self.generation,
                || async {
                    let file = format!("{packages_path}/{arch}/feeds.conf");
                    let Some(bytes) = self.fetch(&file, upstream::MAX_FEEDS_CONF_BYTES).await?
                    else {
                        return Ok(None);
                    };
                    let feeds = upstream::parse_feeds_conf(&bytes)
                        .map_err(|source| MetadataError::Parse { path: file, source })?;
                    let mut merged = BTreeMap::new();
                    for feed in feeds {
                        if let Some(index) = self
                            .feed_index(&format!("{packages_path}/{arch}/{feed}"))
                            .await?
                        {
                            merged.extend(index.packages);
                        }
                    }
                    Ok(Some(merged))
                },
            )
            .await
    }

    /// Every installable package name for a target of `path` with package architecture `arch`.
    pub async fn package_set(
        &self,
        path: &str,
        target: &str,
        arch: &str,
    ) -> Result<Arc<PackageSet>, MetadataError> {
        let ttl = self.ttl_for(path);
        let key = (path.to_owned(), target.to_owned(), arch.to_owned());
        let set = self
            .package_sets
            .get_or_fetch(key, ttl, &self.generation, || async {
                let mut names = BTreeSet::new();
                if let Some(index) = self.target_index(path, target).await? {
                    names.extend(index.packages.keys().cloned());
                }
                if let Some(index) = self.arch_index(&format!("{path}/packages"), arch).await? {
                    names.extend(index.keys().cloned());
                }
                // Raw (ABI-suffixed) names of opkg feeds, which some clients send, and the names
                // their packages provide.
                for dir in self.raw_name_dirs(path, target, arch).await? {
                    if let Some(bytes) = self
                        .fetch(&format!("{dir}/Packages"), index::MAX_PACKAGES_BYTES)
                        .await?
                        && let Ok(entries) = index::parse_packages_detailed(&bytes)
                    {
                        for entry in entries {
                            names.extend(entry.provides.into_iter().map(|p| p.name));
                            names.insert(entry.package);
                        }
                    }
                }
                Ok(Some(PackageSet { names }))
            })
            .await?;
        Ok(set.unwrap_or_default())
    }

    /// Raw bytes of an upstream file (`None`: it does not exist).
    pub async fn fetch(&self, path: &str, max: usize) -> Result<Option<Vec<u8>>, MetadataError> {
        check_path(path)?;
        match &self.source {
            Source::Directory(root) => read_file(&root.join(path), path, max).await,
            Source::Http { client, base } => {
                fetch_http(client, &format!("{base}/{path}"), max).await
            }
        }
    }

    fn cached_versions(&self, ttl: Duration) -> Option<Arc<Versions>> {
        let slot = self.versions.read().ok()?;
        let (at, versions) = slot.as_ref()?;
        (at.elapsed() < ttl).then(|| versions.clone())
    }

    async fn reload_versions(&self, forced: bool) -> Result<Arc<Versions>, MetadataError> {
        let mut last = self.versions_fetch.lock().await;
        // Someone else may have reloaded while we waited for the lock.
        let recent = last.is_some_and(|at| at.elapsed() < MIN_FORCED_RELOAD);
        let reuse_ttl = if forced {
            MIN_FORCED_RELOAD
        } else {
            self.snapshot_ttl
        };
        if let Some(fresh) = self.cached_versions(reuse_ttl)
            && (recent || !forced)
        {
            return Ok(fresh);
        }
        if forced
            && recent
            && let Some(cached) = self.cached_versions(Duration::MAX)
        {
            return Ok(cached);
        }
        let file = ".versions.json";
        let bytes = self
            .fetch(file, upstream::MAX_VERSIONS_JSON_BYTES)
            .await?
            .ok_or_else(|| MetadataError::Missing {
                path: file.to_owned(),
            })?;
        let versions =
            Arc::new(
                upstream::parse_versions(&bytes).map_err(|source| MetadataError::Parse {
                    path: file.to_owned(),
                    source,
                })?,
            );
        *last = Some(Instant::now());
        if let Ok(mut slot) = self.versions.write() {
            *slot = Some((Instant::now(), versions.clone()));
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(versions)
    }

    /// Index of one feed directory: `index.json` v2 as is; otherwise the opkg `Packages` file
    /// (ABI-free names); failing that, a v1 `index.json` as is.
    async fn feed_index(&self, dir: &str) -> Result<Option<PackageIndex>, MetadataError> {
        let json_path = format!("{dir}/index.json");
        let json =
            match self.fetch(&json_path, index::MAX_INDEX_JSON_BYTES).await? {
                Some(bytes) => Some(index::parse_index_json(&bytes).map_err(|source| {
                    MetadataError::Index {
                        path: json_path.clone(),
                        source,
                    }
                })?),
                None => None,
            };
        if let Some(json) = &json
            && json.version >= 2
        {
            return Ok(Some(json.index.clone()));
        }
        let packages_path = format!("{dir}/Packages");
        if let Some(bytes) = self
            .fetch(&packages_path, index::MAX_PACKAGES_BYTES)
            .await?
        {
            let parsed = index::parse_packages(&bytes).map_err(|source| MetadataError::Index {
                path: packages_path,
                source,
            })?;
            return Ok(Some(parsed));
        }
        Ok(json.map(|json| json.index))
    }

    async fn raw_name_dirs(
        &self,
        path: &str,
        target: &str,
        arch: &str,
    ) -> Result<Vec<String>, MetadataError> {
        let mut dirs = vec![format!("{path}/targets/{target}/packages")];
        let feeds_conf = format!("{path}/packages/{arch}/feeds.conf");
        if let Some(bytes) = self
            .fetch(&feeds_conf, upstream::MAX_FEEDS_CONF_BYTES)
            .await?
            && let Ok(feeds) = upstream::parse_feeds_conf(&bytes)
        {
            dirs.extend(
                feeds
                    .into_iter()
                    .map(|feed| format!("{path}/packages/{arch}/{feed}")),
            );
        }
        Ok(dirs)
    }

    fn ttl_for(&self, path: &str) -> Duration {
        if path.starts_with("snapshots") || path.contains("SNAPSHOT") {
            self.snapshot_ttl
        } else {
            RELEASE_TTL
        }
    }
}

/// When a file stored at `at` leaves a cache with `ttl`; a TTL too long for the clock counts as
/// already over, which only costs a memo of results computed from the file.
fn expiry(at: Instant, ttl: Duration) -> Instant {
    at.checked_add(ttl).unwrap_or(at)
}

/// The kmods directory from a `kernel` package version: `6.6.116~<vermagic>-r1` →
/// `6.6.116-1-<vermagic>`, the triple `profiles.json` calls `linux_kernel` (ASU parses it the
/// same way).
fn kmods_dir_of(kernel_version: &str) -> Option<String> {
    let (version, rest) = kernel_version.split_once('~')?;
    let (vermagic, release) = rest.rsplit_once("-r")?;
    if version.is_empty() || vermagic.is_empty() || release.is_empty() {
        return None;
    }
    Some(format!("{version}-{release}-{vermagic}"))
}

/// Refuses anything but plain relative names, so neither a directory upstream nor a URL can be
/// escaped with `..`, an absolute path or a query.
fn check_path(path: &str) -> Result<(), MetadataError> {
    let plain = |component: &str| {
        !component.is_empty()
            && component != "."
            && component != ".."
            && component
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '.' | ',' | '-' | '_' | '+' | '~'))
    };
    if path.len() > 1024 || !path.split('/').all(plain) {
        return Err(MetadataError::BadPath {
            path: attendant_proto::excerpt::excerpt(path, 200),
        });
    }
    Ok(())
}

async fn read_file(full: &Path, what: &str, max: usize) -> Result<Option<Vec<u8>>, MetadataError> {
    let io = |source| MetadataError::Io {
        path: full.to_owned(),
        source,
    };
    let metadata = match tokio::fs::metadata(full).await {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io(error)),
    };
    if !metadata.is_file() {
        return Ok(None);
    }
    if metadata.len() > u64::try_from(max).unwrap_or(u64::MAX) {
        return Err(MetadataError::TooLarge {
            what: what.to_owned(),
            max,
        });
    }
    tokio::fs::read(full).await.map(Some).map_err(io)
}

async fn fetch_http(
    client: &reqwest::Client,
    url: &str,
    max: usize,
) -> Result<Option<Vec<u8>>, MetadataError> {
    let network = |source| MetadataError::Network {
        url: url.to_owned(),
        source,
    };
    let response = client
        .get(url)
        .timeout(FETCH_TIMEOUT)
        .send()
        .await
        .map_err(network)?;
    let status = response.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !status.is_success() {
        return Err(MetadataError::Status {
            url: url.to_owned(),
            status: status.as_u16(),
        });
    }
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(network)?;
        if body.len().saturating_add(chunk.len()) > max {
            return Err(MetadataError::TooLarge {
                what: url.to_owned(),
                max,
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// A bounded map of fetched files with a fetch lock per key.
/// A cached file: when it was fetched, and its value (`None`: upstream has no such file).
type Entry<V> = (Instant, Option<Arc<V>>);

#[derive(Debug)]
struct Cache<K, V> {
    entries: RwLock<HashMap<K, Entry<V>>>,
    fetching: Mutex<HashMap<K, Arc<tokio::sync::Mutex<()>>>>,
}

impl<K, V> Default for Cache<K, V> {
    fn default() -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
            fetching: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Clone + Eq + Hash, V> Cache<K, V> {
    /// When the file under `key` was stored, if it is cached.
    fn fetched_at(&self, key: &K) -> Option<Instant> {
        Some(self.entries.read().ok()?.get(key)?.0)
    }

    fn fresh(&self, key: &K, ttl: Duration) -> Option<Option<Arc<V>>> {
        let entries = self.entries.read().ok()?;
        let (at, value) = entries.get(key)?;
        (at.elapsed() < ttl).then(|| value.clone())
    }

    async fn get_or_fetch<F, Fut>(
        &self,
        key: K,
        ttl: Duration,
        generation: &AtomicU64,
        fetch: F,
    ) -> Result<Option<Arc<V>>, MetadataError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<V>, MetadataError>>,
    {
        if let Some(hit) = self.fresh(&key, ttl) {
            return Ok(hit);
        }
        let lock = match self.fetching.lock() {
            Ok(mut fetching) => fetching.entry(key.clone()).or_default().clone(),
            Err(_) => Arc::new(tokio::sync::Mutex::new(())),
        };
        let _guard = lock.lock().await;
        if let Some(hit) = self.fresh(&key, ttl) {
            return Ok(hit);
        }
        let value = fetch().await?.map(Arc::new);
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() >= MAX_CACHE_ENTRIES {
                entries.clear();
            }
            entries.insert(key.clone(), (Instant::now(), value.clone()));
        }
        generation.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut fetching) = self.fetching.lock() {
            fetching.remove(&key);
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, path: &str, text: &str) {
        let full = root.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, text).unwrap();
    }

    fn directory(root: &Path) -> Metadata {
        Metadata::new(
            &UpstreamLocation::Directory(root.to_owned()),
            reqwest::Client::new(),
            Duration::from_secs(60),
        )
    }

    #[test]
    fn refuses_paths_that_escape_the_upstream() {
        for bad in [
            "../etc/passwd",
            "a/../b",
            "/abs",
            "a//b",
            "a?b",
            "a/./b",
            "",
        ] {
            let error = check_path(bad).unwrap_err();
            assert!(matches!(error, MetadataError::BadPath { .. }), "{bad}");
        }
        check_path("releases/24.10.5/targets/x86/64/profiles.json").unwrap();
        check_path(".versions.json").unwrap();
    }

    #[test]
    fn derives_the_kmods_directory_from_the_kernel_package() {
        assert_eq!(
            kmods_dir_of("6.6.116~73fd9bafa6eab49aa08c98c80e8880c6-r1").as_deref(),
            Some("6.6.116-1-73fd9bafa6eab49aa08c98c80e8880c6")
        );
        assert_eq!(kmods_dir_of("6.6.116-r1"), None);
        assert_eq!(kmods_dir_of("~x-r1"), None);
    }

    #[tokio::test]
    async fn caches_versions_until_the_ttl() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            ".versions.json",
            r#"{"stable_version": "24.10.5", "versions_list": ["24.10.5"]}"#,
        );
        let metadata = directory(dir.path());
        assert_eq!(metadata.versions().await.unwrap().stable_version, "24.10.5");
        write(
            dir.path(),
            ".versions.json",
            r#"{"stable_version": "24.10.6", "versions_list": ["24.10.6"]}"#,
        );
        assert_eq!(metadata.versions().await.unwrap().stable_version, "24.10.5");
        // A forced reload right after the first load is rate-limited too.
        assert_eq!(
            metadata.versions_after_miss().await.unwrap().stable_version,
            "24.10.5"
        );
    }

    #[tokio::test]
    async fn merges_target_packages_kmods_and_feeds() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let path = "releases/24.10.5";
        write(
            root,
            &format!("{path}/targets/x86/64/profiles.json"),
            r#"{"arch_packages": "x86_64", "profiles": {}, "source_date_epoch": 1, "target": "x86/64",
                "version_code": "r1-abc", "version_number": "24.10.5",
                "linux_kernel": {"version": "6.6.1", "release": "1", "vermagic": "ff"}}"#,
        );
        write(
            root,
            &format!("{path}/targets/x86/64/packages/Packages"),
            "Package: base-files\nVersion: 1\nArchitecture: x86_64\n\nPackage: libfoo1\nABIVersion: 1\nVersion: 2\nArchitecture: x86_64\n",
        );
        write(
            root,
            &format!("{path}/targets/x86/64/kmods/6.6.1-1-ff/Packages"),
            "Package: kmod-e1000\nVersion: 6.6.1-r1\nArchitecture: x86_64\n",
        );
        write(
            root,
            &format!("{path}/packages/x86_64/feeds.conf"),
            "src-git packages https://example/packages.git^1\n",
        );
        write(
            root,
            &format!("{path}/packages/x86_64/packages/Packages"),
            "Package: tmux\nVersion: 3.4-1\nArchitecture: x86_64\n\n\
             Package: luci-app-package-manager\nVersion: 1\nProvides: luci-app-opkg\nArchitecture: all\n",
        );
        let metadata = directory(root);
        let index = metadata
            .target_index(path, "x86/64")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(index.packages["kmod-e1000"], "6.6.1-r1");
        assert_eq!(index.packages["libfoo"], "2");
        let set = metadata
            .package_set(path, "x86/64", "x86_64")
            .await
            .unwrap();
        for name in [
            "base-files",
            "libfoo",
            "libfoo1",
            "kmod-e1000",
            "tmux",
            "luci-app-opkg",
        ] {
            assert!(set.contains(name), "{name}");
        }
        assert!(!set.contains("nonexistent"));
        assert!(metadata.targets(path).await.unwrap().is_none());
    }
}
