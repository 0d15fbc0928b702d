//! A small HTTP/1.1 file server for the fixture mirror, with fault injection.
//!
//! [`MirrorServer::start`] serves a directory on `127.0.0.1:0` from a background thread:
//! `GET` and `HEAD`, `Range: bytes=N-[M]` (206), directory listings, 404 for anything missing
//! and 400 for paths that leave the root. Every response says `Connection: close`.
//!
//! Faults let server tests see how they cope with a bad mirror: answer a path prefix with a
//! status ([`MirrorServer::fail_with_status`]), cut the body after N bytes
//! ([`MirrorServer::cut_after`]), or wait before answering ([`MirrorServer::delay`]); each
//! for every request or only the next `times`. [`MirrorServer::requests`] counts requests per
//! path. It uses only the standard library, one thread per connection.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// Longest request head (request line and headers) accepted, in bytes.
pub const MAX_REQUEST_HEAD: usize = 16 * 1024;
/// How long a connection may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What a fault does to a matching request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    /// Answer with this status and a short text body.
    Status(u16),
    /// Send the headers (full `Content-Length`) but only this many body bytes, then close.
    CutAfter(u64),
    /// Wait this long, then answer normally.
    Delay(Duration),
}

#[derive(Debug, Clone)]
struct Fault {
    prefix: String,
    action: FaultAction,
    remaining: Option<u32>,
}

#[derive(Debug, Default)]
struct State {
    faults: Vec<Fault>,
    counts: BTreeMap<String, u64>,
}

/// A running mirror server; stops when dropped.
#[derive(Debug)]
pub struct MirrorServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MirrorServer {
    /// Serves `root` on `127.0.0.1:0`.
    pub fn start(root: &Path) -> io::Result<Self> {
        Self::start_on(root, "127.0.0.1:0")
    }

    /// Serves `root` on `address` (e.g. `127.0.0.1:8080`).
    pub fn start_on(root: &Path, address: &str) -> io::Result<Self> {
        let listener = TcpListener::bind(address)?;
        let addr = listener.local_addr()?;
        let root = root.canonicalize()?;
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let state = Arc::clone(&state);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || accept_loop(&listener, &root, &state, &stop))
        };
        Ok(Self {
            addr,
            state,
            stop,
            thread: Some(thread),
        })
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers requests whose path starts with `prefix` with `status`.
    pub fn fail_with_status(&self, prefix: &str, status: u16) {
        self.add_fault(prefix, FaultAction::Status(status), None);
    }

    /// Cuts bodies of requests whose path starts with `prefix` after `bytes` bytes.
    pub fn cut_after(&self, prefix: &str, bytes: u64) {
        self.add_fault(prefix, FaultAction::CutAfter(bytes), None);
    }

    /// Delays answers to requests whose path starts with `prefix`.
    pub fn delay(&self, prefix: &str, duration: Duration) {
        self.add_fault(prefix, FaultAction::Delay(duration), None);
    }

    /// Adds a fault; with `times` it applies to that many matching requests only. Faults are
    /// tried in the order they were added; the first match applies.
    pub fn add_fault(&self, prefix: &str, action: FaultAction, times: Option<u32>) {
        self.lock().faults.push(Fault {
            prefix: prefix.to_owned(),
            action,
            remaining: times,
        });
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// How many requests (any method) asked for exactly `path`.
    pub fn requests(&self, path: &str) -> u64 {
        self.lock().counts.get(path).copied().unwrap_or(0)
    }

    /// Every requested path with its count.
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.lock().counts.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for MirrorServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop up so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, root: &Path, state: &Arc<Mutex<State>>, stop: &AtomicBool) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let root = root.to_path_buf();
        let state = Arc::clone(state);
        std::thread::spawn(move || {
            let _ = handle(stream, &root, &state);
        });
    }
}

struct Request {
    method: String,
    path: String,
    range: Option<(u64, Option<u64>)>,
}

fn handle(mut stream: TcpStream, root: &Path, state: &Mutex<State>) -> io::Result<()> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    let request = match read_request(&stream) {
        Ok(request) => request,
        Err(_) => return respond(&mut stream, 400, "text/plain", b"bad request\n", true),
    };
    let head_only = request.method == "HEAD";
    let fault = {
        let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
        *state.counts.entry(request.path.clone()).or_insert(0) += 1;
        take_fault(&mut state.faults, &request.path)
    };
    let mut cut = None;
    match fault {
        Some(FaultAction::Status(status)) => {
            let body = format!("injected status {status}\n");
            return respond(
                &mut stream,
                status,
                "text/plain",
                body.as_bytes(),
                head_only,
            );
        }
        Some(FaultAction::CutAfter(bytes)) => cut = Some(bytes),
        Some(FaultAction::Delay(duration)) => std::thread::sleep(duration),
        None => {}
    }
    if request.method != "GET" && !head_only {
        return respond(
            &mut stream,
            405,
            "text/plain",
            b"method not allowed\n",
            false,
        );
    }
    let Some(path) = resolve_path(root, &request.path) else {
        return respond(&mut stream, 400, "text/plain", b"bad path\n", head_only);
    };
    if path.is_dir() {
        let listing = listing(&path, &request.path);
        return respond(&mut stream, 200, "text/html", listing.as_bytes(), head_only);
    }
    let Ok(body) = fs::read(&path) else {
        return respond(&mut stream, 404, "text/plain", b"not found\n", head_only);
    };
    let content_type = content_type(&request.path);
    let length = body.len() as u64;
    let (status, start, end) = match request.range {
        Some((start, end)) if start < length => (
            206,
            start,
            end.map_or(length, |e| e.saturating_add(1).min(length)),
        ),
        Some(_) => {
            let header = format!(
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{length}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            return stream.write_all(header.as_bytes());
        }
        None => (200, 0, length),
    };
    let slice = usize::try_from(start)
        .ok()
        .zip(usize::try_from(end).ok())
        .and_then(|(s, e)| body.get(s..e))
        .unwrap_or(&[]);
    let mut header = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n",
        reason(status),
        slice.len()
    );
    if status == 206 {
        header.push_str(&format!(
            "Content-Range: bytes {start}-{}/{length}\r\n",
            end.saturating_sub(1)
        ));
    }
    header.push_str("\r\n");
    stream.write_all(header.as_bytes())?;
    if head_only {
        return Ok(());
    }
    let limit = cut.map_or(slice.len(), |bytes| {
        usize::try_from(bytes)
            .unwrap_or(usize::MAX)
            .min(slice.len())
    });
    stream.write_all(slice.get(..limit).unwrap_or(slice))?;
    stream.flush()
}

fn take_fault(faults: &mut Vec<Fault>, path: &str) -> Option<FaultAction> {
    let position = faults.iter().position(|f| path.starts_with(&f.prefix))?;
    let fault = faults.get_mut(position)?;
    let action = fault.action;
    if let Some(remaining) = fault.remaining.as_mut() {
        *remaining = remaining.saturating_sub(1);
        if *remaining == 0 {
            faults.remove(position);
        }
    }
    Some(action)
}

fn read_request(stream: &TcpStream) -> io::Result<Request> {
    let mut reader = BufReader::new(stream.take(MAX_REQUEST_HEAD as u64));
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Err(io::Error::other("bad request line"));
    };
    let method = method.to_owned();
    let path = percent_decode(target.split(['?', '#']).next().unwrap_or("/"));
    let mut range = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.trim().eq_ignore_ascii_case("range")
        {
            range = parse_range(value.trim());
        }
    }
    Ok(Request {
        method,
        path,
        range,
    })
}

fn parse_range(value: &str) -> Option<(u64, Option<u64>)> {
    let spec = value.strip_prefix("bytes=")?;
    let (start, end) = spec.split_once('-')?;
    let start = start.trim().parse().ok()?;
    let end = match end.trim() {
        "" => None,
        text => Some(text.parse().ok()?),
    };
    Some((start, end))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        let decoded = (byte == b'%')
            .then(|| bytes.get(index.saturating_add(1)..index.saturating_add(3)))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match decoded {
            Some(value) => {
                out.push(value);
                index = index.saturating_add(3);
            }
            None => {
                out.push(byte);
                index = index.saturating_add(1);
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The file for a URL path, or `None` when the path would leave `root`.
fn resolve_path(root: &Path, url_path: &str) -> Option<PathBuf> {
    let mut path = root.to_path_buf();
    for component in Path::new(url_path.trim_start_matches('/')).components() {
        match component {
            Component::Normal(part) => path.push(part),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(path)
}

fn listing(dir: &Path, url_path: &str) -> String {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if e.path().is_dir() {
                        format!("{name}/")
                    } else {
                        name
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let base = if url_path.ends_with('/') {
        url_path.to_owned()
    } else {
        format!("{url_path}/")
    };
    let mut html = format!("<html><body><h1>Index of {base}</h1><ul>\n");
    for name in names {
        html.push_str(&format!("<li><a href=\"{base}{name}\">{name}</a></li>\n"));
    }
    html.push_str("</ul></body></html>\n");
    html
}

fn content_type(path: &str) -> &'static str {
    if path.ends_with(".json") {
        "application/json"
    } else if path.ends_with("sha256sums")
        || path.ends_with(".sig")
        || path.ends_with("Packages")
        || path.ends_with(".conf")
        || path.ends_with(".manifest")
    {
        "text/plain"
    } else {
        "application/octet-stream"
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn respond(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &[u8],
    head_only: bool,
) -> io::Result<()> {
    let header = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reason(status),
        body.len()
    );
    stream.write_all(header.as_bytes())?;
    if !head_only {
        stream.write_all(body)?;
    }
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges() {
        assert_eq!(parse_range("bytes=10-"), Some((10, None)));
        assert_eq!(parse_range("bytes=0-9"), Some((0, Some(9))));
        assert_eq!(parse_range("items=0-9"), None);
    }

    #[test]
    fn refuses_paths_leaving_the_root() {
        let root = Path::new("/srv");
        assert_eq!(resolve_path(root, "/a/b"), Some(PathBuf::from("/srv/a/b")));
        assert_eq!(resolve_path(root, "/a/../../etc/passwd"), None);
    }

    #[test]
    fn decodes_percent_escapes() {
        assert_eq!(percent_decode("/a%20b%7e"), "/a b~");
        assert_eq!(percent_decode("/100%"), "/100%");
    }

    #[test]
    fn limited_faults_expire() {
        let mut faults = vec![Fault {
            prefix: "/a".to_owned(),
            action: FaultAction::Status(500),
            remaining: Some(1),
        }];
        assert_eq!(
            take_fault(&mut faults, "/a/b"),
            Some(FaultAction::Status(500))
        );
        assert_eq!(take_fault(&mut faults, "/a/b"), None);
    }
}
