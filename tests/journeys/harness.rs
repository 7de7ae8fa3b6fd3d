//! The whole stack for journeys: a fresh database, the real catalog and scheduler on port 0,
//! workers in-process or as real processes (`cairn-test-worker`) that can be killed, and
//! helpers that talk gRPC only.

#![allow(dead_code)]

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Child, Command},
    time::Duration,
};

use cairn_api::v1::{
    CommandSource, Connector, CreateConnectorRequest, CreateScheduleRequest, CreateTaskRequest,
    GetJobRequest, Job, JobState, ListSnapshotsRequest, LocalPathDestination, LocalPathSource, LocalStore,
    Recurrence, RunTaskRequest, Schedule, Snapshot, Task, TaskType,
    catalog_service_client::CatalogServiceClient, connector::Config as Cfg,
    job_service_client::JobServiceClient, recurrence, schedule_service_client::ScheduleServiceClient,
};
use cairn_runtime::CancellationToken;
use cairn_runtime::grpc::ClientInterceptor;
use cairn_testkit::TestDatabase;
use tonic::{codegen::InterceptedService, transport::Channel};

pub const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
pub const PASSWORD: &str = "journey-repo-password";
/// The cluster token of the journeys' stack (authentication is on, as in production).
pub const CLUSTER: &str = "journey-cluster-token-0123456789";
/// The platform admin's API token the journeys call with.
pub const ADMIN: &str = "journey-admin-token-0123456789abcdef";
/// The enrolment token of the journeys' workers (worker pool `bootstrap`).
pub const WORKER: &str = "journey-worker-token-0123456789abcdef";

/// A client channel that sends the admin's token.
pub type Authed = InterceptedService<Channel, ClientInterceptor>;

/// A channel to `url` carrying the admin's token.
pub fn authed(url: &str) -> Authed {
    InterceptedService::new(cairn_runtime::grpc::channel(url).unwrap(), ClientInterceptor::new(Some(ADMIN)))
}

/// The project the journeys work in unless told otherwise.
pub const DEFAULT: &str = "projects/default";

/// A full name in the default project of what a journey calls a resource (full names pass).
pub fn full(collection: &str, raw: &str) -> String {
    if raw.contains('/') { raw.to_owned() } else { format!("{DEFAULT}/{collection}/{raw}") }
}

/// Kills the stalled attempt of [`Stack::stalling_backup`] when dropped: a sleep whose
/// duration no other test uses (tests run side by side).
pub struct KillStall(String);

impl Drop for KillStall {
    fn drop(&mut self) {
        let _ = Command::new("pkill").args(["-f", &self.0]).status();
    }
}

pub struct Stack {
    /// The test's own database (None when [`Options::database_url`] named one).
    pub db: Option<TestDatabase>,
    /// The database the services use.
    pub db_url: String,
    /// Between the scheduler and the catalog, when [`Options::catalog_proxy`] asked for it.
    pub catalog_proxy: Option<cairn_testkit::proxy::FaultProxy>,
    pub dir: tempfile::TempDir,
    pub catalog_url: String,
    pub scheduler_url: String,
    pub catalog: CatalogServiceClient<Authed>,
    pub jobs: JobServiceClient<Authed>,
    pub schedules: ScheduleServiceClient<Authed>,
    /// The scheduler's environment when it is a process ([`Options::scheduler_process`]).
    scheduler_env: Vec<(&'static str, String)>,
    scheduler: Option<Child>,
    /// Process groups killed at drop (replicas started under a wrapper).
    groups: Vec<u32>,
    shutdown: CancellationToken,
    workers: Vec<CancellationToken>,
    processes: Vec<Child>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        for w in &self.workers {
            w.cancel();
        }
        for pgid in &self.groups {
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{pgid}")]).status();
        }
        for p in self.processes.iter_mut().chain(self.scheduler.as_mut()) {
            let _ = p.kill();
            let _ = p.wait();
        }
        self.shutdown.cancel();
    }
}

pub struct Options {
    pub lease_ttl_secs: u64,
    pub snapshot_read_max_bytes: u64,
    /// A database of the test's own (a cluster it stops and starts) instead of a fresh one.
    pub database_url: Option<String>,
    /// The scheduler reaches the catalog through a fault proxy ([`Stack::catalog_proxy`]).
    pub catalog_proxy: bool,
    /// The scheduler is a process of its own (`cairn-test-scheduler`), which the test can
    /// SIGKILL ([`Stack::kill_scheduler`]) and start again ([`Stack::start_scheduler`]).
    pub scheduler_process: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            lease_ttl_secs: 30,
            snapshot_read_max_bytes: 1 << 30,
            database_url: None,
            catalog_proxy: false,
            scheduler_process: false,
        }
    }
}

pub async fn stack() -> Stack {
    stack_with(Options::default()).await
}

pub async fn stack_with(opts: Options) -> Stack {
    let db = match &opts.database_url {
        Some(_) => None,
        None => Some(cairn_testkit::database().await),
    };
    let db_url = opts.database_url.clone().unwrap_or_else(|| db.as_ref().unwrap().url().to_owned());
    let cl = cairn_runtime::grpc::bind(([127, 0, 0, 1], 0).into()).await.unwrap();
    // A scheduler process binds its port itself (again after each restart).
    let sl = match opts.scheduler_process {
        false => Some(cairn_runtime::grpc::bind(([127, 0, 0, 1], 0).into()).await.unwrap()),
        true => None,
    };
    let cl_addr = cl.local_addr().unwrap();
    let catalog_url = format!("http://{cl_addr}");
    let scheduler_url = match &sl {
        Some(sl) => format!("http://{}", sl.local_addr().unwrap()),
        None => format!("http://127.0.0.1:{}", cairn_testkit::free_port()),
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(cairn_catalog::run(
        cairn_catalog::Config {
            database_url: Some(db_url.clone()),
            secret_key: Some(KEY.into()),
            scheduler_url: scheduler_url.clone(),
            cluster_token: Some(CLUSTER.into()),
            bootstrap_token: Some(ADMIN.into()),
            bootstrap_worker_token: Some(WORKER.into()),
            ..Default::default()
        },
        cl,
        shutdown.clone(),
    ));
    let catalog_proxy = match opts.catalog_proxy {
        true => Some(cairn_testkit::proxy::FaultProxy::start(cl_addr).await),
        false => None,
    };
    let catalog_for_scheduler = catalog_proxy.as_ref().map_or_else(|| catalog_url.clone(), |p| p.url());
    let scheduler_env = match sl {
        Some(sl) => {
            tokio::spawn(cairn_scheduler::run(
                cairn_scheduler::Config {
                    database_url: Some(db_url.clone()),
                    catalog_url: catalog_for_scheduler,
                    cluster_token: Some(CLUSTER.into()),
                    lease_ttl_secs: opts.lease_ttl_secs,
                    snapshot_read_max_bytes: opts.snapshot_read_max_bytes,
                    catalog_cache_ms: 0,
                    ..Default::default()
                },
                sl,
                shutdown.clone(),
            ));
            vec![]
        }
        None => {
            vec![
                ("DATABASE_URL", db_url.clone()),
                ("CAIRN_CATALOG_URL", catalog_for_scheduler),
                ("CAIRN_CLUSTER_TOKEN", CLUSTER.into()),
                ("CAIRN_LEASE_TTL_SECS", opts.lease_ttl_secs.to_string()),
                ("CAIRN_SNAPSHOT_READ_MAX_BYTES", opts.snapshot_read_max_bytes.to_string()),
                ("CAIRN_CATALOG_CACHE_MS", "0".into()),
            ]
        }
    };
    cairn_testkit::wait_serving(&catalog_url, "").await;
    let mut stack = Stack {
        db,
        db_url,
        catalog_proxy,
        dir: tempfile::tempdir().unwrap(),
        catalog: CatalogServiceClient::new(authed(&catalog_url)),
        jobs: JobServiceClient::new(authed(&scheduler_url)),
        schedules: ScheduleServiceClient::new(authed(&scheduler_url)),
        catalog_url,
        scheduler_url,
        scheduler_env,
        scheduler: None,
        groups: vec![],
        shutdown,
        workers: vec![],
        processes: vec![],
    };
    match opts.scheduler_process {
        true => stack.start_scheduler().await,
        false => cairn_testkit::wait_serving(&stack.scheduler_url, "").await,
    }
    stack
}

impl Stack {
    /// Starts the scheduler process (again) on its port; returns once it serves.
    pub async fn start_scheduler(&mut self) {
        assert!(self.scheduler.is_none(), "the scheduler process is running");
        let listen = self.scheduler_url.trim_start_matches("http://").to_owned();
        let child = self
            .scheduler_command(&[])
            .env("CAIRN_LISTEN", listen)
            .spawn()
            .expect("start cairn-test-scheduler");
        self.scheduler = Some(child);
        cairn_testkit::wait_serving(&self.scheduler_url, "").await;
    }

    /// The scheduler process's command, run under `wrapper` (e.g. `faketime -f +5s`) when
    /// given; without `CAIRN_LISTEN`.
    pub fn scheduler_command(&self, wrapper: &[&str]) -> Command {
        assert!(!self.scheduler_env.is_empty(), "Options::scheduler_process was not set");
        let exe = env!("CARGO_BIN_EXE_cairn-test-scheduler");
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        cmd.envs(self.scheduler_env.iter().map(|(k, v)| (*k, v))).env("RUST_LOG", "warn");
        cmd
    }

    /// Another scheduler replica as a process (killed with the stack), under `wrapper`; its URL.
    pub async fn scheduler_replica(&mut self, wrapper: &[&str]) -> String {
        let port = cairn_testkit::free_port();
        // A group of its own: a wrapper may fork the scheduler rather than exec it, and the
        // whole group goes at drop.
        let child = std::os::unix::process::CommandExt::process_group(
            self.scheduler_command(wrapper).env("CAIRN_LISTEN", format!("127.0.0.1:{port}")),
            0,
        )
        .spawn()
        .expect("start a scheduler replica");
        self.groups.push(child.id());
        self.processes.push(child);
        let url = format!("http://127.0.0.1:{port}");
        cairn_testkit::wait_serving(&url, "").await;
        url
    }

    /// SIGKILLs the scheduler process and waits for it to be gone.
    pub fn kill_scheduler(&mut self) {
        let mut child = self.scheduler.take().expect("a scheduler process");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Waits for a worker process to exit; its exit status.
    pub fn wait_process(&mut self, pid: u32, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + within;
        let p = self.processes.iter_mut().find(|p| p.id() == pid)?;
        loop {
            if let Ok(Some(status)) = p.try_wait() {
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A worker inside this process.
    pub fn worker(&mut self, id: &str, labels: &str) -> CancellationToken {
        let config = cairn_worker::Config { worker_labels: labels.into(), ..self.worker_config(id) };
        self.worker_with(config)
    }

    /// The configuration [`Stack::worker`] uses, to adjust before [`Stack::worker_with`].
    pub fn worker_config(&self, id: &str) -> cairn_worker::Config {
        cairn_worker::Config {
            scheduler_url: self.scheduler_url.clone(),
            worker_id: id.into(),
            poll_wait_secs: 2,
            grace_period_secs: 5,
            worker_token: Some(WORKER.into()),
            ..Default::default()
        }
    }

    /// A worker inside this process with the given configuration.
    pub fn worker_with(&mut self, config: cairn_worker::Config) -> CancellationToken {
        let token = CancellationToken::new();
        tokio::spawn(cairn_worker::run(config, token.clone()));
        self.workers.push(token.clone());
        token
    }

    /// A worker process (real signals reach it).
    pub fn worker_process(&mut self, id: &str) -> u32 {
        self.worker_process_with(id, 60)
    }

    /// A worker process with a given shutdown grace period.
    pub fn worker_process_with(&mut self, id: &str, grace_secs: u64) -> u32 {
        let child = Command::new(env!("CARGO_BIN_EXE_cairn-test-worker"))
            .env("CAIRN_SCHEDULER_URL", &self.scheduler_url)
            .env("CAIRN_WORKER_ID", id)
            .env("CAIRN_WORKER_TOKEN", WORKER)
            .env("CAIRN_POLL_WAIT_SECS", "2")
            .env("CAIRN_GRACE_PERIOD_SECS", grace_secs.to_string())
            .env("RUST_LOG", "warn")
            .spawn()
            .expect("start cairn-test-worker");
        let pid = child.id();
        self.processes.push(child);
        pid
    }

    pub async fn connector(&mut self, c: Connector) -> Connector {
        self.catalog
            .create_connector(CreateConnectorRequest {
                parent: DEFAULT.into(),
                connector: Some(c),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
    }

    pub async fn local_store(&mut self, name: &str) -> (Connector, PathBuf) {
        let path = self.path(&format!("repos/{name}"));
        let c = self
            .connector(Connector {
                display_name: name.into(),
                config: Some(Cfg::LocalStore(LocalStore { path: path.display().to_string() })),
                repository_password: PASSWORD.into(),
                create_if_missing: true,
                ..Default::default()
            })
            .await;
        (c, path)
    }

    /// An S3 store on an S3-compatible server (moto's test credentials), repository at
    /// `bucket/prefix`, created on first use.
    pub async fn s3_store(&mut self, name: &str, endpoint: &str, bucket: &str, prefix: &str) -> Connector {
        self.connector(Connector {
            display_name: name.into(),
            config: Some(Cfg::S3Store(cairn_api::v1::S3Store {
                endpoint: endpoint.into(),
                bucket: bucket.into(),
                prefix: prefix.into(),
                region: "us-east-1".into(),
                access_key_id: "testing".into(),
                secret_access_key: "testing".into(),
                secret_access_key_set: false,
            })),
            repository_password: PASSWORD.into(),
            create_if_missing: true,
            ..Default::default()
        })
        .await
    }

    /// A BACKUP task `dump` into the local store `nas` whose first attempt streams
    /// `first_bytes` and then stalls forever while later attempts finish at once; the guard that
    /// kills the stalled process (passed or failed: a blocking read of its output would keep the
    /// test's runtime from shutting down) and the repository.
    pub async fn stalling_backup(&mut self, first_bytes: u64) -> (KillStall, PathBuf) {
        let marker = self.path("first-attempt-started");
        static STALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
        let n = STALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let stall = format!("sleep 599.{}{n:04}", std::process::id());
        let script = format!(
            "if [ -e {m} ]; then head -c 2000000 /dev/zero; else touch {m}; head -c {first_bytes} /dev/urandom; exec {stall}; fi",
            m = marker.display()
        );
        self.command_source("dump", &script, "dump.bin").await;
        let (_, repo) = self.local_store("nas").await;
        self.task(Task {
            display_name: "dump".into(),
            r#type: TaskType::Backup as i32,
            source: "dump".into(),
            store: "nas".into(),
            initial_backoff: Some(prost_types::Duration { seconds: 1, nanos: 0 }),
            ..Default::default()
        })
        .await;
        (KillStall(stall), repo)
    }

    pub async fn path_source(&mut self, name: &str, path: &Path) -> Connector {
        self.connector(Connector {
            display_name: name.into(),
            config: Some(Cfg::LocalPathSource(LocalPathSource {
                paths: vec![path.display().to_string()],
                ..Default::default()
            })),
            ..Default::default()
        })
        .await
    }

    pub async fn command_source(&mut self, name: &str, script: &str, file: &str) -> Connector {
        self.connector(Connector {
            display_name: name.into(),
            config: Some(Cfg::CommandSource(CommandSource {
                command: vec!["sh".into(), "-c".into(), script.into()],
                file_name: file.into(),
            })),
            ..Default::default()
        })
        .await
    }

    pub async fn destination(&mut self, name: &str) -> (Connector, PathBuf) {
        let path = self.path(&format!("restores/{name}"));
        std::fs::create_dir_all(&path).unwrap();
        let c = self
            .connector(Connector {
                display_name: name.into(),
                config: Some(Cfg::LocalPathDestination(LocalPathDestination {
                    path: path.display().to_string(),
                })),
                ..Default::default()
            })
            .await;
        (c, path)
    }

    pub async fn task(&mut self, t: Task) -> Task {
        self.catalog
            .create_task(CreateTaskRequest { parent: DEFAULT.into(), task: Some(t), ..Default::default() })
            .await
            .unwrap()
            .into_inner()
    }

    pub async fn run(&mut self, task: &str) -> Job {
        self.jobs
            .run_task(RunTaskRequest { task: full("tasks", task), ..Default::default() })
            .await
            .unwrap()
            .into_inner()
    }

    pub async fn job(&mut self, name: &str) -> Job {
        self.jobs.get_job(GetJobRequest { name: full("jobs", name), view: 2 }).await.unwrap().into_inner()
    }

    /// Waits until the job ends; returns it with its log.
    pub async fn finished(&mut self, name: &str, within: Duration) -> Job {
        self.job_until(name, within, "the job to end", |j| {
            matches!(
                j.state(),
                JobState::Succeeded | JobState::Failed | JobState::Cancelled | JobState::Skipped
            )
        })
        .await
    }

    /// Polls the job until `ready` holds; panics with `what` and the last view after `within`.
    pub async fn job_until(
        &mut self,
        name: &str,
        within: Duration,
        what: &str,
        ready: impl Fn(&Job) -> bool,
    ) -> Job {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let j = self.job(name).await;
            if ready(&j) {
                return j;
            }
            assert!(tokio::time::Instant::now() < deadline, "waiting for {what}: job {name} is {j:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A schedule of `task` on a calendar expression.
    pub async fn schedule(&mut self, name: &str, task: &str, calendar: &str) {
        self.schedules
            .create_schedule(CreateScheduleRequest {
                parent: DEFAULT.into(),
                schedule: Some(Schedule {
                    display_name: name.into(),
                    task: task.into(),
                    recurrence: Some(Recurrence { kind: Some(recurrence::Kind::Calendar(calendar.into())) }),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap();
    }

    /// Runs a task and requires success.
    pub async fn run_ok(&mut self, task: &str) -> Job {
        let j = self.run(task).await;
        let done = self.finished(&j.name, Duration::from_secs(120)).await;
        assert_eq!(done.state(), JobState::Succeeded, "{} failed: {}\n{}", task, done.error, log_text(&done));
        done
    }

    pub async fn snapshots(&mut self, store: &str) -> Vec<Snapshot> {
        self.jobs
            .list_snapshots(ListSnapshotsRequest {
                parent: DEFAULT.into(),
                store: store.into(),
                page_size: 1000,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .snapshots
    }
}

pub fn log_text(j: &Job) -> String {
    j.log.iter().map(|l| format!("{:>3} {}", l.seq, l.message)).collect::<Vec<_>>().join("\n")
}

/// A deterministic tree: nested directories, small and larger files, an empty file.
pub fn generate_tree(root: &Path, files: usize, seed: u64) {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..files {
        let dir = root.join(format!("d{}/e{}", i % 7, i % 3));
        std::fs::create_dir_all(&dir).unwrap();
        let len = match i % 10 {
            0 => 0,
            1 => 300_000 + (next() % 200_000) as usize,
            _ => (next() % 20_000) as usize,
        };
        let data: Vec<u8> = (0..len).map(|_| (next() & 0xff) as u8).collect();
        std::fs::write(dir.join(format!("f{i}.bin")), data).unwrap();
    }
    std::fs::write(root.join("README"), b"cairn journey\n").unwrap();
}

/// Every regular file under `root` by relative path.
pub fn read_tree(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                out.insert(
                    e.path().strip_prefix(root).unwrap().to_path_buf(),
                    std::fs::read(e.path()).unwrap(),
                );
            }
        }
    }
    out
}

/// `restic` on PATH, or None (the caller prints a skip note).
pub fn restic() -> Option<PathBuf> {
    std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).map(|d| d.join("restic")).find(|c| c.is_file()))
}
