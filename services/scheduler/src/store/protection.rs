//! `scheduler.protection`: per (BACKUP task, source) the last successful backup, the last
//! finished job and the RPO violation flag. Rows appear with the pair's first job, follow
//! every job of the pair, and go with their task or project.
//!
//! Firing, completion, the violation sweep and name refreshes each change several rows in one
//! transaction; every such statement locks its rows in (task_id, source_id) order, so two of
//! them never wait for each other in a cycle (the scale benchmark met that deadlock when a
//! burst of firings met a burst of completions).

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

/// Records new jobs of pairs (a pair's row on its first job), with the current names and
/// objective, in one statement (the last job wins when a pair appears twice); an unchanged
/// row that already has a finished job is left as it is (no new tuple per job).
pub async fn cover(conn: &mut PgConnection, covers: &[Cover<'_>], now: DateTime<Utc>) -> Result<()> {
    let mut last: Vec<&Cover<'_>> = Vec::new();
    for c in covers.iter().rev() {
        if !last.iter().any(|l| (l.project, l.task, l.source) == (c.project, c.task, c.source)) {
            last.push(c);
        }
    }
    // Rows are locked in (task, source) order, as every statement locking several does.
    last.sort_by_key(|c| (c.task, c.source));
    if last.is_empty() {
        return Ok(());
    }
    let mut q = sqlx::QueryBuilder::new(
        "INSERT INTO protection (project_id, task_id, source_id, task_display_name, source_display_name, rpo_ms,
                                 covered_since, latest_job_id) ",
    );
    q.push_values(last, |mut b, c| {
        b.push_bind(c.project)
            .push_bind(c.task)
            .push_bind(c.source)
            .push_bind(c.task_display_name)
            .push_bind(c.source_display_name)
            .push_bind(c.rpo_ms)
            .push_bind(now)
            .push_bind(c.job);
    });
    q.push(
        " ON CONFLICT (project_id, task_id, source_id) DO UPDATE
            SET task_display_name = EXCLUDED.task_display_name, source_display_name = EXCLUDED.source_display_name,
                rpo_ms = EXCLUDED.rpo_ms, latest_job_id = EXCLUDED.latest_job_id
          WHERE protection.last_finished_job_id IS NULL
             OR (protection.task_display_name, protection.source_display_name, protection.rpo_ms)
                IS DISTINCT FROM (EXCLUDED.task_display_name, EXCLUDED.source_display_name, EXCLUDED.rpo_ms)",
    );
    q.build().execute(conn).await?;
    Ok(())
}

/// What a finished job of a pair changed.
#[derive(Debug, sqlx::FromRow)]
pub struct Finished {
    /// The pair was VIOLATED and this job's success ended it.
    pub recovered: bool,
    /// The job.
    pub job_id: JobId,
    /// The row after the change.
    #[sqlx(flatten)]
    pub row: Row,
}

/// A finished job of a pair.
#[derive(Debug)]
pub struct Done<'a> {
    pub project: &'a ProjectId,
    pub task: TaskId,
    pub source: ConnectorId,
    pub job: JobId,
    pub state: &'static str,
    pub error: &'a str,
    pub snapshot: &'a str,
    pub end_time: DateTime<Utc>,
}

/// Records finished jobs in their pairs, in one statement: a success becomes the last
/// success and ends a violation. Pairs without a row are left out.
pub async fn finished(conn: &mut PgConnection, done: &[Done<'_>]) -> Result<Vec<Finished>> {
    let cols = COLUMNS.split(',').map(|c| format!("p.{}", c.trim())).collect::<Vec<_>>().join(", ");
    let projects: Vec<&ProjectId> = done.iter().map(|d| d.project).collect();
    let tasks: Vec<TaskId> = done.iter().map(|d| d.task).collect();
    let sources: Vec<ConnectorId> = done.iter().map(|d| d.source).collect();
    let jobs: Vec<JobId> = done.iter().map(|d| d.job).collect();
    let states: Vec<&str> = done.iter().map(|d| d.state).collect();
    let errors: Vec<&str> = done.iter().map(|d| d.error).collect();
    let snapshots: Vec<&str> = done.iter().map(|d| d.snapshot).collect();
    let ends: Vec<DateTime<Utc>> = done.iter().map(|d| d.end_time).collect();
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "WITH i AS (SELECT * FROM unnest($1::text[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[],
                                         $7::text[], $8::timestamptz[])
                      AS i(project_id, task_id, source_id, job_id, state, error, snapshot, end_time)),
              old AS (SELECT p.project_id, p.task_id, p.source_id, p.violated_time
                        FROM protection p JOIN i USING (project_id, task_id, source_id)
                       ORDER BY p.task_id, p.source_id FOR UPDATE OF p)
         UPDATE protection p
            SET last_finished_job_id = i.job_id, last_job_state = i.state, last_error = i.error,
                last_success_time = CASE WHEN i.state = 'SUCCEEDED' THEN i.end_time ELSE p.last_success_time END,
                last_success_job_id = CASE WHEN i.state = 'SUCCEEDED' THEN i.job_id ELSE p.last_success_job_id END,
                last_snapshot = CASE WHEN i.state = 'SUCCEEDED' THEN i.snapshot ELSE p.last_snapshot END,
                violated_time = CASE WHEN i.state = 'SUCCEEDED' THEN NULL ELSE p.violated_time END
           FROM i JOIN old USING (project_id, task_id, source_id)
          WHERE (p.project_id, p.task_id, p.source_id) = (i.project_id, i.task_id, i.source_id)
         RETURNING i.state = 'SUCCEEDED' AND old.violated_time IS NOT NULL AS recovered, i.job_id, {cols}"
    )))
    .bind(projects)
    .bind(tasks)
    .bind(sources)
    .bind(jobs)
    .bind(states)
    .bind(errors)
    .bind(snapshots)
    .bind(ends)
    .fetch_all(conn)
    .await?)
}

/// Marks VIOLATED every watched pair whose last success (or, never backed up, whose first
/// job) is older than its RPO at `now`, and returns them. A row is marked once, whichever
/// replica gets there first.
pub async fn mark_violated(conn: &mut PgConnection, now: DateTime<Utc>) -> Result<Vec<Row>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "WITH due AS (SELECT project_id, task_id, source_id FROM protection
                        WHERE violated_time IS NULL AND rpo_ms IS NOT NULL
                          AND COALESCE(last_success_time, covered_since) + rpo_ms * interval '1 millisecond' <= $1
                        ORDER BY task_id, source_id FOR UPDATE)
         UPDATE protection p SET violated_time = $1 FROM due
          WHERE (p.project_id, p.task_id, p.source_id) = (due.project_id, due.task_id, due.source_id)
            AND p.violated_time IS NULL
         RETURNING {}",
        COLUMNS.split(',').map(|c| format!("p.{}", c.trim())).collect::<Vec<_>>().join(", ")
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

/// A pair's current names and objective, as the catalog has them.
#[derive(Debug)]
pub struct Current<'a> {
    pub task: TaskId,
    pub source: ConnectorId,
    pub task_display_name: &'a str,
    pub source_display_name: &'a str,
    pub rpo_ms: Option<i64>,
}

/// Brings the pairs of a project up to date with the catalog's names and objectives, in one
/// statement (unchanged rows are not written).
pub async fn refresh(conn: &mut PgConnection, project: &ProjectId, current: &[Current<'_>]) -> Result<()> {
    let tasks: Vec<TaskId> = current.iter().map(|c| c.task).collect();
    let sources: Vec<ConnectorId> = current.iter().map(|c| c.source).collect();
    let task_names: Vec<&str> = current.iter().map(|c| c.task_display_name).collect();
    let source_names: Vec<&str> = current.iter().map(|c| c.source_display_name).collect();
    let rpos: Vec<Option<i64>> = current.iter().map(|c| c.rpo_ms).collect();
    sqlx::query(
        "WITH i AS (SELECT * FROM unnest($2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::bigint[])
                      AS i(task_id, source_id, task_name, source_name, rpo_ms)),
              stale AS (SELECT p.task_id, p.source_id FROM protection p JOIN i USING (task_id, source_id)
                         WHERE p.project_id = $1
                           AND (p.task_display_name, p.source_display_name, p.rpo_ms)
                               IS DISTINCT FROM (i.task_name, i.source_name, i.rpo_ms)
                         ORDER BY p.task_id, p.source_id FOR UPDATE OF p)
         UPDATE protection p SET task_display_name = i.task_name, source_display_name = i.source_name, rpo_ms = i.rpo_ms
           FROM i JOIN stale USING (task_id, source_id)
          WHERE p.project_id = $1 AND p.task_id = i.task_id AND p.source_id = i.source_id",
    )
    .bind(project)
    .bind(tasks)
    .bind(sources)
    .bind(task_names)
    .bind(source_names)
    .bind(rpos)
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
