//! Connector operations: create, read, list, update, delete, test. Each validates with the
//! domain, writes through the store in one transaction, and answers with the API message
//! (secrets shown only as set/unset).

use std::collections::{BTreeSet, HashMap};

use cairn_api::{
    ids::ConnectorId,
    names::{self, Kind, ProjectId},
    v1::{
        ConnectionTest, Connector, ConnectorRole, CreateConnectorRequest, DeleteConnectorRequest,
        ListConnectorsRequest, ListConnectorsResponse, TestConnectorRequest, UpdateConnectorRequest,
    },
};
use cairn_runtime::{
    auth::Caller,
    db::{self, DbErrorKind},
    idempotency::{self, Claim},
    pagination,
    status::Violations,
    time::{from_duration, to_timestamp},
};
use uuid::Uuid;

use crate::{
    State,
    domain::{
        connector::{self, role_and_type, role_name},
        mask,
        task::{ConnectorInfo, Slot, Slots},
    },
    error::{Error, Result},
    projects,
    secrets::SecretMap,
    store::{self, connectors as rows, tasks as task_rows},
};

/// Fields UpdateConnector may change.
pub const UPDATABLE: &[&str] = &[
    "display_name",
    "description",
    "worker_selector",
    "labels",
    "max_concurrent_jobs",
    "rpo",
    "create_if_missing",
    "repository_password",
    "local_path_source",
    "command_source",
    "local_store",
    "s3_store",
    "sftp_store",
    "rest_store",
    "local_path_destination",
];

/// The API view of a stored connector.
pub fn to_proto(row: &rows::Row) -> Result<Connector> {
    let mut c: Connector = store::decode(&row.spec)?;
    c.name = Kind::Connector.name(&row.project_id, row.id);
    c.display_name = row.display_name.clone();
    connector::mark_secrets(&mut c, &row.secret_set());
    c.last_test = match &row.last_test {
        Some(v) => Some(store::decode(v)?),
        None => None,
    };
    c.create_time = Some(to_timestamp(row.create_time));
    c.update_time = Some(to_timestamp(row.update_time));
    c.etag = store::etag(row.version);
    Ok(c)
}

/// What a task needs to know about a stored connector.
pub fn info(row: &rows::Row) -> ConnectorInfo {
    let role = match row.role.as_str() {
        "SOURCE" => ConnectorRole::Source,
        "STORE" => ConnectorRole::Store,
        "DESTINATION" => ConnectorRole::Destination,
        _ => ConnectorRole::Unspecified,
    };
    ConnectorInfo {
        project: row.project_id.clone(),
        id: row.id,
        display_name: row.display_name.clone(),
        role,
        selector: row.worker_selector.0.clone(),
    }
}

/// Parses a `request_id` (empty = none).
pub fn request_id(raw: &str) -> Result<Option<Uuid>> {
    if raw.is_empty() {
        return Ok(None);
    }
    Uuid::parse_str(raw).map(Some).map_err(|_| {
        let mut v = Violations::default();
        v.add("request_id", format!("{raw:?} is not a UUID"));
        Error::Invalid(v)
    })
}

/// Reads a `name` field, `projects/{p}/connectors/{id or display name}`.
pub fn name(field: &str, raw: &str) -> Result<(ProjectId, names::Reference)> {
    names::parse_one(Kind::Connector, raw).map_err(|e| projects::invalid(field, e))
}

fn taken(name: &str) -> Error {
    Error::AlreadyExists(format!("connector.display_name: a connector named {name:?} already exists"))
}

fn seal(state: &State, id: ConnectorId, secrets: &SecretMap) -> (Option<Vec<u8>>, Vec<String>) {
    state.keyring.seal_record(&Kind::Connector.flat_name(id), secrets)
}

/// CreateConnector.
pub async fn create(state: &State, caller: &Caller, req: CreateConnectorRequest) -> Result<Connector> {
    let request_id = request_id(&req.request_id)?;
    let Some(input) = req.connector else {
        let mut v = Violations::default();
        v.add("connector", "is required");
        return Err(v.into());
    };
    let mut conn = state.pool.acquire().await?;
    let project = projects::parent(&mut conn, caller, &req.parent).await?;
    if let Some(rid) = request_id
        && let Some(row) = rows::by_request_id(&mut conn, &project, rid).await?
    {
        return to_proto(&row);
    }
    let n = connector::normalize(&input, &BTreeSet::new())?;
    if req.validate_only {
        let mut c = n.connector;
        c.name = ConnectorId::default().name(&project);
        connector::mark_secrets(&mut c, &n.secrets.keys().cloned().collect());
        return Ok(c);
    }
    let id = ConnectorId::new();
    let (role, type_name) = role_and_type(n.connector.config.as_ref().expect("validated"));
    let (secrets, secret_names) = seal(state, id, &n.secrets);
    let write = rows::Write {
        project_id: &project,
        id,
        display_name: &n.connector.display_name,
        role: role_name(role),
        type_name,
        spec: store::encode(&n.connector)?,
        worker_selector: &n.connector.worker_selector,
        secrets,
        secret_names,
    };
    match rows::insert(&mut conn, &write, request_id).await {
        Ok(row) => {
            tracing::info!(connector.id = %id, connector.name = %row.display_name, connector.type = type_name, "connector created");
            to_proto(&row)
        }
        Err(Error::Db(e)) if db::classify(&e) == DbErrorKind::UniqueViolation => {
            if db::constraint(&e).as_deref() == Some("connectors_request_id_key")
                && let Some(rid) = request_id
                && let Some(row) = rows::by_request_id(&mut conn, &project, rid).await?
            {
                return to_proto(&row);
            }
            Err(taken(&n.connector.display_name))
        }
        Err(e) => Err(e),
    }
}

/// Finds a connector by its full name or NOT_FOUND (also for a project that does not exist).
pub async fn find(
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
        .ok_or_else(|| Error::NotFound(format!("connector {:?}", raw.trim())))
}

/// GetConnector.
pub async fn get(state: &State, caller: &Caller, name: &str) -> Result<Connector> {
    let mut conn = state.pool.acquire().await?;
    to_proto(&find(&mut conn, caller, "name", name, false).await?)
}

/// ListConnectors.
pub async fn list(
    state: &State,
    caller: &Caller,
    req: ListConnectorsRequest,
) -> Result<ListConnectorsResponse> {
    let size = pagination::page_size(req.page_size)?;
    let mut v = Violations::default();
    let role = match ConnectorRole::try_from(req.role) {
        Ok(ConnectorRole::Unspecified) => None,
        Ok(r) => Some(role_name(r).to_owned()),
        Err(_) => {
            v.add("role", format!("{} is not a connector role", req.role));
            None
        }
    };
    let type_name = match req.r#type.as_str() {
        "" => None,
        t if connector::TYPE_NAMES.contains(&t) => Some(t.to_owned()),
        t => {
            v.add("type", format!("{t:?} is not a connector type ({})", connector::TYPE_NAMES.join(", ")));
            None
        }
    };
    let (selector_key, selector_value) = match req.selector_label.split_once('=') {
        _ if req.selector_label.is_empty() => (None, None),
        Some((k, val)) => (Some(k.to_owned()), Some(val.to_owned())),
        None => (Some(req.selector_label.clone()), None),
    };
    v.check()?;
    let mut conn = state.pool.acquire().await?;
    let (_, scope) = projects::list_parent(&mut conn, caller, &req.parent).await?;
    let filter = rows::Filter { role, type_name, selector_key, selector_value };
    let fp = pagination::fingerprint(&(&filter, &scope));
    let after: Option<ConnectorId> = pagination::decode(&req.page_token, fp)?;
    let mut page = rows::list(&mut conn, scope.as_deref(), &filter, after, size + 1).await?;
    let next = pagination::next_page(&mut page, size, fp, |r| r.id);
    Ok(ListConnectorsResponse {
        connectors: page.iter().map(to_proto).collect::<Result<_>>()?,
        next_page_token: next,
    })
}

/// UpdateConnector.
pub async fn update(state: &State, caller: &Caller, req: UpdateConnectorRequest) -> Result<Connector> {
    let Some(patch) = req.connector else {
        let mut v = Violations::default();
        v.add("connector", "is required");
        return Err(v.into());
    };
    let paths = req.update_mask.map(|m| m.paths).unwrap_or_default();
    let mut tx = state.pool.begin().await?;
    let once = idempotency::claim(&mut tx, caller, &req.request_id, &patch.name).await?;
    if let Claim::Done(answer) = once {
        return Ok(answer);
    }
    let row = find(&mut tx, caller, "connector.name", &patch.name, true).await?;
    store::check_etag(&patch.etag, row.version, &Kind::Connector.name(&row.project_id, row.id))?;
    let stored_names = row.secret_set();
    let base: Connector = store::decode(&row.spec)?;
    let merged = mask::apply(&base, &patch, &paths, UPDATABLE)?;
    let old = base
        .config
        .as_ref()
        .map(role_and_type)
        .ok_or_else(|| Error::Internal("stored connector without config".into()))?;
    if merged.config.as_ref().map(role_and_type) != Some(old) {
        let mut v = Violations::default();
        v.add(
            "update_mask",
            format!("the connector type cannot change (it is {:?}); create a new connector", old.1),
        );
        return Err(v.into());
    }
    let n = connector::normalize(&merged, &stored_names)?;
    let new_type = old.1;
    // A new selector must not contradict the other connectors of any task using this one.
    if n.connector.worker_selector != row.worker_selector.0 {
        let changed = ConnectorInfo { selector: n.connector.worker_selector.clone(), ..info(&row) };
        check_selectors_of_tasks(&mut tx, &changed).await?;
    }
    let mut secrets = match &row.secrets {
        Some(blob) => state.keyring.open(&Kind::Connector.flat_name(row.id), blob)?.0,
        None => SecretMap::new(),
    };
    secrets.extend(n.secrets);
    let (blob, secret_names) = seal(state, row.id, &secrets);
    let write = rows::Write {
        project_id: &row.project_id,
        id: row.id,
        display_name: &n.connector.display_name,
        role: &row.role,
        type_name: new_type,
        spec: store::encode(&n.connector)?,
        worker_selector: &n.connector.worker_selector,
        secrets: blob,
        secret_names,
    };
    let updated = match rows::update(&mut tx, &write).await {
        Err(Error::Db(e)) if db::classify(&e) == DbErrorKind::UniqueViolation => {
            return Err(taken(&n.connector.display_name));
        }
        other => other?,
    };
    let answer = to_proto(&updated)?;
    if req.validate_only {
        return Ok(answer); // the transaction rolls back
    }
    idempotency::record(&mut tx, &once, &answer).await?;
    tx.commit().await?;
    tracing::info!(connector.id = %row.id, fields = ?paths, "connector updated");
    Ok(answer)
}

async fn check_selectors_of_tasks(conn: &mut sqlx::PgConnection, changed: &ConnectorInfo) -> Result<()> {
    let tasks = task_rows::using_connector(conn, &changed.project, changed.id).await?;
    let ids: Vec<ConnectorId> = tasks.iter().flat_map(|t| t.connector_ids()).collect();
    let others: HashMap<ConnectorId, ConnectorInfo> =
        rows::by_ids(conn, &changed.project, &ids).await?.iter().map(|r| (r.id, info(r))).collect();
    for t in &tasks {
        let mut union: HashMap<&str, (&str, &str)> = HashMap::new();
        for cid in t.connector_ids() {
            let c = if cid == changed.id { changed } else { &others[&cid] };
            for (k, val) in &c.selector {
                match union.get(k.as_str()) {
                    Some((existing, owner)) if existing != val => {
                        let mut v = Violations::default();
                        v.add(
                            "connector.worker_selector",
                            format!(
                                "{k}={val} contradicts {k}={existing} required by connector {owner}, used with this \
                                 connector by task {}",
                                t.display_name
                            ),
                        );
                        return Err(v.into());
                    }
                    Some(_) => {}
                    None => {
                        union.insert(k, (val, &c.display_name));
                    }
                }
            }
        }
    }
    Ok(())
}

/// DeleteConnector.
pub async fn delete(state: &State, caller: &Caller, req: DeleteConnectorRequest) -> Result<()> {
    let mut tx = state.pool.begin().await?;
    let once = idempotency::claim(&mut tx, caller, &req.request_id, &req.name).await?;
    if let Claim::Done(()) = once {
        return Ok(());
    }
    let row = find(&mut tx, caller, "name", &req.name, true).await?;
    store::check_etag(&req.etag, row.version, &Kind::Connector.name(&row.project_id, row.id))?;
    let users = rows::tasks_using(&mut tx, &row.project_id, row.id).await?;
    if !users.is_empty() {
        let list: Vec<String> = users
            .iter()
            .map(|u| format!("{} ({})", u.display_name, Kind::Task.name(&row.project_id, u.id)))
            .collect();
        return Err(Error::InUse(format!(
            "connector {} is used by task(s) {}; delete or change them first",
            row.display_name,
            list.join(", ")
        )));
    }
    rows::delete(&mut tx, &row.project_id, row.id).await?;
    idempotency::record(&mut tx, &once, &()).await?;
    tx.commit().await?;
    tracing::info!(connector.id = %row.id, "connector deleted");
    Ok(())
}

/// Default and maximum waits of TestConnector.
const TEST_DEFAULT_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
const TEST_MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// TestConnector: asks the scheduler to run a TEST_CONNECTION job and waits for its verdict.
pub async fn test(state: &State, caller: &Caller, req: TestConnectorRequest) -> Result<ConnectionTest> {
    let wait = match &req.timeout {
        None => TEST_DEFAULT_WAIT,
        Some(d) => match from_duration(d) {
            Some(d) if !d.is_zero() && d <= TEST_MAX_WAIT => d,
            _ => {
                let mut v = Violations::default();
                v.add("timeout", "must be between 1ms and 10m");
                return Err(v.into());
            }
        },
    };
    let row = {
        let mut conn = state.pool.acquire().await?;
        find(&mut conn, caller, "name", &req.name, false).await?
    };
    if let Claim::Done(answer) =
        idempotency::answered(&state.pool, caller, &req.request_id, &req.name).await?
    {
        return Ok(answer);
    }
    let connector = to_proto(&row)?;
    let verdict = state.scheduler.run_connection_test(connector, wait).await?;
    let mut tx = state.pool.begin().await?;
    let once = idempotency::claim(&mut tx, caller, &req.request_id, &req.name).await?;
    if let Claim::Done(answer) = once {
        return Ok(answer); // a concurrent duplicate finished first
    }
    set_last_test(&mut tx, &row.project_id, row.id, &verdict).await?;
    idempotency::record(&mut tx, &once, &verdict).await?;
    tx.commit().await?;
    Ok(verdict)
}

/// Stores a verdict as the connector's last test.
pub async fn record_test(
    state: &State,
    project: &ProjectId,
    id: ConnectorId,
    verdict: &ConnectionTest,
) -> Result<()> {
    let mut conn = state.pool.acquire().await?;
    set_last_test(&mut conn, project, id, verdict).await
}

async fn set_last_test(
    conn: &mut sqlx::PgConnection,
    project: &ProjectId,
    id: ConnectorId,
    verdict: &ConnectionTest,
) -> Result<()> {
    if !rows::set_last_test(conn, project, id, &store::encode(verdict)?).await? {
        return Err(Error::NotFound(format!("connector {}", Kind::Connector.name(project, id))));
    }
    Ok(())
}

/// Looks a task's connector fields up within the task's project (unknown ones, and those of
/// another project, are reported by the domain as not existing).
pub async fn slots(
    conn: &mut sqlx::PgConnection,
    project: &ProjectId,
    fields: [(&str, &str); 4],
) -> Result<Slots> {
    let mut out: [Slot; 4] = Default::default();
    for (i, (field, raw)) in fields.iter().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        let found = match names::parse_within(Kind::Connector, Some(project), raw)
            .map_err(|e| projects::invalid(&format!("task.{field}"), e))?
        {
            Some((_, r)) => rows::find(conn, project, &r, false).await?,
            None => None,
        };
        out[i] = match found {
            Some(row) => Slot::Found(info(&row)),
            None => Slot::Unknown(raw.trim().to_owned()),
        };
    }
    let [source, store, destination, target_store] = out;
    Ok(Slots { source, store, destination, target_store })
}
