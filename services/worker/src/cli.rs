//! Command-line flags of `cairn-worker` and loading the effective configuration from them
//! (defaults → `--config` file → `CAIRN_*` environment → flags). Kept in the library so
//! deployment manifests can be checked against the real parser.

use std::path::PathBuf;

use cairn_runtime::config::ConfigError;
use clap::Parser;
use serde::Serialize;

use crate::Config;

/// Cairn's worker. Every flag can also be set as CAIRN_<NAME> or in --config.
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
    /// The scheduler's URL [default: http://127.0.0.1:50052].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduler_url: Option<String>,
    /// Placement labels, e.g. `host=db1,zone=eu`.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_labels: Option<String>,
    /// Only jobs of these projects, e.g. `team-a,team-b` [default: every project].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_projects: Option<String>,
    /// Jobs run at once [default: 2].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u32>,
    /// Prometheus listen address [default: 127.0.0.1:9103].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

impl Flags {
    /// The effective configuration (not yet validated).
    pub fn config(&self) -> Result<Config, ConfigError> {
        cairn_runtime::config::load(&Config::default(), self.config.as_deref(), self)
    }
}
