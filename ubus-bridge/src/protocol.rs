//! rpcd's exec-plugin protocol: one JSON object in on stdin, one JSON object out on stdout.
//!
//! rpcd runs `<plugin> call <method>`, writes the request message as JSON to the plugin's stdin
//! and closes it; whatever object the plugin prints becomes the ubus reply
//! (<https://github.com/openwrt/rpcd/blob/master/exec.c>). Arguments are not filtered by the signature `list`
//! printed, so every argument is type-checked here: [`Arguments`] hands out typed values and
//! names the argument when it has the wrong type. `ubus_rpc_session` (added by uhttpd) and
//! unknown keys are ignored. An empty stdin counts as `{}`.

use std::io::Read;

use serde_json::{Map, Value};

use crate::error::BridgeError;

/// Largest request read from stdin, in bytes. The biggest legitimate request (`start` with
/// long package lists) is a few KiB.
pub const MAX_INPUT_LEN: usize = 64 * 1024;

/// Longest string argument accepted (versions, filesystem names, URLs), in bytes.
pub const MAX_STRING_LEN: usize = 1024;

/// Most items in a list argument (`add`, `remove`, `rebuilders`).
pub const MAX_LIST_ITEMS: usize = 256;

/// Reads one request object from `input`, at most [`MAX_INPUT_LEN`] bytes.
pub fn read_request(input: impl Read) -> Result<Arguments, BridgeError> {
    let mut bytes = Vec::new();
    input
        .take(
            u64::try_from(MAX_INPUT_LEN)
                .unwrap_or(u64::MAX)
                .saturating_add(1),
        )
        .read_to_end(&mut bytes)
        .map_err(|error| BridgeError::InvalidJson {
            message: format!("cannot read stdin: {error}"),
        })?;
    if bytes.len() > MAX_INPUT_LEN {
        return Err(BridgeError::InputTooLarge {
            limit: MAX_INPUT_LEN,
        });
    }
    parse_request(&bytes)
}

/// Parses one request object; blank input is `{}`.
pub fn parse_request(bytes: &[u8]) -> Result<Arguments, BridgeError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Arguments::default());
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|error| BridgeError::InvalidJson {
        message: error.to_string(),
    })?;
    match value {
        Value::Object(map) => Ok(Arguments { map }),
        other => Err(BridgeError::InvalidJson {
            message: format!("expected an object, got {}", type_name(&other)),
        }),
    }
}

/// The arguments of one call, read by name with their type checked.
#[derive(Debug, Clone, Default)]
pub struct Arguments {
    map: Map<String, Value>,
}

impl Arguments {
    /// A string argument of at most [`MAX_STRING_LEN`] bytes; `None` when absent.
    pub fn string(&self, name: &'static str) -> Result<Option<String>, BridgeError> {
        const EXPECTED: &str = "a string of at most 1024 bytes";
        match self.map.get(name) {
            None => Ok(None),
            Some(Value::String(text)) if text.len() <= MAX_STRING_LEN => Ok(Some(text.clone())),
            Some(Value::String(text)) => {
                Err(invalid(name, EXPECTED, format!("{} bytes", text.len())))
            }
            Some(other) => Err(invalid(name, EXPECTED, type_name(other).to_owned())),
        }
    }

    /// A boolean argument; `true`/`false`, or the integers `1`/`0` that shell callers and
    /// blobmsg `int8` values produce.
    pub fn bool(&self, name: &'static str) -> Result<Option<bool>, BridgeError> {
        const EXPECTED: &str = "a boolean (`true`, `false`, `1` or `0`)";
        match self.map.get(name) {
            None => Ok(None),
            Some(Value::Bool(flag)) => Ok(Some(*flag)),
            Some(Value::Number(number)) => match number.as_u64() {
                Some(0) => Ok(Some(false)),
                Some(1) => Ok(Some(true)),
                _ => Err(invalid(name, EXPECTED, format!("`{number}`"))),
            },
            Some(other) => Err(invalid(name, EXPECTED, type_name(other).to_owned())),
        }
    }

    /// A non-negative integer argument of at most `u32::MAX`.
    pub fn u32(&self, name: &'static str) -> Result<Option<u32>, BridgeError> {
        const EXPECTED: &str = "an integer from 0 to 4294967295";
        match self.map.get(name) {
            None => Ok(None),
            Some(Value::Number(number)) => number
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| invalid(name, EXPECTED, format!("`{number}`"))),
            Some(other) => Err(invalid(name, EXPECTED, type_name(other).to_owned())),
        }
    }

    /// A list of strings, at most [`MAX_LIST_ITEMS`] items of [`MAX_STRING_LEN`] bytes; `None`
    /// when absent.
    pub fn strings(&self, name: &'static str) -> Result<Option<Vec<String>>, BridgeError> {
        const EXPECTED: &str = "an array of at most 256 strings";
        let items = match self.map.get(name) {
            None => return Ok(None),
            Some(Value::Array(items)) if items.len() <= MAX_LIST_ITEMS => items,
            Some(Value::Array(items)) => {
                return Err(invalid(name, EXPECTED, format!("{} items", items.len())));
            }
            Some(other) => return Err(invalid(name, EXPECTED, type_name(other).to_owned())),
        };
        items
            .iter()
            .map(|item| match item {
                Value::String(text) if text.len() <= MAX_STRING_LEN => Ok(text.clone()),
                Value::String(text) => Err(invalid(
                    name,
                    EXPECTED,
                    format!("an item of {} bytes", text.len()),
                )),
                other => Err(invalid(
                    name,
                    EXPECTED,
                    format!("an array holding {}", type_name(other)),
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

/// The JSON type of a value, as an error message says it.
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn invalid(argument: &'static str, expected: &'static str, found: String) -> BridgeError {
    BridgeError::InvalidArgument {
        argument,
        expected,
        found,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Arguments {
        parse_request(text.as_bytes()).unwrap()
    }

    #[test]
    fn blank_input_is_an_empty_object() {
        assert!(args("").map.is_empty());
        assert!(args(" \n").map.is_empty());
    }

    #[test]
    fn rejects_input_that_is_not_an_object() {
        let error = parse_request(b"[1]").unwrap_err();
        assert_eq!(
            error.to_string(),
            "the request is not a JSON object: expected an object, got an array"
        );
        assert!(matches!(
            parse_request(b"{\"all\": tru").unwrap_err(),
            BridgeError::InvalidJson { .. }
        ));
    }

    #[test]
    fn rejects_input_over_the_limit() {
        let big = vec![b' '; MAX_INPUT_LEN + 1];
        assert!(matches!(
            read_request(big.as_slice()).unwrap_err(),
            BridgeError::InputTooLarge {
                limit: MAX_INPUT_LEN
            }
        ));
        let fits = vec![b' '; MAX_INPUT_LEN];
        assert!(read_request(fits.as_slice()).is_ok());
    }

    #[test]
    fn reads_typed_arguments_and_ignores_the_session() {
        let a = args(
            r#"{"ubus_rpc_session": 5, "all": true, "force": 1, "rootfs_size": 256, "add": ["a", "b"], "version": "24.10.6"}"#,
        );
        assert_eq!(a.bool("all").unwrap(), Some(true));
        assert_eq!(a.bool("force").unwrap(), Some(true));
        assert_eq!(a.u32("rootfs_size").unwrap(), Some(256));
        assert_eq!(
            a.strings("add").unwrap(),
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(a.string("version").unwrap().as_deref(), Some("24.10.6"));
        assert_eq!(a.string("fstype").unwrap(), None);
    }

    #[test]
    fn wrong_types_name_the_argument() {
        let a = args(r#"{"all": "yes", "rootfs_size": -1, "add": "luci", "remove": [1]}"#);
        assert_eq!(
            a.bool("all").unwrap_err().to_string(),
            "argument `all` must be a boolean (`true`, `false`, `1` or `0`), got a string"
        );
        assert_eq!(
            a.u32("rootfs_size").unwrap_err().to_string(),
            "argument `rootfs_size` must be an integer from 0 to 4294967295, got `-1`"
        );
        assert_eq!(
            a.strings("add").unwrap_err().to_string(),
            "argument `add` must be an array of at most 256 strings, got a string"
        );
        assert_eq!(
            a.strings("remove").unwrap_err().to_string(),
            "argument `remove` must be an array of at most 256 strings, got an array holding a number"
        );
    }
}
