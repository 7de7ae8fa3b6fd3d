//! The audit log: append-only events, one table `audit_events` in each service's schema
//! (same shape; the catalog's AuditService merges the scheduler's in). Writers never put a
//! secret in an event: the fields are names, codes and sentences written by Cairn itself.

use cairn_api::v1;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::Principal;
use crate::time::{from_timestamp, to_timestamp};

/// One event before it is written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditRecord {
    /// `users/alice`; empty when unauthenticated.
    pub principal: String,
    /// How the caller authenticated.
    pub auth_method: String,
    /// `credentials/{id}`.
    pub token_id: String,
    /// The project id, if any.
    pub project: Option<String>,
    /// Full gRPC method.
    pub method: String,
    /// The resource, if known.
    pub resource: String,
    /// Allowed (true) or denied.
    pub allowed: bool,
    /// Outcome code name (`OK`, `PERMISSION_DENIED`).
    pub code: String,
    /// The request's `request_id`.
    pub request_id: String,
    /// A sentence for people.
    pub detail: String,
}

impl AuditRecord {
    /// An event by `principal` (or nobody) on `method`.
    pub fn by(principal: Option<&Principal>, method: &str) -> AuditRecord {
        AuditRecord {
            principal: principal.map(|p| p.0.name.clone()).unwrap_or_default(),
            auth_method: principal.map(|p| p.0.auth_method.clone()).unwrap_or_default(),
            token_id: principal.map(|p| p.0.token_id.clone()).unwrap_or_default(),
            method: method.to_owned(),
            ..Default::default()
        }
    }
}

/// Where a service writes its events.
#[tonic::async_trait]
pub trait AuditSink: Send + Sync + 'static {
    /// Writes events; a failure is logged (the call it describes has already happened).
    async fn record(&self, events: Vec<AuditRecord>);
}

/// The sink of a service: its own `audit_events` table.
#[derive(Debug, Clone)]
pub struct PgAudit {
    pool: PgPool,
    service: &'static str,
}

impl PgAudit {
    /// Writes to `pool` (whose search_path is the service's schema).
    pub fn new(pool: PgPool, service: &'static str) -> PgAudit {
        PgAudit { pool, service }
    }

    /// Writes events inside the caller's transaction.
    pub async fn insert(
        conn: &mut PgConnection,
        service: &str,
        events: &[AuditRecord],
    ) -> Result<(), sqlx::Error> {
        if events.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = events.iter().map(|_| Uuid::now_v7()).collect();
        let col = |f: fn(&AuditRecord) -> String| events.iter().map(f).collect::<Vec<String>>();
        sqlx::query(
            "INSERT INTO audit_events (id, time, service, principal, auth_method, token_id, project_id, method,
                                       resource, allowed, code, request_id, detail)
             SELECT id, clock_timestamp(), $2, principal, auth_method, token_id, NULLIF(project_id, ''), method,
                    resource, allowed, code, request_id, detail
               FROM UNNEST($1::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                           $9::bool[], $10::text[], $11::text[], $12::text[])
                 AS e(id, principal, auth_method, token_id, project_id, method, resource, allowed, code,
                      request_id, detail)",
        )
        .bind(&ids)
        .bind(service)
        .bind(col(|e| e.principal.clone()))
        .bind(col(|e| e.auth_method.clone()))
        .bind(col(|e| e.token_id.clone()))
        .bind(col(|e| e.project.clone().unwrap_or_default()))
        .bind(col(|e| e.method.clone()))
        .bind(col(|e| e.resource.clone()))
        .bind(events.iter().map(|e| e.allowed).collect::<Vec<bool>>())
        .bind(col(|e| e.code.clone()))
        .bind(col(|e| e.request_id.clone()))
        .bind(col(|e| e.detail.clone()))
        .execute(conn)
        .await
        .map(|_| ())
    }
}

#[tonic::async_trait]
impl AuditSink for PgAudit {
    async fn record(&self, events: Vec<AuditRecord>) {
        let res = async {
            let mut conn = self.pool.acquire().await?;
            PgAudit::insert(&mut conn, self.service, &events).await
        }
        .await;
        if let Err(e) = res {
            tracing::error!(error = %e, events = events.len(), "audit events could not be written");
        }
    }
}

/// What ListAuditEvents asks for (parsed and authorised).
#[derive(Debug, Clone, Default, Hash)]
pub struct Filter {
    /// Only these projects; `None` = every event, including those of no project.
    pub projects: Option<Vec<String>>,
    /// Only this principal.
    pub principal: Option<String>,
    /// Full method or its last part.
    pub method: Option<String>,
    /// Only allowed (true) or denied (false).
    pub allowed: Option<bool>,
    /// At or after.
    pub start: Option<DateTime<Utc>>,
    /// Before.
    pub end: Option<DateTime<Utc>>,
}

/// Position in the newest-first order: the last event of the previous page.
pub type Cursor = (DateTime<Utc>, Uuid);

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    time: DateTime<Utc>,
    service: String,
    principal: String,
    auth_method: String,
    token_id: String,
    project_id: Option<String>,
    method: String,
    resource: String,
    allowed: bool,
    code: String,
    request_id: String,
    detail: String,
}

/// An event with its position.
#[derive(Debug, Clone)]
pub struct Listed {
    /// Position.
    pub cursor: Cursor,
    /// The event.
    pub event: v1::AuditEvent,
}

/// Up to `limit` events after `cursor`, newest first.
pub async fn list(
    conn: &mut PgConnection,
    f: &Filter,
    cursor: Option<Cursor>,
    limit: i64,
) -> Result<Vec<Listed>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, time, service, principal, auth_method, token_id, project_id, method, resource, allowed, code,
                request_id, detail
           FROM audit_events
          WHERE ($1::text[] IS NULL OR project_id = ANY($1))
            AND ($2::text IS NULL OR principal = $2)
            AND ($3::text IS NULL OR method = $3 OR method LIKE '%/' || $3)
            AND ($4::bool IS NULL OR allowed = $4)
            AND ($5::timestamptz IS NULL OR time >= $5)
            AND ($6::timestamptz IS NULL OR time < $6)
            AND ($7::timestamptz IS NULL OR (time, id) < ($7, $8))
          ORDER BY time DESC, id DESC
          LIMIT $9",
    )
    .bind(&f.projects)
    .bind(&f.principal)
    .bind(&f.method)
    .bind(f.allowed)
    .bind(f.start)
    .bind(f.end)
    .bind(cursor.map(|c| c.0))
    .bind(cursor.map(|c| c.1))
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(to_listed).collect())
}

fn to_listed(r: Row) -> Listed {
    let decision = if r.allowed { v1::Decision::Allow } else { v1::Decision::Deny };
    Listed {
        cursor: (r.time, r.id),
        event: v1::AuditEvent {
            name: format!("auditEvents/{}", r.id),
            time: Some(to_timestamp(r.time)),
            principal: r.principal,
            auth_method: r.auth_method,
            token_id: r.token_id,
            project: r.project_id.map(|p| format!("projects/{p}")).unwrap_or_default(),
            method: r.method,
            resource: r.resource,
            decision: decision as i32,
            code: r.code,
            request_id: r.request_id,
            detail: r.detail,
            service: r.service,
        },
    }
}

impl Filter {
    /// The internal query of this filter after `cursor` (the catalog → the scheduler).
    pub fn to_query(&self, cursor: Option<Cursor>, limit: i64) -> v1::AuditQuery {
        v1::AuditQuery {
            projects: self.projects.clone().unwrap_or_default(),
            all_projects: self.projects.is_none(),
            principal: self.principal.clone().unwrap_or_default(),
            method: self.method.clone().unwrap_or_default(),
            decision: match self.allowed {
                None => v1::Decision::Unspecified,
                Some(true) => v1::Decision::Allow,
                Some(false) => v1::Decision::Deny,
            } as i32,
            start_time: self.start.map(to_timestamp),
            end_time: self.end.map(to_timestamp),
            after_time: cursor.map(|c| to_timestamp(c.0)),
            after_id: cursor.map(|c| c.1.to_string()).unwrap_or_default(),
            limit: i32::try_from(limit).unwrap_or(i32::MAX),
        }
    }

    /// The filter and cursor of an internal query (`None` cursor when absent or malformed).
    pub fn from_query(q: &v1::AuditQuery) -> (Filter, Option<Cursor>, i64) {
        let nonempty = |s: &str| Some(s.to_owned()).filter(|s| !s.is_empty());
        let f = Filter {
            projects: if q.all_projects { None } else { Some(q.projects.clone()) },
            principal: nonempty(&q.principal),
            method: nonempty(&q.method),
            allowed: match v1::Decision::try_from(q.decision) {
                Ok(v1::Decision::Allow) => Some(true),
                Ok(v1::Decision::Deny) => Some(false),
                _ => None,
            },
            start: q.start_time.as_ref().and_then(from_timestamp),
            end: q.end_time.as_ref().and_then(from_timestamp),
        };
        let cursor = q.after_time.as_ref().and_then(from_timestamp).zip(Uuid::parse_str(&q.after_id).ok());
        (f, cursor, i64::from(q.limit.clamp(1, 1001)))
    }
}

/// The position of a listed event (from its name and time).
pub fn cursor_of(e: &v1::AuditEvent) -> Option<Cursor> {
    let id = e.name.strip_prefix("auditEvents/").and_then(|s| Uuid::parse_str(s).ok())?;
    Some((e.time.as_ref().and_then(from_timestamp)?, id))
}
