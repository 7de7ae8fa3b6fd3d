//! The snapshot index: refreshed by every job that reads a store (the worker sends the full
//! list, which replaces the store's entries, so a store changed by another tool converges on
//! the next job), listed without opening stores, and the input of retention simulations.
//! A job reports only stores of its own project; anything else is refused.

use std::collections::HashMap;

use cairn_api::{
    ids::{ConnectorId, JobId, TaskId},
    names::{self, Kind, ProjectId},
    v1::{
        ListSnapshotsRequest, ListSnapshotsResponse, RetentionDecision, SimulateRetentionRequest,
        SimulateRetentionResponse, StoreSnapshots, simulate_retention_request::Source,
    },
};
use cairn_runtime::{
    pagination,
    status::Violations,
    time::{from_timestamp, to_timestamp},
};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use cairn_runtime::auth::Caller;

use crate::{
    State,
    error::{Error, Result},
    resolve,
    store::snapshots::{self as rows, Cursor, Filter, Row},
};

/// The tag that names the task of a snapshot.
pub const TASK_TAG: &str = "cairn-task=";

/// The task named by a snapshot's `cairn-task=<id>` tag.
pub fn task_of(labels: &[String]) -> Option<TaskId> {
    labels.iter().find_map(|l| l.strip_prefix(TASK_TAG)).and_then(|id| id.parse().ok())
}

/// The stores of a job's report, which must all be of the job's project; checked before the
/// completion writes anything.
pub fn stores_of(project: &ProjectId, lists: &[StoreSnapshots]) -> Result<Vec<ConnectorId>> {
    lists
        .iter()
        .enumerate()
        .map(|(i, list)| match names::parse_canonical(Kind::Connector, &list.store) {
            Ok((p, id)) if p == *project => Ok(ConnectorId::from_uuid(id)),
            Ok(_) => Err(Error::invalid(
                format!("snapshot_index[{i}].store"),
                format!("{:?} is not a store of the job's project", list.store),
            )),
            Err(e) => Err(Error::invalid(format!("snapshot_index[{i}].store"), e.to_string())),
        })
        .collect()
}

/// Replaces the index of each store with the lists a job of `project` reported; `made` is
/// the snapshot the job itself produced, which the index attributes to it.
pub async fn refresh(
    conn: &mut PgConnection,
    project: &ProjectId,
    lists: &[StoreSnapshots],
    job: JobId,
    made: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    let stores = stores_of(project, lists)?;
    for (list, store) in lists.iter().zip(stores) {
        let ids: Vec<String> = list.snapshots.iter().map(|s| s.id.clone()).collect();
        rows::delete_missing(conn, project, store, &ids).await?;
        for s in &list.snapshots {
            let row = Row {
                project_id: project.clone(),
                store_id: store,
                id: s.id.clone(),
                task_id: task_of(&s.labels),
                time: s.time.as_ref().and_then(from_timestamp).unwrap_or(now),
                labels: s.labels.clone(),
                paths: s.paths.clone(),
                hostname: s.hostname.clone(),
                parent: s.parent.clone(),
                total_files: s.total_files,
                total_bytes: s.total_bytes,
                bytes_added: s.bytes_added,
                job_id: if s.job.is_empty() {
                    (!made.is_empty() && s.id == made).then_some(job)
                } else {
                    names::parse_canonical(Kind::Job, &s.job)
                        .ok()
                        .map(|(_, id)| JobId::from_uuid(id))
                        .or(Some(job))
                },
            };
            rows::upsert(conn, &row, now).await?;
        }
    }
    Ok(())
}

/// ListSnapshots.
pub async fn list(
    state: &State,
    caller: &Caller,
    req: ListSnapshotsRequest,
) -> Result<ListSnapshotsResponse> {
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
    let (project, scope) = resolve::list_parent(caller, &req.parent)?;
    v.check()?;
    let id_prefix = (!req.snapshot.trim().is_empty())
        .then(|| resolve::snapshot_id("snapshot", &req.snapshot))
        .transpose()?;
    let filter = Filter {
        store: resolve::connector_id(state, "store", project.as_ref(), &req.store).await?,
        task: resolve::task_id(state, "task", project.as_ref(), &req.task).await?,
        labels: req.labels.clone(),
        from,
        to,
        id_prefix,
    };
    let resolve::ListQuery { aip, order, resolved } = resolve::list_query(
        state,
        project.as_ref(),
        (&req.filter, rows::FILTER_FIELDS),
        (&req.order_by, rows::ORDER_FIELDS, pagination::OrderBy { field: "time", desc: true }),
    )
    .await?;
    let fp = pagination::fingerprint(&(&filter, &scope, req.filter.trim(), order));
    let before: Option<Cursor> = pagination::decode(&req.page_token, fp)?;
    let query = rows::Query {
        project: scope.as_deref(),
        filter: &filter,
        aip: &aip,
        resolved: &resolved,
        ascending: !order.desc,
        after: before.as_ref(),
        limit: size + 1,
    };
    let mut conn = state.pool.acquire().await?;
    let mut page = rows::list(&mut conn, &query).await?;
    let total = rows::count(&mut conn, &query).await?;
    let next = pagination::next_page(&mut page, size, fp, |r| (r.time, r.store_id, r.id.clone()));
    Ok(ListSnapshotsResponse {
        snapshots: page.iter().map(crate::convert::snapshot).collect(),
        next_page_token: next,
        total_size: i32::try_from(total).unwrap_or(i32::MAX),
    })
}

/// SimulateRetention: decisions for every snapshot; nothing changes.
pub async fn simulate(
    state: &State,
    caller: &Caller,
    req: SimulateRetentionRequest,
) -> Result<SimulateRetentionResponse> {
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
            let (project, _) = resolve::full(caller, Kind::Connector, "stored.store", &stored.store)?;
            caller.require_role(&project, cairn_runtime::auth::Role::Viewer)?;
            let store = resolve::connector_id(state, "stored.store", Some(&project), &stored.store).await?;
            let task = resolve::task_id(state, "stored.task", Some(&project), &stored.task).await?;
            let filter = Filter { store, task, ..Default::default() };
            let (none, resolved) = (cairn_runtime::filter::Filter::none(rows::FILTER_FIELDS), HashMap::new());
            let mut conn = state.pool.acquire().await?;
            let mut out = Vec::new();
            let mut before: Option<Cursor> = None;
            loop {
                let query = rows::Query {
                    project: Some(std::slice::from_ref(&project)),
                    filter: &filter,
                    aip: &none,
                    resolved: &resolved,
                    ascending: false,
                    after: before.as_ref(),
                    limit: 1000,
                };
                let page = rows::list(&mut conn, &query).await?;
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
