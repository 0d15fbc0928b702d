//! Streaming an image to disk, resumable, hashing as it arrives.
//!
//! The body goes straight from the socket through a SHA-256 context into the file in
//! [`CHUNK_LEN`] pieces, so memory use does not grow with the image. When the file already holds
//! a prefix (an interrupted earlier run, or a connection cut in this one) those bytes are hashed
//! from disk and the rest is requested with `Range: bytes=N-`; a server that answers `200`
//! instead of `206` makes us start over. Every image is capped at [`MAX_IMAGE_LEN`].

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use ring::digest;

use crate::client::{Client, ClientError};
use crate::hint::{Hint, HintCode};

/// Largest image accepted (x86 `combined` images are the biggest at a few hundred MiB).
pub const MAX_IMAGE_LEN: u64 = 1024 * 1024 * 1024;

/// Bytes read and written at a time.
pub const CHUNK_LEN: usize = 64 * 1024;

/// How many times a broken transfer is resumed within one run.
pub const MAX_RESUMES: u32 = 5;

/// A finished download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// Where the image is.
    pub path: PathBuf,
    /// Its length.
    pub len: u64,
    /// Its SHA-256, lower-case hex.
    pub sha256: String,
    /// Bytes that were already on disk and were not fetched again.
    pub resumed_from: u64,
}

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DownloadError {
    /// The server failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The file could not be read or written.
    #[error("cannot {action} `{path}`: {source}")]
    Io {
        /// What we were doing.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The image is larger than allowed.
    #[error("the image at `{url}` is larger than the limit of {MAX_IMAGE_LEN} bytes")]
    TooLarge {
        /// The URL.
        url: String,
    },
    /// The server sent fewer or more bytes than it announced.
    #[error("the download of `{url}` ended at {received} bytes, expected {expected}")]
    LengthMismatch {
        /// The URL.
        url: String,
        /// Bytes on disk.
        received: u64,
        /// Bytes announced.
        expected: u64,
    },
    /// The image does not fit in the free space of its directory.
    #[error("the image needs {needed} more bytes, but `{dir}` has only {available} bytes free")]
    NoSpace {
        /// The directory.
        dir: PathBuf,
        /// Bytes still to download.
        needed: u64,
        /// Bytes free.
        available: u64,
    },
    /// The transfer kept breaking.
    #[error(
        "the download of `{url}` broke off {attempts} times, last at {received} bytes: {source}"
    )]
    Interrupted {
        /// The URL.
        url: String,
        /// Bytes on disk.
        received: u64,
        /// How many times it broke.
        attempts: u32,
        /// The last error.
        source: io::Error,
    },
}

impl DownloadError {
    /// The way out, if there is one.
    pub fn hint(&self) -> Option<Hint> {
        match self {
            Self::Client(error) => error.hint(),
            Self::NoSpace { dir, .. } => Some(Hint::coded(
                HintCode::FreeSpace,
                format!(
                    "free space in `{}`, or download elsewhere with `--image PATH`",
                    dir.display()
                ),
            )),
            Self::Interrupted { .. } => Some(Hint::coded(
                HintCode::Resume,
                "run the same command again to resume",
            )),
            _ => None,
        }
    }
}

/// Downloads `url` to `path`, continuing a partial file, reporting `(bytes on disk, total)`.
pub fn download(
    client: &Client,
    url: &str,
    path: &Path,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<Downloaded, DownloadError> {
    let io_error = |action: &'static str| {
        move |source| DownloadError::Io {
            action,
            path: path.to_owned(),
            source,
        }
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io_error("open"))?;
    let mut hash = digest::Context::new(&digest::SHA256);
    let resumed_from = hash_existing(&mut file, &mut hash).map_err(io_error("read"))?;
    let mut offset = resumed_from;
    let mut breaks = 0;
    loop {
        let transfer = client.open_download(url, offset);
        let download = match transfer {
            Ok(download) => download,
            // The file is already complete: the server cannot serve anything after its end.
            Err(ClientError::Status { status: 416, .. }) if offset > 0 => {
                break;
            }
            Err(error) => return Err(error.into()),
        };
        if offset > 0 && !download.partial {
            log::info!("the server ignored the range request; downloading `{url}` from the start");
            file.set_len(0).map_err(io_error("truncate"))?;
            file.seek(SeekFrom::Start(0)).map_err(io_error("seek in"))?;
            hash = digest::Context::new(&digest::SHA256);
            offset = 0;
        }
        let total = download.total_len;
        if total.is_some_and(|total| total > MAX_IMAGE_LEN) {
            return Err(DownloadError::TooLarge {
                url: url.to_owned(),
            });
        }
        if let Some(total) = total {
            check_space(path, total.saturating_sub(offset))?;
        }
        progress(offset, total);
        let copied = copy(
            download.reader,
            &mut file,
            &mut hash,
            &mut offset,
            total,
            progress,
        );
        match settle(copied, url, path, offset, total, &mut breaks)? {
            Next::Done => break,
            Next::Resume => {}
            Next::TooLarge => {
                // Do not leave up to the limit's worth of bytes in /tmp, which is RAM.
                drop(file);
                remove(path)?;
                return Err(DownloadError::TooLarge {
                    url: url.to_owned(),
                });
            }
        }
    }
    file.sync_all().map_err(io_error("sync"))?;
    Ok(Downloaded {
        path: path.to_owned(),
        len: offset,
        sha256: hex(hash.finish().as_ref()),
        resumed_from,
    })
}

/// What [`download`] does after one transfer.
enum Next {
    /// The image is complete.
    Done,
    /// The connection broke; ask for the rest.
    Resume,
    /// The server sent more than [`MAX_IMAGE_LEN`].
    TooLarge,
}

/// Judges one transfer that left `offset` bytes on disk: complete, to be resumed (counting
/// `breaks`), or failed.
fn settle(
    copied: Result<(), Copy>,
    url: &str,
    path: &Path,
    offset: u64,
    total: Option<u64>,
    breaks: &mut u32,
) -> Result<Next, DownloadError> {
    match copied {
        Ok(()) => match total {
            Some(expected) if offset != expected => Err(DownloadError::LengthMismatch {
                url: url.to_owned(),
                received: offset,
                expected,
            }),
            _ => Ok(Next::Done),
        },
        Err(Copy::TooLarge) => Ok(Next::TooLarge),
        Err(Copy::Write(source)) => Err(DownloadError::Io {
            action: "write",
            path: path.to_owned(),
            source,
        }),
        Err(Copy::Read(source)) => {
            *breaks += 1;
            if *breaks > MAX_RESUMES {
                return Err(DownloadError::Interrupted {
                    url: url.to_owned(),
                    received: offset,
                    attempts: *breaks,
                    source,
                });
            }
            log::warn!("the download broke off at {offset} bytes ({source}); resuming");
            Ok(Next::Resume)
        }
    }
}

/// SHA-256 of a whole file, read in chunks, with its length.
pub fn sha256_file(path: &Path) -> Result<(String, u64), DownloadError> {
    let mut file = File::open(path).map_err(|source| DownloadError::Io {
        action: "open",
        path: path.to_owned(),
        source,
    })?;
    let mut hash = digest::Context::new(&digest::SHA256);
    let len = hash_existing(&mut file, &mut hash).map_err(|source| DownloadError::Io {
        action: "read",
        path: path.to_owned(),
        source,
    })?;
    Ok((hex(hash.finish().as_ref()), len))
}

/// Refuses a download of `needed` more bytes that cannot fit beside `path`. The free space
/// comes from `df -Pk` (run directly): the agent has no `statvfs` without `unsafe`. When `df` is
/// missing or says something unexpected the check is skipped.
fn check_space(path: &Path, needed: u64) -> Result<(), DownloadError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let Some(available) = free_space(dir) else {
        log::info!(
            "cannot tell the free space of `{}`; not checking it",
            dir.display()
        );
        return Ok(());
    };
    if needed > available {
        return Err(DownloadError::NoSpace {
            dir: dir.to_owned(),
            needed,
            available,
        });
    }
    Ok(())
}

/// Free bytes of the filesystem holding `dir`, from `df -Pk`.
fn free_space(dir: &Path) -> Option<u64> {
    let output = std::process::Command::new("df")
        .arg("-Pk")
        .arg(dir)
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    parse_df(&String::from_utf8_lossy(&output.stdout))
}

/// The `Available` column (KiB) of `df -Pk`'s second line, in bytes.
fn parse_df(text: &str) -> Option<u64> {
    let line = text.lines().nth(1)?;
    let kib: u64 = line.split_whitespace().nth(3)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Removes a file, ignoring one that is not there.
pub fn remove(path: &Path) -> Result<(), DownloadError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(DownloadError::Io {
            action: "remove",
            path: path.to_owned(),
            source,
        }),
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

enum Copy {
    Read(io::Error),
    Write(io::Error),
    TooLarge,
}

fn copy(
    mut reader: Box<dyn Read + Send>,
    file: &mut File,
    hash: &mut digest::Context,
    offset: &mut u64,
    total: Option<u64>,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<(), Copy> {
    let mut buffer = vec![0; CHUNK_LEN];
    loop {
        let read = match reader.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(Copy::Read(error)),
        };
        let chunk = buffer.get(..read).unwrap_or_default();
        let next = offset.saturating_add(u64::try_from(read).unwrap_or(u64::MAX));
        if next > MAX_IMAGE_LEN || total.is_some_and(|total| next > total) {
            return Err(Copy::TooLarge);
        }
        file.write_all(chunk).map_err(Copy::Write)?;
        hash.update(chunk);
        *offset = next;
        progress(*offset, total);
    }
}

/// Hashes the file from its start up to its end; returns its length and leaves the cursor there.
fn hash_existing(file: &mut File, hash: &mut digest::Context) -> io::Result<u64> {
    file.seek(SeekFrom::Start(0))?;
    let mut buffer = vec![0; CHUNK_LEN];
    let mut len: u64 = 0;
    loop {
        let read = match file.read(&mut buffer) {
            Ok(0) => return Ok(len),
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        hash.update(buffer.get(..read).unwrap_or_default());
        len = len.saturating_add(u64::try_from(read).unwrap_or(u64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_available_space_from_df() {
        let text = "Filesystem     1024-blocks  Used Available Capacity Mounted on\n\
                    tmpfs               61056  1400     59656       3% /tmp\n";
        assert_eq!(parse_df(text), Some(59656 * 1024));
        assert_eq!(parse_df("garbage"), None);
        let dir = tempfile::tempdir().unwrap();
        assert!(free_space(dir.path()).is_some_and(|free| free > 0));
    }

    #[test]
    fn refuses_an_image_larger_than_the_free_space() {
        let dir = tempfile::tempdir().unwrap();
        let error = check_space(&dir.path().join("img"), u64::MAX / 2).unwrap_err();
        assert!(error.to_string().starts_with("the image needs"), "{error}");
        assert!(check_space(&dir.path().join("img"), 1).is_ok());
    }

    #[test]
    fn hashes_files_like_sha256sum() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"abc").unwrap();
        assert_eq!(
            sha256_file(&path).unwrap(),
            (
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".to_owned(),
                3
            )
        );
    }
}
