//! Projects through the scheduler: two projects with resources of the same display names never
//! see each other's schedules, jobs, forecasts or snapshots; every RPC that takes a name answers
//! a name from the other project exactly like a missing one; workers lease only the projects
//! they serve; a job may only index the stores of its own project.

mod common;

use std::time::Duration;

use cairn_api::v1::{
    CancelJobRequest, CompleteJobRequest, CreateScheduleRequest, DeleteScheduleRequest, ForecastRequest,
    GetJobRequest, GetScheduleRequest, ListJobLogsRequest, ListJobsRequest, ListSchedulesRequest,
    ListSnapshotsRequest, OverlapPolicy, PauseScheduleRequest, ResumeScheduleRequest, RunTaskRequest,
    Schedule, SimulateRetentionRequest, Snapshot, StoreSnapshots, StoredSnapshots, UpdateScheduleRequest,
    WatchJobRequest, complete_job_request::Outcome, simulate_retention_request::Source,
};
use common::*;
use tonic::Code;

const A: &str = "projects/team-a";

fn id_of(name: &str) -> &str {
    name.rsplit('/').next().unwrap()
}

fn daily(task: &str) -> Schedule {
    Schedule {
        display_name: "daily".into(),
        task: task.into(),
        recurrence: calendar("*-*-* 02:00"),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_projects_with_the_same_names_never_see_each_other() {
    let s = stack().await;
    let r = s.replica(None, |_| {}).await;
    s.project("team-a").await;
    // Identical display names in both projects.
    let nas_d = s.store("nas", 4).await;
    let task_d = s.backup("nightly", "nas", OverlapPolicy::Allow, |_| {}).await;
    s.connector_in(
        A,
        cairn_api::v1::Connector {
            display_name: "nightly-src".into(),
            config: Some(cairn_api::v1::connector::Config::LocalPathSource(cairn_api::v1::LocalPathSource {
                paths: vec!["/data".into()],
                ..Default::default()
            })),
            ..Default::default()
        },
    )
    .await;
    let nas_a = s
        .connector_in(
            A,
            cairn_api::v1::Connector {
                display_name: "nas".into(),
                config: Some(cairn_api::v1::connector::Config::LocalStore(cairn_api::v1::LocalStore {
                    path: "/srv/a".into(),
                })),
                repository_password: "pw".into(),
                ..Default::default()
            },
        )
        .await;
    let task_a = s
        .task_in(
            A,
            cairn_api::v1::Task {
                display_name: "nightly".into(),
                r#type: cairn_api::v1::TaskType::Backup as i32,
                source: "nightly-src".into(),
                store: "nas".into(),
                overlap_policy: OverlapPolicy::Allow as i32,
                ..Default::default()
            },
        )
        .await;
    let sched_d = schedule(&r, daily("nightly")).await;
    let sched_a = schedule_in(&r, A, daily("nightly")).await;
    assert_eq!(sched_a.task, task_a.name, "the bare task name resolves within the parent");
    assert!(sched_a.name.starts_with("projects/team-a/schedules/"), "{}", sched_a.name);
    let job_d = run(&r, "nightly").await;
    let job_a = run(&r, &format!("{A}/tasks/nightly")).await;
    assert!(job_a.name.starts_with("projects/team-a/jobs/") && job_a.task == task_a.name, "{job_a:?}");
    assert!(job_a.connectors.iter().all(|c| c.starts_with("projects/team-a/connectors/")), "{job_a:?}");

    // Lists of one project never show the other's; projects/- shows both.
    let mut schedules = r.schedules().await;
    let mut jobs = r.jobs().await;
    for (parent, sched, job) in [(DEFAULT, &sched_d, &job_d), (A, &sched_a, &job_a)] {
        let listed = schedules
            .list_schedules(ListSchedulesRequest { parent: parent.into(), ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(listed.schedules.iter().map(|x| &x.name).collect::<Vec<_>>(), [&sched.name], "{parent}");
        let listed =
            jobs.list_jobs(ListJobsRequest { parent: parent.into(), ..Default::default() }).await.unwrap();
        assert_eq!(
            listed.into_inner().jobs.iter().map(|x| &x.name).collect::<Vec<_>>(),
            [&job.name],
            "{parent}"
        );
        let by_task = jobs
            .list_jobs(ListJobsRequest {
                parent: parent.into(),
                task: "nightly".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(by_task.into_inner().jobs.len(), 1, "{parent}");
        let forecast = schedules
            .forecast(ForecastRequest { parent: parent.into(), ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        assert!(
            !forecast.runs.is_empty() && forecast.runs.iter().all(|x| x.schedule == sched.name),
            "{parent}"
        );
    }
    let all =
        jobs.list_jobs(ListJobsRequest { parent: "projects/-".into(), ..Default::default() }).await.unwrap();
    assert_eq!(all.into_inner().jobs.len(), 2);
    let all = schedules
        .list_schedules(ListSchedulesRequest { parent: "projects/-".into(), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(all.into_inner().schedules.len(), 2);
    let any = jobs
        .get_job(GetJobRequest { name: format!("projects/-/jobs/{}", id_of(&job_a.name)), view: 1 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(any.name, job_a.name, "projects/- finds a job by id and answers its real name");

    // A schedule in team-a of default's task is refused like a task that does not exist.
    let missing = schedules
        .create_schedule(CreateScheduleRequest {
            parent: A.into(),
            schedule: Some(daily("ghost")),
            ..Default::default()
        })
        .await
        .unwrap_err();
    for task in [task_d.name.clone(), id_of(&task_d.name).to_owned()] {
        let err = schedules
            .create_schedule(CreateScheduleRequest {
                parent: A.into(),
                schedule: Some(Schedule { display_name: "sneaky".into(), ..daily(&task) }),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(
            (err.code(), cairn_runtime::status::fields_of(&err)),
            (missing.code(), vec!["schedule.task".to_owned()]),
            "{task}"
        );
        assert!(err.message().contains("does not exist"), "{}", err.message());
    }

    // Every RPC that takes a name: default's resources named under team-a are not found.
    let wrong_schedule = format!("{A}/schedules/{}", id_of(&sched_d.name));
    let wrong_job = format!("{A}/jobs/{}", id_of(&job_d.name));
    let not_found = [
        (
            "GetSchedule",
            schedules.get_schedule(GetScheduleRequest { name: wrong_schedule.clone() }).await.map(|_| ()),
        ),
        (
            "UpdateSchedule",
            schedules
                .update_schedule(UpdateScheduleRequest {
                    schedule: Some(Schedule {
                        name: wrong_schedule.clone(),
                        description: "x".into(),
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask { paths: vec!["description".into()] }),
                    ..Default::default()
                })
                .await
                .map(|_| ()),
        ),
        (
            "PauseSchedule",
            schedules
                .pause_schedule(PauseScheduleRequest { name: wrong_schedule.clone(), ..Default::default() })
                .await
                .map(|_| ()),
        ),
        (
            "ResumeSchedule",
            schedules
                .resume_schedule(ResumeScheduleRequest { name: wrong_schedule.clone(), ..Default::default() })
                .await
                .map(|_| ()),
        ),
        (
            "DeleteSchedule",
            schedules
                .delete_schedule(DeleteScheduleRequest { name: wrong_schedule.clone(), ..Default::default() })
                .await
                .map(|_| ()),
        ),
        ("GetJob", jobs.get_job(GetJobRequest { name: wrong_job.clone(), view: 2 }).await.map(|_| ())),
        (
            "ListJobLogs",
            jobs.list_job_logs(ListJobLogsRequest { name: wrong_job.clone(), ..Default::default() })
                .await
                .map(|_| ()),
        ),
        (
            "CancelJob",
            jobs.cancel_job(CancelJobRequest { name: wrong_job.clone(), ..Default::default() })
                .await
                .map(|_| ()),
        ),
        (
            "WatchJob",
            jobs.watch_job(WatchJobRequest { name: wrong_job.clone(), from_seq: 0 }).await.map(|_| ()),
        ),
        (
            "ListJobs(schedule)",
            jobs.list_jobs(ListJobsRequest {
                parent: A.into(),
                schedule: sched_d.name.clone(),
                ..Default::default()
            })
            .await
            .map(|_| ()),
        ),
    ];
    for (rpc, r) in not_found {
        assert_eq!(r.expect_err(rpc).code(), Code::NotFound, "{rpc}");
    }
    // References to default's task or store from team-a are refused like missing ones.
    let run_missing = jobs
        .run_task(RunTaskRequest { task: format!("{A}/tasks/ghost"), ..Default::default() })
        .await
        .unwrap_err();
    let like_missing = [
        (
            "RunTask",
            jobs.run_task(RunTaskRequest {
                task: format!("{A}/tasks/{}", id_of(&task_d.name)),
                ..Default::default()
            })
            .await
            .map(|_| ()),
        ),
        (
            "ListJobs(task)",
            jobs.list_jobs(ListJobsRequest {
                parent: A.into(),
                task: task_d.name.clone(),
                ..Default::default()
            })
            .await
            .map(|_| ()),
        ),
        (
            "ListJobs(connector)",
            jobs.list_jobs(ListJobsRequest {
                parent: A.into(),
                connector: nas_d.name.clone(),
                ..Default::default()
            })
            .await
            .map(|_| ()),
        ),
        (
            "ListSchedules(task)",
            schedules
                .list_schedules(ListSchedulesRequest {
                    parent: A.into(),
                    task: task_d.name.clone(),
                    ..Default::default()
                })
                .await
                .map(|_| ()),
        ),
        (
            "ListSnapshots(store)",
            jobs.list_snapshots(ListSnapshotsRequest {
                parent: A.into(),
                store: nas_d.name.clone(),
                ..Default::default()
            })
            .await
            .map(|_| ()),
        ),
    ];
    for (rpc, r) in like_missing {
        let err = r.expect_err(rpc);
        assert_eq!(err.code(), run_missing.code(), "{rpc}: {err:?}");
        assert!(err.message().contains("does not exist"), "{rpc}: {}", err.message());
    }
    // By id, another project's store is exactly as empty as a store that never existed.
    let simulate = |store: String| {
        let mut jobs = jobs.clone();
        async move {
            jobs.simulate_retention(SimulateRetentionRequest {
                policy: Some(cairn_api::v1::RetentionPolicy { keep_last: 1, ..Default::default() }),
                source: Some(Source::Stored(StoredSnapshots { store, task: "nightly".into() })),
            })
            .await
            .unwrap()
            .into_inner()
        }
    };
    let foreign = simulate(format!("{A}/connectors/{}", id_of(&nas_d.name))).await;
    let never = simulate(format!("{A}/connectors/{}", uuid::Uuid::now_v7())).await;
    assert_eq!(foreign, never);
    // Nothing of default's was touched.
    let still =
        schedules.get_schedule(GetScheduleRequest { name: sched_d.name.clone() }).await.unwrap().into_inner();
    assert_eq!(still.etag, sched_d.etag);
    // Flat names of the first release are refused with the new form.
    let err = jobs
        .get_job(GetJobRequest { name: format!("jobs/{}", id_of(&job_d.name)), view: 1 })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains(&format!("projects/default/jobs/{}", id_of(&job_d.name))),
        "{}",
        err.message()
    );

    // Placement by project: a worker of team-a gets team-a's job only.
    let mut wa = Worker::new(&r, "wa", &[]).await;
    wa.projects = vec!["team-a".into()];
    let got = wa.acquire(10, Duration::from_secs(5)).await;
    assert_eq!(
        got.iter().map(|l| l.job.as_ref().unwrap().name.as_str()).collect::<Vec<_>>(),
        [job_a.name.as_str()]
    );
    let lease_a = &got[0];
    let ghost = Worker { projects: vec!["nobody-here".into()], ..Worker::new(&r, "w0", &[]).await };
    let mut ghost = ghost;
    assert!(ghost.acquire(10, Duration::from_millis(300)).await.is_empty());
    let mut bad = Worker { projects: vec!["Not_A_Project".into()], ..Worker::new(&r, "w1", &[]).await };
    let err = bad
        .client
        .acquire_lease(cairn_api::v1::AcquireLeaseRequest {
            worker_id: "w1".into(),
            capacity: 1,
            projects: bad.projects.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(cairn_runtime::status::fields_of(&err), vec!["projects[0]"]);
    bad.projects.clear();
    // A job of team-a may not write default's store into the index.
    let snap = Snapshot {
        id: format!("{:0<64}", "ab"),
        time: Some(prost_types::Timestamp::default()),
        ..Default::default()
    };
    let err = wa
        .client
        .complete_job(CompleteJobRequest {
            lease: lease_a.name.clone(),
            generation: lease_a.generation,
            outcome: Some(Outcome::Succeeded(Default::default())),
            snapshot_index: vec![StoreSnapshots { store: nas_d.name.clone(), snapshots: vec![snap.clone()] }],
            lease_token: lease_a.token.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    wa.client
        .complete_job(CompleteJobRequest {
            lease: lease_a.name.clone(),
            generation: lease_a.generation,
            outcome: Some(Outcome::Succeeded(Default::default())),
            snapshot_index: vec![StoreSnapshots { store: nas_a.name.clone(), snapshots: vec![snap] }],
            lease_token: lease_a.token.clone(),
        })
        .await
        .unwrap();
    let in_a =
        jobs.list_snapshots(ListSnapshotsRequest { parent: A.into(), ..Default::default() }).await.unwrap();
    let in_a = in_a.into_inner().snapshots;
    assert_eq!(in_a.len(), 1);
    assert!(in_a[0].name.starts_with(&format!("{}/snapshots/", nas_a.name)), "{in_a:?}");
    let in_d = jobs
        .list_snapshots(ListSnapshotsRequest { parent: DEFAULT.into(), ..Default::default() })
        .await
        .unwrap();
    assert!(in_d.into_inner().snapshots.is_empty());
    // The default worker takes default's job.
    let mut wd = Worker::new(&r, "wd", &[]).await;
    wd.projects = vec!["default".into()];
    let got = wd.acquire(10, Duration::from_secs(5)).await;
    assert_eq!(
        got.iter().map(|l| l.job.as_ref().unwrap().name.as_str()).collect::<Vec<_>>(),
        [job_d.name.as_str()]
    );
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_make_runs_schedules_and_projects_idempotent() {
    let s = stack().await;
    let r = s.replica(None, |_| {}).await;
    s.store("nas", 4).await;
    let task = s.backup("nightly", "nas", OverlapPolicy::Allow, |_| {}).await;
    let rid = uuid::Uuid::now_v7().to_string();
    let mut jobs = r.jobs().await;
    let run = || RunTaskRequest { task: task.name.clone(), request_id: rid.clone(), ..Default::default() };
    let a = jobs.run_task(run()).await.unwrap().into_inner();
    let b = jobs.run_task(run()).await.unwrap().into_inner();
    assert_eq!(a.name, b.name, "a retried RunTask returns the first job");
    let listed =
        jobs.list_jobs(ListJobsRequest { parent: DEFAULT.into(), ..Default::default() }).await.unwrap();
    assert_eq!(listed.into_inner().jobs.len(), 1);
    let mut schedules = r.schedules().await;
    let srid = uuid::Uuid::now_v7().to_string();
    let create = || CreateScheduleRequest {
        parent: DEFAULT.into(),
        schedule: Some(daily("nightly")),
        request_id: srid.clone(),
        ..Default::default()
    };
    let a = schedules.create_schedule(create()).await.unwrap().into_inner();
    let b = schedules.create_schedule(create()).await.unwrap().into_inner();
    assert_eq!(a.name, b.name, "a retried CreateSchedule returns the first schedule");
    let err = jobs
        .run_task(RunTaskRequest {
            task: task.name.clone(),
            request_id: "not-a-uuid".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(cairn_runtime::status::fields_of(&err), vec!["request_id"]);
    // Projects and tasks in the catalog too.
    let prid = uuid::Uuid::now_v7().to_string();
    let mut catalog = s.catalog.clone();
    let create = || cairn_api::v1::CreateProjectRequest {
        project: Some(cairn_api::v1::Project { display_name: "Team B".into(), ..Default::default() }),
        project_id: "team-b".into(),
        request_id: prid.clone(),
        ..Default::default()
    };
    let a = catalog.create_project(create()).await.unwrap().into_inner();
    let b = catalog.create_project(create()).await.unwrap().into_inner();
    assert_eq!(a, b);
    let trid = uuid::Uuid::now_v7().to_string();
    let create = || cairn_api::v1::CreateTaskRequest {
        parent: DEFAULT.into(),
        task: Some(cairn_api::v1::Task {
            display_name: "again".into(),
            r#type: cairn_api::v1::TaskType::Check as i32,
            store: "nas".into(),
            ..Default::default()
        }),
        request_id: trid.clone(),
        ..Default::default()
    };
    let a = catalog.create_task(create()).await.unwrap().into_inner();
    let b = catalog.create_task(create()).await.unwrap().into_inner();
    assert_eq!(a.name, b.name);
    // The same key in another project is that project's own: a new resource there.
    let in_b = catalog
        .create_task(cairn_api::v1::CreateTaskRequest {
            parent: "projects/team-b".into(),
            task: Some(cairn_api::v1::Task {
                display_name: "again".into(),
                r#type: cairn_api::v1::TaskType::Check as i32,
                store: "nas-b".into(),
                ..Default::default()
            }),
            request_id: trid.clone(),
            ..Default::default()
        })
        .await;
    // team-b has no store `nas-b`: refused on the field, not as a replay of default's task.
    let err = in_b.unwrap_err();
    assert_eq!(cairn_runtime::status::fields_of(&err), vec!["task.store"]);
    s.connector_in(
        "projects/team-b",
        cairn_api::v1::Connector {
            display_name: "nas-b".into(),
            config: Some(cairn_api::v1::connector::Config::LocalStore(cairn_api::v1::LocalStore {
                path: "/srv/b".into(),
            })),
            repository_password: "pw".into(),
            ..Default::default()
        },
    )
    .await;
    let in_b = catalog
        .create_task(cairn_api::v1::CreateTaskRequest {
            parent: "projects/team-b".into(),
            task: Some(cairn_api::v1::Task {
                display_name: "again".into(),
                r#type: cairn_api::v1::TaskType::Check as i32,
                store: "nas-b".into(),
                ..Default::default()
            }),
            request_id: trid.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(in_b.name.starts_with("projects/team-b/tasks/") && in_b.name != a.name, "{}", in_b.name);
    r.stop().await;
}
