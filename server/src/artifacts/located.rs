//! What the store hands out: [`Located`] answers to `/store/` paths, [`Entry`] for the
//! collector, [`JobFiles`] on local disk.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path as Key;
use object_store::{GetOptions, GetRange, ObjectStore};

use super::error::ArtifactError;

/// What `/store/<path>` leads to.
#[derive(Debug)]
#[non_exhaustive]
pub enum Located {
    /// A local file, opened without following links.
    File(std::fs::File),
    /// An object of a complete result, streamed from the bucket.
    Object(StoredObject),
    /// The object's public URL (`[store] public_url`): answer `302 Found` there.
    Redirect(String),
}

/// An object of a complete result, as its completion marker lists it.
#[derive(Debug)]
pub struct StoredObject {
    pub(super) store: Arc<dyn ObjectStore>,
    pub(super) key: Key,
    pub(super) size: u64,
}

impl StoredObject {
    /// Its length in bytes, from the marker.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// `count` bytes from `start` (one ranged GET), as they arrive.
    pub async fn stream(
        &self,
        start: u64,
        count: u64,
    ) -> Result<BoxStream<'static, Result<Bytes, ArtifactError>>, ArtifactError> {
        if count == 0 {
            return Ok(futures_util::stream::empty().boxed());
        }
        let options = GetOptions {
            range: Some(GetRange::Bounded(start..start.saturating_add(count))),
            ..GetOptions::default()
        };
        let read_error = |key: &Key, source| ArtifactError::Object {
            action: "read",
            key: key.to_string(),
            source,
        };
        let result = self
            .store
            .get_opts(&self.key, options)
            .await
            .map_err(|source| read_error(&self.key, source))?;
        let key = self.key.clone();
        Ok(result
            .into_stream()
            .map_err(move |source| read_error(&key, source))
            .boxed())
    }
}

/// One top-level entry of the store as the collector sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its name: a request hash, or a staging name (`.incoming-*`, `.old-*`, `.fetch-*`).
    pub name: String,
    /// Where it is, for messages: a directory, or `s3://<bucket>/<key prefix>`.
    pub location: PathBuf,
    /// When it last changed (for an object store, its newest object).
    pub modified: SystemTime,
    /// Whether it is a whole result: always for a directory (it is renamed into place), only
    /// with its completion marker in an object store.
    pub complete: bool,
}

/// A job's files in a local directory: the job directory itself, or a temporary copy fetched
/// from the object store that is deleted when this is dropped.
#[derive(Debug)]
pub struct JobFiles {
    dir: PathBuf,
    temporary: bool,
}

impl JobFiles {
    pub(super) fn in_place(dir: PathBuf) -> Self {
        Self {
            dir,
            temporary: false,
        }
    }

    pub(super) fn temporary(dir: PathBuf) -> Self {
        Self {
            dir,
            temporary: true,
        }
    }

    /// The directory holding the files under their published names.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for JobFiles {
    fn drop(&mut self) {
        // A leftover copy is harmless: its `.fetch-` name makes the collector reap it.
        if self.temporary {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
