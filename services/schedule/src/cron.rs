//! Five-field cron expressions (`minute hour day-of-month month day-of-week`), Vixie-cron dialect.
//!
//! Lists, `a-b` ranges, `/step` after `*` or a range, three-letter month and weekday names
//! (any case), 0 and 7 both Sunday, and the aliases `@hourly @daily @midnight @weekly
//! @monthly @yearly @annually`. Like Vixie cron, a day field counts as unrestricted when its
//! text starts with `*` (so `*/2` is "unrestricted" too); when neither day field is, a day
//! matches if *either* matches (the classic OR rule), otherwise both must. Vixie's rejections
//! are kept: a step after a single value (`5/10`), reversed ranges, step 0, `@reboot`.
//!
//! The search works on wall-clock fields; [`crate::zone`] turns the answer into an instant.

use std::fmt;

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, Timelike};

use crate::civil::{days_in_month, weekday_mon0};
use crate::error::{Error, Field, Reason};

/// A parsed 5-field cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronExpr {
    source: String,
    minutes: u64,
    hours: u32,
    /// Bits 1..=31.
    days: u32,
    /// Bits 1..=12.
    months: u16,
    /// Bits 0..=6, 0 = Sunday.
    weekdays: u8,
    /// True when the day-of-month or the day-of-week field starts with `*`: both must match.
    and_days: bool,
    /// Days of month 1..=31 (bit d) falling on a listed weekday, indexed by the weekday
    /// (0 = Sunday) of the 1st of the month.
    weekday_days: [u32; 7],
    /// No month of the list has a listed day, and the weekday cannot rescue it.
    never: bool,
}

const MONTHS: [&str; 12] =
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// How one field is read: its bounds and its names (value of the first name).
struct Spec {
    field: Field,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    first_name: u32,
}

const SPECS: [Spec; 5] = [
    Spec { field: Field::Minute, min: 0, max: 59, names: &[], first_name: 0 },
    Spec { field: Field::Hour, min: 0, max: 23, names: &[], first_name: 0 },
    Spec { field: Field::DayOfMonth, min: 1, max: 31, names: &[], first_name: 0 },
    Spec { field: Field::Month, min: 1, max: 12, names: &MONTHS, first_name: 1 },
    Spec { field: Field::DayOfWeek, min: 0, max: 7, names: &WEEKDAYS, first_name: 0 },
];

impl fmt::Display for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl std::str::FromStr for CronExpr {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        CronExpr::parse(s)
    }
}

impl CronExpr {
    /// Parses a 5-field cron expression or an `@alias`.
    pub fn parse(input: &str) -> Result<Self, Error> {
        let source = input.trim();
        if source.is_empty() {
            return Err(Error::new(input, Reason::Empty));
        }
        let expanded = if source.starts_with('@') { alias(source)? } else { source };
        let fields: Vec<&str> = expanded.split_ascii_whitespace().collect();
        if fields.len() != 5 {
            return Err(Error::new(source, Reason::FieldCount(fields.len())));
        }
        let mut bits = [0u64; 5];
        for (i, (text, spec)) in fields.iter().zip(SPECS.iter()).enumerate() {
            bits[i] = parse_field(text, spec)?;
        }
        // 7 is Sunday too.
        let weekdays = ((bits[4] | (bits[4] >> 7)) & 0x7f) as u8;
        let days = bits[2] as u32;
        let months = bits[3] as u16;
        let and_days = fields[2].starts_with('*') || fields[4].starts_with('*');
        let mut weekday_days = [0u32; 7];
        for (first, slot) in weekday_days.iter_mut().enumerate() {
            for d in 1..=31u32 {
                if weekdays & (1 << ((first as u32 + d - 1) % 7)) != 0 {
                    *slot |= 1 << d;
                }
            }
        }
        // With the AND rule a listed day must exist in a listed month (Feb has 29 days in
        // leap years); every date falls on every weekday sooner or later. The OR rule always
        // has the weekday to fall back on.
        let never = and_days
            && !(1..=12u32).any(|m| months & (1 << m) != 0 && days & mask_upto(days_in_month(2000, m)) != 0);
        Ok(CronExpr {
            source: source.to_owned(),
            minutes: bits[0],
            hours: bits[1] as u32,
            days,
            months,
            weekdays,
            and_days,
            weekday_days,
            never,
        })
    }

    /// The first matching wall-clock minute at or after `from`.
    pub(crate) fn next_local(&self, from: NaiveDateTime) -> Option<NaiveDateTime> {
        if self.never {
            return None;
        }
        let mut start = from.with_second(0)?.with_nanosecond(0)?;
        if start < from {
            start = start.checked_add_signed(Duration::minutes(1))?;
        }
        let (mut y, mut mo, mut d) = (start.year(), start.month(), start.day());
        let (mut h, mut mi) = (start.hour(), start.minute());
        let last_year = y.saturating_add(400);
        while y <= last_year {
            if self.months & (1 << mo) == 0 {
                match next_bit(u64::from(self.months), mo + 1) {
                    Some(m) if m <= 12 => mo = m,
                    _ => {
                        y += 1;
                        mo = self.months.trailing_zeros();
                    }
                }
                (d, h, mi) = (1, 0, 0);
                continue;
            }
            match self.next_day(y, mo, d) {
                None => {
                    (d, h, mi) = (1, 0, 0);
                    if mo == 12 {
                        (y, mo) = (y + 1, 1);
                    } else {
                        mo += 1;
                    }
                    continue;
                }
                Some(found) if found != d => (d, h, mi) = (found, 0, 0),
                Some(_) => {}
            }
            match next_bit(u64::from(self.hours), h) {
                None => {
                    (d, h, mi) = (d + 1, 0, 0);
                    continue;
                }
                Some(found) if found != h => (h, mi) = (found, 0),
                Some(_) => {}
            }
            match next_bit(self.minutes, mi) {
                None => {
                    (h, mi) = (h + 1, 0);
                    if h == 24 {
                        (d, h) = (d + 1, 0);
                    }
                    continue;
                }
                Some(found) => mi = found,
            }
            return NaiveDate::from_ymd_opt(y, mo, d)?.and_hms_opt(h, mi, 0);
        }
        None
    }

    /// The first day ≥ `d` of month `mo` matching the day rule, if any.
    fn next_day(&self, y: i32, mo: u32, d: u32) -> Option<u32> {
        let len = days_in_month(y, mo);
        if d > len {
            return None;
        }
        let first_weekday = (weekday_mon0(y, mo, 1) + 1) % 7;
        let window = mask_upto(len) & !((1u32 << d) - 1);
        let by_weekday = self.weekday_days[first_weekday as usize];
        let candidates = if self.and_days { self.days & by_weekday } else { self.days | by_weekday } & window;
        (candidates != 0).then(|| candidates.trailing_zeros())
    }
}

/// Bits 1..=n.
fn mask_upto(n: u32) -> u32 {
    ((1u64 << (n + 1)) - 2) as u32
}

fn next_bit(bits: u64, from: u32) -> Option<u32> {
    if from >= 64 {
        return None;
    }
    let masked = bits & (u64::MAX << from);
    (masked != 0).then(|| masked.trailing_zeros())
}

/// Vixie cron's aliases; `@reboot` is not a recurrence.
fn alias(source: &str) -> Result<&'static str, Error> {
    Ok(match source.to_ascii_lowercase().as_str() {
        "@hourly" => "0 * * * *",
        "@daily" | "@midnight" => "0 0 * * *",
        "@weekly" => "0 0 * * 0",
        "@monthly" => "0 0 1 * *",
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@reboot" => {
            return Err(Error::new(source, Reason::UnsupportedAlias(source.to_owned())));
        }
        _ => {
            return Err(Error::new(
                source,
                Reason::Syntax {
                    field: Field::Expression,
                    detail: "unknown alias; use @hourly, @daily, @midnight, @weekly, @monthly, @yearly or @annually".into(),
                },
            ));
        }
    })
}

/// One field: a comma-separated list of `*`, `n`, `a-b`, each of the last two with `/step`
/// only after `*` or a range.
fn parse_field(text: &str, spec: &Spec) -> Result<u64, Error> {
    let mut bits = 0u64;
    for item in text.split(',') {
        let syntax = |detail: String| Error::new(text, Reason::Syntax { field: spec.field, detail });
        if item.is_empty() {
            return Err(syntax("empty list element".into()));
        }
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (item, None),
        };
        let (lo, hi, is_range) = if range == "*" {
            (spec.min, spec.max, true)
        } else if let Some((a, b)) = range.split_once('-') {
            let a = value(a, text, spec)?;
            let b = value(b, text, spec)?;
            if a > b {
                return Err(Error::new(
                    text,
                    Reason::Backwards { field: spec.field, start: a.to_string(), stop: b.to_string() },
                ));
            }
            (a, b, true)
        } else {
            let v = value(range, text, spec)?;
            (v, v, false)
        };
        let step = match step {
            None => 1,
            Some(_) if !is_range => {
                return Err(syntax(format!(
                    "{item:?}: a step needs \"*\" or a range before it, e.g. \"{range}-{}/...\"",
                    spec.max
                )));
            }
            Some(s) => {
                if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
                    return Err(syntax(format!("{item:?}: the step must be a number")));
                }
                match s.parse::<u32>() {
                    Ok(0) => {
                        return Err(Error::new(
                            text,
                            Reason::Repetition { field: spec.field, detail: "/0 is zero".into() },
                        ));
                    }
                    Ok(n) => n,
                    // Larger than any field: only the first value of the range fires.
                    Err(_) => u32::MAX,
                }
            }
        };
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v = match v.checked_add(step) {
                Some(next) => next,
                None => break,
            };
        }
    }
    Ok(bits)
}

/// A number or (where the field has them) a three-letter name, within the field's bounds.
fn value(token: &str, text: &str, spec: &Spec) -> Result<u32, Error> {
    let bad = |detail: String| Error::new(text, Reason::Syntax { field: spec.field, detail });
    if token.is_empty() {
        return Err(bad("missing value".into()));
    }
    if token.bytes().all(|c| c.is_ascii_digit()) {
        let out_of_range = || {
            Error::new(
                text,
                Reason::OutOfRange {
                    field: spec.field,
                    value: token.to_owned(),
                    min: spec.min.to_string(),
                    max: spec.max.to_string(),
                },
            )
        };
        let v: u32 = token.parse().map_err(|_| out_of_range())?;
        if v < spec.min || v > spec.max {
            return Err(out_of_range());
        }
        return Ok(v);
    }
    if let Some(i) = spec.names.iter().position(|name| name.eq_ignore_ascii_case(token)) {
        return Ok(spec.first_name + i as u32);
    }
    if spec.names.is_empty() {
        Err(bad(format!("{token:?} is not a number")))
    } else {
        Err(bad(format!("{token:?} is neither a number nor one of {}", spec.names.join(", "))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn next(expr: &str, from: &str) -> Option<String> {
        let cron = CronExpr::parse(expr).unwrap();
        let from = NaiveDateTime::parse_from_str(from, "%Y-%m-%d %H:%M:%S").unwrap();
        cron.next_local(from).map(|t| t.format("%Y-%m-%d %H:%M %a").to_string())
    }

    #[test]
    fn basics() {
        assert_eq!(next("0 2 * * *", "2024-01-30 10:15:00").as_deref(), Some("2024-01-31 02:00 Wed"));
        assert_eq!(next("*/15 * * * *", "2024-01-30 10:15:00").as_deref(), Some("2024-01-30 10:15 Tue"));
        assert_eq!(next("*/15 * * * *", "2024-01-30 10:15:01").as_deref(), Some("2024-01-30 10:30 Tue"));
        assert_eq!(
            next("30 8 * JAN-MAR MON-FRI", "2024-03-29 09:00:00").as_deref(),
            Some("2025-01-01 08:30 Wed")
        );
        assert_eq!(next("0 0 * * 7", "2024-01-30 00:00:00").as_deref(), Some("2024-02-04 00:00 Sun"));
        assert_eq!(next("0 0 * * 5-7", "2024-01-30 00:00:00").as_deref(), Some("2024-02-02 00:00 Fri"));
        assert_eq!(next("0 0 29 2 *", "2024-03-01 00:00:00").as_deref(), Some("2028-02-29 00:00 Tue"));
        assert_eq!(next("0 0 31 2 *", "2024-03-01 00:00:00"), None);
        assert_eq!(next("0 0 30 2 */7", "2024-03-01 00:00:00"), None);
    }

    #[test]
    fn vixie_day_rule() {
        // Both restricted: the 13th OR any Friday.
        assert_eq!(next("0 0 13 * 5", "2024-01-01 00:00:00").as_deref(), Some("2024-01-05 00:00 Fri"));
        assert_eq!(next("0 0 13 * 5", "2024-01-06 00:00:00").as_deref(), Some("2024-01-12 00:00 Fri"));
        assert_eq!(next("0 0 13 * 5", "2024-01-12 00:01:00").as_deref(), Some("2024-01-13 00:00 Sat"));
        // A field starting with '*' is unrestricted for the rule: odd days AND Saturdays.
        assert_eq!(next("0 16 */2 * sat", "2024-05-01 00:00:00").as_deref(), Some("2024-05-11 16:00 Sat"));
        // The same days written as a range are restricted: odd days OR Saturdays.
        assert_eq!(next("0 16 1-31/2 * sat", "2024-05-01 17:00:00").as_deref(), Some("2024-05-03 16:00 Fri"));
        // "*,10" starts with '*', "10,*" does not (Vixie's first-character test).
        assert_eq!(next("0 12 *,10 * 2", "2024-05-01 00:00:00").as_deref(), Some("2024-05-07 12:00 Tue"));
        assert_eq!(next("0 12 10,* * 2", "2024-05-01 00:00:00").as_deref(), Some("2024-05-01 12:00 Wed"));
    }

    #[test]
    fn aliases() {
        for (alias, expanded) in [
            ("@hourly", "0 * * * *"),
            ("@daily", "0 0 * * *"),
            ("@midnight", "0 0 * * *"),
            ("@weekly", "0 0 * * 0"),
            ("@monthly", "0 0 1 * *"),
            ("@yearly", "0 0 1 1 *"),
            ("@annually", "0 0 1 1 *"),
        ] {
            let a = CronExpr::parse(alias).unwrap();
            let b = CronExpr::parse(expanded).unwrap();
            assert_eq!(
                (a.minutes, a.hours, a.days, a.months, a.weekdays),
                (b.minutes, b.hours, b.days, b.months, b.weekdays)
            );
        }
        let e = CronExpr::parse("@reboot").unwrap_err();
        assert!(e.to_string().contains("@reboot"), "{e}");
    }

    #[test]
    fn errors_name_the_field_and_token() {
        let cases = [
            ("60 * * * *", Field::Minute, "60"),
            ("* 24 * * *", Field::Hour, "24"),
            ("* * 0 * *", Field::DayOfMonth, "0"),
            ("* * * 13 *", Field::Month, "13"),
            ("* * * * 8", Field::DayOfWeek, "8"),
            ("* * * FOO *", Field::Month, "FOO"),
            ("* * * * MOO", Field::DayOfWeek, "MOO"),
            ("5/10 * * * *", Field::Minute, "5/10"),
            ("*/0 * * * *", Field::Minute, "*/0"),
            ("10-5 * * * *", Field::Minute, "10-5"),
            ("1,,2 * * * *", Field::Minute, "1,,2"),
            ("* * * * MON-", Field::DayOfWeek, "MON-"),
            ("*5 * * * *", Field::Minute, "*5"),
        ];
        for (expr, field, token) in cases {
            let e = CronExpr::parse(expr).unwrap_err();
            assert_eq!(e.field(), Some(field), "{expr}: {e}");
            assert_eq!(e.part(), token, "{expr}: {e}");
            assert!(e.to_string().contains(&field.to_string()), "{expr}: {e}");
        }
        assert_eq!(CronExpr::parse("0 2 * *").unwrap_err().reason(), &Reason::FieldCount(4));
        assert_eq!(CronExpr::parse("0 0 2 * * *").unwrap_err().reason(), &Reason::FieldCount(6));
        assert_eq!(CronExpr::parse("  ").unwrap_err().reason(), &Reason::Empty);
    }
}
