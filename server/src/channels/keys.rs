//! Channel metadata keys: the offline root key, delegated signing keys, revocations, and the
//! signer the publisher uses.
//!
//! The chain (explained for operators in `docs/channels-trust.md`): an offline **root** usign key
//! pair, whose public half routers pin; a **signing** key pair on the server, certified by the
//! root for a window with a ucert auth certificate (the **delegation**, published as
//! `/channels/keys/<signing-fp>.ucert`); and a list of ucert revoke certificates by the root
//! (`/channels/keys/revoked.ucert`). Every metadata file is signed by the signing key as a
//! detached usign `.sig`. The certificates are made by `attendant-server keys` with the functions
//! here; the publisher gets its [`MetadataSigner`] from the `[channels]` configuration with
//! [`MetadataSigner::from_config`].
//!
//! A delegation ends: [`MetadataSigner::expiry_warning`] says so in advance (system-image's
//! signing keys simply expired and left devices unable to update), and the publisher never
//! promises metadata past the delegation's end ([`MetadataSigner::metadata_expires`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use attendant_proto::timestamp::Timestamp;
use attendant_proto::ucert::{self, CertBody, Chain, TimeText, UcertError};
use attendant_proto::usign::{Fingerprint, PublicKey, SecretKey};

use crate::atomic::{Existing, write_atomic};
use crate::config::ChannelsConfig;
use crate::signing::{SigningError, generate_key_pair, load_secret_key};

/// File name of the revocation list under the published `keys/` directory.
pub const REVOCATIONS_FILE: &str = "revoked.ucert";

/// Comment of a root key made by `keys root-init`.
pub const ROOT_KEY_COMMENT: &str = "attendant channel root key";

/// Why a channel key operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelKeyError {
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
    /// A ucert file is larger than ucert reads.
    #[error("`{path}` is {len} bytes, more than the {max} bytes of a ucert file")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
        /// [`ucert::MAX_FILE_LEN`].
        max: usize,
    },
    /// A key could not be loaded or made.
    #[error(transparent)]
    Key(#[from] SigningError),
    /// A ucert file is malformed, or a certificate could not be issued.
    #[error("`{path}` is not a usable ucert file")]
    Ucert {
        /// The file.
        path: PathBuf,
        /// ucert's complaint.
        #[source]
        source: UcertError,
    },
    /// A certificate could not be issued (an empty window, a public key file too long).
    #[error("cannot issue the certificate")]
    Issue(#[source] UcertError),
    /// The delegation does not certify the configured signing key.
    #[error("delegation `{path}` certifies key `{certified}`, but the signing key is `{signing}`")]
    WrongDelegation {
        /// The delegation file.
        path: PathBuf,
        /// The key it certifies (none: it holds no auth certificate).
        certified: String,
        /// The signing key's fingerprint.
        signing: Fingerprint,
    },
    /// A revocation list holds something other than revoke certificates.
    #[error("`{path}` is not a revocation list: element {element} is not a revoke certificate")]
    NotRevocationList {
        /// The file.
        path: PathBuf,
        /// The offending element (from 1).
        element: usize,
    },
    /// A time given on the command line or computed lies outside what a certificate can carry.
    #[error("time {what} is out of range")]
    TimeOutOfRange {
        /// Which time.
        what: &'static str,
    },
}

impl ChannelKeyError {
    /// The operator's way out, printed after the error as `hint: ...` by the CLI.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::WrongDelegation { path, .. } => Some(format!(
                "issue a delegation for the signing key with `attendant-server keys delegate \
                 --root ROOT_SECRET --signing SIGNING_SECRET --valid-for 90d -o {}`",
                path.display()
            )),
            Self::Key(error) => error.hint(),
            Self::Io { .. }
            | Self::TooLarge { .. }
            | Self::Ucert { .. }
            | Self::Issue(_)
            | Self::NotRevocationList { .. }
            | Self::TimeOutOfRange { .. } => None,
        }
    }
}

/// The key that signs channel metadata, with the delegation that makes routers trust it.
#[derive(Debug, Clone)]
pub struct MetadataSigner {
    key: SecretKey,
    delegation: Vec<u8>,
    revocations: Option<Vec<u8>>,
    expires_at: i64,
}

impl MetadataSigner {
    /// The signer of the `[channels]` configuration: `None` when no `signing_key` is set
    /// (channels are then not published); with it, also the `revocations` list when set, checked
    /// to hold only revoke certificates.
    pub fn from_config(config: &ChannelsConfig) -> Result<Option<Self>, ChannelKeyError> {
        let (Some(signing_key), Some(delegation)) = (&config.signing_key, &config.delegation)
        else {
            return Ok(None);
        };
        let mut signer = Self::load(signing_key, delegation)?;
        if let Some(path) = &config.revocations {
            let bytes = read_ucert(path)?;
            revoke_certificates(path, &parse_chain(path, &bytes)?)?;
            signer.revocations = Some(bytes);
        }
        Ok(Some(signer))
    }

    /// Loads the signing secret key and its delegation, checking that the delegation's last
    /// certificate certifies exactly this key. The root's signature is not checked here (the
    /// server need not hold the root public key); routers check it.
    pub fn load(signing_key: &Path, delegation: &Path) -> Result<Self, ChannelKeyError> {
        let key = load_key(signing_key, "read the channel signing key")?;
        let bytes = read_ucert(delegation)?;
        let chain = parse_chain(delegation, &bytes)?;
        let certified = chain.elements().iter().rev().find_map(|element| {
            match element.cert().map(ucert::Cert::body) {
                Some(CertBody::Auth { public_key, .. }) => Some(public_key.clone()),
                _ => None,
            }
        });
        let matches = |public: &PublicKey| {
            public.fingerprint() == key.fingerprint()
                && public.key_bytes() == key.public_key().key_bytes()
        };
        if !certified.as_ref().is_some_and(matches) {
            return Err(ChannelKeyError::WrongDelegation {
                path: delegation.to_owned(),
                certified: certified
                    .map(|public| public.fingerprint().to_string())
                    .unwrap_or_else(|| "none".to_owned()),
                signing: key.fingerprint(),
            });
        }
        let expires_at = chain
            .elements()
            .iter()
            .filter_map(|element| match element.cert().map(ucert::Cert::body) {
                Some(CertBody::Auth { expires_at, .. }) => Some(*expires_at),
                _ => None,
            })
            .min()
            .unwrap_or(i64::MIN);
        Ok(Self {
            key,
            delegation: bytes,
            revocations: None,
            expires_at,
        })
    }

    /// The revocation list's bytes, to publish as [`REVOCATIONS_FILE`] (none configured: `None`).
    pub fn revocations(&self) -> Option<&[u8]> {
        self.revocations.as_deref()
    }

    /// Signs `message`: the text of its detached `.sig` (usign's format, as `signify -S`).
    pub fn sign(&self, message: &[u8]) -> String {
        self.key.sign(message).to_file()
    }

    /// The signing key's fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        self.key.fingerprint()
    }

    /// The signing key's public half.
    pub fn public_key(&self) -> PublicKey {
        self.key.public_key()
    }

    /// The delegation file's bytes, to publish as [`delegation_file_name`](Self::delegation_file_name).
    pub fn delegation(&self) -> &[u8] {
        &self.delegation
    }

    /// `<signing-fp>.ucert`: where routers look for the delegation of the key named in a `.sig`.
    pub fn delegation_file_name(&self) -> String {
        delegation_file_name(self.fingerprint())
    }

    /// When the delegation ends, Unix seconds; routers refuse the key from then on.
    pub fn expires_at(&self) -> i64 {
        self.expires_at
    }

    /// The `expires` to write into metadata made at `now` that should live `lifetime`: never
    /// past the delegation's end, because no router would accept the file then anyway.
    pub fn metadata_expires(&self, now: i64, lifetime: Duration) -> i64 {
        let lifetime = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX);
        now.saturating_add(lifetime).min(self.expires_at)
    }

    /// A warning for the operator when the delegation ends within `margin` of `now` (or has
    /// ended), naming the command that issues the next one.
    pub fn expiry_warning(&self, now: i64, margin: Duration) -> Option<String> {
        let margin = i64::try_from(margin.as_secs()).unwrap_or(i64::MAX);
        if now.saturating_add(margin) < self.expires_at {
            return None;
        }
        let state = if now >= self.expires_at {
            "expired"
        } else {
            "expires"
        };
        Some(format!(
            "the delegation of channel signing key `{}` {state} at {}; routers refuse metadata \
             signed by it from then on\n\nhint: issue the next delegation with the offline root \
             key (`attendant-server keys delegate --root ROOT_SECRET --signing NEW_SIGNING_SECRET \
             --valid-for 90d -o NEW.ucert`) and publish both while they overlap",
            self.fingerprint(),
            TimeText(self.expires_at)
        ))
    }
}

/// `<fingerprint>.ucert`.
pub fn delegation_file_name(fingerprint: Fingerprint) -> String {
    format!("{fingerprint}.ucert")
}

/// Makes the offline root key pair: `<path>` (mode 0600, never overwritten) and `<path>.pub`
/// (the file routers pin). Returns the public key.
pub fn root_init(path: &Path) -> Result<PublicKey, ChannelKeyError> {
    Ok(generate_key_pair(path, Some(ROOT_KEY_COMMENT))?)
}

/// What [`delegate`] did.
#[derive(Debug, Clone)]
pub struct Delegated {
    /// The certified signing key.
    pub signing: PublicKey,
    /// Whether the signing key pair was made now.
    pub generated: bool,
    /// The window, Unix seconds.
    pub valid_from: i64,
    /// The window's end, Unix seconds (exclusive).
    pub expires_at: i64,
}

/// Issues the delegation of the signing key `signing` (made with [`generate_key_pair`] when the
/// file does not exist) by the root key `root`, valid from `valid_from` for `valid_for`, and
/// writes it to `out` (replacing it: re-issuing extends a key's window).
pub fn delegate(
    root: &Path,
    signing: &Path,
    valid_from: i64,
    valid_for: Duration,
    out: &Path,
) -> Result<Delegated, ChannelKeyError> {
    let root_key = load_key(root, "read the root key")?;
    let generated = !signing.exists();
    let signing_public = if generated {
        generate_key_pair(signing, None)?
    } else {
        load_key(signing, "read the channel signing key")?.public_key()
    };
    let seconds =
        i64::try_from(valid_for.as_secs()).map_err(|_| ChannelKeyError::TimeOutOfRange {
            what: "--valid-for",
        })?;
    let expires_at = valid_from
        .checked_add(seconds)
        .filter(|end| Timestamp::from_unix(*end).is_ok())
        .ok_or(ChannelKeyError::TimeOutOfRange {
            what: "--valid-for",
        })?;
    let element = ucert::issue_auth(&root_key, &signing_public, valid_from, expires_at)
        .map_err(ChannelKeyError::Issue)?;
    write_file(out, &element.to_bytes())?;
    Ok(Delegated {
        signing: signing_public,
        generated,
        valid_from,
        expires_at,
    })
}

/// Appends a revoke certificate for `fingerprint`, by the root key `root`, valid from
/// `valid_from`, to the revocation list `out` (created when absent). Returns `false`, changing
/// nothing, when the list already revokes that key.
pub fn revoke(
    root: &Path,
    fingerprint: Fingerprint,
    valid_from: i64,
    out: &Path,
) -> Result<bool, ChannelKeyError> {
    let root_key = load_key(root, "read the root key")?;
    let mut chain = if out.exists() {
        let bytes = read_ucert(out)?;
        parse_chain(out, &bytes)?
    } else {
        Chain::default()
    };
    if revoke_certificates(out, &chain)?.contains(&fingerprint) {
        return Ok(false);
    }
    chain.push(ucert::issue_revoke(&root_key, fingerprint, valid_from));
    let bytes = chain.to_bytes();
    if bytes.len() > ucert::MAX_FILE_LEN {
        return Err(ChannelKeyError::Ucert {
            path: out.to_owned(),
            source: UcertError::TooLarge {
                len: bytes.len(),
                max: ucert::MAX_FILE_LEN,
            },
        });
    }
    write_file(out, &bytes)?;
    Ok(true)
}

/// Reads and parses a ucert file (for `keys show`).
pub fn load_chain(path: &Path) -> Result<Chain, ChannelKeyError> {
    let bytes = read_ucert(path)?;
    parse_chain(path, &bytes)
}

/// The keys a revocation list revokes; anything but revoke certificates is refused.
fn revoke_certificates(path: &Path, chain: &Chain) -> Result<Vec<Fingerprint>, ChannelKeyError> {
    chain
        .elements()
        .iter()
        .enumerate()
        .map(
            |(index, element)| match element.cert().map(ucert::Cert::body) {
                Some(CertBody::Revoke { fingerprint }) => Ok(*fingerprint),
                _ => Err(ChannelKeyError::NotRevocationList {
                    path: path.to_owned(),
                    element: index + 1,
                }),
            },
        )
        .collect()
}

/// [`load_secret_key`], saying which key could not be read.
fn load_key(path: &Path, action: &'static str) -> Result<SecretKey, ChannelKeyError> {
    load_secret_key(path).map_err(|error| match error {
        SigningError::Io { path, source, .. } => ChannelKeyError::Io {
            action,
            path,
            source,
        },
        other => ChannelKeyError::Key(other),
    })
}

fn parse_chain(path: &Path, bytes: &[u8]) -> Result<Chain, ChannelKeyError> {
    Chain::parse(bytes).map_err(|source| ChannelKeyError::Ucert {
        path: path.to_owned(),
        source,
    })
}

/// Reads at most [`ucert::MAX_FILE_LEN`] bytes, refusing larger files before reading them.
fn read_ucert(path: &Path) -> Result<Vec<u8>, ChannelKeyError> {
    let io = |source| ChannelKeyError::Io {
        action: "read",
        path: path.to_owned(),
        source,
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > ucert::MAX_FILE_LEN as u64 {
        return Err(ChannelKeyError::TooLarge {
            path: path.to_owned(),
            len,
            max: ucert::MAX_FILE_LEN,
        });
    }
    std::fs::read(path).map_err(io)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ChannelKeyError> {
    write_atomic(path, bytes, Existing::Replace, false).map_err(|source| ChannelKeyError::Io {
        action: "write",
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use attendant_proto::channel::trust::verify_metadata;

    use super::*;

    const NOW: i64 = 1_796_557_500;
    const DAY: u64 = 86_400;

    struct Keys {
        _dir: tempfile::TempDir,
        root: PathBuf,
        signing: PathBuf,
        delegation: PathBuf,
    }

    fn keys(valid_for_days: u64) -> Keys {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root.sec");
        let signing = dir.path().join("signing.sec");
        let delegation = dir.path().join("signing.ucert");
        root_init(&root).unwrap();
        let delegated = delegate(
            &root,
            &signing,
            NOW,
            Duration::from_secs(valid_for_days * DAY),
            &delegation,
        )
        .unwrap();
        assert!(delegated.generated);
        Keys {
            _dir: dir,
            root,
            signing,
            delegation,
        }
    }

    #[test]
    fn signer_signs_what_a_router_verifies() {
        let keys = keys(90);
        let signer = MetadataSigner::load(&keys.signing, &keys.delegation).unwrap();
        let root =
            PublicKey::parse(&std::fs::read(keys.root.with_extension("sec.pub")).unwrap()).unwrap();
        let message = b"{\"global\":{}}\n";
        let signature = signer.sign(message);
        let verified = verify_metadata(
            message,
            signature.as_bytes(),
            signer.delegation(),
            None,
            &[root],
            NOW + 1,
        )
        .unwrap();
        assert_eq!(verified.fingerprint(), signer.fingerprint());
        assert_eq!(
            signer.delegation_file_name(),
            format!("{}.ucert", signer.fingerprint())
        );
        assert_eq!(signer.expires_at(), NOW + 90 * 86_400);
    }

    #[test]
    fn metadata_never_outlives_the_delegation_and_expiry_is_announced() {
        let keys = keys(10);
        let signer = MetadataSigner::load(&keys.signing, &keys.delegation).unwrap();
        let week = Duration::from_secs(7 * DAY);
        assert_eq!(signer.metadata_expires(NOW, week), NOW + 7 * 86_400);
        assert_eq!(
            signer.metadata_expires(NOW + 5 * 86_400, week),
            NOW + 10 * 86_400
        );
        let margin = Duration::from_secs(14 * DAY);
        let warning = signer.expiry_warning(NOW, margin).unwrap();
        assert!(
            warning.starts_with(&format!(
                "the delegation of channel signing key `{}` expires at Wed Dec 16 11:45:00 UTC \
                 2026;",
                signer.fingerprint()
            )),
            "{warning}"
        );
        assert!(
            warning.contains("hint: issue the next delegation"),
            "{warning}"
        );
        assert_eq!(signer.expiry_warning(NOW, Duration::from_secs(DAY)), None);
        assert!(
            signer
                .expiry_warning(NOW + 10 * 86_400, Duration::ZERO)
                .unwrap()
                .contains("` expired at")
        );
    }

    #[test]
    fn refuses_delegation_of_another_key() {
        let keys = keys(10);
        let other = keys.signing.with_file_name("other.sec");
        generate_key_pair(&other, None).unwrap();
        let err = MetadataSigner::load(&other, &keys.delegation).unwrap_err();
        assert!(
            matches!(err, ChannelKeyError::WrongDelegation { .. }),
            "{err}"
        );
        assert!(err.hint().unwrap().contains("keys delegate"));
    }

    #[test]
    fn config_loads_signer_and_revocations() {
        let keys = keys(10);
        let mut config = ChannelsConfig::default();
        assert!(MetadataSigner::from_config(&config).unwrap().is_none());
        config.signing_key = Some(keys.signing.clone());
        config.delegation = Some(keys.delegation.clone());
        let signer = MetadataSigner::from_config(&config).unwrap().unwrap();
        assert_eq!(signer.revocations(), None);
        let list = keys.root.with_file_name(REVOCATIONS_FILE);
        revoke(&keys.root, Fingerprint([1; 8]), NOW, &list).unwrap();
        config.revocations = Some(list.clone());
        let signer = MetadataSigner::from_config(&config).unwrap().unwrap();
        assert_eq!(
            signer.revocations(),
            Some(&std::fs::read(&list).unwrap()[..])
        );
        // A delegation given as the revocation list is refused.
        config.revocations = Some(keys.delegation.clone());
        assert!(matches!(
            MetadataSigner::from_config(&config),
            Err(ChannelKeyError::NotRevocationList { .. })
        ));
    }

    #[test]
    fn revocation_list_grows_once_per_key() {
        let keys = keys(10);
        let list = keys.root.with_file_name(REVOCATIONS_FILE);
        let first = Fingerprint([1; 8]);
        assert!(revoke(&keys.root, first, NOW, &list).unwrap());
        assert!(revoke(&keys.root, Fingerprint([2; 8]), NOW, &list).unwrap());
        assert!(!revoke(&keys.root, first, NOW, &list).unwrap());
        assert_eq!(load_chain(&list).unwrap().elements().len(), 2);
        // A delegation is not a revocation list: appending to it is refused.
        let err = revoke(&keys.root, first, NOW, &keys.delegation).unwrap_err();
        assert!(
            matches!(err, ChannelKeyError::NotRevocationList { element: 1, .. }),
            "{err}"
        );
    }
}
