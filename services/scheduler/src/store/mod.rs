//! SQL of the scheduler (schema `scheduler`). Functions take `&mut PgConnection` so callers
//! choose the transaction; every time comparison uses a `now` passed in from the scheduler's
//! clock, never `now()` of one statement, so one decision sees one instant.

pub mod jobs;
pub mod logs;
pub mod notifications;
pub mod protection;
pub mod queries;
pub mod schedules;
pub mod snapshots;

use crate::error::{Error, Result};

/// Queues a LISTEN/NOTIFY notification, delivered when the surrounding transaction commits.
pub async fn notify(conn: &mut sqlx::PgConnection, channel: &str, payload: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)").bind(channel).bind(payload).execute(conn).await?;
    Ok(())
}

/// Postgres' own clock (the scheduler's clock measures its offset to it).
pub async fn clock_timestamp(pool: &sqlx::PgPool) -> Result<chrono::DateTime<chrono::Utc>, sqlx::Error> {
    sqlx::query_scalar("SELECT clock_timestamp()").fetch_one(pool).await
}

/// Stored proto3 JSON → message.
pub fn decode<M: prost::Message + prost::Name + Default>(value: &serde_json::Value) -> Result<M> {
    cairn_api::json::from_json(&value.to_string()).map_err(|e| Error::Internal(format!("stored record: {e}")))
}

/// Message → proto3 JSON for storage.
pub fn encode<M: prost::Message + prost::Name>(msg: &M) -> Result<serde_json::Value> {
    cairn_api::json::to_json(msg).map_err(|e| Error::Internal(format!("encoding record: {e}")))
}

/// The etag of a version.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// Checks a client etag against the stored version (empty = no check).
pub fn check_etag(given: &str, version: i64, what: &str) -> Result<()> {
    if given.is_empty() || given == etag(version) { Ok(()) } else { Err(Error::Etag(what.to_owned())) }
}

/// Takes transaction-scoped advisory locks on tasks (to serialise overlap decisions and
/// serial leasing across replicas), in one order so that two callers cannot deadlock.
pub async fn lock_tasks(
    conn: &mut sqlx::PgConnection,
    namespace: i32,
    ids: &[cairn_api::ids::TaskId],
) -> Result<()> {
    let mut keys: Vec<i32> = ids
        .iter()
        .map(|id| {
            let id = id.uuid();
            let b = id.as_bytes();
            i32::from_be_bytes([
                b[0] ^ b[4] ^ b[8] ^ b[12],
                b[1] ^ b[5] ^ b[9] ^ b[13],
                b[2] ^ b[6] ^ b[10] ^ b[14],
                b[3] ^ b[7] ^ b[11] ^ b[15],
            ])
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    if keys.is_empty() {
        return Ok(());
    }
    // The subquery's order is the order the locks are taken in.
    sqlx::query(
        "SELECT count(pg_advisory_xact_lock($1, k)) FROM (SELECT unnest($2::int4[]) AS k ORDER BY k) s",
    )
    .bind(namespace)
    .bind(&keys)
    .execute(conn)
    .await?;
    Ok(())
}

/// Advisory lock namespace of tasks (job creation: overlap decisions).
pub const LOCK_TASK: i32 = 0x6361_0001;
/// Advisory lock namespace of serial tasks while leasing, taken after the store locks. Not
/// [`LOCK_TASK`]: job creation takes that one before touching store rows, the opposite order.
pub const LOCK_SERIAL: i32 = 0x6361_0002;
