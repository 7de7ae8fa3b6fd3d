//! Fuzzes both parsers with arbitrary strings and, for what parses, the next-fire search in a
//! zone with DST changes: nothing reachable from input may panic, and fire times must
//! strictly increase.
#![no_main]

use cairn_schedule::{CalendarEvent, CronExpr, Recurrence, Schedule};
use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let zones = [
        chrono_tz::Tz::UTC,
        chrono_tz::Europe::Berlin,
        chrono_tz::America::New_York,
        chrono_tz::Australia::Lord_Howe,
    ];
    let tz = zones[usize::from(selector) % zones.len()];
    // 1970..2200, from the selector and the length, so the corpus explores bases too.
    let secs = (i64::from(selector) * 97_003_331 + rest.len() as i64 * 7_919_111) % 7_258_118_400;
    let Some(after) = DateTime::<Utc>::from_timestamp(secs, 0) else {
        return;
    };
    let recurrence = if selector & 0x80 == 0 {
        match CalendarEvent::parse(text) {
            Ok(event) => {
                let normal = event.normalized();
                // The normal form parses again, to the same event.
                let again = CalendarEvent::parse(&normal).expect("normal form parses");
                assert_eq!(again.normalized(), normal);
                Recurrence::Calendar(event)
            }
            Err(e) => {
                let _ = e.to_string();
                return;
            }
        }
    } else {
        match CronExpr::parse(text) {
            Ok(cron) => Recurrence::Cron(cron),
            Err(e) => {
                let _ = e.to_string();
                return;
            }
        }
    };
    let schedule = Schedule::new(recurrence, tz, None).expect("calendar and cron need no anchor");
    let mut last = after;
    for t in schedule.iter_after(after).take(8) {
        assert!(t > last, "fire times must strictly increase");
        last = t;
    }
});
