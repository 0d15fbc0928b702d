//! Points in time as Unix seconds, and the UTC date text of channel metadata.
//!
//! Ubuntu's system-image server writes `generated_at` as `strftime("%a %b %d %H:%M:%S UTC %Y")`
//! of UTC (<https://github.com/xfonelabs/system-image-server>, `lib/systemimage/tree.py`), e.g. `Sun Dec 06 11:45:00 UTC 2026`. Attendant's channel metadata keeps that spelling for
//! `generated_at` and `expires` ([`crate::channel`]), and ucert messages ([`crate::ucert`]) show
//! certificate windows the same way.
//!
//! [`Timestamp`] is a Unix second within the years 1970 to 9999, the range the text can spell
//! (a four-digit year, nothing before the epoch), so every `Timestamp` has a text form and
//! [`Timestamp::parse`] is its exact inverse: English day and month names, two-digit fields, the
//! literal `UTC`, and a weekday that must match the date. The conversion is the proleptic
//! Gregorian calendar without leap seconds, as Unix time is
//! (<https://howardhinnant.github.io/date_algorithms.html>, `days_from_civil`).

use std::fmt;

use crate::excerpt::{MAX_VALUE_CHARS, excerpt};

/// Length of the text form, e.g. `Sun Dec 06 11:45:00 UTC 2026`.
pub const TEXT_LEN: usize = 28;

/// The first second [`Timestamp`] accepts (`Thu Jan 01 00:00:00 UTC 1970`).
pub const MIN_UNIX: i64 = 0;

/// The last second [`Timestamp`] accepts (`Fri Dec 31 23:59:59 UTC 9999`).
pub const MAX_UNIX: i64 = 253_402_300_799;

const SECONDS_PER_DAY: i64 = 86_400;
const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Why a time or its text form was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimestampError {
    /// The Unix second lies before 1970 or after 9999.
    #[error("time {unix} is outside the years 1970 to 9999")]
    OutOfRange {
        /// The refused Unix second.
        unix: i64,
    },
    /// The text is not `%a %b %d %H:%M:%S UTC %Y` of a real date.
    #[error("`{text}` is not a UTC date like `Sun Dec 06 11:45:00 UTC 2026`: {rule}")]
    BadText {
        /// The text, shortened.
        text: String,
        /// Which part is wrong.
        rule: &'static str,
    },
}

/// A Unix second between [`MIN_UNIX`] and [`MAX_UNIX`]; `Display` writes the system-image text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The time `unix` seconds after the epoch.
    pub fn from_unix(unix: i64) -> Result<Self, TimestampError> {
        if (MIN_UNIX..=MAX_UNIX).contains(&unix) {
            Ok(Self(unix))
        } else {
            Err(TimestampError::OutOfRange { unix })
        }
    }

    /// Seconds since the epoch.
    pub fn unix(self) -> i64 {
        self.0
    }

    /// Parse `Sun Dec 06 11:45:00 UTC 2026` (the exact form [`Display`](fmt::Display) writes).
    pub fn parse(text: &str) -> Result<Self, TimestampError> {
        let bad = |rule| TimestampError::BadText {
            text: excerpt(text, MAX_VALUE_CHARS),
            rule,
        };
        if text.len() != TEXT_LEN || !text.is_ascii() {
            return Err(bad("expected 28 ASCII characters"));
        }
        let part = |from: usize, to: usize| text.get(from..to).unwrap_or_default();
        let separators = [
            (3, " "),
            (7, " "),
            (10, " "),
            (13, ":"),
            (16, ":"),
            (19, " UTC "),
        ];
        if separators
            .iter()
            .any(|&(at, separator)| part(at, at + separator.len()) != separator)
        {
            return Err(bad("expected `Www Mmm DD HH:MM:SS UTC YYYY`"));
        }
        let month = MONTHS
            .iter()
            .position(|name| *name == part(4, 7))
            .ok_or_else(|| bad("unknown month name"))?;
        let number = |from, to| {
            let digits = part(from, to);
            if digits.bytes().all(|b| b.is_ascii_digit()) {
                digits.parse::<i64>().map_err(|_| bad("expected digits"))
            } else {
                Err(bad("expected digits"))
            }
        };
        let (day, hour, minute, second, year) = (
            number(8, 10)?,
            number(11, 13)?,
            number(14, 16)?,
            number(17, 19)?,
            number(24, 28)?,
        );
        let month = i64::try_from(month).map_err(|_| bad("unknown month name"))? + 1;
        if year < 1970 || day < 1 || day > days_in_month(year, month) {
            return Err(bad("no such date"));
        }
        if hour > 23 || minute > 59 || second > 59 {
            return Err(bad("no such time of day"));
        }
        let days = days_from_civil(year, month, day);
        let unix = days * SECONDS_PER_DAY + hour * 3600 + minute * 60 + second;
        if WEEKDAYS.get(weekday(days)).copied() != Some(part(0, 3)) {
            return Err(bad("the weekday does not match the date"));
        }
        Self::from_unix(unix).map_err(|_| bad("no such date"))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.0.div_euclid(SECONDS_PER_DAY);
        let second_of_day = self.0.rem_euclid(SECONDS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        let month_name = usize::try_from(month - 1)
            .ok()
            .and_then(|index| MONTHS.get(index))
            .copied()
            .unwrap_or("???");
        write!(
            f,
            "{} {month_name} {day:02} {:02}:{:02}:{:02} UTC {year:04}",
            WEEKDAYS.get(weekday(days)).copied().unwrap_or("???"),
            second_of_day / 3600,
            second_of_day % 3600 / 60,
            second_of_day % 60,
        )
    }
}

/// 0 = Sunday; day 0 (1970-01-01) was a Thursday.
fn weekday(days: i64) -> usize {
    usize::try_from((days + 4).rem_euclid(7)).unwrap_or(0)
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of [`days_from_civil`] (Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(unix: i64) -> String {
        Timestamp::from_unix(unix).unwrap().to_string()
    }

    #[test]
    fn writes_system_image_text() {
        assert_eq!(text(0), "Thu Jan 01 00:00:00 UTC 1970");
        // `date -u -d @1796557500 '+%a %b %d %H:%M:%S UTC %Y'`
        assert_eq!(text(1_796_557_500), "Sun Dec 06 11:45:00 UTC 2026");
        assert_eq!(text(951_782_400), "Tue Feb 29 00:00:00 UTC 2000");
        assert_eq!(text(MAX_UNIX), "Fri Dec 31 23:59:59 UTC 9999");
    }

    #[test]
    fn parses_what_it_writes() {
        for unix in [
            0,
            59,
            86_399,
            951_782_400,
            1_796_557_500,
            4_102_444_800,
            MAX_UNIX,
        ] {
            let time = Timestamp::from_unix(unix).unwrap();
            assert_eq!(Timestamp::parse(&time.to_string()), Ok(time), "{unix}");
        }
        let mut unix = 0;
        while unix < MAX_UNIX {
            let time = Timestamp::from_unix(unix).unwrap();
            assert_eq!(Timestamp::parse(&time.to_string()), Ok(time), "{unix}");
            unix += 7_777_777;
        }
    }

    #[test]
    fn rejects_times_outside_the_text_range() {
        assert_eq!(
            Timestamp::from_unix(-1).unwrap_err().to_string(),
            "time -1 is outside the years 1970 to 9999"
        );
        assert!(Timestamp::from_unix(MAX_UNIX + 1).is_err());
    }

    #[test]
    fn rejects_malformed_text() {
        let cases = [
            ("", "expected 28 ASCII characters"),
            (
                "Sun Dec 06 11:45:00 GMT 2026",
                "expected `Www Mmm DD HH:MM:SS UTC YYYY`",
            ),
            ("Sun Dez 06 11:45:00 UTC 2026", "unknown month name"),
            ("Sun Dec +6 11:45:00 UTC 2026", "expected digits"),
            ("Sun Feb 29 11:45:00 UTC 2026", "no such date"),
            ("Sun Dec 00 11:45:00 UTC 2026", "no such date"),
            ("Sun Dec 06 24:45:00 UTC 2026", "no such time of day"),
            ("Sun Dec 06 11:45:60 UTC 2026", "no such time of day"),
            (
                "Mon Dec 06 11:45:00 UTC 2026",
                "the weekday does not match the date",
            ),
            ("Sat Dec 06 11:45:00 UTC 1969", "no such date"),
            (
                "Sun Dec 06 11:45:00 UTC 2026\n",
                "expected 28 ASCII characters",
            ),
        ];
        for (input, rule) in cases {
            match Timestamp::parse(input) {
                Err(TimestampError::BadText { rule: found, .. }) => {
                    assert_eq!(found, rule, "{input:?}");
                }
                other => panic!("{input:?}: {other:?}"),
            }
        }
        assert_eq!(
            Timestamp::parse("yesterday").unwrap_err().to_string(),
            "`yesterday` is not a UTC date like `Sun Dec 06 11:45:00 UTC 2026`: expected 28 \
             ASCII characters"
        );
    }
}
