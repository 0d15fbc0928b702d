//! The artifact store: built images, one directory (or key prefix) per job, served at `/store/`.
//!
//! [`Artifacts`] is the one way in, with two backends behind it:
//!
//! - **local** (the default, `local.rs`): `<store_dir>/<request_hash>/<file>`, a build moved
//!   into place whole by rename, every `/store/` path opened without following links;
//! - **S3-compatible object store** (`object.rs`, `[store] backend = "s3"`): keys
//!   `<prefix><request_hash>/<file>` in a bucket of AWS S3, Cloudflare R2, MinIO, Ceph RGW or
//!   Garage, reached through the `object_store` crate. Object stores have no rename, so a
//!   result is published by uploading every file (multipart, streamed from disk) and then a
//!   completion marker `<prefix><request_hash>/.complete` listing each file's name, size and
//!   SHA-256; a hash without its marker is absent to every reader. `/store/` answers `302` to
//!   `public_url` (a CDN) when one is set, else streams from the bucket with ranged GETs.
//!
//! Both backends look the same to the collector ([`crate::gc`]): entries named by request
//! hash, each complete or not, with a modification time; incomplete ones and those no job
//! references are reaped after the orphan grace period. The same test suite
//! (`tests/artifact_store.rs`) runs against both, the object store being a real S3 protocol
//! server on loopback.

mod backend;
mod error;
mod local;
mod located;
mod object;

pub use backend::Artifacts;
pub use error::ArtifactError;
pub(crate) use local::open_beneath;
pub use local::{MAX_OUTPUT_DEPTH, check_output};
pub use located::{Entry, JobFiles, Located, StoredObject};

/// Longest `/store/` path served, in bytes.
pub const MAX_STORE_PATH_LEN: usize = 1024;

/// The components of a `/store/` path if each is a plain name: no `..`, no absolute paths, no
/// empty components, no hidden staging directories or markers (names starting with `.`).
fn plain_components(relative: &str) -> Option<Vec<&str>> {
    if relative.is_empty() || relative.len() > MAX_STORE_PATH_LEN {
        return None;
    }
    let components: Vec<&str> = relative.split('/').collect();
    let plain = |component: &&str| {
        !component.is_empty()
            && !component.starts_with('.')
            && !component.contains('\\')
            && !component.contains('\0')
    };
    components.iter().all(plain).then_some(components)
}

/// A random 16-hex-digit nonce for staging names.
pub(crate) fn nonce() -> String {
    let mut bytes = [0u8; 8];
    // A failing OS random source only makes staging names collide-prone; the time keeps them
    // distinct within one process.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos());
        bytes = (nanos as u64).to_le_bytes();
    }
    hex::encode(bytes)
}
