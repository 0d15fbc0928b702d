//! [`Document`]: a response body encoded once and served many times.
//!
//! The bodies clients fetch most (a finished build's JSON, `overview.json`, `latest.json`,
//! `branches.json`) change rarely: a finished build never, the metadata documents when upstream
//! publishes a release. Each is serialised once into a [`Document`], which then answers every
//! request with shared bytes: its entity tag and `Last-Modified` are computed with it, and its
//! gzip and Brotli encodings are made on the first request that accepts them and kept (a
//! 22 KB build JSON shrinks to about a tenth: it is mostly package names and hashes). How a
//! request picks one (`Accept-Encoding`, `If-None-Match`, `If-Modified-Since`) is
//! `http::negotiate`'s job; this module knows no HTTP framework.
//!
//! [`Rendered`] keeps a document made from cached upstream metadata together with the
//! [`Sources`] it was made from, and makes it again only when those changed.

use std::any::Any;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::store::UnixMillis;

/// Bodies shorter than this are sent as they are: compressing them saves less than the
/// `Content-Encoding` and `Vary` headers cost.
pub const MIN_COMPRESSED_BYTES: usize = 512;

/// Brotli quality of the stored encodings. 11 (the maximum) is ten times slower for a few per
/// cent less; 9 compresses a 22 KB build JSON in about a millisecond, once.
const BROTLI_QUALITY: u32 = 9;

/// Brotli window (log2 bytes): 4 MiB, more than any document here.
const BROTLI_WINDOW: u32 = 22;

/// A content coding this server can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// The body as it is.
    Identity,
    /// `gzip` (RFC 1952).
    Gzip,
    /// `br` (RFC 7932).
    Brotli,
}

impl Encoding {
    /// The `Content-Encoding` token, `None` for identity.
    pub fn token(self) -> Option<&'static str> {
        match self {
            Self::Identity => None,
            Self::Gzip => Some("gzip"),
            Self::Brotli => Some("br"),
        }
    }
}

/// A response body with its validators and lazily made compressed encodings.
#[derive(Debug, Clone)]
pub struct Document {
    body: Bytes,
    /// The strong entity tag of the identity body, quoted (`"…"`).
    etag: String,
    /// `Last-Modified` as an IMF-fixdate, and the same in whole seconds since the epoch.
    last_modified: Option<(String, i64)>,
    gzip: OnceLock<Option<Bytes>>,
    brotli: OnceLock<Option<Bytes>>,
}

impl Document {
    /// A document of `body`, last modified at `modified` (Unix milliseconds) if known.
    pub fn new(body: Bytes, modified: Option<UnixMillis>) -> Self {
        let digest = Sha256::digest(&body);
        // 96 bits of the SHA-256: a tag only has to tell this body from its predecessors.
        let etag = format!("\"{}\"", hex::encode(digest.get(..12).unwrap_or_default()));
        let last_modified = modified.and_then(|millis| {
            let seconds = millis.div_euclid(1000);
            http_date(seconds).map(|text| (text, seconds))
        });
        Self {
            body,
            etag,
            last_modified,
            gzip: OnceLock::new(),
            brotli: OnceLock::new(),
        }
    }

    /// A JSON document of `value`.
    pub fn json<T: serde::Serialize>(
        value: &T,
        modified: Option<UnixMillis>,
    ) -> Result<Self, serde_json::Error> {
        Ok(Self::new(Bytes::from(serde_json::to_vec(value)?), modified))
    }

    /// The identity body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The quoted entity tag of the identity body; an encoding's tag is
    /// [`Document::etag_of`].
    pub fn etag(&self) -> &str {
        &self.etag
    }

    /// The entity tag of `encoding`'s representation: the identity tag with `-gzip` or `-br`
    /// inside the quotes, as Apache's mod_deflate does, so that a cache never confuses the two
    /// representations while [`Document::matches`] still recognises either.
    pub fn etag_of(&self, encoding: Encoding) -> String {
        match encoding.token() {
            None => self.etag.clone(),
            Some(token) => {
                let bare = self.etag.trim_end_matches('"');
                format!("{bare}-{token}\"")
            }
        }
    }

    /// `Last-Modified` (IMF-fixdate), if the document has one.
    pub fn last_modified(&self) -> Option<&str> {
        self.last_modified.as_ref().map(|(text, _)| text.as_str())
    }

    /// Whether an `If-None-Match` value names this document in any encoding (weak comparison,
    /// RFC 9110 §13.1.2: `W/` is ignored; `*` matches).
    pub fn matches(&self, if_none_match: &str) -> bool {
        let own = self.etag.trim_matches('"');
        if_none_match.split(',').any(|candidate| {
            let candidate = candidate.trim();
            if candidate == "*" {
                return true;
            }
            let tag = candidate.strip_prefix("W/").unwrap_or(candidate);
            let Some(tag) = tag.strip_prefix('"').and_then(|tag| tag.strip_suffix('"')) else {
                return false;
            };
            let tag = tag
                .strip_suffix("-gzip")
                .or_else(|| tag.strip_suffix("-br"))
                .unwrap_or(tag);
            tag == own
        })
    }

    /// Whether an `If-Modified-Since` value is at or after `Last-Modified` (so a cached copy is
    /// current). An unparsable date, or a document without `Last-Modified`, is never current.
    pub fn unmodified_since(&self, if_modified_since: &str) -> bool {
        let Some((_, modified)) = &self.last_modified else {
            return false;
        };
        parse_http_date(if_modified_since).is_some_and(|since| *modified <= since)
    }

    /// The body in `encoding`, compressed on first use; `None` when that encoding would not be
    /// smaller (short or incompressible bodies), so the identity body is sent.
    pub fn encoded(&self, encoding: Encoding) -> Option<&Bytes> {
        let slot = match encoding {
            Encoding::Identity => return Some(&self.body),
            Encoding::Gzip => &self.gzip,
            Encoding::Brotli => &self.brotli,
        };
        slot.get_or_init(|| compress(&self.body, encoding)).as_ref()
    }
}

impl PartialEq for Document {
    fn eq(&self, other: &Self) -> bool {
        self.body == other.body && self.last_modified == other.last_modified
    }
}

impl Eq for Document {}

impl std::ops::Deref for Document {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.body
    }
}

/// The values a document was rendered from, compared by identity: the metadata cache hands out
/// the same `Arc` until it fetched the file again. Holding them keeps the allocations alive, so
/// an address cannot be reused by a newer value and mistaken for the old one.
#[derive(Clone, Default)]
pub struct Sources(Vec<Option<Arc<dyn Any + Send + Sync>>>);

impl Sources {
    /// Adds a source (`None`: upstream has no such file, itself a fact the document shows).
    pub fn push<T: Any + Send + Sync>(&mut self, value: Option<&Arc<T>>) {
        self.0
            .push(value.map(|value| Arc::clone(value) as Arc<dyn Any + Send + Sync>));
    }

    fn same_as(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self.0.iter().zip(&other.0).all(|pair| match pair {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            })
    }
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Sources").field(&self.0.len()).finish()
    }
}

/// A document rendered from [`Sources`], served as it is for up to a recheck interval, then
/// compared with the current sources and made again only if they changed.
///
/// While one request rechecks (which may wait for upstream when a metadata file expired), the
/// others are answered with the document they would have got a moment earlier: nobody queues
/// behind the download.
#[derive(Debug, Default)]
pub struct Rendered {
    slot: RwLock<Option<(Instant, Sources, Arc<Document>)>>,
    checking: AtomicBool,
}

impl Rendered {
    /// The document, rendered by `render` from what `sources` returns if there is none yet or
    /// the sources changed since; `sources` is asked at most once per `recheck` (by one caller
    /// at a time).
    pub async fn get<T, E, Fut>(
        &self,
        recheck: Duration,
        sources: impl FnOnce() -> Fut,
        render: impl FnOnce(T) -> Result<Document, E>,
    ) -> Result<Arc<Document>, E>
    where
        Fut: Future<Output = Result<(Sources, T), E>>,
    {
        let current = self
            .slot
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|(checked, _, document)| (checked.elapsed() < recheck, Arc::clone(document)));
        let claimed = match current {
            Some((true, document)) => return Ok(document),
            Some((false, document)) => {
                if self.checking.swap(true, Ordering::AcqRel) {
                    return Ok(document);
                }
                true
            }
            None => !self.checking.swap(true, Ordering::AcqRel),
        };
        // Released however this ends (an error, or the request being dropped mid-await).
        let _checking = claimed.then_some(CheckGuard(&self.checking));
        let (new_sources, data) = sources().await?;
        {
            let mut slot = self.slot.write().unwrap_or_else(PoisonError::into_inner);
            if let Some((checked, old_sources, document)) = slot.as_mut()
                && old_sources.same_as(&new_sources)
            {
                *checked = Instant::now();
                return Ok(Arc::clone(document));
            }
        }
        let mut document = Arc::new(render(data)?);
        let mut slot = self.slot.write().unwrap_or_else(PoisonError::into_inner);
        // New sources with the same content (a metadata file fetched again unchanged) keep the
        // old document, and so its `Last-Modified` and the encodings already made.
        if let Some((_, _, old)) = slot.as_ref()
            && old.body() == document.body()
        {
            document = Arc::clone(old);
        }
        *slot = Some((Instant::now(), new_sources, Arc::clone(&document)));
        Ok(document)
    }
}

/// Clears [`Rendered`]'s `checking` flag when dropped.
struct CheckGuard<'a>(&'a AtomicBool);

impl Drop for CheckGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// `body` compressed with `encoding`, if that is worth it.
fn compress(body: &[u8], encoding: Encoding) -> Option<Bytes> {
    if body.len() < MIN_COMPRESSED_BYTES {
        return None;
    }
    // Writing into a `Vec` cannot fail; a failure would only mean sending the identity body.
    let compressed = match encoding {
        Encoding::Identity => return None,
        Encoding::Gzip => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(body).ok()?;
            encoder.finish().ok()?
        }
        Encoding::Brotli => {
            let mut encoder =
                brotli::CompressorWriter::new(Vec::new(), 4096, BROTLI_QUALITY, BROTLI_WINDOW);
            encoder.write_all(body).ok()?;
            encoder.flush().ok()?;
            encoder.into_inner()
        }
    };
    (compressed.len() < body.len()).then(|| Bytes::from(compressed))
}

/// The IMF-fixdate form of HTTP dates (RFC 9110 §5.6.7): `Sun, 06 Nov 1994 08:49:37 GMT`.
const HTTP_DATE: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
);

/// `seconds` since the epoch as an IMF-fixdate.
pub(crate) fn http_date(seconds: i64) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .ok()?
        .format(HTTP_DATE)
        .ok()
}

/// An IMF-fixdate as seconds since the epoch. The obsolete RFC 850 and asctime forms are not
/// read: a client that sends them only loses the `304`.
fn parse_http_date(text: &str) -> Option<i64> {
    time::PrimitiveDateTime::parse(text.trim(), HTTP_DATE)
        .ok()
        .map(|time| time.assume_utc().unix_timestamp())
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn document(len: usize) -> Document {
        let body: String = (0..len)
            .map(|i| char::from(b'a' + u8::try_from(i % 7).unwrap()))
            .collect();
        Document::new(Bytes::from(body), Some(784_111_777_000))
    }

    #[test]
    fn last_modified_is_an_imf_fixdate() {
        assert_eq!(
            document(1).last_modified(),
            Some("Sun, 06 Nov 1994 08:49:37 GMT")
        );
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
    }

    #[test]
    fn if_modified_since_compares_whole_seconds() {
        let doc = document(1);
        assert!(doc.unmodified_since("Sun, 06 Nov 1994 08:49:37 GMT"));
        assert!(doc.unmodified_since("Mon, 07 Nov 1994 08:49:37 GMT"));
        assert!(!doc.unmodified_since("Sun, 06 Nov 1994 08:49:36 GMT"));
        assert!(!doc.unmodified_since("Sunday, 06-Nov-94 08:49:37 GMT"));
        assert!(!doc.unmodified_since("yesterday"));
    }

    #[test]
    fn if_none_match_recognises_every_encoding_of_the_document() {
        let doc = document(600);
        let gzip = doc.etag_of(Encoding::Gzip);
        assert!(gzip.ends_with("-gzip\""), "{gzip}");
        for tag in [
            doc.etag().to_owned(),
            gzip,
            doc.etag_of(Encoding::Brotli),
            format!("W/{}", doc.etag()),
            format!("\"other\", {}", doc.etag()),
            "*".to_owned(),
        ] {
            assert!(doc.matches(&tag), "{tag}");
        }
        for tag in ["\"other\"", "", "W/", doc.etag().trim_matches('"')] {
            assert!(!doc.matches(tag), "{tag}");
        }
        assert!(!document(601).matches(doc.etag()));
    }

    #[test]
    fn encodings_decompress_to_the_body() {
        let doc = document(4096);
        let gzip = doc.encoded(Encoding::Gzip).unwrap();
        assert!(gzip.len() < 4096);
        let mut text = Vec::new();
        flate2::read::GzDecoder::new(&gzip[..])
            .read_to_end(&mut text)
            .unwrap();
        assert_eq!(text, doc.body().as_ref());
        let brotli = doc.encoded(Encoding::Brotli).unwrap();
        let mut text = Vec::new();
        brotli::Decompressor::new(&brotli[..], 4096)
            .read_to_end(&mut text)
            .unwrap();
        assert_eq!(text, doc.body().as_ref());
        // Made once, then shared.
        assert_eq!(
            doc.encoded(Encoding::Brotli).unwrap().as_ptr(),
            brotli.as_ptr()
        );
    }

    #[tokio::test]
    async fn rendered_document_is_made_again_only_when_its_sources_change() {
        let rendered = Rendered::default();
        let first = Arc::new(1_u32);
        let renders = std::cell::Cell::new(0);
        let get = |source: Arc<u32>, recheck: Duration| {
            let renders = &renders;
            let rendered = &rendered;
            async move {
                rendered
                    .get(
                        recheck,
                        || async move {
                            let mut sources = Sources::default();
                            sources.push(Some(&source));
                            Ok::<_, std::convert::Infallible>((sources, *source))
                        },
                        |value| {
                            renders.set(renders.get() + 1);
                            Ok(Document::new(Bytes::from(value.to_string()), Some(0)))
                        },
                    )
                    .await
                    .unwrap()
            }
        };
        let a = get(Arc::clone(&first), Duration::ZERO).await;
        let b = get(Arc::clone(&first), Duration::ZERO).await;
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(renders.get(), 1, "same sources, no new rendering");
        // Within the recheck interval the sources are not even asked for.
        let c = get(Arc::new(2), Duration::from_secs(3600)).await;
        assert_eq!(c.body().as_ref(), b"1");
        let d = get(Arc::new(2), Duration::ZERO).await;
        assert_eq!((d.body().as_ref(), renders.get()), (b"2".as_slice(), 2));
        // A new source with the same content keeps the document that was made.
        let e = get(Arc::new(2), Duration::ZERO).await;
        assert!(Arc::ptr_eq(&d, &e));
    }

    #[test]
    fn short_bodies_are_not_compressed() {
        let doc = document(MIN_COMPRESSED_BYTES - 1);
        assert!(doc.encoded(Encoding::Gzip).is_none());
        assert!(doc.encoded(Encoding::Brotli).is_none());
        assert_eq!(doc.encoded(Encoding::Identity), Some(doc.body()));
    }
}
