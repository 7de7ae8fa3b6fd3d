//! Fuzzes retention policies as the API carries them (counts, restic duration strings, label
//! sets, a zone) and their application to arbitrary snapshot lists: nothing reachable from
//! input may panic; a valid policy survives its raw form; every snapshot gets exactly one
//! decision, and a kept one says why.
#![no_main]

use arbitrary::Arbitrary;
use cairn_retention::{Policy, RawPolicy, Snapshot, apply};
use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    counts: [i8; 6],
    within: [String; 6],
    tags: Vec<Vec<String>>,
    zone: u8,
    /// Seconds after 2001-09-09 (1,000,000,000) and labels.
    snapshots: Vec<(u32, Vec<String>)>,
    now: u32,
}

const ZONES: [&str; 5] = ["", "UTC", "Europe/Berlin", "Australia/Lord_Howe", "Not/AZone"];

fuzz_target!(|input: Input| {
    let [last, hourly, daily, weekly, monthly, yearly] = input.counts.map(i32::from);
    let [within, w_hourly, w_daily, w_weekly, w_monthly, w_yearly] = input.within;
    let raw = RawPolicy {
        keep_last: last,
        keep_hourly: hourly,
        keep_daily: daily,
        keep_weekly: weekly,
        keep_monthly: monthly,
        keep_yearly: yearly,
        keep_within: within,
        keep_within_hourly: w_hourly,
        keep_within_daily: w_daily,
        keep_within_weekly: w_weekly,
        keep_within_monthly: w_monthly,
        keep_within_yearly: w_yearly,
        keep_tags: input.tags,
        time_zone: ZONES[usize::from(input.zone) % ZONES.len()].to_owned(),
    };
    let policy = match Policy::from_raw(&raw) {
        Ok(p) => p,
        Err(e) => {
            let _ = (e.to_string(), e.field());
            return;
        }
    };
    assert_eq!(Policy::from_raw(&policy.to_raw()).as_ref(), Ok(&policy), "the raw form parses back");
    let at = |s: u32| DateTime::<Utc>::from_timestamp(1_000_000_000 + i64::from(s), 0).unwrap();
    let snapshots: Vec<Snapshot> = input
        .snapshots
        .into_iter()
        .take(512)
        .enumerate()
        .map(|(i, (t, labels))| Snapshot { id: format!("s{i}"), time: at(t), labels })
        .collect();
    let decisions = apply(&policy, &snapshots, at(input.now));
    let mut seen: Vec<&str> = decisions.iter().map(|d| d.id.as_str()).collect();
    seen.sort_unstable();
    let mut given: Vec<&str> = snapshots.iter().map(|s| s.id.as_str()).collect();
    given.sort_unstable();
    assert_eq!(seen, given, "one decision per snapshot");
    for d in &decisions {
        assert_eq!(d.keep, !d.reasons.is_empty(), "{d:?}");
    }
});
