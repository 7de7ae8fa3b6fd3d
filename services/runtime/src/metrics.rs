//! Prometheus metrics: one exporter per process serving `/metrics` over HTTP. Metric names
//! follow `cairn_<service>_<thing>_<unit>`; recording goes through the `metrics` facade so
//! code that records does not care whether an exporter is installed.

use std::net::SocketAddr;

use metrics_exporter_prometheus::PrometheusBuilder;

/// Buckets (seconds) for durations from milliseconds to hours.
pub const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0,
];

/// Serves Prometheus metrics on `addr`. Only the first call in a process installs the
/// recorder; later calls (a one-process stack, tests) return an error the caller may ignore.
pub fn install(addr: SocketAddr) -> Result<(), String> {
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets(DURATION_BUCKETS)
        .map_err(|e| e.to_string())?
        .install()
        .map_err(|e| e.to_string())
}

/// A tower layer recording every gRPC call: `<prefix>_grpc_requests_total{method, code}` and
/// `<prefix>_grpc_request_duration_seconds{method}` (streams: time to the response headers).
#[derive(Debug, Clone)]
pub struct GrpcMetricsLayer {
    prefix: &'static str,
}

impl GrpcMetricsLayer {
    /// Metrics named `<prefix>_grpc_*`.
    pub fn new(prefix: &'static str) -> Self {
        GrpcMetricsLayer { prefix }
    }
}

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;
    fn layer(&self, inner: S) -> GrpcMetrics<S> {
        GrpcMetrics { inner, prefix: self.prefix }
    }
}

/// The service of [`GrpcMetricsLayer`].
#[derive(Debug, Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
    prefix: &'static str,
}

impl<S, B, R> tower::Service<http::Request<B>> for GrpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = req.uri().path().rsplit('/').next().unwrap_or_default().to_owned();
        let prefix = self.prefix;
        let started = std::time::Instant::now();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await;
            let code = match &res {
                Ok(r) => r
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|c| c.parse::<i32>().ok())
                    .map(|c| format!("{:?}", tonic::Code::from(c)))
                    .unwrap_or_else(|| "Ok".into()),
                Err(_) => "Transport".into(),
            };
            metrics::counter!(format!("{prefix}_grpc_requests_total"), "method" => method.clone(), "code" => code).increment(1);
            metrics::histogram!(format!("{prefix}_grpc_request_duration_seconds"), "method" => method)
                .record(started.elapsed().as_secs_f64());
            res
        })
    }
}

/// Publishes a pool's size and idle connections as `<prefix>_db_pool_connections{state}` until
/// `shutdown`.
pub async fn watch_pool(
    pool: sqlx::PgPool,
    prefix: &'static str,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let max = pool.options().get_max_connections();
    loop {
        let size = pool.size();
        let idle = pool.num_idle() as u32;
        metrics::gauge!(format!("{prefix}_db_pool_connections"), "state" => "idle").set(f64::from(idle));
        metrics::gauge!(format!("{prefix}_db_pool_connections"), "state" => "used")
            .set(f64::from(size.saturating_sub(idle)));
        metrics::gauge!(format!("{prefix}_db_pool_connections"), "state" => "max").set(f64::from(max));
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
        }
    }
}
