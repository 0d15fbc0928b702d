//! usign (and OpenBSD signify) keys and signatures: parse, write, sign, verify.
//!
//! OpenWrt signs package feeds, `sha256sums` files and sysupgrade images with `usign`, a small
//! reimplementation of OpenBSD `signify` (<https://git.openwrt.org/?p=project/usign.git>,
//! <https://man.openbsd.org/signify>). The file formats are byte-identical: checked against
//! usign @ c4c72b1 and against Debian's `signify-openbsd`, which `tests/usign_signify.rs` runs on
//! every test run. Every file is two lines:
//!
//! ```text
//! untrusted comment: <free text, not authenticated>
//! <base64 of a fixed-size binary structure>
//! ```
//!
//! | file | decoded bytes | layout |
//! | --- | --- | --- |
//! | public key | 42 | `"Ed"` · fingerprint\[8\] · Ed25519 public key\[32\] |
//! | secret key | 104 | `"Ed"` · `"BK"` · kdfrounds u32 BE · salt\[16\] · checksum\[8\] · fingerprint\[8\] · seed\[32\] · public key\[32\] |
//! | signature | 74 | `"Ed"` · fingerprint\[8\] · Ed25519 signature\[64\] |
//!
//! The checksum is the first 8 bytes of SHA-512 over the 64 secret bytes (seed and public key).
//! The fingerprint ("keynum" in signify) is 8 random bytes chosen when the key is generated: usign
//! reads them from `/dev/urandom` (`generate()` in usign's `main.c`), signify from
//! `arc4random_buf`. It is not derived from the key, so [`SecretKey::generate`] takes it from the
//! caller together with the other random inputs.
//!
//! # Fingerprint spelling
//!
//! Current usign prints a fingerprint, names trusted key files (`/etc/opkg/keys/<fingerprint>`) and
//! writes default comments as 16 lowercase hex digits of the big-endian `u64`, zero padded
//! (`%016" PRIx64`, openwrt/usign "Always pad fingerprints to 16 characters", 2020: ucert expects a
//! fixed length and failed for keys whose first byte is 0). ASU names injected keys the same way.
//! [`Fingerprint`]'s `Display` writes that spelling. usign releases before that change wrote
//! `%" PRIx64` without padding, so a router may still hold `/etc/opkg/keys/a1b…` (15 characters)
//! for the key `0a1b…`; [`Fingerprint::from_hex`] and [`Keyring::add_file`] accept both.
//!
//! # Verification
//!
//! Signatures are plain (pure, not prehashed) Ed25519 over the raw message bytes. Pure Ed25519
//! still streams: the verifier hashes `R ‖ A ‖ M` with SHA-512 and only needs the hash at the end,
//! which is how usign itself verifies (`edsign_verify_init` / `edsign_verify_add`). So besides
//! [`PublicKey::verify`] over a byte slice there is [`PublicKey::stream_verifier`] (built on
//! ed25519-dalek's `hazmat` `StreamVerifier`): feed a 64 MiB image chunk by chunk and check at the
//! end, without holding it in memory. Both use the same (non-strict, RFC 8032 cofactorless)
//! check, so they accept exactly the same signatures.
//!
//! Unlike `usign -V -p`, which ignores the fingerprint in the signature, [`PublicKey::verify`]
//! first checks that the signature names this key, like `signify -V` does ("checked against
//! wrong key"); the error then says which key made the signature.
//!
//! # Not supported (as in usign)
//!
//! Passphrase-protected secret keys (`kdfrounds != 0`, signify without `-n`), embedded
//! signatures (`signify -e`), gzip signatures (`-z`) and checksum lists (`-C`).
//!
//! # Limits
//!
//! Key and signature files are at most [`MAX_FILE_LEN`] bytes, comments at most
//! [`MAX_COMMENT_LEN`] bytes (signify's `COMMENTMAXLEN`), counted after invalid UTF-8 has become
//! U+FFFD, so that every file accepted is written back within the limits.
//!
//! The comment is everything between the prefix and the first `\n`, a `\r` included, as signify
//! reads it: parsing and writing a file gives back the same bytes (a CRLF file keeps its `\r`).
//!
//! # Why one file
//!
//! About 830 lines before the tests, a third of them documentation of the error variants. The
//! three file types share the armor (comment line, base64, `Ed` tag) and one error type, so they
//! stay together.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _, VerifyingKey};
use sha2::{Digest as _, Sha512};

use crate::excerpt::{MAX_VALUE_CHARS, excerpt};
use crate::wire::OPKG_KEYS_DIR;

/// Largest key or signature file accepted, in bytes: a maximal comment line plus the base64 of
/// the largest structure (a secret key, 140 characters) with room to spare.
pub const MAX_FILE_LEN: usize = 2048;

/// Longest comment accepted or written, in bytes (signify's `COMMENTMAXLEN`).
pub const MAX_COMMENT_LEN: usize = 1024;

/// The fixed start of line 1 of every key and signature file.
pub const COMMENT_PREFIX: &str = "untrusted comment: ";

/// Directory where a router keeps the usign public keys it trusts; the same value as
/// [`crate::wire::OPKG_KEYS_DIR`], which is where it is declared.
pub const KEYS_DIR: &str = OPKG_KEYS_DIR;

/// Decoded length of a public key file.
pub const PUBLIC_KEY_LEN: usize = 42;

/// Decoded length of a secret key file.
pub const SECRET_KEY_LEN: usize = 104;

/// Decoded length of a signature file.
pub const SIGNATURE_LEN: usize = 74;

const PKALG: [u8; 2] = *b"Ed";
const KDFALG: [u8; 2] = *b"BK";

/// Which of the three usign files an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A public key file (`*.pub`, `/etc/opkg/keys/<fingerprint>`).
    PublicKey,
    /// A secret key file (`*.sec`, `key-build`).
    SecretKey,
    /// A signature file (`*.sig`).
    Signature,
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::PublicKey => "public key",
            Self::SecretKey => "secret key",
            Self::Signature => "signature",
        })
    }
}

/// What went wrong reading, writing or checking a usign file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UsignError {
    /// The file is longer than [`MAX_FILE_LEN`].
    #[error("{kind} file is {len} bytes, more than the limit of {max} bytes")]
    TooLarge {
        /// Which file.
        kind: FileKind,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Line 1 is missing or does not start with `untrusted comment: `.
    #[error("{kind} file must start with a line `untrusted comment: ...`, found `{line}`")]
    BadCommentLine {
        /// Which file.
        kind: FileKind,
        /// The start of what was found instead.
        line: String,
    },
    /// A comment is longer than [`MAX_COMMENT_LEN`].
    #[error("comment is {len} bytes, more than the limit of {max} bytes")]
    CommentTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A comment given to be written contains a line break.
    #[error("comment `{comment}` contains a line break; a comment must be a single line")]
    CommentHasLineBreak {
        /// The start of the comment.
        comment: String,
    },
    /// Line 2 is not valid base64.
    #[error("{kind} file: line 2 is not valid base64 ({reason})")]
    BadBase64 {
        /// Which file.
        kind: FileKind,
        /// What the decoder said.
        reason: String,
    },
    /// Line 2 decodes to the wrong number of bytes.
    #[error("{kind} decodes to {found} bytes, expected {expected}")]
    WrongLength {
        /// Which file.
        kind: FileKind,
        /// The structure size.
        expected: usize,
        /// What was decoded.
        found: usize,
    },
    /// The structure does not start with the algorithm tag `Ed`.
    #[error("{kind} does not start with the algorithm tag `Ed`, found `{found}`")]
    MissingEdPrefix {
        /// Which file.
        kind: FileKind,
        /// The two bytes found, escaped.
        found: String,
    },
    /// The secret key's KDF algorithm is not `BK` (bcrypt_pbkdf).
    #[error("secret key uses key derivation `{found}`, expected `BK`")]
    UnsupportedKdf {
        /// The two bytes found, escaped.
        found: String,
    },
    /// The secret key is encrypted with a passphrase (kdfrounds is not 0).
    #[error(
        "secret key is password-protected ({rounds} bcrypt_pbkdf rounds); usign and Attendant \
         only use keys without a passphrase"
    )]
    PasswordProtected {
        /// The kdfrounds field.
        rounds: u32,
    },
    /// The secret key's checksum does not match its secret bytes.
    #[error(
        "secret key checksum mismatch: the file says `{expected}`, the key bytes give `{found}`; \
         the file is corrupted"
    )]
    ChecksumMismatch {
        /// The stored checksum, hex.
        expected: String,
        /// The computed checksum, hex.
        found: String,
    },
    /// The secret key's public half does not belong to its seed.
    #[error("secret key is inconsistent: its public half does not match its seed")]
    InconsistentSecretKey,
    /// The 32 public key bytes are not an Ed25519 point.
    #[error("{kind} `{fingerprint}` does not hold a valid Ed25519 public key")]
    InvalidPublicKey {
        /// Which file.
        kind: FileKind,
        /// The fingerprint it claims.
        fingerprint: Fingerprint,
    },
    /// A trusted key file is not named after the fingerprint of the key inside.
    #[error(
        "key file `{file_name}` holds key `{fingerprint}`; usign finds keys by fingerprint, so \
         the file must be named `{fingerprint}`"
    )]
    FileNameMismatch {
        /// The file name given.
        file_name: String,
        /// The fingerprint of the key inside.
        fingerprint: Fingerprint,
    },
    /// The signature was made by a different key than the one it is checked against.
    #[error("signature was made by key `{signature}`, not by key `{key}`")]
    FingerprintMismatch {
        /// The fingerprint of the key used to check.
        key: Fingerprint,
        /// The fingerprint named in the signature.
        signature: Fingerprint,
    },
    /// The Ed25519 check failed: the message or signature was altered.
    #[error(
        "signature by key `{fingerprint}` does not match the message: the message or the \
         signature was altered"
    )]
    BadSignature {
        /// The signing key.
        fingerprint: Fingerprint,
    },
    /// No trusted key has the signature's fingerprint.
    #[error("signature was made by key `{fingerprint}`, which is not trusted")]
    UnknownKey {
        /// The fingerprint named in the signature.
        fingerprint: Fingerprint,
    },
    /// A fingerprint string is not 1 to 16 hex digits.
    #[error("`{text}` is not a key fingerprint: expected 1 to 16 hex digits")]
    BadFingerprint {
        /// The start of the text.
        text: String,
    },
}

/// The 8-byte key number that ties a signature to its key.
///
/// `Display` is usign's spelling: 16 lowercase hex digits of the big-endian `u64`, zero padded (see
/// the module docs), which is also the key's file name in [`KEYS_DIR`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; 8]);

impl Fingerprint {
    /// Parse 1 to 16 hex digits (either case; zero padding allowed) as usign prints them.
    pub fn from_hex(text: &str) -> Result<Self, UsignError> {
        let bad = || UsignError::BadFingerprint {
            text: excerpt(text, MAX_VALUE_CHARS),
        };
        if text.is_empty() || text.len() > 16 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let value = u64::from_str_radix(text, 16).map_err(|_| bad())?;
        Ok(Self(value.to_be_bytes()))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", u64::from_be_bytes(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// A usign public key with its comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    fingerprint: Fingerprint,
    key: VerifyingKey,
    comment: String,
}

impl PublicKey {
    /// Parse a public key file (comment line, base64 line).
    pub fn parse(bytes: &[u8]) -> Result<Self, UsignError> {
        let kind = FileKind::PublicKey;
        let (comment, raw) = decode_file(kind, bytes, PUBLIC_KEY_LEN)?;
        let mut reader = Reader::new(kind, &raw);
        reader.pkalg()?;
        let fingerprint = Fingerprint(reader.take()?);
        let key = VerifyingKey::from_bytes(&reader.take()?)
            .map_err(|_| UsignError::InvalidPublicKey { kind, fingerprint })?;
        Ok(Self {
            fingerprint,
            key,
            comment,
        })
    }

    /// The key's fingerprint (also its file name in [`KEYS_DIR`]).
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The comment from line 1, without the `untrusted comment: ` prefix. Not authenticated.
    pub fn comment(&self) -> &str {
        &self.comment
    }

    /// The 32 bytes of the Ed25519 public key.
    pub fn key_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The same key with another comment (one line, at most [`MAX_COMMENT_LEN`] bytes).
    pub fn with_comment(mut self, comment: &str) -> Result<Self, UsignError> {
        self.comment = check_comment(comment)?;
        Ok(self)
    }

    /// The key file: comment line, base64 line, newline.
    pub fn to_file(&self) -> String {
        let mut raw = Vec::with_capacity(PUBLIC_KEY_LEN);
        raw.extend_from_slice(&PKALG);
        raw.extend_from_slice(&self.fingerprint.0);
        raw.extend_from_slice(self.key.as_bytes());
        encode_file(&self.comment, &raw)
    }

    /// Check `sig` over the whole `message` (pure Ed25519, as `usign -V` and `signify -V`).
    pub fn verify(&self, message: &[u8], sig: &Signature) -> Result<(), UsignError> {
        self.check_fingerprint(sig)?;
        self.key
            .verify(message, &sig.signature)
            .map_err(|_| UsignError::BadSignature {
                fingerprint: self.fingerprint,
            })
    }

    /// Start checking `sig` over a message that arrives in chunks; see [`StreamVerifier`].
    pub fn stream_verifier(&self, sig: &Signature) -> Result<StreamVerifier, UsignError> {
        self.check_fingerprint(sig)?;
        let inner =
            self.key
                .verify_stream(&sig.signature)
                .map_err(|_| UsignError::BadSignature {
                    fingerprint: self.fingerprint,
                })?;
        Ok(StreamVerifier {
            inner,
            fingerprint: self.fingerprint,
        })
    }

    fn check_fingerprint(&self, sig: &Signature) -> Result<(), UsignError> {
        if sig.fingerprint == self.fingerprint {
            Ok(())
        } else {
            Err(UsignError::FingerprintMismatch {
                key: self.fingerprint,
                signature: sig.fingerprint,
            })
        }
    }
}

/// Checks a signature over a message fed in chunks, in constant memory.
///
/// Pure Ed25519 hashes `R ‖ A ‖ message` once; this keeps the SHA-512 state and finishes the
/// curve check in [`finalize`](Self::finalize). The result is the same as
/// [`PublicKey::verify`] over the concatenated chunks.
pub struct StreamVerifier {
    inner: ed25519_dalek::StreamVerifier,
    fingerprint: Fingerprint,
}

impl StreamVerifier {
    /// Feed the next chunk of the message.
    pub fn update(&mut self, chunk: &[u8]) {
        self.inner.update(chunk);
    }

    /// The key the signature is checked against.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// Finish: `Ok` when the signature matches everything fed so far.
    pub fn finalize(self) -> Result<(), UsignError> {
        self.inner
            .finalize_and_verify()
            .map_err(|_| UsignError::BadSignature {
                fingerprint: self.fingerprint,
            })
    }
}

impl fmt::Debug for StreamVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamVerifier")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// A usign secret key without a passphrase (kdfrounds 0), as `usign -G` and `signify -G -n`
/// write them.
#[derive(Clone)]
pub struct SecretKey {
    signing: SigningKey,
    fingerprint: Fingerprint,
    salt: [u8; 16],
    comment: String,
    public_comment: String,
}

impl SecretKey {
    /// Build a new key from caller-supplied randomness, like `usign -G`.
    ///
    /// usign reads `fingerprint`, `seed` and `salt` from `/dev/urandom`; pass 8 + 32 + 16 fresh
    /// random bytes (the salt is unused without a passphrase but kept for the format). With
    /// `comment` `None` the comments are usign's defaults, `private key <fp>` and
    /// `public key <fp>`; otherwise both files get `comment`, as with `usign -G -c`.
    pub fn generate(
        seed: [u8; 32],
        fingerprint: Fingerprint,
        salt: [u8; 16],
        comment: Option<&str>,
    ) -> Result<Self, UsignError> {
        let (comment, public_comment) = match comment {
            Some(text) => {
                let text = check_comment(text)?;
                (text.clone(), text)
            }
            None => (
                format!("private key {fingerprint}"),
                format!("public key {fingerprint}"),
            ),
        };
        Ok(Self {
            signing: SigningKey::from_bytes(&seed),
            fingerprint,
            salt,
            comment,
            public_comment,
        })
    }

    /// Parse a secret key file; refuses passphrase-protected keys and checks the checksum.
    pub fn parse(bytes: &[u8]) -> Result<Self, UsignError> {
        let kind = FileKind::SecretKey;
        let (comment, raw) = decode_file(kind, bytes, SECRET_KEY_LEN)?;
        let mut reader = Reader::new(kind, &raw);
        reader.pkalg()?;
        let kdfalg: [u8; 2] = reader.take()?;
        if kdfalg != KDFALG {
            return Err(UsignError::UnsupportedKdf {
                found: escape(&kdfalg),
            });
        }
        let rounds = u32::from_be_bytes(reader.take()?);
        if rounds != 0 {
            return Err(UsignError::PasswordProtected { rounds });
        }
        let salt: [u8; 16] = reader.take()?;
        let checksum: [u8; 8] = reader.take()?;
        let fingerprint = Fingerprint(reader.take()?);
        let seed: [u8; 32] = reader.take()?;
        let public: [u8; 32] = reader.take()?;
        let computed = checksum_of(&seed, &public);
        if computed != checksum {
            return Err(UsignError::ChecksumMismatch {
                expected: hex(&checksum),
                found: hex(&computed),
            });
        }
        let signing = SigningKey::from_bytes(&seed);
        if signing.verifying_key().to_bytes() != public {
            return Err(UsignError::InconsistentSecretKey);
        }
        Ok(Self {
            signing,
            fingerprint,
            salt,
            comment,
            public_comment: format!("public key {fingerprint}"),
        })
    }

    /// The key's fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The comment from line 1 of the secret key file.
    pub fn comment(&self) -> &str {
        &self.comment
    }

    /// The secret key file (kdfrounds 0): comment line, base64 line, newline.
    pub fn to_file(&self) -> String {
        let seed = self.signing.to_bytes();
        let public = self.signing.verifying_key().to_bytes();
        let mut raw = Vec::with_capacity(SECRET_KEY_LEN);
        raw.extend_from_slice(&PKALG);
        raw.extend_from_slice(&KDFALG);
        raw.extend_from_slice(&0_u32.to_be_bytes());
        raw.extend_from_slice(&self.salt);
        raw.extend_from_slice(&checksum_of(&seed, &public));
        raw.extend_from_slice(&self.fingerprint.0);
        raw.extend_from_slice(&seed);
        raw.extend_from_slice(&public);
        encode_file(&self.comment, &raw)
    }

    /// The matching public key (comment `public key <fp>`, or the comment given to
    /// [`generate`](Self::generate)).
    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            fingerprint: self.fingerprint,
            key: self.signing.verifying_key(),
            comment: self.public_comment.clone(),
        }
    }

    /// Sign `message` (pure Ed25519, deterministic: the same bytes as `usign -S` and
    /// `signify -S`), with usign's comment `signed by key <fp>`.
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature {
            fingerprint: self.fingerprint,
            signature: self.signing.sign(message),
            comment: format!("signed by key {}", self.fingerprint),
        }
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("fingerprint", &self.fingerprint)
            .field("comment", &self.comment)
            .finish_non_exhaustive()
    }
}

/// A usign signature with its comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    fingerprint: Fingerprint,
    signature: ed25519_dalek::Signature,
    comment: String,
}

impl Signature {
    /// Parse a signature file (comment line, base64 line).
    pub fn parse(bytes: &[u8]) -> Result<Self, UsignError> {
        let kind = FileKind::Signature;
        let (comment, raw) = decode_file(kind, bytes, SIGNATURE_LEN)?;
        let mut reader = Reader::new(kind, &raw);
        reader.pkalg()?;
        let fingerprint = Fingerprint(reader.take()?);
        let signature = ed25519_dalek::Signature::from_bytes(&reader.take()?);
        Ok(Self {
            fingerprint,
            signature,
            comment,
        })
    }

    /// The fingerprint of the key that made the signature.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The comment from line 1. Not authenticated.
    pub fn comment(&self) -> &str {
        &self.comment
    }

    /// The same signature with another comment (one line, at most [`MAX_COMMENT_LEN`] bytes).
    pub fn with_comment(mut self, comment: &str) -> Result<Self, UsignError> {
        self.comment = check_comment(comment)?;
        Ok(self)
    }

    /// The signature file: comment line, base64 line, newline.
    pub fn to_file(&self) -> String {
        let mut raw = Vec::with_capacity(SIGNATURE_LEN);
        raw.extend_from_slice(&PKALG);
        raw.extend_from_slice(&self.fingerprint.0);
        raw.extend_from_slice(&self.signature.to_bytes());
        encode_file(&self.comment, &raw)
    }
}

/// The trusted public keys of a key directory such as [`KEYS_DIR`], held in memory.
///
/// The caller reads the directory and hands each entry in with [`add_file`](Self::add_file).
/// usign's layout is one file per key, named after the key's fingerprint; a revoked key is a
/// dangling symlink, which the caller cannot read and so never adds.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    keys: BTreeMap<Fingerprint, PublicKey>,
}

impl Keyring {
    /// An empty keyring.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add the key file `file_name` (the name within the directory) with contents `bytes`.
    ///
    /// The name must be the key's fingerprint exactly as usign spells it, because that is the only
    /// name under which usign would find it.
    pub fn add_file(&mut self, file_name: &str, bytes: &[u8]) -> Result<(), UsignError> {
        let key = PublicKey::parse(bytes)?;
        // Old usign wrote unpadded names; both spellings name the same key.
        if Fingerprint::from_hex(file_name).ok() != Some(key.fingerprint) {
            return Err(UsignError::FileNameMismatch {
                file_name: excerpt(file_name, MAX_VALUE_CHARS),
                fingerprint: key.fingerprint,
            });
        }
        self.keys.insert(key.fingerprint, key);
        Ok(())
    }

    /// Trust `key` (for keys that do not come from a directory).
    pub fn add(&mut self, key: PublicKey) {
        self.keys.insert(key.fingerprint, key);
    }

    /// The trusted key with this fingerprint.
    pub fn get(&self, fingerprint: &Fingerprint) -> Option<&PublicKey> {
        self.keys.get(fingerprint)
    }

    /// Number of trusted keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Check `sig` over `message` with the trusted key it names (like `usign -V -P dir`);
    /// returns that key's fingerprint.
    pub fn verify(&self, message: &[u8], sig: &Signature) -> Result<Fingerprint, UsignError> {
        let key = self.key_for(sig)?;
        key.verify(message, sig)?;
        Ok(key.fingerprint)
    }

    /// Start a chunked check of `sig` with the trusted key it names; see [`StreamVerifier`].
    pub fn stream_verifier(&self, sig: &Signature) -> Result<StreamVerifier, UsignError> {
        self.key_for(sig)?.stream_verifier(sig)
    }

    fn key_for(&self, sig: &Signature) -> Result<&PublicKey, UsignError> {
        self.keys
            .get(&sig.fingerprint)
            .ok_or(UsignError::UnknownKey {
                fingerprint: sig.fingerprint,
            })
    }
}

/// Split a file into its comment and decoded structure, checking size, comment line, base64,
/// length and the `Ed` tag position (the tag itself is checked by [`Reader::pkalg`]).
fn decode_file(
    kind: FileKind,
    bytes: &[u8],
    expected: usize,
) -> Result<(String, Vec<u8>), UsignError> {
    if bytes.len() > MAX_FILE_LEN {
        return Err(UsignError::TooLarge {
            kind,
            len: bytes.len(),
            max: MAX_FILE_LEN,
        });
    }
    let newline = bytes.iter().position(|&b| b == b'\n');
    let (line, body) = match newline.and_then(|at| bytes.split_at_checked(at)) {
        Some((line, rest)) => (line, rest.get(1..).unwrap_or_default()),
        None => {
            return Err(UsignError::BadCommentLine {
                kind,
                line: excerpt(&String::from_utf8_lossy(bytes), MAX_VALUE_CHARS),
            });
        }
    };
    // Only the `\n` is taken off: it is all [`encode_file`] adds, so a comment ending in `\r`
    // (a file saved with CRLF line ends) is written back as it was read (issue 20).
    let Some(comment) = line.strip_prefix(COMMENT_PREFIX.as_bytes()) else {
        return Err(UsignError::BadCommentLine {
            kind,
            line: excerpt(&String::from_utf8_lossy(line), MAX_VALUE_CHARS),
        });
    };
    // The limit applies to the comment as it will be written: each invalid UTF-8 byte becomes a
    // three-byte U+FFFD, so checking the raw bytes would accept a comment that cannot be
    // written back within the limit (issue 20).
    let comment = String::from_utf8_lossy(comment).into_owned();
    if comment.len() > MAX_COMMENT_LEN {
        return Err(UsignError::CommentTooLong {
            len: comment.len(),
            max: MAX_COMMENT_LEN,
        });
    }
    let text = body.trim_ascii_end();
    let raw = BASE64.decode(text).map_err(|error| UsignError::BadBase64 {
        kind,
        reason: error.to_string(),
    })?;
    if raw.len() != expected {
        return Err(UsignError::WrongLength {
            kind,
            expected,
            found: raw.len(),
        });
    }
    Ok((comment, raw))
}

fn encode_file(comment: &str, raw: &[u8]) -> String {
    format!("{COMMENT_PREFIX}{comment}\n{}\n", BASE64.encode(raw))
}

fn check_comment(comment: &str) -> Result<String, UsignError> {
    if comment.contains(['\n', '\r']) {
        return Err(UsignError::CommentHasLineBreak {
            comment: excerpt(comment, MAX_VALUE_CHARS),
        });
    }
    if comment.len() > MAX_COMMENT_LEN {
        return Err(UsignError::CommentTooLong {
            len: comment.len(),
            max: MAX_COMMENT_LEN,
        });
    }
    Ok(comment.to_owned())
}

fn checksum_of(seed: &[u8; 32], public: &[u8; 32]) -> [u8; 8] {
    let mut hasher = Sha512::new();
    hasher.update(seed);
    hasher.update(public);
    let digest = hasher.finalize();
    let mut checksum = [0_u8; 8];
    for (out, byte) in checksum.iter_mut().zip(digest.iter()) {
        *out = *byte;
    }
    checksum
}

/// Reads fixed-size fields from a decoded structure whose length was already checked.
struct Reader<'a> {
    kind: FileKind,
    whole: usize,
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(kind: FileKind, bytes: &'a [u8]) -> Self {
        Self {
            kind,
            whole: bytes.len(),
            rest: bytes,
        }
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], UsignError> {
        // Unreachable after decode_file's length check; reported as a length error regardless.
        let (field, rest) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or(UsignError::WrongLength {
                kind: self.kind,
                expected: self.whole.saturating_add(N),
                found: self.whole,
            })?;
        self.rest = rest;
        Ok(*field)
    }

    fn pkalg(&mut self) -> Result<(), UsignError> {
        let tag: [u8; 2] = self.take()?;
        if tag == PKALG {
            Ok(())
        } else {
            Err(UsignError::MissingEdPrefix {
                kind: self.kind,
                found: escape(&tag),
            })
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn escape(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SecretKey {
        SecretKey::generate(
            [n; 32],
            Fingerprint([n, 1, 2, 3, 4, 5, 6, 7]),
            [9; 16],
            None,
        )
        .unwrap()
    }

    #[test]
    fn fingerprint_displays_as_sixteen_zero_padded_digits() {
        let fp = Fingerprint([0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f, 0x60, 0x71]);
        assert_eq!(fp.to_string(), "0a1b2c3d4e5f6071");
        assert_eq!(Fingerprint([0; 8]).to_string(), "0000000000000000");
        assert_eq!(Fingerprint::from_hex("a1b2c3d4e5f6071").unwrap(), fp);
        let full = Fingerprint([0x8a, 0x11, 0x25, 0x5d, 0x14, 0xae, 0xf6, 0xc8]);
        assert_eq!(full.to_string(), "8a11255d14aef6c8");
        assert_eq!(Fingerprint::from_hex("8a11255d14aef6c8").unwrap(), full);
        assert_eq!(Fingerprint::from_hex("a1b2c3d4e5f6071").unwrap(), fp);
        assert_eq!(Fingerprint::from_hex("0a1b2c3d4e5f6071").unwrap(), fp);
    }

    #[test]
    fn rejects_bad_fingerprint_text() {
        for text in ["", "+1", "12345678901234567", "xyz", "-1"] {
            assert!(matches!(
                Fingerprint::from_hex(text),
                Err(UsignError::BadFingerprint { .. })
            ));
        }
        assert_eq!(
            Fingerprint::from_hex("zz").unwrap_err().to_string(),
            "`zz` is not a key fingerprint: expected 1 to 16 hex digits"
        );
    }

    #[test]
    fn bad_fingerprint_text_is_quoted_short_and_visible() {
        assert_eq!(
            Fingerprint::from_hex("a\x1b[2Jb").unwrap_err().to_string(),
            "`a\\u{1b}[2Jb` is not a key fingerprint: expected 1 to 16 hex digits"
        );
        let long = "g".repeat(100);
        let UsignError::BadFingerprint { text } = Fingerprint::from_hex(&long).unwrap_err() else {
            panic!("not BadFingerprint");
        };
        assert_eq!(text, format!("{}…", "g".repeat(64)));
    }

    #[test]
    fn generated_key_round_trips_and_signs() {
        let secret = key(3);
        let public = secret.public_key();
        assert_eq!(public.comment(), "public key 0301020304050607");
        assert_eq!(secret.comment(), "private key 0301020304050607");
        let reparsed = SecretKey::parse(secret.to_file().as_bytes()).unwrap();
        assert_eq!(reparsed.to_file(), secret.to_file());
        assert_eq!(
            PublicKey::parse(public.to_file().as_bytes()).unwrap(),
            public
        );
        let sig = secret.sign(b"hello");
        assert_eq!(sig.comment(), "signed by key 0301020304050607");
        let sig = Signature::parse(sig.to_file().as_bytes()).unwrap();
        public.verify(b"hello", &sig).unwrap();
        assert_eq!(
            public.verify(b"hellO", &sig).unwrap_err(),
            UsignError::BadSignature {
                fingerprint: public.fingerprint()
            }
        );
    }

    #[test]
    fn stream_verifier_agrees_with_verify() {
        let secret = key(5);
        let message: Vec<u8> = (0..10_000_u32).map(|i| (i % 251) as u8).collect();
        let sig = secret.sign(&message);
        let mut stream = secret.public_key().stream_verifier(&sig).unwrap();
        for chunk in message.chunks(777) {
            stream.update(chunk);
        }
        stream.finalize().unwrap();
        let mut stream = secret.public_key().stream_verifier(&sig).unwrap();
        stream.update(&message[1..]);
        assert!(matches!(
            stream.finalize(),
            Err(UsignError::BadSignature { .. })
        ));
    }

    #[test]
    fn rejects_signature_from_other_key() {
        let sig = key(1).sign(b"m");
        let err = key(2).public_key().verify(b"m", &sig).unwrap_err();
        assert_eq!(
            err.to_string(),
            "signature was made by key `0101020304050607`, not by key `0201020304050607`"
        );
    }

    #[test]
    fn rejects_password_protected_key_with_hint() {
        let mut raw = BASE64
            .decode(key(1).to_file().lines().nth(1).unwrap())
            .unwrap();
        raw[4..8].copy_from_slice(&42_u32.to_be_bytes());
        let file = encode_file("x", &raw);
        let err = SecretKey::parse(file.as_bytes()).unwrap_err();
        assert_eq!(err, UsignError::PasswordProtected { rounds: 42 });
        assert_eq!(
            err.to_string(),
            "secret key is password-protected (42 bcrypt_pbkdf rounds); usign and Attendant only \
             use keys without a passphrase"
        );
    }

    #[test]
    fn rejects_corrupted_secret_key() {
        let mut raw = BASE64
            .decode(key(1).to_file().lines().nth(1).unwrap())
            .unwrap();
        raw[50] ^= 1;
        let err = SecretKey::parse(encode_file("x", &raw).as_bytes()).unwrap_err();
        assert!(matches!(err, UsignError::ChecksumMismatch { .. }), "{err}");
        raw[50] ^= 1;
        raw[2] = b'X';
        let err = SecretKey::parse(encode_file("x", &raw).as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "secret key uses key derivation `XK`, expected `BK`"
        );
    }

    #[test]
    fn rejects_missing_comment_line() {
        let file = key(1).public_key().to_file();
        let body = file.lines().nth(1).unwrap();
        let err = PublicKey::parse(body.as_bytes()).unwrap_err();
        assert!(matches!(err, UsignError::BadCommentLine { .. }));
        let err = PublicKey::parse(format!("comment: x\n{body}\n").as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "public key file must start with a line `untrusted comment: ...`, found `comment: x`"
        );
    }

    #[test]
    fn rejects_wrong_length_and_prefix() {
        let sig_file = key(1).sign(b"m").to_file();
        let err = PublicKey::parse(sig_file.as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "public key decodes to 74 bytes, expected 42"
        );
        let mut raw = BASE64.decode(sig_file.lines().nth(1).unwrap()).unwrap();
        raw[0] = 0;
        let err = Signature::parse(encode_file("c", &raw).as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "signature does not start with the algorithm tag `Ed`, found `\\x00d`"
        );
        let err = Signature::parse(b"untrusted comment: c\n!!!\n").unwrap_err();
        assert!(matches!(err, UsignError::BadBase64 { .. }));
    }

    #[test]
    fn rejects_too_large_file() {
        let big = vec![b'a'; MAX_FILE_LEN + 1];
        assert_eq!(
            Signature::parse(&big).unwrap_err().to_string(),
            "signature file is 2049 bytes, more than the limit of 2048 bytes"
        );
    }

    #[test]
    fn rejects_comment_with_line_break() {
        let err =
            SecretKey::generate([1; 32], Fingerprint([1; 8]), [0; 16], Some("a\nb")).unwrap_err();
        assert!(matches!(err, UsignError::CommentHasLineBreak { .. }));
        let UsignError::CommentHasLineBreak { comment } = err else {
            unreachable!()
        };
        assert_eq!(comment, "a\\nb");
    }

    #[test]
    fn every_proper_prefix_of_a_signature_file_fails() {
        let file = key(4).sign(b"m").to_file();
        let bytes = file.as_bytes();
        // The last byte is the optional final newline.
        for len in 0..bytes.len() - 1 {
            assert!(Signature::parse(&bytes[..len]).is_err(), "prefix {len}");
        }
    }

    #[test]
    fn keyring_checks_file_names_and_finds_keys() {
        let secret = key(7);
        let public = secret.public_key();
        let mut ring = Keyring::new();
        let err = ring
            .add_file("0801020304050607", public.to_file().as_bytes())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "key file `0801020304050607` holds key `0701020304050607`; usign finds keys by \
             fingerprint, so the file must be named `0701020304050607`"
        );
        // Both usign spellings of the file name: padded (current) and unpadded (before 2020).
        ring.add_file("701020304050607", public.to_file().as_bytes())
            .unwrap();
        ring.add_file("0701020304050607", public.to_file().as_bytes())
            .unwrap();
        assert_eq!(ring.get(&public.fingerprint()), Some(&public));
        let sig = secret.sign(b"data");
        assert_eq!(ring.verify(b"data", &sig).unwrap(), public.fingerprint());
        let stranger = key(8).sign(b"data");
        assert_eq!(
            ring.verify(b"data", &stranger).unwrap_err().to_string(),
            "signature was made by key `0801020304050607`, which is not trusted"
        );
    }

    /// Issue 20 (<https://github.com/attendant-openwrt/attendant/issues/20>), a fuzz finding:
    /// the comment's length was checked before invalid UTF-8 became U+FFFD (three bytes each),
    /// so an accepted file was written back with a comment the parser refuses.
    #[test]
    fn issue_20_comment_length_is_checked_after_lossy_conversion() {
        let public = key(9).public_key().to_file();
        let key_line = public.split_once('\n').unwrap().1;
        for invalid in [1, 300, 341, 342, 400, MAX_COMMENT_LEN] {
            let mut file = COMMENT_PREFIX.as_bytes().to_vec();
            file.extend(std::iter::repeat_n(0xff_u8, invalid));
            file.push(b'\n');
            file.extend_from_slice(key_line.as_bytes());
            match PublicKey::parse(&file) {
                Ok(parsed) => {
                    let written = parsed.to_file();
                    assert!(written.len() <= MAX_FILE_LEN, "{invalid}");
                    assert_eq!(
                        PublicKey::parse(written.as_bytes()).unwrap(),
                        parsed,
                        "{invalid}"
                    );
                }
                Err(error) => assert_eq!(
                    error,
                    UsignError::CommentTooLong {
                        len: invalid * 3,
                        max: MAX_COMMENT_LEN
                    },
                    "{invalid}"
                ),
            }
        }
        let mut file = COMMENT_PREFIX.as_bytes().to_vec();
        file.extend(std::iter::repeat_n(0xff_u8, 342));
        file.push(b'\n');
        file.extend_from_slice(key_line.as_bytes());
        assert_eq!(
            PublicKey::parse(&file).unwrap_err().to_string(),
            "comment is 1026 bytes, more than the limit of 1024 bytes"
        );
    }

    /// Issue 20, a fuzz finding: only one `\r` was taken off the comment line, so each
    /// parse-and-write lost one of several. The writer adds only `\n`, so only `\n` is taken off.
    #[test]
    fn issue_20_carriage_returns_in_the_comment_round_trip() {
        let secret = key(10);
        let files = [
            secret.public_key().to_file(),
            secret.to_file(),
            secret.sign(b"m").to_file(),
        ];
        for file in files {
            let key_line = file.split_once('\n').unwrap().1;
            for comment in ["\r", "\r\r", "c\r\r\r", "a\rb\r"] {
                let text = format!("{COMMENT_PREFIX}{comment}\n{key_line}");
                let bytes = text.as_bytes();
                let rewritten = if let Ok(parsed) = PublicKey::parse(bytes) {
                    assert_eq!(parsed.comment(), comment);
                    parsed.to_file()
                } else if let Ok(parsed) = SecretKey::parse(bytes) {
                    assert_eq!(parsed.comment(), comment);
                    parsed.to_file()
                } else {
                    let parsed = Signature::parse(bytes).unwrap();
                    assert_eq!(parsed.comment(), comment);
                    parsed.to_file()
                };
                assert_eq!(rewritten, text);
            }
        }
    }
}
