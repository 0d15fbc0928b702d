//! Image signing: a usign key pair of the server, detached `<image>.sig` signatures.
//!
//! `keygen` writes the pair (secret key file mode 0600); `serve` loads the secret key named by
//! `signing_key`, publishes the public key at `/keys/<fingerprint>`, and the worker signs every
//! image it built. Signatures are the same bytes as `usign -S` and `signify -S`, so a router
//! verifies them with `usign -V` and a desktop with `signify-openbsd -V`. Unlike ASU (which
//! attaches a ucert trailer with fwtool) the image itself is left untouched, so `sha256`
//! and `sha256_unsigned` are equal and both are recomputed from the file we serve.

use std::path::{Path, PathBuf};

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
            Self::Io { .. } | Self::Key { .. } | Self::TooLarge { .. } | Self::Random => None,
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
    let signature = key.sign(&data);
    let mut sig_path = image.as_os_str().to_owned();
    sig_path.push(".sig");
    let sig_path = PathBuf::from(sig_path);
    write_atomic(
        &sig_path,
        signature.to_file().as_bytes(),
        Existing::Replace,
        false,
    )
    .map_err(|source| SigningError::Io {
        action: "write the signature",
        path: sig_path.clone(),
        source,
    })?;
    let name = sig_path
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or_default()
        .to_owned();
    Ok((hex::encode(Sha256::digest(&data)), name))
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
