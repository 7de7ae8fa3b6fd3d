//! Snapshot queries and their answer parts (tables `queries`, `query_parts`).

use std::collections::HashMap;

use cairn_api::{ids::ConnectorId, names::ProjectId};
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, types::Json};
use uuid::Uuid;

use crate::error::Result;

/// A query to insert.
pub struct New<'a> {
    pub id: Uuid,
    pub project_id: &'a ProjectId,
    pub store_id: ConnectorId,
    pub selector: &'a HashMap<String, String>,
    pub request: Vec<u8>,
    pub now: DateTime<Utc>,
    pub expire_time: DateTime<Utc>,
}

/// A query a worker took.
#[derive(sqlx::FromRow)]
pub struct Taken {
    pub id: Uuid,
    pub project_id: ProjectId,
    pub store_id: ConnectorId,
    pub request: Vec<u8>,
    pub expire_time: DateTime<Utc>,
}

pub async fn insert(conn: &mut PgConnection, q: &New<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO queries (id, project_id, store_id, selector, request, create_time, expire_time)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(q.id)
    .bind(q.project_id)
    .bind(q.store_id)
    .bind(Json(q.selector))
    .bind(&q.request)
    .bind(q.now)
    .bind(q.expire_time)
    .execute(conn)
    .await?;
    Ok(())
}

/// Open, unexpired queries whose selector the labels satisfy, of the worker's projects (empty
/// = all), oldest first, locked (others' locks skipped).
pub async fn claim(
    conn: &mut PgConnection,
    labels: &HashMap<String, String>,
    projects: &[ProjectId],
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Uuid>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM queries
         WHERE worker_id IS NULL AND expire_time > $1 AND selector <@ $2
           AND (cardinality($4::text[]) = 0 OR project_id = ANY($4))
         ORDER BY create_time LIMIT $3 FOR UPDATE SKIP LOCKED",
    )
    .bind(now)
    .bind(Json(labels))
    .bind(limit)
    .bind(projects)
    .fetch_all(conn)
    .await?)
}

/// Gives a claimed query to a worker with its token's hash.
pub async fn take(
    conn: &mut PgConnection,
    id: Uuid,
    worker: &str,
    token_hash: &[u8],
    now: DateTime<Utc>,
) -> Result<Taken> {
    Ok(sqlx::query_as(
        "UPDATE queries SET worker_id = $2, token_hash = $3, taken_time = $4 WHERE id = $1
         RETURNING id, project_id, store_id, request, expire_time",
    )
    .bind(id)
    .bind(worker)
    .bind(token_hash)
    .bind(now)
    .fetch_one(conn)
    .await?)
}

/// Stores one answer part of a query held with this token (`None` = not checked). Returns
/// false when no such query is held (gone, or another token); a repeated part is kept once.
pub async fn add_part(
    conn: &mut PgConnection,
    id: Uuid,
    token_hash: Option<&[u8]>,
    seq: i32,
    part: &[u8],
) -> Result<bool> {
    let held: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM queries WHERE id = $1 AND worker_id IS NOT NULL
                         AND ($2::bytea IS NULL OR token_hash = $2))",
    )
    .bind(id)
    .bind(token_hash)
    .fetch_one(&mut *conn)
    .await?;
    if held {
        sqlx::query(
            "INSERT INTO query_parts (query_id, seq, part) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(seq)
        .bind(part)
        .execute(conn)
        .await?;
    }
    Ok(held)
}

/// Parts stored and not yet read.
pub async fn unread(conn: &mut PgConnection, id: Uuid) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM query_parts WHERE query_id = $1")
        .bind(id)
        .fetch_one(conn)
        .await?)
}

/// Whether the query still exists.
pub async fn exists(conn: &mut PgConnection, id: Uuid) -> Result<bool> {
    Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM queries WHERE id = $1)")
        .bind(id)
        .fetch_one(conn)
        .await?)
}

/// Reads and deletes the parts from `seq` on, in order (at most `limit`).
pub async fn read_parts(
    conn: &mut PgConnection,
    id: Uuid,
    seq: i32,
    limit: i64,
) -> Result<Vec<(i32, Vec<u8>)>> {
    Ok(sqlx::query_as(
        "DELETE FROM query_parts WHERE query_id = $1 AND seq IN
           (SELECT seq FROM query_parts WHERE query_id = $1 AND seq >= $2 ORDER BY seq LIMIT $3)
         RETURNING seq, part",
    )
    .bind(id)
    .bind(seq)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Forgets a query and its parts.
pub async fn delete(conn: &mut PgConnection, id: Uuid) -> Result<()> {
    sqlx::query("DELETE FROM queries WHERE id = $1").bind(id).execute(conn).await?;
    Ok(())
}

/// Forgets queries that expired before `before` (their askers are gone).
pub async fn purge_expired(conn: &mut PgConnection, before: DateTime<Utc>) -> Result<u64> {
    Ok(sqlx::query("DELETE FROM queries WHERE expire_time < $1")
        .bind(before)
        .execute(conn)
        .await?
        .rows_affected())
}

/// Forgets the queries of a project.
pub async fn delete_of_project(conn: &mut PgConnection, project: &ProjectId) -> Result<u64> {
    Ok(sqlx::query("DELETE FROM queries WHERE project_id = $1")
        .bind(project)
        .execute(conn)
        .await?
        .rows_affected())
}
