//! `cairn-console`: see the crate documentation.

use cairn_console::Flags;
use clap::Parser as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    let config = flags.config()?;
    if flags.print_config {
        print!("{}", cairn_runtime::config::render(&config.redacted()));
        return Ok(());
    }
    let _telemetry = cairn_runtime::telemetry::init(
        "cairn-console",
        config.log_format,
        config.otel_exporter_otlp_endpoint.as_deref(),
    );
    config.validate()?;
    if let Err(e) = cairn_runtime::metrics::install(config.metrics_listen) {
        tracing::warn!(error = %e, "metrics endpoint not started");
    }
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    cairn_console::run(config, listener, cairn_runtime::shutdown::on_signal()).await
}
