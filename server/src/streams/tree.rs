//! A stream on disk: reading any simplestreams mirror, publishing ours atomically and signed,
//! copying data files verified, walking a data directory.
//!
//! ```text
//! <dir>/streams                 -> .streams/<serial>     (switched by one rename)
//! <dir>/.streams/<serial>/v1/index.json (.sig, .sjson, .json.gpg)
//! <dir>/.streams/<serial>/v1/<content_id>.json (.sig, .sjson, .json.gpg)
//! <dir>/data/<aa>/<sha256>-<name>                          (or `data -> ../data`, a shared pool)
//! ```
//!
//! Stock clients read `<dir>/streams/v1/index.json` (or `index.sjson`) and follow the link
//! without knowing it. Every publication writes a complete new `v1/` under the next serial, each
//! file synced, then switches the link with one rename (`crate::atomic::replace_symlink`), so a
//! process killed at any moment leaves the old tree or the new one, never a products file whose
//! signature belongs to another, and never an index naming a file that is not there yet (data
//! files are copied before the switch). The previous serial is kept for readers in the middle of
//! a fetch; older ones and unfinished ones are removed by the next publication.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use attendant_proto::usign::SecretKey;
use sha2::{Digest, Sha256};

use super::error::{StreamsError, io};
use super::format::{
    INDEX_PATH, MAX_DOCUMENT_LEN, Products, encode, index_of, parse_index, parse_products, rfc2822,
};
use crate::artifacts::nonce;
use crate::atomic::{Existing, replace_symlink, sync_directory, write_atomic};
use crate::process::{Invocation, run};

/// The link stock clients read through.
const STREAMS_LINK: &str = "streams";
/// The publications, one directory per serial.
pub const PUBLICATIONS: &str = ".streams";
/// Largest data file copied, in bytes.
pub const MAX_DATA_FILE_BYTES: u64 = crate::channels::pool::MAX_POOL_FILE_BYTES;
/// Time limit of one `gpg` signature.
const GPG_TIMEOUT: Duration = Duration::from_secs(60);
/// Read size while hashing and copying.
const CHUNK: usize = 256 * 1024;
/// The first line of an OpenPGP cleartext-signed message (RFC 4880 §7).
const SIGNED_HEADER: &str = "-----BEGIN PGP SIGNED MESSAGE-----";
/// Where its signature starts.
const SIGNATURE_HEADER: &str = "-----BEGIN PGP SIGNATURE-----";

/// A stream read from disk: its mirror root and its products files.
#[derive(Debug, Clone)]
pub struct Stream {
    /// The directory every item `path` is relative to.
    pub root: PathBuf,
    /// The index read.
    pub index: PathBuf,
    /// The products files the index names, in index order.
    pub products: Vec<Products>,
}

/// Who signs published metadata.
#[derive(Debug, Clone, Default)]
pub struct Signer {
    /// usign key: a detached `<file>.json.sig` for each `.json`.
    pub usign: Option<SecretKey>,
    /// GPG key: a cleartext-signed `<file>.sjson` and a detached `<file>.json.gpg`.
    pub gpg: Option<GpgKey>,
}

/// A key in a GPG home.
#[derive(Debug, Clone)]
pub struct GpgKey {
    /// Key id, fingerprint or user id (`gpg --local-user`).
    pub key: String,
    /// The GPG home directory (`gpg --homedir`).
    pub home: PathBuf,
}

impl Signer {
    /// The signer configured for streams: the usign key of `[streams] signing_key`, else
    /// `[channels] signing_key`, else the top-level `signing_key`; the GPG key of
    /// `[streams] gpg_key`. With `no_sign`, nobody (and no key is required).
    pub fn from_config(
        config: &crate::config::Config,
        no_sign: bool,
    ) -> Result<Self, StreamsError> {
        if no_sign {
            tracing::warn!("publishing the stream unsigned (--no-sign)");
            return Ok(Self::default());
        }
        let key_path = config
            .streams
            .signing_key
            .as_ref()
            .or(config.channels.signing_key.as_ref())
            .or(config.signing_key.as_ref())
            .ok_or(StreamsError::NoKey)?;
        let usign = Some(crate::signing::load_secret_key(key_path)?);
        let gpg = config.streams.gpg_key.as_ref().map(|key| GpgKey {
            key: key.clone(),
            home: config
                .streams
                .gpg_home
                .clone()
                .unwrap_or_else(default_gpg_home),
        });
        Ok(Self { usign, gpg })
    }
}

/// `$GNUPGHOME`, else `$HOME/.gnupg`: where `gpg` itself looks (children get a clean environment).
fn default_gpg_home() -> PathBuf {
    if let Some(home) = std::env::var_os("GNUPGHOME") {
        return PathBuf::from(home);
    }
    std::env::var_os("HOME")
        .map_or_else(|| PathBuf::from("."), PathBuf::from)
        .join(".gnupg")
}

/// The index of the mirror named by `arg`: a mirror root (its `streams/v1/index.json`, or
/// `index.sjson` when only that exists) or an index file (`…/streams/v1/index.json`).
pub fn locate(arg: &Path) -> (PathBuf, PathBuf) {
    if arg.is_dir() {
        let json = arg.join(INDEX_PATH);
        let index = if json.exists() {
            json
        } else {
            arg.join("streams/v1/index.sjson")
        };
        return (arg.to_owned(), index);
    }
    // `<root>/streams/v1/<file>`: every path in the stream is relative to `<root>`.
    let root = arg
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .map_or_else(|| PathBuf::from("."), Path::to_owned);
    let root = if root.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        root
    };
    (root, arg.to_owned())
}

/// Reads the stream whose index is named by `arg` (see [`locate`]).
pub fn read(arg: &Path) -> Result<Stream, StreamsError> {
    let (root, index_path) = locate(arg);
    if !index_path.exists() {
        return Err(StreamsError::NoIndex { path: index_path });
    }
    let index = parse_index(
        &read_document(&index_path)?,
        &index_path.display().to_string(),
    )?;
    let mut products = Vec::new();
    for entry in index.index.values() {
        let is_products = entry
            .attributes
            .get("format")
            .and_then(serde_json::Value::as_str)
            .is_none_or(|format| format == super::format::PRODUCTS_FORMAT);
        if !is_products {
            continue;
        }
        let path = root.join(&entry.path);
        let what = path.display().to_string();
        products.push(parse_products(&read_document(&path)?, &what)?);
    }
    Ok(Stream {
        root,
        index: index_path,
        products,
    })
}

/// The stream we publish in `dir`, or an empty one when there is none yet.
pub fn read_published(dir: &Path) -> Result<Vec<Products>, StreamsError> {
    check_ours(dir)?;
    if !dir.join(INDEX_PATH).exists() {
        return Ok(Vec::new());
    }
    Ok(read(&dir.join(INDEX_PATH))?.products)
}

/// Publishes `next` in `dir` unless it equals `current` but for `updated`. Returns the new
/// serial, or `None` when nothing changed.
pub async fn publish(
    dir: &Path,
    current: &[Products],
    next: Vec<Products>,
    signer: &Signer,
    now: i64,
) -> Result<Option<u64>, StreamsError> {
    check_ours(dir)?;
    let previous: BTreeMap<&str, &Products> = current
        .iter()
        .map(|products| (products.content_id.as_str(), products))
        .collect();
    let unchanged = next.len() == current.len()
        && next.iter().all(|products| {
            previous
                .get(products.content_id.as_str())
                .is_some_and(|old| old.without_updated() == products.without_updated())
        });
    if unchanged && dir.join(INDEX_PATH).exists() {
        return Ok(None);
    }
    let updated = rfc2822(now);
    let mut next = next;
    for products in &mut next {
        let old = previous.get(products.content_id.as_str());
        let stamp = match old {
            Some(old) if old.without_updated() == products.without_updated() => old
                .attributes
                .get("updated")
                .cloned()
                .unwrap_or_else(|| updated.clone().into()),
            _ => updated.clone().into(),
        };
        products.attributes.insert("updated".to_owned(), stamp);
    }

    let serial = current_serial(dir)?.map_or(1, |serial| serial + 1);
    let publications = dir.join(PUBLICATIONS);
    let v1 = publications.join(serial.to_string()).join("v1");
    // A directory of this serial is what a killed publication left: never referenced.
    let _ = fs::remove_dir_all(publications.join(serial.to_string()));
    fs::create_dir_all(&v1).map_err(io("create", &v1))?;
    for products in &next {
        let name = format!("{}.json", products.content_id);
        write_signed(&v1, &name, &encode(products), signer, None).await?;
    }
    let index = index_of(&next, &updated);
    let mut signed_index = index.clone();
    for entry in signed_index.index.values_mut() {
        if let Some(stem) = entry.path.strip_suffix(".json") {
            entry.path = format!("{stem}.sjson");
        }
    }
    write_signed(
        &v1,
        "index.json",
        &encode(&index),
        signer,
        Some(&encode(&signed_index)),
    )
    .await?;
    sync_directory(&v1).map_err(io("sync", &v1))?;
    sync_directory(&publications).map_err(io("sync", &publications))?;
    let link = dir.join(STREAMS_LINK);
    replace_symlink(&link, &Path::new(PUBLICATIONS).join(serial.to_string()))
        .map_err(io("switch", &link))?;
    remove_old_publications(&publications, serial);
    Ok(Some(serial))
}

/// Copies `source` to `target` (creating directories), hashing on the way; the copy appears
/// under its name only once its size and SHA-256 are those given. An existing `target` of the
/// right size is kept (data paths are content-addressed).
pub fn copy_verified(
    source: &Path,
    target: &Path,
    sha256: &str,
    size: u64,
) -> Result<bool, StreamsError> {
    if fs::metadata(target).is_ok_and(|meta| meta.is_file() && meta.len() == size) {
        return Ok(false);
    }
    if size > MAX_DATA_FILE_BYTES {
        return Err(StreamsError::Mismatch {
            path: source.to_owned(),
            what: "size",
            expected: format!("at most {MAX_DATA_FILE_BYTES}"),
            found: size.to_string(),
        });
    }
    let parent = target.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(io("create", parent))?;
    let mut input = fs::File::open(source).map_err(io("open", source))?;
    let name = target
        .file_name()
        .map_or_else(String::new, |name| name.to_string_lossy().into_owned());
    let temporary = parent.join(format!(".{name}.tmp-{}", nonce()));
    let copied = (|| {
        let mut output = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temporary)
            .map_err(io("create", &temporary))?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; CHUNK];
        let mut total: u64 = 0;
        loop {
            let read = input.read(&mut buffer).map_err(io("read", source))?;
            let Some(chunk) = buffer.get(..read) else {
                break;
            };
            if chunk.is_empty() {
                break;
            }
            total = total.saturating_add(read as u64);
            if total > size {
                break;
            }
            hasher.update(chunk);
            output.write_all(chunk).map_err(io("write", &temporary))?;
        }
        let found = hex::encode(hasher.finalize());
        if total != size {
            return Err(StreamsError::Mismatch {
                path: source.to_owned(),
                what: "size",
                expected: size.to_string(),
                found: total.to_string(),
            });
        }
        if found != sha256 {
            return Err(StreamsError::Mismatch {
                path: source.to_owned(),
                what: "sha256",
                expected: sha256.to_owned(),
                found,
            });
        }
        output.sync_all().map_err(io("sync", &temporary))?;
        fs::rename(&temporary, target).map_err(io("rename", target))?;
        sync_directory(parent).map_err(io("sync", parent))
    })();
    if copied.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    copied.map(|()| true)
}

/// Every file under `data_dir`, as `/`-separated relative paths, skipping the metadata
/// (`streams/`, `.streams/`) and the stock tools' bookkeeping (`.data/`). Symbolic links to
/// directories are not followed.
pub fn walk(data_dir: &Path) -> Result<Vec<String>, StreamsError> {
    let mut files = Vec::new();
    let mut pending = vec![(data_dir.to_owned(), String::new())];
    while let Some((dir, prefix)) = pending.pop() {
        let entries = fs::read_dir(&dir).map_err(io("list", &dir))?;
        for entry in entries {
            let entry = entry.map_err(io("list", &dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if prefix.is_empty() && matches!(name.as_str(), STREAMS_LINK | PUBLICATIONS | ".data") {
                continue;
            }
            let relative = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let kind = entry.file_type().map_err(io("inspect", &entry.path()))?;
            if kind.is_dir() {
                pending.push((entry.path(), relative));
            } else if kind.is_file() {
                files.push(relative);
            }
        }
    }
    files.sort_unstable();
    Ok(files)
}

/// The files under `data_dir` that the streams of `indexes` reference, relative to `data_dir`
/// (item paths are resolved through links, so streams that share a pool through `data ->
/// ../data` are matched).
pub fn referenced(data_dir: &Path, indexes: &[PathBuf]) -> Result<BTreeSet<String>, StreamsError> {
    let data_dir = fs::canonicalize(data_dir).map_err(io("resolve", data_dir))?;
    let mut parents: HashMap<PathBuf, Option<PathBuf>> = HashMap::new();
    let mut referenced = BTreeSet::new();
    for index in indexes {
        let stream = read(index)?;
        for products in &stream.products {
            for (_, _, _, item) in products.items() {
                let Some(path) = item.path() else {
                    continue;
                };
                let full = stream.root.join(path);
                let (Some(parent), Some(name)) = (full.parent(), full.file_name()) else {
                    continue;
                };
                // Canonicalising each parent once: 100,000 items live in a few hundred
                // directories.
                let resolved = parents
                    .entry(parent.to_owned())
                    .or_insert_with(|| fs::canonicalize(parent).ok());
                let Some(resolved) = resolved else {
                    continue;
                };
                if let Ok(relative) = resolved.join(name).strip_prefix(&data_dir) {
                    referenced.insert(relative.to_string_lossy().replace('\\', "/"));
                }
            }
        }
    }
    Ok(referenced)
}

/// Reads a metadata file, at most [`MAX_DOCUMENT_LEN`] bytes; a cleartext-signed `.sjson` gives
/// its body (the signature is checked by the stock tools' `gpgv`, not here).
pub fn read_document(path: &Path) -> Result<Vec<u8>, StreamsError> {
    let file = fs::File::open(path).map_err(io("read", path))?;
    let mut bytes = Vec::new();
    file.take(MAX_DOCUMENT_LEN as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io("read", path))?;
    if bytes.len() > MAX_DOCUMENT_LEN {
        return Err(super::format::FormatError::TooLarge {
            what: path.display().to_string(),
        }
        .into());
    }
    if bytes.starts_with(SIGNED_HEADER.as_bytes()) {
        return Ok(cleartext_body(&String::from_utf8_lossy(&bytes)).into_bytes());
    }
    Ok(bytes)
}

/// The message of an RFC 4880 cleartext-signed text: after the armour headers and the blank
/// line, up to the signature, with dash-escaping undone.
fn cleartext_body(text: &str) -> String {
    let mut lines = text
        .lines()
        .skip(1)
        .skip_while(|line| !line.is_empty())
        .skip(1);
    let mut body = String::new();
    for line in lines.by_ref() {
        if line == SIGNATURE_HEADER {
            break;
        }
        body.push_str(line.strip_prefix("- ").unwrap_or(line));
        body.push('\n');
    }
    body
}

/// The serial `<dir>/streams` points at, `None` when there is no link yet.
fn current_serial(dir: &Path) -> Result<Option<u64>, StreamsError> {
    let link = dir.join(STREAMS_LINK);
    match fs::read_link(&link) {
        Ok(target) => Ok(target
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.parse().ok())),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StreamsError::Io {
            action: "read the link",
            path: link,
            source,
        }),
    }
}

/// Refuses a `<dir>/streams` that is a plain directory (written by another tool).
fn check_ours(dir: &Path) -> Result<(), StreamsError> {
    let link = dir.join(STREAMS_LINK);
    match fs::symlink_metadata(&link) {
        Ok(meta) if !meta.file_type().is_symlink() => {
            Err(StreamsError::NotPublished { path: link })
        }
        _ => Ok(()),
    }
}

async fn write_signed(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    signer: &Signer,
    cleartext: Option<&[u8]>,
) -> Result<(), StreamsError> {
    let path = dir.join(name);
    write_atomic(&path, bytes, Existing::Replace, false).map_err(io("write", &path))?;
    if let Some(key) = &signer.usign {
        let signature = dir.join(format!("{name}.sig"));
        write_atomic(
            &signature,
            key.sign(bytes).to_file().as_bytes(),
            Existing::Replace,
            false,
        )
        .map_err(io("write", &signature))?;
    }
    let Some(gpg) = &signer.gpg else {
        return Ok(());
    };
    let detached = dir.join(format!("{name}.gpg"));
    gpg_sign(gpg, dir, &path, &detached, &["--armor", "--detach-sign"]).await?;
    let stem = name.strip_suffix(".json").unwrap_or(name);
    let sjson = dir.join(format!("{stem}.sjson"));
    // The signed index names the `.sjson` products files (what the stock tools do), so it is
    // signed from its own text.
    let source = match cleartext {
        Some(text) => {
            let source = dir.join(format!(".{stem}.sjson-source"));
            write_atomic(&source, text, Existing::Replace, false).map_err(io("write", &source))?;
            source
        }
        None => path.clone(),
    };
    gpg_sign(gpg, dir, &source, &sjson, &["--clearsign"]).await?;
    if cleartext.is_some() {
        let _ = fs::remove_file(&source);
    }
    Ok(())
}

async fn gpg_sign(
    key: &GpgKey,
    dir: &Path,
    input: &Path,
    output: &Path,
    mode: &[&str],
) -> Result<(), StreamsError> {
    // gpg runs in `dir`: names relative to it.
    let name = |path: &Path| path.strip_prefix(dir).unwrap_or(path).display().to_string();
    let mut args: Vec<String> = vec![
        "--batch".into(),
        "--yes".into(),
        "--homedir".into(),
        key.home.display().to_string(),
        "--local-user".into(),
        key.key.clone(),
        "--output".into(),
        name(output),
    ];
    args.extend(mode.iter().map(|arg| (*arg).to_owned()));
    args.push(name(input));
    let mut invocation = Invocation::new("gpg", args, dir);
    invocation.timeout = GPG_TIMEOUT;
    invocation.output_cap = 64 * 1024;
    let outcome = run(invocation)
        .await
        .map_err(|source| StreamsError::GpgRun {
            path: input.to_owned(),
            source: Box::new(source),
        })?;
    if !outcome.success() {
        return Err(StreamsError::Gpg {
            path: input.to_owned(),
            status: outcome.status,
            stderr: attendant_proto::excerpt::excerpt_lines(&outcome.stderr, 400),
        });
    }
    fs::File::open(output)
        .and_then(|file| file.sync_all())
        .map_err(io("sync", output))
}

/// Removes publications other than `serial` and the one before it (kept for readers in the
/// middle of a fetch), including unfinished ones. Failures only leave files behind.
fn remove_old_publications(publications: &Path, serial: u64) {
    let Ok(entries) = fs::read_dir(publications) else {
        return;
    };
    for entry in entries.flatten() {
        let keep = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u64>().ok())
            .is_some_and(|n| n == serial || n + 1 == serial);
        if !keep {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleartext_body_undoes_dash_escaping() {
        let text = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n{\n- -x\n}\n-----BEGIN PGP SIGNATURE-----\nabc\n-----END PGP SIGNATURE-----\n";
        assert_eq!(cleartext_body(text), "{\n-x\n}\n");
    }

    #[test]
    fn locate_finds_the_mirror_root_of_an_index() {
        let (root, index) = locate(Path::new("/m/streams/v1/index.json"));
        assert_eq!(root, Path::new("/m"));
        assert_eq!(index, Path::new("/m/streams/v1/index.json"));
        let (root, _) = locate(Path::new("streams/v1/index.json"));
        assert_eq!(root, Path::new("."));
    }

    #[test]
    fn copy_verified_refuses_a_wrong_checksum_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("src");
        fs::write(&source, b"hello").unwrap();
        let target = dir.path().join("out/a/file");
        let error = copy_verified(&source, &target, &"0".repeat(64), 5).unwrap_err();
        assert!(
            matches!(error, StreamsError::Mismatch { what: "sha256", .. }),
            "{error}"
        );
        assert_eq!(fs::read_dir(dir.path().join("out/a")).unwrap().count(), 0);
        let sha = hex::encode(Sha256::digest(b"hello"));
        assert!(copy_verified(&source, &target, &sha, 5).unwrap());
        assert!(!copy_verified(&source, &target, &sha, 5).unwrap(), "kept");
        let error = copy_verified(&source, &dir.path().join("x"), &sha, 4).unwrap_err();
        assert!(
            matches!(error, StreamsError::Mismatch { what: "size", .. }),
            "{error}"
        );
    }
}
