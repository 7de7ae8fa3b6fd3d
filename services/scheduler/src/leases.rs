//! The worker-facing side: leasing queued jobs (placement by labels, store limits, serial
//! and exclusive jobs), heartbeats, log appends and completion, all fenced by the lease
//! name and generation so a zombie worker can never write over a newer attempt.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use cairn_api::{
    ids::{ConnectorId, Generation, JobId, LeaseId, Stored as _, TaskId},
    names::{ProjectId, Reference},
    v1::{
        AcquireLeaseRequest, AcquireLeaseResponse, AppendLogRequest, BatchCompleteJobsRequest,
        BatchCompleteJobsResponse, BatchCompleteResult, CompleteJobRequest, CompleteJobResponse,
        HeartbeatRequest, HeartbeatResponse, JobState, Lease, LogLevel, ResolvedTask, TaskType,
        complete_job_request::Outcome,
    },
};
use cairn_runtime::{
    status::Violations,
    time::{from_duration, from_timestamp, to_duration, to_timestamp},
};
use chrono::{DateTime, Utc};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use cairn_runtime::auth::{AuditRecord, AuditSink as _, Caller, Kind, credential_hash, mint};

use crate::{
    State,
    domain::{
        job::{self as rules},
        placement::{self, Candidate, StoreLoad},
    },
    error::{Error, Result},
    events,
    store::{self, jobs as rows, logs},
};

/// Longest long-poll.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// Fallback re-check while long-polling (jobs become due by time: retries after backoff).
const POLL: Duration = Duration::from_millis(500);
/// Most lines per AppendLog call.
const MAX_LINES: usize = 1000;
/// Longest log line kept (longer ones are cut).
const MAX_LINE_BYTES: usize = 16 * 1024;

/// What a valid AcquireLease asks for.
#[derive(Debug)]
pub struct Ask {
    pub(crate) capacity: usize,
    pub(crate) wait: Duration,
    pub(crate) projects: Vec<ProjectId>,
}

/// Checks an AcquireLease request (no I/O).
pub fn validate(req: &AcquireLeaseRequest) -> Result<Ask> {
    let mut v = Violations::default();
    let mut projects = Vec::with_capacity(req.projects.len());
    for (i, p) in req.projects.iter().enumerate() {
        match ProjectId::parse(p) {
            Ok(p) => projects.push(p),
            Err(e) => v.add(format!("projects[{i}]"), e),
        }
    }
    if req.worker_id.is_empty() || req.worker_id.len() > 128 || req.worker_id.chars().any(char::is_control) {
        v.add("worker_id", "is required: 1..=128 printable characters");
    }
    for (k, val) in &req.labels {
        if k.is_empty()
            || k.len() > 63
            || val.len() > 63
            || k.chars().chain(val.chars()).any(char::is_control)
        {
            v.add(format!("labels[{k:?}]"), "keys of 1..=63 and values of 0..=63 printable characters");
        }
    }
    let capacity = match req.capacity {
        n @ 1..=1000 => n as usize,
        n => {
            v.add("capacity", format!("{n} is out of range 1..=1000"));
            0
        }
    };
    let wait = match &req.wait {
        None => Duration::ZERO,
        Some(d) => match from_duration(d) {
            Some(d) if d <= MAX_WAIT => d,
            _ => {
                v.add("wait", "must be between 0 and 60s");
                Duration::ZERO
            }
        },
    };
    v.check()?;
    Ok(Ask { capacity, wait, projects })
}

/// Keeps a worker to its pool: only the pool's projects (all of them when the worker names
/// none) and only labels the pool allows. Enforcement off: as asked.
pub(crate) fn confine(caller: &Caller, mut ask: Ask, labels: &HashMap<String, String>) -> Result<Ask> {
    let p = caller.principal();
    if p.kind() != Kind::Worker {
        return Ok(ask);
    }
    if let Some((k, v)) = p.disallowed_label(labels) {
        return Err(caller.deny(format!("worker pool {} does not allow the label {k}={v}", p.name())).into());
    }
    if let Some(bad) = ask.projects.iter().find(|proj| !p.may_lease_from(proj.as_str())) {
        return Err(caller
            .deny(format!("worker pool {} may not lease jobs of project {bad}", p.name()))
            .into());
    }
    if ask.projects.is_empty() && !p.may_lease_from("*") {
        ask.projects = p.0.worker_projects.iter().filter_map(|s| ProjectId::parse(s).ok()).collect();
        if ask.projects.is_empty() {
            return Err(caller.deny(format!("worker pool {} may lease from no project", p.name())).into());
        }
    }
    Ok(ask)
}

/// AcquireLease: long-polls for up to `capacity` jobs.
pub async fn acquire(
    state: &State,
    caller: &Caller,
    req: AcquireLeaseRequest,
) -> Result<AcquireLeaseResponse> {
    let ask = confine(caller, validate(&req)?, &req.labels)?;
    let deadline = tokio::time::Instant::now() + ask.wait;
    let worker = Worker { id: &req.worker_id, labels: &req.labels, projects: &ask.projects };
    loop {
        let work = state.events.work().notified();
        tokio::pin!(work);
        work.as_mut().enable();
        let leases = try_acquire(state, &worker, ask.capacity).await?;
        if !leases.is_empty() {
            audit_release(state, caller, &req.worker_id, &leases).await;
            return Ok(AcquireLeaseResponse { leases });
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(AcquireLeaseResponse { leases: vec![] });
        }
        let pause = (deadline - now).min(POLL);
        tokio::select! {
            _ = &mut work => {}
            _ = tokio::time::sleep(pause) => {}
            _ = state.shutdown.cancelled() => return Ok(AcquireLeaseResponse { leases: vec![] }),
        }
    }
}

/// Every lease that carries decrypted secrets is an audit event naming the lease and worker.
async fn audit_release(state: &State, caller: &Caller, worker: &str, leases: &[Lease]) {
    let events: Vec<AuditRecord> = leases
        .iter()
        .filter(|l| l.task.is_some() || l.test_connector.is_some())
        .map(|l| {
            let job = l.job.as_ref().map(|j| j.name.clone()).unwrap_or_default();
            AuditRecord {
                project: job.strip_prefix("projects/").and_then(|r| r.split('/').next()).map(str::to_owned),
                resource: job.clone(),
                allowed: true,
                code: "OK".into(),
                detail: format!(
                    "released the decrypted secrets of {job} to worker {worker:?} in lease {}",
                    l.name
                ),
                ..AuditRecord::by(Some(caller.principal()), "/cairn.v1.LeaseService/AcquireLease")
            }
        })
        .collect();
    state.audit.record(events).await;
}

/// The hash of a report's lease token when authentication is enforced (the caller is a
/// worker), to be matched by the fenced write itself; `None` = not checked.
fn proof(caller: &Caller, token: &str) -> Option<Vec<u8>> {
    (caller.principal().kind() == Kind::Worker).then(|| credential_hash(token))
}

/// Why a fenced write matched nothing: a token of another lease (PERMISSION_DENIED, audited),
/// or a lease that is no longer current (LEASE_LOST). Only runs when a report failed.
async fn not_current(
    conn: &mut sqlx::PgConnection,
    caller: &Caller,
    lease: &str,
    generation: i64,
    proof: Option<&[u8]>,
) -> Error {
    if let (Some(proof), Some(id)) = (proof, LeaseId::parse_name(lease))
        && let Ok(Some(stored)) = rows::lease_token(conn, id).await
        && !stored.is_some_and(|h| cairn_runtime::grpc::constant_time_eq(&h, proof))
    {
        return caller.deny(format!("lease_token is not the token of lease {lease}")).into();
    }
    lost(lease, generation)
}

/// The worker asking for leases.
#[derive(Debug, Clone, Copy)]
pub struct Worker<'a> {
    /// Its id.
    pub id: &'a str,
    /// Its labels.
    pub labels: &'a HashMap<String, String>,
    /// The projects it serves (empty = all).
    pub projects: &'a [ProjectId],
}

/// One attempt at leasing; empty when nothing fits. Optimistic first (see [`lease_batch`]);
/// when a store limit or a serial task would be exceeded, again with the stores locked first.
pub async fn try_acquire(state: &State, worker: &Worker<'_>, capacity: usize) -> Result<Vec<Lease>> {
    let (started, tokens) = match lease_batch(state, worker, capacity, false).await? {
        Some(started) => started,
        None => {
            metrics::counter!("cairn_scheduler_lease_conflicts_total").increment(1);
            lease_batch(state, worker, capacity, true).await?.unwrap_or_default()
        }
    };
    let worker = worker.id;
    if started.is_empty() {
        return Ok(vec![]);
    }
    let now = state.clock.now();
    let ttl = state.config.lease_ttl();
    let expire = started.first().and_then(|r| r.lease_expire_time).unwrap_or(now);
    // Watchers hear about the lease after the store locks are released (a hint, not a write).
    let (pool, ids) = (state.pool.clone(), started.iter().map(|r| r.id).collect::<Vec<_>>());
    tokio::spawn(async move {
        if let Ok(mut conn) = pool.acquire().await {
            let _ = events::notify_jobs(&mut conn, &ids).await;
        }
    });
    metrics::counter!("cairn_scheduler_leases_granted_total").increment(started.len() as u64);
    for row in started.iter().filter(|r| !r.trace_parent.is_empty()) {
        // A point in the job's own trace (the caller's span belongs to the worker's polling).
        let span = tracing::info_span!("job.lease", otel.name = "job.lease", job.id = %row.id, worker, attempt = row.attempt);
        let _ = span.set_parent(cairn_runtime::grpc::context_from_traceparent(&row.trace_parent));
    }
    match leases_for(state, &started, &tokens, expire, ttl).await {
        Ok(leases) => Ok(leases),
        Err(e) => {
            // The catalog could not be asked: give the jobs back untouched.
            let mut conn = state.pool.acquire().await?;
            let ids: Vec<JobId> = started.iter().map(|r| r.id).collect();
            rows::release(&mut conn, &ids, "waiting for the catalog to answer").await?;
            state.events.wake_work();
            Err(e)
        }
    }
}

/// Claims candidates, picks what fits and starts it, in one transaction.
///
/// Optimistic (`lock_first = false`): store occupancy is read without locks, the jobs are
/// started, and only then are the store rows locked (in id order), then the serial tasks
/// (advisory locks), and occupancy recounted — now including this transaction's own starts and
/// every commit that came before the locks.
/// If a limit, an exclusive PRUNE or a serial task would be violated, the transaction rolls
/// back and `None` tells the caller to retry pessimistically. Either way no two transactions
/// can commit over a limit: whoever commits second recounted after the first committed.
/// Pessimistic (`lock_first = true`): stores and serial tasks are locked before occupancy is
/// read, as a classic critical section.
async fn lease_batch(
    state: &State,
    worker: &Worker<'_>,
    capacity: usize,
    lock_first: bool,
) -> Result<Option<(Vec<rows::Row>, HashMap<JobId, String>)>> {
    let now = state.clock.now();
    let expire = now + chrono::Duration::from_std(state.config.lease_ttl()).unwrap_or_default();
    let mut tx = state.pool.begin().await?;
    let Some(claimed) = claim(&mut tx, worker, capacity, now, lock_first).await? else {
        tx.commit().await?;
        return Ok(Some(Default::default()));
    };
    let accepted = place(&mut tx, claimed, capacity).await?;
    if accepted.is_empty() {
        tx.commit().await?;
        return Ok(Some(Default::default()));
    }
    // Each lease gets its own credential; only its hash is stored.
    let tokens: HashMap<JobId, String> = accepted.iter().map(|id| (*id, mint("lt"))).collect();
    let hashes: Vec<Vec<u8>> = accepted.iter().map(|id| credential_hash(&tokens[id])).collect();
    let started = rows::start(&mut tx, &accepted, &hashes, worker.id, now, expire).await?;
    if !lock_first && !still_within_limits(&mut tx, &started).await? {
        tx.rollback().await?;
        return Ok(None);
    }
    tx.commit().await?;
    Ok(Some((started, tokens)))
}

/// What a claim holds: queued jobs locked for this transaction, with their stores' limits and
/// the serial tasks among them.
struct Claimed {
    candidates: Vec<rows::CandidateRow>,
    limits: Vec<rows::StoreRow>,
    store_ids: Vec<ConnectorId>,
    serial_tasks: Vec<TaskId>,
}

/// Step 1: claims queued, due jobs the worker may run (`SKIP LOCKED`) and reads their stores'
/// limits, locking stores and serial tasks first when pessimistic. `None` = nothing queued.
async fn claim(
    tx: &mut sqlx::PgConnection,
    worker: &Worker<'_>,
    capacity: usize,
    now: DateTime<Utc>,
    lock_first: bool,
) -> Result<Option<Claimed>> {
    rows::prefer_ordered_scan(tx).await?;
    let candidates =
        rows::claim_candidates(tx, worker.labels, worker.projects, now, (capacity * 4 + 16) as i64).await?;
    if candidates.is_empty() {
        return Ok(None);
    }
    let mut store_ids: Vec<ConnectorId> =
        candidates.iter().flat_map(|c| c.store_ids.iter().copied()).collect();
    store_ids.sort();
    store_ids.dedup();
    let serial_tasks: Vec<TaskId> =
        candidates.iter().filter(|c| c.serial).filter_map(|c| c.task_id).collect();
    let limits = if lock_first {
        let limits = rows::lock_stores(tx, &store_ids).await?;
        store::lock_tasks(tx, store::LOCK_SERIAL, &serial_tasks).await?;
        limits
    } else {
        rows::stores(tx, &store_ids).await?
    };
    Ok(Some(Claimed { candidates, limits, store_ids, serial_tasks }))
}

/// Step 2: decides which claimed jobs fit (store limits, exclusive PRUNEs, serial tasks; see
/// `domain::placement`) and records why the others wait. Returns the jobs to start.
async fn place(tx: &mut sqlx::PgConnection, c: Claimed, capacity: usize) -> Result<Vec<JobId>> {
    let mut loads = occupancy(tx, &c.limits, &c.store_ids).await?;
    let mut busy: HashSet<placement::SerialKey> = if c.serial_tasks.is_empty() {
        HashSet::new()
    } else {
        rows::busy_tasks(tx, &c.serial_tasks).await?.into_iter().collect()
    };
    let cands: Vec<Candidate> = c
        .candidates
        .iter()
        .map(|c| Candidate {
            id: c.id,
            task_id: c.task_id,
            store_ids: c.store_ids.clone(),
            exclusive: c.exclusive,
            serial: c.serial,
            fleet_source: c.serial_source,
        })
        .collect();
    let pick = placement::pick(&cands, &mut loads, &mut busy, capacity);
    let old: HashMap<JobId, &str> = c.candidates.iter().map(|c| (c.id, c.wait_reason.as_str())).collect();
    let changed: Vec<(JobId, String)> =
        pick.waiting.into_iter().filter(|(id, r)| old.get(id).is_none_or(|o| *o != r)).collect();
    rows::set_wait_reasons(tx, &changed).await?;
    Ok(pick.accepted)
}

/// Step 3 of an optimistic lease: after starting, locks the touched stores, then the serial
/// tasks (the order every leasing transaction locks in) and recounts with every commit before
/// the locks and this transaction's own starts. False = a limit would be exceeded.
async fn still_within_limits(tx: &mut sqlx::PgConnection, started: &[rows::Row]) -> Result<bool> {
    let mut touched: Vec<ConnectorId> = started.iter().flat_map(|r| r.store_ids.iter().copied()).collect();
    touched.sort();
    touched.dedup();
    let serial: Vec<TaskId> = started.iter().filter(|r| r.serial).filter_map(|r| r.task_id).collect();
    if !touched.is_empty() {
        let limits = rows::lock_stores(tx, &touched).await?;
        let after = occupancy(tx, &limits, &touched).await?;
        if after.values().any(|l| l.running > l.max_concurrent_jobs || (l.exclusive_running && l.running > 1))
        {
            return Ok(false);
        }
    }
    if !serial.is_empty() {
        store::lock_tasks(tx, store::LOCK_SERIAL, &serial).await?;
        if rows::tasks_running_more_than_once(tx, &serial).await? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Occupancy of stores: their limits with running jobs counted (committed, plus this
/// transaction's own).
async fn occupancy(
    conn: &mut sqlx::PgConnection,
    limits: &[rows::StoreRow],
    ids: &[ConnectorId],
) -> Result<HashMap<ConnectorId, StoreLoad>> {
    let mut loads: HashMap<ConnectorId, StoreLoad> = limits
        .iter()
        .map(|s| {
            (
                s.id,
                StoreLoad {
                    display_name: s.display_name.clone(),
                    max_concurrent_jobs: s.max_concurrent_jobs,
                    running: 0,
                    exclusive_running: false,
                },
            )
        })
        .collect();
    if !ids.is_empty() {
        for load in rows::store_loads(conn, ids).await? {
            if let Some(l) = loads.get_mut(&load.store_id) {
                l.running = load.running as i32;
                l.exclusive_running = load.exclusive;
            }
        }
    }
    Ok(loads)
}

async fn leases_for(
    state: &State,
    started: &[rows::Row],
    tokens: &HashMap<JobId, String>,
    expire: DateTime<Utc>,
    ttl: Duration,
) -> Result<Vec<Lease>> {
    let task_ids: Vec<(ProjectId, TaskId)> =
        started.iter().filter_map(|r| r.task_id.map(|t| (r.project_id.clone(), t))).collect();
    let resolved =
        if task_ids.is_empty() { HashMap::new() } else { state.catalog.resolved(&task_ids).await? };
    let mut leases = Vec::with_capacity(started.len());
    for row in started {
        let mut lease = Lease {
            name: row.lease_id.unwrap_or_default().lease_name(),
            generation: row.lease_generation.get(),
            job: Some(crate::convert::job(row)?),
            task: None,
            test_connector: None,
            expire_time: Some(to_timestamp(expire)),
            ttl: Some(to_duration(ttl)),
            token: tokens.get(&row.id).cloned().unwrap_or_default(),
        };
        if row.r#type == TaskType::TestConnection {
            let id =
                row.test_connector_id.ok_or_else(|| Error::Internal("test job without connector".into()))?;
            match state.catalog.connector(&row.project_id, &Reference::Id(id.uuid()), true).await? {
                Some(c) => lease.test_connector = Some(c),
                None => {
                    fail_gone(state, row, "the connector was deleted before the test ran").await?;
                    continue;
                }
            }
        } else if let Some(task_id) = row.task_id {
            match resolved.get(&(row.project_id.clone(), task_id)).cloned().flatten() {
                Some(r) => {
                    // Task-level secrets (webhook keys) are for the scheduler only, and a fleet
                    // job's worker gets its own source, not every source's secrets.
                    let mut task = ResolvedTask { secrets: HashMap::new(), fleet: vec![], ..(*r).clone() };
                    if row.run_id.is_some() {
                        let own = r.fleet.iter().find(|c| {
                            c.connector
                                .as_ref()
                                .and_then(|c| {
                                    cairn_api::names::parse_canonical(
                                        cairn_api::names::Kind::Connector,
                                        &c.name,
                                    )
                                    .ok()
                                })
                                .map(|(_, id)| id)
                                == row.source_id.map(|s| s.uuid())
                        });
                        match own {
                            Some(c) => task.source = Some(c.clone()),
                            None => {
                                fail_gone(
                                    state,
                                    row,
                                    "the source no longer matches the task's `backup.sources`",
                                )
                                .await?;
                                continue;
                            }
                        }
                    }
                    if let Some(o) = &row.overrides {
                        let o: cairn_api::v1::RunOverrides = store::decode(o)?;
                        if let Err(why) =
                            crate::overrides::apply(state, &row.project_id, &o, &mut task).await?
                        {
                            fail_gone(state, row, &why).await?;
                            continue;
                        }
                    }
                    lease.task = Some(task);
                }
                None => {
                    fail_gone(state, row, "the task was deleted before the job ran").await?;
                    continue;
                }
            }
        }
        leases.push(lease);
    }
    Ok(leases)
}

async fn fail_gone(state: &State, row: &rows::Row, why: &str) -> Result<()> {
    let mut conn = state.pool.acquire().await?;
    let done = rows::finish(
        &mut conn,
        row.id,
        &rows::Finish {
            state: JobState::Failed,
            end_time: Some(state.clock.now()),
            error: why.to_owned(),
            ..Default::default()
        },
    )
    .await?;
    crate::jobs::ended(&mut conn, &done).await?;
    events::notify_jobs(&mut conn, &[row.id]).await?;
    Ok(())
}

fn lease_id(raw: &str) -> Result<LeaseId> {
    LeaseId::parse_name(raw)
        .ok_or_else(|| Error::invalid("lease", format!("{raw:?} is not a lease name (leases/{{id}})")))
}

fn lost(lease: &str, generation: i64) -> Error {
    Error::LeaseLost(format!(
        "lease {lease} (generation {generation}) is no longer current: it expired, was re-leased, or the job ended"
    ))
}

/// Heartbeat.
pub async fn heartbeat(state: &State, caller: &Caller, req: HeartbeatRequest) -> Result<HeartbeatResponse> {
    let lease = lease_id(&req.lease)?;
    let proof = proof(caller, &req.lease_token);
    let fence = rows::Fence { lease, generation: Generation::new(req.generation), token: proof.as_deref() };
    let now = state.clock.now();
    let expire = now + chrono::Duration::from_std(state.config.lease_ttl()).unwrap_or_default();
    let progress = match req.progress {
        Some(mut p) => {
            p.update_time = Some(to_timestamp(now));
            p.current_path.truncate(4096);
            Some(store::encode(&p)?)
        }
        None => None,
    };
    let with_progress = progress.is_some();
    let mut conn = state.pool.acquire().await?;
    let Some(rows::Beat { id, cancel_requested: cancel }) =
        rows::heartbeat(&mut conn, &fence, progress, expire).await?
    else {
        return Err(not_current(&mut conn, caller, &req.lease, req.generation, fence.token).await);
    };
    // Watchers only care when there is news; bare keep-alives wake nobody.
    if with_progress {
        events::notify_jobs(&mut conn, &[id]).await?;
    }
    Ok(HeartbeatResponse { cancel_requested: cancel, expire_time: Some(to_timestamp(expire)) })
}

/// AppendLog.
pub async fn append_log(state: &State, caller: &Caller, req: AppendLogRequest) -> Result<()> {
    let lease = lease_id(&req.lease)?;
    let proof = proof(caller, &req.lease_token);
    let fence = rows::Fence { lease, generation: Generation::new(req.generation), token: proof.as_deref() };
    if req.lines.len() > MAX_LINES {
        return Err(Error::invalid("lines", format!("at most {MAX_LINES} lines per call")));
    }
    let now = state.clock.now();
    let mut prev = 0;
    let mut lines = Vec::with_capacity(req.lines.len());
    for (i, l) in req.lines.iter().enumerate() {
        if l.seq <= prev {
            return Err(Error::invalid(format!("lines[{i}].seq"), "must be positive and increasing"));
        }
        prev = l.seq;
        let level = match LogLevel::try_from(l.level) {
            Ok(LogLevel::Unspecified) | Err(_) => LogLevel::Info,
            Ok(lv) => lv,
        };
        let mut message = l.message.clone();
        if message.len() > MAX_LINE_BYTES {
            let mut cut = MAX_LINE_BYTES;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str(" …(truncated)");
        }
        lines.push(logs::Line {
            time: l.time.as_ref().and_then(from_timestamp).unwrap_or(now),
            level: level as i16,
            message,
            worker_seq: l.seq,
        });
    }
    let mut tx = state.pool.begin().await?;
    let Some(row) = rows::by_lease_for_update(&mut tx, &fence).await? else {
        return Err(not_current(&mut tx, caller, &req.lease, req.generation, fence.token).await);
    };
    if logs::append(&mut tx, row.id, row.attempt, &lines).await? > 0 {
        events::notify_jobs(&mut tx, &[row.id]).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// CompleteJob.
pub async fn complete(
    state: &State,
    caller: &Caller,
    req: CompleteJobRequest,
) -> Result<CompleteJobResponse> {
    let mut results = complete_many(state, caller, vec![req]).await?;
    let row = results.pop().ok_or_else(|| Error::Internal("no completion result".into()))??;
    Ok(CompleteJobResponse { job: Some(crate::convert::job(&row)?) })
}

/// BatchCompleteJobs: one transaction; each completion succeeds or fails on its own.
pub async fn batch_complete(
    state: &State,
    caller: &Caller,
    req: BatchCompleteJobsRequest,
) -> Result<BatchCompleteJobsResponse> {
    if req.completions.len() > 1000 {
        return Err(Error::invalid("completions", "at most 1000 per call"));
    }
    let results = complete_many(state, caller, req.completions).await?;
    Ok(BatchCompleteJobsResponse {
        results: results
            .into_iter()
            .map(|r| match r {
                Ok(_) => BatchCompleteResult { code: 0, message: String::new() },
                Err(e) => {
                    let s = tonic::Status::from(e);
                    BatchCompleteResult { code: s.code() as i32, message: s.message().to_owned() }
                }
            })
            .collect(),
    })
}

/// A plain success (no snapshot index, no verdict) takes the one-statement path.
fn is_plain_success(req: &CompleteJobRequest) -> bool {
    req.snapshot_index.is_empty()
        && matches!(&req.outcome, Some(Outcome::Succeeded(s)) if s.connection_test.is_none())
}

async fn complete_many(
    state: &State,
    caller: &Caller,
    reqs: Vec<CompleteJobRequest>,
) -> Result<Vec<Result<rows::Row>>> {
    let now = state.clock.now();
    let mut out: Vec<Option<Result<rows::Row>>> = (0..reqs.len()).map(|_| None).collect();
    let mut tx = state.pool.begin().await?;
    // Plain successes of every lease in one statement.
    let mut fast = Vec::new();
    for (i, r) in reqs.iter().enumerate() {
        if !is_plain_success(r) {
            continue;
        }
        match lease_id(&r.lease) {
            Ok(id) => fast.push((i, id)),
            Err(e) => out[i] = Some(Err(e)),
        }
    }
    if !fast.is_empty() {
        let mut items = Vec::with_capacity(fast.len());
        for (i, id) in &fast {
            let Some(Outcome::Succeeded(s)) = &reqs[*i].outcome else { continue };
            items.push(rows::Success {
                lease: *id,
                generation: Generation::new(reqs[*i].generation),
                token: proof(caller, &reqs[*i].lease_token),
                snapshot: s.snapshot.clone(),
                stats: s.stats.as_ref().map(store::encode).transpose()?,
            });
        }
        let done = rows::succeed_many(&mut tx, &items, now).await?;
        crate::protection::jobs_finished(&mut tx, &done).await?;
        let by_lease: HashMap<LeaseId, rows::Row> =
            done.into_iter().filter_map(|r| r.lease_id.map(|l| (l, r))).collect();
        for ((i, id), item) in fast.into_iter().zip(&items) {
            out[i] = Some(match by_lease.get(&id) {
                Some(row) => Ok(row.clone()),
                None => Err(not_current(
                    &mut tx,
                    caller,
                    &reqs[i].lease,
                    reqs[i].generation,
                    item.token.as_deref(),
                )
                .await),
            });
        }
    }
    for (i, r) in reqs.into_iter().enumerate() {
        if out[i].is_none() {
            out[i] = Some(complete_one(&mut tx, caller, r, now).await);
        }
    }
    let done: Vec<&rows::Row> = out.iter().filter_map(|r| r.as_ref().and_then(|r| r.as_ref().ok())).collect();
    let mut ready: Vec<ConnectorId> = done
        .iter()
        .filter(|r| r.state == JobState::Succeeded)
        .flat_map(|r| r.store_ids.iter().copied())
        .collect();
    if !ready.is_empty() {
        ready.sort();
        ready.dedup();
        rows::mark_ready(&mut tx, &ready).await?;
    }
    if !done.is_empty() {
        events::notify(&mut tx, events::WORK, "").await?;
        events::notify_jobs(&mut tx, &done.iter().map(|r| r.id).collect::<Vec<_>>()).await?;
    }
    tx.commit().await?;
    if !done.is_empty() {
        state.events.wake_work();
    }
    for row in done {
        after_commit(state, row)?;
    }
    Ok(out
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(Error::Internal("completion skipped".into()))))
        .collect())
}

/// Metrics, logs and the catalog's copy of a connection test verdict.
fn after_commit(state: &State, done: &rows::Row) -> Result<()> {
    metrics::counter!("cairn_scheduler_jobs_finished_total", "type" => done.r#type.stored(), "state" => done.state.stored())
        .increment(1);
    if let (Some(start), Some(end)) = (done.start_time, done.end_time) {
        let secs = (end - start).num_milliseconds().max(0) as f64 / 1000.0;
        metrics::histogram!("cairn_scheduler_job_duration_seconds", "type" => done.r#type.stored())
            .record(secs);
    }
    if done.r#type == TaskType::TestConnection
        && let (Some(connector), Some(test)) =
            (done.test_connector_id, crate::convert::job(done)?.connection_test)
    {
        let catalog = state.catalog.clone();
        let project = done.project_id.clone();
        tokio::spawn(async move {
            if let Err(e) = catalog.record_test(&project, connector, test).await {
                tracing::warn!(error = %e, "connection test verdict not recorded in the catalog");
            }
        });
    }
    if !done.trace_parent.is_empty() {
        let span = tracing::info_span!("job.complete", otel.name = "job.complete", job.id = %done.id, job.state = done.state.stored());
        let _ = span.set_parent(cairn_runtime::grpc::context_from_traceparent(&done.trace_parent));
    }
    tracing::debug!(job.id = %done.id, job.state = done.state.stored(), attempt = done.attempt, "job completed");
    Ok(())
}

/// One completion with its full rules (failures, retries, cancellation, snapshot index).
async fn complete_one(
    conn: &mut sqlx::PgConnection,
    caller: &Caller,
    req: CompleteJobRequest,
    now: DateTime<Utc>,
) -> Result<rows::Row> {
    let lease = lease_id(&req.lease)?;
    let proof = proof(caller, &req.lease_token);
    let fence = rows::Fence { lease, generation: Generation::new(req.generation), token: proof.as_deref() };
    let outcome = req
        .outcome
        .ok_or_else(|| Error::invalid("outcome", "is required: succeeded, failed or cancelled"))?;
    let Some(row) = rows::by_lease_for_update(conn, &fence).await? else {
        return Err(not_current(conn, caller, &req.lease, req.generation, fence.token).await);
    };
    // Refused before anything is written: the completion is all or nothing.
    crate::snapshots::stores_of(&row.project_id, &req.snapshot_index)?;
    let ms = |v: i64| Duration::from_millis(v.max(0) as u64);
    let attempt = rules::Attempt {
        attempt: row.attempt,
        max_attempts: row.max_attempts,
        timed_out: row.timed_out,
        timeout: ms(row.timeout_ms.unwrap_or(0)),
        cancel_requested: row.cancel_requested,
        cancel_reason: row.cancel_reason.clone(),
        initial_backoff: ms(row.initial_backoff_ms),
        max_backoff: ms(row.max_backoff_ms),
    };
    let (report, snapshot, stats, connection_test) = match outcome {
        Outcome::Succeeded(s) => (
            rules::Report::Succeeded,
            Some(s.snapshot),
            s.stats.as_ref().map(store::encode).transpose()?,
            s.connection_test.as_ref().map(store::encode).transpose()?,
        ),
        Outcome::Cancelled(c) => (rules::Report::Cancelled { message: c.message }, None, None, None),
        Outcome::Failed(f) => (
            rules::Report::Failed { error: f.error, retryable: f.retryable },
            None,
            f.stats.as_ref().map(store::encode).transpose()?,
            None,
        ),
    };
    let finish = match rules::next(&report, &attempt) {
        rules::Next::End { state, error } => rows::Finish {
            state,
            end_time: Some(now),
            run_after: None,
            snapshot,
            stats,
            error,
            wait_reason: String::new(),
            connection_test,
        },
        rules::Next::Retry { delay, error, wait_reason } => {
            let line = logs::Line {
                time: now,
                level: LogLevel::Warn as i16,
                message: wait_reason.clone(),
                worker_seq: 0,
            };
            logs::append(conn, row.id, row.attempt, &[line]).await?;
            rows::Finish {
                state: JobState::Queued,
                end_time: None,
                run_after: Some(now + chrono::Duration::from_std(delay).unwrap_or_default()),
                snapshot,
                stats,
                error,
                wait_reason,
                connection_test,
            }
        }
    };
    let done = rows::finish(conn, row.id, &finish).await?;
    if !req.snapshot_index.is_empty() {
        // A BACKUP made its snapshot; other jobs only saw theirs.
        let made = if done.r#type == TaskType::Backup { done.snapshot.as_str() } else { "" };
        crate::snapshots::refresh(conn, &row.project_id, &req.snapshot_index, row.id, made, now).await?;
    }
    if crate::domain::job::is_final(done.state) {
        crate::jobs::ended(conn, &done).await?;
    }
    Ok(done)
}
