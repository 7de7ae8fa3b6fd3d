//! Test helpers shared by every test binary: fresh Postgres databases, a gRPC client that
//! knows nothing but server reflection and speaks proto3 JSON (what other systems and
//! `grpcurl` do), captured logs to prove secrets never appear, and polling with a deadline
//! instead of sleeps. No helper here fakes a Cairn component.

pub mod dynamic;
pub mod http;
pub mod logs;
pub mod servers;

use std::{future::Future, time::Duration};

pub use cairn_localpg::{TestDatabase, fresh_database};

/// A fresh database for one test (panics with the reason when none can be made).
pub async fn database() -> TestDatabase {
    fresh_database().await.unwrap_or_else(|e| panic!("test database: {e}"))
}

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits until the gRPC health service at `url` reports SERVING for `service` ("" = overall).
pub async fn wait_serving(url: &str, service: &str) {
    let url = url.to_owned();
    let service = service.to_owned();
    eventually(Duration::from_secs(30), "a SERVING health status", || {
        let (url, service) = (url.clone(), service.clone());
        async move {
            let channel = tonic::transport::Endpoint::from_shared(url).ok()?.connect().await.ok()?;
            let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
            let r = client.check(tonic_health::pb::HealthCheckRequest { service }).await.ok()?;
            (r.into_inner().status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32)
                .then_some(())
        }
    })
    .await
}
