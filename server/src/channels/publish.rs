//! Publication: the channel tree rendered into the signed static files routers read, served
//! under `/channels/` by `serve` and mirrorable by any web server.
//!
//! ```text
//! <out>/channels.json          -> current/channels.json       (fixed links, made once)
//! <out>/channels.json.sig      -> current/channels.json.sig
//! <out>/current                -> meta/<serial>               (switched by one rename)
//! <out>/meta/<serial>/channels.json(.sig)                     (one per publication)
//! <out>/<channel>/<target>/<subtarget>/<profile>/index.<serial>.json(.sig)
//! <out>/pool/<aa>/<sha256>-<name>(.sig)                       (image files, content-addressed)
//! <out>/keys/<signing-fingerprint>.ucert, keys/revoked.ucert   (delegation, revocations)
//! ```
//!
//! # Why a reader never sees a mix
//!
//! A router reads `channels.json`, then the `index` it names, then the pool files that index
//! names. Every file but the two fixed names is written once under a name nobody references yet
//! and never rewritten: pool files are content-addressed (and in place before publication
//! starts), an index is named after the serial of the publication that wrote it, and each
//! publication's `channels.json` lives in its own `meta/<serial>/` directory. Each is written to a
//! temporary name, synced and renamed (by the one atomic writer, `src/atomic.rs`). The switch to
//! the new tree is the single rename of the `current` link, and `channels.json` and its `.sig`
//! both resolve through it, so a file and its signature always belong together — unlike
//! system-image, which renames the signature and the file one after the other. Killed at any
//! moment, the publisher leaves the old tree (plus unreferenced new files, reaped later) or the
//! new one.
//!
//! A reader that fetched the old `channels.json` still finds the indexes and images it names:
//! [`reap`] removes a file only when no `channels.json` current within the grace period
//! referenced it. Between its two requests for `channels.json` and `channels.json.sig` a client
//! over HTTP can still straddle a switch; the signature then fails and the client fetches both
//! again (no static layout avoids that window; the on-disk tree is always consistent).
//!
//! # Only changed files
//!
//! An index is rewritten only when its content (without the freshness fields) changed, or when it
//! would expire within the refresh margin. `channels.json` is rewritten on every publication (its
//! serial grows) and its `expires` is never later than that of any index it references, so the
//! scheduler in `serve` only watches `channels.json` to know when to re-sign.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use attendant_proto::channel::{
    self as wire, ChannelEntry, ChannelFormatError, ChannelsDoc, DeviceEntry, Freshness, ImageType,
    IndexDoc, IndexFile, IndexGlobal, IndexImage, IndexRecipe, VersionDetail, defaults_digest,
    field,
};

use crate::atomic::{Existing, replace_symlink, sync_directory, write_atomic};
use crate::channels::keys::MetadataSigner;
use crate::channels::model::{BuildState, Channel, Device, ImageFile};
use crate::channels::pool::Pool;

/// The URL path the tree is served under.
pub const URL_ROOT: &str = "/channels";
/// The channel map, the routers' entry point.
pub const CHANNELS_FILE: &str = "channels.json";
/// Suffix of a detached usign signature.
pub const SIGNATURE_SUFFIX: &str = ".sig";
/// The link naming the current publication's `meta/<serial>` directory.
const CURRENT: &str = "current";
/// One directory per publication, holding its `channels.json`.
const META: &str = "meta";
/// The content-addressed image files.
pub const POOL: &str = "pool";
/// Names at the top of the tree that are not channels.
const RESERVED: &[&str] = &[
    CHANNELS_FILE,
    "channels.json.sig",
    CURRENT,
    META,
    POOL,
    KEYS,
];
/// The delegation and revocations of the metadata signing key.
pub const KEYS: &str = "keys";
/// Largest metadata file read back (the larger of the two formats' limits).
const MAX_METADATA_LEN: usize = if wire::MAX_CHANNELS_LEN > wire::MAX_INDEX_LEN {
    wire::MAX_CHANNELS_LEN
} else {
    wire::MAX_INDEX_LEN
};
/// In `meta/<serial>/`: the serial that was current before this one (for [`reap`]).
const PREVIOUS: &str = ".previous";

/// Signs published metadata: the text of a detached usign signature over `message`.
pub trait MetadataSign {
    /// Why signing failed.
    type Error: std::error::Error + Send + Sync + 'static;
    /// The signature file's text (`untrusted comment: …\n<base64>\n`).
    fn sign(&self, message: &[u8]) -> Result<String, Self::Error>;
}

impl MetadataSign for MetadataSigner {
    type Error = std::convert::Infallible;

    fn sign(&self, message: &[u8]) -> Result<String, Self::Error> {
        Ok(MetadataSigner::sign(self, message))
    }
}

impl MetadataSign for attendant_proto::usign::SecretKey {
    type Error = std::convert::Infallible;

    fn sign(&self, message: &[u8]) -> Result<String, Self::Error> {
        Ok(attendant_proto::usign::SecretKey::sign(self, message).to_file())
    }
}

/// Which devices changed since the last publication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changed {
    /// Only these `(channel, device)` pairs may have changed; every other index is kept as the
    /// current `channels.json` names it, without reading it.
    Devices(BTreeSet<(String, String)>),
    /// Unknown: every index is rendered and compared with the published one.
    Unknown,
    /// Every index is rewritten and signed afresh (a new signing key, a changed format).
    Resign,
}

/// The settings of one publication.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PublishOptions {
    /// The serial of this publication: larger than every earlier one.
    pub serial: u64,
    /// Now, Unix seconds.
    pub now: i64,
    /// How long new metadata stays valid.
    pub expires_in: Duration,
    /// An index expiring sooner than this is rewritten even when unchanged.
    pub refresh_margin: Duration,
    /// Nothing is signed to expire after this (the end of the signing key's delegation).
    pub not_after: Option<i64>,
    /// Files published under `keys/` (the delegation `<fingerprint>.ucert`, `revoked.ucert`),
    /// written before the metadata they vouch for, and only when their bytes changed.
    pub keys: Vec<(String, Vec<u8>)>,
}

impl PublishOptions {
    /// Options for publication `serial` at `now`.
    pub fn new(serial: u64, now: i64, expires_in: Duration, refresh_margin: Duration) -> Self {
        Self {
            serial,
            now,
            expires_in,
            refresh_margin,
            not_after: None,
            keys: Vec::new(),
        }
    }
}

/// What a publication did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PublishReport {
    /// The serial published.
    pub serial: u64,
    /// Index files written, as URL paths.
    pub written: Vec<String>,
    /// Indexes kept as they were.
    pub kept: usize,
    /// When the new `channels.json` expires (Unix seconds): the earliest expiry in the tree.
    pub expires: i64,
    /// Entries left out, and why (a redirect to a device its target does not have).
    pub warnings: Vec<String>,
}

/// Why a publication failed; the published tree is unchanged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// A file operation failed.
    #[error("cannot {action} `{path}`")]
    Io {
        /// What we were doing.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A channel or device name cannot be a path of the tree.
    #[error("{what} `{name}` cannot be published: {rule}")]
    Name {
        /// `channel` or `device`.
        what: &'static str,
        /// The name.
        name: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// An image of a Ready build is not a pool file.
    #[error("image `{name}` of {channel} {device} build {build} is not usable: {rule}")]
    Image {
        /// The channel.
        channel: String,
        /// The device.
        device: String,
        /// The build number.
        build: u64,
        /// The image's file name.
        name: String,
        /// What is wrong.
        rule: String,
    },
    /// A published metadata file does not parse.
    #[error("published file `{path}` is not valid channel metadata")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        #[source]
        source: ChannelFormatError,
    },
    /// A newer publication is already current.
    #[error("publication {serial} is not newer than the current one ({current})")]
    Superseded {
        /// This publication's serial.
        serial: u64,
        /// The current serial.
        current: u64,
    },
    /// Signing failed.
    #[error("cannot sign `{path}`")]
    Sign {
        /// The file being signed.
        path: PathBuf,
        /// The signer's complaint.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Publishes `tree` into `out` (see the module docs for the layout and the guarantees).
pub fn publish<S: MetadataSign>(
    tree: &[Channel],
    changed: &Changed,
    out: &Path,
    signer: &S,
    options: &PublishOptions,
) -> Result<PublishReport, PublishError> {
    check_names(tree)?;
    let current = read_current(out)?;
    if let Some(current) = &current
        && current.global.serial >= options.serial
    {
        return Err(PublishError::Superseded {
            serial: options.serial,
            current: current.global.serial,
        });
    }
    let fresh_until =
        add_seconds(options.now, options.expires_in).min(options.not_after.unwrap_or(i64::MAX));
    let freshness = Freshness {
        generated_at: options.now,
        expires: fresh_until,
        serial: options.serial,
    };
    let mut report = PublishReport {
        serial: options.serial,
        expires: fresh_until,
        ..PublishReport::default()
    };
    // Anything expiring before this is written afresh.
    let refresh_after = add_seconds(options.now, options.refresh_margin);
    let mut writer = Writer {
        out,
        signer,
        pending: Vec::new(),
        directories: BTreeSet::new(),
    };

    // Channels with devices of their own first; redirects point at their entries afterwards.
    let mut published: BTreeMap<String, ChannelEntry> = BTreeMap::new();
    for channel in tree.iter().filter(|channel| channel.redirect.is_none()) {
        let mut devices = BTreeMap::new();
        for (device_name, device) in &channel.devices {
            if device.redirect.is_some() {
                continue;
            }
            let existing = current
                .as_ref()
                .and_then(|doc| doc.channels.get(&channel.name))
                .and_then(|entry| entry.devices.get(device_name))
                .filter(|entry| {
                    entry.redirect.is_none()
                        && entry
                            .index
                            .starts_with(&index_url_prefix(&channel.name, device_name))
                });
            let index = match (changed, existing, &current) {
                (Changed::Devices(set), Some(existing), Some(current))
                    if !set.contains(&(channel.name.clone(), device_name.clone()))
                        && current.global.expires > refresh_after =>
                {
                    report.expires = report.expires.min(current.global.expires);
                    report.kept += 1;
                    existing.index.clone()
                }
                _ => {
                    let images = render_images(channel, device_name, device)?;
                    let kept = match (changed, existing) {
                        (Changed::Resign, _) | (_, None) => None,
                        (_, Some(existing)) => {
                            let old = read_index(out, &existing.index)?;
                            let keep = old.images == images
                                && old.global.freshness.expires > refresh_after;
                            keep.then_some((existing.index.clone(), old.global.freshness.expires))
                        }
                    };
                    match kept {
                        Some((index, expires)) => {
                            report.expires = report.expires.min(expires);
                            report.kept += 1;
                            index
                        }
                        None => {
                            check_pool_files(out, &images)?;
                            let doc = IndexDoc {
                                global: IndexGlobal {
                                    freshness,
                                    channel: channel.name.clone(),
                                    device: device_name.clone(),
                                },
                                images,
                            };
                            let url = format!(
                                "{}index.{}.json",
                                index_url_prefix(&channel.name, device_name),
                                options.serial
                            );
                            writer
                                .write_signed(&url_to_path(out, &url), wire::encode_index(&doc))?;
                            report.written.push(url.clone());
                            url
                        }
                    }
                }
            };
            devices.insert(
                device_name.clone(),
                DeviceEntry {
                    index,
                    redirect: None,
                },
            );
        }
        published.insert(
            channel.name.clone(),
            ChannelEntry {
                devices,
                hidden: channel.hidden,
                alias: channel.alias.clone(),
                redirect: None,
            },
        );
    }
    add_redirects(tree, &mut published, &mut report.warnings);
    report.expires = report.expires.max(options.now);

    let doc = ChannelsDoc {
        global: Freshness {
            expires: report.expires,
            ..freshness
        },
        channels: published,
    };
    // The keys that vouch for the new signatures are in place before anything names them.
    for (name, bytes) in &options.keys {
        if name.is_empty() || name.starts_with('.') || name.contains('/') {
            continue;
        }
        let path = out.join(KEYS).join(name);
        if std::fs::read(&path).ok().as_deref() != Some(bytes.as_slice()) {
            create_dir(&out.join(KEYS))?;
            write(&path, bytes)?;
        }
    }
    let meta = out.join(META).join(options.serial.to_string());
    create_dir(&meta)?;
    if let Some(current) = &current {
        write(
            &meta.join(PREVIOUS),
            current.global.serial.to_string().as_bytes(),
        )?;
    }
    writer.write_signed(&meta.join(CHANNELS_FILE), wire::encode_channels(&doc))?;
    writer.flush()?;
    let target = Path::new(META).join(options.serial.to_string());
    replace_symlink(&out.join(CURRENT), &target).map_err(io_error("switch", &out.join(CURRENT)))?;
    for name in [CHANNELS_FILE, "channels.json.sig"] {
        let link = out.join(name);
        let wanted = Path::new(CURRENT).join(name);
        if std::fs::read_link(&link).ok().as_deref() != Some(wanted.as_path()) {
            replace_symlink(&link, &wanted).map_err(io_error("link", &link))?;
        }
    }
    Ok(report)
}

/// The `channels.json` currently published in `out`, if any.
pub(crate) fn read_current(out: &Path) -> Result<Option<ChannelsDoc>, PublishError> {
    let path = out.join(CURRENT).join(CHANNELS_FILE);
    let bytes = match read_limited(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(PublishError::Io {
                action: "read",
                path,
                source,
            });
        }
    };
    wire::parse_channels(&bytes)
        .map(Some)
        .map_err(|source| PublishError::Corrupt { path, source })
}

/// When the published tree expires (Unix seconds), if there is one: `serve` re-publishes before.
pub fn published_expiry(out: &Path) -> Result<Option<(u64, i64)>, PublishError> {
    Ok(read_current(out)?.map(|doc| (doc.global.serial, doc.global.expires)))
}

/// The file of a URL path under [`URL_ROOT`] (the path is one the publisher wrote).
pub(crate) fn url_to_path(out: &Path, url: &str) -> PathBuf {
    let relative = url
        .strip_prefix(URL_ROOT)
        .unwrap_or(url)
        .trim_start_matches('/');
    out.join(relative)
}

/// The pool file of an image, relative to the tree: `pool/<aa>/<sha256>-<name>`.
pub fn pool_relative(image: &ImageFile) -> String {
    format!("{POOL}/{}", Pool::relative_path(&image.sha256, &image.name))
}

pub(crate) fn read_index(out: &Path, url: &str) -> Result<IndexDoc, PublishError> {
    let path = url_to_path(out, url);
    let bytes = read_limited(&path).map_err(io_error("read", &path))?;
    wire::parse_index(&bytes).map_err(|source| PublishError::Corrupt { path, source })
}

fn render_images(
    channel: &Channel,
    device_name: &str,
    device: &Device,
) -> Result<Vec<IndexImage>, PublishError> {
    let (target, profile) = device_name
        .rsplit_once('/')
        .unwrap_or((device_name, device_name));
    let ready: Vec<_> = device
        .builds
        .iter()
        .filter(|build| build.state == BuildState::Ready)
        .collect();
    let latest = ready.iter().map(|build| build.number).max();
    let mut images = Vec::with_capacity(ready.len());
    for build in ready {
        let mut files = Vec::with_capacity(build.images.len());
        for (order, image) in build.images.iter().enumerate() {
            check_image(image).map_err(|rule| PublishError::Image {
                channel: channel.name.clone(),
                device: device_name.to_owned(),
                build: build.number,
                name: image.name.clone(),
                rule,
            })?;
            let path = format!("{URL_ROOT}/{}", pool_relative(image));
            files.push(IndexFile {
                order: u32::try_from(order).unwrap_or(u32::MAX),
                signature: format!("{path}{SIGNATURE_SUFFIX}"),
                path,
                checksum: image.sha256.clone(),
                size: image.size,
                name: image.name.clone(),
                image_type: image.image_type.clone(),
                filesystem: image.filesystem.clone(),
            });
        }
        let recipe = &build.recipe;
        let recipe = (!recipe.add.is_empty()
            || !recipe.remove.is_empty()
            || recipe.defaults.is_some()
            || recipe.rootfs_size_mb.is_some())
        .then(|| IndexRecipe {
            add: recipe.add.clone(),
            remove: recipe.remove.clone(),
            defaults_sha256: recipe.defaults.as_deref().map(defaults_digest),
            defaults: recipe.defaults.clone(),
            rootfs_size_mb: recipe.rootfs_size_mb,
        });
        images.push(IndexImage {
            kind: ImageType::Full,
            version: build.number,
            description: build.description.clone(),
            version_detail: VersionDetail::parse(&build.version_detail_text()).map_err(
                |error| PublishError::Image {
                    channel: channel.name.clone(),
                    device: device_name.to_owned(),
                    build: build.number,
                    name: String::new(),
                    rule: format!("its version_detail is not publishable: {error}"),
                },
            )?,
            minversion: build.minversion,
            phased_percentage: (Some(build.number) == latest && build.phased_percentage < 100)
                .then_some(build.phased_percentage),
            openwrt_version: build.openwrt_version.clone(),
            version_code: build.version_code.clone(),
            target: target.to_owned(),
            profile: profile.to_owned(),
            recipe,
            files,
        });
    }
    images.sort_by_key(|image| image.version);
    Ok(images)
}

/// Redirect channels become hidden copies of their target's entries; per-device redirects point
/// at the target channel's index of that device.
fn add_redirects(
    tree: &[Channel],
    published: &mut BTreeMap<String, ChannelEntry>,
    warnings: &mut Vec<String>,
) {
    for channel in tree.iter().filter(|channel| channel.redirect.is_none()) {
        for (device_name, device) in &channel.devices {
            let Some(target) = &device.redirect else {
                continue;
            };
            let entry = published
                .get(target)
                .and_then(|entry| entry.devices.get(device_name))
                .filter(|entry| entry.redirect.is_none())
                .cloned();
            match (entry, published.get_mut(&channel.name)) {
                (Some(entry), Some(own)) => {
                    own.devices.insert(
                        device_name.clone(),
                        DeviceEntry {
                            index: entry.index,
                            redirect: Some(target.clone()),
                        },
                    );
                }
                _ => warnings.push(format!(
                    "{} {device_name} redirects to `{target}`, which has no such device",
                    channel.name
                )),
            }
        }
    }
    for channel in tree {
        let Some(target) = &channel.redirect else {
            continue;
        };
        match published.get(target).cloned() {
            Some(entry) if entry.redirect.is_none() => {
                published.insert(
                    channel.name.clone(),
                    ChannelEntry {
                        devices: entry.devices,
                        hidden: true,
                        alias: None,
                        redirect: Some(target.clone()),
                    },
                );
            }
            _ => warnings.push(format!(
                "channel `{}` redirects to `{target}`, which is not a published channel",
                channel.name
            )),
        }
    }
}

/// The rules a router's parser applies, so that nothing is published that routers refuse.
fn check_names(tree: &[Channel]) -> Result<(), PublishError> {
    for channel in tree {
        let reject = |rule| PublishError::Name {
            what: "channel",
            name: channel.name.clone(),
            rule,
        };
        field::channel_name(&channel.name).map_err(reject)?;
        let first = channel.name.split('/').next().unwrap_or_default();
        if RESERVED.contains(&first) {
            return Err(reject("its first part names a file of the published tree"));
        }
        for device in channel.devices.keys() {
            field::device_name(device).map_err(|rule| PublishError::Name {
                what: "device",
                name: device.clone(),
                rule,
            })?;
        }
    }
    Ok(())
}

fn check_image(image: &ImageFile) -> Result<(), String> {
    field::sha256(&image.sha256).map_err(str::to_owned)?;
    field::file_name(&image.name).map_err(str::to_owned)
}

/// Every file the new indexes name must already be in the pool (it is written first).
fn check_pool_files(out: &Path, images: &[IndexImage]) -> Result<(), PublishError> {
    for file in images.iter().flat_map(|image| &image.files) {
        for url in [&file.path, &file.signature] {
            let path = url_to_path(out, url);
            if !path.is_file() {
                return Err(PublishError::Io {
                    action: "find the pool file",
                    path,
                    source: std::io::ErrorKind::NotFound.into(),
                });
            }
        }
    }
    Ok(())
}

fn index_url_prefix(channel: &str, device: &str) -> String {
    format!("{URL_ROOT}/{channel}/{device}/")
}

/// Signs files and writes them with their signatures. Each file is synced before its rename
/// ([`write_atomic`]); a sync costs a journal commit (several milliseconds on an ordinary disk),
/// and the file system commits concurrent syncs together, so the files are written by
/// [`WRITERS`] threads at once: 4,000 files take a fraction of a second instead of half a minute.
struct Writer<'a, S> {
    out: &'a Path,
    signer: &'a S,
    pending: Vec<(PathBuf, Vec<u8>)>,
    directories: BTreeSet<PathBuf>,
}

/// Threads writing files at once.
const WRITERS: usize = 32;

impl<S: MetadataSign> Writer<'_, S> {
    /// Signs `bytes` and queues the file and its signature for [`Writer::flush`].
    fn write_signed(&mut self, path: &Path, bytes: Vec<u8>) -> Result<(), PublishError> {
        let signature = self
            .signer
            .sign(&bytes)
            .map_err(|source| PublishError::Sign {
                path: path.to_owned(),
                source: Box::new(source),
            })?;
        let dir = path.parent().unwrap_or(self.out);
        if self.directories.insert(dir.to_owned()) {
            create_dir(dir)?;
        }
        let mut signature_path = path.as_os_str().to_owned();
        signature_path.push(SIGNATURE_SUFFIX);
        self.pending.push((path.to_owned(), bytes));
        self.pending
            .push((PathBuf::from(signature_path), signature.into_bytes()));
        Ok(())
    }

    /// Writes every queued file, then syncs their directories, so the new names are on disk
    /// before the switch: a power cut cannot leave `current` naming a file whose directory entry
    /// was lost.
    fn flush(&mut self) -> Result<(), PublishError> {
        let files = std::mem::take(&mut self.pending);
        parallel(&files, |(path, bytes)| write(path, bytes))?;
        let directories: Vec<_> = std::mem::take(&mut self.directories).into_iter().collect();
        parallel(&directories, |dir| {
            sync_directory(dir).map_err(io_error("sync", dir))
        })
    }
}

/// Runs `work` on every item on up to [`WRITERS`] threads; the first error wins.
fn parallel<T: Sync>(
    items: &[T],
    work: impl Fn(&T) -> Result<(), PublishError> + Sync,
) -> Result<(), PublishError> {
    if items.len() <= 1 {
        return items.iter().try_for_each(&work);
    }
    let chunk = items.len().div_ceil(WRITERS);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(|| part.iter().try_for_each(&work)))
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle.join().unwrap_or_else(|_| {
                    Err(PublishError::Io {
                        action: "write (a writer thread panicked)",
                        path: PathBuf::new(),
                        source: std::io::ErrorKind::Other.into(),
                    })
                })
            })
            .collect::<Result<Vec<()>, _>>()
            .map(|_| ())
    })
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), PublishError> {
    write_atomic(path, bytes, Existing::Replace, false).map_err(io_error("write", path))
}

fn create_dir(dir: &Path) -> Result<(), PublishError> {
    std::fs::create_dir_all(dir).map_err(io_error("create", dir))
}

fn read_limited(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(MAX_METADATA_LEN as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn add_seconds(now: i64, duration: Duration) -> i64 {
    now.saturating_add(i64::try_from(duration.as_secs()).unwrap_or(i64::MAX))
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PublishError {
    let path = path.to_owned();
    move |source| PublishError::Io {
        action,
        path,
        source,
    }
}

/// What [`reap`] removed (or, with `dry_run`, would remove).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReapReport {
    /// Files and directories removed, relative to the tree.
    pub removed: Vec<String>,
    /// Pool files (relative to the tree, `pool/…`) that a kept index references: what the pool
    /// must keep.
    pub referenced_pool: BTreeSet<String>,
}

/// Removes metadata no reader can need any more: publications whose successor became current
/// more than `grace` ago, and index files that no kept publication references and that are older
/// than `grace` (a crashed publication's leftovers included). Returns the pool files still
/// referenced, for the pool's own reaping.
pub fn reap(
    out: &Path,
    grace: Duration,
    now: std::time::SystemTime,
) -> Result<ReapReport, PublishError> {
    let mut report = ReapReport::default();
    let Some(current) = read_current(out)? else {
        return Ok(report);
    };
    let cutoff = now.checked_sub(grace).unwrap_or(std::time::UNIX_EPOCH);
    let meta_root = out.join(META);

    // Walk back from the current publication while the successor became current within grace.
    let mut kept: HashMap<u64, ChannelsDoc> = HashMap::new();
    let mut serial = current.global.serial;
    let mut doc = current;
    loop {
        let dir = meta_root.join(serial.to_string());
        let previous = std::fs::read_to_string(dir.join(PREVIOUS))
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok());
        let switched_at = modified(&dir.join(CHANNELS_FILE))?;
        kept.insert(serial, doc);
        let Some(previous) = previous else { break };
        if switched_at < cutoff {
            break;
        }
        match read_meta(&meta_root.join(previous.to_string()))? {
            Some(previous_doc) => {
                serial = previous;
                doc = previous_doc;
            }
            None => break,
        }
    }

    let mut referenced_indexes = BTreeSet::new();
    for doc in kept.values() {
        for entry in doc.channels.values() {
            for device in entry.devices.values() {
                referenced_indexes.insert(url_to_path(out, &device.index));
            }
        }
    }
    for path in &referenced_indexes {
        let url = format!(
            "{URL_ROOT}/{}",
            path.strip_prefix(out).unwrap_or(path).to_string_lossy()
        );
        if let Ok(index) = read_index(out, &url) {
            for file in index.images.iter().flat_map(|image| &image.files) {
                let relative = file.path.strip_prefix(URL_ROOT).unwrap_or(&file.path);
                report
                    .referenced_pool
                    .insert(relative.trim_start_matches('/').to_owned());
            }
        }
    }

    // Publications not kept.
    if let Ok(entries) = std::fs::read_dir(&meta_root) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let keep = name
                .parse::<u64>()
                .is_ok_and(|serial| kept.contains_key(&serial));
            if !keep && modified(&entry.path())? < cutoff {
                std::fs::remove_dir_all(entry.path()).map_err(io_error("remove", &entry.path()))?;
                report.removed.push(format!("{META}/{name}"));
            }
        }
    }
    // Index files not referenced.
    let mut stack: Vec<PathBuf> = std::fs::read_dir(out)
        .map_err(io_error("list", out))?
        .flatten()
        .filter(|entry| !RESERVED.contains(&entry.file_name().to_string_lossy().as_ref()))
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
        .map(|entry| entry.path())
        .collect();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                stack.push(path);
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let index_file = name
                .strip_suffix(SIGNATURE_SUFFIX)
                .unwrap_or(&name)
                .to_owned();
            let is_index = index_file.starts_with("index.") && index_file.ends_with(".json");
            // A temporary file of a killed publisher.
            let is_leftover = name.starts_with('.') && name.contains(".tmp-");
            if !(is_index || is_leftover) || referenced_indexes.contains(&dir.join(&index_file)) {
                continue;
            }
            if modified(&path)? < cutoff {
                std::fs::remove_file(&path).map_err(io_error("remove", &path))?;
                report.removed.push(
                    path.strip_prefix(out)
                        .unwrap_or(&path)
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
        // A directory left empty goes too (a removed device or channel).
        if std::fs::read_dir(&dir).is_ok_and(|mut entries| entries.next().is_none()) {
            let _ = std::fs::remove_dir(&dir);
        }
    }
    report.removed.sort();
    Ok(report)
}

fn read_meta(dir: &Path) -> Result<Option<ChannelsDoc>, PublishError> {
    let path = dir.join(CHANNELS_FILE);
    match read_limited(&path) {
        Ok(bytes) => Ok(wire::parse_channels(&bytes).ok()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PublishError::Io {
            action: "read",
            path,
            source,
        }),
    }
}

fn modified(path: &Path) -> Result<std::time::SystemTime, PublishError> {
    std::fs::symlink_metadata(path)
        .and_then(|metadata| metadata.modified())
        .map_err(io_error("inspect", path))
}
