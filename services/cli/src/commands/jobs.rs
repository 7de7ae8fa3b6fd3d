//! `cairn job ...`.

use cairn_api::v1::{
    CancelJobRequest, GetJobRequest, Job, JobState, JobTrigger, JobView, ListJobLogsRequest, ListJobsRequest,
    TaskType,
};

use super::{rfc3339, time_or_ago};
use crate::{
    cli::{JobCmd, StateArg, TriggerArg},
    client::Clients,
    error::Result,
    output::{self, Printer},
    watch,
};

pub async fn run(c: &Clients, p: &Printer, cmd: JobCmd) -> Result {
    match cmd {
        JobCmd::List(a) => {
            let mut req = ListJobsRequest {
                parent: if a.all_projects { "projects/-".into() } else { c.parent() },
                page_size: a.limit.clamp(1, 1000) as i32,
                task: a.task.unwrap_or_default(),
                schedule: a.schedule.unwrap_or_default(),
                connector: a.connector.unwrap_or_default(),
                states: a.states.iter().map(|s| state(*s) as i32).collect(),
                triggers: a.triggers.iter().map(|t| trigger(*t) as i32).collect(),
                create_time_from: a.since.as_deref().map(|s| time_or_ago(s, "--since")).transpose()?,
                create_time_to: a.until.as_deref().map(|s| rfc3339(s, "--until")).transpose()?,
                ..Default::default()
            };
            let mut jobs = Vec::new();
            loop {
                let page = c.jobs().list_jobs(req.clone()).await.map_err(c.scheduler_err())?.into_inner();
                jobs.extend(page.jobs);
                if page.next_page_token.is_empty() || jobs.len() >= a.limit {
                    break;
                }
                req.page_token = page.next_page_token;
            }
            jobs.truncate(a.limit);
            if p.json() {
                p.message(&cairn_api::v1::ListJobsResponse { jobs, next_page_token: String::new() });
                return Ok(0);
            }
            let mut t = output::table(&[
                "JOB", "TASK", "TYPE", "TRIGGER", "STATE", "CREATED", "DURATION", "SNAPSHOT", "INFO",
            ]);
            for j in &jobs {
                t.add_row(vec![
                    output::id(&j.name).to_owned(),
                    j.task_display_name.clone(),
                    output::enum_name(j.r#type().as_str_name(), "TASK_TYPE_"),
                    output::enum_name(j.trigger().as_str_name(), "JOB_TRIGGER_"),
                    state_text(j),
                    p.time(&j.create_time),
                    duration(j),
                    if j.snapshot.is_empty() { "-".into() } else { output::short(&j.snapshot).to_owned() },
                    info(j),
                ]);
            }
            output::print_table(t, "No jobs match.");
        }
        JobCmd::Show(a) => {
            let j = c
                .jobs()
                .get_job(GetJobRequest {
                    name: c.name(cairn_api::names::Kind::Job, &a.id),
                    view: JobView::Full as i32,
                })
                .await
                .map_err(c.scheduler_err())?
                .into_inner();
            if p.json() {
                p.message(&j);
                return Ok(0);
            }
            show(p, &j);
            if !j.log.is_empty() {
                println!("\nlast log lines (cairn job logs {} for all):", output::id(&j.name));
                for l in j.log.iter().rev().take(15).rev() {
                    println!("  {}", watch::log_line(l));
                }
            }
        }
        JobCmd::Logs(a) => {
            if a.follow {
                return watch::follow_logs(c, p, &a.id).await;
            }
            let mut after = 0;
            loop {
                let page = c
                    .jobs()
                    .list_job_logs(ListJobLogsRequest {
                        name: c.name(cairn_api::names::Kind::Job, &a.id),
                        after_seq: after,
                        page_size: 5000,
                    })
                    .await
                    .map_err(c.scheduler_err())?
                    .into_inner();
                for l in &page.lines {
                    if p.json() {
                        p.line(l);
                    } else {
                        println!("{}", watch::log_line(l));
                    }
                }
                if page.lines.is_empty() {
                    break;
                }
                after = page.last_seq;
            }
        }
        JobCmd::Cancel(a) => {
            c.confirm(&format!("cancel {}", c.name(cairn_api::names::Kind::Job, &a.id)))?;
            let j = c
                .jobs()
                .cancel_job(CancelJobRequest {
                    name: c.name(cairn_api::names::Kind::Job, &a.id),
                    reason: a.reason,
                    request_id: c.request_id(),
                })
                .await
                .map_err(c.scheduler_err())?
                .into_inner();
            if p.json() {
                p.message(&j);
            } else if j.state() == JobState::Running {
                println!(
                    "Cancel requested; the worker stops job {} at its next checkpoint.",
                    output::id(&j.name)
                );
            } else {
                println!("Job {} is {}.", output::id(&j.name), state_text(&j));
            }
        }
        JobCmd::Watch(a) => return watch::watch(c, p, &a.id, true).await,
    }
    Ok(0)
}

fn state(s: StateArg) -> JobState {
    match s {
        StateArg::Queued => JobState::Queued,
        StateArg::Running => JobState::Running,
        StateArg::Succeeded => JobState::Succeeded,
        StateArg::Failed => JobState::Failed,
        StateArg::Cancelled => JobState::Cancelled,
        StateArg::Skipped => JobState::Skipped,
    }
}

fn trigger(t: TriggerArg) -> JobTrigger {
    match t {
        TriggerArg::Schedule => JobTrigger::Schedule,
        TriggerArg::Manual => JobTrigger::Manual,
        TriggerArg::CatchUp => JobTrigger::CatchUp,
        TriggerArg::Retry => JobTrigger::Retry,
        TriggerArg::System => JobTrigger::System,
    }
}

/// State with progress for running jobs.
pub fn state_text(j: &Job) -> String {
    let s = output::enum_name(j.state().as_str_name(), "JOB_STATE_");
    match (j.state(), &j.progress) {
        (JobState::Running, Some(pr)) if pr.percent > 0.0 => format!("{s} {:.0}%", pr.percent),
        (JobState::Running, _) if j.cancel_requested => format!("{s} (cancelling)"),
        _ => s,
    }
}

fn duration(j: &Job) -> String {
    let start = j.start_time.as_ref().and_then(cairn_runtime::time::from_timestamp);
    let end = j.end_time.as_ref().and_then(cairn_runtime::time::from_timestamp);
    match (start, end) {
        (Some(s), Some(e)) => output::short_duration((e - s).to_std().unwrap_or_default()),
        _ => "-".into(),
    }
}

fn info(j: &Job) -> String {
    let text = if !j.wait_reason.is_empty() {
        j.wait_reason.clone()
    } else if !j.error.is_empty() {
        j.error.clone()
    } else if j.missed_occurrences > 0 {
        format!("{} missed occurrence(s)", j.missed_occurrences)
    } else {
        String::new()
    };
    let mut short: String = text.chars().take(80).collect();
    if text.chars().count() > 80 {
        short.push('…');
    }
    short
}

fn show(p: &Printer, j: &Job) {
    let mut rows = vec![
        ("job", j.name.clone()),
        ("task", format!("{} ({})", j.task_display_name, if j.task.is_empty() { "-" } else { &j.task })),
        ("type", output::enum_name(j.r#type().as_str_name(), "TASK_TYPE_")),
        ("trigger", output::enum_name(j.trigger().as_str_name(), "JOB_TRIGGER_")),
        ("state", state_text(j)),
        ("attempt", format!("{} of {}", j.attempt, j.max_attempts)),
        ("worker", if j.worker.is_empty() { "-".into() } else { j.worker.clone() }),
        ("scheduled", p.time(&j.scheduled_time)),
        ("started", p.time(&j.start_time)),
        ("ended", p.time(&j.end_time)),
        ("duration", duration(j)),
    ];
    if !j.schedule.is_empty() {
        rows.push(("schedule", j.schedule.clone()));
    }
    if !j.wait_reason.is_empty() {
        rows.push(("waiting", j.wait_reason.clone()));
    }
    if !j.error.is_empty() {
        rows.push(("error", j.error.clone()));
    }
    if j.missed_occurrences > 0 {
        rows.push(("missed occurrences", j.missed_occurrences.to_string()));
    }
    if !j.snapshot.is_empty() {
        rows.push(("snapshot", j.snapshot.clone()));
    }
    if let Some(pr) = &j.progress {
        rows.push(("progress", watch::progress_text(pr)));
    }
    if let Some(s) = &j.stats {
        if j.r#type() == TaskType::Backup {
            rows.push((
                "files",
                format!(
                    "{} new, {} changed, {} unmodified",
                    s.files_new, s.files_changed, s.files_unmodified
                ),
            ));
            rows.push((
                "data",
                format!(
                    "{} processed, {} added",
                    output::bytes(s.bytes_processed),
                    output::bytes(s.bytes_added)
                ),
            ));
            if !s.parent_snapshot.is_empty() {
                rows.push(("parent", output::short(&s.parent_snapshot).to_owned()));
            }
        }
        if s.files_restored > 0 {
            rows.push((
                "restored",
                format!("{} files, {}", s.files_restored, output::bytes(s.bytes_processed)),
            ));
        }
        if s.snapshots_copied > 0 {
            rows.push(("copied", format!("{} snapshot(s)", s.snapshots_copied)));
        }
        if s.snapshots_forgotten > 0 {
            rows.push(("forgotten", format!("{} snapshot(s)", s.snapshots_forgotten)));
        }
        if s.bytes_reclaimed > 0 {
            rows.push(("reclaimed", output::bytes(s.bytes_reclaimed)));
        }
        if j.r#type() == TaskType::Check {
            rows.push(("problems", s.errors_found.to_string()));
        }
    }
    if let Some(t) = &j.connection_test {
        rows.push(("verdict", format!("{} — {}", if t.ok { "OK" } else { "FAILED" }, t.message)));
    }
    output::fields(&rows);
}
