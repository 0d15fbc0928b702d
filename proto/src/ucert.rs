//! ucert certificate chains: read, write, issue, verify.
//!
//! OpenWrt's `ucert` (<https://github.com/openwrt/ucert>, `ucert.c` @ 00b921d) chains usign keys:
//! an offline key signs a certificate saying "this other key may sign from `validfrom` until
//! `expiresat`", and the delegated key signs the message. ASU appends such a chain to every
//! sysupgrade image (as an fwtool signature block); Attendant also uses it to delegate the key
//! that signs channel metadata ([`crate::channel::trust`]).
//!
//! # Format
//!
//! Everything is libubox `blob` (<https://github.com/openwrt/libubox>, `blob.h`, `blobmsg.h`). An
//! attribute is a 4-byte big-endian header — bit 31 "extended", bits 24..30 the id, bits 0..23
//! the length including the header — then its data, then zero bytes up to a multiple of 4. A
//! blobmsg attribute is an extended attribute whose id is its type (2 table, 3 string, 4 int64,
//! 5 int32) and whose data starts with a name: `u16` BE length, the name, a NUL, zero padding to a
//! multiple of 4.
//!
//! A ucert file is a sequence of chain elements. Each element is an attribute with id 0 holding
//!
//! - attribute 0: a whole usign signature file (`untrusted comment: signed by key <fp>` and the
//!   base64 line), and
//! - optionally attribute 1: the payload, exactly one blobmsg table named `ucert` with `certtype`
//!   (int32: 1 auth, 2 revoke), `validfrom` (int64, Unix seconds) and, for an auth certificate,
//!   `expiresat` (int64) and `pubkey` (string: the whole usign public key file), for a revoke
//!   certificate `fingerprint` (string, 16 hex digits).
//!
//! The element's signature is usign's over the payload attribute's data (the `ucert` table
//! attribute, header included), made by the issuer: a trusted root key for the first element,
//! the key certified by the previous element after that. An element without payload is the
//! final signature, over the message (`ucert -A`).
//!
//! The layout is checked against ucert itself: the test
//! `ucerts_own_certificate_verifies_over_our_encoding` rebuilds the certificate of ucert's own
//! test suite from its dump, and ucert's signature verifies over our bytes.
//!
//! # Verification
//!
//! [`Chain::verify`] follows `ucert -V`: each certificate's signature is checked with the chain
//! key (the first with the trusted key its signature names), it must be an auth certificate,
//! `validfrom <= now < expiresat`, and its key must not be revoked; its key becomes the chain key.
//! The final signature, if any, is checked over the message by [`Verified::verify_message`] (or
//! streamed with [`Verified::stream_verifier`] for an image). Revocations come from revoke
//! certificates signed by a trusted key ([`Revocations::add_chain`], `ucert -R`); ucert records
//! them as dangling symlinks in the key directory, here they are a set passed in.
//!
//! Stricter than `ucert`, which skips what it does not understand: a chain element must hold
//! exactly a signature and at most one payload, in that order; a payload must be exactly one
//! `ucert` table; a known field must have its type and occur once; padding must be zero; and a
//! final signature must be the last element. Everything `ucert -I`/`-A`/`-R` write is accepted,
//! and [`Chain::to_bytes`] writes back exactly the bytes that were read. Unknown fields in the
//! table (`certid` is declared by ucert but never written) are skipped, as ucert skips them.
//!
//! # Limits
//!
//! A file is at most [`MAX_FILE_LEN`] bytes, as `ucert` reads it (a 4 KiB buffer less one), which
//! also bounds the number of elements; a signature file inside is limited by
//! [`usign::MAX_FILE_LEN`](crate::usign::MAX_FILE_LEN).
//!
//! # Why one file
//!
//! About 1,000 lines before the tests (in `ucert/tests.rs`), a third of them the documented error
//! variants. The blob reader and writer serve only this format, and parsing, issuing and
//! verifying share the element types and the error, so they stay together.

use std::collections::BTreeSet;
use std::fmt;

use crate::excerpt::{MAX_VALUE_CHARS, excerpt_bytes};
use crate::timestamp::Timestamp;
use crate::usign::{
    Fingerprint, Keyring, PublicKey, SecretKey, Signature, StreamVerifier, UsignError,
};

/// Largest ucert file read, in bytes (ucert's `CERT_BUF_LEN` less the byte it keeps for a NUL).
pub const MAX_FILE_LEN: usize = 4095;

/// Longest public key file ucert can put into a certificate (its `pkb` buffer less the NUL).
pub const MAX_PUBKEY_FILE_LEN: usize = 511;

/// `certtype` of an auth certificate: the key in it may sign.
pub const CERTTYPE_AUTH: u32 = 1;

/// `certtype` of a revoke certificate: the key with the fingerprint in it is revoked.
pub const CERTTYPE_REVOKE: u32 = 2;

const BLOB_EXTENDED: u32 = 1 << 31;
const BLOB_ID_SHIFT: u32 = 24;
const BLOB_ID_MASK: u32 = 0x7f;
const BLOB_LEN_MASK: u32 = 0x00ff_ffff;
const BLOB_HEADER_LEN: usize = 4;

const ATTR_SIGNATURE: u8 = 0;
const ATTR_PAYLOAD: u8 = 1;

const BLOBMSG_TABLE: u8 = 2;
const BLOBMSG_STRING: u8 = 3;
const BLOBMSG_INT64: u8 = 4;
const BLOBMSG_INT32: u8 = 5;

const PAYLOAD_NAME: &str = "ucert";

/// What went wrong reading, issuing or verifying a ucert chain. Offsets are bytes from the start
/// of the file; `element` counts chain elements from 1, as `ucert -D` does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UcertError {
    /// The file is longer than [`MAX_FILE_LEN`].
    #[error("ucert file is {len} bytes, more than the limit of {max} bytes")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The file holds no chain element.
    #[error("ucert file holds no certificate or signature")]
    Empty,
    /// An attribute's header or data runs past the end of what contains it.
    #[error("blob attribute at byte {offset} needs {needed} bytes, only {available} are left")]
    Truncated {
        /// Where the attribute starts.
        offset: usize,
        /// Bytes it claims (header, data and padding).
        needed: usize,
        /// Bytes left in its container.
        available: usize,
    },
    /// An attribute's length is shorter than its own header.
    #[error("blob attribute at byte {offset} has length {len}, less than its header")]
    BadLength {
        /// Where the attribute starts.
        offset: usize,
        /// The length field.
        len: usize,
    },
    /// A padding byte is not zero (libubox always writes zeros).
    #[error("padding byte at byte {offset} is not zero")]
    NonZeroPadding {
        /// The byte's offset.
        offset: usize,
    },
    /// An attribute that has no place where it was found.
    #[error("unexpected blob attribute (id {id}) at byte {offset} in {within}")]
    UnexpectedAttribute {
        /// Where the attribute starts.
        offset: usize,
        /// Its id.
        id: u8,
        /// What contains it.
        within: &'static str,
    },
    /// A chain element has no signature attribute.
    #[error("chain element {element} has no signature")]
    MissingSignature {
        /// The element.
        element: usize,
    },
    /// The signature inside a chain element is not a usign signature file.
    #[error("chain element {element} holds a bad signature file")]
    SignatureFile {
        /// The element.
        element: usize,
        /// Why usign refused it.
        #[source]
        source: UsignError,
    },
    /// A blobmsg name is longer than its attribute or not NUL-terminated.
    #[error("blobmsg attribute at byte {offset} has a malformed name")]
    BadName {
        /// Where the attribute starts.
        offset: usize,
    },
    /// The payload is not exactly one blobmsg table named `ucert`.
    #[error("payload of chain element {element} is not one `ucert` table")]
    NotUcertPayload {
        /// The element.
        element: usize,
    },
    /// A known payload field has the wrong blobmsg type or size.
    #[error("field `{field}` of chain element {element} is not {expected}")]
    BadField {
        /// The element.
        element: usize,
        /// The field name.
        field: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// A payload field occurs twice.
    #[error("field `{field}` occurs twice in chain element {element}")]
    DuplicateField {
        /// The element.
        element: usize,
        /// The field name.
        field: &'static str,
    },
    /// A payload lacks a field its certificate type needs.
    #[error("chain element {element} lacks the field `{field}`")]
    MissingField {
        /// The element.
        element: usize,
        /// The field name.
        field: &'static str,
    },
    /// The `pubkey` field is not a usign public key file.
    #[error("field `pubkey` of chain element {element} is not a usign public key")]
    BadPublicKey {
        /// The element.
        element: usize,
        /// Why usign refused it.
        #[source]
        source: UsignError,
    },
    /// The `fingerprint` field is not a usign key fingerprint.
    #[error("field `fingerprint` of chain element {element} is `{text}`, not 16 hex digits")]
    BadFingerprint {
        /// The element.
        element: usize,
        /// The field, shortened.
        text: String,
    },
    /// A final signature (an element without payload) is followed by more elements.
    #[error("chain element {element} is a final signature but is not the last element")]
    SignatureNotLast {
        /// The element.
        element: usize,
    },
    /// The first element is signed by a key that is not trusted.
    #[error("chain element {element} is signed by key `{fingerprint}`, which is not trusted")]
    UnknownKey {
        /// The element.
        element: usize,
        /// The key that signed it.
        fingerprint: Fingerprint,
    },
    /// An element's signature does not verify.
    #[error("signature of chain element {element} does not verify")]
    BadSignature {
        /// The element.
        element: usize,
        /// usign's complaint (wrong key or forged bytes).
        #[source]
        source: UsignError,
    },
    /// A certificate in a chain is not of the expected type (an auth certificate in a chain, a
    /// revoke certificate in a revocation list).
    #[error("chain element {element} has certtype {found}, expected {expected}")]
    WrongType {
        /// The element.
        element: usize,
        /// Its `certtype`.
        found: u32,
        /// The type required there.
        expected: u32,
    },
    /// A certificate's window has not started.
    #[error(
        "certificate in chain element {element} is valid only from {valid_from}, it is now {now}"
    )]
    NotYetValid {
        /// The element.
        element: usize,
        /// Its `validfrom`, as text.
        valid_from: TimeText,
        /// The time checked against.
        now: TimeText,
    },
    /// A certificate's window has ended.
    #[error("certificate in chain element {element} expired at {expires_at}, it is now {now}")]
    Expired {
        /// The element.
        element: usize,
        /// Its `expiresat`, as text.
        expires_at: TimeText,
        /// The time checked against.
        now: TimeText,
    },
    /// A key in the chain has been revoked.
    #[error("key `{fingerprint}` (chain element {element}) has been revoked")]
    Revoked {
        /// The element that uses or certifies the key.
        element: usize,
        /// The revoked key.
        fingerprint: Fingerprint,
    },
    /// A revocation list holds a bare signature where a revoke certificate belongs.
    #[error("chain element {element} is a signature, not a revoke certificate")]
    NotACertificate {
        /// The element.
        element: usize,
    },
    /// A message was to be checked but the chain has no final signature.
    #[error("the chain has no final signature over the message")]
    MissingFinalSignature,
    /// An auth certificate was requested whose window is empty.
    #[error("certificate window is empty: valid from {valid_from} but expires at {expires_at}")]
    EmptyWindow {
        /// The requested start.
        valid_from: TimeText,
        /// The requested end.
        expires_at: TimeText,
    },
    /// The public key file to certify is longer than ucert can read.
    #[error("public key file is {len} bytes, ucert reads at most {max}")]
    PublicKeyTooLong {
        /// Its length.
        len: usize,
        /// [`MAX_PUBKEY_FILE_LEN`].
        max: usize,
    },
}

/// A Unix time as errors show it: the UTC date where it has one, else the number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeText(pub i64);

impl fmt::Display for TimeText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Timestamp::from_unix(self.0) {
            Ok(time) => write!(f, "{time}"),
            Err(_) => write!(f, "Unix time {}", self.0),
        }
    }
}

/// What a certificate says, by its `certtype`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[expect(
    clippy::large_enum_variant,
    reason = "a file holds a handful of certificates; a box would only complicate matching"
)]
pub enum CertBody {
    /// `certtype` 1: `public_key` may sign until `expires_at` (Unix seconds, exclusive).
    Auth {
        /// The certified key (the `pubkey` field).
        public_key: PublicKey,
        /// `expiresat`.
        expires_at: i64,
    },
    /// `certtype` 2: the key `fingerprint` is revoked.
    Revoke {
        /// The revoked key.
        fingerprint: Fingerprint,
    },
    /// Another `certtype`, kept so that verification can name it.
    Other {
        /// The `certtype` value.
        certtype: u32,
    },
}

/// A certificate: the parsed payload of a chain element, with the exact bytes that were signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cert {
    body: CertBody,
    valid_from: i64,
    payload: Vec<u8>,
}

impl Cert {
    /// What it certifies.
    pub fn body(&self) -> &CertBody {
        &self.body
    }

    /// `certtype`.
    pub fn certtype(&self) -> u32 {
        match self.body {
            CertBody::Auth { .. } => CERTTYPE_AUTH,
            CertBody::Revoke { .. } => CERTTYPE_REVOKE,
            CertBody::Other { certtype } => certtype,
        }
    }

    /// `validfrom`, Unix seconds.
    pub fn valid_from(&self) -> i64 {
        self.valid_from
    }

    /// The signed bytes: the `ucert` table attribute.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }
}

/// One chain element: a signature, and the certificate it signs (none for a final signature).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    signature: Signature,
    signature_file: Vec<u8>,
    cert: Option<Cert>,
}

impl Element {
    /// A final signature element (what `ucert -A -x file.sig` appends).
    pub fn final_signature(signature: &Signature) -> Self {
        Self {
            signature: signature.clone(),
            signature_file: signature.to_file().into_bytes(),
            cert: None,
        }
    }

    /// The element's signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The signature file exactly as stored in the element.
    pub fn signature_file(&self) -> &[u8] {
        &self.signature_file
    }

    /// The certificate, or `None` for a final signature.
    pub fn cert(&self) -> Option<&Cert> {
        self.cert.as_ref()
    }

    /// The element's bytes; appending them to a ucert file adds the element to the chain.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut inner = Vec::new();
        put_attr(&mut inner, ATTR_SIGNATURE, false, &self.signature_file);
        if let Some(cert) = &self.cert {
            put_attr(&mut inner, ATTR_PAYLOAD, false, &cert.payload);
        }
        let mut out = Vec::with_capacity(inner.len() + BLOB_HEADER_LEN);
        put_attr(&mut out, 0, false, &inner);
        out
    }
}

/// A ucert file: chain elements in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chain {
    elements: Vec<Element>,
}

impl Chain {
    /// A chain of these elements.
    pub fn new(elements: Vec<Element>) -> Self {
        Self { elements }
    }

    /// Parse a ucert file (strictly; see the module documentation).
    pub fn parse(bytes: &[u8]) -> Result<Self, UcertError> {
        if bytes.len() > MAX_FILE_LEN {
            return Err(UcertError::TooLarge {
                len: bytes.len(),
                max: MAX_FILE_LEN,
            });
        }
        let mut elements = Vec::new();
        for (index, blob) in blobs(bytes, 0)?.into_iter().enumerate() {
            let element = index + 1;
            if blob.id != 0 || blob.extended {
                return Err(UcertError::UnexpectedAttribute {
                    offset: blob.offset,
                    id: blob.id,
                    within: "a ucert file",
                });
            }
            elements.push(parse_element(element, &blob)?);
        }
        if elements.is_empty() {
            return Err(UcertError::Empty);
        }
        Ok(Self { elements })
    }

    /// The elements, in order.
    pub fn elements(&self) -> &[Element] {
        &self.elements
    }

    /// Append an element (a revoke certificate to a revocation list, a final signature).
    pub fn push(&mut self, element: Element) {
        self.elements.push(element);
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.elements.iter().flat_map(Element::to_bytes).collect()
    }

    /// Check the chain at `now` (Unix seconds) against `trusted` root keys and `revoked` keys;
    /// see the module documentation for the rules.
    pub fn verify<'a>(
        &'a self,
        trusted: &Keyring,
        revoked: &Revocations,
        now: i64,
    ) -> Result<Verified<'a>, UcertError> {
        let mut chain_key: Option<PublicKey> = None;
        let mut expires_at: Option<i64> = None;
        let mut final_signature = None;
        let count = self.elements.len();
        for (index, item) in self.elements.iter().enumerate() {
            let element = index + 1;
            let signer = match &chain_key {
                Some(key) => key.clone(),
                None => trusted_key(trusted, revoked, element, &item.signature)?,
            };
            let Some(cert) = &item.cert else {
                if element != count {
                    return Err(UcertError::SignatureNotLast { element });
                }
                chain_key = Some(signer);
                final_signature = Some((element, &item.signature));
                break;
            };
            signer
                .verify(&cert.payload, &item.signature)
                .map_err(|source| UcertError::BadSignature { element, source })?;
            let CertBody::Auth {
                public_key,
                expires_at: until,
            } = &cert.body
            else {
                return Err(UcertError::WrongType {
                    element,
                    found: cert.certtype(),
                    expected: CERTTYPE_AUTH,
                });
            };
            check_window(element, cert.valid_from, Some(*until), now)?;
            if revoked.contains(public_key.fingerprint()) {
                return Err(UcertError::Revoked {
                    element,
                    fingerprint: public_key.fingerprint(),
                });
            }
            expires_at = Some(expires_at.map_or(*until, |earlier| earlier.min(*until)));
            chain_key = Some(public_key.clone());
        }
        let key = chain_key.ok_or(UcertError::Empty)?;
        Ok(Verified {
            key,
            expires_at,
            final_signature,
        })
    }
}

/// A chain that passed [`Chain::verify`]: the key at its end and what it may still check.
#[derive(Debug, Clone)]
pub struct Verified<'a> {
    key: PublicKey,
    expires_at: Option<i64>,
    /// The final signature and its element number.
    final_signature: Option<(usize, &'a Signature)>,
}

impl Verified<'_> {
    /// The chain key: the last certified key, or the trusted key of a lone final signature.
    pub fn key(&self) -> &PublicKey {
        &self.key
    }

    /// The earliest `expiresat` along the chain (`None` when it holds no certificate): the
    /// chain stops verifying then.
    pub fn expires_at(&self) -> Option<i64> {
        self.expires_at
    }

    /// Check the final signature over `message`.
    pub fn verify_message(&self, message: &[u8]) -> Result<(), UcertError> {
        let (element, signature) = self
            .final_signature
            .ok_or(UcertError::MissingFinalSignature)?;
        self.key
            .verify(message, signature)
            .map_err(|source| UcertError::BadSignature { element, source })
    }

    /// Start checking the final signature over a message that arrives in chunks (an image).
    pub fn stream_verifier(&self) -> Result<StreamVerifier, UcertError> {
        let (element, signature) = self
            .final_signature
            .ok_or(UcertError::MissingFinalSignature)?;
        self.key
            .stream_verifier(signature)
            .map_err(|source| UcertError::BadSignature { element, source })
    }
}

/// Revoked key fingerprints (what `ucert -R` records as dangling symlinks in the key directory).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Revocations {
    revoked: BTreeSet<Fingerprint>,
}

impl Revocations {
    /// No key revoked.
    pub fn new() -> Self {
        Self::default()
    }

    /// Revoke `fingerprint` (a key the caller knows to be revoked by other means).
    pub fn insert(&mut self, fingerprint: Fingerprint) {
        self.revoked.insert(fingerprint);
    }

    /// Add the revoke certificates of `chain`, each of which must be signed by a `trusted` key.
    ///
    /// Like `ucert -R`, every element must be a revoke certificate with a valid signature.
    /// Unlike it, a certificate whose `validfrom` lies after `now` is skipped rather than failing
    /// the whole list: it takes effect at its time, and a list published early must not stop
    /// every verification until then.
    pub fn add_chain(
        &mut self,
        chain: &Chain,
        trusted: &Keyring,
        now: i64,
    ) -> Result<(), UcertError> {
        for (index, item) in chain.elements.iter().enumerate() {
            let element = index + 1;
            let Some(cert) = &item.cert else {
                return Err(UcertError::NotACertificate { element });
            };
            let signer = trusted_key(trusted, &Self::new(), element, &item.signature)?;
            signer
                .verify(&cert.payload, &item.signature)
                .map_err(|source| UcertError::BadSignature { element, source })?;
            let CertBody::Revoke { fingerprint } = cert.body else {
                return Err(UcertError::WrongType {
                    element,
                    found: cert.certtype(),
                    expected: CERTTYPE_REVOKE,
                });
            };
            if cert.valid_from <= now {
                self.revoked.insert(fingerprint);
            }
        }
        Ok(())
    }

    /// Whether `fingerprint` is revoked.
    pub fn contains(&self, fingerprint: Fingerprint) -> bool {
        self.revoked.contains(&fingerprint)
    }

    /// The revoked fingerprints, in order.
    pub fn iter(&self) -> impl Iterator<Item = Fingerprint> + '_ {
        self.revoked.iter().copied()
    }

    /// Number of revoked keys.
    pub fn len(&self) -> usize {
        self.revoked.len()
    }

    /// True when no key is revoked.
    pub fn is_empty(&self) -> bool {
        self.revoked.is_empty()
    }
}

/// Issue an auth certificate (what `ucert -I` writes first, with a window of our choosing):
/// `root` certifies that `signing` may sign from `valid_from` until `expires_at` (Unix seconds).
pub fn issue_auth(
    root: &SecretKey,
    signing: &PublicKey,
    valid_from: i64,
    expires_at: i64,
) -> Result<Element, UcertError> {
    if valid_from >= expires_at {
        return Err(UcertError::EmptyWindow {
            valid_from: TimeText(valid_from),
            expires_at: TimeText(expires_at),
        });
    }
    let pubkey = signing.to_file();
    if pubkey.len() > MAX_PUBKEY_FILE_LEN {
        return Err(UcertError::PublicKeyTooLong {
            len: pubkey.len(),
            max: MAX_PUBKEY_FILE_LEN,
        });
    }
    let mut fields = Vec::new();
    put_blobmsg(
        &mut fields,
        BLOBMSG_INT32,
        "certtype",
        &CERTTYPE_AUTH.to_be_bytes(),
    );
    put_blobmsg(
        &mut fields,
        BLOBMSG_INT64,
        "validfrom",
        &valid_from.to_be_bytes(),
    );
    put_blobmsg(
        &mut fields,
        BLOBMSG_INT64,
        "expiresat",
        &expires_at.to_be_bytes(),
    );
    put_blobmsg(
        &mut fields,
        BLOBMSG_STRING,
        "pubkey",
        &nul_terminated(&pubkey),
    );
    Ok(sign_cert(
        root,
        fields,
        CertBody::Auth {
            public_key: signing.clone(),
            expires_at,
        },
        valid_from,
    ))
}

/// Issue a revoke certificate (what `ucert -I` writes to `<file>.revoke`): `root` revokes the
/// key `fingerprint` from `valid_from` (Unix seconds) on.
pub fn issue_revoke(root: &SecretKey, fingerprint: Fingerprint, valid_from: i64) -> Element {
    let mut fields = Vec::new();
    put_blobmsg(
        &mut fields,
        BLOBMSG_INT32,
        "certtype",
        &CERTTYPE_REVOKE.to_be_bytes(),
    );
    put_blobmsg(
        &mut fields,
        BLOBMSG_INT64,
        "validfrom",
        &valid_from.to_be_bytes(),
    );
    let text = fingerprint.to_string();
    put_blobmsg(
        &mut fields,
        BLOBMSG_STRING,
        "fingerprint",
        &nul_terminated(&text),
    );
    sign_cert(root, fields, CertBody::Revoke { fingerprint }, valid_from)
}

fn sign_cert(root: &SecretKey, fields: Vec<u8>, body: CertBody, valid_from: i64) -> Element {
    let mut payload = Vec::new();
    put_blobmsg(&mut payload, BLOBMSG_TABLE, PAYLOAD_NAME, &fields);
    let signature = root.sign(&payload);
    Element {
        signature_file: signature.to_file().into_bytes(),
        signature,
        cert: Some(Cert {
            body,
            valid_from,
            payload,
        }),
    }
}

fn trusted_key(
    trusted: &Keyring,
    revoked: &Revocations,
    element: usize,
    signature: &Signature,
) -> Result<PublicKey, UcertError> {
    let fingerprint = signature.fingerprint();
    // ucert never trusts a revoked key: revoking one replaces its file with a dangling link.
    if revoked.contains(fingerprint) {
        return Err(UcertError::Revoked {
            element,
            fingerprint,
        });
    }
    trusted
        .get(&fingerprint)
        .cloned()
        .ok_or(UcertError::UnknownKey {
            element,
            fingerprint,
        })
}

fn check_window(
    element: usize,
    valid_from: i64,
    expires_at: Option<i64>,
    now: i64,
) -> Result<(), UcertError> {
    if now < valid_from {
        return Err(UcertError::NotYetValid {
            element,
            valid_from: TimeText(valid_from),
            now: TimeText(now),
        });
    }
    match expires_at {
        Some(expires_at) if now >= expires_at => Err(UcertError::Expired {
            element,
            expires_at: TimeText(expires_at),
            now: TimeText(now),
        }),
        _ => Ok(()),
    }
}

fn parse_element(element: usize, blob: &Blob<'_>) -> Result<Element, UcertError> {
    let mut signature = None;
    let mut payload = None;
    for attr in blobs(blob.data, blob.data_offset)? {
        let unexpected = UcertError::UnexpectedAttribute {
            offset: attr.offset,
            id: attr.id,
            within: "a chain element",
        };
        match attr.id {
            _ if attr.extended => return Err(unexpected),
            ATTR_SIGNATURE if signature.is_none() && payload.is_none() => signature = Some(attr),
            ATTR_PAYLOAD if signature.is_some() && payload.is_none() => payload = Some(attr),
            _ => return Err(unexpected),
        }
    }
    let signature_attr = signature.ok_or(UcertError::MissingSignature { element })?;
    let parsed = Signature::parse(signature_attr.data)
        .map_err(|source| UcertError::SignatureFile { element, source })?;
    let cert = payload
        .map(|attr| parse_payload(element, &attr))
        .transpose()?;
    Ok(Element {
        signature: parsed,
        signature_file: signature_attr.data.to_vec(),
        cert,
    })
}

fn parse_payload(element: usize, attr: &Blob<'_>) -> Result<Cert, UcertError> {
    let not_ucert = UcertError::NotUcertPayload { element };
    let found = blobs(attr.data, attr.data_offset)?;
    let [table] = found.as_slice() else {
        return Err(not_ucert);
    };
    let (name, value) = blobmsg(table)?;
    if !table.extended || table.id != BLOBMSG_TABLE || name != PAYLOAD_NAME.as_bytes() {
        return Err(not_ucert);
    }
    let mut fields = Fields::default();
    for field in blobs(value, table.data_offset + (table.data.len() - value.len()))? {
        if !field.extended {
            return Err(UcertError::UnexpectedAttribute {
                offset: field.offset,
                id: field.id,
                within: "the `ucert` table",
            });
        }
        fields.add(element, &field)?;
    }
    let certtype = fields.certtype.ok_or(UcertError::MissingField {
        element,
        field: "certtype",
    })?;
    let valid_from = fields.valid_from.ok_or(UcertError::MissingField {
        element,
        field: "validfrom",
    })?;
    let body = match certtype {
        CERTTYPE_AUTH => {
            let expires_at = fields.expires_at.ok_or(UcertError::MissingField {
                element,
                field: "expiresat",
            })?;
            let text = fields.pubkey.ok_or(UcertError::MissingField {
                element,
                field: "pubkey",
            })?;
            let public_key = PublicKey::parse(text)
                .map_err(|source| UcertError::BadPublicKey { element, source })?;
            CertBody::Auth {
                public_key,
                expires_at,
            }
        }
        CERTTYPE_REVOKE => {
            let text = fields.fingerprint.ok_or(UcertError::MissingField {
                element,
                field: "fingerprint",
            })?;
            let bad = || UcertError::BadFingerprint {
                element,
                text: excerpt_bytes(text, MAX_VALUE_CHARS),
            };
            let text = std::str::from_utf8(text).map_err(|_| bad())?;
            CertBody::Revoke {
                fingerprint: Fingerprint::from_hex(text).map_err(|_| bad())?,
            }
        }
        certtype => CertBody::Other { certtype },
    };
    Ok(Cert {
        body,
        valid_from,
        payload: attr.data.to_vec(),
    })
}

/// The known fields of a `ucert` table, as found.
#[derive(Default)]
struct Fields<'a> {
    certtype: Option<u32>,
    valid_from: Option<i64>,
    expires_at: Option<i64>,
    pubkey: Option<&'a [u8]>,
    fingerprint: Option<&'a [u8]>,
}

impl<'a> Fields<'a> {
    fn add(&mut self, element: usize, attr: &Blob<'a>) -> Result<(), UcertError> {
        let (name, value) = blobmsg(attr)?;
        let duplicate = |field| UcertError::DuplicateField { element, field };
        match name {
            b"certtype" => {
                let number = int32(element, "certtype", attr.id, value)?;
                replace_once(&mut self.certtype, number).map_err(|()| duplicate("certtype"))
            }
            b"validfrom" => {
                let number = int64(element, "validfrom", attr.id, value)?;
                replace_once(&mut self.valid_from, number).map_err(|()| duplicate("validfrom"))
            }
            b"expiresat" => {
                let number = int64(element, "expiresat", attr.id, value)?;
                replace_once(&mut self.expires_at, number).map_err(|()| duplicate("expiresat"))
            }
            b"pubkey" => {
                let text = string(element, "pubkey", attr.id, value)?;
                replace_once(&mut self.pubkey, text).map_err(|()| duplicate("pubkey"))
            }
            b"fingerprint" => {
                let text = string(element, "fingerprint", attr.id, value)?;
                replace_once(&mut self.fingerprint, text).map_err(|()| duplicate("fingerprint"))
            }
            _ => Ok(()),
        }
    }
}

fn replace_once<T>(slot: &mut Option<T>, value: T) -> Result<(), ()> {
    if slot.is_some() {
        return Err(());
    }
    *slot = Some(value);
    Ok(())
}

fn int32(element: usize, field: &'static str, id: u8, value: &[u8]) -> Result<u32, UcertError> {
    match <[u8; 4]>::try_from(value) {
        Ok(bytes) if id == BLOBMSG_INT32 => Ok(u32::from_be_bytes(bytes)),
        _ => Err(UcertError::BadField {
            element,
            field,
            expected: "a 32-bit integer",
        }),
    }
}

fn int64(element: usize, field: &'static str, id: u8, value: &[u8]) -> Result<i64, UcertError> {
    match <[u8; 8]>::try_from(value) {
        // ucert stores a `time_t` as blobmsg's unsigned 64 bits; the bits are the same.
        Ok(bytes) if id == BLOBMSG_INT64 => Ok(i64::from_be_bytes(bytes)),
        _ => Err(UcertError::BadField {
            element,
            field,
            expected: "a 64-bit integer",
        }),
    }
}

/// A blobmsg string's text: NUL-terminated as libubox requires, with no NUL inside (C reads up
/// to the first one).
fn string<'a>(
    element: usize,
    field: &'static str,
    id: u8,
    value: &'a [u8],
) -> Result<&'a [u8], UcertError> {
    match value.split_last() {
        Some((0, text)) if id == BLOBMSG_STRING && !text.contains(&0) => Ok(text),
        _ => Err(UcertError::BadField {
            element,
            field,
            expected: "a NUL-terminated string",
        }),
    }
}

/// One blob attribute inside a container.
#[derive(Debug, Clone, Copy)]
struct Blob<'a> {
    offset: usize,
    id: u8,
    extended: bool,
    data: &'a [u8],
    data_offset: usize,
}

/// Split `bytes` (at file offset `base`) into attributes; each must fit with its padding, and
/// the padding must be zero.
fn blobs(bytes: &[u8], base: usize) -> Result<Vec<Blob<'_>>, UcertError> {
    let mut found = Vec::new();
    let mut rest = bytes;
    let mut offset = base;
    while !rest.is_empty() {
        let truncated = |needed| UcertError::Truncated {
            offset,
            needed,
            available: rest.len(),
        };
        let (header, _) = rest
            .split_first_chunk::<BLOB_HEADER_LEN>()
            .ok_or_else(|| truncated(BLOB_HEADER_LEN))?;
        let id_len = u32::from_be_bytes(*header);
        let len = usize::try_from(id_len & BLOB_LEN_MASK).unwrap_or(usize::MAX);
        if len < BLOB_HEADER_LEN {
            return Err(UcertError::BadLength { offset, len });
        }
        let padded = pad4(len);
        let (attr, after) = rest
            .split_at_checked(padded)
            .ok_or_else(|| truncated(padded))?;
        let (content, padding) = attr.split_at_checked(len).unwrap_or((attr, &[]));
        if let Some(at) = padding.iter().position(|&b| b != 0) {
            return Err(UcertError::NonZeroPadding {
                offset: offset + len + at,
            });
        }
        found.push(Blob {
            offset,
            id: u8::try_from((id_len >> BLOB_ID_SHIFT) & BLOB_ID_MASK).unwrap_or(u8::MAX),
            extended: id_len & BLOB_EXTENDED != 0,
            data: content.get(BLOB_HEADER_LEN..).unwrap_or_default(),
            data_offset: offset + BLOB_HEADER_LEN,
        });
        offset += padded;
        rest = after;
    }
    Ok(found)
}

/// A blobmsg attribute's name and value.
fn blobmsg<'a>(attr: &Blob<'a>) -> Result<(&'a [u8], &'a [u8]), UcertError> {
    let bad = UcertError::BadName {
        offset: attr.offset,
    };
    let (name_len, rest) = attr.data.split_first_chunk::<2>().ok_or(bad.clone())?;
    let name_len = usize::from(u16::from_be_bytes(*name_len));
    let header_len = pad4(2 + name_len + 1);
    let (name, _) = rest.split_at_checked(name_len).ok_or(bad.clone())?;
    let (header, value) = attr.data.split_at_checked(header_len).ok_or(bad.clone())?;
    let terminator_and_padding = header.get(2 + name_len..).unwrap_or_default();
    // The NUL after the name, then padding: all zero bytes, at least the NUL.
    match terminator_and_padding.iter().position(|&b| b != 0) {
        None => Ok((name, value)),
        Some(0) => Err(bad),
        Some(at) => Err(UcertError::NonZeroPadding {
            offset: attr.data_offset + 2 + name_len + at,
        }),
    }
}

fn pad4(len: usize) -> usize {
    len.saturating_add(3) & !3
}

fn nul_terminated(text: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(text.len() + 1);
    bytes.extend_from_slice(text.as_bytes());
    bytes.push(0);
    bytes
}

/// Append a blob attribute: header, `data`, zero padding. Callers pass at most a few KiB, far
/// below the 24-bit length field.
fn put_attr(out: &mut Vec<u8>, id: u8, extended: bool, data: &[u8]) {
    let len = BLOB_HEADER_LEN + data.len();
    let mut id_len = (u32::from(id) & BLOB_ID_MASK) << BLOB_ID_SHIFT;
    id_len |= u32::try_from(len).unwrap_or(BLOB_LEN_MASK) & BLOB_LEN_MASK;
    if extended {
        id_len |= BLOB_EXTENDED;
    }
    out.extend_from_slice(&id_len.to_be_bytes());
    out.extend_from_slice(data);
    out.resize(out.len() + (pad4(len) - len), 0);
}

/// Append a blobmsg attribute of type `kind` named `name` with `value`.
fn put_blobmsg(out: &mut Vec<u8>, kind: u8, name: &str, value: &[u8]) {
    let header_len = pad4(2 + name.len() + 1);
    let mut data = Vec::with_capacity(header_len + value.len());
    data.extend_from_slice(&u16::try_from(name.len()).unwrap_or(u16::MAX).to_be_bytes());
    data.extend_from_slice(name.as_bytes());
    data.resize(header_len, 0);
    data.extend_from_slice(value);
    put_attr(out, kind, true, &data);
}

#[cfg(test)]
mod tests;
