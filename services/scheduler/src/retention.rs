//! The one mapping from the API's `RetentionPolicy` to the retention crate's input.

use cairn_api::v1::RetentionPolicy;

/// The retention crate's reading of a proto policy.
pub fn raw_policy(p: &RetentionPolicy) -> cairn_retention::RawPolicy {
    cairn_retention::RawPolicy {
        keep_last: p.keep_last,
        keep_hourly: p.keep_hourly,
        keep_daily: p.keep_daily,
        keep_weekly: p.keep_weekly,
        keep_monthly: p.keep_monthly,
        keep_yearly: p.keep_yearly,
        keep_within: p.keep_within.clone(),
        keep_within_hourly: p.keep_within_hourly.clone(),
        keep_within_daily: p.keep_within_daily.clone(),
        keep_within_weekly: p.keep_within_weekly.clone(),
        keep_within_monthly: p.keep_within_monthly.clone(),
        keep_within_yearly: p.keep_within_yearly.clone(),
        keep_tags: p.keep_tags.iter().map(|s| s.labels.clone()).collect(),
        time_zone: p.time_zone.clone(),
    }
}
