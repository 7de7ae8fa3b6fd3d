//! Every screen's routes.

mod admin;
mod browse;
mod connectors;
mod jobs;
mod overview;
mod schedules;
mod sign_in;
mod tasks;

use axum::{
    Router,
    extract::Query,
    http::header,
    middleware,
    response::{IntoResponse, Redirect},
    routing::{get, post},
};

use crate::{
    App,
    web::{Ctx, Fail, Page, session_layer},
};

pub fn routes(app: App) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/switch", get(switch))
        .route("/login", get(sign_in::form).post(sign_in::submit))
        .route("/logout", post(sign_in::logout))
        .route("/login/oidc", get(sign_in::oidc_start))
        .route("/login/oidc/callback", get(sign_in::oidc_callback))
        .route("/projects/{p}", get(overview::page))
        .route("/projects/{p}/jobs", get(jobs::history))
        .route("/projects/{p}/jobs/{id}", get(jobs::details))
        .route("/projects/{p}/jobs/{id}/events", get(jobs::events))
        .route("/projects/{p}/jobs/{id}/cancel", post(jobs::cancel))
        .route("/projects/{p}/snapshots", get(jobs::snapshots))
        .route("/projects/{p}/snapshots/restore", post(jobs::restore))
        .route("/projects/{p}/snapshots/browse", get(browse::find))
        .route("/projects/{p}/schedules", get(schedules::list).post(schedules::create))
        .route("/projects/{p}/schedules/new", get(schedules::new))
        .route("/projects/{p}/schedules/preview", get(schedules::preview))
        .route("/projects/{p}/schedules/{id}/{action}", post(schedules::act))
        .route("/projects/{p}/heatmap", get(schedules::heatmap))
        .route("/projects/{p}/connectors", get(connectors::list).post(connectors::create))
        .route("/projects/{p}/connectors/new", get(connectors::new))
        .route("/projects/{p}/connectors/{id}", get(connectors::show).post(connectors::update))
        .route("/projects/{p}/connectors/{id}/edit", get(connectors::edit))
        .route("/projects/{p}/connectors/{id}/test", post(connectors::test))
        .route("/projects/{p}/connectors/{store}/snapshots/{id}", get(browse::page))
        .route("/projects/{p}/connectors/{store}/snapshots/{id}/download", get(browse::download))
        .route("/projects/{p}/tasks", get(tasks::list).post(tasks::create))
        .route("/projects/{p}/tasks/new", get(tasks::new))
        .route("/projects/{p}/tasks/simulate", get(tasks::simulate))
        .route("/projects/{p}/tasks/{id}", post(tasks::update))
        .route("/projects/{p}/tasks/{id}/edit", get(tasks::edit))
        .route("/projects/{p}/tasks/{id}/run", post(tasks::run))
        .route("/projects/{p}/admin", get(admin::page))
        .route("/projects/{p}/admin/members", post(admin::set_member))
        .route("/projects/{p}/admin/members/{user}/delete", post(admin::delete_member))
        .route("/projects/{p}/admin/accounts", post(admin::create_account))
        .route("/projects/{p}/admin/tokens", post(admin::create_token))
        .route("/projects/{p}/admin/projects", post(admin::create_project))
        .route("/projects/{p}/admin/pools", post(admin::create_pool))
        .route("/projects/{p}/admin/tokens/revoke", post(admin::revoke_token))
        .route("/assets/console.css", get(|| asset("text/css", include_str!("../../assets/console.css"))))
        .route(
            "/assets/console.js",
            get(|| asset("text/javascript", include_str!("../../assets/console.js"))),
        )
        .route("/health", get(|| async { "OK" }))
        .fallback(|| async { Fail::NotFound("This page".into()) })
        .layer(middleware::from_fn_with_state(app.clone(), session_layer))
        .with_state(app)
}

async fn asset(kind: &'static str, body: &'static str) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "public, max-age=300")], body)
}

/// The first project the caller can see.
async fn home(ctx: Ctx) -> Page {
    match ctx.projects.first() {
        Some(p) => Ok(Redirect::to(&format!("/{}", p.name)).into_response()),
        None => Ok(crate::ui::page(
            &ctx,
            None,
            crate::ui::Nav::None,
            "No project",
            maud::html! { h1 { "No project yet" } p { "You are not a member of any project. Ask an administrator to add you." } },
        )),
    }
}

#[derive(serde::Deserialize)]
struct Switch {
    project: String,
}

/// The project switcher (a plain GET form).
async fn switch(ctx: Ctx, Query(q): Query<Switch>) -> Page {
    if !ctx.projects.iter().any(|p| p.name == format!("projects/{}", q.project)) {
        return Err(Fail::NotFound(format!("Project {:?}", q.project)));
    }
    Ok(Redirect::to(&format!("/projects/{}", q.project)).into_response())
}

/// `key=value` pairs typed comma-separated (a selector, labels); pairs without `=` are dropped
/// here and the empty key or value is refused by the API next to its field.
pub fn pairs(raw: &str) -> std::collections::HashMap<String, String> {
    raw.split(',')
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())))
        .collect()
}

/// The inverse of [`pairs`], sorted.
pub fn joined(m: &std::collections::HashMap<String, String>) -> String {
    let mut out: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
    out.sort();
    out.join(",")
}
