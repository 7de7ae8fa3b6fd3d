//! SQL of identities: users, members, service accounts, worker pools and credentials
//! (ADR 0009). Credentials are found by the SHA-256 of their secret; nothing here ever sees a
//! secret in clear.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, types::Json};
use std::collections::BTreeMap;
use uuid::Uuid;

use crate::error::Result;

/// A stored user.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    /// Id.
    pub id: String,
    /// Display name.
    pub display_name: String,
    /// argon2id PHC string.
    pub password_hash: Option<String>,
    /// Platform admin.
    pub platform_admin: bool,
    /// Disabled.
    pub disabled: bool,
    /// Failed logins in a row.
    pub failed_logins: i32,
    /// Next attempt not before.
    pub locked_until: Option<DateTime<Utc>>,
    /// Created.
    pub create_time: DateTime<Utc>,
    /// Changed.
    pub update_time: DateTime<Utc>,
}

const USER: &str = "id, display_name, password_hash, platform_admin, disabled, failed_logins, locked_until, \
                    create_time, update_time";

/// How many users exist.
pub async fn user_count(conn: &mut PgConnection) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(conn).await?)
}

/// Inserts a user.
pub async fn insert_user(
    conn: &mut PgConnection,
    id: &str,
    display_name: &str,
    password_hash: Option<&str>,
    platform_admin: bool,
) -> Result<User> {
    let sql = format!(
        "INSERT INTO users (id, display_name, password_hash, platform_admin) VALUES ($1, $2, $3, $4) RETURNING {USER}"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(display_name)
        .bind(password_hash)
        .bind(platform_admin)
        .fetch_one(conn)
        .await?)
}

/// A user; `lock` takes a row lock.
pub async fn user(conn: &mut PgConnection, id: &str, lock: bool) -> Result<Option<User>> {
    let suffix = if lock { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT {USER} FROM users WHERE id = $1{suffix}");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(conn).await?)
}

/// One page of users by id.
pub async fn users(conn: &mut PgConnection, after: Option<&str>, limit: i64) -> Result<Vec<User>> {
    let sql = format!("SELECT {USER} FROM users WHERE ($1::text IS NULL OR id > $1) ORDER BY id LIMIT $2");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(after).bind(limit).fetch_all(conn).await?)
}

/// Writes a user's flags.
pub async fn update_user(
    conn: &mut PgConnection,
    id: &str,
    display_name: &str,
    platform_admin: bool,
    disabled: bool,
) -> Result<User> {
    let sql = format!(
        "UPDATE users SET display_name = $2, platform_admin = $3, disabled = $4, update_time = now()
          WHERE id = $1 RETURNING {USER}"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(display_name)
        .bind(platform_admin)
        .bind(disabled)
        .fetch_one(conn)
        .await?)
}

/// Sets a password hash and clears failed attempts.
pub async fn set_password(conn: &mut PgConnection, id: &str, hash: &str) -> Result<bool> {
    let n = sqlx::query(
        "UPDATE users SET password_hash = $2, failed_logins = 0, locked_until = NULL, update_time = now()
          WHERE id = $1",
    )
    .bind(id)
    .bind(hash)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Records a failed login: the count grows and the next attempt waits `delay`.
pub async fn login_failed(conn: &mut PgConnection, id: &str, delay_after: fn(i32) -> f64) -> Result<()> {
    let n: i32 = sqlx::query_scalar(
        "UPDATE users SET failed_logins = failed_logins + 1 WHERE id = $1 RETURNING failed_logins",
    )
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query("UPDATE users SET locked_until = now() + make_interval(secs => $2) WHERE id = $1")
        .bind(id)
        .bind(delay_after(n))
        .execute(conn)
        .await?;
    Ok(())
}

/// Clears failed attempts after a good login.
pub async fn login_ok(conn: &mut PgConnection, id: &str) -> Result<()> {
    sqlx::query(
        "UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = $1 AND failed_logins > 0",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes a user (memberships and credentials go with it).
pub async fn delete_user(conn: &mut PgConnection, id: &str) -> Result<bool> {
    Ok(sqlx::query("DELETE FROM users WHERE id = $1").bind(id).execute(conn).await?.rows_affected() == 1)
}

/// Enabled platform admins other than `except`.
pub async fn other_admins(conn: &mut PgConnection, except: &str) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM users WHERE platform_admin AND NOT disabled AND id <> $1")
        .bind(except)
        .fetch_one(conn)
        .await?)
}

/// A user's roles by project.
pub async fn roles(conn: &mut PgConnection, user: &str) -> Result<BTreeMap<String, String>> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT project_id, role FROM members WHERE user_id = $1")
            .bind(user)
            .fetch_all(conn)
            .await?;
    Ok(rows.into_iter().collect())
}

/// A member row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Member {
    /// Project.
    pub project_id: String,
    /// User.
    pub user_id: String,
    /// Role word.
    pub role: String,
}

/// Sets a member's role.
pub async fn set_member(conn: &mut PgConnection, project: &str, user: &str, role: &str) -> Result<Member> {
    Ok(sqlx::query_as(
        "INSERT INTO members (project_id, user_id, role) VALUES ($1, $2, $3)
         ON CONFLICT (project_id, user_id) DO UPDATE SET role = EXCLUDED.role
         RETURNING project_id, user_id, role",
    )
    .bind(project)
    .bind(user)
    .bind(role)
    .fetch_one(conn)
    .await?)
}

/// One page of a project's members.
pub async fn members(
    conn: &mut PgConnection,
    project: &str,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Member>> {
    Ok(sqlx::query_as(
        "SELECT project_id, user_id, role FROM members
          WHERE project_id = $1 AND ($2::text IS NULL OR user_id > $2) ORDER BY user_id LIMIT $3",
    )
    .bind(project)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Removes a member.
pub async fn delete_member(conn: &mut PgConnection, project: &str, user: &str) -> Result<bool> {
    Ok(sqlx::query("DELETE FROM members WHERE project_id = $1 AND user_id = $2")
        .bind(project)
        .bind(user)
        .execute(conn)
        .await?
        .rows_affected()
        == 1)
}

/// A service account row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ServiceAccount {
    /// Project.
    pub project_id: String,
    /// Id.
    pub id: String,
    /// Display name.
    pub display_name: String,
    /// Role word.
    pub role: String,
    /// Created.
    pub create_time: DateTime<Utc>,
}

/// Inserts a service account.
pub async fn insert_service_account(
    conn: &mut PgConnection,
    project: &str,
    id: &str,
    display_name: &str,
    role: &str,
) -> Result<ServiceAccount> {
    Ok(sqlx::query_as(
        "INSERT INTO service_accounts (project_id, id, display_name, role) VALUES ($1, $2, $3, $4)
         RETURNING project_id, id, display_name, role, create_time",
    )
    .bind(project)
    .bind(id)
    .bind(display_name)
    .bind(role)
    .fetch_one(conn)
    .await?)
}

/// A service account.
pub async fn service_account(
    conn: &mut PgConnection,
    project: &str,
    id: &str,
) -> Result<Option<ServiceAccount>> {
    Ok(sqlx::query_as(
        "SELECT project_id, id, display_name, role, create_time FROM service_accounts WHERE project_id = $1 AND id = $2",
    )
    .bind(project)
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

/// One page of a project's service accounts.
pub async fn service_accounts(
    conn: &mut PgConnection,
    project: &str,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<ServiceAccount>> {
    Ok(sqlx::query_as(
        "SELECT project_id, id, display_name, role, create_time FROM service_accounts
          WHERE project_id = $1 AND ($2::text IS NULL OR id > $2) ORDER BY id LIMIT $3",
    )
    .bind(project)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Deletes a service account (its tokens go with it).
pub async fn delete_service_account(conn: &mut PgConnection, project: &str, id: &str) -> Result<bool> {
    Ok(sqlx::query("DELETE FROM service_accounts WHERE project_id = $1 AND id = $2")
        .bind(project)
        .bind(id)
        .execute(conn)
        .await?
        .rows_affected()
        == 1)
}

/// A worker pool row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WorkerPool {
    /// Id.
    pub id: String,
    /// Display name.
    pub display_name: String,
    /// Project ids or `*`.
    pub projects: Vec<String>,
    /// Allowed labels.
    pub labels: Json<BTreeMap<String, String>>,
    /// Created.
    pub create_time: DateTime<Utc>,
}

/// Inserts a worker pool.
pub async fn insert_worker_pool(
    conn: &mut PgConnection,
    id: &str,
    display_name: &str,
    projects: &[String],
    labels: &BTreeMap<String, String>,
) -> Result<WorkerPool> {
    Ok(sqlx::query_as(
        "INSERT INTO worker_pools (id, display_name, projects, labels) VALUES ($1, $2, $3, $4)
         RETURNING id, display_name, projects, labels, create_time",
    )
    .bind(id)
    .bind(display_name)
    .bind(projects)
    .bind(Json(labels))
    .fetch_one(conn)
    .await?)
}

/// One page of worker pools.
pub async fn worker_pools(
    conn: &mut PgConnection,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<WorkerPool>> {
    Ok(sqlx::query_as(
        "SELECT id, display_name, projects, labels, create_time FROM worker_pools
          WHERE ($1::text IS NULL OR id > $1) ORDER BY id LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Deletes a worker pool (its tokens go with it).
pub async fn delete_worker_pool(conn: &mut PgConnection, id: &str) -> Result<bool> {
    Ok(sqlx::query("DELETE FROM worker_pools WHERE id = $1").bind(id).execute(conn).await?.rows_affected()
        == 1)
}

/// Who a credential belongs to.
#[derive(Debug, Clone, Copy)]
pub enum Owner<'a> {
    /// A user.
    User(&'a str),
    /// A service account of a project.
    ServiceAccount(&'a str, &'a str),
    /// A worker pool.
    WorkerPool(&'a str),
}

/// A new credential.
#[derive(Debug, Clone)]
pub struct NewCredential<'a> {
    /// `session`, `refresh`, `api_token`, `worker_pool`.
    pub kind: &'a str,
    /// SHA-256 of the secret.
    pub hash: &'a [u8],
    /// Owner.
    pub owner: Owner<'a>,
    /// Display name.
    pub display_name: &'a str,
    /// Login it belongs to.
    pub login_id: Option<Uuid>,
    /// Creator principal name.
    pub creator: &'a str,
    /// Expiry.
    pub expire_time: Option<DateTime<Utc>>,
}

/// A stored credential (never the secret).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Credential {
    /// Id.
    pub id: Uuid,
    /// Kind.
    pub kind: String,
    /// Display name.
    pub display_name: String,
    /// Owner user.
    pub user_id: Option<String>,
    /// Owner service account's project.
    pub project_id: Option<String>,
    /// Owner service account.
    pub service_account_id: Option<String>,
    /// Owner pool.
    pub worker_pool_id: Option<String>,
    /// Login.
    pub login_id: Option<Uuid>,
    /// Creator.
    pub creator: String,
    /// Created.
    pub create_time: DateTime<Utc>,
    /// Expiry.
    pub expire_time: Option<DateTime<Utc>>,
    /// Revoked.
    pub revoke_time: Option<DateTime<Utc>>,
    /// Last use.
    pub last_used_time: Option<DateTime<Utc>>,
}

const CREDENTIAL: &str = "id, kind, display_name, user_id, project_id, service_account_id, worker_pool_id, login_id, \
                          creator, create_time, expire_time, revoke_time, last_used_time";

/// Inserts a credential; `ON CONFLICT` on the hash does nothing (a bootstrap token set again).
pub async fn insert_credential(conn: &mut PgConnection, c: &NewCredential<'_>) -> Result<Option<Credential>> {
    let (user, project, sa, pool) = match c.owner {
        Owner::User(u) => (Some(u), None, None, None),
        Owner::ServiceAccount(p, s) => (None, Some(p), Some(s), None),
        Owner::WorkerPool(w) => (None, None, None, Some(w)),
    };
    let sql = format!(
        "INSERT INTO credentials (id, kind, token_hash, display_name, user_id, project_id, service_account_id,
                                  worker_pool_id, login_id, creator, expire_time)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (token_hash) DO NOTHING RETURNING {CREDENTIAL}"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(Uuid::now_v7())
        .bind(c.kind)
        .bind(c.hash)
        .bind(c.display_name)
        .bind(user)
        .bind(project)
        .bind(sa)
        .bind(pool)
        .bind(c.login_id)
        .bind(c.creator)
        .bind(c.expire_time)
        .fetch_optional(conn)
        .await?)
}

/// A credential by the hash of its secret.
pub async fn credential_by_hash(conn: &mut PgConnection, hash: &[u8]) -> Result<Option<Credential>> {
    let sql = format!("SELECT {CREDENTIAL} FROM credentials WHERE token_hash = $1");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(hash).fetch_optional(conn).await?)
}

/// A credential by id.
pub async fn credential(conn: &mut PgConnection, id: Uuid) -> Result<Option<Credential>> {
    let sql = format!("SELECT {CREDENTIAL} FROM credentials WHERE id = $1");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(conn).await?)
}

/// Marks a use; true when it was the first.
pub async fn touch(conn: &mut PgConnection, id: Uuid) -> Result<bool> {
    let first: Option<bool> = sqlx::query_scalar(
        "WITH old AS (SELECT last_used_time IS NULL AS first FROM credentials WHERE id = $1)
         UPDATE credentials SET last_used_time = now()
          WHERE id = $1 AND (last_used_time IS NULL OR last_used_time < now() - interval '1 minute')
         RETURNING (SELECT first FROM old)",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(first.unwrap_or(false))
}

/// Revokes every credential of a login (its session and refresh token).
pub async fn revoke_login(conn: &mut PgConnection, login: Uuid) -> Result<u64> {
    Ok(sqlx::query("UPDATE credentials SET revoke_time = now() WHERE login_id = $1 AND revoke_time IS NULL")
        .bind(login)
        .execute(conn)
        .await?
        .rows_affected())
}

/// Revokes a user's login sessions, except one login.
pub async fn revoke_sessions(conn: &mut PgConnection, user: &str, except: Option<Uuid>) -> Result<u64> {
    Ok(sqlx::query(
        "UPDATE credentials SET revoke_time = now()
          WHERE user_id = $1 AND kind IN ('session', 'refresh') AND revoke_time IS NULL
            AND ($2::uuid IS NULL OR login_id IS DISTINCT FROM $2)",
    )
    .bind(user)
    .bind(except)
    .execute(conn)
    .await?
    .rows_affected())
}

/// Revokes one API token of a service account; the record after.
pub async fn revoke_token(
    conn: &mut PgConnection,
    project: &str,
    sa: &str,
    id: Uuid,
) -> Result<Option<Credential>> {
    let sql = format!(
        "UPDATE credentials SET revoke_time = COALESCE(revoke_time, now())
          WHERE id = $1 AND project_id = $2 AND service_account_id = $3 AND kind = 'api_token'
         RETURNING {CREDENTIAL}"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).bind(project).bind(sa).fetch_optional(conn).await?)
}

/// One page of a service account's tokens, newest first.
pub async fn tokens(
    conn: &mut PgConnection,
    project: &str,
    sa: &str,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Credential>> {
    let sql = format!(
        "SELECT {CREDENTIAL} FROM credentials
          WHERE project_id = $1 AND service_account_id = $2 AND kind = 'api_token'
            AND ($3::uuid IS NULL OR id < $3)
          ORDER BY id DESC LIMIT $4"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(project)
        .bind(sa)
        .bind(before)
        .bind(limit)
        .fetch_all(conn)
        .await?)
}

/// A worker pool by id.
pub async fn worker_pool(conn: &mut PgConnection, id: &str) -> Result<Option<WorkerPool>> {
    Ok(sqlx::query_as(
        "SELECT id, display_name, projects, labels, create_time FROM worker_pools WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?)
}
