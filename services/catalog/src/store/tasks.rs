//! `catalog.tasks`. Every statement but start-up re-sealing names the project; the
//! connector columns are composite foreign keys on (project_id, id), so a task row can only
//! point at connectors of its own project.

use cairn_api::{
    ids::{ConnectorId, TaskId},
    names::{ProjectId, Reference},
};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::Result;

/// A stored task.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Row {
    /// Project.
    pub project_id: ProjectId,
    /// Id.
    pub id: TaskId,
    /// Display name.
    pub display_name: String,
    /// Sanitised message (connectors as names, no secrets, no selector).
    pub spec: serde_json::Value,
    /// Source connector.
    pub source_id: Option<ConnectorId>,
    /// Store connector.
    pub store_id: Option<ConnectorId>,
    /// Destination connector.
    pub destination_id: Option<ConnectorId>,
    /// Target store connector.
    pub target_store_id: Option<ConnectorId>,
    /// Sealed webhook secrets.
    pub secrets: Option<Vec<u8>>,
    /// Their names.
    pub secret_names: Vec<String>,
    /// Version (etag).
    pub version: i64,
    /// Created.
    pub create_time: DateTime<Utc>,
    /// Updated.
    pub update_time: DateTime<Utc>,
}

impl Row {
    /// Ids of every connector the task uses.
    pub fn connector_ids(&self) -> Vec<ConnectorId> {
        [self.source_id, self.store_id, self.destination_id, self.target_store_id]
            .into_iter()
            .flatten()
            .collect()
    }
}

const COLUMNS: &str = "project_id, id, display_name, spec, source_id, store_id, destination_id, target_store_id, secrets, \
                       secret_names, version, create_time, update_time";

/// What to write.
#[derive(Debug)]
pub struct Write<'a> {
    /// Project.
    pub project_id: &'a ProjectId,
    /// Id.
    pub id: TaskId,
    /// Display name.
    pub display_name: &'a str,
    /// Type name.
    pub type_name: &'a str,
    /// Connectors.
    pub source_id: Option<ConnectorId>,
    /// Connectors.
    pub store_id: Option<ConnectorId>,
    /// Connectors.
    pub destination_id: Option<ConnectorId>,
    /// Connectors.
    pub target_store_id: Option<ConnectorId>,
    /// Sanitised message.
    pub spec: serde_json::Value,
    /// Sealed secrets.
    pub secrets: Option<Vec<u8>>,
    /// Their names.
    pub secret_names: Vec<String>,
}

/// Inserts a task.
pub async fn insert(conn: &mut PgConnection, w: &Write<'_>, request_id: Option<Uuid>) -> Result<Row> {
    let sql = format!(
        "INSERT INTO tasks (id, display_name, type, source_id, store_id, destination_id, target_store_id, spec,
                            secrets, secret_names, request_id, project_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING {COLUMNS}"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(w.id)
        .bind(w.display_name)
        .bind(w.type_name)
        .bind(w.source_id)
        .bind(w.store_id)
        .bind(w.destination_id)
        .bind(w.target_store_id)
        .bind(&w.spec)
        .bind(&w.secrets)
        .bind(&w.secret_names)
        .bind(request_id)
        .bind(w.project_id)
        .fetch_one(conn)
        .await?)
}

/// Replaces a task's record, bumping its version.
pub async fn update(conn: &mut PgConnection, w: &Write<'_>) -> Result<Row> {
    let sql = format!(
        "UPDATE tasks SET display_name = $2, source_id = $3, store_id = $4, destination_id = $5,
                target_store_id = $6, spec = $7, secrets = $8, secret_names = $9,
                version = version + 1, update_time = now()
         WHERE id = $1 AND project_id = $10 RETURNING {COLUMNS}"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(w.id)
        .bind(w.display_name)
        .bind(w.source_id)
        .bind(w.store_id)
        .bind(w.destination_id)
        .bind(w.target_store_id)
        .bind(&w.spec)
        .bind(&w.secrets)
        .bind(&w.secret_names)
        .bind(w.project_id)
        .fetch_one(conn)
        .await?)
}

/// Finds a task of a project by id or display name; `lock` takes a row lock.
pub async fn find(
    conn: &mut PgConnection,
    project: &ProjectId,
    r: &Reference,
    lock: bool,
) -> Result<Option<Row>> {
    let suffix = if lock { " FOR UPDATE" } else { "" };
    let q = match r {
        Reference::Id(id) => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM tasks WHERE project_id = $1 AND id = $2{suffix}"
        )))
        .bind(project)
        .bind(*id),
        Reference::DisplayName(n) => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM tasks WHERE project_id = $1 AND display_name = $2{suffix}"
        )))
        .bind(project)
        .bind(n.clone()),
    };
    Ok(q.fetch_optional(conn).await?)
}

/// The task a project created with a request id, if any.
pub async fn by_request_id(
    conn: &mut PgConnection,
    project: &ProjectId,
    request_id: Uuid,
) -> Result<Option<Row>> {
    let sql = format!("SELECT {COLUMNS} FROM tasks WHERE project_id = $1 AND request_id = $2");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(project).bind(request_id).fetch_optional(conn).await?)
}

/// Tasks using a connector (full rows), for re-checking selectors.
pub async fn using_connector(
    conn: &mut PgConnection,
    project: &ProjectId,
    id: ConnectorId,
) -> Result<Vec<Row>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM tasks
         WHERE project_id = $1 AND (source_id = $2 OR store_id = $2 OR destination_id = $2 OR target_store_id = $2)
         ORDER BY id"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(project).bind(id).fetch_all(conn).await?)
}

/// List filters.
#[derive(Debug, Default, Hash)]
pub struct Filter {
    /// Any-role connector.
    pub connector: Option<ConnectorId>,
    /// Type name.
    pub type_name: Option<String>,
}

/// One page, by id, of one project or (`None`) every project.
pub async fn list(
    conn: &mut PgConnection,
    project: Option<&[ProjectId]>,
    f: &Filter,
    after: Option<TaskId>,
    limit: i64,
) -> Result<Vec<Row>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM tasks
         WHERE ($1::uuid IS NULL OR id > $1)
           AND ($5::text[] IS NULL OR project_id = ANY($5))
           AND ($2::uuid IS NULL OR source_id = $2 OR store_id = $2 OR destination_id = $2 OR target_store_id = $2)
           AND ($3::text IS NULL OR type = $3)
         ORDER BY id LIMIT $4"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(after)
        .bind(f.connector)
        .bind(&f.type_name)
        .bind(limit)
        .bind(project)
        .fetch_all(conn)
        .await?)
}

/// Tasks by (project, id) or (project, display name), for the scheduler; any order. Each
/// reference is matched only within its own project.
pub async fn by_refs(
    conn: &mut PgConnection,
    ids: &[(ProjectId, TaskId)],
    names: &[(ProjectId, String)],
) -> Result<Vec<Row>> {
    let (id_projects, ids): (Vec<&ProjectId>, Vec<TaskId>) = ids.iter().map(|(p, id)| (p, *id)).unzip();
    let (name_projects, names): (Vec<&ProjectId>, Vec<&str>) =
        names.iter().map(|(p, n)| (p, n.as_str())).unzip();
    let sql = format!(
        "SELECT {COLUMNS} FROM tasks
         WHERE (project_id, id) IN (SELECT * FROM unnest($1::text[], $2::uuid[]))
            OR (project_id, display_name) IN (SELECT * FROM unnest($3::text[], $4::text[]))"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id_projects)
        .bind(ids)
        .bind(name_projects)
        .bind(names)
        .fetch_all(conn)
        .await?)
}

/// Deletes a task.
pub async fn delete(conn: &mut PgConnection, project: &ProjectId, id: TaskId) -> Result<bool> {
    Ok(sqlx::query("DELETE FROM tasks WHERE project_id = $1 AND id = $2")
        .bind(project)
        .bind(id)
        .execute(conn)
        .await?
        .rows_affected()
        == 1)
}

/// Rows with sealed secrets (for re-sealing after rotation).
pub async fn with_secrets(conn: &mut PgConnection) -> Result<Vec<super::Sealed<TaskId>>> {
    Ok(sqlx::query_as("SELECT id, secrets FROM tasks WHERE secrets IS NOT NULL").fetch_all(conn).await?)
}

/// Replaces a row's sealed secrets without changing its version.
pub async fn reseal(conn: &mut PgConnection, id: TaskId, blob: &[u8]) -> Result<()> {
    sqlx::query("UPDATE tasks SET secrets = $2 WHERE id = $1").bind(id).bind(blob).execute(conn).await?;
    Ok(())
}
