//! Connectors: list by role and type, create forms per type with the API's field errors next
//! to the fields, the connector page (Dashboard and Scheduling tabs, Test Connection, backup
//! actions on a source).

use axum::{
    extract::{Path, Query},
    response::{IntoResponse, Redirect},
};
use cairn_api::v1::{self, ConnectorRole, Role, TaskType, connector::Config as C};
use maud::{Markup, html};

use crate::{
    form::Posted,
    ui::{self, Errors, Nav},
    web::{Ctx, Fail, Page},
};

/// The connector types the forms offer: (form value, role, label).
const KINDS: &[(&str, ConnectorRole, &str)] = &[
    ("local_path", ConnectorRole::Source, "Source: local paths"),
    ("command", ConnectorRole::Source, "Source: command output"),
    ("local", ConnectorRole::Store, "Store: local repository"),
    ("s3", ConnectorRole::Store, "Store: S3-compatible"),
    ("sftp", ConnectorRole::Store, "Store: SFTP"),
    ("rest", ConnectorRole::Store, "Store: restic REST server"),
    ("local_path_destination", ConnectorRole::Destination, "Destination: local path"),
];

fn role_name(r: ConnectorRole) -> &'static str {
    match r {
        ConnectorRole::Source => "source",
        ConnectorRole::Store => "store",
        ConnectorRole::Destination => "destination",
        ConnectorRole::Unspecified => "—",
    }
}

#[derive(serde::Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    role: String,
    #[serde(default)]
    r#type: String,
}

pub async fn list(ctx: Ctx, Path(p): Path<String>, Query(q): Query<ListQuery>) -> Page {
    let role = match q.role.as_str() {
        "" => ConnectorRole::Unspecified,
        r => ConnectorRole::from_str_name(&r.to_uppercase())
            .ok_or_else(|| Fail::Bad(format!("role: {r:?} is not source, store or destination")))?,
    };
    let r = ctx
        .catalog()
        .list_connectors(v1::ListConnectorsRequest {
            parent: format!("projects/{p}"),
            page_size: 500,
            role: role as i32,
            r#type: q.r#type.clone(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let body = html! {
        h1 { "Connectors" }
        form.filters method="get" {
            label { "Role " select name="role" data-autosubmit data-testid="filter-role" {
                @for (v, l) in [("", "any"), ("source", "source"), ("store", "store"), ("destination", "destination")] { option value=(v) selected[q.role == v] { (l) } }
            } }
            label { "Type " input name="type" value=(q.r#type) size="10"; }
            button type="submit" { "Filter" }
        }
        @if ctx.can(&p, Role::Admin) {
            p { @for (kind, _, label) in KINDS { a.button href=(format!("/projects/{p}/connectors/new?type={kind}")) data-testid=(format!("new-{kind}")) { "New " (label) } " " } }
        }
        table data-testid="connectors" {
            thead { tr { th { "Name" } th { "Role" } th { "Type" } th { "Worker selector" } th { "Last test" } } }
            tbody { @for c in &r.connectors {
                tr data-testid="connector-row" {
                    td { a href=(ui::href(&c.name)) { (c.display_name) } }
                    td { (role_name(c.role())) }
                    td { (c.r#type) }
                    td { (c.worker_selector.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")) }
                    td { (verdict(c.last_test.as_ref())) }
                }
            } }
        }
        @if r.connectors.is_empty() { p.empty { "No connectors." } }
    };
    Ok(ui::page(&ctx, Some(&p), Nav::Connectors, "Connectors", body))
}

/// A connection test's verdict in words.
fn verdict(t: Option<&v1::ConnectionTest>) -> Markup {
    let Some(t) = t else { return html! { "never tested" } };
    let yes = |b: bool| if b { "yes" } else { "no" };
    html! {
        span data-testid="verdict" class=(if t.ok { "badge state-succeeded" } else { "badge state-failed" }) { (if t.ok { "OK" } else { "FAILED" }) }
        " reachable " (yes(t.reachable)) ", initialised " (yes(t.initialized)) ", readable " (yes(t.readable)) ", writable " (yes(t.writable))
        " · " (ui::time(t.time.as_ref())) @if !t.worker.is_empty() { " on " (t.worker) }
        @if !t.message.is_empty() { br; small { (t.message) } }
    }
}

/// Form field → API field (`local_store.path` is `connector.local_store.path`).
fn rename(f: &str) -> String {
    let f = f.trim_start_matches("connector.");
    match f.find('[') {
        Some(i) => f[..i].to_owned(),
        None => f.to_owned(),
    }
}

fn lines(s: &str) -> Vec<String> {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

/// The connector a form describes.
fn connector_of(kind: &str, f: &Posted) -> Result<v1::Connector, Fail> {
    let (role, config) = match kind {
        "local_path" => (
            ConnectorRole::Source,
            C::LocalPathSource(v1::LocalPathSource {
                paths: lines(&f.get("local_path_source.paths")),
                exclude: lines(&f.get("local_path_source.exclude")),
                one_file_system: f.checked("local_path_source.one_file_system"),
                ..Default::default()
            }),
        ),
        "command" => (
            ConnectorRole::Source,
            C::CommandSource(v1::CommandSource {
                command: f.get("command_source.command").split_whitespace().map(str::to_owned).collect(),
                file_name: f.get("command_source.file_name"),
            }),
        ),
        "local" => (ConnectorRole::Store, C::LocalStore(v1::LocalStore { path: f.get("local_store.path") })),
        "s3" => (
            ConnectorRole::Store,
            C::S3Store(v1::S3Store {
                endpoint: f.get("s3_store.endpoint"),
                bucket: f.get("s3_store.bucket"),
                prefix: f.get("s3_store.prefix"),
                region: f.get("s3_store.region"),
                access_key_id: f.get("s3_store.access_key_id"),
                secret_access_key: f.get("s3_store.secret_access_key"),
                ..Default::default()
            }),
        ),
        "sftp" => (
            ConnectorRole::Store,
            C::SftpStore(v1::SftpStore {
                host: f.get("sftp_store.host"),
                port: f.get("sftp_store.port").parse().unwrap_or(22),
                user: f.get("sftp_store.user"),
                path: f.get("sftp_store.path"),
            }),
        ),
        "rest" => (
            ConnectorRole::Store,
            C::RestStore(v1::RestStore {
                url: f.get("rest_store.url"),
                username: f.get("rest_store.username"),
                password: f.get("rest_store.password"),
                ..Default::default()
            }),
        ),
        "local_path_destination" => (
            ConnectorRole::Destination,
            C::LocalPathDestination(v1::LocalPathDestination { path: f.get("local_path_destination.path") }),
        ),
        other => return Err(Fail::Bad(format!("type: {other:?} is not a connector type"))),
    };
    let selector = super::pairs(&f.get("worker_selector"));
    Ok(v1::Connector {
        display_name: f.get("display_name"),
        description: f.get("description"),
        role: role as i32,
        config: Some(config),
        worker_selector: selector,
        labels: if role == ConnectorRole::Source {
            super::pairs(&f.get("labels"))
        } else {
            Default::default()
        },
        create_if_missing: f.checked("create_if_missing"),
        repository_password: if role == ConnectorRole::Store {
            f.get("repository_password")
        } else {
            String::new()
        },
        max_concurrent_jobs: f.get("max_concurrent_jobs").parse().unwrap_or(0),
        rpo: humantime::parse_duration(&f.get("rpo"))
            .ok()
            .filter(|d| !d.is_zero())
            .map(|d| prost_types::Duration { seconds: d.as_secs() as i64, nanos: 0 }),
        ..Default::default()
    })
}

/// The create form (`editing` None) or the edit form of a connector.
fn form_page(
    ctx: &Ctx,
    p: &str,
    kind: &str,
    f: &Posted,
    errors: &Errors,
    editing: Option<&v1::Connector>,
) -> axum::response::Response {
    let field = |name: &str, label: &str| ui::field(name, label, &f.get(name), errors, html! {});
    let secret = |name: &str, label: &str| {
        let err = errors.of(name);
        html! { div.field.invalid[err.is_some()] {
            label for=(name) { (label) }
            input id=(name) name=(name) type="password" autocomplete="new-password" data-testid=(format!("field-{name}"));
            @if let Some(e) = err { p.field-error data-testid=(format!("error-{name}")) { (e) } }
        } }
    };
    let area = |name: &str, label: &str, hint: &str| {
        let err = errors.of(name);
        html! { div.field.invalid[err.is_some()] {
            label for=(name) { (label) }
            textarea id=(name) name=(name) rows="3" data-testid=(format!("field-{name}")) { (f.get(name)) }
            p.hint { (hint) }
            @if let Some(e) = err { p.field-error data-testid=(format!("error-{name}")) { (e) } }
        } }
    };
    let label = KINDS.iter().find(|k| k.0 == kind).map_or("connector", |k| k.2);
    let store = KINDS.iter().any(|k| k.0 == kind && k.1 == ConnectorRole::Store);
    let source = KINDS.iter().any(|k| k.0 == kind && k.1 == ConnectorRole::Source);
    let body = html! {
        @match editing { Some(c) => h1 { "Edit " (c.display_name) }, None => h1 { "New " (label) } }
        @if editing.is_some() { p.hint { "Secrets are never shown: leave a password or key empty to keep it." } }
        (errors.banner())
        form.card method="post" action=(editing.map_or(format!("/projects/{p}/connectors"), |c| format!("/{}", c.name))) data-testid="connector-form" {
            (ui::csrf(ctx))
            input type="hidden" name="type" value=(kind);
            (field("display_name", "Name"))
            (field("description", "Description"))
            @match kind {
                "local_path" => { (area("local_path_source.paths", "Paths", "One absolute path per line.")) (area("local_path_source.exclude", "Exclude", "Glob patterns, one per line.")) label.check { input type="checkbox" name="local_path_source.one_file_system" value="1"; " Stay on one file system" } }
                "command" => { (field("command_source.command", "Command")) (field("command_source.file_name", "File name in the snapshot")) }
                "local" => { (field("local_store.path", "Repository path")) }
                "s3" => { (field("s3_store.endpoint", "Endpoint")) (field("s3_store.bucket", "Bucket")) (field("s3_store.prefix", "Prefix")) (field("s3_store.region", "Region")) (field("s3_store.access_key_id", "Access key id")) (secret("s3_store.secret_access_key", "Secret access key")) }
                "sftp" => { (field("sftp_store.host", "Host")) (field("sftp_store.port", "Port")) (field("sftp_store.user", "User")) (field("sftp_store.path", "Path")) }
                "rest" => { (field("rest_store.url", "URL")) (field("rest_store.username", "User")) (secret("rest_store.password", "Password")) }
                _ => { (field("local_path_destination.path", "Restore into")) }
            }
            @if store {
                (secret("repository_password", "Repository password"))
                label.check { input type="checkbox" name="create_if_missing" value="1" checked[f.checked("create_if_missing") || f.fields.is_empty()]; " Initialise the repository if it does not exist" }
                (field("max_concurrent_jobs", "Concurrent jobs (0 = default)"))
            }
            @if source {
                (field("rpo", "Recovery point objective (e.g. 26h; empty = the backup tasks')"))
                (field("labels", "Labels fleet tasks select by (key=value, comma-separated)"))
            }
            (field("worker_selector", "Worker selector (key=value, comma-separated)"))
            @if let Some(c) = editing { input type="hidden" name="etag" value=(c.etag); }
            button.primary type="submit" data-testid="save-connector" { (if editing.is_some() { "Save changes" } else { "Create connector" }) }
        }
    };
    ui::page(ctx, Some(p), Nav::Connectors, "New connector", body)
}

#[derive(serde::Deserialize, Default)]
pub struct NewQuery {
    #[serde(default)]
    r#type: String,
}

pub async fn new(ctx: Ctx, Path(p): Path<String>, Query(q): Query<NewQuery>) -> Page {
    if !KINDS.iter().any(|k| k.0 == q.r#type) {
        return Err(Fail::Bad(format!("type: {:?} is not a connector type", q.r#type)));
    }
    Ok(form_page(&ctx, &p, &q.r#type, &Posted::default(), &Errors::default(), None))
}

pub async fn create(ctx: Ctx, Path(p): Path<String>, form: Posted) -> Page {
    let kind = form.get("type");
    let connector = connector_of(&kind, &form)?;
    // Secrets are never echoed back into the form.
    let mut echo = Posted { fields: form.fields.clone() };
    echo.fields.retain(|(k, _)| !k.contains("password") && !k.contains("secret"));
    let errors = super::tasks::bad_durations(&form, &["rpo"]);
    if !errors.fields.is_empty() {
        return Ok((axum::http::StatusCode::BAD_REQUEST, form_page(&ctx, &p, &kind, &echo, &errors, None))
            .into_response());
    }
    match ctx
        .catalog()
        .create_connector(v1::CreateConnectorRequest {
            parent: format!("projects/{p}"),
            connector: Some(connector),
            ..Default::default()
        })
        .await
    {
        Ok(c) => Ok(Redirect::to(&ui::href(&c.into_inner().name)).into_response()),
        Err(s) if s.code() == tonic::Code::InvalidArgument || s.code() == tonic::Code::AlreadyExists => {
            let mut errors = Errors::from_status(&s, &rename);
            if s.code() == tonic::Code::AlreadyExists {
                errors.fields.push(("display_name".into(), s.message().to_owned()));
            }
            Ok((axum::http::StatusCode::BAD_REQUEST, form_page(&ctx, &p, &kind, &echo, &errors, None))
                .into_response())
        }
        Err(s) => Err(s.into()),
    }
}

#[derive(serde::Deserialize, Default)]
pub struct Tab {
    #[serde(default)]
    tab: String,
}

pub async fn show(ctx: Ctx, Path((p, id)): Path<(String, String)>, Query(t): Query<Tab>) -> Page {
    let name = format!("projects/{p}/connectors/{id}");
    let c = ctx.catalog().get_connector(v1::GetConnectorRequest { name: name.clone() }).await?.into_inner();
    let tab = if t.tab == "scheduling" { "scheduling" } else { "dashboard" };
    let schedules = ctx
        .schedules()
        .list_schedules(v1::ListSchedulesRequest {
            parent: format!("projects/{p}"),
            connector: name.clone(),
            page_size: 200,
            ..Default::default()
        })
        .await?
        .into_inner()
        .schedules;
    let tasks = ctx.tasks(&p, &name).await?;
    let jobs = ctx
        .jobs()
        .list_jobs(v1::ListJobsRequest {
            parent: format!("projects/{p}"),
            connector: name.clone(),
            page_size: 20,
            ..Default::default()
        })
        .await?
        .into_inner()
        .jobs;
    // A source's protection by each backup task reading it.
    let protection = if c.role() == ConnectorRole::Source {
        ctx.jobs()
            .list_protection_status(v1::ListProtectionStatusRequest {
                parent: format!("projects/{p}"),
                source: name.clone(),
                ..Default::default()
            })
            .await?
            .into_inner()
            .statuses
    } else {
        vec![]
    };
    let mut upcoming: Vec<&v1::Schedule> =
        schedules.iter().filter(|s| s.enabled != Some(false) && s.next_run_time.is_some()).collect();
    upcoming.sort_by_key(|s| s.next_run_time.as_ref().map(|t| t.seconds));
    let body = html! {
        h1 { (c.display_name) " " small { (role_name(c.role())) " · " (c.r#type) } }
        @if !c.description.is_empty() { p { (c.description) } }
        p data-testid="last-test" { "Connection: " (verdict(c.last_test.as_ref())) }
        @if ctx.can(&p, Role::Operator) { (ui::action(&ctx, &format!("/{name}/test"), "Test Connection", "test-connection", None)) }
        @if ctx.can(&p, Role::Admin) { " " a.button href=(format!("/{name}/edit")) data-testid="edit-connector" { "Edit" } }
        @if c.role() == ConnectorRole::Source && ctx.can(&p, Role::Operator) {
            @let backups: Vec<&v1::Task> = tasks.iter().filter(|t| t.r#type() == TaskType::Backup).collect();
            section data-testid="backup-actions" {
                h2 { "Back up now" }
                @if backups.is_empty() { p { "No backup task reads this source yet. " @if ctx.can(&p, Role::Editor) { a href=(format!("/projects/{p}/tasks/new?type=backup&source={id}")) { "Create one" } } } }
                @for t in backups { (ui::action(&ctx, &format!("/{}/run", t.name), &format!("Run {}", t.display_name), "run-backup", None)) }
            }
        }
        nav.tabs {
            a href="?tab=dashboard" aria-current=[(tab == "dashboard").then_some("page")] data-testid="tab-dashboard" { "Dashboard" }
            a href="?tab=scheduling" aria-current=[(tab == "scheduling").then_some("page")] data-testid="tab-scheduling" { "Scheduling" }
        }
        @if tab == "dashboard" {
            @if !protection.is_empty() {
                h2 { "Protection" }
                (super::overview::protection_table(&protection))
            }
            h2 { "Upcoming" }
            ul data-testid="upcoming" { @for s in upcoming.iter().take(10) { li { (ui::time(s.next_run_time.as_ref())) " · " (s.display_name) } } }
            h2 { "Past jobs" }
            (super::jobs::table(&jobs))
            p { a href=(format!("/projects/{p}/jobs?connector={id}")) { "All jobs involving " (c.display_name) } }
        } @else {
            table data-testid="connector-schedules" {
                thead { tr { th { "Schedule" } th { "Task" } th { "Recurrence" } th { "Next run" } } }
                tbody { @for s in &schedules { tr { td { (s.display_name) @if s.enabled == Some(false) { " " span.badge.paused { "paused" } } } td { a href=(ui::href(&s.task)) { (ui::id(&s.task)) } } td { code { (super::schedules::written(s.recurrence.as_ref())) } } td { (ui::time(s.next_run_time.as_ref())) } } } }
            }
            @if schedules.is_empty() { p.empty { "No schedule involves this connector." } }
        }
    };
    Ok(ui::page(&ctx, Some(&p), Nav::Connectors, &c.display_name, body))
}

/// Runs a connection test and waits for the verdict (TestConnector waits for the worker).
pub async fn test(ctx: Ctx, Path((p, id)): Path<(String, String)>, _form: Posted) -> Page {
    let name = format!("projects/{p}/connectors/{id}");
    ctx.catalog()
        .test_connector(v1::TestConnectorRequest { name: name.clone(), timeout: None, ..Default::default() })
        .await?;
    Ok(Redirect::to(&format!("/{name}")).into_response())
}

/// The form value of a connector's type.
fn kind_of(c: &v1::Connector) -> &'static str {
    match c.config {
        Some(C::LocalPathSource(_)) => "local_path",
        Some(C::CommandSource(_)) => "command",
        Some(C::LocalStore(_)) => "local",
        Some(C::S3Store(_)) => "s3",
        Some(C::SftpStore(_)) => "sftp",
        Some(C::RestStore(_)) => "rest",
        Some(C::LocalPathDestination(_)) | None => "local_path_destination",
    }
}

/// A connector as form fields (secrets left out).
fn fields_of(c: &v1::Connector) -> Posted {
    let mut f = vec![
        ("display_name".to_owned(), c.display_name.clone()),
        ("description".to_owned(), c.description.clone()),
        (
            "worker_selector".to_owned(),
            c.worker_selector.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
        ),
        ("max_concurrent_jobs".to_owned(), c.max_concurrent_jobs.to_string()),
        ("rpo".to_owned(), ui::duration(&c.rpo)),
        ("labels".to_owned(), super::joined(&c.labels)),
    ];
    if c.create_if_missing {
        f.push(("create_if_missing".into(), "1".into()));
    }
    let mut put = |k: &str, v: String| f.push((k.to_owned(), v));
    match &c.config {
        Some(C::LocalPathSource(s)) => {
            put("local_path_source.paths", s.paths.join("\n"));
            put("local_path_source.exclude", s.exclude.join("\n"));
            if s.one_file_system {
                put("local_path_source.one_file_system", "1".into());
            }
        }
        Some(C::CommandSource(s)) => {
            put("command_source.command", s.command.join(" "));
            put("command_source.file_name", s.file_name.clone());
        }
        Some(C::LocalStore(s)) => put("local_store.path", s.path.clone()),
        Some(C::S3Store(s)) => {
            for (k, v) in [
                ("endpoint", &s.endpoint),
                ("bucket", &s.bucket),
                ("prefix", &s.prefix),
                ("region", &s.region),
                ("access_key_id", &s.access_key_id),
            ] {
                put(&format!("s3_store.{k}"), v.clone());
            }
        }
        Some(C::SftpStore(s)) => {
            put("sftp_store.host", s.host.clone());
            put("sftp_store.port", s.port.to_string());
            put("sftp_store.user", s.user.clone());
            put("sftp_store.path", s.path.clone());
        }
        Some(C::RestStore(s)) => {
            put("rest_store.url", s.url.clone());
            put("rest_store.username", s.username.clone());
        }
        Some(C::LocalPathDestination(d)) => put("local_path_destination.path", d.path.clone()),
        None => {}
    }
    Posted { fields: f }
}

pub async fn edit(ctx: Ctx, Path((p, id)): Path<(String, String)>) -> Page {
    let c = ctx
        .catalog()
        .get_connector(v1::GetConnectorRequest { name: format!("projects/{p}/connectors/{id}") })
        .await?
        .into_inner();
    Ok(form_page(&ctx, &p, kind_of(&c), &fields_of(&c), &Errors::default(), Some(&c)))
}

/// Saves an edited connector: every field of the form, secrets only when a new one is typed.
pub async fn update(ctx: Ctx, Path((p, id)): Path<(String, String)>, form: Posted) -> Page {
    let name = format!("projects/{p}/connectors/{id}");
    let current =
        ctx.catalog().get_connector(v1::GetConnectorRequest { name: name.clone() }).await?.into_inner();
    let kind = kind_of(&current);
    let errors = super::tasks::bad_durations(&form, &["rpo"]);
    if !errors.fields.is_empty() {
        return Ok((
            axum::http::StatusCode::BAD_REQUEST,
            form_page(&ctx, &p, kind, &form, &errors, Some(&current)),
        )
            .into_response());
    }
    let mut c = connector_of(kind, &form)?;
    c.name = name.clone();
    c.etag = form.get("etag");
    let mut paths: Vec<String> =
        ["display_name", "description", "worker_selector"].map(String::from).to_vec();
    if current.role() == ConnectorRole::Source {
        paths.extend(["rpo", "labels"].map(String::from));
    }
    if current.role() == ConnectorRole::Store {
        paths.extend(["max_concurrent_jobs", "create_if_missing"].map(String::from));
        if !form.get("repository_password").is_empty() {
            paths.push("repository_password".into());
        }
    }
    match kind {
        "s3" => {
            paths.extend(
                ["endpoint", "bucket", "prefix", "region", "access_key_id"].map(|k| format!("s3_store.{k}")),
            );
            if !form.get("s3_store.secret_access_key").is_empty() {
                paths.push("s3_store.secret_access_key".into());
            }
        }
        "rest" => {
            paths.extend(["rest_store.url".to_owned(), "rest_store.username".to_owned()]);
            if !form.get("rest_store.password").is_empty() {
                paths.push("rest_store.password".into());
            }
        }
        "local_path" => paths.push("local_path_source".into()),
        "command" => paths.push("command_source".into()),
        "local" => paths.push("local_store".into()),
        "sftp" => paths.push("sftp_store".into()),
        _ => paths.push("local_path_destination".into()),
    }
    let req = v1::UpdateConnectorRequest {
        connector: Some(c),
        update_mask: Some(prost_types::FieldMask { paths }),
        ..Default::default()
    };
    match ctx.catalog().update_connector(req).await {
        Ok(_) => Ok(Redirect::to(&format!("/{name}")).into_response()),
        Err(s)
            if matches!(
                s.code(),
                tonic::Code::InvalidArgument | tonic::Code::AlreadyExists | tonic::Code::Aborted
            ) =>
        {
            let mut echo = Posted { fields: form.fields.clone() };
            echo.fields.retain(|(k, _)| !k.contains("password") && !k.contains("secret"));
            let errors = Errors::from_status(&s, &rename);
            Ok((
                axum::http::StatusCode::BAD_REQUEST,
                form_page(&ctx, &p, kind, &echo, &errors, Some(&current)),
            )
                .into_response())
        }
        Err(s) => Err(s.into()),
    }
}
