//! Notifications of finished jobs through an outbox: the transaction that finishes a job
//! records it here, so no finished job is forgotten across crashes and replicas.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::{error::Result, store::jobs::Row};

/// Records that a finished job must be considered for notification.
pub async fn enqueue(conn: &mut PgConnection, job: &Row) -> Result<()> {
    if job.task_id.is_none() {
        return Ok(());
    }
    let now: DateTime<Utc> = job.end_time.unwrap_or(job.create_time);
    sqlx::query(
        "INSERT INTO notifications (job_id, channel, next_attempt, create_time) VALUES ($1, '*', $2, $2)
         ON CONFLICT DO NOTHING",
    )
    .bind(job.id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}
