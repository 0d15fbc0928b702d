//! The on-disk ImageBuilder cache: one verified, unpacked ImageBuilder per version, target,
//! subtarget and archive SHA-256, shared by every build.
//!
//! Layout under [`CacheConfig::root`]:
//!
//! ```text
//! entries/<version>_<target>_<subtarget>_<sha256>/
//!     imagebuilder/          the unpacked tree; `make` runs here (Lease::dir)
//!     archive                the verified archive it was unpacked from (Lease::archive),
//!                            kept so that remote workers can fetch it from here
//!     .attendant-complete    completion marker: archive name, SHA-256, size; its mtime is the
//!                            last use
//! tmp/                       downloads, half-unpacked trees and evicted entries being deleted;
//!                            emptied when the cache starts
//! ```
//!
//! An entry appears in `entries/` only by an atomic rename of a complete tree with its marker,
//! so a crash never leaves a half-unpacked ImageBuilder that looks usable.
//!
//! **Freshness.** A release ImageBuilder never changes upstream, so once cached it is reused
//! without contacting the upstream at all. For snapshots (`SNAPSHOT`, `24.10-SNAPSHOT`) the signed
//! `sha256sums` is fetched on every acquire: when the snapshot moved, the archive SHA-256 differs
//! and a new entry is downloaded, so a build never uses a snapshot ImageBuilder older than the
//! one upstream publishes; the superseded entry stays until eviction removes it. ASU instead
//! re-downloads a snapshot ImageBuilder for every build (its container's `setup.sh`).
//!
//! **Single flight.** Acquires of one version/target/subtarget are serialised by a per-key lock,
//! so ten concurrent builds trigger one download; other keys proceed in parallel.
//!
//! **Eviction.** After each new entry is installed, entries are deleted least recently used first
//! while the total size (unpacked tree and kept archive) exceeds [`CacheConfig::disk_budget_bytes`]. An entry with an
//! outstanding [`Lease`] is never evicted, so the total may stay over budget while leased entries
//! alone exceed it. A download temporarily needs room for the archive and its unpacked tree on
//! top of the budget.

use std::{
    collections::HashMap,
    fmt, fs, io,
    path::PathBuf,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::SystemTime,
};

use attendant_proto::usign::{self, Keyring, Signature, UsignError};
use tokio::sync::OnceCell;

use super::{
    IbError, IbSpec, Upstream,
    fetch::Fetcher,
    layout::{
        ARCHIVE, MARKER, Marker, TREE, TempPath, create_dir, read_dir, remove_tree, rename, touch,
        write_synced,
    },
    spec::entry_name,
    sums::{self, ArchiveListing, MAX_SHA256SUMS_LEN},
    unpack::{self, UnpackLimits},
};

/// Default [`CacheConfig::disk_budget_bytes`]: 20 GiB, about twenty unpacked ImageBuilders.
pub const DEFAULT_DISK_BUDGET_BYTES: u64 = 20 << 30;

/// Default [`CacheConfig::download_limit_bytes`]: 1 GiB. Real archives are 50 to 300 MB.
pub const DEFAULT_DOWNLOAD_LIMIT_BYTES: u64 = 1 << 30;

/// Configuration of an [`ImagebuilderCache`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CacheConfig {
    /// Directory holding the cache (created if missing).
    pub root: PathBuf,
    /// Where ImageBuilders are downloaded from.
    pub upstream: Upstream,
    /// Keys trusted to sign the upstream's `sha256sums`.
    pub trusted_keys: Keyring,
    /// Total unpacked size above which unleased entries are evicted.
    pub disk_budget_bytes: u64,
    /// HTTP client for [`Upstream::Http`].
    pub http: reqwest::Client,
    /// Largest archive accepted for download, in bytes.
    pub download_limit_bytes: u64,
}

impl CacheConfig {
    /// A configuration with the default budget and download limit.
    pub fn new(
        root: PathBuf,
        upstream: Upstream,
        trusted_keys: Keyring,
        http: reqwest::Client,
    ) -> Self {
        Self {
            root,
            upstream,
            trusted_keys,
            disk_budget_bytes: DEFAULT_DISK_BUDGET_BYTES,
            http,
            download_limit_bytes: DEFAULT_DOWNLOAD_LIMIT_BYTES,
        }
    }
}

/// A pinned, unpacked ImageBuilder. While it lives the entry is not evicted; dropping it releases
/// the pin.
#[non_exhaustive]
pub struct Lease {
    /// The ImageBuilder's root directory, where `make` runs.
    pub dir: PathBuf,
    /// SHA-256 of the archive it was unpacked from, lowercase hex.
    pub archive_sha256: String,
    /// File name of that archive.
    pub archive_name: String,
    /// The verified archive itself, kept beside the tree ([`ImagebuilderCache::archive`]).
    pub archive: PathBuf,
    _pin: Pin,
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("dir", &self.dir)
            .field("archive_sha256", &self.archive_sha256)
            .field("archive_name", &self.archive_name)
            .finish_non_exhaustive()
    }
}

/// What [`ImagebuilderCache::counts`] reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheCounts {
    /// Acquires answered by a cached ImageBuilder.
    pub hits: u64,
    /// ImageBuilders downloaded.
    pub downloads: u64,
    /// ImageBuilders evicted.
    pub evictions: u64,
}

/// Downloads, verifies, unpacks and hands out ImageBuilders; cheap to clone.
#[derive(Clone)]
pub struct ImagebuilderCache {
    inner: Arc<Inner>,
}

impl fmt::Debug for ImagebuilderCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImagebuilderCache")
            .field("root", &self.inner.root)
            .finish_non_exhaustive()
    }
}

impl ImagebuilderCache {
    /// A cache over `config`. Nothing touches the disk until the first
    /// [`acquire`](Self::acquire), which also clears leftovers of an earlier run.
    pub fn new(config: CacheConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                fetcher: Fetcher::new(config.upstream, config.http),
                root: config.root,
                keys: config.trusted_keys,
                budget: config.disk_budget_bytes,
                download_limit: config.download_limit_bytes,
                limits: UnpackLimits::default(),
                state: Mutex::new(State::default()),
                flights: Mutex::new(HashMap::new()),
                scanned: OnceCell::new(),
                hits: AtomicU64::new(0),
                downloads: AtomicU64::new(0),
                evictions: AtomicU64::new(0),
            }),
        }
    }

    /// Get the ImageBuilder for `spec`, downloading, verifying and unpacking it unless a cached
    /// copy is current (see the module docs for the rules).
    pub async fn acquire(&self, spec: &IbSpec) -> Result<Lease, IbError> {
        spec.check()?;
        self.ensure_scanned().await?;
        let key = spec.key();
        let flight = self.inner.flight(&key);
        let result = {
            let _serialised = flight.lock().await;
            self.acquire_serialised(spec).await
        };
        self.inner.end_flight(&key, flight);
        result
    }

    /// The ImageBuilder for `spec` with its verified archive at [`Lease::archive`], for
    /// handing to a remote worker: [`Self::acquire`], then, for an entry cached before archives
    /// were kept, the archive downloaded again and checked against the entry's SHA-256.
    pub async fn archive(&self, spec: &IbSpec) -> Result<Lease, IbError> {
        let lease = self.acquire(spec).await?;
        if tokio::fs::try_exists(&lease.archive).await.unwrap_or(false) {
            return Ok(lease);
        }
        let inner = &self.inner;
        let id = random_id()?;
        let download = TempPath::file(
            inner
                .root
                .join("tmp")
                .join(format!("{id}.{}", lease.archive_name)),
        );
        let relative = format!("{}/{}", spec.upstream_dir(), lease.archive_name);
        let downloaded = inner
            .fetcher
            .download(&relative, download.path(), inner.download_limit)
            .await?
            .ok_or_else(|| IbError::NotFound {
                image: lease.archive_name.clone(),
                url: inner.fetcher.location(&relative),
            })?;
        if downloaded.sha256 != lease.archive_sha256 {
            return Err(IbError::ChecksumMismatch {
                file: lease.archive_name.clone(),
                expected: lease.archive_sha256.clone(),
                actual: downloaded.sha256,
            });
        }
        rename(download.path(), &lease.archive)?;
        download.disarm();
        Ok(lease)
    }

    /// A small file of the upstream (`sha256sums`, `sha256sums.sig`) under `relative`, passed on
    /// as it is: whoever receives it checks the signature with keys of its own. `Ok(None)` when
    /// the upstream does not have it.
    pub async fn upstream_file(
        &self,
        relative: &str,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, IbError> {
        self.inner.fetcher.fetch_small(relative, limit).await
    }

    /// How often the cache was used, missed and evicted since start.
    pub fn counts(&self) -> CacheCounts {
        CacheCounts {
            hits: self.inner.hits.load(Ordering::Relaxed),
            downloads: self.inner.downloads.load(Ordering::Relaxed),
            evictions: self.inner.evictions.load(Ordering::Relaxed),
        }
    }

    /// Total unpacked size of the cached entries, in bytes.
    pub fn cached_bytes(&self) -> u64 {
        self.inner.lock_state().total()
    }

    async fn acquire_serialised(&self, spec: &IbSpec) -> Result<Lease, IbError> {
        let inner = &self.inner;
        let key = spec.key();
        if !spec.is_snapshot()
            && let Some(lease) = inner.lease_latest(&key)
        {
            tracing::debug!(%key, "release ImageBuilder reused without contacting upstream");
            inner.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(lease);
        }
        let listing = self.verified_listing(spec).await?;
        let name = entry_name(spec, &listing.sha256);
        if let Some(lease) = inner.lease_named(&name) {
            tracing::debug!(%key, sha256 = %listing.sha256, "ImageBuilder reused");
            inner.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(lease);
        }

        let id = random_id()?;
        let tmp = inner.root.join("tmp");
        let archive = TempPath::file(tmp.join(format!("{id}.{}", listing.name)));
        let relative = format!("{}/{}", spec.upstream_dir(), listing.name);
        tracing::info!(%key, archive = %listing.name, "downloading ImageBuilder");
        inner.downloads.fetch_add(1, Ordering::Relaxed);
        let downloaded = inner
            .fetcher
            .download(&relative, archive.path(), inner.download_limit)
            .await?
            .ok_or_else(|| IbError::NotFound {
                image: listing.name.clone(),
                url: inner.fetcher.location(&relative),
            })?;
        if downloaded.sha256 != listing.sha256 {
            return Err(IbError::ChecksumMismatch {
                file: listing.name,
                expected: listing.sha256,
                actual: downloaded.sha256,
            });
        }
        tracing::info!(%key, bytes = downloaded.len, "ImageBuilder verified, unpacking");
        let staging = TempPath::dir(tmp.join(format!("{id}.d")));
        let installer = Arc::clone(inner);
        let install = Install {
            spec: spec.clone(),
            listing,
            name,
            archive,
            staging,
        };
        tokio::task::spawn_blocking(move || installer.install(install))
            .await
            .map_err(|error| IbError::io("unpack into", tmp, io::Error::other(error.to_string())))?
    }

    /// Fetch `sha256sums` and its signature, verify it and find the archive.
    async fn verified_listing(&self, spec: &IbSpec) -> Result<ArchiveListing, IbError> {
        let fetcher = &self.inner.fetcher;
        let dir = spec.upstream_dir();
        let sums_path = format!("{dir}/sha256sums");
        let sig_path = format!("{dir}/sha256sums.sig");
        let sums_url = fetcher.location(&sums_path);
        let not_found = || IbError::NotFound {
            image: sums::expected_name(&spec.version, &spec.target, &spec.subtarget),
            url: sums_url.clone(),
        };
        let sums_bytes = fetcher
            .fetch_small(&sums_path, MAX_SHA256SUMS_LEN)
            .await?
            .ok_or_else(not_found)?;
        let sig_url = fetcher.location(&sig_path);
        let sig_limit = u64::try_from(usign::MAX_FILE_LEN).unwrap_or(u64::MAX);
        let sig_bytes = fetcher
            .fetch_small(&sig_path, sig_limit)
            .await?
            .ok_or_else(|| IbError::Unsigned {
                url: sig_url.clone(),
            })?;
        verify(&self.inner.keys, &sums_bytes, &sig_bytes, &sig_url)?;
        let text =
            std::str::from_utf8(&sums_bytes).map_err(|error| IbError::ChecksumsMalformed {
                url: sums_url.clone(),
                line: line_of(&sums_bytes, error.valid_up_to()),
                reason: "not UTF-8".to_owned(),
            })?;
        sums::find_archive(
            text,
            &sums_url,
            &spec.version,
            &spec.target,
            &spec.subtarget,
        )?
        .ok_or_else(not_found)
    }

    async fn ensure_scanned(&self) -> Result<(), IbError> {
        let inner = Arc::clone(&self.inner);
        self.inner
            .scanned
            .get_or_try_init(|| async move {
                let root = inner.root.clone();
                tokio::task::spawn_blocking(move || inner.scan())
                    .await
                    .map_err(|error| {
                        IbError::io("scan", root, io::Error::other(error.to_string()))
                    })?
            })
            .await
            .copied()
    }
}

/// Check the usign signature over `sha256sums`.
fn verify(keys: &Keyring, sums: &[u8], sig: &[u8], sig_url: &str) -> Result<(), IbError> {
    let invalid = |source| IbError::SignatureInvalid {
        url: sig_url.to_owned(),
        source,
    };
    let signature = Signature::parse(sig).map_err(invalid)?;
    match keys.verify(sums, &signature) {
        Ok(fingerprint) => {
            tracing::debug!(%fingerprint, url = %sig_url, "sha256sums signature verified");
            Ok(())
        }
        Err(UsignError::UnknownKey { fingerprint }) => Err(IbError::UnknownKey {
            url: sig_url.to_owned(),
            fingerprint,
        }),
        Err(error) => Err(invalid(error)),
    }
}

/// The 1-based line number of byte `offset`.
fn line_of(bytes: &[u8], offset: usize) -> usize {
    bytes
        .get(..offset)
        .map_or(0, |head| head.iter().filter(|b| **b == b'\n').count())
        .saturating_add(1)
}

/// 16 random hex digits for temporary names.
fn random_id() -> Result<String, IbError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|error| {
        IbError::io(
            "name a temporary file in",
            PathBuf::from("tmp"),
            io::Error::other(error.to_string()),
        )
    })?;
    Ok(hex::encode(bytes))
}

/// Shared state behind every clone of the cache and every lease.
struct Inner {
    root: PathBuf,
    fetcher: Fetcher,
    keys: Keyring,
    budget: u64,
    download_limit: u64,
    limits: UnpackLimits,
    state: Mutex<State>,
    /// One lock per version/target/subtarget with an acquire in progress.
    flights: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    scanned: OnceCell<()>,
    /// Reuses, downloads and evictions since start (for `/metrics`).
    hits: AtomicU64,
    downloads: AtomicU64,
    evictions: AtomicU64,
}

/// The cached entries, by directory name.
#[derive(Debug, Default)]
struct State {
    entries: HashMap<String, Entry>,
    /// Logical clock for last use; larger is more recent.
    clock: u64,
}

impl State {
    fn total(&self) -> u64 {
        self.entries
            .values()
            .fold(0u64, |total, entry| total.saturating_add(entry.size))
    }

    fn tick(&mut self) -> u64 {
        self.clock = self.clock.saturating_add(1);
        self.clock
    }
}

#[derive(Debug)]
struct Entry {
    /// version/target/subtarget.
    key: String,
    archive_name: String,
    archive_sha256: String,
    /// Unpacked size in bytes.
    size: u64,
    last_used: u64,
    leases: usize,
}

/// Everything the blocking install step needs.
struct Install {
    spec: IbSpec,
    listing: ArchiveListing,
    name: String,
    archive: TempPath,
    staging: TempPath,
}

impl Inner {
    fn lock_state(&self) -> MutexGuard<'_, State> {
        // The state stays consistent across a panic (every update is a single assignment), so a
        // poisoned lock is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn flight(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(flights.entry(key.to_owned()).or_default())
    }

    /// Forget the flight lock of `key` once nobody else holds it.
    fn end_flight(&self, key: &str, flight: Arc<tokio::sync::Mutex<()>>) {
        let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        // Two references: the map's and ours. Clones are only taken under this lock.
        if Arc::strong_count(&flight) == 2 {
            flights.remove(key);
        }
    }

    /// Lease the most recently used entry of `key`, if any.
    fn lease_latest(self: &Arc<Self>, key: &str) -> Option<Lease> {
        let name = {
            let state = self.lock_state();
            state
                .entries
                .iter()
                .filter(|(_, entry)| entry.key == key)
                .max_by_key(|(_, entry)| entry.last_used)
                .map(|(name, _)| name.clone())
        }?;
        self.lease_named(&name)
    }

    /// Lease the entry called `name`, if cached, and record the use.
    fn lease_named(self: &Arc<Self>, name: &str) -> Option<Lease> {
        let lease = {
            let mut state = self.lock_state();
            let now = state.tick();
            let entry = state.entries.get_mut(name)?;
            entry.last_used = now;
            entry.leases = entry.leases.saturating_add(1);
            self.make_lease(name, entry)
        };
        let marker = self.entry_dir(name).join(MARKER);
        // Persist the use for the next start; losing it only makes eviction order less exact.
        tokio::task::spawn_blocking(move || {
            if let Err(error) = touch(&marker) {
                tracing::warn!(path = %marker.display(), "could not record ImageBuilder use: {error}");
            }
        });
        Some(lease)
    }

    fn make_lease(self: &Arc<Self>, name: &str, entry: &Entry) -> Lease {
        Lease {
            dir: self.entry_dir(name).join(TREE),
            archive_sha256: entry.archive_sha256.clone(),
            archive_name: entry.archive_name.clone(),
            archive: self.entry_dir(name).join(ARCHIVE),
            _pin: Pin {
                inner: Arc::clone(self),
                name: name.to_owned(),
            },
        }
    }

    fn entry_dir(&self, name: &str) -> PathBuf {
        self.root.join("entries").join(name)
    }

    /// Unpack, write the marker, rename into place, register (leased), evict. Blocking.
    fn install(self: Arc<Self>, install: Install) -> Result<Lease, IbError> {
        let Install {
            spec,
            listing,
            name,
            archive,
            staging,
        } = install;
        create_dir(staging.path())?;
        let tree = staging.path().join(TREE);
        let size = unpack::unpack(
            archive.path(),
            &listing.name,
            listing.compression,
            &tree,
            self.limits,
        )?;
        // The archive stays beside its tree so that the main server can hand it to remote
        // workers; it counts towards the disk budget.
        let kept = staging.path().join(ARCHIVE);
        let archive_len = fs_len(archive.path());
        rename(archive.path(), &kept)?;
        archive.disarm();
        let size = size.saturating_add(archive_len);
        let marker = Marker {
            key: spec.key(),
            archive_name: listing.name,
            archive_sha256: listing.sha256,
            size,
        };
        write_synced(&staging.path().join(MARKER), marker.to_text().as_bytes())?;

        let final_dir = self.entry_dir(&name);
        let (lease, victims) = {
            let mut state = self.lock_state();
            if final_dir.exists() {
                // A leftover that is not registered (registered entries were checked before the
                // download under the same single-flight lock): replace it.
                let trash = self.trash_path()?;
                rename(&final_dir, &trash)?;
                remove_tree(&trash);
            }
            rename(staging.path(), &final_dir)?;
            staging.disarm();
            let now = state.tick();
            let entry = Entry {
                key: marker.key,
                archive_name: marker.archive_name,
                archive_sha256: marker.archive_sha256,
                size,
                last_used: now,
                leases: 1,
            };
            let lease = self.make_lease(&name, &entry);
            state.entries.insert(name, entry);
            let victims = self.evict(&mut state);
            (lease, victims)
        };
        for victim in victims {
            remove_tree(&victim);
        }
        tracing::info!(dir = %lease.dir.display(), bytes = size, "ImageBuilder installed");
        Ok(lease)
    }

    /// Remove least-recently-used unleased entries while over budget; returns their new paths in
    /// `tmp/` for deletion after the lock is released. Each is renamed away under the lock, so no
    /// acquire can lease an entry that is being deleted.
    fn evict(&self, state: &mut State) -> Vec<PathBuf> {
        let mut total = state.total();
        let mut candidates: Vec<(u64, String, u64)> = state
            .entries
            .iter()
            .filter(|(_, entry)| entry.leases == 0)
            .map(|(name, entry)| (entry.last_used, name.clone(), entry.size))
            .collect();
        candidates.sort();
        let mut victims = Vec::new();
        for (_, name, size) in candidates {
            if total <= self.budget {
                break;
            }
            let dir = self.entry_dir(&name);
            let moved = self
                .trash_path()
                .and_then(|trash| rename(&dir, &trash).map(|()| trash));
            match moved {
                Ok(trash) => {
                    state.entries.remove(&name);
                    total = total.saturating_sub(size);
                    tracing::info!(entry = %name, bytes = size, "ImageBuilder evicted");
                    self.evictions.fetch_add(1, Ordering::Relaxed);
                    victims.push(trash);
                }
                Err(error) => tracing::warn!("could not evict ImageBuilder: {error}"),
            }
        }
        victims
    }

    fn trash_path(&self) -> Result<PathBuf, IbError> {
        Ok(self
            .root
            .join("tmp")
            .join(format!("evicted-{}", random_id()?)))
    }

    /// Start-up: create the directories, empty `tmp/`, register complete entries (ordered by
    /// their markers' modification times), delete anything else, and evict over budget.
    fn scan(self: Arc<Self>) -> Result<(), IbError> {
        let entries_dir = self.root.join("entries");
        let tmp = self.root.join("tmp");
        for dir in [&self.root, &entries_dir, &tmp] {
            fs::create_dir_all(dir).map_err(|error| IbError::io("create directory", dir, error))?;
        }
        for leftover in read_dir(&tmp)? {
            remove_tree(&leftover);
        }
        let mut found = Vec::new();
        for dir in read_dir(&entries_dir)? {
            let marker_path = dir.join(MARKER);
            let marker = fs::read_to_string(&marker_path)
                .ok()
                .and_then(|text| Marker::parse(&text));
            let name = dir
                .file_name()
                .and_then(|name| name.to_str())
                .map(str::to_owned);
            match (marker, name) {
                (Some(marker), Some(name)) => {
                    let used = fs::metadata(&marker_path)
                        .and_then(|meta| meta.modified())
                        .unwrap_or(SystemTime::UNIX_EPOCH);
                    found.push((used, name, marker));
                }
                _ => {
                    tracing::warn!(dir = %dir.display(), "removing incomplete ImageBuilder");
                    remove_tree(&dir);
                }
            }
        }
        found.sort_by_key(|(used, _, _)| *used);
        let victims = {
            let mut state = self.lock_state();
            for (_, name, marker) in found {
                let now = state.tick();
                state.entries.insert(
                    name,
                    Entry {
                        key: marker.key,
                        archive_name: marker.archive_name,
                        archive_sha256: marker.archive_sha256,
                        size: marker.size,
                        last_used: now,
                        leases: 0,
                    },
                );
            }
            self.evict(&mut state)
        };
        for victim in victims {
            remove_tree(&victim);
        }
        Ok(())
    }
}

/// Keeps one entry from eviction; released on drop.
struct Pin {
    inner: Arc<Inner>,
    name: String,
}

impl Drop for Pin {
    fn drop(&mut self) {
        let mut state = self.inner.lock_state();
        if let Some(entry) = state.entries.get_mut(&self.name) {
            entry.leases = entry.leases.saturating_sub(1);
        }
    }
}

/// The size of the file at `path`, 0 when it cannot be read (it was just written by us).
fn fs_len(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map_or(0, |metadata| metadata.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_of_counts_newlines_before_offset() {
        assert_eq!(line_of(b"a\nb\nc", 0), 1);
        assert_eq!(line_of(b"a\nb\nc", 4), 3);
    }
}
