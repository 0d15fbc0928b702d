//! simplestreams item filters: `key=value`, `key!=value`, `key~regex`, `key!~regex`, ANDed,
//! each matched against an item's flattened attributes (a missing key reads as the empty string).
//!
//! The grammar is that of the stock tools (`simplestreams/filters.py`,
//! <https://git.launchpad.net/simplestreams>): the key is `[A-Za-z0-9_|-]+`, the operator
//! directly follows it, and the value is the rest of the argument. A regex matches anywhere in
//! the value (Python's `re.search`), so `release~24` matches `24.10.5`; anchor with `^…$` for
//! a whole match.

use std::collections::BTreeMap;

use regex::Regex;

/// Most filters on one command line.
pub const MAX_FILTERS: usize = 64;
/// Longest filter, in bytes.
pub const MAX_FILTER_LEN: usize = 1024;
/// Largest compiled regex, in bytes (the regex crate's own unit).
const MAX_REGEX_SIZE: usize = 1 << 20;

/// Why a filter does not parse.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    /// Not `key<op>value`.
    #[error(
        "filter `{filter}` is not `key=value`, `key!=value`, `key~regex` or `key!~regex` (key: letters, digits, `_`, `-`, `|`)"
    )]
    Syntax {
        /// The filter (truncated).
        filter: String,
    },
    /// The regex does not compile.
    #[error("filter `{filter}` has an invalid regex")]
    Regex {
        /// The filter (truncated).
        filter: String,
        /// The regex compiler's complaint.
        #[source]
        source: regex::Error,
    },
    /// Too many filters, or one too long.
    #[error("at most {MAX_FILTERS} filters of at most {MAX_FILTER_LEN} bytes each are accepted")]
    TooMany,
}

/// One filter.
#[derive(Debug, Clone)]
pub struct Filter {
    key: String,
    test: Test,
    negated: bool,
}

#[derive(Debug, Clone)]
enum Test {
    Equal(String),
    Search(Regex),
}

impl Filter {
    /// Parses `key<op>value`.
    pub fn parse(text: &str) -> Result<Self, FilterError> {
        if text.len() > MAX_FILTER_LEN {
            return Err(FilterError::TooMany);
        }
        let syntax = || FilterError::Syntax {
            filter: super::format::truncate(text),
        };
        let key_end = text
            .find(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | '|' | '-')))
            .ok_or_else(syntax)?;
        let (key, rest) = text.split_at_checked(key_end).ok_or_else(syntax)?;
        if key.is_empty() {
            return Err(syntax());
        }
        let (negated, rest) = match rest.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, rest),
        };
        let test = if let Some(value) = rest.strip_prefix('=') {
            Test::Equal(value.to_owned())
        } else if let Some(pattern) = rest.strip_prefix('~') {
            let regex = regex::RegexBuilder::new(pattern)
                .size_limit(MAX_REGEX_SIZE)
                .build()
                .map_err(|source| FilterError::Regex {
                    filter: super::format::truncate(text),
                    source,
                })?;
            Test::Search(regex)
        } else {
            return Err(syntax());
        };
        Ok(Self {
            key: key.to_owned(),
            test,
            negated,
        })
    }

    /// Whether the flattened item passes.
    pub fn matches(&self, item: &BTreeMap<String, String>) -> bool {
        let value = item.get(&self.key).map_or("", String::as_str);
        let hit = match &self.test {
            Test::Equal(wanted) => value == wanted,
            Test::Search(regex) => regex.is_match(value),
        };
        hit != self.negated
    }
}

/// Parses every filter of a command line.
pub fn parse_all(texts: &[String]) -> Result<Vec<Filter>, FilterError> {
    if texts.len() > MAX_FILTERS {
        return Err(FilterError::TooMany);
    }
    texts.iter().map(|text| Filter::parse(text)).collect()
}

/// Whether the item passes every filter.
pub fn matches_all(filters: &[Filter], item: &BTreeMap<String, String>) -> bool {
    filters.iter().all(|filter| filter.matches(item))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item() -> BTreeMap<String, String> {
        [
            ("release", "24.10.5"),
            ("ftype", "sysupgrade"),
            ("target", "ath79"),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
    }

    #[test]
    fn the_four_operators_match_as_the_stock_tools_do() {
        let item = item();
        let check = |filter: &str| Filter::parse(filter).unwrap().matches(&item);
        assert!(check("ftype=sysupgrade"));
        assert!(!check("ftype=factory"));
        assert!(check("ftype!=factory"));
        assert!(
            check("release~24"),
            "a regex searches, it need not match whole"
        );
        assert!(!check("release~^10"));
        assert!(check("release!~^23"));
        assert!(check("missing="), "a missing key reads as empty");
        assert!(check("missing!~."));
        assert!(!check("release=24.10.5=x"));
    }

    #[test]
    fn filters_are_anded() {
        let filters = parse_all(&["target=ath79".to_owned(), "ftype=factory".to_owned()]).unwrap();
        assert!(!matches_all(&filters, &item()));
        assert!(matches_all(&filters[..1], &item()));
    }

    #[test]
    fn rejects_what_is_not_a_filter() {
        for text in ["ftype", "=x", "!=x", "ftype<x", "ftype!x"] {
            let error = Filter::parse(text).unwrap_err();
            assert!(matches!(error, FilterError::Syntax { .. }), "{text}");
        }
        assert_eq!(
            Filter::parse("ftype").unwrap_err().to_string(),
            "filter `ftype` is not `key=value`, `key!=value`, `key~regex` or `key!~regex` (key: letters, digits, `_`, `-`, `|`)"
        );
        assert!(matches!(
            Filter::parse("release~(").unwrap_err(),
            FilterError::Regex { .. }
        ));
        let many = vec!["a=b".to_owned(); MAX_FILTERS + 1];
        assert!(matches!(
            parse_all(&many).unwrap_err(),
            FilterError::TooMany
        ));
    }
}
