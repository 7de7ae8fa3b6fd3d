//! `scheduler.notifications`: the outbox. A row per (finished job, channel); a job's `*` row
//! is written in the transaction that finishes the job and expanded into one row per channel.
//! Rows belong to their job's project through the job (`ON DELETE CASCADE`).

use cairn_api::ids::JobId;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::error::Result;

/// The channel of a job's not-yet-expanded row.
pub const ANY_CHANNEL: &str = "*";

/// An outbox row being worked on.
#[derive(Debug, sqlx::FromRow)]
pub struct Pending {
    pub job_id: JobId,
    pub channel: String,
    pub attempts: i32,
}

/// Queues a row for a job and a channel (nothing when it exists).
pub async fn insert(conn: &mut PgConnection, job: JobId, channel: &str, now: DateTime<Utc>) -> Result<()> {
    sqlx::query(
        "INSERT INTO notifications (job_id, channel, next_attempt, create_time) VALUES ($1, $2, $3, $3)
         ON CONFLICT DO NOTHING",
    )
    .bind(job)
    .bind(channel)
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
        "SELECT job_id, channel, attempts FROM notifications
         WHERE channel = '*' AND state = 'PENDING' AND next_attempt <= $1
         ORDER BY next_attempt LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Puts `*` rows off until `at` (the catalog could not be asked).
pub async fn postpone_unexpanded(conn: &mut PgConnection, jobs: &[JobId], at: DateTime<Utc>) -> Result<()> {
    sqlx::query("UPDATE notifications SET next_attempt = $2 WHERE channel = '*' AND job_id = ANY($1)")
        .bind(jobs)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(())
}

/// Marks `*` rows as expanded.
pub async fn mark_expanded(conn: &mut PgConnection, jobs: &[JobId]) -> Result<()> {
    sqlx::query("UPDATE notifications SET state = 'EXPANDED' WHERE channel = '*' AND job_id = ANY($1)")
        .bind(jobs)
        .execute(conn)
        .await?;
    Ok(())
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
         FROM (SELECT job_id, channel FROM notifications
               WHERE state = 'PENDING' AND channel <> '*' AND next_attempt <= $1
                 AND (claimed_until IS NULL OR claimed_until < $1)
               ORDER BY next_attempt LIMIT $3 FOR UPDATE SKIP LOCKED) due
         WHERE n.job_id = due.job_id AND n.channel = due.channel
         RETURNING n.job_id, n.channel, n.attempts",
    )
    .bind(now)
    .bind(claim_until)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Records a delivery.
pub async fn delivered(conn: &mut PgConnection, job: JobId, channel: &str, at: DateTime<Utc>) -> Result<()> {
    sqlx::query(
        "UPDATE notifications SET state = 'DELIVERED', delivered_time = $3, last_error = ''
         WHERE job_id = $1 AND channel = $2",
    )
    .bind(job)
    .bind(channel)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a failed attempt: retried at `next_attempt`, or given up (`give_up`).
pub async fn failed(
    conn: &mut PgConnection,
    job: JobId,
    channel: &str,
    give_up: bool,
    error: &str,
    next_attempt: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "UPDATE notifications SET state = $3, last_error = $4, next_attempt = $5, claimed_until = NULL
         WHERE job_id = $1 AND channel = $2",
    )
    .bind(job)
    .bind(channel)
    .bind(if give_up { "FAILED" } else { "PENDING" })
    .bind(error)
    .bind(next_attempt)
    .execute(conn)
    .await?;
    Ok(())
}
