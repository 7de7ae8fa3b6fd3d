//! Reference vectors: what restic itself decides, checked against `cairn_retention::apply`.
//!
//! - `restic-policy-suite.json`: restic's own `TestApplyPolicy` table (current master, the
//!   `internal/data` package) with its golden keep sets and reasons, transcribed as data.
//! - `restic-0.14-cli.json`: the installed restic 0.14 CLI run by
//!   `scripts/restic014_vectors.py` (real repositories, `forget --dry-run --json`), including
//!   local-time buckets in Europe/Berlin and America/New_York. 0.14 predates the oldest-snapshot
//!   rule (restic 0.16), so the oldest snapshot of each list is compared with that rule taken
//!   out; everything else must match exactly.
//! - `retention-sample.json`: the shared conformance sample (SPEC §4.1 `SimulateRetention`).

use std::collections::BTreeMap;
use std::path::Path;

use cairn_retention::{Decision, Error, Policy, RawPolicy, Snapshot, apply};
use chrono::{DateTime, Utc};
use serde::Deserialize;

#[derive(Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct JsonPolicy {
    keep_last: i32,
    keep_hourly: i32,
    keep_daily: i32,
    keep_weekly: i32,
    keep_monthly: i32,
    keep_yearly: i32,
    keep_within: String,
    keep_within_hourly: String,
    keep_within_daily: String,
    keep_within_weekly: String,
    keep_within_monthly: String,
    keep_within_yearly: String,
    keep_tags: Vec<Vec<String>>,
    time_zone: String,
}

impl JsonPolicy {
    fn raw(&self, time_zone: &str) -> RawPolicy {
        RawPolicy {
            keep_last: self.keep_last,
            keep_hourly: self.keep_hourly,
            keep_daily: self.keep_daily,
            keep_weekly: self.keep_weekly,
            keep_monthly: self.keep_monthly,
            keep_yearly: self.keep_yearly,
            keep_within: self.keep_within.clone(),
            keep_within_hourly: self.keep_within_hourly.clone(),
            keep_within_daily: self.keep_within_daily.clone(),
            keep_within_weekly: self.keep_within_weekly.clone(),
            keep_within_monthly: self.keep_within_monthly.clone(),
            keep_within_yearly: self.keep_within_yearly.clone(),
            keep_tags: self.keep_tags.clone(),
            time_zone: if self.time_zone.is_empty() { time_zone.to_owned() } else { self.time_zone.clone() },
        }
    }
}

#[derive(Debug, Deserialize)]
struct JsonSnapshot {
    id: String,
    time: DateTime<Utc>,
    #[serde(alias = "tags")]
    labels: Vec<String>,
}

impl JsonSnapshot {
    fn snapshot(&self) -> Snapshot {
        Snapshot { id: self.id.clone(), time: self.time, labels: self.labels.clone() }
    }
}

fn load<T: for<'de> Deserialize<'de>>(name: &str) -> T {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

fn kept(decisions: &[Decision]) -> Vec<&str> {
    decisions.iter().filter(|d| d.keep).map(|d| d.id.as_str()).collect()
}

fn reasons(decisions: &[Decision]) -> BTreeMap<&str, Vec<String>> {
    decisions.iter().filter(|d| d.keep).map(|d| (d.id.as_str(), d.reasons.clone())).collect()
}

#[derive(Debug, Deserialize)]
struct Suite {
    now: DateTime<Utc>,
    snapshots: Vec<JsonSnapshot>,
    cases: Vec<SuiteCase>,
}

#[derive(Debug, Deserialize)]
struct SuiteCase {
    index: usize,
    policy: JsonPolicy,
    golden: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    keep: Vec<String>,
    #[serde(default)]
    reasons: Option<BTreeMap<String, Vec<String>>>,
}

#[test]
fn restic_policy_test_suite() {
    let suite: Suite = load("restic-policy-suite.json");
    assert_eq!(suite.snapshots.len(), 103);
    assert_eq!(suite.cases.len(), 40, "restic's table has 40 policies");
    let snapshots: Vec<Snapshot> = suite.snapshots.iter().map(JsonSnapshot::snapshot).collect();
    for case in &suite.cases {
        let label = format!("restic policy #{} ({})", case.index, case.golden);
        let policy = Policy::from_raw(&case.policy.raw(""));
        if let Some(error) = &case.error {
            assert_eq!(error, "EmptyPolicy", "{label}");
            assert_eq!(policy, Err(Error::EmptyPolicy), "{label}");
            continue;
        }
        let policy = policy.unwrap_or_else(|e| panic!("{label}: {e}"));
        let decisions = apply(&policy, &snapshots, suite.now);
        assert_eq!(decisions.len(), snapshots.len(), "{label}");
        // Same snapshots, in restic's (newest-first) order.
        assert_eq!(kept(&decisions), case.keep, "{label}: keep set");
        if let Some(want) = &case.reasons {
            let got = reasons(&decisions);
            for (id, want) in want {
                assert_eq!(got.get(id.as_str()), Some(want), "{label}: reasons of {id}");
            }
        }
    }
}

#[derive(Debug, Deserialize)]
struct Cli {
    generator: String,
    generated_at: DateTime<Utc>,
    scenarios: Vec<CliScenario>,
}

#[derive(Debug, Deserialize)]
struct CliScenario {
    name: String,
    time_zone: String,
    snapshots: Vec<JsonSnapshot>,
    cases: Vec<CliCase>,
}

#[derive(Debug, Deserialize)]
struct CliCase {
    policy: JsonPolicy,
    keep: Vec<String>,
    reasons: BTreeMap<String, Vec<String>>,
}

#[test]
fn restic_0_14_cli() {
    let cli: Cli = load("restic-0.14-cli.json");
    assert!(cli.generator.starts_with("restic 0.14"), "{}", cli.generator);
    let mut compared = 0;
    for scenario in &cli.scenarios {
        let snapshots: Vec<Snapshot> = scenario.snapshots.iter().map(JsonSnapshot::snapshot).collect();
        let oldest = snapshots.iter().min_by_key(|s| s.time).map(|s| s.id.clone()).unwrap_or_default();
        for case in &scenario.cases {
            let label = format!("{} / {:?}", scenario.name, case.policy);
            let policy = Policy::from_raw(&case.policy.raw(&scenario.time_zone))
                .unwrap_or_else(|e| panic!("{label}: {e}"));
            let decisions = apply(&policy, &snapshots, cli.generated_at);
            for d in &decisions {
                let theirs = case.reasons.get(&d.id).cloned().unwrap_or_default();
                assert_eq!(
                    case.keep.contains(&d.id),
                    !theirs.is_empty(),
                    "{label}: vector is consistent for {}",
                    d.id
                );
                let ours: Vec<String> = if d.id == oldest {
                    // restic 0.14 has no oldest-snapshot rule.
                    d.reasons.iter().filter(|r| !r.starts_with("oldest ")).cloned().collect()
                } else {
                    d.reasons.clone()
                };
                assert_eq!(ours, theirs, "{label}: reasons of {}", d.id);
            }
            compared += 1;
        }
    }
    assert!(compared >= 70, "only {compared} CLI cases");
}

#[derive(Debug, Deserialize)]
struct SampleCase {
    name: String,
    snapshots: Vec<JsonSnapshot>,
    policy: JsonPolicy,
    keep: Vec<String>,
    #[serde(default)]
    reasons: BTreeMap<String, Vec<String>>,
}

#[test]
fn conformance_sample() {
    let cases: Vec<SampleCase> = load("retention-sample.json");
    assert!(!cases.is_empty());
    let now: DateTime<Utc> = "2100-01-01T00:00:00Z".parse().expect("now");
    for case in &cases {
        let snapshots: Vec<Snapshot> = case.snapshots.iter().map(JsonSnapshot::snapshot).collect();
        let policy = Policy::from_raw(&case.policy.raw("")).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let decisions = apply(&policy, &snapshots, now);
        let mut got = kept(&decisions);
        got.sort_unstable();
        let mut want: Vec<&str> = case.keep.iter().map(String::as_str).collect();
        want.sort_unstable();
        assert_eq!(got, want, "{}: keep set", case.name);
        let got = reasons(&decisions);
        for (id, want) in &case.reasons {
            assert_eq!(got.get(id.as_str()), Some(want), "{}: reasons of {id}", case.name);
        }
    }
}
