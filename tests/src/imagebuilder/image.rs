//! Image assembly: what `make image` writes into `BIN_DIR`.
//!
//! - images named like the real ones: `openwrt-<version>-<EXTRA_IMAGE_NAME>-<board>-<subtarget>-
//!   <profile>-<filesystem>-<suffix>` (`include/image.mk` `IMG_PREFIX`; snapshots omit the
//!   version, branch snapshots put `<branch>-snapshot-<revision>`), each a small deterministic
//!   description of its contents (packages, `FILES`, options), gzip streams for `.img.gz`, with
//!   an fwtool metadata trailer (<https://github.com/openwrt/firmware-utils/blob/master/src/fwtool.c>)
//!   on every installable image;
//! - `<image_prefix>.manifest` (`name - version` for opkg, `name version` for apk);
//! - `profiles.json` (the format of downloads.openwrt.org's, see `attendant_proto::upstream`) for
//!   the built profile;
//! - `sha256sums` (`<sha256> *<file>` lines, sorted).
//!
//! The flash check follows `Build/check-size`: the estimated size (kernel plus the compressed
//! rootfs, from the packages' `Installed-Size`) is compared with the profile's `IMAGE_SIZE`,
//! and a failure prints `WARNING: Image file <path> is too big: <size> > <limit>`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use attendant_proto::fwtool::{self, ImageVersion, Metadata};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::catalog::{PackageManager, Profile};
use crate::gzip::gzip_stored;
use crate::imagebuilder::ImagebuilderMeta;
use crate::imagebuilder::resolve::Installed;

/// Most bytes the `FILES` directory may hold (the fixture embeds it in every image).
pub const MAX_FILES_BYTES: u64 = 1024 * 1024;
/// Most entries the `FILES` directory may hold.
pub const MAX_FILES_ENTRIES: usize = 1000;
/// Share of `Installed-Size` a squashfs/xz rootfs takes, in percent.
const COMPRESSED_PERCENT: u64 = 40;
/// Erase block the rootfs is padded to.
const ERASE_BLOCK: u64 = 64 * 1024;

/// The options of one `make image` (already filtered by make).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageRequest {
    /// The ImageBuilder's top directory (for the paths printed in messages).
    pub topdir: PathBuf,
    /// Profile id (without `DEVICE_`).
    pub profile: String,
    /// `FILES`.
    pub files: Option<PathBuf>,
    /// `EXTRA_IMAGE_NAME`.
    pub extra_image_name: Option<String>,
    /// `ROOTFS_PARTSIZE` (MiB, as given).
    pub rootfs_partsize: Option<String>,
    /// `ROOTFS_FILESYSTEM`.
    pub rootfs_filesystem: Option<String>,
    /// `SOURCE_DATE_EPOCH`.
    pub source_date_epoch: Option<String>,
}

/// One built image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    /// File name.
    pub name: String,
    /// `type` (`sysupgrade`, `combined`, ...).
    pub kind: String,
    /// Filesystem (`squashfs`, `ext4`, `initramfs`).
    pub filesystem: String,
    /// Contents.
    pub bytes: Vec<u8>,
}

/// Everything `make image` produces for one profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    /// `image_prefix`.
    pub image_prefix: String,
    /// The images, sorted by name.
    pub images: Vec<BuiltImage>,
    /// The `<image_prefix>.manifest` text.
    pub manifest: String,
    /// The `profiles.json` entry of the profile.
    pub profile_json: Value,
    /// The reproducible-build timestamp used.
    pub source_date_epoch: u64,
}

/// Why `make image` failed; `Display` is the line the ImageBuilder prints.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// The profile is not in `.profiles.mk` (make catches this first).
    #[error("Profile \"{0}\" does not exist!")]
    UnknownProfile(String),
    /// `Build/check-size` failed.
    #[error("WARNING: Image file {path} is too big: {size} > {limit}")]
    TooBig {
        /// Path of the image in the build directory.
        path: String,
        /// Estimated size, bytes.
        size: u64,
        /// `IMAGE_SIZE`, bytes.
        limit: u64,
    },
    /// `ROOTFS_FILESYSTEM` names a filesystem the target does not build.
    #[error(
        "ERROR: ROOTFS_FILESYSTEM \"{found}\" is not enabled for this target (enabled: {enabled})"
    )]
    BadFilesystem {
        /// The value given.
        found: String,
        /// The target's filesystems.
        enabled: String,
    },
    /// `ROOTFS_PARTSIZE` is not a positive number of MiB.
    #[error("ERROR: ROOTFS_PARTSIZE \"{0}\" is not a size in MiB")]
    BadPartsize(String),
    /// `SOURCE_DATE_EPOCH` is not a number.
    #[error("ERROR: SOURCE_DATE_EPOCH \"{0}\" is not a number of seconds")]
    BadEpoch(String),
    /// The `FILES` directory is missing, unreadable or too large.
    #[error("ERROR: cannot use FILES directory `{path}`: {reason}")]
    Files {
        /// The directory.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The metadata trailer could not be written.
    #[error("ERROR: cannot append image metadata: {0}")]
    Metadata(#[from] fwtool::FwtoolError),
}

/// Assembles the images of `request.profile` from `installed`.
pub fn assemble(
    meta: &ImagebuilderMeta,
    installed: &[Installed],
    request: &ImageRequest,
) -> Result<Built, ImageError> {
    let target = &meta.target;
    let profile = target
        .profile(&request.profile)
        .ok_or_else(|| ImageError::UnknownProfile(request.profile.clone()))?;
    let source_date_epoch = match request
        .source_date_epoch
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        Some(text) => text
            .parse()
            .map_err(|_| ImageError::BadEpoch(text.to_owned()))?,
        None => meta.source_date_epoch,
    };
    let filesystems = filesystems(meta, request)?;
    let partsize = partsize(meta, request)?;
    let files = read_files(request.files.as_deref())?;
    let image_prefix = image_prefix(meta, &profile.id, request.extra_image_name.as_deref());
    let manifest = manifest(installed, meta.package_manager, false);
    let total_installed: u64 = installed.iter().map(|p| p.installed_size).sum();
    let estimated = target
        .kernel_kib
        .saturating_mul(1024)
        .saturating_add(align_up(
            total_installed.saturating_mul(COMPRESSED_PERCENT) / 100,
            ERASE_BLOCK,
        ));

    let mut images = Vec::new();
    for spec in &profile.images {
        let spec_filesystems = match &spec.fixed_filesystem {
            Some(fixed) => vec![fixed.clone()],
            None => filesystems.clone(),
        };
        for filesystem in spec_filesystems {
            let name = format!("{image_prefix}-{filesystem}-{}", spec.suffix);
            if spec.size_checked
                && let Some(limit) = profile.image_size_kib.map(|kib| kib.saturating_mul(1024))
                && estimated > limit
            {
                let path = request.topdir.join(format!(
                    "build_dir/target-{}_musl/linux-{}_{}/tmp/{name}",
                    target.arch_packages, target.board, target.subtarget
                ));
                return Err(ImageError::TooBig {
                    path: path.display().to_string(),
                    size: estimated,
                    limit,
                });
            }
            let mut description = String::new();
            let _ = writeln!(
                description,
                "OpenWrt image (Attendant fixture ImageBuilder)"
            );
            let _ = writeln!(description, "name: {name}");
            let _ = writeln!(description, "type: {}", spec.kind);
            let _ = writeln!(description, "filesystem: {filesystem}");
            let _ = writeln!(description, "profile: {}", profile.id);
            let _ = writeln!(description, "target: {}", target.name());
            let _ = writeln!(description, "version: {} {}", meta.version, meta.revision);
            let _ = writeln!(description, "source_date_epoch: {source_date_epoch}");
            let _ = writeln!(description, "estimated_size: {estimated}");
            if let Some(size) = partsize {
                let _ = writeln!(description, "rootfs_partsize_mb: {size}");
            }
            description.push_str("packages:\n");
            description.push_str(&manifest);
            description.push_str("files:\n");
            let mut body = description.into_bytes();
            for (path, contents) in &files {
                body.extend_from_slice(format!("{path} {}\n", contents.len()).as_bytes());
                body.extend_from_slice(contents);
                body.push(b'\n');
            }
            let mut bytes = if spec.gzip { gzip_stored(&body) } else { body };
            if spec.metadata {
                fwtool::append_metadata(&mut bytes, &metadata(meta, profile))?;
            }
            images.push(BuiltImage {
                name,
                kind: spec.kind.clone(),
                filesystem,
                bytes,
            });
        }
    }
    images.sort_by(|a, b| a.name.cmp(&b.name));
    let profile_json = profile_json(profile, &image_prefix, &images);
    Ok(Built {
        image_prefix,
        images,
        manifest,
        profile_json,
        source_date_epoch,
    })
}

/// What an image of this ImageBuilder holds, read back from its description: what a router
/// flashed with it runs after the reboot ([`crate::reboot`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageContents {
    /// The release, e.g. `24.10.5`.
    pub version: String,
    /// The release's revision, e.g. `r28959-29397011cc`.
    pub revision: String,
    /// The profile it was built for.
    pub profile: String,
    /// The `FILES` it embeds: absolute path and contents, sorted by path.
    pub files: Vec<(String, Vec<u8>)>,
}

/// Why [`read_contents`] could not read an image.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContentsError {
    /// The bytes do not start with this ImageBuilder's description (a gzip image, or another
    /// ImageBuilder's).
    #[error("not an image of the fixture ImageBuilder (gzip images are not read)")]
    NotAnImage,
    /// A line the description must have is missing or malformed.
    #[error("the image description has no valid `{0}` line")]
    Missing(&'static str),
    /// A `FILES` entry's header or length does not fit the image.
    #[error("the embedded file entry at byte {0} is truncated")]
    TruncatedFile(usize),
}

/// Reads back what [`assemble`] wrote into an uncompressed image: release, profile and the
/// embedded `FILES` (the fwtool trailer after them is ignored).
pub fn read_contents(image: &[u8]) -> Result<ImageContents, ContentsError> {
    const HEADER: &[u8] = b"OpenWrt image (Attendant fixture ImageBuilder)\n";
    const FILES: &[u8] = b"\nfiles:\n";
    if !image.starts_with(HEADER) {
        return Err(ContentsError::NotAnImage);
    }
    let start = image
        .windows(FILES.len())
        .position(|window| window == FILES)
        .ok_or(ContentsError::Missing("files:"))?;
    let head = String::from_utf8_lossy(image.get(..start).unwrap_or_default());
    let field = |name: &'static str| {
        head.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(": "))
            .ok_or(ContentsError::Missing(name))
    };
    let (version, revision) = field("version")?
        .split_once(' ')
        .ok_or(ContentsError::Missing("version"))?;
    let profile = field("profile")?.to_owned();
    // Each entry is `<path> <length>\n<contents>\n`; the first line that is not one (the
    // fwtool trailer, or nothing) ends the list.
    let mut files = Vec::new();
    let mut at = start + FILES.len();
    while let Some(rest) = image.get(at..) {
        let Some(end) = rest.iter().position(|b| *b == b'\n') else {
            break;
        };
        let line = String::from_utf8_lossy(rest.get(..end).unwrap_or_default());
        let Some((path, len)) = line
            .rsplit_once(' ')
            .filter(|(path, _)| path.starts_with('/'))
            .and_then(|(path, len)| Some((path.to_owned(), len.parse::<usize>().ok()?)))
        else {
            break;
        };
        let body = end + 1;
        let contents = rest
            .get(body..body.saturating_add(len))
            .filter(|_| rest.get(body.saturating_add(len)) == Some(&b'\n'))
            .ok_or(ContentsError::TruncatedFile(at))?;
        files.push((path, contents.to_vec()));
        at += body + len + 1;
    }
    Ok(ImageContents {
        version: version.to_owned(),
        revision: revision.to_owned(),
        profile,
        files,
    })
}

/// The manifest: `name - version` (opkg) or `name version` (apk) lines, sorted; with
/// `strip_abi` the names lose their ABI suffix (`make manifest STRIP_ABI=1` on opkg).
pub fn manifest(installed: &[Installed], manager: PackageManager, strip_abi: bool) -> String {
    let mut lines: Vec<String> = installed
        .iter()
        .map(|p| {
            let name = if strip_abi { &p.name } else { &p.package };
            match manager {
                PackageManager::Opkg => format!("{name} - {}\n", p.version),
                PackageManager::Apk => format!("{name} {}\n", p.version),
            }
        })
        .collect();
    lines.sort();
    lines.dedup();
    lines.concat()
}

/// The `profiles.json` document for `profiles` (profile id → entry).
pub fn profiles_json(
    meta: &ImagebuilderMeta,
    profiles: BTreeMap<String, Value>,
    source_date_epoch: u64,
) -> Value {
    let mut document = json!({
        "arch_packages": meta.target.arch_packages,
        "default_packages": meta.default_packages,
        "metadata_version": 1,
        "profiles": profiles,
        "source_date_epoch": source_date_epoch,
        "target": meta.target.name(),
        "version_code": meta.revision,
        "version_number": meta.version,
    });
    if meta.linux_kernel_in_profiles
        && let Some(object) = document.as_object_mut()
    {
        object.insert(
            "linux_kernel".to_owned(),
            json!({
                "release": meta.kernel.release,
                "vermagic": meta.kernel.vermagic,
                "version": meta.kernel.version,
            }),
        );
    }
    document
}

/// `sha256sums` for `files` (name → contents): `<hex> *<name>` lines sorted by name.
pub fn sha256sums<'a>(files: impl Iterator<Item = (&'a str, &'a [u8])>) -> String {
    let mut lines: Vec<String> = files
        .map(|(name, bytes)| format!("{} *{name}\n", hex::encode(Sha256::digest(bytes))))
        .collect();
    lines.sort_by(|a, b| {
        a.split_once('*')
            .map(|x| x.1)
            .cmp(&b.split_once('*').map(|x| x.1))
    });
    lines.concat()
}

/// `image_prefix`: `openwrt-<version part><extra->-<board>-<subtarget>-<profile>`.
pub fn image_prefix(
    meta: &ImagebuilderMeta,
    profile: &str,
    extra_image_name: Option<&str>,
) -> String {
    let extra = extra_image_name
        .filter(|e| !e.is_empty())
        .map(|e| format!("{}-", sanitize(e)))
        .unwrap_or_default();
    format!(
        "openwrt-{}{extra}{}-{}-{profile}",
        meta.image_name_version, meta.target.board, meta.target.subtarget
    )
}

/// OpenWrt's `sanitize`: lowercase, spaces and underscores to dashes.
fn sanitize(text: &str) -> String {
    text.to_lowercase().replace([' ', '_'], "-")
}

fn filesystems(meta: &ImagebuilderMeta, request: &ImageRequest) -> Result<Vec<String>, ImageError> {
    let enabled = &meta.target.filesystems;
    match request
        .rootfs_filesystem
        .as_deref()
        .filter(|f| !f.is_empty())
    {
        // ImageBuilders before openwrt PR 23425 ignore the variable.
        Some(_) if !meta.rootfs_filesystem_option => Ok(enabled.clone()),
        Some(wanted) if enabled.iter().any(|f| f == wanted) => Ok(vec![wanted.to_owned()]),
        Some(wanted) => Err(ImageError::BadFilesystem {
            found: wanted.to_owned(),
            enabled: enabled.join(" "),
        }),
        None => Ok(enabled.clone()),
    }
}

fn partsize(meta: &ImagebuilderMeta, request: &ImageRequest) -> Result<Option<u64>, ImageError> {
    let Some(default) = meta.target.rootfs_partsize_mb else {
        return Ok(None);
    };
    match request.rootfs_partsize.as_deref().filter(|s| !s.is_empty()) {
        None => Ok(Some(default)),
        Some(text) => match text.parse::<u64>() {
            Ok(size) if size > 0 => Ok(Some(size)),
            _ => Err(ImageError::BadPartsize(text.to_owned())),
        },
    }
}

fn read_files(dir: Option<&Path>) -> Result<Vec<(String, Vec<u8>)>, ImageError> {
    let Some(dir) = dir.filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(Vec::new());
    };
    let fail = |reason: String| ImageError::Files {
        path: dir.display().to_string(),
        reason,
    };
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    let mut total: u64 = 0;
    while let Some(current) = pending.pop() {
        let entries = fs::read_dir(&current).map_err(|e| fail(e.to_string()))?;
        for entry in entries {
            let entry = entry.map_err(|e| fail(e.to_string()))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(|e| fail(e.to_string()))?;
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() {
                let contents = fs::read(&path).map_err(|e| fail(e.to_string()))?;
                total = total.saturating_add(contents.len() as u64);
                let relative = path.strip_prefix(dir).unwrap_or(&path);
                files.push((format!("/{}", relative.display()), contents));
            }
            if files.len() > MAX_FILES_ENTRIES || total > MAX_FILES_BYTES {
                return Err(fail(format!(
                    "more than {MAX_FILES_ENTRIES} files or {MAX_FILES_BYTES} bytes"
                )));
            }
        }
    }
    files.sort();
    Ok(files)
}

fn metadata(meta: &ImagebuilderMeta, profile: &Profile) -> Metadata {
    let compat = profile
        .compat_version
        .clone()
        .unwrap_or_else(|| "1.0".to_owned());
    let devices = profile.supported_devices.clone();
    let (supported_devices, new_supported_devices) = if compat == "1.0" {
        (Some(devices), None)
    } else {
        // What `metadata_json` puts in `supported_devices` for devices that predate
        // compat_version: one message instead of board names.
        let mut message = format!(
            "{} - Image version mismatch: image {compat}, device 1.0. Please wipe config during upgrade (force required) or reinstall.",
            devices.join(" ")
        );
        if let Some(reason) = &profile.compat_message {
            let _ = write!(message, " Reason: {reason}");
        }
        (Some(vec![message]), Some(devices))
    };
    Metadata {
        supported_devices,
        new_supported_devices,
        compat_version: Some(compat),
        compat_message: profile.compat_message.clone(),
        metadata_version: Some("1.1".to_owned()),
        version: Some(ImageVersion {
            dist: Some("OpenWrt".to_owned()),
            version: Some(meta.version.clone()),
            revision: Some(meta.revision.clone()),
            target: Some(meta.target.name()),
            board: Some(profile.id.clone()),
            ..ImageVersion::default()
        }),
        ..Metadata::default()
    }
}

fn profile_json(profile: &Profile, image_prefix: &str, images: &[BuiltImage]) -> Value {
    let images: Vec<Value> = images
        .iter()
        .map(|image| {
            let sha256 = hex::encode(Sha256::digest(&image.bytes));
            // Without a signature block, stripping the signature changes nothing.
            json!({
                "filesystem": image.filesystem,
                "name": image.name,
                "sha256": sha256,
                "sha256_unsigned": sha256,
                "type": image.kind,
            })
        })
        .collect();
    json!({
        "device_packages": profile.device_packages,
        "image_prefix": image_prefix,
        "images": images,
        "supported_devices": profile.supported_devices,
        "titles": [profile.title],
    })
}

fn align_up(value: u64, block: u64) -> u64 {
    value.div_ceil(block).saturating_mul(block)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_lowercases_and_dashes() {
        assert_eq!(sanitize("AbC_d e"), "abc-d-e");
    }

    #[test]
    fn manifest_formats_follow_the_package_manager() {
        let installed = vec![Installed {
            package: "libubox20240329".to_owned(),
            name: "libubox".to_owned(),
            version: "2024.03.29~x-r1".to_owned(),
            installed_size: 1,
        }];
        assert_eq!(
            manifest(&installed, PackageManager::Opkg, false),
            "libubox20240329 - 2024.03.29~x-r1\n"
        );
        assert_eq!(
            manifest(&installed, PackageManager::Opkg, true),
            "libubox - 2024.03.29~x-r1\n"
        );
        assert_eq!(
            manifest(&installed, PackageManager::Apk, false),
            "libubox20240329 2024.03.29~x-r1\n"
        );
    }

    #[test]
    fn sha256sums_lines_are_sorted_by_name() {
        let text = sha256sums([("b", &b"x"[..]), ("a", &b""[..])].into_iter());
        assert_eq!(
            text,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 *a\n2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881 *b\n"
        );
    }

    #[test]
    fn read_contents_gives_back_the_release_profile_and_files() {
        let catalog = crate::catalog::Catalog::new(crate::seed::Seed(1));
        let release = catalog.release("24.10.5").unwrap();
        let target = catalog.target("ath79/generic").unwrap();
        let meta = ImagebuilderMeta::new(&catalog, release, target, &[]);
        let files = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(files.path().join("etc/attendant")).unwrap();
        std::fs::write(
            files.path().join("etc/attendant/channel.json"),
            "{\"a\":1}\n",
        )
        .unwrap();
        std::fs::write(files.path().join("etc/banner"), "two\nlines").unwrap();
        let request = ImageRequest {
            profile: "tplink_archer-c7-v5".to_owned(),
            files: Some(files.path().to_owned()),
            ..ImageRequest::default()
        };
        let built = assemble(&meta, &[], &request).unwrap();
        let image = built
            .images
            .iter()
            .find(|i| i.kind == "sysupgrade")
            .unwrap();
        let contents = read_contents(&image.bytes).unwrap();
        assert_eq!(contents.version, "24.10.5");
        assert_eq!(contents.revision, release.revision);
        assert_eq!(contents.profile, "tplink_archer-c7-v5");
        assert_eq!(
            contents.files,
            [
                (
                    "/etc/attendant/channel.json".to_owned(),
                    b"{\"a\":1}\n".to_vec()
                ),
                ("/etc/banner".to_owned(), b"two\nlines".to_vec()),
            ]
        );
        // Cut inside the second file: named, not a panic.
        let cut = image.bytes.windows(5).position(|w| w == b"lines").unwrap() + 2;
        assert!(matches!(
            read_contents(&image.bytes[..cut]),
            Err(ContentsError::TruncatedFile(_))
        ));
        assert!(matches!(
            read_contents(b"\x1f\x8b"),
            Err(ContentsError::NotAnImage)
        ));
    }

    #[test]
    fn error_texts_match_the_imagebuilder() {
        let error = ImageError::TooBig {
            path: "/ib/x.bin".to_owned(),
            size: 9,
            limit: 8,
        };
        assert_eq!(
            error.to_string(),
            "WARNING: Image file /ib/x.bin is too big: 9 > 8"
        );
    }
}
