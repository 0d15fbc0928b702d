//! The two simplestreams documents as data: `index:1.0` and `products:1.0`
//! (<https://git.launchpad.net/simplestreams>, `doc/README`), parsed, encoded and flattened.
//!
//! A products file is a tree `products → <product name> → versions → <version name> → items →
//! <item name> → item`. Every level may carry free attributes (strings or numbers); an item's
//! effective attributes are those of every level above it plus its own, with the synthesised
//! `content_id`, `product_name`, `version_name` and `item_name` ([`flatten`]). Stock tools hoist
//! attributes shared by all children to the parent ("condensing"), so a reader must flatten and
//! must keep attributes it does not know; both are what [`Products`] does: unknown keys are kept
//! as they are, and nothing is ever hoisted on writing (so `path`, `sha256` and `size` always sit
//! on the item).
//!
//! Version names are compared byte-wise (`LANG=C`), as every simplestreams client does: the
//! newest version is the largest name. [`version_name`] makes ours fixed-width, so byte order is
//! build order — the trap of `9` sorting after `10` that bit Ubuntu's serials.
//!
//! Nothing here does I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

/// `format` of an index.
pub const INDEX_FORMAT: &str = "index:1.0";
/// `format` of a products file.
pub const PRODUCTS_FORMAT: &str = "products:1.0";
/// `datatype` of streams whose items are downloadable files.
pub const DATATYPE: &str = "image-downloads";
/// The index's path under a mirror root.
pub const INDEX_PATH: &str = "streams/v1/index.json";
/// The directory of metadata under a mirror root.
pub const STREAMS_DIR: &str = "streams/v1";
/// Largest index or products file read, in bytes (2,000 devices × 20 versions × 3 images is
/// about 40 MB).
pub const MAX_DOCUMENT_LEN: usize = 256 << 20;
/// Longest product, version or item name, content id or attribute key, in bytes.
pub const MAX_NAME_LEN: usize = 256;
/// Longest item `path`, in bytes.
pub const MAX_PATH_LEN: usize = 1024;
/// Digits of a build serial: fixed, so byte order is numeric order.
pub const SERIAL_DIGITS: usize = 8;

/// Why a document is not a stream we can use.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// Not JSON, or not the shape of the format.
    #[error("{what} is not valid `{format}` JSON")]
    Json {
        /// The document.
        what: String,
        /// The format expected.
        format: &'static str,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// `format` names another format.
    #[error("{what} has format `{found}`, expected `{expected}`")]
    WrongFormat {
        /// The document.
        what: String,
        /// The format found (truncated).
        found: String,
        /// The format expected.
        expected: &'static str,
    },
    /// A name breaks its rule.
    #[error("{kind} `{name}` {rule}")]
    Name {
        /// `product name`, `version name`, …
        kind: &'static str,
        /// The name (truncated).
        name: String,
        /// The rule.
        rule: &'static str,
    },
    /// An item `path` could leave the mirror.
    #[error(
        "item path `{path}` is not a safe relative path (no `/` at the start, no `..` or empty segment)"
    )]
    UnsafePath {
        /// The path (truncated).
        path: String,
    },
    /// An item field has the wrong type or shape.
    #[error("item `{item}` has a bad `{field}`: {rule}")]
    Item {
        /// `product/version/item`.
        item: String,
        /// The field.
        field: &'static str,
        /// The rule.
        rule: &'static str,
    },
    /// The document is larger than [`MAX_DOCUMENT_LEN`].
    #[error("{what} is larger than {MAX_DOCUMENT_LEN} bytes")]
    TooLarge {
        /// The document.
        what: String,
    },
}

/// An `index:1.0` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Index {
    /// `index:1.0`.
    pub format: String,
    /// RFC 2822 time of the last change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<String>,
    /// The products files, by content id.
    pub index: BTreeMap<String, IndexEntry>,
}

/// One products file named by an index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// The products file, relative to the mirror root.
    pub path: String,
    /// Copies of the products file's top-level strings (`format`, `datatype`, `updated`) and its
    /// sorted product names.
    #[serde(flatten)]
    pub attributes: BTreeMap<String, Value>,
}

/// A `products:1.0` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Products {
    /// `<vendor>:<stream>`, e.g. `org.openwrt.attendant:daily`.
    pub content_id: String,
    /// `products:1.0`.
    pub format: String,
    /// The products, by name.
    #[serde(default)]
    pub products: BTreeMap<String, Product>,
    /// Top-level attributes: `datatype`, `updated`, anything else.
    #[serde(flatten)]
    pub attributes: BTreeMap<String, Value>,
}

/// A product: one device of one channel.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Product {
    /// Its versions, by name.
    #[serde(default)]
    pub versions: BTreeMap<String, Version>,
    /// Product attributes.
    #[serde(flatten)]
    pub attributes: BTreeMap<String, Value>,
}

/// A version: one build.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Version {
    /// Its items, by name.
    #[serde(default)]
    pub items: BTreeMap<String, Item>,
    /// Version attributes.
    #[serde(flatten)]
    pub attributes: BTreeMap<String, Value>,
}

/// An item: one file (or, in streams of other datatypes, one record).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Item {
    /// Every attribute: `path`, `sha256`, `size`, `ftype`, …
    #[serde(flatten)]
    pub attributes: BTreeMap<String, Value>,
}

impl Item {
    /// The file, relative to the mirror root (checked safe on parsing).
    pub fn path(&self) -> Option<&str> {
        self.attributes.get("path").and_then(Value::as_str)
    }

    /// SHA-256, lowercase hex.
    pub fn sha256(&self) -> Option<&str> {
        self.attributes.get("sha256").and_then(Value::as_str)
    }

    /// Size in bytes.
    pub fn size(&self) -> Option<u64> {
        self.attributes.get("size").and_then(Value::as_u64)
    }
}

impl Products {
    /// An empty products file for `content_id`.
    pub fn new(content_id: &str) -> Self {
        let mut attributes = BTreeMap::new();
        attributes.insert("datatype".to_owned(), Value::from(DATATYPE));
        Self {
            content_id: content_id.to_owned(),
            format: PRODUCTS_FORMAT.to_owned(),
            products: BTreeMap::new(),
            attributes,
        }
    }

    /// Every item with its pedigree, in name order.
    pub fn items(&self) -> impl Iterator<Item = (&str, &str, &str, &Item)> {
        self.products.iter().flat_map(|(product_name, product)| {
            product
                .versions
                .iter()
                .flat_map(move |(version_name, version)| {
                    version.items.iter().map(move |(item_name, item)| {
                        (
                            product_name.as_str(),
                            version_name.as_str(),
                            item_name.as_str(),
                            item,
                        )
                    })
                })
        })
    }

    /// The same tree without freshness (`updated`): what decides whether anything changed.
    pub fn without_updated(&self) -> Self {
        let mut copy = self.clone();
        copy.attributes.remove("updated");
        copy
    }
}

/// Parses an index.
pub fn parse_index(bytes: &[u8], what: &str) -> Result<Index, FormatError> {
    check_len(bytes, what)?;
    let index: Index = serde_json::from_slice(bytes).map_err(|source| FormatError::Json {
        what: what.to_owned(),
        format: INDEX_FORMAT,
        source,
    })?;
    check_format(&index.format, INDEX_FORMAT, what)?;
    for (content_id, entry) in &index.index {
        check_name("content id", content_id)?;
        check_path(&entry.path)?;
    }
    Ok(index)
}

/// Parses a products file, checking names, paths, checksums and sizes.
pub fn parse_products(bytes: &[u8], what: &str) -> Result<Products, FormatError> {
    check_len(bytes, what)?;
    let products: Products = serde_json::from_slice(bytes).map_err(|source| FormatError::Json {
        what: what.to_owned(),
        format: PRODUCTS_FORMAT,
        source,
    })?;
    check_format(&products.format, PRODUCTS_FORMAT, what)?;
    check_name("content id", &products.content_id)?;
    for (product_name, product) in &products.products {
        check_name("product name", product_name)?;
        for (version_name, version) in &product.versions {
            check_name("version name", version_name)?;
            for (item_name, item) in &version.items {
                check_name("item name", item_name)?;
                check_item(item, &format!("{product_name}/{version_name}/{item_name}"))?;
            }
        }
    }
    Ok(products)
}

/// The file's bytes: JSON indented by one space (as the stock tools write), keys sorted, a final
/// newline.
pub fn encode<T: Serialize>(document: &T) -> Vec<u8> {
    let mut bytes = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b" ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut bytes, formatter);
    // Serialising maps of strings and JSON values cannot fail.
    let _ = document.serialize(&mut serializer);
    bytes.push(b'\n');
    bytes
}

/// The index of `products` files, each at `streams/v1/<content_id>.json`.
pub fn index_of<'a>(products: impl IntoIterator<Item = &'a Products>, updated: &str) -> Index {
    let index = products
        .into_iter()
        .map(|products| {
            // The stock generator copies every top-level string but the content id.
            let mut attributes: BTreeMap<String, Value> = products
                .attributes
                .iter()
                .filter(|(_, value)| value.is_string())
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect();
            attributes.insert("format".to_owned(), Value::from(PRODUCTS_FORMAT));
            attributes.insert(
                "products".to_owned(),
                Value::from(products.products.keys().cloned().collect::<Vec<_>>()),
            );
            (
                products.content_id.clone(),
                IndexEntry {
                    path: products_path(&products.content_id),
                    attributes,
                },
            )
        })
        .collect();
    Index {
        format: INDEX_FORMAT.to_owned(),
        updated: Some(updated.to_owned()),
        index,
    }
}

/// `streams/v1/<content_id>.json`.
pub fn products_path(content_id: &str) -> String {
    format!("{STREAMS_DIR}/{content_id}.json")
}

/// An item's effective attributes: the document's top-level strings, then those of its product,
/// version and item (numbers as text), and its four names — what filters and output formats see.
pub fn flatten(
    products: &Products,
    product_name: &str,
    version_name: &str,
    item_name: &str,
) -> BTreeMap<String, String> {
    let mut flat = BTreeMap::new();
    flat.insert("content_id".to_owned(), products.content_id.clone());
    flat.insert("format".to_owned(), products.format.clone());
    add_attributes(&mut flat, &products.attributes);
    if let Some(product) = products.products.get(product_name) {
        add_attributes(&mut flat, &product.attributes);
        if let Some(version) = product.versions.get(version_name) {
            add_attributes(&mut flat, &version.attributes);
            if let Some(item) = version.items.get(item_name) {
                add_attributes(&mut flat, &item.attributes);
            }
        }
    }
    flat.insert("product_name".to_owned(), product_name.to_owned());
    flat.insert("version_name".to_owned(), version_name.to_owned());
    flat.insert("item_name".to_owned(), item_name.to_owned());
    flat
}

/// Strings and numbers (as text) of one level; deeper levels override.
fn add_attributes(flat: &mut BTreeMap<String, String>, attributes: &BTreeMap<String, Value>) {
    for (key, value) in attributes {
        let text = match value {
            Value::String(text) => text.clone(),
            Value::Number(number) => number.to_string(),
            _ => continue,
        };
        flat.insert(key.clone(), text);
    }
}

/// The version name of channel build `number`: zero-padded to [`SERIAL_DIGITS`].
pub fn version_name(number: u64) -> String {
    format!("{number:0width$}", width = SERIAL_DIGITS)
}

/// Checks a version name given on the command line (`promote`, `--rebuild`).
pub fn check_version_name(name: &str) -> Result<(), FormatError> {
    check_token("version name", name)
}

/// Checks a name given on the command line: at most [`MAX_NAME_LEN`] of `A-Z a-z 0-9 . _ -`.
pub fn check_token(kind: &'static str, name: &str) -> Result<(), FormatError> {
    check_name(kind, name)?;
    if !name
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'))
    {
        return Err(FormatError::Name {
            kind,
            name: truncate(name),
            rule: "may hold only `A-Z a-z 0-9 . _ -`",
        });
    }
    Ok(())
}

/// Unix seconds as an RFC 2822 time, `Sun, 06 Dec 2026 14:48:00 +0000`.
pub fn rfc2822(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|time| time.format(&Rfc2822).ok())
        .unwrap_or_default()
}

/// An RFC 2822 time as Unix seconds.
pub fn parse_rfc2822(text: &str) -> Option<i64> {
    OffsetDateTime::parse(text, &Rfc2822)
        .ok()
        .map(OffsetDateTime::unix_timestamp)
}

/// Whether `path` stays inside the mirror: relative, no `..`, no empty or `.` segment.
pub fn is_safe_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= MAX_PATH_LEN
        && !path.contains('\\')
        && !path.chars().any(char::is_control)
        && path
            .split('/')
            .all(|segment| !matches!(segment, "" | "." | ".."))
}

fn check_item(item: &Item, pedigree: &str) -> Result<(), FormatError> {
    let bad = |field, rule| FormatError::Item {
        item: truncate(pedigree),
        field,
        rule,
    };
    if let Some(path) = item.attributes.get("path") {
        let path = path.as_str().ok_or_else(|| bad("path", "not a string"))?;
        check_path(path)?;
    }
    if let Some(sha256) = item.attributes.get("sha256") {
        let good = sha256.as_str().is_some_and(|sha256| {
            sha256.len() == 64
                && sha256
                    .bytes()
                    .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
        });
        if !good {
            return Err(bad("sha256", "not 64 lowercase hex digits"));
        }
    }
    if let Some(size) = item.attributes.get("size")
        && size.as_u64().is_none()
    {
        return Err(bad("size", "not a whole number of bytes"));
    }
    Ok(())
}

fn check_path(path: &str) -> Result<(), FormatError> {
    if is_safe_path(path) {
        Ok(())
    } else {
        Err(FormatError::UnsafePath {
            path: truncate(path),
        })
    }
}

fn check_name(kind: &'static str, name: &str) -> Result<(), FormatError> {
    let rule = if name.is_empty() {
        "is empty"
    } else if name.len() > MAX_NAME_LEN {
        "is longer than 256 bytes"
    } else if name.chars().any(char::is_control) {
        "holds a control character"
    } else {
        return Ok(());
    };
    Err(FormatError::Name {
        kind,
        name: truncate(name),
        rule,
    })
}

fn check_format(found: &str, expected: &'static str, what: &str) -> Result<(), FormatError> {
    if found == expected {
        Ok(())
    } else {
        Err(FormatError::WrongFormat {
            what: what.to_owned(),
            found: truncate(found),
            expected,
        })
    }
}

fn check_len(bytes: &[u8], what: &str) -> Result<(), FormatError> {
    if bytes.len() > MAX_DOCUMENT_LEN {
        return Err(FormatError::TooLarge {
            what: what.to_owned(),
        });
    }
    Ok(())
}

/// At most 80 characters of `text`, for messages.
pub(crate) fn truncate(text: &str) -> String {
    attendant_proto::excerpt::excerpt(text, 80)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{"content_id":"com.example:download","format":"products:1.0",
      "datatype":"image-downloads","updated":"Tue, 15 Sep 2015 16:15:24 -0400","arch":"amd64",
      "products":{"com.example:p1":{"release":"xenial","versions":{"20150915":{"items":{
        "disk1.img":{"ftype":"disk1.img","path":"x/disk1.img","size":12,
          "sha256":"0000000000000000000000000000000000000000000000000000000000000000"}}}}}}}"#;

    #[test]
    fn flattens_through_every_level_with_synthesised_names() {
        let products = parse_products(SAMPLE.as_bytes(), "sample").unwrap();
        let flat = flatten(&products, "com.example:p1", "20150915", "disk1.img");
        assert_eq!(flat["arch"], "amd64");
        assert_eq!(flat["release"], "xenial");
        assert_eq!(flat["size"], "12");
        assert_eq!(flat["content_id"], "com.example:download");
        assert_eq!(flat["version_name"], "20150915");
        assert_eq!(flat["item_name"], "disk1.img");
    }

    #[test]
    fn keeps_unknown_attributes_on_a_round_trip() {
        let products = parse_products(SAMPLE.as_bytes(), "sample").unwrap();
        let again = parse_products(&encode(&products), "again").unwrap();
        assert_eq!(products, again);
        assert_eq!(again.attributes["arch"], "amd64");
    }

    #[test]
    fn rejects_paths_that_leave_the_mirror() {
        for path in [
            "/etc/passwd",
            "a/../../b",
            "",
            "a//b",
            "./a",
            "a\\\\b",
            "a\\u0008",
        ] {
            let text = SAMPLE.replace("x/disk1.img", path);
            let error = parse_products(text.as_bytes(), "sample").unwrap_err();
            assert!(
                matches!(error, FormatError::UnsafePath { .. }),
                "{path}: {error}"
            );
        }
    }

    #[test]
    fn rejects_bad_checksums_sizes_and_formats() {
        let text = SAMPLE.replace("\"size\":12", "\"size\":-1");
        let error = parse_products(text.as_bytes(), "sample").unwrap_err();
        assert_eq!(
            error.to_string(),
            "item `com.example:p1/20150915/disk1.img` has a bad `size`: not a whole number of bytes"
        );
        let text = SAMPLE.replace(
            "000000000000000000000000000000000000000000000000000000000000",
            "00",
        );
        assert!(matches!(
            parse_products(text.as_bytes(), "sample").unwrap_err(),
            FormatError::Item {
                field: "sha256",
                ..
            }
        ));
        let text = SAMPLE.replace("products:1.0", "index:1.0");
        assert_eq!(
            parse_products(text.as_bytes(), "sample")
                .unwrap_err()
                .to_string(),
            "sample has format `index:1.0`, expected `products:1.0`"
        );
    }

    #[test]
    fn every_proper_prefix_of_a_document_fails() {
        let bytes = SAMPLE.as_bytes();
        for end in 0..bytes.len() {
            assert!(parse_products(&bytes[..end], "prefix").is_err(), "{end}");
        }
    }

    #[test]
    fn fixed_width_serials_sort_as_numbers() {
        let mut names: Vec<String> = [9, 10, 2, 100].into_iter().map(version_name).collect();
        names.sort();
        assert_eq!(names, ["00000002", "00000009", "00000010", "00000100"]);
        assert!(check_version_name("00000009.1").is_ok());
        assert!(check_version_name("9 1").is_err());
    }

    #[test]
    fn index_copies_top_level_strings_and_sorted_products() {
        let products = parse_products(SAMPLE.as_bytes(), "sample").unwrap();
        let index = index_of([&products], "Sun, 06 Dec 2026 14:48:00 +0000");
        let entry = &index.index["com.example:download"];
        assert_eq!(entry.path, "streams/v1/com.example:download.json");
        assert_eq!(
            entry.attributes["products"],
            serde_json::json!(["com.example:p1"])
        );
        assert_eq!(entry.attributes["datatype"], "image-downloads");
        let again = parse_index(&encode(&index), "index").unwrap();
        assert_eq!(again, index);
    }

    #[test]
    fn rfc2822_round_trips() {
        let text = rfc2822(1_796_568_480);
        assert_eq!(text, "Sun, 06 Dec 2026 14:48:00 +0000");
        assert_eq!(parse_rfc2822(&text), Some(1_796_568_480));
        assert_eq!(parse_rfc2822("yesterday"), None);
    }
}
