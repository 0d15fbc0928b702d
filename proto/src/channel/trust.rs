//! What a router checks before it believes channel metadata: the signature chain and freshness.
//!
//! The chain of trust: a **root** usign key, kept offline, is pinned on the router. It delegates a
//! **signing** key with a ucert auth certificate valid for a window (`keys/<signing-fp>.ucert`
//! under `/channels/`), and may revoke keys with ucert revoke certificates
//! (`keys/revoked.ucert`). The server signs every metadata file with the signing key: a detached
//! usign signature `<file>.sig`, the same bytes `signify -V` checks.
//!
//! A router, for each file, in this order:
//!
//! 1. reads the `.sig` and takes the signing key's fingerprint from it ([`signing_key_of`]), which
//!    names the delegation to fetch (during a key rotation two delegations are valid at once);
//! 2. [`verify_metadata`]: the revocation list (if any) must be signed by a pinned root; the
//!    delegation must be signed by a pinned root that is not revoked, be an auth certificate, and
//!    be within its window now; the certified key must not be revoked and must be the key that
//!    made the `.sig`; the `.sig` must verify over the file's exact bytes;
//! 3. parses the file ([`parse_channels`](super::parse_channels),
//!    [`parse_index`](super::parse_index));
//! 4. [`check_freshness`]: not expired, serial not lower than the highest it has seen;
//! 5. for an index, [`check_index_target`]: the file is for the channel and device it asked for.
//!
//! Every function is pure: the caller passes the bytes, the pinned keys and the time.

use crate::excerpt::{MAX_VALUE_CHARS, excerpt};
use crate::ucert::{Chain, Revocations, TimeText, UcertError};
use crate::usign::{Fingerprint, Keyring, PublicKey, Signature, UsignError};

use super::freshness::Freshness;
use super::index::IndexGlobal;

/// Why a router refused channel metadata. Each variant names what was checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// The `.sig` file is not a usign signature.
    #[error("the metadata signature file is not a usign signature")]
    SignatureFile(#[source] UsignError),
    /// The delegation file is not a valid ucert chain of auth certificates.
    #[error("the signing key's delegation is not valid")]
    Delegation(#[source] UcertError),
    /// The delegation is a bare signature, not a certificate.
    #[error("the delegation file holds no certificate for a signing key")]
    NotADelegation,
    /// The revocation list is not a valid list of revoke certificates by a pinned root.
    #[error("the key revocation list is not valid")]
    Revocations(#[source] UcertError),
    /// The delegation is signed by a key that is not pinned.
    #[error("the delegation is signed by key `{fingerprint}`, which is not a pinned root key")]
    UnknownKey {
        /// The key that signed it.
        fingerprint: Fingerprint,
    },
    /// A key on the way is revoked.
    #[error("key `{fingerprint}` has been revoked")]
    Revoked {
        /// The revoked key.
        fingerprint: Fingerprint,
    },
    /// The delegation's window has ended.
    #[error("the delegation of the signing key expired at {expires_at}, it is now {now}")]
    DelegationExpired {
        /// Its `expiresat`.
        expires_at: TimeText,
        /// The time checked against.
        now: TimeText,
    },
    /// The delegation's window has not started.
    #[error("the delegation of the signing key is valid only from {valid_from}, it is now {now}")]
    DelegationNotYetValid {
        /// Its `validfrom`.
        valid_from: TimeText,
        /// The time checked against.
        now: TimeText,
    },
    /// The `.sig` was made by another key than the delegated one.
    #[error(
        "the metadata is signed by key `{signature}`, but the delegation certifies key `{delegated}`"
    )]
    WrongSigningKey {
        /// The key that made the `.sig`.
        signature: Fingerprint,
        /// The key the delegation certifies.
        delegated: Fingerprint,
    },
    /// The `.sig` does not verify over the file.
    #[error("the metadata signature by key `{fingerprint}` does not match the file")]
    BadSignature {
        /// The signing key.
        fingerprint: Fingerprint,
    },
    /// The file's `expires` has passed.
    #[error("the metadata expired at {expires}, it is now {now}")]
    Expired {
        /// Its `expires`.
        expires: TimeText,
        /// The time checked against.
        now: TimeText,
    },
    /// The file's serial is lower than one already seen: an old file replayed.
    #[error("the metadata has serial {serial}, lower than serial {highest_seen} seen before")]
    SerialRollback {
        /// Its `serial`.
        serial: u64,
        /// The highest serial seen before.
        highest_seen: u64,
    },
    /// An index is for another channel or device than the one asked for.
    #[error("the index is for `{found_channel}` `{found_device}`, expected `{channel}` `{device}`")]
    WrongDevice {
        /// The channel asked for.
        channel: String,
        /// The device asked for.
        device: String,
        /// The index's `global.channel`, shortened.
        found_channel: String,
        /// The index's `global.device`, shortened.
        found_device: String,
    },
}

impl TrustError {
    /// A stable code for machines (the ubus reply, LuCI), one per variant.
    pub fn code(&self) -> &'static str {
        match self {
            Self::SignatureFile(_) => "bad-signature-file",
            Self::Delegation(_) | Self::NotADelegation => "bad-delegation",
            Self::Revocations(_) => "bad-revocations",
            Self::UnknownKey { .. } => "unknown-key",
            Self::Revoked { .. } => "revoked",
            Self::DelegationExpired { .. } => "delegation-expired",
            Self::DelegationNotYetValid { .. } => "delegation-not-yet-valid",
            Self::WrongSigningKey { .. } => "wrong-signing-key",
            Self::BadSignature { .. } => "bad-signature",
            Self::Expired { .. } => "expired",
            Self::SerialRollback { .. } => "serial-rollback",
            Self::WrongDevice { .. } => "wrong-device",
        }
    }
}

/// The fingerprint of the key that made a `.sig` file: the delegation to use is
/// `keys/<fingerprint>.ucert`.
pub fn signing_key_of(signature_file: &[u8]) -> Result<Fingerprint, TrustError> {
    Signature::parse(signature_file)
        .map(|signature| signature.fingerprint())
        .map_err(TrustError::SignatureFile)
}

/// Check `message` against its `.sig` (`signature_file`), the signing key's `delegation_file`
/// and the optional `revocations_file`, with `roots` pinned, at `now_unix`; returns the signing
/// key. See the module documentation for the order of the checks.
pub fn verify_metadata(
    message: &[u8],
    signature_file: &[u8],
    delegation_file: &[u8],
    revocations_file: Option<&[u8]>,
    roots: &[PublicKey],
    now_unix: i64,
) -> Result<PublicKey, TrustError> {
    let signature = Signature::parse(signature_file).map_err(TrustError::SignatureFile)?;
    let mut pinned = Keyring::new();
    for root in roots {
        pinned.add(root.clone());
    }
    let mut revoked = Revocations::new();
    if let Some(bytes) = revocations_file {
        let list = Chain::parse(bytes).map_err(TrustError::Revocations)?;
        revoked
            .add_chain(&list, &pinned, now_unix)
            .map_err(TrustError::Revocations)?;
    }
    let delegation = Chain::parse(delegation_file).map_err(TrustError::Delegation)?;
    let verified = delegation
        .verify(&pinned, &revoked, now_unix)
        .map_err(delegation_error)?;
    if verified.expires_at().is_none() {
        return Err(TrustError::NotADelegation);
    }
    let key = verified.key();
    if key.fingerprint() != signature.fingerprint() {
        return Err(TrustError::WrongSigningKey {
            signature: signature.fingerprint(),
            delegated: key.fingerprint(),
        });
    }
    key.verify(message, &signature)
        .map_err(|_| TrustError::BadSignature {
            fingerprint: key.fingerprint(),
        })?;
    Ok(key.clone())
}

/// Check a verified file's freshness at `now_unix`: `expires` not reached, and `serial` not lower
/// than `highest_serial_seen` (equal is the same publication fetched again).
pub fn check_freshness(
    freshness: &Freshness,
    now_unix: i64,
    highest_serial_seen: u64,
) -> Result<(), TrustError> {
    if now_unix >= freshness.expires {
        return Err(TrustError::Expired {
            expires: TimeText(freshness.expires),
            now: TimeText(now_unix),
        });
    }
    if freshness.serial < highest_serial_seen {
        return Err(TrustError::SerialRollback {
            serial: freshness.serial,
            highest_seen: highest_serial_seen,
        });
    }
    Ok(())
}

/// Check that an index is the one for `channel` and `device`: a correctly signed index of
/// another device must not be taken for this one's.
pub fn check_index_target(
    global: &IndexGlobal,
    channel: &str,
    device: &str,
) -> Result<(), TrustError> {
    if global.channel == channel && global.device == device {
        return Ok(());
    }
    Err(TrustError::WrongDevice {
        channel: excerpt(channel, MAX_VALUE_CHARS),
        device: excerpt(device, MAX_VALUE_CHARS),
        found_channel: excerpt(&global.channel, MAX_VALUE_CHARS),
        found_device: excerpt(&global.device, MAX_VALUE_CHARS),
    })
}

fn delegation_error(error: UcertError) -> TrustError {
    match error {
        UcertError::UnknownKey { fingerprint, .. } => TrustError::UnknownKey { fingerprint },
        UcertError::Revoked { fingerprint, .. } => TrustError::Revoked { fingerprint },
        UcertError::Expired {
            expires_at, now, ..
        } => TrustError::DelegationExpired { expires_at, now },
        UcertError::NotYetValid {
            valid_from, now, ..
        } => TrustError::DelegationNotYetValid { valid_from, now },
        other => TrustError::Delegation(other),
    }
}

#[cfg(test)]
mod tests;
