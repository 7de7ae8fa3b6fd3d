//! The worker's configuration (see `cairn_runtime::config` for the layering).

use std::{collections::HashMap, net::SocketAddr, path::PathBuf, time::Duration};

use cairn_runtime::{
    config::{ConfigError, REDACTED, redact_url},
    telemetry::LogFormat,
};
use serde::{Deserialize, Serialize};

/// Effective configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// The scheduler's gRPC URL (`CAIRN_SCHEDULER_URL`).
    pub scheduler_url: String,
    /// Stable identity; empty = `<host name>-<process id>`.
    pub worker_id: String,
    /// Placement labels, `key=value` pairs separated by commas (`CAIRN_WORKER_LABELS`).
    /// `host=<host name>` is added unless a `host` label is given.
    pub worker_labels: String,
    /// Project ids whose jobs this worker runs, separated by commas (`CAIRN_WORKER_PROJECTS`);
    /// empty = every project.
    pub worker_projects: String,
    /// Jobs run at once.
    pub capacity: u32,
    /// At shutdown, how long running jobs may finish before they are cancelled (seconds).
    pub grace_period_secs: u64,
    /// How long one AcquireLease call waits for work (seconds).
    pub poll_wait_secs: u64,
    /// Repositories kept open (with their index) for snapshot browsing.
    pub browse_repositories: u32,
    /// Repository cache directory; empty = none.
    pub cache_dir: Option<PathBuf>,
    /// Which archiver writes backups: `cairn` (Cairn's own, pipelined) or `rustic`
    /// (rustic_core's). Both write the same repositories (ADR 0016).
    pub archiver: String,
    /// Prometheus metrics listen address.
    pub metrics_listen: SocketAddr,
    /// TLS towards the scheduler (an `https://` URL).
    #[serde(flatten)]
    pub tls: cairn_runtime::tls::ClientTls,
    /// The worker pool's enrolment token (`CAIRN_WORKER_TOKEN`), sent to the scheduler.
    pub worker_token: Option<String>,
    /// File holding it.
    pub worker_token_file: Option<PathBuf>,
    pub cluster_token: Option<String>,
    /// Log line format.
    pub log_format: LogFormat,
    /// OTLP collector (`OTEL_EXPORTER_OTLP_ENDPOINT`); unset = no span export.
    pub otel_exporter_otlp_endpoint: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            scheduler_url: "http://127.0.0.1:50052".into(),
            worker_id: String::new(),
            worker_labels: String::new(),
            worker_projects: String::new(),
            capacity: 2,
            grace_period_secs: 30,
            poll_wait_secs: 20,
            browse_repositories: 4,
            cache_dir: None,
            archiver: cairn_engine::Archiver::default().as_str().into(),
            metrics_listen: ([127, 0, 0, 1], 9103).into(),
            cluster_token: None,
            worker_token: None,
            tls: Default::default(),
            worker_token_file: None,
            log_format: LogFormat::Text,
            otel_exporter_otlp_endpoint: None,
        }
    }
}

/// The machine's host name.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// Parses `k=v,k2=v2` labels; errors name `worker_labels`.
pub fn parse_labels(raw: &str) -> Result<HashMap<String, String>, ConfigError> {
    let mut out = HashMap::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = part.split_once('=') else {
            return Err(ConfigError::invalid("worker_labels", format!("{part:?} is not key=value")));
        };
        let (k, v) = (k.trim(), v.trim());
        let ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 63
                && s.chars().all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c))
        };
        if !ok(k) || !ok(v) {
            return Err(ConfigError::invalid(
                "worker_labels",
                format!("{part:?}: keys and values are 1..=63 of letters, digits, '.', '_', '-', '/'"),
            ));
        }
        if out.insert(k.to_owned(), v.to_owned()).is_some() {
            return Err(ConfigError::invalid("worker_labels", format!("label {k:?} is given twice")));
        }
    }
    Ok(out)
}

impl Config {
    /// The credential sent to the scheduler: the worker pool token, else (authentication
    /// off) the cluster token.
    pub fn credential(&self) -> Result<Option<String>, ConfigError> {
        let t = cairn_runtime::config::secret(
            "worker_token",
            self.worker_token.as_deref(),
            self.worker_token_file.as_deref(),
        )?;
        Ok(t.or_else(|| self.cluster_token.clone()))
    }

    /// The configuration with secrets replaced.
    pub fn redacted(&self) -> Config {
        Config {
            cluster_token: self.cluster_token.as_ref().map(|_| REDACTED.to_owned()),
            worker_token: self.worker_token.as_ref().map(|_| REDACTED.to_owned()),
            // A password in any URL (userinfo) is a secret too.
            scheduler_url: redact_url(&self.scheduler_url),
            otel_exporter_otlp_endpoint: self.otel_exporter_otlp_endpoint.as_deref().map(redact_url),
            ..self.clone()
        }
    }

    /// The worker id to use.
    pub fn id(&self) -> String {
        if self.worker_id.is_empty() {
            format!("{}-{}", host_name(), std::process::id())
        } else {
            self.worker_id.clone()
        }
    }

    /// The labels to advertise.
    pub fn labels(&self) -> Result<HashMap<String, String>, ConfigError> {
        let mut l = parse_labels(&self.worker_labels)?;
        l.entry("host".into()).or_insert_with(host_name);
        Ok(l)
    }

    /// The projects served (empty = all); errors name `worker_projects`.
    pub fn projects(&self) -> Result<Vec<String>, ConfigError> {
        let mut out: Vec<String> = Vec::new();
        for p in self.worker_projects.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let id = cairn_api::names::ProjectId::parse(p)
                .map_err(|e| ConfigError::invalid("worker_projects", format!("{p:?}: {e}")))?;
            if !out.iter().any(|o| o == id.as_str()) {
                out.push(id.as_str().to_owned());
            }
        }
        Ok(out)
    }

    /// The archiver named by `archiver`.
    pub fn archiver(&self) -> Result<cairn_engine::Archiver, ConfigError> {
        self.archiver.parse().map_err(|e: String| ConfigError::invalid("archiver", e))
    }

    /// Grace period at shutdown.
    pub fn grace_period(&self) -> Duration {
        Duration::from_secs(self.grace_period_secs)
    }

    /// Checks everything that can be checked without I/O.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.tls.validate()?;
        cairn_runtime::grpc::check_url(&self.scheduler_url)
            .map_err(|e| ConfigError::invalid("scheduler_url", e))?;
        if !(1..=64).contains(&self.capacity) {
            return Err(ConfigError::invalid("capacity", "must be between 1 and 64"));
        }
        if !(1..=60).contains(&self.poll_wait_secs) {
            return Err(ConfigError::invalid("poll_wait_secs", "must be between 1 and 60"));
        }
        if !(1..=64).contains(&self.browse_repositories) {
            return Err(ConfigError::invalid("browse_repositories", "must be between 1 and 64"));
        }
        if self.worker_id.len() > 128 {
            return Err(ConfigError::invalid("worker_id", "is longer than 128 characters"));
        }
        self.projects()?;
        self.archiver()?;
        self.labels().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse_and_get_a_host() {
        let c = Config { worker_labels: "zone=eu, tier=db".into(), ..Config::default() };
        let l = c.labels().unwrap();
        assert_eq!(l.get("zone").map(String::as_str), Some("eu"));
        assert!(l.contains_key("host"));
        let c = Config { worker_labels: "host=db1".into(), ..Config::default() };
        assert_eq!(c.labels().unwrap().get("host").map(String::as_str), Some("db1"));
        for bad in ["zone", "a=b=c", "=x", "a=b,a=c", "k=v w"] {
            let c = Config { worker_labels: bad.into(), ..Config::default() };
            assert!(c.validate().unwrap_err().to_string().contains("worker_labels"), "{bad}");
        }
    }

    #[test]
    fn archivers_parse() {
        let c = Config { archiver: " Rustic ".into(), ..Config::default() };
        assert_eq!(c.archiver().unwrap(), cairn_engine::Archiver::Rustic);
        assert_eq!(Config::default().archiver().unwrap(), cairn_engine::Archiver::Cairn);
        let c = Config { archiver: "tar".into(), ..Config::default() };
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("archiver") && err.contains("tar"), "{err}");
    }

    #[test]
    fn projects_parse() {
        let c = Config { worker_projects: " team-a, default ,team-a".into(), ..Config::default() };
        assert_eq!(c.projects().unwrap(), ["team-a", "default"]);
        assert!(Config::default().projects().unwrap().is_empty());
        for bad in ["Team", "a_b", "team-a,-"] {
            let c = Config { worker_projects: bad.into(), ..Config::default() };
            assert!(c.validate().unwrap_err().to_string().contains("worker_projects"), "{bad}");
        }
    }
}
