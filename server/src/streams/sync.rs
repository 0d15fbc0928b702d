//! `streams sync`, MAAS's `meph2-cloudimg-sync` for OpenWrt channels: compare each channel
//! device's latest ready build with the stream and take only products whose source changed.
//!
//! A channel device becomes one product, `<vendor>:<channel>:<target>:<subtarget>:<profile>`,
//! and each of its builds one version named by the build number, zero-padded
//! ([`super::format::version_name`]). A build is new for the stream when the stream lacks its
//! version and the stream's latest version of the product was made of something else (another
//! OpenWrt version or `version_code`, another recipe: the channel's `version_detail`); `force`
//! takes every latest build again; `rebuild` publishes an existing version's build under a new
//! name. [`plan`] returns the whole stream plus the new versions, and which items need their
//! files: the build-output tree that `streams insert` merges.

use std::collections::BTreeMap;

use attendant_proto::channel::IndexDoc;
use serde_json::Value;

use super::filter::{Filter, matches_all};
use super::format::{Item, Product, Products, Version, flatten, version_name};

/// The version attribute holding what a build was made of.
const SOURCE_KEY: &str = "version_detail";

/// What a stream's products are called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naming {
    /// The reverse-domain prefix of content ids and product names, `org.openwrt.attendant`.
    pub vendor: String,
    /// The stream, `daily`: content id `<vendor>:<stream>`, and the items' `label`.
    pub stream: String,
}

impl Naming {
    /// `<vendor>:<stream>`.
    pub fn content_id(&self) -> String {
        format!("{}:{}", self.vendor, self.stream)
    }
}

/// One item of a new version whose file must be copied: the channel pool file and the stream
/// path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFile {
    /// The channel tree's URL path of the file (`/channels/pool/…`).
    pub channel_path: String,
    /// The stream path (`data/…`).
    pub path: String,
    /// SHA-256.
    pub sha256: String,
    /// Size.
    pub size: u64,
}

/// What `sync` would publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The stream as it is plus the new versions.
    pub products: Products,
    /// `product/version` of every new version.
    pub new_versions: Vec<String>,
    /// The files of the new versions.
    pub files: Vec<NewFile>,
}

/// Why a sync cannot be planned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// `--rebuild OLD:NEW` is malformed.
    #[error("`--rebuild {found}` is not `OLD:NEW` with two different version names")]
    Rebuild {
        /// The argument (truncated).
        found: String,
    },
    /// `--rebuild` names a version no product of the channels has.
    #[error("no channel build has version `{version}`, so `--rebuild` has nothing to rebuild")]
    NothingToRebuild {
        /// The old version.
        version: String,
    },
}

/// `--rebuild OLD:NEW`.
pub fn parse_rebuild(text: &str) -> Result<(String, String), SyncError> {
    let bad = || SyncError::Rebuild {
        found: super::format::truncate(text),
    };
    let (old, new) = text.split_once(':').ok_or_else(bad)?;
    super::format::check_version_name(old).map_err(|_| bad())?;
    super::format::check_version_name(new).map_err(|_| bad())?;
    if old == new {
        return Err(bad());
    }
    Ok((old.to_owned(), new.to_owned()))
}

/// The channel indexes as a products tree: every ready build of every device, each image an
/// item under `data/<aa>/<sha256>-<name>` (the channel pool's content address).
pub fn products_from_channels(naming: &Naming, indexes: &[IndexDoc]) -> Products {
    let mut products = Products::new(&naming.content_id());
    for doc in indexes {
        let mut parts = doc.global.device.splitn(3, '/');
        let (target, subtarget, profile) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        let name = format!(
            "{}:{}:{target}:{subtarget}:{profile}",
            naming.vendor, doc.global.channel
        );
        let mut product = Product::default();
        for (key, value) in [
            ("os", "openwrt"),
            ("channel", doc.global.channel.as_str()),
            ("target", target),
            ("subtarget", subtarget),
            ("profile", profile),
            // OpenWrt's own word for the hardware family is the target; the package
            // architecture (`mips_24kc`) is not part of channel metadata.
            ("arch", &format!("{target}/{subtarget}")),
        ] {
            product
                .attributes
                .insert(key.to_owned(), Value::from(value));
        }
        for image in &doc.images {
            let mut version = Version::default();
            version.attributes.insert(
                "release".to_owned(),
                Value::from(image.openwrt_version.as_str()),
            );
            version.attributes.insert(
                "version_code".to_owned(),
                Value::from(image.version_code.as_str()),
            );
            version.attributes.insert(
                SOURCE_KEY.to_owned(),
                Value::from(image.version_detail.to_string()),
            );
            version
                .attributes
                .insert("build".to_owned(), Value::from(image.version));
            for file in &image.files {
                let mut item = Item::default();
                let fields: [(&str, Value); 5] = [
                    ("ftype", Value::from(file.image_type.as_str())),
                    ("path", Value::from(data_path(&file.checksum, &file.name))),
                    ("sha256", Value::from(file.checksum.as_str())),
                    ("size", Value::from(file.size)),
                    ("label", Value::from(naming.stream.as_str())),
                ];
                item.attributes.extend(
                    fields
                        .into_iter()
                        .map(|(key, value)| (key.to_owned(), value)),
                );
                if !file.filesystem.is_empty() {
                    item.attributes
                        .insert("fs".to_owned(), Value::from(file.filesystem.as_str()));
                }
                // The channel path travels with the plan, not into the stream.
                let item_name = if file.filesystem.is_empty() {
                    file.image_type.clone()
                } else {
                    format!("{}-{}", file.filesystem, file.image_type)
                };
                let item_name = if version.items.contains_key(&item_name) {
                    file.name.clone()
                } else {
                    item_name
                };
                version.items.insert(item_name, item);
            }
            product
                .versions
                .insert(version_name(image.version), version);
        }
        products.products.insert(name, product);
    }
    products
}

/// `data/<aa>/<sha256>-<name>`.
pub fn data_path(sha256: &str, name: &str) -> String {
    format!(
        "data/{}",
        crate::channels::pool::Pool::relative_path(sha256, name)
    )
}

/// What to take: see the module docs. `channel_paths` maps a stream path to the channel tree's
/// file it comes from.
pub fn plan(
    source: &Products,
    target: &Products,
    filters: &[Filter],
    force: bool,
    rebuild: Option<&(String, String)>,
    channel_paths: &BTreeMap<String, String>,
) -> Result<Plan, SyncError> {
    let mut products = target.clone();
    products.content_id = source.content_id.clone();
    let mut new_versions = Vec::new();
    let mut files = Vec::new();
    let mut rebuilt = false;
    for (product_name, product) in &source.products {
        let passing: Vec<&String> = product
            .versions
            .iter()
            .filter(|(version_name, version)| {
                version.items.keys().any(|item_name| {
                    matches_all(
                        filters,
                        &flatten(source, product_name, version_name, item_name),
                    )
                })
            })
            .map(|(name, _)| name)
            .collect();
        let existing = target.products.get(product_name);
        let (from, to) = match rebuild {
            Some((old, new)) => {
                let has_old = existing.is_some_and(|p| p.versions.contains_key(old));
                if !has_old || !passing.contains(&old) {
                    continue;
                }
                rebuilt = true;
                if existing.is_some_and(|p| p.versions.contains_key(new)) {
                    continue;
                }
                (old.clone(), new.clone())
            }
            None => {
                // Byte-wise order is build order (fixed-width names).
                let Some(latest) = passing.last() else {
                    continue;
                };
                let unchanged = existing.is_some_and(|existing| {
                    existing.versions.contains_key(*latest)
                        || existing
                            .versions
                            .values()
                            .next_back()
                            .is_some_and(|newest| {
                                newest.attributes.get(SOURCE_KEY)
                                    == product
                                        .versions
                                        .get(*latest)
                                        .and_then(|v| v.attributes.get(SOURCE_KEY))
                                    && newest.attributes.get("version_code")
                                        == product
                                            .versions
                                            .get(*latest)
                                            .and_then(|v| v.attributes.get("version_code"))
                            })
                });
                if unchanged && !force {
                    continue;
                }
                ((*latest).clone(), (*latest).clone())
            }
        };
        let Some(version) = product.versions.get(&from) else {
            continue;
        };
        let mut version = version.clone();
        version.items.retain(|item_name, _| {
            matches_all(filters, &flatten(source, product_name, &from, item_name))
        });
        if from != to {
            version
                .attributes
                .insert("rebuild_of".to_owned(), Value::from(from.as_str()));
        }
        for item in version.items.values() {
            if let (Some(path), Some(sha256), Some(size)) =
                (item.path(), item.sha256(), item.size())
                && let Some(channel_path) = channel_paths.get(path)
            {
                files.push(NewFile {
                    channel_path: channel_path.clone(),
                    path: path.to_owned(),
                    sha256: sha256.to_owned(),
                    size,
                });
            }
        }
        let entry = products
            .products
            .entry(product_name.clone())
            .or_insert_with(|| Product {
                attributes: product.attributes.clone(),
                ..Product::default()
            });
        entry.versions.insert(to.clone(), version);
        new_versions.push(format!("{product_name}/{to}"));
    }
    if let Some((old, _)) = rebuild
        && !rebuilt
    {
        return Err(SyncError::NothingToRebuild {
            version: old.clone(),
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files.dedup_by(|a, b| a.path == b.path);
    Ok(Plan {
        products,
        new_versions,
        files,
    })
}

#[cfg(test)]
mod tests {
    use attendant_proto::channel::{
        Freshness, ImageType, IndexFile, IndexGlobal, IndexImage, VersionDetail,
    };

    use super::*;

    pub(crate) fn index(channel: &str, device: &str, builds: &[(u64, &str)]) -> IndexDoc {
        IndexDoc {
            global: IndexGlobal {
                freshness: Freshness {
                    generated_at: 0,
                    expires: 0,
                    serial: 1,
                },
                channel: channel.to_owned(),
                device: device.to_owned(),
            },
            images: builds
                .iter()
                .map(|(number, openwrt)| IndexImage {
                    kind: ImageType::Full,
                    version: *number,
                    description: String::new(),
                    version_detail: VersionDetail::parse(&format!("openwrt={openwrt}")).unwrap(),
                    minversion: None,
                    phased_percentage: None,
                    openwrt_version: (*openwrt).to_owned(),
                    version_code: "r1-abc".to_owned(),
                    target: "ath79/generic".to_owned(),
                    profile: "p".to_owned(),
                    recipe: None,
                    files: vec![IndexFile {
                        order: 0,
                        path: format!("/channels/pool/{number:02}/x-{number}.bin"),
                        signature: String::new(),
                        checksum: format!("{number:064}"),
                        size: 10,
                        name: format!("{openwrt}-sysupgrade.bin"),
                        image_type: "sysupgrade".to_owned(),
                        filesystem: "squashfs".to_owned(),
                    }],
                })
                .collect(),
        }
    }

    fn naming() -> Naming {
        Naming {
            vendor: "org.openwrt.attendant".to_owned(),
            stream: "daily".to_owned(),
        }
    }

    #[test]
    fn a_channel_device_becomes_a_product_with_padded_versions() {
        let products = products_from_channels(
            &naming(),
            &[index(
                "stable",
                "ath79/generic/p",
                &[(9, "24.10.4"), (10, "24.10.5")],
            )],
        );
        let product = &products.products["org.openwrt.attendant:stable:ath79:generic:p"];
        assert_eq!(
            product.versions.keys().collect::<Vec<_>>(),
            ["00000009", "00000010"]
        );
        let item = &product.versions["00000010"].items["squashfs-sysupgrade"];
        assert_eq!(item.attributes["ftype"], "sysupgrade");
        assert_eq!(item.attributes["fs"], "squashfs");
        assert_eq!(
            item.path().unwrap(),
            format!("data/00/{:064}-24.10.5-sysupgrade.bin", 10)
        );
        let flat = flatten(
            &products,
            "org.openwrt.attendant:stable:ath79:generic:p",
            "00000010",
            "squashfs-sysupgrade",
        );
        assert_eq!(flat["release"], "24.10.5");
        assert_eq!(flat["arch"], "ath79/generic");
    }

    #[test]
    fn takes_only_changed_products_then_nothing() {
        let source = products_from_channels(
            &naming(),
            &[index(
                "stable",
                "ath79/generic/p",
                &[(1, "24.10.4"), (2, "24.10.5")],
            )],
        );
        let empty = Products::new(&naming().content_id());
        let first = plan(&source, &empty, &[], false, None, &BTreeMap::new()).unwrap();
        assert_eq!(
            first.new_versions,
            ["org.openwrt.attendant:stable:ath79:generic:p/00000002"]
        );
        let second = plan(&source, &first.products, &[], false, None, &BTreeMap::new()).unwrap();
        assert!(second.new_versions.is_empty());
        assert_eq!(second.products, first.products);
        let forced = plan(&source, &first.products, &[], true, None, &BTreeMap::new()).unwrap();
        assert_eq!(forced.new_versions.len(), 1);
    }

    #[test]
    fn rebuild_publishes_an_existing_build_under_a_new_name() {
        let source = products_from_channels(
            &naming(),
            &[index("stable", "ath79/generic/p", &[(2, "24.10.5")])],
        );
        let empty = Products::new(&naming().content_id());
        let first = plan(&source, &empty, &[], false, None, &BTreeMap::new()).unwrap();
        let rebuild = parse_rebuild("00000002:00000002.1").unwrap();
        let again = plan(
            &source,
            &first.products,
            &[],
            false,
            Some(&rebuild),
            &BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(
            again.new_versions,
            ["org.openwrt.attendant:stable:ath79:generic:p/00000002.1"]
        );
        let missing = parse_rebuild("00000007:00000007.1").unwrap();
        assert!(matches!(
            plan(
                &source,
                &first.products,
                &[],
                false,
                Some(&missing),
                &BTreeMap::new()
            )
            .unwrap_err(),
            SyncError::NothingToRebuild { .. }
        ));
        assert!(parse_rebuild("1:1").is_err());
        assert!(parse_rebuild("1").is_err());
    }
}
