//! Schedules: table with Run now / Pause / Resume / Delete, the form with a live preview of
//! the next runs, and the heatmap.

use axum::{
    extract::{Path, Query},
    response::{Html, IntoResponse, Redirect},
};
use cairn_api::v1::{self, Role, recurrence};
use maud::{Markup, html};

use crate::{
    form::Posted,
    ui::{self, Errors, Nav},
    web::{Api, Ctx, Fail, Page},
};

/// The recurrence fields of a form: `kind` (preset, interval, calendar, cron) and `expr`.
pub fn recurrence(kind: &str, expr: &str) -> Result<v1::Recurrence, (String, String)> {
    let bad = |m: String| Err(("recurrence".to_owned(), m));
    let kind = match kind {
        "calendar" => recurrence::Kind::Calendar(expr.to_owned()),
        "cron" => recurrence::Kind::Cron(expr.to_owned()),
        "preset" => match expr {
            "twice_daily" => recurrence::Kind::Preset(v1::Preset::TwiceDaily as i32),
            "daily" => recurrence::Kind::Preset(v1::Preset::Daily as i32),
            "weekly" => recurrence::Kind::Preset(v1::Preset::Weekly as i32),
            "every_30_days" => recurrence::Kind::Preset(v1::Preset::Every30Days as i32),
            other => {
                return bad(format!("{other:?} is not a preset (twice_daily, daily, weekly, every_30_days)"));
            }
        },
        "interval" => {
            let d = humantime::parse_duration(expr)
                .map_err(|e| ("recurrence".to_owned(), format!("{expr:?}: {e} (e.g. 6h or 1d 12h)")))?;
            let mins = d.as_secs() / 60;
            recurrence::Kind::Interval(v1::Interval {
                days: (mins / 1440) as i32,
                hours: ((mins % 1440) / 60) as i32,
                minutes: (mins % 60) as i32,
            })
        }
        other => return bad(format!("{other:?} is not a kind of recurrence")),
    };
    Ok(v1::Recurrence { kind: Some(kind) })
}

/// How a recurrence was written.
pub fn written(r: Option<&v1::Recurrence>) -> String {
    match r.and_then(|r| r.kind.as_ref()) {
        Some(recurrence::Kind::Calendar(c)) => format!("calendar {c}"),
        Some(recurrence::Kind::Cron(c)) => format!("cron {c}"),
        Some(recurrence::Kind::Interval(i)) => format!("every {}d {}h {}m", i.days, i.hours, i.minutes),
        Some(recurrence::Kind::Preset(p)) => v1::Preset::try_from(*p)
            .map_or("preset".into(), |p| p.as_str_name().trim_start_matches("PRESET_").to_lowercase()),
        None => "—".into(),
    }
}

pub async fn list(ctx: Ctx, Path(p): Path<String>) -> Page {
    let r = ctx
        .schedules()
        .list_schedules(v1::ListSchedulesRequest {
            parent: format!("projects/{p}"),
            page_size: 500,
            ..Default::default()
        })
        .await?
        .into_inner();
    let (operator, editor) = (ctx.can(&p, Role::Operator), ctx.can(&p, Role::Editor));
    let body = html! {
        h1 { "Schedules" }
        @if editor { p { a.button href=(format!("/projects/{p}/schedules/new")) data-testid="new-schedule" { "New schedule" } } }
        table data-testid="schedules" {
            thead { tr { th { "Schedule" } th { "Task" } th { "Recurrence" } th { "Normalised" } th { "Time zone" } th { "Next run" } th { "Last job" } th { "Missed" } th { "" } } }
            tbody {
                @for s in &r.schedules {
                    @let paused = s.enabled == Some(false);
                    @let base = format!("/{}", s.name);
                    tr data-testid="schedule-row" data-name=(s.display_name) {
                        td { (s.display_name) @if paused { " " span.badge.paused data-testid="paused" { "paused" } } }
                        td { a href=(ui::href(&s.task)) { (ui::id(&s.task)) } }
                        td { code { (written(s.recurrence.as_ref())) } }
                        td { code { (s.normalized_recurrence) } }
                        td { (if s.time_zone.is_empty() { "UTC" } else { &s.time_zone }) }
                        td { @if paused { "—" } @else { (ui::time(s.next_run_time.as_ref())) } }
                        td { @if !s.last_job.is_empty() { a href=(ui::href(&s.last_job)) { (ui::state(s.last_job_state())) } } @else { "—" } }
                        td { (s.missed_runs) }
                        td.actions {
                            @if operator {
                                (ui::action(&ctx, &format!("{base}/run"), "Run now", "run-now", None))
                                @if paused { (ui::action(&ctx, &format!("{base}/resume"), "Resume", "resume", None)) }
                                @else { (ui::action(&ctx, &format!("{base}/pause"), "Pause", "pause", None)) }
                            }
                            @if editor { (ui::action(&ctx, &format!("{base}/delete"), "Delete", "delete", Some("Delete this schedule? Its job history stays."))) }
                        }
                    }
                }
            }
        }
        @if r.schedules.is_empty() { p.empty { "No schedules." } }
    };
    Ok(ui::page(&ctx, Some(&p), Nav::Schedules, "Schedules", body))
}

pub async fn act(ctx: Ctx, Path((p, id, action)): Path<(String, String, String)>, _form: Posted) -> Page {
    let name = format!("projects/{p}/schedules/{id}");
    let mut s = ctx.schedules();
    match action.as_str() {
        "pause" => {
            s.pause_schedule(v1::PauseScheduleRequest { name, ..Default::default() }).await?;
        }
        "resume" => {
            s.resume_schedule(v1::ResumeScheduleRequest { name, ..Default::default() }).await?;
        }
        "delete" => {
            s.delete_schedule(v1::DeleteScheduleRequest { name, etag: String::new(), ..Default::default() })
                .await?;
        }
        "run" => {
            let sched = s.get_schedule(v1::GetScheduleRequest { name }).await?.into_inner();
            let job = ctx
                .jobs()
                .run_task(v1::RunTaskRequest { task: sched.task, ..Default::default() })
                .await?
                .into_inner();
            return Ok(Redirect::to(&ui::href(&job.name)).into_response());
        }
        other => return Err(Fail::NotFound(format!("Action {other:?}"))),
    }
    Ok(Redirect::to(&format!("/projects/{p}/schedules")).into_response())
}

/// The schedule fields of a form under a prefix: none on the schedules page, `s{i}_` for the
/// i-th schedule of the task form (which may attach several).
pub fn fields(p: &str, tasks: &[v1::Task], form: &Posted, errors: &Errors, prefix: &str) -> Markup {
    let n = |f: &str| format!("{prefix}{f}");
    let kind = {
        let k = form.get(&n("kind"));
        if k.is_empty() { "preset".to_owned() } else { k }
    };
    let expr = {
        let e = form.get(&n("expr"));
        if e.is_empty() && kind == "preset" { "daily".to_owned() } else { e }
    };
    let tz = {
        let t = form.get(&n("time_zone"));
        if t.is_empty() { "UTC".to_owned() } else { t }
    };
    let slot: String = url::form_urlencoded::byte_serialize(prefix.as_bytes()).collect();
    html! {
        @if prefix.is_empty() {
            div.field.invalid[errors.of("task").is_some()] {
                label for="task" { "Task" }
                select id="task" name="task" data-testid="field-task" {
                    @for t in tasks { option value=(ui::id(&t.name)) selected[form.get("task") == ui::id(&t.name)] { (t.display_name) } }
                }
                @if let Some(e) = errors.of("task") { p.field-error { (e) } }
            }
        }
        (ui::field(&n("schedule_name"), "Schedule name", &form.get(&n("schedule_name")), errors, html! {}))
        div.field {
            label for=(n("kind")) { "Repeats" }
            select id=(n("kind")) name=(n("kind")) data-testid=(format!("field-{}", n("kind"))) {
                @for (v, l) in [("preset", "Preset"), ("interval", "Custom interval"), ("calendar", "systemd calendar"), ("cron", "cron")] {
                    option value=(v) selected[kind == v] { (l) }
                }
            }
            p.hint { "Presets: twice_daily, daily, weekly, every_30_days. Interval: 6h, 1d 12h. Calendar: Mon..Fri 02:00. Cron: 0 2 * * 1-5." }
        }
        (ui::field(&n("expr"), "Expression", &expr, errors, html! {}))
        (ui::field(&n("time_zone"), "Time zone", &tz, errors, html! {}))
        div.preview id=(n("schedule-preview")) data-preview=(format!("/projects/{p}/schedules/preview?slot={slot}")) data-testid=(n("schedule-preview")) aria-live="polite" {
            p.hint { "The next runs appear here as you type." }
        }
    }
}

#[derive(serde::Deserialize, Default)]
pub struct HeatmapQuery {
    #[serde(default)]
    time_zone: String,
    /// A heatmap cell (`Mon-02`) whose runs are listed.
    #[serde(default)]
    cell: String,
}

/// The heatmap cells (`Mon-02`) a forecast run is active in, in `tz`.
fn cells_of(run: &v1::ForecastRun, tz: chrono_tz::Tz) -> Vec<String> {
    let Some(start) = run.start_time.as_ref().and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
    else {
        return vec![];
    };
    let secs = run.estimated_duration.as_ref().map_or(0, |d| d.seconds.max(0));
    let end = start + chrono::Duration::seconds(secs.max(1));
    let mut out = Vec::new();
    let mut t = start;
    while t < end && out.len() < 24 * 7 {
        let local = t.with_timezone(&tz);
        out.push(local.format("%a-%H").to_string());
        t = (t + chrono::Duration::hours(1)).with_timezone(&chrono::Utc);
        t = t - chrono::Duration::seconds(t.timestamp() % 3600);
    }
    out
}

/// The next runs of an expression in a time zone (an HTML fragment for the form); `slot` is the
/// prefix of the schedule's fields in the form.
pub async fn preview(
    ctx: Api,
    Path(_p): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Html<String>, Fail> {
    let f = Posted { fields: q };
    let slot = f.get("slot");
    let n = |x: &str| f.get(&format!("{slot}{x}"));
    let time_zone = n("time_zone");
    let out = match recurrence(&n("kind"), &n("expr")) {
        Err((_, m)) => html! { p.field-error data-testid="preview-error" { (m) } },
        Ok(r) => {
            let req = v1::PreviewScheduleRequest {
                recurrence: Some(r),
                time_zone: time_zone.clone(),
                count: 5,
                ..Default::default()
            };
            match ctx.schedules().preview_schedule(req).await {
                Ok(r) => {
                    let r = r.into_inner();
                    let tz: Option<chrono_tz::Tz> = time_zone.parse().ok();
                    html! {
                        p { "Normalised: " code data-testid="preview-normalized" { (r.normalized) } }
                        ol data-testid="preview-runs" {
                            @for t in &r.fire_times {
                                @let utc = chrono::DateTime::from_timestamp(t.seconds, 0).unwrap_or_default();
                                li { (match tz { Some(tz) => utc.with_timezone(&tz).format("%a %Y-%m-%d %H:%M %Z").to_string(), None => utc.format("%a %Y-%m-%d %H:%M UTC").to_string() }) }
                            }
                        }
                    }
                }
                Err(s) => html! { p.field-error data-testid="preview-error" { (s.message()) } },
            }
        }
    };
    Ok(Html(out.into_string()))
}

/// The schedule a form describes (its fields under `prefix`); an error names the form field.
pub fn schedule_of(
    p: &str,
    task: &str,
    form: &Posted,
    prefix: &str,
) -> Result<v1::Schedule, (String, String)> {
    let n = |f: &str| form.get(&format!("{prefix}{f}"));
    let recurrence =
        recurrence(&n("kind"), &n("expr")).map_err(|(f, m)| (format!("{prefix}{}", rename(&f)), m))?;
    let name = n("schedule_name");
    Ok(v1::Schedule {
        display_name: match (name.is_empty(), form.get("display_name")) {
            (false, _) => name,
            (true, task) if !task.is_empty() => format!("{task}-{}", n("kind")),
            _ => format!("schedule-{}", n("kind")),
        },
        task: format!("projects/{p}/tasks/{task}"),
        recurrence: Some(recurrence),
        time_zone: n("time_zone"),
        ..Default::default()
    })
}

/// Field names of the API's schedule violations in the form.
pub fn rename(f: &str) -> String {
    let f = f.trim_start_matches("schedule.");
    match f {
        "display_name" => "schedule_name".into(),
        f if f.starts_with("recurrence") => "expr".into(),
        other => other.into(),
    }
}

fn form_page(
    ctx: &Ctx,
    p: &str,
    tasks: &[v1::Task],
    form: &Posted,
    errors: &Errors,
) -> axum::response::Response {
    let body = html! {
        h1 { "New schedule" }
        (errors.banner())
        form.card method="post" action=(format!("/projects/{p}/schedules")) data-testid="schedule-form" {
            (ui::csrf(ctx))
            (fields(p, tasks, form, errors, ""))
            button.primary type="submit" data-testid="save-schedule" { "Create schedule" }
        }
    };
    ui::page(ctx, Some(p), Nav::Schedules, "New schedule", body)
}

pub async fn new(ctx: Ctx, Path(p): Path<String>, Query(q): Query<Vec<(String, String)>>) -> Page {
    let tasks = ctx.tasks(&p, "").await?;
    let f = Posted { fields: q };
    let error = f.get("error");
    let errors = Errors {
        fields: if error.is_empty() { vec![] } else { vec![("expr".into(), error.clone())] },
        message: (!error.is_empty()).then_some(error),
    };
    Ok(form_page(&ctx, &p, &tasks, &f, &errors))
}

pub async fn create(ctx: Ctx, Path(p): Path<String>, form: Posted) -> Page {
    let tasks = ctx.tasks(&p, "").await?;
    let task = form.get("task");
    let sched = match schedule_of(&p, &task, &form, "") {
        Ok(s) => s,
        Err((f, m)) => {
            let errors = Errors { fields: vec![(f, m)], message: Some("The schedule is not valid.".into()) };
            return Ok((axum::http::StatusCode::BAD_REQUEST, form_page(&ctx, &p, &tasks, &form, &errors))
                .into_response());
        }
    };
    match ctx
        .schedules()
        .create_schedule(v1::CreateScheduleRequest {
            parent: format!("projects/{p}"),
            schedule: Some(sched),
            ..Default::default()
        })
        .await
    {
        Ok(_) => Ok(Redirect::to(&format!("/projects/{p}/schedules")).into_response()),
        Err(s) if s.code() == tonic::Code::InvalidArgument => {
            let errors = Errors::from_status(&s, &rename);
            Ok((axum::http::StatusCode::BAD_REQUEST, form_page(&ctx, &p, &tasks, &form, &errors))
                .into_response())
        }
        Err(s) => Err(s.into()),
    }
}

pub async fn heatmap(ctx: Ctx, Path(p): Path<String>, Query(q): Query<HeatmapQuery>) -> Page {
    let tz = if q.time_zone.is_empty() { "UTC".to_owned() } else { q.time_zone.clone() };
    let r = ctx
        .schedules()
        .forecast(v1::ForecastRequest {
            parent: format!("projects/{p}"),
            time_zone: tz.clone(),
            horizon: Some(prost_types::Duration { seconds: 7 * 86_400, nanos: 0 }),
            ..Default::default()
        })
        .await?
        .into_inner();
    let max = r.heatmap.iter().flat_map(|row| row.hours.iter().copied()).fold(0.0f64, f64::max).max(1.0);
    let overlapping: std::collections::BTreeSet<i32> =
        r.overlaps.iter().flat_map(|o| [o.first, o.second]).collect();
    let zone: chrono_tz::Tz = tz.parse().unwrap_or(chrono_tz::UTC);
    let in_cell: Vec<&v1::ForecastRun> = if q.cell.is_empty() {
        vec![]
    } else {
        r.runs.iter().filter(|run| cells_of(run, zone).contains(&q.cell)).collect()
    };
    let tz_q: String = url::form_urlencoded::byte_serialize(tz.as_bytes()).collect();
    let body = html! {
        h1 { "Heatmap" }
        p { "Estimated concurrent runs over the next 7 days, by hour (" (tz) ")." @if r.truncated { " The forecast was truncated." } }
        table.heatmap data-testid="heatmap" {
            thead { tr { th {} @for h in 0..24 { th { (format!("{h:02}")) } } } }
            tbody { @for row in &r.heatmap {
                tr { th { (row.weekday) } @for (h, v) in row.hours.iter().enumerate() {
                    @let level = ((v / max) * 4.0).ceil() as i32;
                    @let cell = format!("{}-{h:02}", row.weekday);
                    td class=(format!("heat h{level}")) .selected[cell == q.cell] title=(format!("{} {h:02}:00 — {v:.1} concurrent", row.weekday)) data-testid="heat-cell" data-value=(format!("{v:.2}")) {
                        @if *v > 0.0 { a href=(format!("?time_zone={tz_q}&cell={cell}")) data-testid="heat-link" { (format!("{v:.0}")) } }
                    }
                } }
            } }
        }
        @if !q.cell.is_empty() {
            section data-testid="cell-runs" {
                h2 { "Runs at " (q.cell.replace('-', " ")) ":00 (" (in_cell.len()) ")" }
                ul { @for run in &in_cell {
                    li { (ui::time(run.start_time.as_ref())) " · " (run.schedule_display_name) " · " (run.task_display_name) }
                } }
            }
        }
        h2 { "Runs (" (r.runs.len()) ")" }
        table data-testid="forecast-runs" {
            thead { tr { th { "Start" } th { "Schedule" } th { "Task" } th { "Estimated" } th { "Stores" } } }
            tbody { @for (i, run) in r.runs.iter().enumerate().take(500) {
                tr.overlap[overlapping.contains(&(i as i32))] {
                    td { (ui::time(run.start_time.as_ref())) }
                    td { (run.schedule_display_name) }
                    td { (run.task_display_name) }
                    td { (ui::duration(&run.estimated_duration)) @if run.estimate_is_default { " (default)" } }
                    td { (run.stores.iter().map(|s| ui::id(s)).collect::<Vec<_>>().join(", ")) }
                }
            } }
        }
        @if !r.overlaps.is_empty() {
            h2 { "Overlaps" }
            ul data-testid="overlaps" { @for o in &r.overlaps {
                @let name = |i: i32| r.runs.get(i as usize).map(|x| x.schedule_display_name.clone()).unwrap_or_default();
                li { (name(o.first)) " and " (name(o.second)) " share " code { (ui::id(&o.shared)) } " for " (ui::duration(&o.overlap)) }
            } }
        }
    };
    Ok(ui::page(&ctx, Some(&p), Nav::Heatmap, "Heatmap", body))
}
