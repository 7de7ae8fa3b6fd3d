//! `cairn snapshot ...`.

use cairn_api::v1::ListSnapshotsRequest;

use super::{rfc3339, time_or_ago};
use crate::{
    cli::SnapshotCmd,
    client::Clients,
    error::Result,
    output::{self, Printer},
};

pub async fn run(c: &Clients, p: &Printer, cmd: SnapshotCmd) -> Result {
    let SnapshotCmd::List(a) = cmd;
    let mut req = ListSnapshotsRequest {
        parent: c.parent(),
        page_size: a.limit.clamp(1, 1000) as i32,
        store: a.store.unwrap_or_default(),
        task: a.task.unwrap_or_default(),
        labels: a.labels,
        time_from: a.since.as_deref().map(|s| time_or_ago(s, "--since")).transpose()?,
        time_to: a.until.as_deref().map(|s| rfc3339(s, "--until")).transpose()?,
        ..Default::default()
    };
    let mut snaps = Vec::new();
    loop {
        let page = c.jobs().list_snapshots(req.clone()).await.map_err(c.scheduler_err())?.into_inner();
        snaps.extend(page.snapshots);
        if page.next_page_token.is_empty() || snaps.len() >= a.limit {
            break;
        }
        req.page_token = page.next_page_token;
    }
    snaps.truncate(a.limit);
    if p.json() {
        p.message(&cairn_api::v1::ListSnapshotsResponse { snapshots: snaps, next_page_token: String::new() });
        return Ok(0);
    }
    let mut t = output::table(&["SNAPSHOT", "TIME", "HOST", "LABELS", "PATHS", "FILES", "SIZE", "ADDED"]);
    for s in &snaps {
        let labels: Vec<&str> =
            s.labels.iter().filter(|l| !l.starts_with("cairn-task=")).map(String::as_str).collect();
        t.add_row(vec![
            s.short_id.clone(),
            p.time(&s.time),
            s.hostname.clone(),
            if labels.is_empty() { "-".into() } else { labels.join(",") },
            s.paths.join(","),
            s.total_files.to_string(),
            output::bytes(s.total_bytes),
            output::bytes(s.bytes_added),
        ]);
    }
    output::print_table(t, "No snapshots match.");
    Ok(0)
}
