//! Verifying an image before anything is flashed.
//!
//! One pass over the file feeds three checks at once, so a 64 MiB image is read once and never
//! held in memory: the SHA-256 the build response promised, the image's usign signatures
//! (checked against the trusted keys in `/etc/opkg/keys` or a configured directory), and the
//! CRCs of the fwtool trailer blocks (`attendant_proto::fwtool`). Then the
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
//! # Two forms of signature
//!
//! - A detached `<image>.sig` the server publishes beside the image (our server's form).
//! - A ucert chain appended as an fwtool signature block, the last block of the image: what
//!   OpenWrt's build system and ASU (<https://github.com/openwrt/asu>, `asu/build.py`) do with
//!   `usign -S`, `ucert -A` and `fwtool -S`. The chain's final signature covers the image up to
//!   that block (what `fwtool -T -s /dev/null` writes), and the chain is checked as `ucert -V`
//!   does ([`attendant_proto::ucert`]): the first element by a trusted key, certificates within
//!   their validity window at the router's clock, no key revoked (a dangling link in the key
//!   directory, as `ucert -R` leaves it).
//!
//! An ASU that signs reports in `images[].sha256` and `sha256_unsigned` the hash *before* it
//! appended the block; downloads.openwrt.org reports the whole file in `sha256` and the part
//! before the block in `sha256_unsigned`. So with a signature block the image is accepted when
//! `sha256` matches the whole file or the part before the block, and `sha256_unsigned` (when
//! stated) must match the part before the block; both hashes come out of the same pass (the
//! SHA-256 state is copied at the block's offset). A detached `.sig` may cover either the whole
//! file (ours) or the part before the block (ASU's, which is the chain's final signature again);
//! when it is that same signature it is not checked twice.
//!
//! Any signature that fails under a trusted key is a forgery and refuses the image. An image
//! signed only by unknown keys, or not at all, is accepted only when the configuration does not
//! require signatures, and the acceptance is logged. `--force-flash` turns a compatibility refusal into a warning, as
//! `sysupgrade -F` does; it never skips the hash, signature or manifest checks.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use attendant_proto::api::manifest_entry;
use attendant_proto::fwtool::{
    self, BlockKind, CheckOptions, Compatibility, CrcCheck, DeviceCompat, FwtoolError, Metadata,
};
use attendant_proto::ucert::{Chain, Revocations, UcertError};
use attendant_proto::usign::{
    Fingerprint, KEYS_DIR, Keyring, Signature, StreamVerifier, UsignError,
};
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
    /// `images[].sha256_unsigned`: the image without its signature block (empty or `None`: not
    /// stated).
    pub sha256_unsigned: Option<&'a str>,
    /// The detached signature file's bytes, when the server published one.
    pub signature: Option<&'a [u8]>,
    /// The trusted keys.
    pub keyring: &'a Keyring,
    /// Keys revoked in the key directory; a ucert chain through one of them is refused.
    pub revoked: &'a Revocations,
    /// The router's clock (Unix seconds), for the validity windows of ucert certificates.
    pub now: i64,
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
    /// SHA-256 of the image without its signature block, when it ends in one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256_unsigned: Option<String>,
    /// The key that signed it (with a ucert chain, the key at its end); `None` when unsigned.
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
    /// The image ends in a signature block, and the part before it does not have the
    /// `sha256_unsigned` the server stated.
    #[error(
        "the image `{path}` without its signature block has SHA-256 `{found}`, but the server promised `{expected}`; the download is corrupt or was tampered with"
    )]
    Sha256UnsignedMismatch {
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
    /// The ucert chain in the image's signature block is malformed, made by an unknown or
    /// revoked key, outside its validity window, or does not match the image.
    #[error("the ucert signature in the fwtool trailer of `{path}` does not verify: {source}")]
    Ucert {
        /// The image.
        path: PathBuf,
        /// What ucert's rules found.
        source: UcertError,
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
            Self::Sha256Mismatch { .. } | Self::Sha256UnsignedMismatch { .. } => Some(Hint::coded(
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
            Self::Ucert {
                source: UcertError::UnknownKey { fingerprint, .. },
                ..
            } => Some(Hint::uncoded(format!(
                "install its public key as `{KEYS_DIR}/{fingerprint}` if you trust it"
            ))),
            Self::Ucert {
                source: UcertError::NotYetValid { .. } | UcertError::Expired { .. },
                ..
            } => Some(Hint::uncoded(
                "check the router's clock (`date`); certificates are checked against it",
            )),
            Self::Incompatible { verdict, .. } => compatibility_hint(verdict),
            _ => None,
        }
    }

    /// Whether the file can be of no further use: bytes that are not what the server promised,
    /// or a signature block forged or by a key this router does not trust, would fail every
    /// later verification too, and a resumed download would keep them. A certificate outside
    /// its window is kept: fixing the clock makes it verify.
    pub fn discards_image(&self) -> bool {
        match self {
            Self::Sha256Mismatch { .. } | Self::Sha256UnsignedMismatch { .. } => true,
            Self::Ucert { source, .. } => !matches!(
                source,
                UcertError::NotYetValid { .. } | UcertError::Expired { .. }
            ),
            _ => false,
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
    let unsigned_len = fwtool::signed_len(&layouts);
    let chain = match (unsigned_len, layouts.last()) {
        (Some(_), Some(block)) => {
            Some(
                Chain::parse(&block.data).map_err(|source| VerifyError::Ucert {
                    path: path.to_owned(),
                    source,
                })?,
            )
        }
        _ => None,
    };
    let mut crc = CrcCheck::new(layouts, len);
    let mut verifiers = Verifiers::default();
    let mut trailer_signature = None;
    if let Some(chain) = &chain
        && let Some((verifier, signature)) = trailer_verifier(path, chain, expect)?
    {
        verifiers.trailer = Some(verifier);
        trailer_signature = Some(signature);
    }
    let detached = parse_signature(path, expect)?;
    match &detached {
        // ASU's `.sig` is the chain's final signature: checked once, as part of the chain.
        Some(signature) if trailer_signature.as_ref() == Some(signature) => {}
        Some(signature) => {
            verifiers.detached_whole = stream_verifier(path, signature, expect)?;
            if unsigned_len.is_some() && verifiers.detached_whole.is_some() {
                verifiers.detached_unsigned = stream_verifier(path, signature, expect)?;
            }
        }
        None => {}
    }

    file.seek(SeekFrom::Start(0)).map_err(io_error)?;
    let pass = read_through(&mut file, unsigned_len, &mut crc, &mut verifiers).map_err(io_error)?;
    check_sha256(path, expect, &pass)?;
    // A damaged trailer is reported after the hash check: a corrupt download is the likelier
    // cause, and its message says how to fix it.
    if let Some(error) = pass.trailer_error {
        return Err(trailer(error));
    }
    let signed_by = check_signatures(path, chain.as_ref(), verifiers)?;
    if signed_by.is_none() && detached.is_none() && chain.is_none() {
        if expect.require_signature {
            return Err(VerifyError::Unsigned {
                path: path.to_owned(),
            });
        }
        log::warn!(
            "the image `{}` is not signed; accepting it because signatures are not required",
            path.display()
        );
    } else if signed_by.is_none() && expect.require_signature {
        // Unreachable in practice (an unknown key under `require_signature` already failed),
        // kept so that no path accepts an unverified image when signatures are required.
        return Err(VerifyError::Unsigned {
            path: path.to_owned(),
        });
    }

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
        sha256: pass.sha256,
        sha256_unsigned: pass.sha256_unsigned,
        signed_by: signed_by.map(|fingerprint| fingerprint.to_string()),
        fwtool_blocks: blocks.iter().map(|b| b.kind().to_string()).collect(),
        compatibility: verdict.to_string(),
        image_version: metadata
            .as_ref()
            .and_then(|m| m.version.as_ref())
            .and_then(|v| v.version.clone()),
    })
}

/// The streaming signature checks of one pass over the image.
#[derive(Default)]
struct Verifiers {
    /// The ucert chain's final signature, over the image before its signature block.
    trailer: Option<StreamVerifier>,
    /// The detached `.sig` over the whole file.
    detached_whole: Option<StreamVerifier>,
    /// The same `.sig` over the image before its signature block.
    detached_unsigned: Option<StreamVerifier>,
}

/// What one pass over the image found.
struct Pass {
    sha256: String,
    sha256_unsigned: Option<String>,
    trailer_error: Option<FwtoolError>,
}

/// The image's signature, parsed; `None` when the server published none.
fn parse_signature(
    path: &Path,
    expect: &Expectations<'_>,
) -> Result<Option<Signature>, VerifyError> {
    expect
        .signature
        .map(Signature::parse)
        .transpose()
        .map_err(|source| VerifyError::Signature {
            path: path.to_owned(),
            source,
        })
}

/// Checks the ucert chain of the signature block (all but its final signature, which needs
/// the image) and returns a verifier for the image and the final signature; `None` when the
/// chain starts at an unknown key and signatures are not required.
fn trailer_verifier(
    path: &Path,
    chain: &Chain,
    expect: &Expectations<'_>,
) -> Result<Option<(StreamVerifier, Signature)>, VerifyError> {
    let refuse = |source| VerifyError::Ucert {
        path: path.to_owned(),
        source,
    };
    let verified = match chain.verify(expect.keyring, expect.revoked, expect.now) {
        Ok(verified) => verified,
        // As with a detached signature: a key this router was never told to trust proves
        // nothing either way, which is the unsigned case when signatures are optional.
        Err(UcertError::UnknownKey { fingerprint, .. }) if !expect.require_signature => {
            log::warn!(
                "the signature block of `{}` starts at key {fingerprint}, which is not among the trusted keys; accepting it as unsigned because signatures are not required",
                path.display()
            );
            return Ok(None);
        }
        Err(source) => return Err(refuse(source)),
    };
    let verifier = verified.stream_verifier().map_err(refuse)?;
    let signature = chain
        .elements()
        .last()
        .map(|element| element.signature().clone())
        .ok_or_else(|| refuse(UcertError::MissingFinalSignature))?;
    Ok(Some((verifier, signature)))
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

/// Reads `file` once, feeding the hash, the trailer's CRC check and the signature verifiers;
/// the part before the signature block (its first `unsigned_len` bytes) also goes to the
/// verifiers of that part, and the hash state is copied where it ends.
fn read_through(
    file: &mut File,
    unsigned_len: Option<u64>,
    crc: &mut CrcCheck,
    verifiers: &mut Verifiers,
) -> io::Result<Pass> {
    let mut hash = digest::Context::new(&digest::SHA256);
    let mut buffer = vec![0; CHUNK_LEN];
    let mut trailer_error = None;
    let mut position = 0_u64;
    let mut sha256_unsigned = None;
    if unsigned_len == Some(0) {
        sha256_unsigned = Some(hex(hash.clone().finish().as_ref()));
    }
    loop {
        let read = match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        let chunk = buffer.get(..read).unwrap_or_default();
        let unsigned_left = unsigned_len.map_or(0, |end| end.saturating_sub(position));
        let (unsigned, rest) = chunk.split_at(
            usize::try_from(unsigned_left).map_or(chunk.len(), |left| left.min(chunk.len())),
        );
        if !unsigned.is_empty() {
            hash.update(unsigned);
            for verifier in [&mut verifiers.trailer, &mut verifiers.detached_unsigned]
                .into_iter()
                .flatten()
            {
                verifier.update(unsigned);
            }
            position = position.saturating_add(u64::try_from(unsigned.len()).unwrap_or(u64::MAX));
            if Some(position) == unsigned_len {
                sha256_unsigned = Some(hex(hash.clone().finish().as_ref()));
            }
        }
        hash.update(rest);
        position = position.saturating_add(u64::try_from(rest.len()).unwrap_or(u64::MAX));
        if trailer_error.is_none()
            && let Err(error) = crc.update(chunk)
        {
            trailer_error = Some(error);
        }
        if let Some(verifier) = verifiers.detached_whole.as_mut() {
            verifier.update(chunk);
        }
    }
    Ok(Pass {
        sha256: hex(hash.finish().as_ref()),
        sha256_unsigned,
        trailer_error,
    })
}

/// The build response's hashes against the pass: `sha256` names the whole file or, with a
/// signature block, the part before it; `sha256_unsigned` must name that part.
fn check_sha256(path: &Path, expect: &Expectations<'_>, pass: &Pass) -> Result<(), VerifyError> {
    let unsigned = pass.sha256_unsigned.as_deref();
    if let Some(expected) = expect.sha256
        && !expected.eq_ignore_ascii_case(&pass.sha256)
        && !unsigned.is_some_and(|found| expected.eq_ignore_ascii_case(found))
    {
        return Err(VerifyError::Sha256Mismatch {
            path: path.to_owned(),
            expected: expected.to_owned(),
            found: pass.sha256.clone(),
        });
    }
    if let (Some(found), Some(expected)) = (
        unsigned,
        expect.sha256_unsigned.filter(|stated| !stated.is_empty()),
    ) && !expected.eq_ignore_ascii_case(found)
    {
        return Err(VerifyError::Sha256UnsignedMismatch {
            path: path.to_owned(),
            expected: expected.to_owned(),
            found: found.to_owned(),
        });
    }
    Ok(())
}

/// Finishes the signature checks: the key that signed the image, `None` when no trusted key
/// did. Any check that fails under a trusted key refuses the image; a detached `.sig` counts
/// when it matches the whole file or the part before the signature block.
fn check_signatures(
    path: &Path,
    chain: Option<&Chain>,
    verifiers: Verifiers,
) -> Result<Option<Fingerprint>, VerifyError> {
    let mut signed_by = None;
    if let Some(verifier) = verifiers.trailer {
        let fingerprint = verifier.fingerprint();
        let element = chain.map_or(1, |chain| chain.elements().len());
        verifier.finalize().map_err(|source| VerifyError::Ucert {
            path: path.to_owned(),
            source: UcertError::BadSignature { element, source },
        })?;
        signed_by = Some(fingerprint);
    }
    if let Some(whole) = verifiers.detached_whole {
        let fingerprint = whole.fingerprint();
        let over_whole = whole.finalize();
        let over_unsigned = verifiers.detached_unsigned.map(StreamVerifier::finalize);
        match (over_whole, over_unsigned) {
            (Ok(()), _) | (_, Some(Ok(()))) => {
                signed_by.get_or_insert(fingerprint);
            }
            (Err(source), _) => {
                return Err(VerifyError::Signature {
                    path: path.to_owned(),
                    source,
                });
            }
        }
    }
    Ok(signed_by)
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
    use attendant_proto::ucert::{Element, issue_auth};
    use attendant_proto::usign::SecretKey;

    use super::*;

    /// The router's clock in these tests.
    const NOW: i64 = 1_796_557_500;

    struct Fixture {
        dir: tempfile::TempDir,
        key: SecretKey,
        keyring: Keyring,
        revoked: Revocations,
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
            revoked: Revocations::new(),
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
            sha256_unsigned: None,
            signature: sig,
            keyring: &f.keyring,
            revoked: &f.revoked,
            now: NOW,
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

    /// `image` signed as ASU signs it (`usign -S`, `ucert -A`, `fwtool -S`): the chain's
    /// `certificates`, then `signer`'s final signature over the image so far, appended as an
    /// fwtool signature block. Returns the signed file and the detached `.sig` ASU leaves.
    fn asu_signed(
        image: &[u8],
        certificates: Vec<Element>,
        signer: &SecretKey,
    ) -> (Vec<u8>, String) {
        let signature = signer.sign(image);
        let mut chain = Chain::new(certificates);
        chain.push(Element::final_signature(&signature));
        let mut signed = image.to_vec();
        fwtool::append_block(&mut signed, BlockKind::Signature, &chain.to_bytes()).unwrap();
        (signed, signature.to_file())
    }

    #[test]
    fn accepts_an_image_signed_with_a_ucert_trailer_as_asu_reports_it() {
        let f = fixture();
        let unsigned = image(&["glinet,gl-mt6000"], "1.0");
        let (signed, sig) = asu_signed(&unsigned, Vec::new(), &f.key);
        let path = f.dir.path().join("img");
        std::fs::write(&path, &signed).unwrap();
        // ASU: both hashes are of the image before it was signed, and the `.sig` is the
        // chain's final signature.
        let before = sha(&unsigned);
        let mut asu = expect(&f, Some(&before), Some(sig.as_bytes()));
        asu.sha256_unsigned = Some(&before);
        let result = verify_image(&path, &asu).unwrap();
        assert_eq!(result.sha256, sha(&signed));
        assert_eq!(result.sha256_unsigned.as_deref(), Some(before.as_str()));
        assert_eq!(result.signed_by, Some(f.key.fingerprint().to_string()));
        assert_eq!(result.fwtool_blocks, ["metadata", "signature"]);
        // Without the `.sig`, the trailer alone suffices.
        let mut trailer_only = expect(&f, Some(&before), None);
        trailer_only.sha256_unsigned = Some(&before);
        assert!(verify_image(&path, &trailer_only).is_ok());
        // downloads.openwrt.org: `sha256` of the whole file, `sha256_unsigned` before the block.
        let whole = sha(&signed);
        let mut upstream = expect(&f, Some(&whole), None);
        upstream.sha256_unsigned = Some(&before);
        assert!(verify_image(&path, &upstream).is_ok());
    }

    #[test]
    fn a_delegated_signing_key_verifies_through_its_certificate() {
        let f = fixture();
        let build_key = SecretKey::generate([3; 32], Fingerprint([3; 8]), [0; 16], None).unwrap();
        let certificate =
            issue_auth(&f.key, &build_key.public_key(), NOW - 60, NOW + 3600).unwrap();
        let unsigned = image(&["glinet,gl-mt6000"], "1.0");
        let (signed, _) = asu_signed(&unsigned, vec![certificate.clone()], &build_key);
        let path = f.dir.path().join("img");
        std::fs::write(&path, &signed).unwrap();
        let before = sha(&unsigned);
        let result = verify_image(&path, &expect(&f, Some(&before), None)).unwrap();
        assert_eq!(result.signed_by, Some(build_key.fingerprint().to_string()));

        // The same chain once the certificate has expired, and once its key is revoked.
        let mut late = expect(&f, Some(&before), None);
        late.now = NOW + 7200;
        let error = verify_image(&path, &late).unwrap_err();
        assert!(
            matches!(
                &error,
                VerifyError::Ucert {
                    source: UcertError::Expired { .. },
                    ..
                }
            ),
            "{error}"
        );
        assert!(
            !error.discards_image(),
            "a clock problem keeps the download"
        );
        let mut revoked = Revocations::new();
        revoked.insert(build_key.fingerprint());
        let mut with_revocation = expect(&f, Some(&before), None);
        with_revocation.revoked = &revoked;
        let error = verify_image(&path, &with_revocation).unwrap_err();
        assert!(
            matches!(
                &error,
                VerifyError::Ucert {
                    source: UcertError::Revoked { .. },
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn refuses_a_forged_trailer() {
        let f = fixture();
        let unsigned = image(&["glinet,gl-mt6000"], "1.0");
        let mut other = unsigned.clone();
        other[10] ^= 1;
        // A trusted key's signature, but over other bytes, attached to this image.
        let forged = f.key.sign(&other);
        let mut signed = unsigned.clone();
        let chain = Chain::new(vec![Element::final_signature(&forged)]);
        fwtool::append_block(&mut signed, BlockKind::Signature, &chain.to_bytes()).unwrap();
        let path = f.dir.path().join("img");
        std::fs::write(&path, &signed).unwrap();
        let before = sha(&unsigned);
        let mut optional = expect(&f, Some(&before), None);
        optional.require_signature = false;
        for expectations in [expect(&f, Some(&before), None), optional] {
            let error = verify_image(&path, &expectations).unwrap_err();
            assert!(
                matches!(
                    &error,
                    VerifyError::Ucert {
                        source: UcertError::BadSignature { element: 1, .. },
                        ..
                    }
                ),
                "{error}"
            );
            assert!(error.discards_image());
            assert_eq!(
                error.to_string(),
                format!(
                    "the ucert signature in the fwtool trailer of `{}` does not verify: signature \
                     of chain element 1 does not verify",
                    path.display()
                )
            );
        }
        // A signature block that is not a ucert chain at all.
        let mut garbage = unsigned.clone();
        fwtool::append_block(&mut garbage, BlockKind::Signature, b"not a chain").unwrap();
        std::fs::write(&path, &garbage).unwrap();
        let error = verify_image(&path, &expect(&f, Some(&before), None)).unwrap_err();
        assert!(matches!(error, VerifyError::Ucert { .. }), "{error}");
    }

    #[test]
    fn refuses_a_foreign_trailer_unless_signatures_are_optional() {
        let f = fixture();
        let foreign = SecretKey::generate([9; 32], Fingerprint([2; 8]), [0; 16], None).unwrap();
        let unsigned = image(&["glinet,gl-mt6000"], "1.0");
        let (signed, sig) = asu_signed(&unsigned, Vec::new(), &foreign);
        let path = f.dir.path().join("img");
        std::fs::write(&path, &signed).unwrap();
        let before = sha(&unsigned);
        let error = verify_image(&path, &expect(&f, Some(&before), None)).unwrap_err();
        assert!(
            matches!(
                &error,
                VerifyError::Ucert {
                    source: UcertError::UnknownKey { .. },
                    ..
                }
            ),
            "{error}"
        );
        assert!(error.discards_image());
        assert_eq!(
            crate::Error::from(error).cli_text(),
            format!(
                "the ucert signature in the fwtool trailer of `{}` does not verify: chain element \
                 1 is signed by key `0202020202020202`, which is not trusted\n\nhint: install \
                 its public key as `/etc/opkg/keys/0202020202020202` if you trust it",
                path.display()
            )
        );
        let mut optional = expect(&f, Some(&before), Some(sig.as_bytes()));
        optional.require_signature = false;
        assert_eq!(verify_image(&path, &optional).unwrap().signed_by, None);
    }

    #[test]
    fn a_trailer_with_a_wrong_sha256_unsigned_is_refused() {
        let f = fixture();
        let unsigned = image(&["glinet,gl-mt6000"], "1.0");
        let (signed, _) = asu_signed(&unsigned, Vec::new(), &f.key);
        let path = f.dir.path().join("img");
        std::fs::write(&path, &signed).unwrap();
        let whole = sha(&signed);
        let wrong = "0".repeat(64);
        let mut stated = expect(&f, Some(&whole), None);
        stated.sha256_unsigned = Some(&wrong);
        let error = verify_image(&path, &stated).unwrap_err();
        assert!(
            matches!(&error, VerifyError::Sha256UnsignedMismatch { found, .. } if *found == sha(&unsigned)),
            "{error}"
        );
        assert!(error.discards_image());
        // `sha256` naming neither the file nor the part before the block.
        let error = verify_image(&path, &expect(&f, Some(&wrong), None)).unwrap_err();
        assert!(
            matches!(error, VerifyError::Sha256Mismatch { .. }),
            "{error}"
        );
    }

    #[test]
    fn a_detached_signature_may_cover_the_image_before_its_signature_block() {
        let f = fixture();
        let foreign = SecretKey::generate([9; 32], Fingerprint([2; 8]), [0; 16], None).unwrap();
        let unsigned = image(&["glinet,gl-mt6000"], "1.0");
        // The trailer's key is unknown here, so only the `.sig` can vouch for the image.
        let (signed, _) = asu_signed(&unsigned, Vec::new(), &foreign);
        let path = f.dir.path().join("img");
        std::fs::write(&path, &signed).unwrap();
        let before = sha(&unsigned);
        for message in [&unsigned, &signed] {
            let sig = f.key.sign(message).to_file();
            let mut optional = expect(&f, Some(&before), Some(sig.as_bytes()));
            optional.require_signature = false;
            let result = verify_image(&path, &optional).unwrap();
            assert_eq!(result.signed_by, Some(f.key.fingerprint().to_string()));
        }
        let mut other = unsigned.clone();
        other[0] ^= 1;
        let forged = f.key.sign(&other).to_file();
        let mut optional = expect(&f, Some(&before), Some(forged.as_bytes()));
        optional.require_signature = false;
        let error = verify_image(&path, &optional).unwrap_err();
        assert!(matches!(error, VerifyError::Signature { .. }), "{error}");
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
