//! `cairn retention simulate`.

use cairn_api::v1::{
    SimulateRetentionRequest, SnapshotList, SnapshotRef, StoredSnapshots, simulate_retention_request::Source,
};

use super::rfc3339;
use crate::{
    cli::RetentionCmd,
    client::Clients,
    error::{CliError, Result},
    output::{self, Printer},
};

pub async fn run(c: &Clients, p: &Printer, cmd: RetentionCmd) -> Result {
    let RetentionCmd::Simulate(a) = cmd;
    let policy = super::tasks::retention(&a.policy)?
        .ok_or_else(|| CliError::Usage("give at least one --keep-* flag".into()))?;
    let source = match (a.store, a.task, a.snapshots) {
        (Some(store), Some(task), None) => {
            Source::Stored(StoredSnapshots { store: c.name(cairn_api::names::Kind::Connector, &store), task })
        }
        (None, None, Some(file)) => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| CliError::Usage(format!("--snapshots: cannot read {}: {e}", file.display())))?;
            let items: Vec<serde_json::Value> = serde_json::from_str(&text).map_err(|e| {
                CliError::Usage(format!("--snapshots: {} is not a JSON list: {e}", file.display()))
            })?;
            let mut refs = Vec::new();
            for (i, v) in items.iter().enumerate() {
                let id = v["id"]
                    .as_str()
                    .ok_or_else(|| CliError::Usage(format!("--snapshots: item {i} has no \"id\"")))?;
                let time = v["time"]
                    .as_str()
                    .ok_or_else(|| CliError::Usage(format!("--snapshots: item {i} has no \"time\"")))?;
                let labels = v["labels"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|l| l.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default();
                refs.push(SnapshotRef {
                    id: id.to_owned(),
                    time: Some(rfc3339(time, &format!("--snapshots item {i} time"))?),
                    labels,
                });
            }
            Source::Snapshots(SnapshotList { items: refs })
        }
        _ => return Err(CliError::Usage("give --store and --task, or --snapshots FILE".into())),
    };
    let resp = c
        .jobs()
        .simulate_retention(SimulateRetentionRequest { policy: Some(policy), source: Some(source) })
        .await
        .map_err(c.scheduler_err())?
        .into_inner();
    if p.json() {
        p.message(&resp);
        return Ok(0);
    }
    let mut t = output::table(&["SNAPSHOT", "TIME", "DECISION", "REASONS"]);
    for d in &resp.decisions {
        t.add_row(vec![
            output::short(&d.snapshot_id).to_owned(),
            p.time_abs(&d.time),
            if d.keep { "keep".into() } else { "remove".into() },
            d.reasons.join("; "),
        ]);
    }
    let kept = resp.decisions.iter().filter(|d| d.keep).count();
    output::print_table(t, "No snapshots.");
    if !resp.decisions.is_empty() {
        println!("\n{kept} kept, {} removed (nothing was changed).", resp.decisions.len() - kept);
    }
    Ok(0)
}
