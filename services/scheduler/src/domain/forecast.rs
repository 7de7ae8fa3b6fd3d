//! Forecast maths, no I/O: given upcoming runs with estimated durations, the weekday × hour
//! heatmap of the most runs active at once within each hour, and the pairs of runs that
//! overlap in time while sharing a store or a worker pool.

use std::collections::HashMap;

use chrono::{DateTime, Datelike as _, Duration, DurationRound as _, Timelike as _, Utc};
use chrono_tz::Tz;

/// One upcoming run.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// When it starts.
    pub start: DateTime<Utc>,
    /// Estimated duration.
    pub duration: Duration,
    /// Stores it touches (ids as text).
    pub stores: Vec<String>,
    /// Worker pool key (`k=v,...`; empty = any worker).
    pub pool: String,
}

impl Run {
    fn end(&self) -> DateTime<Utc> {
        self.start + self.duration
    }
}

/// The most runs active at once during each (weekday Mon=0, hour) in `tz`, maximum over the
/// horizon.
pub fn heatmap(runs: &[Run], tz: Tz) -> [[u32; 24]; 7] {
    let mut out = [[0u32; 24]; 7];
    // Events per hour instance: the sweep is done within each hour so the value is true
    // concurrency, not the number of runs touching the hour.
    let mut by_hour: HashMap<DateTime<Utc>, Vec<(DateTime<Utc>, i32)>> = HashMap::new();
    for r in runs {
        let end = r.end().max(r.start + Duration::seconds(1));
        let Ok(mut h) = r.start.duration_trunc(Duration::hours(1)) else { continue };
        while h < end {
            let next = h + Duration::hours(1);
            let events = by_hour.entry(h).or_default();
            events.push((r.start.max(h), 1));
            events.push((end.min(next), -1));
            h = next;
        }
    }
    for (hour, mut events) in by_hour {
        // Ends before starts at the same instant: back-to-back runs do not overlap.
        events.sort_by_key(|(t, d)| (*t, *d));
        let (mut active, mut peak) = (0i32, 0i32);
        for (_, d) in events {
            active += d;
            peak = peak.max(active);
        }
        let local = hour.with_timezone(&tz);
        let (d, h) = (local.weekday().num_days_from_monday() as usize, local.hour() as usize);
        out[d][h] = out[d][h].max(peak as u32);
    }
    out
}

/// A pair of overlapping runs (indices into the input, earlier first) and what they share.
#[derive(Debug, Clone, PartialEq)]
pub struct Overlap {
    /// Earlier run.
    pub first: usize,
    /// Later run.
    pub second: usize,
    /// `store <id>` or `worker pool <key>`.
    pub shared: String,
    /// How long they overlap.
    pub overlap: Duration,
}

/// Overlapping pairs sharing a store or a worker pool, at most `limit`. `runs` must be sorted
/// by start.
pub fn overlaps(runs: &[Run], limit: usize) -> Vec<Overlap> {
    let mut out = Vec::new();
    let mut active: Vec<usize> = Vec::new();
    for (i, r) in runs.iter().enumerate() {
        active.retain(|&j| runs[j].end() > r.start);
        for &j in &active {
            let a = &runs[j];
            let shared = a
                .stores
                .iter()
                .find(|s| r.stores.contains(s))
                .map(|s| format!("store {s}"))
                .or_else(|| (a.pool == r.pool).then(|| format!("worker pool {}", pool_name(&a.pool))));
            if let Some(shared) = shared {
                out.push(Overlap { first: j, second: i, shared, overlap: a.end().min(r.end()) - r.start });
                if out.len() >= limit {
                    return out;
                }
            }
        }
        active.push(i);
    }
    out
}

/// Human name of a pool key.
pub fn pool_name(key: &str) -> &str {
    if key.is_empty() { "(any worker)" } else { key }
}

/// The median of durations; `None` when empty.
pub fn median(mut secs: Vec<f64>) -> Option<f64> {
    if secs.is_empty() {
        return None;
    }
    secs.sort_by(f64::total_cmp);
    let n = secs.len();
    Some(if n % 2 == 1 { secs[n / 2] } else { (secs[n / 2 - 1] + secs[n / 2]) / 2.0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn run(start: &str, mins: i64, store: &str, pool: &str) -> Run {
        Run {
            start: t(start),
            duration: Duration::minutes(mins),
            stores: vec![store.into()],
            pool: pool.into(),
        }
    }

    #[test]
    fn heatmap_counts_true_concurrency() {
        // Monday 2024-01-29: two sequential 20-minute runs at 02:00 and 02:30, one spanning 02:10-03:10.
        let runs = vec![
            run("2024-01-29T02:00:00Z", 20, "a", ""),
            run("2024-01-29T02:30:00Z", 20, "b", ""),
            run("2024-01-29T02:10:00Z", 60, "c", ""),
        ];
        let h = heatmap(&runs, Tz::UTC);
        assert_eq!(h[0][2], 2, "never three at once");
        assert_eq!(h[0][3], 1);
        assert_eq!(h[0][1], 0);
        // In Berlin (UTC+1 in January) the same runs land an hour later.
        let hb = heatmap(&runs, chrono_tz::Europe::Berlin);
        assert_eq!((hb[0][3], hb[0][2]), (2, 0));
    }

    #[test]
    fn back_to_back_runs_do_not_overlap() {
        let runs = vec![run("2024-01-29T02:00:00Z", 30, "a", ""), run("2024-01-29T02:30:00Z", 30, "a", "")];
        assert_eq!(heatmap(&runs, Tz::UTC)[0][2], 1);
        assert!(overlaps(&runs, 10).is_empty());
    }

    #[test]
    fn overlaps_need_a_shared_store_or_pool() {
        let runs = vec![
            run("2024-01-29T02:00:00Z", 60, "nas", "host=db1"),
            run("2024-01-29T02:15:00Z", 60, "nas", "host=db2"),
            run("2024-01-29T02:20:00Z", 60, "s3", "host=db1"),
            run("2024-01-29T02:25:00Z", 10, "other", "host=web"),
        ];
        let o = overlaps(&runs, 10);
        assert_eq!(o.len(), 2);
        assert_eq!((o[0].first, o[0].second, o[0].shared.as_str()), (0, 1, "store nas"));
        assert_eq!(o[0].overlap, Duration::minutes(45));
        assert_eq!((o[1].first, o[1].second, o[1].shared.as_str()), (0, 2, "worker pool host=db1"));
        assert_eq!(overlaps(&runs, 1).len(), 1);
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }
}
