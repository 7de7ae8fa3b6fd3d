//! Fleet BACKUP tasks across two replicas with scripted workers: every occurrence of a
//! schedule is exactly one job per matching source, all of one run; each job is leased only
//! by a worker its source's selector admits and carries only its own source; the overlap
//! policy applies per source, so a run's jobs run side by side.

mod common;

use std::{collections::BTreeMap, time::Duration};

use cairn_api::v1::{
    BackupOptions, Connector, JobState, ListJobsRequest, LocalPathSource, OverlapPolicy, Schedule,
    SourceSelector, Task, TaskType, connector::Config as Cfg, task::Options,
};
use common::*;

const SOURCES: usize = 5;

type Time = chrono::DateTime<chrono::Utc>;
/// (run, source) of a job.
type RunSource = (Option<uuid::Uuid>, Option<uuid::Uuid>);

async fn fleet(s: &Stack) {
    s.store("nas", 100).await;
    for i in 0..SOURCES {
        s.connector(Connector {
            display_name: format!("web-{i}"),
            config: Some(Cfg::LocalPathSource(LocalPathSource {
                paths: vec![format!("/srv/{i}")],
                ..Default::default()
            })),
            worker_selector: [("zone".to_owned(), format!("z{}", i % 2))].into(),
            labels: [("fleet".to_owned(), "web".to_owned())].into(),
            ..Default::default()
        })
        .await;
    }
    // Another fleet's source never joins.
    s.connector(Connector {
        display_name: "db-0".into(),
        config: Some(Cfg::LocalPathSource(LocalPathSource {
            paths: vec!["/db".into()],
            ..Default::default()
        })),
        labels: [("fleet".to_owned(), "db".to_owned())].into(),
        ..Default::default()
    })
    .await;
    s.task(Task {
        display_name: "fleet".into(),
        r#type: TaskType::Backup as i32,
        store: "nas".into(),
        overlap_policy: OverlapPolicy::Skip as i32,
        options: Some(Options::Backup(BackupOptions {
            sources: Some(SourceSelector {
                labels: [("fleet".to_owned(), "web".to_owned())].into(),
                ..Default::default()
            }),
            ..Default::default()
        })),
        ..Default::default()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_fire_one_job_per_source_per_occurrence() {
    let s = stack().await;
    fleet(&s).await;
    let (a, b) = (s.replica(None, |_| {}).await, s.replica(None, |_| {}).await);
    schedule(
        &a,
        Schedule {
            display_name: "every-2s".into(),
            task: "fleet".into(),
            recurrence: calendar("*:*:0/2"),
            ..Default::default()
        },
    )
    .await;
    let stop = cairn_runtime::CancellationToken::new();
    let mut workers = Vec::new();
    for (i, r) in [&a, &b, &a, &b].into_iter().enumerate() {
        let zone = format!("z{}", i % 2);
        let mut w = Worker::new(r, &format!("w{i}-{zone}"), &[("zone", zone.as_str())]).await;
        let stop = stop.clone();
        workers.push(tokio::spawn(async move {
            while !stop.is_cancelled() {
                for l in w.acquire(50, Duration::from_millis(300)).await {
                    let job = l.job.clone().unwrap();
                    let task = l.task.clone().unwrap();
                    // Only its own source, and one its selector admits this worker for.
                    assert!(task.fleet.is_empty(), "a lease never carries other sources");
                    let source = task.source.clone().unwrap().connector.unwrap();
                    assert_eq!(source.name, job.source);
                    assert_eq!(
                        source.worker_selector.get("zone"),
                        w.labels.get("zone"),
                        "{} on {}",
                        source.display_name,
                        w.id
                    );
                    w.succeed(&l).await;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(9)).await;
    stop.cancel();
    for w in workers {
        w.await.unwrap();
    }
    a.stop().await;
    b.stop().await;
    let rows: Vec<(Time, Option<uuid::Uuid>, Option<uuid::Uuid>, String)> = sqlx::query_as(
        "SELECT occurrence, run_id, source_id, state FROM scheduler.jobs WHERE schedule_id IS NOT NULL",
    )
    .fetch_all(&s.pool)
    .await
    .unwrap();
    let mut per_occurrence: BTreeMap<Time, Vec<RunSource>> = BTreeMap::new();
    for (occ, run, source, _) in &rows {
        per_occurrence.entry(*occ).or_default().push((*run, *source));
    }
    assert!(per_occurrence.len() >= 3, "{per_occurrence:?}");
    for (occ, jobs) in &per_occurrence {
        assert_eq!(jobs.len(), SOURCES, "one job per source at {occ}: {jobs:?}");
        let mut sources: Vec<_> = jobs.iter().map(|j| j.1.expect("a source")).collect();
        sources.sort();
        sources.dedup();
        assert_eq!(sources.len(), SOURCES, "each source once at {occ}");
        assert!(jobs[0].0.is_some() && jobs.iter().all(|j| j.0 == jobs[0].0), "one run at {occ}");
    }
    let runs: std::collections::HashSet<_> = per_occurrence.values().map(|j| j[0].0).collect();
    assert_eq!(runs.len(), per_occurrence.len(), "a run per occurrence");
    assert!(
        rows.iter().all(|r| r.3 == "SUCCEEDED" || r.3 == "QUEUED"),
        "nothing skipped or failed: {rows:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_s_jobs_run_side_by_side_and_overlap_is_per_source() {
    let s = stack().await;
    fleet(&s).await;
    let r = s.replica(None, |_| {}).await;
    let first = run(&r, "fleet").await;
    assert!(!first.run.is_empty());
    let jobs = r
        .jobs()
        .await
        .list_jobs(ListJobsRequest {
            parent: "projects/default".into(),
            run: first.run.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .jobs;
    assert_eq!(jobs.len(), SOURCES);
    // SKIP per source: a second run while the first is active skips every source.
    let second = run(&r, "fleet").await;
    let skipped = r
        .jobs()
        .await
        .list_jobs(ListJobsRequest {
            parent: "projects/default".into(),
            run: second.run.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .jobs;
    assert_eq!(skipped.len(), SOURCES);
    assert!(skipped.iter().all(|j| j.state() == JobState::Skipped), "{skipped:#?}");
    // All five run at once on the two zones' workers (serial per source, not per task).
    let mut z0 = Worker::new(&r, "w-z0", &[("zone", "z0")]).await;
    let mut z1 = Worker::new(&r, "w-z1", &[("zone", "z1")]).await;
    let l0 = z0.acquire(10, Duration::from_secs(5)).await;
    let l1 = z1.acquire(10, Duration::from_secs(5)).await;
    assert_eq!((l0.len(), l1.len()), (3, 2), "sources 0, 2, 4 in z0; 1, 3 in z1");
    for l in &l0 {
        z0.succeed(l).await;
    }
    for l in &l1 {
        z1.succeed(l).await;
    }
    let e = r
        .jobs()
        .await
        .list_jobs(ListJobsRequest {
            parent: "projects/default".into(),
            run: "not-a-run".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(cairn_runtime::status::fields_of(&e), vec!["run"]);
    r.stop().await;
}

/// Concurrent first jobs of a store created on first use would each initialise the
/// repository with their own key: until one job on it succeeds, the store takes one job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_created_on_first_use_takes_one_job_until_one_succeeds() {
    let s = stack().await;
    s.connector(Connector {
        display_name: "fresh".into(),
        config: Some(Cfg::LocalStore(cairn_api::v1::LocalStore { path: "/srv/fresh".into() })),
        repository_password: "pw".into(),
        create_if_missing: true,
        max_concurrent_jobs: 10,
        ..Default::default()
    })
    .await;
    let r = s.replica(None, |_| {}).await;
    for t in ["a", "b", "c"] {
        s.backup(t, "fresh", OverlapPolicy::Allow, |_| {}).await;
        run(&r, t).await;
    }
    let mut w = Worker::new(&r, "w", &[]).await;
    let first = w.acquire(10, Duration::from_secs(5)).await;
    assert_eq!(first.len(), 1, "the first job initialises alone");
    assert!(w.acquire(10, Duration::from_millis(300)).await.is_empty());
    w.fail(&first[0], "the source was unreadable").await;
    let second = w.acquire(10, Duration::from_secs(5)).await;
    assert_eq!(second.len(), 1, "a failure proves nothing: still one at a time");
    w.succeed(&second[0]).await;
    let rest = w.acquire(10, Duration::from_secs(5)).await;
    assert_eq!(rest.len(), 1, "the last queued job");
    s.backup("d", "fresh", OverlapPolicy::Allow, |_| {}).await;
    run(&r, "d").await;
    let both = w.acquire(10, Duration::from_secs(5)).await;
    assert_eq!(both.len(), 1);
    assert_eq!(
        count(&s.pool, "SELECT count(*) FROM scheduler.jobs WHERE state = 'RUNNING'").await,
        2,
        "ready: side by side"
    );
    r.stop().await;
}
