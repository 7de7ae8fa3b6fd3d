//! Logging and tracing: `tracing` with an `RUST_LOG` filter, human or JSON lines, and an OTLP
//! span exporter when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. W3C trace context is the
//! propagation format everywhere. Never log secrets: services log names and ids only.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use serde::{Deserialize, Serialize};
use tracing_subscriber::{EnvFilter, Layer as _, layer::SubscriberExt as _, util::SubscriberInitExt as _};

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Keeps the exporter alive; flushes spans on drop.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take()
            && let Err(e) = p.shutdown()
        {
            eprintln!("telemetry: flushing spans failed: {e}");
        }
    }
}

/// Installs the W3C trace-context propagator (idempotent).
pub fn install_propagator() {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
}

/// Initialises logging and tracing for `service`. `otlp_endpoint` (from
/// `OTEL_EXPORTER_OTLP_ENDPOINT`) turns span export on. Safe to call twice (the second call
/// only logs a warning), which one-process stacks and tests rely on.
pub fn init(service: &'static str, format: LogFormat, otlp_endpoint: Option<&str>) -> Telemetry {
    install_propagator();
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer().with_target(false).with_filter(filter()).boxed(),
        LogFormat::Json => {
            tracing_subscriber::fmt::layer().json().flatten_event(true).with_filter(filter()).boxed()
        }
    };
    let mut telemetry = Telemetry::default();
    let otel = match otlp_endpoint.filter(|e| !e.is_empty()) {
        Some(endpoint) => match otlp_provider(service, endpoint) {
            Ok(provider) => {
                let tracer = provider.tracer(service);
                telemetry.provider = Some(provider);
                Some(tracing_opentelemetry::layer().with_tracer(tracer).with_filter(filter()))
            }
            Err(e) => {
                eprintln!("telemetry: OTLP exporter for {endpoint} not started: {e}");
                None
            }
        },
        None => None,
    };
    if tracing_subscriber::registry().with(fmt).with(otel).try_init().is_err() {
        tracing::debug!("tracing already initialised");
    }
    telemetry
}

fn otlp_provider(service: &'static str, endpoint: &str) -> Result<SdkTracerProvider, String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| e.to_string())?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(service).build())
        .build())
}
