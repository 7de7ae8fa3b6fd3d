//! Firing at fleet scale, history at a million jobs, a thousand live watchers. Prints figures
//! (`RESULT` lines like the peer benchmarks in shared/peers); asserts only that the scenario
//! happened (every due occurrence fired exactly once), never a time.
//!
//! `cargo bench -p cairn-scheduler --bench scale`
//!
//! The scheduler runs as its own process (the release binary), so its RSS and CPU are its
//! own; the catalog, the scripted workers and the clients run in this process. Env:
//! DATABASE_URL (a server instead of a throwaway cluster), SCHEDULES (100000), DUE (10000),
//! TASKS (10000), HISTORY (1000000), WATCHERS (1000), WORKERS (8), PARTS (firing,history,watch).
//!
//! 1. **Firing**: SCHEDULES schedules of every kind (calendar, cron, interval, preset) in eight
//!    zones, created through the API; DUE of them fall due within one minute (the cron ones
//!    all at the minute's boundary, the rest spread), the others hours away. Workers long-poll
//!    and complete. Figures: lateness of firing (job created − due time) and of starting
//!    (lease received − due time), the scheduler's CPU and RSS, its calls to the catalog.
//! 2. **History**: HISTORY finished jobs over 90 days (bulk-inserted like the peers' queue
//!    benchmarks), then ListJobs over gRPC by task, connector, state and time range: first
//!    page and four following pages, p50/p99.
//! 3. **Watch**: WATCHERS running jobs, one WatchJob stream each; rounds of progress
//!    heartbeats, each timed from the heartbeat to the event on its stream.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use cairn_api::v1::{
    AcquireLeaseRequest, BatchCompleteJobsRequest, CompleteJobRequest, Connector, CreateConnectorRequest,
    CreateScheduleRequest, CreateTaskRequest, HeartbeatRequest, Interval, JobProgress, JobState,
    JobSucceeded, ListJobsRequest, LocalPathSource, LocalStore, OverlapPolicy, Preset, Recurrence,
    RunTaskRequest, Schedule, Task, TaskType, WatchJobRequest, catalog_service_client::CatalogServiceClient,
    complete_job_request::Outcome, connector::Config as Cfg, job_service_client::JobServiceClient,
    lease_service_client::LeaseServiceClient, recurrence::Kind,
    schedule_service_client::ScheduleServiceClient, watch_job_event::Event,
};
use cairn_runtime::{
    CancellationToken,
    grpc::ClientInterceptor,
    time::{from_timestamp, to_timestamp},
};
use chrono::{DateTime, Duration as Span, Timelike as _, Utc};
use futures::{StreamExt as _, stream};
use sqlx::PgPool;
use tonic::{codegen::InterceptedService, transport::Channel};

type Ch = InterceptedService<Channel, ClientInterceptor>;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

const ZONES: &[&str] = &[
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Tokyo",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "America/Sao_Paulo",
    "Pacific/Chatham",
];

/// In-flight requests while creating things through the API.
const CONCURRENCY: usize = 16;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let parts: String = env("PARTS", "firing,history,watch".to_owned());
    let stack = Stack::start().await?;
    println!(
        "# cairn scale benchmark: nproc {}, scheduler pid {}",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        stack.scheduler.0.id()
    );
    let fleet = Fleet::create(&stack, env("TASKS", 10_000)).await?;
    if parts.contains("firing") {
        firing(&stack, &fleet).await?;
    }
    if parts.contains("history") {
        history(&stack, &fleet).await?;
    }
    if parts.contains("watch") {
        watch(&stack, &fleet).await?;
    }
    stack.stop().await;
    Ok(())
}

/// Postgres, the catalog (in this process) and the scheduler (a child process).
struct Stack {
    _cluster: Option<cairn_localpg::Cluster>,
    admin_url: String,
    db: String,
    pool: PgPool,
    catalog_url: String,
    scheduler_url: String,
    metrics_url: String,
    scheduler: cairn_testkit::Process,
    shutdown: CancellationToken,
}

impl Stack {
    async fn start() -> anyhow::Result<Stack> {
        let (cluster, admin_url) = match std::env::var("DATABASE_URL") {
            Ok(u) if !u.is_empty() => (None, u),
            _ => {
                let c = cairn_localpg::Cluster::start()?;
                let url = c.url("postgres");
                (Some(c), url)
            }
        };
        let db = format!("cairn_scale_{}", std::process::id());
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url).await?;
        sqlx::Executor::execute(
            &mut conn,
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}"))),
        )
        .await?;
        let url = match admin_url.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{db}"),
            None => anyhow::bail!("DATABASE_URL has no database"),
        };
        let shutdown = CancellationToken::new();
        let cl = cairn_runtime::grpc::bind(([127, 0, 0, 1], 0).into()).await?;
        let catalog_url = format!("http://{}", cl.local_addr()?);
        let (port, metrics_port) = (cairn_testkit::free_port(), cairn_testkit::free_port());
        let scheduler_url = format!("http://127.0.0.1:{port}");
        tokio::spawn(cairn_catalog::run(
            cairn_catalog::Config {
                auth_disabled: true,
                database_url: Some(url.clone()),
                dev_ephemeral_key: true,
                scheduler_url: scheduler_url.clone(),
                db_max_connections: 16,
                ..Default::default()
            },
            cl,
            shutdown.clone(),
        ));
        cairn_testkit::wait_serving(&catalog_url, "").await;
        let scheduler = std::process::Command::new(env!("CARGO_BIN_EXE_cairn-scheduler"))
            .env("DATABASE_URL", &url)
            .env("CAIRN_LISTEN", format!("127.0.0.1:{port}"))
            .env("CAIRN_METRICS_LISTEN", format!("127.0.0.1:{metrics_port}"))
            .env("CAIRN_CATALOG_URL", &catalog_url)
            .env("CAIRN_AUTH_DISABLED", "true")
            .env("RUST_LOG", "warn")
            .spawn()?;
        let scheduler = cairn_testkit::Process(scheduler);
        cairn_testkit::wait_serving(&scheduler_url, "").await;
        Ok(Stack {
            _cluster: cluster,
            admin_url,
            db,
            pool: cairn_scheduler::schema_pool(&url)?,
            catalog_url,
            scheduler_url,
            metrics_url: format!("http://127.0.0.1:{metrics_port}/metrics"),
            scheduler,
            shutdown,
        })
    }

    fn channel(url: &str) -> anyhow::Result<Ch> {
        let channel = cairn_runtime::grpc::channel(url).map_err(anyhow::Error::msg)?;
        Ok(InterceptedService::new(channel, ClientInterceptor::new(None)))
    }

    fn catalog(&self) -> anyhow::Result<CatalogServiceClient<Ch>> {
        Ok(CatalogServiceClient::new(Self::channel(&self.catalog_url)?))
    }

    fn schedules(&self) -> anyhow::Result<ScheduleServiceClient<Ch>> {
        Ok(ScheduleServiceClient::new(Self::channel(&self.scheduler_url)?))
    }

    fn jobs(&self) -> anyhow::Result<JobServiceClient<Ch>> {
        Ok(JobServiceClient::new(Self::channel(&self.scheduler_url)?).max_decoding_message_size(64 << 20))
    }

    fn leases(&self) -> anyhow::Result<LeaseServiceClient<Ch>> {
        Ok(LeaseServiceClient::new(Self::channel(&self.scheduler_url)?).max_decoding_message_size(64 << 20))
    }

    /// The scheduler's CPU time (user + system) and resident memory now, and its peak.
    fn usage(&self) -> Usage {
        Usage::of(self.scheduler.0.id())
    }

    /// A counter or gauge summed over every label set, from the scheduler's /metrics.
    async fn metric(&self, name: &str) -> f64 {
        let Some((_, body)) = cairn_testkit::http_get(&self.metrics_url).await else { return f64::NAN };
        body.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    async fn stop(self) {
        self.shutdown.cancel();
        drop(self.scheduler);
        tokio::time::sleep(Duration::from_millis(300)).await;
        if let Ok(mut conn) = <sqlx::PgConnection as sqlx::Connection>::connect(&self.admin_url).await {
            let _ = sqlx::Executor::execute(
                &mut conn,
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE {} WITH (FORCE)", self.db))),
            )
            .await;
        }
    }
}

/// CPU seconds and memory of a process, from /proc.
#[derive(Debug, Clone, Copy)]
struct Usage {
    cpu_secs: f64,
    rss_mb: f64,
    peak_rss_mb: f64,
}

impl Usage {
    fn of(pid: u32) -> Usage {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the command (which may hold spaces) end with ')'.
        let fields: Vec<&str> =
            stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        // utime and stime are fields 14 and 15 of stat(5); here 0-based after the command: 11, 12.
        let cpu_secs = (ticks(11) + ticks(12)) / 100.0;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let kb = |key: &str| {
            status
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        Usage { cpu_secs, rss_mb: kb("VmRSS:") / 1024.0, peak_rss_mb: kb("VmHWM:") / 1024.0 }
    }
}

/// Percentiles of a sample (sorted in place); NaN when empty.
fn pct(s: &mut [f64], p: f64) -> f64 {
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return f64::NAN;
    }
    s[((s.len() as f64 - 1.0) * p).round() as usize]
}

/// The connectors and tasks every part uses.
struct Fleet {
    /// Each task's full name, id and connector ids (source first when it has one).
    tasks: Vec<(String, uuid::Uuid, Vec<uuid::Uuid>)>,
    /// Every connector's id.
    connectors: Vec<uuid::Uuid>,
}

fn id_of(name: &str) -> uuid::Uuid {
    name.rsplit('/').next().and_then(|id| id.parse().ok()).unwrap_or_default()
}

impl Fleet {
    /// 20 sources and 20 stores; `n` tasks over them (three BACKUP to one CHECK), all ALLOW
    /// overlap so every occurrence becomes a job that runs.
    async fn create(stack: &Stack, n: usize) -> anyhow::Result<Fleet> {
        let mut catalog = stack.catalog()?;
        let (mut sources, mut stores) = (Vec::new(), Vec::new());
        for i in 0..20 {
            for (list, c) in [
                (
                    &mut sources,
                    Connector {
                        display_name: format!("src-{i}"),
                        config: Some(Cfg::LocalPathSource(LocalPathSource {
                            paths: vec![format!("/data/{i}")],
                            ..Default::default()
                        })),
                        ..Default::default()
                    },
                ),
                (
                    &mut stores,
                    Connector {
                        display_name: format!("store-{i}"),
                        config: Some(Cfg::LocalStore(LocalStore { path: format!("/srv/repo-{i}") })),
                        repository_password: "pw".into(),
                        max_concurrent_jobs: 1000,
                        ..Default::default()
                    },
                ),
            ] {
                let c = catalog
                    .create_connector(CreateConnectorRequest {
                        parent: "projects/default".into(),
                        connector: Some(c),
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                list.push(id_of(&c.name));
            }
        }
        let started = Instant::now();
        let created: Vec<anyhow::Result<(String, uuid::Uuid, Vec<uuid::Uuid>)>> = stream::iter(0..n)
            .map(|i| {
                let mut catalog = catalog.clone();
                let (src, store) = (sources[i % 20], stores[(i / 20) % 20]);
                async move {
                    let backup = i % 4 != 3;
                    let task = Task {
                        display_name: format!("task-{i}"),
                        r#type: if backup { TaskType::Backup } else { TaskType::Check } as i32,
                        source: if backup { src.to_string() } else { String::new() },
                        store: store.to_string(),
                        overlap_policy: OverlapPolicy::Allow as i32,
                        ..Default::default()
                    };
                    let t = catalog
                        .create_task(CreateTaskRequest {
                            parent: "projects/default".into(),
                            task: Some(task),
                            ..Default::default()
                        })
                        .await?
                        .into_inner();
                    let connectors = if backup { vec![src, store] } else { vec![store] };
                    Ok((t.name.clone(), id_of(&t.name), connectors))
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let tasks = created.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
        let secs = started.elapsed().as_secs_f64();
        println!("RESULT name=cairn_create_tasks tasks={n} seconds={secs:.1} per_s={:.0}", n as f64 / secs);
        Ok(Fleet { tasks, connectors: sources.into_iter().chain(stores).collect() })
    }
}

/// A schedule falling due at `due` (UTC), of the kind `i` picks, in zone `zone`; cron ones
/// (minute resolution) fall due at `boundary`, the whole minute inside the window.
fn due_schedule(
    i: usize,
    due: DateTime<Utc>,
    boundary: DateTime<Utc>,
    zone: &str,
) -> (Recurrence, Option<DateTime<Utc>>) {
    let tz: chrono_tz::Tz = zone.parse().unwrap_or(chrono_tz::UTC);
    let local = due.with_timezone(&tz);
    let at_boundary = boundary.with_timezone(&tz);
    let kind = match i % 10 {
        // 40 %: cron, minute resolution: every one of them at the minute's boundary.
        0..=3 => Kind::Cron(format!("{} {} * * *", at_boundary.minute(), at_boundary.hour())),
        // 30 %: calendar with seconds, spread over the minute.
        4..=6 => {
            Kind::Calendar(format!("*-*-* {:02}:{:02}:{:02}", local.hour(), local.minute(), local.second()))
        }
        // 20 %: an interval whose first occurrence is its start time.
        7 | 8 => Kind::Interval(Interval { days: 0, hours: 1 + (i % 23) as i32, minutes: (i % 60) as i32 }),
        // 10 %: a preset, likewise.
        _ => Kind::Preset(Preset::Daily as i32),
    };
    let start = matches!(kind, Kind::Interval(_) | Kind::Preset(_)).then_some(due);
    (Recurrence { kind: Some(kind) }, start)
}

/// A schedule that is not due for hours: the same kinds, far from `now`.
fn idle_schedule(i: usize, now: DateTime<Utc>, zone: &str) -> (Recurrence, Option<DateTime<Utc>>) {
    // 2 h to 20 h away, on whole minutes.
    let at = now + Span::minutes(120 + (i % 1080) as i64);
    let at = at.with_second(0).unwrap_or(at);
    let tz: chrono_tz::Tz = zone.parse().unwrap_or(chrono_tz::UTC);
    let local = at.with_timezone(&tz);
    let kind = match i % 10 {
        0 | 1 => Kind::Cron(format!("{} {} * * *", local.minute(), local.hour())),
        2 => Kind::Cron(format!("{} {} * * {}", local.minute(), local.hour(), local.format("%a"))),
        3 | 4 => Kind::Calendar(format!("*-*-* {:02}:{:02}:00", local.hour(), local.minute())),
        5 => {
            Kind::Calendar(format!("{} *-*-* {:02}:{:02}", local.format("%a"), local.hour(), local.minute()))
        }
        6 | 7 => Kind::Interval(Interval { days: (i % 3) as i32, hours: 6 + (i % 18) as i32, minutes: 0 }),
        8 => Kind::Preset(Preset::Weekly as i32),
        _ => Kind::Preset(Preset::TwiceDaily as i32),
    };
    let start = matches!(kind, Kind::Interval(_) | Kind::Preset(_)).then_some(at);
    (Recurrence { kind: Some(kind) }, start)
}

/// Creates `range` schedules through the API; returns the seconds it took.
async fn create_schedules(
    stack: &Stack,
    fleet: &Fleet,
    range: std::ops::Range<usize>,
    make: impl Fn(usize, &str) -> (Recurrence, Option<DateTime<Utc>>),
) -> anyhow::Result<f64> {
    let client = stack.schedules()?;
    let started = Instant::now();
    let requests: Vec<CreateScheduleRequest> = range
        .map(|i| {
            let zone = ZONES[i % ZONES.len()];
            let (recurrence, start) = make(i, zone);
            CreateScheduleRequest {
                parent: "projects/default".into(),
                schedule: Some(Schedule {
                    display_name: format!("s-{i}"),
                    task: fleet.tasks[i % fleet.tasks.len()].0.clone(),
                    recurrence: Some(recurrence),
                    start_time: start.map(to_timestamp),
                    time_zone: zone.into(),
                    ..Default::default()
                }),
                ..Default::default()
            }
        })
        .collect();
    let results: Vec<Result<_, tonic::Status>> = stream::iter(requests)
        .map(|r| {
            let mut c = client.clone();
            async move { c.create_schedule(r).await }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    for r in results {
        r?;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// A job's due time and the lateness of its first lease, in seconds.
type Started = (DateTime<Utc>, f64);

async fn firing(stack: &Stack, fleet: &Fleet) -> anyhow::Result<()> {
    let total: usize = env("SCHEDULES", 100_000);
    let due: usize = env("DUE", 10_000).min(total);
    let workers: usize = env("WORKERS", 8);
    let now = Utc::now();
    let secs = create_schedules(stack, fleet, due..total, |i, zone| idle_schedule(i, now, zone)).await?;
    let rate = (total - due) as f64 / secs;
    println!(
        "RESULT name=cairn_create_schedules schedules={} seconds={secs:.1} per_s={rate:.0}",
        total - due
    );
    // The window opens once the due ones are surely created (at the rate just measured, with
    // a margin), a few seconds into a minute so the cron ones share the next boundary.
    let lead = Span::milliseconds((due as f64 / rate * 1500.0) as i64 + 15_000);
    let mut t0 = Utc::now() + lead;
    t0 = t0.with_nanosecond(0).unwrap_or(t0);
    if t0.second() > 50 || t0.second() < 2 {
        t0 += Span::seconds(15);
    }
    let window = (t0, t0 + Span::seconds(60));
    let boundary = (t0 + Span::seconds(59)).with_second(0).unwrap_or(t0);
    // Due times spread over the window; every cron one lands on the minute boundary inside it.
    let secs = create_schedules(stack, fleet, 0..due, |i, zone| {
        let offset = Span::milliseconds((i as i64 * 60_000 / due as i64) % 60_000);
        due_schedule(i, (window.0 + offset).with_nanosecond(0).unwrap_or(window.0), boundary, zone)
    })
    .await?;
    println!("# {due} due schedules created in {secs:.1} s; window {} .. {}", window.0, window.1);
    let in_window: i64 =
        sqlx::query_scalar("SELECT count(*) FROM schedules WHERE next_run_time >= $1 AND next_run_time < $2")
            .bind(window.0)
            .bind(window.1)
            .fetch_one(&stack.pool)
            .await?;
    let early: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT min(next_run_time) FROM schedules WHERE next_run_time >= $1")
            .bind(window.1)
            .fetch_one(&stack.pool)
            .await?;
    anyhow::ensure!(Utc::now() < window.0, "the due schedules took too long to create; the window has begun");
    anyhow::ensure!(in_window as usize == due, "{in_window} schedules are due in the window, not {due}");
    println!("# {in_window} due in the window, the next after it at {early:?}");

    // Workers: long-poll, note when each job's first lease arrives, complete in batches.
    let stop = CancellationToken::new();
    let started: Arc<Mutex<HashMap<String, Started>>> = Arc::default();
    let mut handles = Vec::new();
    for w in 0..workers {
        let (stop, started) = (stop.clone(), started.clone());
        let mut c = stack.leases()?;
        handles.push(tokio::spawn(async move {
            while !stop.is_cancelled() {
                let Ok(r) = c
                    .acquire_lease(AcquireLeaseRequest {
                        worker_id: format!("w-{w}"),
                        capacity: 200,
                        wait: Some(prost_types::Duration { seconds: 1, nanos: 0 }),
                        ..Default::default()
                    })
                    .await
                else {
                    continue;
                };
                let at = Utc::now();
                let leases = r.into_inner().leases;
                let mut completions = Vec::with_capacity(leases.len());
                for l in &leases {
                    let job = l.job.as_ref();
                    if let Some(due) = job.and_then(|j| j.scheduled_time.as_ref()).and_then(from_timestamp) {
                        let late = (at - due).num_microseconds().unwrap_or(0) as f64 / 1e6;
                        let name = job.map(|j| j.name.clone()).unwrap_or_default();
                        started.lock().expect("lock").entry(name).or_insert((due, late));
                    }
                    completions.push(CompleteJobRequest {
                        lease: l.name.clone(),
                        generation: l.generation,
                        outcome: Some(Outcome::Succeeded(JobSucceeded::default())),
                        snapshot_index: vec![],
                        lease_token: l.token.clone(),
                    });
                }
                if !completions.is_empty() {
                    let _ = c.batch_complete_jobs(BatchCompleteJobsRequest { completions }).await;
                }
            }
        }));
    }
    let wait = (window.0 - Utc::now() - Span::seconds(2)).to_std().unwrap_or_default();
    tokio::time::sleep(wait).await;
    let calls_before = stack.metric("cairn_scheduler_catalog_requests_total").await;
    let before = stack.usage();
    let mut peak_rss = before.rss_mb;
    // Until every due job has been leased, or two minutes past the window.
    let deadline = window.1 + Span::seconds(120);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        peak_rss = peak_rss.max(stack.usage().rss_mb);
        if started.lock().expect("lock").len() >= due || Utc::now() > deadline {
            break;
        }
    }
    let after = stack.usage();
    let calls = stack.metric("cairn_scheduler_catalog_requests_total").await - calls_before;
    let busy = (Utc::now() - window.0 + Span::seconds(2)).num_milliseconds() as f64 / 1000.0;
    stop.cancel();
    for h in handles {
        h.await?;
    }
    // Exactly once: one job per (schedule, occurrence) in the window, none elsewhere.
    let (jobs, occurrences, outside): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE occurrence >= $1 AND occurrence < $2),
                count(DISTINCT (schedule_id, occurrence)) FILTER (WHERE occurrence >= $1 AND occurrence < $2),
                count(*) FILTER (WHERE occurrence < $1 OR occurrence >= $2)
           FROM jobs WHERE schedule_id IS NOT NULL",
    )
    .bind(window.0)
    .bind(window.1)
    .fetch_one(&stack.pool)
    .await?;
    let fired: Vec<(DateTime<Utc>, f64)> = sqlx::query_as(
        "SELECT scheduled_time, extract(epoch FROM create_time - scheduled_time)::float8 FROM jobs
          WHERE schedule_id IS NOT NULL AND occurrence >= $1 AND occurrence < $2",
    )
    .bind(window.0)
    .bind(window.1)
    .fetch_all(&stack.pool)
    .await?;
    let started: Vec<(DateTime<Utc>, f64)> = started.lock().expect("lock").values().copied().collect();
    // The cron burst (every cron schedule at the minute's boundary) apart from the rest.
    let split = |v: &[(DateTime<Utc>, f64)], burst: bool| -> Vec<f64> {
        v.iter().filter(|(due, _)| (*due == boundary) == burst).map(|(_, l)| *l).collect()
    };
    for (part, burst) in [("burst", true), ("spread", false)] {
        let (mut f, mut st) = (split(&fired, burst), split(&started, burst));
        println!(
            "RESULT name=cairn_scale_lateness part={part} jobs={} fired_p50_s={:.3} fired_p99_s={:.3} \
             fired_max_s={:.3} started_p50_s={:.3} started_p99_s={:.3} started_max_s={:.3}",
            f.len(),
            pct(&mut f, 0.5),
            pct(&mut f, 0.99),
            pct(&mut f, 1.0),
            pct(&mut st, 0.5),
            pct(&mut st, 0.99),
            pct(&mut st, 1.0),
        );
    }
    let mut fired: Vec<f64> = fired.iter().map(|(_, l)| *l).collect();
    let mut starts: Vec<f64> = started.iter().map(|(_, l)| *l).collect();
    println!(
        "RESULT name=cairn_scale_firing schedules={total} due={due} jobs={jobs} distinct_occurrences={occurrences} \
         outside_window={outside} fired_p50_s={:.3} fired_p99_s={:.3} fired_max_s={:.3} started={} \
         started_p50_s={:.3} started_p99_s={:.3} started_max_s={:.3}",
        pct(&mut fired, 0.5),
        pct(&mut fired, 0.99),
        pct(&mut fired, 1.0),
        starts.len(),
        pct(&mut starts, 0.5),
        pct(&mut starts, 0.99),
        pct(&mut starts, 1.0),
    );
    println!(
        "RESULT name=cairn_scale_scheduler seconds={busy:.1} cpu_s={:.1} cpu_pct={:.0} rss_mb={:.0} \
         peak_rss_mb={:.0} catalog_calls={calls}",
        after.cpu_secs - before.cpu_secs,
        (after.cpu_secs - before.cpu_secs) / busy * 100.0,
        after.rss_mb,
        peak_rss.max(after.peak_rss_mb),
    );
    anyhow::ensure!(
        jobs as usize == due && occurrences == jobs && outside == 0,
        "not exactly once: {jobs} jobs, {occurrences} occurrences, {outside} outside the window"
    );
    Ok(())
}

async fn history(stack: &Stack, fleet: &Fleet) -> anyhow::Result<()> {
    let n: i64 = env("HISTORY", 1_000_000);
    let started = Instant::now();
    let tasks: Vec<uuid::Uuid> = fleet.tasks.iter().map(|t| t.1).collect();
    let sources: Vec<Option<uuid::Uuid>> =
        fleet.tasks.iter().map(|t| (t.2.len() == 2).then(|| t.2[0])).collect();
    let stores: Vec<uuid::Uuid> = fleet.tasks.iter().map(|t| *t.2.last().expect("store")).collect();
    // 90 days of finished jobs: 90 % succeeded, 5 % failed, 2 % cancelled, 3 % skipped.
    const CHUNK: i64 = 100_000;
    let mut from = 0;
    while from < n {
        let to = (from + CHUNK).min(n);
        let mut tx = stack.pool.begin().await?;
        sqlx::query(
            "WITH t AS (SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[]) WITH ORDINALITY AS t(task, source, store, k)),
                  g AS (SELECT g, now() - make_interval(secs => 90 * 86400.0 * g / $5) AS at FROM generate_series($4, $6 - 1) g),
                  ins AS (
             INSERT INTO jobs (id, task_id, task_display_name, type, trigger, connector_ids, store_ids, selector, state,
                               scheduled_time, run_after, create_time, start_time, end_time, attempt, max_attempts,
                               project_id, source_id)
             SELECT gen_random_uuid(), t.task, 'history', CASE WHEN t.source IS NULL THEN 'CHECK' ELSE 'BACKUP' END,
                    'SCHEDULE', array_remove(ARRAY[t.source, t.store], NULL), ARRAY[t.store], '{}',
                    CASE WHEN g.g % 100 < 90 THEN 'SUCCEEDED' WHEN g.g % 100 < 95 THEN 'FAILED'
                         WHEN g.g % 100 < 97 THEN 'CANCELLED' ELSE 'SKIPPED' END,
                    g.at, g.at, g.at, g.at, g.at + interval '3 minutes', 1, 3, 'default', t.source
               FROM g JOIN t ON t.k = 1 + (g.g * 7919) % cardinality($1::uuid[])
             RETURNING id, connector_ids, create_time)
             INSERT INTO job_connectors (connector_id, job_id, create_time)
             SELECT unnest(connector_ids), id, create_time FROM ins",
        )
        .bind(&tasks)
        .bind(&sources)
        .bind(&stores)
        .bind(from)
        .bind(n as f64)
        .bind(to)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        from = to;
    }
    sqlx::query("ANALYZE jobs").execute(&stack.pool).await?;
    sqlx::query("ANALYZE job_connectors").execute(&stack.pool).await?;
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs").fetch_one(&stack.pool).await?;
    println!("# {total} jobs in history (seeded in {:.0} s)", started.elapsed().as_secs_f64());

    let client = stack.jobs()?;
    let rounds: usize = env("ROUNDS", 40);
    let now = Utc::now();
    type Make = Box<dyn Fn(usize) -> ListJobsRequest>;
    let base = || ListJobsRequest { parent: "projects/default".into(), page_size: 50, ..Default::default() };
    let cases: Vec<(&str, Make)> = vec![
        ("all", Box::new(move |_| base())),
        (
            "task",
            Box::new({
                let tasks = fleet.tasks.iter().map(|t| t.0.clone()).collect::<Vec<_>>();
                move |i| ListJobsRequest { task: tasks[(i * 7) % tasks.len()].clone(), ..base() }
            }),
        ),
        (
            "connector",
            Box::new({
                let c = fleet.connectors.clone();
                move |i| ListJobsRequest { connector: c[i % c.len()].to_string(), ..base() }
            }),
        ),
        (
            "state_failed",
            Box::new(move |_| ListJobsRequest { states: vec![JobState::Failed as i32], ..base() }),
        ),
        (
            "time_range_1d",
            Box::new(move |i| {
                let from = now - Span::days(1 + (i as i64 * 13) % 88);
                ListJobsRequest {
                    create_time_from: Some(to_timestamp(from)),
                    create_time_to: Some(to_timestamp(from + Span::days(1))),
                    ..base()
                }
            }),
        ),
        (
            "task_failed",
            Box::new({
                let tasks = fleet.tasks.iter().map(|t| t.0.clone()).collect::<Vec<_>>();
                move |i| ListJobsRequest {
                    task: tasks[(i * 11) % tasks.len()].clone(),
                    states: vec![JobState::Failed as i32],
                    ..base()
                }
            }),
        ),
        (
            "connector_week",
            Box::new({
                let c = fleet.connectors.clone();
                move |i| {
                    let from = now - Span::days(7 + (i as i64 * 5) % 80);
                    ListJobsRequest {
                        connector: c[(i * 3) % c.len()].to_string(),
                        create_time_from: Some(to_timestamp(from)),
                        create_time_to: Some(to_timestamp(from + Span::days(7))),
                        ..base()
                    }
                }
            }),
        ),
    ];
    for (name, make) in &cases {
        let (mut first, mut next) = (Vec::new(), Vec::new());
        let mut rows = 0;
        for i in 0..rounds {
            let mut c = client.clone();
            let mut req = make(i);
            for page in 0..5 {
                let t = Instant::now();
                let r = c.list_jobs(req.clone()).await?.into_inner();
                let ms = t.elapsed().as_secs_f64() * 1000.0;
                if page == 0 { &mut first } else { &mut next }.push(ms);
                rows += r.jobs.len();
                if r.next_page_token.is_empty() {
                    break;
                }
                req.page_token = r.next_page_token;
            }
        }
        println!(
            "RESULT name=cairn_list_jobs filter={name} jobs={total} queries={} rows={rows} first_p50_ms={:.1} \
             first_p99_ms={:.1} next_p50_ms={:.1} next_p99_ms={:.1}",
            first.len() + next.len(),
            pct(&mut first, 0.5),
            pct(&mut first, 0.99),
            pct(&mut next, 0.5),
            pct(&mut next, 0.99),
        );
    }
    Ok(())
}

async fn watch(stack: &Stack, fleet: &Fleet) -> anyhow::Result<()> {
    let n: usize = env("WATCHERS", 1000).min(fleet.tasks.len());
    let rounds: usize = env("WATCH_ROUNDS", 10);
    // n running jobs: run n tasks, lease them all.
    let jobs = stack.jobs()?;
    let names: Vec<anyhow::Result<String>> =
        stream::iter(fleet.tasks.iter().take(n))
            .map(|t| {
                let mut c = jobs.clone();
                let task = t.0.clone();
                async move {
                    Ok(c.run_task(RunTaskRequest { task, ..Default::default() }).await?.into_inner().name)
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
    let names = names.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    let mut leases_client = stack.leases()?;
    let mut leases = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while leases.len() < n && Instant::now() < deadline {
        let got = leases_client
            .acquire_lease(AcquireLeaseRequest {
                worker_id: "watched".into(),
                capacity: 1000,
                wait: Some(prost_types::Duration { seconds: 1, nanos: 0 }),
                ..Default::default()
            })
            .await?
            .into_inner()
            .leases;
        leases.extend(got.into_iter().filter(|l| l.job.as_ref().is_some_and(|j| names.contains(&j.name))));
    }
    anyhow::ensure!(leases.len() == n, "only {} of {n} jobs were leased", leases.len());
    // One stream per job, over 10 connections (HTTP/2 multiplexes the rest).
    let seen: Arc<Mutex<HashMap<(String, i64), Instant>>> = Arc::default();
    let idle = stack.usage();
    let mut streams = Vec::new();
    for (i, l) in leases.iter().enumerate() {
        let mut c = if i % 100 == 0 { stack.jobs()? } else { jobs.clone() };
        let name = l.job.as_ref().map(|j| j.name.clone()).unwrap_or_default();
        let seen = seen.clone();
        let mut s = c.watch_job(WatchJobRequest { name: name.clone(), from_seq: -1 }).await?.into_inner();
        streams.push(tokio::spawn(async move {
            while let Some(Ok(ev)) = s.next().await {
                if let Some(Event::Job(j)) = ev.event {
                    let done = j.progress.as_ref().map_or(0, |p| p.bytes_done);
                    seen.lock().expect("lock").entry((name.clone(), done)).or_insert_with(Instant::now);
                    if j.state != JobState::Running as i32 {
                        return;
                    }
                }
            }
        }));
    }
    // Ten idle seconds with every stream open: what watching costs when nothing happens.
    let open = stack.usage();
    let xacts = |pool: PgPool| async move {
        sqlx::query_scalar::<_, i64>(
            "SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database WHERE datname = current_database()",
        )
        .fetch_one(&pool)
        .await
        .unwrap_or(0)
    };
    let x0 = xacts(stack.pool.clone()).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let quiet = stack.usage();
    let x1 = xacts(stack.pool.clone()).await;
    println!(
        "RESULT name=cairn_watch_idle streams={n} rss_mb_before={:.0} rss_mb_open={:.0} idle_cpu_pct={:.1} \
         idle_db_xacts_per_s={:.0}",
        idle.rss_mb,
        quiet.rss_mb,
        (quiet.cpu_secs - open.cpu_secs) / 10.0 * 100.0,
        (x1 - x0) as f64 / 10.0
    );
    let mut latencies = Vec::new();
    let before = stack.usage();
    let t_rounds = Instant::now();
    for round in 1..=rounds as i64 {
        let sent: Vec<(String, Instant)> = stream::iter(leases.iter())
            .map(|l| {
                let mut c = leases_client.clone();
                let req = HeartbeatRequest {
                    lease: l.name.clone(),
                    generation: l.generation,
                    progress: Some(JobProgress {
                        phase: "bench".into(),
                        bytes_done: round,
                        ..Default::default()
                    }),
                    lease_token: l.token.clone(),
                };
                let name = l.job.as_ref().map(|j| j.name.clone()).unwrap_or_default();
                async move {
                    let t = Instant::now();
                    let _ = c.heartbeat(req).await;
                    (name, t)
                }
            })
            .buffer_unordered(CONCURRENCY * 2)
            .collect()
            .await;
        let wait_until = Instant::now() + Duration::from_secs(10);
        loop {
            let got = {
                let seen = seen.lock().expect("lock");
                sent.iter().filter(|(name, _)| seen.contains_key(&(name.clone(), round))).count()
            };
            if got == sent.len() || Instant::now() > wait_until {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let seen = seen.lock().expect("lock");
        for (name, t) in &sent {
            match seen.get(&(name.clone(), round)) {
                Some(at) => latencies.push(at.duration_since(*t).as_secs_f64() * 1000.0),
                None => latencies.push(f64::INFINITY),
            }
        }
    }
    let after = stack.usage();
    let spent = t_rounds.elapsed().as_secs_f64();
    let missed = latencies.iter().filter(|l| l.is_infinite()).count();
    println!(
        "RESULT name=cairn_watch streams={n} events={} missed={missed} p50_ms={:.1} p99_ms={:.1} max_ms={:.1} \
         cpu_pct={:.0} rss_mb={:.0}",
        latencies.len(),
        pct(&mut latencies, 0.5),
        pct(&mut latencies, 0.99),
        pct(&mut latencies, 1.0),
        (after.cpu_secs - before.cpu_secs) / spent * 100.0,
        after.rss_mb
    );
    // End them all: every stream must close.
    let completions = leases
        .iter()
        .map(|l| CompleteJobRequest {
            lease: l.name.clone(),
            generation: l.generation,
            outcome: Some(Outcome::Succeeded(JobSucceeded::default())),
            snapshot_index: vec![],
            lease_token: l.token.clone(),
        })
        .collect::<Vec<_>>();
    let t = Instant::now();
    for chunk in completions.chunks(200) {
        leases_client.batch_complete_jobs(BatchCompleteJobsRequest { completions: chunk.to_vec() }).await?;
    }
    for s in streams {
        tokio::time::timeout(Duration::from_secs(30), s).await??;
    }
    println!(
        "RESULT name=cairn_watch_end streams={n} all_closed_ms={:.0}",
        t.elapsed().as_secs_f64() * 1000.0
    );
    Ok(())
}
