//! The scheduler's configuration (see `cairn_runtime::config` for the layering).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use cairn_runtime::{
    config::{ConfigError, REDACTED, redact_url},
    telemetry::LogFormat,
    tls::{ClientTls, ServerTls},
};
use serde::{Deserialize, Serialize};

/// Effective configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// gRPC listen address.
    pub listen: SocketAddr,
    /// Prometheus metrics listen address.
    pub metrics_listen: SocketAddr,
    /// Postgres URL (`DATABASE_URL`).
    pub database_url: Option<String>,
    /// Connections in the pool.
    pub db_max_connections: u32,
    /// The catalog's gRPC URL.
    pub catalog_url: String,
    /// Shared token required on internal and worker-facing services and sent to the catalog.
    pub cluster_token: Option<String>,
    /// How long task plans from the catalog are cached, in milliseconds (a task edit reaches
    /// firing within this).
    pub catalog_cache_ms: u64,
    /// Lease TTL in seconds (workers heartbeat well within it).
    pub lease_ttl_secs: u64,
    /// A job starting later than this after its due time counts as a missed run (seconds).
    pub missed_run_grace_secs: u64,
    /// Finished jobs older than this many days are purged (0 = keep forever).
    pub job_history_days: u64,
    /// How often sources are checked against their recovery point objective, in
    /// milliseconds (a violation is noticed and notified within this).
    pub protection_sweep_ms: u64,
    /// How often names and objectives are re-read from the catalog (and the per-source
    /// last-success gauge refreshed), in milliseconds.
    pub protection_refresh_ms: u64,
    /// The largest file ReadSnapshotFile streams, in bytes (larger ones are refused).
    pub snapshot_read_max_bytes: u64,
    /// Base URL of a web console for links in notifications (optional).
    pub console_url: Option<String>,
    /// SMTP server for email notifications (`smtp://host:port` or `smtps://...`).
    pub smtp_url: Option<String>,
    /// SMTP user.
    pub smtp_username: Option<String>,
    /// SMTP password.
    pub smtp_password: Option<String>,
    /// File holding the SMTP password.
    pub smtp_password_file: Option<PathBuf>,
    /// Sender address of notification emails.
    pub smtp_from: String,
    /// Log line format.
    pub log_format: LogFormat,
    /// OTLP collector (`OTEL_EXPORTER_OTLP_ENDPOINT`); unset = no span export.
    pub otel_exporter_otlp_endpoint: Option<String>,
    /// Time between NOT_SERVING and closing the listener at shutdown, in milliseconds.
    pub drain_delay_ms: u64,
    /// Turn authentication and authorisation off (loopback development only; see the
    /// catalog's setting of the same name).
    pub auth_disabled: bool,
    /// Start even when listening beyond loopback without TLS and without authentication.
    pub insecure: bool,
    /// Do not serve gRPC server reflection (it describes the API to anyone who can connect).
    pub reflection_disabled: bool,
    /// TLS of this server.
    #[serde(flatten)]
    pub tls: ServerTls,
    /// TLS towards the catalog (an `https://` URL).
    #[serde(flatten)]
    pub peer_tls: ClientTls,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: ([127, 0, 0, 1], 50052).into(),
            metrics_listen: ([127, 0, 0, 1], 9102).into(),
            database_url: None,
            db_max_connections: 32,
            catalog_url: "http://127.0.0.1:50051".into(),
            cluster_token: None,
            catalog_cache_ms: 5000,
            lease_ttl_secs: 30,
            missed_run_grace_secs: 60,
            job_history_days: 90,
            protection_sweep_ms: 1000,
            protection_refresh_ms: 30_000,
            snapshot_read_max_bytes: 1 << 30,
            console_url: None,
            smtp_url: None,
            smtp_username: None,
            smtp_password: None,
            smtp_password_file: None,
            smtp_from: "cairn@localhost".into(),
            log_format: LogFormat::Text,
            otel_exporter_otlp_endpoint: None,
            drain_delay_ms: 0,
            auth_disabled: false,
            insecure: false,
            reflection_disabled: false,
            tls: ServerTls::default(),
            peer_tls: ClientTls::default(),
        }
    }
}

impl Config {
    /// The configuration with secrets replaced, for `--print-config`.
    pub fn redacted(&self) -> Config {
        let hide = |o: &Option<String>| o.as_ref().map(|_| REDACTED.to_owned());
        Config {
            database_url: self.database_url.as_deref().map(redact_url),
            cluster_token: hide(&self.cluster_token),
            smtp_password: hide(&self.smtp_password),
            smtp_url: self.smtp_url.as_deref().map(redact_url),
            // A password in any URL (userinfo) is a secret too.
            catalog_url: redact_url(&self.catalog_url),
            console_url: self.console_url.as_deref().map(redact_url),
            otel_exporter_otlp_endpoint: self.otel_exporter_otlp_endpoint.as_deref().map(redact_url),
            ..self.clone()
        }
    }

    /// The database URL or an error naming the key.
    pub fn database_url(&self) -> Result<&str, ConfigError> {
        self.database_url.as_deref().filter(|u| !u.is_empty()).ok_or_else(|| {
            ConfigError::invalid("database_url", "is required (DATABASE_URL or --database-url)")
        })
    }

    /// Lease TTL.
    pub fn lease_ttl(&self) -> Duration {
        Duration::from_secs(self.lease_ttl_secs)
    }

    /// Grace before an occurrence counts as missed.
    pub fn missed_run_grace(&self) -> Duration {
        Duration::from_secs(self.missed_run_grace_secs)
    }

    /// History kept, `None` = forever.
    pub fn job_history(&self) -> Option<Duration> {
        (self.job_history_days > 0).then(|| Duration::from_secs(self.job_history_days * 86_400))
    }

    /// The protection sweep's pace.
    pub fn protection_sweep(&self) -> Duration {
        Duration::from_millis(self.protection_sweep_ms)
    }

    /// The drain delay.
    pub fn drain_delay(&self) -> Duration {
        Duration::from_millis(self.drain_delay_ms)
    }

    /// Checks what can be checked without I/O.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.database_url()?;
        cairn_runtime::grpc::check_url(&self.catalog_url)
            .map_err(|e| ConfigError::invalid("catalog_url", e))?;
        self.tls.validate()?;
        self.peer_tls.validate()?;
        cairn_runtime::auth::check_exposure(
            self.listen,
            !self.auth_disabled,
            self.tls.enabled(),
            self.insecure,
        )?;
        if !self.auth_disabled && self.cluster_token.as_deref().unwrap_or_default().len() < 16 {
            return Err(ConfigError::invalid(
                "cluster_token",
                "is required with authentication on (at least 16 characters; the same as the catalog's)",
            ));
        }
        if !(1..=3600).contains(&self.lease_ttl_secs) {
            return Err(ConfigError::invalid("lease_ttl_secs", "must be between 1 and 3600"));
        }
        if !(100..=600_000).contains(&self.protection_sweep_ms) {
            return Err(ConfigError::invalid("protection_sweep_ms", "must be between 100 and 600000"));
        }
        if self.snapshot_read_max_bytes == 0 {
            return Err(ConfigError::invalid("snapshot_read_max_bytes", "must be at least 1"));
        }
        if !(500..=3_600_000).contains(&self.protection_refresh_ms) {
            return Err(ConfigError::invalid("protection_refresh_ms", "must be between 500 and 3600000"));
        }
        if self.db_max_connections < 2 {
            return Err(ConfigError::invalid("db_max_connections", "must be at least 2 (one listens)"));
        }
        if let Some(u) = &self.smtp_url
            && !(u.starts_with("smtp://") || u.starts_with("smtps://"))
        {
            return Err(ConfigError::invalid("smtp_url", "must start with smtp:// or smtps://"));
        }
        Ok(())
    }
}
