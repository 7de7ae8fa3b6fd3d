//! The console's configuration (see `cairn_runtime::config` for the layering) and its flags.

use std::{net::SocketAddr, path::PathBuf};

use cairn_runtime::{
    config::{ConfigError, REDACTED, redact_url},
    telemetry::LogFormat,
    tls::ClientTls,
};
use clap::Parser;
use serde::{Deserialize, Serialize};

/// Effective configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// HTTP listen address (`CAIRN_LISTEN`).
    pub listen: SocketAddr,
    /// The catalog's gRPC URL.
    pub catalog_url: String,
    /// The scheduler's gRPC URL.
    pub scheduler_url: String,
    /// TLS towards the catalog and the scheduler (`https://` URLs).
    #[serde(flatten)]
    pub tls: ClientTls,
    /// The address browsers use (`https://backups.example.com`), when the console is behind a
    /// TLS-terminating proxy; cookies are then `Secure` and forms must come from it. Required
    /// when `listen` is not a loopback address: passwords never cross a network in plaintext.
    pub public_url: Option<String>,
    /// 32 bytes, base64: seals session cookies, so every replica opens every session and a
    /// restart keeps people signed in. Unset = a random key per process.
    pub session_key: Option<String>,
    /// File holding it.
    pub session_key_file: Option<PathBuf>,
    /// Prometheus metrics listen address.
    pub metrics_listen: SocketAddr,
    /// Sign-in with an OpenID Connect provider (authorisation code + PKCE), next to Cairn users.
    #[serde(flatten)]
    pub oidc: OidcLogin,
    /// Serve plain HTTP on a non-loopback address without `public_url` (trusted networks only).
    pub insecure: bool,
    /// Log line format.
    pub log_format: LogFormat,
    /// OTLP collector; unset = no span export.
    pub otel_exporter_otlp_endpoint: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: ([127, 0, 0, 1], 8080).into(),
            catalog_url: "http://127.0.0.1:50051".into(),
            scheduler_url: "http://127.0.0.1:50052".into(),
            tls: ClientTls::default(),
            public_url: None,
            session_key: None,
            session_key_file: None,
            insecure: false,
            metrics_listen: ([127, 0, 0, 1], 9104).into(),
            oidc: OidcLogin::default(),
            log_format: LogFormat::Text,
            otel_exporter_otlp_endpoint: None,
        }
    }
}

impl Config {
    /// Checks every value; errors name the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, url) in [("catalog_url", &self.catalog_url), ("scheduler_url", &self.scheduler_url)] {
            cairn_runtime::grpc::check_url(url).map_err(|m| ConfigError::invalid(key, m))?;
        }
        self.tls.validate()?;
        if let Some(u) = &self.public_url {
            let parsed =
                url::Url::parse(u).map_err(|e| ConfigError::invalid("public_url", format!("{u:?}: {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
                return Err(ConfigError::invalid(
                    "public_url",
                    format!("{u:?} must be http(s)://host[:port]"),
                ));
            }
        }
        let https = self.public_url.as_deref().is_some_and(|u| u.starts_with("https://"));
        if !self.listen.ip().is_loopback() && !https && !self.insecure {
            return Err(ConfigError::invalid(
                "listen",
                format!(
                    "{} is reachable from other machines over plain HTTP, which would carry passwords in \
                     the clear: put a TLS proxy in front and set public_url=https://..., or set insecure",
                    self.listen
                ),
            ));
        }
        self.key()?;
        self.oidc.validate()?;
        Ok(())
    }

    /// The session key, when configured.
    pub fn key(&self) -> Result<Option<[u8; 32]>, ConfigError> {
        use base64::Engine as _;
        let Some(text) = cairn_runtime::config::secret(
            "session_key",
            self.session_key.as_deref(),
            self.session_key_file.as_deref(),
        )?
        else {
            return Ok(None);
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| ConfigError::invalid("session_key", "is not base64 (`openssl rand -base64 32`)"))?;
        let key: [u8; 32] =
            bytes.try_into().map_err(|_| ConfigError::invalid("session_key", "must be 32 bytes, base64"))?;
        Ok(Some(key))
    }

    /// Whether cookies must be `Secure` (browsers reach the console over https).
    pub fn secure_cookies(&self) -> bool {
        self.public_url.as_deref().is_some_and(|u| u.starts_with("https://"))
    }

    /// The configuration with secrets replaced.
    pub fn redacted(&self) -> Config {
        let mut c = self.clone();
        if c.session_key.is_some() {
            c.session_key = Some(REDACTED.into());
        }
        if c.oidc.oidc_client_secret.is_some() {
            c.oidc.oidc_client_secret = Some(REDACTED.into());
        }
        // A password in any URL (userinfo) is a secret too.
        c.catalog_url = redact_url(&c.catalog_url);
        c.scheduler_url = redact_url(&c.scheduler_url);
        for u in [&mut c.public_url, &mut c.otel_exporter_otlp_endpoint] {
            *u = u.as_deref().map(redact_url);
        }
        c
    }
}

/// The console's side of an OpenID Connect provider. The catalog must accept the provider's ID
/// tokens (its `oidc_issuer`, `oidc_audience` = this client id, `oidc_jwks_url`,
/// `oidc_role_map`): the console signs people in and calls the APIs with their ID token.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct OidcLogin {
    /// The client id registered with the provider; setting it offers "Sign in with ...".
    pub oidc_client_id: Option<String>,
    /// The client secret (confidential clients).
    pub oidc_client_secret: Option<String>,
    /// File holding it.
    pub oidc_client_secret_file: Option<PathBuf>,
    /// The provider's authorisation endpoint.
    pub oidc_authorize_url: Option<String>,
    /// The provider's token endpoint.
    pub oidc_token_url: Option<String>,
    /// Scopes asked for (space-separated).
    pub oidc_scopes: Option<String>,
    /// The button's label ("Sign in with <label>").
    pub oidc_label: Option<String>,
}

impl OidcLogin {
    /// Whether provider sign-in is offered.
    pub fn enabled(&self) -> bool {
        self.oidc_client_id.as_deref().is_some_and(|c| !c.is_empty())
    }

    /// The client secret, when configured.
    pub fn secret(&self) -> Result<Option<String>, ConfigError> {
        cairn_runtime::config::secret(
            "oidc_client_secret",
            self.oidc_client_secret.as_deref(),
            self.oidc_client_secret_file.as_deref(),
        )
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if !self.enabled() {
            return Ok(());
        }
        for (key, v) in
            [("oidc_authorize_url", &self.oidc_authorize_url), ("oidc_token_url", &self.oidc_token_url)]
        {
            let Some(u) = v.as_deref().filter(|u| !u.is_empty()) else {
                return Err(ConfigError::invalid(key, "is required with oidc_client_id"));
            };
            let parsed = url::Url::parse(u).map_err(|e| ConfigError::invalid(key, format!("{u:?}: {e}")))?;
            let loopback = parsed.host_str().is_some_and(|h| {
                h == "localhost"
                    || h.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
            });
            if parsed.scheme() != "https" && !(parsed.scheme() == "http" && loopback) {
                return Err(ConfigError::invalid(key, "must be https:// (http:// only on loopback)"));
            }
        }
        self.secret()?;
        Ok(())
    }
}

/// Cairn's web console. Every flag can also be set as CAIRN_<NAME> or in --config.
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
    /// HTTP listen address [default: 127.0.0.1:8080].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// The catalog's URL [default: http://127.0.0.1:50051].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catalog_url: Option<String>,
    /// The scheduler's URL [default: http://127.0.0.1:50052].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduler_url: Option<String>,
    /// The address browsers use, e.g. https://backups.example.com.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// Prometheus listen address [default: 127.0.0.1:9104].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
}

impl Flags {
    /// The effective configuration (not yet validated).
    pub fn config(&self) -> Result<Config, ConfigError> {
        cairn_runtime::config::load(&Config::default(), self.config.as_deref(), self)
    }
}
