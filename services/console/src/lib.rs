//! `cairn-console`: the web console. Server-rendered pages (axum + maud) over the catalog's
//! and the scheduler's public gRPC APIs, called with the signed-in user's own token, so the
//! servers enforce every permission; the console holds no credential of its own. Live views
//! (job logs, progress, previews) are Server-Sent Events and a small script of our own;
//! everything else works as plain forms. Every resource's page is at `/` + its resource name
//! (`/projects/team-a/jobs/<id>`), so links in notifications deep-link into it.

pub mod config;
mod form;
mod pages;
pub mod session;
mod ui;
mod web;

use std::sync::Arc;

use cairn_runtime::CancellationToken;
pub use config::{Config, Flags};
use tonic::transport::Channel;

/// Shared by every request.
pub(crate) struct Inner {
    pub config: Config,
    pub catalog: Channel,
    pub scheduler: Channel,
    pub sealer: session::Sealer,
}

/// The application state.
#[derive(Clone)]
pub(crate) struct App(pub Arc<Inner>);

impl std::ops::Deref for App {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// The console's routes.
pub fn router(config: Config) -> anyhow::Result<axum::Router> {
    config.validate()?;
    let catalog =
        cairn_runtime::grpc::channel_with(&config.catalog_url, &config.tls).map_err(anyhow::Error::msg)?;
    let scheduler =
        cairn_runtime::grpc::channel_with(&config.scheduler_url, &config.tls).map_err(anyhow::Error::msg)?;
    let sealer = session::Sealer::new(config.key()?);
    let app = App(Arc::new(Inner { config, catalog, scheduler, sealer }));
    Ok(pages::routes(app))
}

/// Serves the console on `listener` until `shutdown`.
pub async fn run(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let router = router(config)?;
    tracing::info!(addr = %listener.local_addr()?, "console listening");
    axum::serve(listener, router).with_graceful_shutdown(async move { shutdown.cancelled().await }).await?;
    Ok(())
}
