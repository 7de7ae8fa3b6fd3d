//! The single-node server keeps its state: a second start on the same data directory finds
//! what was created before, still opens the repository with the stored password (the kept
//! secret key), and deals with the schedule occurrences it missed while down the way the
//! specification says (one catch-up job for a journalised schedule, a skip record for the
//! others); a second process on a data directory in use is refused.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::TcpListener,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use cairn_api::v1::{
    BackupOptions, Connector, CreateConnectorRequest, CreateScheduleRequest, CreateTaskRequest,
    GetConnectorRequest, JobState, JobTrigger, ListJobsRequest, LocalPathSource, LocalStore, Recurrence,
    Schedule, Task, TaskType, TestConnectorRequest, catalog_service_client::CatalogServiceClient,
    connector::Config as Cfg, job_service_client::JobServiceClient, recurrence::Kind,
    schedule_service_client::ScheduleServiceClient, task::Options,
};
use cairn_runtime::grpc::ClientInterceptor;
use tonic::{codegen::InterceptedService, transport::Channel};

fn port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running `cairn-server`, killed at drop if still running (a failing test leaks nothing).
struct Server {
    child: Child,
    catalog: String,
    scheduler: String,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Server {
    fn start(dir: &Path) -> Server {
        let (c, s, ui, m) = (port(), port(), port(), port());
        let log = dir.with_extension("log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_cairn-server"))
            .arg("--data-dir")
            .arg(dir)
            .args(["--catalog-listen", &format!("127.0.0.1:{c}")])
            .args(["--scheduler-listen", &format!("127.0.0.1:{s}")])
            .args(["--console-listen", &format!("127.0.0.1:{ui}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{m}")])
            // An occurrence more than 2 s late counts as missed (60 s by default).
            .env("CAIRN_MISSED_RUN_GRACE_SECS", "2")
            .env_remove("DATABASE_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start cairn-server");
        // Its output goes to a log (shown when something fails); a closed pipe would end it.
        let (tx, rx) = std::sync::mpsc::channel();
        let out = BufReader::new(child.stdout.take().unwrap());
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                let _ = writeln!(file, "{line}");
                if line.contains("Cairn is up") {
                    let _ = tx.send(());
                }
            }
        });
        let server = Server {
            child,
            catalog: format!("http://127.0.0.1:{c}"),
            scheduler: format!("http://127.0.0.1:{s}"),
            log,
        };
        if rx.recv_timeout(Duration::from_secs(120)).is_err() {
            panic!("cairn-server was not up in time\n{}", server.log_tail());
        }
        server
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// SIGTERM; it must exit cleanly and soon.
    fn stop(mut self) {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "cairn-server ended with {status}\n{}", self.log_tail());
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("cairn-server did not exit within 30 s of SIGTERM\n{}", self.log_tail());
    }

    fn interceptor(dir: &Path) -> ClientInterceptor {
        let token = std::fs::read_to_string(dir.join("admin.token")).unwrap();
        ClientInterceptor::new(Some(token.trim()))
    }

    fn catalog(&self, dir: &Path) -> CatalogServiceClient<InterceptedService<Channel, ClientInterceptor>> {
        let channel = cairn_runtime::grpc::channel(&self.catalog).unwrap();
        CatalogServiceClient::with_interceptor(channel, Self::interceptor(dir))
    }

    fn jobs(&self, dir: &Path) -> JobServiceClient<InterceptedService<Channel, ClientInterceptor>> {
        let channel = cairn_runtime::grpc::channel(&self.scheduler).unwrap();
        JobServiceClient::with_interceptor(channel, Self::interceptor(dir))
    }

    fn schedules(&self, dir: &Path) -> ScheduleServiceClient<InterceptedService<Channel, ClientInterceptor>> {
        let channel = cairn_runtime::grpc::channel(&self.scheduler).unwrap();
        ScheduleServiceClient::with_interceptor(channel, Self::interceptor(dir))
    }
}

/// TestConnector on the store, retried while the stack is still coming up.
async fn test_store(
    c: &mut CatalogServiceClient<InterceptedService<Channel, ClientInterceptor>>,
) -> cairn_api::v1::ConnectionTest {
    let req = TestConnectorRequest { name: "projects/default/connectors/nas".into(), ..Default::default() };
    for _ in 0..60 {
        match c.test_connector(req.clone()).await {
            Ok(r) => return r.into_inner(),
            Err(s) if s.code() == tonic::Code::Unavailable => {
                tokio::time::sleep(Duration::from_millis(500)).await
            }
            Err(s) => panic!("{s:?}"),
        }
    }
    panic!("the stack never answered TestConnector")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_everything_and_one_process_owns_the_data_directory() {
    if cairn_localpg::find_binaries().is_none() {
        eprintln!("SKIP: no Postgres binaries");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // As root, Postgres runs as `postgres`, which must reach the directory.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = tmp.path().join("cairn");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("a.txt"), "kept").unwrap();

    let s = Server::start(&dir);
    for secret in ["admin.token", "admin.password", "secret.key"] {
        let mode = std::fs::metadata(dir.join(secret)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{secret}");
    }
    let mut c = s.catalog(&dir);
    let connector = |name: &str, config: Cfg| CreateConnectorRequest {
        parent: "projects/default".into(),
        connector: Some(Connector {
            display_name: name.into(),
            config: Some(config),
            repository_password: if name == "nas" {
                "a kept repository password".into()
            } else {
                String::new()
            },
            create_if_missing: name == "nas",
            ..Default::default()
        }),
        ..Default::default()
    };
    let repo = tmp.path().join("repo").display().to_string();
    c.create_connector(connector("nas", Cfg::LocalStore(LocalStore { path: repo }))).await.unwrap();
    c.create_connector(connector(
        "docs",
        Cfg::LocalPathSource(LocalPathSource {
            paths: vec![data.display().to_string()],
            ..Default::default()
        }),
    ))
    .await
    .unwrap();
    let first = test_store(&mut c).await;
    assert!(first.initialized && first.readable, "{first:?}");
    c.create_task(CreateTaskRequest {
        parent: "projects/default".into(),
        task: Some(Task {
            display_name: "docs".into(),
            r#type: TaskType::Backup as i32,
            source: "docs".into(),
            store: "nas".into(),
            options: Some(Options::Backup(BackupOptions::default())),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    // Two schedules due once, a few seconds from now, while the server is down.
    let due = chrono::Utc::now() + chrono::Duration::seconds(12);
    let calendar = due.format("%Y-%m-%d %H:%M:%S").to_string();
    let mut sc = s.schedules(&dir);
    for (name, journalised) in [("journalised", true), ("plain", false)] {
        sc.create_schedule(CreateScheduleRequest {
            parent: "projects/default".into(),
            schedule: Some(Schedule {
                display_name: name.into(),
                task: "projects/default/tasks/docs".into(),
                recurrence: Some(Recurrence { kind: Some(Kind::Calendar(calendar.clone())) }),
                time_zone: "UTC".into(),
                journalised,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    }

    // A second process on the same data directory is refused at once.
    let second =
        Command::new(env!("CARGO_BIN_EXE_cairn-server")).arg("--data-dir").arg(&dir).output().unwrap();
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("another Cairn is running on the data directory"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );

    s.stop();
    assert!(chrono::Utc::now() < due, "the server took too long to stop for the missed-run check");
    // Down past the occurrence and its grace.
    tokio::time::sleep((due - chrono::Utc::now()).to_std().unwrap() + Duration::from_secs(4)).await;

    let s = Server::start(&dir);
    let mut c = s.catalog(&dir);
    let kept = c
        .get_connector(GetConnectorRequest { name: "projects/default/connectors/nas".into() })
        .await
        .unwrap()
        .into_inner();
    assert!(kept.repository_password_set);
    // The stored password still opens the repository: the secret key was kept.
    let again = test_store(&mut c).await;
    assert!(again.readable && again.ok, "{again:?}");

    // The missed occurrence: one catch-up job (journalised), one skip record (plain).
    let mut jobs = s.jobs(&dir);
    let mut found = Vec::new();
    for _ in 0..60 {
        found = jobs
            .list_jobs(ListJobsRequest {
                parent: "projects/default".into(),
                task: "projects/default/tasks/docs".into(),
                page_size: 100,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .jobs;
        if found.len() >= 2 && found.iter().any(|j| j.state() == JobState::Succeeded) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let catch_up: Vec<_> = found.iter().filter(|j| j.trigger() == JobTrigger::CatchUp).collect();
    let skipped: Vec<_> = found.iter().filter(|j| j.state() == JobState::Skipped).collect();
    assert_eq!((catch_up.len(), skipped.len(), found.len()), (1, 1, 2), "{found:#?}\n{}", s.log_tail());
    assert_eq!(catch_up[0].state(), JobState::Succeeded, "{:?}", catch_up[0]);
    assert_eq!(catch_up[0].missed_occurrences, 1);
    assert_eq!(skipped[0].missed_occurrences, 1);
    s.stop();
}
