//! Reading one HTTP/1.1 request off a loopback connection, for the fake servers in the agent's
//! and the ubus plugin's tests (one request per connection, no chunked bodies).
//!
//! The fake servers differ in what they answer; how they read what was asked is one thing.

use std::io::{self, BufRead};

/// The largest body read; a fake server's client sends build requests of a few KiB.
pub const MAX_BODY: usize = 1 << 20;

/// One request as the fake server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `HEAD`, `POST`, ...
    pub method: String,
    /// The request target, query included.
    pub path: String,
    /// The headers as sent (names in their case, in order), for a proxy to pass on.
    pub headers: Vec<(String, String)>,
    /// `Content-Length` bytes of body.
    pub body: Vec<u8>,
}

impl Request {
    /// The value of the first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// Reads the request line, the headers and the body. `None`: the client closed the connection
/// before sending a request line.
pub fn read(reader: &mut impl BufRead) -> io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    let length: usize = header(&headers, "content-length")
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    if length > MAX_BODY {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("request body of {length} bytes, more than {MAX_BODY}"),
        ));
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(Some(Request {
        method,
        path,
        headers,
        body,
    }))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(header, _)| header.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}
