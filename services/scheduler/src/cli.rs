//! Command-line flags of `cairn-scheduler` and loading the effective configuration from them
//! (defaults → `--config` file → `CAIRN_*` environment → flags). Kept in the library so
//! deployment manifests can be checked against the real parser.

use std::path::PathBuf;

use cairn_runtime::config::ConfigError;
use clap::Parser;
use serde::Serialize;

use crate::Config;

/// Cairn's scheduler service. Every flag can also be set as CAIRN_<NAME> or in --config.
#[derive(Parser, Serialize)]
#[command(version, about)]
pub struct Flags {
    /// TOML configuration file.
    #[arg(long, env = "CAIRN_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Print the effective configuration (secrets redacted) and exit.
    #[arg(long)]
    #[serde(skip)]
    pub print_config: bool,
    /// gRPC listen address [default: 127.0.0.1:50052].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<std::net::SocketAddr>,
    /// Prometheus listen address [default: 127.0.0.1:9102].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Postgres URL (else DATABASE_URL).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// The catalog's URL [default: http://127.0.0.1:50051].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catalog_url: Option<String>,
}

impl Flags {
    /// The effective configuration (not yet validated).
    pub fn config(&self) -> Result<Config, ConfigError> {
        cairn_runtime::config::load(&Config::default(), self.config.as_deref(), self)
    }
}
