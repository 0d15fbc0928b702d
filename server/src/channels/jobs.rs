//! The image jobs of channel builds: the build request of a recipe, the stamp every channel
//! image carries, and the submission of the jobs an operation left pending. Kept apart from
//! `builds` (which runs operations through `apply`) because `apply` submits these jobs itself.

use std::path::PathBuf;

use attendant_proto::api::BuildRequest;
use attendant_proto::channel::{ChannelStamp, VersionDetail, encode_stamp};
use attendant_proto::fwtool::FwtoolError;
use attendant_proto::wire::CHANNEL_STAMP_PATH;

use super::model::{BuildSource, BuildState, DeviceId, Recipe};
use super::ops::{BuildRef, Change};
use super::pool::PoolError;
use crate::build::{BuildError, submit_job};
use crate::state::AppState;
use crate::store::{EmbeddedFile, StoreError};

/// Why a build could not be made, imported or settled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildsError {
    /// The build request was refused (unknown version or package, bad recipe, full queue).
    #[error("the image job of `{channel}` `{device}` build {number} was refused")]
    Job {
        /// The channel.
        channel: String,
        /// The device.
        device: String,
        /// The build number.
        number: u64,
        /// The build API's refusal.
        #[source]
        source: Box<BuildError>,
    },
    /// Channel images are signed, and no `signing_key` is configured.
    #[error("channel images are signed with the image key, and no `signing_key` is configured")]
    NoSigningKey,
    /// The pool refused the file.
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// The image to import cannot be read.
    #[error("cannot read the image `{}`", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The image's fwtool trailer is damaged.
    #[error("the fwtool metadata of `{}` is unreadable", path.display())]
    Fwtool {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        #[source]
        source: FwtoolError,
    },
    /// The image's fwtool metadata names another device.
    #[error("the image `{}` is for {found}, not for `{device}`", path.display())]
    WrongDevice {
        /// The file.
        path: PathBuf,
        /// The channel's device.
        device: String,
        /// What the metadata names.
        found: String,
    },
    /// The `--version` or the build's `version_detail` cannot be put into the stamp.
    #[error("`{value}` cannot be written into `version_detail`: {rule}")]
    VersionDetail {
        /// The value.
        value: String,
        /// The rule.
        rule: String,
    },
    /// A finished job's result or files are not what the worker writes.
    #[error("the result of job `{request_hash}` is unusable: {reason}")]
    Result {
        /// The job.
        request_hash: String,
        /// What is wrong.
        reason: String,
    },
    /// The device is not one upstream builds.
    #[error("device `{device}` is unknown: {reason}")]
    UnknownDevice {
        /// The device as given.
        device: String,
        /// What is missing.
        reason: String,
    },
    /// Upstream metadata could not be read.
    #[error("upstream metadata is unavailable")]
    Upstream(#[from] crate::metadata::MetadataError),
    /// The store failed.
    #[error("the job store failed")]
    Store(#[from] StoreError),
}

impl BuildsError {
    /// Whether the operator's input was refused (as opposed to the server failing).
    pub fn is_refusal(&self) -> bool {
        match self {
            Self::Job { source, .. } => !matches!(
                **source,
                BuildError::Store(_) | BuildError::Upstream(_) | BuildError::Overloaded { .. }
            ),
            Self::NoSigningKey
            | Self::Read { .. }
            | Self::Fwtool { .. }
            | Self::WrongDevice { .. }
            | Self::VersionDetail { .. }
            | Self::UnknownDevice { .. } => true,
            Self::Pool(_) | Self::Result { .. } | Self::Upstream(_) | Self::Store(_) => false,
        }
    }

    /// The way out, if there is one.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::NoSigningKey => Some(
                "make a key with `attendant-server keygen -s /etc/attendant/key-build` and set `signing_key`".to_owned(),
            ),
            _ => None,
        }
    }
}

/// Submits the image jobs of the builds `change` created pending (new builds, and copies, tags
/// and alias mirrors of built builds), and records each job's request hash in the build.
pub(crate) async fn submit_rebuilds(
    state: &AppState,
    change: &mut Change,
) -> Result<(), BuildsError> {
    let server = state.config.public_url();
    for BuildRef {
        channel,
        device,
        number,
    } in change.rebuilds.clone()
    {
        let refused = |source| BuildsError::Job {
            channel: channel.clone(),
            device: device.clone(),
            number,
            source: Box::new(source),
        };
        let Some(Some(entry)) = change.touched.get(&channel) else {
            continue;
        };
        let alias = entry.alias.clone();
        let Some(build) = entry
            .devices
            .get(&device)
            .and_then(|d| d.build(number))
            .cloned()
        else {
            continue;
        };
        let id: DeviceId = device.parse().map_err(|_| {
            refused(BuildError::EmbeddedFile {
                path: device.clone(),
                rule: "not a device id",
            })
        })?;
        let mut detail = VersionDetail::new();
        for (key, value) in &build.version_detail {
            detail
                .push(key, value)
                .map_err(|error| BuildsError::VersionDetail {
                    value: format!("{key}={value}"),
                    rule: error.to_string(),
                })?;
        }
        let stamp = ChannelStamp {
            channel: channel.clone(),
            channel_target: alias,
            device: device.clone(),
            build: number,
            version_detail: detail,
            server: server.clone(),
        };
        let contents = String::from_utf8_lossy(&encode_stamp(&stamp)).into_owned();
        let body = request_body(&build.openwrt_version, &id, &build.recipe);
        let files = vec![EmbeddedFile {
            path: CHANNEL_STAMP_PATH.to_owned(),
            contents,
        }];
        let (hash, _) = submit_job(state, &body, None, files)
            .await
            .map_err(refused)?;
        let hash = hash.to_string();
        if let Some(Some(entry)) = change.touched.get_mut(&channel)
            && let Some(target) = entry
                .devices
                .get_mut(&device)
                .and_then(|d| d.builds.iter_mut().find(|b| b.number == number))
        {
            target.state = BuildState::Pending {
                request_hash: hash.clone(),
            };
            if let BuildSource::Built { request_hash } = &mut target.source {
                request_hash.clone_from(&hash);
            }
        }
    }
    Ok(())
}

/// The build request of a recipe, as the public API would receive it.
pub(super) fn request_body(version: &str, device: &DeviceId, recipe: &Recipe) -> Vec<u8> {
    let mut request = BuildRequest::new(version, device.target_path(), &device.profile);
    request.packages = recipe
        .add
        .iter()
        .cloned()
        .chain(recipe.remove.iter().map(|name| format!("-{name}")))
        .collect();
    request.defaults.clone_from(&recipe.defaults);
    request.rootfs_size_mb = recipe.rootfs_size_mb;
    serde_json::to_vec(&request).unwrap_or_default()
}
