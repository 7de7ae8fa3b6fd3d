//! RunTask overrides over the real APIs: a RESTORE run once with another snapshot, paths and
//! destination (placed by that destination's worker), a BACKUP run once in FULL mode, and
//! every override that does not apply refused with its field, creating nothing.

mod common;

use std::time::Duration;

use cairn_api::v1::{
    BackupMode, Connector, LocalPathDestination, OverlapPolicy, RestoreOptions, RunOverrides, RunTaskRequest,
    Task, TaskType, connector::Config as Cfg, task::Options,
};
use common::*;

async fn run_with(r: &Replica, task: &str, o: RunOverrides) -> Result<cairn_api::v1::Job, tonic::Status> {
    r.jobs()
        .await
        .run_task(RunTaskRequest { task: full("tasks", task), overrides: Some(o), ..Default::default() })
        .await
        .map(|r| r.into_inner())
}

async fn destination(s: &Stack, name: &str, selector: &[(&str, &str)]) -> Connector {
    s.connector(Connector {
        display_name: name.into(),
        config: Some(Cfg::LocalPathDestination(LocalPathDestination { path: format!("/restore/{name}") })),
        worker_selector: selector.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
        ..Default::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_runs_once_with_another_snapshot_paths_and_destination() {
    let s = stack().await;
    let r = s.replica(None, |_| {}).await;
    s.store("nas", 4).await;
    destination(&s, "usual", &[("host", "a")]).await;
    let elsewhere = destination(&s, "elsewhere", &[("host", "b")]).await;
    s.task(Task {
        display_name: "restore".into(),
        r#type: TaskType::Restore as i32,
        store: "nas".into(),
        destination: "usual".into(),
        options: Some(Options::Restore(RestoreOptions {
            include_paths: vec!["/data/all".into()],
            ..Default::default()
        })),
        ..Default::default()
    })
    .await;
    let snapshot = "0123abcd".repeat(8);
    let job = run_with(
        &r,
        "restore",
        RunOverrides {
            snapshot: snapshot.clone(),
            include_paths: vec!["/data/a".into(), "/data/b/c.txt".into()],
            destination: "elsewhere".into(),
            full: false,
        },
    )
    .await
    .unwrap();
    let o = job.overrides.clone().unwrap();
    assert_eq!(o.destination, elsewhere.name, "stored by its full name");
    assert!(job.connectors.contains(&elsewhere.name) && job.connectors.len() == 2, "{:?}", job.connectors);

    // Placed by the overriding destination: a worker of host=a never gets it.
    let mut wa = Worker::new(&r, "wa", &[("host", "a")]).await;
    assert!(wa.acquire(1, Duration::from_millis(300)).await.is_empty());
    let mut wb = Worker::new(&r, "wb", &[("host", "b")]).await;
    let lease = wb.acquire(1, Duration::from_secs(5)).await.remove(0);
    let t = lease.task.clone().unwrap();
    let Some(Options::Restore(opts)) = t.task.as_ref().and_then(|t| t.options.clone()) else {
        panic!("{t:?}")
    };
    assert_eq!(opts.snapshot, snapshot);
    assert_eq!(opts.include_paths, ["/data/a", "/data/b/c.txt"]);
    let dest = t.destination.and_then(|d| d.connector).unwrap();
    assert_eq!(dest.name, elsewhere.name);
    wb.succeed(&lease).await;

    // The task itself is as it was: the next plain run restores the latest, everything, as usual.
    let plain = run(&r, "restore").await;
    assert!(plain.overrides.is_none());
    let lease = wa.acquire(1, Duration::from_secs(5)).await.remove(0);
    let t = lease.task.clone().unwrap();
    let Some(Options::Restore(opts)) = t.task.as_ref().and_then(|t| t.options.clone()) else { panic!() };
    assert!(opts.snapshot.is_empty());
    assert_eq!(opts.include_paths, ["/data/all"]);
    wa.succeed(&lease).await;
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_runs_once_in_full_mode_and_bad_overrides_name_their_field() {
    let s = stack().await;
    let r = s.replica(None, |_| {}).await;
    s.store("nas", 4).await;
    destination(&s, "usual", &[]).await;
    s.backup("nightly", "nas", OverlapPolicy::Allow, |_| {}).await;
    s.task(Task {
        display_name: "restore".into(),
        r#type: TaskType::Restore as i32,
        store: "nas".into(),
        destination: "usual".into(),
        ..Default::default()
    })
    .await;
    let job = run_with(&r, "nightly", RunOverrides { full: true, ..Default::default() }).await.unwrap();
    assert!(job.overrides.as_ref().is_some_and(|o| o.full));
    let mut w = Worker::new(&r, "w", &[]).await;
    let lease = w.acquire(1, Duration::from_secs(5)).await.remove(0);
    let Some(Options::Backup(b)) =
        lease.task.as_ref().and_then(|t| t.task.as_ref()).and_then(|t| t.options.clone())
    else {
        panic!()
    };
    assert_eq!(b.mode(), BackupMode::Full);
    w.succeed(&lease).await;

    let before = count(&s.pool, "SELECT count(*) FROM scheduler.jobs").await;
    let cases: Vec<(&str, RunOverrides, &str)> = vec![
        (
            "nightly",
            RunOverrides { snapshot: "0123abcd".into(), ..Default::default() },
            "overrides.snapshot: applies to RESTORE tasks only",
        ),
        (
            "nightly",
            RunOverrides { destination: "usual".into(), ..Default::default() },
            "overrides.destination: applies to RESTORE tasks only",
        ),
        (
            "restore",
            RunOverrides { full: true, ..Default::default() },
            "overrides.full: applies to BACKUP tasks only",
        ),
        (
            "restore",
            RunOverrides { snapshot: "latest".into(), ..Default::default() },
            "overrides.snapshot: \"latest\" is not a snapshot id",
        ),
        (
            "restore",
            RunOverrides { include_paths: vec!["/ok".into(), "/a/../etc".into()], ..Default::default() },
            "overrides.include_paths[1]",
        ),
        (
            "restore",
            RunOverrides { destination: "nope".into(), ..Default::default() },
            "overrides.destination: connector \"nope\" does not exist",
        ),
        (
            "restore",
            RunOverrides { destination: "nas".into(), ..Default::default() },
            "overrides.destination: connector nas is a STORE connector; a RESTORE needs a DESTINATION connector",
        ),
        (
            "restore",
            RunOverrides { destination: "projects/other/connectors/usual".into(), ..Default::default() },
            "overrides.destination: connector",
        ),
    ];
    for (task, o, want) in cases {
        let e = run_with(&r, task, o.clone()).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{o:?}: {e:?}");
        assert!(e.message().starts_with(want), "{o:?}: {}", e.message());
    }
    assert_eq!(count(&s.pool, "SELECT count(*) FROM scheduler.jobs").await, before, "nothing was created");
    r.stop().await;
}
