//! The `attendant-ib-helper` program: what the fixture ImageBuilder's Makefile runs in place of
//! opkg/apk and the image recipes.
//!
//! Usage (make passes every value, empty ones included):
//!
//! ```text
//! attendant-ib-helper install  TOPDIR=<ib> PACKAGES="<BUILD_PACKAGES>"
//! attendant-ib-helper manifest TOPDIR=<ib> PACKAGES="..." STRIP_ABI=<1 or empty>
//! attendant-ib-helper image    TOPDIR=<ib> PROFILE=DEVICE_<id> PACKAGES="..." BIN_DIR=<dir>
//!                              FILES=<dir> EXTRA_IMAGE_NAME=<s> ROOTFS_PARTSIZE=<MiB>
//!                              ROOTFS_FILESYSTEM=<fs> SOURCE_DATE_EPOCH=<s>
//! ```
//!
//! It keeps no state inside the ImageBuilder (each command resolves the package set again), so
//! several builds may share one unpacked ImageBuilder as long as their `BIN_DIR`s differ.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use attendant_proto::index::{MAX_PACKAGES_BYTES, PackageEntry, parse_packages_detailed};
use attendant_proto::usign::{PublicKey, Signature};

use crate::catalog::{Feed, PackageManager};
use crate::imagebuilder::fetch;
use crate::imagebuilder::image::{self, ImageRequest};
use crate::imagebuilder::resolve::{self, Index, Report};
use crate::imagebuilder::{ImagebuilderMeta, META_FILE, feed_url, release_path};

/// Largest `.attendant-imagebuilder.json` accepted, in bytes.
pub const MAX_META_BYTES: u64 = 4 * 1024 * 1024;
/// Largest repositories file accepted, in bytes.
pub const MAX_REPOSITORIES_BYTES: u64 = 64 * 1024;
/// Largest `Packages.sig` or key file read, in bytes (real ones are about 150).
pub const MAX_SIGNATURE_BYTES: usize = 4096;

/// Why the helper could not run (not a package or image failure, which the tools report in
/// their own words).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HelperError {
    /// The command line is not `<command> KEY=VALUE...`.
    #[error("usage: attendant-ib-helper install|manifest|image KEY=VALUE...: {0}")]
    Usage(String),
    /// A required `KEY=VALUE` is missing.
    #[error("missing `{0}=` argument")]
    MissingArgument(&'static str),
    /// A file of the ImageBuilder could not be read.
    #[error("cannot read `{path}`: {reason}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A file of the ImageBuilder exceeds its limit.
    #[error("`{path}` is larger than {max} bytes")]
    TooLarge {
        /// The file.
        path: String,
        /// The limit.
        max: u64,
    },
    /// A file of the ImageBuilder is malformed.
    #[error("`{path}` is not valid: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// An output file could not be written.
    #[error("cannot write `{path}`: {reason}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// An unpacked fixture ImageBuilder: its metadata and the package lists it resolves against.
#[derive(Debug, Clone)]
pub struct Imagebuilder {
    /// Top directory.
    pub topdir: PathBuf,
    /// `.attendant-imagebuilder.json`.
    pub meta: ImagebuilderMeta,
    /// The packages of every configured feed whose list is present.
    pub index: Index,
    /// Repository lines whose list the fixture cannot fetch (apk custom feeds).
    pub unavailable: Vec<String>,
    /// What `opkg update` printed while downloading the lists of feeds other than the
    /// release's own (extra repositories); empty when there are none.
    pub update_log: String,
}

impl Imagebuilder {
    /// Reads the ImageBuilder at `topdir`.
    pub fn load(topdir: &Path) -> Result<Self, HelperError> {
        let meta_path = topdir.join(META_FILE);
        let meta_bytes = read_limited(&meta_path, MAX_META_BYTES)?;
        let meta: ImagebuilderMeta =
            serde_json::from_slice(&meta_bytes).map_err(|e| HelperError::Invalid {
                path: meta_path.display().to_string(),
                reason: e.to_string(),
            })?;
        let (repositories_name, lists) = match meta.package_manager {
            PackageManager::Opkg => (
                "repositories.conf",
                opkg_lists as fn(&str, &ImagebuilderMeta) -> Vec<Source>,
            ),
            PackageManager::Apk => (
                "repositories",
                apk_lists as fn(&str, &ImagebuilderMeta) -> Vec<Source>,
            ),
        };
        let repositories_path = topdir.join(repositories_name);
        let repositories = read_limited(&repositories_path, MAX_REPOSITORIES_BYTES)?;
        let repositories = String::from_utf8_lossy(&repositories);
        let check_signature = repositories
            .lines()
            .any(|line| line.trim() == "option check_signature");
        let mut entries = Vec::new();
        let mut unavailable = Vec::new();
        let mut update = Update::default();
        for source in lists(&repositories, &meta) {
            match source {
                Source::List(name) => {
                    let path = topdir.join("dl").join(name);
                    let bytes = read_limited(&path, MAX_PACKAGES_BYTES as u64)?;
                    let parsed =
                        parse_packages_detailed(&bytes).map_err(|e| HelperError::Invalid {
                            path: path.display().to_string(),
                            reason: e.to_string(),
                        })?;
                    entries.extend(parsed);
                }
                Source::Unavailable(line) => unavailable.push(line),
                Source::Remote { name, url, gzip } => {
                    entries.extend(update.feed(topdir, &name, &url, gzip, check_signature));
                }
            }
        }
        let index = Index::new(entries, meta.package_files.clone());
        Ok(Self {
            topdir: topdir.to_path_buf(),
            meta,
            index,
            unavailable,
            update_log: update.finish(),
        })
    }

    /// Resolves `packages` (a `BUILD_PACKAGES` list).
    pub fn resolve(&self, packages: &str) -> Report {
        let names: Vec<String> = packages.split_whitespace().map(str::to_owned).collect();
        resolve::resolve(&self.index, &names, self.meta.package_manager)
    }
}

/// Runs the helper with `args` (without the program name); returns the exit status.
pub fn run(args: &[String], stdout: &mut dyn Write, stderr: &mut dyn Write) -> i32 {
    match run_inner(args, stdout, stderr) {
        Ok(code) => code,
        Err(error) => {
            let _ = writeln!(stderr, "attendant-ib-helper: {error}");
            1
        }
    }
}

fn run_inner(
    args: &[String],
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<i32, HelperError> {
    let (command, rest) = args
        .split_first()
        .ok_or_else(|| HelperError::Usage("no command".to_owned()))?;
    let mut values = BTreeMap::new();
    for arg in rest {
        let (key, value) = arg
            .split_once('=')
            .ok_or_else(|| HelperError::Usage(format!("`{arg}` is not KEY=VALUE")))?;
        values.insert(key.to_owned(), value.to_owned());
    }
    let values = Values(values);
    let get = |key: &str| values.get(key);
    let topdir = get("TOPDIR").ok_or(HelperError::MissingArgument("TOPDIR"))?;
    let ib = Imagebuilder::load(Path::new(topdir))?;
    // The real `make manifest` and `make image` run `opkg update` once, in `package_reload`,
    // with its output on stderr; here `install` stands for it.
    if command == "install" {
        let _ = stderr.write_all(ib.update_log.as_bytes());
    }
    for line in &ib.unavailable {
        let _ = writeln!(
            stderr,
            "WARNING: the fixture ImageBuilder has no package list for `{line}`; its packages are unavailable"
        );
    }
    let report = ib.resolve(get("PACKAGES").unwrap_or(""));
    match command.as_str() {
        "install" => {
            let _ = stdout.write_all(report.stdout.as_bytes());
            let _ = stderr.write_all(report.stderr.as_bytes());
            Ok(report.exit_code)
        }
        "manifest" => {
            if report.exit_code != 0 {
                let _ = stderr.write_all(report.stderr.as_bytes());
                return Ok(report.exit_code);
            }
            // apk's `list --manifest` has no ABI stripping; opkg's `--strip-abi` does.
            let strip =
                get("STRIP_ABI").is_some() && ib.meta.package_manager == PackageManager::Opkg;
            let text = image::manifest(&report.installed, ib.meta.package_manager, strip);
            let _ = stdout.write_all(text.as_bytes());
            Ok(0)
        }
        "image" => build_image(&ib, &report, &values, stdout, stderr),
        other => Err(HelperError::Usage(format!("unknown command `{other}`"))),
    }
}

fn build_image(
    ib: &Imagebuilder,
    report: &Report,
    values: &Values,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<i32, HelperError> {
    if report.exit_code != 0 {
        let _ = stderr.write_all(report.stderr.as_bytes());
        return Ok(report.exit_code);
    }
    let get = |key: &str| values.get(key);
    let bin_dir = PathBuf::from(get("BIN_DIR").ok_or(HelperError::MissingArgument("BIN_DIR"))?);
    let profile = get("PROFILE").ok_or(HelperError::MissingArgument("PROFILE"))?;
    let request = ImageRequest {
        topdir: ib.topdir.clone(),
        profile: profile
            .strip_prefix("DEVICE_")
            .unwrap_or(profile)
            .to_owned(),
        files: get("FILES").map(PathBuf::from),
        extra_image_name: get("EXTRA_IMAGE_NAME").map(str::to_owned),
        rootfs_partsize: get("ROOTFS_PARTSIZE").map(str::to_owned),
        rootfs_filesystem: get("ROOTFS_FILESYSTEM").map(str::to_owned),
        source_date_epoch: get("SOURCE_DATE_EPOCH").map(str::to_owned),
    };
    let built = match image::assemble(&ib.meta, &report.installed, &request) {
        Ok(built) => built,
        Err(error) => {
            let _ = writeln!(stderr, "{error}");
            return Ok(1);
        }
    };
    fs::create_dir_all(&bin_dir).map_err(|e| write_error(&bin_dir, &e))?;
    for image in &built.images {
        write(&bin_dir.join(&image.name), &image.bytes)?;
    }
    write(
        &bin_dir.join(format!("{}.manifest", built.image_prefix)),
        built.manifest.as_bytes(),
    )?;
    let mut profiles = BTreeMap::new();
    profiles.insert(request.profile.clone(), built.profile_json.clone());
    let document = image::profiles_json(&ib.meta, profiles, built.source_date_epoch);
    let json = serde_json::to_vec_pretty(&document).map_err(|e| write_error(&bin_dir, &e))?;
    write(&bin_dir.join("profiles.json"), &json)?;
    let _ = writeln!(stdout, "\nCalculating checksums...");
    let mut files = Vec::new();
    let entries = fs::read_dir(&bin_dir).map_err(|e| write_error(&bin_dir, &e))?;
    for entry in entries {
        let entry = entry.map_err(|e| write_error(&bin_dir, &e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != "sha256sums" && entry.file_type().is_ok_and(|t| t.is_file()) {
            let bytes = fs::read(entry.path()).map_err(|e| write_error(&entry.path(), &e))?;
            files.push((name, bytes));
        }
    }
    let sums = image::sha256sums(files.iter().map(|(n, b)| (n.as_str(), b.as_slice())));
    write(&bin_dir.join("sha256sums"), sums.as_bytes())?;
    Ok(0)
}

/// The `KEY=VALUE` arguments; empty values count as absent (make passes every variable).
struct Values(BTreeMap<String, String>);

impl Values {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// A repository line: a list the fixture has, a feed to download, or one it cannot fetch.
enum Source {
    List(&'static str),
    Remote {
        name: String,
        url: String,
        gzip: bool,
    },
    Unavailable(String),
}

/// `opkg update` for the feeds the fixture downloads: its output and its collected errors,
/// in the words of opkg (`libopkg/opkg_cmd.c` and `opkg_download.c` of
/// <https://git.openwrt.org/?p=project/opkg-lede.git>).
#[derive(Default)]
struct Update {
    log: String,
    errors: Vec<String>,
}

impl Update {
    /// Downloads the list of feed `name` at `url` (`Packages.gz` for `src/gz`) and, with
    /// `option check_signature`, its `Packages.sig`, verified by the key of that fingerprint in
    /// `keys/` (as `usign -V -P keys/` finds it). A list that fails either gives no packages.
    fn feed(
        &mut self,
        topdir: &Path,
        name: &str,
        url: &str,
        gzip: bool,
        check_signature: bool,
    ) -> Vec<PackageEntry> {
        let list_url = format!("{url}/{}", if gzip { "Packages.gz" } else { "Packages" });
        let _ = writeln!(self.log, "Downloading {list_url}");
        let list = fetch::get(&list_url, MAX_PACKAGES_BYTES).and_then(|bytes| {
            if gzip {
                fetch::gunzip(&bytes, MAX_PACKAGES_BYTES)
            } else {
                Ok(bytes)
            }
        });
        let list = match list {
            Ok(list) => list,
            Err(error) => {
                let _ = writeln!(
                    self.log,
                    "*** Failed to download the package list from {list_url}\n"
                );
                self.errors.push(format!(
                    " * opkg_download: Failed to download {list_url}, wget returned {}.",
                    error.exit_status()
                ));
                return Vec::new();
            }
        };
        let list_path = topdir.join("dl").join(name);
        let _ = writeln!(
            self.log,
            "Updated list of available packages in {}",
            list_path.display()
        );
        if check_signature {
            let signature_url = format!("{url}/Packages.sig");
            let _ = writeln!(self.log, "Downloading {signature_url}");
            match fetch::get(&signature_url, MAX_SIGNATURE_BYTES) {
                Err(error) => {
                    self.errors.push(format!(
                        " * opkg_download: Failed to download {signature_url}, wget returned {}.",
                        error.exit_status()
                    ));
                    self.log.push_str(
                        "Signature file download failed.\nRemove wrong Signature file.\n",
                    );
                    return Vec::new();
                }
                Ok(signature) => {
                    if verify(topdir, &list, &signature) {
                        self.log.push_str("Signature check passed.\n");
                    } else {
                        self.log
                            .push_str("Signature check failed.\nRemove wrong Signature file.\n");
                        return Vec::new();
                    }
                }
            }
        }
        // A list that does not parse is one opkg cannot use either; it says nothing more.
        parse_packages_detailed(&list).unwrap_or_default()
    }

    fn finish(self) -> String {
        let mut log = self.log;
        if !self.errors.is_empty() {
            log.push_str("Collected errors:\n");
            for error in self.errors {
                log.push_str(&error);
                log.push('\n');
            }
        }
        log
    }
}

/// Whether `signature` (a `Packages.sig`) verifies `list` with the key `keys/<fingerprint>`.
fn verify(topdir: &Path, list: &[u8], signature: &[u8]) -> bool {
    let Ok(signature) = Signature::parse(signature) else {
        return false;
    };
    let key_path = topdir
        .join("keys")
        .join(signature.fingerprint().to_string());
    let Ok(key) = read_limited(&key_path, MAX_SIGNATURE_BYTES as u64) else {
        return false;
    };
    PublicKey::parse(&key).is_ok_and(|key| key.verify(list, &signature).is_ok())
}

fn known_feed(url: &str, meta: &ImagebuilderMeta) -> Option<&'static str> {
    let path = release_path(&meta.version);
    Feed::ALL
        .into_iter()
        .find(|feed| feed_url(meta, &path, *feed) == url)
        .map(Feed::repository_name)
}

fn opkg_lists(text: &str, meta: &ImagebuilderMeta) -> Vec<Source> {
    text.lines()
        .map(str::trim)
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some(kind @ ("src/gz" | "src")), Some(name), Some(url))
                    if !url.starts_with("file:") =>
                {
                    Some(
                        Feed::ALL
                            .into_iter()
                            .find(|f| f.repository_name() == name)
                            .filter(|_| known_feed(url, meta).is_some())
                            .map_or_else(
                                || Source::Remote {
                                    name: name.to_owned(),
                                    url: url.trim_end_matches('/').to_owned(),
                                    gzip: kind == "src/gz",
                                },
                                |f| Source::List(f.repository_name()),
                            ),
                    )
                }
                _ => None,
            }
        })
        .collect()
}

fn apk_lists(text: &str, meta: &ImagebuilderMeta) -> Vec<Source> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            known_feed(line, meta)
                .map_or_else(|| Source::Unavailable(line.to_owned()), Source::List)
        })
        .collect()
}

fn read_limited(path: &Path, max: u64) -> Result<Vec<u8>, HelperError> {
    let read_error = |e: std::io::Error| HelperError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let length = fs::metadata(path).map_err(read_error)?.len();
    if length > max {
        return Err(HelperError::TooLarge {
            path: path.display().to_string(),
            max,
        });
    }
    fs::read(path).map_err(read_error)
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), HelperError> {
    fs::write(path, bytes).map_err(|e| write_error(path, &e))
}

fn write_error(path: &Path, error: &dyn std::fmt::Display) -> HelperError {
    HelperError::Write {
        path: path.display().to_string(),
        reason: error.to_string(),
    }
}
