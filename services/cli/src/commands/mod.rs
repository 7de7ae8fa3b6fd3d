//! One module per noun; each command builds a request, calls, and prints.

mod connectors;
mod forecast;
mod jobs;
mod projects;
mod retention;
mod schedules;
mod snapshots;
mod tasks;

use std::time::Duration;

use clap::CommandFactory as _;

use crate::{
    cli::{Cli, Command},
    client::Clients,
    error::{CliError, Result},
    output::Printer,
};

/// Runs a parsed command line; returns the exit code.
pub async fn run(cli: Cli) -> Result {
    let p = Printer::new(cli.output, cli.no_color);
    let c = Clients::new(
        &cli.catalog_url,
        &cli.scheduler_url,
        &cli.project,
        cli.token.as_deref(),
        &cairn_runtime::tls::ClientTls {
            tls_ca_file: cli.ca_file.clone(),
            tls_client_cert_file: cli.client_cert.clone(),
            tls_client_key_file: cli.client_key.clone(),
        },
    )?;
    match cli.command {
        Command::Project(cmd) => projects::run(&c, &p, cmd).await,
        Command::Connector(cmd) => connectors::run(&c, &p, cmd).await,
        Command::Task(cmd) => tasks::run(&c, &p, cmd).await,
        Command::Schedule(cmd) => schedules::run(&c, &p, cmd).await,
        Command::Job(cmd) => jobs::run(&c, &p, cmd).await,
        Command::Snapshot(cmd) => snapshots::run(&c, &p, cmd).await,
        Command::Retention(cmd) => retention::run(&c, &p, cmd).await,
        Command::Run(args) => tasks::run_now(&c, &p, args).await,
        Command::Forecast(args) => forecast::run(&c, &p, args).await,
        Command::Health(args) => health(&p, args).await,
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "cairn", &mut std::io::stdout());
            Ok(0)
        }
    }
}

async fn health(p: &Printer, args: crate::cli::HealthArgs) -> Result {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let endpoint = tonic::transport::Endpoint::from_shared(args.url.clone())
        .map_err(|e| CliError::Usage(format!("{:?} is not a URL: {e}", args.url)))?
        .connect_timeout(args.timeout)
        .timeout(args.timeout);
    let status = match endpoint.connect().await {
        Ok(ch) => HealthClient::new(ch)
            .check(HealthCheckRequest { service: args.service.clone() })
            .await
            .map(|r| r.into_inner().status())
            .map_err(|s| CliError::status(s, &args.url)),
        Err(e) => Err(CliError::Failed(format!("cannot reach {}: {e}", args.url))),
    }?;
    if p.json() {
        println!("{}", serde_json::json!({ "status": status.as_str_name() }));
    } else {
        println!("{}", status.as_str_name());
    }
    Ok(if status == ServingStatus::Serving { 0 } else { 1 })
}

/// Reads a secret from a file (trailing newline removed).
pub fn read_secret(path: &std::path::Path, what: &str) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Usage(format!("cannot read {what} from {}: {e}", path.display())))?;
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

/// `key=value` pairs into a map; errors name the flag.
pub fn pairs(items: &[String], flag: &str) -> Result<std::collections::HashMap<String, String>> {
    items
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .ok_or_else(|| CliError::Usage(format!("{flag}: {kv:?} is not key=value")))
        })
        .collect()
}

/// A time flag: RFC 3339, or a duration meaning "that long ago".
pub fn time_or_ago(raw: &str, flag: &str) -> Result<prost_types::Timestamp> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(raw) {
        return Ok(cairn_runtime::time::to_timestamp(t.with_timezone(&chrono::Utc)));
    }
    match humantime::parse_duration(raw) {
        Ok(d) => Ok(cairn_runtime::time::to_timestamp(
            chrono::Utc::now() - chrono::Duration::from_std(d).unwrap_or_default(),
        )),
        Err(_) => Err(CliError::Usage(format!(
            "{flag}: {raw:?} is neither an RFC 3339 time nor a duration like 24h"
        ))),
    }
}

/// An RFC 3339 flag.
pub fn rfc3339(raw: &str, flag: &str) -> Result<prost_types::Timestamp> {
    chrono::DateTime::parse_from_rfc3339(raw)
        .map(|t| cairn_runtime::time::to_timestamp(t.with_timezone(&chrono::Utc)))
        .map_err(|e| {
            CliError::Usage(format!("{flag}: {raw:?} is not an RFC 3339 time (2026-01-31T18:00:00Z): {e}"))
        })
}

/// A duration into protobuf.
pub fn pb_duration(d: Duration) -> prost_types::Duration {
    cairn_runtime::time::to_duration(d)
}
