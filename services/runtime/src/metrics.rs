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
