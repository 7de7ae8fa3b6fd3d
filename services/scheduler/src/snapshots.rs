//! The snapshot index: refreshed by every job that reads a store (the worker sends the full
//! list, which replaces the store's entries, so a store changed by another tool converges on
//! the next job), listed without opening stores, and the input of retention simulations.

use cairn_api::{
    names::{self, Kind},
    v1::{
        ListSnapshotsRequest, ListSnapshotsResponse, RetentionDecision, SimulateRetentionRequest,
        SimulateRetentionResponse, Snapshot, StoreSnapshots, simulate_retention_request::Source,
    },
};
use cairn_runtime::{
    pagination,
    status::Violations,
    time::{from_timestamp, to_timestamp},
};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    State,
    error::{Error, Result},
};

/// The tag that names the task of a snapshot.
pub const TASK_TAG: &str = "cairn-task=";

#[derive(Debug, Clone, sqlx::FromRow)]
struct Row {
    store_id: Uuid,
    id: String,
    task_id: Option<Uuid>,
    time: DateTime<Utc>,
    labels: Vec<String>,
    paths: Vec<String>,
    hostname: String,
    parent: String,
    total_files: i64,
    total_bytes: i64,
    bytes_added: i64,
    job_id: Option<Uuid>,
}

fn to_proto(r: &Row) -> Snapshot {
    Snapshot {
        name: format!("connectors/{}/snapshots/{}", r.store_id, r.id),
        id: r.id.clone(),
        short_id: r.id.chars().take(8).collect(),
        store: Kind::Connector.name(r.store_id),
        task: r.task_id.map(|t| Kind::Task.name(t)).unwrap_or_default(),
        time: Some(to_timestamp(r.time)),
        labels: r.labels.clone(),
        paths: r.paths.clone(),
        hostname: r.hostname.clone(),
        parent: r.parent.clone(),
        total_files: r.total_files,
        total_bytes: r.total_bytes,
        bytes_added: r.bytes_added,
        job: r.job_id.map(|j| Kind::Job.name(j)).unwrap_or_default(),
    }
}

/// The task named by a snapshot's `cairn-task=<id>` tag.
pub fn task_of(labels: &[String]) -> Option<Uuid> {
    labels.iter().find_map(|l| l.strip_prefix(TASK_TAG)).and_then(|id| Uuid::parse_str(id).ok())
}

/// Replaces the index of each store with the lists a job reported.
pub async fn refresh(
    conn: &mut PgConnection,
    lists: &[StoreSnapshots],
    job: Uuid,
    now: DateTime<Utc>,
) -> Result<()> {
    for list in lists {
        let store = names::parse_id(Kind::Connector, &list.store)
            .map_err(|e| Error::invalid("snapshot_index.store", e.to_string()))?;
        let ids: Vec<String> = list.snapshots.iter().map(|s| s.id.clone()).collect();
        sqlx::query("DELETE FROM snapshots WHERE store_id = $1 AND NOT (id = ANY($2))")
            .bind(store)
            .bind(&ids)
            .execute(&mut *conn)
            .await?;
        for s in &list.snapshots {
            let time = s.time.as_ref().and_then(from_timestamp).unwrap_or(now);
            sqlx::query(
                "INSERT INTO snapshots (store_id, id, task_id, time, labels, paths, hostname, parent, total_files,
                                        total_bytes, bytes_added, job_id, seen_time)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                 ON CONFLICT (store_id, id) DO UPDATE SET labels = EXCLUDED.labels, task_id = EXCLUDED.task_id,
                     time = EXCLUDED.time, seen_time = EXCLUDED.seen_time,
                     job_id = COALESCE(snapshots.job_id, EXCLUDED.job_id)",
            )
            .bind(store)
            .bind(&s.id)
            .bind(task_of(&s.labels))
            .bind(time)
            .bind(&s.labels)
            .bind(&s.paths)
            .bind(&s.hostname)
            .bind(&s.parent)
            .bind(s.total_files)
            .bind(s.total_bytes)
            .bind(s.bytes_added)
            .bind(if s.job.is_empty() { None } else { names::parse_id(Kind::Job, &s.job).ok().or(Some(job)) })
            .bind(now)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

#[derive(Debug, Default, Hash)]
struct Filter {
    store: Option<Uuid>,
    task: Option<Uuid>,
    labels: Vec<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
}

async fn query(
    conn: &mut PgConnection,
    f: &Filter,
    before: Option<(DateTime<Utc>, Uuid, String)>,
    limit: i64,
) -> Result<Vec<Row>> {
    Ok(sqlx::query_as(
        "SELECT store_id, id, task_id, time, labels, paths, hostname, parent, total_files, total_bytes, bytes_added,
                job_id
         FROM snapshots
         WHERE ($1::timestamptz IS NULL OR (time, store_id, id) < ($1, $2, $3))
           AND ($4::uuid IS NULL OR store_id = $4) AND ($5::uuid IS NULL OR task_id = $5)
           AND labels @> $6 AND ($7::timestamptz IS NULL OR time >= $7) AND ($8::timestamptz IS NULL OR time < $8)
         ORDER BY time DESC, store_id DESC, id DESC LIMIT $9",
    )
    .bind(before.as_ref().map(|b| b.0))
    .bind(before.as_ref().map(|b| b.1))
    .bind(before.as_ref().map(|b| b.2.clone()))
    .bind(f.store)
    .bind(f.task)
    .bind(&f.labels)
    .bind(f.from)
    .bind(f.to)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// ListSnapshots.
pub async fn list(state: &State, req: ListSnapshotsRequest) -> Result<ListSnapshotsResponse> {
    let size = pagination::page_size(req.page_size)?;
    let mut v = Violations::default();
    let ts = |t: &Option<prost_types::Timestamp>, field: &str, v: &mut Violations| match t {
        None => None,
        Some(t) => from_timestamp(t).or_else(|| {
            v.add(field, "is not a valid timestamp");
            None
        }),
    };
    let from = ts(&req.time_from, "time_from", &mut v);
    let to = ts(&req.time_to, "time_to", &mut v);
    v.check()?;
    let filter = Filter {
        store: crate::jobs::connector_id(state, "store", &req.store).await?,
        task: crate::jobs::task_id(state, "task", &req.task).await?,
        labels: req.labels.clone(),
        from,
        to,
    };
    let fp = pagination::fingerprint(&filter);
    let before: Option<(DateTime<Utc>, Uuid, String)> = pagination::decode(&req.page_token, fp)?;
    let mut conn = state.pool.acquire().await?;
    let mut page = query(&mut conn, &filter, before, size + 1).await?;
    let next = if page.len() as i64 > size {
        page.truncate(size as usize);
        page.last().map(|r| pagination::encode(&(r.time, r.store_id, r.id.clone()), fp)).unwrap_or_default()
    } else {
        String::new()
    };
    Ok(ListSnapshotsResponse { snapshots: page.iter().map(to_proto).collect(), next_page_token: next })
}

/// SimulateRetention: decisions for every snapshot; nothing changes.
pub async fn simulate(state: &State, req: SimulateRetentionRequest) -> Result<SimulateRetentionResponse> {
    let raw: cairn_retention::RawPolicy = req.policy.as_ref().map(Into::into).unwrap_or_default();
    let policy = cairn_retention::Policy::from_raw(&raw).map_err(|e| {
        let field = e.field().map(|f| format!("policy.{f}")).unwrap_or_else(|| "policy".into());
        Error::invalid(field, e.to_string())
    })?;
    let snaps: Vec<cairn_retention::Snapshot> = match req.source {
        None => return Err(Error::invalid("source", "is required: stored (store + task) or snapshots")),
        Some(Source::Snapshots(list)) => {
            let mut v = Violations::default();
            let mut seen = std::collections::HashSet::new();
            let mut out = Vec::with_capacity(list.items.len());
            for (i, s) in list.items.iter().enumerate() {
                if s.id.is_empty() {
                    v.add(format!("snapshots.items[{i}].id"), "is required");
                } else if !seen.insert(s.id.clone()) {
                    v.add(format!("snapshots.items[{i}].id"), format!("{:?} is listed twice", s.id));
                }
                match s.time.as_ref().and_then(from_timestamp) {
                    Some(time) => out.push(cairn_retention::Snapshot {
                        id: s.id.clone(),
                        time,
                        labels: s.labels.clone(),
                    }),
                    None => v.add(format!("snapshots.items[{i}].time"), "is required"),
                }
            }
            v.check()?;
            out
        }
        Some(Source::Stored(stored)) => {
            if stored.store.trim().is_empty() {
                return Err(Error::invalid("stored.store", "is required"));
            }
            if stored.task.trim().is_empty() {
                return Err(Error::invalid("stored.task", "is required"));
            }
            let store = crate::jobs::connector_id(state, "stored.store", &stored.store).await?;
            let task = crate::jobs::task_id(state, "stored.task", &stored.task).await?;
            let filter = Filter { store, task, ..Default::default() };
            let mut conn = state.pool.acquire().await?;
            let mut out = Vec::new();
            let mut before = None;
            loop {
                let page = query(&mut conn, &filter, before.clone(), 1000).await?;
                let Some(last) = page.last() else { break };
                before = Some((last.time, last.store_id, last.id.clone()));
                out.extend(page.iter().map(|r| cairn_retention::Snapshot {
                    id: r.id.clone(),
                    time: r.time,
                    labels: r.labels.clone(),
                }));
            }
            out.reverse();
            out
        }
    };
    let decisions = cairn_retention::apply(&policy, &snaps, state.clock.now());
    Ok(SimulateRetentionResponse {
        decisions: decisions
            .into_iter()
            .map(|d| RetentionDecision {
                snapshot_id: d.id,
                time: Some(to_timestamp(d.time)),
                keep: d.keep,
                reasons: d.reasons,
            })
            .collect(),
    })
}
