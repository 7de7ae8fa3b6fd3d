//! `cairn-scheduler`: schedules, jobs, leases and history over gRPC.

use std::path::PathBuf;

use cairn_scheduler::Config;
use clap::Parser;
use serde::Serialize;

/// Cairn's scheduler service. Every flag can also be set as CAIRN_<NAME> or in --config.
#[derive(Parser, Serialize)]
#[command(version, about)]
struct Flags {
    /// TOML configuration file.
    #[arg(long, env = "CAIRN_CONFIG")]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// Print the effective configuration (secrets redacted) and exit.
    #[arg(long)]
    #[serde(skip)]
    print_config: bool,
    /// gRPC listen address [default: 127.0.0.1:50052].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    listen: Option<std::net::SocketAddr>,
    /// Prometheus listen address [default: 127.0.0.1:9102].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    metrics_listen: Option<std::net::SocketAddr>,
    /// Postgres URL (else DATABASE_URL).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    database_url: Option<String>,
    /// The catalog's URL [default: http://127.0.0.1:50051].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    catalog_url: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    let config: Config = cairn_runtime::config::load(&Config::default(), flags.config.as_deref(), &flags)?;
    if flags.print_config {
        print!("{}", cairn_runtime::config::render(&config.redacted()));
        return Ok(());
    }
    let _telemetry = cairn_runtime::telemetry::init(
        "cairn-scheduler",
        config.log_format,
        config.otel_exporter_otlp_endpoint.as_deref(),
    );
    config.validate()?;
    if let Err(e) = cairn_runtime::metrics::install(config.metrics_listen) {
        tracing::warn!(error = %e, "metrics endpoint not started");
    }
    let listener = cairn_runtime::grpc::bind(config.listen).await?;
    cairn_scheduler::run(config, listener, cairn_runtime::shutdown::on_signal()).await
}
