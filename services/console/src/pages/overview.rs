//! Overview: running jobs, failures of the last 24 h, the next runs, and every source's last
//! successful backup.

use axum::extract::Path;
use cairn_api::v1::{self, ConnectorRole, JobState, TaskType};
use maud::html;

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
    let sources = ctx.connectors(&p, ConnectorRole::Source).await?;
    // Each source's newest successful backup.
    let mut last = Vec::new();
    for s in &sources {
        let r = jobs
            .list_jobs(v1::ListJobsRequest {
                parent: parent.clone(),
                page_size: 1,
                connector: s.name.clone(),
                states: vec![JobState::Succeeded as i32],
                r#type: TaskType::Backup as i32,
                ..Default::default()
            })
            .await?
            .into_inner();
        last.push((s, r.jobs.into_iter().next()));
    }
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
            table data-testid="source-protection" {
                thead { tr { th { "Source" } th { "Last successful backup" } th { "Age" } } }
                tbody { @for (s, j) in &last {
                    @let when = j.as_ref().and_then(|j| j.end_time);
                    tr.stale[when.as_ref().is_none_or(|t| chrono::Utc::now().timestamp() - t.seconds > 2 * 86_400)] {
                        td { a href=(ui::href(&s.name)) { (s.display_name) } }
                        td { @if let Some(j) = j { a href=(ui::href(&j.name)) { (ui::time(when.as_ref())) } } @else { "never" } }
                        td { (ui::ago(when.as_ref())) }
                    }
                } }
            }
        }
    };
    Ok(ui::page(&ctx, Some(&p), Nav::Overview, "Overview", body))
}
