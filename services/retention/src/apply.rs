//! Evaluating a [`Policy`] over a list of snapshots, with restic's `forget` semantics.
//!
//! The walk mirrors restic's `ApplyPolicy` (restic master, `internal/data/snapshot_policy.go`):
//! snapshots are sorted newest first (a stable sort, so equal times keep their input order),
//! then visited once. Label sets and `keep_within` keep without counting. Each count rule keeps
//! a snapshot whose bucket (hour, day, ISO week, month, year; `keep_last` gives every snapshot
//! its own) differs from the bucket of the last snapshot that rule kept, and spends one of its
//! count on it. While a count is not spent, the rule also keeps the oldest snapshot of the
//! list even when its bucket is already taken ("oldest daily snapshot"): that keeps the
//! longest history while the policy has room for it. The per-period windows work the same
//! way without counts, for snapshots strictly after the window start. Windows are measured
//! back from the newest snapshot that is before `now`; bucket boundaries are drawn on the
//! policy zone's wall clock.
//!
//! Pure: no clock, no I/O. `now` is an input.

use chrono::{DateTime, Datelike as _, FixedOffset, Offset as _, TimeZone as _, Timelike as _, Utc};
use chrono_tz::Tz;

use crate::duration::RetentionDuration;
use crate::policy::{Count, Policy};

/// A snapshot as the simulator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The snapshot's id; carried through to the decision, never interpreted.
    pub id: String,
    /// When the snapshot was taken.
    pub time: DateTime<Utc>,
    /// Its labels (restic tags).
    pub labels: Vec<String>,
}

/// What the policy does with one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The snapshot's id.
    pub id: String,
    /// The snapshot's time.
    pub time: DateTime<Utc>,
    /// True when at least one rule keeps it.
    pub keep: bool,
    /// restic's reason strings for every rule that keeps it, in restic's order; empty when
    /// the snapshot is removed.
    pub reasons: Vec<String>,
}

/// The calendar bucket a rule groups snapshots by.
#[derive(Debug, Clone, Copy)]
enum Period {
    /// Every snapshot is its own bucket (`keep_last`).
    Each,
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Period {
    /// The word restic puts in front of " snapshot" / " within".
    fn word(self) -> &'static str {
        match self {
            Period::Each => "last",
            Period::Hour => "hourly",
            Period::Day => "daily",
            Period::Week => "weekly",
            Period::Month => "monthly",
            Period::Year => "yearly",
        }
    }

    /// A number that is equal for two snapshots exactly when they share the bucket.
    fn bucket(self, local: &DateTime<Tz>, position: usize) -> i64 {
        let year = i64::from(local.year());
        let month = i64::from(local.month());
        let day = i64::from(local.day());
        match self {
            Period::Each => i64::try_from(position).unwrap_or(i64::MAX),
            Period::Hour => ((year * 100 + month) * 100 + day) * 100 + i64::from(local.hour()),
            Period::Day => (year * 100 + month) * 100 + day,
            Period::Week => {
                let week = local.iso_week();
                i64::from(week.year()) * 100 + i64::from(week.week())
            }
            Period::Month => year * 100 + month,
            Period::Year => year,
        }
    }
}

/// A count rule (`keep_last`, `keep_hourly`, ...) and its progress through the list.
struct CountRule {
    period: Period,
    /// Snapshots the rule may still keep; `None` for unlimited.
    left: Option<u32>,
    /// Bucket of the last snapshot this rule kept.
    last: Option<i64>,
}

/// A per-period window (`keep_within_daily`, ...) and its progress through the list.
struct WindowRule {
    period: Period,
    duration: RetentionDuration,
    /// Snapshots strictly after this are inside; `None`: every snapshot is inside.
    start: Option<DateTime<Utc>>,
    last: Option<i64>,
}

const COUNT_PERIODS: [Period; 6] =
    [Period::Each, Period::Hour, Period::Day, Period::Week, Period::Month, Period::Year];

const WINDOW_PERIODS: [Period; 5] = [Period::Hour, Period::Day, Period::Week, Period::Month, Period::Year];

/// Decides, for every snapshot, whether `policy` keeps it and why, exactly as restic's
/// `forget` would for one group. Returns one decision per input snapshot, newest first;
/// snapshots with equal times stay in input order. `now` only matters for the windows:
/// they are measured back from the newest snapshot strictly before `now`.
pub fn apply(policy: &Policy, snapshots: &[Snapshot], now: DateTime<Utc>) -> Vec<Decision> {
    let mut order: Vec<&Snapshot> = snapshots.iter().collect();
    // Stable, like restic's `sort.Stable`: equal times keep their input order.
    order.sort_by_key(|s| std::cmp::Reverse(s.time));

    let zone = policy.time_zone;
    // The base of every window: the newest snapshot that is not in the future. With none,
    // restic measures from Go's zero time, which puts every snapshot inside every window.
    let newest = order.iter().map(|s| s.time).find(|t| *t < now);
    let window_start =
        |duration: RetentionDuration| -> Option<DateTime<Utc>> { window_start(newest?, duration, zone) };

    let within = policy.within.map(|d| (d, window_start(d)));
    let mut counts: Vec<CountRule> = COUNT_PERIODS
        .iter()
        .zip(policy.counts)
        .filter_map(|(&period, count)| {
            count.map(|count| CountRule {
                period,
                left: match count {
                    Count::Limit(n) => Some(n.get()),
                    Count::Unlimited => None,
                },
                last: None,
            })
        })
        .collect();
    let mut windows: Vec<WindowRule> = WINDOW_PERIODS
        .iter()
        .zip(policy.within_periods)
        .filter_map(|(&period, duration)| {
            duration.map(|duration| WindowRule {
                period,
                duration,
                start: window_start(duration),
                last: None,
            })
        })
        .collect();

    let oldest = order.len().saturating_sub(1);
    order
        .iter()
        .enumerate()
        .map(|(position, snapshot)| {
            let is_oldest = position == oldest;
            let local = snapshot.time.with_timezone(&zone);
            let mut reasons = Vec::new();

            for set in &policy.keep_tags {
                if carries(&snapshot.labels, set) {
                    reasons.push(format!("has tags [{}]", set.join(", ")));
                }
            }
            if let Some((duration, start)) = within
                && inside(snapshot.time, start)
            {
                reasons.push(format!("within {duration}"));
            }
            for rule in &mut counts {
                if rule.left == Some(0) {
                    continue;
                }
                let bucket = rule.period.bucket(&local, position);
                let repeat = rule.last == Some(bucket);
                if !repeat || is_oldest {
                    rule.last = Some(bucket);
                    if let Some(left) = rule.left.as_mut() {
                        *left -= 1;
                    }
                    let prefix = if repeat { "oldest " } else { "" };
                    reasons.push(format!("{prefix}{} snapshot", rule.period.word()));
                }
            }
            for rule in &mut windows {
                if !inside(snapshot.time, rule.start) {
                    continue;
                }
                let bucket = rule.period.bucket(&local, position);
                let repeat = rule.last == Some(bucket);
                if !repeat || is_oldest {
                    rule.last = Some(bucket);
                    let prefix = if repeat { "oldest " } else { "" };
                    reasons.push(format!("{prefix}{} within {}", rule.period.word(), rule.duration));
                }
            }

            Decision { id: snapshot.id.clone(), time: snapshot.time, keep: !reasons.is_empty(), reasons }
        })
        .collect()
}

/// restic's tag test: the snapshot carries every label of `set`. An empty label in the set
/// matches a snapshot without labels (restic's `--keep-tag ''`), and, as in restic, decides
/// the match as soon as it is reached.
fn carries(labels: &[String], set: &[String]) -> bool {
    for wanted in set {
        if wanted.is_empty() && labels.is_empty() {
            return true;
        }
        if !labels.contains(wanted) {
            return false;
        }
    }
    true
}

fn inside(time: DateTime<Utc>, start: Option<DateTime<Utc>>) -> bool {
    start.is_none_or(|start| time > start)
}

/// Start of a window of `duration` ending at `newest`, or `None` when it reaches past the
/// calendar. restic steps back on the wall clock of the newest snapshot with that
/// snapshot's UTC offset held fixed (Go's `AddDate` on a time read back from the repository
/// carries a fixed offset), so a window over a DST change is not stretched by an hour.
fn window_start(newest: DateTime<Utc>, duration: RetentionDuration, zone: Tz) -> Option<DateTime<Utc>> {
    let local = newest.with_timezone(&zone);
    let offset: FixedOffset = local.offset().fix();
    let start = duration.before(local.naive_local())?;
    offset.from_local_datetime(&start).single().map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::RawPolicy;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).expect("test time")
    }

    fn snap(id: &str, time: &str, labels: &[&str]) -> Snapshot {
        Snapshot {
            id: id.to_owned(),
            time: at(time),
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
        }
    }

    fn policy(raw: RawPolicy) -> Policy {
        Policy::from_raw(&raw).expect("valid policy")
    }

    fn kept(decisions: &[Decision]) -> Vec<&str> {
        decisions.iter().filter(|d| d.keep).map(|d| d.id.as_str()).collect()
    }

    fn reasons<'a>(decisions: &'a [Decision], id: &str) -> Vec<&'a str> {
        decisions
            .iter()
            .find(|d| d.id == id)
            .map(|d| d.reasons.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }

    const NOW: &str = "2030-01-01T00:00:00Z";

    #[test]
    fn newest_first_and_ties_keep_input_order() {
        let list = [
            snap("old", "2024-01-01T00:00:00Z", &[]),
            snap("tie-a", "2024-01-02T00:00:00Z", &[]),
            snap("new", "2024-01-03T00:00:00Z", &[]),
            snap("tie-b", "2024-01-02T00:00:00Z", &[]),
        ];
        let p = policy(RawPolicy { keep_last: 2, ..Default::default() });
        let out = apply(&p, &list, at(NOW));
        let ids: Vec<_> = out.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["new", "tie-a", "tie-b", "old"]);
        assert_eq!(kept(&out), ["new", "tie-a"]);
        assert_eq!(reasons(&out, "tie-a"), ["last snapshot"]);
        assert!(reasons(&out, "tie-b").is_empty());
    }

    #[test]
    fn oldest_snapshot_is_kept_while_a_count_is_left() {
        // Three days, two snapshots on the first day; keep-daily 5 is never spent.
        let list = [
            snap("d1-early", "2024-01-01T08:00:00Z", &[]),
            snap("d1-late", "2024-01-01T20:00:00Z", &[]),
            snap("d2", "2024-01-02T20:00:00Z", &[]),
            snap("d3", "2024-01-03T20:00:00Z", &[]),
        ];
        let p = policy(RawPolicy { keep_daily: 5, ..Default::default() });
        let out = apply(&p, &list, at(NOW));
        assert_eq!(kept(&out), ["d3", "d2", "d1-late", "d1-early"]);
        assert_eq!(reasons(&out, "d1-early"), ["oldest daily snapshot"]);
        assert_eq!(reasons(&out, "d1-late"), ["daily snapshot"]);
        // Spent after three days: the oldest is not kept.
        let p = policy(RawPolicy { keep_daily: 3, ..Default::default() });
        assert_eq!(kept(&apply(&p, &list, at(NOW))), ["d3", "d2", "d1-late"]);
        // The oldest in a bucket of its own is an ordinary daily snapshot.
        let p = policy(RawPolicy { keep_daily: 4, ..Default::default() });
        let out = apply(&p, &list[1..], at(NOW));
        assert_eq!(reasons(&out, "d1-late"), ["daily snapshot"]);
    }

    #[test]
    fn windows_use_the_newest_snapshot_before_now() {
        let list = [
            snap("a", "2024-05-01T10:00:00Z", &[]),
            snap("b", "2024-05-05T10:00:00Z", &[]),
            snap("c", "2024-05-07T10:00:00Z", &[]),
            snap("future", "2099-01-01T00:00:00Z", &[]),
        ];
        let p = policy(RawPolicy { keep_within: "3d".into(), ..Default::default() });
        let out = apply(&p, &list, at("2024-06-01T00:00:00Z"));
        assert_eq!(kept(&out), ["future", "c", "b"]);
        assert_eq!(reasons(&out, "c"), ["within 3d"]);
        // The window ends strictly after its start: exactly 3 days before is outside.
        let edge = [snap("edge", "2024-05-04T10:00:00Z", &[]), snap("c", "2024-05-07T10:00:00Z", &[])];
        assert_eq!(kept(&apply(&p, &edge, at(NOW))), ["c"]);
        // Nothing before now: every snapshot is inside every window.
        let out = apply(&p, &list, at("2000-01-01T00:00:00Z"));
        assert_eq!(out.iter().filter(|d| d.keep).count(), 4);
        // A snapshot exactly at now is not a base.
        let out = apply(&p, &edge, at("2024-05-07T10:00:00Z"));
        assert_eq!(kept(&out), ["c", "edge"]);
    }

    #[test]
    fn window_buckets_and_their_oldest() {
        let list = [
            snap("x1", "2024-05-06T08:00:00Z", &[]),
            snap("x2", "2024-05-06T09:00:00Z", &[]),
            snap("y", "2024-05-07T09:00:00Z", &[]),
        ];
        let p = policy(RawPolicy { keep_within_daily: "7d".into(), ..Default::default() });
        let out = apply(&p, &list, at(NOW));
        assert_eq!(kept(&out), ["y", "x2", "x1"]);
        assert_eq!(reasons(&out, "x2"), ["daily within 7d"]);
        assert_eq!(reasons(&out, "x1"), ["oldest daily within 7d"]);
    }

    #[test]
    fn label_sets_are_ors_of_ands() {
        let list = [
            snap("ab", "2024-01-01T00:00:00Z", &["a", "b"]),
            snap("a", "2024-01-02T00:00:00Z", &["a"]),
            snap("c", "2024-01-03T00:00:00Z", &["c"]),
            snap("none", "2024-01-04T00:00:00Z", &[]),
        ];
        let p = policy(RawPolicy {
            keep_tags: vec![vec!["a".into(), "b".into()], vec!["c".into()]],
            ..Default::default()
        });
        let out = apply(&p, &list, at(NOW));
        assert_eq!(kept(&out), ["c", "ab"]);
        assert_eq!(reasons(&out, "ab"), ["has tags [a, b]"]);
        assert_eq!(reasons(&out, "c"), ["has tags [c]"]);
        // restic's `--keep-tag ''`: only snapshots without labels.
        let p = policy(RawPolicy { keep_tags: vec![vec![String::new()]], ..Default::default() });
        let out = apply(&p, &list, at(NOW));
        assert_eq!(kept(&out), ["none"]);
        assert_eq!(reasons(&out, "none"), ["has tags []"]);
    }

    #[test]
    fn reasons_come_in_restic_order() {
        let list = [snap("only", "2024-01-01T00:00:00Z", &["k"])];
        let p = policy(RawPolicy {
            keep_last: 1,
            keep_hourly: 1,
            keep_daily: 1,
            keep_weekly: 1,
            keep_monthly: 1,
            keep_yearly: 1,
            keep_within: "1d".into(),
            keep_within_hourly: "1h".into(),
            keep_within_daily: "1d".into(),
            keep_within_weekly: "1m".into(),
            keep_within_monthly: "1y".into(),
            keep_within_yearly: "2y".into(),
            keep_tags: vec![vec!["k".into()]],
            ..Default::default()
        });
        let out = apply(&p, &list, at(NOW));
        assert_eq!(
            reasons(&out, "only"),
            [
                "has tags [k]",
                "within 1d",
                "last snapshot",
                "hourly snapshot",
                "daily snapshot",
                "weekly snapshot",
                "monthly snapshot",
                "yearly snapshot",
                "hourly within 1h",
                "daily within 1d",
                "weekly within 1m",
                "monthly within 1y",
                "yearly within 2y",
            ]
        );
    }

    #[test]
    fn buckets_follow_the_policy_zone() {
        // Evenings in New York are already the next day in UTC.
        let same_utc_day = [
            snap("a", "2024-01-09T03:00:00Z", &[]), // 22:00 on the 8th in New York
            snap("b", "2024-01-09T06:00:00Z", &[]), // 01:00 on the 9th in New York
            snap("c", "2024-01-10T12:00:00Z", &[]),
        ];
        let two_days_utc = policy(RawPolicy { keep_daily: 2, ..Default::default() });
        let two_days_ny =
            policy(RawPolicy { keep_daily: 2, time_zone: "America/New_York".into(), ..Default::default() });
        assert_eq!(kept(&apply(&two_days_utc, &same_utc_day, at(NOW))), ["c", "b"]);
        assert_eq!(kept(&apply(&two_days_ny, &same_utc_day, at(NOW))), ["c", "b"]);
        let three_days_ny =
            policy(RawPolicy { keep_daily: 3, time_zone: "America/New_York".into(), ..Default::default() });
        let out = apply(&three_days_ny, &same_utc_day, at(NOW));
        assert_eq!(kept(&out), ["c", "b", "a"]);
        assert_eq!(reasons(&out, "a"), ["daily snapshot"]);
        let three_days_utc = policy(RawPolicy { keep_daily: 3, ..Default::default() });
        let out = apply(&three_days_utc, &same_utc_day, at(NOW));
        assert_eq!(reasons(&out, "a"), ["oldest daily snapshot"]);
    }

    #[test]
    fn empty_input_gives_no_decisions() {
        let p = policy(RawPolicy { keep_last: 1, ..Default::default() });
        assert!(apply(&p, &[], at(NOW)).is_empty());
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        const ZONES: [&str; 5] =
            ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"];
        const LABELS: [&str; 3] = ["a", "b", "c"];
        const BASE: i64 = 1_600_000_000; // 2020-09-13

        fn snapshots() -> impl Strategy<Value = Vec<Snapshot>> {
            // Times on a coarse grid over ~3 years so that equal times and shared buckets occur.
            prop::collection::vec((0i64..20_000, prop::collection::vec(0usize..3, 0..3)), 0..40).prop_map(
                |raw| {
                    raw.into_iter()
                        .enumerate()
                        .map(|(i, (step, labels))| Snapshot {
                            id: format!("s{i}"),
                            time: DateTime::from_timestamp(BASE + step * 4_729, 0).unwrap_or_default(),
                            labels: labels.into_iter().map(|l| LABELS[l].to_owned()).collect(),
                        })
                        .collect()
                },
            )
        }

        fn count() -> impl Strategy<Value = i32> {
            prop_oneof![Just(0), Just(-1), 1i32..8]
        }

        fn window() -> impl Strategy<Value = String> {
            prop_oneof![
                Just(String::new()),
                Just("1d".to_owned()),
                Just("3d12h".to_owned()),
                Just("1m".to_owned()),
                Just("1y2m".to_owned()),
                Just("5h".to_owned()),
            ]
        }

        prop_compose! {
            fn raw_policy()(
                counts in prop::array::uniform6(count()),
                windows in prop::array::uniform6(window()),
                tags in prop::collection::vec(prop::collection::vec(0usize..3, 1..3), 0..2),
                zone in 0usize..ZONES.len(),
            ) -> RawPolicy {
                RawPolicy {
                    keep_last: counts[0],
                    keep_hourly: counts[1],
                    keep_daily: counts[2],
                    keep_weekly: counts[3],
                    keep_monthly: counts[4],
                    keep_yearly: counts[5],
                    keep_within: windows[0].clone(),
                    keep_within_hourly: windows[1].clone(),
                    keep_within_daily: windows[2].clone(),
                    keep_within_weekly: windows[3].clone(),
                    keep_within_monthly: windows[4].clone(),
                    keep_within_yearly: windows[5].clone(),
                    keep_tags: tags
                        .into_iter()
                        .map(|set| set.into_iter().map(|l| LABELS[l].to_owned()).collect())
                        .collect(),
                    time_zone: ZONES[zone].to_owned(),
                }
            }
        }

        fn now() -> impl Strategy<Value = DateTime<Utc>> {
            // Mostly after every snapshot, sometimes in the middle of them or before all.
            (0i64..30_000)
                .prop_map(|step| DateTime::from_timestamp(BASE + step * 4_729, 0).unwrap_or_default())
        }

        fn kept_ids(policy: &RawPolicy, list: &[Snapshot], now: DateTime<Utc>) -> Option<Vec<String>> {
            let policy = Policy::from_raw(policy).ok()?;
            Some(apply(&policy, list, now).into_iter().filter(|d| d.keep).map(|d| d.id).collect())
        }

        fn count_mut(raw: &mut RawPolicy, field: usize) -> &mut i32 {
            match field {
                0 => &mut raw.keep_last,
                1 => &mut raw.keep_hourly,
                2 => &mut raw.keep_daily,
                3 => &mut raw.keep_weekly,
                4 => &mut raw.keep_monthly,
                _ => &mut raw.keep_yearly,
            }
        }

        proptest! {
            /// Raising any count (up to unlimited) never removes a snapshot that was kept.
            #[test]
            fn keeping_is_monotone_in_every_count(
                list in snapshots(),
                base in raw_policy(),
                now in now(),
                field in 0usize..6,
                raise in prop_oneof![Just(-1), 1i32..6],
            ) {
                let Some(before) = kept_ids(&base, &list, now) else {
                    return Ok(()); // the empty policy is refused, nothing to compare
                };
                let mut raised = base.clone();
                let slot = count_mut(&mut raised, field);
                *slot = match (*slot, raise) {
                    (-1, _) | (_, -1) => -1,
                    (n, r) => n + r,
                };
                let after = kept_ids(&raised, &list, now).unwrap_or_default();
                for id in &before {
                    prop_assert!(after.contains(id), "{id} lost when raising field {field}: {raised:?}");
                }
            }

            /// keep_last n alone keeps exactly min(n, len) snapshots: the newest ones.
            #[test]
            fn keep_last_alone_keeps_the_newest_n(list in snapshots(), n in 1i32..50, now in now()) {
                let raw = RawPolicy { keep_last: n, ..RawPolicy::default() };
                let policy = Policy::from_raw(&raw).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let decisions = apply(&policy, &list, now);
                let want = list.len().min(usize::try_from(n).unwrap_or(usize::MAX));
                prop_assert_eq!(decisions.iter().filter(|d| d.keep).count(), want);
                prop_assert!(decisions.iter().take(want).all(|d| d.keep));
            }

            /// One decision per input snapshot, newest first; kept ones give a reason,
            /// removed ones none.
            #[test]
            fn decisions_cover_the_input_and_explain_themselves(
                list in snapshots(),
                raw in raw_policy(),
                now in now(),
            ) {
                let Ok(policy) = Policy::from_raw(&raw) else { return Ok(()) };
                let decisions = apply(&policy, &list, now);
                let mut got: Vec<&str> = decisions.iter().map(|d| d.id.as_str()).collect();
                let mut want: Vec<&str> = list.iter().map(|s| s.id.as_str()).collect();
                got.sort_unstable();
                want.sort_unstable();
                prop_assert_eq!(got, want);
                prop_assert!(decisions.windows(2).all(|w| w[0].time >= w[1].time));
                for d in &decisions {
                    prop_assert_eq!(d.keep, !d.reasons.is_empty(), "{:?}", d);
                    let source = list.iter().find(|s| s.id == d.id);
                    prop_assert_eq!(source.map(|s| s.time), Some(d.time));
                }
            }

            /// Every rule keeps at most what it allows: a count n keeps at most n + 1
            /// snapshots (the extra one being the oldest).
            #[test]
            fn a_count_keeps_at_most_n_plus_the_oldest(
                list in snapshots(),
                field in 0usize..6,
                n in 1i32..8,
                zone in 0usize..ZONES.len(),
                now in now(),
            ) {
                let mut raw = RawPolicy { time_zone: ZONES[zone].to_owned(), ..RawPolicy::default() };
                *count_mut(&mut raw, field) = n;
                let kept = kept_ids(&raw, &list, now).unwrap_or_default();
                prop_assert!(kept.len() <= usize::try_from(n).unwrap_or(0) + 1);
            }
        }
    }
}
