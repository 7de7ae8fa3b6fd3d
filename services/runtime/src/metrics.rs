//! Prometheus metrics: one exporter per process serving `/metrics` over HTTP. Metric names
//! follow `cairn_<service>_<thing>_<unit>`; recording goes through the `metrics` facade so
//! code that records does not care whether an exporter is installed.

use std::{
    net::SocketAddr,
    task::{Context, Poll},
};

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
/// `<prefix>_grpc_request_duration_seconds{method}`, both when the call ends. The code is the
/// call's final `grpc-status`, in its canonical name (`INVALID_ARGUMENT`): from the response
/// headers of a trailers-only answer, else from the trailers, so a stream that fails after
/// its headers counts as failed; a response dropped before its trailers (the client went
/// away) counts as `CANCELLED`.
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
    type Response = http::Response<MeteredBody<R>>;
    type Error = S::Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let call = Call {
            prefix: self.prefix,
            method: req.uri().path().rsplit('/').next().unwrap_or_default().to_owned(),
            started: std::time::Instant::now(),
            code: None,
        };
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = match fut.await {
                Ok(res) => res,
                Err(e) => {
                    call.end(tonic::Code::Unknown);
                    return Err(e);
                }
            };
            // A trailers-only answer (every error of a unary call) ends here.
            let call = match res.headers().contains_key("grpc-status") {
                true => {
                    call.end(crate::auth::layer::code_of(res.headers()));
                    None
                }
                false => Some(call),
            };
            Ok(res.map(|inner| MeteredBody { inner, call }))
        })
    }
}

/// One call being measured; recorded when dropped, with the code it ended with.
struct Call {
    prefix: &'static str,
    method: String,
    started: std::time::Instant,
    /// None: it ended without a status (the response was dropped before its trailers).
    code: Option<tonic::Code>,
}

impl Call {
    /// Records the call as ended with `code`.
    fn end(mut self, code: tonic::Code) {
        self.code = Some(code);
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        let (prefix, method) = (self.prefix, std::mem::take(&mut self.method));
        let code = crate::auth::layer::code_name(self.code.unwrap_or(tonic::Code::Cancelled));
        metrics::counter!(format!("{prefix}_grpc_requests_total"), "method" => method.clone(), "code" => code)
            .increment(1);
        metrics::histogram!(format!("{prefix}_grpc_request_duration_seconds"), "method" => method)
            .record(self.started.elapsed().as_secs_f64());
    }
}

pin_project_lite::pin_project! {
    /// A response body that records its call when the trailers pass (or when it is dropped).
    pub struct MeteredBody<B> {
        #[pin]
        inner: B,
        call: Option<Call>,
    }
}

impl<B: http_body::Body> http_body::Body for MeteredBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = std::task::ready!(this.inner.poll_frame(cx));
        if let Some(call) = this.call.take() {
            match &frame {
                Some(Ok(f)) => match f.trailers_ref() {
                    Some(trailers) => call.end(crate::auth::layer::code_of(trailers)),
                    None => *this.call = Some(call),
                },
                Some(Err(_)) => call.end(tonic::Code::Unknown),
                // The body ended without trailers: not a gRPC answer we can read a status from.
                None => call.end(tonic::Code::Unknown),
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
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

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http_body::Frame;
    use http_body_util::{BodyExt as _, StreamBody};
    use tower::{Layer as _, ServiceExt as _};

    use super::*;

    type Frames = Vec<Result<Frame<&'static [u8]>, Infallible>>;

    fn status(code: u8) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert("grpc-status", code.to_string().parse().unwrap());
        h
    }

    /// Calls `/cairn.v1.S/<method>` answered with `headers` and `frames`, reading the body to
    /// its end or, when `read` is false, dropping it unread.
    async fn answer(method: &str, headers: http::HeaderMap, frames: Frames, read: bool) {
        let mut answer = Some((headers, frames));
        let svc = tower::service_fn(move |_: http::Request<()>| {
            let (headers, frames) = answer.take().expect("called once");
            async move {
                let mut res = http::Response::new(StreamBody::new(futures::stream::iter(frames)));
                *res.headers_mut() = headers;
                Ok::<_, Infallible>(res)
            }
        });
        let req = http::Request::builder().uri(format!("/cairn.v1.S/{method}")).body(()).unwrap();
        let res = GrpcMetricsLayer::new("t").layer(svc).oneshot(req).await.unwrap();
        if read {
            res.into_body().collect().await.unwrap();
        }
    }

    #[test]
    fn calls_are_counted_by_the_status_they_end_with() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
                let data = || Ok(Frame::data(&b"message"[..]));
                // A stream that sends messages and then fails, after its headers.
                answer(
                    "Watch",
                    Default::default(),
                    vec![data(), data(), Ok(Frame::trailers(status(13)))],
                    true,
                )
                .await;
                // A unary call that succeeds.
                answer("Get", Default::default(), vec![data(), Ok(Frame::trailers(status(0)))], true).await;
                // A trailers-only error.
                answer("Get", status(5), vec![], true).await;
                // A stream the client walked away from.
                answer("Follow", Default::default(), vec![data()], false).await;
            })
        });
        let text = handle.render();
        for line in [
            r#"t_grpc_requests_total{method="Watch",code="INTERNAL"} 1"#,
            r#"t_grpc_requests_total{method="Get",code="OK"} 1"#,
            r#"t_grpc_requests_total{method="Get",code="NOT_FOUND"} 1"#,
            r#"t_grpc_requests_total{method="Follow",code="CANCELLED"} 1"#,
            r#"t_grpc_request_duration_seconds_count{method="Get"} 2"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from:\n{text}");
        }
    }
}
