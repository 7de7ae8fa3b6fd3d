//! Task operations: create, read, list, update, delete, and resolving tasks for the
//! scheduler. A task's worker selector is computed on read from its connectors, so a
//! connector's selector change shows up at once.

use std::collections::{BTreeSet, HashMap};

use cairn_api::{
    names::{self, Kind, Reference},
    v1::{
        CreateTaskRequest, DeleteTaskRequest, ListTasksRequest, ListTasksResponse, ResolvedConnector,
        ResolvedTask, Task, TaskType, UpdateTaskRequest,
    },
};
use cairn_runtime::{db, db::DbErrorKind, pagination, status::Violations, time::to_timestamp};
use uuid::Uuid;

use crate::{
    State,
    connectors::{self, request_id},
    domain::{
        mask,
        task::{self, type_name, webhook_secret_key},
    },
    error::{Error, Result},
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

fn reference(field: &str, raw: &str) -> Result<Reference> {
    names::parse_reference(Kind::Task, raw).map_err(|e| {
        let mut v = Violations::default();
        v.add(field, e.to_string());
        Error::Invalid(v)
    })
}

/// The API view of a stored task, with the selector union of `connectors`.
fn to_proto(row: &rows::Row, connectors: &HashMap<Uuid, connector_rows::Row>) -> Result<Task> {
    let mut t: Task = store::decode(&row.spec)?;
    t.name = Kind::Task.name(row.id);
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
) -> Result<HashMap<Uuid, connector_rows::Row>> {
    let ids: Vec<Uuid> = tasks.iter().flat_map(rows::Row::connector_ids).collect();
    Ok(connector_rows::by_ids(conn, &ids).await?.into_iter().map(|r| (r.id, r)).collect())
}

async fn render(conn: &mut sqlx::PgConnection, row: &rows::Row) -> Result<Task> {
    let cs = connectors_of(conn, std::slice::from_ref(row)).await?;
    to_proto(row, &cs)
}

fn id_of(name: &str) -> Option<Uuid> {
    names::parse_id(Kind::Connector, name).ok()
}

fn taken(name: &str) -> Error {
    Error::AlreadyExists(format!("task.display_name: a task named {name:?} already exists"))
}

async fn normalize(
    conn: &mut sqlx::PgConnection,
    t: &Task,
    stored: &BTreeSet<String>,
) -> Result<task::Normalized> {
    let slots = connectors::slots(
        conn,
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
    id: Uuid,
    t: &'a Task,
    secrets: Option<Vec<u8>>,
    secret_names: Vec<String>,
) -> Result<rows::Write<'a>> {
    let mut spec = t.clone();
    spec.worker_selector.clear();
    Ok(rows::Write {
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

fn seal(state: &State, id: Uuid, secrets: &SecretMap) -> (Option<Vec<u8>>, Vec<String>) {
    state.keyring.seal_record(&Kind::Task.name(id), secrets)
}

/// CreateTask.
pub async fn create(state: &State, req: CreateTaskRequest) -> Result<Task> {
    let request_id = request_id(&req.request_id)?;
    let Some(input) = req.task else {
        let mut v = Violations::default();
        v.add("task", "is required");
        return Err(v.into());
    };
    let mut conn = state.pool.acquire().await?;
    if let Some(rid) = request_id
        && let Some(row) = rows::by_request_id(&mut conn, rid).await?
    {
        return render(&mut conn, &row).await;
    }
    let n = normalize(&mut conn, &input, &BTreeSet::new()).await?;
    if req.validate_only {
        return Ok(n.task);
    }
    let id = Uuid::now_v7();
    let (blob, names) = seal(state, id, &n.secrets);
    let w = write(id, &n.task, blob, names)?;
    match rows::insert(&mut conn, &w, request_id).await {
        Ok(row) => {
            tracing::info!(task.id = %id, task.name = %row.display_name, task.type = w.type_name, "task created");
            render(&mut conn, &row).await
        }
        Err(Error::Db(e)) if db::classify(&e) == DbErrorKind::UniqueViolation => {
            if db::constraint(&e).as_deref() == Some("tasks_request_id_key")
                && let Some(rid) = request_id
                && let Some(row) = rows::by_request_id(&mut conn, rid).await?
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

async fn find(conn: &mut sqlx::PgConnection, field: &str, raw: &str, lock: bool) -> Result<rows::Row> {
    let r = reference(field, raw)?;
    rows::find(conn, &r, lock).await?.ok_or_else(|| Error::NotFound(format!("task {:?}", raw.trim())))
}

/// GetTask.
pub async fn get(state: &State, name: &str) -> Result<Task> {
    let mut conn = state.pool.acquire().await?;
    let row = find(&mut conn, "name", name, false).await?;
    render(&mut conn, &row).await
}

/// ListTasks.
pub async fn list(state: &State, req: ListTasksRequest) -> Result<ListTasksResponse> {
    let size = pagination::page_size(req.page_size)?;
    let mut conn = state.pool.acquire().await?;
    let connector = if req.connector.trim().is_empty() {
        None
    } else {
        match connector_rows::find(&mut conn, &connectors::reference("connector", &req.connector)?, false)
            .await?
        {
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
    let fp = pagination::fingerprint(&filter);
    let after: Option<Uuid> = pagination::decode(&req.page_token, fp)?;
    let mut page = rows::list(&mut conn, &filter, after, size + 1).await?;
    let next = if page.len() as i64 > size {
        page.truncate(size as usize);
        page.last().map(|r| pagination::encode(&r.id, fp)).unwrap_or_default()
    } else {
        String::new()
    };
    let cs = connectors_of(&mut conn, &page).await?;
    Ok(ListTasksResponse {
        tasks: page.iter().map(|r| to_proto(r, &cs)).collect::<Result<_>>()?,
        next_page_token: next,
    })
}

/// UpdateTask.
pub async fn update(state: &State, req: UpdateTaskRequest) -> Result<Task> {
    let Some(patch) = req.task else {
        let mut v = Violations::default();
        v.add("task", "is required");
        return Err(v.into());
    };
    let paths = req.update_mask.map(|m| m.paths).unwrap_or_default();
    let mut tx = state.pool.begin().await?;
    let row = find(&mut tx, "task.name", &patch.name, true).await?;
    store::check_etag(&patch.etag, row.version, &Kind::Task.name(row.id))?;
    let base: Task = store::decode(&row.spec)?;
    let merged = mask::apply(&base, &patch, &paths, UPDATABLE)?;
    let stored: BTreeSet<String> = row.secret_names.iter().cloned().collect();
    let n = normalize(&mut tx, &merged, &stored).await?;
    let mut secrets = match &row.secrets {
        Some(blob) => state.keyring.open(&Kind::Task.name(row.id), blob)?.0,
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
    let w = write(row.id, &n.task, blob, names)?;
    let updated = match rows::update(&mut tx, &w).await {
        Err(Error::Db(e)) if db::classify(&e) == DbErrorKind::UniqueViolation => {
            return Err(taken(&n.task.display_name));
        }
        other => other?,
    };
    let out = render(&mut tx, &updated).await?;
    tx.commit().await?;
    tracing::info!(task.id = %row.id, fields = ?paths, "task updated");
    Ok(out)
}

/// DeleteTask: the row goes, then the scheduler is told to drop the task's schedules (if it
/// cannot be reached, its firing loop drops them when it finds the task gone).
pub async fn delete(state: &State, req: DeleteTaskRequest) -> Result<()> {
    let mut tx = state.pool.begin().await?;
    let row = find(&mut tx, "name", &req.name, true).await?;
    store::check_etag(&req.etag, row.version, &Kind::Task.name(row.id))?;
    rows::delete(&mut tx, row.id).await?;
    tx.commit().await?;
    tracing::info!(task.id = %row.id, "task deleted");
    if let Err(e) = state.scheduler.forget_task(row.id).await {
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
    for (i, raw) in names_in.iter().enumerate() {
        match reference(&format!("names[{i}]"), raw)? {
            Reference::Id(id) => ids.push(id),
            Reference::DisplayName(n) => display.push(n),
        }
    }
    let mut conn = state.pool.acquire().await?;
    let found = rows::by_refs(&mut conn, &ids, &display).await?;
    let cs = connectors_of(&mut conn, &found).await?;
    let missing = names_in
        .iter()
        .filter(|raw| {
            let r = names::parse_reference(Kind::Task, raw).ok();
            !found.iter().any(|t| match &r {
                Some(Reference::Id(id)) => t.id == *id,
                Some(Reference::DisplayName(n)) => &t.display_name == n,
                None => false,
            })
        })
        .cloned()
        .collect();
    let mut out = Vec::with_capacity(found.len());
    for row in &found {
        let task = to_proto(row, &cs)?;
        let resolve_one = |id: Option<Uuid>| -> Result<Option<ResolvedConnector>> {
            let Some(c) = id.and_then(|id| cs.get(&id)) else { return Ok(None) };
            resolved_connector(state, c, with_secrets).map(Some)
        };
        let secrets = match (&row.secrets, with_secrets) {
            (Some(blob), true) => state.keyring.open(&Kind::Task.name(row.id), blob)?.0.into_iter().collect(),
            _ => HashMap::new(),
        };
        out.push(ResolvedTask {
            source: resolve_one(row.source_id)?,
            store: resolve_one(row.store_id)?,
            destination: resolve_one(row.destination_id)?,
            target_store: resolve_one(row.target_store_id)?,
            task: Some(task),
            secrets,
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
    let secrets = match (&row.secrets, with_secrets) {
        (Some(blob), true) => {
            state.keyring.open(&Kind::Connector.name(row.id), blob)?.0.into_iter().collect()
        }
        _ => HashMap::new(),
    };
    Ok(ResolvedConnector { connector: Some(connectors::to_proto(row)?), secrets })
}
