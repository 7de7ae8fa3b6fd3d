//! The worker binary's Prometheus endpoint after it ran a real backup from a real scheduler.

use std::time::Duration;

use cairn_api::v1::{
    Connector, CreateConnectorRequest, CreateTaskRequest, GetJobRequest, JobState, LocalPathSource,
    LocalStore, RunTaskRequest, Task, TaskType, catalog_service_client::CatalogServiceClient,
    connector::Config as Cfg, job_service_client::JobServiceClient,
};
use cairn_runtime::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_runs_jobs_and_serves_metrics() {
    let db = cairn_testkit::database().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/f.txt"), vec![1u8; 100_000]).unwrap();
    let cl = cairn_runtime::grpc::bind(([127, 0, 0, 1], 0).into()).await.unwrap();
    let sl = cairn_runtime::grpc::bind(([127, 0, 0, 1], 0).into()).await.unwrap();
    let (catalog_url, scheduler_url) =
        (format!("http://{}", cl.local_addr().unwrap()), format!("http://{}", sl.local_addr().unwrap()));
    let stop = CancellationToken::new();
    tokio::spawn(cairn_catalog::run(
        cairn_catalog::Config {
            auth_disabled: true,
            database_url: Some(db.url().into()),
            dev_ephemeral_key: true,
            scheduler_url: scheduler_url.clone(),
            ..Default::default()
        },
        cl,
        stop.clone(),
    ));
    tokio::spawn(cairn_scheduler::run(
        cairn_scheduler::Config {
            auth_disabled: true,
            database_url: Some(db.url().into()),
            catalog_url: catalog_url.clone(),
            ..Default::default()
        },
        sl,
        stop.clone(),
    ));
    cairn_testkit::wait_serving(&scheduler_url, "").await;
    cairn_testkit::wait_serving(&catalog_url, "").await;
    let metrics = cairn_testkit::free_port();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_cairn-worker"))
        .env("CAIRN_SCHEDULER_URL", &scheduler_url)
        .env("CAIRN_METRICS_LISTEN", format!("127.0.0.1:{metrics}"))
        .env("CAIRN_WORKER_LABELS", "zone=test")
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let _p = cairn_testkit::Process(child);
    let mut catalog = CatalogServiceClient::connect(catalog_url).await.unwrap();
    for c in [
        Connector {
            display_name: "src".into(),
            config: Some(Cfg::LocalPathSource(LocalPathSource {
                paths: vec![dir.path().join("src").display().to_string()],
                ..Default::default()
            })),
            worker_selector: [("zone".to_owned(), "test".to_owned())].into(),
            ..Default::default()
        },
        Connector {
            display_name: "nas".into(),
            config: Some(Cfg::LocalStore(LocalStore { path: dir.path().join("repo").display().to_string() })),
            repository_password: "pw".into(),
            create_if_missing: true,
            ..Default::default()
        },
    ] {
        catalog
            .create_connector(CreateConnectorRequest {
                parent: "projects/default".into(),
                connector: Some(c),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    catalog
        .create_task(CreateTaskRequest {
            parent: "projects/default".into(),
            task: Some(Task {
                display_name: "b".into(),
                r#type: TaskType::Backup as i32,
                source: "src".into(),
                store: "nas".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut jobs = JobServiceClient::connect(scheduler_url).await.unwrap();
    let job = jobs
        .run_task(RunTaskRequest { task: "projects/default/tasks/b".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    cairn_testkit::eventually(Duration::from_secs(60), "the backup", || {
        let (mut jobs, name) = (jobs.clone(), job.name.clone());
        async move {
            let j = jobs.get_job(GetJobRequest { name, view: 1 }).await.ok()?.into_inner();
            (j.state() == JobState::Succeeded).then_some(())
        }
    })
    .await;
    let body = cairn_testkit::eventually(Duration::from_secs(10), "metrics", || async {
        let (status, body) = cairn_testkit::http_get(&format!("http://127.0.0.1:{metrics}/metrics")).await?;
        (status == 200 && body.contains("cairn_worker_jobs_total")).then_some(body)
    })
    .await;
    for name in [
        "cairn_worker_jobs_total{state=\"SUCCEEDED\"} 1",
        "cairn_worker_job_duration_seconds",
        "cairn_worker_jobs_running 0",
        "cairn_worker_capacity",
    ] {
        assert!(body.contains(name), "{name} missing:\n{body}");
    }
    let processed = body.lines().find(|l| l.starts_with("cairn_worker_bytes_processed_total")).unwrap();
    assert!(processed.ends_with(" 100000"), "{processed}");
    assert!(body.contains("cairn_worker_bytes_added_total"));
    // The metrics port doubles as the worker's liveness endpoint.
    let (status, _) = cairn_testkit::http_get(&format!("http://127.0.0.1:{metrics}/health")).await.unwrap();
    assert_eq!(status, 200);
    stop.cancel();
}
