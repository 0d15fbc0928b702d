//! Why a streams command failed; the published stream is unchanged.

use std::path::PathBuf;

use super::filter::FilterError;
use super::format::FormatError;
use super::manage::MergeError;
use super::orphans::OrphansError;
use super::sync::SyncError;
use crate::channels::publish::PublishError;
use crate::process::RunError;
use crate::signing::SigningError;

/// Why a streams command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamsError {
    /// A file operation failed.
    #[error("cannot {action} `{}`", path.display())]
    Io {
        /// What we were doing.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A stream document does not parse.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// A filter does not parse.
    #[error(transparent)]
    Filter(#[from] FilterError),
    /// The orphans file or `--older` does not parse.
    #[error(transparent)]
    Orphans(#[from] OrphansError),
    /// A merge was refused.
    #[error(transparent)]
    Merge(#[from] MergeError),
    /// `sync` could not be planned.
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// The published channel tree could not be read.
    #[error("cannot read the published channel tree")]
    Channels(#[from] PublishError),
    /// There is no index where one was expected.
    #[error("no simplestreams index at `{}`", path.display())]
    NoIndex {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// `<dir>/streams` is a plain directory: a mutation could not switch it in one rename.
    #[error("`{}` is a directory, not the link this server publishes through", path.display())]
    NotPublished {
        /// The directory.
        path: PathBuf,
    },
    /// A data file is not what the metadata says.
    #[error("`{}` has {what} `{found}`, the stream says `{expected}`", path.display())]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// `sha256` or `size`.
        what: &'static str,
        /// What the stream says.
        expected: String,
        /// What the file has.
        found: String,
    },
    /// A new item's file is in neither the source nor the target.
    #[error("item `{pedigree}` needs `{}`, which does not exist", path.display())]
    MissingData {
        /// `product/version/item`.
        pedigree: String,
        /// The file looked for.
        path: PathBuf,
    },
    /// `promote` found nothing to promote.
    #[error("no item of version `{version}` passes the filters in `{}`", index.display())]
    NoVersion {
        /// The version.
        version: String,
        /// The source index.
        index: PathBuf,
    },
    /// No usign key is configured and `--no-sign` was not given.
    #[error("no key to sign the stream metadata with")]
    NoKey,
    /// The usign key could not be loaded.
    #[error(transparent)]
    Key(#[from] SigningError),
    /// `gpg` could not be run.
    #[error("cannot run `gpg` to sign `{}`", path.display())]
    GpgRun {
        /// The file being signed.
        path: PathBuf,
        /// The process error.
        #[source]
        source: Box<RunError>,
    },
    /// `gpg` failed.
    #[error("`gpg` failed to sign `{}` (exit status {status:?}): {stderr}", path.display())]
    Gpg {
        /// The file being signed.
        path: PathBuf,
        /// Its exit status.
        status: Option<i32>,
        /// The tail of its stderr.
        stderr: String,
    },
}

impl StreamsError {
    /// The operator's way out, printed after the error as `hint: ...` by the CLI.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::NoKey => Some(
                "set `[streams] signing_key` (or `[channels] signing_key`, or the top-level \
                 `signing_key`), or publish unsigned with `--no-sign`"
                    .to_owned(),
            ),
            Self::NotPublished { path } => Some(format!(
                "a stream written by another tool is only read here: copy it into a new \
                 directory with `attendant-server streams insert {} NEW_DIR`",
                path.parent().unwrap_or(path).display()
            )),
            Self::Key(key) => key.hint(),
            _ => None,
        }
    }
}

/// A closure naming the path and action of an I/O error.
pub(crate) fn io(
    action: &'static str,
    path: &std::path::Path,
) -> impl FnOnce(std::io::Error) -> StreamsError {
    let path = path.to_owned();
    move |source| StreamsError::Io {
        action,
        path,
        source,
    }
}
