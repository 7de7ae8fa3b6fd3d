//! The real catalog, scheduler, a worker and the console, authentication on, a fresh
//! database per stack.
#![allow(dead_code)]

use cairn_api::v1::{self, identity_service_client::IdentityServiceClient};
use cairn_runtime::{CancellationToken, grpc::ClientInterceptor};

pub const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
pub const CLUSTER: &str = "a-cluster-token-for-console-tests";
pub const ADMIN: &str = "bootstrap-token-of-the-console-tests";
pub const ADMIN_PASSWORD: &str = "the admin password";

pub struct Stack {
    pub _db: cairn_testkit::TestDatabase,
    pub catalog: String,
    pub console: String,
    pub stop: CancellationToken,
    pub dirs: tempfile::TempDir,
    pub scheduler: String,
    worker: CancellationToken,
}

impl Stack {
    /// The database's URL.
    pub fn db_url(&self) -> &str {
        self._db.url()
    }

    /// Stops the worker (jobs then stay as they are).
    pub fn stop_worker(&self) {
        self.worker.cancel();
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub async fn stack() -> Stack {
    stack_with(|_| {}, |_| {}).await
}

/// [`stack`] with the catalog's and the console's configurations adjusted.
pub async fn stack_with(
    catalog_tweak: impl FnOnce(&mut cairn_catalog::Config),
    console_tweak: impl FnOnce(&mut cairn_console::Config),
) -> Stack {
    let db = cairn_testkit::database().await;
    let cl = cairn_runtime::grpc::bind(([127, 0, 0, 1], 0).into()).await.unwrap();
    let sl = cairn_runtime::grpc::bind(([127, 0, 0, 1], 0).into()).await.unwrap();
    let ul = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let catalog = format!("http://{}", cl.local_addr().unwrap());
    let scheduler = format!("http://{}", sl.local_addr().unwrap());
    let console = format!("http://{}", ul.local_addr().unwrap());
    let stop = CancellationToken::new();
    let mut c = cairn_catalog::Config {
        database_url: Some(db.url().to_owned()),
        secret_key: Some(KEY.into()),
        scheduler_url: scheduler.clone(),
        cluster_token: Some(CLUSTER.into()),
        bootstrap_token: Some(ADMIN.into()),
        bootstrap_admin_password: Some(ADMIN_PASSWORD.into()),
        ..Default::default()
    };
    let s = cairn_scheduler::Config {
        database_url: Some(db.url().to_owned()),
        catalog_url: catalog.clone(),
        cluster_token: Some(CLUSTER.into()),
        console_url: Some(console.clone()),
        ..Default::default()
    };
    catalog_tweak(&mut c);
    tokio::spawn(cairn_catalog::run(c, cl, stop.clone()));
    tokio::spawn(cairn_scheduler::run(s, sl, stop.clone()));
    cairn_testkit::wait_serving(&catalog, "cairn.v1.CatalogService").await;
    cairn_testkit::wait_serving(&scheduler, "cairn.v1.JobService").await;
    // One worker for every project, enrolled like any other.
    let mut identity = admin(&catalog);
    let pool = identity
        .create_worker_pool(v1::CreateWorkerPoolRequest {
            worker_pool_id: "tests".into(),
            worker_pool: Some(v1::WorkerPool {
                display_name: "tests".into(),
                projects: vec!["*".into()],
                labels: [("*".to_owned(), "*".to_owned())].into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let dirs = tempfile::tempdir().unwrap();
    let w = cairn_worker::Config {
        scheduler_url: scheduler.clone(),
        worker_token: Some(pool.token),
        cache_dir: Some(dirs.path().join("cache")),
        poll_wait_secs: 1,
        ..Default::default()
    };
    let worker = stop.child_token();
    tokio::spawn(cairn_worker::run(w, worker.clone()));
    let mut ui = cairn_console::Config {
        listen: ul.local_addr().unwrap(),
        catalog_url: catalog.clone(),
        scheduler_url: scheduler.clone(),
        ..Default::default()
    };
    console_tweak(&mut ui);
    tokio::spawn(cairn_console::run(ui, ul, stop.clone()));
    Stack { _db: db, catalog, console, stop, dirs, scheduler, worker }
}

pub fn admin(
    catalog: &str,
) -> IdentityServiceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, ClientInterceptor>,
> {
    IdentityServiceClient::with_interceptor(
        cairn_runtime::grpc::channel(catalog).unwrap(),
        ClientInterceptor::new(Some(ADMIN)),
    )
}
