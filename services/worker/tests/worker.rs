//! The worker against a scripted lease client (the seam) and the real engine on real
//! repositories in temporary directories.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use cairn_api::v1::{
    CompleteJobRequest, Connector, HeartbeatResponse, Job, JobProgress, Lease, LocalPathDestination,
    LocalPathSource, LocalStore, LogLine, ResolvedConnector, ResolvedTask, RestoreOptions, Task, TaskType,
    complete_job_request::Outcome, connector::Config as Cfg, task::Options,
};
use cairn_engine::Engine;
use cairn_worker::{Config, Ended, LeaseClient, SharedClient};
use tokio_util::sync::CancellationToken;
use tonic::Status;

#[derive(Default)]
struct Script {
    leases: VecDeque<Lease>,
    cancel_after_beats: Option<usize>,
    lose_lease: bool,
    beats: usize,
    progress: Vec<JobProgress>,
    lines: Vec<LogLine>,
    completions: Vec<CompleteJobRequest>,
}

#[derive(Clone, Default)]
struct Fake(Arc<Mutex<Script>>);

#[tonic::async_trait]
impl LeaseClient for Fake {
    async fn acquire(
        &self,
        _: &str,
        _: &HashMap<String, String>,
        _: &[String],
        capacity: i32,
        wait: Duration,
    ) -> Result<Vec<Lease>, Status> {
        let got: Vec<Lease> = {
            let mut s = self.0.lock().unwrap();
            (0..capacity).filter_map(|_| s.leases.pop_front()).collect()
        };
        if got.is_empty() {
            tokio::time::sleep(wait.min(Duration::from_millis(50))).await;
        }
        Ok(got)
    }
    async fn heartbeat(&self, _: &Lease, progress: Option<JobProgress>) -> Result<HeartbeatResponse, Status> {
        let mut s = self.0.lock().unwrap();
        if s.lose_lease {
            return Err(cairn_runtime::status::with_reason(tonic::Code::Aborted, "LEASE_LOST", "lost"));
        }
        s.beats += 1;
        s.progress.extend(progress);
        Ok(HeartbeatResponse {
            cancel_requested: s.cancel_after_beats.is_some_and(|n| s.beats >= n),
            expire_time: None,
        })
    }
    async fn append_log(&self, _: &Lease, lines: Vec<LogLine>) -> Result<(), Status> {
        let mut s = self.0.lock().unwrap();
        for l in lines {
            if !s.lines.iter().any(|x| x.seq == l.seq) {
                s.lines.push(l);
            }
        }
        Ok(())
    }
    async fn complete(&self, req: CompleteJobRequest) -> Result<(), Status> {
        self.0.lock().unwrap().completions.push(req);
        Ok(())
    }
}

fn store(path: &std::path::Path) -> ResolvedConnector {
    ResolvedConnector {
        connector: Some(Connector {
            name: "projects/default/connectors/0193f3a2-6b1c-7cc0-8a5e-3b0c1d2e3f41".into(),
            display_name: "nas".into(),
            config: Some(Cfg::LocalStore(LocalStore { path: path.display().to_string() })),
            create_if_missing: true,
            ..Default::default()
        }),
        secrets: [("repository_password".to_owned(), "s3cret-pw".to_owned())].into(),
    }
}

fn lease(n: u32, task: Task, resolved: ResolvedTask) -> Lease {
    Lease {
        name: format!("leases/0193f3a2-6b1c-7cc0-8a5e-3b0c1d2e3f{n:02}"),
        generation: 1,
        job: Some(Job {
            name: format!("projects/default/jobs/0193f3a2-6b1c-7cc0-8a5e-3b0c1d2e3e{n:02}"),
            r#type: task.r#type,
            attempt: 1,
            max_attempts: 3,
            ..Default::default()
        }),
        task: Some(ResolvedTask { task: Some(task), ..resolved }),
        ttl: Some(prost_types::Duration { seconds: 3, nanos: 0 }),
        ..Default::default()
    }
}

fn task(ty: TaskType) -> Task {
    Task {
        name: "projects/default/tasks/0193f3a2-6b1c-7cc0-8a5e-3b0c1d2e3f99".into(),
        display_name: "t".into(),
        r#type: ty as i32,
        ..Default::default()
    }
}

fn source(path: &std::path::Path) -> ResolvedConnector {
    ResolvedConnector {
        connector: Some(Connector {
            display_name: "src".into(),
            config: Some(Cfg::LocalPathSource(LocalPathSource {
                paths: vec![path.display().to_string()],
                ..Default::default()
            })),
            ..Default::default()
        }),
        secrets: HashMap::new(),
    }
}

async fn run(fake: &Fake, capacity: u32, shutdown: CancellationToken) -> Vec<Ended> {
    let config = Config { capacity, poll_wait_secs: 1, grace_period_secs: 1, ..Default::default() };
    let client: SharedClient = Arc::new(fake.clone());
    cairn_worker::run_with(config, client, Engine::new(), shutdown).await.unwrap()
}

/// Runs until every scripted lease completed (or was lost), then stops the worker.
async fn run_all(fake: &Fake, expected: usize) -> Vec<Ended> {
    let shutdown = CancellationToken::new();
    let stopper = {
        let (fake, shutdown) = (fake.clone(), shutdown.clone());
        tokio::spawn(async move {
            for _ in 0..600 {
                if fake.0.lock().unwrap().completions.len() >= expected {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            shutdown.cancel();
        })
    };
    let ended = run(fake, 2, shutdown).await;
    stopper.await.unwrap();
    ended
}

fn write_tree(root: &std::path::Path) {
    std::fs::create_dir_all(root.join("a/b")).unwrap();
    std::fs::write(root.join("a/hello.txt"), b"hello world").unwrap();
    std::fs::write(root.join("a/b/big.bin"), vec![7u8; 3 << 20]).unwrap();
    std::fs::write(root.join("empty"), b"").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_then_restore_round_trips_with_progress_and_logs() {
    let dir = tempfile::tempdir().unwrap();
    let (src, repo, dst) = (dir.path().join("src"), dir.path().join("repo"), dir.path().join("dst"));
    write_tree(&src);
    std::fs::create_dir_all(&dst).unwrap();
    let fake = Fake::default();
    let backup = lease(
        1,
        Task { labels: vec!["prod".into()], ..task(TaskType::Backup) },
        ResolvedTask { source: Some(source(&src)), store: Some(store(&repo)), ..Default::default() },
    );
    fake.0.lock().unwrap().leases.push_back(backup);
    let ended = run_all(&fake, 1).await;
    assert_eq!(ended, vec![Ended::Reported("SUCCEEDED")]);
    let (snapshot, index) = {
        let s = fake.0.lock().unwrap();
        let c = &s.completions[0];
        let Some(Outcome::Succeeded(ok)) = &c.outcome else { panic!("{:?}", c.outcome) };
        assert_eq!(ok.stats.as_ref().unwrap().files_new, 3);
        assert!(
            s.lines.iter().any(|l| l.message.contains("snapshot") && l.message.contains("saved")),
            "{:?}",
            s.lines
        );
        assert!(s.lines.iter().any(|l| l.message.starts_with("attempt 1 of 3 started")));
        let seqs: Vec<i64> = s.lines.iter().map(|l| l.seq).collect();
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "gap-free worker sequence: {seqs:?}");
        assert!(!s.lines.iter().any(|l| l.message.contains("s3cret-pw")), "no secret in logs");
        (ok.snapshot.clone(), c.snapshot_index.clone())
    };
    assert_eq!(index.len(), 1);
    assert_eq!(index[0].snapshots.len(), 1);
    assert_eq!(index[0].snapshots[0].id, snapshot);
    assert!(index[0].snapshots[0].labels.contains(&"prod".to_owned()));
    assert!(index[0].snapshots[0].labels.iter().any(|l| l.starts_with("cairn-task=")));

    let restore = lease(
        2,
        Task {
            options: Some(Options::Restore(RestoreOptions::default())),
            labels: vec!["prod".into()],
            ..task(TaskType::Restore)
        },
        ResolvedTask {
            store: Some(store(&repo)),
            destination: Some(ResolvedConnector {
                connector: Some(Connector {
                    display_name: "dst".into(),
                    config: Some(Cfg::LocalPathDestination(LocalPathDestination {
                        path: dst.display().to_string(),
                    })),
                    ..Default::default()
                }),
                secrets: HashMap::new(),
            }),
            ..Default::default()
        },
    );
    let fake2 = Fake::default();
    fake2.0.lock().unwrap().leases.push_back(restore);
    assert_eq!(run_all(&fake2, 1).await, vec![Ended::Reported("SUCCEEDED")]);
    let restored_root = dst.join(src.strip_prefix("/").unwrap());
    assert_eq!(std::fs::read(restored_root.join("a/hello.txt")).unwrap(), b"hello world");
    assert_eq!(std::fs::read(restored_root.join("a/b/big.bin")).unwrap(), vec![7u8; 3 << 20]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_requests_stop_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..40 {
        std::fs::write(src.join(format!("f{i}")), vec![i as u8; 4 << 20]).unwrap();
    }
    let fake = Fake::default();
    {
        let mut s = fake.0.lock().unwrap();
        s.cancel_after_beats = Some(1);
        s.leases.push_back(lease(
            3,
            task(TaskType::Backup),
            ResolvedTask {
                source: Some(source(&src)),
                store: Some(store(&dir.path().join("repo"))),
                ..Default::default()
            },
        ));
    }
    let ended = run_all(&fake, 1).await;
    assert_eq!(ended, vec![Ended::Reported("CANCELLED")]);
    let s = fake.0.lock().unwrap();
    assert!(matches!(s.completions[0].outcome, Some(Outcome::Cancelled(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_lease_is_abandoned_without_reporting() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..40 {
        std::fs::write(src.join(format!("f{i}")), vec![i as u8; 4 << 20]).unwrap();
    }
    let fake = Fake::default();
    {
        let mut s = fake.0.lock().unwrap();
        s.lose_lease = true;
        s.leases.push_back(lease(
            4,
            task(TaskType::Backup),
            ResolvedTask {
                source: Some(source(&src)),
                store: Some(store(&dir.path().join("repo"))),
                ..Default::default()
            },
        ));
    }
    let shutdown = CancellationToken::new();
    let s2 = shutdown.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        s2.cancel();
    });
    let ended = run(&fake, 1, shutdown).await;
    assert_eq!(ended, vec![Ended::LeaseLost]);
    assert!(fake.0.lock().unwrap().completions.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_after_the_grace_period_reports_a_retryable_failure() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::default();
    let mut t = task(TaskType::Backup);
    t.labels = vec![];
    let slow = ResolvedConnector {
        connector: Some(Connector {
            display_name: "slow".into(),
            config: Some(Cfg::CommandSource(cairn_api::v1::CommandSource {
                command: vec!["sh".into(), "-c".into(), "sleep 30; echo late".into()],
                file_name: "late.txt".into(),
            })),
            ..Default::default()
        }),
        secrets: HashMap::new(),
    };
    fake.0.lock().unwrap().leases.push_back(lease(
        5,
        t,
        ResolvedTask {
            source: Some(slow),
            store: Some(store(&dir.path().join("repo"))),
            ..Default::default()
        },
    ));
    let shutdown = CancellationToken::new();
    let s2 = shutdown.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(800)).await;
        s2.cancel();
    });
    let started = std::time::Instant::now();
    let ended = run(&fake, 1, shutdown).await;
    assert!(started.elapsed() < Duration::from_secs(20), "the grace period bounds shutdown");
    assert_eq!(ended, vec![Ended::Reported("FAILED")]);
    let s = fake.0.lock().unwrap();
    let Some(Outcome::Failed(f)) = &s.completions[0].outcome else { panic!() };
    assert!(f.retryable, "{f:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_leases_fail_permanently() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::default();
    let mut nopw = store(&dir.path().join("repo"));
    nopw.secrets.clear();
    fake.0.lock().unwrap().leases.push_back(lease(
        6,
        task(TaskType::Check),
        ResolvedTask { store: Some(nopw), ..Default::default() },
    ));
    assert_eq!(run_all(&fake, 1).await, vec![Ended::Reported("FAILED")]);
    let s = fake.0.lock().unwrap();
    let Some(Outcome::Failed(f)) = &s.completions[0].outcome else { panic!() };
    assert!(!f.retryable);
    assert!(f.error.contains("password"), "{}", f.error);
}
