//! The scheduler over real gRPC, real Postgres and the real catalog, with scripted workers.

mod common;

use std::{collections::BTreeMap, time::Duration};

use cairn_api::v1::{
    AppendLogRequest, CancelJobRequest, DeleteTaskRequest, GetScheduleRequest, JobCancelled, JobFailed,
    JobProgress, JobState, JobTrigger, ListJobsRequest, ListSchedulesRequest, LogLine, OverlapPolicy,
    PauseScheduleRequest, PreviewScheduleRequest, ResumeScheduleRequest, Schedule, TaskType,
    UpdateScheduleRequest, WatchJobRequest, complete_job_request::Outcome, watch_job_event::Event,
};
use cairn_runtime::{
    status,
    time::{from_timestamp, to_timestamp},
};
use cairn_scheduler::{Clock as _, ManualClock};
use chrono::{DateTime, Utc};
use common::*;
use tonic::Code;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

async fn eventually<T, F, Fut>(what: &str, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    cairn_testkit::eventually(Duration::from_secs(30), what, f).await
}

#[tokio::test]
async fn preview_reproduces_the_systemd_sample() {
    let s = stack().await;
    let r = s.replica(None, |_| {}).await;
    let mut client = r.schedules().await;
    let sample: Vec<serde_json::Value> =
        serde_json::from_str(include_str!("../../schedule/tests/data/calendar-sample.json")).unwrap();
    assert!(sample.len() >= 20);
    for v in &sample {
        let req = PreviewScheduleRequest {
            recurrence: calendar(v["expr"].as_str().unwrap()),
            time_zone: v["time_zone"].as_str().unwrap().into(),
            after: Some(to_timestamp(t(v["after"].as_str().unwrap()))),
            count: 3,
            ..Default::default()
        };
        let got = client.preview_schedule(req).await.unwrap().into_inner();
        let got: Vec<String> = got
            .fire_times
            .iter()
            .map(|ts| from_timestamp(ts).unwrap().to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
            .collect();
        let want: Vec<String> =
            v["next"].as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_owned()).collect();
        assert_eq!(got, want, "{v}");
    }
    // The pinned JSON shape, from a client that knows only reflection.
    let dynamic = cairn_testkit::dynamic::DynamicClient::connect(&r.url).await.unwrap();
    let got = dynamic
        .call(
            "cairn.v1.ScheduleService",
            "PreviewSchedule",
            r#"{"recurrence": {"calendar": "Mon..Fri 18:00"}, "timeZone": "Europe/Berlin",
                "after": "2024-01-30T10:15:00Z", "count": 2}"#,
        )
        .await
        .unwrap();
    assert_eq!(got["fireTimes"], serde_json::json!(["2024-01-30T17:00:00Z", "2024-01-31T17:00:00Z"]));
    let got = dynamic
        .call(
            "cairn.v1.ScheduleService",
            "PreviewSchedule",
            r#"{"recurrence": {"interval": {"days": 1, "hours": 12}}, "startTime": "2024-01-01T00:00:00Z",
                "after": "2024-01-01T00:00:00Z", "count": 2}"#,
        )
        .await
        .unwrap();
    assert_eq!(got["fireTimes"], serde_json::json!(["2024-01-02T12:00:00Z", "2024-01-04T00:00:00Z"]));
    let never = dynamic
        .call("cairn.v1.ScheduleService", "PreviewSchedule", r#"{"recurrence": {"calendar": "*-04-31"}}"#)
        .await
        .unwrap();
    assert!(never.get("fireTimes").is_none());
    // Errors name the field and the bad part.
    for (json, field, part) in [
        (r#"{"recurrence": {"calendar": "25:00"}}"#, "recurrence.calendar", "25"),
        (r#"{"recurrence": {"cron": "0 2 * *"}}"#, "recurrence.cron", ""),
        (r#"{"recurrence": {"calendar": "daily"}, "timeZone": "Mars/Base"}"#, "time_zone", "Mars/Base"),
        (r#"{"recurrence": {"calendar": "daily"}, "count": 1001}"#, "count", "1001"),
        (r#"{"recurrence": {"interval": {}}}"#, "recurrence.interval", ""),
        (r#"{}"#, "recurrence", ""),
    ] {
        let err = dynamic.call("cairn.v1.ScheduleService", "PreviewSchedule", json).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{json}");
        assert!(err.message().starts_with(field), "{json}: {}", err.message());
        assert!(err.message().contains(part), "{json}: {}", err.message());
    }
}

#[tokio::test]
async fn schedules_crud_filters_pause_resume() {
    let s = stack().await;
    let clock = ManualClock::new(t("2030-01-07T10:15:00Z"));
    let r = s.replica(Some(clock.clone()), |_| {}).await;
    s.store("nas", 4).await;
    let task = s.backup("nightly", "nas", OverlapPolicy::Skip, |_| {}).await;
    s.backup("other", "nas", OverlapPolicy::Skip, |_| {}).await;
    let made = schedule(
        &r,
        Schedule {
            display_name: "weekdays".into(),
            task: "nightly".into(),
            recurrence: calendar("Mon..Fri 18:00"),
            time_zone: "Europe/Berlin".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(made.task, task.name);
    assert_eq!(made.enabled, Some(true));
    assert_eq!(from_timestamp(made.next_run_time.as_ref().unwrap()), Some(t("2030-01-07T17:00:00Z")));
    assert_eq!(made.normalized_recurrence, "Mon..Fri *-*-* 18:00:00");
    let mut client = r.schedules().await;
    let got = client
        .get_schedule(GetScheduleRequest { name: "projects/default/schedules/weekdays".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.name, made.name);
    schedule(
        &r,
        Schedule {
            display_name: "hourly".into(),
            task: "other".into(),
            recurrence: calendar("hourly"),
            ..Default::default()
        },
    )
    .await;
    let by_task = client
        .list_schedules(ListSchedulesRequest {
            parent: "projects/default".into(),
            task: "nightly".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_task.schedules.len(), 1);
    let by_connector = client
        .list_schedules(ListSchedulesRequest {
            parent: "projects/default".into(),
            connector: "nas".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_connector.schedules.len(), 2);
    let by_source = client
        .list_schedules(ListSchedulesRequest {
            parent: "projects/default".into(),
            connector: "other-src".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_source.schedules.len(), 1);
    // Pause hides the next run; resume picks the next future occurrence.
    let paused = client
        .pause_schedule(PauseScheduleRequest {
            name: "projects/default/schedules/weekdays".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(paused.enabled, Some(false));
    assert!(paused.next_run_time.is_none());
    let enabled_only = client
        .list_schedules(ListSchedulesRequest {
            parent: "projects/default".into(),
            enabled: Some(true),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(enabled_only.schedules.len(), 1);
    clock.set(t("2030-01-08T18:30:00Z"));
    let resumed = client
        .resume_schedule(ResumeScheduleRequest {
            name: "projects/default/schedules/weekdays".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(from_timestamp(resumed.next_run_time.as_ref().unwrap()), Some(t("2030-01-09T17:00:00Z")));
    // Update recomputes from now; etags guard concurrent edits; task/enabled are not updatable.
    let mask =
        |p: &[&str]| Some(prost_types::FieldMask { paths: p.iter().map(|s| (*s).to_owned()).collect() });
    let updated = client
        .update_schedule(UpdateScheduleRequest {
            schedule: Some(Schedule {
                name: "projects/default/schedules/weekdays".into(),
                recurrence: calendar("Sun 03:00"),
                etag: resumed.etag.clone(),
                ..Default::default()
            }),
            update_mask: mask(&["recurrence"]),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(from_timestamp(updated.next_run_time.as_ref().unwrap()), Some(t("2030-01-13T02:00:00Z")));
    let err = client
        .update_schedule(UpdateScheduleRequest {
            schedule: Some(Schedule {
                name: "projects/default/schedules/weekdays".into(),
                description: "x".into(),
                etag: resumed.etag,
                ..Default::default()
            }),
            update_mask: mask(&["description"]),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Aborted);
    for field in ["task", "enabled", "next_run_time"] {
        let err = client
            .update_schedule(UpdateScheduleRequest {
                schedule: Some(Schedule {
                    name: "projects/default/schedules/weekdays".into(),
                    ..Default::default()
                }),
                update_mask: mask(&[field]),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status::fields_of(&err), vec!["update_mask"], "{field}");
    }
    // Bad input names the field and writes nothing.
    let before = count(&s.pool, "SELECT count(*) FROM scheduler.schedules").await;
    for (sched, field) in [
        (
            Schedule {
                display_name: "x".into(),
                task: "nightly".into(),
                recurrence: calendar("25:00"),
                ..Default::default()
            },
            "schedule.recurrence.calendar",
        ),
        (
            Schedule {
                display_name: "x".into(),
                task: "nope".into(),
                recurrence: calendar("daily"),
                ..Default::default()
            },
            "schedule.task",
        ),
        (
            Schedule {
                display_name: "x".into(),
                task: "nightly".into(),
                recurrence: calendar("daily"),
                time_zone: "Nowhere/X".into(),
                ..Default::default()
            },
            "schedule.time_zone",
        ),
        (
            Schedule {
                display_name: "".into(),
                task: "nightly".into(),
                recurrence: calendar("daily"),
                ..Default::default()
            },
            "schedule.display_name",
        ),
        (
            Schedule {
                display_name: "weekdays".into(),
                task: "nightly".into(),
                recurrence: calendar("daily"),
                ..Default::default()
            },
            "schedule.display_name",
        ),
        (
            Schedule {
                display_name: "x".into(),
                task: "nightly".into(),
                recurrence: None,
                ..Default::default()
            },
            "schedule.recurrence",
        ),
        (
            Schedule {
                display_name: "x".into(),
                task: "nightly".into(),
                recurrence: calendar("daily"),
                jitter: Some(prost_types::Duration { seconds: 90_000, nanos: 0 }),
                ..Default::default()
            },
            "schedule.jitter",
        ),
    ] {
        let err = client
            .create_schedule(cairn_api::v1::CreateScheduleRequest {
                parent: "projects/default".into(),
                schedule: Some(sched),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert!(err.message().starts_with(field), "{field}: {}", err.message());
    }
    assert_eq!(count(&s.pool, "SELECT count(*) FROM scheduler.schedules").await, before);
    client
        .delete_schedule(cairn_api::v1::DeleteScheduleRequest {
            name: "projects/default/schedules/weekdays".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        client
            .get_schedule(GetScheduleRequest { name: "projects/default/schedules/weekdays".into() })
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    r.stop().await;
}

#[tokio::test]
async fn jitter_is_shown_and_applied() {
    let s = stack().await;
    let clock = ManualClock::new(t("2030-01-07T10:15:00Z"));
    let r = s.replica(Some(clock.clone()), |_| {}).await;
    s.store("nas", 4).await;
    s.backup("b", "nas", OverlapPolicy::Allow, |_| {}).await;
    let made = schedule(
        &r,
        Schedule {
            display_name: "jittery".into(),
            task: "b".into(),
            recurrence: calendar("11:00"),
            jitter: Some(prost_types::Duration { seconds: 600, nanos: 0 }),
            ..Default::default()
        },
    )
    .await;
    let next = from_timestamp(made.next_run_time.as_ref().unwrap()).unwrap();
    assert!(next >= t("2030-01-07T11:00:00Z") && next < t("2030-01-07T11:10:00Z"));
    clock.set(next - chrono::Duration::seconds(1));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        count(&s.pool, "SELECT count(*) FROM scheduler.jobs").await,
        0,
        "not before the jittered time"
    );
    clock.set(next);
    let job = eventually("the jittered job", || async {
        let jobs = r
            .jobs()
            .await
            .list_jobs(ListJobsRequest { parent: "projects/default".into(), ..Default::default() })
            .await
            .unwrap()
            .into_inner()
            .jobs;
        jobs.into_iter().next()
    })
    .await;
    assert_eq!(from_timestamp(job.scheduled_time.as_ref().unwrap()), Some(next));
    r.stop().await;
}

/// SPEC §3.1: two replicas, ~100 second-level schedules for 30 s: every occurrence is exactly one job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_fire_every_occurrence_exactly_once() {
    let s = stack().await;
    let a = s.replica(None, |_| {}).await;
    let b = s.replica(None, |_| {}).await;
    s.store("nas", 1000).await;
    for i in 0..10 {
        s.backup(&format!("t{i}"), "nas", OverlapPolicy::Allow, |_| {}).await;
    }
    for i in 0..100 {
        let r = if i % 2 == 0 { &a } else { &b };
        schedule(
            r,
            Schedule {
                display_name: format!("s{i}"),
                task: format!("t{}", i % 10),
                recurrence: calendar("*:*:0/2"),
                ..Default::default()
            },
        )
        .await;
    }
    let started = Utc::now();
    // Scripted workers on both replicas lease and complete everything.
    let stop = cairn_runtime::CancellationToken::new();
    let mut workers = Vec::new();
    for (i, r) in [&a, &b, &a, &b].into_iter().enumerate() {
        let mut w = Worker::new(r, &format!("w{i}"), &[]).await;
        let stop = stop.clone();
        workers.push(tokio::spawn(async move {
            let mut done = 0u64;
            while !stop.is_cancelled() {
                for l in w.acquire(50, Duration::from_millis(500)).await {
                    w.succeed(&l).await;
                    done += 1;
                }
            }
            done
        }));
    }
    tokio::time::sleep(Duration::from_secs(32)).await;
    stop.cancel();
    let mut leased = 0;
    for w in workers {
        leased += w.await.unwrap();
    }
    let ended = Utc::now();
    a.stop().await;
    b.stop().await;
    let rows: Vec<(uuid::Uuid, DateTime<Utc>)> =
        sqlx::query_as("SELECT schedule_id, occurrence FROM scheduler.jobs WHERE schedule_id IS NOT NULL")
            .fetch_all(&s.pool)
            .await
            .unwrap();
    let mut per_schedule: BTreeMap<uuid::Uuid, Vec<DateTime<Utc>>> = BTreeMap::new();
    for (sid, occ) in rows {
        per_schedule.entry(sid).or_default().push(occ);
    }
    assert_eq!(per_schedule.len(), 100, "every schedule fired");
    for (sid, mut occs) in per_schedule {
        occs.sort();
        let n = occs.len();
        occs.dedup();
        assert_eq!(occs.len(), n, "duplicate occurrence for {sid}");
        // Consecutive 2-second ticks, no gaps, covering the run.
        for w in occs.windows(2) {
            assert_eq!(w[1] - w[0], chrono::Duration::seconds(2), "gap in {sid}: {w:?}");
        }
        assert!(occs[0] <= started + chrono::Duration::seconds(4), "{sid} started late: {}", occs[0]);
        assert!(*occs.last().unwrap() >= ended - chrono::Duration::seconds(4), "{sid} stopped early");
    }
    let total = count(&s.pool, "SELECT count(*) FROM scheduler.jobs").await;
    assert!(total >= 100 * 14, "only {total} jobs in 32 s");
    let twice = count(&s.pool, "SELECT count(*) FROM scheduler.jobs WHERE attempt > 1").await;
    assert_eq!(twice, 0, "no job was leased twice");
    assert!(leased as i64 <= total);
    let not_ok =
        count(&s.pool, "SELECT count(*) FROM scheduler.jobs WHERE state NOT IN ('SUCCEEDED', 'QUEUED')")
            .await;
    assert_eq!(not_ok, 0);
}

/// SPEC §3.2: downtime → one CATCH_UP per journalised schedule; a visible skip for the others.
#[tokio::test]
async fn downtime_catches_up_journalised_and_skips_others() {
    let s = stack().await;
    let t0 = t("2030-01-01T00:00:30Z");
    let clock = ManualClock::new(t0);
    let r = s.replica(Some(clock.clone()), |_| {}).await;
    s.store("nas", 100).await;
    s.backup("b", "nas", OverlapPolicy::Allow, |_| {}).await;
    for (name, rec, journalised) in [
        ("cal-j", calendar("*:0/5"), true),
        ("cal-n", calendar("*:0/5"), false),
        ("int-j", interval(10), true),
        ("int-n", interval(10), false),
    ] {
        schedule(
            &r,
            Schedule {
                display_name: name.into(),
                task: "b".into(),
                recurrence: rec,
                journalised,
                ..Default::default()
            },
        )
        .await;
    }
    // Intervals with no start time fire at once.
    eventually("the first interval jobs", || async {
        (count(&s.pool, "SELECT count(*) FROM scheduler.jobs").await == 2).then_some(())
    })
    .await;
    r.stop().await;
    // Down for 65 minutes.
    clock.set(t0 + chrono::Duration::minutes(65));
    let r = s.replica(Some(clock.clone()), |_| {}).await;
    let by_name = |name: &'static str| {
        let pool = s.pool.clone();
        async move {
            sqlx::query_as::<_, (String, String, i64, DateTime<Utc>)>(
                "SELECT j.trigger, j.state, j.missed_occurrences, j.occurrence FROM scheduler.jobs j
                 JOIN scheduler.schedules s ON s.id = j.schedule_id
                 WHERE s.display_name = $1 AND j.create_time > $2 ORDER BY j.create_time",
            )
            .bind(name)
            .bind(t("2030-01-01T00:01:00Z"))
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    eventually("catch-up decisions", || async {
        (count(&s.pool, "SELECT count(*) FROM scheduler.jobs").await == 6).then_some(())
    })
    .await;
    // Occurrences 00:05 .. 01:05 of */5 were missed: 13.
    let cal_j = by_name("cal-j").await;
    assert_eq!(cal_j.len(), 1);
    assert_eq!((cal_j[0].0.as_str(), cal_j[0].1.as_str(), cal_j[0].2), ("CATCH_UP", "QUEUED", 13));
    let cal_n = by_name("cal-n").await;
    assert_eq!(cal_n.len(), 1);
    assert_eq!((cal_n[0].0.as_str(), cal_n[0].1.as_str(), cal_n[0].2), ("SYSTEM", "SKIPPED", 13));
    // Intervals fired at t0, then missed +10 .. +60: 6.
    let int_j = by_name("int-j").await;
    assert_eq!((int_j[0].0.as_str(), int_j[0].2), ("CATCH_UP", 6));
    let int_n = by_name("int-n").await;
    assert_eq!((int_n[0].0.as_str(), int_n[0].1.as_str(), int_n[0].2), ("SYSTEM", "SKIPPED", 6));
    let mut client = r.schedules().await;
    let get = |n: &str| {
        let mut c = client.clone();
        let n = n.to_owned();
        async move {
            c.get_schedule(GetScheduleRequest { name: full("schedules", &n) }).await.unwrap().into_inner()
        }
    };
    let ij = get("int-j").await;
    let inn = get("int-n").await;
    assert_eq!(ij.missed_runs, 6);
    assert_eq!(get("cal-n").await.missed_runs, 13);
    // The journalised interval keeps its grid; the other re-anchors on the recovery time.
    assert_eq!(from_timestamp(ij.next_run_time.as_ref().unwrap()), Some(t0 + chrono::Duration::minutes(70)));
    assert_eq!(from_timestamp(inn.next_run_time.as_ref().unwrap()), Some(t0 + chrono::Duration::minutes(75)));
    let skipped = r
        .jobs()
        .await
        .list_jobs(ListJobsRequest {
            parent: "projects/default".into(),
            states: vec![JobState::Skipped as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(skipped.jobs.len(), 2);
    assert!(skipped.jobs.iter().all(|j| j.error.contains("not journalised") && j.missed_occurrences > 0));
    // Then the schedules simply continue.
    clock.set(t0 + chrono::Duration::minutes(70));
    eventually("the next regular run", || async {
        let n = count(&s.pool, "SELECT count(*) FROM scheduler.jobs WHERE trigger = 'SCHEDULE' AND occurrence = '2030-01-01T01:10:00Z'").await;
        (n == 2).then_some(())
    })
    .await;
    client
        .pause_schedule(PauseScheduleRequest {
            name: "projects/default/schedules/cal-j".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    r.stop().await;
}

#[tokio::test]
async fn expired_leases_retry_elsewhere_and_fence_the_zombie() {
    let s = stack().await;
    let r = s.replica(None, |c| c.lease_ttl_secs = 1).await;
    s.store("nas", 4).await;
    s.backup("b", "nas", OverlapPolicy::Skip, |t| {
        t.initial_backoff = Some(prost_types::Duration { seconds: 1, nanos: 0 });
    })
    .await;
    let job = run(&r, "b").await;
    let mut zombie = Worker::new(&r, "zombie", &[]).await;
    let first = zombie.acquire(1, Duration::from_secs(5)).await.remove(0);
    assert_eq!(first.job.as_ref().unwrap().attempt, 1);
    assert!(first.task.as_ref().unwrap().store.as_ref().unwrap().secrets.contains_key("repository_password"));
    // The zombie stops heartbeating; another worker gets the retry after the backoff.
    let mut healthy = Worker::new(&r, "healthy", &[]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let second = loop {
        if let Some(l) = healthy.acquire(1, Duration::from_secs(1)).await.into_iter().next() {
            break l;
        }
        assert!(tokio::time::Instant::now() < deadline, "no retry lease");
    };
    assert_eq!(second.job.as_ref().unwrap().name, job.name);
    assert_eq!(second.job.as_ref().unwrap().attempt, 2);
    assert!(second.generation > first.generation);
    // The zombie's late reports are refused.
    let err = zombie.heartbeat(&first).await.unwrap_err();
    assert_eq!(err.code(), Code::Aborted);
    assert_eq!(status::reason_of(&err).as_deref(), Some(status::reason::LEASE_LOST));
    let err = zombie.complete(&first, Outcome::Succeeded(Default::default())).await.unwrap_err();
    assert_eq!(status::reason_of(&err).as_deref(), Some(status::reason::LEASE_LOST));
    let err = zombie
        .client
        .append_log(AppendLogRequest {
            lease: first.name.clone(),
            generation: first.generation,
            lease_token: Default::default(),
            lines: vec![line(1, "late")],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Aborted);
    healthy.heartbeat(&second).await.unwrap();
    let done = healthy.succeed(&second).await;
    assert_eq!(done.state(), JobState::Succeeded);
    let full = common::job(&r, &job.name).await;
    assert_eq!(full.worker, "healthy");
    assert!(full.log.iter().any(|l| l.message.contains("zombie stopped heartbeating")), "{:?}", full.log);
    assert!(!full.log.iter().any(|l| l.message == "late"));
    // Without attempts left, an expired lease fails the job.
    s.backup("once", "nas", OverlapPolicy::Skip, |t| t.max_attempts = 1).await;
    let once = run(&r, "once").await;
    let _l = zombie.acquire(1, Duration::from_secs(5)).await;
    let failed = eventually("the job to fail", || async {
        let j = common::job(&r, &once.name).await;
        (j.state() == JobState::Failed).then_some(j)
    })
    .await;
    assert!(failed.error.contains("gave up after 1 attempts"), "{}", failed.error);
    r.stop().await;
}

fn line(seq: i64, msg: &str) -> LogLine {
    LogLine { seq, message: msg.into(), level: 2, ..Default::default() }
}

#[tokio::test]
async fn retryable_failures_back_off_and_permanent_ones_fail() {
    let s = stack().await;
    let r = s.replica(None, |_| {}).await;
    s.store("nas", 4).await;
    s.backup("b", "nas", OverlapPolicy::Skip, |t| {
        t.initial_backoff = Some(prost_types::Duration { seconds: 1, nanos: 0 });
        t.max_attempts = 2;
    })
    .await;
    let job = run(&r, "b").await;
    let mut w = Worker::new(&r, "w", &[]).await;
    let l = w.acquire(1, Duration::from_secs(5)).await.remove(0);
    let j = w
        .complete(
            &l,
            Outcome::Failed(JobFailed { error: "network blip".into(), retryable: true, stats: None }),
        )
        .await
        .unwrap();
    assert_eq!(j.state(), JobState::Queued);
    assert!(j.wait_reason.starts_with("retry 2/2 after 1s backoff"), "{}", j.wait_reason);
    assert!(w.acquire(1, Duration::ZERO).await.is_empty(), "not before the backoff");
    let l2 = w.acquire(1, Duration::from_secs(5)).await.remove(0);
    let j = w
        .complete(
            &l2,
            Outcome::Failed(JobFailed { error: "blip again".into(), retryable: true, stats: None }),
        )
        .await
        .unwrap();
    assert_eq!(j.state(), JobState::Failed);
    assert!(j.error.contains("gave up after 2 attempts"));
    assert_eq!(j.name, job.name);
    let perm = run(&r, "b").await;
    let l3 = w.acquire(1, Duration::from_secs(5)).await.remove(0);
    let j = w
        .complete(
            &l3,
            Outcome::Failed(JobFailed { error: "wrong password".into(), retryable: false, stats: None }),
        )
        .await
        .unwrap();
    assert_eq!((j.state(), j.attempt, j.error.as_str()), (JobState::Failed, 1, "wrong password"));
    assert_eq!(j.name, perm.name);
    r.stop().await;
}

#[tokio::test]
async fn cancel_queued_and_running_jobs() {
    let s = stack().await;
    let r = s.replica(None, |_| {}).await;
    s.store("nas", 4).await;
    s.backup("b", "nas", OverlapPolicy::Allow, |_| {}).await;
    let mut jobs = r.jobs().await;
    let queued = run(&r, "b").await;
    let c = jobs
        .cancel_job(CancelJobRequest {
            name: queued.name.clone(),
            reason: "not today".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(c.state(), JobState::Cancelled);
    assert_eq!(c.error, "not today");
    let running = run(&r, "b").await;
    let mut w = Worker::new(&r, "w", &[]).await;
    let l = w.acquire(1, Duration::from_secs(5)).await.remove(0);
    assert_eq!(l.job.as_ref().unwrap().name, running.name);
    assert!(!w.heartbeat(&l).await.unwrap().cancel_requested);
    let c = jobs
        .cancel_job(CancelJobRequest { name: running.name.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(c.state(), JobState::Running);
    assert!(c.cancel_requested);
    assert!(w.heartbeat(&l).await.unwrap().cancel_requested);
    let done = w
        .complete(&l, Outcome::Cancelled(JobCancelled { message: "stopped at checkpoint".into() }))
        .await
        .unwrap();
    assert_eq!(done.state(), JobState::Cancelled);
    let err = jobs.cancel_job(CancelJobRequest { name: running.name.clone(), ..Default::default() }).await;
    assert!(err.is_ok(), "cancelling a cancelled job is idempotent");
    let ok = run(&r, "b").await;
    let l = w.acquire(1, Duration::from_secs(5)).await.remove(0);
    w.succeed(&l).await;
    let err =
        jobs.cancel_job(CancelJobRequest { name: ok.name.clone(), ..Default::default() }).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let err = jobs
        .cancel_job(CancelJobRequest { name: "projects/default/jobs/nope".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_live_from_the_other_replica() {
    let s = stack().await;
    let a = s.replica(None, |_| {}).await;
    let b = s.replica(None, |_| {}).await;
    s.store("nas", 4).await;
    s.backup("b", "nas", OverlapPolicy::Skip, |_| {}).await;
    let job = run(&a, "b").await;
    let mut w = Worker::new(&a, "w", &[]).await;
    let l = w.acquire(1, Duration::from_secs(5)).await.remove(0);
    // Watch through replica B while the worker reports to replica A.
    let mut stream = b
        .jobs()
        .await
        .watch_job(WatchJobRequest { name: job.name.clone(), from_seq: 0 })
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert!(matches!(first.event, Some(Event::Job(ref j)) if j.state() == JobState::Running));
    w.client
        .heartbeat(cairn_api::v1::HeartbeatRequest {
            lease: l.name.clone(),
            generation: l.generation,
            lease_token: Default::default(),
            progress: Some(JobProgress {
                phase: "backing up".into(),
                bytes_done: 50,
                bytes_total: 100,
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    w.client
        .append_log(AppendLogRequest {
            lease: l.name.clone(),
            generation: l.generation,
            lease_token: Default::default(),
            lines: vec![line(1, "one"), line(2, "two")],
        })
        .await
        .unwrap();
    w.succeed(&l).await;
    let mut saw_progress = false;
    let mut lines = Vec::new();
    let mut last_state = JobState::Unspecified;
    while let Some(ev) = tokio::time::timeout(Duration::from_secs(20), stream.message())
        .await
        .expect("stream stalled")
        .unwrap()
    {
        match ev.event {
            Some(Event::Job(j)) => {
                if j.progress.as_ref().is_some_and(|p| p.percent == 50.0) {
                    saw_progress = true;
                }
                last_state = j.state();
            }
            Some(Event::LogLine(l)) => lines.push((l.seq, l.message)),
            None => {}
        }
    }
    assert_eq!(last_state, JobState::Succeeded, "the stream ends with the final state");
    assert_eq!(lines, vec![(1, "one".to_owned()), (2, "two".to_owned())]);
    // Progress may be overtaken by completion; the final job carries it either way.
    let fin = common::job(&b, &job.name).await;
    assert!(saw_progress || fin.progress.is_some_and(|p| p.bytes_done == 50));
    a.stop().await;
    b.stop().await;
}

/// A change that arrives without a notification (one lost, or written by hand) still reaches
/// the job's watchers through the shared re-check, within a few seconds; other jobs' changes
/// do not wake it.
#[tokio::test]
async fn a_change_without_a_notification_reaches_the_watcher() {
    let s = stack().await;
    let r = s.replica(None, |_| {}).await;
    s.store("nas", 4).await;
    s.backup("b", "nas", OverlapPolicy::Allow, |_| {}).await;
    let job = run(&r, "b").await;
    let mut stream = r
        .jobs()
        .await
        .watch_job(WatchJobRequest { name: job.name.clone(), from_seq: -1 })
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert!(matches!(first.event, Some(Event::Job(ref j)) if j.state() == JobState::Queued));
    // Another job changing (with its notification) sends this stream nothing.
    let other = run(&r, "b").await;
    let quiet = tokio::time::timeout(Duration::from_millis(300), stream.message()).await;
    assert!(quiet.is_err(), "woken by {}: {quiet:?}", other.name);
    let id: uuid::Uuid = job.name.rsplit('/').next().unwrap().parse().unwrap();
    sqlx::query("UPDATE scheduler.jobs SET wait_reason = 'changed behind the notifications' WHERE id = $1")
        .bind(id)
        .execute(&s.pool)
        .await
        .unwrap();
    let ev = tokio::time::timeout(cairn_scheduler::events::RECHECK * 3, stream.message())
        .await
        .expect("the re-check did not wake the watcher")
        .unwrap()
        .unwrap();
    assert!(
        matches!(ev.event, Some(Event::Job(ref j)) if j.wait_reason == "changed behind the notifications"),
        "{ev:?}"
    );
    r.stop().await;
}

#[tokio::test]
async fn overlap_policies_decide_what_a_firing_does() {
    let s = stack().await;
    let r = s.replica(None, |_| {}).await;
    s.store("nas", 10).await;
    let mut w = Worker::new(&r, "w", &[]).await;
    // SKIP: a second run while one is active is recorded as SKIPPED.
    s.backup("skip", "nas", OverlapPolicy::Skip, |_| {}).await;
    let first = run(&r, "skip").await;
    let second = run(&r, "skip").await;
    assert_eq!(second.state(), JobState::Skipped);
    assert!(second.error.contains(&first.name), "{}", second.error);
    let l = w.acquire(10, Duration::from_secs(5)).await.remove(0);
    w.succeed(&l).await;
    // QUEUE_ONE: one waits behind the running job, more are skipped.
    s.backup("q1", "nas", OverlapPolicy::QueueOne, |_| {}).await;
    run(&r, "q1").await;
    let l1 = w.acquire(10, Duration::from_secs(5)).await.remove(0);
    let waiting = run(&r, "q1").await;
    assert_eq!(waiting.state(), JobState::Queued);
    assert_eq!(run(&r, "q1").await.state(), JobState::Skipped);
    assert!(w.acquire(10, Duration::from_millis(200)).await.is_empty(), "waits for the running job");
    let j = common::job(&r, &waiting.name).await;
    assert!(j.wait_reason.contains("same task"), "{}", j.wait_reason);
    w.succeed(&l1).await;
    let l2 = w.acquire(10, Duration::from_secs(5)).await.remove(0);
    assert_eq!(l2.job.as_ref().unwrap().name, waiting.name);
    w.succeed(&l2).await;
    // ALLOW: both run at once.
    s.backup("allow", "nas", OverlapPolicy::Allow, |_| {}).await;
    run(&r, "allow").await;
    run(&r, "allow").await;
    let both = w.acquire(10, Duration::from_secs(5)).await;
    assert_eq!(both.len(), 2);
    for l in &both {
        w.succeed(l).await;
    }
    // CANCEL_RUNNING: the running job is asked to stop; the new one waits for it.
    s.backup("cancel", "nas", OverlapPolicy::CancelRunning, |_| {}).await;
    let old = run(&r, "cancel").await;
    let lo = w.acquire(10, Duration::from_secs(5)).await.remove(0);
    let new = run(&r, "cancel").await;
    assert_eq!(new.state(), JobState::Queued);
    assert!(w.heartbeat(&lo).await.unwrap().cancel_requested);
    assert!(w.acquire(10, Duration::from_millis(200)).await.is_empty());
    let c = w.complete(&lo, Outcome::Cancelled(JobCancelled::default())).await.unwrap();
    assert_eq!(c.state(), JobState::Cancelled);
    assert!(c.error.contains("CANCEL_RUNNING"), "{}", c.error);
    assert_eq!(c.name, old.name);
    let ln = w.acquire(10, Duration::from_secs(5)).await.remove(0);
    assert_eq!(ln.job.as_ref().unwrap().name, new.name);
    r.stop().await;
}

/// Schedules falling due together fire in batches (all their jobs in one statement), and the
/// jobs of one task in a batch see each other: its overlap policy holds as if they had fired
/// one by one; more schedules than a batch holds all fire once.
#[tokio::test]
async fn schedules_due_together_fire_in_batches_that_keep_overlap_policies() {
    let s = stack().await;
    let t0 = t("2030-01-01T00:00:30Z");
    let clock = ManualClock::new(t0);
    let r = s.replica(Some(clock.clone()), |_| {}).await;
    s.store("nas", 1000).await;
    let due = "*-*-* 00:01:30";
    for (task, policy) in [
        ("skip", OverlapPolicy::Skip),
        ("q1", OverlapPolicy::QueueOne),
        ("cancel", OverlapPolicy::CancelRunning),
    ] {
        s.backup(task, "nas", policy, |_| {}).await;
        for i in 0..3 {
            let schedule_def = Schedule {
                display_name: format!("{task}-{i}"),
                task: task.into(),
                recurrence: calendar(due),
                ..Default::default()
            };
            schedule(&r, schedule_def).await;
        }
    }
    s.backup("allow", "nas", OverlapPolicy::Allow, |_| {}).await;
    for i in 0..620 {
        let schedule_def = Schedule {
            display_name: format!("allow-{i}"),
            task: "allow".into(),
            recurrence: calendar(due),
            ..Default::default()
        };
        schedule(&r, schedule_def).await;
    }
    assert_eq!(count(&s.pool, "SELECT count(*) FROM scheduler.jobs").await, 0);
    clock.set(t("2030-01-01T00:01:30Z"));
    eventually("every occurrence fired", || async {
        (count(&s.pool, "SELECT count(*) FROM scheduler.jobs").await == 629).then_some(())
    })
    .await;
    let states = |task: &'static str| {
        let pool = s.pool.clone();
        async move {
            sqlx::query_as::<_, (String, i64)>(
                "SELECT state, count(*) FROM scheduler.jobs WHERE task_display_name = $1 GROUP BY state ORDER BY state",
            )
            .bind(task)
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    assert_eq!(states("skip").await, [("QUEUED".into(), 1), ("SKIPPED".into(), 2)]);
    assert_eq!(states("q1").await, [("QUEUED".into(), 1), ("SKIPPED".into(), 2)]);
    assert_eq!(states("cancel").await, [("CANCELLED".into(), 2), ("QUEUED".into(), 1)]);
    assert_eq!(states("allow").await, [("QUEUED".into(), 620)]);
    let skipped: Vec<String> =
        sqlx::query_scalar("SELECT error FROM scheduler.jobs WHERE state IN ('SKIPPED', 'CANCELLED')")
            .fetch_all(&s.pool)
            .await
            .unwrap();
    for e in &skipped {
        assert!(e.contains("overlap policy"), "{e}");
    }
    assert_eq!(
        count(&s.pool, "SELECT count(DISTINCT (schedule_id, occurrence)) FROM scheduler.jobs").await,
        629,
        "each occurrence once"
    );
    // Every schedule moved on to the next day, pointing at its job.
    assert_eq!(
        count(
            &s.pool,
            "SELECT count(*) FROM scheduler.schedules s JOIN scheduler.jobs j ON j.id = s.last_job_id
              WHERE s.next_fire = '2030-01-02T00:01:30Z' AND j.schedule_id = s.id",
        )
        .await,
        629
    );
    r.stop().await;
}

#[tokio::test]
async fn stores_bound_concurrency_and_prune_is_exclusive() {
    let s = stack().await;
    let r = s.replica(None, |_| {}).await;
    s.store("nas", 2).await;
    for i in 0..3 {
        s.backup(&format!("b{i}"), "nas", OverlapPolicy::Allow, |_| {}).await;
    }
    s.task(cairn_api::v1::Task {
        display_name: "prune".into(),
        r#type: TaskType::Prune as i32,
        store: "nas".into(),
        ..Default::default()
    })
    .await;
    let mut w = Worker::new(&r, "w", &[]).await;
    let jobs: Vec<_> = futures_join(&r, &["b0", "b1", "b2"]).await;
    let leases = w.acquire(10, Duration::from_secs(5)).await;
    assert_eq!(leases.len(), 2, "max_concurrent_jobs = 2");
    let third = jobs.iter().find(|j| !leases.iter().any(|l| l.job.as_ref().unwrap().name == j.name)).unwrap();
    let j = common::job(&r, &third.name).await;
    assert_eq!(j.wait_reason, "waiting for store nas (2/2 jobs running)");
    let prune = run(&r, "prune").await;
    // Finishing one frees a slot: the waiting backup goes first; the long poll wakes on it.
    let mut w2 = Worker::new(&r, "w2", &[]).await;
    let waiter = tokio::spawn(async move { w2.acquire(10, Duration::from_secs(10)).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    w.succeed(&leases[0]).await;
    let got = waiter.await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].job.as_ref().unwrap().name, third.name);
    let p = common::job(&r, &prune.name).await;
    assert!(p.wait_reason.contains("PRUNE needs it exclusively"), "{}", p.wait_reason);
    w.succeed(&leases[1]).await;
    w.succeed(&got[0]).await;
    let pl = w.acquire(10, Duration::from_secs(5)).await;
    assert_eq!(pl.len(), 1);
    assert_eq!(pl[0].job.as_ref().unwrap().name, prune.name);
    // While the prune runs, backups wait.
    let b = run(&r, "b0").await;
    assert!(w.acquire(10, Duration::from_millis(200)).await.is_empty());
    assert!(common::job(&r, &b.name).await.wait_reason.contains("holds it exclusively"));
    w.succeed(&pl[0]).await;
    assert_eq!(w.acquire(10, Duration::from_secs(5)).await.len(), 1);
    r.stop().await;
}

async fn futures_join(r: &Replica, tasks: &[&str]) -> Vec<cairn_api::v1::Job> {
    let mut out = Vec::new();
    for t in tasks {
        out.push(run(r, t).await);
    }
    out
}

#[tokio::test]
async fn placement_follows_worker_labels() {
    let s = stack().await;
    let r = s.replica(None, |_| {}).await;
    s.store("nas", 4).await;
    s.source("db1-src", &[("host", "db1")]).await;
    s.task(cairn_api::v1::Task {
        display_name: "db".into(),
        r#type: TaskType::Backup as i32,
        source: "db1-src".into(),
        store: "nas".into(),
        ..Default::default()
    })
    .await;
    let job = run(&r, "db").await;
    let mut elsewhere = Worker::new(&r, "web", &[("host", "web1")]).await;
    assert!(elsewhere.acquire(5, Duration::from_millis(300)).await.is_empty());
    let mut unlabeled = Worker::new(&r, "plain", &[]).await;
    assert!(unlabeled.acquire(5, Duration::from_millis(100)).await.is_empty());
    let mut right = Worker::new(&r, "db1", &[("host", "db1"), ("zone", "eu")]).await;
    let l = right.acquire(5, Duration::from_secs(5)).await;
    assert_eq!(l[0].job.as_ref().unwrap().name, job.name);
    r.stop().await;
}

#[tokio::test]
async fn run_task_never_moves_the_next_scheduled_run() {
    let s = stack().await;
    let clock = ManualClock::new(t("2030-01-07T10:15:00Z"));
    let r = s.replica(Some(clock.clone()), |_| {}).await;
    s.store("nas", 4).await;
    s.backup("b", "nas", OverlapPolicy::Allow, |_| {}).await;
    let sched = schedule(
        &r,
        Schedule {
            display_name: "daily".into(),
            task: "b".into(),
            recurrence: calendar("02:00"),
            ..Default::default()
        },
    )
    .await;
    let manual = run(&r, "b").await;
    assert_eq!(manual.trigger(), JobTrigger::Manual);
    assert!(manual.schedule.is_empty());
    let after = r
        .schedules()
        .await
        .get_schedule(GetScheduleRequest { name: "projects/default/schedules/daily".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.next_run_time, sched.next_run_time);
    assert_eq!(from_timestamp(after.next_run_time.as_ref().unwrap()), Some(t("2030-01-08T02:00:00Z")));
    r.stop().await;
}

#[tokio::test]
async fn timeouts_stop_and_fail_the_job() {
    let s = stack().await;
    let r = s.replica(None, |_| {}).await;
    s.store("nas", 4).await;
    s.backup("slow", "nas", OverlapPolicy::Skip, |t| {
        t.timeout = Some(prost_types::Duration { seconds: 1, nanos: 0 })
    })
    .await;
    let job = run(&r, "slow").await;
    let mut w = Worker::new(&r, "w", &[]).await;
    let l = w.acquire(1, Duration::from_secs(5)).await.remove(0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !w.heartbeat(&l).await.unwrap().cancel_requested {
        assert!(tokio::time::Instant::now() < deadline, "no cancel request from the timeout");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let done = w.complete(&l, Outcome::Cancelled(JobCancelled::default())).await.unwrap();
    assert_eq!(done.state(), JobState::Failed);
    assert!(done.error.starts_with("timed out after 1s"), "{}", done.error);
    assert_eq!(done.name, job.name);
    r.stop().await;
}

#[tokio::test]
async fn log_appends_are_ordered_and_idempotent() {
    let s = stack().await;
    let r = s.replica(None, |_| {}).await;
    s.store("nas", 4).await;
    s.backup("b", "nas", OverlapPolicy::Skip, |_| {}).await;
    let job = run(&r, "b").await;
    let mut w = Worker::new(&r, "w", &[]).await;
    let l = w.acquire(1, Duration::from_secs(5)).await.remove(0);
    let append = |lines: Vec<LogLine>| AppendLogRequest {
        lease: l.name.clone(),
        generation: l.generation,
        lines,
        lease_token: l.token.clone(),
    };
    w.client.append_log(append(vec![line(1, "a"), line(2, "b"), line(3, "c")])).await.unwrap();
    w.client.append_log(append(vec![line(1, "a"), line(2, "b"), line(3, "c")])).await.unwrap();
    w.client.append_log(append(vec![line(3, "c"), line(4, "d")])).await.unwrap();
    let err = w.client.append_log(append(vec![line(2, "x"), line(1, "y")])).await.unwrap_err();
    assert_eq!(status::fields_of(&err), vec!["lines[1].seq"]);
    let full = common::job(&r, &job.name).await;
    let got: Vec<(i64, String)> = full.log.iter().map(|l| (l.seq, l.message.clone())).collect();
    assert_eq!(got, vec![(1, "a".into()), (2, "b".into()), (3, "c".into()), (4, "d".into())]);
    r.stop().await;
}

#[tokio::test]
async fn deleted_tasks_stop_firing() {
    let s = stack().await;
    let clock = ManualClock::new(t("2030-01-07T10:15:00Z"));
    let r = s.replica(Some(clock.clone()), |c| c.catalog_cache_ms = 0).await;
    s.store("nas", 4).await;
    s.backup("doomed", "nas", OverlapPolicy::Allow, |_| {}).await;
    schedule(
        &r,
        Schedule {
            display_name: "orphan".into(),
            task: "doomed".into(),
            recurrence: calendar("hourly"),
            ..Default::default()
        },
    )
    .await;
    // The catalog cannot reach this scheduler (tests give it none): firing must notice.
    s.catalog
        .clone()
        .delete_task(DeleteTaskRequest { name: "projects/default/tasks/doomed".into(), ..Default::default() })
        .await
        .unwrap();
    clock.set(t("2030-01-07T11:00:00Z"));
    eventually("the orphan schedule to go", || async {
        (count(&s.pool, "SELECT count(*) FROM scheduler.schedules").await == 0).then_some(())
    })
    .await;
    assert_eq!(count(&s.pool, "SELECT count(*) FROM scheduler.jobs").await, 0, "an orphan never fired");
    r.stop().await;
}

#[tokio::test]
async fn old_history_is_purged() {
    let s = stack().await;
    let clock = ManualClock::new(t("2030-01-01T00:00:00Z"));
    let r = s.replica(Some(clock.clone()), |c| c.job_history_days = 30).await;
    s.store("nas", 4).await;
    s.backup("b", "nas", OverlapPolicy::Allow, |_| {}).await;
    let mut w = Worker::new(&r, "w", &[]).await;
    let old = run(&r, "b").await;
    let l = w.acquire(1, Duration::from_secs(5)).await.remove(0);
    w.client
        .append_log(AppendLogRequest {
            lease: l.name.clone(),
            generation: l.generation,
            lease_token: Default::default(),
            lines: vec![line(1, "old line")],
        })
        .await
        .unwrap();
    w.succeed(&l).await;
    clock.set(t("2030-01-20T00:00:00Z"));
    let recent = run(&r, "b").await;
    let l = w.acquire(1, Duration::from_secs(5)).await.remove(0);
    w.succeed(&l).await;
    let queued = run(&r, "b").await;
    clock.set(t("2030-02-05T00:00:00Z"));
    // The reaper purges at start-up and hourly; restart to trigger it now.
    r.stop().await;
    let r = s.replica(Some(clock.clone()), |c| c.job_history_days = 30).await;
    eventually("the purge", || async {
        (count(&s.pool, "SELECT count(*) FROM scheduler.jobs").await == 2).then_some(())
    })
    .await;
    let mut jobs = r.jobs().await;
    let err =
        jobs.get_job(cairn_api::v1::GetJobRequest { name: old.name.clone(), view: 2 }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(count(&s.pool, "SELECT count(*) FROM scheduler.job_logs").await, 0, "logs go with their job");
    common::job(&r, &recent.name).await;
    assert_eq!(
        common::job(&r, &queued.name).await.state(),
        JobState::Queued,
        "unfinished jobs are never purged"
    );
    r.stop().await;
}

/// Many workers racing for jobs on one store (limit 3) and for serial jobs of one task: the
/// limits hold at every moment observed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_leasing_never_exceeds_store_limits_or_serial_tasks() {
    let s = stack().await;
    let r = s.replica(None, |c| c.db_max_connections = 40).await;
    let store = s.store("tight", 3).await;
    let wide = s.store("wide", 1000).await;
    s.backup("many", "tight", OverlapPolicy::Allow, |_| {}).await;
    let serial = s.backup("serial", "wide", OverlapPolicy::Allow, |_| {}).await;
    for _ in 0..40 {
        run(&r, "many").await;
    }
    // Serial jobs of one task (what SKIP/QUEUE_ONE/CANCEL_RUNNING produce), written directly
    // so that many wait at once. Their store never had a job through the API, so the scheduler
    // has no row to lock for it: serial exclusivity must not lean on store locks.
    sqlx::query(
        "INSERT INTO scheduler.jobs (id, task_id, type, trigger, connector_ids, store_ids, serial, selector, state,
                                     scheduled_time, run_after, create_time, max_attempts, project_id)
         SELECT gen_random_uuid(), $1, 'BACKUP', 'MANUAL', ARRAY[$2::uuid], ARRAY[$2::uuid], true, '{}', 'QUEUED',
                now(), now(), now(), 1, 'default' FROM generate_series(1, 20)",
    )
    .bind(uuid::Uuid::parse_str(serial.name.rsplit('/').next().unwrap()).unwrap())
    .bind(uuid::Uuid::parse_str(wide.name.rsplit('/').next().unwrap()).unwrap())
    .execute(&s.pool)
    .await
    .unwrap();
    let tight = uuid::Uuid::parse_str(store.name.rsplit('/').next().unwrap()).unwrap();
    let mut handles = Vec::new();
    for i in 0..8 {
        let mut w = Worker::new(&r, &format!("w{i}"), &[]).await;
        let pool = s.pool.clone();
        handles.push(tokio::spawn(async move {
            let (mut worst_store, mut worst_serial, mut done) = (0i64, 0i64, 0);
            loop {
                let leases = w.acquire(2, Duration::from_millis(300)).await;
                if leases.is_empty() {
                    let left: i64 = sqlx::query_scalar(
                        "SELECT count(*) FROM scheduler.jobs WHERE state IN ('QUEUED', 'RUNNING')",
                    )
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                    if left == 0 {
                        return (worst_store, worst_serial, done);
                    }
                    continue;
                }
                let (on_store, on_serial): (i64, i64) = sqlx::query_as(
                    "SELECT count(*) FILTER (WHERE $1 = ANY(store_ids)), count(*) FILTER (WHERE serial)
                     FROM scheduler.jobs WHERE state = 'RUNNING'",
                )
                .bind(tight)
                .fetch_one(&pool)
                .await
                .unwrap();
                worst_store = worst_store.max(on_store);
                worst_serial = worst_serial.max(on_serial);
                tokio::time::sleep(Duration::from_millis(5)).await;
                for l in &leases {
                    w.succeed(l).await;
                    done += 1;
                }
            }
        }));
    }
    let (mut worst_store, mut worst_serial, mut done) = (0, 0, 0);
    for h in handles {
        let (a, b, n) = h.await.unwrap();
        worst_store = worst_store.max(a);
        worst_serial = worst_serial.max(b);
        done += n;
    }
    assert_eq!(done, 60);
    assert!(worst_store <= 3, "{worst_store} jobs ran at once on a store limited to 3");
    assert!(worst_serial <= 1, "{worst_serial} serial jobs of one task ran at once");
    assert!(worst_store >= 2, "the test never saw concurrency ({worst_store})");
    r.stop().await;
}

#[tokio::test]
async fn lists_filter_and_order_and_mutations_are_idempotent() {
    let s = stack().await;
    let clock = ManualClock::new(t("2030-01-07T10:00:00Z"));
    let r = s.replica(Some(clock.clone()), |_| {}).await;
    s.store("nas", 4).await;
    s.backup("nightly", "nas", OverlapPolicy::Allow, |_| {}).await;
    s.backup("other", "nas", OverlapPolicy::Allow, |_| {}).await;
    let mut w = Worker::new(&r, "w", &[]).await;
    // Six jobs a minute apart: nightly succeeded, failed, succeeded; other succeeded, queued x2.
    let mut made = Vec::new();
    for (i, (task, outcome)) in [
        ("nightly", Some(true)),
        ("nightly", Some(false)),
        ("nightly", Some(true)),
        ("other", Some(true)),
        ("other", None),
        ("other", None),
    ]
    .into_iter()
    .enumerate()
    {
        clock.set(t("2030-01-07T10:00:00Z") + chrono::Duration::minutes(i as i64));
        let job = run(&r, task).await;
        if let Some(ok) = outcome {
            let l = w.acquire(1, Duration::from_secs(5)).await.remove(0);
            assert_eq!(l.job.as_ref().unwrap().name, job.name);
            if ok {
                w.succeed(&l).await
            } else {
                w.fail(&l, "disk on fire").await
            };
        }
        made.push(job.name);
    }
    let mut jobs = r.jobs().await;
    let list = |filter: &str, order_by: &str, page_size: i32, page_token: String| {
        let req = ListJobsRequest {
            parent: "projects/default".into(),
            filter: filter.into(),
            order_by: order_by.into(),
            page_size,
            page_token,
            ..Default::default()
        };
        let mut jobs = jobs.clone();
        async move { jobs.list_jobs(req).await.map(|r| r.into_inner()) }
    };
    let names =
        |r: &cairn_api::v1::ListJobsResponse| r.jobs.iter().map(|j| j.name.clone()).collect::<Vec<_>>();
    let got = list(r#"state = SUCCEEDED AND task = "nightly""#, "", 0, String::new()).await.unwrap();
    assert_eq!(names(&got), vec![made[2].clone(), made[0].clone()], "newest first by default");
    let got = list("NOT state = QUEUED", "create_time asc", 0, String::new()).await.unwrap();
    assert_eq!(names(&got), made[..4].to_vec());
    let got = list(r#"create_time > "2030-01-07T10:03:30Z""#, "", 0, String::new()).await.unwrap();
    assert_eq!(names(&got), vec![made[5].clone(), made[4].clone()]);
    let got =
        list(r#"error:"fire" OR state = JOB_STATE_QUEUED"#, "create_time", 0, String::new()).await.unwrap();
    assert_eq!(names(&got), vec![made[1].clone(), made[4].clone(), made[5].clone()]);
    // Paging in ascending order walks every job once; a token is bound to its filter.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = list("", "create_time asc", 4, token).await.unwrap();
        seen.extend(names(&page));
        if page.next_page_token.is_empty() {
            break;
        }
        let err =
            list("state = QUEUED", "create_time asc", 4, page.next_page_token.clone()).await.unwrap_err();
        assert_eq!(status::fields_of(&err), vec!["page_token"]);
        token = page.next_page_token;
    }
    assert_eq!(seen, made);
    // Bad filters and orders name the field and the offending token.
    for (filter, needle) in [
        ("state = DONE", "DONE"),
        ("colour = red", "colour"),
        ("state = QUEUED AND", "expected a field name"),
        (r#"create_time > "yesterday""#, "yesterday"),
        (r#"task = "nope""#, "nope"),
    ] {
        let err = list(filter, "", 0, String::new()).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{filter}");
        assert_eq!(status::fields_of(&err), vec!["filter"], "{filter}");
        assert!(err.message().contains(needle), "{filter}: {}", err.message());
    }
    for order in ["colour", "create_time sideways", "create_time, end_time desc"] {
        let err = list("", order, 0, String::new()).await.unwrap_err();
        assert_eq!(status::fields_of(&err), vec!["order_by"], "{order}: {}", err.message());
    }

    // Schedules: filter, order and the total.
    let mut client = r.schedules().await;
    for (name, task, tz) in
        [("b-weekly", "nightly", "UTC"), ("a-daily", "other", "Europe/Berlin"), ("c-hourly", "other", "UTC")]
    {
        schedule(
            &r,
            Schedule {
                display_name: name.into(),
                task: task.into(),
                recurrence: calendar("daily"),
                time_zone: tz.into(),
                ..Default::default()
            },
        )
        .await;
    }
    let listed = client
        .list_schedules(ListSchedulesRequest {
            parent: "projects/default".into(),
            filter: r#"task = "other" OR time_zone = "UTC""#.into(),
            order_by: "display_name".into(),
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let shown: Vec<_> = listed.schedules.iter().map(|s| s.display_name.as_str()).collect();
    assert_eq!(shown, ["a-daily", "b-weekly"]);
    assert_eq!(listed.total_size, 3);
    assert!(!listed.next_page_token.is_empty());
    let listed = client
        .list_schedules(ListSchedulesRequest {
            parent: "projects/default".into(),
            filter: r#"NOT time_zone = "UTC""#.into(),
            order_by: "display_name desc".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.schedules.len(), 1);
    assert_eq!(listed.total_size, 1);
    let err = client
        .list_schedules(ListSchedulesRequest {
            parent: "projects/default".into(),
            filter: "enabled = maybe".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status::fields_of(&err), vec!["filter"]);

    // Mutations retried with their request id answer the first answer and act once.
    let rid = |n: u8| format!("0193f3a2-6b1c-7cc0-8a5e-3b0c1d2e4f{n:02}");
    let name = "projects/default/schedules/b-weekly".to_owned();
    let current = client.get_schedule(GetScheduleRequest { name: name.clone() }).await.unwrap().into_inner();
    let update = UpdateScheduleRequest {
        schedule: Some(Schedule {
            name: name.clone(),
            description: "first".into(),
            etag: current.etag.clone(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask { paths: vec!["description".into()] }),
        request_id: rid(1),
        ..Default::default()
    };
    // validate_only answers what the update would do and changes nothing.
    let dry = client
        .update_schedule(UpdateScheduleRequest {
            validate_only: true,
            request_id: String::new(),
            ..update.clone()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(dry.description, "first");
    let still = client.get_schedule(GetScheduleRequest { name: name.clone() }).await.unwrap().into_inner();
    assert_eq!((still.description.as_str(), &still.etag), ("", &current.etag));
    let first = client.update_schedule(update.clone()).await.unwrap().into_inner();
    let again = client.update_schedule(update.clone()).await.unwrap().into_inner();
    assert_eq!(first, again, "a retry with a stale etag gets the first answer");
    let err = client
        .update_schedule(UpdateScheduleRequest {
            schedule: Some(Schedule {
                name: "projects/default/schedules/a-daily".into(),
                ..update.schedule.clone().unwrap()
            }),
            ..update.clone()
        })
        .await
        .unwrap_err();
    assert_eq!(status::fields_of(&err), vec!["request_id"], "one id, another resource");
    let pause = PauseScheduleRequest { name: name.clone(), request_id: rid(2) };
    let paused = client.pause_schedule(pause.clone()).await.unwrap().into_inner();
    assert_eq!(client.pause_schedule(pause).await.unwrap().into_inner(), paused);
    let resume = ResumeScheduleRequest { name: name.clone(), request_id: rid(3) };
    let resumed = client.resume_schedule(resume.clone()).await.unwrap().into_inner();
    assert_eq!(client.resume_schedule(resume).await.unwrap().into_inner(), resumed);
    let delete =
        cairn_api::v1::DeleteScheduleRequest { name: name.clone(), request_id: rid(4), ..Default::default() };
    client.delete_schedule(delete.clone()).await.unwrap();
    client.delete_schedule(delete).await.expect("a retried delete answers as the first did, not NOT_FOUND");
    let cancel = CancelJobRequest { name: made[4].clone(), reason: "once".into(), request_id: rid(5) };
    let c1 = jobs.cancel_job(cancel.clone()).await.unwrap().into_inner();
    let c2 = jobs.cancel_job(cancel).await.unwrap().into_inner();
    assert_eq!((c1.state(), c1), (JobState::Cancelled, c2));
    assert_eq!(count(&s.pool, "SELECT count(*) FROM scheduler.request_ids").await, 5);
    // Output-only fields a client sends are ignored.
    let made = client
        .create_schedule(cairn_api::v1::CreateScheduleRequest {
            parent: "projects/default".into(),
            schedule: Some(Schedule {
                display_name: "d-ignored".into(),
                task: "nightly".into(),
                recurrence: calendar("daily"),
                create_time: Some(to_timestamp(t("2001-01-01T00:00:00Z"))),
                missed_runs: 7,
                last_job_state: JobState::Failed as i32,
                normalized_recurrence: "nonsense".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(from_timestamp(made.create_time.as_ref().unwrap()), Some(clock.now()));
    assert_eq!(
        (made.missed_runs, made.last_job_state, made.normalized_recurrence.as_str()),
        (0, 0, "*-*-* 00:00:00")
    );
    r.stop().await;
}
