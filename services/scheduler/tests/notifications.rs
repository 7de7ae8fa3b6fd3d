//! Notifications through the outbox: real HTTP receiver, real SMTP server (aiosmtpd), real
//! scheduler restarts.

mod common;

use std::time::Duration;

use cairn_api::v1::{Notification, NotificationMode, OverlapPolicy, WebhookChannel};
use cairn_testkit::{http::Receiver, servers::Server};
use common::*;

const SECRET: &str = "hook-secret-0451";

fn hmac_hex(body: &[u8]) -> String {
    cairn_scheduler::notifications::signature(SECRET, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_notifies_each_channel_exactly_once() {
    let s = stack().await;
    let hook = Receiver::start().await;
    let smtp = Server::smtp().await;
    if smtp.is_none() {
        eprintln!("SKIP email part: aiosmtpd is not installed (.ci/run installs it)");
    }
    let smtp_url = smtp.as_ref().map(|m| format!("smtp://127.0.0.1:{}", m.port));
    let tweak = |c: &mut cairn_scheduler::Config| {
        c.smtp_url = smtp_url.clone();
        c.smtp_from = "cairn@example.com".into();
    };
    let r = s.replica(None, tweak).await;
    s.store("nas", 4).await;
    let emails = if smtp.is_some() { vec!["ops@example.com".to_owned()] } else { vec![] };
    s.backup("nightly", "nas", OverlapPolicy::Allow, |t| {
        t.notification = Some(Notification {
            mode: NotificationMode::Errors as i32,
            webhooks: vec![WebhookChannel {
                url: format!("{}/hook", hook.url),
                secret: SECRET.into(),
                secret_set: false,
            }],
            emails: emails.clone(),
        });
    })
    .await;
    let mut w = Worker::new(&r, "w", &[]).await;
    let job = run(&r, "nightly").await;
    let l = w.acquire(1, Duration::from_secs(5)).await.remove(0);
    w.fail(&l, "disk on fire").await;
    wait_for("the webhook", || !hook.received().is_empty()).await;
    if let Some(m) = &smtp {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while m.mails().is_empty() {
            let errors: Vec<(String, String, i32)> =
                sqlx::query_as("SELECT channel, last_error, attempts FROM scheduler.notifications")
                    .fetch_all(&s.pool)
                    .await
                    .unwrap();
            assert!(tokio::time::Instant::now() < deadline, "no email; outbox: {errors:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // A success with mode ERRORS notifies nobody.
    run(&r, "nightly").await;
    let l = w.acquire(1, Duration::from_secs(5)).await.remove(0);
    w.succeed(&l).await;
    // Restart the scheduler: nothing is delivered twice.
    r.stop().await;
    let r2 = s.replica(None, tweak).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got = hook.received();
    assert_eq!(got.len(), 1, "exactly one webhook");
    let req = &got[0];
    assert_eq!((req.method.as_str(), req.path.as_str()), ("POST", "/hook"));
    assert_eq!(req.headers.get("x-cairn-signature"), Some(&hmac_hex(&req.body)), "signature");
    let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(body["state"], "FAILED");
    assert_eq!(body["error"], "disk on fire");
    assert_eq!(body["task"]["display_name"], "nightly");
    assert_eq!(body["job"]["name"], job.name);
    assert!(body["links"]["job"].as_str().unwrap().contains(job.name.rsplit('/').next().unwrap()));
    assert!(req.headers.get("x-cairn-delivery").is_some_and(|d| d.contains("webhook:")));
    if let Some(m) = &smtp {
        let mails = m.mails();
        assert_eq!(mails.len(), 1, "exactly one email");
        assert!(mails[0].contains("Subject: [Cairn] nightly FAILED"), "{}", mails[0]);
        assert!(mails[0].contains("disk on fire"));
        assert!(mails[0].contains("To: ops@example.com"));
    }
    let delivered =
        count(&s.pool, "SELECT count(*) FROM scheduler.notifications WHERE state = 'DELIVERED'").await;
    assert_eq!(delivered, 1 + i64::from(smtp.is_some()));
    r2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_retried_until_they_succeed() {
    let s = stack().await;
    let hook = Receiver::start().await;
    hook.respond_with(&[500, 503]);
    let r = s.replica(None, |_| {}).await;
    s.store("nas", 4).await;
    s.backup("always", "nas", OverlapPolicy::Allow, |t| {
        t.notification = Some(Notification {
            mode: NotificationMode::Always as i32,
            webhooks: vec![WebhookChannel {
                url: hook.url.clone(),
                secret: SECRET.into(),
                secret_set: false,
            }],
            emails: vec![],
        });
    })
    .await;
    let mut w = Worker::new(&r, "w", &[]).await;
    run(&r, "always").await;
    let l = w.acquire(1, Duration::from_secs(5)).await.remove(0);
    w.succeed(&l).await;
    wait_for("three attempts", || hook.received().len() >= 3).await;
    let (state, attempts): (String, i32) =
        sqlx::query_as("SELECT state, attempts FROM scheduler.notifications WHERE channel LIKE 'webhook:%'")
            .fetch_one(&s.pool)
            .await
            .unwrap();
    assert_eq!((state.as_str(), attempts), ("DELIVERED", 3));
    let got = hook.received();
    assert_eq!(got.len(), 3);
    let ids: Vec<_> = got.iter().map(|r| r.headers.get("x-cairn-delivery").cloned()).collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "one delivery id across retries");
    let body: serde_json::Value = serde_json::from_slice(&got[2].body).unwrap();
    assert_eq!(body["state"], "SUCCEEDED");
    r.stop().await;
}
