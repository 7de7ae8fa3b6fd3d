//! The calendar-event grammar, normalisation and validation, step for step as systemd 252.
//!
//! The order of the checks is systemd's (`calendar_spec_from_string`): zone suffix, shorthand,
//! weekdays, date (or `@EPOCH`), time; then two-digit years, sorting and de-duplicating lists,
//! trimming range ends to whole repetitions; then range checks. Keeping the same order is what
//! makes "accepted by systemd" and "accepted by Cairn" the same set. Error texts are Cairn's own.

use std::str::FromStr;

use chrono::{Datelike, Timelike};
use chrono_tz::Tz;

use super::{CalendarEvent, Chain, Component, Matcher, USEC_PER_SEC, ZoneSpec};
use crate::error::{Error, Field, Reason};

/// systemd refuses lists longer than this (`CALENDARSPEC_COMPONENTS_MAX` + 1 elements).
const MAX_LIST: usize = 241;
const MIN_YEAR: i32 = 1970;
const MAX_YEAR: i32 = 2199;

pub(super) fn parse(input: &str) -> Result<CalendarEvent, Error> {
    let (body, zone) = split_zone(input);
    if body.is_empty() {
        return Err(Error::new(input, Reason::Empty));
    }
    let mut raw = Raw::default();
    if !shorthand(body, &mut raw) {
        let mut p = Parser { s: body, b: body.as_bytes(), pos: 0 };
        p.weekdays(&mut raw)?;
        if !p.date(&mut raw)? {
            p.time(&mut raw)?;
        }
        if p.pos < p.b.len() {
            return Err(p.syntax(Field::Expression, "unexpected text after the time"));
        }
        raw.sections = p.sections();
    }
    let zone = if raw.epoch { ZoneSpec::Utc } else { zone };
    finish(input, raw, zone)
}

/// Splits a trailing ` UTC` (any case) or ` <IANA zone>` off, as systemd does before parsing.
fn split_zone(input: &str) -> (&str, ZoneSpec) {
    let b = input.as_bytes();
    if b.len() >= 4 && b[b.len() - 4..].eq_ignore_ascii_case(b" UTC") {
        return (&input[..input.len() - 4], ZoneSpec::Utc);
    }
    if let Some(space) = input.rfind(' ') {
        let name = &input[space + 1..];
        if let Some(tz) = zone_file_name(name) {
            return (&input[..space], ZoneSpec::Named { name: name.to_owned(), tz });
        }
    }
    (input, ZoneSpec::Schedule)
}

/// A zone name as systemd's `verify_timezone` would accept it, resolved with chrono-tz.
///
/// systemd looks the name up under /usr/share/zoneinfo; Cairn has no disk access and uses the
/// IANA names compiled into chrono-tz, plus the `posix/` copies of them that tzdata installs.
pub(crate) fn zone_file_name(name: &str) -> Option<Tz> {
    if name.is_empty() || name.starts_with('/') || name.ends_with('/') || name.contains("//") {
        return None;
    }
    if !name.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'+' | b'/')) {
        return None;
    }
    Tz::from_str(name).ok().or_else(|| Tz::from_str(name.strip_prefix("posix/")?).ok())
}

/// Fields as parsed, before normalisation.
#[derive(Default)]
struct Raw {
    weekdays: u8,
    year: Chain,
    month: Chain,
    day: Chain,
    hour: Chain,
    minute: Chain,
    second: Chain,
    end_of_month: bool,
    epoch: bool,
    sections: Sections,
}

/// Where each part sits in the input, so that validation errors can quote it.
#[derive(Default, Clone)]
struct Sections {
    weekdays: String,
    date: String,
    time: String,
}

fn konst(v: i32) -> Chain {
    Some(vec![Component { start: v, stop: -1, repeat: 0 }])
}

fn konsts(vs: &[i32]) -> Chain {
    Some(vs.iter().map(|&v| Component { start: v, stop: -1, repeat: 0 }).collect())
}

/// systemd's shorthands; `anually` and `bi-annually` are systemd's own spellings too.
fn shorthand(body: &str, raw: &mut Raw) -> bool {
    let is = |w: &str| body.eq_ignore_ascii_case(w);
    let midnight = |raw: &mut Raw| {
        raw.hour = konst(0);
        raw.minute = konst(0);
        raw.second = konst(0);
    };
    if is("minutely") {
        raw.second = konst(0);
    } else if is("hourly") {
        raw.minute = konst(0);
        raw.second = konst(0);
    } else if is("daily") {
        midnight(raw);
    } else if is("monthly") {
        raw.day = konst(1);
        midnight(raw);
    } else if is("annually") || is("yearly") || is("anually") {
        raw.month = konst(1);
        raw.day = konst(1);
        midnight(raw);
    } else if is("weekly") {
        raw.weekdays = 1;
        midnight(raw);
    } else if is("quarterly") {
        raw.month = konsts(&[1, 4, 7, 10]);
        raw.day = konst(1);
        midnight(raw);
    } else if is("biannually") || is("bi-annually") || is("semiannually") || is("semi-annually") {
        raw.month = konsts(&[1, 7]);
        raw.day = konst(1);
        midnight(raw);
    } else {
        return false;
    }
    true
}

struct Parser<'a> {
    s: &'a str,
    b: &'a [u8],
    pos: usize,
}

const WEEKDAYS: [(&str, u8); 14] = [
    ("Monday", 0),
    ("Mon", 0),
    ("Tuesday", 1),
    ("Tue", 1),
    ("Wednesday", 2),
    ("Wed", 2),
    ("Thursday", 3),
    ("Thu", 3),
    ("Friday", 4),
    ("Fri", 4),
    ("Saturday", 5),
    ("Sat", 5),
    ("Sunday", 6),
    ("Sun", 6),
];

impl<'a> Parser<'a> {
    fn peek(&self) -> u8 {
        self.b.get(self.pos).copied().unwrap_or(0)
    }

    fn peek_at(&self, off: usize) -> u8 {
        self.b.get(self.pos + off).copied().unwrap_or(0)
    }

    fn skip_spaces(&mut self) {
        while self.peek() == b' ' {
            self.pos += 1;
        }
    }

    /// The space-delimited word around `at`, for error messages.
    fn word_at(&self, at: usize) -> &'a str {
        let at = at.min(self.b.len());
        let start = self.b[..at].iter().rposition(|&c| c == b' ').map_or(0, |i| i + 1);
        let end = self.b[at..].iter().position(|&c| c == b' ').map_or(self.b.len(), |i| at + i);
        if start >= end {
            return self.s.trim();
        }
        &self.s[start..end]
    }

    fn syntax(&self, field: Field, detail: &str) -> Error {
        let found = match self.s.get(self.pos..).and_then(|r| r.chars().next()) {
            Some(c) => format!("{detail} (at {c:?})"),
            None => format!("{detail} (at the end)"),
        };
        Error::new(self.word_at(self.pos), Reason::Syntax { field, detail: found })
    }

    fn sections(&self) -> Sections {
        // Sections are re-derived from the words of the body: the parser has already
        // accepted it, so the words are weekday part, date part and time part in order.
        let mut sec = Sections::default();
        let words: Vec<&str> = self.s.split(' ').filter(|w| !w.is_empty()).collect();
        for w in words {
            let first = w.as_bytes()[0];
            if first.is_ascii_alphabetic() {
                sec.weekdays = w.to_owned();
            } else if w.contains(':') {
                sec.time = w.to_owned();
            } else {
                sec.date = w.to_owned();
            }
        }
        sec
    }

    /// `parse_weekdays`: names, `,` lists, `..` or legacy `-` ranges; absent is fine.
    fn weekdays(&mut self, raw: &mut Raw) -> Result<(), Error> {
        let mut range_from: Option<u8> = None;
        let mut first = true;
        loop {
            let rest = &self.b[self.pos..];
            let Some(&(name, nr)) = WEEKDAYS.iter().find(|(name, _)| {
                rest.len() >= name.len() && rest[..name.len()].eq_ignore_ascii_case(name.as_bytes())
            }) else {
                if first {
                    return Ok(());
                }
                return Err(self.syntax(Field::Weekday, "expected a weekday name"));
            };
            let after = self.peek_at(name.len());
            if !matches!(after, 0 | b'-' | b'.' | b',' | b' ') {
                self.pos += name.len();
                return Err(self.syntax(Field::Weekday, "unknown weekday name"));
            }
            raw.weekdays |= 1 << nr;
            if let Some(l) = range_from {
                if l > nr {
                    return Err(Error::new(
                        self.word_at(self.pos),
                        Reason::Backwards {
                            field: Field::Weekday,
                            start: WEEKDAYS[usize::from(l) * 2 + 1].0.to_owned(),
                            stop: WEEKDAYS[usize::from(nr) * 2 + 1].0.to_owned(),
                        },
                    ));
                }
                for j in l + 1..nr {
                    raw.weekdays |= 1 << j;
                }
            }
            self.pos += name.len();
            match self.peek() {
                0 => return Ok(()),
                b' ' => {
                    self.skip_spaces();
                    return Ok(());
                }
                b'.' => {
                    if range_from.is_some() {
                        return Err(self.syntax(Field::Weekday, "a range cannot continue"));
                    }
                    if self.peek_at(1) != b'.' {
                        return Err(self.syntax(Field::Weekday, "expected \"..\""));
                    }
                    range_from = Some(nr);
                    self.pos += 2;
                }
                b'-' => {
                    if range_from.is_some() {
                        return Err(self.syntax(Field::Weekday, "a range cannot continue"));
                    }
                    range_from = Some(nr);
                    self.pos += 1;
                }
                _ => {
                    // Only ',' is left: the name check above allows nothing else.
                    range_from = None;
                    self.pos += 1;
                }
            }
            if matches!(self.peek(), 0 | b' ') {
                if range_from.is_some() {
                    return Err(self.syntax(Field::Weekday, "the range has no end"));
                }
                self.skip_spaces();
                return Ok(());
            }
            first = false;
        }
    }

    /// `parse_date`: `@EPOCH`, `M-D`, `Y-M-D`, with `~` for end-of-month days. Returns true
    /// when the date was a timestamp (no time may follow).
    fn date(&mut self, raw: &mut Raw) -> Result<bool, Error> {
        if self.pos >= self.b.len() {
            return Ok(false);
        }
        if self.peek() == b'@' {
            self.pos += 1;
            self.epoch(raw)?;
            return Ok(true);
        }
        let start = self.pos;
        let word = self.word_at(start);
        let separators = word.bytes().filter(|c| matches!(c, b'-' | b'~')).count();
        let first_field = if word.contains(':') && separators == 0 {
            Field::Hour
        } else if separators >= 2 {
            Field::Year
        } else {
            Field::Month
        };
        let first = self.chain(first_field, false)?;
        if matches!(self.peek(), 0 | b':') {
            // It was the hour of a time, not a date: the time parser starts over.
            self.pos = start;
            return Ok(false);
        }
        match self.peek() {
            b'~' => raw.end_of_month = true,
            b'-' => {}
            _ => return Err(self.syntax(first_field, "expected \"-\", \"~\" or \":\"")),
        }
        self.pos += 1;
        let second_field = if separators >= 2 { Field::Month } else { Field::Day };
        let second = self.chain(second_field, false)?;
        if matches!(self.peek(), 0 | b' ') {
            self.skip_spaces();
            raw.month = first;
            raw.day = second;
            return Ok(false);
        }
        if raw.end_of_month {
            return Err(self.syntax(Field::Day, "nothing may follow the day"));
        }
        match self.peek() {
            b'~' => raw.end_of_month = true,
            b'-' => {}
            _ => return Err(self.syntax(second_field, "expected \"-\" or \"~\"")),
        }
        self.pos += 1;
        let third = self.chain(Field::Day, false)?;
        if !matches!(self.peek(), 0 | b' ') {
            return Err(self.syntax(Field::Day, "expected a space after the date"));
        }
        self.skip_spaces();
        raw.year = first;
        raw.month = second;
        raw.day = third;
        Ok(false)
    }

    /// `@EPOCH`: read like C's `strtoul` (leading blanks and a sign are allowed), then taken
    /// apart in UTC.
    fn epoch(&mut self, raw: &mut Raw) -> Result<(), Error> {
        let word = self.s.to_owned();
        while matches!(self.peek(), b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
            self.pos += 1;
        }
        let negative = match self.peek() {
            b'-' => {
                self.pos += 1;
                true
            }
            b'+' => {
                self.pos += 1;
                false
            }
            _ => false,
        };
        let digits_start = self.pos;
        let mut value: Option<u64> = Some(0);
        while self.peek().is_ascii_digit() {
            let d = u64::from(self.peek() - b'0');
            value = value.and_then(|v| v.checked_mul(10)).and_then(|v| v.checked_add(d));
            self.pos += 1;
        }
        if self.pos == digits_start {
            return Err(self.syntax(Field::Timestamp, "expected seconds since 1970-01-01"));
        }
        let out_of_range = || {
            Error::new(
                word.clone(),
                Reason::OutOfRange {
                    field: Field::Timestamp,
                    value: word.trim_start_matches('@').trim().to_owned(),
                    min: "0".into(),
                    max: "7258118399".into(),
                },
            )
        };
        let value = value.ok_or_else(out_of_range)?;
        // strtoul negates in unsigned arithmetic: "-0" is 0, anything else lands before 1970.
        if negative && value != 0 {
            return Err(out_of_range());
        }
        let secs = i64::try_from(value).map_err(|_| out_of_range())?;
        let t = chrono::DateTime::from_timestamp(secs, 0).ok_or_else(out_of_range)?;
        if t.year() > MAX_YEAR {
            return Err(out_of_range());
        }
        raw.year = konst(t.year());
        raw.month = konst(t.month() as i32);
        raw.day = konst(t.day() as i32);
        raw.hour = konst(t.hour() as i32);
        raw.minute = konst(t.minute() as i32);
        raw.second = konst(t.second() as i32 * USEC_PER_SEC);
        raw.epoch = true;
        if self.pos < self.b.len() {
            return Err(self.syntax(Field::Timestamp, "nothing may follow the timestamp"));
        }
        Ok(())
    }

    /// `parse_calendar_time`: `H:M` or `H:M:S`; absent means 00:00:00.
    fn time(&mut self, raw: &mut Raw) -> Result<(), Error> {
        if self.pos >= self.b.len() {
            raw.hour = konst(0);
            raw.minute = konst(0);
            raw.second = konst(0);
            return Ok(());
        }
        let hour = self.chain(Field::Hour, false)?;
        if self.peek() != b':' {
            return Err(self.syntax(Field::Hour, "expected \":\" after the hour"));
        }
        self.pos += 1;
        let minute = self.chain(Field::Minute, false)?;
        let second = match self.peek() {
            0 => konst(0),
            b':' => {
                self.pos += 1;
                let s = self.chain(Field::Second, true)?;
                if self.pos < self.b.len() {
                    return Err(self.syntax(Field::Second, "unexpected text after the seconds"));
                }
                s
            }
            _ => return Err(self.syntax(Field::Minute, "expected \":\" or the end")),
        };
        raw.hour = hour;
        raw.minute = minute;
        raw.second = second;
        Ok(())
    }

    /// `parse_chain`: `*` or a comma-separated list of components.
    fn chain(&mut self, field: Field, usec: bool) -> Result<Chain, Error> {
        if self.peek() == b'*' {
            self.pos += 1;
            return Ok(if usec {
                Some(vec![Component { start: 0, stop: -1, repeat: USEC_PER_SEC }])
            } else {
                None
            });
        }
        let start_pos = self.pos;
        let mut items = Vec::new();
        loop {
            if items.len() == MAX_LIST {
                return Err(Error::new(
                    self.word_at(start_pos),
                    Reason::TooManyValues { field, max: MAX_LIST },
                ));
            }
            items.push(self.component(field, usec)?);
            if self.peek() == b',' {
                self.pos += 1;
            } else {
                return Ok(Some(items));
            }
        }
    }

    /// `prepend_component`: `start[..stop][/repeat]`.
    fn component(&mut self, field: Field, usec: bool) -> Result<Component, Error> {
        let at = self.pos;
        let start = self.decimal(field, usec)?;
        let mut stop = -1;
        let mut repeat = 0;
        if self.peek() == b'.' && self.peek_at(1) == b'.' {
            self.pos += 2;
            stop = self.decimal(field, usec)?;
            repeat = if usec { USEC_PER_SEC } else { 1 };
        }
        if self.peek() == b'/' {
            self.pos += 1;
            repeat = self.decimal(field, usec)?;
            if repeat == 0 {
                return Err(Error::new(
                    self.word_at(at),
                    Reason::Repetition { field, detail: "/0 is zero".into() },
                ));
            }
        } else if usec && stop >= 0 && i64::from(start) + i64::from(repeat) > i64::from(stop) {
            // systemd refuses a seconds range shorter than its default one-second step.
            return Err(Error::new(
                self.word_at(at),
                Reason::Repetition {
                    field,
                    detail: format!(
                        "range {}..{} is shorter than the default step of 1 second",
                        fmt_value(start, true),
                        fmt_value(stop, true)
                    ),
                },
            ));
        }
        if !matches!(self.peek(), 0 | b' ' | b',' | b'-' | b'~' | b':') {
            return Err(self.syntax(field, "unexpected character in a value"));
        }
        Ok(Component { start, stop, repeat })
    }

    /// `parse_component_decimal`: digits, and for seconds an optional fraction rounded to µs.
    fn decimal(&mut self, field: Field, usec: bool) -> Result<i32, Error> {
        if !self.peek().is_ascii_digit() {
            return Err(self.syntax(field, "expected a number or \"*\""));
        }
        let at = self.pos;
        let mut value: Option<u64> = Some(0);
        while self.peek().is_ascii_digit() {
            let d = u64::from(self.peek() - b'0');
            value = value.and_then(|v| v.checked_mul(10)).and_then(|v| v.checked_add(d));
            self.pos += 1;
        }
        let too_big = |p: &Self| {
            let (min, max) = field_bounds(field);
            Error::new(
                p.word_at(at),
                Reason::OutOfRange {
                    field,
                    value: p.s[at..p.pos].to_owned(),
                    min: fmt_value(min, usec),
                    max: fmt_value(max, usec),
                },
            )
        };
        let mut value = value.ok_or_else(|| too_big(self))?;
        if usec {
            value = value.checked_mul(USEC_PER_SEC as u64).ok_or_else(|| too_big(self))?;
            if self.peek() == b'.' && self.peek_at(1) != b'.' {
                self.pos += 1;
                if !self.peek().is_ascii_digit() {
                    return Err(self.syntax(field, "expected digits after the decimal point"));
                }
                let mut frac: u64 = 0;
                for _ in 0..6 {
                    frac *= 10;
                    if self.peek().is_ascii_digit() {
                        frac += u64::from(self.peek() - b'0');
                        self.pos += 1;
                    }
                }
                // A seventh digit rounds half up, the rest are ignored.
                if matches!(self.peek(), b'5'..=b'9') {
                    frac += 1;
                }
                while self.peek().is_ascii_digit() {
                    self.pos += 1;
                }
                value = value.checked_add(frac).ok_or_else(|| too_big(self))?;
            }
        }
        i32::try_from(value).map_err(|_| too_big(self))
    }
}

/// The valid span of each field; seconds in µs.
fn field_bounds(field: Field) -> (i32, i32) {
    match field {
        Field::Year => (MIN_YEAR, MAX_YEAR),
        Field::Month => (1, 12),
        Field::Day => (1, 31),
        Field::Hour => (0, 23),
        Field::Minute => (0, 59),
        Field::Second => (0, 60 * USEC_PER_SEC - 1),
        _ => (0, i32::MAX),
    }
}

/// A value as the user wrote it: seconds with their fraction, others as integers.
fn fmt_value(v: i32, usec: bool) -> String {
    if !usec {
        return v.to_string();
    }
    let (s, f) = (v / USEC_PER_SEC, v % USEC_PER_SEC);
    if f == 0 {
        s.to_string()
    } else {
        let frac = format!("{f:06}");
        format!("{s}.{}", frac.trim_end_matches('0'))
    }
}

/// `fix_year`: two-digit years are 1970..2069.
fn fix_year(chain: &mut Chain) {
    for c in chain.iter_mut().flatten() {
        for v in [&mut c.start, &mut c.stop] {
            if (0..70).contains(v) {
                *v += 2000;
            } else if (70..100).contains(v) {
                *v += 1900;
            }
        }
    }
}

/// `normalize_chain`: trim range ends to whole repetitions, collapse one-value ranges, sort,
/// drop duplicates.
fn normalize_chain(chain: &mut Chain) {
    let Some(items) = chain else { return };
    for c in items.iter_mut() {
        if c.stop > c.start && c.repeat > 0 {
            c.stop -= (c.stop - c.start) % c.repeat;
        }
        if (c.stop > c.start && c.start + c.repeat > c.stop) || c.start == c.stop {
            c.repeat = 0;
            c.stop = -1;
        }
    }
    items.sort_unstable();
    items.dedup();
}

/// `chain_valid` with a reason: values inside the field, repetitions that can fire.
fn check_chain(chain: &Chain, field: Field, end_of_month: bool, part: &str) -> Result<(), Error> {
    let Some(items) = chain else { return Ok(()) };
    let usec = field == Field::Second;
    let (from, mut to) = field_bounds(field);
    let err = |reason| Err(Error::new(part, reason));
    for c in items {
        if end_of_month {
            // systemd forbids counting back more than 28 days from the month's end, and
            // (a quirk of its recursive check) lowers the bound by 3 more for every further
            // list element: `*-*~1..24,28` is refused while `*-*~28` is fine.
            to -= 3;
        }
        let out_of_range = |v: i32| Reason::OutOfRange {
            field,
            value: fmt_value(v, usec),
            min: fmt_value(from, usec),
            max: fmt_value(to, usec),
        };
        if c.start < from || c.start > to {
            return err(out_of_range(c.start));
        }
        if c.repeat > to - from {
            return err(Reason::Repetition {
                field,
                detail: format!(
                    "/{} is longer than the span {}..{}",
                    fmt_value(c.repeat, usec),
                    fmt_value(from, usec),
                    fmt_value(to, usec)
                ),
            });
        }
        if c.stop >= 0 {
            if c.stop < from || c.stop > to {
                return err(out_of_range(c.stop));
            }
            if c.start + c.repeat > c.stop {
                return err(Reason::Backwards {
                    field,
                    start: fmt_value(c.start, usec),
                    stop: fmt_value(c.stop, usec),
                });
            }
        } else if end_of_month && c.start - c.repeat < from {
            return err(Reason::Repetition {
                field,
                detail: format!("/{} from ~{} would step past the first day of the month", c.repeat, c.start),
            });
        } else if !end_of_month && c.start + c.repeat > to {
            return err(Reason::Repetition {
                field,
                detail: format!(
                    "/{} from {} never fires within {}..{}",
                    fmt_value(c.repeat, usec),
                    fmt_value(c.start, usec),
                    fmt_value(from, usec),
                    fmt_value(to, usec)
                ),
            });
        }
    }
    Ok(())
}

/// Normalises, validates and compiles the parsed fields.
fn finish(input: &str, mut raw: Raw, zone: ZoneSpec) -> Result<CalendarEvent, Error> {
    let weekdays = match raw.weekdays {
        0 | 0x7f.. => None,
        bits => Some(bits),
    };
    if raw.end_of_month && raw.day.is_none() {
        raw.end_of_month = false;
    }
    fix_year(&mut raw.year);
    for chain in
        [&mut raw.year, &mut raw.month, &mut raw.day, &mut raw.hour, &mut raw.minute, &mut raw.second]
    {
        normalize_chain(chain);
    }
    let sec = &raw.sections;
    let pick = |s: &str| {
        if s.is_empty() { input.to_owned() } else { s.to_owned() }
    };
    let date = pick(&sec.date);
    let time = pick(&sec.time);
    check_chain(&raw.year, Field::Year, false, &date)?;
    check_chain(&raw.month, Field::Month, false, &date)?;
    check_chain(&raw.day, Field::Day, raw.end_of_month, &date)?;
    check_chain(&raw.hour, Field::Hour, false, &time)?;
    check_chain(&raw.minute, Field::Minute, false, &time)?;
    check_chain(&raw.second, Field::Second, false, &time)?;
    let mut event = CalendarEvent {
        weekdays,
        year: raw.year,
        month: raw.month,
        day: raw.day,
        hour: raw.hour,
        minute: raw.minute,
        second: raw.second,
        end_of_month: raw.end_of_month,
        zone,
        matcher: Box::default(),
    };
    event.matcher = Box::new(Matcher::compile(&event));
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> Error {
        match CalendarEvent::parse(s) {
            Ok(c) => panic!("{s:?} parsed as {}", c.normalized()),
            Err(e) => e,
        }
    }

    #[test]
    fn errors_name_the_part_and_the_field() {
        assert_eq!(err("25:00").to_string(), r#""25:00": hour 25 out of range 0..23"#);
        let e = err("Mon *-13-01 12:00");
        assert_eq!(e.part(), "*-13-01");
        assert_eq!(e.field(), Some(Field::Month));
        let e = err("*:50/15");
        assert_eq!(e.field(), Some(Field::Minute));
        assert!(e.to_string().contains("/15"), "{e}");
        assert_eq!(err("Fri..Mon").field(), Some(Field::Weekday));
        assert_eq!(err("Mond").field(), Some(Field::Weekday));
        assert_eq!(err("1969-01-01").field(), Some(Field::Year));
        assert_eq!(err("*-*~29").field(), Some(Field::Day));
        assert_eq!(err("*:*:0/0").field(), Some(Field::Second));
        assert_eq!(err("@-1").field(), Some(Field::Timestamp));
        assert_eq!(err("").reason(), &Reason::Empty);
    }

    #[test]
    fn rejects_what_systemd_rejects() {
        for s in [
            "",
            " 12:00",
            "12:00 ",
            "12:00  UTC",
            "UTC",
            "*",
            "12",
            "*/2:00",
            "*:*/5",
            "Mon,,Tue",
            "Mon..",
            "Mon.Tue",
            "Mon..Wed..Fri",
            "Mon-Wed-Fri",
            "Mon Tue",
            "Mon\t12:00",
            "*:0/60",
            "*:50/15",
            "5..1:00",
            "*-*~7..1",
            "*-*~1/1",
            "*-*~29",
            "*:*:1.",
            "*:*:59.9999999",
            "*:*:0..0.5",
            "*:*:0.5..1.2",
            "*:*:0/0.0000004",
            "24:00",
            "23:60",
            "*-00-01",
            "*-*-32",
            "2200-01-01",
            "100-01-01",
            "2027..2025-*-*",
            "1970/230-*-*",
            "*-*-2/30",
            "2024~01",
            "*-*-*-*",
            "*-*-* *",
            "12:",
            ":00",
            "*:*:*.5",
            "*-*-01..05~03",
            "@",
            "@-1",
            "@1700000000.5",
            "@5 ",
            "@1700000000 Mon",
            "@7258118400",
            "@99999999999999999999999",
            "12:00 Europe/Nowhere",
            "12:00 UTC UTC",
            "daily Europe//Berlin",
            "0/24:00",
            "*:*:0/60",
        ] {
            assert!(CalendarEvent::parse(s).is_err(), "{s:?} should be rejected");
        }
    }

    #[test]
    fn list_length_limit_is_systemds() {
        let list = |n: usize| {
            let items: Vec<String> = (0..n).map(|i| (i % 60).to_string()).collect();
            format!("*:{}", items.join(","))
        };
        assert!(CalendarEvent::parse(&list(241)).is_ok());
        assert!(CalendarEvent::parse(&list(242)).is_err());
    }

    #[test]
    fn zones() {
        let c = CalendarEvent::parse("12:00 posix/Europe/Berlin").unwrap();
        assert_eq!(c.time_zone(), Some(chrono_tz::Europe::Berlin));
        assert_eq!(c.normalized(), "*-*-* 12:00:00 posix/Europe/Berlin");
        assert_eq!(CalendarEvent::parse("daily").unwrap().time_zone(), None);
        assert_eq!(CalendarEvent::parse("@0").unwrap().time_zone(), Some(Tz::UTC));
    }
}
