//! The cache's files on disk: the completion marker, temporary paths and filesystem helpers whose
//! errors name the path.

use std::{
    collections::HashMap,
    fs, io,
    path::{Path, PathBuf},
    time::SystemTime,
};

use super::IbError;
use crate::atomic::{Existing, write_atomic};

/// Name of the completion marker inside an entry directory.
pub(super) const MARKER: &str = ".attendant-complete";

/// Name of the unpacked tree inside an entry directory.
pub(super) const TREE: &str = "imagebuilder";

/// The kept archive in an entry directory.
pub(super) const ARCHIVE: &str = "archive";

/// The contents of a completion marker: `key=value` lines (`key`, `archive_name`,
/// `archive_sha256`, `size`), written last, before the entry is renamed into place.
pub(super) struct Marker {
    pub(super) key: String,
    pub(super) archive_name: String,
    pub(super) archive_sha256: String,
    pub(super) size: u64,
}

impl Marker {
    pub(super) fn to_text(&self) -> String {
        format!(
            "key={}\narchive_name={}\narchive_sha256={}\nsize={}\n",
            self.key, self.archive_name, self.archive_sha256, self.size
        )
    }

    pub(super) fn parse(text: &str) -> Option<Self> {
        let mut fields: HashMap<&str, &str> = HashMap::new();
        for line in text.lines() {
            let (name, value) = line.split_once('=')?;
            fields.insert(name, value);
        }
        Some(Self {
            key: (*fields.get("key")?).to_owned(),
            archive_name: (*fields.get("archive_name")?).to_owned(),
            archive_sha256: (*fields.get("archive_sha256")?).to_owned(),
            size: fields.get("size")?.parse().ok()?,
        })
    }
}

/// A temporary file or directory deleted on drop unless disarmed.
pub(super) struct TempPath {
    path: Option<PathBuf>,
}

impl TempPath {
    pub(super) fn file(path: PathBuf) -> Self {
        Self { path: Some(path) }
    }

    pub(super) fn dir(path: PathBuf) -> Self {
        Self { path: Some(path) }
    }

    pub(super) fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new(""))
    }

    pub(super) fn disarm(mut self) {
        self.path = None;
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            remove_tree(&path);
        }
    }
}

/// Delete a file or a directory tree, logging (not returning) failures: a leftover in `tmp/` is
/// removed at the next start.
pub(super) fn remove_tree(path: &Path) {
    let result = match fs::symlink_metadata(path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
    };
    if let Err(error) = result {
        tracing::warn!(path = %path.display(), "could not delete: {error}");
    }
}

pub(super) fn read_dir(dir: &Path) -> Result<Vec<PathBuf>, IbError> {
    let entries = fs::read_dir(dir).map_err(|error| IbError::io("list", dir, error))?;
    entries
        .map(|entry| {
            entry
                .map(|entry| entry.path())
                .map_err(|error| IbError::io("list", dir, error))
        })
        .collect()
}

pub(super) fn create_dir(path: &Path) -> Result<(), IbError> {
    fs::create_dir(path).map_err(|error| IbError::io("create directory", path, error))
}

pub(super) fn rename(from: &Path, to: &Path) -> Result<(), IbError> {
    fs::rename(from, to).map_err(|error| {
        IbError::io(
            "rename",
            from,
            io::Error::new(error.kind(), format!("to `{}`: {error}", to.display())),
        )
    })
}

pub(super) fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), IbError> {
    write_atomic(path, bytes, Existing::Replace, false)
        .map_err(|error| IbError::io("write", path, error))
}

pub(super) fn touch(path: &Path) -> io::Result<()> {
    fs::File::options()
        .write(true)
        .open(path)?
        .set_modified(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_round_trips() {
        let marker = Marker {
            key: "24.10.0/x86/64".to_owned(),
            archive_name: "a.tar.zst".to_owned(),
            archive_sha256: "ab".repeat(32),
            size: 42,
        };
        let parsed = Marker::parse(&marker.to_text()).unwrap();
        assert_eq!(parsed.key, marker.key);
        assert_eq!(parsed.archive_name, marker.archive_name);
        assert_eq!(parsed.archive_sha256, marker.archive_sha256);
        assert_eq!(parsed.size, 42);
        assert!(Marker::parse("key=x\n").is_none());
    }
}
