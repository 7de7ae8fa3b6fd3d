//! restic's calendar durations (`1y2m3d4h`): parsing, display and stepping back in time.
//!
//! Years, months and days are calendar steps taken the way Go's `time.AddDate` takes them
//! (restic relies on it): the month moves first, then the day overflows into the next month,
//! so one month back from 31 March is "31 February", which is 3 March (2 March in a leap
//! year). Hours are exact. The arithmetic works on wall-clock time; choosing the wall clock
//! (zone, offset) is the caller's business. Nothing here knows about policies.

use std::fmt;

use chrono::{Datelike as _, Days, NaiveDate, NaiveDateTime, TimeDelta};

/// A duration as restic's `--keep-within*` options take it: whole years, months, days and
/// hours. Each part is a calendar step, not a fixed number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RetentionDuration {
    /// Calendar years (`y`).
    pub years: u32,
    /// Calendar months (`m`; restic has no minutes here).
    pub months: u32,
    /// Calendar days (`d`).
    pub days: u32,
    /// Exact hours (`h`).
    pub hours: u32,
}

/// Why a duration did not parse. Each message quotes the whole input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// A number is followed by a character that is not `y`, `m`, `d` or `h`.
    #[error("{input:?}: unknown unit '{unit}' (use y, m, d or h, e.g. 1y2m3d4h)")]
    UnknownUnit {
        /// The text that was parsed.
        input: String,
        /// The offending character.
        unit: char,
    },
    /// The text ends with a number that has no unit.
    #[error("{input:?}: no unit after {number} (use y, m, d or h, e.g. 1y2m3d4h)")]
    MissingUnit {
        /// The text that was parsed.
        input: String,
        /// The number left without a unit.
        number: u64,
    },
    /// A unit or other character stands where a number must be.
    #[error("{input:?}: expected a number at {rest:?} (e.g. 1y2m3d4h)")]
    MissingNumber {
        /// The text that was parsed.
        input: String,
        /// The unparsed rest, starting at the problem.
        rest: String,
    },
    /// A part is negative. restic accepts `-1d`, but a window that ends after the newest
    /// snapshot has no use, so Cairn refuses it.
    #[error("{input:?}: durations cannot be negative")]
    Negative {
        /// The text that was parsed.
        input: String,
    },
    /// A number does not fit (more than 4294967295).
    #[error("{input:?}: {digits} is too large")]
    TooLarge {
        /// The text that was parsed.
        input: String,
        /// The digits of the number.
        digits: String,
    },
}

/// Parses restic's duration form: one or more `<digits><unit>` parts with units `y` (years),
/// `m` (months), `d` (days) and `h` (hours), e.g. `7d`, `1y2m3d4h`, `2m2h`.
///
/// Like restic: surrounding whitespace is ignored, parts may come in any order, a repeated
/// unit keeps the last value, and the empty string is the zero duration (which a policy
/// treats as "unset"). Unlike restic, negative parts are an error.
pub fn parse_duration(input: &str) -> Result<RetentionDuration, DurationError> {
    let mut duration = RetentionDuration::default();
    let mut rest = input.trim();
    while !rest.is_empty() {
        if rest.starts_with('-') {
            return Err(DurationError::Negative { input: input.to_owned() });
        }
        let digits_end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let (digits, after) = rest.split_at(digits_end);
        if digits.is_empty() {
            return Err(DurationError::MissingNumber { input: input.to_owned(), rest: rest.to_owned() });
        }
        let number: u32 = digits
            .parse()
            .map_err(|_| DurationError::TooLarge { input: input.to_owned(), digits: digits.to_owned() })?;
        let mut chars = after.chars();
        let part = match chars.next() {
            None => {
                return Err(DurationError::MissingUnit {
                    input: input.to_owned(),
                    number: u64::from(number),
                });
            }
            Some('y') => &mut duration.years,
            Some('m') => &mut duration.months,
            Some('d') => &mut duration.days,
            Some('h') => &mut duration.hours,
            Some(unit) => {
                return Err(DurationError::UnknownUnit { input: input.to_owned(), unit });
            }
        };
        *part = number;
        rest = chars.as_str();
    }
    Ok(duration)
}

impl RetentionDuration {
    /// True when every part is zero; restic treats such a duration as "not set".
    pub fn is_zero(&self) -> bool {
        self.years == 0 && self.months == 0 && self.days == 0 && self.hours == 0
    }

    /// The wall-clock time this duration before `t`, as restic computes it:
    /// `t.AddDate(-years, -months, -days).Add(-hours)`. `None` when the result falls outside
    /// the representable calendar (the caller then treats the window as unbounded).
    pub fn before(&self, t: NaiveDateTime) -> Option<NaiveDateTime> {
        let date = t.date();
        // Go normalises the month first (carrying into the year), then lets the day run over
        // from the first of that month.
        let month0 = i64::from(date.month0()) - i64::from(self.months);
        let year = i64::from(date.year()) - i64::from(self.years) + month0.div_euclid(12);
        let month = u32::try_from(month0.rem_euclid(12)).ok()? + 1;
        let first = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, 1)?;
        let day_offset = i64::from(date.day0()) - i64::from(self.days);
        let day = if day_offset >= 0 {
            first.checked_add_days(Days::new(day_offset.unsigned_abs()))?
        } else {
            first.checked_sub_days(Days::new(day_offset.unsigned_abs()))?
        };
        day.and_time(t.time()).checked_sub_signed(TimeDelta::try_hours(i64::from(self.hours))?)
    }
}

impl fmt::Display for RetentionDuration {
    /// restic's spelling: the non-zero parts in `y m d h` order, e.g. `1y2m3d3h`, `7d`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (value, unit) in [(self.years, 'y'), (self.months, 'm'), (self.days, 'd'), (self.hours, 'h')] {
            if value != 0 {
                write!(f, "{value}{unit}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(years: u32, months: u32, days: u32, hours: u32) -> RetentionDuration {
        RetentionDuration { years, months, days, hours }
    }

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").expect("test time")
    }

    #[test]
    fn parses_restic_forms() {
        assert_eq!(parse_duration("7d"), Ok(d(0, 0, 7, 0)));
        assert_eq!(parse_duration("1y2m3d4h"), Ok(d(1, 2, 3, 4)));
        assert_eq!(parse_duration("1y1d1m"), Ok(d(1, 1, 1, 0)));
        assert_eq!(parse_duration("13d23h"), Ok(d(0, 0, 13, 23)));
        assert_eq!(parse_duration("  2m2h "), Ok(d(0, 2, 0, 2)));
        assert_eq!(parse_duration("9999y"), Ok(d(9999, 0, 0, 0)));
        assert_eq!(parse_duration("1d2d"), Ok(d(0, 0, 2, 0)));
        assert_eq!(parse_duration(""), Ok(d(0, 0, 0, 0)));
        assert!(parse_duration("0d").map(|d| d.is_zero()).unwrap_or(false));
    }

    #[test]
    fn rejects_what_restic_rejects_and_negatives() {
        assert_eq!(
            parse_duration("7x").map_err(|e| e.to_string()),
            Err("\"7x\": unknown unit 'x' (use y, m, d or h, e.g. 1y2m3d4h)".to_owned())
        );
        assert!(matches!(parse_duration("7"), Err(DurationError::MissingUnit { number: 7, .. })));
        assert!(matches!(parse_duration("d"), Err(DurationError::MissingNumber { .. })));
        assert!(matches!(parse_duration("1d 2h"), Err(DurationError::MissingNumber { .. })));
        assert!(matches!(parse_duration("7D"), Err(DurationError::UnknownUnit { unit: 'D', .. })));
        assert!(matches!(parse_duration("-1d"), Err(DurationError::Negative { .. })));
        assert!(matches!(parse_duration("99999999999d"), Err(DurationError::TooLarge { .. })));
        assert!(matches!(parse_duration("1w"), Err(DurationError::UnknownUnit { unit: 'w', .. })));
        assert!(matches!(parse_duration("٣d"), Err(DurationError::MissingNumber { .. })));
    }

    #[test]
    fn displays_like_restic() {
        assert_eq!(d(1, 1, 1, 0).to_string(), "1y1m1d");
        assert_eq!(d(0, 0, 13, 23).to_string(), "13d23h");
        assert_eq!(d(0, 0, 0, 0).to_string(), "");
    }

    #[test]
    fn steps_back_like_go_add_date() {
        // 31 March minus one month is "31 February": 3 March, or 2 March in a leap year.
        assert_eq!(d(0, 1, 0, 0).before(at("2021-03-31 10:00:00")), Some(at("2021-03-03 10:00:00")));
        assert_eq!(d(0, 1, 0, 0).before(at("2020-03-31 10:00:00")), Some(at("2020-03-02 10:00:00")));
        // Months carry into years; days run back over month ends.
        assert_eq!(d(1, 2, 3, 3).before(at("2016-01-18 12:02:03")), Some(at("2014-11-15 09:02:03")));
        assert_eq!(d(0, 0, 20, 0).before(at("2016-01-18 12:02:03")), Some(at("2015-12-29 12:02:03")));
        assert_eq!(d(0, 0, 0, 49).before(at("2016-01-01 00:30:00")), Some(at("2015-12-29 23:30:00")));
        // Leap day one year back: 29 February 2015 is 1 March.
        assert_eq!(d(1, 0, 0, 0).before(at("2016-02-29 00:00:00")), Some(at("2015-03-01 00:00:00")));
        assert_eq!(d(9999, 0, 0, 0).before(at("2016-01-18 12:02:03")), Some(at("-7983-01-18 12:02:03")));
        assert_eq!(d(4_000_000, 0, 0, 0).before(at("2016-01-18 12:02:03")), None);
    }
}
