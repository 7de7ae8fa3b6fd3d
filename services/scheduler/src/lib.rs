//! The scheduler service: schedules, jobs, leases, history, the snapshot index and
//! notifications (schema `scheduler`).
//!
//! Layout: [`config`], [`grpc`] (thin handlers of `ScheduleService`, `JobService`,
//! `LeaseService` and the internal `SchedulerInternalService`), one module per noun with the
//! operations ([`schedules`], [`jobs`], [`leases`], [`snapshots`], [`forecast`],
//! [`notifications`], [`protection`], [`overrides`], [`queries`] (snapshot browsing answered by workers), [`internal`]), [`resolve`] (names in requests → ids, within one project), the loops ([`firing`], [`reaper`]), [`events`]
//! (LISTEN/NOTIFY), [`catalog`] (the catalog's internal API), [`clock`], [`domain`] (rules, no
//! I/O), [`store`] (SQL), [`error`].
//!
//! The scheduler never reads the catalog's tables and never logs a secret it holds for a lease.

pub mod auth;
pub mod catalog;
pub mod cli;
pub mod clock;
pub mod config;
pub mod convert;
pub mod domain;
pub mod error;
pub mod events;
pub mod firing;
pub mod forecast;
pub mod grpc;
pub mod internal;
pub mod jobs;
pub mod leases;
pub mod notifications;
pub mod overrides;
pub mod protection;
pub mod queries;
pub mod reaper;
pub mod resolve;
pub mod schedules;
pub mod snapshots;
pub mod store;

use std::sync::Arc;

use cairn_api::v1::{
    job_service_server::{JobServiceServer, SERVICE_NAME as JOBS},
    lease_service_server::{LeaseServiceServer, SERVICE_NAME as LEASES},
    schedule_service_server::{SERVICE_NAME as SCHEDULES, ScheduleServiceServer},
    scheduler_internal_service_server::{SERVICE_NAME as INTERNAL, SchedulerInternalServiceServer},
};
use cairn_runtime::{
    CancellationToken,
    auth::{GuardLayer, Settings, audit::PgAudit},
    db, grpc as rgrpc,
    tls::Reloading,
};
use sqlx::PgPool;
use tokio::net::TcpListener;

pub use clock::{Clock, DbClock, ManualClock, SharedClock};
pub use config::Config;

/// What every handler and loop shares; cheap to clone.
#[derive(Clone, Debug)]
pub struct State {
    /// Postgres, `search_path = scheduler`.
    pub pool: PgPool,
    /// Now.
    pub clock: SharedClock,
    /// Cross-replica wake-ups.
    pub events: events::Events,
    /// The catalog.
    pub catalog: catalog::Catalog,
    /// Settings.
    pub config: Arc<Config>,
    /// Cancelled at shutdown (long polls and streams end).
    pub shutdown: CancellationToken,
    /// Store limits already written to `stores` by this process (skips needless upserts, whose
    /// row locks would contend with leasing).
    pub stores_seen:
        Arc<std::sync::Mutex<std::collections::HashMap<cairn_api::ids::ConnectorId, store::jobs::StoreRow>>>,
    /// The audit log (releases of secrets; the guard writes the rest).
    pub audit: Arc<PgAudit>,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Names of the gRPC services served (for health).
pub const SERVICES: &[&str] = &[SCHEDULES, JOBS, LEASES, INTERNAL];

/// Runs the scheduler with the Postgres-synchronised clock.
pub async fn run(config: Config, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let clock = DbClock::new();
    run_with_clock(config, listener, shutdown, Some(clock.clone()), clock).await
}

/// Runs the scheduler on `listener` until `shutdown`: migrates, starts the firing loop, the
/// reaper, the notification dispatcher and the LISTEN connection, and serves gRPC.
pub async fn run_with_clock(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
    db_clock: Option<Arc<DbClock>>,
    clock: SharedClock,
) -> anyhow::Result<()> {
    config.validate()?;
    register_metrics();
    let settings = db::PoolSettings { max_connections: config.db_max_connections, ..Default::default() };
    let pool = db::pool(config.database_url()?, "scheduler", &settings)?;
    db::migrate(&pool, &MIGRATOR, "scheduler").await?;
    let token = config.cluster_token.clone();
    let catalog = catalog::Catalog::new(
        &config.catalog_url,
        token.as_deref(),
        &config.peer_tls,
        std::time::Duration::from_millis(config.catalog_cache_ms),
    )
    .map_err(anyhow::Error::msg)?;
    let state = State {
        pool: pool.clone(),
        clock,
        events: events::Events::default(),
        catalog,
        config: Arc::new(config.clone()),
        shutdown: shutdown.clone(),
        stores_seen: Arc::default(),
        audit: Arc::new(PgAudit::new(pool.clone(), "scheduler")),
    };
    let tracker = tokio_util::task::TaskTracker::new();
    if let Some(c) = db_clock {
        c.sync(&pool).await?;
        tracker.spawn(c.keep_synced(pool.clone(), shutdown.clone()));
    }
    tracker.spawn(state.events.clone().listen(pool.clone(), shutdown.clone()));
    tracker.spawn(state.events.clone().recheck_watched(pool.clone(), shutdown.clone()));
    tracker.spawn(firing::run(state.clone(), shutdown.clone()));
    tracker.spawn(reaper::run(state.clone(), shutdown.clone()));
    tracker.spawn(notifications::run(state.clone(), shutdown.clone()));
    tracker.spawn(protection::run(state.clone(), shutdown.clone()));
    tracker.spawn(cairn_runtime::metrics::watch_pool(pool.clone(), "cairn_scheduler", shutdown.clone()));
    tracker.spawn(cairn_runtime::idempotency::purge_loop(pool.clone(), shutdown.clone()));
    tracker.close();

    let (health, health_routes) = rgrpc::health().await;
    let h = grpc::Handlers(state.clone());
    let routes = health_routes
        .add_service(ScheduleServiceServer::new(h.clone()))
        .add_service(JobServiceServer::new(h.clone()))
        .add_service(LeaseServiceServer::new(h.clone()))
        .add_service(SchedulerInternalServiceServer::new(h));
    let guard = GuardLayer::new(Settings {
        enabled: !config.auth_disabled,
        cluster_token: token.clone().filter(|t| !t.is_empty()),
        authenticator: auth::SchedulerAuth::new(state.catalog.clone()),
        audit: state.audit.clone(),
    });
    rgrpc::set_serving(&health, SERVICES).await;
    tokio::spawn(rgrpc::watch_database(pool.clone(), health.clone(), SERVICES, shutdown.clone()));
    tracing::info!(listen = %listener.local_addr()?, "scheduler serving");
    let opts = rgrpc::ServeOptions {
        service_names: SERVICES,
        drain_delay: config.drain_delay(),
        metrics_prefix: "cairn_scheduler",
        guard,
        tls: config.tls.enabled().then(|| Reloading::new(config.tls.clone())).transpose()?,
        reflection: !config.reflection_disabled,
    };
    let served = rgrpc::serve(listener, routes, health, opts, shutdown.clone()).await;
    shutdown.cancel();
    tracker.wait().await;
    pool.close().await;
    served?;
    Ok(())
}

/// Counters that only move on rare events start at zero, so dashboards and alerts see them.
fn register_metrics() {
    for name in [
        "cairn_scheduler_missed_runs_total",
        "cairn_scheduler_lease_expiries_total",
        "cairn_scheduler_leases_granted_total",
        "cairn_scheduler_rpo_violations_total",
        "cairn_scheduler_firing_failures_total",
    ] {
        metrics::counter!(name).increment(0);
    }
    for channel in ["webhook", "email"] {
        metrics::counter!("cairn_scheduler_notification_failures_total", "channel" => channel).increment(0);
    }
    metrics::gauge!("cairn_scheduler_active_leases").set(0.0);
    metrics::gauge!("cairn_scheduler_queue_depth", "reason" => "total").set(0.0);
}

/// The pool of a running scheduler's database (tests inspect it).
pub fn schema_pool(url: &str) -> Result<PgPool, sqlx::Error> {
    db::pool(url, "scheduler", &db::PoolSettings::default())
}
