//! The catalog service: projects, connectors, tasks, connector secrets, and who may use them
//! (users, members, service accounts, worker pools, credentials, the audit log), in schema
//! `catalog`.
//!
//! Layout: [`config`] (settings), [`grpc`] (thin handlers of the public `CatalogService`,
//! `IdentityService` and `AuditService` and the internal `CatalogInternalService`),
//! [`projects`], [`connectors`] and [`tasks`] (the operations), [`auth`] (credentials →
//! principals, logins, the bootstrap admin), [`identity`] (users, members, service accounts,
//! tokens, worker pools), [`audit`] (the merged audit log),
//! [`domain`] (validation and field-mask rules, no I/O), [`store`] (SQL), [`secrets`]
//! (sealing at rest), [`scheduler_client`] (the scheduler's internal API), [`error`] (one
//! error type, one mapping to `Status`).
//!
//! The catalog never reads the scheduler's tables, and never logs or returns a secret outside
//! `CatalogInternalService`.

pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod connectors;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod identity;
pub mod oidc;
pub mod projects;
pub mod scheduler_client;
pub mod secrets;
pub mod store;
pub mod tasks;

use std::sync::Arc;

use cairn_api::v1::{
    audit_service_server::{AuditServiceServer, SERVICE_NAME as AUDIT_NAME},
    catalog_internal_service_server::{CatalogInternalServiceServer, SERVICE_NAME as INTERNAL_NAME},
    catalog_service_server::{CatalogServiceServer, SERVICE_NAME as PUBLIC_NAME},
    identity_service_server::{IdentityServiceServer, SERVICE_NAME as IDENTITY_NAME},
};
use cairn_runtime::{
    CancellationToken,
    auth::{GuardLayer, Settings, audit::PgAudit},
    db, grpc as rgrpc,
    tls::Reloading,
};
use sqlx::PgPool;
use tokio::net::TcpListener;

pub use config::Config;
use scheduler_client::SchedulerClient;
use secrets::Keyring;

/// What every handler shares; cheap to clone.
#[derive(Clone, Debug)]
pub struct State {
    /// Postgres, `search_path = catalog`.
    pub pool: PgPool,
    /// Sealing keys.
    pub keyring: Arc<Keyring>,
    /// The scheduler's internal API.
    pub scheduler: SchedulerClient,
    /// Credentials → principals (also for the scheduler's `Authenticate`).
    pub auth: Arc<auth::CatalogAuth>,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Names of the gRPC services served (for health).
pub const SERVICES: &[&str] = &[PUBLIC_NAME, IDENTITY_NAME, AUDIT_NAME, INTERNAL_NAME];

/// Runs the catalog on `listener` until `shutdown` is cancelled: migrates, re-seals secrets
/// sealed by previous keys, serves, and reflects database reachability in gRPC health.
pub async fn run(config: Config, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    config.validate()?;
    let keyring = Arc::new(config.keyring()?);
    let key_id = keyring.current_id();
    if config.dev_ephemeral_key && config.secret_key.is_none() && config.secret_key_file.is_none() {
        tracing::warn!(
            "DEV MODE: secrets are sealed with an ephemeral key generated at start-up; they cannot be opened after \
             a restart. Never use --dev-ephemeral-key in production."
        );
    }
    let settings = db::PoolSettings { max_connections: config.db_max_connections, ..Default::default() };
    let pool = db::pool(config.database_url()?, "catalog", &settings)?;
    db::migrate(&pool, &MIGRATOR, "catalog").await?;
    reseal(&pool, &keyring).await?;
    auth::bootstrap(&pool, &config).await?;
    if config.auth_disabled {
        tracing::warn!("authentication is OFF (auth_disabled): every caller may do everything");
    }
    let token = config.cluster_token.as_deref();
    let scheduler =
        SchedulerClient::new(&config.scheduler_url, token, &config.peer_tls).map_err(anyhow::Error::msg)?;
    let oidc = match config.oidc.enabled() {
        true => Some(oidc::Verifier::start(&config.oidc, shutdown.clone()).await?),
        false => None,
    };
    let authenticator = auth::CatalogAuth::new(pool.clone(), oidc);
    let state = State { pool: pool.clone(), keyring, scheduler, auth: authenticator.clone() };

    let (health, health_routes) = rgrpc::health().await;
    let routes = health_routes
        .add_service(CatalogServiceServer::new(grpc::Public(state.clone())))
        .add_service(IdentityServiceServer::new(grpc::Public(state.clone())))
        .add_service(AuditServiceServer::new(grpc::Public(state.clone())))
        .add_service(CatalogInternalServiceServer::new(grpc::Internal(state)));
    let guard = GuardLayer::new(Settings {
        enabled: !config.auth_disabled,
        cluster_token: config.cluster_token.clone().filter(|t| !t.is_empty()),
        authenticator,
        audit: std::sync::Arc::new(PgAudit::new(pool.clone(), "catalog")),
    });
    rgrpc::set_serving(&health, SERVICES).await;
    tokio::spawn(rgrpc::watch_database(pool.clone(), health.clone(), SERVICES, shutdown.clone()));
    tokio::spawn(cairn_runtime::metrics::watch_pool(pool.clone(), "cairn_catalog", shutdown.clone()));
    tokio::spawn(cairn_runtime::idempotency::purge_loop(pool.clone(), shutdown.clone()));
    tracing::info!(listen = %listener.local_addr()?, key.id = %key_id, "catalog serving");
    let opts = rgrpc::ServeOptions {
        service_names: SERVICES,
        drain_delay: config.drain_delay(),
        metrics_prefix: "cairn_catalog",
        guard,
        tls: config.tls.enabled().then(|| Reloading::new(config.tls.clone())).transpose()?,
        reflection: !config.reflection_disabled,
    };
    rgrpc::serve(listener, routes, health, opts, shutdown).await?;
    pool.close().await;
    Ok(())
}

/// Re-seals secrets sealed by a previous key with the current one.
async fn reseal(pool: &PgPool, keyring: &Keyring) -> anyhow::Result<()> {
    let mut conn = pool.acquire().await?;
    let mut n = 0;
    for store::Sealed { id, secrets: blob } in store::connectors::with_secrets(&mut conn).await? {
        let owner = cairn_api::names::Kind::Connector.flat_name(id);
        let (map, stale) = keyring.open(&owner, &blob)?;
        if stale {
            store::connectors::reseal(&mut conn, id, &keyring.seal(&owner, &map)).await?;
            n += 1;
        }
    }
    for store::Sealed { id, secrets: blob } in store::tasks::with_secrets(&mut conn).await? {
        let owner = cairn_api::names::Kind::Task.flat_name(id);
        let (map, stale) = keyring.open(&owner, &blob)?;
        if stale {
            store::tasks::reseal(&mut conn, id, &keyring.seal(&owner, &map)).await?;
            n += 1;
        }
    }
    if n > 0 {
        tracing::info!(records = n, key = %keyring.current_id(), "re-sealed secrets with the current key");
    }
    Ok(())
}
