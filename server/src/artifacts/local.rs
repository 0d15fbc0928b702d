//! The local backend: one directory per job under `store_dir`, published by rename.
//!
//! Layout: `<store>/<request_hash>/<file>` — `bin_dir` always equals the request hash. A build
//! is moved in whole: its output directory is renamed to `<store>/.incoming-<hash>-<nonce>`
//! (copied first if the work directory is on another file system) and then renamed into place,
//! so a reader sees either no directory or a complete one. Names starting with `.` are never
//! served and are removed by the collector after the orphan grace period.
//!
//! No symbolic link ever serves a file (issue 20): build output holding a link is refused
//! before it is published ([`check_output`]), and `/store/` opens every path component with
//! `O_NOFOLLOW` ([`open_beneath`]), so a link placed in the store by other means is not
//! followed either.

use std::io;
use std::path::{Path, PathBuf};

use rustix::fs::{CWD, Mode, OFlags, openat};

use super::{ArtifactError, Entry, plain_components};

/// Deepest directory nesting accepted in build output (`BIN_DIR` is flat, with at most a
/// `packages/` or `extra/` level below).
pub const MAX_OUTPUT_DEPTH: usize = 8;

/// Opens the regular file at `relative` (plain names only) under `root` without following any
/// symbolic link below `root`: each directory and the file itself are opened with `O_NOFOLLOW`
/// relative to the one before, so a link placed anywhere in the store (by a build, by hand)
/// cannot lead out of it, and neither can a directory swapped for a link between the check and
/// the open. `None` for anything else: missing, a link, a directory, a device. `root` itself is
/// the operator's choice and may be a link. Also used for the channel pool under
/// `/channels/pool/`.
pub(crate) fn open_beneath(root: &Path, relative: &str) -> Option<std::fs::File> {
    let components = plain_components(relative)?;
    let (name, directories) = components.split_last()?;
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY;
    let mut dir = openat(CWD, root, flags | OFlags::DIRECTORY, Mode::empty()).ok()?;
    for component in directories {
        dir = openat(&dir, *component, flags | OFlags::DIRECTORY, Mode::empty()).ok()?;
    }
    let file = std::fs::File::from(openat(&dir, *name, flags, Mode::empty()).ok()?);
    file.metadata()
        .is_ok_and(|metadata| metadata.is_file())
        .then_some(file)
}

/// Refuses build output that holds anything but regular files and directories (a symbolic
/// link, a device, a FIFO), so that publishing it can never put a link into the store. The
/// real ImageBuilder writes plain files into `BIN_DIR`; a link there is a broken or hostile
/// ImageBuilder, and copying its target instead would publish whatever it points at.
pub fn check_output(dir: &Path) -> Result<(), ArtifactError> {
    check_tree(dir, 0)
}

fn check_tree(dir: &Path, depth: usize) -> Result<(), ArtifactError> {
    if depth > MAX_OUTPUT_DEPTH {
        return Err(ArtifactError::NotRegular {
            path: dir.to_owned(),
        });
    }
    for entry in std::fs::read_dir(dir).map_err(io_error("list", dir))? {
        let entry = entry.map_err(io_error("list", dir))?;
        let path = entry.path();
        // `file_type` does not follow links: a link is reported as a link.
        let kind = entry.file_type().map_err(io_error("inspect", &path))?;
        if kind.is_dir() {
            check_tree(&path, depth.saturating_add(1))?;
        } else if !kind.is_file() {
            return Err(ArtifactError::NotRegular { path });
        }
    }
    Ok(())
}

/// Deletes a directory tree; `Ok(false)` if it did not exist.
pub(crate) async fn remove_tree(path: PathBuf) -> Result<bool, ArtifactError> {
    match tokio::fs::remove_dir_all(&path).await {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(ArtifactError::Io {
            action: "delete",
            path,
            source,
        }),
    }
}

pub(super) fn publish_blocking(
    root: &Path,
    output: &Path,
    hash: &str,
) -> Result<(), ArtifactError> {
    check_output(output)?;
    let nonce = super::nonce();
    let staging = root.join(format!(".incoming-{hash}-{nonce}"));
    if std::fs::rename(output, &staging).is_err() {
        // Different file systems (or a rename refused): copy, then drop the original.
        copy_tree(output, &staging)?;
        std::fs::remove_dir_all(output).map_err(io_error("delete", output))?;
    }
    let target = root.join(hash);
    if target.exists() {
        let old = root.join(format!(".old-{hash}-{nonce}"));
        std::fs::rename(&target, &old).map_err(io_error("move aside", &target))?;
        std::fs::remove_dir_all(&old).map_err(io_error("delete", &old))?;
    }
    std::fs::rename(&staging, &target).map_err(io_error("move into place", &staging))?;
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), ArtifactError> {
    std::fs::create_dir(to).map_err(io_error("create", to))?;
    for entry in std::fs::read_dir(from).map_err(io_error("list", from))? {
        let entry = entry.map_err(io_error("list", from))?;
        let source = entry.path();
        let dest = to.join(entry.file_name());
        let kind = entry.file_type().map_err(io_error("inspect", &source))?;
        if kind.is_dir() {
            copy_tree(&source, &dest)?;
        } else if kind.is_file() {
            std::fs::copy(&source, &dest).map_err(io_error("copy", &source))?;
        } else {
            return Err(ArtifactError::NotRegular { path: source });
        }
    }
    Ok(())
}

/// Wraps an I/O error on `path` while doing `action`.
pub(super) fn io_error(
    action: &'static str,
    path: &Path,
) -> impl FnOnce(io::Error) -> ArtifactError {
    let path = path.to_owned();
    move |source| ArtifactError::Io {
        action,
        path,
        source,
    }
}

/// The directories directly under `root`, with their modification times: the entries the
/// collector looks at.
pub(super) async fn entries(root: &Path) -> Result<Vec<Entry>, ArtifactError> {
    let mut entries = Vec::new();
    let mut dir = tokio::fs::read_dir(root)
        .await
        .map_err(io_error("list", root))?;
    while let Some(entry) = dir.next_entry().await.map_err(io_error("list", root))? {
        let path = entry.path();
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let metadata = tokio::fs::symlink_metadata(&path)
            .await
            .map_err(io_error("inspect", &path))?;
        if !metadata.is_dir() {
            continue;
        }
        let modified = metadata.modified().map_err(io_error("inspect", &path))?;
        entries.push(Entry {
            name,
            location: path,
            modified,
            complete: true,
        });
    }
    Ok(entries)
}

/// Every file below `dir`, sorted; none if `dir` does not exist. Symbolic links are listed,
/// never walked.
pub(super) async fn files_under(dir: &Path) -> Result<Vec<PathBuf>, ArtifactError> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(current) = pending.pop() {
        let mut entries = match tokio::fs::read_dir(&current).await {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(ArtifactError::Io {
                    action: "list",
                    path: current,
                    source,
                });
            }
        };
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(io_error("list", &current))?
        {
            let path = entry.path();
            match entry.file_type().await {
                Ok(kind) if kind.is_dir() => pending.push(path),
                _ => files.push(path),
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Bytes of the regular files under `dir`, `depth` levels deep (the store is `<hash>/<file>`);
/// unreadable entries count as empty.
pub(super) fn tree_bytes(dir: &Path, depth: u32) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_file() => entry.metadata().map_or(0, |meta| meta.len()),
            Ok(kind) if kind.is_dir() && depth > 1 => tree_bytes(&entry.path(), depth - 1),
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use attendant_proto::api::RequestHash;

    use super::*;
    use crate::artifacts::Artifacts;

    #[test]
    fn resolves_only_plain_paths() {
        let artifacts = Artifacts::local(PathBuf::from("/srv/store"));
        assert_eq!(
            artifacts.resolve("abc/openwrt.img"),
            Some(PathBuf::from("/srv/store/abc/openwrt.img"))
        );
        for bad in [
            "../etc/passwd",
            "abc/../../x",
            "/etc/passwd",
            "abc//x",
            ".incoming-x/y",
            "abc/.hidden",
            "",
            "a\\b",
        ] {
            assert_eq!(artifacts.resolve(bad), None, "{bad}");
        }
    }

    /// Issue 20, item 4: build output holding a symbolic link (to a file outside, or to a
    /// directory) is refused, on the rename path and on the copy path alike; nothing reaches the
    /// store.
    #[tokio::test]
    async fn publish_refuses_output_with_symbolic_links() {
        let dir = tempfile::tempdir().unwrap();
        let artifacts = Artifacts::open(&dir.path().join("store")).unwrap();
        let hash: RequestHash = "cd".repeat(32).parse().unwrap();
        for link in ["image.bin", "sub/profiles.json", "sub"] {
            let output = dir.path().join("work/out");
            let _ = std::fs::remove_dir_all(&output);
            std::fs::create_dir_all(output.join("sub")).unwrap();
            std::fs::write(output.join("real.bin"), "real").unwrap();
            let at = output.join(link);
            let _ = std::fs::remove_dir_all(&at);
            std::os::unix::fs::symlink("/etc/passwd", &at).unwrap();
            let error = artifacts.publish(&output, &hash).await.unwrap_err();
            assert!(
                matches!(&error, ArtifactError::NotRegular { path } if path.ends_with(link)),
                "{link}: {error:?}"
            );
            let names: Vec<_> = std::fs::read_dir(artifacts.root()).unwrap().collect();
            assert!(names.is_empty(), "{link}: {names:?}");
        }
        let error = check_output(Path::new("/nonexistent-attendant-output")).unwrap_err();
        assert!(matches!(error, ArtifactError::Io { .. }), "{error:?}");
    }

    #[tokio::test]
    async fn publish_replaces_an_older_directory_whole() {
        let dir = tempfile::tempdir().unwrap();
        let artifacts = Artifacts::open(&dir.path().join("store")).unwrap();
        let hash: RequestHash = "ab".repeat(32).parse().unwrap();
        std::fs::create_dir_all(artifacts.job_dir(&hash)).unwrap();
        std::fs::write(artifacts.job_dir(&hash).join("stale.bin"), "old").unwrap();
        let output = dir.path().join("work/out");
        std::fs::create_dir_all(output.join("sub")).unwrap();
        std::fs::write(output.join("image.bin"), "new").unwrap();
        std::fs::write(output.join("sub/profiles.json"), "{}").unwrap();
        artifacts.publish(&output, &hash).await.unwrap();
        let placed = artifacts.job_dir(&hash);
        assert_eq!(
            std::fs::read_to_string(placed.join("image.bin")).unwrap(),
            "new"
        );
        assert!(placed.join("sub/profiles.json").is_file());
        assert!(!placed.join("stale.bin").exists());
        assert!(!output.exists());
        let names: Vec<_> = std::fs::read_dir(artifacts.root())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(
            names,
            [hash.to_string()],
            "no staging directory is left behind"
        );
        assert!(artifacts.remove(&hash).await.unwrap());
        assert!(!artifacts.remove(&hash).await.unwrap());
    }
}
