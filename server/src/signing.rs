//! Image signing: a usign key pair of the server, detached `<image>.sig` signatures.
//!
//! `keygen` writes the pair (secret key file mode 0600); `serve` loads the secret key named by
//! `signing_key`, publishes the public key at `/keys/<fingerprint>`, and the worker signs every
//! image it built. Signatures are the same bytes as `usign -S` and `signify -S`, so a router
//! verifies them with `usign -V` and a desktop with `signify-openbsd -V`. By default the image
//! itself is left untouched, so `sha256` and `sha256_unsigned` are equal and both are
//! recomputed from the file we serve.
//!
//! # Signature trailers, as ASU
//!
//! With `signature_trailer` on, [`sign_image_with_trailer`] does to each installable image what
//! ASU does (<https://github.com/openwrt/asu>, `asu/build.py`, and OpenWrt's own
//! `Build/append-metadata` in `include/image.mk`): drop a signature block the image already
//! ends in (`fwtool -t -s /dev/null`), sign the rest (`usign -S`), append that signature as the
//! final element of a ucert chain (`ucert -A`) after the certificates of `signing_certificate`,
//! and append the chain as an fwtool signature block (`fwtool -S`). sysupgrade on the router
//! checks that block with `ucert -V` when the image carries one. As ASU reports it, `sha256` and
//! `sha256_unsigned` are then the hash of the image *before* the block, and the detached `.sig`
//! (kept for our agent and `usign -V`) is the chain's final signature over that same part.

use std::path::{Path, PathBuf};

use attendant_proto::fwtool::{self, BlockKind, Crc, FwtoolError};
use attendant_proto::ucert::{Chain, Element, UcertError};
use attendant_proto::upstream::ImageType;
use attendant_proto::usign::{Fingerprint, PublicKey, SecretKey, UsignError};
use sha2::{Digest, Sha256};

use crate::atomic::{Existing, write_atomic};

/// Largest image signed, in bytes (Ed25519 signs the whole message in memory).
pub const MAX_SIGNED_IMAGE_BYTES: u64 = 1 << 30;

/// Why a key could not be loaded or written, or an image not signed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SigningError {
    /// A file operation failed.
    #[error("cannot {action} `{path}`")]
    Io {
        /// What we were doing.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A key file is a usign secret key encrypted with a passphrase, which a server that signs
    /// unattended cannot use.
    #[error(
        "`{path}` is encrypted with a passphrase ({rounds} bcrypt_pbkdf rounds); the server signs \
         without asking for one"
    )]
    PasswordProtected {
        /// The file.
        path: PathBuf,
        /// The key's kdfrounds field.
        rounds: u32,
    },
    /// A key file is not a usign key.
    #[error("`{path}` is not a usign secret key")]
    Key {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        #[source]
        source: UsignError,
    },
    /// The image is larger than [`MAX_SIGNED_IMAGE_BYTES`].
    #[error("image `{path}` is larger than {MAX_SIGNED_IMAGE_BYTES} bytes and cannot be signed")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// The OS random source failed.
    #[error("cannot read random bytes for a new key")]
    Random,
    /// The image's fwtool blocks are damaged, so no signature block can be appended.
    #[error("image `{path}` has a damaged fwtool trailer")]
    Trailer {
        /// The image.
        path: PathBuf,
        /// What fwtool found.
        #[source]
        source: FwtoolError,
    },
    /// `signing_certificate` is not a ucert file of certificates.
    #[error("`{path}` is not a ucert certificate file")]
    Certificate {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        #[source]
        source: UcertError,
    },
    /// `signing_certificate` cannot lead to the signing key (see the message).
    #[error("`{path}` {rule}")]
    CertificateChain {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        rule: String,
    },
}

impl SigningError {
    /// The operator's way out, printed after the error as `hint: ...` where it reaches them
    /// (the CLI). `None` when the message says it all. Kept out of `Display` so the message
    /// reads the same wherever it is chained or logged.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::PasswordProtected { path, .. } => Some(format!(
                "make a key without a passphrase with `attendant-server keygen -s {}`, \
                 `signify-openbsd -G -n -p key.pub -s key.sec` or `usign -G -p key.pub -s key.sec`",
                path.display()
            )),
            Self::CertificateChain { .. } => Some(
                "certify the signing key with `attendant-server keys delegate` or `ucert -I`, \
                 or leave `signing_certificate` unset to put only the signature into the trailer"
                    .to_owned(),
            ),
            Self::Io { .. }
            | Self::Key { .. }
            | Self::TooLarge { .. }
            | Self::Random
            | Self::Trailer { .. }
            | Self::Certificate { .. } => None,
        }
    }
}

/// Loads a usign secret key file.
pub fn load_secret_key(path: &Path) -> Result<SecretKey, SigningError> {
    let bytes = std::fs::read(path).map_err(|source| SigningError::Io {
        action: "read the signing key",
        path: path.to_owned(),
        source,
    })?;
    SecretKey::parse(&bytes).map_err(|source| match source {
        UsignError::PasswordProtected { rounds } => SigningError::PasswordProtected {
            path: path.to_owned(),
            rounds,
        },
        source => SigningError::Key {
            path: path.to_owned(),
            source,
        },
    })
}

/// Generates a key pair and writes `<secret>` (mode 0600) and `<secret>.pub`; returns the
/// public key.
pub fn generate_key_pair(
    secret_path: &Path,
    comment: Option<&str>,
) -> Result<PublicKey, SigningError> {
    let mut random = [0u8; 56];
    getrandom::fill(&mut random).map_err(|_| SigningError::Random)?;
    let (seed, rest) = random.split_at(32);
    let (fingerprint, salt) = rest.split_at(8);
    let key = SecretKey::generate(
        seed.try_into().map_err(|_| SigningError::Random)?,
        Fingerprint(fingerprint.try_into().map_err(|_| SigningError::Random)?),
        salt.try_into().map_err(|_| SigningError::Random)?,
        comment,
    )
    .map_err(|source| SigningError::Key {
        path: secret_path.to_owned(),
        source,
    })?;
    write_private(secret_path, key.to_file().as_bytes())?;
    let public = key.public_key();
    let public_path = public_path_of(secret_path);
    write_atomic(
        &public_path,
        public.to_file().as_bytes(),
        Existing::Replace,
        false,
    )
    .map_err(|source| SigningError::Io {
        action: "write the public key",
        path: public_path,
        source,
    })?;
    Ok(public)
}

/// `<secret>.pub`.
pub fn public_path_of(secret_path: &Path) -> PathBuf {
    let mut name = secret_path.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

/// Signs `image`, writing `<image>.sig`; returns the image's SHA-256 (hex) and the signature
/// file name.
pub fn sign_image(key: &SecretKey, image: &Path) -> Result<(String, String), SigningError> {
    let data = read_image(image)?;
    let name = write_signature(image, &key.sign(&data).to_file())?;
    Ok((hex::encode(Sha256::digest(&data)), name))
}

/// Writes `<image>.sig`; returns its file name.
fn write_signature(image: &Path, signature_file: &str) -> Result<String, SigningError> {
    let mut sig_path = image.as_os_str().to_owned();
    sig_path.push(".sig");
    let sig_path = PathBuf::from(sig_path);
    write_atomic(
        &sig_path,
        signature_file.as_bytes(),
        Existing::Replace,
        false,
    )
    .map_err(|source| SigningError::Io {
        action: "write the signature",
        path: sig_path.clone(),
        source,
    })?;
    Ok(sig_path
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or_default()
        .to_owned())
}

/// Whether ASU signs images of this type with a trailer (`asu/build.py` signs the installable
/// images, never a kernel or root filesystem alone, which sysupgrade does not take).
pub fn takes_trailer(image_type: &ImageType) -> bool {
    matches!(
        image_type,
        ImageType::Sysupgrade
            | ImageType::Factory
            | ImageType::Combined
            | ImageType::CombinedEfi
            | ImageType::Sdcard
    )
}

/// Loads `signing_certificate`: the ucert certificates that lead from a key routers trust to
/// `key`, which go before the final signature in every trailer. Each element must be a
/// certificate (no final signature: the image's comes last), the last one must certify `key`,
/// and the chain with a final signature must fit fwtool's signature block.
pub fn load_certificate(path: &Path, key: &SecretKey) -> Result<Chain, SigningError> {
    let bytes = std::fs::read(path).map_err(|source| SigningError::Io {
        action: "read the signing certificate",
        path: path.to_owned(),
        source,
    })?;
    let chain = Chain::parse(&bytes).map_err(|source| SigningError::Certificate {
        path: path.to_owned(),
        source,
    })?;
    let rule = |rule: String| SigningError::CertificateChain {
        path: path.to_owned(),
        rule,
    };
    if chain
        .elements()
        .iter()
        .any(|element| element.cert().is_none())
    {
        return Err(rule(
            "holds a signature; it must hold only the certificates, the image's signature is \
             appended to them"
                .to_owned(),
        ));
    }
    let certified = chain
        .elements()
        .last()
        .and_then(|element| match element.cert()?.body() {
            attendant_proto::ucert::CertBody::Auth { public_key, .. } => {
                Some(public_key.fingerprint())
            }
            _ => None,
        });
    if certified != Some(key.fingerprint()) {
        return Err(rule(format!(
            "does not end in a certificate of the signing key {}; routers would refuse every \
             image",
            key.fingerprint()
        )));
    }
    let len = trailer_chain(&chain, &key.sign(b"")).to_bytes().len();
    if len > fwtool::MAX_SIGNATURE_LEN {
        return Err(rule(format!(
            "with a signature makes a chain of {len} bytes, more than the {} an fwtool \
             signature block holds",
            fwtool::MAX_SIGNATURE_LEN
        )));
    }
    Ok(chain)
}

/// Signs `image` as ASU does (see the module docs): `certificates` and the final signature as
/// an fwtool signature block at its end, `<image>.sig` beside it. Returns the SHA-256 (hex) of
/// the image before the block and the signature file name.
pub fn sign_image_with_trailer(
    key: &SecretKey,
    certificates: &Chain,
    image: &Path,
) -> Result<(String, String), SigningError> {
    let mut data = read_image(image)?;
    let trailer = |source| SigningError::Trailer {
        path: image.to_owned(),
        source,
    };
    let len = u64::try_from(data.len()).unwrap_or(u64::MAX);
    let tail = data
        .get(data.len().saturating_sub(fwtool::TAIL_LEN)..)
        .unwrap_or_default();
    let layouts = fwtool::parse_tail(tail, len).map_err(trailer)?;
    if let Some(unsigned) = fwtool::signed_len(&layouts) {
        data.truncate(usize::try_from(unsigned).unwrap_or(data.len()));
    }
    let signature = key.sign(&data);
    let name = write_signature(image, &signature.to_file())?;
    let sha256 = hex::encode(Sha256::digest(&data));
    let mut crc = Crc::new();
    crc.update(&data);
    let chain = trailer_chain(certificates, &signature).to_bytes();
    let block = fwtool::block_bytes(BlockKind::Signature, &chain, &crc).map_err(trailer)?;
    data.extend_from_slice(&block);
    write_atomic(image, &data, Existing::Replace, false).map_err(|source| SigningError::Io {
        action: "write the signed image",
        path: image.to_owned(),
        source,
    })?;
    Ok((sha256, name))
}

/// `certificates` followed by the final signature (`ucert -A`).
fn trailer_chain(certificates: &Chain, signature: &attendant_proto::usign::Signature) -> Chain {
    let mut chain = certificates.clone();
    chain.push(Element::final_signature(signature));
    chain
}

/// The usign signature file (the bytes of `<image>.sig`) of `image`, without writing it.
pub fn signature_file(key: &SecretKey, image: &Path) -> Result<String, SigningError> {
    let data = read_image(image)?;
    Ok(key.sign(&data).to_file())
}

/// SHA-256 (hex) of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String, SigningError> {
    let mut file = std::fs::File::open(path).map_err(|source| SigningError::Io {
        action: "open",
        path: path.to_owned(),
        source,
    })?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read =
            std::io::Read::read(&mut file, &mut buffer).map_err(|source| SigningError::Io {
                action: "read",
                path: path.to_owned(),
                source,
            })?;
        let Some(chunk) = buffer.get(..read).filter(|chunk| !chunk.is_empty()) else {
            break;
        };
        hasher.update(chunk);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn read_image(path: &Path) -> Result<Vec<u8>, SigningError> {
    let io = |source| SigningError::Io {
        action: "read the image",
        path: path.to_owned(),
        source,
    };
    let length = std::fs::metadata(path).map_err(io)?.len();
    if length > MAX_SIGNED_IMAGE_BYTES {
        return Err(SigningError::TooLarge {
            path: path.to_owned(),
        });
    }
    std::fs::read(path).map_err(io)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), SigningError> {
    write_atomic(path, bytes, Existing::Keep, true).map_err(|source| SigningError::Io {
        action: "write the secret key",
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_passphrase_protected_key_is_refused_with_the_commands_that_make_a_usable_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("protected.sec");
        std::fs::write(
            &path,
            include_bytes!("../../proto/testdata/usign/protected.sec"),
        )
        .unwrap();
        let error = load_secret_key(&path).unwrap_err();
        assert!(
            matches!(error, SigningError::PasswordProtected { rounds: 42, .. }),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            format!(
                "`{}` is encrypted with a passphrase (42 bcrypt_pbkdf rounds); the server signs \
                 without asking for one",
                path.display()
            )
        );
        let hint = error.hint().unwrap();
        assert!(
            hint.contains(&format!("attendant-server keygen -s {}", path.display())),
            "{hint}"
        );
        assert!(hint.contains("signify-openbsd -G -n"), "{hint}");
        assert!(hint.contains("usign -G"), "{hint}");
    }

    /// An image as an ImageBuilder writes it: data, then the fwtool metadata block.
    fn built_image() -> Vec<u8> {
        let mut image: Vec<u8> = (0..100_000_u32).map(|i| (i % 253) as u8).collect();
        let metadata = fwtool::Metadata {
            supported_devices: Some(vec!["glinet,gl-mt6000".to_owned()]),
            ..fwtool::Metadata::default()
        };
        fwtool::append_metadata(&mut image, &metadata).unwrap();
        image
    }

    fn key(seed: u8) -> SecretKey {
        SecretKey::generate([seed; 32], Fingerprint([seed; 8]), [0; 16], None).unwrap()
    }

    #[test]
    fn a_trailer_carries_the_chain_that_ucert_verifies_over_the_image_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = key(1);
        let build = key(2);
        let certificate = attendant_proto::ucert::issue_auth(
            &root,
            &build.public_key(),
            1_700_000_000,
            4_000_000_000,
        )
        .unwrap();
        let certificate_path = dir.path().join("key-build.ucert");
        std::fs::write(&certificate_path, Chain::new(vec![certificate]).to_bytes()).unwrap();
        let certificates = load_certificate(&certificate_path, &build).unwrap();
        let image = dir.path().join("sysupgrade.bin");
        let built = built_image();
        std::fs::write(&image, &built).unwrap();

        let (sha256, sig_name) = sign_image_with_trailer(&build, &certificates, &image).unwrap();
        assert_eq!(
            sha256,
            hex::encode(Sha256::digest(&built)),
            "the hash before signing"
        );
        let signed = std::fs::read(&image).unwrap();
        assert_eq!(signed.get(..built.len()), Some(built.as_slice()));
        let blocks = fwtool::read_blocks(&signed).unwrap();
        let kinds: Vec<BlockKind> = blocks.iter().map(fwtool::Block::kind).collect();
        assert_eq!(kinds, [BlockKind::Metadata, BlockKind::Signature]);
        let chain = Chain::parse(blocks[1].data()).unwrap();
        let mut trusted = attendant_proto::usign::Keyring::new();
        trusted.add(root.public_key());
        let verified = chain
            .verify(
                &trusted,
                &attendant_proto::ucert::Revocations::new(),
                1_800_000_000,
            )
            .unwrap();
        verified.verify_message(&built).unwrap();
        // The `.sig` is the chain's final signature, over the same bytes.
        let detached = std::fs::read(dir.path().join(&sig_name)).unwrap();
        assert_eq!(chain.elements()[1].signature_file(), detached.as_slice());

        // Signing again replaces the block instead of stacking a second one.
        let (again, _) = sign_image_with_trailer(&build, &certificates, &image).unwrap();
        assert_eq!(again, sha256);
        assert_eq!(std::fs::read(&image).unwrap(), signed);
    }

    #[test]
    fn a_certificate_file_must_end_in_the_signing_keys_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let root = key(1);
        let build = key(2);
        let path = dir.path().join("key-build.ucert");
        let other = attendant_proto::ucert::issue_auth(&root, &key(3).public_key(), 0, 1).unwrap();
        std::fs::write(&path, Chain::new(vec![other]).to_bytes()).unwrap();
        let error = load_certificate(&path, &build).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "`{}` does not end in a certificate of the signing key 0202020202020202; routers \
                 would refuse every image",
                path.display()
            )
        );
        assert!(error.hint().unwrap().contains("keys delegate"));
        let signature = Element::final_signature(&build.sign(b"message"));
        std::fs::write(&path, Chain::new(vec![signature]).to_bytes()).unwrap();
        let error = load_certificate(&path, &build).unwrap_err();
        assert!(error.to_string().contains("holds a signature"), "{error}");
        std::fs::write(&path, b"not ucert").unwrap();
        let error = load_certificate(&path, &build).unwrap_err();
        assert!(matches!(error, SigningError::Certificate { .. }), "{error}");
    }

    #[test]
    fn fingerprint_keeps_leading_zeros() {
        let fingerprint = Fingerprint([0, 0x0a, 1, 2, 3, 4, 5, 6]);
        assert_eq!(fingerprint.to_string(), "000a010203040506");
    }

    #[test]
    fn generated_key_signs_images_that_verify() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("key-build");
        let public = generate_key_pair(&secret, None).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&secret).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let key = load_secret_key(&secret).unwrap();
        assert_eq!(key.fingerprint(), public.fingerprint());
        let image = dir.path().join("openwrt.img");
        std::fs::write(&image, b"image bytes").unwrap();
        let (sha256, sig_name) = sign_image(&key, &image).unwrap();
        assert_eq!(sig_name, "openwrt.img.sig");
        assert_eq!(sha256, sha256_file(&image).unwrap());
        let signature = attendant_proto::usign::Signature::parse(
            &std::fs::read(dir.path().join(&sig_name)).unwrap(),
        )
        .unwrap();
        let reread = PublicKey::parse(&std::fs::read(public_path_of(&secret)).unwrap()).unwrap();
        reread.verify(b"image bytes", &signature).unwrap();
        assert!(reread.verify(b"other bytes", &signature).is_err());
        let again = generate_key_pair(&secret, None).unwrap_err();
        assert!(
            again.to_string().starts_with("cannot write the secret key"),
            "{again}"
        );
    }
}
