//! Conversions between chrono and protobuf time types, in one place.

use chrono::{DateTime, TimeZone as _, Utc};

/// chrono → protobuf.
pub fn to_timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
}

/// Optional chrono → optional protobuf.
pub fn opt_timestamp(t: Option<DateTime<Utc>>) -> Option<prost_types::Timestamp> {
    t.map(to_timestamp)
}

/// protobuf → chrono; `None` when out of range or malformed.
pub fn from_timestamp(t: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    if !(0..1_000_000_000).contains(&t.nanos) {
        return None;
    }
    Utc.timestamp_opt(t.seconds, t.nanos as u32).single()
}

/// protobuf duration → std; `None` when negative or malformed.
pub fn from_duration(d: &prost_types::Duration) -> Option<std::time::Duration> {
    if d.seconds < 0 || d.nanos < 0 || d.nanos >= 1_000_000_000 {
        return None;
    }
    Some(std::time::Duration::new(d.seconds as u64, d.nanos as u32))
}

/// std duration → protobuf.
pub fn to_duration(d: std::time::Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: d.subsec_nanos() as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let t = Utc.with_ymd_and_hms(2024, 1, 30, 10, 15, 0).unwrap() + chrono::Duration::nanoseconds(5);
        assert_eq!(from_timestamp(&to_timestamp(t)), Some(t));
        assert_eq!(from_timestamp(&prost_types::Timestamp { seconds: 0, nanos: -1 }), None);
        let d = std::time::Duration::from_millis(1500);
        assert_eq!(from_duration(&to_duration(d)), Some(d));
        assert_eq!(from_duration(&prost_types::Duration { seconds: -1, nanos: 0 }), None);
    }
}
