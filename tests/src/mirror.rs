//! The generator of the fixture downloads mirror.
//!
//! [`generate`] writes, below `<dir>/www/`, the tree downloads.openwrt.org has for every
//! release of the [`Catalog`] (the layout of <https://downloads.openwrt.org/releases/>):
//!
//! ```text
//! .versions.json
//! releases/<version>/.targets.json            (snapshots/ for SNAPSHOT)
//! releases/<version>/.overview.json           (every profile: id, target, titles; the firmware
//!                                              selector's device list)
//! releases/<version>/targets/<t>/<s>/
//!     profiles.json  sha256sums  sha256sums.sig
//!     openwrt-imagebuilder-<version>-<t>-<s>.Linux-x86_64.tar.xz   (.tar.zst for apk releases)
//!     openwrt-<version>-<t>-<s>-<profile>-<fs>-<type>.<ext>  and  <image_prefix>.manifest
//!     packages/  Packages Packages.gz Packages.sig index.json      (apk: index.json v2 only)
//!     kmods/<kernel>-<release>-<vermagic>/  (same files)
//! releases/<version>/packages/<arch>/feeds.conf
//! releases/<version>/packages/<arch>/{base,luci,packages,routing,telephony}/  (same files)
//! feeds/community/<version>/<arch>/  Packages Packages.gz Packages.sig       (opkg releases)
//! ```
//!
//! and, outside the served tree, `<dir>/keys/usign.pub` and `usign.sec` (the key that signs
//! `sha256sums` and the `Packages` files) and `<dir>/mirror.json` ([`MirrorInfo`]).
//!
//! `feeds/community/` stands for a third-party feed a build request adds as an extra
//! repository (as LibreMesh's or Freifunk's feeds are added to ASU requests): one package,
//! [`COMMUNITY_PACKAGE`], that no release feed has, signed by a key of its own
//! (`<dir>/keys/community.pub`, [`MirrorInfo::community_public_key`]).
//! The same seed and helper binary give the same bytes. [`shared_fixture`] generates once per
//! seed into the cargo target directory and is safe when test processes race.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use attendant_proto::usign::{Fingerprint, SecretKey};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::archive::{self, Compression};
use crate::catalog::{Catalog, Feed, Package, PackageManager, Release, Target};
use crate::gzip::gzip_stored;
use crate::imagebuilder::image::{self, ImageRequest};
use crate::imagebuilder::resolve::{self, Index};
use crate::imagebuilder::{self as ib, HELPER_PATH, ImagebuilderMeta, TreeFile};
use crate::seed::Seed;

/// Environment variable naming the helper binary (else it is looked up next to the running
/// executable).
pub const HELPER_ENV: &str = "ATTENDANT_IB_HELPER";
/// Environment variable pointing every test at a real mirror (e.g.
/// `https://downloads.openwrt.org`) instead of the fixture.
pub const UPSTREAM_ENV: &str = "ATTENDANT_TEST_UPSTREAM";
/// The seed tests use unless they need another.
pub const DEFAULT_SEED: u64 = 1;
/// Largest helper binary accepted, in bytes.
pub const MAX_HELPER_BYTES: u64 = 256 * 1024 * 1024;
/// The one package of the community feed (`feeds/community/`), in no release feed.
pub const COMMUNITY_PACKAGE: &str = "community-hello";
/// Its version.
pub const COMMUNITY_VERSION: &str = "1.0.0-r1";

/// What a generated mirror contains and where (`<dir>/mirror.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorInfo {
    /// The seed.
    pub seed: u64,
    /// The served tree (`<dir>/www`): use it as a path upstream or serve it.
    pub root: PathBuf,
    /// usign public key file that verifies `sha256sums.sig` (outside the tree).
    pub public_key: PathBuf,
    /// The matching secret key file (for tests that re-sign).
    pub secret_key: PathBuf,
    /// The key's fingerprint, 16 hex digits.
    pub fingerprint: String,
    /// usign public key file that verifies the community feed's `Packages.sig`.
    pub community_public_key: PathBuf,
    /// Every release version, newest first.
    pub versions: Vec<String>,
    /// Every target, `board/subtarget`.
    pub targets: Vec<String>,
}

impl MirrorInfo {
    /// The directory of a target of a release (`<root>/releases/24.10.4/targets/x86/64`).
    pub fn target_dir(&self, version: &str, target: &str) -> PathBuf {
        self.root
            .join(ib::release_path(version))
            .join("targets")
            .join(target)
    }

    /// The community feed for an opkg release and a package architecture, relative to the
    /// served root (`feeds/community/24.10.5/x86_64`).
    pub fn community_feed(version: &str, arch_packages: &str) -> String {
        format!("feeds/community/{version}/{arch_packages}")
    }
}

/// Why the mirror could not be generated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MirrorError {
    /// The helper binary was not found.
    #[error("the ImageBuilder helper `attendant-ib-helper` was not found (looked at {searched})")]
    HelperNotFound {
        /// The paths tried.
        searched: String,
    },
    /// A file could not be read or written.
    #[error("cannot {action} `{path}`: {source}")]
    Io {
        /// `read`, `write`, `create`, ...
        action: &'static str,
        /// The path.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// JSON could not be produced or read.
    #[error("cannot encode or decode `{what}`: {source}")]
    Json {
        /// Which document.
        what: String,
        /// The error.
        #[source]
        source: serde_json::Error,
    },
    /// The ImageBuilder archive could not be written.
    #[error(transparent)]
    Archive(#[from] archive::ArchiveError),
    /// The fixture could not build a default image (a bug in the catalogue).
    #[error("the default image of `{profile}` for {version} `{target}` does not build: {reason}")]
    DefaultImage {
        /// Release.
        version: String,
        /// Target.
        target: String,
        /// Profile.
        profile: String,
        /// The error text.
        reason: String,
    },
    /// A generator thread panicked (a bug).
    #[error("a mirror generator thread panicked")]
    WorkerPanicked,
    /// The usign key could not be made.
    #[error("cannot create the mirror key: {0}")]
    Key(#[from] attendant_proto::usign::UsignError),
}

impl MirrorError {
    /// The way out, printed after the error as `hint: ...` by `attendant-e2e`; `None` when the
    /// message says it all. Kept out of `Display` so the message reads the same wherever it is
    /// chained.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::HelperNotFound { .. } => Some(format!(
                "build it with `cargo build -p attendant-e2e --bin attendant-ib-helper`, or set \
                 `{HELPER_ENV}` to its path"
            )),
            Self::Io { .. }
            | Self::Json { .. }
            | Self::Archive(_)
            | Self::DefaultImage { .. }
            | Self::WorkerPanicked
            | Self::Key(_) => None,
        }
    }
}

/// Finds the helper binary: `$ATTENDANT_IB_HELPER`, else `attendant-ib-helper` next to the
/// running executable or in its parent directory (test binaries live in `target/*/deps`).
pub fn helper_path() -> Result<PathBuf, MirrorError> {
    if let Some(path) = std::env::var_os(HELPER_ENV) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(MirrorError::HelperNotFound {
                searched: format!("`{}` from `{HELPER_ENV}`", path.display()),
            })
        };
    }
    let mut searched = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(2) {
            let candidate = dir.join("attendant-ib-helper");
            if candidate.is_file() {
                return Ok(candidate);
            }
            searched.push(format!("`{}`", candidate.display()));
        }
    }
    Err(MirrorError::HelperNotFound {
        searched: searched.join(", "),
    })
}

/// The real upstream tests should use instead of the fixture, from `$ATTENDANT_TEST_UPSTREAM`.
pub fn real_upstream() -> Option<String> {
    std::env::var(UPSTREAM_ENV)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

/// Writes the mirror for `seed` into `dir` (created; existing files are overwritten), placing
/// `helper` inside every ImageBuilder.
pub fn generate(dir: &Path, seed: u64, helper: &Path) -> Result<MirrorInfo, MirrorError> {
    let catalog = Catalog::new(Seed(seed));
    let helper_bytes = read(helper, MAX_HELPER_BYTES)?;
    let root = dir.join("www");
    let keys = dir.join("keys");
    let seed_values = Seed(seed);
    let mut fingerprint = [0_u8; 8];
    fingerprint.copy_from_slice(
        seed_values
            .bytes("usign fingerprint")
            .get(..8)
            .unwrap_or(&[0; 8]),
    );
    let mut salt = [0_u8; 16];
    salt.copy_from_slice(
        seed_values
            .bytes("usign salt")
            .get(..16)
            .unwrap_or(&[0; 16]),
    );
    let key = SecretKey::generate(
        seed_values.bytes("usign seed"),
        Fingerprint(fingerprint),
        salt,
        None,
    )?;
    write(
        &keys.join("usign.pub"),
        key.public_key().to_file().as_bytes(),
    )?;
    write(&keys.join("usign.sec"), key.to_file().as_bytes())?;
    let community_key = SecretKey::generate(
        seed_values.bytes("community feed usign seed"),
        Fingerprint(
            seed_values
                .bytes("community feed usign fingerprint")
                .first_chunk::<8>()
                .copied()
                .unwrap_or([1; 8]),
        ),
        [0; 16],
        None,
    )?;
    write(
        &keys.join("community.pub"),
        community_key.public_key().to_file().as_bytes(),
    )?;
    write_community_feeds(&catalog, &root, &community_key)?;
    write_json(&root.join(".versions.json"), &catalog.versions_json())?;
    let mut jobs = Vec::new();
    for release in &catalog.releases {
        let targets: BTreeMap<String, String> = catalog
            .targets
            .iter()
            .map(|t| (t.name(), t.arch_packages.clone()))
            .collect();
        write_json(
            &root.join(&release.path).join(".targets.json"),
            &json!(targets),
        )?;
        write_json(
            &root.join(&release.path).join(".overview.json"),
            &overview_json(&catalog, release),
        )?;
        jobs.extend(catalog.targets.iter().map(|target| (release, target)));
    }
    // Compressing the ImageBuilder archives dominates; the targets are independent.
    let jobs = Mutex::new(jobs.into_iter());
    let workers = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    let results: Vec<Result<(), MirrorError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    loop {
                        let job = jobs
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .next();
                        let Some((release, target)) = job else {
                            return Ok(());
                        };
                        let release_dir = root.join(&release.path);
                        write_target(&catalog, release, target, &release_dir, &key, &helper_bytes)?;
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap_or(Err(MirrorError::WorkerPanicked)))
            .collect()
    });
    results
        .into_iter()
        .collect::<Result<Vec<()>, MirrorError>>()?;
    let info = MirrorInfo {
        seed,
        root,
        public_key: keys.join("usign.pub"),
        secret_key: keys.join("usign.sec"),
        fingerprint: key.fingerprint().to_string(),
        community_public_key: keys.join("community.pub"),
        versions: catalog.releases.iter().map(|r| r.version.clone()).collect(),
        targets: catalog.targets.iter().map(Target::name).collect(),
    };
    write_json(&dir.join("mirror.json"), &info)?;
    Ok(info)
}

/// A release's `.overview.json`, the device list OpenWrt's firmware selector reads before anything
/// else (<https://github.com/openwrt/firmware-selector-openwrt-org>, `www/index.js`): every profile
/// of every target with its id, `target/subtarget` and titles, as in `profiles.json`.
fn overview_json(catalog: &Catalog, release: &Release) -> serde_json::Value {
    let profiles: Vec<serde_json::Value> = catalog
        .targets
        .iter()
        .flat_map(|target| {
            target.profiles.iter().map(move |profile| {
                json!({"id": profile.id, "target": target.name(), "titles": [profile.title]})
            })
        })
        .collect();
    json!({"release": release.version, "profiles": profiles})
}

/// Version of the generated layout: part of the shared fixture's directory name, so a change of
/// the layout regenerates the cached mirror even when the ImageBuilder helper is unchanged.
const LAYOUT_VERSION: u32 = 3;

/// The mirror for `seed`, generated once into `<target dir>/attendant-fixture/` and shared by
/// every test of every process (generation goes to a temporary directory that is renamed into
/// place, so racing processes never see half a mirror).
pub fn shared_fixture(seed: u64) -> Result<MirrorInfo, MirrorError> {
    static CACHE: Mutex<BTreeMap<u64, MirrorInfo>> = Mutex::new(BTreeMap::new());
    let mut cache = CACHE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(info) = cache.get(&seed) {
        return Ok(info.clone());
    }
    let helper = helper_path()?;
    let helper_hash = hex::encode(Sha256::digest(read(&helper, MAX_HELPER_BYTES)?));
    let base = fixture_base();
    let final_dir = base.join(format!(
        "seed-{seed}-v{LAYOUT_VERSION}-{}",
        helper_hash.get(..12).unwrap_or("")
    ));
    let info_path = final_dir.join("mirror.json");
    if !info_path.is_file() {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let temporary = base.join(format!(".tmp-{seed}-{}-{nanos}", std::process::id()));
        let generated = generate(&temporary, seed, &helper);
        if let Err(error) = generated {
            let _ = fs::remove_dir_all(&temporary);
            return Err(error);
        }
        // Paths inside mirror.json must name the final directory.
        let mut info = read_info(&temporary.join("mirror.json"))?;
        info.root = final_dir.join("www");
        info.public_key = final_dir.join("keys/usign.pub");
        info.secret_key = final_dir.join("keys/usign.sec");
        info.community_public_key = final_dir.join("keys/community.pub");
        write_json(&temporary.join("mirror.json"), &info)?;
        if fs::rename(&temporary, &final_dir).is_err() {
            // Another process finished first; its mirror is identical.
            let _ = fs::remove_dir_all(&temporary);
        }
    }
    let info = read_info(&info_path)?;
    cache.insert(seed, info.clone());
    Ok(info)
}

fn fixture_base() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir).join("attendant-fixture");
    }
    // Test binaries run from target/<profile>/deps; binaries from target/<profile>.
    if let Ok(exe) = std::env::current_exe()
        && let Some(target) = exe
            .ancestors()
            .find(|dir| dir.file_name().is_some_and(|n| n == "target"))
    {
        return target.join("attendant-fixture");
    }
    std::env::temp_dir().join("attendant-fixture")
}

fn read_info(path: &Path) -> Result<MirrorInfo, MirrorError> {
    let bytes = read(path, 1024 * 1024)?;
    serde_json::from_slice(&bytes).map_err(|source| MirrorError::Json {
        what: path.display().to_string(),
        source,
    })
}

/// `BUILD_PACKAGES` as the Makefile computes it for `user` packages on `profile`.
pub fn build_packages(
    defaults: &[String],
    profile_packages: &[String],
    user: &[String],
) -> Vec<String> {
    let mut base: Vec<String> = defaults.iter().chain(profile_packages).cloned().collect();
    base.push("kernel".to_owned());
    base.sort();
    base.dedup();
    let base = filter_removals(base);
    let mut all: Vec<String> = user.to_vec();
    all.extend(base);
    filter_removals(all)
}

/// make's `filter-out` of every `-name` and `name` given as `-name`.
fn filter_removals(list: Vec<String>) -> Vec<String> {
    let removed: Vec<String> = list
        .iter()
        .filter_map(|p| p.strip_prefix('-'))
        .map(str::to_owned)
        .collect();
    list.into_iter()
        .filter(|p| !p.starts_with('-') && !removed.contains(p))
        .collect()
}

fn write_target(
    catalog: &Catalog,
    release: &Release,
    target: &Target,
    release_dir: &Path,
    key: &SecretKey,
    helper: &[u8],
) -> Result<(), MirrorError> {
    let target_dir = release_dir
        .join("targets")
        .join(&target.board)
        .join(&target.subtarget);
    let packages = catalog.packages(release, target);
    let meta = ImagebuilderMeta::new(catalog, release, target, &packages);
    let manager = release.package_manager;

    // Feeds.
    write_feed(
        &target_dir.join("packages"),
        &packages,
        Feed::Core,
        target,
        manager,
        key,
    )?;
    write_feed(
        &target_dir.join("kmods").join(release.kernel.kmods_dir()),
        &packages,
        Feed::Kmods,
        target,
        manager,
        key,
    )?;
    write_arch_feeds(catalog, release, target, release_dir, &packages, key)?;
    write_default_images(release, target, &target_dir, &meta, &packages)?;
    write_imagebuilder_archive(release, &target_dir, &meta, &packages, helper)?;
    write_signed_sums(&target_dir, key)
}

/// The architecture's package feeds and `feeds.conf`, the build's own feed list with the OpenWrt
/// tree itself first as `base` (`src-git-full`, as in the release SDK's `feeds.conf.default`);
/// ASU merges every feed it names into `/json/v1/<path>/<arch>-index.json`.
fn write_arch_feeds(
    catalog: &Catalog,
    release: &Release,
    target: &Target,
    release_dir: &Path,
    packages: &[Package],
    key: &SecretKey,
) -> Result<(), MirrorError> {
    let manager = release.package_manager;
    let arch_dir = release_dir.join("packages").join(&target.arch_packages);
    let mut feeds_conf = String::new();
    for feed in [
        Feed::Base,
        Feed::Packages,
        Feed::Luci,
        Feed::Routing,
        Feed::Telephony,
    ] {
        let Some(dir) = feed.arch_dir() else { continue };
        write_feed(&arch_dir.join(dir), packages, feed, target, manager, key)?;
        if feed == Feed::Base {
            feeds_conf.push_str(&format!(
                "src-git-full base https://git.openwrt.org/openwrt/openwrt.git^{}\n",
                release.revision_hash()
            ));
        } else {
            let (host, project) = if feed == Feed::Luci {
                ("project", "luci")
            } else {
                ("feed", dir)
            };
            let hash = catalog
                .seed
                .hex(&format!("feed {} {dir}", release.version), 10);
            feeds_conf.push_str(&format!(
                "src-git {dir} https://git.openwrt.org/{host}/{project}.git^{hash}\n"
            ));
        }
    }
    write(&arch_dir.join("feeds.conf"), feeds_conf.as_bytes())?;

    Ok(())
}

/// The default image of every profile, its manifest, and `profiles.json`.
fn write_default_images(
    release: &Release,
    target: &Target,
    target_dir: &Path,
    meta: &ImagebuilderMeta,
    packages: &[Package],
) -> Result<(), MirrorError> {
    let manager = release.package_manager;
    let list = ib::packages_list(packages.iter(), manager);
    let entries =
        attendant_proto::index::parse_packages_detailed(list.as_bytes()).map_err(|e| {
            MirrorError::DefaultImage {
                version: release.version.clone(),
                target: target.name(),
                profile: String::new(),
                reason: e.to_string(),
            }
        })?;
    let index = Index::new(entries, meta.package_files.clone());
    let mut profiles = BTreeMap::new();
    for profile in &target.profiles {
        let failed = |reason: String| MirrorError::DefaultImage {
            version: release.version.clone(),
            target: target.name(),
            profile: profile.id.clone(),
            reason,
        };
        let names = build_packages(&meta.default_packages, &profile.device_packages, &[]);
        let report = resolve::resolve(&index, &names, manager);
        if report.exit_code != 0 {
            return Err(failed(report.stderr));
        }
        let request = ImageRequest {
            topdir: PathBuf::from("/builder"),
            profile: profile.id.clone(),
            ..ImageRequest::default()
        };
        let built = image::assemble(meta, &report.installed, &request)
            .map_err(|e| failed(e.to_string()))?;
        for built_image in &built.images {
            write(&target_dir.join(&built_image.name), &built_image.bytes)?;
        }
        write(
            &target_dir.join(format!("{}.manifest", built.image_prefix)),
            built.manifest.as_bytes(),
        )?;
        profiles.insert(profile.id.clone(), built.profile_json);
    }
    let document = image::profiles_json(meta, profiles, release.source_date_epoch);
    write_json(&target_dir.join("profiles.json"), &document)?;

    Ok(())
}

/// The ImageBuilder archive, with the helper program as its `make`.
fn write_imagebuilder_archive(
    release: &Release,
    target_dir: &Path,
    meta: &ImagebuilderMeta,
    packages: &[Package],
    helper: &[u8],
) -> Result<(), MirrorError> {
    let manager = release.package_manager;
    let mut tree = ib::tree(meta, packages).map_err(|source| MirrorError::Json {
        what: ib::META_FILE.to_owned(),
        source,
    })?;
    tree.push(TreeFile {
        path: HELPER_PATH.to_owned(),
        contents: helper.to_vec(),
        executable: true,
    });
    let compression = match manager {
        PackageManager::Opkg => Compression::Xz,
        PackageManager::Apk => Compression::Zstd,
    };
    let archive = archive::tar(
        &meta.dir_name(),
        &tree,
        release.source_date_epoch,
        compression,
    )?;
    write(
        &target_dir.join(format!("{}.{}", meta.dir_name(), compression.extension())),
        &archive,
    )?;

    Ok(())
}

/// `sha256sums` over the target directory's files, and its usign signature.
fn write_signed_sums(target_dir: &Path, key: &SecretKey) -> Result<(), MirrorError> {
    let mut files = Vec::new();
    let entries =
        fs::read_dir(target_dir).map_err(|source| io_error("read", target_dir, source))?;
    for entry in entries {
        let entry = entry.map_err(|source| io_error("read", target_dir, source))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().is_ok_and(|t| t.is_file()) && !name.starts_with("sha256sums") {
            files.push((name, read(&entry.path(), u64::MAX)?));
        }
    }
    let sums = image::sha256sums(files.iter().map(|(n, b)| (n.as_str(), b.as_slice())));
    write(&target_dir.join("sha256sums"), sums.as_bytes())?;
    write(
        &target_dir.join("sha256sums.sig"),
        key.sign(sums.as_bytes()).to_file().as_bytes(),
    )?;
    Ok(())
}

fn write_feed(
    dir: &Path,
    packages: &[Package],
    feed: Feed,
    target: &Target,
    manager: PackageManager,
    key: &SecretKey,
) -> Result<(), MirrorError> {
    let members: Vec<&Package> = packages.iter().filter(|p| p.feed == feed).collect();
    let architecture = target.arch_packages.clone();
    let index = match manager {
        PackageManager::Opkg => {
            let list = ib::packages_list(members.iter().copied(), manager);
            write(&dir.join("Packages"), list.as_bytes())?;
            write(&dir.join("Packages.gz"), &gzip_stored(list.as_bytes()))?;
            write(
                &dir.join("Packages.sig"),
                key.sign(list.as_bytes()).to_file().as_bytes(),
            )?;
            let names: BTreeMap<&str, &str> = members
                .iter()
                .map(|p| (p.name.as_str(), p.version.as_str()))
                .collect();
            json!({ "architecture": architecture, "packages": names })
        }
        PackageManager::Apk => {
            let names: BTreeMap<&str, &str> = members
                .iter()
                .map(|p| (p.base_name.as_str(), p.version.as_str()))
                .collect();
            json!({ "version": 2, "architecture": architecture, "packages": names })
        }
    };
    write_json(&dir.join("index.json"), &index)
}

/// The community feed of every opkg release and package architecture: [`COMMUNITY_PACKAGE`],
/// which needs only `libc` (in every default package set), in a `Packages` list signed by `key`.
fn write_community_feeds(
    catalog: &Catalog,
    root: &Path,
    key: &SecretKey,
) -> Result<(), MirrorError> {
    let architectures: std::collections::BTreeSet<&str> = catalog
        .targets
        .iter()
        .map(|target| target.arch_packages.as_str())
        .collect();
    for release in &catalog.releases {
        if release.package_manager != PackageManager::Opkg {
            continue;
        }
        for arch in &architectures {
            let file = format!("{COMMUNITY_PACKAGE}_{COMMUNITY_VERSION}_{arch}.ipk");
            let sha256 = hex::encode(Sha256::digest(file.as_bytes()));
            let list = format!(
                "Package: {COMMUNITY_PACKAGE}\nVersion: {COMMUNITY_VERSION}\nDepends: libc\n\
                 License: GPL-2.0\nSection: utils\nArchitecture: {arch}\nInstalled-Size: 2048\n\
                 Filename: {file}\nSize: 1024\nSHA256sum: {sha256}\n\
                 Description:  A package only the community feed has (Attendant fixture)\n\n"
            );
            let dir = root.join(MirrorInfo::community_feed(&release.version, arch));
            write(&dir.join("Packages"), list.as_bytes())?;
            write(&dir.join("Packages.gz"), &gzip_stored(list.as_bytes()))?;
            write(
                &dir.join("Packages.sig"),
                key.sign(list.as_bytes()).to_file().as_bytes(),
            )?;
        }
    }
    Ok(())
}

fn read(path: &Path, max: u64) -> Result<Vec<u8>, MirrorError> {
    let length = fs::metadata(path)
        .map_err(|source| io_error("read", path, source))?
        .len();
    if length > max {
        return Err(io_error(
            "read",
            path,
            std::io::Error::other(format!("larger than {max} bytes")),
        ));
    }
    fs::read(path).map_err(|source| io_error("read", path, source))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), MirrorError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|source| io_error("create", parent, source))?;
    }
    fs::write(path, bytes).map_err(|source| io_error("write", path, source))
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), MirrorError> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|source| MirrorError::Json {
        what: path.display().to_string(),
        source,
    })?;
    bytes.push(b'\n');
    write(path, &bytes)
}

fn io_error(action: &'static str, path: &Path, source: std::io::Error) -> MirrorError {
    MirrorError::Io {
        action,
        path: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_helper_says_where_it_looked_and_the_hint_how_to_build_it() {
        let error = MirrorError::HelperNotFound {
            searched: "`/x/attendant-ib-helper`".to_owned(),
        };
        assert_eq!(
            error.to_string(),
            "the ImageBuilder helper `attendant-ib-helper` was not found (looked at \
             `/x/attendant-ib-helper`)"
        );
        assert_eq!(
            error.hint().as_deref(),
            Some(
                "build it with `cargo build -p attendant-e2e --bin attendant-ib-helper`, or set \
                 `ATTENDANT_IB_HELPER` to its path"
            )
        );
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn build_packages_puts_user_packages_first_and_applies_removals() {
        let defaults = strings(&["dnsmasq", "base-files", "ppp"]);
        let profile = strings(&["kmod-x", "-ppp"]);
        let user = strings(&["luci", "-dnsmasq", "dnsmasq-full"]);
        assert_eq!(
            build_packages(&defaults, &profile, &user),
            strings(&["luci", "dnsmasq-full", "base-files", "kernel", "kmod-x"])
        );
    }
}
