//! `scheduler.job_logs`: ordered, gap-free lines per job. Appends from a worker are fenced by
//! its lease and idempotent by (attempt, worker sequence), so a retried call never duplicates.

use cairn_api::ids::JobId;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::error::Result;

/// A line to append.
#[derive(Debug, Clone)]
pub struct Line {
    pub time: DateTime<Utc>,
    pub level: i16,
    pub message: String,
    /// The worker's own sequence for the attempt (0 for lines written by the scheduler).
    pub worker_seq: i64,
}

/// The highest worker sequence stored for an attempt (0 = none).
async fn last_worker_seq(conn: &mut PgConnection, job: JobId, attempt: i32) -> Result<i64> {
    let seen: Option<i64> = sqlx::query_scalar(
        "SELECT max(worker_seq) FROM job_logs WHERE job_id = $1 AND attempt = $2 AND worker_seq > 0",
    )
    .bind(job)
    .bind(attempt)
    .fetch_one(conn)
    .await?;
    Ok(seen.unwrap_or(0))
}

/// Reserves `n` line numbers of a job; returns the last one.
async fn reserve_seqs(conn: &mut PgConnection, job: JobId, n: i64) -> Result<i64> {
    Ok(sqlx::query_scalar("UPDATE jobs SET log_seq = log_seq + $2 WHERE id = $1 RETURNING log_seq")
        .bind(job)
        .bind(n)
        .fetch_one(conn)
        .await?)
}

/// A stored line.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Row {
    pub seq: i64,
    pub time: DateTime<Utc>,
    pub level: i16,
    pub message: String,
    pub attempt: i32,
}

/// Appends lines of `attempt` to a job whose row the caller has locked; lines whose worker
/// sequence was already stored are dropped. Returns how many were written.
pub async fn append(conn: &mut PgConnection, job: JobId, attempt: i32, lines: &[Line]) -> Result<u64> {
    let seen = last_worker_seq(conn, job, attempt).await?;
    let fresh: Vec<&Line> = lines.iter().filter(|l| l.worker_seq == 0 || l.worker_seq > seen).collect();
    if fresh.is_empty() {
        return Ok(0);
    }
    let n = fresh.len() as i64;
    let last = reserve_seqs(conn, job, n).await?;
    let first = last - n + 1;
    let seqs: Vec<i64> = (first..=last).collect();
    let times: Vec<DateTime<Utc>> = fresh.iter().map(|l| l.time).collect();
    let levels: Vec<i16> = fresh.iter().map(|l| l.level).collect();
    let messages: Vec<&str> = fresh.iter().map(|l| l.message.as_str()).collect();
    let wseqs: Vec<i64> = fresh.iter().map(|l| l.worker_seq).collect();
    sqlx::query(
        "INSERT INTO job_logs (job_id, seq, time, level, message, attempt, worker_seq)
         SELECT $1, s, t, l, m, $2, w FROM unnest($3::bigint[], $4::timestamptz[], $5::smallint[], $6::text[],
                                                 $7::bigint[]) AS x(s, t, l, m, w)",
    )
    .bind(job)
    .bind(attempt)
    .bind(&seqs)
    .bind(&times)
    .bind(&levels)
    .bind(&messages)
    .bind(&wseqs)
    .execute(conn)
    .await?;
    Ok(n as u64)
}

/// Lines after `after_seq`, in order.
pub async fn after(conn: &mut PgConnection, job: JobId, after_seq: i64, limit: i64) -> Result<Vec<Row>> {
    Ok(sqlx::query_as(
        "SELECT seq, time, level, message, attempt FROM job_logs WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    )
    .bind(job)
    .bind(after_seq)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}
