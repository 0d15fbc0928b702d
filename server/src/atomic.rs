//! Files written whole or not at all: the one writer of the server for files that must survive
//! a crash intact (ImageBuilder cache markers, signing keys, image signatures, published channel
//! metadata).
//!
//! [`write_atomic`] writes to a temporary file in the target's directory, flushes it to disk
//! (`fsync`), and only then gives it the final name, so a reader (or the server after a power
//! cut) sees either the old file, or no file, or the complete new one — never a truncated one. On
//! failure the temporary file is removed.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::artifacts::nonce;

/// What to do when the target already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Existing {
    /// Replace it (atomically: `rename`).
    Replace,
    /// Refuse with [`io::ErrorKind::AlreadyExists`] and leave it alone (a secret key is never
    /// overwritten by accident).
    Keep,
}

/// Writes `bytes` to `path` through a synced temporary file; `private` files are created with
/// mode 0600 (Unix), so a secret is never readable by others, not even for a moment.
pub(crate) fn write_atomic(
    path: &Path,
    bytes: &[u8],
    existing: Existing,
    private: bool,
) -> io::Result<()> {
    let temporary = temporary_path(path)?;
    let written = write_synced(&temporary, bytes, private).and_then(|()| match existing {
        Existing::Replace => fs::rename(&temporary, path),
        // A hard link, unlike a rename, fails when the target exists: no window in which a
        // concurrent writer's file could be replaced.
        Existing::Keep => {
            fs::hard_link(&temporary, path).and_then(|()| fs::remove_file(&temporary))
        }
    });
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written
}

/// Points the symbolic link `link` at `target` (a path relative to the link's directory), replacing
/// any link already there in one `rename`: a reader follows either the old target or the new one.
/// The directory is synced afterwards, so the switch survives a power cut.
#[cfg(unix)]
pub(crate) fn replace_symlink(link: &Path, target: &Path) -> io::Result<()> {
    let temporary = temporary_path(link)?;
    std::os::unix::fs::symlink(target, &temporary)?;
    if let Err(error) = fs::rename(&temporary, link) {
        let _ = fs::remove_file(&temporary);
        return Err(error);
    }
    sync_directory(link.parent().unwrap_or(Path::new(".")))
}

/// Flushes a directory's entries (new names, renames) to disk.
pub(crate) fn sync_directory(dir: &Path) -> io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    fs::File::open(dir)?.sync_all()
}

/// `<dir>/.<name>.tmp-<nonce>`: in the target's directory, so the final rename stays on one file
/// system; hidden and unique, so it never collides with a served or a concurrent file.
fn temporary_path(path: &Path) -> io::Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path to write names no file",
        )
    })?;
    let mut temporary = std::ffi::OsString::from(".");
    temporary.push(name);
    temporary.push(format!(".tmp-{}", nonce()));
    Ok(path.with_file_name(temporary))
}

fn write_synced(path: &Path, bytes: &[u8], private: bool) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn replaces_whole_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("marker");
        write_atomic(&path, b"first", Existing::Replace, false).unwrap();
        write_atomic(&path, b"second", Existing::Replace, false).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        assert_eq!(names(dir.path()), ["marker"]);
    }

    #[test]
    fn keep_refuses_an_existing_file_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key-build");
        write_atomic(&path, b"secret", Existing::Keep, true).unwrap();
        let error = write_atomic(&path, b"other", Existing::Keep, true).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&path).unwrap(), b"secret");
        assert_eq!(names(dir.path()), ["key-build"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[cfg(unix)]
    #[test]
    fn replace_symlink_switches_in_one_step() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("a")).unwrap();
        fs::create_dir(dir.path().join("b")).unwrap();
        let link = dir.path().join("current");
        replace_symlink(&link, Path::new("a")).unwrap();
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("a"));
        replace_symlink(&link, Path::new("b")).unwrap();
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("b"));
        assert_eq!(names(dir.path()), ["a", "b", "current"]);
    }

    #[test]
    fn a_failed_write_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir/file");
        let error = write_atomic(&path, b"x", Existing::Replace, false).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
        assert!(names(dir.path()).is_empty());
    }
}
