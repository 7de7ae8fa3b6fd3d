//! The scheduler binary's Prometheus endpoint after real jobs ran through it.

mod common;

use std::time::Duration;

use cairn_api::v1::{Notification, NotificationMode, OverlapPolicy, Schedule, WebhookChannel};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listed_metric_is_on_the_endpoint() {
    let s = stack().await;
    let (grpc, metrics) = (cairn_testkit::free_port(), cairn_testkit::free_port());
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_cairn-scheduler"))
        .env("DATABASE_URL", s.db.url())
        .env("CAIRN_CATALOG_URL", &s.catalog_url)
        .env("CAIRN_AUTH_DISABLED", "true")
        .env("CAIRN_LISTEN", format!("127.0.0.1:{grpc}"))
        .env("CAIRN_METRICS_LISTEN", format!("127.0.0.1:{metrics}"))
        .env("CAIRN_LEASE_TTL_SECS", "1")
        .env("CAIRN_PROTECTION_REFRESH_MS", "500")
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let _p = cairn_testkit::Process(child);
    let url = format!("http://127.0.0.1:{grpc}");
    cairn_testkit::wait_serving(&url, "cairn.v1.LeaseService").await;
    let r = Replica { url, shutdown: Default::default(), handle: tokio::spawn(async { Ok(()) }) };
    s.store("nas", 4).await;
    s.backup("b", "nas", OverlapPolicy::Allow, |t| {
        t.notification = Some(Notification {
            mode: NotificationMode::Always as i32,
            // Nobody listens here: the delivery fails and is counted.
            webhooks: vec![WebhookChannel {
                url: "http://127.0.0.1:9/hook".into(),
                secret: "k".into(),
                secret_set: false,
            }],
            emails: vec![],
        });
        t.initial_backoff = Some(prost_types::Duration { seconds: 1, nanos: 0 });
    })
    .await;
    schedule(
        &r,
        Schedule {
            display_name: "often".into(),
            task: "b".into(),
            recurrence: calendar("*:*:*"),
            ..Default::default()
        },
    )
    .await;
    let mut w = Worker::new(&r, "w", &[]).await;
    // One lease expires (no heartbeat within 1s), the next succeeds.
    let first = w.acquire(1, Duration::from_secs(10)).await;
    assert_eq!(first.len(), 1);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut done = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while done < 2 {
        for l in w.acquire(5, Duration::from_secs(1)).await {
            w.succeed(&l).await;
            done += 1;
        }
        assert!(tokio::time::Instant::now() < deadline);
    }
    r.schedules()
        .await
        .pause_schedule(cairn_api::v1::PauseScheduleRequest {
            name: "projects/default/schedules/often".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let body = cairn_testkit::eventually(Duration::from_secs(30), "every metric", || async {
        let (_, body) = cairn_testkit::http_get(&format!("http://127.0.0.1:{metrics}/metrics")).await?;
        let all = [
            "cairn_scheduler_jobs_created_total",
            "cairn_scheduler_jobs_finished_total",
            "cairn_scheduler_job_duration_seconds",
            "cairn_scheduler_firing_lateness_seconds",
            "cairn_scheduler_missed_runs_total",
            "cairn_scheduler_queue_depth",
            "cairn_scheduler_active_leases",
            "cairn_scheduler_lease_expiries_total 1",
            "cairn_scheduler_leases_granted_total",
            "cairn_scheduler_notification_failures_total{channel=\"webhook\"} ",
            "cairn_scheduler_db_pool_connections",
            "cairn_scheduler_grpc_requests_total{method=\"AcquireLease\",code=\"OK\"}",
            "cairn_scheduler_rpo_violations_total 0",
            "cairn_scheduler_firing_failures_total 0",
        ];
        // Failures must be counted, not only registered.
        let failed = body
            .lines()
            .find(|l| l.starts_with("cairn_scheduler_notification_failures_total{channel=\"webhook\"}"))
            .is_some_and(|l| !l.ends_with(" 0"));
        // The source's last success, as a Unix time (not 0 = never).
        let protected = body.lines().any(|l| {
            l.starts_with("cairn_source_last_success_timestamp_seconds{")
                && l.contains("source=\"b-src\"")
                && !l.ends_with(" 0")
        });
        (failed && protected && all.iter().all(|n| body.contains(n))).then_some(body)
    })
    .await;
    assert!(body.contains("cairn_scheduler_firing_lateness_seconds_count"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_reports_not_serving_before_closing() {
    let s = stack().await;
    let grpc = cairn_testkit::free_port();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_cairn-scheduler"))
        .env("DATABASE_URL", s.db.url())
        .env("CAIRN_CATALOG_URL", &s.catalog_url)
        .env("CAIRN_AUTH_DISABLED", "true")
        .env("CAIRN_LISTEN", format!("127.0.0.1:{grpc}"))
        .env("CAIRN_METRICS_LISTEN", format!("127.0.0.1:{}", cairn_testkit::free_port()))
        .env("CAIRN_DRAIN_DELAY_MS", "1500")
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let mut p = cairn_testkit::Process(child);
    let url = format!("http://127.0.0.1:{grpc}");
    cairn_testkit::wait_serving(&url, "").await;
    let channel = tonic::transport::Endpoint::from_shared(url).unwrap().connect().await.unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    std::process::Command::new("kill").args(["-TERM", &p.0.id().to_string()]).status().unwrap();
    // During the drain delay the server still answers, with NOT_SERVING.
    let not_serving = cairn_testkit::eventually(Duration::from_secs(5), "NOT_SERVING", || {
        let mut h = health.clone();
        async move {
            let r = h.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.ok()?;
            (r.into_inner().status
                == tonic_health::pb::health_check_response::ServingStatus::NotServing as i32)
                .then_some(())
        }
    })
    .await;
    let () = not_serving;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = p.0.try_wait().unwrap() {
            break st;
        }
        assert!(std::time::Instant::now() < deadline, "the scheduler did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
    let _ = health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await;
}
