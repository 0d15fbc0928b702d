//! In-memory views of the two hot read paths of channels, so that they answer at the rate of
//! `GET /api/v1/build/{hash}` (which answers from memory too) instead of going to the disk or
//! the database on every request:
//!
//! - [`PublishedFiles`]: the published metadata files served under `/channels/`
//!   (`channels.json`, indexes, their signatures, `keys/`) as shared bytes with their `ETag` and
//!   `Last-Modified`. Pool images are never held: they are streamed from disk.
//! - [`TreeCache`]: the admin API's `GET /api/v1/admin/channels`, the tree encoded once per
//!   change instead of loaded and serialised per request.
//!
//! # Why serving published files from memory is correct
//!
//! A publication ([`crate::channels::publish`]) never rewrites a file under a name a reader
//! can already see: indexes are named after their serial (`index.<serial>.json`), each
//! publication's `channels.json` lives in its own `meta/<serial>/`, pool files are
//! content-addressed, and the delegation and revocation files under `keys/` are replaced
//! before the switch. What changes is the meaning of the names that go through the `current`
//! link (`channels.json`, `channels.json.sig`), and that changes only with the one rename that
//! switches `current` to a new publication. So the published tree has a *generation*: the
//! `current` link itself, identified by its target and by the link's own inode and
//! modification time (the switch renames a new link over the old one, so both change even if
//! a serial were ever reused). Within one generation every cached file is exactly what the
//! disk holds.
//!
//! The generation is read (one `lstat` and one `readlink` of `current`, on the blocking pool)
//! at most every [`REVALIDATE_EVERY`] by whichever request finds it due, and at once after a
//! publication by this process ([`PublishedFiles::refresh`]). When it differs, every cached file
//! is dropped and read again on demand. A publication by another process or host sharing the
//! directory is therefore served within [`REVALIDATE_EVERY`]; until then readers get the
//! previous publication, whose indexes and images stay on disk for `orphan_grace` after the
//! switch (only [`crate::channels::publish::reap`] removes them, and never sooner), so a reader
//! of the slightly older `channels.json` still finds everything it names.
//!
//! A file read from disk concurrently with a switch must not be cached under the wrong
//! generation. Two rules prevent it: a file is cached only if no revalidation happened while it
//! was being read (the `epoch` counter), and a file reached through a link (`channels.json`
//! → `current/…` → `meta/<serial>/…`) is cached only if it resolved into the generation the
//! cache holds; otherwise it is served once uncached and the generation is re-read on the next
//! request. So `channels.json` and `channels.json.sig` always come from the same publication.
//!
//! Memory is bounded: a file larger than [`MAX_CACHED_FILE`] is streamed, and the cache drops
//! everything when it would grow past [`MAX_CACHE_BYTES`] (the working set of a server is
//! `channels.json` and one index per device, far below that).
//!
//! # The admin tree
//!
//! Every committed channel change goes through [`crate::channels::apply::apply`] and raises the
//! store's [`TREE_REVISION_KEY`] counter in the same transaction. [`TreeCache`] keeps the tree
//! encoded with the revision it was read at; an answer is reused while the counter has not
//! moved. The counter is read at most every [`REVALIDATE_EVERY`] (a change committed by another
//! process or host shows within that), and a change committed by this process marks the cache
//! stale at once ([`TreeCache::invalidate`]), so an operator of this server reads their own
//! writes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use axum::http::HeaderValue;
use bytes::Bytes;

use crate::store::StoreError;
use crate::store::channel_store::{ChannelStore, TREE_REVISION_KEY};

/// How stale a cached view may get behind a change made by another process or host.
pub const REVALIDATE_EVERY: Duration = Duration::from_secs(1);

/// Largest file held in memory (the largest metadata file a router accepts); larger ones are
/// streamed from disk.
pub const MAX_CACHED_FILE: u64 = attendant_proto::channel::MAX_CHANNELS_LEN as u64;

/// Most bytes the cached files may take together (bodies, paths and a per-entry allowance).
pub const MAX_CACHE_BYTES: usize = 64 << 20;

/// What an entry costs besides its body and path: the map slot, the headers, the `Arc`.
const ENTRY_OVERHEAD: usize = 256;

/// Longest path served, in bytes.
const MAX_PATH_LEN: usize = 1024;

/// Where the pool's images are, as a `/channels/` path prefix.
const POOL_PREFIX: &str = "pool/";

/// The link naming the current publication (see [`crate::channels::publish`]).
const CURRENT: &str = "current";

/// Both cached views, shared by every request of a process (one in [`crate::state::AppState`]).
#[derive(Debug, Default)]
pub struct ChannelCache {
    /// The published metadata files.
    pub files: PublishedFiles,
    /// The admin API's encoded tree.
    pub tree: TreeCache,
}

/// A published file held in memory, with the validators `/channels/` sends.
#[derive(Debug)]
pub struct CachedFile {
    /// The whole file, shared by every response.
    pub body: Bytes,
    /// `ETag`: the file's size and modification time, as for files streamed from disk.
    pub etag: HeaderValue,
    /// `Last-Modified`.
    pub last_modified: HeaderValue,
}

/// Makes a file's `ETag` and `Last-Modified` from its size and modification time: the HTTP
/// layer's own, so a file has the same validators whether it is answered from memory or disk.
pub type MakeValidators = fn(u64, SystemTime) -> Option<(HeaderValue, HeaderValue)>;

/// How a `/channels/` path is answered.
#[derive(Debug)]
pub enum Served {
    /// From memory.
    Cached(Arc<CachedFile>),
    /// Streamed from this open regular file (a pool image, or a file too large to hold).
    Disk(std::fs::File),
}

/// The identity of the current publication: the `current` link's target, inode and
/// modification time.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Generation {
    target: PathBuf,
    device: u64,
    inode: u64,
    modified_ns: i128,
}

impl Generation {
    /// The generation of the tree at `root`; `None` before the first publication.
    fn read(root: &Path) -> Option<Self> {
        use std::os::unix::fs::MetadataExt as _;
        let link = root.join(CURRENT);
        let metadata = std::fs::symlink_metadata(&link).ok()?;
        let target = std::fs::read_link(&link).ok()?;
        Some(Self {
            target,
            device: metadata.dev(),
            inode: metadata.ino(),
            modified_ns: i128::from(metadata.mtime()) * 1_000_000_000
                + i128::from(metadata.mtime_nsec()),
        })
    }
}

/// The published metadata files in memory (see the module docs for why it is correct).
#[derive(Debug)]
pub struct PublishedFiles {
    inner: Mutex<FilesInner>,
    /// Milliseconds since `started` (plus one) of the last revalidation; 0: due now.
    checked: AtomicU64,
    started: Instant,
}

#[derive(Debug, Default)]
struct FilesInner {
    /// Grows whenever the cached files are dropped for another generation.
    epoch: u64,
    generation: Option<Generation>,
    files: HashMap<String, Arc<CachedFile>>,
    bytes: usize,
}

impl Default for PublishedFiles {
    fn default() -> Self {
        Self {
            inner: Mutex::default(),
            checked: AtomicU64::new(0),
            started: Instant::now(),
        }
    }
}

/// A file read from disk for a cache miss.
enum Loaded {
    /// Small enough to hold; `real` is where its path led.
    Whole {
        file: Arc<CachedFile>,
        real: PathBuf,
        root: PathBuf,
    },
    /// Too large to hold.
    Open(std::fs::File),
}

impl PublishedFiles {
    /// The file at `relative` under the tree at `root`, if it is a path of plain names that
    /// leads to a regular file inside `root` (pool files without following any link).
    pub async fn serve(
        &self,
        root: &Path,
        relative: &str,
        validators: MakeValidators,
    ) -> Option<Served> {
        if !is_plain(relative) {
            return None;
        }
        if relative.starts_with(POOL_PREFIX) {
            // Images are large and each is fetched rarely: one blocking resolve and open,
            // streamed, never held.
            let root = root.to_owned();
            let relative = relative.to_owned();
            return tokio::task::spawn_blocking(move || {
                crate::artifacts::open_beneath(&root, &relative)
            })
            .await
            .ok()
            .flatten()
            .map(Served::Disk);
        }
        self.revalidate_if_due(root).await;
        let (epoch, generation) = {
            let inner = self.lock();
            if let Some(file) = inner.files.get(relative) {
                return Some(Served::Cached(file.clone()));
            }
            (inner.epoch, inner.generation.clone())
        };
        let loaded = {
            let root = root.to_owned();
            let relative = relative.to_owned();
            tokio::task::spawn_blocking(move || load(&root, &relative, validators))
                .await
                .ok()
                .flatten()?
        };
        let (file, real, real_root) = match loaded {
            Loaded::Open(file) => return Some(Served::Disk(file)),
            Loaded::Whole { file, real, root } => (file, real, root),
        };
        let direct = real == real_root.join(relative);
        let in_generation = generation
            .as_ref()
            .is_some_and(|generation| real.starts_with(real_root.join(&generation.target)));
        if direct || in_generation {
            let mut inner = self.lock();
            if inner.epoch == epoch {
                inner.insert(relative, file.clone());
            }
        } else {
            // The link led into a publication the cache has not seen yet: look again on the
            // next request.
            self.checked.store(0, Ordering::Release);
        }
        Some(Served::Cached(file))
    }

    /// Drops every cached file and re-reads the generation now: called after this process
    /// published, so its own publication is served from the next request on. Whoever rewrites
    /// published files in place behind the server's back (which the publisher never does, see
    /// the module docs) must call it too.
    pub async fn refresh(&self, root: &Path) {
        let now = self.now_ms();
        self.checked.store(now, Ordering::Release);
        self.revalidate(root, true).await;
    }

    /// Re-reads the generation if the last look is [`REVALIDATE_EVERY`] old; one request does
    /// it while the others go on with what is cached.
    async fn revalidate_if_due(&self, root: &Path) {
        let now = self.now_ms();
        let last = self.checked.load(Ordering::Acquire);
        let every = u64::try_from(REVALIDATE_EVERY.as_millis()).unwrap_or(u64::MAX);
        if last != 0 && now.saturating_sub(last) < every {
            return;
        }
        if self
            .checked
            .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        self.revalidate(root, false).await;
    }

    /// Reads the generation; drops the cached files if it changed or `flush` says so.
    async fn revalidate(&self, root: &Path, flush: bool) {
        let seen = {
            let root = root.to_owned();
            tokio::task::spawn_blocking(move || Generation::read(&root))
                .await
                .ok()
                .flatten()
        };
        let mut inner = self.lock();
        if flush || inner.generation != seen {
            inner.epoch = inner.epoch.wrapping_add(1);
            inner.files.clear();
            inner.bytes = 0;
            inner.generation = seen;
        }
    }

    /// Milliseconds since this cache was made, never 0 (0 marks "due").
    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FilesInner> {
        // The map is consistent after every statement, so a panic elsewhere leaves it usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl FilesInner {
    fn insert(&mut self, relative: &str, file: Arc<CachedFile>) {
        let cost = file.body.len() + relative.len() + ENTRY_OVERHEAD;
        if self.bytes.saturating_add(cost) > MAX_CACHE_BYTES {
            self.files.clear();
            self.bytes = 0;
        }
        if let Some(previous) = self.files.insert(relative.to_owned(), file) {
            self.bytes = self
                .bytes
                .saturating_sub(previous.body.len() + relative.len() + ENTRY_OVERHEAD);
        }
        self.bytes = self.bytes.saturating_add(cost);
    }
}

/// Whether `relative` is a path of plain names: none empty or starting with a dot (so neither
/// `..` nor the publisher's temporary files match), no backslash, no NUL, not too long.
fn is_plain(relative: &str) -> bool {
    !relative.is_empty()
        && relative.len() <= MAX_PATH_LEN
        && relative
            .split('/')
            .all(|part| !part.is_empty() && !part.starts_with('.') && !part.contains(['\\', '\0']))
}

/// The file behind `relative` (links followed, see [`resolve`]), read whole if it is small
/// enough, otherwise left open for streaming.
fn load(root: &Path, relative: &str, validators: MakeValidators) -> Option<Loaded> {
    use std::io::Read as _;
    let (real, real_root) = resolve(root, relative)?;
    let mut file = std::fs::File::open(&real).ok()?;
    let metadata = file.metadata().ok()?;
    if !metadata.is_file() {
        return None;
    }
    if metadata.len() > MAX_CACHED_FILE {
        return Some(Loaded::Open(file));
    }
    let modified = metadata.modified().ok()?;
    let mut body = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    (&mut file)
        .take(MAX_CACHED_FILE)
        .read_to_end(&mut body)
        .ok()?;
    let length = u64::try_from(body.len()).unwrap_or(u64::MAX);
    let (etag, last_modified) = validators(length, modified)?;
    Some(Loaded::Whole {
        file: Arc::new(CachedFile {
            body: Bytes::from(body),
            etag,
            last_modified,
        }),
        real,
        root: real_root,
    })
}

/// Where `relative` leads under `root` (links followed) and the real root, if it is a path of
/// plain names that leads to a regular file inside `root`.
fn resolve(root: &Path, relative: &str) -> Option<(PathBuf, PathBuf)> {
    if !is_plain(relative) {
        return None;
    }
    let real_root = std::fs::canonicalize(root).ok()?;
    let real = std::fs::canonicalize(root.join(relative)).ok()?;
    let metadata = std::fs::metadata(&real).ok()?;
    (real.starts_with(&real_root) && metadata.is_file()).then_some((real, real_root))
}

/// Why the admin tree could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// The store failed.
    #[error("the channel store failed")]
    Store(#[from] StoreError),
    /// The tree could not be encoded.
    #[error("cannot encode the channel tree: {0}")]
    Encode(#[from] serde_json::Error),
}

/// The admin API's tree, encoded once per change (see the module docs).
#[derive(Debug)]
pub struct TreeCache {
    entry: RwLock<Option<Arc<TreeEntry>>>,
    /// One reload at a time; the others wait for its result.
    reload: tokio::sync::Mutex<()>,
    /// Grows with every change committed by this process.
    local: AtomicU64,
    started: Instant,
}

#[derive(Debug)]
struct TreeEntry {
    /// The store's tree revision the body was read at (or after).
    revision: u64,
    /// [`TreeCache::local`] when the revision was read.
    local: u64,
    /// When the revision was read, in milliseconds since `started`.
    checked_ms: u64,
    body: Bytes,
}

impl Default for TreeCache {
    fn default() -> Self {
        Self {
            entry: RwLock::default(),
            reload: tokio::sync::Mutex::new(()),
            local: AtomicU64::new(0),
            started: Instant::now(),
        }
    }
}

impl TreeCache {
    /// The tree (every channel in name order) as JSON.
    pub async fn encoded(&self, store: &dyn ChannelStore) -> Result<Bytes, TreeError> {
        if let Some(body) = self.fresh() {
            return Ok(body);
        }
        let _reload = self.reload.lock().await;
        if let Some(body) = self.fresh() {
            return Ok(body);
        }
        // Read before the revision: a change committed meanwhile leaves an entry that looks
        // stale, never one that looks fresh.
        let local = self.local.load(Ordering::Acquire);
        let checked_ms = self.now_ms();
        let revision = store.counter(TREE_REVISION_KEY).await?;
        let previous = self.read_entry();
        let body = match previous {
            Some(previous) if previous.revision == revision => previous.body.clone(),
            _ => Bytes::from(serde_json::to_vec(&store.load_tree().await?)?),
        };
        *self.entry.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(TreeEntry {
            revision,
            local,
            checked_ms,
            body: body.clone(),
        }));
        Ok(body)
    }

    /// Marks the cached tree stale: called after this process committed a change.
    pub fn invalidate(&self) {
        self.local.fetch_add(1, Ordering::AcqRel);
    }

    fn fresh(&self) -> Option<Bytes> {
        let entry = self.read_entry()?;
        let every = u64::try_from(REVALIDATE_EVERY.as_millis()).unwrap_or(u64::MAX);
        (entry.local == self.local.load(Ordering::Acquire)
            && self.now_ms().saturating_sub(entry.checked_ms) < every)
            .then(|| entry.body.clone())
    }

    fn read_entry(&self) -> Option<Arc<TreeEntry>> {
        self.entry
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_only_regular_files_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tree");
        std::fs::create_dir_all(root.join("meta/3")).unwrap();
        std::fs::write(root.join("meta/3/channels.json"), "{}").unwrap();
        std::fs::write(dir.path().join("secret"), "x").unwrap();
        std::fs::write(root.join(".channels.json.tmp-1"), "x").unwrap();
        std::os::unix::fs::symlink("meta/3", root.join("current")).unwrap();
        std::os::unix::fs::symlink("current/channels.json", root.join("channels.json")).unwrap();
        std::os::unix::fs::symlink("../secret", root.join("escape")).unwrap();
        assert!(resolve(&root, "channels.json").is_some());
        assert!(resolve(&root, "escape").is_none());
        assert!(resolve(&root, "meta/3/channels.json").is_some());
        assert!(resolve(&root, "meta/3").is_none(), "a directory");
        assert!(resolve(&root, "../secret").is_none());
        assert!(resolve(&root, ".channels.json.tmp-1").is_none());
        assert!(resolve(&root, "meta//3/channels.json").is_none());
        assert!(resolve(&root, "missing.json").is_none());
    }

    /// Publishes `serial` the way the publisher does: a new `meta/<serial>/` and one rename of
    /// a fresh `current` link over the old one.
    fn switch(root: &Path, serial: u64) {
        let meta = root.join("meta").join(serial.to_string());
        std::fs::create_dir_all(&meta).unwrap();
        std::fs::write(
            meta.join("channels.json"),
            format!("{{\"serial\":{serial}}}"),
        )
        .unwrap();
        let staged = root.join(".current.tmp");
        std::os::unix::fs::symlink(format!("meta/{serial}"), &staged).unwrap();
        std::fs::rename(&staged, root.join(CURRENT)).unwrap();
    }

    fn validators(length: u64, _: SystemTime) -> Option<(HeaderValue, HeaderValue)> {
        Some((HeaderValue::from(length), HeaderValue::from_static("then")))
    }

    async fn body(files: &PublishedFiles, root: &Path, relative: &str) -> Vec<u8> {
        match files.serve(root, relative, validators).await {
            Some(Served::Cached(file)) => file.body.to_vec(),
            other => panic!("{relative}: {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_switch_is_seen_after_a_refresh_and_links_stay_in_their_generation() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        switch(root, 1);
        std::os::unix::fs::symlink("current/channels.json", root.join("channels.json")).unwrap();
        let files = PublishedFiles::default();
        assert_eq!(body(&files, root, "channels.json").await, b"{\"serial\":1}");
        // Behind the cache's back: still the old generation until it looks again…
        switch(root, 2);
        assert_eq!(body(&files, root, "channels.json").await, b"{\"serial\":1}");
        // …but a link that now leads into the unseen generation is not cached.
        assert_eq!(
            body(&files, root, "current/channels.json").await,
            b"{\"serial\":2}"
        );
        assert_eq!(body(&files, root, "channels.json").await, b"{\"serial\":2}");
        switch(root, 3);
        files.refresh(root).await;
        assert_eq!(body(&files, root, "channels.json").await, b"{\"serial\":3}");
        // Immutable names are served whatever the generation.
        assert_eq!(
            body(&files, root, "meta/1/channels.json").await,
            b"{\"serial\":1}"
        );
        assert!(
            files
                .serve(root, "meta/9/channels.json", validators)
                .await
                .is_none()
        );
        assert!(
            files
                .serve(root, "meta/../channels.json", validators)
                .await
                .is_none()
        );
    }

    #[test]
    fn the_cache_stays_within_its_budget() {
        let mut inner = FilesInner::default();
        let file = Arc::new(CachedFile {
            body: Bytes::from(vec![0; 1 << 20]),
            etag: HeaderValue::from_static("\"x\""),
            last_modified: HeaderValue::from_static("x"),
        });
        for n in 0..200 {
            inner.insert(&format!("index.{n}.json"), file.clone());
            assert!(inner.bytes <= MAX_CACHE_BYTES);
        }
        assert!(inner.files.len() < 64, "{}", inner.files.len());
        assert!(inner.files.contains_key("index.199.json"));
    }
}
