//! Job history, job details with the live log, cancel, snapshots.

use std::convert::Infallible;

use axum::{
    extract::{Path, Query},
    response::{
        IntoResponse, Redirect,
        sse::{Event, KeepAlive, Sse},
    },
};
use cairn_api::v1::{self, JobState, JobTrigger, Role, watch_job_event};
use futures::StreamExt as _;
use maud::{Markup, html};

use crate::{
    form::Posted,
    ui::{self, Nav},
    web::{Ctx, Fail, Page},
};

/// Job history filters (the query string).
#[derive(serde::Deserialize, Default, Debug)]
pub struct Filters {
    #[serde(default)]
    task: String,
    #[serde(default)]
    schedule: String,
    #[serde(default)]
    connector: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    trigger: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    page: String,
    /// The jobs of one fleet run.
    #[serde(default)]
    run: String,
}

fn parse_day(field: &str, raw: &str, end: bool) -> Result<Option<prost_types::Timestamp>, Fail> {
    if raw.is_empty() {
        return Ok(None);
    }
    let d = chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .map_err(|_| Fail::Bad(format!("{field}: {raw:?} is not a date (YYYY-MM-DD)")))?;
    let t = if end { d.succ_opt().unwrap_or(d) } else { d }
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc();
    Ok(Some(prost_types::Timestamp { seconds: t.timestamp(), nanos: 0 }))
}

/// The list request of `f`; errors name the filter.
pub fn request(project: &str, f: &Filters, page_size: i32) -> Result<v1::ListJobsRequest, Fail> {
    let named = |kind: &str, v: &str| {
        if v.is_empty() { String::new() } else { format!("projects/{project}/{kind}/{v}") }
    };
    let state = match f.state.as_str() {
        "" => vec![],
        s => vec![
            JobState::from_str_name(&format!("JOB_STATE_{}", s.to_uppercase()))
                .ok_or_else(|| Fail::Bad(format!("state: {s:?} is not a job state")))? as i32,
        ],
    };
    let trigger = match f.trigger.as_str() {
        "" => vec![],
        s => vec![
            JobTrigger::from_str_name(&format!("JOB_TRIGGER_{}", s.to_uppercase()))
                .ok_or_else(|| Fail::Bad(format!("trigger: {s:?} is not a trigger")))? as i32,
        ],
    };
    Ok(v1::ListJobsRequest {
        parent: format!("projects/{project}"),
        page_size,
        page_token: f.page.clone(),
        task: named("tasks", &f.task),
        schedule: named("schedules", &f.schedule),
        connector: named("connectors", &f.connector),
        states: state,
        triggers: trigger,
        create_time_from: parse_day("from", &f.from, false)?,
        create_time_to: parse_day("to", &f.to, true)?,
        r#type: 0,
        run: f.run.clone(),
        ..Default::default()
    })
}

/// A table of jobs.
pub fn table(jobs: &[v1::Job]) -> Markup {
    html! {
        table.jobs data-testid="jobs" {
            thead { tr { th { "Job" } th { "Task" } th { "Type" } th { "Trigger" } th { "State" } th { "Created" } th { "Duration" } th { "Progress" } } }
            tbody {
                @for j in jobs {
                    tr data-testid="job-row" {
                        td { a href=(ui::href(&j.name)) { code { (&ui::id(&j.name)[..8.min(ui::id(&j.name).len())]) } } }
                        td {
                            @if j.task.is_empty() { "—" } @else { a href=(ui::href(&j.task)) { (if j.task_display_name.is_empty() { ui::id(&j.task) } else { &j.task_display_name }) } }
                            @if !j.run.is_empty() {
                                " · " a href=(format!("/{}/jobs?run={}", j.name.split("/jobs/").next().unwrap_or_default(), j.run)) data-testid="job-run" title="every job of this run, one per source" { "run" }
                            }
                        }
                        td { (j.r#type().as_str_name().trim_start_matches("TASK_TYPE_").to_lowercase()) }
                        td { (j.trigger().as_str_name().trim_start_matches("JOB_TRIGGER_").to_lowercase()) }
                        td { (ui::state(j.state())) }
                        td { (ui::time(j.create_time.as_ref())) }
                        td { (duration(j)) }
                        td { @if let Some(p) = &j.progress { @if j.state() == JobState::Running { progress max="100" value=(p.percent) { (format!("{:.0}%", p.percent)) } } } }
                    }
                }
            }
        }
        @if jobs.is_empty() { p.empty { "No jobs." } }
    }
}

fn duration(j: &v1::Job) -> String {
    match (&j.start_time, &j.end_time) {
        (Some(s), Some(e)) => {
            humantime::format_duration(std::time::Duration::from_secs((e.seconds - s.seconds).max(0) as u64))
                .to_string()
        }
        (Some(s), None) => format!(
            "{} (running)",
            humantime::format_duration(std::time::Duration::from_secs(
                (chrono::Utc::now().timestamp() - s.seconds).max(0) as u64
            ))
        ),
        _ => "—".into(),
    }
}

pub async fn history(ctx: Ctx, Path(p): Path<String>, Query(f): Query<Filters>) -> Page {
    let req = request(&p, &f, 50)?;
    let r = ctx.jobs().list_jobs(req).await?.into_inner();
    let opt = |v: &str, cur: &str, label: &str| html! { option value=(v) selected[v == cur] { (label) } };
    let mut next = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("task", &f.task),
        ("schedule", &f.schedule),
        ("connector", &f.connector),
        ("state", &f.state),
        ("trigger", &f.trigger),
        ("from", &f.from),
        ("to", &f.to),
        ("run", &f.run),
    ] {
        if !v.is_empty() {
            next.append_pair(k, v);
        }
    }
    next.append_pair("page", &r.next_page_token);
    let body = html! {
        h1 { "Job History" }
        @if !f.run.is_empty() {
            p.hint data-testid="run-filter" { "The jobs of one run of a fleet task (one per source). " a href=(format!("/projects/{p}/jobs")) { "All jobs" } }
        }
        form.filters method="get" data-testid="job-filters" {
            @if !f.run.is_empty() { input type="hidden" name="run" value=(f.run); }
            label { "Task id " input name="task" value=(f.task) size="10"; }
            label { "Schedule id " input name="schedule" value=(f.schedule) size="10"; }
            label { "Connector id " input name="connector" value=(f.connector) size="10"; }
            label { "State " select name="state" data-testid="filter-state" {
                (opt("", &f.state, "any"))
                @for s in ["queued", "running", "succeeded", "failed", "cancelled"] { (opt(s, &f.state, s)) }
            } }
            label { "Trigger " select name="trigger" {
                (opt("", &f.trigger, "any"))
                @for s in ["schedule", "manual", "catch_up"] { (opt(s, &f.trigger, s)) }
            } }
            label { "From " input type="date" name="from" value=(f.from); }
            label { "To " input type="date" name="to" value=(f.to); }
            button type="submit" { "Filter" }
        }
        (table(&r.jobs))
        @if !r.next_page_token.is_empty() { p { a href=(format!("?{}", next.finish())) data-testid="next-page" { "Older jobs →" } } }
    };
    Ok(ui::page(&ctx, Some(&p), Nav::Jobs, "Job History", body))
}

/// The summary panel of a job (re-rendered live).
pub fn summary(ctx: &Ctx, p: &str, j: &v1::Job) -> Markup {
    let live = matches!(j.state(), JobState::Queued | JobState::Running);
    html! {
        dl.summary {
            dt { "Job" } dd { code data-testid="job-id" { (ui::id(&j.name)) } }
            dt { "State" } dd { (ui::state(j.state())) @if j.cancel_requested { " (cancel requested)" } @if !j.wait_reason.is_empty() && j.state() == JobState::Queued { " — " (j.wait_reason) } }
            dt { "Task" } dd { @if j.task.is_empty() { "—" } @else { a href=(ui::href(&j.task)) { (if j.task_display_name.is_empty() { ui::id(&j.task) } else { &j.task_display_name }) } } }
            @if !j.run.is_empty() {
                dt { "Run" } dd { a href=(format!("/projects/{p}/jobs?run={}", j.run)) data-testid="job-run" { "every job of this run" } " (one per source of the fleet task)" }
            }
            @if !j.source.is_empty() { dt { "Source" } dd { a href=(ui::href(&j.source)) data-testid="job-source" { (ui::id(&j.source)) } } }
            dt { "Trigger" } dd { (j.trigger().as_str_name().trim_start_matches("JOB_TRIGGER_").to_lowercase()) @if !j.schedule.is_empty() { " · " a href="../schedules" { "schedule " (ui::id(&j.schedule)) } } }
            dt { "Attempt" } dd { (j.attempt) " of " (j.max_attempts) }
            dt { "Worker" } dd { (if j.worker.is_empty() { "—" } else { &j.worker }) }
            dt { "Created" } dd { (ui::time(j.create_time.as_ref())) }
            dt { "Started" } dd { (ui::time(j.start_time.as_ref())) }
            dt { "Ended" } dd { (ui::time(j.end_time.as_ref())) }
            dt { "Duration" } dd { (duration(j)) }
            @if let Some(pr) = j.progress.as_ref().filter(|_| live) {
                dt { "Progress" } dd {
                    progress max="100" value=(pr.percent) data-testid="job-progress" { (format!("{:.0}%", pr.percent)) }
                    " " (format!("{:.0}%", pr.percent)) " · " (pr.phase) " · " (pr.files_done) " files, " (ui::bytes(pr.bytes_done))
                    @if pr.bytes_total > 0 { " of " (ui::bytes(pr.bytes_total)) }
                }
            }
            @if let Some(s) = &j.stats {
                dt { "Stats" } dd data-testid="job-stats" {
                    (s.files_new) " new, " (s.files_changed) " changed, " (s.files_unmodified) " unmodified files; "
                    (ui::bytes(s.bytes_processed)) " processed, " (ui::bytes(s.bytes_added)) " added"
                    @if s.files_restored > 0 { "; " (s.files_restored) " files restored" }
                    @if s.snapshots_forgotten > 0 { "; " (s.snapshots_forgotten) " snapshots forgotten" }
                    @if s.snapshots_copied > 0 { "; " (s.snapshots_copied) " snapshots copied" }
                }
            }
            @if !j.snapshot.is_empty() {
                dt { "Snapshot" } dd {
                    a data-testid="job-snapshot" href=(format!("/projects/{p}/snapshots?task={}&snapshot={}", ui::id(&j.task), j.snapshot)) { code { (j.snapshot) } }
                    " " a.button data-testid="browse-snapshot" href=(format!("/projects/{p}/snapshots/browse?snapshot={}", j.snapshot)) { "Browse files" }
                }
            }
            @if let Some(o) = &j.overrides {
                dt { "This run only" } dd data-testid="job-overrides" {
                    @if o.full { "FULL backup (every file re-read). " }
                    @if !o.snapshot.is_empty() { "snapshot " code { (&o.snapshot[..8.min(o.snapshot.len())]) } ". " }
                    @if !o.include_paths.is_empty() { "paths " (o.include_paths.join(", ")) ". " }
                    @if !o.destination.is_empty() { "into " a href=(ui::href(&o.destination)) { (ui::id(&o.destination)) } "." }
                }
            }
            @if !j.error.is_empty() { dt { "Error" } dd.error data-testid="job-error" { (j.error) } }
        }
        @if live && ctx.can(p, Role::Operator) && !j.cancel_requested {
            (ui::action(ctx, &format!("/{}/cancel", j.name), "Cancel job", "cancel-job", Some("Cancel this job?")))
        }
    }
}

fn log_line(l: &v1::LogLine) -> Markup {
    let level = l.level().as_str_name().trim_start_matches("LOG_LEVEL_").to_lowercase();
    let t = l.time.as_ref().and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32));
    html! { div class=(format!("line {level}")) data-seq=(l.seq) { span.t { (t.map(|t| t.format("%H:%M:%S").to_string()).unwrap_or_default()) } " " span.lv { (level) } " " (l.message) } }
}

pub async fn details(ctx: Ctx, Path((p, id)): Path<(String, String)>) -> Page {
    let name = format!("projects/{p}/jobs/{id}");
    let job = ctx
        .jobs()
        .get_job(v1::GetJobRequest { name: name.clone(), ..Default::default() })
        .await?
        .into_inner();
    let mut lines = vec![];
    let mut after = 0;
    loop {
        let r = ctx
            .jobs()
            .list_job_logs(v1::ListJobLogsRequest { name: name.clone(), page_size: 1000, after_seq: after })
            .await?
            .into_inner();
        let full = r.lines.len() >= 1000;
        after = r.last_seq.max(after);
        lines.extend(r.lines);
        if !full {
            break;
        }
    }
    let live = matches!(job.state(), JobState::Queued | JobState::Running);
    let last = lines.last().map_or(0, |l| l.seq);
    let body = html! {
        h1 { "Job " (&ui::id(&job.name)[..8.min(ui::id(&job.name).len())]) }
        section #job-summary data-testid="job-summary" { (summary(&ctx, &p, &job)) }
        h2 { "Log" }
        div.log #job-log data-testid="job-log" data-events=[live.then(|| format!("/{name}/events?from={}", last + 1))] {
            @for l in &lines { (log_line(l)) }
        }
    };
    Ok(ui::page(&ctx, Some(&p), Nav::Jobs, "Job details", body))
}

#[derive(serde::Deserialize)]
pub struct From {
    #[serde(default)]
    from: i64,
}

/// Live updates of a job: `log` events carry a rendered line, `job` events the summary panel,
/// `end` closes the stream once the job is final.
pub async fn events(
    ctx: Ctx,
    Path((p, id)): Path<(String, String)>,
    Query(q): Query<From>,
) -> Result<impl IntoResponse, Fail> {
    let name = format!("projects/{p}/jobs/{id}");
    let stream =
        ctx.jobs().watch_job(v1::WatchJobRequest { name, from_seq: q.from.max(0) }).await?.into_inner();
    let out = stream.take_while(|e| std::future::ready(e.is_ok())).filter_map(move |e| {
        let ev = match e.ok().and_then(|e| e.event) {
            Some(watch_job_event::Event::LogLine(l)) => {
                Some(Event::default().event("log").id(l.seq.to_string()).data(log_line(&l).into_string()))
            }
            Some(watch_job_event::Event::Job(j)) => {
                let done = !matches!(j.state(), JobState::Queued | JobState::Running);
                Some(
                    Event::default()
                        .event(if done { "end" } else { "job" })
                        .data(summary(&ctx, &p, &j).into_string()),
                )
            }
            None => None,
        };
        std::future::ready(ev.map(Ok::<_, Infallible>))
    });
    Ok(Sse::new(out).keep_alive(KeepAlive::default()))
}

pub async fn cancel(ctx: Ctx, Path((p, id)): Path<(String, String)>, _form: Posted) -> Page {
    let name = format!("projects/{p}/jobs/{id}");
    ctx.jobs()
        .cancel_job(v1::CancelJobRequest {
            name: name.clone(),
            reason: format!("cancelled in the console by {}", ctx.session.user),
            ..Default::default()
        })
        .await?;
    Ok(Redirect::to(&format!("/{name}")).into_response())
}

#[derive(serde::Deserialize, Default)]
pub struct SnapshotQuery {
    #[serde(default)]
    store: String,
    #[serde(default)]
    task: String,
    #[serde(default)]
    snapshot: String,
}

pub async fn snapshots(ctx: Ctx, Path(p): Path<String>, Query(q): Query<SnapshotQuery>) -> Page {
    let stores = ctx.connectors(&p, v1::ConnectorRole::Store).await?;
    // A task alone names its store.
    let store = match (q.store.is_empty(), q.task.is_empty()) {
        (false, _) => q.store.clone(),
        (true, false) => {
            let t = ctx
                .catalog()
                .get_task(v1::GetTaskRequest { name: format!("projects/{p}/tasks/{}", q.task) })
                .await?
                .into_inner();
            ui::id(&t.store).to_owned()
        }
        (true, true) => stores.first().map(|s| ui::id(&s.name).to_owned()).unwrap_or_default(),
    };
    let tasks = if store.is_empty() {
        vec![]
    } else {
        ctx.tasks(&p, &format!("projects/{p}/connectors/{store}")).await?
    };
    let snaps = if store.is_empty() {
        vec![]
    } else {
        ctx.jobs()
            .list_snapshots(v1::ListSnapshotsRequest {
                parent: format!("projects/{p}"),
                store: format!("projects/{p}/connectors/{store}"),
                task: if q.task.is_empty() {
                    String::new()
                } else {
                    format!("projects/{p}/tasks/{}", q.task)
                },
                page_size: 500,
                ..Default::default()
            })
            .await?
            .into_inner()
            .snapshots
    };
    // A chosen snapshot can be restored by one of the store's RESTORE tasks, this once with
    // that snapshot, some paths and another destination if wanted.
    let chosen = snaps.iter().find(|s| !q.snapshot.is_empty() && s.id.starts_with(&q.snapshot));
    let restores: Vec<&v1::Task> = tasks.iter().filter(|t| t.r#type() == v1::TaskType::Restore).collect();
    let destinations = if chosen.is_some() && ctx.can(&p, Role::Operator) {
        ctx.connectors(&p, v1::ConnectorRole::Destination).await?
    } else {
        vec![]
    };
    let task_name = |name: &str| {
        tasks
            .iter()
            .find(|t| t.name == name)
            .map_or_else(|| ui::id(name).to_owned(), |t| t.display_name.clone())
    };
    let body = html! {
        h1 { "Snapshots" }
        form.filters method="get" {
            label { "Store " select name="store" data-autosubmit data-testid="snapshot-store" {
                @for s in &stores { option value=(ui::id(&s.name)) selected[ui::id(&s.name) == store] { (s.display_name) } }
            } }
            label { "Task " select name="task" data-autosubmit data-testid="snapshot-task" {
                option value="" { "all tasks" }
                @for t in &tasks { option value=(ui::id(&t.name)) selected[ui::id(&t.name) == q.task] { (t.display_name) } }
            } }
            noscript { button type="submit" { "Show" } }
        }
        @if let Some(s) = chosen.filter(|_| ctx.can(&p, Role::Operator)) {
            section.card data-testid="restore-snapshot" {
                h2 { "Restore " code { (s.short_id) } }
                @if restores.is_empty() {
                    p.hint { "No RESTORE task reads this store yet: " a href=(format!("/projects/{p}/tasks/new?type=restore&store={store}")) { "create one" } ", then restore from here." }
                } @else {
                    form method="post" action=(format!("/projects/{p}/snapshots/restore")) data-testid="restore-form" {
                        (ui::csrf(&ctx))
                        input type="hidden" name="snapshot" value=(s.id);
                        div.field { label for="restore-task" { "With task" }
                            select id="restore-task" name="task" data-testid="restore-task" {
                                @for t in &restores { option value=(ui::id(&t.name)) { (t.display_name) } }
                            }
                            p.hint { "This run only: the task keeps its own snapshot, paths and destination." }
                        }
                        div.field { label for="include_paths" { "Only these paths (one per line; empty = everything)" }
                            textarea id="include_paths" name="include_paths" rows="3" data-testid="restore-paths" placeholder=(s.paths.first().cloned().unwrap_or_default()) {}
                        }
                        div.field { label for="destination" { "Into" }
                            select id="destination" name="destination" data-testid="restore-destination" {
                                option value="" { "the task's destination" }
                                @for d in &destinations { option value=(d.name) { (d.display_name) } }
                            }
                        }
                        button.primary type="submit" data-testid="restore-submit" { "Restore" }
                    }
                }
            }
        }
        table data-testid="snapshots" {
            thead { tr { th { "Snapshot" } th { "Time" } th { "Task" } th { "Host" } th { "Paths" } th { "Labels" } th { "Size" } th { "Job" } } }
            tbody {
                @for s in &snaps {
                    tr.highlight[!q.snapshot.is_empty() && s.id.starts_with(&q.snapshot)] data-testid="snapshot-row" {
                        td { a href=(format!("/{}/snapshots/{}", s.store, s.id)) data-testid="browse" { code { (&s.id[..8.min(s.id.len())]) } } }
                        td { (ui::time(s.time.as_ref())) }
                        td { @if s.task.is_empty() { "—" } @else { a href=(format!("/projects/{p}/snapshots?store={store}&task={}", ui::id(&s.task))) { (task_name(&s.task)) } } }
                        td { (s.hostname) }
                        td { (s.paths.join(", ")) }
                        td { (s.labels.iter().filter(|l| !l.starts_with("cairn-task=") && !l.starts_with("cairn-source=")).cloned().collect::<Vec<_>>().join(", ")) }
                        td { (ui::bytes(s.total_bytes)) }
                        td { @if s.job.is_empty() { "—" } @else { a href=(ui::href(&s.job)) { "job" } } }
                    }
                }
            }
        }
        @if snaps.is_empty() { p.empty { @if q.task.is_empty() { "No snapshots in the index for this store yet." } @else { "No snapshots of this task in the index of this store yet." } } }
    };
    Ok(ui::page(&ctx, Some(&p), Nav::Snapshots, "Snapshots", body))
}

/// Restores a chosen snapshot with one of the store's RESTORE tasks, this once (RunTask with
/// overrides), and opens the job.
pub async fn restore(ctx: Ctx, Path(p): Path<String>, form: Posted) -> Page {
    let task = form.get("task");
    if task.is_empty() {
        return Err(Fail::Bad("task: pick the RESTORE task to run".into()));
    }
    super::tasks::run(ctx, Path((p, task)), form).await
}
