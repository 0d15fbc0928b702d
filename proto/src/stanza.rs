//! The line reader under every RFC-822-like stanza file this crate parses: opkg's
//! `/usr/lib/opkg/status` ([`crate::opkg`]), opkg `Packages` indexes ([`crate::index`]) and apk's
//! `/lib/apk/db/installed` ([`crate::apk`]).
//!
//! The three formats share their layout (opkg `pkg_print_status`, apk-tools `apk_db_write_fdb`):
//! lines end in `\n` (an extra `\r` before it is dropped), a blank line ends a stanza, and in the
//! opkg formats a line that starts with a space or tab continues the field before it. They differ
//! in how a field line splits into key and value (`Key: value` or `K:value`) and in which fields
//! they read, so [`Reader`] stops at the line: it yields [`Event`]s with 1-based line numbers,
//! tracks where each stanza starts, and enforces the caller's line-length limit. Each parser
//! splits field lines and reports errors in its own type on top.

/// Reads a stanza file line by line; an iterator of [`Event`]s.
pub(crate) struct Reader<'a> {
    lines: std::slice::Split<'a, u8, fn(&u8) -> bool>,
    max_line_len: usize,
    is_blank: fn(&[u8]) -> bool,
    /// 1-based number of the last line read; 0 before the first.
    line: usize,
    /// First line of the stanza being read, once it has a field line.
    stanza_start: Option<usize>,
    finished: bool,
}

/// One step through a stanza file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event<'a> {
    /// A line that starts with neither whitespace nor a continuation: a field line, to be split
    /// by the caller's rules.
    Field(Line<'a>),
    /// A line starting with a space or tab, after a field line of the same stanza.
    Continuation(Line<'a>),
    /// A line starting with a space or tab that opens a stanza: nothing precedes it to continue.
    OrphanContinuation(Line<'a>),
    /// The end of a stanza that has at least one field line: a blank line or the end of input.
    End {
        /// 1-based number of the stanza's first line.
        start: usize,
        /// 1-based number of the line that ends it (the blank line, or the last line of input).
        line: usize,
    },
}

/// One line, without its `\n` and without one `\r` before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Line<'a> {
    /// 1-based line number.
    pub(crate) number: usize,
    /// The bytes of the line.
    pub(crate) text: &'a [u8],
}

/// A line is longer than the caller's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LineTooLong {
    /// 1-based line number.
    pub(crate) line: usize,
    /// Length of the line, in bytes, including a trailing `\r`.
    pub(crate) length: usize,
    /// The limit.
    pub(crate) max: usize,
}

impl<'a> Reader<'a> {
    /// Reads `bytes`, refusing lines longer than `max_line_len` bytes. A line is blank when it is
    /// empty or only ASCII whitespace.
    pub(crate) fn new(bytes: &'a [u8], max_line_len: usize) -> Self {
        Reader {
            lines: bytes.split(is_newline as fn(&u8) -> bool),
            max_line_len,
            is_blank: is_ascii_blank,
            line: 0,
            stanza_start: None,
            finished: false,
        }
    }

    /// Replaces the rule for blank lines (the stanza separators).
    pub(crate) fn with_blank_rule(self, is_blank: fn(&[u8]) -> bool) -> Self {
        Reader { is_blank, ..self }
    }

    /// Every line, numbered and checked against the limit, without stanza tracking (for files of
    /// plain lines, like apk's world file).
    pub(crate) fn lines(self) -> impl Iterator<Item = Result<Line<'a>, LineTooLong>> {
        let max = self.max_line_len;
        self.lines.enumerate().map(move |(index, raw)| {
            let number = index.saturating_add(1);
            checked_line(raw, number, max)
        })
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = Result<Event<'a>, LineTooLong>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.finished {
                return None;
            }
            let Some(raw) = self.lines.next() else {
                self.finished = true;
                let start = self.stanza_start.take()?;
                return Some(Ok(Event::End {
                    start,
                    line: self.line,
                }));
            };
            self.line = self.line.saturating_add(1);
            let line = match checked_line(raw, self.line, self.max_line_len) {
                Ok(line) => line,
                Err(error) => {
                    self.finished = true;
                    return Some(Err(error));
                }
            };
            if (self.is_blank)(line.text) {
                match self.stanza_start.take() {
                    Some(start) => {
                        return Some(Ok(Event::End {
                            start,
                            line: line.number,
                        }));
                    }
                    None => continue,
                }
            }
            if line
                .text
                .first()
                .is_some_and(|byte| *byte == b' ' || *byte == b'\t')
            {
                return Some(Ok(match self.stanza_start {
                    Some(_) => Event::Continuation(line),
                    None => Event::OrphanContinuation(line),
                }));
            }
            self.stanza_start.get_or_insert(line.number);
            return Some(Ok(Event::Field(line)));
        }
    }
}

fn is_newline(byte: &u8) -> bool {
    *byte == b'\n'
}

fn is_ascii_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

fn checked_line(raw: &[u8], number: usize, max: usize) -> Result<Line<'_>, LineTooLong> {
    if raw.len() > max {
        return Err(LineTooLong {
            line: number,
            length: raw.len(),
            max,
        });
    }
    Ok(Line {
        number,
        text: raw.strip_suffix(b"\r").unwrap_or(raw),
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn events(bytes: &[u8]) -> Vec<Event<'_>> {
        Reader::new(bytes, 64).map(Result::unwrap).collect()
    }

    fn line(number: usize, text: &[u8]) -> Line<'_> {
        Line { number, text }
    }

    #[test]
    fn numbers_fields_continuations_and_stanza_ends() {
        let text = b"A: 1\r\nB: 2\n c\n\n\nD: 3\n";
        assert_eq!(
            events(text),
            [
                Event::Field(line(1, b"A: 1")),
                Event::Field(line(2, b"B: 2")),
                Event::Continuation(line(3, b" c")),
                Event::End { start: 1, line: 4 },
                Event::Field(line(6, b"D: 3")),
                Event::End { start: 6, line: 7 },
            ]
        );
    }

    #[test]
    fn ends_last_stanza_without_final_newline() {
        assert_eq!(
            events(b"\nA: 1\nB: 2"),
            [
                Event::Field(line(2, b"A: 1")),
                Event::Field(line(3, b"B: 2")),
                Event::End { start: 2, line: 3 },
            ]
        );
    }

    #[test]
    fn yields_nothing_for_blank_input() {
        assert_eq!(events(b""), []);
        assert_eq!(events(b"\n \t\r\n\n"), []);
    }

    #[test]
    fn reports_continuation_that_opens_a_stanza() {
        assert_eq!(
            events(b"A: 1\n\n\tx\n"),
            [
                Event::Field(line(1, b"A: 1")),
                Event::End { start: 1, line: 2 },
                Event::OrphanContinuation(line(3, b"\tx")),
            ]
        );
    }

    #[test]
    fn rejects_line_over_the_limit_and_stops() {
        let mut reader = Reader::new(b"A: 1\nB: 12345\nC: 1\n", 6);
        assert_eq!(reader.next(), Some(Ok(Event::Field(line(1, b"A: 1")))));
        assert_eq!(
            reader.next(),
            Some(Err(LineTooLong {
                line: 2,
                length: 8,
                max: 6
            }))
        );
        assert_eq!(reader.next(), None);
    }

    #[test]
    fn counts_the_carriage_return_against_the_limit() {
        assert!(Reader::new(b"A: 1\r\n", 4).next().unwrap().is_err());
        assert!(Reader::new(b"A: 1\n", 4).next().unwrap().is_ok());
    }

    #[test]
    fn custom_blank_rule_separates_stanzas() {
        let reader = Reader::new(b"A: 1\n-\nB: 2\n", 64).with_blank_rule(|line| line == b"-");
        let events: Vec<_> = reader.map(Result::unwrap).collect();
        assert_eq!(events.get(1), Some(&Event::End { start: 1, line: 2 }));
    }

    #[test]
    fn plain_lines_keep_leading_whitespace_and_blank_lines() {
        let lines: Vec<_> = Reader::new(b" a\r\n\nb", 64)
            .lines()
            .map(Result::unwrap)
            .collect();
        assert_eq!(lines, [line(1, b" a"), line(2, b""), line(3, b"b")]);
        let error = Reader::new(b"ok\ntoo long\n", 4).lines().nth(1).unwrap();
        assert_eq!(
            error,
            Err(LineTooLong {
                line: 2,
                length: 8,
                max: 4
            })
        );
    }

    proptest! {
        #[test]
        fn stanza_ends_pair_with_field_lines(bytes in proptest::collection::vec(
            prop_oneof![Just(b'\n'), Just(b' '), Just(b'\r'), Just(b'a'), Just(b':')], 0..200,
        )) {
            let mut open: Option<usize> = None;
            let mut last = 0;
            let mut too_long = false;
            for event in Reader::new(&bytes, 16) {
                let Ok(event) = event else {
                    too_long = true;
                    break;
                };
                match event {
                    Event::Field(line) => {
                        prop_assert!(line.number > last);
                        last = line.number;
                        open.get_or_insert(line.number);
                    }
                    Event::Continuation(line) => {
                        prop_assert!(open.is_some());
                        last = line.number;
                    }
                    Event::OrphanContinuation(line) => {
                        prop_assert!(open.is_none());
                        last = line.number;
                    }
                    Event::End { start, line } => {
                        prop_assert_eq!(open.take(), Some(start));
                        prop_assert!(line >= last);
                    }
                }
            }
            prop_assert!(too_long || open.is_none());
        }
    }
}
