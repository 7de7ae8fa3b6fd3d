//! Lease throughput and firing latency, measured end to end: real Postgres, the real catalog
//! and scheduler over gRPC, N scripted workers doing acquire → heartbeat → complete on no-op
//! jobs. Prints `RESULT` lines like the peer benchmarks in shared/peers.
//!
//! `cargo bench -p cairn-scheduler --bench leases` (env: DATABASE_URL to use a server instead
//! of a throwaway cluster; JOBS, WORKERS=10,50, CAPACITY, LATENCY_SECS, FIRES; AUTH=1 runs
//! with authentication on: workers send a worker pool token and every report its lease token).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use cairn_api::v1::{
    AcquireLeaseRequest, BatchCompleteJobsRequest, CompleteJobRequest, Connector, CreateConnectorRequest,
    CreateScheduleRequest, CreateTaskRequest, HeartbeatRequest, JobSucceeded, LocalPathSource, LocalStore,
    OverlapPolicy, Recurrence, Schedule, Task, TaskType, catalog_service_client::CatalogServiceClient,
    complete_job_request::Outcome, connector::Config as Cfg, lease_service_client::LeaseServiceClient,
    schedule_service_client::ScheduleServiceClient,
};
use cairn_runtime::{CancellationToken, grpc::ClientInterceptor, time::from_timestamp};
use sqlx::PgPool;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _cluster;
    let admin = match std::env::var("DATABASE_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => {
            let c = cairn_localpg::Cluster::start()?;
            let url = c.url("postgres");
            _cluster = c;
            url
        }
    };
    let db = format!("cairn_bench_{}", std::process::id());
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin).await?;
    sqlx::Executor::execute(&mut conn, sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}"))))
        .await?;
    let url = match admin.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{db}"),
        None => anyhow::bail!("DATABASE_URL has no database"),
    };
    let auth = env("AUTH", 0) == 1;
    const ADMIN: &str = "bench-bootstrap-token-0123456789";
    const CLUSTER: &str = "bench-cluster-token-0123456789";
    let admin_token = auth.then_some(ADMIN);
    let shutdown = CancellationToken::new();
    let cl = cairn_runtime::grpc::bind(([127, 0, 0, 1], 0).into()).await?;
    let sl = cairn_runtime::grpc::bind(([127, 0, 0, 1], 0).into()).await?;
    let catalog_url = format!("http://{}", cl.local_addr()?);
    let scheduler_url = format!("http://{}", sl.local_addr()?);
    tokio::spawn(cairn_catalog::run(
        cairn_catalog::Config {
            auth_disabled: !auth,
            cluster_token: Some(CLUSTER.into()),
            bootstrap_token: Some(ADMIN.into()),
            database_url: Some(url.clone()),
            dev_ephemeral_key: true,
            scheduler_url: scheduler_url.clone(),
            ..Default::default()
        },
        cl,
        shutdown.clone(),
    ));
    tokio::spawn(cairn_scheduler::run(
        cairn_scheduler::Config {
            auth_disabled: !auth,
            cluster_token: Some(CLUSTER.into()),
            database_url: Some(url.clone()),
            catalog_url: catalog_url.clone(),
            db_max_connections: 40,
            ..Default::default()
        },
        sl,
        shutdown.clone(),
    ));
    cairn_testkit::wait_serving(&catalog_url, "").await;
    cairn_testkit::wait_serving(&scheduler_url, "").await;
    let client = |url: &str, token: Option<&str>| -> anyhow::Result<_> {
        let channel = cairn_runtime::grpc::channel(url).map_err(anyhow::Error::msg)?;
        Ok(tonic::codegen::InterceptedService::new(channel, ClientInterceptor::new(token)))
    };
    let mut catalog = CatalogServiceClient::new(client(&catalog_url, admin_token)?);
    // Workers authenticate as a worker pool when authentication is on.
    let worker_token = if auth {
        let mut identity = cairn_api::v1::identity_service_client::IdentityServiceClient::new(client(
            &catalog_url,
            admin_token,
        )?);
        let created = identity
            .create_worker_pool(cairn_api::v1::CreateWorkerPoolRequest {
                worker_pool_id: "bench".into(),
                worker_pool: Some(cairn_api::v1::WorkerPool {
                    projects: vec!["*".into()],
                    ..Default::default()
                }),
            })
            .await?;
        Some(created.into_inner().token)
    } else {
        None
    };
    for c in [
        Connector {
            display_name: "src".into(),
            config: Some(Cfg::LocalPathSource(LocalPathSource {
                paths: vec!["/data".into()],
                ..Default::default()
            })),
            ..Default::default()
        },
        Connector {
            display_name: "store".into(),
            config: Some(Cfg::LocalStore(LocalStore { path: "/srv/repo".into() })),
            repository_password: "pw".into(),
            max_concurrent_jobs: 1000,
            ..Default::default()
        },
    ] {
        catalog
            .create_connector(CreateConnectorRequest {
                parent: "projects/default".into(),
                connector: Some(c),
                ..Default::default()
            })
            .await?;
    }
    let task = catalog
        .create_task(CreateTaskRequest {
            parent: "projects/default".into(),
            task: Some(Task {
                display_name: "noop".into(),
                r#type: TaskType::Check as i32,
                store: "store".into(),
                overlap_policy: OverlapPolicy::Allow as i32,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await?
        .into_inner();
    let pool = cairn_scheduler::schema_pool(&url)?;
    // One RunTask creates the job shape (and registers the store); the rest are copies,
    // inserted in bulk like the peers' benchmarks insert their rows.
    let mut jobs_client =
        cairn_api::v1::job_service_client::JobServiceClient::new(client(&scheduler_url, admin_token)?);
    jobs_client
        .run_task(cairn_api::v1::RunTaskRequest { task: task.name.clone(), ..Default::default() })
        .await?;
    let total: i64 = env("JOBS", 50_000);
    let capacity: i32 = env("CAPACITY", 10);
    println!(
        "# cairn lease benchmark: {total} no-op jobs per run, capacity {capacity}, nproc {}, auth {}",
        num_cpus(),
        if auth { "on" } else { "off" }
    );
    for workers in env("WORKERS", "10,50".to_owned()).split(',').filter_map(|w| w.parse::<usize>().ok()) {
        sqlx::query("DELETE FROM jobs").execute(&pool).await?;
        let task_id = uuid_of(&task.name);
        seed(&pool, task_id, total).await?;
        let done = Arc::new(AtomicU64::new(0));
        let timing = Arc::new([AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]);
        let started = Instant::now();
        let mut handles = Vec::new();
        for i in 0..workers {
            let done = done.clone();
            let timing = timing.clone();
            let mut c = LeaseServiceClient::new(client(&scheduler_url, worker_token.as_deref())?);
            handles.push(tokio::spawn(async move {
                loop {
                    let t0 = Instant::now();
                    let leases = c
                        .acquire_lease(AcquireLeaseRequest {
                            worker_id: format!("bench-{i}"),
                            capacity,
                            wait: Some(prost_types::Duration { seconds: 0, nanos: 200_000_000 }),
                            ..Default::default()
                        })
                        .await
                        .expect("acquire")
                        .into_inner()
                        .leases;
                    timing[0].fetch_add(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
                    timing[3].fetch_add(1, Ordering::Relaxed);
                    if leases.is_empty() {
                        return;
                    }
                    let mut completions = Vec::with_capacity(leases.len());
                    let t1 = Instant::now();
                    for l in &leases {
                        c.heartbeat(HeartbeatRequest {
                            lease: l.name.clone(),
                            generation: l.generation,
                            progress: None,
                            lease_token: l.token.clone(),
                        })
                        .await
                        .expect("heartbeat");
                        completions.push(CompleteJobRequest {
                            lease: l.name.clone(),
                            generation: l.generation,
                            outcome: Some(Outcome::Succeeded(JobSucceeded::default())),
                            snapshot_index: vec![],
                            lease_token: l.token.clone(),
                        });
                    }
                    timing[1].fetch_add(t1.elapsed().as_micros() as u64, Ordering::Relaxed);
                    let n = completions.len() as u64;
                    let t2 = Instant::now();
                    c.batch_complete_jobs(BatchCompleteJobsRequest { completions }).await.expect("complete");
                    timing[2].fetch_add(t2.elapsed().as_micros() as u64, Ordering::Relaxed);
                    done.fetch_add(n, Ordering::Relaxed);
                }
            }));
        }
        for h in handles {
            h.await?;
        }
        let secs = started.elapsed().as_secs_f64();
        let finished: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE state = 'SUCCEEDED'")
            .fetch_one(&pool)
            .await?;
        let calls = timing[3].load(Ordering::Relaxed).max(1) as f64;
        let ms = |i: usize| timing[i].load(Ordering::Relaxed) as f64 / 1000.0 / calls;
        println!(
            "# per batch of up to {capacity} (mean over {calls} batches): acquire {:.1} ms, heartbeats {:.1} ms, complete {:.1} ms",
            ms(0),
            ms(1),
            ms(2)
        );
        println!(
            "RESULT name=cairn_leases workers={workers} capacity={capacity} jobs={finished} seconds={secs:.2} jobs_per_s={:.0}",
            finished as f64 / secs
        );
    }

    // Latency: FIRES schedules firing every second; workers long-poll; due → leased.
    sqlx::query("DELETE FROM jobs").execute(&pool).await?;
    let fires: usize = env("FIRES", 50);
    let secs: u64 = env("LATENCY_SECS", 20);
    let stop = CancellationToken::new();
    let samples = Arc::new(std::sync::Mutex::new(Vec::<f64>::new()));
    let mut handles = Vec::new();
    for i in 0..10 {
        let (stop, samples) = (stop.clone(), samples.clone());
        let mut c = LeaseServiceClient::new(client(&scheduler_url, worker_token.as_deref())?);
        handles.push(tokio::spawn(async move {
            while !stop.is_cancelled() {
                let leases = c
                    .acquire_lease(AcquireLeaseRequest {
                        worker_id: format!("lat-{i}"),
                        capacity: 50,
                        wait: Some(prost_types::Duration { seconds: 1, nanos: 0 }),
                        ..Default::default()
                    })
                    .await
                    .expect("acquire")
                    .into_inner()
                    .leases;
                let now = chrono::Utc::now();
                let mut completions = Vec::new();
                for l in &leases {
                    let due = l
                        .job
                        .as_ref()
                        .and_then(|j| j.scheduled_time.as_ref())
                        .and_then(from_timestamp)
                        .expect("due");
                    samples
                        .lock()
                        .expect("lock")
                        .push((now - due).num_microseconds().unwrap_or(0) as f64 / 1000.0);
                    completions.push(CompleteJobRequest {
                        lease: l.name.clone(),
                        generation: l.generation,
                        outcome: Some(Outcome::Succeeded(JobSucceeded::default())),
                        snapshot_index: vec![],
                        lease_token: l.token.clone(),
                    });
                }
                if !completions.is_empty() {
                    c.batch_complete_jobs(BatchCompleteJobsRequest { completions }).await.expect("complete");
                }
            }
        }));
    }
    let mut schedules = ScheduleServiceClient::new(client(&scheduler_url, admin_token)?);
    for i in 0..fires {
        schedules
            .create_schedule(CreateScheduleRequest {
                parent: "projects/default".into(),
                schedule: Some(Schedule {
                    display_name: format!("every-second-{i}"),
                    task: task.name.clone(),
                    recurrence: Some(Recurrence {
                        kind: Some(cairn_api::v1::recurrence::Kind::Calendar("*:*:*".into())),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await?;
    }
    // Warm-up: schedules are being created; measure steady state only.
    tokio::time::sleep(Duration::from_secs(3)).await;
    samples.lock().expect("lock").clear();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.cancel();
    for h in handles {
        h.await?;
    }
    let mut s = samples.lock().expect("lock").clone();
    s.sort_by(f64::total_cmp);
    let pct = |p: f64| s.get(((s.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(f64::NAN);
    println!(
        "RESULT name=cairn_due_to_leased fires_per_s={fires} samples={} p50_ms={:.1} p99_ms={:.1} max_ms={:.1}",
        s.len(),
        pct(0.5),
        pct(0.99),
        s.last().copied().unwrap_or(f64::NAN)
    );
    shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = sqlx::Executor::execute(
        &mut conn,
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE {db} WITH (FORCE)"))),
    )
    .await;
    Ok(())
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

fn uuid_of(name: &str) -> uuid::Uuid {
    cairn_api::names::parse_canonical(cairn_api::names::Kind::Task, name).expect("task name").1
}

async fn seed(pool: &PgPool, task: uuid::Uuid, n: i64) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO jobs (id, task_id, task_display_name, type, trigger, connector_ids, store_ids, serial, selector,
                           state, scheduled_time, run_after, create_time, max_attempts, project_id)
         SELECT gen_random_uuid(), $1, 'noop', 'CHECK', 'MANUAL', s.ids, s.ids, false, '{}', 'QUEUED',
                now(), now(), now(), 3, 'default'
         FROM generate_series(1, $2), (SELECT ARRAY(SELECT id FROM stores) AS ids) s",
    )
    .bind(task)
    .bind(n)
    .execute(pool)
    .await?;
    Ok(())
}
