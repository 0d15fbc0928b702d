//! The HTTP client for the upgrade server and the upstream mirror.
//!
//! ureq 3 with rustls on the ring provider, trusting the CA bundle read from a file
//! ([`DEFAULT_CA_FILE`], OpenWrt's `ca-bundle`; overridable with `--ca-file` or
//! [`CA_FILE_ENV`]) instead of an embedded root list: the smallest TLS build measured
//! (`docs/benchmarks.md`). Proxies come from `https_proxy`/`http_proxy`/`all_proxy`
//! (lower case first, as curl reads them) unless the server's host is in `no_proxy`.
//!
//! Every request sends `User-Agent: attendant/<version>` (ASU answers 500 to a request without
//! one), has connect and read timeouts, and is retried with exponential backoff on connection
//! errors, `502`/`503`/`504` and `529` (queue full); metadata downloads also retry a `500`.
//! A read timeout alone does not bound a server that sends one byte a second, so every metadata
//! request (JSON documents, package indexes, signatures, the build API) also has a total
//! deadline ([`ClientOptions::metadata_deadline`]) that covers its retries and its body, and
//! [`ClientError::TooSlow`] names the URL that missed it. Image downloads have no such deadline
//! (an image takes what the link needs); `download` bounds them by rate instead.
//! Error statuses become typed [`ClientError`]s carrying the server's `detail` (a string, or the
//! list FastAPI sends with `422`), `stdout` and `stderr`, as ASU's API sends them (<https://github.com/openwrt/asu>), read with proto's parsers of those
//! bodies ([`attendant_proto::api::parse_error_body`] and its siblings).
//! Response bodies are read with a size limit ([`MAX_JSON_LEN`], [`MAX_ERROR_LEN`]); images are
//! streamed by [`Client::open_download`] and never held in memory.
//!
//! The file is long (about 740 lines before its tests) and stays one module on purpose: TLS
//! set-up, proxy selection, retries and the status → [`ClientError`] table are one concern, the
//! way one request is made, and each part reads the others' decisions (a retried status is one
//! the table knows; a proxy changes which TLS configuration applies). Split, every request path
//! would cross three modules.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use attendant_proto::api::{self, ImagebuilderStatus};
use attendant_proto::excerpt::excerpt_lines;
use attendant_proto::wire;
use serde::de::DeserializeOwned;
use ureq::http::{Response, StatusCode};
use ureq::tls::{PemItem, RootCerts, TlsConfig, TlsProvider};
use ureq::{Agent, Body, Proxy};

use crate::hint::{Hint, HintCode};

/// Where OpenWrt's `ca-bundle` package puts the trusted CA certificates.
pub const DEFAULT_CA_FILE: &str = wire::CA_BUNDLE_PATH;

/// Environment variable that overrides the CA bundle path (tests, unusual images).
pub const CA_FILE_ENV: &str = wire::CA_FILE_ENV;

/// Largest JSON document accepted from a server (upstream `profiles.json` of big targets and the
/// package indexes are a few MiB).
pub const MAX_JSON_LEN: u64 = 16 * 1024 * 1024;

/// Largest error body read to find the server's `detail`.
pub const MAX_ERROR_LEN: u64 = 256 * 1024;

/// Largest CA bundle read.
pub const MAX_CA_FILE_LEN: u64 = 4 * 1024 * 1024;

/// Longest `detail`, `stdout` or `stderr` kept from an error body, in characters.
pub const MAX_DETAIL_LEN: usize = 16 * 1024;

/// How the client connects; built from the configuration and the command line.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientOptions {
    /// The server's base URL, without a trailing `/`.
    pub server: String,
    /// The CA bundle; `None` means [`CA_FILE_ENV`] or [`DEFAULT_CA_FILE`].
    pub ca_file: Option<PathBuf>,
    /// Connect timeout per attempt.
    pub connect_timeout: Duration,
    /// Timeout for each read while waiting for or receiving a response.
    pub read_timeout: Duration,
    /// Attempts per request (1 means no retry).
    pub attempts: u32,
    /// Delay before the first retry; doubled for each further one.
    pub retry_delay: Duration,
    /// Longest a whole metadata request may take: every attempt, the waits between them and
    /// reading the body.
    pub metadata_deadline: Duration,
}

impl ClientOptions {
    /// Defaults for `server`: 15 s connect, 60 s read, 4 attempts starting 1 s apart, 30 s for a
    /// whole metadata request.
    pub fn new(server: &str) -> Self {
        Self {
            server: server.trim_end_matches('/').to_owned(),
            ca_file: None,
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
            attempts: 4,
            retry_delay: Duration::from_secs(1),
            metadata_deadline: Duration::from_secs(30),
        }
    }
}

/// Why talking to a server failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The CA bundle could not be read.
    #[error("cannot read the CA bundle `{path}`: {source}")]
    CaFile {
        /// The bundle path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The CA bundle holds no certificate.
    #[error("the CA bundle `{path}` holds no PEM certificate")]
    CaEmpty {
        /// The bundle path.
        path: PathBuf,
    },
    /// A proxy variable is not a usable proxy URL.
    #[error("proxy `{value}` from `{variable}` is not a valid proxy URL")]
    Proxy {
        /// The environment variable.
        variable: &'static str,
        /// Its value.
        value: String,
    },
    /// The server could not be reached (after retries).
    #[error("cannot reach `{url}`: {message}")]
    Unreachable {
        /// The URL requested.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// `400`: the server refused the request.
    #[error("the server refused the request to `{url}`: {detail}")]
    BadRequest {
        /// The URL requested.
        url: String,
        /// The server's detail.
        detail: String,
    },
    /// `404`.
    #[error("not found on the server: `{url}`{}", detail_suffix(detail))]
    NotFound {
        /// The URL requested.
        url: String,
        /// The server's detail, if any.
        detail: String,
    },
    /// `422`: the request did not validate; one entry per problem.
    #[error("the server rejected the request to `{url}`:{}", list_lines(details))]
    Validation {
        /// The URL requested.
        url: String,
        /// Each validation message.
        details: Vec<String>,
    },
    /// `500`: the build (or the server) failed.
    #[error("the server reported a failure for `{url}`: {detail}{}", output_tail(stderr.as_deref().or(stdout.as_deref())))]
    Failed {
        /// The URL requested.
        url: String,
        /// The server's detail.
        detail: String,
        /// The build's standard output, when sent.
        stdout: Option<String>,
        /// The build's standard error, when sent.
        stderr: Option<String>,
    },
    /// `529`: the build queue is full (after retries).
    #[error("the server's build queue is full: {detail}")]
    Overloaded {
        /// The server's detail.
        detail: String,
    },
    /// Any other unexpected status.
    #[error(
        "unexpected HTTP status {status} from `{url}`{}",
        detail_suffix(detail)
    )]
    Status {
        /// The URL requested.
        url: String,
        /// The status code.
        status: u16,
        /// The server's detail, if any.
        detail: String,
    },
    /// The body was not the JSON expected.
    #[error("invalid JSON from `{url}`: {message}")]
    BadJson {
        /// The URL requested.
        url: String,
        /// The parser's message.
        message: String,
    },
    /// A metadata request did not finish within [`ClientOptions::metadata_deadline`].
    #[error(
        "`{url}` did not answer in full within the metadata deadline of {} s",
        limit.as_secs()
    )]
    TooSlow {
        /// The URL requested.
        url: String,
        /// The deadline.
        limit: Duration,
    },
    /// The body was larger than allowed.
    #[error("response from `{url}` is larger than the limit of {max} bytes")]
    TooLarge {
        /// The URL requested.
        url: String,
        /// The limit.
        max: u64,
    },
}

impl ClientError {
    /// The way out, if there is one.
    pub fn hint(&self) -> Option<Hint> {
        match self {
            Self::CaFile { .. } => Some(Hint::coded(
                HintCode::CaFile,
                "install `ca-bundle`, or pass `--ca-file FILE`",
            )),
            Self::Overloaded { .. } => Some(Hint::coded(
                HintCode::TryLater,
                "try again later, or use another server with `--server URL`",
            )),
            Self::TooSlow { .. } => Some(Hint::coded(
                HintCode::TryLater,
                format!(
                    "try again later, use another server with `--server URL`, or allow more \
                     time with `option metadata_timeout` in `{}`",
                    wire::UCI_CONFIG_PATH
                ),
            )),
            _ => None,
        }
    }
}

/// A build endpoint's answer with its status and the headers ASU sets on it.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// `X-Queue-Position`.
    pub queue_position: Option<u64>,
    /// `X-Imagebuilder-Status`; `None` when missing or empty.
    pub imagebuilder_status: Option<ImagebuilderStatus>,
    /// The body (empty for `HEAD`).
    pub body: Vec<u8>,
}

/// An open image download.
pub struct Download {
    /// `206` when the server honoured the `Range` (the body starts at the offset asked for).
    pub partial: bool,
    /// The total length of the file, when the server said.
    pub total_len: Option<u64>,
    /// The body.
    pub reader: Box<dyn Read + Send>,
}

/// The server client.
#[derive(Debug, Clone)]
pub struct Client {
    agent: Agent,
    options: ClientOptions,
}

impl Client {
    /// A client for `options.server`. The CA bundle is read only when a URL is `https`.
    pub fn new(options: ClientOptions) -> Result<Self, ClientError> {
        let mut config = Agent::config_builder()
            .http_status_as_error(false)
            .user_agent(concat!("attendant/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(options.connect_timeout))
            .timeout_recv_response(Some(options.read_timeout))
            // No limit on a whole body (an image takes what the link needs), but each read and
            // write has one: a download that stalls breaks off and is resumed with a range.
            .timeout_recv_body(None)
            .timeout_per_read(Some(options.read_timeout))
            .timeout_per_write(Some(options.read_timeout))
            .timeout_per_call(None)
            .proxy(proxy_for(&options.server)?);
        if options.server.starts_with("https:") {
            config = config.tls_config(tls_config(&ca_path(options.ca_file.as_deref()))?);
        }
        let agent = config.build().new_agent();
        Ok(Self { agent, options })
    }

    /// The server's base URL.
    pub fn server(&self) -> &str {
        &self.options.server
    }

    /// `path` (starting with `/`) on the server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.options.server)
    }

    /// GETs and parses a JSON document of at most [`MAX_JSON_LEN`] bytes.
    pub fn get_json<T: DeserializeOwned>(&self, url: &str) -> Result<T, ClientError> {
        let body = self.get_bytes(url, MAX_JSON_LEN)?;
        serde_json::from_slice(&body).map_err(|error| ClientError::BadJson {
            url: url.to_owned(),
            message: error.to_string(),
        })
    }

    /// GETs a document of at most `max` bytes.
    pub fn get_bytes(&self, url: &str, max: u64) -> Result<Vec<u8>, ClientError> {
        let deadline = self.deadline();
        let response = self.retrying(url, Retry::Metadata, Some(deadline), |budget| {
            self.agent
                .get(url)
                .config()
                .timeout_global(budget)
                .build()
                .call()
        })?;
        let status = response.status().as_u16();
        let body = read_limited(
            response,
            url,
            if status == 200 { max } else { MAX_ERROR_LEN },
            Some(deadline),
        )?;
        if status == 200 {
            Ok(body)
        } else {
            Err(error_for(url, status, &body))
        }
    }

    /// GETs a small optional document: `None` on `404`.
    pub fn get_optional(&self, url: &str, max: u64) -> Result<Option<Vec<u8>>, ClientError> {
        match self.get_bytes(url, max) {
            Ok(body) => Ok(Some(body)),
            Err(ClientError::NotFound { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// `POST /api/v1/build` with a JSON body; returns `200`/`202` replies, errors otherwise.
    pub fn post_build(&self, body: &[u8]) -> Result<Reply, ClientError> {
        self.post_json("/api/v1/build", body)
    }

    /// POSTs a JSON body to `path` on the server; returns `200`/`202` replies, errors
    /// otherwise.
    pub fn post_json(&self, path: &str, body: &[u8]) -> Result<Reply, ClientError> {
        let url = self.url(path);
        let deadline = self.deadline();
        let response = self.retrying(&url, Retry::Api, Some(deadline), |budget| {
            self.agent
                .post(&url)
                .config()
                .timeout_global(budget)
                .build()
                .header("Content-Type", "application/json")
                .send(body)
        })?;
        reply(response, &url, true, deadline)
    }

    /// `HEAD /api/v1/build/{hash}`: status and headers only. `405` is returned as a reply so the
    /// caller can switch to `GET`.
    pub fn head_build(&self, request_hash: &str) -> Result<Reply, ClientError> {
        let url = self.url(&format!("/api/v1/build/{request_hash}"));
        let response = self.retrying(&url, Retry::Api, Some(self.deadline()), |budget| {
            self.agent
                .head(&url)
                .config()
                .timeout_global(budget)
                .build()
                .call()
        })?;
        let reply = Reply {
            status: response.status().as_u16(),
            queue_position: header(&response, api::HEADER_QUEUE_POSITION)
                .and_then(|v| v.parse().ok()),
            imagebuilder_status: stage_header(&response),
            body: Vec::new(),
        };
        if reply.status == 404 {
            return Err(error_for(&url, 404, &[]));
        }
        Ok(reply)
    }

    /// `GET /api/v1/build/{hash}`; returns `200`/`202` replies, errors otherwise.
    pub fn get_build(&self, request_hash: &str) -> Result<Reply, ClientError> {
        let url = self.url(&format!("/api/v1/build/{request_hash}"));
        let deadline = self.deadline();
        let response = self.retrying(&url, Retry::Api, Some(deadline), |budget| {
            self.agent
                .get(&url)
                .config()
                .timeout_global(budget)
                .build()
                .call()
        })?;
        reply(response, &url, true, deadline)
    }

    /// Opens `url` for download from byte `offset` (a `Range` request when `offset > 0`).
    pub fn open_download(&self, url: &str, offset: u64) -> Result<Download, ClientError> {
        let response = self.retrying(url, Retry::Metadata, None, |_| {
            let request = self.agent.get(url);
            if offset > 0 {
                request.header("Range", format!("bytes={offset}-")).call()
            } else {
                request.call()
            }
        })?;
        let status = response.status().as_u16();
        match status {
            200 => {
                let total_len = header(&response, "content-length").and_then(|v| v.parse().ok());
                Ok(Download {
                    partial: false,
                    total_len,
                    reader: body_reader(response),
                })
            }
            206 => {
                let total_len =
                    header(&response, "content-range").and_then(|v| content_range_total(&v));
                Ok(Download {
                    partial: true,
                    total_len,
                    reader: body_reader(response),
                })
            }
            _ => {
                let body = read_limited(response, url, MAX_ERROR_LEN, None)?;
                Err(error_for(url, status, &body))
            }
        }
    }

    /// A metadata request's deadline, starting now.
    fn deadline(&self) -> Deadline {
        Deadline::start(self.options.metadata_deadline)
    }

    /// Runs `call` until it succeeds, fails for good, or the attempts (or the `deadline`) are
    /// used up. `call` gets the time left to the deadline, for ureq's `timeout_global`.
    fn retrying(
        &self,
        url: &str,
        retry: Retry,
        deadline: Option<Deadline>,
        mut call: impl FnMut(Option<Duration>) -> Result<Response<Body>, ureq::Error>,
    ) -> Result<Response<Body>, ClientError> {
        let mut delay = self.options.retry_delay;
        let attempts = self.options.attempts.max(1);
        let mut attempt = 1;
        loop {
            let budget = match deadline {
                Some(deadline) => Some(deadline.left().ok_or_else(|| deadline.missed(url))?),
                None => None,
            };
            let outcome = call(budget);
            if let (Err(_), Some(deadline)) = (&outcome, deadline)
                && deadline.left().is_none()
            {
                return Err(deadline.missed(url));
            }
            if let Ok(response) = &outcome {
                log::info!("`{url}`: {}", response.status());
            }
            let retryable = match &outcome {
                Ok(response) => retry.status(response.status()),
                Err(error) => is_connection_error(error),
            };
            if !retryable || attempt >= attempts {
                return outcome.map_err(|error| ClientError::Unreachable {
                    url: url.to_owned(),
                    message: error.to_string(),
                });
            }
            // `{delay:?}` prints "500ms", "2s": integer formatting, no float code on the router.
            match &outcome {
                Ok(response) => log::warn!(
                    "`{url}` answered {}; retrying in {delay:?} (attempt {attempt} of {attempts})",
                    response.status().as_u16(),
                ),
                Err(error) => log::warn!(
                    "cannot reach `{url}`: {error}; retrying in {delay:?} (attempt {attempt} of \
                     {attempts})",
                ),
            }
            // A wait that would outlast the deadline ends with it, and the next turn reports
            // the deadline missed.
            let wait = match deadline.and_then(|deadline| deadline.left()) {
                Some(left) => delay.min(left),
                None if deadline.is_some() => Duration::ZERO,
                None => delay,
            };
            thread::sleep(wait);
            delay = delay.saturating_mul(2);
            attempt += 1;
        }
    }
}

/// The total time one metadata request may take, and when it runs out.
#[derive(Debug, Clone, Copy)]
struct Deadline {
    limit: Duration,
    at: Instant,
}

impl Deadline {
    fn start(limit: Duration) -> Self {
        Self {
            limit,
            // An `Instant` this far ahead cannot overflow on any clock a router has; if it did,
            // now is the safe answer: the request is reported too slow, never waited on forever.
            at: Instant::now()
                .checked_add(limit)
                .unwrap_or_else(Instant::now),
        }
    }

    /// Time left; `None` once the deadline has passed.
    fn left(self) -> Option<Duration> {
        self.at
            .checked_duration_since(Instant::now())
            .filter(|left| !left.is_zero())
    }

    fn missed(self, url: &str) -> ClientError {
        ClientError::TooSlow {
            url: url.to_owned(),
            limit: self.limit,
        }
    }
}

/// Which answers are worth another attempt.
#[derive(Clone, Copy)]
enum Retry {
    /// Build API: a `500` is the build's verdict, not a hiccup.
    Api,
    /// Static documents and downloads: any 5xx may pass.
    Metadata,
}

impl Retry {
    fn status(self, status: StatusCode) -> bool {
        match status.as_u16() {
            502..=504 | 529 => true,
            500 => matches!(self, Self::Metadata),
            _ => false,
        }
    }
}

fn is_connection_error(error: &ureq::Error) -> bool {
    // A certificate the bundle does not trust will not be trusted on the next attempt either.
    if let ureq::Error::Io(io) = error
        && io
            .get_ref()
            .is_some_and(|inner| inner.is::<rustls::Error>())
    {
        return false;
    }
    matches!(
        error,
        ureq::Error::Io(_)
            | ureq::Error::Timeout(_)
            | ureq::Error::HostNotFound
            | ureq::Error::ConnectionFailed
            | ureq::Error::Protocol(_)
    )
}

fn ca_path(option: Option<&Path>) -> PathBuf {
    if let Some(path) = option {
        return path.to_owned();
    }
    match std::env::var_os(CA_FILE_ENV) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => PathBuf::from(DEFAULT_CA_FILE),
    }
}

/// TLS with the certificates of `path` as the only roots, on the ring provider.
fn tls_config(path: &Path) -> Result<TlsConfig, ClientError> {
    let file = std::fs::File::open(path).map_err(|source| ClientError::CaFile {
        path: path.to_owned(),
        source,
    })?;
    let mut pem = Vec::new();
    file.take(MAX_CA_FILE_LEN)
        .read_to_end(&mut pem)
        .map_err(|source| ClientError::CaFile {
            path: path.to_owned(),
            source,
        })?;
    let certs: Vec<_> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(cert)) => Some(cert.to_owned()),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(ClientError::CaEmpty {
            path: path.to_owned(),
        });
    }
    log::info!(
        "loaded {} CA certificates from `{}`",
        certs.len(),
        path.display()
    );
    Ok(TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .root_certs(RootCerts::new_with_certs(&certs))
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .build())
}

/// The proxy for `server` from the environment, honouring `no_proxy`.
fn proxy_for(server: &str) -> Result<Option<Proxy>, ClientError> {
    let host = host_of(server);
    if let Some(list) = env_first(&wire::NO_PROXY_ENV).map(|(_, value)| value)
        && no_proxy_matches(&list, host)
    {
        return Ok(None);
    }
    let names: &[&'static str] = if server.starts_with("https:") {
        &wire::HTTPS_PROXY_ENV
    } else {
        // curl ignores upper-case HTTP_PROXY (it can be set by a CGI request header).
        &wire::HTTP_PROXY_ENV
    };
    match env_first(names) {
        Some((variable, value)) => Proxy::new(&value)
            .map(Some)
            .map_err(|_| ClientError::Proxy { variable, value }),
        None => Ok(None),
    }
}

fn env_first(names: &[&'static str]) -> Option<(&'static str, String)> {
    names.iter().find_map(|&name| match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => Some((name, value)),
        _ => None,
    })
}

/// The host of `url` (no port, no user info), lower-cased by the caller's comparison.
fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if let Some(bracketed) = host_port.strip_prefix('[') {
        return bracketed.split(']').next().unwrap_or_default();
    }
    host_port.split(':').next().unwrap_or_default()
}

/// curl's `no_proxy` rule: `*` matches everything, otherwise each comma-separated entry (a
/// leading `.` optional) matches the host itself or any name below it.
fn no_proxy_matches(list: &str, host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    list.split([',', ' '])
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            let entry = entry.trim_start_matches('.').to_ascii_lowercase();
            host == entry || host.ends_with(&format!(".{entry}"))
        })
}

/// The build stage header; an empty one says nothing.
fn stage_header(response: &Response<Body>) -> Option<ImagebuilderStatus> {
    header(response, api::HEADER_IMAGEBUILDER_STATUS)
        .filter(|stage| !stage.is_empty())
        .map(|stage| ImagebuilderStatus::from_wire(&stage))
}

/// A response header as text; `name` in any case (header names are case-insensitive, and the
/// `http` crate's lookup folds the case), so proto's wire spelling serves as it is.
fn header(response: &Response<Body>, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(|value| value.trim().to_owned())
}

/// The total from `Content-Range: bytes 100-199/1234`.
fn content_range_total(value: &str) -> Option<u64> {
    value
        .rsplit_once('/')
        .and_then(|(_, total)| total.trim().parse().ok())
}

fn body_reader(response: Response<Body>) -> Box<dyn Read + Send> {
    Box::new(response.into_body().into_reader())
}

fn read_limited(
    response: Response<Body>,
    url: &str,
    max: u64,
    deadline: Option<Deadline>,
) -> Result<Vec<u8>, ClientError> {
    let mut body = Vec::new();
    let mut reader = response
        .into_body()
        .into_reader()
        .take(max.saturating_add(1));
    reader
        .read_to_end(&mut body)
        .map_err(|error| match deadline {
            Some(deadline) if deadline.left().is_none() => deadline.missed(url),
            _ => ClientError::Unreachable {
                url: url.to_owned(),
                message: format!("reading the response failed: {error}"),
            },
        })?;
    if u64::try_from(body.len()).unwrap_or(u64::MAX) > max {
        return Err(ClientError::TooLarge {
            url: url.to_owned(),
            max,
        });
    }
    Ok(body)
}

fn reply(
    response: Response<Body>,
    url: &str,
    build: bool,
    deadline: Deadline,
) -> Result<Reply, ClientError> {
    let status = response.status().as_u16();
    let queue_position = header(&response, api::HEADER_QUEUE_POSITION).and_then(|v| v.parse().ok());
    let imagebuilder_status = stage_header(&response);
    let ok = status == 200 || (build && status == 202);
    let max = if ok { MAX_JSON_LEN } else { MAX_ERROR_LEN };
    let body = read_limited(response, url, max, Some(deadline))?;
    if ok {
        Ok(Reply {
            status,
            queue_position,
            imagebuilder_status,
            body,
        })
    } else {
        Err(error_for(url, status, &body))
    }
}

/// The one table from an HTTP error status and body to a [`ClientError`].
pub(crate) fn error_for(url: &str, status: u16, body: &[u8]) -> ClientError {
    let words = ServerWords::read(status, body);
    let detail = words.details.join("; ");
    let url = url.to_owned();
    match status {
        400 => ClientError::BadRequest { url, detail },
        404 => ClientError::NotFound { url, detail },
        422 => ClientError::Validation {
            url,
            details: words.details,
        },
        500 => ClientError::Failed {
            url,
            detail,
            stdout: words.stdout,
            stderr: words.stderr,
        },
        529 => ClientError::Overloaded { detail },
        _ => ClientError::Status {
            url,
            status,
            detail,
        },
    }
}

/// What an error answer says, read with proto's parsers of ASU's bodies and cut to
/// [`MAX_DETAIL_LEN`] for messages.
struct ServerWords {
    /// One line per `detail` (FastAPI's `422` list has several).
    details: Vec<String>,
    stdout: Option<String>,
    stderr: Option<String>,
}

impl ServerWords {
    fn read(status: u16, body: &[u8]) -> Self {
        let text = |text: &str| excerpt_lines(text, MAX_DETAIL_LEN);
        let output = |output: Option<String>| output.filter(|s| !s.is_empty()).map(|s| text(&s));
        if status == 422
            && let Ok(errors) = api::parse_validation_errors(body)
        {
            return Self {
                details: errors.detail.iter().map(validation_item).collect(),
                stdout: None,
                stderr: None,
            };
        }
        // A failed build's `500` is ASU's build status body, which may carry the whole build
        // output (more than an error body's limit); other answers are read as an error body.
        if status == 500
            && let Ok(failed) = api::parse_status_body(body)
        {
            return Self {
                details: vec![text(&failed.detail)],
                stdout: output(failed.stdout),
                stderr: output(failed.stderr),
            };
        }
        match api::parse_error_body(body) {
            Ok(error) => Self {
                details: vec![text(&error.detail)],
                stdout: output(error.stdout),
                stderr: output(error.stderr),
            },
            // Not ASU's JSON: a proxy's or web server's page, or nothing at all.
            Err(_) => Self {
                details: if body.is_empty() {
                    Vec::new()
                } else {
                    vec![body_excerpt(body)]
                },
                stdout: None,
                stderr: None,
            },
        }
    }
}

/// One entry of FastAPI's validation list: `body.packages: field required`.
fn validation_item(item: &api::ValidationError) -> String {
    if item.msg.is_empty() {
        let raw = serde_json::to_string(item).unwrap_or_default();
        return excerpt_lines(&raw, MAX_DETAIL_LEN);
    }
    let location: Vec<String> = item
        .loc
        .iter()
        .map(|part| match part {
            api::LocItem::Index(index) => index.to_string(),
            api::LocItem::Key(key) => key.clone(),
        })
        .collect();
    if location.is_empty() {
        excerpt_lines(&item.msg, MAX_DETAIL_LEN)
    } else {
        excerpt_lines(
            &format!("{}: {}", location.join("."), item.msg),
            MAX_DETAIL_LEN,
        )
    }
}

/// A short description of a body that is not the JSON expected, for an error message: an HTML
/// page (a proxy's, a captive portal's, a web server's error page) by its title, other text by
/// its first line.
pub(crate) fn body_excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    // ASCII lowercasing keeps every byte offset, so offsets found in `lower` index `text`.
    let lower = text.to_ascii_lowercase();
    if lower.starts_with("<!doctype html") || lower.starts_with("<html") {
        let title = lower.find("<title>").and_then(|start| {
            let start = start + "<title>".len();
            let end = start + lower[start..].find("</title>")?;
            Some(text[start..end].trim())
        });
        return match title {
            Some(title) if !title.is_empty() => {
                excerpt_lines(&format!("an HTML page titled `{title}`"), MAX_DETAIL_LEN)
            }
            _ => "an HTML page".to_owned(),
        };
    }
    excerpt_lines(text.lines().next().unwrap_or_default(), MAX_DETAIL_LEN)
}

/// The last lines of a build's output, for an error message.
/// The last lines of a failed build's output, which hold the ImageBuilder's own error; a Python
/// traceback that ASU appends after it (its worker's exception) is left out, or the 20 lines
/// would show only the traceback.
fn output_tail(output: Option<&str>) -> String {
    const LINES: usize = 20;
    match output.map(without_traceback) {
        Some(text) if !text.trim().is_empty() => {
            let lines: Vec<&str> = text.trim_end().lines().collect();
            let start = lines.len().saturating_sub(LINES);
            format!(
                "\n\nbuild output:\n{}",
                lines.get(start..).unwrap_or_default().join("\n")
            )
        }
        _ => String::new(),
    }
}

/// `text` up to the first `Traceback (most recent call last):` line; all of it when that is at
/// the start (nothing else to show).
fn without_traceback(text: &str) -> &str {
    const MARKER: &str = "Traceback (most recent call last):";
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim() == MARKER {
            let before = text.get(..offset).unwrap_or(text);
            return if before.trim().is_empty() {
                text
            } else {
                before
            };
        }
        offset += line.len();
    }
    text
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

fn list_lines(details: &[String]) -> String {
    details.iter().map(|d| format!("\n  - {d}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_python_traceback_after_the_imagebuilder_error_is_left_out() {
        let mut stderr = String::from(
            "Collected errors:\n * opkg_install_cmd: Cannot install package nosuch.\n",
        );
        stderr.push_str("Traceback (most recent call last):\n");
        for n in 0..30 {
            stderr.push_str(&format!(
                "  File \"/app/asu/build.py\", line {n}, in build\n    run()\n"
            ));
        }
        stderr.push_str("RuntimeError: Error while building firmware\n");
        let shown = output_tail(Some(&stderr));
        assert!(shown.contains("Cannot install package nosuch."), "{shown}");
        assert!(!shown.contains("Traceback"), "{shown}");
        // Only a traceback: shown as it is, there is nothing else.
        let only = "Traceback (most recent call last):\n  File \"x\", line 1\nValueError: x\n";
        assert!(output_tail(Some(only)).contains("ValueError: x"));
        assert_eq!(without_traceback("no traceback\n"), "no traceback\n");
    }

    #[test]
    fn maps_a_422_list_detail_to_one_line_each() {
        let body = br#"{"detail":[{"loc":["body","packages",0],"msg":"string too long","type":"x"},
            {"loc":["body","target"],"msg":"field required","type":"missing"}]}"#;
        let error = error_for("http://s/api/v1/build", 422, body);
        assert_eq!(
            error.to_string(),
            "the server rejected the request to `http://s/api/v1/build`:\n  - \
             body.packages.0: string too long\n  - body.target: field required"
        );
    }

    #[test]
    fn maps_a_500_with_build_output() {
        let body =
            br#"{"detail":"Error: Impossible package selection","stdout":"out","stderr":""}"#;
        match error_for("u", 500, body) {
            ClientError::Failed {
                detail,
                stdout,
                stderr,
                ..
            } => {
                assert_eq!(detail, "Error: Impossible package selection");
                assert_eq!(stdout.as_deref(), Some("out"));
                assert_eq!(stderr, None);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn maps_asu_failed_build_and_string_422_bodies() {
        // ASU's own 500: the build status body, with `status` and the request hash.
        let body = br#"{"status": 500, "detail": "Error: Impossible package selection",
            "request_hash": "fd6e90748a0d8cd0cc1988dc98bb10bf0b164c0ead988a9fe98173367516b63d",
            "stdout": "", "stderr": "Collected errors"}"#;
        match error_for("u", 500, body) {
            ClientError::Failed {
                detail,
                stdout,
                stderr,
                ..
            } => {
                assert_eq!(detail, "Error: Impossible package selection");
                assert_eq!(stdout, None);
                assert_eq!(stderr.as_deref(), Some("Collected errors"));
            }
            other => panic!("unexpected {other:?}"),
        }
        match error_for("u", 422, br#"{"detail": "Unsupported target"}"#) {
            ClientError::Validation { details, .. } => {
                assert_eq!(details, ["Unsupported target"]);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn non_json_error_bodies_become_error_text() {
        let error = error_for("u", 502, b"Bad Gateway\n");
        assert_eq!(
            error.to_string(),
            "unexpected HTTP status 502 from `u`: Bad Gateway"
        );
        let page = b"<!DOCTYPE HTML>\n<html><head><title>Error response</title></head>\n<body>\n<p>Error code: 404</p></body></html>";
        assert_eq!(
            error_for("u", 404, page).to_string(),
            "not found on the server: `u`: an HTML page titled `Error response`"
        );
        assert_eq!(
            body_excerpt(b"<html><body>hi</body></html>"),
            "an HTML page"
        );
        assert_eq!(body_excerpt(b"\n  first\nsecond"), "first");
        assert_eq!(body_excerpt(&[0xff, b'<', b'x']), "\u{fffd}<x");
        assert!(matches!(
            error_for("u", 529, b"{}"),
            ClientError::Overloaded { .. }
        ));
        assert_eq!(
            error_for("u", 404, b"").to_string(),
            "not found on the server: `u`"
        );
        assert!(matches!(
            error_for("u", 400, br#"{"detail":"Unsupported profile: x"}"#),
            ClientError::BadRequest { detail, .. } if detail == "Unsupported profile: x"
        ));
    }

    #[test]
    fn finds_the_host_of_a_url() {
        assert_eq!(
            host_of("https://sysupgrade.openwrt.org/api"),
            "sysupgrade.openwrt.org"
        );
        assert_eq!(host_of("http://user:pw@10.0.0.1:8000/"), "10.0.0.1");
        assert_eq!(host_of("http://[::1]:8000"), "::1");
    }

    #[test]
    fn no_proxy_matches_hosts_and_subdomains() {
        assert!(no_proxy_matches("localhost, .lan", "router.lan"));
        assert!(no_proxy_matches("example.org", "asu.example.org"));
        assert!(no_proxy_matches("*", "anything"));
        assert!(!no_proxy_matches("example.org", "badexample.org"));
        assert!(!no_proxy_matches("", "example.org"));
    }

    #[test]
    fn reads_the_total_of_a_content_range() {
        assert_eq!(content_range_total("bytes 100-199/1234"), Some(1234));
        assert_eq!(content_range_total("bytes 100-199/*"), None);
    }

    #[test]
    fn refuses_a_missing_or_empty_ca_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.crt");
        assert!(matches!(
            tls_config(&missing),
            Err(ClientError::CaFile { .. })
        ));
        let empty = dir.path().join("empty.crt");
        std::fs::write(&empty, b"no certificates here\n").unwrap();
        assert!(matches!(
            tls_config(&empty),
            Err(ClientError::CaEmpty { .. })
        ));
    }
}
