//! Test helpers shared by every test binary: fresh Postgres databases, a gRPC client that
//! knows nothing but server reflection and speaks proto3 JSON (what other systems and
//! `grpcurl` do), captured logs to prove secrets never appear, and polling with a deadline
//! instead of sleeps. No helper here fakes a Cairn component.

pub mod dynamic;
pub mod http;
pub mod logs;
pub mod proxy;
pub mod servers;

use std::{future::Future, time::Duration};

pub use cairn_localpg::{Cluster, TestDatabase, fresh_database};

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

/// The server's overall health status now: Some(true) SERVING, Some(false) anything else
/// (NOT_SERVING, ...), None when it does not answer.
pub async fn serving(url: &str) -> Option<bool> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_owned())
        .ok()?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(2))
        .connect()
        .await
        .ok()?;
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
    let r = client.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.ok()?;
    Some(r.into_inner().status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32)
}

/// A free TCP port on 127.0.0.1 for a process the test starts, which binds it later. Chosen
/// below the kernel's ephemeral range (32768+ on Linux): a port the kernel hands out as the
/// local end of some client connection in the meantime would make that bind fail with
/// "Address already in use".
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    // Spread concurrent test binaries over the range; each process walks it from its own start.
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let span = 12_000u16;
    let start = (std::process::id() % u32::from(span)) as u16;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 20_000 + (start.wrapping_add(n) % span);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

/// GETs `url` (plain HTTP/1.1) and returns (status, body); for scraping metrics.
pub async fn http_get(url: &str) -> Option<(u16, String)> {
    http_request("GET", url).await
}

/// Sends a body-less request (plain HTTP/1.1); (status, body).
pub async fn http_request(method: &str, url: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let mut sock = tokio::net::TcpStream::connect(host).await.ok()?;
    let req =
        format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    sock.write_all(req.as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    sock.read_to_end(&mut buf).await.ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Some((status, body))
}

/// A child process killed on drop.
pub struct Process(pub std::process::Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
