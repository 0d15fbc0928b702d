//! The `remote-channel` input of the importer: the latest build of a channel that another
//! Attendant server (or any publisher of the same tree) publishes, believed only as far as its
//! signatures, dates and serials allow — the same checks a router makes before it upgrades.
//!
//! For `channels.json` and then the device's index, in this order:
//!
//! 1. the file and its `.sig` are fetched (each with its format's size limit);
//! 2. the delegation named by the signature's key (`keys/<fingerprint>.ucert`) and the
//!    revocation list (`keys/revoked.ucert`, optional) are fetched, and
//!    [`verify_metadata`] checks the chain up to a root key pinned in the input's `root_keys`:
//!    root signature, delegation window, revocations, the signing key, the signature;
//! 3. the file is parsed with the router's parser, then [`check_freshness`]: not expired, and a
//!    serial not lower than the highest this server has seen from that remote (kept in the
//!    database, [`crate::store::channel_store::ChannelStore::raise_counter`], so a replayed
//!    older tree is refused even after a restart);
//! 4. for the index, [`check_index_target`]: it is the index of the channel and device asked
//!    for (or of the channel a redirect points at).
//!
//! The build taken is the newest one in the index that is not pulled (`phased-percentage` 0);
//! a build still phasing in is taken as it is, and the local channel phases it on its own. Its
//! files are then downloaded by the importer, streamed to disk and checked against the size and
//! SHA-256 the signed index gives, and re-signed with this server's image key in its pool.
//!
//! The build's recipe comes along whole, its uci-defaults script included: the index carries the
//! script inline beside its `defaults_sha256`, and the script is taken only when its SHA-256 is
//! that digest and it fits this server's `max_defaults_length`. A recipe that names a script by
//! its digest alone (a publisher from before the script was published inline) is refused rather
//! than imported without it: routers whose packages differ from the recipe's build their own
//! image from the recipe, and without the script their first boot would differ from the
//! prebuilt image's.
//!
//! What is not carried over: the remote's image signatures (this server signs its own pool).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use attendant_proto::channel::trust::{
    TrustError, check_freshness, check_index_target, signing_key_of, verify_metadata,
};
use attendant_proto::channel::{
    IndexImage, IndexRecipe, MAX_CHANNELS_LEN, MAX_INDEX_LEN, defaults_digest, parse_channels,
    parse_index,
};
use attendant_proto::ucert;
use attendant_proto::usign::{self, Fingerprint, PublicKey};

use crate::channels::generators::{GeneratorError, fetch, fetch_optional};
use crate::channels::keys::{REVOCATIONS_FILE, delegation_file_name};
use crate::channels::model::Recipe;
use crate::channels::publish::{CHANNELS_FILE, KEYS, SIGNATURE_SUFFIX, URL_ROOT};
use crate::state::{AppState, now};

/// The latest build a remote channel offers a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RemoteBuild {
    /// Its number in the remote channel.
    pub number: u64,
    /// The OpenWrt release.
    pub openwrt_version: String,
    /// Its revision.
    pub version_code: String,
    /// The packages added and removed, the uci-defaults script and the root size.
    pub recipe: Recipe,
    /// Its image files.
    pub files: Vec<RemoteFile>,
}

/// One image file of a remote build, as its signed index describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RemoteFile {
    /// Where to download it.
    pub url: String,
    /// Its OpenWrt file name.
    pub name: String,
    /// `sysupgrade`, `factory`, …
    pub image_type: String,
    /// `squashfs`, `ext4`, …
    pub filesystem: String,
    /// SHA-256, lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// Which remote channel, and the root keys it must chain to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RemoteInput<'a> {
    /// The remote server's base URL.
    pub url: &'a str,
    /// The channel there.
    pub channel: &'a str,
    /// Files of the pinned root public keys.
    pub root_keys: &'a [PathBuf],
}

/// Finds, verifies and returns the latest build `input` offers `device`.
///
/// `max_defaults` is the longest uci-defaults script taken (this server's
/// `max_defaults_length`, as for a recipe of its own).
pub(crate) async fn latest(
    state: &AppState,
    client: &reqwest::Client,
    timeout: Duration,
    input: RemoteInput<'_>,
    device: &str,
) -> Result<RemoteBuild, GeneratorError> {
    let base = input.url.trim_end_matches('/');
    let missing = |what: String| GeneratorError::RemoteMissing {
        url: base.to_owned(),
        what,
    };
    let roots = read_roots(input.root_keys)?;
    let mut verifier = Verifier {
        client,
        timeout,
        base,
        roots,
        delegations: BTreeMap::new(),
        revocations: None,
    };

    let channels_url = format!("{base}{URL_ROOT}/{CHANNELS_FILE}");
    let bytes = verifier.verified(&channels_url, MAX_CHANNELS_LEN).await?;
    let doc = parse_channels(&bytes).map_err(|source| GeneratorError::Format {
        url: channels_url.clone(),
        source,
    })?;
    let tree_key = format!("remote-serial {base}");
    check_serial(state, &channels_url, &tree_key, &doc.global).await?;

    let entry = doc
        .channels
        .get(input.channel)
        .ok_or_else(|| missing(format!("publishes no channel `{}`", input.channel)))?;
    let device_entry = entry.devices.get(device).ok_or_else(|| {
        missing(format!(
            "has no device `{device}` in channel `{}`",
            input.channel
        ))
    })?;
    // A redirect (of the channel or of this device) serves its target's index.
    let index_channel = device_entry
        .redirect
        .as_deref()
        .or(entry.redirect.as_deref())
        .unwrap_or(input.channel);
    let index_url = format!("{base}{}", device_entry.index);
    let bytes = verifier.verified(&index_url, MAX_INDEX_LEN).await?;
    let index = parse_index(&bytes).map_err(|source| GeneratorError::Format {
        url: index_url.clone(),
        source,
    })?;
    check_index_target(&index.global, index_channel, device).map_err(|source| {
        GeneratorError::Untrusted {
            url: index_url.clone(),
            source,
        }
    })?;
    let index_key = format!("remote-serial {base} {index_channel} {device}");
    check_serial(state, &index_url, &index_key, &index.global.freshness).await?;

    let image = index
        .images
        .iter()
        .rev()
        .find(|image| image.phased_percentage != Some(0))
        .ok_or_else(|| {
            missing(format!(
                "has no build of `{device}` in channel `{index_channel}` that is not pulled"
            ))
        })?;
    let max_defaults = state.config.max_defaults_length;
    remote_build(&index_url, base, image, max_defaults)
}

/// The build `image` of the index at `index_url`, its file URLs under `base`.
fn remote_build(
    index_url: &str,
    base: &str,
    image: &IndexImage,
    max_defaults: usize,
) -> Result<RemoteBuild, GeneratorError> {
    let recipe = match &image.recipe {
        Some(recipe) => Recipe {
            add: recipe.add.clone(),
            remove: recipe.remove.clone(),
            defaults: defaults_script(index_url, image.version, recipe, max_defaults)?,
            rootfs_size_mb: recipe.rootfs_size_mb,
        },
        None => Recipe::default(),
    };
    let mut files: Vec<_> = image.files.iter().collect();
    files.sort_by_key(|file| file.order);
    Ok(RemoteBuild {
        number: image.version,
        openwrt_version: image.openwrt_version.clone(),
        version_code: image.version_code.clone(),
        recipe,
        files: files
            .into_iter()
            .map(|file| RemoteFile {
                url: format!("{base}{}", file.path),
                name: file.name.clone(),
                image_type: file.image_type.clone(),
                filesystem: file.filesystem.clone(),
                sha256: file.checksum.to_ascii_lowercase(),
                size: file.size,
            })
            .collect(),
    })
}

/// The uci-defaults script of build `number`'s recipe, checked against its digest.
///
/// The index parser already refuses a script that does not match `defaults_sha256`; the check is
/// repeated here because this is where the script leaves the signed document for a recipe of
/// this server's own, and a digest without its script must not become a recipe without one.
fn defaults_script(
    index_url: &str,
    number: u64,
    recipe: &IndexRecipe,
    max_defaults: usize,
) -> Result<Option<String>, GeneratorError> {
    let refused = |reason: String| GeneratorError::RemoteDefaults {
        url: index_url.to_owned(),
        number,
        reason,
    };
    match (&recipe.defaults, &recipe.defaults_sha256) {
        (None, None) => Ok(None),
        (None, Some(digest)) => Err(refused(format!(
            "is given only by its SHA-256 `{digest}`: the index does not carry the script"
        ))),
        (Some(_), None) => Err(refused(
            "has no `defaults_sha256` to check it by".to_owned(),
        )),
        (Some(script), Some(digest)) => {
            let actual = defaults_digest(script);
            if !actual.eq_ignore_ascii_case(digest) {
                return Err(refused(format!(
                    "has SHA-256 `{actual}`, the index says `{digest}`"
                )));
            }
            if script.len() > max_defaults {
                return Err(refused(format!(
                    "is {} bytes long, more than this server's `max_defaults_length` ({max_defaults} bytes)",
                    script.len()
                )));
            }
            Ok(Some(script.clone()))
        }
    }
}

/// Fetches and checks signed files of one remote tree; delegations and the revocation list
/// are fetched once per run.
struct Verifier<'a> {
    client: &'a reqwest::Client,
    timeout: Duration,
    base: &'a str,
    roots: Vec<PublicKey>,
    delegations: BTreeMap<Fingerprint, Vec<u8>>,
    revocations: Option<Option<Vec<u8>>>,
}

impl Verifier<'_> {
    /// The bytes of `url`, once its `.sig` chains to a pinned root.
    async fn verified(&mut self, url: &str, max: usize) -> Result<Vec<u8>, GeneratorError> {
        let untrusted = |source: TrustError| GeneratorError::Untrusted {
            url: url.to_owned(),
            source,
        };
        let body = fetch(self.client, url, self.timeout, max as u64).await?;
        let signature = fetch(
            self.client,
            &format!("{url}{SIGNATURE_SUFFIX}"),
            self.timeout,
            usign::MAX_FILE_LEN as u64,
        )
        .await?;
        let fingerprint = signing_key_of(&signature).map_err(untrusted)?;
        if !self.delegations.contains_key(&fingerprint) {
            let delegation_url = format!(
                "{}{URL_ROOT}/{KEYS}/{}",
                self.base,
                delegation_file_name(fingerprint)
            );
            let delegation = fetch(
                self.client,
                &delegation_url,
                self.timeout,
                ucert::MAX_FILE_LEN as u64,
            )
            .await?;
            self.delegations.insert(fingerprint, delegation);
        }
        if self.revocations.is_none() {
            let revocations_url = format!("{}{URL_ROOT}/{KEYS}/{REVOCATIONS_FILE}", self.base);
            let list = fetch_optional(
                self.client,
                &revocations_url,
                self.timeout,
                ucert::MAX_FILE_LEN as u64,
            )
            .await?;
            self.revocations = Some(list);
        }
        let delegation = self
            .delegations
            .get(&fingerprint)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let revocations = self.revocations.as_ref().and_then(Option::as_deref);
        verify_metadata(
            &body,
            &signature,
            delegation,
            revocations,
            &self.roots,
            now() / 1000,
        )
        .map_err(untrusted)?;
        Ok(body)
    }
}

/// Checks a verified file's freshness against the highest serial seen under `key`, then
/// records its serial.
async fn check_serial(
    state: &AppState,
    url: &str,
    key: &str,
    freshness: &attendant_proto::channel::Freshness,
) -> Result<(), GeneratorError> {
    let channels = state.store.channels();
    let seen = channels.counter(key).await.map_err(store_error(url))?;
    check_freshness(freshness, now() / 1000, seen).map_err(|source| GeneratorError::Untrusted {
        url: url.to_owned(),
        source,
    })?;
    channels
        .raise_counter(key, freshness.serial)
        .await
        .map_err(store_error(url))?;
    Ok(())
}

fn store_error(url: &str) -> impl Fn(crate::store::StoreError) -> GeneratorError + '_ {
    move |error| GeneratorError::Http {
        url: url.to_owned(),
        reason: format!(
            "the highest serial seen cannot be read or kept: {}",
            crate::imagebuilder::error_chain(&error)
        ),
    }
}

fn read_roots(paths: &[PathBuf]) -> Result<Vec<PublicKey>, GeneratorError> {
    paths
        .iter()
        .map(|path| {
            let failed = |reason: String| GeneratorError::RootKey {
                path: path.clone(),
                reason,
            };
            let length = std::fs::metadata(path)
                .map_err(|error| failed(error.to_string()))?
                .len();
            if length > usign::MAX_FILE_LEN as u64 {
                return Err(failed(format!("larger than {} bytes", usign::MAX_FILE_LEN)));
            }
            let bytes = std::fs::read(path).map_err(|error| failed(error.to_string()))?;
            PublicKey::parse(&bytes).map_err(|error| failed(error.to_string()))
        })
        .collect()
}
