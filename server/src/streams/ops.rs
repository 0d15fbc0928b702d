//! The `streams` verbs with their I/O: read the streams, call the pure operations of
//! [`super::manage`], [`super::sync`] and [`super::orphans`], copy data, publish. Each verb
//! returns a report; with `dry_run` nothing is written.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::{StreamsError, io};
use super::filter::{Filter, matches_all};
use super::format::{Products, flatten};
use super::manage::{self, Added, Removed};
use super::orphans::{self, Orphans};
use super::sync::{self, Naming};
use super::tree::{self, Signer};
use crate::atomic::{Existing, write_atomic};
use crate::channels::publish::{read_current, read_index, url_to_path};

/// What a mutating verb did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// Items added.
    pub added: Vec<Added>,
    /// Versions removed (metadata only).
    pub removed: Vec<Removed>,
    /// Data files copied.
    pub copied: usize,
    /// The new publication's serial; `None` when nothing changed or on a dry run.
    pub serial: Option<u64>,
}

/// How a mutating verb publishes.
#[derive(Debug, Clone, Copy)]
pub struct Publishing<'a> {
    /// Who signs.
    pub signer: &'a Signer,
    /// Report what would change and write nothing.
    pub dry_run: bool,
    /// Now, Unix seconds (the `updated` fields).
    pub now: i64,
}

/// `insert SRC DST`: every item of the stream at `source` that `target` lacks, with its file,
/// then one publication. Never removes anything.
pub async fn insert(
    source: &Path,
    target: &Path,
    filters: &[Filter],
    publishing: Publishing<'_>,
) -> Result<Report, StreamsError> {
    let source = tree::read(source)?;
    let current = tree::read_published(target)?;
    let mut next = manage::by_content_id(current.clone());
    let mut report = Report::default();
    for incoming in &source.products {
        let products = next
            .entry(incoming.content_id.clone())
            .or_insert_with(|| empty_like(incoming));
        report
            .added
            .extend(manage::insert(products, incoming, filters)?);
    }
    if publishing.dry_run {
        return Ok(report);
    }
    report.copied = copy_added(&report.added, &source.root, target)?;
    report.serial = tree::publish(
        target,
        &current,
        next.into_values().collect(),
        publishing.signer,
        publishing.now,
    )
    .await?;
    Ok(report)
}

/// `promote --label LABEL SRC_INDEX DST VERSION`: version `version` of the source stream, items
/// labelled `label`, inserted into `target` under the target's content id (the one products
/// file there, or `<vendor of the source>:<name of the target directory>`).
pub async fn promote(
    source: &Path,
    target: &Path,
    version: &str,
    label: &str,
    filters: &[Filter],
    publishing: Publishing<'_>,
) -> Result<Report, StreamsError> {
    super::format::check_version_name(version)?;
    let source = tree::read(source)?;
    let current = tree::read_published(target)?;
    let mut next = manage::by_content_id(current.clone());
    let mut report = Report::default();
    for incoming in &source.products {
        let content_id = target_content_id(&current, &incoming.content_id, target);
        let promoted = manage::promote(incoming, &content_id, version, label, filters);
        if promoted.products.is_empty() {
            continue;
        }
        let products = next
            .entry(content_id)
            .or_insert_with(|| empty_like(&promoted));
        report
            .added
            .extend(manage::insert(products, &promoted, &[])?);
    }
    if report.added.is_empty()
        && !source.products.iter().any(|products| {
            products
                .items()
                .any(|(_, version_name, _, _)| version_name == version)
        })
    {
        return Err(StreamsError::NoVersion {
            version: version.to_owned(),
            index: source.index,
        });
    }
    if publishing.dry_run {
        return Ok(report);
    }
    report.copied = copy_added(&report.added, &source.root, target)?;
    report.serial = tree::publish(
        target,
        &current,
        next.into_values().collect(),
        publishing.signer,
        publishing.now,
    )
    .await?;
    Ok(report)
}

/// `clean-md --max N DIR`: keeps the newest `max` versions of each product passing `filters`;
/// metadata only.
pub async fn clean_md(
    dir: &Path,
    max: usize,
    filters: &[Filter],
    publishing: Publishing<'_>,
) -> Result<Report, StreamsError> {
    let current = tree::read_published(dir)?;
    if current.is_empty() {
        return Err(StreamsError::NoIndex {
            path: dir.join(super::format::INDEX_PATH),
        });
    }
    let mut next = current.clone();
    let mut report = Report::default();
    for products in &mut next {
        report
            .removed
            .extend(manage::clean_md(products, max, filters));
    }
    if publishing.dry_run || report.removed.is_empty() {
        return Ok(report);
    }
    report.serial = tree::publish(dir, &current, next, publishing.signer, publishing.now).await?;
    Ok(report)
}

/// What `find-orphans` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OrphansReport {
    /// Files walked.
    pub files: usize,
    /// Files orphaned now (with their first-seen time).
    pub orphans: Orphans,
    /// Of which newly orphaned.
    pub new: usize,
}

/// `find-orphans ORPHANS_JSON DATA_DIR INDEX…`: records every file under `data_dir` that no
/// index references, keeping first-seen times from `orphans_file` (`-`: stdout, read nothing).
pub fn find_orphans(
    orphans_file: &Path,
    data_dir: &Path,
    indexes: &[PathBuf],
    now: i64,
) -> Result<(OrphansReport, Vec<u8>), StreamsError> {
    let previous = read_orphans(orphans_file)?;
    let indexes = default_indexes(data_dir, indexes);
    let referenced = tree::referenced(data_dir, &indexes)?;
    let files = tree::walk(data_dir)?;
    let count = files.len();
    let orphans = orphans::update(&previous, files, &referenced, now);
    let new = orphans
        .keys()
        .filter(|path| !previous.contains_key(*path))
        .count();
    let bytes = orphans::encode(&orphans);
    if orphans_file != Path::new("-") {
        write_atomic(orphans_file, &bytes, Existing::Replace, false)
            .map_err(io("write", orphans_file))?;
    }
    Ok((
        OrphansReport {
            files: count,
            orphans,
            new,
        },
        bytes,
    ))
}

/// What `reap-orphans` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReapReport {
    /// Files removed (or, on a dry run, that would be), with their first-seen time.
    pub reaped: Vec<(String, i64)>,
    /// Bytes freed.
    pub freed: u64,
    /// Orphans kept: younger than the grace period, or referenced by a given index.
    pub kept: usize,
}

/// `reap-orphans ORPHANS_JSON DATA_DIR [INDEX…]`: deletes the files orphaned for longer than
/// `older`, never one that a given index references, then their empty directories, and
/// rewrites the orphans file without them.
pub fn reap_orphans(
    orphans_file: &Path,
    data_dir: &Path,
    indexes: &[PathBuf],
    older: Duration,
    dry_run: bool,
    now: i64,
) -> Result<ReapReport, StreamsError> {
    let mut recorded = read_orphans(orphans_file)?;
    let referenced = tree::referenced(data_dir, &default_indexes(data_dir, indexes))?;
    let due: Vec<(String, i64)> = orphans::due(&recorded, &referenced, now, older)
        .map(|(path, seen)| (path.to_owned(), seen))
        .collect();
    let mut report = ReapReport {
        kept: recorded.len() - due.len(),
        ..ReapReport::default()
    };
    for (relative, seen) in due {
        if !super::format::is_safe_path(&relative) {
            continue;
        }
        let path = data_dir.join(&relative);
        let size = match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_file() => meta.len(),
            Ok(_) => continue,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                recorded.remove(&relative);
                continue;
            }
            Err(source) => {
                return Err(StreamsError::Io {
                    action: "inspect",
                    path,
                    source,
                });
            }
        };
        if !dry_run {
            std::fs::remove_file(&path).map_err(io("remove", &path))?;
            remove_empty_parents(data_dir, &path);
            recorded.remove(&relative);
        }
        report.freed = report.freed.saturating_add(size);
        report.reaped.push((relative, seen));
    }
    // Referenced again: no longer an orphan.
    recorded.retain(|path, _| !referenced.contains(path));
    if !dry_run {
        write_atomic(
            orphans_file,
            &orphans::encode(&recorded),
            Existing::Replace,
            false,
        )
        .map_err(io("write", orphans_file))?;
    }
    Ok(report)
}

/// What `sync` planned and wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncReport {
    /// `product/version` of the new versions.
    pub new_versions: Vec<String>,
    /// Data files written to the output tree.
    pub copied: usize,
}

/// The inputs of `sync`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SyncOptions {
    /// The published channel tree (`[channels] dir`).
    pub channels_dir: PathBuf,
    /// The channels to take (empty: every one neither hidden nor a redirect).
    pub channels: Vec<String>,
    /// Content id and product names.
    pub naming: Naming,
    /// The stream compared against (the `[streams] dir`).
    pub target: PathBuf,
    /// Take every latest build, changed or not.
    pub force: bool,
    /// Publish version `OLD`'s build again as `NEW`.
    pub rebuild: Option<(String, String)>,
}

impl SyncOptions {
    /// The options `sync` and `serve`'s refresh run with: `[channels] dir`, `[streams]`.
    pub fn from_config(config: &crate::config::Config) -> Self {
        let naming = Naming {
            vendor: config.streams.vendor.clone(),
            stream: config.streams.name.clone(),
        };
        let mut options = Self::new(config.channels_path(), naming, config.streams_path());
        options.channels = config.streams.channels.clone();
        options
    }

    /// Options comparing the channels in `channels_dir` with the stream in `target`.
    pub fn new(channels_dir: PathBuf, naming: Naming, target: PathBuf) -> Self {
        Self {
            channels_dir,
            channels: Vec::new(),
            naming,
            target,
            force: false,
            rebuild: None,
        }
    }
}

/// `sync OUT_DIR`: writes into `out` a build-output tree (the whole stream plus the new versions
/// in `streams/v1/`, unsigned, and the files of the new versions only), ready for `insert`.
pub fn sync(
    out: &Path,
    options: &SyncOptions,
    filters: &[Filter],
    dry_run: bool,
) -> Result<SyncReport, StreamsError> {
    let indexes = channel_indexes(&options.channels_dir, &options.channels)?;
    let source = sync::products_from_channels(&options.naming, &indexes);
    let mut channel_paths = BTreeMap::new();
    for doc in &indexes {
        for image in &doc.images {
            for file in &image.files {
                channel_paths.insert(
                    sync::data_path(&file.checksum, &file.name),
                    file.path.clone(),
                );
            }
        }
    }
    let current = tree::read_published(&options.target)?;
    let target = current
        .into_iter()
        .find(|products| products.content_id == source.content_id)
        .unwrap_or_else(|| Products::new(&source.content_id));
    let plan = sync::plan(
        &source,
        &target,
        filters,
        options.force,
        options.rebuild.as_ref(),
        &channel_paths,
    )?;
    let mut report = SyncReport {
        new_versions: plan.new_versions.clone(),
        copied: 0,
    };
    if dry_run {
        return Ok(report);
    }
    for file in &plan.files {
        let from = url_to_path(&options.channels_dir, &file.channel_path);
        if tree::copy_verified(&from, &out.join(&file.path), &file.sha256, file.size)? {
            report.copied += 1;
        }
    }
    let v1 = out.join(super::format::STREAMS_DIR);
    std::fs::create_dir_all(&v1).map_err(io("create", &v1))?;
    let path = out.join(super::format::products_path(&plan.products.content_id));
    write_atomic(
        &path,
        &super::format::encode(&plan.products),
        Existing::Replace,
        false,
    )
    .map_err(io("write", &path))?;
    let index = super::format::index_of([&plan.products], &super::format::rfc2822(0));
    let path = out.join(super::format::INDEX_PATH);
    write_atomic(
        &path,
        &super::format::encode(&index),
        Existing::Replace,
        false,
    )
    .map_err(io("write", &path))?;
    Ok(report)
}

/// What `serve` runs after each channel publication: `sync` into a scratch tree inside the
/// stream directory, `insert` it, remove the scratch tree. Publishes nothing when nothing
/// changed.
pub async fn refresh(
    options: &SyncOptions,
    signer: &Signer,
    now: i64,
) -> Result<Report, StreamsError> {
    std::fs::create_dir_all(&options.target).map_err(io("create", &options.target))?;
    let scratch = options
        .target
        .join(format!(".sync-{}", crate::artifacts::nonce()));
    let outcome = async {
        let synced = sync(&scratch, options, &[], false)?;
        if synced.new_versions.is_empty() && options.target.join(super::format::INDEX_PATH).exists()
        {
            return Ok(Report::default());
        }
        let publishing = Publishing {
            signer,
            dry_run: false,
            now,
        };
        insert(&scratch, &options.target, &[], publishing).await
    }
    .await;
    let _ = std::fs::remove_dir_all(&scratch);
    outcome
}

/// `serve`'s hook after each channel publication: when `[streams] publish` is set, refresh the
/// stream (see [`refresh`]). A failure is logged and leaves the stream as it was; the channel
/// publication stands.
pub async fn refresh_after_publication(config: &crate::config::Config, now: i64) {
    if !config.streams.publish {
        return;
    }
    let options = SyncOptions::from_config(config);
    let outcome = match Signer::from_config(config, false) {
        Ok(signer) => refresh(&options, &signer, now).await,
        Err(error) => Err(error),
    };
    match outcome {
        Ok(report) if report.serial.is_some() => tracing::info!(
            serial = report.serial,
            items = report.added.len(),
            dir = %options.target.display(),
            "stream published"
        ),
        Ok(_) => {}
        Err(error) => tracing::warn!(
            error = %crate::imagebuilder::error_chain(&error),
            dir = %options.target.display(),
            "the stream was not refreshed"
        ),
    }
}

/// One line of `query`: an item's flattened attributes and `item_url`.
pub type QueryItem = BTreeMap<String, String>;

/// `query INDEX [FILTER…] [--max N]`: the flattened items passing `filters`, of the newest `max`
/// versions of each product, with `item_url` (the file's path).
pub fn query(
    index: &Path,
    filters: &[Filter],
    max: Option<usize>,
) -> Result<Vec<QueryItem>, StreamsError> {
    let stream = tree::read(index)?;
    let mut items = Vec::new();
    for products in &stream.products {
        for (product_name, product) in &products.products {
            let mut versions: Vec<Vec<QueryItem>> = Vec::new();
            for (version_name, version) in &product.versions {
                let passing: Vec<QueryItem> = version
                    .items
                    .keys()
                    .map(|item_name| flatten(products, product_name, version_name, item_name))
                    .filter(|flat| matches_all(filters, flat))
                    .map(|mut flat| {
                        if let Some(path) = flat.get("path") {
                            let url = stream.root.join(path).display().to_string();
                            flat.insert("item_url".to_owned(), url);
                        }
                        flat
                    })
                    .collect();
                if !passing.is_empty() {
                    versions.push(passing);
                }
            }
            // Versions iterate in byte-wise order: the newest are last.
            let skip = max.map_or(0, |max| versions.len().saturating_sub(max));
            items.extend(versions.into_iter().skip(skip).flatten());
        }
    }
    Ok(items)
}

/// Renders `format` with Python's `%(key)s` substitutions, as `sstream-query -o` does; `%%` is a
/// percent sign, a missing key renders empty.
pub fn render(format: &str, item: &QueryItem) -> String {
    let mut out = String::new();
    let mut rest = format;
    while let Some(start) = rest.find('%') {
        out.push_str(rest.get(..start).unwrap_or_default());
        let after = rest.get(start + 1..).unwrap_or_default();
        if let Some(after) = after.strip_prefix('%') {
            out.push('%');
            rest = after;
        } else if let Some(named) = after.strip_prefix('(')
            && let Some(close) = named.find(')')
            && let Some(tail) = named
                .get(close + 1..)
                .and_then(|tail| tail.strip_prefix('s'))
        {
            let key = named.get(..close).unwrap_or_default();
            out.push_str(item.get(key).map_or("", String::as_str));
            rest = tail;
        } else {
            out.push('%');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn channel_indexes(
    channels_dir: &Path,
    wanted: &[String],
) -> Result<Vec<attendant_proto::channel::IndexDoc>, StreamsError> {
    let Some(current) = read_current(channels_dir)? else {
        return Ok(Vec::new());
    };
    let mut indexes = Vec::new();
    for (name, channel) in &current.channels {
        let selected = if wanted.is_empty() {
            !channel.hidden && channel.redirect.is_none()
        } else {
            wanted.contains(name)
        };
        if !selected {
            continue;
        }
        for device in channel.devices.values() {
            if device.redirect.is_none() {
                indexes.push(read_index(channels_dir, &device.index)?);
            }
        }
    }
    Ok(indexes)
}

fn copy_added(added: &[Added], source_root: &Path, target: &Path) -> Result<usize, StreamsError> {
    let mut copied = 0;
    let mut seen = BTreeSet::new();
    for item in added {
        let (Some(path), Some(sha256), Some(size)) = (&item.path, &item.sha256, item.size) else {
            continue;
        };
        if !seen.insert(path.clone()) {
            continue;
        }
        let to = target.join(path);
        let from = source_root.join(path);
        if !from.exists() {
            if std::fs::metadata(&to).is_ok_and(|meta| meta.len() == size) {
                continue;
            }
            return Err(StreamsError::MissingData {
                pedigree: item.pedigree.clone(),
                path: from,
            });
        }
        if tree::copy_verified(&from, &to, sha256, size)? {
            copied += 1;
        }
    }
    Ok(copied)
}

fn empty_like(products: &Products) -> Products {
    let mut empty = Products::new(&products.content_id);
    if let Some(datatype) = products.attributes.get("datatype") {
        empty
            .attributes
            .insert("datatype".to_owned(), datatype.clone());
    }
    empty
}

/// The content id a promotion lands under in `target`: its own when it has exactly one,
/// otherwise the source's vendor and the target directory's name.
fn target_content_id(current: &[Products], source_content_id: &str, target: &Path) -> String {
    if let [only] = current {
        return only.content_id.clone();
    }
    let vendor = source_content_id
        .rsplit_once(':')
        .map_or(source_content_id, |(vendor, _)| vendor);
    let name = target
        .canonicalize()
        .ok()
        .and_then(|path| {
            path.file_name()
                .map(|name| name.to_string_lossy().into_owned())
        })
        .or_else(|| {
            target
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "released".to_owned());
    format!("{vendor}:{name}")
}

fn read_orphans(path: &Path) -> Result<Orphans, StreamsError> {
    if path == Path::new("-") {
        return Ok(Orphans::new());
    }
    match std::fs::read(path) {
        Ok(bytes) => Ok(orphans::parse(&bytes)?),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Orphans::new()),
        Err(source) => Err(StreamsError::Io {
            action: "read",
            path: path.to_owned(),
            source,
        }),
    }
}

/// With no index given, the data directory's own stream (as `meph2-util` does).
fn default_indexes(data_dir: &Path, indexes: &[PathBuf]) -> Vec<PathBuf> {
    if !indexes.is_empty() {
        return indexes.to_vec();
    }
    let own = data_dir.join(super::format::INDEX_PATH);
    if own.exists() { vec![own] } else { Vec::new() }
}

fn remove_empty_parents(root: &Path, file: &Path) {
    let mut dir = file.parent();
    while let Some(current) = dir {
        if current == root || !current.starts_with(root) {
            break;
        }
        // Fails (and stops) at the first directory that is not empty.
        if std::fs::remove_dir(current).is_err() {
            break;
        }
        dir = current.parent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_substitutes_like_python_percent_formatting() {
        let item: QueryItem = [("product_name", "p"), ("version_name", "00000002")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(
            render("%(product_name)s %(version_name)s", &item),
            "p 00000002"
        );
        assert_eq!(render("100%% %(missing)s|%(x", &item), "100% |%(x");
    }
}
