//! Schedule operations: create, read, list, update, delete, pause, resume, and
//! PreviewSchedule. Every schedule always carries its next occurrence, so firing is one
//! indexed query.

use cairn_api::{
    ids::ScheduleId,
    names::{self, Kind, Reference},
    v1::{
        CreateScheduleRequest, DeleteScheduleRequest, ListSchedulesRequest, ListSchedulesResponse,
        PauseScheduleRequest, PreviewScheduleRequest, PreviewScheduleResponse, ResumeScheduleRequest,
        Schedule, UpdateScheduleRequest,
    },
};
use cairn_runtime::{
    db::{self, DbErrorKind},
    idempotency::{self, Claim},
    pagination,
    status::Violations,
    time::{from_duration, from_timestamp, opt_timestamp, to_timestamp},
};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use cairn_runtime::auth::Caller;

use crate::{
    State,
    domain::recurrence,
    error::{Error, Result},
    events, resolve,
    store::{self, schedules as rows},
};

/// Longest jitter.
const MAX_JITTER: std::time::Duration = std::time::Duration::from_secs(86_400);

/// Fields UpdateSchedule may change.
const UPDATABLE: &[&str] =
    &["display_name", "description", "recurrence", "start_time", "time_zone", "journalised", "jitter"];

/// The schedule maths of a stored or requested schedule.
pub fn maths(spec: &Schedule, anchor: DateTime<Utc>, prefix: &str) -> Result<cairn_schedule::Schedule> {
    let rec = recurrence::parse(spec.recurrence.as_ref(), &format!("{prefix}recurrence"))?;
    let tz = recurrence::zone(&spec.time_zone, &format!("{prefix}time_zone"))?;
    cairn_schedule::Schedule::new(rec, tz, Some(anchor))
        .map_err(|e| Error::invalid(format!("{prefix}recurrence"), e.to_string()))
}

/// The jitter of a schedule message.
pub fn jitter(spec: &Schedule) -> std::time::Duration {
    spec.jitter.as_ref().and_then(from_duration).unwrap_or_default()
}

/// The inputs of a schedule as stored (outputs cleared).
fn inputs(s: &Schedule) -> Schedule {
    Schedule {
        name: String::new(),
        display_name: s.display_name.clone(),
        description: s.description.clone(),
        task: String::new(),
        recurrence: s.recurrence.clone(),
        start_time: s.start_time,
        time_zone: s.time_zone.clone(),
        journalised: s.journalised,
        enabled: None,
        jitter: s.jitter,
        ..Default::default()
    }
}

/// Checks the non-task inputs of a schedule (no I/O); returns the maths and the anchor.
pub fn validate(
    s: &Schedule,
    anchor_default: DateTime<Utc>,
) -> Result<(cairn_schedule::Schedule, DateTime<Utc>)> {
    let mut v = Violations::default();
    if let Err(e) = names::check_display_name(&s.display_name) {
        v.add("schedule.display_name", e);
    }
    if let Err(e) = names::check_description(&s.description) {
        v.add("schedule.description", e);
    }
    let start = match &s.start_time {
        None => None,
        Some(t) => match from_timestamp(t) {
            Some(t) => Some(t),
            None => {
                v.add("schedule.start_time", "is not a valid timestamp");
                None
            }
        },
    };
    if let Some(j) = &s.jitter {
        match from_duration(j) {
            Some(d) if d <= MAX_JITTER => {}
            _ => v.add("schedule.jitter", "must be between 0 and 24h"),
        }
    }
    let anchor = start.unwrap_or(anchor_default);
    let maths = match maths(s, anchor, "schedule.") {
        Ok(m) => Some(m),
        Err(Error::Invalid(inner)) => {
            for (f, d) in inner.items() {
                v.add(f.clone(), d.clone());
            }
            None
        }
        Err(e) => return Err(e),
    };
    v.check()?;
    Ok((maths.expect("checked"), anchor))
}

/// The next occurrence from `now` on (never before the start time) and its due time.
fn next_from(
    id: ScheduleId,
    s: &cairn_schedule::Schedule,
    start: DateTime<Utc>,
    now: DateTime<Utc>,
    jitter: std::time::Duration,
) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let next = recurrence::first_at_or_after(s, start.max(now));
    (next, next.map(|n| recurrence::due_time(id, n, jitter)))
}

fn taken(name: &str) -> Error {
    Error::AlreadyExists(format!("schedule.display_name: a schedule named {name:?} already exists"))
}

/// CreateSchedule.
pub async fn create(state: &State, caller: &Caller, req: CreateScheduleRequest) -> Result<Schedule> {
    let rid = match req.request_id.as_str() {
        "" => None,
        raw => Some(
            Uuid::parse_str(raw)
                .map_err(|_| Error::invalid("request_id", format!("{raw:?} is not a UUID")))?,
        ),
    };
    let project = resolve::parent(caller, &req.parent)?;
    caller.request_id(&req.request_id);
    let s = req.schedule.ok_or_else(|| Error::invalid("schedule", "is required"))?;
    if let Some(rid) = rid {
        let mut conn = state.pool.acquire().await?;
        if let Some(row) = rows::by_request_id(&mut conn, &project, rid).await? {
            return crate::convert::schedule(&row);
        }
    }
    let now = state.clock.now();
    let (maths, anchor) = validate(&s, now)?;
    let plan = resolve::task_plan(state, "schedule.task", &project, &s.task).await?;
    let id = ScheduleId::new();
    let enabled = s.enabled.unwrap_or(true);
    let (next_fire, next_run_time) = next_from(id, &maths, anchor, now, jitter(&s));
    let stored = inputs(&s);
    if req.validate_only {
        let mut out = stored;
        out.name = ScheduleId::default().name(&project);
        out.task = Kind::Task.name(&project, plan.id);
        out.enabled = Some(enabled);
        out.next_run_time = if enabled { opt_timestamp(next_run_time) } else { None };
        return Ok(out);
    }
    let w = rows::Write {
        project_id: &project,
        id,
        display_name: &s.display_name,
        task_id: plan.id,
        spec: store::encode(&stored)?,
        enabled,
        journalised: s.journalised,
        anchor,
        next_fire,
        next_run_time,
        connector_ids: &plan.connector_ids,
        now,
    };
    let mut tx = state.pool.begin().await?;
    match rows::insert(&mut tx, &w, rid).await {
        Ok(()) => {}
        Err(Error::Db(e)) if db::classify(&e) == DbErrorKind::UniqueViolation => {
            if db::constraint(&e).as_deref() == Some("schedules_request_id_key") {
                drop(tx);
                let mut conn = state.pool.acquire().await?;
                let row = rows::by_request_id(&mut conn, &project, rid.unwrap_or_default()).await?;
                return row
                    .as_ref()
                    .map(crate::convert::schedule)
                    .transpose()?
                    .ok_or_else(|| Error::Internal("vanished".into()));
            }
            return Err(taken(&s.display_name));
        }
        Err(e) => return Err(e),
    }
    events::notify(&mut tx, events::SCHEDULES, "").await?;
    let row = rows::find(&mut tx, &project, &Reference::Id(id.uuid()))
        .await?
        .ok_or_else(|| Error::Internal("vanished".into()))?;
    tx.commit().await?;
    tracing::info!(schedule.id = %id, task.id = %plan.id, next = ?next_run_time, "schedule created");
    crate::convert::schedule(&row)
}

async fn find(conn: &mut sqlx::PgConnection, caller: &Caller, field: &str, raw: &str) -> Result<rows::Row> {
    let (project, r) = resolve::full(caller, Kind::Schedule, field, raw)?;
    caller.resource(raw.trim().to_owned());
    rows::find(conn, &project, &r).await?.ok_or_else(|| Error::NotFound(format!("schedule {:?}", raw.trim())))
}

async fn reread(conn: &mut sqlx::PgConnection, row: &rows::Row) -> Result<rows::Row> {
    rows::find(conn, &row.project_id, &Reference::Id(row.id.uuid()))
        .await?
        .ok_or_else(|| Error::Internal("vanished".into()))
}

/// GetSchedule.
pub async fn get(state: &State, caller: &Caller, name: &str) -> Result<Schedule> {
    let mut conn = state.pool.acquire().await?;
    crate::convert::schedule(&find(&mut conn, caller, "name", name).await?)
}

/// ListSchedules.
pub async fn list(
    state: &State,
    caller: &Caller,
    req: ListSchedulesRequest,
) -> Result<ListSchedulesResponse> {
    let size = pagination::page_size(req.page_size)?;
    let (project, scope) = resolve::list_parent(caller, &req.parent)?;
    let filter = rows::Filter {
        task_id: resolve::task_id(state, "task", project.as_ref(), &req.task).await?,
        connector_id: resolve::connector_id(state, "connector", project.as_ref(), &req.connector).await?,
        enabled: req.enabled,
    };
    let resolve::ListQuery { aip, order, resolved } = resolve::list_query(
        state,
        project.as_ref(),
        (&req.filter, rows::FILTER_FIELDS),
        (&req.order_by, rows::ORDER_FIELDS, pagination::OrderBy { field: "create_time", desc: false }),
    )
    .await?;
    let fp = pagination::fingerprint(&(&filter, &scope, req.filter.trim(), order));
    let after: Option<rows::Cursor> = pagination::decode(&req.page_token, fp)?;
    let query = rows::Query {
        project: scope.as_deref(),
        filter: &filter,
        aip: &aip,
        resolved: &resolved,
        order,
        after: after.as_ref(),
        limit: size + 1,
    };
    let mut conn = state.pool.acquire().await?;
    let mut page = rows::list(&mut conn, &query).await?;
    let total = rows::count(&mut conn, &query).await?;
    let next = pagination::next_page(&mut page, size, fp, |r| rows::Cursor::of(r, order));
    Ok(ListSchedulesResponse {
        schedules: page.iter().map(crate::convert::schedule).collect::<Result<_>>()?,
        next_page_token: next,
        total_size: i32::try_from(total).unwrap_or(i32::MAX),
    })
}

/// UpdateSchedule: inputs change; the next run is recomputed from now.
pub async fn update(state: &State, caller: &Caller, req: UpdateScheduleRequest) -> Result<Schedule> {
    let patch = req.schedule.ok_or_else(|| Error::invalid("schedule", "is required"))?;
    let paths = req.update_mask.map(|m| m.paths).unwrap_or_default();
    // Authorise before judging the request: a caller without the role learns nothing more.
    resolve::full(caller, Kind::Schedule, "schedule.name", &patch.name)?;
    if paths.is_empty() {
        return Err(Error::invalid(
            "update_mask",
            "is required: name the fields to change (e.g. recurrence)",
        ));
    }
    for p in &paths {
        let top = p.split('.').next().unwrap_or_default();
        if !UPDATABLE.contains(&top) {
            let why = match top {
                "task" => "the task of a schedule cannot change; create another schedule".to_owned(),
                "enabled" => "use PauseSchedule / ResumeSchedule".to_owned(),
                _ => format!("{p:?} cannot be updated"),
            };
            return Err(Error::invalid("update_mask", why));
        }
    }
    let now = state.clock.now();
    let mut tx = state.pool.begin().await?;
    let once = idempotency::claim(&mut tx, caller, &req.request_id, &patch.name).await?;
    if let Claim::Done(answer) = once {
        return Ok(answer);
    }
    let row = find(&mut tx, caller, "schedule.name", &patch.name).await?;
    rows::lock(&mut tx, row.id).await?;
    store::check_etag(&patch.etag, row.version, &Kind::Schedule.name(&row.project_id, row.id))?;
    let mut merged: Schedule = store::decode(&row.spec)?;
    for p in &paths {
        match p.split('.').next().unwrap_or_default() {
            "display_name" => merged.display_name = patch.display_name.clone(),
            "description" => merged.description = patch.description.clone(),
            "recurrence" => merged.recurrence = patch.recurrence.clone(),
            "start_time" => merged.start_time = patch.start_time,
            "time_zone" => merged.time_zone = patch.time_zone.clone(),
            "journalised" => merged.journalised = patch.journalised,
            "jitter" => merged.jitter = patch.jitter,
            _ => {}
        }
    }
    let timing_changed =
        paths.iter().any(|p| !matches!(p.as_str(), "display_name" | "description" | "journalised"));
    let anchor_default = if paths.iter().any(|p| p == "start_time") { now } else { row.anchor };
    let (maths, anchor) = validate(&merged, anchor_default)?;
    let (next_fire, next_run_time) = if timing_changed {
        next_from(row.id, &maths, anchor, now, jitter(&merged))
    } else {
        (row.next_fire, row.next_run_time)
    };
    let stored = inputs(&merged);
    let w = rows::Write {
        project_id: &row.project_id,
        id: row.id,
        display_name: &merged.display_name,
        task_id: row.task_id,
        spec: store::encode(&stored)?,
        enabled: row.enabled,
        journalised: merged.journalised,
        anchor,
        next_fire,
        next_run_time,
        connector_ids: &row.connector_ids,
        now,
    };
    match rows::update(&mut tx, &w).await {
        Err(Error::Db(e)) if db::classify(&e) == DbErrorKind::UniqueViolation => {
            return Err(taken(&merged.display_name));
        }
        other => other?,
    }
    let row = reread(&mut tx, &row).await?;
    let answer = crate::convert::schedule(&row)?;
    if req.validate_only {
        return Ok(answer); // the transaction rolls back
    }
    events::notify(&mut tx, events::SCHEDULES, "").await?;
    idempotency::record(&mut tx, &once, &answer).await?;
    tx.commit().await?;
    Ok(answer)
}

/// DeleteSchedule.
pub async fn delete(state: &State, caller: &Caller, req: DeleteScheduleRequest) -> Result<()> {
    let mut tx = state.pool.begin().await?;
    let once = idempotency::claim(&mut tx, caller, &req.request_id, &req.name).await?;
    if let Claim::Done(()) = once {
        return Ok(());
    }
    let row = find(&mut tx, caller, "name", &req.name).await?;
    rows::lock(&mut tx, row.id).await?;
    store::check_etag(&req.etag, row.version, &Kind::Schedule.name(&row.project_id, row.id))?;
    rows::delete(&mut tx, &row.project_id, row.id).await?;
    idempotency::record(&mut tx, &once, &()).await?;
    tx.commit().await?;
    tracing::info!(schedule.id = %row.id, "schedule deleted");
    Ok(())
}

/// PauseSchedule.
pub async fn pause(state: &State, caller: &Caller, req: PauseScheduleRequest) -> Result<Schedule> {
    set_enabled(state, caller, &req.name, &req.request_id, false).await
}

/// ResumeSchedule: from the next future occurrence; missed ones are not run.
pub async fn resume(state: &State, caller: &Caller, req: ResumeScheduleRequest) -> Result<Schedule> {
    set_enabled(state, caller, &req.name, &req.request_id, true).await
}

async fn set_enabled(
    state: &State,
    caller: &Caller,
    name: &str,
    request_id: &str,
    enabled: bool,
) -> Result<Schedule> {
    let now = state.clock.now();
    let mut tx = state.pool.begin().await?;
    let once = idempotency::claim(&mut tx, caller, request_id, name).await?;
    if let Claim::Done(answer) = once {
        return Ok(answer);
    }
    let row = find(&mut tx, caller, "name", name).await?;
    rows::lock(&mut tx, row.id).await?;
    if row.enabled != enabled {
        let spec: Schedule = store::decode(&row.spec)?;
        let (next_fire, next_run_time) = if enabled {
            let m = maths(&spec, row.anchor, "")?;
            let start = spec.start_time.as_ref().and_then(from_timestamp).unwrap_or(row.anchor);
            next_from(row.id, &m, start, now, jitter(&spec))
        } else {
            (row.next_fire, row.next_run_time)
        };
        rows::set_enabled(&mut tx, row.id, enabled, next_fire, next_run_time, now).await?;
        events::notify(&mut tx, events::SCHEDULES, "").await?;
        tracing::info!(schedule.id = %row.id, enabled, "schedule {}", if enabled { "resumed" } else { "paused" });
    }
    let row = reread(&mut tx, &row).await?;
    let answer = crate::convert::schedule(&row)?;
    idempotency::record(&mut tx, &once, &answer).await?;
    tx.commit().await?;
    Ok(answer)
}

/// PreviewSchedule: fire times of any recurrence, nothing saved.
pub fn preview(now: DateTime<Utc>, req: &PreviewScheduleRequest) -> Result<PreviewScheduleResponse> {
    let mut v = Violations::default();
    let count = match req.count {
        0 => 10,
        n @ 1..=1000 => n as usize,
        n => {
            v.add("count", format!("{n} is out of range 1..=1000 (0 = 10)"));
            0
        }
    };
    let ts = |t: &Option<prost_types::Timestamp>, field: &str, v: &mut Violations| match t {
        None => None,
        Some(t) => from_timestamp(t).or_else(|| {
            v.add(field, "is not a valid timestamp");
            None
        }),
    };
    let after = ts(&req.after, "after", &mut v).unwrap_or(now);
    let anchor = ts(&req.start_time, "start_time", &mut v).unwrap_or(after);
    let rec = recurrence::parse(req.recurrence.as_ref(), "recurrence");
    let tz = recurrence::zone(&req.time_zone, "time_zone");
    for r in [rec.as_ref().err(), tz.as_ref().err()].into_iter().flatten() {
        if let Error::Invalid(inner) = r {
            for (f, d) in inner.items() {
                v.add(f.clone(), d.clone());
            }
        }
    }
    v.check()?;
    let (rec, tz) = (rec?, tz?);
    let normalized = recurrence::normalized(&rec);
    let s = cairn_schedule::Schedule::new(rec, tz, Some(anchor))
        .map_err(|e| Error::invalid("recurrence", e.to_string()))?;
    Ok(PreviewScheduleResponse {
        fire_times: s.iter_after(after).take(count).map(to_timestamp).collect(),
        normalized,
    })
}
