//! Who may do what: `cairn login|logout|context|user|member|service-account|token|worker-pool|audit`.

use cairn_api::v1::{
    ApiToken, CreateApiTokenRequest, CreateServiceAccountRequest, CreateUserRequest, CreateWorkerPoolRequest,
    Decision, DeleteMemberRequest, DeleteServiceAccountRequest, DeleteUserRequest, DeleteWorkerPoolRequest,
    ListApiTokensRequest, ListAuditEventsRequest, ListAuditEventsResponse, ListMembersRequest,
    ListServiceAccountsRequest, ListUsersRequest, ListWorkerPoolsRequest, LoginRequest, LogoutRequest,
    RevokeApiTokenRequest, Role, ServiceAccount, SetMemberRequest, SetPasswordRequest, UpdateUserRequest,
    User, WorkerPool,
};

use super::pairs;
use crate::{
    cli::{AuditCmd, ContextCmd, MemberCmd, RoleArg, ServiceAccountCmd, TokenCmd, UserCmd, WorkerPoolCmd},
    client::{Clients, all_pages},
    context::{self, Contexts},
    error::{CliError, Result},
    output::{self, Printer},
};

fn role(r: RoleArg) -> i32 {
    (match r {
        RoleArg::Viewer => Role::Viewer,
        RoleArg::Operator => Role::Operator,
        RoleArg::Editor => Role::Editor,
        RoleArg::Admin => Role::Admin,
    }) as i32
}

fn role_word(r: i32) -> String {
    output::enum_name(Role::try_from(r).unwrap_or(Role::Unspecified).as_str_name(), "ROLE_")
}

/// A password: the first line of stdin with `--password-stdin`, else asked on the terminal.
pub fn password(from_stdin: bool, prompt: &str) -> Result<String> {
    let pw = if from_stdin {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map_err(|e| CliError::Failed(format!("reading stdin: {e}")))?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        use std::io::IsTerminal as _;
        if !std::io::stdin().is_terminal() {
            return Err(CliError::Usage("no terminal to ask for the password: pass --password-stdin".into()));
        }
        rpassword::prompt_password(prompt)
            .map_err(|e| CliError::Failed(format!("reading the password: {e}")))?
    };
    if pw.is_empty() {
        return Err(CliError::Usage("the password is empty".into()));
    }
    Ok(pw)
}

/// `cairn login`: tokens into the context in use (created from the flags when new).
pub async fn login(c: &Clients, p: &Printer, name: &str, user: &str, from_stdin: bool) -> Result {
    let pw = password(from_stdin, &format!("Password for {user}: "))?;
    let r = c
        .identity()
        .login(LoginRequest { user: user.to_owned(), password: pw })
        .await
        .map_err(c.catalog_err())?
        .into_inner();
    let mut all = Contexts::load()?;
    let ctx = all.contexts.entry(name.to_owned()).or_default();
    ctx.catalog_url = Some(c.catalog_url.clone());
    ctx.scheduler_url = Some(c.scheduler_url.clone());
    ctx.project.get_or_insert_with(|| c.project.as_str().to_owned());
    ctx.token = Some(r.access_token);
    ctx.token_expire_time = r.expire_time.as_ref().and_then(cairn_runtime::time::from_timestamp);
    ctx.refresh_token = Some(r.refresh_token);
    let who = r.principal.map(|p| p.name).unwrap_or_default();
    ctx.principal = Some(who.clone());
    all.current.get_or_insert_with(|| name.to_owned());
    all.save()?;
    if !p.json() {
        println!("logged in as {who} (context {name}, {})", context::path().display());
    } else {
        println!("{{}}");
    }
    Ok(0)
}

/// `cairn logout`.
pub async fn logout(c: &Clients, p: &Printer, name: &str) -> Result {
    let mut all = Contexts::load()?;
    let Some(ctx) = all.contexts.get_mut(name) else {
        return Err(CliError::Usage(format!("context {name:?} has no login")));
    };
    if ctx.refresh_token.is_some() {
        // The server ends the session; a token that already expired needs nothing more.
        if let Err(s) = c.identity().logout(LogoutRequest {}).await
            && s.code() != tonic::Code::Unauthenticated
        {
            return Err(c.catalog_err()(s));
        }
    }
    ctx.token = None;
    ctx.refresh_token = None;
    ctx.token_expire_time = None;
    ctx.principal = None;
    all.save()?;
    p.deleted(&format!("logged out (context {name})"));
    Ok(0)
}

/// `cairn context ...` (no server involved).
pub fn context(cmd: ContextCmd, p: &Printer, flags: &crate::cli::Cli) -> Result {
    let mut all = Contexts::load()?;
    match cmd {
        ContextCmd::List => {
            let current = all.chosen(None);
            let mut t = output::table(&["", "NAME", "CATALOG", "SCHEDULER", "PROJECT", "LOGGED IN AS"]);
            for (name, c) in &all.contexts {
                t.add_row(vec![
                    if *name == current { "*".into() } else { String::new() },
                    name.clone(),
                    c.catalog_url.clone().unwrap_or_default(),
                    c.scheduler_url.clone().unwrap_or_default(),
                    c.project.clone().unwrap_or_default(),
                    c.principal
                        .clone()
                        .unwrap_or_else(|| if c.token.is_some() { "(token)".into() } else { String::new() }),
                ]);
            }
            output::print_table(t, "No contexts (cairn login or cairn context set).");
        }
        ContextCmd::Use { name } => {
            if !all.contexts.contains_key(&name) {
                return Err(CliError::Usage(format!("no context {name:?} (cairn context list)")));
            }
            all.current = Some(name.clone());
            all.save()?;
            p.deleted(&format!("using context {name}"));
        }
        ContextCmd::Set { name } => {
            let ctx = all.contexts.entry(name.clone()).or_default();
            if let Some(u) = &flags.catalog_url {
                ctx.catalog_url = Some(u.clone());
            }
            if let Some(u) = &flags.scheduler_url {
                ctx.scheduler_url = Some(u.clone());
            }
            if let Some(pr) = &flags.project {
                ctx.project = Some(pr.clone());
            }
            if let Some(ca) = &flags.ca_file {
                ctx.ca_file = Some(ca.clone());
            }
            if let Some(t) = &flags.token {
                ctx.token = Some(t.clone());
            }
            all.current.get_or_insert_with(|| name.clone());
            all.save()?;
            p.deleted(&format!("context {name} saved"));
        }
        ContextCmd::Delete { name } => {
            if all.contexts.remove(&name).is_none() {
                return Err(CliError::Usage(format!("no context {name:?}")));
            }
            if all.current.as_deref() == Some(name.as_str()) {
                all.current = None;
            }
            all.save()?;
            p.deleted(&format!("context {name} deleted"));
        }
    }
    Ok(0)
}

fn user_name(id: &str) -> String {
    if id.starts_with("users/") { id.to_owned() } else { format!("users/{}", id.trim()) }
}

fn show_users(p: &Printer, users: &[User]) {
    let mut t = output::table(&["ID", "NAME", "PLATFORM ADMIN", "STATE", "PASSWORD", "CREATED"]);
    for u in users {
        t.add_row(vec![
            output::id(&u.name).to_owned(),
            u.display_name.clone(),
            if u.platform_admin { "yes".into() } else { String::new() },
            if u.disabled { "disabled".into() } else { "enabled".into() },
            if u.password_set { "set".into() } else { "none".into() },
            p.time(&u.create_time),
        ]);
    }
    output::print_table(t, "No users.");
}

/// `cairn user ...`.
pub async fn user(c: &Clients, p: &Printer, cmd: UserCmd) -> Result {
    let mut id = c.identity();
    let err = c.catalog_err();
    match cmd {
        UserCmd::Create { id: uid, display_name, platform_admin, password_stdin, no_password } => {
            let password = if no_password {
                String::new()
            } else {
                password(password_stdin, &format!("Password for {uid}: "))?
            };
            let u = id
                .create_user(CreateUserRequest {
                    user_id: uid,
                    user: Some(User { display_name, platform_admin, ..Default::default() }),
                    password,
                    request_id: c.request_id(),
                })
                .await
                .map_err(err)?
                .into_inner();
            if p.json() { p.message(&u) } else { show_users(p, &[u]) }
        }
        UserCmd::List => {
            let all = all_pages(|page_token| {
                let mut id = c.identity();
                async move {
                    let r = id
                        .list_users(ListUsersRequest { page_size: 1000, page_token })
                        .await
                        .map_err(c.catalog_err())?
                        .into_inner();
                    Ok((r.users, r.next_page_token))
                }
            })
            .await?;
            if p.json() {
                p.message(&cairn_api::v1::ListUsersResponse { users: all, next_page_token: String::new() });
            } else {
                show_users(p, &all);
            }
        }
        UserCmd::Password { id: uid, password_stdin } => {
            let password = password(password_stdin, &format!("New password for {uid}: "))?;
            id.set_password(SetPasswordRequest {
                name: user_name(&uid),
                password,
                request_id: c.request_id(),
            })
            .await
            .map_err(err)?;
            p.deleted(&format!("password of {} set; its sessions ended", user_name(&uid)));
        }
        UserCmd::Disable { id: uid } => set_disabled(c, p, &uid, true).await?,
        UserCmd::Enable { id: uid } => set_disabled(c, p, &uid, false).await?,
        UserCmd::Delete { id: uid } => {
            c.confirm(&format!("delete {}", user_name(&uid)))?;
            id.delete_user(DeleteUserRequest { name: user_name(&uid), request_id: c.request_id() })
                .await
                .map_err(err)?;
            p.deleted(&format!("{} deleted", user_name(&uid)));
        }
    }
    Ok(0)
}

async fn set_disabled(c: &Clients, p: &Printer, uid: &str, disabled: bool) -> Result<()> {
    let u = c
        .identity()
        .update_user(UpdateUserRequest {
            user: Some(User { name: user_name(uid), disabled, ..Default::default() }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["disabled".into()] }),
            request_id: c.request_id(),
            ..Default::default()
        })
        .await
        .map_err(c.catalog_err())?
        .into_inner();
    if p.json() {
        p.message(&u)
    } else {
        show_users(p, &[u])
    }
    Ok(())
}

/// `cairn member ...`.
pub async fn member(c: &Clients, p: &Printer, cmd: MemberCmd) -> Result {
    let mut id = c.identity();
    let err = c.catalog_err();
    match cmd {
        MemberCmd::Set { user, role: r } => {
            let m = id
                .set_member(SetMemberRequest {
                    parent: c.parent(),
                    user: user_name(&user),
                    role: role(r),
                    request_id: c.request_id(),
                })
                .await
                .map_err(err)?
                .into_inner();
            if p.json() {
                p.message(&m);
            } else {
                println!("{} is {} in {}", m.user, role_word(m.role), c.parent());
            }
        }
        MemberCmd::List => {
            let all = all_pages(|page_token| {
                let mut id = c.identity();
                async move {
                    let r = id
                        .list_members(ListMembersRequest { parent: c.parent(), page_size: 1000, page_token })
                        .await
                        .map_err(c.catalog_err())?
                        .into_inner();
                    Ok((r.members, r.next_page_token))
                }
            })
            .await?;
            if p.json() {
                p.message(&cairn_api::v1::ListMembersResponse {
                    members: all,
                    next_page_token: String::new(),
                });
            } else {
                let mut t = output::table(&["USER", "ROLE"]);
                for m in &all {
                    t.add_row(vec![m.user.clone(), role_word(m.role)]);
                }
                output::print_table(t, "No members.");
            }
        }
        MemberCmd::Remove { user } => {
            let name = format!("{}/members/{}", c.parent(), user.trim().trim_start_matches("users/"));
            c.confirm(&format!("remove {name}"))?;
            id.delete_member(DeleteMemberRequest { name: name.clone(), request_id: c.request_id() })
                .await
                .map_err(err)?;
            p.deleted(&format!("{name} removed"));
        }
    }
    Ok(0)
}

fn sa_name(c: &Clients, id: &str) -> String {
    if id.contains('/') { id.to_owned() } else { format!("{}/serviceAccounts/{}", c.parent(), id.trim()) }
}

/// `cairn service-account ...`.
pub async fn service_account(c: &Clients, p: &Printer, cmd: ServiceAccountCmd) -> Result {
    let mut id = c.identity();
    let err = c.catalog_err();
    match cmd {
        ServiceAccountCmd::Create { id: sid, role: r, display_name } => {
            let sa = id
                .create_service_account(CreateServiceAccountRequest {
                    parent: c.parent(),
                    service_account_id: sid,
                    service_account: Some(ServiceAccount {
                        display_name,
                        role: role(r),
                        ..Default::default()
                    }),
                    request_id: c.request_id(),
                })
                .await
                .map_err(err)?
                .into_inner();
            if p.json() {
                p.message(&sa);
            } else {
                println!(
                    "{} created ({}); make a token: cairn token create {}",
                    sa.name,
                    role_word(sa.role),
                    output::id(&sa.name)
                );
            }
        }
        ServiceAccountCmd::List => {
            let all = all_pages(|page_token| {
                let mut id = c.identity();
                async move {
                    let r = id
                        .list_service_accounts(ListServiceAccountsRequest {
                            parent: c.parent(),
                            page_size: 1000,
                            page_token,
                        })
                        .await
                        .map_err(c.catalog_err())?
                        .into_inner();
                    Ok((r.service_accounts, r.next_page_token))
                }
            })
            .await?;
            if p.json() {
                p.message(&cairn_api::v1::ListServiceAccountsResponse {
                    service_accounts: all,
                    next_page_token: String::new(),
                });
            } else {
                let mut t = output::table(&["ID", "NAME", "ROLE", "CREATED"]);
                for s in &all {
                    t.add_row(vec![
                        output::id(&s.name).to_owned(),
                        s.display_name.clone(),
                        role_word(s.role),
                        p.time(&s.create_time),
                    ]);
                }
                output::print_table(t, "No service accounts.");
            }
        }
        ServiceAccountCmd::Delete { id: sid } => {
            let name = sa_name(c, &sid);
            c.confirm(&format!("delete {name} and revoke its tokens"))?;
            id.delete_service_account(DeleteServiceAccountRequest {
                name: name.clone(),
                request_id: c.request_id(),
            })
            .await
            .map_err(err)?;
            p.deleted(&format!("{name} deleted"));
        }
    }
    Ok(0)
}

fn show_tokens(p: &Printer, tokens: &[ApiToken]) {
    let mut t = output::table(&["NAME", "DISPLAY NAME", "CREATOR", "EXPIRES", "LAST USED", "STATE"]);
    for k in tokens {
        t.add_row(vec![
            k.name.clone(),
            k.display_name.clone(),
            k.creator.clone(),
            if k.expire_time.is_some() { p.time(&k.expire_time) } else { "never".into() },
            if k.last_used_time.is_some() { p.time(&k.last_used_time) } else { "never".into() },
            if k.revoke_time.is_some() { "revoked".into() } else { "active".into() },
        ]);
    }
    output::print_table(t, "No tokens.");
}

/// `cairn token ...`.
pub async fn token(c: &Clients, p: &Printer, cmd: TokenCmd) -> Result {
    let mut id = c.identity();
    let err = c.catalog_err();
    match cmd {
        TokenCmd::Create { service_account, display_name, expires_in } => {
            let expire_time = expires_in.map(|d| {
                cairn_runtime::time::to_timestamp(
                    chrono::Utc::now() + chrono::Duration::from_std(*d).unwrap_or_default(),
                )
            });
            let r = id
                .create_api_token(CreateApiTokenRequest {
                    parent: sa_name(c, &service_account),
                    token: Some(ApiToken { display_name, expire_time, ..Default::default() }),
                })
                .await
                .map_err(err)?
                .into_inner();
            if p.json() {
                p.message(&r);
            } else {
                let t = r.token.unwrap_or_default();
                eprintln!("{} created; the secret is shown only now:", t.name);
                println!("{}", r.secret);
            }
        }
        TokenCmd::List { service_account } => {
            let parent = sa_name(c, &service_account);
            let all = all_pages(|page_token| {
                let (mut id, parent) = (c.identity(), parent.clone());
                async move {
                    let r = id
                        .list_api_tokens(ListApiTokensRequest { parent, page_size: 1000, page_token })
                        .await
                        .map_err(c.catalog_err())?
                        .into_inner();
                    Ok((r.tokens, r.next_page_token))
                }
            })
            .await?;
            if p.json() {
                p.message(&cairn_api::v1::ListApiTokensResponse {
                    tokens: all,
                    next_page_token: String::new(),
                });
            } else {
                show_tokens(p, &all);
            }
        }
        TokenCmd::Revoke { name } => {
            c.confirm(&format!("revoke {name}"))?;
            let t = id
                .revoke_api_token(RevokeApiTokenRequest { name, request_id: c.request_id() })
                .await
                .map_err(err)?
                .into_inner();
            if p.json() { p.message(&t) } else { show_tokens(p, &[t]) }
        }
    }
    Ok(0)
}

fn pool_name(id: &str) -> String {
    if id.starts_with("workerPools/") { id.to_owned() } else { format!("workerPools/{}", id.trim()) }
}

/// `cairn worker-pool ...`.
pub async fn worker_pool(c: &Clients, p: &Printer, cmd: WorkerPoolCmd) -> Result {
    let mut id = c.identity();
    let err = c.catalog_err();
    match cmd {
        WorkerPoolCmd::Create { id: pid, projects, labels, display_name } => {
            let r = id
                .create_worker_pool(CreateWorkerPoolRequest {
                    worker_pool_id: pid,
                    worker_pool: Some(WorkerPool {
                        display_name,
                        projects,
                        labels: pairs(&labels, "--label")?,
                        ..Default::default()
                    }),
                })
                .await
                .map_err(err)?
                .into_inner();
            if p.json() {
                p.message(&r);
            } else {
                let pool = r.worker_pool.unwrap_or_default();
                eprintln!(
                    "{} created; its enrolment token (CAIRN_WORKER_TOKEN) is shown only now:",
                    pool.name
                );
                println!("{}", r.token);
            }
        }
        WorkerPoolCmd::List => {
            let all = all_pages(|page_token| {
                let mut id = c.identity();
                async move {
                    let r = id
                        .list_worker_pools(ListWorkerPoolsRequest { page_size: 1000, page_token })
                        .await
                        .map_err(c.catalog_err())?
                        .into_inner();
                    Ok((r.worker_pools, r.next_page_token))
                }
            })
            .await?;
            if p.json() {
                p.message(&cairn_api::v1::ListWorkerPoolsResponse {
                    worker_pools: all,
                    next_page_token: String::new(),
                });
            } else {
                let mut t = output::table(&["ID", "NAME", "PROJECTS", "LABELS", "CREATED"]);
                for w in &all {
                    t.add_row(vec![
                        output::id(&w.name).to_owned(),
                        w.display_name.clone(),
                        w.projects.join(","),
                        output::labels(&w.labels),
                        p.time(&w.create_time),
                    ]);
                }
                output::print_table(t, "No worker pools.");
            }
        }
        WorkerPoolCmd::Delete { id: pid } => {
            c.confirm(&format!("delete {} (its workers stop at once)", pool_name(&pid)))?;
            id.delete_worker_pool(DeleteWorkerPoolRequest {
                name: pool_name(&pid),
                request_id: c.request_id(),
            })
            .await
            .map_err(err)?;
            p.deleted(&format!("{} deleted", pool_name(&pid)));
        }
    }
    Ok(0)
}

/// `cairn audit list`.
pub async fn audit(c: &Clients, p: &Printer, cmd: AuditCmd) -> Result {
    let AuditCmd::List { all_projects, principal, method, denied, limit } = cmd;
    let parent = if all_projects { "projects/-".to_owned() } else { c.parent() };
    let mut events = Vec::new();
    let mut page_token = String::new();
    while events.len() < limit {
        let r = c
            .audit()
            .list_audit_events(ListAuditEventsRequest {
                parent: parent.clone(),
                page_size: (limit - events.len()).min(1000) as i32,
                page_token,
                principal: principal.clone().unwrap_or_default(),
                method: method.clone().unwrap_or_default(),
                decision: if denied { Decision::Deny as i32 } else { 0 },
                ..Default::default()
            })
            .await
            .map_err(c.catalog_err())?
            .into_inner();
        events.extend(r.events);
        page_token = r.next_page_token;
        if page_token.is_empty() {
            break;
        }
    }
    if p.json() {
        p.message(&ListAuditEventsResponse { events, next_page_token: String::new() });
        return Ok(0);
    }
    let mut t = output::table(&["TIME", "PRINCIPAL", "METHOD", "DECISION", "CODE", "RESOURCE", "DETAIL"]);
    for e in &events {
        t.add_row(vec![
            p.time_abs(&e.time),
            e.principal.clone(),
            e.method.rsplit('/').next().unwrap_or_default().to_owned(),
            output::enum_name(
                Decision::try_from(e.decision).unwrap_or(Decision::Unspecified).as_str_name(),
                "DECISION_",
            ),
            e.code.clone(),
            e.resource.clone(),
            e.detail.clone(),
        ]);
    }
    output::print_table(t, "No audit events.");
    Ok(0)
}
