//! `cairn-dev`: Cairn in one process for trying it out and for demos. Uses `DATABASE_URL`
//! when set, else a throwaway Postgres cluster from local binaries (removed at exit).

use std::net::SocketAddr;

use clap::Parser;

/// Runs Cairn locally in one process.
#[derive(Parser)]
#[command(version, about)]
struct Flags {
    /// Postgres URL; unset = a throwaway cluster from local binaries.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Catalog gRPC address.
    #[arg(long, default_value = "127.0.0.1:50051")]
    catalog_listen: SocketAddr,
    /// Scheduler gRPC address.
    #[arg(long, default_value = "127.0.0.1:50052")]
    scheduler_listen: SocketAddr,
    /// Prometheus metrics of the whole process.
    #[arg(long, default_value = "127.0.0.1:9101")]
    metrics_listen: SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    let _telemetry = cairn_runtime::telemetry::init("cairn-dev", Default::default(), None);
    let (_cluster, database_url) = match flags.database_url.filter(|u| !u.is_empty()) {
        Some(url) => (None, url),
        None => {
            let cluster = tokio::task::spawn_blocking(cairn_localpg::Cluster::start).await??;
            let url = cluster.url("postgres");
            tracing::info!(port = cluster.port(), "started a throwaway Postgres (removed at exit)");
            (Some(cluster), url)
        }
    };
    if let Err(e) = cairn_runtime::metrics::install(flags.metrics_listen) {
        tracing::warn!(error = %e, "metrics endpoint not started");
    }
    let shutdown = cairn_runtime::shutdown::on_signal();
    let catalog = cairn_catalog::Config {
        listen: flags.catalog_listen,
        database_url: Some(database_url.clone()),
        dev_ephemeral_key: true,
        scheduler_url: format!("http://{}", flags.scheduler_listen),
        ..Default::default()
    };
    let listener = cairn_runtime::grpc::bind(catalog.listen).await?;
    println!(
        "\nCairn dev stack\n  catalog    http://{}\n  metrics    http://{}/metrics\n  database   {}\n\n\
         Press Ctrl-C to stop.\n",
        flags.catalog_listen,
        flags.metrics_listen,
        cairn_runtime::config::redact_url(&database_url),
    );
    cairn_catalog::run(catalog, listener, shutdown).await
}
