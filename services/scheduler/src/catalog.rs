//! The scheduler's view of the catalog, over `CatalogInternalService` only (never its
//! tables). Task plans (what firing and leasing need, no secrets) are cached for a few
//! seconds because firing looks them up on every tick; resolved tasks with secrets are cached
//! for a moment so a burst of leases of one task costs one call. A task edit therefore reaches
//! firing within [`PLAN_TTL`].
//!
//! Every task is asked for by its project-scoped name (`projects/{p}/tasks/{id}`), and the
//! caches are keyed by (project, task): a schedule or job row can only ever reach the task of
//! its own project.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use cairn_api::{
    ids::{ConnectorId, TaskId},
    names::{self, Kind, ProjectId},
    v1::{
        ConnectionTest, Notification, OverlapPolicy, RecordConnectionTestRequest, ResolveConnectorRequest,
        ResolveTasksRequest, ResolvedConnector, ResolvedTask, TaskType,
        catalog_internal_service_client::CatalogInternalServiceClient, task::Options,
    },
};
use cairn_runtime::{grpc::ClientInterceptor, time::from_duration};
use tonic::{Code, codegen::InterceptedService, transport::Channel};

use crate::error::{Error, Result};

/// How long a cached plan is trusted by default.
pub const PLAN_TTL: Duration = Duration::from_secs(5);
/// How long resolved secrets are kept in memory.
const RESOLVED_TTL: Duration = Duration::from_secs(2);

/// A store a task touches, with its concurrency limit.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreLimit {
    /// Connector id.
    pub id: ConnectorId,
    /// Display name (for waiting reasons).
    pub display_name: String,
    /// `max_concurrent_jobs`.
    pub max_concurrent_jobs: i32,
    /// Jobs may initialise its repository: its first job runs alone.
    pub create_if_missing: bool,
}

/// What firing, RunTask and leasing need to know about a task.
#[derive(Debug, Clone)]
pub struct TaskPlan {
    /// Project.
    pub project: ProjectId,
    /// Id.
    pub id: TaskId,
    /// Display name.
    pub display_name: String,
    /// Type.
    pub task_type: TaskType,
    /// Every connector, any role.
    pub connector_ids: Vec<ConnectorId>,
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
    /// The source a BACKUP backs up: id and display name.
    pub source: Option<(ConnectorId, String)>,
    /// The recovery point objective of a BACKUP: the source's own, else the task's.
    pub rpo: Option<Duration>,
    /// The destination of a RESTORE.
    pub destination: Option<ConnectorId>,
    /// Each connector's worker selector (their union is `selector`).
    pub selectors: Vec<(ConnectorId, HashMap<String, String>)>,
    /// A fleet BACKUP (`backup.sources`): the sources its selector matches now, each backed
    /// up by its own job of every run (see [`TaskPlan::runs`]).
    pub fleet: Option<Vec<FleetSource>>,
}

/// A source of a fleet task.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetSource {
    /// Connector id.
    pub id: ConnectorId,
    /// Display name.
    pub display_name: String,
    /// Its worker selector.
    pub selector: HashMap<String, String>,
    /// Its own RPO, if any.
    pub rpo: Option<Duration>,
}

impl TaskPlan {
    /// The plan of each job one run makes: the plan itself, or for a fleet task one plan per
    /// matching source (its source, RPO and placement: the source's selector joins the task's,
    /// and wins a contradicting label). A fleet that matches nothing makes no job.
    #[must_use]
    pub fn runs(&self) -> Vec<TaskPlan> {
        let Some(fleet) = &self.fleet else { return vec![self.clone()] };
        fleet
            .iter()
            .map(|s| {
                let mut p = self.clone();
                p.fleet = None;
                p.source = Some((s.id, s.display_name.clone()));
                p.rpo = s.rpo.or(self.rpo);
                p.connector_ids.insert(0, s.id);
                p.selector.extend(s.selector.clone());
                p.selectors.insert(0, (s.id, s.selector.clone()));
                p
            })
            .collect()
    }

    /// Whether the task is a fleet task (its jobs share a run).
    #[must_use]
    pub fn is_fleet(&self) -> bool {
        self.fleet.is_some()
    }
}

/// A task's key in the caches: (project, id).
pub type TaskKey = (ProjectId, TaskId);

fn connector_id(c: &Option<ResolvedConnector>) -> Option<ConnectorId> {
    c.as_ref()
        .and_then(|c| c.connector.as_ref())
        .and_then(|c| names::parse_canonical(Kind::Connector, &c.name).ok())
        .map(|(_, id)| ConnectorId::from_uuid(id))
}

fn store_limit(c: &Option<ResolvedConnector>) -> Option<StoreLimit> {
    let conn = c.as_ref()?.connector.as_ref()?;
    let (_, id) = names::parse_canonical(Kind::Connector, &conn.name).ok()?;
    Some(StoreLimit {
        id: ConnectorId::from_uuid(id),
        display_name: conn.display_name.clone(),
        max_concurrent_jobs: conn.max_concurrent_jobs.max(1),
        create_if_missing: conn.create_if_missing,
    })
}

impl TaskPlan {
    /// Reads a plan from a resolved task.
    pub fn from_resolved(r: &ResolvedTask) -> Result<TaskPlan> {
        let t =
            r.task.as_ref().ok_or_else(|| Error::Internal("catalog returned a task without task".into()))?;
        let (project, id) = names::parse_canonical(Kind::Task, &t.name)
            .map_err(|e| Error::Internal(format!("task name: {e}")))?;
        let task_type = TaskType::try_from(t.r#type).unwrap_or_default();
        let secs = |d: &Option<prost_types::Duration>, default: u64| {
            d.as_ref().and_then(from_duration).unwrap_or(Duration::from_secs(default))
        };
        let retention = match &t.options {
            Some(Options::Backup(b)) => b.retention.clone(),
            Some(Options::Sync(s)) => s.retention.clone(),
            _ => None,
        };
        let source = r.source.as_ref().and_then(|c| c.connector.as_ref());
        let rpo_of = |d: Option<&prost_types::Duration>| d.and_then(from_duration).filter(|d| !d.is_zero());
        let rpo = match (&t.options, task_type) {
            (Some(Options::Backup(b)), TaskType::Backup) => {
                rpo_of(source.and_then(|c| c.rpo.as_ref()).or(b.rpo.as_ref()))
            }
            _ => None,
        };
        let fleet = match (&t.options, task_type) {
            (Some(Options::Backup(b)), TaskType::Backup) if b.sources.is_some() => Some(
                r.fleet
                    .iter()
                    .filter_map(|rc| {
                        let c = rc.connector.as_ref()?;
                        Some(FleetSource {
                            id: connector_id(&Some(rc.clone()))?,
                            display_name: c.display_name.clone(),
                            selector: c.worker_selector.clone(),
                            rpo: rpo_of(c.rpo.as_ref()),
                        })
                    })
                    .collect(),
            ),
            _ => None,
        };
        Ok(TaskPlan {
            project,
            id: TaskId::from_uuid(id),
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
            source: (task_type == TaskType::Backup)
                .then(|| connector_id(&r.source).zip(source.map(|c| c.display_name.clone())))
                .flatten(),
            rpo,
            destination: connector_id(&r.destination),
            selectors: [&r.source, &r.store, &r.destination, &r.target_store]
                .into_iter()
                .filter_map(|c| {
                    let sel = c.as_ref()?.connector.as_ref()?.worker_selector.clone();
                    Some((connector_id(c)?, sel))
                })
                .collect(),
            fleet,
        })
    }
}

type Client = CatalogInternalServiceClient<InterceptedService<Channel, ClientInterceptor>>;

#[derive(Debug, Default)]
struct Caches {
    plans: HashMap<TaskKey, (Instant, Option<Arc<TaskPlan>>)>,
    resolved: HashMap<TaskKey, (Instant, Option<Arc<ResolvedTask>>)>,
}

/// The catalog client with its caches; cheap to clone.
#[derive(Debug, Clone)]
pub struct Catalog {
    client: Client,
    caches: Arc<Mutex<Caches>>,
    plan_ttl: Duration,
}

/// Counts a call to the catalog by method (`cairn_scheduler_catalog_requests_total`), so
/// operators see what firing and leasing cost the catalog.
fn called(method: &'static str) {
    metrics::counter!("cairn_scheduler_catalog_requests_total", "method" => method).increment(1);
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
    pub fn new(
        url: &str,
        token: Option<&str>,
        tls: &cairn_runtime::tls::ClientTls,
        plan_ttl: Duration,
    ) -> std::result::Result<Self, String> {
        let channel = cairn_runtime::grpc::channel_with(url, tls)?;
        Ok(Catalog {
            client: CatalogInternalServiceClient::with_interceptor(channel, ClientInterceptor::new(token))
                .max_decoding_message_size(64 << 20),
            caches: Arc::default(),
            plan_ttl,
        })
    }

    /// Authenticates a credential (UNAUTHENTICATED passes through; an unreachable catalog is
    /// UNAVAILABLE, never a guess).
    pub async fn authenticate(
        &self,
        credential: &str,
    ) -> std::result::Result<cairn_runtime::auth::Principal, tonic::Status> {
        let mut req =
            tonic::Request::new(cairn_api::v1::AuthenticateRequest { credential: credential.to_owned() });
        req.set_timeout(Duration::from_secs(5));
        called("Authenticate");
        match self.client.clone().authenticate(req).await {
            Ok(r) => Ok(cairn_runtime::auth::Principal(r.into_inner())),
            Err(s) if s.code() == Code::Unauthenticated => Err(s),
            Err(s) => {
                tracing::warn!(error = %s.message(), "catalog could not authenticate a caller");
                Err(cairn_runtime::status::unavailable("the catalog (authentication)"))
            }
        }
    }

    async fn resolve(
        &self,
        names: Vec<String>,
        with_secrets: bool,
    ) -> Result<(Vec<ResolvedTask>, Vec<String>)> {
        let mut req = tonic::Request::new(ResolveTasksRequest { names, with_secrets });
        req.set_timeout(Duration::from_secs(10));
        called("ResolveTasks");
        let r = self.client.clone().resolve_tasks(req).await.map_err(unavailable)?.into_inner();
        Ok((r.tasks, r.missing))
    }

    /// Plans of these tasks (`None` = the task does not exist), from the cache when fresh.
    pub async fn plans(&self, ids: &[TaskKey]) -> Result<HashMap<TaskKey, Option<Arc<TaskPlan>>>> {
        let mut out = HashMap::new();
        let mut wanted = Vec::new();
        {
            let caches = self.caches.lock().map_err(|_| Error::Internal("cache poisoned".into()))?;
            for id in ids {
                match caches.plans.get(id) {
                    Some((at, plan)) if at.elapsed() < self.plan_ttl => {
                        out.insert(id.clone(), plan.clone());
                    }
                    _ => wanted.push(id.clone()),
                }
            }
        }
        wanted.sort();
        wanted.dedup();
        if wanted.is_empty() {
            return Ok(out);
        }
        let (found, _) = self.resolve(wanted.iter().map(|(p, id)| id.name(p)).collect(), false).await?;
        let now = Instant::now();
        let mut caches = self.caches.lock().map_err(|_| Error::Internal("cache poisoned".into()))?;
        for id in wanted {
            out.insert(id.clone(), None);
            caches.plans.insert(id, (now, None));
        }
        for r in &found {
            let plan = Arc::new(TaskPlan::from_resolved(r)?);
            let key = (plan.project.clone(), plan.id);
            // Only what was asked for: the catalog answers within the project of each name.
            if out.contains_key(&key) {
                out.insert(key.clone(), Some(plan.clone()));
                caches.plans.insert(key, (now, Some(plan)));
            }
        }
        Ok(out)
    }

    /// A fresh plan of a task by its full name (interactive calls); `None` = no such task in
    /// the project the name gives.
    pub async fn plan_fresh(
        &self,
        project: &ProjectId,
        reference: &names::Reference,
    ) -> Result<Option<Arc<TaskPlan>>> {
        let name = format!("{}/tasks/{reference}", project.name());
        let (found, _) = self.resolve(vec![name], false).await?;
        match found.first() {
            Some(r) => {
                let plan = Arc::new(TaskPlan::from_resolved(r)?);
                if plan.project != *project {
                    return Err(Error::Internal(
                        "the catalog answered with a task of another project".into(),
                    ));
                }
                if let Ok(mut c) = self.caches.lock() {
                    c.plans.insert((plan.project.clone(), plan.id), (Instant::now(), Some(plan.clone())));
                }
                Ok(Some(plan))
            }
            None => Ok(None),
        }
    }

    /// Resolved tasks with secrets, for leases (`None` = the task is gone).
    pub async fn resolved(&self, ids: &[TaskKey]) -> Result<HashMap<TaskKey, Option<Arc<ResolvedTask>>>> {
        let mut out = HashMap::new();
        let mut wanted = Vec::new();
        {
            let caches = self.caches.lock().map_err(|_| Error::Internal("cache poisoned".into()))?;
            for id in ids {
                match caches.resolved.get(id) {
                    Some((at, r)) if at.elapsed() < RESOLVED_TTL => {
                        out.insert(id.clone(), r.clone());
                    }
                    _ => wanted.push(id.clone()),
                }
            }
        }
        wanted.sort();
        wanted.dedup();
        if wanted.is_empty() {
            return Ok(out);
        }
        let (found, _) = self.resolve(wanted.iter().map(|(p, id)| id.name(p)).collect(), true).await?;
        let now = Instant::now();
        let mut caches = self.caches.lock().map_err(|_| Error::Internal("cache poisoned".into()))?;
        caches.resolved.retain(|_, (at, _)| at.elapsed() < RESOLVED_TTL);
        for id in wanted {
            out.insert(id, None);
        }
        for r in found {
            let Some(Ok((project, id))) =
                r.task.as_ref().map(|t| names::parse_canonical(Kind::Task, &t.name))
            else {
                continue;
            };
            let key = (project, TaskId::from_uuid(id));
            if !out.contains_key(&key) {
                continue;
            }
            let r = Arc::new(r);
            out.insert(key.clone(), Some(r.clone()));
            caches.resolved.insert(key, (now, Some(r)));
        }
        Ok(out)
    }

    /// A connector of a project by id or display name; `None` when it does not exist there.
    pub async fn connector(
        &self,
        project: &ProjectId,
        reference: &names::Reference,
        with_secrets: bool,
    ) -> Result<Option<ResolvedConnector>> {
        let name = format!("{}/connectors/{reference}", project.name());
        let mut req = tonic::Request::new(ResolveConnectorRequest { name, with_secrets });
        req.set_timeout(Duration::from_secs(10));
        called("ResolveConnector");
        match self.client.clone().resolve_connector(req).await {
            Ok(r) => Ok(Some(r.into_inner())),
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) if s.code() == Code::InvalidArgument => Ok(None),
            Err(s) => Err(unavailable(s)),
        }
    }

    /// Records a connection test verdict on its connector (best effort).
    pub async fn record_test(
        &self,
        project: &ProjectId,
        connector: ConnectorId,
        result: ConnectionTest,
    ) -> Result<()> {
        let mut req = tonic::Request::new(RecordConnectionTestRequest {
            connector: connector.name(project),
            result: Some(result),
        });
        req.set_timeout(Duration::from_secs(10));
        called("RecordConnectionTest");
        self.client.clone().record_connection_test(req).await.map_err(unavailable)?;
        Ok(())
    }

    /// The SOURCE connectors and BACKUP tasks of a project (no secrets).
    pub async fn coverage(&self, project: &ProjectId) -> Result<cairn_api::v1::ListBackupCoverageResponse> {
        let mut req =
            tonic::Request::new(cairn_api::v1::ListBackupCoverageRequest { parent: project.name() });
        req.set_timeout(Duration::from_secs(10));
        called("ListBackupCoverage");
        Ok(self.client.clone().list_backup_coverage(req).await.map_err(unavailable)?.into_inner())
    }

    /// Forgets a cached plan (after the catalog said the task is gone).
    pub fn forget(&self, key: &TaskKey) {
        if let Ok(mut c) = self.caches.lock() {
            c.plans.remove(key);
            c.resolved.remove(key);
        }
    }
}
