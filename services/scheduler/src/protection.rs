//! Protection status: for every source, its last successful backup by each BACKUP task
//! covering it, judged against its recovery point objective (the source's own, else the
//! task's).
//!
//! The catalog says which sources and tasks exist and what their objectives are; the
//! `protection` rows (one per task and source, from the pair's first job on) say what
//! happened. A sweep on every replica marks a pair VIOLATED once, with its notification in
//! the same transaction; the success that ends a violation queues the recovery notification
//! in the transaction that records it. The sweep also brings names and objectives up to date
//! from the catalog and exports `cairn_source_last_success_timestamp_seconds`.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use cairn_api::{
    ids::{ConnectorId, JobId, TaskId},
    names::{self, Kind, ProjectId, Reference},
    v1::{
        Connector, JobState, ListProtectionStatusRequest, ListProtectionStatusResponse, ProtectionState,
        ProtectionStatus, Task, TaskType, task::Options,
    },
};
use cairn_runtime::{
    auth::Caller,
    pagination,
    time::{from_duration, to_duration, to_timestamp},
};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::{
    State,
    catalog::TaskPlan,
    domain::protection::{Facts, severity, verdict},
    error::{Error, Result},
    resolve,
    store::{
        jobs::Row as JobRow,
        notifications::{self as outbox, RPO_RECOVERED, RPO_VIOLATED},
        protection::{self as rows, Row},
    },
};

/// Default page size of ListProtectionStatus.
const DEFAULT_PAGE: i64 = 100;

/// Records new BACKUP jobs in their (task, source) pairs, in the jobs' transaction (one
/// statement for any number of jobs).
pub async fn jobs_created(
    conn: &mut PgConnection,
    created: &[(&TaskPlan, JobId)],
    now: DateTime<Utc>,
) -> Result<()> {
    let covers: Vec<rows::Cover<'_>> = created
        .iter()
        .filter_map(|(plan, job)| {
            let (source, source_name) = plan.source.as_ref()?;
            Some(rows::Cover {
                project: &plan.project,
                task: plan.id,
                source: *source,
                task_display_name: &plan.display_name,
                source_display_name: source_name,
                rpo_ms: plan.rpo.map(|d| d.as_millis() as i64),
                job: *job,
            })
        })
        .collect();
    rows::cover(conn, &covers, now).await
}

/// Records finished BACKUP jobs in their pairs, in the finishing transaction (one statement
/// for any number of jobs); a success that ends a violation queues the recovery
/// notification.
pub async fn jobs_finished(conn: &mut PgConnection, jobs: &[JobRow]) -> Result<()> {
    use cairn_api::ids::Stored as _;
    let done: Vec<rows::Done> = jobs
        .iter()
        .filter(|j| {
            j.r#type == TaskType::Backup
                && matches!(j.state, JobState::Succeeded | JobState::Failed | JobState::Cancelled)
        })
        .filter_map(|j| {
            Some(rows::Done {
                project: &j.project_id,
                task: j.task_id?,
                source: j.source_id?,
                job: j.id,
                state: j.state.stored(),
                error: &j.error,
                snapshot: &j.snapshot,
                end_time: j.end_time?,
            })
        })
        .collect();
    if done.is_empty() {
        return Ok(());
    }
    for d in rows::finished(conn, &done).await?.into_iter().filter(|d| d.recovered) {
        let at = d.row.last_success_time.unwrap_or_default();
        outbox::insert_event_of(conn, d.job_id, RPO_RECOVERED, &detail(&d.row, at), at).await?;
        tracing::info!(source.id = %d.row.source_id, task.id = %d.row.task_id, job.id = %d.job_id, "source is within its RPO again");
    }
    Ok(())
}

/// What a protection notification says about its pair.
fn detail(r: &Row, now: DateTime<Utc>) -> serde_json::Value {
    let rpo = r.rpo_ms.map(|ms| Duration::from_millis(ms.max(0) as u64));
    serde_json::json!({
        "source": { "name": Kind::Connector.name(&r.project_id, r.source_id), "display_name": r.source_display_name },
        "rpo": rpo.map(|d| humantime::format_duration(d).to_string()),
        "rpo_seconds": rpo.map(|d| d.as_secs()),
        "last_success_time": r.last_success_time.map(|t| t.to_rfc3339()),
        "last_snapshot": r.last_snapshot,
        "age_seconds": r.last_success_time.map(|t| (now - t).num_seconds()),
        "state": if r.violated_time.is_some() { "VIOLATED" } else { "OK" },
    })
}

/// Runs the sweep until `shutdown`.
pub async fn run(state: State, shutdown: tokio_util::sync::CancellationToken) {
    let mut refreshed: Option<Instant> = None;
    loop {
        if refreshed.is_none_or(|t| t.elapsed() >= Duration::from_millis(state.config.protection_refresh_ms))
        {
            refreshed = Some(Instant::now());
            if let Err(e) = refresh(&state).await {
                tracing::warn!(error = %e, "refreshing protection objectives failed");
            }
        }
        if let Err(e) = sweep(&state).await {
            tracing::warn!(error = %e, "protection sweep failed");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(state.config.protection_sweep()) => {}
        }
    }
}

/// Marks the pairs past their RPO VIOLATED and queues one notification for each.
pub async fn sweep(state: &State) -> Result<usize> {
    let now = state.clock.now();
    let mut tx = state.pool.begin().await?;
    let violated = rows::mark_violated(&mut tx, now).await?;
    for r in &violated {
        let job = r.last_finished_job_id.unwrap_or(r.latest_job_id);
        outbox::insert_event_of(&mut tx, job, RPO_VIOLATED, &detail(r, now), now).await?;
    }
    tx.commit().await?;
    for r in &violated {
        metrics::counter!("cairn_scheduler_rpo_violations_total").increment(1);
        tracing::warn!(project.id = %r.project_id, source.id = %r.source_id, task.id = %r.task_id, source = %r.source_display_name, "source violated its RPO");
    }
    Ok(violated.len())
}

/// Brings every pair's names and objective up to date from the catalog, forgets pairs that
/// no longer exist, and exports the last-success gauge.
pub async fn refresh(state: &State) -> Result<()> {
    let projects = {
        let mut conn = state.pool.acquire().await?;
        rows::projects(&mut conn).await?
    };
    for project in projects {
        let asked = state.clock.now();
        let coverage = match state.catalog.coverage(&project).await {
            Ok(c) => c,
            Err(Error::NotFound(_)) => continue,
            Err(e) => return Err(e),
        };
        let view = View::new(&coverage.sources, &coverage.backup_tasks);
        let mut tx = state.pool.begin().await?;
        let (tasks, sources): (Vec<TaskId>, Vec<ConnectorId>) =
            view.pairs.iter().map(|p| (p.task.0, p.source.0)).unzip();
        rows::retain(&mut tx, &project, &tasks, &sources, asked).await?;
        let current: Vec<rows::Current> = view
            .pairs
            .iter()
            .map(|p| rows::Current {
                task: p.task.0,
                source: p.source.0,
                task_display_name: &p.task.1.display_name,
                source_display_name: &p.source.1.display_name,
                rpo_ms: p.rpo.map(|d| d.as_millis() as i64),
            })
            .collect();
        rows::refresh(&mut tx, &project, &current).await?;
        let stored = rows::of_project(&mut tx, &project).await?;
        tx.commit().await?;
        let mut last: HashMap<ConnectorId, Option<DateTime<Utc>>> =
            view.sources.iter().map(|(id, _)| (*id, None)).collect();
        for r in &stored {
            let e = last.entry(r.source_id).or_default();
            *e = (*e).max(r.last_success_time);
        }
        for (id, c) in &view.sources {
            let t = last.get(id).copied().flatten().map_or(0.0, |t| t.timestamp() as f64);
            metrics::gauge!("cairn_source_last_success_timestamp_seconds", "project" => project.to_string(), "source" => c.display_name.clone(), "source_id" => id.to_string()).set(t);
        }
    }
    Ok(())
}

/// A project's sources and BACKUP tasks as the catalog has them, and the pairs they make.
struct View<'a> {
    sources: Vec<(ConnectorId, &'a Connector)>,
    tasks: Vec<(TaskId, &'a Task)>,
    pairs: Vec<Pair<'a>>,
}

struct Pair<'a> {
    task: (TaskId, &'a Task),
    source: (ConnectorId, &'a Connector),
    rpo: Option<Duration>,
}

fn id_of(kind: Kind, name: &str) -> Option<uuid::Uuid> {
    names::parse_canonical(kind, name).ok().map(|(_, id)| id)
}

impl<'a> View<'a> {
    fn new(sources: &'a [Connector], tasks: &'a [Task]) -> View<'a> {
        let sources: Vec<(ConnectorId, &Connector)> = sources
            .iter()
            .filter_map(|c| id_of(Kind::Connector, &c.name).map(|id| (ConnectorId::from_uuid(id), c)))
            .collect();
        let tasks: Vec<(TaskId, &Task)> = tasks
            .iter()
            .filter_map(|t| id_of(Kind::Task, &t.name).map(|id| (TaskId::from_uuid(id), t)))
            .collect();
        let mut pairs = Vec::new();
        for (tid, t) in &tasks {
            let backup = match &t.options {
                Some(Options::Backup(b)) => Some(b),
                _ => None,
            };
            // A fleet task covers every source its selector matches; others their one source.
            let covered: Vec<(ConnectorId, &Connector)> = match backup.and_then(|b| b.sources.as_ref()) {
                Some(sel) => {
                    sources.iter().filter(|(_, s)| cairn_api::fleet::selects(sel, s)).copied().collect()
                }
                None => {
                    let Some(sid) = id_of(Kind::Connector, &t.source).map(ConnectorId::from_uuid) else {
                        continue;
                    };
                    sources.iter().filter(|(id, _)| *id == sid).copied().collect()
                }
            };
            for (sid, s) in covered {
                let task_rpo = backup.and_then(|b| b.rpo.as_ref());
                let rpo = s.rpo.as_ref().or(task_rpo).and_then(from_duration).filter(|d| !d.is_zero());
                pairs.push(Pair { task: (*tid, *t), source: (sid, s), rpo });
            }
        }
        View { sources, tasks, pairs }
    }
}

/// ListProtectionStatus.
pub async fn list(
    state: &State,
    caller: &Caller,
    req: ListProtectionStatusRequest,
) -> Result<ListProtectionStatusResponse> {
    let project = resolve::parent(caller, &req.parent)?;
    let size = match req.page_size {
        0 => DEFAULT_PAGE,
        n => pagination::page_size(n)?,
    };
    let mut states = Vec::with_capacity(req.states.len());
    for (i, s) in req.states.iter().enumerate() {
        match ProtectionState::try_from(*s) {
            Ok(ProtectionState::Unspecified) | Err(_) => {
                return Err(Error::invalid(format!("states[{i}]"), format!("{s} is not a protection state")));
            }
            Ok(s) => states.push(s),
        }
    }
    let coverage = state.catalog.coverage(&project).await?;
    let view = View::new(&coverage.sources, &coverage.backup_tasks);
    let source = pick(
        &project,
        Kind::Connector,
        "source",
        &req.source,
        view.sources.iter().map(|(id, c)| (id.uuid(), c.display_name.as_str())),
    )?;
    let task = pick(
        &project,
        Kind::Task,
        "task",
        &req.task,
        view.tasks.iter().map(|(id, t)| (id.uuid(), t.display_name.as_str())),
    )?;
    let fp = pagination::fingerprint(&(&project, &req.states, source, task));
    let offset: usize = pagination::decode(&req.page_token, fp)?.unwrap_or(0);
    let stored = {
        let mut conn = state.pool.acquire().await?;
        rows::of_project(&mut conn, &project).await?
    };
    let by_pair: HashMap<(TaskId, ConnectorId), &Row> =
        stored.iter().map(|r| ((r.task_id, r.source_id), r)).collect();
    let now = state.clock.now();
    let mut out = Vec::new();
    for (sid, s) in &view.sources {
        let pairs: Vec<&Pair> = view.pairs.iter().filter(|p| p.source.0 == *sid).collect();
        if pairs.is_empty() {
            out.push(entry(&project, (*sid, s), None, None, None, now));
        }
        for p in pairs {
            out.push(entry(
                &project,
                (*sid, s),
                Some(p.task),
                p.rpo,
                by_pair.get(&(p.task.0, *sid)).copied(),
                now,
            ));
        }
    }
    out.retain(|e| {
        (states.is_empty() || states.contains(&e.state()))
            && source.is_none_or(|id| id_of(Kind::Connector, &e.source) == Some(id))
            && task.is_none_or(|id| id_of(Kind::Task, &e.task) == Some(id))
    });
    out.sort_by(|a, b| {
        (severity(a.state()), &a.source_display_name, &a.task_display_name).cmp(&(
            severity(b.state()),
            &b.source_display_name,
            &b.task_display_name,
        ))
    });
    let total = out.len();
    let page: Vec<ProtectionStatus> = out.into_iter().skip(offset).take(size as usize).collect();
    let next = if offset + page.len() < total {
        pagination::encode(&(offset + page.len()), fp)
    } else {
        String::new()
    };
    Ok(ListProtectionStatusResponse { statuses: page, next_page_token: next, total_size: total as i32 })
}

/// A source or task filter, by full name, id or display name within `project`.
fn pick<'a>(
    project: &ProjectId,
    kind: Kind,
    field: &str,
    raw: &str,
    known: impl Iterator<Item = (uuid::Uuid, &'a str)>,
) -> Result<Option<uuid::Uuid>> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    let what = if kind == Kind::Task { "BACKUP task" } else { "source" };
    let mut known = known;
    let found = match resolve::within(kind, field, Some(project), raw)? {
        None => None,
        Some((_, Reference::Id(id))) => known.find(|(k, _)| *k == id),
        Some((_, Reference::DisplayName(n))) => known.find(|(_, d)| *d == n),
    };
    match found {
        Some((id, _)) => Ok(Some(id)),
        None => Err(Error::invalid(field, resolve::missing(what, raw))),
    }
}

/// One entry: a source with one of its tasks (and the pair's row), or alone.
fn entry(
    project: &ProjectId,
    (sid, s): (ConnectorId, &Connector),
    task: Option<(TaskId, &Task)>,
    rpo: Option<Duration>,
    row: Option<&Row>,
    now: DateTime<Utc>,
) -> ProtectionStatus {
    let facts = Facts {
        rpo: task.and(rpo),
        last_success: row.and_then(|r| r.last_success_time),
        covered_since: row.map(|r| r.covered_since),
    };
    let state = verdict(facts, now);
    let job = |id: Option<JobId>| id.map(|j| Kind::Job.name(project, j)).unwrap_or_default();
    ProtectionStatus {
        source: Kind::Connector.name(project, sid),
        source_display_name: s.display_name.clone(),
        task: task.map(|(id, _)| Kind::Task.name(project, id)).unwrap_or_default(),
        task_display_name: task.map(|(_, t)| t.display_name.clone()).unwrap_or_default(),
        rpo: facts.rpo.map(to_duration),
        state: state as i32,
        last_success_time: facts.last_success.map(to_timestamp),
        last_snapshot: row.map(|r| r.last_snapshot.clone()).unwrap_or_default(),
        last_success_job: job(row.and_then(|r| r.last_success_job_id)),
        age: facts.last_success.map(|t| to_duration((now - t).to_std().unwrap_or_default())),
        last_job: job(row.and_then(|r| r.last_finished_job_id)),
        last_job_state: row
            .and_then(|r| JobState::from_str_name(&format!("JOB_STATE_{}", r.last_job_state)))
            .unwrap_or_default() as i32,
        last_error: row.map(|r| r.last_error.clone()).unwrap_or_default(),
        violated_time: row
            .and_then(|r| r.violated_time)
            .filter(|_| state == ProtectionState::Violated)
            .map(to_timestamp),
        evaluate_time: Some(to_timestamp(now)),
    }
}
