//! Deterministic ImageBuilder archives: `.tar.xz` (24.10) and `.tar.zst` (25.12, snapshots).
//!
//! Members are written in path order with fixed metadata (mtime = the release's
//! `SOURCE_DATE_EPOCH`, uid/gid 0, no user or group names, mode 0755 for directories and
//! executables, 0644 otherwise), so the same inputs give the same bytes. Compression uses
//! fast presets: the archive carries the helper binary and generation must stay quick.

use std::collections::BTreeSet;
use std::io::Write;

use crate::imagebuilder::TreeFile;

/// How the archive is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// xz (`.tar.xz`).
    Xz,
    /// zstd (`.tar.zst`).
    Zstd,
}

impl Compression {
    /// The file extension, `tar.xz` or `tar.zst`.
    pub fn extension(self) -> &'static str {
        match self {
            Compression::Xz => "tar.xz",
            Compression::Zstd => "tar.zst",
        }
    }
}

/// Why an archive could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// Writing the tar stream or compressing it failed.
    #[error("cannot write the archive member `{path}`: {source}")]
    Member {
        /// The member.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Finishing the compressed stream failed.
    #[error("cannot finish the {what} stream: {source}")]
    Finish {
        /// `xz` or `zstd`.
        what: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// A compressed tar archive of `files` below the directory `top`.
pub fn tar(
    top: &str,
    files: &[TreeFile],
    mtime: u64,
    compression: Compression,
) -> Result<Vec<u8>, ArchiveError> {
    let raw = tar_bytes(top, files, mtime)?;
    match compression {
        Compression::Xz => {
            let mut encoder = liblzma::write::XzEncoder::new(Vec::new(), 0);
            encoder
                .write_all(&raw)
                .map_err(|source| ArchiveError::Finish { what: "xz", source })?;
            encoder
                .finish()
                .map_err(|source| ArchiveError::Finish { what: "xz", source })
        }
        Compression::Zstd => {
            zstd::encode_all(raw.as_slice(), 3).map_err(|source| ArchiveError::Finish {
                what: "zstd",
                source,
            })
        }
    }
}

fn tar_bytes(top: &str, files: &[TreeFile], mtime: u64) -> Result<Vec<u8>, ArchiveError> {
    let mut directories = BTreeSet::new();
    directories.insert(top.to_owned());
    for file in files {
        let mut path = String::from(top);
        let parts: Vec<&str> = file.path.split('/').collect();
        for part in parts.iter().take(parts.len().saturating_sub(1)) {
            path.push('/');
            path.push_str(part);
            directories.insert(path.clone());
        }
    }
    let mut sorted: Vec<&TreeFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let mut builder = tar::Builder::new(Vec::new());
    for directory in &directories {
        let mut header = header(mtime, 0o755, tar::EntryType::Directory, 0);
        append(&mut builder, &mut header, &format!("{directory}/"), &[][..])?;
    }
    for file in sorted {
        let mode = if file.executable { 0o755 } else { 0o644 };
        let mut header = header(
            mtime,
            mode,
            tar::EntryType::Regular,
            file.contents.len() as u64,
        );
        append(
            &mut builder,
            &mut header,
            &format!("{top}/{}", file.path),
            file.contents.as_slice(),
        )?;
    }
    builder.into_inner().map_err(|source| ArchiveError::Member {
        path: top.to_owned(),
        source,
    })
}

fn header(mtime: u64, mode: u32, kind: tar::EntryType, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(mtime);
    header.set_size(size);
    header
}

fn append(
    builder: &mut tar::Builder<Vec<u8>>,
    header: &mut tar::Header,
    path: &str,
    data: &[u8],
) -> Result<(), ArchiveError> {
    builder
        .append_data(header, path, data)
        .map_err(|source| ArchiveError::Member {
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn files() -> Vec<TreeFile> {
        vec![
            TreeFile {
                path: "b/run".to_owned(),
                contents: b"#!/bin/sh\n".to_vec(),
                executable: true,
            },
            TreeFile {
                path: "Makefile".to_owned(),
                contents: b"all:\n".to_vec(),
                executable: false,
            },
        ]
    }

    fn members(raw: &[u8]) -> Vec<(String, u32, u64)> {
        let mut archive = tar::Archive::new(raw);
        archive
            .entries()
            .unwrap()
            .map(|entry| {
                let mut entry = entry.unwrap();
                let header = entry.header().clone();
                let mut body = Vec::new();
                entry.read_to_end(&mut body).unwrap();
                (
                    entry.path().unwrap().display().to_string(),
                    header.mode().unwrap(),
                    header.mtime().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn archives_are_reproducible_and_readable() {
        for compression in [Compression::Xz, Compression::Zstd] {
            let first = tar("top", &files(), 1_700_000_000, compression).unwrap();
            let second = tar("top", &files(), 1_700_000_000, compression).unwrap();
            assert_eq!(first, second);
            let raw = match compression {
                Compression::Xz => {
                    let mut out = Vec::new();
                    liblzma::read::XzDecoder::new(first.as_slice())
                        .read_to_end(&mut out)
                        .unwrap();
                    out
                }
                Compression::Zstd => zstd::decode_all(first.as_slice()).unwrap(),
            };
            assert_eq!(
                members(&raw),
                [
                    ("top/".to_owned(), 0o755, 1_700_000_000),
                    ("top/b/".to_owned(), 0o755, 1_700_000_000),
                    ("top/Makefile".to_owned(), 0o644, 1_700_000_000),
                    ("top/b/run".to_owned(), 0o755, 1_700_000_000),
                ]
            );
        }
    }
}
