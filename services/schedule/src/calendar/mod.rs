//! systemd calendar events (`OnCalendar=` syntax of systemd.time(7)), as systemd 252 reads them.
//!
//! [`CalendarEvent::parse`] accepts exactly what `systemd-analyze calendar` 252 accepts and
//! rejects the rest with an [`Error`](crate::Error) naming the bad part; [`CalendarEvent::normalized`]
//! prints systemd's "Normalized form:" line. The next-fire search lives in [`next`] and works
//! on wall-clock fields only; turning wall-clock times into instants (and Cairn's DST rule) is
//! the job of [`crate::zone`]. Nothing here reads the clock, the environment or the disk.
//!
//! Layout: `parse.rs` (grammar, normalisation, validation), `next.rs` (the search),
//! this file (the type and the printer).

mod next;
mod parse;

use std::fmt::Write as _;

use chrono::NaiveDateTime;
use chrono_tz::Tz;

use crate::Error;

pub(crate) use next::Matcher;
pub(crate) use parse::zone_file_name as zone_name;

/// Microseconds in a second: systemd keeps the seconds field in microseconds.
pub(crate) const USEC_PER_SEC: i32 = 1_000_000;

/// One element of a comma-separated list: `start`, `start..stop`, `start/repeat`,
/// `start..stop/repeat`. `stop` is -1 when absent, `repeat` 0 when absent. Seconds are in µs.
///
/// The derived order (start, stop, repeat) is systemd's sort order for normalised lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Component {
    pub(crate) start: i32,
    pub(crate) stop: i32,
    pub(crate) repeat: i32,
}

/// A list of components; `None` is `*` (any value).
pub(crate) type Chain = Option<Vec<Component>>;

/// Where an expression's wall-clock times live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ZoneSpec {
    /// No zone in the expression: the schedule's zone applies.
    Schedule,
    /// A trailing `UTC`, or an `@EPOCH` timestamp.
    Utc,
    /// A trailing IANA zone name, kept as written for the normalised form.
    Named { name: String, tz: Tz },
}

/// A parsed systemd calendar event such as `Mon..Fri *-*-* 18:00` or `*-*~01 03:00 Europe/Berlin`.
#[derive(Debug, Clone)]
pub struct CalendarEvent {
    /// Weekday bits, bit 0 = Monday; `None` when every weekday matches.
    pub(crate) weekdays: Option<u8>,
    pub(crate) year: Chain,
    pub(crate) month: Chain,
    pub(crate) day: Chain,
    pub(crate) hour: Chain,
    pub(crate) minute: Chain,
    /// Seconds in microseconds.
    pub(crate) second: Chain,
    /// `~` in the date: days count back from the end of the month.
    pub(crate) end_of_month: bool,
    pub(crate) zone: ZoneSpec,
    /// Boxed: it is large, and `Recurrence` should stay small.
    pub(crate) matcher: Box<Matcher>,
}

impl PartialEq for CalendarEvent {
    fn eq(&self, other: &Self) -> bool {
        // The matcher is derived from the other fields.
        self.weekdays == other.weekdays
            && self.year == other.year
            && self.month == other.month
            && self.day == other.day
            && self.hour == other.hour
            && self.minute == other.minute
            && self.second == other.second
            && self.end_of_month == other.end_of_month
            && self.zone == other.zone
    }
}

impl Eq for CalendarEvent {}

impl std::str::FromStr for CalendarEvent {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        CalendarEvent::parse(s)
    }
}

impl std::fmt::Display for CalendarEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.normalized())
    }
}

impl CalendarEvent {
    /// Parses a calendar event with systemd 252's grammar (see the crate docs for the forms).
    pub fn parse(input: &str) -> Result<Self, Error> {
        parse::parse(input)
    }

    /// systemd's normalised form, e.g. `Mon..Fri *-*-* 18:00:00` for `Mon-Fri 18:00`.
    pub fn normalized(&self) -> String {
        let mut out = String::new();
        if let Some(bits) = self.weekdays {
            format_weekdays(&mut out, bits);
            out.push(' ');
        }
        format_chain(&mut out, 4, &self.year, false);
        out.push('-');
        format_chain(&mut out, 2, &self.month, false);
        out.push(if self.end_of_month { '~' } else { '-' });
        format_chain(&mut out, 2, &self.day, false);
        out.push(' ');
        format_chain(&mut out, 2, &self.hour, false);
        out.push(':');
        format_chain(&mut out, 2, &self.minute, false);
        out.push(':');
        format_chain(&mut out, 2, &self.second, true);
        match &self.zone {
            ZoneSpec::Schedule => {}
            ZoneSpec::Utc => out.push_str(" UTC"),
            ZoneSpec::Named { name, .. } => {
                out.push(' ');
                out.push_str(name);
            }
        }
        out
    }

    /// The zone written in the expression (`UTC`, an IANA name, or UTC for `@EPOCH`);
    /// `None` when the schedule's zone applies.
    pub fn time_zone(&self) -> Option<Tz> {
        match &self.zone {
            ZoneSpec::Schedule => None,
            ZoneSpec::Utc => Some(Tz::UTC),
            ZoneSpec::Named { tz, .. } => Some(*tz),
        }
    }

    /// The first wall-clock time at or after `from` that systemd's search yields.
    pub(crate) fn next_local(&self, from: NaiveDateTime) -> Option<NaiveDateTime> {
        self.matcher.next_local(from, false)
    }

    /// Like [`Self::next_local`] but with systemd 252's bug #40260 left in.
    pub(crate) fn next_local_systemd_252(&self, from: NaiveDateTime) -> Option<NaiveDateTime> {
        self.matcher.next_local(from, true)
    }
}

/// Weekday names in systemd's compact form: runs of three or more become `a..b`.
fn format_weekdays(out: &mut String, bits: u8) {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let mut need_comma = false;
    let mut run_start: Option<usize> = None;
    for x in 0..=7usize {
        let set = x < 7 && bits & (1 << x) != 0;
        if set {
            if run_start.is_none() {
                if need_comma {
                    out.push(',');
                }
                need_comma = true;
                out.push_str(DAYS[x]);
                run_start = Some(x);
            }
        } else if let Some(l) = run_start.take()
            && x > l + 1
        {
            out.push_str(if x > l + 2 { ".." } else { "," });
            out.push_str(DAYS[x - 1]);
        }
    }
}

/// One field as systemd prints it: zero-padded values, `..stop`, `/repeat`, fractions of seconds.
fn format_chain(out: &mut String, width: usize, chain: &Chain, usec: bool) {
    let Some(items) = chain else {
        out.push('*');
        return;
    };
    let d = if usec { USEC_PER_SEC } else { 1 };
    // systemd 252 prints the whole seconds list as `*` as soon as one element is `0/1`
    // (e.g. `*:*:5,0/1` → `*`); the other elements still count when matching.
    if usec && items.iter().any(|c| c.start == 0 && c.stop < 0 && c.repeat == d) {
        out.push('*');
        return;
    }
    for (i, c) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{:0width$}", c.start / d);
        if c.start % d > 0 {
            let _ = write!(out, ".{:06}", c.start % d);
        }
        if c.stop > 0 {
            let _ = write!(out, "..{:0width$}", c.stop / d);
            if c.stop % d > 0 {
                let _ = write!(out, ".{:06}", c.stop % d);
            }
        }
        if c.repeat > 0 && !(c.stop > 0 && c.repeat == d) {
            let _ = write!(out, "/{}", c.repeat / d);
            if c.repeat % d > 0 {
                let _ = write!(out, ".{:06}", c.repeat % d);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        match CalendarEvent::parse(s) {
            Ok(c) => c.normalized(),
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn normalized_forms_match_systemd() {
        // Each pair was printed by `systemd-analyze calendar` 252.
        let cases = [
            ("02:00", "*-*-* 02:00:00"),
            ("Mon-Wed,Fri", "Mon..Wed,Fri *-*-* 00:00:00"),
            ("Sat..Sun,Mon", "Mon,Sat,Sun *-*-* 00:00:00"),
            ("Mon..Sun", "*-*-* 00:00:00"),
            ("Sun,Sat", "Sat,Sun *-*-* 00:00:00"),
            ("*:0/59", "*-*-* *:00/59:00"),
            ("8..17/2:00", "*-*-* 08..16/2:00:00"),
            ("1..10/10:00", "*-*-* 01:00:00"),
            ("*:*:0..10/2.5", "*-*-* *:*:00..10/2.500000"),
            ("*:*:1.5..3", "*-*-* *:*:01.500000..02.500000"),
            ("*:*:0..0.5/0.25", "*-*-* *:*:00..00.500000/0.250000"),
            ("*:*:0.1234567", "*-*-* *:*:00.123457"),
            ("*:*:0.9999995", "*-*-* *:*:01"),
            ("*:*:5,3,1..4", "*-*-* *:*:01..04,03,05"),
            ("1,1..3:00", "*-*-* 01,01..03:00:00"),
            ("*-*-* 0/1:0/1:0/1", "*-*-* 00/1:00/1:*"),
            ("*-*-* *:*:00..59", "*-*-* *:*:00..59"),
            ("*:*:5,0/1,7", "*-*-* *:*:*"),
            ("*:*:0,0/1", "*-*-* *:*:*"),
            ("*:*:0..10,0/1", "*-*-* *:*:*"),
            ("*:0,0/1", "*-*-* *:00,00/1:00"),
            ("quarterly", "*-01,04,07,10-01 00:00:00"),
            ("weekly Europe/Berlin", "Mon *-*-* 00:00:00 Europe/Berlin"),
            ("12:00 utc", "*-*-* 12:00:00 UTC"),
            ("@1700000000 Europe/Berlin", "2023-11-14 22:13:20 UTC"),
            ("Mon @1700000000", "Mon 2023-11-14 22:13:20 UTC"),
            ("25..27-*-*", "2025..2027-*-* 00:00:00"),
            ("*~*", "*-*-* 00:00:00"),
            ("*-1~2..3", "*-01~02..03 00:00:00"),
        ];
        for (input, want) in cases {
            assert_eq!(norm(input), want, "input {input:?}");
        }
    }
}
