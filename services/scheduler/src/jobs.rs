//! Job operations: creating jobs for tasks (shared by firing and RunTask, with the overlap
//! policy), reading and listing history, logs, cancelling, and watching live.

use std::{collections::HashMap, pin::Pin};

use cairn_api::{
    ids::{JobId, ScheduleId, Stored as _},
    names::{Kind, ProjectId},
    v1::{
        CancelJobRequest, GetJobRequest, Job, JobState, JobTrigger, JobView, ListJobLogsRequest,
        ListJobLogsResponse, ListJobsRequest, ListJobsResponse, LogLevel, RunTaskRequest, TaskType,
        WatchJobEvent, WatchJobRequest, watch_job_event::Event,
    },
};
use cairn_runtime::{
    db::{self, DbErrorKind},
    idempotency::{self, Claim},
    pagination,
    time::from_timestamp,
};
use chrono::{DateTime, Utc};
use futures::Stream;
use prost::Message as _;
use sqlx::PgConnection;
use tokio::sync::mpsc;
use tonic::Status;
use uuid::Uuid;

use cairn_runtime::auth::Caller;

use crate::{
    State,
    catalog::TaskPlan,
    domain::job::{self as rules, Overlap, is_final},
    error::{Error, Result},
    events, resolve,
    store::{self, jobs as rows, logs},
};

/// A job to create for a task.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Why.
    pub trigger: JobTrigger,
    /// The schedule that fired it.
    pub schedule_id: Option<ScheduleId>,
    /// Its occurrence (unique per schedule).
    pub occurrence: Option<DateTime<Utc>>,
    /// When it is due.
    pub scheduled_time: DateTime<Utc>,
    /// Missed occurrences it stands for (catch-up).
    pub missed_occurrences: i64,
    /// Idempotency key.
    pub request_id: Option<Uuid>,
    /// W3C trace context.
    pub trace_parent: String,
    /// RunTask's changes for this run (RunOverrides, proto3 JSON).
    pub overrides: Option<serde_json::Value>,
    /// The run a fleet task's job belongs to (shared by the jobs of one firing or RunTask).
    pub run_id: Option<Uuid>,
    /// Record the job as SKIPPED (trigger SYSTEM) with this reason instead of queueing it:
    /// occurrences missed while the control plane was down and not caught up.
    pub skipped: Option<String>,
}

/// The row of a new job of a task, without state.
pub fn new_row(plan: &TaskPlan, spec: &Spec, now: DateTime<Utc>) -> rows::New {
    rows::New {
        project_id: plan.project.clone(),
        id: JobId::new(),
        task_id: Some(plan.id),
        task_display_name: plan.display_name.clone(),
        r#type: plan.task_type,
        schedule_id: spec.schedule_id,
        occurrence: spec.occurrence,
        trigger: spec.trigger,
        connector_ids: plan.connector_ids.clone(),
        store_ids: plan.stores.iter().map(|s| s.id).collect(),
        exclusive: plan.exclusive,
        serial: true,
        selector: plan.selector.clone(),
        test_connector_id: None,
        state: JobState::Queued,
        scheduled_time: spec.scheduled_time,
        create_time: now,
        end_time: None,
        max_attempts: plan.max_attempts,
        initial_backoff_ms: plan.initial_backoff.as_millis() as i64,
        max_backoff_ms: plan.max_backoff.as_millis() as i64,
        timeout_ms: plan.timeout.map(|d| d.as_millis() as i64),
        error: String::new(),
        missed_occurrences: spec.missed_occurrences,
        trace_parent: spec.trace_parent.clone(),
        request_id: spec.request_id,
        notify: notify_mode(plan),
        source_id: plan.source.as_ref().map(|(id, _)| *id),
        overrides: spec.overrides.clone(),
        run_id: spec.run_id,
    }
}

/// The notification mode a job of this plan records (NEVER when there is no channel).
fn notify_mode(plan: &TaskPlan) -> cairn_api::v1::NotificationMode {
    use cairn_api::v1::NotificationMode;
    let n = &plan.notification;
    if n.webhooks.is_empty() && n.emails.is_empty() {
        return NotificationMode::Never;
    }
    match n.mode() {
        m @ (NotificationMode::Always | NotificationMode::Errors) => m,
        _ => NotificationMode::Never,
    }
}

/// What follows the end of a job, in the transaction that ends it: its notification and its
/// source's protection.
pub async fn ended(conn: &mut PgConnection, job: &rows::Row) -> Result<()> {
    crate::notifications::enqueue(conn, job).await?;
    crate::protection::jobs_finished(conn, std::slice::from_ref(job)).await
}

/// Creates the jobs of one run of `plan` (one, or one per source of a fleet task, sharing a
/// run id) inside the caller's transaction. The first job carries the request id and its id
/// is returned.
pub async fn create_run(
    conn: &mut PgConnection,
    plan: &TaskPlan,
    spec: &Spec,
    now: DateTime<Utc>,
) -> Result<Option<JobId>> {
    let runs = plan.runs();
    let items = run_items(&runs, plan.is_fleet(), spec);
    Ok(create_many(conn, &items, now).await?.into_iter().next().flatten())
}

/// The jobs of one run: `runs` are the plans [`TaskPlan::runs`] made of one task; a fleet
/// task's jobs share a new run id, and only the first carries the request id.
pub fn run_items<'a>(runs: &'a [TaskPlan], fleet: bool, spec: &Spec) -> Vec<Create<'a>> {
    let run_id = fleet.then(Uuid::now_v7);
    runs.iter()
        .enumerate()
        .map(|(i, plan)| Create {
            plan,
            spec: Spec { run_id, request_id: if i == 0 { spec.request_id } else { None }, ..spec.clone() },
        })
        .collect()
}

/// One job to create: the plan it runs and its inputs.
#[derive(Debug, Clone)]
pub struct Create<'a> {
    pub plan: &'a TaskPlan,
    pub spec: Spec,
}

/// Creates jobs inside the caller's transaction, in one statement, applying each task's
/// overlap policy: the tasks are locked together (in key order, across replicas) and a job
/// sees the active jobs of its task, those created before it in this call included (a
/// CANCEL_RUNNING job cancels an earlier one of the same call before it is even stored).
/// Returns, per item, the job id, or `None` when its schedule occurrence already has a job.
pub async fn create_many(
    conn: &mut PgConnection,
    items: &[Create<'_>],
    now: DateTime<Utc>,
) -> Result<Vec<Option<JobId>>> {
    use cairn_api::v1::OverlapPolicy;
    let guarded: Vec<_> = items
        .iter()
        .filter(|c| c.plan.overlap != OverlapPolicy::Allow && c.spec.skipped.is_none())
        .map(|c| c.plan.id)
        .collect();
    type Key = (ProjectId, cairn_api::ids::TaskId, Option<cairn_api::ids::ConnectorId>);
    let mut active: HashMap<Key, Vec<rules::Active>> = HashMap::new();
    if !guarded.is_empty() {
        store::lock_tasks(conn, store::LOCK_TASK, &guarded).await?;
        for (project, task, source, a) in rows::active_of_tasks(conn, &guarded).await? {
            active.entry((project, task, source)).or_default().push(a);
        }
    }
    let mut jobs = Vec::with_capacity(items.len());
    for Create { plan, spec } in items {
        let mut job = new_row(plan, spec, now);
        if let Some(reason) = &spec.skipped {
            job.state = JobState::Skipped;
            job.trigger = JobTrigger::System;
            job.end_time = Some(now);
            job.error = reason.clone();
            jobs.push(job);
            continue;
        }
        let fleet_source = spec.run_id.and(plan.source.as_ref().map(|(id, _)| *id));
        let mine = active.entry((plan.project.clone(), plan.id, fleet_source)).or_default();
        match rules::overlap(plan.overlap, &plan.project, mine) {
            Overlap::Skip(reason) => {
                job.state = JobState::Skipped;
                job.end_time = Some(now);
                job.error = reason;
            }
            Overlap::Queue { serial, cancel } => {
                job.serial = serial;
                for id in &cancel {
                    let reason = format!(
                        "cancelled by overlap policy CANCEL_RUNNING: superseded by {}",
                        Kind::Job.name(&plan.project, job.id)
                    );
                    match jobs.iter_mut().find(|j: &&mut rows::New| j.id == *id) {
                        // Created earlier in this call: recorded as cancelled at once.
                        Some(earlier) => {
                            earlier.state = JobState::Cancelled;
                            earlier.end_time = Some(now);
                            earlier.error = reason;
                        }
                        None => {
                            cancel_in_tx(conn, &plan.project, *id, &reason, now).await?;
                        }
                    }
                }
                mine.retain(|a| !cancel.contains(&a.id));
                if plan.overlap != OverlapPolicy::Allow {
                    mine.push(rules::Active { id: job.id, state: JobState::Queued });
                }
            }
        }
        jobs.push(job);
    }
    let recorded: std::collections::HashSet<JobId> =
        rows::insert_many(conn, &jobs).await?.into_iter().collect();
    let created: Vec<(&TaskPlan, JobId)> = items
        .iter()
        .zip(&jobs)
        .filter(|(_, j)| recorded.contains(&j.id))
        .map(|(c, j)| (c.plan, j.id))
        .collect();
    crate::protection::jobs_created(conn, &created, now).await?;
    for job in jobs.iter().filter(|j| recorded.contains(&j.id) && j.end_time.is_some()) {
        if let Some(row) = rows::get(conn, Some(&job.project_id), job.id).await? {
            ended(conn, &row).await?;
        }
    }
    if !recorded.is_empty() {
        events::notify(conn, events::WORK, "").await?;
        let ids: Vec<JobId> = jobs.iter().map(|j| j.id).filter(|id| recorded.contains(id)).collect();
        events::notify_jobs(conn, &ids).await?;
    }
    for job in jobs.iter().filter(|j| recorded.contains(&j.id)) {
        metrics::counter!("cairn_scheduler_jobs_created_total", "type" => job.r#type.stored(), "trigger" => job.trigger.stored(), "state" => job.state.stored()).increment(1);
    }
    Ok(jobs.iter().map(|j| recorded.contains(&j.id).then_some(j.id)).collect())
}

/// Cancels a job inside the caller's transaction: a queued one at once, a running one through
/// its worker. Returns the state it was in.
pub async fn cancel_in_tx(
    conn: &mut PgConnection,
    project: &ProjectId,
    id: JobId,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<JobState> {
    let Some(row) = rows::get_for_update(conn, project, id).await? else {
        return Err(Error::NotFound(Kind::Job.name(project, id)));
    };
    let state = row.state;
    match state {
        JobState::Queued => {
            let done = rows::finish(
                conn,
                id,
                &rows::Finish {
                    state: JobState::Cancelled,
                    end_time: Some(now),
                    error: reason.to_owned(),
                    ..Default::default()
                },
            )
            .await?;
            crate::jobs::ended(conn, &done).await?;
            events::notify_jobs(conn, &[id]).await?;
        }
        JobState::Running => {
            rows::request_cancel(conn, id, reason, false).await?;
            logs::append(
                conn,
                id,
                row.attempt,
                &[logs::Line {
                    time: now,
                    level: LogLevel::Warn as i16,
                    message: format!("cancel requested: {reason}"),
                    worker_seq: 0,
                }],
            )
            .await?;
            events::notify_jobs(conn, &[id]).await?;
        }
        _ => {}
    }
    Ok(state)
}

fn request_id(raw: &str) -> Result<Option<uuid::Uuid>> {
    if raw.is_empty() {
        return Ok(None);
    }
    Uuid::parse_str(raw).map(Some).map_err(|_| Error::invalid("request_id", format!("{raw:?} is not a UUID")))
}

/// RunTask: a MANUAL job now; schedules are untouched.
pub async fn run_task(state: &State, caller: &Caller, req: RunTaskRequest) -> Result<Job> {
    let (project, _) = resolve::full(caller, Kind::Task, "task", &req.task)?;
    caller.request_id(&req.request_id);
    let rid = request_id(&req.request_id)?;
    if let Some(rid) = rid {
        let mut conn = state.pool.acquire().await?;
        if let Some(row) = rows::by_request_id(&mut conn, &project, rid).await? {
            return crate::convert::job(&row);
        }
    }
    let plan = resolve::task_plan(state, "task", &project, &req.task).await?;
    let (plan, overrides) = match req.overrides.as_ref().filter(|o| !crate::overrides::is_empty(o)) {
        None => (plan, None),
        Some(o) => {
            let (plan, o) = crate::overrides::check(state, &plan, o).await?;
            (std::sync::Arc::new(plan), Some(store::encode(&o)?))
        }
    };
    let span = tracing::info_span!("job.run_task", task.id = %plan.id);
    let trace_parent = span.in_scope(cairn_runtime::grpc::current_traceparent);
    let now = state.clock.now();
    upsert_stores(state, &plan).await?;
    let spec = Spec {
        trigger: JobTrigger::Manual,
        schedule_id: None,
        occurrence: None,
        scheduled_time: now,
        missed_occurrences: 0,
        request_id: rid,
        trace_parent,
        overrides,
        run_id: None,
        skipped: None,
    };
    if plan.fleet.as_ref().is_some_and(Vec::is_empty) {
        return Err(Error::WrongState(format!(
            "task {:?} selects no source now: no SOURCE connector matches its `backup.sources`",
            plan.display_name
        )));
    }
    let mut tx = state.pool.begin().await?;
    // The first job answers the call; a unique request id that was used before aborts the
    // whole run and the first job is returned instead.
    let id = match create_run(&mut tx, &plan, &spec, now).await {
        Ok(id) => id,
        Err(Error::Db(e)) if db::classify(&e) == DbErrorKind::UniqueViolation && rid.is_some() => {
            drop(tx);
            let mut conn = state.pool.acquire().await?;
            let row = rows::by_request_id(&mut conn, &project, rid.unwrap_or_default()).await?;
            return row
                .as_ref()
                .map(crate::convert::job)
                .transpose()?
                .ok_or_else(|| Error::Internal("request id vanished".into()));
        }
        Err(e) => return Err(e),
    };
    let id = id.ok_or_else(|| Error::Internal("manual job not created".into()))?;
    let row = rows::get(&mut tx, Some(&project), id).await?;
    tx.commit().await?;
    state.events.wake_work();
    let job = crate::convert::job(&row.ok_or_else(|| Error::Internal("job vanished".into()))?)?;
    tracing::info!(parent: &span, job.id = %job.name, job.state = ?job.state(), "task run requested");
    Ok(job)
}

/// Makes sure the scheduler knows the limits of a plan's stores.
pub async fn upsert_stores(state: &State, plan: &TaskPlan) -> Result<()> {
    if plan.stores.is_empty() {
        return Ok(());
    }
    let changed: Vec<rows::StoreRow> = {
        let seen = state.stores_seen.lock().map_err(|_| Error::Internal("poisoned".into()))?;
        plan.stores
            .iter()
            .map(|s| rows::StoreRow {
                project_id: plan.project.clone(),
                id: s.id,
                display_name: s.display_name.clone(),
                max_concurrent_jobs: s.max_concurrent_jobs,
                create_if_missing: s.create_if_missing,
            })
            .filter(|s| seen.get(&s.id) != Some(s))
            .collect()
    };
    if changed.is_empty() {
        return Ok(());
    }
    let mut conn = state.pool.acquire().await?;
    rows::upsert_stores(&mut conn, &changed).await?;
    let mut seen = state.stores_seen.lock().map_err(|_| Error::Internal("poisoned".into()))?;
    for s in changed {
        seen.insert(s.id, s);
    }
    Ok(())
}

/// A job by name (`projects/-/jobs/{id}` allowed), or NOT_FOUND.
async fn find(conn: &mut PgConnection, caller: &Caller, raw: &str) -> Result<rows::Row> {
    let (project, id) = resolve::job(caller, "name", raw, true)?;
    let missing = || Error::NotFound(format!("job {:?}", raw.trim()));
    let row = rows::get(conn, project.as_ref(), id).await?.ok_or_else(missing)?;
    // `projects/-/jobs/{id}`: a job of a project the caller cannot see is not there for it.
    if project.is_none() && !caller.sees(&row.project_id) {
        return Err(missing());
    }
    Ok(row)
}

/// GetJob.
pub async fn get(state: &State, caller: &Caller, req: GetJobRequest) -> Result<Job> {
    let mut conn = state.pool.acquire().await?;
    let row = find(&mut conn, caller, &req.name).await?;
    let id = row.id;
    let mut job = crate::convert::job(&row)?;
    if req.view == JobView::Full as i32 {
        let mut after = 0;
        loop {
            let page = logs::after(&mut conn, id, after, 5000).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            job.log.extend(page.iter().map(crate::convert::line));
        }
    }
    Ok(job)
}

/// ListJobLogs.
pub async fn list_logs(
    state: &State,
    caller: &Caller,
    req: ListJobLogsRequest,
) -> Result<ListJobLogsResponse> {
    let size = match req.page_size {
        0 => 1000,
        n @ 1..=5000 => i64::from(n),
        n => return Err(Error::invalid("page_size", format!("{n} is out of range 1..=5000"))),
    };
    if req.after_seq < 0 {
        return Err(Error::invalid("after_seq", "must not be negative"));
    }
    let mut conn = state.pool.acquire().await?;
    let row = find(&mut conn, caller, &req.name).await?;
    let page = logs::after(&mut conn, row.id, req.after_seq, size).await?;
    Ok(ListJobLogsResponse {
        last_seq: page.last().map(|l| l.seq).unwrap_or(req.after_seq),
        lines: page.iter().map(crate::convert::line).collect(),
        done: is_final(row.state),
    })
}

/// ListJobs.
pub async fn list(state: &State, caller: &Caller, req: ListJobsRequest) -> Result<ListJobsResponse> {
    let size = pagination::page_size(req.page_size)?;
    let mut v = cairn_runtime::status::Violations::default();
    let mut states = Vec::new();
    for (i, s) in req.states.iter().enumerate() {
        match JobState::try_from(*s) {
            Ok(JobState::Unspecified) | Err(_) => {
                v.add(format!("states[{i}]"), format!("{s} is not a job state"))
            }
            Ok(st) => states.push(st),
        }
    }
    let mut triggers = Vec::new();
    for (i, t) in req.triggers.iter().enumerate() {
        match JobTrigger::try_from(*t) {
            Ok(JobTrigger::Unspecified) | Err(_) => {
                v.add(format!("triggers[{i}]"), format!("{t} is not a trigger"))
            }
            Ok(tr) => triggers.push(tr),
        }
    }
    let r#type = match TaskType::try_from(req.r#type) {
        Ok(TaskType::Unspecified) => None,
        Ok(t) => Some(t),
        Err(_) => {
            v.add("type", format!("{} is not a job type", req.r#type));
            None
        }
    };
    let ts = |t: &Option<prost_types::Timestamp>, field: &str, v: &mut cairn_runtime::status::Violations| {
        match t {
            None => None,
            Some(t) => from_timestamp(t).or_else(|| {
                v.add(field, "is not a valid timestamp");
                None
            }),
        }
    };
    let from = ts(&req.create_time_from, "create_time_from", &mut v);
    let to = ts(&req.create_time_to, "create_time_to", &mut v);
    let run_id = match req.run.trim() {
        "" => None,
        raw => raw.parse::<Uuid>().map(Some).unwrap_or_else(|_| {
            v.add("run", format!("{raw:?} is not a run id (a UUID, Job.run)"));
            None
        }),
    };
    let (project, scope) = resolve::list_parent(caller, &req.parent)?;
    v.check()?;
    let schedule_id = resolve::schedule_id(state, "schedule", project.as_ref(), &req.schedule).await?;
    let filter = rows::Filter {
        task_id: resolve::task_id(state, "task", project.as_ref(), &req.task).await?,
        schedule_id,
        connector_id: resolve::connector_id(state, "connector", project.as_ref(), &req.connector).await?,
        states,
        triggers,
        r#type,
        from,
        to,
        run_id,
    };
    let resolve::ListQuery { aip, order, resolved } = resolve::list_query(
        state,
        project.as_ref(),
        (&req.filter, rows::FILTER_FIELDS),
        (&req.order_by, rows::ORDER_FIELDS, pagination::OrderBy { field: "create_time", desc: true }),
    )
    .await?;
    let fp = pagination::fingerprint(&(&filter, &scope, req.filter.trim(), order));
    let after: Option<rows::Cursor> = pagination::decode(&req.page_token, fp)?;
    let mut conn = state.pool.acquire().await?;
    let query = rows::Query {
        project: scope.as_deref(),
        filter: &filter,
        aip: &aip,
        resolved: &resolved,
        order,
        after: after.as_ref(),
        limit: size + 1,
    };
    let mut page = rows::list(&mut conn, &query).await?;
    let next = pagination::next_page(&mut page, size, fp, |r| rows::Cursor::of(r, order));
    Ok(ListJobsResponse {
        jobs: page.iter().map(crate::convert::job).collect::<Result<_>>()?,
        next_page_token: next,
    })
}

/// CancelJob.
pub async fn cancel(state: &State, caller: &Caller, req: CancelJobRequest) -> Result<Job> {
    let (project, id) = resolve::job(caller, "name", &req.name, false)?;
    let project = project.ok_or_else(|| Error::Internal("wildcard job name accepted".into()))?;
    if req.reason.chars().count() > 1024 {
        return Err(Error::invalid("reason", "is longer than 1024 characters"));
    }
    let reason =
        if req.reason.trim().is_empty() { "cancelled by request".to_owned() } else { req.reason.clone() };
    let now = state.clock.now();
    let mut tx = state.pool.begin().await?;
    let once = idempotency::claim(&mut tx, caller, &req.request_id, &req.name).await?;
    if let Claim::Done(answer) = once {
        return Ok(answer);
    }
    let before = cancel_in_tx(&mut tx, &project, id, &reason, now).await?;
    if !matches!(before, JobState::Queued | JobState::Running | JobState::Cancelled) {
        return Err(Error::WrongState(format!(
            "{} already ended ({}); only queued or running jobs can be cancelled",
            Kind::Job.name(&project, id),
            before.stored()
        )));
    }
    let row = rows::get(&mut tx, Some(&project), id)
        .await?
        .ok_or_else(|| Error::NotFound(Kind::Job.name(&project, id)))?;
    let answer = crate::convert::job(&row)?;
    idempotency::record(&mut tx, &once, &answer).await?;
    tx.commit().await?;
    tracing::info!(job.id = %id, was = before.stored(), "job cancel requested");
    Ok(answer)
}

/// WatchJob: the current job and log, then every change until the job ends.
pub async fn watch(
    state: &State,
    caller: &Caller,
    req: WatchJobRequest,
) -> Result<Pin<Box<dyn Stream<Item = Result<WatchJobEvent, Status>> + Send>>> {
    if req.from_seq < -1 {
        return Err(Error::invalid("from_seq", "must be -1, 0 or a sequence number"));
    }
    let mut conn = state.pool.acquire().await?;
    let found = find(&mut conn, caller, &req.name).await?;
    let (id, project) = (found.id, found.project_id.clone());
    // Watch before the read the stream starts from, so no change between them is lost.
    let mut changes = state.events.watch_job(id);
    let first = rows::get(&mut conn, Some(&project), id).await?.unwrap_or(found);
    drop(conn);
    let (tx, out) = mpsc::channel::<Result<WatchJobEvent, Status>>(64);
    let state = state.clone();
    let from_seq = req.from_seq;
    tokio::spawn(async move {
        let send_job = |job: Job| WatchJobEvent { event: Some(Event::Job(job)) };
        let mut last_seq = if from_seq == -1 { first.log_seq } else { from_seq };
        let mut last_sent: Vec<u8> = Vec::new();
        let mut row = first;
        loop {
            let job = match crate::convert::job(&row) {
                Ok(j) => j,
                Err(e) => {
                    let _ = tx.send(Err(e.into())).await;
                    return;
                }
            };
            let bytes = job.encode_to_vec();
            if bytes != last_sent {
                last_sent = bytes;
                if tx.send(Ok(send_job(job))).await.is_err() {
                    return;
                }
            }
            // Log lines after the job state, so a final state is followed by every line.
            if row.log_seq > last_seq {
                loop {
                    let Ok(mut conn) = state.pool.acquire().await else { break };
                    let Ok(page) = logs::after(&mut conn, id, last_seq, 1000).await else { break };
                    let Some(last) = page.last() else { break };
                    last_seq = last.seq;
                    for l in &page {
                        let ev = WatchJobEvent { event: Some(Event::LogLine(crate::convert::line(l))) };
                        if tx.send(Ok(ev)).await.is_err() {
                            return;
                        }
                    }
                }
            }
            if is_final(row.state) {
                return;
            }
            // Woken by this job's notifications, or by the shared re-check (events::RECHECK).
            tokio::select! {
                _ = tx.closed() => return,
                _ = state.shutdown.cancelled() => return,
                _ = changes.changed() => {}
            }
            let Ok(mut conn) = state.pool.acquire().await else { continue };
            match rows::get(&mut conn, Some(&project), id).await {
                Ok(Some(r)) => row = r,
                Ok(None) => return,
                Err(_) => continue,
            }
        }
    });
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(out)))
}
