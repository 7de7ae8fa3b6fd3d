//! The next wall-clock time of a calendar event: systemd 252's `find_next`, on bitsets.
//!
//! systemd walks the fields from year down to microseconds. For each field it takes the
//! smallest listed value at or above the current one — possibly past the field's end, like
//! day 34 — then lets `timegm` normalise the date and, when normalisation carried into a
//! higher field, resets the next lower field and starts over. Agreeing with systemd means
//! agreeing with that walk, including where its resets are incomplete (see the crate docs:
//! a carry over two fields keeps the lower field's value, so e.g. `*:0/25` skips 00:00 after
//! 23:50). The one place Cairn differs on purpose is systemd bug #40260: when the day carries
//! into a new *year*, systemd 252 keeps the day of month (`*-*-1/11` jumps from Dec 23 to
//! Jan 12); Cairn resets it to the 1st as the upstream fix (systemd PR #40266) does.
//!
//! Speed comes from precomputing, per field, the set of values the list can produce
//! (including the overflow values) as a bitset, so "smallest value ≥ v" is a mask and a
//! trailing-zero count instead of a walk over the list. No time zones here: the caller maps
//! wall-clock times to instants.

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};

use super::{CalendarEvent, Chain, Component, USEC_PER_SEC};
use crate::civil::{days_in_month, weekday_mon0};

const MIN_YEAR: i32 = 1970;
const MAX_YEAR: i32 = 2199;

/// A safety net only: the walk ends by year 2199 in a few thousand steps at most.
const MAX_STEPS: u32 = 1_000_000;

/// The seconds field: whole seconds as a bitset when possible, else the list in µs.
#[derive(Debug, Clone, Default)]
enum Seconds {
    /// No constraint (only reachable for hand-built events).
    #[default]
    Any,
    /// Bit s set when second s (0..=127, overflow included) matches.
    Whole(u128),
    /// Fractional seconds: systemd's list walk on microseconds.
    Micro(Vec<Component>),
}

/// Precomputed field sets of one calendar event.
#[derive(Debug, Clone, Default)]
pub(crate) struct Matcher {
    /// Bit (y - 1970) for each matching year up to 2199; `None` for `*`.
    years: Option<[u64; 4]>,
    /// Bit m for month values 1..=23 (values past 12 carry into the next year).
    months: u32,
    /// Day bitsets for months of 28, 29, 30 and 31 days (they differ only with `~`).
    days: [u64; 4],
    hours: u64,
    minutes: u128,
    seconds: Seconds,
    /// Weekday bits, bit 0 = Monday; 0x7f when any weekday matches.
    weekdays: u8,
}

/// Sets the bits of every value `chain` produces up to `limit`, shifted down by `offset`.
/// `map` turns a component into the (start, stop) actually walked (end-of-month days).
fn fill(chain: &[Component], offset: i32, limit: i32, map: impl Fn(&Component) -> (i32, i32)) -> [u64; 4] {
    let mut bits = [0u64; 4];
    let mut set = |v: i32| {
        if (offset..=limit).contains(&v) && v - offset < 256 {
            let i = (v - offset) as usize;
            bits[i / 64] |= 1 << (i % 64);
        }
    };
    for c in chain {
        let (start, stop) = map(c);
        set(start);
        if c.repeat > 0 {
            let mut v = start;
            loop {
                v += c.repeat;
                if (stop >= 0 && v > stop) || v > limit {
                    break;
                }
                set(v);
            }
        }
    }
    bits
}

fn identity(c: &Component) -> (i32, i32) {
    (c.start, c.stop)
}

/// A field bitset for `chain`, or all ones for `*` (the current value always matches).
fn field(chain: &Chain, limit: i32) -> [u64; 4] {
    match chain {
        None => [u64::MAX; 4],
        Some(items) => fill(items, 0, limit, identity),
    }
}

/// Smallest set bit ≥ `v` in a 256-bit set.
fn next_ge(bits: &[u64; 4], v: i32) -> Option<i32> {
    if v < 0 {
        return next_ge(bits, 0);
    }
    let v = v as usize;
    if v >= 256 {
        return None;
    }
    let mut word = v / 64;
    let mut masked = bits[word] & (u64::MAX << (v % 64));
    loop {
        if masked != 0 {
            return Some((word * 64) as i32 + masked.trailing_zeros() as i32);
        }
        word += 1;
        if word == 4 {
            return None;
        }
        masked = bits[word];
    }
}

fn next_ge64(bits: u64, v: i32) -> Option<i32> {
    if !(0..64).contains(&v) {
        return None;
    }
    let masked = bits & (u64::MAX << v);
    (masked != 0).then(|| masked.trailing_zeros() as i32)
}

fn next_ge128(bits: u128, v: i32) -> Option<i32> {
    if !(0..128).contains(&v) {
        return None;
    }
    let masked = bits & (u128::MAX << v);
    (masked != 0).then(|| masked.trailing_zeros() as i32)
}

/// systemd's `find_matching_component` on a list: smallest produced value ≥ `val`.
fn next_in_list(chain: &[Component], val: i32) -> Option<i32> {
    let mut best: Option<i32> = None;
    for c in chain {
        let candidate = if c.start >= val {
            Some(c.start)
        } else if c.repeat > 0 {
            let steps = (i64::from(val) - i64::from(c.start) + i64::from(c.repeat) - 1) / i64::from(c.repeat);
            let k = i64::from(c.start) + i64::from(c.repeat) * steps;
            (c.stop < 0 || k <= i64::from(c.stop)).then_some(k).and_then(|k| i32::try_from(k).ok())
        } else {
            None
        };
        if let Some(k) = candidate {
            best = Some(best.map_or(k, |b| b.min(k)));
        }
    }
    best
}

impl Matcher {
    pub(crate) fn compile(event: &CalendarEvent) -> Matcher {
        let years = event.year.as_deref().map(|items| fill(items, MIN_YEAR, MAX_YEAR, identity));
        let months = field(&event.month, 31)[0] as u32;
        let mut days = [0u64; 4];
        for (i, slot) in days.iter_mut().enumerate() {
            let len = 28 + i as i32;
            *slot = match (&event.day, event.end_of_month) {
                (None, _) => u64::MAX,
                (Some(items), false) => fill(items, 0, 63, identity)[0],
                (Some(items), true) => fill(items, 0, 63, |c| {
                    // `~d` is the d-th last day; a range `~a..b` runs from the b-th last
                    // day up to the a-th last (systemd swaps the ends).
                    let from_end = |d: i32| len + 1 - d;
                    if c.stop >= 0 { (from_end(c.stop), from_end(c.start)) } else { (from_end(c.start), -1) }
                })[0],
            };
        }
        let hours = field(&event.hour, 63)[0];
        let minutes = {
            let b = field(&event.minute, 127);
            u128::from(b[0]) | (u128::from(b[1]) << 64)
        };
        let seconds = match &event.second {
            None => Seconds::Any,
            Some(items)
                if items.iter().all(|c| {
                    c.start % USEC_PER_SEC == 0
                        && (c.stop < 0 || c.stop % USEC_PER_SEC == 0)
                        && c.repeat % USEC_PER_SEC == 0
                }) =>
            {
                let whole: Vec<Component> = items
                    .iter()
                    .map(|c| Component {
                        start: c.start / USEC_PER_SEC,
                        stop: if c.stop < 0 { -1 } else { c.stop / USEC_PER_SEC },
                        repeat: c.repeat / USEC_PER_SEC,
                    })
                    .collect();
                let b = fill(&whole, 0, 127, identity);
                Seconds::Whole(u128::from(b[0]) | (u128::from(b[1]) << 64))
            }
            Some(items) => Seconds::Micro(items.clone()),
        };
        Matcher { years, months, days, hours, minutes, seconds, weekdays: event.weekdays.unwrap_or(0x7f) }
    }

    fn next_year(&self, year: i32) -> Option<i32> {
        match &self.years {
            None => Some(year),
            Some(bits) => next_ge(bits, year - MIN_YEAR).map(|i| i + MIN_YEAR),
        }
    }

    fn next_usec(&self, val: i32) -> Option<i32> {
        match &self.seconds {
            Seconds::Any => Some(val),
            Seconds::Whole(bits) => {
                let whole = (val + USEC_PER_SEC - 1) / USEC_PER_SEC;
                next_ge128(*bits, whole).map(|s| s * USEC_PER_SEC)
            }
            Seconds::Micro(items) => next_in_list(items, val),
        }
    }

    /// The first wall-clock time at or after `from` that systemd's walk stops at, with
    /// #40260 fixed unless `bug_40260` asks for systemd 252's exact walk (tests compare
    /// against recorded systemd answers with it). `None` when nothing matches up to 2199.
    pub(crate) fn next_local(&self, from: NaiveDateTime, bug_40260: bool) -> Option<NaiveDateTime> {
        let (mut c, mut usec) = Tm::from_naive(from);
        for _ in 0..MAX_STEPS {
            c.normalize();

            // Year.
            let year = self.next_year(c.year)?;
            if year != c.year {
                c.year = year;
                c.reset_below_year();
                usec = 0;
            }
            if c.within_bounds(bug_40260) != Bounds::Inside {
                return None;
            }

            // Month (1-based values; past 12 carries into the next year).
            match next_ge64(u64::from(self.months), c.mon + 1) {
                None => {
                    c.year += 1;
                    c.reset_below_year();
                    usec = 0;
                    continue;
                }
                Some(m) if m != c.mon + 1 => {
                    c.mon = m - 1;
                    c.reset_below_month();
                    usec = 0;
                }
                Some(_) => {}
            }
            match c.within_bounds(bug_40260) {
                Bounds::Inside => {}
                Bounds::Normalized => continue,
                Bounds::TooLate => {
                    c.year += 1;
                    c.reset_below_year();
                    usec = 0;
                    continue;
                }
            }

            // Day of month.
            let len = days_in_month(c.year, (c.mon + 1) as u32);
            match next_ge64(self.days[(len - 28) as usize], c.mday) {
                None => {
                    c.mon += 1;
                    c.reset_below_month();
                    usec = 0;
                    continue;
                }
                Some(d) if d != c.mday => {
                    c.mday = d;
                    c.reset_below_day();
                    usec = 0;
                }
                Some(_) => {}
            }
            match c.within_bounds(bug_40260) {
                Bounds::Inside => {}
                Bounds::Normalized => continue,
                Bounds::TooLate => {
                    c.mon += 1;
                    c.reset_below_month();
                    usec = 0;
                    continue;
                }
            }

            // Weekday.
            if self.weekdays != 0x7f {
                let wd = weekday_mon0(c.year, (c.mon + 1) as u32, c.mday as u32);
                if self.weekdays & (1 << wd) == 0 {
                    c.mday += 1;
                    c.reset_below_day();
                    usec = 0;
                    continue;
                }
            }

            // Hour.
            match next_ge64(self.hours, c.hour) {
                None => {
                    c.mday += 1;
                    c.reset_below_day();
                    usec = 0;
                    continue;
                }
                Some(h) if h != c.hour => {
                    c.hour = h;
                    c.min = 0;
                    c.sec = 0;
                    usec = 0;
                }
                Some(_) => {}
            }
            match c.within_bounds(bug_40260) {
                Bounds::Inside => {}
                Bounds::Normalized => continue,
                Bounds::TooLate => {
                    c.mday += 1;
                    c.reset_below_day();
                    usec = 0;
                    continue;
                }
            }

            // Minute.
            match next_ge128(self.minutes, c.min) {
                None => {
                    c.hour += 1;
                    c.min = 0;
                    c.sec = 0;
                    usec = 0;
                    continue;
                }
                Some(m) if m != c.min => {
                    c.min = m;
                    c.sec = 0;
                    usec = 0;
                }
                Some(_) => {}
            }
            match c.within_bounds(bug_40260) {
                Bounds::Inside => {}
                Bounds::Normalized => continue,
                Bounds::TooLate => {
                    c.hour += 1;
                    c.min = 0;
                    c.sec = 0;
                    usec = 0;
                    continue;
                }
            }

            // Seconds, in µs.
            match self.next_usec(c.sec * USEC_PER_SEC + usec) {
                None => {
                    c.min += 1;
                    c.sec = 0;
                    usec = 0;
                    continue;
                }
                Some(v) => {
                    c.sec = v / USEC_PER_SEC;
                    usec = v % USEC_PER_SEC;
                }
            }
            match c.within_bounds(bug_40260) {
                Bounds::Inside => {}
                Bounds::Normalized => continue,
                Bounds::TooLate => {
                    c.min += 1;
                    c.sec = 0;
                    usec = 0;
                    continue;
                }
            }
            return c.to_naive(usec);
        }
        None
    }
}

/// Broken-down wall-clock time like C's `struct tm` (month 0-based, full year).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tm {
    year: i32,
    mon: i32,
    mday: i32,
    hour: i32,
    min: i32,
    sec: i32,
}

/// Outcome of systemd's `tm_within_bounds`.
#[derive(Debug, PartialEq, Eq)]
enum Bounds {
    /// The fields were already a valid date-time.
    Inside,
    /// They overflowed; now normalised, with the next lower field reset.
    Normalized,
    /// Past 2199.
    TooLate,
}

impl Tm {
    fn from_naive(t: NaiveDateTime) -> (Tm, i32) {
        let usec = (t.nanosecond() / 1000).min(999_999) as i32;
        (
            Tm {
                year: t.year(),
                mon: t.month0() as i32,
                mday: t.day() as i32,
                hour: t.hour() as i32,
                min: t.minute() as i32,
                // A leap second (chrono's nanosecond ≥ 1e9) reads as :59.
                sec: t.second().min(59) as i32,
            },
            usec,
        )
    }

    fn to_naive(self, usec: i32) -> Option<NaiveDateTime> {
        NaiveDate::from_ymd_opt(self.year, (self.mon + 1) as u32, self.mday as u32)?.and_hms_micro_opt(
            self.hour as u32,
            self.min as u32,
            self.sec as u32,
            usec as u32,
        )
    }

    fn reset_below_year(&mut self) {
        self.mon = 0;
        self.reset_below_month();
    }

    fn reset_below_month(&mut self) {
        self.mday = 1;
        self.reset_below_day();
    }

    fn reset_below_day(&mut self) {
        self.hour = 0;
        self.min = 0;
        self.sec = 0;
    }

    /// `timegm` normalisation for fields that only ever overflow upwards.
    fn normalize(&mut self) {
        if self.sec >= 60 {
            self.min += self.sec / 60;
            self.sec %= 60;
        }
        if self.min >= 60 {
            self.hour += self.min / 60;
            self.min %= 60;
        }
        if self.hour >= 24 {
            self.mday += self.hour / 24;
            self.hour %= 24;
        }
        if self.mon >= 12 {
            self.year += self.mon / 12;
            self.mon %= 12;
        }
        loop {
            let len = days_in_month(self.year, (self.mon + 1) as u32) as i32;
            if self.mday <= len {
                break;
            }
            self.mday -= len;
            self.mon += 1;
            if self.mon == 12 {
                self.mon = 0;
                self.year += 1;
            }
        }
    }

    /// systemd's `tm_within_bounds` with the #40266 fix: when normalisation changed a field,
    /// keep the normalised time but reset the field just below the highest one that changed.
    fn within_bounds(&mut self, bug_40260: bool) -> Bounds {
        if self.year > MAX_YEAR {
            return Bounds::TooLate;
        }
        let mut t = *self;
        t.normalize();
        if t == *self {
            return Bounds::Inside;
        }
        if t.year != self.year {
            t.mon = 0;
            // systemd 252 stops here (bug #40260); the upstream fix resets the day as well.
            if !bug_40260 {
                t.mday = 1;
            }
        } else if t.mon != self.mon {
            t.mday = 1;
        } else if t.mday != self.mday {
            t.hour = 0;
        } else if t.hour != self.hour {
            t.min = 0;
        } else if t.min != self.min {
            t.sec = 0;
        }
        *self = t;
        Bounds::Normalized
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn next(expr: &str, from: &str) -> Option<String> {
        let event = CalendarEvent::parse(expr).unwrap();
        let from = NaiveDateTime::parse_from_str(from, "%Y-%m-%d %H:%M:%S%.f").unwrap();
        event.next_local(from).map(|t| t.format("%Y-%m-%d %H:%M:%S%.f").to_string())
    }

    #[test]
    fn bug_40260_is_fixed() {
        // systemd 252 answers 2025-01-12 23:00 here.
        assert_eq!(next("*-*-1/11 23:00", "2024-12-23 23:30:00").as_deref(), Some("2025-01-01 23:00:00"));
    }

    #[test]
    fn reproduces_systemds_incomplete_resets() {
        // systemd 252 (and later) skip 00:00 after a minute carry crosses midnight.
        assert_eq!(next("*:0/25", "2024-01-30 23:55:00").as_deref(), Some("2024-01-31 00:25:00"));
        // ... and keep the fraction of a second after a seconds carry.
        assert_eq!(next("*:*:0/25.5", "2024-01-31 23:59:58").as_deref(), Some("2024-02-01 00:00:25.500"));
        assert_eq!(
            next("*:*:0/25.5", "2024-02-01 00:00:51.000001").as_deref(),
            Some("2024-02-01 00:01:25.500")
        );
    }

    #[test]
    fn end_of_month() {
        assert_eq!(next("*-*~03/2 12:00", "2024-02-01 00:00:00").as_deref(), Some("2024-02-27 12:00:00"));
        assert_eq!(next("Mon *-05~07/1", "2024-01-01 00:00:00").as_deref(), Some("2024-05-27 00:00:00"));
        assert_eq!(next("*-02~01", "2023-03-01 00:00:00").as_deref(), Some("2024-02-29 00:00:00"));
    }

    #[test]
    fn finite_and_empty_sets_end() {
        assert_eq!(next("*-04-31", "2024-01-01 00:00:00"), None);
        assert_eq!(next("*-02-30", "1970-01-01 00:00:00"), None);
        assert_eq!(next("2199-12-31", "2199-12-31 00:00:00.000001"), None);
        assert_eq!(next("2199-12-31", "2199-12-30 00:00:00").as_deref(), Some("2199-12-31 00:00:00"));
        assert_eq!(next("*-*-* 00:00", "2199-12-31 00:00:01"), None);
    }
}
