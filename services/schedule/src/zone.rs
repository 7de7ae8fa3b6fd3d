//! From wall-clock searches to instants: Cairn's daylight-saving rule.
//!
//! Calendar and cron recurrences are searched on local wall-clock time; this module turns the
//! wall-clock answer into a UTC instant in an IANA zone:
//!
//! * a wall-clock time that does not exist (spring-forward gap) fires at the end of the gap,
//!   i.e. at the transition instant (02:30 fires at 03:00 when clocks jump 02:00 → 03:00);
//! * a wall-clock time that exists twice (fall-back fold) fires once, at its first occurrence;
//! * fire times strictly increase, so several gap times collapse into one fire.
//!
//! systemd instead drops gap times, and from an instant inside the second pass of a fold it
//! fires the second occurrence of the remaining fold times; Cairn does neither.
//! This module does no parsing and knows nothing about the grammar of the searches.

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

use crate::Error;
use crate::error::Reason;

/// A search for the first matching wall-clock time at or after a wall-clock time.
pub(crate) trait LocalSearch {
    fn next_local(&self, from: NaiveDateTime) -> Option<NaiveDateTime>;
}

/// Parses an IANA zone name; the empty name is UTC.
///
/// Accepts the names compiled into chrono-tz (the IANA database, including backward links
/// such as `US/Eastern`) and their `posix/` copies, case-sensitively, as the zoneinfo files are.
pub fn parse_time_zone(name: &str) -> Result<Tz, Error> {
    if name.is_empty() {
        return Ok(Tz::UTC);
    }
    crate::calendar::zone_name(name).ok_or_else(|| Error::new(name, Reason::UnknownTimeZone(name.to_owned())))
}

const MICRO: Duration = Duration::microseconds(1);

/// `after` rounded down to whole microseconds, the resolution of every search here.
fn floor_micros(after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(after.timestamp_micros())
}

fn is_utc(tz: Tz) -> bool {
    matches!(tz, Tz::UTC | Tz::Etc__UTC | Tz::Etc__GMT | Tz::GMT | Tz::Etc__Universal)
}

/// The first fire time strictly after `after` of a wall-clock search in `tz`.
pub(crate) fn next_after<S: LocalSearch + ?Sized>(
    search: &S,
    tz: Tz,
    after: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let after = floor_micros(after)?;
    if is_utc(tz) {
        let next = search.next_local(after.naive_utc().checked_add_signed(MICRO)?)?;
        return Some(next.and_utc());
    }
    let local = after.with_timezone(&tz).naive_local();
    let mut from = local.checked_add_signed(MICRO)?;
    if let Some(end) = fold_end_if_second_pass(tz, after, local) {
        // Every wall-clock time left in this fold already fired during its first pass.
        from = from.max(end);
    }
    // One round suffices; the bound only guards against a zone table surprise.
    for _ in 0..8 {
        let next = search.next_local(from)?;
        let at = resolve(tz, next);
        if at > after {
            return Some(at);
        }
        from = next.checked_add_signed(MICRO)?;
    }
    None
}

/// The instant a wall-clock time fires at in `tz` under Cairn's rule.
pub(crate) fn resolve(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(a, b) => a.min(b).with_timezone(&Utc),
        LocalResult::None => gap_end(tz, local),
    }
}

fn local_at(tz: Tz, secs: i64) -> Option<NaiveDateTime> {
    let utc = DateTime::from_timestamp(secs, 0)?;
    Some(utc.with_timezone(&tz).naive_local())
}

/// The transition instant that skips over `local`: the first instant whose wall-clock time
/// is past `local`. Offsets lie within ±26 h, so the answer is within a day either side.
fn gap_end(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    let guess = local.and_utc().timestamp();
    let (mut lo, mut hi) = (guess - 26 * 3600, guess + 26 * 3600);
    // Invariant: wall-clock(lo) ≤ local < wall-clock(hi); transitions fall on whole seconds.
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        match local_at(tz, mid) {
            Some(t) if t > local => hi = mid,
            _ => lo = mid,
        }
    }
    DateTime::from_timestamp(hi, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// When `after` lies in the second pass of a fold, the wall-clock time at which the fold's
/// first pass ended (e.g. 03:00 when clocks fall back from 03:00 to 02:00).
fn fold_end_if_second_pass(tz: Tz, after: DateTime<Utc>, local: NaiveDateTime) -> Option<NaiveDateTime> {
    let LocalResult::Ambiguous(a, b) = tz.from_local_datetime(&local) else {
        return None;
    };
    let (early, late) = if a <= b { (a, b) } else { (b, a) };
    if late.with_timezone(&Utc) != after {
        return None;
    }
    let late_offset = late.offset().fix();
    // Find the transition: the first whole second whose offset is the late one.
    let (mut lo, mut hi) = (early.timestamp(), late.timestamp().max(early.timestamp() + 1));
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        let off = tz.offset_from_utc_datetime(&DateTime::from_timestamp(mid, 0)?.naive_utc());
        if off.fix() == late_offset {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    let transition = DateTime::from_timestamp(hi, 0)?.naive_utc();
    transition.checked_add_signed(Duration::seconds(i64::from(early.offset().fix().local_minus_utc())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::{America, Australia, Europe};

    fn naive(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        naive(s).and_utc()
    }

    #[test]
    fn gap_times_fire_at_the_end_of_the_gap() {
        assert_eq!(resolve(Europe::Berlin, naive("2024-03-31 02:30:00")), utc("2024-03-31 01:00:00"));
        assert_eq!(resolve(America::New_York, naive("2024-03-10 02:59:59")), utc("2024-03-10 07:00:00"));
        // Lord Howe moves by 30 minutes: 02:00 → 02:30.
        assert_eq!(resolve(Australia::Lord_Howe, naive("2024-10-06 02:15:00")), utc("2024-10-05 15:30:00"));
    }

    #[test]
    fn fold_times_fire_at_the_first_occurrence() {
        assert_eq!(resolve(Europe::Berlin, naive("2024-10-27 02:30:00")), utc("2024-10-27 00:30:00"));
        assert_eq!(
            fold_end_if_second_pass(Europe::Berlin, utc("2024-10-27 01:10:00"), naive("2024-10-27 02:10:00")),
            Some(naive("2024-10-27 03:00:00"))
        );
        assert_eq!(
            fold_end_if_second_pass(Europe::Berlin, utc("2024-10-27 00:10:00"), naive("2024-10-27 02:10:00")),
            None
        );
    }

    #[test]
    fn zone_names() {
        assert_eq!(parse_time_zone(""), Ok(Tz::UTC));
        assert_eq!(parse_time_zone("Europe/Berlin"), Ok(Europe::Berlin));
        assert_eq!(parse_time_zone("posix/Europe/Berlin"), Ok(Europe::Berlin));
        let e = parse_time_zone("europe/berlin").unwrap_err();
        assert_eq!(e.to_string(), r#""europe/berlin": unknown time zone "europe/berlin""#);
        assert!(parse_time_zone("Mars/Olympus").is_err());
    }
}
