//! `scheduler.jobs`: the queue and the history in one table. A job is QUEUED until a lease
//! moves it to RUNNING (one statement per batch, rows claimed with `FOR UPDATE SKIP LOCKED`
//! and stores locked in id order), then to a final state, or back to QUEUED for a retry.
//! Every lease-holder write is fenced by `(lease_id, lease_generation, state = RUNNING)`.
//!
//! Columns are typed in Rust (ids, [`JobState`], [`JobTrigger`], [`TaskType`], [`Generation`]).
//! States still appear as SQL literals where a partial index is defined on them (`state =
//! 'QUEUED'`, `'RUNNING'`): a bound parameter would hide the predicate from the planner's
//! generic plans. Those literals are the stored names of [`JobState`] (`Stored::stored`), and
//! `jobs_state_check` refuses any other value.

use std::collections::HashMap;

use cairn_api::{
    ids::{ConnectorId, Generation, JobId, LeaseId, ScheduleId, TaskId},
    names::ProjectId,
    v1::{JobState, JobTrigger, NotificationMode, TaskType},
};
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, types::Json};
use uuid::Uuid;

use cairn_runtime::{
    filter::{Field, Kind},
    pagination::OrderBy,
};

use crate::{domain::job::Active, error::Result};

/// A stored job.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Row {
    pub project_id: ProjectId,
    pub id: JobId,
    pub task_id: Option<TaskId>,
    pub task_display_name: String,
    pub r#type: TaskType,
    pub schedule_id: Option<ScheduleId>,
    pub occurrence: Option<DateTime<Utc>>,
    pub trigger: JobTrigger,
    pub connector_ids: Vec<ConnectorId>,
    pub store_ids: Vec<ConnectorId>,
    pub exclusive: bool,
    pub serial: bool,
    pub selector: Json<HashMap<String, String>>,
    pub test_connector_id: Option<ConnectorId>,
    pub state: JobState,
    pub scheduled_time: DateTime<Utc>,
    pub run_after: DateTime<Utc>,
    pub create_time: DateTime<Utc>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub attempt: i32,
    pub max_attempts: i32,
    pub initial_backoff_ms: i64,
    pub max_backoff_ms: i64,
    pub timeout_ms: Option<i64>,
    pub worker: String,
    pub lease_id: Option<LeaseId>,
    pub lease_generation: Generation,
    pub lease_expire_time: Option<DateTime<Utc>>,
    pub cancel_requested: bool,
    pub cancel_reason: String,
    pub timed_out: bool,
    pub progress: Option<serde_json::Value>,
    pub snapshot: String,
    pub stats: Option<serde_json::Value>,
    pub error: String,
    pub wait_reason: String,
    pub missed_occurrences: i64,
    pub connection_test: Option<serde_json::Value>,
    pub trace_parent: String,
    pub log_seq: i64,
    pub notify: NotificationMode,
    pub source_id: Option<ConnectorId>,
    pub overrides: Option<serde_json::Value>,
    pub run_id: Option<Uuid>,
}

/// Every column, for `RETURNING` and `SELECT`.
pub const COLUMNS: &str = "project_id, id, task_id, task_display_name, type, schedule_id, occurrence, trigger, connector_ids,
    store_ids, exclusive, serial, selector, test_connector_id, state, scheduled_time, run_after, create_time, start_time,
    end_time, attempt, max_attempts, initial_backoff_ms, max_backoff_ms, timeout_ms, worker, lease_id, lease_generation,
    lease_expire_time, cancel_requested, cancel_reason, timed_out, progress, snapshot, stats, error, wait_reason,
    missed_occurrences, connection_test, trace_parent, log_seq, notify, source_id, overrides, run_id";

/// A job to record.
#[derive(Debug, Clone)]
pub struct New {
    pub project_id: ProjectId,
    pub id: JobId,
    pub task_id: Option<TaskId>,
    pub task_display_name: String,
    pub r#type: TaskType,
    pub schedule_id: Option<ScheduleId>,
    pub occurrence: Option<DateTime<Utc>>,
    pub trigger: JobTrigger,
    pub connector_ids: Vec<ConnectorId>,
    pub store_ids: Vec<ConnectorId>,
    pub exclusive: bool,
    pub serial: bool,
    pub selector: HashMap<String, String>,
    pub test_connector_id: Option<ConnectorId>,
    pub state: JobState,
    pub scheduled_time: DateTime<Utc>,
    pub create_time: DateTime<Utc>,
    pub end_time: Option<DateTime<Utc>>,
    pub max_attempts: i32,
    pub initial_backoff_ms: i64,
    pub max_backoff_ms: i64,
    pub timeout_ms: Option<i64>,
    pub error: String,
    pub missed_occurrences: i64,
    pub trace_parent: String,
    pub request_id: Option<Uuid>,
    pub notify: NotificationMode,
    pub source_id: Option<ConnectorId>,
    pub overrides: Option<serde_json::Value>,
    pub run_id: Option<Uuid>,
}

/// Records a job; `None` when its (schedule, occurrence, source) already has one.
pub async fn insert(conn: &mut PgConnection, j: &New) -> Result<Option<JobId>> {
    Ok(insert_many(conn, std::slice::from_ref(j)).await?.into_iter().next())
}

/// Records jobs in one statement, with the connectors they touch in a second; returns the ids
/// recorded (a job whose (schedule, occurrence, source) already has one is left out).
pub async fn insert_many(conn: &mut PgConnection, jobs: &[New]) -> Result<Vec<JobId>> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = sqlx::QueryBuilder::new(
        "INSERT INTO jobs (id, task_id, task_display_name, type, schedule_id, occurrence, trigger, connector_ids,
                           store_ids, exclusive, serial, selector, test_connector_id, state, scheduled_time, run_after,
                           create_time, end_time, max_attempts, initial_backoff_ms, max_backoff_ms, timeout_ms, error,
                           missed_occurrences, trace_parent, request_id, notify, project_id, source_id, overrides, run_id) ",
    );
    q.push_values(jobs, |mut b, j| {
        b.push_bind(j.id)
            .push_bind(j.task_id)
            .push_bind(&j.task_display_name)
            .push_bind(j.r#type)
            .push_bind(j.schedule_id)
            .push_bind(j.occurrence)
            .push_bind(j.trigger)
            .push_bind(&j.connector_ids)
            .push_bind(&j.store_ids)
            .push_bind(j.exclusive)
            .push_bind(j.serial)
            .push_bind(Json(&j.selector))
            .push_bind(j.test_connector_id)
            .push_bind(j.state)
            .push_bind(j.scheduled_time)
            .push_bind(j.scheduled_time)
            .push_bind(j.create_time)
            .push_bind(j.end_time)
            .push_bind(j.max_attempts)
            .push_bind(j.initial_backoff_ms)
            .push_bind(j.max_backoff_ms)
            .push_bind(j.timeout_ms)
            .push_bind(&j.error)
            .push_bind(j.missed_occurrences)
            .push_bind(&j.trace_parent)
            .push_bind(j.request_id)
            .push_bind(match j.notify {
                NotificationMode::Unspecified => NotificationMode::Never,
                n => n,
            })
            .push_bind(&j.project_id)
            .push_bind(j.source_id)
            .push_bind(&j.overrides)
            .push_bind(j.run_id);
    });
    q.push(
        " ON CONFLICT (schedule_id, occurrence, (COALESCE(source_id, '00000000-0000-0000-0000-000000000000'::uuid)))
           WHERE occurrence IS NOT NULL DO NOTHING
         RETURNING id",
    );
    let ids: Vec<JobId> = q.build_query_scalar().fetch_all(&mut *conn).await?;
    let recorded: std::collections::HashSet<JobId> = ids.iter().copied().collect();
    let links: Vec<(ConnectorId, JobId, DateTime<Utc>)> = jobs
        .iter()
        .filter(|j| recorded.contains(&j.id))
        .flat_map(|j| j.connector_ids.iter().map(move |c| (*c, j.id, j.create_time)))
        .collect();
    link_connectors(conn, &links).await?;
    Ok(ids)
}

/// Records the connectors jobs touch (connector, job, the job's create time), for history
/// filters (written once per job, so job updates never touch a GIN index).
async fn link_connectors(
    conn: &mut PgConnection,
    links: &[(ConnectorId, JobId, DateTime<Utc>)],
) -> Result<()> {
    if links.is_empty() {
        return Ok(());
    }
    let connectors: Vec<ConnectorId> = links.iter().map(|l| l.0).collect();
    let jobs: Vec<JobId> = links.iter().map(|l| l.1).collect();
    let times: Vec<DateTime<Utc>> = links.iter().map(|l| l.2).collect();
    sqlx::query(
        "INSERT INTO job_connectors (connector_id, job_id, create_time)
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[])",
    )
    .bind(connectors)
    .bind(jobs)
    .bind(times)
    .execute(conn)
    .await?;
    Ok(())
}

/// A job by id, in one project or (`None`, `projects/-`) any.
pub async fn get(conn: &mut PgConnection, project: Option<&ProjectId>, id: JobId) -> Result<Option<Row>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM jobs WHERE id = $1 AND ($2::text IS NULL OR project_id = $2)"
    )))
    .bind(id)
    .bind(project)
    .fetch_optional(conn)
    .await?)
}

/// A job of a project by id, row-locked.
pub async fn get_for_update(conn: &mut PgConnection, project: &ProjectId, id: JobId) -> Result<Option<Row>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM jobs WHERE id = $1 AND project_id = $2 FOR UPDATE"
    )))
    .bind(id)
    .bind(project)
    .fetch_optional(conn)
    .await?)
}

/// The job a project created with a request id.
pub async fn by_request_id(
    conn: &mut PgConnection,
    project: &ProjectId,
    request_id: Uuid,
) -> Result<Option<Row>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM jobs WHERE request_id = $1 AND project_id = $2"
    )))
    .bind(request_id)
    .bind(project)
    .fetch_optional(conn)
    .await?)
}

/// The active (QUEUED or RUNNING) jobs of these tasks, oldest first, with what keeps them
/// apart besides the task (a fleet job's source).
pub async fn active_of_tasks(
    conn: &mut PgConnection,
    tasks: &[TaskId],
) -> Result<Vec<(ProjectId, TaskId, Option<ConnectorId>, Active)>> {
    #[derive(sqlx::FromRow)]
    struct ActiveRow {
        project_id: ProjectId,
        task_id: TaskId,
        serial_source: Option<ConnectorId>,
        id: JobId,
        state: JobState,
    }
    let rows: Vec<ActiveRow> = sqlx::query_as(
        "SELECT project_id, task_id, serial_source, id, state FROM jobs
          WHERE task_id = ANY($1) AND state IN ('QUEUED', 'RUNNING')
          ORDER BY create_time, id",
    )
    .bind(tasks)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.project_id, r.task_id, r.serial_source, Active { id: r.id, state: r.state }))
        .collect())
}

/// List filters.
#[derive(Debug, Default, Hash)]
pub struct Filter {
    pub task_id: Option<TaskId>,
    pub schedule_id: Option<ScheduleId>,
    pub connector_id: Option<ConnectorId>,
    pub states: Vec<JobState>,
    pub triggers: Vec<JobTrigger>,
    pub r#type: Option<TaskType>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub run_id: Option<Uuid>,
}

/// What ListJobs' `filter` may name (AIP-160; see `cairn_runtime::filter`).
pub static FILTER_FIELDS: &[Field] = &[
    Field {
        name: "state",
        column: "j.state",
        kind: Kind::Enum {
            names: &["QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", "SKIPPED"],
            prefix: "JOB_STATE_",
        },
    },
    Field {
        name: "trigger",
        column: "j.trigger",
        kind: Kind::Enum {
            names: &["SCHEDULE", "MANUAL", "CATCH_UP", "RETRY", "SYSTEM"],
            prefix: "JOB_TRIGGER_",
        },
    },
    Field {
        name: "type",
        column: "j.type",
        kind: Kind::Enum {
            names: &["BACKUP", "RESTORE", "SYNC", "CHECK", "PRUNE", "TEST_CONNECTION"],
            prefix: "TASK_TYPE_",
        },
    },
    Field { name: "task", column: "j.task_id", kind: Kind::Reference },
    Field { name: "schedule", column: "j.schedule_id", kind: Kind::Reference },
    Field { name: "source", column: "j.source_id", kind: Kind::Reference },
    Field { name: "task_display_name", column: "j.task_display_name", kind: Kind::Text },
    Field { name: "worker", column: "j.worker", kind: Kind::Text },
    Field { name: "error", column: "j.error", kind: Kind::Text },
    Field { name: "snapshot", column: "j.snapshot", kind: Kind::Text },
    Field { name: "create_time", column: "j.create_time", kind: Kind::Time },
    Field { name: "scheduled_time", column: "j.scheduled_time", kind: Kind::Time },
    Field { name: "start_time", column: "j.start_time", kind: Kind::Time },
    Field { name: "end_time", column: "j.end_time", kind: Kind::Time },
];

/// The fields ListJobs may be ordered by.
pub const ORDER_FIELDS: &[&str] = &["create_time", "scheduled_time", "end_time"];

/// Where a page ended: the order field's value (`None` = NULL, which sorts last) and the id.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Cursor {
    pub at: Option<DateTime<Utc>>,
    pub id: JobId,
}

impl Cursor {
    /// The cursor after `row` in `order`.
    pub fn of(row: &Row, order: OrderBy) -> Self {
        let at = match order.field {
            "scheduled_time" => Some(row.scheduled_time),
            "end_time" => row.end_time,
            _ => Some(row.create_time),
        };
        Cursor { at, id: row.id }
    }
}

/// One ListJobs query.
#[derive(Debug)]
pub struct Query<'a> {
    /// One project, some, or (`None`) every project.
    pub project: Option<&'a [ProjectId]>,
    /// The request's typed filters.
    pub filter: &'a Filter,
    /// Its AIP-160 filter and the ids its references resolved to.
    pub aip: &'a cairn_runtime::filter::Filter,
    pub resolved: &'a HashMap<(&'static str, String), Uuid>,
    pub order: OrderBy,
    /// The previous page's end.
    pub after: Option<&'a Cursor>,
    pub limit: i64,
}

/// One page. Only the filters given become SQL, so each query is planned for what it asks:
/// by default a connector's jobs are walked newest first in `job_connectors`, a task's in
/// `jobs_task_idx`, a project's in `jobs_project_idx`, and the scan stops after `limit` rows.
pub async fn list(conn: &mut PgConnection, q: &Query<'_>) -> Result<Vec<Row>> {
    let f = q.filter;
    let mut b = sqlx::QueryBuilder::new(format!("SELECT {} FROM ", columns_of("j")));
    // A connector's jobs by creation come from its link rows, in their own order.
    let by_link = f.connector_id.is_some() && q.order.field == "create_time";
    let (sort, id) = match (q.order.field, by_link) {
        ("create_time", true) => ("c.create_time", "c.job_id"),
        ("scheduled_time", _) => ("j.scheduled_time", "j.id"),
        // Unfinished jobs (no end time) sort after every finished one.
        ("end_time", _) => ("COALESCE(j.end_time, 'infinity'::timestamptz)", "j.id"),
        _ => ("j.create_time", "j.id"),
    };
    match f.connector_id {
        Some(c) if by_link => {
            b.push("job_connectors c JOIN jobs j ON j.id = c.job_id WHERE c.connector_id = ").push_bind(c);
        }
        Some(c) => {
            b.push("jobs j WHERE EXISTS (SELECT 1 FROM job_connectors c WHERE c.job_id = j.id AND c.connector_id = ")
                .push_bind(c)
                .push(")");
        }
        None => {
            b.push("jobs j WHERE true");
        }
    }
    if let Some(after) = q.after {
        let cmp = if q.order.desc { "<" } else { ">" };
        b.push(format_args!(" AND ({sort}, {id}) {cmp} (COALESCE("))
            .push_bind(after.at)
            .push(", 'infinity'::timestamptz), ")
            .push_bind(after.id)
            .push(")");
    }
    match q.project {
        // One project as an equality, so the (project_id, create_time DESC, id DESC) index
        // serves the order; `= ANY` of an array cannot promise that order.
        Some([single]) => {
            b.push(" AND j.project_id = ").push_bind(single);
        }
        Some(many) => {
            b.push(" AND j.project_id = ANY(").push_bind(many).push(")");
        }
        None => {}
    }
    if let Some(t) = f.task_id {
        b.push(" AND j.task_id = ").push_bind(t);
    }
    if let Some(sid) = f.schedule_id {
        b.push(" AND j.schedule_id = ").push_bind(sid);
    }
    if !f.states.is_empty() {
        b.push(" AND j.state = ANY(").push_bind(&f.states).push(")");
    }
    if !f.triggers.is_empty() {
        b.push(" AND j.trigger = ANY(").push_bind(&f.triggers).push(")");
    }
    if let Some(ty) = f.r#type {
        b.push(" AND j.type = ").push_bind(ty);
    }
    let created = if by_link { "c.create_time" } else { "j.create_time" };
    if let Some(from) = f.from {
        b.push(format_args!(" AND {created} >= ")).push_bind(from);
    }
    if let Some(to) = f.to {
        b.push(format_args!(" AND {created} < ")).push_bind(to);
    }
    if let Some(run) = f.run_id {
        b.push(" AND j.run_id = ").push_bind(run);
    }
    if !q.aip.is_empty() {
        b.push(" AND ");
        q.aip.push_sql(&mut b, q.resolved);
    }
    let dir = if q.order.desc { "DESC" } else { "ASC" };
    b.push(format_args!(" ORDER BY {sort} {dir}, {id} {dir} LIMIT ")).push_bind(q.limit);
    Ok(b.build_query_as().fetch_all(conn).await?)
}

/// [`COLUMNS`] of table alias `alias`.
fn columns_of(alias: &str) -> String {
    COLUMNS.split(',').map(|c| format!("{alias}.{}", c.trim())).collect::<Vec<_>>().join(", ")
}

/// A store's concurrency limit as the scheduler keeps it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct StoreRow {
    pub project_id: ProjectId,
    pub id: ConnectorId,
    pub display_name: String,
    /// The effective limit when read: 1 while a store jobs may initialise is not ready.
    pub max_concurrent_jobs: i32,
    pub create_if_missing: bool,
}

/// Marks stores ready once a job touching them succeeded (their repository exists).
pub async fn mark_ready(conn: &mut PgConnection, ids: &[ConnectorId]) -> Result<()> {
    sqlx::query("UPDATE stores SET ready = true WHERE id = ANY($1) AND NOT ready")
        .bind(ids)
        .execute(conn)
        .await?;
    Ok(())
}

/// Upserts store limits (only rows whose values changed are touched).
pub async fn upsert_stores(conn: &mut PgConnection, stores: &[StoreRow]) -> Result<()> {
    for s in stores {
        sqlx::query(
            "INSERT INTO stores (id, display_name, max_concurrent_jobs, project_id, create_if_missing)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO UPDATE SET display_name = EXCLUDED.display_name,
                 max_concurrent_jobs = EXCLUDED.max_concurrent_jobs, create_if_missing = EXCLUDED.create_if_missing
             WHERE stores.display_name <> EXCLUDED.display_name
                OR stores.max_concurrent_jobs <> EXCLUDED.max_concurrent_jobs
                OR stores.create_if_missing <> EXCLUDED.create_if_missing",
        )
        .bind(s.id)
        .bind(&s.display_name)
        .bind(s.max_concurrent_jobs)
        .bind(&s.project_id)
        .bind(s.create_if_missing)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Leasing's claim wants the ordered index scan that stops after LIMIT rows: without fresh
/// statistics (a burst of new jobs before autovacuum analyzes) the planner prefers a bitmap
/// scan and a sort over every queued row. For the rest of the transaction.
pub async fn prefer_ordered_scan(conn: &mut PgConnection) -> Result<()> {
    sqlx::query("SET LOCAL enable_bitmapscan = off").execute(conn).await?;
    Ok(())
}

/// A candidate for leasing.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CandidateRow {
    pub id: JobId,
    pub task_id: Option<TaskId>,
    pub store_ids: Vec<ConnectorId>,
    pub exclusive: bool,
    pub serial: bool,
    pub wait_reason: String,
    /// Fleet jobs serialise per (task, source): their source; others per task: `None`.
    pub serial_source: Option<ConnectorId>,
}

/// Queued, due jobs whose selector the labels satisfy, of the worker's projects (empty = all),
/// locked (others' locks skipped).
pub async fn claim_candidates(
    conn: &mut PgConnection,
    labels: &HashMap<String, String>,
    projects: &[ProjectId],
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<CandidateRow>> {
    Ok(sqlx::query_as(
        "SELECT id, task_id, store_ids, exclusive, serial, wait_reason, serial_source FROM jobs
         WHERE state = 'QUEUED' AND run_after <= $1 AND selector <@ $2
           AND (cardinality($4::text[]) = 0 OR project_id = ANY($4))
         ORDER BY run_after, id LIMIT $3 FOR UPDATE SKIP LOCKED",
    )
    .bind(now)
    .bind(Json(labels))
    .bind(limit)
    .bind(projects)
    .fetch_all(conn)
    .await?)
}

/// Locks store rows in id order.
pub async fn lock_stores(conn: &mut PgConnection, ids: &[ConnectorId]) -> Result<Vec<StoreRow>> {
    Ok(sqlx::query_as(
        "SELECT project_id, id, display_name, create_if_missing,
                CASE WHEN create_if_missing AND NOT ready THEN 1 ELSE max_concurrent_jobs END AS max_concurrent_jobs
           FROM stores WHERE id = ANY($1) ORDER BY id FOR UPDATE",
    )
    .bind(ids)
    .fetch_all(conn)
    .await?)
}

/// Store limits without locking.
pub async fn stores(conn: &mut PgConnection, ids: &[ConnectorId]) -> Result<Vec<StoreRow>> {
    Ok(sqlx::query_as(
        "SELECT project_id, id, display_name, create_if_missing,
                CASE WHEN create_if_missing AND NOT ready THEN 1 ELSE max_concurrent_jobs END AS max_concurrent_jobs
           FROM stores WHERE id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(conn)
    .await?)
}

/// Whether any of these tasks has more than one running job.
pub async fn tasks_running_more_than_once(conn: &mut PgConnection, tasks: &[TaskId]) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM jobs WHERE state = 'RUNNING' AND task_id = ANY($1)
                        GROUP BY task_id, serial_source
                        HAVING count(*) > 1)",
    )
    .bind(tasks)
    .fetch_one(conn)
    .await?)
}

/// What runs on a store.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Load {
    pub store_id: ConnectorId,
    pub running: i64,
    /// An exclusive job (PRUNE) is among them.
    pub exclusive: bool,
}

/// Running jobs per store.
pub async fn store_loads(conn: &mut PgConnection, ids: &[ConnectorId]) -> Result<Vec<Load>> {
    Ok(sqlx::query_as(
        "SELECT s AS store_id, count(*) AS running, bool_or(exclusive) AS exclusive FROM jobs, unnest(store_ids) s
         WHERE state = 'RUNNING' AND store_ids && $1 GROUP BY s",
    )
    .bind(ids)
    .fetch_all(conn)
    .await?)
}

/// (task, fleet source) keys among the tasks `ids` with a running job (see
/// [`CandidateRow::serial_source`]).
pub async fn busy_tasks(
    conn: &mut PgConnection,
    ids: &[TaskId],
) -> Result<Vec<(TaskId, Option<ConnectorId>)>> {
    Ok(sqlx::query_as(
        "SELECT DISTINCT task_id, serial_source FROM jobs
         WHERE state = 'RUNNING' AND task_id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(conn)
    .await?)
}

/// Moves claimed jobs to RUNNING under new leases.
pub async fn start(
    conn: &mut PgConnection,
    ids: &[JobId],
    token_hashes: &[Vec<u8>],
    worker: &str,
    now: DateTime<Utc>,
    expire: DateTime<Utc>,
) -> Result<Vec<Row>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE jobs SET state = 'RUNNING', attempt = attempt + 1, lease_id = gen_random_uuid(),
                lease_generation = lease_generation + 1, worker = $2, start_time = $3, lease_expire_time = $4,
                wait_reason = '', progress = NULL, lease_token_hash = t.thash
           FROM unnest($1::uuid[], $5::bytea[]) AS t(tid, thash)
         WHERE jobs.id = t.tid AND state = 'QUEUED' RETURNING {COLUMNS}"
    )))
    .bind(ids)
    .bind(worker)
    .bind(now)
    .bind(expire)
    .bind(token_hashes)
    .fetch_all(conn)
    .await?)
}

/// The token hash of a lease that exists (current or not), to tell a report carrying another
/// lease's token from one on a lease that is simply over.
pub async fn lease_token(conn: &mut PgConnection, lease: LeaseId) -> Result<Option<Option<Vec<u8>>>> {
    Ok(sqlx::query_scalar("SELECT lease_token_hash FROM jobs WHERE lease_id = $1")
        .bind(lease)
        .fetch_optional(conn)
        .await?)
}

/// Records why jobs wait (only where the reason changed).
pub async fn set_wait_reasons(conn: &mut PgConnection, reasons: &[(JobId, String)]) -> Result<()> {
    if reasons.is_empty() {
        return Ok(());
    }
    let ids: Vec<JobId> = reasons.iter().map(|r| r.0).collect();
    let texts: Vec<&str> = reasons.iter().map(|r| r.1.as_str()).collect();
    sqlx::query(
        "UPDATE jobs SET wait_reason = r.reason FROM unnest($1::uuid[], $2::text[]) AS r(id, reason)
         WHERE jobs.id = r.id AND jobs.wait_reason <> r.reason",
    )
    .bind(&ids)
    .bind(&texts)
    .execute(conn)
    .await?;
    Ok(())
}

/// Gives leased jobs back (the catalog could not resolve them): as if never leased.
pub async fn release(conn: &mut PgConnection, ids: &[JobId], reason: &str) -> Result<()> {
    sqlx::query(
        "UPDATE jobs SET state = 'QUEUED', attempt = attempt - 1, lease_id = NULL, worker = '', start_time = NULL,
                lease_expire_time = NULL, wait_reason = $2
         WHERE id = ANY($1) AND state = 'RUNNING'",
    )
    .bind(ids)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(())
}

/// The job under a current lease, row-locked; `None` when the lease is not current.
pub async fn by_lease_for_update(conn: &mut PgConnection, fence: &Fence<'_>) -> Result<Option<Row>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM jobs WHERE lease_id = $1 AND lease_generation = $2 AND state = 'RUNNING'
           AND ($3::bytea IS NULL OR lease_token_hash = $3) FOR UPDATE"
    )))
    .bind(fence.lease)
    .bind(fence.generation)
    .bind(fence.token)
    .fetch_optional(conn)
    .await?)
}

/// What a heartbeat learns.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Beat {
    pub id: JobId,
    pub cancel_requested: bool,
}

/// Extends a current lease and stores progress; `None` when the lease is not current.
pub async fn heartbeat(
    conn: &mut PgConnection,
    fence: &Fence<'_>,
    progress: Option<serde_json::Value>,
    expire: DateTime<Utc>,
) -> Result<Option<Beat>> {
    Ok(sqlx::query_as(
        "UPDATE jobs SET lease_expire_time = $3, progress = COALESCE($4, progress)
         WHERE lease_id = $1 AND lease_generation = $2 AND state = 'RUNNING'
           AND ($5::bytea IS NULL OR lease_token_hash = $5)
         RETURNING id, cancel_requested",
    )
    .bind(fence.lease)
    .bind(fence.generation)
    .bind(expire)
    .bind(progress)
    .bind(fence.token)
    .fetch_optional(conn)
    .await?)
}

/// What a report must match to write: the current lease, its generation and, when checked,
/// the hash of its own token.
#[derive(Debug, Clone, Copy)]
pub struct Fence<'a> {
    /// The lease.
    pub lease: LeaseId,
    /// Its generation.
    pub generation: Generation,
    /// SHA-256 of the lease token; `None` = not checked (authentication off).
    pub token: Option<&'a [u8]>,
}

/// A final (or retry) state written at completion.
#[derive(Debug, Default)]
pub struct Finish {
    pub state: JobState,
    pub end_time: Option<DateTime<Utc>>,
    pub run_after: Option<DateTime<Utc>>,
    pub snapshot: Option<String>,
    pub stats: Option<serde_json::Value>,
    pub error: String,
    pub wait_reason: String,
    pub connection_test: Option<serde_json::Value>,
}

/// Writes an outcome; for a retry (`state = QUEUED`) the lease is cleared.
pub async fn finish(conn: &mut PgConnection, id: JobId, f: &Finish) -> Result<Row> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE jobs SET state = $2, end_time = $3, run_after = COALESCE($4, run_after),
                snapshot = COALESCE($5, snapshot), stats = COALESCE($6, stats), error = $7, wait_reason = $8,
                connection_test = COALESCE($9, connection_test),
                lease_id = CASE WHEN $2 = 'QUEUED' THEN NULL ELSE lease_id END,
                lease_expire_time = NULL,
                cancel_requested = CASE WHEN $2 = 'QUEUED' THEN false ELSE cancel_requested END
         WHERE id = $1 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(f.state)
    .bind(f.end_time)
    .bind(f.run_after)
    .bind(&f.snapshot)
    .bind(&f.stats)
    .bind(&f.error)
    .bind(&f.wait_reason)
    .bind(&f.connection_test)
    .fetch_one(conn)
    .await?)
}

/// A plain success to record.
#[derive(Debug)]
pub struct Success {
    pub lease: LeaseId,
    pub generation: Generation,
    /// Hash of the report's lease token, when checked.
    pub token: Option<Vec<u8>>,
    pub snapshot: String,
    pub stats: Option<serde_json::Value>,
}

/// Records plain successes of current leases in one statement (and queues their
/// notifications); leases that are not current are simply absent from the result.
pub async fn succeed_many(
    conn: &mut PgConnection,
    items: &[Success],
    now: DateTime<Utc>,
) -> Result<Vec<Row>> {
    let leases: Vec<LeaseId> = items.iter().map(|i| i.lease).collect();
    let gens: Vec<Generation> = items.iter().map(|i| i.generation).collect();
    let snaps: Vec<&str> = items.iter().map(|i| i.snapshot.as_str()).collect();
    let stats: Vec<Option<serde_json::Value>> = items.iter().map(|i| i.stats.clone()).collect();
    let tokens: Vec<Option<&[u8]>> = items.iter().map(|i| i.token.as_deref()).collect();
    let cols = COLUMNS.split(',').map(|c| format!("j.{}", c.trim())).collect::<Vec<_>>().join(", ");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "WITH input AS (SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::jsonb[], $6::bytea[])
                          AS i(lease, gen, snap, stats, token)),
         done AS (
            UPDATE jobs j SET state = 'SUCCEEDED', end_time = $5, snapshot = i.snap, stats = i.stats,
                   lease_expire_time = NULL, error = ''
            FROM input i WHERE j.lease_id = i.lease AND j.lease_generation = i.gen AND j.state = 'RUNNING'
                           AND (i.token IS NULL OR j.lease_token_hash = i.token)
            RETURNING {cols}),
         queued AS (
            INSERT INTO notifications (job_id, channel, next_attempt, create_time)
            SELECT id, '*', $5, $5 FROM done WHERE task_id IS NOT NULL AND notify = 'ALWAYS'
            ON CONFLICT DO NOTHING)
         SELECT * FROM done"
    )))
    .bind(&leases)
    .bind(&gens)
    .bind(&snaps)
    .bind(&stats)
    .bind(now)
    .bind(&tokens)
    .fetch_all(conn)
    .await?)
}

/// Asks a running job to stop (seen by its worker at the next heartbeat).
pub async fn request_cancel(conn: &mut PgConnection, id: JobId, reason: &str, timed_out: bool) -> Result<()> {
    sqlx::query(
        "UPDATE jobs SET cancel_requested = true, cancel_reason = $2, timed_out = timed_out OR $3
         WHERE id = $1 AND state = 'RUNNING'",
    )
    .bind(id)
    .bind(reason)
    .bind(timed_out)
    .execute(conn)
    .await?;
    Ok(())
}

/// Running jobs whose lease expired, locked.
pub async fn claim_expired(conn: &mut PgConnection, now: DateTime<Utc>, limit: i64) -> Result<Vec<Row>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM jobs WHERE state = 'RUNNING' AND lease_expire_time < $1
         ORDER BY lease_expire_time LIMIT $2 FOR UPDATE SKIP LOCKED"
    )))
    .bind(now)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// A running job past its timeout.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Overdue {
    pub project_id: ProjectId,
    pub id: JobId,
    pub timeout_ms: i64,
}

/// Running jobs past their timeout that were not asked to stop yet.
pub async fn overdue(conn: &mut PgConnection, now: DateTime<Utc>) -> Result<Vec<Overdue>> {
    Ok(sqlx::query_as(
        "SELECT project_id, id, timeout_ms FROM jobs
         WHERE state = 'RUNNING' AND timeout_ms IS NOT NULL AND NOT timed_out
           AND start_time + timeout_ms * interval '1 millisecond' < $1",
    )
    .bind(now)
    .fetch_all(conn)
    .await?)
}

/// Queued TEST_CONNECTION jobs created before `before` (nobody took them), locked.
pub async fn claim_stale_tests(conn: &mut PgConnection, before: DateTime<Utc>) -> Result<Vec<JobId>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM jobs WHERE state = 'QUEUED' AND type = 'TEST_CONNECTION' AND create_time < $1
         FOR UPDATE SKIP LOCKED",
    )
    .bind(before)
    .fetch_all(conn)
    .await?)
}

/// The number of running jobs (active leases).
pub async fn running_count(conn: &mut PgConnection) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM jobs WHERE state = 'RUNNING'").fetch_one(conn).await?)
}

/// Deletes finished jobs (and their logs) that ended before `before`.
pub async fn purge(conn: &mut PgConnection, before: DateTime<Utc>, limit: i64) -> Result<u64> {
    Ok(sqlx::query(
        "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE end_time < $1
                                         AND state IN ('SUCCEEDED', 'FAILED', 'CANCELLED', 'SKIPPED') LIMIT $2)",
    )
    .bind(before)
    .bind(limit)
    .execute(conn)
    .await?
    .rows_affected())
}

/// The number of jobs of a project.
pub async fn count_of_project(conn: &mut PgConnection, project: &ProjectId) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM jobs WHERE project_id = $1")
        .bind(project)
        .fetch_one(conn)
        .await?)
}

/// Deletes a project's jobs (their logs, connectors and outbox rows go with them).
pub async fn delete_of_project(conn: &mut PgConnection, project: &ProjectId) -> Result<u64> {
    Ok(sqlx::query("DELETE FROM jobs WHERE project_id = $1")
        .bind(project)
        .execute(conn)
        .await?
        .rows_affected())
}

/// Deletes a project's store limits.
pub async fn delete_stores_of_project(conn: &mut PgConnection, project: &ProjectId) -> Result<u64> {
    Ok(sqlx::query("DELETE FROM stores WHERE project_id = $1")
        .bind(project)
        .execute(conn)
        .await?
        .rows_affected())
}

/// Queued jobs waiting for one reason.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Depth {
    pub wait_reason: String,
    pub count: i64,
}

/// Queue depth by wait reason (metrics).
pub async fn queue_depth(conn: &mut PgConnection) -> Result<Vec<Depth>> {
    Ok(sqlx::query_as(
        "SELECT wait_reason, count(*) AS count FROM jobs WHERE state = 'QUEUED' GROUP BY wait_reason",
    )
    .fetch_all(conn)
    .await?)
}

/// How long a successful run took.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RunTime {
    pub task_id: TaskId,
    pub secs: f64,
}

/// Durations of the last successful runs of tasks, newest first (for forecasts).
pub async fn recent_durations(
    conn: &mut PgConnection,
    task_ids: &[TaskId],
    per_task: i64,
) -> Result<Vec<RunTime>> {
    Ok(sqlx::query_as(
        "SELECT task_id, secs FROM (
            SELECT task_id, extract(epoch FROM end_time - start_time)::float8 AS secs,
                   row_number() OVER (PARTITION BY task_id ORDER BY end_time DESC) AS n
            FROM jobs WHERE state = 'SUCCEEDED' AND task_id = ANY($1) AND start_time IS NOT NULL) r
         WHERE n <= $2",
    )
    .bind(task_ids)
    .bind(per_task)
    .fetch_all(conn)
    .await?)
}
