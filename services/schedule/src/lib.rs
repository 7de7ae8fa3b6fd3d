//! Cairn's schedule maths: recurrences, next fire times, DST, jitter. Pure — no I/O, no clock.
//!
//! The scheduler, `PreviewSchedule` and the forecast all ask this crate "when does this
//! schedule fire next?"; it must never read the clock, the environment or the disk (callers
//! pass every instant in), and it never panics on input.
//!
//! # API
//!
//! ```text
//! enum Recurrence { Calendar(CalendarEvent), Cron(CronExpr), Interval(Interval), Preset(Preset) }
//! CalendarEvent::parse(&str) -> Result<CalendarEvent, Error>   .normalized() -> String   .time_zone() -> Option<Tz>
//! CronExpr::parse(&str) -> Result<CronExpr, Error>
//! Interval::new(days, hours, minutes) -> Result<Interval, Error>   .duration() -> chrono::Duration
//! Preset::{TwiceDaily, Daily, Weekly, Every30Days}.interval() -> Interval
//! struct Schedule { recurrence, time_zone: Tz, anchor: Option<DateTime<Utc>> }
//! Schedule::new(recurrence, time_zone, anchor) -> Result<Schedule, Error>   // anchor required for intervals
//! Schedule::next_after(&self, after) -> Option<DateTime<Utc>>   // strictly after; None = never again
//! Schedule::iter_after(&self, after) -> impl Iterator<Item = DateTime<Utc>>
//! parse_time_zone(&str) -> Result<Tz, Error>                    // "" = UTC
//! jitter(key: &[u8], occurrence, max: std::time::Duration) -> std::time::Duration
//! Error: Display `"<part>": <reason>`, e.g. `"25:00": hour 25 out of range 0..23`; .part() .field() .reason()
//! ```
//!
//! ```
//! use cairn_schedule::{CalendarEvent, Recurrence, Schedule};
//! let event = CalendarEvent::parse("Mon..Fri 18:00")?;
//! assert_eq!(event.normalized(), "Mon..Fri *-*-* 18:00:00");
//! let schedule = Schedule::new(Recurrence::Calendar(event), chrono_tz::Europe::Berlin, None)?;
//! let after = "2024-01-30T10:15:00Z".parse()?;
//! let next: Vec<_> = schedule.iter_after(after).take(2).map(|t| t.to_rfc3339()).collect();
//! assert_eq!(next, ["2024-01-30T17:00:00+00:00", "2024-01-31T17:00:00+00:00"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Calendar events
//!
//! The whole calendar-event grammar of systemd.time(7) as systemd 252 accepts it: weekday
//! names (`Mon`, `Monday`, any case) in lists and ranges (`..`, legacy `-`); `[YEAR-]MONTH-DAY`
//! and `HOUR:MINUTE[:SECOND]` whose components are `*`, values, `a..b` ranges, lists and
//! `/step`s (also on ranges); two-digit years (00–69 → 20xx, 70–99 → 19xx); `~` counting days
//! from the month's end (`*-*~01` last day, `Mon *-05~07/1` last Monday of May); seconds with
//! up to six decimals (a seventh rounds); every shorthand (`minutely hourly daily weekly
//! monthly yearly annually quarterly semiannually semi-annually`, and systemd's `anually`,
//! `biannually`, `bi-annually`); `@EPOCH`; a trailing `UTC` or IANA zone (it overrides the
//! schedule's zone). Years run 1970–2199 as in systemd; later expressions never fire.
//! Whatever `systemd-analyze calendar` 252 rejects is rejected, with an error naming the part.
//!
//! Next fire times agree with `systemd-analyze calendar` 252 (the committed vector file
//! `tests/data/systemd-vectors.json` holds thousands of its answers) except in two places:
//!
//! * **systemd bug #40260** (fixed upstream by PR #40266): when a day repetition carries past
//!   December 31st, systemd 252 keeps the overflowed day of month in January, so
//!   `*-*-1/11 23:00` jumps from Dec 23 to Jan 12. Cairn resets the day to the 1st and fires on
//!   Jan 1, as fixed systemd does.
//! * **DST**, below.
//!
//! Other carry quirks of systemd's search are reproduced on purpose, because they are still
//! in systemd and Cairn promises systemd's answers: when a repetition overflows a field and
//! the carry crosses *two* fields, systemd resets only the field just below the highest one
//! that changed. So `*:0/25` after 23:50 fires at 00:25, not 00:00; `0/5:00` after 20:00 on
//! the last day of a month fires at 05:00 on the 1st; `*:*:0/25` after :59:50 fires at :00:25
//! of the next hour; and a fractional seconds repetition keeps its fraction across such a
//! carry (`*:*:0/25.5` fires at xx:00:25.5 after a minute carry, not xx:00:00).
//!
//! # DST: Cairn's rule
//!
//! Calendar and cron times are wall-clock times in the schedule's zone (or the expression's).
//! A wall-clock time inside a spring-forward gap fires at the end of the gap (02:30 fires at
//! 03:00 when clocks jump from 02:00 to 03:00; systemd drops it). A wall-clock time that occurs
//! twice fires once, at its first occurrence (as systemd does when counting from before the
//! fold; counting from inside the fold's second pass systemd fires the remaining repeated
//! times again, Cairn does not). Fire times strictly increase: several gap times collapse
//! into one fire at the end of the gap. Interval and preset recurrences are absolute
//! durations and ignore zones.
//!
//! Cairn searches wall-clock time without consulting the zone and resolves only the answer,
//! so a DST change matters only for the times in its gap or fold. systemd normalises every
//! intermediate candidate with `mktime` and keeps the DST flag it gets back; when a day or
//! month carry steps over a change (up to a month ahead), its answer can shift by the DST
//! delta although no gap or fold is involved (e.g. `*-1/18 *:02,8..49:*` in
//! Australia/Lord_Howe from 2023-03-27: systemd 00:30 on April 1st, Cairn 00:02), and in rare
//! cases systemd gives up ("Infinite loop in calendar calculation"). Cairn keeps the plain
//! wall-clock answer.
//!
//! # Cron
//!
//! Five fields, Vixie-cron dialect; see [`CronExpr`].
//!
//! # Intervals and presets
//!
//! `anchor + k × interval`, k ≥ 0: the anchor is the first fire time. [`Schedule::new`]
//! refuses an interval or preset without an anchor; a `Schedule` built by hand without one
//! counts from the Unix epoch.
//!
//! # Fuzzing
//!
//! `fuzz/` at the workspace root (outside the workspace) holds a cargo-fuzz target that feeds
//! arbitrary strings to both parsers and computes fire times for what parses:
//!
//! ```text
//! cargo install cargo-fuzz
//! cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run parse -- -max_total_time=300
//! ```
//!
//! # Layout
//!
//! `calendar/` (grammar, printer, systemd's search), `cron.rs`, `interval.rs`, `zone.rs`
//! (wall clock → instant, the DST rule, zone names), `jitter.rs`, `civil.rs` (date
//! arithmetic), `error.rs`.

mod calendar;
mod civil;
mod cron;
mod error;
mod interval;
mod jitter;
mod zone;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

pub use calendar::CalendarEvent;
pub use cron::CronExpr;
pub use error::{Error, Field, Reason};
pub use interval::{Interval, MAX_INTERVAL_DAYS, Preset};
pub use jitter::jitter;
pub use zone::parse_time_zone;

/// How a schedule recurs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recurrence {
    /// A systemd calendar event.
    Calendar(CalendarEvent),
    /// A 5-field cron expression.
    Cron(CronExpr),
    /// A custom interval from the anchor.
    Interval(Interval),
    /// A named interval from the anchor.
    Preset(Preset),
}

impl Recurrence {
    /// Parses a calendar event into a recurrence.
    pub fn calendar(expr: &str) -> Result<Self, Error> {
        CalendarEvent::parse(expr).map(Recurrence::Calendar)
    }

    /// Parses a cron expression into a recurrence.
    pub fn cron(expr: &str) -> Result<Self, Error> {
        CronExpr::parse(expr).map(Recurrence::Cron)
    }

    fn interval(&self) -> Option<Interval> {
        match self {
            Recurrence::Interval(i) => Some(*i),
            Recurrence::Preset(p) => Some(p.interval()),
            Recurrence::Calendar(_) | Recurrence::Cron(_) => None,
        }
    }
}

impl zone::LocalSearch for CalendarEvent {
    fn next_local(&self, from: chrono::NaiveDateTime) -> Option<chrono::NaiveDateTime> {
        CalendarEvent::next_local(self, from)
    }
}

impl zone::LocalSearch for CronExpr {
    fn next_local(&self, from: chrono::NaiveDateTime) -> Option<chrono::NaiveDateTime> {
        CronExpr::next_local(self, from)
    }
}

/// systemd counts calendar events from instants at or after the Unix epoch only; earlier
/// `after`s start there, so nothing fires before 1970-01-01T00:00:00Z.
fn calendar_floor(after: DateTime<Utc>) -> DateTime<Utc> {
    after.max(DateTime::UNIX_EPOCH - chrono::Duration::microseconds(1))
}

/// Test support, not API: systemd 252's exact answers (bug #40260 included), so that
/// Cairn's tests can tell a #40260 difference from a real one in recorded systemd vectors.
#[doc(hidden)]
pub mod compat {
    use super::*;

    struct Systemd252<'a>(&'a CalendarEvent);

    impl zone::LocalSearch for Systemd252<'_> {
        fn next_local(&self, from: chrono::NaiveDateTime) -> Option<chrono::NaiveDateTime> {
            self.0.next_local_systemd_252(from)
        }
    }

    /// [`Schedule::next_after`] for a calendar event as systemd 252 computes it (outside DST
    /// changes, where Cairn's rule applies either way).
    pub fn calendar_next_after_systemd_252(
        event: &CalendarEvent,
        time_zone: Tz,
        after: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let tz = event.time_zone().unwrap_or(time_zone);
        zone::next_after(&Systemd252(event), tz, calendar_floor(after))
    }
}

/// A recurrence with the zone its wall-clock times live in and the anchor of intervals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// How it recurs.
    pub recurrence: Recurrence,
    /// Zone of calendar and cron times (a zone inside a calendar expression wins).
    pub time_zone: Tz,
    /// First fire time of interval and preset recurrences; ignored by calendar and cron.
    pub anchor: Option<DateTime<Utc>>,
}

impl Schedule {
    /// A schedule; interval and preset recurrences need an anchor.
    pub fn new(recurrence: Recurrence, time_zone: Tz, anchor: Option<DateTime<Utc>>) -> Result<Self, Error> {
        if recurrence.interval().is_some() && anchor.is_none() {
            return Err(Error::new("anchor", Reason::MissingAnchor));
        }
        Ok(Schedule { recurrence, time_zone, anchor })
    }

    /// First fire time strictly after `after`; `None` when the recurrence never fires again.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.recurrence {
            Recurrence::Calendar(event) => {
                let tz = event.time_zone().unwrap_or(self.time_zone);
                zone::next_after(event, tz, calendar_floor(after))
            }
            Recurrence::Cron(cron) => zone::next_after(cron, self.time_zone, after),
            Recurrence::Interval(i) => i.next_after(self.anchor_or_epoch(), after),
            Recurrence::Preset(p) => p.interval().next_after(self.anchor_or_epoch(), after),
        }
    }

    /// Fire times strictly after `after`, in increasing order; ends when the recurrence does.
    pub fn iter_after(&self, after: DateTime<Utc>) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        std::iter::successors(self.next_after(after), move |&t| self.next_after(t))
    }

    fn anchor_or_epoch(&self) -> DateTime<Utc> {
        self.anchor.unwrap_or(DateTime::UNIX_EPOCH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_need_an_anchor() {
        let r = Recurrence::Preset(Preset::Daily);
        assert_eq!(Schedule::new(r.clone(), Tz::UTC, None).unwrap_err().reason(), &Reason::MissingAnchor);
        let anchor = "2024-01-30T10:15:00Z".parse().unwrap();
        let s = Schedule::new(r, chrono_tz::Europe::Berlin, Some(anchor)).unwrap();
        let got: Vec<_> = s.iter_after("2024-01-01T00:00:00Z".parse().unwrap()).take(2).collect();
        assert_eq!(got[0], anchor);
        assert_eq!(got[1], "2024-01-31T10:15:00Z".parse::<DateTime<Utc>>().unwrap());
    }

    #[test]
    fn expression_zone_overrides_schedule_zone() {
        let s = Schedule::new(
            Recurrence::calendar("12:00 America/New_York").unwrap(),
            chrono_tz::Europe::Berlin,
            None,
        )
        .unwrap();
        let next = s.next_after("2024-01-30T00:00:00Z".parse().unwrap());
        assert_eq!(next, Some("2024-01-30T17:00:00Z".parse().unwrap()));
    }

    #[test]
    fn finite_recurrences_end() {
        let s = Schedule::new(Recurrence::calendar("@1700000000").unwrap(), Tz::UTC, None).unwrap();
        let all: Vec<_> = s.iter_after(DateTime::UNIX_EPOCH).collect();
        assert_eq!(all, vec![DateTime::from_timestamp(1_700_000_000, 0).unwrap()]);
        let never = Schedule::new(Recurrence::calendar("*-04-31").unwrap(), Tz::UTC, None).unwrap();
        assert_eq!(never.iter_after(DateTime::UNIX_EPOCH).count(), 0);
    }
}
