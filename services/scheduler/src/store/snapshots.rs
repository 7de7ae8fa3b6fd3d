//! `scheduler.snapshots`: the snapshot index, what each store holds as the last job that read
//! it saw it. Every statement names the project of the store.

use cairn_api::{
    ids::{ConnectorId, JobId, TaskId},
    names::ProjectId,
};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::error::Result;

/// An indexed snapshot.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Row {
    pub project_id: ProjectId,
    pub store_id: ConnectorId,
    pub id: String,
    pub task_id: Option<TaskId>,
    pub time: DateTime<Utc>,
    pub labels: Vec<String>,
    pub paths: Vec<String>,
    pub hostname: String,
    pub parent: String,
    pub total_files: i64,
    pub total_bytes: i64,
    pub bytes_added: i64,
    pub job_id: Option<JobId>,
}

/// Drops the entries of a store that are not in `keep` (the store's full list).
pub async fn delete_missing(
    conn: &mut PgConnection,
    project: &ProjectId,
    store: ConnectorId,
    keep: &[String],
) -> Result<()> {
    sqlx::query("DELETE FROM snapshots WHERE project_id = $1 AND store_id = $2 AND NOT (id = ANY($3))")
        .bind(project)
        .bind(store)
        .bind(keep)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records a snapshot (the first job that saw it stays its job).
pub async fn upsert(conn: &mut PgConnection, r: &Row, now: DateTime<Utc>) -> Result<()> {
    sqlx::query(
        "INSERT INTO snapshots (store_id, id, task_id, time, labels, paths, hostname, parent, total_files,
                                total_bytes, bytes_added, job_id, seen_time, project_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (store_id, id) DO UPDATE SET labels = EXCLUDED.labels, task_id = EXCLUDED.task_id,
             time = EXCLUDED.time, seen_time = EXCLUDED.seen_time,
             job_id = COALESCE(snapshots.job_id, EXCLUDED.job_id)",
    )
    .bind(r.store_id)
    .bind(&r.id)
    .bind(r.task_id)
    .bind(r.time)
    .bind(&r.labels)
    .bind(&r.paths)
    .bind(&r.hostname)
    .bind(&r.parent)
    .bind(r.total_files)
    .bind(r.total_bytes)
    .bind(r.bytes_added)
    .bind(r.job_id)
    .bind(now)
    .bind(&r.project_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes a project's snapshot index.
pub async fn delete_of_project(conn: &mut PgConnection, project: &ProjectId) -> Result<u64> {
    Ok(sqlx::query("DELETE FROM snapshots WHERE project_id = $1")
        .bind(project)
        .execute(conn)
        .await?
        .rows_affected())
}

/// List filters.
#[derive(Debug, Default, Hash)]
pub struct Filter {
    pub store: Option<ConnectorId>,
    pub task: Option<TaskId>,
    pub labels: Vec<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// An id prefix (lower-case hex).
    pub id_prefix: Option<String>,
}

/// The position after which a page starts: (time, store, id) of the previous page's last.
pub type Cursor = (DateTime<Utc>, ConnectorId, String);

/// One page of one project or (`None`) every project, newest first.
pub async fn list(
    conn: &mut PgConnection,
    project: Option<&[ProjectId]>,
    f: &Filter,
    before: Option<&Cursor>,
    limit: i64,
) -> Result<Vec<Row>> {
    Ok(sqlx::query_as(
        "SELECT project_id, store_id, id, task_id, time, labels, paths, hostname, parent, total_files, total_bytes,
                bytes_added, job_id
         FROM snapshots
         WHERE ($1::timestamptz IS NULL OR (time, store_id, id) < ($1, $2, $3))
           AND ($4::uuid IS NULL OR store_id = $4) AND ($5::uuid IS NULL OR task_id = $5)
           AND labels @> $6 AND ($7::timestamptz IS NULL OR time >= $7) AND ($8::timestamptz IS NULL OR time < $8)
           AND ($10::text[] IS NULL OR project_id = ANY($10))
           AND ($11::text IS NULL OR starts_with(id, $11))
         ORDER BY time DESC, store_id DESC, id DESC LIMIT $9",
    )
    .bind(before.map(|b| b.0))
    .bind(before.map(|b| b.1))
    .bind(before.map(|b| b.2.clone()))
    .bind(f.store)
    .bind(f.task)
    .bind(&f.labels)
    .bind(f.from)
    .bind(f.to)
    .bind(limit)
    .bind(project)
    .bind(&f.id_prefix)
    .fetch_all(conn)
    .await?)
}
