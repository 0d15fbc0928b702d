//! [`ArtifactError`]: why a store operation failed, on either backend.

use std::io;
use std::path::PathBuf;

/// Why an artifact operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArtifactError {
    /// A file system operation failed.
    #[error("cannot {action} `{path}`")]
    Io {
        /// What we were doing.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The output holds something that is neither a file nor a directory (a link, a device).
    #[error("build output `{path}` is not a regular file or directory")]
    NotRegular {
        /// The path.
        path: PathBuf,
    },
    /// A request to the object store failed.
    #[error("cannot {action} `{key}` in the object store")]
    Object {
        /// What we were doing.
        action: &'static str,
        /// The object key (or key prefix).
        key: String,
        /// The object store's error (the HTTP status and the service's message).
        #[source]
        source: object_store::Error,
    },
    /// The object store could not be set up from `[store]`.
    #[error("cannot use the `[store]` object store: {reason}")]
    Setup {
        /// What is wrong.
        reason: String,
    },
    /// A completion marker or a downloaded object does not match what was published.
    #[error("object `{key}` is unusable: {reason}")]
    Corrupt {
        /// The object key.
        key: String,
        /// What is wrong.
        reason: String,
    },
}
