//! `catalog.projects`, and what a project holds (for DeleteProject).

use std::collections::HashMap;

use cairn_api::names::ProjectId;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, types::Json};
use uuid::Uuid;

use crate::error::Result;

/// A stored project.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Row {
    /// Id (`team-a`).
    pub id: ProjectId,
    /// Display name.
    pub display_name: String,
    /// Description.
    pub description: String,
    /// Labels.
    pub labels: Json<HashMap<String, String>>,
    /// Version (etag).
    pub version: i64,
    /// Created.
    pub create_time: DateTime<Utc>,
    /// Updated.
    pub update_time: DateTime<Utc>,
}

const COLUMNS: &str = "id, display_name, description, labels, version, create_time, update_time";

/// What to write.
#[derive(Debug)]
pub struct Write<'a> {
    /// Id.
    pub id: &'a ProjectId,
    /// Display name.
    pub display_name: &'a str,
    /// Description.
    pub description: &'a str,
    /// Labels.
    pub labels: &'a HashMap<String, String>,
}

/// Inserts a project.
pub async fn insert(conn: &mut PgConnection, w: &Write<'_>, request_id: Option<Uuid>) -> Result<Row> {
    let sql = format!(
        "INSERT INTO projects (id, display_name, description, labels, request_id)
         VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(w.id)
        .bind(w.display_name)
        .bind(w.description)
        .bind(Json(w.labels))
        .bind(request_id)
        .fetch_one(conn)
        .await?)
}

/// Replaces a project's fields, bumping its version.
pub async fn update(conn: &mut PgConnection, w: &Write<'_>) -> Result<Row> {
    let sql = format!(
        "UPDATE projects SET display_name = $2, description = $3, labels = $4, version = version + 1,
                update_time = now()
         WHERE id = $1 RETURNING {COLUMNS}"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(w.id)
        .bind(w.display_name)
        .bind(w.description)
        .bind(Json(w.labels))
        .fetch_one(conn)
        .await?)
}

/// A project by id; `lock` takes a row lock (share: connectors and tasks may still be created).
pub async fn get(conn: &mut PgConnection, id: &ProjectId, lock: bool) -> Result<Option<Row>> {
    let suffix = if lock { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT {COLUMNS} FROM projects WHERE id = $1{suffix}");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(conn).await?)
}

/// Whether a project exists.
pub async fn exists(conn: &mut PgConnection, id: &ProjectId) -> Result<bool> {
    Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM projects WHERE id = $1)")
        .bind(id)
        .fetch_one(conn)
        .await?)
}

/// The project created with a request id, if any.
pub async fn by_request_id(conn: &mut PgConnection, request_id: Uuid) -> Result<Option<Row>> {
    let sql = format!("SELECT {COLUMNS} FROM projects WHERE request_id = $1");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(request_id).fetch_optional(conn).await?)
}

/// One page, by id.
pub async fn list(
    conn: &mut PgConnection,
    only: Option<&[ProjectId]>,
    after: Option<&ProjectId>,
    limit: i64,
) -> Result<Vec<Row>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM projects WHERE ($1::text IS NULL OR id > $1) AND ($3::text[] IS NULL OR id = ANY($3))
          ORDER BY id LIMIT $2"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(after).bind(limit).bind(only).fetch_all(conn).await?)
}

/// A resource a project holds, for the refusal of DeleteProject.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Held {
    /// `connectors` or `tasks`.
    pub collection: String,
    /// Id.
    pub id: Uuid,
    /// Display name.
    pub display_name: String,
}

/// The connectors and tasks of a project, tasks first, at most `limit`.
pub async fn held(conn: &mut PgConnection, id: &ProjectId, limit: i64) -> Result<Vec<Held>> {
    Ok(sqlx::query_as(
        "SELECT * FROM (SELECT 'tasks' AS collection, id, display_name FROM tasks WHERE project_id = $1
                        UNION ALL
                        SELECT 'connectors', id, display_name FROM connectors WHERE project_id = $1) h
         ORDER BY collection DESC, display_name LIMIT $2",
    )
    .bind(id)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// How much a project holds.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct Counts {
    /// Connectors.
    pub connectors: i64,
    /// Tasks.
    pub tasks: i64,
}

/// The counts of what a project holds.
pub async fn counts(conn: &mut PgConnection, id: &ProjectId) -> Result<Counts> {
    Ok(sqlx::query_as(
        "SELECT (SELECT count(*) FROM connectors WHERE project_id = $1) AS connectors,
                (SELECT count(*) FROM tasks WHERE project_id = $1) AS tasks",
    )
    .bind(id)
    .fetch_one(conn)
    .await?)
}

/// Deletes a project's tasks.
pub async fn delete_tasks(conn: &mut PgConnection, id: &ProjectId) -> Result<u64> {
    Ok(sqlx::query("DELETE FROM tasks WHERE project_id = $1").bind(id).execute(conn).await?.rows_affected())
}

/// Deletes a project's connectors (after its tasks, which reference them).
pub async fn delete_connectors(conn: &mut PgConnection, id: &ProjectId) -> Result<u64> {
    Ok(sqlx::query("DELETE FROM connectors WHERE project_id = $1")
        .bind(id)
        .execute(conn)
        .await?
        .rows_affected())
}

/// Deletes a project (after everything it holds).
pub async fn delete(conn: &mut PgConnection, id: &ProjectId) -> Result<bool> {
    Ok(sqlx::query("DELETE FROM projects WHERE id = $1").bind(id).execute(conn).await?.rows_affected() == 1)
}
