//! Housekeeping every replica runs (row locks keep them from doing the same work twice):
//! expired leases are retried with backoff or failed, running jobs past their timeout are
//! asked to stop, unanswered connection tests are given up, old history is purged, and queue
//! gauges are refreshed.

use std::time::Duration;

use cairn_api::{
    ids::Stored as _,
    v1::{JobState, LogLevel, TaskType},
};
use tokio_util::sync::CancellationToken;

use crate::{
    State,
    domain::job::backoff,
    error::Result,
    events,
    store::{jobs as rows, logs},
};

/// How often the reaper runs.
const EVERY: Duration = Duration::from_millis(500);
/// Connection tests nobody ran within this are failed.
const TEST_CONNECTION_EXPIRY: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// Runs until `shutdown`.
pub async fn run(state: State, shutdown: CancellationToken) {
    let mut last_purge = None;
    loop {
        if let Err(e) = expire_leases(&state).await {
            tracing::warn!(error = %e, "reaping expired leases failed");
        }
        if let Err(e) = enforce_timeouts(&state).await {
            tracing::warn!(error = %e, "enforcing timeouts failed");
        }
        if last_purge.is_none_or(|t: std::time::Instant| t.elapsed() > Duration::from_secs(3600)) {
            last_purge = Some(std::time::Instant::now());
            if let Err(e) = purge(&state).await {
                tracing::warn!(error = %e, "purging job history failed");
            }
            if let Err(e) = purge_queries(&state).await {
                tracing::warn!(error = %e, "purging abandoned snapshot queries failed");
            }
        }
        if let Err(e) = gauges(&state).await {
            tracing::debug!(error = %e, "queue gauges not refreshed");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
}

/// Retries or fails running jobs whose worker stopped heartbeating.
pub async fn expire_leases(state: &State) -> Result<usize> {
    let now = state.clock.now();
    let mut tx = state.pool.begin().await?;
    let expired = rows::claim_expired(&mut tx, now, 100).await?;
    let mut ids = Vec::with_capacity(expired.len());
    for row in &expired {
        let since = row.lease_expire_time.map(|t| t.to_rfc3339()).unwrap_or_default();
        let lost = format!("worker {} stopped heartbeating (lease expired at {since})", row.worker);
        let mut finish = rows::Finish { end_time: Some(now), ..Default::default() };
        if row.timed_out {
            finish.state = JobState::Failed;
            finish.error = format!("timed out, and {lost}");
        } else if row.cancel_requested {
            finish.state = JobState::Cancelled;
            finish.error = format!("{}; {lost}", row.cancel_reason);
        } else if row.attempt < row.max_attempts {
            let delay = backoff(
                row.attempt + 1,
                Duration::from_millis(row.initial_backoff_ms.max(0) as u64),
                Duration::from_millis(row.max_backoff_ms.max(0) as u64),
            );
            finish.state = JobState::Queued;
            finish.end_time = None;
            finish.run_after = Some(now + chrono::Duration::from_std(delay).unwrap_or_default());
            finish.error = lost.clone();
            finish.wait_reason = format!(
                "retry {}/{} after {} backoff ({lost})",
                row.attempt + 1,
                row.max_attempts,
                humantime::format_duration(delay)
            );
        } else {
            finish.state = JobState::Failed;
            finish.error = format!("{lost}; gave up after {} attempts", row.attempt);
        }
        let note =
            if finish.state == JobState::Queued { finish.wait_reason.clone() } else { finish.error.clone() };
        logs::append(
            &mut tx,
            row.id,
            row.attempt,
            &[logs::Line { time: now, level: LogLevel::Warn as i16, message: note, worker_seq: 0 }],
        )
        .await?;
        let done = rows::finish(&mut tx, row.id, &finish).await?;
        if finish.state != JobState::Queued {
            crate::jobs::ended(&mut tx, &done).await?;
        }
        metrics::counter!("cairn_scheduler_lease_expiries_total").increment(1);
        tracing::warn!(job.id = %row.id, worker = %row.worker, next = finish.state.stored(), "lease expired");
        ids.push(row.id);
    }
    // Unanswered connection tests.
    let stale = rows::claim_stale_tests(&mut tx, now - TEST_CONNECTION_EXPIRY).await?;
    for id in stale {
        rows::finish(
            &mut tx,
            id,
            &rows::Finish {
                state: JobState::Failed,
                end_time: Some(now),
                error: "no worker matching the connector's selector took the test within 10 minutes".into(),
                ..Default::default()
            },
        )
        .await?;
        ids.push(id);
    }
    if !ids.is_empty() {
        events::notify(&mut tx, events::WORK, "").await?;
        events::notify_jobs(&mut tx, &ids).await?;
    }
    tx.commit().await?;
    if !ids.is_empty() {
        state.events.wake_work();
    }
    Ok(ids.len())
}

/// Asks running jobs past their timeout to stop (they end FAILED, "timed out").
pub async fn enforce_timeouts(state: &State) -> Result<()> {
    let now = state.clock.now();
    let mut conn = state.pool.acquire().await?;
    for rows::Overdue { project_id, id, timeout_ms: ms } in rows::overdue(&mut conn, now).await? {
        let reason = format!(
            "timed out after {}",
            humantime::format_duration(Duration::from_millis(ms.max(0) as u64))
        );
        let mut tx = state.pool.begin().await?;
        if let Some(row) = rows::get_for_update(&mut tx, &project_id, id).await?
            && row.state == JobState::Running
            && row.r#type != TaskType::Unspecified
        {
            rows::request_cancel(&mut tx, id, &reason, true).await?;
            logs::append(
                &mut tx,
                id,
                row.attempt,
                &[logs::Line {
                    time: now,
                    level: LogLevel::Error as i16,
                    message: reason.clone(),
                    worker_seq: 0,
                }],
            )
            .await?;
            events::notify_jobs(&mut tx, &[id]).await?;
        }
        tx.commit().await?;
        tracing::warn!(job.id = %id, %reason, "job timed out; asking its worker to stop");
    }
    Ok(())
}

/// Deletes finished jobs older than the configured history.
pub async fn purge(state: &State) -> Result<u64> {
    let Some(keep) = state.config.job_history() else { return Ok(0) };
    let before = state.clock.now() - chrono::Duration::from_std(keep).unwrap_or_default();
    let mut total = 0;
    loop {
        let mut conn = state.pool.acquire().await?;
        let n = rows::purge(&mut conn, before, 1000).await?;
        total += n;
        if n < 1000 {
            break;
        }
    }
    if total > 0 {
        tracing::info!(jobs = total, "purged old job history");
    }
    Ok(total)
}

/// Snapshot queries are deleted by their askers; this forgets those whose asker died (a
/// query expires when its first answer is due; a file stream may run for hours after).
pub async fn purge_queries(state: &State) -> Result<u64> {
    let before = state.clock.now() - chrono::Duration::hours(6);
    let mut conn = state.pool.acquire().await?;
    crate::store::queries::purge_expired(&mut conn, before).await
}

async fn gauges(state: &State) -> Result<()> {
    let mut conn = state.pool.acquire().await?;
    let depth = rows::queue_depth(&mut conn).await?;
    metrics::gauge!("cairn_scheduler_queue_depth", "reason" => "total")
        .set(depth.iter().map(|d| d.count).sum::<i64>() as f64);
    for rows::Depth { wait_reason: reason, count: n } in depth {
        let reason = if reason.is_empty() {
            "ready".to_owned()
        } else {
            reason.split(['(', ':']).next().unwrap_or("").trim().to_owned()
        };
        metrics::gauge!("cairn_scheduler_queue_depth", "reason" => reason).set(n as f64);
    }
    let active = rows::running_count(&mut conn).await?;
    metrics::gauge!("cairn_scheduler_active_leases").set(active as f64);
    Ok(())
}
