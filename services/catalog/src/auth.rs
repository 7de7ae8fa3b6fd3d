//! Who is calling: credentials → principals (the catalog's [`Authenticator`], which also
//! answers the scheduler's `Authenticate`), password logins with a growing delay after
//! failures, sessions and refresh tokens, and the bootstrap of the first platform admin.
//! Secrets are compared only as SHA-256 hashes (tokens) or argon2id (passwords), and no
//! message, log line or audit event repeats one.

use std::{
    collections::BTreeMap,
    path::Path,
    sync::{Arc, OnceLock},
    time::Duration,
};

use argon2::{
    Argon2, PasswordHash, PasswordHasher as _, PasswordVerifier as _,
    password_hash::{SaltString, rand_core::OsRng},
};
use cairn_api::v1::{self, ChangePasswordRequest, LoginResponse};
use cairn_runtime::{
    auth::{self, AuditRecord, Authenticator, Principal, Role, audit::PgAudit, credential_hash, mint},
    idempotency::{self, Claim},
    time::to_timestamp,
};
use chrono::Utc;
use sqlx::{PgConnection, PgPool};
use tonic::Status;
use uuid::Uuid;

use crate::{
    Config,
    error::{Error, Result},
    store::identity::{self as rows, NewCredential, Owner},
};

/// How long an access token from Login works.
pub const ACCESS_TTL: Duration = Duration::from_secs(15 * 60);
/// How long a refresh token works.
pub const REFRESH_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 12;

/// The catalog's authenticator: Cairn's own credentials are looked up in its tables, JWTs
/// are verified against the identity provider (when one is configured).
#[derive(Debug, Clone)]
pub struct CatalogAuth {
    pool: PgPool,
    oidc: Option<Arc<crate::oidc::Verifier>>,
}

impl CatalogAuth {
    /// Over the catalog's pool, with an optional identity provider.
    pub fn new(pool: PgPool, oidc: Option<Arc<crate::oidc::Verifier>>) -> Arc<CatalogAuth> {
        Arc::new(CatalogAuth { pool, oidc })
    }
}

#[tonic::async_trait]
impl Authenticator for CatalogAuth {
    async fn authenticate(&self, credential: &str) -> Result<Principal, Status> {
        match &self.oidc {
            Some(v) if crate::oidc::looks_like_jwt(credential) => v.verify(credential).await,
            _ => principal_of(&self.pool, credential).await,
        }
    }
}

fn refuse(why: &str) -> Status {
    auth::unauthenticated(format!("invalid credential: {why}"))
}

fn db_down(e: impl std::fmt::Display) -> Status {
    tracing::error!(error = %e, "credential lookup failed");
    cairn_runtime::status::unavailable("the identity store")
}

/// The principal a bearer credential stands for, or UNAUTHENTICATED.
pub async fn principal_of(pool: &PgPool, credential: &str) -> Result<Principal, Status> {
    let mut conn = pool.acquire().await.map_err(db_down)?;
    let hash = credential_hash(credential);
    let Some(c) = rows::credential_by_hash(&mut conn, &hash).await.map_err(db_down)? else {
        return Err(refuse("unknown token"));
    };
    if c.revoke_time.is_some() {
        return Err(refuse("the token was revoked"));
    }
    if c.expire_time.is_some_and(|t| t <= Utc::now()) {
        return Err(refuse("the token expired (log in again)"));
    }
    if c.kind == "refresh" {
        return Err(refuse("a refresh token is not an access token; exchange it with RefreshLogin"));
    }
    let mut p = owner_principal(&mut conn, &c).await.map_err(|e| match e {
        Error::Status(s) => *s,
        e => db_down(e),
    })?;
    p.0.token_id = format!("credentials/{}", c.id);
    p.0.auth_method = match (c.kind.as_str(), c.creator.as_str()) {
        ("session", _) => "password",
        ("api_token", "bootstrap") => "bootstrap-token",
        ("api_token", _) => "api-token",
        _ => "worker-token",
    }
    .into();
    // First use of a token is an audit event; later uses move `last_used_time` at most once a
    // minute (the row read above says whether one is due, so most calls write nothing).
    let due = c.last_used_time.is_none_or(|t| Utc::now() - t > chrono::Duration::minutes(1));
    if due && rows::touch(&mut conn, c.id).await.map_err(db_down)? && c.kind != "session" {
        let event = AuditRecord {
            allowed: true,
            code: "OK".into(),
            resource: credential_resource(&c),
            project: c.project_id.clone(),
            detail: "first use of this token".into(),
            ..AuditRecord::by(Some(&p), "")
        };
        if let Err(e) = PgAudit::insert(&mut conn, "catalog", &[event]).await {
            tracing::error!(error = %e, "audit event could not be written");
        }
    }
    Ok(p)
}

/// The API name of a credential's resource, for the audit log.
fn credential_resource(c: &rows::Credential) -> String {
    match (&c.project_id, &c.service_account_id, &c.worker_pool_id, &c.user_id) {
        (Some(p), Some(s), _, _) => format!("projects/{p}/serviceAccounts/{s}/tokens/{}", c.id),
        (_, _, Some(w), _) => format!("workerPools/{w}"),
        (_, _, _, Some(u)) => format!("users/{u}"),
        _ => format!("credentials/{}", c.id),
    }
}

async fn owner_principal(conn: &mut PgConnection, c: &rows::Credential) -> Result<Principal> {
    if let Some(u) = &c.user_id {
        return user_principal(conn, u).await;
    }
    if let (Some(project), Some(sa)) = (&c.project_id, &c.service_account_id) {
        let Some(row) = rows::service_account(conn, project, sa).await? else {
            return Err(refuse("the service account no longer exists").into());
        };
        // A token never holds more than its creator's role, as it is now.
        let own = Role::parse(&row.role).unwrap_or(Role::None);
        let cap = creator_role(conn, &c.creator, project).await?;
        let role = own.min(cap);
        let mut roles = BTreeMap::new();
        if role > Role::None {
            roles.insert(project.clone(), role.to_proto() as i32);
        }
        return Ok(Principal(v1::Principal {
            name: format!("projects/{project}/serviceAccounts/{sa}"),
            display_name: row.display_name,
            roles: roles.into_iter().collect(),
            ..Default::default()
        }));
    }
    if let Some(w) = &c.worker_pool_id {
        let Some(pool) = rows::worker_pool(conn, w).await? else {
            return Err(refuse("the worker pool no longer exists").into());
        };
        return Ok(Principal(v1::Principal {
            name: format!("workerPools/{w}"),
            display_name: pool.display_name,
            worker_projects: pool.projects,
            worker_labels: pool.labels.0.into_iter().collect(),
            ..Default::default()
        }));
    }
    Err(Error::Internal(format!("credential {} has no owner", c.id)))
}

/// The role the creator of a token holds in `project` now.
async fn creator_role(conn: &mut PgConnection, creator: &str, project: &str) -> Result<Role> {
    if let Some(u) = creator.strip_prefix("users/") {
        return match rows::user(conn, u, false).await? {
            Some(user) if user.disabled => Ok(Role::None),
            Some(user) if user.platform_admin => Ok(Role::Admin),
            Some(_) => Ok(rows::roles(conn, u)
                .await?
                .get(project)
                .and_then(|r| Role::parse(r))
                .unwrap_or(Role::None)),
            None => Ok(Role::None),
        };
    }
    if let Some(rest) = creator.strip_prefix(&format!("projects/{project}/serviceAccounts/")) {
        return Ok(rows::service_account(conn, project, rest)
            .await?
            .and_then(|s| Role::parse(&s.role))
            .unwrap_or(Role::None));
    }
    Ok(Role::None)
}

/// A user's principal with its roles; UNAUTHENTICATED when disabled or gone.
pub async fn user_principal(conn: &mut PgConnection, id: &str) -> Result<Principal> {
    let Some(u) = rows::user(conn, id, false).await? else {
        return Err(refuse("the user no longer exists").into());
    };
    if u.disabled {
        return Err(refuse("the user is disabled").into());
    }
    let roles = rows::roles(conn, id).await?;
    Ok(Principal(v1::Principal {
        name: format!("users/{id}"),
        display_name: u.display_name,
        platform_admin: u.platform_admin,
        roles: roles
            .into_iter()
            .filter_map(|(p, r)| Role::parse(&r).map(|r| (p, r.to_proto() as i32)))
            .collect(),
        ..Default::default()
    }))
}

/// argon2id of a password (blocking work off the async threads).
pub async fn hash_password(password: &str) -> Result<String> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::Internal(format!("password hashing: {e}")))
    })
    .await
    .map_err(|e| Error::Internal(format!("password hashing: {e}")))?
}

/// Whether `password` matches a stored hash (a fixed hash stands in for missing users, so
/// a wrong user id costs as much time as a wrong password).
pub async fn verify_password(password: &str, stored: Option<&str>) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let stored = match stored {
        Some(s) => s.to_owned(),
        None => DUMMY
            .get_or_init(|| {
                let salt = SaltString::generate(&mut OsRng);
                Argon2::default()
                    .hash_password(b"no user has this password", &salt)
                    .map(|h| h.to_string())
                    .unwrap_or_default()
            })
            .clone(),
    };
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&stored)
            .is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
    })
    .await
    .unwrap_or(false)
}

/// Checks a new password.
pub fn check_password(field: &str, password: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(Error::invalid(field, format!("must be at least {MIN_PASSWORD} characters")));
    }
    if password.chars().any(char::is_control) {
        return Err(Error::invalid(field, "contains control characters"));
    }
    Ok(())
}

/// Seconds the next attempt waits after `n` failed logins in a row: none for the first two,
/// then 1 s, 2 s, 4 s … up to 5 minutes.
pub fn delay_after(n: i32) -> f64 {
    if n < 3 { 0.0 } else { 2f64.powi((n - 3).min(9)).min(300.0) }
}

/// A user id from `alice` or `users/alice`.
pub fn user_id(field: &str, raw: &str) -> Result<String> {
    let id = raw.trim().strip_prefix("users/").unwrap_or(raw.trim());
    check_id(field, id)?;
    Ok(id.to_owned())
}

/// Ids of users, service accounts and worker pools.
pub fn check_id(field: &str, id: &str) -> Result<()> {
    let ok = id.len() <= 63
        && id.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else if id.is_empty() {
        Err(Error::invalid(field, "is required"))
    } else {
        Err(Error::invalid(
            field,
            format!(
                "{id:?} must be 1..=63 of lowercase letters, digits, '.', '_' or '-', starting with a letter"
            ),
        ))
    }
}

/// Login: a session and a refresh token for a good password.
pub async fn login(
    pool: &PgPool,
    caller: &auth::Caller,
    user: &str,
    password: &str,
) -> Result<LoginResponse> {
    let wrong = || Error::from(auth::unauthenticated("wrong user or password"));
    let Ok(id) = user_id("user", user) else {
        verify_password(password, None).await;
        return Err(wrong());
    };
    caller.resource(format!("users/{id}"));
    let mut conn = pool.acquire().await?;
    let row = rows::user(&mut conn, &id, false).await?;
    if let Some(until) = row.as_ref().and_then(|u| u.locked_until).filter(|t| *t > Utc::now()) {
        let secs = (until - Utc::now()).num_milliseconds().max(0) as f64 / 1000.0;
        caller.detail("refused: waiting out the delay after failed logins");
        return Err(auth::unauthenticated(format!(
            "too many failed logins for this account; try again in {:.0} s",
            secs.ceil()
        ))
        .into());
    }
    let good = verify_password(password, row.as_ref().and_then(|u| u.password_hash.as_deref())).await;
    let Some(u) = row.filter(|u| good && !u.disabled) else {
        if good {
            caller.detail("refused: the user is disabled");
        } else {
            caller.detail("refused: wrong user or password");
            rows::login_failed(&mut conn, &id, delay_after).await?;
        }
        return Err(wrong());
    };
    rows::login_ok(&mut conn, &u.id).await?;
    let principal = user_principal(&mut conn, &u.id).await?;
    caller.acting_as(&principal);
    issue(&mut conn, &u.id, Uuid::now_v7(), principal).await
}

/// A new session and refresh token for a login.
async fn issue(
    conn: &mut PgConnection,
    user: &str,
    login: Uuid,
    principal: Principal,
) -> Result<LoginResponse> {
    let now = Utc::now();
    let access = mint("at");
    let refresh = mint("rt");
    let access_exp = now + chrono::Duration::from_std(ACCESS_TTL).unwrap_or_default();
    let refresh_exp = now + chrono::Duration::from_std(REFRESH_TTL).unwrap_or_default();
    for (kind, secret, exp) in [("session", &access, access_exp), ("refresh", &refresh, refresh_exp)] {
        let hash = credential_hash(secret);
        rows::insert_credential(
            conn,
            &NewCredential {
                kind,
                hash: &hash,
                owner: Owner::User(user),
                display_name: "",
                login_id: Some(login),
                creator: &format!("users/{user}"),
                expire_time: Some(exp),
            },
        )
        .await?;
    }
    Ok(LoginResponse {
        access_token: access,
        expire_time: Some(to_timestamp(access_exp)),
        refresh_token: refresh,
        refresh_expire_time: Some(to_timestamp(refresh_exp)),
        principal: Some(principal.0),
    })
}

/// RefreshLogin: the old pair stops working, a new one is issued for the same login.
pub async fn refresh(pool: &PgPool, caller: &auth::Caller, token: &str) -> Result<LoginResponse> {
    let bad = |why: &str| Error::from(refuse(why));
    let mut tx = pool.begin().await?;
    let c = rows::credential_by_hash(&mut tx, &credential_hash(token.trim())).await?;
    let Some(c) = c.filter(|c| c.kind == "refresh") else { return Err(bad("unknown refresh token")) };
    if c.revoke_time.is_some() {
        return Err(bad("the refresh token was revoked or already used"));
    }
    if c.expire_time.is_some_and(|t| t <= Utc::now()) {
        return Err(bad("the refresh token expired (log in again)"));
    }
    let (Some(user), Some(login)) = (c.user_id.clone(), c.login_id) else {
        return Err(Error::Internal(format!("refresh token {} has no login", c.id)));
    };
    caller.resource(format!("users/{user}"));
    let principal = user_principal(&mut tx, &user).await?;
    caller.acting_as(&principal);
    rows::revoke_login(&mut tx, login).await?;
    let res = issue(&mut tx, &user, login, principal).await?;
    tx.commit().await?;
    Ok(res)
}

/// Logout: ends the caller's login.
pub async fn logout(pool: &PgPool, caller: &auth::Caller) -> Result<()> {
    let p = caller.principal();
    let id = p.0.token_id.strip_prefix("credentials/").and_then(|s| Uuid::parse_str(s).ok());
    let mut conn = pool.acquire().await?;
    let login = match id {
        Some(id) => {
            rows::credential(&mut conn, id).await?.filter(|c| c.kind == "session").and_then(|c| c.login_id)
        }
        None => None,
    };
    let Some(login) = login else {
        return Err(Error::FailedPrecondition(
            "only a login session can log out; revoke an API token with RevokeApiToken".into(),
        ));
    };
    caller.resource(p.name().to_owned());
    rows::revoke_login(&mut conn, login).await?;
    Ok(())
}

/// ChangePassword: the caller's own; other sessions end.
pub async fn change_password(pool: &PgPool, caller: &auth::Caller, req: ChangePasswordRequest) -> Result<()> {
    let (current, new) = (req.current_password.as_str(), req.new_password.as_str());
    let Some(user) = caller.principal().name().strip_prefix("users/").map(str::to_owned) else {
        return Err(Error::FailedPrecondition("only users have passwords".into()));
    };
    caller.resource(format!("users/{user}"));
    check_password("new_password", new)?;
    let mut tx = pool.begin().await?;
    // Claimed first: a retry after the change would find current_password wrong.
    let once = idempotency::claim(&mut tx, caller, &req.request_id, &format!("users/{user}")).await?;
    if let Claim::Done(()) = once {
        return Ok(());
    }
    let stored = rows::user(&mut tx, &user, false).await?.and_then(|u| u.password_hash);
    if !verify_password(current, stored.as_deref()).await {
        return Err(auth::unauthenticated("current_password is wrong").into());
    }
    let hash = hash_password(new).await?;
    rows::set_password(&mut tx, &user, &hash).await?;
    let token =
        caller.principal().0.token_id.strip_prefix("credentials/").and_then(|s| Uuid::parse_str(s).ok());
    let login = match token {
        Some(id) => rows::credential(&mut tx, id).await?.and_then(|c| c.login_id),
        None => None,
    };
    rows::revoke_sessions(&mut tx, &user, login).await?;
    idempotency::record(&mut tx, &once, &()).await?;
    tx.commit().await?;
    Ok(())
}

/// The first start: creates the platform admin `admin` when there is no user, with the
/// configured password or a generated one (printed once, written 0600 to the data
/// directory), and registers the configured bootstrap token.
pub async fn bootstrap(pool: &PgPool, config: &Config) -> anyhow::Result<()> {
    let mut conn = pool.acquire().await?;
    if rows::user_count(&mut conn).await? == 0 {
        let (password, generated) = match config.bootstrap_password()? {
            Some(p) => (p, false),
            None => (mint("pw").trim_start_matches("cairn_pw_").chars().take(24).collect(), true),
        };
        let hash = hash_password(&password).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        rows::insert_user(&mut conn, "admin", "Platform admin", Some(&hash), true).await?;
        if generated {
            let written = match &config.data_dir {
                Some(dir) => Some(write_private(&dir.join("bootstrap-admin-password"), &password)?),
                None => None,
            };
            // Printed once, on purpose, outside the log: the operator needs it to log in.
            eprintln!(
                "\n  Cairn created the platform admin `admin` with the generated password:\n\n      {password}\n"
            );
            match written {
                Some(path) => {
                    eprintln!("  It is also in {} (mode 0600). Change it: cairn user password admin\n", path)
                }
                None => eprintln!("  It is shown only this once. Change it: cairn user password admin\n"),
            }
        }
        tracing::info!(user = "users/admin", generated, "bootstrapped the first platform admin");
    }
    if let Some(token) = config.bootstrap_worker_token()? {
        bootstrap_workers(&mut conn, &token).await?;
    }
    if let Some(token) = config.bootstrap_token()? {
        if rows::user(&mut conn, "admin", false).await?.is_none() {
            tracing::warn!("bootstrap_token is set but the user `admin` does not exist; token ignored");
        } else {
            let hash = credential_hash(&token);
            let new = NewCredential {
                kind: "api_token",
                hash: &hash,
                owner: Owner::User("admin"),
                display_name: "bootstrap",
                login_id: None,
                creator: "bootstrap",
                expire_time: None,
            };
            if rows::insert_credential(&mut conn, &new).await?.is_some() {
                tracing::info!(user = "users/admin", "registered the bootstrap token");
            }
        }
    }
    Ok(())
}

/// Registers the configured worker pool token: the pool `bootstrap` (every project, any
/// label) is created once; the token is added to it when new.
async fn bootstrap_workers(conn: &mut PgConnection, token: &str) -> anyhow::Result<()> {
    if rows::worker_pool(conn, "bootstrap").await?.is_none() {
        let any: BTreeMap<String, String> = [("*".to_owned(), "*".to_owned())].into();
        rows::insert_worker_pool(
            conn,
            "bootstrap",
            "Workers started with the stack",
            &["*".to_owned()],
            &any,
        )
        .await?;
    }
    let hash = credential_hash(token);
    let new = NewCredential {
        kind: "worker_pool",
        hash: &hash,
        owner: Owner::WorkerPool("bootstrap"),
        display_name: "bootstrap",
        login_id: None,
        creator: "bootstrap",
        expire_time: None,
    };
    if rows::insert_credential(conn, &new).await?.is_some() {
        tracing::info!(pool = "workerPools/bootstrap", "registered the bootstrap worker token");
    }
    Ok(())
}

fn write_private(path: &Path, content: &str) -> anyhow::Result<String> {
    use std::io::Write as _;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(path)?;
    f.write_all(content.as_bytes())?;
    f.write_all(b"\n")?;
    Ok(path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_grows_and_is_bounded() {
        assert_eq!(delay_after(1), 0.0);
        assert_eq!(delay_after(2), 0.0);
        assert_eq!(delay_after(3), 1.0);
        assert_eq!(delay_after(4), 2.0);
        assert_eq!(delay_after(50), 300.0);
    }

    #[test]
    fn ids_are_checked() {
        assert_eq!(user_id("user", "users/alice").unwrap(), "alice");
        assert!(user_id("user", "Alice").is_err());
        assert!(user_id("user", "").is_err());
        assert!(check_password("password", "short").is_err());
        assert!(check_password("password", "long enough password").is_ok());
    }

    #[tokio::test]
    async fn passwords_hash_and_verify() {
        let h = hash_password("correct horse battery").await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", Some(&h)).await);
        assert!(!verify_password("wrong horse battery", Some(&h)).await);
        assert!(!verify_password("anything", None).await);
    }
}
