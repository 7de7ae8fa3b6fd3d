//! The worker: stateless, it long-polls the scheduler for leases and runs each job on the
//! backup engine. It never touches Postgres; everything it knows comes inside a lease.
//!
//! Layout: [`config`], [`client`] (the LeaseService seam), [`runner`] (one lease: engine on a
//! blocking thread, heartbeats, logs, cancel, completion), [`execute`] (job types on the
//! engine, retention, the snapshot index), [`convert`] (API messages → engine types),
//! [`reporter`] (engine progress → what the pump sends), [`queries`] (snapshot browsing:
//! listings, diffs and file reads answered beside the jobs, repositories kept open).
//!
//! Shutdown is two-phase: stop acquiring, let running jobs finish within the grace period,
//! then cancel them; a cancelled attempt is reported as a retryable failure so another worker
//! runs the job.

pub mod cli;
pub mod client;
pub mod config;
pub mod convert;
pub mod execute;
pub mod queries;
pub mod reporter;
pub mod runner;

use std::{sync::Arc, time::Duration};

use cairn_engine::Engine;
use cairn_runtime::backoff::Backoff;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use client::{GrpcLeaseClient, LeaseClient, SharedClient};
pub use config::Config;
pub use runner::Ended;

/// Runs the worker against `client` until `shutdown`, then drains. Returns how each job ended.
pub async fn run_with(
    config: Config,
    client: SharedClient,
    engine: Engine,
    shutdown: CancellationToken,
) -> anyhow::Result<Vec<Ended>> {
    config.validate()?;
    let id = config.id();
    let labels = config.labels()?;
    let projects = config.projects()?;
    let capacity = config.capacity as usize;
    for name in ["cairn_worker_bytes_processed_total", "cairn_worker_bytes_added_total"] {
        metrics::counter!(name).increment(0);
    }
    metrics::gauge!("cairn_worker_jobs_running").set(0.0);
    metrics::gauge!("cairn_worker_capacity").set(capacity as f64);
    let wait = Duration::from_secs(config.poll_wait_secs);
    tracing::info!(worker = %id, ?labels, ?projects, capacity, scheduler = %config.scheduler_url, "worker started");
    let browser = Arc::new(cairn_engine::Browser::new(engine.clone(), config.browse_repositories as usize));
    let answering = tokio::spawn(queries::run(
        client.clone(),
        browser,
        id.clone(),
        labels.clone(),
        projects.clone(),
        wait,
        shutdown.clone(),
    ));
    let stop_jobs = CancellationToken::new();
    let mut running: JoinSet<Ended> = JoinSet::new();
    let mut ended = Vec::new();
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    while !shutdown.is_cancelled() {
        while let Some(r) = running.try_join_next() {
            ended.push(r.unwrap_or_else(|e| Ended::Unreported(e.to_string())));
        }
        let free = capacity.saturating_sub(running.len());
        if free == 0 {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                r = running.join_next() => if let Some(r) = r {
                    ended.push(r.unwrap_or_else(|e| Ended::Unreported(e.to_string())));
                },
            }
            continue;
        }
        let got = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = client.acquire(&id, &labels, &projects, free as i32, wait) => r,
        };
        match got {
            Ok(leases) => {
                backoff.reset();
                for lease in leases {
                    let job = lease.job.as_ref().map(|j| j.name.clone()).unwrap_or_default();
                    tracing::info!(job.id = %job, "lease acquired");
                    running.spawn(runner::run(
                        client.clone(),
                        engine.clone(),
                        id.clone(),
                        lease,
                        stop_jobs.clone(),
                    ));
                }
            }
            Err(s) => {
                tracing::warn!(error = %s.message(), code = ?s.code(), "cannot get work from the scheduler; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                }
            }
        }
    }
    if !running.is_empty() {
        tracing::info!(jobs = running.len(), grace = ?config.grace_period(), "shutting down: letting running jobs finish");
        let drained = tokio::time::timeout(config.grace_period(), async {
            while let Some(r) = running.join_next().await {
                ended.push(r.unwrap_or_else(|e| Ended::Unreported(e.to_string())));
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(jobs = running.len(), "grace period over: cancelling running jobs");
            stop_jobs.cancel();
            while let Some(r) = running.join_next().await {
                ended.push(r.unwrap_or_else(|e| Ended::Unreported(e.to_string())));
            }
        }
    }
    answering.abort();
    tracing::info!(worker = %id, "worker stopped");
    Ok(ended)
}

/// Runs the worker against the scheduler named in `config`.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let client: SharedClient = Arc::new(
        GrpcLeaseClient::new(&config.scheduler_url, config.credential()?.as_deref(), &config.tls)
            .map_err(anyhow::Error::msg)?,
    );
    let engine = match &config.cache_dir {
        Some(dir) => Engine::with_cache_dir(dir),
        None => Engine::new(),
    }
    .with_archiver(config.archiver()?);
    run_with(config, client, engine, shutdown).await.map(|_| ())
}
