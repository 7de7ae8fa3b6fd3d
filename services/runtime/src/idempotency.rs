//! Idempotent mutations (AIP-155): a mutating call that carries a `request_id` records its
//! answer in the service's `request_ids` table inside its own transaction, so a retry with the
//! same id (a client that lost the answer) gets the first answer back instead of doing the
//! work twice. The same semantics for every mutating RPC of every service:
//!
//! - first call: [`claim`] inserts the id (a concurrent retry blocks on it until the first
//!   transaction ends), the call does its work, [`record`] stores the answer, commit;
//! - a retry after the first committed: [`claim`] returns the stored answer;
//! - a retry after the first failed (rolled back): nothing was stored, the retry does the work;
//! - the same id for another method, caller or resource: INVALID_ARGUMENT on `request_id`.
//!
//! Ids are kept for [`KEEP`]; `purge` forgets older ones. Answers are the response messages,
//! never holding secrets (RPCs that return a secret do not take a request id).

use prost::Message;
use sqlx::PgConnection;
use tonic::Status;
use uuid::Uuid;

use crate::{auth::Caller, status};

/// How long a request id is remembered.
pub const KEEP: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// What a claimed request id says.
#[derive(Debug)]
pub enum Claim<T> {
    /// First use: do the work, then [`record`] the answer.
    New(Uuid),
    /// A retry of a call that was done: its answer.
    Done(T),
    /// No request id was given.
    None,
}

/// Parses a request's `request_id` (empty = none); INVALID_ARGUMENT names the field.
pub fn parse(raw: &str) -> Result<Option<Uuid>, Status> {
    match raw.trim() {
        "" => Ok(None),
        s => Uuid::parse_str(s)
            .map(Some)
            .map_err(|_| status::invalid("request_id", format!("{s:?} is not a UUID"))),
    }
}

/// Claims the request's `request_id` (`raw`) for this call — the caller's method and
/// principal, on `resource` — within the caller's transaction; see the module documentation.
/// Call it after the call's own input checks and before its work (a delete claims before it
/// looks the resource up, so a retry after the delete gets the first answer, not NOT_FOUND).
pub async fn claim<T: Message + Default>(
    conn: &mut PgConnection,
    caller: &Caller,
    raw: &str,
    resource: &str,
) -> Result<Claim<T>, Status> {
    caller.request_id(raw);
    let Some(id) = parse(raw)? else { return Ok(Claim::None) };
    let method = caller.method();
    let principal = caller.principal().name();
    let claimed: Option<bool> = sqlx::query_scalar(
        "INSERT INTO request_ids (request_id, method, principal, resource, create_time)
         VALUES ($1, $2, $3, $4, now())
         ON CONFLICT (request_id) DO NOTHING RETURNING true",
    )
    .bind(id)
    .bind(method)
    .bind(principal)
    .bind(resource)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    if claimed.is_some() {
        return Ok(Claim::New(id));
    }
    let (m, p, r, answer): (String, String, String, Option<Vec<u8>>) =
        sqlx::query_as("SELECT method, principal, resource, response FROM request_ids WHERE request_id = $1")
            .bind(id)
            .fetch_one(&mut *conn)
            .await
            .map_err(db)?;
    if m != method || p != principal || r != resource {
        return Err(status::invalid(
            "request_id",
            format!("{id} was used for another call; use a new request_id for each call"),
        ));
    }
    let answer = answer.ok_or_else(|| status::unavailable("the first call with this request_id"))?;
    T::decode(answer.as_slice()).map(Claim::Done).map_err(|_| status::internal())
}

/// For calls whose work spans more than one transaction (DeleteProject asks the scheduler
/// first; TestConnector runs a job): the answer of an earlier call with this request id, if
/// there is one, without claiming it. The call still [`claim`]s in its final transaction, so a
/// concurrent duplicate may repeat the first steps but records one answer.
pub async fn answered<T: Message + Default>(
    pool: &sqlx::PgPool,
    caller: &Caller,
    raw: &str,
    resource: &str,
) -> Result<Claim<T>, Status> {
    if parse(raw)?.is_none() {
        return Ok(Claim::None);
    }
    let mut tx = pool.begin().await.map_err(db)?;
    let found = claim(&mut tx, caller, raw, resource).await;
    drop(tx); // rolls the claim back: only a stored answer counts here
    match found {
        Ok(Claim::New(_)) => Ok(Claim::None),
        other => other,
    }
}

/// Stores the answer of a claimed call (in the same transaction as its work).
pub async fn record<T: Message>(conn: &mut PgConnection, claim: &Claim<T>, answer: &T) -> Result<(), Status> {
    let Claim::New(id) = claim else { return Ok(()) };
    sqlx::query("UPDATE request_ids SET response = $2 WHERE request_id = $1")
        .bind(id)
        .bind(answer.encode_to_vec())
        .execute(conn)
        .await
        .map_err(db)?;
    Ok(())
}

/// Forgets request ids older than [`KEEP`].
pub async fn purge(conn: &mut PgConnection) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM request_ids WHERE create_time < now() - $1::interval")
        .bind(format!("{} seconds", KEEP.as_secs()))
        .execute(conn)
        .await?
        .rows_affected())
}

/// Forgets old request ids every hour until `shutdown` (each service runs one).
pub async fn purge_loop(pool: sqlx::PgPool, shutdown: crate::CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(3600)) => {}
        }
        let Ok(mut conn) = pool.acquire().await else { continue };
        if let Err(e) = purge(&mut conn).await {
            tracing::warn!(error = %e, "purging old request ids failed");
        }
    }
}

fn db(e: sqlx::Error) -> Status {
    tracing::warn!(error = %e, "request id store failed");
    if crate::db::classify(&e) == crate::db::DbErrorKind::Unavailable {
        status::unavailable("the database")
    } else {
        status::internal()
    }
}
