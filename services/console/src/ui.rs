//! The page frame and the small pieces every screen uses.

use axum::response::{Html, IntoResponse, Response};
use cairn_api::v1::{JobState, Role};
use maud::{DOCTYPE, Markup, html};

use crate::web::Ctx;

/// The screens of the navigation bar.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Connectors,
    Tasks,
    Schedules,
    Heatmap,
    Jobs,
    Snapshots,
    Admin,
    None,
}

/// A full page for a signed-in user, inside `project` (None on pages outside projects).
pub fn page(ctx: &Ctx, project: Option<&str>, nav: Nav, title: &str, body: Markup) -> Response {
    let link = |n: Nav, path: &str, label: &str| {
        let p = project.unwrap_or_default();
        html! { a href=(format!("/projects/{p}{path}")) aria-current=[(n == nav).then_some("page")] data-testid=(format!("nav-{}", label.to_lowercase().replace(' ', "-"))) { (label) } }
    };
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header.top {
                    a.brand href="/" { "Cairn" }
                    @if let Some(p) = project {
                        nav {
                            (link(Nav::Overview, "", "Overview"))
                            (link(Nav::Connectors, "/connectors", "Connectors"))
                            (link(Nav::Tasks, "/tasks", "Tasks"))
                            (link(Nav::Schedules, "/schedules", "Schedules"))
                            (link(Nav::Heatmap, "/heatmap", "Heatmap"))
                            (link(Nav::Jobs, "/jobs", "Job History"))
                            (link(Nav::Snapshots, "/snapshots", "Snapshots"))
                            @if ctx.can(p, Role::Admin) { (link(Nav::Admin, "/admin", "Administration")) }
                        }
                    }
                    div.who {
                        form.switch method="get" action="/switch" {
                            label for="project-switch" { "Project" }
                            select id="project-switch" name="project" data-autosubmit data-testid="project-switch" {
                                @for pr in &ctx.projects {
                                    @let id = pr.name.trim_start_matches("projects/");
                                    option value=(id) selected[Some(id) == project] { (if pr.display_name.is_empty() { id } else { &pr.display_name }) }
                                }
                            }
                            noscript { button type="submit" { "Go" } }
                        }
                        span.user data-testid="user" { (ctx.session.user) " · " (role_label(project.map_or(Role::Unspecified, |p| ctx.role(p)))) }
                        form method="post" action="/logout" {
                            input type="hidden" name="_csrf" value=(ctx.csrf());
                            button.link type="submit" data-testid="sign-out" { "Sign out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    };
    Html(markup.into_string()).into_response()
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="color-scheme" content="light dark";
            title { (title) " · Cairn" }
            link rel="stylesheet" href="/assets/console.css";
            script src="/assets/console.js" defer {}
        }
    }
}

/// A page without the navigation (sign-in, errors).
pub fn bare(title: &str, body: Markup) -> Html<String> {
    Html(html! { (DOCTYPE) html lang="en" { (head(title)) body.bare { main { (body) } } } }.into_string())
}

/// A role's name as people say it.
pub fn role_label(r: Role) -> &'static str {
    match r {
        Role::Viewer => "viewer",
        Role::Operator => "operator",
        Role::Editor => "editor",
        Role::Admin => "admin",
        Role::Unspecified => "no role",
    }
}

/// A job state as a badge.
pub fn state(s: JobState) -> Markup {
    let name = s.as_str_name().trim_start_matches("JOB_STATE_");
    html! { span class=(format!("badge state-{}", name.to_lowercase())) data-testid="job-state" { (name) } }
}

/// A timestamp in UTC, to the second; "—" when unset.
pub fn time(t: Option<&prost_types::Timestamp>) -> Markup {
    match t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0)) {
        Some(t) => html! { time datetime=(t.to_rfc3339()) { (t.format("%Y-%m-%d %H:%M:%S UTC")) } },
        None => html! { "—" },
    }
}

/// A duration as people write it (`1day 2h`), empty when unset.
pub fn duration(d: &Option<prost_types::Duration>) -> String {
    d.as_ref()
        .map(|d| {
            humantime::format_duration(std::time::Duration::from_secs(d.seconds.max(0) as u64)).to_string()
        })
        .unwrap_or_default()
}

/// How long ago, roughly ("3 h ago").
pub fn ago(t: Option<&prost_types::Timestamp>) -> String {
    let Some(t) = t else { return "never".into() };
    let secs = chrono::Utc::now().timestamp() - t.seconds;
    match secs {
        s if s < 0 => "in the future".into(),
        s if s < 120 => format!("{s} s ago"),
        s if s < 7200 => format!("{} min ago", s / 60),
        s if s < 172_800 => format!("{} h ago", s / 3600),
        s => format!("{} days ago", s / 86_400),
    }
}

/// Bytes for people (1.5 GiB).
pub fn bytes(n: i64) -> String {
    let mut v = n as f64;
    for unit in ["B", "KiB", "MiB", "GiB", "TiB"] {
        if v < 1024.0 || unit == "TiB" {
            return if unit == "B" { format!("{n} B") } else { format!("{v:.1} {unit}") };
        }
        v /= 1024.0;
    }
    unreachable!()
}

/// The id of a resource name (`projects/p/jobs/<id>` → `<id>`).
pub fn id(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// The console path of a resource name.
pub fn href(name: &str) -> String {
    format!("/{name}")
}

/// A POST button (with CSRF token), optionally confirmed first by the script.
pub fn action(ctx: &Ctx, path: &str, label: &str, testid: &str, confirm: Option<&str>) -> Markup {
    html! {
        form.inline method="post" action=(path) data-confirm=[confirm] {
            input type="hidden" name="_csrf" value=(ctx.csrf());
            button type="submit" data-testid=(testid) { (label) }
        }
    }
}

/// The hidden CSRF field of a form.
pub fn csrf(ctx: &Ctx) -> Markup {
    html! { input type="hidden" name="_csrf" value=(ctx.csrf()); }
}

/// A labelled input with its error, if any.
pub fn field(name: &str, label: &str, value: &str, errors: &Errors, extra: Markup) -> Markup {
    let err = errors.of(name);
    html! {
        div.field.invalid[err.is_some()] {
            label for=(name) { (label) }
            input id=(name) name=(name) value=(value) aria-invalid=[err.map(|_| "true")] data-testid=(format!("field-{name}"));
            (extra)
            @if let Some(e) = err { p.field-error data-testid=(format!("error-{name}")) { (e) } }
        }
    }
}

/// Field errors of a form answer: the API's BadRequest violations by field, and a message.
#[derive(Debug, Default)]
pub struct Errors {
    pub fields: Vec<(String, String)>,
    pub message: Option<String>,
}

impl Errors {
    /// From a failed call: field violations when the API gave them.
    pub fn from_status(s: &tonic::Status, rename: &dyn Fn(&str) -> String) -> Errors {
        use tonic_types::StatusExt as _;
        let fields: Vec<(String, String)> = s
            .get_details_bad_request()
            .map(|b| b.field_violations.into_iter().map(|v| (rename(&v.field), v.description)).collect())
            .unwrap_or_default();
        Errors { message: Some(s.message().to_owned()), fields }
    }

    /// The error of a field (the API's names, e.g. `connector.local_store.path`).
    pub fn of(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(f, _)| f == name).map(|(_, d)| d.as_str())
    }

    /// The banner above a form.
    pub fn banner(&self) -> Markup {
        html! {
            @if let Some(m) = &self.message { div.banner.error role="alert" data-testid="form-error" { (m) } }
        }
    }
}
