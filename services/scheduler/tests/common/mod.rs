//! A real stack for scheduler tests: one fresh database, the real catalog and one or more
//! real scheduler replicas on port 0, and a scripted worker speaking the real LeaseService.

#![allow(dead_code)]

pub mod front;

use std::{collections::HashMap, sync::Arc, time::Duration};

use cairn_api::v1::{
    AcquireLeaseRequest, CompleteJobRequest, Connector, CreateConnectorRequest, CreateScheduleRequest,
    CreateTaskRequest, GetJobRequest, HeartbeatRequest, HeartbeatResponse, Job, JobSucceeded, Lease,
    LocalPathSource, LocalStore, OverlapPolicy, Recurrence, RunTaskRequest, Schedule, Task, TaskType,
    catalog_service_client::CatalogServiceClient, complete_job_request::Outcome, connector::Config as Cfg,
    job_service_client::JobServiceClient, lease_service_client::LeaseServiceClient,
    schedule_service_client::ScheduleServiceClient,
};
use cairn_runtime::CancellationToken;
use cairn_scheduler::{ManualClock, SharedClock};
use cairn_testkit::TestDatabase;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

pub const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// The project the helpers work in unless told otherwise.
pub const DEFAULT: &str = "projects/default";

/// A full name in the default project of what a test calls a resource (full names pass).
pub fn full(collection: &str, raw: &str) -> String {
    if raw.contains('/') { raw.to_owned() } else { format!("{DEFAULT}/{collection}/{raw}") }
}

pub struct Replica {
    pub url: String,
    pub shutdown: CancellationToken,
    pub handle: JoinHandle<anyhow::Result<()>>,
}

impl Replica {
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(20), self.handle).await;
    }
    pub async fn jobs(&self) -> JobServiceClient<Channel> {
        JobServiceClient::connect(self.url.clone()).await.unwrap()
    }
    pub async fn schedules(&self) -> ScheduleServiceClient<Channel> {
        ScheduleServiceClient::connect(self.url.clone()).await.unwrap()
    }
    pub async fn leases(&self) -> LeaseServiceClient<Channel> {
        LeaseServiceClient::connect(self.url.clone()).await.unwrap()
    }
}

pub struct Stack {
    pub db: TestDatabase,
    pub catalog_url: String,
    pub catalog: CatalogServiceClient<Channel>,
    catalog_shutdown: CancellationToken,
    pub pool: PgPool,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.catalog_shutdown.cancel();
    }
}

pub async fn stack() -> Stack {
    let db = cairn_testkit::database().await;
    let listener = cairn_runtime::grpc::bind(([127, 0, 0, 1], 0).into()).await.unwrap();
    let catalog_url = format!("http://{}", listener.local_addr().unwrap());
    // Connection tests and deletions reach no scheduler here; firing drops orphans anyway.
    let config = cairn_catalog::Config {
        auth_disabled: true,
        database_url: Some(db.url().to_owned()),
        secret_key: Some(KEY.into()),
        scheduler_url: "http://127.0.0.1:9".into(),
        ..Default::default()
    };
    let catalog_shutdown = CancellationToken::new();
    tokio::spawn(cairn_catalog::run(config, listener, catalog_shutdown.clone()));
    cairn_testkit::wait_serving(&catalog_url, "cairn.v1.CatalogService").await;
    let catalog = CatalogServiceClient::connect(catalog_url.clone()).await.unwrap();
    let pool = PgPool::connect(db.url()).await.unwrap();
    Stack { db, catalog_url, catalog, catalog_shutdown, pool }
}

impl Stack {
    pub fn config(&self) -> cairn_scheduler::Config {
        cairn_scheduler::Config {
            auth_disabled: true,
            database_url: Some(self.db.url().to_owned()),
            catalog_url: self.catalog_url.clone(),
            ..Default::default()
        }
    }

    pub async fn replica(
        &self,
        clock: Option<Arc<ManualClock>>,
        tweak: impl FnOnce(&mut cairn_scheduler::Config),
    ) -> Replica {
        let listener = cairn_runtime::grpc::bind(([127, 0, 0, 1], 0).into()).await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let mut cfg = self.config();
        tweak(&mut cfg);
        let shutdown = CancellationToken::new();
        let handle = match clock {
            Some(c) => {
                let shared: SharedClock = c;
                tokio::spawn(cairn_scheduler::run_with_clock(cfg, listener, shutdown.clone(), None, shared))
            }
            None => tokio::spawn(cairn_scheduler::run(cfg, listener, shutdown.clone())),
        };
        cairn_testkit::wait_serving(&url, "cairn.v1.LeaseService").await;
        Replica { url, shutdown, handle }
    }

    pub async fn connector(&self, c: Connector) -> Connector {
        self.connector_in(DEFAULT, c).await
    }

    pub async fn connector_in(&self, parent: &str, c: Connector) -> Connector {
        self.catalog
            .clone()
            .create_connector(CreateConnectorRequest {
                parent: parent.into(),
                connector: Some(c),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
    }

    /// Creates a project.
    pub async fn project(&self, id: &str) -> cairn_api::v1::Project {
        self.catalog
            .clone()
            .create_project(cairn_api::v1::CreateProjectRequest {
                project: Some(cairn_api::v1::Project { display_name: id.into(), ..Default::default() }),
                project_id: id.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
    }

    pub async fn source(&self, name: &str, selector: &[(&str, &str)]) -> Connector {
        self.connector(Connector {
            display_name: name.into(),
            config: Some(Cfg::LocalPathSource(LocalPathSource {
                paths: vec!["/data".into()],
                ..Default::default()
            })),
            worker_selector: selector.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
            ..Default::default()
        })
        .await
    }

    pub async fn store(&self, name: &str, max: i32) -> Connector {
        self.connector(Connector {
            display_name: name.into(),
            config: Some(Cfg::LocalStore(LocalStore { path: format!("/srv/{name}") })),
            repository_password: "pw".into(),
            max_concurrent_jobs: max,
            ..Default::default()
        })
        .await
    }

    pub async fn task(&self, t: Task) -> Task {
        self.task_in(DEFAULT, t).await
    }

    pub async fn task_in(&self, parent: &str, t: Task) -> Task {
        self.catalog
            .clone()
            .create_task(CreateTaskRequest { parent: parent.into(), task: Some(t), ..Default::default() })
            .await
            .unwrap()
            .into_inner()
    }

    /// A BACKUP task of a fresh source into `store`.
    pub async fn backup(
        &self,
        name: &str,
        store: &str,
        policy: OverlapPolicy,
        tweak: impl FnOnce(&mut Task),
    ) -> Task {
        let src = format!("{name}-src");
        self.source(&src, &[]).await;
        let mut t = Task {
            display_name: name.into(),
            r#type: TaskType::Backup as i32,
            source: src,
            store: store.into(),
            overlap_policy: policy as i32,
            ..Default::default()
        };
        tweak(&mut t);
        self.task(t).await
    }
}

pub fn calendar(expr: &str) -> Option<Recurrence> {
    Some(Recurrence { kind: Some(cairn_api::v1::recurrence::Kind::Calendar(expr.into())) })
}

pub fn interval(minutes: i32) -> Option<Recurrence> {
    Some(Recurrence {
        kind: Some(cairn_api::v1::recurrence::Kind::Interval(cairn_api::v1::Interval {
            days: 0,
            hours: 0,
            minutes,
        })),
    })
}

pub async fn schedule(r: &Replica, s: Schedule) -> Schedule {
    schedule_in(r, DEFAULT, s).await
}

pub async fn schedule_in(r: &Replica, parent: &str, s: Schedule) -> Schedule {
    r.schedules()
        .await
        .create_schedule(CreateScheduleRequest {
            parent: parent.into(),
            schedule: Some(s),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

pub async fn run(r: &Replica, task: &str) -> Job {
    r.jobs()
        .await
        .run_task(RunTaskRequest { task: full("tasks", task), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
}

pub async fn job(r: &Replica, name: &str) -> Job {
    r.jobs().await.get_job(GetJobRequest { name: full("jobs", name), view: 2 }).await.unwrap().into_inner()
}

/// A worker that does exactly what the test says, over the real LeaseService.
pub struct Worker {
    pub id: String,
    pub labels: HashMap<String, String>,
    /// Projects served (empty = all).
    pub projects: Vec<String>,
    pub client: LeaseServiceClient<Channel>,
}

impl Worker {
    pub async fn new(r: &Replica, id: &str, labels: &[(&str, &str)]) -> Worker {
        Worker {
            id: id.into(),
            labels: labels.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
            projects: vec![],
            client: r.leases().await,
        }
    }

    pub async fn acquire(&mut self, capacity: i32, wait: Duration) -> Vec<Lease> {
        self.client
            .acquire_lease(AcquireLeaseRequest {
                worker_id: self.id.clone(),
                labels: self.labels.clone(),
                capacity,
                wait: Some(cairn_runtime::time::to_duration(wait)),
                projects: self.projects.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .leases
    }

    pub async fn heartbeat(&mut self, l: &Lease) -> Result<HeartbeatResponse, tonic::Status> {
        self.client
            .heartbeat(HeartbeatRequest {
                lease: l.name.clone(),
                generation: l.generation,
                progress: None,
                lease_token: l.token.clone(),
            })
            .await
            .map(|r| r.into_inner())
    }

    pub async fn complete(&mut self, l: &Lease, outcome: Outcome) -> Result<Job, tonic::Status> {
        self.client
            .complete_job(CompleteJobRequest {
                lease: l.name.clone(),
                generation: l.generation,
                outcome: Some(outcome),
                snapshot_index: vec![],
                lease_token: l.token.clone(),
            })
            .await
            .map(|r| r.into_inner().job.unwrap_or_default())
    }

    /// Reports a failure that is not retried.
    pub async fn fail(&mut self, l: &Lease, error: &str) -> Job {
        let failed = cairn_api::v1::JobFailed { error: error.into(), retryable: false, stats: None };
        self.complete(l, Outcome::Failed(failed)).await.unwrap()
    }

    pub async fn succeed(&mut self, l: &Lease) -> Job {
        self.complete(l, Outcome::Succeeded(JobSucceeded::default())).await.unwrap()
    }
}

/// Waits (up to 30 s) until `f` holds.
pub async fn wait_for(what: &str, f: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(pool).await.unwrap()
}
