//! Property tests against brute force, and DST properties.
//!
//! Expressions are generated as small syntax trees, printed, parsed by the crate, and compared
//! with a naive matcher that evaluates the tree directly and scans day by day, then hour,
//! minute and second — nothing shared with the crate's parser or its bitset search. Calendar
//! components stay inside their field (open-ended repetitions that overflow a field follow
//! systemd's carry quirks instead; the recorded systemd vectors cover those).
//!
//! Across DST, in zones with gaps, folds and 30-minute shifts, fire times must strictly
//! increase, land on a matching wall-clock time (or on the end of a gap), and take the first
//! occurrence of a repeated wall-clock time.

use cairn_schedule::{Recurrence, Schedule};
use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;

/// `v`, `a..b` or `a..b/r` (a ≤ b), all inside the field.
#[derive(Debug, Clone)]
enum Comp {
    Value(u32),
    Range(u32, u32, Option<u32>),
}

impl Comp {
    fn matches(&self, v: u32) -> bool {
        match *self {
            Comp::Value(x) => v == x,
            Comp::Range(a, b, r) => {
                let r = r.unwrap_or(1);
                v >= a && v <= b && (v - a).is_multiple_of(r)
            }
        }
    }

    fn render(&self, cron: bool) -> String {
        match *self {
            Comp::Value(x) => x.to_string(),
            Comp::Range(a, b, None) if cron => format!("{a}-{b}"),
            Comp::Range(a, b, Some(r)) if cron => format!("{a}-{b}/{r}"),
            Comp::Range(a, b, None) => format!("{a}..{b}"),
            Comp::Range(a, b, Some(r)) => format!("{a}..{b}/{r}"),
        }
    }
}

/// `None` is `*`.
type List = Option<Vec<Comp>>;

fn list_matches(list: &List, v: u32) -> bool {
    list.as_ref().is_none_or(|l| l.iter().any(|c| c.matches(v)))
}

fn render(list: &List, cron: bool) -> String {
    match list {
        None => "*".into(),
        Some(l) => l.iter().map(|c| c.render(cron)).collect::<Vec<_>>().join(","),
    }
}

fn comp(lo: u32, hi: u32) -> impl Strategy<Value = Comp> {
    prop_oneof![
        3 => (lo..=hi).prop_map(Comp::Value),
        1 => (lo..=hi, lo..=hi, proptest::option::of(1..=(hi - lo).max(1)))
            .prop_map(|(a, b, r)| Comp::Range(a.min(b), a.max(b), r)),
    ]
}

fn list(lo: u32, hi: u32, star: u32) -> impl Strategy<Value = List> {
    prop_oneof![
        star => Just(None),
        4 => proptest::collection::vec(comp(lo, hi), 1..4).prop_map(Some),
    ]
}

#[derive(Debug, Clone)]
struct Calendar {
    weekdays: Option<Vec<u32>>,
    year: List,
    month: List,
    day: List,
    end_of_month: bool,
    hour: List,
    minute: List,
    second: List,
}

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

impl Calendar {
    fn render(&self) -> String {
        let mut s = String::new();
        if let Some(w) = &self.weekdays {
            let names: Vec<_> = w.iter().map(|&d| DAYS[d as usize]).collect();
            s.push_str(&names.join(","));
            s.push(' ');
        }
        s.push_str(&format!(
            "{}-{}{}{} {}:{}:{}",
            render(&self.year, false),
            render(&self.month, false),
            if self.end_of_month { '~' } else { '-' },
            render(&self.day, false),
            render(&self.hour, false),
            render(&self.minute, false),
            render(&self.second, false),
        ));
        s
    }

    fn date_matches(&self, d: NaiveDate) -> bool {
        let len = days_in_month(d.year(), d.month());
        let day = if self.end_of_month { len + 1 - d.day() } else { d.day() };
        list_matches(&self.year, d.year() as u32)
            && list_matches(&self.month, d.month())
            && list_matches(&self.day, day)
            && self.weekdays.as_ref().is_none_or(|w| w.contains(&d.weekday().num_days_from_monday()))
    }

    fn time_matches(&self, t: NaiveDateTime) -> bool {
        list_matches(&self.hour, t.hour())
            && list_matches(&self.minute, t.minute())
            && list_matches(&self.second, t.second())
    }
}

fn days_in_month(y: i32, m: u32) -> u32 {
    let first = NaiveDate::from_ymd_opt(y, m, 1).expect("date");
    let next =
        if m == 12 { NaiveDate::from_ymd_opt(y + 1, 1, 1) } else { NaiveDate::from_ymd_opt(y, m + 1, 1) }
            .expect("date");
    (next - first).num_days() as u32
}

fn calendar() -> impl Strategy<Value = Calendar> {
    (
        proptest::option::of(proptest::collection::btree_set(0u32..7, 1..4)),
        list(2024, 2031, 3),
        list(1, 12, 3),
        list(1, 28, 3),
        any::<bool>(),
        list(0, 23, 1),
        list(0, 59, 1),
        prop_oneof![Just(None), list(0, 59, 0)],
    )
        .prop_map(|(w, year, month, day, eom, hour, minute, second)| Calendar {
            weekdays: w.map(|s| s.into_iter().collect()),
            year,
            month,
            end_of_month: eom && day.is_some(),
            // systemd lowers the `~` bound by 3 per further list element; one keeps it at 28.
            day: if eom { day.map(|l| l.into_iter().take(1).collect()) } else { day },
            hour,
            minute,
            // systemd refuses a seconds range `a..a` without a step (shorter than 1 s).
            second: second
                .map(|l| {
                    l.into_iter()
                        .map(|c| match c {
                            Comp::Range(a, b, None) if a == b => Comp::Value(a),
                            c => c,
                        })
                        .collect()
                })
                .or(Some(vec![Comp::Value(0)])),
        })
}

/// The first wall-clock time strictly after `after` matching both predicates, scanning at
/// most `years` years.
fn brute_force(
    after: NaiveDateTime,
    years: i64,
    date_ok: impl Fn(NaiveDate) -> bool,
    time_ok: impl Fn(NaiveDateTime) -> bool,
    seconds: bool,
) -> Option<NaiveDateTime> {
    let mut day = after.date();
    let end = day + Duration::days(366 * years);
    while day <= end {
        if date_ok(day) {
            for h in 0..24 {
                for m in 0..60 {
                    for s in 0..if seconds { 60 } else { 1 } {
                        let t = day.and_hms_opt(h, m, s)?;
                        if t > after && time_ok(t) {
                            return Some(t);
                        }
                    }
                }
            }
        }
        day = day.succ_opt()?;
    }
    None
}

fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    // 2024-01-01 .. 2029-12-31, to the second.
    (1_704_067_200i64..1_893_456_000).prop_map(|s| DateTime::from_timestamp(s, 0).expect("t"))
}

#[derive(Debug, Clone)]
struct Cron {
    minute: List,
    hour: List,
    dom: List,
    month: List,
    dow: List,
}

impl Cron {
    fn render(&self) -> String {
        format!(
            "{} {} {} {} {}",
            render(&self.minute, true),
            render(&self.hour, true),
            render(&self.dom, true),
            render(&self.month, true),
            render(&self.dow, true)
        )
    }

    fn date_matches(&self, d: NaiveDate) -> bool {
        let dom = list_matches(&self.dom, d.day());
        let wd = d.weekday().num_days_from_sunday();
        // 7 is Sunday too.
        let dow = list_matches(&self.dow, wd) || (wd == 0 && list_matches(&self.dow, 7));
        let days = if self.dom.is_some() && self.dow.is_some() { dom || dow } else { dom && dow };
        list_matches(&self.month, d.month()) && days
    }

    fn time_matches(&self, t: NaiveDateTime) -> bool {
        list_matches(&self.hour, t.hour()) && list_matches(&self.minute, t.minute())
    }
}

fn cron() -> impl Strategy<Value = Cron> {
    (list(0, 59, 1), list(0, 23, 1), list(1, 31, 2), list(1, 12, 2), list(0, 7, 2))
        .prop_map(|(minute, hour, dom, month, dow)| Cron { minute, hour, dom, month, dow })
}

const DST_ZONES: [Tz; 6] = [
    chrono_tz::Europe::Berlin,
    chrono_tz::America::New_York,
    chrono_tz::Australia::Lord_Howe,
    chrono_tz::America::Santiago,
    chrono_tz::Asia::Tehran,
    chrono_tz::Pacific::Chatham,
];

fn dst_zone() -> impl Strategy<Value = Tz> {
    (0..DST_ZONES.len()).prop_map(|i| DST_ZONES[i])
}

fn is_transition(tz: Tz, t: DateTime<Utc>) -> bool {
    let off = |t: DateTime<Utc>| tz.offset_from_utc_datetime(&t.naive_utc());
    off(t - Duration::seconds(1)) != off(t)
}

/// Cairn's DST rule, checked on a sequence of fire times of a wall-clock predicate.
fn check_dst_rule(
    tz: Tz,
    fires: &[DateTime<Utc>],
    matches: impl Fn(NaiveDateTime) -> bool,
) -> Result<(), TestCaseError> {
    for w in fires.windows(2) {
        prop_assert!(w[0] < w[1], "not strictly increasing: {w:?}");
    }
    for &t in fires {
        let local = t.with_timezone(&tz).naive_local();
        if matches(local) {
            // A repeated wall-clock time fires at its first occurrence.
            if let LocalResult::Ambiguous(a, b) = tz.from_local_datetime(&local) {
                prop_assert_eq!(t, a.min(b).with_timezone(&Utc), "not the first occurrence");
            }
        } else {
            // Otherwise it must be the end of a gap that swallowed a matching time.
            prop_assert!(is_transition(tz, t), "{t} ({local} local) matches nothing");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn calendar_agrees_with_brute_force(cal in calendar(), after in instant()) {
        let expr = cal.render();
        let schedule = Schedule::new(
            Recurrence::calendar(&expr).map_err(|e| TestCaseError::fail(format!("{expr}: {e}")))?,
            Tz::UTC,
            None,
        ).expect("schedule");
        let ours = schedule.next_after(after).map(|t| t.naive_utc());
        let theirs = brute_force(
            after.naive_utc(), 30, |d| cal.date_matches(d), |t| cal.time_matches(t), true);
        prop_assert_eq!(ours, theirs, "{}", expr);
    }

    #[test]
    fn cron_agrees_with_brute_force(c in cron(), after in instant()) {
        let expr = c.render();
        let schedule = Schedule::new(
            Recurrence::cron(&expr).map_err(|e| TestCaseError::fail(format!("{expr}: {e}")))?,
            Tz::UTC,
            None,
        ).expect("schedule");
        let ours = schedule.next_after(after).map(|t| t.naive_utc());
        let theirs = brute_force(
            after.naive_utc(), 30, |d| c.date_matches(d), |t| c.time_matches(t), false);
        prop_assert_eq!(ours, theirs, "{}", expr);
    }

    #[test]
    fn calendar_follows_the_dst_rule(cal in calendar(), tz in dst_zone(), after in instant()) {
        let expr = cal.render();
        let schedule = Schedule::new(Recurrence::calendar(&expr).expect("parses"), tz, None)
            .expect("schedule");
        let fires: Vec<_> = schedule.iter_after(after).take(30).collect();
        if let Some(first) = fires.first() {
            prop_assert!(*first > after);
        }
        check_dst_rule(tz, &fires, |l| cal.date_matches(l.date()) && cal.time_matches(l))?;
    }

    #[test]
    fn cron_follows_the_dst_rule(c in cron(), tz in dst_zone(), after in instant()) {
        let schedule = Schedule::new(Recurrence::cron(&c.render()).expect("parses"), tz, None)
            .expect("schedule");
        let fires: Vec<_> = schedule.iter_after(after).take(30).collect();
        check_dst_rule(tz, &fires, |l| c.date_matches(l.date()) && c.time_matches(l))?;
    }

    /// Dense schedules right around transitions: every matching wall-clock time that exists
    /// fires once (at its first occurrence) and gap times fire at the gap's end.
    #[test]
    fn dense_schedules_across_transitions(
        step in prop_oneof![Just(1u32), Just(5), Just(15), Just(30)],
        tz in dst_zone(),
        year in 2024i32..2027,
        which in 0usize..2,
        lead_minutes in 0i64..300,
    ) {
        // Find the year's transitions by scanning hours.
        let off = |t: DateTime<Utc>| tz.offset_from_utc_datetime(&t.naive_utc());
        let mut t = Utc.with_ymd_and_hms(year, 1, 1, 0, 0, 0).single().expect("t");
        let mut transitions = Vec::new();
        while t.year() == year {
            let next = t + Duration::hours(1);
            if off(next) != off(t) {
                transitions.push(t);
            }
            t = next;
        }
        prop_assume!(transitions.len() > which);
        let after = transitions[which] - Duration::minutes(lead_minutes);
        let expr = format!("*:0/{step}");
        let schedule = Schedule::new(Recurrence::calendar(&expr).expect("parses"), tz, None)
            .expect("schedule");
        let fires: Vec<_> = schedule.iter_after(after).take(600).collect();
        check_dst_rule(tz, &fires, |l| l.minute().is_multiple_of(step) && l.second() == 0)?;
        // Completeness: every matching wall-clock time in the covered span fires.
        let first_local = after.with_timezone(&tz).naive_local();
        let last = *fires.last().expect("fires");
        let mut local = first_local.with_second(0).expect("t") + Duration::minutes(1);
        while local < last.with_timezone(&tz).naive_local() {
            if local.minute().is_multiple_of(step) {
                let at = match tz.from_local_datetime(&local) {
                    LocalResult::Single(x) => Some(x.with_timezone(&Utc)),
                    LocalResult::Ambiguous(a, b) => Some(a.min(b).with_timezone(&Utc)),
                    LocalResult::None => None,
                };
                if let Some(at) = at.filter(|at| *at > after) {
                    prop_assert!(fires.contains(&at), "{local} ({at}) did not fire");
                }
            }
            local += Duration::minutes(1);
        }
    }
}

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().expect("instant")
}

fn fires(expr: &str, tz: Tz, after: &str, n: usize) -> Vec<String> {
    Schedule::new(Recurrence::calendar(expr).expect("parses"), tz, None)
        .expect("schedule")
        .iter_after(utc(after))
        .take(n)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .collect()
}

fn cron_fires(expr: &str, tz: Tz, after: &str, n: usize) -> Vec<String> {
    Schedule::new(Recurrence::cron(expr).expect("parses"), tz, None)
        .expect("schedule")
        .iter_after(utc(after))
        .take(n)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .collect()
}

#[test]
fn berlin_spring_gap_fires_at_the_end_of_the_gap() {
    // 2024-03-31: 02:00 CET → 03:00 CEST (01:00Z). systemd skips 02:30 that day.
    let berlin = chrono_tz::Europe::Berlin;
    assert_eq!(
        fires("02:30", berlin, "2024-03-30T12:00:00Z", 3),
        ["2024-03-31T01:00:00Z", "2024-04-01T00:30:00Z", "2024-04-02T00:30:00Z"]
    );
    // 02:00, 02:15, 02:30, 02:45 and 03:00 collapse into one fire at 03:00 CEST.
    assert_eq!(
        fires("*:0/15", berlin, "2024-03-31T00:40:00Z", 3),
        ["2024-03-31T00:45:00Z", "2024-03-31T01:00:00Z", "2024-03-31T01:15:00Z"]
    );
    assert_eq!(
        cron_fires("30 2 * * *", berlin, "2024-03-30T12:00:00Z", 2),
        ["2024-03-31T01:00:00Z", "2024-04-01T00:30:00Z"]
    );
}

#[test]
fn berlin_autumn_fold_fires_once_at_the_first_occurrence() {
    // 2024-10-27: 03:00 CEST → 02:00 CET (01:00Z); 02:00–02:59 happen twice.
    let berlin = chrono_tz::Europe::Berlin;
    assert_eq!(
        fires("02:30", berlin, "2024-10-26T12:00:00Z", 2),
        ["2024-10-27T00:30:00Z", "2024-10-28T01:30:00Z"]
    );
    assert_eq!(
        fires("*:0/30", berlin, "2024-10-26T23:10:00Z", 5),
        [
            "2024-10-26T23:30:00Z",
            "2024-10-27T00:00:00Z",
            "2024-10-27T00:30:00Z",
            "2024-10-27T02:00:00Z",
            "2024-10-27T02:30:00Z"
        ]
    );
    // From inside the second pass, the rest of the fold already fired (systemd would fire
    // 02:30 CET again at 01:30Z).
    assert_eq!(
        fires("*:0/30", berlin, "2024-10-27T01:10:00Z", 2),
        ["2024-10-27T02:00:00Z", "2024-10-27T02:30:00Z"]
    );
    assert_eq!(cron_fires("30 2 * * *", berlin, "2024-10-27T00:31:00Z", 1), ["2024-10-28T01:30:00Z"]);
}

#[test]
fn new_york_gap_and_fold() {
    let ny = chrono_tz::America::New_York;
    // 2024-03-10 02:00 EST → 03:00 EDT (07:00Z).
    assert_eq!(
        fires("02:30", ny, "2024-03-09T12:00:00Z", 2),
        ["2024-03-10T07:00:00Z", "2024-03-11T06:30:00Z"]
    );
    assert_eq!(
        cron_fires("0,30 2 * * *", ny, "2024-03-10T06:00:00Z", 3),
        ["2024-03-10T07:00:00Z", "2024-03-11T06:00:00Z", "2024-03-11T06:30:00Z"]
    );
    // 2024-11-03 02:00 EDT → 01:00 EST (06:00Z); 01:xx happens twice.
    assert_eq!(
        fires("01:30", ny, "2024-11-02T12:00:00Z", 2),
        ["2024-11-03T05:30:00Z", "2024-11-04T06:30:00Z"]
    );
    assert_eq!(
        fires("hourly", ny, "2024-11-03T04:30:00Z", 3),
        ["2024-11-03T05:00:00Z", "2024-11-03T07:00:00Z", "2024-11-03T08:00:00Z"]
    );
}

#[test]
fn lord_howe_half_hour_shift() {
    // 2024-10-06 02:00 → 02:30 (+10:30 → +11): 02:00 and 02:15 fire at 02:30 (15:30Z).
    let lh = chrono_tz::Australia::Lord_Howe;
    assert_eq!(
        fires("*:0/15", lh, "2024-10-05T15:20:00Z", 3),
        ["2024-10-05T15:30:00Z", "2024-10-05T15:45:00Z", "2024-10-05T16:00:00Z"]
    );
    // 2024-04-07 02:00 → 01:30: 01:30–01:59 repeat; 01:45 fires once.
    assert_eq!(
        fires("01:45", lh, "2024-04-06T12:00:00Z", 2),
        ["2024-04-06T14:45:00Z", "2024-04-07T15:15:00Z"]
    );
}
