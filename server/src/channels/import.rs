//! The importer of automatic channels (`attendant-server channel import [NAME…]`, and `serve`
//! every `channels.import_interval`): for each device of each `[[channels.auto]]` channel it
//! runs the channel's inputs in order ([`super::generators`]) and adds a build when one of them
//! changed — when the `version_detail` they give differs from the device's latest build's.
//!
//! - An input named `name,DEVICE` applies to that device only and takes the place of the input
//!   `name` for it, as in system-image's importer.
//! - A failing input publishes nothing for that device; the report says which input and why.
//! - A build with a prebuilt image (`http`, `remote-channel`, or a `channel` build of an
//!   imported image) is added ready, its images copied into the pool and signed with this
//!   server's key; otherwise it is built from the release and recipe with the channel stamp
//!   embedded, through the build queue (settled like every channel build).
//! - One importer at a time across processes and hosts: the run holds the database lock
//!   [`IMPORT_LOCK`]; a second importer started meanwhile does nothing and says so.

use std::collections::BTreeMap;
use std::time::Duration;

use attendant_proto::usign::SecretKey;

use crate::channels::apply::{ChannelError, apply};
use crate::channels::builds::UNKNOWN_REVISION;
use crate::channels::generators::{self, GeneratorError};
use crate::channels::model::{
    Build, BuildSource, BuildState, ChannelKind, DeviceId, ImageFile, Recipe,
};
use crate::channels::ops::{self, NewBuild};
use crate::channels::pool::Pool;
use crate::channels::publish::POOL;
use crate::channels::remote::{self, RemoteInput};
use crate::config::{AutoChannel, Generator, ImportInput};
use crate::imagebuilder::error_chain;
use crate::signing::signature_file;
use crate::state::{AppState, now};
use crate::store::StoreError;

/// The database lock held while importing.
pub const IMPORT_LOCK: &str = "channels-import";

/// How long the import lock lasts; longer than any import run takes.
const LOCK_TTL: Duration = Duration::from_secs(3600);

/// Who adds imported builds, in the audit log.
pub const IMPORT_ACTOR: &str = "importer";

/// What one import run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct ImportReport {
    /// Another importer held the lock: nothing was done.
    pub locked: bool,
    /// One line per channel and device.
    pub outcomes: Vec<ImportOutcome>,
}

/// What happened to one device (or to a whole channel that could not be imported).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct ImportOutcome {
    /// The channel.
    pub channel: String,
    /// The device (empty for channel-wide failures).
    pub device: String,
    /// What happened.
    pub result: ImportResult,
}

/// The result for one device.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ImportResult {
    /// A build was added.
    Added {
        /// Its number.
        number: u64,
        /// Its `version_detail`.
        version_detail: String,
    },
    /// No input changed.
    UpToDate,
    /// An input failed (or the channel cannot be imported); nothing was added.
    Failed {
        /// Why.
        reason: String,
    },
}

/// Why an import run could not run at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The channel store failed.
    #[error("the channel store failed")]
    Store(#[from] StoreError),
    /// A name given on the command line is not an automatic channel of the configuration.
    #[error("`{name}` is not an automatic channel of the configuration (`[[channels.auto]]`)")]
    NotConfigured {
        /// The name.
        name: String,
    },
    /// Imported images are signed, and no signing key is configured.
    #[error("importing needs the server's signing key (`signing_key`)")]
    NoSigningKey,
}

/// Runs the importer for `names` (all automatic channels when empty).
pub async fn import(
    state: &AppState,
    key: Option<&SecretKey>,
    names: &[String],
) -> Result<ImportReport, ImportError> {
    let configured = &state.config.channels.auto;
    for name in names {
        if !configured.iter().any(|auto| &auto.channel == name) {
            return Err(ImportError::NotConfigured { name: name.clone() });
        }
    }
    let key = key.ok_or(ImportError::NoSigningKey)?;
    let holder = format!(
        "import-{}-{}",
        std::process::id(),
        crate::artifacts::nonce()
    );
    let ttl = i64::try_from(LOCK_TTL.as_millis()).unwrap_or(i64::MAX);
    let channels = state.store.channels();
    if !channels.try_lock(IMPORT_LOCK, &holder, ttl, now()).await? {
        return Ok(ImportReport {
            locked: true,
            outcomes: Vec::new(),
        });
    }
    let mut report = ImportReport::default();
    let result = async {
        for auto in configured
            .iter()
            .filter(|auto| names.is_empty() || names.contains(&auto.channel))
        {
            import_channel(state, key, auto, &mut report).await?;
        }
        Ok::<_, ImportError>(())
    }
    .await;
    if let Err(error) = channels.unlock(IMPORT_LOCK, &holder).await {
        tracing::warn!(%error, "cannot release the import lock; it expires on its own");
    }
    result.map(|()| report)
}

async fn import_channel(
    state: &AppState,
    key: &SecretKey,
    auto: &AutoChannel,
    report: &mut ImportReport,
) -> Result<(), ImportError> {
    let snapshot = state.store.channels().snapshot().await?;
    let channel_failed = |reason: String| ImportOutcome {
        channel: auto.channel.clone(),
        device: String::new(),
        result: ImportResult::Failed { reason },
    };
    let Some(channel) = snapshot.channels.get(&auto.channel) else {
        report
            .outcomes
            .push(channel_failed("the channel does not exist".to_owned()));
        return Ok(());
    };
    if channel.settings.kind != ChannelKind::Auto {
        report.outcomes.push(channel_failed(
            "the channel is not automatic (create it with `--auto`)".to_owned(),
        ));
        return Ok(());
    }
    for (device_name, device) in &channel.devices {
        if device.redirect.is_some() {
            continue;
        }
        let result = match import_device(state, key, auto, &snapshot.channels, device_name).await {
            Ok(result) => result,
            Err(reason) => ImportResult::Failed { reason },
        };
        if let ImportResult::Failed { reason } = &result {
            tracing::warn!(channel = %auto.channel, device = %device_name, %reason, "import failed");
        }
        report.outcomes.push(ImportOutcome {
            channel: auto.channel.clone(),
            device: device_name.clone(),
            result,
        });
    }
    Ok(())
}

/// The next build of one device as its inputs describe it.
#[derive(Debug, Default)]
struct Candidate {
    openwrt_version: String,
    version_code: String,
    recipe: Recipe,
    detail: Vec<(String, String)>,
    /// Prebuilt images: already in the pool, or to download (URL, name, type, filesystem,
    /// expected SHA-256).
    images: Vec<ImageFile>,
    downloads: Vec<Download>,
    origin: Vec<String>,
}

#[derive(Debug)]
struct Download {
    url: String,
    name: String,
    image_type: String,
    filesystem: String,
    sha256: Option<String>,
    size: Option<u64>,
}

async fn import_device(
    state: &AppState,
    key: &SecretKey,
    auto: &AutoChannel,
    tree: &ops::Tree,
    device_name: &str,
) -> Result<ImportResult, String> {
    let device: DeviceId = device_name
        .parse()
        .map_err(|error| format!("device: {error}"))?;
    let settings = &state.config.channels;
    let client = reqwest::Client::builder()
        .user_agent(concat!("attendant-server/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|error| error.to_string())?;
    let mut candidate = Candidate::default();
    for input in applicable(&auto.inputs, device_name) {
        let name = input.name.split(',').next().unwrap_or_default();
        let failed =
            |error: GeneratorError| format!("input `{}`: {}", input.name, error_chain(&error));
        match &input.generator {
            Generator::Upstream { track } => {
                let (version, code) = generators::upstream(state, track, &device)
                    .await
                    .map_err(failed)?;
                candidate
                    .detail
                    .push(("openwrt".to_owned(), version.clone()));
                candidate.detail.push(("revision".to_owned(), code.clone()));
                candidate.openwrt_version = version;
                candidate.version_code = code;
            }
            Generator::Recipe {
                add,
                remove,
                defaults,
                rootfs_size_mb,
            } => {
                let max = u64::try_from(state.config.max_defaults_length).unwrap_or(u64::MAX);
                let defaults = match defaults {
                    Some(path) => Some(generators::read_defaults(path, max).map_err(failed)?),
                    None => None,
                };
                candidate.recipe = Recipe {
                    add: add.clone(),
                    remove: remove.clone(),
                    defaults,
                    rootfs_size_mb: *rootfs_size_mb,
                };
                let digest = generators::recipe_digest(&candidate.recipe);
                candidate.detail.push((name.to_owned(), digest));
            }
            Generator::Http {
                url,
                monitor,
                sha256,
                image_type,
                filesystem,
            } => {
                let version = match (monitor, sha256) {
                    (Some(monitor), _) => {
                        generators::monitor(&client, monitor, settings.import_timeout)
                            .await
                            .map_err(failed)?
                    }
                    (None, Some(sha256)) => sha256.chars().take(12).collect(),
                    (None, None) => {
                        return Err(format!(
                            "input `{}`: an `http` input needs a `monitor` URL or a `sha256`",
                            input.name
                        ));
                    }
                };
                candidate.detail.push((name.to_owned(), version));
                let file_name = url
                    .rsplit('/')
                    .next()
                    .filter(|part| !part.is_empty())
                    .unwrap_or("image.bin")
                    .to_owned();
                candidate.downloads.push(Download {
                    url: url.clone(),
                    name: file_name,
                    image_type: image_type
                        .clone()
                        .unwrap_or_else(|| "sysupgrade".to_owned()),
                    filesystem: filesystem.clone().unwrap_or_else(|| "squashfs".to_owned()),
                    sha256: sha256.clone(),
                    size: None,
                });
                candidate.origin.push(url.clone());
            }
            Generator::RemoteChannel {
                url,
                channel,
                root_keys,
            } => {
                let input = RemoteInput {
                    url,
                    channel,
                    root_keys,
                };
                let remote =
                    remote::latest(state, &client, settings.import_timeout, input, device_name)
                        .await
                        .map_err(failed)?;
                candidate
                    .detail
                    .push((name.to_owned(), format!("{channel}/{}", remote.number)));
                candidate.openwrt_version = remote.openwrt_version;
                candidate.version_code = remote.version_code;
                candidate.recipe = remote.recipe;
                candidate
                    .downloads
                    .extend(remote.files.into_iter().map(|file| Download {
                        url: file.url,
                        name: file.name,
                        image_type: file.image_type,
                        filesystem: file.filesystem,
                        sha256: Some(file.sha256),
                        size: Some(file.size),
                    }));
                candidate
                    .origin
                    .push(format!("{url} {channel} build {}", remote.number));
            }
            Generator::Channel { channel } => {
                let source = generators::latest_ready(tree.get(channel), channel, device_name)
                    .map_err(failed)?;
                candidate
                    .detail
                    .push((name.to_owned(), format!("{channel}/{}", source.number)));
                candidate
                    .openwrt_version
                    .clone_from(&source.openwrt_version);
                candidate.version_code.clone_from(&source.version_code);
                candidate.recipe = source.recipe.clone();
                if !source.embeds_stamp {
                    candidate.images.extend(source.images.iter().cloned());
                }
                candidate
                    .origin
                    .push(format!("{channel} build {}", source.number));
            }
            Generator::Version => {}
        }
    }

    let latest = tree
        .get(&auto.channel)
        .and_then(|channel| channel.devices.get(device_name))
        .and_then(|device| device.latest());
    if latest.is_some_and(|latest| same_inputs(latest, &candidate.detail)) {
        return Ok(ImportResult::UpToDate);
    }
    // Checked here, where it names the input, rather than at publication, where one bad pair
    // would stop the whole tree.
    let pairs: Vec<String> = candidate
        .detail
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    attendant_proto::channel::VersionDetail::parse(&pairs.join(",")).map_err(|error| {
        format!("the inputs' version_detail cannot be published (input names are `[a-z0-9._-]`): {error}")
    })?;
    if candidate.openwrt_version.is_empty() {
        return Err(
            "no input names the OpenWrt release (add an `upstream` or a `channel` input)"
                .to_owned(),
        );
    }

    // Something changed: fetch what the build needs.
    for download in &candidate.downloads {
        let image = fetch_into_pool(state, key, &client, download).await?;
        candidate.images.push(image);
    }
    let prebuilt = !candidate.images.is_empty();
    let detail_text = candidate
        .detail
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(",");
    let new = NewBuild {
        source: if prebuilt {
            BuildSource::Imported {
                origin: candidate.origin.join(", "),
            }
        } else {
            BuildSource::Built {
                request_hash: String::new(),
            }
        },
        state: if prebuilt {
            BuildState::Ready
        } else {
            BuildState::Pending {
                request_hash: String::new(),
            }
        },
        openwrt_version: candidate.openwrt_version,
        version_code: if prebuilt && candidate.version_code.is_empty() {
            UNKNOWN_REVISION.to_owned()
        } else {
            candidate.version_code
        },
        recipe: candidate.recipe,
        description: format!("imported: {detail_text}"),
        version_detail: candidate.detail,
        minversion: None,
        images: candidate.images,
        embeds_stamp: !prebuilt,
    };
    let applied = apply(state, IMPORT_ACTOR, false, |tree| {
        ops::add_build(tree, &auto.channel, device_name, new.clone(), now())
    })
    .await
    .map_err(|error: ChannelError| error_chain(&error))?;
    let number = applied
        .rebuilds
        .first()
        .map(|build| build.number)
        .or_else(|| {
            applied
                .target
                .rsplit(' ')
                .next()
                .and_then(|number| number.parse().ok())
        })
        .unwrap_or_default();
    Ok(ImportResult::Added {
        number,
        version_detail: detail_text,
    })
}

/// The inputs that apply to `device`: `name,DEVICE` entries for it take the place of `name`.
fn applicable<'a>(inputs: &'a [ImportInput], device: &str) -> Vec<&'a ImportInput> {
    let specific: BTreeMap<&str, &ImportInput> = inputs
        .iter()
        .filter_map(|input| {
            let (name, target) = input.name.split_once(',')?;
            (target == device).then_some((name, input))
        })
        .collect();
    let mut chosen = Vec::new();
    for input in inputs {
        match input.name.split_once(',') {
            Some((_, target)) if target != device => {}
            Some((name, _)) => {
                if !chosen
                    .iter()
                    .any(|seen: &&ImportInput| seen.name.split(',').next() == Some(name))
                {
                    chosen.push(input);
                }
            }
            None => match specific.get(input.name.as_str()) {
                Some(replacement) => {
                    if !chosen.iter().any(|seen| std::ptr::eq(*seen, *replacement)) {
                        chosen.push(replacement);
                    }
                }
                None => chosen.push(input),
            },
        }
    }
    chosen
}

/// Whether `build` was made from the same inputs (a `tag` added later does not count).
fn same_inputs(build: &Build, detail: &[(String, String)]) -> bool {
    let own: Vec<_> = build
        .version_detail
        .iter()
        .filter(|(key, _)| key != "tag")
        .collect();
    own.len() == detail.len() && own.iter().zip(detail).all(|(a, b)| *a == b)
}

async fn fetch_into_pool(
    state: &AppState,
    key: &SecretKey,
    client: &reqwest::Client,
    download: &Download,
) -> Result<ImageFile, String> {
    let settings = &state.config.channels;
    let work = state
        .config
        .work_path()
        .join(format!(".import-{}", crate::artifacts::nonce()));
    tokio::fs::create_dir_all(&work)
        .await
        .map_err(|error| format!("cannot create `{}`: {error}", work.display()))?;
    let file = work.join("image");
    let downloaded = generators::download(
        client,
        &download.url,
        settings.import_timeout,
        settings.import_max_bytes,
        download.sha256.as_deref(),
        download.size,
        &file,
    )
    .await
    .map_err(|error| error_chain(&error));
    let added = match downloaded {
        Ok(_) => {
            let pool = Pool::new(state.config.channels_path().join(POOL));
            let name = download.name.clone();
            let key = key.clone();
            let source = file.clone();
            tokio::task::spawn_blocking(move || {
                pool.add(&source, &name, &|path: &std::path::Path| {
                    signature_file(&key, path)
                })
            })
            .await
            .map_err(|error| error.to_string())
            .and_then(|added| added.map_err(|error| error_chain(&error)))
        }
        Err(error) => Err(error),
    };
    let _ = tokio::fs::remove_dir_all(&work).await;
    let added = added?;
    Ok(ImageFile {
        name: download.name.clone(),
        image_type: download.image_type.clone(),
        filesystem: download.filesystem.clone(),
        size: added.size,
        sha256: added.sha256,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(name: &str) -> ImportInput {
        toml::from_str(&format!("name = \"{name}\"\ngenerator = \"version\"\n")).unwrap()
    }

    #[test]
    fn a_device_specific_input_takes_the_place_of_the_generic_one() {
        let inputs = [
            input("openwrt"),
            input("image"),
            input("image,x86/64/generic"),
            input("extra,ath79/generic/c7"),
            input("version"),
        ];
        let names = |device| {
            applicable(&inputs, device)
                .iter()
                .map(|input| input.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names("x86/64/generic"),
            ["openwrt", "image,x86/64/generic", "version"]
        );
        assert_eq!(
            names("ath79/generic/c7"),
            ["openwrt", "image", "extra,ath79/generic/c7", "version"]
        );
    }
}
