//! The S3-compatible backend: keys `<prefix><request_hash>/<file>`, made visible by a completion
//! marker.
//!
//! Publishing a result:
//! 1. delete the old marker, if any (from then on readers see no result), then every other
//!    object under `<prefix><request_hash>/` (the expired result's files);
//! 2. upload each file, streamed from disk while its SHA-256 is computed: files up to
//!    [`PART_SIZE`] in one PUT, bigger ones as a multipart upload of [`PART_SIZE`] parts (at most
//!    [`PARTS_IN_FLIGHT`] at a time), aborted on failure;
//! 3. PUT the marker `<prefix><request_hash>/.complete`, a JSON document
//!    `{"files": [{"name": "…", "size": 123, "sha256": "…"}]}`.
//!
//! A reader serves only names the marker lists, with the marker's size. A publisher that dies
//! between 1 and 3 leaves objects without a marker: never served, and reaped by the collector
//! after the orphan grace period. A multipart upload cut off half-way leaves no object at all,
//! only parts the bucket keeps until it is aborted; the upload is aborted on every error we see,
//! and a bucket lifecycle rule (`AbortIncompleteMultipartUpload`,
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/mpu-abort-incomplete-mpu-lifecycle-config.html>)
//! clears those of a killed process.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::error::ArtifactError;
use super::located::{Entry, Located, StoredObject};
use crate::config::StoreConfig;

/// The name of the completion marker inside a result's key prefix.
pub(super) const MARKER: &str = ".complete";

/// Size of one multipart part, and the largest file sent in one PUT (S3 wants parts of at least
/// 5 MiB but the last).
pub(super) const PART_SIZE: usize = 8 * 1024 * 1024;

/// Parts of one file uploaded at the same time.
pub(super) const PARTS_IN_FLIGHT: usize = 4;

/// Largest completion marker read, in bytes.
pub(super) const MAX_MARKER_LEN: u64 = 1024 * 1024;

/// Largest credentials file read, in bytes.
const MAX_CREDENTIALS_LEN: u64 = 64 * 1024;

/// Bytes read from disk at a time while uploading.
const READ_CHUNK: usize = 256 * 1024;

/// A result's completion marker.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Marker {
    files: Vec<MarkedFile>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct MarkedFile {
    /// `/`-separated path below the result's prefix.
    name: String,
    size: u64,
    /// Lowercase hex.
    sha256: String,
}

/// The credentials file (`[store] credentials_file`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    access_key_id: String,
    secret_access_key: String,
    #[serde(default)]
    session_token: Option<String>,
}

/// A bucket (and key prefix) holding results.
#[derive(Debug)]
pub(crate) struct ObjectArtifacts {
    store: Arc<dyn ObjectStore>,
    bucket: String,
    prefix: Vec<String>,
    public_url: Option<String>,
}

impl ObjectArtifacts {
    /// The bucket `[store]` names; credentials from its `credentials_file` or the environment.
    pub(super) fn open(config: &StoreConfig) -> Result<Self, ArtifactError> {
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&config.bucket)
            .with_region(config.region_or_default())
            .with_allow_http(config.allow_http);
        if !config.endpoint.is_empty() {
            builder = builder
                .with_endpoint(config.endpoint.trim_end_matches('/'))
                .with_virtual_hosted_style_request(false);
        }
        if let Some(path) = &config.credentials_file {
            let credentials = read_credentials(path)?;
            builder = builder
                .with_access_key_id(credentials.access_key_id)
                .with_secret_access_key(credentials.secret_access_key);
            if let Some(token) = credentials.session_token {
                builder = builder.with_token(token);
            }
        }
        // The builder's message names the missing setting, never a credential's value.
        let store = builder.build().map_err(|error| ArtifactError::Setup {
            reason: error.to_string(),
        })?;
        Ok(Self {
            store: Arc::new(store),
            bucket: config.bucket.clone(),
            prefix: config
                .prefix_components()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            public_url: (!config.public_url.is_empty())
                .then(|| config.public_url.trim_end_matches('/').to_owned()),
        })
    }

    /// The key of `parts` below the prefix.
    fn key<'a>(&'a self, parts: impl IntoIterator<Item = &'a str>) -> Key {
        Key::from_iter(self.prefix.iter().map(String::as_str).chain(parts))
    }

    fn location(&self, key: &Key) -> PathBuf {
        PathBuf::from(format!("s3://{}/{key}", self.bucket))
    }

    /// The marker of `hash`, if it has a readable one.
    async fn marker(&self, hash: &str) -> Result<Option<Marker>, ArtifactError> {
        let key = self.key([hash, MARKER]);
        let result = match self.store.get(&key).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(source) => return Err(object_error("read", &key, source)),
        };
        if result.meta.size > MAX_MARKER_LEN {
            return Err(corrupt(&key, format!("larger than {MAX_MARKER_LEN} bytes")));
        }
        let bytes = result
            .bytes()
            .await
            .map_err(|source| object_error("read", &key, source))?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|error| corrupt(&key, error.to_string()))
    }

    /// See [`super::Artifacts::locate`]; `components` are plain names.
    pub(super) async fn locate(this: &Arc<Self>, components: &[&str]) -> Option<Located> {
        let (hash, rest) = components.split_first()?;
        hash.parse::<attendant_proto::api::RequestHash>().ok()?;
        if rest.is_empty() {
            return None;
        }
        let name = rest.join("/");
        let marker = match this.marker(hash).await {
            Ok(marker) => marker?,
            Err(error) => {
                tracing::warn!(error = %crate::imagebuilder::error_chain(&error), "cannot read a completion marker");
                return None;
            }
        };
        let file = marker.files.iter().find(|file| file.name == name)?;
        if let Some(base) = &this.public_url {
            return Some(Located::Redirect(format!("{base}/{hash}/{name}")));
        }
        Some(Located::Object(StoredObject {
            store: Arc::clone(&this.store),
            key: this.key(components.iter().copied()),
            size: file.size,
        }))
    }

    /// Uploads `files` (below `output`) as the result of `hash`, marker last.
    pub(super) async fn publish(
        &self,
        output: &Path,
        files: &[PathBuf],
        hash: &attendant_proto::api::RequestHash,
    ) -> Result<(), ArtifactError> {
        let hash = hash.to_string();
        self.remove(&hash).await?;
        let mut marker = Marker { files: Vec::new() };
        for path in files {
            let name = relative_name(output, path)?;
            let key = self.key(std::iter::once(hash.as_str()).chain(name.split('/')));
            let (size, sha256) = self.upload(path, &key).await?;
            marker.files.push(MarkedFile { name, size, sha256 });
        }
        let key = self.key([hash.as_str(), MARKER]);
        let body = serde_json::to_vec(&marker).map_err(|error| corrupt(&key, error.to_string()))?;
        self.store
            .put(&key, PutPayload::from(body))
            .await
            .map_err(|source| object_error("write", &key, source))?;
        Ok(())
    }

    /// Streams the file at `path` to `key`; its size and SHA-256.
    async fn upload(&self, path: &Path, key: &Key) -> Result<(u64, String), ArtifactError> {
        let io = |action| super::local::io_error(action, path);
        let mut file = tokio::fs::File::open(path).await.map_err(io("open"))?;
        let length = file.metadata().await.map_err(io("inspect"))?.len();
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        if length <= PART_SIZE as u64 {
            let mut body = Vec::new();
            (&mut file)
                .take(PART_SIZE as u64 + 1)
                .read_to_end(&mut body)
                .await
                .map_err(io("read"))?;
            hasher.update(&body);
            size = body.len() as u64;
            self.store
                .put(key, PutPayload::from(body))
                .await
                .map_err(|source| object_error("write", key, source))?;
            return Ok((size, hex::encode(hasher.finalize())));
        }
        let upload = self
            .store
            .put_multipart(key)
            .await
            .map_err(|source| object_error("start the upload of", key, source))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut buffer = vec![0u8; READ_CHUNK];
        loop {
            let read = match file.read(&mut buffer).await {
                Ok(0) => break,
                Ok(read) => read,
                Err(source) => {
                    let _ = writer.abort().await;
                    return Err(io("read")(source));
                }
            };
            let chunk = buffer.get(..read).unwrap_or_default();
            hasher.update(chunk);
            size = size.saturating_add(read as u64);
            if let Err(source) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                let _ = writer.abort().await;
                return Err(object_error("upload", key, source));
            }
            writer.write(chunk);
        }
        writer
            .finish()
            .await
            .map_err(|source| object_error("finish the upload of", key, source))?;
        Ok((size, hex::encode(hasher.finalize())))
    }

    /// Deletes the result under `name`, marker first (so that no reader sees a half-deleted
    /// result); `Ok(false)` if there was nothing.
    pub(super) async fn remove(&self, name: &str) -> Result<bool, ArtifactError> {
        let marker = self.key([name, MARKER]);
        let prefix = self.key([name]);
        let mut objects: Vec<Key> = self
            .store
            .list(Some(&prefix))
            .map_ok(|object| object.location)
            .try_collect()
            .await
            .map_err(|source| object_error("list", &prefix, source))?;
        // The marker sorts first: it goes before anything it vouches for.
        objects.sort_by_key(|key| *key != marker);
        for key in &objects {
            match self.store.delete(key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(source) => return Err(object_error("delete", key, source)),
            }
        }
        Ok(!objects.is_empty())
    }

    /// The results under the prefix: one entry per first key component, complete when its
    /// marker exists, modified when its newest object was written.
    pub(super) async fn entries(&self) -> Result<Vec<Entry>, ArtifactError> {
        let prefix = self.key([]);
        let root = (!self.prefix.is_empty()).then_some(&prefix);
        let objects: Vec<_> = self
            .store
            .list(root)
            .try_collect()
            .await
            .map_err(|source| object_error("list", &prefix, source))?;
        let mut entries: Vec<Entry> = Vec::new();
        for object in objects {
            let Some(name) = object
                .location
                .prefix_match(&prefix)
                .and_then(|mut parts| parts.next().map(|part| part.as_ref().to_owned()))
            else {
                continue;
            };
            let modified = SystemTime::from(object.last_modified);
            let is_marker = object.location.filename() == Some(MARKER)
                && object.location.parts().count() == self.prefix.len() + 2;
            match entries.iter_mut().find(|entry| entry.name == name) {
                Some(entry) => {
                    entry.modified = entry.modified.max(modified);
                    entry.complete |= is_marker;
                }
                None => entries.push(Entry {
                    location: self.location(&self.key([name.as_str()])),
                    name,
                    modified,
                    complete: is_marker,
                }),
            }
        }
        Ok(entries)
    }

    /// Where `hash`'s objects are and their keys, sorted; `None` without objects.
    pub(super) async fn files_of(
        &self,
        hash: &str,
    ) -> Result<Option<(PathBuf, Vec<PathBuf>)>, ArtifactError> {
        let prefix = self.key([hash]);
        let mut files: Vec<PathBuf> = self
            .store
            .list(Some(&prefix))
            .map_ok(|object| self.location(&object.location))
            .try_collect()
            .await
            .map_err(|source| object_error("list", &prefix, source))?;
        files.sort();
        Ok((!files.is_empty()).then(|| (self.location(&prefix), files)))
    }

    /// Downloads the `names` of `hash`'s complete result into `dir`, checking each against the
    /// marker.
    pub(super) async fn fetch(
        &self,
        hash: &str,
        names: &[String],
        dir: &Path,
    ) -> Result<(), ArtifactError> {
        let marker_key = self.key([hash, MARKER]);
        let Some(marker) = self.marker(hash).await? else {
            return Err(corrupt(
                &marker_key,
                "the result is not complete".to_owned(),
            ));
        };
        for file in marker
            .files
            .iter()
            .filter(|file| names.contains(&file.name))
        {
            let Some(components) = super::plain_components(&file.name) else {
                return Err(corrupt(
                    &marker_key,
                    format!("lists the name `{}`", file.name),
                ));
            };
            let key = self.key(std::iter::once(hash).chain(components.iter().copied()));
            let mut path = dir.to_owned();
            path.extend(&components);
            if let Some(parent) = path.parent() {
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(super::local::io_error("create", parent))?;
            }
            let (size, sha256) = self.download(&key, &path).await?;
            if size != file.size || sha256 != file.sha256 {
                return Err(corrupt(
                    &key,
                    format!(
                        "{size} bytes with SHA-256 {sha256}, but the marker says {} bytes with {}",
                        file.size, file.sha256
                    ),
                ));
            }
        }
        Ok(())
    }

    async fn download(&self, key: &Key, path: &Path) -> Result<(u64, String), ArtifactError> {
        let io = |action| super::local::io_error(action, path);
        let result = self
            .store
            .get(key)
            .await
            .map_err(|source| object_error("read", key, source))?;
        let mut stream = result.into_stream();
        let mut file = tokio::fs::File::create(path).await.map_err(io("create"))?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|source| object_error("read", key, source))?;
            hasher.update(&chunk);
            size = size.saturating_add(chunk.len() as u64);
            file.write_all(&chunk).await.map_err(io("write"))?;
        }
        file.flush().await.map_err(io("write"))?;
        Ok((size, hex::encode(hasher.finalize())))
    }

    /// Bytes of every object under the prefix; 0 when the bucket cannot be listed.
    pub(super) async fn stored_bytes(&self) -> u64 {
        let prefix = self.key([]);
        let root = (!self.prefix.is_empty()).then_some(&prefix);
        self.store
            .list(root)
            .try_fold(0u64, |sum, object| async move {
                Ok::<u64, object_store::Error>(sum.saturating_add(object.size))
            })
            .await
            .unwrap_or_default()
    }
}

fn read_credentials(path: &Path) -> Result<Credentials, ArtifactError> {
    let io = |action| super::local::io_error(action, path);
    let file = std::fs::File::open(path).map_err(io("open"))?;
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut std::io::Read::take(file, MAX_CREDENTIALS_LEN + 1),
        &mut text,
    )
    .map_err(io("read"))?;
    if text.len() as u64 > MAX_CREDENTIALS_LEN {
        return Err(ArtifactError::Setup {
            reason: format!(
                "credentials file `{}` is larger than {MAX_CREDENTIALS_LEN} bytes",
                path.display()
            ),
        });
    }
    // toml's message quotes the offending line, which may hold the secret: keep only its kind.
    toml::from_str(&text).map_err(|error| ArtifactError::Setup {
        reason: format!(
            "credentials file `{}` is not TOML with `access_key_id` and `secret_access_key`{}",
            path.display(),
            error
                .span()
                .map(|span| format!(" (at byte {})", span.start))
                .unwrap_or_default()
        ),
    })
}

/// The path of `path` below `output`, `/`-separated.
fn relative_name(output: &Path, path: &Path) -> Result<String, ArtifactError> {
    let relative = path.strip_prefix(output).ok();
    let parts: Option<Vec<&str>> = relative.map(|relative| {
        relative
            .components()
            .map(|component| component.as_os_str().to_str().unwrap_or(""))
            .collect()
    });
    match parts {
        Some(parts) if parts.iter().all(|part| !part.is_empty()) => Ok(parts.join("/")),
        _ => Err(ArtifactError::NotRegular {
            path: path.to_owned(),
        }),
    }
}

fn object_error(action: &'static str, key: &Key, source: object_store::Error) -> ArtifactError {
    ArtifactError::Object {
        action,
        key: key.to_string(),
        source,
    }
}

fn corrupt(key: &Key, reason: String) -> ArtifactError {
    ArtifactError::Corrupt {
        key: key.to_string(),
        reason,
    }
}
