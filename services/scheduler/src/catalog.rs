//! The scheduler's view of the catalog, over `CatalogInternalService` only (never its
//! tables). Task plans (what firing and leasing need, no secrets) are cached for a few
//! seconds because firing looks them up on every tick; resolved tasks with secrets are cached
//! for a moment so a burst of leases of one task costs one call. A task edit therefore reaches
//! firing within [`PLAN_TTL`].

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use cairn_api::{
    names::{self, Kind},
    v1::{
        ConnectionTest, Notification, OverlapPolicy, RecordConnectionTestRequest, ResolveConnectorRequest,
        ResolveTasksRequest, ResolvedConnector, ResolvedTask, TaskType,
        catalog_internal_service_client::CatalogInternalServiceClient, task::Options,
    },
};
use cairn_runtime::{grpc::ClientInterceptor, time::from_duration};
use tonic::{Code, codegen::InterceptedService, transport::Channel};
use uuid::Uuid;

use crate::error::{Error, Result};

/// How long a cached plan is trusted by default.
pub const PLAN_TTL: Duration = Duration::from_secs(5);
/// How long resolved secrets are kept in memory.
const RESOLVED_TTL: Duration = Duration::from_secs(2);

/// A store a task touches, with its concurrency limit.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreLimit {
    /// Connector id.
    pub id: Uuid,
    /// Display name (for waiting reasons).
    pub display_name: String,
    /// `max_concurrent_jobs`.
    pub max_concurrent_jobs: i32,
}

/// What firing, RunTask and leasing need to know about a task.
#[derive(Debug, Clone)]
pub struct TaskPlan {
    /// Id.
    pub id: Uuid,
    /// Display name.
    pub display_name: String,
    /// Type.
    pub task_type: TaskType,
    /// Every connector, any role.
    pub connector_ids: Vec<Uuid>,
    /// Stores touched (store, target store).
    pub stores: Vec<StoreLimit>,
    /// Holds its stores exclusively (PRUNE).
    pub exclusive: bool,
    /// Worker selector (union of the connectors').
    pub selector: HashMap<String, String>,
    /// Overlap policy.
    pub overlap: OverlapPolicy,
    /// Attempts.
    pub max_attempts: i32,
    /// First retry delay.
    pub initial_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// Run time limit.
    pub timeout: Option<Duration>,
    /// Notification settings.
    pub notification: Notification,
    /// Labels (for the snapshot filter of simulations).
    pub labels: Vec<String>,
    /// Retention policy of BACKUP/SYNC, if any.
    pub retention: Option<cairn_api::v1::RetentionPolicy>,
}

fn connector_id(c: &Option<ResolvedConnector>) -> Option<Uuid> {
    c.as_ref().and_then(|c| c.connector.as_ref()).and_then(|c| names::parse_id(Kind::Connector, &c.name).ok())
}

fn store_limit(c: &Option<ResolvedConnector>) -> Option<StoreLimit> {
    let conn = c.as_ref()?.connector.as_ref()?;
    Some(StoreLimit {
        id: names::parse_id(Kind::Connector, &conn.name).ok()?,
        display_name: conn.display_name.clone(),
        max_concurrent_jobs: conn.max_concurrent_jobs.max(1),
    })
}

impl TaskPlan {
    /// Reads a plan from a resolved task.
    pub fn from_resolved(r: &ResolvedTask) -> Result<TaskPlan> {
        let t =
            r.task.as_ref().ok_or_else(|| Error::Internal("catalog returned a task without task".into()))?;
        let id =
            names::parse_id(Kind::Task, &t.name).map_err(|e| Error::Internal(format!("task name: {e}")))?;
        let task_type = TaskType::try_from(t.r#type).unwrap_or_default();
        let secs = |d: &Option<prost_types::Duration>, default: u64| {
            d.as_ref().and_then(from_duration).unwrap_or(Duration::from_secs(default))
        };
        let retention = match &t.options {
            Some(Options::Backup(b)) => b.retention.clone(),
            Some(Options::Sync(s)) => s.retention.clone(),
            _ => None,
        };
        Ok(TaskPlan {
            id,
            display_name: t.display_name.clone(),
            task_type,
            connector_ids: [&r.source, &r.store, &r.destination, &r.target_store]
                .into_iter()
                .filter_map(connector_id)
                .collect(),
            stores: [&r.store, &r.target_store].into_iter().filter_map(store_limit).collect(),
            exclusive: task_type == TaskType::Prune,
            selector: t.worker_selector.clone(),
            overlap: match OverlapPolicy::try_from(t.overlap_policy).unwrap_or_default() {
                OverlapPolicy::Unspecified => OverlapPolicy::Skip,
                p => p,
            },
            max_attempts: t.max_attempts.max(1),
            initial_backoff: secs(&t.initial_backoff, 10),
            max_backoff: secs(&t.max_backoff, 600),
            timeout: t.timeout.as_ref().and_then(from_duration).filter(|d| !d.is_zero()),
            notification: t.notification.clone().unwrap_or_default(),
            labels: t.labels.clone(),
            retention,
        })
    }
}

type Client = CatalogInternalServiceClient<InterceptedService<Channel, ClientInterceptor>>;

#[derive(Debug, Default)]
struct Caches {
    plans: HashMap<Uuid, (Instant, Option<Arc<TaskPlan>>)>,
    resolved: HashMap<Uuid, (Instant, Option<Arc<ResolvedTask>>)>,
}

/// The catalog client with its caches; cheap to clone.
#[derive(Debug, Clone)]
pub struct Catalog {
    client: Client,
    caches: Arc<Mutex<Caches>>,
    plan_ttl: Duration,
}

fn unavailable(s: tonic::Status) -> Error {
    match s.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => {
            tracing::warn!(error = %s.message(), "catalog call failed");
            Error::Unavailable("the catalog".into())
        }
        _ => s.into(),
    }
}

impl Catalog {
    /// A client of the catalog at `url` (connects lazily) trusting cached plans for `plan_ttl`.
    pub fn new(url: &str, token: Option<&str>, plan_ttl: Duration) -> std::result::Result<Self, String> {
        let channel = cairn_runtime::grpc::channel(url)?;
        Ok(Catalog {
            client: CatalogInternalServiceClient::with_interceptor(channel, ClientInterceptor::new(token))
                .max_decoding_message_size(64 << 20),
            caches: Arc::default(),
            plan_ttl,
        })
    }

    async fn resolve(
        &self,
        names: Vec<String>,
        with_secrets: bool,
    ) -> Result<(Vec<ResolvedTask>, Vec<String>)> {
        let mut req = tonic::Request::new(ResolveTasksRequest { names, with_secrets });
        req.set_timeout(Duration::from_secs(10));
        let r = self.client.clone().resolve_tasks(req).await.map_err(unavailable)?.into_inner();
        Ok((r.tasks, r.missing))
    }

    /// Plans of these tasks (`None` = the task does not exist), from the cache when fresh.
    pub async fn plans(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Option<Arc<TaskPlan>>>> {
        let mut out = HashMap::new();
        let mut wanted = Vec::new();
        {
            let caches = self.caches.lock().map_err(|_| Error::Internal("cache poisoned".into()))?;
            for id in ids {
                match caches.plans.get(id) {
                    Some((at, plan)) if at.elapsed() < self.plan_ttl => {
                        out.insert(*id, plan.clone());
                    }
                    _ => wanted.push(*id),
                }
            }
        }
        wanted.sort();
        wanted.dedup();
        if wanted.is_empty() {
            return Ok(out);
        }
        let (found, _) = self.resolve(wanted.iter().map(|id| Kind::Task.name(*id)).collect(), false).await?;
        let now = Instant::now();
        let mut caches = self.caches.lock().map_err(|_| Error::Internal("cache poisoned".into()))?;
        for id in wanted {
            out.insert(id, None);
            caches.plans.insert(id, (now, None));
        }
        for r in &found {
            let plan = Arc::new(TaskPlan::from_resolved(r)?);
            out.insert(plan.id, Some(plan.clone()));
            caches.plans.insert(plan.id, (now, Some(plan)));
        }
        Ok(out)
    }

    /// A fresh plan of a task by id or display name (interactive calls); `None` = no such task.
    pub async fn plan_fresh(&self, raw: &str) -> Result<Option<Arc<TaskPlan>>> {
        let (found, _) = self.resolve(vec![raw.to_owned()], false).await?;
        match found.first() {
            Some(r) => {
                let plan = Arc::new(TaskPlan::from_resolved(r)?);
                if let Ok(mut c) = self.caches.lock() {
                    c.plans.insert(plan.id, (Instant::now(), Some(plan.clone())));
                }
                Ok(Some(plan))
            }
            None => Ok(None),
        }
    }

    /// Resolved tasks with secrets, for leases (`None` = the task is gone).
    pub async fn resolved(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Option<Arc<ResolvedTask>>>> {
        let mut out = HashMap::new();
        let mut wanted = Vec::new();
        {
            let caches = self.caches.lock().map_err(|_| Error::Internal("cache poisoned".into()))?;
            for id in ids {
                match caches.resolved.get(id) {
                    Some((at, r)) if at.elapsed() < RESOLVED_TTL => {
                        out.insert(*id, r.clone());
                    }
                    _ => wanted.push(*id),
                }
            }
        }
        wanted.sort();
        wanted.dedup();
        if wanted.is_empty() {
            return Ok(out);
        }
        let (found, _) = self.resolve(wanted.iter().map(|id| Kind::Task.name(*id)).collect(), true).await?;
        let now = Instant::now();
        let mut caches = self.caches.lock().map_err(|_| Error::Internal("cache poisoned".into()))?;
        caches.resolved.retain(|_, (at, _)| at.elapsed() < RESOLVED_TTL);
        for id in wanted {
            out.insert(id, None);
        }
        for r in found {
            let Ok(id) = r.task.as_ref().map(|t| names::parse_id(Kind::Task, &t.name)).transpose() else {
                continue;
            };
            let Some(id) = id else { continue };
            let r = Arc::new(r);
            out.insert(id, Some(r.clone()));
            caches.resolved.insert(id, (now, Some(r)));
        }
        Ok(out)
    }

    /// A connector by id or display name; `None` when it does not exist.
    pub async fn connector(&self, raw: &str, with_secrets: bool) -> Result<Option<ResolvedConnector>> {
        let mut req = tonic::Request::new(ResolveConnectorRequest { name: raw.to_owned(), with_secrets });
        req.set_timeout(Duration::from_secs(10));
        match self.client.clone().resolve_connector(req).await {
            Ok(r) => Ok(Some(r.into_inner())),
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) if s.code() == Code::InvalidArgument => Ok(None),
            Err(s) => Err(unavailable(s)),
        }
    }

    /// Records a connection test verdict on its connector (best effort).
    pub async fn record_test(&self, connector: Uuid, result: ConnectionTest) -> Result<()> {
        let mut req = tonic::Request::new(RecordConnectionTestRequest {
            connector: Kind::Connector.name(connector),
            result: Some(result),
        });
        req.set_timeout(Duration::from_secs(10));
        self.client.clone().record_connection_test(req).await.map_err(unavailable)?;
        Ok(())
    }

    /// Forgets a cached plan (after the catalog said the task is gone).
    pub fn forget(&self, id: Uuid) {
        if let Ok(mut c) = self.caches.lock() {
            c.plans.remove(&id);
            c.resolved.remove(&id);
        }
    }
}
