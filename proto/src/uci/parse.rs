//! The UCI statement tokenizer and interpreter behind [`Config::parse`]: libuci's `parse_str`
//! and `uci_parse_line` (quoting, line joining, comments, one-letter commands) and its rules for
//! a file that says something twice. The data model it fills, the checks shared with the
//! editing methods and the writer are in the parent module.

use super::{
    Config, MAX_OPTIONS, MAX_SECTIONS, MAX_VALUE_LEN, Section, UciError, Value, add_list_item,
    is_valid_name, is_valid_package, is_valid_type,
};
use crate::excerpt::{MAX_VALUE_CHARS, excerpt};

/// The statement tokenizer and interpreter.
pub(super) struct Parser<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: usize,
    config: Config,
    /// Index of the section that `option`/`list` statements go to.
    current: Option<usize>,
}

/// What ended a token.
enum TokenEnd {
    /// More tokens may follow in this statement.
    Space,
    /// The statement ended (newline, `;`, comment or end of file).
    Statement,
}

impl<'a> Parser<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        Self {
            chars: text.chars().peekable(),
            line: 1,
            config: Config::new(),
            current: None,
        }
    }

    pub(super) fn run(mut self) -> Result<Config, UciError> {
        while self.chars.peek().is_some() {
            let line = self.line;
            let args = self.statement()?;
            self.apply(line, args)?;
        }
        Ok(self.config)
    }

    /// Reads one statement's tokens (possibly none, for a blank or comment line).
    fn statement(&mut self) -> Result<Vec<String>, UciError> {
        let mut args = Vec::new();
        loop {
            // Skip blanks that do not end the statement.
            while let Some(&c) = self.chars.peek() {
                if c == '\n' || (!c.is_ascii_whitespace() && c != '\x0b') {
                    break;
                }
                self.chars.next();
            }
            match self.chars.peek() {
                None => return Ok(args),
                Some('\n') => {
                    self.chars.next();
                    self.line += 1;
                    return Ok(args);
                }
                Some(';') => {
                    self.chars.next();
                    return Ok(args);
                }
                Some('#') => {
                    self.skip_comment();
                    return Ok(args);
                }
                Some(_) => {}
            }
            let (token, end) = self.token()?;
            if args.len() > 4 {
                // No command takes more than three arguments; keep the evidence small.
                return Err(UciError::TooManyArguments {
                    line: self.line,
                    command: command_name(args.first().map(String::as_str).unwrap_or_default()),
                });
            }
            args.push(token);
            if let TokenEnd::Statement = end {
                return Ok(args);
            }
        }
    }

    /// Reads one argument: adjacent unquoted and quoted parts.
    fn token(&mut self) -> Result<(String, TokenEnd), UciError> {
        let mut out = String::new();
        loop {
            let Some(&c) = self.chars.peek() else {
                return Ok((out, TokenEnd::Statement));
            };
            match c {
                '\'' => {
                    let start = self.line;
                    self.chars.next();
                    loop {
                        match self.chars.next() {
                            None => {
                                return Err(UciError::UnterminatedQuote {
                                    line: start,
                                    quote: '\'',
                                });
                            }
                            Some('\'') => break,
                            Some(c) => self.push(&mut out, c)?,
                        }
                    }
                }
                '"' => {
                    let start = self.line;
                    self.chars.next();
                    loop {
                        match self.chars.next() {
                            None => {
                                return Err(UciError::UnterminatedQuote {
                                    line: start,
                                    quote: '"',
                                });
                            }
                            Some('"') => break,
                            Some('\\') => {
                                if let Some(c) = self.backslash() {
                                    self.push(&mut out, c)?;
                                }
                            }
                            Some(c) => self.push(&mut out, c)?,
                        }
                    }
                }
                '#' => {
                    self.skip_comment();
                    return Ok((out, TokenEnd::Statement));
                }
                ';' => {
                    self.chars.next();
                    return Ok((out, TokenEnd::Statement));
                }
                '\n' => {
                    self.chars.next();
                    self.line += 1;
                    return Ok((out, TokenEnd::Statement));
                }
                '\\' => {
                    self.chars.next();
                    if let Some(c) = self.backslash() {
                        self.push(&mut out, c)?;
                    }
                }
                c if c.is_ascii_whitespace() || c == '\x0b' => {
                    self.chars.next();
                    return Ok((out, TokenEnd::Space));
                }
                c => {
                    self.chars.next();
                    self.push(&mut out, c)?;
                }
            }
        }
    }

    /// After a backslash: the escaped character, or `None` for a line continuation.
    fn backslash(&mut self) -> Option<char> {
        match self.chars.peek() {
            None => None,
            Some('\n') => {
                self.chars.next();
                self.line += 1;
                None
            }
            Some('\r') => {
                self.chars.next();
                if self.chars.peek() == Some(&'\n') {
                    self.chars.next();
                    self.line += 1;
                    None
                } else {
                    Some('\r')
                }
            }
            Some(&c) => {
                self.chars.next();
                Some(c)
            }
        }
    }

    fn push(&mut self, out: &mut String, c: char) -> Result<(), UciError> {
        if c == '\n' {
            self.line += 1;
        }
        if out.len() >= MAX_VALUE_LEN {
            return Err(UciError::ValueTooLong {
                line: self.line,
                len: out.len() + c.len_utf8(),
            });
        }
        out.push(c);
        Ok(())
    }

    fn skip_comment(&mut self) {
        while let Some(&c) = self.chars.peek() {
            if c == '\n' {
                break;
            }
            self.chars.next();
        }
    }

    fn apply(&mut self, line: usize, args: Vec<String>) -> Result<(), UciError> {
        let mut args = args.into_iter();
        let Some(word) = args.next() else {
            return Ok(());
        };
        let rest: Vec<String> = args.collect();
        match word.as_str() {
            "" => Ok(()),
            "p" | "package" => self.package(line, &rest),
            "c" | "config" => self.section(line, &rest),
            "o" | "option" => self.option(line, &rest, false),
            "l" | "list" => self.option(line, &rest, true),
            _ => Err(UciError::InvalidCommand {
                line,
                word: excerpt(&word, MAX_VALUE_CHARS),
            }),
        }
    }

    fn package(&mut self, line: usize, args: &[String]) -> Result<(), UciError> {
        let command = "package";
        let name = required(args, 0, line, command, "a name")?;
        no_more(args, 1, line, command)?;
        if !is_valid_package(name) {
            return Err(UciError::InvalidPackageName {
                line,
                name: excerpt(name, MAX_VALUE_CHARS),
            });
        }
        if self.config.package.is_some() {
            return Err(UciError::SecondPackage { line });
        }
        self.config.package = Some(name.to_owned());
        Ok(())
    }

    fn section(&mut self, line: usize, args: &[String]) -> Result<(), UciError> {
        let command = "config";
        let section_type = required(args, 0, line, command, "a section type")?;
        if !is_valid_type(section_type) {
            return Err(UciError::InvalidType {
                line,
                section_type: excerpt(section_type, MAX_VALUE_CHARS),
            });
        }
        let name = args
            .get(1)
            .map(String::as_str)
            .filter(|name| !name.is_empty());
        no_more(args, 2, line, command)?;
        if let Some(name) = name {
            if !is_valid_name(name) {
                return Err(UciError::InvalidName {
                    line,
                    name: excerpt(name, MAX_VALUE_CHARS),
                });
            }
            let existing = self
                .config
                .sections
                .iter()
                .position(|s| s.name.as_deref() == Some(name));
            if let Some(index) = existing {
                let previous = self
                    .config
                    .sections
                    .get(index)
                    .map(|s| s.section_type.as_str());
                if previous != Some(section_type) {
                    return Err(UciError::TypeConflict {
                        line,
                        name: name.to_owned(),
                        previous: previous.unwrap_or_default().to_owned(),
                        found: excerpt(section_type, MAX_VALUE_CHARS),
                    });
                }
                self.current = Some(index);
                return Ok(());
            }
        }
        if self.config.sections.len() >= MAX_SECTIONS {
            return Err(UciError::TooManySections { line });
        }
        self.config.sections.push(Section {
            section_type: section_type.to_owned(),
            name: name.map(str::to_owned),
            options: Vec::new(),
        });
        self.current = Some(self.config.sections.len() - 1);
        Ok(())
    }

    fn option(&mut self, line: usize, args: &[String], list: bool) -> Result<(), UciError> {
        let command = if list { "list" } else { "option" };
        let Some(section) = self
            .current
            .and_then(|index| self.config.sections.get_mut(index))
        else {
            return Err(UciError::OptionOutsideSection { line, command });
        };
        let name = required(args, 0, line, command, "an option name")?;
        if !is_valid_name(name) {
            return Err(UciError::InvalidName {
                line,
                name: excerpt(name, MAX_VALUE_CHARS),
            });
        }
        let value = args.get(1).map(String::as_str).unwrap_or_default();
        no_more(args, 2, line, command)?;
        if list {
            return add_list_item(&mut section.options, name, value, line);
        }
        section.options.retain(|(existing, _)| existing != name);
        if value.is_empty() {
            return Ok(());
        }
        if section.options.len() >= MAX_OPTIONS {
            return Err(UciError::TooManyOptions { line });
        }
        section
            .options
            .push((name.to_owned(), Value::Single(value.to_owned())));
        Ok(())
    }
}

fn command_name(word: &str) -> &'static str {
    match word {
        "p" | "package" => "package",
        "c" | "config" => "config",
        "o" | "option" => "option",
        "l" | "list" => "list",
        _ => "unknown",
    }
}

fn required<'s>(
    args: &'s [String],
    index: usize,
    line: usize,
    command: &'static str,
    what: &'static str,
) -> Result<&'s str, UciError> {
    match args.get(index) {
        Some(arg) if !arg.is_empty() => Ok(arg),
        _ => Err(UciError::MissingArgument {
            line,
            command,
            what,
        }),
    }
}

fn no_more(
    args: &[String],
    allowed: usize,
    line: usize,
    command: &'static str,
) -> Result<(), UciError> {
    // libuci's `assert_eol` reads one more argument and ignores it when it is empty.
    if args.iter().skip(allowed).any(|arg| !arg.is_empty()) {
        return Err(UciError::TooManyArguments { line, command });
    }
    Ok(())
}
