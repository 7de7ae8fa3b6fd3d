//! `scheduler.snapshots`: the snapshot index, what each store holds as the last job that read
//! it saw it. Every statement names the project of the store.

use cairn_api::{
    ids::{ConnectorId, JobId, TaskId},
    names::ProjectId,
};
use std::collections::HashMap;

use cairn_runtime::filter::{Field, Kind};
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

/// What ListSnapshots' `filter` may name (AIP-160; see `cairn_runtime::filter`).
pub static FILTER_FIELDS: &[Field] = &[
    Field { name: "labels", column: "n.labels", kind: Kind::Labels },
    Field { name: "time", column: "n.time", kind: Kind::Time },
    Field { name: "hostname", column: "n.hostname", kind: Kind::Text },
    Field { name: "store", column: "n.store_id", kind: Kind::Reference },
    Field { name: "task", column: "n.task_id", kind: Kind::Reference },
];

/// The fields ListSnapshots may be ordered by.
pub const ORDER_FIELDS: &[&str] = &["time"];

/// One ListSnapshots query.
#[derive(Debug)]
pub struct Query<'a> {
    pub project: Option<&'a [ProjectId]>,
    pub filter: &'a Filter,
    pub aip: &'a cairn_runtime::filter::Filter,
    pub resolved: &'a HashMap<(&'static str, String), uuid::Uuid>,
    /// Oldest first instead of newest first.
    pub ascending: bool,
    pub after: Option<&'a Cursor>,
    pub limit: i64,
}

fn conditions(b: &mut sqlx::QueryBuilder<sqlx::Postgres>, q: &Query<'_>) {
    let f = q.filter;
    if let Some(s) = f.store {
        b.push(" AND n.store_id = ").push_bind(s);
    }
    if let Some(t) = f.task {
        b.push(" AND n.task_id = ").push_bind(t);
    }
    if !f.labels.is_empty() {
        b.push(" AND n.labels @> ").push_bind(f.labels.clone());
    }
    if let Some(from) = f.from {
        b.push(" AND n.time >= ").push_bind(from);
    }
    if let Some(to) = f.to {
        b.push(" AND n.time < ").push_bind(to);
    }
    if let Some(p) = q.project {
        b.push(" AND n.project_id = ANY(").push_bind(p).push(")");
    }
    if let Some(prefix) = &f.id_prefix {
        b.push(" AND starts_with(n.id, ").push_bind(prefix.clone()).push(")");
    }
    if !q.aip.is_empty() {
        b.push(" AND ");
        q.aip.push_sql(b, q.resolved);
    }
}

/// One page of one project or (`None`) every project, newest (or oldest) first.
pub async fn list(conn: &mut PgConnection, q: &Query<'_>) -> Result<Vec<Row>> {
    let mut b = sqlx::QueryBuilder::new(
        "SELECT n.project_id, n.store_id, n.id, n.task_id, n.time, n.labels, n.paths, n.hostname, n.parent,
                n.total_files, n.total_bytes, n.bytes_added, n.job_id
           FROM snapshots n WHERE true",
    );
    let (cmp, dir) = if q.ascending { (">", "ASC") } else { ("<", "DESC") };
    if let Some((time, store, id)) = q.after {
        b.push(format_args!(" AND (n.time, n.store_id, n.id) {cmp} ("))
            .push_bind(*time)
            .push(", ")
            .push_bind(*store)
            .push(", ")
            .push_bind(id.clone())
            .push(")");
    }
    conditions(&mut b, q);
    b.push(format_args!(" ORDER BY n.time {dir}, n.store_id {dir}, n.id {dir} LIMIT ")).push_bind(q.limit);
    Ok(b.build_query_as().fetch_all(conn).await?)
}

/// How many snapshots the query matches over all pages.
pub async fn count(conn: &mut PgConnection, q: &Query<'_>) -> Result<i64> {
    let mut b = sqlx::QueryBuilder::new("SELECT count(*) FROM snapshots n WHERE true");
    conditions(&mut b, q);
    Ok(b.build_query_scalar().fetch_one(conn).await?)
}
