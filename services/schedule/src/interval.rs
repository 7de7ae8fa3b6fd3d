//! Interval and preset recurrences: fixed durations counted from an anchor instant.
//!
//! Fire times are `anchor + k × interval` for k ≥ 0 — the anchor itself fires first. These
//! are absolute durations (a "daily" preset is 24 hours, not "same wall-clock time"), so
//! time zones and DST do not apply. Nothing here reads the clock: the caller supplies the
//! anchor (the schedule's start time, or its creation time).

use chrono::{DateTime, Duration, Utc};

use crate::error::{Error, Reason};

/// The longest interval Cairn accepts: a (leap) year. Longer gaps are better written as a
/// calendar event, and the bound keeps `anchor + k × interval` far from overflow.
pub const MAX_INTERVAL_DAYS: u64 = 366;

/// A custom interval of days, hours and minutes (total > 0 and at most 366 days).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Interval {
    days: u32,
    hours: u32,
    minutes: u32,
}

impl Interval {
    /// An interval of `days`, `hours` and `minutes`; the parts may exceed their usual ranges
    /// (`hours: 36` is fine) but the total must be more than zero and at most 366 days.
    pub fn new(days: u32, hours: u32, minutes: u32) -> Result<Self, Error> {
        let total = u64::from(days) * 1440 + u64::from(hours) * 60 + u64::from(minutes);
        let text = format!("{days}d{hours}h{minutes}m");
        if total == 0 {
            return Err(Error::new(text, Reason::Interval("the interval must be longer than zero".into())));
        }
        if total > MAX_INTERVAL_DAYS * 1440 {
            return Err(Error::new(
                text,
                Reason::Interval(format!("the interval must be at most {MAX_INTERVAL_DAYS} days")),
            ));
        }
        Ok(Interval { days, hours, minutes })
    }

    /// The days, hours and minutes as given.
    pub fn parts(&self) -> (u32, u32, u32) {
        (self.days, self.hours, self.minutes)
    }

    /// The total length.
    pub fn duration(&self) -> Duration {
        Duration::minutes(self.total_minutes())
    }

    fn total_minutes(&self) -> i64 {
        i64::from(self.days) * 1440 + i64::from(self.hours) * 60 + i64::from(self.minutes)
    }

    /// The first `anchor + k × self` (k ≥ 0) strictly after `after`.
    pub(crate) fn next_after(&self, anchor: DateTime<Utc>, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if after < anchor {
            return Some(anchor);
        }
        let nanos = |t: DateTime<Utc>| {
            i128::from(t.timestamp()) * 1_000_000_000 + i128::from(t.timestamp_subsec_nanos())
        };
        let step = i128::from(self.total_minutes()) * 60 * 1_000_000_000;
        let k = (nanos(after) - nanos(anchor)) / step + 1;
        let next = nanos(anchor) + k * step;
        let secs = i64::try_from(next.div_euclid(1_000_000_000)).ok()?;
        let sub = next.rem_euclid(1_000_000_000) as u32;
        DateTime::from_timestamp(secs, sub)
    }
}

/// The named intervals of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Preset {
    /// Every 12 hours.
    TwiceDaily,
    /// Every 24 hours.
    Daily,
    /// Every 7 days.
    Weekly,
    /// Every 30 days.
    Every30Days,
}

impl Preset {
    /// The interval a preset stands for.
    pub fn interval(self) -> Interval {
        let (days, hours) = match self {
            Preset::TwiceDaily => (0, 12),
            Preset::Daily => (1, 0),
            Preset::Weekly => (7, 0),
            Preset::Every30Days => (30, 0),
        };
        Interval { days, hours, minutes: 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn bounds() {
        assert!(Interval::new(0, 0, 0).is_err());
        assert!(Interval::new(0, 0, 1).is_ok());
        assert!(Interval::new(366, 0, 0).is_ok());
        assert!(Interval::new(366, 0, 1).is_err());
        assert!(Interval::new(u32::MAX, u32::MAX, u32::MAX).is_err());
        assert_eq!(Interval::new(1, 36, 0).unwrap().duration(), Duration::hours(60));
    }

    #[test]
    fn fires_at_anchor_then_every_interval() {
        let day = Preset::Daily.interval();
        let anchor = t("2024-01-30T10:15:00Z");
        assert_eq!(day.next_after(anchor, t("2024-01-01T00:00:00Z")), Some(anchor));
        assert_eq!(day.next_after(anchor, anchor), Some(t("2024-01-31T10:15:00Z")));
        assert_eq!(day.next_after(anchor, t("2024-02-05T10:14:59.999Z")), Some(t("2024-02-05T10:15:00Z")));
        assert_eq!(
            Preset::TwiceDaily.interval().next_after(anchor, t("2024-01-30T10:15:00Z")),
            Some(t("2024-01-30T22:15:00Z"))
        );
        assert_eq!(Preset::Weekly.interval().duration(), Duration::days(7));
        assert_eq!(Preset::Every30Days.interval().duration(), Duration::days(30));
    }

    proptest! {
        #[test]
        fn next_is_on_the_grid_and_strictly_after(
            minutes in 1u32..=527_040,
            anchor in 0i64..4_000_000_000,
            offset in -1_000_000_000i64..1_000_000_000_000,
        ) {
            let i = Interval::new(0, 0, minutes).unwrap();
            let anchor = DateTime::from_timestamp(anchor, 0).unwrap();
            let after = anchor + Duration::milliseconds(offset);
            let next = i.next_after(anchor, after).unwrap();
            prop_assert!(next > after);
            prop_assert!(next >= anchor);
            let since = (next - anchor).num_seconds();
            prop_assert_eq!(since % (i64::from(minutes) * 60), 0);
            // Nothing on the grid in between.
            prop_assert!(next - i.duration() <= after || next == anchor);
        }
    }
}
