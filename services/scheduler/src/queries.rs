//! Snapshot browsing: ListSnapshotEntries, DiffSnapshots and ReadSnapshotFile are questions
//! about one store that only a worker can answer (it holds the store's secrets for a moment
//! and keeps the repository open). The asking replica stores a query; a worker matching the
//! store's selector takes it with AcquireQueries (possibly through another replica) and sends
//! its answer in numbered parts with AnswerQuery; the asker reads and deletes the parts as
//! they come (LISTEN/NOTIFY wakes it, a timer re-checks). A worker may run at most
//! [`WINDOW`] unread parts ahead, so a large file never piles up in Postgres. The query and
//! its parts are deleted when the asker is done or gives up; expired leftovers are purged by
//! the reaper. Queries are not jobs: they never appear in the history.

use std::{
    collections::{HashMap, VecDeque},
    time::Duration,
};

use cairn_api::{
    ids::ConnectorId,
    names::{self, Kind, ProjectId, Reference},
    v1::{
        AcquireLeaseRequest, AcquireQueriesRequest, AcquireQueriesResponse, AnswerQueryRequest,
        ConnectorRole, DiffQuery, DiffSnapshotsRequest, DiffSnapshotsResponse, ListEntriesQuery,
        ListSnapshotEntriesRequest, ListSnapshotEntriesResponse, QueryError, ReadFileQuery,
        ReadSnapshotFileRequest, ReadSnapshotFileResponse, SnapshotQuery, answer_query_request::Part,
        snapshot_query::Request,
    },
};
use cairn_runtime::{
    auth::{AuditRecord, AuditSink as _, Caller, Kind as PrincipalKind, credential_hash, mint},
    pagination,
    status::{self, reason},
    time::{from_duration, to_timestamp},
};
use prost::Message as _;
use tonic::{Code, Status};
use uuid::Uuid;

use crate::{
    State,
    error::{Error, Result},
    events, leases, resolve,
    store::queries as rows,
};

/// Default and longest wait for a worker to answer.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_TIMEOUT: Duration = Duration::from_secs(600);
/// Longest wait between two parts of one answer.
const GAP: Duration = Duration::from_secs(60);
/// Unread parts a worker may run ahead of the asker.
const WINDOW: i64 = 8;
/// Bytes per data part of ReadSnapshotFile.
pub const CHUNK_BYTES: i32 = 256 * 1024;
/// Re-check interval of every wait (notifications are hints).
const POLL: Duration = Duration::from_millis(250);
/// Default and largest page.
const DEFAULT_PAGE: i32 = 200;
const MAX_PAGE: i32 = 1000;

/// The store a query is about.
struct Target {
    project: ProjectId,
    store: ConnectorId,
    name: String,
    display_name: String,
    selector: HashMap<String, String>,
}

async fn target(state: &State, caller: &Caller, parent: &str, store: &str) -> Result<Target> {
    let project = resolve::parent(caller, parent)?;
    if store.trim().is_empty() {
        return Err(Error::invalid("store", "is required"));
    }
    let gone = || Error::invalid("store", resolve::missing("store", store));
    let (p, r) = resolve::within(Kind::Connector, "store", Some(&project), store)?.ok_or_else(gone)?;
    let resolved = state.catalog.connector(&p, &r, false).await?.ok_or_else(gone)?;
    let c = resolved.connector.ok_or_else(gone)?;
    if c.role != ConnectorRole::Store as i32 {
        return Err(Error::invalid("store", format!("{:?} is not a STORE connector", c.display_name)));
    }
    let (_, id) =
        names::parse_canonical(Kind::Connector, &c.name).map_err(|e| Error::Internal(e.to_string()))?;
    Ok(Target {
        project: p,
        store: ConnectorId::from_uuid(id),
        name: c.name,
        display_name: c.display_name,
        selector: c.worker_selector,
    })
}

fn timeout(d: &Option<prost_types::Duration>) -> Result<Duration> {
    match d {
        None => Ok(DEFAULT_TIMEOUT),
        Some(d) => match from_duration(d) {
            Some(d) if d.is_zero() => Ok(DEFAULT_TIMEOUT),
            Some(d) if d <= MAX_TIMEOUT => Ok(d),
            _ => Err(Error::invalid("timeout", "must be between 0 (30s) and 10m")),
        },
    }
}

/// An absolute path inside a snapshot, normalised (`""` = `/`).
fn snapshot_path(field: &str, raw: &str) -> Result<String> {
    if !raw.is_empty() && !raw.starts_with('/') {
        return Err(Error::invalid(field, format!("{raw:?} must be absolute (start with /)")));
    }
    if raw.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    let parts: Vec<&str> = raw.split('/').filter(|c| !c.is_empty()).collect();
    if parts.iter().any(|c| *c == "." || *c == "..") {
        return Err(Error::invalid(field, format!("{raw:?} must not contain `.` or `..`")));
    }
    Ok(format!("/{}", parts.join("/")))
}

fn page_size(n: i32) -> Result<i32> {
    match n {
        n if n < 0 => Err(Error::invalid("page_size", format!("{n} is negative"))),
        0 => Ok(DEFAULT_PAGE),
        n => Ok(n.min(MAX_PAGE)),
    }
}

/// A query in flight; dropping it deletes the query and whatever parts are left.
struct Asked {
    state: State,
    id: Uuid,
    next: i32,
    buffer: VecDeque<AnswerQueryRequest>,
    deadline: tokio::time::Instant,
    store: String,
    selector: HashMap<String, String>,
    ended: bool,
}

impl Drop for Asked {
    fn drop(&mut self) {
        let (pool, id) = (self.state.pool.clone(), self.id);
        tokio::spawn(async move {
            if let Ok(mut conn) = pool.acquire().await
                && let Err(e) = rows::delete(&mut conn, id).await
            {
                tracing::debug!(error = %e, query = %id, "query not deleted; the reaper will");
            }
        });
    }
}

async fn ask(state: &State, t: &Target, request: Request, wait: Duration) -> Result<Asked> {
    let id = Uuid::now_v7();
    let now = state.clock.now();
    let body = SnapshotQuery { request: Some(request), ..Default::default() }.encode_to_vec();
    let expire = now + chrono::Duration::from_std(wait).unwrap_or_else(|_| chrono::Duration::seconds(30));
    let mut tx = state.pool.begin().await?;
    rows::insert(
        &mut tx,
        &rows::New {
            id,
            project_id: &t.project,
            store_id: t.store,
            selector: &t.selector,
            request: body,
            now,
            expire_time: expire,
        },
    )
    .await?;
    events::notify(&mut tx, events::QUERIES, "").await?;
    tx.commit().await?;
    state.events.queries().notify_waiters();
    Ok(Asked {
        state: state.clone(),
        id,
        next: 1,
        buffer: VecDeque::new(),
        deadline: tokio::time::Instant::now() + wait,
        store: t.display_name.clone(),
        selector: t.selector.clone(),
        ended: false,
    })
}

impl Asked {
    /// The next part of the answer; `None` after the last.
    async fn next(&mut self) -> Result<Option<Part>> {
        loop {
            if let Some(p) = self.buffer.pop_front() {
                self.next = p.seq + 1;
                self.deadline = tokio::time::Instant::now() + GAP;
                self.ended = p.last;
                return match p.part {
                    Some(Part::Error(e)) => Err(failure(&e)),
                    part => Ok(part),
                };
            }
            if self.ended {
                return Ok(None);
            }
            let woken = self.state.events.parts().notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let mut conn = self.state.pool.acquire().await?;
            let mut got = rows::read_parts(&mut conn, self.id, self.next, WINDOW).await?;
            if !got.is_empty() {
                events::notify(&mut conn, events::PARTS, &self.id.to_string()).await?;
                got.sort_by_key(|(seq, _)| *seq);
                for (seq, bytes) in got {
                    let part = AnswerQueryRequest::decode(bytes.as_slice())
                        .map_err(|e| Error::Internal(format!("stored answer part: {e}")))?;
                    if seq == self.next + self.buffer.len() as i32 {
                        self.buffer.push_back(part);
                    }
                }
                continue;
            }
            drop(conn);
            let now = tokio::time::Instant::now();
            if now >= self.deadline {
                return Err(if self.next == 1 {
                    Error::Unavailable(format!(
                        "no worker matching the worker selector {:?} of store {:?} answered in time; a worker \
                         that may reach the store must be running",
                        self.selector, self.store
                    ))
                } else {
                    Error::Unavailable(format!("the worker answering about store {:?} stopped", self.store))
                });
            }
            tokio::select! {
                _ = &mut woken => {}
                _ = tokio::time::sleep((self.deadline - now).min(POLL)) => {}
                _ = self.state.shutdown.cancelled() => return Err(Error::Unavailable("the scheduler is shutting down".into())),
            }
        }
    }
}

/// A worker's QueryError as the asker's error.
fn failure(e: &QueryError) -> Error {
    let code = Code::from_i32(e.code);
    match code {
        Code::InvalidArgument if !e.field.is_empty() => Error::invalid(e.field.clone(), e.message.clone()),
        Code::NotFound => status::with_reason(code, reason::NOT_FOUND, e.message.clone()).into(),
        Code::FailedPrecondition => Error::WrongState(e.message.clone()),
        Code::Ok => Error::Internal("a worker answered with an error coded OK".into()),
        _ => Status::new(code, e.message.clone()).into(),
    }
}

fn unexpected(part: Option<Part>) -> Error {
    Error::Internal(format!("unexpected answer part: {part:?}"))
}

/// ListSnapshotEntries.
pub async fn list_entries(
    state: &State,
    caller: &Caller,
    req: ListSnapshotEntriesRequest,
) -> Result<ListSnapshotEntriesResponse> {
    let t = target(state, caller, &req.parent, &req.store).await?;
    let snapshot = resolve::snapshot_id("snapshot", &req.snapshot)?;
    let path = snapshot_path("path", &req.path)?;
    let size = page_size(req.page_size)?;
    let wait = timeout(&req.timeout)?;
    let fp = pagination::fingerprint(&(&t.project, t.store, &snapshot, &path));
    let offset: i32 = pagination::decode(&req.page_token, fp)?.unwrap_or(0);
    let query = ListEntriesQuery { snapshot, path, offset, limit: size };
    let mut asked = ask(state, &t, Request::List(query), wait).await?;
    match asked.next().await? {
        Some(Part::Entries(mut page)) => {
            let end = offset + page.entries.len() as i32;
            if end < page.total_size {
                page.next_page_token = pagination::encode(&end, fp);
            }
            Ok(page)
        }
        other => Err(unexpected(other)),
    }
}

/// DiffSnapshots.
pub async fn diff(
    state: &State,
    caller: &Caller,
    req: DiffSnapshotsRequest,
) -> Result<DiffSnapshotsResponse> {
    let t = target(state, caller, &req.parent, &req.store).await?;
    let a = resolve::snapshot_id("snapshot_a", &req.snapshot_a)?;
    let b = resolve::snapshot_id("snapshot_b", &req.snapshot_b)?;
    let size = page_size(req.page_size)?;
    let wait = timeout(&req.timeout)?;
    let fp = pagination::fingerprint(&(&t.project, t.store, &a, &b, req.metadata));
    let offset: i32 = pagination::decode(&req.page_token, fp)?.unwrap_or(0);
    let query = DiffQuery { snapshot_a: a, snapshot_b: b, metadata: req.metadata, offset, limit: size };
    let mut asked = ask(state, &t, Request::Diff(query), wait).await?;
    match asked.next().await? {
        Some(Part::Diff(mut page)) => {
            let end = offset + page.changes.len() as i32;
            if end < page.total_size {
                page.next_page_token = pagination::encode(&end, fp);
            }
            Ok(page)
        }
        other => Err(unexpected(other)),
    }
}

/// The stream ReadSnapshotFile answers with.
pub type FileStream = tokio_stream::wrappers::ReceiverStream<Result<ReadSnapshotFileResponse, Status>>;

/// ReadSnapshotFile: waits for the file's entry (so errors come back as the call's status),
/// then relays the data parts as they come.
pub async fn read_file(state: &State, caller: &Caller, req: ReadSnapshotFileRequest) -> Result<FileStream> {
    let t = target(state, caller, &req.parent, &req.store).await?;
    let snapshot = resolve::snapshot_id("snapshot", &req.snapshot)?;
    let path = snapshot_path("path", &req.path)?;
    if path == "/" {
        return Err(Error::invalid("path", "names the root directory, not a file"));
    }
    let wait = timeout(&req.timeout)?;
    caller.resource(format!("{}/snapshots/{snapshot}", t.name));
    caller.detail(format!("read {path} from snapshot {snapshot} of store {}", t.display_name));
    let max = state.config.snapshot_read_max_bytes;
    let query = ReadFileQuery {
        snapshot,
        path,
        max_bytes: i64::try_from(max).unwrap_or(i64::MAX),
        chunk_bytes: CHUNK_BYTES,
    };
    let mut asked = ask(state, &t, Request::Read(query), wait).await?;
    let first = match asked.next().await? {
        Some(Part::File(f)) => f,
        other => return Err(unexpected(other)),
    };
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        if tx.send(Ok(first)).await.is_err() {
            return;
        }
        loop {
            let item = match asked.next().await {
                Ok(None) => return,
                // The closing part carries nothing for the caller.
                Ok(Some(Part::File(ReadSnapshotFileResponse { part: None }))) => continue,
                Ok(Some(Part::File(f))) => Ok(f),
                Ok(other) => Err(Status::from(unexpected(other))),
                Err(e) => Err(Status::from(e)),
            };
            let stop = item.is_err();
            if tx.send(item).await.is_err() || stop {
                return;
            }
        }
    });
    Ok(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// AcquireQueries: long-polls for queries this worker may answer.
pub async fn acquire(
    state: &State,
    caller: &Caller,
    req: AcquireQueriesRequest,
) -> Result<AcquireQueriesResponse> {
    if !(1..=100).contains(&req.capacity) {
        return Err(Error::invalid("capacity", format!("{} is out of range 1..=100", req.capacity)));
    }
    let as_lease = AcquireLeaseRequest {
        worker_id: req.worker_id.clone(),
        labels: req.labels.clone(),
        capacity: req.capacity,
        wait: req.wait,
        projects: req.projects.clone(),
    };
    let ask = leases::confine(caller, leases::validate(&as_lease)?, &req.labels)?;
    let deadline = tokio::time::Instant::now() + ask.wait;
    loop {
        let woken = state.events.queries().notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let queries = take(state, caller, &req, &ask.projects).await?;
        if !queries.is_empty() {
            return Ok(AcquireQueriesResponse { queries });
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(AcquireQueriesResponse::default());
        }
        tokio::select! {
            _ = &mut woken => {}
            _ = tokio::time::sleep((deadline - now).min(POLL * 2)) => {}
            _ = state.shutdown.cancelled() => return Ok(AcquireQueriesResponse::default()),
        }
    }
}

async fn take(
    state: &State,
    caller: &Caller,
    req: &AcquireQueriesRequest,
    projects: &[ProjectId],
) -> Result<Vec<SnapshotQuery>> {
    let now = state.clock.now();
    let mut tx = state.pool.begin().await?;
    let ids = rows::claim(&mut tx, &req.labels, projects, now, i64::from(req.capacity)).await?;
    let mut taken = Vec::with_capacity(ids.len());
    for id in ids {
        let token = mint("qt");
        taken.push((rows::take(&mut tx, id, &req.worker_id, &credential_hash(&token), now).await?, token));
    }
    tx.commit().await?;
    let mut out = Vec::with_capacity(taken.len());
    let mut audit = Vec::new();
    for (row, token) in taken {
        let name = format!("queries/{}", row.id);
        let store =
            state.catalog.connector(&row.project_id, &Reference::Id(row.store_id.uuid()), true).await?;
        let Some(store) = store else {
            let gone = QueryError {
                code: Code::NotFound as i32,
                message: "the store was deleted".into(),
                field: "store".into(),
            };
            let part = AnswerQueryRequest {
                query: name,
                seq: 1,
                last: true,
                part: Some(Part::Error(gone)),
                ..Default::default()
            };
            let mut conn = state.pool.acquire().await?;
            rows::add_part(&mut conn, row.id, None, 1, &part.encode_to_vec()).await?;
            events::notify(&mut conn, events::PARTS, &row.id.to_string()).await?;
            continue;
        };
        let mut q = SnapshotQuery::decode(row.request.as_slice())
            .map_err(|e| Error::Internal(format!("stored query: {e}")))?;
        let store_name = store.connector.as_ref().map(|c| c.name.clone()).unwrap_or_default();
        q.name = name.clone();
        q.token = token;
        q.store = Some(store);
        q.expire_time = Some(to_timestamp(row.expire_time));
        audit.push(AuditRecord {
            project: Some(row.project_id.as_str().to_owned()),
            resource: store_name.clone(),
            allowed: true,
            code: "OK".into(),
            detail: format!(
                "released the decrypted secrets of {store_name} to worker {:?} for snapshot query {name}",
                req.worker_id
            ),
            ..AuditRecord::by(Some(caller.principal()), "/cairn.v1.LeaseService/AcquireQueries")
        });
        out.push(q);
    }
    state.audit.record(audit).await;
    Ok(out)
}

/// AnswerQuery: stores one part, waiting while the asker is [`WINDOW`] parts behind.
pub async fn answer(state: &State, caller: &Caller, req: AnswerQueryRequest) -> Result<()> {
    let id = req.query.strip_prefix("queries/").and_then(|s| s.parse::<Uuid>().ok()).ok_or_else(|| {
        Error::invalid("query", format!("{:?} is not a query name (queries/{{id}})", req.query))
    })?;
    if req.seq < 1 {
        return Err(Error::invalid("seq", "parts are numbered from 1"));
    }
    if req.part.is_none() {
        return Err(Error::invalid("part", "is required"));
    }
    let proof = (caller.principal().kind() == PrincipalKind::Worker).then(|| credential_hash(&req.token));
    let gone =
        || status::with_reason(Code::Aborted, reason::QUERY_GONE, "the asker gave up on this query").into();
    let deadline = tokio::time::Instant::now() + GAP;
    loop {
        let woken = state.events.parts().notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let mut conn = state.pool.acquire().await?;
        if rows::unread(&mut conn, id).await? < WINDOW {
            break;
        }
        if !rows::exists(&mut conn, id).await? {
            return Err(gone());
        }
        drop(conn);
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err(Error::DeadlineExceeded("the asker is not reading the answer".into()));
        }
        tokio::select! {
            _ = &mut woken => {}
            _ = tokio::time::sleep((deadline - now).min(POLL)) => {}
            _ = state.shutdown.cancelled() => return Err(Error::Unavailable("the scheduler is shutting down".into())),
        }
    }
    let stored = AnswerQueryRequest { token: String::new(), ..req };
    let mut conn = state.pool.acquire().await?;
    if !rows::add_part(&mut conn, id, proof.as_deref(), stored.seq, &stored.encode_to_vec()).await? {
        return Err(gone());
    }
    events::notify(&mut conn, events::PARTS, &id.to_string()).await?;
    state.events.parts().notify_waiters();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_ids_and_paths_are_checked() {
        assert_eq!(resolve::snapshot_id("s", " 1A2B3C4D ").unwrap(), "1a2b3c4d");
        assert!(resolve::snapshot_id("s", "1a2b").is_err());
        assert!(resolve::snapshot_id("s", "latest").is_err());
        assert_eq!(snapshot_path("p", "").unwrap(), "/");
        assert_eq!(snapshot_path("p", "/srv//www/").unwrap(), "/srv/www");
        assert!(snapshot_path("p", "srv").is_err());
        assert!(snapshot_path("p", "/srv/../etc").is_err());
        assert!(page_size(-1).is_err());
        assert_eq!(page_size(0).unwrap(), DEFAULT_PAGE);
        assert_eq!(page_size(5000).unwrap(), MAX_PAGE);
    }
}
