//! Safe extraction of an ImageBuilder archive (`.tar.zst` or `.tar.xz`).
//!
//! The archive's SHA-256 has already been checked against the signed `sha256sums`, so these rules
//! are defence in depth against a compromised or buggy upstream (the CVE-2007-4559 class that
//! Python's tar `filter="data"` closes,
//! <https://docs.python.org/3/library/tarfile.html#extraction-filters>). Every entry is checked
//! before anything is written:
//!
//! - the path must be relative and free of `..`, and lie inside the single top-level directory,
//!   which is stripped (the tree lands directly in the destination);
//! - no path may pass through a symlink extracted earlier (no writing through links);
//! - a symlink target must be relative, made of leading `..` only followed by names, and must not
//!   climb above the destination; a hard link must name a regular file extracted earlier;
//! - devices, FIFOs, sparse files and unknown entry types are refused, and so are files with the
//!   setuid or setgid bit; modes keep at most `0o755`, the owner always has read/write, and
//!   ownership is never restored;
//! - file sizes add up to at most [`UnpackLimits::max_bytes`], entries to at most
//!   [`UnpackLimits::max_entries`], and the decompressed stream is capped too (the tar reader
//!   keeps long-name and PAX headers in memory).
//!
//! Decompression streams: nothing is held in memory beyond one entry's header.
//! Regular files keep their modification times, because `make` inside the ImageBuilder compares
//! them.

use std::{
    collections::HashSet,
    ffi::{OsStr, OsString},
    fs,
    io::{self, BufReader, Read},
    os::unix::{
        ffi::OsStrExt,
        fs::{OpenOptionsExt, PermissionsExt},
    },
    path::{Component, Path, PathBuf},
    time::{Duration, SystemTime},
};

use super::{IbError, sums::Compression};

/// Largest total size of the files in one ImageBuilder. Real ones unpack to well under 2 GiB.
pub(crate) const MAX_UNPACKED_BYTES: u64 = 4 << 30;

/// Most entries in one ImageBuilder archive. Real ones have a few tens of thousands.
pub(crate) const MAX_ENTRIES: u64 = 250_000;

/// Longest entry path or link target, in bytes.
pub(crate) const MAX_PATH_LEN: usize = 1024;

/// Tar headers, padding and PAX records the decompressed stream may carry per entry on top of
/// the file contents.
const STREAM_OVERHEAD_PER_ENTRY: u64 = 8 * 1024;

/// The size limits of one extraction.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UnpackLimits {
    /// Total bytes of regular files.
    pub(crate) max_bytes: u64,
    /// Number of entries of any kind.
    pub(crate) max_entries: u64,
}

impl Default for UnpackLimits {
    fn default() -> Self {
        Self {
            max_bytes: MAX_UNPACKED_BYTES,
            max_entries: MAX_ENTRIES,
        }
    }
}

/// Extract `archive` (named `archive_name` in messages) into the new directory `dest`, following
/// the module's rules. Returns the total size of the extracted files. On error `dest` may hold a
/// partial tree; the caller removes it.
pub(crate) fn unpack(
    archive: &Path,
    archive_name: &str,
    compression: Compression,
    dest: &Path,
    limits: UnpackLimits,
) -> Result<u64, IbError> {
    let file = fs::File::open(archive).map_err(|error| IbError::io("open", archive, error))?;
    let file = BufReader::new(file);
    let decoder: Box<dyn Read> = match compression {
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(file)
                .map_err(|error| IbError::io("start decompressing", archive, error))?,
        ),
        Compression::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(file)),
    };
    let stream_limit = limits.max_bytes.saturating_add(
        limits
            .max_entries
            .saturating_add(1)
            .saturating_mul(STREAM_OVERHEAD_PER_ENTRY),
    );
    let capped = Capped {
        inner: decoder,
        remaining: stream_limit,
    };
    fs::create_dir(dest).map_err(|error| IbError::io("create directory", dest, error))?;
    let mut extractor = Extractor {
        archive: archive_name,
        archive_path: archive,
        dest,
        limits,
        stream_limit,
        top: None,
        symlinks: HashSet::new(),
        entries: 0,
        bytes: 0,
    };
    let mut tar = tar::Archive::new(capped);
    let entries = tar.entries().map_err(|error| extractor.read_error(error))?;
    for entry in entries {
        let entry = entry.map_err(|error| extractor.read_error(error))?;
        extractor.extract(entry)?;
    }
    if extractor.top.is_none() {
        return Err(IbError::UnsafeArchive {
            archive: archive_name.to_owned(),
            entry: String::new(),
            reason: "the archive is empty".to_owned(),
        });
    }
    Ok(extractor.bytes)
}

/// State of one extraction.
struct Extractor<'a> {
    archive: &'a str,
    archive_path: &'a Path,
    dest: &'a Path,
    limits: UnpackLimits,
    stream_limit: u64,
    /// The single top-level directory name, once seen.
    top: Option<OsString>,
    /// Symlinks created so far, relative to `dest`.
    symlinks: HashSet<PathBuf>,
    entries: u64,
    bytes: u64,
}

impl Extractor<'_> {
    fn extract<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<(), IbError> {
        let raw_path = entry.path_bytes().into_owned();
        let shown = show(&raw_path);
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            return Ok(());
        }
        self.entries = self.entries.saturating_add(1);
        if self.entries > self.limits.max_entries {
            return Err(IbError::TooManyEntries {
                archive: self.archive.to_owned(),
                limit: self.limits.max_entries,
            });
        }
        let Some(relative) = self.strip_top(&raw_path, &shown)? else {
            // The top-level directory itself.
            return if kind.is_dir() {
                Ok(())
            } else {
                Err(self.unsafe_entry(&shown, "a non-directory entry at the top level"))
            };
        };
        self.check_parents(&relative, &shown)?;
        let target = self.dest.join(&relative);
        let mode = entry
            .header()
            .mode()
            .map_err(|error| self.read_error(error))?;
        if kind.is_dir() {
            return self.make_dir(&target, mode);
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)
                .map_err(|error| IbError::io("create directory", parent, error))?;
        }
        self.clear(&relative, &target, &shown)?;
        if kind.is_file() {
            if mode & 0o6000 != 0 {
                return Err(self.unsafe_entry(&shown, "setuid or setgid bit set"));
            }
            let size = entry.size();
            self.bytes = self
                .bytes
                .checked_add(size)
                .filter(|total| *total <= self.limits.max_bytes)
                .ok_or_else(|| IbError::TooLarge {
                    what: format!("unpacked ImageBuilder `{}`", self.archive),
                    limit: self.limits.max_bytes,
                })?;
            let mtime = entry.header().mtime().ok();
            self.write_file(&mut entry, &target, mode, mtime)
        } else if kind.is_symlink() {
            let link = self.link_name(&entry, &shown)?;
            self.check_symlink_target(&relative, &link, &shown)?;
            std::os::unix::fs::symlink(&link, &target)
                .map_err(|error| IbError::io("create symlink", &target, error))?;
            self.symlinks.insert(relative);
            Ok(())
        } else if kind.is_hard_link() {
            let link = self.link_name(&entry, &shown)?;
            let source_relative = self.strip_top(link.as_os_str().as_bytes(), &shown)?;
            let Some(source_relative) = source_relative else {
                return Err(self.unsafe_entry(&shown, "hard link to the top-level directory"));
            };
            self.check_parents(&source_relative, &shown)?;
            let source = self.dest.join(&source_relative);
            let is_file = fs::symlink_metadata(&source).is_ok_and(|meta| meta.is_file());
            if !is_file || self.symlinks.contains(&source_relative) {
                return Err(self.unsafe_entry(
                    &shown,
                    &format!(
                        "hard link target `{}` is not a regular file extracted before it",
                        show(link.as_os_str().as_bytes())
                    ),
                ));
            }
            fs::hard_link(&source, &target)
                .map_err(|error| IbError::io("create hard link", &target, error))
        } else if kind.is_character_special() || kind.is_block_special() {
            Err(self.unsafe_entry(&shown, "device files are not allowed"))
        } else if kind.is_fifo() {
            Err(self.unsafe_entry(&shown, "FIFOs are not allowed"))
        } else if kind.is_gnu_sparse() {
            Err(self.unsafe_entry(&shown, "sparse files are not supported"))
        } else {
            Err(self.unsafe_entry(
                &shown,
                &format!("unsupported entry type `{}`", kind.as_byte().escape_ascii()),
            ))
        }
    }

    /// The path without its top-level directory (`None` for the directory itself), refusing
    /// absolute paths, `..`, over-long paths and a second top-level name.
    fn strip_top(&mut self, raw: &[u8], shown: &str) -> Result<Option<PathBuf>, IbError> {
        if raw.len() > MAX_PATH_LEN {
            return Err(
                self.unsafe_entry(shown, &format!("path is longer than {MAX_PATH_LEN} bytes"))
            );
        }
        let mut names = Vec::new();
        for component in Path::new(OsStr::from_bytes(raw)).components() {
            match component {
                Component::Prefix(_) | Component::RootDir => {
                    return Err(self.unsafe_entry(shown, "absolute path"));
                }
                Component::ParentDir => {
                    return Err(self.unsafe_entry(shown, "path contains a `..` component"));
                }
                Component::CurDir => {}
                Component::Normal(name) => names.push(name),
            }
        }
        let mut names = names.into_iter();
        let Some(first) = names.next() else {
            return Err(self.unsafe_entry(shown, "empty path"));
        };
        match &self.top {
            None => self.top = Some(first.to_owned()),
            Some(top) if top.as_os_str() == first => {}
            Some(top) => {
                return Err(self.unsafe_entry(
                    shown,
                    &format!(
                        "a second top-level directory besides `{}`; an ImageBuilder archive has \
                         exactly one",
                        show(top.as_bytes())
                    ),
                ));
            }
        }
        let rest: PathBuf = names.collect();
        Ok((!rest.as_os_str().is_empty()).then_some(rest))
    }

    /// Refuse a path any of whose parent directories is a symlink extracted earlier.
    fn check_parents(&self, relative: &Path, shown: &str) -> Result<(), IbError> {
        for ancestor in relative.ancestors().skip(1) {
            if self.symlinks.contains(ancestor) {
                return Err(self.unsafe_entry(
                    shown,
                    &format!(
                        "path goes through the symlink `{}`",
                        show(ancestor.as_os_str().as_bytes())
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Refuse a symlink target that is absolute, climbs after a name, or leaves the tree.
    fn check_symlink_target(
        &self,
        relative: &Path,
        link: &Path,
        shown: &str,
    ) -> Result<(), IbError> {
        let link_shown = show(link.as_os_str().as_bytes());
        // Depth of the directory holding the link, below `dest`.
        let depth = relative.components().count().saturating_sub(1);
        let mut climbs = 0usize;
        let mut named = false;
        for component in link.components() {
            match component {
                Component::Prefix(_) | Component::RootDir => {
                    return Err(self.unsafe_entry(
                        shown,
                        &format!("symlink target `{link_shown}` is absolute"),
                    ));
                }
                Component::ParentDir if named => {
                    return Err(self.unsafe_entry(
                        shown,
                        &format!(
                            "symlink target `{link_shown}` has `..` after a name; only leading \
                             `..` are allowed"
                        ),
                    ));
                }
                Component::ParentDir => climbs = climbs.saturating_add(1),
                Component::CurDir => {}
                Component::Normal(_) => named = true,
            }
        }
        if climbs > depth {
            return Err(self.unsafe_entry(
                shown,
                &format!("symlink target `{link_shown}` points outside the ImageBuilder"),
            ));
        }
        Ok(())
    }

    fn link_name<R: Read>(
        &self,
        entry: &tar::Entry<'_, R>,
        shown: &str,
    ) -> Result<PathBuf, IbError> {
        let link = entry
            .link_name_bytes()
            .ok_or_else(|| self.unsafe_entry(shown, "link without a target"))?;
        if link.is_empty() || link.len() > MAX_PATH_LEN {
            return Err(self.unsafe_entry(
                shown,
                &format!("link target is empty or longer than {MAX_PATH_LEN} bytes"),
            ));
        }
        Ok(PathBuf::from(OsStr::from_bytes(&link)))
    }

    /// Make room for a new non-directory at `target`: a later entry replaces an earlier file or
    /// link (as `tar` does), but never a directory.
    fn clear(&mut self, relative: &Path, target: &Path, shown: &str) -> Result<(), IbError> {
        match fs::symlink_metadata(target) {
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(IbError::io("inspect", target, error)),
            Ok(meta) if meta.is_dir() => {
                Err(self.unsafe_entry(shown, "replaces a directory extracted before it"))
            }
            Ok(_) => {
                self.symlinks.remove(relative);
                fs::remove_file(target).map_err(|error| IbError::io("replace", target, error))
            }
        }
    }

    fn make_dir(&self, target: &Path, mode: u32) -> Result<(), IbError> {
        fs::create_dir_all(target)
            .map_err(|error| IbError::io("create directory", target, error))?;
        fs::set_permissions(target, fs::Permissions::from_mode((mode & 0o755) | 0o700))
            .map_err(|error| IbError::io("set permissions of", target, error))
    }

    fn write_file(
        &self,
        entry: &mut impl Read,
        target: &Path,
        mode: u32,
        mtime: Option<u64>,
    ) -> Result<(), IbError> {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(target)
            .map_err(|error| IbError::io("create", target, error))?;
        io::copy(entry, &mut file).map_err(|error| self.read_error(error))?;
        if let Some(mtime) = mtime {
            let modified = SystemTime::UNIX_EPOCH
                .checked_add(Duration::from_secs(mtime))
                .unwrap_or(SystemTime::UNIX_EPOCH);
            file.set_modified(modified)
                .map_err(|error| IbError::io("set modification time of", target, error))?;
        }
        file.set_permissions(fs::Permissions::from_mode((mode & 0o755) | 0o600))
            .map_err(|error| IbError::io("set permissions of", target, error))
    }

    fn unsafe_entry(&self, entry: &str, reason: &str) -> IbError {
        IbError::UnsafeArchive {
            archive: self.archive.to_owned(),
            entry: entry.to_owned(),
            reason: reason.to_owned(),
        }
    }

    /// An error from decompressing or reading the tar stream.
    fn read_error(&self, error: io::Error) -> IbError {
        if error
            .get_ref()
            .is_some_and(|inner| inner.is::<StreamLimitReached>())
        {
            return IbError::TooLarge {
                what: format!("decompressed ImageBuilder `{}`", self.archive),
                limit: self.stream_limit,
            };
        }
        IbError::io("unpack", self.archive_path, error)
    }
}

/// An entry path for messages: lossy UTF-8, at most 200 characters, controls escaped.
fn show(raw: &[u8]) -> String {
    attendant_proto::excerpt::excerpt_bytes(raw, 200)
}

/// Marker error: the decompressed stream exceeded its cap.
#[derive(Debug)]
struct StreamLimitReached;

impl std::fmt::Display for StreamLimitReached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("decompressed stream limit reached")
    }
}

impl std::error::Error for StreamLimitReached {}

/// A reader that fails once more than `remaining` bytes have been read.
struct Capped<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        let read_u64 = u64::try_from(read).unwrap_or(u64::MAX);
        self.remaining = self
            .remaining
            .checked_sub(read_u64)
            .ok_or_else(|| io::Error::other(StreamLimitReached))?;
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One entry of a test archive.
    enum Item<'a> {
        Dir(&'a str),
        File(&'a str, &'a [u8], u32),
        Symlink(&'a str, &'a str),
        HardLink(&'a str, &'a str),
        Device(&'a str),
    }

    /// A plain (uncompressed) tar with `items`, writing names raw so that unsafe ones survive.
    fn tar_bytes(items: &[Item<'_>]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for item in items {
            let mut header = tar::Header::new_gnu();
            let (path, data): (&str, &[u8]) = match item {
                Item::Dir(path) => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(0o755);
                    (path, b"")
                }
                Item::File(path, data, mode) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(*mode);
                    (path, data)
                }
                Item::Symlink(path, target) | Item::HardLink(path, target) => {
                    header.set_entry_type(if matches!(item, Item::Symlink(..)) {
                        tar::EntryType::Symlink
                    } else {
                        tar::EntryType::Link
                    });
                    header.set_mode(0o777);
                    header.as_old_mut().linkname[..target.len()].copy_from_slice(target.as_bytes());
                    (path, b"")
                }
                Item::Device(path) => {
                    header.set_entry_type(tar::EntryType::Char);
                    header.set_mode(0o644);
                    (path, b"")
                }
            };
            header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
            header.set_size(data.len() as u64);
            header.set_mtime(1_700_000_000);
            header.set_cksum();
            builder.append(&header, data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn unpack_items(
        items: &[Item<'_>],
        limits: UnpackLimits,
    ) -> (tempfile::TempDir, Result<u64, IbError>) {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("ib.tar.zst");
        fs::write(
            &archive,
            zstd::encode_all(&tar_bytes(items)[..], 1).unwrap(),
        )
        .unwrap();
        let dest = dir.path().join("out");
        let result = unpack(&archive, "ib.tar.zst", Compression::Zstd, &dest, limits);
        (dir, result)
    }

    fn unsafe_reason(items: &[Item<'_>]) -> (String, String) {
        match unpack_items(items, UnpackLimits::default()).1 {
            Err(IbError::UnsafeArchive { entry, reason, .. }) => (entry, reason),
            other => panic!("expected UnsafeArchive, got {other:?}"),
        }
    }

    #[test]
    fn unpacks_tree_stripping_top_directory() {
        let (dir, result) = unpack_items(
            &[
                Item::Dir("ib/"),
                Item::File("ib/Makefile", b"all:\n", 0o644),
                Item::File("ib/scripts/run.sh", b"#!/bin/sh\n", 0o4755 & 0o755),
                Item::Symlink("ib/scripts/link", "../Makefile"),
                Item::HardLink("ib/Makefile.hard", "ib/Makefile"),
                Item::File("./ib/./again", b"x", 0o600),
            ],
            UnpackLimits::default(),
        );
        assert_eq!(result.unwrap(), 16);
        let out = dir.path().join("out");
        assert_eq!(fs::read(out.join("Makefile")).unwrap(), b"all:\n");
        assert_eq!(fs::read(out.join("scripts/link")).unwrap(), b"all:\n");
        assert_eq!(fs::read(out.join("Makefile.hard")).unwrap(), b"all:\n");
        let meta = fs::metadata(out.join("scripts/run.sh")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
        assert_eq!(
            meta.modified().unwrap(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
        );
    }

    #[test]
    fn unpacks_xz_archives() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("ib.tar.xz");
        let mut encoder = liblzma::write::XzEncoder::new(Vec::new(), 1);
        io::Write::write_all(
            &mut encoder,
            &tar_bytes(&[Item::File("ib/a", b"abc", 0o644)]),
        )
        .unwrap();
        fs::write(&archive, encoder.finish().unwrap()).unwrap();
        let dest = dir.path().join("out");
        let size = unpack(
            &archive,
            "ib.tar.xz",
            Compression::Xz,
            &dest,
            UnpackLimits::default(),
        );
        assert_eq!(size.unwrap(), 3);
        assert_eq!(fs::read(dest.join("a")).unwrap(), b"abc");
    }

    #[test]
    fn rejects_parent_dir_component() {
        let (entry, reason) = unsafe_reason(&[Item::File("ib/../x", b"x", 0o644)]);
        assert_eq!(entry, "ib/../x");
        assert_eq!(reason, "path contains a `..` component");
    }

    #[test]
    fn rejects_absolute_path() {
        let (entry, reason) = unsafe_reason(&[Item::File("/abs", b"x", 0o644)]);
        assert_eq!(entry, "/abs");
        assert_eq!(reason, "absolute path");
    }

    #[test]
    fn rejects_symlink_out_of_tree() {
        let (entry, reason) = unsafe_reason(&[Item::Symlink("ib/etc", "/etc")]);
        assert_eq!(entry, "ib/etc");
        assert_eq!(reason, "symlink target `/etc` is absolute");
        let (_, reason) = unsafe_reason(&[Item::Symlink("ib/a/up", "../../x")]);
        assert_eq!(
            reason,
            "symlink target `../../x` points outside the ImageBuilder"
        );
        let (_, reason) = unsafe_reason(&[Item::Symlink("ib/a/b", "c/../../..")]);
        assert_eq!(
            reason,
            "symlink target `c/../../..` has `..` after a name; only leading `..` are allowed"
        );
    }

    #[test]
    fn rejects_writing_through_symlink() {
        let (entry, reason) = unsafe_reason(&[
            Item::Symlink("ib/dir", "sub"),
            Item::File("ib/dir/file", b"x", 0o644),
        ]);
        assert_eq!(entry, "ib/dir/file");
        assert_eq!(reason, "path goes through the symlink `dir`");
    }

    #[test]
    fn rejects_hard_link_outside_tree() {
        let (_, reason) = unsafe_reason(&[Item::HardLink("ib/passwd", "/etc/passwd")]);
        assert_eq!(reason, "absolute path");
        let (_, reason) = unsafe_reason(&[
            Item::File("ib/a", b"x", 0o644),
            Item::HardLink("ib/b", "ib/missing"),
        ]);
        assert_eq!(
            reason,
            "hard link target `ib/missing` is not a regular file extracted before it"
        );
    }

    #[test]
    fn rejects_devices_and_setuid() {
        let (_, reason) = unsafe_reason(&[Item::Device("ib/dev/null")]);
        assert_eq!(reason, "device files are not allowed");
        let (_, reason) = unsafe_reason(&[Item::File("ib/su", b"x", 0o4755)]);
        assert_eq!(reason, "setuid or setgid bit set");
    }

    #[test]
    fn rejects_second_top_level_directory() {
        let error = unpack_items(
            &[
                Item::File("ib/a", b"x", 0o644),
                Item::File("other/b", b"x", 0o644),
            ],
            UnpackLimits::default(),
        )
        .1
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "refusing ImageBuilder archive `ib.tar.zst`: entry `other/b`: a second top-level \
             directory besides `ib`; an ImageBuilder archive has exactly one"
        );
    }

    #[test]
    fn rejects_archive_over_size_limit() {
        let limits = UnpackLimits {
            max_bytes: 5,
            max_entries: 10,
        };
        let (_, result) = unpack_items(
            &[
                Item::File("ib/a", b"abc", 0o644),
                Item::File("ib/b", b"abc", 0o644),
            ],
            limits,
        );
        assert_eq!(
            result.unwrap_err().to_string(),
            "unpacked ImageBuilder `ib.tar.zst` is larger than the limit of 5 bytes"
        );
    }

    #[test]
    fn rejects_archive_over_entry_limit() {
        let limits = UnpackLimits {
            max_bytes: 100,
            max_entries: 2,
        };
        let (_, result) = unpack_items(
            &[
                Item::Dir("ib/"),
                Item::File("ib/a", b"a", 0o644),
                Item::File("ib/b", b"b", 0o644),
            ],
            limits,
        );
        assert!(
            matches!(result, Err(IbError::TooManyEntries { limit: 2, .. })),
            "{result:?}"
        );
    }
}
