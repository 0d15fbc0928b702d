//! Validating a build request body the way FastAPI/pydantic v2 does.
//!
//! [`parse_build_request`] turns a `POST /api/v1/build` body into a [`BuildRequest`] or into
//! the list-shaped 422 body FastAPI would send ([`ValidationErrors`]), collecting every error
//! as pydantic does, in model field order. Type coercion follows pydantic v2's lax mode on
//! `json.loads` output: `"5"` and `5.0` are integers, `"yes"` and `1` are booleans, numbers are
//! never strings. On top of ASU's rules, every list, dictionary and string has a limit
//! ([`RequestLimits`]), reported with pydantic's own `too_long`/`string_too_long` texts, and the
//! body itself has a size limit (`bytes_too_long`). No string field may hold a control character
//! (`string_control_character`): ASU's URL pattern lets NUL and ESC through, and `client` and
//! `repository_keys` take any text. Only the fields that are legitimately several lines, the
//! `defaults` script and `repository_keys` (PEM keys), keep tab, line feed and carriage return.
//! The check runs after ASU's pattern, so what ASU refuses is refused with ASU's words.
//!
//! The file passes 800 lines because pydantic's rules are written out one field type at a time
//! (about 560 lines of code) and the tests beside them pin every error text: the rules and the
//! texts they produce change together.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::api::request::{BuildRequest, Filesystem, RepositoriesMode, RequestLimits};
use crate::api::validation::{LocItem, Pattern, ValidationError, ValidationErrors};

/// pydantic's error type for `filesystem` (ASU declares it as an enum).
const FILESYSTEM_ERROR_TYPE: &str = "enum";
/// pydantic's error type for `repositories_mode` (ASU declares it as a `Literal`).
const REPOSITORIES_MODE_ERROR_TYPE: &str = "literal_error";
/// The class name pydantic puts in `model_type` errors.
const MODEL_NAME: &str = "BuildRequest";

/// Parses and validates a `POST /api/v1/build` body.
///
/// An empty body or JSON `null` is a missing body; a body that is not JSON gets FastAPI's
/// `json_invalid` error; otherwise every field is checked and all errors are returned together.
pub fn parse_build_request(
    body: &[u8],
    limits: &RequestLimits,
) -> Result<BuildRequest, ValidationErrors> {
    let object = body_object(body, limits)?;
    let mut v = Validator {
        body: &object,
        limits,
        errors: Vec::new(),
    };
    let request = v.request();
    if v.errors.is_empty() {
        Ok(request)
    } else {
        Err(ValidationErrors::new(v.errors))
    }
}

/// The body as a JSON object: size, emptiness, JSON syntax and the top-level type are checked
/// first, each failing alone as FastAPI fails before the model sees any field.
fn body_object(
    body: &[u8],
    limits: &RequestLimits,
) -> Result<Map<String, Value>, ValidationErrors> {
    let root = [LocItem::Key("body".to_owned())];
    if body.len() > limits.max_body_bytes {
        return Err(ValidationErrors::new(vec![
            ValidationError::bytes_too_long(&root, limits.max_body_bytes),
        ]));
    }
    if body.is_empty() {
        return Err(ValidationErrors::new(vec![ValidationError::missing(
            &root,
            Value::Null,
        )]));
    }
    let value: Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(error) => return Err(ValidationErrors::new(vec![json_invalid(body, &error)])),
    };
    match value {
        Value::Null => Err(ValidationErrors::new(vec![ValidationError::missing(
            &root,
            Value::Null,
        )])),
        Value::Object(object) => Ok(object),
        other => Err(ValidationErrors::new(vec![ValidationError::model_type(
            &root, other, MODEL_NAME,
        )])),
    }
}

/// Walks the body object, collecting errors. Each helper returns `None` exactly when it pushed
/// at least one error.
struct Validator<'a> {
    body: &'a Map<String, Value>,
    limits: &'a RequestLimits,
    errors: Vec<ValidationError>,
}

impl Validator<'_> {
    /// Every field of the request, in the order pydantic reports errors; a field that broke a
    /// rule gets its default, and its error is in `self.errors`.
    fn request(&mut self) -> BuildRequest {
        let limits = self.limits;
        let id_max = limits.max_identifier_length;
        let distro = self
            .string(
                "distro",
                Some(Pattern::String),
                id_max,
                Some("openwrt".to_owned()),
            )
            .unwrap_or_default();
        let version = self
            .string("version", Some(Pattern::String), id_max, None)
            .unwrap_or_default();
        let version_code = self
            .string(
                "version_code",
                Some(Pattern::String),
                id_max,
                Some(String::new()),
            )
            .unwrap_or_default();
        let target = self
            .string("target", Some(Pattern::Target), id_max, None)
            .unwrap_or_default();
        let profile = self
            .string("profile", Some(Pattern::String), id_max, None)
            .unwrap_or_default();
        let packages = self
            .string_list(
                "packages",
                (Some(Pattern::String), Text::Line),
                id_max,
                limits.max_packages,
            )
            .unwrap_or_default();
        let packages_versions = self
            .string_map(
                "packages_versions",
                (Pattern::String, id_max),
                (Pattern::PackageVersion, id_max),
                limits.max_packages,
            )
            .unwrap_or_default();
        let diff_packages = self.boolean("diff_packages").unwrap_or_default();
        let defaults = self
            .optional_string("defaults", Text::Lines, limits.max_defaults_length)
            .unwrap_or_default();
        let rootfs_size_mb = self.rootfs_size_mb().unwrap_or_default();
        let filesystem = self.filesystem().unwrap_or_default();
        let repositories = self
            .string_map(
                "repositories",
                (Pattern::RepositoryName, id_max),
                (Pattern::RepositoryUrl, limits.max_repository_url_length),
                limits.max_repositories,
            )
            .unwrap_or_default();
        let repositories_mode = self.repositories_mode().unwrap_or_default();
        let repository_keys = self
            .string_list(
                "repository_keys",
                (None, Text::Lines),
                limits.max_repository_key_length,
                limits.max_repository_keys,
            )
            .unwrap_or_default();
        let client = self
            .optional_string("client", Text::Line, limits.max_client_length)
            .unwrap_or_default();

        BuildRequest {
            distro,
            version,
            version_code,
            target,
            profile,
            packages,
            packages_versions,
            diff_packages,
            defaults,
            rootfs_size_mb,
            filesystem,
            repositories,
            repositories_mode,
            repository_keys,
            client,
        }
    }

    fn loc(field: &str) -> Vec<LocItem> {
        vec![
            LocItem::Key("body".to_owned()),
            LocItem::Key(field.to_owned()),
        ]
    }

    /// A required (`default: None`) or defaulted string field.
    fn string(
        &mut self,
        field: &str,
        pattern: Option<Pattern>,
        max_length: usize,
        default: Option<String>,
    ) -> Option<String> {
        let loc = Self::loc(field);
        match self.body.get(field) {
            None => match default {
                Some(default) => Some(default),
                None => {
                    self.errors.push(ValidationError::missing(
                        &loc,
                        Value::Object(self.body.clone()),
                    ));
                    None
                }
            },
            Some(value) => check_string(
                &mut self.errors,
                &loc,
                value,
                (pattern, Text::Line),
                max_length,
            ),
        }
    }

    /// An optional string without pattern (`defaults`, `client`); `Some(None)` for null/absent.
    fn optional_string(
        &mut self,
        field: &str,
        text: Text,
        max_length: usize,
    ) -> Option<Option<String>> {
        match self.body.get(field) {
            None | Some(Value::Null) => Some(None),
            Some(value) => check_string(
                &mut self.errors,
                &Self::loc(field),
                value,
                (None, text),
                max_length,
            )
            .map(Some),
        }
    }

    fn string_list(
        &mut self,
        field: &str,
        pattern: (Option<Pattern>, Text),
        max_length: usize,
        max_items: usize,
    ) -> Option<Vec<String>> {
        let loc = Self::loc(field);
        let items = match self.body.get(field) {
            None => return Some(Vec::new()),
            Some(Value::Array(items)) => items,
            Some(other) => {
                self.errors
                    .push(ValidationError::list_type(&loc, other.clone()));
                return None;
            }
        };
        if items.len() > max_items {
            self.errors.push(ValidationError::too_long(
                &loc,
                Value::Array(items.clone()),
                "List",
                max_items,
                items.len(),
            ));
            return None;
        }
        let before = self.errors.len();
        let mut out = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let mut item_loc = loc.clone();
            item_loc.push(LocItem::Index(u64::try_from(index).unwrap_or(u64::MAX)));
            if let Some(text) = check_string(&mut self.errors, &item_loc, item, pattern, max_length)
            {
                out.push(text);
            }
        }
        (self.errors.len() == before).then_some(out)
    }

    fn string_map(
        &mut self,
        field: &str,
        (key_pattern, key_max): (Pattern, usize),
        (value_pattern, value_max): (Pattern, usize),
        max_items: usize,
    ) -> Option<BTreeMap<String, String>> {
        let loc = Self::loc(field);
        let entries = match self.body.get(field) {
            None => return Some(BTreeMap::new()),
            Some(Value::Object(entries)) => entries,
            Some(other) => {
                self.errors
                    .push(ValidationError::dict_type(&loc, other.clone()));
                return None;
            }
        };
        if entries.len() > max_items {
            self.errors.push(ValidationError::too_long(
                &loc,
                Value::Object(entries.clone()),
                "Dictionary",
                max_items,
                entries.len(),
            ));
            return None;
        }
        let before = self.errors.len();
        let mut out = BTreeMap::new();
        for (key, value) in entries {
            let mut key_loc = loc.clone();
            key_loc.push(LocItem::Key(key.clone()));
            let value_loc = key_loc.clone();
            key_loc.push(LocItem::Key("[key]".to_owned()));
            let key_ok = check_string(
                &mut self.errors,
                &key_loc,
                &Value::from(key.as_str()),
                (Some(key_pattern), Text::Line),
                key_max,
            );
            let value_ok = check_string(
                &mut self.errors,
                &value_loc,
                value,
                (Some(value_pattern), Text::Line),
                value_max,
            );
            if let (Some(key), Some(value)) = (key_ok, value_ok) {
                out.insert(key, value);
            }
        }
        (self.errors.len() == before).then_some(out)
    }

    fn boolean(&mut self, field: &str) -> Option<bool> {
        let loc = Self::loc(field);
        let value = match self.body.get(field) {
            None => return Some(false),
            Some(value) => value,
        };
        let parsed = match value {
            Value::Bool(b) => Ok(*b),
            Value::Number(n) => match n.as_f64() {
                Some(0.0) => Ok(false),
                Some(1.0) => Ok(true),
                _ => Err(Box::new(ValidationError::bool_parsing(&loc, value.clone()))),
            },
            Value::String(s) => match s.to_ascii_lowercase().as_str() {
                "0" | "off" | "f" | "false" | "n" | "no" => Ok(false),
                "1" | "on" | "t" | "true" | "y" | "yes" => Ok(true),
                _ => Err(Box::new(ValidationError::bool_parsing(&loc, value.clone()))),
            },
            _ => Err(Box::new(ValidationError::bool_type(&loc, value.clone()))),
        };
        self.keep(parsed)
    }

    fn rootfs_size_mb(&mut self) -> Option<Option<u32>> {
        let loc = Self::loc("rootfs_size_mb");
        let value = match self.body.get("rootfs_size_mb") {
            None | Some(Value::Null) => return Some(None),
            Some(value) => value,
        };
        let max = self.limits.max_custom_rootfs_size_mb;
        let parsed = lax_integer(&loc, value).and_then(|n| {
            if n < 1 {
                Err(Box::new(ValidationError::greater_than_equal(
                    &loc,
                    value.clone(),
                    1,
                )))
            } else if n > i128::from(max) {
                Err(Box::new(ValidationError::less_than_equal(
                    &loc,
                    value.clone(),
                    u64::from(max),
                )))
            } else {
                // In range 1..=max, and max is a u32.
                u32::try_from(n).map_err(|_| {
                    Box::new(ValidationError::less_than_equal(
                        &loc,
                        value.clone(),
                        u64::from(max),
                    ))
                })
            }
        });
        self.keep(parsed).map(Some)
    }

    fn filesystem(&mut self) -> Option<Option<Filesystem>> {
        let loc = Self::loc("filesystem");
        let value = match self.body.get("filesystem") {
            None | Some(Value::Null) => return Some(None),
            Some(value) => value,
        };
        let parsed = value
            .as_str()
            .and_then(Filesystem::from_wire)
            .ok_or_else(|| {
                let expected: Vec<&str> = Filesystem::ALL.iter().map(|fs| fs.as_str()).collect();
                Box::new(ValidationError::one_of(
                    FILESYSTEM_ERROR_TYPE,
                    &loc,
                    value.clone(),
                    &expected,
                ))
            });
        self.keep(parsed).map(Some)
    }

    fn repositories_mode(&mut self) -> Option<RepositoriesMode> {
        let loc = Self::loc("repositories_mode");
        let value = match self.body.get("repositories_mode") {
            None => return Some(RepositoriesMode::Replace),
            Some(value) => value,
        };
        let parsed = match value.as_str() {
            Some("append") => Ok(RepositoriesMode::Append),
            Some("replace") => Ok(RepositoriesMode::Replace),
            _ => Err(Box::new(ValidationError::one_of(
                REPOSITORIES_MODE_ERROR_TYPE,
                &loc,
                value.clone(),
                &["append", "replace"],
            ))),
        };
        self.keep(parsed)
    }

    fn keep<T>(&mut self, result: Result<T, Box<ValidationError>>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.errors.push(*error);
                None
            }
        }
    }
}

/// pydantic's `str` with `max_length` and `pattern`: type first, then length, then pattern; one
/// error per value.
fn check_string(
    errors: &mut Vec<ValidationError>,
    loc: &[LocItem],
    value: &Value,
    (pattern, text_kind): (Option<Pattern>, Text),
    max_length: usize,
) -> Option<String> {
    let Value::String(text) = value else {
        errors.push(ValidationError::string_type(loc, value.clone()));
        return None;
    };
    if text.chars().count() > max_length {
        errors.push(ValidationError::string_too_long(
            loc,
            value.clone(),
            max_length,
        ));
        return None;
    }
    if let Some(pattern) = pattern
        && !pattern.matches(text)
    {
        errors.push(ValidationError::string_pattern_mismatch(
            loc,
            value.clone(),
            pattern,
        ));
        return None;
    }
    if let Some(character) = text.chars().find(|c| !text_kind.allows(*c)) {
        errors.push(ValidationError::string_control_character(
            loc,
            value.clone(),
            character,
        ));
        return None;
    }
    Some(text.clone())
}

/// Which control characters a string field may hold. Checked after ASU's pattern, so a value
/// the pattern already refuses keeps pydantic's `string_pattern_mismatch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Text {
    /// One line: no control character at all (C0, DEL, C1).
    Line,
    /// Text of several lines (the `defaults` script, PEM keys): tab, line feed and carriage
    /// return, and no other control character.
    Lines,
}

impl Text {
    fn allows(self, character: char) -> bool {
        !character.is_control() || (self == Self::Lines && matches!(character, '\t' | '\n' | '\r'))
    }
}

/// pydantic's lax `int`: integers, booleans, floats without a fractional part, and strings
/// holding an integer (surrounding whitespace allowed).
fn lax_integer(loc: &[LocItem], value: &Value) -> Result<i128, Box<ValidationError>> {
    match value {
        Value::Bool(b) => Ok(i128::from(*b)),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i128::from(i))
            } else if let Some(u) = n.as_u64() {
                Ok(i128::from(u))
            } else {
                match n.as_f64() {
                    // `as` saturates, and only the comparison against 1..=max matters.
                    Some(x) if x.fract() == 0.0 && x.is_finite() => Ok(x as i128),
                    _ => Err(Box::new(ValidationError::int_from_float(
                        loc,
                        value.clone(),
                    ))),
                }
            }
        }
        Value::String(s) => {
            let trimmed = s.trim();
            if trimmed.len() > 40 {
                return Err(Box::new(ValidationError::int_parsing(loc, value.clone())));
            }
            trimmed
                .parse::<i128>()
                .map_err(|_| Box::new(ValidationError::int_parsing(loc, value.clone())))
        }
        _ => Err(Box::new(ValidationError::int_type(loc, value.clone()))),
    }
}

/// FastAPI's answer to an undecodable body: `loc` = `["body", <char offset>]`, `ctx.error` =
/// Python's `json` message (mapped from serde_json's, which differs in wording).
fn json_invalid(body: &[u8], error: &serde_json::Error) -> ValidationError {
    let byte_offset = byte_offset(body, error.line(), error.column());
    let prefix = body.get(..byte_offset).unwrap_or(body);
    let position = String::from_utf8_lossy(prefix).chars().count();
    let text = error.to_string();
    let message = python_json_message(&text);
    ValidationError::json_invalid(u64::try_from(position).unwrap_or(u64::MAX), message)
}

/// Byte offset of serde_json's 1-based line and column (column counts bytes; 0 at a line end).
fn byte_offset(body: &[u8], line: usize, column: usize) -> usize {
    let mut offset = 0usize;
    let mut current_line = 1usize;
    for (index, byte) in body.iter().enumerate() {
        if current_line == line {
            break;
        }
        if *byte == b'\n' {
            current_line = current_line.saturating_add(1);
            offset = index.saturating_add(1);
        }
    }
    offset
        .saturating_add(column.saturating_sub(1))
        .min(body.len())
}

/// Python `json.JSONDecodeError` wording for the common serde_json errors.
fn python_json_message(serde_message: &str) -> &str {
    let table: [(&str, &str); 12] = [
        ("EOF while parsing a value", "Expecting value"),
        ("expected value", "Expecting value"),
        ("expected ident", "Expecting value"),
        (
            "key must be a string",
            "Expecting property name enclosed in double quotes",
        ),
        (
            "EOF while parsing an object",
            "Expecting property name enclosed in double quotes",
        ),
        ("expected `:`", "Expecting ':' delimiter"),
        ("expected `,` or `}`", "Expecting ',' delimiter"),
        ("expected `,` or `]`", "Expecting ',' delimiter"),
        ("EOF while parsing a list", "Expecting ',' delimiter"),
        (
            "EOF while parsing a string",
            "Unterminated string starting at",
        ),
        ("trailing characters", "Extra data"),
        ("control character", "Invalid control character at"),
    ];
    for (prefix, python) in table {
        if serde_message.starts_with(prefix) {
            return python;
        }
    }
    if serde_message.starts_with("invalid escape") {
        return "Invalid \\escape";
    }
    serde_message
        .split_once(" at line ")
        .map_or(serde_message, |(message, _)| message)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(value: Value) -> Result<BuildRequest, ValidationErrors> {
        parse_build_request(value.to_string().as_bytes(), &RequestLimits::default())
    }

    fn minimal() -> Value {
        json!({"version": "24.10.6", "target": "ath79/generic", "profile": "tplink,archer-c7-v5"})
    }

    fn with(field: &str, value: Value) -> Value {
        let mut body = minimal();
        body.as_object_mut().unwrap().insert(field.into(), value);
        body
    }

    fn only_error(value: Value) -> Value {
        let errors = parse(value).unwrap_err();
        assert_eq!(errors.detail.len(), 1, "{errors:?}");
        serde_json::to_value(&errors.detail[0]).unwrap()
    }

    #[test]
    fn minimal_request_gets_asu_defaults() {
        let request = parse(minimal()).unwrap();
        assert_eq!(
            request,
            BuildRequest::new("24.10.6", "ath79/generic", "tplink,archer-c7-v5")
        );
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({
                "distro": "openwrt", "version": "24.10.6", "version_code": "",
                "target": "ath79/generic", "profile": "tplink,archer-c7-v5",
                "packages": [], "packages_versions": {}, "diff_packages": false,
                "defaults": null, "rootfs_size_mb": null, "filesystem": null,
                "repositories": {}, "repositories_mode": "replace", "repository_keys": [],
                "client": null
            })
        );
    }

    #[test]
    fn ignores_unknown_keys_like_luci_sends() {
        let mut body = minimal();
        let object = body.as_object_mut().unwrap();
        object.insert("advanced_mode".into(), json!("1"));
        object.insert("efi".into(), json!(null));
        object.insert("request_hash".into(), json!("x"));
        assert!(parse(body).is_ok());
    }

    #[test]
    fn accepts_pydantic_lax_coercions() {
        let request = parse(with("rootfs_size_mb", json!("256"))).unwrap();
        assert_eq!(request.rootfs_size_mb, Some(256));
        let request = parse(with("rootfs_size_mb", json!(100.0))).unwrap();
        assert_eq!(request.rootfs_size_mb, Some(100));
        let request = parse(with("diff_packages", json!("yes"))).unwrap();
        assert!(request.diff_packages);
        let request = parse(with("diff_packages", json!(0))).unwrap();
        assert!(!request.diff_packages);
    }

    #[test]
    fn rejects_missing_body() {
        for body in [&b""[..], b"null"] {
            let errors = parse_build_request(body, &RequestLimits::default()).unwrap_err();
            assert_eq!(
                serde_json::to_value(&errors).unwrap(),
                json!({"detail": [{"input": null, "loc": ["body"], "msg": "Field required", "type": "missing"}]})
            );
        }
    }

    #[test]
    fn rejects_each_missing_required_field_with_body_as_input() {
        let errors = parse(json!({})).unwrap_err();
        assert_eq!(
            serde_json::to_value(&errors).unwrap(),
            json!({"detail": [
                {"type": "missing", "loc": ["body", "version"], "msg": "Field required", "input": {}},
                {"type": "missing", "loc": ["body", "target"], "msg": "Field required", "input": {}},
                {"type": "missing", "loc": ["body", "profile"], "msg": "Field required", "input": {}}
            ]})
        );
    }

    #[test]
    fn rejects_string_packages_as_list_type() {
        assert_eq!(
            only_error(with("packages", json!("x"))),
            json!({"type": "list_type", "loc": ["body", "packages"], "msg": "Input should be a valid list", "input": "x"})
        );
    }

    #[test]
    fn rejects_wrong_types() {
        assert_eq!(
            only_error(with("version", json!(24))),
            json!({"type": "string_type", "loc": ["body", "version"], "msg": "Input should be a valid string", "input": 24})
        );
        assert_eq!(
            only_error(with("rootfs_size_mb", json!([1]))),
            json!({"type": "int_type", "loc": ["body", "rootfs_size_mb"], "msg": "Input should be a valid integer", "input": [1]})
        );
        assert_eq!(
            only_error(with("rootfs_size_mb", json!("big"))),
            json!({"type": "int_parsing", "loc": ["body", "rootfs_size_mb"], "msg": "Input should be a valid integer, unable to parse string as an integer", "input": "big"})
        );
        assert_eq!(
            only_error(with("rootfs_size_mb", json!(1.5))),
            json!({"type": "int_from_float", "loc": ["body", "rootfs_size_mb"], "msg": "Input should be a valid integer, got a number with a fractional part", "input": 1.5})
        );
        assert_eq!(
            only_error(with("diff_packages", json!(null))),
            json!({"type": "bool_type", "loc": ["body", "diff_packages"], "msg": "Input should be a valid boolean", "input": null})
        );
        assert_eq!(
            only_error(with("diff_packages", json!("maybe"))),
            json!({"type": "bool_parsing", "loc": ["body", "diff_packages"], "msg": "Input should be a valid boolean, unable to interpret input", "input": "maybe"})
        );
        assert_eq!(
            only_error(with("packages_versions", json!(["a"]))),
            json!({"type": "dict_type", "loc": ["body", "packages_versions"], "msg": "Input should be a valid dictionary", "input": ["a"]})
        );
    }

    #[test]
    fn rejects_pattern_mismatch_with_pattern_in_ctx() {
        assert_eq!(
            only_error(with("packages", json!(["luci", "a;reboot"]))),
            json!({
                "type": "string_pattern_mismatch", "loc": ["body", "packages", 1],
                "msg": "String should match pattern '^[\\w.,-]*$'", "input": "a;reboot",
                "ctx": {"pattern": "^[\\w.,-]*$"}
            })
        );
        assert_eq!(
            only_error(with("target", json!("ath79"))),
            json!({
                "type": "string_pattern_mismatch", "loc": ["body", "target"],
                "msg": "String should match pattern '^[\\w]*/[\\w]*$'", "input": "ath79",
                "ctx": {"pattern": "^[\\w]*/[\\w]*$"}
            })
        );
    }

    #[test]
    fn locates_dictionary_key_and_value_errors_like_pydantic() {
        let errors = parse(with("repositories", json!({"bad name": "ftp://x"}))).unwrap_err();
        let locs: Vec<Value> = errors
            .detail
            .iter()
            .map(|e| serde_json::to_value(&e.loc).unwrap())
            .collect();
        assert_eq!(
            locs,
            vec![
                json!(["body", "repositories", "bad name", "[key]"]),
                json!(["body", "repositories", "bad name"])
            ]
        );
        assert_eq!(
            errors.detail[1].msg,
            "String should match pattern '^https?://\\S+$'"
        );
        let error = only_error(with("packages_versions", json!({"luci": "1.0 beta"})));
        assert_eq!(error["loc"], json!(["body", "packages_versions", "luci"]));
        assert_eq!(error["msg"], "String should match pattern '^[\\w+.,~-]*$'");
    }

    #[test]
    fn rejects_rootfs_size_out_of_bounds() {
        assert_eq!(
            only_error(with("rootfs_size_mb", json!(0))),
            json!({
                "type": "greater_than_equal", "loc": ["body", "rootfs_size_mb"],
                "msg": "Input should be greater than or equal to 1", "input": 0, "ctx": {"ge": 1}
            })
        );
        assert_eq!(
            only_error(with("rootfs_size_mb", json!(1025))),
            json!({
                "type": "less_than_equal", "loc": ["body", "rootfs_size_mb"],
                "msg": "Input should be less than or equal to 1024", "input": 1025, "ctx": {"le": 1024}
            })
        );
        let limits = RequestLimits {
            max_custom_rootfs_size_mb: 2048,
            ..RequestLimits::default()
        };
        let body = with("rootfs_size_mb", json!(2048)).to_string();
        assert_eq!(
            parse_build_request(body.as_bytes(), &limits)
                .unwrap()
                .rootfs_size_mb,
            Some(2048)
        );
    }

    #[test]
    fn rejects_oversized_defaults() {
        let error = only_error(with("defaults", json!("x".repeat(20481))));
        assert_eq!(error["type"], "string_too_long");
        assert_eq!(error["msg"], "String should have at most 20480 characters");
        assert_eq!(error["ctx"], json!({"max_length": 20480}));
        assert!(parse(with("defaults", json!("x".repeat(20480)))).is_ok());
    }

    #[test]
    fn rejects_unknown_filesystem_as_enum() {
        assert_eq!(
            only_error(with("filesystem", json!("btrfs"))),
            json!({
                "type": "enum", "loc": ["body", "filesystem"],
                "msg": "Input should be 'squashfs', 'ext4', 'ubifs', 'erofs', 'jffs2', 'jffs2-nand', 'targz' or 'cpiogz'",
                "input": "btrfs",
                "ctx": {"expected": "'squashfs', 'ext4', 'ubifs', 'erofs', 'jffs2', 'jffs2-nand', 'targz' or 'cpiogz'"}
            })
        );
        assert_eq!(
            parse(with("filesystem", json!("jffs2-nand")))
                .unwrap()
                .filesystem,
            Some(Filesystem::Jffs2Nand)
        );
    }

    #[test]
    fn rejects_unknown_repositories_mode() {
        let error = only_error(with("repositories_mode", json!("merge")));
        assert_eq!(error["msg"], "Input should be 'append' or 'replace'");
    }

    #[test]
    fn rejects_invalid_json_like_fastapi() {
        let errors =
            parse_build_request(b"{\"version\": }", &RequestLimits::default()).unwrap_err();
        assert_eq!(
            serde_json::to_value(&errors).unwrap(),
            json!({"detail": [{
                "type": "json_invalid", "loc": ["body", 12], "msg": "JSON decode error",
                "input": {}, "ctx": {"error": "Expecting value"}
            }]})
        );
        let errors = parse_build_request(b"{} x", &RequestLimits::default()).unwrap_err();
        assert_eq!(
            errors.detail[0].ctx.as_ref().unwrap()["error"],
            "Extra data"
        );
    }

    #[test]
    fn rejects_non_object_body() {
        let error = only_error(json!(["version"]));
        assert_eq!(error["type"], "model_type");
        assert_eq!(
            error["msg"],
            "Input should be a valid dictionary or instance of BuildRequest"
        );
    }

    #[test]
    fn rejects_too_many_packages_with_pydantic_text() {
        let packages: Vec<String> = (0..1001).map(|i| format!("p{i}")).collect();
        let error = only_error(with("packages", json!(packages)));
        assert_eq!(error["type"], "too_long");
        assert_eq!(
            error["msg"],
            "List should have at most 1000 items after validation, not 1001"
        );
        assert_eq!(
            error["ctx"],
            json!({"field_type": "List", "max_length": 1000, "actual_length": 1001})
        );
    }

    #[test]
    fn rejects_overlong_identifiers_and_client() {
        let error = only_error(with("profile", json!("a".repeat(129))));
        assert_eq!(error["msg"], "String should have at most 128 characters");
        let error = only_error(with("client", json!("c".repeat(129))));
        assert_eq!(error["loc"], json!(["body", "client"]));
    }

    #[test]
    fn rejects_oversized_body_before_parsing() {
        let limits = RequestLimits {
            max_body_bytes: 10,
            ..RequestLimits::default()
        };
        let errors = parse_build_request(minimal().to_string().as_bytes(), &limits).unwrap_err();
        assert_eq!(
            serde_json::to_value(&errors).unwrap(),
            json!({"detail": [{
                "type": "bytes_too_long", "loc": ["body"], "msg": "Data should have at most 10 bytes",
                "input": null, "ctx": {"max_length": 10}
            }]})
        );
    }

    #[test]
    fn collects_every_error_in_field_order() {
        let errors = parse(json!({
            "version": 1, "target": "x", "profile": "p", "packages": ["ok", "no way"],
            "rootfs_size_mb": 0, "filesystem": "zfs"
        }))
        .unwrap_err();
        let types: Vec<&str> = errors
            .detail
            .iter()
            .map(|e| e.error_type.as_str())
            .collect();
        assert_eq!(
            types,
            [
                "string_type",
                "string_pattern_mismatch",
                "string_pattern_mismatch",
                "greater_than_equal",
                "enum"
            ]
        );
    }

    #[test]
    fn full_request_round_trips() {
        let mut request = BuildRequest::new("24.10.6", "x86/64", "generic");
        request.packages = vec!["luci".into(), "-ppp".into()];
        request
            .packages_versions
            .insert("luci".into(), "25.0".into());
        request.diff_packages = true;
        request.defaults = Some("echo hi".into());
        request.rootfs_size_mb = Some(512);
        request.filesystem = Some(Filesystem::Ext4);
        request
            .repositories
            .insert("extra".into(), "https://example.org/feed".into());
        request.repositories_mode = RepositoriesMode::Append;
        request
            .repository_keys
            .push("RWRNAX5vHtXWFmt+n5di7XX8rTu0w+c8X7Ihv4oCyD6tzsUwmH0A6kO0".into());
        request.client = Some("attendant/0.1.0".into());
        let bytes = serde_json::to_vec(&request).unwrap();
        assert_eq!(
            parse_build_request(&bytes, &RequestLimits::default()).unwrap(),
            request
        );
    }

    /// Issue 20 (<https://github.com/attendant-openwrt/attendant/issues/20>): ASU's URL pattern
    /// `^https?://\S+$` lets NUL and ESC through, and fields without a pattern took any
    /// character. Every string field refuses control characters, naming the field; only the
    /// multi-line fields (`defaults`, `repository_keys`) keep tab, line feed and carriage return.
    #[test]
    fn issue_20_refuses_control_characters_in_every_string_field() {
        let url = only_error(with(
            "repositories",
            json!({"extra": "https://example.org/\u{0}/packages"}),
        ));
        assert_eq!(
            url,
            json!({
                "type": "string_control_character", "loc": ["body", "repositories", "extra"],
                "msg": "String should not contain control characters, found U+0000",
                "input": "https://example.org/\u{0}/packages", "ctx": {"character": "U+0000"}
            })
        );
        let error = only_error(with(
            "repositories",
            json!({"extra": "https://example.org/\u{1b}[2J"}),
        ));
        assert_eq!(
            error["msg"],
            "String should not contain control characters, found U+001B"
        );
        let error = only_error(with(
            "repositories",
            json!({"ex\u{1b}tra": "https://e.org/"}),
        ));
        assert_eq!(
            error["loc"],
            json!(["body", "repositories", "ex\u{1b}tra", "[key]"])
        );
        for (field, bad) in [
            ("distro", json!("openwrt\u{1b}")),
            ("version", json!("24.10.6\u{0}")),
            ("version_code", json!("r1\u{7f}")),
            ("target", json!("ath79/gen\u{1b}eric")),
            ("profile", json!("a\u{9b}b")),
            ("client", json!("luci/1.0\u{1b}[31m")),
            ("client", json!("luci\n")),
            ("client", json!("luci\u{7f}")),
            ("client", json!("luci\u{85}")),
            ("defaults", json!("uci commit\u{0}\n")),
            ("defaults", json!("echo \u{1b}[2J\n")),
        ] {
            let error = only_error(with(field, bad.clone()));
            assert_eq!(error["loc"], json!(["body", field]), "{field}: {bad}");
        }
        for (field, bad, index) in [
            ("packages", json!(["luci", "vim\u{0}"]), 1),
            ("repository_keys", json!(["RWQ\u{1b}x"]), 0),
        ] {
            let error = only_error(with(field, bad));
            assert_eq!(error["loc"], json!(["body", field, index]), "{field}");
        }
        let error = only_error(with("packages_versions", json!({"luci": "1.0\u{1b}"})));
        assert_eq!(error["loc"], json!(["body", "packages_versions", "luci"]));
        // Text that is legitimately several lines keeps its line breaks and tabs.
        let mut body = with("defaults", json!("#!/bin/sh\r\n\tuci set x=1\n"));
        body.as_object_mut().unwrap().insert(
            "repository_keys".into(),
            json!(["-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n"]),
        );
        let request = parse(body).unwrap();
        assert_eq!(
            request.defaults.as_deref(),
            Some("#!/bin/sh\r\n\tuci set x=1\n")
        );
    }
}
