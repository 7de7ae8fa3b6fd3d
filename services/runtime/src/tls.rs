//! TLS for every server and client (rustls with the ring provider). A server with a
//! certificate serves only TLS, re-reads its certificate, key and client CA when the files
//! change (checked at most every few seconds, on accept), and can require client certificates
//! signed by a CA (mTLS). Clients verify servers with a CA bundle, or the system's roots when
//! none is given, and present a client certificate when configured.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant, SystemTime},
};

use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        RootCertStore, ServerConfig,
        crypto::ring,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _},
        server::WebPkiClientVerifier,
    },
    server::TlsStream,
};
use tokio_util::sync::CancellationToken;

use crate::config::ConfigError;

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often certificate files are looked at for changes.
const RELOAD_EVERY: Duration = Duration::from_secs(5);

/// A server's TLS settings (keys of every server's configuration).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerTls {
    /// PEM certificate chain; set together with `tls_key_file` to serve TLS only.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key.
    pub tls_key_file: Option<PathBuf>,
    /// PEM CA bundle that client certificates must chain to (mTLS).
    pub tls_client_ca_file: Option<PathBuf>,
    /// Refuse connections without a client certificate (with `tls_client_ca_file`).
    pub tls_client_auth_required: bool,
}

/// A client's TLS settings (towards other Cairn services).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientTls {
    /// PEM CA bundle that servers must chain to; unset = the system's roots.
    pub tls_ca_file: Option<PathBuf>,
    /// PEM client certificate presented to servers that ask (mTLS).
    pub tls_client_cert_file: Option<PathBuf>,
    /// Its private key.
    pub tls_client_key_file: Option<PathBuf>,
}

impl ServerTls {
    /// Whether TLS is configured.
    pub fn enabled(&self) -> bool {
        self.tls_cert_file.is_some()
    }

    /// Checks the settings and loads the files once (so a bad file fails at start-up).
    pub fn validate(&self) -> Result<(), ConfigError> {
        match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(_), Some(_)) => self.server_config().map(|_| ()),
            (None, None) if self.tls_client_ca_file.is_none() && !self.tls_client_auth_required => Ok(()),
            (None, None) => {
                Err(ConfigError::invalid("tls_cert_file", "client certificates need TLS: set tls_cert_file"))
            }
            (Some(_), None) => Err(ConfigError::invalid("tls_key_file", "is required with tls_cert_file")),
            (None, Some(_)) => Err(ConfigError::invalid("tls_cert_file", "is required with tls_key_file")),
        }
    }

    fn files(&self) -> Vec<PathBuf> {
        [&self.tls_cert_file, &self.tls_key_file, &self.tls_client_ca_file]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }

    fn server_config(&self) -> Result<Arc<ServerConfig>, ConfigError> {
        let (Some(cert), Some(key)) = (&self.tls_cert_file, &self.tls_key_file) else {
            return Err(ConfigError::invalid("tls_cert_file", "is required"));
        };
        let chain = certificates("tls_cert_file", cert)?;
        let key = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| ConfigError::invalid("tls_key_file", format!("{}: {e}", key.display())))?;
        let builder = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| ConfigError::invalid("tls_cert_file", e.to_string()))?;
        let builder = match &self.tls_client_ca_file {
            None if self.tls_client_auth_required => {
                return Err(ConfigError::invalid(
                    "tls_client_ca_file",
                    "is required with tls_client_auth_required",
                ));
            }
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for c in certificates("tls_client_ca_file", ca)? {
                    roots.add(c).map_err(|e| ConfigError::invalid("tls_client_ca_file", e.to_string()))?;
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    Arc::new(ring::default_provider()),
                );
                let verifier =
                    if self.tls_client_auth_required { verifier } else { verifier.allow_unauthenticated() };
                let verifier = verifier
                    .build()
                    .map_err(|e| ConfigError::invalid("tls_client_ca_file", e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_single_cert(chain, key).map_err(|e| {
            ConfigError::invalid("tls_key_file", format!("does not match tls_cert_file: {e}"))
        })?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }
}

fn certificates(key: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| ConfigError::invalid(key, format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(ConfigError::invalid(key, format!("{} holds no PEM certificate", path.display())));
    }
    Ok(certs)
}

fn stamps(files: &[PathBuf]) -> Vec<Option<SystemTime>> {
    files.iter().map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok()).collect()
}

/// A server's TLS configuration that follows its files.
pub struct Reloading {
    settings: ServerTls,
    current: RwLock<Arc<ServerConfig>>,
    seen: Mutex<(Instant, Vec<Option<SystemTime>>)>,
}

impl std::fmt::Debug for Reloading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloading").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl Reloading {
    /// Loads the files now.
    pub fn new(settings: ServerTls) -> Result<Arc<Reloading>, ConfigError> {
        let config = settings.server_config()?;
        let seen = (Instant::now(), stamps(&settings.files()));
        Ok(Arc::new(Reloading { settings, current: RwLock::new(config), seen: Mutex::new(seen) }))
    }

    /// The configuration for a new connection, re-read first if the files changed. A file
    /// that does not load keeps the previous configuration (and says so in the log).
    fn config(&self) -> Arc<ServerConfig> {
        if let Ok(mut seen) = self.seen.lock()
            && seen.0.elapsed() >= RELOAD_EVERY
        {
            let now = stamps(&self.settings.files());
            if now != seen.1 {
                match self.settings.server_config() {
                    Ok(c) => {
                        if let Ok(mut cur) = self.current.write() {
                            *cur = c;
                        }
                        tracing::info!("TLS certificate files changed; reloaded");
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "TLS certificate files changed but do not load; keeping the old ones")
                    }
                }
                seen.1 = now;
            }
            seen.0 = Instant::now();
        }
        self.current.read().map(|c| c.clone()).unwrap_or_else(|p| p.into_inner().clone())
    }
}

/// Accepted TLS connections of `listener` until `shutdown`; each handshake runs on its own
/// task (a slow client delays no one), and failed handshakes are dropped.
pub fn incoming(
    listener: TcpListener,
    tls: Arc<Reloading>,
    shutdown: CancellationToken,
) -> tokio_stream::wrappers::ReceiverStream<Result<TlsStream<TcpStream>, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => return,
                a = listener.accept() => a,
            };
            let (tcp, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = TlsAcceptor::from(tls.config());
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Err(e)) => tracing::debug!(peer = %peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(peer = %peer, "TLS handshake timed out"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

impl ClientTls {
    /// Checks the settings (files readable, certificate and key together).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(ca) = &self.tls_ca_file {
            certificates("tls_ca_file", ca)?;
        }
        match (&self.tls_client_cert_file, &self.tls_client_key_file) {
            (Some(_), None) => {
                Err(ConfigError::invalid("tls_client_key_file", "is required with tls_client_cert_file"))
            }
            (None, Some(_)) => {
                Err(ConfigError::invalid("tls_client_cert_file", "is required with tls_client_key_file"))
            }
            _ => Ok(()),
        }
    }

    /// tonic's client TLS settings for a server called `host`.
    pub fn tonic(&self, host: &str) -> Result<tonic::transport::ClientTlsConfig, String> {
        let read = |p: &Path| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
        let mut c = tonic::transport::ClientTlsConfig::new().domain_name(host);
        c = match &self.tls_ca_file {
            Some(ca) => c.ca_certificate(tonic::transport::Certificate::from_pem(read(ca)?)),
            None => c.with_native_roots(),
        };
        if let (Some(cert), Some(key)) = (&self.tls_client_cert_file, &self.tls_client_key_file) {
            c = c.identity(tonic::transport::Identity::from_pem(read(cert)?, read(key)?));
        }
        Ok(c)
    }
}
