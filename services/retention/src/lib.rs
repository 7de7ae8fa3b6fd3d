//! Pure retention-policy evaluation with restic's `forget` semantics (SPEC §3.7).
//!
//! Given a policy and the snapshots of one task in one store, decide which snapshots the
//! policy keeps and why, exactly as restic's `forget` would for one snapshot group. No I/O,
//! no clock: the caller passes `now`. The scheduler's `SimulateRetention` and the worker's
//! post-backup forget both use it.
//!
//! # API
//!
//! ```
//! use cairn_retention::{apply, Policy, RawPolicy, Snapshot};
//! use chrono::{TimeZone, Utc};
//!
//! // RawPolicy mirrors the proto RetentionPolicy field by field.
//! let policy = Policy::from_raw(&RawPolicy {
//!     keep_daily: 7,
//!     keep_within: "2d".into(),
//!     time_zone: "Europe/Berlin".into(),
//!     ..RawPolicy::default()
//! })?;
//! let snapshots = vec![Snapshot {
//!     id: "a1".into(),
//!     time: Utc.with_ymd_and_hms(2024, 1, 30, 18, 0, 0).unwrap(),
//!     labels: vec![],
//! }];
//! let decisions = apply(&policy, &snapshots, Utc::now());
//! assert!(decisions[0].keep);
//! assert_eq!(decisions[0].reasons, ["within 2d", "daily snapshot"]);
//! # Ok::<(), cairn_retention::Error>(())
//! ```
//!
//! - [`RawPolicy`] → [`Policy::from_raw`] validates: counts are n > 0, 0 (unset) or -1
//!   (unlimited); durations use restic's `1y2m3d4h` form ([`parse_duration`]); label sets are
//!   non-empty; `time_zone` is an IANA name ("" = UTC); a policy with no rule is refused.
//!   Each [`Error`] names its field (`keep_within: "7x": unknown unit 'x' ...`).
//! - [`apply`] returns one [`Decision`] per input snapshot, newest first (equal times keep
//!   their input order), each with `keep` and restic's reason strings.
//!
//! # Semantics
//!
//! Those of restic master's `internal/data/snapshot_policy.go` (commit 93720f07): the
//! oldest-snapshot rule of restic 0.16 and its `oldest` marking (restic PR #5039).
//!
//! - Counts keep the newest snapshot of each of the last n hours / days / ISO weeks /
//!   months / years that have snapshots (`keep_last`: the newest n). While a count is not
//!   spent, the oldest snapshot is kept too, even if its bucket is taken.
//! - `keep_within` keeps everything strictly after *newest − duration*; the per-period
//!   windows keep the newest snapshot of each period inside their window (and the oldest
//!   snapshot, when it is inside). *newest* is the newest snapshot before `now`; if there is
//!   none, every snapshot is inside. Years, months and days step back on the calendar like
//!   Go's `AddDate`.
//! - `keep_tags`: a snapshot carrying every label of one set is kept; an empty label matches
//!   snapshots without labels.
//! - Buckets and window arithmetic use the wall clock of `time_zone` (restic uses the
//!   snapshot's recorded local time; Cairn's snapshots are UTC instants, the zone stands in
//!   for the machine's).
//!
//! Reason strings are restic's: `has tags [a, b]`, `within 7d`, `last snapshot`,
//! `hourly snapshot`, `daily snapshot`, `weekly snapshot`, `monthly snapshot`,
//! `yearly snapshot`, `hourly within 1d`, `daily within 7d`, `weekly within 1m`,
//! `monthly within 1y`, `yearly within 9999y`, and for the oldest-snapshot rule the same
//! with an `oldest ` prefix (`oldest daily snapshot`, `oldest daily within 7d`).
//!
//! # Layout
//!
//! - `duration` — restic durations: parsing, display, calendar arithmetic.
//! - `policy` — [`RawPolicy`], validation, [`Policy`], [`Error`].
//! - `apply` — [`Snapshot`], [`Decision`], [`apply`]: the walk over the snapshots.

mod apply;
mod duration;
mod policy;

pub use apply::{Decision, Snapshot, apply};
pub use duration::{DurationError, RetentionDuration, parse_duration};
pub use policy::{Error, Policy, RawPolicy};

#[cfg(feature = "api")]
impl From<&cairn_api::v1::RetentionPolicy> for RawPolicy {
    fn from(p: &cairn_api::v1::RetentionPolicy) -> Self {
        RawPolicy {
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
}
