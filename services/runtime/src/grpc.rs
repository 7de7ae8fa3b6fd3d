//! gRPC plumbing shared by every server and client: the server (health, reflection, one span
//! per request continuing the caller's W3C trace, graceful drain) and client channels (which
//! carry the current trace context and the cluster token).

use std::{net::SocketAddr, sync::Arc, time::Duration};

use http::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{
    Request, Status,
    metadata::{MetadataKey, MetadataMap, MetadataValue},
    service::Routes,
    transport::{Channel, Endpoint},
};
use tonic_health::server::HealthReporter;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Binds a listener; `127.0.0.1:0` picks a free port (tests).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// The reflection services (v1 and v1alpha) describing the whole `cairn.v1` package and health.
pub fn reflection_routes(routes: Routes) -> Routes {
    let v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(cairn_api::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("compiled descriptor sets are valid");
    let v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(cairn_api::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .expect("compiled descriptor sets are valid");
    routes.add_service(v1).add_service(v1alpha)
}

/// A health reporter and its service; the overall status starts NOT_SERVING until the
/// service says it is ready.
pub async fn health() -> (HealthReporter, Routes) {
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter.set_service_status("", tonic_health::ServingStatus::NotServing).await;
    (reporter, Routes::new(service))
}

/// How a server is run.
#[derive(Debug, Clone)]
pub struct ServeOptions<'a> {
    /// The gRPC services, for health.
    pub service_names: &'a [&'a str],
    /// Time between NOT_SERVING and closing.
    pub drain_delay: Duration,
    /// Metric names prefix (`cairn_catalog`).
    pub metrics_prefix: &'static str,
    /// Authentication, authorisation and audit of every call.
    pub guard: crate::auth::GuardLayer,
    /// TLS (only TLS is served when set).
    pub tls: Option<Arc<crate::tls::Reloading>>,
    /// Serve gRPC server reflection (open to anyone, like health).
    pub reflection: bool,
}

/// Serves `routes` (plus reflection) on `listener` until `shutdown` is cancelled, then marks
/// every service NOT_SERVING, waits `drain_delay` for load balancers to notice, and drains
/// in-flight requests.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    health: HealthReporter,
    opts: ServeOptions<'_>,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let ServeOptions { service_names, drain_delay, metrics_prefix, guard, tls, reflection } = opts;
    let routes = if reflection { reflection_routes(routes) } else { routes };
    let names: Vec<String> = service_names.iter().map(|s| (*s).to_owned()).collect();
    // New connections are taken until the drain delay is over, TLS or not.
    let accepting = CancellationToken::new();
    let stopped = accepting.clone();
    let stop = async move {
        shutdown.cancelled().await;
        for n in names.iter().map(String::as_str).chain([""]) {
            health.set_service_status(n, tonic_health::ServingStatus::NotServing).await;
        }
        tokio::time::sleep(drain_delay).await;
        stopped.cancel();
    };
    let server = tonic::transport::Server::builder()
        .trace_fn(request_span)
        // gRPC-web (HTTP/1.1 or 2) for clients that cannot speak gRPC's HTTP/2 trailers, e.g.
        // connect-es in Node or a browser (examples/typescript): outermost, so metrics, the
        // guard and the services see plain gRPC and the guard's refusals are translated too.
        .accept_http1(true)
        .layer(tonic_web::GrpcWebLayer::new())
        .layer(crate::metrics::GrpcMetricsLayer::new(metrics_prefix))
        .layer(guard)
        .add_routes(routes);
    match tls {
        Some(tls) => {
            server.serve_with_incoming_shutdown(crate::tls::incoming(listener, tls, accepting), stop).await
        }
        // Small responses must not wait for delayed ACKs (Nagle): set TCP_NODELAY on every
        // accepted socket (the TLS acceptor does the same).
        None => {
            server
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                    stop,
                )
                .await
        }
    }
}

/// Marks services SERVING (overall status included).
pub async fn set_serving(health: &HealthReporter, service_names: &[&str]) {
    for n in service_names.iter().copied().chain([""]) {
        health.set_service_status(n, tonic_health::ServingStatus::Serving).await;
    }
}

/// Marks services NOT_SERVING (overall status included).
pub async fn set_not_serving(health: &HealthReporter, service_names: &[&str]) {
    for n in service_names.iter().copied().chain([""]) {
        health.set_service_status(n, tonic_health::ServingStatus::NotServing).await;
    }
}

/// Reports the services NOT_SERVING while the database does not answer, and SERVING again
/// once it does: a load balancer or orchestrator stops sending work to a replica that cannot
/// do it, and takes it back within a few seconds of the database's return.
pub async fn watch_database(
    pool: sqlx::PgPool,
    health: HealthReporter,
    service_names: &'static [&'static str],
    shutdown: CancellationToken,
) {
    const EVERY: Duration = Duration::from_secs(2);
    let mut serving = true;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
        let ping = sqlx::query("SELECT 1").execute(&pool);
        let ok = matches!(tokio::time::timeout(Duration::from_secs(5), ping).await, Ok(Ok(_)));
        if ok != serving {
            serving = ok;
            if ok {
                tracing::info!("database reachable again; serving");
                set_serving(&health, service_names).await;
            } else {
                tracing::warn!("database unreachable; reporting NOT_SERVING");
                set_not_serving(&health, service_names).await;
            }
        }
    }
}

fn request_span(req: &http::Request<()>) -> tracing::Span {
    let path = req.uri().path();
    let (service, method) = path.trim_start_matches('/').split_once('/').unwrap_or((path, ""));
    let span = tracing::info_span!(
        "grpc.request",
        otel.name = %path,
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = %service,
        rpc.method = %method,
    );
    let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtract(req.headers())));
    let _ = span.set_parent(parent);
    span
}

struct HeaderExtract<'a>(&'a HeaderMap);

impl Extractor for HeaderExtract<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct MetadataInject<'a>(&'a mut MetadataMap);

impl Injector for MetadataInject<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (MetadataKey::from_bytes(key.as_bytes()), MetadataValue::try_from(value)) {
            self.0.insert(k, v);
        }
    }
}

/// Writes the current span's trace context into outgoing metadata (W3C `traceparent`).
pub fn inject_trace_context(metadata: &mut MetadataMap) {
    let cx = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut MetadataInject(metadata)));
}

/// Reads a W3C trace context from incoming metadata.
pub fn extract_trace_context(metadata: &MetadataMap) -> opentelemetry::Context {
    let headers = metadata.clone().into_headers();
    opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtract(&headers)))
}

/// The current span's `traceparent` value, if it is part of a sampled trace.
pub fn current_traceparent() -> String {
    let mut md = MetadataMap::new();
    inject_trace_context(&mut md);
    md.get("traceparent").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

/// An OpenTelemetry context from a stored `traceparent` value.
pub fn context_from_traceparent(traceparent: &str) -> opentelemetry::Context {
    let mut headers = HeaderMap::new();
    if let Ok(v) = http::HeaderValue::from_str(traceparent) {
        headers.insert("traceparent", v);
    }
    opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtract(&headers)))
}

/// Interceptor for outgoing calls: trace context, plus the cluster token when configured.
#[derive(Clone, Debug, Default)]
pub struct ClientInterceptor {
    token: Option<MetadataValue<tonic::metadata::Ascii>>,
}

impl ClientInterceptor {
    /// With an optional cluster token (sent as `authorization: Bearer <token>`).
    pub fn new(token: Option<&str>) -> Self {
        let token =
            token.filter(|t| !t.is_empty()).and_then(|t| MetadataValue::try_from(format!("Bearer {t}")).ok());
        ClientInterceptor { token }
    }
}

impl tonic::service::Interceptor for ClientInterceptor {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        inject_trace_context(req.metadata_mut());
        if let Some(t) = &self.token {
            req.metadata_mut().insert("authorization", t.clone());
        }
        Ok(req)
    }
}

/// Compares secrets without an early exit.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks that `url` can address a gRPC server (`http://host:port`), without connecting.
pub fn check_url(url: &str) -> Result<(), String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("{url:?} is not a valid URL: {e}"))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(h)) if !h.is_empty() => Ok(()),
        _ => Err(format!("{url:?} must look like http://host:port or https://host:port")),
    }
}

/// A lazily connecting channel to `url` (`http://host:port`, or `https://` with the system's
/// roots). Connection errors surface on the first call as UNAVAILABLE, so services start in
/// any order.
pub fn channel(url: &str) -> Result<Channel, String> {
    channel_with(url, &crate::tls::ClientTls::default())
}

/// [`channel`] with TLS settings: an `https://` URL is verified with `tls.tls_ca_file` (or the
/// system's roots) and presents the client certificate, if any.
pub fn channel_with(url: &str, tls: &crate::tls::ClientTls) -> Result<Channel, String> {
    check_url(url)?;
    let mut endpoint =
        Endpoint::from_shared(url.to_owned()).map_err(|e| format!("{url:?} is not a valid URL: {e}"))?;
    if url.starts_with("https://") {
        let uri: http::Uri = url.parse().map_err(|e| format!("{url:?} is not a valid URL: {e}"))?;
        let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_owned();
        endpoint = endpoint.tls_config(tls.tonic(&host)?).map_err(|e| format!("TLS for {url}: {e}"))?;
    }
    let endpoint = endpoint
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true);
    Ok(endpoint.connect_lazy())
}
