//! Tasks: list, the create form by type (connector pickers filtered by role, options of each
//! type, retention with a live prune-simulator preview on the store's real snapshots,
//! notifications), save and run once or attach one or more schedules in the same flow.

use axum::{
    extract::{Path, Query},
    response::{Html, IntoResponse, Redirect},
};
use cairn_api::v1::{self, ConnectorRole, Role, TaskType, task::Options};
use maud::{Markup, html};

use crate::{
    form::Posted,
    ui::{self, Errors, Nav},
    web::{Api, Ctx, Fail, Page},
};

const TYPES: &[(&str, TaskType)] = &[
    ("backup", TaskType::Backup),
    ("restore", TaskType::Restore),
    ("sync", TaskType::Sync),
    ("check", TaskType::Check),
    ("prune", TaskType::Prune),
];

fn type_of(raw: &str) -> Result<TaskType, Fail> {
    TYPES.iter().find(|t| t.0 == raw).map(|t| t.1).ok_or_else(|| {
        Fail::Bad(format!("type: {raw:?} is not a task type (backup, restore, sync, check, prune)"))
    })
}

pub async fn list(ctx: Ctx, Path(p): Path<String>) -> Page {
    let tasks = ctx.tasks(&p, "").await?;
    let body = html! {
        h1 { "Tasks" }
        @if ctx.can(&p, Role::Editor) {
            p { @for (t, _) in TYPES { a.button href=(format!("/projects/{p}/tasks/new?type={t}")) data-testid=(format!("new-task-{t}")) { "New " (t) " task" } " " } }
        }
        table data-testid="tasks" {
            thead { tr { th { "Name" } th { "Type" } th { "Source" } th { "Store" } th { "Labels" } th { "" } } }
            tbody { @for t in &tasks {
                tr data-testid="task-row" {
                    td { a href=(format!("/projects/{p}/jobs?task={}", ui::id(&t.name))) { (t.display_name) } }
                    td { (t.r#type().as_str_name().trim_start_matches("TASK_TYPE_").to_lowercase()) }
                    td { @if !t.source.is_empty() { a href=(ui::href(&t.source)) { (ui::id(&t.source)) } } }
                    td { @if !t.store.is_empty() { a href=(ui::href(&t.store)) { (ui::id(&t.store)) } } }
                    td { (t.labels.join(", ")) }
                    td.actions {
                        @if ctx.can(&p, Role::Operator) {
                            (ui::action(&ctx, &format!("/{}/run", t.name), "Run now", "run-task", None))
                            @if t.r#type() == TaskType::Backup {
                                " "
                                form.inline method="post" action=(format!("/{}/run", t.name)) {
                                    (ui::csrf(&ctx))
                                    input type="hidden" name="full" value="1";
                                    button type="submit" data-testid="run-full" title="Re-read every file this once" { "Run FULL once" }
                                }
                            }
                        }
                        @if ctx.can(&p, Role::Editor) { " " a.button href=(format!("/{}/edit", t.name)) data-testid="edit-task" { "Edit" } }
                    }
                }
            } }
        }
        @if tasks.is_empty() { p.empty { "No tasks." } }
    };
    Ok(ui::page(&ctx, Some(&p), Nav::Tasks, "Tasks", body))
}

/// Run now, with this run's overrides if the form has any (a FULL backup; a restore of
/// another snapshot, paths or destination).
pub async fn run(ctx: Ctx, Path((p, id)): Path<(String, String)>, form: Posted) -> Page {
    let overrides = v1::RunOverrides {
        snapshot: form.get("snapshot"),
        // Typed one per line, or ticked in a snapshot's file tree.
        include_paths: form
            .get("include_paths")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .chain(form.all("include_path"))
            .collect(),
        destination: form.get("destination"),
        full: form.checked("full"),
    };
    let job = ctx
        .jobs()
        .run_task(v1::RunTaskRequest {
            task: format!("projects/{p}/tasks/{id}"),
            request_id: String::new(),
            overrides: (overrides != v1::RunOverrides::default()).then_some(overrides),
        })
        .await?
        .into_inner();
    Ok(Redirect::to(&ui::href(&job.name)).into_response())
}

fn retention_of(f: &Posted) -> v1::RetentionPolicy {
    let n = |k: &str| f.get(k).parse().unwrap_or(0);
    v1::RetentionPolicy {
        keep_last: n("keep_last"),
        keep_hourly: n("keep_hourly"),
        keep_daily: n("keep_daily"),
        keep_weekly: n("keep_weekly"),
        keep_monthly: n("keep_monthly"),
        keep_yearly: n("keep_yearly"),
        keep_within: f.get("keep_within"),
        time_zone: f.get("retention_time_zone"),
        ..Default::default()
    }
}

fn has_retention(r: &v1::RetentionPolicy) -> bool {
    r != &v1::RetentionPolicy { time_zone: r.time_zone.clone(), ..Default::default() }
}

/// The task a form describes.
fn task_of(p: &str, kind: TaskType, f: &Posted) -> v1::Task {
    let conn = |k: &str| {
        let v = f.get(k);
        if v.is_empty() { String::new() } else { format!("projects/{p}/connectors/{v}") }
    };
    let retention = retention_of(f);
    let secs = |k: &str| {
        humantime::parse_duration(&f.get(k))
            .ok()
            .map(|d| prost_types::Duration { seconds: d.as_secs() as i64, nanos: 0 })
    };
    let options = match kind {
        TaskType::Backup => Options::Backup(v1::BackupOptions {
            retention: has_retention(&retention).then_some(retention),
            host: f.get("host"),
            rpo: secs("rpo"),
            // A fleet: sources chosen by labels and patterns instead of one source.
            sources: {
                let list = |k: &str| -> Vec<String> {
                    f.get(k).split(',').map(str::trim).filter(|e| !e.is_empty()).map(str::to_owned).collect()
                };
                let sel = v1::SourceSelector {
                    labels: super::pairs(&f.get("fleet_labels")),
                    include: list("fleet_include"),
                    exclude: list("fleet_exclude"),
                };
                (sel != v1::SourceSelector::default()).then_some(sel)
            },
            ..Default::default()
        }),
        TaskType::Restore => Options::Restore(v1::RestoreOptions {
            snapshot: f.get("snapshot"),
            include_paths: f.get("include_paths").split_whitespace().map(str::to_owned).collect(),
            ..Default::default()
        }),
        TaskType::Sync => Options::Sync(v1::SyncOptions {
            window: f.get("window"),
            retention: has_retention(&retention).then_some(retention),
        }),
        TaskType::Check => Options::Check(v1::CheckOptions {
            window: f.get("window"),
            read_data_percent: f.get("read_data_percent").parse().unwrap_or(0.0),
        }),
        _ => Options::Prune(v1::PruneOptions {
            max_unused_percent: f.get("max_unused_percent").parse().unwrap_or(0.0),
        }),
    };
    let overlap = match f.get("overlap").as_str() {
        "queue_one" => v1::OverlapPolicy::QueueOne,
        "allow" => v1::OverlapPolicy::Allow,
        "cancel_running" => v1::OverlapPolicy::CancelRunning,
        "skip" => v1::OverlapPolicy::Skip,
        _ => v1::OverlapPolicy::Unspecified,
    };
    let emails =
        f.get("emails").split([',', ' ']).filter(|e| !e.is_empty()).map(str::to_owned).collect::<Vec<_>>();
    let webhooks: Vec<v1::WebhookChannel> =
        f.all("webhook").into_iter().map(|url| v1::WebhookChannel { url, ..Default::default() }).collect();
    let mode = match f.get("notify").as_str() {
        "always" => v1::NotificationMode::Always,
        "errors" => v1::NotificationMode::Errors,
        "never" => v1::NotificationMode::Never,
        _ => v1::NotificationMode::Unspecified,
    };
    v1::Task {
        display_name: f.get("display_name"),
        description: f.get("description"),
        r#type: kind as i32,
        source: conn("source"),
        store: conn("store"),
        destination: conn("destination"),
        target_store: conn("target_store"),
        labels: f
            .get("labels")
            .split(',')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
        options: Some(options),
        concurrency: f.get("concurrency").parse().unwrap_or(0),
        timeout: secs("timeout"),
        max_attempts: f.get("max_attempts").parse().unwrap_or(0),
        overlap_policy: overlap as i32,
        notification: (!emails.is_empty()
            || !webhooks.is_empty()
            || mode != v1::NotificationMode::Unspecified)
            .then_some(v1::Notification { mode: mode as i32, emails, webhooks }),
        ..Default::default()
    }
}

/// The duration fields of the form that do not parse (the API never sees them).
pub fn bad_durations(f: &Posted, keys: &[&str]) -> Errors {
    let fields: Vec<(String, String)> = keys
        .iter()
        .filter_map(|k| {
            let v = f.get(k);
            (!v.is_empty() && humantime::parse_duration(&v).is_err())
                .then(|| ((*k).to_owned(), format!("{v:?} is not a duration (e.g. 90m, 26h, 1d 12h)")))
        })
        .collect();
    Errors { message: (!fields.is_empty()).then(|| "Some fields are not valid.".to_owned()), fields }
}

/// API field → form field (`task.backup.retention.keep_daily` → `keep_daily`).
fn rename(f: &str) -> String {
    let f = f.trim_start_matches("task.");
    let f = match f.find('[') {
        Some(i) => &f[..i],
        None => f,
    };
    if let Some(part) = f.strip_prefix("backup.sources.") {
        return format!("fleet_{part}");
    }
    for prefix in ["backup.retention.", "sync.retention.", "backup.", "restore.", "sync.", "check.", "prune."]
    {
        if let Some(rest) = f.strip_prefix(prefix) {
            return rest.to_owned();
        }
    }
    match f {
        "notification.emails" => "emails".into(),
        "overlap_policy" => "overlap".into(),
        other => other.into(),
    }
}

fn picker(
    name: &str,
    label: &str,
    role: ConnectorRole,
    all: &[v1::Connector],
    f: &Posted,
    errors: &Errors,
) -> Markup {
    let err = errors.of(name);
    html! { div.field.invalid[err.is_some()] {
        label for=(name) { (label) }
        select id=(name) name=(name) data-testid=(format!("field-{name}")) {
            option value="" { "—" }
            @for c in all.iter().filter(|c| c.role() == role) { option value=(ui::id(&c.name)) selected[f.get(name) == ui::id(&c.name)] { (c.display_name) " (" (c.r#type) ")" } }
        }
        @if let Some(e) = err { p.field-error data-testid=(format!("error-{name}")) { (e) } }
    } }
}

fn form_page(
    ctx: &Ctx,
    p: &str,
    kind: &str,
    pick: &Pickers,
    f: &Posted,
    errors: &Errors,
    editing: Option<&v1::Task>,
) -> axum::response::Response {
    let (all, snapshots) = (pick.connectors.as_slice(), pick.snapshots.as_slice());
    let field = |name: &str, label: &str| ui::field(name, label, &f.get(name), errors, html! {});
    let t = type_of(kind).unwrap_or(TaskType::Backup);
    let retention = matches!(t, TaskType::Backup | TaskType::Sync);
    let body = html! {
        @match editing { Some(t) => h1 { "Edit " (t.display_name) }, None => h1 { "New " (kind) " task" } }
        (errors.banner())
        form.card method="post" action=(editing.map_or(format!("/projects/{p}/tasks"), |t| format!("/{}", t.name))) data-testid="task-form" {
            (ui::csrf(ctx))
            @if let Some(t) = editing { input type="hidden" name="etag" value=(t.etag); }
            input type="hidden" name="type" value=(kind);
            (field("display_name", "Name"))
            (field("description", "Description"))
            @match t {
                TaskType::Backup => { (picker("source", "Source", ConnectorRole::Source, all, f, errors))
                    details.fleet open[!f.get("fleet_labels").is_empty() || !f.get("fleet_include").is_empty()] {
                        summary { "…or a fleet: every source with these labels" }
                        p.hint { "Leave Source empty. Each run backs up every matching source with its own job, on a worker matching that source." }
                        (field("fleet_labels", "Sources carrying all these labels (key=value, comma-separated)"))
                        (field("fleet_include", "And matching one of (name patterns like web-* or key=value, comma-separated; empty = all)"))
                        (field("fleet_exclude", "Never these (same forms)"))
                    }
                    (picker("store", "Store", ConnectorRole::Store, all, f, errors)) (field("host", "Host name in snapshots (default: the worker's)")) (field("rpo", "Recovery point objective (e.g. 26h; at risk past 75 %)")) }
                TaskType::Restore => { (picker("store", "Store", ConnectorRole::Store, all, f, errors)) (picker("destination", "Destination", ConnectorRole::Destination, all, f, errors)) div.field.invalid[errors.of("snapshot").is_some()] {
                    label for="snapshot" { "Snapshot (pick from the index or type an id; empty = the latest matching the labels)" }
                    input id="snapshot" name="snapshot" value=(f.get("snapshot")) list="snapshot-choices" data-testid="field-snapshot";
                    datalist #snapshot-choices { @for s in snapshots { option value=(s.id) { (s.short_id) " · " (s.time.as_ref().and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0)).map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_default()) " · " (s.hostname) " · " (s.paths.join(", ")) } } }
                    @if let Some(e) = errors.of("snapshot") { p.field-error data-testid="error-snapshot" { (e) } }
                } (field("include_paths", "Only these paths (space-separated)")) }
                TaskType::Sync => { (picker("store", "From store", ConnectorRole::Store, all, f, errors)) (picker("target_store", "To store", ConnectorRole::Store, all, f, errors)) (field("window", "Window (e.g. 7d)")) }
                TaskType::Check => { (picker("store", "Store", ConnectorRole::Store, all, f, errors)) (field("window", "Window (e.g. 30d)")) (field("read_data_percent", "Read data (%)")) }
                _ => { (picker("store", "Store", ConnectorRole::Store, all, f, errors)) (field("max_unused_percent", "Max unused space (%)")) }
            }
            (field("labels", "Labels (comma-separated)"))
            @if retention {
                fieldset #retention data-preview=(format!("/projects/{p}/tasks/simulate")) data-target="prune-preview" {
                    legend { "Retention" }
                    div.grid {
                        @for (k, l) in [("keep_last", "Last"), ("keep_hourly", "Hourly"), ("keep_daily", "Daily"), ("keep_weekly", "Weekly"), ("keep_monthly", "Monthly"), ("keep_yearly", "Yearly")] { (field(k, l)) }
                        (field("keep_within", "Within (e.g. 7d)"))
                        (field("retention_time_zone", "Time zone"))
                    }
                    div #prune-preview.preview data-testid="prune-preview" aria-live="polite" { p.hint { "Pick a store and a rule: what would be kept and removed appears here." } }
                }
            }
            fieldset {
                legend { "Running" }
                (field("concurrency", "Concurrency (0 = default)"))
                (field("timeout", "Timeout (e.g. 2h)"))
                (field("max_attempts", "Attempts (0 = default)"))
                div.field { label for="overlap" { "If the previous run is still going" } select id="overlap" name="overlap" {
                    @for (v, l) in [("", "default"), ("skip", "skip this run"), ("queue_one", "queue one"), ("allow", "run both"), ("cancel_running", "cancel the running one")] { option value=(v) selected[f.get("overlap") == v] { (l) } }
                } }
            }
            fieldset {
                legend { "Notifications" }
                div.field { label for="notify" { "Notify" } select id="notify" name="notify" {
                    @for (v, l) in [("", "default"), ("always", "always"), ("errors", "on errors"), ("never", "never")] { option value=(v) selected[f.get("notify") == v] { (l) } }
                } }
                (field("emails", "Emails (comma-separated)"))
                (field("webhook", "Webhook URL"))
            }
            @if editing.is_none() {
                @let count = schedule_slots(f);
                fieldset data-testid="schedules" {
                    legend { "Schedules (optional)" }
                    input type="hidden" name="schedules" value=(count);
                    @for i in 0..count {
                        @let prefix = format!("s{i}_");
                        div.slot data-testid="schedule-slot" {
                            label.check { input type="checkbox" name=(format!("{prefix}on")) value="1" checked[f.checked(&format!("{prefix}on"))] data-testid=(format!("{prefix}on")); " Attach this schedule" }
                            (super::schedules::fields(p, &[], f, errors, &prefix))
                        }
                    }
                    @if count < MAX_SCHEDULES {
                        button type="submit" name="then" value="add_schedule" data-testid="add-schedule" { "Add another schedule" }
                    }
                }
            }
            div.buttons {
                button.primary type="submit" name="then" value="save" data-testid="save-task" { "Save" }
                button type="submit" name="then" value="run" data-testid="save-and-run" { "Save and run once" }
            }
        }
    };
    ui::page(ctx, Some(p), Nav::Tasks, "New task", body)
}

/// At most this many schedules are attached in the task form (more on the schedules page).
const MAX_SCHEDULES: usize = 8;

/// How many schedule slots the task form shows (the `schedules` field, at least one).
fn schedule_slots(f: &Posted) -> usize {
    f.get("schedules").parse::<usize>().unwrap_or(1).clamp(1, MAX_SCHEDULES)
}

pub async fn new(ctx: Ctx, Path(p): Path<String>, Query(q): Query<Vec<(String, String)>>) -> Page {
    let f = Posted { fields: q };
    let kind = f.get("type");
    type_of(&kind)?;
    let pick = Pickers::load(&ctx, &p, &kind).await?;
    Ok(form_page(&ctx, &p, &kind, &pick, &f, &Errors::default(), None))
}

pub async fn create(ctx: Ctx, Path(p): Path<String>, f: Posted) -> Page {
    let kind = f.get("type");
    let t = type_of(&kind)?;
    let pick = Pickers::load(&ctx, &p, &kind).await?;
    let bad = |errors: Errors| {
        Ok((axum::http::StatusCode::BAD_REQUEST, form_page(&ctx, &p, &kind, &pick, &f, &errors, None))
            .into_response())
    };
    let errors = bad_durations(&f, &["timeout", "rpo"]);
    if !errors.fields.is_empty() {
        return bad(errors);
    }
    if f.get("then") == "add_schedule" {
        // Another schedule slot, ticked; nothing is created (a plain form needs no script).
        let n = schedule_slots(&f);
        let mut more = f.clone();
        more.fields.retain(|(k, _)| k != "schedules");
        more.fields.push(("schedules".into(), (n + 1).min(MAX_SCHEDULES).to_string()));
        more.fields.push((format!("s{n}_on"), "1".into()));
        return Ok(form_page(&ctx, &p, &kind, &pick, &more, &Errors::default(), None).into_response());
    }
    // The schedules are checked before anything is created, so a bad expression changes nothing.
    let mut schedules: Vec<v1::Schedule> = Vec::new();
    for i in 0..schedule_slots(&f) {
        let prefix = format!("s{i}_");
        if !f.checked(&format!("{prefix}on")) {
            continue;
        }
        let invalid = |field: String, m: String| Errors {
            fields: vec![(field, m)],
            message: Some(format!("Schedule {} is not valid.", i + 1)),
        };
        let mut s =
            match super::schedules::schedule_of(&p, "00000000-0000-0000-0000-000000000000", &f, &prefix) {
                Ok(s) => s,
                Err((field, m)) => return bad(invalid(field, m)),
            };
        let probe = v1::PreviewScheduleRequest {
            recurrence: s.recurrence.clone(),
            time_zone: s.time_zone.clone(),
            count: 1,
            ..Default::default()
        };
        if let Err(e) = ctx.schedules().preview_schedule(probe).await {
            let mut errors = Errors::from_status(&e, &|x| format!("{prefix}{}", super::schedules::rename(x)));
            if errors.fields.is_empty() {
                errors.fields.push((format!("{prefix}expr"), e.message().to_owned()));
            }
            errors.message = Some(format!("Schedule {} is not valid.", i + 1));
            return bad(errors);
        }
        // Two schedules of one task are told apart by name.
        if schedules.iter().any(|o| o.display_name == s.display_name) {
            if !f.get(&format!("{prefix}schedule_name")).is_empty() {
                let m = format!("another schedule of this task is named {:?}", s.display_name);
                return bad(invalid(format!("{prefix}schedule_name"), m));
            }
            s.display_name = format!("{}-{}", s.display_name, i + 1);
        }
        schedules.push(s);
    }
    let task = match ctx
        .catalog()
        .create_task(v1::CreateTaskRequest {
            parent: format!("projects/{p}"),
            task: Some(task_of(&p, t, &f)),
            ..Default::default()
        })
        .await
    {
        Ok(t) => t.into_inner(),
        Err(s)
            if matches!(
                s.code(),
                tonic::Code::InvalidArgument | tonic::Code::AlreadyExists | tonic::Code::NotFound
            ) =>
        {
            let mut errors = Errors::from_status(&s, &rename);
            if s.code() == tonic::Code::AlreadyExists {
                errors.fields.push(("display_name".into(), s.message().to_owned()));
            }
            return bad(errors);
        }
        Err(s) => return Err(s.into()),
    };
    for (i, mut s) in schedules.into_iter().enumerate() {
        s.task = task.name.clone();
        if let Err(e) = ctx
            .schedules()
            .create_schedule(v1::CreateScheduleRequest {
                parent: format!("projects/{p}"),
                schedule: Some(s),
                ..Default::default()
            })
            .await
        {
            // The task exists; say what failed about the schedule on the schedules form.
            let n = |x: &str| f.get(&format!("s{i}_{x}"));
            let q = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("task", ui::id(&task.name))
                .append_pair("schedule_name", &n("schedule_name"))
                .append_pair("kind", &n("kind"))
                .append_pair("expr", &n("expr"))
                .append_pair("time_zone", &n("time_zone"))
                .append_pair("error", e.message())
                .finish();
            return Ok(Redirect::to(&format!("/projects/{p}/schedules/new?{q}")).into_response());
        }
    }
    if f.get("then") == "run" {
        let job = ctx
            .jobs()
            .run_task(v1::RunTaskRequest { task: task.name.clone(), ..Default::default() })
            .await?
            .into_inner();
        return Ok(Redirect::to(&ui::href(&job.name)).into_response());
    }
    Ok(Redirect::to(&format!("/projects/{p}/tasks")).into_response())
}

/// The prune simulator: what the form's rule would keep and remove among the store's real
/// snapshots, and the rule that kept each (an HTML fragment).
pub async fn simulate(
    ctx: Api,
    Path(p): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Html<String>, Fail> {
    let f = Posted { fields: q };
    let store = f.get("store");
    let policy = retention_of(&f);
    let out = if store.is_empty() || !has_retention(&policy) {
        html! { p.hint { "Pick a store and a rule: what would be kept and removed appears here." } }
    } else {
        // A new task has no snapshots of its own yet: the rule runs on the store's snapshots
        // from the index (those of other tasks included), the ones this store holds today.
        let mut items = Vec::new();
        let mut token = String::new();
        loop {
            let r = ctx
                .jobs()
                .list_snapshots(v1::ListSnapshotsRequest {
                    parent: format!("projects/{p}"),
                    store: format!("projects/{p}/connectors/{store}"),
                    page_size: 1000,
                    page_token: token,
                    ..Default::default()
                })
                .await?
                .into_inner();
            items.extend(r.snapshots.into_iter().map(|s| v1::SnapshotRef {
                id: s.id,
                time: s.time,
                labels: s.labels,
            }));
            if r.next_page_token.is_empty() || items.len() >= 10_000 {
                break;
            }
            token = r.next_page_token;
        }
        let req = v1::SimulateRetentionRequest {
            policy: Some(policy),
            source: Some(v1::simulate_retention_request::Source::Snapshots(v1::SnapshotList { items })),
        };
        match ctx.jobs().simulate_retention(req).await {
            Ok(r) => {
                let d = r.into_inner().decisions;
                let kept = d.iter().filter(|x| x.keep).count();
                html! {
                    @if d.is_empty() { p.hint { "The store holds no snapshots yet: nothing would be removed." } }
                    p data-testid="prune-summary" { (kept) " kept, " (d.len() - kept) " removed of " (d.len()) " snapshots" }
                    table { tbody { @for x in &d {
                        tr class=(if x.keep { "keep" } else { "remove" }) data-testid="prune-row" {
                            td { code { (&x.snapshot_id[..8.min(x.snapshot_id.len())]) } } td { (ui::time(x.time.as_ref())) }
                            td { (if x.keep { "keep" } else { "remove" }) } td { (x.reasons.join(", ")) }
                        }
                    } } }
                }
            }
            Err(s) => html! { p.field-error data-testid="prune-error" { (s.message()) } },
        }
    };
    Ok(Html(out.into_string()))
}

/// What the form's pickers offer: the project's connectors, and for a restore the newest
/// snapshots of the index.
struct Pickers {
    connectors: Vec<v1::Connector>,
    snapshots: Vec<v1::Snapshot>,
}

impl Pickers {
    async fn load(ctx: &Ctx, p: &str, kind: &str) -> Result<Pickers, Fail> {
        let connectors = ctx.connectors(p, ConnectorRole::Unspecified).await?;
        let snapshots = if kind == "restore" { snapshots_for(ctx, p).await? } else { vec![] };
        Ok(Pickers { connectors, snapshots })
    }
}

/// The newest snapshots of the project.
async fn snapshots_for(ctx: &Ctx, p: &str) -> Result<Vec<v1::Snapshot>, Fail> {
    Ok(ctx
        .jobs()
        .list_snapshots(v1::ListSnapshotsRequest {
            parent: format!("projects/{p}"),
            page_size: 200,
            ..Default::default()
        })
        .await?
        .into_inner()
        .snapshots)
}

/// A task as form fields.
fn fields_of(t: &v1::Task) -> Posted {
    let mut f: Vec<(String, String)> = Vec::new();
    let mut put = |k: &str, v: String| {
        if !v.is_empty() && v != "0" {
            f.push((k.to_owned(), v));
        }
    };
    put("display_name", t.display_name.clone());
    put("description", t.description.clone());
    for (k, v) in [
        ("source", &t.source),
        ("store", &t.store),
        ("destination", &t.destination),
        ("target_store", &t.target_store),
    ] {
        put(k, ui::id(v).to_owned());
    }
    put("labels", t.labels.join(", "));
    let retention = |r: &Option<v1::RetentionPolicy>, put: &mut dyn FnMut(&str, String)| {
        if let Some(r) = r {
            for (k, v) in [
                ("keep_last", r.keep_last),
                ("keep_hourly", r.keep_hourly),
                ("keep_daily", r.keep_daily),
                ("keep_weekly", r.keep_weekly),
                ("keep_monthly", r.keep_monthly),
                ("keep_yearly", r.keep_yearly),
            ] {
                put(k, v.to_string());
            }
            put("keep_within", r.keep_within.clone());
            put("retention_time_zone", r.time_zone.clone());
        }
    };
    match &t.options {
        Some(Options::Backup(b)) => {
            retention(&b.retention, &mut put);
            put("host", b.host.clone());
            put("rpo", ui::duration(&b.rpo));
            if let Some(sel) = &b.sources {
                put("fleet_labels", super::joined(&sel.labels));
                put("fleet_include", sel.include.join(","));
                put("fleet_exclude", sel.exclude.join(","));
            }
        }
        Some(Options::Restore(r)) => {
            put("snapshot", r.snapshot.clone());
            put("include_paths", r.include_paths.join(" "));
        }
        Some(Options::Sync(x)) => {
            put("window", x.window.clone());
            retention(&x.retention, &mut put);
        }
        Some(Options::Check(c)) => {
            put("window", c.window.clone());
            put("read_data_percent", c.read_data_percent.to_string());
        }
        Some(Options::Prune(x)) => put("max_unused_percent", x.max_unused_percent.to_string()),
        None => {}
    }
    put("concurrency", t.concurrency.to_string());
    put("timeout", ui::duration(&t.timeout));
    put("max_attempts", t.max_attempts.to_string());
    put(
        "overlap",
        match t.overlap_policy() {
            v1::OverlapPolicy::Skip => "skip",
            v1::OverlapPolicy::QueueOne => "queue_one",
            v1::OverlapPolicy::Allow => "allow",
            v1::OverlapPolicy::CancelRunning => "cancel_running",
            v1::OverlapPolicy::Unspecified => "",
        }
        .into(),
    );
    if let Some(n) = &t.notification {
        put(
            "notify",
            match n.mode() {
                v1::NotificationMode::Always => "always",
                v1::NotificationMode::Errors => "errors",
                v1::NotificationMode::Never => "never",
                v1::NotificationMode::Unspecified => "",
            }
            .into(),
        );
        put("emails", n.emails.join(", "));
        put("webhook", n.webhooks.first().map(|w| w.url.clone()).unwrap_or_default());
    }
    Posted { fields: f }
}

fn kind_name(t: TaskType) -> &'static str {
    TYPES.iter().find(|x| x.1 == t).map_or("backup", |x| x.0)
}

pub async fn edit(ctx: Ctx, Path((p, id)): Path<(String, String)>) -> Page {
    let t = ctx
        .catalog()
        .get_task(v1::GetTaskRequest { name: format!("projects/{p}/tasks/{id}") })
        .await?
        .into_inner();
    let kind = kind_name(t.r#type());
    let pick = Pickers::load(&ctx, &p, kind).await?;
    Ok(form_page(&ctx, &p, kind, &pick, &fields_of(&t), &Errors::default(), Some(&t)))
}

/// Saves an edited task: every field of the form; webhooks (whose secrets the form never
/// shows) only when their address changed.
pub async fn update(ctx: Ctx, Path((p, id)): Path<(String, String)>, f: Posted) -> Page {
    let name = format!("projects/{p}/tasks/{id}");
    let current = ctx.catalog().get_task(v1::GetTaskRequest { name: name.clone() }).await?.into_inner();
    let t = current.r#type();
    let kind = kind_name(t);
    let errors = bad_durations(&f, &["timeout", "rpo"]);
    if !errors.fields.is_empty() {
        let pick = Pickers::load(&ctx, &p, kind).await?;
        return Ok((
            axum::http::StatusCode::BAD_REQUEST,
            form_page(&ctx, &p, kind, &pick, &f, &errors, Some(&current)),
        )
            .into_response());
    }
    let mut task = task_of(&p, t, &f);
    task.name = name.clone();
    task.etag = f.get("etag");
    let mut paths: Vec<String> = [
        "display_name",
        "description",
        "labels",
        "concurrency",
        "timeout",
        "max_attempts",
        "overlap_policy",
        "notification.mode",
        "notification.emails",
    ]
    .map(String::from)
    .to_vec();
    paths.push(kind.to_owned());
    paths.extend(
        match t {
            TaskType::Backup => vec!["source", "store"],
            TaskType::Restore => vec!["store", "destination"],
            TaskType::Sync => vec!["store", "target_store"],
            _ => vec!["store"],
        }
        .into_iter()
        .map(String::from),
    );
    let old_hook = current
        .notification
        .as_ref()
        .and_then(|n| n.webhooks.first())
        .map(|w| w.url.clone())
        .unwrap_or_default();
    if f.get("webhook") != old_hook {
        paths.push("notification.webhooks".into());
    }
    if task.notification.is_none() {
        task.notification = Some(v1::Notification::default());
    }
    let req = v1::UpdateTaskRequest {
        task: Some(task),
        update_mask: Some(prost_types::FieldMask { paths }),
        ..Default::default()
    };
    match ctx.catalog().update_task(req).await {
        Ok(_) if f.get("then") == "run" => {
            let job = ctx
                .jobs()
                .run_task(v1::RunTaskRequest { task: name, ..Default::default() })
                .await?
                .into_inner();
            Ok(Redirect::to(&ui::href(&job.name)).into_response())
        }
        Ok(_) => Ok(Redirect::to(&format!("/projects/{p}/tasks")).into_response()),
        Err(s)
            if matches!(
                s.code(),
                tonic::Code::InvalidArgument
                    | tonic::Code::AlreadyExists
                    | tonic::Code::NotFound
                    | tonic::Code::Aborted
            ) =>
        {
            let pick = Pickers::load(&ctx, &p, kind).await?;
            let errors = Errors::from_status(&s, &rename);
            Ok((
                axum::http::StatusCode::BAD_REQUEST,
                form_page(&ctx, &p, kind, &pick, &f, &errors, Some(&current)),
            )
                .into_response())
        }
        Err(s) => Err(s.into()),
    }
}
