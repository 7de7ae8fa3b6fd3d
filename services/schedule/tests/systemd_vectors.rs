//! Thousands of answers recorded from `systemd-analyze calendar` 252 (tests/gen_vectors.sh):
//! acceptance, normalised forms and next fire times in several zones and from several bases.
//!
//! Fire times are compared to the second (systemd prints no fractions). Where a vector's base
//! is near a DST change, only fire times before its `cut` are compared: past it Cairn's DST
//! rule deliberately differs. Where Cairn differs only because it fixes systemd bug #40260,
//! the test checks that systemd 252's exact walk (kept for this purpose) reproduces the
//! recorded answer, and counts the case.

use cairn_schedule::{CalendarEvent, Recurrence, Schedule, compat, parse_time_zone};
use chrono::{DateTime, Duration, SubsecRound, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Deserialize;

#[derive(Deserialize)]
struct File {
    iterations: usize,
    rejected: Vec<String>,
    accepted: Vec<Accepted>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Accepted {
    expr: String,
    normalized: String,
}

#[derive(Deserialize)]
struct Case {
    expr: String,
    time_zone: String,
    after: DateTime<Utc>,
    next: Vec<DateTime<Utc>>,
    cut: Option<DateTime<Utc>>,
}

fn load() -> File {
    serde_json::from_str(include_str!("data/systemd-vectors.json")).expect("vector file parses")
}

#[test]
fn accepts_and_rejects_like_systemd() {
    let file = load();
    let mut failures = Vec::new();
    for expr in &file.rejected {
        if let Ok(c) = CalendarEvent::parse(expr) {
            failures.push(format!("{expr:?} accepted as {:?}", c.normalized()));
        }
    }
    for a in &file.accepted {
        match CalendarEvent::parse(&a.expr) {
            Ok(c) if c.normalized() == a.normalized => {}
            Ok(c) => failures.push(format!(
                "{:?} normalised to {:?}, systemd says {:?}",
                a.expr,
                c.normalized(),
                a.normalized
            )),
            Err(e) => failures.push(format!("{:?} rejected: {e}", a.expr)),
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
    println!(
        "{} rejected and {} accepted expressions agree with systemd",
        file.rejected.len(),
        file.accepted.len()
    );
}

fn before_cut(times: &[DateTime<Utc>], cut: Option<DateTime<Utc>>) -> Vec<DateTime<Utc>> {
    times.iter().map(|t| t.trunc_subsecs(0)).filter(|t| cut.is_none_or(|c| *t < c)).collect()
}

/// Whether `tz` changes its UTC offset within `days` after `from` (30-minute steps).
///
/// systemd normalises intermediate candidates with `mktime` and carries their DST flag back,
/// so near a change (up to a month ahead: a day or month carry can cross it) its answers
/// shift by the DST delta even before the change. Cairn does not; such differences are
/// counted, not failed.
fn offset_changes_within(tz: Tz, from: DateTime<Utc>, days: i64) -> bool {
    let offset = |t: DateTime<Utc>| tz.offset_from_utc_datetime(&t.naive_utc());
    let first = offset(from);
    let mut t = from;
    while t <= from + Duration::days(days) {
        if offset(t) != first {
            return true;
        }
        t += Duration::minutes(30);
    }
    false
}

#[test]
fn next_fire_times_match_systemd() {
    let file = load();
    let mut failures = Vec::new();
    let (mut compared, mut bug_40260, mut dst_artifacts) = (0, 0, 0);
    for case in &file.cases {
        let tz = parse_time_zone(&case.time_zone).expect("zone");
        let Ok(recurrence) = Recurrence::calendar(&case.expr) else {
            failures.push(format!("{:?} rejected", case.expr));
            continue;
        };
        let Recurrence::Calendar(event) = &recurrence else {
            unreachable!("calendar() builds a calendar recurrence")
        };
        let schedule = Schedule::new(recurrence.clone(), tz, None).expect("schedule");
        let ours: Vec<_> = schedule.iter_after(case.after).take(file.iterations).collect();
        let want = before_cut(&case.next, case.cut);
        let got = before_cut(&ours, case.cut);
        compared += 1;
        if got == want {
            continue;
        }
        let systemd: Vec<_> =
            std::iter::successors(compat::calendar_next_after_systemd_252(event, tz, case.after), |&t| {
                compat::calendar_next_after_systemd_252(event, tz, t)
            })
            .take(file.iterations)
            .collect();
        if before_cut(&systemd, case.cut) == want {
            bug_40260 += 1;
            continue;
        }
        if offset_changes_within(event.time_zone().unwrap_or(tz), case.after, 62) {
            dst_artifacts += 1;
            println!(
                "DST artifact: {:?} in {} after {}: systemd {want:?}, Cairn {got:?}",
                case.expr, case.time_zone, case.after
            );
            continue;
        }
        failures.push(format!(
            "{:?} in {} after {}: systemd {:?}, Cairn {:?}",
            case.expr, case.time_zone, case.after, want, got
        ));
    }
    assert!(failures.is_empty(), "{} of {compared} cases differ:\n{}", failures.len(), failures.join("\n"));
    assert!(bug_40260 > 0, "the vectors should contain #40260 cases");
    println!(
        "{compared} cases agree with systemd 252 ({bug_40260} differ only by the #40260 fix, \
         {dst_artifacts} by systemd's DST carry)"
    );
}
