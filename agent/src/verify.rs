//! Verifying an image before anything is flashed.
//!
//! One pass over the file feeds three checks at once, so a 64 MiB image is read once and never
//! held in memory: the SHA-256 the build response promised, the server's detached usign signature
//! (`<image>.sig`, checked against the trusted keys in `/etc/opkg/keys` or a configured
//! directory), and the CRCs of the fwtool trailer blocks (`attendant_proto::fwtool`). Then the
//! trailer's metadata goes through sysupgrade's own compatibility decision for this device
//! (board in `supported_devices`, `compat_version` major and minor, the keep-settings case), and
//! the build's manifest is compared with what was asked for (`version_code`, every requested
//! package at the expected version), as owut (<https://github.com/efahl/owut>) and sysupgrade's
//! `fwtool_check_image` (<https://github.com/openwrt/openwrt/blob/main/package/base-files/files/lib/upgrade/fwtool.sh>) do. Requests name
//! libraries without their ABI suffix (`libgcc`) while an apk build's manifest keeps it
//! (`libgcc1`); the names are matched with the server's own rule
//! ([`manifest_entry`]), so both sides agree on what
//! "built" means.
//!
//! An unsigned image is accepted only when the configuration does not require signatures, and the
//! acceptance is logged. `--force-flash` turns a compatibility refusal into a warning, as
//! `sysupgrade -F` does; it never skips the hash, signature or manifest checks.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use attendant_proto::api::manifest_entry;
use attendant_proto::fwtool::{
    self, BlockKind, CheckOptions, Compatibility, CrcCheck, DeviceCompat, FwtoolError, Metadata,
};
use attendant_proto::usign::{KEYS_DIR, Keyring, Signature, StreamVerifier, UsignError};
use attendant_proto::wire;
use ring::digest;
use serde::Serialize;

use crate::download::{CHUNK_LEN, hex};
use crate::hint::{Hint, HintCode};

/// What to check an image against.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Expectations<'a> {
    /// SHA-256 from the build response (`images[].sha256`), lower-case hex.
    pub sha256: Option<&'a str>,
    /// The detached signature file's bytes, when the server published one.
    pub signature: Option<&'a [u8]>,
    /// The trusted keys.
    pub keyring: &'a Keyring,
    /// Refuse an image without a signature.
    pub require_signature: bool,
    /// The running device, for the fwtool compatibility decision.
    pub device: &'a DeviceCompat,
    /// The configuration is kept (no `sysupgrade -n`).
    pub keep_settings: bool,
    /// `--force-flash`: a compatibility refusal only warns.
    pub force_flash: bool,
}

/// What the checks found, for output and the state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// The image checked.
    pub path: PathBuf,
    /// Its length.
    pub len: u64,
    /// Its SHA-256.
    pub sha256: String,
    /// The key that signed it; `None` when unsigned.
    pub signed_by: Option<String>,
    /// The fwtool blocks found (`metadata`, `signature`).
    pub fwtool_blocks: Vec<String>,
    /// sysupgrade's compatibility verdict, as text.
    pub compatibility: String,
    /// The release the metadata names, if any.
    pub image_version: Option<String>,
}

/// Why an image was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The image could not be read.
    #[error("cannot read the image `{path}`: {source}")]
    Io {
        /// The image.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The image's SHA-256 differs from the build response.
    #[error(
        "the image `{path}` has SHA-256 `{found}`, but the server promised `{expected}`; the download is corrupt or was tampered with"
    )]
    Sha256Mismatch {
        /// The image.
        path: PathBuf,
        /// Promised.
        expected: String,
        /// Computed.
        found: String,
    },
    /// No signature, and the configuration requires one.
    #[error("the image `{path}` is not signed, and the configuration requires a signature")]
    Unsigned {
        /// The image.
        path: PathBuf,
    },
    /// The signature file is malformed, made by an unknown key, or does not match.
    #[error("the signature of `{path}` does not verify: {source}")]
    Signature {
        /// The image.
        path: PathBuf,
        /// What usign found.
        source: UsignError,
    },
    /// The fwtool trailer is damaged (CRC, lengths, metadata JSON).
    #[error("the fwtool trailer of `{path}` is damaged: {source}")]
    Trailer {
        /// The image.
        path: PathBuf,
        /// What fwtool found.
        source: FwtoolError,
    },
    /// sysupgrade would refuse the image for this device.
    #[error("the image `{path}` cannot be installed on this device: {verdict}")]
    Incompatible {
        /// The image.
        path: PathBuf,
        /// sysupgrade's verdict.
        verdict: Compatibility,
    },
    /// The build's manifest is not what was asked for.
    #[error(
        "the built image is not what was requested:{}",
        problem_lines(problems)
    )]
    Manifest {
        /// One line per problem.
        problems: Vec<String>,
    },
}

impl VerifyError {
    /// The way out, if there is one; usign's and fwtool's findings get theirs here, as the
    /// parsers in `attendant-proto` speak no command line.
    pub fn hint(&self) -> Option<Hint> {
        match self {
            Self::Sha256Mismatch { .. } => Some(Hint::coded(
                HintCode::DownloadAgain,
                "delete it and download again with `attendant download`",
            )),
            Self::Unsigned { .. } => Some(Hint::coded(
                HintCode::RequireSignature,
                format!(
                    "ask the server operator to sign images, or set `option require_signature '0'` in the `{}` section of {}",
                    wire::UCI_SECTION_ATTENDANT,
                    wire::UCI_CONFIG_PATH
                ),
            )),
            Self::Manifest { .. } => Some(Hint::coded(
                HintCode::TryLater,
                "this is often due to the upgrade server lagging behind the build server; wait a while and try again",
            )),
            Self::Signature {
                source: UsignError::UnknownKey { fingerprint },
                ..
            } => Some(Hint::uncoded(format!(
                "install its public key as `{KEYS_DIR}/{fingerprint}`"
            ))),
            Self::Incompatible { verdict, .. } => compatibility_hint(verdict),
            _ => None,
        }
    }
}

/// sysupgrade's own advice on a refused image.
fn compatibility_hint(verdict: &Compatibility) -> Option<Hint> {
    match verdict {
        Compatibility::NoMetadata { required: true } => Some(Hint::uncoded(
            "use sysupgrade -F to override this check when downgrading or flashing to vendor firmware",
        )),
        Compatibility::MinorChangeNeedsNoKeep { .. } | Compatibility::OemNeedsNoKeep { .. } => {
            Some(Hint::uncoded(
                "Please upgrade without keeping config (sysupgrade -n)",
            ))
        }
        _ => None,
    }
}

/// Runs the hash, signature, trailer and compatibility checks over `path`.
pub fn verify_image(path: &Path, expect: &Expectations<'_>) -> Result<Verification, VerifyError> {
    let io_error = |source| VerifyError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(io_error)?;
    let len = file.metadata().map_err(io_error)?.len();
    let tail = read_tail(&mut file, len).map_err(io_error)?;
    let trailer = |source| VerifyError::Trailer {
        path: path.to_owned(),
        source,
    };
    let layouts = fwtool::parse_tail(&tail, len).map_err(trailer)?;
    let mut crc = CrcCheck::new(layouts, len);
    let signature = parse_signature(path, expect)?;
    let mut verifier = match &signature {
        Some(signature) => stream_verifier(path, signature, expect)?,
        None => None,
    };

    file.seek(SeekFrom::Start(0)).map_err(io_error)?;
    let (sha256, trailer_error) =
        read_through(&mut file, &mut crc, verifier.as_mut()).map_err(io_error)?;
    if let Some(expected) = expect.sha256
        && !expected.eq_ignore_ascii_case(&sha256)
    {
        return Err(VerifyError::Sha256Mismatch {
            path: path.to_owned(),
            expected: expected.to_owned(),
            found: sha256,
        });
    }
    // A damaged trailer is reported after the hash check: a corrupt download is the likelier
    // cause, and its message says how to fix it.
    if let Some(error) = trailer_error {
        return Err(trailer(error));
    }
    let signed_by = match verifier {
        Some(verifier) => {
            let fingerprint = verifier.fingerprint();
            verifier
                .finalize()
                .map_err(|source| VerifyError::Signature {
                    path: path.to_owned(),
                    source,
                })?;
            Some(fingerprint.to_string())
        }
        None if signature.is_none() => {
            log::warn!(
                "the image `{}` is not signed; accepting it because signatures are not required",
                path.display()
            );
            None
        }
        None => None,
    };

    let blocks = crc.finish().map_err(trailer)?;
    let metadata = match blocks
        .iter()
        .rev()
        .find(|b| b.kind() == BlockKind::Metadata)
    {
        Some(block) => Some(Metadata::parse(block.data()).map_err(trailer)?),
        None => None,
    };
    let verdict = check_compatibility(path, metadata.as_ref(), expect)?;
    Ok(Verification {
        path: path.to_owned(),
        len,
        sha256,
        signed_by,
        fwtool_blocks: blocks.iter().map(|b| b.kind().to_string()).collect(),
        compatibility: verdict.to_string(),
        image_version: metadata
            .as_ref()
            .and_then(|m| m.version.as_ref())
            .and_then(|v| v.version.clone()),
    })
}

/// The image's signature, parsed; `None` when there is none and none is required.
fn parse_signature(
    path: &Path,
    expect: &Expectations<'_>,
) -> Result<Option<Signature>, VerifyError> {
    match expect.signature {
        Some(bytes) => Signature::parse(bytes)
            .map(Some)
            .map_err(|source| VerifyError::Signature {
                path: path.to_owned(),
                source,
            }),
        None if expect.require_signature => Err(VerifyError::Unsigned {
            path: path.to_owned(),
        }),
        None => Ok(None),
    }
}

/// A verifier for `signature` under the trusted keys; `None` when the key is unknown and
/// signatures are not required.
fn stream_verifier(
    path: &Path,
    signature: &Signature,
    expect: &Expectations<'_>,
) -> Result<Option<StreamVerifier>, VerifyError> {
    match expect.keyring.stream_verifier(signature) {
        Ok(verifier) => Ok(Some(verifier)),
        // A key this router was never told to trust proves nothing either way; when
        // signatures are not required that is the unsigned case, not a forgery. A signature
        // that fails under a trusted key is refused whatever the setting.
        Err(UsignError::UnknownKey { fingerprint }) if !expect.require_signature => {
            log::warn!(
                "the image `{}` is signed by key {fingerprint}, which is not among the trusted keys; accepting it as unsigned because signatures are not required",
                path.display()
            );
            Ok(None)
        }
        Err(source) => Err(VerifyError::Signature {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Reads `file` once, feeding the hash, the trailer's CRC check and the signature verifier:
/// the image's SHA-256 and the first trailer error, if any.
fn read_through(
    file: &mut File,
    crc: &mut CrcCheck,
    mut verifier: Option<&mut StreamVerifier>,
) -> io::Result<(String, Option<FwtoolError>)> {
    let mut hash = digest::Context::new(&digest::SHA256);
    let mut buffer = vec![0; CHUNK_LEN];
    let mut trailer_error = None;
    loop {
        let read = match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        let chunk = buffer.get(..read).unwrap_or_default();
        hash.update(chunk);
        if trailer_error.is_none()
            && let Err(error) = crc.update(chunk)
        {
            trailer_error = Some(error);
        }
        if let Some(verifier) = verifier.as_deref_mut() {
            verifier.update(chunk);
        }
    }
    Ok((hex(hash.finish().as_ref()), trailer_error))
}

/// fwtool's compatibility verdict for the image's metadata; an incompatible image is an error
/// unless `--force-flash` was given.
fn check_compatibility(
    path: &Path,
    metadata: Option<&Metadata>,
    expect: &Expectations<'_>,
) -> Result<Compatibility, VerifyError> {
    let options = CheckOptions {
        keep_settings: expect.keep_settings,
        ignore_minor_compat: false,
        require_metadata: false,
    };
    let verdict = fwtool::check_image(metadata, expect.device, options);
    if !verdict.is_compatible() {
        if expect.force_flash {
            log::warn!("--force-flash: installing although {verdict}");
        } else {
            return Err(VerifyError::Incompatible {
                path: path.to_owned(),
                verdict,
            });
        }
    }
    Ok(verdict)
}

/// Compares the build's `manifest` and `version_code` with the request.
///
/// `requested` maps each requested package to the version expected (`None`: any version); a
/// bare library name matches its ABI-versioned manifest entry (`libgcc` → `libgcc1`).
/// `version_code` is the revision requested (`None` or empty: not checked).
pub fn check_manifest(
    requested: &BTreeMap<String, Option<String>>,
    version_code: Option<&str>,
    built_version_code: &str,
    manifest: &BTreeMap<String, String>,
) -> Result<(), VerifyError> {
    let mut problems = Vec::new();
    if let Some(wanted) = version_code.filter(|code| !code.is_empty())
        && wanted != built_version_code
    {
        problems.push(format!(
            "version_code is `{built_version_code}`, requested `{wanted}`"
        ));
    }
    for (name, expected) in requested {
        let found = manifest_entry(manifest, name).map(|(_, version)| version);
        match (found, expected) {
            (None, _) => problems.push(format!("package `{name}` is missing from the image")),
            (Some(found), Some(expected)) if found != expected => problems.push(format!(
                "package `{name}` is at version `{found}`, expected `{expected}`"
            )),
            _ => {}
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(VerifyError::Manifest { problems })
    }
}

/// Reads the last [`fwtool::TAIL_LEN`] bytes (or the whole file when shorter).
fn read_tail(file: &mut File, len: u64) -> io::Result<Vec<u8>> {
    let tail_len = len.min(u64::try_from(fwtool::TAIL_LEN).unwrap_or(u64::MAX));
    file.seek(SeekFrom::Start(len.saturating_sub(tail_len)))?;
    let mut tail = Vec::new();
    file.take(tail_len).read_to_end(&mut tail)?;
    Ok(tail)
}

fn problem_lines(problems: &[String]) -> String {
    problems.iter().map(|p| format!("\n  - {p}")).collect()
}

#[cfg(test)]
mod tests {
    use attendant_proto::fwtool::CompatVersion;
    use attendant_proto::usign::{Fingerprint, SecretKey};

    use super::*;

    struct Fixture {
        dir: tempfile::TempDir,
        key: SecretKey,
        keyring: Keyring,
        device: DeviceCompat,
    }

    fn fixture() -> Fixture {
        let key = SecretKey::generate([7; 32], Fingerprint([1; 8]), [0; 16], None).unwrap();
        let mut keyring = Keyring::new();
        keyring.add(key.public_key());
        Fixture {
            dir: tempfile::tempdir().unwrap(),
            key,
            keyring,
            device: DeviceCompat {
                board_name: "glinet,gl-mt6000".into(),
                oem_name: None,
                compat_version: CompatVersion::DEFAULT,
            },
        }
    }

    fn image(devices: &[&str], compat: &str) -> Vec<u8> {
        let mut image: Vec<u8> = (0..200_000_u32).map(|i| (i % 251) as u8).collect();
        let metadata = Metadata {
            supported_devices: Some(devices.iter().map(|d| (*d).to_owned()).collect()),
            compat_version: Some(compat.into()),
            new_supported_devices: (compat != "1.0")
                .then(|| devices.iter().map(|d| (*d).to_owned()).collect()),
            ..Metadata::default()
        };
        fwtool::append_metadata(&mut image, &metadata).unwrap();
        image
    }

    fn expect<'a>(
        f: &'a Fixture,
        sha256: Option<&'a str>,
        sig: Option<&'a [u8]>,
    ) -> Expectations<'a> {
        Expectations {
            sha256,
            signature: sig,
            keyring: &f.keyring,
            require_signature: true,
            device: &f.device,
            keep_settings: true,
            force_flash: false,
        }
    }

    fn sha(bytes: &[u8]) -> String {
        hex(digest::digest(&digest::SHA256, bytes).as_ref())
    }

    #[test]
    fn accepts_a_signed_matching_image() {
        let f = fixture();
        let bytes = image(&["glinet,gl-mt6000"], "1.0");
        let path = f.dir.path().join("img");
        std::fs::write(&path, &bytes).unwrap();
        let sig = f.key.sign(&bytes).to_file();
        let sum = sha(&bytes);
        let result = verify_image(&path, &expect(&f, Some(&sum), Some(sig.as_bytes()))).unwrap();
        assert_eq!(result.sha256, sum);
        assert_eq!(result.signed_by, Some(f.key.fingerprint().to_string()));
        assert_eq!(result.fwtool_blocks, ["metadata"]);
    }

    #[test]
    fn refuses_a_wrong_sha256() {
        let f = fixture();
        let bytes = image(&["glinet,gl-mt6000"], "1.0");
        let path = f.dir.path().join("img");
        std::fs::write(&path, &bytes).unwrap();
        let sig = f.key.sign(&bytes).to_file();
        let wrong = "0".repeat(64);
        let error =
            verify_image(&path, &expect(&f, Some(&wrong), Some(sig.as_bytes()))).unwrap_err();
        assert!(
            matches!(error, VerifyError::Sha256Mismatch { .. }),
            "{error}"
        );
    }

    #[test]
    fn refuses_a_forged_signature_and_a_missing_one() {
        let f = fixture();
        let bytes = image(&["glinet,gl-mt6000"], "1.0");
        let path = f.dir.path().join("img");
        std::fs::write(&path, &bytes).unwrap();
        let mut tampered = bytes.clone();
        tampered[10] ^= 1;
        let sig = f.key.sign(&tampered).to_file();
        let error = verify_image(&path, &expect(&f, None, Some(sig.as_bytes()))).unwrap_err();
        assert!(matches!(error, VerifyError::Signature { .. }), "{error}");
        let other = SecretKey::generate([9; 32], Fingerprint([2; 8]), [0; 16], None).unwrap();
        let sig = other.sign(&bytes).to_file();
        let error = verify_image(&path, &expect(&f, None, Some(sig.as_bytes()))).unwrap_err();
        assert!(error.to_string().contains("does not verify"), "{error}");
        let error = verify_image(&path, &expect(&f, None, None)).unwrap_err();
        assert!(matches!(error, VerifyError::Unsigned { .. }), "{error}");
        let mut optional = expect(&f, None, None);
        optional.require_signature = false;
        assert_eq!(verify_image(&path, &optional).unwrap().signed_by, None);
    }

    #[test]
    fn an_unknown_key_counts_as_unsigned_only_when_signatures_are_optional() {
        let f = fixture();
        let bytes = image(&["glinet,gl-mt6000"], "1.0");
        let path = f.dir.path().join("img");
        std::fs::write(&path, &bytes).unwrap();
        let other = SecretKey::generate([9; 32], Fingerprint([2; 8]), [0; 16], None).unwrap();
        let foreign = other.sign(&bytes).to_file();
        let mut optional = expect(&f, None, Some(foreign.as_bytes()));
        optional.require_signature = false;
        assert_eq!(verify_image(&path, &optional).unwrap().signed_by, None);
        let error = verify_image(&path, &expect(&f, None, Some(foreign.as_bytes()))).unwrap_err();
        assert!(matches!(error, VerifyError::Signature { .. }), "{error}");
        // A trusted key's signature over other bytes is a forgery, required or not.
        let mut tampered = bytes.clone();
        tampered[10] ^= 1;
        let forged = f.key.sign(&tampered).to_file();
        let mut optional = expect(&f, None, Some(forged.as_bytes()));
        optional.require_signature = false;
        let error = verify_image(&path, &optional).unwrap_err();
        assert!(matches!(error, VerifyError::Signature { .. }), "{error}");
    }

    #[test]
    fn refuses_another_board_unless_forced() {
        let f = fixture();
        let bytes = image(&["tplink,archer-c7-v5"], "1.0");
        let path = f.dir.path().join("img");
        std::fs::write(&path, &bytes).unwrap();
        let sig = f.key.sign(&bytes).to_file();
        let error = verify_image(&path, &expect(&f, None, Some(sig.as_bytes()))).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("device `glinet,gl-mt6000` not supported by this image"),
            "{error}"
        );
        let mut forced = expect(&f, None, Some(sig.as_bytes()));
        forced.force_flash = true;
        assert!(verify_image(&path, &forced).is_ok());
    }

    #[test]
    fn refuses_a_compat_major_change() {
        let f = fixture();
        let bytes = image(&["glinet,gl-mt6000"], "2.0");
        let path = f.dir.path().join("img");
        std::fs::write(&path, &bytes).unwrap();
        let sig = f.key.sign(&bytes).to_file();
        let error = verify_image(&path, &expect(&f, None, Some(sig.as_bytes()))).unwrap_err();
        assert!(
            matches!(
                &error,
                VerifyError::Incompatible {
                    verdict: Compatibility::MajorChange { .. },
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn refuses_a_corrupted_trailer() {
        let f = fixture();
        let mut bytes = image(&["glinet,gl-mt6000"], "1.0");
        bytes[100] ^= 0xff;
        let path = f.dir.path().join("img");
        std::fs::write(&path, &bytes).unwrap();
        let sig = f.key.sign(&bytes).to_file();
        let error = verify_image(&path, &expect(&f, None, Some(sig.as_bytes()))).unwrap_err();
        assert!(matches!(error, VerifyError::Trailer { .. }), "{error}");
    }

    #[test]
    fn manifest_must_hold_every_requested_package() {
        let requested: BTreeMap<String, Option<String>> = [
            ("luci".to_owned(), Some("25.1".to_owned())),
            ("tcpdump".to_owned(), None),
            ("htop".to_owned(), Some("3.4".to_owned())),
        ]
        .into();
        let manifest: BTreeMap<String, String> = [
            ("luci".to_owned(), "25.1".to_owned()),
            ("htop".to_owned(), "3.3".to_owned()),
        ]
        .into();
        let error = check_manifest(&requested, Some("r1-a"), "r2-b", &manifest).unwrap_err();
        assert_eq!(
            crate::Error::from(error).cli_text(),
            "the built image is not what was requested:\n  - version_code is `r2-b`, requested \
             `r1-a`\n  - package `htop` is at version `3.3`, expected `3.4`\n  - package \
             `tcpdump` is missing from the image\n\nhint: this is often due to the upgrade \
             server lagging behind the build server; wait a while and try again"
        );
        let complete: BTreeMap<String, String> = [
            ("luci".to_owned(), "25.1".to_owned()),
            ("htop".to_owned(), "3.4".to_owned()),
            ("tcpdump".to_owned(), "4.99".to_owned()),
        ]
        .into();
        assert!(check_manifest(&requested, None, "r2-b", &complete).is_ok());
    }

    #[test]
    fn a_requested_library_is_found_under_its_abi_versioned_name() {
        let requested: BTreeMap<String, Option<String>> = [
            ("libgcc".to_owned(), Some("14.3.0-r4".to_owned())),
            ("libubox".to_owned(), Some("2025.07.19~ab-r1".to_owned())),
        ]
        .into();
        let manifest: BTreeMap<String, String> = [
            ("libgcc1".to_owned(), "14.3.0-r4".to_owned()),
            ("libubox20250719".to_owned(), "2025.07.19~ab-r1".to_owned()),
        ]
        .into();
        assert!(check_manifest(&requested, None, "r2-b", &manifest).is_ok());
        let older: BTreeMap<String, String> =
            [("libgcc1".to_owned(), "13.3.0-r4".to_owned())].into();
        let error = check_manifest(&requested, None, "r2-b", &older).unwrap_err();
        assert_eq!(
            crate::Error::from(error).cli_text(),
            "the built image is not what was requested:\n  - package `libgcc` is at version \
             `13.3.0-r4`, expected `14.3.0-r4`\n  - package `libubox` is missing from the \
             image\n\nhint: this is often due to the upgrade server lagging behind the build \
             server; wait a while and try again"
        );
    }

    #[test]
    fn usign_and_fwtool_findings_get_the_command_lines_advice() {
        let path = PathBuf::from("/tmp/firmware.bin");
        let unknown = VerifyError::Signature {
            path: path.clone(),
            source: UsignError::UnknownKey {
                fingerprint: Fingerprint([8, 1, 2, 3, 4, 5, 6, 7]),
            },
        };
        assert_eq!(unknown.hint().unwrap().code, None);
        assert_eq!(
            crate::Error::from(unknown).cli_text(),
            "the signature of `/tmp/firmware.bin` does not verify: signature was made by key \
             `0801020304050607`, which is not trusted\n\nhint: install its public key as \
             `/etc/opkg/keys/0801020304050607`"
        );

        let f = fixture();
        let bytes = image(&["glinet,gl-mt6000"], "1.1");
        let image_path = f.dir.path().join("img");
        std::fs::write(&image_path, &bytes).unwrap();
        let sig = f.key.sign(&bytes).to_file();
        let minor = verify_image(&image_path, &expect(&f, None, Some(sig.as_bytes()))).unwrap_err();
        let text = crate::Error::from(minor).cli_text();
        assert!(
            text.ends_with(
                "the config is incompatible to the new image (`1.0`->`1.1`)\n\nhint: Please \
                 upgrade without keeping config (sysupgrade -n)"
            ),
            "{text}"
        );

        let required = VerifyError::Incompatible {
            path,
            verdict: Compatibility::NoMetadata { required: true },
        };
        assert_eq!(
            crate::Error::from(required).cli_text(),
            "the image `/tmp/firmware.bin` cannot be installed on this device: image metadata not \
             present, and this target requires it\n\nhint: use sysupgrade -F to override this \
             check when downgrading or flashing to vendor firmware"
        );
    }
}
