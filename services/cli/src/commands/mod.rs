//! One module per noun; each command builds a request, calls, and prints.

mod access;
mod connectors;
mod forecast;
mod jobs;
mod projects;
mod retention;
mod schedules;
mod snapshots;
mod status;
mod tasks;

use std::time::Duration;

use clap::CommandFactory as _;

use crate::{
    cli::{Cli, Command, RunArgs},
    client::Clients,
    context::{Context, Contexts},
    error::{CliError, Result},
    output::Printer,
};

/// Runs a parsed command line; returns the exit code.
pub async fn run(cli: Cli) -> Result {
    let p = Printer::new(cli.output, cli.no_color);
    if let Command::Context(cmd) = cli.command {
        let flags = Cli { command: Command::Logout, ..cli };
        return access::context(cmd, &p, &flags);
    }
    // Flags and CAIRN_* variables, then the context, then the defaults.
    let contexts = Contexts::load()?;
    let name = contexts.chosen(cli.context.as_deref());
    // `cairn --context new login` creates the context; anything else needs it to exist.
    let ctx = contexts.get(&name, cli.context.is_some() && !matches!(cli.command, Command::Login(_)))?;
    let catalog_url =
        cli.catalog_url.clone().or(ctx.catalog_url.clone()).unwrap_or_else(|| DEFAULT_CATALOG.into());
    let scheduler_url =
        cli.scheduler_url.clone().or(ctx.scheduler_url.clone()).unwrap_or_else(|| DEFAULT_SCHEDULER.into());
    let project = cli.project.clone().or(ctx.project.clone()).unwrap_or_else(|| "default".into());
    let tls = cairn_runtime::tls::ClientTls {
        tls_ca_file: cli.ca_file.clone().or(ctx.ca_file.clone()),
        tls_client_cert_file: cli.client_cert.clone(),
        tls_client_key_file: cli.client_key.clone(),
    };
    let token = match (&cli.token, &cli.command) {
        (Some(t), _) => Some(t.clone()),
        (None, Command::Login(_)) => None,
        (None, _) => fresh_token(&catalog_url, &tls, &name, &ctx).await?,
    };
    let mut c = Clients::new(&catalog_url, &scheduler_url, &project, token.as_deref(), &tls)?;
    c.assume_yes = cli.yes;
    if let Some(id) = &cli.request_id {
        c.request_id = id.clone();
    }
    match cli.command {
        Command::Login(args) => access::login(&c, &p, &name, &args.user, args.password_stdin).await,
        Command::Logout => access::logout(&c, &p, &name).await,
        Command::Context(_) => Ok(0),
        Command::User(cmd) => access::user(&c, &p, cmd).await,
        Command::Member(cmd) => access::member(&c, &p, cmd).await,
        Command::ServiceAccount(cmd) => access::service_account(&c, &p, cmd).await,
        Command::Token(cmd) => access::token(&c, &p, cmd).await,
        Command::WorkerPool(cmd) => access::worker_pool(&c, &p, cmd).await,
        Command::Audit(cmd) => access::audit(&c, &p, cmd).await,
        Command::Project(cmd) => projects::run(&c, &p, cmd).await,
        Command::Connector(cmd) => connectors::run(&c, &p, cmd).await,
        Command::Task(cmd) => tasks::run(&c, &p, *cmd).await,
        Command::Schedule(cmd) => schedules::run(&c, &p, cmd).await,
        Command::Job(cmd) => jobs::run(&c, &p, cmd).await,
        Command::Snapshot(cmd) => snapshots::run(&c, &p, cmd).await,
        Command::Retention(cmd) => retention::run(&c, &p, cmd).await,
        Command::Run(args) => tasks::run_now(&c, &p, args).await,
        Command::Restore(args) => tasks::run_now(&c, &p, RunArgs { wait: true, ..args }).await,
        Command::Forecast(args) => forecast::run(&c, &p, args).await,
        Command::Status(args) => status::run(&c, &p, args).await,
        Command::Health(args) => health(&p, args, &tls).await,
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "cairn", &mut std::io::stdout());
            Ok(0)
        }
    }
}

const DEFAULT_CATALOG: &str = "http://127.0.0.1:50051";
const DEFAULT_SCHEDULER: &str = "http://127.0.0.1:50052";

/// The context's token; a login's access token that expires within a minute is renewed with
/// its refresh token first (and the context saved).
async fn fresh_token(
    catalog_url: &str,
    tls: &cairn_runtime::tls::ClientTls,
    name: &str,
    ctx: &Context,
) -> Result<Option<String>> {
    let (Some(token), Some(refresh)) = (&ctx.token, &ctx.refresh_token) else { return Ok(ctx.token.clone()) };
    let soon = chrono::Utc::now() + chrono::Duration::minutes(1);
    if ctx.token_expire_time.is_none_or(|t| t > soon) {
        return Ok(Some(token.clone()));
    }
    let c = Clients::new(catalog_url, catalog_url, "default", None, tls)?;
    let r = c
        .identity()
        .refresh_login(cairn_api::v1::RefreshLoginRequest { refresh_token: refresh.clone() })
        .await
        .map_err(|s| match s.code() {
            tonic::Code::Unauthenticated => CliError::Status {
                message: format!("the login of context {name} ended ({}); run cairn login", s.message()),
                endpoint: catalog_url.to_owned(),
                status: Box::new(s),
            },
            _ => c.catalog_err()(s),
        })?
        .into_inner();
    let mut all = Contexts::load()?;
    if let Some(saved) = all.contexts.get_mut(name) {
        saved.token = Some(r.access_token.clone());
        saved.refresh_token = Some(r.refresh_token);
        saved.token_expire_time = r.expire_time.as_ref().and_then(cairn_runtime::time::from_timestamp);
        all.save()?;
    }
    Ok(Some(r.access_token))
}

async fn health(p: &Printer, args: crate::cli::HealthArgs, tls: &cairn_runtime::tls::ClientTls) -> Result {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    // https:// URLs are verified with --ca-file (or the system's roots), like every call.
    let channel = cairn_runtime::grpc::channel_with(&args.url, tls).map_err(CliError::Usage)?;
    let mut req = tonic::Request::new(HealthCheckRequest { service: args.service.clone() });
    req.set_timeout(args.timeout);
    let status = tokio::time::timeout(args.timeout, HealthClient::new(channel).check(req))
        .await
        .map_err(|_| {
            CliError::Failed(format!("cannot reach {}: no answer within {:?}", args.url, args.timeout))
        })?
        .map(|r| r.into_inner().status())
        .map_err(|s| CliError::status(s, &args.url))?;
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
