//! Reading a stream with its signatures checked, as simplestreams' `sstream-query --keyring` and
//! `sstream-mirror --keyring` do (<https://git.launchpad.net/simplestreams>, `bin/sstream-query`
//! and `simplestreams/util.py`, `read_signed`).
//!
//! Every document (the index, then each products file it names) is read from the file a given
//! key can check:
//!
//! | keys given | file read | check |
//! | --- | --- | --- |
//! | GPG keyring | `<name>.sjson`, else `<name>.json` | `gpgv` on the cleartext signature, else on the detached `<name>.json.gpg` |
//! | usign key | `<name>.json` | its `<name>.json.sig` |
//! | both | `<name>.json` | `<name>.json.sig` and `<name>.json.gpg` |
//! | none | — | refused: a stream is never taken on trust unless `--no-verify` says so |
//!
//! Like the stock tools we prefer the cleartext-signed `.sjson` when a keyring is given (one file
//! holds the text and its signature, so the two cannot come from different publications), and a
//! signature that does not verify, or one that is missing, is an error naming the file. Unlike
//! `sstream-query`, which checks nothing when it is pointed at a `.json` index, we check whatever
//! the key given can check, and refuse what nothing can.
//!
//! `gpgv` runs as an argument vector (no shell), in a private temporary directory that is also
//! its `--homedir`, so the user's own GPG home is neither read nor written. The bytes parsed are
//! the bytes checked: a `.json` is copied there first and `gpgv` checks the copy, and the body of
//! a `.sjson` is what `gpgv --output` writes after checking it.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use attendant_proto::usign::{PublicKey, Signature};

use super::error::{StreamsError, io};
use super::format::{parse_index, parse_products};
use super::tree::{self, Stream};
use crate::process::{Invocation, run};

/// Time limit of one `gpgv` check.
const GPGV_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest detached `.json.gpg` read: an armoured signature is under 1 KiB, so this leaves room
/// for a file signed by many keys.
const MAX_DETACHED_SIGNATURE_LEN: usize = 64 * 1024;
/// Bytes of `gpgv`'s output kept for an error message.
const GPGV_OUTPUT_CAP: usize = 64 * 1024;

/// The keys a reader trusts.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// A GPG keyring (`gpgv --keyring`), absolute.
    pub keyring: Option<PathBuf>,
    /// A usign public key.
    pub usign: Option<PublicKey>,
}

impl Trust {
    /// The keys of `--keyring` and `--usign-key`.
    pub fn load(keyring: Option<&Path>, usign_key: Option<&Path>) -> Result<Self, StreamsError> {
        let keyring = keyring
            .map(|path| fs::canonicalize(path).map_err(io("find the keyring", path)))
            .transpose()?;
        let usign = usign_key
            .map(|path| {
                let bytes = tree::read_limited(path, attendant_proto::usign::MAX_FILE_LEN)?;
                PublicKey::parse(&bytes).map_err(|source| StreamsError::UsignKey {
                    path: path.to_owned(),
                    source,
                })
            })
            .transpose()?;
        Ok(Self { keyring, usign })
    }
}

/// Reads the stream named by `arg` (a mirror root or an index file, see [`tree::locate`]), every
/// document checked against `trust` (see the module docs).
pub async fn read(arg: &Path, trust: &Trust) -> Result<Stream, StreamsError> {
    let (root, named) = tree::locate(arg);
    let pinned = tree::pin(&root);
    let (index_path, bytes) = document(&pinned(named), trust).await?;
    let index = parse_index(&bytes, &index_path.display().to_string())?;
    let mut products = Vec::new();
    for entry in tree::products_entries(&index) {
        let (path, bytes) = document(&pinned(root.join(&entry.path)), trust).await?;
        products.push(parse_products(&bytes, &path.display().to_string())?);
    }
    Ok(Stream {
        root,
        index: index_path,
        products,
    })
}

/// The checked bytes of the document named by `path` (with either suffix), and the file they
/// came from.
async fn document(path: &Path, trust: &Trust) -> Result<(PathBuf, Vec<u8>), StreamsError> {
    let (json, sjson) = variants(path);
    let detached = suffixed(&json, ".gpg");
    match (&trust.keyring, &trust.usign) {
        (None, None) => Err(StreamsError::NoTrust { path: json }),
        (Some(keyring), None) if sjson.exists() => {
            let body = Gpgv::new()?.cleartext(keyring, &sjson).await?;
            Ok((sjson, body))
        }
        (Some(keyring), None) => {
            let bytes = read_signed_json(&json, &detached, &sjson)?;
            Gpgv::new()?
                .detached(keyring, &json, &bytes, &detached)
                .await?;
            Ok((json, bytes))
        }
        (keyring, Some(public)) => {
            let signature_path = suffixed(&json, ".sig");
            let bytes = read_signed_json(&json, &signature_path, &sjson)?;
            check_usign(public, &json, &bytes, &signature_path)?;
            if let Some(keyring) = keyring {
                if !detached.exists() {
                    return Err(StreamsError::Unsigned {
                        document: json,
                        missing: format!("`{}`", detached.display()),
                    });
                }
                Gpgv::new()?
                    .detached(keyring, &json, &bytes, &detached)
                    .await?;
            }
            Ok((json, bytes))
        }
    }
}

/// `<name>.json` and `<name>.sjson` for a path ending in either (or in neither: then the path
/// itself is the `.json`).
fn variants(path: &Path) -> (PathBuf, PathBuf) {
    let text = path.as_os_str().to_string_lossy();
    let stem = text
        .strip_suffix(".sjson")
        .or_else(|| text.strip_suffix(".json"));
    match stem {
        Some(stem) => (
            PathBuf::from(format!("{stem}.json")),
            PathBuf::from(format!("{stem}.sjson")),
        ),
        None => (path.to_owned(), suffixed(path, ".sjson")),
    }
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut text = path.as_os_str().to_owned();
    text.push(suffix);
    PathBuf::from(text)
}

/// The bytes of `json`, refusing first when its signature `signature` is not there.
fn read_signed_json(json: &Path, signature: &Path, sjson: &Path) -> Result<Vec<u8>, StreamsError> {
    if !json.exists() && !sjson.exists() {
        return Err(StreamsError::NoIndex {
            path: json.to_owned(),
        });
    }
    if !signature.exists() {
        let missing = if signature.extension().is_some_and(|ext| ext == "gpg") {
            format!("`{}` or `{}`", sjson.display(), signature.display())
        } else {
            format!("`{}`", signature.display())
        };
        return Err(StreamsError::Unsigned {
            document: json.to_owned(),
            missing,
        });
    }
    tree::read_limited(json, super::format::MAX_DOCUMENT_LEN)
}

fn check_usign(
    public: &PublicKey,
    json: &Path,
    bytes: &[u8],
    signature_path: &Path,
) -> Result<(), StreamsError> {
    let signature = tree::read_limited(signature_path, attendant_proto::usign::MAX_FILE_LEN)?;
    Signature::parse(&signature)
        .and_then(|signature| public.verify(bytes, &signature))
        .map_err(|source| StreamsError::BadSignature {
            path: json.to_owned(),
            signature: Some(signature_path.to_owned()),
            reason: source.to_string(),
        })
}

/// A private directory for `gpgv` (its home, and where it reads and writes our copies), removed
/// when dropped.
struct Gpgv {
    dir: PathBuf,
}

impl Gpgv {
    fn new() -> Result<Self, StreamsError> {
        use std::os::unix::fs::DirBuilderExt;

        let dir =
            std::env::temp_dir().join(format!("attendant-gpgv-{}", crate::artifacts::nonce()));
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(io("create", &dir))?;
        Ok(Self { dir })
    }

    /// Checks the cleartext signature of `sjson`; returns the signed text.
    async fn cleartext(&self, keyring: &Path, sjson: &Path) -> Result<Vec<u8>, StreamsError> {
        let body = self.dir.join("body");
        let source = self.dir.join("signed");
        fs::write(
            &source,
            tree::read_limited(sjson, super::format::MAX_DOCUMENT_LEN)?,
        )
        .map_err(io("write", &source))?;
        let args = vec![
            "--output".to_owned(),
            body.display().to_string(),
            "--".to_owned(),
            source.display().to_string(),
        ];
        self.run(keyring, args, sjson, None).await?;
        tree::read_limited(&body, super::format::MAX_DOCUMENT_LEN)
    }

    /// Checks `bytes` (read from `json`) against the detached signature `signature`.
    async fn detached(
        &self,
        keyring: &Path,
        json: &Path,
        bytes: &[u8],
        signature: &Path,
    ) -> Result<(), StreamsError> {
        let data = self.dir.join("data");
        fs::write(&data, bytes).map_err(io("write", &data))?;
        let copy = self.dir.join("data.gpg");
        let signature_bytes = tree::read_limited(signature, MAX_DETACHED_SIGNATURE_LEN)?;
        fs::write(&copy, signature_bytes).map_err(io("write", &copy))?;
        let args = vec![
            "--".to_owned(),
            copy.display().to_string(),
            data.display().to_string(),
        ];
        self.run(keyring, args, json, Some(signature)).await
    }

    async fn run(
        &self,
        keyring: &Path,
        tail: Vec<String>,
        document: &Path,
        signature: Option<&Path>,
    ) -> Result<(), StreamsError> {
        let mut args = vec![
            "--homedir".to_owned(),
            self.dir.display().to_string(),
            "--keyring".to_owned(),
            keyring.display().to_string(),
        ];
        args.extend(tail);
        let mut invocation = Invocation::new("gpgv", args, &self.dir);
        invocation.timeout = GPGV_TIMEOUT;
        invocation.output_cap = GPGV_OUTPUT_CAP;
        let outcome = run(invocation)
            .await
            .map_err(|source| StreamsError::GpgvRun {
                path: document.to_owned(),
                source: Box::new(source),
            })?;
        if outcome.success() {
            return Ok(());
        }
        Err(StreamsError::BadSignature {
            path: document.to_owned(),
            signature: signature.map(Path::to_owned),
            reason: format!(
                "gpgv exited with status {}: {}",
                outcome
                    .status
                    .map_or_else(|| "none (killed)".to_owned(), |code| code.to_string()),
                attendant_proto::excerpt::excerpt_lines(&outcome.stderr, 400)
            ),
        })
    }
}

impl Drop for Gpgv {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_name_both_forms_of_a_document() {
        let (json, sjson) = variants(Path::new("/m/streams/v1/index.sjson"));
        assert_eq!(json, Path::new("/m/streams/v1/index.json"));
        assert_eq!(sjson, Path::new("/m/streams/v1/index.sjson"));
        let (json, sjson) = variants(Path::new("/m/streams/v1/a:b.json"));
        assert_eq!(json, Path::new("/m/streams/v1/a:b.json"));
        assert_eq!(sjson, Path::new("/m/streams/v1/a:b.sjson"));
        let (json, _) = variants(Path::new("/m/x"));
        assert_eq!(json, Path::new("/m/x"));
    }

    #[tokio::test]
    async fn refuses_without_a_key_and_names_a_missing_signature() {
        let dir = tempfile::tempdir().unwrap();
        let index = dir.path().join("streams/v1/index.json");
        fs::create_dir_all(index.parent().unwrap()).unwrap();
        fs::write(&index, br#"{"format":"index:1.0","index":{}}"#).unwrap();
        let error = read(&index, &Trust::default()).await.unwrap_err();
        assert!(matches!(error, StreamsError::NoTrust { .. }), "{error}");

        let secret = attendant_proto::usign::SecretKey::generate(
            [7; 32],
            attendant_proto::usign::Fingerprint([1; 8]),
            [0; 16],
            None,
        )
        .unwrap();
        let trust = Trust {
            keyring: None,
            usign: Some(secret.public_key()),
        };
        let error = read(&index, &trust).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "`{}` is not signed: there is no `{}.sig`",
                index.display(),
                index.display()
            )
        );
        fs::write(
            suffixed(&index, ".sig"),
            secret.sign(b"something else").to_file(),
        )
        .unwrap();
        let error = read(&index, &trust).await.unwrap_err();
        assert!(
            matches!(error, StreamsError::BadSignature { .. }),
            "{error}"
        );
        fs::write(
            suffixed(&index, ".sig"),
            secret.sign(&fs::read(&index).unwrap()).to_file(),
        )
        .unwrap();
        let stream = read(dir.path(), &trust).await.unwrap();
        assert!(stream.products.is_empty());
    }
}
