//! Administration of a project: members and roles, service accounts and their API tokens
//! (a new token's secret is shown once), worker pools (platform admins) and the audit log.

use axum::{
    extract::{Path, Query},
    response::{IntoResponse, Redirect},
};
use cairn_api::v1::{self, Role};
use maud::html;

use crate::{
    form::Posted,
    ui::{self, Nav},
    web::{Ctx, Fail, Page},
};

const ROLES: [(&str, Role); 4] = [
    ("viewer", Role::Viewer),
    ("operator", Role::Operator),
    ("editor", Role::Editor),
    ("admin", Role::Admin),
];

fn role_of(raw: &str) -> Result<Role, Fail> {
    ROLES
        .iter()
        .find(|r| r.0 == raw)
        .map(|r| r.1)
        .ok_or_else(|| Fail::Bad(format!("role: {raw:?} is not viewer, operator, editor or admin")))
}

#[derive(serde::Deserialize, Default)]
pub struct AuditQuery {
    #[serde(default)]
    principal: String,
    #[serde(default)]
    method: String,
    #[serde(default)]
    decision: String,
    #[serde(default)]
    page: String,
}

pub async fn page(ctx: Ctx, Path(p): Path<String>, Query(q): Query<AuditQuery>) -> Page {
    page_with(ctx, p, q, None).await
}

async fn page_with(ctx: Ctx, p: String, q: AuditQuery, new_secret: Option<(String, String)>) -> Page {
    let parent = format!("projects/{p}");
    let members = ctx
        .identity()
        .list_members(v1::ListMembersRequest { parent: parent.clone(), page_size: 500, ..Default::default() })
        .await?
        .into_inner()
        .members;
    let accounts = ctx
        .identity()
        .list_service_accounts(v1::ListServiceAccountsRequest {
            parent: parent.clone(),
            page_size: 200,
            ..Default::default()
        })
        .await?
        .into_inner()
        .service_accounts;
    let mut tokens = Vec::new();
    for a in &accounts {
        let t = ctx
            .identity()
            .list_api_tokens(v1::ListApiTokensRequest {
                parent: a.name.clone(),
                page_size: 200,
                ..Default::default()
            })
            .await?
            .into_inner()
            .tokens;
        tokens.push((a, t));
    }
    let decision = match q.decision.as_str() {
        "allow" => v1::Decision::Allow,
        "deny" => v1::Decision::Deny,
        "" => v1::Decision::Unspecified,
        other => return Err(Fail::Bad(format!("decision: {other:?} is not allow or deny"))),
    };
    let audit = ctx
        .audit()
        .list_audit_events(v1::ListAuditEventsRequest {
            parent: parent.clone(),
            page_size: 100,
            page_token: q.page.clone(),
            principal: q.principal.clone(),
            method: q.method.clone(),
            decision: decision as i32,
            ..Default::default()
        })
        .await?
        .into_inner();
    let pools = if ctx.principal.platform_admin {
        ctx.identity()
            .list_worker_pools(v1::ListWorkerPoolsRequest { page_size: 200, ..Default::default() })
            .await?
            .into_inner()
            .worker_pools
    } else {
        vec![]
    };
    let role_select = |name: &str, cur: Role| {
        html! {
            select name=(name) data-testid="field-role" { @for (v, r) in ROLES { option value=(v) selected[r == cur] { (v) } } }
        }
    };
    let body = html! {
        h1 { "Administration" }
        @if let Some((name, secret)) = &new_secret {
            div.banner role="status" data-testid="new-token" {
                p { strong { (name) } " was created. Copy its token now: it is not shown again." }
                code data-testid="new-token-secret" { (secret) }
            }
        }
        section {
            h2 { "Members" }
            table data-testid="members" {
                thead { tr { th { "User" } th { "Role" } th { "" } } }
                tbody { @for m in &members {
                    tr data-testid="member-row" {
                        td { (m.user.trim_start_matches("users/")) }
                        td { (ui::role_label(m.role())) }
                        td { (ui::action(&ctx, &format!("/projects/{p}/admin/members/{}/delete", m.user.trim_start_matches("users/")), "Remove", "remove-member", Some("Remove this member from the project?"))) }
                    }
                } }
            }
            form.inline-form method="post" action=(format!("/projects/{p}/admin/members")) data-testid="member-form" {
                (ui::csrf(&ctx))
                label { "User " input name="user" required data-testid="field-user"; }
                label { " Role " (role_select("role", Role::Viewer)) }
                " " button type="submit" data-testid="set-member" { "Add or change" }
            }
        }
        section {
            h2 { "Service accounts and API tokens" }
            @for (a, ts) in &tokens {
                h3 { (a.display_name) " " small { (ui::role_label(a.role())) } }
                table data-testid="tokens" {
                    thead { tr { th { "Token" } th { "Created" } th { "Expires" } th { "Last used" } th { "" } } }
                    tbody { @for t in ts {
                        tr { td { (t.display_name) } td { (ui::time(t.create_time.as_ref())) } td { (ui::time(t.expire_time.as_ref())) } td { (ui::time(t.last_used_time.as_ref())) }
                            td { @if t.revoke_time.is_some() { "revoked" } @else { (ui::action(&ctx, &format!("/projects/{p}/admin/tokens/revoke?name={}", t.name), "Revoke", "revoke-token", Some("Revoke this token? Programs using it stop working."))) } } }
                    } }
                }
                form method="post" action=(format!("/projects/{p}/admin/tokens")) {
                    (ui::csrf(&ctx))
                    input type="hidden" name="account" value=(a.name);
                    label { "New token " input name="display_name" required data-testid="field-token-name"; }
                    " " button type="submit" data-testid="create-token" { "Create token" }
                }
            }
            form method="post" action=(format!("/projects/{p}/admin/accounts")) data-testid="account-form" {
                (ui::csrf(&ctx))
                label { "New service account (id) " input name="display_name" required pattern="[a-z][a-z0-9._-]*" data-testid="field-account-name"; }
                label { " Role " (role_select("role", Role::Operator)) }
                " " button type="submit" data-testid="create-account" { "Create" }
            }
        }
        @if ctx.principal.platform_admin {
            section {
                h2 { "Worker pools" }
                table data-testid="worker-pools" {
                    thead { tr { th { "Pool" } th { "Projects" } th { "Labels" } th { "Created" } } }
                    tbody { @for w in &pools { tr { td { (w.display_name) } td { (if w.projects.is_empty() { "every project".to_owned() } else { w.projects.join(", ") }) } td { (w.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")) } td { (ui::time(w.create_time.as_ref())) } } } }
                }
                form method="post" action=(format!("/projects/{p}/admin/pools")) data-testid="pool-form" {
                    (ui::csrf(&ctx))
                    label { "New pool (id) " input name="pool" required pattern="[a-z][a-z0-9._-]*" data-testid="field-pool"; }
                    label { " Projects " input name="projects" placeholder="team-a,team-b or *" data-testid="field-pool-projects"; }
                    label { " Labels " input name="labels" placeholder="zone=eu" data-testid="field-pool-labels"; }
                    " " button type="submit" data-testid="create-pool" { "Create pool" }
                }
            }
            section {
                h2 { "Projects" }
                table data-testid="projects" {
                    thead { tr { th { "Project" } th { "Name" } th { "Created" } } }
                    tbody { @for pr in &ctx.projects { tr { td { a href=(format!("/{}", pr.name)) { code { (pr.name.trim_start_matches("projects/")) } } } td { (pr.display_name) } td { (ui::time(pr.create_time.as_ref())) } } } }
                }
                form method="post" action=(format!("/projects/{p}/admin/projects")) data-testid="project-form" {
                    (ui::csrf(&ctx))
                    label { "New project (id) " input name="project_id" required pattern="[a-z][a-z0-9-]*" data-testid="field-project-id"; }
                    label { " Name " input name="display_name" data-testid="field-project-name"; }
                    " " button type="submit" data-testid="create-project" { "Create project" }
                }
            }
        }
        section {
            h2 { "Audit log" }
            form.filters method="get" {
                label { "Principal " input name="principal" value=(q.principal); }
                label { "Method " input name="method" value=(q.method); }
                label { "Decision " select name="decision" { @for (v, l) in [("", "any"), ("allow", "allowed"), ("deny", "refused")] { option value=(v) selected[q.decision == v] { (l) } } } }
                button type="submit" { "Filter" }
            }
            table data-testid="audit" {
                thead { tr { th { "Time" } th { "Who" } th { "Method" } th { "Resource" } th { "Decision" } th { "Code" } } }
                tbody { @for e in &audit.events {
                    tr data-testid="audit-row" { td { (ui::time(e.time.as_ref())) } td { (e.principal) } td { code { (e.method.rsplit('/').next().unwrap_or_default()) } } td { (e.resource) } td { (e.decision().as_str_name().trim_start_matches("DECISION_").to_lowercase()) } td { (e.code) } }
                } }
            }
            @if !audit.next_page_token.is_empty() { a href=(format!("?principal={}&method={}&decision={}&page={}", q.principal, q.method, q.decision, audit.next_page_token)) { "Older events →" } }
        }
    };
    Ok(ui::page(&ctx, Some(&p), Nav::Admin, "Administration", body))
}

pub async fn set_member(ctx: Ctx, Path(p): Path<String>, f: Posted) -> Page {
    let role = role_of(&f.get("role"))?;
    ctx.identity()
        .set_member(v1::SetMemberRequest {
            parent: format!("projects/{p}"),
            user: f.get("user"),
            role: role as i32,
            ..Default::default()
        })
        .await?;
    Ok(Redirect::to(&format!("/projects/{p}/admin")).into_response())
}

pub async fn delete_member(ctx: Ctx, Path((p, user)): Path<(String, String)>, _f: Posted) -> Page {
    ctx.identity()
        .delete_member(v1::DeleteMemberRequest {
            name: format!("projects/{p}/members/{user}"),
            ..Default::default()
        })
        .await?;
    Ok(Redirect::to(&format!("/projects/{p}/admin")).into_response())
}

pub async fn create_account(ctx: Ctx, Path(p): Path<String>, f: Posted) -> Page {
    let role = role_of(&f.get("role"))?;
    let id = f.get("display_name");
    let account = v1::ServiceAccount { display_name: id.clone(), role: role as i32, ..Default::default() };
    ctx.identity()
        .create_service_account(v1::CreateServiceAccountRequest {
            parent: format!("projects/{p}"),
            service_account_id: id,
            service_account: Some(account),
            ..Default::default()
        })
        .await?;
    Ok(Redirect::to(&format!("/projects/{p}/admin")).into_response())
}

/// Creates a token and shows its secret on the answer itself (never in a URL or a cookie).
pub async fn create_token(ctx: Ctx, Path(p): Path<String>, f: Posted) -> Page {
    let account = f.get("account");
    if !account.starts_with(&format!("projects/{p}/serviceAccounts/")) {
        return Err(Fail::Bad("account: not a service account of this project".into()));
    }
    let r = ctx
        .identity()
        .create_api_token(v1::CreateApiTokenRequest {
            parent: account,
            token: Some(v1::ApiToken { display_name: f.get("display_name"), ..Default::default() }),
        })
        .await?
        .into_inner();
    let name = r.token.map(|t| format!("The token {}", t.display_name)).unwrap_or_default();
    page_with(ctx, p, AuditQuery::default(), Some((name, r.secret))).await
}

#[derive(serde::Deserialize)]
pub struct Named {
    name: String,
}

pub async fn revoke_token(ctx: Ctx, Path(p): Path<String>, Query(q): Query<Named>, _f: Posted) -> Page {
    if !q.name.starts_with(&format!("projects/{p}/")) {
        return Err(Fail::Bad("name: not a token of this project".into()));
    }
    ctx.identity().revoke_api_token(v1::RevokeApiTokenRequest { name: q.name, ..Default::default() }).await?;
    Ok(Redirect::to(&format!("/projects/{p}/admin")).into_response())
}

/// Creates a project (platform admins); the creator manages it from its own Administration.
pub async fn create_project(ctx: Ctx, Path(_): Path<String>, f: Posted) -> Page {
    let id = f.get("project_id");
    let name = f.get("display_name");
    let project =
        v1::Project { display_name: if name.is_empty() { id.clone() } else { name }, ..Default::default() };
    let created = ctx
        .catalog()
        .create_project(v1::CreateProjectRequest {
            project: Some(project),
            project_id: id,
            ..Default::default()
        })
        .await?
        .into_inner();
    Ok(Redirect::to(&format!("/{}/admin", created.name)).into_response())
}

/// Creates a worker pool (platform admins) and shows its enrolment token once.
pub async fn create_pool(ctx: Ctx, Path(p): Path<String>, f: Posted) -> Page {
    let projects: Vec<String> =
        f.get("projects").split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
    let mut labels = std::collections::HashMap::new();
    for kv in f.get("labels").split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((k, v)) = kv.split_once('=') else {
            return Err(Fail::Bad(format!("labels: {kv:?} is not key=value")));
        };
        labels.insert(k.trim().to_owned(), v.trim().to_owned());
    }
    let id = f.get("pool");
    let r = ctx
        .identity()
        .create_worker_pool(v1::CreateWorkerPoolRequest {
            worker_pool_id: id.clone(),
            worker_pool: Some(v1::WorkerPool { display_name: id, projects, labels, ..Default::default() }),
        })
        .await?
        .into_inner();
    let name = r.worker_pool.map(|w| format!("Worker pool {}", w.display_name)).unwrap_or_default();
    page_with(ctx, p, AuditQuery::default(), Some((name, r.token))).await
}
