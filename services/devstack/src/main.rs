//! `cairn-dev`: Cairn in one process for trying it out and for demos: catalog, scheduler and
//! one worker, on `DATABASE_URL` or a throwaway Postgres cluster from local binaries (removed
//! at exit). Secrets use an ephemeral key: they do not survive a restart.

use std::{net::SocketAddr, path::PathBuf};

use clap::Parser;

/// Runs Cairn locally in one process.
#[derive(Parser)]
#[command(version, about)]
struct Flags {
    /// Postgres URL; unset = a throwaway cluster from local binaries.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Catalog gRPC address.
    #[arg(long, default_value = "127.0.0.1:50051")]
    catalog_listen: SocketAddr,
    /// Scheduler gRPC address.
    #[arg(long, default_value = "127.0.0.1:50052")]
    scheduler_listen: SocketAddr,
    /// Web console address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    console_listen: SocketAddr,
    /// Password of the platform admin `admin` (the console's sign-in); unset = generated and
    /// printed.
    #[arg(long, env = "CAIRN_BOOTSTRAP_ADMIN_PASSWORD")]
    admin_password: Option<String>,
    /// Prometheus metrics of the whole process.
    #[arg(long, default_value = "127.0.0.1:9101")]
    metrics_listen: SocketAddr,
    /// Labels of the built-in worker (`host=<this host>` is always added).
    #[arg(long, env = "CAIRN_WORKER_LABELS", default_value = "")]
    worker_labels: String,
    /// Jobs the built-in worker runs at once.
    #[arg(long, default_value_t = 2)]
    worker_capacity: u32,
    /// Repository cache of the built-in worker.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
}

use cairn_runtime::{auth::mint, grpc::ClientInterceptor};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    let _telemetry = cairn_runtime::telemetry::init("cairn-dev", Default::default(), None);
    let (_cluster, database_url) = match flags.database_url.filter(|u| !u.is_empty()) {
        Some(url) => (None, url),
        None => {
            let cluster = tokio::task::spawn_blocking(cairn_localpg::Cluster::start).await??;
            let url = cluster.url("postgres");
            tracing::info!(port = cluster.port(), "started a throwaway Postgres (removed at exit)");
            (Some(cluster), url)
        }
    };
    if let Err(e) = cairn_runtime::metrics::install(flags.metrics_listen) {
        tracing::warn!(error = %e, "metrics endpoint not started");
    }
    let shutdown = cairn_runtime::shutdown::on_signal();
    let catalog_url = format!("http://{}", flags.catalog_listen);
    let scheduler_url = format!("http://{}", flags.scheduler_listen);
    // Authentication is on, as in production: fresh secrets for this run.
    let cluster_token = mint("ct");
    let admin_token = mint("pat");
    let admin_password = flags.admin_password.filter(|p| !p.is_empty()).unwrap_or_else(|| mint("pw"));
    let console_url = format!("http://{}", flags.console_listen);
    let catalog = cairn_catalog::Config {
        listen: flags.catalog_listen,
        database_url: Some(database_url.clone()),
        dev_ephemeral_key: true,
        scheduler_url: scheduler_url.clone(),
        cluster_token: Some(cluster_token.clone()),
        bootstrap_token: Some(admin_token.clone()),
        bootstrap_admin_password: Some(admin_password.clone()),
        ..Default::default()
    };
    let scheduler = cairn_scheduler::Config {
        listen: flags.scheduler_listen,
        database_url: Some(database_url.clone()),
        catalog_url: catalog_url.clone(),
        cluster_token: Some(cluster_token),
        console_url: Some(console_url.clone()),
        ..Default::default()
    };
    let console = cairn_console::Config {
        listen: flags.console_listen,
        catalog_url: catalog_url.clone(),
        scheduler_url: scheduler_url.clone(),
        ..Default::default()
    };
    let catalog_listener = cairn_runtime::grpc::bind(catalog.listen).await?;
    let scheduler_listener = cairn_runtime::grpc::bind(scheduler.listen).await?;
    let console_listener = tokio::net::TcpListener::bind(console.listen).await?;
    let c = tokio::spawn(cairn_catalog::run(catalog, catalog_listener, shutdown.clone()));
    let s = tokio::spawn(cairn_scheduler::run(scheduler, scheduler_listener, shutdown.clone()));
    // The built-in worker enrols like any other: a worker pool for every project.
    let worker_token = enrol_worker(&catalog_url, &admin_token).await?;
    let worker = cairn_worker::Config {
        scheduler_url: scheduler_url.clone(),
        worker_labels: flags.worker_labels,
        capacity: flags.worker_capacity,
        cache_dir: flags.cache_dir,
        worker_token: Some(worker_token),
        ..Default::default()
    };
    let w = tokio::spawn(cairn_worker::run(worker, shutdown.clone()));
    let ui = tokio::spawn(cairn_console::run(console, console_listener, shutdown.clone()));
    println!(
        "\nCairn dev stack is up\n  console    {console_url}   (sign in as admin, password {admin_password})\n  catalog    {catalog_url}\n  scheduler  {scheduler_url}\n  worker     1 (in process)\n  \
         metrics    http://{}/metrics\n  database   {}\n\nTry it (in another terminal):\n  \
         export CAIRN_CATALOG_URL={catalog_url} CAIRN_SCHEDULER_URL={scheduler_url}\n  \
         export CAIRN_TOKEN={admin_token}   # the platform admin `admin` (valid while this stack runs)\n  \
         cargo run -q --bin cairn -- --help\n  \
         cargo run -q --bin cairn -- project list   # everything starts in project `default`\n\n\
         Ctrl-C stops everything.\n",
        flags.metrics_listen,
        cairn_runtime::config::redact_url(&database_url),
    );
    let (c, s, w, ui) = tokio::join!(c, s, w, ui);
    c??;
    s??;
    w??;
    ui??;
    Ok(())
}

/// Creates (or re-creates) the worker pool `dev` for every project and returns its token,
/// waiting for the catalog to come up.
async fn enrol_worker(catalog_url: &str, admin_token: &str) -> anyhow::Result<String> {
    use cairn_api::v1::{
        CreateWorkerPoolRequest, DeleteWorkerPoolRequest, WorkerPool,
        identity_service_client::IdentityServiceClient,
    };
    let channel = cairn_runtime::grpc::channel(catalog_url).map_err(anyhow::Error::msg)?;
    let mut client =
        IdentityServiceClient::with_interceptor(channel, ClientInterceptor::new(Some(admin_token)));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let req = CreateWorkerPoolRequest {
            worker_pool_id: "dev".into(),
            worker_pool: Some(WorkerPool {
                display_name: "Built-in dev worker".into(),
                projects: vec!["*".into()],
                labels: [("*".to_owned(), "*".to_owned())].into(),
                ..Default::default()
            }),
        };
        match client.create_worker_pool(req).await {
            Ok(r) => return Ok(r.into_inner().token),
            Err(s) if s.code() == tonic::Code::AlreadyExists => {
                client.delete_worker_pool(DeleteWorkerPoolRequest { name: "workerPools/dev".into() }).await?;
            }
            Err(s)
                if std::time::Instant::now() < deadline
                    && matches!(
                        s.code(),
                        tonic::Code::Unavailable | tonic::Code::Unauthenticated | tonic::Code::Unknown
                    ) =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(s) => anyhow::bail!("could not enrol the built-in worker: {}", s.message()),
        }
    }
}
