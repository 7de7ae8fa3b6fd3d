//! `cairn snapshot ...`.

use cairn_api::v1::{
    DiffSnapshotsRequest, DiffSnapshotsResponse, EntryType, ListSnapshotEntriesRequest,
    ListSnapshotEntriesResponse, ListSnapshotsRequest, ReadSnapshotFileRequest,
    read_snapshot_file_response::Part,
};

use super::{rfc3339, time_or_ago};
use crate::{
    cli::{CatSnapshot, DiffSnapshot, ListSnapshots, LsSnapshot, SnapshotCmd},
    client::Clients,
    error::{CliError, Result},
    output::{self, Printer},
};

pub async fn run(c: &Clients, p: &Printer, cmd: SnapshotCmd) -> Result {
    match cmd {
        SnapshotCmd::List(a) => list(c, p, a).await,
        SnapshotCmd::Ls(a) => ls(c, p, a).await,
        SnapshotCmd::Diff(a) => diff(c, p, a).await,
        SnapshotCmd::Cat(a) => cat(c, a).await,
    }
}

async fn ls(c: &Clients, p: &Printer, a: LsSnapshot) -> Result {
    let mut req = ListSnapshotEntriesRequest {
        parent: c.parent(),
        store: a.store,
        snapshot: a.snapshot,
        path: a.path,
        page_size: 1000,
        ..Default::default()
    };
    let mut all = ListSnapshotEntriesResponse::default();
    loop {
        let page = c.jobs().list_snapshot_entries(req.clone()).await.map_err(c.scheduler_err())?.into_inner();
        all.snapshot = page.snapshot;
        all.path = page.path;
        all.total_size = page.total_size;
        all.entries.extend(page.entries);
        if page.next_page_token.is_empty() {
            break;
        }
        req.page_token = page.next_page_token;
    }
    if p.json() {
        p.message(&all);
        return Ok(0);
    }
    if all.entries.is_empty() {
        eprintln!("{} is empty.", all.path);
        return Ok(0);
    }
    for e in &all.entries {
        let kind = EntryType::try_from(e.r#type).unwrap_or_default();
        let mut name = e.name.clone();
        match kind {
            EntryType::Dir => name.push('/'),
            EntryType::Symlink => name = format!("{name} -> {}", e.link_target),
            _ => {}
        }
        if a.long {
            let owner = if e.user.is_empty() { e.uid.to_string() } else { e.user.clone() };
            let group = if e.group.is_empty() { e.gid.to_string() } else { e.group.clone() };
            println!(
                "{} {owner:>8} {group:>8} {:>10} {} {name}",
                e.permissions,
                e.size,
                p.time_abs(&e.mtime)
            );
        } else {
            println!("{name}");
        }
    }
    Ok(0)
}

async fn diff(c: &Clients, p: &Printer, a: DiffSnapshot) -> Result {
    let mut req = DiffSnapshotsRequest {
        parent: c.parent(),
        store: a.store,
        snapshot_a: a.snapshot_a,
        snapshot_b: a.snapshot_b,
        metadata: a.metadata,
        page_size: 1000,
        ..Default::default()
    };
    let mut all = DiffSnapshotsResponse::default();
    loop {
        let mut page = c.jobs().diff_snapshots(req.clone()).await.map_err(c.scheduler_err())?.into_inner();
        let next = std::mem::take(&mut page.next_page_token);
        let changes = std::mem::take(&mut all.changes);
        all = DiffSnapshotsResponse { changes: [changes, page.changes].concat(), ..page };
        if next.is_empty() {
            break;
        }
        req.page_token = next;
    }
    if p.json() {
        p.message(&all);
        return Ok(0);
    }
    println!("comparing snapshot {} to {}:", output::short(&all.snapshot_a), output::short(&all.snapshot_b));
    for ch in &all.changes {
        println!("{:<5}{}", ch.modifier, ch.path);
    }
    println!("\n{} added, {} removed, {} modified", all.added, all.removed, all.modified);
    Ok(0)
}

async fn cat(c: &Clients, a: CatSnapshot) -> Result {
    use std::io::Write as _;
    let req = ReadSnapshotFileRequest {
        parent: c.parent(),
        store: a.store,
        snapshot: a.snapshot,
        path: a.path,
        ..Default::default()
    };
    let mut stream = c.jobs().read_snapshot_file(req).await.map_err(c.scheduler_err())?.into_inner();
    let mut out: Box<dyn std::io::Write> = match &a.to {
        Some(path) => Box::new(
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .map_err(|e| CliError::Usage(format!("--to {}: {e}", path.display())))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut written = 0_u64;
    let mut expected = None;
    while let Some(msg) = stream.message().await.map_err(c.scheduler_err())? {
        match msg.part {
            Some(Part::Entry(e)) => expected = Some(e.size),
            Some(Part::Data(d)) => {
                out.write_all(&d).map_err(|e| CliError::Failed(format!("writing the file: {e}")))?;
                written += d.len() as u64;
            }
            None => {}
        }
    }
    out.flush().map_err(|e| CliError::Failed(format!("writing the file: {e}")))?;
    if expected.is_some_and(|n| n != written) {
        return Err(CliError::Failed(format!(
            "the stream ended after {written} of {} bytes",
            expected.unwrap_or_default()
        )));
    }
    Ok(0)
}

async fn list(c: &Clients, p: &Printer, a: ListSnapshots) -> Result {
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
        p.message(&cairn_api::v1::ListSnapshotsResponse {
            snapshots: snaps,
            next_page_token: String::new(),
            ..Default::default()
        });
        return Ok(0);
    }
    let mut t = output::table(&["SNAPSHOT", "TIME", "HOST", "LABELS", "PATHS", "FILES", "SIZE", "ADDED"]);
    for s in &snaps {
        let labels: Vec<&str> = s
            .labels
            .iter()
            .filter(|l| !l.starts_with("cairn-task=") && !l.starts_with("cairn-source="))
            .map(String::as_str)
            .collect();
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
