//! `cairn-server`: Cairn on one machine in one process: catalog, scheduler, console and one
//! worker. By default it keeps its state in a data directory (`--data-dir`, `CAIRN_DATA_DIR`,
//! `~/.local/share/cairn`, or `/var/lib/cairn` as root): a Postgres cluster initialised there
//! on first start (or `DATABASE_URL`), the secret key (0600) and the admin's API token (0600),
//! each generated once and reused, so a restart keeps everything. One process per data
//! directory. `--ephemeral` is the throwaway stack (for demos and tests): a temporary cluster
//! and an ephemeral key, all gone at exit.

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
    /// Seconds after its due time an occurrence counts as missed (catch-up or skip, as the
    /// schedule says).
    #[arg(long, env = "CAIRN_MISSED_RUN_GRACE_SECS", default_value_t = 60)]
    missed_run_grace_secs: u64,
    /// Where the state is kept (see above).
    #[arg(long, env = "CAIRN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Keep nothing: a throwaway database and key, removed at exit.
    #[arg(long, conflicts_with = "data_dir")]
    ephemeral: bool,
}

/// The default data directory.
fn default_data_dir() -> PathBuf {
    let root =
        std::process::Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if root {
        // Postgres runs as `postgres`, which cannot reach /root.
        return PathBuf::from("/var/lib/cairn");
    }
    match (std::env::var_os("XDG_DATA_HOME"), std::env::var_os("HOME")) {
        (Some(x), _) if !x.is_empty() => PathBuf::from(x).join("cairn"),
        (_, Some(h)) => PathBuf::from(h).join(".local/share/cairn"),
        _ => PathBuf::from(".cairn"),
    }
}

/// A value generated once and kept in `path` (mode 0600).
fn kept(path: &std::path::Path, make: impl FnOnce() -> String) -> anyhow::Result<String> {
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Ok(v) = std::fs::read_to_string(path) {
        return Ok(v.trim().to_owned());
    }
    let v = make();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    std::io::Write::write_all(&mut f, format!("{v}\n").as_bytes())?;
    Ok(v)
}

use cairn_runtime::{auth::mint, grpc::ClientInterceptor};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    let _telemetry = cairn_runtime::telemetry::init("cairn-server", Default::default(), None);
    let data_dir = (!flags.ephemeral).then(|| flags.data_dir.clone().unwrap_or_else(default_data_dir));
    // One process per data directory: the lock lives as long as this process.
    let _lock = match &data_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("data directory {}: {e}", dir.display()))?;
            let f = std::fs::File::create(dir.join("cairn.lock"))?;
            if f.try_lock().is_err() {
                anyhow::bail!(
                    "another Cairn is running on the data directory {} (stop it first, or pass --data-dir)",
                    dir.display()
                );
            }
            Some(f)
        }
        None => None,
    };
    let no_pg = "no Postgres binaries found (initdb, pg_ctl): install them (Debian: apt install postgresql) or set DATABASE_URL";
    let (_cluster, database_url) = match (flags.database_url.filter(|u| !u.is_empty()), &data_dir) {
        (Some(url), _) => (None, url),
        (None, None) => {
            let cluster =
                tokio::task::spawn_blocking(cairn_localpg::Cluster::start).await?.map_err(|e| match e {
                    cairn_localpg::Error::NoBinaries => anyhow::anyhow!(no_pg),
                    e => e.into(),
                })?;
            let url = cluster.url("postgres");
            tracing::info!(port = cluster.port(), "started a throwaway Postgres (removed at exit)");
            (Some(cluster), url)
        }
        (None, Some(dir)) => {
            let pg = dir.join("postgres");
            let cluster = tokio::task::spawn_blocking(move || cairn_localpg::Cluster::open(&pg))
                .await?
                .map_err(|e| match e {
                    cairn_localpg::Error::NoBinaries => anyhow::anyhow!(no_pg),
                    e => e.into(),
                })?;
            let url = cluster.url("postgres");
            tracing::info!(port = cluster.port(), dir = %dir.display(), "started the kept Postgres");
            (Some(cluster), url)
        }
    };
    if let Err(e) = cairn_runtime::metrics::install(flags.metrics_listen) {
        tracing::warn!(error = %e, "metrics endpoint not started");
    }
    let shutdown = cairn_runtime::shutdown::on_signal();
    let catalog_url = format!("http://{}", flags.catalog_listen);
    let scheduler_url = format!("http://{}", flags.scheduler_listen);
    // Authentication is on, as in production. The cluster token is new each run; the admin's
    // token and the secret key are kept with the data.
    let cluster_token = mint("ct");
    let (admin_token, secret_key_file) = match &data_dir {
        Some(dir) => {
            let key = dir.join("secret.key");
            kept(&key, || {
                use base64::Engine as _;
                let mut bytes = [0u8; 32];
                rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
                base64::engine::general_purpose::STANDARD.encode(bytes)
            })?;
            (kept(&dir.join("admin.token"), || mint("pat"))?, Some(key))
        }
        None => (mint("pat"), None),
    };
    // The first start's password (given or generated) is kept: later starts print the same.
    let given = flags.admin_password.filter(|p| !p.is_empty());
    let admin_password = match &data_dir {
        Some(dir) => kept(&dir.join("admin.password"), || given.clone().unwrap_or_else(|| mint("pw")))?,
        None => given.unwrap_or_else(|| mint("pw")),
    };
    let console_url = format!("http://{}", flags.console_listen);
    let catalog = cairn_catalog::Config {
        listen: flags.catalog_listen,
        database_url: Some(database_url.clone()),
        dev_ephemeral_key: secret_key_file.is_none(),
        secret_key_file,
        data_dir: data_dir.clone(),
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
        missed_run_grace_secs: flags.missed_run_grace_secs,
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
    // With a data directory the credentials stay in their files (this output may be a log).
    let (password, token, keep) = match &data_dir {
        Some(dir) => (
            format!("in {}", dir.join("admin.password").display()),
            format!("$(cat {})", dir.join("admin.token").display()),
            format!("Everything is kept in {}. Ctrl-C stops Cairn; run it again to go on.", dir.display()),
        ),
        None => (
            admin_password.clone(),
            admin_token.clone(),
            "Ephemeral: Ctrl-C stops and removes everything.".to_owned(),
        ),
    };
    println!(
        "\nCairn is up\n  console    {console_url}   (sign in as admin, password {password})\n  catalog    {catalog_url}\n  scheduler  {scheduler_url}\n  worker     1 (in process)\n  \
         metrics    http://{}/metrics\n  database   {}\n\nTry it (in another terminal):\n  \
         export CAIRN_CATALOG_URL={catalog_url} CAIRN_SCHEDULER_URL={scheduler_url}\n  \
         export CAIRN_TOKEN={token}   # the platform admin `admin`\n  \
         cargo run -q --bin cairn -- --help\n  \
         cargo run -q --bin cairn -- project list   # everything starts in project `default`\n\n{keep}\n",
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
                client
                    .delete_worker_pool(DeleteWorkerPoolRequest {
                        name: "workerPools/dev".into(),
                        ..Default::default()
                    })
                    .await?;
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
