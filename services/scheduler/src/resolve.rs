//! Names in requests → (project, id), always within one project: parents, job and schedule
//! names, and the task / connector / schedule references of list filters (resolved through
//! the catalog within the parent). A reference to another project's resource answers exactly
//! like a missing one.

use std::sync::Arc;

use cairn_api::{
    ids::{ConnectorId, JobId, ScheduleId, TaskId},
    names::{self, Kind, NameError, ProjectId, Reference},
};

use cairn_runtime::auth::Caller;

use crate::{
    State,
    catalog::TaskPlan,
    error::{Error, Result},
    store::schedules as schedule_rows,
};

fn invalid(field: &str, e: NameError) -> Error {
    Error::invalid(field, e.to_string())
}

/// A `parent` naming one project the caller may act in.
pub fn parent(caller: &Caller, raw: &str) -> Result<ProjectId> {
    let p = names::parse_project(raw).map_err(|e| invalid("parent", e))?;
    caller.require(&p)?;
    Ok(p)
}

/// A list `parent`: one project (`Some`), or `None` for `projects/-`; with the projects the
/// list may show (`None` = all).
pub fn list_parent(caller: &Caller, raw: &str) -> Result<(Option<ProjectId>, Option<Vec<ProjectId>>)> {
    match names::parse_parent(raw, true).map_err(|e| invalid("parent", e))? {
        Some(p) => {
            caller.require(&p)?;
            Ok((Some(p.clone()), Some(vec![p])))
        }
        None => Ok((None, caller.visible())),
    }
}

/// A job name (`projects/{p}/jobs/{id}`); `allow_any` accepts `projects/-/jobs/{id}` (the
/// caller then checks the project of the job found).
pub fn job(caller: &Caller, field: &str, raw: &str, allow_any: bool) -> Result<(Option<ProjectId>, JobId)> {
    let (p, id) = names::parse_id_name(Kind::Job, raw, allow_any).map_err(|e| invalid(field, e))?;
    if let Some(p) = &p {
        caller.require(p)?;
    }
    Ok((p, JobId::from_uuid(id)))
}

/// A full name of one project (`projects/{p}/schedules/{id or display name}`) the caller may
/// act in.
pub fn full(caller: &Caller, kind: Kind, field: &str, raw: &str) -> Result<(ProjectId, Reference)> {
    let (p, r) = names::parse_one(kind, raw).map_err(|e| invalid(field, e))?;
    caller.require(&p)?;
    Ok((p, r))
}

/// A reference inside a request about `parent`; `None` when it names another project (the
/// caller answers like a missing resource).
pub fn within(
    kind: Kind,
    field: &str,
    parent: Option<&ProjectId>,
    raw: &str,
) -> Result<Option<(ProjectId, Reference)>> {
    names::parse_within(kind, parent, raw).map_err(|e| invalid(field, e))
}

/// A snapshot id in a request: 8 to 64 hex digits (a unique prefix), lower-cased.
pub fn snapshot_id(field: &str, raw: &str) -> Result<String> {
    let id = raw.trim();
    if id.is_empty() {
        return Err(Error::invalid(field, "is required"));
    }
    if !(8..=64).contains(&id.len()) || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Error::invalid(field, format!("{id:?} is not a snapshot id (8 to 64 hex digits)")));
    }
    Ok(id.to_ascii_lowercase())
}

pub fn missing(what: &str, raw: &str) -> String {
    format!("{what} {:?} does not exist", raw.trim())
}

/// The plan of a task named within `parent` (RunTask, CreateSchedule); INVALID_ARGUMENT on
/// `field` when there is no such task in that project.
pub async fn task_plan(state: &State, field: &str, parent: &ProjectId, raw: &str) -> Result<Arc<TaskPlan>> {
    if raw.trim().is_empty() {
        return Err(Error::invalid(field, "is required"));
    }
    let Some((project, r)) = within(Kind::Task, field, Some(parent), raw)? else {
        return Err(Error::invalid(field, missing("task", raw)));
    };
    state.catalog.plan_fresh(&project, &r).await?.ok_or_else(|| Error::invalid(field, missing("task", raw)))
}

/// A task filter (deleted tasks by id).
pub async fn task_id(
    state: &State,
    field: &str,
    parent: Option<&ProjectId>,
    raw: &str,
) -> Result<Option<TaskId>> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    match within(Kind::Task, field, parent, raw)? {
        None => Err(Error::invalid(field, missing("task", raw))),
        Some((_, Reference::Id(id))) => Ok(Some(TaskId::from_uuid(id))),
        Some((project, r)) => match state.catalog.plan_fresh(&project, &r).await? {
            Some(p) => Ok(Some(p.id)),
            None => Err(Error::invalid(field, missing("task", raw))),
        },
    }
}

/// A connector filter (deleted connectors by id).
pub async fn connector_id(
    state: &State,
    field: &str,
    parent: Option<&ProjectId>,
    raw: &str,
) -> Result<Option<ConnectorId>> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    match within(Kind::Connector, field, parent, raw)? {
        None => Err(Error::invalid(field, missing("connector", raw))),
        Some((_, Reference::Id(id))) => Ok(Some(ConnectorId::from_uuid(id))),
        Some((project, r)) => match state.catalog.connector(&project, &r, false).await? {
            Some(c) => Ok(c
                .connector
                .and_then(|c| names::parse_canonical(Kind::Connector, &c.name).ok())
                .map(|(_, id)| ConnectorId::from_uuid(id))),
            None => Err(Error::invalid(field, missing("connector", raw))),
        },
    }
}

/// A schedule filter (deleted schedules by id).
pub async fn schedule_id(
    state: &State,
    field: &str,
    parent: Option<&ProjectId>,
    raw: &str,
) -> Result<Option<ScheduleId>> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    match within(Kind::Schedule, field, parent, raw)? {
        None => Err(Error::NotFound(format!("schedule {:?}", raw.trim()))),
        Some((_, Reference::Id(id))) => Ok(Some(ScheduleId::from_uuid(id))),
        Some((project, r)) => {
            let mut conn = state.pool.acquire().await?;
            schedule_rows::find(&mut conn, &project, &r)
                .await?
                .map(|row| Some(row.id))
                .ok_or_else(|| Error::NotFound(format!("schedule {:?}", raw.trim())))
        }
    }
}

/// A List request's AIP-160 `filter` and `order_by`, checked against the list's fields
/// (INVALID_ARGUMENT naming `filter` or `order_by`), with the references the filter names
/// resolved within the parent.
pub struct ListQuery {
    pub aip: cairn_runtime::filter::Filter,
    pub order: cairn_runtime::pagination::OrderBy,
    pub resolved: std::collections::HashMap<(&'static str, String), uuid::Uuid>,
}

/// Builds the [`ListQuery`] of a List request.
pub async fn list_query(
    state: &State,
    parent: Option<&ProjectId>,
    (filter, fields): (&str, &'static [cairn_runtime::filter::Field]),
    (order_by, orders, default): (&str, &[&'static str], cairn_runtime::pagination::OrderBy),
) -> Result<ListQuery> {
    let aip = cairn_runtime::filter::Filter::parse(filter, fields)
        .map_err(|e| Error::invalid("filter", e.to_string()))?;
    let order = cairn_runtime::pagination::order_by(order_by, orders, default)?;
    let resolved = references(state, parent, &aip).await?;
    Ok(ListQuery { aip, order, resolved })
}

/// The resource references of a list `filter` (`task = nightly`), resolved within `parent`
/// like the list's own reference fields; INVALID_ARGUMENT on `filter` names one that does not
/// exist.
pub async fn references(
    state: &State,
    parent: Option<&ProjectId>,
    filter: &cairn_runtime::filter::Filter,
) -> Result<std::collections::HashMap<(&'static str, String), uuid::Uuid>> {
    let mut out = std::collections::HashMap::new();
    for (field, raw) in filter.references() {
        let id = match field {
            "task" => task_id(state, "filter", parent, &raw).await?.map(TaskId::uuid),
            "schedule" => schedule_id(state, "filter", parent, &raw)
                .await
                .map_err(|e| match e {
                    Error::NotFound(_) => Error::invalid("filter", missing("schedule", &raw)),
                    e => e,
                })?
                .map(ScheduleId::uuid),
            "source" | "store" | "connector" => {
                connector_id(state, "filter", parent, &raw).await?.map(ConnectorId::uuid)
            }
            other => return Err(Error::Internal(format!("filter field {other} has no resolver"))),
        };
        if let Some(id) = id {
            out.insert((field, raw), id);
        }
    }
    Ok(out)
}
