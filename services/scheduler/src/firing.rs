//! The firing loop: every replica claims due schedules with `FOR UPDATE SKIP LOCKED` and
//! turns each occurrence into exactly one job (the unique `(schedule, occurrence)` key backs
//! this up across replicas and restarts). It sleeps until the next due time or a schedule
//! change, whichever comes first.
//!
//! Downtime: when occurrences are found due later than the grace period (or several at once),
//! a journalised schedule gets one CATCH_UP job and keeps its grid; a non-journalised one gets
//! a SKIPPED record with the count and, for intervals, re-anchors on the recovery time.

use std::{sync::Arc, time::Duration};

use cairn_api::ids::{JobId, ScheduleId};
use cairn_api::v1::{JobState, JobTrigger, Schedule};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use tokio_util::sync::CancellationToken;

use crate::{
    State,
    catalog::TaskPlan,
    domain::recurrence::{self, Firing},
    error::Result,
    events, jobs,
    schedules::{jitter, maths},
    store::{self, jobs as job_rows, schedules as rows},
};

/// Schedules fired per transaction.
const BATCH: i64 = 200;
/// Longest sleep without re-checking.
const MAX_IDLE: Duration = Duration::from_secs(5);

/// Runs the firing loop until `shutdown`.
pub async fn run(state: State, shutdown: CancellationToken) {
    // Failing ticks (the database or the catalog away) retry with a jittered backoff, so
    // replicas neither spin nor come back in lockstep.
    let mut failing = cairn_runtime::backoff::Backoff::new(Duration::from_millis(100), MAX_IDLE);
    loop {
        let changed = state.events.schedules().notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let fired = match tick(&state).await {
            Ok(n) => {
                failing.reset();
                n
            }
            Err(e) => {
                tracing::warn!(error = %e, "firing failed; retrying shortly");
                metrics::counter!("cairn_scheduler_firing_failures_total").increment(1);
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(failing.next_delay()) => {}
                }
                continue;
            }
        };
        if fired >= BATCH as usize {
            continue;
        }
        let now = state.clock.now();
        let next = match state.pool.acquire().await {
            Ok(mut conn) => rows::next_due(&mut conn).await.ok().flatten(),
            Err(_) => None,
        };
        let cap = now + chrono::Duration::from_std(MAX_IDLE).unwrap_or_default();
        let wake = next.map_or(cap, |n| n.min(cap));
        if wake <= now {
            // Due but nothing claimable (another replica holds it, or the catalog is down).
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
            continue;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = &mut changed => {}
            _ = state.clock.sleep_until(wake) => {}
        }
    }
}

/// Fires what is due now; returns how many schedules were handled.
pub async fn tick(state: &State) -> Result<usize> {
    let now = state.clock.now();
    let task_ids = {
        let mut conn = state.pool.acquire().await?;
        rows::due_tasks(&mut conn, now, BATCH)
            .await?
            .into_iter()
            .map(|d| (d.project_id, d.task_id))
            .collect::<Vec<_>>()
    };
    if task_ids.is_empty() {
        return Ok(0);
    }
    let plans = state.catalog.plans(&task_ids).await?;
    for plan in plans.values().flatten() {
        jobs::upsert_stores(state, plan).await?;
    }
    let mut tx = state.pool.begin().await?;
    let due = rows::claim_due(&mut tx, now, BATCH).await?;
    let mut handled = 0;
    for row in &due {
        let key = (row.project_id.clone(), row.task_id);
        match plans.get(&key) {
            // Claimed but not prefetched (it became due in between): next tick.
            None => continue,
            Some(None) => {
                rows::delete(&mut tx, &row.project_id, row.id).await?;
                state.catalog.forget(&key);
                tracing::warn!(schedule.id = %row.id, task.id = %row.task_id, "task is gone; schedule deleted");
            }
            Some(Some(plan)) => fire(state, &mut tx, row, plan, now).await?,
        }
        handled += 1;
    }
    tx.commit().await?;
    if handled > 0 {
        state.events.wake_work();
    }
    Ok(handled)
}

async fn fire(
    state: &State,
    conn: &mut PgConnection,
    row: &rows::Row,
    plan: &Arc<TaskPlan>,
    now: DateTime<Utc>,
) -> Result<()> {
    let spec: Schedule = store::decode(&row.spec)?;
    let maths = maths(&spec, row.anchor, "")?;
    let max_jitter = jitter(&spec);
    let Some(next) = row.next_fire else { return Ok(()) };
    let grace = chrono::Duration::from_std(state.config.missed_run_grace()).unwrap_or_default();
    let decision = recurrence::decide(&maths, row.id, next, max_jitter, now, grace);
    let span = tracing::info_span!("schedule.fire", schedule.id = %row.id, task.id = %plan.id);
    let trace_parent = span.in_scope(cairn_runtime::grpc::current_traceparent);
    let (last, missed, job_id) = match decision {
        Firing::OnTime { occurrence } => {
            let due = recurrence::due_time(row.id, occurrence, max_jitter);
            let spec = jobs::Spec {
                trigger: JobTrigger::Schedule,
                schedule_id: Some(row.id),
                occurrence: Some(occurrence),
                scheduled_time: due,
                missed_occurrences: 0,
                request_id: None,
                trace_parent,
                overrides: None,
                run_id: None,
            };
            let id = jobs::create_run(conn, plan, &spec, now).await?;
            let late = (now - due).num_milliseconds().max(0) as f64 / 1000.0;
            metrics::histogram!("cairn_scheduler_firing_lateness_seconds").record(late);
            (occurrence, 0, id)
        }
        Firing::Missed { first, last, count } => {
            metrics::counter!("cairn_scheduler_missed_runs_total").increment(count);
            let id = if row.journalised {
                let spec = jobs::Spec {
                    trigger: JobTrigger::CatchUp,
                    schedule_id: Some(row.id),
                    occurrence: Some(last),
                    scheduled_time: now,
                    missed_occurrences: count as i64,
                    request_id: None,
                    trace_parent,
                    overrides: None,
                    run_id: None,
                };
                tracing::info!(parent: &span, missed = count, %first, %last, "catching up missed occurrences with one job");
                jobs::create_run(conn, plan, &spec, now).await?
            } else {
                tracing::info!(parent: &span, missed = count, %first, %last, "skipping missed occurrences (not journalised)");
                record_skip(conn, plan, row.id, first, last, count, now).await?
            };
            (last, count as i64, id)
        }
    };
    // Journalised schedules keep their grid; others re-anchor intervals on recovery.
    let reanchor = missed > 0 && !row.journalised && recurrence::is_interval(&maths.recurrence);
    let (anchor, next_fire) = if reanchor {
        let m = cairn_schedule::Schedule { anchor: Some(now), ..maths.clone() };
        (now, m.next_after(now))
    } else {
        (row.anchor, maths.next_after(last))
    };
    rows::fired(
        conn,
        &rows::Fired {
            id: row.id,
            anchor,
            last_fire: last,
            next_fire,
            next_run_time: next_fire.map(|n| recurrence::due_time(row.id, n, max_jitter)),
            missed,
            last_job_id: job_id,
            connector_ids: plan.connector_ids.clone(),
        },
    )
    .await?;
    Ok(())
}

async fn record_skip(
    conn: &mut PgConnection,
    plan: &TaskPlan,
    schedule_id: ScheduleId,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
    count: u64,
    now: DateTime<Utc>,
) -> Result<Option<JobId>> {
    let spec = jobs::Spec {
        trigger: JobTrigger::System,
        schedule_id: Some(schedule_id),
        occurrence: Some(last),
        scheduled_time: last,
        missed_occurrences: count as i64,
        request_id: None,
        trace_parent: String::new(),
        overrides: None,
        run_id: None,
    };
    let mut job = jobs::new_row(plan, &spec, now);
    job.state = JobState::Skipped;
    job.trigger = JobTrigger::System;
    job.end_time = Some(now);
    job.error = if count == 1 {
        format!(
            "missed the occurrence of {} while the control plane was down; not caught up because the schedule is \
             not journalised",
            first.to_rfc3339()
        )
    } else {
        format!(
            "missed {count} occurrences ({} to {}) while the control plane was down; not caught up because the \
             schedule is not journalised",
            first.to_rfc3339(),
            last.to_rfc3339()
        )
    };
    let id = job_rows::insert(conn, &job).await?;
    if let Some(id) = id {
        if let Some(row) = job_rows::get(conn, Some(&plan.project), id).await? {
            crate::jobs::ended(conn, &row).await?;
        }
        events::notify_jobs(conn, &[id]).await?;
    }
    Ok(id)
}
