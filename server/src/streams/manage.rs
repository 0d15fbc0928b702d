//! The MAAS stream operations as pure functions on products trees: `insert` (additive merge),
//! `promote` (one version to another stream, relabelled), `clean-md` (keep the newest N versions,
//! metadata only). The semantics are those of `meph2-util`
//! (<https://github.com/canonical/maas-images>): insert never deletes, clean-md never deletes a
//! file (find-orphans and reap-orphans do, after a grace period), promote copies no bytes when
//! the streams share a data directory.

use std::collections::BTreeMap;

use serde_json::Value;

use super::filter::{Filter, matches_all};
use super::format::{Item, Products, flatten};

/// An item that an operation added: its pedigree and the file it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    /// `content_id`.
    pub content_id: String,
    /// `product/version/item`.
    pub pedigree: String,
    /// The file, relative to the mirror root (none for an item without a file).
    pub path: Option<String>,
    /// Its SHA-256.
    pub sha256: Option<String>,
    /// Its size.
    pub size: Option<u64>,
}

/// A version an operation removed: `content_id` and `product/version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// `content_id`.
    pub content_id: String,
    /// `product/version`.
    pub pedigree: String,
}

/// Why a merge was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MergeError {
    /// The same item has different contents in the two streams: items are immutable.
    #[error(
        "item `{content_id}` `{pedigree}` differs between source and target (sha256 `{source_sha256}` vs `{target_sha256}`); published items are never replaced"
    )]
    Conflict {
        /// `content_id`.
        content_id: String,
        /// `product/version/item`.
        pedigree: String,
        /// The source's checksum.
        source_sha256: String,
        /// The target's checksum.
        target_sha256: String,
    },
}

/// Adds every item of `source` that passes `filters` and `target` lacks; changes nothing that
/// is already there. Product and version attributes come from `source` for what is new.
pub fn insert(
    target: &mut Products,
    source: &Products,
    filters: &[Filter],
) -> Result<Vec<Added>, MergeError> {
    let mut added = Vec::new();
    for (product_name, version_name, item_name, item) in source.items() {
        if !matches_all(
            filters,
            &flatten(source, product_name, version_name, item_name),
        ) {
            continue;
        }
        let pedigree = format!("{product_name}/{version_name}/{item_name}");
        let existing = target
            .products
            .get(product_name)
            .and_then(|product| product.versions.get(version_name))
            .and_then(|version| version.items.get(item_name));
        if let Some(existing) = existing {
            if existing.sha256() != item.sha256() {
                return Err(MergeError::Conflict {
                    content_id: target.content_id.clone(),
                    pedigree,
                    source_sha256: item.sha256().unwrap_or_default().to_owned(),
                    target_sha256: existing.sha256().unwrap_or_default().to_owned(),
                });
            }
            continue;
        }
        // `items()` only yields pedigrees that exist in `source`.
        let Some(source_product) = source.products.get(product_name) else {
            continue;
        };
        let Some(source_version) = source_product.versions.get(version_name) else {
            continue;
        };
        let product = target
            .products
            .entry(product_name.to_owned())
            .or_insert_with(|| super::format::Product {
                attributes: source_product.attributes.clone(),
                ..Default::default()
            });
        let version = product
            .versions
            .entry(version_name.to_owned())
            .or_insert_with(|| super::format::Version {
                attributes: source_version.attributes.clone(),
                ..Default::default()
            });
        version.items.insert(item_name.to_owned(), item.clone());
        added.push(added_item(&target.content_id, pedigree, item));
    }
    Ok(added)
}

/// The items of `version` in `source` that pass `filters`, as a products tree of `content_id`,
/// each item labelled `label` (MAAS promotes `candidate` builds to `release`, `rc`, …).
pub fn promote(
    source: &Products,
    content_id: &str,
    version: &str,
    label: &str,
    filters: &[Filter],
) -> Products {
    let mut promoted = Products::new(content_id);
    for (key, value) in &source.attributes {
        promoted.attributes.insert(key.clone(), value.clone());
    }
    for (product_name, version_name, item_name, item) in source.items() {
        if version_name != version
            || !matches_all(
                filters,
                &flatten(source, product_name, version_name, item_name),
            )
        {
            continue;
        }
        let (Some(source_product), Some(source_version)) = (
            source.products.get(product_name),
            source
                .products
                .get(product_name)
                .and_then(|product| product.versions.get(version_name)),
        ) else {
            continue;
        };
        let product = promoted
            .products
            .entry(product_name.to_owned())
            .or_insert_with(|| super::format::Product {
                attributes: source_product.attributes.clone(),
                ..Default::default()
            });
        let target_version = product
            .versions
            .entry(version_name.to_owned())
            .or_insert_with(|| super::format::Version {
                attributes: source_version.attributes.clone(),
                ..Default::default()
            });
        let mut item = item.clone();
        item.attributes
            .insert("label".to_owned(), Value::from(label));
        target_version.items.insert(item_name.to_owned(), item);
    }
    // A label hoisted to a product or version must not contradict the items'.
    for product in promoted.products.values_mut() {
        product.attributes.remove("label");
        for version in product.versions.values_mut() {
            version.attributes.remove("label");
        }
    }
    promoted
}

/// Keeps the newest `max` versions of every product that has an item passing `filters`; the
/// rest of the metadata goes, the files stay.
pub fn clean_md(products: &mut Products, max: usize, filters: &[Filter]) -> Vec<Removed> {
    let selected: Vec<String> = products
        .products
        .keys()
        .filter(|product_name| {
            products.items().any(|(name, version_name, item_name, _)| {
                name == product_name.as_str()
                    && matches_all(filters, &flatten(products, name, version_name, item_name))
            })
        })
        .cloned()
        .collect();
    let mut removed = Vec::new();
    for product_name in selected {
        let Some(product) = products.products.get_mut(&product_name) else {
            continue;
        };
        let excess = product.versions.len().saturating_sub(max);
        // Byte-wise order, as every simplestreams client sorts: the oldest come first.
        let oldest: Vec<String> = product.versions.keys().take(excess).cloned().collect();
        for version_name in oldest {
            product.versions.remove(&version_name);
            removed.push(Removed {
                content_id: products.content_id.clone(),
                pedigree: format!("{product_name}/{version_name}"),
            });
        }
        if product.versions.is_empty() {
            products.products.remove(&product_name);
        }
    }
    removed
}

/// Merges `incoming` products files into `current` by content id (new content ids are added).
pub fn by_content_id(current: Vec<Products>) -> BTreeMap<String, Products> {
    current
        .into_iter()
        .map(|products| (products.content_id.clone(), products))
        .collect()
}

fn added_item(content_id: &str, pedigree: String, item: &Item) -> Added {
    Added {
        content_id: content_id.to_owned(),
        pedigree,
        path: item.path().map(str::to_owned),
        sha256: item.sha256().map(str::to_owned),
        size: item.size(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streams::filter::parse_all;
    use crate::streams::format::parse_products;

    fn stream(versions: &[&str]) -> Products {
        let mut text = String::from(
            r#"{"content_id":"org.openwrt.attendant:daily","format":"products:1.0","products":{"p":{"target":"ath79","versions":{"#,
        );
        for (n, version) in versions.iter().enumerate() {
            if n > 0 {
                text.push(',');
            }
            text.push_str(&format!(
                r#""{version}":{{"items":{{"squashfs-sysupgrade":{{"ftype":"sysupgrade","path":"data/{version}.bin","size":1,"sha256":"{:064}"}},"squashfs-factory":{{"ftype":"factory","path":"data/{version}-f.bin","size":1,"sha256":"{:064}"}}}}}}"#,
                n, n
            ));
        }
        text.push_str("}}}}");
        parse_products(text.as_bytes(), "test").unwrap()
    }

    #[test]
    fn insert_adds_only_what_is_missing_and_never_deletes() {
        let mut target = stream(&["00000001"]);
        let source = stream(&["00000002"]);
        let added = insert(&mut target, &source, &[]).unwrap();
        assert_eq!(added.len(), 2);
        assert_eq!(
            target.products["p"].versions.keys().collect::<Vec<_>>(),
            ["00000001", "00000002"]
        );
        assert!(insert(&mut target, &source, &[]).unwrap().is_empty());
    }

    #[test]
    fn insert_refuses_a_changed_item() {
        let mut target = stream(&["00000001", "00000002"]);
        let source = stream(&["00000002"]);
        let error = insert(&mut target, &source, &[]).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("`p/00000002/squashfs-factory` differs"),
            "{error}"
        );
    }

    #[test]
    fn promote_takes_one_version_through_the_filters_and_labels_it() {
        let source = stream(&["00000001", "00000002"]);
        let filters = parse_all(&["ftype=sysupgrade".to_owned()]).unwrap();
        let promoted = promote(
            &source,
            "org.openwrt.attendant:released",
            "00000002",
            "rc",
            &filters,
        );
        assert_eq!(promoted.content_id, "org.openwrt.attendant:released");
        let items: Vec<_> = promoted
            .items()
            .map(|(p, v, i, item)| (p, v, i, item.attributes["label"].clone()))
            .collect();
        assert_eq!(
            items,
            [("p", "00000002", "squashfs-sysupgrade", Value::from("rc"))]
        );
    }

    #[test]
    fn clean_md_keeps_the_newest_versions_byte_wise() {
        let mut products = stream(&["00000009", "00000010", "00000011"]);
        let removed = clean_md(&mut products, 2, &[]);
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].pedigree, "p/00000009");
        let filtered = parse_all(&["target=x86".to_owned()]).unwrap();
        assert!(
            clean_md(&mut products, 0, &filtered).is_empty(),
            "no product passes the filter"
        );
        assert_eq!(clean_md(&mut products, 0, &[]).len(), 2);
        assert!(products.products.is_empty());
    }
}
