//! The one error type of this crate: which part of an input is bad and why.
//!
//! Every parser and constructor returns [`Error`]; its `Display` quotes the offending part
//! of the input first (`"25:00": hour 25 out of range 0..23`) so that a message shown to a
//! user points at what to fix. This module only describes errors; it never logs them.

use std::fmt;

/// A field of a calendar event or cron expression, named the way users write about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// The whole expression (used when no single field is at fault).
    Expression,
    /// Weekday names in a calendar event (`Mon..Fri`).
    Weekday,
    /// The year of a calendar event date.
    Year,
    /// The month of a calendar event date or the month field of cron.
    Month,
    /// The day of a calendar event date.
    Day,
    /// Hours of a calendar event or the hour field of cron.
    Hour,
    /// Minutes of a calendar event or the minute field of cron.
    Minute,
    /// Seconds of a calendar event.
    Second,
    /// The day-of-month field of cron.
    DayOfMonth,
    /// The day-of-week field of cron.
    DayOfWeek,
    /// An `@EPOCH` timestamp of a calendar event.
    Timestamp,
    /// A time zone name.
    TimeZone,
    /// An interval recurrence.
    Interval,
    /// The anchor (start time) of an interval or preset recurrence.
    Anchor,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Expression => "expression",
            Field::Weekday => "weekday",
            Field::Year => "year",
            Field::Month => "month",
            Field::Day => "day",
            Field::Hour => "hour",
            Field::Minute => "minute",
            Field::Second => "second",
            Field::DayOfMonth => "day-of-month",
            Field::DayOfWeek => "day-of-week",
            Field::Timestamp => "timestamp",
            Field::TimeZone => "time zone",
            Field::Interval => "interval",
            Field::Anchor => "anchor",
        })
    }
}

/// Why an input was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    /// Nothing to parse.
    #[error("empty expression")]
    Empty,
    /// A value outside the field's range.
    #[error("{field} {value} out of range {min}..{max}")]
    OutOfRange { field: Field, value: String, min: String, max: String },
    /// A range whose end is before its start.
    #[error("{field} range {start}..{stop} runs backwards")]
    Backwards { field: Field, start: String, stop: String },
    /// A repetition that is zero, too large, or cannot fire once inside the field.
    #[error("{field} repetition {detail}")]
    Repetition { field: Field, detail: String },
    /// A token that does not fit the grammar at this place.
    #[error("{field}: {detail}")]
    Syntax { field: Field, detail: String },
    /// A list with more elements than the grammar allows.
    #[error("{field} list has more than {max} elements")]
    TooManyValues { field: Field, max: usize },
    /// A time zone name that is not in the IANA database.
    #[error("unknown time zone {0:?}")]
    UnknownTimeZone(String),
    /// A cron expression without exactly five fields.
    #[error("expected 5 fields (minute hour day-of-month month day-of-week), found {0}")]
    FieldCount(usize),
    /// `@reboot` and other cron aliases that are not recurrences.
    #[error("{0} is not a recurrence; use @hourly, @daily, @weekly, @monthly or @yearly")]
    UnsupportedAlias(String),
    /// An interval whose total is zero or too long.
    #[error("{0}")]
    Interval(String),
    /// An interval or preset recurrence without an anchor.
    #[error("interval and preset recurrences need an anchor (start time)")]
    MissingAnchor,
}

/// An input rejected by this crate: the offending part and the reason.
///
/// `Display` is `"<part>": <reason>`, e.g. `"25:00": hour 25 out of range 0..23`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{part:?}: {reason}")]
pub struct Error {
    part: String,
    reason: Reason,
}

impl Error {
    pub(crate) fn new(part: impl Into<String>, reason: Reason) -> Self {
        Error { part: part.into(), reason }
    }

    /// The part of the input that is bad (a section of the expression, a token, a name).
    pub fn part(&self) -> &str {
        &self.part
    }

    /// Why it is bad.
    pub fn reason(&self) -> &Reason {
        &self.reason
    }

    /// The field at fault, when one field is.
    pub fn field(&self) -> Option<Field> {
        match &self.reason {
            Reason::OutOfRange { field, .. }
            | Reason::Backwards { field, .. }
            | Reason::Repetition { field, .. }
            | Reason::Syntax { field, .. }
            | Reason::TooManyValues { field, .. } => Some(*field),
            Reason::UnknownTimeZone(_) => Some(Field::TimeZone),
            Reason::Interval(_) => Some(Field::Interval),
            Reason::MissingAnchor => Some(Field::Anchor),
            Reason::Empty | Reason::FieldCount(_) | Reason::UnsupportedAlias(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_the_part_then_the_reason() {
        let e = Error::new(
            "25:00",
            Reason::OutOfRange { field: Field::Hour, value: "25".into(), min: "0".into(), max: "23".into() },
        );
        assert_eq!(e.to_string(), r#""25:00": hour 25 out of range 0..23"#);
        assert_eq!(e.field(), Some(Field::Hour));
        assert_eq!(e.part(), "25:00");
    }
}
