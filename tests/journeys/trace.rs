//! One trace from the firing of a schedule (or RunTask) through the lease, the worker's run
//! and the engine's phases to completion, checked with an in-process span exporter shared by
//! the scheduler and the worker of this process.

use std::sync::OnceLock;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_subscriber::{Layer as _, layer::SubscriberExt as _};

struct Capture {
    exporter: InMemorySpanExporter,
    provider: SdkTracerProvider,
}

static CAPTURE: OnceLock<Capture> = OnceLock::new();

/// Installs the exporter and the log capture (once per test binary) before any service
/// starts.
pub fn install() {
    CAPTURE.get_or_init(|| {
        cairn_runtime::telemetry::install_propagator();
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("journeys"));
        // Spans from INFO up go to the exporter; every log line of every level is captured
        // for the journeys that check no secret is ever logged.
        let subscriber = tracing_subscriber::registry()
            .with(layer.with_filter(tracing_subscriber::filter::LevelFilter::INFO))
            .with(cairn_testkit::logs::layer());
        let _ = tracing::subscriber::set_global_default(subscriber);
        Capture { exporter, provider }
    });
}

/// Every finished span so far.
pub fn spans() -> Vec<SpanData> {
    let c = CAPTURE.get().expect("install() first");
    let _ = c.provider.force_flush();
    c.exporter.get_finished_spans().unwrap_or_default()
}

fn attr(s: &SpanData, key: &str) -> Option<String> {
    s.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.to_string())
}

/// The spans of the job's trace, by name, found from the worker's `job.run` span.
pub fn trace_of_job(job: &str) -> Vec<SpanData> {
    let all = spans();
    let Some(run) = all.iter().find(|s| s.name == "job.run" && attr(s, "job.id").as_deref() == Some(job))
    else {
        return vec![];
    };
    let trace = run.span_context.trace_id();
    all.into_iter().filter(|s| s.span_context.trace_id() == trace).collect()
}
