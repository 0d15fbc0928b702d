//! Short, printable excerpts of untrusted text, for error messages.
//!
//! Errors quote back what was wrong: a package name from the router's database, a line of a
//! `Packages` index, a key file name, the body of a server's error reply. That text comes from
//! outside, so before it goes into a message it is
//!
//! - **cut** to a character limit (never inside a character), so a megabyte-long line cannot
//!   become a megabyte-long message, with `…` marking that something was cut;
//! - **made visible**: control characters (a newline, an escape sequence that would recolour or
//!   clear a terminal) and the Unicode bidirectional overrides (which reorder what a reader sees,
//!   <https://trojansource.codes/>) are written as Rust-style escapes (`\n`, `\u{1b}`,
//!   `\u{202e}`), so the message shows what the input held and cannot rewrite the screen.
//!
//! [`excerpt`] is for one value or one line; [`excerpt_lines`] keeps line breaks and tabs, for
//! multi-line text such as a build's output. Invalid UTF-8 goes through [`excerpt_bytes`], which
//! shows each bad sequence as `\u{fffd}` (the replacement character).
//!
//! Every module of this crate, the agent, the bridge and the server use these; there is no other
//! place that shortens text for a message.

/// Limit for one value: a name, a version, a field, a file name.
pub const MAX_VALUE_CHARS: usize = 64;

/// Limit for one line of a file: an index line, a feed line.
pub const MAX_LINE_CHARS: usize = 120;

/// Marks that an excerpt was cut.
pub const ELLIPSIS: char = '…';

/// At most `max_chars` characters of `text`, control characters escaped, `…` if cut.
///
/// The limit counts characters of `text`, not of the result: an escape such as `\u{1b}` counts
/// as the one character it stands for, and the `…` is added after the limit.
///
/// ```
/// use attendant_proto::excerpt::excerpt;
///
/// assert_eq!(excerpt("luci-app-foo", 64), "luci-app-foo");
/// assert_eq!(excerpt("a\nb\x1b[2J", 64), "a\\nb\\u{1b}[2J");
/// assert_eq!(excerpt("abcdef", 3), "abc…");
/// ```
pub fn excerpt(text: &str, max_chars: usize) -> String {
    shorten(text, max_chars, |_| false)
}

/// [`excerpt`] of bytes that should be UTF-8; invalid sequences become `\u{fffd}`.
pub fn excerpt_bytes(bytes: &[u8], max_chars: usize) -> String {
    excerpt(&String::from_utf8_lossy(bytes), max_chars)
}

/// [`excerpt`] that keeps line breaks (`\n`) and tabs, for multi-line text (a build's output,
/// a server's multi-line error detail); every other control character is still escaped.
///
/// ```
/// use attendant_proto::excerpt::excerpt_lines;
///
/// assert_eq!(excerpt_lines("make: ***\n\tError 1\r\n", 64), "make: ***\n\tError 1\\r\n");
/// ```
pub fn excerpt_lines(text: &str, max_chars: usize) -> String {
    shorten(text, max_chars, |c| c == '\n' || c == '\t')
}

fn shorten(text: &str, max_chars: usize, keep: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars.saturating_mul(4)));
    let mut chars = text.chars();
    for c in chars.by_ref().take(max_chars) {
        if hidden(c) && !keep(c) {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    if chars.next().is_some() {
        out.push(ELLIPSIS);
    }
    out
}

/// Characters that would not show as themselves: C0/C1 controls (`char::is_control`) and the
/// bidirectional embeddings, overrides and isolates.
fn hidden(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn short_text_is_unchanged() {
        assert_eq!(excerpt("", 4), "");
        assert_eq!(excerpt("abcd", 4), "abcd");
        assert_eq!(excerpt("über", 4), "über");
    }

    #[test]
    fn long_text_is_cut_at_a_character_and_marked() {
        assert_eq!(excerpt("abcde", 4), "abcd…");
        assert_eq!(excerpt("ääääää", 2), "ää…");
        assert_eq!(excerpt("abc", 0), "…");
        let long = "x".repeat(200);
        assert_eq!(
            excerpt(&long, MAX_VALUE_CHARS).chars().count(),
            MAX_VALUE_CHARS + 1
        );
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(excerpt("a\nb", 64), "a\\nb");
        assert_eq!(excerpt("a\r\tb\0", 64), "a\\r\\tb\\0");
        assert_eq!(excerpt("\x1b[31mred", 64), "\\u{1b}[31mred");
        assert_eq!(excerpt("\u{9b}", 64), "\\u{9b}");
    }

    #[test]
    fn bidirectional_overrides_are_escaped() {
        assert_eq!(excerpt("abc\u{202e}fed", 64), "abc\\u{202e}fed");
        assert_eq!(excerpt("\u{2066}x\u{2069}", 64), "\\u{2066}x\\u{2069}");
    }

    #[test]
    fn escapes_count_as_one_character_of_the_limit() {
        assert_eq!(excerpt("\n\n\n", 2), "\\n\\n…");
    }

    #[test]
    fn quotes_and_backslashes_stay_as_they_are() {
        assert_eq!(excerpt(r#"a"b'c\d"#, 64), r#"a"b'c\d"#);
    }

    #[test]
    fn invalid_utf8_becomes_the_replacement_character() {
        assert_eq!(excerpt_bytes(&[0xff, b'<', b'x'], 64), "\u{fffd}<x");
        assert_eq!(excerpt_bytes(b"a\nb", 64), "a\\nb");
    }

    #[test]
    fn excerpt_lines_keeps_line_breaks_and_tabs_only() {
        assert_eq!(excerpt_lines("a\nb\tc", 64), "a\nb\tc");
        assert_eq!(excerpt_lines("a\r\n\x1b[2J", 64), "a\\r\n\\u{1b}[2J");
        assert_eq!(excerpt_lines("line\nline\n", 6), "line\nl…");
    }

    proptest! {
        #[test]
        fn excerpt_never_holds_a_raw_control_character(text in any::<String>(), max in 0usize..80) {
            let out = excerpt(&text, max);
            prop_assert!(!out.chars().any(hidden));
            if text.chars().count() > max {
                prop_assert!(out.ends_with(ELLIPSIS));
            } else {
                prop_assert_eq!(out, excerpt(&text, usize::MAX));
            }
        }

        #[test]
        fn text_within_the_limit_without_controls_is_kept(text in "[a-zA-Z0-9 äü€-]{0,40}") {
            prop_assert_eq!(excerpt(&text, 40), text);
        }
    }
}
