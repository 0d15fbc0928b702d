//! Fetching files from the upstream: an OpenWrt downloads mirror over HTTP(S), or a local
//! directory with the same layout (the fixture mirror in tests and `demo`).
//!
//! Small files (`sha256sums`, `sha256sums.sig`) are read into memory up to a named limit. The
//! archive is streamed to a file and hashed as it arrives, never held in memory, up to the
//! configured download limit. Connection failures, stalls and HTTP 5xx/429 are retried
//! [`MAX_ATTEMPTS`] times with exponential backoff; anything else fails at once.

use std::{
    path::{Path, PathBuf},
    str::FromStr,
    time::Duration,
};

use reqwest::{StatusCode, Url};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::IbError;

/// Attempts per file before a retryable failure is returned to the caller.
pub(crate) const MAX_ATTEMPTS: u32 = 4;

/// Wait before the second attempt; doubled for each further one (250 ms, 500 ms, 1 s).
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_millis(250);

/// Whole-request time limit for small files.
pub(crate) const SMALL_FILE_TIMEOUT: Duration = Duration::from_secs(60);

/// A download that sends no data for this long is abandoned (and retried).
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Read buffer for directory upstreams.
const COPY_BUFFER_LEN: usize = 64 * 1024;

/// Where ImageBuilders come from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Upstream {
    /// An OpenWrt downloads mirror, such as `https://downloads.openwrt.org`.
    Http(Url),
    /// A local directory with the mirror's layout.
    Directory(PathBuf),
}

impl FromStr for Upstream {
    type Err = IbError;

    /// `http://` and `https://` URLs are mirrors; a `file://` URL or an absolute path is a
    /// directory.
    fn from_str(text: &str) -> Result<Self, IbError> {
        let invalid = |reason: &str| IbError::InvalidUpstream {
            value: attendant_proto::excerpt::excerpt(text, 200),
            reason: reason.to_owned(),
        };
        if text.starts_with('/') {
            return Ok(Self::Directory(PathBuf::from(text)));
        }
        let url = Url::parse(text).map_err(|error| invalid(&error.to_string()))?;
        match url.scheme() {
            "http" | "https" => Ok(Self::Http(url)),
            "file" => url
                .to_file_path()
                .map(Self::Directory)
                .map_err(|()| invalid("the `file://` URL is not an absolute local path")),
            other => Err(invalid(&format!(
                "scheme `{other}` is not supported, only `http`, `https` and `file`"
            ))),
        }
    }
}

impl Upstream {
    /// Where the file at `relative` (a `/`-separated path of checked segments) lives, as a
    /// string for messages.
    pub(crate) fn location(&self, relative: &str) -> String {
        match self {
            Self::Http(base) => format!("{}/{relative}", base.as_str().trim_end_matches('/')),
            Self::Directory(dir) => dir.join(relative).display().to_string(),
        }
    }
}

/// The result of a complete download.
#[derive(Debug)]
pub(crate) struct Downloaded {
    /// SHA-256 of the bytes written, lowercase hex.
    pub(crate) sha256: String,
    /// Number of bytes written.
    pub(crate) len: u64,
}

/// Fetches files from one upstream with retries and limits.
#[derive(Debug, Clone)]
pub(crate) struct Fetcher {
    upstream: Upstream,
    http: reqwest::Client,
}

impl Fetcher {
    pub(crate) fn new(upstream: Upstream, http: reqwest::Client) -> Self {
        Self { upstream, http }
    }

    /// The URL or path of `relative`, for messages.
    pub(crate) fn location(&self, relative: &str) -> String {
        self.upstream.location(relative)
    }

    /// Read the file at `relative` into memory, refusing more than `limit` bytes; `Ok(None)`
    /// when the upstream does not have it (HTTP 404/410, no such file).
    pub(crate) async fn fetch_small(
        &self,
        relative: &str,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, IbError> {
        let location = self.location(relative);
        self.retrying(&location, || {
            self.fetch_small_once(relative, &location, limit)
        })
        .await
    }

    /// Stream the file at `relative` into a new file `dest`, hashing it, refusing more than
    /// `limit` bytes; `Ok(None)` when the upstream does not have it. `dest` is created (or
    /// truncated) by every attempt; the caller deletes it on failure.
    pub(crate) async fn download(
        &self,
        relative: &str,
        dest: &Path,
        limit: u64,
    ) -> Result<Option<Downloaded>, IbError> {
        let location = self.location(relative);
        self.retrying(&location, || {
            self.download_once(relative, &location, dest, limit)
        })
        .await
    }

    async fn fetch_small_once(
        &self,
        relative: &str,
        location: &str,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, IbError> {
        let Some(mut body) = self.open(relative, Some(SMALL_FILE_TIMEOUT)).await? else {
            return Ok(None);
        };
        let too_large = || IbError::TooLarge {
            what: format!("`{location}`"),
            limit,
        };
        if body.declared_len().is_some_and(|len| len > limit) {
            return Err(too_large());
        }
        let mut data = Vec::new();
        while let Some(chunk) = body.next_chunk().await? {
            let len = u64::try_from(data.len().saturating_add(chunk.len())).unwrap_or(u64::MAX);
            if len > limit {
                return Err(too_large());
            }
            data.extend_from_slice(&chunk);
        }
        Ok(Some(data))
    }

    async fn download_once(
        &self,
        relative: &str,
        location: &str,
        dest: &Path,
        limit: u64,
    ) -> Result<Option<Downloaded>, IbError> {
        let Some(mut body) = self.open(relative, None).await? else {
            return Ok(None);
        };
        let too_large = || IbError::TooLarge {
            what: format!("download of `{location}`"),
            limit,
        };
        if body.declared_len().is_some_and(|len| len > limit) {
            return Err(too_large());
        }
        let mut file = tokio::fs::File::create(dest)
            .await
            .map_err(|error| IbError::io("create", dest, error))?;
        let mut hasher = Sha256::new();
        let mut len: u64 = 0;
        while let Some(chunk) = body.next_chunk().await? {
            len = u64::try_from(chunk.len())
                .ok()
                .and_then(|chunk_len| len.checked_add(chunk_len))
                .filter(|total| *total <= limit)
                .ok_or_else(too_large)?;
            hasher.update(&chunk);
            file.write_all(&chunk)
                .await
                .map_err(|error| IbError::io("write", dest, error))?;
        }
        file.flush()
            .await
            .map_err(|error| IbError::io("write", dest, error))?;
        Ok(Some(Downloaded {
            sha256: hex::encode(hasher.finalize()),
            len,
        }))
    }

    /// Open `relative`: `Ok(None)` when it does not exist. `timeout` bounds a whole HTTP
    /// request including its body.
    async fn open(
        &self,
        relative: &str,
        timeout: Option<Duration>,
    ) -> Result<Option<Body>, IbError> {
        let location = self.location(relative);
        match &self.upstream {
            Upstream::Http(_) => {
                let url = Url::parse(&location).map_err(|error| IbError::InvalidUpstream {
                    value: location.clone(),
                    reason: error.to_string(),
                })?;
                let mut request = self.http.get(url);
                if let Some(timeout) = timeout {
                    request = request.timeout(timeout);
                }
                let response = request.send().await.map_err(|source| IbError::Network {
                    url: location.clone(),
                    source,
                })?;
                let status = response.status();
                if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
                    return Ok(None);
                }
                if !status.is_success() {
                    return Err(IbError::Http {
                        url: location,
                        status: status.as_u16(),
                    });
                }
                Ok(Some(Body::Http {
                    response,
                    url: location,
                }))
            }
            Upstream::Directory(dir) => {
                let path = dir.join(relative);
                let file = match tokio::fs::File::open(&path).await {
                    Ok(file) => file,
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(error) => return Err(IbError::io("open", path, error)),
                };
                let len = file
                    .metadata()
                    .await
                    .map_err(|error| IbError::io("read metadata of", &path, error))?
                    .len();
                Ok(Some(Body::File {
                    file,
                    path,
                    len,
                    buffer: vec![0; COPY_BUFFER_LEN],
                }))
            }
        }
    }

    /// Run `attempt` until it succeeds, fails for good, or [`MAX_ATTEMPTS`] retryable failures
    /// have happened.
    async fn retrying<T, F, Fut>(&self, location: &str, mut attempt: F) -> Result<T, IbError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, IbError>>,
    {
        let mut backoff = FIRST_BACKOFF;
        let mut attempts: u32 = 1;
        loop {
            match attempt().await {
                Err(error) if error.is_retryable() && attempts < MAX_ATTEMPTS => {
                    tracing::warn!(
                        %location,
                        attempt = attempts,
                        retry_in = ?backoff,
                        "upstream fetch failed, retrying: {error}"
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = backoff.saturating_mul(2);
                    attempts = attempts.saturating_add(1);
                }
                result => return result,
            }
        }
    }
}

/// A response body or a local file, read chunk by chunk.
enum Body {
    Http {
        response: reqwest::Response,
        url: String,
    },
    File {
        file: tokio::fs::File,
        path: PathBuf,
        len: u64,
        buffer: Vec<u8>,
    },
}

impl Body {
    /// The length announced before reading (`Content-Length`, file size).
    fn declared_len(&self) -> Option<u64> {
        match self {
            Self::Http { response, .. } => response.content_length(),
            Self::File { len, .. } => Some(*len),
        }
    }

    /// The next chunk; `None` at the end.
    async fn next_chunk(&mut self) -> Result<Option<bytes::Bytes>, IbError> {
        match self {
            Self::Http { response, url } => {
                match tokio::time::timeout(IDLE_TIMEOUT, response.chunk()).await {
                    Err(_elapsed) => Err(IbError::Stalled {
                        url: url.clone(),
                        after: IDLE_TIMEOUT,
                    }),
                    Ok(Err(source)) => Err(IbError::Network {
                        url: url.clone(),
                        source,
                    }),
                    Ok(Ok(chunk)) => Ok(chunk),
                }
            }
            Self::File {
                file, path, buffer, ..
            } => {
                let read = file
                    .read(buffer)
                    .await
                    .map_err(|error| IbError::io("read", path.as_path(), error))?;
                Ok(buffer
                    .get(..read)
                    .filter(|chunk| !chunk.is_empty())
                    .map(bytes::Bytes::copy_from_slice))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_upstream_kinds() {
        assert_eq!(
            "https://downloads.openwrt.org".parse::<Upstream>().unwrap(),
            Upstream::Http(Url::parse("https://downloads.openwrt.org").unwrap())
        );
        assert_eq!(
            "file:///srv/mirror".parse::<Upstream>().unwrap(),
            Upstream::Directory(PathBuf::from("/srv/mirror"))
        );
        assert_eq!(
            "/srv/mirror".parse::<Upstream>().unwrap(),
            Upstream::Directory(PathBuf::from("/srv/mirror"))
        );
    }

    #[test]
    fn rejects_unsupported_upstream_scheme() {
        let error = "ftp://mirror".parse::<Upstream>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "upstream `ftp://mirror` is not usable: scheme `ftp` is not supported, only `http`, \
             `https` and `file`"
        );
        assert_eq!(
            error.hint().as_deref(),
            Some(
                "use an `https://` URL such as `https://downloads.openwrt.org`, a `file://` URL \
                 or an absolute directory path"
            )
        );
        assert!(matches!(
            "mirror".parse::<Upstream>(),
            Err(IbError::InvalidUpstream { .. })
        ));
    }

    #[test]
    fn joins_locations_without_double_slashes() {
        let upstream: Upstream = "https://mirror.example/openwrt/".parse().unwrap();
        assert_eq!(
            upstream.location("releases/24.10.0/targets/x86/64/sha256sums"),
            "https://mirror.example/openwrt/releases/24.10.0/targets/x86/64/sha256sums"
        );
    }

    #[tokio::test]
    async fn directory_upstream_reads_and_bounds_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("small"), b"hello").unwrap();
        let fetcher = Fetcher::new(
            Upstream::Directory(dir.path().to_owned()),
            reqwest::Client::new(),
        );
        assert_eq!(
            fetcher.fetch_small("small", 5).await.unwrap(),
            Some(b"hello".to_vec())
        );
        assert!(fetcher.fetch_small("missing", 5).await.unwrap().is_none());
        let error = fetcher.fetch_small("small", 4).await.unwrap_err();
        assert!(
            matches!(error, IbError::TooLarge { limit: 4, .. }),
            "{error}"
        );

        let dest = dir.path().join("copy");
        let downloaded = fetcher.download("small", &dest, 5).await.unwrap().unwrap();
        assert_eq!(downloaded.len, 5);
        assert_eq!(
            downloaded.sha256,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello");
    }
}
