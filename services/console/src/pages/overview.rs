//! Overview: running jobs, failures of the last 24 h, the next runs, and every source's
//! protection status (last successful backup, age, RPO verdict), worst first.

use axum::extract::Path;
use cairn_api::v1::{self, JobState, ProtectionState};
use maud::{Markup, html};

use crate::{
    ui::{self, Nav},
    web::{Ctx, Page},
};

pub async fn page(ctx: Ctx, Path(p): Path<String>) -> Page {
    let parent = format!("projects/{p}");
    let list = |states: Vec<i32>, from: Option<prost_types::Timestamp>, size: i32| v1::ListJobsRequest {
        parent: parent.clone(),
        page_size: size,
        states,
        create_time_from: from,
        ..Default::default()
    };
    let day_ago = prost_types::Timestamp { seconds: chrono::Utc::now().timestamp() - 86_400, nanos: 0 };
    let mut jobs = ctx.jobs();
    let running = jobs
        .list_jobs(list(vec![JobState::Running as i32, JobState::Queued as i32], None, 50))
        .await?
        .into_inner()
        .jobs;
    let failed =
        jobs.list_jobs(list(vec![JobState::Failed as i32], Some(day_ago), 50)).await?.into_inner().jobs;
    let mut schedules = ctx
        .schedules()
        .list_schedules(v1::ListSchedulesRequest {
            parent: parent.clone(),
            page_size: 200,
            enabled: Some(true),
            ..Default::default()
        })
        .await?
        .into_inner()
        .schedules;
    schedules.retain(|s| s.next_run_time.is_some());
    schedules.sort_by_key(|s| s.next_run_time.as_ref().map(|t| t.seconds));
    // Every source's protection (worst first): last success, age, RPO verdict.
    let protection = jobs
        .list_protection_status(v1::ListProtectionStatusRequest {
            parent: parent.clone(),
            page_size: 200,
            ..Default::default()
        })
        .await?
        .into_inner();
    let body = html! {
        h1 { "Overview" }
        section data-poll="5" #overview-running {
            h2 { "Running and queued (" (running.len()) ")" }
            (super::jobs::table(&running))
        }
        section {
            h2 { "Failures in the last 24 hours (" (failed.len()) ")" }
            (super::jobs::table(&failed))
        }
        section {
            h2 { "Next runs" }
            table data-testid="next-runs" {
                thead { tr { th { "Schedule" } th { "Task" } th { "Next run" } } }
                tbody { @for s in schedules.iter().take(10) {
                    tr { td { (s.display_name) } td { a href=(ui::href(&s.task)) { (ui::id(&s.task)) } } td { (ui::time(s.next_run_time.as_ref())) } }
                } }
            }
        }
        section {
            h2 { "Sources" }
            @let bad = protection.statuses.iter().filter(|s| matches!(s.state(), ProtectionState::Violated | ProtectionState::NeverBackedUp)).count();
            p.hint { (protection.total_size) " source and task pairs; " (bad) " not backed up within their RPO or never." }
            (protection_table(&protection.statuses))
            @if protection.statuses.is_empty() { p.empty { "No sources yet." } }
        }
    };
    Ok(ui::page(&ctx, Some(&p), Nav::Overview, "Overview", body))
}

/// Protection entries (source, task, verdict, last success, age, RPO, last job), as listed.
pub fn protection_table(statuses: &[v1::ProtectionStatus]) -> Markup {
    html! {
    table data-testid="source-protection" {
        thead { tr { th { "Source" } th { "Task" } th { "State" } th { "Last successful backup" } th { "Age" } th { "RPO" } th { "Last job" } } }
        tbody { @for s in statuses {
            @let state = s.state().as_str_name().trim_start_matches("PROTECTION_STATE_");
            tr data-testid="protection-row" data-state=(state) {
                td { a href=(ui::href(&s.source)) { (s.source_display_name) } }
                td { @if s.task.is_empty() { span.muted { "no backup task" } } @else { a href=(ui::href(&s.task)) { (s.task_display_name) } } }
                td { span class=(format!("badge protection-{}", state.to_lowercase())) data-testid="protection-state" { (state.replace('_', " ")) } }
                td { @if s.last_success_job.is_empty() { "never" } @else { a href=(ui::href(&s.last_success_job)) { (ui::time(s.last_success_time.as_ref())) } } }
                td { (ui::ago(s.last_success_time.as_ref())) }
                td { @if s.rpo.is_some() { (ui::duration(&s.rpo)) } @else { "—" } }
                td { @if s.last_job.is_empty() { "—" } @else { a href=(ui::href(&s.last_job)) { (s.last_job_state().as_str_name().trim_start_matches("JOB_STATE_")) } @if !s.last_error.is_empty() { " " span.error { (s.last_error) } } } }
            }
        } }
    }
    }
}
