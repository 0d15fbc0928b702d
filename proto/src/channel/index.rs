//! A device's `index.json` in one channel: its builds, oldest first.

use serde::{Deserialize, Serialize};

use super::channels::{check, decode, encode, field_error};
use super::error::{ChannelFormatError, MetadataFile};
use super::field;
use super::freshness::Freshness;
use super::version_detail::VersionDetail;

/// Largest `index.json` read, in bytes.
pub const MAX_INDEX_LEN: usize = 4 << 20;

/// Most images (builds) in one index.
pub const MAX_IMAGES: usize = 4096;

/// Most files in one image.
pub const MAX_FILES: usize = 64;

/// Most packages in a recipe's `add` or `remove`.
pub const MAX_RECIPE_PACKAGES: usize = 1024;

/// Largest uci-defaults script a recipe publishes (`recipe.defaults`), in bytes.
pub const MAX_DEFAULTS_SCRIPT_LEN: usize = 64 * 1024;

/// Largest `phased-percentage`.
pub const MAX_PERCENTAGE: u8 = 100;

/// `index.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexDoc {
    /// Freshness, and which channel and device the file is for.
    pub global: IndexGlobal,
    /// The builds, by increasing `version`.
    pub images: Vec<IndexImage>,
}

/// The `global` object of an index: the freshness fields plus the channel and device, so that an
/// index served for another device (or another channel) is recognised
/// ([`check_index_target`](super::trust::check_index_target)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexGlobal {
    /// `generated_at`, `expires`, `serial`.
    #[serde(flatten)]
    pub freshness: Freshness,
    /// The channel.
    pub channel: String,
    /// The device, `target/subtarget/profile`.
    pub device: String,
}

/// An image's `type`: OpenWrt flashes whole images, so there is only `full` (system-image's
/// deltas have no counterpart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ImageType {
    /// A whole image.
    #[serde(rename = "full")]
    Full,
}

/// One build of the device in the channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexImage {
    /// Always [`ImageType::Full`].
    #[serde(rename = "type")]
    pub kind: ImageType,
    /// The build number, unique and increasing within the index.
    pub version: u64,
    /// Free text for people.
    pub description: String,
    /// What the build is made of.
    pub version_detail: VersionDetail,
    /// The oldest build that may upgrade straight to this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minversion: Option<u64>,
    /// Phased rollout, only on the latest build: absent means 100, 0 means pulled.
    #[serde(
        rename = "phased-percentage",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub phased_percentage: Option<u8>,
    /// OpenWrt release (`24.10.5`, `SNAPSHOT`).
    pub openwrt_version: String,
    /// OpenWrt revision (`r28959-29397011cc`).
    pub version_code: String,
    /// `target/subtarget`, the device's first two segments.
    pub target: String,
    /// The ImageBuilder profile, the device's last segment.
    pub profile: String,
    /// How the image was built on top of the release (absent for imported images).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipe: Option<IndexRecipe>,
    /// The files, `order` 0, 1, ….
    pub files: Vec<IndexFile>,
}

/// A channel recipe: packages added and removed, the first-boot script, the root size.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexRecipe {
    /// Packages added to the release's defaults.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<String>,
    /// Packages removed from them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
    /// SHA-256 of the uci-defaults script.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults_sha256: Option<String>,
    /// The uci-defaults script itself: a router whose packages differ from the recipe's asks the
    /// build API for its own image of this build, and needs the script for that. Inline (it is
    /// small, and the signed index authenticates it); its digest must be `defaults_sha256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<String>,
    /// Root filesystem size in MB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs_size_mb: Option<u32>,
}

/// One file of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexFile {
    /// Position in the image, from 0.
    pub order: u32,
    /// Absolute URL path of the file.
    pub path: String,
    /// Absolute URL path of its usign signature.
    pub signature: String,
    /// SHA-256 of the file, lowercase hex.
    pub checksum: String,
    /// Size in bytes.
    pub size: u64,
    /// The file's own name (what a user would save it as).
    pub name: String,
    /// ImageBuilder image type (`sysupgrade`, `factory`).
    pub image_type: String,
    /// Root filesystem (`squashfs`, `ext4`), empty for an image without one.
    pub filesystem: String,
}

/// The file's bytes: compact JSON, keys in struct order, a final newline.
pub fn encode_index(doc: &IndexDoc) -> Vec<u8> {
    encode(doc)
}

/// The SHA-256 (lowercase hex) of a recipe's uci-defaults script: its `defaults_sha256`.
pub fn defaults_digest(script: &str) -> String {
    use sha2::{Digest as _, Sha256};
    Sha256::digest(script.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Read an `index.json`, checking every field rule.
pub fn parse_index(bytes: &[u8]) -> Result<IndexDoc, ChannelFormatError> {
    let file = MetadataFile::Index;
    let doc: IndexDoc = decode(file, bytes, MAX_INDEX_LEN)?;
    let global = &doc.global;
    global.freshness.check().map_err(|rule| {
        field_error(
            file,
            "global.expires".into(),
            &global.freshness.expires.to_string(),
            rule,
        )
    })?;
    check(
        file,
        || "global.channel".into(),
        &global.channel,
        field::channel_name(&global.channel),
    )?;
    check(
        file,
        || "global.device".into(),
        &global.device,
        field::device_name(&global.device),
    )?;
    too_many(file, || "images".into(), doc.images.len(), MAX_IMAGES)?;
    let (device_target, device_profile) = global.device.rsplit_once('/').unwrap_or_default();
    let mut previous: Option<u64> = None;
    let last = doc.images.len().saturating_sub(1);
    for (index, image) in doc.images.iter().enumerate() {
        let path = |name: &str| format!("images[{index}].{name}");
        if previous.is_some_and(|before| image.version <= before) {
            return Err(field_error(
                file,
                path("version"),
                &image.version.to_string(),
                "expected versions in increasing order, each once",
            ));
        }
        previous = Some(image.version);
        if let Some(percentage) = image.phased_percentage {
            let rule = if percentage > MAX_PERCENTAGE {
                Some("expected a percentage from 0 to 100")
            } else if index != last {
                Some("expected `phased-percentage` only on the latest image")
            } else {
                None
            };
            if let Some(rule) = rule {
                return Err(field_error(
                    file,
                    path("phased-percentage"),
                    &percentage.to_string(),
                    rule,
                ));
            }
        }
        check(
            file,
            || path("description"),
            &image.description,
            field::text(&image.description),
        )?;
        check(
            file,
            || path("openwrt_version"),
            &image.openwrt_version,
            field::token(&image.openwrt_version),
        )?;
        check(
            file,
            || path("version_code"),
            &image.version_code,
            field::token(&image.version_code),
        )?;
        check(
            file,
            || path("target"),
            &image.target,
            field::target(&image.target),
        )?;
        check(
            file,
            || path("profile"),
            &image.profile,
            field::token(&image.profile),
        )?;
        if image.target != device_target {
            return Err(field_error(
                file,
                path("target"),
                &image.target,
                "expected the target of `global.device`",
            ));
        }
        if image.profile != device_profile {
            return Err(field_error(
                file,
                path("profile"),
                &image.profile,
                "expected the profile of `global.device`",
            ));
        }
        if let Some(recipe) = &image.recipe {
            check_recipe(recipe, &path)?;
        }
        check_files(&image.files, &path)?;
    }
    Ok(doc)
}

fn check_recipe(
    recipe: &IndexRecipe,
    path: &dyn Fn(&str) -> String,
) -> Result<(), ChannelFormatError> {
    let file = MetadataFile::Index;
    for (key, packages) in [
        ("recipe.add", &recipe.add),
        ("recipe.remove", &recipe.remove),
    ] {
        too_many(file, || path(key), packages.len(), MAX_RECIPE_PACKAGES)?;
        for (at, package) in packages.iter().enumerate() {
            check(
                file,
                || path(&format!("{key}[{at}]")),
                package,
                field::token(package),
            )?;
        }
    }
    if let Some(digest) = &recipe.defaults_sha256 {
        check(
            file,
            || path("recipe.defaults_sha256"),
            digest,
            field::sha256(digest),
        )?;
    }
    if let Some(script) = &recipe.defaults {
        let rule = if script.len() > MAX_DEFAULTS_SCRIPT_LEN {
            Some("expected a script of at most 64 KiB")
        } else if recipe.defaults_sha256.as_deref() != Some(&defaults_digest(script)) {
            Some("expected a script whose SHA-256 is `recipe.defaults_sha256`")
        } else {
            None
        };
        if let Some(rule) = rule {
            let shown = script.chars().take(64).collect::<String>();
            return Err(field_error(file, path("recipe.defaults"), &shown, rule));
        }
    }
    Ok(())
}

fn check_files(
    files: &[IndexFile],
    path: &dyn Fn(&str) -> String,
) -> Result<(), ChannelFormatError> {
    let file = MetadataFile::Index;
    too_many(file, || path("files"), files.len(), MAX_FILES)?;
    for (at, entry) in files.iter().enumerate() {
        let here = |name: &str| path(&format!("files[{at}].{name}"));
        if usize::try_from(entry.order).ok() != Some(at) {
            return Err(field_error(
                file,
                here("order"),
                &entry.order.to_string(),
                "expected the file's position, counting from 0",
            ));
        }
        check(
            file,
            || here("path"),
            &entry.path,
            field::url_path(&entry.path),
        )?;
        check(
            file,
            || here("signature"),
            &entry.signature,
            field::url_path(&entry.signature),
        )?;
        check(
            file,
            || here("checksum"),
            &entry.checksum,
            field::sha256(&entry.checksum),
        )?;
        check(
            file,
            || here("name"),
            &entry.name,
            field::file_name(&entry.name),
        )?;
        check(
            file,
            || here("image_type"),
            &entry.image_type,
            field::token(&entry.image_type),
        )?;
        check(
            file,
            || here("filesystem"),
            &entry.filesystem,
            field::filesystem(&entry.filesystem),
        )?;
    }
    Ok(())
}

pub(super) fn too_many(
    file: MetadataFile,
    field: impl Fn() -> String,
    count: usize,
    max: usize,
) -> Result<(), ChannelFormatError> {
    if count > max {
        return Err(ChannelFormatError::TooMany {
            file,
            field: field(),
            count,
            max,
        });
    }
    Ok(())
}
