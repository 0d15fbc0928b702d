//! UCI configuration files (`/etc/config/*`), read and written without the `uci` tool.
//!
//! The format is libuci's (openwrt/uci `file.c`: `parse_str`, `uci_parse_line`, `uci_export`;
//! `list.c`: `uci_set`, `uci_add_list`; `util.c`: `uci_validate_*`). A file is a sequence of
//! statements, one per line or separated by `;`:
//!
//! ```text
//! package attendedsysupgrade          # optional, names the config
//!
//! config server 'server'              # a section: type, then an optional name
//!     option url 'https://sysupgrade.openwrt.org'
//!     list rebuilder 'https://rebuild.example.org'
//!
//! config attendant 'attendant'
//!     option keep_settings '1'
//! ```
//!
//! Each command may be abbreviated to its first letter (`c`, `o`, `l`, `p`). An argument is made
//! of adjacent parts, each unquoted, `'single quoted'` (taken literally, newlines included) or
//! `"double quoted"` (a backslash keeps the next character). Outside single quotes a backslash
//! keeps the next character, and a backslash at the end of a line joins the next line. `#`
//! outside quotes starts a comment that runs to the end of the line.
//!
//! libuci's semantics are kept where a file says something twice: re-opening a named section
//! continues it (a different type is refused, as libuci does in its default strict mode);
//! `option` replaces an earlier value and moves it to the end; `option x ''` deletes `x`; `list`
//! appends, turning an earlier `option` into the first item. Section types are printable ASCII
//! without spaces; section and option names are ASCII letters, digits and `_`; package names may
//! also hold `-`. Every statement with too many arguments is refused (libuci's strict mode).
//!
//! [`Config::to_text`] writes what `uci export` writes (every value single-quoted, a quote written
//! as `'\''`), so `Config::parse(config.to_text())` gives back the same [`Config`].
//!
//! Limits: [`MAX_FILE_LEN`], [`MAX_SECTIONS`], [`MAX_OPTIONS`], [`MAX_LIST_ITEMS`],
//! [`MAX_VALUE_LEN`].
//!
//! This file holds the data model, the rules shared by parsing and editing, and the writer; the
//! tokenizer and statement interpreter are in the private `parse` submodule (`uci/parse.rs`).
//! It is about 930 lines, but under 600 of them are code: the rest are the tests, kept here
//! because they check parsing, editing and writing as one round trip through [`Config`] (what
//! was read is written back the way `uci export` writes it), which no half of the module could
//! test alone.

use std::fmt;

use crate::excerpt::{MAX_VALUE_CHARS, excerpt};

mod parse;

/// Largest configuration file accepted, in bytes.
pub const MAX_FILE_LEN: usize = 256 * 1024;

/// Most sections in one file.
pub const MAX_SECTIONS: usize = 1024;

/// Most options (and lists) in one section.
pub const MAX_OPTIONS: usize = 256;

/// Most items in one list.
pub const MAX_LIST_ITEMS: usize = 1024;

/// Longest single value or name, in bytes.
pub const MAX_VALUE_LEN: usize = 16 * 1024;

/// What is wrong with a UCI file, or with a value handed to the [`Config`] builders.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UciError {
    /// The file is larger than [`MAX_FILE_LEN`].
    #[error("configuration file is {len} bytes, more than the limit of {MAX_FILE_LEN}")]
    FileTooLarge {
        /// Length of the file.
        len: usize,
    },
    /// The file is not UTF-8.
    #[error("line {line}: configuration file is not valid UTF-8")]
    InvalidUtf8 {
        /// Line of the first invalid byte (1-based).
        line: usize,
    },
    /// The file holds a NUL byte, which libuci would silently cut the line at.
    #[error("line {line}: configuration file holds a NUL byte")]
    NulByte {
        /// Line of the NUL byte.
        line: usize,
    },
    /// A quoted string is not closed before the end of the file.
    #[error("line {line}: unterminated {quote} quote")]
    UnterminatedQuote {
        /// Line where the quote opened.
        line: usize,
        /// `'` or `"`.
        quote: char,
    },
    /// A statement does not start with `package`, `config`, `option` or `list`.
    #[error(
        "line {line}: unknown command `{word}`, expected `package`, `config`, `option` or `list`"
    )]
    InvalidCommand {
        /// Line of the statement.
        line: usize,
        /// The first word (truncated).
        word: String,
    },
    /// A required argument is missing or empty.
    #[error("line {line}: `{command}` needs {what}")]
    MissingArgument {
        /// Line of the statement.
        line: usize,
        /// The command.
        command: &'static str,
        /// What was missing.
        what: &'static str,
    },
    /// A statement has more arguments than its command takes.
    #[error("line {line}: too many arguments to `{command}`")]
    TooManyArguments {
        /// Line of the statement.
        line: usize,
        /// The command.
        command: &'static str,
    },
    /// A section or option name holds a character other than ASCII letters, digits and `_`.
    #[error("line {line}: invalid name `{name}`: only ASCII letters, digits and `_` are allowed")]
    InvalidName {
        /// Line of the statement.
        line: usize,
        /// The name (truncated).
        name: String,
    },
    /// A section type is empty or holds a space or non-printable character.
    #[error(
        "line {line}: invalid section type `{section_type}`: only printable ASCII without spaces is allowed"
    )]
    InvalidType {
        /// Line of the statement.
        line: usize,
        /// The type (truncated).
        section_type: String,
    },
    /// A package name holds a character other than ASCII letters, digits, `_` and `-`.
    #[error("line {line}: invalid package name `{name}`")]
    InvalidPackageName {
        /// Line of the statement.
        line: usize,
        /// The name (truncated).
        name: String,
    },
    /// A second `package` statement.
    #[error("line {line}: a second `package` statement; one file holds one package")]
    SecondPackage {
        /// Line of the statement.
        line: usize,
    },
    /// `option` or `list` before any `config`.
    #[error("line {line}: `{command}` before the first `config` section")]
    OptionOutsideSection {
        /// Line of the statement.
        line: usize,
        /// `option` or `list`.
        command: &'static str,
    },
    /// A named section is opened again with a different type.
    #[error(
        "line {line}: section `{name}` was declared with type `{previous}`, now with `{found}`"
    )]
    TypeConflict {
        /// Line of the second declaration.
        line: usize,
        /// The section name.
        name: String,
        /// The first type.
        previous: String,
        /// The new type (truncated).
        found: String,
    },
    /// A value or name is longer than [`MAX_VALUE_LEN`].
    #[error("line {line}: value is {len} bytes, more than the limit of {MAX_VALUE_LEN}")]
    ValueTooLong {
        /// Line of the statement.
        line: usize,
        /// Length of the value.
        len: usize,
    },
    /// More sections than [`MAX_SECTIONS`].
    #[error("line {line}: more than {MAX_SECTIONS} sections")]
    TooManySections {
        /// Line of the statement.
        line: usize,
    },
    /// More options in one section than [`MAX_OPTIONS`].
    #[error("line {line}: more than {MAX_OPTIONS} options in one section")]
    TooManyOptions {
        /// Line of the statement.
        line: usize,
    },
    /// More list items than [`MAX_LIST_ITEMS`].
    #[error("line {line}: list `{option}` has more than {MAX_LIST_ITEMS} items")]
    TooManyListItems {
        /// Line of the statement.
        line: usize,
        /// The list's name.
        option: String,
    },
    /// A builder was given a name, type or value the file format cannot hold.
    #[error("{what} `{value}` cannot be written to a UCI file: {rule}")]
    Unrepresentable {
        /// What it was: "section name", "option name", "section type", "value".
        what: &'static str,
        /// The value (truncated).
        value: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// A builder was asked to add a named section that already exists.
    #[error("section `{name}` already exists")]
    DuplicateSection {
        /// The section name.
        name: String,
    },
}

/// The value of an option: a single string (`option`) or a list (`list`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `option name 'value'`; never empty.
    Single(String),
    /// `list name 'item'` repeated; at least one item.
    List(Vec<String>),
}

/// One `config` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    section_type: String,
    name: Option<String>,
    options: Vec<(String, Value)>,
}

/// A parsed UCI file: an optional package name and its sections in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    package: Option<String>,
    sections: Vec<Section>,
}

impl Config {
    /// An empty configuration.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses a UCI file.
    pub fn parse(bytes: &[u8]) -> Result<Self, UciError> {
        if bytes.len() > MAX_FILE_LEN {
            return Err(UciError::FileTooLarge { len: bytes.len() });
        }
        let text = std::str::from_utf8(bytes).map_err(|error| {
            let valid = bytes.get(..error.valid_up_to()).unwrap_or_default();
            UciError::InvalidUtf8 {
                line: 1 + count_newlines(valid),
            }
        })?;
        if let Some(at) = text.find('\0') {
            let line = 1 + count_newlines(text.get(..at).unwrap_or_default().as_bytes());
            return Err(UciError::NulByte { line });
        }
        parse::Parser::new(text).run()
    }

    /// The name from a `package` statement, if the file has one.
    pub fn package(&self) -> Option<&str> {
        self.package.as_deref()
    }

    /// All sections in file order.
    pub fn sections(&self) -> &[Section] {
        &self.sections
    }

    /// The section with this name.
    pub fn named(&self, name: &str) -> Option<&Section> {
        self.sections
            .iter()
            .find(|s| s.name.as_deref() == Some(name))
    }

    /// The section with this name, for changing it.
    pub fn named_mut(&mut self, name: &str) -> Option<&mut Section> {
        self.sections
            .iter_mut()
            .find(|s| s.name.as_deref() == Some(name))
    }

    /// Sections of one type, in file order (like `uci show config.@type[n]`).
    pub fn of_type<'a>(&'a self, section_type: &'a str) -> impl Iterator<Item = &'a Section> {
        self.sections
            .iter()
            .filter(move |s| s.section_type == section_type)
    }

    /// Appends a section. A named section must not exist yet.
    pub fn push(&mut self, section: Section) -> Result<&mut Section, UciError> {
        if let Some(name) = &section.name
            && self.named(name).is_some()
        {
            return Err(UciError::DuplicateSection { name: name.clone() });
        }
        if self.sections.len() >= MAX_SECTIONS {
            return Err(UciError::TooManySections { line: 0 });
        }
        self.sections.push(section);
        // Just pushed, so the vector is not empty.
        self.sections
            .last_mut()
            .ok_or(UciError::TooManySections { line: 0 })
    }

    /// Removes the section with this name; returns whether there was one.
    pub fn remove_named(&mut self, name: &str) -> bool {
        let before = self.sections.len();
        self.sections.retain(|s| s.name.as_deref() != Some(name));
        self.sections.len() != before
    }

    /// Writes the file the way `uci export` does.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        if let Some(package) = &self.package {
            out.push_str("package ");
            out.push_str(&quote(package));
            out.push('\n');
        }
        for section in &self.sections {
            out.push_str("\nconfig ");
            if section.section_type.bytes().all(is_plain_byte) {
                out.push_str(&section.section_type);
            } else {
                out.push_str(&quote(&section.section_type));
            }
            if let Some(name) = &section.name {
                out.push(' ');
                out.push_str(&quote(name));
            }
            out.push('\n');
            for (name, value) in &section.options {
                match value {
                    Value::Single(text) => push_line(&mut out, "option", name, text),
                    Value::List(items) => {
                        for item in items {
                            push_line(&mut out, "list", name, item);
                        }
                    }
                }
            }
        }
        out.push('\n');
        out
    }
}

impl Section {
    /// A new section. `section_type` must be printable ASCII without spaces; `name`, when given,
    /// ASCII letters, digits and `_`.
    pub fn new(section_type: &str, name: Option<&str>) -> Result<Self, UciError> {
        if !is_valid_type(section_type) {
            return Err(unrepresentable("section type", section_type, TYPE_RULE));
        }
        if let Some(name) = name
            && !is_valid_name(name)
        {
            return Err(unrepresentable("section name", name, NAME_RULE));
        }
        Ok(Self {
            section_type: section_type.to_owned(),
            name: name.map(str::to_owned),
            options: Vec::new(),
        })
    }

    /// The section type (`config <type>`).
    pub fn section_type(&self) -> &str {
        &self.section_type
    }

    /// The section name, `None` for an anonymous section.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Every option and list in order.
    pub fn options(&self) -> &[(String, Value)] {
        &self.options
    }

    /// The value of an option or list.
    pub fn get(&self, option: &str) -> Option<&Value> {
        self.options
            .iter()
            .find(|(name, _)| name == option)
            .map(|(_, value)| value)
    }

    /// A single-valued option; `None` when absent or when it is a list.
    pub fn option(&self, option: &str) -> Option<&str> {
        match self.get(option)? {
            Value::Single(text) => Some(text),
            Value::List(_) => None,
        }
    }

    /// The items of a list; a single-valued option counts as a one-item list, and an absent
    /// option as an empty one.
    pub fn list(&self, option: &str) -> Vec<&str> {
        match self.get(option) {
            Some(Value::Single(text)) => vec![text.as_str()],
            Some(Value::List(items)) => items.iter().map(String::as_str).collect(),
            None => Vec::new(),
        }
    }

    /// A boolean option the way UCI scripts read one (`1`/`yes`/`on`/`true`/`enabled` and
    /// `0`/`no`/`off`/`false`/`disabled`); `None` when absent or not a boolean word.
    pub fn flag(&self, option: &str) -> Option<bool> {
        match self.option(option)? {
            "1" | "yes" | "on" | "true" | "enabled" => Some(true),
            "0" | "no" | "off" | "false" | "disabled" => Some(false),
            _ => None,
        }
    }

    /// Sets an option, replacing an earlier option or list of that name (`uci set`). An empty
    /// value deletes the option, as in libuci.
    pub fn set(&mut self, option: &str, value: &str) -> Result<(), UciError> {
        check_option_name(option)?;
        check_value(value)?;
        self.remove(option);
        if value.is_empty() {
            return Ok(());
        }
        if self.options.len() >= MAX_OPTIONS {
            return Err(UciError::TooManyOptions { line: 0 });
        }
        self.options
            .push((option.to_owned(), Value::Single(value.to_owned())));
        Ok(())
    }

    /// Appends an item to a list (`uci add_list`); a single-valued option becomes the list's
    /// first item.
    pub fn add_list(&mut self, option: &str, item: &str) -> Result<(), UciError> {
        check_option_name(option)?;
        check_value(item)?;
        add_list_item(&mut self.options, option, item, 0)
    }

    /// Deletes an option or list; returns whether there was one.
    pub fn remove(&mut self, option: &str) -> bool {
        let before = self.options.len();
        self.options.retain(|(name, _)| name != option);
        self.options.len() != before
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

const NAME_RULE: &str = "only ASCII letters, digits and `_` are allowed";
const TYPE_RULE: &str = "only printable ASCII without spaces is allowed";

fn unrepresentable(what: &'static str, value: &str, rule: &'static str) -> UciError {
    UciError::Unrepresentable {
        what,
        value: excerpt(value, MAX_VALUE_CHARS),
        rule,
    }
}

fn check_option_name(option: &str) -> Result<(), UciError> {
    if is_valid_name(option) {
        Ok(())
    } else {
        Err(unrepresentable("option name", option, NAME_RULE))
    }
}

fn check_value(value: &str) -> Result<(), UciError> {
    if value.contains('\0') {
        return Err(unrepresentable("value", value, "NUL bytes are not allowed"));
    }
    if value.len() > MAX_VALUE_LEN {
        return Err(UciError::ValueTooLong {
            line: 0,
            len: value.len(),
        });
    }
    Ok(())
}

fn add_list_item(
    options: &mut Vec<(String, Value)>,
    option: &str,
    item: &str,
    line: usize,
) -> Result<(), UciError> {
    let existing = options.iter_mut().find(|(name, _)| name == option);
    match existing {
        Some((_, value)) => {
            let items = match value {
                Value::Single(text) => vec![std::mem::take(text)],
                Value::List(items) => std::mem::take(items),
            };
            let mut items = items;
            if items.len() >= MAX_LIST_ITEMS {
                *value = Value::List(items);
                return Err(UciError::TooManyListItems {
                    line,
                    option: excerpt(option, MAX_VALUE_CHARS),
                });
            }
            items.push(item.to_owned());
            *value = Value::List(items);
        }
        None => {
            if options.len() >= MAX_OPTIONS {
                return Err(UciError::TooManyOptions { line });
            }
            options.push((option.to_owned(), Value::List(vec![item.to_owned()])));
        }
    }
    Ok(())
}

/// libuci's `uci_validate_str(name, true, false)`.
fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// libuci's `uci_validate_str(name, true, true)`.
fn is_valid_package(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// libuci's `uci_validate_type`: printable ASCII without spaces.
fn is_valid_type(section_type: &str) -> bool {
    !section_type.is_empty() && section_type.bytes().all(|b| (33..=126).contains(&b))
}

/// Bytes written unquoted in a section type.
fn is_plain_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/' | b'@' | b':' | b'+')
}

fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    out.push_str(&text.replace('\'', "'\\''"));
    out.push('\'');
    out
}

fn push_line(out: &mut String, command: &str, name: &str, value: &str) {
    out.push('\t');
    out.push_str(command);
    out.push(' ');
    out.push_str(name);
    out.push(' ');
    out.push_str(&quote(value));
    out.push('\n');
}

fn count_newlines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const DEFAULTS: &str = "\
config server 'server'
\toption url 'https://sysupgrade.openwrt.org'

config client 'client'
\toption upgrade_packages '1'
\toption auto_search '0'
\toption advanced_mode '0'
";

    fn parse(text: &str) -> Result<Config, UciError> {
        Config::parse(text.as_bytes())
    }

    #[test]
    fn reads_the_attendedsysupgrade_defaults() {
        let config = parse(DEFAULTS).unwrap();
        assert_eq!(config.sections().len(), 2);
        let server = config.named("server").unwrap();
        assert_eq!(server.section_type(), "server");
        assert_eq!(server.option("url"), Some("https://sysupgrade.openwrt.org"));
        let client = config.of_type("client").next().unwrap();
        assert_eq!(client.flag("upgrade_packages"), Some(true));
        assert_eq!(client.flag("auto_search"), Some(false));
        assert_eq!(config.package(), None);
    }

    #[test]
    fn writes_what_uci_export_writes() {
        let config = parse(DEFAULTS).unwrap();
        assert_eq!(
            config.to_text(),
            "\nconfig server 'server'\n\toption url 'https://sysupgrade.openwrt.org'\n\n\
             config client 'client'\n\toption upgrade_packages '1'\n\toption auto_search '0'\n\
             \toption advanced_mode '0'\n\n"
        );
    }

    #[test]
    fn concatenates_quoted_and_unquoted_parts() {
        let config =
            parse("config a b\noption x 'it'\\''s'\noption y \"say \\\"hi\\\"\"\n").unwrap();
        let section = config.named("b").unwrap();
        assert_eq!(section.option("x"), Some("it's"));
        assert_eq!(section.option("y"), Some("say \"hi\""));
    }

    #[test]
    fn keeps_backslashes_literal_in_single_quotes() {
        let config = parse("config a\noption x 'a\\nb'\n").unwrap();
        assert_eq!(config.sections()[0].option("x"), Some("a\\nb"));
    }

    #[test]
    fn joins_lines_after_a_backslash() {
        let config = parse("config a\noption x abc\\\ndef\noption y z\n").unwrap();
        assert_eq!(config.sections()[0].option("x"), Some("abcdef"));
        assert_eq!(config.sections()[0].option("y"), Some("z"));
    }

    #[test]
    fn reads_multi_line_quoted_values_and_counts_their_lines() {
        let config = parse("config a\noption x 'one\ntwo'\n").unwrap();
        assert_eq!(config.sections()[0].option("x"), Some("one\ntwo"));
        let error = parse("config a\noption x 'one\ntwo'\nbogus\n").unwrap_err();
        assert_eq!(
            error,
            UciError::InvalidCommand {
                line: 4,
                word: "bogus".into()
            }
        );
    }

    #[test]
    fn strips_comments_and_blank_lines() {
        let text = "# header\n\n  config a 'n' # trailing\n\toption x y#z\n\t# option q r\n";
        let config = parse(text).unwrap();
        let section = config.named("n").unwrap();
        assert_eq!(
            section.options(),
            &[("x".to_owned(), Value::Single("y".to_owned()))]
        );
    }

    #[test]
    fn splits_statements_at_semicolons() {
        let config = parse("config a n; option x 1; option y 2\n").unwrap();
        assert_eq!(config.named("n").unwrap().option("y"), Some("2"));
    }

    #[test]
    fn accepts_abbreviated_commands_and_package() {
        let config =
            parse("package attendedsysupgrade\nc server server\no url http://x\nl r a\n").unwrap();
        assert_eq!(config.package(), Some("attendedsysupgrade"));
        assert_eq!(config.named("server").unwrap().list("r"), vec!["a"]);
    }

    #[test]
    fn later_option_replaces_earlier_and_moves_to_the_end() {
        let config = parse("config a\noption x 1\noption y 2\noption x 3\n").unwrap();
        let names: Vec<_> = config.sections()[0]
            .options()
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(names, ["y", "x"]);
        assert_eq!(config.sections()[0].option("x"), Some("3"));
    }

    #[test]
    fn empty_option_deletes_it() {
        let config = parse("config a\noption x 1\noption x ''\n").unwrap();
        assert_eq!(config.sections()[0].get("x"), None);
    }

    #[test]
    fn list_after_option_keeps_the_option_as_first_item() {
        let config = parse("config a\noption x 1\nlist x 2\nlist x 3\n").unwrap();
        assert_eq!(config.sections()[0].list("x"), vec!["1", "2", "3"]);
        assert_eq!(config.sections()[0].option("x"), None);
    }

    #[test]
    fn reopening_a_named_section_continues_it() {
        let config = parse("config a n\noption x 1\nconfig b m\nconfig a n\noption y 2\n").unwrap();
        assert_eq!(config.sections().len(), 2);
        assert_eq!(config.named("n").unwrap().option("y"), Some("2"));
    }

    #[test]
    fn empty_section_name_means_anonymous() {
        let config = parse("config a ''\n").unwrap();
        assert_eq!(config.sections()[0].name(), None);
    }

    #[test]
    fn rejects_a_section_reopened_with_another_type() {
        let error = parse("config a n\nconfig b n\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "line 2: section `n` was declared with type `a`, now with `b`"
        );
    }

    #[test]
    fn rejects_unterminated_quotes_with_the_opening_line() {
        assert_eq!(
            parse("config a\noption x 'abc\n\n").unwrap_err(),
            UciError::UnterminatedQuote {
                line: 2,
                quote: '\''
            }
        );
        assert_eq!(
            parse("config a\noption x \"abc").unwrap_err().to_string(),
            "line 2: unterminated \" quote"
        );
    }

    #[test]
    fn rejects_options_before_a_section() {
        assert_eq!(
            parse("\noption x y\n").unwrap_err().to_string(),
            "line 2: `option` before the first `config` section"
        );
    }

    #[test]
    fn rejects_invalid_names_and_types() {
        assert_eq!(
            parse("config a 'my-name'\n").unwrap_err().to_string(),
            "line 1: invalid name `my-name`: only ASCII letters, digits and `_` are allowed"
        );
        assert!(matches!(
            parse("config\n").unwrap_err(),
            UciError::MissingArgument { line: 1, .. }
        ));
        assert!(matches!(
            parse("config 'a b'\n").unwrap_err(),
            UciError::InvalidType { .. }
        ));
        assert!(matches!(
            parse("config a\noption 'x.y' 1\n").unwrap_err(),
            UciError::InvalidName { line: 2, .. }
        ));
        assert!(matches!(
            parse("package a.b\n").unwrap_err(),
            UciError::InvalidPackageName { .. }
        ));
    }

    #[test]
    fn rejects_unknown_commands_and_extra_arguments() {
        assert_eq!(
            parse("config a\n  opt x y\n").unwrap_err().to_string(),
            "line 2: unknown command `opt`, expected `package`, `config`, `option` or `list`"
        );
        assert_eq!(
            parse("config a\noption x y z\n").unwrap_err().to_string(),
            "line 2: too many arguments to `option`"
        );
        assert!(matches!(
            parse("config a b c d e f g\n").unwrap_err(),
            UciError::TooManyArguments {
                command: "config",
                ..
            }
        ));
    }

    #[test]
    fn rejects_nul_bytes_and_bad_utf8_with_their_line() {
        assert_eq!(
            Config::parse(b"config a\n\0").unwrap_err(),
            UciError::NulByte { line: 2 }
        );
        assert_eq!(
            Config::parse(b"config a\n\noption x \xff\n").unwrap_err(),
            UciError::InvalidUtf8 { line: 3 }
        );
    }

    #[test]
    fn rejects_oversized_input() {
        let big = vec![b'#'; MAX_FILE_LEN + 1];
        assert_eq!(
            Config::parse(&big).unwrap_err(),
            UciError::FileTooLarge {
                len: MAX_FILE_LEN + 1
            }
        );
        let long = format!("config a\noption x '{}'\n", "v".repeat(MAX_VALUE_LEN + 1));
        assert!(matches!(
            parse(&long).unwrap_err(),
            UciError::ValueTooLong { line: 2, .. }
        ));
        let many: String = (0..=MAX_LIST_ITEMS)
            .map(|i| format!("list x {i}\n"))
            .collect();
        assert!(matches!(
            parse(&format!("config a\n{many}")).unwrap_err(),
            UciError::TooManyListItems { .. }
        ));
    }

    #[test]
    fn builder_refuses_what_the_format_cannot_hold() {
        assert!(Section::new("a b", None).is_err());
        let mut section = Section::new("attendant", Some("attendant")).unwrap();
        assert_eq!(
            section.set("bad-name", "1").unwrap_err().to_string(),
            "option name `bad-name` cannot be written to a UCI file: only ASCII letters, digits \
             and `_` are allowed"
        );
        let mut config = Config::new();
        config.push(section.clone()).unwrap();
        assert_eq!(
            config.push(section.clone()).unwrap_err(),
            UciError::DuplicateSection {
                name: "attendant".into()
            }
        );
        section.set("x", "1").unwrap();
        section.add_list("x", "2").unwrap();
        assert_eq!(section.list("x"), vec!["1", "2"]);
        assert!(section.remove("x"));
    }

    #[test]
    fn quotes_types_that_need_it() {
        let mut config = Config::new();
        config
            .push(Section::new("we'ird#type", None).unwrap())
            .unwrap();
        let text = config.to_text();
        assert_eq!(text, "\nconfig 'we'\\''ird#type'\n\n");
        assert_eq!(parse(&text).unwrap(), config);
    }

    fn name() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_]{1,8}"
    }

    fn value() -> impl Strategy<Value = String> {
        "[^\u{0}]{0,12}"
    }

    fn section() -> impl Strategy<Value = Section> {
        (
            "[!-~]{1,8}",
            proptest::option::of(name()),
            proptest::collection::vec(
                (
                    name(),
                    proptest::bool::ANY,
                    value(),
                    proptest::collection::vec(value(), 1..3),
                ),
                0..4,
            ),
        )
            .prop_map(|(section_type, name, options)| {
                let mut section = Section::new(&section_type, name.as_deref()).unwrap();
                for (option, list, single, items) in options {
                    if list {
                        section.remove(&option);
                        for item in items {
                            section.add_list(&option, &item).unwrap();
                        }
                    } else {
                        section.set(&option, &single).unwrap();
                    }
                }
                section
            })
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Config::parse(&bytes);
        }

        #[test]
        fn never_panics_on_uci_like_text(text in "([cofl\\t 'x\"\\\\;#\\n]|config|option|list|[a-z_]{1,4}){0,64}") {
            let _ = Config::parse(text.as_bytes());
        }

        #[test]
        fn round_trips(sections in proptest::collection::vec(section(), 0..5)) {
            let mut config = Config::new();
            for section in sections {
                if section.name().is_some_and(|n| config.named(n).is_some()) {
                    continue;
                }
                config.push(section).unwrap();
            }
            let text = config.to_text();
            prop_assert_eq!(parse(&text).unwrap(), config);
        }
    }
}
