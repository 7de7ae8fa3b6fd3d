//! The firing loop: every replica claims due schedules with `FOR UPDATE SKIP LOCKED` and
//! turns each occurrence into exactly one job (the unique `(schedule, occurrence)` key backs
//! this up across replicas and restarts). It sleeps until the next due time or a schedule
//! change, whichever comes first.
//!
//! Downtime: when occurrences are found due later than the grace period (or several at once),
//! a journalised schedule gets one CATCH_UP job and keeps its grid; a non-journalised one gets
//! a SKIPPED record with the count and, for intervals, re-anchors on the recovery time.

use std::{sync::Arc, time::Duration};

use cairn_api::v1::{JobTrigger, Schedule};
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::{
    State,
    catalog::TaskPlan,
    domain::recurrence::{self, Firing},
    error::Result,
    jobs,
    schedules::{jitter, maths},
    store::{self, schedules as rows},
};

/// Schedules fired per transaction (all their jobs are one statement).
const BATCH: i64 = 500;
/// Most schedules whose plans are prefetched before they fall due.
const PREFETCH: i64 = 20_000;
/// Longest sleep without re-checking.
const MAX_IDLE: Duration = Duration::from_secs(5);

/// Runs the firing loop until `shutdown`.
pub async fn run(state: State, shutdown: CancellationToken) {
    // Failing ticks (the database or the catalog away) retry with a jittered backoff, so
    // replicas neither spin nor come back in lockstep.
    let mut failing = cairn_runtime::backoff::Backoff::new(Duration::from_millis(100), MAX_IDLE);
    // The due time whose plans were last prefetched.
    let mut prefetched = None;
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
        let mut wake = next.map_or(cap, |n| n.min(cap));
        // Shortly before schedules fall due, their tasks' plans are read into the cache, so a
        // burst of them fires without waiting for the catalog.
        if let Some(next) = next.filter(|n| *n > now) {
            let ahead = prefetch_ahead(&state);
            if next - ahead > now {
                wake = wake.min(next - ahead);
            } else if prefetched != Some(next) {
                prefetched = Some(next);
                if let Err(e) = prefetch(&state, now + ahead).await {
                    tracing::debug!(error = %e, "prefetching plans failed; firing will read them");
                }
            }
        }
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

/// How long before their due time the plans of due schedules are prefetched: well inside
/// the plan cache's lifetime, so they are still fresh when they fire.
fn prefetch_ahead(state: &State) -> chrono::Duration {
    chrono::Duration::milliseconds((state.config.catalog_cache_ms / 3).min(2000) as i64)
}

/// Reads the plans of the tasks whose schedules are due before `until` into the cache.
async fn prefetch(state: &State, until: DateTime<Utc>) -> Result<()> {
    let task_ids = {
        let mut conn = state.pool.acquire().await?;
        rows::due_tasks(&mut conn, until, PREFETCH)
            .await?
            .into_iter()
            .map(|d| (d.project_id, d.task_id))
            .collect::<Vec<_>>()
    };
    for chunk in task_ids.chunks(BATCH as usize) {
        state.catalog.plans(chunk).await?;
    }
    Ok(())
}

/// Fires what is due now; returns how many schedules were handled. Every job of the batch
/// is created in one statement and every schedule moved on in another.
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
    let mut firings = Vec::with_capacity(due.len());
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
            Some(Some(plan)) => firings.extend(decide(state, row, plan, now)?),
        }
        handled += 1;
    }
    // One run per firing (one job per source of a fleet task); a skip record is one job.
    let runs: Vec<Vec<TaskPlan>> = firings
        .iter()
        .map(|f| if f.spec.skipped.is_some() { vec![f.plan.as_ref().clone()] } else { f.plan.runs() })
        .collect();
    let mut items = Vec::new();
    let mut first_item = Vec::with_capacity(firings.len());
    for (f, runs) in firings.iter().zip(&runs) {
        first_item.push(items.len());
        let fleet = f.plan.is_fleet() && f.spec.skipped.is_none();
        items.extend(jobs::run_items(runs, fleet, &f.spec));
    }
    let ids = jobs::create_many(&mut tx, &items, now).await?;
    let fired: Vec<rows::Fired> = firings
        .iter()
        .zip(first_item)
        .map(|(f, i)| rows::Fired { last_job_id: ids.get(i).copied().flatten(), ..f.fired.clone() })
        .collect();
    rows::fired(&mut tx, &fired).await?;
    tx.commit().await?;
    if handled > 0 {
        state.events.wake_work();
    }
    // Lateness as workers see it: from the due time to the jobs being committed.
    let committed = state.clock.now();
    for f in &firings {
        if let Some(due) = f.on_time {
            let late = (committed - due).num_milliseconds().max(0) as f64 / 1000.0;
            metrics::histogram!("cairn_scheduler_firing_lateness_seconds").record(late);
        }
    }
    Ok(handled)
}

/// What one due schedule does now: the job(s) to create and how the schedule moves on.
struct Decided {
    plan: Arc<TaskPlan>,
    spec: jobs::Spec,
    /// The schedule's new state (its last job filled in once the jobs exist).
    fired: rows::Fired,
    /// The due time of an on-time firing (for the lateness metric).
    on_time: Option<DateTime<Utc>>,
}

/// `None`: nothing to fire (a schedule without a next occurrence is never due).
fn decide(
    state: &State,
    row: &rows::Row,
    plan: &Arc<TaskPlan>,
    now: DateTime<Utc>,
) -> Result<Option<Decided>> {
    let spec: Schedule = store::decode(&row.spec)?;
    let maths = maths(&spec, row.anchor, "")?;
    let max_jitter = jitter(&spec);
    let Some(next) = row.next_fire else { return Ok(None) };
    let grace = chrono::Duration::from_std(state.config.missed_run_grace()).unwrap_or_default();
    let decision = recurrence::decide(&maths, row.id, next, max_jitter, now, grace);
    let span = tracing::info_span!("schedule.fire", schedule.id = %row.id, task.id = %plan.id);
    let trace_parent = span.in_scope(cairn_runtime::grpc::current_traceparent);
    let base = jobs::Spec {
        trigger: JobTrigger::Schedule,
        schedule_id: Some(row.id),
        occurrence: None,
        scheduled_time: now,
        missed_occurrences: 0,
        request_id: None,
        trace_parent,
        overrides: None,
        run_id: None,
        skipped: None,
    };
    let (spec, last, missed, on_time) = match decision {
        Firing::OnTime { occurrence } => {
            let due = recurrence::due_time(row.id, occurrence, max_jitter);
            let spec = jobs::Spec { occurrence: Some(occurrence), scheduled_time: due, ..base };
            (spec, occurrence, 0, Some(due))
        }
        Firing::Missed { first, last, count } => {
            metrics::counter!("cairn_scheduler_missed_runs_total").increment(count);
            let spec = if row.journalised {
                tracing::info!(parent: &span, missed = count, %first, %last, "catching up missed occurrences with one job");
                jobs::Spec {
                    trigger: JobTrigger::CatchUp,
                    occurrence: Some(last),
                    missed_occurrences: count as i64,
                    ..base
                }
            } else {
                tracing::info!(parent: &span, missed = count, %first, %last, "skipping missed occurrences (not journalised)");
                jobs::Spec {
                    trigger: JobTrigger::System,
                    occurrence: Some(last),
                    scheduled_time: last,
                    missed_occurrences: count as i64,
                    trace_parent: String::new(),
                    skipped: Some(skip_reason(first, last, count)),
                    ..base
                }
            };
            (spec, last, count as i64, None)
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
    let fired = rows::Fired {
        id: row.id,
        anchor,
        last_fire: last,
        next_fire,
        next_run_time: next_fire.map(|n| recurrence::due_time(row.id, n, max_jitter)),
        missed,
        last_job_id: None,
        connector_ids: plan.connector_ids.clone(),
    };
    Ok(Some(Decided { plan: plan.clone(), spec, fired, on_time }))
}

fn skip_reason(first: DateTime<Utc>, last: DateTime<Utc>, count: u64) -> String {
    if count == 1 {
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
    }
}
