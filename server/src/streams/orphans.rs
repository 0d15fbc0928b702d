//! Orphan bookkeeping, as MAAS's `meph2-util find-orphans` / `reap-orphans` keep it
//! (<https://github.com/canonical/maas-images>, `meph2/commands/meph2_util.py`): a JSON object
//! `{ "<path relative to the data directory>": "<RFC 2822 time first seen orphaned>" }`.
//!
//! [`update`] keeps the first-seen time of a file that stays orphaned, adds new orphans with
//! `now` and drops files that are referenced again; [`due`] picks the entries orphaned for
//! longer than the grace period. The grace period protects a client that read the previous
//! index and is still downloading a file the new one dropped. Nothing here does I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::format::{parse_rfc2822, rfc2822};

/// Largest orphans file read, in bytes.
pub const MAX_ORPHANS_LEN: usize = 64 << 20;
/// The default of `reap-orphans --older`.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3 * 86_400);

/// Why an orphans file or an age does not parse.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OrphansError {
    /// Not a JSON object of strings.
    #[error("the orphans file is not a JSON object of `path: RFC 2822 time` entries")]
    Json(#[source] serde_json::Error),
    /// A time does not parse.
    #[error(
        "the orphans file has time `{time}` for `{path}`, expected RFC 2822 (`Sun, 06 Dec 2026 14:48:00 +0000`)"
    )]
    Time {
        /// The path.
        path: String,
        /// The time (truncated).
        time: String,
    },
    /// The file is larger than [`MAX_ORPHANS_LEN`].
    #[error("the orphans file is larger than {MAX_ORPHANS_LEN} bytes")]
    TooLarge,
    /// `--older` does not parse.
    #[error(
        "age `{found}` is not a sum of `<n>d`, `<n>h`, `<n>m`, `<n>s` (e.g. `3d`, `1d12h`; a bare number means days)"
    )]
    Age {
        /// The text (truncated).
        found: String,
    },
}

/// Orphaned files and when each was first seen orphaned (Unix seconds).
pub type Orphans = BTreeMap<String, i64>;

/// Parses an orphans file.
pub fn parse(bytes: &[u8]) -> Result<Orphans, OrphansError> {
    if bytes.len() > MAX_ORPHANS_LEN {
        return Err(OrphansError::TooLarge);
    }
    let raw: BTreeMap<String, String> =
        serde_json::from_slice(bytes).map_err(OrphansError::Json)?;
    raw.into_iter()
        .map(|(path, time)| match parse_rfc2822(&time) {
            Some(seen) => Ok((path, seen)),
            None => Err(OrphansError::Time {
                path: super::format::truncate(&path),
                time: super::format::truncate(&time),
            }),
        })
        .collect()
}

/// The file's bytes: one entry per line, sorted, a final newline.
pub fn encode(orphans: &Orphans) -> Vec<u8> {
    let raw: BTreeMap<&str, String> = orphans
        .iter()
        .map(|(path, seen)| (path.as_str(), rfc2822(*seen)))
        .collect();
    super::format::encode(&raw)
}

/// The new bookkeeping: every file of `files` not in `referenced`, with its earlier first-seen
/// time or `now`.
pub fn update(
    previous: &Orphans,
    files: impl IntoIterator<Item = String>,
    referenced: &BTreeSet<String>,
    now: i64,
) -> Orphans {
    files
        .into_iter()
        .filter(|file| !referenced.contains(file))
        .map(|file| {
            let seen = previous.get(&file).copied().unwrap_or(now);
            (file, seen)
        })
        .collect()
}

/// The entries orphaned for longer than `grace` at `now`, never one in `referenced`.
pub fn due<'a>(
    orphans: &'a Orphans,
    referenced: &'a BTreeSet<String>,
    now: i64,
    grace: Duration,
) -> impl Iterator<Item = (&'a str, i64)> {
    let grace = i64::try_from(grace.as_secs()).unwrap_or(i64::MAX);
    orphans.iter().filter_map(move |(path, seen)| {
        let old_enough = seen.saturating_add(grace) <= now;
        (old_enough && !referenced.contains(path)).then_some((path.as_str(), *seen))
    })
}

/// Parses `--older`: `3d`, `1d12h`, `90m`, `0`, a bare number meaning days.
pub fn parse_age(text: &str) -> Result<Duration, OrphansError> {
    let bad = || OrphansError::Age {
        found: super::format::truncate(text),
    };
    if text.is_empty() || text.len() > 32 {
        return Err(bad());
    }
    if text.bytes().all(|byte| byte.is_ascii_digit()) {
        let days: u64 = text.parse().map_err(|_| bad())?;
        return days
            .checked_mul(86_400)
            .map(Duration::from_secs)
            .ok_or_else(bad);
    }
    let mut total: u64 = 0;
    let mut number: Option<u64> = None;
    for character in text.chars() {
        if let Some(digit) = character.to_digit(10) {
            let so_far = number.unwrap_or(0);
            number = Some(
                so_far
                    .checked_mul(10)
                    .and_then(|n| n.checked_add(u64::from(digit)))
                    .ok_or_else(bad)?,
            );
            continue;
        }
        let unit = match character {
            'd' => 86_400,
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        let seconds = number
            .take()
            .ok_or_else(bad)?
            .checked_mul(unit)
            .ok_or_else(bad)?;
        total = total.checked_add(seconds).ok_or_else(bad)?;
    }
    if number.is_some() {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(paths: &[&str]) -> BTreeSet<String> {
        paths.iter().map(|path| (*path).to_owned()).collect()
    }

    #[test]
    fn keeps_first_seen_times_and_drops_files_referenced_again() {
        let first = update(
            &Orphans::new(),
            ["a".into(), "b".into(), "c".into()],
            &set(&["c"]),
            100,
        );
        assert_eq!(first, Orphans::from([("a".into(), 100), ("b".into(), 100)]));
        let second = update(
            &first,
            ["a".into(), "b".into(), "d".into()],
            &set(&["b"]),
            200,
        );
        assert_eq!(
            second,
            Orphans::from([("a".into(), 100), ("d".into(), 200)])
        );
    }

    #[test]
    fn due_respects_the_grace_and_the_references() {
        let orphans = Orphans::from([("old".into(), 0), ("young".into(), 90), ("kept".into(), 0)]);
        let kept = set(&["kept"]);
        let due: Vec<_> = due(&orphans, &kept, 100, Duration::from_secs(50)).collect();
        assert_eq!(due, [("old", 0)]);
        assert_eq!(
            super::due(&orphans, &BTreeSet::new(), 100, Duration::ZERO).count(),
            3,
            "--older 0 reaps everything"
        );
    }

    #[test]
    fn the_file_round_trips_with_rfc2822_times() {
        let orphans = Orphans::from([("aa/x".into(), 1_796_568_480)]);
        let bytes = encode(&orphans);
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            "{\n \"aa/x\": \"Sun, 06 Dec 2026 14:48:00 +0000\"\n}\n"
        );
        assert_eq!(parse(&bytes).unwrap(), orphans);
        assert!(matches!(
            parse(br#"{"a":"tuesday"}"#).unwrap_err(),
            OrphansError::Time { .. }
        ));
        assert!(matches!(parse(b"[]").unwrap_err(), OrphansError::Json(_)));
    }

    #[test]
    fn ages_are_meph2_util_s() {
        assert_eq!(parse_age("3d").unwrap(), Duration::from_secs(3 * 86_400));
        assert_eq!(parse_age("1d12h").unwrap(), Duration::from_secs(36 * 3600));
        assert_eq!(parse_age("2").unwrap(), Duration::from_secs(2 * 86_400));
        assert_eq!(parse_age("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_age("90s").unwrap(), Duration::from_secs(90));
        for bad in ["", "d", "3x", "3d4", "-1d", "99999999999999999999d"] {
            assert!(parse_age(bad).is_err(), "{bad}");
        }
    }
}
