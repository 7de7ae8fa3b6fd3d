//! Forecast: every upcoming run of every enabled schedule in a window, with its estimated
//! duration (the median of the task's last successful runs, or [`DEFAULT_DURATION`]), the
//! heatmap of concurrent runs and the overlapping runs that share a store or a worker pool.

use std::collections::HashMap;

use cairn_api::ids::TaskId;
use cairn_api::{
    names::Kind,
    v1::{ForecastOverlap, ForecastRequest, ForecastResponse, ForecastRun, HeatmapRow, Schedule},
};
use cairn_runtime::time::{from_duration, from_timestamp, to_duration, to_timestamp};
use chrono::Duration;

use cairn_runtime::auth::Caller;

use crate::{
    State,
    catalog::TaskKey,
    domain::{
        forecast::{self, Run},
        recurrence,
    },
    error::{Error, Result},
    resolve,
    schedules::{jitter, maths},
    store::{self, jobs as job_rows, schedules as rows},
};

/// Duration assumed for a task that never succeeded.
pub const DEFAULT_DURATION: std::time::Duration = std::time::Duration::from_secs(600);
/// Runs listed per schedule at most.
pub const MAX_RUNS_PER_SCHEDULE: usize = 2000;
/// Successful runs the estimate looks at.
const RECENT: i64 = 10;
/// Longest horizon.
const MAX_HORIZON: std::time::Duration = std::time::Duration::from_secs(31 * 86_400);
const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// Forecast.
pub async fn forecast(state: &State, caller: &Caller, req: ForecastRequest) -> Result<ForecastResponse> {
    let from = match &req.from {
        None => state.clock.now(),
        Some(t) => from_timestamp(t).ok_or_else(|| Error::invalid("from", "is not a valid timestamp"))?,
    };
    let horizon = match &req.horizon {
        None => std::time::Duration::from_secs(7 * 86_400),
        Some(d) => match from_duration(d) {
            Some(d) if !d.is_zero() && d <= MAX_HORIZON => d,
            _ => return Err(Error::invalid("horizon", "must be between 1s and 31 days")),
        },
    };
    let (_, scope) = resolve::list_parent(caller, &req.parent)?;
    let tz = recurrence::zone(&req.time_zone, "time_zone")?;
    let until = from + Duration::from_std(horizon).unwrap_or_default();
    let mut conn = state.pool.acquire().await?;
    let schedules = rows::enabled(&mut conn, scope.as_deref()).await?;
    let mut tasks: Vec<TaskKey> = schedules.iter().map(|s| (s.project_id.clone(), s.task_id)).collect();
    tasks.sort();
    tasks.dedup();
    let task_ids: Vec<TaskId> = tasks.iter().map(|(_, id)| *id).collect();
    let durations = job_rows::recent_durations(&mut conn, &task_ids, RECENT).await?;
    drop(conn);
    let mut by_task: HashMap<TaskId, Vec<f64>> = HashMap::new();
    for job_rows::RunTime { task_id: task, secs } in durations {
        by_task.entry(task).or_default().push(secs);
    }
    let plans = state.catalog.plans(&tasks).await?;
    let mut runs: Vec<(ForecastRun, Run)> = Vec::new();
    let mut truncated = false;
    for s in &schedules {
        let Some(Some(plan)) = plans.get(&(s.project_id.clone(), s.task_id)) else { continue };
        let spec: Schedule = store::decode(&s.spec)?;
        let Ok(m) = maths(&spec, s.anchor, "") else { continue };
        let median = forecast::median(by_task.get(&s.task_id).cloned().unwrap_or_default());
        let estimate = median.map(std::time::Duration::from_secs_f64).unwrap_or(DEFAULT_DURATION);
        // One run per job an occurrence makes: a fleet task fans out to each source.
        let fanout: Vec<(String, String)> = plan
            .runs()
            .iter()
            .map(|p| {
                let mut pool: Vec<String> = p.selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
                pool.sort();
                let source = if plan.is_fleet() {
                    p.source.clone().map(|s| s.1).unwrap_or_default()
                } else {
                    String::new()
                };
                (pool.join(","), source)
            })
            .collect();
        let stores: Vec<String> = plan.stores.iter().map(|st| st.id.name(&s.project_id)).collect();
        let max_jitter = jitter(&spec);
        let Some(first) = s.next_fire else { continue };
        let mut n = 0;
        // From the schedule's next occurrence (it honours start_time), or from the window's
        // start when that is later; earlier occurrences whose jittered start is inside count.
        let lead = Duration::from_std(max_jitter).unwrap_or_default();
        let mut occ = if first >= from - lead {
            Some(first)
        } else {
            m.next_after(from - lead - Duration::microseconds(1))
        };
        while let Some(o) = occ {
            let start = recurrence::due_time(s.id, o, max_jitter);
            if start >= until {
                break;
            }
            if start >= from {
                if n >= MAX_RUNS_PER_SCHEDULE {
                    truncated = true;
                    break;
                }
                n += 1;
                for (pool, source) in &fanout {
                    runs.push((
                        ForecastRun {
                            schedule: Kind::Schedule.name(&s.project_id, s.id),
                            schedule_display_name: s.display_name.clone(),
                            task: Kind::Task.name(&s.project_id, s.task_id),
                            task_display_name: plan.display_name.clone(),
                            start_time: Some(to_timestamp(start)),
                            estimated_duration: Some(to_duration(estimate)),
                            estimate_is_default: median.is_none(),
                            stores: stores.clone(),
                            worker_pool: pool.clone(),
                            source_display_name: source.clone(),
                        },
                        Run {
                            start,
                            duration: Duration::from_std(estimate).unwrap_or_default(),
                            stores: stores.clone(),
                            pool: pool.clone(),
                        },
                    ));
                }
            }
            occ = m.next_after(o);
        }
    }
    runs.sort_by_key(|(_, r)| r.start);
    let maths_runs: Vec<Run> = runs.iter().map(|(_, r)| r.clone()).collect();
    let heat = forecast::heatmap(&maths_runs, tz);
    let overlaps = forecast::overlaps(&maths_runs, 1000);
    Ok(ForecastResponse {
        runs: runs.into_iter().map(|(f, _)| f).collect(),
        heatmap: heat
            .iter()
            .enumerate()
            .map(|(d, hours)| HeatmapRow {
                weekday: WEEKDAYS[d].into(),
                hours: hours.iter().map(|&v| f64::from(v)).collect(),
            })
            .collect(),
        overlaps: overlaps
            .into_iter()
            .map(|o| ForecastOverlap {
                first: o.first as i32,
                second: o.second as i32,
                shared: o.shared,
                overlap: o.overlap.to_std().ok().map(to_duration),
            })
            .collect(),
        default_duration: Some(to_duration(DEFAULT_DURATION)),
        truncated,
    })
}
