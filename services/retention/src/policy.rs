//! The retention policy: the proto-shaped [`RawPolicy`] callers fill in, and the validated
//! [`Policy`] that [`crate::apply`] evaluates.
//!
//! All validation lives here, so a `Policy` that exists is one restic would accept and that
//! keeps something: every count is a positive number or unlimited, every window a non-zero
//! duration, every label set non-empty, the zone a real IANA zone, and at least one rule set.
//! This module does not evaluate anything.

use std::num::NonZeroU32;

use chrono_tz::Tz;

use crate::duration::{DurationError, RetentionDuration, parse_duration};

/// `RetentionPolicy` exactly as the API carries it (SPEC §4.1): counts where 0 is unset and
/// -1 unlimited, durations as restic strings where "" is unset, label sets, and an IANA zone
/// where "" is UTC. The scheduler and worker map the proto message into this field by field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawPolicy {
    /// Keep the newest n snapshots.
    pub keep_last: i32,
    /// Keep the newest snapshot of each of the last n hours that have one.
    pub keep_hourly: i32,
    /// Keep the newest snapshot of each of the last n days that have one.
    pub keep_daily: i32,
    /// Keep the newest snapshot of each of the last n ISO weeks that have one.
    pub keep_weekly: i32,
    /// Keep the newest snapshot of each of the last n months that have one.
    pub keep_monthly: i32,
    /// Keep the newest snapshot of each of the last n years that have one.
    pub keep_yearly: i32,
    /// Keep every snapshot within this duration of the newest one.
    pub keep_within: String,
    /// Keep the newest snapshot of each hour within this duration of the newest one.
    pub keep_within_hourly: String,
    /// Keep the newest snapshot of each day within this duration of the newest one.
    pub keep_within_daily: String,
    /// Keep the newest snapshot of each ISO week within this duration of the newest one.
    pub keep_within_weekly: String,
    /// Keep the newest snapshot of each month within this duration of the newest one.
    pub keep_within_monthly: String,
    /// Keep the newest snapshot of each year within this duration of the newest one.
    pub keep_within_yearly: String,
    /// Keep every snapshot that carries all labels of at least one of these sets.
    pub keep_tags: Vec<Vec<String>>,
    /// IANA zone whose wall clock draws the hour/day/week/month/year boundaries.
    pub time_zone: String,
}

/// A validated count rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Count {
    /// Keep at most this many (raw value n > 0).
    Limit(NonZeroU32),
    /// Keep all of them (raw value -1).
    Unlimited,
}

/// A validated retention policy. Build it with [`Policy::from_raw`] (or `TryFrom`).
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub(crate) counts: [Option<Count>; 6],
    pub(crate) within: Option<RetentionDuration>,
    pub(crate) within_periods: [Option<RetentionDuration>; 5],
    pub(crate) keep_tags: Vec<Vec<String>>,
    pub(crate) time_zone: Tz,
}

/// Why a [`RawPolicy`] was refused. Every message starts with the field it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No rule is set, so the policy would remove every snapshot.
    #[error(
        "retention policy is empty: set at least one keep_* rule (counts of 0 and zero durations are unset; an empty policy would remove every snapshot)"
    )]
    EmptyPolicy,
    /// A count below -1.
    #[error("{field}: {value} is not a valid count (use n > 0, 0 for unset or -1 for unlimited)")]
    InvalidCount {
        /// The proto field name.
        field: &'static str,
        /// The value given.
        value: i32,
    },
    /// A duration that does not parse.
    #[error("{field}: {source}")]
    InvalidDuration {
        /// The proto field name.
        field: &'static str,
        /// What is wrong with it.
        source: DurationError,
    },
    /// A label set with no labels (it would match every snapshot).
    #[error("keep_tags[{index}]: a label set needs at least one label")]
    EmptyLabelSet {
        /// Position of the set in `keep_tags`.
        index: usize,
    },
    /// A zone name that is not in the IANA database.
    #[error("time_zone: {value:?} is not an IANA time zone (e.g. \"Europe/Berlin\", \"UTC\")")]
    InvalidTimeZone {
        /// The value given.
        value: String,
    },
}

impl Error {
    /// The request field the error is about, for field-level error details
    /// (`keep_daily`, `keep_tags[2]`, ...); `None` for a policy that is empty as a whole.
    pub fn field(&self) -> Option<String> {
        match self {
            Error::EmptyPolicy => None,
            Error::InvalidCount { field, .. } | Error::InvalidDuration { field, .. } => {
                Some((*field).to_owned())
            }
            Error::EmptyLabelSet { index } => Some(format!("keep_tags[{index}]")),
            Error::InvalidTimeZone { .. } => Some("time_zone".to_owned()),
        }
    }
}

/// Field names of the counts, in evaluation order (restic's bucket order).
pub(crate) const COUNT_FIELDS: [&str; 6] =
    ["keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly"];

/// Field names of the per-period windows, in evaluation order.
pub(crate) const WITHIN_FIELDS: [&str; 5] = [
    "keep_within_hourly",
    "keep_within_daily",
    "keep_within_weekly",
    "keep_within_monthly",
    "keep_within_yearly",
];

impl Policy {
    /// Validates a raw policy. Errors name the first offending field in proto order; a policy
    /// with no rule left after validation (all counts 0, all durations blank or zero, no
    /// label sets) is [`Error::EmptyPolicy`], as restic refuses to forget with one.
    pub fn from_raw(raw: &RawPolicy) -> Result<Policy, Error> {
        let raw_counts = [
            raw.keep_last,
            raw.keep_hourly,
            raw.keep_daily,
            raw.keep_weekly,
            raw.keep_monthly,
            raw.keep_yearly,
        ];
        let mut counts = [None; 6];
        for ((slot, value), field) in counts.iter_mut().zip(raw_counts).zip(COUNT_FIELDS) {
            *slot = count(field, value)?;
        }
        let within = window("keep_within", &raw.keep_within)?;
        let raw_windows = [
            &raw.keep_within_hourly,
            &raw.keep_within_daily,
            &raw.keep_within_weekly,
            &raw.keep_within_monthly,
            &raw.keep_within_yearly,
        ];
        let mut within_periods = [None; 5];
        for ((slot, value), field) in within_periods.iter_mut().zip(raw_windows).zip(WITHIN_FIELDS) {
            *slot = window(field, value)?;
        }
        if let Some(index) = raw.keep_tags.iter().position(Vec::is_empty) {
            return Err(Error::EmptyLabelSet { index });
        }
        let time_zone = if raw.time_zone.is_empty() {
            Tz::UTC
        } else {
            raw.time_zone
                .parse::<Tz>()
                .map_err(|_| Error::InvalidTimeZone { value: raw.time_zone.clone() })?
        };
        let policy = Policy { counts, within, within_periods, keep_tags: raw.keep_tags.clone(), time_zone };
        if policy.counts.iter().all(Option::is_none)
            && policy.within.is_none()
            && policy.within_periods.iter().all(Option::is_none)
            && policy.keep_tags.is_empty()
        {
            return Err(Error::EmptyPolicy);
        }
        Ok(policy)
    }

    /// The policy in its canonical raw form: unset fields zero or blank, durations spelled as
    /// restic prints them (`1y1d1m` becomes `1y1m1d`), the zone by its IANA name.
    pub fn to_raw(&self) -> RawPolicy {
        let count = |c: Option<Count>| match c {
            None => 0,
            Some(Count::Unlimited) => -1,
            Some(Count::Limit(n)) => i32::try_from(n.get()).unwrap_or(i32::MAX),
        };
        let window = |w: Option<RetentionDuration>| w.map(|d| d.to_string()).unwrap_or_default();
        let [last, hourly, daily, weekly, monthly, yearly] = self.counts;
        let [w_hourly, w_daily, w_weekly, w_monthly, w_yearly] = self.within_periods;
        RawPolicy {
            keep_last: count(last),
            keep_hourly: count(hourly),
            keep_daily: count(daily),
            keep_weekly: count(weekly),
            keep_monthly: count(monthly),
            keep_yearly: count(yearly),
            keep_within: window(self.within),
            keep_within_hourly: window(w_hourly),
            keep_within_daily: window(w_daily),
            keep_within_weekly: window(w_weekly),
            keep_within_monthly: window(w_monthly),
            keep_within_yearly: window(w_yearly),
            keep_tags: self.keep_tags.clone(),
            time_zone: self.time_zone.name().to_owned(),
        }
    }

    /// The zone whose wall clock draws the bucket boundaries.
    pub fn time_zone(&self) -> Tz {
        self.time_zone
    }
}

impl TryFrom<RawPolicy> for Policy {
    type Error = Error;

    fn try_from(raw: RawPolicy) -> Result<Policy, Error> {
        Policy::from_raw(&raw)
    }
}

fn count(field: &'static str, value: i32) -> Result<Option<Count>, Error> {
    match value {
        0 => Ok(None),
        -1 => Ok(Some(Count::Unlimited)),
        n => u32::try_from(n)
            .ok()
            .and_then(NonZeroU32::new)
            .map(|n| Some(Count::Limit(n)))
            .ok_or(Error::InvalidCount { field, value }),
    }
}

fn window(field: &'static str, value: &str) -> Result<Option<RetentionDuration>, Error> {
    let duration = parse_duration(value).map_err(|source| Error::InvalidDuration { field, source })?;
    Ok((!duration.is_zero()).then_some(duration))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawPolicy {
        RawPolicy::default()
    }

    #[test]
    fn empty_policy_is_refused() {
        assert_eq!(Policy::from_raw(&raw()), Err(Error::EmptyPolicy));
        // Zero durations are unset, as in restic.
        let zero = RawPolicy { keep_within: "0d".into(), keep_within_daily: "0y0h".into(), ..raw() };
        assert_eq!(Policy::from_raw(&zero), Err(Error::EmptyPolicy));
        assert!(Error::EmptyPolicy.to_string().contains("empty"));
    }

    #[test]
    fn counts_are_checked() {
        let bad = RawPolicy { keep_weekly: -2, ..raw() };
        let err = Policy::from_raw(&bad).expect_err("-2 is not a count");
        assert_eq!(err.field().as_deref(), Some("keep_weekly"));
        assert_eq!(
            err.to_string(),
            "keep_weekly: -2 is not a valid count (use n > 0, 0 for unset or -1 for unlimited)"
        );
        let ok = RawPolicy { keep_last: -1, keep_daily: 7, ..raw() };
        let policy = Policy::from_raw(&ok).expect("valid");
        assert_eq!(policy.counts[0], Some(Count::Unlimited));
        assert_eq!(policy.counts[2], NonZeroU32::new(7).map(Count::Limit));
    }

    #[test]
    fn durations_name_their_field() {
        let bad = RawPolicy { keep_within: "7x".into(), ..raw() };
        let err = Policy::from_raw(&bad).expect_err("7x");
        assert_eq!(
            err.to_string(),
            "keep_within: \"7x\": unknown unit 'x' (use y, m, d or h, e.g. 1y2m3d4h)"
        );
        let bad = RawPolicy { keep_daily: 1, keep_within_monthly: "3".into(), ..raw() };
        let err = Policy::from_raw(&bad).expect_err("3");
        assert_eq!(err.field().as_deref(), Some("keep_within_monthly"));
        assert!(err.to_string().starts_with("keep_within_monthly: \"3\": no unit"));
    }

    #[test]
    fn zones_and_label_sets_are_checked() {
        let bad = RawPolicy { keep_daily: 1, time_zone: "Mars/Olympus".into(), ..raw() };
        let err = Policy::from_raw(&bad).expect_err("zone");
        assert_eq!(err.field().as_deref(), Some("time_zone"));
        assert!(err.to_string().contains("\"Mars/Olympus\""));
        let bad = RawPolicy { keep_tags: vec![vec!["a".into()], vec![]], ..raw() };
        let err = Policy::from_raw(&bad).expect_err("empty set");
        assert_eq!(err.field().as_deref(), Some("keep_tags[1]"));
        let berlin = RawPolicy { keep_daily: 1, time_zone: "Europe/Berlin".into(), ..raw() };
        assert_eq!(Policy::from_raw(&berlin).map(|p| p.time_zone()), Ok(Tz::Europe__Berlin));
    }

    #[test]
    fn raw_round_trip_is_canonical() {
        let given = RawPolicy {
            keep_last: 3,
            keep_monthly: -1,
            keep_within: " 1y1d1m".into(),
            keep_within_weekly: "0d".into(),
            keep_within_yearly: "9999y".into(),
            keep_tags: vec![vec!["a".into(), "b".into()]],
            ..raw()
        };
        let policy = Policy::from_raw(&given).expect("valid");
        let canonical = policy.to_raw();
        assert_eq!(canonical.keep_within, "1y1m1d");
        assert_eq!(canonical.keep_within_weekly, "");
        assert_eq!(canonical.keep_monthly, -1);
        assert_eq!(canonical.time_zone, "UTC");
        assert_eq!(Policy::from_raw(&canonical), Ok(policy));
    }
}
