//! `scheduler.notifications`: the outbox. A row per (job, event, channel); an event's `*` row
//! is written in the transaction that makes it happen (a job finishing, a source violating or
//! recovering its RPO) and expanded into one row per channel. Rows belong to their job's
//! project through the job (`ON DELETE CASCADE`).

use cairn_api::ids::JobId;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::error::Result;

/// The channel of an event's not-yet-expanded row.
pub const ANY_CHANNEL: &str = "*";
/// The event of a finished job.
pub const JOB_FINISHED: &str = "job.finished";
/// A source's last success became older than its RPO.
pub const RPO_VIOLATED: &str = "source.rpo_violated";
/// A success ended a violation.
pub const RPO_RECOVERED: &str = "source.rpo_recovered";

/// An outbox row being worked on.
#[derive(Debug, sqlx::FromRow)]
pub struct Pending {
    pub job_id: JobId,
    pub event: String,
    pub channel: String,
    pub attempts: i32,
    pub detail: Option<serde_json::Value>,
}

/// Queues a row for a job's event and a channel (nothing when it exists).
pub async fn insert(
    conn: &mut PgConnection,
    job: JobId,
    event: &str,
    channel: &str,
    detail: Option<&serde_json::Value>,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO notifications (job_id, event, channel, detail, next_attempt, create_time)
         VALUES ($1, $2, $3, $4, $5, $5)
         ON CONFLICT DO NOTHING",
    )
    .bind(job)
    .bind(event)
    .bind(channel)
    .bind(detail)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Queues a protection event of a job's (task, source) unless the job's task notifies nobody
/// (mode NEVER, or no channel), or the job is gone from history.
pub async fn insert_event_of(
    conn: &mut PgConnection,
    job: JobId,
    event: &str,
    detail: &serde_json::Value,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO notifications (job_id, event, channel, detail, next_attempt, create_time)
         SELECT id, $2, '*', $3, $4, $4 FROM jobs WHERE id = $1 AND notify <> 'NEVER'
         ON CONFLICT DO NOTHING",
    )
    .bind(job)
    .bind(event)
    .bind(detail)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Due `*` rows, locked (other replicas' skipped).
pub async fn claim_unexpanded(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Pending>> {
    Ok(sqlx::query_as(
        "SELECT job_id, event, channel, attempts, detail FROM notifications
         WHERE channel = '*' AND state = 'PENDING' AND next_attempt <= $1
         ORDER BY next_attempt LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Puts these `*` rows off until `at` (the catalog could not be asked).
pub async fn postpone_unexpanded(
    conn: &mut PgConnection,
    rows: &[&Pending],
    at: DateTime<Utc>,
) -> Result<()> {
    let (jobs, events) = keys(rows);
    sqlx::query(
        "UPDATE notifications SET next_attempt = $3
         WHERE channel = '*' AND (job_id, event) IN (SELECT * FROM unnest($1::uuid[], $2::text[]))",
    )
    .bind(jobs)
    .bind(events)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks these `*` rows as expanded.
pub async fn mark_expanded(conn: &mut PgConnection, rows: &[&Pending]) -> Result<()> {
    let (jobs, events) = keys(rows);
    sqlx::query(
        "UPDATE notifications SET state = 'EXPANDED'
         WHERE channel = '*' AND (job_id, event) IN (SELECT * FROM unnest($1::uuid[], $2::text[]))",
    )
    .bind(jobs)
    .bind(events)
    .execute(conn)
    .await?;
    Ok(())
}

fn keys(rows: &[&Pending]) -> (Vec<JobId>, Vec<String>) {
    rows.iter().map(|r| (r.job_id, r.event.clone())).unzip()
}

/// Claims due channel rows for `claim_until` (committed before sending, so two replicas never
/// send the same row) and counts the attempt.
pub async fn claim_due(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    claim_until: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Pending>> {
    Ok(sqlx::query_as(
        "UPDATE notifications n SET claimed_until = $2, attempts = attempts + 1
         FROM (SELECT job_id, event, channel FROM notifications
               WHERE state = 'PENDING' AND channel <> '*' AND next_attempt <= $1
                 AND (claimed_until IS NULL OR claimed_until < $1)
               ORDER BY next_attempt LIMIT $3 FOR UPDATE SKIP LOCKED) due
         WHERE n.job_id = due.job_id AND n.event = due.event AND n.channel = due.channel
         RETURNING n.job_id, n.event, n.channel, n.attempts, n.detail",
    )
    .bind(now)
    .bind(claim_until)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Records a delivery.
pub async fn delivered(conn: &mut PgConnection, row: &Pending, at: DateTime<Utc>) -> Result<()> {
    sqlx::query(
        "UPDATE notifications SET state = 'DELIVERED', delivered_time = $4, last_error = ''
         WHERE job_id = $1 AND event = $2 AND channel = $3",
    )
    .bind(row.job_id)
    .bind(&row.event)
    .bind(&row.channel)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a failed attempt: retried at `next_attempt`, or given up (`give_up`).
pub async fn failed(
    conn: &mut PgConnection,
    row: &Pending,
    give_up: bool,
    error: &str,
    next_attempt: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "UPDATE notifications SET state = $4, last_error = $5, next_attempt = $6, claimed_until = NULL
         WHERE job_id = $1 AND event = $2 AND channel = $3",
    )
    .bind(row.job_id)
    .bind(&row.event)
    .bind(&row.channel)
    .bind(if give_up { "FAILED" } else { "PENDING" })
    .bind(error)
    .bind(next_attempt)
    .execute(conn)
    .await?;
    Ok(())
}
