//! How the fixture ImageBuilder downloads a package list: a plain HTTP/1.1 `GET`, what opkg's
//! `uclient-fetch` does for an `http://` feed, with the standard library only.
//!
//! Only `http://` is spoken (the fixture mirror serves loopback HTTP); an `https://` feed fails
//! like an unreachable one. A body is read to the end of the connection and must match its
//! `Content-Length`, so a cut transfer fails as it does for `uclient-fetch`. Lists are bounded
//! by the caller's limit, compressed and uncompressed.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// How long connecting and each read may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Longest response head read, in bytes.
const MAX_HEAD: usize = 16 * 1024;

/// Why a download failed, with the exit status `uclient-fetch` gives for it (opkg prints it as
/// `wget returned N`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// Not an `http://host[:port]/path` URL (`https://` included: the fixture has no TLS).
    #[error("unsupported URL `{0}`")]
    Url(String),
    /// Connecting, sending or receiving failed.
    #[error("network error: {0}")]
    Network(String),
    /// The server answered with a status other than 200.
    #[error("HTTP error {0}")]
    Status(u16),
    /// The body is larger than the limit, shorter than announced, or not gzip.
    #[error("bad body: {0}")]
    Body(String),
}

impl FetchError {
    /// `uclient-fetch`'s exit status: 4 for network trouble, 8 for an error answer (wget's
    /// convention, which uclient-fetch follows).
    pub fn exit_status(&self) -> i32 {
        match self {
            Self::Status(_) => 8,
            _ => 4,
        }
    }
}

/// The body of `GET url`, at most `max` bytes.
pub fn get(url: &str, max: usize) -> Result<Vec<u8>, FetchError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| FetchError::Url(url.to_owned()))?;
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') || path.contains([' ', '\r', '\n']) {
        return Err(FetchError::Url(url.to_owned()));
    }
    let address = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let network = |error: std::io::Error| FetchError::Network(error.to_string());
    let target = address
        .to_socket_addrs()
        .map_err(network)?
        .next()
        .ok_or_else(|| FetchError::Network(format!("`{authority}` has no address")))?;
    let mut stream = TcpStream::connect_timeout(&target, TIMEOUT).map_err(network)?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(network)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(network)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: uclient-fetch\r\nConnection: close\r\n\r\n"
    )
    .map_err(network)?;
    let limit = max.saturating_add(MAX_HEAD);
    let mut response = Vec::new();
    stream
        .take(u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1))
        .read_to_end(&mut response)
        .map_err(network)?;
    let head_end = response
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .filter(|end| *end <= MAX_HEAD)
        .ok_or_else(|| FetchError::Network("no complete response head".to_owned()))?;
    let head = String::from_utf8_lossy(response.get(..head_end).unwrap_or_default()).into_owned();
    let body = response
        .get(head_end.saturating_add(4)..)
        .unwrap_or_default();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| FetchError::Network("no status line".to_owned()))?;
    if status != 200 {
        return Err(FetchError::Status(status));
    }
    if body.len() > max {
        return Err(FetchError::Body(format!("larger than {max} bytes")));
    }
    let announced = lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())
            .flatten()
    });
    if let Some(length) = announced
        && length != body.len()
    {
        return Err(FetchError::Body(format!(
            "{} of {length} bytes received",
            body.len()
        )));
    }
    Ok(body.to_vec())
}

/// `bytes` gunzipped, at most `max` bytes.
pub fn gunzip(bytes: &[u8], max: usize) -> Result<Vec<u8>, FetchError> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .take(u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|error| FetchError::Body(format!("not gzip: {error}")))?;
    if out.len() > max {
        return Err(FetchError::Body(format!(
            "larger than {max} bytes uncompressed"
        )));
    }
    Ok(out)
}
