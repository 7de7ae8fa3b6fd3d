//! `cairn-worker`: leases jobs from the scheduler and runs them on the backup engine.

use std::path::PathBuf;

use cairn_worker::Config;
use clap::Parser;
use serde::Serialize;

/// Cairn's worker. Every flag can also be set as CAIRN_<NAME> or in --config.
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
    /// The scheduler's URL [default: http://127.0.0.1:50052].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    scheduler_url: Option<String>,
    /// Placement labels, e.g. `host=db1,zone=eu`.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    worker_labels: Option<String>,
    /// Jobs run at once [default: 2].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    capacity: Option<u32>,
    /// Prometheus listen address [default: 127.0.0.1:9103].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    metrics_listen: Option<std::net::SocketAddr>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    let config: Config = cairn_runtime::config::load(&Config::default(), flags.config.as_deref(), &flags)?;
    if flags.print_config {
        print!("{}", cairn_runtime::config::render(&config.redacted()));
        return Ok(());
    }
    let _telemetry =
        cairn_runtime::telemetry::init("cairn-worker", config.log_format, config.otel_exporter_otlp_endpoint.as_deref());
    config.validate()?;
    if let Err(e) = cairn_runtime::metrics::install(config.metrics_listen) {
        tracing::warn!(error = %e, "metrics endpoint not started");
    }
    cairn_worker::run(config, cairn_runtime::shutdown::on_signal()).await
}
