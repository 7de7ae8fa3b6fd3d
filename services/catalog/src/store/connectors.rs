//! `catalog.connectors`. Every statement but start-up re-sealing names the project, so a
//! lookup can never find another project's connector.

use std::collections::{BTreeSet, HashMap};

use cairn_api::{
    ids::{ConnectorId, TaskId},
    names::{ProjectId, Reference},
};
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, types::Json};
use uuid::Uuid;

use crate::error::Result;

/// A stored connector.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Row {
    /// Project.
    pub project_id: ProjectId,
    /// Id.
    pub id: ConnectorId,
    /// Display name.
    pub display_name: String,
    /// Role name (`STORE`).
    pub role: String,
    /// Sanitised message.
    pub spec: serde_json::Value,
    /// Worker selector.
    pub worker_selector: Json<HashMap<String, String>>,
    /// Sealed secrets.
    pub secrets: Option<Vec<u8>>,
    /// Names of the sealed secrets.
    pub secret_names: Vec<String>,
    /// Last connection test (proto3 JSON of ConnectionTest).
    pub last_test: Option<serde_json::Value>,
    /// Version (etag).
    pub version: i64,
    /// Created.
    pub create_time: DateTime<Utc>,
    /// Updated.
    pub update_time: DateTime<Utc>,
}

impl Row {
    /// The set of stored secret names.
    pub fn secret_set(&self) -> BTreeSet<String> {
        self.secret_names.iter().cloned().collect()
    }
}

const COLUMNS: &str = "project_id, id, display_name, role, spec, worker_selector, secrets, secret_names, last_test, version, \
                       create_time, update_time";

/// What to write.
#[derive(Debug)]
pub struct Write<'a> {
    /// Project.
    pub project_id: &'a ProjectId,
    /// Id.
    pub id: ConnectorId,
    /// Display name.
    pub display_name: &'a str,
    /// Role name.
    pub role: &'a str,
    /// Type name.
    pub type_name: &'a str,
    /// Sanitised message.
    pub spec: serde_json::Value,
    /// Worker selector.
    pub worker_selector: &'a HashMap<String, String>,
    /// Sealed secrets.
    pub secrets: Option<Vec<u8>>,
    /// Their names.
    pub secret_names: Vec<String>,
}

/// Inserts a connector.
pub async fn insert(conn: &mut PgConnection, w: &Write<'_>, request_id: Option<Uuid>) -> Result<Row> {
    let sql = format!(
        "INSERT INTO connectors (id, display_name, role, type, spec, worker_selector, secrets, secret_names, request_id,
                                 project_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {COLUMNS}"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(w.id)
        .bind(w.display_name)
        .bind(w.role)
        .bind(w.type_name)
        .bind(&w.spec)
        .bind(Json(w.worker_selector))
        .bind(&w.secrets)
        .bind(&w.secret_names)
        .bind(request_id)
        .bind(w.project_id)
        .fetch_one(conn)
        .await?)
}

/// Replaces a connector's record, bumping its version.
pub async fn update(conn: &mut PgConnection, w: &Write<'_>) -> Result<Row> {
    let sql = format!(
        "UPDATE connectors SET display_name = $2, spec = $3, worker_selector = $4, secrets = $5, secret_names = $6,
                version = version + 1, update_time = now()
         WHERE id = $1 AND project_id = $7 RETURNING {COLUMNS}"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(w.id)
        .bind(w.display_name)
        .bind(&w.spec)
        .bind(Json(w.worker_selector))
        .bind(&w.secrets)
        .bind(&w.secret_names)
        .bind(w.project_id)
        .fetch_one(conn)
        .await?)
}

/// Finds a connector of a project by id or display name; `lock` takes a row lock for an update.
pub async fn find(
    conn: &mut PgConnection,
    project: &ProjectId,
    r: &Reference,
    lock: bool,
) -> Result<Option<Row>> {
    let suffix = if lock { " FOR UPDATE" } else { "" };
    let q = match r {
        Reference::Id(id) => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM connectors WHERE project_id = $1 AND id = $2{suffix}"
        )))
        .bind(project)
        .bind(*id),
        Reference::DisplayName(n) => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM connectors WHERE project_id = $1 AND display_name = $2{suffix}"
        )))
        .bind(project)
        .bind(n.clone()),
    };
    Ok(q.fetch_optional(conn).await?)
}

/// Connectors of a project by id (any order).
pub async fn by_ids(conn: &mut PgConnection, project: &ProjectId, ids: &[ConnectorId]) -> Result<Vec<Row>> {
    let sql = format!("SELECT {COLUMNS} FROM connectors WHERE project_id = $1 AND id = ANY($2)");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(project).bind(ids).fetch_all(conn).await?)
}

/// The connector a project created with a request id, if any.
pub async fn by_request_id(
    conn: &mut PgConnection,
    project: &ProjectId,
    request_id: Uuid,
) -> Result<Option<Row>> {
    let sql = format!("SELECT {COLUMNS} FROM connectors WHERE project_id = $1 AND request_id = $2");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(project).bind(request_id).fetch_optional(conn).await?)
}

/// List filters.
#[derive(Debug, Default, Hash)]
pub struct Filter {
    /// Role name.
    pub role: Option<String>,
    /// Type name.
    pub type_name: Option<String>,
    /// Selector key.
    pub selector_key: Option<String>,
    /// Selector value (with the key).
    pub selector_value: Option<String>,
}

/// One page, by id (creation order), of one project or (`None`) every project.
pub async fn list(
    conn: &mut PgConnection,
    project: Option<&[ProjectId]>,
    f: &Filter,
    after: Option<ConnectorId>,
    limit: i64,
) -> Result<Vec<Row>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM connectors
         WHERE ($1::uuid IS NULL OR id > $1)
           AND ($7::text[] IS NULL OR project_id = ANY($7))
           AND ($2::text IS NULL OR role = $2)
           AND ($3::text IS NULL OR type = $3)
           AND ($4::text IS NULL OR worker_selector ? $4)
           AND ($5::text IS NULL OR worker_selector ->> $4 = $5)
         ORDER BY id LIMIT $6"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(after)
        .bind(&f.role)
        .bind(&f.type_name)
        .bind(&f.selector_key)
        .bind(&f.selector_value)
        .bind(limit)
        .bind(project)
        .fetch_all(conn)
        .await?)
}

/// A task that uses a connector.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    /// Task id.
    pub id: TaskId,
    /// Task display name.
    pub display_name: String,
}

/// Tasks using a connector in any role (always of the connector's own project).
pub async fn tasks_using(conn: &mut PgConnection, project: &ProjectId, id: ConnectorId) -> Result<Vec<User>> {
    Ok(sqlx::query_as(
        "SELECT id, display_name FROM tasks
         WHERE project_id = $1 AND (source_id = $2 OR store_id = $2 OR destination_id = $2 OR target_store_id = $2)
         ORDER BY display_name",
    )
    .bind(project)
    .bind(id)
    .fetch_all(conn)
    .await?)
}

/// Deletes a connector.
pub async fn delete(conn: &mut PgConnection, project: &ProjectId, id: ConnectorId) -> Result<bool> {
    Ok(sqlx::query("DELETE FROM connectors WHERE project_id = $1 AND id = $2")
        .bind(project)
        .bind(id)
        .execute(conn)
        .await?
        .rows_affected()
        == 1)
}

/// Records a connection test verdict.
pub async fn set_last_test(
    conn: &mut PgConnection,
    project: &ProjectId,
    id: ConnectorId,
    test: &serde_json::Value,
) -> Result<bool> {
    Ok(sqlx::query("UPDATE connectors SET last_test = $3 WHERE project_id = $1 AND id = $2")
        .bind(project)
        .bind(id)
        .bind(test)
        .execute(conn)
        .await?
        .rows_affected()
        == 1)
}

/// Rows sealed by a key other than `current` (for re-sealing after rotation): all rows with
/// secrets; the caller skips those already current.
pub async fn with_secrets(conn: &mut PgConnection) -> Result<Vec<super::Sealed<ConnectorId>>> {
    Ok(sqlx::query_as("SELECT id, secrets FROM connectors WHERE secrets IS NOT NULL").fetch_all(conn).await?)
}

/// Replaces a row's sealed secrets without changing its version.
pub async fn reseal(conn: &mut PgConnection, id: ConnectorId, blob: &[u8]) -> Result<()> {
    sqlx::query("UPDATE connectors SET secrets = $2 WHERE id = $1").bind(id).bind(blob).execute(conn).await?;
    Ok(())
}
