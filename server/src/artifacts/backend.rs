//! [`Artifacts`]: the store's operations, each dispatched to the local directory or the object
//! store.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use attendant_proto::api::RequestHash;

use super::error::ArtifactError;
use super::local::{self, io_error};
use super::located::{Entry, JobFiles, Located};
use super::object::ObjectArtifacts;
use super::plain_components;
use crate::config::{Config, StoreBackend};

/// The artifact store (see the module docs).
#[derive(Debug, Clone)]
pub struct Artifacts {
    /// The local store directory; with an object store, the staging area of uploads (remote
    /// workers' `.upload-*`) and of files fetched for the channel pool.
    root: PathBuf,
    backend: Backend,
}

#[derive(Debug, Clone)]
enum Backend {
    Local,
    Object(Arc<ObjectArtifacts>),
}

impl Artifacts {
    /// A local store rooted at `root` (created if missing).
    pub fn open(root: &Path) -> Result<Self, ArtifactError> {
        create_root(root)?;
        Ok(Self::local(root.to_owned()))
    }

    /// The store `[store]` and `store_dir` name: the local directory, or the object store with
    /// `store_dir` as its staging area. Reads the credentials file, if one is set; makes no
    /// request.
    pub fn from_config(config: &Config) -> Result<Self, ArtifactError> {
        let root = config.store_path();
        create_root(&root)?;
        let backend = match config.store.backend {
            StoreBackend::S3 => Backend::Object(Arc::new(ObjectArtifacts::open(&config.store)?)),
            StoreBackend::Local => Backend::Local,
        };
        Ok(Self { root, backend })
    }

    pub(crate) fn local(root: PathBuf) -> Self {
        Self {
            root,
            backend: Backend::Local,
        }
    }

    /// The local directory: the store itself, or the staging area next to an object store.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether results live in an object store rather than under [`Artifacts::root`].
    pub fn is_object_store(&self) -> bool {
        matches!(self.backend, Backend::Object(_))
    }

    /// The local directory of a job (`bin_dir`); with an object store, where it would be and
    /// never is (use [`Artifacts::fetch`] to get files onto disk).
    pub fn job_dir(&self, request_hash: &RequestHash) -> PathBuf {
        self.root.join(request_hash.to_string())
    }

    /// The local file behind `/store/<relative>`, if `relative` is a path of plain names that
    /// does not start with a dot (no `..`, no absolute paths, no hidden staging directories).
    pub fn resolve(&self, relative: &str) -> Option<PathBuf> {
        let mut path = self.root.clone();
        for component in plain_components(relative)? {
            path.push(component);
        }
        Some(path)
    }

    /// What `/store/<relative>` serves: a local regular file opened without following links,
    /// or an object listed in its result's completion marker (or that object's public URL).
    /// `None` for anything else: not plain names, missing, incomplete, a link, a directory.
    pub async fn locate(&self, relative: &str) -> Option<Located> {
        match &self.backend {
            Backend::Local => {
                let root = self.root.clone();
                let relative = relative.to_owned();
                tokio::task::spawn_blocking(move || local::open_beneath(&root, &relative))
                    .await
                    .ok()
                    .flatten()
                    .map(Located::File)
            }
            Backend::Object(object) => {
                let components = plain_components(relative)?;
                ObjectArtifacts::locate(object, &components).await
            }
        }
    }

    /// Publishes a finished build's output directory as the result of `request_hash`,
    /// replacing an older one of the same hash (an expired result being rebuilt), and removes
    /// the output. Readers see the old result, nothing, or the new one whole.
    pub async fn publish(
        &self,
        output: &Path,
        request_hash: &RequestHash,
    ) -> Result<(), ArtifactError> {
        let checked = output.to_owned();
        tokio::task::spawn_blocking(move || local::check_output(&checked))
            .await
            .map_err(join_error(output))??;
        match &self.backend {
            Backend::Local => {
                let root = self.root.clone();
                let moved = output.to_owned();
                let hash = request_hash.to_string();
                tokio::task::spawn_blocking(move || local::publish_blocking(&root, &moved, &hash))
                    .await
                    .map_err(join_error(output))?
            }
            Backend::Object(object) => {
                let files = local::files_under(output).await?;
                object.publish(output, &files, request_hash).await?;
                local::remove_tree(output.to_owned()).await.map(drop)
            }
        }
    }

    /// Deletes a job's result; `Ok(false)` if it had none.
    pub async fn remove(&self, request_hash: &RequestHash) -> Result<bool, ArtifactError> {
        match &self.backend {
            Backend::Local => local::remove_tree(self.job_dir(request_hash)).await,
            Backend::Object(object) => object.remove(&request_hash.to_string()).await,
        }
    }

    /// The store's top-level entries (see [`Entry`]), staging entries of the local directory
    /// included.
    pub async fn entries(&self) -> Result<Vec<Entry>, ArtifactError> {
        let mut entries = local::entries(&self.root).await?;
        if let Backend::Object(object) = &self.backend {
            // Locally only staging remains; results are in the bucket.
            entries.retain(|entry| entry.name.starts_with('.'));
            entries.extend(object.entries().await?);
        }
        Ok(entries)
    }

    /// Deletes an entry [`Artifacts::entries`] listed; `Ok(false)` if it was gone.
    pub async fn remove_entry(&self, entry: &Entry) -> Result<bool, ArtifactError> {
        match &self.backend {
            Backend::Object(object) if !entry.name.starts_with('.') => {
                object.remove(&entry.name).await
            }
            _ => local::remove_tree(entry.location.clone()).await,
        }
    }

    /// Where a job's result is and its files, sorted, for `gc --dry-run`; `None` if it has
    /// none.
    pub async fn files_of(
        &self,
        request_hash: &RequestHash,
    ) -> Result<Option<(PathBuf, Vec<PathBuf>)>, ArtifactError> {
        match &self.backend {
            Backend::Local => {
                let dir = self.job_dir(request_hash);
                let files = local::files_under(&dir).await?;
                let exists = tokio::fs::symlink_metadata(&dir).await.is_ok();
                Ok(exists.then_some((dir, files)))
            }
            Backend::Object(object) => object.files_of(&request_hash.to_string()).await,
        }
    }

    /// The files `names` of a complete result in a local directory: the job directory itself,
    /// or a copy downloaded (streamed, size and SHA-256 checked against the marker) into the
    /// staging area. Names the result does not hold are left out.
    pub async fn fetch(
        &self,
        request_hash: &RequestHash,
        names: &[String],
    ) -> Result<JobFiles, ArtifactError> {
        match &self.backend {
            Backend::Local => Ok(JobFiles::in_place(self.job_dir(request_hash))),
            Backend::Object(object) => {
                let dir = self
                    .root
                    .join(format!(".fetch-{request_hash}-{}", super::nonce()));
                tokio::fs::create_dir(&dir)
                    .await
                    .map_err(io_error("create", &dir))?;
                let files = JobFiles::temporary(dir);
                object
                    .fetch(&request_hash.to_string(), names, files.dir())
                    .await?;
                Ok(files)
            }
        }
    }

    /// Bytes of all results (for `/metrics`); unreadable entries count as empty.
    pub async fn stored_bytes(&self) -> u64 {
        match &self.backend {
            Backend::Local => {
                let root = self.root.clone();
                tokio::task::spawn_blocking(move || local::tree_bytes(&root, 2))
                    .await
                    .unwrap_or_default()
            }
            Backend::Object(object) => object.stored_bytes().await,
        }
    }
}

fn create_root(root: &Path) -> Result<(), ArtifactError> {
    std::fs::create_dir_all(root).map_err(|source| ArtifactError::Io {
        action: "create the store directory",
        path: root.to_owned(),
        source,
    })
}

fn join_error(output: &Path) -> impl FnOnce(tokio::task::JoinError) -> ArtifactError {
    let path = output.to_owned();
    move |join| ArtifactError::Io {
        action: "publish",
        path,
        source: io::Error::other(join),
    }
}
