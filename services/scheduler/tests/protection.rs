//! Protection status over the real APIs: a source whose backups fail turns AT_RISK, then
//! VIOLATED with exactly one notification, and recovers with exactly one more; filters,
//! paging and bad input of ListProtectionStatus; RPO validation in the catalog.

mod common;

use std::time::Duration;

use cairn_api::v1::{
    BackupOptions, Connector, CreateConnectorRequest, CreateTaskRequest, JobState, JobSucceeded,
    ListProtectionStatusRequest, ListProtectionStatusResponse, LocalStore, Notification, NotificationMode,
    OverlapPolicy, ProtectionState, ProtectionStatus, StoreSnapshots, Task, TaskType, UpdateConnectorRequest,
    WebhookChannel, complete_job_request::Outcome, connector::Config as Cfg, task::Options,
};
use cairn_scheduler::ManualClock;
use cairn_testkit::{http::Receiver, servers::Server};
use chrono::{DateTime, Utc};
use common::*;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn minutes(n: i64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration { seconds: n * 60, nanos: 0 })
}

async fn status(
    r: &Replica,
    req: ListProtectionStatusRequest,
) -> Result<ListProtectionStatusResponse, tonic::Status> {
    let req = ListProtectionStatusRequest { parent: DEFAULT.into(), ..req };
    r.jobs().await.list_protection_status(req).await.map(|r| r.into_inner())
}

async fn all(r: &Replica) -> Vec<ProtectionStatus> {
    status(r, ListProtectionStatusRequest::default()).await.unwrap().statuses
}

async fn of(r: &Replica, source: &str) -> ProtectionStatus {
    let got = status(r, ListProtectionStatusRequest { source: source.into(), ..Default::default() })
        .await
        .unwrap()
        .statuses;
    assert_eq!(got.len(), 1, "{got:?}");
    got.into_iter().next().unwrap()
}

/// Webhook deliveries of one event.
fn events(hook: &Receiver, event: &str) -> Vec<serde_json::Value> {
    hook.received()
        .iter()
        .filter(|r| r.headers.get("x-cairn-event").map(String::as_str) == Some(event))
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_source_turns_at_risk_then_violated_and_each_change_is_notified_once() {
    let s = stack().await;
    let hook = Receiver::start().await;
    let smtp = Server::smtp().await;
    if smtp.is_none() {
        eprintln!("SKIP email part: aiosmtpd is not installed (.ci/run installs it)");
    }
    let smtp_url = smtp.as_ref().map(|m| format!("smtp://127.0.0.1:{}", m.port));
    let tweak = |c: &mut cairn_scheduler::Config| {
        c.protection_sweep_ms = 100;
        c.smtp_url = smtp_url.clone();
        c.smtp_from = "cairn@example.com".into();
    };
    let clock = ManualClock::new(t("2030-01-07T10:00:00Z"));
    // Two replicas sweep the same rows: still one notification each way.
    let r = s.replica(Some(clock.clone()), tweak).await;
    let r2 = s.replica(Some(clock.clone()), tweak).await;
    let emails = if smtp.is_some() { vec!["ops@example.com".to_owned()] } else { vec![] };
    let nas = s.store("nas", 4).await;
    s.backup("db", "nas", OverlapPolicy::Allow, |t| {
        t.options = Some(Options::Backup(BackupOptions { rpo: minutes(1), ..Default::default() }));
        t.notification = Some(Notification {
            mode: NotificationMode::Errors as i32,
            webhooks: vec![WebhookChannel {
                url: format!("{}/hook", hook.url),
                secret: "s3cret-hook".into(),
                secret_set: false,
            }],
            emails: emails.clone(),
        });
    })
    .await;
    s.source("lonely", &[]).await;

    // Nothing ran yet: both sources are unprotected; the one without a task says so.
    let before = all(&r).await;
    assert_eq!(before.len(), 2, "{before:?}");
    assert!(before.iter().all(|x| x.state() == ProtectionState::NeverBackedUp), "{before:?}");
    let lonely = of(&r, "lonely").await;
    assert!(lonely.task.is_empty() && lonely.rpo.is_none(), "{lonely:?}");
    assert_eq!(of(&r, "db-src").await.rpo, minutes(1));

    // A success at 10:00:00 (the plain one-statement completion).
    let mut w = Worker::new(&r, "w", &[]).await;
    run(&r, "db").await;
    let l = w.acquire(1, Duration::from_secs(5)).await.remove(0);
    let first = w
        .complete(&l, Outcome::Succeeded(JobSucceeded { snapshot: "a1".repeat(32), ..Default::default() }))
        .await
        .unwrap();
    let ok = of(&r, "db-src").await;
    assert_eq!(ok.state(), ProtectionState::Ok, "{ok:?}");
    assert_eq!(
        (ok.last_snapshot.as_str(), ok.last_success_job.as_str()),
        ("a1".repeat(32).as_str(), first.name.as_str())
    );
    assert_eq!(ok.task_display_name, "db");

    // 45 s later (75 % of the RPO) it is at risk; a failing backup changes nothing but the
    // last job.
    clock.advance(Duration::from_secs(45));
    assert_eq!(of(&r, "db-src").await.state(), ProtectionState::AtRisk);
    run(&r, "db").await;
    let l = w.acquire(1, Duration::from_secs(5)).await.remove(0);
    w.fail(&l, "disk on fire").await;
    let risk = of(&r, "db-src").await;
    assert_eq!(risk.state(), ProtectionState::AtRisk, "{risk:?}");
    assert_eq!((risk.last_job_state(), risk.last_error.as_str()), (JobState::Failed, "disk on fire"));
    assert!(events(&hook, "source.rpo_violated").is_empty(), "not violated yet");

    // Past the RPO: VIOLATED, and one notification (whichever replica saw it first).
    clock.advance(Duration::from_secs(16));
    let violated = of(&r, "db-src").await;
    assert_eq!(violated.state(), ProtectionState::Violated, "{violated:?}");
    wait_for("the violation webhook", || !events(&hook, "source.rpo_violated").is_empty()).await;
    let v = &events(&hook, "source.rpo_violated")[0];
    assert_eq!(v["source"]["display_name"], "db-src");
    assert_eq!(v["task"]["display_name"], "db");
    assert_eq!(v["rpo"], "1m");
    assert_eq!(v["last_success_time"], "2030-01-07T10:00:00+00:00");
    assert_eq!(v["state"], "VIOLATED");
    assert!(of(&r2, "db-src").await.violated_time.is_some());
    clock.advance(Duration::from_secs(60));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(events(&hook, "source.rpo_violated").len(), 1, "exactly one violation notification");

    // The next success (the full completion path, with a snapshot index) ends it, once.
    run(&r, "db").await;
    let l = w.acquire(1, Duration::from_secs(5)).await.remove(0);
    w.client
        .complete_job(cairn_api::v1::CompleteJobRequest {
            lease: l.name.clone(),
            generation: l.generation,
            outcome: Some(Outcome::Succeeded(JobSucceeded {
                snapshot: "b2".repeat(32),
                ..Default::default()
            })),
            snapshot_index: vec![StoreSnapshots { store: nas.name.clone(), snapshots: vec![] }],
            lease_token: l.token.clone(),
        })
        .await
        .unwrap();
    let back = of(&r, "db-src").await;
    assert_eq!(back.state(), ProtectionState::Ok, "{back:?}");
    assert!(back.violated_time.is_none());
    wait_for("the recovery webhook", || !events(&hook, "source.rpo_recovered").is_empty()).await;
    let rec = &events(&hook, "source.rpo_recovered")[0];
    assert_eq!(rec["last_snapshot"], "b2".repeat(32));
    assert_eq!(rec["state"], "OK");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(events(&hook, "source.rpo_violated").len(), 1);
    assert_eq!(events(&hook, "source.rpo_recovered").len(), 1, "exactly one recovery notification");
    // The failed job was notified on its own (mode ERRORS), as before.
    assert_eq!(events(&hook, "job.finished").len(), 1);
    // Email says the same, once each.
    if let Some(m) = &smtp {
        wait_for("three emails", || m.mails().len() >= 3).await;
        let mails = m.mails();
        let with = |needle: &str| mails.iter().filter(|x| x.contains(needle)).count();
        assert_eq!(with("Subject: [Cairn] db-src violated its RPO of 1m"), 1, "{mails:?}");
        assert_eq!(with("Subject: [Cairn] db-src is within its RPO again"), 1, "{mails:?}");
        assert_eq!(with("Subject: [Cairn] db FAILED"), 1, "{mails:?}");
        assert!(
            mails.iter().any(|x| x.contains("Last successful backup: 2030-01-07T10:00:00+00:00")),
            "{mails:?}"
        );
    }
    r2.stop().await;
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sources_own_rpo_overrides_its_tasks_and_lists_filter_and_page() {
    let s = stack().await;
    let clock = ManualClock::new(t("2030-01-07T10:00:00Z"));
    let r = s
        .replica(Some(clock.clone()), |c| {
            c.protection_sweep_ms = 100;
            c.protection_refresh_ms = 500;
        })
        .await;
    s.store("nas", 4).await;
    s.backup("web", "nas", OverlapPolicy::Allow, |t| {
        t.options = Some(Options::Backup(BackupOptions { rpo: minutes(60), ..Default::default() }));
    })
    .await;
    s.backup("plain", "nas", OverlapPolicy::Allow, |_| {}).await;
    s.source("zz-unused", &[]).await;
    // The source's own objective wins over the task's.
    let mut catalog = s.catalog.clone();
    let web = catalog
        .get_connector(cairn_api::v1::GetConnectorRequest { name: full("connectors", "web-src") })
        .await
        .unwrap()
        .into_inner();
    catalog
        .update_connector(UpdateConnectorRequest {
            connector: Some(Connector { name: web.name.clone(), rpo: minutes(10), ..Default::default() }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["rpo".into()] }),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut w = Worker::new(&r, "w", &[]).await;
    for task in ["web", "plain"] {
        run(&r, task).await;
        let l = w.acquire(1, Duration::from_secs(5)).await.remove(0);
        w.succeed(&l).await;
    }
    clock.advance(Duration::from_secs(11 * 60));
    let got = all(&r).await;
    let states: Vec<(&str, ProtectionState)> =
        got.iter().map(|x| (x.source_display_name.as_str(), x.state())).collect();
    // Worst first: web-src is past its own 10 minutes (not the task's hour).
    assert_eq!(
        states,
        [
            ("web-src", ProtectionState::Violated),
            ("zz-unused", ProtectionState::NeverBackedUp),
            ("plain-src", ProtectionState::NoObjective),
        ]
    );
    assert_eq!(got[0].rpo, minutes(10));
    assert_eq!(got[0].age.as_ref().map(|d| d.seconds), Some(11 * 60));

    // Filters: states, task by display name, source by id.
    let only = |states: Vec<ProtectionState>| ListProtectionStatusRequest {
        states: states.into_iter().map(|s| s as i32).collect(),
        ..Default::default()
    };
    let v =
        status(&r, only(vec![ProtectionState::NeverBackedUp, ProtectionState::NoObjective])).await.unwrap();
    assert_eq!(v.total_size, 2);
    let by_task =
        status(&r, ListProtectionStatusRequest { task: "plain".into(), ..Default::default() }).await.unwrap();
    assert_eq!(
        by_task.statuses.iter().map(|x| x.source_display_name.as_str()).collect::<Vec<_>>(),
        ["plain-src"]
    );
    let id = web.name.rsplit('/').next().unwrap().to_owned();
    let by_id = status(&r, ListProtectionStatusRequest { source: id, ..Default::default() }).await.unwrap();
    assert_eq!(by_id.statuses.len(), 1);

    // Paging: one at a time, in the same order, with the total.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page =
            status(&r, ListProtectionStatusRequest { page_size: 1, page_token: token, ..Default::default() })
                .await
                .unwrap();
        assert_eq!(page.total_size, 3);
        seen.extend(page.statuses.into_iter().map(|x| x.source_display_name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, ["web-src", "zz-unused", "plain-src"]);

    // An objective changed in the catalog reaches the stored pair (what the sweep judges by)
    // without another job.
    catalog
        .update_connector(UpdateConnectorRequest {
            connector: Some(Connector { name: web.name.clone(), rpo: minutes(5), ..Default::default() }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["rpo".into()] }),
            ..Default::default()
        })
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let rpo: Option<i64> = sqlx::query_scalar(
            "SELECT rpo_ms FROM scheduler.protection WHERE source_display_name = 'web-src'",
        )
        .fetch_one(&s.pool)
        .await
        .unwrap();
        if rpo == Some(300_000) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the pair still has rpo_ms {rpo:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Bad input names its field.
    for (req, field) in [
        (ListProtectionStatusRequest { source: "nope".into(), ..Default::default() }, "source"),
        (ListProtectionStatusRequest { task: "nope".into(), ..Default::default() }, "task"),
        (ListProtectionStatusRequest { states: vec![0], ..Default::default() }, "states[0]"),
        (ListProtectionStatusRequest { states: vec![42], ..Default::default() }, "states[0]"),
        (ListProtectionStatusRequest { page_token: "garbage".into(), ..Default::default() }, "page_token"),
    ] {
        let e = status(&r, req).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
        assert!(e.message().starts_with(field), "{field}: {}", e.message());
    }
    let e = r
        .jobs()
        .await
        .list_protection_status(ListProtectionStatusRequest {
            parent: "projects/".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpos_are_checked_where_they_are_set() {
    let s = stack().await;
    s.store("nas", 4).await;
    s.source("src", &[]).await;
    let mut catalog = s.catalog.clone();
    // Only sources carry one.
    let e = catalog
        .create_connector(CreateConnectorRequest {
            parent: DEFAULT.into(),
            connector: Some(Connector {
                display_name: "vault".into(),
                config: Some(Cfg::LocalStore(LocalStore { path: "/srv/vault".into() })),
                repository_password: "pw".into(),
                rpo: minutes(60),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("connector.rpo: applies to SOURCE connectors only"), "{}", e.message());
    // At least a minute, at most 3660 days.
    for seconds in [10, 3661 * 86_400] {
        let e = catalog
            .create_task(CreateTaskRequest {
                parent: DEFAULT.into(),
                task: Some(Task {
                    display_name: "t".into(),
                    r#type: TaskType::Backup as i32,
                    source: "src".into(),
                    store: "nas".into(),
                    options: Some(Options::Backup(BackupOptions {
                        rpo: Some(prost_types::Duration { seconds, nanos: 0 }),
                        ..Default::default()
                    })),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert!(
            e.message().starts_with("task.backup.rpo: must be between 1 minute and 3660 days"),
            "{}",
            e.message()
        );
    }
    let n = count(&s.pool, "SELECT count(*) FROM catalog.tasks").await;
    assert_eq!(n, 0, "nothing was created");
}
