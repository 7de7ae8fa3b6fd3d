//! A database made and filled by the first release (no projects, flat names) migrates forward:
//! every resource lands in `default` under the same ids, schedules keep their next
//! occurrences, job history, logs, the snapshot index and the notification outbox survive,
//! sealed secrets still open, and flat names are refused with the new form.
//!
//! The fixture (`tests/fixtures/first-release.sql`) was produced by the first release's own
//! binaries and CLI; its header says how.

use std::collections::BTreeMap;

use cairn_api::v1::{
    GetConnectorRequest, GetJobRequest, JobState, ListConnectorsRequest, ListJobsRequest,
    ListProjectsRequest, ListSchedulesRequest, ListSnapshotsRequest, ListTasksRequest,
    ResolveConnectorRequest, ResolveTasksRequest,
    catalog_internal_service_client::CatalogInternalServiceClient,
    catalog_service_client::CatalogServiceClient, job_service_client::JobServiceClient,
    schedule_service_client::ScheduleServiceClient,
};
use cairn_runtime::CancellationToken;
use chrono::{DateTime, Utc};
use tonic::Code;
use uuid::Uuid;

const FIXTURE: &str = include_str!("../fixtures/first-release.sql");
/// base64("cairn-migration-fixture-key-0001"), the key the fixture's secrets were sealed with.
const FIXTURE_KEY: &str = "Y2Fpcm4tbWlncmF0aW9uLWZpeHR1cmUta2V5LTAwMDE=";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_release_database_migrates_into_the_default_project() {
    let db = cairn_testkit::database().await;
    let pool = sqlx::PgPool::connect(db.url()).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(FIXTURE)).execute(&pool).await.unwrap();
    // What the first release wrote, read before the new services touch it.
    let connectors: BTreeMap<String, Uuid> =
        sqlx::query_as("SELECT display_name, id FROM catalog.connectors")
            .fetch_all(&pool)
            .await
            .unwrap()
            .into_iter()
            .collect();
    let tasks: BTreeMap<String, Uuid> = sqlx::query_as("SELECT display_name, id FROM catalog.tasks")
        .fetch_all(&pool)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let next_runs: BTreeMap<String, Option<DateTime<Utc>>> =
        sqlx::query_as("SELECT display_name, next_run_time FROM scheduler.schedules")
            .fetch_all(&pool)
            .await
            .unwrap()
            .into_iter()
            .collect();
    let jobs_before: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT id, state FROM scheduler.jobs ORDER BY id").fetch_all(&pool).await.unwrap();
    let lines_before: i64 =
        sqlx::query_scalar("SELECT count(*) FROM scheduler.job_logs").fetch_one(&pool).await.unwrap();
    let snapshots_before: i64 =
        sqlx::query_scalar("SELECT count(*) FROM scheduler.snapshots").fetch_one(&pool).await.unwrap();
    let outbox_before: i64 =
        sqlx::query_scalar("SELECT count(*) FROM scheduler.notifications").fetch_one(&pool).await.unwrap();
    assert_eq!((connectors.len(), tasks.len(), next_runs.len(), jobs_before.len()), (3, 4, 3, 4));

    // The new services migrate at start-up. The clock stands just after the fixture was made, so
    // no occurrence is due and nothing fires while the test looks.
    let shutdown = CancellationToken::new();
    let cl = cairn_runtime::grpc::bind(([127, 0, 0, 1], 0).into()).await.unwrap();
    let sl = cairn_runtime::grpc::bind(([127, 0, 0, 1], 0).into()).await.unwrap();
    let catalog_url = format!("http://{}", cl.local_addr().unwrap());
    let scheduler_url = format!("http://{}", sl.local_addr().unwrap());
    tokio::spawn(cairn_catalog::run(
        cairn_catalog::Config {
            auth_disabled: true,
            database_url: Some(db.url().into()),
            secret_key: Some(FIXTURE_KEY.into()),
            scheduler_url: scheduler_url.clone(),
            ..Default::default()
        },
        cl,
        shutdown.clone(),
    ));
    let clock = cairn_scheduler::ManualClock::new("2026-12-01T09:01:50Z".parse().unwrap());
    tokio::spawn(cairn_scheduler::run_with_clock(
        cairn_scheduler::Config {
            auth_disabled: true,
            database_url: Some(db.url().into()),
            catalog_url: catalog_url.clone(),
            ..Default::default()
        },
        sl,
        shutdown.clone(),
        None,
        clock,
    ));
    cairn_testkit::wait_serving(&catalog_url, "cairn.v1.CatalogService").await;
    cairn_testkit::wait_serving(&scheduler_url, "cairn.v1.JobService").await;
    let mut catalog = CatalogServiceClient::connect(catalog_url.clone()).await.unwrap();
    let mut internal = CatalogInternalServiceClient::connect(catalog_url).await.unwrap();
    let mut jobs = JobServiceClient::connect(scheduler_url.clone()).await.unwrap();
    let mut schedules = ScheduleServiceClient::connect(scheduler_url).await.unwrap();
    let d = "projects/default";

    let projects = catalog.list_projects(ListProjectsRequest::default()).await.unwrap().into_inner().projects;
    assert_eq!(projects.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), [d]);
    // Every connector and task is in default, under its old id.
    let listed = catalog
        .list_connectors(ListConnectorsRequest { parent: d.into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .connectors;
    let got: BTreeMap<String, String> = listed.into_iter().map(|c| (c.display_name, c.name)).collect();
    let want: BTreeMap<String, String> =
        connectors.iter().map(|(n, id)| (n.clone(), format!("{d}/connectors/{id}"))).collect();
    assert_eq!(got, want);
    let listed = catalog
        .list_tasks(ListTasksRequest { parent: d.into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .tasks;
    assert_eq!(listed.len(), 4);
    for t in &listed {
        assert_eq!(t.name, format!("{d}/tasks/{}", tasks[&t.display_name]));
        assert_eq!(t.store, format!("{d}/connectors/{}", connectors["nas"]), "{}", t.display_name);
    }
    let nas = catalog
        .get_connector(GetConnectorRequest { name: format!("{d}/connectors/nas") })
        .await
        .unwrap()
        .into_inner();
    let verdict = nas.last_test.expect("the first release's connection test verdict");
    assert!(verdict.ok && verdict.job.starts_with("projects/default/jobs/"), "{verdict:?}");
    // Sealed secrets still open (they are bound to the record's id, not to its name).
    let resolved = internal
        .resolve_connector(ResolveConnectorRequest {
            name: format!("{d}/connectors/nas"),
            with_secrets: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        resolved.secrets.get("repository_password").map(String::as_str),
        Some("fixture repository password")
    );
    let hooked = internal
        .resolve_tasks(ResolveTasksRequest {
            names: vec![format!("{d}/tasks/web-hooked")],
            with_secrets: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        hooked.tasks[0].secrets.get("webhook:http://127.0.0.1:9/hook").map(String::as_str),
        Some("fixture-webhook-secret")
    );
    // Schedules keep their occurrences, pause and journal.
    let listed = schedules
        .list_schedules(ListSchedulesRequest { parent: d.into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .schedules;
    assert_eq!(listed.len(), 3);
    for s in &listed {
        let want = next_runs[&s.display_name].filter(|_| s.enabled());
        assert_eq!(
            s.next_run_time.as_ref().and_then(cairn_runtime::time::from_timestamp),
            want,
            "{}",
            s.display_name
        );
        assert!(s.task.starts_with("projects/default/tasks/"));
    }
    let paused = listed.iter().find(|s| s.display_name == "paused-daily").unwrap();
    assert!(!paused.enabled() && paused.journalised);
    // Job history, logs, snapshot index and outbox are all there.
    let history = jobs
        .list_jobs(ListJobsRequest { parent: d.into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .jobs;
    let mut got: Vec<(Uuid, String)> = history
        .iter()
        .map(|j| {
            (
                j.name.rsplit('/').next().unwrap().parse().unwrap(),
                j.state().as_str_name()["JOB_STATE_".len()..].to_owned(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(got, jobs_before);
    let mut lines = 0;
    for j in &history {
        assert!(j.state() == JobState::Succeeded && j.name.starts_with("projects/default/jobs/"));
        let full = jobs.get_job(GetJobRequest { name: j.name.clone(), view: 2 }).await.unwrap().into_inner();
        lines += full.log.len() as i64;
    }
    assert_eq!(lines, lines_before);
    let snaps = jobs
        .list_snapshots(ListSnapshotsRequest { parent: d.into(), store: "nas".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .snapshots;
    assert_eq!(snaps.len() as i64, snapshots_before);
    assert!(
        snaps.iter().all(|s| s.store == nas.name && s.name.starts_with(&format!("{}/snapshots/", nas.name)))
    );
    let outbox: i64 =
        sqlx::query_scalar("SELECT count(*) FROM scheduler.notifications").fetch_one(&pool).await.unwrap();
    assert_eq!(outbox, outbox_before);
    // The first release's names are refused with the new form.
    let err = catalog
        .get_connector(GetConnectorRequest { name: format!("connectors/{}", connectors["nas"]) })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains(&format!("projects/default/connectors/{}", connectors["nas"])),
        "{}",
        err.message()
    );
    // Display names are still unique within the project.
    let err = catalog
        .create_connector(cairn_api::v1::CreateConnectorRequest {
            parent: d.into(),
            connector: Some(cairn_api::v1::Connector {
                display_name: "nas".into(),
                config: Some(cairn_api::v1::connector::Config::LocalStore(cairn_api::v1::LocalStore {
                    path: "/srv/x".into(),
                })),
                repository_password: "pw".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    shutdown.cancel();
}
