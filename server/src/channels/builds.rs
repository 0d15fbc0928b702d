//! Channel builds: built by the ImageBuilder through the ordinary build queue, or imported as
//! prebuilt files; [`settle`] moves finished jobs' images into the pool.
//!
//! A channel build is an ordinary build request (the device's profile, the channel's recipe:
//! packages added and `-removed`, a uci-defaults script, a rootfs size) submitted through
//! [`crate::build::submit_job`], so de-duplication, the queue limit, the workers and the
//! ImageBuilder cache are shared with the public API. It carries one more thing: the embedded
//! file [`CHANNEL_STAMP_PATH`](attendant_proto::wire::CHANNEL_STAMP_PATH) (an [`attendant_proto::channel::ChannelStamp`]: channel, alias target,
//! device, build number, `version_detail`, server URL), written into the ImageBuilder's `FILES`
//! directory by the worker, so a flashed router knows where it stands. Because the stamp names
//! the build number, a copy, tag or alias of a built build is rebuilt with its own stamp
//! (`submit_rebuilds`); imported images are reused as they are.
//!
//! [`settle`] runs in the CLI (which waits for its builds) and on `serve`'s schedule: for each
//! pending build whose job finished, the images are copied from the job store into the pool
//! (hashed while copying, signed with the server's image key) and the build becomes `Ready`,
//! or `Failed` with the job's reason.

use std::path::{Path, PathBuf};

use attendant_proto::api::{ImagebuilderStatus, RequestHash, parse_build_response};
use attendant_proto::channel::VersionDetail;
use attendant_proto::fwtool::{self, BlockKind, Metadata, TAIL_LEN};
use attendant_proto::usign::SecretKey;
use sha2::{Digest, Sha256};

use super::apply::{Applied, ChannelError, apply};
pub use super::jobs::BuildsError;
use super::model::{BuildSource, BuildState, DeviceId, ImageFile, Recipe};
use super::ops::{self, BuildRef, NewBuild, Settled};
use super::pool::{Pool, PoolError};
use crate::signing::signature_file;
use crate::state::{AppState, now};
use crate::store::JobState;

/// The `version_code` of a prebuilt image that names no revision.
pub const UNKNOWN_REVISION: &str = "unknown";

/// What `channel build NAME DEVICE --version V ...` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildOrder {
    /// OpenWrt release, e.g. `24.10.5`.
    pub version: String,
    /// The recipe.
    pub recipe: Recipe,
    /// The oldest build that may upgrade straight to this one.
    pub minversion: Option<u64>,
    /// Free text.
    pub description: String,
}

/// Adds a build of `device` to `channel` and submits its image job; the build stays `Pending`
/// until [`settle`] finds the job finished.
pub async fn build(
    state: &AppState,
    actor: &str,
    channel: &str,
    device: &str,
    order: &BuildOrder,
    dry_run: bool,
) -> Result<Applied, ChannelError> {
    let detail = version_detail(&order.version, &order.recipe)?;
    apply(state, actor, dry_run, |tree| {
        let new = NewBuild {
            source: BuildSource::Built {
                request_hash: String::new(),
            },
            state: BuildState::Pending {
                request_hash: String::new(),
            },
            openwrt_version: order.version.clone(),
            version_code: String::new(),
            recipe: order.recipe.clone(),
            description: order.description.clone(),
            version_detail: detail.clone(),
            minversion: order.minversion,
            images: Vec::new(),
            embeds_stamp: true,
        };
        ops::add_build(tree, channel, device, new, now())
    })
    .await
}

/// What `channel build NAME DEVICE --file IMAGE --version V` imports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOrder {
    /// The image file.
    pub file: PathBuf,
    /// The OpenWrt release it is.
    pub version: String,
    /// The oldest build that may upgrade straight to this one.
    pub minversion: Option<u64>,
    /// Free text.
    pub description: String,
    /// The image's file name in the pool (default: the name of `file`).
    pub name: Option<String>,
    /// Where it came from, for people (default: the path of `file`).
    pub origin: Option<String>,
}

/// Imports a prebuilt image as a new ready build: checked against the device (its fwtool
/// metadata, when present, must name it), copied into the pool and signed.
pub async fn import(
    state: &AppState,
    key: Option<&SecretKey>,
    actor: &str,
    channel: &str,
    device: &str,
    order: &ImportOrder,
    dry_run: bool,
) -> Result<Applied, ChannelError> {
    let id: DeviceId = device.parse().map_err(|_| ops::OpError::NoDevice {
        channel: channel.to_owned(),
        device: device.to_owned(),
    })?;
    let metadata = check_image(&order.file, &id)?;
    let detail = version_detail(&order.version, &Recipe::default())?;
    let name = order.name.clone().unwrap_or_else(|| {
        order
            .file
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or("image.bin")
            .to_owned()
    });
    let origin = order
        .origin
        .clone()
        .unwrap_or_else(|| order.file.display().to_string());
    // An image without fwtool metadata names no revision; the index needs one (an empty
    // `version_code` is refused by every reader), so it says `unknown`, as the importer does.
    let version_code = metadata
        .and_then(|m| m.version.and_then(|v| v.revision))
        .filter(|revision| !revision.is_empty())
        .unwrap_or_else(|| UNKNOWN_REVISION.to_owned());
    let (image_type, filesystem) = classify(&name);
    let mut image = ImageFile {
        name: name.clone(),
        image_type,
        filesystem,
        size: 0,
        sha256: String::new(),
    };
    let operation = |image: &ImageFile| {
        let new = NewBuild {
            source: BuildSource::Imported {
                origin: origin.clone(),
            },
            state: BuildState::Ready,
            openwrt_version: order.version.clone(),
            version_code: version_code.clone(),
            recipe: Recipe::default(),
            description: order.description.clone(),
            version_detail: detail.clone(),
            minversion: order.minversion,
            images: vec![image.clone()],
            embeds_stamp: false,
        };
        move |tree: &ops::Tree| ops::add_build(tree, channel, device, new.clone(), now())
    };
    // Refusals (no such channel, a mirror, a redirected device) come before the copy.
    let preview = apply(state, actor, true, operation(&image)).await?;
    if dry_run {
        return Ok(preview);
    }
    let key = key.ok_or(BuildsError::NoSigningKey)?;
    let pool = Pool::new(state.config.channels_path().join("pool"));
    let source = order.file.clone();
    let key = key.clone();
    let added = tokio::task::spawn_blocking(move || {
        pool.add(&source, &name, &|path: &Path| signature_file(&key, path))
    })
    .await
    .map_err(|join| BuildsError::Result {
        request_hash: String::new(),
        reason: join.to_string(),
    })?
    .map_err(BuildsError::from)?;
    image.size = added.size;
    image.sha256 = added.sha256;
    apply(state, actor, false, operation(&image)).await
}

/// Checks a device id against upstream's profiles of the current stable release and returns
/// it with the profile resolved as the build API resolves it (a board name such as
/// `tplink,archer-c7-v5` becomes the profile id `tplink_archer-c7-v5`).
pub async fn resolve_device(state: &AppState, text: &str) -> Result<DeviceId, BuildsError> {
    let unknown = |reason: String| BuildsError::UnknownDevice {
        device: text.chars().take(200).collect(),
        reason,
    };
    let mut device: DeviceId = text
        .parse()
        .map_err(|error: super::model::DeviceIdError| unknown(error.to_string()))?;
    let versions = state.metadata.versions().await?;
    let version = if versions.stable_version.is_empty() {
        versions.versions_list.first().cloned().unwrap_or_default()
    } else {
        versions.stable_version.clone()
    };
    let branches = &state.config.branches;
    let Some(branch) = branches.get(&crate::build::branch_of(&version, branches)) else {
        return Err(unknown(format!("no configured branch offers `{version}`")));
    };
    let version_path = branch.path.replace("{version}", &version);
    let Some(profiles) = state
        .metadata
        .profiles(&version_path, &device.target_path())
        .await?
    else {
        return Err(unknown(format!(
            "OpenWrt {version} has no target `{}`",
            device.target_path()
        )));
    };
    let resolved = profiles.resolve_profile(&device.profile).map_err(|_| {
        unknown(format!(
            "OpenWrt {version} `{}` has no profile `{}`",
            device.target_path(),
            device.profile
        ))
    })?;
    device.profile = resolved.id;
    Ok(device)
}

/// A build still waiting for its job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// The build.
    pub build: BuildRef,
    /// The job's stage.
    pub stage: ImagebuilderStatus,
    /// Jobs ahead of it, while queued.
    pub queue_position: Option<u64>,
}

/// What one [`settle`] pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettleReport {
    /// Builds now ready.
    pub ready: Vec<BuildRef>,
    /// Builds now failed, with the reason.
    pub failed: Vec<(BuildRef, String)>,
    /// Builds still waiting.
    pub waiting: Vec<Waiting>,
}

/// One pass over the pending builds: finished jobs' images go into the pool and the builds
/// become ready; failed or vanished jobs fail their builds.
pub async fn settle(
    state: &AppState,
    key: Option<&SecretKey>,
    actor: &str,
) -> Result<SettleReport, ChannelError> {
    let mut report = SettleReport::default();
    let pending = state.store.channels().pending_builds().await?;
    for build in pending {
        let reference = BuildRef {
            channel: build.channel.clone(),
            device: build.device.clone(),
            number: build.number,
        };
        let Ok(hash) = build.request_hash.parse::<RequestHash>() else {
            finish(
                state,
                actor,
                &reference,
                Settled::Failed {
                    reason: "the build has no image job".to_owned(),
                },
            )
            .await?;
            report
                .failed
                .push((reference, "the build has no image job".to_owned()));
            continue;
        };
        let job = state.store.job(&hash, now()).await?;
        let settled = match job {
            None => Settled::Failed {
                reason: "the image job expired before its images were taken".to_owned(),
            },
            Some(job) => match job.state {
                JobState::Queued | JobState::Running => {
                    report.waiting.push(Waiting {
                        build: reference,
                        stage: job.stage,
                        queue_position: job.queue_position,
                    });
                    continue;
                }
                JobState::Failed => Settled::Failed {
                    reason: job.failure.map(|f| f.detail).unwrap_or_default(),
                },
                JobState::Succeeded => {
                    let key = key.ok_or(BuildsError::NoSigningKey)?;
                    match take_images(state, key, &hash, job.result.as_deref().unwrap_or("")).await
                    {
                        Ok(settled) => settled,
                        Err(error @ BuildsError::Result { .. }) => Settled::Failed {
                            reason: error.to_string(),
                        },
                        // A disk problem: the build stays pending and the next pass tries
                        // again; the other builds are settled meanwhile.
                        Err(error) => {
                            tracing::error!(build = %describe(&reference), error = %error, "cannot take a build's images into the pool");
                            continue;
                        }
                    }
                }
            },
        };
        match &settled {
            Settled::Ready { .. } => report.ready.push(reference.clone()),
            Settled::Failed { reason } => report.failed.push((reference.clone(), reason.clone())),
        }
        finish(state, actor, &reference, settled).await?;
    }
    Ok(report)
}

fn describe(reference: &BuildRef) -> String {
    format!(
        "{} {} {}",
        reference.channel, reference.device, reference.number
    )
}

async fn finish(
    state: &AppState,
    actor: &str,
    reference: &BuildRef,
    settled: Settled,
) -> Result<(), ChannelError> {
    let outcome = apply(state, actor, false, |tree| {
        ops::settle(
            tree,
            &reference.channel,
            &reference.device,
            reference.number,
            settled.clone(),
        )
    })
    .await;
    match outcome {
        // Removed meanwhile (remove-build, device or channel removal): nothing to record.
        Err(ChannelError::Refused(
            ops::OpError::NoBuild { .. }
            | ops::OpError::NoDevice { .. }
            | ops::OpError::NoChannel { .. },
        )) => Ok(()),
        other => other.map(|_| ()),
    }
}

/// Copies a finished job's images into the pool.
async fn take_images(
    state: &AppState,
    key: &SecretKey,
    hash: &RequestHash,
    result: &str,
) -> Result<Settled, BuildsError> {
    let unusable = |reason: String| BuildsError::Result {
        request_hash: hash.to_string(),
        reason,
    };
    let response =
        parse_build_response(result.as_bytes()).map_err(|error| unusable(error.to_string()))?;
    let images = response.images.clone();
    let names: Vec<String> = images.iter().map(|image| image.name.clone()).collect();
    // On disk already with the local store; fetched (and checked) from an object store.
    let files = state
        .artifacts
        .fetch(hash, &names)
        .await
        .map_err(|error| unusable(error.to_string()))?;
    let pool = Pool::new(state.config.channels_path().join("pool"));
    let key = key.clone();
    let taken = tokio::task::spawn_blocking(move || {
        let dir = files.dir();
        images
            .iter()
            .map(|image| {
                let added = pool.add(&dir.join(&image.name), &image.name, &|path: &Path| {
                    signature_file(&key, path)
                })?;
                Ok(ImageFile {
                    name: image.name.clone(),
                    image_type: image.image_type.as_str().to_owned(),
                    filesystem: image.filesystem.clone(),
                    size: added.size,
                    sha256: added.sha256,
                })
            })
            .collect::<Result<Vec<ImageFile>, PoolError>>()
    })
    .await
    .map_err(|join| unusable(join.to_string()))??;
    Ok(Settled::Ready {
        images: taken,
        version_code: response.version_code,
    })
}

/// `openwrt=<version>`, and `recipe=<8 hex digits>` of the recipe when it changes the stock
/// image, so routers and operators see at a glance whether two builds share a recipe.
fn version_detail(version: &str, recipe: &Recipe) -> Result<Vec<(String, String)>, BuildsError> {
    let mut detail = VersionDetail::new();
    detail
        .push("openwrt", version)
        .map_err(|error| BuildsError::VersionDetail {
            value: version.to_owned(),
            rule: error.to_string(),
        })?;
    let mut pairs = vec![("openwrt".to_owned(), version.to_owned())];
    if *recipe != Recipe::default() {
        let encoded = serde_json::to_vec(recipe).unwrap_or_default();
        let digest = hex::encode(Sha256::digest(&encoded));
        pairs.push((
            "recipe".to_owned(),
            digest.get(..8).unwrap_or(&digest).to_owned(),
        ));
    }
    Ok(pairs)
}

/// The fwtool metadata of an image to import, checked against `device`: the board or one of
/// the supported devices must be its profile, and the target its target (when named).
fn check_image(path: &Path, device: &DeviceId) -> Result<Option<Metadata>, BuildsError> {
    use std::io::{Read, Seek, SeekFrom};
    let read = |source| BuildsError::Read {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(read)?;
    let len = file.metadata().map_err(read)?.len();
    if !file.metadata().map_err(read)?.is_file() {
        return Err(read(std::io::Error::other("not a regular file")));
    }
    let tail_len = len.min(TAIL_LEN as u64);
    file.seek(SeekFrom::Start(len - tail_len)).map_err(read)?;
    let mut tail = Vec::new();
    file.take(tail_len).read_to_end(&mut tail).map_err(read)?;
    let fwtool_error = |source| BuildsError::Fwtool {
        path: path.to_owned(),
        source,
    };
    let layouts = fwtool::parse_tail(&tail, len).map_err(fwtool_error)?;
    let Some(block) = layouts
        .iter()
        .find(|layout| layout.kind == BlockKind::Metadata)
    else {
        return Ok(None);
    };
    let metadata = Metadata::parse(&block.data).map_err(fwtool_error)?;
    let wrong = |found: String| BuildsError::WrongDevice {
        path: path.to_owned(),
        device: device.to_string(),
        found,
    };
    let version = metadata.version.clone().unwrap_or_default();
    if let Some(target) = &version.target
        && *target != device.target_path()
    {
        return Err(wrong(format!("target `{target}`")));
    }
    let sanitize = |name: &str| name.replace(',', "_");
    let mut names: Vec<String> = metadata
        .supported_devices
        .iter()
        .chain(metadata.new_supported_devices.iter())
        .flatten()
        .cloned()
        .collect();
    names.extend(version.board.clone());
    if !names.is_empty() && !names.iter().any(|name| sanitize(name) == device.profile) {
        return Err(wrong(
            names
                .iter()
                .map(|name| format!("`{name}`"))
                .collect::<Vec<_>>()
                .join(", "),
        ));
    }
    Ok(Some(metadata))
}

/// Image type and filesystem from an OpenWrt image name
/// (`openwrt-24.10.5-ath79-generic-tplink_archer-c7-v5-squashfs-sysupgrade.bin`).
fn classify(name: &str) -> (String, String) {
    let image_type = [
        "sysupgrade",
        "factory",
        "combined-efi",
        "combined",
        "initramfs-kernel",
    ]
    .into_iter()
    .find(|kind| name.contains(&format!("-{kind}")))
    .unwrap_or("sysupgrade");
    let filesystem = ["squashfs", "ext4", "jffs2", "ubifs", "initramfs"]
        .into_iter()
        .find(|fs| name.contains(&format!("-{fs}")))
        .unwrap_or("unknown");
    (image_type.to_owned(), filesystem.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_openwrt_image_names() {
        assert_eq!(
            classify("openwrt-24.10.5-ath79-generic-tplink_archer-c7-v5-squashfs-sysupgrade.bin"),
            ("sysupgrade".to_owned(), "squashfs".to_owned())
        );
        assert_eq!(
            classify("openwrt-24.10.5-x86-64-generic-ext4-combined-efi.img.gz"),
            ("combined-efi".to_owned(), "ext4".to_owned())
        );
    }

    #[test]
    fn recipe_shows_in_version_detail_only_when_it_changes_the_image() {
        assert_eq!(
            version_detail("24.10.5", &Recipe::default()).unwrap(),
            [("openwrt".to_owned(), "24.10.5".to_owned())]
        );
        let recipe = Recipe {
            add: vec!["luci".to_owned()],
            ..Recipe::default()
        };
        let detail = version_detail("24.10.5", &recipe).unwrap();
        assert_eq!(detail.len(), 2);
        assert_eq!(detail[1].0, "recipe");
        assert_eq!(detail[1].1.len(), 8);
    }

    #[test]
    fn checks_fwtool_metadata_against_the_device() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("image.bin");
        let mut image = b"kernel and rootfs".to_vec();
        let metadata = Metadata {
            supported_devices: Some(vec!["tplink,archer-c7-v5".to_owned()]),
            version: Some(fwtool::ImageVersion {
                target: Some("ath79/generic".to_owned()),
                ..fwtool::ImageVersion::default()
            }),
            ..Metadata::default()
        };
        fwtool::append_metadata(&mut image, &metadata).unwrap();
        std::fs::write(&path, &image).unwrap();
        let right: DeviceId = "ath79/generic/tplink_archer-c7-v5".parse().unwrap();
        assert!(check_image(&path, &right).unwrap().is_some());
        let wrong: DeviceId = "ath79/generic/tplink_archer-a7-v5".parse().unwrap();
        let error = check_image(&path, &wrong).unwrap_err();
        assert!(
            error.to_string().ends_with(
                "is for `tplink,archer-c7-v5`, not for `ath79/generic/tplink_archer-a7-v5`"
            ),
            "{error}"
        );
        let other_target: DeviceId = "ramips/mt7621/tplink_archer-c7-v5".parse().unwrap();
        assert!(check_image(&path, &other_target).is_err());
        // Without a trailer there is nothing to check.
        std::fs::write(&path, b"plain").unwrap();
        assert!(check_image(&path, &wrong).unwrap().is_none());
    }
}
