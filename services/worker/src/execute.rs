//! Runs one lease on the engine. Synchronous: the caller puts it on a blocking thread
//! (rustic_core is synchronous). Returns the outcome to report and the snapshot lists of
//! every store the job read, for the scheduler's index.

use std::collections::BTreeMap;

use cairn_api::{
    names::{self, Kind},
    v1::{
        BackupMode, ConnectionTest, ConnectorRole, JobStats, JobSucceeded, Lease, OverwritePolicy,
        RetentionPolicy, Snapshot, StoreSnapshots, TaskType, connector::Config, task::Options,
    },
};
use cairn_engine::{
    BackupOptions, CancelToken, CheckOptions, Engine, Level, Overwrite, Progress, PruneOptions,
    RestoreOptions, SnapshotFilter, SnapshotInfo, SnapshotSel, Store, Verdict,
};
use cairn_runtime::time::{to_duration, to_timestamp};

use crate::convert::{self, Invalid};

/// The tag naming a snapshot's task.
pub const TASK_TAG: &str = "cairn-task=";
/// The tag that names the source of a fleet task's snapshot.
pub const SOURCE_TAG: &str = "cairn-source=";

/// Why a job did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The engine failed (or was cancelled).
    #[error("{0}")]
    Engine(#[from] cairn_engine::Error),
    /// The lease cannot be run as given.
    #[error("{0}")]
    Invalid(#[from] Invalid),
    /// A CHECK found problems.
    #[error("{0}")]
    CheckFailed(String),
}

impl Failure {
    /// Worth another attempt.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Failure::Engine(e) if e.is_retryable())
    }
}

/// A finished job.
#[derive(Debug, Default)]
pub struct Done {
    /// What to report.
    pub succeeded: JobSucceeded,
    /// Full snapshot lists of the stores read.
    pub index: Vec<StoreSnapshots>,
}

fn store_name(
    lease: &Lease,
    which: fn(&cairn_api::v1::ResolvedTask) -> &Option<cairn_api::v1::ResolvedConnector>,
) -> String {
    lease
        .task
        .as_ref()
        .and_then(|t| which(t).as_ref())
        .and_then(|c| c.connector.as_ref())
        .map(|c| c.name.clone())
        .unwrap_or_default()
}

/// Runs the lease's job.
pub fn execute(
    engine: &Engine,
    lease: &Lease,
    progress: &dyn Progress,
    cancel: &CancelToken,
) -> Result<Done, Failure> {
    let job = lease.job.as_ref().ok_or_else(|| Invalid("the lease carries no job".into()))?;
    let ty = TaskType::try_from(job.r#type).unwrap_or_default();
    if ty == TaskType::TestConnection {
        return test_connection(engine, lease, progress);
    }
    let resolved = lease.task.as_ref().ok_or_else(|| Invalid("the lease carries no task".into()))?;
    let task = resolved.task.as_ref().ok_or_else(|| Invalid("the lease carries no task".into()))?;
    let (_, task_id) =
        names::parse_canonical(Kind::Task, &task.name).map_err(|e| Invalid(format!("task name: {e}")))?;
    let concurrency = usize::try_from(task.concurrency).unwrap_or(0);
    let mut done = Done::default();
    let mut stats = JobStats::default();
    match ty {
        TaskType::Backup => {
            let source = convert::source(&resolved.source)?;
            let store = convert::store(&resolved.store, "store")?;
            let opts = match &task.options {
                Some(Options::Backup(b)) => b.clone(),
                _ => Default::default(),
            };
            let mut tags = task.labels.clone();
            tags.push(format!("{TASK_TAG}{task_id}"));
            // A fleet task's snapshots also name their source: retention (and people) tell
            // the sources apart by it.
            let source_tag = opts.sources.as_ref().map(|_| {
                let name =
                    resolved.source.as_ref().and_then(|s| s.connector.as_ref()).map(|c| c.name.as_str());
                let id = name.and_then(|n| n.rsplit('/').next()).unwrap_or_default();
                format!("{SOURCE_TAG}{id}")
            });
            tags.extend(source_tag.clone());
            let full = opts.mode == BackupMode::Full as i32;
            let out = engine.backup(
                &source,
                &store,
                &BackupOptions {
                    tags,
                    host: (!opts.host.is_empty()).then(|| opts.host.clone()),
                    full,
                    concurrency,
                },
                progress,
                cancel,
            )?;
            stats.files_new = out.stats.files_new as i64;
            stats.files_changed = out.stats.files_changed as i64;
            stats.files_unmodified = out.stats.files_unmodified as i64;
            stats.bytes_processed = out.stats.bytes_processed as i64;
            stats.bytes_added = out.stats.bytes_added as i64;
            stats.duration = Some(to_duration(out.duration));
            stats.parent_snapshot = out.parent.clone().unwrap_or_default();
            done.succeeded.snapshot = out.snapshot_id;
            if let Some(policy) = &opts.retention {
                let task_tag = format!("{TASK_TAG}{task_id}");
                stats.snapshots_forgotten = apply_retention(
                    engine,
                    &store,
                    policy,
                    |tags| tags.contains(&task_tag) && source_tag.as_ref().is_none_or(|s| tags.contains(s)),
                    progress,
                    cancel,
                )?;
            }
            done.index.push(index_of(engine, &store, &store_name(lease, |t| &t.store))?);
        }
        TaskType::Restore => {
            let store = convert::store(&resolved.store, "store")?;
            let dest = convert::destination(&resolved.destination)?;
            let opts = match &task.options {
                Some(Options::Restore(r)) => r.clone(),
                _ => Default::default(),
            };
            let snapshot = if opts.snapshot.is_empty() {
                SnapshotSel::Latest { tags: task.labels.clone() }
            } else {
                SnapshotSel::Id(opts.snapshot.clone())
            };
            let overwrite = match OverwritePolicy::try_from(opts.overwrite).unwrap_or_default() {
                OverwritePolicy::Always => Overwrite::Always,
                OverwritePolicy::Never => Overwrite::Never,
                _ => Overwrite::IfChanged,
            };
            progress.log(Level::Info, &format!("restore from {} into {}", store.describe(), dest.display()));
            let out = engine.restore(
                &store,
                &RestoreOptions { snapshot, include_paths: opts.include_paths.clone(), overwrite },
                &dest,
                progress,
                cancel,
            )?;
            stats.files_restored = out.files_restored as i64;
            stats.files_unmodified = out.files_unchanged as i64;
            stats.bytes_processed = out.bytes_written as i64;
            stats.duration = Some(to_duration(out.duration));
            progress.log(
                Level::Info,
                &format!(
                    "restored snapshot {}: {} files written, {} unchanged, {} written",
                    short(&out.snapshot_id),
                    out.files_restored,
                    out.files_unchanged,
                    human_bytes(out.bytes_written)
                ),
            );
            done.succeeded.snapshot = out.snapshot_id;
            done.index.push(index_of(engine, &store, &store_name(lease, |t| &t.store))?);
        }
        TaskType::Sync => {
            let from = convert::store(&resolved.store, "store")?;
            let to = convert::store(&resolved.target_store, "target_store")?;
            let opts = match &task.options {
                Some(Options::Sync(s)) => s.clone(),
                _ => Default::default(),
            };
            let filter = SnapshotFilter {
                tags: task.labels.clone(),
                window: convert::window(&opts.window, "sync.window")?,
            };
            progress.log(Level::Info, &format!("sync from {} to {}", from.describe(), to.describe()));
            let out = engine.sync(&from, &to, &filter, progress, cancel)?;
            stats.snapshots_copied = out.copied.len() as i64;
            stats.duration = Some(to_duration(out.duration));
            progress.log(
                Level::Info,
                &format!("copied {} snapshot(s); {} already present", out.copied.len(), out.already_present),
            );
            if let Some(policy) = &opts.retention {
                let labels = task.labels.clone();
                stats.snapshots_forgotten = apply_retention(
                    engine,
                    &to,
                    policy,
                    |tags| labels.iter().all(|l| tags.contains(l)),
                    progress,
                    cancel,
                )?;
            }
            done.index.push(index_of(engine, &from, &store_name(lease, |t| &t.store))?);
            done.index.push(index_of(engine, &to, &store_name(lease, |t| &t.target_store))?);
        }
        TaskType::Check => {
            let store = convert::store(&resolved.store, "store")?;
            let opts = match &task.options {
                Some(Options::Check(c)) => c.clone(),
                _ => Default::default(),
            };
            let filter = SnapshotFilter {
                tags: task.labels.clone(),
                window: convert::window(&opts.window, "check.window")?,
            };
            progress.log(
                Level::Info,
                &format!("check of {} (read data: {}%)", store.describe(), opts.read_data_percent),
            );
            let out = engine.check(
                &store,
                &CheckOptions { read_data_percent: opts.read_data_percent, filter },
                progress,
                cancel,
            )?;
            stats.errors_found = out.errors.len() as i64;
            stats.duration = Some(to_duration(out.duration));
            for w in &out.warnings {
                progress.log(Level::Warn, w);
            }
            for e in &out.errors {
                progress.log(Level::Error, e);
            }
            if !out.ok {
                return Err(Failure::CheckFailed(format!(
                    "check found {} problem(s): {}",
                    out.errors.len(),
                    out.errors.first().cloned().unwrap_or_default()
                )));
            }
            progress.log(Level::Info, &format!("check passed ({} snapshots)", out.snapshots_checked));
            done.index.push(index_of(engine, &store, &store_name(lease, |t| &t.store))?);
        }
        TaskType::Prune => {
            let store = convert::store(&resolved.store, "store")?;
            let opts = match &task.options {
                Some(Options::Prune(p)) => *p,
                _ => Default::default(),
            };
            let pct = if opts.max_unused_percent == 0.0 { 5.0 } else { opts.max_unused_percent };
            let out = engine.prune(&store, &PruneOptions { max_unused_percent: pct }, progress, cancel)?;
            stats.bytes_reclaimed = out.bytes_freed as i64;
            stats.duration = Some(to_duration(out.duration));
            progress.log(
                Level::Info,
                &format!(
                    "prune removed {} pack(s) ({} unreferenced), repacked {}; {} freed",
                    out.packs_removed,
                    out.unreferenced_packs,
                    out.packs_repacked,
                    human_bytes(out.bytes_freed)
                ),
            );
            done.index.push(index_of(engine, &store, &store_name(lease, |t| &t.store))?);
        }
        TaskType::TestConnection | TaskType::Unspecified => {
            return Err(Invalid(format!("cannot run a job of type {}", job.r#type)).into());
        }
    }
    done.succeeded.stats = Some(stats);
    Ok(done)
}

fn test_connection(engine: &Engine, lease: &Lease, progress: &dyn Progress) -> Result<Done, Failure> {
    let rc = lease
        .test_connector
        .as_ref()
        .ok_or_else(|| Invalid("the lease carries no connector to test".into()))?;
    let conn = rc.connector.clone().ok_or_else(|| Invalid("the connector to test is empty".into()))?;
    let role = ConnectorRole::try_from(conn.role).unwrap_or_default();
    progress.log(Level::Info, &format!("testing {} connector {}", role.as_str_name(), conn.display_name));
    let mut done = Done::default();
    let verdict: Verdict = match role {
        ConnectorRole::Store => {
            let store = convert::store_of(&conn, &rc.secrets)?;
            let v = engine.test_store(&store);
            if v.readable
                && let Ok(i) = index_of(engine, &store, &conn.name)
            {
                done.index.push(i);
            }
            v
        }
        ConnectorRole::Source => engine.test_source(&convert::source_of(&conn)?),
        ConnectorRole::Destination => engine.test_destination(&convert::destination_of(&conn)?),
        ConnectorRole::Unspecified => return Err(Invalid("the connector has no role".into()).into()),
    };
    let ok = match (&conn.config, role) {
        (_, ConnectorRole::Store) => {
            verdict.reachable && verdict.initialized && verdict.readable && verdict.writable
        }
        (Some(Config::CommandSource(_)), _) | (_, ConnectorRole::Source) => {
            verdict.reachable && verdict.readable
        }
        _ => verdict.reachable && verdict.writable,
    };
    progress.log(if ok { Level::Info } else { Level::Warn }, &verdict.message);
    done.succeeded.connection_test = Some(ConnectionTest {
        time: Some(to_timestamp(chrono::Utc::now())),
        ok,
        reachable: verdict.reachable,
        initialized: verdict.initialized,
        readable: verdict.readable,
        writable: verdict.writable,
        message: verdict.message,
        worker: String::new(),
        job: lease.job.as_ref().map(|j| j.name.clone()).unwrap_or_default(),
    });
    Ok(done)
}

/// Forgets the snapshots the policy does not keep, per task group (the `cairn-task=` tag) among
/// those `selected`; logs every removal with why. Returns how many were forgotten.
fn apply_retention(
    engine: &Engine,
    store: &Store,
    policy: &RetentionPolicy,
    selected: impl Fn(&[String]) -> bool,
    progress: &dyn Progress,
    cancel: &CancelToken,
) -> Result<i64, Failure> {
    let raw: cairn_retention::RawPolicy = policy.into();
    let policy = cairn_retention::Policy::from_raw(&raw).map_err(|e| Invalid(format!("retention: {e}")))?;
    let mut groups: BTreeMap<String, Vec<cairn_retention::Snapshot>> = BTreeMap::new();
    for s in engine.list_snapshots(store)? {
        if !selected(&s.tags) {
            continue;
        }
        let Some(task) = s.tags.iter().find(|t| t.starts_with(TASK_TAG)).cloned() else { continue };
        groups.entry(task).or_default().push(cairn_retention::Snapshot {
            id: s.id,
            time: s.time,
            labels: s.tags,
        });
    }
    let now = chrono::Utc::now();
    let mut forget = Vec::new();
    for snaps in groups.values() {
        for d in cairn_retention::apply(&policy, snaps, now) {
            if d.keep {
                progress.log(
                    Level::Debug,
                    &format!(
                        "retention keeps {} ({}): {}",
                        short(&d.id),
                        d.time.to_rfc3339(),
                        d.reasons.join(", ")
                    ),
                );
            } else {
                progress.log(
                    Level::Info,
                    &format!(
                        "retention forgets {} ({}): no rule keeps it",
                        short(&d.id),
                        d.time.to_rfc3339()
                    ),
                );
                forget.push(d.id);
            }
        }
    }
    if forget.is_empty() {
        progress.log(Level::Info, "retention: every snapshot is kept");
        return Ok(0);
    }
    let out = engine.forget(store, &forget, progress, cancel)?;
    progress.log(
        Level::Info,
        &format!("retention forgot {} snapshot(s); PRUNE reclaims their space", out.removed.len()),
    );
    Ok(out.removed.len() as i64)
}

/// The full snapshot list of a store, for the index.
pub fn index_of(engine: &Engine, store: &Store, store_name: &str) -> Result<StoreSnapshots, Failure> {
    let snapshots = engine.list_snapshots(store)?;
    Ok(StoreSnapshots { store: store_name.to_owned(), snapshots: snapshots.iter().map(snapshot).collect() })
}

fn snapshot(s: &SnapshotInfo) -> Snapshot {
    let summary = s.summary.clone().unwrap_or_default();
    Snapshot {
        id: s.id.clone(),
        short_id: short(&s.id).to_owned(),
        time: Some(to_timestamp(s.time)),
        labels: s.tags.clone(),
        paths: s.paths.clone(),
        hostname: s.hostname.clone(),
        parent: s.parent.clone().unwrap_or_default(),
        total_files: summary.files_total as i64,
        total_bytes: summary.bytes_processed as i64,
        bytes_added: summary.bytes_added as i64,
        ..Default::default()
    }
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// Bytes for people (`1.5 GiB`).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[u]) }
}
