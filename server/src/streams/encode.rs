//! The bytes of a products file, written straight from the tree into one buffer: byte for byte
//! what [`super::format::encode`] makes (serde_json's pretty printer, indenting by one space),
//! without serde's generic serialiser in between.
//!
//! A products file is the one large document of a stream (2,000 devices × 10 builds × 2 images
//! is 18 MB), encoded once per publication and signed from memory (a usign signature covers the
//! whole message). Going through `Serialize`, each of the 40,000 items passed through the
//! `#[serde(flatten)]` map adapter and a chain of generic calls; here an item is a loop over its
//! attributes appending to one `Vec` sized from the start.

use std::collections::BTreeMap;
use std::io::Write as _;

use serde_json::Value;

use super::format::{Product, Products, Version};

/// Bytes a typical item takes, attributes and structure included, to size the buffer once.
const BYTES_PER_ITEM: usize = 480;

/// The products file's bytes (see the module docs).
pub fn encode_products(products: &Products) -> Vec<u8> {
    let mut encoder = Encoder {
        buffer: Vec::with_capacity(estimate(products)),
    };
    encoder.products(products);
    encoder.buffer
}

/// About the encoded size, so the buffer grows once or twice rather than twenty times.
fn estimate(products: &Products) -> usize {
    let items: usize = products
        .products
        .values()
        .flat_map(|product| product.versions.values())
        .map(|version| version.items.len())
        .sum();
    items.saturating_mul(BYTES_PER_ITEM).saturating_add(4096)
}

/// One space per level, as deep as any document goes in practice (deeper levels are written a
/// slice at a time).
const SPACES: &[u8; 32] = b"                                ";

struct Encoder {
    buffer: Vec<u8>,
}

impl Encoder {
    fn products(&mut self, products: &Products) {
        self.buffer.push(b'{');
        self.key(1, "content_id", true);
        self.string(&products.content_id);
        self.key(1, "format", false);
        self.string(&products.format);
        self.key(1, "products", false);
        self.buffer.push(b'{');
        let mut first = true;
        for (name, product) in &products.products {
            self.key(2, name, first);
            first = false;
            self.product(product);
        }
        self.map_close(1, products.products.is_empty());
        self.attributes(1, &products.attributes, false);
        self.buffer.extend_from_slice(b"\n}\n");
    }

    fn product(&mut self, product: &Product) {
        self.buffer.push(b'{');
        self.key(3, "versions", true);
        self.buffer.push(b'{');
        let mut first = true;
        for (name, version) in &product.versions {
            self.key(4, name, first);
            first = false;
            self.version(version);
        }
        self.map_close(3, product.versions.is_empty());
        self.attributes(3, &product.attributes, false);
        self.map_close(2, false);
    }

    fn version(&mut self, version: &Version) {
        self.buffer.push(b'{');
        self.key(5, "items", true);
        self.buffer.push(b'{');
        let mut first = true;
        for (name, item) in &version.items {
            self.key(6, name, first);
            first = false;
            self.object(6, &item.attributes);
        }
        self.map_close(5, version.items.is_empty());
        self.attributes(5, &version.attributes, false);
        self.map_close(4, false);
    }

    /// The entries of a flattened attribute map, after `first` (whether an entry came before).
    fn attributes(&mut self, depth: usize, attributes: &BTreeMap<String, Value>, first: bool) {
        let mut first = first;
        for (key, value) in attributes {
            self.key(depth, key, first);
            first = false;
            self.value(depth, value);
        }
    }

    /// A JSON object at `depth` (the level of its own key).
    fn object(&mut self, depth: usize, entries: &BTreeMap<String, Value>) {
        self.buffer.push(b'{');
        self.attributes(depth + 1, entries, true);
        self.map_close(depth, entries.is_empty());
    }

    fn value(&mut self, depth: usize, value: &Value) {
        match value {
            Value::Null => self.buffer.extend_from_slice(b"null"),
            Value::Bool(true) => self.buffer.extend_from_slice(b"true"),
            Value::Bool(false) => self.buffer.extend_from_slice(b"false"),
            // `Number`'s `Display` is its JSON form (serde_json prints with the same routines).
            Value::Number(number) => {
                let _ = write!(self.buffer, "{number}");
            }
            Value::String(text) => self.string(text),
            Value::Array(values) => {
                self.buffer.push(b'[');
                for (n, value) in values.iter().enumerate() {
                    self.buffer
                        .extend_from_slice(if n == 0 { b"\n" } else { b",\n" });
                    self.indent(depth + 1);
                    self.value(depth + 1, value);
                }
                if !values.is_empty() {
                    self.buffer.push(b'\n');
                    self.indent(depth);
                }
                self.buffer.push(b']');
            }
            Value::Object(map) => {
                self.buffer.push(b'{');
                for (n, (key, value)) in map.iter().enumerate() {
                    self.key(depth + 1, key, n == 0);
                    self.value(depth + 1, value);
                }
                self.map_close(depth, map.is_empty());
            }
        }
    }

    /// `\n<indent>"key": ` (`,\n` unless it is the first entry).
    fn key(&mut self, depth: usize, key: &str, first: bool) {
        self.buffer
            .extend_from_slice(if first { b"\n" } else { b",\n" });
        self.indent(depth);
        self.string(key);
        self.buffer.extend_from_slice(b": ");
    }

    /// `}` of an object whose key sits at `depth`: on a line of its own unless it is empty.
    fn map_close(&mut self, depth: usize, empty: bool) {
        if !empty {
            self.buffer.push(b'\n');
            self.indent(depth);
        }
        self.buffer.push(b'}');
    }

    fn indent(&mut self, depth: usize) {
        let mut left = depth;
        while left > 0 {
            let step = left.min(SPACES.len());
            self.buffer
                .extend_from_slice(SPACES.get(..step).unwrap_or_default());
            left -= step;
        }
    }

    /// A JSON string, escaped as serde_json escapes: `"`, `\`, and control characters (`\b`,
    /// `\t`, `\n`, `\f`, `\r` by name, the others as `\u00xx`); everything else as it is.
    fn string(&mut self, text: &str) {
        self.buffer.push(b'"');
        let bytes = text.as_bytes();
        let mut start = 0;
        for (at, &byte) in bytes.iter().enumerate() {
            let escape: &[u8] = match byte {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                0x08 => b"\\b",
                b'\t' => b"\\t",
                b'\n' => b"\\n",
                0x0c => b"\\f",
                b'\r' => b"\\r",
                0x00..=0x1f => b"",
                _ => continue,
            };
            self.buffer
                .extend_from_slice(bytes.get(start..at).unwrap_or_default());
            start = at + 1;
            if escape.is_empty() {
                let _ = write!(self.buffer, "\\u{byte:04x}");
            } else {
                self.buffer.extend_from_slice(escape);
            }
        }
        self.buffer
            .extend_from_slice(bytes.get(start..).unwrap_or_default());
        self.buffer.push(b'"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streams::format::{encode, parse_products};

    /// Every shape a products file from another tool may hold: escapes, control characters,
    /// non-ASCII, numbers of each kind, nested objects and arrays, empty maps and lists.
    const ODD: &str = r#"{"content_id":"com.example:x","format":"products:1.0",
      "_aliases":{"region":{"r1":{"endpoint":"https://e/\u0001","n":[1,-2,3.5,{"a":[]},{}]}}},
      "datatype":"image-ids","updated":"Tue, 15 Sep 2015 16:15:24 -0400","empty":{},"list":[],
      "products":{"a\"b\\c":{"arch":"amd64","versions":{}},
        "p\u00e9/":{"odd":"\t\n\r\b\f\u001f\u007f","versions":{"1":{"items":{},"flag":true,"none":null},
          "2":{"items":{"i":{"path":"x/y","size":18446744073709551615,"sha256":
            "0000000000000000000000000000000000000000000000000000000000000000","f":1e-7,
            "deep":{"k":[[["v"]]]}}}}}}}}"#;

    #[test]
    fn writes_the_bytes_serde_json_writes() {
        let products = parse_products(ODD.as_bytes(), "odd").unwrap();
        let expected = encode(&products);
        assert_eq!(
            String::from_utf8(encode_products(&products)).unwrap(),
            String::from_utf8(expected.clone()).unwrap()
        );
        let empty = Products::new("com.example:empty");
        assert_eq!(encode_products(&empty), encode(&empty));
    }
}
