//! Task operations: create, read, list, update, delete, and resolving tasks for the
//! scheduler. A task's worker selector is computed on read from its connectors, so a
//! connector's selector change shows up at once.

use std::collections::{BTreeSet, HashMap};

use cairn_api::{
    ids::{ConnectorId, TaskId},
    names::{self, Kind, ProjectId, Reference},
    v1::{
        Connector, ConnectorRole, CreateTaskRequest, DeleteTaskRequest, ListBackupCoverageRequest,
        ListBackupCoverageResponse, ListTasksRequest, ListTasksResponse, ResolvedConnector, ResolvedTask,
        Task, TaskType, UpdateTaskRequest,
    },
};
use cairn_runtime::{
    auth::Caller,
    db,
    db::DbErrorKind,
    idempotency::{self, Claim},
    pagination,
    status::Violations,
    time::to_timestamp,
};

use crate::{
    State,
    connectors::{self, request_id},
    domain::{
        connector::role_name as connector_role_name,
        mask,
        task::{self, type_name, webhook_secret_key},
    },
    error::{Error, Result},
    projects,
    secrets::SecretMap,
    store::{self, connectors as connector_rows, tasks as rows},
};

/// Fields UpdateTask may change (`type` is immutable).
const UPDATABLE: &[&str] = &[
    "display_name",
    "description",
    "source",
    "store",
    "destination",
    "target_store",
    "labels",
    "backup",
    "restore",
    "sync",
    "check",
    "prune",
    "concurrency",
    "timeout",
    "max_attempts",
    "initial_backoff",
    "max_backoff",
    "overlap_policy",
    "notification",
];

/// Reads a task's full name, `projects/{p}/tasks/{id or display name}`.
fn name(field: &str, raw: &str) -> Result<(ProjectId, Reference)> {
    names::parse_one(Kind::Task, raw).map_err(|e| projects::invalid(field, e))
}

/// The stored message, its connectors named from the columns (records of the first release
/// hold flat names).
fn spec_of(row: &rows::Row) -> Result<Task> {
    let mut t: Task = store::decode(&row.spec)?;
    let connector =
        |id: Option<ConnectorId>| id.map(|id| Kind::Connector.name(&row.project_id, id)).unwrap_or_default();
    t.source = connector(row.source_id);
    t.store = connector(row.store_id);
    t.destination = connector(row.destination_id);
    t.target_store = connector(row.target_store_id);
    Ok(t)
}

/// The API view of a stored task, with the selector union of `connectors`.
fn to_proto(row: &rows::Row, connectors: &HashMap<ConnectorId, connector_rows::Row>) -> Result<Task> {
    let mut t = spec_of(row)?;
    t.name = Kind::Task.name(&row.project_id, row.id);
    t.display_name = row.display_name.clone();
    let mut selector = HashMap::new();
    for id in row.connector_ids() {
        if let Some(c) = connectors.get(&id) {
            for (k, v) in &c.worker_selector.0 {
                selector.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
    t.worker_selector = selector;
    let stored: BTreeSet<String> = row.secret_names.iter().cloned().collect();
    if let Some(n) = t.notification.as_mut() {
        for w in &mut n.webhooks {
            w.secret_set = stored.contains(&webhook_secret_key(&w.url));
        }
    }
    t.create_time = Some(to_timestamp(row.create_time));
    t.update_time = Some(to_timestamp(row.update_time));
    t.etag = store::etag(row.version);
    Ok(t)
}

async fn connectors_of(
    conn: &mut sqlx::PgConnection,
    tasks: &[rows::Row],
) -> Result<HashMap<ConnectorId, connector_rows::Row>> {
    let mut by_project: HashMap<&ProjectId, Vec<ConnectorId>> = HashMap::new();
    for t in tasks {
        by_project.entry(&t.project_id).or_default().extend(t.connector_ids());
    }
    let mut out = HashMap::new();
    for (project, ids) in by_project {
        out.extend(connector_rows::by_ids(conn, project, &ids).await?.into_iter().map(|r| (r.id, r)));
    }
    Ok(out)
}

async fn render(conn: &mut sqlx::PgConnection, row: &rows::Row) -> Result<Task> {
    let cs = connectors_of(conn, std::slice::from_ref(row)).await?;
    to_proto(row, &cs)
}

fn id_of(name: &str) -> Option<ConnectorId> {
    names::parse_canonical(Kind::Connector, name).ok().map(|(_, id)| ConnectorId::from_uuid(id))
}

fn taken(name: &str) -> Error {
    Error::AlreadyExists(format!("task.display_name: a task named {name:?} already exists"))
}

async fn normalize(
    conn: &mut sqlx::PgConnection,
    project: &ProjectId,
    t: &Task,
    stored: &BTreeSet<String>,
) -> Result<task::Normalized> {
    let slots = connectors::slots(
        conn,
        project,
        [
            ("source", &t.source),
            ("store", &t.store),
            ("destination", &t.destination),
            ("target_store", &t.target_store),
        ],
    )
    .await?;
    Ok(task::normalize(t, &slots, stored)?)
}

fn write<'a>(
    project_id: &'a ProjectId,
    id: TaskId,
    t: &'a Task,
    secrets: Option<Vec<u8>>,
    secret_names: Vec<String>,
) -> Result<rows::Write<'a>> {
    let mut spec = t.clone();
    spec.worker_selector.clear();
    Ok(rows::Write {
        project_id,
        id,
        display_name: &t.display_name,
        type_name: type_name(TaskType::try_from(t.r#type).unwrap_or_default()),
        source_id: id_of(&t.source),
        store_id: id_of(&t.store),
        destination_id: id_of(&t.destination),
        target_store_id: id_of(&t.target_store),
        spec: store::encode(&spec)?,
        secrets,
        secret_names,
    })
}

fn seal(state: &State, id: TaskId, secrets: &SecretMap) -> (Option<Vec<u8>>, Vec<String>) {
    state.keyring.seal_record(&Kind::Task.flat_name(id), secrets)
}

/// CreateTask.
pub async fn create(state: &State, caller: &Caller, req: CreateTaskRequest) -> Result<Task> {
    let request_id = request_id(&req.request_id)?;
    let Some(input) = req.task else {
        let mut v = Violations::default();
        v.add("task", "is required");
        return Err(v.into());
    };
    let mut conn = state.pool.acquire().await?;
    let project = projects::parent(&mut conn, caller, &req.parent).await?;
    if let Some(rid) = request_id
        && let Some(row) = rows::by_request_id(&mut conn, &project, rid).await?
    {
        return render(&mut conn, &row).await;
    }
    let n = normalize(&mut conn, &project, &input, &BTreeSet::new()).await?;
    if req.validate_only {
        return Ok(Task { name: TaskId::default().name(&project), ..n.task });
    }
    let id = TaskId::new();
    let (blob, names) = seal(state, id, &n.secrets);
    let w = write(&project, id, &n.task, blob, names)?;
    match rows::insert(&mut conn, &w, request_id).await {
        Ok(row) => {
            tracing::info!(task.id = %id, task.name = %row.display_name, task.type = w.type_name, "task created");
            render(&mut conn, &row).await
        }
        Err(Error::Db(e)) if db::classify(&e) == DbErrorKind::UniqueViolation => {
            if db::constraint(&e).as_deref() == Some("tasks_request_id_key")
                && let Some(rid) = request_id
                && let Some(row) = rows::by_request_id(&mut conn, &project, rid).await?
            {
                return render(&mut conn, &row).await;
            }
            Err(taken(&n.task.display_name))
        }
        // A connector deleted between the lookup and the insert.
        Err(Error::Db(e)) if db::classify(&e) == DbErrorKind::ForeignKeyViolation => {
            let mut v = Violations::default();
            v.add("task", "a connector it names was deleted meanwhile; retry");
            Err(v.into())
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
    let (project, r) = name(field, raw)?;
    caller.require(&project)?;
    rows::find(conn, &project, &r, lock)
        .await?
        .ok_or_else(|| Error::NotFound(format!("task {:?}", raw.trim())))
}

/// GetTask.
pub async fn get(state: &State, caller: &Caller, name: &str) -> Result<Task> {
    let mut conn = state.pool.acquire().await?;
    let row = find(&mut conn, caller, "name", name, false).await?;
    render(&mut conn, &row).await
}

/// ListTasks.
pub async fn list(state: &State, caller: &Caller, req: ListTasksRequest) -> Result<ListTasksResponse> {
    let size = pagination::page_size(req.page_size)?;
    let mut conn = state.pool.acquire().await?;
    let (project, scope) = projects::list_parent(&mut conn, caller, &req.parent).await?;
    let connector = if req.connector.trim().is_empty() {
        None
    } else {
        let found = match names::parse_within(Kind::Connector, project.as_ref(), &req.connector)
            .map_err(|e| projects::invalid("connector", e))?
        {
            Some((p, r)) => connector_rows::find(&mut conn, &p, &r, false).await?,
            None => None,
        };
        match found {
            Some(c) => Some(c.id),
            None => return Err(Error::NotFound(format!("connector {:?}", req.connector.trim()))),
        }
    };
    let type_name = match TaskType::try_from(req.r#type) {
        Ok(TaskType::Unspecified) => None,
        Ok(t) => Some(type_name(t).to_owned()),
        Err(_) => {
            let mut v = Violations::default();
            v.add("type", format!("{} is not a task type", req.r#type));
            return Err(v.into());
        }
    };
    let filter = rows::Filter { connector, type_name };
    let fp = pagination::fingerprint(&(&filter, &scope));
    let after: Option<TaskId> = pagination::decode(&req.page_token, fp)?;
    let mut page = rows::list(&mut conn, scope.as_deref(), &filter, after, size + 1).await?;
    let next = pagination::next_page(&mut page, size, fp, |r| r.id);
    let cs = connectors_of(&mut conn, &page).await?;
    Ok(ListTasksResponse {
        tasks: page.iter().map(|r| to_proto(r, &cs)).collect::<Result<_>>()?,
        next_page_token: next,
    })
}

/// UpdateTask.
pub async fn update(state: &State, caller: &Caller, req: UpdateTaskRequest) -> Result<Task> {
    let Some(patch) = req.task else {
        let mut v = Violations::default();
        v.add("task", "is required");
        return Err(v.into());
    };
    let paths = req.update_mask.map(|m| m.paths).unwrap_or_default();
    let mut tx = state.pool.begin().await?;
    let once = idempotency::claim(&mut tx, caller, &req.request_id, &patch.name).await?;
    if let Claim::Done(answer) = once {
        return Ok(answer);
    }
    let row = find(&mut tx, caller, "task.name", &patch.name, true).await?;
    store::check_etag(&patch.etag, row.version, &Kind::Task.name(&row.project_id, row.id))?;
    let base = spec_of(&row)?;
    let merged = mask::apply(&base, &patch, &paths, UPDATABLE)?;
    let stored: BTreeSet<String> = row.secret_names.iter().cloned().collect();
    let n = normalize(&mut tx, &row.project_id, &merged, &stored).await?;
    let mut secrets = match &row.secrets {
        Some(blob) => state.keyring.open(&Kind::Task.flat_name(row.id), blob)?.0,
        None => SecretMap::new(),
    };
    secrets.extend(n.secrets);
    // Forget the keys of webhooks that are gone.
    let live: BTreeSet<String> = n
        .task
        .notification
        .iter()
        .flat_map(|n| n.webhooks.iter().map(|w| webhook_secret_key(&w.url)))
        .collect();
    secrets.retain(|k, _| live.contains(k));
    let (blob, names) = seal(state, row.id, &secrets);
    let w = write(&row.project_id, row.id, &n.task, blob, names)?;
    let updated = match rows::update(&mut tx, &w).await {
        Err(Error::Db(e)) if db::classify(&e) == DbErrorKind::UniqueViolation => {
            return Err(taken(&n.task.display_name));
        }
        other => other?,
    };
    let out = render(&mut tx, &updated).await?;
    if req.validate_only {
        return Ok(out); // the transaction rolls back
    }
    idempotency::record(&mut tx, &once, &out).await?;
    tx.commit().await?;
    tracing::info!(task.id = %row.id, fields = ?paths, "task updated");
    Ok(out)
}

/// DeleteTask: the row goes, then the scheduler is told to drop the task's schedules (if it
/// cannot be reached, its firing loop drops them when it finds the task gone).
pub async fn delete(state: &State, caller: &Caller, req: DeleteTaskRequest) -> Result<()> {
    let mut tx = state.pool.begin().await?;
    let once = idempotency::claim(&mut tx, caller, &req.request_id, &req.name).await?;
    if let Claim::Done(()) = once {
        return Ok(());
    }
    let row = find(&mut tx, caller, "name", &req.name, true).await?;
    store::check_etag(&req.etag, row.version, &Kind::Task.name(&row.project_id, row.id))?;
    rows::delete(&mut tx, &row.project_id, row.id).await?;
    idempotency::record(&mut tx, &once, &()).await?;
    tx.commit().await?;
    tracing::info!(task.id = %row.id, "task deleted");
    if let Err(e) = state.scheduler.forget_task(&row.project_id, row.id).await {
        tracing::warn!(task.id = %row.id, error = %e, "scheduler not told of the deletion; it will notice when firing");
    }
    Ok(())
}

/// Resolves tasks for the scheduler: each with its connectors and, on request, secrets.
pub async fn resolve(
    state: &State,
    names_in: &[String],
    with_secrets: bool,
) -> Result<(Vec<ResolvedTask>, Vec<String>)> {
    let mut ids = Vec::new();
    let mut display = Vec::new();
    let mut parsed = Vec::with_capacity(names_in.len());
    for (i, raw) in names_in.iter().enumerate() {
        let (project, r) = name(&format!("names[{i}]"), raw)?;
        match &r {
            Reference::Id(id) => ids.push((project.clone(), TaskId::from_uuid(*id))),
            Reference::DisplayName(n) => display.push((project.clone(), n.clone())),
        }
        parsed.push((project, r));
    }
    let mut conn = state.pool.acquire().await?;
    let found = rows::by_refs(&mut conn, &ids, &display).await?;
    let cs = connectors_of(&mut conn, &found).await?;
    let missing = names_in
        .iter()
        .zip(&parsed)
        .filter(|(_, (project, r))| {
            !found.iter().any(|t| {
                t.project_id == *project
                    && match r {
                        Reference::Id(id) => t.id.uuid() == *id,
                        Reference::DisplayName(n) => &t.display_name == n,
                    }
            })
        })
        .map(|(raw, _)| raw.clone())
        .collect();
    let mut out = Vec::with_capacity(found.len());
    // Fleet tasks select among their project's sources, read once per project.
    let mut sources_of: HashMap<ProjectId, Vec<(connector_rows::Row, Connector)>> = HashMap::new();
    for row in &found {
        let task = to_proto(row, &cs)?;
        let fleet = match &task.options {
            Some(cairn_api::v1::task::Options::Backup(cairn_api::v1::BackupOptions {
                sources: Some(sel),
                ..
            })) => {
                if !sources_of.contains_key(&row.project_id) {
                    let mut all = Vec::new();
                    for c in project_sources(&mut conn, &row.project_id).await? {
                        let proto = connectors::to_proto(&c)?;
                        all.push((c, proto));
                    }
                    sources_of.insert(row.project_id.clone(), all);
                }
                let mut picked = Vec::new();
                for (c, proto) in &sources_of[&row.project_id] {
                    if cairn_api::fleet::selects(sel, proto) {
                        picked.push(with_secrets_of(state, c, proto.clone(), with_secrets)?);
                    }
                }
                picked
            }
            _ => Vec::new(),
        };
        let resolve_one = |id: Option<ConnectorId>| -> Result<Option<ResolvedConnector>> {
            let Some(c) = id.and_then(|id| cs.get(&id)) else { return Ok(None) };
            resolved_connector(state, c, with_secrets).map(Some)
        };
        let secrets = match (&row.secrets, with_secrets) {
            (Some(blob), true) => {
                state.keyring.open(&Kind::Task.flat_name(row.id), blob)?.0.into_iter().collect()
            }
            _ => HashMap::new(),
        };
        out.push(ResolvedTask {
            source: resolve_one(row.source_id)?,
            store: resolve_one(row.store_id)?,
            destination: resolve_one(row.destination_id)?,
            target_store: resolve_one(row.target_store_id)?,
            task: Some(task),
            secrets,
            fleet,
        });
    }
    Ok((out, missing))
}

/// A connector with its secrets opened (when asked).
pub fn resolved_connector(
    state: &State,
    row: &connector_rows::Row,
    with_secrets: bool,
) -> Result<ResolvedConnector> {
    with_secrets_of(state, row, connectors::to_proto(row)?, with_secrets)
}

/// `connector` (the API view of `row`) with the row's secrets opened when asked.
fn with_secrets_of(
    state: &State,
    row: &connector_rows::Row,
    connector: Connector,
    with_secrets: bool,
) -> Result<ResolvedConnector> {
    let secrets = match (&row.secrets, with_secrets) {
        (Some(blob), true) => {
            state.keyring.open(&Kind::Connector.flat_name(row.id), blob)?.0.into_iter().collect()
        }
        _ => HashMap::new(),
    };
    Ok(ResolvedConnector { connector: Some(connector), secrets })
}

/// Every SOURCE connector of a project.
async fn project_sources(
    conn: &mut sqlx::PgConnection,
    project: &ProjectId,
) -> Result<Vec<connector_rows::Row>> {
    const PAGE: i64 = 1000;
    let filter = connector_rows::Filter {
        role: Some(connector_role_name(ConnectorRole::Source).into()),
        ..Default::default()
    };
    let scope = [project.clone()];
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = connector_rows::list(conn, Some(&scope), &filter, after, PAGE).await?;
        after = page.last().map(|r| r.id);
        let full = page.len() as i64 == PAGE;
        out.extend(page);
        if !full {
            return Ok(out);
        }
    }
}

/// ListBackupCoverage: every SOURCE connector and every BACKUP task of a project (no secrets).
pub async fn backup_coverage(
    state: &State,
    caller: &Caller,
    req: ListBackupCoverageRequest,
) -> Result<ListBackupCoverageResponse> {
    const PAGE: i64 = 1000;
    let mut conn = state.pool.acquire().await?;
    let project = projects::parent(&mut conn, caller, &req.parent).await?;
    let scope = [project];
    let sources = project_sources(&mut conn, &scope[0])
        .await?
        .iter()
        .map(connectors::to_proto)
        .collect::<Result<Vec<_>>>()?;
    let filter = rows::Filter { connector: None, type_name: Some(type_name(TaskType::Backup).into()) };
    let mut backup_tasks = Vec::new();
    let mut after = None;
    loop {
        let page = rows::list(&mut conn, Some(&scope), &filter, after, PAGE).await?;
        after = page.last().map(|r| r.id);
        let cs = connectors_of(&mut conn, &page).await?;
        for r in &page {
            backup_tasks.push(to_proto(r, &cs)?);
        }
        if (page.len() as i64) < PAGE {
            break;
        }
    }
    Ok(ListBackupCoverageResponse { sources, backup_tasks })
}
