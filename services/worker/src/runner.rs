//! Runs one lease: the engine on a blocking thread, and beside it a pump that streams log
//! lines, heartbeats (with progress, at most once a second; at least every third of the TTL),
//! turns a cancel request into the engine's cancel token, and finally completes the job —
//! retrying transient errors, giving up on LEASE_LOST (another attempt owns the job now).

use std::{sync::Arc, time::Duration};

use cairn_api::v1::{
    CompleteJobRequest, JobCancelled, JobFailed, JobSucceeded, Lease, LogLevel, complete_job_request::Outcome,
};
use cairn_engine::{CancelToken, Engine};
use cairn_runtime::{backoff::Backoff, time::from_duration};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::{
    client::SharedClient,
    execute::{self, Done, Failure},
    reporter::Reporter,
};

/// How the run ended, for the worker's bookkeeping and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// Reported to the scheduler with this state name.
    Reported(&'static str),
    /// The lease was lost; nothing reported.
    LeaseLost,
    /// The scheduler could not be told.
    Unreported(String),
}

/// Runs `lease` to the end. `stop` cancels it (worker shutdown after the grace period): the
/// attempt is then reported as a retryable failure so another worker picks the job up.
pub async fn run(
    client: SharedClient,
    engine: Engine,
    worker_id: String,
    lease: Lease,
    stop: CancellationToken,
) -> Ended {
    let job = lease.job.clone().unwrap_or_default();
    let span = tracing::info_span!("job.run", otel.name = "job.run", job.id = %job.name, job.attempt = job.attempt, worker = %worker_id);
    if !job.trace_parent.is_empty() {
        let _ = span.set_parent(cairn_runtime::grpc::context_from_traceparent(&job.trace_parent));
    }
    run_inner(client, engine, worker_id, lease, stop).instrument(span).await
}

async fn run_inner(
    client: SharedClient,
    engine: Engine,
    worker_id: String,
    lease: Lease,
    stop: CancellationToken,
) -> Ended {
    let job = lease.job.clone().unwrap_or_default();
    let reporter = Arc::new(Reporter::default());
    reporter.line(
        LogLevel::Info,
        format!("attempt {} of {} started on worker {worker_id}", job.attempt, job.max_attempts.max(1)),
    );
    tracing::info!(job.id = %job.name, r#type = job.r#type, "job started");
    let cancel = CancelToken::new();
    let ttl = lease.ttl.as_ref().and_then(from_duration).unwrap_or(Duration::from_secs(30));
    let keepalive = (ttl / 3).max(Duration::from_millis(200));
    let engine_span = tracing::info_span!("engine.run", otel.name = "engine.run");
    reporter.set_span(engine_span.clone());
    metrics::gauge!("cairn_worker_jobs_running").increment(1.0);
    let started = std::time::Instant::now();
    let mut work = {
        let (lease, reporter, cancel) = (lease.clone(), reporter.clone(), cancel.clone());
        tokio::task::spawn_blocking(move || {
            let _g = engine_span.enter();
            execute::execute(&engine, &lease, reporter.as_ref(), &cancel)
        })
    };
    let mut server_cancel = false;
    let mut shutting_down = false;
    let mut last_beat = tokio::time::Instant::now();
    let result = loop {
        tokio::select! {
            r = &mut work => break r,
            _ = stop.cancelled(), if !shutting_down => {
                shutting_down = true;
                reporter.line(LogLevel::Warn, "worker shutting down: stopping at the next checkpoint; the job will be retried");
                cancel.cancel();
            }
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        flush_logs(&client, &lease, &reporter).await;
        let progress = reporter.take_progress();
        let due = last_beat.elapsed() >= keepalive
            || (progress.is_some() && last_beat.elapsed() >= Duration::from_secs(1));
        if !due {
            continue;
        }
        match client.heartbeat(&lease, progress.or_else(|| Some(reporter.progress()))).await {
            Ok(r) => {
                last_beat = tokio::time::Instant::now();
                if r.cancel_requested && !server_cancel {
                    server_cancel = true;
                    reporter.line(LogLevel::Warn, "cancel requested: stopping at the next checkpoint");
                    cancel.cancel();
                }
            }
            Err(s) if is_lease_lost(&s) => {
                tracing::warn!(job.id = %job.name, "lease lost; abandoning the attempt");
                cancel.cancel();
                let _ = work.await;
                return Ended::LeaseLost;
            }
            Err(s) => tracing::warn!(job.id = %job.name, error = %s.message(), "heartbeat failed; retrying"),
        }
    };
    reporter.end_phase();
    metrics::gauge!("cairn_worker_jobs_running").decrement(1.0);
    metrics::histogram!("cairn_worker_job_duration_seconds").record(started.elapsed().as_secs_f64());
    if let Ok(Ok(done)) = &result
        && let Some(stats) = &done.succeeded.stats
    {
        metrics::counter!("cairn_worker_bytes_processed_total")
            .increment(stats.bytes_processed.max(0) as u64);
        metrics::counter!("cairn_worker_bytes_added_total").increment(stats.bytes_added.max(0) as u64);
    }
    let (outcome, index) = match result {
        Ok(Ok(Done { succeeded, index })) => {
            reporter.line(LogLevel::Info, "finished successfully");
            (
                Outcome::Succeeded(JobSucceeded {
                    connection_test: succeeded.connection_test.map(|mut t| {
                        t.worker = worker_id.clone();
                        t
                    }),
                    ..succeeded
                }),
                index,
            )
        }
        Ok(Err(Failure::Engine(e))) if e.is_cancelled() && server_cancel => {
            reporter.line(LogLevel::Warn, "cancelled; no snapshot was written");
            (Outcome::Cancelled(JobCancelled { message: "cancelled at a checkpoint".into() }), vec![])
        }
        Ok(Err(Failure::Engine(e))) if e.is_cancelled() => (
            Outcome::Failed(JobFailed {
                error: "the worker shut down during the job".into(),
                retryable: true,
                stats: None,
            }),
            vec![],
        ),
        Ok(Err(f)) => {
            reporter.line(LogLevel::Error, format!("failed: {f}"));
            (
                Outcome::Failed(JobFailed { error: f.to_string(), retryable: f.is_retryable(), stats: None }),
                vec![],
            )
        }
        Err(join) => {
            let msg = format!("the engine crashed: {join}");
            reporter.line(LogLevel::Error, msg.clone());
            (Outcome::Failed(JobFailed { error: msg, retryable: true, stats: None }), vec![])
        }
    };
    flush_logs(&client, &lease, &reporter).await;
    let state = match &outcome {
        Outcome::Succeeded(_) => "SUCCEEDED",
        Outcome::Cancelled(_) => "CANCELLED",
        Outcome::Failed(_) => "FAILED",
    };
    let req = CompleteJobRequest {
        lease: lease.name.clone(),
        generation: lease.generation,
        outcome: Some(outcome),
        snapshot_index: index,
        lease_token: lease.token.clone(),
    };
    let mut delay = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    for attempt in 1..=8 {
        match client.complete(req.clone()).await {
            Ok(()) => {
                tracing::info!(job.id = %job.name, state, "job reported");
                metrics::counter!("cairn_worker_jobs_total", "state" => state).increment(1);
                return Ended::Reported(state);
            }
            Err(s) if is_lease_lost(&s) => return Ended::LeaseLost,
            Err(s) if attempt < 8 => {
                tracing::warn!(job.id = %job.name, error = %s.message(), "completion not delivered; retrying");
                tokio::time::sleep(delay.next_delay()).await;
            }
            Err(s) => return Ended::Unreported(s.message().to_owned()),
        }
    }
    Ended::Unreported("gave up".into())
}

async fn flush_logs(client: &SharedClient, lease: &Lease, reporter: &Reporter) {
    loop {
        let batch = reporter.pending(500);
        let Some(last) = batch.last().map(|l| l.seq) else { return };
        let full = batch.len() == 500;
        match client.append_log(lease, batch).await {
            Ok(()) => reporter.sent(last),
            Err(s) => {
                if !is_lease_lost(&s) {
                    tracing::debug!(error = %s.message(), "log lines not delivered yet");
                }
                return;
            }
        }
        if !full {
            return;
        }
    }
}

fn is_lease_lost(s: &tonic::Status) -> bool {
    s.code() == tonic::Code::Aborted && cairn_runtime::status::reason_of(s).as_deref() == Some("LEASE_LOST")
}
