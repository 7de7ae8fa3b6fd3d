//! `cairn status`: the protection status of every source, worst first.

use cairn_api::v1::{ListProtectionStatusRequest, ListProtectionStatusResponse, ProtectionState};

use crate::{
    cli::{Protection, StatusArgs},
    client::Clients,
    error::Result,
    output::{self, Printer},
};

fn state(p: Protection) -> ProtectionState {
    match p {
        Protection::Ok => ProtectionState::Ok,
        Protection::AtRisk => ProtectionState::AtRisk,
        Protection::Violated => ProtectionState::Violated,
        Protection::NeverBackedUp => ProtectionState::NeverBackedUp,
        Protection::NoObjective => ProtectionState::NoObjective,
    }
}

pub async fn run(c: &Clients, p: &Printer, a: StatusArgs) -> Result {
    let mut req = ListProtectionStatusRequest {
        parent: c.parent(),
        page_size: 1000,
        states: a.states.iter().map(|s| state(*s) as i32).collect(),
        source: a.source.unwrap_or_default(),
        task: a.task.unwrap_or_default(),
        ..Default::default()
    };
    let mut all = Vec::new();
    loop {
        let page =
            c.jobs().list_protection_status(req.clone()).await.map_err(c.scheduler_err())?.into_inner();
        all.extend(page.statuses);
        if page.next_page_token.is_empty() {
            break;
        }
        req.page_token = page.next_page_token;
    }
    let alarming =
        all.iter().any(|s| matches!(s.state(), ProtectionState::Violated | ProtectionState::NeverBackedUp));
    if p.json() {
        let total_size = all.len() as i32;
        p.message(&ListProtectionStatusResponse {
            statuses: all,
            next_page_token: String::new(),
            total_size,
        });
    } else {
        let mut t = output::table(&["SOURCE", "TASK", "STATE", "LAST SUCCESS", "AGE", "RPO", "LAST JOB"]);
        for s in &all {
            let last_job = match s.last_job_state() {
                cairn_api::v1::JobState::Unspecified => "-".to_owned(),
                st => {
                    let name = output::enum_name(st.as_str_name(), "JOB_STATE_");
                    if s.last_error.is_empty() { name } else { format!("{name}: {}", s.last_error) }
                }
            };
            t.add_row(vec![
                s.source_display_name.clone(),
                if s.task.is_empty() { "(no backup task)".into() } else { s.task_display_name.clone() },
                output::enum_name(s.state().as_str_name(), "PROTECTION_STATE_"),
                p.time_abs(&s.last_success_time),
                output::duration(&s.age),
                output::duration(&s.rpo),
                last_job,
            ]);
        }
        output::print_table(t, "No sources match.");
    }
    Ok(if a.fail_on_violation && alarming { 1 } else { 0 })
}
