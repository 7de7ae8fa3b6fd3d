//! The shared conformance sample (`/work/shared/conformance/calendar-sample.json`, copied to
//! tests/data/): every vector through the public API, exactly as PreviewSchedule will use it.

use cairn_schedule::{Recurrence, Schedule, parse_time_zone};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;

#[derive(Deserialize)]
struct Vector {
    expr: String,
    time_zone: String,
    after: DateTime<Utc>,
    next: Vec<String>,
}

#[test]
fn calendar_sample() {
    let text = include_str!("data/calendar-sample.json");
    let vectors: Vec<Vector> = serde_json::from_str(text).expect("sample parses");
    assert!(!vectors.is_empty());
    for v in &vectors {
        let tz = parse_time_zone(&v.time_zone).expect("zone");
        let recurrence = Recurrence::calendar(&v.expr).expect("expression");
        let schedule = Schedule::new(recurrence, tz, None).expect("schedule");
        let got: Vec<String> = schedule
            .iter_after(v.after)
            .take(3)
            .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
            .collect();
        assert_eq!(got, v.next, "{} in {} after {}", v.expr, v.time_zone, v.after);
    }
    println!("{} sample vectors agree", vectors.len());
}
