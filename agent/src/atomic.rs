//! The one way the router side replaces a file, [`write_atomic`], and reads a small one, [`read_small`].
//!
//! The agent's state file and build record, the rpcd bridge's job file and its rewrite of
//! `/etc/config/attendedsysupgrade` all go through it, so a power cut, a full `/tmp` or a
//! killed process leaves either the old file or the new one, never half of one, and no
//! temporary file behind.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Replaces `path` with `bytes`: writes a temporary file in the same directory (so the rename
/// cannot cross filesystems), flushes it to storage, renames it over `path` and flushes the
/// directory, so the rename itself survives a power cut on the overlay's flash. On failure the
/// temporary file is removed and `path` is left as it was.
///
/// The temporary file's name carries the process id, so two processes replacing the same file
/// at once never write into each other's copy; the last rename wins.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let temporary = temporary_path(path);
    let result = write_and_rename(&temporary, path, bytes);
    if result.is_err() {
        // Nothing to do if it is gone already; the caller reports the first error.
        let _ = fs::remove_file(&temporary);
    }
    result
}

/// `<dir>/.<name>.<pid>.tmp` beside `path`.
fn temporary_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |name| name.to_string_lossy());
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

fn write_and_rename(temporary: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = File::create(temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(temporary, path)?;
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // Some filesystems refuse to sync a directory; the rename has happened by then, and on
    // those the directory entry is as durable as it gets.
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Reads at most `max` bytes of a file: the limit every small local file is read with.
pub fn read_small(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(max)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn replaces_the_file_and_leaves_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(entries(dir.path()), ["state.json"]);
    }

    #[test]
    fn a_failed_rename_keeps_the_old_file_and_removes_the_temporary_one() {
        let dir = tempfile::tempdir().unwrap();
        // A non-empty directory where the file goes: the rename fails, as on a full /tmp.
        let path = dir.path().join("record.json");
        fs::create_dir_all(path.join("x")).unwrap();
        let error = write_atomic(&path, b"new").unwrap_err();
        assert_ne!(error.kind(), io::ErrorKind::NotFound);
        assert!(path.join("x").is_dir());
        assert_eq!(entries(dir.path()), ["record.json"]);
    }

    #[test]
    fn a_missing_directory_is_an_error_without_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone/state.json");
        assert_eq!(
            write_atomic(&path, b"x").unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert!(entries(dir.path()).is_empty());
    }
}
