//! The content-addressed image pool shared by every channel: `<tree>/pool/<aa>/<sha256>-<name>`
//! with its usign signature `<…>.sig` beside it (`aa` = the first two hex digits of the SHA-256).
//!
//! [`Pool::add`] copies a file in (never a hard link: the job store's collector deletes its
//! files on its own schedule, and a link would tie the two lifetimes together), hashing it
//! while copying, signs the copy, and renames both into place, signature first: a file is
//! never visible without its signature. The same bytes under the same name are stored once,
//! whichever channels and builds refer to them. [`Pool::reap`] deletes files nothing refers to
//! any more, after a grace period (a router may be downloading one that a publication just
//! dropped).

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::artifacts::nonce;
use crate::atomic::{Existing, write_atomic};
use crate::signing::SigningError;

/// Largest file the pool takes, in bytes.
pub const MAX_POOL_FILE_BYTES: u64 = 4 << 30;

/// Longest file name kept in the pool, in bytes.
pub const MAX_POOL_NAME_LEN: usize = 200;

/// Why a file could not be added to, or removed from, the pool.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// A file operation failed.
    #[error("cannot {action} `{}`", path.display())]
    Io {
        /// What we were doing.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The name is not a plain file name.
    #[error(
        "pool file name `{name}` is not a plain file name of at most {MAX_POOL_NAME_LEN} bytes"
    )]
    Name {
        /// The name, truncated.
        name: String,
    },
    /// The file is larger than [`MAX_POOL_FILE_BYTES`].
    #[error("`{}` is larger than {MAX_POOL_FILE_BYTES} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// The signer failed.
    #[error("cannot sign `{}`", path.display())]
    Sign {
        /// The pool file.
        path: PathBuf,
        /// The signer's complaint.
        #[source]
        source: SigningError,
    },
}

/// A file in the pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolFile {
    /// SHA-256, lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// The path under the pool root, `<aa>/<sha256>-<name>`.
    pub relative: String,
}

/// What [`Pool::reap`] deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reaped {
    /// Pool paths deleted (with their signatures).
    pub deleted: Vec<String>,
    /// Unreferenced files kept because they are younger than the grace period.
    pub kept_young: usize,
}

/// The pool under a root directory.
#[derive(Debug, Clone)]
pub struct Pool {
    root: PathBuf,
}

impl Pool {
    /// The pool at `root` (usually `<channels.dir>/pool`); created on first use.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The pool path of a file with this digest and name.
    pub fn relative_path(sha256: &str, name: &str) -> String {
        let prefix = sha256.get(..2).unwrap_or("00");
        format!("{prefix}/{sha256}-{name}")
    }

    /// Copies `source` into the pool under `name`, signing the copy with `sign` (which returns
    /// the signature file's contents). An identical file already there is reused.
    pub fn add(
        &self,
        source: &Path,
        name: &str,
        sign: &dyn Fn(&Path) -> Result<String, SigningError>,
    ) -> Result<PoolFile, PoolError> {
        let plain = !name.is_empty()
            && name.len() <= MAX_POOL_NAME_LEN
            && !name.starts_with('.')
            && !name.contains(['/', '\\', '\0']);
        if !plain {
            return Err(PoolError::Name {
                name: name.chars().take(MAX_POOL_NAME_LEN).collect(),
            });
        }
        fs::create_dir_all(&self.root).map_err(|source| io_error("create", &self.root, source))?;
        let incoming = self.root.join(format!(".incoming-{}", nonce()));
        let copied = copy_hashing(source, &incoming);
        let (sha256, size) = match copied {
            Ok(done) => done,
            Err(error) => {
                let _ = fs::remove_file(&incoming);
                return Err(error);
            }
        };
        let relative = Self::relative_path(&sha256, name);
        let target = self.root.join(&relative);
        let placed = self.place(&incoming, &target, sign);
        let _ = fs::remove_file(&incoming);
        placed?;
        Ok(PoolFile {
            sha256,
            size,
            relative,
        })
    }

    /// Deletes pool files whose relative path is not in `referenced` and whose modification
    /// time is older than `grace` before `now`, with their signatures.
    pub fn reap(
        &self,
        referenced: &HashSet<String>,
        grace: Duration,
        now: SystemTime,
    ) -> Result<Reaped, PoolError> {
        let mut reaped = Reaped::default();
        let prefixes = match fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(reaped),
            Err(source) => return Err(io_error("list", &self.root, source)),
        };
        for prefix in prefixes {
            let prefix = prefix.map_err(|source| io_error("list", &self.root, source))?;
            let prefix_name = prefix.file_name().to_string_lossy().into_owned();
            if prefix_name.starts_with('.') || !prefix.path().is_dir() {
                continue;
            }
            let dir = prefix.path();
            let files = fs::read_dir(&dir).map_err(|source| io_error("list", &dir, source))?;
            for file in files {
                let file = file.map_err(|source| io_error("list", &dir, source))?;
                let name = file.file_name().to_string_lossy().into_owned();
                if name.ends_with(".sig") || name.starts_with('.') {
                    continue;
                }
                let relative = format!("{prefix_name}/{name}");
                if referenced.contains(&relative) {
                    continue;
                }
                let path = file.path();
                let modified = file
                    .metadata()
                    .and_then(|metadata| metadata.modified())
                    .map_err(|source| io_error("inspect", &path, source))?;
                if now.duration_since(modified).unwrap_or_default() < grace {
                    reaped.kept_young += 1;
                    continue;
                }
                // The signature goes last: a file is never left without it.
                remove_if_present(&path)?;
                remove_if_present(&signature_path(&path))?;
                reaped.deleted.push(relative);
            }
        }
        reaped.deleted.sort();
        Ok(reaped)
    }

    fn place(
        &self,
        incoming: &Path,
        target: &Path,
        sign: &dyn Fn(&Path) -> Result<String, SigningError>,
    ) -> Result<(), PoolError> {
        let signature = signature_path(target);
        if target.is_file() && signature.is_file() {
            return Ok(());
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(|source| io_error("create", parent, source))?;
        }
        let text = sign(incoming).map_err(|source| PoolError::Sign {
            path: target.to_owned(),
            source,
        })?;
        write_atomic(&signature, text.as_bytes(), Existing::Replace, false)
            .map_err(|source| io_error("write", &signature, source))?;
        fs::rename(incoming, target).map_err(|source| io_error("move into", target, source))
    }
}

/// `<file>.sig`.
pub fn signature_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".sig");
    PathBuf::from(name)
}

/// Copies `source` to `target` (created new), hashing on the way and syncing at the end.
fn copy_hashing(source: &Path, target: &Path) -> Result<(String, u64), PoolError> {
    let mut input = fs::File::open(source).map_err(|error| io_error("open", source, error))?;
    let mut output = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(target)
        .map_err(|error| io_error("create", target, error))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    let mut size: u64 = 0;
    loop {
        let read = input
            .read(&mut buffer)
            .map_err(|error| io_error("read", source, error))?;
        let Some(chunk) = buffer.get(..read).filter(|chunk| !chunk.is_empty()) else {
            break;
        };
        size = size.saturating_add(read as u64);
        if size > MAX_POOL_FILE_BYTES {
            return Err(PoolError::TooLarge {
                path: source.to_owned(),
            });
        }
        hasher.update(chunk);
        output
            .write_all(chunk)
            .map_err(|error| io_error("write", target, error))?;
    }
    output
        .sync_all()
        .map_err(|error| io_error("sync", target, error))?;
    Ok((hex::encode(hasher.finalize()), size))
}

fn remove_if_present(path: &Path) -> Result<(), PoolError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(io_error("delete", path, source)),
    }
}

fn io_error(action: &'static str, path: &Path, source: io::Error) -> PoolError {
    PoolError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_sign(path: &Path) -> Result<String, SigningError> {
        let bytes = fs::read(path).map_err(|source| SigningError::Io {
            action: "read",
            path: path.to_owned(),
            source,
        })?;
        Ok(format!("signed {}\n", bytes.len()))
    }

    #[test]
    fn adds_by_content_with_a_signature() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("image.bin");
        fs::write(&source, b"firmware").unwrap();
        let pool = Pool::new(dir.path().join("pool"));
        let file = pool.add(&source, "image.bin", &fake_sign).unwrap();
        let digest = hex::encode(Sha256::digest(b"firmware"));
        assert_eq!(file.sha256, digest);
        assert_eq!(file.size, 8);
        assert_eq!(
            file.relative,
            format!("{}/{digest}-image.bin", &digest[..2])
        );
        let stored = pool.root().join(&file.relative);
        assert_eq!(fs::read(&stored).unwrap(), b"firmware");
        assert_eq!(
            fs::read_to_string(signature_path(&stored)).unwrap(),
            "signed 8\n"
        );
        // A copy, not a link: the source can go.
        fs::remove_file(&source).unwrap();
        assert!(stored.is_file());
        // No temporary file is left behind.
        let leftovers: Vec<_> = fs::read_dir(pool.root())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn identical_files_are_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fs::write(&a, b"same").unwrap();
        fs::write(&b, b"same").unwrap();
        let pool = Pool::new(dir.path().join("pool"));
        let first = pool.add(&a, "x.bin", &fake_sign).unwrap();
        let second = pool.add(&b, "x.bin", &fake_sign).unwrap();
        assert_eq!(first, second);
    }

    #[test]
    fn refuses_names_that_leave_the_pool_and_failed_signatures() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("a");
        fs::write(&source, b"x").unwrap();
        let pool = Pool::new(dir.path().join("pool"));
        for name in ["", "../x", "a/b", ".hidden"] {
            assert!(
                matches!(
                    pool.add(&source, name, &fake_sign),
                    Err(PoolError::Name { .. })
                ),
                "{name}"
            );
        }
        let failing = |path: &Path| -> Result<String, SigningError> {
            Err(SigningError::TooLarge {
                path: path.to_owned(),
            })
        };
        assert!(matches!(
            pool.add(&source, "a.bin", &failing),
            Err(PoolError::Sign { .. })
        ));
        // Neither the file nor a temporary copy stays without a signature.
        let digest = hex::encode(Sha256::digest(b"x"));
        assert!(
            !pool
                .root()
                .join(Pool::relative_path(&digest, "a.bin"))
                .exists()
        );
    }

    #[test]
    fn reap_deletes_only_unreferenced_files_past_the_grace() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::new(dir.path().join("pool"));
        let mut files = Vec::new();
        for content in [b"one".as_slice(), b"two"] {
            let source = dir.path().join("src");
            fs::write(&source, content).unwrap();
            files.push(pool.add(&source, "f.bin", &fake_sign).unwrap());
        }
        let referenced: HashSet<String> = [files[0].relative.clone()].into();
        let now = SystemTime::now();
        let young = pool
            .reap(&referenced, Duration::from_secs(3600), now)
            .unwrap();
        assert_eq!(young.deleted.len(), 0);
        assert_eq!(young.kept_young, 1);
        let later = now + Duration::from_secs(7200);
        let reaped = pool
            .reap(&referenced, Duration::from_secs(3600), later)
            .unwrap();
        assert_eq!(reaped.deleted, vec![files[1].relative.clone()]);
        assert!(pool.root().join(&files[0].relative).is_file());
        assert!(!pool.root().join(&files[1].relative).exists());
        assert!(!signature_path(&pool.root().join(&files[1].relative)).exists());
    }
}
