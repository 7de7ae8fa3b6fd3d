//! Identity operations: users (platform admins), members and service accounts with their API
//! tokens (project admins), worker pools (platform admins). A caller never grants a role
//! above its own. Token secrets are returned once and stored only as hashes.

use std::collections::BTreeMap;

use cairn_api::{
    names::ProjectId,
    v1::{
        ApiToken, CreateApiTokenRequest, CreateApiTokenResponse, CreateServiceAccountRequest,
        CreateUserRequest, CreateWorkerPoolRequest, CreateWorkerPoolResponse, DeleteMemberRequest,
        DeleteServiceAccountRequest, DeleteUserRequest, DeleteWorkerPoolRequest, ListApiTokensRequest,
        ListApiTokensResponse, ListMembersRequest, ListMembersResponse, ListServiceAccountsRequest,
        ListServiceAccountsResponse, ListUsersRequest, ListUsersResponse, ListWorkerPoolsRequest,
        ListWorkerPoolsResponse, Member, RevokeApiTokenRequest, ServiceAccount, SetMemberRequest,
        SetPasswordRequest, UpdateUserRequest, User, WorkerPool,
    },
};
use cairn_runtime::{
    auth::{Caller, Role, credential_hash, mint},
    db::{self, DbErrorKind},
    idempotency::{self, Claim},
    pagination,
    time::{from_timestamp, opt_timestamp, to_timestamp},
};
use chrono::Utc;
use uuid::Uuid;

use crate::{
    State,
    auth::{check_id, check_password, hash_password, user_id},
    error::{Error, Result},
    projects,
    store::identity::{self as rows, NewCredential, Owner},
};

fn user_proto(u: &rows::User) -> User {
    User {
        name: format!("users/{}", u.id),
        display_name: u.display_name.clone(),
        platform_admin: u.platform_admin,
        disabled: u.disabled,
        create_time: Some(to_timestamp(u.create_time)),
        update_time: Some(to_timestamp(u.update_time)),
        password_set: u.password_hash.is_some(),
    }
}

fn role_proto(word: &str) -> i32 {
    Role::parse(word).unwrap_or(Role::None).to_proto() as i32
}

fn member_proto(m: &rows::Member) -> Member {
    Member {
        name: format!("projects/{}/members/{}", m.project_id, m.user_id),
        user: format!("users/{}", m.user_id),
        role: role_proto(&m.role),
    }
}

fn sa_proto(s: &rows::ServiceAccount) -> ServiceAccount {
    ServiceAccount {
        name: format!("projects/{}/serviceAccounts/{}", s.project_id, s.id),
        display_name: s.display_name.clone(),
        role: role_proto(&s.role),
        create_time: Some(to_timestamp(s.create_time)),
    }
}

fn token_proto(c: &rows::Credential) -> ApiToken {
    ApiToken {
        name: format!(
            "projects/{}/serviceAccounts/{}/tokens/{}",
            c.project_id.as_deref().unwrap_or_default(),
            c.service_account_id.as_deref().unwrap_or_default(),
            c.id
        ),
        display_name: c.display_name.clone(),
        creator: c.creator.clone(),
        create_time: Some(to_timestamp(c.create_time)),
        expire_time: opt_timestamp(c.expire_time),
        revoke_time: opt_timestamp(c.revoke_time),
        last_used_time: opt_timestamp(c.last_used_time),
    }
}

fn pool_proto(p: &rows::WorkerPool) -> WorkerPool {
    WorkerPool {
        name: format!("workerPools/{}", p.id),
        display_name: p.display_name.clone(),
        projects: p.projects.clone(),
        labels: p.labels.0.clone().into_iter().collect(),
        create_time: Some(to_timestamp(p.create_time)),
    }
}

/// A role field: set, and not above the caller's own in `project`.
fn grantable(caller: &Caller, project: &ProjectId, field: &str, raw: i32) -> Result<Role> {
    let role = Role::from_proto(raw);
    if role == Role::None {
        return Err(Error::invalid(field, "is required (viewer, operator, editor or admin)"));
    }
    if caller.principal().role_in(project) < role {
        return Err(caller
            .deny(format!("cannot grant {} above your own role in {}", role.as_str(), project))
            .into());
    }
    Ok(role)
}

fn page<K: serde::Serialize + serde::de::DeserializeOwned>(
    size: i32,
    token: &str,
    filters: &impl std::hash::Hash,
) -> Result<(i64, Option<K>, u64)> {
    let limit = pagination::page_size(size)?;
    let f = pagination::fingerprint(filters);
    Ok((limit, pagination::decode(token, f)?, f))
}

/// CreateUser.
pub async fn create_user(state: &State, caller: &Caller, req: CreateUserRequest) -> Result<User> {
    let id = user_id("user_id", &req.user_id)?;
    caller.resource(format!("users/{id}"));
    let u = req.user.unwrap_or_default();
    if !req.password.is_empty() {
        check_password("password", &req.password)?;
    }
    let hash = if req.password.is_empty() { None } else { Some(hash_password(&req.password).await?) };
    let mut tx = state.pool.begin().await?;
    let once = idempotency::claim(&mut tx, caller, &req.request_id, &format!("users/{id}")).await?;
    if let Claim::Done(answer) = once {
        return Ok(answer);
    }
    let answer =
        match rows::insert_user(&mut tx, &id, u.display_name.trim(), hash.as_deref(), u.platform_admin).await
        {
            Ok(row) => user_proto(&row),
            Err(Error::Db(e)) if db::classify(&e) == DbErrorKind::UniqueViolation => {
                return Err(Error::AlreadyExists(format!("user_id: user {id} already exists")));
            }
            Err(e) => return Err(e),
        };
    idempotency::record(&mut tx, &once, &answer).await?;
    tx.commit().await?;
    Ok(answer)
}

async fn find_user(conn: &mut sqlx::PgConnection, field: &str, raw: &str, lock: bool) -> Result<rows::User> {
    let id = user_id(field, raw)?;
    rows::user(conn, &id, lock).await?.ok_or_else(|| Error::NotFound(format!("users/{id}")))
}

/// GetUser.
pub async fn get_user(state: &State, name: &str) -> Result<User> {
    let mut conn = state.pool.acquire().await?;
    Ok(user_proto(&find_user(&mut conn, "name", name, false).await?))
}

/// ListUsers.
pub async fn list_users(state: &State, req: ListUsersRequest) -> Result<ListUsersResponse> {
    let (limit, after, f) = page::<String>(req.page_size, &req.page_token, &"users")?;
    let mut conn = state.pool.acquire().await?;
    let mut rows = rows::users(&mut conn, after.as_deref(), limit + 1).await?;
    let next_page_token = pagination::next_page(&mut rows, limit, f, |u| u.id.clone());
    Ok(ListUsersResponse { users: rows.iter().map(user_proto).collect(), next_page_token })
}

/// UpdateUser.
pub async fn update_user(state: &State, caller: &Caller, req: UpdateUserRequest) -> Result<User> {
    let patch = req.user.ok_or_else(|| Error::invalid("user", "is required"))?;
    let paths = req.update_mask.map(|m| m.paths).unwrap_or_default();
    if paths.is_empty() {
        return Err(Error::invalid(
            "update_mask",
            "name the fields to change: display_name, platform_admin, disabled",
        ));
    }
    let mut tx = state.pool.begin().await?;
    let once = idempotency::claim(&mut tx, caller, &req.request_id, &patch.name).await?;
    if let Claim::Done(answer) = once {
        return Ok(answer);
    }
    let row = find_user(&mut tx, "user.name", &patch.name, true).await?;
    caller.resource(format!("users/{}", row.id));
    let (mut display, mut admin, mut disabled) = (row.display_name.clone(), row.platform_admin, row.disabled);
    for p in &paths {
        match p.as_str() {
            "display_name" => display = patch.display_name.trim().to_owned(),
            "platform_admin" => admin = patch.platform_admin,
            "disabled" => disabled = patch.disabled,
            other => {
                return Err(Error::invalid(
                    "update_mask",
                    format!("{other:?} cannot be changed (display_name, platform_admin, disabled)"),
                ));
            }
        }
    }
    if (row.platform_admin && !row.disabled)
        && (!admin || disabled)
        && rows::other_admins(&mut tx, &row.id).await? == 0
    {
        return Err(Error::FailedPrecondition(format!(
            "users/{} is the last enabled platform admin; make another one first",
            row.id
        )));
    }
    let updated = rows::update_user(&mut tx, &row.id, &display, admin, disabled).await?;
    if disabled && !row.disabled {
        rows::revoke_sessions(&mut tx, &row.id, None).await?;
    }
    let answer = user_proto(&updated);
    if req.validate_only {
        return Ok(answer); // the transaction rolls back
    }
    idempotency::record(&mut tx, &once, &answer).await?;
    tx.commit().await?;
    Ok(answer)
}

/// SetPassword.
pub async fn set_password(state: &State, caller: &Caller, req: SetPasswordRequest) -> Result<()> {
    check_password("password", &req.password)?;
    let hash = hash_password(&req.password).await?;
    let mut tx = state.pool.begin().await?;
    let once = idempotency::claim(&mut tx, caller, &req.request_id, &req.name).await?;
    if let Claim::Done(()) = once {
        return Ok(());
    }
    let row = find_user(&mut tx, "name", &req.name, true).await?;
    caller.resource(format!("users/{}", row.id));
    rows::set_password(&mut tx, &row.id, &hash).await?;
    rows::revoke_sessions(&mut tx, &row.id, None).await?;
    idempotency::record(&mut tx, &once, &()).await?;
    tx.commit().await?;
    Ok(())
}

/// DeleteUser.
pub async fn delete_user(state: &State, caller: &Caller, req: DeleteUserRequest) -> Result<()> {
    let mut tx = state.pool.begin().await?;
    let once = idempotency::claim(&mut tx, caller, &req.request_id, &req.name).await?;
    if let Claim::Done(()) = once {
        return Ok(());
    }
    let row = find_user(&mut tx, "name", &req.name, true).await?;
    caller.resource(format!("users/{}", row.id));
    if row.platform_admin && !row.disabled && rows::other_admins(&mut tx, &row.id).await? == 0 {
        return Err(Error::FailedPrecondition(format!(
            "users/{} is the last enabled platform admin",
            row.id
        )));
    }
    rows::delete_user(&mut tx, &row.id).await?;
    idempotency::record(&mut tx, &once, &()).await?;
    tx.commit().await?;
    Ok(())
}

/// `projects/{p}/{collection}/{id}` → (project, id), authorised.
fn child(caller: &Caller, field: &str, raw: &str, collection: &str) -> Result<(ProjectId, String)> {
    let bad =
        || Error::invalid(field, format!("{raw:?} must look like projects/{{project}}/{collection}/{{id}}"));
    let rest = raw.strip_prefix("projects/").ok_or_else(bad)?;
    let (p, rest) = rest.split_once('/').ok_or_else(bad)?;
    let id = rest.strip_prefix(collection).and_then(|r| r.strip_prefix('/')).ok_or_else(bad)?;
    let project = ProjectId::parse(p).map_err(|e| Error::invalid(field, e))?;
    caller.require(&project)?;
    check_id(field, id)?;
    Ok((project, id.to_owned()))
}

/// SetMember.
pub async fn set_member(state: &State, caller: &Caller, req: SetMemberRequest) -> Result<Member> {
    let mut tx = state.pool.begin().await?;
    let project = projects::parent(&mut tx, caller, &req.parent).await?;
    let user = user_id("user", &req.user)?;
    let name = format!("projects/{project}/members/{user}");
    caller.resource(name.clone());
    let role = grantable(caller, &project, "role", req.role)?;
    let once = idempotency::claim(&mut tx, caller, &req.request_id, &name).await?;
    if let Claim::Done(answer) = once {
        return Ok(answer);
    }
    if rows::user(&mut tx, &user, false).await?.is_none() {
        return Err(Error::NotFound(format!("users/{user}")));
    }
    let answer = member_proto(&rows::set_member(&mut tx, project.as_str(), &user, role.as_str()).await?);
    idempotency::record(&mut tx, &once, &answer).await?;
    tx.commit().await?;
    Ok(answer)
}

/// ListMembers.
pub async fn list_members(
    state: &State,
    caller: &Caller,
    req: ListMembersRequest,
) -> Result<ListMembersResponse> {
    let mut conn = state.pool.acquire().await?;
    let project = projects::parent(&mut conn, caller, &req.parent).await?;
    let (limit, after, f) = page::<String>(req.page_size, &req.page_token, &project.as_str())?;
    let mut rows = rows::members(&mut conn, project.as_str(), after.as_deref(), limit + 1).await?;
    let next_page_token = pagination::next_page(&mut rows, limit, f, |m| m.user_id.clone());
    Ok(ListMembersResponse { members: rows.iter().map(member_proto).collect(), next_page_token })
}

/// DeleteMember.
pub async fn delete_member(state: &State, caller: &Caller, req: DeleteMemberRequest) -> Result<()> {
    let (project, user) = child(caller, "name", &req.name, "members")?;
    caller.resource(req.name.clone());
    let mut tx = state.pool.begin().await?;
    let once = idempotency::claim(&mut tx, caller, &req.request_id, &req.name).await?;
    if let Claim::Done(()) = once {
        return Ok(());
    }
    if !rows::delete_member(&mut tx, project.as_str(), &user).await? {
        return Err(Error::NotFound(req.name));
    }
    idempotency::record(&mut tx, &once, &()).await?;
    tx.commit().await?;
    Ok(())
}

/// CreateServiceAccount.
pub async fn create_service_account(
    state: &State,
    caller: &Caller,
    req: CreateServiceAccountRequest,
) -> Result<ServiceAccount> {
    let mut tx = state.pool.begin().await?;
    let project = projects::parent(&mut tx, caller, &req.parent).await?;
    check_id("service_account_id", &req.service_account_id)?;
    let id = req.service_account_id;
    let name = format!("projects/{project}/serviceAccounts/{id}");
    caller.resource(name.clone());
    let sa = req.service_account.unwrap_or_default();
    let role = grantable(caller, &project, "service_account.role", sa.role)?;
    let once = idempotency::claim(&mut tx, caller, &req.request_id, &name).await?;
    if let Claim::Done(answer) = once {
        return Ok(answer);
    }
    let answer = match rows::insert_service_account(
        &mut tx,
        project.as_str(),
        &id,
        sa.display_name.trim(),
        role.as_str(),
    )
    .await
    {
        Ok(row) => sa_proto(&row),
        Err(Error::Db(e)) if db::classify(&e) == DbErrorKind::UniqueViolation => {
            return Err(Error::AlreadyExists(format!("service_account_id: {name} already exists")));
        }
        Err(e) => return Err(e),
    };
    idempotency::record(&mut tx, &once, &answer).await?;
    tx.commit().await?;
    Ok(answer)
}

/// ListServiceAccounts.
pub async fn list_service_accounts(
    state: &State,
    caller: &Caller,
    req: ListServiceAccountsRequest,
) -> Result<ListServiceAccountsResponse> {
    let mut conn = state.pool.acquire().await?;
    let project = projects::parent(&mut conn, caller, &req.parent).await?;
    let (limit, after, f) = page::<String>(req.page_size, &req.page_token, &project.as_str())?;
    let mut rows = rows::service_accounts(&mut conn, project.as_str(), after.as_deref(), limit + 1).await?;
    let next_page_token = pagination::next_page(&mut rows, limit, f, |s| s.id.clone());
    Ok(ListServiceAccountsResponse { service_accounts: rows.iter().map(sa_proto).collect(), next_page_token })
}

/// DeleteServiceAccount.
pub async fn delete_service_account(
    state: &State,
    caller: &Caller,
    req: DeleteServiceAccountRequest,
) -> Result<()> {
    let (project, id) = child(caller, "name", &req.name, "serviceAccounts")?;
    caller.resource(req.name.clone());
    let mut tx = state.pool.begin().await?;
    let once = idempotency::claim(&mut tx, caller, &req.request_id, &req.name).await?;
    if let Claim::Done(()) = once {
        return Ok(());
    }
    if !rows::delete_service_account(&mut tx, project.as_str(), &id).await? {
        return Err(Error::NotFound(req.name));
    }
    idempotency::record(&mut tx, &once, &()).await?;
    tx.commit().await?;
    Ok(())
}

async fn existing_sa(
    conn: &mut sqlx::PgConnection,
    caller: &Caller,
    field: &str,
    raw: &str,
) -> Result<rows::ServiceAccount> {
    let (project, id) = child(caller, field, raw, "serviceAccounts")?;
    rows::service_account(conn, project.as_str(), &id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("projects/{project}/serviceAccounts/{id}")))
}

/// CreateApiToken.
pub async fn create_token(
    state: &State,
    caller: &Caller,
    req: CreateApiTokenRequest,
) -> Result<CreateApiTokenResponse> {
    let mut conn = state.pool.acquire().await?;
    let sa = existing_sa(&mut conn, caller, "parent", &req.parent).await?;
    let t = req.token.unwrap_or_default();
    let expire = match &t.expire_time {
        Some(ts) => {
            let at = from_timestamp(ts)
                .ok_or_else(|| Error::invalid("token.expire_time", "is not a valid time"))?;
            if at <= Utc::now() {
                return Err(Error::invalid("token.expire_time", "is in the past"));
            }
            Some(at)
        }
        None => None,
    };
    let secret = mint("pat");
    let hash = credential_hash(&secret);
    let new = NewCredential {
        kind: "api_token",
        hash: &hash,
        owner: Owner::ServiceAccount(&sa.project_id, &sa.id),
        display_name: t.display_name.trim(),
        login_id: None,
        creator: caller.principal().name(),
        expire_time: expire,
    };
    let row = rows::insert_credential(&mut conn, &new)
        .await?
        .ok_or_else(|| Error::Internal("token collision".into()))?;
    let token = token_proto(&row);
    caller.resource(token.name.clone());
    Ok(CreateApiTokenResponse { token: Some(token), secret })
}

/// ListApiTokens.
pub async fn list_tokens(
    state: &State,
    caller: &Caller,
    req: ListApiTokensRequest,
) -> Result<ListApiTokensResponse> {
    let mut conn = state.pool.acquire().await?;
    let sa = existing_sa(&mut conn, caller, "parent", &req.parent).await?;
    let (limit, before, f) = page::<Uuid>(req.page_size, &req.page_token, &req.parent)?;
    let mut rows = rows::tokens(&mut conn, &sa.project_id, &sa.id, before, limit + 1).await?;
    let next_page_token = pagination::next_page(&mut rows, limit, f, |c| c.id);
    Ok(ListApiTokensResponse { tokens: rows.iter().map(token_proto).collect(), next_page_token })
}

/// RevokeApiToken.
pub async fn revoke_token(state: &State, caller: &Caller, req: RevokeApiTokenRequest) -> Result<ApiToken> {
    let name = req.name.as_str();
    let bad = || {
        Error::invalid(
            "name",
            format!("{name:?} must look like projects/{{p}}/serviceAccounts/{{id}}/tokens/{{token}}"),
        )
    };
    let (sa_name, token) = name.rsplit_once("/tokens/").ok_or_else(bad)?;
    let (project, sa) = child(caller, "name", sa_name, "serviceAccounts")?;
    let id = Uuid::parse_str(token).map_err(|_| bad())?;
    caller.resource(name.to_owned());
    let mut tx = state.pool.begin().await?;
    let once = idempotency::claim(&mut tx, caller, &req.request_id, name).await?;
    if let Claim::Done(answer) = once {
        return Ok(answer);
    }
    let answer = rows::revoke_token(&mut tx, project.as_str(), &sa, id)
        .await?
        .map(|c| token_proto(&c))
        .ok_or_else(|| Error::NotFound(name.to_owned()))?;
    idempotency::record(&mut tx, &once, &answer).await?;
    tx.commit().await?;
    Ok(answer)
}

/// CreateWorkerPool.
pub async fn create_pool(
    state: &State,
    caller: &Caller,
    req: CreateWorkerPoolRequest,
) -> Result<CreateWorkerPoolResponse> {
    check_id("worker_pool_id", &req.worker_pool_id)?;
    let id = req.worker_pool_id;
    caller.resource(format!("workerPools/{id}"));
    let p = req.worker_pool.unwrap_or_default();
    if p.projects.is_empty() {
        return Err(Error::invalid(
            "worker_pool.projects",
            "is required: project ids, or * for every project",
        ));
    }
    let mut conn = state.pool.acquire().await?;
    for (i, raw) in p.projects.iter().enumerate() {
        if raw == "*" {
            continue;
        }
        let field = format!("worker_pool.projects[{i}]");
        let project = ProjectId::parse(raw).map_err(|e| Error::invalid(field.clone(), e))?;
        if !crate::store::projects::exists(&mut conn, &project).await? {
            return Err(Error::invalid(field, format!("project {raw:?} does not exist")));
        }
    }
    for (k, v) in &p.labels {
        if k.is_empty() || v.is_empty() {
            return Err(Error::invalid(
                format!("worker_pool.labels[{k:?}]"),
                "keys and values must not be empty",
            ));
        }
    }
    let labels: BTreeMap<String, String> = p.labels.into_iter().collect();
    let row =
        match rows::insert_worker_pool(&mut conn, &id, p.display_name.trim(), &p.projects, &labels).await {
            Ok(r) => r,
            Err(Error::Db(e)) if db::classify(&e) == DbErrorKind::UniqueViolation => {
                return Err(Error::AlreadyExists(format!("worker_pool_id: workerPools/{id} already exists")));
            }
            Err(e) => return Err(e),
        };
    let token = mint("wp");
    let hash = credential_hash(&token);
    let new = NewCredential {
        kind: "worker_pool",
        hash: &hash,
        owner: Owner::WorkerPool(&id),
        display_name: "enrolment",
        login_id: None,
        creator: caller.principal().name(),
        expire_time: None,
    };
    rows::insert_credential(&mut conn, &new).await?;
    Ok(CreateWorkerPoolResponse { worker_pool: Some(pool_proto(&row)), token })
}

/// ListWorkerPools.
pub async fn list_pools(state: &State, req: ListWorkerPoolsRequest) -> Result<ListWorkerPoolsResponse> {
    let (limit, after, f) = page::<String>(req.page_size, &req.page_token, &"pools")?;
    let mut conn = state.pool.acquire().await?;
    let mut rows = rows::worker_pools(&mut conn, after.as_deref(), limit + 1).await?;
    let next_page_token = pagination::next_page(&mut rows, limit, f, |p| p.id.clone());
    Ok(ListWorkerPoolsResponse { worker_pools: rows.iter().map(pool_proto).collect(), next_page_token })
}

/// DeleteWorkerPool.
pub async fn delete_pool(state: &State, caller: &Caller, req: DeleteWorkerPoolRequest) -> Result<()> {
    let id = req.name.strip_prefix("workerPools/").unwrap_or(&req.name);
    check_id("name", id)?;
    let name = format!("workerPools/{id}");
    caller.resource(name.clone());
    let mut tx = state.pool.begin().await?;
    let once = idempotency::claim(&mut tx, caller, &req.request_id, &name).await?;
    if let Claim::Done(()) = once {
        return Ok(());
    }
    if !rows::delete_worker_pool(&mut tx, id).await? {
        return Err(Error::NotFound(name));
    }
    idempotency::record(&mut tx, &once, &()).await?;
    tx.commit().await?;
    Ok(())
}
