//! The upstream's `sha256sums` file and the ImageBuilder archive name.
//!
//! Format (written by OpenWrt's buildbot with `sha256sum -b`): one line per file,
//! `<64 lowercase hex digits> *<file name>`; GNU's text-mode separator (two spaces) is accepted
//! too. The file sits next to the images in `<version_path>/targets/<target>/<subtarget>/` and is
//! signed by `sha256sums.sig` (usign).
//!
//! The ImageBuilder archive is named `openwrt-imagebuilder-<version>-<target>-<subtarget>.
//! Linux-x86_64.tar.<xz|zst>` for releases and release-branch snapshots, with the version
//! lowercased as in every OpenWrt image name (`24.10-snapshot`), and without the version for the
//! main `SNAPSHOT` (the ImageBuilder container's `setup.sh` greps
//! `imagebuilder-.*x86_64.tar.[xz|zst]`, <https://github.com/openwrt/docker>). 24.10 and older ship `.tar.xz`,
//! 25.12 and snapshots `.tar.zst`.

use super::IbError;

/// Largest `sha256sums` we read. A target directory lists a few hundred files (~100 bytes per
/// line); 4 MiB leaves room for any real mirror and bounds memory.
pub(crate) const MAX_SHA256SUMS_LEN: u64 = 4 << 20;

/// How an archive is compressed, from its file name extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    /// `.tar.zst`.
    Zstd,
    /// `.tar.xz`.
    Xz,
}

impl Compression {
    /// The extension after `.tar`.
    pub(crate) fn extension(self) -> &'static str {
        match self {
            Self::Zstd => "zst",
            Self::Xz => "xz",
        }
    }
}

/// The ImageBuilder archive as listed in `sha256sums`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ArchiveListing {
    /// Its file name.
    pub(crate) name: String,
    /// Its SHA-256, lowercase hex.
    pub(crate) sha256: String,
    /// Its compression.
    pub(crate) compression: Compression,
}

/// The archive file names to look for, best first: with the version, then without (main
/// snapshots); `.tar.zst` before `.tar.xz` when a directory has both.
pub(crate) fn candidate_names(
    version: &str,
    target: &str,
    subtarget: &str,
) -> Vec<(String, Compression)> {
    let version = version.to_lowercase();
    let mut names = Vec::with_capacity(4);
    for stem in [
        format!("openwrt-imagebuilder-{version}-{target}-{subtarget}.Linux-x86_64"),
        format!("openwrt-imagebuilder-{target}-{subtarget}.Linux-x86_64"),
    ] {
        for compression in [Compression::Zstd, Compression::Xz] {
            names.push((
                format!("{stem}.tar.{}", compression.extension()),
                compression,
            ));
        }
    }
    names
}

/// The name shown in [`IbError::NotFound`] when no archive is listed: the expected stem with
/// both extensions.
pub(crate) fn expected_name(version: &str, target: &str, subtarget: &str) -> String {
    if version.eq_ignore_ascii_case("SNAPSHOT") {
        format!("openwrt-imagebuilder-{target}-{subtarget}.Linux-x86_64.tar.{{zst,xz}}")
    } else {
        let version = version.to_lowercase();
        format!("openwrt-imagebuilder-{version}-{target}-{subtarget}.Linux-x86_64.tar.{{zst,xz}}")
    }
}

/// Find the ImageBuilder archive in the text of a signed `sha256sums` fetched from `url`.
///
/// Returns `Ok(None)` when none of the [`candidate_names`] is listed. Every line is checked, so a
/// malformed file is refused whole rather than half-read.
pub(crate) fn find_archive(
    sums: &str,
    url: &str,
    version: &str,
    target: &str,
    subtarget: &str,
) -> Result<Option<ArchiveListing>, IbError> {
    let candidates = candidate_names(version, target, subtarget);
    let mut best: Option<(usize, ArchiveListing)> = None;
    for (index, line) in sums.lines().enumerate() {
        let line_number = index.saturating_add(1);
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let (sha256, name) = parse_line(line).map_err(|reason| IbError::ChecksumsMalformed {
            url: url.to_owned(),
            line: line_number,
            reason: reason.to_owned(),
        })?;
        let Some(rank) = candidates
            .iter()
            .position(|(candidate, _)| candidate == name)
        else {
            continue;
        };
        if best
            .as_ref()
            .is_some_and(|(best_rank, _)| *best_rank <= rank)
        {
            continue;
        }
        let Some((_, compression)) = candidates.get(rank) else {
            continue;
        };
        best = Some((
            rank,
            ArchiveListing {
                name: name.to_owned(),
                sha256: sha256.to_ascii_lowercase(),
                compression: *compression,
            },
        ));
    }
    Ok(best.map(|(_, listing)| listing))
}

/// Split `<hash> *<name>` (or `<hash>  <name>`) into hash and name.
fn parse_line(line: &str) -> Result<(&str, &str), &'static str> {
    let (sha256, rest) = line
        .split_once(' ')
        .ok_or("no space between checksum and file name")?;
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("the checksum is not 64 hex digits");
    }
    let name = rest
        .strip_prefix('*')
        .or_else(|| rest.strip_prefix(' '))
        .ok_or("expected `*` or a second space before the file name")?;
    if name.is_empty() {
        return Err("the file name is empty");
    }
    Ok((sha256, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const HASH_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn find(sums: &str, version: &str) -> Result<Option<ArchiveListing>, IbError> {
        find_archive(sums, "http://mirror/sha256sums", version, "x86", "64")
    }

    #[test]
    fn finds_release_archive_with_version_in_name() {
        let sums = format!(
            "{HASH_B} *openwrt-24.10.0-x86-64-generic-ext4-combined.img.gz\n\
             {HASH_A} *openwrt-imagebuilder-24.10.0-x86-64.Linux-x86_64.tar.xz\n"
        );
        let listing = find(&sums, "24.10.0").unwrap().unwrap();
        assert_eq!(
            listing.name,
            "openwrt-imagebuilder-24.10.0-x86-64.Linux-x86_64.tar.xz"
        );
        assert_eq!(listing.sha256, HASH_A);
        assert_eq!(listing.compression, Compression::Xz);
    }

    #[test]
    fn finds_snapshot_archive_without_version() {
        let sums = format!("{HASH_A}  openwrt-imagebuilder-x86-64.Linux-x86_64.tar.zst\r\n");
        let listing = find(&sums, "SNAPSHOT").unwrap().unwrap();
        assert_eq!(
            listing.name,
            "openwrt-imagebuilder-x86-64.Linux-x86_64.tar.zst"
        );
        assert_eq!(listing.compression, Compression::Zstd);
    }

    #[test]
    fn finds_branch_snapshot_archive_with_lowercased_version() {
        let sums =
            format!("{HASH_A} *openwrt-imagebuilder-24.10-snapshot-x86-64.Linux-x86_64.tar.zst\n");
        let listing = find(&sums, "24.10-SNAPSHOT").unwrap().unwrap();
        assert_eq!(
            listing.name,
            "openwrt-imagebuilder-24.10-snapshot-x86-64.Linux-x86_64.tar.zst"
        );
    }

    #[test]
    fn prefers_zstd_over_xz() {
        let sums = format!(
            "{HASH_A} *openwrt-imagebuilder-25.12.0-x86-64.Linux-x86_64.tar.xz\n\
             {HASH_B} *openwrt-imagebuilder-25.12.0-x86-64.Linux-x86_64.tar.zst\n"
        );
        let listing = find(&sums, "25.12.0").unwrap().unwrap();
        assert_eq!(listing.sha256, HASH_B);
        assert_eq!(listing.compression, Compression::Zstd);
    }

    #[test]
    fn ignores_other_versions_and_targets() {
        let sums = format!(
            "{HASH_A} *openwrt-imagebuilder-24.10.1-x86-64.Linux-x86_64.tar.xz\n\
             {HASH_B} *openwrt-imagebuilder-24.10.0-x86-generic.Linux-x86_64.tar.xz\n"
        );
        assert_eq!(find(&sums, "24.10.0").unwrap(), None);
    }

    #[test]
    fn rejects_malformed_line_with_its_number() {
        let sums = format!("{HASH_A} *a\nnot-a-hash *b\n");
        let error = find(&sums, "24.10.0").unwrap_err();
        assert_eq!(
            error.to_string(),
            "`http://mirror/sha256sums` line 2 is not `<sha256> *<file name>`: the checksum is \
             not 64 hex digits"
        );
        let error = find(&format!("{HASH_A}-x"), "24.10.0").unwrap_err();
        assert!(matches!(error, IbError::ChecksumsMalformed { line: 1, .. }));
    }

    #[test]
    fn expected_name_has_no_version_for_main_snapshot() {
        assert_eq!(
            expected_name("SNAPSHOT", "ath79", "generic"),
            "openwrt-imagebuilder-ath79-generic.Linux-x86_64.tar.{zst,xz}"
        );
        assert_eq!(
            expected_name("24.10-SNAPSHOT", "ath79", "generic"),
            "openwrt-imagebuilder-24.10-snapshot-ath79-generic.Linux-x86_64.tar.{zst,xz}"
        );
    }
}
