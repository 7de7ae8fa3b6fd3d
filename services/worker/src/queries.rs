//! Snapshot queries: beside the job loop, the worker long-polls AcquireQueries and answers
//! each query (a directory listing, a diff, a file's contents) on the engine's [`Browser`],
//! which keeps the repositories it opened for the next click. Queries do not count against
//! the job capacity; at most [`PARALLEL`] run at once.

use std::{collections::HashMap, sync::Arc, time::Duration};

use cairn_api::v1::{
    AnswerQueryRequest, DiffSnapshotsResponse, EntryType, ListSnapshotEntriesResponse, QueryError,
    ReadSnapshotFileResponse, SnapshotChange, SnapshotEntry, SnapshotQuery, answer_query_request::Part,
    read_snapshot_file_response, snapshot_query::Request,
};
use cairn_engine::{Browser, EntryKind, Error as EngineError};
use cairn_runtime::{backoff::Backoff, time::to_timestamp};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tonic::Code;

use crate::{client::SharedClient, convert};

/// Queries answered at once.
pub const PARALLEL: usize = 4;

/// Answers queries until `shutdown`.
pub async fn run(
    client: SharedClient,
    browser: Arc<Browser>,
    id: String,
    labels: HashMap<String, String>,
    projects: Vec<String>,
    wait: Duration,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(PARALLEL));
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    while !shutdown.is_cancelled() {
        let free = slots.available_permits();
        if free == 0 {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                p = slots.clone().acquire_owned() => drop(p),
            }
            continue;
        }
        let got = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = client.acquire_queries(&id, &labels, &projects, free as i32, wait) => r,
        };
        match got {
            Ok(queries) => {
                backoff.reset();
                for q in queries {
                    let Ok(permit) = slots.clone().acquire_owned().await else { return };
                    let (client, browser) = (client.clone(), browser.clone());
                    tokio::spawn(async move {
                        answer(client, browser, q).await;
                        drop(permit);
                    });
                }
            }
            Err(s) if s.code() == Code::Unimplemented => return,
            Err(s) => {
                tracing::warn!(error = %s.message(), code = ?s.code(), "cannot get snapshot queries; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                }
            }
        }
    }
}

/// What the blocking side sends for a file read.
enum Piece {
    Entry(SnapshotEntry),
    Data(Vec<u8>),
}

/// The engine's side of a file read: pieces into a small channel (the asker gone = stop).
struct Pieces(mpsc::Sender<Piece>);

impl cairn_engine::FileSink for Pieces {
    fn entry(&mut self, e: &cairn_engine::Entry) -> Result<(), EngineError> {
        self.0.blocking_send(Piece::Entry(entry(e))).map_err(|_| EngineError::Cancelled)
    }

    fn data(&mut self, bytes: &[u8]) -> Result<(), EngineError> {
        self.0.blocking_send(Piece::Data(bytes.to_vec())).map_err(|_| EngineError::Cancelled)
    }
}

async fn answer(client: SharedClient, browser: Arc<Browser>, q: SnapshotQuery) {
    let started = std::time::Instant::now();
    let name = q.name.clone();
    let kind = match &q.request {
        Some(Request::List(_)) => "list",
        Some(Request::Diff(_)) => "diff",
        Some(Request::Read(_)) => "read",
        None => "none",
    };
    let mut sender = Sender { client, query: q.name.clone(), token: q.token.clone(), seq: 0 };
    let store = q
        .store
        .as_ref()
        .and_then(|s| s.connector.as_ref().map(|c| (c, &s.secrets)))
        .ok_or_else(|| "the query carries no store".to_owned())
        .and_then(|(c, secrets)| convert::store_of(c, secrets).map_err(|e| e.to_string()));
    let store = match store {
        Ok(s) => s,
        Err(why) => {
            let _ = sender
                .error(QueryError {
                    code: Code::FailedPrecondition as i32,
                    message: why,
                    field: String::new(),
                })
                .await;
            return;
        }
    };
    let outcome = match q.request {
        Some(Request::List(l)) => {
            let r = blocking(move || {
                browser.list(&store, &l.snapshot, &l.path, offset(l.offset), limit(l.limit))
            })
            .await;
            match r {
                Ok(listing) => sender
                    .last(Part::Entries(ListSnapshotEntriesResponse {
                        snapshot: listing.snapshot,
                        path: listing.path,
                        entries: listing.entries.iter().map(entry).collect(),
                        next_page_token: String::new(),
                        total_size: count(listing.total),
                    }))
                    .await
                    .map(|()| "ok"),
                Err(e) => sender.error(query_error(&e)).await.map(|()| "error"),
            }
        }
        Some(Request::Diff(d)) => {
            let r = blocking(move || {
                browser.diff(
                    &store,
                    &d.snapshot_a,
                    &d.snapshot_b,
                    d.metadata,
                    offset(d.offset),
                    limit(d.limit),
                )
            })
            .await;
            match r {
                Ok(diff) => sender
                    .last(Part::Diff(DiffSnapshotsResponse {
                        snapshot_a: diff.a,
                        snapshot_b: diff.b,
                        changes: diff
                            .changes
                            .into_iter()
                            .map(|c| SnapshotChange {
                                path: c.path,
                                modifier: c.modifier,
                                r#type: kind_of(c.kind) as i32,
                            })
                            .collect(),
                        next_page_token: String::new(),
                        total_size: count(diff.total),
                        added: count(diff.added),
                        removed: count(diff.removed),
                        modified: count(diff.modified),
                    }))
                    .await
                    .map(|()| "ok"),
                Err(e) => sender.error(query_error(&e)).await.map(|()| "error"),
            }
        }
        Some(Request::Read(r)) => read(&mut sender, browser, store, r).await,
        None => sender
            .error(QueryError {
                code: Code::InvalidArgument as i32,
                message: "empty query".into(),
                field: String::new(),
            })
            .await
            .map(|()| "error"),
    };
    let outcome = match outcome {
        Ok(o) => o,
        Err(s) if cairn_runtime::status::reason_of(&s).as_deref() == Some("QUERY_GONE") => "abandoned",
        Err(s) => {
            tracing::warn!(query = %name, error = %s.message(), "snapshot query answer not delivered");
            "undelivered"
        }
    };
    metrics::counter!("cairn_worker_queries_total", "kind" => kind, "outcome" => outcome).increment(1);
    metrics::counter!("cairn_worker_browse_repository_opens_total")
        .absolute(cairn_engine::repository_opens());
    tracing::debug!(query = %name, kind, outcome, ms = started.elapsed().as_millis() as u64, "snapshot query answered");
}

async fn read(
    sender: &mut Sender,
    browser: Arc<Browser>,
    store: cairn_engine::Store,
    r: cairn_api::v1::ReadFileQuery,
) -> Result<&'static str, tonic::Status> {
    let (tx, mut rx) = mpsc::channel::<Piece>(2);
    let work = tokio::task::spawn_blocking(move || {
        let max = u64::try_from(r.max_bytes).unwrap_or(0);
        let chunk = usize::try_from(r.chunk_bytes).unwrap_or(0).clamp(1, 256 * 1024);
        browser.read(&store, &r.snapshot, &r.path, (max, chunk), &mut Pieces(tx))
    });
    while let Some(piece) = rx.recv().await {
        let part = match piece {
            Piece::Entry(e) => read_snapshot_file_response::Part::Entry(e),
            Piece::Data(d) => read_snapshot_file_response::Part::Data(d),
        };
        if let Err(s) = sender.part(Part::File(ReadSnapshotFileResponse { part: Some(part) }), false).await {
            drop(rx);
            let _ = work.await;
            return Err(s);
        }
    }
    match work.await {
        Ok(Ok(_)) => sender.last(Part::File(ReadSnapshotFileResponse { part: None })).await.map(|()| "ok"),
        Ok(Err(e)) => sender.error(query_error(&e)).await.map(|()| "error"),
        Err(join) => sender
            .error(QueryError {
                code: Code::Internal as i32,
                message: format!("the engine crashed: {join}"),
                field: String::new(),
            })
            .await
            .map(|()| "error"),
    }
}

/// Numbers and sends the parts of one answer, retrying transient failures.
struct Sender {
    client: SharedClient,
    query: String,
    token: String,
    seq: i32,
}

impl Sender {
    async fn part(&mut self, part: Part, last: bool) -> Result<(), tonic::Status> {
        self.seq += 1;
        let req = AnswerQueryRequest {
            query: self.query.clone(),
            token: self.token.clone(),
            seq: self.seq,
            last,
            part: Some(part),
        };
        let mut delay = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        for attempt in 1..=5 {
            match self.client.answer(req.clone()).await {
                Ok(()) => return Ok(()),
                Err(s)
                    if attempt < 5
                        && matches!(s.code(), Code::Unavailable | Code::DeadlineExceeded | Code::Unknown) =>
                {
                    tokio::time::sleep(delay.next_delay()).await;
                }
                Err(s) => return Err(s),
            }
        }
        Err(tonic::Status::unavailable("gave up"))
    }

    async fn last(&mut self, part: Part) -> Result<(), tonic::Status> {
        self.part(part, true).await
    }

    async fn error(&mut self, e: QueryError) -> Result<(), tonic::Status> {
        self.part(Part::Error(e), true).await
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, EngineError> + Send + 'static,
) -> Result<T, EngineError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|join| Err(EngineError::Internal(format!("the engine crashed: {join}"))))
}

fn offset(n: i32) -> usize {
    usize::try_from(n).unwrap_or(0)
}

fn limit(n: i32) -> usize {
    usize::try_from(n).unwrap_or(0).clamp(1, 1000)
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// An engine error as the asker's status: the caller's mistakes by their nature, the store's
/// trouble as FAILED_PRECONDITION or UNAVAILABLE. Engine messages are already redacted.
fn query_error(e: &EngineError) -> QueryError {
    let (code, field) = match e {
        EngineError::NotFound(m) if m.starts_with("snapshot") => (Code::NotFound, ""),
        EngineError::NotFound(_) => (Code::NotFound, "path"),
        EngineError::NotADirectory(_) | EngineError::NotAFile(_) | EngineError::TooLarge { .. } => {
            (Code::FailedPrecondition, "path")
        }
        EngineError::WrongPassword | EngineError::RepositoryNotFound(_) | EngineError::InvalidInput(_) => {
            (Code::FailedPrecondition, "")
        }
        EngineError::Backend(_) => (Code::Unavailable, ""),
        _ => (Code::Internal, ""),
    };
    QueryError { code: code as i32, message: e.to_string(), field: field.into() }
}

fn kind_of(k: EntryKind) -> EntryType {
    match k {
        EntryKind::File => EntryType::File,
        EntryKind::Dir => EntryType::Dir,
        EntryKind::Symlink => EntryType::Symlink,
        EntryKind::Device => EntryType::Device,
        EntryKind::CharDevice => EntryType::CharDevice,
        EntryKind::Fifo => EntryType::Fifo,
        EntryKind::Socket => EntryType::Socket,
    }
}

fn entry(e: &cairn_engine::Entry) -> SnapshotEntry {
    SnapshotEntry {
        name: e.name.clone(),
        path: e.path.clone(),
        r#type: kind_of(e.kind) as i32,
        size: e.size,
        mode: e.mode,
        mtime: e.mtime.map(to_timestamp),
        link_target: e.link_target.clone(),
        uid: e.uid,
        gid: e.gid,
        user: e.user.clone(),
        group: e.group.clone(),
        permissions: permissions(e.kind, e.mode),
    }
}

/// `ls -l` style: the kind, then the permission bits of restic's mode (Go `os.FileMode`).
fn permissions(kind: EntryKind, mode: u32) -> String {
    let t = match kind {
        EntryKind::Dir => 'd',
        EntryKind::Symlink => 'l',
        EntryKind::Device => 'b',
        EntryKind::CharDevice => 'c',
        EntryKind::Fifo => 'p',
        EntryKind::Socket => 's',
        EntryKind::File => '-',
    };
    std::iter::once(t)
        .chain("rwxrwxrwx".chars().enumerate().map(|(i, c)| if mode & (1 << (8 - i)) != 0 { c } else { '-' }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_read_the_kind_and_the_low_nine_bits() {
        assert_eq!(permissions(EntryKind::File, 0o644), "-rw-r--r--");
        assert_eq!(permissions(EntryKind::Dir, 0x8000_01ed), "drwxr-xr-x");
        assert_eq!(permissions(EntryKind::Symlink, 0o777), "lrwxrwxrwx");
    }
}
