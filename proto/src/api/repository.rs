//! Extra package repositories in a build request, and the allow-list that admits them.
//!
//! ASU (<https://github.com/openwrt/asu>, `asu/build.py`) admits a request's `repositories` when
//! the URL string starts with an entry of `repository_allow_list`, and writes each as a
//! `src/gz <name> <url>` line into the ImageBuilder's `repositories.conf`. A plain string prefix
//! lets through URLs that name another place than they seem to: `https://allowed.example@evil/`
//! (the allowed host is only the user name), `https://allowed.example/feed/../../evil/`,
//! `%2e%2e` and `%2f` that a server decodes into `..` and `/`, a host with a trailing dot, and a
//! line break in a name or URL that adds a repository line of its own.
//!
//! Here both the allow-list entries and the requested URLs go through one strict reading
//! ([`RepositoryUrl::parse`]) and are compared part by part: scheme exactly (`https` never
//! admits `http`), host case-insensitively (IPv6 literals in their canonical form), the port
//! with the scheme's default filled in, and the path by whole segments (`/feeds/x` admits
//! `/feeds/x` and `/feeds/x/...`, never `/feeds/x-evil`). Anything a reader could take two ways is
//! refused with its own [`RepositoryError`] instead of being normalised: user info, other
//! schemes, `.` and `..` segments, percent-encoded dots, slashes and backslashes, backslashes,
//! queries and fragments, whitespace and control characters, trailing dots in host names.
//!
//! Limits: a URL is at most [`MAX_URL_LEN`] bytes; the request parser bounds the number of
//! repositories ([`crate::api::RequestLimits`]).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::excerpt::{MAX_VALUE_CHARS, excerpt};

/// Longest repository URL read, in bytes.
pub const MAX_URL_LEN: usize = 2048;

/// Why a repository URL is refused. `Display` names the rule; the URL itself is shown by the
/// caller's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RepositoryError {
    /// Longer than [`MAX_URL_LEN`].
    #[error("the URL is longer than {max} bytes")]
    TooLong {
        /// The limit.
        max: usize,
    },
    /// Whitespace or a control character (a line break would add a line to
    /// `repositories.conf`).
    #[error("the URL contains whitespace or a control character")]
    ControlCharacter,
    /// Not `http://` or `https://`.
    #[error("the URL does not start with `http://` or `https://`")]
    Scheme,
    /// `user@` or `user:password@` before the host.
    #[error("the URL has user information before the host (`…@`)")]
    UserInfo,
    /// No host, or a host with characters a host name cannot have.
    #[error("the URL's host `{host}` is not a host name or an IP address")]
    Host {
        /// The host as written, shortened.
        host: String,
    },
    /// A host name ending in a dot (`example.org.`), which names the same host as without it.
    #[error("the URL's host ends in a dot")]
    TrailingDot,
    /// A port that is not a number from 1 to 65535.
    #[error("the URL's port is not a number from 1 to 65535")]
    Port,
    /// A backslash, which some readers take for a slash.
    #[error("the URL contains a backslash")]
    Backslash,
    /// `%2e`, `%2f` or `%5c`: an encoded dot, slash or backslash, or a `%` not followed by two
    /// hex digits.
    #[error("the URL's path has a percent-encoded dot, slash or backslash, or a stray `%`")]
    EncodedSeparator,
    /// A `.` or `..` path segment.
    #[error("the URL's path has a `.` or `..` segment")]
    DotSegment,
    /// A `?query` or `#fragment`, which opkg and apk would send or drop unpredictably.
    #[error("the URL has a query or a fragment")]
    QueryOrFragment,
    /// Well-formed, but under no entry of the allow-list.
    #[error("the URL is not under any entry of the server's repository allow-list")]
    NotAllowed,
}

/// A repository URL read strictly: lower-case scheme and host, the effective port, the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryUrl {
    scheme: Scheme,
    host: Host,
    port: u16,
    path: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn default_port(self) -> u16 {
        match self {
            Self::Http => 80,
            Self::Https => 443,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Name(String),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

impl RepositoryUrl {
    /// Reads `url` strictly (see the module docs); the first rule it breaks is the error.
    pub fn parse(url: &str) -> Result<Self, RepositoryError> {
        if url.len() > MAX_URL_LEN {
            return Err(RepositoryError::TooLong { max: MAX_URL_LEN });
        }
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(RepositoryError::ControlCharacter);
        }
        if url.contains('\\') {
            return Err(RepositoryError::Backslash);
        }
        let (scheme, rest) = split_scheme(url)?;
        if rest.contains(['?', '#']) {
            return Err(RepositoryError::QueryOrFragment);
        }
        let (authority, path) = match rest.find('/') {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(RepositoryError::UserInfo);
        }
        let (host, port) = split_port(authority)?;
        let host = parse_host(host)?;
        let port = match port {
            Some(port) => port,
            None => scheme.default_port(),
        };
        check_path(path)?;
        Ok(Self {
            scheme,
            host,
            port,
            path: if path.is_empty() {
                "/".to_owned()
            } else {
                path.to_owned()
            },
        })
    }

    /// Whether this URL lies under `prefix`: same scheme, host and port, and `prefix`'s path
    /// segments are the first segments of this one.
    pub fn is_under(&self, prefix: &Self) -> bool {
        if self.scheme != prefix.scheme || self.host != prefix.host || self.port != prefix.port {
            return false;
        }
        let base = prefix.path.trim_end_matches('/');
        match self.path.strip_prefix(base) {
            Some(rest) => rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
    }
}

impl fmt::Display for RepositoryUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        write!(f, "{scheme}://")?;
        match &self.host {
            Host::Name(name) => f.write_str(name)?,
            Host::V4(address) => write!(f, "{address}")?,
            Host::V6(address) => write!(f, "[{address}]")?,
        }
        if self.port != self.scheme.default_port() {
            write!(f, ":{}", self.port)?;
        }
        f.write_str(&self.path)
    }
}

/// The server's `repository_allow_list`, each entry read as a [`RepositoryUrl`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    entries: Vec<RepositoryUrl>,
}

impl AllowList {
    /// Reads every entry; the first that breaks a rule is returned with its text.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, (String, RepositoryError)> {
        entries
            .iter()
            .map(|entry| {
                let entry = entry.as_ref();
                RepositoryUrl::parse(entry)
                    .map_err(|error| (excerpt(entry, MAX_VALUE_CHARS), error))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|entries| Self { entries })
    }

    /// Admits `url` when it reads strictly and lies under an entry.
    pub fn admit(&self, url: &str) -> Result<RepositoryUrl, RepositoryError> {
        let url = RepositoryUrl::parse(url)?;
        if self.entries.iter().any(|entry| url.is_under(entry)) {
            Ok(url)
        } else {
            Err(RepositoryError::NotAllowed)
        }
    }

    /// True when nothing is allowed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn split_scheme(url: &str) -> Result<(Scheme, &str), RepositoryError> {
    let (scheme, rest) = url.split_once("://").ok_or(RepositoryError::Scheme)?;
    let scheme = if scheme.eq_ignore_ascii_case("https") {
        Scheme::Https
    } else if scheme.eq_ignore_ascii_case("http") {
        Scheme::Http
    } else {
        return Err(RepositoryError::Scheme);
    };
    Ok((scheme, rest))
}

/// Splits `host[:port]` and `[v6][:port]`.
fn split_port(authority: &str) -> Result<(&str, Option<u16>), RepositoryError> {
    let (host, port) = if authority.starts_with('[') {
        match authority.find(']') {
            Some(end) => {
                let (host, rest) = authority.split_at(end.saturating_add(1));
                match rest.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None if rest.is_empty() => (host, None),
                    None => {
                        return Err(RepositoryError::Host {
                            host: excerpt(authority, MAX_VALUE_CHARS),
                        });
                    }
                }
            }
            None => {
                return Err(RepositoryError::Host {
                    host: excerpt(authority, MAX_VALUE_CHARS),
                });
            }
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(text) => {
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(RepositoryError::Port);
            }
            match text.parse::<u16>() {
                Ok(0) | Err(_) => return Err(RepositoryError::Port),
                Ok(port) => Some(port),
            }
        }
        None => None,
    };
    Ok((host, port))
}

fn parse_host(host: &str) -> Result<Host, RepositoryError> {
    let bad = || RepositoryError::Host {
        host: excerpt(host, MAX_VALUE_CHARS),
    };
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<Ipv6Addr>().map(Host::V6).map_err(|_| bad());
    }
    if host.is_empty() {
        return Err(bad());
    }
    if host.ends_with('.') {
        return Err(RepositoryError::TrailingDot);
    }
    if let Ok(address) = host.parse::<Ipv4Addr>() {
        return Ok(Host::V4(address));
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    // All-digit labels would let `127.1` or `0x7f.1` reach a resolver that reads them as an
    // address; names need a letter somewhere.
    if host.len() > 253
        || !host.split('.').all(label_ok)
        || host.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        || host.to_ascii_lowercase().contains("0x")
            && host.split('.').all(|label| {
                label
                    .to_ascii_lowercase()
                    .strip_prefix("0x")
                    .is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
                    || label.bytes().all(|b| b.is_ascii_digit())
            })
    {
        return Err(bad());
    }
    Ok(Host::Name(host.to_ascii_lowercase()))
}

fn check_path(path: &str) -> Result<(), RepositoryError> {
    let bytes = path.as_bytes();
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        if byte == b'%' {
            let encoded = bytes
                .get(at.saturating_add(1)..at.saturating_add(3))
                .filter(|pair| pair.iter().all(u8::is_ascii_hexdigit))
                .ok_or(RepositoryError::EncodedSeparator)?;
            let value = u8::from_str_radix(std::str::from_utf8(encoded).unwrap_or("zz"), 16)
                .map_err(|_| RepositoryError::EncodedSeparator)?;
            if matches!(value, b'.' | b'/' | b'\\') || value.is_ascii_control() {
                return Err(RepositoryError::EncodedSeparator);
            }
        }
        at = at.saturating_add(1);
    }
    if path
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err(RepositoryError::DotSegment);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> AllowList {
        AllowList::parse(entries).unwrap()
    }

    #[test]
    fn admits_urls_under_an_entry_by_whole_segments() {
        let allowed = list(&["https://feed.example.org/openwrt"]);
        for url in [
            "https://feed.example.org/openwrt/packages",
            "https://feed.example.org/openwrt",
            "https://feed.example.org/openwrt/",
            "HTTPS://Feed.Example.ORG/openwrt/x",
            "https://feed.example.org:443/openwrt/x",
        ] {
            assert!(allowed.admit(url).is_ok(), "{url}");
        }
        assert!(
            list(&[])
                .admit("https://feed.example.org/openwrt/x")
                .is_err()
        );
        let v6 = list(&["http://[2001:db8::1]:8080/feed/"]);
        assert!(v6.admit("http://[2001:db8:0:0::1]:8080/feed/x").is_ok());
    }

    /// Every known way around a string-prefix allow-list, and the rule that stops it.
    #[test]
    fn refuses_every_known_bypass_with_its_cause() {
        use RepositoryError::*;
        let allowed = list(&[
            "https://feed.example.org/openwrt",
            "http://[2001:db8::1]/feed",
            "http://192.0.2.7/feed",
        ]);
        let cases: &[(&str, RepositoryError)] = &[
            // Userinfo: the allowed host is only a user name.
            ("https://feed.example.org@evil.example/openwrt/x", UserInfo),
            (
                "https://feed.example.org:pw@evil.example/openwrt/x",
                UserInfo,
            ),
            ("https://user@feed.example.org/openwrt/x", UserInfo),
            // Another scheme.
            ("http://feed.example.org/openwrt/packages", NotAllowed),
            ("file:///openwrt/packages", Scheme),
            ("ftp://feed.example.org/openwrt/x", Scheme),
            ("feed.example.org/openwrt/x", Scheme),
            // Percent-encoded dots, slashes, backslashes; a stray `%`.
            (
                "https://feed.example.org/openwrt/%2e%2e/evil",
                EncodedSeparator,
            ),
            (
                "https://feed.example.org/openwrt/%2E%2E/evil",
                EncodedSeparator,
            ),
            (
                "https://feed.example.org/openwrt%2f..%2fevil",
                EncodedSeparator,
            ),
            ("https://feed.example.org/openwrt/%5c", EncodedSeparator),
            ("https://feed.example.org/openwrt/%0a", EncodedSeparator),
            ("https://feed.example.org/openwrt/%zz", EncodedSeparator),
            ("https://feed.example.org/openwrt/%2", EncodedSeparator),
            // Dot segments.
            ("https://feed.example.org/openwrt/../evil", DotSegment),
            ("https://feed.example.org/openwrt/./x", DotSegment),
            ("https://feed.example.org/openwrt/..", DotSegment),
            // Trailing dots, look-alike hosts.
            ("https://feed.example.org./openwrt/x", TrailingDot),
            ("https://feed.example.org.evil.com/openwrt/x", NotAllowed),
            ("https://evil-feed.example.org/openwrt/x", NotAllowed),
            // A longer path segment is another directory.
            ("https://feed.example.org/openwrtx/y", NotAllowed),
            ("https://feed.example.org/openwrt-evil", NotAllowed),
            // Ports: the default is the same place, another is not.
            ("https://feed.example.org:8443/openwrt/x", NotAllowed),
            ("https://feed.example.org:0/openwrt/x", Port),
            ("https://feed.example.org:99999/openwrt/x", Port),
            ("https://feed.example.org:+443/openwrt/x", Port),
            // IPv6 and IPv4 literals: another address, a mangled literal, a decimal alias.
            ("http://[2001:db8::2]/feed/x", NotAllowed),
            (
                "http://[2001:db8::1/feed/x",
                Host {
                    host: "[2001:db8::1".into(),
                },
            ),
            ("http://[::ffff:192.0.2.7]/feed/x", NotAllowed),
            (
                "http://3221226247/feed/x",
                Host {
                    host: "3221226247".into(),
                },
            ),
            (
                "http://0xc0.0.2.7/feed/x",
                Host {
                    host: "0xc0.0.2.7".into(),
                },
            ),
            ("http://192.0.2.7.evil.example/feed/x", NotAllowed),
            // Line and space injection (a second `src/gz` line), control characters.
            (
                "https://feed.example.org/openwrt/x\nsrc/gz evil http://evil/",
                ControlCharacter,
            ),
            ("https://feed.example.org/openwrt/x evil", ControlCharacter),
            ("https://feed.example.org/openwrt/x\u{0}", ControlCharacter),
            (
                "https://feed.example.org/openwrt/x\u{2028}",
                ControlCharacter,
            ),
            // Backslashes, queries and fragments.
            (
                "https://feed.example.org\\@evil.example/openwrt/x",
                Backslash,
            ),
            ("https://feed.example.org/openwrt\\..\\evil", Backslash),
            ("https://feed.example.org/openwrt/x?y=1", QueryOrFragment),
            (
                "https://evil.example#@feed.example.org/openwrt/x",
                QueryOrFragment,
            ),
            // No host at all.
            (
                "https:///openwrt/x",
                Host {
                    host: String::new(),
                },
            ),
            (
                "https://:443/openwrt/x",
                Host {
                    host: String::new(),
                },
            ),
            (
                "https://ex_ample.org/openwrt/x",
                Host {
                    host: "ex_ample.org".into(),
                },
            ),
        ];
        for (url, cause) in cases {
            assert_eq!(allowed.admit(url).as_ref().err(), Some(cause), "{url:?}");
        }
        let long = format!(
            "https://feed.example.org/openwrt/{}",
            "a".repeat(MAX_URL_LEN)
        );
        assert_eq!(
            allowed.admit(&long).err(),
            Some(TooLong { max: MAX_URL_LEN })
        );
    }

    #[test]
    fn allow_list_entries_are_read_by_the_same_rules() {
        assert_eq!(
            AllowList::parse(&["https://feed.example.org@x/"]).unwrap_err(),
            (
                "https://feed.example.org@x/".to_owned(),
                RepositoryError::UserInfo
            )
        );
        assert!(AllowList::parse(&["https://feed.example.org"]).is_ok());
        // An entry of the bare host admits everything on it.
        assert!(
            list(&["https://feed.example.org"])
                .admit("https://feed.example.org/any/path")
                .is_ok()
        );
    }

    #[test]
    fn displays_the_url_as_read() {
        let url = RepositoryUrl::parse("HTTPS://Feed.Example.org:443/openwrt/x").unwrap();
        assert_eq!(url.to_string(), "https://feed.example.org/openwrt/x");
        let url = RepositoryUrl::parse("http://[2001:DB8:0::1]:8080/f").unwrap();
        assert_eq!(url.to_string(), "http://[2001:db8::1]:8080/f");
    }
}
