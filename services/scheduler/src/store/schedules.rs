//! `scheduler.schedules`. Lookups and lists name the project; only firing (which serves
//! every project) reads across them.

use cairn_api::{
    ids::{ConnectorId, JobId, ScheduleId, TaskId},
    names::{ProjectId, Reference},
    v1::JobState,
};
use std::collections::HashMap;

use cairn_runtime::{
    filter::{Field, Kind},
    pagination::OrderBy,
};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::Result;

/// A stored schedule.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Row {
    /// Project.
    pub project_id: ProjectId,
    /// Id.
    pub id: ScheduleId,
    /// Display name.
    pub display_name: String,
    /// Task.
    pub task_id: TaskId,
    /// Inputs (the Schedule message).
    pub spec: serde_json::Value,
    /// Fires at all.
    pub enabled: bool,
    /// Journal mode.
    pub journalised: bool,
    /// Interval grid origin.
    pub anchor: DateTime<Utc>,
    /// Next occurrence.
    pub next_fire: Option<DateTime<Utc>>,
    /// Next occurrence + jitter.
    pub next_run_time: Option<DateTime<Utc>>,
    /// Last occurrence fired.
    pub last_fire: Option<DateTime<Utc>>,
    /// Missed occurrences in total.
    pub missed_runs: i64,
    /// Last job.
    pub last_job_id: Option<JobId>,
    /// State of the last job (joined).
    pub last_job_state: Option<JobState>,
    /// Connectors of the task.
    pub connector_ids: Vec<ConnectorId>,
    /// Version (etag).
    pub version: i64,
    /// Created.
    pub create_time: DateTime<Utc>,
    /// Updated.
    pub update_time: DateTime<Utc>,
}

const SELECT: &str = "SELECT s.project_id, s.id, s.display_name, s.task_id, s.spec, s.enabled, s.journalised, s.anchor, s.next_fire,
        s.next_run_time, s.last_fire, s.missed_runs, s.last_job_id, j.state AS last_job_state, s.connector_ids,
        s.version, s.create_time, s.update_time
   FROM schedules s LEFT JOIN jobs j ON j.id = s.last_job_id";

/// Everything written on create or full update.
#[derive(Debug)]
pub struct Write<'a> {
    /// Project.
    pub project_id: &'a ProjectId,
    /// Id.
    pub id: ScheduleId,
    /// Display name.
    pub display_name: &'a str,
    /// Task.
    pub task_id: TaskId,
    /// Inputs.
    pub spec: serde_json::Value,
    /// Enabled.
    pub enabled: bool,
    /// Journalised.
    pub journalised: bool,
    /// Anchor.
    pub anchor: DateTime<Utc>,
    /// Next occurrence.
    pub next_fire: Option<DateTime<Utc>>,
    /// Due time.
    pub next_run_time: Option<DateTime<Utc>>,
    /// Connectors.
    pub connector_ids: &'a [ConnectorId],
    /// Now.
    pub now: DateTime<Utc>,
}

/// Inserts a schedule.
pub async fn insert(conn: &mut PgConnection, w: &Write<'_>, request_id: Option<Uuid>) -> Result<()> {
    sqlx::query(
        "INSERT INTO schedules (id, display_name, task_id, spec, enabled, journalised, anchor, next_fire, next_run_time,
                                connector_ids, request_id, create_time, update_time, project_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13)",
    )
    .bind(w.id)
    .bind(w.display_name)
    .bind(w.task_id)
    .bind(&w.spec)
    .bind(w.enabled)
    .bind(w.journalised)
    .bind(w.anchor)
    .bind(w.next_fire)
    .bind(w.next_run_time)
    .bind(w.connector_ids)
    .bind(request_id)
    .bind(w.now)
    .bind(w.project_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Replaces a schedule's inputs and next run, bumping its version.
pub async fn update(conn: &mut PgConnection, w: &Write<'_>) -> Result<()> {
    sqlx::query(
        "UPDATE schedules SET display_name = $2, spec = $3, enabled = $4, journalised = $5, anchor = $6,
                next_fire = $7, next_run_time = $8, version = version + 1, update_time = $9
         WHERE id = $1 AND project_id = $10",
    )
    .bind(w.id)
    .bind(w.display_name)
    .bind(&w.spec)
    .bind(w.enabled)
    .bind(w.journalised)
    .bind(w.anchor)
    .bind(w.next_fire)
    .bind(w.next_run_time)
    .bind(w.now)
    .bind(w.project_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Finds a schedule of a project by id or display name.
pub async fn find(conn: &mut PgConnection, project: &ProjectId, r: &Reference) -> Result<Option<Row>> {
    let q = match r {
        Reference::Id(id) => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} WHERE s.project_id = $1 AND s.id = $2")))
                .bind(project)
                .bind(*id)
        }
        Reference::DisplayName(n) => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{SELECT} WHERE s.project_id = $1 AND s.display_name = $2"
        )))
        .bind(project)
        .bind(n.clone()),
    };
    Ok(q.fetch_optional(conn).await?)
}

/// Locks a schedule row for an update.
pub async fn lock(conn: &mut PgConnection, id: ScheduleId) -> Result<bool> {
    Ok(sqlx::query("SELECT 1 FROM schedules WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(conn)
        .await?
        .is_some())
}

/// The schedule a project created with a request id.
pub async fn by_request_id(
    conn: &mut PgConnection,
    project: &ProjectId,
    request_id: Uuid,
) -> Result<Option<Row>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} WHERE s.project_id = $1 AND s.request_id = $2")))
        .bind(project)
        .bind(request_id)
        .fetch_optional(conn)
        .await?)
}

/// List filters.
#[derive(Debug, Default, Hash)]
pub struct Filter {
    /// Task.
    pub task_id: Option<TaskId>,
    /// Connector (through the task).
    pub connector_id: Option<ConnectorId>,
    /// Enabled state.
    pub enabled: Option<bool>,
}

/// What ListSchedules' `filter` may name (AIP-160; see `cairn_runtime::filter`).
pub static FILTER_FIELDS: &[Field] = &[
    Field { name: "display_name", column: "s.display_name", kind: Kind::Text },
    Field { name: "task", column: "s.task_id", kind: Kind::Reference },
    Field { name: "enabled", column: "s.enabled", kind: Kind::Bool },
    Field { name: "journalised", column: "s.journalised", kind: Kind::Bool },
    Field { name: "time_zone", column: "COALESCE(s.spec->>'timeZone', '')", kind: Kind::Text },
    Field { name: "next_run_time", column: "s.next_run_time", kind: Kind::Time },
    Field {
        name: "last_job_state",
        column: "j.state",
        kind: Kind::Enum {
            names: &["QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", "SKIPPED"],
            prefix: "JOB_STATE_",
        },
    },
    Field { name: "create_time", column: "s.create_time", kind: Kind::Time },
    Field { name: "update_time", column: "s.update_time", kind: Kind::Time },
];

/// The fields ListSchedules may be ordered by.
pub const ORDER_FIELDS: &[&str] = &["create_time", "display_name", "next_run_time"];

/// Where a page ended: the order field's value and the id.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Cursor {
    pub text: Option<String>,
    pub at: Option<DateTime<Utc>>,
    pub id: ScheduleId,
}

impl Cursor {
    /// The cursor after `row` in `order`.
    pub fn of(row: &Row, order: OrderBy) -> Self {
        match order.field {
            "display_name" => Cursor { text: Some(row.display_name.clone()), at: None, id: row.id },
            "next_run_time" => Cursor { text: None, at: row.next_run_time, id: row.id },
            _ => Cursor { text: None, at: Some(row.create_time), id: row.id },
        }
    }
}

/// One ListSchedules query.
#[derive(Debug)]
pub struct Query<'a> {
    pub project: Option<&'a [ProjectId]>,
    pub filter: &'a Filter,
    pub aip: &'a cairn_runtime::filter::Filter,
    pub resolved: &'a HashMap<(&'static str, String), Uuid>,
    pub order: OrderBy,
    pub after: Option<&'a Cursor>,
    pub limit: i64,
}

fn conditions(b: &mut sqlx::QueryBuilder<sqlx::Postgres>, q: &Query<'_>) {
    let f = q.filter;
    if let Some(t) = f.task_id {
        b.push(" AND s.task_id = ").push_bind(t);
    }
    if let Some(c) = f.connector_id {
        b.push(" AND s.connector_ids @> ARRAY[").push_bind(c).push("]");
    }
    if let Some(e) = f.enabled {
        b.push(" AND s.enabled = ").push_bind(e);
    }
    if let Some(p) = q.project {
        b.push(" AND s.project_id = ANY(").push_bind(p).push(")");
    }
    if !q.aip.is_empty() {
        b.push(" AND ");
        q.aip.push_sql(b, q.resolved);
    }
}

/// One page of one project or (`None`) every project, in `order` (the id breaks ties).
pub async fn list(conn: &mut PgConnection, q: &Query<'_>) -> Result<Vec<Row>> {
    let (sort, text) = match q.order.field {
        "display_name" => ("s.display_name", true),
        // Schedules that never fire again (no next run) sort after every other.
        "next_run_time" => ("COALESCE(s.next_run_time, 'infinity'::timestamptz)", false),
        _ => ("s.create_time", false),
    };
    let mut b = sqlx::QueryBuilder::new(format!("{SELECT} WHERE true"));
    if let Some(after) = q.after {
        let cmp = if q.order.desc { "<" } else { ">" };
        b.push(format_args!(" AND ({sort}, s.id) {cmp} ("));
        if text {
            b.push_bind(after.text.clone().unwrap_or_default());
        } else {
            b.push("COALESCE(").push_bind(after.at).push(", 'infinity'::timestamptz)");
        }
        b.push(", ").push_bind(after.id).push(")");
    }
    conditions(&mut b, q);
    let dir = if q.order.desc { "DESC" } else { "ASC" };
    b.push(format_args!(" ORDER BY {sort} {dir}, s.id {dir} LIMIT ")).push_bind(q.limit);
    Ok(b.build_query_as().fetch_all(conn).await?)
}

/// How many schedules the query matches over all pages.
pub async fn count(conn: &mut PgConnection, q: &Query<'_>) -> Result<i64> {
    let mut b = sqlx::QueryBuilder::new(
        "SELECT count(*) FROM schedules s LEFT JOIN jobs j ON j.id = s.last_job_id WHERE true",
    );
    conditions(&mut b, q);
    Ok(b.build_query_scalar().fetch_one(conn).await?)
}

/// Enabled schedules of one project or (`None`) every project (for forecasts).
pub async fn enabled(conn: &mut PgConnection, project: Option<&[ProjectId]>) -> Result<Vec<Row>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE s.enabled AND ($1::text[] IS NULL OR s.project_id = ANY($1)) ORDER BY s.id"
    )))
    .bind(project)
    .fetch_all(conn)
    .await?)
}

/// Deletes a schedule.
pub async fn delete(conn: &mut PgConnection, project: &ProjectId, id: ScheduleId) -> Result<bool> {
    Ok(sqlx::query("DELETE FROM schedules WHERE project_id = $1 AND id = $2")
        .bind(project)
        .bind(id)
        .execute(conn)
        .await?
        .rows_affected()
        == 1)
}

/// Deletes the schedules of a task.
pub async fn delete_of_task(conn: &mut PgConnection, project: &ProjectId, task_id: TaskId) -> Result<u64> {
    Ok(sqlx::query("DELETE FROM schedules WHERE project_id = $1 AND task_id = $2")
        .bind(project)
        .bind(task_id)
        .execute(conn)
        .await?
        .rows_affected())
}

/// The number of schedules of a project.
pub async fn count_of_project(conn: &mut PgConnection, project: &ProjectId) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM schedules WHERE project_id = $1")
        .bind(project)
        .fetch_one(conn)
        .await?)
}

/// Deletes the schedules of a project.
pub async fn delete_of_project(conn: &mut PgConnection, project: &ProjectId) -> Result<u64> {
    Ok(sqlx::query("DELETE FROM schedules WHERE project_id = $1")
        .bind(project)
        .execute(conn)
        .await?
        .rows_affected())
}

/// Sets enabled and the next run (pause, resume).
pub async fn set_enabled(
    conn: &mut PgConnection,
    id: ScheduleId,
    enabled: bool,
    next_fire: Option<DateTime<Utc>>,
    next_run_time: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "UPDATE schedules SET enabled = $2, next_fire = $3, next_run_time = $4, version = version + 1, update_time = $5
         WHERE id = $1",
    )
    .bind(id)
    .bind(enabled)
    .bind(next_fire)
    .bind(next_run_time)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// A task with a due schedule.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueTask {
    /// Its project.
    pub project_id: ProjectId,
    /// The task.
    pub task_id: TaskId,
}

/// The tasks of schedules due by `until` (read without locks, to prefetch task plans).
pub async fn due_tasks(conn: &mut PgConnection, until: DateTime<Utc>, limit: i64) -> Result<Vec<DueTask>> {
    Ok(sqlx::query_as(
        "SELECT DISTINCT project_id, task_id FROM (SELECT project_id, task_id FROM schedules
           WHERE enabled AND next_run_time <= $1 ORDER BY next_run_time LIMIT $2) d",
    )
    .bind(until)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Claims due schedules: rows locked by another replica are skipped.
pub async fn claim_due(conn: &mut PgConnection, now: DateTime<Utc>, limit: i64) -> Result<Vec<Row>> {
    let sql = format!(
        "{SELECT} WHERE s.id IN (SELECT id FROM schedules WHERE enabled AND next_run_time <= $1
                                  ORDER BY next_run_time LIMIT $2 FOR UPDATE SKIP LOCKED)"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(now).bind(limit).fetch_all(conn).await?)
}

/// The earliest due time of an enabled schedule.
pub async fn next_due(conn: &mut PgConnection) -> Result<Option<DateTime<Utc>>> {
    Ok(sqlx::query_scalar("SELECT min(next_run_time) FROM schedules WHERE enabled").fetch_one(conn).await?)
}

/// What firing writes back.
#[derive(Debug, Clone)]
pub struct Fired {
    /// Id.
    pub id: ScheduleId,
    /// New anchor (re-anchored intervals).
    pub anchor: DateTime<Utc>,
    /// Last occurrence handled.
    pub last_fire: DateTime<Utc>,
    /// Next occurrence.
    pub next_fire: Option<DateTime<Utc>>,
    /// Its due time.
    pub next_run_time: Option<DateTime<Utc>>,
    /// Occurrences missed in this firing.
    pub missed: i64,
    /// Job recorded.
    pub last_job_id: Option<JobId>,
    /// Connectors of the task (refreshed).
    pub connector_ids: Vec<ConnectorId>,
}

/// Records firings, in one statement.
pub async fn fired(conn: &mut PgConnection, fired: &[Fired]) -> Result<()> {
    if fired.is_empty() {
        return Ok(());
    }
    let mut q = sqlx::QueryBuilder::new(
        "UPDATE schedules s SET anchor = f.anchor, last_fire = f.last_fire, next_fire = f.next_fire,
                next_run_time = f.next_run_time, missed_runs = s.missed_runs + f.missed,
                last_job_id = COALESCE(f.last_job_id, s.last_job_id), connector_ids = f.connector_ids
           FROM (",
    );
    q.push_values(fired, |mut b, f| {
        b.push_bind(f.id)
            .push_bind(f.anchor)
            .push_bind(f.last_fire)
            .push_bind(f.next_fire)
            .push_bind(f.next_run_time)
            .push_bind(f.missed)
            .push_bind(f.last_job_id)
            .push_bind(&f.connector_ids);
    });
    q.push(
        ") AS f(id, anchor, last_fire, next_fire, next_run_time, missed, last_job_id, connector_ids)
          WHERE s.id = f.id",
    );
    q.build().execute(conn).await?;
    Ok(())
}
