//! `scheduler.protection`: per (BACKUP task, source) the last successful backup, the last
//! finished job and the RPO violation flag. Rows appear with the pair's first job, follow
//! every job of the pair, and go with their task or project.

use cairn_api::{
    ids::{ConnectorId, JobId, TaskId},
    names::ProjectId,
};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::error::Result;

/// A stored pair.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Row {
    pub project_id: ProjectId,
    pub task_id: TaskId,
    pub source_id: ConnectorId,
    pub task_display_name: String,
    pub source_display_name: String,
    pub rpo_ms: Option<i64>,
    pub covered_since: DateTime<Utc>,
    pub latest_job_id: JobId,
    pub last_success_time: Option<DateTime<Utc>>,
    pub last_success_job_id: Option<JobId>,
    pub last_snapshot: String,
    pub last_finished_job_id: Option<JobId>,
    pub last_job_state: String,
    pub last_error: String,
    pub violated_time: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "project_id, task_id, source_id, task_display_name, source_display_name, rpo_ms,
    covered_since, latest_job_id, last_success_time, last_success_job_id, last_snapshot, last_finished_job_id,
    last_job_state, last_error, violated_time";

/// What a new job says about its pair.
#[derive(Debug)]
pub struct Cover<'a> {
    pub project: &'a ProjectId,
    pub task: TaskId,
    pub source: ConnectorId,
    pub task_display_name: &'a str,
    pub source_display_name: &'a str,
    pub rpo_ms: Option<i64>,
    pub job: JobId,
}

/// Records a new job of a pair (the pair's row on its first job), with the current names and
/// objective.
pub async fn cover(conn: &mut PgConnection, c: &Cover<'_>, now: DateTime<Utc>) -> Result<()> {
    sqlx::query(
        "INSERT INTO protection (project_id, task_id, source_id, task_display_name, source_display_name, rpo_ms,
                                 covered_since, latest_job_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (project_id, task_id, source_id) DO UPDATE
            SET task_display_name = EXCLUDED.task_display_name, source_display_name = EXCLUDED.source_display_name,
                rpo_ms = EXCLUDED.rpo_ms, latest_job_id = EXCLUDED.latest_job_id",
    )
    .bind(c.project)
    .bind(c.task)
    .bind(c.source)
    .bind(c.task_display_name)
    .bind(c.source_display_name)
    .bind(c.rpo_ms)
    .bind(now)
    .bind(c.job)
    .execute(conn)
    .await?;
    Ok(())
}

/// What a finished job of a pair changed.
#[derive(Debug, sqlx::FromRow)]
pub struct Finished {
    /// The pair was VIOLATED and this job's success ended it.
    pub recovered: bool,
    /// The row after the change.
    #[sqlx(flatten)]
    pub row: Row,
}

/// Records a finished job of a pair: a success becomes the last success and ends a
/// violation. `None` when the pair has no row.
#[allow(clippy::too_many_arguments)]
pub async fn finished(
    conn: &mut PgConnection,
    project: &ProjectId,
    task: TaskId,
    source: ConnectorId,
    job: JobId,
    state: &str,
    error: &str,
    snapshot: &str,
    end_time: DateTime<Utc>,
) -> Result<Option<Finished>> {
    let cols = COLUMNS.split(',').map(|c| format!("p.{}", c.trim())).collect::<Vec<_>>().join(", ");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE protection p
            SET last_finished_job_id = $4, last_job_state = $5, last_error = $6,
                last_success_time = CASE WHEN $5 = 'SUCCEEDED' THEN $8 ELSE p.last_success_time END,
                last_success_job_id = CASE WHEN $5 = 'SUCCEEDED' THEN $4 ELSE p.last_success_job_id END,
                last_snapshot = CASE WHEN $5 = 'SUCCEEDED' THEN $7 ELSE p.last_snapshot END,
                violated_time = CASE WHEN $5 = 'SUCCEEDED' THEN NULL ELSE p.violated_time END
           FROM (SELECT violated_time FROM protection
                  WHERE project_id = $1 AND task_id = $2 AND source_id = $3 FOR UPDATE) old
          WHERE p.project_id = $1 AND p.task_id = $2 AND p.source_id = $3
         RETURNING $5 = 'SUCCEEDED' AND old.violated_time IS NOT NULL AS recovered, {cols}"
    )))
    .bind(project)
    .bind(task)
    .bind(source)
    .bind(job)
    .bind(state)
    .bind(error)
    .bind(snapshot)
    .bind(end_time)
    .fetch_optional(conn)
    .await?)
}

/// Marks VIOLATED every watched pair whose last success (or, never backed up, whose first
/// job) is older than its RPO at `now`, and returns them. A row is marked once, whichever
/// replica gets there first.
pub async fn mark_violated(conn: &mut PgConnection, now: DateTime<Utc>) -> Result<Vec<Row>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE protection SET violated_time = $1
          WHERE violated_time IS NULL AND rpo_ms IS NOT NULL
            AND COALESCE(last_success_time, covered_since) + rpo_ms * interval '1 millisecond' <= $1
         RETURNING {COLUMNS}"
    )))
    .bind(now)
    .fetch_all(conn)
    .await?)
}

/// Every pair of a project.
pub async fn of_project(conn: &mut PgConnection, project: &ProjectId) -> Result<Vec<Row>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM protection WHERE project_id = $1")))
        .bind(project)
        .fetch_all(conn)
        .await?)
}

/// The projects that have pairs.
pub async fn projects(conn: &mut PgConnection) -> Result<Vec<ProjectId>> {
    Ok(sqlx::query_scalar("SELECT DISTINCT project_id FROM protection ORDER BY 1").fetch_all(conn).await?)
}

/// Brings a pair's names and objective up to date (the catalog's current ones).
pub async fn refresh(
    conn: &mut PgConnection,
    project: &ProjectId,
    task: TaskId,
    source: ConnectorId,
    names: (&str, &str),
    rpo_ms: Option<i64>,
) -> Result<()> {
    sqlx::query(
        "UPDATE protection SET task_display_name = $4, source_display_name = $5, rpo_ms = $6
          WHERE project_id = $1 AND task_id = $2 AND source_id = $3
            AND (task_display_name, source_display_name, rpo_ms) IS DISTINCT FROM ($4, $5, $6)",
    )
    .bind(project)
    .bind(task)
    .bind(source)
    .bind(names.0)
    .bind(names.1)
    .bind(rpo_ms)
    .execute(conn)
    .await?;
    Ok(())
}

/// Forgets the pairs of a project that are no longer (task, source) of one of its BACKUP
/// tasks (the task was deleted or now backs up another source), among those that existed
/// when the catalog was asked (`asked`).
pub async fn retain(
    conn: &mut PgConnection,
    project: &ProjectId,
    tasks: &[TaskId],
    sources: &[ConnectorId],
    asked: DateTime<Utc>,
) -> Result<u64> {
    Ok(sqlx::query(
        "DELETE FROM protection WHERE project_id = $1 AND covered_since < $4
            AND (task_id, source_id) NOT IN (SELECT * FROM unnest($2::uuid[], $3::uuid[]))",
    )
    .bind(project)
    .bind(tasks)
    .bind(sources)
    .bind(asked)
    .execute(conn)
    .await?
    .rows_affected())
}

/// Forgets the pairs of a deleted task.
pub async fn delete_of_task(conn: &mut PgConnection, project: &ProjectId, task: TaskId) -> Result<u64> {
    Ok(sqlx::query("DELETE FROM protection WHERE project_id = $1 AND task_id = $2")
        .bind(project)
        .bind(task)
        .execute(conn)
        .await?
        .rows_affected())
}

/// Forgets the pairs of a deleted project.
pub async fn delete_of_project(conn: &mut PgConnection, project: &ProjectId) -> Result<u64> {
    Ok(sqlx::query("DELETE FROM protection WHERE project_id = $1")
        .bind(project)
        .execute(conn)
        .await?
        .rows_affected())
}
