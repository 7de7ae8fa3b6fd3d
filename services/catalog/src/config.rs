//! The catalog's configuration (see `cairn_runtime::config` for the layering). Every key can
//! be set in a TOML file, as `CAIRN_<KEY>` in the environment, or as a `--<key>` flag.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use cairn_runtime::{
    config::{ConfigError, REDACTED, redact_url},
    telemetry::LogFormat,
    tls::{ClientTls, ServerTls},
};
use serde::{Deserialize, Serialize};

use crate::secrets::{Key, Keyring};

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
    /// Key sealing secrets at rest: 32 bytes, base64 or hex.
    pub secret_key: Option<String>,
    /// File holding the key (Kubernetes/Docker secrets).
    pub secret_key_file: Option<PathBuf>,
    /// Previous keys still accepted when opening secrets (comma-separated), for rotation.
    pub secret_key_previous: Option<String>,
    /// Generate a throwaway key (development only; secrets are lost at exit).
    pub dev_ephemeral_key: bool,
    /// The scheduler's gRPC URL (connection tests, task deletions).
    pub scheduler_url: String,
    /// Shared token required on internal services and sent to peers; empty = none.
    pub cluster_token: Option<String>,
    /// Log line format.
    pub log_format: LogFormat,
    /// OTLP collector (`OTEL_EXPORTER_OTLP_ENDPOINT`); unset = no span export.
    pub otel_exporter_otlp_endpoint: Option<String>,
    /// Time between NOT_SERVING and closing the listener at shutdown, in milliseconds.
    pub drain_delay_ms: u64,
    /// Turn authentication and authorisation off: every caller may do everything. Only for
    /// development on a loopback address; a non-loopback listener refuses to start with it
    /// unless `insecure` is set too.
    pub auth_disabled: bool,
    /// Start even when listening beyond loopback without TLS and without authentication.
    pub insecure: bool,
    /// Do not serve gRPC server reflection (it describes the API to anyone who can connect).
    pub reflection_disabled: bool,
    /// TLS of this server.
    #[serde(flatten)]
    pub tls: ServerTls,
    /// An external identity provider whose JWTs are accepted.
    #[serde(flatten)]
    pub oidc: crate::oidc::OidcConfig,
    /// TLS towards the scheduler (an `https://` URL).
    #[serde(flatten)]
    pub peer_tls: ClientTls,
    /// Where the catalog writes what it generates at first start (the bootstrap admin
    /// password, 0600).
    pub data_dir: Option<PathBuf>,
    /// Password of the first platform admin (`admin`), created when there is no user yet.
    /// Unset: one is generated, printed once and written to `data_dir`.
    pub bootstrap_admin_password: Option<String>,
    /// File holding that password.
    pub bootstrap_admin_password_file: Option<PathBuf>,
    /// A known API token of `admin`, for automation (at least 24 characters).
    pub bootstrap_token: Option<String>,
    /// File holding that token.
    pub bootstrap_token_file: Option<PathBuf>,
    /// A known enrolment token of the worker pool `bootstrap` (every project, any label), for
    /// deployments that start workers with the stack (compose, Kubernetes).
    pub bootstrap_worker_token: Option<String>,
    /// File holding that token.
    pub bootstrap_worker_token_file: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: ([127, 0, 0, 1], 50051).into(),
            metrics_listen: ([127, 0, 0, 1], 9101).into(),
            database_url: None,
            db_max_connections: 16,
            secret_key: None,
            secret_key_file: None,
            secret_key_previous: None,
            dev_ephemeral_key: false,
            scheduler_url: "http://127.0.0.1:50052".into(),
            cluster_token: None,
            log_format: LogFormat::Text,
            otel_exporter_otlp_endpoint: None,
            drain_delay_ms: 0,
            auth_disabled: false,
            insecure: false,
            reflection_disabled: false,
            tls: ServerTls::default(),
            oidc: Default::default(),
            peer_tls: ClientTls::default(),
            data_dir: None,
            bootstrap_admin_password: None,
            bootstrap_admin_password_file: None,
            bootstrap_token: None,
            bootstrap_token_file: None,
            bootstrap_worker_token: None,
            bootstrap_worker_token_file: None,
        }
    }
}

impl Config {
    /// The configuration with secrets replaced, for `--print-config`.
    pub fn redacted(&self) -> Config {
        let hide = |o: &Option<String>| o.as_ref().map(|_| REDACTED.to_owned());
        Config {
            database_url: self.database_url.as_deref().map(redact_url),
            // A password in any URL (userinfo) is a secret too.
            scheduler_url: redact_url(&self.scheduler_url),
            otel_exporter_otlp_endpoint: self.otel_exporter_otlp_endpoint.as_deref().map(redact_url),
            secret_key: hide(&self.secret_key),
            secret_key_previous: hide(&self.secret_key_previous),
            cluster_token: hide(&self.cluster_token),
            bootstrap_admin_password: hide(&self.bootstrap_admin_password),
            bootstrap_token: hide(&self.bootstrap_token),
            bootstrap_worker_token: hide(&self.bootstrap_worker_token),
            ..self.clone()
        }
    }

    /// The database URL or an error naming the key.
    pub fn database_url(&self) -> Result<&str, ConfigError> {
        self.database_url.as_deref().filter(|u| !u.is_empty()).ok_or_else(|| {
            ConfigError::invalid("database_url", "is required (DATABASE_URL or --database-url)")
        })
    }

    /// The drain delay.
    pub fn drain_delay(&self) -> Duration {
        Duration::from_millis(self.drain_delay_ms)
    }

    /// Builds the keyring: exactly one key source, or the explicit dev flag.
    pub fn keyring(&self) -> Result<Keyring, ConfigError> {
        let from_file = match &self.secret_key_file {
            Some(p) => Some(std::fs::read_to_string(p).map_err(|e| {
                ConfigError::invalid("secret_key_file", format!("cannot read {}: {e}", p.display()))
            })?),
            None => None,
        };
        let current = match (&self.secret_key, from_file, self.dev_ephemeral_key) {
            (Some(_), Some(_), _) => {
                return Err(ConfigError::invalid(
                    "secret_key",
                    "set either secret_key or secret_key_file, not both",
                ));
            }
            (Some(k), None, _) => {
                Key::parse(k).map_err(|e| ConfigError::invalid("secret_key", e.to_string()))?
            }
            (None, Some(k), _) => {
                Key::parse(&k).map_err(|e| ConfigError::invalid("secret_key_file", e.to_string()))?
            }
            (None, None, true) => Key::generate(),
            (None, None, false) => {
                return Err(ConfigError::invalid(
                    "secret_key",
                    "is required to seal connector secrets: set CAIRN_SECRET_KEY or CAIRN_SECRET_KEY_FILE \
                     (32 bytes, e.g. `openssl rand -base64 32`), or pass --dev-ephemeral-key for a throwaway dev key",
                ));
            }
        };
        let previous = self
            .secret_key_previous
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|k| Key::parse(k).map_err(|e| ConfigError::invalid("secret_key_previous", e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Keyring::new(current, previous))
    }

    /// Checks everything that can be checked without I/O.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.database_url()?;
        if self.db_max_connections == 0 {
            return Err(ConfigError::invalid("db_max_connections", "must be at least 1"));
        }
        cairn_runtime::grpc::check_url(&self.scheduler_url)
            .map_err(|e| ConfigError::invalid("scheduler_url", e))?;
        self.tls.validate()?;
        self.oidc.validate()?;
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
                "is required with authentication on (at least 16 characters; the scheduler presents it)",
            ));
        }
        self.bootstrap_password()?;
        self.bootstrap_token()?;
        self.bootstrap_worker_token()?;
        self.keyring().map(|_| ())
    }

    /// The configured bootstrap admin password, if any.
    pub fn bootstrap_password(&self) -> Result<Option<String>, ConfigError> {
        let p = cairn_runtime::config::secret(
            "bootstrap_admin_password",
            self.bootstrap_admin_password.as_deref(),
            self.bootstrap_admin_password_file.as_deref(),
        )?;
        if let Some(p) = &p
            && p.chars().count() < 12
        {
            return Err(ConfigError::invalid("bootstrap_admin_password", "must be at least 12 characters"));
        }
        Ok(p)
    }

    /// The configured bootstrap token, if any.
    pub fn bootstrap_token(&self) -> Result<Option<String>, ConfigError> {
        token(
            "bootstrap_token",
            cairn_runtime::config::secret(
                "bootstrap_token",
                self.bootstrap_token.as_deref(),
                self.bootstrap_token_file.as_deref(),
            )?,
        )
    }

    /// The configured bootstrap worker pool token, if any.
    pub fn bootstrap_worker_token(&self) -> Result<Option<String>, ConfigError> {
        token(
            "bootstrap_worker_token",
            cairn_runtime::config::secret(
                "bootstrap_worker_token",
                self.bootstrap_worker_token.as_deref(),
                self.bootstrap_worker_token_file.as_deref(),
            )?,
        )
    }
}

/// A configured token: at least 24 characters without spaces.
fn token(key: &'static str, t: Option<String>) -> Result<Option<String>, ConfigError> {
    if let Some(t) = &t
        && (t.len() < 24 || t.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        return Err(ConfigError::invalid(
            key,
            "must be at least 24 characters without spaces (e.g. `openssl rand -hex 32`)",
        ));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_required_unless_dev() {
        let c = Config {
            database_url: Some("postgres://x".into()),
            cluster_token: Some("a-cluster-token-of-length".into()),
            ..Config::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("secret_key"));
        let dev = Config { dev_ephemeral_key: true, ..c.clone() };
        assert!(dev.validate().is_ok());
        let bad = Config { secret_key: Some("nope".into()), ..c.clone() };
        assert!(bad.validate().unwrap_err().to_string().contains("secret_key"));
    }

    #[test]
    fn redaction_hides_secrets() {
        let c = Config {
            database_url: Some("postgres://u:pw@h/db".into()),
            secret_key: Some("k".repeat(44)),
            cluster_token: Some("tok".into()),
            scheduler_url: "http://u:pw2@scheduler:50052".into(),
            otel_exporter_otlp_endpoint: Some("https://u:pw3@collector:4317".into()),
            ..Config::default()
        };
        let text = cairn_runtime::config::render(&c.redacted());
        for shown in ["pw@", "pw2@", "pw3@", &"k".repeat(44), "tok\""] {
            assert!(!text.contains(shown), "{shown} in {text}");
        }
        assert!(text.contains("http://u:***@scheduler:50052"), "{text}");
    }
}
