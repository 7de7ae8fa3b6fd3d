//! Project operations: create, read, list, update, delete, and the parent checks every
//! other operation starts with. A project that does not exist answers like any missing
//! resource (NOT_FOUND), so a name never tells whether another project's resource exists.

use std::collections::HashMap;

use cairn_api::{
    names::{self, NameError, ProjectId},
    v1::{
        CreateProjectRequest, DeleteProjectRequest, ListProjectsRequest, ListProjectsResponse, Project,
        UpdateProjectRequest,
    },
};
use cairn_runtime::{
    auth::Caller,
    db::{self, DbErrorKind},
    idempotency::{self, Claim},
    pagination,
    status::Violations,
    time::to_timestamp,
};

use crate::{
    State,
    connectors::request_id,
    domain::mask,
    error::{Error, Result},
    store::{self, projects as rows},
};

/// Fields UpdateProject may change.
const UPDATABLE: &[&str] = &["display_name", "description", "labels"];

/// Most resources a refusal of DeleteProject names.
const HELD_NAMED: i64 = 20;

/// A name error on a field.
pub fn invalid(field: &str, e: NameError) -> Error {
    let mut v = Violations::default();
    v.add(field, e.to_string());
    Error::Invalid(v)
}

/// Reads a `parent` that must name one existing project.
pub async fn parent(conn: &mut sqlx::PgConnection, caller: &Caller, raw: &str) -> Result<ProjectId> {
    let p = names::parse_project(raw).map_err(|e| invalid("parent", e))?;
    caller.require(&p)?;
    existing(conn, p).await
}

/// Reads a list `parent`: one existing project, or `None` for `projects/-`, with the projects
/// the list may show (`None` = all).
pub async fn list_parent(
    conn: &mut sqlx::PgConnection,
    caller: &Caller,
    raw: &str,
) -> Result<(Option<ProjectId>, Option<Vec<ProjectId>>)> {
    match names::parse_parent(raw, true).map_err(|e| invalid("parent", e))? {
        Some(p) => {
            caller.require(&p)?;
            let p = existing(conn, p).await?;
            Ok((Some(p.clone()), Some(vec![p])))
        }
        None => Ok((None, caller.visible())),
    }
}

/// The project if it exists, else NOT_FOUND.
pub async fn existing(conn: &mut sqlx::PgConnection, p: ProjectId) -> Result<ProjectId> {
    if rows::exists(conn, &p).await? { Ok(p) } else { Err(Error::NotFound(p.name())) }
}

/// The API view of a stored project.
pub fn to_proto(row: &rows::Row) -> Project {
    Project {
        name: row.id.name(),
        display_name: row.display_name.clone(),
        description: row.description.clone(),
        labels: row.labels.0.clone(),
        create_time: Some(to_timestamp(row.create_time)),
        update_time: Some(to_timestamp(row.update_time)),
        etag: store::etag(row.version),
    }
}

/// A project's display name is for people only (names use the id): 1..=63 printable
/// characters, spaces allowed inside.
fn check_display_name(d: &str) -> std::result::Result<(), String> {
    if d.trim().is_empty() {
        return Err("is required".into());
    }
    if d.chars().count() > 63 {
        return Err(format!("{d:?} is longer than 63 characters"));
    }
    if d.chars().any(char::is_control) {
        return Err("contains control characters".into());
    }
    if d.trim() != d {
        return Err(format!("{d:?} starts or ends with white space"));
    }
    Ok(())
}

fn validate(p: &Project, v: &mut Violations) {
    if let Err(e) = check_display_name(&p.display_name) {
        v.add("project.display_name", e);
    }
    if let Err(e) = names::check_description(&p.description) {
        v.add("project.description", e);
    }
    if let Err((k, e)) = names::check_labels(&p.labels) {
        v.add(format!("project.labels[{k:?}]"), e);
    }
}

fn taken(display_name: &str, id: &ProjectId, e: &sqlx::Error) -> Error {
    match db::constraint(e).as_deref() {
        Some("projects_display_name_key") => Error::AlreadyExists(format!(
            "project.display_name: a project named {display_name:?} already exists"
        )),
        _ => Error::AlreadyExists(format!("project_id: project {id} already exists")),
    }
}

/// CreateProject.
pub async fn create(state: &State, caller: &Caller, req: CreateProjectRequest) -> Result<Project> {
    caller.request_id(&req.request_id);
    caller.resource(format!("projects/{}", req.project_id));
    let request_id = request_id(&req.request_id)?;
    let Some(input) = req.project else {
        let mut v = Violations::default();
        v.add("project", "is required");
        return Err(v.into());
    };
    let mut v = Violations::default();
    let raw_id =
        if req.project_id.is_empty() { input.display_name.as_str() } else { req.project_id.as_str() };
    let id = match ProjectId::parse(raw_id) {
        Ok(id) => Some(id),
        Err(e) if req.project_id.is_empty() => {
            v.add("project_id", format!("is required when the display name is not a valid project id ({e})"));
            None
        }
        Err(e) => {
            v.add("project_id", e);
            None
        }
    };
    validate(&input, &mut v);
    v.check()?;
    let id = id.expect("checked");
    let mut conn = state.pool.acquire().await?;
    if let Some(rid) = request_id
        && let Some(row) = rows::by_request_id(&mut conn, rid).await?
    {
        return Ok(to_proto(&row));
    }
    let labels: HashMap<String, String> = input.labels.clone();
    let write = rows::Write {
        id: &id,
        display_name: &input.display_name,
        description: &input.description,
        labels: &labels,
    };
    if req.validate_only {
        // What the project would be; output-only fields the client sent are not echoed.
        return Ok(Project {
            name: id.name(),
            display_name: input.display_name,
            description: input.description,
            labels: input.labels,
            ..Default::default()
        });
    }
    match rows::insert(&mut conn, &write, request_id).await {
        Ok(row) => {
            tracing::info!(project.id = %id, "project created");
            Ok(to_proto(&row))
        }
        Err(Error::Db(e)) if db::classify(&e) == DbErrorKind::UniqueViolation => {
            if db::constraint(&e).as_deref() == Some("projects_request_id_key")
                && let Some(rid) = request_id
                && let Some(row) = rows::by_request_id(&mut conn, rid).await?
            {
                return Ok(to_proto(&row));
            }
            Err(taken(&input.display_name, &id, &e))
        }
        Err(e) => Err(e),
    }
}

async fn find(
    conn: &mut sqlx::PgConnection,
    caller: &Caller,
    field: &str,
    raw: &str,
    lock: bool,
) -> Result<rows::Row> {
    let id = names::parse_project(raw).map_err(|e| invalid(field, e))?;
    caller.require(&id)?;
    caller.resource(id.name());
    rows::get(conn, &id, lock).await?.ok_or_else(|| Error::NotFound(id.name()))
}

/// GetProject.
pub async fn get(state: &State, caller: &Caller, name: &str) -> Result<Project> {
    let mut conn = state.pool.acquire().await?;
    Ok(to_proto(&find(&mut conn, caller, "name", name, false).await?))
}

/// ListProjects.
pub async fn list(state: &State, caller: &Caller, req: ListProjectsRequest) -> Result<ListProjectsResponse> {
    let size = pagination::page_size(req.page_size)?;
    let fp = pagination::fingerprint(&"projects");
    let after: Option<ProjectId> = pagination::decode(&req.page_token, fp)?;
    let mut conn = state.pool.acquire().await?;
    let only = caller.visible();
    let mut page = rows::list(&mut conn, only.as_deref(), after.as_ref(), size + 1).await?;
    let next = pagination::next_page(&mut page, size, fp, |r| r.id.clone());
    Ok(ListProjectsResponse { projects: page.iter().map(to_proto).collect(), next_page_token: next })
}

/// UpdateProject.
pub async fn update(state: &State, caller: &Caller, req: UpdateProjectRequest) -> Result<Project> {
    let Some(patch) = req.project else {
        let mut v = Violations::default();
        v.add("project", "is required");
        return Err(v.into());
    };
    let paths = req.update_mask.map(|m| m.paths).unwrap_or_default();
    let mut tx = state.pool.begin().await?;
    let once = idempotency::claim(&mut tx, caller, &req.request_id, &patch.name).await?;
    if let Claim::Done(answer) = once {
        return Ok(answer);
    }
    let row = find(&mut tx, caller, "project.name", &patch.name, true).await?;
    store::check_etag(&patch.etag, row.version, &row.id.name())?;
    let merged = mask::apply(&to_proto(&row), &patch, &paths, UPDATABLE)?;
    let mut v = Violations::default();
    validate(&merged, &mut v);
    v.check()?;
    let write = rows::Write {
        id: &row.id,
        display_name: &merged.display_name,
        description: &merged.description,
        labels: &merged.labels,
    };
    let updated = match rows::update(&mut tx, &write).await {
        Err(Error::Db(e)) if db::classify(&e) == DbErrorKind::UniqueViolation => {
            return Err(taken(&merged.display_name, &row.id, &e));
        }
        other => other?,
    };
    let answer = to_proto(&updated);
    if req.validate_only {
        return Ok(answer); // the transaction rolls back
    }
    idempotency::record(&mut tx, &once, &answer).await?;
    tx.commit().await?;
    tracing::info!(project.id = %row.id, fields = ?paths, "project updated");
    Ok(answer)
}

/// DeleteProject: refused while the project holds anything (naming it) unless `force`. The
/// scheduler's part (schedules, history) is asked and deleted outside the catalog's transaction
/// (no transaction waits on the network); a failure after it leaves a project that a repeated
/// DeleteProject finishes.
pub async fn delete(state: &State, caller: &Caller, req: DeleteProjectRequest) -> Result<()> {
    if let Claim::Done(()) = idempotency::answered(&state.pool, caller, &req.request_id, &req.name).await? {
        return Ok(());
    }
    let id = {
        let mut conn = state.pool.acquire().await?;
        let row = find(&mut conn, caller, "name", &req.name, false).await?;
        store::check_etag(&req.etag, row.version, &row.id.name())?;
        row.id
    };
    if id.is_default() {
        return Err(Error::InUse("projects/default always exists and cannot be deleted".into()));
    }
    if !req.force {
        let history = state.scheduler.forget_project(&id, false).await?;
        let mut conn = state.pool.acquire().await?;
        refuse_if_held(&mut conn, &id, history.schedules, history.jobs).await?;
    } else {
        state.scheduler.forget_project(&id, true).await?;
    }
    let mut tx = state.pool.begin().await?;
    let once = idempotency::claim(&mut tx, caller, &req.request_id, &req.name).await?;
    if let Claim::Done(()) = once {
        return Ok(());
    }
    let row = find(&mut tx, caller, "name", &req.name, true).await?;
    store::check_etag(&req.etag, row.version, &row.id.name())?;
    if !req.force {
        // Anything created since the check above.
        refuse_if_held(&mut tx, &id, 0, 0).await?;
    }
    let rows::Counts { connectors, tasks } = rows::counts(&mut tx, &id).await?; // Tasks first: they reference the connectors.
    rows::delete_tasks(&mut tx, &id).await?;
    rows::delete_connectors(&mut tx, &id).await?;
    rows::delete(&mut tx, &id).await?;
    idempotency::record(&mut tx, &once, &()).await?;
    tx.commit().await?;
    tracing::info!(project.id = %id, tasks, connectors, force = req.force, "project deleted");
    Ok(())
}

async fn refuse_if_held(
    conn: &mut sqlx::PgConnection,
    id: &ProjectId,
    schedules: i64,
    jobs: i64,
) -> Result<()> {
    let rows::Counts { connectors, tasks } = rows::counts(conn, id).await?;
    if connectors + tasks + schedules + jobs == 0 {
        return Ok(());
    }
    let held = rows::held(conn, id, HELD_NAMED).await?;
    let mut parts: Vec<String> = held
        .iter()
        .map(|h| format!("{} ({}/{}/{})", h.display_name, id.name(), h.collection, h.id))
        .collect();
    if connectors + tasks > held.len() as i64 {
        parts.push(format!("and {} more", connectors + tasks - held.len() as i64));
    }
    let mut what = format!("{tasks} task(s), {connectors} connector(s)");
    if schedules > 0 || jobs > 0 {
        what.push_str(&format!(", {schedules} schedule(s), {jobs} job(s) in history"));
    }
    let named = if parts.is_empty() { String::new() } else { format!(": {}", parts.join(", ")) };
    Err(Error::InUse(format!(
        "{} still holds {what}{named}; delete them first, or delete with force to remove everything",
        id.name()
    )))
}
