//! Answering with a [`Document`]: content coding from `Accept-Encoding` (`br`, then `gzip`,
//! then the body as it is) and `304 Not Modified` for `If-None-Match` / `If-Modified-Since`
//! (RFC 9110 §12.5.3 and §13). Only `200` answers are conditional: a `202` of a queued build
//! changes with every poll, so it carries no validators.

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;

use crate::document::{Document, Encoding, MIN_COMPRESSED_BYTES};

/// Longest `Accept-Encoding` read; browsers send about 30 bytes. Beyond it the body is sent
/// uncompressed rather than scanning whatever a client sends.
const MAX_ACCEPT_ENCODING_BYTES: usize = 256;

/// Most `If-None-Match` bytes compared; a longer list is treated as no match.
const MAX_IF_NONE_MATCH_BYTES: usize = 1024;

/// The request headers that choose how a [`Document`] is answered. Extracting it clones three
/// header values (reference-counted), never the whole header map.
#[derive(Debug, Default)]
pub(crate) struct Negotiation {
    accept_encoding: Option<HeaderValue>,
    if_none_match: Option<HeaderValue>,
    if_modified_since: Option<HeaderValue>,
}

impl<S: Send + Sync> FromRequestParts<S> for Negotiation {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let mut negotiation = Self::of(&parts.headers);
        // A `304` answers only GET and HEAD (RFC 9110 §15.4.5); a cache-hit `POST` carrying
        // validators is answered in full, as ASU answers it.
        if parts.method != Method::GET && parts.method != Method::HEAD {
            negotiation.if_none_match = None;
            negotiation.if_modified_since = None;
        }
        Ok(negotiation)
    }
}

impl Negotiation {
    /// The negotiation headers of `headers`.
    pub(crate) fn of(headers: &HeaderMap) -> Self {
        Self {
            accept_encoding: headers.get(header::ACCEPT_ENCODING).cloned(),
            if_none_match: headers.get(header::IF_NONE_MATCH).cloned(),
            if_modified_since: headers.get(header::IF_MODIFIED_SINCE).cloned(),
        }
    }

    /// `document` with `status` and `content_type`, compressed if the client accepts it; a
    /// `304` without body if it is a `200` the client already holds.
    pub(crate) fn respond(
        &self,
        status: StatusCode,
        content_type: HeaderValue,
        document: &Document,
    ) -> Response {
        let conditional = status == StatusCode::OK;
        let varies = document.body().len() >= MIN_COMPRESSED_BYTES;
        let (encoding, body) = match self.encoding() {
            Encoding::Identity => (Encoding::Identity, document.body()),
            wanted => match document.encoded(wanted) {
                Some(body) => (wanted, body),
                None => (Encoding::Identity, document.body()),
            },
        };
        let not_modified = conditional && self.not_modified(document);
        let mut response = if not_modified {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            response
        } else {
            let mut response = Response::new(Body::from(body.clone()));
            *response.status_mut() = status;
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, content_type);
            if let Some(token) = encoding.token() {
                response
                    .headers_mut()
                    .insert(header::CONTENT_ENCODING, HeaderValue::from_static(token));
            }
            response
        };
        let headers = response.headers_mut();
        if varies {
            headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        }
        if conditional {
            if let Ok(etag) = HeaderValue::from_str(&document.etag_of(encoding)) {
                headers.insert(header::ETAG, etag);
            }
            if let Some(value) = document
                .last_modified()
                .and_then(|text| HeaderValue::from_str(text).ok())
            {
                headers.insert(header::LAST_MODIFIED, value);
            }
            // Stored copies are fine, but asked about again each time: a 304 costs a few bytes.
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        }
        response
    }

    /// The best coding the client accepts: `br` over `gzip` at equal preference, identity when
    /// it accepts neither (or sends nothing).
    pub(crate) fn encoding(&self) -> Encoding {
        let Some(text) = self
            .accept_encoding
            .as_ref()
            .filter(|value| value.len() <= MAX_ACCEPT_ENCODING_BYTES)
            .and_then(|value| value.to_str().ok())
        else {
            return Encoding::Identity;
        };
        let (mut brotli, mut gzip, mut any) = (None, None, None);
        for item in text.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or_default().trim();
            let quality = parts
                .find_map(|param| {
                    let (name, value) = param.split_once('=')?;
                    (name.trim().eq_ignore_ascii_case("q")).then(|| value.trim().parse::<f32>())
                })
                .map_or(Some(1.0), Result::ok)
                .unwrap_or(0.0);
            if coding.eq_ignore_ascii_case("br") {
                brotli = Some(quality);
            } else if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                gzip = Some(quality);
            } else if coding == "*" {
                any = Some(quality);
            }
        }
        let brotli = brotli.or(any).unwrap_or(0.0);
        let gzip = gzip.or(any).unwrap_or(0.0);
        if brotli > 0.0 && brotli >= gzip {
            Encoding::Brotli
        } else if gzip > 0.0 {
            Encoding::Gzip
        } else {
            Encoding::Identity
        }
    }

    /// RFC 9110 §13.2.2: `If-None-Match` decides when present, `If-Modified-Since` otherwise.
    fn not_modified(&self, document: &Document) -> bool {
        if let Some(value) = &self.if_none_match {
            return value.len() <= MAX_IF_NONE_MATCH_BYTES
                && value.to_str().is_ok_and(|text| document.matches(text));
        }
        self.if_modified_since
            .as_ref()
            .and_then(|value| value.to_str().ok())
            .is_some_and(|text| document.unmodified_since(text))
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn negotiation(accept_encoding: &str) -> Negotiation {
        Negotiation {
            accept_encoding: Some(HeaderValue::from_str(accept_encoding).unwrap()),
            ..Negotiation::default()
        }
    }

    #[test]
    fn prefers_brotli_then_gzip_by_quality() {
        for (header, expected) in [
            ("gzip, deflate, br", Encoding::Brotli),
            ("gzip, deflate, br, zstd", Encoding::Brotli),
            ("gzip", Encoding::Gzip),
            ("br;q=0.5, gzip;q=0.8", Encoding::Gzip),
            ("br;q=0, gzip", Encoding::Gzip),
            ("gzip;q=0, br;q=0", Encoding::Identity),
            ("*", Encoding::Brotli),
            ("*;q=0.1, br;q=0", Encoding::Gzip),
            ("identity", Encoding::Identity),
            ("deflate", Encoding::Identity),
            ("gzip;q=nonsense", Encoding::Identity),
            ("", Encoding::Identity),
        ] {
            assert_eq!(negotiation(header).encoding(), expected, "{header}");
        }
        assert_eq!(Negotiation::default().encoding(), Encoding::Identity);
        let long = format!("{}, br", "x".repeat(MAX_ACCEPT_ENCODING_BYTES));
        assert_eq!(negotiation(&long).encoding(), Encoding::Identity);
    }

    #[test]
    fn only_a_200_is_conditional() {
        let document = Document::new(Bytes::from_static(b"{}"), Some(1_000));
        let holder = Negotiation {
            if_none_match: Some(HeaderValue::from_str(document.etag()).unwrap()),
            ..Negotiation::default()
        };
        let json = HeaderValue::from_static("application/json");
        let response = holder.respond(StatusCode::OK, json.clone(), &document);
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(response.headers()[header::ETAG], document.etag());
        let response = holder.respond(StatusCode::ACCEPTED, json, &document);
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert!(response.headers().get(header::ETAG).is_none());
    }
}
