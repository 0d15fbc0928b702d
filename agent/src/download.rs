//! Streaming an image to disk, resumable, hashing as it arrives.
//!
//! The body goes straight from the socket through a SHA-256 context into the file in
//! [`CHUNK_LEN`] pieces, so memory use does not grow with the image. When the file already holds
//! a prefix (an interrupted earlier run, or a connection cut in this one) those bytes are hashed
//! from disk and the rest is requested with `Range: bytes=N-`; a server that answers `200`
//! instead of `206` makes us start over.
//!
//! On a router the image goes to `/tmp`, which is RAM, so the size is bounded before a byte is
//! written ([`DownloadLimits`]): by [`MAX_IMAGE_LEN`], by the size the build response states
//! plus [`SIZE_SLACK`], and by the free space of the directory less a reserve. An announced
//! length beyond that is refused at once; a body that grows beyond it is cut off and its file
//! removed, since it is not the image. A server that sends too slowly (below
//! [`DownloadLimits::min_rate`] over [`DownloadLimits::rate_window`]) is left; what arrived is
//! kept, so the next run resumes it.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ring::digest;

use crate::client::{Client, ClientError};
use crate::hint::{Hint, HintCode};

/// Largest image accepted (x86 `combined` images are the biggest at a few hundred MiB).
pub const MAX_IMAGE_LEN: u64 = 1024 * 1024 * 1024;

/// Bytes read and written at a time.
pub const CHUNK_LEN: usize = 64 * 1024;

/// How many times a broken transfer is resumed within one run.
pub const MAX_RESUMES: u32 = 5;

/// Bytes accepted beyond the size a build response states: room for a server that signs or pads
/// the image after measuring it, far too little to fill a router's RAM.
pub const SIZE_SLACK: u64 = 64 * 1024;

/// What bounds one image download besides [`MAX_IMAGE_LEN`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DownloadLimits {
    /// The image's length as the build response states it, when it does.
    pub stated_len: Option<u64>,
    /// Bytes left free in the image's directory.
    pub reserve: u64,
    /// Slowest rate accepted, in bytes per second over [`rate_window`](Self::rate_window);
    /// 0 accepts any rate.
    pub min_rate: u64,
    /// The window the rate is measured over.
    pub rate_window: Duration,
}

impl DownloadLimits {
    /// No stated size, no reserve, no minimum rate: only [`MAX_IMAGE_LEN`] and the free space.
    pub fn new() -> Self {
        Self {
            stated_len: None,
            reserve: 0,
            min_rate: 0,
            rate_window: Duration::from_secs(30),
        }
    }
}

impl Default for DownloadLimits {
    fn default() -> Self {
        Self::new()
    }
}

/// Where the size limit of a download came from, for its error message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SizeLimit {
    /// [`MAX_IMAGE_LEN`].
    Largest,
    /// The size the build response states, plus [`SIZE_SLACK`].
    Stated(u64),
    /// The free space of the image's directory less the reserve.
    FreeSpace {
        /// The directory.
        dir: PathBuf,
        /// Bytes free when the transfer started (beside what was already on disk).
        available: u64,
        /// Bytes kept free.
        reserve: u64,
    },
}

impl fmt::Display for SizeLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Largest => f.write_str("the largest image accepted"),
            Self::Stated(len) => write!(
                f,
                "the {len} bytes the build response states, plus {SIZE_SLACK}"
            ),
            Self::FreeSpace {
                dir,
                available,
                reserve,
            } => write!(
                f,
                "the {available} bytes free in `{}`, less {reserve} kept free \
                 (`option download_reserve`)",
                dir.display()
            ),
        }
    }
}

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
    /// The server announced an image larger than allowed; nothing was written.
    #[error("the image at `{url}` is {len} bytes, more than the limit of {limit} bytes ({why})")]
    TooLarge {
        /// The URL.
        url: String,
        /// The length the server announced.
        len: u64,
        /// The limit.
        limit: u64,
        /// Where the limit came from.
        why: SizeLimit,
    },
    /// The server sent more than allowed; the partial file was removed.
    #[error(
        "the server sent more than the limit of {limit} bytes ({why}) for `{url}`; the partial \
         file was removed"
    )]
    BodyTooLarge {
        /// The URL.
        url: String,
        /// The limit.
        limit: u64,
        /// Where the limit came from.
        why: SizeLimit,
    },
    /// The transfer was slower than [`DownloadLimits::min_rate`]; what arrived is kept.
    #[error(
        "the download of `{url}` was slower than the minimum of {min_rate} bytes/s over {} s \
         ({received} bytes on disk, kept)",
        window.as_secs()
    )]
    TooSlow {
        /// The URL.
        url: String,
        /// Bytes on disk.
        received: u64,
        /// The minimum rate, bytes per second.
        min_rate: u64,
        /// The window it is measured over.
        window: Duration,
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
    /// The image does not fit in the free space of its directory, less the reserve.
    #[error(
        "the image needs {needed} more bytes, but `{dir}` has only {available} bytes free, \
         {reserve} of them kept free (`option download_reserve`)"
    )]
    NoSpace {
        /// The directory.
        dir: PathBuf,
        /// Bytes still to download.
        needed: u64,
        /// Bytes free.
        available: u64,
        /// Bytes kept free.
        reserve: u64,
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
            Self::Interrupted { .. } | Self::TooSlow { .. } => Some(Hint::coded(
                HintCode::Resume,
                "run the same command again to resume",
            )),
            _ => None,
        }
    }
}

/// Downloads `url` to `path` within `limits`, continuing a partial file, reporting
/// `(bytes on disk, total)`.
pub fn download(
    client: &Client,
    url: &str,
    path: &Path,
    limits: &DownloadLimits,
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
        let (limit, why) = size_limit(limits, path, offset);
        if let Some(total) = total
            && let Err(error) = check_announced(url, total, offset, limits, &why)
        {
            // An announced length that cannot be the image makes what is on disk suspect too;
            // a file that only lacks room keeps its bytes for a resume once space is freed, and
            // an empty one (just created) goes.
            if offset == 0 || matches!(error, DownloadError::TooLarge { .. }) {
                drop(file);
                remove(path)?;
            }
            return Err(error);
        }
        progress(offset, total);
        let mut floor = RateFloor::new(limits, offset);
        let copied = copy(
            download.reader,
            &mut file,
            &mut hash,
            (&mut offset, total, limit),
            &mut floor,
            progress,
        );
        match settle(copied, url, path, offset, total, &mut breaks)? {
            Next::Done => break,
            Next::Resume => {}
            Next::TooLarge => {
                // Not the image, and it may have filled /tmp, which is RAM: it goes.
                drop(file);
                remove(path)?;
                return Err(DownloadError::BodyTooLarge {
                    url: url.to_owned(),
                    limit,
                    why,
                });
            }
            Next::TooSlow => {
                // What arrived is a prefix of the body; the next run resumes after it.
                file.sync_all().map_err(io_error("sync"))?;
                return Err(DownloadError::TooSlow {
                    url: url.to_owned(),
                    received: offset,
                    min_rate: limits.min_rate,
                    window: limits.rate_window,
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
    /// The server sent more than the transfer's size limit.
    TooLarge,
    /// The server sent too slowly.
    TooSlow,
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
        Err(Copy::TooSlow) => Ok(Next::TooSlow),
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

/// The most bytes the file may hold at the end of a transfer that starts at `offset`, and why:
/// the smallest of [`MAX_IMAGE_LEN`], the stated size plus [`SIZE_SLACK`], and what is on disk
/// plus the free space less the reserve.
fn size_limit(limits: &DownloadLimits, path: &Path, offset: u64) -> (u64, SizeLimit) {
    let mut limit = (MAX_IMAGE_LEN, SizeLimit::Largest);
    if let Some(stated) = limits.stated_len {
        let stated_limit = stated.saturating_add(SIZE_SLACK);
        if stated_limit < limit.0 {
            limit = (stated_limit, SizeLimit::Stated(stated));
        }
    }
    let dir = directory_of(path);
    match free_space(dir) {
        Some(available) => {
            let space_limit = offset.saturating_add(available.saturating_sub(limits.reserve));
            if space_limit < limit.0 {
                limit = (
                    space_limit,
                    SizeLimit::FreeSpace {
                        dir: dir.to_owned(),
                        available,
                        reserve: limits.reserve,
                    },
                );
            }
        }
        None => log::info!(
            "cannot tell the free space of `{}`; not checking it",
            dir.display()
        ),
    }
    limit
}

/// Refuses, before a byte is written, a transfer whose announced `total` cannot be the image
/// (larger than [`MAX_IMAGE_LEN`] or the stated size plus [`SIZE_SLACK`]) or cannot fit
/// (`why` is the free space, less the reserve).
fn check_announced(
    url: &str,
    total: u64,
    offset: u64,
    limits: &DownloadLimits,
    why: &SizeLimit,
) -> Result<(), DownloadError> {
    let (largest, largest_why) = match limits.stated_len {
        Some(stated) if stated.saturating_add(SIZE_SLACK) < MAX_IMAGE_LEN => {
            (stated.saturating_add(SIZE_SLACK), SizeLimit::Stated(stated))
        }
        _ => (MAX_IMAGE_LEN, SizeLimit::Largest),
    };
    if total > largest {
        return Err(DownloadError::TooLarge {
            url: url.to_owned(),
            len: total,
            limit: largest,
            why: largest_why,
        });
    }
    if let SizeLimit::FreeSpace {
        dir,
        available,
        reserve,
    } = why
    {
        let needed = total.saturating_sub(offset);
        if needed > available.saturating_sub(*reserve) {
            return Err(DownloadError::NoSpace {
                dir: dir.clone(),
                needed,
                available: *available,
                reserve: *reserve,
            });
        }
    }
    Ok(())
}

/// Watches a transfer's rate: at the end of each window of [`DownloadLimits::rate_window`], the
/// bytes received in it must be at least [`DownloadLimits::min_rate`] per second.
struct RateFloor {
    min_rate: u64,
    window: Duration,
    since: Instant,
    at_start: u64,
}

impl RateFloor {
    fn new(limits: &DownloadLimits, offset: u64) -> Self {
        Self {
            min_rate: limits.min_rate,
            window: limits.rate_window,
            since: Instant::now(),
            at_start: offset,
        }
    }

    /// Whether the transfer, now at `offset`, keeps the floor.
    fn keeps_up(&mut self, offset: u64) -> bool {
        let elapsed = self.since.elapsed();
        if self.min_rate == 0 || elapsed < self.window {
            return true;
        }
        let received = offset.saturating_sub(self.at_start);
        let elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        // Integer arithmetic: no float code on the router.
        let fast_enough = received.saturating_mul(1000) >= self.min_rate.saturating_mul(elapsed_ms);
        self.since = Instant::now();
        self.at_start = offset;
        fast_enough
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

/// The directory `path` is in (`.` for a bare file name).
fn directory_of(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Free bytes of the filesystem holding `dir`, from `df -Pk` (run directly): the agent has no
/// `statvfs` without `unsafe`. `None` when `df` is missing or says something unexpected, and
/// the free space then is not checked.
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
    TooSlow,
}

/// Copies the body into `file` and `hash`, advancing `offset`; stops before writing a chunk
/// that would take the file past `limit` (or past the announced `total`), and when `floor` is
/// not kept.
fn copy(
    mut reader: Box<dyn Read + Send>,
    file: &mut File,
    hash: &mut digest::Context,
    (offset, total, limit): (&mut u64, Option<u64>, u64),
    floor: &mut RateFloor,
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
        if next > limit || total.is_some_and(|total| next > total) {
            return Err(Copy::TooLarge);
        }
        file.write_all(chunk).map_err(Copy::Write)?;
        hash.update(chunk);
        *offset = next;
        progress(*offset, total);
        if !floor.keeps_up(*offset) {
            return Err(Copy::TooSlow);
        }
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
        let path = dir.path().join("img");
        let limits = DownloadLimits::new();
        let (limit, why) = size_limit(&limits, &path, 0);
        assert!(matches!(
            why,
            SizeLimit::FreeSpace { .. } | SizeLimit::Largest
        ));
        let error = check_announced("u", u64::MAX / 2, 0, &limits, &why).unwrap_err();
        assert!(matches!(error, DownloadError::TooLarge { .. }), "{error}");
        if limit < MAX_IMAGE_LEN {
            let error = check_announced("u", limit + 1, 0, &limits, &why).unwrap_err();
            assert!(error.to_string().starts_with("the image needs"), "{error}");
        }
        assert!(check_announced("u", 1, 0, &limits, &why).is_ok());
    }

    #[test]
    fn the_stated_size_and_the_reserve_bound_a_download() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("img");
        let stated = DownloadLimits {
            stated_len: Some(1000),
            ..DownloadLimits::new()
        };
        assert_eq!(
            size_limit(&stated, &path, 0),
            (1000 + SIZE_SLACK, SizeLimit::Stated(1000))
        );
        assert_eq!(
            check_announced(
                "u",
                1000 + SIZE_SLACK + 1,
                0,
                &stated,
                &SizeLimit::Stated(1000)
            )
            .unwrap_err()
            .to_string(),
            "the image at `u` is 66537 bytes, more than the limit of 66536 bytes (the 1000 bytes \
             the build response states, plus 65536)"
        );
        let reserve = DownloadLimits {
            reserve: u64::MAX,
            ..DownloadLimits::new()
        };
        let (limit, why) = size_limit(&reserve, &path, 7);
        assert_eq!(limit, 7, "only what is already on disk");
        let error = check_announced("u", 8, 7, &reserve, &why).unwrap_err();
        assert!(
            matches!(error, DownloadError::NoSpace { needed: 1, .. }),
            "{error}"
        );
    }

    #[test]
    fn the_rate_floor_is_judged_once_per_window() {
        let limits = DownloadLimits {
            min_rate: 1000,
            rate_window: Duration::from_millis(50),
            ..DownloadLimits::new()
        };
        let mut floor = RateFloor::new(&limits, 0);
        assert!(floor.keeps_up(10), "within the first window");
        std::thread::sleep(Duration::from_millis(60));
        assert!(floor.keeps_up(1_000), "1000 bytes in 60 ms");
        std::thread::sleep(Duration::from_millis(60));
        assert!(!floor.keeps_up(1_010), "10 bytes in 60 ms");
        let mut off = RateFloor::new(&DownloadLimits::new(), 0);
        std::thread::sleep(Duration::from_millis(5));
        assert!(off.keeps_up(0), "no floor");
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
