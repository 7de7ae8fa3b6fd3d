//! Reading `Recurrence` messages into the schedule maths, and the occurrence decisions of
//! firing: what is due, what was missed while the control plane was down, what comes next.

use cairn_api::ids::ScheduleId;
use cairn_api::v1::{Preset as ProtoPreset, Recurrence as ProtoRecurrence, recurrence::Kind};
use cairn_schedule::{Interval, Preset, Recurrence, Schedule};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::error::{Error, Result};

/// Most occurrences counted when looking back over downtime (a `*:*:*` schedule down for a
/// week stays cheap); beyond it the count says "at least".
pub const MAX_MISSED_COUNT: u64 = 1_000_000;

/// Reads a recurrence; errors name `{prefix}.calendar` etc. and the bad part.
pub fn parse(r: Option<&ProtoRecurrence>, prefix: &str) -> Result<Recurrence> {
    let kind = r
        .and_then(|r| r.kind.as_ref())
        .ok_or_else(|| Error::invalid(prefix, "is required: one of calendar, cron, interval or preset"))?;
    match kind {
        Kind::Calendar(expr) => {
            if expr.trim().is_empty() {
                return Err(Error::invalid(format!("{prefix}.calendar"), "is empty"));
            }
            Recurrence::calendar(expr)
                .map_err(|e| Error::invalid(format!("{prefix}.calendar"), e.to_string()))
        }
        Kind::Cron(expr) => {
            if expr.trim().is_empty() {
                return Err(Error::invalid(format!("{prefix}.cron"), "is empty"));
            }
            Recurrence::cron(expr).map_err(|e| Error::invalid(format!("{prefix}.cron"), e.to_string()))
        }
        Kind::Interval(i) => {
            let field = format!("{prefix}.interval");
            let part = |v: i32, name: &str| {
                u32::try_from(v)
                    .map_err(|_| Error::invalid(format!("{field}.{name}"), format!("{v} is negative")))
            };
            let (d, h, m) = (part(i.days, "days")?, part(i.hours, "hours")?, part(i.minutes, "minutes")?);
            Interval::new(d, h, m).map(Recurrence::Interval).map_err(|e| Error::invalid(field, e.to_string()))
        }
        Kind::Preset(p) => match ProtoPreset::try_from(*p) {
            Ok(ProtoPreset::TwiceDaily) => Ok(Recurrence::Preset(Preset::TwiceDaily)),
            Ok(ProtoPreset::Daily) => Ok(Recurrence::Preset(Preset::Daily)),
            Ok(ProtoPreset::Weekly) => Ok(Recurrence::Preset(Preset::Weekly)),
            Ok(ProtoPreset::Every30Days) => Ok(Recurrence::Preset(Preset::Every30Days)),
            _ => Err(Error::invalid(
                format!("{prefix}.preset"),
                format!(
                    "{p} is not a preset (PRESET_TWICE_DAILY, PRESET_DAILY, PRESET_WEEKLY, PRESET_EVERY_30_DAYS)"
                ),
            )),
        },
    }
}

/// Reads an IANA zone; errors name `field`.
pub fn zone(name: &str, field: &str) -> Result<Tz> {
    cairn_schedule::parse_time_zone(name).map_err(|e| Error::invalid(field, e.to_string()))
}

/// The canonical form of a recurrence (systemd's normalised form for calendars).
pub fn normalized(r: &Recurrence) -> String {
    match r {
        Recurrence::Calendar(c) => c.normalized(),
        Recurrence::Cron(_) => String::new(),
        Recurrence::Interval(i) => {
            let (d, h, m) = i.parts();
            let mut s = String::from("every");
            for (v, unit) in [(d, "d"), (h, "h"), (m, "m")] {
                if v > 0 {
                    s.push_str(&format!(" {v}{unit}"));
                }
            }
            s
        }
        Recurrence::Preset(p) => match p {
            Preset::TwiceDaily => "every 12h".into(),
            Preset::Daily => "every 1d".into(),
            Preset::Weekly => "every 7d".into(),
            Preset::Every30Days => "every 30d".into(),
        },
    }
}

/// Whether a recurrence counts from an anchor (interval, preset).
pub fn is_interval(r: &Recurrence) -> bool {
    matches!(r, Recurrence::Interval(_) | Recurrence::Preset(_))
}

/// The first occurrence at or after `from` (used when a schedule starts or resumes).
pub fn first_at_or_after(s: &Schedule, from: DateTime<Utc>) -> Option<DateTime<Utc>> {
    s.next_after(from - chrono::Duration::microseconds(1))
}

/// When the job of an occurrence is due: the occurrence plus its deterministic jitter.
pub fn due_time(
    schedule: ScheduleId,
    occurrence: DateTime<Utc>,
    max_jitter: std::time::Duration,
) -> DateTime<Utc> {
    if max_jitter.is_zero() {
        return occurrence;
    }
    let j = cairn_schedule::jitter(schedule.uuid().as_bytes(), occurrence, max_jitter);
    occurrence + chrono::Duration::from_std(j).unwrap_or_default()
}

/// What firing a due schedule does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Firing {
    /// The occurrence is on time: one SCHEDULE job.
    OnTime {
        /// The occurrence.
        occurrence: DateTime<Utc>,
    },
    /// Occurrences were missed while the control plane was down.
    Missed {
        /// The first missed occurrence.
        first: DateTime<Utc>,
        /// The last missed occurrence (the key of the job recording the decision).
        last: DateTime<Utc>,
        /// How many (at most [`MAX_MISSED_COUNT`]).
        count: u64,
    },
}

/// Decides how to fire a schedule whose next occurrence `next` is due at `now`. An occurrence
/// is missed when its job would start more than `grace` late, or when more than one
/// occurrence is already due (the control plane was not firing).
pub fn decide(
    s: &Schedule,
    schedule_id: ScheduleId,
    next: DateTime<Utc>,
    max_jitter: std::time::Duration,
    now: DateTime<Utc>,
    grace: chrono::Duration,
) -> Firing {
    let mut last = next;
    let mut count = 1u64;
    while count < MAX_MISSED_COUNT {
        match s.next_after(last) {
            Some(t) if due_time(schedule_id, t, max_jitter) <= now => {
                last = t;
                count += 1;
            }
            _ => break,
        }
    }
    if count == 1 && now - due_time(schedule_id, next, max_jitter) <= grace {
        Firing::OnTime { occurrence: next }
    } else {
        Firing::Missed { first: next, last, count }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_api::v1::Interval as ProtoInterval;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn parse_names_fields() {
        let cal = |e: &str| ProtoRecurrence { kind: Some(Kind::Calendar(e.into())) };
        let err = parse(Some(&cal("25:00")), "schedule.recurrence").unwrap_err();
        let Error::Invalid(v) = err else { panic!() };
        assert_eq!(v.items()[0].0, "schedule.recurrence.calendar");
        assert!(v.items()[0].1.contains("25:00"), "{}", v.items()[0].1);
        let Error::Invalid(v) = parse(None, "recurrence").unwrap_err() else { panic!() };
        assert_eq!(v.items()[0].0, "recurrence");
        let neg =
            ProtoRecurrence { kind: Some(Kind::Interval(ProtoInterval { days: -1, hours: 0, minutes: 0 })) };
        let Error::Invalid(v) = parse(Some(&neg), "recurrence").unwrap_err() else { panic!() };
        assert_eq!(v.items()[0].0, "recurrence.interval.days");
        let zero = ProtoRecurrence { kind: Some(Kind::Interval(ProtoInterval::default())) };
        assert!(parse(Some(&zero), "recurrence").is_err());
        let cron = ProtoRecurrence { kind: Some(Kind::Cron("61 * * * *".into())) };
        let Error::Invalid(v) = parse(Some(&cron), "recurrence").unwrap_err() else { panic!() };
        assert_eq!(v.items()[0].0, "recurrence.cron");
    }

    #[test]
    fn on_time_and_missed() {
        let s = Schedule::new(Recurrence::calendar("*:0/10").unwrap(), Tz::UTC, None).unwrap();
        let id = ScheduleId::from_uuid(uuid::Uuid::nil());
        let grace = chrono::Duration::seconds(60);
        let next = t("2024-01-30T10:10:00Z");
        assert_eq!(
            decide(&s, id, next, Default::default(), t("2024-01-30T10:10:00.5Z"), grace),
            Firing::OnTime { occurrence: next }
        );
        // Down from 10:05 to 10:42: 10:10, 10:20, 10:30, 10:40 were missed.
        assert_eq!(
            decide(&s, id, next, Default::default(), t("2024-01-30T10:42:00Z"), grace),
            Firing::Missed { first: next, last: t("2024-01-30T10:40:00Z"), count: 4 }
        );
        // One occurrence, but far too late.
        assert_eq!(
            decide(&s, id, next, Default::default(), t("2024-01-30T10:15:00Z"), grace),
            Firing::Missed { first: next, last: next, count: 1 }
        );
    }

    #[test]
    fn jitter_is_deterministic_and_bounded() {
        let id = ScheduleId::new();
        let occ = t("2024-01-30T10:00:00Z");
        let max = std::time::Duration::from_secs(300);
        let a = due_time(id, occ, max);
        assert_eq!(a, due_time(id, occ, max));
        assert!(a >= occ && a < occ + chrono::Duration::seconds(300));
        assert_eq!(due_time(id, occ, Default::default()), occ);
    }
}
