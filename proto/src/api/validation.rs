//! The 422 body of ASU: FastAPI/pydantic v2 validation errors, and the input patterns of ASU.
//!
//! ASU validates `POST /api/v1/build` with a pydantic v2 model behind FastAPI. When the body
//! breaks the model, FastAPI answers `422` with `{"detail": [error, ...]}`, where every error is
//! `{"type", "loc", "msg", "input", "ctx"?}` and `loc` starts with `"body"`. Clients (LuCI,
//! owut, the firmware selector) show `msg`, so the `type` and `msg` texts here are pydantic v2's
//! own, word for word (<https://docs.pydantic.dev/latest/errors/validation_errors/>). One constructor per pydantic error type keeps those
//! texts in one place.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::api::body::{BodyError, decode};

/// The 422 response body: `{"detail": [...]}`, one entry per broken rule, in the order pydantic
/// reports them (model field order, then list index / dictionary key order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationErrors {
    /// Every validation error found (pydantic collects all of them, not only the first).
    pub detail: Vec<ValidationError>,
}

/// One pydantic v2 validation error as FastAPI serialises it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationError {
    /// pydantic's error type, e.g. `missing`, `string_pattern_mismatch`, `too_long`.
    #[serde(rename = "type")]
    pub error_type: String,
    /// Where the error is: `["body"]`, `["body", "packages", 3]`, `["body", "repositories", "x"]`.
    pub loc: Vec<LocItem>,
    /// pydantic's human-readable message, e.g. `Field required`.
    pub msg: String,
    /// The offending input (the whole body object for a missing field, `null` for a missing body).
    #[serde(default)]
    pub input: Value,
    /// Parameters of the rule, e.g. `{"pattern": "^[\\w.,-]*$"}` or `{"max_length": 20480}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctx: Option<Map<String, Value>>,
}

/// One step of an error location: an object key or a list index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LocItem {
    /// A list index (or, for invalid JSON, the character position in the body).
    Index(u64),
    /// An object key (`"body"`, a field name, a dictionary key, or `"[key]"`).
    Key(String),
}

/// The input patterns of ASU's `BuildRequest` (<https://github.com/openwrt/asu/blob/main/asu/build_request.py>), matched without a regex
/// engine.
///
/// `\w` is Unicode-aware in pydantic's Rust regex engine; here it is `_` or any
/// [`char::is_alphanumeric`] character, which differs only for combining marks and non-decimal
/// numerals. `$` is the end of the string (pydantic's default engine has no Python-style
/// "before a final newline" match).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Pattern {
    /// `^[\w.,-]*$`: distro, version, version_code, profile, package names.
    String,
    /// `^[\w]*/[\w]*$`: `target/subtarget`.
    Target,
    /// `^[\w+.,~-]*$`: package versions in `packages_versions`.
    PackageVersion,
    /// `^[\w.-]+$`: repository names.
    RepositoryName,
    /// `^https?://\S+$`: repository URLs.
    RepositoryUrl,
}

impl Pattern {
    /// The pattern as ASU writes it; this text appears in `msg` and `ctx.pattern`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => r"^[\w.,-]*$",
            Self::Target => r"^[\w]*/[\w]*$",
            Self::PackageVersion => r"^[\w+.,~-]*$",
            Self::RepositoryName => r"^[\w.-]+$",
            Self::RepositoryUrl => r"^https?://\S+$",
        }
    }

    /// Whether `value` matches the whole pattern.
    pub fn matches(self, value: &str) -> bool {
        match self {
            Self::String => value
                .chars()
                .all(|c| is_word(c) || matches!(c, '.' | ',' | '-')),
            Self::Target => match value.split_once('/') {
                Some((target, subtarget)) => {
                    target.chars().all(is_word) && subtarget.chars().all(is_word)
                }
                None => false,
            },
            Self::PackageVersion => value
                .chars()
                .all(|c| is_word(c) || matches!(c, '+' | '.' | ',' | '~' | '-')),
            Self::RepositoryName => {
                !value.is_empty() && value.chars().all(|c| is_word(c) || matches!(c, '.' | '-'))
            }
            Self::RepositoryUrl => {
                let rest = value
                    .strip_prefix("https://")
                    .or_else(|| value.strip_prefix("http://"));
                match rest {
                    Some(rest) => !rest.is_empty() && !rest.chars().any(char::is_whitespace),
                    None => false,
                }
            }
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Largest `422` list body accepted, in bytes (each entry echoes its offending input).
pub const MAX_VALIDATION_BODY_BYTES: usize = 1024 * 1024;

/// Parses a list-shaped `422` body (at most [`MAX_VALIDATION_BODY_BYTES`]).
pub fn parse_validation_errors(bytes: &[u8]) -> Result<ValidationErrors, BodyError> {
    decode("validation errors", bytes, MAX_VALIDATION_BODY_BYTES)
}

impl ValidationErrors {
    /// Wraps a list of errors.
    pub fn new(detail: Vec<ValidationError>) -> Self {
        Self { detail }
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("request failed validation")?;
        for (i, error) in self.detail.iter().enumerate() {
            f.write_str(if i == 0 { ": " } else { "; " })?;
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("`")?;
        for (i, item) in self.loc.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            match item {
                LocItem::Index(index) => write!(f, "{index}")?,
                LocItem::Key(key) => f.write_str(key)?,
            }
        }
        write!(f, "`: {}", self.msg)
    }
}

impl ValidationError {
    fn new(error_type: &str, loc: &[LocItem], msg: String, input: Value) -> Self {
        Self {
            error_type: error_type.to_owned(),
            loc: loc.to_vec(),
            msg,
            input,
            ctx: None,
        }
    }

    fn with_ctx(mut self, key: &str, value: Value) -> Self {
        self.ctx
            .get_or_insert_with(Map::new)
            .insert(key.to_owned(), value);
        self
    }

    /// `missing`: `Field required`.
    pub fn missing(loc: &[LocItem], input: Value) -> Self {
        Self::new("missing", loc, "Field required".to_owned(), input)
    }

    /// `string_type`: `Input should be a valid string`.
    pub fn string_type(loc: &[LocItem], input: Value) -> Self {
        Self::new(
            "string_type",
            loc,
            "Input should be a valid string".to_owned(),
            input,
        )
    }

    /// `list_type`: `Input should be a valid list`.
    pub fn list_type(loc: &[LocItem], input: Value) -> Self {
        Self::new(
            "list_type",
            loc,
            "Input should be a valid list".to_owned(),
            input,
        )
    }

    /// `dict_type`: `Input should be a valid dictionary`.
    pub fn dict_type(loc: &[LocItem], input: Value) -> Self {
        Self::new(
            "dict_type",
            loc,
            "Input should be a valid dictionary".to_owned(),
            input,
        )
    }

    /// `model_type`: the body is JSON but not an object.
    pub fn model_type(loc: &[LocItem], input: Value, class_name: &str) -> Self {
        Self::new(
            "model_type",
            loc,
            format!("Input should be a valid dictionary or instance of {class_name}"),
            input,
        )
        .with_ctx("class_name", Value::from(class_name))
    }

    /// `bool_type`: `Input should be a valid boolean`.
    pub fn bool_type(loc: &[LocItem], input: Value) -> Self {
        Self::new(
            "bool_type",
            loc,
            "Input should be a valid boolean".to_owned(),
            input,
        )
    }

    /// `bool_parsing`: a string or number that is not one of pydantic's boolean spellings.
    pub fn bool_parsing(loc: &[LocItem], input: Value) -> Self {
        Self::new(
            "bool_parsing",
            loc,
            "Input should be a valid boolean, unable to interpret input".to_owned(),
            input,
        )
    }

    /// `int_type`: `Input should be a valid integer`.
    pub fn int_type(loc: &[LocItem], input: Value) -> Self {
        Self::new(
            "int_type",
            loc,
            "Input should be a valid integer".to_owned(),
            input,
        )
    }

    /// `int_parsing`: a string that is not an integer.
    pub fn int_parsing(loc: &[LocItem], input: Value) -> Self {
        Self::new(
            "int_parsing",
            loc,
            "Input should be a valid integer, unable to parse string as an integer".to_owned(),
            input,
        )
    }

    /// `int_from_float`: a number with a fractional part.
    pub fn int_from_float(loc: &[LocItem], input: Value) -> Self {
        Self::new(
            "int_from_float",
            loc,
            "Input should be a valid integer, got a number with a fractional part".to_owned(),
            input,
        )
    }

    /// `greater_than_equal`: `Input should be greater than or equal to <ge>`.
    pub fn greater_than_equal(loc: &[LocItem], input: Value, ge: u64) -> Self {
        Self::new(
            "greater_than_equal",
            loc,
            format!("Input should be greater than or equal to {ge}"),
            input,
        )
        .with_ctx("ge", Value::from(ge))
    }

    /// `less_than_equal`: `Input should be less than or equal to <le>`.
    pub fn less_than_equal(loc: &[LocItem], input: Value, le: u64) -> Self {
        Self::new(
            "less_than_equal",
            loc,
            format!("Input should be less than or equal to {le}"),
            input,
        )
        .with_ctx("le", Value::from(le))
    }

    /// `string_too_long`: `String should have at most <n> characters`.
    pub fn string_too_long(loc: &[LocItem], input: Value, max_length: usize) -> Self {
        Self::new(
            "string_too_long",
            loc,
            format!("String should have at most {max_length} characters"),
            input,
        )
        .with_ctx("max_length", Value::from(max_length))
    }

    /// `string_pattern_mismatch`: `String should match pattern '<pattern>'`.
    pub fn string_pattern_mismatch(loc: &[LocItem], input: Value, pattern: Pattern) -> Self {
        Self::new(
            "string_pattern_mismatch",
            loc,
            format!("String should match pattern '{pattern}'"),
            input,
        )
        .with_ctx("pattern", Value::from(pattern.as_str()))
    }

    /// `string_control_character` (ours, not pydantic's; named and worded in pydantic's style):
    /// `String should not contain control characters, found U+001B`. ASU's patterns let control
    /// characters through in URLs, and the fields without a pattern take any text; a NUL or an
    /// escape sequence has no business in a build request, on a terminal or in a log.
    pub fn string_control_character(loc: &[LocItem], input: Value, character: char) -> Self {
        let code = format!("U+{:04X}", u32::from(character));
        Self::new(
            "string_control_character",
            loc,
            format!("String should not contain control characters, found {code}"),
            input,
        )
        .with_ctx("character", Value::from(code))
    }

    /// `too_long` for a list or a dictionary:
    /// `List should have at most <n> items after validation, not <m>`.
    pub fn too_long(
        loc: &[LocItem],
        input: Value,
        field_type: &str,
        max_length: usize,
        actual_length: usize,
    ) -> Self {
        Self::new(
            "too_long",
            loc,
            format!(
                "{field_type} should have at most {max_length} items after validation, not {actual_length}"
            ),
            input,
        )
        .with_ctx("field_type", Value::from(field_type))
        .with_ctx("max_length", Value::from(max_length))
        .with_ctx("actual_length", Value::from(actual_length))
    }

    /// `bytes_too_long` for the whole body (our limit; ASU has none):
    /// `Data should have at most <n> bytes`.
    pub fn bytes_too_long(loc: &[LocItem], max_length: usize) -> Self {
        Self::new(
            "bytes_too_long",
            loc,
            format!("Data should have at most {max_length} bytes"),
            Value::Null,
        )
        .with_ctx("max_length", Value::from(max_length))
    }

    /// `enum` (or `literal_error`): `Input should be 'a', 'b' or 'c'`.
    pub fn one_of(error_type: &str, loc: &[LocItem], input: Value, expected: &[&str]) -> Self {
        let expected = expected_list(expected);
        Self::new(
            error_type,
            loc,
            format!("Input should be {expected}"),
            input,
        )
        .with_ctx("expected", Value::from(expected))
    }

    /// `json_invalid`: FastAPI's answer to a body that is not JSON. `position` is the character
    /// offset where decoding failed and `error` Python's `json` message.
    pub fn json_invalid(position: u64, error: &str) -> Self {
        Self::new(
            "json_invalid",
            &[LocItem::Key("body".to_owned()), LocItem::Index(position)],
            "JSON decode error".to_owned(),
            Value::Object(Map::new()),
        )
        .with_ctx("error", Value::from(error))
    }
}

/// pydantic's list of expected literals: `'a', 'b' or 'c'`.
fn expected_list(expected: &[&str]) -> String {
    let quoted: Vec<String> = expected.iter().map(|e| format!("'{e}'")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((last, _)) => last.clone(),
        None => String::new(),
    }
}

/// `\w`: see [`Pattern`].
fn is_word(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(field: &str) -> Vec<LocItem> {
        vec![LocItem::Key("body".into()), LocItem::Key(field.into())]
    }

    #[test]
    fn string_pattern_accepts_asu_identifiers() {
        for ok in [
            "",
            "24.10.6",
            "tplink,archer-c7-v5",
            "r28959-29397011cc",
            "-ppp",
            "luci_app",
        ] {
            assert!(Pattern::String.matches(ok), "{ok}");
        }
        for bad in ["a b", "a;b", "$(x)", "a/b", "a\nb", "luci+"] {
            assert!(!Pattern::String.matches(bad), "{bad}");
        }
    }

    #[test]
    fn target_pattern_needs_exactly_one_slash() {
        assert!(Pattern::Target.matches("ath79/generic"));
        assert!(Pattern::Target.matches("/"));
        assert!(!Pattern::Target.matches("ath79"));
        assert!(!Pattern::Target.matches("a/b/c"));
        assert!(!Pattern::Target.matches("ath79/gen-eric"));
    }

    #[test]
    fn version_name_and_url_patterns() {
        assert!(Pattern::PackageVersion.matches("1.2.3-r1~abc+x"));
        assert!(!Pattern::PackageVersion.matches("1 2"));
        assert!(Pattern::RepositoryName.matches("libremesh.feed"));
        assert!(!Pattern::RepositoryName.matches(""));
        assert!(!Pattern::RepositoryName.matches("a\nsrc/gz evil http://x"));
        assert!(Pattern::RepositoryUrl.matches("https://feed.example.org/x"));
        assert!(Pattern::RepositoryUrl.matches("http://x"));
        assert!(!Pattern::RepositoryUrl.matches("https://"));
        assert!(!Pattern::RepositoryUrl.matches("ftp://x"));
        assert!(!Pattern::RepositoryUrl.matches("https://x y"));
    }

    #[test]
    fn pattern_mismatch_serialises_like_pydantic() {
        let error = ValidationError::string_pattern_mismatch(
            &body("version"),
            Value::from("1 2"),
            Pattern::String,
        );
        assert_eq!(
            serde_json::to_value(&error).unwrap(),
            serde_json::json!({
                "type": "string_pattern_mismatch",
                "loc": ["body", "version"],
                "msg": "String should match pattern '^[\\w.,-]*$'",
                "input": "1 2",
                "ctx": {"pattern": "^[\\w.,-]*$"}
            })
        );
    }

    #[test]
    fn one_of_lists_literals_like_pydantic() {
        let error = ValidationError::one_of("enum", &body("x"), Value::Null, &["a", "b", "c"]);
        assert_eq!(error.msg, "Input should be 'a', 'b' or 'c'");
        let error = ValidationError::one_of("enum", &body("x"), Value::Null, &["a"]);
        assert_eq!(error.msg, "Input should be 'a'");
    }

    #[test]
    fn display_names_location_and_message() {
        let errors = ValidationErrors::new(vec![
            ValidationError::missing(&body("version"), Value::Null),
            ValidationError::list_type(&body("packages"), Value::from("x")),
        ]);
        assert_eq!(
            errors.to_string(),
            "request failed validation: `body.version`: Field required; `body.packages`: Input should be a valid list"
        );
    }

    #[test]
    fn errors_round_trip_through_json() {
        let errors = ValidationErrors::new(vec![
            ValidationError::too_long(&body("packages"), Value::Null, "List", 2, 3),
            ValidationError::json_invalid(7, "Expecting value"),
        ]);
        let text = serde_json::to_string(&errors).unwrap();
        let back: ValidationErrors = serde_json::from_str(&text).unwrap();
        assert_eq!(back, errors);
    }
}
