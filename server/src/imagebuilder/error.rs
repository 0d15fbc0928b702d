//! The one error type of the ImageBuilder cache.
//!
//! Every variant names the URL, path or archive entry concerned and the rule that was broken. The
//! worker classifies failures with [`IbError::is_retryable`]: a flaky mirror is retried, a bad
//! signature or a tampered archive is not.

use std::{error::Error as StdError, io, path::PathBuf, time::Duration};

use attendant_proto::usign::{Fingerprint, UsignError};

/// What went wrong getting an ImageBuilder.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IbError {
    /// The upstream has no ImageBuilder archive for this version and target (its `sha256sums`
    /// does not list one, or the directory or file is missing).
    ///
    /// The text is ASU's, word for word, because clients show it to users.
    #[error(
        "Image not found: {image}. If this version was just released, please try again in a few \
         hours as it may take some time to become fully available."
    )]
    NotFound {
        /// The archive file name that was looked for.
        image: String,
        /// Where it was looked for.
        url: String,
    },
    /// The upstream answered with an HTTP error status.
    #[error("upstream answered HTTP {status} for `{url}`")]
    Http {
        /// The URL requested.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The connection to the upstream failed (refused, reset, timed out, TLS).
    #[error("could not fetch `{url}`: {}", error_chain(source))]
    Network {
        /// The URL requested.
        url: String,
        /// What the HTTP client said.
        source: reqwest::Error,
    },
    /// A download stopped sending data for longer than the idle limit.
    #[error("download of `{url}` stalled: no data for {}", humantime::format_duration(*after))]
    Stalled {
        /// The URL requested.
        url: String,
        /// The idle limit that ran out.
        after: Duration,
    },
    /// `sha256sums.sig` is missing, so the checksums cannot be trusted.
    #[error("`{url}` is missing: the upstream's `sha256sums` is unsigned and cannot be trusted")]
    Unsigned {
        /// The URL of the missing signature.
        url: String,
    },
    /// `sha256sums.sig` was made by a key that is not configured as trusted.
    #[error("`{url}` was signed by key `{fingerprint}`, which is not a trusted key")]
    UnknownKey {
        /// The URL of the signature.
        url: String,
        /// The key that made it.
        fingerprint: Fingerprint,
    },
    /// `sha256sums.sig` is malformed or does not match `sha256sums`.
    #[error("signature `{url}` does not verify: {source}")]
    SignatureInvalid {
        /// The URL of the signature.
        url: String,
        /// What the usign check said.
        source: UsignError,
    },
    /// A signed `sha256sums` line is not `<64 hex digits> *<file name>`.
    #[error("`{url}` line {line} is not `<sha256> *<file name>`: {reason}")]
    ChecksumsMalformed {
        /// The URL of the file.
        url: String,
        /// The 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A downloaded file does not have the SHA-256 that the signed `sha256sums` lists.
    #[error(
        "`{file}` has SHA-256 `{actual}` but the signed `sha256sums` lists `{expected}`; the \
         download was corrupted or tampered with and was deleted"
    )]
    ChecksumMismatch {
        /// The file name.
        file: String,
        /// The SHA-256 from `sha256sums`, hex.
        expected: String,
        /// The SHA-256 of what arrived, hex.
        actual: String,
    },
    /// A download or an unpacked archive is larger than its limit.
    #[error("{what} is larger than the limit of {limit} bytes")]
    TooLarge {
        /// What was too large, with its URL or name.
        what: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// An archive holds more entries than the limit.
    #[error("ImageBuilder archive `{archive}` has more than {limit} entries")]
    TooManyEntries {
        /// The archive file name.
        archive: String,
        /// The limit.
        limit: u64,
    },
    /// An archive entry would write outside the ImageBuilder directory or is of a forbidden kind.
    #[error("refusing ImageBuilder archive `{archive}`: entry `{entry}`: {reason}")]
    UnsafeArchive {
        /// The archive file name.
        archive: String,
        /// The entry's path as stored in the archive.
        entry: String,
        /// The rule it breaks.
        reason: String,
    },
    /// A version, version path, target or subtarget is not a plain path segment.
    #[error(
        "ImageBuilder {field} `{value}` is not allowed: expected letters, digits, `.`, `_` and \
         `-`{}, at most {max} bytes",
        if *field == "version_path" { " in `/`-separated parts" } else { "" }
    )]
    InvalidSpec {
        /// Which field.
        field: &'static str,
        /// Its value (truncated).
        value: String,
        /// The length limit.
        max: usize,
    },
    /// The configured upstream is neither an `http(s)://` URL, a `file://` URL nor an absolute
    /// directory path.
    #[error("upstream `{value}` is not usable: {reason}")]
    InvalidUpstream {
        /// The configured value (truncated).
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// A filesystem operation failed.
    #[error("could not {op} `{}`: {source}", path.display())]
    Io {
        /// The path concerned.
        path: PathBuf,
        /// What we were doing, as a verb phrase ("create directory").
        op: &'static str,
        /// The operating system's error.
        source: io::Error,
    },
}

impl IbError {
    /// True when trying again later may succeed: network failures, stalled downloads, and HTTP
    /// 5xx or 429 from the upstream. Everything else (missing archive, bad signature, checksum
    /// mismatch, unsafe archive, local I/O) is fatal for the job.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Network { .. } | Self::Stalled { .. } => true,
            Self::Http { status, .. } => *status == 429 || (500..=599).contains(status),
            _ => false,
        }
    }

    /// True when the failure is the server's or its upstream's, not the request's, and a later
    /// attempt may succeed: everything [`IbError::is_retryable`] covers, a checksum mismatch (a
    /// mirror caught mid-sync, serving the new `sha256sums` with the old archive) and local I/O
    /// (a full disk while downloading or unpacking). The worker puts such a job back in the
    /// queue instead of caching a failure; only after its last attempt does the job fail.
    pub fn is_infrastructure(&self) -> bool {
        self.is_retryable() || matches!(self, Self::ChecksumMismatch { .. } | Self::Io { .. })
    }

    /// The operator's way out, printed after the error as `hint: ...` where it reaches them
    /// (the CLI, the worker's log). `None` when the message says it all. Kept out of `Display`
    /// because the message also becomes a failed build's `detail`, which routers show to their
    /// users, and the advice is for whoever runs the server.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::UnknownKey { fingerprint, .. } => Some(format!(
                "add the upstream's public key (file name `{fingerprint}`) to the server's \
                 trusted keys"
            )),
            Self::InvalidUpstream { .. } => Some(
                "use an `https://` URL such as `https://downloads.openwrt.org`, a `file://` URL \
                 or an absolute directory path"
                    .to_owned(),
            ),
            _ => None,
        }
    }

    /// An [`IbError::Io`] for `path`.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            path: path.into(),
            op,
            source,
        }
    }
}

/// The error and its causes, joined with `: ` (reqwest's own text omits the cause, e.g.
/// "connection refused"; ours leave the operating system's error to `source()`).
pub fn error_chain(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
